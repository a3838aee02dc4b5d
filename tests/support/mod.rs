//! Test support: a scriptable origin, a lacquer node, and clients — all on real loopback
//! sockets. Every helper bounds its own time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use lacquer::config::Config;
pub use lacquer::server::Running;

/// Fail the test instead of hanging: every test body runs under this bound.
pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test exceeded its {secs}s bound"),
    }
}

/// What the origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn cc(self, v: &str) -> Self {
        self.header("cache-control", v)
    }
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }
}

/// The request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Handler = Arc<dyn Fn(&Seen, u64) -> Reply + Send + Sync>;

const MODE_NORMAL: u8 = 0;
const MODE_503: u8 = 1;
const MODE_HANG: u8 = 2;

/// A scriptable origin on 127.0.0.1 that counts requests per path.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<AtomicU8>,
    task: JoinHandle<()>,
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Origin {
    pub async fn start(handler: impl Fn(&Seen, u64) -> Reply + Send + Sync + 'static) -> Origin {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Arc::new(handler)).await
    }

    pub async fn start_on(addr: SocketAddr, handler: Handler) -> Origin {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mode = Arc::new(AtomicU8::new(MODE_NORMAL));
        let (s2, m2) = (seen.clone(), mode.clone());
        let (stopped, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, mode, handler) = (s2.clone(), m2.clone(), handler.clone());
                let mut stop_rx = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (seen, mode, handler) = (seen.clone(), mode.clone(), handler.clone());
                        async move { Ok::<_, Infallible>(serve(req, &seen, &mode, &handler).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let stop = async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    };
                    tokio::select! {
                        _ = conn => {}
                        _ = stop => {}
                    }
                });
            }
        });
        Origin {
            addr,
            seen,
            mode,
            task,
            stopped,
        }
    }

    /// Requests seen for a path (path without query).
    pub fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }
    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
    /// Answer every request with 503.
    pub fn fail_503(&self) {
        self.mode.store(MODE_503, Ordering::SeqCst);
    }
    /// Never answer.
    pub fn hang(&self) {
        self.mode.store(MODE_HANG, Ordering::SeqCst);
    }
    pub fn heal(&self) {
        self.mode.store(MODE_NORMAL, Ordering::SeqCst);
    }
    /// Stop listening (connections are refused afterwards; open ones are dropped).
    pub fn stop(&self) {
        self.task.abort();
        let _ = self.stopped.send(true);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    req: Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
    mode: &AtomicU8,
    handler: &Handler,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let s = Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    };
    let n = {
        let mut v = seen.lock().unwrap();
        v.push(s.clone());
        v.iter().filter(|x| x.path == s.path).count() as u64
    };
    match mode.load(Ordering::SeqCst) {
        MODE_503 => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"origin down")));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return r;
        }
        MODE_HANG => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    let reply = handler(&s, n);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut r = Response::new(Full::new(reply.body));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (k, v) in reply.headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    r
}

/// A config for a node in front of `origins`, on an ephemeral loopback port; quiet logs.
pub fn config(origins: &[SocketAddr]) -> Config {
    let list: Vec<String> = origins.iter().map(|a| a.to_string()).collect();
    let mut cfg = Config::quick("127.0.0.1:0".parse().unwrap(), &list).unwrap();
    cfg.log.access_log = false;
    cfg.admin.address = "127.0.0.1:0".parse().unwrap();
    for o in &mut cfg.origin {
        o.health.enabled = false;
    }
    cfg
}

pub async fn start(cfg: Config) -> Node {
    let running = lacquer::server::start(cfg).await.unwrap();
    let addr = running.listen[0];
    Node {
        running: Some(running),
        addr,
        client: client(),
    }
}

/// A started lacquer node and an HTTP/1.1 client for it.
pub struct Node {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// This node's `Cache-Status` entry: the last one (RFC 9211: upstream caches'
    /// entries come first).
    pub fn cache_status(&self) -> &str {
        let all = self.header("cache-status").unwrap_or("");
        all.rsplit(", ").next().unwrap_or(all)
    }
    /// Every cache's `Cache-Status` entry, upstream first.
    pub fn cache_statuses(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
    /// Served from this node's cache without going upstream.
    pub fn is_hit(&self) -> bool {
        self.cache_status()
            .split(';')
            .nth(1)
            .is_some_and(|p| p.trim() == "hit")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

impl Node {
    pub async fn get(&self, path: &str) -> Got {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Got {
        send(&self.client, self.addr, method, path, headers, body).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Got {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).unwrap();
    let resp = within(30, client.request(req)).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = within(30, body.collect()).await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Send raw bytes, read until the server closes or `secs` pass; returns what came back.
pub async fn raw(addr: SocketAddr, bytes: &[u8], secs: u64) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(secs), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts by key, for herd results.
pub fn tally<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// What a [`RawOrigin`] does after writing its reply bytes for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterReply {
    /// Close the connection.
    Close,
    /// Keep the connection open and answer the next request on it.
    KeepAlive,
    /// Keep the connection open and never write again.
    Hang,
}

type RawHandler = Arc<dyn Fn(&str, u64) -> (Vec<u8>, AfterReply) + Send + Sync>;

/// An origin that writes exactly the bytes it is given: for malformed responses that a
/// real HTTP server library would refuse to produce. It reads each request head (GET
/// requests from a cache carry no body), records it, and answers with `handler(head, n)`,
/// `n` counting requests from 1.
pub struct RawOrigin {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl RawOrigin {
    pub async fn start(
        handler: impl Fn(&str, u64) -> (Vec<u8>, AfterReply) + Send + Sync + 'static,
    ) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let handler: RawHandler = Arc::new(handler);
        let h2 = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(raw_origin_conn(stream, h2.clone(), handler.clone()));
            }
        });
        RawOrigin { addr, heads, task }
    }

    /// Request heads received so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    pub fn total(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next request head on `s` (bytes read past it stay in `buf`); None when the peer
/// closes, errors or sends more than 1 MiB without ending a head.
pub async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    Some(head)
}

async fn raw_origin_conn(mut s: TcpStream, heads: Arc<Mutex<Vec<String>>>, handler: RawHandler) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut s, &mut buf).await {
        let n = {
            let mut v = heads.lock().unwrap();
            v.push(head.clone());
            v.len() as u64
        };
        let (reply, after) = handler(&head, n);
        if s.write_all(&reply).await.is_err() {
            return;
        }
        let _ = s.flush().await;
        match after {
            AfterReply::Close => {
                let _ = s.shutdown().await;
                return;
            }
            AfterReply::KeepAlive => {}
            AfterReply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        }
    }
}

/// Number of HTTP/1.x status lines in a raw response stream.
pub fn response_count(raw: &str) -> usize {
    raw.split('\n')
        .filter(|line| line.starts_with("HTTP/1.1 ") || line.starts_with("HTTP/1.0 "))
        .count()
}

// ---- admin API helpers ----

/// A unique path under the system temp dir (removed by the caller if it matters).
pub fn temp_path(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("lacquer-test-{}-{n}-{name}", std::process::id()))
}

/// `config` with the admin API on an ephemeral loopback port and, with `token`, a
/// token file holding it.
pub fn admin_config(origins: &[SocketAddr], token: Option<&str>) -> Config {
    let mut cfg = config(origins);
    cfg.admin.enabled = true;
    cfg.admin.address = "127.0.0.1:0".parse().unwrap();
    if let Some(t) = token {
        let path = temp_path("token");
        std::fs::write(&path, format!("{t}\n")).unwrap();
        cfg.admin.token_file = Some(path);
    }
    cfg
}

impl Node {
    pub fn admin_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .unwrap()
            .admin
            .expect("admin API enabled")
    }

    /// An admin call, with `Authorization: Bearer <token>` when a token is given.
    pub async fn admin(&self, method: Method, path: &str, token: Option<&str>, body: &str) -> Got {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        send(
            &self.client,
            self.admin_addr(),
            method,
            path,
            &headers,
            Bytes::from(body.to_owned()),
        )
        .await
    }

    /// The absolute URL of `path` on this node's public listener, as a purge names it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// An admin call that must answer 200, and its JSON.
pub async fn admin_call(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: &str,
) -> serde_json::Value {
    let got = send(
        &client(),
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        bytes::Bytes::from(body.to_owned()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    serde_json::from_slice(&got.body).unwrap()
}
