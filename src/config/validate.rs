//! Turns the parsed schema into a [`Config`], collecting every problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use toml::Spanned;

use super::diag::{Diagnostic, Sink};
use super::schema::{self, PolicyName};
use super::*;

const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
const DEFAULT_TTL: u32 = 60;
const MAX_TTL: i64 = i32::MAX as i64;

pub(super) fn validate(
    path: &Path,
    text: &str,
    token_env: Option<String>,
) -> Result<Config, Vec<Diagnostic>> {
    let mut sink = Sink::new(path, text);
    let file: schema::File = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let key = key_at(text, span.start);
            sink.error(span, key, e.message().trim_end().to_owned());
            return Err(sink.found);
        }
    };
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    let mut v = Validator {
        sink,
        dir,
        region_ids: HashMap::new(),
    };
    let config = v.config(path, file, token_env);
    if v.sink.found.is_empty() {
        Ok(config)
    } else {
        Err(v.sink.found)
    }
}

struct Validator<'a> {
    sink: Sink<'a>,
    dir: PathBuf,
    region_ids: HashMap<String, RegionId>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.sink.error(span, key, message);
    }

    fn config(&mut self, path: &Path, file: schema::File, token_env: Option<String>) -> Config {
        let regions = self.regions(file.regions);
        let zone = self.zone(file.zone);
        let server = self.server(file.server, token_env);
        let health = self.health(file.health);
        let rate_limit = self.rate_limit(file.rate_limit);
        let geoip = self.geoip(file.geoip, &regions);
        let residency = self.residency(file.residency);
        let records = self.records(file.records, &zone.origin);
        let notify = self.notify(file.notify);
        if records.iter().any(|r| r.policy == Policy::Geo) && geoip.database.is_none() {
            self.err(
                0..0,
                "geoip.database",
                "a record has policy \"geo\" but no [geoip] database is set",
            );
        }
        if !residency.is_empty() && geoip.database.is_none() {
            self.err(
                0..0,
                "geoip.database",
                "[residency] blocks need a [geoip] database to locate clients",
            );
        }
        Config {
            path: path.to_owned(),
            server,
            zone,
            health,
            rate_limit,
            geoip,
            residency,
            regions,
            records,
            notify,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn server(&mut self, s: schema::Server, token_env: Option<String>) -> Server {
        let mut dns_listen = Vec::new();
        if s.dns_listen.get_ref().is_empty() {
            self.err(
                s.dns_listen.span(),
                "server.dns_listen",
                "give at least one address, e.g. [\"127.0.0.1:5300\"]",
            );
        }
        let mut seen = HashSet::new();
        for a in s.dns_listen.into_inner() {
            match SocketAddr::from_str(a.get_ref()) {
                Ok(addr) if !seen.insert(addr) => {
                    self.err(a.span(), "server.dns_listen", format!("{addr} is listed twice"))
                }
                Ok(addr) => dns_listen.push(addr),
                Err(_) => self.err(
                    a.span(),
                    "server.dns_listen",
                    format!("{:?} is not an address with a port, e.g. \"127.0.0.1:5300\" or \"[::1]:53\"", a.get_ref()),
                ),
            }
        }
        let admin_listen = match SocketAddr::from_str(s.admin_listen.get_ref()) {
            Ok(a) => a,
            Err(_) => {
                self.err(
                    s.admin_listen.span(),
                    "server.admin_listen",
                    format!(
                        "{:?} is not an address with a port, e.g. \"127.0.0.1:9300\"",
                        s.admin_listen.get_ref()
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 9300))
            }
        };
        let admin_token = token_env.or_else(|| s.admin_token.as_ref().map(|t| t.get_ref().clone()));
        if let Some(t) = &s.admin_token
            && t.get_ref().len() < 16
        {
            self.err(
                t.span(),
                "server.admin_token",
                "too short: use at least 16 characters",
            );
        }
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            self.err(
                s.admin_listen.span(),
                "server.admin_listen",
                "is not a loopback address, so an admin_token (or env KEIKO_ADMIN_TOKEN) is required",
            );
        }
        if s.region.get_ref().is_empty() {
            self.err(
                s.region.span(),
                "server.region",
                "must name the region this instance runs in",
            );
        }
        let nsid = s.nsid.map(|n| {
            if n.get_ref().is_empty() || n.get_ref().len() > 255 {
                self.err(n.span(), "server.nsid", "must be 1 to 255 bytes");
            }
            n.into_inner()
        });
        let cookie_secret = s
            .cookie_secret
            .and_then(|c| match parse_hex16(c.get_ref()) {
                Some(k) => Some(k),
                None => {
                    self.err(
                        c.span(),
                        "server.cookie_secret",
                        "must be 32 hexadecimal digits (16 bytes)",
                    );
                    None
                }
            });
        Server {
            dns_listen,
            admin_listen,
            region: s.region.into_inner(),
            state_dir: self.path(s.state_dir.get_ref()),
            admin_token,
            nsid,
            version: s.version.map(Spanned::into_inner),
            cookie_secret,
        }
    }

    fn zone(&mut self, z: schema::Zone) -> ZoneSource {
        let text = z.origin.get_ref();
        let origin = match Name::from_str(text) {
            Ok(n) if text.ends_with('.') && !n.is_root() => n.to_lowercase(),
            _ => {
                self.err(
                    z.origin.span(),
                    "zone.origin",
                    format!("{text:?} is not a fully qualified domain name ending in a dot, e.g. \"keiko.example.com.\""),
                );
                Name::root()
            }
        };
        ZoneSource {
            origin,
            file: self.path(z.file.get_ref()),
        }
    }

    fn health(&mut self, h: schema::Health) -> Health {
        let interval = h.interval.get_ref().0;
        let timeout = h.timeout.get_ref().0;
        let fast = h.fast_interval.get_ref().0;
        if interval.is_zero() {
            self.err(
                h.interval.span(),
                "health.interval",
                "must be longer than 0s",
            );
        }
        if timeout.is_zero() {
            self.err(h.timeout.span(), "health.timeout", "must be longer than 0s");
        } else if timeout > interval {
            self.err(
                h.timeout.span(),
                "health.timeout",
                format!("{} is longer than health.interval ({}); the timeout must not exceed the interval", fmt_dur(timeout), fmt_dur(interval)),
            );
        }
        if fast.is_zero() || fast > interval {
            self.err(
                h.fast_interval.span(),
                "health.fast_interval",
                "must be longer than 0s and no longer than health.interval",
            );
        }
        let failure_threshold =
            self.int_in(&h.failure_threshold, "health.failure_threshold", 1, 100);
        let recovery_threshold =
            self.int_in(&h.recovery_threshold, "health.recovery_threshold", 1, 100);
        if !h.path.get_ref().starts_with('/') {
            self.err(
                h.path.span(),
                "health.path",
                "must start with \"/\", e.g. \"/health\"",
            );
        }
        Health {
            interval,
            timeout,
            failure_threshold,
            recovery_threshold,
            fast_interval: fast,
            recovery: *h.recovery.get_ref(),
            path: h.path.into_inner(),
            ca_file: h.ca_file.map(|c| self.path(c.get_ref())),
        }
    }

    fn rate_limit(&mut self, r: schema::RateLimit) -> Option<RateLimit> {
        let any = r.window.is_some()
            || r.slip.is_some()
            || r.ipv4_prefix_length.is_some()
            || r.ipv6_prefix_length.is_some()
            || r.exempt.is_some();
        let Some(rps) = r.responses_per_second else {
            if any {
                self.err(
                    0..0,
                    "rate_limit.responses_per_second",
                    "is required when [rate_limit] sets other keys",
                );
            }
            return None;
        };
        let responses_per_second =
            self.int_in(&rps, "rate_limit.responses_per_second", 1, 1_000_000);
        let window = match r.window {
            Some(w) => {
                let d = w.get_ref().0;
                if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                    self.err(w.span(), "rate_limit.window", "must be between 1s and 1h");
                }
                d
            }
            None => Duration::from_secs(15),
        };
        let slip = r
            .slip
            .map_or(2, |s| self.int_in(&s, "rate_limit.slip", 0, 10));
        let v4 = r.ipv4_prefix_length.map_or(24, |p| {
            self.int_in(&p, "rate_limit.ipv4_prefix_length", 0, 32)
        });
        let v6 = r.ipv6_prefix_length.map_or(56, |p| {
            self.int_in(&p, "rate_limit.ipv6_prefix_length", 0, 128)
        });
        let mut exempt = Vec::new();
        for net in r.exempt.unwrap_or_default() {
            match parse_net(net.get_ref()) {
                Some(n) => exempt.push(n),
                None => self.err(
                    net.span(),
                    "rate_limit.exempt",
                    format!(
                        "{:?} is not a network, e.g. \"127.0.0.0/8\" or \"2001:db8::/32\"",
                        net.get_ref()
                    ),
                ),
            }
        }
        Some(RateLimit {
            responses_per_second,
            window,
            slip,
            ipv4_prefix_length: v4 as u8,
            ipv6_prefix_length: v6 as u8,
            exempt,
        })
    }

    fn regions(&mut self, raw: Vec<Spanned<schema::Region>>) -> Vec<Region> {
        if raw.is_empty() {
            self.err(0..0, "regions", "define at least one [[regions]] table");
        }
        let mut out = Vec::new();
        let mut priorities: HashMap<i64, String> = HashMap::new();
        for r in raw {
            let r = r.into_inner();
            let name = r.name.get_ref().clone();
            if !valid_label(&name) {
                self.err(
                    r.name.span(),
                    "regions.name",
                    "use letters, digits and '-', e.g. \"us-east-1\"",
                );
            }
            if self.region_ids.contains_key(&name) {
                self.err(
                    r.name.span(),
                    "regions.name",
                    format!("region {name:?} is defined twice"),
                );
            } else {
                self.region_ids.insert(name.clone(), out.len());
            }
            let priority = self.int_in(&r.priority, "regions.priority", 1, 1_000_000);
            if let Some(other) = priorities.insert(*r.priority.get_ref(), name.clone()) {
                self.err(
                    r.priority.span(),
                    "regions.priority",
                    format!(
                        "priority {} is also used by region {other:?}; priorities must differ",
                        r.priority.get_ref()
                    ),
                );
            }
            let weight = if *r.weight.get_ref() < 0 {
                self.err(
                    r.weight.span(),
                    "regions.weight",
                    "must not be negative (0 to 1000000)",
                );
                0
            } else {
                self.int_in(&r.weight, "regions.weight", 0, 1_000_000)
            };
            let capacity = r.capacity.map_or(100, |c| {
                self.int_in(&c, "regions.capacity", 0, u32::MAX as i64)
            });
            match reqwest::Url::parse(r.endpoint.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => self.err(
                    r.endpoint.span(),
                    "regions.endpoint",
                    format!(
                        "{:?} is not an http:// or https:// URL with a host",
                        r.endpoint.get_ref()
                    ),
                ),
            }
            let (mut ipv4, mut ipv6, mut addresses) = (Vec::new(), Vec::new(), Vec::new());
            if r.addresses.get_ref().is_empty() {
                self.err(
                    r.addresses.span(),
                    "regions.addresses",
                    "give at least one IPv4 or IPv6 address",
                );
            }
            for a in r.addresses.into_inner() {
                match IpAddr::from_str(a.get_ref()) {
                    Ok(ip) if addresses.contains(&ip) => self.err(
                        a.span(),
                        "regions.addresses",
                        format!("{ip} is listed twice"),
                    ),
                    Ok(ip) => {
                        addresses.push(ip);
                        match ip {
                            IpAddr::V4(v4) => ipv4.push(v4),
                            IpAddr::V6(v6) => ipv6.push(v6),
                        }
                    }
                    Err(_) => self.err(
                        a.span(),
                        "regions.addresses",
                        format!("{:?} is not an IPv4 or IPv6 address", a.get_ref()),
                    ),
                }
            }
            if let Some(h) = &r.health_url {
                match reqwest::Url::parse(h.get_ref()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                    Ok(u)
                        if u.scheme() == "tcp" && u.host_str().is_some() && u.port().is_some() => {}
                    _ => self.err(
                        h.span(),
                        "regions.health_url",
                        format!(
                            "{:?} must be a complete http://, https:// or tcp://host:port URL",
                            h.get_ref()
                        ),
                    ),
                }
            }
            out.push(Region {
                name,
                priority,
                weight,
                capacity,
                endpoint: r.endpoint.into_inner(),
                ipv4,
                ipv6,
                addresses,
                health_url: r.health_url.map(Spanned::into_inner),
                expect_body: r.expect_body.map(Spanned::into_inner),
            });
        }
        if !out.is_empty() && out.iter().all(|r| r.weight == 0) {
            self.err(
                0..0,
                "regions.weight",
                "every region has weight 0; at least one weight must be positive",
            );
        }
        out
    }

    /// Resolves a list of region names, reporting unknown and repeated ones.
    fn region_list(&mut self, key: &str, list: &Spanned<Vec<Spanned<String>>>) -> Vec<RegionId> {
        if list.get_ref().is_empty() {
            self.err(list.span(), key, "name at least one region");
        }
        let mut ids = Vec::new();
        for name in list.get_ref() {
            match self.region_ids.get(name.get_ref()) {
                Some(&id) if ids.contains(&id) => self.err(
                    name.span(),
                    key,
                    format!("region {:?} is listed twice", name.get_ref()),
                ),
                Some(&id) => ids.push(id),
                None => {
                    let known = self.known_regions();
                    self.err(
                        name.span(),
                        key,
                        format!(
                            "unknown region {:?}; defined regions: {known}",
                            name.get_ref()
                        ),
                    )
                }
            }
        }
        ids
    }

    fn known_regions(&self) -> String {
        let mut names: Vec<(&RegionId, &String)> =
            self.region_ids.iter().map(|(n, i)| (i, n)).collect();
        names.sort();
        names
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn geoip(&mut self, g: Option<Spanned<schema::Geoip>>, regions: &[Region]) -> Geoip {
        let mut by_priority: Vec<RegionId> = (0..regions.len()).collect();
        by_priority.sort_by_key(|&i| regions[i].priority);
        let Some(g) = g else {
            return Geoip {
                default: by_priority,
                ..Geoip::default()
            };
        };
        let g = g.into_inner();
        let default = match &g.default {
            Some(list) => self.region_list("geoip.default", list),
            None => by_priority,
        };
        let mut continents = BTreeMap::new();
        for (code, list) in &g.continents {
            if !CONTINENTS.contains(&code.get_ref().as_str()) {
                self.err(
                    code.span(),
                    "geoip.continents",
                    format!(
                        "{:?} is not a continent code; use one of {}",
                        code.get_ref(),
                        CONTINENTS.join(", ")
                    ),
                );
            }
            let ids = self.region_list(&format!("geoip.continents.{}", code.get_ref()), list);
            continents.insert(code.get_ref().clone(), ids);
        }
        let mut countries = BTreeMap::new();
        for (code, list) in &g.countries {
            if !is_country(code.get_ref()) {
                self.err(
                    code.span(),
                    "geoip.countries",
                    format!(
                        "{:?} is not an ISO 3166 two-letter country code in capitals, e.g. \"JP\"",
                        code.get_ref()
                    ),
                );
            }
            let ids = self.region_list(&format!("geoip.countries.{}", code.get_ref()), list);
            countries.insert(code.get_ref().clone(), ids);
        }
        Geoip {
            database: g.database.map(|d| self.path(d.get_ref())),
            default,
            continents,
            countries,
        }
    }

    fn residency(&mut self, raw: BTreeMap<String, Spanned<schema::Residency>>) -> Vec<Residency> {
        let mut out = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (name, block) in raw {
            let span = block.span();
            let b = block.into_inner();
            let key = format!("residency.{name}");
            if b.continents.is_empty() && b.countries.is_empty() {
                self.err(span.clone(), &key, "name at least one continent or country");
            }
            let mut continents = Vec::new();
            for c in &b.continents {
                if !CONTINENTS.contains(&c.get_ref().as_str()) {
                    self.err(
                        c.span(),
                        &format!("{key}.continents"),
                        format!(
                            "{:?} is not a continent code; use one of {}",
                            c.get_ref(),
                            CONTINENTS.join(", ")
                        ),
                    );
                } else if let Some(other) = claimed.insert(c.get_ref().clone(), name.clone()) {
                    self.err(
                        c.span(),
                        &format!("{key}.continents"),
                        format!("{} is already claimed by [residency.{other}]", c.get_ref()),
                    );
                }
                continents.push(c.get_ref().clone());
            }
            let mut countries = Vec::new();
            for c in &b.countries {
                if !is_country(c.get_ref()) {
                    self.err(
                        c.span(),
                        &format!("{key}.countries"),
                        format!(
                            "{:?} is not a two-letter country code in capitals",
                            c.get_ref()
                        ),
                    );
                } else if let Some(other) = claimed.insert(c.get_ref().clone(), name.clone()) {
                    self.err(
                        c.span(),
                        &format!("{key}.countries"),
                        format!("{} is already claimed by [residency.{other}]", c.get_ref()),
                    );
                }
                countries.push(c.get_ref().clone());
            }
            let regions = self.region_list(&format!("{key}.regions"), &b.regions);
            out.push(Residency {
                name,
                continents,
                countries,
                regions,
            });
        }
        out
    }

    fn records(&mut self, raw: Vec<Spanned<schema::Record>>, origin: &Name) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        let mut seen = HashSet::new();
        for r in raw {
            let r = r.into_inner();
            let text = r.name.get_ref();
            let name = match Name::parse(text, Some(origin)) {
                Ok(n) if !text.is_empty() && origin.zone_of(&n) => n.to_lowercase(),
                _ => {
                    self.err(
                        r.name.span(),
                        "records.name",
                        format!("{text:?} is not a name inside {origin}; write it relative to the origin, e.g. \"api-contracts\""),
                    );
                    continue;
                }
            };
            if !seen.insert(name.clone()) {
                self.err(
                    r.name.span(),
                    "records.name",
                    format!("{name} is defined twice"),
                );
            }
            let policy = match (*r.policy.get_ref(), &r.region) {
                (PolicyName::Region, Some(region)) => match self.region_ids.get(region.get_ref()) {
                    Some(&id) => Policy::Region(id),
                    None => {
                        let known = self.known_regions();
                        self.err(
                            region.span(),
                            "records.region",
                            format!(
                                "unknown region {:?}; defined regions: {known}",
                                region.get_ref()
                            ),
                        );
                        continue;
                    }
                },
                (PolicyName::Region, None) => {
                    self.err(
                        r.policy.span(),
                        "records.region",
                        "policy \"region\" needs region = \"<name>\"",
                    );
                    continue;
                }
                (_, Some(region)) => {
                    self.err(
                        region.span(),
                        "records.region",
                        "only policy \"region\" takes a region",
                    );
                    continue;
                }
                (PolicyName::Failover, None) => Policy::Failover,
                (PolicyName::Geo, None) => Policy::Geo,
                (PolicyName::Weighted, None) => Policy::Weighted,
            };
            let ttl = r
                .ttl
                .map_or(DEFAULT_TTL, |t| self.int_in(&t, "records.ttl", 0, MAX_TTL));
            let at = self.sink.line_col(r.name.span().start);
            out.push(Record {
                name,
                policy,
                ttl,
                at,
            });
        }
        out
    }

    fn notify(&mut self, raw: Vec<Spanned<schema::Notify>>) -> Vec<Notify> {
        let mut out = Vec::new();
        for n in raw {
            let n = n.into_inner();
            match reqwest::Url::parse(n.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => self.err(
                    n.url.span(),
                    "notify.url",
                    format!("{:?} is not an http:// or https:// URL", n.url.get_ref()),
                ),
            }
            out.push(Notify {
                url: n.url.into_inner(),
                format: n.format.map_or(NotifyFormat::Json, |f| *f.get_ref()),
                token: n.token.map(Spanned::into_inner),
            });
        }
        out
    }

    fn int_in(&mut self, v: &Spanned<i64>, key: &str, min: i64, max: i64) -> u32 {
        let n = *v.get_ref();
        if n < min || n > max {
            self.err(
                v.span(),
                key,
                format!("{n} is out of range; allowed: {min} to {max}"),
            );
            return min.max(0) as u32;
        }
        n as u32
    }
}

/// The dotted key whose value sits at byte `offset`, e.g. `health.interval`
/// or `regions.weight`: the parser's errors carry a position, not a key.
fn key_at(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .unwrap_or_default();
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn parse_net(s: &str) -> Option<IpNet> {
    IpNet::from_str(s)
        .ok()
        .map(|n| n.trunc())
        .or_else(|| IpAddr::from_str(s).ok().map(IpNet::from))
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
