//! Making RRSIGs, and keeping them across table builds.
//!
//! A table build asks the [`Signer`] for the signature of every RRset any
//! client can receive. The signer remembers what it signed, keyed by the
//! RRset's canonical bytes and the signing key, so a rebuild after a
//! reload or a health change signs only what changed or what is about to
//! expire (less than `refresh` of validity left). Signing happens only
//! here, in the control plane; the data plane never signs.

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::ProtoError;
use hickory_proto::dnssec::TBS;
use hickory_proto::dnssec::rdata::sig::SigInput;
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::keys::{self, KeyError, ZoneKey};
use crate::config::Dnssec;

/// Signatures start this long before the build, for clocks that lag.
const INCEPTION_SKEW: u32 = 3600;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot sign {name} {rtype}: {reason}")]
    Sign {
        name: String,
        rtype: RecordType,
        reason: String,
    },
}

/// What the current table's signatures are, for status views and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub algorithm: u8,
    /// The key that signs.
    pub signing_key_tag: u16,
    /// Every published key, the signing one first.
    pub key_tags: Vec<u16>,
    /// Unix time the earliest signature in the table expires.
    pub earliest_expiration: u32,
    /// Signatures in the table (one per distinct RRset).
    pub signatures: usize,
    /// Signatures made since the process started.
    pub signed_total: u64,
}

struct Cached {
    rrsig: Record,
    expiration: u32,
    /// The build that last used it; older entries are dropped.
    used: u64,
}

/// The zone's keys and the signatures made with them.
pub struct Signer {
    keys: Vec<ZoneKey>,
    origin: Name,
    validity: u32,
    refresh: u32,
    cache: HashMap<Vec<u8>, Cached>,
    build: u64,
    now: u32,
    signed_total: u64,
}

impl Signer {
    /// Loads the keys of `[dnssec]` for the zone `origin`.
    pub fn new(config: &Dnssec, origin: &Name) -> Result<Signer, KeyError> {
        let keys = keys::load_all(&config.keys)?;
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Ok(Signer {
            keys,
            origin: origin.to_lowercase(),
            validity: secs(config.signature_validity),
            refresh: secs(config.refresh),
            cache: HashMap::new(),
            build: 0,
            now: 0,
            signed_total: 0,
        })
    }

    /// Takes over the signatures `old` made, for a signer built after a
    /// reload: those made with a key that still signs stay valid.
    pub fn adopt(&mut self, old: Signer) {
        self.cache = old.cache;
        self.signed_total = old.signed_total;
        self.build = old.build;
    }

    pub fn keys(&self) -> &[ZoneKey] {
        &self.keys
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Starts a table build at `now` (Unix seconds).
    pub fn begin(&mut self, now: u32) {
        self.build += 1;
        self.now = now;
    }

    /// The RRSIG of `rrset` (records of one owner, type and class, with
    /// one TTL), made now or remembered from an earlier build.
    pub fn sign(&mut self, rrset: &[&Record]) -> Result<Record, SignError> {
        let first = rrset.first().ok_or_else(|| SignError::Sign {
            name: String::new(),
            rtype: RecordType::NULL,
            reason: "empty RRset".into(),
        })?;
        let fail = |reason: String| SignError::Sign {
            name: first.name.to_string(),
            rtype: first.record_type(),
            reason,
        };
        let key = self
            .keys
            .first()
            .ok_or_else(|| fail("no signing key".into()))?;
        let cache_key = cache_key(key.key_tag, rrset).map_err(|e| fail(e.to_string()))?;
        let (now, build, refresh) = (self.now, self.build, self.refresh);
        if let Some(hit) = self.cache.get_mut(&cache_key)
            && hit.expiration.saturating_sub(now) > refresh
        {
            hit.used = build;
            return Ok(hit.rrsig.clone());
        }
        let inception = now.saturating_sub(INCEPTION_SKEW);
        let expiration = inception.saturating_add(self.validity);
        let name = first.name.to_lowercase();
        let input = SigInput {
            type_covered: first.record_type(),
            algorithm: keys::ALGORITHM,
            // RFC 4034 3.1.3: labels of the owner, not counting a leading
            // wildcard label (hickory's num_labels already leaves it out).
            num_labels: name.num_labels(),
            original_ttl: first.ttl,
            sig_expiration: SerialNumber::new(expiration),
            sig_inception: SerialNumber::new(inception),
            key_tag: key.key_tag,
            signer_name: self.origin.clone(),
        };
        let owned: Vec<Record> = rrset.iter().map(|r| (*r).clone()).collect();
        let tbs = TBS::from_input(&first.name, DNSClass::IN, &input, owned.iter())
            .map_err(|e| fail(e.to_string()))?;
        let signature = key
            .signing_key()
            .sign(&tbs)
            .map_err(|e| fail(e.to_string()))?;
        let rrsig = Record::from_rdata(
            first.name.clone(),
            first.ttl,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, signature))),
        );
        self.signed_total += 1;
        self.cache.insert(
            cache_key,
            Cached {
                rrsig: rrsig.clone(),
                expiration,
                used: build,
            },
        );
        Ok(rrsig)
    }

    /// Ends a build: forgets signatures it did not use and says what the
    /// table holds.
    pub fn finish(&mut self) -> Summary {
        let build = self.build;
        self.cache.retain(|_, c| c.used == build);
        let earliest = self.cache.values().map(|c| c.expiration).min();
        Summary {
            algorithm: u8::from(keys::ALGORITHM),
            signing_key_tag: self.keys.first().map_or(0, |k| k.key_tag),
            key_tags: self.keys.iter().map(|k| k.key_tag).collect(),
            earliest_expiration: earliest.unwrap_or(0),
            signatures: self.cache.len(),
            signed_total: self.signed_total,
        }
    }

    /// When the table built last must be re-signed: `refresh` before its
    /// earliest signature expires (Unix seconds).
    pub fn resign_at(summary: &Summary, refresh: Duration) -> u32 {
        let refresh = u32::try_from(refresh.as_secs()).unwrap_or(u32::MAX);
        summary.earliest_expiration.saturating_sub(refresh)
    }
}

/// The signing key's tag and the RRset in canonical form: equal exactly
/// when a signature of one covers the other.
fn cache_key(key_tag: u16, rrset: &[&Record]) -> Result<Vec<u8>, ProtoError> {
    let mut records: Vec<&Record> = rrset.to_vec();
    records.sort();
    let mut buf = key_tag.to_be_bytes().to_vec();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_canonical_form(true);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    for r in records {
        r.emit(&mut enc)?;
    }
    Ok(buf)
}
