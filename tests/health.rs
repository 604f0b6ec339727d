//! Black-box tests of the built-in health checker and the admin API
//! (docs/reference.md §2, §4 and §6; issue "Built-in health checker and
//! failover"): the real binary probes real HTTP and HTTPS servers on
//! loopback that the tests switch between 200, 503, a wrong body, a reset
//! and a hang, and the tests watch the effect through DNS answers,
//! `/status`, `/events`, `/metrics`, webhooks and restarts.
//!
//! Every region of every config has a `health_url` on 127.0.0.1, and every
//! webhook points at 127.0.0.1: nothing is ever sent anywhere else.
//!
//! Measured figures are printed with `eprintln!`; see them with
//! `cargo test --test health -- --nocapture`.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const US: usize = 0;
const EU: usize = 1;
const AP: usize = 2;

fn v4(region: usize) -> IpAddr {
    IpAddr::V4(REGIONS[region].v4)
}

fn name(region: usize) -> &'static str {
    REGIONS[region].name
}

/// Fast probing: a verdict within a few seconds.
const FAST: &str = r#"interval           = "1s"
timeout            = "1s"
fast_interval      = "1s"
failure_threshold  = 3
recovery_threshold = 2
"#;

/// The test config (every region probed at its loopback stub) with
/// `[health]` set to `health`.
fn config(health: &str) -> String {
    format!("{}\n[health]\n{health}", default_config())
}

/// `text` with `expect_body = "ok"` on every region.
fn expect_ok(text: &str) -> String {
    text.replace("/health\"\n", "/health\"\nexpect_body = \"ok\"\n")
}

/// `text` with `line` added to `[server]`.
fn with_server_line(text: &str, line: &str) -> String {
    replace_once(
        text,
        "nsid         = \"ns1.test\"\n",
        &format!("nsid         = \"ns1.test\"\n{line}\n"),
    )
}

/// `text` with region `i`'s health_url replaced by `url`.
fn with_health_url(text: &str, i: usize, url: &str) -> String {
    replace_once(
        text,
        &format!("health_url = \"http://{{HEALTH{i}}}/health\""),
        &format!("health_url = \"{url}\""),
    )
}

fn start(config: &str) -> Server {
    let server = Server::start(config, &default_zone());
    server.wait_ready(Duration::from_secs(10));
    server
}

/// Waits until `/status` says `region` is (not) healthy; the time it took.
fn wait_healthy(server: &Server, region: &str, healthy: bool, timeout: Duration) -> Duration {
    wait_until(timeout, Duration::from_millis(25), || {
        (server.region_status(region)["healthy"] == healthy).then_some(())
    })
    .map(|((), d)| d)
    .unwrap_or_else(|| {
        panic!(
            "{region} not healthy={healthy} within {timeout:?}: {:#}\nlog:\n{}",
            server.region_status(region),
            server.log()
        )
    })
}

/// Waits until the failover name answers `region`'s address.
fn wait_failover(server: &Server, region: usize, timeout: Duration) -> Duration {
    server
        .wait_for_answer(FAILOVER_NAME, v4(region), timeout)
        .unwrap_or_else(|| {
            panic!(
                "{FAILOVER_NAME} did not answer {} within {timeout:?} (answers {}); status: {:#}\nlog:\n{}",
                name(region),
                server.answer_v4(FAILOVER_NAME),
                server.status(),
                server.log()
            )
        })
}

/// Asserts the failover name keeps answering `region` for `period`.
fn assert_failover_stays(server: &Server, region: usize, period: Duration) {
    let client = server.udp();
    let end = Instant::now() + period;
    while Instant::now() < end {
        let answer = client.query(FAILOVER_NAME, RecordType::A);
        assert_eq!(
            addresses(&answer).first(),
            Some(&v4(region)),
            "{FAILOVER_NAME} must stay on {}; status: {:#}",
            name(region),
            server.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The distinct first addresses of `n` answers for `name`.
fn distinct_answers(server: &Server, name: &str, n: usize) -> BTreeSet<IpAddr> {
    let client = server.udp();
    (0..n)
        .map(|_| addresses(&client.query(name, RecordType::A))[0])
        .collect()
}

/// Asserts an event has the fields of docs/reference.md §4.5, `time` in RFC 3339.
fn assert_event_shape(event: &Value) {
    for field in ["time", "region", "from", "to", "reason"] {
        assert!(event[field].is_string(), "event lacks {field}: {event:#}");
    }
    let time = event["time"].as_str().unwrap();
    humantime::parse_rfc3339(time)
        .unwrap_or_else(|e| panic!("event time {time:?} is not RFC 3339: {e}"));
}

fn assert_json_error(reply: &HttpReply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    let body = reply.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: errors are JSON {{\"error\": ...}}, got {reply:?}"
    );
}

// ---------------------------------------------------------------------------
// Detection time
// ---------------------------------------------------------------------------

/// interval 1 s, failure_threshold 3, timeout 1 s: the failover answer
/// moves within threshold x interval + timeout + 1 s = 5 s of the primary
/// starting to fail (503), and comes back after recovery_threshold
/// successes.
#[test]
fn failover_answer_changes_within_threshold_times_interval() {
    let server = start(&config(FAST));
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(US));

    // threshold x interval + timeout + 1 s, with interval and timeout 1 s.
    let bound = Duration::from_secs(3 + 1 + 1);
    server.ws.health[US].set_mode(Mode::Down);
    let detected = wait_failover(&server, EU, bound + Duration::from_secs(5));
    eprintln!("detection (interval 1s, threshold 3, 503): {detected:?} (bound {bound:?})");
    assert!(detected <= bound, "took {detected:?}, bound {bound:?}");

    let us = server.region_status(name(US));
    assert_eq!(us["healthy"], false, "{us:#}");
    assert_eq!(us["state"], "down", "{us:#}");
    assert!(us["consecutive_failures"].as_u64() >= Some(3), "{us:#}");
    assert!(
        us["last_error"].as_str().is_some_and(|e| e.contains("503")),
        "last_error names the status: {us:#}"
    );

    server.ws.health[US].set_mode(Mode::Up);
    let recovered = wait_failover(&server, US, Duration::from_secs(8));
    eprintln!("recovery (recovery_threshold 2): {recovered:?}");
    assert!(
        recovered <= Duration::from_secs(2 + 1 + 1),
        "recovery took {recovered:?}"
    );
    assert_eq!(server.region_status(name(US))["state"], "up");
}

/// interval 10 s, fast_interval 1 s, timeout 2 s: after the first failure
/// the region is re-probed every second, so the answer moves within about
/// 10 + 2 + 1 s of the stub starting to fail (here with resets), not
/// after 3 x 10 s.
#[test]
fn long_interval_confirms_an_outage_at_the_fast_interval() {
    let server = start(&config(
        r#"interval           = "10s"
timeout            = "2s"
fast_interval      = "1s"
failure_threshold  = 3
recovery_threshold = 2
"#,
    ));
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(US));
    server.ws.health[US].set_mode(Mode::Reset);
    let bound = Duration::from_secs(14);
    let detected = wait_failover(&server, EU, bound + Duration::from_secs(6));
    eprintln!("detection (interval 10s, fast 1s, reset): {detected:?} (bound {bound:?})");
    assert!(detected <= bound, "took {detected:?}, bound {bound:?}");
    let us = server.region_status(name(US));
    assert_eq!(us["state"], "down", "{us:#}");
}

// ---------------------------------------------------------------------------
// Steering through DNS
// ---------------------------------------------------------------------------

/// Primary down -> secondary; secondary down -> weighted 66.7/33.3 over
/// primary and tertiary; two down -> the last healthy one; all down ->
/// fail open (the primary again), counted in /metrics and logged.
#[test]
fn answers_follow_health_down_to_fail_open() {
    let server = start(&expect_ok(&config(
        r#"interval           = "1s"
timeout            = "1s"
fast_interval      = "1s"
failure_threshold  = 2
recovery_threshold = 1
"#,
    )));
    let health = &server.ws.health;
    let long = Duration::from_secs(8);

    // Primary down (503): the secondary.
    health[US].set_mode(Mode::Down);
    let t = wait_failover(&server, EU, long);
    eprintln!("primary down -> secondary after {t:?}");
    health[US].set_mode(Mode::Up);
    wait_failover(&server, US, long);

    // Secondary down (wrong body): weighted over primary and tertiary only.
    health[EU].set_mode(Mode::WrongBody);
    wait_healthy(&server, name(EU), false, long);
    let eu = server.region_status(name(EU));
    assert!(
        eu["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("body")),
        "a wrong body is the reason: {eu:#}"
    );
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(US));
    let started = Instant::now();
    let actual = shares(&server.udp(), WEIGHTED_NAME, 3000);
    eprintln!(
        "weighted with {} down, 3000 queries in {:?}: {actual:.2?}",
        name(EU),
        started.elapsed()
    );
    assert_shares(actual, [200.0 / 3.0, 0.0, 100.0 / 3.0], 4.0);
    assert_eq!(actual[EU], 0.0, "no traffic to a down region");

    // Primary down too (503): the last healthy region everywhere.
    health[US].set_mode(Mode::Down);
    wait_failover(&server, AP, long);
    assert_eq!(
        distinct_answers(&server, WEIGHTED_NAME, 200),
        BTreeSet::from([v4(AP)]),
        "weighted: only the last healthy region"
    );

    // All down (the last one resets): fail open.
    let fail_open_before = server.metric("keiko_dns_fail_open_total").unwrap_or(0.0);
    health[AP].set_mode(Mode::Reset);
    wait_healthy(&server, name(AP), false, long);
    let status = server.status();
    for r in status["regions"].as_array().unwrap() {
        assert_eq!(r["healthy"], false, "all down: {status:#}");
    }
    assert_eq!(
        server.answer_v4(FAILOVER_NAME),
        v4(US),
        "fail open: failover answers as if all were healthy"
    );
    let weighted = distinct_answers(&server, WEIGHTED_NAME, 300);
    assert!(
        weighted.len() >= 2,
        "fail open: weighted draws from every region again: {weighted:?}"
    );
    for region in [US, EU, AP] {
        let answer = server.query_udp(REGION_NAMES[region], RecordType::A);
        assert_addresses(&answer, &[v4(region)]);
    }
    let fail_open = server
        .metric("keiko_dns_fail_open_total")
        .unwrap_or_else(|| {
            panic!(
                "no keiko_dns_fail_open_total in:\n{}",
                server.get("/metrics").body
            )
        });
    eprintln!("keiko_dns_fail_open_total: {fail_open_before} -> {fail_open}");
    assert!(
        fail_open > fail_open_before,
        "fail-open answers are counted: {fail_open_before} -> {fail_open}"
    );
    let log = server.log().to_lowercase();
    assert!(
        ["fail open", "fail-open", "fail_open", "failing open"]
            .iter()
            .any(|w| log.contains(w)),
        "docs/reference.md §3.5 says fail-open is logged; the log never mentions it:\n{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------
// Manual recovery
// ---------------------------------------------------------------------------

#[test]
fn manual_recovery_keeps_the_region_out_until_readmit() {
    let server = start(&config(
        r#"interval           = "1s"
timeout            = "1s"
fast_interval      = "1s"
failure_threshold  = 2
recovery_threshold = 2
recovery           = "manual"
"#,
    ));
    let readmit = format!("/admin/regions/{}/readmit", name(US));
    server.ws.health[US].set_mode(Mode::Down);
    wait_failover(&server, EU, Duration::from_secs(8));

    // Not recovered yet: readmit is refused and changes nothing.
    let early = server.post(&readmit, "", None);
    assert!(
        (400..500).contains(&early.status),
        "readmit of a failing region is refused: {early:?}"
    );
    assert_json_error(&early, early.status, "early readmit");
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(EU));

    // Recovered: awaiting_readmit, still out of the answers.
    server.ws.health[US].set_mode(Mode::Up);
    let (_, waited) = wait_until(Duration::from_secs(8), Duration::from_millis(25), || {
        (server.region_status(name(US))["state"] == "awaiting_readmit").then_some(())
    })
    .unwrap_or_else(|| panic!("never awaiting_readmit: {:#}", server.status()));
    eprintln!("manual recovery: awaiting_readmit {waited:?} after the stub recovered");
    let us = server.region_status(name(US));
    assert_eq!(us["healthy"], false, "{us:#}");
    assert_failover_stays(&server, EU, Duration::from_millis(2500));
    assert_eq!(server.region_status(name(US))["state"], "awaiting_readmit");

    // Readmit: the answer returns at once.
    let t0 = Instant::now();
    let reply = server.post(&readmit, "", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    let back = wait_failover(&server, US, Duration::from_secs(2));
    eprintln!("readmit -> answer back in {:?}", t0.elapsed());
    assert!(
        back < Duration::from_secs(1),
        "readmit took {back:?} to show"
    );
    let us = server.region_status(name(US));
    assert_eq!(
        (&us["state"], &us["healthy"]),
        (&Value::from("up"), &Value::from(true))
    );
    let newest = &server.events(1)[0];
    assert_event_shape(newest);
    assert_eq!(
        (&newest["region"], &newest["from"], &newest["to"]),
        (
            &Value::from(name(US)),
            &Value::from("awaiting_readmit"),
            &Value::from("up")
        ),
        "{newest:#}"
    );
}

// ---------------------------------------------------------------------------
// Forced states and the admin API
// ---------------------------------------------------------------------------

const TOKEN: &str = "integration-test-token-0123456789";

#[test]
fn forced_state_through_the_admin_api_with_a_token() {
    let server = start(&with_server_line(
        &config(FAST),
        &format!("admin_token  = \"{TOKEN}\""),
    ));
    let state_path = format!("/admin/regions/{}/state", name(US));
    let down = r#"{"state":"down"}"#;
    let unchanged = |what: &str| {
        assert_eq!(
            server.answer_v4(FAILOVER_NAME),
            v4(US),
            "{what} changed the answer"
        );
        assert_eq!(
            server.region_status(name(US))["forced"],
            Value::Null,
            "{what} forced a state"
        );
    };

    // Without or with a wrong token: 401, nothing changes.
    assert_json_error(&server.post(&state_path, down, None), 401, "no token");
    unchanged("no token");
    assert_json_error(
        &server.post(&state_path, down, Some("wrong-token-0123456789abcdef")),
        401,
        "wrong token",
    );
    unchanged("wrong token");
    let basic = server.http(
        "POST",
        &state_path,
        &[("Authorization", &format!("Basic {TOKEN}"))],
        down.as_bytes(),
    );
    assert_json_error(&basic, 401, "non-bearer scheme");
    unchanged("non-bearer scheme");
    assert_json_error(
        &server.post(&format!("/admin/regions/{}/readmit", name(US)), "", None),
        401,
        "readmit without a token",
    );

    // Request errors.
    assert_json_error(
        &server.post("/admin/regions/mars-1/state", down, Some(TOKEN)),
        404,
        "unknown region",
    );
    assert_json_error(
        &server.post(&state_path, "{state: down", Some(TOKEN)),
        400,
        "bad JSON",
    );
    assert_json_error(
        &server.post(&state_path, r#"{"state":"sideways"}"#, Some(TOKEN)),
        400,
        "unknown state",
    );
    assert_json_error(&server.get(&state_path), 405, "GET on a POST route");
    unchanged("request errors");

    // Right token: down within a second.
    let t0 = Instant::now();
    let reply = server.post(&state_path, down, Some(TOKEN));
    assert_eq!(reply.status, 200, "{reply:?}");
    let took = wait_failover(&server, EU, Duration::from_secs(3));
    eprintln!(
        "forced down -> DNS answer changed in {took:?} ({:?} incl. the POST)",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "forced down took {:?}",
        t0.elapsed()
    );
    let us = server.region_status(name(US));
    assert_eq!(
        (&us["forced"], &us["healthy"]),
        (&Value::from("down"), &Value::from(false)),
        "{us:#}"
    );
    assert_eq!(us["state"], "up", "probes still say up: {us:#}");

    // A 1 MiB body (valid JSON: "auto" padded with whitespace) is refused
    // and changes nothing.
    let mut big = br#"{"state":"auto"}"#.to_vec();
    big.resize(1 << 20, b' ');
    let auth = format!("Bearer {TOKEN}");
    match http_request(
        server.admin_addr(),
        "POST",
        &state_path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        &big,
    ) {
        Ok(reply) => {
            eprintln!("1 MiB body -> HTTP {}", reply.status);
            assert!((400..500).contains(&reply.status), "1 MiB body: {reply:?}");
        }
        Err(e) => eprintln!("1 MiB body -> connection closed early ({e})"),
    }
    assert_eq!(
        server.region_status(name(US))["forced"],
        "down",
        "the big body changed the state"
    );
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(EU));

    // Events: newest first, one with limit=1.
    let events = server.events(1);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_event_shape(&events[0]);
    assert_eq!(events[0]["region"], name(US));
    assert_eq!(events[0]["to"], "down");
    assert!(
        events[0]["reason"].as_str().unwrap().contains("forced"),
        "{:#}",
        events[0]
    );

    // auto: back to the probes (healthy), the answer returns.
    let t0 = Instant::now();
    let reply = server.post(&state_path, r#"{"state":"auto"}"#, Some(TOKEN));
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_failover(&server, US, Duration::from_secs(3));
    eprintln!("auto -> DNS answer back in {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(server.region_status(name(US))["forced"], Value::Null);

    let events = server.events(1);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (&events[0]["from"], &events[0]["to"]),
        (&Value::from("down"), &Value::from("up"))
    );
    let all = server.events(100);
    assert_eq!(all.len(), 2, "two operator events: {all:#?}");
    assert!(
        all[0]["time"].as_str() >= all[1]["time"].as_str(),
        "newest first: {all:#?}"
    );
    assert_eq!(all[1]["to"], "down", "older event second: {all:#?}");
    for e in &all {
        assert_event_shape(e);
    }
    server
        .ws
        .health
        .iter()
        .for_each(|h| assert!(h.requests() > 0));
}

/// /ready is 503 until every region has been probed once (one region's
/// endpoint hangs for the whole 3 s timeout), then 200; /health is 200
/// throughout.
#[test]
fn ready_waits_for_the_first_health_round() {
    let hang = HealthStub::start();
    hang.set_mode(Mode::Hang);
    let text = with_health_url(
        &config(
            r#"interval           = "3s"
timeout            = "3s"
fast_interval      = "1s"
"#,
        ),
        AP,
        &format!("http://{}/health", hang.addr),
    );
    let spawned = Instant::now();
    let server = Server::start(&text, &default_zone());
    let health = server.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
    let early = server.get("/ready");
    let at = spawned.elapsed();
    eprintln!("/ready {at:?} after spawn: {}", early.status);
    if at < Duration::from_secs(2) {
        assert_eq!(
            early.status, 503,
            "the first round cannot be complete while a probe hangs: {early:?}"
        );
        assert_eq!(server.status()["ready"], false);
    }
    server.wait_ready(Duration::from_secs(10));
    let ready_at = spawned.elapsed();
    eprintln!("/ready 200 after {ready_at:?} from spawn");
    assert!(
        ready_at >= Duration::from_millis(2500),
        "ready after {ready_at:?}, before the hung probe's 3 s timeout could give a verdict"
    );
    assert_eq!(server.status()["ready"], true);
    assert_eq!(server.get("/health").status, 200);
    let ap = server.region_status(name(AP));
    assert!(
        ap["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{ap:#}"
    );
}

// ---------------------------------------------------------------------------
// Restarts
// ---------------------------------------------------------------------------

#[test]
fn forced_state_and_history_survive_a_restart() {
    let mut server = start(&config(FAST));
    let state_path = format!("/admin/regions/{}/state", name(US));
    let reply = server.post(&state_path, r#"{"state":"down"}"#, None);
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_failover(&server, EU, Duration::from_secs(2));

    let probe = hickory_proto::op::Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
    let first = server.restart_with(&probe);
    eprintln!("forced restart: first answer {:?}", addresses(&first));
    let settled = wait_failover(&server, EU, Duration::from_secs(1));
    eprintln!(
        "forced restart: answer without the forced-down region {settled:?} after the first answer"
    );
    let us = server.region_status(name(US));
    assert_eq!(us["forced"], "down", "{us:#}");
    assert_eq!(us["healthy"], false, "{us:#}");
    let events = server.events(100);
    let forced = events
        .iter()
        .find(|e| e["region"] == name(US) && e["to"] == "down")
        .unwrap_or_else(|| panic!("the forced-down event is gone after restart: {events:#?}"));
    assert_event_shape(forced);
    assert!(
        forced["reason"].as_str().unwrap().contains("forced"),
        "{forced:#}"
    );
    // Stays forced through the probes of the new process.
    server.wait_ready(Duration::from_secs(5));
    assert_failover_stays(&server, EU, Duration::from_millis(1500));

    let reply = server.post(&state_path, r#"{"state":"auto"}"#, None);
    assert_eq!(reply.status, 200, "{reply:?}");
    wait_failover(&server, US, Duration::from_secs(2));

    // Checked last so the checks above run either way.
    assert_eq!(
        addresses(&first).first(),
        Some(&v4(EU)),
        "the restarted server's very first answer gives the forced-down region: {first:#?}"
    );
}

/// A region down by its probes whose endpoint still fails when the server
/// restarts is out of the answers from the new process's first answer on,
/// before its probes could have confirmed anything (failure_threshold 3).
#[test]
fn restart_during_an_outage_keeps_the_dead_region_out() {
    let mut server = start(&config(FAST));
    server.ws.health[US].set_mode(Mode::Down);
    wait_failover(&server, EU, Duration::from_secs(8));

    let probe = hickory_proto::op::Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
    let restarted = Instant::now();
    let first = server.restart_with(&probe);
    eprintln!(
        "outage restart: first answer {:?} {:?} after spawn",
        addresses(&first),
        restarted.elapsed()
    );
    let us = server.region_status(name(US));
    assert_eq!(us["state"], "down", "{us:#}");
    // Three failures at 1 s could not have happened yet: this is memory.
    assert_failover_stays(&server, EU, Duration::from_millis(1500));
    let events = server.events(10);
    assert!(
        events
            .iter()
            .any(|e| e["region"] == name(US) && e["to"] == "down"),
        "{events:#?}"
    );

    // Checked last so the checks above run either way.
    assert_eq!(
        addresses(&first).first(),
        Some(&v4(EU)),
        "the restarted server's very first answer gives the dead region: {first:#?}"
    );
}

// ---------------------------------------------------------------------------
// Isolation between regions
// ---------------------------------------------------------------------------

/// A hung endpoint (timeout 2 s each probe) does not delay another
/// region's verdict: B's 503s take it down as fast as they would alone.
#[test]
fn a_hung_region_does_not_delay_the_others() {
    let server = start(&config(
        r#"interval           = "2s"
timeout            = "2s"
fast_interval      = "1s"
failure_threshold  = 3
recovery_threshold = 2
"#,
    ));
    let t0 = Instant::now();
    server.ws.health[US].set_mode(Mode::Hang);
    server.ws.health[EU].set_mode(Mode::Down);
    let bound = Duration::from_secs(3 * 2 + 1);
    let eu_down = wait_healthy(&server, name(EU), false, Duration::from_secs(15));
    eprintln!("503 region down after {eu_down:?} while another hangs (bound {bound:?})");
    assert!(
        eu_down <= bound,
        "the 503 region took {eu_down:?}, bound {bound:?}"
    );
    wait_healthy(&server, name(US), false, Duration::from_secs(20));
    eprintln!("hung region down after {:?}", t0.elapsed());
    let eu = server.region_status(name(EU));
    assert!(
        eu["last_error"].as_str().is_some_and(|e| e.contains("503")),
        "{eu:#}"
    );
    let us = server.region_status(name(US));
    assert!(
        us["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{us:#}"
    );
    let events = server.events(10);
    let time_of = |region: &str| {
        let e = events
            .iter()
            .find(|e| e["region"] == region && e["to"] == "down")
            .unwrap_or_else(|| panic!("no down event for {region}: {events:#?}"));
        humantime::parse_rfc3339(e["time"].as_str().unwrap()).unwrap()
    };
    assert!(time_of(name(EU)) <= time_of(name(US)), "{events:#?}");
    wait_failover(&server, AP, Duration::from_secs(2));
}

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

/// One JSON POST per transition to the receiver; a second webhook at a
/// closed port (listed first) delays neither the answers nor the receiver.
#[test]
fn webhooks_get_one_json_post_per_transition() {
    let sink = WebhookSink::start();
    let dead = closed_port();
    let text = format!(
        "{}\n[[notify]]\nurl = \"http://127.0.0.1:{dead}/hook\"\nformat = \"json\"\n\n[[notify]]\nurl = \"{}\"\nformat = \"json\"\n",
        config(FAST),
        sink.url()
    );
    let server = start(&text);

    // threshold x interval + timeout + 1 s, with interval and timeout 1 s.
    let bound = Duration::from_secs(3 + 1 + 1);
    server.ws.health[US].set_mode(Mode::Down);
    let t0 = Instant::now();
    let detected = wait_failover(&server, EU, bound + Duration::from_secs(5));
    let changed_at = Instant::now();
    eprintln!("webhooks: detection {detected:?} (bound {bound:?})");
    assert!(
        detected <= bound,
        "a dead webhook must not delay failover: {detected:?}"
    );
    sink.wait_for(1, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no webhook POST within 3 s; log:\n{}", server.log()));
    let first = &sink.received()[0];
    let delay = first.at.saturating_duration_since(changed_at);
    eprintln!(
        "webhooks: POST {:?} after the answer changed ({:?} after failing)",
        delay,
        first.at - t0
    );
    assert!(delay < Duration::from_secs(2), "webhook late by {delay:?}");

    server.ws.health[US].set_mode(Mode::Up);
    wait_failover(&server, US, Duration::from_secs(8));
    sink.wait_for(2, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no POST for the recovery; log:\n{}", server.log()));
    // Nothing more arrives (no duplicates, no retries of delivered ones).
    std::thread::sleep(Duration::from_millis(1500));
    let received = sink.received();
    let events = server.events(100);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(received.len(), 2, "one POST per transition: {received:#?}");

    let addr = |r: usize| REGIONS[r].v4.to_string();
    let expect = [
        ("up", "down", addr(US), addr(EU)),
        ("down", "up", addr(EU), addr(US)),
    ];
    for (r, (from, to, before, after)) in received.iter().zip(expect) {
        assert!(r.request_line.starts_with("POST /hook "), "{r:#?}");
        assert!(
            header_value(&r.head, "content-type").is_some_and(|v| v.contains("application/json")),
            "{r:#?}"
        );
        let body: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {r:#?}"));
        assert_event_shape(&body);
        assert_eq!(body["region"], name(US), "{body:#}");
        assert_eq!(
            (body["from"].as_str(), body["to"].as_str()),
            (Some(from), Some(to)),
            "{body:#}"
        );
        let has = |field: &str, addr: &str| {
            body[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == addr))
        };
        assert!(has("answer_before", &before), "{body:#}");
        assert!(has("answer_after", &after), "{body:#}");
        assert!(!has("answer_after", &before), "{body:#}");
    }
    let down: Value = serde_json::from_str(&received[0].body).unwrap();
    assert!(down["reason"].as_str().unwrap().contains("503"), "{down:#}");
}

// ---------------------------------------------------------------------------
// HTTPS probes
// ---------------------------------------------------------------------------

/// `ca_file` makes a self-signed CA's endpoint healthy; a certificate for
/// another name fails, with a reason about the certificate.
#[test]
fn https_probes_trust_ca_file_and_reject_a_wrong_name() {
    let ca = TestCa::new();
    let good = TlsStub::start(&ca, "127.0.0.1");
    let wrong = TlsStub::start(&ca, "wrong.example.net");
    let mut text = config(&format!(
        "{FAST}ca_file            = \"{}\"\n",
        ca.ca_file().display()
    ));
    text = with_health_url(
        &text,
        US,
        &format!("https://127.0.0.1:{}/health", good.addr.port()),
    );
    text = with_health_url(
        &text,
        EU,
        &format!("https://127.0.0.1:{}/health", wrong.addr.port()),
    );
    let server = start(&text);

    let took = wait_healthy(&server, name(EU), false, Duration::from_secs(8));
    eprintln!("https wrong-name region down after {took:?}");
    let eu = server.region_status(name(EU));
    let error = eu["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        error.contains("certificate"),
        "reason must mention the certificate: {eu:#}"
    );
    assert_eq!(
        wrong.requests(),
        0,
        "no request may pass a failed handshake"
    );

    // The CA-signed endpoint stays healthy round after round.
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        (good.requests() >= 3).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "https probes did not reach the good stub: {:#}",
            server.status()
        )
    });
    let us = server.region_status(name(US));
    assert_eq!(us["healthy"], true, "{us:#}");
    assert_eq!(us["state"], "up", "{us:#}");
    assert_eq!(us["last_error"], Value::Null, "{us:#}");
    assert_eq!(us["consecutive_failures"], 0, "{us:#}");
    assert_eq!(server.answer_v4(FAILOVER_NAME), v4(US));
}
