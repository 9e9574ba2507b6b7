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

/// The host names and addresses the first certificate in the PEM file `cert` covers (its
/// subjectAltName DNS names, wildcards included, and IP addresses): the default `--host` list.
pub fn names_in_pem_file(cert: &Path) -> Result<Vec<String>, Error> {
    let first = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::config(format!("reading certificate {}: {e}", cert.display())))?
        .next()
        .ok_or_else(|| Error::config(format!("no certificate found in {}", cert.display())))?
        .map_err(|e| Error::config(format!("parsing certificate {}: {e}", cert.display())))?;
    names_in_der(&first)
}

/// The subjectAltName DNS names and IP addresses of a DER certificate. The subject's common name
/// is not read: browsers ignore it too.
pub fn names_in_der(der: &[u8]) -> Result<Vec<String>, Error> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::config(format!("reading the certificate's names: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::config(format!("reading the certificate's names: {e}")))?;
    let mut names = Vec::new();
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(n) => names.push(n.to_ascii_lowercase()),
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => <[u8; 4]>::try_from(*b).map(|a| std::net::IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*b).map(|a| std::net::IpAddr::from(a).to_string()),
                    _ => continue,
                };
                if let Ok(ip) = ip {
                    names.push(ip);
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The names [`generate_self_signed`] covers.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

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
    let ck = rcgen::generate_simple_self_signed(SELF_SIGNED_NAMES.map(String::from).to_vec())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_names_are_its_dns_names_wildcards_and_addresses() {
        let ck = rcgen::generate_simple_self_signed(vec![
            "Example.com".to_string(),
            "*.example.com".to_string(),
            "192.0.2.7".to_string(),
            "2001:db8::1".to_string(),
        ])
        .unwrap();
        assert_eq!(
            names_in_der(ck.cert.der()).unwrap(),
            ["example.com", "*.example.com", "192.0.2.7", "2001:db8::1"]
        );
        let own = generate_self_signed().unwrap();
        assert_eq!(names_in_der(&own.cert_der).unwrap(), SELF_SIGNED_NAMES);
        assert!(names_in_der(b"not a certificate").is_err());
    }
}
