//! The origin pool: pooled keep-alive connections, weighted round-robin over healthy
//! origins, active health checks, passive health (a circuit breaker fed by real
//! requests, `passive`), and one retry on another origin.
//!
//! An origin is in rotation while the active probes say it is up *and* its circuit is
//! closed; while it is half-open, one request at a time tries it.

mod client;
mod passive;
mod pool;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use crate::body::{BodyError, ProxyBody};
use crate::config::{HealthConfig, OriginConfig, UpstreamConfig};
use crate::failure::{FetchFailure, Kind, Replay, Source};
use crate::metrics::Metrics;
use passive::{Passive, Transition, Verdict};
use pool::ConnPool;
pub use pool::{Exchange, SendError};

/// One origin server and what health checks and failed requests say about it.
#[derive(Debug)]
pub struct Origin {
    pub address: String,
    authority: Authority,
    pub weight: u32,
    /// What the active probes say.
    healthy: AtomicBool,
    fails: AtomicU32,
    passes: AtomicU32,
    /// What real requests say.
    passive: Passive,
    health: HealthConfig,
    scheme: Scheme,
    client: Arc<ConnPool>,
    meters: crate::metrics::OriginMeters,
}

impl Origin {
    /// In rotation: the probes say up and the circuit is closed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.passive.is_down()
    }

    /// Record a probe result; flips health after `fall` failures or `rise` successes
    /// in a row, so one blip does not move traffic.
    fn record_probe(&self, ok: bool, metrics: &Metrics) {
        let up = self.healthy.load(Ordering::Relaxed);
        if ok {
            self.fails.store(0, Ordering::Relaxed);
            let n = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
            if !up && n >= self.health.rise.max(1) {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!(origin = %self.address, "origin is up (health checks)");
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let n = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if up && n >= self.health.fall.max(1) {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(origin = %self.address, "origin is down (health checks)");
            }
        }
        metrics.origin_health(&self.address, self.is_healthy());
    }

    /// Record what a real request said about the origin.
    fn record_request(&self, verdict: Verdict, metrics: &Metrics) {
        match self.passive.record(verdict) {
            Some(Transition::Down(n)) => {
                tracing::warn!(
                    origin = %self.address,
                    failures = n,
                    cooldown = ?self.health.passive_cooldown,
                    "origin is down (passive: consecutive failed requests)"
                );
                metrics.origin_health(&self.address, self.is_healthy());
            }
            Some(Transition::Up) => {
                tracing::info!(origin = %self.address, "origin is up (passive: a request after the cooldown succeeded)");
                metrics.origin_health(&self.address, self.is_healthy());
            }
            None => {}
        }
    }
}

/// An origin request that produced no response head.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("no origin available")]
    NoOrigin,
    #[error("origin {origin}: {source}")]
    Connect { origin: String, source: SendError },
    #[error("origin {origin}: no response within {after:?}")]
    Timeout { origin: String, after: Duration },
    #[error("invalid request to origin: {0}")]
    BadRequest(String),
    /// The client's request body failed while it was being sent (too slow, too big,
    /// broken framing): the client's fault, not the origin's.
    #[error("request body: {reason}")]
    ClientBody { reason: String },
}

impl OriginError {
    pub fn failure(&self) -> FetchFailure {
        match self {
            OriginError::NoOrigin => FetchFailure::new(Source::Local, Kind::NoUpstream),
            OriginError::Timeout { .. } => FetchFailure::new(Source::Origin, Kind::Timeout),
            OriginError::Connect { .. } => FetchFailure::new(Source::Origin, Kind::Connect),
            OriginError::BadRequest(_) => FetchFailure::new(Source::Local, Kind::Connect),
            // The status for a client's broken body (400/408/413) comes from the body's
            // own record (`body::ClientFault`), which the request path reads first.
            OriginError::ClientBody { .. } => FetchFailure::new(Source::Client, Kind::Abandoned),
        }
    }

    /// What this failure says about the origin's health.
    fn verdict(&self) -> Verdict {
        match self {
            OriginError::Connect { .. } | OriginError::Timeout { .. } => Verdict::Failure,
            OriginError::NoOrigin | OriginError::BadRequest(_) | OriginError::ClientBody { .. } => {
                Verdict::Neutral
            }
        }
    }
}

/// The connection pool for origin `o`, its idle connections reaped in the background.
fn pool_for(
    o: &OriginConfig,
    cfg: &UpstreamConfig,
    authority: &Authority,
) -> Result<Arc<ConnPool>, String> {
    let scheme = if o.tls { "https" } else { "http" };
    let target = Uri::try_from(format!("{scheme}://{authority}"))
        .map_err(|e| format!("origin address {:?}: {e}", o.address))?;
    let pool = ConnPool::new(
        client::connector(o, cfg)?,
        target,
        cfg.pool_max_idle_per_origin,
        cfg.pool_idle_timeout,
    )?;
    if tokio::runtime::Handle::try_current().is_ok() {
        pool.spawn_reaper();
    }
    Ok(pool)
}

/// The request body's own error, when that is why hyper failed the request.
fn body_error(e: &SendError) -> Option<&BodyError> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(b) = c.downcast_ref::<BodyError>() {
            return Some(b);
        }
        cause = c.source();
    }
    None
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
            let client = pool_for(o, cfg, &authority)?;
            list.push(Arc::new(Origin {
                address: o.address.clone(),
                authority,
                weight: o.weight,
                healthy: AtomicBool::new(true),
                fails: AtomicU32::new(0),
                passes: AtomicU32::new(0),
                passive: Passive::new(o.health.passive_fall, o.health.passive_cooldown),
                health: o.health.clone(),
                scheme: if o.tls { Scheme::HTTPS } else { Scheme::HTTP },
                client,
                meters: metrics.origin_meters(&o.address),
            }));
            // Weights are small integers; cap the schedule so a huge weight cannot blow memory.
            for _ in 0..o.weight.clamp(1, 100) {
                schedule.push(i);
            }
        }
        for o in &list {
            metrics.origin_health(&o.address, true);
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

    /// Next healthy origin in the weighted round-robin, skipping `exclude`; an origin whose
    /// circuit is half-open takes one probe request. When none is healthy, try them
    /// anyway: a health check can be wrong, a refused request is not worse.
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
            let o = &self.origins[idx];
            if o.healthy.load(Ordering::Relaxed) && o.passive.admits() {
                return Some(idx);
            }
            fallback.get_or_insert(idx);
        }
        fallback
    }

    /// Send a request; when the failure allows it (`failure::Replay`: a connect failure
    /// or timeout before any response byte), retry once on another origin.
    pub async fn send(&self, req: OriginRequest) -> Result<Response<Incoming>, OriginError> {
        let first = self.pick(None).ok_or(OriginError::NoOrigin)?;
        let replay = (self.cfg.retry && self.origins.len() > 1)
            .then(|| Replay::of(&req))
            .flatten();
        let OriginRequest {
            method,
            path_and_query,
            headers,
            body,
            ..
        } = req;
        match self
            .send_to(first, method, path_and_query, headers, body)
            .await
        {
            Ok(resp) => Ok(resp),
            Err(e) => {
                let Some(again) = replay.and_then(|r| r.after(e.failure())) else {
                    return Err(e);
                };
                let Some(second) = self.pick(Some(first)) else {
                    return Err(e);
                };
                tracing::debug!(error = %e, retry_on = %self.origins[second].address, "retrying on another origin");
                let OriginRequest {
                    method,
                    path_and_query,
                    headers,
                    body,
                    ..
                } = again;
                self.send_to(second, method, path_and_query, headers, body)
                    .await
            }
        }
    }

    async fn send_to(
        &self,
        idx: usize,
        method: Method,
        path_and_query: PathAndQuery,
        headers: HeaderMap,
        mut body: ProxyBody,
    ) -> Result<Response<Incoming>, OriginError> {
        let origin = &self.origins[idx];
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| OriginError::BadRequest(e.to_string()))?;
        // The first-byte timer starts once the request body is sent in full; until then
        // the body's own idle timer bounds a slow client (finding: slow uploads got 504).
        let sent = body.on_sent();
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        let timeout = self.cfg.first_byte_timeout;
        let deadline = async move {
            if let Some(sent) = sent {
                // An error means the body failed; hyper reports that on its own.
                let _ = sent.await;
            }
            tokio::time::sleep(timeout).await;
        };
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            biased;
            r = origin.client.request(req) => match r {
                Ok(resp) => Ok(resp),
                Err(source) => Err(match body_error(&source) {
                    Some(b) => OriginError::ClientBody {
                        reason: b.to_string(),
                    },
                    None => OriginError::Connect {
                        origin: origin.address.clone(),
                        source,
                    },
                }),
            },
            () = deadline => Err(OriginError::Timeout {
                origin: origin.address.clone(),
                after: timeout,
            }),
        };
        let (outcome, verdict) = match &result {
            Ok(r) if r.status().is_server_error() => (
                Some("5xx"),
                if origin.health.passive_5xx {
                    Verdict::Failure
                } else {
                    Verdict::Success
                },
            ),
            Ok(_) => (Some("ok"), Verdict::Success),
            Err(e @ OriginError::Timeout { .. }) => (Some("timeout"), e.verdict()),
            // Not the origin's doing: left out of its request counts.
            Err(e @ OriginError::ClientBody { .. }) => (None, e.verdict()),
            Err(e) => (Some("error"), e.verdict()),
        };
        if let Some(outcome) = outcome {
            origin.meters.record(outcome, started.elapsed());
        }
        origin.record_request(verdict, &self.metrics);
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
                            pool.origins[idx].record_probe(ok, &pool.metrics);
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
        let Some(req) = crate::body::probe_request(
            origin.scheme.clone(),
            origin.authority.clone(),
            &h.path,
            "lacquer-health",
        ) else {
            return false;
        };
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
