//! Invariants every answer of `Worker::answer` must satisfy, checked
//! against the query bytes with a reader written independently of the
//! server's parser. Shared by the fuzz targets (`fuzz/src/lib.rs`) and by
//! `tests/proptest_core.rs` (which includes this file with `#[path]`).
//!
//! Depends only on `hickory-proto` and std.

#![allow(dead_code)]

/// The DNS Flag Day 2020 payload size the server caps UDP answers at.
pub const EDNS_PAYLOAD: usize = 1232;

fn u16_at(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

/// Skips a (possibly compressed) name; the offset just past it.
fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = *p.get(at)? as usize;
        match len & 0xc0 {
            0xc0 => return Some(at + 2).filter(|&e| e <= p.len()),
            0 if len == 0 => return Some(at + 1),
            0 => at += 1 + len,
            _ => return None,
        }
        if at - start > 255 {
            return None;
        }
    }
}

/// One resource record's type, TTL, rdata range and end.
struct Rr {
    owner: std::ops::Range<usize>,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: std::ops::Range<usize>,
}

fn read_rr(p: &[u8], at: usize) -> Option<Rr> {
    let name_end = skip_name(p, at)?;
    let rtype = u16_at(p, name_end)?;
    let class = u16_at(p, name_end + 2)?;
    let ttl = (u32::from(u16_at(p, name_end + 4)?) << 16) | u32::from(u16_at(p, name_end + 6)?);
    let rdlen = u16_at(p, name_end + 8)? as usize;
    let rdata = name_end + 10..name_end + 10 + rdlen;
    (rdata.end <= p.len()).then_some(Rr {
        owner: at..name_end,
        rtype,
        class,
        ttl,
        rdata,
    })
}

/// The EDNS Client Subnet option as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ecs {
    pub family: u16,
    pub source: u8,
    pub scope: u8,
    pub address: Vec<u8>,
}

impl Ecs {
    fn from_wire(v: &[u8]) -> Option<Ecs> {
        Some(Ecs {
            family: u16_at(v, 0)?,
            source: *v.get(2)?,
            scope: *v.get(3)?,
            address: v.get(4..)?.to_vec(),
        })
    }

    /// RFC 7871 section 6 validity (as docs/reference.md §3.2 reads it).
    pub fn valid(&self) -> bool {
        let max = match self.family {
            1 => 32,
            2 => 128,
            _ => return false,
        };
        if self.source > max || self.address.len() != (self.source as usize).div_ceil(8) {
            return false;
        }
        let rest = self.source % 8;
        match (self.address.last(), rest) {
            (Some(&last), 1..=7) => last & (0xff >> rest) == 0,
            _ => true,
        }
    }

    pub fn family_max(&self) -> u8 {
        if self.family == 1 { 32 } else { 128 }
    }
}

/// An OPT record read from a message.
#[derive(Debug, Clone, Default)]
pub struct Opt {
    pub payload: u16,
    pub ext_rcode: u8,
    pub version: u8,
    /// The 16 flag bits of the TTL (DO is 0x8000).
    pub flags: u16,
    pub options: Vec<(u16, Vec<u8>)>,
    /// The options could all be read (lengths consistent).
    pub options_ok: bool,
}

impl Opt {
    fn read(p: &[u8], rr: &Rr) -> Opt {
        let data = &p[rr.rdata.clone()];
        let mut options = Vec::new();
        let mut at = 0;
        let mut ok = true;
        while at < data.len() {
            let (Some(code), Some(len)) = (u16_at(data, at), u16_at(data, at + 2)) else {
                ok = false;
                break;
            };
            let Some(value) = data.get(at + 4..at + 4 + len as usize) else {
                ok = false;
                break;
            };
            options.push((code, value.to_vec()));
            at += 4 + len as usize;
        }
        Opt {
            payload: rr.class,
            ext_rcode: (rr.ttl >> 24) as u8,
            version: (rr.ttl >> 16) as u8,
            flags: rr.ttl as u16,
            options,
            options_ok: ok,
        }
    }

    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn count(&self, code: u16) -> usize {
        self.options.iter().filter(|(c, _)| *c == code).count()
    }
}

/// What can be read from a message without trusting it.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    pub id: u16,
    pub flags: u16,
    pub counts: [u16; 4],
    /// Bytes of the first question (name, type, class), when readable and
    /// the name is uncompressed.
    pub question: Option<Vec<u8>>,
    /// The single OPT record of the additional section, if it could be found
    /// (the sections before it readable).
    pub opt: Option<Opt>,
    /// Every record of every section could be stepped over.
    pub records_ok: bool,
    /// The additional section holds a TSIG record.
    pub tsig: bool,
}

pub fn read(p: &[u8]) -> Option<Wire> {
    if p.len() < 12 {
        return None;
    }
    let mut w = Wire {
        id: u16_at(p, 0)?,
        flags: u16_at(p, 2)?,
        counts: [u16_at(p, 4)?, u16_at(p, 6)?, u16_at(p, 8)?, u16_at(p, 10)?],
        ..Wire::default()
    };
    let mut at = 12;
    for i in 0..w.counts[0] {
        // Questions: uncompressed names only (the first, at least).
        let start = at;
        let mut end = start;
        let mut ok = false;
        while let Some(&len) = p.get(end) {
            if len & 0xc0 != 0 || end - start + 1 + len as usize > 255 {
                break;
            }
            end += 1 + len as usize;
            if len == 0 {
                ok = end <= p.len();
                break;
            }
        }
        if !ok || end + 4 > p.len() {
            return Some(w);
        }
        if i == 0 {
            w.question = Some(p[start..end + 4].to_vec());
        }
        at = end + 4;
    }
    let before_additional = w.counts[1] as usize + w.counts[2] as usize;
    for _ in 0..before_additional {
        match read_rr(p, at) {
            Some(rr) => at = rr.rdata.end,
            None => return Some(w),
        }
    }
    for _ in 0..w.counts[3] {
        let Some(rr) = read_rr(p, at) else {
            return Some(w);
        };
        w.tsig |= rr.rtype == 250;
        if rr.rtype == 41 && w.opt.is_none() && rr.owner.len() == 1 && p[rr.owner.start] == 0 {
            w.opt = Some(Opt::read(p, &rr));
        }
        at = rr.rdata.end;
    }
    w.records_ok = true;
    Some(w)
}

/// The response code including OPT's extended bits.
pub fn rcode(w: &Wire) -> u16 {
    (w.flags & 0xf) | (u16::from(w.opt.as_ref().map_or(0, |o| o.ext_rcode)) << 4)
}

/// What a response to `query` must look like; panics with a description
/// (and the bytes) when an invariant breaks. `udp` selects the size check.
/// `response` is `None` when the server chose not to answer.
pub fn check(query: &[u8], response: Option<&[u8]>, udp: bool) {
    let fail = |what: String| -> ! {
        panic!(
            "{what}\nquery    ({} bytes): {:02x?}\nresponse: {:02x?}",
            query.len(),
            query,
            response
        )
    };
    let q = read(query);
    let Some(r) = response else {
        let may_drop = query.len() < 12 || query[2] & 0x80 != 0;
        if !may_drop {
            fail("no response to a query of >= 12 bytes with QR clear".into());
        }
        return;
    };
    if query.len() < 12 || query[2] & 0x80 != 0 {
        fail("a response to a packet that deserves none (short or QR set)".into());
    }
    let q = q.expect("query of >= 12 bytes is readable");
    if let Err(e) = hickory_proto::op::Message::from_vec(r) {
        fail(format!("response does not parse with hickory: {e}"));
    }
    let Some(w) = read(r) else {
        fail("response shorter than a header".into());
    };
    if !w.records_ok {
        fail("response records cannot be stepped over".into());
    }
    if w.id != q.id {
        fail(format!("ID {:#06x} != query ID {:#06x}", w.id, q.id));
    }
    if w.flags & 0x8000 == 0 {
        fail("QR clear in response".into());
    }
    if (w.flags >> 11) & 0xf != (q.flags >> 11) & 0xf {
        fail("opcode not copied".into());
    }
    if w.flags & 0x0070 & !0x0010 != 0 {
        fail(format!("Z or AD set in response (flags {:#06x})", w.flags));
    }
    if w.counts[0] > 1 {
        fail("more than one question in response".into());
    }
    if w.counts[0] == 1 {
        match (&w.question, &q.question) {
            (Some(a), Some(b)) if a == b => {}
            _ => fail(format!(
                "question not echoed byte for byte: {:02x?} vs query's {:02x?}",
                w.question, q.question
            )),
        }
    }
    let r_rcode = rcode(&w);
    // A well-formed single question that is not FORMERR must be echoed.
    if q.counts[0] == 1 && q.question.is_some() && r_rcode != 1 && w.counts[0] != 1 {
        fail("answer without the question".into());
    }
    // RFC 1035 4.1.1, RFC 6895 2: only QUERY is implemented. Any other
    // opcode is NOTIMP (BADVERS first when EDNS says so) whatever the
    // sections hold, with AA, RD and CD clear: they are defined for QUERY.
    let opcode = (q.flags >> 11) & 0xf;
    // FORMERR, and NOTIMP for another opcode (its FORMERR, as it were),
    // answer from the header alone: they may leave out what they could
    // not read (OPT, its DO bit).
    let unread = r_rcode == 1 || (opcode != 0 && r_rcode == 4);
    if opcode != 0 {
        if r_rcode != 4 && r_rcode != 16 {
            fail(format!("opcode {opcode} answered {r_rcode}, not NOTIMP"));
        }
        if w.flags & (0x0400 | 0x0100 | 0x0010) != 0 {
            fail(format!(
                "NOTIMP with AA, RD or CD set (flags {:#06x})",
                w.flags
            ));
        }
    } else if q.counts[0] > 1 && r_rcode != 1 {
        fail("QDCOUNT > 1 must be FORMERR".into());
    }
    // Size limit on UDP.
    if udp {
        let limit = match &q.opt {
            Some(o) => (o.payload as usize).clamp(512, EDNS_PAYLOAD),
            None => 512,
        };
        if r.len() > limit {
            fail(format!(
                "UDP response of {} bytes over the client limit {limit}",
                r.len()
            ));
        }
    } else if r.len() > 65535 {
        fail(format!(
            "TCP response of {} bytes does not fit the 2-byte length",
            r.len()
        ));
    }
    if let Some(ro) = &w.opt {
        if !ro.options_ok {
            fail("response OPT options malformed".into());
        }
        if ro.flags & 0x7fff != 0 {
            fail(format!(
                "response OPT flags {:#06x}: only DO may be set",
                ro.flags
            ));
        }
        if ro.version != 0 {
            fail("response OPT version != 0".into());
        }
        if q.opt.is_none() && q.records_ok {
            fail("OPT in the response to a query without one".into());
        }
        if let Some(qo) = &q.opt
            && ro.flags & 0x8000 != qo.flags & 0x8000
            && !unread
        {
            fail("DO not echoed".into());
        }
        for (code, _) in &ro.options {
            let asked = q.opt.as_ref().is_some_and(|qo| qo.count(*code) > 0);
            if !matches!(code, 3 | 8 | 10) || !asked {
                fail(format!("option {code} in response was not asked for"));
            }
            if ro.count(*code) > 1 {
                fail(format!("option {code} twice in response"));
            }
        }
        if let Some(v) = ro.option(10) {
            let qc = q.opt.as_ref().and_then(|o| o.option(10)).unwrap_or(&[]);
            if v.len() != 24 || qc.len() < 8 || v[..8] != qc[..8] {
                fail("server cookie does not carry the client cookie".into());
            }
        }
        if let Some(v) = ro.option(8) {
            let Some(re) = Ecs::from_wire(v) else {
                fail("unreadable ECS in response".into());
            };
            let qe = q
                .opt
                .as_ref()
                .and_then(|o| o.option(8))
                .and_then(Ecs::from_wire);
            let Some(qe) = qe else {
                fail("ECS in the response to a query without one".into());
            };
            if (re.family, re.source, &re.address) != (qe.family, qe.source, &qe.address) {
                fail(format!("ECS not echoed: {re:?} for {qe:?}"));
            }
            if re.scope > re.family_max() {
                fail(format!("ECS scope {} over the family maximum", re.scope));
            }
            if re.source == 0 && re.scope != 0 {
                fail("ECS scope must be 0 when the source prefix is 0".into());
            }
        } else if !unread
            && q.opt.as_ref().is_some_and(|o| {
                o.options_ok
                    && o.count(8) == 1
                    && o.option(8)
                        .and_then(Ecs::from_wire)
                        .is_some_and(|e| e.valid())
            })
        {
            fail("valid ECS not echoed".into());
        }
    } else if !unread && q.opt.is_some() {
        fail("query had OPT, answer (not FORMERR or NOTIMP) has none".into());
    }
    if r_rcode > 0xf && w.opt.is_none() {
        fail("extended rcode without OPT".into());
    }
    if w.flags & 0x0200 != 0 && udp {
        // Truncated: nothing but the question and OPT/TSIG.
        if w.counts[1] != 0 || w.counts[2] != 0 {
            fail("TC set with records in answer/authority".into());
        }
    }
}
