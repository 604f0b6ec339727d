//! Configuration: the TOML file of docs/reference.md §2, checked as a whole.
//!
//! [`check`] is the one validation pass that `check`, start and reload go
//! through: it reads the config, the zone file and the GeoIP database and
//! returns either all of them, valid together, or every problem found, each
//! located as `file:line:col: key: message`. [`Config::load`] and
//! [`Config::parse`] check the config file alone, for commands that answer
//! no queries. Every derived value (absolute paths, each region's probe
//! target) is computed here, once.

mod diag;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

pub use diag::Diagnostic;
pub use schema::{NotifyFormat, Recovery};
// Probe tests build their targets the way validation does.
#[cfg(test)]
pub(crate) use validate::probe_target;

use crate::geo::GeoDb;
use crate::zone::Zone;

/// Index of a region in [`Config::regions`].
pub type RegionId = usize;

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, absolute.
    pub path: PathBuf,
    pub server: Server,
    pub zone: ZoneSource,
    pub health: Health,
    pub rate_limit: Option<RateLimit>,
    pub geoip: Geoip,
    pub residency: Vec<Residency>,
    /// In the order written; `priority` gives failover order.
    pub regions: Vec<Region>,
    pub records: Vec<Record>,
    /// `[[networks]]`: client networks with their preference lists, which
    /// beat `geoip` for `geo` records (longest prefix wins).
    pub networks: Vec<Network>,
    pub notify: Vec<Notify>,
    /// `[fleet]`: several instances that answer as one (docs/reference.md
    /// §9); `None` for a single instance.
    pub fleet: Option<Fleet>,
    /// `[dnssec]`: sign the zone (docs/reference.md §10); `None` leaves it
    /// unsigned.
    pub dnssec: Option<Dnssec>,
}

/// `[dnssec]`, validated: every key file read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnssec {
    /// Absolute paths; the first key signs, the others are only published.
    pub keys: Vec<PathBuf>,
    /// RRSIG lifetime, counted from an inception one hour in the past.
    pub signature_validity: Duration,
    /// Re-sign when less than this much validity remains.
    pub refresh: Duration,
}

/// `[fleet]`, validated: every file read and every peer URL parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// This instance's name in the fleet: a DNS SAN of `cert_file`.
    pub instance: String,
    /// The peer endpoint (HTTPS, TLS 1.3, client certificate required).
    pub listen: SocketAddr,
    /// The other instances' peer endpoints (`https://host:port`), without
    /// this instance's own.
    pub peers: Vec<reqwest::Url>,
    /// Absolute paths.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub down_quorum: Quorum,
    /// A peer not heard from for this long no longer counts.
    pub peer_timeout: Duration,
}

/// How many fresh vantage points must observe a region down for the fleet
/// to take it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// More than half.
    Majority,
    /// Every one.
    All,
    /// At least one.
    Any,
    /// At least N, or all of them when fewer than N are fresh.
    AtLeast(u32),
}

impl Fleet {
    /// Whether `other` differs in what is only taken at start: identity,
    /// endpoint, peers and certificates (quorum and timeout follow a
    /// reload).
    pub fn needs_restart_for(&self, other: &Fleet) -> bool {
        (
            &self.instance,
            self.listen,
            &self.peers,
            &self.ca_file,
            &self.cert_file,
            &self.key_file,
        ) != (
            &other.instance,
            other.listen,
            &other.peers,
            &other.ca_file,
            &other.cert_file,
            &other.key_file,
        )
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::Majority => f.write_str("majority"),
            Quorum::All => f.write_str("all"),
            Quorum::Any => f.write_str("any"),
            Quorum::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Clone)]
pub struct Server {
    pub dns_listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub region: String,
    pub state_dir: PathBuf,
    pub admin_token: Option<String>,
    pub nsid: Option<String>,
    pub version: Option<String>,
    pub cookie_secret: Option<[u8; 16]>,
    /// `udp_workers` as written; `None` means one per available core (see
    /// [`Server::udp_workers`]).
    pub udp_workers: Option<usize>,
    /// Threads serving DNS over TCP (1: one thread, as before the key).
    pub tcp_threads: usize,
}

impl Server {
    /// How many UDP worker threads to start, each with its own
    /// `SO_REUSEPORT` socket per `dns_listen` address: the configured
    /// count, else the cores this process may run on (2 when that cannot
    /// be read). Taken at start; a reload does not change it.
    pub fn udp_workers(&self) -> usize {
        self.udp_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

/// Secrets are never printed, even in debug output.
impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("Server")
            .field("dns_listen", &self.dns_listen)
            .field("admin_listen", &self.admin_listen)
            .field("region", &self.region)
            .field("state_dir", &self.state_dir)
            .field("admin_token", &redacted(self.admin_token.is_some()))
            .field("nsid", &self.nsid)
            .field("version", &self.version)
            .field("cookie_secret", &redacted(self.cookie_secret.is_some()))
            .field("udp_workers", &self.udp_workers)
            .field("tcp_threads", &self.tcp_threads)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ZoneSource {
    pub origin: Name,
    pub file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub recovery_threshold: u32,
    pub fast_interval: Duration,
    pub recovery: Recovery,
    pub path: String,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub responses_per_second: u32,
    pub window: Duration,
    pub slip: u32,
    pub ipv4_prefix_length: u8,
    pub ipv6_prefix_length: u8,
    pub exempt: Vec<IpNet>,
}

#[derive(Debug, Clone, Default)]
pub struct Geoip {
    pub database: Option<PathBuf>,
    /// Preference list for clients no other list matches.
    pub default: Vec<RegionId>,
    /// Continent code (`EU`) to preference list.
    pub continents: BTreeMap<String, Vec<RegionId>>,
    /// ISO country code (`JP`) to preference list; beats the continent.
    pub countries: BTreeMap<String, Vec<RegionId>>,
}

/// A `[[networks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Normalised (host bits cleared as written is an error).
    pub cidr: IpNet,
    pub regions: Vec<RegionId>,
}

#[derive(Debug, Clone)]
pub struct Residency {
    pub name: String,
    pub continents: Vec<String>,
    pub countries: Vec<String>,
    pub regions: Vec<RegionId>,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub priority: u32,
    pub weight: u32,
    pub capacity: u32,
    pub endpoint: String,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// Addresses in the order written; the first is probed without `health_url`.
    pub addresses: Vec<std::net::IpAddr>,
    /// A CNAME region (no addresses): steered answers are a CNAME to this
    /// name (fully qualified, lowercase).
    pub cname: Option<Name>,
    pub health_url: Option<String>,
    pub expect_body: Option<String>,
    /// Where its health probes go, derived from the keys above.
    pub probe: ProbeTarget,
}

/// What a region's health probes go to, resolved at validation so a
/// target that could never be probed is a config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// GET `url`. With `connect_to`, the TCP connection goes to that
    /// address while the Host header and TLS SNI stay the url's host name
    /// (probing a region's IP under its name, as Route53 does); the url's
    /// port, when written, equals `connect_to`'s. Without it, the url is
    /// dialled as written.
    Http {
        url: reqwest::Url,
        connect_to: Option<SocketAddr>,
    },
    /// A TCP connect to `addr` is the whole check.
    Tcp { addr: SocketAddr },
    /// GET `url` (Host and SNI its host name) over a connection to `host`
    /// (a CNAME region's target), resolved by the prober at each probe
    /// with its own resolver, never through this server, on `port`.
    HttpVia {
        url: reqwest::Url,
        host: String,
        port: u16,
    },
}

impl ProbeTarget {
    /// Printable form for logs and the CLI, e.g.
    /// `https://api.example.com/health via 192.0.2.10:443`.
    pub fn describe(&self) -> String {
        match self {
            ProbeTarget::Http {
                url,
                connect_to: Some(addr),
            } => format!("{url} via {addr}"),
            ProbeTarget::Http {
                url,
                connect_to: None,
            } => url.to_string(),
            ProbeTarget::Tcp { addr } => format!("tcp://{addr}"),
            ProbeTarget::HttpVia { url, host, port } => format!("{url} via {host}:{port}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    /// Fully qualified, lowercase.
    pub name: Name,
    pub policy: Policy,
    pub ttl: u32,
    /// What is answered when no candidate region is healthy.
    pub on_all_down: AllDown,
    /// Where the record's `name` is written, for errors found later.
    pub at: (usize, usize),
}

/// `on_all_down`: what a steered name answers when no candidate region
/// is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllDown {
    /// Answer as if every candidate were healthy (the default).
    #[default]
    FailOpen,
    /// NOERROR with the SOA and no answer.
    NoData,
    /// SERVFAIL.
    ServFail,
}

impl AllDown {
    pub fn as_str(self) -> &'static str {
        match self {
            AllDown::FailOpen => "fail_open",
            AllDown::NoData => "nodata",
            AllDown::ServFail => "servfail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Failover,
    Geo,
    Weighted,
    Region(RegionId),
    /// Every healthy region's addresses, at most `max_answers` records.
    Multivalue {
        max_answers: u8,
    },
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Geo => "geo",
            Policy::Weighted => "weighted",
            Policy::Region(_) => "region",
            Policy::Multivalue { .. } => "multivalue",
        }
    }
}

#[derive(Clone)]
pub struct Notify {
    pub url: String,
    pub format: NotifyFormat,
    pub token: Option<String>,
}

/// Webhook URLs often carry credentials in their path, tokens always.
impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = reqwest::Url::parse(&self.url)
            .map(|u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")))
            .unwrap_or_else(|_| "<invalid>".into());
        f.debug_struct("Notify")
            .field("url", &origin)
            .field("format", &self.format)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(found: &[Diagnostic]) -> String {
    let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// A config with the zone and GeoIP database it names, valid together.
pub struct Checked {
    pub config: Config,
    pub zone: Zone,
    pub geo: Option<GeoDb>,
}

/// Reads and validates the config at `path` and every file it names: the
/// one pass behind `check`, start and reload.
pub fn check(path: &Path) -> Result<Checked, ConfigError> {
    let (path, text) = read(path)?;
    match validate::validate(&path, &text, token_env(), validate::Files::Read) {
        Ok(validate::Validated {
            config,
            zone: Some(zone),
            geo,
        }) => Ok(Checked { config, zone, geo }),
        // Files::Read always reads the zone when nothing is wrong; a
        // missing zone with no diagnostic would be a bug, reported as one.
        Ok(_) => Err(ConfigError::Invalid(vec![Diagnostic {
            file: path,
            line: 1,
            col: 1,
            key: "zone.file".into(),
            message: "the zone file was not read".into(),
        }])),
        Err(found) => Err(ConfigError::Invalid(found)),
    }
}

fn read(path: &Path) -> Result<(PathBuf, String), ConfigError> {
    let path = std::path::absolute(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((path, text))
}

/// The admin token from the environment, which beats the file's.
fn token_env() -> Option<String> {
    std::env::var("KEIKO_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

impl Region {
    /// What the region answers, as text: its addresses, or `CNAME target`.
    pub fn answer_texts(&self) -> Vec<String> {
        match &self.cname {
            Some(target) => vec![format!("CNAME {target}")],
            None => self.addresses.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Config {
    /// Reads and validates the config at `path`, without the files it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (path, text) = read(path)?;
        Self::parse(&path, &text)
    }

    /// Validates config `text` as if read from `path` (relative paths in it
    /// resolve against `path`'s folder).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::validate(path, text, token_env(), validate::Files::ConfigOnly)
            .map(|v| v.config)
            .map_err(ConfigError::Invalid)
    }

    pub fn region_id(&self, name: &str) -> Option<RegionId> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// Region ids in failover order (priority 1 first).
    pub fn by_priority(&self) -> Vec<RegionId> {
        let mut ids: Vec<RegionId> = (0..self.regions.len()).collect();
        ids.sort_by_key(|&i| self.regions[i].priority);
        ids
    }

    /// Whether any answer for failover/weighted names depends on the client.
    pub fn has_residency(&self) -> bool {
        !self.residency.is_empty()
    }

    /// A diagnostic located at a record's name, for checks made after loading.
    pub fn record_error(&self, record: &Record, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.path.clone(),
            line: record.at.0,
            col: record.at.1,
            key: "records.name".into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
