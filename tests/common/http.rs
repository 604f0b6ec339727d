//! HTTP on loopback, both ways: a minimal HTTP/1.1 client for the admin
//! API (and the admin calls of a running [`Server`]), and the stand-in
//! servers the tests point keiko-dns at: regional health endpoints over
//! HTTP ([`HealthStub`]) and HTTPS ([`TlsStub`]), and a webhook receiver
//! ([`WebhookSink`]). Every stub listens on 127.0.0.1 and stops on drop.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::fixtures::TestCa;
use super::process::{Server, wait_until};

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
pub fn read_head(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
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
// HTTPS health endpoints
// ---------------------------------------------------------------------------

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

/// The admin API of a running server.
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

    /// Forces `region` to `state` ("down", "up" or "auto") through
    /// `POST /admin/regions/REGION/state`, without a token; asserts 200.
    pub fn force(&self, region: &str, state: &str) {
        let path = format!("/admin/regions/{region}/state");
        let reply = self.post(&path, &format!(r#"{{"state":"{state}"}}"#), None);
        assert_eq!(reply.status, 200, "forcing {region} {state}: {reply:?}");
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
    /// The value of an unlabelled metric line `name` in `GET /metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").body;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
    }
}
