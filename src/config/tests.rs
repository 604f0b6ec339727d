use std::path::Path;

use super::*;
pub(super) use crate::testutil::CONFIG;

pub(super) fn errors(text: &str) -> Vec<Diagnostic> {
    match Config::parse(Path::new("/etc/keiko/keiko.toml"), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError::Invalid(found)) => found,
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Checks that `text` has exactly one error, and that it names `key` on
/// `line` and says `words`.
pub(super) fn one_error(text: &str, key: &str, line: usize, words: &str) {
    let found = errors(text);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    let [hit] = found.as_slice() else {
        panic!(
            "expected exactly one error, found {}: {shown:#?}",
            found.len()
        );
    };
    assert_eq!(hit.key, key, "{shown:#?}");
    assert!(hit.message.contains(words), "{words:?} not in {shown:#?}");
    assert_eq!(hit.line, line, "{shown:#?}");
    assert!(
        hit.to_string()
            .starts_with(&format!("/etc/keiko/keiko.toml:{line}:")),
        "{hit}"
    );
}

pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

pub(super) fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n - 1)
        .expect("needle")
        .0
        + 1
}

pub(super) fn replace(from: &str, to: &str) -> String {
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
        found[0].message.contains("unknown key `listen`"),
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
fn parse_errors_name_the_key_inside_arrays_of_tables() {
    let text = replace("weight    = 40", "weight    = \"forty\"");
    one_error(
        &text,
        "regions.weight",
        line_of(&text, "forty"),
        "expected a whole number, found the string \"forty\"",
    );
}

#[test]
fn an_unknown_table_after_records_is_a_top_level_key() {
    let text = format!("{CONFIG}\n[cluster]\ninstance = \"ns1\"\n");
    one_error(
        &text,
        "cluster",
        line_of(&text, "[cluster]"),
        "unknown key `cluster`",
    );
}

#[test]
fn no_library_words_reach_the_operator() {
    for bad in [
        replace("weight    = 40", "weight    = \"forty\""),
        replace("priority  = 1", "priority  = [1]"),
        format!("{CONFIG}\n[health]\ninterval = 30\n"),
        format!("{CONFIG}\n[health]\nrecovery = 1\n"),
    ] {
        for d in errors(&bad) {
            for word in ["i64", "u32", "invalid type", "sequence", "field"] {
                assert!(!d.message.contains(word), "{word:?} in {d}");
            }
        }
    }
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
