use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::testing::{Ca, Leaf, instance_files, write};
use super::*;
use crate::config::Quorum;

fn fleet(dir: &Path, name: &str) -> Fleet {
    Fleet {
        instance: name.to_owned(),
        listen: "127.0.0.1:9443".parse().unwrap(),
        peers: Vec::new(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join(format!("{name}.pem")),
        key_file: dir.join(format!("{name}.key")),
        down_quorum: Quorum::Majority,
        peer_timeout: Duration::from_secs(10),
    }
}

fn build(name: &str, ca: &Ca, leaf: &Leaf) -> Result<PeerTls, TlsError> {
    let dir = Path::new("/nonexistent");
    PeerTls::build(
        &fleet(dir, name),
        &[ca.der()],
        leaf.chain.clone(),
        leaf.key.clone_key(),
    )
}

/// A client configuration like the peers' own, but with `versions`
/// and `identity` (none: no client certificate).
fn client(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<&Leaf>,
) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// One handshake over an in-memory pipe, to the server `ns1.test`
/// with `server`, then a byte each way. The server's result: the DNS
/// names the client certificate was checked for.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let accept = async move {
        let mut tls = TlsAcceptor::from(server)
            .accept(far)
            .await
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        tls.write_all(b"!").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        Ok::<_, String>(conn.peer_certificates().unwrap_or_default().to_vec())
    };
    let connect = async move {
        let name = ServerName::try_from("ns1.test").unwrap();
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(name, near)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"?").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let (accepted, connected) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(accept, connect)
    })
    .await
    .expect("handshake finished");
    match (accepted, connected) {
        (Ok(certs), Ok(())) => Ok(certs),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

#[tokio::test]
async fn the_peer_endpoint_takes_only_tls13_clients_with_a_fleet_certificate() {
    let ca = Ca::new("fleet CA");
    let ns1 = build("ns1.test", &ca, &ca.leaf(&["ns1.test"])).unwrap();
    let server = ns1.server_config();
    let ns2 = ca.leaf(&["ns2.test"]);

    // The right one: ns2's own configuration, its name in its certificate.
    let ns2_tls = build("ns2.test", &ca, &ns2).unwrap();
    let certs = handshake(server.clone(), ns2_tls.client_config())
        .await
        .expect("accepted");
    assert!(certificate_names(&certs[0], "ns2.test"));
    assert!(!certificate_names(&certs[0], "ns1.test"));

    let tls12 = [&rustls::version::TLS12];
    let err = handshake(server.clone(), client(&ca, &tls12, Some(&ns2)))
        .await
        .expect_err("TLS 1.2 refused");
    assert!(err.contains("Tls12NotOffered"), "{err}");

    let err = handshake(server.clone(), client(&ca, VERSIONS, None))
        .await
        .expect_err("no certificate refused");
    assert!(err.contains("no certificates"), "{err}");

    let other = Ca::new("another CA");
    let stranger = other.leaf(&["ns2.test"]);
    let err = handshake(server.clone(), client(&ca, VERSIONS, Some(&stranger)))
        .await
        .expect_err("another CA refused");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn the_client_trusts_only_the_fleet_ca() {
    let ca = Ca::new("fleet CA");
    let other = Ca::new("another CA");
    let ns2 = build("ns2.test", &ca, &ca.leaf(&["ns2.test"])).unwrap();
    // A server for ns1.test under another CA: the fleet client refuses it.
    let impostor = build("ns1.test", &other, &other.leaf(&["ns1.test"])).unwrap();
    let err = handshake(impostor.server_config(), ns2.client_config())
        .await
        .expect_err("impostor refused");
    assert!(
        err.contains("UnknownCA") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // The config offers only TLS 1.3 and HTTP/1.1.
    let client = ns2.client_config();
    assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert_eq!(
        ns2.server_config().alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );
}

#[test]
fn certificate_names_are_exact_dns_names() {
    let ca = Ca::new("fleet CA");
    let leaf = ca.leaf(&["ns1.us-east-1", "localhost", "127.0.0.1"]);
    let cert = &leaf.chain[0];
    assert!(certificate_names(cert, "ns1.us-east-1"));
    assert!(certificate_names(cert, "localhost"));
    assert!(!certificate_names(cert, "ns2.us-east-1"));
    assert!(
        !certificate_names(cert, "127.0.0.1"),
        "an IP SAN is no name"
    );
    assert!(!certificate_names(cert, ""));
    let wildcard = ca.leaf(&["*.us-east-1.example", "ns1.us-east-1.example"]);
    assert!(!certificate_names(
        &wildcard.chain[0],
        "ns1.us-east-1.example"
    ));
    let exact = ca.leaf(&["ns1.us-east-1.example"]);
    assert!(certificate_names(&exact.chain[0], "ns1.us-east-1.example"));
    assert!(!certificate_names(
        &CertificateDer::from(vec![1, 2, 3]),
        "ns1"
    ));
}

#[test]
fn instance_names_are_lower_case_dns_names() {
    for good in ["ns1.us-east-1", "ns1", "a-b.c1"] {
        assert_eq!(instance_name_problem(good), None, "{good}");
    }
    for (bad, words) in [
        ("NS1.us-east-1", "lower case"),
        ("ns1.example.", "final dot"),
        ("192.0.2.1", "not an address"),
        ("", "labels"),
        ("ns_1.x", "labels"),
        ("-ns1.x", "labels"),
        ("a..b", "labels"),
    ] {
        let problem = instance_name_problem(bad).expect(bad);
        assert!(problem.contains(words), "{bad}: {problem}");
    }
}

#[test]
fn build_refuses_a_chain_that_does_not_fit() {
    let ca = Ca::new("fleet CA");
    let err = build("ns1.test", &ca, &ca.leaf(&["ns2.test"])).unwrap_err();
    assert!(matches!(err, TlsError::CertName { .. }), "{err}");

    let other = Ca::new("another CA");
    let err = build("ns1.test", &ca, &other.leaf(&["ns1.test"])).unwrap_err();
    assert!(matches!(err, TlsError::CertNotIssued { .. }), "{err}");

    let server_only = ca.leaf_for(&["ns1.test"], vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let err = build("ns1.test", &ca, &server_only).unwrap_err();
    assert!(matches!(err, TlsError::CertNotIssued { .. }), "{err}");

    let mut mixed = ca.leaf(&["ns1.test"]);
    mixed.key = ca.leaf(&["ns1.test"]).key;
    let err = build("ns1.test", &ca, &mixed).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
}

#[test]
fn load_reads_every_file_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("fleet CA");
    let leaf = instance_files(dir.path(), &ca, "ns1.test");
    let fleet = fleet(dir.path(), "ns1.test");
    PeerTls::load(&fleet).expect("loads");

    write(dir.path(), "ns1.test.key", &leaf.key_pem, 0o640);
    let err = PeerTls::load(&fleet).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyFileMode { mode: 0o640, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    // A PKCS#1 ("RSA PRIVATE KEY") block: a key, in another format.
    let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    write(dir.path(), "ns1.test.key", pkcs1, 0o600);
    let err = PeerTls::load(&fleet).unwrap_err();
    assert!(matches!(err, TlsError::KeyFileNotPkcs8 { .. }), "{err}");
    write(dir.path(), "ns1.test.key", "nothing\n", 0o600);
    let err = PeerTls::load(&fleet).unwrap_err();
    assert!(matches!(err, TlsError::KeyFilePem { .. }), "{err}");

    write(dir.path(), "ns1.test.pem", "nothing\n", 0o644);
    let err = load_chain(&fleet.cert_file).unwrap_err();
    assert!(matches!(err, TlsError::CertFileEmpty { .. }), "{err}");
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    write(dir.path(), "ns1.test.pem", garbage, 0o644);
    let err = load_chain(&fleet.cert_file).unwrap_err();
    assert!(matches!(err, TlsError::CertFileParse { .. }), "{err}");
    let err = load_chain(&dir.path().join("missing.pem")).unwrap_err();
    assert!(matches!(err, TlsError::CertFileRead { .. }), "{err}");
}
