//! `[health]` and what each region's probes go to.
//!
//! A region's probe target is derived here, once, from `health_url` or
//! from `endpoint`, its first address and `health.path`, so a target that
//! could never be probed (a `tcp://` host name, say) is refused by `check`
//! and by a reload instead of failing every probe forever.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use reqwest::Url;
use toml::Spanned;

use super::super::schema;
use super::super::{Health, ProbeTarget};
use super::{Validator, fmt_dur};

/// Why a region's probe target cannot be derived: `key` is the config key
/// at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub(crate) struct TargetError {
    pub key: &'static str,
    pub message: String,
}

/// The target of a region, as the reference says: with `health_url`
/// (`http://`, `https://`, or `tcp://host:port` where host is an IP literal
/// or `localhost`), that URL; without it, `first_address` on the port of
/// `endpoint` (443 for https, 80 for http) at `path`, with Host/SNI the
/// endpoint's host name, so a health check never depends on the DNS this
/// server answers.
pub(crate) fn probe_target(
    endpoint: &str,
    health_url: Option<&str>,
    first_address: IpAddr,
    path: &str,
) -> Result<ProbeTarget, TargetError> {
    match health_url {
        Some(raw) => from_health_url(raw),
        None => from_endpoint(endpoint, first_address, path),
    }
}

fn from_endpoint(endpoint: &str, first: IpAddr, path: &str) -> Result<ProbeTarget, TargetError> {
    let invalid = |key, message: String| TargetError { key, message };
    let bad_endpoint = || {
        invalid(
            "regions.endpoint",
            format!("{endpoint:?} is not an http:// or https:// URL with a host"),
        )
    };
    let url = Url::parse(endpoint).map_err(|_| bad_endpoint())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad_endpoint());
    }
    let port = url.port_or_known_default().ok_or_else(bad_endpoint)?;
    if !path.starts_with('/') {
        return Err(invalid(
            "health.path",
            format!("{path:?} must start with \"/\", e.g. \"/health\""),
        ));
    }
    let mut url = url.join(path).map_err(|e| {
        invalid(
            "health.path",
            format!("{path:?} cannot follow {endpoint:?}: {e}"),
        )
    })?;
    if url_ip(&url).is_none() {
        return Ok(ProbeTarget::Http {
            url,
            connect_to: Some(SocketAddr::new(first, port)),
        });
    }
    // An IP-literal host is dialled as written, never through a pin, so the
    // first address goes into the url itself.
    url.set_ip_host(first).map_err(|()| bad_endpoint())?;
    Ok(ProbeTarget::Http {
        url,
        connect_to: None,
    })
}

fn from_health_url(raw: &str) -> Result<ProbeTarget, TargetError> {
    let invalid = |why: &str| TargetError {
        key: "regions.health_url",
        message: format!("{raw:?} {why}"),
    };
    let complete = "must be a complete http://, https:// or tcp://host:port URL";
    let url = Url::parse(raw).map_err(|_| invalid(complete))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(ProbeTarget::Http {
                url,
                connect_to: None,
            })
        }
        "tcp" => {
            let host = url.host_str().unwrap_or_default();
            let Some(port) = url.port().filter(|_| !host.is_empty()) else {
                return Err(invalid("needs a host and a port: tcp://host:port"));
            };
            let extra = !matches!(url.path(), "" | "/")
                || url.query().is_some()
                || url.fragment().is_some()
                || !url.username().is_empty();
            if extra {
                return Err(invalid("takes only a host and a port: tcp://host:port"));
            }
            // No DNS: health checks must not depend on name resolution, and
            // "localhost" is fixed to IPv4 loopback so the demo config
            // behaves the same on every machine.
            let ip = if host.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                let literal = host.trim_start_matches('[').trim_end_matches(']');
                literal.parse().map_err(|_| {
                    invalid(&format!(
                        "names the host {host:?}: a tcp:// host must be an IP address or localhost \
                         (probes never use DNS), e.g. \"tcp://192.0.2.10:{port}\""
                    ))
                })?
            };
            Ok(ProbeTarget::Tcp {
                addr: SocketAddr::new(ip, port),
            })
        }
        _ => Err(invalid(complete)),
    }
}

/// The url's host when it is an IP literal (`host_str` keeps IPv6 brackets).
fn url_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Why `path` cannot serve as `health.ca_file`: it must be readable PEM
/// with at least one certificate, each usable as a trust anchor. A file
/// that is not would fail every https probe and take every region out.
fn ca_file_problem(path: &Path) -> Option<String> {
    // The same reading the probes' TLS setup does, so what passes here
    // cannot fail there.
    crate::tls::load_ca_file(path).err().map(|e| e.to_string())
}

impl Validator<'_> {
    pub(super) fn health(&mut self, h: schema::Health) -> Health {
        let interval = h.interval.get_ref().0;
        let timeout = h.timeout.get_ref().0;
        let fast = h.fast_interval.get_ref().0;
        if interval.is_zero() {
            self.err(
                h.interval.span(),
                "health.interval",
                "must be longer than 0s",
            );
        }
        if timeout.is_zero() {
            self.err(h.timeout.span(), "health.timeout", "must be longer than 0s");
        } else if timeout > interval {
            self.err(
                h.timeout.span(),
                "health.timeout",
                format!("{} is longer than health.interval ({}); the timeout must not exceed the interval", fmt_dur(timeout), fmt_dur(interval)),
            );
        }
        if fast.is_zero() || fast > interval {
            self.err(
                h.fast_interval.span(),
                "health.fast_interval",
                format!(
                    "{} is not allowed; it must be longer than 0s and no longer than health.interval ({})",
                    fmt_dur(fast),
                    fmt_dur(interval)
                ),
            );
        }
        let failure_threshold =
            self.int_in(&h.failure_threshold, "health.failure_threshold", 1, 100);
        let recovery_threshold =
            self.int_in(&h.recovery_threshold, "health.recovery_threshold", 1, 100);
        if !h.path.get_ref().starts_with('/') {
            self.err(
                h.path.span(),
                "health.path",
                format!(
                    "{:?} must start with \"/\", e.g. \"/health\"",
                    h.path.get_ref()
                ),
            );
        }
        let ca_file = h.ca_file.map(|c| {
            let path = self.path(c.get_ref());
            if let Some(problem) = ca_file_problem(&path) {
                self.err(c.span(), "health.ca_file", problem);
            }
            path
        });
        Health {
            interval,
            timeout,
            failure_threshold,
            recovery_threshold,
            fast_interval: fast,
            recovery: *h.recovery.get_ref(),
            path: h.path.into_inner(),
            ca_file,
        }
    }

    /// The probe target of region `r`, whose addresses are already parsed.
    pub(super) fn probe(
        &mut self,
        endpoint: &str,
        health_url: Option<&Spanned<String>>,
        first_address: Option<IpAddr>,
        health: &Health,
    ) -> ProbeTarget {
        let unusable = ProbeTarget::Tcp {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let url = health_url.map(|h| h.get_ref().as_str());
        let Some(first) = first_address.or(url.map(|_| IpAddr::from([0, 0, 0, 0]))) else {
            // No address at all: reported with the addresses.
            return unusable;
        };
        match probe_target(endpoint, url, first, &health.path) {
            Ok(target) => target,
            Err(e) => {
                // A bad endpoint or health.path has its own check, reported once.
                let span = match e.key {
                    "regions.health_url" => health_url.map(Spanned::span),
                    _ => None,
                };
                if let Some(span) = span {
                    self.err(span, e.key, e.message);
                }
                unusable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{CONFIG, errors, line_of, one_error, replace};
    use super::*;

    fn health_url(url: &str) -> Result<ProbeTarget, TargetError> {
        probe_target(
            "https://api.example.com",
            Some(url),
            "192.0.2.10".parse().expect("ip"),
            "/health",
        )
    }

    fn http(url: &str, via: Option<&str>) -> ProbeTarget {
        ProbeTarget::Http {
            url: Url::parse(url).expect("url"),
            connect_to: via.map(|a| a.parse().expect("addr")),
        }
    }

    #[test]
    fn health_url_forms() {
        assert_eq!(
            health_url("http://127.0.0.1:18081/health"),
            Ok(http("http://127.0.0.1:18081/health", None))
        );
        let tcp = |a: &str| ProbeTarget::Tcp {
            addr: a.parse().expect("addr"),
        };
        assert_eq!(
            health_url("tcp://localhost:18082"),
            Ok(tcp("127.0.0.1:18082"))
        );
        assert_eq!(health_url("tcp://[::1]:53"), Ok(tcp("[::1]:53")));
        for bad in [
            "tcp://db.example.com:5432",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:80/path",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            let err = health_url(bad).expect_err(bad);
            assert_eq!(err.key, "regions.health_url");
            assert!(err.message.contains(&format!("{bad:?}")), "{err}");
        }
        let err = health_url("tcp://db.example.com:5432").expect_err("host name");
        assert!(err.message.contains("IP address or localhost"), "{err}");
    }

    #[test]
    fn endpoint_forms() {
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        let target = |endpoint: &str, ip, path: &str| probe_target(endpoint, None, ip, path);
        assert_eq!(
            target("https://api.example.com", ip, "/health"),
            Ok(http(
                "https://api.example.com/health",
                Some("192.0.2.10:443")
            ))
        );
        assert_eq!(
            target("http://api.example.com/app", ip, "/hc?deep=1"),
            Ok(http(
                "http://api.example.com/hc?deep=1",
                Some("192.0.2.10:80")
            ))
        );
        let v6: IpAddr = "2001:db8::10".parse().expect("ip");
        assert_eq!(
            target("https://api.example.com:8443", v6, "/"),
            Ok(http(
                "https://api.example.com:8443/",
                Some("[2001:db8::10]:8443")
            ))
        );
        // An IP endpoint is replaced by the first address, without a pin.
        assert_eq!(
            target("http://198.51.100.1:8080", ip, "/health"),
            Ok(http("http://192.0.2.10:8080/health", None))
        );
        let err = target("ftp://api.example.com", ip, "/").expect_err("ftp");
        assert_eq!(err.key, "regions.endpoint");
        let err = target("https://api.example.com", ip, "health").expect_err("path");
        assert_eq!(err.key, "health.path");
    }

    #[test]
    fn the_config_carries_each_regions_target() {
        let c =
            crate::config::Config::parse(std::path::Path::new("/k.toml"), CONFIG).expect("valid");
        assert_eq!(
            c.regions[0].probe,
            http(
                "https://api-contracts-us-east.keiko.example.com/health",
                Some("192.0.2.10:443")
            )
        );
    }

    #[test]
    fn a_tcp_health_url_must_not_need_dns() {
        let text = replace(
            "addresses = [\"192.0.2.10\", \"2001:db8:10::10\"]",
            "addresses = [\"192.0.2.10\", \"2001:db8:10::10\"]\nhealth_url = \"tcp://db.example.com:5432\"",
        );
        one_error(
            &text,
            "regions.health_url",
            line_of(&text, "tcp://db.example.com"),
            "IP address or localhost",
        );
    }

    #[test]
    fn durations_must_parse() {
        let text = format!("{CONFIG}\n[health]\ninterval = \"soon\"\n");
        one_error(
            &text,
            "health.interval",
            line_of(&text, "soon"),
            "invalid duration",
        );
        let text = format!("{CONFIG}\n[health]\ninterval = 30\n");
        one_error(
            &text,
            "health.interval",
            line_of(&text, "interval = 30"),
            "a duration like \"30s\"",
        );
    }

    #[test]
    fn the_recovery_mode_is_one_of_two() {
        let text = format!("{CONFIG}\n[health]\nrecovery = \"sometimes\"\n");
        one_error(
            &text,
            "health.recovery",
            line_of(&text, "sometimes"),
            "\"sometimes\" is not allowed; use \"automatic\" or \"manual\"",
        );
    }

    #[test]
    fn timeout_must_not_exceed_interval() {
        let text = format!(
            "{CONFIG}\n[health]\ninterval = \"5s\"\ntimeout = \"10s\"\nfast_interval = \"1s\"\n"
        );
        one_error(
            &text,
            "health.timeout",
            line_of(&text, "timeout ="),
            "must not exceed",
        );
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        for (file, words) in [
            ("missing.pem", "cannot read"),
            ("empty.pem", "holds no certificate"),
            ("broken.pem", "unusable as a trust anchor"),
        ] {
            let path = dir.path().join(file);
            let text = format!("{CONFIG}\n[health]\nca_file = {:?}\n", path.display());
            one_error(&text, "health.ca_file", line_of(&text, "ca_file"), words);
        }
        let found = errors(&format!("{CONFIG}\n[health]\nca_file = \"missing.pem\"\n"));
        assert!(
            found[0].message.contains("/etc/keiko/missing.pem"),
            "{found:?}"
        );
    }
}
