//! Answers encoded to wire bytes once per snapshot, by hickory-proto.
//!
//! A [`Prepared`] answer holds the three record sections of a response as
//! they appear after the question. Compression pointers in it refer to the
//! question name at offset 12, whose labels sit at the same offsets whatever
//! case the client wrote them in, so the data plane copies the client's own
//! question and then these bytes unchanged. Negative answers are the
//! exception: their question is any name, so their SOA is written without
//! compression.

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// Bytes that follow the question of a response, with their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub rcode: u8,
    pub authoritative: bool,
    pub answer_count: u16,
    pub authority_count: u16,
    pub additional_count: u16,
    pub body: Box<[u8]>,
}

pub const NOERROR: u8 = 0;
pub const NXDOMAIN: u8 = 3;

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
        })
    }

    /// A negative answer (`NXDOMAIN` or `NODATA`) for any question: the SOA
    /// in the authority section, written without compression.
    pub fn negative(rcode: u8, soa: &Record) -> Result<Prepared, ProtoError> {
        let mut buf = Vec::with_capacity(128);
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        soa.emit(&mut enc)?;
        drop(enc);
        Ok(Prepared {
            rcode,
            authoritative: true,
            answer_count: 0,
            authority_count: 1,
            additional_count: 0,
            body: buf.into_boxed_slice(),
        })
    }
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
