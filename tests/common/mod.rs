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
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub use hickory_proto::op::ResponseCode;

/// The zone every test config serves.
pub const ORIGIN: &str = "keiko.example.com.";
/// File names inside the test folder; `[zone].file` in the configs below
/// names the zone file relative to the config (docs/reference.md §2.1).
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

/// How a [`HealthStub`] treats the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with body "ok".
    Up = 0,
    /// 503 with body "down".
    Down = 1,
    /// 200 with body "nope" (unhealthy where `expect_body = "ok"`).
    WrongBody = 2,
    /// Closes the connection at once with a TCP RST, before reading.
    Reset = 3,
    /// Accepts and never answers; holds the connection until the client
    /// gives up (or the stub stops).
    Hang = 4,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            0 => Mode::Up,
            1 => Mode::Down,
            2 => Mode::WrongBody,
            3 => Mode::Reset,
            _ => Mode::Hang,
        }
    }
}

/// A stand-in regional health endpoint on loopback whose behaviour a test
/// switches at any time ([`Mode`]): 200 "ok", 503, a wrong body, a reset
/// or a hang. Each connection is served on its own thread, so a hung one
/// does not hold up the next. Stops on drop.
pub struct HealthStub {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
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
            mode: Arc::new(AtomicU8::new(Mode::Up as u8)),
            stop: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (mode, stop, requests) = (stub.mode.clone(), stub.stop.clone(), stub.requests.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        requests.fetch_add(1, Ordering::Relaxed);
                        let mode = Mode::from_u8(mode.load(Ordering::Relaxed));
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            let _ = answer_health(stream, mode, &stop);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        stub
    }

    /// Up (200 "ok") or down (503).
    pub fn set_up(&self, up: bool) {
        self.set_mode(if up { Mode::Up } else { Mode::Down });
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// Connections accepted so far (probes seen).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HealthStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads an HTTP request head (up to and including the blank line, maybe
/// more); an error when the peer closes first.
fn read_head(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    Ok(head)
}

fn answer_health(mut stream: TcpStream, mode: Mode, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    match mode {
        Mode::Reset => {
            // SO_LINGER 0: close() sends RST instead of FIN.
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            drop(stream);
            return Ok(());
        }
        Mode::Hang => {
            hold(&mut stream, stop);
            return Ok(());
        }
        _ => {}
    }
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    read_head(&mut stream)?;
    let (status, body) = match mode {
        Mode::Down => ("503 Service Unavailable", "down"),
        Mode::WrongBody => ("200 OK", "nope"),
        _ => ("200 OK", "ok"),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Keeps a connection open without answering until the peer closes it,
/// the stub stops, or a minute has passed.
fn hold(stream: &mut TcpStream, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------------------
// HTTPS health endpoints and a throwaway CA
// ---------------------------------------------------------------------------

/// A self-signed CA for HTTPS health stubs; its PEM is written to a file
/// for `[health] ca_file`.
pub struct TestCa {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keiko-dns integration test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::Builder::new()
            .prefix("keiko-ca-")
            .tempdir()
            .expect("CA temp dir");
        write_file(&dir.path().join("ca.pem"), &ca.pem());
        TestCa { ca, dir }
    }

    /// The CA certificate as PEM, on disk.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate chain and key for `name` (an IP literal
    /// becomes an IP address SAN, anything else a DNS name).
    pub fn leaf(
        &self,
        name: &str,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, SanType};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = vec![match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.try_into().expect("DNS name")),
        }];
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let key_der =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("leaf key DER");
        (vec![cert.der().clone(), self.ca.der().clone()], key_der)
    }
}

/// An HTTPS health endpoint on 127.0.0.1 presenting a certificate for
/// `cert_name` from `ca`; answers 200 "ok". Stops on drop.
pub struct TlsStub {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl TlsStub {
    pub fn start(ca: &TestCa, cert_name: &str) -> TlsStub {
        let (chain, key) = ca.leaf(cert_name);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS stub");
        listener.set_nonblocking(true).unwrap();
        let stub = TlsStub {
            addr: listener.local_addr().unwrap(),
            stop: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (stop, requests) = (stub.stop.clone(), stub.requests.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let config = config.clone();
                        let requests = requests.clone();
                        std::thread::spawn(move || {
                            let _ = answer_tls(stream, config, &requests);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        stub
    }

    /// Requests that completed a TLS handshake and were answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for TlsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer_tls(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    read_head(&mut tls)?;
    requests.fetch_add(1, Ordering::Relaxed);
    tls.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

// ---------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------

/// One request a [`WebhookSink`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// e.g. "POST /hook HTTP/1.1"
    pub request_line: String,
    /// The whole request head as sent (request line and headers).
    pub head: String,
    pub body: String,
}

/// An HTTP server on 127.0.0.1 that records every request and answers 200.
pub struct WebhookSink {
    pub addr: SocketAddr,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookSink {
    pub fn start() -> WebhookSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook sink");
        listener.set_nonblocking(true).unwrap();
        let sink = WebhookSink {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (received, stop) = (sink.received.clone(), sink.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let received = received.clone();
                        std::thread::spawn(move || {
                            if let Ok(r) = receive_one(stream) {
                                received.lock().unwrap().push(r);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; the time waited, or None.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Option<Duration> {
        wait_until(timeout, Duration::from_millis(20), || {
            (self.received.lock().unwrap().len() >= n).then_some(())
        })
        .map(|((), d)| d)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn receive_one(mut stream: TcpStream) -> std::io::Result<Received> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut raw = read_head(&mut stream)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = raw.split_off(split);
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length = header_value(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut buf = [0u8; 4096];
    while body.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let at = Instant::now();
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok(Received {
        at,
        request_line: head.lines().next().unwrap_or_default().to_owned(),
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The value of header `name` (case-insensitive) in an HTTP head.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A loopback port with nothing listening on it (right now).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client for the admin API
// ---------------------------------------------------------------------------

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpReply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.head, name)
    }
}

/// One request on a fresh connection (`Connection: close`). Write errors
/// (a server refusing a large body early) are ignored as long as a
/// response can still be read.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpReply> {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        read?;
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .ok_or_else(|| std::io::Error::other("response without a complete head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let mut body = raw[split..].to_vec();
    if header_value(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Ok(HttpReply {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Calls `f` every `poll` until it gives Some or `timeout` passes; the
/// value and the time it took.
pub fn wait_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(poll);
    }
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
        let child = spawn_child(&ws, false);
        let mut server = Server { ws, child };
        server
            .wait_started(
                &Message::query_for(ORIGIN, RecordType::SOA),
                Duration::from_millis(100),
            )
            .map(|_| server)
    }

    /// Sends `probe` until the server answers it (the first answer is
    /// returned), polling every `poll`.
    fn wait_started(&mut self, probe: &Message, poll: Duration) -> Result<Message, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = UdpClient::new(self.dns_addr(), poll);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if let Some(answer) = client.try_exchange(probe) {
                return Ok(answer);
            }
        }
        Err(format!(
            "(no answer to {:?} within {START_TIMEOUT:?})\n{}",
            probe.queries,
            self.log()
        ))
    }

    /// Stops the server with SIGTERM and waits up to 5 s for it to exit
    /// (then kills it); its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait for keiko-dns")
    }

    /// Stops the server (SIGTERM) and starts a new process on the same
    /// workspace (config, ports, `state_dir`, health stubs); its log is
    /// appended to the same file. Returns once the new one answers SOA.
    pub fn restart(&mut self) {
        let soa = Message::query_for(ORIGIN, RecordType::SOA);
        self.restart_with(&soa);
    }

    /// Like [`Server::restart`], but polls with `probe` every 5 ms from the
    /// moment the process is spawned and returns the very first answer the
    /// new process gives to it (for "what does it say before its first
    /// health round" checks).
    pub fn restart_with(&mut self, probe: &Message) -> Message {
        let status = self.stop();
        assert!(
            status.success(),
            "keiko-dns did not stop cleanly on SIGTERM ({status}); log:\n{}",
            self.log()
        );
        self.child = spawn_child(&self.ws, true);
        self.wait_started(probe, Duration::from_millis(5))
            .unwrap_or_else(|log| panic!("keiko-dns did not restart; its log:\n{log}"))
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

/// Spawns `keiko-dns serve` on the workspace's config, stderr to
/// `server.log` (appended to when `append`).
pub fn spawn_child(ws: &Workspace, append: bool) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(ws.path().join("server.log"))
        .expect("create log file");
    Command::new(binary())
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
        .expect("spawn keiko-dns")
}

/// The admin API and steering answers of a running server.
impl Server {
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ws.admin_port))
    }

    /// One admin API request; panics when no HTTP response comes back.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpReply {
        http_request(self.admin_addr(), method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: no HTTP response: {e}"))
    }

    pub fn get(&self, path: &str) -> HttpReply {
        self.http("GET", path, &[], b"")
    }

    /// GET `path`, asserting 200 and a JSON body.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.json()
    }

    /// POST a JSON body, with `Authorization: Bearer token` when given.
    pub fn post(&self, path: &str, body: &str, token: Option<&str>) -> HttpReply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        self.http("POST", path, &headers, body.as_bytes())
    }

    /// `GET /status`.
    pub fn status(&self) -> serde_json::Value {
        self.get_json("/status")
    }

    /// The entry of `region` in `GET /status`.
    pub fn region_status(&self, region: &str) -> serde_json::Value {
        let status = self.status();
        status["regions"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == region).cloned())
            .unwrap_or_else(|| panic!("no region {region} in /status: {status:#}"))
    }

    /// `GET /events?limit=N` (newest first).
    pub fn events(&self, limit: usize) -> Vec<serde_json::Value> {
        let v = self.get_json(&format!("/events?limit={limit}"));
        v["events"]
            .as_array()
            .unwrap_or_else(|| panic!("/events without an events list: {v:#}"))
            .clone()
    }

    /// Waits until `GET /ready` answers 200; the time waited.
    pub fn wait_ready(&self, timeout: Duration) -> Duration {
        wait_until(timeout, Duration::from_millis(20), || {
            (self.get("/ready").status == 200).then_some(())
        })
        .map(|((), d)| d)
        .unwrap_or_else(|| panic!("/ready not 200 within {timeout:?}; log:\n{}", self.log()))
    }

    /// The first IPv4 address of the A answer for `name`.
    pub fn answer_v4(&self, name: &str) -> IpAddr {
        let answer = self.query_udp(name, RecordType::A);
        *addresses(&answer)
            .first()
            .unwrap_or_else(|| panic!("no address for {name}: {answer:#?}"))
    }

    /// Polls `name` (A) every 10 ms until the answer is `want`; the time
    /// it took, or None after `timeout`.
    pub fn wait_for_answer(&self, name: &str, want: IpAddr, timeout: Duration) -> Option<Duration> {
        let client = self.udp();
        wait_until(timeout, Duration::from_millis(10), || {
            let answer = client.query(name, RecordType::A);
            (addresses(&answer).first() == Some(&want)).then_some(())
        })
        .map(|((), d)| d)
    }

    /// The value of an unlabelled metric line `name` in `GET /metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").body;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
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

/// The test regions with eu-west-1 first in failover order, so a reload
/// that took effect shows in the failover answer.
#[allow(dead_code)]
pub fn swapped_priorities() -> String {
    let mut regions = REGIONS;
    regions[0].priority = 2;
    regions[1].priority = 1;
    config_with(&regions)
}

/// The failover name answers with `region`'s IPv4 address.
#[allow(dead_code)]
pub fn assert_failover_to(server: &Server, region: &Region) {
    assert_addresses(
        &server.query_udp(FAILOVER_NAME, RecordType::A),
        &[region.v4.into()],
    );
}
