use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::Recovery;
use crate::fleet::message::{Observed, PeerMessage};
use crate::health::vantage::Vantage;

const T0: SystemTime = SystemTime::UNIX_EPOCH;

fn rules(recovery: Recovery) -> Rules {
    Rules {
        failure_threshold: 3,
        recovery_threshold: 2,
        recovery,
    }
}

fn record(recovery: Recovery) -> HealthRecord {
    HealthRecord::new(
        rules(recovery),
        &["us-east-1", "eu-west-1"],
        |_| RegionHealth::new(State::Up, None),
        VecDeque::new(),
    )
}

fn look(healthy: bool, second: u64) -> Observation {
    Observation {
        healthy,
        reason: (!healthy).then(|| "HTTP 503".to_owned()),
        latency: Duration::from_millis(20),
        at: T0 + Duration::from_secs(second),
    }
}

fn see(r: &mut HealthRecord, index: usize, seen: &Observation) -> Option<Transition> {
    r.observe(index, seen, std::time::Instant::now()).transition
}

fn event(region: &str, n: usize) -> Event {
    Event {
        time: format!("t{n}"),
        region: region.to_owned(),
        from: "up".to_owned(),
        to: "down".to_owned(),
        reason: String::new(),
        answer_before: Vec::new(),
        answer_after: Vec::new(),
        observers: Default::default(),
    }
}

fn healthy(record: &HealthRecord, name: &str) -> bool {
    record
        .routing()
        .iter()
        .find(|(n, _)| n == name)
        .is_some_and(|(_, h)| *h)
}

#[test]
fn down_after_the_threshold_and_back_after_recovery() {
    let mut r = record(Recovery::Automatic);
    assert_eq!(see(&mut r, 0, &look(false, 1)), None);
    assert!(r.confirming_failure(0));
    assert_eq!(see(&mut r, 0, &look(false, 2)), None);
    let down = see(&mut r, 0, &look(false, 3)).expect("third failure");
    assert_eq!((down.from, down.to), ("up", "down"));
    assert!(down.reason.contains("3 consecutive failures: HTTP 503"));
    assert!(!healthy(&r, "us-east-1"));
    assert!(healthy(&r, "eu-west-1"), "other regions are untouched");
    assert!(
        !r.confirming_failure(0),
        "a confirmed outage is probed at the normal pace"
    );

    assert_eq!(see(&mut r, 0, &look(true, 4)), None);
    let up = see(&mut r, 0, &look(true, 5)).expect("second success");
    assert_eq!((up.from, up.to), ("down", "up"));
    assert!(healthy(&r, "us-east-1"));
}

#[test]
fn a_success_resets_the_failure_count() {
    let mut r = record(Recovery::Automatic);
    see(&mut r, 0, &look(false, 1));
    see(&mut r, 0, &look(false, 2));
    see(&mut r, 0, &look(true, 3));
    assert!(!r.confirming_failure(0));
    see(&mut r, 0, &look(false, 4));
    assert_eq!(see(&mut r, 0, &look(false, 5)), None);
    assert!(healthy(&r, "us-east-1"));
}

#[test]
fn observations_keep_their_own_time_and_tallies() {
    let mut r = record(Recovery::Automatic);
    see(&mut r, 1, &look(true, 7));
    see(&mut r, 1, &look(false, 9));
    let eu = &r.regions()[1];
    assert_eq!(eu.health.last_check, Some(T0 + Duration::from_secs(9)));
    assert_eq!(eu.health.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!((eu.tally.checks_ok, eu.tally.checks_failed), (1, 1));
    assert_eq!(eu.tally.durations.count, 2);
    // 20 ms falls in the 0.025 s bucket.
    assert_eq!(eu.tally.durations.buckets[2], 2);
    assert!(!r.all_checked(), "us-east-1 has not been looked at");
    see(&mut r, 0, &look(true, 10));
    assert!(r.all_checked());
}

#[test]
fn an_observation_for_an_unknown_index_changes_nothing() {
    let mut r = record(Recovery::Automatic);
    assert_eq!(see(&mut r, 5, &look(false, 1)), None);
    assert_eq!(r.regions()[0].tally, Tally::default());
}

#[test]
fn manual_recovery_waits_for_readmit() {
    let mut r = record(Recovery::Manual);
    for s in 1..=3 {
        see(&mut r, 0, &look(false, s));
    }
    assert_eq!(
        r.readmit("us-east-1"),
        Err(RecordError::Conflict {
            region: "us-east-1".to_owned(),
            why: "has not recovered yet: it is still failing its health checks",
        })
    );
    see(&mut r, 0, &look(true, 4));
    let waiting = see(&mut r, 0, &look(true, 5)).expect("recovered");
    assert_eq!(waiting.to, "awaiting_readmit");
    assert!(!healthy(&r, "us-east-1"), "held out until readmit");
    let back = r.readmit("us-east-1").expect("readmit");
    assert_eq!((back.from, back.to), ("awaiting_readmit", "up"));
    assert!(healthy(&r, "us-east-1"));
}

#[test]
fn forced_states_override_observations_and_name_unknown_regions() {
    let mut r = record(Recovery::Automatic);
    let t = r.force("eu-west-1", Some(Forced::Down)).expect("known");
    assert_eq!(t.map(|t| (t.from, t.to)), Some(("up", "down")));
    see(&mut r, 1, &look(true, 1));
    assert!(
        !healthy(&r, "eu-west-1"),
        "probes do not undo a forced state"
    );
    assert_eq!(r.force("eu-west-1", Some(Forced::Down)), Ok(None));
    assert!(r.force("eu-west-1", None).expect("known").is_some());
    assert!(healthy(&r, "eu-west-1"));
    assert_eq!(
        r.force("us-west-2", Some(Forced::Up)),
        Err(RecordError::UnknownRegion("us-west-2".to_owned()))
    );
}

#[test]
fn reconfigure_keeps_regions_by_name() {
    let mut r = record(Recovery::Automatic);
    r.force("eu-west-1", Some(Forced::Down)).expect("known");
    see(&mut r, 0, &look(true, 1));
    r.reconfigure(rules(Recovery::Automatic), &["eu-west-1", "ap-southeast-1"]);
    let names: Vec<&str> = r.regions().iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["eu-west-1", "ap-southeast-1"]);
    assert_eq!(r.regions()[0].health.forced, Some(Forced::Down));
    assert_eq!(r.regions()[1].health.state, State::Up);
    assert!(!r.regions()[1].health.checked);
    let remembered = r.remembered();
    assert_eq!(remembered["eu-west-1"].forced, Some(Forced::Down));
}

#[test]
fn history_is_bounded_newest_first_and_counted_per_region() {
    let mut r = record(Recovery::Automatic);
    for n in 0..HISTORY + 5 {
        r.record_event(event("us-east-1", n));
    }
    let last = r.events(2);
    assert_eq!(last[0].time, format!("t{}", HISTORY + 4));
    assert_eq!(last[1].time, format!("t{}", HISTORY + 3));
    assert_eq!(r.events(usize::MAX).len(), HISTORY);
    assert_eq!(r.regions()[0].tally.events, (HISTORY + 5) as u64);
    assert_eq!(r.regions()[1].tally.events, 0);
}

fn peer_says(instance: &str, seq: u64, us_east_up: bool) -> PeerMessage {
    PeerMessage {
        instance: instance.to_owned(),
        region: "eu-west-1".to_owned(),
        incarnation: 1,
        seq,
        routing_version: "v".to_owned(),
        observations: vec![
            Observed {
                region: "us-east-1".to_owned(),
                up: us_east_up,
                latency_seconds: Some(0.08),
                last_check: None,
            },
            Observed {
                region: "eu-west-1".to_owned(),
                up: true,
                latency_seconds: None,
                last_check: None,
            },
        ],
        commands: Vec::new(),
    }
}

fn fleet_record() -> HealthRecord {
    let mut r = record(Recovery::Automatic);
    r.set_vantage(Some(Vantage::new(
        "ns1",
        "us-east-1",
        crate::config::Quorum::Majority,
        Duration::from_secs(10),
    )));
    r
}

#[test]
fn in_a_fleet_one_vantage_point_alone_does_not_take_a_region_out() {
    let now = std::time::Instant::now();
    let mut r = fleet_record();
    r.hear(&peer_says("ns2", 1, true), now).expect("heard");
    r.hear(&peer_says("ns3", 1, true), now).expect("heard");
    for s in 1..=3 {
        let looked = r.observe(0, &look(false, s), now);
        assert_eq!(looked.transition, None, "1 of 3 is no majority");
        assert_eq!(looked.flipped, s == 3);
    }
    assert!(healthy(&r, "us-east-1"));
    assert!(
        !r.own_observations()[0].up,
        "the observation is still shared"
    );

    // A second vantage point agrees: the fleet takes it out.
    let t = r.hear(&peer_says("ns2", 2, false), now).expect("heard");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "us-east-1");
    assert!(
        t[0].1.reason.contains("2 of 3 vantage points (ns1, ns2)"),
        "{:?}",
        t[0].1
    );
    assert!(!healthy(&r, "us-east-1"));

    // It recovers for ns2: 1 of 3 down is up again.
    let t = r.hear(&peer_says("ns2", 3, true), now).expect("heard");
    assert_eq!(t[0].1.to, "up");
}

#[test]
fn an_isolated_instance_decides_alone_and_rejoins() {
    let now = std::time::Instant::now();
    let mut r = fleet_record();
    r.hear(&peer_says("ns2", 1, true), now).expect("heard");
    r.hear(&peer_says("ns3", 1, true), now).expect("heard");
    for s in 1..=3 {
        r.observe(0, &look(false, s), now);
    }
    assert!(healthy(&r, "us-east-1"));
    // Both peers go stale: alone, its own observation decides.
    let later = now + Duration::from_secs(11);
    let t = r.reevaluate(later);
    assert_eq!(t.len(), 1);
    assert!(!healthy(&r, "us-east-1"));
    assert!(r.vantage().is_some_and(|v| v.isolated(later)));
    // They come back seeing it up: outvoted again.
    r.hear(&peer_says("ns2", 2, true), later).expect("heard");
    r.hear(&peer_says("ns3", 2, true), later).expect("heard");
    assert!(healthy(&r, "us-east-1"));
    let observers = r.observers("ns1", "us-east-1", later);
    let names: Vec<&str> = observers[0]
        .observers
        .iter()
        .map(|o| o.instance.as_str())
        .collect();
    assert_eq!(names, ["ns1", "ns2", "ns3"]);
    assert_eq!(observers[0].observers[0].state, "down");
    assert_eq!(observers[0].observers[1].region, "eu-west-1");
}

#[test]
fn manual_recovery_holds_a_region_the_fleet_sees_up() {
    let now = std::time::Instant::now();
    let mut r = record(Recovery::Manual);
    r.set_vantage(Some(Vantage::new(
        "ns1",
        "us-east-1",
        crate::config::Quorum::Majority,
        Duration::from_secs(10),
    )));
    r.hear(&peer_says("ns2", 1, false), now).expect("heard");
    for s in 1..=3 {
        r.observe(0, &look(false, s), now);
    }
    assert!(!healthy(&r, "us-east-1"));
    // ns2 sees it up again: 1 of 2 down is no majority, so the fleet
    // sees it up, and manual recovery holds it.
    let t = r.hear(&peer_says("ns2", 2, true), now).expect("heard");
    assert_eq!(t[0].1.to, "awaiting_readmit");
    assert!(!healthy(&r, "us-east-1"));
    assert_eq!(r.observe(0, &look(true, 4), now).transition, None);
    r.readmit("us-east-1").expect("readmit");
    assert!(healthy(&r, "us-east-1"));
}
