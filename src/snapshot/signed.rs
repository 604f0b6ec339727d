//! The signed half of a table build: RRSIGs for every RRset an answer can
//! carry, the zone's DNSKEY, CDS and CDNSKEY, and the NSEC chain over its
//! names (RFC 4034, 4035, 7344).
//!
//! [`Encoder`] encodes an answer once as today and, when the zone is
//! signed, once more with an RRSIG after every RRset and the NSEC records
//! that prove a negative answer; the data plane picks the variant by the
//! query's DO bit.

use std::collections::BTreeSet;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;

use super::build::{BuildError, wire};
use super::denial::{Chain, canonical_cmp};
use super::prepared::{Prepared, Sections};
use crate::config::Config;
use crate::dnssec::{SignError, Signer};
use crate::zone::{Node, Zone};

/// Signing state for one build.
pub(super) struct Signing<'s> {
    signer: &'s mut Signer,
    /// The negative-answer SOA and its RRSIG.
    pub soa: [Record; 2],
    /// Owner (lowercase wire) to its NSEC with every type the name can
    /// answer, signed and encoded.
    nsec: FxHashMap<Box<[u8]>, Box<[u8]>>,
    /// Owner to the next name in canonical order.
    next: FxHashMap<Box<[u8]>, Name>,
    chain: Chain,
    negative_ttl: u32,
}

/// Encodes answers, signed too when the zone is.
pub(super) struct Encoder<'s, 'k> {
    pub signing: Option<&'s mut Signing<'k>>,
}

fn encode_err(
    name: &Name,
    rtype: RecordType,
) -> impl FnOnce(hickory_proto::ProtoError) -> BuildError {
    let name = name.to_string();
    move |source| BuildError::Encode {
        name,
        rtype,
        source: Box::new(source),
    }
}

impl<'k> Signing<'k> {
    /// Signs the negative SOA and lays out the NSEC chain over `zone`'s
    /// names and the steered names of `config`.
    pub(super) fn new(
        signer: &'k mut Signer,
        zone: &Zone,
        config: &Config,
        negative: &Record,
    ) -> Result<Signing<'k>, BuildError> {
        let soa_sig = signer.sign(&[negative])?;
        let mut signing = Signing {
            signer,
            soa: [negative.clone(), soa_sig],
            nsec: FxHashMap::default(),
            next: FxHashMap::default(),
            chain: Chain::new(&[0], Vec::new()),
            negative_ttl: negative.ttl,
        };
        let mut owners: Vec<(Box<[u8]>, Name)> = zone
            .nodes
            .keys()
            .chain(config.records.iter().map(|r| &r.name))
            .map(|n| (wire(n), n.to_lowercase()))
            .collect();
        owners.sort_by(|a, b| canonical_cmp(&a.0, &b.0));
        owners.dedup_by(|a, b| a.0 == b.0);
        for (i, (owner, _)) in owners.iter().enumerate() {
            let next = owners[(i + 1) % owners.len()].1.clone();
            signing.next.insert(owner.clone(), next);
        }
        let steered: FxHashMap<Box<[u8]>, usize> = config
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (wire(&r.name), i))
            .collect();
        for (owner, name) in &owners {
            // The steered apex has both kinds.
            let mut types = static_types(zone, name, &zone.origin);
            if let Some(&index) = steered.get(owner) {
                types.extend(steered_types(config, index, None));
            }
            let chunk = signing.nsec_chunk(name, types)?;
            signing.nsec.insert(owner.clone(), chunk);
        }
        signing.chain = Chain::new(
            &wire(&zone.origin),
            signing
                .nsec
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        Ok(signing)
    }

    /// Ends the build: the chain the data plane proves denials with, and
    /// what the table's signatures are.
    pub(super) fn finish(self) -> (Chain, crate::dnssec::Summary) {
        (self.chain, self.signer.finish())
    }

    /// The apex RRsets DNSSEC adds: DNSKEY (every key), CDS and CDNSKEY
    /// (the signing key), with the SOA's TTL.
    pub(super) fn apex_records(&self, origin: &Name, ttl: u32) -> Result<Node, BuildError> {
        let keys = self.signer.keys();
        let rec = |data| Record::from_rdata(origin.clone(), ttl, RData::DNSSEC(data));
        let mut node = Node::new();
        node.insert(
            RecordType::DNSKEY,
            keys.iter()
                .map(|k| rec(DNSSECRData::DNSKEY(k.dnskey.clone())))
                .collect(),
        );
        if let Some(first) = keys.first() {
            node.insert(
                RecordType::CDS,
                vec![rec(DNSSECRData::CDS(
                    first.cds(origin).map_err(SignError::from)?,
                ))],
            );
            node.insert(
                RecordType::CDNSKEY,
                vec![rec(DNSSECRData::CDNSKEY(first.cdnskey()))],
            );
        }
        Ok(node)
    }

    /// The NSEC record at `name` with `types` (plus NSEC and RRSIG).
    pub(super) fn nsec_record(&self, name: &Name, types: BTreeSet<RecordType>) -> Record {
        let next = self
            .next
            .get(&wire(name))
            .cloned()
            .unwrap_or_else(|| name.to_lowercase());
        Record::from_rdata(
            name.to_lowercase(),
            self.negative_ttl,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new_cover_self(next, types))),
        )
    }

    /// An NSEC and its RRSIG, uncompressed.
    pub(super) fn nsec_chunk(
        &mut self,
        name: &Name,
        types: BTreeSet<RecordType>,
    ) -> Result<Box<[u8]>, BuildError> {
        let nsec = self.nsec_record(name, types);
        let sig = self.signer.sign(&[&nsec])?;
        Prepared::uncompressed(&[&nsec, &sig]).map_err(encode_err(name, RecordType::NSEC))
    }

    /// The signed NSEC of a name in the chain (every type it can answer).
    pub(super) fn nsec_of(&self, name: &Name) -> Option<&[u8]> {
        self.nsec.get(&wire(name)).map(|b| &b[..])
    }

    /// The NSEC records proving `name` does not exist: the one covering it
    /// and the one covering the wildcard at its closest encloser.
    pub(super) fn nxdomain_proof(&self, name: &Name) -> Vec<Box<[u8]>> {
        self.chain
            .nxdomain(&wire(name))
            .into_iter()
            .flatten()
            .map(Box::from)
            .collect()
    }

    /// The RRSIG of every RRset in `records` (runs of one owner and type),
    /// in order.
    fn sign_runs(&mut self, records: &[&Record]) -> Result<Vec<Record>, BuildError> {
        runs(records)
            .map(|run| self.signer.sign(run).map_err(BuildError::from))
            .collect()
    }
}

/// Consecutive records of one owner and type.
fn runs<'r, 'a>(records: &'r [&'a Record]) -> impl Iterator<Item = &'r [&'a Record]> {
    records.chunk_by(|a, b| a.name == b.name && a.record_type() == b.record_type())
}

/// `records` with each RRset followed by its RRSIG from `sigs`.
fn interleave<'a>(records: &[&'a Record], sigs: &'a [Record]) -> Vec<&'a Record> {
    let mut out = Vec::with_capacity(records.len() + sigs.len());
    for (run, sig) in runs(records).zip(sigs) {
        out.extend_from_slice(run);
        out.push(sig);
    }
    out
}

impl Encoder<'_, '_> {
    pub(super) fn signed(&self) -> bool {
        self.signing.is_some()
    }

    /// An answer to `qname`/`qtype`; when signed, its DO variant has an
    /// RRSIG after every RRset and `proof` (NSEC RRsets with their RRSIGs)
    /// at the end of the authority section.
    pub(super) fn encode(
        &mut self,
        qname: &Name,
        qtype: RecordType,
        rcode: u8,
        sections: &Sections<'_>,
        proof: &[&[u8]],
    ) -> Result<Prepared, BuildError> {
        let wildcard = qname.is_wildcard();
        let encode = |sections: &Sections<'_>| {
            if wildcard {
                Prepared::encode_expanding(qname, rcode, sections)
            } else {
                Prepared::encode(qname, qtype, rcode, sections)
            }
            .map_err(encode_err(qname, qtype))
        };
        let mut prepared = encode(sections)?;
        if let Some(s) = self.signing.as_deref_mut() {
            let answers = s.sign_runs(&sections.answers)?;
            let authority = s.sign_runs(&sections.authority)?;
            let additional = s.sign_runs(&sections.additional)?;
            let signed = Sections {
                answers: interleave(&sections.answers, &answers),
                authority: interleave(&sections.authority, &authority),
                additional: interleave(&sections.additional, &additional),
            };
            let signed = encode(&signed)?.with_proof(proof);
            prepared.signed = Some(Box::new(signed));
        }
        Ok(prepared)
    }

    /// A negative answer for any name (NXDOMAIN or NODATA with the SOA);
    /// when signed, its DO variant adds the SOA's RRSIG and `proof`.
    pub(super) fn negative(
        &mut self,
        rcode: u8,
        negative: &Record,
        origin: &Name,
        proof: &[&[u8]],
    ) -> Result<Prepared, BuildError> {
        let mut prepared = Prepared::negative(rcode, negative, origin)
            .map_err(encode_err(origin, RecordType::SOA))?;
        if let Some(s) = self.signing.as_deref() {
            let [soa, sig] = &s.soa;
            let signed = Prepared::negative_signed(rcode, &[soa, sig], proof)
                .map_err(encode_err(origin, RecordType::SOA))?;
            prepared.signed = Some(Box::new(signed));
        }
        Ok(prepared)
    }
}

/// The types a static name answers, NSEC and RRSIG aside.
pub(super) fn static_types(zone: &Zone, name: &Name, origin: &Name) -> BTreeSet<RecordType> {
    let mut types: BTreeSet<RecordType> = zone
        .nodes
        .get(name)
        .map(|n| n.keys().copied().collect())
        .unwrap_or_default();
    if name == origin {
        types.extend([RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY]);
    }
    types
}

/// The types a steered name answers: A and AAAA where `region` (or, for
/// `None`, any of the record's regions) has such addresses.
pub(super) fn steered_types(
    config: &Config,
    record: usize,
    region: Option<usize>,
) -> BTreeSet<RecordType> {
    let only = match config.records.get(record).map(|r| r.policy) {
        Some(crate::config::Policy::Region(r)) => Some(r),
        _ => region,
    };
    let regions: Vec<&crate::config::Region> = match only {
        Some(r) => config.regions.get(r).into_iter().collect(),
        None => config.regions.iter().collect(),
    };
    types_of(&regions)
}

/// A and AAAA where any of `regions` has such addresses.
pub(super) fn types_of(regions: &[&crate::config::Region]) -> BTreeSet<RecordType> {
    let mut types = BTreeSet::new();
    if regions.iter().any(|r| !r.ipv4.is_empty()) {
        types.insert(RecordType::A);
    }
    if regions.iter().any(|r| !r.ipv6.is_empty()) {
        types.insert(RecordType::AAAA);
    }
    if regions.iter().any(|r| r.cname.is_some()) {
        types.insert(RecordType::CNAME);
    }
    types
}

#[cfg(test)]
mod tests;
