//! The answer core per query class, snapshot building, growth to 10,000
//! names and 100 regions, and the time from a health verdict to new answers.
//!
//! `cargo bench --bench core`; numbers are per query on this machine, so
//! compare classes and runs with each other, not with other machines.

// A tool run by hand: a failed unwrap is a clear enough report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keiko_dns::control::{Publisher, load};
use keiko_dns::dataplane::{Stats, Thread, Transport, Worker};
use keiko_dns::dnssec::Signer;
use keiko_dns::snapshot::{Compiled, Snapshot};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn query(name: &str, qtype: u16, ecs: Option<&[u8]>) -> Vec<u8> {
    query_do(name, qtype, ecs, false)
}

/// As [`query`], with the DO bit set when `dnssec_ok`.
fn query_do(name: &str, qtype: u16, ecs: Option<&[u8]>, dnssec_ok: bool) -> Vec<u8> {
    let mut p = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    let opt = ecs.map_or(vec![], |e| [&[0u8, 8, 0, e.len() as u8][..], e].concat());
    p.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    p.extend_from_slice(&(opt.len() as u16).to_be_bytes());
    p.extend_from_slice(&opt);
    p
}

fn default_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml")
}

fn snapshot_of(config: &Path) -> Snapshot {
    let loaded = load(config).expect("config loads");
    let n = loaded.config.regions.len();
    let compiled = Compiled::build(loaded.config, loaded.zone, loaded.geo, 2).expect("compiles");
    Snapshot::new(Arc::new(compiled), vec![true; n], 1)
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));
/// Unix time every query is answered at.
const NOW: u32 = 1_700_000_000;

/// A response buffer whose first 1,232 octets (a UDP response at the EDNS
/// size) lie in one 4 KiB page. Where the allocator puts a buffer differs
/// from run to run, and a response that straddles a page boundary costs
/// the copies into it about 15-20 ns more on this machine (page-split
/// stores): that is placement, not the code under test, and it made the
/// same binary's DO / no-DO ratio jump between runs. The rejected buffers
/// are held until one fits, so each try gets a new address.
fn response_buffer() -> Vec<u8> {
    const PAGE: usize = 4096;
    let mut rejected = Vec::new();
    loop {
        let out: Vec<u8> = Vec::with_capacity(65535);
        if (out.as_ptr() as usize) % PAGE <= PAGE - 1232 || rejected.len() == 1000 {
            return out;
        }
        rejected.push(out);
    }
}

fn worker() -> Worker {
    let rng = SmallRng::seed_from_u64(3);
    Worker::new(Thread::UdpWorker(0), Arc::new(Stats::new(1)), rng)
}

/// The record kinds of docs/reference.md §3.10, on top of the default
/// config (tests/alloc.rs answers the same ones).
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

[[networks]]
cidr    = "10.0.0.0/8"
regions = ["ap-southeast-1"]
"#;

/// The default config with [`RECORDS`] added, every region healthy.
fn snapshot_with_records() -> Snapshot {
    let path = default_config();
    snapshot_of_text(&(std::fs::read_to_string(&path).expect("default config") + RECORDS))
}

/// The default config with us-east-1 a CNAME region (an outside name) and
/// eu-west-1 one whose target is followed in the zone (tests/alloc.rs).
fn snapshot_with_cnames() -> Snapshot {
    let text = std::fs::read_to_string(default_config()).expect("default config");
    let text = text
        .replace(
            "addresses  = [\"192.0.2.10\", \"2001:db8:10::10\"]",
            "cname = \"lb-use1.elb.example.net.\"",
        )
        .replace(
            "addresses  = [\"198.51.100.10\", \"2001:db8:20::10\"]",
            "cname = \"www.keiko.example.com.\"",
        );
    assert!(text.contains("lb-use1") && text.contains("cname = \"www"));
    snapshot_of_text(&text)
}

fn snapshot_of_text(text: &str) -> Snapshot {
    let path = default_config();
    let config = keiko_dns::config::Config::parse(&path, text).expect("config parses");
    let zone = keiko_dns::zone::Zone::load(&config.zone.file, &config.zone.origin).expect("zone");
    let geo = config
        .geoip
        .database
        .as_ref()
        .map(|p| Arc::new(keiko_dns::geo::GeoDb::open(p).expect("GeoIP loads")));
    let n = config.regions.len();
    let compiled = Compiled::build(Arc::new(config), Arc::new(zone), geo, 2).expect("compiles");
    Snapshot::new(Arc::new(compiled), vec![true; n], 1)
}

fn per_class(c: &mut Criterion) {
    let snap = snapshot_with_records();
    let mut worker = worker();
    let mut out = response_buffer();
    let zone = "keiko.example.com";
    let n = |s: &str| format!("{s}.{zone}");
    let gb: &[u8] = &[0, 1, 24, 0, 81, 2, 69];
    let us: &[u8] = &[0, 1, 24, 0, 216, 160, 83];
    let jp: &[u8] = &[0, 2, 48, 0, 0x20, 0x01, 0x02, 0x18, 0, 0];
    let classes: Vec<(&str, Vec<u8>)> = vec![
        ("static", query(&n("api-contracts-us-east"), 1, None)),
        ("failover", query(&n("api-contracts"), 1, None)),
        ("weighted", query(&n("api-contracts-weighted"), 1, None)),
        ("geo_ecs_v4_gb", query(&n("api-contracts-geo"), 1, Some(gb))),
        ("geo_ecs_v4_us", query(&n("api-contracts-geo"), 1, Some(us))),
        (
            "geo_ecs_v6_jp",
            query(&n("api-contracts-geo"), 28, Some(jp)),
        ),
        ("nxdomain", query(&n("no-such-name"), 1, None)),
        ("multivalue", query(&n("all"), 1, None)),
        ("apex", query(zone, 1, None)),
        ("wildcard", query(&n("acme.tenants"), 1, None)),
        (
            "geo_ecs_v4_network",
            query(&n("api-contracts-geo"), 1, Some(&[0, 1, 16, 0, 10, 1])),
        ),
        (
            "malformed",
            vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c],
        ),
    ];
    let mut group = c.benchmark_group("answer");
    for (name, q) in &classes {
        group.bench_function(*name, |b| {
            b.iter(|| worker.answer(&snap, NOW, black_box(q), CLIENT, Transport::Udp, &mut out))
        });
    }
    let cnames = snapshot_with_cnames();
    let cname_classes: Vec<(&str, Vec<u8>)> = vec![
        ("cname_region", query(&n("api-contracts"), 1, None)),
        (
            "cname_followed",
            query(&n("api-contracts-eu-west"), 1, None),
        ),
    ];
    for (name, q) in &cname_classes {
        group.bench_function(*name, |b| {
            b.iter(|| worker.answer(&cnames, NOW, black_box(q), CLIENT, Transport::Udp, &mut out))
        });
    }
    group.finish();
}

/// A config with `names` steered names over `regions` regions, and its zone.
fn generated(dir: &Path, names: usize, regions: usize) -> std::path::PathBuf {
    let zone = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.example.com.zone"),
    )
    .expect("default zone");
    std::fs::write(dir.join("zone"), zone).expect("write zone");
    let mut toml = String::from(
        "[server]\ndns_listen = [\"127.0.0.1:5300\"]\nadmin_listen = \"127.0.0.1:9300\"\nregion = \"r1\"\nstate_dir = \"var\"\n\
         [zone]\norigin = \"keiko.example.com.\"\nfile = \"zone\"\n",
    );
    for r in 1..=regions {
        let _ = write!(
            toml,
            "[[regions]]\nname = \"r{r}\"\npriority = {r}\nweight = {}\nendpoint = \"https://r{r}.keiko.example.com\"\naddresses = [\"192.0.2.{}\", \"2001:db8::{r:x}\"]\n",
            1 + r % 7,
            r % 250 + 1
        );
    }
    // The default zone's CNAME points at this steered name.
    toml.push_str("[[records]]\nname = \"api-contracts\"\npolicy = \"failover\"\n");
    let policies = ["failover", "weighted"];
    for i in 0..names {
        let _ = write!(
            toml,
            "[[records]]\nname = \"svc-{i}\"\npolicy = \"{}\"\n",
            policies[i % 2]
        );
    }
    let path = dir.join("keiko.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

fn growth(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = generated(dir.path(), 10_000, 100);
    let small = generated(&dir.path().join("small").tap_mkdir(), 7, 3);
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("load_and_compile_default", |b| {
        b.iter(|| snapshot_of(&default_config()))
    });
    group.bench_function("load_and_compile_10k_names_100_regions", |b| {
        b.iter(|| snapshot_of(&big))
    });
    group.finish();

    let big_snap = snapshot_of(&big);
    eprintln!(
        "10k names / 100 regions: {} names, snapshot about {} KiB",
        big_snap.compiled.name_count(),
        big_snap.compiled.memory_bytes() / 1024
    );
    let small_snap = snapshot_of(&small);
    let mut worker = worker();
    let mut out = response_buffer();
    let mut group = c.benchmark_group("answer_growth");
    // The same names in both configs: a longer name costs a little more to
    // parse, hash and echo whatever the zone's size, which is not growth.
    for (label, snap, name) in [
        ("7_names_failover", &small_snap, "svc-4.keiko.example.com"),
        ("10k_names_failover", &big_snap, "svc-4.keiko.example.com"),
        ("7_names_weighted", &small_snap, "svc-5.keiko.example.com"),
        ("10k_names_weighted", &big_snap, "svc-5.keiko.example.com"),
    ] {
        let q = query(name, 1, None);
        group.bench_function(label, |b| {
            b.iter(|| worker.answer(snap, NOW, black_box(&q), CLIENT, Transport::Udp, &mut out))
        });
    }
    group.finish();

    // Benchmarks run one after another, so machine drift (this VM's runs
    // wander by 15 % or more) lands between the two configs. Alternating
    // short blocks of both and taking the median ratio cancels it.
    for (label, name) in [
        ("failover", "svc-4.keiko.example.com"),
        ("weighted", "svc-5.keiko.example.com"),
    ] {
        let q = query(name, 1, None);
        let mut block = |snap: &Snapshot| {
            let start = std::time::Instant::now();
            for _ in 0..20_000 {
                black_box(worker.answer(
                    snap,
                    NOW,
                    black_box(&q),
                    CLIENT,
                    Transport::Udp,
                    &mut out,
                ));
            }
            start.elapsed().as_secs_f64()
        };
        let mut ratios: Vec<f64> = (0..41)
            .map(|_| block(&big_snap) / block(&small_snap))
            .collect();
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "answer_growth/{label}: 10k names / 7 names per-query time, median of {} interleaved blocks: {:.3}",
            ratios.len(),
            ratios[ratios.len() / 2]
        );
    }
}

/// From a health verdict to the new answer being what a worker loads.
fn verdict_to_answer(c: &mut Criterion) {
    let control = Publisher::start(&default_config()).expect("starts");
    let table: Arc<ArcSwap<Snapshot>> = control.table();
    let mut down = false;
    c.bench_function("health_verdict_to_new_snapshot", |b| {
        b.iter_batched(
            || {
                down = !down;
                down
            },
            |down| {
                control.set_health(&[("us-east-1", !down)]);
                black_box(table.load().healthy[0])
            },
            BatchSize::SmallInput,
        )
    });
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

/// `config` with a `[dnssec]` section and a fresh key in `dir`, loaded.
fn signed_inputs(config: &Path, dir: &Path) -> keiko_dns::control::Loaded {
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key_path = dir.join("zone.pem");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(config).unwrap()
        + &format!("\n[dnssec]\nkeys = [{:?}]\n", key_path.to_str().unwrap());
    let signed = config.with_file_name(format!(
        ".{}.signed.toml",
        config.file_stem().unwrap().to_str().unwrap()
    ));
    std::fs::write(&signed, text).unwrap();
    let loaded = load(&signed);
    let _ = std::fs::remove_file(&signed);
    loaded.expect("signed config loads")
}

/// Builds `loaded` signed from scratch (a fresh signer: nothing cached).
fn build_signed(loaded: &keiko_dns::control::Loaded) -> Compiled {
    let dnssec = loaded.config.dnssec.as_ref().unwrap();
    let mut signer = Signer::new(dnssec, &loaded.config.zone.origin).unwrap();
    Compiled::build_signed(
        loaded.config.clone(),
        loaded.zone.clone(),
        loaded.geo.clone(),
        2,
        Some(&mut signer),
        NOW,
    )
    .unwrap()
}

/// DO queries against a signed table, beside the same queries without DO;
/// signing time; the largest signed answers.
fn dnssec(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let loaded = signed_inputs(&default_config(), dir.path());
    let n = loaded.config.regions.len();
    let snap = Snapshot::new(Arc::new(build_signed(&loaded)), vec![true; n], 1);
    let mut worker = worker();
    let mut out = response_buffer();
    let zone = "keiko.example.com";
    let name = |s: &str| format!("{s}.{zone}");
    let gb: &[u8] = &[0, 1, 24, 0, 81, 2, 69];
    let classes: Vec<(&str, String, u16, Option<&[u8]>)> = vec![
        ("static", name("api-contracts-us-east"), 1, None),
        ("failover", name("api-contracts"), 1, None),
        ("weighted", name("api-contracts-weighted"), 1, None),
        ("geo_ecs_v4_gb", name("api-contracts-geo"), 1, Some(gb)),
        ("nodata", name("api-contracts"), 16, None),
        ("nxdomain", name("no-such-name"), 1, None),
    ];
    let mut group = c.benchmark_group("dnssec");
    for (label, qname, qtype, ecs) in &classes {
        for dnssec_ok in [false, true] {
            let q = query_do(qname, *qtype, *ecs, dnssec_ok);
            let id = format!("{label}_{}", if dnssec_ok { "do" } else { "plain" });
            group.bench_function(id, |b| {
                b.iter(|| {
                    worker.answer(&snap, NOW, black_box(&q), CLIENT, Transport::Udp, &mut out)
                })
            });
        }
    }
    group.finish();
    // The DO/no-DO ratio per class, from interleaved blocks (machine drift
    // cancels, as for answer_growth).
    for (label, qname, qtype, ecs) in &classes {
        let plain = query_do(qname, *qtype, *ecs, false);
        let signed = query_do(qname, *qtype, *ecs, true);
        let mut block = |q: &[u8]| {
            let start = std::time::Instant::now();
            for _ in 0..20_000 {
                black_box(worker.answer(
                    &snap,
                    NOW,
                    black_box(q),
                    CLIENT,
                    Transport::Udp,
                    &mut out,
                ));
            }
            start.elapsed().as_secs_f64()
        };
        // Each goes first in every other pair, so neither gains from its
        // place (a warm cache, a clock ramping up).
        let mut ratios: Vec<f64> = (0..101)
            .map(|i| {
                if i % 2 == 0 {
                    let s = block(&signed);
                    s / block(&plain)
                } else {
                    let p = block(&plain);
                    block(&signed) / p
                }
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "dnssec/{label}: DO / no-DO per-query time, median of {} interleaved blocks: {:.3}",
            ratios.len(),
            ratios[ratios.len() / 2]
        );
    }
    // The largest signed answers, over TCP (no truncation).
    let mut sizes: Vec<(usize, String)> = [
        (zone.to_string(), 48u16),
        (zone.to_string(), 2),
        (zone.to_string(), 6),
        (zone.to_string(), 15),
        (zone.to_string(), 255),
        (name("no-such-name"), 1),
        (name("api-contracts"), 28),
        (name("api-contracts"), 16),
        (name("www"), 1),
    ]
    .into_iter()
    .map(|(qname, qtype)| {
        let q = query_do(&qname, qtype, None, true);
        worker.answer(&snap, NOW, &q, CLIENT, Transport::Tcp, &mut out);
        (out.len(), format!("{qname} type {qtype}"))
    })
    .collect();
    sizes.sort();
    for (size, what) in sizes.iter().rev().take(4) {
        eprintln!("dnssec/largest: {what} with DO: {size} bytes");
    }

    let mut group = c.benchmark_group("dnssec_build");
    group.sample_size(10);
    group.bench_function("sign_default_from_scratch", |b| {
        b.iter(|| build_signed(&loaded))
    });
    group.finish();
    let big_dir = tempfile::tempdir().unwrap();
    let big = signed_inputs(&generated(big_dir.path(), 10_000, 3), big_dir.path());
    let start = std::time::Instant::now();
    let compiled = build_signed(&big);
    let elapsed = start.elapsed();
    let summary = compiled.dnssec.clone().unwrap();
    eprintln!(
        "dnssec/build: 10k names / 3 regions signed from scratch in {:.2} s: {} signatures, table about {} KiB",
        elapsed.as_secs_f64(),
        summary.signatures,
        compiled.memory_bytes() / 1024
    );
    let unsigned = std::time::Instant::now();
    let _ = Compiled::build(big.config.clone(), big.zone.clone(), big.geo.clone(), 2).unwrap();
    eprintln!(
        "dnssec/build: the same unsigned in {:.3} s",
        unsigned.elapsed().as_secs_f64()
    );
}

criterion_group!(benches, per_class, growth, verdict_to_answer, dnssec);
criterion_main!(benches);
