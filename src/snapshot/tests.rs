//! Snapshot building and the policies over a health view.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::testutil::{self, CONFIG, ZONE};

const NOWHERE: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

fn with_health(healthy: [bool; 3]) -> Snapshot {
    Snapshot::new(testutil::compiled_from(CONFIG, ZONE), healthy.to_vec(), 2)
}

fn region(snap: &Snapshot, policy: Policy) -> (RegionId, bool) {
    let (choice, scope) = snap.steer(policy, NOWHERE, &mut |_| 0);
    assert_eq!(
        scope, None,
        "no residency: answers do not depend on the client"
    );
    (choice.region, choice.fail_open)
}

#[test]
fn failover_takes_the_first_healthy_region_by_priority() {
    assert_eq!(
        region(&with_health([true, true, true]), Policy::Failover),
        (0, false)
    );
    assert_eq!(
        region(&with_health([false, true, true]), Policy::Failover),
        (1, false)
    );
    assert_eq!(
        region(&with_health([false, false, true]), Policy::Failover),
        (2, false)
    );
}

#[test]
fn all_down_fails_open_to_the_primary() {
    assert_eq!(
        region(&with_health([false, false, false]), Policy::Failover),
        (0, true)
    );
    let snap = with_health([false, false, false]);
    assert!(snap.weighted_default().fail_open);
    assert_eq!(snap.weighted_default().shares().len(), 3);
}

#[test]
fn region_policy_ignores_health() {
    assert_eq!(
        region(&with_health([false, false, false]), Policy::Region(2)),
        (2, false)
    );
}

#[test]
fn weighted_shares_drop_unhealthy_regions() {
    let shares = |h| {
        with_health(h)
            .weighted_default()
            .shares()
            .into_iter()
            .map(|(r, s)| (r, (s * 10.0).round() / 10.0))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shares([true, true, true]),
        vec![(0, 40.0), (1, 40.0), (2, 20.0)]
    );
    assert_eq!(shares([true, false, true]), vec![(0, 66.7), (2, 33.3)]);
    assert_eq!(shares([false, false, true]), vec![(2, 100.0)]);
}

#[test]
fn weighted_draws_map_onto_the_table() {
    let snap = with_health([true, true, true]);
    let table = snap.weighted_default();
    assert_eq!(table.total(), 100);
    // Every (column, unit) pair once: 3 columns of 100 units split 40/40/20.
    let mut counts = [0; 3];
    for column in 0..3 {
        for unit in 0..100 {
            let mut draws = [column, unit].into_iter();
            counts[table.pick(&mut |_| draws.next().unwrap_or(0))] += 1;
        }
    }
    assert_eq!(counts, [120, 120, 60]);
}

#[test]
fn zero_weights_among_the_living_share_equally() {
    let config = CONFIG.replacen("weight    = 20", "weight    = 0", 1);
    let snap = Snapshot::new(
        testutil::compiled_from(&config, ZONE),
        vec![false, false, true],
        1,
    );
    assert_eq!(snap.weighted_default().shares(), vec![(2, 100.0)]);
}

#[test]
fn names_compile_with_empty_non_terminals() {
    let snap = testutil::snapshot();
    // Zone names, steered names and the empty "below" between deep.below and the apex.
    let wire = |n: &str| build::wire(&n.parse().unwrap());
    for name in [
        "keiko.example.com.",
        "below.keiko.example.com.",
        "api-contracts.keiko.example.com.",
    ] {
        assert!(snap.compiled.names.contains_key(&wire(name)), "{name}");
    }
    assert!(matches!(
        snap.compiled.node(&wire("below.keiko.example.com.")),
        Some(Node::Empty)
    ));
}

#[test]
fn in_zone_checks_label_boundaries() {
    let origin = build::wire(&"keiko.example.com.".parse().unwrap());
    let wire = |n: &str| build::wire(&n.parse().unwrap());
    assert!(in_zone(&wire("a.keiko.example.com."), &origin));
    assert!(in_zone(&wire("keiko.example.com."), &origin));
    assert!(!in_zone(&wire("xkeiko.example.com."), &origin));
    assert!(!in_zone(&wire("example.com."), &origin));
}

#[test]
fn residency_makes_failover_depend_on_the_client() {
    let mut config = CONFIG.to_string();
    config.push_str("\n[geoip]\ndatabase = \"missing.mmdb\"\n[residency.eu]\ncontinents = [\"EU\"]\nregions = [\"eu-west-1\"]\n");
    let (_dir, path) = testutil::write(&config, ZONE);
    assert!(
        crate::control::load(&path).is_err(),
        "a missing database is an error"
    );
}

/// What a steered name answers (rcode, answer count, outcome) for `qtype`.
fn answer_of(snap: &Snapshot, name: &str, qtype: u16) -> (u8, u16, Option<Outcome>) {
    let qname = build::wire(&name.parse().unwrap());
    match snap.lookup(&qname, qtype, NOWHERE, false, &mut |_| 0) {
        Lookup::Answer {
            prepared, steered, ..
        } => (prepared.rcode, prepared.answer_count, steered.map(|s| s.2)),
        Lookup::Refused => panic!("{name} refused"),
    }
}

fn with_all_down(policy: &str) -> String {
    CONFIG.replace(
        "name   = \"api-contracts\"\npolicy = \"failover\"\n",
        &format!("name   = \"api-contracts\"\npolicy = \"failover\"\non_all_down = \"{policy}\"\n"),
    )
}

#[test]
fn on_all_down_decides_the_answer_only_when_every_candidate_is_down() {
    let name = "api-contracts.keiko.example.com.";
    for (policy, rcode, count, outcome) in [
        ("fail_open", 0, 1, Outcome::FailOpen),
        ("nodata", 0, 0, Outcome::NoData),
        ("servfail", 2, 0, Outcome::ServFail),
    ] {
        let config = with_all_down(policy);
        assert!(config.contains(policy));
        let compiled = testutil::compiled_from(&config, ZONE);
        let down = Snapshot::new(compiled.clone(), vec![false; 3], 2);
        assert_eq!(
            answer_of(&down, name, TYPE_A),
            (rcode, count, Some(outcome)),
            "{policy}"
        );
        let up = Snapshot::new(compiled, vec![false, true, false], 3);
        assert_eq!(
            answer_of(&up, name, TYPE_A),
            (0, 1, Some(Outcome::Chosen)),
            "{policy} with eu-west-1 up"
        );
    }
    // The nodata answer carries the SOA.
    let down = Snapshot::new(
        testutil::compiled_from(&with_all_down("nodata"), ZONE),
        vec![false; 3],
        2,
    );
    let qname = build::wire(&name.parse().unwrap());
    let Lookup::Answer { prepared, .. } = down.lookup(&qname, TYPE_A, NOWHERE, false, &mut |_| 0)
    else {
        panic!("refused")
    };
    assert_eq!(prepared.authority_count, 1);
}

#[test]
fn networks_are_classes_of_their_own_inside_the_geo_map() {
    let db =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures/keiko-regions.mmdb");
    let config = format!(
        "{CONFIG}\n[[records]]\nname = \"geo\"\npolicy = \"geo\"\n[geoip]\ndatabase = '{}'\n\
         [geoip.continents]\nNA = [\"us-east-1\"]\n\
         [[networks]]\ncidr = \"127.0.1.0/25\"\nregions = [\"us-east-1\"]\n\
         [[networks]]\ncidr = \"2001:db8:1::/56\"\nregions = [\"eu-west-1\"]\n",
        db.display()
    );
    let snap = Snapshot::new(testutil::compiled_from(&config, ZONE), vec![true; 3], 1);
    let class = |ip: &str| {
        let (class, scope) = snap.geo_class(ip.parse().unwrap());
        (snap.compiled.geo_classes[class].clone(), scope)
    };
    // The same list as the continent's, but the network's own class: the
    // scope stops at the network's /25, not at the database's /24.
    let (inside, scope) = class("127.0.1.1");
    assert_eq!((inside.list, inside.network, scope), (vec![0], Some(0), 25));
    let (outside, scope) = class("127.0.1.200");
    assert_eq!((outside.list, outside.network, scope), (vec![0], None, 25));
    let (v6, scope) = class("2001:db8:1::1");
    assert_eq!((v6.list, v6.network, scope), (vec![1], Some(1), 56));
}
