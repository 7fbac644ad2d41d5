//! A test certificate authority (rcgen) and TLS clients (rustls) for the TLS tests:
//! certificates are made per test, written to its temporary directory, and checked
//! the way a real client checks them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A CA that signs leaf certificates for the names (and IP addresses) asked.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("ca cert"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf (cert PEM, key PEM) for `sans`: DNS names, or IP addresses.
    pub fn leaf(&self, sans: &[&str]) -> (String, String) {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            sans.first().copied().unwrap_or("leaf"),
        );
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf for `sans` as `<name>.crt` and `<name>.key` in `dir`, each
    /// replaced atomically (write, then rename), as certificate managers do.
    pub fn write_leaf(&self, dir: &Path, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf(sans);
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        // The key first: a reload between the two renames sees a mismatch, which
        // gantry must survive (it keeps the previous pair).
        replace(&key_path, &key);
        replace(&cert_path, &cert);
        (cert_path, key_path)
    }

    /// Writes the CA certificate as `ca.pem` in `dir`.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).expect("write ca");
        path
    }
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A client trusting `ca` only, offering `alpn`.
pub fn client_config(ca: &TestCa, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    client_config_versions(
        ca,
        alpn,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

/// Like [`client_config`], offering only `versions`.
pub fn client_config_versions(
    ca: &TestCa,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).expect("ca into roots");
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// A verified TLS connection to `addr`, naming `sni`.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The ALPN protocol the connection agreed on.
pub fn alpn(stream: &TlsStream<TcpStream>) -> Option<String> {
    stream
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The DNS names of the certificate the server presented.
pub fn peer_names(stream: &TlsStream<TcpStream>) -> Vec<String> {
    let certs: &[CertificateDer<'_>] = stream.get_ref().1.peer_certificates().expect("certs");
    webpki::EndEntityCert::try_from(&certs[0])
        .expect("leaf parses")
        .valid_dns_names()
        .map(str::to_string)
        .collect()
}
