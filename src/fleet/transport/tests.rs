//! Peer channel tests over real sockets on 127.0.0.1: certificates from
//! throwaway CAs made here, a recording [`Hub`] on each side, the real
//! endpoint and the real pushers. Timing bounds are loose multiples of the
//! channel's own figures (1 s tick, 200 ms first retry, 2 s timeout).
//!
//! Long on purpose: every refusal the peer endpoint makes (TLS version,
//! issuer, identity, size, sequence, slow and stalled clients) and every
//! retry rule of the pushers is a case here, over one shared PKI and hub.

use super::*;

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::fleet::message::{
    Ack, Action, Command, MAX_ENTRIES, MAX_MESSAGE_BYTES, Observed, PeerMessage, Stamp,
};
use crate::fleet::{Hub, Pushed, Rejection};

// ---- certificates and TLS configurations -------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        Pki {
            ca: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(roots)
    }

    /// A peer certificate (server and client use) for `names`, IP strings
    /// becoming IP SANs.
    fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (vec![cert.der().clone()], key)
    }

    /// The endpoint's configuration: TLS 1.3 only, a client certificate
    /// from this CA required.
    fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider())
            .build()
            .unwrap();
        let (chain, key) = self.leaf(names);
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    /// A pusher's configuration trusting this CA, presenting a certificate
    /// for `names` from `issuer` (none when `issuer` is `None`).
    fn client_config(
        &self,
        issuer: Option<&Pki>,
        names: &[&str],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ClientConfig {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots());
        match issuer {
            Some(issuer) => {
                let (chain, key) = issuer.leaf(names);
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        }
    }
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The name check of the tests, as rustls checks server names.
fn names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(parsed) = rustls::server::ParsedCertificate::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(name) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

// ---- a recording hub ------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply {
    Ack,
    Stale,
    Invalid,
}

struct TestHub {
    /// The name this hub acknowledges as.
    instance: String,
    changed: Notify,
    state: Mutex<HubState>,
}

struct HubState {
    outgoing: PeerMessage,
    reply: Reply,
    /// Every message `receive` was called with.
    received: Vec<PeerMessage>,
    /// The messages it took (answered with an Ack).
    taken: Vec<PeerMessage>,
    pushed: Vec<(Url, Pushed, Instant)>,
}

impl TestHub {
    fn new(instance: &str) -> Arc<TestHub> {
        Arc::new(TestHub {
            instance: instance.to_owned(),
            changed: Notify::new(),
            state: Mutex::new(HubState {
                outgoing: message(instance, 1),
                reply: Reply::Ack,
                received: Vec::new(),
                taken: Vec::new(),
                pushed: Vec::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap()
    }

    fn set_outgoing(&self, message: PeerMessage) {
        self.state().outgoing = message;
    }

    fn received(&self) -> Vec<PeerMessage> {
        self.state().received.clone()
    }

    fn taken(&self) -> Vec<PeerMessage> {
        self.state().taken.clone()
    }

    fn pushed(&self) -> Vec<(Url, Pushed, Instant)> {
        self.state().pushed.clone()
    }

    fn pushed_to(&self, url: &Url) -> Vec<(Pushed, Instant)> {
        self.pushed()
            .into_iter()
            .filter(|(u, _, _)| u == url)
            .map(|(_, p, at)| (p, at))
            .collect()
    }
}

impl Hub for TestHub {
    fn changed(&self) -> &Notify {
        &self.changed
    }

    fn outgoing(&self) -> PeerMessage {
        self.state().outgoing.clone()
    }

    fn receive(&self, message: PeerMessage) -> Result<Ack, Rejection> {
        let mut state = self.state();
        state.received.push(message.clone());
        match state.reply {
            Reply::Stale => Err(Rejection::Stale),
            Reply::Invalid => Err(Rejection::Invalid("region \"\" has no name".into())),
            Reply::Ack => {
                state.taken.push(message);
                Ok(Ack {
                    instance: self.instance.clone(),
                    routing_version: "v1".into(),
                    commands: Vec::new(),
                })
            }
        }
    }

    fn pushed(&self, peer: &Url, outcome: Pushed) {
        self.state()
            .pushed
            .push((peer.clone(), outcome, Instant::now()));
    }
}

fn message(instance: &str, seq: u64) -> PeerMessage {
    PeerMessage {
        instance: instance.to_owned(),
        region: "us-east-1".into(),
        incarnation: 7,
        seq,
        routing_version: "v1".into(),
        observations: vec![Observed {
            region: "eu-west-1".into(),
            up: true,
            latency_seconds: Some(0.081),
            last_check: Some("2025-01-01T00:00:00Z".into()),
        }],
        commands: vec![Command {
            region: "eu-west-1".into(),
            action: Action::Down,
            stamp: Stamp {
                time: 1 << 16,
                instance: instance.to_owned(),
            },
        }],
    }
}

// ---- running both sides ---------------------------------------------------

/// Aborts the task when dropped, so a failing test leaves nothing running.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The endpoint on a fresh port, presenting a certificate for `cert_names`.
async fn endpoint_on(
    listener: TcpListener,
    pki: &Pki,
    cert_names: &[&str],
    hub: Arc<TestHub>,
) -> Task {
    let tls = pki.server_config(cert_names);
    Task(tokio::spawn(serve(listener, tls, names, hub)))
}

async fn start_endpoint(pki: &Pki, cert_names: &[&str], hub: Arc<TestHub>) -> (Url, Task) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = base_url(listener.local_addr().unwrap());
    (url, endpoint_on(listener, pki, cert_names, hub).await)
}

fn base_url(addr: SocketAddr) -> Url {
    Url::parse(&format!("https://{addr}")).unwrap()
}

fn push_to(peers: Vec<Url>, tls: rustls::ClientConfig, hub: Arc<TestHub>) -> Vec<Task> {
    spawn_pushers(peers, tls, names, hub)
        .unwrap()
        .into_iter()
        .map(Task)
        .collect()
}

/// Polls `done` every 10 ms until it holds or `limit` passes; whether it
/// held.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first outcome reported for `url`, waiting up to `limit`.
async fn first_outcome(hub: &TestHub, url: &Url, limit: Duration) -> Pushed {
    assert!(
        wait_for(limit, || !hub.pushed_to(url).is_empty()).await,
        "no push to {url} was reported within {limit:?}"
    );
    hub.pushed_to(url).remove(0).0
}

/// The standard lab: ns2 serves (certificate for ns2 and 127.0.0.1), ns1
/// pushes to it.
struct Lab {
    pki: Pki,
    url: Url,
    server: Arc<TestHub>,
    _endpoint: Task,
}

impl Lab {
    async fn new() -> Lab {
        let pki = Pki::new("fleet CA");
        let server = TestHub::new("ns2");
        let (url, endpoint) = start_endpoint(&pki, &["ns2", "127.0.0.1"], server.clone()).await;
        Lab {
            pki,
            url,
            server,
            _endpoint: endpoint,
        }
    }

    /// A client configuration for ns1, as the fleet gives it.
    fn ns1(&self) -> rustls::ClientConfig {
        self.pki.client_config(Some(&self.pki), &["ns1"], TLS13)
    }

    /// A plain HTTPS client with ns1's certificate, for hand-made requests.
    fn raw_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.ns1())
            .no_proxy()
            .http1_only()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn state_url(&self) -> Url {
        self.url.join(STATE_PATH).unwrap()
    }
}

// ---- the exchange ---------------------------------------------------------

#[tokio::test]
async fn a_good_push_is_acknowledged_both_ways_and_repeats_every_second() {
    let lab = Lab::new().await;
    let client = TestHub::new("ns1");
    let _pushers = push_to(vec![lab.url.clone()], lab.ns1(), client.clone());

    let outcome = first_outcome(&client, &lab.url, Duration::from_secs(2)).await;
    let Pushed::Acknowledged(ack) = outcome else {
        panic!("expected an acknowledgement, got {outcome:?}");
    };
    assert_eq!(ack.instance, "ns2");
    assert_eq!(ack.routing_version, "v1");
    let taken = lab.server.taken();
    assert_eq!(
        taken.first(),
        Some(&message("ns1", 1)),
        "the endpoint took the message as sent"
    );

    // At least every second, unchanged or not.
    assert!(
        wait_for(Duration::from_millis(2_600), || lab.server.taken().len()
            >= 3)
        .await,
        "expected 3 pushes within about 2 s, got {}",
        lab.server.taken().len()
    );
    let outcomes = client.pushed_to(&lab.url);
    assert!(
        outcomes
            .iter()
            .all(|(p, _)| matches!(p, Pushed::Acknowledged(_))),
        "{outcomes:?}"
    );
    for pair in outcomes.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1);
        assert!(gap <= Duration::from_millis(1_300), "pushes {gap:?} apart");
    }
}

#[tokio::test]
async fn a_notify_pushes_at_once_rather_than_at_the_tick() {
    let lab = Lab::new().await;
    let client = TestHub::new("ns1");
    let _pushers = push_to(vec![lab.url.clone()], lab.ns1(), client.clone());
    assert!(wait_for(Duration::from_secs(2), || !lab.server.taken().is_empty()).await);

    tokio::time::sleep(Duration::from_millis(150)).await;
    client.set_outgoing(message("ns1", 2));
    let notified = Instant::now();
    client.changed.notify_waiters();
    assert!(
        wait_for(Duration::from_secs(2), || lab
            .server
            .taken()
            .iter()
            .any(|m| m.seq == 2))
        .await
    );
    let took = notified.elapsed();
    // The tick would be about 850 ms away.
    assert!(
        took < Duration::from_millis(300),
        "the change took {took:?}"
    );
}

#[tokio::test]
async fn a_change_during_a_push_is_pushed_right_after_it() {
    // A peer 400 ms away (a TCP relay that delays the first byte of each
    // direction), so the notify surely lands while a push is under way.
    let lab = Lab::new().await;
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_url = base_url(relay.local_addr().unwrap());
    let target = lab.url.socket_addrs(|| None).unwrap()[0];
    let _relay = Task(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    }));
    // The certificate names 127.0.0.1, so the relay's URL verifies too.
    let client = TestHub::new("ns1");
    let _pushers = push_to(vec![relay_url.clone()], lab.ns1(), client.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.set_outgoing(message("ns1", 2));
    let notified = Instant::now();
    client.changed.notify_waiters();
    assert!(
        wait_for(Duration::from_secs(3), || lab
            .server
            .taken()
            .iter()
            .any(|m| m.seq == 2))
        .await
    );
    // The first push took about 400 ms; the second reuses the connection.
    let took = notified.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "the change took {took:?}"
    );
}

// ---- who may talk -----------------------------------------------------------

#[tokio::test]
async fn clients_without_a_fleet_tls_13_certificate_are_refused() {
    let lab = Lab::new().await;
    let other = Pki::new("another CA");
    let cases = [
        ("no certificate", lab.pki.client_config(None, &[], TLS13)),
        (
            "another CA",
            lab.pki.client_config(Some(&other), &["ns1"], TLS13),
        ),
        (
            "TLS 1.2 only",
            lab.pki
                .client_config(Some(&lab.pki), &["ns1"], &[&rustls::version::TLS12]),
        ),
    ];
    for (case, tls) in cases {
        let client = TestHub::new("ns1");
        let _pushers = push_to(vec![lab.url.clone()], tls, client.clone());
        let outcome = first_outcome(&client, &lab.url, Duration::from_secs(3)).await;
        assert!(
            matches!(outcome, Pushed::Refused(_)),
            "{case}: expected refused, got {outcome:?}"
        );
    }
    assert!(lab.server.received().is_empty(), "the hub saw a message");
}

#[tokio::test]
async fn a_client_claiming_another_instance_gets_403_and_the_hub_sees_nothing() {
    let lab = Lab::new().await;
    // ns2's certificate, claiming to be ns3.
    let tls = lab.pki.client_config(Some(&lab.pki), &["ns2"], TLS13);
    let client = TestHub::new("ns3");
    let _pushers = push_to(vec![lab.url.clone()], tls, client.clone());
    let outcome = first_outcome(&client, &lab.url, Duration::from_secs(2)).await;
    let Pushed::Rejected(why) = &outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(why.starts_with("HTTP 403"), "{why}");
    assert!(why.contains("ns3"), "{why}");
    assert!(lab.server.received().is_empty());
}

#[tokio::test]
async fn a_server_outside_the_fleet_or_answering_for_another_name_is_refused() {
    let pki = Pki::new("fleet CA");
    let other = Pki::new("another CA");
    // A certificate from another CA.
    let (stranger, _stranger_task) =
        start_endpoint(&other, &["ns2", "127.0.0.1"], TestHub::new("ns2")).await;
    // A fleet certificate for ns2 whose endpoint acknowledges as ns3.
    let liar_hub = TestHub::new("ns3");
    let (liar, _liar_task) = start_endpoint(&pki, &["ns2", "127.0.0.1"], liar_hub.clone()).await;
    // A fleet certificate without the URL's address.
    let (misnamed, _misnamed_task) =
        start_endpoint(&pki, &["ns2", "127.0.0.9"], TestHub::new("ns2")).await;

    let client = TestHub::new("ns1");
    let tls = pki.client_config(Some(&pki), &["ns1"], TLS13);
    let _pushers = push_to(
        vec![stranger.clone(), liar.clone(), misnamed.clone()],
        tls,
        client.clone(),
    );
    for (case, url) in [
        ("another CA", &stranger),
        ("acknowledged as another name", &liar),
        ("certificate for another address", &misnamed),
    ] {
        let outcome = first_outcome(&client, url, Duration::from_secs(3)).await;
        assert!(
            matches!(outcome, Pushed::Refused(_)),
            "{case}: expected refused, got {outcome:?}"
        );
    }
    assert!(
        !liar_hub.received().is_empty(),
        "the liar got the message (the check is on its answer)"
    );
}

// ---- what is refused ------------------------------------------------------

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let lab = Lab::new().await;
    let http = lab.raw_client();
    let state = lab.state_url();

    let mut too_many = message("ns1", 1);
    too_many.observations = vec![too_many.observations[0].clone(); MAX_ENTRIES + 1];
    let mut huge = message("ns1", 1);
    huge.routing_version = "x".repeat(MAX_MESSAGE_BYTES);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"\x00\xffnot json".to_vec(), 400),
        ("empty", Vec::new(), 400),
        ("truncated", br#"{"instance":"ns1","region":"#.to_vec(), 400),
        (
            "unknown field",
            serde_json::to_vec(&serde_json::json!({"instance": "ns1", "extra": 1})).unwrap(),
            400,
        ),
        ("oversized", serde_json::to_vec(&huge).unwrap(), 413),
        (
            "too many entries",
            serde_json::to_vec(&too_many).unwrap(),
            413,
        ),
    ];
    for (case, body, expected) in cases {
        let response = http.post(state.clone()).body(body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{case}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{case}: {error}");
    }
    assert!(
        lab.server.received().is_empty(),
        "the hub saw a bad message"
    );

    // Well-formed, but the hub refuses it: nothing is taken.
    for (reply, expected) in [(Reply::Stale, 409), (Reply::Invalid, 422)] {
        lab.server.state().reply = reply;
        let response = http
            .post(state.clone())
            .json(&message("ns1", 1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{reply:?}");
    }
    assert_eq!(lab.server.received().len(), 2);
    assert!(lab.server.taken().is_empty());

    // Other routes and methods.
    let response = http.get(state.clone()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let response = http
        .post(lab.url.join("/fleet/v1/other").unwrap())
        .json(&message("ns1", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(lab.server.received().len(), 2);
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused() {
    // No Content-Length: the limit is enforced as the body arrives.
    let lab = Lab::new().await;
    let addr = lab.url.socket_addrs(|| None).unwrap()[0];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(lab.ns1()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let _writer = Task(tokio::spawn(async move {
        let head = "POST /fleet/v1/state HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("1000\r\n{}\r\n", " ".repeat(4096));
        for _ in 0..=MAX_MESSAGE_BYTES / 4096 {
            // The endpoint stops reading once past the limit.
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    }));
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(lab.server.received().is_empty());
}

// ---- slow and absent peers --------------------------------------------------

#[tokio::test]
async fn a_peer_that_never_answers_tls_does_not_stall_the_others() {
    let lab = Lab::new().await;
    // Takes TCP connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = base_url(silent.local_addr().unwrap());
    let _silent = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    }));
    let client = TestHub::new("ns1");
    let started = Instant::now();
    let _pushers = push_to(
        vec![silent_url.clone(), lab.url.clone()],
        lab.ns1(),
        client.clone(),
    );
    // The good peer is served at once and every second, while the silent
    // one is still timing out.
    assert!(
        wait_for(Duration::from_millis(500), || !lab
            .server
            .taken()
            .is_empty())
        .await
    );
    assert!(
        wait_for(Duration::from_millis(2_300), || lab.server.taken().len()
            >= 3)
        .await,
        "pushes to the good peer stalled: {}",
        lab.server.taken().len()
    );
    let outcome = first_outcome(&client, &silent_url, Duration::from_secs(3)).await;
    let Pushed::Unreachable(why) = &outcome else {
        panic!("expected unreachable, got {outcome:?}");
    };
    assert!(why.contains("timed out"), "{why}");
    let waited = client.pushed_to(&silent_url)[0].1.duration_since(started);
    assert!(
        waited >= Duration::from_millis(1_900) && waited < Duration::from_millis(2_600),
        "gave up on the silent peer after {waited:?}"
    );
}

#[tokio::test]
async fn a_peer_that_comes_up_gets_a_push_within_about_a_second() {
    let pki = Pki::new("fleet CA");
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = port.local_addr().unwrap();
    drop(port);
    let url = base_url(addr);
    let client = TestHub::new("ns1");
    let _pushers = push_to(
        vec![url.clone()],
        pki.client_config(Some(&pki), &["ns1"], TLS13),
        client.clone(),
    );
    // Long enough for the backoff to reach its ceiling: attempts at about
    // 0, 0.2, 0.6, 1.4, 2.4, 3.4 s.
    tokio::time::sleep(Duration::from_millis(3_700)).await;
    let failures = client.pushed_to(&url);
    assert!(
        (5..=8).contains(&failures.len()),
        "backoff: {} attempts in 3.7 s",
        failures.len()
    );
    let gaps: Vec<Duration> = failures
        .windows(2)
        .map(|pair| pair[1].1.duration_since(pair[0].1))
        .collect();
    assert!(
        gaps[0] >= Duration::from_millis(150) && gaps[0] < Duration::from_millis(450),
        "first retry after {:?}",
        gaps[0]
    );
    assert!(
        gaps.iter().all(|gap| *gap < Duration::from_millis(1_250)),
        "a retry waited past the 1 s ceiling: {gaps:?}"
    );
    assert!(
        gaps.last()
            .is_some_and(|gap| *gap >= Duration::from_millis(900)),
        "the backoff did not grow to 1 s: {gaps:?}"
    );
    assert!(
        failures
            .iter()
            .all(|(p, _)| matches!(p, Pushed::Unreachable(why) if why == "connection refused")),
        "{failures:?}"
    );

    let server = TestHub::new("ns2");
    let listener = TcpListener::bind(addr).await.unwrap();
    let up = Instant::now();
    let _endpoint = endpoint_on(listener, &pki, &["ns2", "127.0.0.1"], server.clone()).await;
    assert!(wait_for(Duration::from_secs(3), || !server.taken().is_empty()).await);
    let took = up.elapsed();
    assert!(
        took < Duration::from_millis(1_300),
        "first push {took:?} after coming up"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let lab = Lab::new().await;
    let addr = lab.url.socket_addrs(|| None).unwrap()[0];
    // One never starts TLS; one completes TLS and dribbles a request head.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(lab.ns1()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut dribbler = connector.connect(name, tcp).await.unwrap();
    dribbler
        .write_all(b"POST /fleet/v1/state HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();

    let start = Instant::now();
    let mut buf = [0u8; 64];
    let limit = server::HANDSHAKE_TIMEOUT + Duration::from_secs(2);
    let closed = tokio::time::timeout(limit, silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "silent: {closed:?}");
    let dribbled = tokio::time::timeout(limit, async {
        loop {
            match dribbler.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // hyper may say 408 before closing.
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(dribbled.is_ok(), "the dribbler was not cut off");
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "cut off too early"
    );
    // Meanwhile the endpoint served others.
    let client = TestHub::new("ns1");
    let _pushers = push_to(vec![lab.url.clone()], lab.ns1(), client.clone());
    assert!(wait_for(Duration::from_secs(1), || !lab.server.taken().is_empty()).await);
}

// ---- the pieces -------------------------------------------------------------

#[test]
fn peer_urls_get_the_state_path() {
    for (base, expected) in [
        (
            "https://ns2.example:7443",
            "https://ns2.example:7443/fleet/v1/state",
        ),
        (
            "https://ns2.example:7443/",
            "https://ns2.example:7443/fleet/v1/state",
        ),
        (
            "https://10.0.0.2:7443/keiko/",
            "https://10.0.0.2:7443/keiko/fleet/v1/state",
        ),
    ] {
        let url = Url::parse(base).unwrap();
        assert_eq!(client::endpoint(&url).unwrap().as_str(), expected);
    }
    let opaque = Url::parse("mailto:ops@example.com").unwrap();
    assert!(matches!(
        client::endpoint(&opaque),
        Err(TransportError::PeerUrl(_))
    ));
}

#[test]
fn refusals_are_logged_once_per_address_and_kind_per_period() {
    let limit = WarnLimit::default();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(limit.admit(a, "tls", at(0)), Some(0));
    assert_eq!(limit.admit(a, "tls", at(1)), None);
    assert_eq!(limit.admit(a, "tls", at(9)), None);
    assert_eq!(limit.admit(a, "body", at(9)), Some(0), "another kind");
    assert_eq!(limit.admit(b, "tls", at(9)), Some(0), "another address");
    assert_eq!(limit.admit(a, "tls", at(10)), Some(2));
    assert_eq!(limit.admit(a, "tls", at(11)), None);
}
