//! TLS 1.3 configuration for links (rustls with the *ring* provider: small,
//! no C toolchain beyond what `ring` already needs, fast enough for links).
//!
//! The gateway accepts a client certificate from any CA registered for any
//! active tunnel during the handshake, then — once the connector has named
//! its tunnel — checks the chain again against *that tunnel's* CAs only
//! ([`verify_client_for_tunnel`]). The connector pins the gateway's CA.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::Error;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{what}: not a PEM certificate list: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what}: no certificate found in PEM")));
    }
    Ok(certs)
}

pub fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::Tls(format!("{what}: no usable private key in PEM: {e}")))
}

fn roots(cas: &[Vec<u8>]) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for pem in cas {
        for c in certs_from_pem(pem, "CA certificate")? {
            store
                .add(c)
                .map_err(|e| Error::Tls(format!("CA certificate rejected: {e}")))?;
        }
    }
    Ok(store)
}

/// Gateway side of the link listener. `client_cas` are the PEMs of every
/// active tunnel's CAs; with none, every handshake fails (fail closed).
pub fn link_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_cas: &[Vec<u8>],
) -> Result<Arc<ServerConfig>, Error> {
    let p = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_cas)?), p.clone())
            .build()
            .map_err(|e| Error::Tls(format!("no usable client CA registered: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(cert_pem, "gateway certificate")?,
            key_from_pem(key_pem, "gateway key")?,
        )
        .map_err(|e| Error::Tls(format!("gateway certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![crate::link::ALPN.to_vec()];
    Ok(Arc::new(cfg))
}

/// Agent-facing HTTPS listener (no client certificates; h2 and http/1.1).
pub fn agent_server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, Error> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            certs_from_pem(cert_pem, "gateway certificate")?,
            key_from_pem(key_pem, "gateway key")?,
        )
        .map_err(|e| Error::Tls(format!("gateway certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Connector side: trust only `ca_pem` for the gateway; present our cert.
pub fn link_client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, Error> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(&[ca_pem.to_vec()])?)
        .with_client_auth_cert(
            certs_from_pem(cert_pem, "client certificate")?,
            key_from_pem(key_pem, "client key")?,
        )
        .map_err(|e| Error::Tls(format!("client certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![crate::link::ALPN.to_vec()];
    Ok(Arc::new(cfg))
}

/// Checks that the presented chain is issued by one of `tunnel_cas`.
pub fn verify_client_for_tunnel(
    peer: &[CertificateDer<'static>],
    tunnel_cas: &[Vec<u8>],
) -> Result<(), Error> {
    let (end, inter) = peer
        .split_first()
        .ok_or_else(|| Error::Auth("no client certificate".into()))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(tunnel_cas)?), provider())
            .build()
            .map_err(|_| Error::Auth("tunnel has no active CA".into()))?;
    verifier
        .verify_client_cert(end, inter, UnixTime::now())
        .map(|_| ())
        .map_err(|_| {
            Error::Auth(
                "client certificate is not issued by a CA registered for this tunnel".into(),
            )
        })
}
