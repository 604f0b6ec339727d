//! TLS for everything keiko-dns connects to or accepts: the rustls
//! configurations, the trust anchors they rely on, and the errors of
//! setting them up. Probes, webhooks and the CLI take their client
//! configuration from here, so trust is decided in one place.
//!
//! The ring provider is passed explicitly to every builder: no
//! process-wide default provider is assumed or installed.
//!
//! [`peer`] holds the fleet's mutual TLS: the only place where keiko-dns
//! presents a certificate of its own.

pub(crate) mod peer;
mod roots;

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TlsError {
    #[error("cannot read CA file {}: {source}", path.display())]
    CaFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {} is not valid PEM: {reason}", path.display())]
    CaFilePem { path: PathBuf, reason: String },
    #[error("CA file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)", path.display())]
    CaFileEmpty { path: PathBuf },
    #[error("CA file {}: certificate {index} is unusable as a trust anchor: {source}", path.display())]
    CaFileCertificate {
        path: PathBuf,
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS setup failed: {0}")]
    Setup(#[source] rustls::Error),
    #[error("TLS setup failed: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("cannot read certificate file {}: {source}", path.display())]
    CertFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate file {} is not valid PEM: {reason}", path.display())]
    CertFilePem { path: PathBuf, reason: String },
    #[error("certificate file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks, this instance's first)", path.display())]
    CertFileEmpty { path: PathBuf },
    #[error("certificate file {}: the first certificate is not a usable X.509 certificate: {source}", path.display())]
    CertFileParse {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "certificate file {}: the first certificate does not carry {instance:?} as a DNS \
         subject alternative name (or a wildcard name also covers it); issue it for exactly that name",
        path.display()
    )]
    CertName { path: PathBuf, instance: String },
    #[error(
        "certificate file {}: not accepted under the fleet CA {} ({source}); it must be issued \
         by that CA for both server and client authentication",
        path.display(), ca_file.display()
    )]
    CertNotIssued {
        path: PathBuf,
        ca_file: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot read key file {}: {source}", path.display())]
    KeyFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", PKCS#8): {reason}", path.display())]
    KeyFilePem { path: PathBuf, reason: String },
    #[error(
        "key file {} is not PKCS#8 (\"BEGIN PRIVATE KEY\"); convert it with \
         `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`",
        path.display()
    )]
    KeyFileNotPkcs8 { path: PathBuf },
    #[error(
        "key file {} is readable by group or others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(), path.display()
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("key file {} is not the key of certificate file {}: {source}", key_file.display(), cert_file.display())]
    KeyMismatch {
        key_file: PathBuf,
        cert_file: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The client configuration of probes, webhooks and the CLI: the system
/// roots plus the certificates of `ca_file`, which is read and checked now
/// so a bad file fails the config load rather than every later handshake.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let extra = match ca_file {
        Some(path) => load_ca_file(path)?,
        None => Vec::new(),
    };
    roots::client_config(extra).map_err(TlsError::Setup)
}

/// Reads a PEM bundle of trust anchors, checking each certificate so the
/// error names the one that is wrong.
pub(crate) fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::CaFileRead {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CaFilePem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::CaFileEmpty {
            path: path.to_owned(),
        });
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|source| TlsError::CaFileCertificate {
                path: path.to_owned(),
                index: i + 1,
                source,
            })?;
    }
    Ok(certs)
}
