use super::*;

#[test]
fn parse_accepts_bare_addresses_as_subnets() {
    let r = Request::parse("api", Some("192.0.2.1"), Some("81.2.69.142")).unwrap();
    assert_eq!(r.subnet, Some("81.2.69.142/32".parse().unwrap()));
    assert_eq!(r.client, Some("192.0.2.1".parse().unwrap()));
}

#[test]
fn parse_rejects_bad_input_with_examples() {
    let e = Request::parse("api", Some("nope"), None).unwrap_err();
    assert!(e.to_string().contains("192.0.2.1"), "{e}");
    let e = Request::parse("api", None, Some("1.2.3.4/40")).unwrap_err();
    assert!(e.to_string().contains("prefix length"), "{e}");
    assert!(Request::parse("a..b", None, None).is_err());
}

#[test]
fn names_resolve_against_the_origin() {
    let origin = Name::from_ascii("keiko.example.com.").unwrap();
    let r = |t| resolve(t, &origin).unwrap().to_string();
    assert_eq!(r("api"), "api.keiko.example.com.");
    assert_eq!(r("API.keiko.example.com"), "api.keiko.example.com.");
    assert_eq!(r("api.keiko.example.com."), "api.keiko.example.com.");
    assert_eq!(r("@"), "keiko.example.com.");
    assert_eq!(r("example.org."), "example.org.");
}

#[test]
fn a_zero_length_subnet_falls_back_to_the_client() {
    let r = Request::parse("api", Some("192.0.2.1"), Some("0.0.0.0/0")).unwrap();
    let l = locate(&r);
    assert_eq!(l.source, "client");
    assert_eq!(l.address.as_deref(), Some("192.0.2.1"));
}

/// The shipped default config (GeoIP fixture, `[residency.eu]`).
fn shipped(healthy: [bool; 3]) -> Snapshot {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml");
    let loaded = crate::control::load(&path).unwrap();
    let compiled = crate::snapshot::Compiled::build(loaded.config, loaded.zone, loaded.geo, 1);
    Snapshot::new(std::sync::Arc::new(compiled.unwrap()), healthy.to_vec(), 7)
}

fn ask(snap: &Snapshot, name: &str, subnet: Option<&str>) -> Explanation {
    explain(snap, &Request::parse(name, None, subnet).unwrap()).unwrap()
}

#[test]
fn an_eu_client_is_held_in_its_residency_block_even_failing_open() {
    let e = ask(
        &shipped([true; 3]),
        "api-contracts-geo",
        Some("81.2.69.142/32"),
    );
    assert_eq!(e.kind, Kind::Steered);
    assert_eq!(e.geoip.country.as_deref(), Some("GB"));
    assert_eq!(e.geoip.continent.as_deref(), Some("EU"));
    let s = e.steering.unwrap();
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s.residency.as_ref().unwrap().block, "eu");
    assert_eq!(s.residency.as_ref().unwrap().matched, "continent EU");
    assert_eq!(s.preference.unwrap().source, "continent EU");
    assert!(s.ecs_scope.is_some_and(|p| p > 0));
    assert!(!s.fail_open);

    let s = ask(
        &shipped([true, false, true]),
        "api-contracts",
        Some("81.2.69.142/32"),
    )
    .steering
    .unwrap();
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert!(s.fail_open);
    assert_eq!(s.candidates.len(), 1, "only the block's regions");
}

#[test]
fn country_lists_override_continents() {
    let s = ask(
        &shipped([true; 3]),
        "api-contracts-geo",
        Some("2001:218::1/48"),
    )
    .steering
    .unwrap();
    assert_eq!(s.preference.unwrap().source, "country JP");
    assert_eq!(s.region.as_deref(), Some("ap-southeast-1"));
    assert!(s.residency.is_none());
}

#[test]
fn weighted_reports_shares_and_no_single_region() {
    let s = ask(
        &shipped([true, false, true]),
        "api-contracts-weighted",
        None,
    )
    .steering
    .unwrap();
    assert_eq!(s.region, None);
    let shares: Vec<_> = s.candidates.iter().map(|c| c.share_percent).collect();
    assert_eq!(shares, [Some(66.7), Some(0.0), Some(33.3)]);
    assert_eq!(s.ecs_scope, None, "no ECS in the query");
}

#[test]
fn static_missing_and_foreign_names() {
    let snap = shipped([true; 3]);
    let e = ask(&snap, "status", None);
    assert_eq!(e.kind, Kind::Static);
    assert!(e.static_records.iter().any(|r| r.contains("192.0.2.80")));
    assert_eq!(ask(&snap, "nothing-here", None).kind, Kind::Nxdomain);
    assert_eq!(ask(&snap, "example.org.", None).kind, Kind::OutOfZone);
    assert_eq!(ask(&snap, "@", None).kind, Kind::Static);
}
