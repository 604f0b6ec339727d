//! The status document (`GET /status`): what the status page, the CLI and
//! scripts read. Also its wire type, so the CLI parses what the server wrote.

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::control::ControlPlane;
use crate::health::Event;
use crate::health::monitor::rfc3339;
use crate::snapshot::NO_LOCATION;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub instance: String,
    pub region: String,
    pub config_version: u64,
    pub snapshot_version: u64,
    pub ready: bool,
    pub zone: String,
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
}

pub(crate) fn build(plane: &ControlPlane, events: usize) -> Status {
    let snap = plane.publisher.snapshot();
    let config = snap.config();
    let views = plane.monitor.regions();
    let shares = snap.weighted_default().shares();
    let addresses = |i: usize| {
        config.regions[i]
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
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
            }
        })
        .collect();
    let origin = &config.zone.origin;
    let records = config
        .records
        .iter()
        .map(|rec| {
            let (answer, region) = match rec.policy {
                Policy::Weighted => (
                    shares.iter().flat_map(|&(i, _)| addresses(i)).collect(),
                    None,
                ),
                policy => {
                    let (choice, _) = snap.steer(policy, NO_LOCATION, &mut |_| 0);
                    (
                        addresses(choice.region),
                        Some(config.regions[choice.region].name.clone()),
                    )
                }
            };
            RecordStatus {
                name: crate::snapshot::relative(&rec.name, origin),
                policy: rec.policy.as_str().to_owned(),
                ttl: rec.ttl,
                answer,
                region,
            }
        })
        .collect();
    Status {
        instance: config
            .server
            .nsid
            .clone()
            .unwrap_or_else(|| config.server.region.clone()),
        region: config.server.region.clone(),
        config_version: plane.publisher.reloads().0 + 1,
        snapshot_version: snap.version,
        ready: plane.monitor.ready(),
        zone: origin.to_string(),
        regions,
        records,
        events: plane.monitor.events(events),
    }
}
