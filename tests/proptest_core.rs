//! Property tests of the answer core (`Worker::answer`): generated and
//! mutated packets go in, and every answer must keep the invariants of
//! `fuzz/src/check.rs` (shared with the fuzz targets):
//!
//! - no panic;
//! - no answer only when the packet is shorter than 12 bytes or has QR set;
//! - the answer parses (`hickory_proto::op::Message::from_vec`);
//! - ID copied, QR set, opcode copied, Z and AD clear;
//! - the question echoed byte for byte (case preserved) when the query had a
//!   readable one; QDCOUNT > 1 is FORMERR;
//! - on UDP the size fits the client's limit (512 without EDNS, else the
//!   advertised payload clamped to 512..=1232); on TCP it fits 65535;
//! - OPT: version 0, only DO among the flags (DO echoed), only NSID, ECS
//!   and COOKIE options and only when asked; the server cookie carries the
//!   client cookie;
//! - ECS echoed (family, source prefix and address bytes equal), scope at
//!   most the family maximum, scope 0 when the source prefix is 0; a valid
//!   ECS is always echoed unless the answer is FORMERR.
//!
//! Count per `cargo test` run: 40,000 arbitrary byte strings (seeded
//! SplitMix64 expansion, half behind a plausible header), 20,000 structured
//! queries and 40,000 mutants (two per generated structured query, 1-3
//! byte-level mutations each): 100,000 packets, each answered over UDP and
//! over TCP (200,000 answers checked). The regression tests at the end pin bugs found by
//! fuzzing (see docs/fuzzing.md).

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../fuzz/src/check.rs"]
mod check;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use keiko_dns::control::load;
use keiko_dns::dataplane::{Stats, Thread, Transport, Worker};
use keiko_dns::snapshot::{Compiled, Snapshot};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config as ProptestConfig;
use rand::SeedableRng;
use rand::rngs::SmallRng;

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// The default deployment (`zones/keiko.toml`: GeoIP, residency, NSID),
/// with eu-west-1 down.
fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml");
        let loaded = load(&config).expect("default config loads");
        let compiled =
            Compiled::build(loaded.config, loaded.zone, loaded.geo, 1).expect("compiles");
        Snapshot::new(Arc::new(compiled), vec![true, false, true], 1)
    })
}

thread_local! {
    static WORKER: RefCell<(Worker, Vec<u8>)> =
        RefCell::new((worker(), Vec::with_capacity(65535)));
}

fn worker() -> Worker {
    let rng = SmallRng::seed_from_u64(5);
    Worker::new(Thread::UdpWorker(0), Arc::new(Stats::new(1)), rng)
}

/// Unix time every query is answered at.
const NOW: u32 = 1_700_000_000;

/// The answer (if any) to `packet` from `client` over `transport`.
fn answer(packet: &[u8], client: IpAddr, transport: Transport) -> Option<Vec<u8>> {
    WORKER.with_borrow_mut(|(w, out)| {
        w.answer(snapshot(), NOW, packet, client, transport, out)
            .then(|| out.clone())
    })
}

/// Answers over UDP and TCP and checks every invariant.
fn check_both(packet: &[u8], client: IpAddr) {
    for (transport, udp) in [(Transport::Udp, true), (Transport::Tcp, false)] {
        let r = answer(packet, client, transport);
        check::check(packet, r.as_deref(), udp);
    }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

const ZONE_NAMES: &[&str] = &[
    "",
    "ns1",
    "NS1",
    "www",
    "api-contracts",
    "Api-Contracts",
    "api-contracts-geo",
    "api-contracts-weighted",
    "api-contracts-us-east",
    "api-contracts-eu-west",
    "api-contracts-ap-southeast",
    "missing",
    "deep.missing",
];
const TYPES: &[u16] = &[1, 2, 5, 6, 15, 16, 28, 41, 250, 251, 252, 255, 65000, 0];
const CLASSES: &[u16] = &[1, 1, 1, 3, 4, 254, 255, 0];

fn wire_name(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    for l in labels {
        let l = &l[..l.len().min(63)];
        if !l.is_empty() {
            p.push(l.len() as u8);
            p.extend_from_slice(l);
        }
    }
    p.push(0);
    p
}

fn under(prefix: &str, suffix: &str) -> Vec<Vec<u8>> {
    prefix
        .split('.')
        .chain(suffix.split('.'))
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => select(ZONE_NAMES).prop_map(|n| wire_name(&under(n, "keiko.example.com"))),
        1 => select(ZONE_NAMES).prop_map(|n| wire_name(&under(n, "KEIKO.Example.COM"))),
        2 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5).prop_map(
            |mut ls| {
                ls.extend(under("", "keiko.example.com"));
                wire_name(&ls)
            }
        ),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 3..6)
            .prop_map(|ls| wire_name(&ls)),
        1 => select(&["example.org", "com", "", "keiko.example.com.evil", "example.com"][..])
            .prop_map(|n| wire_name(&under(n, ""))),
        1 => select(&["version.bind", "id.server", "hostname.bind", "version.server", "x.bind"][..])
            .prop_map(|n| wire_name(&under(n, ""))),
    ]
}

fn option(v6: bool) -> impl Strategy<Value = Vec<u8>> {
    let opt = |code: u16, v: Vec<u8>| {
        let mut o = code.to_be_bytes().to_vec();
        o.extend_from_slice(&(v.len() as u16).to_be_bytes());
        o.extend(v);
        o
    };
    prop_oneof![
        2 => Just(opt(3, vec![])),
        1 => prop::collection::vec(any::<u8>(), 1..8).prop_map(move |v| opt(3, v)),
        // A valid ECS option: address masked to the source prefix.
        4 => (any::<bool>(), any::<u8>(), 0u8..=130, any::<[u8; 16]>()).prop_map(
            move |(flip, source, scope, addr)| {
                let v6 = v6 ^ flip;
                let max = if v6 { 128 } else { 32 };
                let source = source % (max + 1);
                let n = (source as usize).div_ceil(8);
                let mut a = addr[..n].to_vec();
                if source % 8 != 0 {
                    a[n - 1] &= 0xffu8 << (8 - source % 8);
                }
                let mut v = vec![0, if v6 { 2 } else { 1 }, source, scope % 4];
                v.extend(a);
                opt(8, v)
            }
        ),
        2 => prop::collection::vec(any::<u8>(), 0..22).prop_map(move |v| opt(8, v)),
        2 => any::<[u8; 8]>().prop_map(move |c| opt(10, c.to_vec())),
        2 => (any::<[u8; 8]>(), prop::collection::vec(any::<u8>(), 8..=32))
            .prop_map(move |(c, s)| opt(10, [&c[..], &s].concat())),
        1 => prop::collection::vec(any::<u8>(), 0..44).prop_map(move |v| opt(10, v)),
        1 => prop::collection::vec(any::<u8>(), 0..5).prop_map(move |v| opt(9, v)),
        1 => (0u16..200).prop_map(move |n| opt(12, vec![0; n as usize])),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(move |(c, v)| opt(c, v)),
    ]
}

/// An OPT record: payload, version, DO, other flags, options.
fn opt_record(v6: bool) -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            select(&[0u16, 1, 511, 512, 513, 1232, 1233, 4096, 65535][..]),
            any::<u16>()
        ],
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => any::<u8>()],
        any::<bool>(),
        prop_oneof![4 => Just(0u16), 1 => any::<u16>()],
        prop::collection::vec(option(v6), 0..4),
    )
        .prop_map(|(payload, version, dnssec_ok, other, options)| {
            let mut p = vec![0, 0, 41];
            p.extend_from_slice(&payload.to_be_bytes());
            let flags = (other & 0x7fff) | if dnssec_ok { 0x8000 } else { 0 };
            p.extend_from_slice(&[0, version]);
            p.extend_from_slice(&flags.to_be_bytes());
            let options = options.concat();
            p.extend_from_slice(&(options.len() as u16).to_be_bytes());
            p.extend(options);
            p
        })
}

/// A TSIG record with a well-formed owner and algorithm name.
fn tsig_record() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(b'a'..=b'z', 1..63), 1..4),
        prop::collection::vec(prop::collection::vec(b'a'..=b'z', 1..63), 1..4),
    )
        .prop_map(|(owner, algorithm)| {
            let mut p = wire_name(&owner);
            p.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
            let mut rdata = wire_name(&algorithm);
            rdata.extend_from_slice(&[0, 0, 0x6a, 0, 0, 0, 1, 44, 0, 4, 1, 2, 3, 4]);
            rdata.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend(rdata);
            p
        })
}

#[derive(Debug, Clone)]
struct Structured {
    packet: Vec<u8>,
    client: IpAddr,
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

/// A query as a client could write it: header, 0..=2 questions, junk
/// answer/authority records, OPT, other additional records, TSIG.
fn structured() -> impl Strategy<Value = Structured> {
    (
        any::<u16>(),
        prop_oneof![
            6 => Just(0x0100u16),
            1 => Just(0u16),
            1 => Just(0x0110u16),
            1 => Just(0x0160u16),
            1 => (0u16..16).prop_map(|op| op << 11),
            2 => any::<u16>().prop_map(|f| f & 0x7fff),
        ],
        prop_oneof![8 => Just(1usize), 1 => Just(0usize), 1 => Just(2usize)],
        name(),
        prop_oneof![3 => select(TYPES), 1 => any::<u16>()],
        prop_oneof![3 => select(CLASSES), 1 => any::<u16>()],
        (0usize..3, 0usize..2),
        prop_oneof![2 => Just(None), 5 => (any::<bool>()).prop_flat_map(opt_record).prop_map(Some)],
        prop_oneof![
            10 => Just(Vec::<u8>::new()),
            1 => Just(vec![0xc0, 0x00, 0, 1, 0, 1, 0, 0, 0, 60, 0, 0]), // loop-ish pointer to header
            1 => Just(vec![0xff, 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 0]), // pointer past the end
            1 => Just(vec![0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]),        // second OPT
        ],
        prop_oneof![6 => Just(None), 1 => tsig_record().prop_map(Some)],
        client(),
    )
        .prop_map(
            |(id, flags, qd, qname, qtype, qclass, (an, ns), opt, extra, tsig, client)| {
                let mut p = id.to_be_bytes().to_vec();
                p.extend_from_slice(&flags.to_be_bytes());
                p.extend_from_slice(&[0; 8]);
                for _ in 0..qd {
                    p.extend_from_slice(&qname);
                    p.extend_from_slice(&qtype.to_be_bytes());
                    p.extend_from_slice(&qclass.to_be_bytes());
                }
                let a = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
                for _ in 0..an + ns {
                    p.extend_from_slice(&a);
                }
                let mut ar = 0u16;
                if !extra.is_empty() {
                    p.extend(extra);
                    ar += 1;
                }
                if let Some(o) = opt {
                    p.extend(o);
                    ar += 1;
                }
                if let Some(t) = tsig {
                    p.extend(t);
                    ar += 1;
                }
                let counts = [qd as u16, an as u16, ns as u16, ar];
                for (i, n) in counts.into_iter().enumerate() {
                    p[4 + 2 * i..6 + 2 * i].copy_from_slice(&n.to_be_bytes());
                }
                Structured { packet: p, client }
            },
        )
}

/// SplitMix64: cheap, seeded randomness for bulk bytes and mutations
/// (proptest's per-byte value trees are too slow in debug for 100k cases).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Arbitrary bytes from a seed: mostly uniform, sometimes behind a
/// plausible header (QR clear, small counts) so they reach the parser.
fn random_packet(seed: u64, len: usize) -> Vec<u8> {
    let mut m = Mix(seed);
    let mut p = m.bytes(len);
    if len >= 12 && seed.is_multiple_of(2) {
        p[2] &= 0x7f;
        for i in 0..4 {
            p[4 + 2 * i] = 0;
            p[5 + 2 * i] = (m.next() % 3) as u8;
        }
    }
    p
}

/// One to three byte-level mutations chosen by `seed`.
fn mutate(p: &mut Vec<u8>, seed: u64) {
    let mut m = Mix(seed);
    for _ in 0..1 + m.below(3) {
        let len = p.len();
        match m.below(6) {
            0 if len > 0 => {
                let at = m.below(len);
                p[at] ^= 1 << m.below(8);
            }
            1 if len > 0 => {
                let at = m.below(len);
                p[at] = m.next() as u8;
            }
            2 => p.truncate(m.below(len + 1)),
            3 => {
                let at = m.below(len + 1);
                let n = 1 + m.below(8);
                let bytes = m.bytes(n);
                p.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = m.below(len);
                let end = (at + 1 + m.below(8)).min(len);
                p.drain(at..end);
            }
            5 if len >= 12 => {
                let i = 4 + 2 * m.below(4);
                let v = if m.next().is_multiple_of(2) {
                    m.below(4) as u16
                } else {
                    m.next() as u16
                };
                p[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Regressions are pinned as explicit tests below, not in files.
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(40_000))]
    #[test]
    fn arbitrary_bytes(seed in any::<u64>(), len in 0usize..700, client in client()) {
        check_both(&random_packet(seed, len), client);
    }
}

proptest! {
    #![proptest_config(config(20_000))]
    #[test]
    fn structured_queries(q in structured()) {
        check_both(&q.packet, q.client);
    }
}

proptest! {
    #![proptest_config(config(20_000))]
    #[test]
    fn mutated_queries(q in structured(), seed in any::<u64>()) {
        // Two mutants of each generated query.
        for s in [seed, !seed] {
            let mut p = q.packet.clone();
            mutate(&mut p, s);
            check_both(&p, q.client);
        }
    }
}

// ---------------------------------------------------------------------------
// Regression tests: bugs found by fuzzing (docs/fuzzing.md). Each runs the
// reproducer through the core and checks the invariants.
// ---------------------------------------------------------------------------

/// Answers `packet` on both transports; panics on a broken invariant.
fn regression(packet: &[u8]) {
    for (transport, udp) in [(Transport::Udp, true), (Transport::Tcp, false)] {
        let r = answer(packet, IpAddr::V4(Ipv4Addr::LOCALHOST), transport);
        check::check(packet, r.as_deref(), udp);
    }
}

fn rcode_of(packet: &[u8], transport: Transport) -> u16 {
    let r = answer(packet, IpAddr::V4(Ipv4Addr::LOCALHOST), transport).expect("an answer");
    check::rcode(&check::read(&r).unwrap())
}

/// `name` (dotted, no trailing dot) in wire form.
fn wire(name: &str) -> Vec<u8> {
    wire_name(
        &name
            .split('.')
            .map(|l| l.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
}

/// Header (ID 0x1234, RD) with the given counts.
fn header(counts: [u16; 4]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00];
    for n in counts {
        p.extend_from_slice(&n.to_be_bytes());
    }
    p
}

/// An OPT record with EDNS `version` and these raw options.
fn opt(version: u8, options: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 0, 41, 0x04, 0xd0, 0, version, 0, 0];
    p.extend_from_slice(&(options.len() as u16).to_be_bytes());
    p.extend_from_slice(options);
    p
}

/// A TSIG record owned by `owner` naming `algorithm`, with an empty MAC.
fn tsig(owner: &[u8], algorithm: &[u8]) -> Vec<u8> {
    let mut p = owner.to_vec();
    p.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = algorithm.to_vec();
    // time signed (6), fudge (2), MAC size 0, original ID, error, other len.
    rdata.extend_from_slice(&[0, 0, 0x6a, 0, 0, 0, 1, 44, 0, 0, 0x12, 0x34, 0, 0, 0, 0]);
    p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    p.extend(rdata);
    p
}

fn labels(n: usize, len: usize) -> String {
    vec!["x".repeat(len); n].join(".")
}

/// Found by `answer_structured`: an ECS option of 3 bytes (family and
/// source prefix, no scope byte) panicked in `parse_subnet` (`&v[4..]` on
/// a 3-byte slice). It must be FORMERR (RFC 7871 section 6).
#[test]
fn regression_ecs_option_of_three_bytes_is_formerr() {
    let mut p = header([1, 0, 0, 1]);
    p.extend(wire("keiko.example.com"));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p.extend(opt(0, &[0, 8, 0, 3, 0, 1, 0]));
    // 12 34 01 00 00 01 00 00 00 00 00 01 05 6b 65 69 6b 6f 07 65 78 61 6d
    // 70 6c 65 03 63 6f 6d 00 00 01 00 01 00 00 29 04 d0 00 00 00 00 00 07
    // 00 08 00 03 00 01 00
    regression(&p);
    assert_eq!(rcode_of(&p, Transport::Udp), 1, "FORMERR");
}

/// Found by `proptest_core`: a query without a question whose later
/// sections are malformed got a FORMERR that claims QDCOUNT 1 but carries
/// no question, which no client can parse.
#[test]
fn regression_formerr_without_question_has_qdcount_0() {
    // QDCOUNT 0, ANCOUNT 1, and no record after the header.
    let p = header([0, 1, 0, 0]);
    regression(&p);
    // QDCOUNT 0 and two OPT records (the second one is the error).
    let mut p = header([0, 0, 0, 2]);
    p.extend(opt(0, &[]));
    p.extend(opt(0, &[]));
    regression(&p);
}

/// Found by `proptest_core`: the NOTAUTH/BADKEY answer to a TSIG-signed
/// query repeats the key name and algorithm; with long (but legal) names it
/// exceeded 512 bytes over UDP, even after truncation (the TSIG record is
/// added back after the cut).
#[test]
fn regression_badkey_answer_fits_512_bytes_on_udp() {
    let mut p = header([1, 0, 0, 1]);
    p.extend(wire(&format!("{}.keiko.example.com", labels(3, 60))));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p.extend(tsig(&wire(&labels(4, 60)), &wire(&labels(4, 60))));
    regression(&p);
    assert_eq!(rcode_of(&p, Transport::Tcp), 9, "NOTAUTH");
}

/// Found by `proptest_core`: the TSIG algorithm name is copied from the
/// query without a length check, so a name of more than 255 bytes went back
/// in the answer, which then does not parse.
#[test]
fn regression_badkey_answer_never_repeats_an_overlong_name() {
    let mut p = header([1, 0, 0, 1]);
    p.extend(wire("keiko.example.com"));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p.extend(tsig(&wire("key"), &wire(&labels(6, 60))));
    regression(&p);
}

/// A TCP answer must fit the two-byte length prefix: a 65535-byte query
/// with a huge TSIG algorithm name, a client cookie and an NSID request
/// made an answer longer than the query (cookie and NSID grow it), still
/// too long after truncation.
#[test]
fn regression_tcp_answer_fits_65535_bytes() {
    let mut p = header([1, 0, 0, 2]);
    p.extend(wire("keiko.example.com"));
    p.extend_from_slice(&[0, 1, 0, 1]);
    p.extend(opt(0, &[0, 3, 0, 0, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]));
    let fixed = p.len() + 5 + 10 + 16;
    let algorithm_len = 65535 - fixed;
    // Labels of 63 bytes (64 on the wire) then one to fill, then the root.
    let mut algorithm = Vec::new();
    while algorithm_len - algorithm.len() > 65 {
        algorithm.push(63);
        algorithm.extend_from_slice(&[b'a'; 63]);
    }
    let rest = algorithm_len - algorithm.len() - 2;
    algorithm.push(rest as u8);
    algorithm.extend(std::iter::repeat_n(b'b', rest));
    algorithm.push(0);
    p.extend(tsig(&wire("key"), &algorithm));
    assert_eq!(p.len(), 65535);
    let r = answer(&p, IpAddr::V4(Ipv4Addr::LOCALHOST), Transport::Tcp).expect("an answer");
    assert!(r.len() <= 65535, "TCP answer of {} bytes", r.len());
}

/// A cookie-only query (QDCOUNT 0) with EDNS version 1 must still get
/// BADVERS (RFC 6891 section 6.1.3; docs/reference.md §3.2: BADVERS for
/// EDNS version > 0), not a NOERROR cookie exchange.
#[test]
fn regression_cookie_only_query_with_edns_1_is_badvers() {
    let mut p = header([0, 0, 0, 1]);
    p.extend(opt(1, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]));
    regression(&p);
    assert_eq!(rcode_of(&p, Transport::Udp), 16, "BADVERS");
}

/// Sanity for the regressions' helpers: a plain query answers NOERROR.
#[test]
fn helpers_build_valid_queries() {
    let mut p = header([1, 0, 0, 1]);
    p.extend(wire("keiko.example.com"));
    p.extend_from_slice(&[0, 6, 0, 1]);
    p.extend(opt(0, &[0, 3, 0, 0]));
    regression(&p);
    assert_eq!(rcode_of(&p, Transport::Udp), 0);
}
