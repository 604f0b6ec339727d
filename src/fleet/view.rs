//! The fleet as status views show it: `/status`, `/metrics`, the status
//! page and `keiko-dns status` all read these, and nothing else of the
//! fleet's state.

use serde::Serialize;

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

/// Where the status views get the fleet from: the fleet's state keeper
/// implements it, the control plane holds it (`ControlPlane::fleet`).
/// Called on every `/status`, `/metrics` and page load, so it must return
/// at once (a copy of the current state, no I/O).
pub(crate) trait FleetViews: Send + Sync {
    fn view(&self) -> FleetView;
}

/// A hand-made fleet for tests of the views: ns1.us-east-1 (this
/// instance), ns2.eu-west-1 up and agreeing, ns3.ap-southeast-1 stale and
/// on another routing version, and a peer never heard from. ns2 sees
/// eu-west-1 down; ns3's observations are old.
#[cfg(test)]
pub(crate) fn sample() -> FleetView {
    let observer = |instance: &str, region: &str, up: bool, fresh: bool, ms: f64| ObserverView {
        instance: instance.into(),
        region: region.into(),
        state: if up { "up" } else { "down" },
        fresh,
        latency_seconds: Some(ms / 1000.0),
        last_check: Some(if fresh {
            "2026-01-01T00:00:10Z".into()
        } else {
            "2026-01-01T00:00:00Z".into()
        }),
    };
    let regions = [
        ("us-east-1", [1.0, 81.0, 230.0]),
        ("eu-west-1", [80.0, 2.0, 160.0]),
        ("ap-southeast-1", [231.0, 158.0, 1.5]),
    ];
    FleetView {
        instance: "ns1.us-east-1".into(),
        down_quorum: "majority".into(),
        routing_version: "3f2a9c1b7d4e5f60a1b2c3d4e5f60718".into(),
        isolated: false,
        peers: vec![
            PeerView {
                instance: "ns2.eu-west-1".into(),
                url: "https://10.0.2.53:9400".into(),
                state: PeerState::Up,
                last_seen_seconds: Some(0.4),
                routing_version: Some("3f2a9c1b7d4e5f60a1b2c3d4e5f60718".into()),
                agrees: true,
            },
            PeerView {
                instance: "ns3.ap-southeast-1".into(),
                url: "https://10.0.3.53:9400".into(),
                state: PeerState::Stale,
                last_seen_seconds: Some(12.5),
                routing_version: Some("99aa00bb11cc22dd33ee44ff55006677".into()),
                agrees: false,
            },
            PeerView {
                instance: "10.0.4.53".into(),
                url: "https://10.0.4.53:9400".into(),
                state: PeerState::Unreachable,
                last_seen_seconds: None,
                routing_version: None,
                agrees: false,
            },
        ],
        regions: regions
            .iter()
            .map(|(region, ms)| RegionObservers {
                region: (*region).into(),
                observers: vec![
                    observer("ns1.us-east-1", "us-east-1", true, true, ms[0]),
                    observer(
                        "ns2.eu-west-1",
                        "eu-west-1",
                        *region != "eu-west-1",
                        true,
                        ms[1],
                    ),
                    observer("ns3.ap-southeast-1", "ap-southeast-1", true, false, ms[2]),
                ],
            })
            .collect(),
    }
}
