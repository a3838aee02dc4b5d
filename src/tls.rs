//! TLS termination with rustls (ring as the one crypto provider): certificates chosen by
//! SNI, ALPN h2 and http/1.1, TLS 1.2 and 1.3, and reload without dropping connections
//! (each handshake takes the config current at that moment; open connections keep theirs).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsAcceptor;

/// A certificate chain and its key, as PEM file paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("no certificate configured")]
    NoCertificate,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn file_err(path: &Path, msg: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        msg: msg.to_string(),
    }
}

/// One loaded certificate with what it is needed for SNI matching.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The end-entity certificate, kept to check names against it per handshake.
    leaf: CertificateDer<'static>,
}

/// Picks the first certificate valid for the SNI name; the first configured one when
/// the client sends no SNI or nothing matches (like nginx's default server).
struct SniResolver {
    certs: Vec<Loaded>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SniResolver({} certificates)", self.certs.len())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok());
        if let Some(name) = name {
            for c in &self.certs {
                let Ok(ee) = webpki::EndEntityCert::try_from(&c.leaf) else {
                    continue;
                };
                if ee.verify_is_valid_for_subject_name(&name).is_ok() {
                    return Some(c.key.clone());
                }
            }
        }
        self.certs.first().map(|c| c.key.clone())
    }
}

fn load_one(paths: &CertPaths) -> Result<Loaded, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(|e| file_err(&paths.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&paths.cert, e))?;
    let Some(leaf) = certs.first().cloned() else {
        return Err(file_err(&paths.cert, "no certificate in file"));
    };
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| file_err(&paths.key, e))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_err(&paths.key, e))?;
    let key = CertifiedKey::new(certs, signing);
    // Refuse a key that does not belong to the certificate now, not at the first handshake.
    key.keys_match().map_err(|e| file_err(&paths.key, e))?;
    Ok(Loaded {
        key: Arc::new(key),
        leaf,
    })
}

/// Build a server config from certificate files; any bad file fails the whole build,
/// so a reload either takes every new certificate or none.
pub fn server_config(certs: &[CertPaths]) -> Result<Arc<ServerConfig>, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let loaded = certs.iter().map(load_one).collect::<Result<Vec<_>, _>>()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs: loaded }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A listener's TLS state: swapped whole on reload.
pub struct Tls {
    paths: std::sync::Mutex<Vec<CertPaths>>,
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    pub fn new(paths: Vec<CertPaths>) -> Result<Arc<Tls>, TlsError> {
        let cfg = server_config(&paths)?;
        Ok(Arc::new(Tls {
            paths: std::sync::Mutex::new(paths),
            current: ArcSwap::new(cfg),
        }))
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Re-read the certificate files. On error the running certificates stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let cfg = server_config(&paths)?;
        self.current.store(cfg);
        Ok(())
    }

    /// Take a config prepared (and so validated) by `server_config`.
    pub fn install(&self, paths: Vec<CertPaths>, cfg: Arc<ServerConfig>) {
        *self.paths.lock().unwrap_or_else(|e| e.into_inner()) = paths;
        self.current.store(cfg);
    }
}
