//! The server under soak and what it talks to: its two configs and zone
//! file, the stand-in health endpoints the soak fails and recovers, a
//! minimal HTTP/1.1 client for the admin API, the `keiko-dns serve`
//! processes, and their resident memory, descriptors and threads read
//! from `/proc/PID`.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::model::{REGIONS, WEIGHTS};

pub(crate) const ORIGIN: &str = "keiko.example.com.";
pub(crate) const TOKEN: &str = "soak-admin-token-0123456789";
/// A fixed secret, so server cookies stay valid across reloads and a
/// takeover by a new process.
const COOKIE_SECRET: &str = "5e0a1c2b3d4e5f60718293a4b5c6d7e8";
/// The static name of the zone file and its address.
pub(crate) const STATIC_NAME: &str = "static";
pub(crate) const STATIC_V4: [u8; 4] = [192, 0, 2, 99];
pub(crate) const STEERED_TTL: u32 = 60;

/// A port free on 127.0.0.1 for both UDP and TCP.
pub(crate) fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP on 127.0.0.1")
}

/// Where everything lives and what the server is configured with.
pub(crate) struct Setup {
    pub(crate) dir: PathBuf,
    pub(crate) dns: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) health_ports: [u16; 3],
    pub(crate) rate_limit: u32,
}

impl Setup {
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.join("keiko.toml")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The text of config A (0) or B (1): the same but for the weights.
    pub(crate) fn config_text(&self, which: usize) -> String {
        let mut t = format!(
            r#"# keiko-dns soak config {label}
[server]
dns_listen    = ["{dns}"]
admin_listen  = "{admin}"
region        = "us-east-1"
state_dir     = "state"
nsid          = "soak"
admin_token   = "{TOKEN}"
cookie_secret = "{COOKIE_SECRET}"

[zone]
origin = "{ORIGIN}"
file   = "soak.zone"

[health]
interval           = "1s"
timeout            = "500ms"
fast_interval      = "500ms"
failure_threshold  = 2
recovery_threshold = 2

# On, with a limit the checked clients stay under: 127.0.0.1 is exempt,
# 127.0.1.1 sends under the limit, 127.0.2.1 above it with valid server
# cookies, 127.0.3.1 floods one name and is limited.
[rate_limit]
responses_per_second = {rate}
exempt = ["127.0.0.1/32"]
"#,
            label = if which == 0 { "A" } else { "B" },
            dns = self.dns,
            admin = self.admin,
            rate = self.rate_limit,
        );
        for (i, r) in REGIONS.iter().enumerate() {
            t += &format!(
                r#"
[[regions]]
name       = "{}"
priority   = {}
weight     = {}
endpoint   = "https://{}.keiko.example.com"
addresses  = ["{}", "{}"]
health_url = "http://127.0.0.1:{}/health"
"#,
                r.name,
                i + 1,
                WEIGHTS[which][i],
                r.name,
                r.v4,
                r.v6,
                self.health_ports[i]
            );
        }
        t += &format!(
            r#"
[[records]]
name   = "api-contracts"
policy = "failover"
ttl    = {STEERED_TTL}

[[records]]
name   = "api-contracts-weighted"
policy = "weighted"
ttl    = {STEERED_TTL}

[[records]]
name   = "api-contracts-pinned"
policy = "region"
region = "{}"
ttl    = {STEERED_TTL}
"#,
            REGIONS[crate::model::PINNED].name
        );
        t
    }

    /// Writes config `which` as the config file, atomically: a reload or a
    /// new process never reads half a file.
    pub(crate) fn write_config(&self, which: usize) -> Result<()> {
        let tmp = self.dir.join("keiko.toml.tmp");
        fs::write(&tmp, self.config_text(which))?;
        fs::rename(&tmp, self.config_path())?;
        Ok(())
    }

    pub(crate) fn write_zone(&self) -> Result<()> {
        let [a, b, c, d] = STATIC_V4;
        fs::write(
            self.dir.join("soak.zone"),
            format!(
                "$ORIGIN {ORIGIN}\n$TTL 300\n\
                 @ IN SOA ns1 hostmaster 1 3600 600 86400 60\n\
                 @ IN NS ns1\n\
                 ns1 IN A 192.0.2.53\n\
                 {STATIC_NAME} IN A {a}.{b}.{c}.{d}\n"
            ),
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Stand-in health endpoints
// ---------------------------------------------------------------------------

/// A health endpoint on 127.0.0.1: `200 ok` while `up`, else `503`.
pub(crate) struct Stub {
    pub(crate) port: u16,
    pub(crate) up: Arc<AtomicBool>,
}

impl Stub {
    pub(crate) fn start(stop: Arc<AtomicBool>) -> Result<Stub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        thread::Builder::new()
            .name(format!("stub-{port}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => answer_probe(conn, flag.load(Ordering::Relaxed)),
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Stub { port, up })
    }
}

fn answer_probe(mut conn: TcpStream, up: bool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 2048];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16384 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let reply: &[u8] = if up {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndown\n"
    };
    let _ = conn.write_all(reply);
}

// ---------------------------------------------------------------------------
// Admin API client
// ---------------------------------------------------------------------------

/// One HTTP/1.1 request to the admin API (a new connection each time);
/// the status and the body.
pub(crate) fn http(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String)> {
    let mut conn = TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .with_context(|| format!("connect to the admin API at {admin}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .with_context(|| format!("{method} {path}: reading the answer"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{method} {path}: no HTTP header in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{method} {path}: bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The sum of every series of metric `family` whose labels contain
/// `label` (empty: all).
pub(crate) fn metric_sum(metrics: &str, family: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// One `keiko-dns serve` process.
pub(crate) struct Process {
    pub(crate) child: Child,
}

impl Process {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `keiko-dns serve` on the config, appending to the log;
    /// `takeover` adds `--takeover`.
    pub(crate) fn spawn(bin: &Path, setup: &Setup, takeover: bool) -> Result<Process> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(setup.log_path())?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(setup.config_path());
        if takeover {
            cmd.arg("--takeover");
        }
        let child = cmd
            .current_dir(&setup.dir)
            .env("KEIKO_LOG", "info")
            .env_remove("KEIKO_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        // For benches/soak.sh to stop what is left if the driver is killed.
        let mut pids = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(setup.dir.join("server.pids"))?;
        writeln!(pids, "{}", child.id())?;
        Ok(Process { child })
    }

    /// Whether it has exited (and how).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `grace` for it to exit; SIGKILL after that.
    /// The exit status, or None when it had to be killed.
    pub(crate) fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// Waits until the admin API answers `path` with 200.
pub(crate) fn wait_for(admin: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http(admin, "GET", path, "") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("GET {path} did not answer 200 within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `keiko-dns serve` knows `--takeover`.
pub(crate) fn has_takeover(bin: &Path) -> Result<bool> {
    let out = Command::new(bin).args(["serve", "--help"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("--takeover"))
}

/// What `/proc/PID` says about a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) rss_kib: f64,
    pub(crate) fds: f64,
    pub(crate) threads: f64,
}

pub(crate) fn usage(pid: u32) -> Option<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        fds: fds as f64,
        threads: field("Threads:")?,
    })
}
