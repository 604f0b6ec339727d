//! Black-box tests of the fleet (docs/reference.md §7; issue 12): three
//! real `keiko-dns` processes on loopback, each with its own stand-in
//! regional endpoints so a region can fail for one vantage point only,
//! certificates made with `keiko-dns fleet certs`, health every second
//! and a 3 s peer timeout. The tests change endpoints, send operator
//! commands, kill, stop and restart instances, and talk to the peer
//! endpoint themselves, and watch the effect through DNS answers,
//! `/status`, `/events`, `/metrics`, webhooks and `keiko-dns status`.
//!
//! Long because each partition case of the issue is its own test, each
//! with its own fleet; the harness is in tests/common/fleet.rs.
//!
//! The figures the closing note asks for are printed with
//! `eprintln!` (`cargo test --test fleet -- --nocapture`).

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
// Instances are known by their index (INSTANCES[i], fleet.node(i)).
#![allow(clippy::needless_range_loop)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::fleet::*;
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const US: usize = 0;
const EU: usize = 1;
const AP: usize = 2;

fn v4(region: usize) -> IpAddr {
    REGIONS[region].v4.into()
}

fn name(region: usize) -> &'static str {
    REGIONS[region].name
}

/// Asserts that every instance answers the failover name with `region`.
fn assert_all_fail_over_to(fleet: &TestFleet, region: usize, why: &str) {
    let answers = fleet.answers(FAILOVER_NAME);
    assert!(
        answers.iter().all(|a| *a == Some(v4(region))),
        "{why}: expected every instance to answer {} ({}), got {answers:?}\n{}",
        v4(region),
        name(region),
        fleet.logs()
    );
}

/// Polls from `t0` until instance `decider`'s own observation of
/// `region` is `state` and every instance answers the failover name with
/// `want`; the time from `t0` to each. Panics after `timeout`.
fn measure(
    fleet: &TestFleet,
    t0: Instant,
    decider: usize,
    region: usize,
    state: &str,
    want: usize,
    timeout: Duration,
) -> (Duration, Duration) {
    let clients: Vec<_> = fleet.nodes.iter().map(Server::udp).collect();
    let (mut observed, mut answered) = (None, None);
    while observed.is_none() || answered.is_none() {
        if observed.is_none() && fleet.observation(decider, name(region), decider)["state"] == state
        {
            observed = Some(t0.elapsed());
        }
        if answered.is_none()
            && clients.iter().all(|c| {
                addresses(&c.query(FAILOVER_NAME, RecordType::A)).first() == Some(&v4(want))
            })
        {
            answered = Some(t0.elapsed());
        }
        assert!(
            t0.elapsed() < timeout,
            "within {timeout:?}: {} observed {} {state}: {observed:?}; all answered {}: \
             {answered:?} (answers now {:?})\n{}",
            INSTANCES[decider],
            name(region),
            name(want),
            fleet.answers(FAILOVER_NAME),
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (observed.unwrap(), answered.unwrap())
}

/// Asserts for `hold` that every instance keeps answering `region`.
fn assert_holds(fleet: &TestFleet, region: usize, hold: Duration, why: &str) {
    let start = Instant::now();
    while start.elapsed() < hold {
        assert_all_fail_over_to(fleet, region, why);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the metric line `series` (name with labels, exactly as
/// exposed) of instance `i`.
fn metric(fleet: &TestFleet, i: usize, series: &str) -> Option<f64> {
    let text = fleet.node(i).get("/metrics").body;
    text.lines().find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == series).then(|| v.trim().parse().ok())?
    })
}

/// `forced` of `region` on every instance.
fn forced(fleet: &TestFleet, region: &str) -> Vec<Value> {
    fleet
        .nodes
        .iter()
        .map(|n| n.region_status(region)["forced"].clone())
        .collect()
}

fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn all_names() -> BTreeSet<String> {
    INSTANCES.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Forming a fleet
// ---------------------------------------------------------------------------

#[test]
fn three_instances_form_a_fleet_that_answers_alike_and_status_names_every_instance() {
    let fleet = TestFleet::start(FleetOptions::default());
    for i in 0..3 {
        let f = fleet.fleet_status(i);
        assert_eq!(f["instance"], INSTANCES[i], "{f:#}");
        assert_eq!(f["down_quorum"], "majority", "{f:#}");
        assert_eq!(f["isolated"], false, "{f:#}");
        let peers = f["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 2, "both peers and only them: {f:#}");
        for p in peers {
            assert_eq!(p["state"], "up", "{}: {p}", INSTANCES[i]);
            assert_eq!(p["agrees"], true, "{}: {p}", INSTANCES[i]);
            let seen = p["last_seen_seconds"].as_f64().unwrap();
            assert!(seen < PEER_TIMEOUT.as_secs_f64(), "{p}");
            assert_eq!(p["routing_version"], f["routing_version"], "{p}");
        }
        assert_eq!(fleet.node(i).metric("keiko_fleet_agreement"), Some(1.0));
        assert_eq!(fleet.node(i).metric("keiko_fleet_isolated"), Some(0.0));
        // Every vantage point is listed for every region, with its region.
        for r in REGIONS {
            let observers = fleet.observers(i, r.name);
            let seen: BTreeSet<String> = observers
                .iter()
                .map(|o| o["instance"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(seen, all_names(), "{}: {observers:#?}", INSTANCES[i]);
            for (o, home) in INSTANCES.iter().zip(HOME_REGIONS) {
                let entry = observers.iter().find(|x| x["instance"] == *o).unwrap();
                assert_eq!(entry["region"], home, "{entry}");
                assert_eq!(entry["state"], "up", "{entry}");
                assert_eq!(entry["fresh"], true, "{entry}");
            }
        }
    }
    let versions = fleet.routing_versions();
    assert!(versions.iter().all(|v| *v == versions[0]), "{versions:?}");

    // Identical answers, dig-style: the whole answer and authority sections.
    let mut queries: Vec<(String, RecordType)> = vec![
        (FAILOVER_NAME.to_owned(), RecordType::A),
        (FAILOVER_NAME.to_owned(), RecordType::AAAA),
        ("@".to_owned(), RecordType::SOA),
        ("@".to_owned(), RecordType::NS),
        ("no-such-name".to_owned(), RecordType::A),
    ];
    queries.extend(
        REGION_NAMES
            .iter()
            .map(|n| ((*n).to_owned(), RecordType::A)),
    );
    for (qname, rtype) in &queries {
        let answers: Vec<_> = fleet
            .nodes
            .iter()
            .map(|n| {
                let m = n.query_udp(qname, *rtype);
                (
                    m.metadata.response_code,
                    m.answers.clone(),
                    m.authorities.clone(),
                )
            })
            .collect();
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{qname} {rtype}: instances answer differently: {answers:#?}"
        );
    }
    assert_all_fail_over_to(&fleet, US, "a healthy fleet");

    // `keiko-dns status` against each instance names all three.
    for i in 0..3 {
        let admin = format!("http://{}", fleet.node(i).admin_addr());
        let out = fleet.node(i).ws.run(&["status", "--admin", &admin]);
        let text = output_text(&out);
        assert!(out.status.success(), "keiko-dns status failed:\n{text}");
        for n in INSTANCES {
            assert!(
                text.contains(n),
                "keiko-dns status on {} misses {n}:\n{text}",
                INSTANCES[i]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The quorum
// ---------------------------------------------------------------------------

#[test]
fn one_vantage_point_losing_a_region_moves_nothing_two_move_every_instance() {
    let fleet = TestFleet::start(FleetOptions::default());

    // One of three: ns1 loses us-east-1. Its observation reaches everyone,
    // and nobody fails over (1 of 3 is not a majority).
    fleet.set_endpoint(0, US, false);
    fleet.wait_own_observation(0, name(US), "down", DETECTION + Duration::from_secs(1));
    let t = Instant::now();
    wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
        (0..3)
            .all(|i| fleet.observation(i, name(US), 0)["state"] == "down")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("ns1's observation did not spread in 2 s\n{}", fleet.logs()));
    eprintln!(
        "an observation reached every instance in {}",
        secs(t.elapsed())
    );
    assert_holds(
        &fleet,
        US,
        Duration::from_secs(2),
        "one vantage point of three lost us-east-1",
    );
    for i in 0..3 {
        assert_eq!(fleet.verdict(i, name(US)), "up", "{}", INSTANCES[i]);
        assert_eq!(
            metric(
                &fleet,
                i,
                &format!(
                    "keiko_fleet_observation{{observer=\"{}\",region=\"us-east-1\"}}",
                    INSTANCES[0]
                )
            ),
            Some(0.0),
            "{}",
            INSTANCES[i]
        );
    }

    // Two of three: ns2 loses it too. All three fail over, ns3 included,
    // which still reaches us-east-1.
    let t0 = Instant::now();
    fleet.set_endpoint(1, US, false);
    let (observed, answered) = measure(
        &fleet,
        t0,
        1,
        US,
        "down",
        EU,
        DETECTION + Duration::from_secs(4),
    );
    eprintln!(
        "failover: ns2 observed us-east-1 down after {}, all three answered eu-west-1 after {} \
         ({} from the deciding observation)",
        secs(observed),
        secs(answered),
        secs(answered.saturating_sub(observed))
    );
    assert!(
        answered <= observed + Duration::from_secs(2),
        "all three must answer within 2 s of the deciding observation: {answered:?} vs {observed:?}"
    );
    assert!(
        answered <= DETECTION + Duration::from_secs(2),
        "{answered:?}"
    );
    for i in 0..3 {
        assert_eq!(fleet.verdict(i, name(US)), "down", "{}", INSTANCES[i]);
        assert_eq!(fleet.node(i).region_status(name(US))["healthy"], false);
    }
    assert_eq!(
        fleet.observation(2, name(US), 2)["state"],
        "up",
        "ns3 still reaches it"
    );

    // Recovery: ns1 reaches it again; 1 of 3 down is not a majority.
    let t1 = Instant::now();
    fleet.set_endpoint(0, US, true);
    let (observed, answered) = measure(
        &fleet,
        t1,
        0,
        US,
        "up",
        US,
        DETECTION + Duration::from_secs(4),
    );
    eprintln!(
        "recovery: ns1 observed us-east-1 up after {}, all three answered it after {} \
         ({} from the deciding observation)",
        secs(observed),
        secs(answered),
        secs(answered.saturating_sub(observed))
    );
    assert!(
        answered <= observed + Duration::from_secs(2),
        "{answered:?} vs {observed:?}"
    );
    let versions = fleet.routing_versions();
    assert!(versions.iter().all(|v| *v == versions[0]), "{versions:?}");
}

// ---------------------------------------------------------------------------
// Operator commands
// ---------------------------------------------------------------------------

#[test]
fn a_forced_state_reaches_every_instance_and_the_last_command_wins_everywhere() {
    let fleet = TestFleet::start(FleetOptions::default());

    let t0 = Instant::now();
    let reply = fleet.command(0, name(US), "down");
    let answered_after = t0.elapsed();
    assert_eq!(reply["region"], name(US), "{reply}");
    assert_eq!(reply["state"], "down", "{reply}");
    assert_eq!(names(&reply["acknowledged_by"]), all_names(), "{reply}");
    assert_eq!(names(&reply["pending"]), BTreeSet::new(), "{reply}");
    let took = fleet
        .wait_all_answer(FAILOVER_NAME, v4(EU), COMMAND_SPREAD)
        .map(|_| t0.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "not every instance applied it in 2 s: {:?}",
                fleet.answers(FAILOVER_NAME)
            )
        });
    eprintln!(
        "command propagation: POST answered (all acknowledged) after {}, all three answered after {}",
        secs(answered_after),
        secs(took)
    );
    assert_eq!(forced(&fleet, name(US)), vec![json!("down"); 3]);

    // `auto` from another instance hands it back everywhere.
    let t1 = Instant::now();
    fleet.command(1, name(US), "auto");
    fleet
        .wait_all_answer(FAILOVER_NAME, v4(US), COMMAND_SPREAD)
        .unwrap_or_else(|| {
            panic!(
                "auto did not spread in 2 s: {:?}",
                fleet.answers(FAILOVER_NAME)
            )
        });
    eprintln!(
        "auto from ns2: all three answered us-east-1 after {}",
        secs(t1.elapsed())
    );
    assert_eq!(forced(&fleet, name(US)), vec![Value::Null; 3]);

    // Commands in quick succession from different instances: the last one
    // issued wins on every instance.
    let sequence = [
        (0, US, "down"),
        (1, US, "up"),
        (2, EU, "down"),
        (0, US, "auto"),
        (2, US, "down"),
        (1, EU, "auto"),
        (0, EU, "down"),
    ];
    for (i, region, state) in sequence {
        fleet.command(i, name(region), state);
    }
    wait_until(COMMAND_SPREAD, Duration::from_millis(20), || {
        (forced(&fleet, name(US)) == vec![json!("down"); 3]
            && forced(&fleet, name(EU)) == vec![json!("down"); 3])
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the last commands did not win everywhere: us-east-1 {:?}, eu-west-1 {:?}",
            forced(&fleet, name(US)),
            forced(&fleet, name(EU))
        )
    });
    assert!(
        fleet
            .wait_all_answer(FAILOVER_NAME, v4(AP), COMMAND_SPREAD)
            .is_some()
    );

    // At the same moment from all three: whichever wins, it wins everywhere.
    std::thread::scope(|s| {
        for (i, state) in ["up", "auto", "down"].into_iter().enumerate() {
            let fleet = &fleet;
            s.spawn(move || fleet.command(i, name(US), state));
        }
    });
    let settled = wait_until(COMMAND_SPREAD, Duration::from_millis(20), || {
        let f = forced(&fleet, name(US));
        let versions = fleet.routing_versions();
        (f.iter().all(|x| *x == f[0]) && versions.iter().all(|v| *v == versions[0])).then_some(f)
    });
    let (f, _) = settled.unwrap_or_else(|| {
        panic!(
            "concurrent commands left instances apart: {:?} {:?}",
            forced(&fleet, name(US)),
            fleet.routing_versions()
        )
    });
    eprintln!("concurrent commands settled on {}", f[0]);
    let answers = fleet.answers(FAILOVER_NAME);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[test]
fn a_peer_stopped_during_a_command_applies_it_on_resuming_and_restarts_keep_it() {
    let mut fleet = TestFleet::start(FleetOptions::default());

    let paused = fleet.pause(2);
    let t0 = Instant::now();
    let reply = fleet.command(0, name(US), "down");
    let waited = t0.elapsed();
    assert_eq!(
        names(&reply["pending"]),
        BTreeSet::from([INSTANCES[2].to_owned()]),
        "{reply}"
    );
    assert_eq!(
        names(&reply["acknowledged_by"]),
        BTreeSet::from([INSTANCES[0].to_owned(), INSTANCES[1].to_owned()]),
        "{reply}"
    );
    assert!(
        waited < Duration::from_millis(2900),
        "the POST answers after at most 2 s of waiting: {waited:?}"
    );
    for i in 0..2 {
        assert!(
            fleet
                .node(i)
                .wait_for_answer(FAILOVER_NAME, v4(EU), COMMAND_SPREAD)
                .is_some(),
            "{} did not apply the command",
            INSTANCES[i]
        );
    }
    paused.resume();
    let took = fleet
        .node(2)
        .wait_for_answer(FAILOVER_NAME, v4(EU), Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "ns3 did not apply the command within 5 s of resuming\n{}",
                fleet.logs()
            )
        });
    eprintln!(
        "a peer stopped during a command applied it {} after resuming",
        secs(took)
    );

    // Restarted, ns3 answers with the fleet's forced state from its first
    // query (it persisted the command).
    let probe = Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
    let first = fleet.nodes[2].restart_with(&probe);
    assert_eq!(
        addresses(&first).first(),
        Some(&v4(EU)),
        "the restarted instance's first answer: {first:#?}"
    );

    // A command made while ns2 is down reaches it within 5 s of its return.
    let status = fleet.nodes[1].stop();
    assert!(status.success(), "ns2 did not stop cleanly: {status}");
    let reply = fleet.command(0, name(EU), "down");
    assert_eq!(
        names(&reply["pending"]),
        BTreeSet::from([INSTANCES[1].to_owned()]),
        "{reply}"
    );
    let first = fleet.nodes[1].restart_with(&probe);
    eprintln!("restarted ns2's first answer: {:?}", addresses(&first));
    assert_ne!(
        addresses(&first).first(),
        Some(&v4(US)),
        "the forced state it held must hold from the first answer: {first:#?}"
    );
    let took = fleet
        .node(1)
        .wait_for_answer(FAILOVER_NAME, v4(AP), Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "ns2 did not apply the missed command within 5 s\n{}",
                fleet.logs()
            )
        });
    eprintln!(
        "a returning instance applied a missed command {} after its first answer",
        secs(took)
    );
    assert_eq!(forced(&fleet, name(EU)), vec![json!("down"); 3]);
}

#[test]
fn readmit_on_one_instance_readmits_everywhere() {
    let fleet = TestFleet::start(FleetOptions {
        manual_recovery: true,
        ..FleetOptions::default()
    });
    fleet.set_endpoint(0, US, false);
    fleet.set_endpoint(1, US, false);
    assert!(
        fleet
            .wait_all_answer(FAILOVER_NAME, v4(EU), DETECTION + Duration::from_secs(3))
            .is_some(),
        "two of three lost us-east-1: {:?}\n{}",
        fleet.answers(FAILOVER_NAME),
        fleet.logs()
    );
    fleet.set_endpoint(0, US, true);
    fleet.set_endpoint(1, US, true);
    wait_until(
        DETECTION + Duration::from_secs(3),
        Duration::from_millis(50),
        || {
            (0..3)
                .all(|i| fleet.verdict(i, name(US)) == "awaiting_readmit")
                .then_some(())
        },
    )
    .unwrap_or_else(|| {
        panic!(
            "not awaiting readmit everywhere: {:?}",
            (0..3)
                .map(|i| fleet.verdict(i, name(US)))
                .collect::<Vec<_>>()
        )
    });
    assert_holds(&fleet, EU, Duration::from_secs(1), "held until readmitted");

    let t0 = Instant::now();
    let reply = fleet
        .node(1)
        .post(&format!("/admin/regions/{}/readmit", name(US)), "", None);
    assert_eq!(reply.status, 200, "{reply:?}");
    let took = fleet
        .wait_all_answer(FAILOVER_NAME, v4(US), COMMAND_SPREAD)
        .unwrap_or_else(|| {
            panic!(
                "readmit did not spread in 2 s: {:?}",
                fleet.answers(FAILOVER_NAME)
            )
        });
    eprintln!(
        "readmit on ns2: all three answered us-east-1 after {}",
        secs(took)
    );
    assert!(t0.elapsed() >= took);
    for i in 0..3 {
        assert_eq!(fleet.verdict(i, name(US)), "up", "{}", INSTANCES[i]);
    }
}

// ---------------------------------------------------------------------------
// Partitions
// ---------------------------------------------------------------------------

#[test]
fn a_killed_peer_goes_stale_and_its_observation_stops_counting() {
    let fleet = TestFleet::start(FleetOptions::default());
    // ns2 and ns3 lose us-east-1: down by 2 of 3.
    fleet.set_endpoint(1, US, false);
    fleet.set_endpoint(2, US, false);
    assert!(
        fleet
            .wait_all_answer(FAILOVER_NAME, v4(EU), DETECTION + Duration::from_secs(3))
            .is_some(),
        "{:?}",
        fleet.answers(FAILOVER_NAME)
    );

    let t0 = Instant::now();
    signal(fleet.node(2).pid(), libc::SIGKILL);
    // Without ns3, 1 of the 2 fresh vantage points is not a majority.
    for i in 0..2 {
        let took = fleet
            .node(i)
            .wait_for_answer(FAILOVER_NAME, v4(US), PEER_TIMEOUT + Duration::from_secs(3))
            .unwrap_or_else(|| {
                panic!(
                    "{} still counts the dead ns3\n{}",
                    INSTANCES[i],
                    fleet.logs()
                )
            });
        eprintln!(
            "{}: the dead peer stopped counting after {}",
            INSTANCES[i],
            secs(t0.elapsed().max(took))
        );
    }
    for i in 0..2 {
        let f = fleet.fleet_status(i);
        let p = f["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["instance"] == INSTANCES[2])
            .cloned()
            .unwrap_or_else(|| panic!("ns3 no longer listed: {f:#}"));
        assert_ne!(p["state"], "up", "{p}");
        assert!(
            p["last_seen_seconds"].as_f64().unwrap() >= PEER_TIMEOUT.as_secs_f64(),
            "{p}"
        );
        assert_eq!(fleet.observation(i, name(US), 2)["fresh"], false);
        assert_eq!(
            metric(
                &fleet,
                i,
                &format!("keiko_fleet_peer_up{{peer=\"{}\"}}", INSTANCES[2])
            ),
            Some(0.0)
        );
        assert_eq!(f["isolated"], false, "one fresh peer is left: {f:#}");
    }
}

#[test]
fn an_instance_cut_off_from_every_peer_decides_alone_then_rejoins() {
    let fleet = TestFleet::start(FleetOptions::default());
    // ns1 alone loses us-east-1: the fleet keeps it.
    fleet.set_endpoint(0, US, false);
    fleet.wait_own_observation(0, name(US), "down", DETECTION + Duration::from_secs(1));
    assert_holds(&fleet, US, Duration::from_secs(1), "1 of 3");

    let p2 = fleet.pause(1);
    let p3 = fleet.pause(2);
    let (_, alone) = wait_until(
        PEER_TIMEOUT + Duration::from_secs(3),
        Duration::from_millis(20),
        || (fleet.fleet_status(0)["isolated"] == true).then_some(()),
    )
    .unwrap_or_else(|| panic!("ns1 never said it is isolated: {:#}", fleet.fleet_status(0)));
    assert!(
        fleet
            .node(0)
            .wait_for_answer(FAILOVER_NAME, v4(EU), Duration::from_secs(2))
            .is_some(),
        "isolated, ns1 decides from its own observation"
    );
    eprintln!("ns1 isolated after {}, failed over alone", secs(alone));
    assert_eq!(fleet.node(0).metric("keiko_fleet_isolated"), Some(1.0));
    // Peers push every second, so a stopped peer goes stale no sooner
    // than peer_timeout less one push period (and some scheduling).
    assert!(
        alone >= PEER_TIMEOUT - Duration::from_millis(1500),
        "isolated before peer_timeout: {alone:?}"
    );

    let t1 = Instant::now();
    p2.resume();
    p3.resume();
    let formed = fleet.wait_formed(Duration::from_secs(10));
    fleet
        .wait_all_answer(FAILOVER_NAME, v4(US), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("not converged: {:?}", fleet.answers(FAILOVER_NAME)));
    eprintln!(
        "partition healed: fleet formed again after {}, all three answered us-east-1 after {}",
        secs(formed),
        secs(t1.elapsed())
    );
    assert_eq!(fleet.fleet_status(0)["isolated"], false);
}

// ---------------------------------------------------------------------------
// The peer endpoint
// ---------------------------------------------------------------------------

/// A well-formed peer message from `instance`.
fn message(instance: &str, region: &str, incarnation: u64, seq: u64, pad: usize) -> Vec<u8> {
    let observations: Vec<Value> = REGIONS
        .iter()
        .map(
            |r| json!({"region": r.name, "up": false, "latency_seconds": null, "last_check": null}),
        )
        .collect();
    let commands: Vec<Value> = REGIONS
        .iter()
        .map(|r| {
            json!({"region": r.name, "action": "down",
                   "stamp": {"time": u64::MAX >> 1, "instance": instance}})
        })
        .collect();
    serde_json::to_vec(&json!({
        "instance": instance,
        "region": region,
        "incarnation": incarnation,
        "seq": seq,
        "routing_version": "x".repeat(pad.max(1)),
        "observations": observations,
        "commands": commands,
    }))
    .unwrap()
}

#[test]
fn the_peer_endpoint_refuses_strangers_and_bad_messages_change_nothing() {
    let fleet = TestFleet::start(FleetOptions::default());
    let stranger = FleetCerts::make(&[INSTANCES[0]]);
    let target = fleet.peer_addr(1);
    let ca = fleet.certs.ca();
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let member = || peer_client(&ca, tls13, Some(fleet.certs.identity(INSTANCES[0])));
    let before = fleet.routing_versions();

    // A member's certificate over TLS 1.3 gets through to HTTP: the
    // refusals below are about the client, not the test's TLS.
    let control = peer_post(target, member(), b"{}")
        .unwrap_or_else(|e| panic!("a member's TLS 1.3 connection was refused: {e}"));
    assert!(
        (400..500).contains(&control.status),
        "an empty object is not a peer message: {control:?}"
    );

    for (what, client) in [
        ("no client certificate", peer_client(&ca, tls13, None)),
        (
            "a certificate from another CA",
            peer_client(&ca, tls13, Some(stranger.identity(INSTANCES[0]))),
        ),
        (
            "TLS 1.2",
            peer_client(
                &ca,
                &[&rustls::version::TLS12],
                Some(fleet.certs.identity(INSTANCES[0])),
            ),
        ),
    ] {
        let body = message(INSTANCES[0], "us-east-1", u64::MAX, u64::MAX, 1);
        match peer_post(target, client, &body) {
            Err(e) => eprintln!("{what}: refused ({e})"),
            Ok(reply) => panic!("{what}: the peer endpoint answered {reply:?}"),
        }
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "binary garbage",
            (0..2048u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("text", b"hello, peer".to_vec()),
        (
            "truncated JSON",
            message(INSTANCES[0], "us-east-1", now * 2, 1, 1)[..100].to_vec(),
        ),
        ("a JSON list", b"[1, 2, 3]".to_vec()),
        (
            "an unknown field",
            serde_json::to_vec(&json!({"instance": INSTANCES[0], "surprise": true})).unwrap(),
        ),
        // Older than ns1's running incarnation: a replay.
        (
            "a stale sequence",
            message(INSTANCES[0], "us-east-1", 1, 1, 1),
        ),
        // ns1's certificate claiming to be ns3.
        (
            "another instance's name",
            message(INSTANCES[2], "ap-southeast-1", now * 2, 1, 1),
        ),
        (
            "an oversized message",
            message(INSTANCES[0], "us-east-1", now * 2, 1, 300 * 1024),
        ),
    ];
    // Random bodies of every size up to a few KiB, seeded: fuzzing that
    // the test can repeat.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..20 {
        let len = 1 + (n * 211) % 4096;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        bad.push(("random bytes", body));
    }
    for (what, body) in &bad {
        match peer_post(target, member(), body) {
            Ok(reply) => assert!(
                (400..500).contains(&reply.status),
                "{what}: expected a 4xx refusal, got {reply:?}"
            ),
            Err(e) => eprintln!("{what}: connection closed ({e})"),
        }
    }

    // Nothing changed: no forced state, no region down, the same routing
    // everywhere, the fleet still formed, and ns2 still answers.
    std::thread::sleep(Duration::from_secs(1));
    fleet.wait_formed(Duration::from_secs(5));
    assert_eq!(fleet.routing_versions(), before);
    for r in REGIONS {
        assert_eq!(forced(&fleet, r.name), vec![Value::Null; 3], "{}", r.name);
        for i in 0..3 {
            assert_eq!(
                fleet.verdict(i, r.name),
                "up",
                "{} on {}",
                r.name,
                INSTANCES[i]
            );
        }
    }
    assert_all_fail_over_to(&fleet, US, "after the bad peer messages");
    let ns1 = fleet.observation(1, name(US), 0);
    assert_eq!(
        ns1["state"], "up",
        "ns1's observation on ns2 was not overwritten: {ns1}"
    );
}

// ---------------------------------------------------------------------------
// Events, notifications, agreement
// ---------------------------------------------------------------------------

#[test]
fn one_webhook_per_fleet_transition_and_events_carry_the_observers() {
    let (sink, options) = webhook_options();
    let fleet = TestFleet::start(options);
    fleet.set_endpoint(0, US, false);
    fleet.set_endpoint(1, US, false);
    assert!(
        fleet
            .wait_all_answer(FAILOVER_NAME, v4(EU), DETECTION + Duration::from_secs(3))
            .is_some(),
        "{:?}",
        fleet.answers(FAILOVER_NAME)
    );
    assert!(
        sink.wait_for(1, Duration::from_secs(5)).is_some(),
        "no webhook for the failover"
    );
    // Time for a second or third sender to show itself.
    std::thread::sleep(Duration::from_secs(3));
    let received = sink.received();
    assert_eq!(
        received.len(),
        1,
        "one webhook per fleet transition: {received:#?}"
    );
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["region"], name(US), "{body:#}");
    assert_eq!(body["to"], "down", "{body:#}");
    assert_eq!(
        body["instance"], INSTANCES[0],
        "the first name notifies: {body:#}"
    );

    for i in 0..3 {
        let events = fleet.node(i).events(10);
        let e = events
            .iter()
            .find(|e| e["region"] == name(US) && e["to"] == "down")
            .unwrap_or_else(|| panic!("{}: no down event: {events:#?}", INSTANCES[i]));
        let observers = &e["observers"];
        assert_eq!(observers[INSTANCES[0]], "down", "{e:#}");
        assert_eq!(observers[INSTANCES[1]], "down", "{e:#}");
        assert_eq!(observers[INSTANCES[2]], "up", "{e:#}");
        let downs = events.iter().filter(|e| e["region"] == name(US)).count();
        assert_eq!(downs, 1, "one event per fleet transition: {events:#?}");
    }

    fleet.set_endpoint(0, US, true);
    fleet.set_endpoint(1, US, true);
    assert!(
        fleet
            .wait_all_answer(FAILOVER_NAME, v4(US), DETECTION + Duration::from_secs(3))
            .is_some()
    );
    assert!(
        sink.wait_for(2, Duration::from_secs(5)).is_some(),
        "no webhook for the recovery"
    );
    std::thread::sleep(Duration::from_secs(3));
    let received = sink.received();
    assert_eq!(
        received.len(),
        2,
        "one webhook per fleet transition: {received:#?}"
    );
    let body: Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(body["to"], "up", "{body:#}");
    let e = &fleet.node(2).events(1)[0];
    assert_eq!(e["to"], "up", "{e:#}");
    assert!(e["observers"].is_object(), "{e:#}");
}

#[test]
fn a_config_that_differs_on_one_instance_shows_as_disagreement_until_it_matches() {
    let fleet = TestFleet::start(FleetOptions::default());
    let ns3 = fleet.node(2);
    ns3.rewrite_config(&fleet.config(2, &regions_with_weights([10, 10, 80])));
    let log = ns3.reload();
    assert!(log.contains("reloaded"), "{log}");

    let t0 = Instant::now();
    wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        let versions = fleet.routing_versions();
        let seen = |i: usize, peer: usize| {
            fleet.fleet_status(i)["peers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["instance"] == INSTANCES[peer])
                .map(|p| p["agrees"].clone())
        };
        (versions[0] == versions[1]
            && versions[2] != versions[0]
            && seen(0, 2) == Some(json!(false))
            && seen(1, 2) == Some(json!(false))
            && seen(2, 0) == Some(json!(false))
            && seen(0, 1) == Some(json!(true)))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no disagreement shown: {:?}\n{:#}",
            fleet.routing_versions(),
            fleet.fleet_status(0)
        )
    });
    eprintln!(
        "disagreement visible {} after the reload",
        secs(t0.elapsed())
    );
    for i in 0..3 {
        assert_eq!(
            fleet.node(i).metric("keiko_fleet_agreement"),
            Some(0.0),
            "{}",
            INSTANCES[i]
        );
    }

    ns3.rewrite_config(&fleet.config(2, &REGIONS));
    let log = ns3.reload();
    assert!(log.contains("reloaded"), "{log}");
    let took = fleet.wait_formed(Duration::from_secs(3));
    eprintln!("agreement back {} after the second reload", secs(took));
    for i in 0..3 {
        assert_eq!(
            fleet.node(i).metric("keiko_fleet_agreement"),
            Some(1.0),
            "{}",
            INSTANCES[i]
        );
    }
}
