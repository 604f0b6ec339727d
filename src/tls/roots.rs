//! Server-certificate verification against the system roots plus the
//! certificates of an optional `ca_file`.
//!
//! The system store is read at the first TLS handshake, not when the
//! configuration is built: parsing it costs about 300 KiB of heap, which a
//! deployment that probes only over plain HTTP never needs.

use std::sync::{Arc, OnceLock};

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// A client configuration trusting the system roots plus `extra` (already
/// validated, see [`super::load_ca_file`]), speaking HTTP/1.1 only.
pub(super) fn client_config(
    extra: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = LazyVerifier {
        extra,
        provider: provider.clone(),
        inner: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest is built without HTTP/2 here; say so in ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform verifier, built on first use.
#[derive(Debug)]
struct LazyVerifier {
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Inner>,
}

#[derive(Debug)]
enum Inner {
    Platform(rustls_platform_verifier::Verifier),
    /// No system store: only the `ca_file` certificates are trusted.
    ExtraOnly(Arc<WebPkiServerVerifier>),
    /// Neither: every certificate has an unknown issuer.
    Nothing,
}

impl LazyVerifier {
    fn inner(&self) -> &Inner {
        self.inner.get_or_init(|| {
            let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
                self.extra.iter().cloned(),
                self.provider.clone(),
            );
            let error = match platform {
                Ok(verifier) => return Inner::Platform(verifier),
                Err(error) => error,
            };
            // Only the system store can fail here (the extra roots were
            // validated when read). A machine without ca-certificates must
            // still probe ca_file-signed https://; other https probes then
            // fail with "unknown certificate issuer".
            tracing::warn!(%error, "system CA certificates unavailable; trusting only ca_file");
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(self.extra.iter().cloned());
            match WebPkiServerVerifier::builder_with_provider(roots.into(), self.provider.clone())
                .build()
            {
                Ok(verifier) => Inner::ExtraOnly(verifier),
                Err(_) => Inner::Nothing,
            }
        })
    }

    fn verifier(&self) -> Option<&dyn ServerCertVerifier> {
        match self.inner() {
            Inner::Platform(v) => Some(v),
            Inner::ExtraOnly(v) => Some(v.as_ref()),
            Inner::Nothing => None,
        }
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.verifier() {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.verifier() {
            Some(v) => v.verify_tls12_signature(message, cert, dss),
            None => verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.verifier() {
            Some(v) => v.verify_tls13_signature(message, cert, dss),
            None => verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        // What the provider can check, known without reading any roots:
        // rustls asks for this when it writes the ClientHello.
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_not_read_until_a_handshake_needs_them() {
        let config = client_config(Vec::new()).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let verifier = LazyVerifier {
            extra: Vec::new(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            inner: OnceLock::new(),
        };
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(verifier.inner.get().is_none());
        let bogus = CertificateDer::from(vec![0u8; 8]);
        let name = ServerName::try_from("example.com").expect("name");
        let verdict = verifier.verify_server_cert(&bogus, &[], &name, &[], UnixTime::now());
        assert!(verdict.is_err());
        assert!(verifier.inner.get().is_some());
    }
}
