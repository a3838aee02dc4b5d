//! Admin fan-out to peers: purges to every node, pushes and pre-warms to the owning
//! shard (and optionally every edge). Each delivery is bounded in time and retried a
//! bounded number of times.
//!
//! Purges are also written to a bounded in-memory log with sequence numbers, and each
//! peer's highest contiguously delivered sequence is tracked. A peer that missed
//! purges (down, partitioned, timing out) is sent them again, in order, once its health
//! check passes; purges are idempotent, so a duplicate is harmless. If it missed more
//! than the log holds, it is sent one `{"all": true}` purge instead: emptier is safe,
//! stale is not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::peers::{Peer, Transition};
use super::Cluster;
use crate::body::ProxyBody;
use crate::config::PeerRole;

/// Largest peer answer read; admin answers are small JSON documents.
const MAX_ANSWER: usize = 1 << 20;
/// First pause before a retry; doubles with each attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// One peer's answer to a fan-out call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeAck {
    pub node: String,
    pub ok: bool,
    pub latency_ms: u64,
    /// For a purge: the peer's `total` (URLs and objects it purged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<Value>,
    /// For a push or a pre-warm: the peer's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a purge: not delivered yet, and kept in the purge log for this peer, which
    /// is sent it when its health check passes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl NodeAck {
    fn failed(node: &str, latency_ms: u64, error: String) -> NodeAck {
        NodeAck {
            node: node.to_string(),
            ok: false,
            latency_ms,
            purged: None,
            answer: None,
            error: Some(error),
            pending: false,
        }
    }

    fn pending(node: &str, latency_ms: u64, error: String) -> NodeAck {
        NodeAck {
            pending: true,
            ..NodeAck::failed(node, latency_ms, error)
        }
    }
}

/// One purge in the log.
struct Logged {
    seq: u64,
    body: Arc<Value>,
    /// Its live fan-out is over. A catch-up does not resend a purge that is still
    /// being delivered: that would send most peers everything twice.
    settled: AtomicBool,
}

/// The last purges sent, for peers that missed them.
pub(crate) struct PurgeLog {
    /// Sequence number of the newest entry; 0 before the first purge.
    head: u64,
    entries: VecDeque<Arc<Logged>>,
    capacity: usize,
}

/// What a peer that acknowledged up to some sequence still needs.
enum Missed {
    Entries(Vec<Arc<Logged>>),
    /// Older purges than the log holds: only a purge of everything is safe.
    TooMany {
        head: u64,
    },
}

impl PurgeLog {
    pub(crate) fn new(capacity: usize) -> PurgeLog {
        PurgeLog {
            head: 0,
            entries: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// A log holding `entries` (oldest first, as a journal or an earlier view kept
    /// them), whose newest sequence number is `head`.
    pub(crate) fn restored(capacity: usize, head: u64, entries: Vec<(u64, Value)>) -> PurgeLog {
        let mut log = PurgeLog::new(capacity);
        log.head = head;
        let skip = entries.len().saturating_sub(log.capacity);
        log.entries = entries
            .into_iter()
            .skip(skip)
            .map(|(seq, body)| {
                Arc::new(Logged {
                    seq,
                    body: Arc::new(body),
                    settled: AtomicBool::new(true),
                })
            })
            .collect();
        log
    }

    /// The entries, oldest first, for a journal rewrite or a new view of the cluster.
    pub(crate) fn entries(&self) -> Vec<(u64, Value)> {
        self.entries
            .iter()
            .map(|e| (e.seq, Value::clone(&e.body)))
            .collect()
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    fn append(&mut self, body: Arc<Value>) -> Arc<Logged> {
        self.head += 1;
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        let entry = Arc::new(Logged {
            seq: self.head,
            body,
            settled: AtomicBool::new(false),
        });
        self.entries.push_back(entry.clone());
        entry
    }

    fn since(&self, acked: u64) -> Missed {
        match self.entries.front() {
            Some(oldest) if oldest.seq > acked.saturating_add(1) => {
                Missed::TooMany { head: self.head }
            }
            None if acked < self.head => Missed::TooMany { head: self.head },
            _ => Missed::Entries(
                self.entries
                    .iter()
                    .filter(|e| e.seq > acked)
                    .cloned()
                    .collect(),
            ),
        }
    }
}

/// A call to one peer's admin API.
struct AdminCall {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    body: Bytes,
}

/// The purge as a peer must receive it: applied there only, never fanned out again.
fn node_scoped(mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.insert("scope".into(), Value::String("node".into()));
    }
    body
}

impl Cluster {
    pub(crate) fn log(&self) -> std::sync::MutexGuard<'_, PurgeLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Purges the log holds now.
    pub fn purge_log_len(&self) -> usize {
        self.log().entries.len()
    }

    /// Sequence number of the newest purge in the log (0: none yet).
    pub fn purge_head(&self) -> u64 {
        self.log().head
    }

    /// Peers that get fan-out: everyone but this node.
    fn remote_peers(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.peers.iter().filter(|p| !p.is_self)
    }

    /// `POST /purge` to every other node, concurrently. `body` is the purge request
    /// as the admin API takes it; its `scope` is forced to `"node"`. Peers marked down
    /// are not waited for: they get the purge when they come back. The local node is
    /// not included; the caller purges it and adds its own entry.
    pub async fn purge_all_nodes(&self, body: Value) -> Vec<NodeAck> {
        let body = Arc::new(node_scoped(body));
        let entry = {
            // Appended to the journal under the log's lock, so that the file's lines
            // are in sequence order whatever the concurrency of purges.
            let mut log = self.log();
            let entry = log.append(body.clone());
            if let Some(journal) = &self.journal {
                journal.append(entry.seq, &body, || log.entries());
            }
            entry
        };
        let seq = entry.seq;
        let bytes = Bytes::from(serde_json::to_vec(&*body).unwrap_or_default());
        let deadline = self.cfg.purge_deadline;
        let calls = self.remote_peers().map(|peer| {
            let bytes = bytes.clone();
            async move {
                if !peer.is_up() {
                    return NodeAck::pending(
                        &peer.name,
                        0,
                        "peer is down: the purge will be replayed when it is back".into(),
                    );
                }
                let started = Instant::now();
                // A hung peer (not yet marked down) must not hold the caller for
                // fanout_timeout x retries: past the deadline it is pending, and the
                // log delivers it when the peer's health check passes.
                let Ok(mut ack) =
                    tokio::time::timeout(deadline, self.deliver(peer, purge_call(bytes))).await
                else {
                    tracing::warn!(peer = %peer.name, ?deadline, "cluster purge: no answer within the deadline; left pending for replay");
                    return NodeAck::pending(
                        &peer.name,
                        millis(started),
                        format!(
                            "no answer within {deadline:?}: the purge will be replayed when the peer passes a health check"
                        ),
                    );
                };
                if !ack.ok {
                    ack.pending = true;
                }
                if ack.ok {
                    // Advance only over a gap-free prefix; a later catch-up resends the rest.
                    let _ = peer.acked.compare_exchange(
                        seq.saturating_sub(1),
                        seq,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                    ack.purged = ack
                        .answer
                        .take()
                        .map(|a| a.get("total").cloned().unwrap_or(a));
                }
                ack
            }
        });
        let acks = join_all(calls).await;
        entry.settled.store(true, Ordering::Release);
        self.save_acked();
        acks
    }

    /// Write each peer's acknowledged sequence to the journal, if there is one.
    pub(crate) fn save_acked(&self) {
        if let Some(journal) = &self.journal {
            let acked = self
                .remote_peers()
                .map(|p| (p.name.clone(), p.acked.load(Ordering::Acquire)))
                .collect();
            journal.save_acked(&acked);
        }
    }

    /// Whether `peer` has purges it has not acknowledged.
    pub fn purges_pending(&self, peer: &Peer) -> bool {
        !peer.is_self && peer.acked.load(Ordering::Acquire) < self.purge_head()
    }

    pub(crate) fn spawn_catch_up(self: &Arc<Self>, peer: Arc<Peer>) {
        if peer.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            cluster.catch_up(&peer).await;
            peer.replaying.store(false, Ordering::Release);
        });
    }

    /// Resend, in order, what `peer` missed; stop at the first failure (the next
    /// passing health check tries again). Returns how many purges were delivered.
    pub async fn catch_up(&self, peer: &Peer) -> usize {
        let acked = peer.acked.load(Ordering::Acquire);
        let missed = self.log().since(acked);
        match missed {
            Missed::TooMany { head } => {
                tracing::warn!(peer = %peer.name, acked, head, "peer missed more purges than the log holds: purging everything there");
                let body = Bytes::from_static(br#"{"all":true,"scope":"node"}"#);
                let ack = self.deliver(peer, purge_call(body)).await;
                if ack.ok {
                    peer.acked.fetch_max(head, Ordering::AcqRel);
                    self.save_acked();
                    return 1;
                }
                0
            }
            Missed::Entries(entries) => {
                let mut sent = 0;
                let settled = entries
                    .into_iter()
                    .take_while(|e| e.settled.load(Ordering::Acquire));
                for e in settled {
                    let bytes = Bytes::from(serde_json::to_vec(&*e.body).unwrap_or_default());
                    if !self.deliver(peer, purge_call(bytes)).await.ok {
                        break;
                    }
                    peer.acked.fetch_max(e.seq, Ordering::AcqRel);
                    sent += 1;
                }
                if sent > 0 {
                    tracing::info!(peer = %peer.name, purges = sent, "replayed missed purges");
                    self.save_acked();
                }
                sent
            }
        }
    }

    /// `PUT /objects?...` (the same query the admin API got, `url=` included) to the
    /// live owner of `key_hash`, and with `edges` to every edge too. This node is never
    /// in the list: `owner_is_self` tells the caller whether to store locally as well.
    pub async fn push(
        &self,
        key_hash: u128,
        path_and_query: PathAndQuery,
        headers: HeaderMap,
        body: Bytes,
        edges: bool,
    ) -> Vec<NodeAck> {
        let owner = self.ring.owners(key_hash).find(|p| p.is_up()).cloned();
        let mut targets: Vec<Arc<Peer>> = owner.into_iter().filter(|p| !p.is_self).collect();
        if edges {
            targets.extend(
                self.remote_peers()
                    .filter(|p| p.role == PeerRole::Edge)
                    .cloned(),
            );
        }
        let calls = targets.iter().map(|peer| {
            self.deliver(
                peer,
                AdminCall {
                    method: Method::PUT,
                    path_and_query: path_and_query.clone(),
                    headers: headers.clone(),
                    body: body.clone(),
                },
            )
        });
        join_all(calls).await
    }

    /// Whether this node is the first live owner of `key_hash` (a shard storing a
    /// push itself), or there is no live owner at all.
    pub fn owner_is_self(&self, key_hash: u128) -> bool {
        self.ring
            .owners(key_hash)
            .find(|p| p.is_up())
            .map_or(true, |p| p.is_self)
    }

    /// `POST /prewarm` on each live owner with the URLs it owns (`urls` pairs a URL
    /// with its key hash), and with `edges` the whole list on every edge. Returns the
    /// URLs this node should pre-warm itself (it owns them, or no shard is live) and
    /// the peers' answers (their job ids).
    pub async fn prewarm(
        &self,
        urls: &[(String, u128)],
        concurrency: usize,
        edges: bool,
    ) -> (Vec<String>, Vec<NodeAck>) {
        let mut local = Vec::new();
        let mut by_owner: Vec<(Arc<Peer>, Vec<&str>)> = Vec::new();
        for (url, hash) in urls {
            match self.ring.owners(*hash).find(|p| p.is_up()) {
                Some(p) if !p.is_self => {
                    match by_owner.iter_mut().find(|(o, _)| Arc::ptr_eq(o, p)) {
                        Some((_, list)) => list.push(url),
                        None => by_owner.push((p.clone(), vec![url])),
                    }
                }
                _ => local.push(url.clone()),
            }
        }
        if edges {
            let all: Vec<&str> = urls.iter().map(|(u, _)| u.as_str()).collect();
            for p in self.remote_peers().filter(|p| p.role == PeerRole::Edge) {
                by_owner.push((p.clone(), all.clone()));
            }
        }
        let calls = by_owner.iter().map(|(peer, list)| {
            let body = serde_json::json!({ "urls": list, "concurrency": concurrency });
            self.deliver(
                peer,
                AdminCall {
                    method: Method::POST,
                    path_and_query: PathAndQuery::from_static("/prewarm"),
                    headers: json_headers(),
                    body: Bytes::from(body.to_string()),
                },
            )
        });
        (local, join_all(calls).await)
    }

    /// A body-less admin call (`GET` or `DELETE` of a pre-warm job) to the peer named
    /// `node`, as `deliver` sends it.
    pub async fn admin_request(&self, node: &str, method: Method, path: &str) -> NodeAck {
        let Some(peer) = self.peers.iter().find(|p| p.name == node && !p.is_self) else {
            return NodeAck::failed(node, 0, "not a peer of this node".into());
        };
        let Ok(path_and_query) = PathAndQuery::try_from(path) else {
            return NodeAck::failed(node, 0, format!("invalid path {path:?}"));
        };
        let call = AdminCall {
            method,
            path_and_query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        self.deliver(peer, call).await
    }

    /// One admin call to one peer: up to `1 + fanout_retries` attempts, each within
    /// `fanout_timeout`. Retried: connect failures, timeouts, 5xx. Not retried: 4xx
    /// (the same request would be refused again).
    async fn deliver(&self, peer: &Peer, call: AdminCall) -> NodeAck {
        let started = Instant::now();
        let attempts = self.cfg.fanout_retries.saturating_add(1);
        let mut last_error = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(RETRY_BACKOFF * 2u32.saturating_pow(attempt - 1)).await;
            }
            match self.call_once(&peer.admin_authority, &call).await {
                Ok((status, answer)) if status.is_success() => {
                    return NodeAck {
                        node: peer.name.clone(),
                        ok: true,
                        latency_ms: millis(started),
                        purged: None,
                        answer: Some(answer),
                        error: None,
                        pending: false,
                    };
                }
                Ok((status, answer)) => {
                    last_error = format!("{status}: {}", answer_message(&answer));
                    if status.is_client_error() {
                        break;
                    }
                }
                Err(CallError::Connect(e)) => {
                    if peer.mark_failed() == Transition::Down {
                        tracing::warn!(peer = %peer.name, error = %e, "cluster peer is down (admin connect failed)");
                        self.metrics.peer_health(&peer.name, false);
                    }
                    last_error = e;
                }
                Err(CallError::Other(e)) => last_error = e,
            }
        }
        tracing::warn!(peer = %peer.name, error = %last_error, "fan-out to peer failed");
        NodeAck::failed(&peer.name, millis(started), last_error)
    }

    async fn call_once(
        &self,
        authority: &Authority,
        call: &AdminCall,
    ) -> Result<(http::StatusCode, Value), CallError> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(call.path_and_query.clone())
            .build()
            .map_err(|e| CallError::Other(e.to_string()))?;
        let mut req = Request::new(ProxyBody::full(call.body.clone()));
        *req.method_mut() = call.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = call.headers.clone();
        req.headers_mut().insert(
            super::HOP_HEADER,
            self.hop.marker(&call.method, call.path_and_query.as_str()),
        );
        if let Some(token) = &self.token {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
        }
        let timeout = self.cfg.fanout_timeout;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    CallError::Connect(e.to_string())
                } else {
                    CallError::Other(e.to_string())
                }
            })?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| CallError::Other(format!("reading the answer: {e}")))?
                .to_bytes();
            let answer = serde_json::from_slice(&body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned())
            });
            Ok((status, answer))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(CallError::Other(format!("no answer within {timeout:?}"))))
    }
}

enum CallError {
    Connect(String),
    Other(String),
}

fn purge_call(body: Bytes) -> AdminCall {
    AdminCall {
        method: Method::POST,
        path_and_query: PathAndQuery::from_static("/purge"),
        headers: json_headers(),
        body,
    }
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

/// The `error` of an admin error answer, else the answer itself, shortened.
fn answer_message(answer: &Value) -> String {
    let text = match answer.get("error").and_then(Value::as_str) {
        Some(e) => e.to_string(),
        None => answer.to_string(),
    };
    text.chars().take(300).collect()
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs the futures concurrently on this task and keeps their order. Peers number at
/// most `MAX_PEERS`, so no spawning or extra bounding is needed.
pub(crate) async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u64) -> Arc<Value> {
        Arc::new(serde_json::json!({ "urls": [format!("http://x/{n}")] }))
    }

    #[test]
    fn log_is_bounded_and_knows_its_gaps() {
        let mut log = PurgeLog::new(3);
        assert!(matches!(log.since(0), Missed::Entries(e) if e.is_empty()));
        for n in 1..=5 {
            assert_eq!(log.append(v(n)).seq, n);
        }
        assert_eq!(log.entries.len(), 3);
        // Entries 3..=5 are held: a peer at 2 can catch up, a peer at 1 cannot.
        match log.since(2) {
            Missed::Entries(e) => {
                assert_eq!(e.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5])
            }
            Missed::TooMany { .. } => panic!("should be replayable"),
        }
        assert!(matches!(log.since(1), Missed::TooMany { head: 5 }));
        assert!(matches!(log.since(5), Missed::Entries(e) if e.is_empty()));
        assert!(matches!(log.since(9), Missed::Entries(e) if e.is_empty()));
    }

    #[test]
    fn scope_is_forced_to_node() {
        let b = node_scoped(serde_json::json!({"all": true, "scope": "cluster"}));
        assert_eq!(b["scope"], "node");
        let b = node_scoped(serde_json::json!({"urls": ["http://a/"]}));
        assert_eq!(b["scope"], "node");
        // Not an object: left alone for the peer to refuse.
        assert_eq!(node_scoped(serde_json::json!([1])), serde_json::json!([1]));
    }

    #[test]
    fn error_answers_are_summarized() {
        assert_eq!(answer_message(&serde_json::json!({"error": "bad"})), "bad");
        let long = Value::String("x".repeat(1000));
        assert!(answer_message(&long).len() <= 300);
    }

    #[tokio::test]
    async fn join_all_keeps_order() {
        let out = join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
            i
        }))
        .await;
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
