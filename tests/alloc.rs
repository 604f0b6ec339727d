//! Zero heap allocations per UDP query, in steady state, for every kind of
//! query the server answers: a counting global allocator proves it. Each
//! case is also checked for the answer it should get, so a regression that
//! turned every query into FORMERR could not pass here.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use keiko_dns::config::Config;
use keiko_dns::dataplane::{Stats, Thread, Transport, Worker};
use keiko_dns::dnssec::Signer;
use keiko_dns::geo::GeoDb;
use keiko_dns::snapshot::{Compiled, Snapshot};
use keiko_dns::zone::Zone;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A query as a resolver would send it, with optional EDNS and ECS.
fn query(name: &str, qtype: u16, edns: bool, ecs: Option<&[u8]>) -> Vec<u8> {
    let mut p = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    if edns {
        let opt = ecs.map_or(vec![], |e| [&[0u8, 8, 0, e.len() as u8][..], e].concat());
        p.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0]);
        p.extend_from_slice(&(opt.len() as u16).to_be_bytes());
        p.extend_from_slice(&opt);
    }
    p
}

/// The default snapshot, with `extra` config appended (paths still resolve
/// against `zones/`).
fn snapshot(extra: &str) -> Snapshot {
    snapshot_from(&(base_config() + RECORDS + extra))
}

fn config_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml")
}

fn base_config() -> String {
    std::fs::read_to_string(config_path()).expect("default config")
}

/// The default config with us-east-1 a CNAME region (a load balancer's
/// name) and eu-west-1 one pointing into the zone (`www`, a CNAME chain).
fn cname_config(extra: &str) -> String {
    let text = base_config();
    let us = "addresses  = [\"192.0.2.10\", \"2001:db8:10::10\"]";
    let eu = "addresses  = [\"198.51.100.10\", \"2001:db8:20::10\"]";
    assert!(
        text.contains(us) && text.contains(eu),
        "zones/keiko.toml changed"
    );
    text.replace(us, "cname = \"lb-use1.elb.example.net.\"")
        .replace(eu, "cname = \"www.keiko.example.com.\"")
        + extra
}

fn snapshot_from(text: &str) -> Snapshot {
    let path = config_path();
    let config = Config::parse(&path, text).expect("config parses");
    let zone = Zone::load(&config.zone.file, &config.zone.origin).expect("zone loads");
    let geo = config
        .geoip
        .database
        .as_ref()
        .map(|p| Arc::new(GeoDb::open(p).expect("GeoIP loads")));
    let mut signer = config
        .dnssec
        .as_ref()
        .map(|d| Signer::new(d, &config.zone.origin).expect("keys load"));
    let compiled = Compiled::build_signed(
        Arc::new(config),
        Arc::new(zone),
        geo,
        2,
        signer.as_mut(),
        NOW,
    )
    .expect("compiles");
    Snapshot::new(Arc::new(compiled), vec![true, false, true], 1)
}

/// The answer kinds of docs/reference.md §3.10 on top of the default
/// config: multivalue, all-down policies, a client network.
const RECORDS: &str = r#"
[[records]]
name   = "all"
policy = "multivalue"

[[records]]
name   = "@"
policy = "failover"

[[records]]
name   = "*.tenants"
policy = "failover"

[[records]]
name        = "strict-nodata"
policy      = "failover"
on_all_down = "nodata"

[[records]]
name        = "strict-servfail"
policy      = "failover"
on_all_down = "servfail"

[[networks]]
cidr    = "10.0.0.0/8"
regions = ["ap-southeast-1"]
"#;

/// A `[dnssec]` section with a fresh key in `dir`.
fn dnssec_extra(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let path = dir.join("zone.pem");
    std::fs::write(&path, key.serialize_pem()).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!("\n[dnssec]\nkeys = [{:?}]\n", path.to_str().expect("utf-8"))
}

#[test]
fn answering_allocates_nothing() {
    // Without and with response rate limiting: repeats of one query soon
    // exceed 5 a second, so the limiter's drop and slip paths run too.
    // Signed too: the queries with EDNS set the DO bit, so they get the
    // signed answers and NSEC proofs picked from the chain.
    let keys = tempfile::tempdir().expect("tempdir");
    let signed = dnssec_extra(keys.path());
    for extra in [
        "",
        "\n[rate_limit]\nresponses_per_second = 5\nslip = 2\n",
        signed.as_str(),
    ] {
        answer_every_class(&snapshot(extra), extra);
    }
    for extra in ["", signed.as_str()] {
        answer_cname_classes(&snapshot_from(&cname_config(extra)), extra);
    }
}

/// CNAME regions: us-east-1 (healthy) answers its load balancer's name;
/// eu-west-1's target is followed inside the zone.
fn answer_cname_classes(snap: &Snapshot, what_config: &str) {
    let zone = "keiko.example.com";
    let n = |s: &str| format!("{s}.{zone}");
    use ResponseCode::NoError;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "failover to a CNAME region",
            query(&n("api-contracts"), 1, false, None),
            answer(NoError, 1, &[]),
        ),
        (
            "CNAME region, MX, EDNS",
            query(&n("api-contracts"), 15, true, None),
            answer(NoError, 1, &[]),
        ),
        (
            "CNAME region followed in the zone",
            query(&n("api-contracts-eu-west"), 1, true, None),
            answer(NoError, 3, &["192.0.2.80"]),
        ),
        (
            "CNAME region followed, AAAA",
            query(&n("api-contracts-eu-west"), 28, false, None),
            answer(NoError, 3, &["2001:db8:10::80"]),
        ),
    ];
    run_cases(snap, what_config, &cases);
}

/// What a case must get back.
enum Expect {
    /// No response at all.
    Nothing,
    /// This code, this many answer records and, when `addresses` is not
    /// empty, every A/AAAA answer among `addresses`.
    Answer {
        rcode: ResponseCode,
        answers: usize,
        addresses: &'static [&'static str],
    },
}

fn answer(rcode: ResponseCode, answers: usize, addresses: &'static [&'static str]) -> Expect {
    Expect::Answer {
        rcode,
        answers,
        addresses,
    }
}

/// Unix time every query is answered at: one second, so rate limiting
/// drops and slips the same queries on every run.
const NOW: u32 = 1_700_000_000;

fn answer_every_class(snap: &Snapshot, what_config: &str) {
    let gb = [0u8, 1, 24, 0, 81, 2, 69];
    let jp = [0u8, 2, 48, 0, 0x20, 0x01, 0x02, 0x18, 0, 0];
    let net10 = [0u8, 1, 16, 0, 10, 1];
    let zone = "keiko.example.com";
    let n = |s: &str| format!("{s}.{zone}");
    use ResponseCode::{FormErr, NXDomain, NoError, Refused, ServFail};
    // us-east-1 and ap-southeast-1 are healthy, eu-west-1 is down. The
    // client is in the US (geoip-fixtures/README.md), so steering by source
    // takes the policy's own path; the GB subnet is under EU residency,
    // whose only region is down: those answers fail open to eu-west-1.
    let us_east = &["192.0.2.10"][..];
    let eu_west = &["198.51.100.10"][..];
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "static A",
            query(&n("ns1"), 1, false, None),
            answer(NoError, 1, &["192.0.2.53"]),
        ),
        (
            "static NS with glue, EDNS",
            query(zone, 2, true, None),
            answer(NoError, 3, &[]),
        ),
        (
            "CNAME chain",
            query(&n("www"), 1, true, None),
            answer(NoError, 2, &["192.0.2.80"]),
        ),
        (
            "failover",
            query(&n("api-contracts"), 1, false, None),
            answer(NoError, 1, us_east),
        ),
        (
            "failover AAAA, EDNS",
            query(&n("api-contracts"), 28, true, None),
            answer(NoError, 1, &["2001:db8:10::10"]),
        ),
        (
            "failover with ECS (residency)",
            query(&n("api-contracts"), 1, true, Some(&gb)),
            answer(NoError, 1, eu_west),
        ),
        (
            "weighted",
            query(&n("api-contracts-weighted"), 1, false, None),
            answer(NoError, 1, &["192.0.2.10", "203.0.113.10"]),
        ),
        (
            "weighted with ECS",
            query(&n("api-contracts-weighted"), 1, true, Some(&gb)),
            answer(NoError, 1, eu_west),
        ),
        (
            "geo by source",
            query(&n("api-contracts-geo"), 1, false, None),
            answer(NoError, 1, us_east),
        ),
        (
            "geo ECS v4",
            query(&n("api-contracts-geo"), 1, true, Some(&gb)),
            answer(NoError, 1, eu_west),
        ),
        (
            "geo ECS v6",
            query(&n("api-contracts-geo"), 28, true, Some(&jp)),
            answer(NoError, 1, &["2001:db8:30::10"]),
        ),
        (
            "region",
            query(&n("api-contracts-eu-west"), 1, true, None),
            answer(NoError, 1, eu_west),
        ),
        (
            "multivalue (rotating)",
            query(&n("all"), 1, false, None),
            answer(NoError, 2, &["192.0.2.10", "203.0.113.10"]),
        ),
        (
            "multivalue AAAA, EDNS",
            query(&n("all"), 28, true, None),
            answer(NoError, 2, &["2001:db8:10::10", "2001:db8:30::10"]),
        ),
        (
            "multivalue with ECS (residency, fail open)",
            query(&n("all"), 1, true, Some(&gb)),
            answer(NoError, 1, eu_west),
        ),
        (
            "steered apex",
            query(zone, 1, true, None),
            answer(NoError, 1, us_east),
        ),
        (
            "steered wildcard",
            query(&n("acme.tenants"), 1, true, None),
            answer(NoError, 1, us_east),
        ),
        (
            "below a wildcard's parent, no match: NXDOMAIN",
            query(&n("x.missing"), 1, true, None),
            answer(NXDomain, 0, &[]),
        ),
        (
            "all down: nodata",
            query(&n("strict-nodata"), 1, true, Some(&gb)),
            answer(NoError, 0, &[]),
        ),
        (
            "all down: servfail",
            query(&n("strict-servfail"), 1, true, Some(&gb)),
            answer(ServFail, 0, &[]),
        ),
        (
            "geo ECS in a network",
            query(&n("api-contracts-geo"), 1, true, Some(&net10)),
            answer(NoError, 1, &["203.0.113.10"]),
        ),
        (
            "NXDOMAIN",
            query(&n("missing"), 1, true, None),
            answer(NXDomain, 0, &[]),
        ),
        (
            "NODATA",
            query(&n("api-contracts"), 16, false, None),
            answer(NoError, 0, &[]),
        ),
        (
            "REFUSED",
            query("example.org", 1, true, None),
            answer(Refused, 0, &[]),
        ),
        (
            "ANY",
            query(zone, 255, false, None),
            answer(NoError, 3, &[]),
        ),
        (
            "malformed",
            vec![0xab, 0xcd, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1],
            answer(FormErr, 0, &[]),
        ),
        ("too short", vec![1, 2, 3], Expect::Nothing),
    ];
    run_cases(snap, what_config, &cases);
}

fn run_cases(snap: &Snapshot, what_config: &str, cases: &[(&str, Vec<u8>, Expect)]) {
    let rng = SmallRng::seed_from_u64(7);
    let mut worker = Worker::new(Thread::UdpWorker(0), Arc::new(Stats::new(1)), rng);
    let mut out = Vec::with_capacity(65535);
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));
    // The counter itself works: one box is one allocation.
    COUNTING.store(true, Ordering::Relaxed);
    let probe = std::hint::black_box(Box::new(7u64));
    COUNTING.store(false, Ordering::Relaxed);
    drop(probe);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);

    // Warm up, since first uses may set up lazily allocated state; the
    // first answer to each query is the one checked (later repeats may be
    // rate limited).
    for (what, q, expect) in cases {
        let answered = worker.answer(snap, NOW, q, client, Transport::Udp, &mut out);
        check(what, what_config, answered.then_some(&out[..]), expect);
    }
    for (what, q, _) in cases {
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        for _ in 0..1000 {
            worker.answer(snap, NOW, q, client, Transport::Udp, &mut out);
        }
        COUNTING.store(false, Ordering::Relaxed);
        let count = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(
            count, 0,
            "{what}: {count} allocations in 1000 queries (config extra: {what_config:?})"
        );
    }
}

fn check(what: &str, what_config: &str, response: Option<&[u8]>, expect: &Expect) {
    let context = format!("{what} (config extra: {what_config:?})");
    let (rcode, answers, addresses, response) = match (expect, response) {
        (Expect::Nothing, None) => return,
        (Expect::Nothing, Some(_)) => panic!("{context}: answered, but should not be"),
        (Expect::Answer { .. }, None) => panic!("{context}: not answered"),
        (
            Expect::Answer {
                rcode,
                answers,
                addresses,
            },
            Some(response),
        ) => (rcode, answers, addresses, response),
    };
    let m = Message::from_vec(response)
        .unwrap_or_else(|e| panic!("{context}: response does not parse: {e}"));
    assert_eq!(m.metadata.response_code, *rcode, "{context}: {m:?}");
    let records = |rs: &[hickory_proto::rr::Record]| {
        rs.iter()
            .filter(|r| r.record_type() != RecordType::RRSIG)
            .count()
    };
    assert_eq!(records(&m.answers), *answers, "{context}: {m:?}");
    let signed =
        what_config.contains("[dnssec]") && m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    if signed && matches!(*rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        let sigs = m
            .answers
            .iter()
            .chain(&m.authorities)
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .count();
        assert!(
            sigs > 0,
            "{context}: a DO answer of a signed zone without RRSIG: {m:?}"
        );
    }
    if !addresses.is_empty() {
        let got: Vec<String> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                RData::AAAA(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect();
        assert!(
            !got.is_empty() && got.iter().all(|a| addresses.contains(&a.as_str())),
            "{context}: addresses {got:?}, expected among {addresses:?}"
        );
    }
}
