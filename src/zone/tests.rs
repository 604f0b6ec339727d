use super::*;
use std::str::FromStr;

fn origin() -> Name {
    Name::from_str("keiko.example.com.").unwrap()
}

const GOOD: &str = "$ORIGIN keiko.example.com.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster (\n  2026112601 7200 3600 1209600 300 )\n\
@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.53\nns2 IN AAAA 2001:db8::53\n\
www IN CNAME api\napi IN A 192.0.2.1\n@ IN MX 10 mail\nmail IN A 192.0.2.25\n\
@ IN TXT \"v=spf1 -all\"\n@ IN CAA 0 issue \"letsencrypt.org\"\na.b.c IN A 192.0.2.9\n";

fn parse(text: &str) -> Result<Zone, ZoneError> {
    Zone::parse(Path::new("test.zone"), text, &origin())
}

#[test]
fn loads_a_complete_zone() {
    let zone = parse(GOOD).unwrap();
    assert_eq!(zone.serial, 2026112601);
    assert_eq!(zone.negative_ttl(), 300);
    assert!(zone.contains(&Name::from_str("WWW.keiko.example.com.").unwrap()));
    assert!(zone.contains(&Name::from_str("a.b.c.keiko.example.com.").unwrap()));
}

fn error_line(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ZoneError::Invalid(p)) => (p.line, p.to_string()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn syntax_error_names_its_line() {
    let text = format!("{GOOD}bad IN A 300.1.2.3\nok IN A 192.0.2.2\n");
    let (line, _) = error_line(&text);
    assert_eq!(line, 16);
}

#[test]
fn out_of_zone_data_is_refused() {
    let (line, message) = error_line(&format!("{GOOD}other.example.net. IN A 192.0.2.1\n"));
    assert_eq!(line, 16);
    assert!(message.contains("outside the zone"), "{message}");
}

#[test]
fn cname_beside_other_data_is_refused() {
    let (line, message) = error_line(&format!("{GOOD}www IN A 192.0.2.3\n"));
    assert_eq!(line, 16);
    assert!(message.contains("CNAME beside other data"), "{message}");
}

#[test]
fn missing_soa_is_refused() {
    let (_, message) =
        error_line("$ORIGIN keiko.example.com.\n@ 60 IN NS ns1\nns1 60 IN A 192.0.2.1\n");
    assert!(message.contains("no SOA"), "{message}");
}

#[test]
fn syntax_errors_quote_the_entry_without_library_words() {
    let (_, message) = error_line(&format!("{GOOD}bad IN A 300.1.2.3\n"));
    assert!(
        message.starts_with("test.zone:16:1: bad IN A 300.1.2.3: "),
        "{message}"
    );
    assert!(message.contains("not an IPv4 address"), "{message}");
    let (_, message) = error_line(&format!("{GOOD}x IN BOGUS foo\n"));
    assert!(
        message.contains("\"BOGUS\" is not a record type"),
        "{message}"
    );
    assert!(!message.contains("proto error"), "{message}");
}

#[test]
fn a_zone_for_another_origin_says_so() {
    let other = Name::from_str("example.com.").unwrap();
    let message = match Zone::parse(Path::new("test.zone"), GOOD, &other) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted a zone for another origin"),
    };
    assert!(
        message.contains("the zone file's origin does not match zone.origin"),
        "{message}"
    );
    assert!(message.starts_with("test.zone:3:1: "), "{message}");
}

#[test]
fn errors_inside_an_include_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inc.zone"),
        "ok IN A 192.0.2.7\nbad IN AAAA 1.2.3.4\n",
    )
    .unwrap();
    let path = dir.path().join("main.zone");
    let text = format!("{GOOD}$INCLUDE inc.zone\n");
    let message = match Zone::parse(&path, &text, &origin()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted a bad include"),
    };
    let inc = dir.path().join("inc.zone");
    assert!(
        message.starts_with(&format!("{}:2:1: bad IN AAAA 1.2.3.4: ", inc.display())),
        "{message}"
    );
    assert!(message.contains("included from"), "{message}");
    let text = format!("{GOOD}$INCLUDE missing.zone\n");
    let message = Zone::parse(&path, &text, &origin())
        .unwrap_err()
        .to_string();
    assert!(message.contains("$INCLUDE missing.zone"), "{message}");
    assert!(
        message.contains("cannot read the $INCLUDE file"),
        "{message}"
    );
}

#[test]
fn empty_non_terminals_exist() {
    let zone = parse(GOOD).unwrap();
    assert!(zone.has_name(&Name::from_str("b.c.keiko.example.com.").unwrap()));
    assert!(!zone.has_name(&Name::from_str("nope.keiko.example.com.").unwrap()));
}

#[test]
fn entries_span_parentheses() {
    let ends = entry_ends("a ( 1\n 2 ) ; c\n\n b\n");
    assert_eq!(ends.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 4]);
}

#[test]
fn a_star_is_a_wildcard_only_as_the_whole_first_label() {
    let name = |s: &str| hickory_proto::rr::Name::from_ascii(s).unwrap();
    assert_eq!(super::misplaced_star(&name("*.apps.example.com.")), None);
    assert_eq!(super::misplaced_star(&name("apps.example.com.")), None);
    for bad in ["x.*.apps.example.com.", "*.*.example.com."] {
        let n = name(bad);
        assert!(
            super::misplaced_star(&n).is_some(),
            "{bad}: {:?}",
            n.iter().collect::<Vec<_>>()
        );
    }
}
