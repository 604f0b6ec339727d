//! Hostile input and faults: every kind of bad input the server can meet
//! (config, zone file, GeoIP database, state_dir, admin API requests, health
//! endpoints, DNS packets) is refused with a clear error, and nothing that
//! was working is lost.
//!
//! Everything stays on loopback: every region of every config here carries
//! a `health_url` on 127.0.0.1 (the documentation addresses in the data are
//! routed networks and are never contacted).

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const STATUS_V4: &str = "192.0.2.80";
const TOKEN: &str = "s3cret-admin-token-0123";

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn keiko_mmdb() -> PathBuf {
    manifest().join("geoip-fixtures/keiko-regions.mmdb")
}

fn maxmind_geoip(file: &str) -> PathBuf {
    manifest().join("geoip-fixtures/maxmind").join(file)
}

fn config_version(server: &Server) -> u64 {
    server.status()["config_version"]
        .as_u64()
        .expect("config_version in /status")
}

/// Replaces the whole line holding `marker` with `line`.
fn replace_line(text: &str, marker: &str, line: &str) -> String {
    let mut found = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_end().ends_with(marker) {
                found += 1;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(found, 1, "marker {marker:?} must be on exactly one line");
    out.join("\n") + "\n"
}

/// Whether an error line names `key` ("regions.priority"; an indexed form
/// such as "regions[0].priority" counts too).
fn names_key(message: &str, key: &str) -> bool {
    if message.contains(key) {
        return true;
    }
    match key.split_once('.') {
        Some((section, rest)) => {
            message.contains(&format!("{section}[")) && message.contains(&format!(".{rest}"))
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Config: every key of docs/reference.md §2, wrong type and wrong value
// ---------------------------------------------------------------------------

/// A config that sets every key of docs/reference.md §2. Each line carries a
/// `# @tag` so a case can replace it; `{CA}` and `{MMDB}` are absolute paths.
const FULL_CONFIG: &str = r#"# every key, valid
[server]
dns_listen    = ["{DNS}"] # @server.dns_listen
admin_listen  = "{ADMIN}" # @server.admin_listen
region        = "us-east-1" # @server.region
state_dir     = "state" # @server.state_dir
admin_token   = "s3cret-admin-token-0123" # @server.admin_token
nsid          = "ns1.test" # @server.nsid
version       = "keiko-test 1.0" # @server.version
cookie_secret = "000102030405060708090a0b0c0d0e0f" # @server.cookie_secret

[zone]
origin = "keiko.example.com." # @zone.origin
file   = "keiko.example.com.zone" # @zone.file

[health]
interval           = "30s" # @health.interval
timeout            = "10s" # @health.timeout
failure_threshold  = 3 # @health.failure_threshold
recovery_threshold = 3 # @health.recovery_threshold
fast_interval      = "5s" # @health.fast_interval
recovery           = "automatic" # @health.recovery
path               = "/health" # @health.path
ca_file            = "{CA}" # @health.ca_file

[rate_limit]
responses_per_second = 20 # @rate_limit.responses_per_second
window               = "15s" # @rate_limit.window
slip                 = 2 # @rate_limit.slip
ipv4_prefix_length   = 24 # @rate_limit.ipv4_prefix_length
ipv6_prefix_length   = 56 # @rate_limit.ipv6_prefix_length
exempt               = ["127.0.0.0/8"] # @rate_limit.exempt

[geoip]
database = "{MMDB}" # @geoip.database
default  = ["us-east-1", "eu-west-1", "ap-southeast-1"] # @geoip.default

[geoip.continents]
NA = ["us-east-1", "eu-west-1", "ap-southeast-1"] # @geoip.continents.NA
EU = ["eu-west-1", "us-east-1", "ap-southeast-1"]
AS = ["ap-southeast-1", "eu-west-1", "us-east-1"]

[geoip.countries]
JP = ["ap-southeast-1", "us-east-1", "eu-west-1"] # @geoip.countries.JP

[residency.eu]
continents = ["EU"] # @residency.eu.continents
countries  = ["CH"] # @residency.eu.countries
regions    = ["eu-west-1"] # @residency.eu.regions

[[regions]]
name        = "us-east-1" # @regions.name
priority    = 1 # @regions.priority
weight      = 40 # @regions.weight
capacity    = 100 # @regions.capacity
endpoint    = "https://api-contracts-us-east.keiko.example.com" # @regions.endpoint
addresses   = ["192.0.2.10", "2001:db8:10::10"] # @regions.addresses
health_url  = "http://{HEALTH0}/health" # @regions.health_url
expect_body = "ok" # @regions.expect_body

[[regions]]
name       = "eu-west-1"
priority   = 2
weight     = 40
endpoint   = "https://api-contracts-eu-west.keiko.example.com"
addresses  = ["198.51.100.10", "2001:db8:20::10"]
health_url = "http://{HEALTH1}/health"

[[regions]]
name       = "ap-southeast-1"
priority   = 3
weight     = 20
endpoint   = "https://api-contracts-ap-southeast.keiko.example.com"
addresses  = ["203.0.113.10", "2001:db8:30::10"]
health_url = "http://{HEALTH2}/health"

[[records]]
name   = "api-contracts" # @records.name
policy = "failover" # @records.policy
ttl    = 60 # @records.ttl

[[records]]
name   = "api-contracts-geo"
policy = "geo"

[[records]]
name   = "api-contracts-weighted"
policy = "weighted"

[[records]]
name   = "api-contracts-us-east"
policy = "region"
region = "us-east-1" # @records.region

[[notify]]
url    = "http://127.0.0.1:9/hook" # @notify.url
format = "alertmanager" # @notify.format
token  = "webhook-token" # @notify.token
"#;

/// One bad variant: the line tagged `tag` becomes `line`, and the error
/// must name `key`.
struct Case {
    tag: &'static str,
    key: &'static str,
    line: &'static str,
    /// For a duplicate: the other line (the error may name either).
    other: &'static str,
}

const fn case(tag: &'static str, key: &'static str, line: &'static str) -> Case {
    Case {
        tag,
        key,
        line,
        other: "",
    }
}

const fn dup(
    tag: &'static str,
    key: &'static str,
    line: &'static str,
    other: &'static str,
) -> Case {
    Case {
        tag,
        key,
        line,
        other,
    }
}

/// Wrong TOML types, one per key.
const WRONG_TYPES: &[Case] = &[
    case(
        "server.dns_listen",
        "server.dns_listen",
        r#"dns_listen = "127.0.0.1:5300""#,
    ),
    case(
        "server.admin_listen",
        "server.admin_listen",
        "admin_listen = 9300",
    ),
    case("server.region", "server.region", "region = 1"),
    case("server.state_dir", "server.state_dir", "state_dir = true"),
    case(
        "server.admin_token",
        "server.admin_token",
        "admin_token = 1234567890123456789",
    ),
    case("server.nsid", "server.nsid", "nsid = 1"),
    case("server.version", "server.version", "version = [1]"),
    case(
        "server.cookie_secret",
        "server.cookie_secret",
        "cookie_secret = 7",
    ),
    case("zone.origin", "zone.origin", "origin = 1"),
    case("zone.file", "zone.file", "file = [\"a.zone\"]"),
    case("health.interval", "health.interval", "interval = 30"),
    case("health.timeout", "health.timeout", "timeout = 10"),
    case(
        "health.failure_threshold",
        "health.failure_threshold",
        r#"failure_threshold = "3""#,
    ),
    case(
        "health.recovery_threshold",
        "health.recovery_threshold",
        "recovery_threshold = 2.5",
    ),
    case(
        "health.fast_interval",
        "health.fast_interval",
        "fast_interval = 5",
    ),
    case("health.recovery", "health.recovery", "recovery = true"),
    case("health.path", "health.path", "path = 1"),
    case("health.ca_file", "health.ca_file", "ca_file = 1"),
    case(
        "rate_limit.responses_per_second",
        "rate_limit.responses_per_second",
        r#"responses_per_second = "20""#,
    ),
    case("rate_limit.window", "rate_limit.window", "window = 15"),
    case("rate_limit.slip", "rate_limit.slip", r#"slip = "2""#),
    case(
        "rate_limit.ipv4_prefix_length",
        "rate_limit.ipv4_prefix_length",
        "ipv4_prefix_length = 24.0",
    ),
    case(
        "rate_limit.ipv6_prefix_length",
        "rate_limit.ipv6_prefix_length",
        r#"ipv6_prefix_length = "56""#,
    ),
    case(
        "rate_limit.exempt",
        "rate_limit.exempt",
        r#"exempt = "127.0.0.0/8""#,
    ),
    case("geoip.database", "geoip.database", "database = 1"),
    case("geoip.default", "geoip.default", r#"default = "us-east-1""#),
    case(
        "geoip.continents.NA",
        "geoip.continents.NA",
        r#"NA = "us-east-1""#,
    ),
    case("geoip.countries.JP", "geoip.countries.JP", "JP = 1"),
    case(
        "residency.eu.continents",
        "residency.eu.continents",
        r#"continents = "EU""#,
    ),
    case(
        "residency.eu.countries",
        "residency.eu.countries",
        "countries = 1",
    ),
    case(
        "residency.eu.regions",
        "residency.eu.regions",
        r#"regions = "eu-west-1""#,
    ),
    case("regions.name", "regions.name", "name = 1"),
    case(
        "regions.priority",
        "regions.priority",
        r#"priority = "one""#,
    ),
    case("regions.weight", "regions.weight", r#"weight = "40""#),
    case("regions.capacity", "regions.capacity", "capacity = [100]"),
    case("regions.endpoint", "regions.endpoint", "endpoint = 1"),
    case(
        "regions.addresses",
        "regions.addresses",
        r#"addresses = "192.0.2.10""#,
    ),
    case("regions.health_url", "regions.health_url", "health_url = 1"),
    case(
        "regions.expect_body",
        "regions.expect_body",
        "expect_body = 1",
    ),
    case("records.name", "records.name", "name = 1"),
    case("records.policy", "records.policy", "policy = 1"),
    case("records.ttl", "records.ttl", r#"ttl = "60""#),
    case("records.region", "records.region", "region = 1"),
    case("notify.url", "notify.url", "url = 1"),
    case("notify.format", "notify.format", "format = 1"),
    case("notify.token", "notify.token", "token = 1"),
];

/// Right type, value not allowed.
const WRONG_VALUES: &[Case] = &[
    case(
        "server.dns_listen",
        "server.dns_listen",
        r#"dns_listen = ["not-an-address"]"#,
    ),
    case("server.dns_listen", "server.dns_listen", "dns_listen = []"),
    case(
        "server.admin_listen",
        "server.admin_listen",
        r#"admin_listen = "localhost""#,
    ),
    case("server.region", "server.region", r#"region = """#),
    case(
        "server.admin_token",
        "server.admin_token",
        r#"admin_token = "short""#,
    ),
    case("server.nsid", "server.nsid", r#"nsid = """#),
    case(
        "server.cookie_secret",
        "server.cookie_secret",
        r#"cookie_secret = "not hex""#,
    ),
    case(
        "zone.origin",
        "zone.origin",
        r#"origin = "keiko.example.com""#,
    ),
    case("health.interval", "health.interval", r#"interval = "soon""#),
    case("health.interval", "health.interval", r#"interval = "0s""#),
    case("health.timeout", "health.timeout", r#"timeout = "40s""#),
    case("health.timeout", "health.timeout", r#"timeout = "0s""#),
    case(
        "health.failure_threshold",
        "health.failure_threshold",
        "failure_threshold = 0",
    ),
    case(
        "health.recovery_threshold",
        "health.recovery_threshold",
        "recovery_threshold = -1",
    ),
    case(
        "health.fast_interval",
        "health.fast_interval",
        r#"fast_interval = "1m""#,
    ),
    case(
        "health.recovery",
        "health.recovery",
        r#"recovery = "sometimes""#,
    ),
    case("health.path", "health.path", r#"path = "health""#),
    case(
        "rate_limit.responses_per_second",
        "rate_limit.responses_per_second",
        "responses_per_second = 0",
    ),
    case("rate_limit.window", "rate_limit.window", r#"window = "2h""#),
    case("rate_limit.slip", "rate_limit.slip", "slip = 11"),
    case(
        "rate_limit.ipv4_prefix_length",
        "rate_limit.ipv4_prefix_length",
        "ipv4_prefix_length = 33",
    ),
    case(
        "rate_limit.ipv6_prefix_length",
        "rate_limit.ipv6_prefix_length",
        "ipv6_prefix_length = 129",
    ),
    case(
        "rate_limit.exempt",
        "rate_limit.exempt",
        r#"exempt = ["not-a-network"]"#,
    ),
    case(
        "geoip.default",
        "geoip.default",
        r#"default = ["nowhere-1"]"#,
    ),
    case("geoip.default", "geoip.default", "default = []"),
    case(
        "geoip.continents.NA",
        "geoip.continents",
        r#"XX = ["us-east-1"]"#,
    ),
    case(
        "geoip.continents.NA",
        "geoip.continents.NA",
        r#"NA = ["nowhere-1"]"#,
    ),
    case(
        "geoip.countries.JP",
        "geoip.countries",
        r#"jp = ["us-east-1"]"#,
    ),
    case(
        "geoip.countries.JP",
        "geoip.countries.JP",
        r#"JP = ["us-east-1", "us-east-1"]"#,
    ),
    case(
        "residency.eu.continents",
        "residency.eu.continents",
        r#"continents = ["XX"]"#,
    ),
    case(
        "residency.eu.countries",
        "residency.eu.countries",
        r#"countries = ["ch"]"#,
    ),
    case(
        "residency.eu.regions",
        "residency.eu.regions",
        r#"regions = ["nowhere-1"]"#,
    ),
    case(
        "residency.eu.regions",
        "residency.eu.regions",
        "regions = []",
    ),
    case("regions.name", "regions.name", r#"name = "us east!""#),
    dup(
        "regions.name",
        "regions.name",
        r#"name = "eu-west-1""#,
        r#"name       = "eu-west-1""#,
    ),
    case("regions.priority", "regions.priority", "priority = 0"),
    dup(
        "regions.priority",
        "regions.priority",
        "priority = 2",
        "priority   = 2",
    ),
    case("regions.weight", "regions.weight", "weight = -1"),
    case("regions.capacity", "regions.capacity", "capacity = -5"),
    case(
        "regions.endpoint",
        "regions.endpoint",
        r#"endpoint = "ftp://api.keiko.example.com""#,
    ),
    case(
        "regions.addresses",
        "regions.addresses",
        r#"addresses = ["999.1.1.1"]"#,
    ),
    case("regions.addresses", "regions.addresses", "addresses = []"),
    case(
        "regions.health_url",
        "regions.health_url",
        r#"health_url = "gopher://127.0.0.1/health""#,
    ),
    case(
        "records.name",
        "records.name",
        r#"name = "api.example.net.""#,
    ),
    dup(
        "records.name",
        "records.name",
        r#"name = "api-contracts-weighted""#,
        r#"name   = "api-contracts-weighted""#,
    ),
    case("records.name", "records.name", r#"name = "status""#),
    case("records.policy", "records.policy", r#"policy = "fastest""#),
    case("records.ttl", "records.ttl", "ttl = -1"),
    case(
        "records.region",
        "records.region",
        r#"region = "nowhere-1""#,
    ),
    case("notify.url", "notify.url", r#"url = "not a url""#),
    case("notify.format", "notify.format", r#"format = "xml""#),
];

fn full_config(ws: &Workspace, ca: &TestCa) -> String {
    ws.fill(FULL_CONFIG)
        .replace("{CA}", ca.ca_file().to_str().unwrap())
        .replace("{MMDB}", keiko_mmdb().to_str().unwrap())
}

/// Runs `check` on every case and returns one line per case that does not
/// exit 1 with `keiko.toml:LINE:COL: ... KEY ...` for the replaced line.
fn check_cases(cases: &[Case]) -> Vec<String> {
    let ca = TestCa::new();
    let ws = Workspace::new(&default_config(), &default_zone());
    let base = full_config(&ws, &ca);
    ws.write_config(&base);
    let out = ws.check();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the full config must be valid:\n{}",
        output_text(&out)
    );
    let mut failures = Vec::new();
    for c in cases {
        let line = format!("{} # BAD", c.line);
        let config = replace_line(&base, &format!("# @{}", c.tag), &line);
        ws.write_config(&config);
        let out = ws.check();
        let text = output_text(&out);
        let mut lines = vec![line_of(&config, "# BAD")];
        if !c.other.is_empty() {
            lines.push(line_of(&config, c.other));
        }
        let what = format!("`{}` (key {})", c.line, c.key);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{what}: exit {:?}, output: {text}",
                out.status.code()
            ));
            continue;
        }
        let found = lines.iter().find_map(|n| {
            let located = format!("{CONFIG_FILE}:{n}:");
            text.lines()
                .find(|l| l.contains(&located))
                .map(|m| (located, m))
        });
        let Some((located, message)) = found else {
            failures.push(format!(
                "{what}: no {CONFIG_FILE}:{}:COL: in: {}",
                lines[0],
                text.trim()
            ));
            continue;
        };
        let col = message.split(&located).nth(1).unwrap_or("");
        let col_ok = col
            .split(':')
            .next()
            .is_some_and(|c| c.parse::<u32>().is_ok_and(|c| c > 0));
        if !col_ok {
            failures.push(format!("{what}: no column in {message:?}"));
        } else if !names_key(message, c.key) {
            failures.push(format!("{what}: key not named in {message:?}"));
        }
    }
    failures
}

#[test]
fn check_names_file_line_col_and_key_for_every_wrong_type() {
    let failures = check_cases(WRONG_TYPES);
    assert!(
        failures.is_empty(),
        "{} of {} wrong-type cases are not reported as keiko.toml:LINE:COL: KEY:\n{}",
        failures.len(),
        WRONG_TYPES.len(),
        failures.join("\n")
    );
}

#[test]
fn check_names_file_line_col_and_key_for_every_wrong_value() {
    let failures = check_cases(WRONG_VALUES);
    assert!(
        failures.is_empty(),
        "{} of {} wrong-value cases are not reported as keiko.toml:LINE:COL: KEY:\n{}",
        failures.len(),
        WRONG_VALUES.len(),
        failures.join("\n")
    );
}

/// Files a config points at that cannot be read: the error names the file.
#[test]
fn check_names_files_the_config_points_at_that_are_missing() {
    let ca = TestCa::new();
    let ws = Workspace::new(&default_config(), &default_zone());
    let base = full_config(&ws, &ca);
    for (tag, line, file) in [
        ("zone.file", r#"file = "missing.zone""#, "missing.zone"),
        (
            "health.ca_file",
            r#"ca_file = "missing-ca.pem""#,
            "missing-ca.pem",
        ),
        (
            "geoip.database",
            r#"database = "missing.mmdb""#,
            "missing.mmdb",
        ),
    ] {
        ws.write_config(&replace_line(&base, &format!("# @{tag}"), line));
        let out = ws.check();
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{line}: check should fail:\n{text}"
        );
        assert!(
            text.contains(file),
            "{line}: error should name {file}:\n{text}"
        );
    }
}

/// A reload whose `health.ca_file` is missing must fail like any other bad
/// input: accepted, it would leave the prober unbuildable and every region
/// failing its checks.
#[test]
fn sighup_with_a_missing_ca_file_keeps_the_old_config_and_probes() {
    let server = Server::start_default();
    server.wait_ready(Duration::from_secs(10));
    let version = config_version(&server);
    let bad = format!(
        "{}\n[health]\nca_file = \"missing-ca.pem\" # BAD\n",
        swapped_priorities()
    );
    server.rewrite_config(&bad);
    let log = server.reload();
    assert!(
        log.to_lowercase().contains("reload failed") && log.contains("missing-ca.pem"),
        "reload should fail naming missing-ca.pem; logged:\n{log}"
    );
    assert_eq!(config_version(&server), version);
    assert_failover_to(&server, &REGIONS[0]);
    // Probes keep working: after a few seconds every region is still healthy.
    std::thread::sleep(Duration::from_secs(2));
    for r in REGIONS {
        let s = server.region_status(r.name);
        assert_eq!(s["healthy"], true, "{}: {s:#}", r.name);
    }
}

/// A running server whose config is replaced by a bad variant and SIGHUP'd
/// keeps its old answers, config version and admin API.
#[test]
fn sighup_with_bad_config_values_keeps_the_old_config() {
    let mut server = Server::start_default();
    let version = config_version(&server);
    let good = swapped_priorities();
    let variants: Vec<(&str, String)> = vec![
        (
            "wrong type",
            format!("{good}\n[health]\ninterval = 30 # BAD\n"),
        ),
        (
            "timeout over interval",
            format!("{good}\n[health]\ninterval = \"5s\"\ntimeout = \"9s\" # BAD\n"),
        ),
        (
            "negative weight",
            replace_once(&good, "weight    = 20", "weight    = -1 # BAD"),
        ),
        (
            "unknown policy",
            replace_once(
                &good,
                r#"policy = "weighted""#,
                "policy = \"fastest\" # BAD",
            ),
        ),
        (
            "bad listen address",
            replace_once(
                &good,
                r#"dns_listen   = ["{DNS}"]"#,
                "dns_listen = [\"nonsense\"] # BAD",
            ),
        ),
        (
            "unknown region in a record",
            replace_once(
                &good,
                r#"region = "eu-west-1""#,
                "region = \"eu-north-9\" # BAD",
            ),
        ),
    ];
    for (what, config) in &variants {
        server.rewrite_config(config);
        let log = server.reload();
        let line = line_of(&server.ws.fill(config), "# BAD");
        assert!(
            log.to_lowercase().contains("reload failed"),
            "{what}: reload should fail; logged:\n{log}"
        );
        assert!(
            log.contains(&format!("{CONFIG_FILE}:{line}:")),
            "{what}: reload error should name {CONFIG_FILE}:{line}:; logged:\n{log}"
        );
        server.assert_alive();
        assert_failover_to(&server, &REGIONS[0]);
        assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);
        assert_eq!(
            config_version(&server),
            version,
            "{what}: config version moved"
        );
        assert_eq!(server.get("/health").status, 200, "{what}: admin API");
    }
    // The fixed config is taken.
    server.rewrite_config(&good);
    let log = server.reload();
    assert!(log.contains("reloaded"), "{log}");
    assert_failover_to(&server, &REGIONS[1]);
}

/// A `tcp://` health URL with a host name would need DNS at every probe,
/// which probes never use: `check` refuses it at its line, and a reload
/// with it keeps the old config instead of failing every probe forever.
#[test]
fn a_tcp_health_url_with_a_host_name_is_refused_by_check_and_reload() {
    let tcp = "health_url = \"tcp://db.example.com:5432\" # BAD";
    let bad = replace_once(
        &default_config(),
        "health_url = \"http://{HEALTH1}/health\"",
        tcp,
    );
    let ws = Workspace::new(&bad, &default_zone());
    let out = ws.check();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "check should fail:\n{text}");
    let located = format!("{CONFIG_FILE}:{}:", line_of(&ws.fill(&bad), "# BAD"));
    assert!(
        text.lines()
            .any(|l| l.contains(&located) && l.contains("regions.health_url")),
        "no {located} ... regions.health_url in:\n{text}"
    );

    let server = Server::start_default();
    let version = config_version(&server);
    server.rewrite_config(&replace_once(
        &swapped_priorities(),
        "health_url = \"http://{HEALTH1}/health\"",
        tcp,
    ));
    let log = server.reload();
    assert!(
        log.to_lowercase().contains("reload failed") && log.contains("db.example.com"),
        "reload should fail naming the health_url; logged:\n{log}"
    );
    assert_eq!(config_version(&server), version);
    assert_failover_to(&server, &REGIONS[0]);
}

// ---------------------------------------------------------------------------
// Zone files
// ---------------------------------------------------------------------------

/// Bad zones: (what, zone text, marker of the offending line or None when
/// the error has no one line, reason the error must give).
fn bad_zones() -> Vec<(&'static str, String, Option<&'static str>, &'static str)> {
    let zone = default_zone();
    vec![
        (
            "syntax error",
            format!("{zone}\nbroken IN A not-an-address\nlater IN A 192.0.2.99\n"),
            Some("broken IN A"),
            "",
        ),
        (
            "unbalanced parenthesis",
            format!("{zone}\nparen IN TXT ( \"never closed\"\n"),
            None,
            "",
        ),
        (
            "out-of-zone data",
            format!("{zone}\nother.example.net. IN A 192.0.2.1\n"),
            Some("other.example.net."),
            "outside the zone",
        ),
        (
            "missing SOA",
            "$ORIGIN keiko.example.com.\n$TTL 3600\n@ IN NS ns1\nns1 IN A 192.0.2.53\nstatus IN A 192.0.2.80\n"
                .to_string(),
            None,
            "SOA",
        ),
        (
            "CNAME beside other data",
            format!("{zone}\nwww IN A 192.0.2.3\n"),
            Some("www IN A 192.0.2.3"),
            "CNAME",
        ),
        (
            "second SOA",
            format!("{zone}\n@ IN SOA ns2 hostmaster 2 7200 3600 1209600 300\n"),
            Some("@ IN SOA ns2"),
            "SOA",
        ),
    ]
}

#[test]
fn check_rejects_bad_zone_files_with_file_line_and_reason() {
    let ws = Workspace::new(&default_config(), &default_zone());
    for (what, zone, marker, reason) in bad_zones() {
        ws.write_zone(&zone);
        let out = ws.check();
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: check should fail:\n{text}"
        );
        let prefix = match marker {
            Some(m) => format!("{ZONE_FILE}:{}:", line_of(&zone, m)),
            None => format!("{ZONE_FILE}:"),
        };
        let message = text
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("{what}: no {prefix} in:\n{text}"));
        if marker.is_none() {
            // Still a line number after the file name.
            let rest = message.split(&prefix).nth(1).unwrap();
            let n = rest.split(':').next().unwrap();
            assert!(
                n.parse::<u32>().is_ok_and(|n| n > 0),
                "{what}: line in {message:?}"
            );
        }
        assert!(
            message.contains(reason),
            "{what}: reason {reason:?} not in {message:?}"
        );
    }
    // A zone file that is not there is named too.
    fs::remove_file(ws.zone_path()).unwrap();
    let out = ws.check();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "missing zone:\n{text}");
    assert!(text.contains(ZONE_FILE), "missing zone not named:\n{text}");
}

#[test]
fn sighup_with_a_bad_zone_keeps_the_old_zone() {
    let server = Server::start_default();
    let version = config_version(&server);
    for (what, zone, _, _) in bad_zones() {
        server.rewrite_zone(&zone);
        // A valid config change in the same reload must not half-apply.
        server.rewrite_config(&swapped_priorities());
        let log = server.reload();
        assert!(
            log.to_lowercase().contains("reload failed") && log.contains(ZONE_FILE),
            "{what}: reload should fail naming the zone; logged:\n{log}"
        );
        assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);
        assert_addresses(&server.query_tcp("status", RecordType::A), &[ip(STATUS_V4)]);
        assert_failover_to(&server, &REGIONS[0]);
        assert_eq!(config_version(&server), version, "{what}");
    }
    server.rewrite_zone(&replace_once(&default_zone(), STATUS_V4, "192.0.2.81"));
    server.reload();
    assert_addresses(
        &server.query_udp("status", RecordType::A),
        &[ip("192.0.2.81")],
    );
    assert_failover_to(&server, &REGIONS[1]);
}

// ---------------------------------------------------------------------------
// GeoIP databases
// ---------------------------------------------------------------------------

/// A valid MaxMind DB of the wrong kind: an ASN database.
fn asn_database() -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Asn {
        autonomous_system_number: u32,
        autonomous_system_organization: &'static str,
    }
    let mut writer = mmdb_writer::Writer::builder("GeoLite2-ASN")
        .ip_version(mmdb_writer::IpVersion::V6)
        .build();
    let net: ipnet::IpNet = "127.0.3.0/24".parse().unwrap();
    writer
        .insert(
            net,
            &Asn {
                autonomous_system_number: 64_496,
                autonomous_system_organization: "Example AS",
            },
        )
        .unwrap();
    writer.to_bytes().unwrap()
}

/// Bad databases by file name.
fn bad_databases() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let good = fs::read(keiko_mmdb()).unwrap();
    let corrupt = fs::read(maxmind_geoip("GeoIP2-City-Test-Invalid-Node-Count.mmdb"))
        .expect("MaxMind's corrupt test database");
    vec![
        ("invalid-node-count.mmdb", Some(corrupt)),
        ("truncated.mmdb", Some(good[..good.len() / 2].to_vec())),
        (
            "metadata-only-tail.mmdb",
            Some(good[good.len() - 200..].to_vec()),
        ),
        ("empty.mmdb", Some(Vec::new())),
        ("text.mmdb", Some(b"this is not a MaxMind DB\n".to_vec())),
        ("asn.mmdb", Some(asn_database())),
        ("missing.mmdb", None),
    ]
}

const GEO_SECTION: &str = r#"
[geoip]
database = "geo.mmdb"
default  = ["us-east-1", "eu-west-1", "ap-southeast-1"]

[geoip.continents]
AS = ["ap-southeast-1", "eu-west-1", "us-east-1"]
EU = ["eu-west-1", "us-east-1", "ap-southeast-1"]

[[records]]
name   = "api-contracts-geo"
policy = "geo"
"#;

#[test]
fn check_rejects_bad_geoip_databases_naming_the_file() {
    let ws = Workspace::new(&default_config(), &default_zone());
    for (file, bytes) in bad_databases() {
        let path = ws.path().join(file);
        if let Some(bytes) = &bytes {
            fs::write(&path, bytes).unwrap();
        }
        ws.write_config(&format!(
            "{}{}",
            default_config(),
            GEO_SECTION.replace("geo.mmdb", path.to_str().unwrap())
        ));
        let out = ws.check();
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: check should fail:\n{text}"
        );
        assert!(
            text.contains(file),
            "{file}: error should name the file:\n{text}"
        );
    }
}

/// Replaces `path` atomically (write, then rename), as geoipupdate does.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_with_a_bad_geoip_database_keeps_the_old_one() {
    let config = format!("{}{}", default_config(), GEO_SECTION);
    // The server's folder is only known once it runs, so start with the
    // database given absolutely, then switch to the workspace copy.
    let first = config.replace("geo.mmdb", keiko_mmdb().to_str().unwrap());
    let server = Server::start(&first, &default_zone());
    let db = server.ws.path().join("geo.mmdb");
    fs::copy(keiko_mmdb(), &db).unwrap();
    server.rewrite_config(&config);
    let log = server.reload();
    assert!(log.contains("reloaded"), "{log}");

    // 127.0.3.0/24 is Singapore (AS) in the fixture.
    let geo_query = Message::query_for(&fqdn("api-contracts-geo"), RecordType::A)
        .with_subnet(ip("127.0.3.1"), 24);
    let ap = IpAddr::from(REGIONS[2].v4);
    assert_eq!(addresses(&server.exchange_udp(&geo_query)), vec![ap]);
    let version = config_version(&server);

    let swapped = format!("{}{}", swapped_priorities(), GEO_SECTION);
    for (file, bytes) in bad_databases() {
        match &bytes {
            Some(bytes) => replace_file(&db, bytes),
            None => fs::remove_file(&db).unwrap(),
        }
        server.rewrite_config(&swapped);
        let log = server.reload();
        assert!(
            log.to_lowercase().contains("reload failed") && log.contains("geo.mmdb"),
            "{file}: reload should fail naming geo.mmdb; logged:\n{log}"
        );
        assert_eq!(
            addresses(&server.exchange_udp(&geo_query)),
            vec![ap],
            "{file}: geo answer changed"
        );
        assert_failover_to(&server, &REGIONS[0]);
        assert_eq!(config_version(&server), version, "{file}");
    }
    replace_file(&db, &fs::read(keiko_mmdb()).unwrap());
    let log = server.reload();
    assert!(log.contains("reloaded"), "{log}");
    assert_failover_to(&server, &REGIONS[1]);
    assert_eq!(addresses(&server.exchange_udp(&geo_query)), vec![ap]);
}

// ---------------------------------------------------------------------------
// state_dir
// ---------------------------------------------------------------------------

fn with_state_dir(dir: &Path) -> String {
    replace_once(
        &default_config(),
        r#"state_dir    = "state""#,
        &format!("state_dir = {:?}", dir.to_str().unwrap()),
    )
}

/// A state_dir that cannot be created (a regular file stands where a
/// folder is expected; tests run as root, so permissions would not stop
/// us): the server starts, serves, logs the error, and forced states work
/// in memory.
#[test]
fn unwritable_state_dir_is_logged_and_survived() {
    let outside = tempfile::tempdir().unwrap();
    let blocker = outside.path().join("blocker");
    fs::write(&blocker, b"a regular file\n").unwrap();
    for state_dir in [blocker.join("state"), blocker.clone()] {
        let server = Server::start(&with_state_dir(&state_dir), &default_zone());
        server.wait_ready(Duration::from_secs(10));
        assert_failover_to(&server, &REGIONS[0]);
        server.force("us-east-1", "down");
        assert_failover_to(&server, &REGIONS[1]);
        assert_eq!(server.region_status("us-east-1")["forced"], "down");
        let events = server.events(10);
        assert!(
            events
                .iter()
                .any(|e| e["region"] == "us-east-1" && e["to"] == "down"),
            "the event is kept in memory: {events:#?}"
        );
        server.force("us-east-1", "auto");
        assert_failover_to(&server, &REGIONS[0]);
        let log = server.log();
        let blocker_text = blocker.to_str().unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR")
                    && (l.contains("state_dir") || l.contains(blocker_text))),
            "the state_dir problem should be logged as an error:\n{log}"
        );
        assert!(blocker.is_file(), "the file in the way is left alone");
    }
}

fn event_line(reason: &str, to: &str) -> String {
    serde_json::json!({
        "time": "2026-11-26T00:00:00Z",
        "region": "eu-west-1",
        "from": if to == "down" { "up" } else { "down" },
        "to": to,
        "reason": reason,
    })
    .to_string()
}

/// Damaged state files: garbage regions.json, garbage and torn lines in
/// events.jsonl. The server starts, logs it, and keeps every good event.
#[test]
fn damaged_state_files_are_logged_and_the_good_events_kept() {
    let state = tempfile::tempdir().unwrap();
    fs::write(
        state.path().join("regions.json"),
        b"\x00\xffnot json at all {{{",
    )
    .unwrap();
    let events = format!(
        "{}\n{}\nthis line is garbage\n{{\"time\":42}}\n{}\n{{\"time\":\"2026-11-26T00:00:0",
        event_line("first", "down"),
        event_line("second", "up"),
        event_line("third", "down"),
    );
    fs::write(state.path().join("events.jsonl"), events).unwrap();

    let mut server = Server::start(&with_state_dir(state.path()), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    assert_failover_to(&server, &REGIONS[0]);
    let reasons = |server: &Server| -> Vec<String> {
        server
            .events(100)
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        reasons(&server),
        ["third", "second", "first"],
        "newest first"
    );
    let log = server.log();
    assert!(
        log.contains("regions.json"),
        "damaged regions.json logged:\n{log}"
    );
    assert!(
        log.contains("events.jsonl"),
        "damaged events logged:\n{log}"
    );

    // New events go on after the torn line and survive a restart.
    server.force("us-east-1", "down");
    server.restart();
    server.wait_ready(Duration::from_secs(10));
    let got = reasons(&server);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[1..], ["third", "second", "first"], "{got:?}");
    assert_eq!(server.region_status("us-east-1")["forced"], "down");
    assert_failover_to(&server, &REGIONS[1]);
    let text = fs::read_to_string(state.path().join("regions.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).expect("regions.json rewritten whole");
}

// ---------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------

/// (what, method, path, headers, body, acceptable statuses)
type AdminCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    &'a [u16],
);

/// What an admin call must not change.
fn admin_state(server: &Server) -> serde_json::Value {
    let status = server.status();
    let regions: Vec<serde_json::Value> = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!([r["name"], r["forced"], r["state"], r["healthy"]]))
        .collect();
    serde_json::json!({
        "config_version": status["config_version"],
        "regions": regions,
        "events": server.events(1000).len(),
    })
}

#[test]
fn bad_admin_requests_get_json_errors_and_change_nothing() {
    let config = replace_once(
        &default_config(),
        r#"nsid         = "ns1.test""#,
        &format!("nsid = \"ns1.test\"\nadmin_token = \"{TOKEN}\""),
    );
    let server = Server::start(&config, &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let before = admin_state(&server);
    let auth = format!("Bearer {TOKEN}");
    let json_auth: [(&str, &str); 2] = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let mut huge = br#"{"state":"down""#.to_vec();
    huge.resize(1 << 20, b' ');
    huge.push(b'}');
    let state = "/admin/regions/us-east-1/state";
    let cases: Vec<AdminCase> = vec![
        (
            "bad JSON",
            "POST",
            state,
            json_auth.to_vec(),
            b"{\"state\": down".to_vec(),
            &[400],
        ),
        (
            "not an object",
            "POST",
            state,
            json_auth.to_vec(),
            b"[1,2,3]".to_vec(),
            &[400],
        ),
        (
            "unknown state",
            "POST",
            state,
            json_auth.to_vec(),
            br#"{"state":"sideways"}"#.to_vec(),
            &[400],
        ),
        (
            "extra field",
            "POST",
            state,
            json_auth.to_vec(),
            br#"{"state":"down","x":1}"#.to_vec(),
            &[400],
        ),
        (
            "empty body",
            "POST",
            state,
            json_auth.to_vec(),
            Vec::new(),
            &[400],
        ),
        (
            "binary body",
            "POST",
            state,
            json_auth.to_vec(),
            vec![0xff, 0x00, 0xfe, 0x7b],
            &[400],
        ),
        (
            "1 MiB body",
            "POST",
            state,
            json_auth.to_vec(),
            huge,
            &[413],
        ),
        (
            "unknown region",
            "POST",
            "/admin/regions/mars-1/state",
            json_auth.to_vec(),
            br#"{"state":"down"}"#.to_vec(),
            &[404],
        ),
        (
            "unknown region readmit",
            "POST",
            "/admin/regions/mars-1/readmit",
            json_auth.to_vec(),
            Vec::new(),
            &[404],
        ),
        (
            "wrong method",
            "GET",
            state,
            json_auth.to_vec(),
            Vec::new(),
            &[405],
        ),
        (
            "wrong method on reload",
            "DELETE",
            "/admin/reload",
            json_auth.to_vec(),
            Vec::new(),
            &[405],
        ),
        (
            "wrong token",
            "POST",
            state,
            vec![
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer not-the-token-at-all"),
            ],
            br#"{"state":"down"}"#.to_vec(),
            &[401],
        ),
        (
            "token prefix only",
            "POST",
            state,
            vec![("Authorization", &auth[..auth.len() - 1])],
            br#"{"state":"down"}"#.to_vec(),
            &[401],
        ),
        (
            "no token",
            "POST",
            state,
            vec![("Content-Type", "application/json")],
            br#"{"state":"down"}"#.to_vec(),
            &[401],
        ),
        (
            "basic auth",
            "POST",
            state,
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
            br#"{"state":"down"}"#.to_vec(),
            &[401],
        ),
        (
            "no token, reload",
            "POST",
            "/admin/reload",
            Vec::new(),
            Vec::new(),
            &[401],
        ),
        (
            "no token, readmit",
            "POST",
            "/admin/regions/us-east-1/readmit",
            Vec::new(),
            Vec::new(),
            &[401],
        ),
        (
            "unknown path",
            "POST",
            "/admin/regions/us-east-1/explode",
            json_auth.to_vec(),
            Vec::new(),
            &[404],
        ),
        (
            "bad limit",
            "GET",
            "/events?limit=lots",
            Vec::new(),
            Vec::new(),
            &[400],
        ),
    ];
    let mut failures = Vec::new();
    for (what, method, path, headers, body, want) in &cases {
        // A server refusing a big body early may reset the connection
        // before its answer is read; try again before calling it missing.
        let reply = (0..3)
            .find_map(|_| http_request(server.admin_addr(), method, path, headers, body).ok())
            .unwrap_or_else(|| panic!("{what}: no HTTP response in 3 tries"));
        if !want.contains(&reply.status) {
            failures.push(format!(
                "{what}: {method} {path} gave {} instead of {want:?}: {reply:?}",
                reply.status
            ));
        }
        match serde_json::from_str::<serde_json::Value>(&reply.body) {
            Ok(body) if body["error"].as_str().is_some_and(|e| !e.is_empty()) => {}
            _ => failures.push(format!(
                "{what}: {method} {path}: error body is not JSON {{\"error\": ...}}: {} {:?} ({:?})",
                reply.status,
                reply.body,
                reply.header("content-type")
            )),
        }
        // Nothing changed, whatever the answer was.
        assert_eq!(admin_state(&server), before, "{what}: something changed");
        assert_failover_to(&server, &REGIONS[0]);
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad admin requests not answered as docs/reference.md §4 says:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The right token still works afterwards.
    let reply = server.post(state, r#"{"state":"down"}"#, Some(TOKEN));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_failover_to(&server, &REGIONS[1]);
}

// ---------------------------------------------------------------------------
// Hostile health endpoints
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// 302 to itself, forever.
    RedirectLoop,
    /// 200 and a body that never ends (and never says "ok").
    EndlessBody,
    /// Bytes that are not HTTP.
    Garbage,
    /// A valid answer, one byte every 200 ms.
    Trickle,
}

/// A loopback endpoint that misbehaves as told. Each connection is held
/// at most 20 s; stops on drop.
struct HostileStub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl HostileStub {
    fn start(kind: Hostile) -> HostileStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let stub = HostileStub {
            addr: listener.local_addr().unwrap(),
            stop: Arc::new(AtomicBool::new(false)),
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let (stop, connections, addr) = (stub.stop.clone(), stub.connections.clone(), stub.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        connections.fetch_add(1, Ordering::Relaxed);
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            let _ = misbehave(stream, kind, addr, &stop);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        stub
    }
}

impl Drop for HostileStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn misbehave(
    mut stream: TcpStream,
    kind: Hostile,
    addr: SocketAddr,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    read_head(&mut stream)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    match kind {
        Hostile::RedirectLoop => write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/health\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Hostile::EndlessBody => {
            stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            )?;
            let chunk = [b'x'; 8192];
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                stream.write_all(&chunk)?;
            }
            Ok(())
        }
        Hostile::Garbage => {
            stream.write_all(b"\x00\xff\x13garbage, not HTTP at all\r\n\x7f\x80\r\n\r\n")?;
            Ok(())
        }
        Hostile::Trickle => {
            let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            for b in answer {
                if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                    break;
                }
                stream.write_all(&[*b])?;
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(())
        }
    }
}

/// Regions of the hostile config: (name, kind, expected healthy).
const HOSTILE: [(&str, Hostile, bool); 4] = [
    ("redirect-1", Hostile::RedirectLoop, true),
    ("endless-1", Hostile::EndlessBody, false),
    ("garbage-1", Hostile::Garbage, false),
    ("trickle-1", Hostile::Trickle, false),
];

fn hostile_config(stubs: &[HostileStub]) -> String {
    let mut text = String::from(
        r#"[server]
dns_listen   = ["{DNS}"]
admin_listen = "{ADMIN}"
region       = "good-1"
state_dir    = "state"

[zone]
origin = "keiko.example.com."
file   = "keiko.example.com.zone"

[health]
interval           = "2s"
timeout            = "1s"
fast_interval      = "1s"
failure_threshold  = 1
recovery_threshold = 1

[[regions]]
name       = "good-1"
priority   = 1
weight     = 10
endpoint   = "https://good.keiko.example.com"
addresses  = ["192.0.2.10"]
health_url = "http://{HEALTH0}/health"
"#,
    );
    for (i, ((name, kind, _), stub)) in HOSTILE.iter().zip(stubs).enumerate() {
        text += &format!(
            "\n[[regions]]\nname       = \"{name}\"\npriority   = {}\nweight     = 10\n\
             endpoint   = \"https://{name}.keiko.example.com\"\naddresses  = [\"192.0.2.{}\"]\n\
             health_url = \"http://{}/health\"\n",
            i + 2,
            i + 20,
            stub.addr
        );
        if matches!(kind, Hostile::EndlessBody) {
            text += "expect_body = \"ok\"\n";
        }
    }
    text += "\n[[records]]\nname   = \"api-contracts\"\npolicy = \"failover\"\n";
    text
}

#[test]
fn hostile_health_endpoints_get_a_verdict_within_the_timeout() {
    let stubs: Vec<HostileStub> = HOSTILE.iter().map(|h| HostileStub::start(h.1)).collect();
    let config = hostile_config(&stubs);

    // One round with `keiko-dns test`: every probe ends by timeout + 1 s.
    let ws = Workspace::new(&config, &default_zone());
    let start = Instant::now();
    let out = ws.run(&["test", "--config", ws.config_path().to_str().unwrap()]);
    let took = start.elapsed();
    let text = output_text(&out);
    assert!(
        took < Duration::from_secs(2),
        "one round took {took:?}:\n{text}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "some regions are unhealthy:\n{text}"
    );
    for (name, _, healthy) in HOSTILE {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        let says_unhealthy = line.to_lowercase().contains("unhealthy");
        assert_eq!(!says_unhealthy, healthy, "{name}: {line}");
    }

    // A running server: verdicts in /status, short reasons, and it stays
    // responsive all along.
    let server = Server::start(&config, &default_zone());
    let client = server.udp();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut slowest_dns = Duration::ZERO;
    let mut slowest_status = Duration::ZERO;
    let mut verdicts = None;
    while Instant::now() < deadline {
        let t = Instant::now();
        let answer = client.query(FAILOVER_NAME, RecordType::A);
        slowest_dns = slowest_dns.max(t.elapsed());
        assert_addresses(&answer, &[ip("192.0.2.10")]);
        let t = Instant::now();
        let status = server.status();
        slowest_status = slowest_status.max(t.elapsed());
        let regions = status["regions"].as_array().unwrap().clone();
        let checked = HOSTILE.iter().all(|(name, _, _)| {
            regions
                .iter()
                .any(|r| r["name"] == *name && !r["last_check"].is_null())
        });
        if checked && start.elapsed() > Duration::from_secs(3) {
            verdicts = Some(regions);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let regions = verdicts.unwrap_or_else(|| {
        panic!(
            "not every hostile region got a verdict; log:\n{}",
            server.log()
        )
    });
    for (name, kind, healthy) in HOSTILE {
        let r = regions.iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(r["healthy"], healthy, "{kind:?}: {r:#}");
        if !healthy {
            let reason = r["last_error"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind:?}: no reason: {r:#}"));
            assert!(
                !reason.is_empty() && reason.len() <= 120 && !reason.contains('\n'),
                "{kind:?}: reason should be short: {reason:?}"
            );
            if let Hostile::Trickle = kind {
                assert!(reason.contains("timed out"), "{kind:?}: {reason:?}");
            }
            if let Hostile::EndlessBody = kind {
                assert!(reason.contains("body"), "{kind:?}: {reason:?}");
            }
        }
        let latency = r["latency_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("{kind:?}: a checked region has a latency: {r:#}"));
        assert!(latency < 2.0, "{kind:?}: probe took {latency}s: {r:#}");
    }
    // The redirect is not followed: one connection per probe, not a chain.
    let probes_at_most = (start.elapsed().as_secs_f64() / 1.8).ceil() as usize + 2;
    let redirects = stubs[0].connections.load(Ordering::Relaxed);
    assert!(
        redirects <= probes_at_most,
        "{redirects} connections to the redirect loop in {:?}: redirects are followed",
        start.elapsed()
    );
    assert!(
        slowest_dns < Duration::from_millis(500),
        "DNS stalled {slowest_dns:?}"
    );
    assert!(
        slowest_status < Duration::from_secs(1),
        "/status stalled {slowest_status:?}"
    );
}

// ---------------------------------------------------------------------------
// DNS packets
// ---------------------------------------------------------------------------

const FORMERR: u8 = 1;
const REFUSED: u8 = 5;

/// A header with ID `id`, no flags, and the four counts.
fn header(id: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p
}

/// `status.keiko.example.com.` in wire form.
fn status_name() -> Vec<u8> {
    let mut n = Vec::new();
    for label in ["status", "keiko", "example", "com"] {
        n.push(label.len() as u8);
        n.extend_from_slice(label.as_bytes());
    }
    n.push(0);
    n
}

fn question(name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = name.to_vec();
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

fn rcode_of(answer: &[u8]) -> u8 {
    answer[3] & 0x0f
}

/// Sends over UDP and over TCP; both answers, raw.
fn both(server: &Server, packet: &[u8]) -> [Option<Vec<u8>>; 2] {
    let udp = server.raw_udp(packet);
    let mut stream = tcp_connect(server.dns_addr());
    stream.write_all(&frame(packet)).unwrap();
    let tcp = read_frame(&mut stream).ok();
    [udp, tcp]
}

fn assert_rcode(server: &Server, what: &str, packet: &[u8], rcode: u8) {
    for (proto, answer) in ["UDP", "TCP"].iter().zip(both(server, packet)) {
        let answer = answer.unwrap_or_else(|| panic!("{what} ({proto}): no answer"));
        assert!(answer.len() >= 12, "{what} ({proto}): short {answer:02x?}");
        assert_eq!(answer[..2], packet[..2], "{what} ({proto}): ID echoed");
        assert!(answer[2] & 0x80 != 0, "{what} ({proto}): QR set");
        assert_eq!(
            rcode_of(&answer),
            rcode,
            "{what} ({proto}): rcode in {answer:02x?}"
        );
    }
}

#[test]
fn hostile_dns_packets_get_formerr_or_refused_and_never_crash() {
    let mut server = Server::start_default();
    let a = RecordType::A.into();
    let txt: u16 = RecordType::TXT.into();
    let in_class = 1u16;
    let good_q = question(&status_name(), a, in_class);

    // Compression pointers in the question.
    let mut p = header(0x1001, [1, 0, 0, 0]);
    p.extend(question(&[0xc0, 0x0c], a, in_class));
    assert_rcode(&server, "question name points at itself", &p, FORMERR);
    let mut p = header(0x1002, [1, 0, 0, 0]);
    p.extend(question(&[3, b'f', b'o', b'o', 0xc0, 0x0c], a, in_class));
    assert_rcode(
        &server,
        "question name loops back to its start",
        &p,
        FORMERR,
    );
    let mut p = header(0x1003, [1, 0, 0, 0]);
    p.extend(question(&[0xc0, 0xff], a, in_class));
    assert_rcode(&server, "pointer past the end", &p, FORMERR);
    let mut p = header(0x1004, [1, 0, 0, 0]);
    p.extend_from_slice(&[3, b'f', b'o', b'o', 0xc0]);
    assert_rcode(&server, "pointer cut in half", &p, FORMERR);
    let mut p = header(0x1005, [1, 0, 0, 0]);
    p.extend(question(&[0x40, b'x', 0], a, in_class));
    assert_rcode(&server, "extended label type", &p, FORMERR);
    let mut p = header(0x1006, [1, 0, 0, 0]);
    p.extend_from_slice(&[63]);
    p.extend_from_slice(&[b'a'; 10]);
    assert_rcode(&server, "label longer than the packet", &p, FORMERR);

    // QDCOUNT > 1.
    for (id, qd) in [(0x1101u16, 2u16), (0x1102, 3), (0x1103, 0xffff)] {
        let mut p = header(id, [qd, 0, 0, 0]);
        for _ in 0..qd.min(3) {
            p.extend(&good_q);
        }
        assert_rcode(&server, &format!("QDCOUNT={qd}"), &p, FORMERR);
    }

    // Loops in other sections must not trap the server: a sane answer on
    // both transports (the question is fine, so there is one to give).
    let record_at = |packet: &[u8]| -> Vec<u8> {
        // Owner: a pointer to itself; type A, class IN, TTL 0, 4 bytes.
        let here = packet.len() as u16;
        let mut rr = (0xc000 | here).to_be_bytes().to_vec();
        rr.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
        rr
    };
    for (what, counts) in [
        ("loop in the answer section", [1, 1, 0, 0]),
        ("loop in the authority section", [1, 0, 1, 0]),
        ("loop in the additional section", [1, 0, 0, 1]),
    ] {
        let mut p = header(0x1200, counts);
        p.extend(&good_q);
        let rr = record_at(&p);
        p.extend(rr);
        for (proto, answer) in ["UDP", "TCP"].iter().zip(both(&server, &p)) {
            let answer = answer.unwrap_or_else(|| panic!("{what} ({proto}): no answer"));
            assert_eq!(answer[..2], p[..2], "{what} ({proto})");
            assert!(
                [0, FORMERR].contains(&rcode_of(&answer)),
                "{what} ({proto}): {answer:02x?}"
            );
        }
        server.assert_alive();
    }
    // An additional record whose pointer goes past the end.
    let mut p = header(0x1300, [1, 0, 0, 1]);
    p.extend(&good_q);
    p.extend_from_slice(&[0xc3, 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
    assert_rcode(&server, "additional pointer past the end", &p, FORMERR);
    server.assert_alive();

    // Classes other than IN and CH: REFUSED.
    for (id, class) in [
        (0x1401u16, 4u16),
        (0x1402, 0),
        (0x1403, 0x1234),
        (0x1404, 254),
    ] {
        let mut p = header(id, [1, 0, 0, 0]);
        p.extend(question(&status_name(), a, class));
        assert_rcode(&server, &format!("class {class}"), &p, REFUSED);
    }
    // CH for a name that is not a server identity: REFUSED.
    let mut p = header(0x1405, [1, 0, 0, 0]);
    p.extend(question(&status_name(), txt, 3));
    assert_rcode(&server, "CH status.keiko.example.com", &p, REFUSED);

    server.assert_alive();
    assert_addresses(&server.query_udp("status", RecordType::A), &[ip(STATUS_V4)]);
    assert_addresses(&server.query_tcp("status", RecordType::A), &[ip(STATUS_V4)]);
}

fn chaos_query(name: &str) -> Message {
    let mut m = Message::query_for(name, RecordType::TXT);
    let mut q = m.queries[0].clone();
    q.set_query_class(DNSClass::CH);
    m.queries = vec![q];
    m
}

fn txt_of(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn chaos_identity_queries_answer_from_config_or_are_refused() {
    let config = replace_once(
        &default_config(),
        r#"nsid         = "ns1.test""#,
        "nsid = \"ns1.test\"\nversion = \"keiko-test 1.0\"",
    );
    let server = Server::start(&config, &default_zone());
    for (name, want) in [
        ("version.bind.", "keiko-test 1.0"),
        ("VERSION.Bind.", "keiko-test 1.0"),
        ("version.server.", "keiko-test 1.0"),
        ("id.server.", "ns1.test"),
        ("hostname.bind.", "ns1.test"),
    ] {
        for answer in [
            server.exchange_udp(&chaos_query(name)),
            server.exchange_tcp(&chaos_query(name)),
        ] {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{name}: {answer:#?}"
            );
            assert_eq!(
                txt_of(&answer),
                vec![want.to_string()],
                "{name}: {answer:#?}"
            );
            let record = &answer.answers[0];
            assert_eq!(record.dns_class, DNSClass::CH, "{name}");
            assert_eq!(record.name, Name::from_ascii(name).unwrap(), "{name}");
        }
    }
    let other = server.exchange_udp(&chaos_query("authors.bind."));
    assert_eq!(
        other.metadata.response_code,
        ResponseCode::Refused,
        "{other:#?}"
    );

    // Neither set: REFUSED, never an empty or made-up answer.
    let config = replace_once(&default_config(), r#"nsid         = "ns1.test""#, "");
    let server = Server::start(&config, &default_zone());
    for name in [
        "version.bind.",
        "version.server.",
        "id.server.",
        "hostname.bind.",
    ] {
        for answer in [
            server.exchange_udp(&chaos_query(name)),
            server.exchange_tcp(&chaos_query(name)),
        ] {
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name}: {answer:#?}"
            );
            assert!(answer.answers.is_empty(), "{name}: {answer:#?}");
        }
    }
}
