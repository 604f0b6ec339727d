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

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

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
        })
    }

    /// A negative answer (`NXDOMAIN` or `NODATA`) for any question in the
    /// zone: the SOA in the authority section, compressed against the
    /// origin at the end of the question.
    pub fn negative(rcode: u8, soa: &Record, origin: &Name) -> Result<Prepared, ProtoError> {
        let mut buf = Vec::with_capacity(128);
        let mut enc = BinEncoder::new(&mut buf);
        enc.emit_vec(&[0; 12])?;
        origin.to_lowercase().emit(&mut enc)?;
        enc.emit_u16(RecordType::SOA.into())?;
        enc.emit_u16(DNSClass::IN.into())?;
        let start = enc.offset();
        soa.emit(&mut enc)?;
        drop(enc);
        let body: Box<[u8]> = buf[start..].into();
        let relocate = soa_pointers(&body)
            .ok_or_else(|| ProtoError::from("SOA record did not encode as expected"))?;
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: 0,
            authority_count: 1,
            additional_count: 0,
            body,
            relocate: relocate.into_boxed_slice(),
        })
    }

    /// Appends the body to a response whose question name is `shift`
    /// bytes longer than the origin.
    pub fn write(&self, out: &mut Vec<u8>, shift: usize) {
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

/// Offsets of the compression pointers in an encoded SOA record: in its
/// owner, MNAME and RNAME.
fn soa_pointers(record: &[u8]) -> Option<Vec<u16>> {
    let mut found = Vec::new();
    let owner_end = name_pointers(record, 0, &mut found)?;
    // TYPE, CLASS, TTL and RDLENGTH come before the RDATA.
    let mname_end = name_pointers(record, owner_end + 10, &mut found)?;
    name_pointers(record, mname_end, &mut found)?;
    Some(found)
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
