//! TLS for everything keiko-dns connects to or accepts: the rustls
//! configurations, the trust anchors they rely on, and the errors of
//! setting them up. Probes, webhooks and the CLI take their client
//! configuration from here, so trust is decided in one place.
//!
//! The ring provider is passed explicitly to every builder: no
//! process-wide default provider is assumed or installed.

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
