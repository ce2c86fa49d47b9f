//! TLS for the client: the ring crypto provider (never aws-lc: two providers in one process
//! make rustls panic when it has to pick one), the QUIC client configuration with the
//! `atoll-client/1` ALPN, the development-only "accept any certificate" verifier, and where
//! to find trusted CA certificates.

mod anchors;
mod insecure;

pub use anchors::{default_trust_anchors, dev_trust_dirs, read_pem_certs, trust_anchors_from};

use crate::config::Trust;
use crate::error::ClientError;
use crate::limits::{IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// ALPN of native clients (atollctl, this library, atoll-bench).
pub const ALPN_CLIENT: &[u8] = b"atoll-client/1";
/// ALPN of node-to-node traffic on the same QUIC endpoint (DESIGN §8).
pub const ALPN_PEER: &[u8] = b"atoll-peer/1";
/// Directory under the per-user data directory where nodes leave their development CA
/// certificate for local clients to trust.
pub const DEV_CA_SUBDIR: &str = "atoll/dev-cas";

/// The one crypto provider Atoll uses: ring, passed explicitly to every rustls builder.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration for native clients: TLS 1.3 (QUIC requires it), ring, the
/// `atoll-client/1` ALPN, and the trust given.
pub fn client_tls_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config { reason: format!("TLS setup failed: {e}") })?;
    let mut config = match trust {
        Trust::CaDer(cas) => builder.with_root_certificates(root_store(cas)?).with_no_client_auth(),
        Trust::InsecureSkipVerify => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyServerCert::new(
                &provider,
            )))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
    Ok(config)
}

/// The QUIC client configuration: [`client_tls_config`] plus keep-alive and idle timeout
/// suited to a long-lived client. The client accepts no streams from the server.
pub fn quic_client_config(trust: &Trust) -> Result<quinn::ClientConfig, ClientError> {
    let tls = client_tls_config(trust)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Config { reason: format!("TLS setup failed: {e}") })?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .max_idle_timeout(Some(idle_timeout()?))
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(0u32.into());
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn idle_timeout() -> Result<quinn::IdleTimeout, ClientError> {
    quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
        .map_err(|e| ClientError::Config { reason: format!("idle timeout: {e}") })
}

fn root_store(cas: &[Vec<u8>]) -> Result<RootCertStore, ClientError> {
    if cas.is_empty() {
        return Err(ClientError::Config {
            reason: "no trusted CA certificate given; pass a CA or use InsecureSkipVerify".into(),
        });
    }
    let mut roots = RootCertStore::empty();
    for (i, der) in cas.iter().enumerate() {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| ClientError::Config {
            reason: format!("trusted CA certificate #{} is not usable: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_speaks_the_client_alpn_only() {
        let config = client_tls_config(&Trust::InsecureSkipVerify).expect("builds");
        assert_eq!(config.alpn_protocols, vec![ALPN_CLIENT.to_vec()]);
        assert!(quic_client_config(&Trust::InsecureSkipVerify).is_ok());
    }

    #[test]
    fn unusable_cas_are_configuration_errors() {
        let empty = client_tls_config(&Trust::CaDer(vec![])).expect_err("no CA");
        assert!(empty.to_string().contains("no trusted CA"), "{empty}");
        let garbage = client_tls_config(&Trust::CaDer(vec![vec![1, 2, 3]])).expect_err("garbage");
        assert!(garbage.to_string().contains("#1"), "{garbage}");
    }
}
