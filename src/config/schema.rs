//! The TOML schema exactly as operators write it (docs/reference.md §2).
//!
//! These types only describe the file; `super::validate` turns them into the
//! checked [`super::Config`]. Every table denies unknown keys, and values that
//! later checks must point at are kept `Spanned` so errors can name the line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub server: Server,
    pub zone: Zone,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub geoip: Option<Spanned<Geoip>>,
    #[serde(default)]
    pub residency: BTreeMap<String, Spanned<Residency>>,
    #[serde(default)]
    pub regions: Vec<Spanned<Region>>,
    #[serde(default)]
    pub records: Vec<Spanned<Record>>,
    #[serde(default)]
    pub networks: Vec<Spanned<Network>>,
    #[serde(default)]
    pub notify: Vec<Spanned<Notify>>,
    #[serde(default)]
    pub fleet: Option<Spanned<Fleet>>,
    #[serde(default)]
    pub dnssec: Option<Spanned<Dnssec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Server {
    pub dns_listen: Spanned<Vec<Spanned<String>>>,
    pub admin_listen: Spanned<String>,
    pub region: Spanned<String>,
    pub state_dir: Spanned<String>,
    pub admin_token: Option<Spanned<String>>,
    pub nsid: Option<Spanned<String>>,
    /// Answer for CHAOS `version.bind`/`version.server`; REFUSED when unset.
    pub version: Option<Spanned<String>>,
    /// RFC 7873 server cookie secret (32 hex digits); generated at start when unset.
    pub cookie_secret: Option<Spanned<String>>,
    /// UDP worker threads (each with its own socket per address); the
    /// available cores when unset.
    pub udp_workers: Option<Spanned<i64>>,
    /// Threads of the DNS-over-TCP runtime.
    pub tcp_threads: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Zone {
    pub origin: Spanned<String>,
    pub file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Health {
    pub interval: Spanned<HumanDuration>,
    pub timeout: Spanned<HumanDuration>,
    pub failure_threshold: Spanned<i64>,
    pub recovery_threshold: Spanned<i64>,
    pub fast_interval: Spanned<HumanDuration>,
    pub recovery: Spanned<Recovery>,
    pub path: Spanned<String>,
    pub ca_file: Option<Spanned<String>>,
}

impl Default for Health {
    fn default() -> Self {
        let s = |d| Spanned::new(0..0, HumanDuration(Duration::from_secs(d)));
        Self {
            interval: s(30),
            timeout: s(10),
            failure_threshold: Spanned::new(0..0, 3),
            recovery_threshold: Spanned::new(0..0, 3),
            fast_interval: s(5),
            recovery: Spanned::new(0..0, Recovery::Automatic),
            path: Spanned::new(0..0, "/health".to_owned()),
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recovery {
    Automatic,
    Manual,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimit {
    pub responses_per_second: Option<Spanned<i64>>,
    pub window: Option<Spanned<HumanDuration>>,
    pub slip: Option<Spanned<i64>>,
    pub ipv4_prefix_length: Option<Spanned<i64>>,
    pub ipv6_prefix_length: Option<Spanned<i64>>,
    pub exempt: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Geoip {
    pub database: Option<Spanned<String>>,
    pub default: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub continents: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub countries: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Residency {
    #[serde(default)]
    pub continents: Vec<Spanned<String>>,
    #[serde(default)]
    pub countries: Vec<Spanned<String>>,
    pub regions: Spanned<Vec<Spanned<String>>>,
}

/// `[[networks]]`: a client network whose preference list beats GeoIP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Network {
    pub cidr: Spanned<String>,
    pub regions: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Region {
    pub name: Spanned<String>,
    pub priority: Spanned<i64>,
    pub weight: Spanned<i64>,
    #[serde(default)]
    pub capacity: Option<Spanned<i64>>,
    pub endpoint: Spanned<String>,
    pub addresses: Option<Spanned<Vec<Spanned<String>>>>,
    /// Instead of addresses: answer a CNAME to this name.
    pub cname: Option<Spanned<String>>,
    pub health_url: Option<Spanned<String>>,
    pub expect_body: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Record {
    pub name: Spanned<String>,
    pub policy: Spanned<PolicyName>,
    pub ttl: Option<Spanned<i64>>,
    pub region: Option<Spanned<String>>,
    /// What to answer when no candidate region is healthy.
    pub on_all_down: Option<Spanned<AllDownName>>,
    /// `multivalue` only: at most this many records per answer.
    pub max_answers: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum AllDownName {
    FailOpen,
    Nodata,
    Servfail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PolicyName {
    Failover,
    Geo,
    Weighted,
    Region,
    Multivalue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Notify {
    pub url: Spanned<String>,
    #[serde(default)]
    pub format: Option<Spanned<NotifyFormat>>,
    /// Sent as `Authorization: Bearer ...`; never logged.
    pub token: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    Json,
    Alertmanager,
}

/// `[fleet]`: this instance's place among several that answer as one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Fleet {
    pub instance: Spanned<String>,
    pub listen: Spanned<String>,
    #[serde(default)]
    pub peers: Vec<Spanned<String>>,
    pub ca_file: Spanned<String>,
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
    pub down_quorum: Option<Spanned<QuorumText>>,
    pub peer_timeout: Option<Spanned<HumanDuration>>,
}

/// `[dnssec]`: the zone's signing keys and signature lifetimes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dnssec {
    pub keys: Spanned<Vec<Spanned<String>>>,
    pub signature_validity: Option<Spanned<HumanDuration>>,
    pub refresh: Option<Spanned<HumanDuration>>,
}

/// `down_quorum` as written: a word or a number, checked by validation so
/// the error can list every form allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum QuorumText {
    Word(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for QuorumText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QuorumVisitor)
    }
}

struct QuorumVisitor;

impl serde::de::Visitor<'_> for QuorumVisitor {
    type Value = QuorumText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"majority\", \"all\", \"any\" or a number of vantage points")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<QuorumText, E> {
        Ok(QuorumText::Word(text.to_owned()))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<QuorumText, E> {
        Ok(QuorumText::Number(n))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<QuorumText, E> {
        Ok(QuorumText::Number(i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

/// A duration written as text: `"30s"`, `"500ms"`, `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DurationVisitor)
    }
}

/// Accepts only text, so a bare number is refused with what to write
/// instead (`30` could be seconds or milliseconds; `"30s"` cannot).
struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration like \"30s\", \"500ms\" or \"2m\" (text with a unit)")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|e| {
                E::custom(format!(
                    "invalid duration {text:?} ({e}); write it like \"30s\", \"500ms\" or \"2m\""
                ))
            })
    }
}
