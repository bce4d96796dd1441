//! TLS for the listener: the server certificate, and client certificates when a client CA
//! is configured (mutual TLS).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn certs(path: &Path, what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM in {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{what} {} contains no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read TLS key {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| invalid(format!("bad PEM in TLS key {}: {e}", path.display())))?
        .ok_or_else(|| invalid(format!("{} contains no private key", path.display())))
}

/// The acceptor for `files`; errors name the file at fault.
pub fn acceptor(files: &TlsFiles) -> io::Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
    let builder = match &files.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca, "client CA file")? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("bad certificate in {}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(
            certs(&files.cert_file, "TLS certificate")?,
            key(&files.key_file)?,
        )
        .map_err(|e| {
            invalid(format!(
                "TLS certificate {} and key {}: {e}",
                files.cert_file.display(),
                files.key_file.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
