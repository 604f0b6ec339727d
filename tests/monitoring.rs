//! Tests of what `monitoring/` ships for operators: the Prometheus alerting
//! rules pass `promtool check rules` and their unit tests (`promtool test
//! rules`); the Grafana dashboard is well-formed, uses the `DS_PROMETHEUS`
//! datasource variable and valid PromQL; and every `keiko_` metric named in
//! either is one a running server really exports, so a renamed metric
//! cannot leave a silent panel or an alert that never fires. The fleet's
//! metrics only exist with `[fleet]`, which the single server here does not
//! run: they are accepted from [`FLEET_METRICS`], a list the fleet
//! rendering's unit test (src/admin/metrics.rs) holds to what a fleet
//! really exports. The DNSSEC metrics only exist for a signed zone, so the
//! server here signs its zone with a key made for the test.
//!
//! Health endpoints are stubs on 127.0.0.1; the documentation-range
//! addresses only appear as DNS data.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

/// The sample names only an instance with `[fleet]` exports. The unit test
/// `the_monitoring_tests_fleet_metric_list_is_what_a_fleet_exports` in
/// src/admin/metrics.rs reads this list from this file and fails when a
/// name here is not rendered for a fleet, or a fleet family is missing.
const FLEET_METRICS: &[&str] = &[
    "keiko_fleet_peer_up",
    "keiko_fleet_peer_last_seen_seconds",
    "keiko_fleet_observation",
    "keiko_fleet_agreement",
    "keiko_fleet_isolated",
];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn rules_file() -> PathBuf {
    monitoring().join("prometheus/keiko-dns-rules.yml")
}

fn dashboard() -> Value {
    let path = monitoring().join("grafana/keiko-dns.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Runs `promtool ARGS...`; fails the test clearly when it is missing.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool not found: run tests/run.sh (it installs Debian's prometheus package)")
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn assert_promtool(args: &[&str]) -> String {
    let out = promtool(args);
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    println!("$ promtool {}\n{text}", args.join(" "));
    text
}

/// `keiko_` metric names in PromQL (or any text): tokens of
/// `[a-z_:][a-z0-9_:]*` that start with the prefix.
fn keiko_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token = String::new();
    for c in text.chars().chain([' ']) {
        let word = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':';
        if word && !(token.is_empty() && c.is_ascii_digit()) {
            token.push(c);
            continue;
        }
        if token.starts_with("keiko_") {
            names.insert(std::mem::take(&mut token));
        }
        token.clear();
    }
    names
}

/// Every PromQL expression of the dashboard: panel targets, annotation
/// queries and variable queries.
fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    fn walk(v: &Value, exprs: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => exprs.push(s.clone()),
                        _ => walk(v, exprs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, exprs)),
            _ => {}
        }
    }
    walk(d, &mut exprs);
    exprs
}

fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

#[test]
fn alerting_rules_pass_promtool_check_and_unit_tests() {
    let rules = rules_file();
    let tests = monitoring().join("prometheus/keiko-dns-rules.test.yml");
    let check = assert_promtool(&["check", "rules", rules.to_str().unwrap()]);
    assert!(check.contains("SUCCESS"), "{check}");
    let test = assert_promtool(&["test", "rules", tests.to_str().unwrap()]);
    assert!(test.contains("SUCCESS"), "{test}");

    // Each alert the brief asks for exists and is unit-tested.
    let text = std::fs::read_to_string(&rules).unwrap();
    let test_text = std::fs::read_to_string(&tests).unwrap();
    for alert in [
        "KeikoRegionDown",
        "KeikoFailingOpen",
        "KeikoFailoverHappened",
        "KeikoCrossRegionLatencyHigh",
        "KeikoHealthCheckErrors",
        "KeikoDNSErrorRateHigh",
        "KeikoConfigReloadFailed",
        "KeikoFleetDisagreement",
        "KeikoFleetPeerStale",
        "KeikoFleetIsolated",
        "KeikoDNSSECSignaturesExpiring",
    ] {
        assert!(
            text.contains(&format!("alert: {alert}\n")),
            "{alert} missing"
        );
        let cases = test_text.matches(&format!("alertname: {alert}\n")).count();
        assert!(
            cases >= 2,
            "{alert}: {cases} unit test cases, want firing and quiet"
        );
    }
    let alerts = text.matches("- alert: ").count();
    assert_eq!(alerts, 11, "the alerts listed above, and no others");
    for needed in ["severity:", "summary:", "description:"] {
        assert_eq!(
            text.matches(needed).count(),
            alerts,
            "every alert carries {needed}"
        );
    }
}

#[test]
fn dashboard_has_the_five_views_on_the_prometheus_variable_with_valid_promql() {
    let d = dashboard();
    assert!(
        d["schemaVersion"]
            .as_u64()
            .is_some_and(|v| (36..=41).contains(&v)),
        "schemaVersion {}",
        d["schemaVersion"]
    );
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no DS_PROMETHEUS datasource variable"
    );
    let rows: Vec<&str> = panels(&d)
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        [
            "Multi-Region Overview",
            "Regional Performance",
            "Failover History",
            "Traffic Distribution",
            "Fleet"
        ]
    );
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        }
    }

    // promtool parses PromQL in recording rules: check every dashboard
    // query that way, with Grafana's variables filled in.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs(&d).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        // label_values() is Grafana's, not PromQL: check its metric only.
        let expr = match expr.strip_prefix("label_values(") {
            Some(rest) => rest
                .split([',', ')'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            None => expr,
        };
        rules += &format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        );
    }
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}\n{rules}",
        output_text(&out)
    );
}

/// Every sample name a scrape can carry: family names from `# TYPE`, with
/// `_bucket`, `_sum` and `_count` for histograms, and every sample line.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The test config, signed with a key `keiko-dns dnssec keygen` writes
/// into `dir`: the DNSSEC metrics exist only for a signed zone.
fn signed_config(dir: &Path) -> String {
    let key = dir.join("zone.pem");
    let out = Command::new(binary())
        .args(["dnssec", "keygen", "--origin", ORIGIN, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen: {}", output_text(&out));
    format!(
        "{}\n[dnssec]\nkeys = [\"{}\"]\n",
        default_config(),
        key.display()
    )
}

#[test]
fn every_metric_in_the_dashboard_and_rules_is_exported_by_the_server() {
    // Signed, so the DNSSEC alert's metric is exported too.
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(&signed_config(keys.path()), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    // An answer, so every family has at least one series.
    server.query_udp(FAILOVER_NAME, RecordType::A);
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    let single = exported_names(&reply.body);
    // A single instance exports nothing of the fleet ("nothing new without
    // [fleet]"); a fleet adds exactly these.
    for name in FLEET_METRICS {
        assert!(!single.contains(*name), "{name} exported without a fleet");
    }
    let mut exported = single;
    exported.extend(FLEET_METRICS.iter().map(|n| n.to_string()));

    let d = dashboard();
    let dashboard_names: BTreeSet<String> = dashboard_exprs(&d)
        .iter()
        .flat_map(|e| keiko_names(e))
        .collect();
    let rules_text = std::fs::read_to_string(rules_file()).unwrap();
    let rule_names = keiko_names(&rules_text);
    println!("dashboard uses {dashboard_names:?}\nrules use {rule_names:?}");

    for (what, names) in [("dashboard", &dashboard_names), ("rules", &rule_names)] {
        let unknown: Vec<_> = names.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the {what} uses metrics the server does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
    // The dashboard shows every promised metric (reference §5) and the probe histogram.
    for name in [
        "keiko_multi_region_health",
        "keiko_multi_region_latency",
        "keiko_multi_region_traffic",
        "keiko_multi_region_failover_events_total",
        "keiko_dns_queries_total",
        "keiko_dns_responses_total",
        "keiko_dns_answers_total",
        "keiko_health_checks_total",
        "keiko_config_reloads_total",
        "keiko_health_probe_duration_seconds_bucket",
        "keiko_dns_fail_open_total",
    ]
    .into_iter()
    .chain(FLEET_METRICS.iter().copied())
    {
        assert!(
            dashboard_names.contains(name),
            "the dashboard does not show {name}"
        );
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = keiko_names(
        "sum by (le) (rate(keiko_a_bucket{x=\"keiko-dns\"}[5m])) / on(job) keiko_b:ratio > 0.5e1 keiko_c",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["keiko_a_bucket", "keiko_b:ratio", "keiko_c"]
    );
}
