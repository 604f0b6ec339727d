//! The offered load and the first half of the checker: UDP clients that
//! send a fixed rate each from their own loopback address (exempt from rate
//! limiting, under the limit, above it with DNS cookies, and one flooding
//! one name), a pool of TCP clients that open, query and close connections,
//! and one TCP connection kept open across every change. Each answer is
//! checked at once for everything that never changes (header, question,
//! static records, cookies); steered answers go to the timeline check in
//! `main.rs` with the moments the query was sent and answered.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use socket2::{Domain, Protocol, Socket, Type};

use crate::model::{PINNED, REGIONS, region_of_v4, region_of_v6};
use crate::server::{ORIGIN, STATIC_NAME, STATIC_V4, STEERED_TTL};

/// How long a query may wait for its answer before it is lost.
pub(crate) const TIMEOUT: f64 = 2.0;

// ---------------------------------------------------------------------------
// Time, phases and counts
// ---------------------------------------------------------------------------

/// Seconds since the soak started, the one time base of every record.
#[derive(Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock(Instant::now())
    }
    pub(crate) fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Phases of the run; counts are kept per phase of the query's sending.
pub(crate) const WARMUP: u8 = 0;
pub(crate) const BASELINE: u8 = 1;
pub(crate) const SOAK: u8 = 2;
pub(crate) const PHASES: usize = 3;

/// Client groups, by what rate limiting does with them.
pub(crate) const GROUPS: [&str; 5] = ["exempt", "plain", "cookie", "flood", "tcp"];
const FLOOD: usize = 3;
const TCP: usize = 4;

/// Counts per phase and group; lost and wrong are the verdicts.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) sent: [[AtomicU64; GROUPS.len()]; PHASES],
    pub(crate) answered: [[AtomicU64; GROUPS.len()]; PHASES],
    pub(crate) lost: [[AtomicU64; GROUPS.len()]; PHASES],
    /// Answers that came after their query was counted lost.
    pub(crate) late: AtomicU64,
    /// Lost queries sent within 1 s of a change (counted in `lost` too).
    pub(crate) lost_near_change: AtomicU64,
    /// Truncated answers to the flood (rate limiting's slip).
    pub(crate) slipped: AtomicU64,
    /// Answers the flood did not get (rate limiting's drops).
    pub(crate) flood_unanswered: AtomicU64,
    /// Answers checked immediately and found wrong (steered answers are
    /// counted by the timeline check).
    pub(crate) wrong: AtomicU64,
    /// Queries the senders could not send on time (the load generator fell
    /// behind, so the offered load was lower).
    pub(crate) behind: AtomicU64,
    pub(crate) tcp_connections: AtomicU64,
    /// TCP connections the server closed or reset with a query unanswered.
    pub(crate) tcp_cut: AtomicU64,
    /// The kept-open connection reconnected (takeover mode only).
    pub(crate) tcp_reconnects: AtomicU64,
    pub(crate) send_errors: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sum(row: &[AtomicU64]) -> u64 {
    row.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// What the run shares between its threads.
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) phase: AtomicU8,
    pub(crate) stop: AtomicBool,
    pub(crate) tally: Tally,
    /// Steered answers for the timeline check.
    pub(crate) steered: Mutex<Sender<Steered>>,
    /// Examples of wrong answers for the report.
    pub(crate) wrong_examples: Mutex<Vec<String>>,
    /// Start times of changes, to tell lost queries near a change apart.
    pub(crate) change_times: Mutex<Vec<f64>>,
    /// Takeover mode: connections may be closed by an exiting server.
    pub(crate) takeover: bool,
}

impl Shared {
    pub(crate) fn wrong(&self, what: String) {
        add(&self.tally.wrong, 1);
        let mut ex = self
            .wrong_examples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ex.len() < 20 {
            ex.push(what);
        }
    }

    fn lost(&self, phase: u8, group: usize, sent: f64) {
        add(&self.tally.lost[usize::from(phase)][group], 1);
        let near = self
            .change_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .take(16)
            .any(|&c| (sent - c).abs() <= 1.0 || (sent < c && c - sent <= TIMEOUT));
        if near {
            add(&self.tally.lost_near_change, 1);
        }
    }
}

/// A steered answer: which regions it names and when it was asked and
/// answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steered {
    pub(crate) kind: Kind,
    pub(crate) regions: u8,
    pub(crate) sent: f64,
    pub(crate) answered: f64,
    pub(crate) tcp: bool,
}

// ---------------------------------------------------------------------------
// Queries and the immediate checks
// ---------------------------------------------------------------------------

/// The questions asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    WeightedA,
    WeightedAaaa,
    FailoverA,
    Pinned,
    Static,
    Nxdomain,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::WeightedA | Kind::WeightedAaaa => "api-contracts-weighted",
            Kind::FailoverA => "api-contracts",
            Kind::Pinned => "api-contracts-pinned",
            Kind::Static => STATIC_NAME,
            Kind::Nxdomain => "no-such-name",
        }
    }
    fn rtype(self) -> RecordType {
        match self {
            Kind::WeightedAaaa => RecordType::AAAA,
            _ => RecordType::A,
        }
    }
    /// The mix of most clients, out of 100: weighted 45 %, failover 25 %.
    fn pick(roll: u64) -> Kind {
        match roll % 100 {
            0..35 => Kind::WeightedA,
            35..45 => Kind::WeightedAaaa,
            45..70 => Kind::FailoverA,
            70..80 => Kind::Pinned,
            80..90 => Kind::Static,
            _ => Kind::Nxdomain,
        }
    }
}

/// xorshift64: the query mix, reproducible and without a lock.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How a query carries EDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edns {
    None,
    Plain,
    /// A client cookie, and the server cookie when one is known.
    Cookie,
}

/// The wire form of a query, RD clear as resolvers send to authoritative
/// servers.
fn query_bytes(
    id: u16,
    kind: Kind,
    edns: Edns,
    client: &[u8; 8],
    server: Option<&[u8]>,
) -> Vec<u8> {
    let mut q = Vec::with_capacity(96);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    if edns != Edns::None {
        q[11] = 1;
    }
    for label in kind.name().split('.').chain(ORIGIN.split('.')) {
        if !label.is_empty() {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    q.extend_from_slice(&u16::from(kind.rtype()).to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if edns != Edns::None {
        // OPT: root owner, type 41, payload 1232, no extended flags.
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        if edns == Edns::Cookie {
            let len = 8 + server.map_or(0, <[u8]>::len);
            q.extend_from_slice(&((len + 4) as u16).to_be_bytes());
            q.extend_from_slice(&[0, 10]);
            q.extend_from_slice(&(len as u16).to_be_bytes());
            q.extend_from_slice(client);
            q.extend_from_slice(server.unwrap_or_default());
        } else {
            q.extend_from_slice(&[0, 0]);
        }
    }
    q
}

/// What an answer turned out to be.
enum Verdict {
    /// Right, and nothing more to check.
    Right,
    /// Right so far; which regions it names goes to the timeline check.
    Steered(u8),
    /// Truncated by rate limiting (only the flood may get this).
    Slipped,
    Wrong(String),
}

/// The checks that never depend on the state. `cookie`: the client cookie
/// sent, whose echo must come back with a new server cookie (returned).
fn check(
    raw: &[u8],
    id: u16,
    kind: Kind,
    edns: Edns,
    cookie: &[u8; 8],
    tcp: bool,
) -> (Verdict, Option<Vec<u8>>) {
    let m = match Message::from_vec(raw) {
        Ok(m) => m,
        Err(e) => return (Verdict::Wrong(format!("unparsable answer: {e}")), None),
    };
    let h = &m.metadata;
    let wrong = |why: String| (Verdict::Wrong(format!("{kind:?}: {why}")), None);
    if h.id != id || h.message_type != MessageType::Response || h.op_code != OpCode::Query {
        return wrong(format!("bad header {h:?}"));
    }
    if h.recursion_desired || h.recursion_available {
        return wrong("RD or RA set".into());
    }
    let fq = format!("{}.{ORIGIN}", kind.name());
    match m.queries.as_slice() {
        [q] if q.name.to_ascii().eq_ignore_ascii_case(&fq) && q.query_type == kind.rtype() => {}
        other => return wrong(format!("question not echoed: {other:?}")),
    }
    // EDNS is echoed exactly when it was sent, with the cookie.
    let mut server_cookie = None;
    match (edns, &m.edns) {
        (Edns::None, None) => {}
        (Edns::Plain, Some(_)) => {}
        (Edns::Cookie, Some(e)) => match e.option(EdnsCode::Cookie) {
            Some(EdnsOption::Unknown(10, c)) if c.len() == 24 && &c[..8] == cookie && c[8] == 1 => {
                server_cookie = Some(c[8..].to_vec());
            }
            other => return wrong(format!("cookie not answered right: {other:?}")),
        },
        (sent, got) => return wrong(format!("EDNS sent {sent:?}, answered {got:?}")),
    }
    if h.truncation {
        if tcp || kind != Kind::Static || !m.answers.is_empty() {
            return wrong("truncated".into());
        }
        return (Verdict::Slipped, server_cookie);
    }
    if !h.authoritative {
        return wrong("AA clear".into());
    }
    let verdict = match kind {
        Kind::Nxdomain => {
            let soa = m
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA);
            if h.response_code == ResponseCode::NXDomain && m.answers.is_empty() && soa {
                Verdict::Right
            } else {
                return wrong(format!("{:?} with {:?}", h.response_code, m.answers));
            }
        }
        _ => {
            if h.response_code != ResponseCode::NoError {
                return wrong(format!("{:?}", h.response_code));
            }
            let [r] = m.answers.as_slice() else {
                return wrong(format!("{} answers: {:?}", m.answers.len(), m.answers));
            };
            if !r.name.to_ascii().eq_ignore_ascii_case(&fq) {
                return wrong(format!("answer for {}", r.name));
            }
            let ttl = if kind == Kind::Static {
                300
            } else {
                STEERED_TTL
            };
            if r.ttl != ttl {
                return wrong(format!("TTL {}", r.ttl));
            }
            let region = match (&r.data, kind) {
                (RData::A(a), Kind::Static) if a.0.octets() == STATIC_V4 => None,
                (RData::A(a), Kind::Pinned) if a.0 == REGIONS[PINNED].v4 => None,
                (RData::A(a), Kind::WeightedA | Kind::FailoverA) => region_of_v4(a.0),
                (RData::AAAA(a), Kind::WeightedAaaa) => region_of_v6(a.0),
                (other, _) => return wrong(format!("answer {other:?}")),
            };
            match (kind, region) {
                (Kind::Static | Kind::Pinned, _) => Verdict::Right,
                (_, Some(r)) => Verdict::Steered(1 << r),
                (_, None) => return wrong(format!("address of no region: {:?}", r.data)),
            }
        }
    };
    (verdict, server_cookie)
}

// ---------------------------------------------------------------------------
// UDP clients
// ---------------------------------------------------------------------------

/// One UDP client: its source address, rate and way of asking.
pub(crate) struct UdpPlan {
    pub(crate) group: usize,
    pub(crate) source: Ipv4Addr,
    pub(crate) qps: f64,
}

#[derive(Clone, Copy)]
struct Pending {
    sent: f64,
    phase: u8,
    kind: Kind,
    edns: Edns,
}

struct Outstanding {
    slots: Vec<Option<Pending>>,
    /// Ids in the order sent, for the timeout sweep.
    order: std::collections::VecDeque<(u16, f64)>,
}

/// Starts a UDP client's sender and receiver threads.
pub(crate) fn udp_client(
    shared: Arc<Shared>,
    server: SocketAddr,
    plan: UdpPlan,
    seed: u64,
) -> Result<Vec<JoinHandle<()>>> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Room for every answer even when this process is not scheduled for a
    // while: a drop here would be counted against the server.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&SocketAddr::new(IpAddr::V4(plan.source), 0).into())?;
    socket.connect(&server.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let outstanding = Arc::new(Mutex::new(Outstanding {
        slots: vec![None; 65536],
        order: Default::default(),
    }));
    let cookie: [u8; 8] = seed.to_be_bytes();
    let server_cookie: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();

    let sender = {
        let (shared, socket, outstanding, server_cookie) = (
            shared.clone(),
            socket.try_clone()?,
            outstanding.clone(),
            server_cookie.clone(),
        );
        thread::Builder::new()
            .name(format!("udp-send-{}", plan.source))
            .spawn(move || {
                let mut rng = Rng::new(seed);
                let mut id: u16 = (seed & 0xffff) as u16;
                let interval = 1.0 / plan.qps;
                let mut due = shared.clock.now();
                while !shared.stop.load(Ordering::Relaxed) {
                    let now = shared.clock.now();
                    if now < due {
                        thread::sleep(Duration::from_secs_f64((due - now).min(0.05)));
                        continue;
                    }
                    // Never make up more than 100 ms: a burst would trip the
                    // rate limit the plain client must stay under.
                    if now - due > 0.1 {
                        let missed = ((now - due) / interval) as u64;
                        add(&shared.tally.behind, missed);
                        due = now;
                    }
                    due += interval;
                    id = id.wrapping_add(1);
                    let kind = if plan.group == FLOOD {
                        Kind::Static
                    } else {
                        Kind::pick(rng.next())
                    };
                    let edns = match plan.group {
                        2 => Edns::Cookie,
                        0 if rng.next().is_multiple_of(2) => Edns::Plain,
                        _ => Edns::None,
                    };
                    let sc = server_cookie
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let bytes = query_bytes(id, kind, edns, &cookie, sc.as_deref());
                    let phase = shared.phase.load(Ordering::Relaxed);
                    let sent = shared.clock.now();
                    {
                        let mut o = outstanding.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(old) = o.slots[usize::from(id)].replace(Pending {
                            sent,
                            phase,
                            kind,
                            edns,
                        }) {
                            // 65,536 queries in flight on one socket: the old
                            // one waited far longer than the timeout.
                            shared.lost(old.phase, plan.group, old.sent);
                        }
                        o.order.push_back((id, sent));
                    }
                    add(&shared.tally.sent[usize::from(phase)][plan.group], 1);
                    if socket.send(&bytes).is_err() {
                        add(&shared.tally.send_errors, 1);
                    }
                }
            })?
    };

    let receiver = thread::Builder::new()
        .name(format!("udp-recv-{}", plan.source))
        .spawn(move || {
            let mut buf = [0u8; 2048];
            let mut last_sweep = 0.0;
            // After the senders stop, answers still due are waited for.
            let mut stopped_at: Option<f64> = None;
            loop {
                let now = shared.clock.now();
                if shared.stop.load(Ordering::Relaxed) {
                    let at = *stopped_at.get_or_insert(now);
                    if now - at > TIMEOUT + 0.2 {
                        break;
                    }
                }
                if now - last_sweep > 0.1 {
                    last_sweep = now;
                    let mut o = outstanding.lock().unwrap_or_else(|e| e.into_inner());
                    while let Some(&(id, sent)) = o.order.front() {
                        if now - sent < TIMEOUT {
                            break;
                        }
                        o.order.pop_front();
                        let slot = &mut o.slots[usize::from(id)];
                        if slot.is_some_and(|p| p.sent == sent) {
                            let p = slot.take();
                            if let Some(p) = p {
                                if plan.group == FLOOD {
                                    add(&shared.tally.flood_unanswered, 1);
                                } else {
                                    shared.lost(p.phase, plan.group, p.sent);
                                }
                            }
                        }
                    }
                }
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(_) => {
                        add(&shared.tally.send_errors, 1);
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let answered = shared.clock.now();
                if n < 2 {
                    shared.wrong(format!("{} bytes from the server", n));
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let pending = outstanding.lock().unwrap_or_else(|e| e.into_inner()).slots
                    [usize::from(id)]
                .take();
                let Some(p) = pending else {
                    add(&shared.tally.late, 1);
                    continue;
                };
                add(&shared.tally.answered[usize::from(p.phase)][plan.group], 1);
                let (verdict, sc) = check(&buf[..n], id, p.kind, p.edns, &cookie, false);
                if let Some(sc) = sc {
                    *server_cookie.lock().unwrap_or_else(|e| e.into_inner()) = Some(sc);
                }
                match verdict {
                    Verdict::Right => {}
                    Verdict::Slipped if plan.group == FLOOD => add(&shared.tally.slipped, 1),
                    Verdict::Slipped => shared.wrong(format!(
                        "{} (not the flood) was rate limited: {:?} truncated at {answered:.2}s",
                        GROUPS[plan.group], p.kind
                    )),
                    Verdict::Steered(regions) => {
                        let s = Steered {
                            kind: p.kind,
                            regions,
                            sent: p.sent,
                            answered,
                            tcp: false,
                        };
                        let _ = shared
                            .steered
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .send(s);
                    }
                    Verdict::Wrong(why) => shared.wrong(format!(
                        "UDP {} at {answered:.2}s: {why}",
                        GROUPS[plan.group]
                    )),
                }
            }
            // What is left was never answered.
            let o = outstanding.lock().unwrap_or_else(|e| e.into_inner());
            for p in o.slots.iter().flatten() {
                if plan.group == FLOOD {
                    add(&shared.tally.flood_unanswered, 1);
                } else {
                    shared.lost(p.phase, plan.group, p.sent);
                }
            }
        })?;
    Ok(vec![sender, receiver])
}

// ---------------------------------------------------------------------------
// TCP clients
// ---------------------------------------------------------------------------

/// One exchange on a TCP connection: `Ok(None)` when the connection was
/// closed before any byte of the answer.
fn tcp_exchange(conn: &mut TcpStream, query: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    conn.write_all(&framed)?;
    tcp_read(conn)
}

fn tcp_read(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match conn.read(&mut len[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    conn.read_exact(&mut len[1..])?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut answer)?;
    Ok(Some(answer))
}

fn tcp_verdict(shared: &Shared, raw: &[u8], id: u16, kind: Kind, sent: f64) {
    let answered = shared.clock.now();
    match check(raw, id, kind, Edns::None, &[0; 8], true).0 {
        Verdict::Right => {}
        Verdict::Steered(regions) => {
            let s = Steered {
                kind,
                regions,
                sent,
                answered,
                tcp: true,
            };
            let _ = shared
                .steered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(s);
        }
        Verdict::Slipped => shared.wrong(format!("TCP {kind:?} truncated")),
        Verdict::Wrong(why) => shared.wrong(format!("TCP at {answered:.2}s: {why}")),
    }
}

/// A pool client: connect, ask 1 to 8 questions (pipelined half the time),
/// close, wait, again; `conns_per_second` for this client.
pub(crate) fn tcp_pool_client(
    shared: Arc<Shared>,
    server: SocketAddr,
    conns_per_second: f64,
    seed: u64,
) -> Result<JoinHandle<()>> {
    Ok(thread::Builder::new()
        .name("tcp-pool".into())
        .spawn(move || {
            let mut rng = Rng::new(seed);
            let mut id: u16 = 0;
            while !shared.stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_secs_f64(1.0 / conns_per_second));
                let phase = shared.phase.load(Ordering::Relaxed);
                let n = 1 + rng.next() % 8;
                let pipelined = rng.next().is_multiple_of(2);
                let start = shared.clock.now();
                let queries: Vec<(u16, Kind)> = (0..n)
                    .map(|_| {
                        id = id.wrapping_add(1);
                        (id, Kind::pick(rng.next()))
                    })
                    .collect();
                add(&shared.tally.sent[usize::from(phase)][TCP], n);
                add(&shared.tally.tcp_connections, 1);
                let mut conn = match TcpStream::connect_timeout(&server, Duration::from_secs(2)) {
                    Ok(c) => c,
                    Err(e) => {
                        shared.wrong(format!("TCP connect at {start:.2}s failed: {e}"));
                        for _ in 0..n {
                            shared.lost(phase, TCP, start);
                        }
                        continue;
                    }
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs_f64(TIMEOUT)));
                let _ = conn.set_nodelay(true);
                let mut answered = 0;
                let result: std::io::Result<()> = (|| {
                    if pipelined {
                        let mut all = Vec::new();
                        for &(qid, kind) in &queries {
                            let q = query_bytes(qid, kind, Edns::None, &[0; 8], None);
                            all.extend_from_slice(&(q.len() as u16).to_be_bytes());
                            all.extend_from_slice(&q);
                        }
                        conn.write_all(&all)?;
                        for &(qid, kind) in &queries {
                            let Some(a) = tcp_read(&mut conn)? else {
                                return Err(ErrorKind::UnexpectedEof.into());
                            };
                            tcp_verdict(&shared, &a, qid, kind, start);
                            answered += 1;
                        }
                    } else {
                        for &(qid, kind) in &queries {
                            let sent = shared.clock.now();
                            let q = query_bytes(qid, kind, Edns::None, &[0; 8], None);
                            let Some(a) = tcp_exchange(&mut conn, &q)? else {
                                return Err(ErrorKind::UnexpectedEof.into());
                            };
                            tcp_verdict(&shared, &a, qid, kind, sent);
                            answered += 1;
                        }
                    }
                    Ok(())
                })();
                add(&shared.tally.answered[usize::from(phase)][TCP], answered);
                if let Err(e) = result {
                    add(&shared.tally.tcp_cut, 1);
                    shared.wrong(format!(
                        "TCP connection from {start:.2}s cut after {answered} of {n} answers: {e}"
                    ));
                    for _ in answered..n {
                        shared.lost(phase, TCP, start);
                    }
                }
            }
        })?)
}

/// One connection kept open through every reload, a query each second
/// (under the server's 10 s idle limit): a reload must never close it. In
/// takeover mode the old server closes it when it exits, between queries;
/// then it reconnects, and only a query left unanswered counts.
pub(crate) fn tcp_kept_open(shared: Arc<Shared>, server: SocketAddr) -> Result<JoinHandle<()>> {
    Ok(thread::Builder::new()
        .name("tcp-kept".into())
        .spawn(move || {
            let mut conn: Option<TcpStream> = None;
            let mut id: u16 = 0;
            let mut rng = Rng::new(0x5eed);
            while !shared.stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_secs(1));
                let phase = shared.phase.load(Ordering::Relaxed);
                id = id.wrapping_add(1);
                let kind = Kind::pick(rng.next());
                let q = query_bytes(id, kind, Edns::None, &[0; 8], None);
                add(&shared.tally.sent[usize::from(phase)][TCP], 1);
                let mut tries = 0;
                loop {
                    tries += 1;
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match TcpStream::connect_timeout(&server, Duration::from_secs(2)) {
                            Ok(c) => {
                                add(&shared.tally.tcp_connections, 1);
                                let _ = c.set_read_timeout(Some(Duration::from_secs_f64(TIMEOUT)));
                                c
                            }
                            Err(e) => {
                                shared.wrong(format!("kept-open TCP reconnect failed: {e}"));
                                shared.lost(phase, TCP, shared.clock.now());
                                break;
                            }
                        },
                    };
                    let mut c = c;
                    let sent = shared.clock.now();
                    match tcp_exchange(&mut c, &q) {
                        Ok(Some(a)) => {
                            add(&shared.tally.answered[usize::from(phase)][TCP], 1);
                            tcp_verdict(&shared, &a, id, kind, sent);
                            conn = Some(c);
                            break;
                        }
                        // Closed between queries: by an exiting server in
                        // takeover mode; never by a reload.
                        Ok(None) if shared.takeover && tries == 1 => {
                            add(&shared.tally.tcp_reconnects, 1);
                        }
                        other => {
                            add(&shared.tally.tcp_cut, 1);
                            shared.wrong(format!(
                                "kept-open TCP connection at {sent:.2}s: {other:?}"
                            ));
                            shared.lost(phase, TCP, sent);
                            break;
                        }
                    }
                }
            }
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_carry_the_cookie() {
        let raw = query_bytes(7, Kind::WeightedAaaa, Edns::Cookie, &[1; 8], Some(&[2; 16]));
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries[0].query_type, RecordType::AAAA);
        assert_eq!(
            m.queries[0].name.to_ascii(),
            "api-contracts-weighted.keiko.example.com."
        );
        let e = m.edns.unwrap();
        assert_eq!(e.max_payload(), 1232);
        let Some(EdnsOption::Unknown(10, c)) = e.option(EdnsCode::Cookie) else {
            panic!("no cookie");
        };
        assert_eq!(c.len(), 24);
        assert!(
            Message::from_vec(&query_bytes(1, Kind::Static, Edns::None, &[0; 8], None))
                .unwrap()
                .edns
                .is_none()
        );
    }
}
