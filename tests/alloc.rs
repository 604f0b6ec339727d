//! Zero heap allocations per UDP query, in steady state, for every kind of
//! query the server answers: a counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keiko_dns::config::Config;
use keiko_dns::dataplane::{Stats, Transport, Worker};
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
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml");
    let text = std::fs::read_to_string(&path).expect("default config") + extra;
    let config = Config::parse(&path, &text).expect("config parses");
    let zone = Zone::load(&config.zone.file, &config.zone.origin).expect("zone loads");
    let geo = config
        .geoip
        .database
        .as_ref()
        .map(|p| Arc::new(GeoDb::open(p).expect("GeoIP loads")));
    let compiled = Compiled::build(Arc::new(config), Arc::new(zone), geo, 2).expect("compiles");
    Snapshot::new(Arc::new(compiled), vec![true, false, true], 1)
}

#[test]
fn answering_allocates_nothing() {
    // Without and with response rate limiting: repeats of one query soon
    // exceed 5 a second, so the limiter's drop and slip paths run too.
    for extra in ["", "\n[rate_limit]\nresponses_per_second = 5\nslip = 2\n"] {
        answer_every_class(&snapshot(extra), extra);
    }
}

fn answer_every_class(snap: &Snapshot, what_config: &str) {
    let mut worker = Worker::new(0, Arc::new(Stats::new(2)));
    let mut out = Vec::with_capacity(65535);
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1));

    let gb = [0u8, 1, 24, 0, 81, 2, 69];
    let jp = [0u8, 2, 48, 0, 0x20, 0x01, 0x02, 0x18, 0, 0];
    let zone = "keiko.example.com";
    let n = |s: &str| format!("{s}.{zone}");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("static A", query(&n("ns1"), 1, false, None)),
        ("static NS with glue, EDNS", query(zone, 2, true, None)),
        ("CNAME chain", query(&n("www"), 1, true, None)),
        ("failover", query(&n("api-contracts"), 1, false, None)),
        (
            "failover AAAA, EDNS",
            query(&n("api-contracts"), 28, true, None),
        ),
        (
            "failover with ECS (residency)",
            query(&n("api-contracts"), 1, true, Some(&gb)),
        ),
        (
            "weighted",
            query(&n("api-contracts-weighted"), 1, false, None),
        ),
        (
            "weighted with ECS",
            query(&n("api-contracts-weighted"), 1, true, Some(&gb)),
        ),
        (
            "geo by source",
            query(&n("api-contracts-geo"), 1, false, None),
        ),
        (
            "geo ECS v4",
            query(&n("api-contracts-geo"), 1, true, Some(&gb)),
        ),
        (
            "geo ECS v6",
            query(&n("api-contracts-geo"), 28, true, Some(&jp)),
        ),
        ("region", query(&n("api-contracts-eu-west"), 1, true, None)),
        ("NXDOMAIN", query(&n("missing"), 1, true, None)),
        ("NODATA", query(&n("api-contracts"), 16, false, None)),
        ("REFUSED", query("example.org", 1, true, None)),
        ("ANY", query(zone, 255, false, None)),
        (
            "malformed",
            vec![0xab, 0xcd, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1],
        ),
        ("too short", vec![1, 2, 3]),
    ];
    // The counter itself works: one box is one allocation.
    COUNTING.store(true, Ordering::Relaxed);
    let probe = std::hint::black_box(Box::new(7u64));
    COUNTING.store(false, Ordering::Relaxed);
    drop(probe);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);

    // Warm up: first uses may set up lazily allocated state.
    for (_, q) in &cases {
        worker.answer(snap, q, client, Transport::Udp, &mut out);
    }
    for (what, q) in &cases {
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        for _ in 0..1000 {
            worker.answer(snap, q, client, Transport::Udp, &mut out);
        }
        COUNTING.store(false, Ordering::Relaxed);
        let count = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(
            count, 0,
            "{what}: {count} allocations in 1000 queries (config extra: {what_config:?})"
        );
    }
}
