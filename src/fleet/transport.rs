//! The peer channel: how instances of a fleet reach each other. This
//! module owns the HTTPS endpoint that takes peers' messages
//! ([`serve`]) and the tasks that push this instance's state to every peer
//! ([`spawn_pushers`]); what the messages mean belongs to the [`Hub`]
//! behind them, and the TLS configurations (TLS 1.3 only, the fleet CA on
//! both sides, client certificates required) are built by the caller.
//!
//! One exchange is `POST /fleet/v1/state` with a [`PeerMessage`] as JSON,
//! answered by an [`Ack`]. Both sides check the other's identity the same
//! way: the instance name a message or an acknowledgement claims must be a
//! DNS name of the certificate its sender presented in the TLS session
//! ([`NameCheck`]). Nothing here waits on the hub, and every wait on the
//! network is bounded, so a slow or hostile peer costs a connection slot
//! for a few seconds and nothing else.
//!
//! [`Hub`]: super::Hub
//! [`PeerMessage`]: super::message::PeerMessage
//! [`Ack`]: super::message::Ack

mod client;
mod server;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;
use rustls::pki_types::CertificateDer;

pub(crate) use client::spawn_pushers;
pub(crate) use server::serve;

/// The one route of the peer endpoint.
pub(crate) const STATE_PATH: &str = "/fleet/v1/state";

/// Whether `name` is a DNS name of `certificate` (a DNS subject alternative
/// name, never an IP address or the subject's common name). The fleet's
/// TLS setup provides it; both directions use it.
pub(crate) type NameCheck = fn(&CertificateDer<'_>, &str) -> bool;

/// Why the peer channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TransportError {
    #[error("cannot build the fleet's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("peer URL {0} cannot take a path (expected https://HOST:PORT)")]
    PeerUrl(Url),
}

/// Logs refusals at WARN, each (peer address, kind of refusal) at most once
/// per [`WarnLimit::EVERY`], with the count of those left out: a peer that
/// retries a bad message every 200 ms fills no disk.
#[derive(Debug, Default)]
pub(super) struct WarnLimit {
    /// Per (address, kind): when it was last logged, and how many were
    /// left out since.
    last: Mutex<HashMap<WarnKey, (Instant, u64)>>,
}

type WarnKey = (IpAddr, &'static str);

impl WarnLimit {
    const EVERY: Duration = Duration::from_secs(10);
    /// Past this many distinct keys the table is emptied, so a scan from
    /// many addresses cannot grow it without bound.
    const MAX_KEYS: usize = 4096;

    /// Whether to log a refusal of `kind` from `ip` now; if so, how many
    /// such refusals were left out before it.
    pub(super) fn admit(&self, ip: IpAddr, kind: &'static str, now: Instant) -> Option<u64> {
        // Held for a map lookup only; a poisoned map is still a valid limit.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, suppressed)) = last.get_mut(&(ip, kind)) {
            if now.duration_since(*at) < Self::EVERY {
                *suppressed += 1;
                return None;
            }
            *at = now;
            return Some(std::mem::take(suppressed));
        }
        if last.len() >= Self::MAX_KEYS {
            last.clear();
        }
        last.insert((ip, kind), (now, 0));
        Some(0)
    }
}
