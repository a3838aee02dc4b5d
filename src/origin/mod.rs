//! The origin pool: pooled keep-alive connections, a balancing mode over healthy
//! origins (`balance`: weighted round-robin, least connections, or rendezvous hashing
//! on the cache key), active health checks, passive health (a circuit breaker fed by
//! real requests, `passive`), and one retry on another origin.
//!
//! An origin is in rotation while the active probes say it is up *and* its circuit is
//! closed; while it is half-open, one request at a time tries it.

mod balance;
mod client;
mod groups;
mod passive;
mod pool;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use crate::body::{BodyError, ProxyBody};
use crate::config::{Balance, HealthConfig, OriginConfig, UpstreamConfig, DEFAULT_GROUP};
use crate::failure::{FetchFailure, Kind, Replay, Source};
use crate::metrics::Metrics;
use balance::{Balancer, InFlight};
pub use groups::OriginGroups;
use passive::{Passive, Transition, Verdict};
use pool::ConnPool;
pub use pool::{Exchange, SendError};

/// One origin server and what health checks and failed requests say about it.
#[derive(Debug)]
pub struct Origin {
    pub address: String,
    authority: Authority,
    pub weight: u32,
    /// The origin group, for logs.
    group: Arc<str>,
    /// Requests sent and not yet done (response body read, or the exchange abandoned).
    in_flight: Arc<AtomicUsize>,
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

    /// Requests to this origin in flight: from being sent until the response body has
    /// been read, or the exchange failed or was abandoned.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// May the next request go here? While the circuit is half-open, `true` claims the
    /// one probe request, so only ask about an origin that will then be used.
    fn admits(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.passive.admits()
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
                tracing::info!(group = %self.group, origin = %self.address, "origin is up (health checks)");
            }
        } else {
            self.passes.store(0, Ordering::Relaxed);
            let n = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
            if up && n >= self.health.fall.max(1) {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(group = %self.group, origin = %self.address, "origin is down (health checks)");
            }
        }
        metrics.origin_health(&self.group, &self.address, self.is_healthy());
    }

    /// Record what a real request said about the origin.
    fn record_request(&self, verdict: Verdict, metrics: &Metrics) {
        match self.passive.record(verdict) {
            Some(Transition::Down(n)) => {
                tracing::warn!(
                    group = %self.group,
                    origin = %self.address,
                    failures = n,
                    cooldown = ?self.health.passive_cooldown,
                    "origin is down (passive: consecutive failed requests)"
                );
                metrics.origin_health(&self.group, &self.address, self.is_healthy());
            }
            Some(Transition::Up) => {
                tracing::info!(group = %self.group, origin = %self.address, "origin is up (passive: a request after the cooldown succeeded)");
                metrics.origin_health(&self.group, &self.address, self.is_healthy());
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

/// Keeps a tunnel counted as in flight on its origin server.
pub struct TunnelHold {
    _in_flight: InFlight,
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

/// One origin group: its servers, how requests are spread over them, and their
/// connections and health.
pub struct OriginPool {
    group: Arc<str>,
    origins: Vec<Arc<Origin>>,
    balancer: Balancer,
    cfg: UpstreamConfig,
    metrics: Arc<Metrics>,
    /// What the pool was built from; a reload keeps the pool while it is unchanged.
    built_from: Vec<OriginConfig>,
    /// Each origin's CA file digest, so a CA file replaced in place is not missed.
    ca_digests: Vec<Option<u64>>,
    /// Probe tasks started: once per pool, however often asked.
    probing: AtomicBool,
}

impl std::fmt::Debug for OriginPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginPool")
            .field("group", &self.group)
            .field("balance", &self.balancer.mode())
            .field("origins", &self.origins.len())
            .finish_non_exhaustive()
    }
}

impl OriginPool {
    /// The `default` group: the top-level `[[origin]]` list, in weighted round-robin.
    pub fn new(
        origins: &[OriginConfig],
        cfg: &UpstreamConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        Self::for_group(DEFAULT_GROUP, Balance::RoundRobin, origins, cfg, metrics)
    }

    /// The pool of origin group `name`.
    pub fn for_group(
        name: &str,
        balance: Balance,
        origins: &[OriginConfig],
        cfg: &UpstreamConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        let group: Arc<str> = Arc::from(name);
        let mut list = Vec::with_capacity(origins.len());
        for o in origins {
            let authority: Authority = o
                .address
                .parse()
                .map_err(|e| format!("origin address {:?}: {e}", o.address))?;
            let client = pool_for(o, cfg, &authority)?;
            list.push(Arc::new(Origin {
                address: o.address.clone(),
                authority,
                weight: o.weight,
                group: group.clone(),
                in_flight: Arc::default(),
                healthy: AtomicBool::new(true),
                fails: AtomicU32::new(0),
                passes: AtomicU32::new(0),
                passive: Passive::new(o.health.passive_fall, o.health.passive_cooldown),
                health: o.health.clone(),
                scheme: if o.tls { Scheme::HTTPS } else { Scheme::HTTP },
                client,
                meters: metrics.origin_meters(name, &o.address),
            }));
        }
        for o in &list {
            metrics.origin_health(name, &o.address, true);
        }
        let balancer = Balancer::new(balance, &list);
        Ok(Arc::new(OriginPool {
            group,
            origins: list,
            balancer,
            cfg: cfg.clone(),
            metrics,
            built_from: origins.to_vec(),
            ca_digests: origins.iter().map(client::ca_digest).collect(),
            probing: AtomicBool::new(false),
        }))
    }

    /// The origin group's name.
    pub fn name(&self) -> &str {
        &self.group
    }

    pub fn balance(&self) -> Balance {
        self.balancer.mode()
    }

    pub fn origins(&self) -> &[Arc<Origin>] {
        &self.origins
    }

    /// Send a request; on a connect failure or timeout before any response byte, retry
    /// once on another origin when the request is retryable. A `hash` group places the
    /// request by its path and query; `send_with_affinity` places it by the cache key.
    pub async fn send(&self, req: OriginRequest) -> Result<Response<Incoming>, OriginError> {
        self.dispatch(req, None).await
    }

    /// `send`, placing the request by `affinity` (the cache key's hash) in a `hash` group:
    /// every request with the same affinity goes to the same server while it is in
    /// rotation, and to the same second choice while it is not. Other modes ignore it.
    pub async fn send_with_affinity(
        &self,
        req: OriginRequest,
        affinity: u128,
    ) -> Result<Response<Incoming>, OriginError> {
        self.dispatch(req, Some(affinity)).await
    }

    async fn dispatch(
        &self,
        req: OriginRequest,
        affinity: Option<u128>,
    ) -> Result<Response<Incoming>, OriginError> {
        let affinity = match self.balancer.mode() {
            Balance::Hash => Some(affinity.unwrap_or_else(|| {
                xxhash_rust::xxh3::xxh3_128(req.path_and_query.as_str().as_bytes())
            })),
            Balance::RoundRobin | Balance::LeastConnections => None,
        };
        let first = self
            .balancer
            .pick(&self.origins, affinity, None)
            .ok_or(OriginError::NoOrigin)?;
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
                let Some(second) = self.balancer.pick(&self.origins, affinity, Some(first)) else {
                    return Err(e);
                };
                tracing::debug!(group = %self.group, error = %e, retry_on = %self.origins[second].address, "retrying on another origin");
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
        let in_flight = InFlight::start(&origin.in_flight);
        let result = tokio::select! {
            biased;
            r = origin.client.request(req, Some(in_flight)) => match r {
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

    /// Send an upgrade request (a WebSocket handshake) to one server of the group, on a
    /// connection of its own, placed as `send_with_affinity` places requests. Not
    /// retried: a tunnel is one client's, and it retries on its own. The returned hold
    /// counts the tunnel as in flight on its server (least-connections balancing) for
    /// as long as it is kept.
    pub async fn upgrade(
        &self,
        req: OriginRequest,
        affinity: u128,
    ) -> Result<(Response<Incoming>, TunnelHold), OriginError> {
        let affinity = match self.balancer.mode() {
            Balance::Hash => Some(affinity),
            Balance::RoundRobin | Balance::LeastConnections => None,
        };
        let idx = self
            .balancer
            .pick(&self.origins, affinity, None)
            .ok_or(OriginError::NoOrigin)?;
        let origin = &self.origins[idx];
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(req.path_and_query)
            .build()
            .map_err(|e| OriginError::BadRequest(e.to_string()))?;
        let mut request = Request::new(req.body);
        *request.method_mut() = req.method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = req.headers;
        let hold = TunnelHold {
            _in_flight: InFlight::start(&origin.in_flight),
        };
        let timeout = self.cfg.connect_timeout + self.cfg.first_byte_timeout;
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(timeout, origin.client.upgrade(request)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(source)) => Err(OriginError::Connect {
                origin: origin.address.clone(),
                source,
            }),
            Err(_) => Err(OriginError::Timeout {
                origin: origin.address.clone(),
                after: timeout,
            }),
        };
        let (outcome, verdict) = match &result {
            Ok(r) if r.status().is_server_error() && origin.health.passive_5xx => {
                ("5xx", Verdict::Failure)
            }
            Ok(r) if r.status().is_server_error() => ("5xx", Verdict::Success),
            Ok(_) => ("ok", Verdict::Success),
            Err(e @ OriginError::Timeout { .. }) => ("timeout", e.verdict()),
            Err(e) => ("error", e.verdict()),
        };
        origin.meters.record(outcome, started.elapsed());
        origin.record_request(verdict, &self.metrics);
        result.map(|resp| (resp, hold))
    }

    /// Whether a pool built from these arguments would be this one: then a reload keeps
    /// this one, with its health state, circuits and idle connections.
    fn built_from(
        &self,
        balance: Balance,
        origins: &[OriginConfig],
        cfg: &UpstreamConfig,
        metrics: &Arc<Metrics>,
    ) -> bool {
        self.balancer.mode() == balance
            && self.built_from == origins
            && self.cfg == *cfg
            && Arc::ptr_eq(&self.metrics, metrics)
            && origins
                .iter()
                .map(client::ca_digest)
                .eq(self.ca_digests.iter().copied())
    }

    /// Start one active health-check task per origin, the first time only (a pool kept
    /// across a reload keeps its tasks); they stop when the pool is dropped. Returns how
    /// many tasks this call started.
    pub fn spawn_health_checks(self: &Arc<Self>) -> usize {
        if self.probing.swap(true, Ordering::AcqRel) {
            return 0;
        }
        let mut started = 0;
        for idx in 0..self.origins.len() {
            if !self.origins[idx].health.enabled {
                continue;
            }
            started += 1;
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
        started
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
        match tokio::time::timeout(h.timeout, origin.client.request(req, None)).await {
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
