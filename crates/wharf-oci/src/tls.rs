//! The TLS setup of registry connections: the platform's certificate verifier (the one reqwest
//! builds by default), created on the first TLS handshake instead of with the client.
//!
//! Building that verifier reads and parses every system CA root (`/etc/ssl/certs`, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), about 5% of the CPU of a 20 MB pull (BENCHMARKS.md), and
//! a pull from a plain-HTTP registry never needs it. Deferring it changes nothing else: the
//! same verifier with the same roots checks every certificate, and a failure to load the roots
//! fails the handshake that needed them.
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A rustls configuration for reqwest like its default one (every TLS version the provider
/// has, HTTP/1.1 over ALPN, SNI on), whose verifier loads the roots when first used.
pub(crate) fn client_config() -> Result<ClientConfig, rustls::Error> {
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = LazyVerifier { provider: provider.clone(), inner: OnceLock::new() };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// [`rustls_platform_verifier::Verifier`], built on first use.
#[derive(Debug)]
struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyVerifier {
    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        let built = self.inner.get_or_init(|| {
            let verifier = rustls_platform_verifier::Verifier::new(self.provider.clone());
            if let Err(e) = &verifier {
                tracing::warn!("cannot load the system's CA roots: {e}");
            }
            verifier
        });
        built.as_ref().map_err(Clone::clone)
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
        self.inner()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // What the platform verifier answers too, without loading the roots.
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
