//! One health probe: what a region's target is, and the network I/O that
//! turns it into a verdict.
//!
//! This file owns the probe itself and reading the optional extra CA file
//! (the TLS setup itself is in `health::tls`); what a region's target is
//! (from `endpoint`, `health_url`, first address, `health.path`) is decided
//! by config validation, see [`crate::config::ProbeTarget`]. It keeps no health state: thresholds, intervals and transitions
//! belong to the caller, which spawns one [`Prober::probe`] per region and
//! round.
//!
//! The rules follow Route53: a 2xx or 3xx status is healthy (redirects are
//! not followed), `expect_body` must appear within the first
//! [`BODY_LIMIT`] bytes, and the whole probe is bounded by one timeout.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{HeaderValue, USER_AGENT};
use tokio::net::TcpStream;

use super::resolve::Resolver;
use crate::config::ProbeTarget;

/// How much of a body is searched for `expect_body` (Route53's figure); the
/// connection is dropped after that many bytes, so endless bodies cost
/// nothing more.
pub(crate) const BODY_LIMIT: usize = 5_120;

/// Pinned clients are cached per (host, address); past this many the cache
/// is emptied, so addresses that come and go across reloads cannot grow it
/// without bound.
const MAX_CACHED_CLIENTS: usize = 256;

const PROBE_USER_AGENT: &str = concat!("keiko-dns-health/", env!("CARGO_PKG_VERSION"));

/// Why a target or a prober could not be set up. Probe failures are not
/// errors: they are unhealthy [`Outcome`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProbeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot build HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The verdict of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub healthy: bool,
    /// Time from the start of the probe to the verdict.
    pub latency: Duration,
    /// The HTTP status, when one was received.
    pub status: Option<u16>,
    /// Short cause of an unhealthy verdict ("connection refused", "HTTP 503",
    /// "timed out after 10s", ...); `None` when healthy.
    pub reason: Option<String>,
}

/// Runs probes. Cheap to share: probes run concurrently through `&self`.
pub(crate) struct Prober {
    tls: rustls::ClientConfig,
    timeout: Duration,
    /// `None` is the unpinned client; `Some((host, addr))` a client whose
    /// `host` always connects to `addr`. Connections are never pooled, so a
    /// client is only a bundle of settings: caching it just saves the build.
    clients: Mutex<HashMap<Option<(String, SocketAddr)>, reqwest::Client>>,
    /// Resolves CNAME regions' targets (never through this server).
    resolver: Resolver,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// A prober that trusts the system roots plus, when given, the PEM
    /// certificates in `ca_file`, and bounds every probe by `timeout`.
    pub(crate) fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Prober, ProbeError> {
        let tls = crate::tls::client_config(ca_file)?;
        // Built now so a broken setup shows at config load, not at the
        // first probe.
        let unpinned = build_client(tls.clone(), None).map_err(ProbeError::Client)?;
        Ok(Prober {
            tls,
            timeout,
            clients: Mutex::new(HashMap::from([(None, unpinned)])),
            resolver: Resolver::system(),
        })
    }

    /// The same prober resolving CNAME targets at `resolver` instead.
    #[cfg(test)]
    pub(crate) fn with_resolver(mut self, resolver: Resolver) -> Prober {
        self.resolver = resolver;
        self
    }

    /// Probes `target` once. Never fails and never takes much longer than
    /// the timeout: everything (connect, TLS, headers, body) runs under it.
    pub(crate) async fn probe(&self, target: &ProbeTarget, expect_body: Option<&str>) -> Outcome {
        let start = Instant::now();
        let mut status = None;
        let verdict =
            tokio::time::timeout(self.timeout, self.check(target, expect_body, &mut status)).await;
        let latency = start.elapsed();
        let reason = match verdict {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_elapsed) => Some(format!(
                "timed out after {}",
                humantime::format_duration(self.timeout)
            )),
        };
        Outcome {
            healthy: reason.is_none(),
            latency,
            status,
            reason,
        }
    }

    /// The probe without its deadline; `status` is filled in as soon as it
    /// is known so a later timeout still reports it.
    async fn check(
        &self,
        target: &ProbeTarget,
        expect_body: Option<&str>,
        status: &mut Option<u16>,
    ) -> Result<(), String> {
        match target {
            ProbeTarget::Tcp { addr } => TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| describe_io(&e)),
            ProbeTarget::HttpVia { url, host, port } => {
                let ip = self.resolver.lookup(host).await?;
                self.http(url, Some(SocketAddr::new(ip, *port)), expect_body, status)
                    .await
            }
            ProbeTarget::Http { url, connect_to } => {
                self.http(url, *connect_to, expect_body, status).await
            }
        }
    }

    async fn http(
        &self,
        url: &Url,
        connect_to: Option<SocketAddr>,
        expect_body: Option<&str>,
        status: &mut Option<u16>,
    ) -> Result<(), String> {
        {
            {
                let client = self.client_for(url, connect_to)?;
                let response = client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| describe_error(&e))?;
                let code = response.status();
                *status = Some(code.as_u16());
                if !(code.is_success() || code.is_redirection()) {
                    return Err(format!("HTTP {}", code.as_u16()));
                }
                match expect_body {
                    None => Ok(()),
                    Some(expected) => {
                        if body_contains(response, expected.as_bytes()).await? {
                            Ok(())
                        } else {
                            Err(format!("body lacks {expected:?}"))
                        }
                    }
                }
            }
        }
    }

    fn client_for(
        &self,
        url: &Url,
        connect_to: Option<SocketAddr>,
    ) -> Result<reqwest::Client, String> {
        let key = match connect_to {
            None => None,
            Some(addr) => {
                let host = url.host_str().ok_or_else(|| "URL has no host".to_owned())?;
                Some((host.to_owned(), addr))
            }
        };
        // Held only for a map lookup and a synchronous client build; a
        // poisoned map is still a valid cache.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.retain(|k, _| k.is_none());
        }
        let pin = key.as_ref().map(|(host, addr)| (host.as_str(), *addr));
        let client = build_client(self.tls.clone(), pin)
            .map_err(|e| format!("HTTP client: {}", innermost(&e)))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Reads at most [`BODY_LIMIT`] bytes, stopping as soon as `needle` shows
/// up; dropping the response then closes the connection, so an endless body
/// is never read to its end.
async fn body_contains(mut response: reqwest::Response, needle: &[u8]) -> Result<bool, String> {
    let mut seen: Vec<u8> = Vec::with_capacity(BODY_LIMIT);
    while seen.len() < BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(BODY_LIMIT - seen.len());
                seen.extend_from_slice(&chunk[..take]);
                if contains(&seen, needle) {
                    return Ok(true);
                }
            }
            Ok(None) => break,
            Err(e) => return Err(describe_error(&e)),
        }
    }
    Ok(contains(&seen, needle))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// One client with the probe settings: no redirects (a 3xx is the verdict),
/// no proxies from the environment (probes go straight to the region), no
/// connection reuse (each probe measures a fresh connect, as Route53 does).
/// Deadlines are left to [`Prober::probe`] so every timeout reads the same.
fn build_client(
    tls: rustls::ClientConfig,
    pin: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(PROBE_USER_AGENT));
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .default_headers(headers);
    if let Some((host, addr)) = pin {
        builder = builder.resolve(host, addr);
    }
    builder.build()
}

/// A short, stable reason for a failed request: the transport cause when
/// there is one (I/O, TLS), else the innermost message (hyper's words for a
/// malformed response), never the long "error sending request for url"
/// wrapper.
pub(crate) fn describe_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let chain = || std::iter::successors(Some(error as &(dyn StdError + 'static)), |e| cause(*e));
    if let Some(tls) = chain().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return describe_tls(tls);
    }
    // The deepest I/O error is the one the socket reported.
    if let Some(io) = chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .last()
    {
        return describe_io(io);
    }
    let message = innermost(error);
    match message.as_str() {
        "connection closed before message completed" => "connection closed before response".into(),
        _ if error.is_body() || error.is_decode() => format!("bad body: {message}"),
        _ if error.is_request() => format!("bad HTTP response: {message}"),
        _ => message,
    }
}

/// The next error down the chain. A wrapping io::Error (how TLS failures
/// travel) is looked through: io::Error::source() skips the wrapped error.
fn cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return Some(inner);
    }
    error.source()
}

fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut last = error;
    while let Some(next) = cause(last) {
        last = next;
    }
    last.to_string()
}

fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let text = match error.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::BrokenPipe => "connection closed while sending",
        K::UnexpectedEof => "connection closed unexpectedly",
        K::TimedOut => "connect timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        _ => return error.to_string(),
    };
    text.to_owned()
}

fn describe_tls(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "TLS: certificate name mismatch".into()
            }
            C::UnknownIssuer => "TLS: certificate has an unknown issuer".into(),
            C::Expired | C::ExpiredContext { .. } => "TLS: certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "TLS: certificate not yet valid".into()
            }
            C::Revoked => "TLS: certificate revoked".into(),
            other => format!("TLS: invalid certificate ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => format!("TLS: server sent alert {alert:?}"),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests;
