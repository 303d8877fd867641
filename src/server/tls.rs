//! HTTPS for `gantry serve` (`server.tls: {cert, key}`): the PEM files read and checked
//! into a rustls configuration before the service takes its data dir, so that a wrong path
//! or a key that does not fit the certificate stops it with a sentence naming the file.
//! rustls with the `ring` provider (it builds without cmake or a C toolchain beyond cc).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::service::Tls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.{field}: cannot read {}: {source}", path.display())]
    Read { field: &'static str, path: PathBuf, source: std::io::Error },
    #[error("server.tls.cert: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("server.tls.key: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("server.tls.{field}: {} is not valid PEM: {message}", path.display())]
    Pem { field: &'static str, path: PathBuf, message: String },
    #[error("server.tls: the certificate {} and the key {} cannot serve: {message}", cert.display(), key.display())]
    Rejected { cert: PathBuf, key: PathBuf, message: String },
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { field, path: path.to_path_buf(), source })
}

/// The certificate chain of a PEM file, leaf first.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read("cert", path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { field: "cert", path: path.to_path_buf(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key", path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey { path: path.to_path_buf() }),
        Err(e) => Err(TlsError::Pem { field: "key", path: path.to_path_buf(), message: e.to_string() }),
    }
}

/// The rustls configuration serving `tls`'s certificate, HTTP/2 and HTTP/1.1 offered.
pub fn server_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = certificates(&tls.cert)?;
    let key = private_key(&tls.key)?;
    let rejected = |e: rustls::Error| TlsError::Rejected { cert: tls.cert.clone(), key: tls.key.clone(), message: e.to_string() };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and its key, as PEM.
    fn throwaway() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn files(dir: &Path, cert: &str, key: &str) -> Tls {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        Tls { cert: c, key: k }
    }

    #[test]
    fn a_certificate_and_its_key_make_a_configuration_offering_h2_and_http1() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = throwaway();
        let config = server_config(&files(dir.path(), &cert, &key)).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn each_wrong_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = throwaway();
        let missing = Tls { cert: dir.path().join("nope.pem"), key: dir.path().join("key.pem") };
        let err = server_config(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&format!("server.tls.cert: cannot read {}:", missing.cert.display())), "{err}");
        let err = server_config(&files(dir.path(), "not a certificate\n", &key)).unwrap_err().to_string();
        assert!(err.starts_with("server.tls.cert: ") && err.contains("cert.pem holds no PEM certificate"), "{err}");
        let err = server_config(&files(dir.path(), &cert, &cert)).unwrap_err().to_string();
        assert!(err.starts_with("server.tls.key: ") && err.contains("key.pem holds no PEM private key"), "{err}");
        let (_, other_key) = throwaway();
        let err = server_config(&files(dir.path(), &cert, &other_key)).unwrap_err().to_string();
        assert!(err.starts_with("server.tls: the certificate ") && err.contains("cannot serve"), "{err}");
    }
}
