//! Shared harness for the black-box integration tests: writes a config and
//! a zone file into a temporary folder, runs the real `keiko-dns` binary on
//! free loopback ports, and talks DNS to it over real sockets.
//!
//! Packets only ever go to 127.0.0.1 or ::1. The documentation ranges in the
//! test data (192.0.2.0/24 and friends) are routed on the build machines, so
//! they appear as DNS data but are never contacted.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub use hickory_proto::op::ResponseCode;

/// The zone every test config serves.
pub const ORIGIN: &str = "keiko.example.com.";
/// File names inside the test folder; `[zone].file` in the configs below
/// names the zone file relative to the config, as the contract says.
pub const CONFIG_FILE: &str = "keiko.toml";
pub const ZONE_FILE: &str = "keiko.example.com.zone";
/// The server's own EDNS UDP payload size (DNS Flag Day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Steered answers carry this TTL in the test config.
pub const STEERED_TTL: u32 = 60;

/// How long a UDP client waits for one answer before trying again.
const UDP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the server may take to answer its first query after spawning.
const START_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Test data: regions, config and zone
// ---------------------------------------------------------------------------

/// One `[[regions]]` entry, as the test config writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub priority: u32,
    pub weight: u32,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// The regions of `zones/keiko.toml`, in file order.
pub const REGIONS: [Region; 3] = [
    Region {
        name: "us-east-1",
        priority: 1,
        weight: 40,
        v4: Ipv4Addr::new(192, 0, 2, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x10),
    },
    Region {
        name: "eu-west-1",
        priority: 2,
        weight: 40,
        v4: Ipv4Addr::new(198, 51, 100, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x10),
    },
    Region {
        name: "ap-southeast-1",
        priority: 3,
        weight: 20,
        v4: Ipv4Addr::new(203, 0, 113, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x30, 0, 0, 0, 0, 0x10),
    },
];

/// Steered names of the test config (relative to the origin) with their
/// policy; `region` names map to `REGIONS` by index.
pub const FAILOVER_NAME: &str = "api-contracts";
pub const WEIGHTED_NAME: &str = "api-contracts-weighted";
pub const REGION_NAMES: [&str; 3] = [
    "api-contracts-us-east",
    "api-contracts-eu-west",
    "api-contracts-ap-southeast",
];

/// The test config for `regions`: the same shape as `zones/keiko.toml`
/// without GeoIP and residency. `{DNS}`, `{ADMIN}` and `{HEALTHi}` are
/// filled in by [`Workspace::fill`]. Every region has a `health_url` on a
/// loopback stub ([`HealthStub`]): without one the server would probe the
/// region's own address, which must never be contacted from tests.
pub fn config_with(regions: &[Region]) -> String {
    let mut text = String::from(
        r#"# keiko-dns integration test config
[server]
dns_listen   = ["{DNS}"]
admin_listen = "{ADMIN}"
region       = "us-east-1"
state_dir    = "state"
nsid         = "ns1.test"

[zone]
origin = "keiko.example.com."
file   = "keiko.example.com.zone"
"#,
    );
    for (i, r) in regions.iter().enumerate() {
        let short = r.name.rsplit_once('-').map_or(r.name, |(s, _)| s);
        text += &format!(
            r#"
[[regions]]
name      = "{}"
priority  = {}
weight    = {}
capacity  = 100
endpoint  = "https://api-contracts-{short}.keiko.example.com"
addresses = ["{}", "{}"]
health_url = "http://{{HEALTH{i}}}/health"
"#,
            r.name, r.priority, r.weight, r.v4, r.v6
        );
    }
    let mut record = |name: &str, policy: &str, region: Option<&str>| {
        text += &format!("\n[[records]]\nname   = \"{name}\"\npolicy = \"{policy}\"\n");
        if let Some(region) = region {
            text += &format!("region = \"{region}\"\n");
        }
        text += &format!("ttl    = {STEERED_TTL}\n");
    };
    record(FAILOVER_NAME, "failover", None);
    record(WEIGHTED_NAME, "weighted", None);
    for (name, region) in REGION_NAMES.iter().zip(regions) {
        record(name, "region", Some(region.name));
    }
    text
}

/// The test config with the default regions.
pub fn default_config() -> String {
    config_with(&REGIONS)
}

/// `REGIONS` with other weights (same order).
pub fn regions_with_weights(weights: [u32; 3]) -> [Region; 3] {
    let mut regions = REGIONS;
    for (r, w) in regions.iter_mut().zip(weights) {
        r.weight = w;
    }
    regions
}

/// The shipped zone file, `zones/keiko.example.com.zone`.
pub fn default_zone() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("zones")
        .join(ZONE_FILE);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The shipped zone file with `extra` lines appended (relative names).
pub fn zone_with(extra: &str) -> String {
    format!("{}\n{extra}\n", default_zone())
}

/// Zone lines for a TXT RRset at `name` of `count` distinct 100-byte
/// strings (about 113 bytes each on the wire), for truncation tests.
pub fn txt_rrset(name: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{name} IN TXT \"{i:03}{}\"\n", "x".repeat(97)))
        .collect()
}

/// `text` with the single occurrence of `from` replaced; panics when `from`
/// is missing, so a test never silently runs against unchanged data.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected exactly one {from:?} in:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// 1-based line number of the first line containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
        + 1
}

/// `name` relative to the origin, fully qualified ("@" is the apex).
pub fn fqdn(name: &str) -> String {
    match name {
        "@" | "" => ORIGIN.to_string(),
        n if n.ends_with('.') => n.to_string(),
        n => format!("{n}.{ORIGIN}"),
    }
}

// ---------------------------------------------------------------------------
// Ports and folders
// ---------------------------------------------------------------------------

/// A port that is free right now on 127.0.0.1 and ::1, for UDP and TCP
/// alike (the server binds both protocols on every listen address).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().unwrap().port();
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("::1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on loopback after 100 tries");
}

/// A temporary folder holding a config and a zone file, with the
/// placeholders filled in.
pub struct Workspace {
    dir: tempfile::TempDir,
    pub dns_port: u16,
    pub admin_port: u16,
    /// One health endpoint per region of `REGIONS`, by index.
    pub health: [HealthStub; 3],
}

impl Workspace {
    pub fn new(config: &str, zone: &str) -> Workspace {
        let dns_port = free_port();
        let admin_port = std::iter::repeat_with(free_port)
            .find(|&p| p != dns_port)
            .unwrap();
        let ws = Workspace {
            dir: tempfile::Builder::new()
                .prefix("keiko-it-")
                .tempdir()
                .expect("create temp dir"),
            dns_port,
            admin_port,
            health: std::array::from_fn(|_| HealthStub::start()),
        };
        ws.write_config(config);
        ws.write_zone(zone);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join(CONFIG_FILE)
    }

    pub fn zone_path(&self) -> PathBuf {
        self.path().join(ZONE_FILE)
    }

    /// `{DNS}` is `127.0.0.1:PORT`, `{DNS_PORT}` the bare port (for other
    /// listen addresses such as `[::1]:{DNS_PORT}`), `{ADMIN}` the admin
    /// address, `{HEALTH0}`..`{HEALTH2}` the health stubs' addresses.
    pub fn fill(&self, text: &str) -> String {
        let mut text = text
            .replace("{DNS}", &format!("127.0.0.1:{}", self.dns_port))
            .replace("{DNS_PORT}", &self.dns_port.to_string())
            .replace("{ADMIN}", &format!("127.0.0.1:{}", self.admin_port));
        for (i, stub) in self.health.iter().enumerate() {
            text = text.replace(&format!("{{HEALTH{i}}}"), &stub.addr.to_string());
        }
        text
    }

    pub fn write_config(&self, text: &str) {
        write_file(&self.config_path(), &self.fill(text));
    }

    pub fn write_zone(&self, text: &str) {
        write_file(&self.zone_path(), text);
    }

    /// Runs `keiko-dns ARGS...` to completion (for `check` and friends).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .current_dir(self.path())
            .env_remove("KEIKO_ADMIN_TOKEN")
            .output()
            .expect("run keiko-dns")
    }

    /// `keiko-dns check --config <this config>`.
    pub fn check(&self) -> Output {
        let config = self.config_path();
        self.run(&["check", "--config", config.to_str().unwrap()])
    }
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_keiko-dns")
}

/// stdout and stderr of a finished command, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------
// Health endpoints
// ---------------------------------------------------------------------------

/// A stand-in regional health endpoint on loopback: answers every HTTP
/// request with 200 "ok" while up, 503 while down. Stops on drop.
pub struct HealthStub {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl HealthStub {
    pub fn start() -> HealthStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind health stub");
        // Non-blocking accept so the thread can notice `stop`.
        listener.set_nonblocking(true).unwrap();
        let stub = HealthStub {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (up, stop, requests) = (stub.up.clone(), stub.stop.clone(), stub.requests.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        requests.fetch_add(1, Ordering::Relaxed);
                        let _ = answer_health(stream, up.load(Ordering::Relaxed));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        stub
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Connections served so far (probes seen).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HealthStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer_health(mut stream: TcpStream, up: bool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    // Read the request head; its content does not matter.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if up {
        ("200 OK", "ok")
    } else {
        ("503 Service Unavailable", "down")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `keiko-dns serve`; SIGTERMed (then killed) on drop.
pub struct Server {
    pub ws: Workspace,
    child: Child,
}

impl Server {
    /// Starts the server on free ports and waits until it answers the SOA
    /// query over UDP. Panics with the server log if it never does.
    pub fn start(config: &str, zone: &str) -> Server {
        // A port found free can be taken by a parallel test before the server
        // binds it: start again on fresh ports when that is why it failed.
        for _ in 0..3 {
            let ws = Workspace::new(config, zone);
            match Server::spawn(ws) {
                Ok(server) => return server,
                Err(log) if log.contains("cannot bind") => continue,
                Err(log) => panic!("keiko-dns did not start; its log:\n{log}"),
            }
        }
        panic!("keiko-dns could not bind free ports in 3 tries");
    }

    /// The default test config and the shipped zone.
    pub fn start_default() -> Server {
        Server::start(&default_config(), &default_zone())
    }

    fn spawn(ws: Workspace) -> Result<Server, String> {
        let log = fs::File::create(ws.path().join("server.log")).expect("create log file");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(ws.config_path())
            .current_dir(ws.path())
            .env_remove("KEIKO_ADMIN_TOKEN")
            // Debug level would flood the log in the load tests.
            .env("KEIKO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn keiko-dns");
        let mut server = Server { ws, child };
        let soa = Message::query_for(ORIGIN, RecordType::SOA);
        let deadline = Instant::now() + START_TIMEOUT;
        let client = UdpClient::new(server.dns_addr(), Duration::from_millis(100));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", server.log()));
            }
            if client.try_exchange(&soa).is_some() {
                return Ok(server);
            }
        }
        Err(format!(
            "(no answer to SOA within {START_TIMEOUT:?})\n{}",
            server.log()
        ))
    }

    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ws.dns_port))
    }

    /// The DNS port on ::1 (only served when the config listens there).
    pub fn dns_addr_v6(&self) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::LOCALHOST, self.ws.dns_port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn udp(&self) -> UdpClient {
        UdpClient::new(self.dns_addr(), UDP_TIMEOUT)
    }

    pub fn query_udp(&self, name: &str, rtype: RecordType) -> Message {
        self.udp().query(name, rtype)
    }

    pub fn query_tcp(&self, name: &str, rtype: RecordType) -> Message {
        tcp_exchange(self.dns_addr(), &Message::query_for(&fqdn(name), rtype))
    }

    pub fn exchange_udp(&self, query: &Message) -> Message {
        self.udp().exchange(query)
    }

    pub fn exchange_tcp(&self, query: &Message) -> Message {
        tcp_exchange(self.dns_addr(), query)
    }

    /// Sends raw bytes over UDP; the raw answer, or None after a timeout.
    pub fn raw_udp(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        UdpClient::new(self.dns_addr(), UDP_TIMEOUT).raw(bytes)
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.is_alive(),
            "keiko-dns exited; its log:\n{}",
            self.log()
        );
    }

    pub fn sighup(&self) {
        signal(self.pid(), libc::SIGHUP);
    }

    /// Sends SIGHUP, waits until the server logs the outcome of the reload
    /// ("reloaded ..." or "reload failed ..."; the reload runs in the
    /// background, so the signal alone says nothing), and returns what it
    /// logged since the signal.
    pub fn reload(&self) -> String {
        const OUTCOMES: [&str; 2] = ["reloaded", "reload failed"];
        let before = self.log().len();
        self.sighup();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let new = self.log()[before..].to_string();
            if OUTCOMES.iter().any(|o| new.to_lowercase().contains(o)) {
                // The error text follows on the next lines; let it land.
                std::thread::sleep(Duration::from_millis(100));
                return self.log()[before..].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no reload outcome logged within 10 s of SIGHUP; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rewrite_config(&self, text: &str) {
        self.ws.write_config(text);
    }

    pub fn rewrite_zone(&self, text: &str) {
        self.ws.write_zone(text);
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.ws.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet
    // (we only reap in Drop), so the pid cannot have been reused.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------------------
// DNS clients
// ---------------------------------------------------------------------------

/// Query construction on hickory's `Message`.
pub trait QueryExt {
    /// A query for `name` (taken literally, so its case is kept) without RD.
    fn query_for(name: &str, rtype: RecordType) -> Message;
    /// The same query with an EDNS(0) OPT record advertising `payload`.
    fn with_edns(self, payload: u16) -> Message;
    /// Adds an EDNS option (and an OPT record advertising 1232 if there is
    /// none yet).
    fn with_option(self, option: EdnsOption) -> Message;
    /// Adds an EDNS Client Subnet option (RFC 7871) for `addr/prefix`.
    fn with_subnet(self, addr: IpAddr, prefix: u8) -> Message;
    fn bytes(&self) -> Vec<u8>;
}

impl QueryExt for Message {
    fn query_for(name: &str, rtype: RecordType) -> Message {
        let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad name {name:?}: {e}"));
        let mut m = Message::query();
        m.add_query(Query::query(name, rtype));
        m
    }

    fn with_edns(mut self, payload: u16) -> Message {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        self.set_edns(edns);
        self
    }

    fn with_option(self, option: EdnsOption) -> Message {
        let mut m = if self.edns.is_some() {
            self
        } else {
            self.with_edns(EDNS_PAYLOAD)
        };
        m.edns.as_mut().unwrap().options_mut().insert(option);
        m
    }

    fn with_subnet(self, addr: IpAddr, prefix: u8) -> Message {
        self.with_option(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)))
    }

    fn bytes(&self) -> Vec<u8> {
        self.to_vec().expect("encode query")
    }
}

/// The EDNS Client Subnet option of an answer, if any.
pub fn answer_subnet(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(*subnet),
        other => panic!("subnet option that does not parse: {other:?}"),
    }
}

/// A UDP socket connected to the server, reused across queries.
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    pub fn new(server: SocketAddr, timeout: Duration) -> UdpClient {
        let local: IpAddr = match server {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        assert!(server.ip().is_loopback(), "tests only talk to loopback");
        let socket = UdpSocket::bind((local, 0)).expect("bind UDP client");
        socket.connect(server).expect("connect UDP client");
        socket.set_read_timeout(Some(timeout)).unwrap();
        UdpClient { socket }
    }

    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        self.exchange(&Message::query_for(&fqdn(name), rtype))
    }

    /// Sends `query` and returns the answer with its ID; tries 3 times.
    pub fn exchange(&self, query: &Message) -> Message {
        for _ in 0..3 {
            if let Some(answer) = self.try_exchange(query) {
                return answer;
            }
        }
        panic!("no UDP answer to {:?}", query.queries);
    }

    /// One attempt: None on timeout. Answers to other IDs are skipped.
    pub fn try_exchange(&self, query: &Message) -> Option<Message> {
        self.send(&query.bytes());
        loop {
            let raw = self.recv()?;
            let answer = parse(&raw);
            if answer.metadata.id == query.metadata.id {
                return Some(answer);
            }
        }
    }

    /// Sends raw bytes; the first datagram back, or None after the timeout.
    pub fn raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.send(bytes);
        self.recv()
    }

    pub fn send(&self, bytes: &[u8]) {
        // ECONNREFUSED can surface here from an earlier ICMP; it is not about
        // this datagram, so it is ignored (the answer, if any, tells).
        let _ = self.socket.send(bytes);
    }

    /// The next datagram, or None after the timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65535];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => return Some(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
    }
}

/// Parses an answer, panicking with the bytes when it is not valid DNS.
pub fn parse(raw: &[u8]) -> Message {
    Message::from_vec(raw).unwrap_or_else(|e| panic!("unparseable answer ({e}): {raw:02x?}"))
}

/// Opens a TCP connection to the server with generous timeouts.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    assert!(server.ip().is_loopback(), "tests only talk to loopback");
    let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("TCP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `bytes` with the two-byte length prefix of DNS over TCP.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("message fits TCP");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    framed
}

/// Reads one length-prefixed message.
pub fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// One query on a fresh TCP connection.
pub fn tcp_exchange(server: SocketAddr, query: &Message) -> Message {
    let mut stream = tcp_connect(server);
    stream.write_all(&frame(&query.bytes())).expect("TCP write");
    let answer = parse(&read_frame(&mut stream).expect("TCP read"));
    assert_eq!(answer.metadata.id, query.metadata.id, "TCP answer ID");
    answer
}

// ---------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------

/// A/AAAA addresses of the answer section, in order.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The response code including EDNS extended bits (BADVERS is 16).
pub fn rcode(m: &Message) -> u16 {
    m.metadata.response_code.into()
}

/// Asserts the answer is an authoritative NOERROR with exactly `expected`.
pub fn assert_addresses(m: &Message, expected: &[IpAddr]) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:#?}");
    assert!(m.metadata.authoritative, "AA must be set: {m:#?}");
    assert_eq!(addresses(m), expected, "{m:#?}");
}

/// Asserts a negative answer (NXDOMAIN or NODATA): no answers, and the
/// zone's SOA alone in the authority section with the RFC 2308 TTL.
pub fn assert_negative(m: &Message, code: ResponseCode, negative_ttl: u32) {
    assert_eq!(m.metadata.response_code, code, "{m:#?}");
    assert!(m.metadata.authoritative, "AA must be set: {m:#?}");
    assert!(!m.metadata.recursion_available, "RA must be clear: {m:#?}");
    assert!(m.answers.is_empty(), "no answers expected: {m:#?}");
    assert_eq!(m.authorities.len(), 1, "SOA alone in authority: {m:#?}");
    let soa = &m.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA, "{m:#?}");
    assert_eq!(soa.name, Name::from_ascii(ORIGIN).unwrap(), "{m:#?}");
    assert_eq!(
        soa.ttl, negative_ttl,
        "negative TTL = min(SOA TTL, MINIMUM)"
    );
}

/// Draws `n` answers for `name` over one socket and returns the share of
/// each region's IPv4 address, in percent, in `REGIONS` order.
pub fn shares(client: &UdpClient, name: &str, n: usize) -> [f64; 3] {
    let mut counts = [0usize; 3];
    for _ in 0..n {
        let answer = client.query(name, RecordType::A);
        let addrs = addresses(&answer);
        assert_eq!(
            addrs.len(),
            1,
            "one address per steered answer: {answer:#?}"
        );
        let i = REGIONS
            .iter()
            .position(|r| IpAddr::V4(r.v4) == addrs[0])
            .unwrap_or_else(|| panic!("answer from no region: {answer:#?}"));
        counts[i] += 1;
    }
    counts.map(|c| 100.0 * c as f64 / n as f64)
}

/// Asserts `actual` shares are each within `tolerance` percentage points
/// of `expected`.
pub fn assert_shares(actual: [f64; 3], expected: [f64; 3], tolerance: f64) {
    for ((a, e), r) in actual.iter().zip(expected).zip(REGIONS) {
        assert!(
            (a - e).abs() <= tolerance,
            "{}: {a:.2}% instead of {e}% ± {tolerance} (all: {actual:.2?})",
            r.name
        );
    }
}

/// The expected weighted shares for `regions`, in percent.
pub fn weight_shares(regions: &[Region; 3]) -> [f64; 3] {
    let total: u32 = regions.iter().map(|r| r.weight).sum();
    regions.map(|r| 100.0 * f64::from(r.weight) / f64::from(total))
}
