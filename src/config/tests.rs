use std::path::Path;

use super::*;
use crate::testutil::CONFIG;

fn errors(text: &str) -> Vec<Diagnostic> {
    match Config::parse(Path::new("/etc/keiko/keiko.toml"), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError::Invalid(found)) => found,
        Err(e) => panic!("unexpected {e}"),
    }
}

/// The one error of `text`, checked to name `key` on `line`.
fn one_error(text: &str, key: &str, line: usize, words: &str) {
    let found = errors(text);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    let hit = found
        .iter()
        .find(|d| d.key == key && d.message.contains(words))
        .unwrap_or_else(|| panic!("no error on {key} saying {words:?}: {shown:#?}"));
    assert_eq!(hit.line, line, "{shown:#?}");
    assert!(
        hit.to_string()
            .starts_with(&format!("/etc/keiko/keiko.toml:{line}:")),
        "{hit}"
    );
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n - 1)
        .expect("needle")
        .0
        + 1
}

fn replace(from: &str, to: &str) -> String {
    assert!(CONFIG.contains(from), "fixture lacks {from}");
    CONFIG.replacen(from, to, 1)
}

#[test]
fn the_fixture_is_valid_and_paths_resolve_against_its_folder() {
    let c = Config::parse(Path::new("/etc/keiko/keiko.toml"), CONFIG).unwrap();
    assert_eq!(c.zone.file, Path::new("/etc/keiko/zone"));
    assert_eq!(c.server.state_dir, Path::new("/etc/keiko/var"));
    assert_eq!(c.health.interval, Duration::from_secs(30));
    assert_eq!(c.records[0].ttl, 60);
    assert_eq!(c.records[2].policy, Policy::Region(2));
    assert_eq!(c.by_priority(), vec![0, 1, 2]);
    assert_eq!(c.geoip.default, vec![0, 1, 2]);
}

#[test]
fn unknown_keys_are_errors_that_list_what_is_allowed() {
    let text = replace(
        "region       = \"us-east-1\"",
        "region       = \"us-east-1\"\nlisten = 1",
    );
    let found = errors(&text);
    assert_eq!(found[0].line, line_of(&text, "listen = 1"));
    assert!(
        found[0].message.contains("unknown field `listen`"),
        "{}",
        found[0]
    );
    assert!(found[0].message.contains("dns_listen"), "{}", found[0]);
}

#[test]
fn wrong_types_are_errors() {
    let text = replace("weight    = 40", "weight    = \"forty\"");
    let found = errors(&text);
    assert_eq!(found[0].line, line_of(&text, "forty"));
}

#[test]
fn durations_must_parse() {
    let text = format!("{CONFIG}\n[health]\ninterval = \"soon\"\n");
    one_error(
        &text,
        "health.interval",
        line_of(&text, "soon"),
        "invalid duration",
    );
}

#[test]
fn parse_errors_name_the_key_inside_arrays_of_tables() {
    let text = replace("weight    = 40", "weight    = \"forty\"");
    one_error(
        &text,
        "regions.weight",
        line_of(&text, "forty"),
        "invalid type",
    );
    let text = format!("{CONFIG}\n[health]\nrecovery = \"sometimes\"\n");
    one_error(
        &text,
        "health.recovery",
        line_of(&text, "sometimes"),
        "manual",
    );
}

#[test]
fn timeout_must_not_exceed_interval() {
    let text = format!(
        "{CONFIG}\n[health]\ninterval = \"5s\"\ntimeout = \"10s\"\nfast_interval = \"1s\"\n"
    );
    one_error(
        &text,
        "health.timeout",
        line_of(&text, "timeout ="),
        "must not exceed",
    );
}

#[test]
fn records_must_name_known_regions() {
    let text = replace("region = \"ap-southeast-1\"", "region = \"mars-1\"");
    one_error(
        &text,
        "records.region",
        line_of(&text, "mars-1"),
        "unknown region \"mars-1\"",
    );
}

#[test]
fn region_names_must_be_unique() {
    let text = replace("name      = \"eu-west-1\"", "name      = \"us-east-1\"");
    one_error(
        &text,
        "regions.name",
        nth_line_of(&text, "name      = \"us-east-1\"", 2),
        "defined twice",
    );
}

#[test]
fn record_names_must_be_unique() {
    let text = replace(
        "name   = \"api-contracts-weighted\"",
        "name   = \"API-contracts\"",
    );
    one_error(
        &text,
        "records.name",
        line_of(&text, "API-contracts"),
        "defined twice",
    );
}

#[test]
fn priorities_must_differ() {
    let text = replace("priority  = 2", "priority  = 1");
    one_error(
        &text,
        "regions.priority",
        nth_line_of(&text, "priority  = 1", 2),
        "also used by",
    );
}

#[test]
fn weights_must_not_be_negative_or_all_zero() {
    let text = replace("weight    = 20", "weight    = -5");
    one_error(
        &text,
        "regions.weight",
        line_of(&text, "-5"),
        "must not be negative",
    );
    let text = CONFIG
        .replace("weight    = 40", "weight    = 0")
        .replace("weight    = 20", "weight    = 0");
    assert!(
        errors(&text)
            .iter()
            .any(|d| d.key == "regions.weight" && d.message.contains("every region has weight 0"))
    );
}

#[test]
fn addresses_must_parse() {
    let text = replace("\"203.0.113.10\"", "\"203.0.113.300\"");
    one_error(
        &text,
        "regions.addresses",
        line_of(&text, "203.0.113.300"),
        "not an IPv4 or IPv6 address",
    );
}

#[test]
fn geo_and_residency_lists_must_name_known_regions() {
    let text = format!(
        "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\ndefault = [\"us-east-1\", \"moon-1\"]\n[geoip.continents]\nEU = [\"eu-west-1\", \"venus-2\"]\n[residency.eu]\ncontinents = [\"EU\"]\nregions = [\"pluto-9\"]\n"
    );
    one_error(
        &text,
        "geoip.default",
        line_of(&text, "moon-1"),
        "unknown region \"moon-1\"",
    );
    one_error(
        &text,
        "geoip.continents.EU",
        line_of(&text, "venus-2"),
        "unknown region",
    );
    one_error(
        &text,
        "residency.eu.regions",
        line_of(&text, "pluto-9"),
        "unknown region",
    );
}

#[test]
fn continent_and_country_codes_are_checked() {
    let text = format!(
        "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[geoip.continents]\nXX = [\"eu-west-1\"]\n[geoip.countries]\njp = [\"eu-west-1\"]\n"
    );
    one_error(
        &text,
        "geoip.continents",
        line_of(&text, "XX ="),
        "not a continent code",
    );
    one_error(
        &text,
        "geoip.countries",
        line_of(&text, "jp ="),
        "two-letter country code",
    );
}

#[test]
fn a_public_admin_address_needs_a_token() {
    let text = replace(
        "admin_listen = \"127.0.0.1:9300\"",
        "admin_listen = \"0.0.0.0:9300\"",
    );
    one_error(
        &text,
        "server.admin_listen",
        line_of(&text, "0.0.0.0:9300"),
        "admin_token",
    );
    let with_token = text.replace("[zone]", "admin_token = \"0123456789abcdef0123\"\n\n[zone]");
    assert!(Config::parse(Path::new("/k.toml"), &with_token).is_ok());
}

#[test]
fn listen_addresses_must_have_ports() {
    let text = replace("[\"127.0.0.1:5300\"]", "[\"127.0.0.1\"]");
    one_error(
        &text,
        "server.dns_listen",
        line_of(&text, "dns_listen"),
        "not an address with a port",
    );
}

#[test]
fn policy_region_needs_a_region() {
    let text = replace(
        "policy = \"region\"\nregion = \"ap-southeast-1\"",
        "policy = \"region\"",
    );
    one_error(
        &text,
        "records.region",
        line_of(&text, "policy = \"region\""),
        "needs region",
    );
}

#[test]
fn unknown_policies_list_the_allowed_ones() {
    let text = replace("policy = \"failover\"", "policy = \"roundrobin\"");
    let found = errors(&text);
    assert_eq!(found[0].line, line_of(&text, "roundrobin"));
    assert!(found[0].message.contains("failover"), "{}", found[0]);
}

#[test]
fn geo_records_need_a_database() {
    let text = format!("{CONFIG}\n[[records]]\nname = \"g\"\npolicy = \"geo\"\n");
    assert!(errors(&text).iter().any(|d| d.key == "geoip.database"));
}

#[test]
fn record_names_must_be_inside_the_zone() {
    let text = replace(
        "name   = \"api-contracts\"",
        "name   = \"api.example.net.\"",
    );
    one_error(
        &text,
        "records.name",
        line_of(&text, "api.example.net."),
        "not a name inside",
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = CONFIG.replace(
        "[zone]",
        "admin_token = \"s3cret-admin-token-value\"\ncookie_secret = \"000102030405060708090a0b0c0d0e0f\"\n\n[zone]",
    ) + "\n[[notify]]\nurl = \"https://hooks.example.net/T000/B000/XXXXsecretpath\"\ntoken = \"hook-token-value\"\n";
    let config = Config::parse(Path::new("/k.toml"), &text).unwrap();
    let shown = format!("{config:?}");
    for secret in [
        "s3cret-admin-token-value",
        "XXXXsecretpath",
        "hook-token-value",
        "0001020304",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked into {shown}");
    }
}
