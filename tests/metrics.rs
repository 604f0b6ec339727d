//! Black-box tests of `/metrics` (docs/reference.md §5): scrape a running
//! server, parse the text exposition, and check every documented name with
//! its labels and the values the seed gives them; then drive UDP and TCP
//! traffic, a forced failover, a failing health endpoint and SIGHUP
//! reloads, and check the counters and gauges follow. The scrape is also
//! linted with `promtool check metrics`, as Prometheus operators would.
//!
//! Health endpoints are stubs on 127.0.0.1; the documentation-range
//! addresses only appear as DNS data.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// The test config with probes fast enough to see results within a
/// second (the defaults probe every 30 s).
fn fast_config() -> String {
    format!(
        "{}\n[health]\ninterval = \"300ms\"\ntimeout = \"300ms\"\nfast_interval = \"300ms\"\n\
         failure_threshold = 2\nrecovery_threshold = 1\n",
        default_config()
    )
}

// ---------------------------------------------------------------------------
// The text exposition format
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: `# HELP` and `# TYPE` by family, samples in order.
#[derive(Debug, Default)]
struct Exposition {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

/// Parses text format 0.0.4 strictly enough to catch a malformed line:
/// `name{k="v",...} value` or `name value`, comments `# HELP`/`# TYPE`.
fn parse_exposition(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", n + 1) };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    assert!(
                        e.help.insert(name.into(), help.into()).is_none(),
                        "line {}: second HELP for {name}",
                        n + 1
                    );
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        e.types.insert(name.into(), kind.into()).is_none(),
                        "line {}: second TYPE for {name}",
                        n + 1
                    );
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| fail("no value"));
        let name = &line[..name_end];
        if !is_metric_name(name) {
            fail("bad metric name");
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = inner
                    .split_once("=\"")
                    .unwrap_or_else(|| fail("no =\" in label"));
                if !is_metric_name(key) || key.contains(':') {
                    fail("bad label name");
                }
                // The value runs to the first unescaped quote.
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            _ => fail("bad escape in label value"),
                        },
                        Some((i, '"')) => break i + 1,
                        Some((_, c)) => value.push(c),
                        None => fail("unterminated label value"),
                    }
                };
                if labels.insert(key.to_string(), value).is_some() {
                    fail("duplicate label");
                }
                inner = &after[end..];
                if let Some(more) = inner.strip_prefix(',') {
                    inner = more;
                } else if !inner.starts_with('}') {
                    fail("expected , or } after a label");
                }
            }
        }
        // An optional timestamp could follow the value; the server writes none.
        let value: f64 = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| fail("value is not a number")),
        };
        e.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    e
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Exposition {
    /// The family a sample belongs to (histogram series carry suffixes).
    fn family_of(&self, sample: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self.types.get(base).is_some_and(|t| t == "histogram")
            {
                return base.to_string();
            }
        }
        sample.to_string()
    }

    /// Samples of `name` whose labels include all of `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .find(name, labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// The value, or 0 when the series is absent (counters not yet touched).
    fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        found.first().map_or(0.0, |s| s.value)
    }

    /// The sorted label names the series of `name` carry.
    fn label_names(&self, name: &str) -> Vec<Vec<String>> {
        let mut sets: Vec<Vec<String>> = self
            .find(name, &[])
            .iter()
            .map(|s| s.labels.keys().cloned().collect())
            .collect();
        sets.sort();
        sets.dedup();
        sets
    }
}

fn scrape(server: &Server) -> (String, Exposition) {
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200, "GET /metrics: {reply:?}");
    let text = reply.body;
    let parsed = parse_exposition(&text);
    (text, parsed)
}

/// Polls `/metrics` until `done` holds (probes and reloads run in the
/// background); returns the last scrape.
fn scrape_until(server: &Server, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (text, e) = scrape(server);
        if done(&e) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within 10 s; last scrape:\n{text}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `promtool check metrics` on `text`; panics with its report when it
/// finds a problem. Returns what it printed (empty when clean).
fn promtool_check_metrics(text: &str) -> String {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool not found: run tests/run.sh (it installs Debian's prometheus package)")
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("promtool");
    let report = output_text(&out);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics found problems ({}):\n{report}\nin:\n{text}",
        out.status
    );
    report
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const REGION_NAMES_ALL: [&str; 3] = [REGIONS[0].name, REGIONS[1].name, REGIONS[2].name];

/// Every family of docs/reference.md §5 that the product promises by name,
/// with its type and the label names of its series.
const CONTRACT: [(&str, &str, &[&str]); 9] = [
    ("keiko_multi_region_health", "gauge", &["region"]),
    ("keiko_multi_region_latency", "gauge", &["source", "target"]),
    ("keiko_multi_region_traffic", "gauge", &["region"]),
    (
        "keiko_multi_region_failover_events_total",
        "counter",
        &["region"],
    ),
    ("keiko_dns_queries_total", "counter", &["protocol"]),
    ("keiko_dns_responses_total", "counter", &["rcode"]),
    ("keiko_dns_answers_total", "counter", &["record", "region"]),
    (
        "keiko_health_checks_total",
        "counter",
        &["region", "result"],
    ),
    ("keiko_config_reloads_total", "counter", &["result"]),
];

#[test]
fn every_contract_metric_is_exported_with_the_seed_values_and_passes_promtool() {
    let server = Server::start(&fast_config(), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    // One answer so the answers family has a series.
    server.query_udp(FAILOVER_NAME, RecordType::A);
    let (text, m) = scrape(&server);
    // Kept for people reading a failure or checking the format by eye.
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let saved = artifacts.join("metrics.txt");
    std::fs::write(&saved, &text).unwrap();
    println!(
        "scraped {} bytes, {} samples; saved to {}",
        text.len(),
        m.samples.len(),
        saved.display()
    );

    for (name, kind, labels) in CONTRACT {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}:\n{text}"
        );
        assert!(
            m.help.get(name).is_some_and(|h| !h.trim().is_empty()),
            "# HELP of {name}"
        );
        let mut want: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        want.sort();
        assert_eq!(m.label_names(name), vec![want], "label names of {name}");
    }
    // Every sample belongs to a family with HELP and TYPE.
    for s in &m.samples {
        let family = m.family_of(&s.name);
        assert!(
            m.types.contains_key(&family) && m.help.contains_key(&family),
            "{} has no # TYPE/# HELP",
            s.name
        );
    }

    for (region, share) in REGION_NAMES_ALL.iter().zip([40.0, 40.0, 20.0]) {
        assert_eq!(
            m.get("keiko_multi_region_health", &[("region", region)]),
            1.0
        );
        assert_eq!(
            m.get("keiko_multi_region_traffic", &[("region", region)]),
            share
        );
        let latency = m.get(
            "keiko_multi_region_latency",
            &[("source", "us-east-1"), ("target", region)],
        );
        assert!(
            latency > 0.0 && latency < 0.3,
            "latency to {region}: {latency} s (a loopback probe, within the timeout)"
        );
        assert!(
            m.get(
                "keiko_health_checks_total",
                &[("region", region), ("result", "success")]
            ) >= 1.0
        );
        assert_eq!(
            m.get(
                "keiko_health_checks_total",
                &[("region", region), ("result", "failure")]
            ),
            0.0
        );
        assert_eq!(
            m.get(
                "keiko_multi_region_failover_events_total",
                &[("region", region)]
            ),
            0.0
        );
        assert_histogram(&m, region);
    }
    for protocol in ["udp", "tcp"] {
        m.get("keiko_dns_queries_total", &[("protocol", protocol)]);
    }
    for rcode in ["NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", "FORMERR"] {
        m.get("keiko_dns_responses_total", &[("rcode", rcode)]);
    }
    assert_eq!(
        m.get(
            "keiko_dns_answers_total",
            &[("record", FAILOVER_NAME), ("region", "us-east-1")]
        ),
        1.0
    );
    for result in ["success", "failure"] {
        assert_eq!(
            m.get("keiko_config_reloads_total", &[("result", result)]),
            0.0
        );
    }
    assert_eq!(m.get("keiko_dns_fail_open_total", &[]), 0.0);
    assert_eq!(m.get("keiko_ready", &[]), 1.0);
    let build = m.find("keiko_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value, 1.0);
    assert_eq!(
        build[0].labels.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // An unsigned zone exports nothing of DNSSEC (contract section 8).
    assert!(
        !m.samples
            .iter()
            .any(|s| s.name.starts_with("keiko_dnssec_")),
        "DNSSEC metrics without [dnssec]:\n{text}"
    );

    let report = promtool_check_metrics(&text);
    println!("promtool check metrics: clean{report}");

    // Two scrapes list families and series in the same order.
    let (_, again) = scrape(&server);
    let keys = |e: &Exposition| -> Vec<(String, BTreeMap<String, String>)> {
        e.samples
            .iter()
            .map(|s| (s.name.clone(), s.labels.clone()))
            .collect()
    };
    assert_eq!(
        keys(&m),
        keys(&again),
        "series order changed between scrapes"
    );
}

/// `keiko_health_probe_duration_seconds` for `region` is a well-formed
/// histogram holding at least one probe.
fn assert_histogram(m: &Exposition, region: &str) {
    const NAME: &str = "keiko_health_probe_duration_seconds";
    assert_eq!(m.types.get(NAME).map(String::as_str), Some("histogram"));
    let buckets = m.find(&format!("{NAME}_bucket"), &[("region", region)]);
    assert!(buckets.len() >= 10, "buckets of {region}: {buckets:?}");
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|b| match b.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            le => le.parse().expect("le is a number"),
        })
        .collect();
    assert!(
        bounds.windows(2).all(|w| w[0] < w[1]),
        "le ascending: {bounds:?}"
    );
    assert_eq!(bounds.first(), Some(&0.005));
    assert_eq!(bounds.last(), Some(&f64::INFINITY));
    assert!(bounds.contains(&10.0));
    let counts: Vec<f64> = buckets.iter().map(|b| b.value).collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {counts:?}"
    );
    let count = m.get(&format!("{NAME}_count"), &[("region", region)]);
    assert!(count >= 1.0, "{region}: no probe recorded");
    assert_eq!(counts.last(), Some(&count), "+Inf bucket is the count");
    let sum = m.get(&format!("{NAME}_sum"), &[("region", region)]);
    assert!(
        sum > 0.0 && sum < count * 0.3,
        "{region}: sum {sum} of {count} probes"
    );
}

#[test]
fn counters_and_shares_follow_traffic_failover_probes_and_reloads() {
    let server = Server::start(&fast_config(), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let (_, before) = scrape(&server);

    // Traffic: 5 steered + 2 NXDOMAIN + 1 REFUSED over UDP, 3 over TCP.
    let udp = server.udp();
    for _ in 0..5 {
        let answer = udp.query(FAILOVER_NAME, RecordType::A);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    }
    for _ in 0..2 {
        let answer = udp.query("no-such-name", RecordType::A);
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    }
    let outside = udp.exchange(&Message::query_for("example.org.", RecordType::A));
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    for _ in 0..3 {
        server.query_tcp(REGION_NAMES[2], RecordType::A);
    }
    let (_, after) = scrape(&server);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.get_or_zero(name, labels) - before.get_or_zero(name, labels)
    };
    assert_eq!(
        delta("keiko_dns_queries_total", &[("protocol", "udp")]),
        8.0
    );
    assert_eq!(
        delta("keiko_dns_queries_total", &[("protocol", "tcp")]),
        3.0
    );
    assert_eq!(
        delta("keiko_dns_responses_total", &[("rcode", "NOERROR")]),
        8.0
    );
    assert_eq!(
        delta("keiko_dns_responses_total", &[("rcode", "NXDOMAIN")]),
        2.0
    );
    assert_eq!(
        delta("keiko_dns_responses_total", &[("rcode", "REFUSED")]),
        1.0
    );
    assert_eq!(
        delta(
            "keiko_dns_answers_total",
            &[("record", FAILOVER_NAME), ("region", "us-east-1")]
        ),
        5.0
    );
    assert_eq!(
        delta(
            "keiko_dns_answers_total",
            &[("record", REGION_NAMES[2]), ("region", "ap-southeast-1")]
        ),
        3.0
    );

    // A forced failover: eu-west-1 out, its share spread over the others.
    server.force("eu-west-1", "down");
    let m = scrape_until(&server, "eu-west-1 forced down", |m| {
        m.get("keiko_multi_region_health", &[("region", "eu-west-1")]) == 0.0
    });
    for (region, share) in REGION_NAMES_ALL.iter().zip([66.7, 0.0, 33.3]) {
        assert_eq!(
            m.get("keiko_multi_region_traffic", &[("region", region)]),
            share,
            "share of {region} with eu-west-1 down"
        );
    }
    assert_eq!(
        m.get("keiko_multi_region_health", &[("region", "us-east-1")]),
        1.0
    );
    assert_eq!(
        m.get(
            "keiko_multi_region_failover_events_total",
            &[("region", "eu-west-1")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "keiko_multi_region_failover_events_total",
            &[("region", "us-east-1")]
        ),
        0.0
    );
    // Weighted answers now come from us-east-1 and ap-southeast-1 only.
    for _ in 0..20 {
        udp.query(WEIGHTED_NAME, RecordType::A);
    }
    let (_, m) = scrape(&server);
    let weighted = |region| {
        m.get_or_zero(
            "keiko_dns_answers_total",
            &[("record", WEIGHTED_NAME), ("region", region)],
        )
    };
    assert_eq!(weighted("eu-west-1"), 0.0);
    assert_eq!(weighted("us-east-1") + weighted("ap-southeast-1"), 20.0);
    server.force("eu-west-1", "auto");
    scrape_until(&server, "eu-west-1 back", |m| {
        m.get("keiko_multi_region_traffic", &[("region", "eu-west-1")]) == 40.0
            && m.get(
                "keiko_multi_region_failover_events_total",
                &[("region", "eu-west-1")],
            ) == 2.0
    });

    // A failing health endpoint: failures counted, then the region goes down.
    server.ws.health[2].set_up(false);
    let m = scrape_until(&server, "ap-southeast-1 down after failed probes", |m| {
        m.get("keiko_multi_region_health", &[("region", "ap-southeast-1")]) == 0.0
    });
    assert!(
        m.get(
            "keiko_health_checks_total",
            &[("region", "ap-southeast-1"), ("result", "failure")]
        ) >= 2.0
    );
    assert_eq!(
        m.get(
            "keiko_health_checks_total",
            &[("region", "us-east-1"), ("result", "failure")]
        ),
        0.0
    );
    for (region, share) in REGION_NAMES_ALL.iter().zip([50.0, 50.0, 0.0]) {
        assert_eq!(
            m.get("keiko_multi_region_traffic", &[("region", region)]),
            share
        );
    }
    server.ws.health[2].set_up(true);
    scrape_until(&server, "ap-southeast-1 back", |m| {
        m.get("keiko_multi_region_health", &[("region", "ap-southeast-1")]) == 1.0
    });

    // SIGHUP with a good config, then with a broken one.
    let log = server.reload();
    assert!(!log.to_lowercase().contains("reload failed"), "{log}");
    scrape_until(&server, "a successful reload", |m| {
        m.get("keiko_config_reloads_total", &[("result", "success")]) == 1.0
    });
    server.rewrite_config(&format!("{}\nnot toml at all [[[\n", fast_config()));
    let log = server.reload();
    assert!(log.to_lowercase().contains("reload failed"), "{log}");
    let m = scrape_until(&server, "a failed reload", |m| {
        m.get("keiko_config_reloads_total", &[("result", "failure")]) == 1.0
    });
    assert_eq!(
        m.get("keiko_config_reloads_total", &[("result", "success")]),
        1.0
    );
    // Still serving the previous config.
    assert_eq!(
        m.get("keiko_multi_region_traffic", &[("region", "us-east-1")]),
        40.0
    );

    // Every region forced down: steered answers fail open and are counted.
    for region in REGION_NAMES_ALL {
        server.force(region, "down");
    }
    let before = scrape_until(&server, "every region out", |m| {
        REGION_NAMES_ALL
            .iter()
            .all(|r| m.get("keiko_multi_region_health", &[("region", r)]) == 0.0)
    });
    for _ in 0..3 {
        let answer = udp.query(FAILOVER_NAME, RecordType::A);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    }
    let (_, after) = scrape(&server);
    assert_eq!(
        after.get("keiko_dns_fail_open_total", &[]) - before.get("keiko_dns_fail_open_total", &[]),
        3.0,
        "fail-open answers counted"
    );
}

/// A zone key written by `keiko-dns dnssec keygen` into `dir`.
fn zone_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = Command::new(binary())
        .args(["dnssec", "keygen", "--origin", ORIGIN, "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen: {}", output_text(&out));
    path
}

#[test]
fn a_signed_zone_exports_its_signature_expiry_and_counts_and_passes_promtool() {
    let keys = tempfile::tempdir().unwrap();
    let key = zone_key(keys.path(), "zone.pem");
    // A validity of 2 days, so the expiry is not the default's 14.
    let config = format!(
        "{}\n[dnssec]\nkeys = [\"{}\"]\nsignature_validity = \"2d\"\nrefresh = \"1d\"\n",
        fast_config(),
        key.display()
    );
    let server = Server::start(&config, &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let (text, m) = scrape(&server);
    for (name, kind) in [
        ("keiko_dnssec_signatures_expire_seconds", "gauge"),
        ("keiko_dnssec_signatures_total", "counter"),
        ("keiko_dnssec_signatures_in_table", "gauge"),
    ] {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}:\n{text}"
        );
        assert_eq!(m.label_names(name), vec![Vec::<String>::new()], "{name}");
    }
    // Signed an hour in the past (inception), valid for 2 days from there.
    let expire = m.get("keiko_dnssec_signatures_expire_seconds", &[]);
    let want = 2.0 * 86_400.0 - 3600.0;
    assert!(
        (want - 120.0..=want + 1.0).contains(&expire),
        "expire in {expire} s, want about {want}"
    );
    let in_table = m.get("keiko_dnssec_signatures_in_table", &[]);
    let made = m.get("keiko_dnssec_signatures_total", &[]);
    // SOA, NS, DNSKEY, CDS, CDNSKEY and NSEC at the apex alone are 6.
    assert!(in_table >= 6.0, "{in_table} signatures in the table");
    // One RRset can stand in several prepared answers and is signed once.
    assert!(
        (6.0..=in_table).contains(&made),
        "made {made}, in the table {in_table}"
    );
    promtool_check_metrics(&text);

    // A reload with nothing changed re-uses every signature: none made.
    let log = server.reload();
    assert!(!log.to_lowercase().contains("reload failed"), "{log}");
    let m = scrape_until(&server, "a successful reload", |m| {
        m.get("keiko_config_reloads_total", &[("result", "success")]) == 1.0
    });
    assert_eq!(m.get("keiko_dnssec_signatures_total", &[]), made);
    assert_eq!(m.get("keiko_dnssec_signatures_in_table", &[]), in_table);
    let expire_after = m.get("keiko_dnssec_signatures_expire_seconds", &[]);
    assert!(
        expire_after <= expire && expire_after > expire - 60.0,
        "the same signatures, so the same expiry: {expire} then {expire_after}"
    );
}

#[test]
fn the_parser_reads_escapes_and_rejects_garbage() {
    let e = parse_exposition(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"uo\\\\te\",y=\"\"} 3\nb 1.5e3\n",
    );
    assert_eq!(e.get("a_total", &[("x", "q\"uo\\te"), ("y", "")]), 3.0);
    assert_eq!(e.get("b", &[]), 1500.0);
    for bad in ["a{x=1} 2", "a{x=\"1\" 2", "a{x=\"1\"} two", "1a 2"] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "{bad:?} should not parse"
        );
    }
}
