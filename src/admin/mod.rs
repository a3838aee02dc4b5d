//! The admin API (DESIGN.md §4) on a listener of its own: purge, push, inspect,
//! pre-warm, health, readiness and metrics, as JSON over HTTP/1.1.
//!
//! - `auth`: bearer token, constant-time comparison
//! - `input`: bounded bodies, strict JSON, query parameters
//! - `purge`, `objects` (push and inspect), `prewarm` (background jobs)
//! - `error`: the `{"error": "..."}` answers

pub mod auth;
pub mod cluster_job;
pub mod error;
pub mod global;
pub mod input;
pub mod objects;
pub mod prewarm;
pub mod purge;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::proxy::Proxy;
use crate::server::Live;
use crate::server::StartError;
use auth::Auth;
use error::{json, with_type, ApiError, ApiResult, Body};

/// Admin clients are operators and scripts, not crowds.
const MAX_CONNECTIONS: usize = 128;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for a request line carrying a long `url=` (operator URLs go up to 64 KiB).
const MAX_HEAD_BYTES: usize = 160 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by every admin call.
pub struct Admin {
    live: Arc<Live>,
    auth: Auth,
    node: String,
    max_body: u64,
    jobs: Arc<prewarm::Jobs>,
    cluster_jobs: cluster_job::ClusterJobs,
}

/// Bind the admin listener and serve it until `shutdown` turns true. Returns the
/// bound address (the configured one may be port 0) and the serving task.
pub async fn start(
    cfg: &Config,
    live: Arc<Live>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let a = &cfg.admin;
    let token = a
        .read_token()
        .map_err(|e| StartError::Config(format!("admin.token_file: {e}")))?;
    let listener = TcpListener::bind(a.address)
        .await
        .map_err(|source| StartError::Bind {
            addr: a.address,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: a.address,
        source,
    })?;
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "admin API without a token on a non-loopback address: anyone who can reach it can purge and push");
    }
    tracing::info!(%addr, token = token.is_some(), "admin API listening");
    let admin = Arc::new(Admin {
        jobs: live.prewarm_jobs(),
        live,
        auth: Auth::new(token, a.open.clone()),
        node: cfg.node.name.clone(),
        max_body: a.max_body,
        cluster_jobs: cluster_job::ClusterJobs::default(),
    });
    Ok((addr, tokio::spawn(admin.serve(listener, shutdown))))
}

impl Admin {
    /// The request path in force now (a reload swaps it).
    fn proxy(&self) -> Arc<Proxy> {
        self.live.proxy()
    }

    /// `PUT /objects`: store here; with `scope=cluster`, also on the owning shard (and,
    /// with `edges=true`, in every edge's cache). Peers get the push with node scope, so
    /// it is never fanned out twice.
    async fn push(&self, parts: &http::request::Parts, body: bytes::Bytes) -> ApiResult {
        let proxy = self.proxy();
        let query = parts.uri.query().unwrap_or("");
        let flag =
            |name: &str, value: &str| query.split('&').any(|p| p == format!("{name}={value}"));
        if flag("scope", "global") {
            return global::push(self.live.control(), &proxy, parts, body).await;
        }
        let (true, Some(cluster)) = (flag("scope", "cluster"), proxy.cluster().cloned()) else {
            return objects::push(&proxy, parts, body);
        };
        let edges = flag("edges", "true");
        let key = objects::push_key(parts, &proxy)?;
        let forwarded: String = query
            .split('&')
            .filter(|p| !p.starts_with("scope=") && !p.starts_with("edges="))
            .collect::<Vec<_>>()
            .join("&");
        let pq = http::uri::PathAndQuery::try_from(format!("/objects?{forwarded}"))
            .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
        let mut headers = parts.headers.clone();
        headers.remove(http::header::AUTHORIZATION);
        let acks = cluster
            .push(key.hash, pq, headers, body.clone(), edges)
            .await;
        let local = if cluster.owner_is_self(key.hash) || edges {
            Some(objects::push(&proxy, parts, body))
        } else {
            None
        };
        let (local_status, local_answer) = match local {
            Some(Ok(resp)) => (resp.status().as_u16(), "stored"),
            Some(Err(e)) => return Err(e),
            None => (0, "not the owner: not stored here"),
        };
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "scope": "cluster",
                "node": self.node,
                "local": { "status": local_status, "result": local_answer },
                "nodes": acks,
            }),
        ))
    }

    /// `POST /prewarm`: here, or with `"scope": "cluster"` on each URL's owning shard
    /// (and every edge with `"edges": true`); peers get node-scope jobs.
    async fn prewarm(&self, body: &[u8]) -> ApiResult {
        let proxy = self.proxy();
        let req: prewarm::PrewarmRequest = input::parse_json(body)?;
        if req.scope.as_deref() == Some("global") {
            return global::prewarm(self.live.control(), &proxy, req).await;
        }
        let Some(cluster) = proxy
            .cluster()
            .cloned()
            .filter(|_| req.scope.as_deref() == Some("cluster"))
        else {
            return self.jobs.start(&proxy, body);
        };
        prewarm::check_request(&req, &|u| proxy.key_for_url(u))?;
        let pairs: Vec<(String, u128)> = req
            .urls
            .iter()
            .filter_map(|u| proxy.key_for_url(u).ok().map(|k| (u.clone(), k.hash)))
            .collect();
        let (mut local, acks) = cluster.prewarm(&pairs, req.concurrency, req.edges).await;
        if req.edges && cluster.role() == crate::config::Role::Edge {
            // This edge is one of "every edge": warm all of it here too (through the
            // owning shards, so the origin still sees one fetch per URL).
            local = req.urls.clone();
        }
        let local_job = if local.is_empty() {
            None
        } else {
            Some(self.jobs.start_urls(&proxy, local, req.concurrency)?.0)
        };
        // One id for the whole: `GET /prewarm/{id}` sums the parts' progress.
        let id = self.cluster_jobs.register(&self.jobs, local_job, &acks);
        Ok(json(
            StatusCode::ACCEPTED,
            &serde_json::json!({
                "scope": "cluster",
                "node": self.node,
                "id": id,
                "local_id": local_job,
                "total": req.urls.len(),
                "nodes": acks,
            }),
        ))
    }

    /// `GET` / `DELETE /prewarm/{id}`: a job of this node, or a cluster job's sum.
    async fn prewarm_job(&self, id: &str, method: Method) -> ApiResult {
        let proxy = self.proxy();
        match (self.cluster_jobs.find(id), proxy.cluster()) {
            (Some(job), Some(cluster)) => Ok(json(
                StatusCode::OK,
                &job.view(&self.node, &self.jobs, cluster, method).await,
            )),
            _ if method == Method::DELETE => self.jobs.cancel(id),
            _ => self.jobs.status(id),
        }
    }

    async fn serve(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES);
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let admin = self.clone();
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.handle(req, peer).await) }
            });
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "admin connection ended with error");
                }
                drop(permit);
            });
        }
        drop(listener);
        self.jobs.cancel_all();
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    }

    /// One call: route, authenticate, run, and log it with the caller and outcome.
    async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (resp, error) = match self.dispatch(req).await {
            Ok(resp) => (resp, None),
            Err(e) => (e.clone().into_response(), Some(e.message)),
        };
        tracing::info!(
            target: "lacquer::admin",
            client = %peer,
            method = %method,
            path = %path,
            status = resp.status().as_u16(),
            error = error.as_deref().unwrap_or(""),
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "admin call"
        );
        resp
    }

    async fn dispatch(self: &Arc<Self>, req: Request<Incoming>) -> ApiResult {
        let route = Route::parse(req.method(), req.uri().path());
        self.auth.check(route.open_name(), req.headers())?;
        let (parts, body) = req.into_parts();
        match route {
            Route::Health => Ok(json(StatusCode::OK, &Status { status: "ok" })),
            Route::Ready => global::unready(self.live.control())
                .unwrap_or_else(|| Ok(json(StatusCode::OK, &Status { status: "ready" }))),
            Route::Control => Ok(json(
                StatusCode::OK,
                &self.live.control().status(&self.node).await,
            )),
            Route::Metrics => Ok(self.metrics()),
            Route::Purge => {
                let body = input::read_body(body, &parts.headers, self.max_body).await?;
                if purge::requested_scope(&body)? == purge::Scope::Global {
                    return global::purge(self.live.control(), &self.proxy(), &body).await;
                }
                purge::purge(&self.proxy(), &self.node, &body).await
            }
            Route::Cluster => match self.proxy().cluster() {
                Some(c) => Ok(json(StatusCode::OK, &c.status_json())),
                None => Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({"node": self.node, "enabled": false}),
                )),
            },
            Route::PushObject => {
                let body = input::read_body(body, &parts.headers, self.max_body).await?;
                self.push(&parts, body).await
            }
            Route::InspectObject => objects::inspect(&self.proxy(), &self.node, &parts),
            Route::Explain => {
                let q = input::Query::parse(parts.uri.query(), &["url", "method"])?;
                let url = q.required("url")?;
                let method = q.get("method").unwrap_or("GET");
                let proxy = self.proxy();
                crate::site::explain::explain(proxy.sites(), url, method)
                    .map(|v| json(StatusCode::OK, &v))
                    .map_err(ApiError::bad_request)
            }
            Route::StartPrewarm => {
                let body = input::read_body(body, &parts.headers, self.max_body).await?;
                self.prewarm(&body).await
            }
            Route::PrewarmStatus(id) => self.prewarm_job(&id, Method::GET).await,
            Route::CancelPrewarm(id) => self.prewarm_job(&id, Method::DELETE).await,
            Route::Reload => {
                drop(body);
                match self.live.reload_from_source().await {
                    Ok(note) => Ok(json(
                        StatusCode::OK,
                        &Reloaded {
                            status: "reloaded",
                            note,
                        },
                    )),
                    // The running config stays; say why the new one was refused.
                    Err(e) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
                }
            }
            Route::Refused(e) => Err(e),
        }
    }

    /// Every lacquer metric, in the Prometheus text format.
    fn metrics(&self) -> Response<Body> {
        // moka counts lazily; settle pending work so the numbers are current.
        self.proxy().cache().run_pending_tasks();
        with_type(
            StatusCode::OK,
            self.proxy().metrics_text().into_bytes(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

#[derive(Serialize)]
struct Reloaded {
    status: &'static str,
    note: String,
}

/// What a method and path ask for. Unknown paths and wrong methods are routes too, so
/// they pass through authentication first: an anonymous caller learns nothing.
#[derive(Debug, PartialEq)]
enum Route {
    Health,
    Ready,
    Metrics,
    Cluster,
    /// `GET /control`: the control plane across PoPs.
    Control,
    Purge,
    PushObject,
    InspectObject,
    /// `GET /route?url=`: the site, origin group, rules and key a URL gets.
    Explain,
    StartPrewarm,
    PrewarmStatus(String),
    CancelPrewarm(String),
    Reload,
    Refused(ApiError),
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let m = method.clone();
        match path {
            "/health" => only(&m, "GET", Route::Health),
            "/ready" => only(&m, "GET", Route::Ready),
            "/metrics" => only(&m, "GET", Route::Metrics),
            "/purge" => only(&m, "POST", Route::Purge),
            "/cluster" => only(&m, "GET", Route::Cluster),
            "/control" => only(&m, "GET", Route::Control),
            "/route" => only(&m, "GET", Route::Explain),
            "/reload" => only(&m, "POST", Route::Reload),
            "/prewarm" => only(&m, "POST", Route::StartPrewarm),
            "/objects" => match m {
                Method::GET => Route::InspectObject,
                Method::PUT => Route::PushObject,
                _ => Route::Refused(ApiError::method_not_allowed("GET, PUT")),
            },
            _ => match path.strip_prefix("/prewarm/") {
                Some(id) if !id.is_empty() && !id.contains('/') => match m {
                    Method::GET => Route::PrewarmStatus(id.to_owned()),
                    Method::DELETE => Route::CancelPrewarm(id.to_owned()),
                    _ => Route::Refused(ApiError::method_not_allowed("GET, DELETE")),
                },
                _ => Route::Refused(ApiError::not_found(format!(
                    "no admin endpoint {path:?} (see /purge, /objects, /prewarm, /route, /cluster, /control, /health, /ready, /metrics)"
                ))),
            },
        }
    }

    /// The name `admin.open` may list for this route.
    fn open_name(&self) -> Option<&'static str> {
        match self {
            Route::Health => Some("health"),
            Route::Ready => Some("ready"),
            Route::Metrics => Some("metrics"),
            _ => None,
        }
    }
}

fn only(method: &Method, wanted: &'static str, route: Route) -> Route {
    if method.as_str() == wanted {
        route
    } else {
        Route::Refused(ApiError::method_not_allowed(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse(&Method::GET, "/health"), Route::Health);
        assert_eq!(Route::parse(&Method::POST, "/purge"), Route::Purge);
        assert_eq!(Route::parse(&Method::PUT, "/objects"), Route::PushObject);
        assert_eq!(
            Route::parse(&Method::DELETE, "/prewarm/7"),
            Route::CancelPrewarm("7".into())
        );
        let status = |m: &Method, p: &str| match Route::parse(m, p) {
            Route::Refused(e) => Some(e.status),
            _ => None,
        };
        assert_eq!(
            status(&Method::GET, "/purge"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status(&Method::POST, "/objects"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(status(&Method::GET, "/nope"), Some(StatusCode::NOT_FOUND));
        assert_eq!(
            status(&Method::GET, "/prewarm/"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(&Method::GET, "/prewarm/1/x"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(&Method::GET, "/health/"),
            Some(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn only_health_ready_metrics_can_be_open() {
        assert_eq!(Route::Metrics.open_name(), Some("metrics"));
        assert_eq!(Route::Purge.open_name(), None);
        assert_eq!(Route::Refused(ApiError::not_found("x")).open_name(), None);
    }
}
