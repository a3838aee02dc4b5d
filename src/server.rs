//! Listeners and connections: accept with a connection limit, TLS (rustls, SNI, ALPN),
//! HTTP/1.1 and HTTP/2 on one port, header/idle timeouts, reload without dropping
//! connections, graceful drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::coalesce::Coalescer;
use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::{self, Config, LimitsConfig, ListenConfig};
use crate::metrics::Metrics;
use crate::origin::OriginGroups;
use crate::proxy::tunnel::{self, ConnectionSlot, Tunnels};
use crate::proxy::{ClientInfo, HeadLimits, Proxy, Settings, Setup};
use crate::site::Sites;
use crate::tls::{self, CertPaths, Tls};

mod activity;
mod guard;

use activity::{Activity, HeadTimer, IdleIo};
use guard::{Flood, Guard, GuardLimits};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A started node: its bound addresses, its live state and the handle to stop it.
pub struct Running {
    pub listen: Vec<SocketAddr>,
    /// The admin API's bound address, when `admin.enabled`.
    pub admin: Option<SocketAddr>,
    pub live: Arc<Live>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    /// The request path currently in force.
    pub fn proxy(&self) -> Arc<Proxy> {
        self.live.proxy()
    }

    /// Stop accepting, let in-flight requests finish (bounded by `drain_timeout`), return.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Upgraded connections are no longer the listeners' to drain: they get the same
        // drain_timeout on their own, and then are cut.
        let drain = self.live.limits.load().drain_timeout;
        let tunnels = &self.live.shared.tunnels;
        tunnels.close_after(drain);
        self.live.control.stop();
        // Its peers' health checks end with the node, not when the last handle to the
        // cluster view happens to go.
        if let Some(cluster) = &*self.live.shared.cluster.load() {
            cluster.stop();
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.live.tasks));
        for t in tasks {
            let _ = t.await;
        }
        let left = tunnels.wait_closed(drain + TUNNEL_CLOSE_GRACE).await;
        if left > 0 {
            tracing::warn!(left, "WebSocket tunnels still open after drain_timeout");
        }
    }

    /// Run until `signal` resolves, then shut down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What outlives a reload: the cache, the in-flight map and the metrics.
#[derive(Clone)]
pub struct Shared {
    /// The cluster view: kept across reloads (purge log, peer health) unless the
    /// `[cluster]` or `[node]` section changed, when a reload builds a new one.
    pub cluster: Arc<arc_swap::ArcSwapOption<crate::cluster::Cluster>>,
    pub cache: Arc<Cache>,
    pub coalescer: Arc<Coalescer>,
    pub metrics: Arc<Metrics>,
    /// Open WebSocket tunnels: a reload keeps them, shutdown closes them.
    pub tunnels: Arc<Tunnels>,
}

impl Shared {
    pub fn new(cfg: &Config) -> Result<Shared, StartError> {
        let metrics = Arc::new(Metrics::new());
        metrics
            .cache_capacity
            .set(i64::try_from(cfg.cache.memory).unwrap_or(i64::MAX));
        let cluster = crate::cluster::Cluster::from_config(cfg, metrics.clone())
            .map_err(StartError::Config)?;
        Ok(Shared {
            cluster: Arc::new(arc_swap::ArcSwapOption::new(cluster)),
            cache: Arc::new(Cache::new(
                cfg.cache.memory,
                cfg.cache.max_variants,
                cfg.cache.hit_for_miss_ttl,
            )),
            coalescer: Coalescer::new(cfg.cache.max_waiters, cfg.cache.error_backoff),
            tunnels: Tunnels::new(metrics.tunnels.clone()),
            metrics,
        })
    }
}

/// One bound public listener.
struct ListenerSlot {
    /// The address as configured (port 0 stays 0), which reloads match on.
    configured: SocketAddr,
    bound: SocketAddr,
    tls: Option<Arc<Tls>>,
    proxy_protocol: bool,
    stop: watch::Sender<bool>,
}

/// The node's current state. A reload prepares everything that can fail first
/// (config, origins, certificates, new sockets) and only then swaps it in, so a bad
/// reload changes nothing; open connections keep running on what they started with.
pub struct Live {
    proxy: ArcSwap<Proxy>,
    limits: ArcSwap<LimitsConfig>,
    shared: Shared,
    source: Option<PathBuf>,
    applied: tokio::sync::Mutex<Config>,
    listeners: Mutex<Vec<ListenerSlot>>,
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The control plane across PoPs; reconnected by a reload only when `[control]`
    /// (or the node's name) changed.
    control: crate::control::Control,
    /// Pre-warm jobs: started by the admin API and by control messages alike.
    prewarm_jobs: Arc<crate::admin::prewarm::Jobs>,
}

impl Live {
    pub fn proxy(&self) -> Arc<Proxy> {
        self.proxy.load_full()
    }

    pub fn control(&self) -> &crate::control::Control {
        &self.control
    }

    pub fn prewarm_jobs(&self) -> Arc<crate::admin::prewarm::Jobs> {
        self.prewarm_jobs.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Re-read the config file the node started from (SIGHUP, `POST /reload`).
    pub async fn reload_from_source(self: &Arc<Self>) -> Result<String, String> {
        let Some(path) = self.source.clone() else {
            let e = "started without a config file (quick mode): nothing to re-read".to_owned();
            return Err(self.refused(e));
        };
        // A file that does not parse is a refused reload like any other: logged with
        // every `file:line: key: message` and counted, never silent.
        match Config::load(&path) {
            Ok(cfg) => self.reload(cfg).await,
            Err(e) => Err(self.refused(e.to_string())),
        }
    }

    /// Apply a new config. On error the running one stays, untouched.
    pub async fn reload(self: &Arc<Self>, cfg: Config) -> Result<String, String> {
        crate::notify::reloading();
        let result = self.apply(cfg).await;
        crate::notify::ready();
        match result {
            Ok(note) => {
                self.shared.metrics.reload("ok");
                tracing::info!(%note, "config reloaded");
                Ok(note)
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Count and log a refused reload; the running config stays.
    fn refused(&self, error: String) -> String {
        self.shared.metrics.reload("failed");
        for line in error.lines() {
            tracing::error!("config reload refused: {line}");
        }
        tracing::error!("config reload refused; the running config stays");
        error
    }

    async fn apply(self: &Arc<Self>, cfg: Config) -> Result<String, String> {
        let mut applied = self.applied.lock().await;
        // Prepare: nothing below changes the running node until every step succeeded.
        // A changed peer list builds a new ring: only keys whose owner changed move.
        let membership_changed = cfg.cluster != applied.cluster || cfg.node != applied.node;
        let cluster = if membership_changed {
            let previous = self.shared.cluster.load_full();
            crate::cluster::Cluster::succeeding(
                &cfg,
                self.shared.metrics.clone(),
                previous.as_deref(),
            )?
        } else {
            self.shared.cluster.load_full()
        };
        let running = self.proxy.load_full();
        let proxy = build_proxy(&cfg, &self.shared, cluster.clone(), Some(&running))
            .map_err(|e| e.to_string())?;
        let mut kept_tls = Vec::new();
        let mut fresh = Vec::new();
        {
            let slots = lock(&self.listeners);
            for l in &cfg.listen {
                match slots.iter().find(|s| s.configured == l.address) {
                    Some(slot) if slot.proxy_protocol != l.proxy_protocol => {
                        return Err(format!(
                            "listener {}: turning proxy_protocol on or off needs a restart",
                            l.address
                        ))
                    }
                    Some(slot) => match (&slot.tls, &l.tls) {
                        (Some(tls), Some(t)) => {
                            let paths = cert_paths(t);
                            let config = tls::server_config(&paths).map_err(|e| e.to_string())?;
                            kept_tls.push((tls.clone(), paths, config));
                        }
                        (None, None) => {}
                        _ => {
                            return Err(format!(
                                "listener {}: switching between TLS and plain text needs a restart",
                                l.address
                            ))
                        }
                    },
                    None => fresh.push(l.clone()),
                }
            }
        }
        let mut bound = Vec::new();
        for l in &fresh {
            bound.push(bind(l).await.map_err(|e| e.to_string())?);
        }
        let mut notes = Vec::new();
        // Only a bad credentials file fails here, before anything was swapped.
        let control_note = self
            .control
            .reload(
                &applied,
                &cfg,
                Arc::downgrade(self),
                self.shared.metrics.clone(),
                self.shutdown.clone(),
            )
            .await
            .map_err(|e| format!("control: {e}"))?;
        if let Some(n) = control_note {
            notes.push(n);
        }
        if cfg.cache.memory != applied.cache.memory
            || cfg.cache.max_variants != applied.cache.max_variants
        {
            notes.push("cache.memory and cache.max_variants take effect at the next restart");
        }
        if cfg.limits.max_connections != applied.limits.max_connections {
            notes.push("limits.max_connections takes effect at the next restart");
        }
        let admin_keys = admin_restart_keys(&applied.admin, &cfg.admin);
        let admin_note = format!("{} take effect at the next restart", admin_keys.join(", "));
        if !admin_keys.is_empty() {
            notes.push(&admin_note);
        }
        if membership_changed {
            notes.push("cluster view rebuilt; peers' health and undelivered purges carried over");
        }
        // Commit.
        if membership_changed {
            if let Some(c) = &cluster {
                c.spawn_health_checks();
            }
            self.shared.cluster.store(cluster);
        }
        proxy.spawn_background_tasks();
        // A site the new config no longer has stops being exported (its series would
        // otherwise stay at their last values for good).
        for site in running.sites().all() {
            if !proxy.sites().contains(site.name()) {
                self.shared.metrics.forget_site(site.name());
            }
        }
        self.proxy.store(proxy);
        self.limits.store(Arc::new(cfg.limits.clone()));
        for (tls, paths, config) in kept_tls {
            tls.install(paths, config);
        }
        {
            let mut slots = lock(&self.listeners);
            slots.retain(|slot| {
                let keep = cfg.listen.iter().any(|l| l.address == slot.configured);
                if !keep {
                    // Stop accepting; connections already open finish on their own.
                    let _ = slot.stop.send(true);
                    tracing::info!(addr = %slot.bound, "listener removed");
                }
                keep
            });
        }
        for (listener, l, tls) in bound {
            self.serve(listener, l.address, tls, l.proxy_protocol);
        }
        *applied = cfg;
        Ok(if notes.is_empty() {
            "reloaded".to_owned()
        } else {
            format!("reloaded; {}", notes.join("; "))
        })
    }

    fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        configured: SocketAddr,
        tls: Option<Arc<Tls>>,
        proxy_protocol: bool,
    ) {
        let bound = listener.local_addr().unwrap_or(configured);
        let (stop, stop_rx) = watch::channel(false);
        let acceptor = Acceptor {
            listener,
            live: self.clone(),
            tls: tls.clone(),
            proxy_protocol,
            shutdown: self.shutdown.clone(),
            stop: stop_rx,
        };
        lock(&self.tasks).push(tokio::spawn(acceptor.run()));
        lock(&self.listeners).push(ListenerSlot {
            configured,
            bound,
            tls,
            proxy_protocol,
            stop,
        });
    }
}

/// The `[admin]` keys that changed and that the admin listener only reads at start
/// (`purge_allowed` is read by the request path and applies at once).
fn admin_restart_keys(old: &config::AdminConfig, new: &config::AdminConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.enabled != new.enabled {
        keys.push("admin.enabled");
    }
    if old.address != new.address {
        keys.push("admin.address");
    }
    if old.token_file != new.token_file {
        keys.push("admin.token_file");
    }
    if old.open != new.open {
        keys.push("admin.open");
    }
    if old.max_body != new.max_body {
        keys.push("admin.max_body");
    }
    keys
}

fn cert_paths(t: &config::TlsConfig) -> Vec<CertPaths> {
    t.pairs()
        .into_iter()
        .map(|(cert, key)| CertPaths { cert, key })
        .collect()
}

/// Bind a listener and load its certificates.
async fn bind(
    l: &ListenConfig,
) -> Result<(TcpListener, ListenConfig, Option<Arc<Tls>>), StartError> {
    let tls = match &l.tls {
        Some(t) => Some(
            Tls::new(cert_paths(t))
                .map_err(|e| StartError::Config(format!("listener {}: {e}", l.address)))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(l.address)
        .await
        .map_err(|source| StartError::Bind {
            addr: l.address,
            source,
        })?;
    Ok((listener, l.clone(), tls))
}

/// Build the request path's state from the config, around the state that outlives reloads.
pub fn build_proxy(
    cfg: &Config,
    shared: &Shared,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    previous: Option<&Proxy>,
) -> Result<Arc<Proxy>, StartError> {
    let metrics = shared.metrics.clone();
    // A group unchanged since the running config keeps its pool: health state,
    // circuits and idle connections survive the reload.
    let groups = OriginGroups::build(cfg, previous.map(|p| p.groups().as_ref()), &metrics)
        .map_err(StartError::Config)?;
    let sites = Sites::serving(cfg, &groups, &metrics).map_err(StartError::Config)?;
    let c = &cfg.cache;
    let mut purge_allowed = Vec::new();
    for s in &cfg.admin.purge_allowed {
        purge_allowed.push(
            s.parse()
                .map_err(|e| StartError::Config(format!("purge_allowed {s:?}: {e}")))?,
        );
    }
    let via = http::HeaderValue::from_str(&format!("1.1 {}", cfg.node.name))
        .unwrap_or_else(|_| http::HeaderValue::from_static("1.1 lacquer"));
    let settings = Settings {
        // RFC 9211 names each cache in the chain: through a PoP, the shard's entry and
        // the edge's must say which is which.
        cache_name: cfg.node.name.clone(),
        via,
        max_body: cfg.limits.max_body,
        body_read_timeout: cfg.limits.body_read_timeout,
        between_bytes_timeout: cfg.upstream.between_bytes_timeout,
        stream_idle_timeout: cfg.upstream.stream_idle_timeout,
        coalesce_timeout: crate::proxy::coalesce_wait_bound(c.coalesce_timeout, &cfg.upstream),
        stale_on_slow: c.stale_on_slow,
        purge_allowed,
        access_log: cfg.log.access_log,
        trusted_proxies: cfg.client.trusted_cidrs(),
        unkeyed_headers: crate::proxy::headers::NameList::new(&cfg.client.unkeyed_headers),
        head: HeadLimits {
            max_uri_bytes: cfg.limits.max_uri_bytes,
            max_header_bytes: cfg.limits.max_header_bytes,
            max_headers: cfg.limits.max_headers,
        },
        node: cfg.node.name.clone(),
        pop: cfg.node.pop.clone().unwrap_or_default(),
        site_header: cfg.log.site_header,
        surrogate_control: c.surrogate_control,
        max_tunnels: cfg.limits.max_tunnels,
        tunnel_idle_timeout: cfg.limits.tunnel_idle_timeout,
    };
    let geo = if cfg.geo.enabled {
        let geo = crate::geo::Geo::new(&cfg.geo, cfg.node.pop.as_deref(), Some(metrics.clone()))
            .map_err(StartError::Config)?;
        Some(geo)
    } else {
        None
    };
    Ok(Proxy::new(Setup {
        cache: shared.cache.clone(),
        coalescer: shared.coalescer.clone(),
        metrics,
        groups: Arc::new(groups),
        sites,
        fallback_rules: crate::site::rules::CacheRules::global(c).cache,
        settings,
        geo,
        cluster,
        tunnels: shared.tunnels.clone(),
    }))
}

/// Bind every listener and start serving. Returns once the listeners are bound.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let shared = Shared::new(&cfg)?;
    let proxy = build_proxy(&cfg, &shared, shared.cluster.load_full(), None)?;
    if let Some(cluster) = &*shared.cluster.load() {
        cluster.spawn_health_checks();
    }
    proxy.spawn_background_tasks();
    let (tx, rx) = watch::channel(false);
    let mut bound = Vec::new();
    for l in &cfg.listen {
        bound.push(bind(l).await?);
    }
    let live = Arc::new(Live {
        proxy: ArcSwap::new(proxy),
        limits: ArcSwap::new(Arc::new(cfg.limits.clone())),
        shared,
        source: cfg.source.clone(),
        applied: tokio::sync::Mutex::new(cfg.clone()),
        listeners: Mutex::new(Vec::new()),
        limit: Arc::new(Semaphore::new(cfg.limits.max_connections.max(1))),
        shutdown: rx.clone(),
        tasks: Mutex::new(Vec::new()),
        control: crate::control::Control::default(),
        prewarm_jobs: Arc::new(crate::admin::prewarm::Jobs::default()),
    });
    live.control
        .start(
            &cfg,
            Arc::downgrade(&live),
            live.shared.metrics.clone(),
            rx.clone(),
        )
        .await
        .map_err(|e| StartError::Config(format!("control: {e}")))?;
    let mut listen = Vec::new();
    for (listener, l, tls) in bound {
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: l.address,
            source,
        })?;
        tracing::info!(%addr, tls = tls.is_some(), "listening");
        listen.push(addr);
        live.serve(listener, l.address, tls, l.proxy_protocol);
    }
    let admin = if cfg.admin.enabled {
        let (addr, task) = crate::admin::start(&cfg, live.clone(), rx.clone()).await?;
        lock(&live.tasks).push(task);
        Some(addr)
    } else {
        None
    };
    Ok(Running {
        listen,
        admin,
        live,
        shutdown: tx,
    })
}

struct Acceptor {
    listener: TcpListener,
    live: Arc<Live>,
    tls: Option<Arc<Tls>>,
    /// Connections start with a PROXY protocol header.
    proxy_protocol: bool,
    shutdown: watch::Receiver<bool>,
    /// This listener alone was removed by a reload.
    stop: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run(mut self) {
        // Connections hold a receiver: `true` asks them to finish gracefully, and the
        // sender sees when the last one is gone.
        let (close, close_rx) = watch::channel(false);
        let mut removed = false;
        let mut refusals = Refusals::default();
        loop {
            let (stream, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.shutdown.changed() => break,
                _ = self.stop.changed() => { removed = true; break }
            };
            let Ok(permit) = self.live.limit.clone().try_acquire_owned() else {
                // Queueing would make the client wait for a slot with no bound: refuse now.
                self.live.shared.metrics.connections_refused.inc();
                refusals.log(peer);
                refuse(stream, self.tls.is_none() && !self.proxy_protocol);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let limits = self.live.limits.load_full();
            let live = self.live.clone();
            let tls = self.tls.as_ref().map(|t| t.acceptor());
            let close_rx = close_rx.clone();
            let proxy_protocol = self.proxy_protocol;
            tokio::spawn(async move {
                // The connection's place among max_connections, and in the open gauge;
                // a tunnel made of it keeps both (`ConnectionSlot`).
                let slot = ConnectionSlot::new((permit, live.shared.metrics.connection()));
                let accepted = if proxy_protocol {
                    match read_proxy_header(stream, peer, &live, limits.header_read_timeout).await {
                        Some(s) => s,
                        None => return,
                    }
                } else {
                    (stream, Bytes::new(), peer)
                };
                serve_connection(live, accepted, tls, limits, close_rx, slot).await;
            });
        }
        drop(self.listener);
        drop(close_rx);
        // In-flight requests finish; keep-alive connections close after them.
        let _ = close.send(true);
        if removed {
            // A reload removed this listener: its connections finish on their own.
            return;
        }
        let drain = self.live.limits.load().drain_timeout;
        if tokio::time::timeout(drain, close.closed()).await.is_err() {
            tracing::warn!(?drain, "drain timeout: closing remaining connections");
        }
    }
}

/// Close a connection refused by `max_connections`. A plain HTTP/1 client first gets a
/// short 503, written without reading its request (one non-blocking write: if the socket
/// cannot take it at once, the client just sees the close). TLS, PROXY-protocol and h2c
/// clients would not understand those bytes and only see the close.
fn refuse(stream: TcpStream, plain: bool) {
    if plain {
        let _ = stream.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n",
        );
    }
    drop(stream);
}

/// Rate-limited log of refused connections: one line per interval with the count.
#[derive(Default)]
struct Refusals {
    last_log: Option<std::time::Instant>,
    since: u64,
}

impl Refusals {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn log(&mut self, peer: SocketAddr) {
        self.since += 1;
        let due = match self.last_log {
            None => true,
            Some(t) => t.elapsed() >= Self::INTERVAL,
        };
        if due {
            tracing::warn!(
                %peer,
                refused = self.since,
                "limits.max_connections reached: refusing new connections"
            );
            self.last_log = Some(std::time::Instant::now());
            self.since = 0;
        }
    }
}

/// One client connection: TLS handshake if configured, then HTTP/1.1 or HTTP/2 until
/// the client leaves, goes idle, or the node drains.
async fn serve_connection(
    live: Arc<Live>,
    (stream, prefix, peer): (TcpStream, Bytes, SocketAddr),
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Arc<LimitsConfig>,
    close: watch::Receiver<bool>,
    slot: ConnectionSlot,
) {
    let activity = Activity::new();
    let idle = IdleIo::new(stream, prefix, activity.clone());
    let builder = http_builder(&limits, &activity);
    let flood = Arc::new(Flood::default());
    let guard_limits = GuardLimits {
        max_request_line: limits.max_uri_bytes + REQUEST_LINE_SLACK,
        control_frames_per_sec: limits.h2_max_control_frames_per_sec,
    };
    let client = ClientInfo {
        addr: peer,
        tls: tls.is_some(),
    };
    let in_flight = activity.clone();
    let metrics = live.shared.metrics.clone();
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if tunnel::may_upgrade(req.method(), req.headers()) {
            // A tunnel keeps the connection's slot; on HTTP/2, where the connection goes
            // on around it, also keeps the connection's idle timer from cutting it.
            let held = (slot.clone(), in_flight.hold());
            req.extensions_mut().insert(ConnectionSlot::new(held));
        }
        let proxy = live.proxy();
        let waiting = in_flight.begin();
        async move {
            let resp = proxy.handle(req, client).await;
            drop(waiting);
            Ok::<_, Infallible>(resp)
        }
    });
    let ends = Ends {
        close,
        flood: flood.clone(),
        activity: activity.clone(),
        idle: limits.idle_timeout,
        first_byte: limits.header_read_timeout,
        peer,
        metrics: metrics.clone(),
    };
    match tls {
        None => {
            let io = Guard::new(idle, guard_limits, activity.clone(), flood);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            ends.drive(conn).await;
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(idle)).await;
            let stream = match handshake {
                Ok(Ok(s)) => {
                    metrics.tls_handshake("ok");
                    s
                }
                Ok(Err(e)) => {
                    metrics.tls_handshake("failed");
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake("timeout");
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let io = Guard::new(stream, guard_limits, activity.clone(), flood);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            ends.drive(conn).await;
        }
    }
}

/// Past `drain_timeout`, how long shutdown waits for cut tunnels to be gone.
const TUNNEL_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Request bytes one HTTP/2 connection may send ahead of the node reading them.
const H2_CONNECTION_WINDOW: u32 = 1 << 20;

/// Bytes of an HTTP/1 request line beside its target (method, spaces, version).
const REQUEST_LINE_SLACK: usize = 1024;

/// How long a connection that flooded control frames gets to flush its GOAWAY.
const FLOOD_GRACE: Duration = Duration::from_secs(1);

/// What ends a connection besides the client: the node's drain, a control-frame flood,
/// and idleness.
struct Ends {
    close: watch::Receiver<bool>,
    flood: Arc<Flood>,
    activity: Arc<Activity>,
    idle: Duration,
    /// A new connection's first byte must arrive within this (`header_read_timeout`).
    first_byte: Duration,
    peer: SocketAddr,
    metrics: Arc<Metrics>,
}

impl Ends {
    /// Serve a connection until it ends, nothing has moved on it for `idle`, or it was
    /// asked to finish (drain: after its in-flight requests; flood: after `FLOOD_GRACE`).
    async fn drive<C>(mut self, conn: C)
    where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        let peer = self.peer;
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        let mut flooded = false;
        let cutoff = tokio::time::sleep(Duration::MAX);
        let mut cutoff = std::pin::pin!(cutoff);
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                    return;
                }
                _ = self.close.wait_for(|c| *c), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = self.flood.raised(), if !flooded => {
                    flooded = true;
                    closing = true;
                    self.metrics.h2_control_floods.inc();
                    tracing::warn!(%peer, "HTTP/2 control-frame flood: GOAWAY and close");
                    conn.as_mut().graceful_shutdown();
                    cutoff.as_mut().reset(tokio::time::Instant::now() + FLOOD_GRACE);
                }
                _ = &mut cutoff, if flooded => return,
                _ = self.activity.silent_for(self.first_byte) => {
                    tracing::debug!(%peer, "closing connection that sent nothing");
                    return;
                }
                _ = self.activity.idle_for(self.idle) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return;
                }
            }
        }
    }
}

fn http_builder(limits: &LimitsConfig, activity: &Arc<Activity>) -> auto::Builder<TokioExecutor> {
    // A head holds the request line and the header fields, each bounded on its own (414,
    // 431, checked by the guard and `reject_bad_request`); hyper's buffer fits both, so
    // its own blunt 431 for a full buffer is only the last resort.
    let head = limits.max_header_bytes + limits.max_uri_bytes + REQUEST_LINE_SLACK;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(HeadTimer(activity.clone()))
        .header_read_timeout(limits.header_read_timeout)
        // hyper refuses buffers below 8 KiB.
        .max_buf_size(head.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let stream_buffer = u32::try_from(limits.h2_stream_buffer).unwrap_or(u32::MAX);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        // h2 counts 32 bytes per field beside name and value, and :path among them.
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX))
        // What a stalled reader can make the node hold: per stream, at most this much
        // of a response is queued (hyper's default is 400 KiB); a client that never
        // opens its window costs h2_max_streams times this per connection.
        .max_send_buf_size(limits.h2_stream_buffer)
        // What a client can send ahead of the node reading it: per stream (as nginx's
        // 64 KiB preread), and for the whole connection 1 MiB (hyper's default, so a few
        // parallel uploads are not throttled to one window per round trip).
        .initial_stream_window_size(stream_buffer)
        .initial_connection_window_size(stream_buffer.max(H2_CONNECTION_WINDOW))
        .adaptive_window(false)
        // CVE-2023-44487 (rapid reset): streams reset by the client before they were
        // accepted; h2 sends GOAWAY past this many (its default, set deliberately).
        .max_pending_accept_reset_streams(20)
        // Streams the node had to reset for the client's protocol errors; past this
        // many the connection gets GOAWAY (h2's default is 1024).
        .max_local_error_reset_streams(256)
        // No server PINGs: they would count as activity and keep an idle connection
        // open for ever; the idle timer already closes connections where nothing moves.
        .keep_alive_interval(None)
        // RFC 8441: WebSockets over HTTP/2 (`proxy::tunnel`).
        .enable_connect_protocol();
    b
}

/// Longest PROXY header accepted: v1 is at most 107 bytes; v2 carries TLVs, bounded here.
const MAX_PROXY_HEADER: usize = 16 * 1024;

/// Read the PROXY protocol header that a TCP load balancer sends first. The client
/// address in it is believed only when the peer is a trusted proxy; a connection
/// without a valid header is closed (the listener was configured to expect one).
async fn read_proxy_header(
    mut stream: TcpStream,
    peer: SocketAddr,
    live: &Live,
    timeout: Duration,
) -> Option<(TcpStream, Bytes, SocketAddr)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(256);
    let read = async {
        loop {
            match crate::geo::parse_proxy_header(&buf) {
                Ok(Some((header, used))) => return Some((header, used)),
                Ok(None) if buf.len() < MAX_PROXY_HEADER => {}
                _ => return None,
            }
            let mut chunk = [0u8; 512];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let Ok(Some((header, used))) = tokio::time::timeout(timeout, read).await else {
        tracing::debug!(%peer, "no valid PROXY protocol header: closing");
        return None;
    };
    let proxy = live.proxy();
    let client = crate::geo::proxied_peer(peer, header.source, &proxy.settings().trusted_proxies);
    let rest = Bytes::copy_from_slice(buf.get(used..).unwrap_or_default());
    Some((stream, rest, client))
}
