//! The fleet's state on this instance: it builds what is pushed to peers,
//! takes what they push (observations to the health monitor, commands to
//! the command book), applies fleet-wide operator commands, tracks how each
//! peer link is doing, and says who acknowledged a command.
//!
//! It implements [`Hub`] for the transport; every call returns at once.
//! Health verdicts stay with the monitor (`health::vantage` counts the
//! vantage points); this keeper only carries news to and from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use tokio::sync::Notify;

use super::clock::Clock;
use super::commands::CommandBook;
use super::message::{Ack, Action, Command, PeerMessage, Stamp};
use super::view::{FleetView, FleetViews, PeerState, PeerView};
use super::{Hub, Pushed, Rejection};
use crate::config::Fleet;
use crate::control::Publisher;
use crate::health::monitor::PeerHeard;
use crate::health::{Event, Forced, Monitor, RecordError};

/// How long the admin API waits for peers to acknowledge a command.
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(2);

/// A command as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spread {
    /// Instances that hold the command (this one first).
    pub(crate) acknowledged_by: Vec<String>,
    /// Peers that had not acknowledged it within [`ACK_WAIT`].
    pub(crate) pending: Vec<String>,
}

/// How pushes to one configured peer went.
#[derive(Debug, Clone, Default)]
struct Link {
    /// The peer's name, from its acknowledgements.
    instance: Option<String>,
    last: Option<Pushed>,
    /// Commands the peer held at its last acknowledgement.
    acked: Vec<Command>,
}

struct Inner {
    book: CommandBook,
    links: BTreeMap<Url, Link>,
}

pub(crate) struct Keeper {
    instance: String,
    region: String,
    state_dir: PathBuf,
    peers: Vec<Url>,
    quorum: String,
    incarnation: u64,
    seq: AtomicU64,
    clock: Clock,
    monitor: Arc<Monitor>,
    publisher: Arc<Publisher>,
    changed: Arc<Notify>,
    /// Signalled on every acknowledgement, for waiting commands.
    acked: Notify,
    inner: Mutex<Inner>,
}

impl Keeper {
    /// The fleet state for `fleet`, with the commands saved in `state_dir`
    /// applied to `monitor` (they are in its saved states already; this
    /// makes the two agree if either file was lost).
    pub(crate) fn start(
        fleet: &Fleet,
        region: &str,
        state_dir: PathBuf,
        monitor: Arc<Monitor>,
        publisher: Arc<Publisher>,
    ) -> Arc<Keeper> {
        let book = CommandBook::load(&state_dir);
        let clock = Clock::default();
        for c in book.all() {
            clock.witness(c.stamp.time);
        }
        let keeper = Arc::new(Keeper {
            instance: fleet.instance.clone(),
            region: region.to_owned(),
            state_dir,
            peers: fleet.peers.clone(),
            quorum: fleet.down_quorum.to_string(),
            incarnation: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            seq: AtomicU64::new(0),
            clock,
            changed: monitor.changed(),
            monitor,
            publisher,
            acked: Notify::new(),
            inner: Mutex::new(Inner {
                book: book.clone(),
                links: fleet
                    .peers
                    .iter()
                    .map(|u| (u.clone(), Link::default()))
                    .collect(),
            }),
        });
        for c in book.all() {
            keeper.apply(&c);
        }
        keeper
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The peers to push to.
    pub(crate) fn peer_urls(&self) -> Vec<Url> {
        self.peers.clone()
    }

    /// An operator's command through this instance's admin API: applied
    /// here at once, then spread. A readmit of a region that is not
    /// waiting is refused here, as on a single instance.
    pub(crate) fn command(
        &self,
        region: &str,
        action: Action,
    ) -> Result<(Command, Option<Event>), RecordError> {
        let event = match action {
            Action::Readmit => self.monitor.readmit(region)?,
            forced => self.monitor.force(region, forced_of(forced))?,
        };
        let command = Command {
            region: region.to_owned(),
            action,
            stamp: Stamp {
                time: self.clock.now(),
                instance: self.instance.clone(),
            },
        };
        let mut inner = self.lock();
        inner.book.merge(&command);
        self.save(&inner.book);
        drop(inner);
        self.changed.notify_waiters();
        Ok((command, event))
    }

    /// Waits until every configured peer holds `command` (or a later one in
    /// its slot), or [`ACK_WAIT`] passed.
    pub(crate) async fn spread(&self, command: &Command) -> Spread {
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            // Register interest before looking, so an ack landing between
            // the look and the wait is not missed.
            let notified = self.acked.notified();
            let spread = self.spread_now(command);
            if spread.pending.is_empty() {
                return spread;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.spread_now(command);
            }
        }
    }

    fn spread_now(&self, command: &Command) -> Spread {
        let inner = self.lock();
        let mut spread = Spread {
            acknowledged_by: vec![self.instance.clone()],
            pending: Vec::new(),
        };
        for (url, link) in &inner.links {
            let name = link
                .instance
                .clone()
                .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
            if CommandBook::covers(&link.acked, command) {
                spread.acknowledged_by.push(name);
            } else {
                spread.pending.push(name);
            }
        }
        spread
    }

    /// Applies a winning command to the health monitor. Commands from
    /// peers that do not fit here (an unknown region, a readmit of a
    /// region not waiting) change nothing and are not errors.
    fn apply(&self, command: &Command) {
        let result = match command.action {
            Action::Readmit => self.monitor.readmit(&command.region).map(drop),
            forced => self
                .monitor
                .force(&command.region, forced_of(forced))
                .map(drop),
        };
        match result {
            Ok(()) => tracing::info!(
                region = %command.region,
                action = ?command.action,
                by = %command.stamp.instance,
                "fleet: operator command applied"
            ),
            Err(e) => {
                tracing::debug!(region = %command.region, error = %e, "fleet: command does not apply here")
            }
        }
    }

    fn save(&self, book: &CommandBook) {
        if let Err(e) = book.save(&self.state_dir) {
            tracing::error!(error = %e, "cannot persist fleet commands; they stay in memory");
        }
    }

    /// Merges `commands` from a peer; applies and saves those that win.
    fn take_commands(&self, commands: &[Command]) {
        let mut winners = Vec::new();
        {
            let mut inner = self.lock();
            for c in commands {
                self.clock.witness(c.stamp.time);
                if inner.book.merge(c) {
                    winners.push(c.clone());
                }
            }
            if !winners.is_empty() {
                self.save(&inner.book);
            }
        }
        for c in &winners {
            self.apply(c);
        }
        if !winners.is_empty() {
            // Spread what we learnt: peers that cannot reach its author
            // get it from us.
            self.changed.notify_waiters();
        }
    }

    fn routing_version(&self) -> String {
        self.publisher.snapshot().routing_version.clone()
    }
}

fn forced_of(action: Action) -> Option<Forced> {
    match action {
        Action::Down => Some(Forced::Down),
        Action::Up => Some(Forced::Up),
        Action::Auto | Action::Readmit => None,
    }
}

impl Hub for Keeper {
    fn changed(&self) -> &Notify {
        &self.changed
    }

    fn outgoing(&self) -> PeerMessage {
        PeerMessage {
            instance: self.instance.clone(),
            region: self.region.clone(),
            incarnation: self.incarnation,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            routing_version: self.routing_version(),
            observations: self.monitor.own_observations(),
            commands: self.lock().book.all(),
        }
    }

    fn receive(&self, message: PeerMessage) -> Result<Ack, Rejection> {
        self.monitor.hear(&message)?;
        self.take_commands(&message.commands);
        let known = self
            .lock()
            .links
            .values()
            .any(|l| l.instance.as_deref() == Some(message.instance.as_str()));
        if !known {
            // A peer we have not reached yet is alive: push to it now
            // rather than after its retry wait, so it gets our state and
            // we learn which URL it is.
            self.changed.notify_waiters();
        }
        Ok(Ack {
            instance: self.instance.clone(),
            routing_version: self.routing_version(),
            commands: self.lock().book.all(),
        })
    }

    fn pushed(&self, peer: &Url, outcome: Pushed) {
        let acked = match &outcome {
            Pushed::Acknowledged(ack) => Some(ack.clone()),
            _ => None,
        };
        {
            let mut inner = self.lock();
            let link = inner.links.entry(peer.clone()).or_default();
            if let Some(ack) = &acked {
                link.instance = Some(ack.instance.clone());
                link.acked = ack.commands.clone();
            }
            link.last = Some(outcome);
        }
        if let Some(ack) = acked {
            // The answer carries the peer's commands: a command made there
            // while we could not hear it arrives this way too.
            self.take_commands(&ack.commands);
            self.acked.notify_waiters();
        }
    }
}

impl FleetViews for Keeper {
    fn view(&self) -> FleetView {
        let routing_version = self.routing_version();
        let heard = self.monitor.peers_heard();
        let inner = self.lock();
        let mut peers: Vec<PeerView> = Vec::new();
        // Which heard peer each link is: known from its acknowledgements;
        // before the first one, a single link not yet answered and a single
        // peer heard but not matched can only be each other.
        let mut names: Vec<Option<String>> =
            inner.links.values().map(|l| l.instance.clone()).collect();
        let unmatched: Vec<&PeerHeard> = heard
            .iter()
            .filter(|h| !names.iter().flatten().any(|n| *n == h.instance))
            .collect();
        let unnamed: Vec<usize> = (0..names.len()).filter(|&i| names[i].is_none()).collect();
        if let ([only], [peer]) = (unnamed.as_slice(), unmatched.as_slice()) {
            names[*only] = Some(peer.instance.clone());
        }
        for ((url, link), name) in inner.links.iter().zip(names.iter().cloned()) {
            let seen = name
                .as_ref()
                .and_then(|n| heard.iter().find(|h| &h.instance == n));
            let state = match (seen, &link.last) {
                (Some(h), _) if h.fresh => PeerState::Up,
                (Some(_), _) => PeerState::Stale,
                (None, Some(Pushed::Refused(_) | Pushed::Rejected(_))) => PeerState::Refused,
                (None, _) => PeerState::Unreachable,
            };
            peers.push(PeerView {
                instance: name.unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned()),
                url: url.to_string(),
                state,
                last_seen_seconds: seen.map(|h| h.seconds_ago),
                routing_version: seen.map(|h| h.routing_version.clone()),
                agrees: seen.is_some_and(|h| h.fresh && h.routing_version == routing_version),
            });
        }
        // Peers that push to us but are not in our list still count.
        for h in heard
            .iter()
            .filter(|h| !names.iter().flatten().any(|n| *n == h.instance))
        {
            peers.push(PeerView {
                instance: h.instance.clone(),
                url: String::new(),
                state: if h.fresh {
                    PeerState::Up
                } else {
                    PeerState::Stale
                },
                last_seen_seconds: Some(h.seconds_ago),
                routing_version: Some(h.routing_version.clone()),
                agrees: h.fresh && h.routing_version == routing_version,
            });
        }
        drop(inner);
        FleetView {
            instance: self.instance.clone(),
            down_quorum: self.quorum.clone(),
            routing_version,
            isolated: self.monitor.isolated(),
            peers,
            regions: self.monitor.observers(),
        }
    }
}

/// Decides again every [`crate::health::monitor::REEVALUATE_EVERY`], so a
/// peer going stale counts within that of its `peer_timeout`.
pub(crate) async fn tick(monitor: Arc<Monitor>) {
    let mut every = tokio::time::interval(crate::health::monitor::REEVALUATE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        monitor.reevaluate();
    }
}
