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
pub(crate) mod testing;

#[cfg(test)]
mod tests;
