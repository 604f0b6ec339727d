//! Answers encoded to wire bytes once per snapshot, by hickory-proto.
//!
//! A [`Prepared`] answer holds the three record sections of a response as
//! they appear after the question. Compression pointers in it refer to the
//! question name at offset 12, whose labels sit at the same offsets whatever
//! case the client wrote them in, so the data plane copies the client's own
//! question and then these bytes unchanged. Negative answers are the
//! exception: their question is any name in the zone, so their SOA is
//! encoded after a question that is the origin alone, and the data plane
//! moves each of its pointers by where the origin ends up in the client's
//! question (it is always that question's suffix).
//!
//! With DNSSEC, an answer also carries its signed variant, for queries
//! with the DO bit: the same sections with an RRSIG after every RRset,
//! and for negative answers the NSEC records that prove them.

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::wire::{NameEnd, POINTER, walk_name};

/// Bytes that follow the question of a response, with their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub rcode: u8,
    pub authoritative: bool,
    pub answer_count: u16,
    pub authority_count: u16,
    pub additional_count: u16,
    pub body: Box<[u8]>,
    /// Offsets in `body` of compression pointers to move by the length of
    /// the question name in front of the origin (negative answers only).
    pub relocate: Box<[u16]>,
    /// The DO variant (signed), when the zone is signed.
    pub signed: Option<Box<Prepared>>,
    /// A multivalue answer's records, which [`Prepared::write_rotated`]
    /// writes starting from any of them.
    pub rotation: Option<Rotation>,
}

/// The first `count` answers of a body, each `stride` bytes long (one
/// owner and type, the owner a pointer to the question), which may be
/// written in any rotation: the RRset is the same, and so is its RRSIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub count: u16,
    pub stride: u16,
}

/// Sections of a response to be encoded together.
#[derive(Default)]
pub struct Sections<'a> {
    pub answers: Vec<&'a Record>,
    pub authority: Vec<&'a Record>,
    pub additional: Vec<&'a Record>,
}

impl Prepared {
    /// Encodes `sections` as they follow the question `qname`/`qtype`.
    pub fn encode(
        qname: &Name,
        qtype: RecordType,
        rcode: u8,
        sections: &Sections<'_>,
    ) -> Result<Prepared, ProtoError> {
        let mut buf = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut buf);
        enc.emit_vec(&[0; 12])?;
        qname.to_lowercase().emit(&mut enc)?;
        enc.emit_u16(qtype.into())?;
        enc.emit_u16(DNSClass::IN.into())?;
        let start = enc.offset();
        for record in sections
            .answers
            .iter()
            .chain(&sections.authority)
            .chain(&sections.additional)
        {
            record.emit(&mut enc)?;
        }
        drop(enc);
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: count(sections.answers.len()),
            authority_count: count(sections.authority.len()),
            additional_count: count(sections.additional.len()),
            body: buf[start..].into(),
            relocate: Box::new([]),
            signed: None,
            rotation: None,
        })
    }

    /// Encodes `sections` for a wildcard `owner` (RFC 4592): the answer
    /// serves every name the wildcard covers, so each record owned by the
    /// wildcard starts with a pointer to the question (the query's name,
    /// in the client's case) and every other name is written out in full,
    /// since the question's length is not known here.
    pub fn encode_expanding(
        owner: &Name,
        rcode: u8,
        sections: &Sections<'_>,
    ) -> Result<Prepared, ProtoError> {
        let owner = owner.to_lowercase();
        let owner_len = owner.len() + 1;
        let mut body = Vec::with_capacity(256);
        for record in sections
            .answers
            .iter()
            .chain(&sections.authority)
            .chain(&sections.additional)
        {
            let mut one = Vec::with_capacity(64);
            let mut enc = BinEncoder::new(&mut one);
            enc.set_name_encoding(NameEncoding::Uncompressed);
            record.emit(&mut enc)?;
            drop(enc);
            if record.name.to_lowercase() == owner {
                body.extend_from_slice(&[0xc0, 0x0c]);
                body.extend_from_slice(one.get(owner_len..).unwrap_or_default());
            } else {
                body.extend_from_slice(&one);
            }
        }
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: count(sections.answers.len()),
            authority_count: count(sections.authority.len()),
            additional_count: count(sections.additional.len()),
            body: body.into_boxed_slice(),
            relocate: Box::new([]),
            signed: None,
            rotation: None,
        })
    }

    /// A bare SERVFAIL: no records, not authoritative.
    pub fn servfail() -> Prepared {
        Prepared {
            rcode: crate::wire::SERVFAIL,
            authoritative: false,
            answer_count: 0,
            authority_count: 0,
            additional_count: 0,
            body: Box::new([]),
            relocate: Box::new([]),
            signed: None,
            rotation: None,
        }
    }

    /// Marks the first `count` answers as rotatable, when they are of
    /// one length (they are: one owner, one type, fixed-size data).
    pub fn rotating(mut self, count: usize, unsigned_answers_len: usize) -> Prepared {
        let rotation = (count > 1 && unsigned_answers_len.is_multiple_of(count))
            .then(|| Rotation {
                count: count as u16,
                stride: (unsigned_answers_len / count) as u16,
            })
            .filter(|r| usize::from(r.count) * usize::from(r.stride) <= self.body.len());
        self.rotation = rotation;
        if let Some(signed) = self.signed.take() {
            let mut signed = *signed;
            signed.rotation = rotation
                .filter(|r| usize::from(r.count) * usize::from(r.stride) <= signed.body.len());
            self.signed = Some(Box::new(signed));
        }
        self
    }

    /// This answer, or its signed variant for a query with the DO bit.
    pub fn variant(&self, dnssec_ok: bool) -> &Prepared {
        match &self.signed {
            Some(signed) if dnssec_ok => signed,
            _ => self,
        }
    }

    /// A signed negative answer: the SOA and its RRSIG, then `proof`: NSEC
    /// RRsets with their RRSIGs, each two records. All of it is encoded
    /// without compression, so it is one copy with nothing to relocate:
    /// the NSEC records a query adds have to follow it anyway, and the
    /// answer stays far below the 1232-octet EDNS size.
    pub fn negative_signed(
        rcode: u8,
        soa: &[&Record; 2],
        proof: &[&[u8]],
    ) -> Result<Prepared, ProtoError> {
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: 0,
            authority_count: count(soa.len()),
            additional_count: 0,
            body: Prepared::uncompressed(soa)?,
            relocate: Box::default(),
            signed: None,
            rotation: None,
        }
        .with_proof(proof))
    }

    /// Appends NSEC RRsets (each with its RRSIG) to the authority section.
    pub fn with_proof(mut self, proof: &[&[u8]]) -> Prepared {
        let mut body = self.body.into_vec();
        for nsec in proof {
            body.extend_from_slice(nsec);
        }
        self.body = body.into_boxed_slice();
        self.authority_count += count(2 * proof.len());
        self
    }

    /// A negative answer (`NXDOMAIN` or `NODATA`) for any question in the
    /// zone: the SOA in the authority section, compressed against the
    /// origin at the end of the question.
    pub fn negative(rcode: u8, soa: &Record, origin: &Name) -> Result<Prepared, ProtoError> {
        Prepared::negative_records(rcode, &[soa], origin)
    }

    fn negative_records(
        rcode: u8,
        records: &[&Record],
        origin: &Name,
    ) -> Result<Prepared, ProtoError> {
        let mut buf = Vec::with_capacity(128);
        let mut enc = BinEncoder::new(&mut buf);
        enc.emit_vec(&[0; 12])?;
        origin.to_lowercase().emit(&mut enc)?;
        enc.emit_u16(RecordType::SOA.into())?;
        enc.emit_u16(DNSClass::IN.into())?;
        let start = enc.offset();
        for record in records {
            record.emit(&mut enc)?;
        }
        drop(enc);
        let body: Box<[u8]> = buf[start..].into();
        let relocate = record_pointers(&body, records.len())
            .ok_or_else(|| ProtoError::from("SOA record did not encode as expected"))?;
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: 0,
            authority_count: count(records.len()),
            additional_count: 0,
            body,
            relocate: relocate.into_boxed_slice(),
            signed: None,
            rotation: None,
        })
    }

    /// Records encoded without name compression, to follow any question.
    pub fn uncompressed(records: &[&Record]) -> Result<Box<[u8]>, ProtoError> {
        let mut buf = Vec::with_capacity(256);
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        for record in records {
            record.emit(&mut enc)?;
        }
        drop(enc);
        Ok(buf.into_boxed_slice())
    }

    /// Appends the body to a response whose question name is `shift`
    /// bytes longer than the origin.
    pub fn write(&self, out: &mut Vec<u8>, shift: usize) {
        self.write_rotated(out, shift, 0);
    }

    /// As [`Prepared::write`], a multivalue answer's records starting from
    /// the `start`-th (modulo their count).
    pub fn write_rotated(&self, out: &mut Vec<u8>, shift: usize, start: u32) {
        if let Some(r) = self.rotation {
            let count = usize::from(r.count.max(1));
            let stride = usize::from(r.stride);
            let cut = (start as usize % count) * stride;
            let end = count * stride;
            if let (Some(head), Some(tail), Some(rest)) = (
                self.body.get(cut..end),
                self.body.get(..cut),
                self.body.get(end..),
            ) {
                // Rotated answers carry no relocated pointers.
                out.extend_from_slice(head);
                out.extend_from_slice(tail);
                out.extend_from_slice(rest);
                return;
            }
        }
        let base = out.len();
        out.extend_from_slice(&self.body);
        for &at in self.relocate.iter() {
            let at = base + at as usize;
            if let Some(pointer) = out.get_mut(at..at + 2) {
                let target =
                    (u16::from_be_bytes([pointer[0], pointer[1]]) & !POINTER) + shift as u16;
                pointer.copy_from_slice(&(POINTER | target).to_be_bytes());
            }
        }
    }
}

/// Offsets of the compression pointers in `n` encoded records: in each
/// owner, and in an SOA's MNAME and RNAME (an RRSIG's signer name is
/// never compressed, RFC 4034 3.1.7).
fn record_pointers(bytes: &[u8], n: usize) -> Option<Vec<u16>> {
    let mut found = Vec::new();
    let mut at = 0;
    for _ in 0..n {
        let owner_end = name_pointers(bytes, at, &mut found)?;
        let fixed = bytes.get(owner_end..owner_end + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = owner_end + 10;
        if rtype == u16::from(RecordType::SOA) {
            let mname_end = name_pointers(bytes, rdata, &mut found)?;
            name_pointers(bytes, mname_end, &mut found)?;
        }
        at = rdata + rdlen;
    }
    (at == bytes.len()).then_some(found)
}

/// Walks the name at `at`, noting a pointer's offset; returns where it ends.
fn name_pointers(bytes: &[u8], at: usize, found: &mut Vec<u16>) -> Option<usize> {
    let end = walk_name(bytes, at, |_| {})?;
    if let NameEnd::Pointer { at, .. } = end {
        found.push(u16::try_from(at).ok()?);
    }
    Some(end.end())
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
