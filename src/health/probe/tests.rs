//! Probe tests against real sockets on 127.0.0.1: a small HTTP/1.1 server
//! whose behaviour is chosen by the request path, and a TLS variant with
//! certificates from a throwaway CA.

use super::*;

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(1);
/// How late past the timeout a verdict may come.
const SLACK: Duration = Duration::from_millis(500);
const REGION_HOST: &str = "api-contracts-us-east.keiko.example.com";

struct Request {
    path: String,
    host: Option<String>,
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let host = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_owned());
    Some(Request { path, host })
}

fn reply(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What to do with the TCP connection once `respond` returns.
enum After {
    Close,
    Reset,
}

/// Answers one request according to its path. `/health` answers 200 only
/// when the Host header names `REGION_HOST` (with or without the port).
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> After {
    let Some(request) = read_request(stream).await else {
        return After::Close;
    };
    let bytes = match request.path.as_str() {
        "/ok" => reply("200 OK", "ok"),
        "/503" => reply("503 Service Unavailable", "ok"),
        "/wrong" => reply("200 OK", "nope"),
        "/late" => reply("200 OK", &format!("{}ok", "x".repeat(6_000))),
        "/redirect" => {
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /redirect\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        }
        "/garbage" => b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http at all\r\n\r\n".to_vec(),
        "/endless" | "/endless-ok" => {
            let head: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return After::Close;
            }
            if request.path == "/endless-ok" && stream.write_all(b"ok").await.is_err() {
                return After::Close;
            }
            // Bounded so a broken client cannot keep the test busy forever.
            let filler = [b'x'; 1024];
            for _ in 0..100_000 {
                if stream.write_all(&filler).await.is_err() {
                    break;
                }
            }
            return After::Close;
        }
        "/trickle" | "/trickle-body" => {
            let all = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nxxxxxxxxxxok";
            let split = if request.path == "/trickle" {
                0
            } else {
                all.len() - 12
            };
            if stream.write_all(&all[..split]).await.is_err() {
                return After::Close;
            }
            for byte in &all[split..] {
                if stream.write_all(&[*byte]).await.is_err() {
                    return After::Close;
                }
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            return After::Close;
        }
        "/reset" => return After::Reset,
        "/close" => return After::Close,
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            return After::Close;
        }
        "/health" => {
            let host = request.host.unwrap_or_default();
            let name = host
                .rsplit_once(':')
                .map_or(host.as_str(), |(name, _)| name);
            if name == REGION_HOST {
                reply("200 OK", "ok")
            } else {
                reply("421 Misdirected Request", "wrong host")
            }
        }
        _ => reply("404 Not Found", ""),
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
    After::Close
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test listener");
    let addr = listener.local_addr().expect("listener address");
    (listener, addr)
}

/// A plain HTTP test server; it lives as long as the test's runtime.
async fn http_server() -> SocketAddr {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let After::Reset = respond(&mut stream).await {
                    // SO_LINGER 0: close() sends RST instead of FIN.
                    let _ = stream.set_zero_linger();
                }
            });
        }
    });
    addr
}

/// A port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let (listener, addr) = listen().await;
    drop(listener);
    addr
}

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keiko-dns test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Pki { ca }
    }

    fn ca_file(&self) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp CA file");
        std::io::Write::write_all(&mut file, self.ca.pem().as_bytes()).expect("write CA file");
        file
    }

    fn leaf(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).expect("leaf key DER");
        (vec![cert.der().clone(), self.ca.der().clone()], key_der)
    }
}

/// An HTTPS test server presenting a certificate for `cert_name`. When
/// `require_sni` is set, a handshake that does not name it is dropped.
async fn https_server(pki: &Pki, cert_name: &str, require_sni: Option<&str>) -> SocketAddr {
    let (chain, key) = pki.leaf(cert_name);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let require_sni = require_sni.map(str::to_owned);
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let require_sni = require_sni.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Some(wanted) = require_sni
                    && tls.get_ref().1.server_name() != Some(wanted.as_str())
                {
                    return;
                }
                respond(&mut tls).await;
            });
        }
    });
    addr
}

fn http_target(addr: SocketAddr, path: &str) -> ProbeTarget {
    ProbeTarget::Http {
        url: Url::parse(&format!("http://{addr}{path}")).expect("test url"),
        connect_to: None,
    }
}

/// An https url naming `host`, dialled at the local server `addr`.
fn pinned_https(host: &str, addr: SocketAddr, path: &str) -> ProbeTarget {
    ProbeTarget::Http {
        url: Url::parse(&format!("https://{host}:{}{path}", addr.port())).expect("test url"),
        connect_to: Some(addr),
    }
}

fn prober() -> Prober {
    Prober::new(None, TIMEOUT).expect("prober")
}

fn assert_unhealthy(outcome: &Outcome, reason_part: &str) {
    assert!(!outcome.healthy, "expected unhealthy: {outcome:?}");
    let reason = outcome.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(reason_part),
        "reason {reason:?} lacks {reason_part:?}"
    );
}

fn assert_within_timeout(outcome: &Outcome) {
    assert!(
        outcome.latency <= TIMEOUT + SLACK,
        "verdict took {:?}",
        outcome.latency
    );
}

#[tokio::test]
async fn status_2xx_is_healthy_with_and_without_expected_body() {
    let addr = http_server().await;
    let prober = prober();
    let target = http_target(addr, "/ok");
    for expect in [None, Some("ok")] {
        let outcome = prober.probe(&target, expect).await;
        assert!(outcome.healthy, "{outcome:?}");
        assert_eq!(outcome.status, Some(200));
        assert_eq!(outcome.reason, None);
    }
}

#[tokio::test]
async fn status_503_is_unhealthy() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/503"), Some("ok")).await;
    assert_unhealthy(&outcome, "HTTP 503");
    assert_eq!(outcome.status, Some(503));
}

#[tokio::test]
async fn wrong_body_matters_only_when_a_body_is_expected() {
    let addr = http_server().await;
    let prober = prober();
    let target = http_target(addr, "/wrong");
    assert!(prober.probe(&target, None).await.healthy);
    let outcome = prober.probe(&target, Some("ok")).await;
    assert_unhealthy(&outcome, "body lacks \"ok\"");
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn expected_body_past_the_first_5120_bytes_is_not_seen() {
    let addr = http_server().await;
    let outcome = prober()
        .probe(&http_target(addr, "/late"), Some("ok"))
        .await;
    assert_unhealthy(&outcome, "body lacks");
}

#[tokio::test]
async fn endless_body_is_cut_after_the_limit() {
    let addr = http_server().await;
    let prober = prober();
    let outcome = prober
        .probe(&http_target(addr, "/endless"), Some("ok"))
        .await;
    assert_unhealthy(&outcome, "body lacks");
    assert!(outcome.latency < TIMEOUT, "read too long: {outcome:?}");
    let outcome = prober
        .probe(&http_target(addr, "/endless-ok"), Some("ok"))
        .await;
    assert!(outcome.healthy, "{outcome:?}");
    assert!(outcome.latency < TIMEOUT, "read too long: {outcome:?}");
}

#[tokio::test]
async fn redirect_is_healthy_and_not_followed() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/redirect"), None).await;
    assert!(outcome.healthy, "{outcome:?}");
    assert_eq!(outcome.status, Some(301));
}

#[tokio::test]
async fn reset_connection_is_unhealthy() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/reset"), None).await;
    assert_unhealthy(&outcome, "connection");
    assert_eq!(outcome.status, None);
}

#[tokio::test]
async fn closed_connection_is_unhealthy() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/close"), None).await;
    assert_unhealthy(&outcome, "connection closed before response");
}

#[tokio::test]
async fn silent_server_times_out_on_time() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/hang"), None).await;
    assert_unhealthy(&outcome, "timed out after 1s");
    assert!(outcome.latency >= TIMEOUT);
    assert_within_timeout(&outcome);
}

#[tokio::test]
async fn trickling_server_times_out_on_time() {
    let addr = http_server().await;
    let prober = prober();
    let outcome = prober.probe(&http_target(addr, "/trickle"), None).await;
    assert_unhealthy(&outcome, "timed out after 1s");
    assert_within_timeout(&outcome);
    // Headers arrive, the body trickles: the status is kept.
    let outcome = prober
        .probe(&http_target(addr, "/trickle-body"), Some("ok"))
        .await;
    assert_unhealthy(&outcome, "timed out after 1s");
    assert_eq!(outcome.status, Some(200));
    assert_within_timeout(&outcome);
}

#[tokio::test]
async fn garbage_response_is_unhealthy_with_a_short_reason() {
    let addr = http_server().await;
    let outcome = prober().probe(&http_target(addr, "/garbage"), None).await;
    assert!(!outcome.healthy);
    let reason = outcome.reason.unwrap_or_default();
    assert!(!reason.is_empty() && reason.len() < 80, "{reason:?}");
    assert!(reason.starts_with("bad HTTP response"), "{reason:?}");
}

#[tokio::test]
async fn refused_connection_is_unhealthy() {
    let addr = closed_port().await;
    let outcome = prober().probe(&http_target(addr, "/ok"), None).await;
    assert_unhealthy(&outcome, "connection refused");
}

#[tokio::test]
async fn https_with_ca_file_is_healthy() {
    let pki = Pki::new();
    let ca_file = pki.ca_file();
    let addr = https_server(&pki, "probe.keiko.test", None).await;
    let prober = Prober::new(Some(ca_file.path()), TIMEOUT).expect("prober with CA");
    let outcome = prober
        .probe(&pinned_https("probe.keiko.test", addr, "/ok"), Some("ok"))
        .await;
    assert!(outcome.healthy, "{outcome:?}");
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn https_certificate_for_another_name_is_unhealthy() {
    let pki = Pki::new();
    let ca_file = pki.ca_file();
    let addr = https_server(&pki, "other.keiko.test", None).await;
    let prober = Prober::new(Some(ca_file.path()), TIMEOUT).expect("prober with CA");
    let outcome = prober
        .probe(&pinned_https("probe.keiko.test", addr, "/ok"), None)
        .await;
    assert_unhealthy(&outcome, "certificate name mismatch");
}

#[tokio::test]
async fn https_without_ca_file_has_unknown_issuer() {
    let pki = Pki::new();
    let addr = https_server(&pki, "probe.keiko.test", None).await;
    let outcome = prober()
        .probe(&pinned_https("probe.keiko.test", addr, "/ok"), None)
        .await;
    assert_unhealthy(&outcome, "unknown issuer");
}

#[tokio::test]
async fn region_without_health_url_probes_first_address_with_endpoint_name() {
    let pki = Pki::new();
    let ca_file = pki.ca_file();
    let addr = https_server(&pki, REGION_HOST, Some(REGION_HOST)).await;
    let endpoint = format!("https://{REGION_HOST}:{}", addr.port());
    let target =
        crate::config::probe_target(&endpoint, None, addr.ip(), "/health").expect("target");
    assert_eq!(
        target.describe(),
        format!("https://{REGION_HOST}:{}/health via {addr}", addr.port())
    );
    let prober = Prober::new(Some(ca_file.path()), TIMEOUT).expect("prober with CA");
    let outcome = prober.probe(&target, Some("ok")).await;
    assert!(outcome.healthy, "{outcome:?}");
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn tcp_target_up_and_refused() {
    let up = http_server().await;
    let down = closed_port().await;
    let prober = prober();
    let target = crate::config::probe_target(
        "https://x.example",
        Some(&format!("tcp://{up}")),
        up.ip(),
        "/",
    )
    .expect("tcp target");
    assert_eq!(target, ProbeTarget::Tcp { addr: up });
    let outcome = prober.probe(&target, None).await;
    assert!(outcome.healthy, "{outcome:?}");
    assert_eq!(outcome.status, None);
    let outcome = prober.probe(&ProbeTarget::Tcp { addr: down }, None).await;
    assert_unhealthy(&outcome, "connection refused");
}

#[tokio::test]
async fn concurrent_probes_share_one_prober() {
    let addr = http_server().await;
    let prober = Arc::new(prober());
    let target = http_target(addr, "/ok");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let prober = prober.clone();
            let target = target.clone();
            tokio::spawn(async move { prober.probe(&target, Some("ok")).await })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.expect("probe task");
        assert!(outcome.healthy, "{outcome:?}");
    }
}

#[test]
fn bad_ca_files_are_named_in_the_error() {
    let missing = Path::new("/nonexistent/keiko-ca.pem");
    let err = Prober::new(Some(missing), TIMEOUT).expect_err("missing file");
    assert!(
        err.to_string().contains("/nonexistent/keiko-ca.pem"),
        "{err}"
    );

    let mut empty = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut empty, b"not a certificate\n").expect("write");
    let err = Prober::new(Some(empty.path()), TIMEOUT).expect_err("no certificate");
    assert!(
        err.to_string()
            .contains(&empty.path().display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("no certificate"), "{err}");

    let mut broken = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut broken,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = Prober::new(Some(broken.path()), TIMEOUT).expect_err("broken certificate");
    assert!(
        err.to_string()
            .contains(&broken.path().display().to_string()),
        "{err}"
    );
}

/// A CNAME region without health_url: the prober resolves the target with
/// its own resolver and connects there, Host from the endpoint.
#[tokio::test]
async fn a_cname_target_is_resolved_by_the_prober_and_probed_with_the_endpoint_host() {
    use crate::health::resolve::{Resolver, tests::stub_nameserver};
    let server = http_server().await;
    let dns = stub_nameserver("lb-use1.elb.example.net", std::net::Ipv4Addr::LOCALHOST).await;
    let prober = prober().with_resolver(Resolver::with_servers(vec![dns]));
    let target = ProbeTarget::HttpVia {
        url: Url::parse(&format!("http://{REGION_HOST}:{}/health", server.port())).unwrap(),
        host: "lb-use1.elb.example.net".into(),
        port: server.port(),
    };
    let outcome = prober.probe(&target, Some("ok")).await;
    assert!(outcome.healthy, "{outcome:?}");
    // A target the resolver does not know is a failed probe, with the reason.
    let gone = ProbeTarget::HttpVia {
        url: Url::parse(&format!("http://{REGION_HOST}:{}/health", server.port())).unwrap(),
        host: "gone.elb.example.net".into(),
        port: server.port(),
    };
    assert_unhealthy(
        &prober.probe(&gone, None).await,
        "cannot resolve gone.elb.example.net",
    );
}
