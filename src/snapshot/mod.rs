//! The routing table: an immutable snapshot of everything the data plane
//! answers from, swapped in whole by the control plane (through `arc-swap`).
//!
//! A snapshot has two layers. [`Compiled`] holds what changes only on load
//! or reload: the zone and steered answers pre-encoded to wire bytes, and the
//! compiled client maps (GeoIP and residency). On top of it, a [`Snapshot`]
//! holds what health changes: for every class of client, the region each
//! policy picks. A health verdict therefore rebuilds only a few small tables.
//! Nothing here locks, awaits or allocates on lookup.

mod build;
mod denial;
mod digest;
mod prepared;
pub mod routing;
mod signed;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::config::{AllDown, Config, Policy, RegionId};
use crate::geo::{ClientMap, GeoDb};
use crate::guard::cookie::CookieKeys;
use crate::guard::rrl::RateLimiter;
use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_NSEC, walk_name};
use crate::zone::Zone;
pub use build::{BuildError, relative};
pub use denial::Proof;
pub use prepared::Prepared;
use routing::{Choice, ValueSet, WeightTable};

/// The routing table as it is shared: the control plane swaps snapshots
/// in, the data plane loads the current one.
pub type Table = Arc<ArcSwap<Snapshot>>;

/// A client address no GeoIP database places anywhere: what status views
/// show as "no location".
pub const NO_LOCATION: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The load-time half of a snapshot.
pub struct Compiled {
    pub config: Arc<Config>,
    pub zone: Arc<Zone>,
    pub geo: Option<Arc<GeoDb>>,
    /// Lowercase wire form of the origin.
    origin: Box<[u8]>,
    /// Lowercase wire name to its entry in `nodes`.
    names: FxHashMap<Box<[u8]>, u32>,
    /// What lives at each name; the NSEC chain of a signed table points
    /// into it too, so a denial's walk of the chain ends at the entry
    /// without a second lookup.
    nodes: Box<[Node]>,
    nxdomain: Prepared,
    nodata: Prepared,
    /// SERVFAIL, for `on_all_down = "servfail"`.
    servfail: Prepared,
    /// Whether any name is a wildcard (`*.x`): only then do misses look
    /// for one.
    has_wildcards: bool,
    /// The NSEC chain, when the zone is signed.
    chain: Option<denial::Chain>,
    /// What the table's signatures are, when the zone is signed.
    pub dnssec: Option<crate::dnssec::Summary>,
    geo_map: ClientMap,
    residency_map: ClientMap,
    /// Geo classes: a preference list and the residency block (if any).
    pub geo_classes: Vec<GeoClass>,
    pub counters: Arc<AnswerCounters>,
    /// Digest of the inputs that decide answers (see [`digest`]).
    routing_inputs: u64,
    /// Response rate limiting, when `[rate_limit]` is set.
    pub rate_limiter: Option<RateLimiter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoClass {
    pub list: Vec<RegionId>,
    pub residency: Option<usize>,
    /// The `[[networks]]` entry whose list this is (None: from `[geoip]`).
    pub network: Option<usize>,
}

enum Node {
    /// Exists only because names exist below it: NODATA for every type.
    Empty,
    Static(StaticNode),
    Steered(SteeredNode),
    /// The steered apex: A and AAAA (and NSEC) from steering, every other
    /// type from the zone file.
    Apex(Box<(StaticNode, SteeredNode)>),
}

struct StaticNode {
    by_type: Box<[(u16, Prepared)]>,
    /// For types not in `by_type`; `None` means plain NODATA.
    other: Option<Prepared>,
    /// NODATA proven by this name's NSEC (signed zones); `None` means the
    /// zone's shared NODATA.
    nodata: Option<Prepared>,
    any: Prepared,
}

struct SteeredNode {
    record: usize,
    policy: Policy,
    on_all_down: AllDown,
    /// The NODATA of `on_all_down = "nodata"` when signed: proven by an
    /// NSEC without A and AAAA; unsigned, the zone's shared NODATA.
    down: Option<Prepared>,
    /// Indexed by region. Unsigned, shared by every steered name with the
    /// same TTL; signed, each name's own.
    answers: Arc<[RegionAnswers]>,
}

/// What a steered name answers when a region is chosen.
struct RegionAnswers {
    /// NODATA where the region has no such addresses.
    a: Prepared,
    aaaa: Prepared,
    /// NODATA for other types, proven by this region's NSEC (signed zones
    /// only; otherwise the zone's shared NODATA).
    other: Option<Prepared>,
    /// The NSEC RRset itself (signed zones only).
    nsec: Option<Prepared>,
    /// A CNAME region's answers for other types (CNAME itself, and the
    /// types of an in-zone target), checked before `other`.
    by_type: Box<[(u16, Prepared)]>,
}

/// What a name is in the table (for views that explain answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Not in the table: NXDOMAIN inside the zone, REFUSED outside.
    Missing,
    /// Exists only because names exist below it.
    EmptyNonTerminal,
    Static,
    /// Steered by `config.records[record]`.
    Steered {
        record: usize,
    },
}

/// What a query is answered with.
pub enum Lookup<'a> {
    Refused,
    Answer {
        prepared: &'a Prepared,
        /// ECS scope prefix when the answer depends on the client's address.
        scope: Option<u8>,
        /// For steered names: record index, region and how it was chosen.
        steered: Option<(usize, RegionId, Outcome)>,
        /// The NSEC records a DO answer adds for this query name (a
        /// denial that depends on it); none otherwise.
        proof: Proof<'a>,
        /// The record to start a multivalue answer's rotation at.
        rotate: u32,
    },
}

/// How a steered answer came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A healthy region (or the `region` policy's own).
    Chosen,
    /// No candidate was healthy: answered as if all were.
    FailOpen,
    /// No candidate was healthy: NODATA (`on_all_down = "nodata"`).
    NoData,
    /// No candidate was healthy: SERVFAIL (`on_all_down = "servfail"`).
    ServFail,
}

impl Outcome {
    /// Whether the answer carries a region's data (and counts for it).
    pub fn answered(self) -> bool {
        matches!(self, Outcome::Chosen | Outcome::FailOpen)
    }
}

impl<'a> Lookup<'a> {
    /// An answer written as encoded, with no NSEC records added.
    fn encoded(
        prepared: &'a Prepared,
        scope: Option<u8>,
        steered: Option<(usize, RegionId, Outcome)>,
    ) -> Lookup<'a> {
        Lookup::Answer {
            prepared,
            scope,
            steered,
            proof: Proof::default(),
            rotate: 0,
        }
    }
}

/// The whole routing table the data plane answers from.
pub struct Snapshot {
    pub compiled: Arc<Compiled>,
    /// Effective health of each region (probes and forced states combined).
    pub healthy: Box<[bool]>,
    /// Per residency class (0: none, i + 1: block i).
    failover: Box<[Choice]>,
    weighted: Box<[WeightTable]>,
    /// Per residency class: the regions multivalue names answer from.
    multivalue: Box<[ValueSet]>,
    /// Per geo class.
    geo: Box<[Choice]>,
    pub version: u64,
    /// Secrets for DNS Cookies; the control plane rotates them.
    pub cookies: Arc<CookieKeys>,
    /// Equal on every instance that answers alike.
    pub routing_version: String,
}

impl Compiled {
    /// What `name` (any case) is in the table.
    pub fn kind_of(&self, name: &hickory_proto::rr::Name) -> NameKind {
        match self.node(&build::wire(name)) {
            None => NameKind::Missing,
            Some(Node::Empty) => NameKind::EmptyNonTerminal,
            Some(Node::Static(_)) => NameKind::Static,
            Some(Node::Steered(node)) => NameKind::Steered {
                record: node.record,
            },
            Some(Node::Apex(both)) => NameKind::Steered {
                record: both.1.record,
            },
        }
    }
}

impl Snapshot {
    /// Routes `compiled` for the given region health, with cookie secrets
    /// from config (or fresh random ones).
    pub fn new(compiled: Arc<Compiled>, healthy: Vec<bool>, version: u64) -> Snapshot {
        let cookies = Arc::new(match compiled.config.server.cookie_secret {
            Some(current) => CookieKeys {
                current,
                previous: None,
            },
            None => CookieKeys::random(),
        });
        Snapshot::with_cookies(compiled, healthy, version, cookies)
    }

    pub fn with_cookies(
        compiled: Arc<Compiled>,
        healthy: Vec<bool>,
        version: u64,
        cookies: Arc<CookieKeys>,
    ) -> Snapshot {
        let config = &compiled.config;
        let residency_classes = 1 + config.residency.len();
        let block = |class: usize| class.checked_sub(1);
        let failover = (0..residency_classes)
            .map(|c| routing::failover(config, &healthy, block(c)))
            .collect();
        let weighted = (0..residency_classes)
            .map(|c| routing::weighted(config, &healthy, block(c)))
            .collect();
        let multivalue = (0..residency_classes)
            .map(|c| routing::multivalue(config, &healthy, block(c)))
            .collect();
        let geo = compiled
            .geo_classes
            .iter()
            .map(|g| routing::geo(config, &healthy, &g.list, g.residency))
            .collect();
        let routing_version = digest::routing_version(compiled.routing_inputs, &healthy);
        Snapshot {
            routing_version,
            healthy: healthy.into_boxed_slice(),
            failover,
            weighted,
            multivalue,
            geo,
            compiled,
            version,
            cookies,
        }
    }

    pub fn config(&self) -> &Config {
        &self.compiled.config
    }

    /// The answer for a lowercase wire-format `qname` and `qtype`, asked by
    /// `client`. `draw` supplies a uniform random number below its argument
    /// for weighted names.
    pub fn lookup(
        &self,
        qname: &[u8],
        qtype: u16,
        client: IpAddr,
        dnssec_ok: bool,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> Lookup<'_> {
        let c = &self.compiled;
        let found = c.node(qname);
        // A name with data carries its own proofs; only a denial for a DO
        // query needs the chain.
        if dnssec_ok
            && let Some(chain) = &c.chain
            && matches!(found, None | Some(Node::Empty))
        {
            return self.lookup_signed(chain, qname, qtype, client, draw);
        }
        if found.is_none()
            && let Some(node) = c.wildcard_for(qname)
        {
            // RFC 4592: synthesised from the wildcard, the owner the query
            // name.
            return self.answer_from(node, qtype, client, draw);
        }
        let Some(node) = found else {
            return if in_zone(qname, &c.origin) {
                Lookup::encoded(&c.nxdomain, None, None)
            } else {
                Lookup::Refused
            };
        };
        self.answer_from(node, qtype, client, draw)
    }

    /// A DO query to a signed table for a name without data: one walk of
    /// the NSEC chain finds the empty non-terminal, the wildcard that
    /// answers for the name, or the proof that neither exists.
    fn lookup_signed<'a>(
        &'a self,
        chain: &'a denial::Chain,
        qname: &[u8],
        qtype: u16,
        client: IpAddr,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> Lookup<'a> {
        let c = &self.compiled;
        let (mut answer, nsec) = match chain.find(qname) {
            None => return Lookup::Refused,
            Some(denial::Found::Entry { entry, proof }) => match c.nodes.get(entry as usize) {
                Some(node) => (self.answer_from(node, qtype, client, draw), proof),
                None => return Lookup::Refused,
            },
            Some(denial::Found::Missing(proof)) => {
                (Lookup::encoded(&c.nxdomain, None, None), proof)
            }
        };
        if let Lookup::Answer { proof, .. } = &mut answer {
            *proof = nsec;
        }
        answer
    }

    fn answer_from<'a>(
        &'a self,
        node: &'a Node,
        qtype: u16,
        client: IpAddr,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> Lookup<'a> {
        let c = &self.compiled;
        let answer = Lookup::encoded;
        match node {
            Node::Empty => answer(&c.nodata, None, None),
            Node::Static(s) => answer(self.static_answer(s, qtype), None, None),
            Node::Steered(s) => self.steered_answer(s, qtype, client, draw),
            Node::Apex(both) => match qtype {
                TYPE_A | TYPE_AAAA | TYPE_NSEC => self.steered_answer(&both.1, qtype, client, draw),
                _ => answer(self.static_answer(&both.0, qtype), None, None),
            },
        }
    }

    fn static_answer<'a>(&'a self, s: &'a StaticNode, qtype: u16) -> &'a Prepared {
        let c = &self.compiled;
        match qtype {
            TYPE_ANY => &s.any,
            _ => s
                .by_type
                .iter()
                .find(|(t, _)| *t == qtype)
                .map(|(_, p)| p)
                .or(s.other.as_ref())
                .or(s.nodata.as_ref())
                .unwrap_or(&c.nodata),
        }
    }

    fn steered_answer<'a>(
        &'a self,
        s: &'a SteeredNode,
        qtype: u16,
        client: IpAddr,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> Lookup<'a> {
        let c = &self.compiled;
        let answer = Lookup::encoded;
        let (choice, scope, index) = match s.policy {
            Policy::Multivalue { .. } => {
                let (set, scope) = self.value_set(client);
                let choice = Choice {
                    region: set.first,
                    fail_open: set.fail_open,
                };
                (choice, scope, set.mask)
            }
            _ => {
                let (choice, scope) = self.steer(s.policy, client, draw);
                (choice, scope, choice.region)
            }
        };
        let outcome = match (choice.fail_open, s.on_all_down) {
            (false, _) => Outcome::Chosen,
            (true, AllDown::FailOpen) => Outcome::FailOpen,
            (true, AllDown::NoData) => {
                let nodata = s.down.as_ref().unwrap_or(&c.nodata);
                return answer(
                    nodata,
                    scope,
                    Some((s.record, choice.region, Outcome::NoData)),
                );
            }
            (true, AllDown::ServFail) => {
                return answer(
                    &c.servfail,
                    scope,
                    Some((s.record, choice.region, Outcome::ServFail)),
                );
            }
        };
        let Some(r) = s.answers.get(index) else {
            return answer(&c.servfail, scope, None);
        };
        let nodata = r.other.as_ref().unwrap_or(&c.nodata);
        let prepared = match qtype {
            TYPE_A => &r.a,
            TYPE_AAAA => &r.aaaa,
            TYPE_ANY if r.a.answer_count > 0 => &r.a,
            TYPE_ANY => &r.aaaa,
            TYPE_NSEC => r.nsec.as_ref().unwrap_or(nodata),
            _ => r
                .by_type
                .iter()
                .find(|(t, _)| *t == qtype)
                .map_or(nodata, |(_, p)| p),
        };
        let rotate = match prepared.rotation {
            Some(rotation) => draw(u32::from(rotation.count)),
            None => 0,
        };
        Lookup::Answer {
            prepared,
            scope,
            steered: Some((s.record, choice.region, outcome)),
            proof: Proof::default(),
            rotate,
        }
    }

    /// The region a policy picks for `client`, and the ECS scope when the
    /// pick depends on the client.
    pub fn steer(
        &self,
        policy: Policy,
        client: IpAddr,
        draw: &mut dyn FnMut(u32) -> u32,
    ) -> (Choice, Option<u8>) {
        let c = &self.compiled;
        let by_residency = |class: u32| -> usize { (class as usize).min(self.failover.len() - 1) };
        match policy {
            Policy::Region(region) => (
                Choice {
                    region,
                    fail_open: false,
                },
                None,
            ),
            Policy::Multivalue { .. } => {
                let (set, scope) = self.value_set(client);
                (
                    Choice {
                        region: set.first,
                        fail_open: set.fail_open,
                    },
                    scope,
                )
            }
            Policy::Failover | Policy::Weighted => {
                let (class, scope) = if c.config.has_residency() {
                    let (class, prefix) = c.residency_map.lookup(client);
                    (by_residency(class), Some(prefix))
                } else {
                    (0, None)
                };
                let choice = if policy == Policy::Failover {
                    self.failover[class]
                } else {
                    let table = &self.weighted[class];
                    Choice {
                        region: table.pick(draw),
                        fail_open: table.fail_open,
                    }
                };
                (choice, scope)
            }
            Policy::Geo => {
                let (class, prefix) = c.geo_map.lookup(client);
                let choice = self.geo.get(class as usize).or(self.geo.first()).copied();
                (
                    choice.unwrap_or(Choice {
                        region: 0,
                        fail_open: true,
                    }),
                    Some(prefix),
                )
            }
        }
    }

    /// The regions multivalue names answer `client` from, and the ECS
    /// scope when that depends on the client (residency).
    pub fn value_set(&self, client: IpAddr) -> (ValueSet, Option<u8>) {
        let c = &self.compiled;
        if c.config.has_residency() {
            let (class, prefix) = c.residency_map.lookup(client);
            let class = (class as usize).min(self.multivalue.len() - 1);
            (self.multivalue[class], Some(prefix))
        } else {
            (self.multivalue[0], None)
        }
    }

    /// The failover pick for a client with no known location (status views).
    pub fn failover_default(&self) -> Choice {
        self.failover[0]
    }

    /// Effective weighted shares for clients outside residency blocks.
    pub fn weighted_default(&self) -> &WeightTable {
        &self.weighted[0]
    }

    /// The geo pick for each geo class.
    pub fn geo_choices(&self) -> &[Choice] {
        &self.geo
    }

    /// Classifies `ip` as the geo policy does: class index and scope prefix.
    pub fn geo_class(&self, ip: IpAddr) -> (usize, u8) {
        let (class, prefix) = self.compiled.geo_map.lookup(ip);
        (class as usize, prefix)
    }

    /// The residency block of `ip`, if any, and the scope prefix.
    pub fn residency_of(&self, ip: IpAddr) -> (Option<usize>, u8) {
        let (class, prefix) = self.compiled.residency_map.lookup(ip);
        ((class as usize).checked_sub(1), prefix)
    }
}

impl Compiled {
    /// The wildcard that answers `name` (any case), a name not in the
    /// table, as [`Snapshot::lookup`] finds it (views that explain answers).
    pub fn wildcard_name_for(
        &self,
        name: &hickory_proto::rr::Name,
    ) -> Option<hickory_proto::rr::Name> {
        self.wildcard_for(&build::wire(name))?;
        let mut parent = name.to_lowercase().base_name();
        loop {
            if self.names.contains_key(&build::wire(&parent)) {
                return parent.prepend_label("*").ok();
            }
            if parent.is_root() {
                return None;
            }
            parent = parent.base_name();
        }
    }

    /// The wildcard node that answers lowercase wire `qname`, a name not in
    /// the table (RFC 4592 4.1): `*` below its closest encloser (the
    /// longest ancestor that exists, empty non-terminals included), if
    /// there is one. Only names inside the zone can match.
    fn wildcard_for(&self, qname: &[u8]) -> Option<&Node> {
        if !self.has_wildcards {
            return None;
        }
        let mut at = 0;
        while let Some(&len) = qname.get(at) {
            if len == 0 || len & 0xc0 != 0 {
                return None;
            }
            at += 1 + usize::from(len);
            let suffix = qname.get(at..)?;
            if suffix.len() < self.origin.len() {
                return None;
            }
            if self.names.contains_key(suffix) {
                let mut wildcard = [0u8; crate::wire::MAX_NAME + 2];
                let end = 2 + suffix.len();
                wildcard.get_mut(..2)?.copy_from_slice(b"\x01*");
                wildcard.get_mut(2..end)?.copy_from_slice(suffix);
                return self.node(&wildcard[..end]);
            }
        }
        None
    }

    fn node(&self, name: &[u8]) -> Option<&Node> {
        self.names
            .get(name)
            .and_then(|&i| self.nodes.get(i as usize))
    }

    /// Length of the origin in wire form.
    pub fn origin_len(&self) -> usize {
        self.origin.len()
    }

    /// Number of names the data plane answers for (static, steered, empty).
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Approximate heap bytes held by the compiled answers and client maps.
    pub fn memory_bytes(&self) -> usize {
        let one = |p: &Prepared| std::mem::size_of::<Prepared>() + p.body.len();
        let prepared = |p: &Prepared| one(p) + p.signed.as_deref().map_or(0, one);
        let static_bytes = |s: &StaticNode| {
            s.by_type
                .iter()
                .map(|(_, p)| 2 + prepared(p))
                .sum::<usize>()
                + s.other.as_ref().map_or(0, prepared)
                + s.nodata.as_ref().map_or(0, prepared)
                + prepared(&s.any)
        };
        let keys: usize = self.names.keys().map(|k| k.len() + 4).sum();
        let nodes: usize = keys
            + self
                .nodes
                .iter()
                .map(|n| {
                    std::mem::size_of::<Node>()
                        + match n {
                            Node::Empty => 0,
                            Node::Static(s) => static_bytes(s),
                            Node::Apex(both) => static_bytes(&both.0),
                            Node::Steered(_) => 0,
                        }
                })
                .sum::<usize>();
        let mut shared: Vec<*const RegionAnswers> = Vec::new();
        let steered: usize = self
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Steered(s) => Some(s),
                Node::Apex(both) => Some(&both.1),
                _ => None,
            })
            .filter_map(|s| match s {
                s if !shared.contains(&s.answers.as_ptr()) => {
                    shared.push(s.answers.as_ptr());
                    Some(
                        s.answers
                            .iter()
                            .map(|r| {
                                prepared(&r.a)
                                    + prepared(&r.aaaa)
                                    + r.other.as_ref().map_or(0, prepared)
                                    + r.nsec.as_ref().map_or(0, prepared)
                                    + r.by_type.iter().map(|(_, p)| prepared(p)).sum::<usize>()
                            })
                            .sum::<usize>(),
                    )
                }
                _ => None,
            })
            .sum();
        nodes
            + steered
            + self.chain.as_ref().map_or(0, |c| c.memory_bytes())
            + self.geo_map.memory_bytes()
            + self.residency_map.memory_bytes()
            + self.counters.memory_bytes()
    }
}

/// Whether lowercase wire name `name` is `origin` or below it.
fn in_zone(name: &[u8], origin: &[u8]) -> bool {
    let Some(cut) = name.len().checked_sub(origin.len()) else {
        return false;
    };
    let mut on_boundary = false;
    walk_name(name, 0, |at| on_boundary |= at == cut).is_some()
        && on_boundary
        && name[cut..] == *origin
}

/// Answers served per record and region, counted by each worker in its own
/// row so cores never contend; summed when metrics are scraped.
pub struct AnswerCounters {
    pub records: Vec<String>,
    pub regions: Vec<String>,
    rows: Box<[Box<[AtomicU64]>]>,
}

impl AnswerCounters {
    pub fn new(records: Vec<String>, regions: Vec<String>, workers: usize) -> AnswerCounters {
        let width = records.len() * regions.len();
        let rows = (0..workers.max(1))
            .map(|_| (0..width).map(|_| AtomicU64::new(0)).collect())
            .collect();
        AnswerCounters {
            records,
            regions,
            rows,
        }
    }

    pub fn count(&self, worker: usize, record: usize, region: RegionId) {
        let row = &self.rows[worker % self.rows.len()];
        if let Some(cell) = row.get(record * self.regions.len() + region) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Heap bytes: the matrix and the names it is labelled with.
    pub fn memory_bytes(&self) -> usize {
        let cells: usize = self.rows.iter().map(|r| r.len()).sum();
        let names: usize = self
            .records
            .iter()
            .chain(&self.regions)
            .map(|n| n.len() + std::mem::size_of::<String>())
            .sum();
        cells * std::mem::size_of::<AtomicU64>()
            + self.rows.len() * std::mem::size_of::<Box<[AtomicU64]>>()
            + names
    }

    /// (record, region, total) for every pair.
    pub fn totals(&self) -> Vec<(&str, &str, u64)> {
        let mut out = Vec::new();
        for (ri, record) in self.records.iter().enumerate() {
            for (gi, region) in self.regions.iter().enumerate() {
                let i = ri * self.regions.len() + gi;
                let total = self.rows.iter().map(|r| r[i].load(Ordering::Relaxed)).sum();
                out.push((record.as_str(), region.as_str(), total));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
