//! Compiling config, zone and GeoIP database into the load-time half of a
//! snapshot: names to pre-encoded answers, and clients to classes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;

use super::prepared::Sections;
use super::routing;
use super::signed::{self, Encoder, Signing};
use super::{
    AnswerCounters, Compiled, GeoClass, Node, Prepared, RegionAnswers, StaticNode, SteeredNode,
};
use crate::config::{AllDown, Config, Policy, RegionId};
use crate::dnssec::{SignError, Signer};
use crate::geo::{ClientMap, GeoDb, GeoError};
use crate::guard::rrl::RateLimiter;
use crate::wire::{NOERROR, NXDOMAIN};
use crate::zone::Zone;

/// Longest CNAME chain followed inside the zone.
const MAX_CHAIN: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("cannot encode {name} {rtype}: {source}")]
    Encode {
        name: String,
        rtype: RecordType,
        source: Box<ProtoError>,
    },
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Compiled {
    /// Compiles everything the data plane needs that does not depend on
    /// health, unsigned. `workers` sizes the per-worker counters.
    pub fn build(
        config: Arc<Config>,
        zone: Arc<Zone>,
        geo: Option<Arc<GeoDb>>,
        workers: usize,
    ) -> Result<Compiled, BuildError> {
        Compiled::build_signed(config, zone, geo, workers, None, 0)
    }

    /// As [`Compiled::build`], signing every answer with `signer` when
    /// given (the zone's `[dnssec]`), at `now` (Unix seconds).
    pub fn build_signed(
        config: Arc<Config>,
        zone: Arc<Zone>,
        geo: Option<Arc<GeoDb>>,
        workers: usize,
        signer: Option<&mut Signer>,
        now: u32,
    ) -> Result<Compiled, BuildError> {
        let negative = zone_negative_soa(&zone);
        let mut signing = match signer {
            Some(signer) => {
                signer.begin(now);
                Some(Signing::new(signer, &zone, &config, &negative)?)
            }
            None => None,
        };
        let mut enc = Encoder {
            signing: signing.as_mut(),
        };
        let nxdomain = enc.negative(NXDOMAIN, &negative, &zone.origin, &[])?;
        let nodata = enc.negative(NOERROR, &negative, &zone.origin, &[])?;

        let mut names: FxHashMap<Box<[u8]>, Node> = FxHashMap::default();
        let steered: BTreeSet<&Name> = config.records.iter().map(|r| &r.name).collect();
        // Every name that exists: with data, steered, or an empty
        // non-terminal above them.
        let mut existing: rustc_hash::FxHashSet<Box<[u8]>> = rustc_hash::FxHashSet::default();
        for name in zone
            .nodes
            .keys()
            .chain(config.records.iter().map(|r| &r.name))
        {
            let mut at = name.clone();
            loop {
                existing.insert(wire(&at));
                if at == zone.origin || !zone.origin.zone_of(&at) || at.is_root() {
                    break;
                }
                at = at.base_name();
            }
        }
        let exists = |n: &[u8]| existing.contains(n);
        for name in zone.nodes.keys() {
            let node = static_node(&mut enc, &zone, name, &negative, &steered)?;
            names.insert(wire(name), Node::Static(node));
        }
        // Unsigned, a steered answer's owner is always a pointer to the
        // question, so its bytes depend only on region and TTL: encode
        // each once. Signed, its RRSIGs cover the owner: one per name.
        let mut by_ttl: HashMap<(u32, Option<u8>), Arc<[RegionAnswers]>> = HashMap::new();
        for (index, record) in config.records.iter().enumerate() {
            let max_answers = match record.policy {
                Policy::Multivalue { max_answers } => Some(max_answers),
                _ => None,
            };
            // A CNAME target may be compressed against the question, so a
            // record with CNAME regions has answers of its own.
            let own = config.regions.iter().any(|r| r.cname.is_some()) || record.name.is_wildcard();
            let key = (
                if own {
                    u32::MAX - index as u32
                } else {
                    record.ttl
                },
                max_answers,
            );
            let answers = match by_ttl.get(&key) {
                Some(a) if !enc.signed() && !own => a.clone(),
                _ => {
                    let a: Arc<[RegionAnswers]> = match max_answers {
                        Some(max) => {
                            value_answers(&mut enc, &config, &zone, index, &negative, max)?
                        }
                        None => {
                            region_answers(&mut enc, &config, &zone, index, &negative, &exists)?
                        }
                    }
                    .into();
                    by_ttl.insert(key, a.clone());
                    a
                }
            };
            let down = match (&mut enc.signing, record.on_all_down) {
                (Some(s), AllDown::NoData) => {
                    // No A or AAAA: at the steered apex, the zone file's types.
                    let types = match zone.nodes.contains_key(&record.name) {
                        true => signed::static_types(&zone, &record.name, &zone.origin),
                        false => BTreeSet::new(),
                    };
                    let chunk = s.nsec_chunk(&record.name, types)?;
                    Some(enc.negative(NOERROR, &negative, &zone.origin, &[&chunk])?)
                }
                _ => None,
            };
            let node = SteeredNode {
                record: index,
                policy: record.policy,
                on_all_down: record.on_all_down,
                down,
                answers,
            };
            let key = wire(&record.name);
            // The steered apex: A and AAAA from steering, the rest static.
            let node = match names.remove(&key) {
                Some(Node::Static(apex)) => Node::Apex(Box::new((apex, node))),
                _ => Node::Steered(node),
            };
            names.insert(key, node);
        }
        let all: Vec<Name> = zone
            .nodes
            .keys()
            .chain(config.records.iter().map(|r| &r.name))
            .cloned()
            .collect();
        for name in all {
            let mut parent = name.base_name();
            while zone.origin.zone_of(&parent) && parent != name {
                names.entry(wire(&parent)).or_insert(Node::Empty);
                if parent == zone.origin {
                    break;
                }
                parent = parent.base_name();
            }
        }
        let mut entries: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
        let nodes: Box<[Node]> = names
            .into_iter()
            .enumerate()
            .map(|(i, (name, node))| {
                entries.insert(name, i as u32);
                node
            })
            .collect();
        let (chain, dnssec) = match signing {
            Some(s) => {
                let (mut chain, summary) = s.finish();
                chain.bind(|name| entries.get(name).copied());
                (Some(chain), Some(summary))
            }
            None => (None, None),
        };

        let (geo_classes, geo_map, residency_map) = classify(&config, geo.as_deref())?;
        let counters = Arc::new(AnswerCounters::new(
            config
                .records
                .iter()
                .map(|r| relative(&r.name, &zone.origin))
                .collect(),
            config.regions.iter().map(|r| r.name.clone()).collect(),
            workers,
        ));
        let rate_limiter = config.rate_limit.as_ref().map(RateLimiter::new);
        Ok(Compiled {
            routing_inputs: super::digest::routing_inputs(&config, &zone, geo.as_deref()),
            rate_limiter,
            origin: wire(&zone.origin),
            names: entries,
            nodes,
            nxdomain,
            nodata,
            servfail: super::Prepared::servfail(),
            has_wildcards: zone
                .nodes
                .keys()
                .chain(config.records.iter().map(|r| &r.name))
                .any(Name::is_wildcard),
            chain,
            dnssec,
            geo_map,
            residency_map,
            geo_classes,
            counters,
            config,
            zone,
            geo,
        })
    }
}

/// Lowercase uncompressed wire form of a name.
pub(crate) fn wire(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.to_lowercase().iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.into_boxed_slice()
}

/// A record name relative to the origin, as operators write it.
pub fn relative(name: &Name, origin: &Name) -> String {
    // Every label, a wildcard's `*` too (which `num_labels` leaves out).
    let labels = name.iter().count().saturating_sub(origin.iter().count());
    let rel: Vec<String> = name
        .iter()
        .take(labels)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    if rel.is_empty() {
        "@".into()
    } else {
        rel.join(".")
    }
}

/// The SOA as negative answers carry it: TTL min(SOA TTL, MINIMUM) (RFC 2308).
fn zone_negative_soa(zone: &Zone) -> Record {
    let mut soa = zone.soa.clone();
    soa.ttl = zone.negative_ttl();
    soa
}

fn static_node(
    enc: &mut Encoder<'_, '_>,
    zone: &Zone,
    name: &Name,
    negative: &Record,
    steered: &BTreeSet<&Name>,
) -> Result<StaticNode, BuildError> {
    let mut node = zone.nodes[name].clone();
    let mut nodata = None;
    if let Some(signing) = enc.signing.as_deref() {
        if *name == zone.origin {
            node.extend(signing.apex_records(name, zone.soa.ttl)?);
        }
        let types = signed::static_types(zone, name, &zone.origin);
        node.insert(RecordType::NSEC, vec![signing.nsec_record(name, types)]);
        let own: Vec<Box<[u8]>> = signing.nsec_of(name).map(Box::from).into_iter().collect();
        let own: Vec<&[u8]> = own.iter().map(|b| &b[..]).collect();
        nodata = Some(enc.negative(NOERROR, negative, &zone.origin, &own)?);
    }
    let node = &node;
    if let Some(cname) = node.get(&RecordType::CNAME) {
        // Follow the chain inside the zone; a steered or outside target is
        // left for the resolver to chase, so its answer stays live.
        let mut chain: Vec<&Record> = cname.iter().collect();
        let mut target_node = None;
        let mut missing = None;
        while let Some(RData::CNAME(next)) = chain.last().map(|r| &r.data) {
            let next = next.0.to_lowercase();
            if chain.len() > MAX_CHAIN || !zone.origin.zone_of(&next) || steered.contains(&next) {
                break;
            }
            match zone.nodes.get(&next) {
                Some(n) => match n.get(&RecordType::CNAME) {
                    Some(more) if !chain.iter().any(|r| r.name == next) => {
                        chain.extend(more.iter())
                    }
                    Some(_) => break,
                    None => {
                        target_node = Some((next, n));
                        break;
                    }
                },
                None => {
                    missing = Some(next);
                    break;
                }
            }
        }
        let mut by_type = vec![(
            u16::from(RecordType::CNAME),
            enc.encode(
                name,
                RecordType::CNAME,
                NOERROR,
                &Sections {
                    answers: cname.iter().collect(),
                    ..Default::default()
                },
                &[],
            )?,
        )];
        if let Some(nsec) = node.get(&RecordType::NSEC) {
            let sections = Sections {
                answers: nsec.iter().collect(),
                ..Default::default()
            };
            by_type.push((
                u16::from(RecordType::NSEC),
                enc.encode(name, RecordType::NSEC, NOERROR, &sections, &[])?,
            ));
        }
        if let Some((_, target)) = target_node {
            for (rtype, records) in target {
                let mut answers = chain.clone();
                answers.extend(records.iter());
                by_type.push((
                    u16::from(*rtype),
                    enc.encode(
                        name,
                        *rtype,
                        NOERROR,
                        &Sections {
                            answers,
                            ..Default::default()
                        },
                        &[],
                    )?,
                ));
            }
        }
        // What proves the tail of the chain negative: the target's own
        // NSEC (no such type), or the NSECs denying that it exists.
        let proof: Vec<Box<[u8]>> = match (&enc.signing, &target_node, &missing) {
            (Some(s), Some((target, _)), _) => {
                s.nsec_of(target).map(Box::from).into_iter().collect()
            }
            (Some(s), None, Some(target)) => s.nxdomain_proof(target),
            _ => Vec::new(),
        };
        let proof: Vec<&[u8]> = proof.iter().map(|b| &b[..]).collect();
        let negative_tail = target_node.is_some() || missing.is_some();
        let other = Sections {
            answers: chain.clone(),
            authority: if negative_tail {
                vec![negative]
            } else {
                vec![]
            },
            additional: vec![],
        };
        let rcode = if missing.is_some() { NXDOMAIN } else { NOERROR };
        let other = enc.encode(name, RecordType::A, rcode, &other, &proof)?;
        let any = enc.encode(
            name,
            RecordType::ANY,
            NOERROR,
            &Sections {
                answers: chain,
                ..Default::default()
            },
            &[],
        )?;
        return Ok(StaticNode {
            by_type: by_type.into_boxed_slice(),
            other: Some(other),
            nodata: None,
            any,
        });
    }

    let mut by_type = Vec::with_capacity(node.len());
    for (rtype, records) in node {
        let additional = glue(zone, records);
        let sections = Sections {
            answers: records.iter().collect(),
            authority: vec![],
            additional,
        };
        by_type.push((
            u16::from(*rtype),
            enc.encode(name, *rtype, NOERROR, &sections, &[])?,
        ));
    }
    // RFC 8482: answer ANY with one RRset, the smallest useful one first.
    let any = node
        .iter()
        .find(|(t, _)| matches!(t, RecordType::A | RecordType::AAAA))
        .or_else(|| node.iter().next())
        .map(|(_, records)| Sections {
            answers: records.iter().collect(),
            ..Default::default()
        })
        .unwrap_or_default();
    let any = enc.encode(name, RecordType::ANY, NOERROR, &any, &[])?;
    Ok(StaticNode {
        by_type: by_type.into_boxed_slice(),
        other: None,
        nodata,
        any,
    })
}

/// In-zone addresses of NS, MX and SRV targets, for the additional section.
fn glue<'z>(zone: &'z Zone, records: &[Record]) -> Vec<&'z Record> {
    let mut out = Vec::new();
    for record in records {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        if let Some(node) = zone.nodes.get(&target.to_lowercase()) {
            for t in [RecordType::A, RecordType::AAAA] {
                out.extend(node.get(&t).into_iter().flatten());
            }
        }
    }
    out
}

/// A and AAAA answers of every region for record `index` (and, signed,
/// its NODATA and NSEC answers with that region's types). A CNAME region
/// answers its CNAME for every type, followed in the zone when the target
/// is a static name there.
fn region_answers(
    enc: &mut Encoder<'_, '_>,
    config: &Config,
    zone: &Zone,
    index: usize,
    negative: &Record,
    exists: &dyn Fn(&[u8]) -> bool,
) -> Result<Vec<RegionAnswers>, BuildError> {
    let record = &config.records[index];
    let name = &record.name;
    let origin = &config.zone.origin;
    let mut answers = Vec::with_capacity(config.regions.len());
    for (region_id, region) in config.regions.iter().enumerate() {
        // Signed, NODATA proves itself with this region's own NSEC: the
        // types that answer when this region is the one chosen (at the
        // steered apex, with the zone file's types there).
        let (own_nsec, nsec_answer) = match enc.signing.as_deref_mut() {
            Some(s) => {
                let mut types = signed::steered_types(config, index, Some(region_id));
                if zone.nodes.contains_key(name) {
                    types.extend(signed::static_types(zone, name, &zone.origin));
                }
                let chunk = s.nsec_chunk(name, types.clone())?;
                (Some(chunk), Some(s.nsec_record(name, types)))
            }
            None => (None, None),
        };
        let nsec = match nsec_answer {
            Some(nsec) => {
                let sections = Sections {
                    answers: vec![&nsec],
                    ..Default::default()
                };
                Some(enc.encode(name, RecordType::NSEC, NOERROR, &sections, &[])?)
            }
            None => None,
        };
        if let Some(target) = &region.cname {
            let answer = cname_answers(enc, config, zone, record, target, negative, exists)?;
            answers.push(RegionAnswers { nsec, ..answer });
            continue;
        }
        let proof: Vec<&[u8]> = own_nsec.as_deref().into_iter().collect();
        let (a, aaaa) = address_records(name, record.ttl, &region.ipv4, &region.ipv6);
        let mut one = |qtype: RecordType, records: &[Record]| {
            // These bytes serve names of every length: the NODATA SOA is
            // one relocated per question, like every negative answer's.
            if records.is_empty() {
                return enc.negative(NOERROR, negative, origin, &proof);
            }
            let sections = Sections {
                answers: records.iter().collect(),
                ..Default::default()
            };
            enc.encode(name, qtype, NOERROR, &sections, &[])
        };
        let a = one(RecordType::A, &a)?;
        let aaaa = one(RecordType::AAAA, &aaaa)?;
        let other = match &nsec {
            Some(_) => Some(enc.negative(NOERROR, negative, origin, &proof)?),
            None => None,
        };
        answers.push(RegionAnswers {
            a,
            aaaa,
            other,
            nsec,
            by_type: Box::new([]),
        });
    }
    Ok(answers)
}

/// What a steered name answers when a CNAME region is chosen: the CNAME
/// for every type, and when the target is a static name of the zone, its
/// chain and data in the same answer (a steered or outside target is left
/// for the resolver, as for static CNAMEs).
fn cname_answers(
    enc: &mut Encoder<'_, '_>,
    config: &Config,
    zone: &Zone,
    record: &crate::config::Record,
    target: &Name,
    negative: &Record,
    exists: &dyn Fn(&[u8]) -> bool,
) -> Result<RegionAnswers, BuildError> {
    let name = &record.name;
    let cname = Record::from_rdata(
        name.clone(),
        record.ttl,
        RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone())),
    );
    let steered = |n: &Name| config.records.iter().any(|r| r.name == *n);
    // The chain inside the zone, ending at a node with data (or nowhere).
    let mut chain: Vec<&Record> = vec![&cname];
    let mut end = None;
    let mut missing = None;
    let mut next = target.to_lowercase();
    while zone.origin.zone_of(&next) && !steered(&next) && chain.len() <= MAX_CHAIN {
        match zone.nodes.get(&next) {
            Some(node) => match node.get(&RecordType::CNAME).and_then(|c| c.first()) {
                Some(more) if !chain.iter().any(|r| r.name == next) => {
                    chain.push(more);
                    match &more.data {
                        RData::CNAME(t) => next = t.0.to_lowercase(),
                        _ => break,
                    }
                }
                Some(_) => break,
                None => {
                    end = Some((next.clone(), node));
                    break;
                }
            },
            None => {
                if exists(&wire(&next)) {
                    // An empty non-terminal: NODATA for every type.
                    end = Some((next.clone(), &EMPTY_NODE));
                } else {
                    missing = Some(next.clone());
                }
                break;
            }
        }
    }
    // What proves the tail negative, signed: the target's own NSEC, or the
    // NSECs denying that it exists.
    let proof: Vec<Box<[u8]>> = match (&enc.signing, &end, &missing) {
        (Some(s), Some((t, _)), _) => s.nsec_of(t).map(Box::from).into_iter().collect(),
        (Some(s), None, Some(t)) => s.nxdomain_proof(t),
        _ => Vec::new(),
    };
    let proof: Vec<&[u8]> = proof.iter().map(|b| &b[..]).collect();
    let negative_tail = end.is_some() || missing.is_some();
    let rcode = if missing.is_some() { NXDOMAIN } else { NOERROR };
    let mut for_type = |qtype: RecordType| -> Result<Prepared, BuildError> {
        let data = end.as_ref().and_then(|(_, node)| node.get(&qtype));
        let mut answers = chain.clone();
        let authority = match data {
            Some(records) => {
                answers.extend(records.iter());
                vec![]
            }
            None if negative_tail => vec![negative],
            None => vec![],
        };
        let (rcode, proof) = match data {
            Some(_) => (NOERROR, &[][..]),
            None => (rcode, &proof[..]),
        };
        let sections = Sections {
            answers,
            authority,
            additional: vec![],
        };
        enc.encode(name, qtype, rcode, &sections, proof)
    };
    let a = for_type(RecordType::A)?;
    let aaaa = for_type(RecordType::AAAA)?;
    let mut by_type = Vec::new();
    if let Some((_, node)) = &end {
        for rtype in node
            .keys()
            .filter(|t| !matches!(t, RecordType::A | RecordType::AAAA))
        {
            by_type.push((u16::from(*rtype), for_type(*rtype)?));
        }
    }
    let tail = if negative_tail {
        Some(for_type(RecordType::NULL)?)
    } else {
        None
    };
    // The CNAME alone: for qtype CNAME, and for every type when the chain
    // leaves the zone.
    let sections = Sections {
        answers: vec![&cname],
        ..Default::default()
    };
    let alone = enc.encode(name, RecordType::CNAME, NOERROR, &sections, &[])?;
    by_type.push((u16::from(RecordType::CNAME), alone.clone()));
    let other = tail.unwrap_or(alone);
    Ok(RegionAnswers {
        a,
        aaaa,
        other: Some(other),
        nsec: None,
        by_type: by_type.into_boxed_slice(),
    })
}

/// The data of an empty non-terminal: none.
static EMPTY_NODE: crate::zone::Node = crate::zone::Node::new();

/// A and AAAA answers of multivalue record `index` for every set of
/// regions (indexed by the set's mask): the addresses of its regions in
/// priority order, at most `max` records of each type, rotatable.
fn value_answers(
    enc: &mut Encoder<'_, '_>,
    config: &Config,
    zone: &Zone,
    index: usize,
    negative: &Record,
    max: u8,
) -> Result<Vec<RegionAnswers>, BuildError> {
    let record = &config.records[index];
    let name = &record.name;
    let origin = &config.zone.origin;
    let sets = 1usize << config.regions.len();
    let mut answers = Vec::with_capacity(sets);
    for mask in 0..sets {
        let members = routing::members(config, mask);
        let regions: Vec<&crate::config::Region> =
            members.iter().map(|&r| &config.regions[r]).collect();
        let (own_nsec, nsec_answer) = match enc.signing.as_deref_mut() {
            Some(s) => {
                let mut types = signed::types_of(&regions);
                if zone.nodes.contains_key(name) {
                    types.extend(signed::static_types(zone, name, &zone.origin));
                }
                let chunk = s.nsec_chunk(name, types.clone())?;
                (Some(chunk), Some(s.nsec_record(name, types)))
            }
            None => (None, None),
        };
        let proof: Vec<&[u8]> = own_nsec.as_deref().into_iter().collect();
        let take = usize::from(max);
        let (a, aaaa) = address_records(
            name,
            record.ttl,
            regions.iter().flat_map(|r| &r.ipv4).take(take),
            regions.iter().flat_map(|r| &r.ipv6).take(take),
        );
        let mut one = |qtype: RecordType, records: &[Record]| {
            if records.is_empty() {
                return enc.negative(NOERROR, negative, origin, &proof);
            }
            let sections = Sections {
                answers: records.iter().collect(),
                ..Default::default()
            };
            let prepared = enc.encode(name, qtype, NOERROR, &sections, &[])?;
            // Unsigned, the body is exactly the answers.
            let len = prepared.body.len();
            Ok(prepared.rotating(records.len(), len))
        };
        let a = one(RecordType::A, &a)?;
        let aaaa = one(RecordType::AAAA, &aaaa)?;
        let (other, nsec) = match nsec_answer {
            Some(nsec) => {
                let sections = Sections {
                    answers: vec![&nsec],
                    ..Default::default()
                };
                (
                    Some(enc.negative(NOERROR, negative, origin, &proof)?),
                    Some(enc.encode(name, RecordType::NSEC, NOERROR, &sections, &[])?),
                )
            }
            None => (None, None),
        };
        answers.push(RegionAnswers {
            a,
            aaaa,
            other,
            nsec,
            by_type: Box::new([]),
        });
    }
    Ok(answers)
}

/// A and AAAA records of `name` for these addresses.
fn address_records<'a>(
    name: &Name,
    ttl: u32,
    ipv4: impl IntoIterator<Item = &'a std::net::Ipv4Addr>,
    ipv6: impl IntoIterator<Item = &'a std::net::Ipv6Addr>,
) -> (Vec<Record>, Vec<Record>) {
    let record = |data| Record::from_rdata(name.clone(), ttl, data);
    (
        ipv4.into_iter()
            .map(|ip| record(RData::A(A(*ip))))
            .collect(),
        ipv6.into_iter()
            .map(|ip| record(RData::AAAA(AAAA(*ip))))
            .collect(),
    )
}

type Classified = (Vec<GeoClass>, ClientMap, ClientMap);

/// Compiles the client maps: address to geo class, and address to
/// residency class (0 none, i + 1 block i).
fn classify(config: &Config, geo: Option<&GeoDb>) -> Result<Classified, BuildError> {
    let residency_of = |country: Option<&str>, continent: Option<&str>| {
        routing::residency_block(config, country, continent).map(|(block, _)| block)
    };
    let list_of = |country: Option<&str>, continent: Option<&str>| -> &[RegionId] {
        routing::preference_list(config, country, continent).0
    };
    let mut classes: Vec<GeoClass> = Vec::new();
    // (list, residency block, network) to class.
    type Key = (Vec<RegionId>, Option<usize>, Option<usize>);
    let mut index: HashMap<Key, u32> = HashMap::new();
    let mut class_of =
        |list: &[RegionId], residency: Option<usize>, network: Option<usize>| -> u32 {
            *index
                .entry((list.to_vec(), residency, network))
                .or_insert_with(|| {
                    classes.push(GeoClass {
                        list: list.to_vec(),
                        residency,
                        network,
                    });
                    (classes.len() - 1) as u32
                })
        };
    let unknown = class_of(&config.geoip.default, None, None);
    let networks: Vec<ipnet::IpNet> = config.networks.iter().map(|n| n.cidr).collect();
    let uses_geo = config.records.iter().any(|r| r.policy == Policy::Geo);
    let (geo_map, residency_map) = match geo {
        Some(db) => {
            let geo_map = if uses_geo {
                db.compile_with_networks(
                    &mut |network, country, continent| {
                        let list = match network.and_then(|i| config.networks.get(i)) {
                            Some(n) => &n.regions[..],
                            None => list_of(country, continent),
                        };
                        class_of(list, residency_of(country, continent), network)
                    },
                    &networks,
                )?
            } else {
                ClientMap::uniform(unknown)
            };
            let residency_map = if config.has_residency() {
                db.compile(&mut |country, continent| {
                    residency_of(country, continent).map_or(0, |b| b as u32 + 1)
                })?
            } else {
                ClientMap::uniform(0)
            };
            (geo_map, residency_map)
        }
        None => (ClientMap::uniform(unknown), ClientMap::uniform(0)),
    };
    Ok((classes, geo_map, residency_map))
}
