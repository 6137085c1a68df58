//! Certificates made for one test (rcgen): a test CA, server certificates it signs, the PEM
//! files a server reads them from, and TLS clients that trust only that CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use multiprovider::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("PEM certificate")
    }

    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("PEM key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.der()], key)
        .expect("certificate and key");
        Arc::new(config)
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and 127.0.0.1, signed by this CA.
    pub fn leaf(&self) -> Leaf {
        self.leaf_for(&["localhost", "127.0.0.1"])
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn leaf_for(&self, names: &[&str]) -> Leaf {
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// An HTTPS client trusting only this CA; `pooled: false` opens a connection (a new
    /// handshake) per request.
    pub fn reqwest(&self, pooled: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem().as_bytes()).expect("CA PEM"),
            );
        if !pooled {
            builder = builder.pool_max_idle_per_host(0);
        }
        builder.build().expect("client")
    }

    /// A rustls client configuration trusting only this CA, limited to `versions`, offering
    /// the ALPN protocols `alpn`.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA root");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Where a server reads its certificate: written atomically (a new file renamed over the
/// old one), as certificate managers do.
pub struct CertFiles {
    dir: tempfile::TempDir,
}

impl CertFiles {
    pub fn new(leaf: &Leaf) -> CertFiles {
        let files = CertFiles {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        files.install(leaf);
        files
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert(),
            key: self.key(),
        }
    }

    pub fn write(&self, path: &Path, contents: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    pub fn install(&self, leaf: &Leaf) {
        self.write(&self.cert(), &leaf.cert_pem);
        self.write(&self.key(), &leaf.key_pem);
    }
}
