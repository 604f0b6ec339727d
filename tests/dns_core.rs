//! Black-box DNS behaviour of `keiko-dns serve` (docs/reference.md §3) over
//! real UDP and TCP sockets on loopback. Every test runs its own server.
//!
//! What the answer core says to each kind of query is unit-tested in
//! `src/dataplane/tests.rs`; here one test per group of behaviours checks
//! that those answers reach real clients, beside what only the running
//! server does: transports, garbage on the wire, reloads, `check`.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, RecordType};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// RFC 2308 negative TTL of the shipped zone: min(SOA TTL 3600, MINIMUM 300).
const NEGATIVE_TTL: u32 = 300;
/// The shipped zone's `status` address.
const STATUS_V4: &str = "192.0.2.80";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn region_addresses(r: &Region, rtype: RecordType) -> Vec<IpAddr> {
    match rtype {
        RecordType::A => vec![r.v4.into()],
        RecordType::AAAA => vec![r.v6.into()],
        _ => unreachable!("steered names answer A and AAAA"),
    }
}

/// The answers to `name` `rtype` over UDP and over TCP.
fn both_transports(server: &Server, name: &str, rtype: RecordType) -> [Message; 2] {
    [server.query_udp(name, rtype), server.query_tcp(name, rtype)]
}

/// The encoded `query` with its header's opcode set to `opcode`.
fn with_opcode(mut query: Vec<u8>, opcode: u8) -> Vec<u8> {
    query[2] = (query[2] & !0x78) | (opcode << 3);
    query
}

/// Asserts a raw answer is a response to `query` with `rcode`.
fn assert_raw_rcode(answer: Option<Vec<u8>>, query: &[u8], rcode: u8, what: &str) {
    let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
    assert!(answer.len() >= 12, "{what}: short answer {answer:02x?}");
    assert_eq!(answer[..2], query[..2], "{what}: ID echoed");
    assert!(answer[2] & 0x80 != 0, "{what}: QR set");
    assert_eq!(answer[3] & 0x0f, rcode, "{what}: rcode in {answer:02x?}");
}

// ---------------------------------------------------------------------------
// Answers over real sockets
//
// The answer core's unit tests (src/dataplane/tests.rs) check each of these
// behaviours case by case; the two tests here check, with one server each,
// that the same answers reach a client over UDP and TCP.
// ---------------------------------------------------------------------------

/// Authoritative static and steered answers, case, CNAME, ANY, EDNS and ECS
/// echo, as a client sees them.
#[test]
fn positive_answers_over_udp_and_tcp() {
    let server = Server::start_default();

    // Static data: RD is echoed (RFC 1035), but an authoritative-only server
    // never sets RA; the question comes back as asked.
    let mut query = Message::query_for(&fqdn("status"), RecordType::A);
    query.metadata.recursion_desired = true;
    for answer in [server.exchange_udp(&query), server.exchange_tcp(&query)] {
        assert_addresses(&answer, &[ip(STATUS_V4)]);
        assert!(answer.metadata.recursion_desired, "RD echoed");
        assert!(!answer.metadata.recursion_available, "RA clear");
        assert_eq!(answer.queries, query.queries, "question echoed");
    }

    // Steered names: failover gives the primary (all healthy), each region
    // name its region, A and AAAA, with the record's TTL and the asked name.
    let expectations = std::iter::once((FAILOVER_NAME, &REGIONS[0]))
        .chain(REGION_NAMES.iter().copied().zip(&REGIONS));
    for (name, region) in expectations {
        for rtype in [RecordType::A, RecordType::AAAA] {
            for answer in [server.query_udp(name, rtype), server.query_tcp(name, rtype)] {
                assert_addresses(&answer, &region_addresses(region, rtype));
                assert!(!answer.metadata.recursion_available, "RA clear");
                assert!(
                    answer.answers.iter().all(|r| r.ttl == STEERED_TTL),
                    "{answer:#?}"
                );
                assert_eq!(
                    answer.answers[0].name,
                    Name::from_ascii(fqdn(name)).unwrap()
                );
            }
        }
    }

    // The weighted name draws its AAAA from the regions' IPv6 addresses
    // (the shares themselves: `sighup_reload_applies_new_weights`).
    let v6: Vec<IpAddr> = REGIONS.iter().map(|r| r.v6.into()).collect();
    for answer in both_transports(&server, WEIGHTED_NAME, RecordType::AAAA) {
        let got = addresses(&answer);
        assert!(got.len() == 1 && v6.contains(&got[0]), "{answer:#?}");
        assert!(answer.metadata.authoritative, "{answer:#?}");
    }

    // Names match case-insensitively; the question goes back byte for byte
    // as the client wrote it.
    let client = server.udp();
    for (name, expected) in [
        ("StAtUs.KeIkO.eXaMpLe.CoM.", ip(STATUS_V4)),
        ("API-CONTRACTS.keiko.example.COM.", REGIONS[0].v4.into()),
        (
            "Api-Contracts-Ap-Southeast.Keiko.Example.Com.",
            REGIONS[2].v4.into(),
        ),
    ] {
        let query = Message::query_for(name, RecordType::A).bytes();
        let raw = client.raw(&query).expect("answer");
        assert_eq!(raw[12..query.len()], query[12..], "question of {name}");
        assert_addresses(&parse(&raw), &[expected]);
    }

    // A static CNAME is chased inside the zone (www -> status), but not into
    // a steered name (api -> api-contracts), whose answer is per query.
    let cname = |n: &str| RData::CNAME(CNAME(Name::from_ascii(fqdn(n)).unwrap()));
    let www = server.query_udp("www", RecordType::A);
    assert_eq!(www.answers.len(), 2, "{www:#?}");
    assert_eq!(www.answers[0].data, cname("status"), "{www:#?}");
    assert_addresses(&www, &[ip(STATUS_V4)]);
    let api = server.query_tcp("api", RecordType::A);
    assert_eq!(api.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        api.answers.iter().map(|r| &r.data).collect::<Vec<_>>(),
        [&cname(FAILOVER_NAME)],
        "{api:#?}"
    );

    // ANY (RFC 8482): one RRset, not all of them. The apex has SOA, NS, CAA,
    // TXT and MX.
    for name in ["@", FAILOVER_NAME] {
        for answer in [
            server.query_udp(name, RecordType::ANY),
            server.query_tcp(name, RecordType::ANY),
        ] {
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert!(answer.metadata.authoritative, "{name}");
            let types: HashSet<RecordType> =
                answer.answers.iter().map(|r| r.record_type()).collect();
            assert_eq!(types.len(), 1, "{name}: one RRset, got {answer:#?}");
        }
    }

    // EDNS: OPT echoed with our payload size whatever the client's; none
    // without one in the query (RFC 6891 section 7).
    for payload in [512, 4096] {
        let query = Message::query_for(&fqdn("status"), RecordType::A).with_edns(payload);
        let answer = server.exchange_udp(&query);
        assert_addresses(&answer, &[ip(STATUS_V4)]);
        let edns = answer.edns.as_ref().expect("OPT echoed");
        assert_eq!(edns.max_payload(), EDNS_PAYLOAD, "our payload size");
        assert_eq!(edns.version(), 0);
    }
    let plain = server.query_udp("status", RecordType::A);
    assert!(plain.edns.is_none(), "{plain:#?}");

    // ECS echoed with scope 0: without geo or residency no answer depends
    // on the client.
    let subnet: IpAddr = ip("198.51.100.0");
    for name in [FAILOVER_NAME, "status"] {
        let query = Message::query_for(&fqdn(name), RecordType::A).with_subnet(subnet, 24);
        let answer = server.exchange_tcp(&query);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        let echoed = answer_subnet(&answer).unwrap_or_else(|| panic!("{name}: ECS echoed"));
        assert_eq!((echoed.addr(), echoed.source_prefix()), (subnet, 24));
        assert_eq!(echoed.scope_prefix(), 0, "{name}: same answer for all");
    }
}

/// NXDOMAIN and NODATA with the SOA, REFUSED, truncation, BADVERS, FORMERR
/// and NOTIMP, as a client sees them.
#[test]
fn negative_and_error_answers_over_udp_and_tcp() {
    // a.b.c makes b.c and c empty non-terminals. `big` (about 850 bytes)
    // fits in our 1232 but not in 512 or 600; `huge` (about 2.3 kB) fits
    // only over TCP.
    let zone = zone_with(&format!(
        "a.b.c IN A 192.0.2.99\n{}{}",
        txt_rrset("big", 7),
        txt_rrset("huge", 20)
    ));
    let server = Server::start(&default_config(), &zone);
    let both = |name: &str, rtype| both_transports(&server, name, rtype);

    // NXDOMAIN carries the SOA with the negative TTL, also for a name below
    // a steered name and for a sibling of an empty non-terminal.
    for name in [
        "no-such-name",
        "deep.under.nothing",
        "x.api-contracts",
        "x.b.c",
    ] {
        for answer in both(name, RecordType::A) {
            assert_negative(&answer, ResponseCode::NXDomain, NEGATIVE_TTL);
        }
    }
    // NODATA carries the SOA: other types at steered and static names, and
    // empty non-terminals, which exist (RFC 8020).
    for (name, rtype) in [
        (FAILOVER_NAME, RecordType::TXT),
        (WEIGHTED_NAME, RecordType::MX),
        (REGION_NAMES[0], RecordType::TXT),
        ("mail", RecordType::AAAA),
        ("status", RecordType::MX),
        ("ns1", RecordType::TXT),
        ("b.c", RecordType::A),
        ("c", RecordType::TXT),
    ] {
        for answer in both(name, rtype) {
            assert_negative(&answer, ResponseCode::NoError, NEGATIVE_TTL);
        }
    }
    assert_addresses(
        &server.query_udp("a.b.c", RecordType::A),
        &[ip("192.0.2.99")],
    );

    // Names outside the zone are refused, without authority.
    for name in [
        "example.org.",
        "example.com.",
        "com.",
        ".",
        "keiko.example.com.evil.",
    ] {
        for answer in both(name, RecordType::A) {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name}: {answer:#?}"
            );
            assert!(answer.answers.is_empty(), "{name}: {answer:#?}");
            assert!(!answer.metadata.authoritative, "{name}: {answer:#?}");
        }
    }

    // Truncation honours the client's buffer (512 without EDNS, ours at
    // most), never sends part of an RRset, and TCP gets everything.
    let ask = |name: &str, payload: Option<u16>| {
        let query = Message::query_for(&fqdn(name), RecordType::TXT);
        let query = match payload {
            Some(p) => query.with_edns(p),
            None => query,
        };
        let raw = server.raw_udp(&query.bytes()).expect("UDP answer");
        let limit = payload.map_or(512, |p| p.clamp(512, EDNS_PAYLOAD)) as usize;
        assert!(
            raw.len() <= limit,
            "{name} {payload:?}: {} bytes > {limit}",
            raw.len()
        );
        parse(&raw)
    };
    let assert_truncated = |m: &Message, what: &str| {
        assert!(m.metadata.truncation, "{what}: TC expected: {m:#?}");
        assert!(m.answers.is_empty(), "{what}: no partial RRset: {m:#?}");
        assert_eq!(m.queries.len(), 1, "{what}: question kept");
    };
    let assert_complete = |m: &Message, count: usize, what: &str| {
        assert!(!m.metadata.truncation, "{what}: TC not expected");
        assert_eq!(m.answers.len(), count, "{what}: whole RRset");
    };
    assert_truncated(&ask("big", None), "big, no EDNS");
    assert_truncated(&ask("big", Some(600)), "big, EDNS 600");
    assert_complete(&ask("big", Some(1232)), 7, "big, EDNS 1232");
    assert_complete(&ask("big", Some(4096)), 7, "big, EDNS 4096");
    let truncated = ask("huge", Some(4096));
    assert_truncated(&truncated, "huge, EDNS 4096 (we send at most 1232)");
    assert!(truncated.edns.is_some(), "OPT kept in a truncated answer");
    let [_, tcp] = both("big", RecordType::TXT);
    assert_complete(&tcp, 7, "big over TCP");
    let [_, tcp] = both("huge", RecordType::TXT);
    assert_complete(&tcp, 20, "huge over TCP");

    // EDNS version 1: BADVERS, in an OPT of version 0.
    let mut query = Message::query_for(&fqdn("status"), RecordType::A).with_edns(1232);
    query.edns.as_mut().unwrap().set_version(1);
    for answer in [server.exchange_udp(&query), server.exchange_tcp(&query)] {
        assert_eq!(rcode(&answer), 16, "BADVERS: {answer:#?}");
        assert!(answer.answers.is_empty(), "{answer:#?}");
        let edns = answer.edns.as_ref().expect("BADVERS travels in OPT");
        assert_eq!(edns.version(), 0, "we speak EDNS version 0");
    }

    // Malformed queries: FORMERR with the ID echoed.
    let good = Message::query_for(&fqdn("status"), RecordType::A).bytes();
    let mut two_questions = good.clone();
    two_questions[5] = 2; // QDCOUNT=2 with one question present
    let mut no_question = good[..12].to_vec();
    no_question[5] = 0;
    let mut two_real_questions = good.clone();
    two_real_questions[5] = 2;
    two_real_questions.extend_from_slice(&good[12..]);
    // An empty OPT record (root owner, type 41, payload 1232, no options).
    const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
    let mut two_opts = good.clone();
    two_opts[11] = 2;
    two_opts.extend_from_slice(&OPT);
    two_opts.extend_from_slice(&OPT);
    let malformed: [(&str, Vec<u8>); 6] = [
        ("question cut in the name", good[..good.len() - 10].to_vec()),
        (
            "question without type and class",
            good[..good.len() - 4].to_vec(),
        ),
        ("QDCOUNT=2, one question", two_questions),
        ("QDCOUNT=2, two questions", two_real_questions),
        ("QDCOUNT=0", no_question),
        ("two OPT records", two_opts),
    ];
    for (what, packet) in &malformed {
        assert_raw_rcode(server.raw_udp(packet), packet, 1, what);
        let mut stream = tcp_connect(server.dns_addr());
        stream.write_all(&frame(packet)).unwrap();
        let answer = read_frame(&mut stream).ok();
        assert_raw_rcode(answer, packet, 1, &format!("TCP: {what}"));
    }

    // Opcodes other than QUERY: NOTIMP, the opcode echoed.
    let query = Message::query_for(&fqdn("status"), RecordType::A).bytes();
    for opcode in [
        u8::from(OpCode::Status),
        u8::from(OpCode::Notify),
        u8::from(OpCode::Update),
    ] {
        let packet = with_opcode(query.clone(), opcode);
        let raw = server.raw_udp(&packet);
        let what = format!("opcode {opcode}");
        assert_raw_rcode(raw.clone(), &packet, 4, &what);
        assert_eq!(
            raw.map(|r| (r[2] >> 3) & 0x0f),
            Some(opcode),
            "{what} echoed"
        );
    }
}

/// The ISC DNS compliance checker's two opcode probes, over UDP and TCP:
/// opcode 15 header-only, plain and with every flag bit set; and an
/// unknown opcode with a question. NOTIMP each time, the opcode echoed, RD,
/// CD, AA (and every other bit) clear, no records.
#[test]
fn unknown_opcodes_are_notimp_with_their_flags_clear() {
    let server = Server::start_default();
    let header_only = |flags: u16| {
        let mut p = vec![0xbe, 0xef];
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    };
    // TC, RD, RA, Z, AD, CD; and AA.
    let every_flag = 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010 | 0x0400;
    let status_query = Message::query_for(&fqdn("status"), RecordType::A).bytes();
    let cases = [
        ("opcode", header_only(15 << 11), 15),
        ("opcodeflg", header_only((15 << 11) | every_flag), 15),
        ("NOTIFY with a question", with_opcode(status_query, 4), 4),
    ];
    for (what, packet, opcode) in &cases {
        let mut stream = tcp_connect(server.dns_addr());
        stream.write_all(&frame(packet)).unwrap();
        let answers = [
            ("UDP", server.raw_udp(packet)),
            ("TCP", read_frame(&mut stream).ok()),
        ];
        for (transport, answer) in answers {
            let what = format!("{what} over {transport}");
            assert_raw_rcode(answer.clone(), packet, 4, &what);
            let answer = answer.unwrap();
            let flags = u16::from_be_bytes([answer[2], answer[3]]);
            assert_eq!(
                flags,
                0x8000 | (opcode << 11) | 4,
                "{what}: QR, the opcode and NOTIMP, nothing else ({flags:#06x})"
            );
            assert_eq!(answer[6..12], [0; 6], "{what}: no records");
            let question = packet.len() - 12;
            assert_eq!(answer.len(), 12 + question, "{what}: only the question");
        }
    }
    // A QUERY without a question is still FORMERR, RD copied.
    let answer = server.raw_udp(&header_only(0x0100));
    assert_raw_rcode(answer.clone(), &header_only(0x0100), 1, "QDCOUNT 0");
    assert_eq!(answer.unwrap()[2] & 0x01, 0x01, "RD copied for QUERY");
}

// ---------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------

#[test]
fn udp_and_tcp_give_the_same_answers() {
    let server = Server::start_default();
    let cases = [
        ("@", RecordType::SOA),
        ("@", RecordType::NS),
        ("@", RecordType::MX),
        ("status", RecordType::AAAA),
        ("www", RecordType::A),
        (FAILOVER_NAME, RecordType::A),
        (REGION_NAMES[1], RecordType::AAAA),
        ("nothing-here", RecordType::A),
    ];
    for (name, rtype) in cases {
        let (udp, tcp) = (server.query_udp(name, rtype), server.query_tcp(name, rtype));
        assert_eq!(
            udp.metadata.response_code, tcp.metadata.response_code,
            "{name} {rtype}"
        );
        assert_eq!(
            udp.metadata.authoritative, tcp.metadata.authoritative,
            "{name} {rtype}"
        );
        assert_eq!(udp.answers, tcp.answers, "{name} {rtype}");
        assert_eq!(udp.authorities, tcp.authorities, "{name} {rtype}");
    }
}

#[test]
fn tcp_answers_pipelined_queries_in_order_on_one_connection() {
    let server = Server::start_default();
    let queries = [
        Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A),
        Message::query_for(&fqdn(REGION_NAMES[1]), RecordType::AAAA),
        Message::query_for(&fqdn("no-such-name"), RecordType::A),
    ];
    let mut stream = tcp_connect(server.dns_addr());
    // All three leave in one write before any answer is read.
    let batch: Vec<u8> = queries.iter().flat_map(|q| frame(&q.bytes())).collect();
    stream.write_all(&batch).unwrap();
    let answers: Vec<Message> = queries
        .iter()
        .map(|_| parse(&read_frame(&mut stream).expect("pipelined answer")))
        .collect();
    for (q, a) in queries.iter().zip(&answers) {
        assert_eq!(a.metadata.id, q.metadata.id, "answers come in query order");
    }
    assert_addresses(&answers[0], &[REGIONS[0].v4.into()]);
    assert_addresses(&answers[1], &[REGIONS[1].v6.into()]);
    assert_negative(&answers[2], ResponseCode::NXDomain, NEGATIVE_TTL);

    // The connection stays open for more.
    let again = Message::query_for(&fqdn("status"), RecordType::A);
    stream.write_all(&frame(&again.bytes())).unwrap();
    assert_addresses(&parse(&read_frame(&mut stream).unwrap()), &[ip(STATUS_V4)]);
}

#[test]
fn tcp_idle_connection_is_closed_by_the_server() {
    let server = Server::start_default();
    let mut stream = tcp_connect(server.dns_addr());
    let query = Message::query_for(&fqdn("status"), RecordType::A);
    stream.write_all(&frame(&query.bytes())).unwrap();
    read_frame(&mut stream).expect("answer before going idle");

    // The server's idle timeout is 10 s; allow scheduling slack.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let idle_since = Instant::now();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes on an idle connection"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "idle connection not closed after {:?}: {e}",
            idle_since.elapsed()
        ),
    }
    assert!(
        idle_since.elapsed() >= Duration::from_secs(2),
        "closed after only {:?}: that is no idle timeout",
        idle_since.elapsed()
    );
}

#[test]
fn listens_on_ipv4_and_ipv6_loopback() {
    let config = replace_once(
        &default_config(),
        r#"dns_listen   = ["{DNS}"]"#,
        r#"dns_listen   = ["127.0.0.1:{DNS_PORT}", "[::1]:{DNS_PORT}"]"#,
    );
    let server = Server::start(&config, &default_zone());
    for addr in [server.dns_addr(), server.dns_addr_v6()] {
        let udp = UdpClient::new(addr, Duration::from_secs(2)).query(FAILOVER_NAME, RecordType::A);
        assert_addresses(&udp, &[REGIONS[0].v4.into()]);
        let tcp = tcp_exchange(
            addr,
            &Message::query_for(&fqdn(FAILOVER_NAME), RecordType::AAAA),
        );
        assert_addresses(&tcp, &[REGIONS[0].v6.into()]);
    }
}

// ---------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------

/// Random junk, a third of it built on a valid query (mutated, cut short or
/// with junk appended) so that it gets past the first checks.
fn garbage(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..600usize);
    let mut junk = vec![0u8; len];
    rng.fill(&mut junk[..]);
    if rng.random_range(0..3) != 0 {
        return junk;
    }
    let names = ["status", FAILOVER_NAME, WEIGHTED_NAME, "www", "nope", "@"];
    let name = fqdn(names[rng.random_range(0..names.len())]);
    let rtype = RecordType::from(rng.random_range(0..300u16));
    let mut query = Message::query_for(&name, rtype);
    if rng.random_bool(0.5) {
        query = query.with_edns(rng.random_range(0..5000));
    }
    let mut packet = query.bytes();
    match rng.random_range(0..3) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..packet.len());
                packet[at] = rng.random();
            }
        }
        1 => packet.truncate(rng.random_range(0..packet.len())),
        _ => packet.extend_from_slice(&junk),
    }
    packet
}

/// Checks a datagram or frame the server sent back for junk: a response
/// (QR set) to one of the IDs sent.
fn assert_sane_reply(reply: &[u8], sent_ids: &HashSet<[u8; 2]>) {
    assert!(
        reply.len() >= 12,
        "reply shorter than a header: {reply:02x?}"
    );
    assert!(reply[2] & 0x80 != 0, "reply without QR: {reply:02x?}");
    assert!(
        sent_ids.contains(&[reply[0], reply[1]]),
        "reply to an ID never sent"
    );
}

#[test]
fn udp_garbage_neither_crashes_nor_stalls_the_server() {
    let mut server = Server::start_default();
    let mut rng = StdRng::seed_from_u64(0x6b65_696b_6f00);
    let client = server.udp();
    client.set_timeout(Duration::from_millis(20));
    let mut replies = 0;
    for _ in 0..100 {
        // Batches of 50, then read back whatever came, so replies can be
        // checked without waiting out a timeout for every dropped packet.
        let mut ids = HashSet::new();
        for _ in 0..50 {
            let packet = garbage(&mut rng);
            if packet.len() >= 2 {
                ids.insert([packet[0], packet[1]]);
            }
            client.send(&packet);
        }
        while let Some(reply) = client.recv() {
            assert_sane_reply(&reply, &ids);
            assert!(
                reply.len() <= usize::from(EDNS_PAYLOAD),
                "UDP reply over 1232 bytes"
            );
            replies += 1;
        }
    }
    assert!(replies > 0, "the server answered none of 5000 packets");
    server.assert_alive();
    let answer =
        UdpClient::new(server.dns_addr(), Duration::from_secs(2)).query("status", RecordType::A);
    assert_addresses(&answer, &[ip(STATUS_V4)]);
    server.assert_alive();
}

/// Reads frames until the server closes the connection; panics if it keeps
/// it open (a stall) for 5 s after we stopped sending.
fn read_until_closed(stream: &mut std::net::TcpStream, ids: &HashSet<[u8; 2]>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("server kept a junk connection open: {e}"),
        }
    }
    // Whole frames only are checked: a reset may cut the last one.
    let mut at = 0;
    while at + 2 <= received.len() {
        let len = usize::from(u16::from_be_bytes([received[at], received[at + 1]]));
        let Some(reply) = received.get(at + 2..at + 2 + len) else {
            break;
        };
        assert_sane_reply(reply, ids);
        at += 2 + len;
    }
}

#[test]
fn tcp_garbage_neither_crashes_nor_stalls_the_server() {
    let mut server = Server::start_default();
    let mut rng = StdRng::seed_from_u64(0x6b65_696b_6f01);

    // A client that starts a message and never finishes it must not hold up
    // anyone else.
    let mut stalled = tcp_connect(server.dns_addr());
    stalled.write_all(&[0, 100, 0xab, 0xcd]).unwrap();

    for _ in 0..250 {
        let mut stream = tcp_connect(server.dns_addr());
        let mut ids = HashSet::new();
        let mut bytes = Vec::new();
        for _ in 0..20 {
            let packet = garbage(&mut rng);
            if packet.len() >= 2 {
                ids.insert([packet[0], packet[1]]);
            }
            bytes.extend_from_slice(&frame(&packet));
        }
        if rng.random_bool(0.3) {
            // A length prefix promising more than follows.
            bytes.extend_from_slice(&[0x01, 0x00, 0x12]);
        }
        // The server may close early (junk it drops); a failed write is fine.
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        read_until_closed(&mut stream, &ids);
    }
    server.assert_alive();
    assert_addresses(&server.query_tcp("status", RecordType::A), &[ip(STATUS_V4)]);
    assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);
    server.assert_alive();
    drop(stalled);
}

// ---------------------------------------------------------------------------
// SIGHUP reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_reload_applies_new_weights() {
    let server = Server::start_default();
    let regions = regions_with_weights([10, 10, 80]);
    server.rewrite_config(&config_with(&regions));
    let log = server.reload();
    assert!(
        !log.to_lowercase().contains("error"),
        "reload failed:\n{log}"
    );
    let got = shares(&server.udp(), WEIGHTED_NAME, 10_000);
    assert_shares(got, weight_shares(&regions), 2.0);
}

/// Asserts the log of a failed reload names `file` at `line`.
fn assert_reload_error(log: &str, file: &str, line: usize) {
    let located = format!("{file}:{line}:");
    assert!(
        log.contains(&located),
        "reload error should name {located}; logged:\n{log}"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_answers() {
    let mut server = Server::start_default();
    let broken = swapped_priorities() + "\n[[regions] # broken\nname = \"unterminated\n";
    server.rewrite_config(&broken);
    let log = server.reload();
    assert_reload_error(&log, CONFIG_FILE, line_of(&broken, "# broken"));
    server.assert_alive();
    assert_failover_to(&server, &REGIONS[0]);
    assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);

    // Fixed: the next SIGHUP takes it.
    server.rewrite_config(&swapped_priorities());
    server.reload();
    assert_failover_to(&server, &REGIONS[1]);
}

#[test]
fn sighup_with_a_broken_zone_keeps_the_old_answers() {
    let server = Server::start_default();
    let moved = replace_once(&default_zone(), STATUS_V4, "192.0.2.81");
    let broken = format!("{moved}\nbroken IN A not-an-address\n");
    server.rewrite_zone(&broken);
    // A valid config change in the same reload must not half-apply either.
    server.rewrite_config(&swapped_priorities());
    let log = server.reload();
    assert_reload_error(&log, ZONE_FILE, line_of(&broken, "broken IN A"));
    assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);
    assert_failover_to(&server, &REGIONS[0]);

    server.rewrite_zone(&moved);
    server.reload();
    assert_addresses(
        &server.query_udp("status", RecordType::A),
        &[ip("192.0.2.81")],
    );
    assert_failover_to(&server, &REGIONS[1]);
}

// ---------------------------------------------------------------------------
// keiko-dns check
// ---------------------------------------------------------------------------

#[test]
fn check_accepts_the_test_config_and_prints_a_summary() {
    let ws = Workspace::new(&default_config(), &default_zone());
    let out = ws.check();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "check failed:\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in REGIONS
        .iter()
        .map(|r| r.name)
        .chain([FAILOVER_NAME, WEIGHTED_NAME, ORIGIN])
    {
        assert!(stdout.contains(needle), "summary lacks {needle}:\n{stdout}");
    }
    assert!(stdout.lines().count() < 50, "one screen:\n{stdout}");
}

/// Runs `check` on `config` and asserts exit 1 with `keiko.toml:LINE:COL:`
/// for the line holding `marker`, and `key` in the same message.
fn assert_check_fails(config: &str, marker: &str, key: &str) {
    let ws = Workspace::new(config, &default_zone());
    let out = ws.check();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "check should fail:\n{text}");
    let located = format!("{CONFIG_FILE}:{}:", line_of(&ws.fill(config), marker));
    let message = text
        .lines()
        .find(|l| l.contains(&located))
        .unwrap_or_else(|| panic!("no {located}COL: in:\n{text}"));
    let col = message
        .split(&located)
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert!(
        col.parse::<u32>().is_ok_and(|c| c > 0),
        "column in {message:?}"
    );
    assert!(message.contains(key), "{key:?} not named in {message:?}");
}

#[test]
fn check_rejects_an_unknown_key() {
    let config = replace_once(
        &default_config(),
        r#"name      = "us-east-1""#,
        "name      = \"us-east-1\"\ncolour    = \"blue\"",
    );
    assert_check_fails(&config, "colour", "colour");
}

#[test]
fn check_rejects_a_record_for_an_unknown_region() {
    let config = replace_once(
        &default_config(),
        r#"region = "eu-west-1""#,
        r#"region = "eu-north-9""#,
    );
    assert_check_fails(&config, "eu-north-9", "region");
}

#[test]
fn check_rejects_a_duplicate_priority() {
    let config = replace_once(
        &default_config(),
        "priority  = 2",
        "priority  = 1 # duplicate",
    );
    assert_check_fails(&config, "# duplicate", "priority");
}

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

/// Every test config points health checks at loopback stubs, so a server
/// under test never probes the (routed) documentation addresses.
#[test]
fn health_probes_reach_the_loopback_stubs() {
    let server = Server::start_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.ws.health.iter().any(|h| h.requests() == 0) {
        assert!(
            Instant::now() < deadline,
            "not every stub was probed within 10 s; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    for r in REGIONS {
        assert!(!log.contains(&r.v4.to_string()), "probed {}?\n{log}", r.v4);
    }
}

/// Names of the server's UDP worker threads (`dns-udp-N`).
fn udp_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task list")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("dns-udp-"))
        .count()
}

#[test]
fn udp_workers_sets_the_number_of_udp_threads() {
    let one = default_config().replacen("[server]\n", "[server]\nudp_workers = 1\n", 1);
    let server = Server::start(&one, &default_zone());
    assert_eq!(udp_threads(server.pid()), 1, "one worker on one address");
    assert!(!addresses(&server.query_udp("api-contracts", RecordType::A)).is_empty());
    let three = default_config().replacen("[server]\n", "[server]\nudp_workers = 3\n", 1);
    let server = Server::start(&three, &default_zone());
    assert_eq!(udp_threads(server.pid()), 3);
    assert!(!addresses(&server.query_udp("api-contracts", RecordType::A)).is_empty());
}
