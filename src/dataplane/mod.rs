//! The sans-I/O answer core: query bytes, client address, the current
//! snapshot and the time in, response bytes out. Every transport and the
//! unit tests go through [`Worker::answer`]; it never locks, awaits or
//! allocates (the output buffer keeps its capacity between queries), and
//! reads no clock and no entropy of its own: the caller passes the time and
//! constructs the worker with its random number generator, so a test can
//! fix both.

mod parse;
pub mod stats;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt;
use rand::rngs::SmallRng;

use crate::guard::cookie::{self, Verdict};
use crate::guard::rrl::Decision;
use crate::snapshot::{Lookup, Outcome, Snapshot};
use crate::wire::{
    CLASS_CH, CLASS_IN, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN, OPCODE_MASK,
    OPTION_COOKIE, OPTION_NSID, OPTION_SUBNET, TSIG_BADKEY, TYPE_ANY, TYPE_AXFR, TYPE_IXFR,
    TYPE_OPT, TYPE_TSIG, TYPE_TXT,
};
pub use parse::{ClientSubnet, Edns, Malformed, Query, parse};
pub use stats::{Rcode, Stats, Thread, Transport};

/// Set to stop the data-plane threads.
pub type Shutdown = Arc<AtomicBool>;

/// Our EDNS UDP payload size: the DNS Flag Day 2020 value, which avoids IP
/// fragmentation on nearly every path.
pub const EDNS_PAYLOAD: u16 = 1232;
/// The largest DNS message (TCP).
pub const MAX_MESSAGE: usize = 65535;

/// One data-plane worker: its counters row, its random numbers and the
/// query it is answering.
pub struct Worker {
    steer: Steer,
    /// Responses this worker has dropped by rate limiting, for slipping.
    drops: u32,
    /// Reused for every packet (see [`parse`]).
    query: Query,
}

/// What answering needs besides the query, kept apart from it so both can
/// be borrowed at once.
struct Steer {
    index: usize,
    rng: SmallRng,
    stats: Arc<Stats>,
}

impl Worker {
    /// A worker for `thread`, counting into its row of `stats` and drawing
    /// weighted answers from `rng` (seed it from entropy in production).
    pub fn new(thread: Thread, stats: Arc<Stats>, rng: SmallRng) -> Worker {
        Worker {
            steer: Steer {
                index: stats.row_index(thread),
                rng,
                stats,
            },
            drops: 0,
            query: Query::default(),
        }
    }

    /// Answers `packet` from `client` into `out`, at `now` (Unix seconds,
    /// from [`unix_seconds`]: cookies and rate limiting need no finer
    /// clock, so transports read it once per batch). Returns false when the
    /// packet deserves no answer at all (too short, a response, or dropped
    /// by rate limiting).
    pub fn answer(
        &mut self,
        snap: &Snapshot,
        now: u32,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        let Worker {
            steer,
            drops,
            query,
        } = self;
        steer.row().query(transport);
        match parse(packet, query) {
            Ok(()) => {}
            Err(Malformed::Drop) => {
                steer.row().dropped();
                return false;
            }
            Err(Malformed::FormErr { question_end, edns }) => {
                unread_error(packet, Rcode::FormErr, question_end, edns, out);
                steer.row().response(Rcode::FormErr);
                return true;
            }
            Err(Malformed::NotImp { question_end, edns }) => {
                unread_error(packet, Rcode::NotImp, question_end, edns, out);
                steer.row().response(Rcode::NotImp);
                return true;
            }
        }
        let query = &*query;
        let mut r = Response::new(query, packet, transport);
        let rcode = steer.respond(snap, now, query, client, &mut r, out);
        let mut truncated = r.finish(out);
        let stats = steer.row();
        if transport == Transport::Udp
            && let Some(limiter) = &snap.compiled.rate_limiter
            && !r.trusted
            && !limiter.exempt(client)
        {
            match limiter.decide(client, response_kind(query, rcode), now, drops) {
                Decision::Send => {}
                Decision::Drop => {
                    stats.rate_limited();
                    return false;
                }
                Decision::Slip => {
                    stats.slipped();
                    r.truncate(out);
                    truncated = false;
                }
            }
        }
        if truncated {
            stats.truncated();
        }
        stats.response(rcode);
        true
    }
}

impl Worker {
    /// The counters this worker writes, for what its transport counts.
    pub fn row(&self) -> &stats::WorkerStats {
        self.steer.row()
    }
}

impl Steer {
    fn row(&self) -> &stats::WorkerStats {
        self.stats.row(self.index)
    }

    fn respond<'a>(
        &mut self,
        snap: &'a Snapshot,
        now: u32,
        q: &Query,
        client: IpAddr,
        r: &mut Response<'a>,
        out: &mut Vec<u8>,
    ) -> Rcode {
        let config = snap.config();
        if let Some(c) = q.edns.as_ref().and_then(|e| e.cookie) {
            // The cookie is bound to the address the packet came from, not
            // to an ECS address, which anyone can claim.
            let sent = &c.server[..c.server_len as usize];
            r.trusted = matches!(
                cookie::check(&snap.cookies, &c.client, sent, client, now),
                Verdict::Valid
            );
            let fresh = cookie::server_cookie(&snap.cookies.current, &c.client, client, now);
            r.cookie[..8].copy_from_slice(&c.client);
            r.cookie[8..].copy_from_slice(&fresh);
            r.send_cookie = true;
        }
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
        if !q.has_question {
            // RFC 7873 5.4: a cookie-only query gets just the cookie.
            r.header(0, false, [0, 0, 0], out);
            return Rcode::NoError;
        }
        if q.tsig.is_some() {
            // No TSIG keys are configured, so every key is unknown (RFC 8945 5.2).
            r.badkey = true;
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
        let dnssec_ok = q.edns.as_ref().is_some_and(|e| e.dnssec_ok);
        let draw = &mut |n| rng.random_range(0..n);
        match snap.lookup(q.qname(), q.qtype, located, dnssec_ok, draw) {
            Lookup::Refused => r.error(Rcode::Refused, out),
            Lookup::Answer {
                prepared,
                scope,
                steered,
                proof,
                rotate,
            } => {
                let prepared = prepared.variant(dnssec_ok);
                let proof_records = proof.records();
                if let Some((record, region, outcome)) = steered {
                    let row = self.stats.row(self.index);
                    match outcome {
                        Outcome::Chosen => {}
                        Outcome::FailOpen => row.fail_open(),
                        Outcome::NoData => row.all_down(0),
                        Outcome::ServFail => row.all_down(1),
                    }
                    if outcome.answered() {
                        snap.compiled.counters.count(self.index, record, region);
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
                        prepared.authority_count + proof_records,
                        prepared.additional_count,
                    ],
                    out,
                );
                let shift = q.qname().len().saturating_sub(snap.compiled.origin_len());
                prepared.write_rotated(out, shift, rotate);
                out.extend_from_slice(proof.bytes);
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
    /// Client cookie and our fresh server cookie, sent when `send_cookie`.
    cookie: [u8; 24],
    send_cookie: bool,
    /// The query carried a valid server cookie: exempt from rate limiting.
    trusted: bool,
    /// Answer a TSIG-signed query with a BADKEY TSIG record.
    badkey: bool,
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
            cookie: [0; 24],
            send_cookie: false,
            trusted: false,
            badkey: false,
            question_end: 0,
        }
    }

    /// Header with the question echoed as the client wrote it.
    fn header(&mut self, rcode: u8, aa: bool, counts: [u16; 3], out: &mut Vec<u8>) {
        let q = self.query;
        let mut flags = FLAG_QR | echoed_flags(q.flags) | u16::from(rcode & 0xf);
        if aa {
            flags |= FLAG_AA;
        }
        let additional = counts[2] + self.extra_records();
        // The query's header and question in one copy, then the header
        // rewritten in place (the ID stays).
        out.extend_from_slice(&self.packet[..q.question_end]);
        let words = [
            flags,
            u16::from(q.has_question),
            counts[0],
            counts[1],
            additional,
        ];
        for (i, word) in words.into_iter().enumerate() {
            out[2 + 2 * i..4 + 2 * i].copy_from_slice(&word.to_be_bytes());
        }
        self.question_end = out.len();
    }

    /// An answer with no records and `rcode` (extended codes go to OPT).
    fn error(&mut self, rcode: Rcode, out: &mut Vec<u8>) -> Rcode {
        let wire = rcode.wire();
        self.ext_rcode = (wire >> 4) as u8;
        self.header((wire & 0xf) as u8, false, [0, 0, 0], out);
        rcode
    }

    /// OPT and TSIG records this response appends after the sections.
    fn extra_records(&self) -> u16 {
        u16::from(self.query.edns.is_some()) + u16::from(self.tsig_parts().is_some())
    }

    /// Appends OPT (and TSIG); if the whole does not fit the client's
    /// limit, cuts back to the question and sets TC. Returns whether it
    /// truncated.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        self.trailer(out);
        if out.len() <= self.limit {
            return false;
        }
        self.truncate(out);
        if out.len() > self.limit {
            // Even header, question and OPT/TSIG are too big (a TSIG with
            // long names): the TSIG record is the one that can go.
            self.badkey = false;
            self.truncate(out);
        }
        true
    }

    /// Cuts the response back to header and question, with TC set.
    fn truncate(&self, out: &mut Vec<u8>) {
        out.truncate(self.question_end);
        out[2] |= (FLAG_TC >> 8) as u8;
        let additional = self.extra_records();
        out[6..12].copy_from_slice(&[0, 0, 0, 0, (additional >> 8) as u8, additional as u8]);
        self.trailer(out);
    }

    fn trailer(&self, out: &mut Vec<u8>) {
        self.opt(out);
        self.tsig(out);
    }

    fn tsig_parts(&self) -> Option<(&[u8], &[u8])> {
        let t = self.query.tsig.as_ref().filter(|_| self.badkey)?;
        Some((
            self.packet.get(t.owner.clone()?)?,
            self.packet.get(t.algorithm_and_time.clone()?)?,
        ))
    }

    /// RFC 8945 5.2: an unsigned TSIG record naming the key, with error
    /// BADKEY and an empty MAC.
    fn tsig(&self, out: &mut Vec<u8>) {
        let Some((owner, algorithm_and_time)) = self.tsig_parts() else {
            return;
        };
        out.extend_from_slice(owner);
        out.extend_from_slice(&TYPE_TSIG.to_be_bytes());
        out.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
        // MAC size, original ID, error, other length.
        let rdlen = algorithm_and_time.len() + 2 + 2 + 2 + 2;
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        out.extend_from_slice(algorithm_and_time);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.query.id.to_be_bytes());
        out.extend_from_slice(&TSIG_BADKEY.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }

    fn opt(&self, out: &mut Vec<u8>) {
        let Some(edns) = &self.query.edns else {
            return;
        };
        let do_bit = if edns.dnssec_ok { 0x80 } else { 0 };
        let [payload_hi, payload_lo] = EDNS_PAYLOAD.to_be_bytes();
        // Root owner, type, our payload size, extended RCODE, version 0,
        // flags, and RDLENGTH filled in below.
        out.extend_from_slice(&[
            0,
            (TYPE_OPT >> 8) as u8,
            TYPE_OPT as u8,
            payload_hi,
            payload_lo,
            self.ext_rcode,
            0,
            do_bit,
            0,
            0,
            0,
        ]);
        let rdlen_at = out.len() - 2;
        if let Some(nsid) = self.nsid {
            out.extend_from_slice(&OPTION_NSID.to_be_bytes());
            out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
            out.extend_from_slice(nsid);
        }
        if let Some(s) = &edns.subnet {
            write_subnet(s, self.scope, out);
        }
        if self.send_cookie {
            out.extend_from_slice(&OPTION_COOKIE.to_be_bytes());
            out.extend_from_slice(&24u16.to_be_bytes());
            out.extend_from_slice(&self.cookie);
        }
        let rdlen = (out.len() - rdlen_at - 2) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// What makes responses "identical" for rate limiting: the name and type
/// of positive answers, the zone for NXDOMAIN, the code for errors.
fn response_kind(q: &Query, rcode: Rcode) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    (rcode as u8).hash(&mut h);
    if rcode == Rcode::NoError {
        q.qname().hash(&mut h);
        q.qtype.hash(&mut h);
    }
    h.finish()
}

/// The clock [`Worker::answer`] runs on: whole seconds since the Unix epoch.
pub fn unix_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
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

/// The header bits a response copies from its query: the opcode always
/// (RFC 1035 4.1.1); RD and CD only for QUERY, the one opcode they are
/// defined for (RFC 6895 2), so a NOTIMP answer carries neither (as the
/// ISC DNS compliance checker expects). AA, TC, RA, Z and AD are never
/// copied.
fn echoed_flags(query_flags: u16) -> u16 {
    match query_flags & OPCODE_MASK {
        0 => query_flags & (FLAG_RD | FLAG_CD),
        opcode => opcode,
    }
}

/// FORMERR or NOTIMP for a query we could not fully read: the question is
/// echoed only if it was readable, and an OPT is added if the query
/// carried one.
fn unread_error(
    packet: &[u8],
    rcode: Rcode,
    question_end: Option<usize>,
    edns: bool,
    out: &mut Vec<u8>,
) {
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let flags = FLAG_QR | echoed_flags(flags) | rcode.wire();
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
