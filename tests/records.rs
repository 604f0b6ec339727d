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
