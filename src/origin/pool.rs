//! Keep-alive connections to one origin, over hyper's HTTP/1.1 client connection.
//!
//! Written here instead of using hyper-util's legacy client because that pool hides each
//! connection's fate, and we need it. HTTP/1.1 cannot tell which request a response
//! answers: an origin that sends an unrequested response (a late extra response, or bytes
//! beyond the response framing) shifts every later answer on that connection by one, and
//! a shifted answer looks like any other. hyper notices only afterwards, when bytes
//! arrive while nothing is outstanding, and fails the connection. Here that failure marks
//! the connection desynchronised; whatever was taken from it and kept (`Exchange`
//! hooks: the fetch purges what it stored) is undone, and it is never reused. Bytes that
//! reach an idle connection before hyper has looked are caught when the next request is
//! handed to it: that request comes back unsent and goes on a fresh connection (the
//! checkout test nginx's keepalive close handler does). It is also less work per miss
//! than the legacy pool.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower_service::Service;

use super::balance::InFlight;
use crate::body::ProxyBody;

/// Hooks kept per connection; a connection serves many requests, and only the most
/// recent ones can still be undone usefully.
const MAX_HOOKS: usize = 64;

/// How a connection is opened: plain TCP, or TCP then rustls.
#[derive(Clone, Debug)]
pub(super) enum Connector {
    Plain(HttpConnector),
    Tls(HttpsConnector<HttpConnector>),
}

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("{0}")]
    Request(#[source] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_) | SendError::Handshake(_))
    }
}

type Hook = Box<dyn FnOnce() + Send>;

/// One connection's state, shared by the pool, its driver task and its responses.
struct ConnState {
    desynced: AtomicBool,
    hooks: Mutex<VecDeque<Hook>>,
}

impl ConnState {
    fn desync(&self) {
        if self.desynced.swap(true, Ordering::AcqRel) {
            return;
        }
        let hooks = std::mem::take(&mut *lock(&self.hooks));
        tracing::warn!(
            undone = hooks.len(),
            "origin connection desynchronised (bytes no request asked for): closed, responses taken from it undone"
        );
        for h in hooks {
            h();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The origin connection a response came from (in the response's extensions).
#[derive(Clone)]
pub struct Exchange(Arc<ConnState>);

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

impl Exchange {
    pub fn of(extensions: &http::Extensions) -> Option<Exchange> {
        extensions.get::<Exchange>().cloned()
    }

    /// Run `undo` if this connection turns out (or has already turned out) to be
    /// desynchronised, i.e. the response may have answered another request.
    pub fn on_desync(&self, undo: impl FnOnce() + Send + 'static) {
        if self.0.desynced.load(Ordering::Acquire) {
            undo();
            return;
        }
        let mut hooks = lock(&self.0.hooks);
        if hooks.len() >= MAX_HOOKS {
            hooks.pop_front();
        }
        hooks.push_back(Box::new(undo));
        drop(hooks);
        // Desynchronised while we queued: run what is there now.
        if self.0.desynced.load(Ordering::Acquire) {
            for h in std::mem::take(&mut *lock(&self.0.hooks)) {
                h();
            }
        }
    }
}

struct Idle {
    tx: SendRequest<ProxyBody>,
    state: Arc<ConnState>,
    since: Instant,
}

/// The pool for one origin.
pub(super) struct ConnPool {
    connector: Connector,
    /// scheme://authority, what the connector dials.
    target: Uri,
    authority: HeaderValue,
    idle: Mutex<VecDeque<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl ConnPool {
    pub(super) fn new(
        connector: Connector,
        target: Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>, String> {
        let authority = target
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or_else(|| format!("origin {target}: no authority"))?;
        Ok(Arc::new(ConnPool {
            connector,
            target,
            authority,
            idle: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout,
        }))
    }

    /// Close idle connections past the idle timeout, every so often, until the pool is
    /// dropped.
    pub(super) fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every =
            (self.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = weak.upgrade() else { return };
                let mut idle = lock(&pool.idle);
                idle.retain(|c| pool.reusable(c));
            }
        });
    }

    fn reusable(&self, c: &Idle) -> bool {
        !c.tx.is_closed()
            && !c.state.desynced.load(Ordering::Acquire)
            && c.since.elapsed() < self.idle_timeout
    }

    /// Send `req` (its URI is replaced by the origin-form target) on an idle connection
    /// or a new one. `in_flight` is held until the exchange is over: dropped with this
    /// future, or once the response body has been read or abandoned.
    pub(super) async fn request(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        in_flight: Option<InFlight>,
    ) -> Result<Response<Incoming>, SendError> {
        self.origin_form(&mut req);
        if let Some(mut idle) = self.checkout() {
            match idle.tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.sent(resp, idle.tx, idle.state, in_flight)),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed (or was found desynchronised)
                    // as we picked it; a fresh one is safe for any method.
                    Some(back) => {
                        let cause = std::error::Error::source(e.error())
                            .and_then(|c| c.downcast_ref::<hyper::Error>());
                        if cause.is_some_and(is_desync) {
                            idle.state.desync();
                        }
                        req = back;
                    }
                    None => return Err(SendError::Request(e.into_error())),
                },
            }
        }
        let (mut tx, state) = self.connect().await?;
        match tx.try_send_request(req).await {
            Ok(resp) => Ok(self.sent(resp, tx, state, in_flight)),
            Err(e) => Err(SendError::Request(e.into_error())),
        }
    }

    /// The request as an origin server takes it: origin-form target, Host set.
    fn origin_form(&self, req: &mut Request<ProxyBody>) {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, self.authority.clone());
        }
    }

    /// Send an upgrade request (`Upgrade: websocket`) on a connection of its own: after
    /// a 101 the connection carries the upgraded protocol (`hyper::upgrade::on` on the
    /// response), and otherwise it is closed after the response, never pooled.
    pub(super) async fn upgrade(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        self.origin_form(&mut req);
        let (mut tx, _) = self.connect_with(true).await?;
        tx.try_send_request(req)
            .await
            .map_err(|e| SendError::Request(e.into_error()))
    }

    fn checkout(&self) -> Option<Idle> {
        let mut idle = lock(&self.idle);
        // Most recent first: it is the least likely to have been closed by the origin.
        while let Some(c) = idle.pop_back() {
            if self.reusable(&c) && c.tx.is_ready() {
                return Some(c);
            }
        }
        None
    }

    /// Tag the response with its connection. Once its dispatcher wants another request
    /// (the response body has been read) or fails (the body was dropped unread, the
    /// connection broke), the exchange is over: `in_flight` is released and the
    /// connection pooled if it can be reused.
    fn sent(
        self: &Arc<Self>,
        mut resp: Response<Incoming>,
        mut tx: SendRequest<ProxyBody>,
        state: Arc<ConnState>,
        in_flight: Option<InFlight>,
    ) -> Response<Incoming> {
        resp.extensions_mut().insert(Exchange(state.clone()));
        if self.max_idle == 0 && in_flight.is_none() {
            return resp;
        }
        let weak: Option<Weak<Self>> = (self.max_idle > 0).then(|| Arc::downgrade(self));
        tokio::spawn(async move {
            let ready = tx.ready().await;
            drop(in_flight);
            if ready.is_err() {
                return;
            }
            let Some(pool) = weak.and_then(|w| w.upgrade()) else {
                return;
            };
            let c = Idle {
                tx,
                state,
                since: Instant::now(),
            };
            if !pool.reusable(&c) {
                return;
            }
            let mut idle = lock(&pool.idle);
            if idle.len() >= pool.max_idle {
                // The oldest idle connection makes room.
                idle.pop_front();
            }
            idle.push_back(c);
        });
        resp
    }

    async fn connect(&self) -> Result<(SendRequest<ProxyBody>, Arc<ConnState>), SendError> {
        self.connect_with(false).await
    }

    async fn connect_with(
        &self,
        upgrades: bool,
    ) -> Result<(SendRequest<ProxyBody>, Arc<ConnState>), SendError> {
        let state = Arc::new(ConnState {
            desynced: AtomicBool::new(false),
            hooks: Mutex::new(VecDeque::new()),
        });
        let tx = match &self.connector {
            Connector::Plain(c) => {
                let io = c
                    .clone()
                    .call(self.target.clone())
                    .await
                    .map_err(|e| SendError::Connect(Box::new(e)))?;
                handshake(io, state.clone(), upgrades).await?
            }
            Connector::Tls(c) => {
                let io = c
                    .clone()
                    .call(self.target.clone())
                    .await
                    .map_err(SendError::Connect)?;
                handshake(io, state.clone(), upgrades).await?
            }
        };
        Ok((tx, state))
    }
}

async fn handshake<T>(
    io: T,
    state: Arc<ConnState>,
    upgrades: bool,
) -> Result<SendRequest<ProxyBody>, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(SendError::Handshake)?;
    if upgrades {
        // Resolves once the connection is handed to the upgrade (101) or closed.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "origin upgrade connection failed");
            }
        });
        return Ok(tx);
    }
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            if is_desync(&e) {
                state.desync();
            } else {
                tracing::debug!(error = %e, "origin connection failed");
            }
        }
    });
    Ok(tx)
}

/// hyper's "received unexpected message from connection": bytes while no request was
/// outstanding, or beyond the framing of the last response. It has no predicate, so it
/// is told apart from the errors that do: I/O, parse, incomplete message, cancellation.
fn is_desync(e: &hyper::Error) -> bool {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    !(io || e.is_parse()
        || e.is_incomplete_message()
        || e.is_canceled()
        || e.is_closed()
        || e.is_timeout()
        || e.is_user()
        || e.is_shutdown()
        || e.is_body_write_aborted())
}
