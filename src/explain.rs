//! `explain`: why a name gets the answer it gets, for one client.
//!
//! This file owns the reasoning behind an answer as operators ask about it
//! (`keiko-dns explain` and `GET /explain`): where the client is taken to be,
//! what the GeoIP database says about it, which preference list and
//! residency rule apply, how healthy each candidate is, whether the answer
//! failed open, and the ECS scope the response would carry. It is a pure
//! function over a [`Snapshot`]: it reads the same client maps and routing
//! rules the data plane answers from, so the explanation cannot drift from
//! the answer. Rendering it for people is the CLI's business.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{AllDown, Config, Policy, RegionId};
use crate::snapshot::routing::{self, Choice};
use crate::snapshot::{NO_LOCATION, NameKind, Snapshot, relative};

/// Why a request to explain cannot be answered. Each message says what is
/// allowed, since it goes straight to an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ExplainError {
    #[error("name {value:?} is not a valid DNS name: {reason}")]
    Name { value: String, reason: String },
    #[error("client {value:?} is not an IP address (for example 192.0.2.1 or 2001:db8::1)")]
    Client { value: String },
    #[error(
        "subnet {value:?} is not an address with a prefix length \
         (for example 81.2.69.142/32 or 2001:218::/48)"
    )]
    Subnet { value: String },
}

/// What to explain: a name (relative to the origin or fully qualified) and
/// what the query would say about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub name: String,
    /// The packet's source address.
    pub client: Option<IpAddr>,
    /// The EDNS Client Subnet option (RFC 7871).
    pub subnet: Option<IpNet>,
}

impl Request {
    /// Parses the textual form shared by the CLI flags and the HTTP query.
    /// A subnet without a prefix length is taken as a single address.
    pub(crate) fn parse(
        name: &str,
        client: Option<&str>,
        subnet: Option<&str>,
    ) -> Result<Request, ExplainError> {
        let name = name.trim();
        if name != "@" {
            Name::from_ascii(name).map_err(|e| ExplainError::Name {
                value: name.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let client = client
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse::<IpAddr>().map_err(|_| ExplainError::Client {
                    value: c.to_owned(),
                })
            })
            .transpose()?;
        let subnet = subnet
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ExplainError::Subnet {
                        value: s.to_owned(),
                    })
            })
            .transpose()?;
        Ok(Request {
            name: name.to_owned(),
            client,
            subnet,
        })
    }
}

/// What the server does with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A `[[records]]` name: answered by policy.
    Steered,
    /// A name with records in the zone file.
    Static,
    /// A name that exists only because names exist below it (NODATA).
    EmptyNonTerminal,
    /// Inside the zone but absent: NXDOMAIN.
    Nxdomain,
    /// Outside the zone: REFUSED.
    OutOfZone,
}

/// The whole explanation; what `GET /explain` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Explanation {
    /// The name asked about, fully qualified.
    pub name: String,
    pub zone: String,
    pub kind: Kind,
    /// One sentence: what the server answers.
    pub summary: String,
    pub location: Location,
    pub geoip: GeoInfo,
    /// For steered names.
    pub steering: Option<Steering>,
    /// For static names: the records as the zone file holds them.
    pub static_records: Vec<String>,
    /// The wildcard the answer is synthesised from (RFC 4592), when the
    /// name itself does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<String>,
    /// The routing table version the explanation was computed from.
    pub snapshot_version: u64,
}

/// Where the client is taken to be, and from what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Location {
    /// "subnet" (the ECS option), "client" (the packet's source) or "none".
    pub source: String,
    /// The address classified, when there is one.
    pub address: Option<String>,
    /// The ECS subnet as the server sees it (host bits cleared).
    pub subnet: Option<String>,
}

/// What the GeoIP database says about the location.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GeoInfo {
    /// The database file; `None` when none is configured.
    pub database: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    /// The database network that contains the address.
    pub network: Option<String>,
    /// Why the lookup failed, when it did.
    pub error: Option<String>,
}

/// How a steered name's answer is chosen for this client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Steering {
    /// The record name relative to the origin.
    pub record: String,
    pub policy: String,
    pub ttl: u32,
    /// `geo` only: the list the client's location selects.
    pub preference: Option<Preference>,
    /// The residency block that restricts the candidates, if any.
    pub residency: Option<ResidencyRule>,
    /// Whether this policy is subject to residency at all (`region` is not).
    pub residency_applies: bool,
    /// Candidate regions in the order the policy considers them.
    pub candidates: Vec<Candidate>,
    /// The region answered; `None` for `weighted` (drawn per query).
    pub region: Option<String>,
    /// No candidate was healthy: answered as `on_all_down` says.
    pub fail_open: bool,
    /// The record's `on_all_down` ("fail_open", "nodata", "servfail").
    #[serde(default)]
    pub on_all_down: String,
    /// The addresses answered (A and AAAA); for `weighted`, every address a
    /// draw can give now.
    pub answer: Vec<String>,
    /// The ECS scope prefix of the response; `None` when the query carries
    /// no ECS option with a source prefix.
    pub ecs_scope: Option<u8>,
    /// How far the answer holds around the client (the scope the server
    /// would use if the client sent ECS), when the answer depends on it.
    pub client_scope: Option<u8>,
}

/// The preference list used by `geo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Preference {
    /// "network 10.20.0.0/16" (`[[networks]]`), "country JP", "continent
    /// EU" or "default".
    pub source: String,
    pub regions: Vec<String>,
}

/// A `[residency.NAME]` block that matched the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResidencyRule {
    pub block: String,
    /// What matched: "country GB", "continent EU" (or the database's
    /// verdict when the location could not be read).
    pub matched: String,
    pub regions: Vec<String>,
}

/// One candidate region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Candidate {
    pub region: String,
    pub priority: u32,
    pub weight: u32,
    pub healthy: bool,
    /// `weighted` only: this region's share of answers now, in percent.
    pub share_percent: Option<f64>,
    pub chosen: bool,
}

/// Explains `request` against `snap`. Names are resolved against the zone
/// origin: "@" is the apex, a name ending in "." or in the origin is taken
/// as fully qualified, anything else as relative.
pub(crate) fn explain(snap: &Snapshot, request: &Request) -> Result<Explanation, ExplainError> {
    let compiled = &snap.compiled;
    let config = snap.config();
    let origin = &compiled.zone.origin;
    let name = resolve(&request.name, origin)?;

    let location = locate(request);
    let address = match location.source.as_str() {
        "none" => None,
        _ => location.address.as_deref().and_then(|a| a.parse().ok()),
    };
    let geoip = geo_info(snap, address);

    // A name that does not exist may be answered from a wildcard: explain
    // that wildcard's answer.
    let wildcard = match compiled.kind_of(&name) {
        NameKind::Missing => compiled.wildcard_name_for(&name),
        _ => None,
    };
    let kind = compiled.kind_of(wildcard.as_ref().unwrap_or(&name));
    let zone_name = origin.to_string();
    let fqdn = name.to_string();
    let mut explanation = Explanation {
        name: fqdn.clone(),
        zone: zone_name.clone(),
        kind: Kind::OutOfZone,
        summary: String::new(),
        location,
        geoip,
        steering: None,
        static_records: Vec::new(),
        wildcard: wildcard.as_ref().map(ToString::to_string),
        snapshot_version: snap.version,
    };
    match kind {
        NameKind::Missing if origin.zone_of(&name) => {
            explanation.kind = Kind::Nxdomain;
            explanation.summary =
                format!("{fqdn} does not exist in zone {zone_name}: the server answers NXDOMAIN");
        }
        NameKind::Missing => {
            explanation.summary =
                format!("{fqdn} is outside zone {zone_name}: the server answers REFUSED");
        }
        NameKind::EmptyNonTerminal => {
            explanation.kind = Kind::EmptyNonTerminal;
            explanation.summary = format!(
                "{fqdn} has no records of its own (names exist below it): \
                 the server answers NODATA for every type"
            );
        }
        NameKind::Static => {
            explanation.kind = Kind::Static;
            explanation.static_records = compiled
                .zone
                .nodes
                .get(&wildcard.as_ref().unwrap_or(&name).to_lowercase())
                .into_iter()
                .flat_map(|n| n.values())
                .flatten()
                .map(ToString::to_string)
                .collect();
            explanation.summary = "static record from the zone file (same answer for every \
                                   client, whatever the health of regions)"
                .into();
        }
        NameKind::Steered { record } => {
            let record = &config.records[record];
            let steering = steer(snap, record.policy, address, request, &explanation.geoip);
            let steering = Steering {
                record: relative(&record.name, origin),
                ttl: record.ttl,
                on_all_down: record.on_all_down.as_str().to_owned(),
                ..steering
            };
            explanation.kind = Kind::Steered;
            let all_down = steering.fail_open && record.on_all_down != AllDown::FailOpen;
            explanation.summary = match &steering.region {
                _ if all_down => format!(
                    "{} policy: no candidate region is healthy, and on_all_down = {:?} \
                     answers {}",
                    steering.policy,
                    record.on_all_down.as_str(),
                    match record.on_all_down {
                        AllDown::ServFail => "SERVFAIL",
                        _ => "NODATA (NOERROR, no answer)",
                    }
                ),
                None if matches!(record.policy, Policy::Multivalue { .. }) => format!(
                    "multivalue policy answers every address of {} in a rotating order: {}{}",
                    steering
                        .candidates
                        .iter()
                        .filter(|c| c.chosen)
                        .map(|c| c.region.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    or_nothing(&steering.answer),
                    if steering.fail_open {
                        ", failing open"
                    } else {
                        ""
                    }
                ),
                Some(region) => format!(
                    "{} policy answers {} ({region}){}",
                    steering.policy,
                    or_nothing(&steering.answer),
                    if steering.fail_open {
                        ", failing open"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "{} policy draws one region per query by weight{}",
                    steering.policy,
                    if steering.fail_open {
                        ", failing open"
                    } else {
                        ""
                    }
                ),
            };
            if let Some(w) = &wildcard {
                explanation.summary = format!("from the wildcard {w}: {}", explanation.summary);
            }
            explanation.steering = Some(steering);
        }
    }
    if let (Some(w), Kind::Static) = (&wildcard, &explanation.kind) {
        explanation.summary = format!(
            "synthesised from the wildcard {w} of the zone file, with {fqdn} as owner \
             (same answer for every client)"
        );
    }
    Ok(explanation)
}

/// `text` as a fully qualified name in or around `origin`.
fn resolve(text: &str, origin: &Name) -> Result<Name, ExplainError> {
    let bad = |reason: String| ExplainError::Name {
        value: text.to_owned(),
        reason,
    };
    if text == "@" || text.is_empty() {
        return Ok(origin.to_lowercase());
    }
    let name = Name::from_ascii(text).map_err(|e| bad(e.to_string()))?;
    if name.is_fqdn() {
        return Ok(name.to_lowercase());
    }
    // "api.keiko.example.com" without the final dot is what people type
    // when they mean the fully qualified name; appending the origin again
    // would never exist.
    let mut absolute = name.clone();
    absolute.set_fqdn(true);
    if origin.zone_of(&absolute) {
        return Ok(absolute.to_lowercase());
    }
    name.append_domain(origin)
        .map(|n| n.to_lowercase())
        .map_err(|e| bad(e.to_string()))
}

/// The location the data plane would use: the ECS address when the option
/// has a source prefix, else the packet's source.
fn locate(request: &Request) -> Location {
    let subnet = request.subnet.map(|s| s.trunc());
    match (subnet, request.client) {
        (Some(s), _) if s.prefix_len() > 0 => Location {
            source: "subnet".into(),
            address: Some(s.addr().to_string()),
            subnet: Some(s.to_string()),
        },
        (s, Some(client)) => Location {
            source: "client".into(),
            address: Some(client.to_string()),
            subnet: s.map(|s| s.to_string()),
        },
        (s, None) => Location {
            source: "none".into(),
            address: None,
            subnet: s.map(|s| s.to_string()),
        },
    }
}

fn geo_info(snap: &Snapshot, address: Option<IpAddr>) -> GeoInfo {
    let db = snap.compiled.geo.as_deref();
    let mut info = GeoInfo {
        database: db.map(|d| d.path().display().to_string()),
        country: None,
        continent: None,
        network: None,
        error: None,
    };
    if let (Some(db), Some(ip)) = (db, address) {
        match db.locate(ip) {
            Ok(found) => {
                info.country = found.country;
                info.continent = found.continent;
                info.network = Some(found.network.to_string());
            }
            Err(e) => info.error = Some(e.to_string()),
        }
    }
    info
}

/// The policy's reasoning for one client. `record` and `ttl` are left for
/// the caller to fill in.
fn steer(
    snap: &Snapshot,
    policy: Policy,
    address: Option<IpAddr>,
    request: &Request,
    geo: &GeoInfo,
) -> Steering {
    let config = snap.config();
    let ip = address.unwrap_or(NO_LOCATION);
    let names = |ids: &[RegionId]| -> Vec<String> {
        ids.iter()
            .map(|&r| config.regions[r].name.clone())
            .collect()
    };
    // The draw is irrelevant to everything read here but the weighted
    // pick, which is reported as shares instead.
    let (choice, scope) = snap.steer(policy, ip, &mut |_| 0);
    let residency_applies = !matches!(policy, Policy::Region(_));
    let block = match policy {
        Policy::Region(_) => None,
        Policy::Geo => {
            let (class, _) = snap.geo_class(ip);
            snap.compiled
                .geo_classes
                .get(class)
                .and_then(|c| c.residency)
        }
        Policy::Failover | Policy::Weighted | Policy::Multivalue { .. } => snap.residency_of(ip).0,
    };
    let residency = block
        .and_then(|b| config.residency.get(b))
        .map(|b| ResidencyRule {
            block: b.name.clone(),
            matched: residency_reason(config, geo),
            regions: names(&b.regions),
        });
    let allowed = routing::allowed(config, block);

    let mut preference = None;
    let mut shares: Vec<(RegionId, f64)> = Vec::new();
    let mut fail_open = choice.fail_open;
    let mut set = None;
    let order: Vec<RegionId> = match policy {
        Policy::Region(r) => vec![r],
        Policy::Failover => allowed.clone(),
        Policy::Multivalue { .. } => {
            let (values, _) = snap.value_set(ip);
            set = Some(values.mask);
            allowed.clone()
        }
        Policy::Weighted => {
            let table = routing::weighted(config, &snap.healthy, block);
            fail_open = table.fail_open;
            shares = table.shares();
            allowed.clone()
        }
        Policy::Geo => {
            let (class, _) = snap.geo_class(ip);
            let class = snap.compiled.geo_classes.get(class);
            let list = class.map_or(&config.geoip.default, |c| &c.list);
            let network = class
                .and_then(|c| c.network)
                .and_then(|n| config.networks.get(n));
            preference = Some(Preference {
                source: match network {
                    Some(n) => format!("network {}", n.cidr),
                    None => list_source(config, geo),
                },
                regions: names(list),
            });
            routing::geo_order(config, list, block)
        }
    };
    let weighted = policy == Policy::Weighted;
    let candidates = order
        .iter()
        .map(|&r| {
            let region = &config.regions[r];
            let share = shares.iter().find(|s| s.0 == r).map(|s| s.1);
            Candidate {
                region: region.name.clone(),
                priority: region.priority,
                weight: region.weight,
                healthy: snap.healthy.get(r).copied().unwrap_or(false),
                share_percent: weighted.then(|| round1(share.unwrap_or(0.0))),
                chosen: if weighted {
                    share.is_some_and(|s| s > 0.0)
                } else if let Some(mask) = set {
                    mask & (1 << r) != 0
                } else {
                    r == choice.region
                },
            }
        })
        .collect();
    let addresses = |r: RegionId| -> Vec<String> { config.regions[r].answer_texts() };
    let (region, answer) = if let (Some(mask), Policy::Multivalue { max_answers }) = (set, policy) {
        let members = routing::members(config, mask);
        let take = usize::from(max_answers);
        let v4 = members
            .iter()
            .flat_map(|&r| &config.regions[r].ipv4)
            .take(take);
        let v6 = members
            .iter()
            .flat_map(|&r| &config.regions[r].ipv6)
            .take(take);
        (
            None,
            v4.map(ToString::to_string)
                .chain(v6.map(ToString::to_string))
                .collect(),
        )
    } else if weighted {
        (
            None,
            shares.iter().flat_map(|&(r, _)| addresses(r)).collect(),
        )
    } else {
        let Choice { region, .. } = choice;
        (Some(config.regions[region].name.clone()), addresses(region))
    };
    // The data plane sets the scope only for an ECS option with a source
    // prefix (RFC 7871 section 7.1.2: /0 gets scope 0 and the packet's
    // source is used).
    let ecs_scope = request.subnet.map(|s| {
        if s.prefix_len() > 0 {
            scope.unwrap_or(0)
        } else {
            0
        }
    });
    Steering {
        record: String::new(),
        policy: policy.as_str().to_owned(),
        ttl: 0,
        preference,
        residency,
        residency_applies,
        candidates,
        region,
        fail_open,
        on_all_down: String::new(),
        answer,
        ecs_scope,
        client_scope: address.and(scope),
    }
}

/// Why a residency block matched, in the terms the config uses.
fn residency_reason(config: &Config, geo: &GeoInfo) -> String {
    match routing::residency_block(config, geo.country.as_deref(), geo.continent.as_deref()) {
        Some((_, by)) => by.to_string(),
        None => "the GeoIP database places the client in it".into(),
    }
}

/// Which `[geoip]` list a location selects, as the table's build decides.
fn list_source(config: &Config, geo: &GeoInfo) -> String {
    routing::preference_list(config, geo.country.as_deref(), geo.continent.as_deref())
        .1
        .to_string()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn or_nothing(answer: &[String]) -> String {
    if answer.is_empty() {
        "no addresses".into()
    } else {
        answer.join(", ")
    }
}

#[cfg(test)]
mod tests;
