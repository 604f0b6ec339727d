//! `[server]` and `[rate_limit]`: where the server listens and how hard
//! it answers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::super::schema;
use super::super::{RateLimit, Server};
use super::Validator;

/// Upper bounds that only catch typos: each UDP worker is a thread with a
/// socket per address, so a count far past any machine's cores is a
/// mistake, not a tuning.
const MAX_UDP_WORKERS: i64 = 1024;
const MAX_TCP_THREADS: i64 = 256;

impl Validator<'_> {
    pub(super) fn server(&mut self, s: schema::Server, token_env: Option<String>) -> Server {
        let mut dns_listen = Vec::new();
        if s.dns_listen.get_ref().is_empty() {
            self.err(
                s.dns_listen.span(),
                "server.dns_listen",
                "give at least one address, e.g. [\"127.0.0.1:5300\"]",
            );
        }
        let mut seen = HashSet::new();
        for a in s.dns_listen.into_inner() {
            match SocketAddr::from_str(a.get_ref()) {
                Ok(addr) if !seen.insert(addr) => {
                    self.err(a.span(), "server.dns_listen", format!("{addr} is listed twice"))
                }
                Ok(addr) => dns_listen.push(addr),
                Err(_) => self.err(
                    a.span(),
                    "server.dns_listen",
                    format!("{:?} is not an address with a port, e.g. \"127.0.0.1:5300\" or \"[::1]:53\"", a.get_ref()),
                ),
            }
        }
        let admin_listen = match SocketAddr::from_str(s.admin_listen.get_ref()) {
            Ok(a) => a,
            Err(_) => {
                self.err(
                    s.admin_listen.span(),
                    "server.admin_listen",
                    format!(
                        "{:?} is not an address with a port, e.g. \"127.0.0.1:9300\"",
                        s.admin_listen.get_ref()
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 9300))
            }
        };
        let admin_token = token_env.or_else(|| s.admin_token.as_ref().map(|t| t.get_ref().clone()));
        if let Some(t) = &s.admin_token
            && t.get_ref().len() < 16
        {
            self.err(
                t.span(),
                "server.admin_token",
                "too short: use at least 16 characters",
            );
        }
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            self.err(
                s.admin_listen.span(),
                "server.admin_listen",
                "is not a loopback address, so an admin_token (or env KEIKO_ADMIN_TOKEN) is required",
            );
        }
        if s.region.get_ref().is_empty() {
            self.err(
                s.region.span(),
                "server.region",
                "must name the region this instance runs in",
            );
        }
        let nsid = s.nsid.map(|n| {
            if n.get_ref().is_empty() || n.get_ref().len() > 255 {
                self.err(n.span(), "server.nsid", "must be 1 to 255 bytes");
            }
            n.into_inner()
        });
        let cookie_secret = s
            .cookie_secret
            .and_then(|c| match parse_hex16(c.get_ref()) {
                Some(k) => Some(k),
                None => {
                    self.err(
                        c.span(),
                        "server.cookie_secret",
                        "must be 32 hexadecimal digits (16 bytes)",
                    );
                    None
                }
            });
        let udp_workers = s
            .udp_workers
            .map(|n| self.int_in(&n, "server.udp_workers", 1, MAX_UDP_WORKERS) as usize);
        let tcp_threads = s.tcp_threads.map_or(1, |n| {
            self.int_in(&n, "server.tcp_threads", 1, MAX_TCP_THREADS) as usize
        });
        Server {
            dns_listen,
            admin_listen,
            region: s.region.into_inner(),
            state_dir: self.path(s.state_dir.get_ref()),
            admin_token,
            nsid,
            version: s.version.map(Spanned::into_inner),
            cookie_secret,
            udp_workers,
            tcp_threads,
        }
    }

    pub(super) fn rate_limit(&mut self, r: schema::RateLimit) -> Option<RateLimit> {
        let any = r.window.is_some()
            || r.slip.is_some()
            || r.ipv4_prefix_length.is_some()
            || r.ipv6_prefix_length.is_some()
            || r.exempt.is_some();
        let Some(rps) = r.responses_per_second else {
            if any {
                self.err(
                    0..0,
                    "rate_limit.responses_per_second",
                    "is required when [rate_limit] sets other keys",
                );
            }
            return None;
        };
        let responses_per_second =
            self.int_in(&rps, "rate_limit.responses_per_second", 1, 1_000_000);
        let window = match r.window {
            Some(w) => {
                let d = w.get_ref().0;
                if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                    self.err(w.span(), "rate_limit.window", "must be between 1s and 1h");
                }
                d
            }
            None => Duration::from_secs(15),
        };
        let slip = r
            .slip
            .map_or(2, |s| self.int_in(&s, "rate_limit.slip", 0, 10));
        let v4 = r.ipv4_prefix_length.map_or(24, |p| {
            self.int_in(&p, "rate_limit.ipv4_prefix_length", 0, 32)
        });
        let v6 = r.ipv6_prefix_length.map_or(56, |p| {
            self.int_in(&p, "rate_limit.ipv6_prefix_length", 0, 128)
        });
        let mut exempt = Vec::new();
        for net in r.exempt.unwrap_or_default() {
            match parse_net(net.get_ref()) {
                Some(n) => exempt.push(n),
                None => self.err(
                    net.span(),
                    "rate_limit.exempt",
                    format!(
                        "{:?} is not a network, e.g. \"127.0.0.0/8\" or \"2001:db8::/32\"",
                        net.get_ref()
                    ),
                ),
            }
        }
        Some(RateLimit {
            responses_per_second,
            window,
            slip,
            ipv4_prefix_length: v4 as u8,
            ipv6_prefix_length: v6 as u8,
            exempt,
        })
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    IpNet::from_str(s)
        .ok()
        .map(|n| n.trunc())
        .or_else(|| IpAddr::from_str(s).ok().map(IpNet::from))
}

fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::super::Config;
    use super::super::super::tests::{line_of, one_error, replace};

    #[test]
    fn a_public_admin_address_needs_a_token() {
        let text = replace(
            "admin_listen = \"127.0.0.1:9300\"",
            "admin_listen = \"0.0.0.0:9300\"",
        );
        one_error(
            &text,
            "server.admin_listen",
            line_of(&text, "0.0.0.0:9300"),
            "admin_token",
        );
        let with_token = text.replace("[zone]", "admin_token = \"0123456789abcdef0123\"\n\n[zone]");
        assert!(Config::parse(Path::new("/k.toml"), &with_token).is_ok());
    }

    #[test]
    fn listen_addresses_must_have_ports() {
        let text = replace("[\"127.0.0.1:5300\"]", "[\"127.0.0.1\"]");
        one_error(
            &text,
            "server.dns_listen",
            line_of(&text, "dns_listen"),
            "not an address with a port",
        );
    }

    #[test]
    fn worker_counts_default_to_the_cores_and_one_tcp_thread() {
        let c = Config::parse(Path::new("/k.toml"), super::super::super::tests::CONFIG).unwrap();
        assert_eq!(c.server.udp_workers, None);
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        assert_eq!(c.server.udp_workers(), cores);
        assert_eq!(c.server.tcp_threads, 1);
    }

    #[test]
    fn worker_counts_are_taken_as_written() {
        let text = replace("[zone]", "udp_workers = 3\ntcp_threads = 2\n\n[zone]");
        let c = Config::parse(Path::new("/k.toml"), &text).unwrap();
        assert_eq!(c.server.udp_workers, Some(3));
        assert_eq!(c.server.udp_workers(), 3);
        assert_eq!(c.server.tcp_threads, 2);
    }

    #[test]
    fn worker_counts_must_be_at_least_one() {
        for key in ["udp_workers", "tcp_threads"] {
            let text = replace("[zone]", &format!("{key} = 0\n\n[zone]"));
            one_error(
                &text,
                &format!("server.{key}"),
                line_of(&text, &format!("{key} = 0")),
                "allowed: 1 to",
            );
            let text = replace("[zone]", &format!("{key} = -4\n\n[zone]"));
            one_error(
                &text,
                &format!("server.{key}"),
                line_of(&text, &format!("{key} = -4")),
                "out of range",
            );
        }
        let text = replace("[zone]", "udp_workers = 100000\n\n[zone]");
        one_error(
            &text,
            "server.udp_workers",
            line_of(&text, "udp_workers"),
            "allowed: 1 to 1024",
        );
        // A count is a whole number: text or a fraction is a type error
        // that names the key's line.
        for bad in ["\"4\"", "2.5"] {
            let text = replace("[zone]", &format!("tcp_threads = {bad}\n\n[zone]"));
            let found = super::super::super::tests::errors(&text);
            assert_eq!(found[0].line, line_of(&text, "tcp_threads"), "{found:?}");
        }
    }

    #[test]
    fn rate_limit_values_are_checked() {
        let text = format!(
            "{}\n[rate_limit]\nresponses_per_second = 20\nslip = 11\n",
            super::super::super::tests::CONFIG
        );
        one_error(
            &text,
            "rate_limit.slip",
            line_of(&text, "slip = 11"),
            "allowed: 0 to 10",
        );
        let text = format!(
            "{}\n[rate_limit]\nwindow = \"5s\"\n",
            super::super::super::tests::CONFIG
        );
        let found = super::super::super::tests::errors(&text);
        assert!(
            found
                .iter()
                .any(|d| d.key == "rate_limit.responses_per_second"),
            "{found:?}"
        );
    }
}
