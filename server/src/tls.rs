//! TLS configuration: certificates from PEM files or a generated self-signed one, ALPN h2 + http/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// Builds the server's TLS config from PEM files.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::config(format!("reading certificate {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::config(format!("parsing certificate {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "no certificate found in {}",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::config(format!("reading private key {}: {e}", key.display())))?;
    build(certs, key)
}

/// A freshly generated self-signed certificate, as PEM (to hand to another process) and DER (for
/// a client that should trust exactly this certificate).
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
pub fn generate_self_signed() -> Result<SelfSigned, Error> {
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(|e| Error::config(format!("generating a self-signed certificate: {e}")))?;
    Ok(SelfSigned {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        cert_der: ck.cert.der().to_vec(),
    })
}

/// A server configuration with a new self-signed certificate (tests, demos, first runs).
pub fn self_signed() -> Result<Arc<ServerConfig>, Error> {
    let s = generate_self_signed()?;
    let key = PrivateKeyDer::from_pem_slice(s.key_pem.as_bytes())
        .map_err(|e| Error::config(format!("self-signed key: {e}")))?;
    build(vec![CertificateDer::from(s.cert_der)], key)
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::config(format!("certificate and key do not fit together: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
