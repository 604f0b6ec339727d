//! A real recursive resolver in front of the server: Debian's `unbound`,
//! on loopback, sending ECS towards our authority and, when asked,
//! validating DNSSEC with the zone's own trust anchor.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::dns::{QueryExt, UdpClient, fqdn};
use super::fixtures::{ORIGIN, free_port};

pub const UNBOUND: &str = "/usr/sbin/unbound";

/// A non-daemon `unbound` on loopback; killed (by its PID) on drop.
pub struct Unbound {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

/// A validating unbound: the zone's trust anchor (DS or DNSKEY records in
/// zone-file form) and, for a negative control, the date its validator
/// believes it is (`val-override-date`, YYYYMMDDHHMMSS).
pub struct Validation<'a> {
    pub anchor: &'a str,
    pub date: Option<&'a str>,
}

impl Unbound {
    /// The config that works with unbound 1.17 (Debian bookworm):
    ///
    /// ```text
    /// server:
    ///     interface: 127.0.0.1@PORT      # and port: PORT
    ///     do-ip6: no
    ///     outgoing-interface: 127.0.0.1  # it can only send from loopback...
    ///     do-not-query-localhost: no     # ...to our loopback authority
    ///     username: ""  chroot: ""  directory/pidfile in a tempdir
    ///     use-syslog: no  logfile: ""    # log to stderr
    ///     access-control: 127.0.0.0/8 allow
    ///     module-config: "subnetcache iterator"   # no validator, no trust anchor
    ///     send-client-subnet: 127.0.0.1           # ECS towards this authority
    ///     client-subnet-always-forward: yes
    ///     max-client-subnet-ipv4: 32              # pass the client's /32 on
    ///     max-client-subnet-ipv6: 128
    ///     qname-minimisation: no
    /// stub-zone: name "keiko.example.com", stub-addr 127.0.0.1@DNSPORT
    /// stub-zone: name ".", stub-addr 127.0.0.1@DNSPORT   # never the real root
    /// ```
    pub fn start(dns_port: u16) -> Unbound {
        Unbound::start_with(dns_port, None)
    }

    /// As [`Unbound::start`], validating with `validation` when given
    /// (module-config "subnetcache validator iterator").
    pub fn start_with(dns_port: u16, validation: Option<Validation<'_>>) -> Unbound {
        assert!(
            Path::new(UNBOUND).is_file(),
            "unbound not found: run tests/run.sh (it installs Debian's unbound at {UNBOUND})"
        );
        let dir = tempfile::Builder::new()
            .prefix("keiko-unbound-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let d = dir.path().to_str().unwrap();
        let validating = validation.is_some();
        let (modules, validator) = match &validation {
            None => ("subnetcache iterator", String::new()),
            Some(v) => {
                fs::write(dir.path().join("anchor.txt"), v.anchor).unwrap();
                let date = v
                    .date
                    .map(|d| format!("    val-override-date: \"{d}\"\n"))
                    .unwrap_or_default();
                (
                    "subnetcache validator iterator",
                    format!(
                        "    trust-anchor-file: \"{d}/anchor.txt\"\n    val-log-level: 2\n{date}"
                    ),
                )
            }
        };
        let conf = format!(
            r#"server:
    verbosity: 1
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    outgoing-interface: 127.0.0.1
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    module-config: "{modules}"
{validator}    send-client-subnet: 127.0.0.1
    client-subnet-always-forward: yes
    max-client-subnet-ipv4: 32
    max-client-subnet-ipv6: 128
    qname-minimisation: no
    prefetch: no

stub-zone:
    name: "keiko.example.com"
    stub-addr: 127.0.0.1@{dns_port}

stub-zone:
    name: "."
    stub-addr: 127.0.0.1@{dns_port}
"#
        );
        let conf_path = dir.path().join("unbound.conf");
        fs::write(&conf_path, &conf).unwrap();
        let log = fs::File::create(dir.path().join("unbound.log")).unwrap();
        let child = Command::new(UNBOUND)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn unbound");
        let mut unbound = Unbound {
            child,
            dir,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        // Ready once it resolves the zone's SOA through our server.
        let client = UdpClient::new(unbound.addr, Duration::from_millis(300));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = unbound.child.try_wait() {
                panic!(
                    "unbound exited with {status}; config:\n{conf}\nlog:\n{}",
                    unbound.log()
                );
            }
            let mut soa = Message::query_for(ORIGIN, RecordType::SOA);
            soa.metadata.recursion_desired = true;
            // Validating with a wrong anchor, SERVFAIL is the answer too.
            if let Some(m) = client.try_exchange(&soa)
                && (m.metadata.response_code == ResponseCode::NoError
                    || (validating && m.metadata.response_code == ResponseCode::ServFail))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "unbound not answering within 10 s; config:\n{conf}\nlog:\n{}",
                unbound.log()
            );
        }
        unbound
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }

    /// A recursive query (RD) through unbound, with ECS `addr/prefix` or none.
    pub fn resolve(&self, name: &str, rtype: RecordType, subnet: Option<(&str, u8)>) -> Message {
        UdpClient::new(self.addr, Duration::from_secs(3)).exchange(&self.query(name, rtype, subnet))
    }

    /// The query [`Unbound::resolve`] sends.
    pub fn query(&self, name: &str, rtype: RecordType, subnet: Option<(&str, u8)>) -> Message {
        let mut q = Message::query_for(&fqdn(name), rtype);
        q.metadata.recursion_desired = true;
        // RFC 6840 5.7: AD in the query asks for AD in the answer.
        q.metadata.authentic_data = true;
        if let Some((addr, prefix)) = subnet {
            let addr: IpAddr = addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address {addr}: {e}"));
            q = q.with_subnet(mask(addr, prefix), prefix);
        }
        q
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        // SIGKILL to our own child, by PID; then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ip` with the bits past `prefix` cleared, as an ECS address must be.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}
