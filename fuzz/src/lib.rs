//! Shared pieces of the keiko-dns fuzz targets: the default snapshot, the
//! response invariants (`check`), and a structure-aware query description
//! that serializes to wire bytes.

pub mod check;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use keiko_dns::control::load;
use keiko_dns::dataplane::{Stats, Thread, Transport, Worker};
use keiko_dns::snapshot::{Compiled, Snapshot};
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// The default deployment (`zones/keiko.toml`, with GeoIP and residency),
/// every region healthy but eu-west-1.
pub fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones/keiko.toml");
        let loaded = load(&config).expect("default config loads");
        let compiled = Compiled::build(loaded.config, loaded.zone, loaded.geo, 1).expect("compiles");
        Snapshot::new(Arc::new(compiled), vec![true, false, true], 1)
    })
}

/// A worker with a fixed seed and clock, so a crash reproduces exactly.
pub fn worker() -> Worker {
    let rng = SmallRng::seed_from_u64(1);
    Worker::new(Thread::UdpWorker(0), Arc::new(Stats::new(1)), rng)
}

/// Unix time every query is answered at.
const NOW: u32 = 1_700_000_000;

/// Answers `packet` and checks every invariant.
pub fn answer_and_check(
    worker: &mut Worker,
    out: &mut Vec<u8>,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
) {
    let answered = worker.answer(snapshot(), NOW, packet, client, transport, out);
    check::check(packet, answered.then_some(&out[..]), transport == Transport::Udp);
}

// ---------------------------------------------------------------------------
// Structure-aware queries
// ---------------------------------------------------------------------------

const ZONE_NAMES: &[&str] = &[
    "",
    "ns1",
    "www",
    "api-contracts",
    "api-contracts-geo",
    "api-contracts-weighted",
    "api-contracts-us-east",
    "api-contracts-eu-west",
    "api-contracts-ap-southeast",
    "missing",
];

const TYPES: &[u16] = &[1, 2, 5, 6, 15, 16, 28, 41, 250, 251, 252, 255, 65000, 0];
const CLASSES: &[u16] = &[1, 3, 4, 254, 255, 0];

#[derive(Arbitrary, Debug)]
pub enum Owner {
    /// A name of the zone (index into a list), under the origin.
    Zone(u8),
    /// Arbitrary labels under the origin.
    Labels(Vec<Vec<u8>>),
    /// Out of zone.
    Other(Vec<Vec<u8>>),
    /// CHAOS names.
    VersionBind,
    IdServer,
    /// Raw name bytes, not necessarily well formed.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Code {
    Known(u8),
    Raw(u16),
}

#[derive(Arbitrary, Debug)]
pub enum EcsAddress {
    /// A valid option for this family and prefix (address masked).
    Canonical { v6: bool, source: u8, scope: u8, address: [u8; 16] },
    /// Anything.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum CookieDesc {
    ClientOnly([u8; 8]),
    /// Client cookie and a server cookie minted by the server (valid).
    Valid([u8; 8]),
    /// Client cookie and arbitrary server bytes.
    Raw([u8; 8], Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Opt {
    Nsid(Vec<u8>),
    Ecs(EcsAddress),
    Cookie(CookieDesc),
    Expire(Vec<u8>),
    Padding(u8),
    Other(u16, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub struct EdnsDesc {
    pub payload: u16,
    pub version: u8,
    pub ext_rcode: u8,
    pub dnssec_ok: bool,
    /// Other flag bits (DO masked according to `dnssec_ok`).
    pub other_flags: u16,
    pub options: Vec<Opt>,
    pub non_root_owner: bool,
}

#[derive(Arbitrary, Debug)]
pub enum Extra {
    /// An A record in the answer section (prerequisite-ish junk).
    Answer,
    /// A record in the authority section.
    Authority,
    /// A TSIG record (last in the additional section).
    Tsig { compressed_owner: bool, algorithm: Vec<u8> },
    /// A record with a compression loop in its owner.
    LoopOwner,
    /// A compression pointer past the end.
    PointerPastEnd,
    /// A second OPT.
    SecondOpt,
}

#[derive(Arbitrary, Debug)]
pub enum Mutation {
    Flip { at: u16, bit: u8 },
    Set { at: u16, value: u8 },
    Truncate(u16),
    Insert { at: u16, bytes: Vec<u8> },
    Remove { at: u16, len: u8 },
    Count { which: u8, value: u16 },
}

#[derive(Arbitrary, Debug)]
pub struct StructuredQuery {
    pub id: u16,
    /// Header flags; QR is cleared unless `qr`.
    pub flags: u16,
    pub qr: bool,
    pub no_question: bool,
    pub owner: Owner,
    pub qtype: Code,
    pub qclass: Code,
    pub edns: Option<EdnsDesc>,
    pub extra: Vec<Extra>,
    pub mutations: Vec<Mutation>,
    pub tcp: bool,
    pub client_v6: bool,
    pub client: [u8; 16],
}

fn push_name(p: &mut Vec<u8>, labels: &[&[u8]]) {
    for l in labels {
        let l = &l[..l.len().min(63)];
        if l.is_empty() {
            continue;
        }
        p.push(l.len() as u8);
        p.extend_from_slice(l);
    }
    p.push(0);
}

fn origin_labels() -> [&'static [u8]; 3] {
    [b"keiko", b"example", b"com"]
}

impl StructuredQuery {
    pub fn client(&self) -> IpAddr {
        if self.client_v6 {
            IpAddr::V6(Ipv6Addr::from(self.client))
        } else {
            let c = &self.client;
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        }
    }

    pub fn transport(&self) -> Transport {
        if self.tcp { Transport::Tcp } else { Transport::Udp }
    }

    fn name(&self, p: &mut Vec<u8>) -> u16 {
        let mut class_hint = 1;
        match &self.owner {
            Owner::Zone(i) => {
                let n = ZONE_NAMES[*i as usize % ZONE_NAMES.len()];
                let mut labels: Vec<&[u8]> = vec![n.as_bytes()];
                labels.extend(origin_labels());
                push_name(p, &labels);
            }
            Owner::Labels(ls) => {
                let mut labels: Vec<&[u8]> = ls.iter().take(8).map(|l| l.as_slice()).collect();
                labels.extend(origin_labels());
                push_name(p, &labels);
            }
            Owner::Other(ls) => {
                let mut labels: Vec<&[u8]> = ls.iter().take(8).map(|l| l.as_slice()).collect();
                labels.push(b"example");
                labels.push(b"org");
                push_name(p, &labels);
            }
            Owner::VersionBind => {
                push_name(p, &[b"version", b"bind"]);
                class_hint = 3;
            }
            Owner::IdServer => {
                push_name(p, &[b"id", b"server"]);
                class_hint = 3;
            }
            Owner::Raw(b) => p.extend_from_slice(&b[..b.len().min(300)]),
        }
        class_hint
    }

    fn option(&self, o: &Opt, client: IpAddr, p: &mut Vec<u8>) {
        let mut put = |code: u16, v: &[u8]| {
            let v = &v[..v.len().min(600)];
            p.extend_from_slice(&code.to_be_bytes());
            p.extend_from_slice(&(v.len() as u16).to_be_bytes());
            p.extend_from_slice(v);
        };
        match o {
            Opt::Nsid(v) => put(3, if v.len() % 4 == 0 { &[] } else { v }),
            Opt::Ecs(EcsAddress::Canonical {
                v6,
                source,
                scope,
                address,
            }) => {
                let max = if *v6 { 128 } else { 32 };
                let source = source % (max + 1);
                let n = (source as usize).div_ceil(8);
                let mut a = address[..n].to_vec();
                if source % 8 != 0 {
                    a[n - 1] &= 0xffu8 << (8 - source % 8);
                }
                let mut v = vec![0, if *v6 { 2 } else { 1 }, source, scope % 4];
                v.extend_from_slice(&a);
                put(8, &v);
            }
            Opt::Ecs(EcsAddress::Raw(v)) => put(8, v),
            Opt::Cookie(CookieDesc::ClientOnly(c)) => put(10, c),
            Opt::Cookie(CookieDesc::Valid(c)) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32);
                let sc = keiko_dns::guard::cookie::server_cookie(
                    &snapshot().cookies.current,
                    c,
                    client,
                    now,
                );
                put(10, &[&c[..], &sc[..]].concat());
            }
            Opt::Cookie(CookieDesc::Raw(c, s)) => put(10, &[&c[..], &s[..s.len().min(40)]].concat()),
            Opt::Expire(v) => put(9, &v[..v.len().min(4)]),
            Opt::Padding(n) => put(12, &vec![0; *n as usize]),
            Opt::Other(code, v) => put(*code, v),
        }
    }

    /// The query on the wire.
    pub fn wire(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(512);
        p.extend_from_slice(&self.id.to_be_bytes());
        let flags = (self.flags & 0x7fff) | if self.qr { 0x8000 } else { 0 };
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        let (mut an, mut ns, mut ar) = (0u16, 0u16, 0u16);
        let qd = u16::from(!self.no_question);
        if !self.no_question {
            let hint = self.name(&mut p);
            let qtype = match self.qtype {
                Code::Known(i) => TYPES[i as usize % TYPES.len()],
                Code::Raw(t) => t,
            };
            let qclass = match self.qclass {
                Code::Known(0) => hint,
                Code::Known(i) => CLASSES[i as usize % CLASSES.len()],
                Code::Raw(c) => c,
            };
            p.extend_from_slice(&qtype.to_be_bytes());
            p.extend_from_slice(&qclass.to_be_bytes());
        }
        let a_record = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
        for e in &self.extra {
            match e {
                Extra::Answer => {
                    p.extend_from_slice(&a_record);
                    an += 1;
                }
                Extra::Authority => {
                    p.extend_from_slice(&a_record);
                    ns += 1;
                }
                _ => {}
            }
        }
        // Answer and authority records must precede the additional ones;
        // the loop above wrote them in order, an/ns count them.
        let mut tsig = None;
        for e in &self.extra {
            match e {
                Extra::LoopOwner => {
                    let at = p.len();
                    p.extend_from_slice(&[0xc0 | (at >> 8) as u8, at as u8]);
                    p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
                    ar += 1;
                }
                Extra::PointerPastEnd => {
                    p.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
                    ar += 1;
                }
                Extra::SecondOpt => {
                    p.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
                    ar += 1;
                }
                Extra::Tsig {
                    compressed_owner,
                    algorithm,
                } => tsig = Some((*compressed_owner, algorithm)),
                _ => {}
            }
        }
        if let Some(e) = &self.edns {
            p.push(if e.non_root_owner { 0xc0 } else { 0 });
            if e.non_root_owner {
                p.push(12);
            }
            p.extend_from_slice(&41u16.to_be_bytes());
            p.extend_from_slice(&e.payload.to_be_bytes());
            let flags = (e.other_flags & 0x7fff) | if e.dnssec_ok { 0x8000 } else { 0 };
            p.extend_from_slice(&[e.ext_rcode, e.version]);
            p.extend_from_slice(&flags.to_be_bytes());
            let rdlen_at = p.len();
            p.extend_from_slice(&[0, 0]);
            let client = self.client();
            for o in e.options.iter().take(8) {
                self.option(o, client, &mut p);
            }
            let rdlen = (p.len() - rdlen_at - 2) as u16;
            p[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
            ar += 1;
        }
        if let Some((compressed, algorithm)) = tsig {
            if compressed {
                p.extend_from_slice(&[0xc0, 12]);
            } else {
                push_name(&mut p, &[b"key", b"example"]);
            }
            p.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
            let mut rdata = Vec::new();
            if algorithm.is_empty() {
                push_name(&mut rdata, &[b"hmac-sha256"]);
            } else {
                rdata.extend_from_slice(&algorithm[..algorithm.len().min(64)]);
            }
            // time signed, fudge, MAC size + MAC, original ID, error, other len.
            rdata.extend_from_slice(&[0, 0, 0x6a, 0, 0, 0, 1, 44, 0, 4, 1, 2, 3, 4]);
            rdata.extend_from_slice(&self.id.to_be_bytes());
            rdata.extend_from_slice(&[0, 0, 0, 0]);
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend_from_slice(&rdata);
            ar += 1;
        }
        for (i, n) in [qd, an, ns, ar].into_iter().enumerate() {
            p[4 + 2 * i..6 + 2 * i].copy_from_slice(&n.to_be_bytes());
        }
        for m in self.mutations.iter().take(4) {
            let len = p.len();
            match m {
                Mutation::Flip { at, bit } if len > 0 => p[*at as usize % len] ^= 1 << (bit % 8),
                Mutation::Set { at, value } if len > 0 => p[*at as usize % len] = *value,
                Mutation::Truncate(n) => p.truncate(*n as usize % (len + 1)),
                Mutation::Insert { at, bytes } => {
                    let at = *at as usize % (len + 1);
                    p.splice(at..at, bytes.iter().take(64).copied());
                }
                Mutation::Remove { at, len: n } if len > 0 => {
                    let at = *at as usize % len;
                    let end = (at + *n as usize).min(len);
                    p.drain(at..end);
                }
                Mutation::Count { which, value } if len >= 12 => {
                    let i = 4 + 2 * (*which as usize % 4);
                    p[i..i + 2].copy_from_slice(&value.to_be_bytes());
                }
                _ => {}
            }
        }
        p
    }
}
