//! The HTTPS listener's certificate (docs/operations.md): rustls with the ring provider, TLS 1.2 and
//! 1.3, HTTP/2 and HTTP/1.1 offered by ALPN.
//!
//! The configuration in use sits behind an `ArcSwap`: every new connection takes the current
//! one, and a reload (SIGHUP) swaps in a new one only once both files were read and found to
//! match. Connections already open keep the configuration they were accepted with, so a
//! reload drops none of them; a failed reload changes nothing.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the certificate files could not be used. One line, naming the file and the fix; never
/// any key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read the certificate file {path}: {reason}; set MULTIPROVIDER_TLS_CERT to a \
         readable PEM file holding the server's certificate chain"
    )]
    Cert { path: String, reason: String },
    #[error(
        "cannot read the private key file {path}: {reason}; set MULTIPROVIDER_TLS_KEY to a \
         readable PEM file holding the certificate's private key"
    )]
    Key { path: String, reason: String },
    #[error(
        "the certificate {cert} and the private key {key} cannot be used together: {reason}; \
         set MULTIPROVIDER_TLS_CERT and MULTIPROVIDER_TLS_KEY to a certificate and its own key"
    )]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// The live TLS configuration of a listener, reloadable.
#[derive(Clone)]
pub struct TlsState {
    files: TlsFiles,
    current: Arc<ArcSwap<ServerConfig>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Reads both files; an error here stops the start.
    pub fn load(files: &TlsFiles) -> Result<TlsState, TlsError> {
        let config = server_config(files)?;
        Ok(TlsState {
            files: files.clone(),
            current: Arc::new(ArcSwap::from_pointee(config)),
        })
    }

    /// Re-reads both files and uses them for every connection accepted from now on. On
    /// error the certificate in use stays, and the error is returned (and logged).
    pub fn reload(&self) -> Result<(), TlsError> {
        match server_config(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "TLS certificate not reloaded; the previous one stays in use"
                );
                Err(e)
            }
        }
    }

    /// An acceptor with the configuration in use now.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// What is wrong with a PEM file, without quoting any of it (it may be a private key).
fn pem_reason(e: pem::Error) -> String {
    let what = match e {
        pem::Error::Io(io) => return io.to_string(),
        pem::Error::NoItemsFound => "no PEM section of the expected kind",
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line",
        pem::Error::Base64Decode(_) => "invalid base64 inside a PEM section",
        _ => "a PEM section that cannot be read",
    };
    format!("not a valid PEM file: {what}")
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let cert_error = |reason: String| TlsError::Cert {
        path: display(&files.cert),
        reason,
    };
    // Read first, so that a missing file says "No such file" rather than "no PEM section".
    let cert_pem = std::fs::read(&files.cert).map_err(|e| cert_error(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no CERTIFICATE section in it (expected a PEM certificate chain)".to_owned(),
        ));
    }
    let key_error = |reason: String| TlsError::Key {
        path: display(&files.key),
        reason,
    };
    let key_pem = std::fs::read(&files.key).map_err(|e| key_error(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "no PRIVATE KEY section in it (expected PKCS#8, PKCS#1 or SEC1 PEM)".to_owned(),
        ),
        other => key_error(pem_reason(other)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        // Also checks that the key is the certificate's (rustls compares the public keys).
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            cert: display(&files.cert),
            key: display(&files.key),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
