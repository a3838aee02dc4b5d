//! Listeners and connections: accept with a connection limit, HTTP/1.1 and HTTP/2 (h2c
//! prior knowledge) on one port, header/idle timeouts, graceful drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cache::key::{KeyRules, QueryMode};
use crate::cache::policy::PolicyConfig;
use crate::cache::store::Store;
use crate::coalesce::Coalescer;
use crate::config::{self, Config, CookiePolicy, LimitsConfig};
use crate::origin::OriginPool;
use crate::proxy::{ClientInfo, Proxy, Settings};

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

/// A started node: its bound addresses and the handle to stop it.
pub struct Running {
    pub listen: Vec<SocketAddr>,
    /// The admin API's bound address, when `admin.enabled`.
    pub admin: Option<SocketAddr>,
    pub proxy: Arc<Proxy>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, let in-flight requests finish (bounded by `drain_timeout`), return.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Run until `signal` resolves, then shut down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// Build the request path's shared state from the config.
pub fn build_proxy(cfg: &Config) -> Result<Arc<Proxy>, StartError> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    metrics
        .cache_capacity
        .set(i64::try_from(cfg.cache.memory).unwrap_or(i64::MAX));
    let origins =
        OriginPool::new(&cfg.origin, &cfg.upstream, metrics.clone()).map_err(StartError::Config)?;
    let c = &cfg.cache;
    let policy = PolicyConfig {
        heuristic_fraction: c.heuristic_fraction,
        heuristic_max: c.heuristic_max,
        default_grace: c.default_grace,
        default_stale_if_error: c.default_stale_if_error,
        default_keep: c.default_keep,
        cookie_requests_pass: c.cookie_requests == CookiePolicy::Pass,
        surrogate_control: c.surrogate_control,
    };
    let key_rules = KeyRules {
        query: match c.key.query {
            config::QueryMode::Keep => QueryMode::Keep,
            config::QueryMode::Sort => QueryMode::Sort,
            config::QueryMode::Drop => QueryMode::Drop,
        },
        drop_params: c.key.drop_params.clone(),
        ignore_host: c.key.ignore_host,
    };
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
        cache_name: "lacquer".to_owned(),
        via,
        max_object_size: c.max_object_size,
        max_body: cfg.limits.max_body,
        body_read_timeout: cfg.limits.body_read_timeout,
        between_bytes_timeout: cfg.upstream.between_bytes_timeout,
        coalesce_timeout: c.coalesce_timeout,
        purge_allowed,
        access_log: cfg.log.access_log,
        trusted_proxies: cfg.client.trusted_cidrs(),
    };
    let geo = if cfg.geo.enabled {
        let geo = crate::geo::Geo::new(&cfg.geo, cfg.node.pop.as_deref(), Some(metrics.clone()))
            .map_err(StartError::Config)?;
        Some(geo)
    } else {
        None
    };
    Ok(Arc::new(Proxy {
        store: Store::new(c.memory, c.max_variants),
        coalescer: Coalescer::new(c.max_waiters, c.hit_for_miss_ttl),
        origins,
        policy,
        key_rules,
        settings,
        metrics,
        geo,
    }))
}

/// Bind every listener and start serving. Returns once the listeners are bound.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let proxy = build_proxy(&cfg)?;
    proxy.origins.spawn_health_checks();
    if let Some(geo) = &proxy.geo {
        geo.spawn_health_and_reload();
    }
    let (tx, rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(cfg.limits.max_connections.max(1)));
    let mut listen = Vec::new();
    let mut tasks = Vec::new();
    for l in &cfg.listen {
        let listener = TcpListener::bind(l.address)
            .await
            .map_err(|source| StartError::Bind {
                addr: l.address,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: l.address,
            source,
        })?;
        tracing::info!(%addr, "listening");
        listen.push(addr);
        let acceptor = Acceptor {
            listener,
            proxy: proxy.clone(),
            limits: cfg.limits.clone(),
            limit: limit.clone(),
            shutdown: rx.clone(),
        };
        tasks.push(tokio::spawn(acceptor.run()));
    }
    let admin = if cfg.admin.enabled {
        let (addr, task) = crate::admin::start(&cfg, proxy.clone(), rx.clone()).await?;
        tasks.push(task);
        Some(addr)
    } else {
        None
    };
    Ok(Running {
        listen,
        admin,
        proxy,
        shutdown: tx,
        tasks,
    })
}

struct Acceptor {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: LimitsConfig,
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Acceptor {
    async fn run(mut self) {
        let builder = Arc::new(http_builder(&self.limits));
        let graceful = GracefulShutdown::new();
        loop {
            let permit = tokio::select! {
                p = self.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = self.shutdown.changed() => break,
            };
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
            };
            let _ = stream.set_nodelay(true);
            let open = self.proxy.metrics.connection();
            let proxy = self.proxy.clone();
            let client = ClientInfo {
                addr: peer,
                tls: false,
            };
            let idle = IdleIo::new(stream);
            let activity = idle.activity.clone();
            let in_flight = activity.clone();
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                let waiting = in_flight.begin();
                async move {
                    let resp = proxy.handle(req, client).await;
                    drop(waiting);
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = builder
                .serve_connection(TokioIo::new(idle), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            let idle_timeout = self.limits.idle_timeout;
            tokio::spawn(async move {
                tokio::select! {
                    r = conn => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "connection ended with error");
                        }
                    }
                    _ = activity.idle_for(idle_timeout) => {
                        tracing::debug!(%peer, "closing idle connection");
                    }
                }
                drop(open);
                drop(permit);
            });
        }
        drop(self.listener);
        let drain = self.limits.drain_timeout;
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?drain, "drain timeout: closing remaining connections");
        }
    }
}

fn http_builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper refuses buffers below 8 KiB; the request line and headers share this bound.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// Last time bytes moved on a connection, in ms since `base`, and how many requests on
/// it are waiting for their response head.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicU64,
}

/// Marks a request as waiting for its response (a slow origin is not an idle client).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved either way for `idle`: bounds idle keep-alive
    /// connections, slowloris senders and clients that stop reading.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            let now = Instant::now();
            if now >= deadline && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            // Waiting on an origin (bounded by its own timeouts): look again later.
            let deadline = deadline.max(now + idle);
            tokio::time::sleep_until(deadline).await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A socket that records activity for the idle timer.
    struct IdleIo {
        #[pin]
        inner: TcpStream,
        activity: Arc<Activity>,
    }
}

impl IdleIo {
    fn new(inner: TcpStream) -> Self {
        IdleIo {
            inner,
            activity: Arc::new(Activity {
                base: Instant::now(),
                last_ms: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
            }),
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let r = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = r {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = r {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
