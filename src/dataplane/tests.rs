//! DNS behaviour of the answer core, query bytes in, response bytes out.
//!
//! Long on purpose: one case per rule of docs/reference.md §3, each a few
//! lines over the shared fixture; splitting them by file would scatter one
//! table of behaviour.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use rand::SeedableRng;

use super::*;
use crate::testutil;

/// A query on the wire, built by hand so every bit is under the test's control.
struct Q {
    name: String,
    qtype: u16,
    qclass: u16,
    flags: u16,
    edns: Option<(u16, u32, Vec<u8>)>,
    extra: Vec<u8>,
    arcount_extra: u16,
}

fn q(name: &str, qtype: u16) -> Q {
    Q {
        name: name.into(),
        qtype,
        qclass: 1,
        flags: 0x0100,
        edns: None,
        extra: vec![],
        arcount_extra: 0,
    }
}

impl Q {
    fn edns(mut self, payload: u16) -> Q {
        self.edns = Some((payload, 0, vec![]));
        self
    }
    fn ttl(mut self, ttl: u32) -> Q {
        self.edns.get_or_insert((1232, 0, vec![])).1 = ttl;
        self
    }
    fn option(mut self, code: u16, data: &[u8]) -> Q {
        let opts = &mut self.edns.get_or_insert((1232, 0, vec![])).2;
        opts.extend_from_slice(&code.to_be_bytes());
        opts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        opts.extend_from_slice(data);
        self
    }
    fn wire(&self) -> Vec<u8> {
        let mut p = vec![0x12, 0x34];
        p.extend_from_slice(&self.flags.to_be_bytes());
        let ar = u16::from(self.edns.is_some()) + self.arcount_extra;
        for n in [1u16, 0, 0, ar] {
            p.extend_from_slice(&n.to_be_bytes());
        }
        for label in self
            .name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&self.qclass.to_be_bytes());
        p.extend_from_slice(&self.extra);
        if let Some((payload, ttl, opts)) = &self.edns {
            p.extend_from_slice(&[0, 0, 41]);
            p.extend_from_slice(&payload.to_be_bytes());
            p.extend_from_slice(&ttl.to_be_bytes());
            p.extend_from_slice(&(opts.len() as u16).to_be_bytes());
            p.extend_from_slice(opts);
        }
        p
    }
}

struct Fixture {
    snap: Snapshot,
    worker: Worker,
}

/// A worker with a fixed seed, so weighted draws repeat run after run.
fn worker(stats: Arc<Stats>) -> Worker {
    Worker::new(Thread::UdpWorker(0), stats, SmallRng::seed_from_u64(11))
}

fn fixture() -> Fixture {
    let snap = testutil::snapshot();
    Fixture {
        snap,
        worker: worker(Arc::new(Stats::new(2))),
    }
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The time every test answers at (2023-11-14): one second throughout, so
/// nothing (rate limits, cookie ages) depends on when the test runs.
const NOW: u32 = 1_700_000_000;

impl Fixture {
    fn raw(&mut self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(MAX_MESSAGE);
        self.worker
            .answer(&self.snap, NOW, packet, CLIENT, transport, &mut out)
            .then_some(out)
    }
    fn ask(&mut self, query: &Q) -> Message {
        self.ask_on(query, Transport::Udp)
    }
    fn ask_on(&mut self, query: &Q, transport: Transport) -> Message {
        let out = self.raw(&query.wire(), transport).expect("an answer");
        Message::from_vec(&out).expect("response parses")
    }
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn steered_answers_are_authoritative_with_the_record_ttl() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts.keiko.example.com", 1));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert!(m.metadata.recursion_desired, "RD is copied");
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(addresses(&m), vec!["192.0.2.10"]);
    assert_eq!(m.answers[0].ttl, 60);
    let m = f.ask(&q("api-contracts.keiko.example.com", 28));
    assert_eq!(addresses(&m), vec!["2001:db8:10::10"]);
}

#[test]
fn the_question_keeps_the_clients_case() {
    let mut f = fixture();
    let wire = q("API-Contracts.KEIKO.example.COM", 1).wire();
    let out = f.raw(&wire, Transport::Udp).unwrap();
    assert_eq!(&out[12..12 + 33], &wire[12..12 + 33]);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(addresses(&m), vec!["192.0.2.10"]);
    assert_eq!(
        m.answers[0].name.to_string(),
        "API-Contracts.KEIKO.example.COM."
    );
}

#[test]
fn region_without_ipv6_gives_nodata_with_soa() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts-ap-southeast.keiko.example.com", 28));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        m.authorities[0].ttl, 300,
        "negative TTL is min(SOA TTL, MINIMUM)"
    );
}

#[test]
fn other_types_at_steered_names_are_nodata() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts.keiko.example.com", 16));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
}

#[test]
fn unknown_names_are_nxdomain_with_soa() {
    let mut f = fixture();
    let m = f.ask(&q("nope.keiko.example.com", 1));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_string(), "keiko.example.com.");
}

#[test]
fn negative_answers_compress_their_soa_against_any_question() {
    let mut f = fixture();
    for name in [
        "x.keiko.example.com",
        "a-much-longer-label.deep.below.keiko.example.com",
        "below.keiko.example.com",
    ] {
        let wire = q(name, 1).wire();
        let out = f.raw(&wire, Transport::Udp).unwrap();
        let m = Message::from_vec(&out).expect("parses");
        let soa = &m.authorities[0];
        assert_eq!(soa.name.to_string(), "keiko.example.com.", "{name}");
        let RData::SOA(data) = &soa.data else {
            panic!("SOA")
        };
        assert_eq!(data.mname.to_string(), "ns1.keiko.example.com.", "{name}");
        assert_eq!(
            data.rname.to_string(),
            "hostmaster.keiko.example.com.",
            "{name}"
        );
        // Owner, MNAME and RNAME end in pointers: 2 + 10 + 6 + 13 + 20 bytes.
        assert_eq!(out.len(), wire.len() + 51, "{name}");
    }
}

#[test]
fn empty_non_terminals_are_nodata() {
    let mut f = fixture();
    let m = f.ask(&q("below.keiko.example.com", 1));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn names_outside_the_zone_are_refused() {
    let mut f = fixture();
    for name in [
        "example.com",
        "keiko.example.org",
        "xkeiko.example.com",
        ".",
    ] {
        let m = f.ask(&q(name, 1));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative);
    }
}

#[test]
fn static_cname_is_followed_inside_the_zone() {
    let mut f = fixture();
    let m = f.ask(&q("www.keiko.example.com", 1));
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, vec![RecordType::CNAME, RecordType::A]);
    assert_eq!(addresses(&m), vec!["192.0.2.80"]);
    // A CNAME to a steered name stops there, so the steered answer stays live.
    let m = f.ask(&q("api.keiko.example.com", 1));
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, vec![RecordType::CNAME]);
    // The CNAME itself.
    let m = f.ask(&q("www.keiko.example.com", 5));
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn ns_answers_carry_glue() {
    let mut f = fixture();
    let m = f.ask(&q("keiko.example.com", 2));
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.additionals.len(), 2);
}

#[test]
fn any_is_answered_minimally() {
    let mut f = fixture();
    let m = f.ask(&q("keiko.example.com", 255));
    let types: std::collections::BTreeSet<RecordType> =
        m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset");
    let m = f.ask(&q("api-contracts.keiko.example.com", 255));
    assert_eq!(addresses(&m), vec!["192.0.2.10"]);
}

#[test]
fn edns_is_echoed_with_our_payload_size_and_do_bit() {
    let mut f = fixture();
    let m = f.ask(
        &q("api-contracts.keiko.example.com", 1)
            .edns(4096)
            .ttl(0x8000),
    );
    let edns = m.edns.expect("OPT in response");
    assert_eq!(edns.max_payload(), EDNS_PAYLOAD);
    assert!(edns.flags().dnssec_ok);
    assert_eq!(edns.version(), 0);
    let m = f.ask(&q("api-contracts.keiko.example.com", 1));
    assert!(m.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn unknown_edns_flags_are_not_echoed() {
    let mut f = fixture();
    let out = f
        .raw(
            &q("api-contracts.keiko.example.com", 1).ttl(0x0040).wire(),
            Transport::Udp,
        )
        .unwrap();
    let opt_ttl = &out[out.len() - 6..out.len() - 2];
    assert_eq!(opt_ttl, &[0, 0, 0, 0]);
}

#[test]
fn edns_version_above_zero_is_badvers() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts.keiko.example.com", 1).ttl(1 << 16));
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert!(m.answers.is_empty());
    assert_eq!(m.edns.unwrap().version(), 0);
}

#[test]
fn big_answers_are_truncated_to_the_clients_size() {
    let mut f = fixture();
    let m = f.ask(&q("big.keiko.example.com", 16));
    assert!(m.metadata.truncation, "over 512 bytes without EDNS");
    assert!(m.answers.is_empty());
    let out = f
        .raw(
            &q("big.keiko.example.com", 16).edns(4096).wire(),
            Transport::Udp,
        )
        .unwrap();
    assert!(out.len() <= 1232);
    let m = Message::from_vec(&out).unwrap();
    assert!(m.metadata.truncation, "capped at 1232");
    assert!(m.edns.is_some(), "OPT survives truncation");
    let m = f.ask_on(&q("big.keiko.example.com", 16), Transport::Tcp);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn small_edns_sizes_are_raised_to_512() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts.keiko.example.com", 1).edns(100));
    assert!(!m.metadata.truncation);
}

#[test]
fn other_opcodes_are_notimp() {
    let mut f = fixture();
    let mut query = q("api-contracts.keiko.example.com", 1);
    query.flags = 0x0100 | (2 << 11);
    let m = f.ask(&query);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert!(m.answers.is_empty());
    assert!(!m.metadata.recursion_desired, "RD is only for QUERY");
    assert!(!m.metadata.authoritative);
}

/// Header bits of a response (the second header word).
fn flags_of(out: &[u8]) -> u16 {
    u16::from_be_bytes([out[2], out[3]])
}

/// A header-only message: ID 0x1234, `flags`, and `qd` questions announced
/// but none present.
fn header_only(flags: u16, qd: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34];
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&qd.to_be_bytes());
    p.extend_from_slice(&[0; 6]);
    p
}

/// What the ISC DNS compliance checker accepts as a refusal of an opcode:
/// NOTIMP, the opcode and ID echoed, QR set and every other bit clear, and
/// no records beyond the echoed question and OPT.
fn assert_clean_notimp(out: &[u8], opcode: u16, what: &str) {
    let flags = flags_of(out);
    assert_eq!(&out[..2], &[0x12, 0x34], "{what}: ID echoed");
    assert_eq!(
        flags,
        0x8000 | (opcode << 11) | 4,
        "{what}: QR, opcode and NOTIMP only (flags {flags:#06x})"
    );
    assert_eq!(&out[6..10], &[0, 0, 0, 0], "{what}: no answer or authority");
}

#[test]
fn notimp_clears_rd_cd_and_aa_whatever_the_query_set() {
    let mut f = fixture();
    // genreport's "opcodeflg": opcode 15, header only, with TC, RD, RA,
    // CD, AD, AA and Z all set.
    let every_flag = 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010;
    let out = f
        .raw(&header_only((15 << 11) | every_flag, 0), Transport::Udp)
        .expect("an answer");
    assert_clean_notimp(&out, 15, "opcode 15 with every flag");
    assert_eq!(out.len(), 12, "header only, as asked");
    // With a question, to an in-zone name that QUERY would answer with AA.
    for opcode in [1u16, 2, 4, 5, 6, 15] {
        let mut query = q("api-contracts.keiko.example.com", 1);
        query.flags = (opcode << 11) | every_flag;
        let wire = query.wire();
        let out = f.raw(&wire, Transport::Udp).expect("an answer");
        assert_clean_notimp(&out, opcode, &format!("opcode {opcode}"));
        assert_eq!(&out[12..wire.len()], &wire[12..], "question echoed");
        assert_eq!(out.len(), wire.len(), "nothing after the question");
    }
}

#[test]
fn unknown_opcodes_are_notimp_whatever_qdcount_is() {
    let mut f = fixture();
    // QDCOUNT 0 (FORMERR for QUERY without a cookie), 1 with no question
    // present, and 2: NOTIMP each time, over both transports.
    for transport in [Transport::Udp, Transport::Tcp] {
        for qd in [0u16, 1, 2, 0xffff] {
            let out = f
                .raw(&header_only((15 << 11) | 0x0100, qd), transport)
                .expect("an answer");
            assert_clean_notimp(&out, 15, &format!("QDCOUNT {qd} over {transport:?}"));
            assert_eq!(&out[4..6], &[0, 0], "no question to echo");
        }
    }
    // Two readable questions, and an OPT record in the question.
    let mut two = q("api-contracts.keiko.example.com", 1).wire();
    two[5] = 2;
    two[2] |= 5 << 3;
    assert_clean_notimp(&f.raw(&two, Transport::Udp).unwrap(), 5, "QDCOUNT 2");
    let mut opt_question = q("keiko.example.com", TYPE_OPT);
    opt_question.flags = 4 << 11;
    let out = f.raw(&opt_question.wire(), Transport::Udp).unwrap();
    assert_clean_notimp(&out, 4, "OPT as the question type");
    // The same queries with opcode QUERY keep their FORMERR.
    let out = f.raw(&header_only(0x0100, 0), Transport::Udp).unwrap();
    assert_eq!(flags_of(&out) & 0xf, 1, "QUERY without a question: FORMERR");
    assert_ne!(flags_of(&out) & 0x0100, 0, "FORMERR to QUERY copies RD");
    let mut two = q("api-contracts.keiko.example.com", 1).wire();
    two[5] = 2;
    assert_eq!(flags_of(&f.raw(&two, Transport::Udp).unwrap()) & 0xf, 1);
}

#[test]
fn notimp_keeps_the_edns_rules() {
    let mut f = fixture();
    // OPT in the query: OPT in the answer, the NSID and cookie as for any
    // answer; an EDNS version above 0 is still BADVERS.
    let mut query = q("api-contracts.keiko.example.com", 1)
        .option(3, &[])
        .option(10, b"abcdefgh");
    query.flags = (2 << 11) | 0x0110;
    let out = f.raw(&query.wire(), Transport::Udp).unwrap();
    assert_clean_notimp(&out, 2, "opcode 2 with EDNS");
    let m = Message::from_vec(&out).unwrap();
    let edns = m.edns.as_ref().expect("OPT iff asked");
    assert!(
        edns.option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
            .is_some()
    );
    let mut query = q("api-contracts.keiko.example.com", 1).ttl(1 << 16);
    query.flags = 2 << 11;
    let m = Message::from_vec(&f.raw(&query.wire(), Transport::Udp).unwrap()).unwrap();
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    // Header only with a cookie and an unknown opcode: NOTIMP, not the
    // cookie exchange QUERY gets.
    let mut p = header_only(15 << 11, 0);
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
    p.extend_from_slice(b"abcdefgh");
    let out = f.raw(&p, Transport::Udp).unwrap();
    assert_clean_notimp(&out, 15, "header-only cookie query, opcode 15");
    // NOTIMP is counted as such.
    let row = f.worker.row();
    let notimp = row.responses[stats::RCODES.iter().position(|r| *r == "NOTIMP").unwrap()]
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(notimp >= 2, "NOTIMP counted: {notimp}");
}

#[test]
fn malformed_queries_are_formerr_or_dropped() {
    let mut f = fixture();
    assert!(
        f.raw(&[1, 2, 3], Transport::Udp).is_none(),
        "too short to answer"
    );
    let mut response = q("api-contracts.keiko.example.com", 1).wire();
    response[2] |= 0x80;
    assert!(
        f.raw(&response, Transport::Udp).is_none(),
        "responses are never answered"
    );

    let wire = q("api-contracts.keiko.example.com", 1).wire();
    let out = f.raw(&wire[..wire.len() - 3], Transport::Udp).unwrap();
    assert_eq!(out[3] & 0xf, 1, "truncated question: FORMERR");
    assert_eq!(&out[..2], &[0x12, 0x34]);

    let mut two = wire.clone();
    two[5] = 2;
    let out = f.raw(&two, Transport::Udp).unwrap();
    assert_eq!(out[3] & 0xf, 1, "QDCOUNT 2: FORMERR");

    let mut pointer = wire[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let out = f.raw(&pointer, Transport::Udp).unwrap();
    assert_eq!(out[3] & 0xf, 1, "compression loop in question: FORMERR");

    let two_opts = q("api-contracts.keiko.example.com", 1).edns(1232);
    let mut w = two_opts.wire();
    let opt = w[w.len() - 11..].to_vec();
    w.extend_from_slice(&opt);
    w[11] = 2;
    let out = f.raw(&w, Transport::Udp).unwrap();
    let m = Message::from_vec(&out);
    assert_eq!(out[3] & 0xf, 1, "two OPT records: FORMERR ({m:?})");
}

#[test]
fn qtype_opt_in_question_is_formerr() {
    let mut f = fixture();
    let out = f
        .raw(&q("keiko.example.com", 41).wire(), Transport::Udp)
        .unwrap();
    assert_eq!(out[3] & 0xf, 1);
}

#[test]
fn chaos_queries_answer_from_config() {
    let mut f = fixture();
    let mut version = q("version.bind", 16);
    version.qclass = 3;
    let out = f.raw(&version.wire(), Transport::Udp).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(String::from_utf8_lossy(&out).contains("keiko-dns test"));
    let mut other = q("authors.bind", 16);
    other.qclass = 3;
    assert_eq!(f.ask(&other).metadata.response_code, ResponseCode::Refused);
    let mut hesiod = q("api-contracts.keiko.example.com", 1);
    hesiod.qclass = 4;
    assert_eq!(f.ask(&hesiod).metadata.response_code, ResponseCode::Refused);
}

#[test]
fn nsid_is_sent_when_asked() {
    let mut f = fixture();
    let out = f
        .raw(
            &q("keiko.example.com", 6).option(3, &[]).wire(),
            Transport::Udp,
        )
        .unwrap();
    assert!(out.windows(8).any(|w| w == b"ns1.test"));
    let out = f
        .raw(&q("keiko.example.com", 6).edns(1232).wire(), Transport::Udp)
        .unwrap();
    assert!(!out.windows(8).any(|w| w == b"ns1.test"));
}

#[test]
fn unknown_edns_options_are_ignored() {
    let mut f = fixture();
    let m = f.ask(&q("api-contracts.keiko.example.com", 1).option(65001, b"xyz"));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), vec!["192.0.2.10"]);
}

#[test]
fn ecs_is_echoed_with_scope_zero_for_client_independent_answers() {
    let mut f = fixture();
    let ecs = [0, 1, 24, 0, 81, 2, 69];
    let out = f
        .raw(
            &q("api-contracts.keiko.example.com", 1)
                .option(8, &ecs)
                .wire(),
            Transport::Udp,
        )
        .unwrap();
    let tail = &out[out.len() - 11..];
    assert_eq!(tail, &[0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69]);
}

#[test]
fn invalid_ecs_is_formerr() {
    let mut f = fixture();
    for (ecs, why) in [
        (vec![0, 1, 33, 0, 1, 2, 3, 4, 5], "prefix too long for IPv4"),
        (vec![0, 1, 20, 0, 81, 2, 69], "bits set past the prefix"),
        (vec![0, 3, 8, 0, 1], "unknown family"),
        (vec![0, 1, 24, 0, 81, 2], "address too short"),
        (vec![0, 2, 129, 0], "prefix too long for IPv6"),
        (vec![0, 1, 24], "no scope byte"),
        (vec![0, 2], "no prefixes"),
        (vec![], "empty"),
    ] {
        let out = f
            .raw(
                &q("api-contracts.keiko.example.com", 1)
                    .option(8, &ecs)
                    .wire(),
                Transport::Udp,
            )
            .unwrap();
        assert_eq!(out[3] & 0xf, 1, "{why}");
    }
}

#[test]
fn weighted_shares_follow_the_weights() {
    let mut f = fixture();
    let mut counts = std::collections::HashMap::new();
    let wire = q("api-contracts-weighted.keiko.example.com", 1).wire();
    for _ in 0..20_000 {
        let out = f.raw(&wire, Transport::Udp).unwrap();
        let m = Message::from_vec(&out).unwrap();
        *counts.entry(addresses(&m)[0].clone()).or_insert(0u32) += 1;
    }
    let share = |ip: &str| f64::from(counts[ip]) / 200.0;
    assert!((share("192.0.2.10") - 40.0).abs() < 2.0, "{counts:?}");
    assert!((share("198.51.100.10") - 40.0).abs() < 2.0, "{counts:?}");
    assert!((share("203.0.113.10") - 20.0).abs() < 2.0, "{counts:?}");
}

#[test]
fn counters_move_with_traffic() {
    let mut f = fixture();
    f.ask(&q("api-contracts.keiko.example.com", 1));
    f.ask(&q("nope.keiko.example.com", 1));
    let totals = f.worker.steer.stats.totals();
    assert_eq!(totals.udp, 2);
    assert_eq!(totals.responses[Rcode::NoError as usize], 1);
    assert_eq!(totals.responses[Rcode::NxDomain as usize], 1);
    let answered: u64 = f
        .snap
        .compiled
        .counters
        .totals()
        .iter()
        .filter(|(rec, reg, _)| *rec == "api-contracts" && *reg == "us-east-1")
        .map(|t| t.2)
        .sum();
    assert_eq!(answered, 1);
}

fn cookie_option(out: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(out).ok()?;
    let edns = m.edns?;
    let raw = edns.options().as_ref().iter().find_map(|(code, opt)| {
        (u16::from(*code) == 10).then(|| {
            let mut buf = Vec::new();
            let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut buf);
            hickory_proto::serialize::binary::BinEncodable::emit(opt, &mut enc).ok()?;
            Some(buf)
        })
    });
    raw.flatten()
}

#[test]
fn a_client_cookie_gets_a_server_cookie_back_and_it_is_recognised() {
    let mut f = fixture();
    let out = f
        .raw(
            &q("api-contracts.keiko.example.com", 1)
                .option(10, b"abcdefgh")
                .wire(),
            Transport::Udp,
        )
        .unwrap();
    let tail = &out[out.len() - 28..];
    assert_eq!(
        &tail[..4],
        &[0, 10, 0, 24],
        "COOKIE option with 8 + 16 bytes"
    );
    assert_eq!(&tail[4..12], b"abcdefgh", "client cookie echoed");
    assert_eq!(tail[12], 1, "RFC 9018 version 1");
    let full = tail[4..].to_vec();
    // Sent back: still NOERROR, and trusted (checked through rate limiting below).
    let m = f.ask(&q("api-contracts.keiko.example.com", 1).option(10, &full));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        cookie_option(
            &f.raw(
                &q("keiko.example.com", 6).option(10, &full).wire(),
                Transport::Udp
            )
            .unwrap()
        )
        .is_some()
    );
}

#[test]
fn malformed_cookies_are_formerr_and_bad_server_cookies_are_just_replaced() {
    let mut f = fixture();
    let out = f
        .raw(
            &q("keiko.example.com", 6).option(10, b"short").wire(),
            Transport::Udp,
        )
        .unwrap();
    assert_eq!(out[3] & 0xf, 1, "a 5-byte cookie is FORMERR");
    let mut forged = b"abcdefgh".to_vec();
    forged.extend_from_slice(&[1, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8]);
    let m = f.ask(&q("keiko.example.com", 6).option(10, &forged));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "no BADCOOKIE without a policy that needs it"
    );
}

#[test]
fn a_cookie_only_query_without_a_question_is_answered() {
    let mut f = fixture();
    let mut p = vec![0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    p.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
    p.extend_from_slice(b"abcdefgh");
    let out = f.raw(&p, Transport::Udp).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.queries.is_empty());
    assert_eq!(&out[out.len() - 24..out.len() - 16], b"abcdefgh");
    // Without a cookie, no question is still FORMERR.
    let out = f
        .raw(&[0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Transport::Udp)
        .unwrap();
    assert_eq!(out[3] & 0xf, 1);
}

#[test]
fn tsig_with_an_unknown_key_is_notauth_badkey() {
    let mut f = fixture();
    let mut query = q("api-contracts.keiko.example.com", 1);
    // key name "k.", algorithm "hmac-sha256.", time, fudge, MAC of 32 bytes, id, error, other.
    let mut rdata = vec![11];
    rdata.extend_from_slice(b"hmac-sha256");
    rdata.push(0);
    rdata.extend_from_slice(&[0, 0, 0x6a, 0, 0, 0, 1, 44]);
    rdata.extend_from_slice(&[0, 32]);
    rdata.extend_from_slice(&[7; 32]);
    rdata.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
    query.extra = vec![1, b'k', 0, 0, 250, 0, 255, 0, 0, 0, 0];
    query
        .extra
        .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    query.extra.extend_from_slice(&rdata);
    query.arcount_extra = 1;
    let out = f.raw(&query.wire(), Transport::Udp).unwrap();
    assert_eq!(out[3] & 0xf, 9, "NOTAUTH");
    let m = Message::from_vec(&out).expect("parses");
    let tsig_name = m
        .signature
        .as_ref()
        .map(|t| t.name.to_string())
        .or_else(|| {
            m.additionals
                .iter()
                .find(|r| r.record_type() == RecordType::TSIG)
                .map(|r| r.name.to_string())
        });
    assert_eq!(
        tsig_name.as_deref(),
        Some("k."),
        "a TSIG record comes back: {m:?}"
    );
    assert!(
        out.ends_with(&[0x12, 0x34, 0, 17, 0, 0]),
        "error BADKEY, no other data"
    );
}

#[test]
fn rate_limiting_drops_and_slips_but_spares_cookie_holders() {
    let mut config = testutil::CONFIG.to_string();
    config.push_str(
        "\n[rate_limit]\nresponses_per_second = 5\nslip = 2\nexempt = [\"10.0.0.0/8\"]\n",
    );
    let snap = Snapshot::new(
        testutil::compiled_from(&config, testutil::ZONE),
        vec![true; 3],
        1,
    );
    let stats = Arc::new(Stats::new(1));
    let mut worker = worker(stats.clone());
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let attacker: IpAddr = "198.51.100.7".parse().unwrap();
    let wire = q("api-contracts.keiko.example.com", 1).edns(1232).wire();
    let mut sent = 0;
    let mut slipped = 0;
    for _ in 0..25 {
        if worker.answer(&snap, NOW, &wire, attacker, Transport::Udp, &mut out) {
            sent += 1;
            if out[2] & 0x02 != 0 {
                slipped += 1;
            }
        }
    }
    assert_eq!(sent - slipped, 5, "the rate");
    assert_eq!(slipped, 10, "every second drop is sent truncated");
    let t = stats.totals();
    assert_eq!((t.rate_limited, t.slipped), (10, 10));
    // TCP is never limited; exempt networks are not either.
    assert!(worker.answer(&snap, NOW, &wire, attacker, Transport::Tcp, &mut out));
    assert_eq!(out[2] & 0x02, 0);
    let friend: IpAddr = "10.1.2.3".parse().unwrap();
    for _ in 0..20 {
        assert!(worker.answer(&snap, NOW, &wire, friend, Transport::Udp, &mut out));
        assert_eq!(out[2] & 0x02, 0);
    }
    // A client with a valid server cookie is trusted.
    let first = q("api-contracts.keiko.example.com", 1)
        .option(10, b"abcdefgh")
        .wire();
    let resolver: IpAddr = "192.0.2.200".parse().unwrap();
    assert!(worker.answer(&snap, NOW, &first, resolver, Transport::Udp, &mut out));
    let cookie = out[out.len() - 24..].to_vec();
    let returning = q("api-contracts.keiko.example.com", 1)
        .option(10, &cookie)
        .wire();
    for _ in 0..50 {
        assert!(worker.answer(&snap, NOW, &returning, resolver, Transport::Udp, &mut out));
        assert_eq!(out[2] & 0x02, 0, "never truncated");
    }
}
