//! Test data and the folders it is written to: the regions, config and zone
//! every test starts from, text helpers to derive bad or changed variants,
//! free loopback ports, the temporary [`Workspace`] a server runs in, and a
//! throwaway certificate authority for HTTPS health endpoints.
//!
//! The documentation ranges in the data (192.0.2.0/24 and friends) are
//! routed on the build machines, so they appear as DNS data but are never
//! contacted: every region's `health_url` points at a loopback stub.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use super::http::HealthStub;

/// The zone every test config serves.
pub const ORIGIN: &str = "keiko.example.com.";
/// File names inside the test folder; `[zone].file` in the configs below
/// names the zone file relative to the config (docs/reference.md §2.1).
pub const CONFIG_FILE: &str = "keiko.toml";
pub const ZONE_FILE: &str = "keiko.example.com.zone";
/// Steered answers carry this TTL in the test config.
pub const STEERED_TTL: u32 = 60;

// ---------------------------------------------------------------------------
// Regions, config and zone
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
/// that took effect shows in the failover answer.
pub fn swapped_priorities() -> String {
    let mut regions = REGIONS;
    regions[0].priority = 2;
    regions[1].priority = 1;
    config_with(&regions)
}

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

/// A loopback port with nothing listening on it (right now).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
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
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// A throwaway CA for HTTPS health endpoints
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
