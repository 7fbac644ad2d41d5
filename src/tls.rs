//! TLS with rustls: termination on entrypoints, and TLS to servers of scheme
//! `https`.
//!
//! An entrypoint's certificates live in a [`CertStore`]: the client's SNI picks one
//! by the DNS names of its subjectAltName (exact, then a `*.` wildcard one label
//! deep), and a client naming none of them gets the first. The files are read again
//! every `reload_seconds`; changed ones are swapped in atomically, and files that no
//! longer load leave the certificates in use alone (with the error logged and shown
//! in the API) so a half-written renewal never takes an entrypoint down.
//!
//! Servers are verified by default, against the system's roots and any configured
//! CA files, for the name their service gives (label `S.tls.server_name`) or else
//! their IP address. A service may opt out with `S.tls.insecure_skip_verify`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::Serialize;

use crate::config::TlsConfig;

/// ALPN protocols an entrypoint offers, in its order of preference.
const ALPN_SERVER: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One certificate file pair from the config, resolved.
#[derive(Debug, Clone)]
pub struct CertSource {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the API shows of a certificate in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub cert: String,
    pub names: Vec<String>,
}

/// The certificates in use, indexed by name.
struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    first: Arc<CertifiedKey>,
    info: Vec<CertInfo>,
}

impl Certs {
    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni else {
            return self.first.clone();
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(c) = self.exact.get(name) {
            return c.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = self.wildcard.get(parent) {
                return c.clone();
            }
        }
        self.first.clone()
    }
}

/// An entrypoint's certificates, reloaded when their files change.
pub struct CertStore {
    entrypoint: String,
    sources: Vec<CertSource>,
    current: ArcSwap<Certs>,
    /// The files' bytes the current certificates came from (or last failed from).
    seen: Mutex<Vec<u8>>,
    last_error: ArcSwapOption<String>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("entrypoint", &self.entrypoint)
            .field("sources", &self.sources)
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(hello.server_name()))
    }
}

impl CertStore {
    /// Loads every pair; an error names the entrypoint and the file at fault.
    pub fn load(entrypoint: &str, sources: Vec<CertSource>) -> Result<CertStore, String> {
        let (raw, certs) = read_all(&sources)
            .and_then(|raw| Ok((raw.concat(), parse_all(&sources, &raw)?)))
            .map_err(|e| format!("entrypoints.{entrypoint}.tls: {e}"))?;
        Ok(CertStore {
            entrypoint: entrypoint.to_string(),
            sources,
            current: ArcSwap::from_pointee(certs),
            seen: Mutex::new(raw),
            last_error: ArcSwapOption::empty(),
        })
    }

    /// The certificates in use, for the API.
    pub fn info(&self) -> Vec<CertInfo> {
        self.current.load().info.clone()
    }

    /// Why the last reload failed, if it did (the previous certificates stay).
    pub fn last_error(&self) -> Option<Arc<String>> {
        self.last_error.load_full()
    }

    /// Reads the files again; swaps in what they hold if it changed and loads.
    /// Returns true when new certificates are in use.
    pub fn reload(&self) -> bool {
        let raw = match read_all(&self.sources) {
            Ok(raw) => raw,
            Err(e) => {
                self.failed(e);
                return false;
            }
        };
        let joined = raw.concat();
        {
            let mut seen = self.seen.lock();
            if *seen == joined {
                return false;
            }
            *seen = joined;
        }
        match parse_all(&self.sources, &raw) {
            Ok(certs) => {
                let names: Vec<String> = certs.info.iter().flat_map(|c| c.names.clone()).collect();
                self.current.store(Arc::new(certs));
                self.last_error.store(None);
                tracing::info!(entrypoint = %self.entrypoint, names = ?names, "TLS certificates reloaded");
                true
            }
            Err(e) => {
                self.failed(e);
                false
            }
        }
    }

    fn failed(&self, e: String) {
        let message = format!(
            "entrypoints.{}.tls: {e}; still serving the previous certificates",
            self.entrypoint
        );
        if self.last_error.load().as_deref() != Some(&message) {
            tracing::warn!("{message}");
        }
        self.last_error.store(Some(Arc::new(message)));
    }

    /// Checks the files every `every`, forever.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let store = self.clone();
            // File reads and key parsing are blocking work: off the I/O threads.
            let _ = tokio::task::spawn_blocking(move || store.reload()).await;
        }
    }
}

fn read_all(sources: &[CertSource]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(sources.len() * 2);
    for s in sources {
        for path in [&s.cert, &s.key] {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push(bytes);
        }
    }
    Ok(out)
}

fn parse_all(sources: &[CertSource], raw: &[Vec<u8>]) -> Result<Certs, String> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut info = Vec::new();
    let mut first = None;
    for (i, s) in sources.iter().enumerate() {
        let (key, names) = parse_pair(s, &raw[2 * i], &raw[2 * i + 1])?;
        for name in &names {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => wildcard
                    .entry(parent.to_string())
                    .or_insert_with(|| key.clone()),
                None => exact.entry(name).or_insert_with(|| key.clone()),
            };
        }
        first.get_or_insert_with(|| key.clone());
        info.push(CertInfo {
            cert: s.cert.display().to_string(),
            names,
        });
    }
    let first = first.ok_or("no certificates listed")?;
    Ok(Certs {
        exact,
        wildcard,
        first,
        info,
    })
}

/// One certificate chain and its key, checked to belong together.
fn parse_pair(
    s: &CertSource,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", s.cert.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{}: no CERTIFICATE block in it", s.cert.display()));
    };
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| {
            format!(
                "{}: the first certificate does not parse: {e:?}",
                s.cert.display()
            )
        })?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        format!(
            "{}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            s.key.display()
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", s.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} does not match the certificate in {} ({e})",
            s.key.display(),
            s.cert.display()
        )
    })?;
    Ok((Arc::new(certified), names))
}

/// An entrypoint's TLS: its acceptor and the certificates behind it.
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub store: Arc<CertStore>,
    pub reload_every: Duration,
}

impl ServerTls {
    /// Builds an entrypoint's TLS from its config; paths resolve with `resolve`.
    pub fn new(
        entrypoint: &str,
        cfg: &TlsConfig,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<ServerTls, String> {
        let sources = cfg
            .certificates
            .iter()
            .map(|c| CertSource {
                cert: resolve(&c.cert),
                key: resolve(&c.key),
            })
            .collect();
        let store = Arc::new(CertStore::load(entrypoint, sources)?);
        let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version.as_str() {
            "1.3" => &[&rustls::version::TLS13],
            _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| format!("entrypoints.{entrypoint}.tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        server.alpn_protocols = ALPN_SERVER.iter().map(|p| p.to_vec()).collect();
        // Resumption saves a returning client the full handshake: stateless tickets
        // (keys rotated by rustls), and a bigger cache for TLS 1.2 session ids.
        server.session_storage = rustls::server::ServerSessionMemoryCache::new(16_384);
        match rustls::crypto::ring::Ticketer::new() {
            Ok(t) => server.ticketer = t,
            Err(e) => tracing::warn!(entrypoint, error = %e, "no TLS session tickets"),
        }
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            store,
            reload_every: Duration::from_secs(cfg.reload_seconds),
        })
    }
}

/// How gantry dials servers of scheme `https`: verified, or (per service) not.
pub struct UpstreamTls {
    verified: Arc<ClientConfig>,
    insecure: Arc<ClientConfig>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Trusts `ca_files` (PEM), and the system's roots if `system_roots`.
    pub fn new(ca_files: &[PathBuf], system_roots: bool) -> Result<UpstreamTls, String> {
        let mut roots = RootCertStore::empty();
        if system_roots {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 && ca_files.is_empty() {
                tracing::warn!(
                    "no system root certificates found: https servers cannot be verified"
                );
            }
        }
        for path in ca_files {
            let pem = std::fs::read(path).map_err(|e| {
                format!("upstream.tls.ca_files: cannot read {}: {e}", path.display())
            })?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    format!(
                        "upstream.tls.ca_files: {}: not PEM certificates: {e}",
                        path.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "upstream.tls.ca_files: {}: no CERTIFICATE block in it",
                    path.display()
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    format!(
                        "upstream.tls.ca_files: {}: not a CA certificate: {e}",
                        path.display()
                    )
                })?;
            }
        }
        let verified = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let insecure = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth();
        Ok(UpstreamTls {
            verified: Arc::new(with_h2(verified)),
            insecure: Arc::new(with_h2(insecure)),
        })
    }

    /// The system roots only: what a gantry with no `[upstream.tls]` trusts.
    pub fn system() -> Arc<UpstreamTls> {
        static SYSTEM: OnceLock<Arc<UpstreamTls>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                Arc::new(UpstreamTls::new(&[], true).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "system roots unusable");
                    UpstreamTls::empty()
                }))
            })
            .clone()
    }

    fn empty() -> UpstreamTls {
        let verified = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            });
        let insecure = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                    .with_no_client_auth()
            });
        match (verified, insecure) {
            (Ok(v), Ok(i)) => UpstreamTls {
                verified: Arc::new(with_h2(v)),
                insecure: Arc::new(with_h2(i)),
            },
            // ring's default provider supports the safe default versions.
            _ => unreachable!("ring supports TLS 1.2 and 1.3"),
        }
    }

    /// What a server is dialled with.
    pub fn dial(
        &self,
        ip: IpAddr,
        server_name: Option<&str>,
        insecure: bool,
    ) -> Result<TlsDial, String> {
        let name = match server_name {
            Some(n) => ServerName::try_from(n.to_string())
                .map_err(|_| format!("{n:?} is not a DNS name"))?,
            None => ServerName::IpAddress(ip.into()),
        };
        let config = if insecure {
            &self.insecure
        } else {
            &self.verified
        };
        Ok(TlsDial {
            connector: tokio_rustls::TlsConnector::from(config.clone()),
            name,
        })
    }
}

fn with_h2(mut c: ClientConfig) -> ClientConfig {
    c.alpn_protocols = vec![b"h2".to_vec()];
    c
}

/// A server's TLS: the connector and the name its certificate must carry.
#[derive(Clone)]
pub struct TlsDial {
    pub connector: tokio_rustls::TlsConnector,
    pub name: ServerName<'static>,
}

/// Accepts any server certificate (`insecure_skip_verify`); the handshake's
/// signatures are still checked, so the session is at least with the key holder.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str, sans: &[&str]) -> CertSource {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let s = CertSource {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&s.cert, cert.pem()).expect("write");
        std::fs::write(&s.key, key.serialize_pem()).expect("write");
        s
    }

    fn names_of(c: &Arc<CertifiedKey>) -> Vec<String> {
        webpki::EndEntityCert::try_from(&c.cert[0])
            .expect("parses")
            .valid_dns_names()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_first() {
        let dir = tempfile::tempdir().expect("dir");
        let a = pair(dir.path(), "a", &["a.example.com"]);
        let b = pair(dir.path(), "b", &["*.example.com", "b.test"]);
        let store = CertStore::load("web", vec![a, b]).expect("loads");
        let certs = store.current.load();
        assert_eq!(
            names_of(&certs.pick(Some("a.example.com"))),
            ["a.example.com"]
        );
        assert_eq!(
            names_of(&certs.pick(Some("A.Example.COM."))),
            ["a.example.com"]
        );
        assert_eq!(
            names_of(&certs.pick(Some("x.example.com")))[0],
            "*.example.com"
        );
        assert_eq!(names_of(&certs.pick(Some("b.test")))[0], "*.example.com");
        // Wildcards are one label deep; unknown names get the first certificate.
        assert_eq!(
            names_of(&certs.pick(Some("x.y.example.com"))),
            ["a.example.com"]
        );
        assert_eq!(names_of(&certs.pick(None)), ["a.example.com"]);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let a = pair(dir.path(), "a", &["a.test"]);
        let b = pair(dir.path(), "b", &["b.test"]);
        let mismatched = CertSource {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = CertStore::load("web", vec![mismatched]).expect_err("mismatch");
        assert!(
            e.contains("b.key does not match the certificate in") && e.contains("a.crt"),
            "{e}"
        );
        assert!(e.starts_with("entrypoints.web.tls: "), "{e}");

        let missing = CertSource {
            cert: dir.path().join("nope.crt"),
            key: a.key.clone(),
        };
        let e = CertStore::load("web", vec![missing]).expect_err("missing");
        assert!(e.contains("cannot read") && e.contains("nope.crt"), "{e}");

        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "hello").expect("write");
        let e = CertStore::load(
            "web",
            vec![CertSource {
                cert: junk,
                key: a.key.clone(),
            }],
        )
        .expect_err("junk");
        assert!(e.contains("junk.crt: no CERTIFICATE block"), "{e}");

        let e = CertStore::load(
            "web",
            vec![CertSource {
                cert: a.cert.clone(),
                key: a.cert.clone(),
            }],
        )
        .expect_err("no key");
        assert!(e.contains("a.crt: no private key"), "{e}");
    }

    #[test]
    fn a_reload_swaps_changed_files_and_keeps_serving_on_broken_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let a = pair(dir.path(), "a", &["old.test"]);
        let store = CertStore::load("web", vec![a.clone()]).expect("loads");
        assert!(!store.reload(), "nothing changed");
        // Half-written renewal: the old certificate stays, with the error shown.
        std::fs::write(&a.key, "-----BEGIN PRIVATE KEY-----\n").expect("write");
        assert!(!store.reload());
        assert!(store.last_error().is_some());
        assert_eq!(store.info()[0].names, ["old.test"]);
        let fresh = pair(dir.path(), "a", &["new.test"]);
        assert_eq!(fresh.cert, a.cert);
        assert!(store.reload());
        assert_eq!(store.info()[0].names, ["new.test"]);
        assert!(store.last_error().is_none());
    }

    #[test]
    fn ca_files_are_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let e = UpstreamTls::new(&[dir.path().join("ca.pem")], false).expect_err("missing");
        assert!(e.starts_with("upstream.tls.ca_files: cannot read"), "{e}");
        let a = pair(dir.path(), "a", &["a.test"]);
        assert!(UpstreamTls::new(&[a.cert], false).is_ok());
    }
}
