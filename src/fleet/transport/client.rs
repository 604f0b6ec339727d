//! The pushers: one task per peer that sends this instance's state to it
//! at once on every change and at least every [`PUSH_EVERY`], checks who
//! answered, and tells the hub how it went.
//!
//! Peers are independent: a peer that is slow or down delays only its own
//! task. A failed push is retried after [`FIRST_RETRY`], doubling up to
//! [`MAX_RETRY`], so a peer that comes back gets the state within about a
//! second without a dead one being hammered.

use std::error::Error as StdError;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, USER_AGENT};
use reqwest::{StatusCode, Url};
use rustls::pki_types::CertificateDer;
use tokio::task::JoinHandle;

use super::{NameCheck, STATE_PATH, TransportError};
use crate::fleet::message::{Ack, MAX_MESSAGE_BYTES, PeerMessage};
use crate::fleet::{Hub, Pushed};
use crate::health::probe::describe_error;

/// The longest a push waits for anything; peers are 50-250 ms apart, so
/// this is many round trips.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A push goes out at least this often, changed or not.
pub(super) const PUSH_EVERY: Duration = Duration::from_secs(1);
/// The wait after the first failed push.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between failed pushes.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(1);
/// Idle connections are dropped after this; below the peer endpoint's
/// idle limit, so a reused connection is rarely one the peer is closing.
const POOL_IDLE: Duration = Duration::from_secs(3);

const PEER_USER_AGENT: &str = concat!("keiko-dns-fleet/", env!("CARGO_PKG_VERSION"));

/// Starts one pusher per URL in `peers` (`https://HOST:PORT`, the peer
/// endpoint's base); they run until their handles are aborted.
///
/// `tls` must present this instance's certificate and trust the fleet CA
/// only; `names` tells whether an acknowledgement's `instance` is a name of
/// the certificate the peer presented. Every push is reported through
/// [`Hub::pushed`] with the URL as given here. Fails only when the HTTP
/// client cannot be built or a URL cannot take a path, before any task
/// starts.
pub(crate) fn spawn_pushers(
    peers: Vec<Url>,
    tls: rustls::ClientConfig,
    names: NameCheck,
    hub: Arc<dyn Hub>,
) -> Result<Vec<JoinHandle<()>>, TransportError> {
    let client = build_client(tls).map_err(TransportError::Client)?;
    let targets = peers
        .into_iter()
        .map(|url| endpoint(&url).map(|endpoint| (url, endpoint)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(targets
        .into_iter()
        .map(|(url, endpoint)| {
            let pusher = Pusher {
                client: client.clone(),
                url,
                endpoint,
                names,
                hub: hub.clone(),
            };
            tokio::spawn(pusher.run())
        })
        .collect())
}

/// The client of every pusher: the fleet's TLS only (no proxy, https
/// only), no redirects (a peer answers itself or not at all), HTTP/1.1,
/// the server certificate kept for the identity check. Connections are
/// reused: a push every second should not cost a handshake every second.
fn build_client(tls: rustls::ClientConfig) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(PEER_USER_AGENT));
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .tls_info(true)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .connect_timeout(REQUEST_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE)
        .default_headers(headers)
        .build()
}

/// `{url}/fleet/v1/state`, keeping any path the URL has.
pub(super) fn endpoint(url: &Url) -> Result<Url, TransportError> {
    let mut endpoint = url.clone();
    endpoint.set_query(None);
    endpoint.set_fragment(None);
    endpoint
        .path_segments_mut()
        .map_err(|()| TransportError::PeerUrl(url.clone()))?
        .pop_if_empty()
        .extend(STATE_PATH.split('/').filter(|s| !s.is_empty()));
    Ok(endpoint)
}

struct Pusher {
    client: reqwest::Client,
    /// The peer as configured, for the hub.
    url: Url,
    endpoint: Url,
    names: NameCheck,
    hub: Arc<dyn Hub>,
}

impl Pusher {
    async fn run(self) {
        let mut retry = FIRST_RETRY;
        loop {
            // Listening before the push starts, so a change made while it
            // is under way is pushed right after it rather than at the
            // next tick (`notify_waiters` keeps no permit).
            let mut changed = pin!(self.hub.changed().notified());
            changed.as_mut().enable();
            let message = self.hub.outgoing();
            let outcome = self.push(&message).await;
            let delivered = matches!(outcome, Pushed::Acknowledged(_));
            self.hub.pushed(&self.url, outcome);
            if delivered {
                retry = FIRST_RETRY;
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep(PUSH_EVERY) => {}
                }
            } else {
                // A change cuts the wait short: it may be news that the
                // peer is back (the hub signals when an unknown peer is
                // heard). Changes are rare, so a dead peer is not hammered.
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }

    /// One push, bounded by [`REQUEST_TIMEOUT`] as a whole.
    async fn push(&self, message: &PeerMessage) -> Pushed {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(message)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => {
                Pushed::Unreachable(format!("timed out after {}s", REQUEST_TIMEOUT.as_secs()))
            }
        }
    }

    async fn exchange(&self, message: &PeerMessage) -> Pushed {
        let response = match self
            .client
            .post(self.endpoint.clone())
            .json(message)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return failed(&e),
        };
        let status = response.status();
        let certificate = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(|der| CertificateDer::from(der.to_vec()));
        let body = match read_limited(response).await {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        if status == StatusCode::OK {
            let ack: Ack = match serde_json::from_slice(&body) {
                Ok(ack) => ack,
                Err(e) => return Pushed::Unreachable(format!("answer is not an Ack: {e}")),
            };
            let Some(certificate) = certificate else {
                return Pushed::Refused("no server certificate in the TLS session".into());
            };
            if !(self.names)(&certificate, &ack.instance) {
                return Pushed::Refused(format!(
                    "peer answered as {:?}, which its certificate does not name",
                    ack.instance
                ));
            }
            Pushed::Acknowledged(ack)
        } else if status.is_client_error() {
            Pushed::Rejected(match refusal_text(&body) {
                Some(why) => format!("HTTP {}: {why}", status.as_u16()),
                None => format!("HTTP {}", status.as_u16()),
            })
        } else {
            Pushed::Unreachable(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// The body, at most [`MAX_MESSAGE_BYTES`] of it; a longer one fails the
/// push without being read to its end.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, Pushed> {
    let too_long = || Pushed::Unreachable(format!("answer larger than {MAX_MESSAGE_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|n| n > MAX_MESSAGE_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
                    return Err(too_long());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(failed(&e)),
        }
    }
}

/// The `error` of a `{"error": ...}` refusal.
fn refusal_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("error")?.as_str().map(str::to_owned)
}

/// A request that got no answer: refused when TLS failed (a handshake the
/// peer or this side rejected, including the peer's alert about our
/// certificate), unreachable otherwise.
fn failed(error: &reqwest::Error) -> Pushed {
    let why = describe_error(error);
    if is_tls(error) {
        Pushed::Refused(why)
    } else {
        Pushed::Unreachable(why)
    }
}

/// Whether a rustls error is anywhere in the chain. TLS errors travel
/// inside io::Errors, whose `source()` skips the wrapped error, so those
/// are looked into.
fn is_tls(error: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    false
}
