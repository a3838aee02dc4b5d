//! Forwarding a request to the shard that owns its key: first live owner in ring
//! order, hop marker added, the next owner tried when a connect fails before any
//! byte or when it is found hung (silent past `cluster.first_byte_timeout`, and to a
//! probe), and the request handed back when no shard can take it so the caller can
//! go to the origins instead.

use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http::{HeaderMap, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::peers::{Peer, Transition};
use super::Cluster;
use crate::cache::key::CacheKey;
use crate::failure::{FetchFailure, Kind, Replay, Source};
use crate::origin::OriginRequest;

/// The hop marker: set on every request one node sends another, naming the sender.
/// A node never forwards a request that carries it, so a request crosses at most one
/// hop inside a PoP even while nodes disagree about who is up.
/// A `HeaderName`, not a string: a lookup by string parses the name each time, and this
/// one is looked up on every request.
pub const HOP_HEADER: http::HeaderName = http::HeaderName::from_static("x-lacquer-hop");

/// Owners tried for one request before giving up on the tier: each failed attempt
/// costs up to `cluster.connect_timeout`, and each also marks its peer down, so
/// later requests skip it without paying again.
const MAX_ATTEMPTS: usize = 3;

/// Whether another node already forwarded this request.
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(&HOP_HEADER)
}

/// A forward that produced no response head.
#[derive(thiserror::Error)]
pub enum ForwardError {
    /// No shard can take the key (none configured, all down or ramping, or every
    /// one tried refused the connection). The request comes back, replayable, for
    /// the origin pool.
    #[error("no live shard for this key{}", .tried.as_ref().map(|t| format!(" (tried {t})")).unwrap_or_default())]
    NoLiveShard {
        request: Box<OriginRequest>,
        tried: Option<String>,
    },
    /// The connect failed and the request (a body already sent, non-idempotent)
    /// cannot be replayed anywhere.
    #[error("shard {peer}: {source}")]
    Connect {
        peer: String,
        source: hyper_util::client::legacy::Error,
    },
    /// The shard accepted the request but sent no head in time. Not retried: the
    /// shard may be fetching from a slow origin, and a second shard would fetch again.
    #[error("shard {peer}: no response within {after:?}")]
    Timeout { peer: String, after: Duration },
    /// The shard sent no head within `cluster.first_byte_timeout` and did not answer a
    /// liveness probe: it is hung, so the request may go to the next owner.
    #[error("shard {peer}: no response within {after:?} and no answer to a probe")]
    Unresponsive { peer: String, after: Duration },
    #[error("invalid request to shard: {0}")]
    BadRequest(String),
}

impl std::fmt::Debug for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ForwardError {
    pub fn is_no_live_shard(&self) -> bool {
        matches!(self, ForwardError::NoLiveShard { .. })
    }

    /// The request back, when the caller may still send it to the origins.
    pub fn into_request(self) -> Option<OriginRequest> {
        match self {
            ForwardError::NoLiveShard { request, .. } => Some(*request),
            _ => None,
        }
    }

    /// For the coalescer and the retry rule, like `OriginError::failure`.
    pub fn failure(&self) -> FetchFailure {
        match self {
            ForwardError::NoLiveShard { .. } => FetchFailure::new(Source::Shard, Kind::NoUpstream),
            ForwardError::Timeout { .. } => FetchFailure::new(Source::Shard, Kind::Timeout),
            ForwardError::Unresponsive { .. } => {
                FetchFailure::new(Source::Shard, Kind::Unresponsive)
            }
            ForwardError::Connect { .. } => FetchFailure::new(Source::Shard, Kind::Connect),
            ForwardError::BadRequest(_) => FetchFailure::new(Source::Local, Kind::Connect),
        }
    }
}

impl Cluster {
    /// The shards that may take `key_hash` now, in ring order: up, within their
    /// ramp-up, and not this node.
    pub fn live_owners(&self, key_hash: u128) -> impl Iterator<Item = &Arc<Peer>> + '_ {
        let window = self.cfg.ramp_up;
        self.ring
            .owners(key_hash)
            .filter(move |p| !p.is_self && p.accepts(key_hash, window))
    }

    /// Send `req` to the owner of `key`. A connect failure marks that owner down and,
    /// when the retry rule allows it (`failure::Replay`: a replayable request, a connect
    /// failure; never a timeout), moves on to the next live owner. Never forwards a
    /// request that already carries the hop marker: that is handed back as
    /// `NoLiveShard` untouched.
    pub async fn send(
        &self,
        key: &CacheKey,
        req: OriginRequest,
    ) -> Result<Response<Incoming>, ForwardError> {
        // Collected first: the ring's iterator is not held across an await.
        let candidates: Vec<Arc<Peer>> = if is_forwarded(&req.headers) {
            Vec::new()
        } else {
            self.live_owners(key.hash)
                .take(MAX_ATTEMPTS)
                .cloned()
                .collect()
        };
        let mut req = req;
        let mut tried: Vec<&str> = Vec::new();
        for peer in &candidates {
            let replay = Replay::of(&req);
            match self.send_to(peer, req).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    let Some(again) = replay.and_then(|r| r.after(e.failure())) else {
                        return Err(e);
                    };
                    tried.push(&peer.name);
                    tracing::debug!(peer = %peer.name, error = %e, "shard unreachable; trying the next owner");
                    req = again;
                }
            }
        }
        Err(ForwardError::NoLiveShard {
            request: Box::new(req),
            tried: (!tried.is_empty()).then(|| tried.join(", ")),
        })
    }

    async fn send_to(
        &self,
        peer: &Peer,
        req: OriginRequest,
    ) -> Result<Response<Incoming>, ForwardError> {
        let OriginRequest {
            method,
            path_and_query,
            mut headers,
            mut body,
            ..
        } = req;
        headers.insert(
            HOP_HEADER,
            self.hop.marker(&method, path_and_query.as_str()),
        );
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(peer.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| ForwardError::BadRequest(e.to_string()))?;
        // As toward an origin: the first-byte timer starts once the request body is sent
        // in full, so a slow upload is bounded by its own idle timer, not cut at 504.
        let sent = body.on_sent();
        let mut out = Request::new(body);
        *out.method_mut() = method;
        *out.uri_mut() = uri;
        *out.version_mut() = Version::HTTP_11;
        *out.headers_mut() = headers;
        let timeout = self.first_byte_timeout;
        let check_after = self.cfg.first_byte_timeout.min(timeout);
        let started = Instant::now();
        let request = self.client.request(out);
        tokio::pin!(request);
        let sent_in_full = async move {
            if let Some(sent) = sent {
                // An error means the body failed; hyper reports that on its own.
                let _ = sent.await;
            }
        };
        let first = tokio::select! {
            biased;
            r = &mut request => Some(r),
            () = async { sent_in_full.await; tokio::time::sleep(check_after).await } => None,
        };
        let answer = match first {
            Some(r) => Ok(r),
            // Slow: a shard waiting on a slow origin answers a probe at once; a hung one
            // (stopped, wedged) does not, and holding the client for the origin's whole
            // first-byte timeout would be for nothing.
            None if !self.alive(peer).await => {
                if peer.mark_failed() == Transition::Down {
                    tracing::warn!(peer = %peer.name, after = ?check_after, "cluster peer is down (no response, no answer to a probe)");
                    self.metrics.peer_health(&peer.name, false);
                }
                Err(true)
            }
            None => tokio::select! {
                biased;
                r = &mut request => Ok(r),
                () = tokio::time::sleep(timeout.saturating_sub(check_after)) => Err(false),
            },
        };
        let result = match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(source)) => {
                if source.is_connect() && peer.mark_failed() == Transition::Down {
                    tracing::warn!(peer = %peer.name, error = %source, "cluster peer is down (connect failed)");
                    self.metrics.peer_health(&peer.name, false);
                }
                Err(ForwardError::Connect {
                    peer: peer.name.clone(),
                    source,
                })
            }
            Err(true) => Err(ForwardError::Unresponsive {
                peer: peer.name.clone(),
                after: check_after,
            }),
            Err(false) => Err(ForwardError::Timeout {
                peer: peer.name.clone(),
                after: timeout,
            }),
        };
        let outcome = match &result {
            Ok(r) if r.status().is_server_error() => "5xx",
            Ok(_) => "ok",
            Err(ForwardError::Timeout { .. } | ForwardError::Unresponsive { .. }) => "timeout",
            Err(_) => "error",
        };
        self.metrics.peer_request(&peer.name, outcome);
        tracing::trace!(peer = %peer.name, outcome, took = ?started.elapsed(), "forwarded");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_forwarded(&h));
        h.insert(HOP_HEADER, http::HeaderValue::from_static("edge-1"));
        assert!(is_forwarded(&h));
        // Header names are case-insensitive.
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::from_static("x-lacquer-hop"),
            http::HeaderValue::from_static(""),
        );
        assert!(is_forwarded(&h));
    }
}
