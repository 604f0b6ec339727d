//! The sans-I/O answer core: query bytes, client address and the current
//! snapshot in, response bytes out. Every transport and the unit tests go
//! through [`Worker::answer`]; it never locks, awaits or allocates (the
//! output buffer keeps its capacity between queries).

mod parse;
pub mod stats;

use std::net::IpAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::snapshot::{Lookup, Snapshot};
pub use parse::{ClientSubnet, Edns, Malformed, Query, parse};
use parse::{HEADER_LEN, TYPE_OPT};
pub use stats::{Rcode, Stats, Transport};

/// Our EDNS UDP payload size: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on nearly every path.
pub const EDNS_PAYLOAD: u16 = 1232;
/// The largest DNS message (TCP).
pub const MAX_MESSAGE: usize = 65535;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_CD: u16 = 0x0010;
const OPCODE_MASK: u16 = 0x7800;
const CLASS_IN: u16 = 1;
const CLASS_CH: u16 = 3;
const TYPE_TXT: u16 = 16;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const OPTION_NSID: u16 = 3;
const OPTION_SUBNET: u16 = 8;

/// One data-plane worker: its counters row and its random numbers.
pub struct Worker {
    pub index: usize,
    rng: SmallRng,
    stats: Arc<Stats>,
}

impl Worker {
    pub fn new(index: usize, stats: Arc<Stats>) -> Worker {
        Worker {
            index,
            rng: SmallRng::seed_from_u64(rand::random()),
            stats,
        }
    }

    /// Answers `packet` from `client` into `out`. Returns false when the
    /// packet deserves no answer at all (too short, or a response).
    pub fn answer(
        &mut self,
        snap: &Snapshot,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        self.stats.row(self.index).query(transport);
        let query = match parse(packet) {
            Ok(q) => q,
            Err(Malformed::Drop) => {
                self.stats.row(self.index).dropped();
                return false;
            }
            Err(Malformed::FormErr { question_end, edns }) => {
                formerr(packet, question_end, edns, out);
                self.stats.row(self.index).response(Rcode::FormErr);
                return true;
            }
        };
        let mut r = Response::new(&query, packet, transport);
        let rcode = self.respond(snap, &query, client, &mut r, out);
        let truncated = r.finish(out);
        let stats = self.stats.row(self.index);
        if truncated {
            stats.truncated();
        }
        stats.response(rcode);
        true
    }

    fn respond<'a>(
        &mut self,
        snap: &'a Snapshot,
        q: &Query,
        client: IpAddr,
        r: &mut Response<'a>,
        out: &mut Vec<u8>,
    ) -> Rcode {
        let config = snap.config();
        if let Some(nsid) = &config.server.nsid
            && q.edns.as_ref().is_some_and(|e| e.nsid)
        {
            r.nsid = Some(nsid.as_bytes());
        }
        if q.edns.as_ref().is_some_and(|e| e.version > 0) {
            return r.error(Rcode::BadVers, out);
        }
        if q.opcode() != 0 {
            return r.error(Rcode::NotImp, out);
        }
        if q.tsig {
            return r.error(Rcode::NotAuth, out);
        }
        match q.qclass {
            CLASS_IN => {}
            CLASS_CH => return self.chaos(snap, q, r, out),
            _ => return r.error(Rcode::Refused, out),
        }
        if matches!(q.qtype, TYPE_AXFR | TYPE_IXFR) {
            return r.error(Rcode::Refused, out);
        }
        let subnet = q.edns.as_ref().and_then(|e| e.subnet);
        let located = match subnet {
            Some(s) if s.source_prefix > 0 => s.ip(),
            _ => client,
        };
        let rng = &mut self.rng;
        match snap.lookup(q.qname(), q.qtype, located, &mut |n| rng.random_range(0..n)) {
            Lookup::Refused => r.error(Rcode::Refused, out),
            Lookup::Answer {
                prepared,
                scope,
                steered,
            } => {
                if let Some((record, region, fail_open)) = steered {
                    snap.compiled.counters.count(self.index, record, region);
                    if fail_open {
                        self.stats.row(self.index).fail_open();
                    }
                }
                if subnet.is_some_and(|s| s.source_prefix > 0) {
                    r.scope = scope.unwrap_or(0);
                }
                r.header(
                    prepared.rcode,
                    prepared.authoritative,
                    [
                        prepared.answer_count,
                        prepared.authority_count,
                        prepared.additional_count,
                    ],
                    out,
                );
                out.extend_from_slice(&prepared.body);
                Rcode::from_wire(prepared.rcode)
            }
        }
    }

    /// CHAOS TXT `version.bind` and `id.server` (and their aliases), from
    /// config; REFUSED when not configured.
    fn chaos(&self, snap: &Snapshot, q: &Query, r: &mut Response<'_>, out: &mut Vec<u8>) -> Rcode {
        let server = &snap.config().server;
        let text = match q.qname() {
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => server.version.as_deref(),
            b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => server.nsid.as_deref(),
            _ => None,
        };
        let Some(text) = text.filter(|_| matches!(q.qtype, TYPE_TXT | TYPE_ANY)) else {
            return r.error(Rcode::Refused, out);
        };
        let text = &text.as_bytes()[..text.len().min(255)];
        r.header(0, true, [1, 0, 0], out);
        out.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 3, 0, 0, 0, 0]);
        out.extend_from_slice(&(text.len() as u16 + 1).to_be_bytes());
        out.push(text.len() as u8);
        out.extend_from_slice(text);
        Rcode::NoError
    }
}

/// A response being written: header and question first, then the caller's
/// sections, then [`Response::finish`] adds OPT and enforces the size limit.
struct Response<'a> {
    packet: &'a [u8],
    query: &'a Query,
    limit: usize,
    ext_rcode: u8,
    scope: u8,
    nsid: Option<&'a [u8]>,
    /// Length of header plus question, where truncation cuts.
    question_end: usize,
}

impl<'a> Response<'a> {
    fn new(query: &'a Query, packet: &'a [u8], transport: Transport) -> Response<'a> {
        let limit = match (transport, &query.edns) {
            (Transport::Tcp, _) => MAX_MESSAGE,
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(e)) => e.payload.clamp(512, EDNS_PAYLOAD) as usize,
        };
        Response {
            packet,
            query,
            limit,
            ext_rcode: 0,
            scope: 0,
            nsid: None,
            question_end: 0,
        }
    }

    /// Header with the question echoed as the client wrote it.
    fn header(&mut self, rcode: u8, aa: bool, counts: [u16; 3], out: &mut Vec<u8>) {
        let q = self.query;
        let mut flags =
            FLAG_QR | (q.flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | u16::from(rcode & 0xf);
        if aa {
            flags |= FLAG_AA;
        }
        let additional = counts[2] + u16::from(q.edns.is_some());
        out.extend_from_slice(&q.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        for n in [1, counts[0], counts[1], additional] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.packet[HEADER_LEN..q.question_end]);
        self.question_end = out.len();
    }

    /// An answer with no records and `rcode` (extended codes go to OPT).
    fn error(&mut self, rcode: Rcode, out: &mut Vec<u8>) -> Rcode {
        let wire = rcode.wire();
        self.ext_rcode = (wire >> 4) as u8;
        self.header((wire & 0xf) as u8, false, [0, 0, 0], out);
        rcode
    }

    /// Appends OPT; if the whole does not fit the client's limit, cuts back
    /// to the question and sets TC. Returns whether it truncated.
    fn finish(&self, out: &mut Vec<u8>) -> bool {
        self.opt(out);
        if out.len() <= self.limit {
            return false;
        }
        out.truncate(self.question_end);
        out[2] |= (FLAG_TC >> 8) as u8;
        let additional = u16::from(self.query.edns.is_some());
        out[6..12].copy_from_slice(&[0, 0, 0, 0, (additional >> 8) as u8, additional as u8]);
        self.opt(out);
        true
    }

    fn opt(&self, out: &mut Vec<u8>) {
        let Some(edns) = &self.query.edns else {
            return;
        };
        out.extend_from_slice(&[0, (TYPE_OPT >> 8) as u8, TYPE_OPT as u8]);
        out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        let do_bit = if edns.dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[self.ext_rcode, 0, do_bit, 0]);
        let rdlen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        if let Some(nsid) = self.nsid {
            out.extend_from_slice(&OPTION_NSID.to_be_bytes());
            out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
            out.extend_from_slice(nsid);
        }
        if let Some(s) = &edns.subnet {
            write_subnet(s, self.scope, out);
        }
        let rdlen = (out.len() - rdlen_at - 2) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// RFC 7871 section 7.2.1: echo family, source prefix and address; add the
/// scope. With source prefix 0 the scope must be 0 too.
fn write_subnet(s: &ClientSubnet, scope: u8, out: &mut Vec<u8>) {
    let scope = if s.source_prefix == 0 { 0 } else { scope };
    out.extend_from_slice(&OPTION_SUBNET.to_be_bytes());
    out.extend_from_slice(&(4 + u16::from(s.address_len)).to_be_bytes());
    out.extend_from_slice(&s.family.to_be_bytes());
    out.extend_from_slice(&[s.source_prefix, scope]);
    out.extend_from_slice(&s.address[..s.address_len as usize]);
}

/// FORMERR for a query we could not fully read: the question is echoed only
/// if it was readable, and an OPT is added if the query carried one.
fn formerr(packet: &[u8], question_end: Option<usize>, edns: bool, out: &mut Vec<u8>) {
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let flags = FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | 1;
    out.extend_from_slice(&packet[..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    let qd = u16::from(question_end.is_some());
    for n in [qd, 0, 0, u16::from(edns)] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    if let Some(end) = question_end {
        out.extend_from_slice(&packet[HEADER_LEN..end]);
    }
    if edns {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod tests;
