//! The DNS Flag Day EDNS compliance matrix (the ednscomp / `genreport`
//! checks), black box against a running `keiko-dns`, plus header checks.
//!
//! Every EDNS check runs twice: for a name in the zone (the SOA at the apex:
//! NOERROR, AA, the SOA in the answer) and for a name outside it (REFUSED,
//! still with OPT when the query had one). Queries are written byte by byte
//! so every flag and option is under the test's control; answers are read
//! both with hickory and with the raw reader of `fuzz/src/check.rs`.
//!
//! One server serves every test of this file (started on first use, stopped
//! when the test process exits); the CHAOS "not configured" test starts its
//! own.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../fuzz/src/check.rs"]
mod check;
mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{
    Server, UdpClient, default_config, default_zone, frame, read_frame, replace_once, tcp_connect,
};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

const NSID: &str = "ns1.test";
const VERSION: &str = "keiko-dns compliance";
const IN_ZONE: &str = "keiko.example.com";
const OUT_OF_ZONE: &str = "keiko.example.net";

const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const NOTIMP: u16 = 4;
const REFUSED: u16 = 5;
const NOTAUTH: u16 = 9;
const BADVERS: u16 = 16;

const OPT_NSID: u16 = 3;
const OPT_ECS: u16 = 8;
const OPT_EXPIRE: u16 = 9;
const OPT_COOKIE: u16 = 10;
const OPT_UNKNOWN: u16 = 100;

const DO: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_Z: u16 = 0x0040;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;

fn config() -> String {
    replace_once(
        &default_config(),
        &format!("nsid         = \"{NSID}\"\n"),
        &format!("nsid         = \"{NSID}\"\nversion      = \"{VERSION}\"\n"),
    )
}

// ---------------------------------------------------------------------------
// The shared server
// ---------------------------------------------------------------------------

static SERVER: Mutex<Option<Server>> = Mutex::new(None);
static ADDR: OnceLock<SocketAddr> = OnceLock::new();

extern "C" fn stop_server() {
    let mut guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    drop(guard.take());
}

/// The address of the shared server, started on first use.
fn server() -> SocketAddr {
    *ADDR.get_or_init(|| {
        let s = Server::start(&config(), &default_zone());
        let addr = s.dns_addr();
        *SERVER.lock().unwrap() = Some(s);
        // SAFETY: registers a plain function, run once at process exit.
        unsafe {
            libc::atexit(stop_server);
        }
        addr
    })
}

// ---------------------------------------------------------------------------
// Queries and answers on the wire
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Opt {
    payload: u16,
    version: u8,
    flags: u16,
    options: Vec<(u16, Vec<u8>)>,
}

fn edns(version: u8) -> Opt {
    Opt {
        payload: 1232,
        version,
        flags: 0,
        options: vec![],
    }
}

impl Opt {
    fn option(mut self, code: u16, value: &[u8]) -> Opt {
        self.options.push((code, value.to_vec()));
        self
    }
    fn flags(mut self, flags: u16) -> Opt {
        self.flags = flags;
        self
    }
    fn payload(mut self, payload: u16) -> Opt {
        self.payload = payload;
        self
    }
    fn wire(&self) -> Vec<u8> {
        let mut p = vec![0, 0, 41];
        p.extend_from_slice(&self.payload.to_be_bytes());
        p.extend_from_slice(&[0, self.version]);
        p.extend_from_slice(&self.flags.to_be_bytes());
        let rdata: Vec<u8> = self
            .options
            .iter()
            .flat_map(|(c, v)| {
                let mut o = c.to_be_bytes().to_vec();
                o.extend_from_slice(&(v.len() as u16).to_be_bytes());
                o.extend_from_slice(v);
                o
            })
            .collect();
        p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        p.extend(rdata);
        p
    }
}

#[derive(Clone)]
struct Q {
    id: u16,
    flags: u16,
    name: String,
    qtype: u16,
    qclass: u16,
    opt: Option<Opt>,
    /// Raw records appended to the additional section after the OPT.
    additional: Vec<Vec<u8>>,
}

fn q(name: &str, qtype: u16) -> Q {
    Q {
        id: rand_id(),
        flags: 0,
        name: name.into(),
        qtype,
        qclass: 1,
        opt: None,
        additional: vec![],
    }
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x4b00);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p
}

impl Q {
    fn opt(mut self, opt: Opt) -> Q {
        self.opt = Some(opt);
        self
    }
    fn flags(mut self, flags: u16) -> Q {
        self.flags = flags;
        self
    }
    fn class(mut self, class: u16) -> Q {
        self.qclass = class;
        self
    }
    fn additional(mut self, record: Vec<u8>) -> Q {
        self.additional.push(record);
        self
    }
    fn wire(&self) -> Vec<u8> {
        let mut p = self.id.to_be_bytes().to_vec();
        p.extend_from_slice(&self.flags.to_be_bytes());
        let ar = u16::from(self.opt.is_some()) + self.additional.len() as u16;
        for n in [1, 0, 0, ar] {
            p.extend_from_slice(&u16::to_be_bytes(n));
        }
        p.extend(wire_name(&self.name));
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some(o) = &self.opt {
            p.extend(o.wire());
        }
        for r in &self.additional {
            p.extend_from_slice(r);
        }
        p
    }
}

/// An answer, raw and read two ways.
struct Reply {
    raw: Vec<u8>,
    wire: check::Wire,
    msg: Message,
}

impl Reply {
    fn from_raw(raw: Vec<u8>) -> Reply {
        let msg = Message::from_vec(&raw)
            .unwrap_or_else(|e| panic!("answer does not parse ({e}): {raw:02x?}"));
        let wire = check::read(&raw).expect("a header");
        Reply { raw, wire, msg }
    }
    fn rcode(&self) -> u16 {
        check::rcode(&self.wire)
    }
    fn flag(&self, f: u16) -> bool {
        self.wire.flags & f != 0
    }
    fn opt(&self) -> &check::Opt {
        self.wire
            .opt
            .as_ref()
            .unwrap_or_else(|| panic!("no OPT in the answer: {:#?}", self.msg))
    }
    fn has_option(&self, code: u16) -> bool {
        self.opt().option(code).is_some()
    }
    fn answer_types(&self) -> Vec<RecordType> {
        self.msg.answers.iter().map(|r| r.record_type()).collect()
    }
}

fn udp(query: &[u8]) -> Reply {
    let client = UdpClient::new(server(), Duration::from_millis(1500));
    let id = u16::from_be_bytes([query[0], query[1]]);
    for _ in 0..3 {
        client.send(query);
        while let Some(raw) = client.recv() {
            if raw.len() >= 2 && u16::from_be_bytes([raw[0], raw[1]]) == id {
                return Reply::from_raw(raw);
            }
        }
    }
    panic!("no UDP answer to {query:02x?}");
}

fn ask(query: &Q) -> Reply {
    let reply = udp(&query.wire());
    assert_eq!(reply.wire.id, query.id, "ID");
    assert!(reply.flag(0x8000), "QR");
    reply
}

fn ask_tcp(query: &Q) -> Reply {
    let mut stream = tcp_connect(server());
    stream.write_all(&frame(&query.wire())).expect("TCP write");
    let reply = Reply::from_raw(read_frame(&mut stream).expect("TCP read"));
    assert_eq!(reply.wire.id, query.id, "ID");
    reply
}

/// The answer the in-zone / out-of-zone name must get when the query is
/// otherwise fine: NOERROR, AA and the SOA; or REFUSED without records.
fn assert_expected(r: &Reply, name: &str) {
    if name == IN_ZONE {
        assert_eq!(r.rcode(), NOERROR, "{:#?}", r.msg);
        assert!(r.flag(FLAG_AA), "AA: {:#?}", r.msg);
        assert_eq!(r.answer_types(), vec![RecordType::SOA], "{:#?}", r.msg);
    } else {
        assert_eq!(r.rcode(), REFUSED, "{:#?}", r.msg);
        assert!(r.msg.answers.is_empty(), "{:#?}", r.msg);
    }
}

/// An OPT answer that repeats nothing it was not asked for: version 0,
/// no flag but DO (as asked), and only options of these codes.
fn assert_clean_opt(r: &Reply, dnssec_ok: bool, allowed: &[u16]) {
    let o = r.opt();
    assert_eq!(o.version, 0, "OPT version 0");
    assert_eq!(o.flags, if dnssec_ok { DO } else { 0 }, "OPT flags");
    for (code, _) in &o.options {
        assert!(allowed.contains(code), "option {code} echoed: {:#?}", r.msg);
    }
}

/// One test per name for each EDNS check.
macro_rules! both_names {
    ($($check:ident),* $(,)?) => {
        mod in_zone {
            $(#[test] fn $check() { super::$check(super::IN_ZONE) })*
        }
        mod out_of_zone {
            $(#[test] fn $check() { super::$check(super::OUT_OF_ZONE) })*
        }
    };
}

both_names!(
    plain_dns,
    edns_0,
    edns_1_is_badvers,
    unknown_option_is_ignored,
    unknown_flag_is_ignored,
    edns_1_with_unknown_option_is_badvers,
    do_bit_is_echoed,
    buffer_512_fits_or_truncates,
    option_list,
    edns_over_tcp,
    nsid,
    expire_is_ignored,
    cookie_gets_a_server_cookie,
    invalid_server_cookie_gets_a_new_one,
    cookie_with_edns_1_is_badvers,
    client_subnet_edns_0,
    client_subnet_edns_1_is_badvers,
    do_with_cd_copies_cd,
    unknown_opcode_is_notimp,
    z_bit_is_cleared,
    ad_in_query_is_cleared,
    unknown_type,
    tsig_unknown_key_is_notauth_badkey,
);

// ---------------------------------------------------------------------------
// The EDNS matrix
// ---------------------------------------------------------------------------

fn plain_dns(name: &str) {
    let r = ask(&q(name, 6));
    assert_expected(&r, name);
    assert!(r.wire.opt.is_none(), "no OPT without one in the query");
}

fn edns_0(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0)));
    assert_expected(&r, name);
    assert_clean_opt(&r, false, &[]);
    assert_eq!(r.opt().payload, 1232, "our payload size");
}

fn edns_1_is_badvers(name: &str) {
    let r = ask(&q(name, 6).opt(edns(1)));
    assert_eq!(r.rcode(), BADVERS, "{:#?}", r.msg);
    assert_clean_opt(&r, false, &[]);
    assert!(r.msg.answers.is_empty(), "no answer with BADVERS");
}

fn unknown_option_is_ignored(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_UNKNOWN, b"")));
    assert_expected(&r, name);
    assert_clean_opt(&r, false, &[]);
}

fn unknown_flag_is_ignored(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).flags(0x4000)));
    assert_expected(&r, name);
    assert_clean_opt(&r, false, &[]);
}

fn edns_1_with_unknown_option_is_badvers(name: &str) {
    let r = ask(&q(name, 6).opt(edns(1).option(OPT_UNKNOWN, b"")));
    assert_eq!(r.rcode(), BADVERS, "{:#?}", r.msg);
    assert_clean_opt(&r, false, &[]);
    assert!(r.msg.answers.is_empty());
}

fn do_bit_is_echoed(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).flags(DO)));
    assert_expected(&r, name);
    assert_clean_opt(&r, true, &[]);
}

fn buffer_512_fits_or_truncates(name: &str) {
    for qtype in [6, 255] {
        let r = ask(&q(name, qtype).opt(edns(0).flags(DO).payload(512)));
        assert!(
            r.raw.len() <= 512,
            "{} bytes for a 512-byte buffer",
            r.raw.len()
        );
        if !r.flag(FLAG_TC) && qtype == 6 {
            assert_expected(&r, name);
        }
        assert_clean_opt(&r, true, &[]);
    }
}

fn option_list(name: &str) {
    let ecs = [0, 1, 24, 0, 192, 0, 2];
    let r = ask(&q(name, 6).opt(
        edns(0)
            .option(OPT_NSID, b"")
            .option(OPT_ECS, &ecs)
            .option(OPT_COOKIE, b"clientck")
            .option(OPT_EXPIRE, b"")
            .option(OPT_UNKNOWN, b"junk"),
    ));
    assert_expected(&r, name);
    assert_clean_opt(&r, false, &[OPT_NSID, OPT_ECS, OPT_COOKIE]);
    assert_eq!(r.opt().option(OPT_NSID), Some(NSID.as_bytes()));
    assert_eq!(&r.opt().option(OPT_ECS).unwrap()[..3], &ecs[..3]);
    assert_eq!(&r.opt().option(OPT_COOKIE).unwrap()[..8], b"clientck");
}

fn edns_over_tcp(name: &str) {
    let r = ask_tcp(&q(name, 6).opt(edns(0)));
    assert_expected(&r, name);
    assert_clean_opt(&r, false, &[]);
}

fn nsid(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_NSID, b"")));
    assert_expected(&r, name);
    assert_eq!(r.opt().option(OPT_NSID), Some(NSID.as_bytes()), "our NSID");
    assert_clean_opt(&r, false, &[OPT_NSID]);
}

fn expire_is_ignored(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_EXPIRE, b"")));
    assert_expected(&r, name);
    assert!(
        !r.has_option(OPT_EXPIRE),
        "EXPIRE from a primary-only server"
    );
    assert_clean_opt(&r, false, &[]);
}

fn cookie_gets_a_server_cookie(name: &str) {
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_COOKIE, b"clientck")));
    assert_expected(&r, name);
    let c = r.opt().option(OPT_COOKIE).expect("a cookie back");
    assert_eq!(c.len(), 24, "client cookie + 16-byte server cookie");
    assert_eq!(&c[..8], b"clientck");
    // The cookie we got back is valid: sending it is still answered.
    let again = ask(&q(name, 6).opt(edns(0).option(OPT_COOKIE, c)));
    assert_expected(&again, name);
    assert_eq!(&again.opt().option(OPT_COOKIE).unwrap()[..8], b"clientck");
}

fn invalid_server_cookie_gets_a_new_one(name: &str) {
    let sent = [&b"clientck"[..], &[1, 0, 0, 0, 0, 0, 0, 0], &[0xee; 8]].concat();
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_COOKIE, &sent)));
    assert_expected(&r, name);
    let c = r.opt().option(OPT_COOKIE).expect("a new cookie");
    assert_eq!(c.len(), 24);
    assert_eq!(&c[..8], b"clientck");
    assert_ne!(&c[8..], &sent[8..], "a fresh server cookie");
}

fn cookie_with_edns_1_is_badvers(name: &str) {
    let r = ask(&q(name, 6).opt(edns(1).option(OPT_COOKIE, b"clientck")));
    assert_eq!(r.rcode(), BADVERS, "{:#?}", r.msg);
    assert_clean_opt(&r, false, &[OPT_COOKIE]);
    assert!(r.msg.answers.is_empty());
}

fn client_subnet_edns_0(name: &str) {
    let ecs = [0, 1, 24, 0, 192, 0, 2];
    let r = ask(&q(name, 6).opt(edns(0).option(OPT_ECS, &ecs)));
    assert_expected(&r, name);
    let back = r.opt().option(OPT_ECS).expect("ECS echoed");
    assert_eq!(back[..3], ecs[..3], "family and source prefix");
    assert_eq!(back[4..], ecs[4..], "address");
    assert!(back[3] <= 32, "scope within the family");
    assert_clean_opt(&r, false, &[OPT_ECS]);
}

fn client_subnet_edns_1_is_badvers(name: &str) {
    let ecs = [0, 1, 24, 0, 192, 0, 2];
    let r = ask(&q(name, 6).opt(edns(1).option(OPT_ECS, &ecs)));
    assert_eq!(r.rcode(), BADVERS, "{:#?}", r.msg);
    assert_clean_opt(&r, false, &[OPT_ECS]);
    assert!(r.msg.answers.is_empty());
}

fn do_with_cd_copies_cd(name: &str) {
    let r = ask(&q(name, 6).flags(FLAG_RD | FLAG_CD).opt(edns(0).flags(DO)));
    assert_expected(&r, name);
    assert!(r.flag(FLAG_CD), "CD copied (RFC 6840 5.9)");
    assert!(!r.flag(FLAG_AD), "AD clear without DNSSEC");
    assert_clean_opt(&r, true, &[]);
}

fn unknown_opcode_is_notimp(name: &str) {
    // Opcode 3 is unassigned; with and without EDNS.
    for opt in [None, Some(edns(0))] {
        let mut query = q(name, 6).flags(3 << 11);
        query.opt = opt.clone();
        let r = ask(&query);
        assert_eq!(r.rcode(), NOTIMP, "{:#?}", r.msg);
        assert_eq!((r.wire.flags >> 11) & 0xf, 3, "opcode copied");
        assert!(r.msg.answers.is_empty());
        assert_eq!(r.wire.opt.is_some(), opt.is_some(), "OPT iff asked");
    }
}

fn z_bit_is_cleared(name: &str) {
    let r = ask(&q(name, 6).flags(FLAG_Z).opt(edns(0)));
    assert_expected(&r, name);
    assert!(!r.flag(FLAG_Z), "Z cleared");
}

fn ad_in_query_is_cleared(name: &str) {
    let r = ask(&q(name, 6).flags(FLAG_AD).opt(edns(0)));
    assert_expected(&r, name);
    assert!(!r.flag(FLAG_AD), "AD clear: we do not validate or sign");
}

fn unknown_type(name: &str) {
    let r = ask(&q(name, 65000).opt(edns(0)));
    if name == IN_ZONE {
        assert_eq!(r.rcode(), NOERROR, "NODATA: {:#?}", r.msg);
        assert!(r.flag(FLAG_AA));
        assert!(r.msg.answers.is_empty(), "no answer");
        let auth: Vec<_> = r.msg.authorities.iter().map(|a| a.record_type()).collect();
        assert_eq!(auth, vec![RecordType::SOA], "SOA in authority");
    } else {
        assert_eq!(r.rcode(), REFUSED);
    }
    assert_clean_opt(&r, false, &[]);
}

/// The TSIG record of an answer: (error, original ID), read raw.
fn tsig_of(r: &Reply) -> Option<(u16, u16)> {
    let p = &r.raw;
    // Walk to the last additional record.
    let mut at = 12;
    let total: usize = r.wire.counts.iter().map(|&c| c as usize).sum();
    let skip_name = |mut at: usize| -> usize {
        loop {
            let len = p[at] as usize;
            if len & 0xc0 == 0xc0 {
                return at + 2;
            }
            at += 1 + len;
            if len == 0 {
                return at;
            }
        }
    };
    let mut last = None;
    for i in 0..total {
        at = skip_name(at);
        if i < r.wire.counts[0] as usize {
            at += 4;
            continue;
        }
        let rtype = u16::from_be_bytes([p[at], p[at + 1]]);
        let rdlen = u16::from_be_bytes([p[at + 8], p[at + 9]]) as usize;
        last = Some((rtype, at + 10..at + 10 + rdlen));
        at += 10 + rdlen;
    }
    let (rtype, rdata) = last?;
    if rtype != 250 {
        return None;
    }
    let d = &p[rdata];
    let mut at = 0;
    while d[at] != 0 {
        at += 1 + d[at] as usize;
    }
    at += 1 + 6 + 2; // root, time signed, fudge
    let mac = u16::from_be_bytes([d[at], d[at + 1]]) as usize;
    at += 2 + mac;
    let original = u16::from_be_bytes([d[at], d[at + 1]]);
    let error = u16::from_be_bytes([d[at + 2], d[at + 3]]);
    Some((error, original))
}

fn tsig_record(id: u16) -> Vec<u8> {
    let mut p = wire_name("unknown-key.example");
    p.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = wire_name("hmac-sha256");
    rdata.extend_from_slice(&[0, 0, 0x6a, 0, 0, 0, 1, 44, 0, 32]);
    rdata.extend_from_slice(&[0xab; 32]);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    p.extend(rdata);
    p
}

fn tsig_unknown_key_is_notauth_badkey(name: &str) {
    let query = q(name, 6).opt(edns(0));
    let query = query.clone().additional(tsig_record(query.id));
    let r = ask(&query);
    assert_eq!(r.rcode(), NOTAUTH, "{:#?}", r.msg);
    assert!(r.msg.answers.is_empty());
    let (error, original) = tsig_of(&r).expect("a TSIG record last");
    assert_eq!(error, 17, "BADKEY");
    assert_eq!(original, query.id, "original ID");
}

// ---------------------------------------------------------------------------
// Header and malformed queries
// ---------------------------------------------------------------------------

#[test]
fn qdcount_2_is_formerr() {
    let mut p = q(IN_ZONE, 6).wire();
    p[5] = 2;
    p.extend(wire_name(IN_ZONE));
    p.extend_from_slice(&[0, 1, 0, 1]);
    let r = udp(&p);
    assert_eq!(r.rcode(), FORMERR, "{:#?}", r.msg);
}

#[test]
fn unknown_class_is_refused() {
    for class in [254, 4] {
        for name in [IN_ZONE, OUT_OF_ZONE] {
            let r = ask(&q(name, 6).class(class).opt(edns(0)));
            assert_eq!(r.rcode(), REFUSED, "class {class} {name}: {:#?}", r.msg);
            assert_clean_opt(&r, false, &[]);
        }
    }
}

fn txt(r: &Reply) -> String {
    match &r.msg.answers[..] {
        [a] => match &a.data {
            RData::TXT(t) => t
                .txt_data
                .iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect(),
            other => panic!("not TXT: {other:?}"),
        },
        other => panic!("one TXT expected: {other:?}"),
    }
}

#[test]
fn chaos_version_bind_and_id_server_from_config() {
    for (name, want) in [
        ("version.bind", VERSION),
        ("version.server", VERSION),
        ("id.server", NSID),
        ("hostname.bind", NSID),
    ] {
        let r = ask(&q(name, 16).class(3));
        assert_eq!(r.rcode(), NOERROR, "{name}: {:#?}", r.msg);
        assert_eq!(txt(&r), want, "{name}");
        assert_eq!(r.msg.answers[0].dns_class, hickory_proto::rr::DNSClass::CH);
    }
    let r = ask(&q("authors.bind", 16).class(3));
    assert_eq!(r.rcode(), REFUSED, "unknown CHAOS name");
}

#[test]
fn chaos_refused_when_not_configured() {
    let config = replace_once(
        &default_config(),
        &format!("nsid         = \"{NSID}\"\n"),
        "",
    );
    let s = Server::start(&config, &default_zone());
    let client = s.udp();
    for name in ["version.bind", "id.server"] {
        let query = q(name, 16).class(3);
        let raw = client.raw(&query.wire()).expect("an answer");
        let r = Reply::from_raw(raw);
        assert_eq!(r.rcode(), REFUSED, "{name}: {:#?}", r.msg);
    }
}

/// A record whose owner name is a compression pointer to itself.
#[test]
fn compression_loop_in_additional_is_survived() {
    let query = q(IN_ZONE, 6).opt(edns(0));
    let mut p = query.wire();
    let at = p.len();
    p.extend_from_slice(&[0xc0 | (at >> 8) as u8, at as u8]);
    p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    p[11] += 1;
    let r = udp(&p);
    assert!(
        matches!(r.rcode(), NOERROR | FORMERR),
        "FORMERR or an answer: {:#?}",
        r.msg
    );
    // And the server is still there.
    assert_expected(&ask(&q(IN_ZONE, 6)), IN_ZONE);
}

/// A compression pointer past the end of the message is FORMERR, in the
/// question and in an additional record.
#[test]
fn pointer_past_the_end_is_formerr() {
    let mut p = q(IN_ZONE, 6).wire();
    p.truncate(12);
    p.extend_from_slice(&[0xc0, 0xff, 0, 6, 0, 1]);
    let r = udp(&p);
    assert_eq!(r.rcode(), FORMERR, "in the question: {:#?}", r.msg);

    let mut p = q(IN_ZONE, 6).opt(edns(0)).wire();
    p.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    p[11] += 1;
    let r = udp(&p);
    assert_eq!(r.rcode(), FORMERR, "in an additional record: {:#?}", r.msg);
}
