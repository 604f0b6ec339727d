//! The fleet as status views show it: `/status`, `/metrics`, the status
//! page and `keiko-dns status` all read these, and nothing else of the
//! fleet's state.

use serde::Serialize;

/// Whatever can show the fleet (the fleet's state keeper).
pub trait FleetViews: Send + Sync {
    fn view(&self) -> FleetView;
}

/// The whole fleet from this instance's point of view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetView {
    pub instance: String,
    /// `fleet.down_quorum` as written: "majority", "all", "any" or a number.
    pub down_quorum: String,
    pub routing_version: String,
    /// No peer is fresh: this instance decides alone.
    pub isolated: bool,
    pub peers: Vec<PeerView>,
    /// Per region, in config order: what every vantage point observes, this
    /// instance first.
    pub regions: Vec<RegionObservers>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    /// The peer's instance name; its URL's host until it has been heard.
    pub instance: String,
    pub url: String,
    pub state: PeerState,
    /// Seconds since its last valid message; `None` if never heard.
    pub last_seen_seconds: Option<f64>,
    /// Its routing version as it last said; `None` if unknown.
    pub routing_version: Option<String>,
    /// Fresh, and its routing version equals this instance's.
    pub agrees: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Heard within `peer_timeout`: counts as a vantage point.
    Up,
    /// Heard before, not within `peer_timeout`.
    Stale,
    /// Never heard, and pushes to it fail to connect.
    Unreachable,
    /// Its TLS handshake or identity was refused, either way.
    Refused,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Stale => "stale",
            PeerState::Unreachable => "unreachable",
            PeerState::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionObservers {
    pub region: String,
    pub observers: Vec<ObserverView>,
}

/// One vantage point's observation of one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserverView {
    pub instance: String,
    /// The observer's `server.region`.
    pub region: String,
    /// "up" or "down".
    pub state: &'static str,
    /// Counted in the verdict (this instance always is).
    pub fresh: bool,
    pub latency_seconds: Option<f64>,
    /// RFC 3339.
    pub last_check: Option<String>,
}
