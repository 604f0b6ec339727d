//! Hostile TCP clients against the admin API and DNS over TCP
//! (docs/reference.md §3.1 and §4, Limits): clients that send slowly, that
//! open connections and send nothing, and that never read what they are
//! sent. Each is closed within its limit, a new client is served at once
//! while the attack goes on, and the server's resident memory comes back
//! within 1 MB of what it was before.
//!
//! Every test runs its own server; the limits asserted are the built-in
//! ones (admin: 5 s for a request head or between requests, 5 s for a
//! body, 10 s for a response the client does not read; DNS over TCP: 5 s for a query to
//! arrive once started, 10 s idle or with its answers unread).

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// The admin API's head (and keep-alive idle) limit.
const ADMIN_HEAD: Duration = Duration::from_secs(5);
/// How long a request body may take once its head has arrived.
const ADMIN_BODY: Duration = Duration::from_secs(5);
/// How long a response may go unread before the admin API closes.
const ADMIN_WRITE: Duration = Duration::from_secs(10);
/// DNS over TCP: how long a query may take once started.
const DNS_READ: Duration = Duration::from_secs(5);
/// DNS over TCP: idle, or answers left unread, this long closes.
const DNS_IDLE: Duration = Duration::from_secs(10);
/// Room for scheduling on a loaded machine, on top of a limit.
const SLACK: Duration = Duration::from_secs(3);
/// "At once", for a new client while an attack goes on.
const AT_ONCE: Duration = Duration::from_secs(1);
/// How far resident memory may stay above where it started.
const RSS_MARGIN_KIB: u64 = 1024;

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Waits (up to 5 s) for the server's RSS to come back within the margin
/// of `before`; the last reading.
fn rss_settles(server: &Server, before: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = resident_kib(server.pid());
        if now <= before + RSS_MARGIN_KIB || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Connects to `addr` with no timeouts of the server's doing in the way.
fn connect(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect")
}

/// Connects with a small receive window, as a client that never reads
/// looks once its buffer is full: the server's writes stall soon, instead
/// of after the many megabytes loopback would otherwise buffer.
fn connect_deaf(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    socket.into()
}

/// Whether the peer has closed `stream`: reads (and discards) what is
/// left, and says whether that ends in EOF or a reset within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Asserts every stream is closed by the server within `wait` from now.
fn assert_all_closed(streams: &mut [TcpStream], wait: Duration, what: &str) {
    let deadline = Instant::now() + wait;
    for (i, stream) in streams.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(stream, left.max(Duration::from_millis(1))),
            "{what}: connection {i} still open past its limit"
        );
    }
}

/// The server's open file descriptors (its sockets among them).
fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("proc fd")
        .count()
}

/// Waits until the server holds no more descriptors than `baseline`, that
/// is, until it has closed every connection of an attack, without reading
/// from them (which would unstick a server waiting for its client to
/// read). Whether that happened by `deadline`.
fn server_closed_them_by(server: &Server, baseline: usize, deadline: Instant) -> bool {
    loop {
        if open_fds(server) <= baseline {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh admin client gets `/health` within [`AT_ONCE`].
fn admin_serves_at_once(server: &Server, what: &str) {
    let started = Instant::now();
    let reply = server.get("/health");
    assert_eq!(reply.status, 200, "{what}: {reply:?}");
    assert!(
        started.elapsed() < AT_ONCE,
        "{what}: a new admin client waited {:?}",
        started.elapsed()
    );
}

/// A fresh DNS-over-TCP client gets its answer within [`AT_ONCE`].
fn dns_tcp_serves_at_once(server: &Server, what: &str) {
    let started = Instant::now();
    let answer = server.query_tcp("status", RecordType::A);
    assert_eq!(
        addresses(&answer),
        vec!["192.0.2.80".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        started.elapsed() < AT_ONCE,
        "{what}: a new TCP client waited {:?}",
        started.elapsed()
    );
}

/// Starts a server and warms what the tests use (the admin API, a TCP
/// answer) so the allocator has settled; its RSS then.
fn warmed_server() -> (Server, u64) {
    warmed(Server::start_default())
}

fn warmed(server: Server) -> (Server, u64) {
    for _ in 0..20 {
        server.get("/metrics");
        server.query_tcp("status", RecordType::A);
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = resident_kib(server.pid());
    (server, before)
}

fn assert_rss_back(server: &Server, before: u64, what: &str) {
    let after = rss_settles(server, before);
    eprintln!("{what}: RSS {before} KiB before, {after} KiB after");
    assert!(
        after <= before + RSS_MARGIN_KIB,
        "{what}: RSS {before} KiB -> {after} KiB"
    );
}

#[test]
fn admin_slow_headers_are_closed_at_the_head_deadline() {
    let (server, before) = warmed_server();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(server.admin_addr());
            s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // One header byte every 300 ms: every byte is progress, but the head
    // never completes.
    let started = Instant::now();
    let mut open = slow.len();
    while started.elapsed() < ADMIN_HEAD + SLACK && open > 0 {
        open = 0;
        for s in &mut slow {
            if s.write_all(b"X").is_ok() {
                open += 1;
            }
        }
        if started.elapsed() > Duration::from_secs(1) && started.elapsed() < Duration::from_secs(3)
        {
            admin_serves_at_once(&server, "during slow headers");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_all_closed(&mut slow, Duration::from_millis(500), "slow headers");
    assert!(
        started.elapsed() < ADMIN_HEAD + SLACK,
        "closed after {:?}",
        started.elapsed()
    );
    // A head past the size limit is refused, not buffered.
    let mut big = connect(server.admin_addr());
    let mut head = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < 64 * 1024 {
        head.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let _ = big.write_all(&head);
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = Vec::new();
    let _ = big.read_to_end(&mut reply);
    let status = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || status.starts_with("HTTP/1.1 431"),
        "an oversized head: {status}"
    );
    // A body that stops arriving is refused once its 5 s are up, and
    // changes nothing.
    let mut slow_body = connect(server.admin_addr());
    slow_body
        .write_all(
            b"POST /admin/regions/us-east-1/state HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"state\":",
        )
        .unwrap();
    let sent = Instant::now();
    slow_body
        .set_read_timeout(Some(ADMIN_BODY + SLACK))
        .unwrap();
    let mut reply = [0u8; 12];
    slow_body.read_exact(&mut reply).expect("a refusal");
    assert_eq!(
        &reply,
        b"HTTP/1.1 400",
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(sent.elapsed() >= ADMIN_BODY - Duration::from_millis(500));
    assert_eq!(
        server.region_status("us-east-1")["forced"],
        serde_json::Value::Null
    );
    admin_serves_at_once(&server, "after slow headers");
    assert_rss_back(&server, before, "admin slow headers");
}

#[test]
fn admin_idle_flood_is_capped_and_closed() {
    let (server, before) = warmed_server();
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(server.admin_addr())).collect();
    // Past the cap the oldest idle ones make room: a new client is served.
    admin_serves_at_once(&server, "during an idle flood");
    // A keep-alive client that has been served is idle too, and closed.
    let mut kept = connect(server.admin_addr());
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    idle.push(kept);
    assert_all_closed(
        &mut idle,
        (ADMIN_HEAD + SLACK).saturating_sub(started.elapsed()),
        "idle admin connections",
    );
    eprintln!(
        "300 idle admin connections closed after {:?}",
        started.elapsed()
    );
    admin_serves_at_once(&server, "after an idle flood");
    assert_rss_back(&server, before, "admin idle flood");
}

#[test]
fn admin_clients_that_never_read_are_closed() {
    let (server, before) = warmed_server();
    let baseline = open_fds(&server);
    // /metrics is several kilobytes: 4000 of them fill any socket buffer.
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut pipelined = Vec::new();
    for _ in 0..4000 {
        pipelined.extend_from_slice(request);
    }
    let started = Instant::now();
    let mut deaf: Vec<TcpStream> = (0..4).map(|_| connect_deaf(server.admin_addr())).collect();
    for s in &mut deaf {
        // The server stops reading once it cannot write: give up then.
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(&pipelined);
    }
    std::thread::sleep(Duration::from_secs(1));
    admin_serves_at_once(&server, "while clients do not read");
    let during = resident_kib(server.pid());
    eprintln!("admin, clients not reading: RSS {before} KiB before, {during} KiB during");
    assert!(
        server_closed_them_by(&server, baseline, started + ADMIN_WRITE + SLACK),
        "admin clients that never read still connected after {:?}",
        started.elapsed()
    );
    eprintln!(
        "admin clients that never read closed after {:?}",
        started.elapsed()
    );
    // Their end sees the close too, once it reads.
    assert_all_closed(&mut deaf, SLACK, "admin clients that never read");
    admin_serves_at_once(&server, "after clients that never read");
    assert_rss_back(&server, before, "admin non-reading clients");
}

#[test]
fn dns_tcp_slow_queries_are_closed_at_the_read_deadline() {
    let (server, before) = warmed_server();
    let query = frame(&Message::query_for(&fqdn("status"), RecordType::A).bytes());
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(server.dns_addr());
            s.write_all(&query[..3]).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut sent = 3;
    while started.elapsed() < DNS_READ + SLACK && sent < query.len() - 1 {
        for s in &mut slow {
            let _ = s.write_all(&query[sent..sent + 1]);
        }
        sent += 1;
        if sent == 5 {
            dns_tcp_serves_at_once(&server, "during slow queries");
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_all_closed(
        &mut slow,
        (DNS_READ + SLACK).saturating_sub(started.elapsed()),
        "slow DNS queries",
    );
    dns_tcp_serves_at_once(&server, "after slow queries");
    assert_rss_back(&server, before, "DNS slow queries");
}

#[test]
fn dns_tcp_idle_flood_is_closed_at_the_idle_limit() {
    let (server, before) = warmed_server();
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(server.dns_addr())).collect();
    dns_tcp_serves_at_once(&server, "during an idle flood");
    assert_all_closed(
        &mut idle,
        (DNS_IDLE + SLACK).saturating_sub(started.elapsed()),
        "idle DNS connections",
    );
    eprintln!(
        "300 idle DNS connections closed after {:?}",
        started.elapsed()
    );
    dns_tcp_serves_at_once(&server, "after an idle flood");
    assert_rss_back(&server, before, "DNS idle flood");
}

#[test]
fn dns_tcp_clients_that_never_read_are_bounded_and_closed() {
    // Answers of about 850 bytes: a few thousand fill any socket buffer.
    let zone = zone_with(&txt_rrset("big", 7));
    let (server, before) = warmed(Server::start(&default_config(), &zone));
    let baseline = open_fds(&server);
    let query = frame(&Message::query_for(&fqdn("big"), RecordType::TXT).bytes());
    let mut pipelined = Vec::new();
    for _ in 0..8000 {
        pipelined.extend_from_slice(&query);
    }
    let started = Instant::now();
    let mut deaf: Vec<TcpStream> = (0..100).map(|_| connect_deaf(server.dns_addr())).collect();
    for s in &mut deaf {
        // The server stops reading once its answers go unread.
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(&pipelined);
    }
    // The server answers what fits in the sockets' buffers first (a
    // second or two in a debug build); then it is stuck on every one.
    std::thread::sleep(Duration::from_secs(2));
    dns_tcp_serves_at_once(&server, "while clients do not read");
    let during = resident_kib(server.pid());
    eprintln!("DNS, 100 clients not reading: RSS {before} KiB before, {during} KiB during");
    // Each queues at most 16 KiB and one answer, and reads no further.
    assert!(
        during <= before + 5 * 1024,
        "queued answers are bounded: {before} KiB -> {during} KiB"
    );
    assert!(
        server_closed_them_by(&server, baseline, started + DNS_IDLE + SLACK + SLACK),
        "DNS clients that never read still connected after {:?}",
        started.elapsed()
    );
    eprintln!(
        "DNS clients that never read closed after {:?}",
        started.elapsed()
    );
    assert_all_closed(&mut deaf, SLACK, "DNS clients that never read");
    dns_tcp_serves_at_once(&server, "after clients that never read");
    assert_rss_back(&server, before, "DNS non-reading clients");
}

/// The fleet's TLS handshake limit (src/fleet/transport.rs).
const PEER_HANDSHAKE: Duration = Duration::from_secs(5);

/// Connects from `source` (another loopback address), so the flood does
/// not share the per-address cap with the peers, which all come from
/// 127.0.0.1 here.
fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    assert!(source.is_loopback() && addr.ip().is_loopback());
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::from((source, 0)).into()).ok()?;
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(2))
        .ok()?;
    Some(socket.into())
}

#[test]
fn peer_endpoint_floods_and_stalled_handshakes_are_closed_and_the_fleet_holds() {
    let fleet = common::fleet::TestFleet::start(common::fleet::FleetOptions::default());
    let node = fleet.node(0);
    std::thread::sleep(Duration::from_millis(500));
    let before = resident_kib(node.pid());
    let started = Instant::now();
    // 300 connections from 30 addresses that never start TLS, and some
    // that start a ClientHello and stall.
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..300u32 {
        let source = std::net::Ipv4Addr::new(127, 0, 1, 2 + (i % 30) as u8);
        if let Some(mut s) = connect_from(source, fleet.peer_addr(0)) {
            if i % 10 == 0 {
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
            }
            idle.push(s);
        }
    }
    assert!(!idle.is_empty(), "no flood connection was accepted at all");
    // Meanwhile the fleet stays formed: the peers' pushes still arrive.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.not_formed(0), None, "the fleet broke under the flood");
    assert_all_closed(
        &mut idle,
        (PEER_HANDSHAKE + SLACK).saturating_sub(started.elapsed()),
        "idle peer-endpoint connections",
    );
    eprintln!(
        "{} idle peer-endpoint connections closed after {:?}",
        idle.len(),
        started.elapsed()
    );
    drop(idle);
    assert_eq!(fleet.not_formed(0), None, "the fleet broke after the flood");
    let after = rss_settles(node, before);
    eprintln!("peer endpoint flood: RSS {before} KiB before, {after} KiB after");
    assert!(
        after <= before + RSS_MARGIN_KIB,
        "peer endpoint flood: RSS {before} KiB -> {after} KiB"
    );
}
