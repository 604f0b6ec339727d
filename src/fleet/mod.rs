//! The fleet: several keiko-dns instances that answer as one. Each shares
//! its own observation of every region and the operator commands it knows
//! with its peers over mutual TLS; each computes the same verdict from the
//! same inputs (`down_quorum` over the fresh vantage points) and feeds it
//! to its routing table through the one publish path. None of this touches
//! the query path.
//!
//! - [`keeper`]: this instance's fleet state: what it pushes, what it
//!   takes, fleet-wide commands and who acknowledged them;
//! - `commands`, `clock`: last-writer-wins commands under a hybrid logical
//!   clock;
//! - [`message`]: what goes over the wire;
//! - [`view`]: the fleet as status views show it;
//! - [`transport`]: the peer channel (the mutual-TLS endpoint and the
//!   pushers to every peer).

mod clock;
mod commands;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod keeper;
pub(crate) mod message;
pub(crate) mod transport;
pub(crate) mod view;

use reqwest::Url;
use tokio::sync::Notify;

use message::{Ack, PeerMessage};

/// The fleet's state as the transport sees it: what to push, what to do
/// with what arrives, and how each push went. Implemented by the fleet's
/// state keeper; every call returns at once (no I/O, no waiting).
pub(crate) trait Hub: Send + Sync + 'static {
    /// Signalled when this instance's state changed and should be pushed
    /// now rather than at the next tick.
    fn changed(&self) -> &Notify;

    /// The message to push to every peer now.
    fn outgoing(&self) -> PeerMessage;

    /// Takes a message whose sender the transport has authenticated (its
    /// `instance` is a DNS name of its client certificate).
    fn receive(&self, message: PeerMessage) -> Result<Ack, Rejection>;

    /// How a push to `peer` went.
    fn pushed(&self, peer: &Url, outcome: Pushed);
}

/// Why a peer's message changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not newer than the last message of that sender: a replay, a
    /// reordering, or a restart that went back in time.
    #[error("stale message: (incarnation, seq) not newer than the last one taken")]
    Stale,
    /// Well-formed JSON that breaks a rule (unknown region names are not
    /// that: a peer with another config is shown as disagreeing).
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// The outcome of one push, for the peer's state in views.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pushed {
    /// Delivered; the peer's identity was checked against its certificate.
    Acknowledged(Ack),
    /// The peer refused the message (stale, invalid, or our identity).
    Rejected(String),
    /// The TLS handshake failed or the peer's certificate does not name it.
    Refused(String),
    /// No connection, a timeout, or an answer that is not an Ack.
    Unreachable(String),
}
