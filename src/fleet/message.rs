//! What instances of a fleet tell each other, as it goes over the wire
//! (JSON over HTTPS with mutual TLS, `POST /fleet/v1/state`).
//!
//! Each instance pushes its whole state to every peer at once when it
//! changes and at least every second; the answer is the receiver's
//! acknowledgement. Messages are idempotent snapshots, so a lost one costs
//! nothing but a second, and a replayed or reordered one is refused by
//! its `(incarnation, seq)` without changing anything.

use serde::{Deserialize, Serialize};

/// The most a message or an acknowledgement may take on the wire.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The most entries a message may list (observations, commands).
pub(crate) const MAX_ENTRIES: usize = 1024;

/// One instance's state, pushed to every peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerMessage {
    /// The sender's `fleet.instance`; checked against its certificate.
    pub instance: String,
    /// The sender's `server.region`: the `source` of its latencies.
    pub region: String,
    /// This run of the sender (its start, in nanoseconds since the Unix
    /// epoch): a restarted sender starts a new, later incarnation.
    pub incarnation: u64,
    /// Counts up with every message of one incarnation.
    pub seq: u64,
    /// Digest of everything that decides the sender's answers.
    pub routing_version: String,
    /// The sender's own observation of each region it probes.
    pub observations: Vec<Observed>,
    /// The latest operator command the sender knows of, per region and kind.
    pub commands: Vec<Command>,
}

impl PeerMessage {
    /// Whether the message respects the size limits on what it lists.
    pub fn within_limits(&self) -> bool {
        self.observations.len() <= MAX_ENTRIES && self.commands.len() <= MAX_ENTRIES
    }
}

/// How one vantage point sees one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub region: String,
    pub up: bool,
    /// How long its last probe took.
    pub latency_seconds: Option<f64>,
    /// When its last probe ran (RFC 3339).
    pub last_check: Option<String>,
}

/// An operator command, fleet-wide: the latest one per region and kind
/// wins everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub region: String,
    pub action: Action,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Force the region down.
    Down,
    /// Force the region up.
    Up,
    /// Hand the region back to health checks.
    Auto,
    /// Re-admit a region held after a manual recovery.
    Readmit,
}

impl Action {
    /// Forced states and readmits are ordered separately: a readmit does
    /// not undo a forced state, nor the other way round.
    pub fn is_readmit(self) -> bool {
        self == Action::Readmit
    }
}

/// When a command was made, by whom: ordered by hybrid logical clock time,
/// ties broken by instance name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    /// Hybrid logical clock: milliseconds since the Unix epoch in the high
    /// 48 bits, a counter in the low 16.
    pub time: u64,
    pub instance: String,
}

/// The receiver's answer to a [`PeerMessage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ack {
    /// The receiver's `fleet.instance`; checked against its certificate.
    pub instance: String,
    /// The receiver's routing version after taking the message.
    pub routing_version: String,
    /// Every command the receiver now holds, so the sender knows which of
    /// its own have arrived.
    pub commands: Vec<Command>,
}
