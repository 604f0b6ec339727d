//! Mutual TLS between the instances of a fleet (docs/reference.md §2.12).
//!
//! Both directions trust only the fleet CA (`fleet.ca_file`), never the
//! system roots, speak TLS 1.3 only, and present this instance's
//! certificate (`fleet.cert_file`, `fleet.key_file`). The server side
//! requires a client certificate; which instance a verified client is
//! comes from its certificate ([`certificate_names`]), never from what it
//! says. Everything that can be wrong with the files is found by
//! [`PeerTls::load`], which config validation runs, so a config that
//! passes `check` cannot fail here at start.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

use super::TlsError;
use crate::config::Fleet;

/// Only TLS 1.3: the contract refuses 1.2 on the peer channel.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The peer channel speaks HTTP/1.1 over TLS, in both directions.
const ALPN: &[u8] = b"http/1.1";

/// The fleet's TLS configurations, built once from `[fleet]`.
#[derive(Clone)]
pub(crate) struct PeerTls {
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
}

/// Keys and certificates are not printed.
impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Reads the CA, the certificate chain and the key that `fleet`
    /// names and builds both configurations.
    pub(crate) fn load(fleet: &Fleet) -> Result<PeerTls, TlsError> {
        let ca = super::load_ca_file(&fleet.ca_file)?;
        let chain = load_chain(&fleet.cert_file)?;
        let key = load_key(&fleet.key_file)?;
        PeerTls::build(fleet, &ca, chain, key)
    }

    /// Builds both configurations from files already read (by
    /// [`super::load_ca_file`], [`load_chain`] and [`load_key`]): checks
    /// that the chain names `fleet.instance`, is issued by the fleet CA for
    /// server and client use, and belongs to the key.
    pub(crate) fn build(
        fleet: &Fleet,
        ca: &[CertificateDer<'static>],
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert.clone()).map_err(TlsError::Setup)?;
        }
        let roots = Arc::new(roots);
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(TlsError::CertFileEmpty {
                path: fleet.cert_file.clone(),
            });
        };
        ParsedCertificate::try_from(leaf).map_err(|source| TlsError::CertFileParse {
            path: fleet.cert_file.clone(),
            source,
        })?;
        let server_name = ServerName::try_from(fleet.instance.clone())
            .ok()
            .filter(|_| certificate_names(leaf, &fleet.instance))
            .ok_or_else(|| TlsError::CertName {
                path: fleet.cert_file.clone(),
                instance: fleet.instance.clone(),
            })?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(TlsError::Verifier)?;
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(TlsError::Verifier)?;
        // Our own certificate must pass the checks a peer makes of it, in
        // both roles, or every handshake would fail later.
        let now = UnixTime::now();
        let as_client = client_verifier
            .verify_client_cert(leaf, intermediates, now)
            .map(drop);
        let as_server = server_verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], now)
            .map(drop);
        for outcome in [as_client, as_server] {
            match outcome {
                Ok(()) => {}
                // An expired certificate is not a config error: the server
                // must still start and answer DNS (alone, and saying so in
                // /status) while the certificate is renewed.
                Err(e) if is_about_time(&e) => {}
                Err(source) => {
                    return Err(TlsError::CertNotIssued {
                        path: fleet.cert_file.clone(),
                        ca_file: fleet.ca_file.clone(),
                        source,
                    });
                }
            }
        }
        let mismatch = |source| TlsError::KeyMismatch {
            key_file: fleet.key_file.clone(),
            cert_file: fleet.cert_file.clone(),
            source,
        };
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(mismatch)?;

        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Setup)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Setup)?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, key)
            .map_err(mismatch)?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(PeerTls {
            server: Arc::new(server),
            client,
        })
    }

    /// For the peer endpoint: TLS 1.3, a client certificate issued by the
    /// fleet CA required.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// For connections to peers: TLS 1.3, only the fleet CA trusted (the
    /// peer URL's host checked against its certificate as usual), this
    /// instance's certificate presented.
    pub(crate) fn client_config(&self) -> rustls::ClientConfig {
        self.client.clone()
    }
}

/// Whether the failure is only the certificate's validity period.
fn is_about_time(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// Whether `cert` carries `name` as a DNS subject alternative name, and no
/// wildcard name that covers it: an instance is one exact name, and a
/// certificate valid for `*.us-east-1` would let its holder speak for
/// every instance there. An unparsable certificate names nothing.
pub(crate) fn certificate_names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(parsed) = ParsedCertificate::try_from(cert) else {
        return false;
    };
    let names = |n: &str| match ServerName::try_from(n) {
        Ok(server_name @ ServerName::DnsName(_)) => {
            rustls::client::verify_server_name(&parsed, &server_name).is_ok()
        }
        _ => false,
    };
    if !names(name) {
        return false;
    }
    // A wildcard matches exactly one leftmost label: a sibling name that
    // no one would issue tells whether one covers `name`.
    match name.split_once('.') {
        Some((_, parent)) => !names(&format!("keiko-fleet-wildcard-check.{parent}")),
        None => true,
    }
}

/// Why `name` cannot be a fleet instance name (`fleet.instance`, a name
/// given to `keiko-dns fleet certs`), or `None` when it can: a DNS name in
/// lower case, so that comparing and sorting names (which instance sends
/// the notification) means the same on every instance.
pub(crate) fn instance_name_problem(name: &str) -> Option<String> {
    let valid_labels = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let dns_name = matches!(ServerName::try_from(name), Ok(ServerName::DnsName(_)));
    if valid_labels && dns_name {
        return None;
    }
    let why = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        "write it in lower case"
    } else if name.ends_with('.') {
        "write it without the final dot"
    } else if name.parse::<std::net::IpAddr>().is_ok() {
        "an instance is known by a DNS name, not an address"
    } else {
        "use labels of letters, digits and inner hyphens separated by dots"
    };
    Some(format!(
        "{name:?} is not a DNS name for an instance ({why}), e.g. \"ns1.us-east-1\""
    ))
}

/// Reads this instance's certificate chain: PEM, this instance's
/// certificate first, then any intermediates.
pub(crate) fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::CertFileRead {
        path: path.to_owned(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertFilePem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::CertFileEmpty {
            path: path.to_owned(),
        });
    };
    ParsedCertificate::try_from(leaf).map_err(|source| TlsError::CertFileParse {
        path: path.to_owned(),
        source,
    })?;
    Ok(chain)
}

/// Reads this instance's private key: PKCS#8 PEM, in a file only its
/// owner can read (whoever reads it can speak for this instance).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::KeyFileRead {
        path: path.to_owned(),
        source,
    })?;
    check_key_mode(path)?;
    match PrivatePkcs8KeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(PrivateKeyDer::Pkcs8(key)),
        // Another key format is a conversion away: say which command.
        Err(_) if PrivateKeyDer::from_pem_slice(&bytes).is_ok() => Err(TlsError::KeyFileNotPkcs8 {
            path: path.to_owned(),
        }),
        Err(e) => Err(TlsError::KeyFilePem {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(unix)]
fn check_key_mode(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::KeyFileRead {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_mode(_path: &Path) -> Result<(), TlsError> {
    Ok(())
}

/// A throwaway fleet PKI for unit tests: CAs, leaves and the files of a
/// `[fleet]` section.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    pub(crate) struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    /// A leaf: chain (leaf, CA) and its key, DER and PEM.
    pub(crate) struct Leaf {
        pub chain: Vec<CertificateDer<'static>>,
        pub key: PrivateKeyDer<'static>,
        pub chain_pem: String,
        pub key_pem: String,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let issuer =
                CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            Ca { issuer }
        }

        pub(crate) fn pem(&self) -> String {
            self.issuer.pem()
        }

        pub(crate) fn der(&self) -> CertificateDer<'static> {
            self.issuer.der().clone()
        }

        /// A leaf for `names` (IP literals become IP SANs), for server
        /// and client authentication.
        pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
            self.leaf_for(
                names,
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            )
        }

        pub(crate) fn leaf_for(
            &self,
            names: &[&str],
            usages: Vec<ExtendedKeyUsagePurpose>,
        ) -> Leaf {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.subject_alt_names = names
                .iter()
                .map(|n| match n.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName((*n).try_into().unwrap()),
                })
                .collect();
            params.distinguished_name.push(DnType::CommonName, names[0]);
            params.extended_key_usages = usages;
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                chain: vec![cert.der().clone(), self.der()],
                key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                chain_pem: format!("{}{}", cert.pem(), self.pem()),
                key_pem: key.serialize_pem(),
            }
        }
    }

    /// Writes `text` to `dir/name` with `mode`.
    pub(crate) fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// The files of one instance's `[fleet]` section in `dir`: `ca.pem`,
    /// `NAME.pem`, `NAME.key` (mode 0600), the leaf naming `name`.
    pub(crate) fn instance_files(dir: &Path, ca: &Ca, name: &str) -> Leaf {
        let leaf = ca.leaf(&[name, "localhost", "127.0.0.1"]);
        write(dir, "ca.pem", &ca.pem(), 0o644);
        write(dir, &format!("{name}.pem"), &leaf.chain_pem, 0o644);
        write(dir, &format!("{name}.key"), &leaf.key_pem, 0o600);
        leaf
    }
}

#[cfg(test)]
mod tests {
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
}
