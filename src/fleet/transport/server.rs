//! The peer endpoint: accepts TLS connections from peers, serves HTTP/1.1
//! on them and hands each authenticated message to the hub.
//!
//! Every step a peer controls has a deadline (handshake, request head,
//! body) and every connection its own task, so a peer that stalls holds
//! one slot for a few seconds; slots are capped overall and per address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{NameCheck, STATE_PATH, WarnLimit};
use crate::fleet::message::{MAX_MESSAGE_BYTES, PeerMessage};
use crate::fleet::{Hub, Rejection};

/// How long a peer may take to complete the TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer may take to send a request's head, and how long an idle
/// connection is kept between requests (hyper starts the clock as soon as
/// it waits for a head). Peers push at least every second.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer may take to send a request's body.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; past it new ones are closed at once.
pub(super) const MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one address, so one misbehaving peer
/// cannot take every slot.
pub(super) const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// hyper's read buffer: room for any sane request head (the body streams
/// through it and is bounded separately).
const READ_BUFFER: usize = 64 * 1024;
/// How long, and for how many bytes, a connection whose handshake failed
/// is drained before it is closed (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// How long to wait after `accept` fails (out of file descriptors, say)
/// before trying again, so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves the peer endpoint on `listener` until the returned future is
/// dropped (its task aborted), which also closes every connection.
///
/// `tls` must require client certificates from the fleet CA; `names` tells
/// whether a message's `instance` is a name of its sender's certificate.
/// Never fails: refusals and I/O errors are logged, and the loop goes on.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    names: NameCheck,
    hub: Arc<dyn Hub>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let shared = Arc::new(Shared {
        names,
        hub,
        warn: WarnLimit::default(),
    });
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    // Owning the connection tasks here means aborting `serve` ends them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Reap finished connections so the set holds live ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet: cannot accept a peer connection");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                };
                if connections.len() >= MAX_CONNECTIONS {
                    shared.refuse(peer, "busy", "too many peer connections; closed");
                    continue;
                }
                let Some(slot) = Slot::take(&per_address, peer.ip()) else {
                    shared.refuse(peer, "busy", "too many connections from this address; closed");
                    continue;
                };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    connection(acceptor, tcp, peer, shared).await;
                });
            }
        }
    }
}

/// What every connection task shares.
struct Shared {
    names: NameCheck,
    hub: Arc<dyn Hub>,
    warn: WarnLimit,
}

impl Shared {
    /// Logs a refusal of `kind` from `peer`, rate-limited per (address,
    /// kind).
    fn refuse(&self, peer: SocketAddr, kind: &'static str, why: &str) {
        if let Some(suppressed) = self.warn.admit(peer.ip(), kind, Instant::now()) {
            tracing::warn!(%peer, suppressed, "fleet: refused a peer: {why}");
        }
    }
}

/// One of an address's connection slots, given back when dropped (also
/// when the task is aborted).
struct Slot {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Slot {
    fn take(table: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Slot> {
        let mut counts = table.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Slot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// One peer connection: the handshake, then HTTP/1.1 until the peer leaves
/// or stays silent past [`HEAD_TIMEOUT`].
async fn connection(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let handshake = acceptor.accept(tcp).into_fallible();
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err((e, tcp))) => {
            shared.refuse(peer, "tls", &format!("TLS handshake failed: {e}"));
            linger(tcp).await;
            return;
        }
        Err(_elapsed) => {
            shared.refuse(peer, "tls", "TLS handshake timed out");
            return;
        }
    };
    // The server config requires a certificate; this guards against one
    // that does not, so an unauthenticated peer is never served.
    let Some(leaf) = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned())
    else {
        shared.refuse(peer, "tls", "no client certificate");
        return;
    };
    let leaf = Arc::new(leaf);
    let service = service_fn(move |request| {
        let (shared, leaf) = (shared.clone(), leaf.clone());
        async move { Ok::<_, Infallible>(handle(request, &leaf, peer, &shared).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        // Idle connections end this way too (the head timeout): not a
        // refusal.
        tracing::debug!(%peer, error = %e, "fleet: peer connection ended");
    }
}

/// Closes a connection whose handshake failed so that the peer reads our
/// alert: with TLS 1.3 a client whose certificate is refused has already
/// sent its request, and closing with it unread would send a reset that
/// can destroy the alert before the peer reads it. Bounded by [`LINGER`].
async fn linger(mut tcp: TcpStream) {
    let drain = async {
        // Errors only end the wait: the connection is going anyway.
        if tcp.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Answers one request. Refusals are logged here, with the peer's address.
async fn handle(
    request: Request<Incoming>,
    leaf: &CertificateDer<'static>,
    peer: SocketAddr,
    shared: &Shared,
) -> Response<String> {
    let refuse = |kind: &'static str, status: StatusCode, why: String| {
        shared.refuse(peer, kind, &why);
        error(status, &why)
    };
    if request.uri().path() != STATE_PATH {
        return refuse(
            "route",
            StatusCode::NOT_FOUND,
            format!("no such path: {}", request.uri().path()),
        );
    }
    if request.method() != Method::POST {
        let mut response = refuse(
            "route",
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} {STATE_PATH}: only POST", request.method()),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(request.into_body())).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => {
            return refuse(
                "size",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("message larger than {MAX_MESSAGE_BYTES} bytes"),
            );
        }
        Ok(Err(BodyError::Read(e))) => {
            return refuse(
                "body",
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
        Err(_elapsed) => {
            return refuse(
                "body",
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {}s", BODY_TIMEOUT.as_secs()),
            );
        }
    };
    let message: PeerMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return refuse(
                "body",
                StatusCode::BAD_REQUEST,
                format!("not a peer message: {e}"),
            );
        }
    };
    if !message.within_limits() {
        return refuse(
            "size",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "message lists too many entries ({} observations, {} commands)",
                message.observations.len(),
                message.commands.len()
            ),
        );
    }
    if !(shared.names)(leaf, &message.instance) {
        if let Some(suppressed) = shared.warn.admit(peer.ip(), "identity", Instant::now()) {
            tracing::warn!(
                %peer,
                claimed = %message.instance,
                suppressed,
                "fleet: refused a peer: it claims an instance name its client certificate does not carry"
            );
        }
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "instance {:?} is not a name of your client certificate",
                message.instance
            ),
        );
    }
    let sender = message.instance.clone();
    match shared.hub.receive(message) {
        Ok(ack) => match serde_json::to_string(&ack) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(e) => {
                tracing::error!(error = %e, "fleet: cannot encode an acknowledgement");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode the acknowledgement",
                )
            }
        },
        Err(rejection) => {
            let status = match rejection {
                Rejection::Stale => StatusCode::CONFLICT,
                Rejection::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let kind = match rejection {
                Rejection::Stale => "stale",
                Rejection::Invalid(_) => "invalid",
            };
            if let Some(suppressed) = shared.warn.admit(peer.ip(), kind, Instant::now()) {
                tracing::warn!(%peer, instance = %sender, suppressed, "fleet: refused a peer's message: {rejection}");
            }
            error(status, &rejection.to_string())
        }
    }
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// The whole body, refused as soon as it is known to pass
/// [`MAX_MESSAGE_BYTES`] (from its declared length, or as it arrives).
async fn read_body(mut body: Incoming) -> Result<Vec<u8>, BodyError> {
    let declared = body.size_hint().lower();
    if declared > MAX_MESSAGE_BYTES as u64 {
        return Err(BodyError::TooLarge);
    }
    // The declared length is at most the limit here; it is only a hint.
    let mut out = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_MESSAGE_BYTES {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn json_response(status: StatusCode, json: String) -> Response<String> {
    let mut response = Response::new(json);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A refusal as the peer sees it: `{"error": why}`.
fn error(status: StatusCode, why: &str) -> Response<String> {
    json_response(status, serde_json::json!({ "error": why }).to_string())
}
