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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::RngExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::notify::{Format, Notice, Notifier, Webhook};
use super::probe::{Outcome, Prober};
use super::record::{HealthRecord, Observation, ProbeDurations, RecordError};
use super::state::{Forced, RegionHealth, Rules, State, Transition};
use super::store::{Event, Remembered, Store};
use super::vantage::Vantage;
use crate::config::ProbeTarget;
use crate::config::{Config, NotifyFormat};
use crate::fleet::Rejection;
use crate::fleet::message::{Observed, PeerMessage};
use crate::fleet::view::RegionObservers;

/// Where verdicts go: the routing table's owner.
pub trait Publish: Send + Sync + 'static {
    /// Makes `healthy` (by region name) the routing health and returns the
    /// failover name's answer before and after.
    fn publish(&self, healthy: &[(String, bool)]) -> (Vec<String>, Vec<String>);
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

/// What the probe tasks of one configuration generation work from.
struct Probes {
    /// Per region, in the record's order: where to probe and what to expect.
    jobs: Vec<(ProbeTarget, Option<String>)>,
    tasks: Vec<JoinHandle<()>>,
    /// Bumped on reconfiguration; outcomes of older tasks are ignored.
    generation: u64,
}

struct Inner {
    record: HealthRecord,
    probes: Probes,
    notifier: Option<Notifier>,
}

/// Probe scheduling around a [`HealthRecord`]: one task per region feeds
/// it, and every transition it reports is published, recorded, persisted
/// and announced.
pub struct Monitor {
    inner: Mutex<Inner>,
    publisher: Arc<dyn Publish>,
    store: Store,
    /// This instance's name: `fleet.instance`, else `server.nsid`, else
    /// `server.region`.
    instance: String,
    region: String,
    ready: AtomicBool,
    /// Whether no peer was fresh at the last decision (logged on change).
    isolated: AtomicBool,
    /// Signalled when this instance's own observation of a region flips,
    /// so the fleet pushes it at once.
    changed: Arc<Notify>,
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
        let names = region_names(config);
        let record = HealthRecord::new(
            rules(config),
            &names,
            |name| {
                remembered
                    .get(name)
                    .map_or(RegionHealth::new(State::Up, None), |r| {
                        RegionHealth::new(r.state, r.forced)
                    })
            },
            store.load_events(),
        );
        let mut record = record;
        record.set_vantage(vantage_of(config));
        let monitor = Arc::new(Monitor {
            inner: Mutex::new(Inner {
                record,
                probes: Probes {
                    jobs: Vec::new(),
                    tasks: Vec::new(),
                    generation: 0,
                },
                notifier: None,
            }),
            publisher,
            store,
            instance: instance_name(config),
            region: config.server.region.clone(),
            ready: AtomicBool::new(false),
            // A fleet starts alone, and says so once it hears a peer.
            isolated: AtomicBool::new(config.fleet.is_some()),
            changed: Arc::new(Notify::new()),
        });
        monitor.restart_probes(config);
        monitor
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a reloaded config: regions keep their state by name, probes
    /// restart with the new targets and timings. Readiness is kept: it
    /// says the first round after start has run, and regions a reload adds
    /// are probed at once.
    pub fn reconfigure(self: &Arc<Self>, config: &Config) {
        {
            let mut inner = self.lock();
            inner
                .record
                .reconfigure(rules(config), &region_names(config));
            inner.record.set_vantage(vantage_of(config));
        }
        self.restart_probes(config);
    }

    /// Publishes the record's routing health, then (re)starts one probe
    /// task per region of `config`, in the record's order.
    fn restart_probes(self: &Arc<Self>, config: &Config) {
        let prober = match Prober::new(config.health.ca_file.as_deref(), config.health.timeout) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up health probes; every region counts as failing");
                None
            }
        };
        let mut inner = self.lock();
        for task in inner.probes.tasks.drain(..) {
            task.abort();
        }
        inner.probes.generation += 1;
        inner.probes.jobs = config
            .regions
            .iter()
            .map(|r| (r.probe.clone(), r.expect_body.clone()))
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
        self.publisher.publish(&inner.record.routing());
        let generation = inner.probes.generation;
        let timing = Timing {
            interval: config.health.interval,
            fast: config.health.fast_interval,
        };
        inner.probes.tasks = (0..inner.probes.jobs.len())
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
    }

    /// Stops every probe task.
    pub fn stop(&self) {
        for task in self.lock().probes.tasks.drain(..) {
            task.abort();
        }
    }

    /// Records one probe outcome; returns whether the next probe should
    /// come fast (the region is up but failing).
    fn record(&self, generation: u64, index: usize, outcome: &Outcome) -> bool {
        let mut after = After::default();
        let fast = {
            let mut inner = self.lock();
            if inner.probes.generation != generation {
                return false;
            }
            let at = SystemTime::now();
            let seen = Observation {
                healthy: outcome.healthy,
                reason: outcome.reason.clone(),
                latency: outcome.latency,
                at,
            };
            let looked = inner.record.observe(index, &seen, Instant::now());
            let fast = inner.record.confirming_failure(index);
            if looked.flipped {
                self.changed.notify_waiters();
            }
            if let Some(t) = looked.transition {
                let name = inner.record.regions()[index].name.clone();
                self.apply(&mut inner, &name, t, at, &mut after);
            }
            if !self.ready.load(Ordering::Relaxed) && inner.record.all_checked() {
                self.ready.store(true, Ordering::Relaxed);
                tracing::info!("first round of health checks complete");
            }
            fast
        };
        self.finish(after);
        fast
    }

    /// Publishes the health after a transition of `name` and queues its event.
    fn apply(
        &self,
        inner: &mut Inner,
        name: &str,
        t: Transition,
        at: SystemTime,
        after: &mut After,
    ) {
        let (before, now) = self.publisher.publish(&inner.record.routing());
        tracing::warn!(region = name, from = t.from, to = t.to, reason = %t.reason, ?before, after = ?now, "region health changed");
        let instant = Instant::now();
        let observers = match inner.record.vantage() {
            None => BTreeMap::new(),
            Some(_) => inner
                .record
                .observers(&self.instance, &self.region, instant)
                .into_iter()
                .find(|r| r.region == name)
                .map(|r| {
                    r.observers
                        .into_iter()
                        .filter(|o| o.fresh)
                        .map(|o| (o.instance, o.state.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let event = Event {
            time: rfc3339(at),
            region: name.to_owned(),
            from: t.from.to_owned(),
            to: t.to.to_owned(),
            reason: t.reason,
            answer_before: before,
            answer_after: now,
            observers,
        };
        inner.record.record_event(event.clone());
        // A fleet pages once: the fresh instance whose name sorts first
        // sends the notification.
        let notifies = inner.record.vantage().is_none_or(|v| v.notifies(instant));
        if let Some(n) = inner.notifier.as_ref().filter(|_| notifies) {
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
        after.save = Some(inner.record.remembered());
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
    pub fn force(&self, name: &str, forced: Option<Forced>) -> Result<Option<Event>, RecordError> {
        self.command(name, |record| record.force(name, forced))
    }

    /// Re-admits a region waiting after a manual recovery.
    pub fn readmit(&self, name: &str) -> Result<Option<Event>, RecordError> {
        self.command(name, |record| record.readmit(name).map(Some))
    }

    fn command(
        &self,
        name: &str,
        change: impl FnOnce(&mut HealthRecord) -> Result<Option<Transition>, RecordError>,
    ) -> Result<Option<Event>, RecordError> {
        let mut after = After::default();
        {
            let mut inner = self.lock();
            match change(&mut inner.record)? {
                Some(t) => self.apply(&mut inner, name, t, SystemTime::now(), &mut after),
                None => return Ok(None),
            }
        }
        let event = after.events.last().cloned();
        self.finish(after);
        Ok(event)
    }

    /// Whether every region has been probed once since start.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn regions(&self) -> Vec<RegionView> {
        let inner = self.lock();
        inner
            .record
            .regions()
            .iter()
            .zip(&inner.probes.jobs)
            .map(|(r, (target, _))| RegionView {
                name: r.name.clone(),
                health: r.health.clone(),
                target: target.describe(),
                checks_ok: r.tally.checks_ok,
                checks_failed: r.tally.checks_failed,
                events: r.tally.events,
                durations: r.tally.durations.clone(),
            })
            .collect()
    }

    /// Up to `limit` events, newest first.
    pub fn events(&self, limit: usize) -> Vec<Event> {
        self.lock().record.events(limit)
    }

    /// This instance's name in events, notifications and the fleet.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Signalled when this instance's own observation of a region flips.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Takes a peer's message (already authenticated) and applies the
    /// verdicts it changes.
    pub fn hear(&self, message: &PeerMessage) -> Result<(), Rejection> {
        self.decide_again(|record, now| record.hear(message, now))
    }

    /// Decides every region again: peers go stale with time. The fleet
    /// calls it every [`REEVALUATE_EVERY`].
    pub fn reevaluate(&self) {
        // Without a fleet there is nothing to hear and nothing to go stale.
        let _ = self.decide_again(|record, now| Ok(record.reevaluate(now)));
    }

    fn decide_again(
        &self,
        decide: impl FnOnce(&mut HealthRecord, Instant) -> Result<Vec<(String, Transition)>, Rejection>,
    ) -> Result<(), Rejection> {
        let mut after = After::default();
        {
            let mut inner = self.lock();
            if inner.record.vantage().is_none() {
                return Err(Rejection::Invalid("this instance is not in a fleet".into()));
            }
            let now = Instant::now();
            let transitions = decide(&mut inner.record, now)?;
            let isolated = inner.record.vantage().is_some_and(|v| v.isolated(now));
            if self.isolated.swap(isolated, Ordering::Relaxed) != isolated {
                if isolated {
                    tracing::warn!("fleet: no peer heard within peer_timeout; deciding alone");
                } else {
                    tracing::info!("fleet: peers heard again; deciding with the fleet");
                }
            }
            let at = SystemTime::now();
            for (name, t) in transitions {
                self.apply(&mut inner, &name, t, at, &mut after);
            }
        }
        self.finish(after);
        Ok(())
    }

    /// Whether no peer is fresh (always false without a fleet).
    pub fn isolated(&self) -> bool {
        self.lock()
            .record
            .vantage()
            .is_some_and(|v| v.isolated(Instant::now()))
    }

    /// This instance's own observation of every region, for its peers.
    pub fn own_observations(&self) -> Vec<Observed> {
        self.lock().record.own_observations()
    }

    /// Every vantage point's observation of every region, for views.
    pub fn observers(&self) -> Vec<RegionObservers> {
        self.lock()
            .record
            .observers(&self.instance, &self.region, Instant::now())
    }

    /// The peers heard so far with their freshness, for views: (name,
    /// region, seconds since heard, fresh, routing version).
    pub fn peers_heard(&self) -> Vec<PeerHeard> {
        let inner = self.lock();
        let now = Instant::now();
        let Some(v) = inner.record.vantage() else {
            return Vec::new();
        };
        v.peers()
            .iter()
            .map(|(name, p)| PeerHeard {
                instance: name.clone(),
                seconds_ago: now.saturating_duration_since(p.heard).as_secs_f64(),
                fresh: v.is_fresh(p, now),
                routing_version: p.routing_version.clone(),
            })
            .collect()
    }
}

/// A peer as this instance last heard it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerHeard {
    pub instance: String,
    pub seconds_ago: f64,
    pub fresh: bool,
    pub routing_version: String,
}

/// How often the fleet decides again without news, so a peer going stale
/// counts within this of its `peer_timeout`.
pub(crate) const REEVALUATE_EVERY: Duration = Duration::from_millis(250);

/// This instance's name: `fleet.instance`, else `server.nsid`, else
/// `server.region`.
pub(crate) fn instance_name(config: &Config) -> String {
    match (&config.fleet, &config.server.nsid) {
        (Some(f), _) => f.instance.clone(),
        (None, Some(nsid)) => nsid.clone(),
        (None, None) => config.server.region.clone(),
    }
}

fn vantage_of(config: &Config) -> Option<Vantage> {
    config.fleet.as_ref().map(|f| {
        Vantage::new(
            &f.instance,
            &config.server.region,
            f.down_quorum,
            f.peer_timeout,
        )
    })
}

fn region_names(config: &Config) -> Vec<&str> {
    config.regions.iter().map(|r| r.name.as_str()).collect()
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
            if inner.probes.generation != generation {
                return;
            }
            inner.probes.jobs.get(index).cloned()
        };
        let Some((target, expect_body)) = job else {
            return;
        };
        let outcome = match &prober {
            Some(p) => p.probe(&target, expect_body.as_deref()).await,
            None => failed("health probes are not set up (see the log)"),
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

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
