//! Configuration: the TOML file of contract section 2, checked as a whole.
//!
//! `load` reads a file and returns either a [`Config`] whose every value has
//! been validated and whose paths are absolute, or every problem found, each
//! located as `file:line:col: key: message`. Nothing here touches the zone
//! file or GeoIP database; `crate::control::load` ties those in.

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
    pub notify: Vec<Notify>,
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
    pub health_url: Option<String>,
    pub expect_body: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Record {
    /// Fully qualified, lowercase.
    pub name: Name,
    pub policy: Policy,
    pub ttl: u32,
    /// Where the record's `name` is written, for errors found later.
    pub at: (usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Failover,
    Geo,
    Weighted,
    Region(RegionId),
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::Geo => "geo",
            Policy::Weighted => "weighted",
            Policy::Region(_) => "region",
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

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let path = std::path::absolute(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// Validates config `text` as if read from `path` (relative paths in it
    /// resolve against `path`'s folder).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let token_env = std::env::var("KEIKO_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        validate::validate(path, text, token_env).map_err(ConfigError::Invalid)
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
