//! `[fleet]`: this instance's name, its peer endpoint, its peers, the
//! fleet's certificates and how many vantage points take a region out.
//!
//! The certificate files are read and checked here with the same code the
//! peer endpoint builds its TLS from (`crate::tls::peer`), so whatever
//! `check` accepts, the peer channel can use.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use toml::Spanned;

use super::super::schema::{self, QuorumText};
use super::super::{Fleet, Quorum, Server};
use super::{Validator, fmt_dur};
use crate::tls::TlsError;
use crate::tls::peer::{self, PeerTls};

/// Below this a peer that is merely slow (50-250 ms away, pushing every
/// second) would flap between fresh and stale.
const MIN_PEER_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    pub(super) fn fleet(
        &mut self,
        raw: Option<Spanned<schema::Fleet>>,
        server: &Server,
    ) -> Option<Fleet> {
        let f = raw?.into_inner();
        let instance = f.instance.get_ref().clone();
        let instance_ok = match peer::instance_name_problem(&instance) {
            Some(problem) => {
                self.err(f.instance.span(), "fleet.instance", problem);
                false
            }
            None => true,
        };
        let listen = self.fleet_listen(&f.listen, server);
        let peers = self.peers(&f.peers, &instance, listen);
        let down_quorum = f
            .down_quorum
            .as_ref()
            .map_or(Quorum::Majority, |q| self.quorum(q));
        let peer_timeout = match &f.peer_timeout {
            None => DEFAULT_PEER_TIMEOUT,
            Some(t) => {
                let d = t.get_ref().0;
                if d < MIN_PEER_TIMEOUT {
                    self.err(
                        t.span(),
                        "fleet.peer_timeout",
                        format!(
                            "{} is too short; allowed: {} or longer (peers push every second)",
                            fmt_dur(d),
                            fmt_dur(MIN_PEER_TIMEOUT)
                        ),
                    );
                }
                d
            }
        };
        let fleet = Fleet {
            instance,
            listen: listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            peers,
            ca_file: self.path(f.ca_file.get_ref()),
            cert_file: self.path(f.cert_file.get_ref()),
            key_file: self.path(f.key_file.get_ref()),
            down_quorum,
            peer_timeout,
        };
        self.fleet_files(&fleet, &f, instance_ok);
        Some(fleet)
    }

    fn fleet_listen(&mut self, raw: &Spanned<String>, server: &Server) -> Option<SocketAddr> {
        let Ok(addr) = SocketAddr::from_str(raw.get_ref()) else {
            self.err(
                raw.span(),
                "fleet.listen",
                format!(
                    "{:?} is not an address with a port, e.g. \"0.0.0.0:9443\" or \"[::]:9443\"",
                    raw.get_ref()
                ),
            );
            return None;
        };
        let taken = if addr == server.admin_listen {
            Some("server.admin_listen")
        } else if server.dns_listen.contains(&addr) {
            Some("server.dns_listen (DNS over TCP)")
        } else {
            None
        };
        if let Some(other) = taken {
            self.err(
                raw.span(),
                "fleet.listen",
                format!("{addr} is also {other}; the peer endpoint needs its own port"),
            );
        }
        Some(addr)
    }

    /// The peer URLs without this instance's own: the same list can then
    /// be written on every instance.
    fn peers(
        &mut self,
        raw: &[Spanned<String>],
        instance: &str,
        listen: Option<SocketAddr>,
    ) -> Vec<Url> {
        let mut peers: Vec<Url> = Vec::new();
        for p in raw {
            let url = match peer_url(p.get_ref()) {
                Ok(url) => url,
                Err(why) => {
                    self.err(
                        p.span(),
                        "fleet.peers",
                        format!(
                            "{:?} {why}; write each peer as \"https://HOST:PORT\", e.g. \
                             \"https://ns2.eu-west-1.keiko.example.com:9443\"",
                            p.get_ref()
                        ),
                    );
                    continue;
                }
            };
            if is_self(&url, instance, listen) {
                continue;
            }
            if peers.contains(&url) {
                self.err(
                    p.span(),
                    "fleet.peers",
                    format!("{:?} is listed twice", p.get_ref()),
                );
                continue;
            }
            peers.push(url);
        }
        peers
    }

    fn quorum(&mut self, raw: &Spanned<QuorumText>) -> Quorum {
        let allowed =
            "use \"majority\", \"all\", \"any\" or a number of vantage points (1 or more)";
        match raw.get_ref() {
            QuorumText::Word(w) => match w.as_str() {
                "majority" => Quorum::Majority,
                "all" => Quorum::All,
                "any" => Quorum::Any,
                other => {
                    self.err(
                        raw.span(),
                        "fleet.down_quorum",
                        format!("{other:?} is not allowed; {allowed}"),
                    );
                    Quorum::Majority
                }
            },
            QuorumText::Number(n) => match u32::try_from(*n) {
                Ok(n) if n >= 1 => Quorum::AtLeast(n),
                _ => {
                    self.err(
                        raw.span(),
                        "fleet.down_quorum",
                        format!("{n} is not allowed; {allowed}"),
                    );
                    Quorum::Majority
                }
            },
        }
    }

    /// Reads the CA, the certificate chain and the key, each error at its
    /// own key; when all three read, checks that they fit together.
    fn fleet_files(&mut self, fleet: &Fleet, raw: &schema::Fleet, instance_ok: bool) {
        let ca = crate::tls::load_ca_file(&fleet.ca_file)
            .map_err(|e| self.err(raw.ca_file.span(), "fleet.ca_file", e.to_string()))
            .ok();
        let chain = peer::load_chain(&fleet.cert_file)
            .map_err(|e| self.err(raw.cert_file.span(), "fleet.cert_file", e.to_string()))
            .ok();
        let key = peer::load_key(&fleet.key_file)
            .map_err(|e| self.err(raw.key_file.span(), "fleet.key_file", e.to_string()))
            .ok();
        let (Some(ca), Some(chain), Some(key), true) = (ca, chain, key, instance_ok) else {
            return;
        };
        if let Err(e) = PeerTls::build(fleet, &ca, chain, key) {
            let (span, key) = match e {
                TlsError::KeyMismatch { .. } => (raw.key_file.span(), "fleet.key_file"),
                _ => (raw.cert_file.span(), "fleet.cert_file"),
            };
            self.err(span, key, e.to_string());
        }
    }
}

/// A peer endpoint: `https://HOST:PORT` (443 when no port is written),
/// nothing else.
fn peer_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not a URL")?;
    if url.scheme() != "https" {
        return Err("is not https:// (the peer channel is always TLS)");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    let extra = !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some();
    if extra {
        return Err("must be only a scheme, a host and a port");
    }
    Ok(url)
}

/// Whether `url` is this instance's own endpoint: its host is the
/// instance name, or it is the listen address itself (a loopback address
/// or `localhost` on the listen port counts when listening on every
/// address).
fn is_self(url: &Url, instance: &str, listen: Option<SocketAddr>) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case(instance) {
        return true;
    }
    let (Some(listen), Some(port)) = (listen, url.port_or_known_default()) else {
        return false;
    };
    if port != listen.port() {
        return false;
    }
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        // `host_str` keeps an IPv6 literal's brackets.
        match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => ip,
            Err(_) => return false,
        }
    };
    ip == listen.ip() || (listen.ip().is_unspecified() && ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::super::tests::{CONFIG, errors, one_error};
    use super::super::super::{Config, ConfigError};
    use super::*;
    use crate::tls::peer::testing::{Ca, instance_files, write};

    /// A folder with the fleet CA and ns1's certificate and key.
    struct Pki {
        dir: tempfile::TempDir,
        ca: Ca,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ca = Ca::new("fleet CA");
            instance_files(dir.path(), &ca, "ns1.us-east-1");
            Pki { dir, ca }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        /// The config with a valid `[fleet]` for ns1, then `extra` lines.
        fn config(&self, extra: &str) -> String {
            format!(
                "{CONFIG}\n[fleet]\n\
                 instance  = \"ns1.us-east-1\"\n\
                 listen    = \"127.0.0.1:9443\"\n\
                 peers     = [\"https://ns1.us-east-1:9443\", \"https://127.0.0.1:9443\", \
                              \"https://ns2.eu-west-1:9443\", \"https://192.0.2.3:9443\"]\n\
                 ca_file   = {:?}\n\
                 cert_file = {:?}\n\
                 key_file  = {:?}\n{extra}",
                self.path("ca.pem"),
                self.path("ns1.us-east-1.pem"),
                self.path("ns1.us-east-1.key"),
            )
        }
    }

    /// The line (from 1) that starts with `prefix`: fleet keys also end
    /// other keys' names (`listen`, `admin_listen`).
    fn line_of(text: &str, prefix: &str) -> usize {
        text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
    }

    fn parse(text: &str) -> Config {
        match Config::parse(Path::new("/etc/keiko/keiko.toml"), text) {
            Ok(c) => c,
            Err(ConfigError::Invalid(found)) => {
                panic!(
                    "{}",
                    found.iter().map(|d| format!("{d}\n")).collect::<String>()
                )
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// `text` with the line holding `key =` in `[fleet]` replaced.
    fn set(text: &str, key: &str, line: &str) -> String {
        let start = text.find("[fleet]").unwrap();
        let (head, tail) = text.split_at(start);
        let old = tail
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")) || l.starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in [fleet]"));
        format!("{head}{}", tail.replacen(old, line, 1))
    }

    #[test]
    fn a_valid_fleet_section_with_its_defaults() {
        let pki = Pki::new();
        assert!(parse(CONFIG).fleet.is_none());
        let c = parse(&pki.config(""));
        let f = c.fleet.expect("fleet");
        assert_eq!(f.instance, "ns1.us-east-1");
        assert_eq!(f.listen, "127.0.0.1:9443".parse().unwrap());
        let peers: Vec<&str> = f.peers.iter().map(Url::as_str).collect();
        // Itself (by name and by address) is dropped.
        assert_eq!(
            peers,
            ["https://ns2.eu-west-1:9443/", "https://192.0.2.3:9443/"]
        );
        assert_eq!(f.down_quorum, Quorum::Majority);
        assert_eq!(f.peer_timeout, Duration::from_secs(10));
        assert_eq!(f.key_file, pki.dir.path().join("ns1.us-east-1.key"));

        let c = parse(&pki.config("down_quorum = 2\npeer_timeout = \"3s\"\n"));
        let f = c.fleet.unwrap();
        assert_eq!(f.down_quorum, Quorum::AtLeast(2));
        assert_eq!(f.peer_timeout, Duration::from_secs(3));
        for (word, q) in [("all", Quorum::All), ("any", Quorum::Any)] {
            let c = parse(&pki.config(&format!("down_quorum = \"{word}\"\n")));
            assert_eq!(c.fleet.unwrap().down_quorum, q);
        }
    }

    #[test]
    fn file_paths_are_relative_to_the_config() {
        let pki = Pki::new();
        let text = pki
            .config("")
            .replace(&format!("{}/", pki.dir.path().display()), "");
        assert!(text.contains("ca_file   = \"ca.pem\""), "{text}");
        let config_path = pki.dir.path().join("keiko.toml");
        let c = Config::parse(&config_path, &text).unwrap_or_else(|e| panic!("{e}"));
        let f = c.fleet.unwrap();
        for p in [&f.ca_file, &f.cert_file, &f.key_file] {
            assert!(p.is_absolute() && p.starts_with(pki.dir.path()), "{p:?}");
        }
        // Against /etc/keiko the same names do not exist.
        let found = errors(&text);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].message.contains("/etc/keiko/ca.pem"), "{found:?}");
    }

    #[test]
    fn instance_and_listen_are_required_and_checked() {
        let pki = Pki::new();
        let text = set(&pki.config(""), "instance", "");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("required key `instance`"),
            "{found:?}"
        );
        assert_eq!(found[0].key, "fleet");

        let text = set(&pki.config(""), "instance", "instance = \"NS1.us-east-1\"");
        // The certificate check needs a valid name: only one error.
        one_error(
            &text,
            "fleet.instance",
            line_of(&text, "instance = \"NS1"),
            "lower case",
        );

        let text = set(&pki.config(""), "listen", "listen = \"9443\"");
        one_error(
            &text,
            "fleet.listen",
            line_of(&text, "listen = \"9443\""),
            "not an address with a port",
        );
        let text = set(&pki.config(""), "listen", "listen = \"127.0.0.1:9300\"");
        one_error(
            &text,
            "fleet.listen",
            line_of(&text, "listen = \"127.0.0.1:9300\""),
            "also server.admin_listen",
        );
        let text = format!("{}colour = \"blue\"\n", pki.config(""));
        one_error(
            &text,
            "fleet.colour",
            line_of(&text, "colour"),
            "unknown key `colour`",
        );
    }

    #[test]
    fn peers_are_https_endpoints_listed_once() {
        let pki = Pki::new();
        for (peer, words) in [
            ("http://ns2.eu-west-1:9443", "is not https://"),
            (
                "https://ns2.eu-west-1:9443/fleet",
                "only a scheme, a host and a port",
            ),
            ("ns2.eu-west-1:9443", "https://HOST:PORT"),
        ] {
            let text = set(
                &pki.config(""),
                "peers",
                &format!("peers = [\"https://ns3.ap-southeast-1:9443\", {peer:?}]"),
            );
            one_error(&text, "fleet.peers", line_of(&text, "peers ="), words);
        }
        let text = set(
            &pki.config(""),
            "peers",
            "peers = [\"https://ns2.eu-west-1:9443\", \"https://NS2.eu-west-1:9443/\"]",
        );
        one_error(
            &text,
            "fleet.peers",
            line_of(&text, "peers ="),
            "listed twice",
        );

        // Listening on every address, loopback on the same port is itself.
        let text = set(&pki.config(""), "listen", "listen = \"0.0.0.0:9443\"");
        let text = set(
            &text,
            "peers",
            "peers = [\"https://localhost:9443\", \"https://127.0.0.1:9444\"]",
        );
        let f = parse(&text).fleet.unwrap();
        let peers: Vec<&str> = f.peers.iter().map(Url::as_str).collect();
        assert_eq!(peers, ["https://127.0.0.1:9444/"]);
    }

    #[test]
    fn quorum_and_timeout_forms() {
        let pki = Pki::new();
        for bad in ["\"most\"", "0", "-1"] {
            let text = pki.config(&format!("down_quorum = {bad}\n"));
            one_error(
                &text,
                "fleet.down_quorum",
                line_of(&text, "down_quorum"),
                "use \"majority\", \"all\", \"any\" or a number",
            );
        }
        let text = pki.config("peer_timeout = \"500ms\"\n");
        one_error(
            &text,
            "fleet.peer_timeout",
            line_of(&text, "peer_timeout"),
            "allowed: 1s or longer",
        );
        let text = pki.config("peer_timeout = 10\n");
        one_error(
            &text,
            "fleet.peer_timeout",
            line_of(&text, "peer_timeout"),
            "a duration like \"30s\"",
        );
    }

    #[test]
    fn the_certificate_files_are_read_and_must_fit() {
        let pki = Pki::new();
        let dir = pki.dir.path();
        let text = pki.config("");

        // The key readable by others.
        write(
            dir,
            "ns1.us-east-1.key",
            &std::fs::read_to_string(dir.join("ns1.us-east-1.key")).unwrap(),
            0o644,
        );
        one_error(
            &text,
            "fleet.key_file",
            line_of(&text, "key_file"),
            "chmod 600",
        );

        // A certificate for another name.
        let other_name = pki.ca.leaf(&["ns9.us-east-1"]);
        write(dir, "ns1.us-east-1.pem", &other_name.chain_pem, 0o644);
        write(dir, "ns1.us-east-1.key", &other_name.key_pem, 0o600);
        one_error(
            &text,
            "fleet.cert_file",
            line_of(&text, "cert_file"),
            "does not carry \"ns1.us-east-1\" as a DNS subject alternative name",
        );

        // A certificate from another CA.
        let stranger = Ca::new("another CA").leaf(&["ns1.us-east-1"]);
        write(dir, "ns1.us-east-1.pem", &stranger.chain_pem, 0o644);
        write(dir, "ns1.us-east-1.key", &stranger.key_pem, 0o600);
        one_error(
            &text,
            "fleet.cert_file",
            line_of(&text, "cert_file"),
            "not accepted under the fleet CA",
        );

        // The right certificate with another key.
        let right = pki.ca.leaf(&["ns1.us-east-1"]);
        write(dir, "ns1.us-east-1.pem", &right.chain_pem, 0o644);
        write(dir, "ns1.us-east-1.key", &stranger.key_pem, 0o600);
        one_error(
            &text,
            "fleet.key_file",
            line_of(&text, "key_file"),
            "is not the key of certificate file",
        );

        // A CA file without a certificate, a missing chain, a missing key.
        write(dir, "ca.pem", "nothing\n", 0o644);
        std::fs::remove_file(dir.join("ns1.us-east-1.pem")).unwrap();
        std::fs::remove_file(dir.join("ns1.us-east-1.key")).unwrap();
        let found = errors(&text);
        let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            ["fleet.ca_file", "fleet.cert_file", "fleet.key_file"],
            "{found:?}"
        );
        assert!(
            found[0].message.contains("holds no certificate"),
            "{found:?}"
        );
        assert!(found[1].message.contains("cannot read"), "{found:?}");
        assert_eq!(found[2].line, line_of(&text, "key_file"));
    }
}
