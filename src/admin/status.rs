//! The status document (`GET /status`): what the status page, the CLI and
//! scripts read. Also its wire type, so the CLI parses what the server wrote.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::control::ControlPlane;
use crate::fleet::view::FleetView;
use crate::health::Event;
use crate::health::monitor::{RegionView, rfc3339};
use crate::health::state::State;
use crate::snapshot::NO_LOCATION;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub instance: String,
    pub region: String,
    pub config_version: u64,
    pub snapshot_version: u64,
    pub ready: bool,
    pub zone: String,
    /// The fleet as this instance sees it; absent without `[fleet]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
    /// The zone's signing; null when it is not signed (no `[dnssec]`).
    #[serde(default)]
    pub dnssec: Option<DnssecStatus>,
    pub regions: Vec<RegionStatus>,
    pub records: Vec<RecordStatus>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionStatus {
    pub name: String,
    pub healthy: bool,
    /// What the probes say: "up", "down" or "awaiting_readmit".
    pub state: String,
    /// An operator's override: null, "up" or "down".
    pub forced: Option<String>,
    pub consecutive_failures: u32,
    pub last_check: Option<String>,
    pub last_error: Option<String>,
    pub latency_seconds: Option<f64>,
    pub priority: u32,
    pub weight: u32,
    pub share_percent: f64,
    pub addresses: Vec<String>,
    pub target: String,
    /// What every vantage point observes of this region, this instance
    /// first; without a fleet only this instance.
    #[serde(default)]
    pub observers: Vec<ObserverStatus>,
}

/// `/status` `fleet` (contract section 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub instance: String,
    pub down_quorum: String,
    pub routing_version: String,
    /// No peer is fresh: this instance decides alone.
    pub isolated: bool,
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub instance: String,
    pub url: String,
    /// "up", "stale", "unreachable" or "refused".
    pub state: String,
    /// Null if never heard.
    pub last_seen_seconds: Option<f64>,
    /// Null if unknown.
    pub routing_version: Option<String>,
    pub agrees: bool,
}

/// `/status` `dnssec`: the keys and the signatures of the table being
/// served (contract section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnssecStatus {
    /// 13, ECDSAP256SHA256.
    pub algorithm: u8,
    /// Every published key, the signing one first.
    pub key_tags: Vec<u16>,
    pub signing_key_tag: u16,
    /// When the earliest signature in the table expires (RFC 3339).
    pub earliest_expiration: String,
    /// Seconds until then; negative once it has passed.
    pub expires_in_seconds: i64,
    /// Signatures in the table (one per signed RRset of each prepared answer).
    pub signatures: usize,
}

impl DnssecStatus {
    pub(crate) fn of(summary: &crate::dnssec::Summary, now: SystemTime) -> DnssecStatus {
        let expires = UNIX_EPOCH + Duration::from_secs(u64::from(summary.earliest_expiration));
        let expires_in_seconds = match expires.duration_since(now) {
            Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
        };
        DnssecStatus {
            algorithm: summary.algorithm,
            key_tags: summary.key_tags.clone(),
            signing_key_tag: summary.signing_key_tag,
            earliest_expiration: rfc3339(expires),
            expires_in_seconds,
            signatures: summary.signatures,
        }
    }
}

/// One vantage point's observation of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObserverStatus {
    pub instance: String,
    /// The observer's `server.region`.
    pub region: String,
    /// "up" or "down".
    pub state: String,
    /// Counted in the fleet verdict.
    pub fresh: bool,
    pub latency_seconds: Option<f64>,
    pub last_check: Option<String>,
}

impl FleetStatus {
    pub(crate) fn of(view: &FleetView) -> FleetStatus {
        FleetStatus {
            instance: view.instance.clone(),
            down_quorum: view.down_quorum.clone(),
            routing_version: view.routing_version.clone(),
            isolated: view.isolated,
            peers: view
                .peers
                .iter()
                .map(|p| PeerStatus {
                    instance: p.instance.clone(),
                    url: p.url.clone(),
                    state: p.state.as_str().to_owned(),
                    last_seen_seconds: p.last_seen_seconds,
                    routing_version: p.routing_version.clone(),
                    agrees: p.agrees,
                })
                .collect(),
        }
    }
}

/// This instance's own observation of a region, from its health view: what
/// its probes say (a region awaiting readmit is up to them; forced states
/// are commands, not observations).
pub(crate) fn own_observer(instance: &str, source: &str, view: &RegionView) -> ObserverStatus {
    let h = &view.health;
    ObserverStatus {
        instance: instance.to_owned(),
        region: source.to_owned(),
        state: if h.state == State::Down { "down" } else { "up" }.to_owned(),
        fresh: true,
        latency_seconds: h.latency.map(|d| d.as_secs_f64()),
        last_check: h.last_check.map(rfc3339),
    }
}

/// The observers of `region`: the fleet's when it knows the region, else
/// (no fleet, or a region a reload just added) this instance's own.
pub(crate) fn observers(
    region: &str,
    fleet: Option<&FleetView>,
    own: Option<ObserverStatus>,
) -> Vec<ObserverStatus> {
    let known = fleet.and_then(|f| f.regions.iter().find(|r| r.region == region));
    match known {
        Some(r) => r
            .observers
            .iter()
            .map(|o| ObserverStatus {
                instance: o.instance.clone(),
                region: o.region.clone(),
                state: o.state.to_owned(),
                fresh: o.fresh,
                latency_seconds: o.latency_seconds,
                last_check: o.last_check.clone(),
            })
            .collect(),
        None => own.into_iter().collect(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordStatus {
    pub name: String,
    pub policy: String,
    pub ttl: u32,
    /// The answer for a client with no location (for `weighted`: every
    /// address a draw can give now).
    pub answer: Vec<String>,
    /// The region behind `answer`, when it is one region.
    pub region: Option<String>,
    /// `multivalue`: the regions behind `answer`, by priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<String>>,
    /// What the record answers when no candidate is healthy.
    #[serde(default)]
    pub on_all_down: String,
    /// Set when no candidate is healthy now: the `on_all_down` in effect
    /// (`answer` is then empty for "nodata" and "servfail").
    #[serde(default)]
    pub all_down: Option<String>,
}

pub(crate) fn build(plane: &ControlPlane, events: usize) -> Status {
    let snap = plane.publisher.snapshot();
    let config = snap.config();
    let views = plane.monitor.regions();
    let fleet = plane.fleet_view();
    let instance = config
        .server
        .nsid
        .clone()
        .unwrap_or_else(|| config.server.region.clone());
    let shares = snap.weighted_default().shares();
    let addresses = |i: usize| config.regions[i].answer_texts();
    let regions = config
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let view = views.iter().find(|v| v.name == r.name);
            let h = view.map(|v| &v.health);
            RegionStatus {
                name: r.name.clone(),
                healthy: snap.healthy[i],
                state: h.map_or("up", |h| h.state.as_str()).to_owned(),
                forced: h
                    .and_then(|h| h.forced)
                    .map(|f| format!("{f:?}").to_lowercase()),
                consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
                last_check: h.and_then(|h| h.last_check).map(rfc3339),
                last_error: h.and_then(|h| h.last_error.clone()),
                latency_seconds: h.and_then(|h| h.latency).map(|d| d.as_secs_f64()),
                priority: r.priority,
                weight: r.weight,
                share_percent: shares
                    .iter()
                    .find(|s| s.0 == i)
                    .map_or(0.0, |s| (s.1 * 10.0).round() / 10.0),
                addresses: addresses(i),
                target: view.map(|v| v.target.clone()).unwrap_or_default(),
                observers: observers(
                    &r.name,
                    fleet.as_ref(),
                    view.map(|v| own_observer(&instance, &config.server.region, v)),
                ),
            }
        })
        .collect();
    let origin = &config.zone.origin;
    let records = config
        .records
        .iter()
        .map(|rec| {
            let (choice, _) = snap.steer(rec.policy, NO_LOCATION, &mut |_| 0);
            let fail_open = match rec.policy {
                Policy::Weighted => snap.weighted_default().fail_open,
                _ => choice.fail_open,
            };
            let mut set = None;
            let (mut answer, region) = match rec.policy {
                Policy::Weighted => (
                    shares.iter().flat_map(|&(i, _)| addresses(i)).collect(),
                    None,
                ),
                Policy::Multivalue { max_answers } => {
                    let (values, _) = snap.value_set(NO_LOCATION);
                    let members = crate::snapshot::routing::members(config, values.mask);
                    set = Some(
                        members
                            .iter()
                            .map(|&r| config.regions[r].name.clone())
                            .collect(),
                    );
                    (
                        crate::snapshot::routing::value_addresses(config, values.mask, max_answers)
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        None,
                    )
                }
                _ => (
                    addresses(choice.region),
                    Some(config.regions[choice.region].name.clone()),
                ),
            };
            let all_down = fail_open.then(|| rec.on_all_down.as_str().to_owned());
            if fail_open && rec.on_all_down != crate::config::AllDown::FailOpen {
                answer.clear();
            }
            RecordStatus {
                name: crate::snapshot::relative(&rec.name, origin),
                policy: rec.policy.as_str().to_owned(),
                ttl: rec.ttl,
                answer,
                region,
                set,
                on_all_down: rec.on_all_down.as_str().to_owned(),
                all_down,
            }
        })
        .collect();
    Status {
        instance,
        region: config.server.region.clone(),
        config_version: plane.publisher.reloads().0 + 1,
        snapshot_version: snap.version,
        ready: plane.monitor.ready(),
        zone: origin.to_string(),
        fleet: fleet.as_ref().map(FleetStatus::of),
        dnssec: snap
            .compiled
            .dnssec
            .as_ref()
            .map(|s| DnssecStatus::of(s, SystemTime::now())),
        regions,
        records,
        events: plane.monitor.events(events),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::fleet::view;
    use crate::health::state::{Forced, RegionHealth};

    fn region_view(state: State, forced: Option<Forced>) -> RegionView {
        let mut health = RegionHealth::new(state, forced);
        health.latency = Some(Duration::from_millis(12));
        health.last_check = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600));
        RegionView {
            name: "eu-west-1".into(),
            health,
            target: "http://127.0.0.1:1/health".into(),
            checks_ok: 0,
            checks_failed: 0,
            events: 0,
            durations: Default::default(),
        }
    }

    #[test]
    fn without_a_fleet_the_observers_are_this_instance_from_its_probes() {
        let own = own_observer("ns1.test", "us-east-1", &region_view(State::Down, None));
        assert_eq!(
            own,
            ObserverStatus {
                instance: "ns1.test".into(),
                region: "us-east-1".into(),
                state: "down".into(),
                fresh: true,
                latency_seconds: Some(0.012),
                last_check: Some("2026-01-01T00:00:00Z".into()),
            }
        );
        assert_eq!(observers("eu-west-1", None, Some(own.clone())), [own]);
        // Awaiting readmit is up to the probes; a forced state is no observation.
        let held = own_observer(
            "ns1.test",
            "us-east-1",
            &region_view(State::AwaitingReadmit, Some(Forced::Down)),
        );
        assert_eq!(held.state, "up");
    }

    #[test]
    fn with_a_fleet_every_vantage_point_is_listed_this_instance_first() {
        let fleet = view::sample();
        let own = own_observer("ns1.us-east-1", "us-east-1", &region_view(State::Up, None));
        let list = observers("eu-west-1", Some(&fleet), Some(own.clone()));
        let seen: Vec<_> = list
            .iter()
            .map(|o| {
                (
                    o.instance.as_str(),
                    o.region.as_str(),
                    o.state.as_str(),
                    o.fresh,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("ns1.us-east-1", "us-east-1", "up", true),
                ("ns2.eu-west-1", "eu-west-1", "down", true),
                ("ns3.ap-southeast-1", "ap-southeast-1", "up", false),
            ]
        );
        assert_eq!(list[1].latency_seconds, Some(0.002));
        // A region the fleet does not know yet (just added by a reload).
        assert_eq!(
            observers("sa-east-1", Some(&fleet), Some(own.clone())),
            [own]
        );
    }

    #[test]
    fn the_fleet_object_is_the_contract_shape_and_absent_without_a_fleet() {
        let fleet = FleetStatus::of(&view::sample());
        let json = serde_json::to_value(&fleet).unwrap();
        assert_eq!(json["instance"], "ns1.us-east-1");
        assert_eq!(json["down_quorum"], "majority");
        assert_eq!(json["isolated"], false);
        assert_eq!(
            json["peers"][0],
            serde_json::json!({
                "instance": "ns2.eu-west-1",
                "url": "https://10.0.2.53:9400",
                "state": "up",
                "last_seen_seconds": 0.4,
                "routing_version": "3f2a9c1b7d4e5f60a1b2c3d4e5f60718",
                "agrees": true,
            })
        );
        assert_eq!(json["peers"][1]["state"], "stale");
        // Never heard: nulls, not missing keys.
        let never = json["peers"][2].as_object().unwrap();
        assert_eq!(never["state"], "unreachable");
        assert!(never["last_seen_seconds"].is_null() && never["routing_version"].is_null());

        let mut status = empty_status("ns1.us-east-1");
        let text = serde_json::to_string(&status).unwrap();
        assert!(!text.contains("\"fleet\""), "{text}");
        status.fleet = Some(fleet.clone());
        let back: Status = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(back.fleet, Some(fleet));
        // An older server's document (no fleet, no observers) still reads.
        let old: Status = serde_json::from_str(&text).unwrap();
        assert!(old.fleet.is_none());
    }

    /// A status document with nothing in it but its instance.
    fn empty_status(instance: &str) -> Status {
        Status {
            instance: instance.into(),
            region: "us-east-1".into(),
            config_version: 1,
            snapshot_version: 1,
            ready: true,
            zone: "keiko.example.com.".into(),
            fleet: None,
            dnssec: None,
            regions: vec![],
            records: vec![],
            events: vec![],
        }
    }

    #[test]
    fn the_dnssec_object_is_the_contract_shape_and_null_when_unsigned() {
        let summary = crate::dnssec::Summary {
            algorithm: 13,
            signing_key_tag: 4242,
            key_tags: vec![4242, 777],
            earliest_expiration: 1_768_435_200, // 2026-01-15T00:00:00Z
            signatures: 96,
            signed_total: 140,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_768_348_800);
        let d = DnssecStatus::of(&summary, now);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "algorithm": 13,
                "key_tags": [4242, 777],
                "signing_key_tag": 4242,
                "earliest_expiration": "2026-01-15T00:00:00Z",
                "expires_in_seconds": 86_400,
                "signatures": 96,
            })
        );
        let late = now + Duration::from_secs(86_400 + 90);
        assert_eq!(DnssecStatus::of(&summary, late).expires_in_seconds, -90);

        let mut status = empty_status("ns1.test");
        let json = serde_json::to_value(&status).unwrap();
        assert!(
            json["dnssec"].is_null() && json.get("dnssec").is_some(),
            "{json}"
        );
        status.dnssec = Some(d.clone());
        let back: Status = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        assert_eq!(back.dnssec, Some(d));
        // A document from before DNSSEC (no key at all) still reads.
        let mut old = serde_json::to_value(&status).unwrap();
        old.as_object_mut().unwrap().remove("dnssec");
        let old: Status = serde_json::from_value(old).unwrap();
        assert!(old.dnssec.is_none());
    }
}
