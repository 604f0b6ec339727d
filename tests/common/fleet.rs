//! A fleet of three `keiko-dns` instances on loopback (docs/reference.md
//! §7): certificates made with `keiko-dns fleet certs` in a temporary
//! folder, one [`Server`] per instance, each on its own [`Workspace`] and
//! so with its own stand-in health endpoints (a region can fail for one
//! vantage point only), started in parallel. Also the test's own side of
//! the peer channel: a mutual-TLS client for `POST /fleet/v1/state`, and
//! SIGSTOP/SIGCONT of an instance that always ends in SIGCONT.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::dns::addresses;
use super::fixtures::{REGIONS, Region, config_with, default_zone, replace_once};
use super::http::{HttpReply, WebhookSink};
use super::process::{Server, binary, output_text, signal, wait_until};

/// The instances, by index: their `fleet.instance` and `server.region`.
pub const INSTANCES: [&str; 3] = ["ns1.us-east-1", "ns2.eu-west-1", "ns3.ap-southeast-1"];
pub const HOME_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// `fleet.peer_timeout` in the test configs.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// The `[health]` of every test instance: 1 s between probes, two failures
/// (the second 500 ms after the first) take a region out, two successes
/// bring it back.
pub const HEALTH: &str = r#"
[health]
interval           = "1s"
timeout            = "500ms"
fast_interval      = "500ms"
failure_threshold  = 2
recovery_threshold = 2
recovery           = "{RECOVERY}"
path               = "/health"
"#;
/// The longest one instance takes to observe a region down (or up) after
/// its endpoint changed: up to one interval before the first probe that
/// sees it, then one fast interval, each probe at most its timeout.
pub const DETECTION: Duration = Duration::from_millis(1000 + 500 + 2 * 500);
/// Commands reach every reachable peer within this (contract §7).
pub const COMMAND_SPREAD: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// The files `keiko-dns fleet certs --out DIR NAME... --ip 127.0.0.1`
/// wrote: `ca.pem`, `ca.key`, and `NAME.pem`/`NAME.key` per instance.
pub struct FleetCerts {
    dir: tempfile::TempDir,
}

impl FleetCerts {
    /// Runs `keiko-dns fleet certs` for `names`; panics with its output
    /// when it fails.
    pub fn make(names: &[&str]) -> FleetCerts {
        let dir = tempfile::Builder::new()
            .prefix("keiko-fleet-certs-")
            .tempdir()
            .expect("certs temp dir");
        let out = Command::new(binary())
            .args(["fleet", "certs", "--out"])
            .arg(dir.path())
            .args(names)
            .args(["--ip", "127.0.0.1"])
            .output()
            .expect("run keiko-dns fleet certs");
        assert!(
            out.status.success(),
            "keiko-dns fleet certs failed ({}):\n{}",
            out.status,
            output_text(&out)
        );
        FleetCerts { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.key"))
    }

    /// A client identity for the peer endpoint: `name`'s chain and key.
    pub fn identity(&self, name: &str) -> Identity {
        Identity {
            chain: CertificateDer::pem_file_iter(self.cert(name))
                .expect("read chain")
                .collect::<Result<Vec<_>, _>>()
                .expect("parse chain"),
            key: PrivateKeyDer::from_pem_file(self.key(name)).expect("read key"),
        }
    }
}

/// A certificate chain and its key, as a TLS client presents them.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

// ---------------------------------------------------------------------------
// The fleet
// ---------------------------------------------------------------------------

/// What differs between the fleets the tests start.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// `health.recovery = "manual"`.
    pub manual_recovery: bool,
    /// A `[[notify]]` webhook (format json) on every instance.
    pub notify: Option<String>,
    /// More config appended on every instance (e.g. a `[dnssec]` section).
    pub extra: String,
}

/// Three instances that form one fleet; each stops on drop.
pub struct TestFleet {
    pub certs: FleetCerts,
    pub nodes: Vec<Server>,
    options: FleetOptions,
    fleet_ports: [u16; 3],
}

impl TestFleet {
    /// Starts the three instances in parallel and waits until they form a
    /// fleet ([`TestFleet::wait_formed`]).
    pub fn start(options: FleetOptions) -> TestFleet {
        let certs = FleetCerts::make(&INSTANCES);
        let mut fleet_ports = [0u16; 3];
        for i in 0..3 {
            fleet_ports[i] = std::iter::repeat_with(peer_port)
                .find(|p| !fleet_ports[..i].contains(p))
                .unwrap();
        }
        let configs: Vec<String> = (0..3)
            .map(|i| instance_config(i, &REGIONS, &certs, fleet_ports, &options))
            .collect();
        let zone = default_zone();
        let nodes: Vec<Server> = std::thread::scope(|s| {
            let handles: Vec<_> = configs
                .iter()
                .map(|config| s.spawn(|| Server::start(config, &zone)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an instance did not start"))
                .collect()
        });
        let fleet = TestFleet {
            certs,
            nodes,
            options,
            fleet_ports,
        };
        let took = fleet.wait_formed(Duration::from_secs(20));
        eprintln!("fleet formed {took:?} after the last instance answered DNS");
        fleet
    }

    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// The config instance `i` runs with `regions` (the default's, or
    /// other weights for a disagreement).
    pub fn config(&self, i: usize, regions: &[Region]) -> String {
        instance_config(i, regions, &self.certs, self.fleet_ports, &self.options)
    }

    /// The peer endpoint of instance `i`.
    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.fleet_ports[i]))
    }

    /// Instance `i`'s stand-in endpoint for `REGIONS[region]`.
    pub fn set_endpoint(&self, i: usize, region: usize, up: bool) {
        self.nodes[i].ws.health[region].set_up(up);
    }

    /// `GET /status` `fleet` of instance `i`.
    pub fn fleet_status(&self, i: usize) -> serde_json::Value {
        let status = self.nodes[i].status();
        assert!(
            status["fleet"].is_object(),
            "{}: /status without a fleet object: {status:#}",
            INSTANCES[i]
        );
        status["fleet"].clone()
    }

    /// Every instance's `routing_version`.
    pub fn routing_versions(&self) -> Vec<String> {
        (0..3)
            .map(|i| {
                self.fleet_status(i)["routing_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// Why instance `i` is not (yet) part of a formed fleet, if it is not:
    /// a peer not up or not agreeing, or a peer missing.
    pub fn not_formed(&self, i: usize) -> Option<String> {
        let fleet = self.fleet_status(i);
        let peers = fleet["peers"].as_array().cloned().unwrap_or_default();
        for (j, name) in INSTANCES.iter().enumerate() {
            if j == i {
                continue;
            }
            let Some(p) = peers.iter().find(|p| p["instance"] == *name) else {
                return Some(format!("{}: no peer {name}: {fleet:#}", INSTANCES[i]));
            };
            if p["state"] != "up" || p["agrees"] != true {
                return Some(format!("{}: peer {name} is {p}", INSTANCES[i]));
            }
        }
        (fleet["isolated"] != false).then(|| format!("{}: isolated: {fleet:#}", INSTANCES[i]))
    }

    /// Waits until every instance lists both peers up and agreeing, and
    /// all routing versions are equal; the time it took. Panics with what
    /// is missing after `timeout`.
    pub fn wait_formed(&self, timeout: Duration) -> Duration {
        let mut last = String::new();
        wait_until(timeout, Duration::from_millis(50), || {
            for i in 0..3 {
                if let Some(why) = self.not_formed(i) {
                    last = why;
                    return None;
                }
            }
            let versions = self.routing_versions();
            if versions.iter().any(|v| v.is_empty() || *v != versions[0]) {
                last = format!("routing versions differ: {versions:?}");
                return None;
            }
            Some(())
        })
        .map(|((), d)| d)
        .unwrap_or_else(|| {
            panic!(
                "no fleet within {timeout:?}: {last}\nlogs:\n{}",
                self.logs()
            )
        })
    }

    /// The first A address each instance answers for `name`.
    pub fn answers(&self, name: &str) -> Vec<Option<IpAddr>> {
        self.nodes
            .iter()
            .map(|n| {
                addresses(&n.query_udp(name, RecordType::A))
                    .first()
                    .copied()
            })
            .collect()
    }

    /// Polls every instance every 10 ms until all answer `name` with
    /// `want`; the time it took, or None after `timeout`.
    pub fn wait_all_answer(&self, name: &str, want: IpAddr, timeout: Duration) -> Option<Duration> {
        let clients: Vec<_> = self.nodes.iter().map(Server::udp).collect();
        wait_until(timeout, Duration::from_millis(10), || {
            clients
                .iter()
                .all(|c| addresses(&c.query(name, RecordType::A)).first() == Some(&want))
                .then_some(())
        })
        .map(|((), d)| d)
    }

    /// Instance `i`'s view of `region`'s observers, by observer name.
    pub fn observers(&self, i: usize, region: &str) -> Vec<serde_json::Value> {
        let r = self.nodes[i].region_status(region);
        r["observers"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{}: {region} without observers: {r:#}", INSTANCES[i]))
    }

    /// How instance `i` sees `observer`'s observation of `region`.
    pub fn observation(&self, i: usize, region: &str, observer: usize) -> serde_json::Value {
        self.observers(i, region)
            .into_iter()
            .find(|o| o["instance"] == INSTANCES[observer])
            .unwrap_or_else(|| {
                panic!(
                    "{}: no observer {} for {region}",
                    INSTANCES[i], INSTANCES[observer]
                )
            })
    }

    /// Waits until instance `i`'s own observation of `region` is `state`.
    pub fn wait_own_observation(&self, i: usize, region: &str, state: &str, timeout: Duration) {
        wait_until(timeout, Duration::from_millis(20), || {
            (self.observation(i, region, i)["state"] == state).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{} never observed {region} {state} within {timeout:?}; logs:\n{}",
                INSTANCES[i],
                self.logs()
            )
        });
    }

    /// `state` of `region` in instance `i`'s `/status` (the fleet verdict).
    pub fn verdict(&self, i: usize, region: &str) -> String {
        self.nodes[i].region_status(region)["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Every instance's log, each under its name.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .zip(INSTANCES)
            .map(|(n, name)| format!("===== {name}\n{}", tail(&n.log(), 60)))
            .collect()
    }

    /// SIGSTOPs instance `i` until the guard is dropped (or resumed).
    pub fn pause(&self, i: usize) -> Paused {
        signal(self.nodes[i].pid(), libc::SIGSTOP);
        Paused {
            pid: self.nodes[i].pid(),
            resumed: false,
        }
    }

    /// A POST to the admin API of instance `i`, as JSON.
    pub fn command(&self, i: usize, region: &str, state: &str) -> serde_json::Value {
        let reply = self.nodes[i].post(
            &format!("/admin/regions/{region}/state"),
            &format!(r#"{{"state":"{state}"}}"#),
            None,
        );
        assert_eq!(
            reply.status, 200,
            "{region} {state} on {}: {reply:?}",
            INSTANCES[i]
        );
        reply.json()
    }
}

/// A port for a peer endpoint, free right now on 127.0.0.1. Drawn below
/// Linux's ephemeral range (32768-60999), unlike [`free_port`]: the
/// server's port retry cannot help here (every instance's config names
/// every peer port), and in the ephemeral range an outgoing connection of
/// a parallel test could take the port between this check and the bind.
fn peer_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999 on 127.0.0.1 after 1000 tries");
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n") + "\n"
}

/// The config of instance `i`: the test config with `regions`, its own
/// `server.region` and NSID, the fast `[health]`, `[fleet]` with every
/// instance as a peer (its own entry is ignored), and the webhook.
fn instance_config(
    i: usize,
    regions: &[Region],
    certs: &FleetCerts,
    ports: [u16; 3],
    options: &FleetOptions,
) -> String {
    let mut text = config_with(regions);
    text = replace_once(
        &text,
        "region       = \"us-east-1\"",
        &format!("region       = \"{}\"", HOME_REGIONS[i]),
    );
    text = replace_once(
        &text,
        "nsid         = \"ns1.test\"",
        &format!("nsid         = \"{}\"", INSTANCES[i]),
    );
    let recovery = if options.manual_recovery {
        "manual"
    } else {
        "automatic"
    };
    text += &HEALTH.replace("{RECOVERY}", recovery);
    let peers: Vec<String> = ports
        .iter()
        .map(|p| format!("\"https://127.0.0.1:{p}\""))
        .collect();
    let name = INSTANCES[i];
    let path = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_owned();
    text += &format!(
        r#"
[fleet]
instance     = "{name}"
listen       = "127.0.0.1:{}"
peers        = [{}]
ca_file      = "{}"
cert_file    = "{}"
key_file     = "{}"
down_quorum  = "majority"
peer_timeout = "{}s"
"#,
        ports[i],
        peers.join(", "),
        path(certs.ca()),
        path(certs.cert(name)),
        path(certs.key(name)),
        PEER_TIMEOUT.as_secs(),
    );
    text += &options.extra;
    if let Some(url) = &options.notify {
        text += &format!("\n[[notify]]\nurl    = \"{url}\"\nformat = \"json\"\n");
    }
    text
}

/// A stopped instance; SIGCONT on [`Paused::resume`] or drop, so a failed
/// assertion never leaves a process stopped.
pub struct Paused {
    pid: u32,
    resumed: bool,
}

impl Paused {
    pub fn resume(mut self) {
        self.cont();
    }

    fn cont(&mut self) {
        if !self.resumed {
            self.resumed = true;
            signal(self.pid, libc::SIGCONT);
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.cont();
    }
}

/// A webhook receiver that fleets can post to.
pub fn webhook_options() -> (WebhookSink, FleetOptions) {
    let sink = WebhookSink::start();
    let options = FleetOptions {
        notify: Some(sink.url()),
        ..FleetOptions::default()
    };
    (sink, options)
}

// ---------------------------------------------------------------------------
// The test as a peer-channel client
// ---------------------------------------------------------------------------

/// A TLS client config for the peer endpoint: trusting `ca`, speaking
/// only `versions`, presenting `identity` (or no certificate).
pub fn peer_client(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<Identity>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("parse CA")).expect("add CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("TLS versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// `POST /fleet/v1/state` with `body` over TLS to `addr` (verified as
/// 127.0.0.1); the HTTP reply, or why there was none (a refused handshake
/// shows here).
pub fn peer_post(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    body: &[u8],
) -> Result<HttpReply, String> {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "POST /fleet/v1/state HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // A server refusing a large body may close before it is all sent.
    let _ = tls.write_all(body);
    let _ = tls.flush();
    let mut raw = Vec::new();
    let read = tls.read_to_end(&mut raw);
    if raw.is_empty() {
        return Err(match read {
            Err(e) => e.to_string(),
            Ok(_) => "closed without an answer".to_owned(),
        });
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    Ok(HttpReply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A duration in seconds with milliseconds, for the figures the tests
/// print.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
