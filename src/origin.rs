//! The origin pool: pooled keep-alive connections, weighted round-robin over healthy
//! origins, active health checks, and one retry on another origin.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::coalesce::FetchFailure;
use crate::config::{HealthConfig, OriginConfig, UpstreamConfig};
use crate::metrics::Metrics;

/// One origin server and what health checks and failed requests say about it.
#[derive(Debug)]
pub struct Origin {
    pub address: String,
    authority: Authority,
    pub weight: u32,
    healthy: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
    health: HealthConfig,
    scheme: Scheme,
    client: OriginClient,
    meters: crate::metrics::OriginMeters,
}

/// A pooled client for one origin: plain HTTP, or HTTPS with its own roots and SNI.
#[derive(Clone, Debug)]
enum OriginClient {
    Plain(Client<HttpConnector, ProxyBody>),
    Tls(Client<HttpsConnector<HttpConnector>, ProxyBody>),
}

impl OriginClient {
    fn request(&self, req: Request<ProxyBody>) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            OriginClient::Plain(c) => c.request(req),
            OriginClient::Tls(c) => c.request(req),
        }
    }
}

fn build_client(o: &OriginConfig, cfg: &UpstreamConfig) -> Result<OriginClient, String> {
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

impl Origin {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Record a check or request result; flips health after `fall` failures or `rise`
    /// successes in a row, so one blip does not move traffic.
    fn record(&self, ok: bool) {
        if ok {
            self.fails.store(0, Ordering::Relaxed);
            let n = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && n >= self.health.rise.max(1) {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!(origin = %self.address, "origin is up");
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let n = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && n >= self.health.fall.max(1) {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(origin = %self.address, "origin is down");
            }
        }
    }
}

/// An origin request that produced no response head.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("no origin available")]
    NoOrigin,
    #[error("origin {origin}: {source}")]
    Connect {
        origin: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("origin {origin}: no response within {after:?}")]
    Timeout { origin: String, after: Duration },
    #[error("invalid request to origin: {0}")]
    BadRequest(String),
}

impl OriginError {
    pub fn failure(&self) -> FetchFailure {
        match self {
            OriginError::NoOrigin => FetchFailure::NoOrigin,
            OriginError::Timeout { .. } => FetchFailure::Timeout,
            OriginError::Connect { .. } | OriginError::BadRequest(_) => FetchFailure::Connect,
        }
    }
}

/// What goes to the origin: a head that can be replayed for a retry, plus a body.
pub struct OriginRequest {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
    pub body: ProxyBody,
    /// Safe to send twice: idempotent method and no body that was already consumed.
    pub retryable: bool,
}

pub struct OriginPool {
    origins: Vec<Arc<Origin>>,
    /// Round-robin schedule: each origin index repeated `weight` times.
    schedule: Vec<usize>,
    next: AtomicUsize,
    cfg: UpstreamConfig,
    metrics: Arc<Metrics>,
}

impl OriginPool {
    pub fn new(
        origins: &[OriginConfig],
        cfg: &UpstreamConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        let mut list = Vec::with_capacity(origins.len());
        let mut schedule = Vec::new();
        for (i, o) in origins.iter().enumerate() {
            let authority: Authority = o
                .address
                .parse()
                .map_err(|e| format!("origin address {:?}: {e}", o.address))?;
            list.push(Arc::new(Origin {
                address: o.address.clone(),
                authority,
                weight: o.weight,
                healthy: AtomicBool::new(true),
                fails: AtomicU32::new(0),
                passes: AtomicU32::new(0),
                health: o.health.clone(),
                scheme: if o.tls { Scheme::HTTPS } else { Scheme::HTTP },
                client: build_client(o, cfg)?,
                meters: metrics.origin_meters(&o.address),
            }));
            // Weights are small integers; cap the schedule so a huge weight cannot blow memory.
            for _ in 0..o.weight.clamp(1, 100) {
                schedule.push(i);
            }
        }
        Ok(Arc::new(OriginPool {
            origins: list,
            schedule,
            next: AtomicUsize::new(0),
            cfg: cfg.clone(),
            metrics,
        }))
    }

    pub fn origins(&self) -> &[Arc<Origin>] {
        &self.origins
    }

    /// Next healthy origin in the weighted round-robin, skipping `exclude`. When none is
    /// healthy, try them anyway: a health check can be wrong, a refused request is not worse.
    fn pick(&self, exclude: Option<usize>) -> Option<usize> {
        if self.schedule.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.schedule.len();
        let mut fallback = None;
        for i in 0..n {
            let idx = self.schedule[(start + i) % n];
            if Some(idx) == exclude {
                continue;
            }
            if self.origins[idx].is_healthy() {
                return Some(idx);
            }
            fallback.get_or_insert(idx);
        }
        fallback
    }

    /// Send a request; on a connect failure or timeout before any response byte, retry
    /// once on another origin when the request is retryable.
    pub async fn send(&self, req: OriginRequest) -> Result<Response<Incoming>, OriginError> {
        let first = self.pick(None).ok_or(OriginError::NoOrigin)?;
        let OriginRequest {
            method,
            path_and_query,
            headers,
            body,
            retryable,
        } = req;
        let replay = (retryable && self.cfg.retry && self.origins.len() > 1)
            .then(|| (method.clone(), path_and_query.clone(), headers.clone()));
        match self
            .send_to(first, method, path_and_query, headers, body)
            .await
        {
            Ok(resp) => Ok(resp),
            Err(e) => {
                let Some((m, pq, h)) = replay else {
                    return Err(e);
                };
                let Some(second) = self.pick(Some(first)) else {
                    return Err(e);
                };
                tracing::debug!(error = %e, retry_on = %self.origins[second].address, "retrying on another origin");
                self.send_to(second, m, pq, h, ProxyBody::empty()).await
            }
        }
    }

    async fn send_to(
        &self,
        idx: usize,
        method: Method,
        path_and_query: PathAndQuery,
        headers: HeaderMap,
        body: ProxyBody,
    ) -> Result<Response<Incoming>, OriginError> {
        let origin = &self.origins[idx];
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| OriginError::BadRequest(e.to_string()))?;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        let timeout = self.cfg.first_byte_timeout;
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(timeout, origin.client.request(req)).await {
            Ok(Ok(resp)) => {
                origin.record(true);
                Ok(resp)
            }
            Ok(Err(source)) => {
                if source.is_connect() {
                    origin.record(false);
                }
                Err(OriginError::Connect {
                    origin: origin.address.clone(),
                    source,
                })
            }
            Err(_) => Err(OriginError::Timeout {
                origin: origin.address.clone(),
                after: timeout,
            }),
        };
        let outcome = match &result {
            Ok(r) if r.status().is_server_error() => "5xx",
            Ok(_) => "ok",
            Err(OriginError::Timeout { .. }) => "timeout",
            Err(_) => "error",
        };
        origin.meters.record(outcome, started.elapsed());
        result
    }

    /// Start one active health-check task per origin; they stop when the pool is dropped.
    pub fn spawn_health_checks(self: &Arc<Self>) {
        for idx in 0..self.origins.len() {
            if !self.origins[idx].health.enabled {
                continue;
            }
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let interval = match weak.upgrade() {
                        Some(pool) => {
                            let ok = pool.check(idx).await;
                            pool.origins[idx].record(ok);
                            pool.metrics.origin_health(
                                &pool.origins[idx].address,
                                pool.origins[idx].is_healthy(),
                            );
                            pool.origins[idx].health.interval
                        }
                        None => return,
                    };
                    tokio::time::sleep(interval).await;
                }
            });
        }
    }

    async fn check(&self, idx: usize) -> bool {
        let origin = &self.origins[idx];
        let h = &origin.health;
        let Ok(pq) = PathAndQuery::try_from(h.path.as_str()) else {
            return false;
        };
        let Ok(uri) = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(pq)
            .build()
        else {
            return false;
        };
        let mut req = Request::new(ProxyBody::empty());
        *req.uri_mut() = uri;
        req.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("lacquer-health"),
        );
        match tokio::time::timeout(h.timeout, origin.client.request(req)).await {
            Ok(Ok(resp)) => {
                let s = resp.status().as_u16();
                // Drain so the connection goes back to the pool.
                let _ = tokio::time::timeout(
                    h.timeout,
                    http_body_util::BodyExt::collect(resp.into_body()),
                )
                .await;
                if h.expect_status.is_empty() {
                    (200..400).contains(&s)
                } else {
                    h.expect_status.contains(&s)
                }
            }
            _ => false,
        }
    }
}
