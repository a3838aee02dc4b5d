//! Connectors toward one origin: plain TCP, or TCP then rustls with the origin's own CA
//! roots and SNI.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;

use super::pool::Connector;
use crate::config::{OriginConfig, UpstreamConfig};

/// How to open connections to origin `o`.
pub(super) fn connector(o: &OriginConfig, cfg: &UpstreamConfig) -> Result<Connector, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    if !o.tls {
        return Ok(Connector::Plain(http));
    }
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(o)?)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let https = match &o.sni {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("origin {} sni {name:?}: {e}", o.address))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    Ok(Connector::Tls(https.enable_http1().wrap_connector(http)))
}

/// A digest of the CA file an origin's TLS trusts, if it has one; None also when the
/// file cannot be read (building the connector then fails with the reason).
pub(super) fn ca_digest(o: &OriginConfig) -> Option<u64> {
    let path = o.ca_file.as_ref().filter(|_| o.tls)?;
    std::fs::read(path)
        .ok()
        .map(|pem| xxhash_rust::xxh3::xxh3_64(&pem))
}

/// The CAs trusted for an origin: its `ca_file`, else the system's store.
fn roots(o: &OriginConfig) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    match &o.ca_file {
        Some(path) => {
            for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err(format!(
            "origin {}: no CA certificates to verify it with",
            o.address
        ));
    }
    Ok(store)
}
