//! The health record: what is known about every region, and nothing that
//! runs. Observations (from this instance's probes today, from peers
//! tomorrow) and operator commands come in with their time; transitions,
//! routing health and the failover history come out. No clock, no task, no
//! I/O: the [`super::Monitor`] schedules probes, feeds this record and acts
//! on what it returns (publishing, persisting, notifying).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::state::{Forced, RegionHealth, Rules, State, Transition};
use super::store::{Event, HISTORY, Remembered};
use super::vantage::Vantage;
use crate::fleet::Rejection;
use crate::fleet::message::{Observed, PeerMessage};
use crate::fleet::view::{ObserverView, RegionObservers};

/// Upper bounds, in seconds, of the probe-duration histogram buckets: the
/// Prometheus client defaults, from a loopback probe up to a 10 s timeout.
pub(crate) const PROBE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a region's probes took, bucketed as they are recorded so the
/// memory is fixed and a scrape only copies a few numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeDurations {
    /// Probes per bucket of [`PROBE_BUCKETS`] (not cumulative); the extra
    /// last one counts probes slower than every bound.
    pub buckets: [u64; PROBE_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl ProbeDurations {
    fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let slot = PROBE_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(PROBE_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// One look at a region: a probe's outcome, wherever it was taken.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    pub healthy: bool,
    /// Why it failed (`None` when healthy).
    pub reason: Option<String>,
    pub latency: Duration,
    pub at: SystemTime,
}

/// What a region has been through; kept by name across reloads.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub checks_ok: u64,
    pub checks_failed: u64,
    pub events: u64,
    pub durations: ProbeDurations,
}

/// One region's entry.
#[derive(Debug, Clone)]
pub(crate) struct RegionRecord {
    pub name: String,
    pub health: RegionHealth,
    pub tally: Tally,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    #[error("region {region:?} {why}")]
    Conflict { region: String, why: &'static str },
}

/// Every region's health, tallies and the recent failover history, and in
/// a fleet what the other vantage points observe.
#[derive(Debug)]
pub(crate) struct HealthRecord {
    rules: Rules,
    regions: Vec<RegionRecord>,
    events: VecDeque<Event>,
    /// `None` for a single instance: its own observation is the verdict.
    vantage: Option<Vantage>,
}

/// What one observation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Looked {
    /// This instance's own observation of the region flipped.
    pub(crate) flipped: bool,
    /// The verdict changed.
    pub(crate) transition: Option<Transition>,
}

impl HealthRecord {
    /// A record of `names`, each starting where `start` says (its
    /// remembered state, or up), with `events` as the history so far.
    pub(crate) fn new(
        rules: Rules,
        names: &[&str],
        mut start: impl FnMut(&str) -> RegionHealth,
        events: VecDeque<Event>,
    ) -> HealthRecord {
        HealthRecord {
            rules,
            regions: names
                .iter()
                .map(|&name| RegionRecord {
                    name: name.to_owned(),
                    health: start(name),
                    tally: Tally::default(),
                })
                .collect(),
            events,
            vantage: None,
        }
    }

    /// Makes the verdict the fleet's: this instance's observations counted
    /// with the peers' by `vantage`'s quorum. `None` makes it decide alone.
    /// Peers already heard are kept when the fleet stays the same.
    pub(crate) fn set_vantage(&mut self, vantage: Option<Vantage>) {
        self.vantage = match (self.vantage.take(), vantage) {
            (Some(old), Some(new)) if old.own == new.own => Some(old.retuned(new)),
            (_, new) => new,
        };
    }

    pub(crate) fn vantage(&self) -> Option<&Vantage> {
        self.vantage.as_ref()
    }

    /// Takes a reloaded config: regions keep their health and tallies by
    /// name, new ones start up, removed ones are forgotten.
    pub(crate) fn reconfigure(&mut self, rules: Rules, names: &[&str]) {
        let mut old: BTreeMap<String, RegionRecord> = self
            .regions
            .drain(..)
            .map(|r| (r.name.clone(), r))
            .collect();
        self.rules = rules;
        self.regions = names
            .iter()
            .map(|&name| {
                old.remove(name).unwrap_or_else(|| RegionRecord {
                    name: name.to_owned(),
                    health: RegionHealth::new(State::Up, None),
                    tally: Tally::default(),
                })
            })
            .collect();
    }

    pub(crate) fn regions(&self) -> &[RegionRecord] {
        &self.regions
    }

    /// Takes one observation of the region at `index` by this instance.
    pub(crate) fn observe(&mut self, index: usize, seen: &Observation, now: Instant) -> Looked {
        let rules = self.rules;
        let Some(region) = self.regions.get_mut(index) else {
            return Looked::default();
        };
        if seen.healthy {
            region.tally.checks_ok += 1;
        } else {
            region.tally.checks_failed += 1;
        }
        region.tally.durations.observe(seen.latency);
        let Some(why) = region.health.look(
            &rules,
            seen.healthy,
            seen.reason.as_deref(),
            seen.latency,
            seen.at,
        ) else {
            return Looked::default();
        };
        let transition = match &self.vantage {
            None => {
                let down = !region.health.observed_up;
                region.health.decide(&rules, down, why)
            }
            Some(_) => self.decide(index, now),
        };
        Looked {
            flipped: true,
            transition,
        }
    }

    /// Takes a peer's message and decides every region again.
    pub(crate) fn hear(
        &mut self,
        message: &PeerMessage,
        now: Instant,
    ) -> Result<Vec<(String, Transition)>, Rejection> {
        let Some(vantage) = self.vantage.as_mut() else {
            return Err(Rejection::Invalid("this instance is not in a fleet".into()));
        };
        vantage.hear(message, now)?;
        Ok(self.reevaluate(now))
    }

    /// Decides every region again: peers may have gone stale since.
    pub(crate) fn reevaluate(&mut self, now: Instant) -> Vec<(String, Transition)> {
        (0..self.regions.len())
            .filter_map(|i| {
                self.decide(i, now)
                    .map(|t| (self.regions[i].name.clone(), t))
            })
            .collect()
    }

    /// The fleet's verdict for the region at `index`, applied.
    fn decide(&mut self, index: usize, now: Instant) -> Option<Transition> {
        let vantage = self.vantage.as_ref()?;
        let region = self.regions.get_mut(index)?;
        let count = vantage.count(&region.name, region.health.observed_up, now);
        let down = count.reached(vantage.quorum);
        let why = if down {
            format!(
                "observed down by {} of {} vantage points ({}); down_quorum {}",
                count.down.len(),
                count.fresh,
                count.down.join(", "),
                vantage.quorum
            )
        } else {
            format!(
                "observed up by {} of {} vantage points; down_quorum {}",
                count.fresh - count.down.len(),
                count.fresh,
                vantage.quorum
            )
        };
        region.health.decide(&self.rules, down, why)
    }

    /// This instance's own observation of every region, as peers get it.
    pub(crate) fn own_observations(&self) -> Vec<Observed> {
        self.regions
            .iter()
            .map(|r| Observed {
                region: r.name.clone(),
                up: r.health.observed_up,
                latency_seconds: r.health.latency.map(|l| l.as_secs_f64()),
                last_check: r.health.last_check.map(super::monitor::rfc3339),
            })
            .collect()
    }

    /// Every vantage point's observation of every region (this instance
    /// first, then the peers by name), for views.
    pub(crate) fn observers(
        &self,
        own: &str,
        own_region: &str,
        now: Instant,
    ) -> Vec<RegionObservers> {
        self.regions
            .iter()
            .map(|r| {
                let mine = ObserverView {
                    instance: own.to_owned(),
                    region: own_region.to_owned(),
                    state: if r.health.observed_up { "up" } else { "down" },
                    fresh: true,
                    latency_seconds: r.health.latency.map(|l| l.as_secs_f64()),
                    last_check: r.health.last_check.map(super::monitor::rfc3339),
                };
                let peers = self.vantage.iter().flat_map(|v| {
                    v.peers().iter().filter_map(|(name, peer)| {
                        let seen = peer.observations.get(&r.name)?;
                        Some(ObserverView {
                            instance: name.clone(),
                            region: peer.region.clone(),
                            state: if seen.up { "up" } else { "down" },
                            fresh: v.is_fresh(peer, now),
                            latency_seconds: seen.latency_seconds,
                            last_check: seen.last_check.clone(),
                        })
                    })
                });
                RegionObservers {
                    region: r.name.clone(),
                    observers: std::iter::once(mine).chain(peers).collect(),
                }
            })
            .collect()
    }

    /// Whether the region at `index` is up but failing, so the next look
    /// should come sooner.
    pub(crate) fn confirming_failure(&self, index: usize) -> bool {
        self.regions
            .get(index)
            .is_some_and(|r| r.health.observed_up && r.health.consecutive_failures > 0)
    }

    /// Applies an operator's forced state (`None` hands back to probes).
    pub(crate) fn force(
        &mut self,
        name: &str,
        forced: Option<Forced>,
    ) -> Result<Option<Transition>, RecordError> {
        Ok(self.region_mut(name)?.health.force(forced))
    }

    /// Re-admits a region waiting after a manual recovery.
    pub(crate) fn readmit(&mut self, name: &str) -> Result<Transition, RecordError> {
        self.region_mut(name)?
            .health
            .readmit()
            .map_err(|why| RecordError::Conflict {
                region: name.to_owned(),
                why,
            })
    }

    fn region_mut(&mut self, name: &str) -> Result<&mut RegionRecord, RecordError> {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| RecordError::UnknownRegion(name.to_owned()))
    }

    /// Routing health by region name: what the data plane should see.
    pub(crate) fn routing(&self) -> Vec<(String, bool)> {
        self.regions
            .iter()
            .map(|r| (r.name.clone(), r.health.healthy()))
            .collect()
    }

    /// Whether every region has been observed at least once.
    pub(crate) fn all_checked(&self) -> bool {
        self.regions.iter().all(|r| r.health.checked)
    }

    /// What survives a restart: each region's state and forced state.
    pub(crate) fn remembered(&self) -> BTreeMap<String, Remembered> {
        self.regions
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    Remembered {
                        state: r.health.state,
                        forced: r.health.forced,
                    },
                )
            })
            .collect()
    }

    /// Adds `event` to the history (the oldest falls off past
    /// [`HISTORY`]) and counts it for its region.
    pub(crate) fn record_event(&mut self, event: Event) {
        if let Some(r) = self.regions.iter_mut().find(|r| r.name == event.region) {
            r.tally.events += 1;
        }
        if self.events.len() == HISTORY {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Up to `limit` events, newest first.
    pub(crate) fn events(&self, limit: usize) -> Vec<Event> {
        self.events.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests;
