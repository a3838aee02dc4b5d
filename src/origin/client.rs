//! The HTTP client toward one origin: hyper-util's pooled client over plain TCP, or over
//! rustls with the origin's own CA roots and SNI.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::config::{OriginConfig, UpstreamConfig};

/// A pooled client for one origin: plain HTTP, or HTTPS with its own roots and SNI.
#[derive(Clone, Debug)]
pub(super) enum OriginClient {
    Plain(Client<HttpConnector, ProxyBody>),
    Tls(Client<HttpsConnector<HttpConnector>, ProxyBody>),
}

impl OriginClient {
    pub(super) fn request(
        &self,
        req: Request<ProxyBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            OriginClient::Plain(c) => c.request(req),
            OriginClient::Tls(c) => c.request(req),
        }
    }
}

pub(super) fn build_client(o: &OriginConfig, cfg: &UpstreamConfig) -> Result<OriginClient, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_origin);
    if !o.tls {
        return Ok(OriginClient::Plain(builder.build(http)));
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
    Ok(OriginClient::Tls(
        builder.build(https.enable_http1().wrap_connector(http)),
    ))
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
