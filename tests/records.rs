//! Black-box tests of what a record can be beyond fixed addresses
//! (docs/reference.md §3.10, CONTRACT section 9): all-down policies,
//! client networks, multivalue, CNAME regions, the steered apex and
//! wildcards, over real sockets on loopback.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// RFC 2308 negative TTL of the shipped zone: min(SOA TTL 3600, MINIMUM 300).
const NEGATIVE_TTL: u32 = 300;

/// `default_config()` with `extra` appended (more `[[records]]`, ...).
fn config_plus(extra: &str) -> String {
    format!("{}\n{extra}\n", default_config())
}

fn record(name: &str, policy: &str, more: &str) -> String {
    format!("[[records]]\nname   = \"{name}\"\npolicy = \"{policy}\"\n{more}\n")
}

/// Forces every test region down and waits until the failover name
/// fails open (answers the primary while nothing is healthy).
fn all_down(server: &Server) {
    for r in &REGIONS {
        server.force(r.name, "down");
    }
    let fail_open = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        server.status()["regions"]
            .as_array()
            .is_some_and(|rs| rs.iter().all(|r| r["healthy"] == false))
            .then_some(())
    });
    assert!(
        fail_open.is_some(),
        "regions never all down: {:#}",
        server.status()
    );
}

/// The `/status` entry of record `name`.
fn record_status(server: &Server, name: &str) -> serde_json::Value {
    let status = server.status();
    status["records"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no record {name} in /status: {status:#}"))
}

fn metric(server: &Server, line_start: &str) -> Option<f64> {
    let text = server.get("/metrics").body;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn all_down_answers_nodata_or_servfail_as_each_record_says() {
    let extra = record("down-nodata", "failover", "on_all_down = \"nodata\"")
        + &record("down-servfail", "weighted", "on_all_down = \"servfail\"");
    let server = Server::start(&config_plus(&extra), &default_zone());
    let v4 = |r: &Region| IpAddr::from(r.v4);
    // Healthy: every policy answers a region.
    assert_addresses(
        &server.query_udp("down-nodata", RecordType::A),
        &[v4(&REGIONS[0])],
    );
    let m = server.query_udp("down-servfail", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:#?}");
    assert_eq!(addresses(&m).len(), 1, "{m:#?}");

    all_down(&server);
    // fail_open (the default) still answers the primary.
    assert_failover_to(&server, &REGIONS[0]);
    for rtype in [RecordType::A, RecordType::AAAA] {
        assert_negative(
            &server.query_udp("down-nodata", rtype),
            ResponseCode::NoError,
            NEGATIVE_TTL,
        );
        let m = server.query_tcp("down-servfail", rtype);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:#?}");
        assert!(m.answers.is_empty(), "{m:#?}");
    }
    assert_eq!(
        metric(&server, "keiko_dns_all_down_total{policy=\"nodata\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&server, "keiko_dns_all_down_total{policy=\"servfail\"}"),
        Some(2.0)
    );
    let st = record_status(&server, "down-nodata");
    assert_eq!(st["all_down"], "nodata", "{st:#}");
    assert_eq!(st["answer"], serde_json::json!([]), "{st:#}");
    assert_eq!(
        record_status(&server, "api-contracts")["all_down"],
        "fail_open"
    );
    assert!(
        server
            .log()
            .contains("except the records whose on_all_down is nodata or servfail"),
        "{}",
        server.log()
    );

    // One region back: answers again.
    server.force(REGIONS[1].name, "up");
    assert!(
        server
            .wait_for_answer("down-nodata", v4(&REGIONS[1]), Duration::from_secs(5))
            .is_some()
    );
    let m = server.query_udp("down-servfail", RecordType::A);
    assert_addresses(&m, &[v4(&REGIONS[1])]);
}

// ---------------------------------------------------------------------------
// [[networks]]
// ---------------------------------------------------------------------------

/// The project's GeoIP fixture (geoip-fixtures/keiko-regions.csv).
fn fixture_db() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("geoip-fixtures")
        .join("keiko-regions.mmdb");
    assert!(path.exists(), "missing GeoIP fixture {}", path.display());
    format!("'{}'", path.display())
}

/// The test config with a `geo` record "geo", continents NA/EU/AS on the
/// three regions, and `extra` (networks, residency).
fn geo_config(extra: &str) -> String {
    config_plus(&format!(
        "{}\n[geoip]\ndatabase = {}\n[geoip.continents]\nNA = [\"us-east-1\"]\n\
         EU = [\"eu-west-1\"]\nAS = [\"ap-southeast-1\"]\n\n{extra}",
        record("geo", "geo", ""),
        fixture_db()
    ))
}

/// The A (or AAAA) answer and the ECS scope for a client at `addr/prefix`.
fn geo_answer(server: &Server, rtype: RecordType, addr: &str, prefix: u8) -> (Vec<IpAddr>, u8) {
    let addr: IpAddr = addr.parse().unwrap();
    let m = server.exchange_udp(
        &hickory_proto::op::Message::query_for(&fqdn("geo"), rtype)
            .with_subnet(mask(addr, prefix), prefix),
    );
    let scope = answer_subnet(&m)
        .unwrap_or_else(|| panic!("no ECS in {m:#?}"))
        .scope_prefix();
    (addresses(&m), scope)
}

#[test]
fn a_network_beats_the_country_with_a_scope_inside_the_network() {
    let networks = "[[networks]]\ncidr = \"127.0.1.128/25\"\nregions = [\"ap-southeast-1\"]\n\
        [[networks]]\ncidr = \"127.0.1.192/26\"\nregions = [\"eu-west-1\"]\n\
        [[networks]]\ncidr = \"2001:db8:1:8000::/49\"\nregions = [\"ap-southeast-1\"]\n\
        [[networks]]\ncidr = \"2001:db8:2::/48\"\nregions = [\"ap-southeast-1\", \"us-east-1\"]\n\
        [[networks]]\ncidr = \"10.0.0.0/8\"\nregions = [\"eu-west-1\"]\n\
        [residency.eu]\ncountries = [\"DE\"]\nregions = [\"eu-west-1\"]\n\
        [[networks]]\ncidr = \"127.0.8.0/24\"\nregions = [\"us-east-1\"]\n";
    let server = Server::start(&geo_config(networks), &default_zone());
    let [us, eu, ap] = REGIONS.map(|r| (IpAddr::from(r.v4), IpAddr::from(r.v6)));
    // 127.0.1.0/24 is US (NA): the lower half keeps the continent's list,
    // with a scope that stops at the network's edge.
    let (answer, scope) = geo_answer(&server, RecordType::A, "127.0.1.5", 32);
    assert_eq!(answer, [us.0]);
    assert!((25..=32).contains(&scope), "scope {scope}");
    // Inside the /25, outside the /26: the /25's list.
    let (answer, scope) = geo_answer(&server, RecordType::A, "127.0.1.130", 32);
    assert_eq!(answer, [ap.0]);
    assert!(
        (26..=32).contains(&scope),
        "scope {scope} must not reach past the /26 split"
    );
    // Inside the /26: longest prefix wins.
    let (answer, scope) = geo_answer(&server, RecordType::A, "127.0.1.200", 32);
    assert_eq!(answer, [eu.0]);
    assert!((26..=32).contains(&scope), "scope {scope}");
    // An address the database does not know: the network alone decides.
    let (answer, scope) = geo_answer(&server, RecordType::A, "10.1.2.3", 32);
    assert_eq!(answer, [eu.0]);
    assert_eq!(scope, 8);
    // IPv6: 2001:db8:1::/48 is US; its upper half is the network's.
    let (answer, scope) = geo_answer(&server, RecordType::AAAA, "2001:db8:1::1", 64);
    assert_eq!(answer, [us.1]);
    assert!((49..=64).contains(&scope), "scope {scope}");
    let (answer, scope) = geo_answer(&server, RecordType::AAAA, "2001:db8:1:8001::1", 64);
    assert_eq!(answer, [ap.1]);
    assert!((49..=64).contains(&scope), "scope {scope}");
    let (answer, scope) = geo_answer(&server, RecordType::AAAA, "2001:db8:2::1", 56);
    assert_eq!(answer, [ap.1]);
    assert_eq!(scope, 48, "the network is the database's /48");
    // Residency still applies: DE clients only get eu-west-1, whatever
    // their network says.
    let (answer, _) = geo_answer(&server, RecordType::A, "127.0.8.1", 32);
    assert_eq!(answer, [eu.0]);
    // The network's list is a preference: its region down, the next one.
    server.force("ap-southeast-1", "down");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while geo_answer(&server, RecordType::AAAA, "2001:db8:2::1", 56).0 != [us.1] {
        assert!(std::time::Instant::now() < deadline, "never failed over");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// multivalue
// ---------------------------------------------------------------------------

/// The A answers of `name` over `n` queries: each answer's address order.
fn orders(server: &Server, name: &str, rtype: RecordType, n: usize) -> Vec<Vec<IpAddr>> {
    let client = server.udp();
    (0..n)
        .map(|_| addresses(&client.query(name, rtype)))
        .collect()
}

fn sorted(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
    v.sort();
    v
}

#[test]
fn multivalue_answers_every_healthy_region_rotating_and_fails_open() {
    let extra =
        record("all", "multivalue", "ttl = 30") + &record("two", "multivalue", "max_answers = 2");
    let server = Server::start(&config_plus(&extra), &default_zone());
    let v4: Vec<IpAddr> = REGIONS.iter().map(|r| r.v4.into()).collect();
    let v6: Vec<IpAddr> = REGIONS.iter().map(|r| r.v6.into()).collect();

    let st = record_status(&server, "all");
    assert_eq!(st["policy"], "multivalue");
    assert_eq!(
        st["set"],
        serde_json::json!(["us-east-1", "eu-west-1", "ap-southeast-1"]),
        "{st:#}"
    );
    assert_eq!(st["answer"].as_array().map(Vec::len), Some(6), "{st:#}");
    let seen = orders(&server, "all", RecordType::A, 60);
    for answer in &seen {
        assert_eq!(sorted(answer.clone()), sorted(v4.clone()), "{answer:?}");
    }
    let firsts: std::collections::HashSet<IpAddr> = seen.iter().map(|a| a[0]).collect();
    assert_eq!(
        firsts.len(),
        3,
        "the order rotates: every address comes first: {seen:?}"
    );
    for answer in &seen {
        // A rotation, not a shuffle: the cyclic order is kept.
        let at = v4.iter().position(|a| *a == answer[0]).unwrap();
        let expected: Vec<IpAddr> = (0..3).map(|i| v4[(at + i) % 3]).collect();
        assert_eq!(answer, &expected);
    }
    let m = server.query_tcp("all", RecordType::AAAA);
    assert_eq!(sorted(addresses(&m)), sorted(v6.clone()));
    assert!(m.answers.iter().all(|r| r.ttl == 30), "{m:#?}");
    // max_answers: the first two by priority.
    for answer in orders(&server, "two", RecordType::A, 10) {
        assert_eq!(sorted(answer), sorted(v4[..2].to_vec()));
    }

    // A failed region drops out.
    server.force(REGIONS[0].name, "down");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while addresses(&server.query_udp("all", RecordType::A)).len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "us-east-1 never dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for answer in orders(&server, "all", RecordType::A, 20) {
        assert_eq!(sorted(answer), sorted(v4[1..].to_vec()));
    }
    for answer in orders(&server, "two", RecordType::A, 10) {
        assert_eq!(sorted(answer), sorted(v4[1..].to_vec()));
    }

    // None healthy: fail open, every region's addresses up to max_answers.
    all_down(&server);
    for answer in orders(&server, "all", RecordType::A, 10) {
        assert_eq!(sorted(answer), sorted(v4.clone()));
    }
    for answer in orders(&server, "two", RecordType::A, 10) {
        assert_eq!(sorted(answer), sorted(v4[..2].to_vec()));
    }
    assert!(metric(&server, "keiko_dns_fail_open_total").unwrap_or(0.0) >= 20.0);
}

// ---------------------------------------------------------------------------
// CNAME regions
// ---------------------------------------------------------------------------

/// The test config with us-east-1 a CNAME region pointing at a load
/// balancer's name and eu-west-1 one pointing at `www` of the zone file
/// (itself a CNAME to `status`); both probed at their loopback stubs.
fn cname_config(extra: &str) -> String {
    let text = replace_once(
        &default_config(),
        &format!("addresses = [\"{}\", \"{}\"]", REGIONS[0].v4, REGIONS[0].v6),
        "cname     = \"lb-use1.elb.example.net.\"",
    );
    let text = replace_once(
        &text,
        &format!("addresses = [\"{}\", \"{}\"]", REGIONS[1].v4, REGIONS[1].v6),
        "cname     = \"www.keiko.example.com.\"",
    );
    format!("{text}\n{extra}\n")
}

fn cname_of(m: &hickory_proto::op::Message) -> Vec<(String, String)> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::CNAME(c) => Some((r.name.to_string(), c.0.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cname_region_answers_its_cname_and_fails_over_to_an_address_region() {
    let server = Server::start(&cname_config(""), &default_zone());
    let owner = fqdn(FAILOVER_NAME);
    let lb = vec![(owner.clone(), "lb-use1.elb.example.net.".to_owned())];
    for rtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::TXT,
    ] {
        let m = server.query_udp(FAILOVER_NAME, rtype);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{rtype}: {m:#?}"
        );
        assert_eq!(cname_of(&m), lb, "{rtype}: {m:#?}");
        assert_eq!(
            m.answers.len(),
            1,
            "an outside target is left to the resolver: {m:#?}"
        );
        assert_eq!(m.answers[0].ttl, STEERED_TTL);
        assert!(m.metadata.authoritative);
    }
    // The region record answers the CNAME too.
    let m = server.query_tcp(REGION_NAMES[0], RecordType::A);
    assert_eq!(
        cname_of(&m),
        vec![(fqdn(REGION_NAMES[0]), "lb-use1.elb.example.net.".to_owned())]
    );
    // eu-west-1 points inside the zone: followed in the same answer.
    let m = server.query_udp(REGION_NAMES[1], RecordType::A);
    assert_eq!(
        cname_of(&m),
        vec![
            (fqdn(REGION_NAMES[1]), "www.keiko.example.com.".to_owned()),
            (
                "www.keiko.example.com.".to_owned(),
                "status.keiko.example.com.".to_owned()
            ),
        ],
        "{m:#?}"
    );
    assert_eq!(addresses(&m), [ip("192.0.2.80")]);
    let m = server.query_udp(REGION_NAMES[1], RecordType::AAAA);
    assert_eq!(addresses(&m), [ip("2001:db8:10::80")]);
    // A type the target lacks: the chain, then NODATA from the SOA.
    let m = server.query_udp(REGION_NAMES[1], RecordType::MX);
    assert_eq!(cname_of(&m).len(), 2, "{m:#?}");
    assert_eq!(m.authorities.len(), 1, "{m:#?}");
    // Status and explain show the CNAME.
    let st = record_status(&server, FAILOVER_NAME);
    assert_eq!(
        st["answer"],
        serde_json::json!(["CNAME lb-use1.elb.example.net."]),
        "{st:#}"
    );

    // The CNAME region down: the failover name fails over to the next
    // region (itself a CNAME region, followed), then to an address region.
    server.force(REGIONS[0].name, "down");
    assert!(
        server
            .wait_for_answer(FAILOVER_NAME, ip("192.0.2.80"), Duration::from_secs(5))
            .is_some()
    );
    server.force(REGIONS[1].name, "down");
    assert!(
        server
            .wait_for_answer(FAILOVER_NAME, REGIONS[2].v4.into(), Duration::from_secs(5))
            .is_some()
    );
    let m = server.query_udp(FAILOVER_NAME, RecordType::A);
    assert!(cname_of(&m).is_empty(), "{m:#?}");
    // Weighted mixes both kinds: with all up, draws give CNAMEs and addresses.
    server.force(REGIONS[0].name, "auto");
    server.force(REGIONS[1].name, "auto");
    let client = server.udp();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (mut cnames, mut plain) = (0, 0);
    while cnames == 0 || plain == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "weighted never mixed: {cnames} {plain}"
        );
        let m = client.query(WEIGHTED_NAME, RecordType::A);
        if cname_of(&m).is_empty() {
            plain += 1
        } else {
            cnames += 1
        }
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn cname_regions_are_checked() {
    let check = |config: &str| {
        let ws = Workspace::new(config, &default_zone());
        output_text(&ws.check())
    };
    // A host name in addresses says where it goes.
    let text = replace_once(
        &default_config(),
        "\"192.0.2.10\"",
        "\"lb-use1.elb.example.net.\"",
    );
    let out = check(&text);
    assert!(out.contains("a host name goes in cname"), "{out}");
    // Both, neither.
    let text = replace_once(
        &default_config(),
        "addresses = [\"192.0.2.10\", \"2001:db8:10::10\"]",
        "addresses = [\"192.0.2.10\"]\ncname = \"lb.example.net.\"",
    );
    assert!(check(&text).contains("either addresses or a cname, not both"));
    // Multivalue cannot take CNAME regions.
    let out = check(&cname_config(&record("all", "multivalue", "")));
    assert!(
        out.contains("CNAME regions cannot take part in multivalue"),
        "{out}"
    );
    // An in-zone target that does not exist.
    let text = replace_once(
        &cname_config(""),
        "cname     = \"www.keiko.example.com.\"",
        "cname     = \"gone.keiko.example.com.\"",
    );
    let out = check(&text);
    assert!(out.contains("no such name exists"), "{out}");
}

// ---------------------------------------------------------------------------
// The steered apex
// ---------------------------------------------------------------------------

#[test]
fn the_apex_is_steered_with_soa_ns_and_the_rest_from_the_zone() {
    let server = Server::start(&config_plus(&record("@", "failover", "")), &default_zone());
    let apex = ORIGIN;
    assert_addresses(
        &server.query_udp(apex, RecordType::A),
        &[REGIONS[0].v4.into()],
    );
    assert_addresses(
        &server.query_tcp(apex, RecordType::AAAA),
        &[REGIONS[0].v6.into()],
    );
    for (rtype, count) in [
        (RecordType::SOA, 1),
        (RecordType::NS, 3),
        (RecordType::MX, 1),
        (RecordType::TXT, 1),
    ] {
        let m = server.query_udp(apex, rtype);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{rtype}: {m:#?}"
        );
        let of_type = m
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .count();
        assert_eq!(of_type, count, "{rtype}: {m:#?}");
    }
    // The NS answer still carries its glue.
    assert!(
        !server
            .query_udp(apex, RecordType::NS)
            .additionals
            .is_empty()
    );
    server.force(REGIONS[0].name, "down");
    assert!(
        server
            .wait_for_answer(apex, REGIONS[1].v4.into(), Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(server.query_udp(apex, RecordType::SOA).answers.len(), 1);
}

#[test]
fn a_steered_apex_needs_no_apex_addresses_and_no_cname_region() {
    let check = |config: &str, zone: &str| {
        let ws = Workspace::new(config, zone);
        let out = ws.check();
        (out.status.success(), output_text(&out))
    };
    let apex = config_plus(&record("@", "failover", ""));
    assert!(
        check(&apex, &default_zone()).0,
        "{}",
        check(&apex, &default_zone()).1
    );
    let (ok, out) = check(&apex, &zone_with("@ IN A 192.0.2.1"));
    assert!(!ok);
    assert!(out.contains("must hold no A at the apex"), "{out}");
    let (ok, out) = check(&cname_config(&record("@", "weighted", "")), &default_zone());
    assert!(!ok);
    assert!(out.contains("the apex cannot be a CNAME"), "{out}");
    // policy region over an address region is fine with CNAME regions around.
    let only_ap = record("@", "region", "region = \"ap-southeast-1\"");
    let (ok, out) = check(&cname_config(&only_ap), &default_zone());
    assert!(ok, "{out}");
}

// ---------------------------------------------------------------------------
// Wildcards
// ---------------------------------------------------------------------------

const WILDCARD_ZONE: &str = "*.apps IN A 192.0.2.44\n*.apps IN TXT \"wild\"\n\
    real.apps IN A 192.0.2.45\ndeep.ent.apps IN A 192.0.2.46\n\
    *.mail2 IN MX 10 mail\n*.alias IN CNAME status\n";

#[test]
fn static_wildcards_answer_with_the_query_name_and_are_blocked_by_names_and_ents() {
    let server = Server::start(&default_config(), &zone_with(WILDCARD_ZONE));
    let wild = ip("192.0.2.44");
    // Any name below apps. that does not exist, however deep, case kept.
    for name in ["x.apps", "Mixed.Case.apps", "a.b.c.apps"] {
        let m = server.query_udp(name, RecordType::A);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name}: {m:#?}"
        );
        assert_eq!(addresses(&m), [wild], "{name}");
        assert_eq!(
            m.answers[0].name.to_string(),
            fqdn(name),
            "owner is the query name, case kept"
        );
        assert!(m.metadata.authoritative);
    }
    // The other types of the wildcard, and NODATA for a type it lacks.
    let m = server.query_tcp("y.apps", RecordType::TXT);
    assert_eq!(m.answers.len(), 1, "{m:#?}");
    assert_negative(
        &server.query_udp("y.apps", RecordType::AAAA),
        ResponseCode::NoError,
        NEGATIVE_TTL,
    );
    // Existing names and empty non-terminals block the wildcard.
    assert_eq!(
        addresses(&server.query_udp("real.apps", RecordType::A)),
        [ip("192.0.2.45")]
    );
    assert_negative(
        &server.query_udp("ent.apps", RecordType::A),
        ResponseCode::NoError,
        NEGATIVE_TTL,
    );
    // Below an existing name the wildcard does not reach (its closest
    // encloser is that name, which has no wildcard).
    assert_negative(
        &server.query_udp("x.real.apps", RecordType::A),
        ResponseCode::NXDomain,
        NEGATIVE_TTL,
    );
    assert_negative(
        &server.query_udp("x.ent.apps", RecordType::A),
        ResponseCode::NXDomain,
        NEGATIVE_TTL,
    );
    // apps. itself is an empty non-terminal: NODATA.
    assert_negative(
        &server.query_udp("apps", RecordType::A),
        ResponseCode::NoError,
        NEGATIVE_TTL,
    );
    // Names in rdata are written out in full (compression stays correct
    // whatever the query name's length); a CNAME is followed.
    let m = server.query_udp("a-rather-long-label.mail2", RecordType::MX);
    assert_eq!(m.answers.len(), 1, "{m:#?}");
    assert_eq!(m.answers[0].data.to_string(), "10 mail.keiko.example.com.");
    assert!(!m.additionals.is_empty(), "glue: {m:#?}");
    let m = server.query_udp("z.alias", RecordType::A);
    assert_eq!(addresses(&m), [ip("192.0.2.80")], "{m:#?}");
    assert_eq!(m.answers[0].name.to_string(), fqdn("z.alias"));
}

#[test]
fn a_steered_wildcard_applies_its_policy_to_every_name_it_covers() {
    let config = config_plus(&record("*.tenants", "failover", "ttl = 20"));
    let server = Server::start(&config, &zone_with("known.tenants IN A 192.0.2.99\n"));
    for name in ["acme.tenants", "ACME.tenants", "x.y.tenants"] {
        let m = server.query_udp(name, RecordType::A);
        assert_eq!(
            addresses(&m),
            [IpAddr::from(REGIONS[0].v4)],
            "{name}: {m:#?}"
        );
        assert_eq!(m.answers[0].name.to_string(), fqdn(name));
        assert_eq!(m.answers[0].ttl, 20);
    }
    assert_eq!(
        addresses(&server.query_udp("known.tenants", RecordType::A)),
        [ip("192.0.2.99")]
    );
    server.force(REGIONS[0].name, "down");
    assert!(
        server
            .wait_for_answer(
                "other.tenants",
                REGIONS[1].v4.into(),
                Duration::from_secs(5)
            )
            .is_some()
    );
    assert_eq!(
        record_status(&server, "*.tenants")["answer"][0],
        REGIONS[1].v4.to_string()
    );
}

#[test]
fn a_star_anywhere_but_the_first_label_is_a_config_error() {
    let ws = Workspace::new(
        &config_plus(&record("api.*.tenants", "failover", "")),
        &default_zone(),
    );
    let out = output_text(&ws.check());
    assert!(out.contains("records.name"), "{out}");
    assert!(
        out.contains("wildcard only as the whole leftmost label"),
        "{out}"
    );
    let ws = Workspace::new(
        &config_plus(&record("*.*.t", "failover", "")),
        &default_zone(),
    );
    assert!(output_text(&ws.check()).contains("wildcard only as the whole leftmost label"));
    let ws = Workspace::new(
        &config_plus(&record("a*b", "failover", "")),
        &default_zone(),
    );
    let out = output_text(&ws.check());
    assert!(out.contains("records.name: \"a*b\""), "{out}");
    let ws = Workspace::new(&default_config(), &zone_with("x.*.apps IN A 192.0.2.1\n"));
    let out = output_text(&ws.check());
    assert!(
        out.contains("wildcard only as the whole leftmost label"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// explain
// ---------------------------------------------------------------------------

fn explain(server: &Server, query: &str) -> serde_json::Value {
    server.get_json(&format!("/explain?{query}"))
}

#[test]
fn explain_shows_cnames_sets_networks_wildcards_and_the_all_down_policy() {
    let extra = record("*.tenants", "failover", "on_all_down = \"servfail\"")
        + &record("geo", "geo", "")
        + &format!(
            "[geoip]\ndatabase = {}\n[geoip.continents]\nNA = [\"us-east-1\"]\n\
             [[networks]]\ncidr = \"10.20.0.0/16\"\nregions = [\"ap-southeast-1\"]\n",
            fixture_db()
        );
    let server = Server::start(&cname_config(&extra), &zone_with(WILDCARD_ZONE));
    let e = explain(&server, "name=api-contracts");
    assert_eq!(
        e["steering"]["answer"],
        serde_json::json!(["CNAME lb-use1.elb.example.net."]),
        "{e:#}"
    );
    let e = explain(&server, "name=geo&client=10.20.1.2");
    assert_eq!(
        e["steering"]["preference"]["source"], "network 10.20.0.0/16",
        "{e:#}"
    );
    assert_eq!(e["steering"]["region"], "ap-southeast-1");
    let e = explain(&server, "name=x.tenants");
    assert_eq!(e["wildcard"], "*.tenants.keiko.example.com.", "{e:#}");
    assert_eq!(e["kind"], "steered", "{e:#}");
    let e = explain(&server, "name=x.apps");
    assert_eq!(e["wildcard"], "*.apps.keiko.example.com.", "{e:#}");
    assert!(
        e["static_records"][0]
            .as_str()
            .unwrap_or("")
            .contains("192.0.2.44"),
        "{e:#}"
    );
    all_down(&server);
    let e = explain(&server, "name=x.tenants");
    assert_eq!(e["steering"]["on_all_down"], "servfail");
    assert!(
        e["summary"].as_str().unwrap_or("").contains("SERVFAIL"),
        "{e:#}"
    );
    let m = server.query_udp("x.tenants", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn explain_shows_a_multivalue_set() {
    let server = Server::start(
        &config_plus(&record("all", "multivalue", "")),
        &default_zone(),
    );
    server.force(REGIONS[1].name, "down");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while addresses(&server.query_udp("all", RecordType::A)).len() != 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = explain(&server, "name=all");
    let chosen: Vec<&str> = e["steering"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["chosen"] == true)
        .map(|c| c["region"].as_str().unwrap())
        .collect();
    assert_eq!(chosen, ["us-east-1", "ap-southeast-1"], "{e:#}");
    assert_eq!(
        e["steering"]["answer"].as_array().map(Vec::len),
        Some(4),
        "{e:#}"
    );
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .starts_with("multivalue policy answers every address")
    );
}
