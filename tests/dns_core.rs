//! Black-box DNS behaviour of `keiko-dns serve` (docs/reference.md §3) over
//! real UDP and TCP sockets on loopback. Every test runs its own server.

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::rdata::opt::EdnsOption;
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
// Authoritative answers, negative answers, CNAME, case, REFUSED
// ---------------------------------------------------------------------------

#[test]
fn in_zone_answers_are_authoritative_without_recursion() {
    let server = Server::start_default();
    let mut query = Message::query_for(&fqdn("status"), RecordType::A);
    // RD is echoed (RFC 1035), but an authoritative-only server never sets RA.
    query.metadata.recursion_desired = true;
    let answer = server.exchange_udp(&query);
    assert_addresses(&answer, &[ip(STATUS_V4)]);
    assert!(answer.metadata.recursion_desired, "RD echoed");
    assert!(!answer.metadata.recursion_available, "RA clear");
    assert_eq!(answer.queries, query.queries, "question echoed");

    let steered = server.query_udp(FAILOVER_NAME, RecordType::A);
    assert!(steered.metadata.authoritative, "AA on steered answers");
    assert!(
        !steered.metadata.recursion_available,
        "RA clear on steered answers"
    );
}

#[test]
fn nxdomain_carries_the_soa_with_the_negative_ttl() {
    let server = Server::start_default();
    // A name below a steered name does not exist either.
    for name in ["no-such-name", "deep.under.nothing", "x.api-contracts"] {
        for answer in [
            server.query_udp(name, RecordType::A),
            server.query_tcp(name, RecordType::A),
        ] {
            assert_negative(&answer, ResponseCode::NXDomain, NEGATIVE_TTL);
        }
    }
}

#[test]
fn nodata_carries_the_soa() {
    let server = Server::start_default();
    let cases = [
        (FAILOVER_NAME, RecordType::TXT),
        (WEIGHTED_NAME, RecordType::MX),
        (REGION_NAMES[0], RecordType::TXT),
        ("mail", RecordType::AAAA),
        ("status", RecordType::MX),
        ("ns1", RecordType::TXT),
    ];
    for (name, rtype) in cases {
        let answer = server.query_udp(name, rtype);
        assert_negative(&answer, ResponseCode::NoError, NEGATIVE_TTL);
    }
}

#[test]
fn empty_non_terminal_is_nodata_not_nxdomain() {
    let server = Server::start(&default_config(), &zone_with("a.b.c IN A 192.0.2.99"));
    assert_addresses(
        &server.query_udp("a.b.c", RecordType::A),
        &[ip("192.0.2.99")],
    );
    // b.c and c own no records but have a descendant: they exist (RFC 8020).
    for name in ["b.c", "c"] {
        for rtype in [RecordType::A, RecordType::TXT] {
            let answer = server.query_udp(name, rtype);
            assert_negative(&answer, ResponseCode::NoError, NEGATIVE_TTL);
        }
    }
    // A sibling that was never written is still NXDOMAIN.
    let answer = server.query_udp("x.b.c", RecordType::A);
    assert_negative(&answer, ResponseCode::NXDomain, NEGATIVE_TTL);
}

#[test]
fn static_cname_is_chased_inside_the_zone_but_not_into_steered_names() {
    let server = Server::start_default();
    let name = |n: &str| Name::from_ascii(fqdn(n)).unwrap();

    // www -> status: the CNAME and then status's A.
    let www = server.query_udp("www", RecordType::A);
    assert_eq!(
        www.metadata.response_code,
        ResponseCode::NoError,
        "{www:#?}"
    );
    assert!(www.metadata.authoritative);
    assert_eq!(www.answers.len(), 2, "{www:#?}");
    assert_eq!(www.answers[0].name, name("www"));
    assert_eq!(www.answers[0].data, RData::CNAME(CNAME(name("status"))));
    assert_eq!(www.answers[1].name, name("status"));
    assert_eq!(addresses(&www), [ip(STATUS_V4)]);

    // api -> api-contracts: steered answers are per query, so only the CNAME;
    // the resolver asks for api-contracts itself.
    let api = server.query_udp("api", RecordType::A);
    assert_eq!(
        api.metadata.response_code,
        ResponseCode::NoError,
        "{api:#?}"
    );
    assert_eq!(api.answers.len(), 1, "{api:#?}");
    assert_eq!(
        api.answers[0].data,
        RData::CNAME(CNAME(name(FAILOVER_NAME)))
    );

    // Asking for the CNAME itself gives just the CNAME.
    let cname = server.query_udp("www", RecordType::CNAME);
    assert_eq!(cname.answers.len(), 1, "{cname:#?}");
    assert_eq!(cname.answers[0].record_type(), RecordType::CNAME);
}

#[test]
fn names_match_case_insensitively_and_the_question_keeps_its_case() {
    let server = Server::start_default();
    let cases = [
        ("StAtUs.KeIkO.eXaMpLe.CoM.", vec![ip(STATUS_V4)]),
        (
            "API-CONTRACTS.keiko.example.COM.",
            vec![REGIONS[0].v4.into()],
        ),
        (
            "Api-Contracts-Ap-Southeast.Keiko.Example.Com.",
            vec![REGIONS[2].v4.into()],
        ),
    ];
    let client = server.udp();
    for (name, expected) in cases {
        let query = Message::query_for(name, RecordType::A).bytes();
        let raw = client.raw(&query).expect("answer");
        // The question goes back byte for byte as the client wrote it.
        assert_eq!(raw[12..query.len()], query[12..], "question of {name}");
        assert_addresses(&parse(&raw), &expected);
    }
}

#[test]
fn names_outside_the_zone_are_refused() {
    let server = Server::start_default();
    for name in [
        "example.org.",
        "example.com.",
        "com.",
        ".",
        "keiko.example.com.evil.",
    ] {
        for answer in [
            server.query_udp(name, RecordType::A),
            server.query_tcp(name, RecordType::A),
        ] {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name}: {answer:#?}"
            );
            assert!(answer.answers.is_empty(), "{name}: {answer:#?}");
            assert!(
                !answer.metadata.authoritative,
                "{name}: not authoritative: {answer:#?}"
            );
        }
    }
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
// EDNS, truncation, malformed queries, opcodes, ANY
// ---------------------------------------------------------------------------

#[test]
fn edns_is_echoed_with_our_payload_size() {
    let server = Server::start_default();
    for payload in [512, 1232, 4096] {
        let query = Message::query_for(&fqdn("status"), RecordType::A).with_edns(payload);
        let answer = server.exchange_udp(&query);
        assert_addresses(&answer, &[ip(STATUS_V4)]);
        let edns = answer.edns.as_ref().expect("OPT echoed");
        assert_eq!(edns.max_payload(), EDNS_PAYLOAD, "our payload size");
        assert_eq!(edns.version(), 0);
    }
    // No OPT in the query, none in the answer (RFC 6891 section 7).
    let plain = server.query_udp("status", RecordType::A);
    assert!(plain.edns.is_none(), "{plain:#?}");
}

#[test]
fn truncation_honours_the_client_buffer_and_tcp_gets_everything() {
    // `big` (about 850 bytes) fits in our 1232 but not in 512 or 600;
    // `huge` (about 2.3 kB) fits only over TCP.
    let zone = zone_with(&(txt_rrset("big", 7) + &txt_rrset("huge", 20)));
    let server = Server::start(&default_config(), &zone);
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
    assert_truncated(
        &ask("huge", Some(4096)),
        "huge, EDNS 4096 (we send at most 1232)",
    );
    let truncated = ask("huge", Some(4096));
    assert!(truncated.edns.is_some(), "OPT kept in a truncated answer");

    assert_complete(&server.query_tcp("big", RecordType::TXT), 7, "big over TCP");
    assert_complete(
        &server.query_tcp("huge", RecordType::TXT),
        20,
        "huge over TCP",
    );
}

#[test]
fn edns_version_1_gets_badvers() {
    let server = Server::start_default();
    let mut query = Message::query_for(&fqdn("status"), RecordType::A).with_edns(1232);
    query.edns.as_mut().unwrap().set_version(1);
    for answer in [server.exchange_udp(&query), server.exchange_tcp(&query)] {
        assert_eq!(rcode(&answer), 16, "BADVERS: {answer:#?}");
        assert!(answer.answers.is_empty(), "{answer:#?}");
        let edns = answer.edns.as_ref().expect("BADVERS travels in OPT");
        assert_eq!(edns.version(), 0, "we speak EDNS version 0");
    }
}

#[test]
fn malformed_queries_get_formerr() {
    let server = Server::start_default();
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
    let cases: [(&str, Vec<u8>); 6] = [
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
    let client = server.udp();
    for (what, packet) in &cases {
        assert_raw_rcode(client.raw(packet), packet, 1, what);
    }
    // The same over TCP.
    for (what, packet) in &cases {
        let mut stream = tcp_connect(server.dns_addr());
        stream.write_all(&frame(packet)).unwrap();
        assert_raw_rcode(
            read_frame(&mut stream).ok(),
            packet,
            1,
            &format!("TCP: {what}"),
        );
    }
}

#[test]
fn status_and_update_opcodes_get_notimp() {
    let server = Server::start_default();
    let query = Message::query_for(&fqdn("status"), RecordType::A).bytes();
    let client = server.udp();
    for opcode in [
        u8::from(OpCode::Status),
        u8::from(OpCode::Update),
        u8::from(OpCode::Notify),
    ] {
        let packet = with_opcode(query.clone(), opcode);
        let raw = client.raw(&packet);
        assert_raw_rcode(raw.clone(), &packet, 4, &format!("opcode {opcode}"));
        let raw = raw.unwrap();
        assert_eq!((raw[2] >> 3) & 0x0f, opcode, "opcode echoed");
    }
}

#[test]
fn any_is_answered_with_one_rrset() {
    let server = Server::start_default();
    // The apex has SOA, NS, CAA, TXT and MX; status has A and AAAA; the
    // steered names A and AAAA. RFC 8482: one RRset, not all of them.
    for name in ["@", "status", "ns1", FAILOVER_NAME, REGION_NAMES[2]] {
        for answer in [
            server.query_udp(name, RecordType::ANY),
            server.query_tcp(name, RecordType::ANY),
        ] {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{name}"
            );
            assert!(answer.metadata.authoritative, "{name}");
            assert!(
                !answer.answers.is_empty(),
                "{name}: ANY answered: {answer:#?}"
            );
            let types: HashSet<RecordType> =
                answer.answers.iter().map(|r| r.record_type()).collect();
            assert_eq!(types.len(), 1, "{name}: one RRset, got {types:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Steering
// ---------------------------------------------------------------------------

#[test]
fn steered_names_answer_as_the_contract_says() {
    let server = Server::start_default();
    // failover: the healthy region with the lowest priority (all healthy).
    let expectations = std::iter::once((FAILOVER_NAME, &REGIONS[0]))
        .chain(REGION_NAMES.iter().copied().zip(&REGIONS));
    for (name, region) in expectations {
        for rtype in [RecordType::A, RecordType::AAAA] {
            for answer in [server.query_udp(name, rtype), server.query_tcp(name, rtype)] {
                assert_addresses(&answer, &region_addresses(region, rtype));
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
}

#[test]
fn steered_aaaa_is_nodata_for_a_region_without_ipv6_and_ttl_defaults_to_60() {
    let ap = REGIONS[2];
    let config = replace_once(
        &default_config(),
        &format!(r#"addresses = ["{}", "{}"]"#, ap.v4, ap.v6),
        &format!(r#"addresses = ["{}"]"#, ap.v4),
    );
    // The ap-southeast record without a ttl: the default is 60 (reference §2.9).
    let config = replace_once(
        &config,
        "region = \"ap-southeast-1\"\nttl    = 60\n",
        "region = \"ap-southeast-1\"\n",
    );
    let server = Server::start(&config, &default_zone());
    let name = REGION_NAMES[2];
    let a = server.query_udp(name, RecordType::A);
    assert_addresses(&a, &[ap.v4.into()]);
    assert_eq!(a.answers[0].ttl, 60, "default steered TTL");
    let aaaa = server.query_udp(name, RecordType::AAAA);
    assert_negative(&aaaa, ResponseCode::NoError, NEGATIVE_TTL);
}

#[test]
fn ecs_is_echoed_with_scope_zero_when_the_answer_does_not_depend_on_the_client() {
    let server = Server::start_default();
    let client: IpAddr = ip("198.51.100.0");
    for name in [FAILOVER_NAME, REGION_NAMES[1], "status"] {
        let query = Message::query_for(&fqdn(name), RecordType::A).with_subnet(client, 24);
        let answer = server.exchange_udp(&query);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        let subnet = answer_subnet(&answer).unwrap_or_else(|| panic!("{name}: ECS echoed"));
        assert_eq!(
            (subnet.addr(), subnet.source_prefix()),
            (client, 24),
            "{name}"
        );
        assert_eq!(subnet.scope_prefix(), 0, "{name}: same answer for everyone");
    }
}

#[test]
fn invalid_ecs_is_formerr() {
    let server = Server::start_default();
    let query = Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
    // family 1 (IPv4), source prefix 33: longer than an IPv4 address.
    let too_long = EdnsOption::Unknown(8, vec![0, 1, 33, 0, 192, 0, 2, 0, 0]);
    // /24 with a bit set past the prefix (RFC 7871 section 6).
    let stray_bits = EdnsOption::Unknown(8, vec![0, 1, 24, 0, 192, 0, 2, 1]);
    // Unknown address family 3.
    let family = EdnsOption::Unknown(8, vec![0, 3, 8, 0, 10]);
    for option in [too_long, stray_bits, family] {
        let answer = server.exchange_udp(&query.clone().with_option(option.clone()));
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::FormErr,
            "{option:?}"
        );
    }
}

#[test]
fn weighted_answers_follow_the_weights() {
    let server = Server::start_default();
    let got = shares(&server.udp(), WEIGHTED_NAME, 10_000);
    assert_shares(got, weight_shares(&REGIONS), 2.0);
    // AAAA is drawn the same way and comes from the same regions.
    let aaaa = server.query_udp(WEIGHTED_NAME, RecordType::AAAA);
    let v6: Vec<IpAddr> = REGIONS.iter().map(|r| r.v6.into()).collect();
    assert!(addresses(&aaaa).iter().all(|a| v6.contains(a)), "{aaaa:#?}");
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
