//! The running health checker: one probe task per region on the control
//! plane's runtime, feeding the state machine; every change of a region's
//! effective health is published at once (through [`Publish`]), recorded,
//! persisted and announced.
//!
//! Probes of one region never wait for another's: each region has its own
//! task, and a probe costs at most `timeout`. The first round starts
//! immediately; later probes come every `interval` (jittered so regions
//! drift apart), or every `fast_interval` while a region that was up is
//! failing, so an outage is confirmed in about
//! `interval + (failure_threshold - 1) x fast_interval`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::RngExt;
use tokio::task::JoinHandle;

use super::notify::{Format, Notice, Notifier, Webhook};
use super::probe::{Outcome, Prober, Target};
use super::state::{Forced, RegionHealth, Rules, State, Transition};
use super::store::{Event, HISTORY, Remembered, Store};
use crate::config::{Config, NotifyFormat};

/// Where verdicts go: the routing table's owner.
pub trait Publish: Send + Sync + 'static {
    /// Makes `healthy` (by region name) the routing health and returns the
    /// failover name's answer before and after.
    fn publish(&self, healthy: &[(String, bool)]) -> (Vec<String>, Vec<String>);
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    #[error("region {region:?} {why}")]
    Conflict { region: String, why: &'static str },
}

/// A region as the status views show it.
#[derive(Debug, Clone)]
pub struct RegionView {
    pub name: String,
    pub health: RegionHealth,
    pub target: String,
    pub checks_ok: u64,
    pub checks_failed: u64,
    pub events: u64,
    pub durations: ProbeDurations,
}

/// Upper bounds, in seconds, of the probe-duration histogram buckets: the
/// Prometheus client defaults, from a loopback probe up to a 10 s timeout.
pub const PROBE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a region's probes took, bucketed as they are recorded so the
/// memory is fixed and a scrape only copies a few numbers.
#[derive(Debug, Clone, Default)]
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

struct Region {
    name: String,
    target: Result<Target, String>,
    expect_body: Option<String>,
    health: RegionHealth,
    tally: Tally,
}

/// What a region has been through; kept by name across reloads.
#[derive(Debug, Clone, Default)]
struct Tally {
    checks_ok: u64,
    checks_failed: u64,
    events: u64,
    durations: ProbeDurations,
}

struct Inner {
    rules: Rules,
    regions: Vec<Region>,
    events: VecDeque<Event>,
    tasks: Vec<JoinHandle<()>>,
    /// Bumped on reconfiguration; verdicts of older tasks are ignored.
    generation: u64,
    notifier: Option<Notifier>,
}

pub struct Monitor {
    inner: Mutex<Inner>,
    publisher: Arc<dyn Publish>,
    store: Store,
    instance: String,
    ready: AtomicBool,
}

/// Work to do once the lock is released: disk and network I/O.
#[derive(Default)]
struct After {
    events: Vec<Event>,
    save: Option<BTreeMap<String, Remembered>>,
}

impl Monitor {
    /// Restores remembered states, publishes them before any probe runs (so
    /// a restart during an outage keeps clients away from a dead region),
    /// and starts probing. Must run inside a tokio runtime.
    pub fn start(config: &Config, publisher: Arc<dyn Publish>) -> Arc<Monitor> {
        let store = Store::new(&config.server.state_dir);
        let remembered = store.load_regions();
        let events = store.load_events();
        let monitor = Arc::new(Monitor {
            inner: Mutex::new(Inner {
                rules: rules(config),
                regions: Vec::new(),
                events,
                tasks: Vec::new(),
                generation: 0,
                notifier: None,
            }),
            publisher,
            store,
            instance: config
                .server
                .nsid
                .clone()
                .unwrap_or_else(|| config.server.region.clone()),
            ready: AtomicBool::new(false),
        });
        monitor.reconfigure_with(config, |name| {
            let health = remembered
                .get(name)
                .map_or(RegionHealth::new(State::Up, None), |r| {
                    RegionHealth::new(r.state, r.forced)
                });
            (health, Tally::default())
        });
        monitor
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a reloaded config: regions keep their state by name, probes
    /// restart with the new targets and timings.
    pub fn reconfigure(self: &Arc<Self>, config: &Config) {
        let mut old: BTreeMap<String, (RegionHealth, Tally)> = self
            .lock()
            .regions
            .iter()
            .map(|r| (r.name.clone(), (r.health.clone(), r.tally.clone())))
            .collect();
        self.reconfigure_with(config, |name| {
            old.remove(name)
                .unwrap_or_else(|| (RegionHealth::new(State::Up, None), Tally::default()))
        });
    }

    fn reconfigure_with(
        self: &Arc<Self>,
        config: &Config,
        mut carried: impl FnMut(&str) -> (RegionHealth, Tally),
    ) {
        let prober = match Prober::new(config.health.ca_file.as_deref(), config.health.timeout) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up health probes; every region counts as failing");
                None
            }
        };
        let mut inner = self.lock();
        for task in inner.tasks.drain(..) {
            task.abort();
        }
        inner.generation += 1;
        inner.rules = rules(config);
        inner.regions = config
            .regions
            .iter()
            .map(|r| {
                let (health, tally) = carried(&r.name);
                Region {
                    name: r.name.clone(),
                    target: target_of(config, r),
                    expect_body: r.expect_body.clone(),
                    health,
                    tally,
                }
            })
            .collect();
        inner.notifier = Some(Notifier::start(
            config
                .notify
                .iter()
                .map(|n| Webhook {
                    url: n.url.clone(),
                    format: match n.format {
                        NotifyFormat::Json => Format::Json,
                        NotifyFormat::Alertmanager => Format::Alertmanager,
                    },
                    token: n.token.clone(),
                })
                .collect(),
        ));
        let healthy = effective(&inner.regions);
        self.publisher.publish(&healthy);
        let generation = inner.generation;
        let timing = Timing {
            interval: config.health.interval,
            fast: config.health.fast_interval,
        };
        let tasks: Vec<JoinHandle<()>> = (0..inner.regions.len())
            .map(|i| {
                tokio::spawn(probe_loop(
                    self.clone(),
                    prober.clone(),
                    generation,
                    i,
                    timing,
                ))
            })
            .collect();
        inner.tasks = tasks;
    }

    /// Stops every probe task.
    pub fn stop(&self) {
        for task in self.lock().tasks.drain(..) {
            task.abort();
        }
    }

    /// Records one probe outcome; returns whether the next probe should
    /// come fast (the region is up but failing).
    fn record(&self, generation: u64, index: usize, outcome: &Outcome) -> bool {
        let mut after = After::default();
        let fast = {
            let mut inner = self.lock();
            if inner.generation != generation {
                return false;
            }
            let rules = inner.rules;
            let Some(region) = inner.regions.get_mut(index) else {
                return false;
            };
            if outcome.healthy {
                region.tally.checks_ok += 1;
            } else {
                region.tally.checks_failed += 1;
            }
            region.tally.durations.observe(outcome.latency);
            let transition = region.health.observe(
                &rules,
                outcome.healthy,
                outcome.reason.as_deref(),
                outcome.latency,
                SystemTime::now(),
            );
            let fast = !outcome.healthy && region.health.state == State::Up;
            let name = region.name.clone();
            if let Some(t) = transition {
                self.apply(&mut inner, &name, t, &mut after);
            }
            if !self.ready.load(Ordering::Relaxed) && inner.regions.iter().all(|r| r.health.checked)
            {
                self.ready.store(true, Ordering::Relaxed);
                tracing::info!("first round of health checks complete");
            }
            fast
        };
        self.finish(after);
        fast
    }

    /// Publishes the health after a transition of `name` and queues its event.
    fn apply(&self, inner: &mut Inner, name: &str, t: Transition, after: &mut After) {
        let (before, now) = self.publisher.publish(&effective(&inner.regions));
        tracing::warn!(region = name, from = t.from, to = t.to, reason = %t.reason, ?before, after = ?now, "region health changed");
        let event = Event {
            time: rfc3339(SystemTime::now()),
            region: name.to_owned(),
            from: t.from.to_owned(),
            to: t.to.to_owned(),
            reason: t.reason,
            answer_before: before,
            answer_after: now,
        };
        if let Some(r) = inner.regions.iter_mut().find(|r| r.name == name) {
            r.tally.events += 1;
        }
        if inner.events.len() == HISTORY {
            inner.events.pop_front();
        }
        inner.events.push_back(event.clone());
        if let Some(n) = &inner.notifier {
            n.notify(Notice {
                time: event.time.clone(),
                region: event.region.clone(),
                from: event.from.clone(),
                to: event.to.clone(),
                reason: event.reason.clone(),
                answer_before: event.answer_before.clone(),
                answer_after: event.answer_after.clone(),
                instance: self.instance.clone(),
            });
        }
        after.events.push(event);
        after.save = Some(
            inner
                .regions
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
                .collect(),
        );
    }

    fn finish(&self, after: After) {
        for event in &after.events {
            if let Err(e) = self.store.append_event(event) {
                tracing::error!(error = %e, "cannot record failover event on disk; it stays in memory");
            }
        }
        if let Some(regions) = after.save
            && let Err(e) = self.store.save_regions(&regions)
        {
            tracing::error!(error = %e, "cannot persist region states");
        }
    }

    /// Forces a region up or down, or (`None`) hands it back to probes.
    pub fn force(&self, name: &str, forced: Option<Forced>) -> Result<Option<Event>, MonitorError> {
        self.command(name, |h| Ok(h.force(forced)))
    }

    /// Re-admits a region waiting after a manual recovery.
    pub fn readmit(&self, name: &str) -> Result<Option<Event>, MonitorError> {
        self.command(name, |h| {
            h.readmit().map(Some).map_err(|why| MonitorError::Conflict {
                region: String::new(),
                why,
            })
        })
    }

    fn command(
        &self,
        name: &str,
        change: impl FnOnce(&mut RegionHealth) -> Result<Option<Transition>, MonitorError>,
    ) -> Result<Option<Event>, MonitorError> {
        let mut after = After::default();
        {
            let mut inner = self.lock();
            let region = inner
                .regions
                .iter_mut()
                .find(|r| r.name == name)
                .ok_or_else(|| MonitorError::UnknownRegion(name.to_owned()))?;
            let transition = change(&mut region.health).map_err(|e| match e {
                MonitorError::Conflict { why, .. } => MonitorError::Conflict {
                    region: name.to_owned(),
                    why,
                },
                other => other,
            })?;
            match transition {
                Some(t) => self.apply(&mut inner, name, t, &mut after),
                None => return Ok(None),
            }
        }
        let event = after.events.last().cloned();
        self.finish(after);
        Ok(event)
    }

    /// Whether every region has been probed since start or reload.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn regions(&self) -> Vec<RegionView> {
        self.lock()
            .regions
            .iter()
            .map(|r| RegionView {
                name: r.name.clone(),
                health: r.health.clone(),
                target: match &r.target {
                    Ok(t) => t.describe(),
                    Err(e) => format!("invalid: {e}"),
                },
                checks_ok: r.tally.checks_ok,
                checks_failed: r.tally.checks_failed,
                events: r.tally.events,
                durations: r.tally.durations.clone(),
            })
            .collect()
    }

    /// Up to `limit` events, newest first.
    pub fn events(&self, limit: usize) -> Vec<Event> {
        self.lock()
            .events
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}

/// What a region's probes go to, as config validation resolved it.
pub fn target_of(_config: &Config, region: &crate::config::Region) -> Result<Target, String> {
    Ok(Target::from(&region.probe))
}

#[derive(Clone, Copy)]
struct Timing {
    interval: Duration,
    fast: Duration,
}

async fn probe_loop(
    monitor: Arc<Monitor>,
    prober: Option<Arc<Prober>>,
    generation: u64,
    index: usize,
    timing: Timing,
) {
    loop {
        let job = {
            let inner = monitor.lock();
            inner
                .regions
                .get(index)
                .map(|r| (r.target.clone(), r.expect_body.clone()))
        };
        let Some((target, expect_body)) = job else {
            return;
        };
        let outcome = match (&prober, &target) {
            (Some(p), Ok(t)) => p.probe(t, expect_body.as_deref()).await,
            (None, _) => failed("health probes are not set up (see the log)"),
            (_, Err(e)) => failed(e),
        };
        let fast = monitor.record(generation, index, &outcome);
        let delay = if fast {
            timing.fast
        } else {
            jitter(timing.interval)
        };
        tokio::time::sleep(delay).await;
    }
}

fn failed(reason: &str) -> Outcome {
    Outcome {
        healthy: false,
        latency: Duration::ZERO,
        status: None,
        reason: Some(reason.to_owned()),
    }
}

/// 90-100% of the interval, so regions probed together drift apart.
fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.0))
}

fn rules(config: &Config) -> Rules {
    Rules {
        failure_threshold: config.health.failure_threshold,
        recovery_threshold: config.health.recovery_threshold,
        recovery: config.health.recovery,
    }
}

fn effective(regions: &[Region]) -> Vec<(String, bool)> {
    regions
        .iter()
        .map(|r| (r.name.clone(), r.health.healthy()))
        .collect()
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
