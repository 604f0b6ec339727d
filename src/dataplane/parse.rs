//! Reading a query from wire bytes without allocating: the header, the one
//! question (lowercased into a fixed buffer, its original bytes left in the
//! packet to be echoed), and the OPT record with the EDNS options we act on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    FLAG_QR, HEADER_LEN, MAX_NAME, NameEnd, OPCODE_MASK, OPTION_COOKIE, OPTION_NSID, OPTION_SUBNET,
    TYPE_OPT, TYPE_TSIG, walk_name,
};

/// A query the data plane can answer (possibly with an error code).
#[derive(Debug, Clone)]
pub struct Query {
    pub id: u16,
    /// The second header word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    /// Lowercase wire form of the question name.
    qname: [u8; MAX_NAME],
    qname_len: usize,
    /// Offset just past the question in the packet.
    pub question_end: usize,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// A TSIG record closes the additional section.
    pub tsig: Option<Tsig>,
    /// False for a cookie-only query (QDCOUNT 0).
    pub has_question: bool,
}

/// Byte ranges of a query's TSIG record, for the BADKEY answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tsig {
    pub owner: Option<std::ops::Range<usize>>,
    pub algorithm_and_time: Option<std::ops::Range<usize>>,
}

impl Query {
    pub fn qname(&self) -> &[u8] {
        &self.qname[..self.qname_len]
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

#[derive(Debug, Clone, Default)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub nsid: bool,
    pub subnet: Option<ClientSubnet>,
    pub cookie: Option<Cookie>,
}

/// An EDNS Client Subnet option (RFC 7871), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    pub family: u16,
    pub source_prefix: u8,
    /// The address as sent: `ceil(source_prefix / 8)` bytes.
    pub address: [u8; 16],
    pub address_len: u8,
}

impl ClientSubnet {
    pub fn ip(&self) -> IpAddr {
        if self.family == 1 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.address[..4]);
            IpAddr::V4(Ipv4Addr::from(b))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.address))
        }
    }
}

/// A DNS Cookie option (RFC 7873): the client part and the server part sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    pub client: [u8; 8],
    pub server: [u8; 32],
    pub server_len: u8,
}

/// Why a packet is not a query that can be answered normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// Not worth an answer: too short to carry an ID, or itself a response.
    Drop,
    /// FORMERR; `question_end` is set when the question could be read and
    /// so may be echoed, `edns` when the query had a readable OPT record.
    FormErr {
        question_end: Option<usize>,
        edns: bool,
    },
    /// NOTIMP: an opcode other than QUERY, in a message that could not be
    /// read as a query (more than one question, say). What can be echoed
    /// is as for FORMERR: an opcode we do not implement makes no promise
    /// about the sections' layout, so their shape is no reason for FORMERR.
    NotImp {
        question_end: Option<usize>,
        edns: bool,
    },
}

fn u16_at(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

impl Default for Query {
    fn default() -> Query {
        Query {
            id: 0,
            flags: 0,
            qname: [0; MAX_NAME],
            qname_len: 0,
            question_end: 0,
            qtype: 0,
            qclass: 0,
            edns: None,
            tsig: None,
            has_question: false,
        }
    }
}

/// Parses a query into `query`, overwriting all of it. Any structural
/// error yields `Malformed` (and leaves `query` partly written).
///
/// Filling a caller's `Query` instead of returning one keeps the 255-byte
/// name buffer from being zeroed and moved for every packet.
pub fn parse(packet: &[u8], query: &mut Query) -> Result<(), Malformed> {
    let Some(header) = packet.first_chunk::<HEADER_LEN>() else {
        return Err(Malformed::Drop);
    };
    let word = |i: usize| u16::from_be_bytes([header[2 * i], header[2 * i + 1]]);
    let flags = word(1);
    if flags & FLAG_QR != 0 {
        return Err(Malformed::Drop);
    }
    let (qd, an, ns, ar) = (word(2), word(3), word(4), word(5));
    // RFC 1035 4.1.1 and RFC 6895 2: only QUERY is implemented; any other
    // opcode is NOTIMP whatever its sections hold.
    let query_opcode = flags & OPCODE_MASK == 0;
    let formerr = |question_end, edns| {
        if query_opcode {
            Malformed::FormErr { question_end, edns }
        } else {
            Malformed::NotImp { question_end, edns }
        }
    };
    if qd > 1 {
        return Err(formerr(None, false));
    }
    query.id = word(0);
    query.flags = flags;
    query.qname_len = 0;
    query.qtype = 0;
    query.qclass = 0;
    query.edns = None;
    query.tsig = None;
    query.has_question = qd == 1;
    let mut at = HEADER_LEN;
    if query.has_question {
        // Find the end of the name from its length bytes, then copy and
        // lowercase it in one pass (length bytes are at most 63, below
        // 'A', so lowercasing leaves them alone).
        match walk_name(packet, at, |_| {}) {
            Some(NameEnd::Root { end }) => at = end,
            // Compression is never valid in the first name.
            Some(NameEnd::Pointer { .. }) | None => return Err(formerr(None, false)),
        }
        let name = &packet[HEADER_LEN..at];
        let dst = &mut query.qname[..name.len()];
        dst.copy_from_slice(name);
        dst.make_ascii_lowercase();
        query.qname_len = name.len();
        let Some(fixed) = packet.get(at..at + 4) else {
            return Err(formerr(None, false));
        };
        query.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        query.qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        at += 4;
    }
    query.question_end = at;
    let echoable = query.has_question.then_some(query.question_end);
    let formerr_q = |edns| formerr(echoable, edns);
    if query.qtype == TYPE_OPT {
        return Err(formerr_q(false));
    }

    for _ in 0..(an as usize + ns as usize) {
        at = skip_record(packet, at).ok_or(formerr_q(false))?.next;
    }
    for i in 0..ar {
        let rr = skip_record(packet, at).ok_or(formerr_q(query.edns.is_some()))?;
        match rr.rtype {
            TYPE_OPT => {
                if query.edns.is_some() || rr.name_len != 1 {
                    return Err(formerr_q(query.edns.is_some()));
                }
                query.edns = Some(parse_opt(packet, &rr).ok_or(formerr_q(true))?);
            }
            TYPE_TSIG if i + 1 == ar => query.tsig = Some(parse_tsig(packet, at, &rr)),
            TYPE_TSIG => return Err(formerr_q(query.edns.is_some())),
            _ => {}
        }
        at = rr.next;
    }
    // Without a question only a cookie exchange makes sense (RFC 7873 5.4);
    // other opcodes are answered NOTIMP, question or not.
    if query_opcode && !query.has_question && query.edns.as_ref().is_none_or(|e| e.cookie.is_none())
    {
        return Err(formerr(None, query.edns.is_some()));
    }
    Ok(())
}

/// Where the parts of a TSIG record that an error response repeats sit in
/// the packet; `None` when its names are compressed (then no TSIG record is
/// sent back, only NOTAUTH).
fn parse_tsig(p: &[u8], start: usize, rr: &RawRecord) -> Tsig {
    let owner = start..start + rr.name_len;
    let uncompressed =
        |r: &std::ops::Range<usize>| p.get(r.clone()).is_some_and(|n| n.last() == Some(&0));
    let algorithm_end = match walk_name(p, rr.rdata.start, |_| {}) {
        Some(NameEnd::Root { end }) => Some(end),
        _ => None,
    };
    match algorithm_end {
        // Algorithm name, then time signed (6) and fudge (2).
        Some(end) if uncompressed(&owner) && end + 8 <= rr.rdata.end => Tsig {
            owner: Some(owner),
            algorithm_and_time: Some(rr.rdata.start..end + 8),
        },
        _ => Tsig::default(),
    }
}

struct RawRecord {
    name_len: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: std::ops::Range<usize>,
    next: usize,
}

/// Steps over one resource record; a compression pointer ends its name
/// (pointers are never followed, so loops cannot trap us).
fn skip_record(p: &[u8], start: usize) -> Option<RawRecord> {
    let end = walk_name(p, start, |_| {})?;
    // A pointer must point back into what came before it.
    if let NameEnd::Pointer { at, target } = end
        && target >= at
    {
        return None;
    }
    let at = end.end();
    let name_len = at - start;
    let rtype = u16_at(p, at)?;
    let class = u16_at(p, at + 2)?;
    let ttl = u32::from(u16_at(p, at + 4)?) << 16 | u32::from(u16_at(p, at + 6)?);
    let rdlen = u16_at(p, at + 8)? as usize;
    let rdata = at + 10..at + 10 + rdlen;
    if rdata.end > p.len() {
        return None;
    }
    Some(RawRecord {
        name_len,
        rtype,
        class,
        ttl,
        next: rdata.end,
        rdata,
    })
}

fn parse_opt(p: &[u8], rr: &RawRecord) -> Option<Edns> {
    let mut edns = Edns {
        payload: rr.class,
        version: (rr.ttl >> 16) as u8,
        dnssec_ok: rr.ttl & 0x8000 != 0,
        ..Edns::default()
    };
    let data = &p[rr.rdata.clone()];
    let mut at = 0;
    while at < data.len() {
        let code = u16_at(data, at)?;
        let len = u16_at(data, at + 2)? as usize;
        let value = data.get(at + 4..at + 4 + len)?;
        match code {
            OPTION_NSID if len == 0 => edns.nsid = true,
            OPTION_NSID => return None,
            OPTION_SUBNET if edns.subnet.is_none() => edns.subnet = Some(parse_subnet(value)?),
            OPTION_SUBNET => return None,
            OPTION_COOKIE if edns.cookie.is_none() => edns.cookie = Some(parse_cookie(value)?),
            OPTION_COOKIE => return None,
            _ => {}
        }
        at += 4 + len;
    }
    Some(edns)
}

/// RFC 7871 section 6: FORMERR (None) for an unknown family, a prefix longer
/// than the family allows, a wrong address length, or bits set past the prefix.
fn parse_subnet(v: &[u8]) -> Option<ClientSubnet> {
    // Family, source prefix and scope prefix come first, all mandatory.
    if v.len() < 4 {
        return None;
    }
    let family = u16_at(v, 0)?;
    let source_prefix = v[2];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source_prefix > max {
        return None;
    }
    let address_bytes = &v[4..];
    let need = source_prefix.div_ceil(8) as usize;
    if address_bytes.len() != need {
        return None;
    }
    if let (Some(&last), 1..=7) = (address_bytes.last(), source_prefix % 8) {
        let mask = 0xffu8 >> (source_prefix % 8);
        if last & mask != 0 {
            return None;
        }
    }
    let mut address = [0u8; 16];
    address[..need].copy_from_slice(address_bytes);
    Some(ClientSubnet {
        family,
        source_prefix,
        address,
        address_len: need as u8,
    })
}

/// RFC 7873 section 5.2.2: a client cookie of 8 bytes, then nothing or a
/// server cookie of 8 to 32 bytes; other lengths are FORMERR.
fn parse_cookie(v: &[u8]) -> Option<Cookie> {
    if v.len() != 8 && !(16..=40).contains(&v.len()) {
        return None;
    }
    let mut cookie = Cookie {
        client: [0; 8],
        server: [0; 32],
        server_len: (v.len() - 8) as u8,
    };
    cookie.client.copy_from_slice(&v[..8]);
    cookie.server[..v.len() - 8].copy_from_slice(&v[8..]);
    Some(cookie)
}
