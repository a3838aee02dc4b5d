//! The fetch task: one origin request whose response feeds a flight and, when storable,
//! the store. It runs in its own task so a leader's client hanging up cannot abort a
//! fetch that other waiters (or the cache) still need; a fetch nobody else can use
//! (an abortable flight, or a body that is not being stored) ends when its last waiter
//! leaves, which drops the origin request and closes its connection.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, request, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::context::Ctx;
use super::headers;
use super::Proxy;
use crate::body::ProxyBody;
use crate::cache::key::CacheKey;
use crate::cache::object::Object;
use crate::cache::{Admission, Admitted, Fetched, Times};
use crate::coalesce::{FlightWriter, ResponseHead};
use crate::failure::{FetchFailure, Kind, Source};
use crate::origin::OriginRequest;

/// A body up to this size (by Content-Length) is read whole and stored before the head is
/// published, so Cache-Status can say `stored` truthfully; a longer one streams as it comes.
const SMALL_BODY: u64 = 64 * 1024;

/// What the fetch needs to know about the request it serves.
pub struct FetchJob {
    /// The leader's context: its key, its own directives (a request with credentials
    /// says nothing about the URL when its answer is not storable), the rules to store by.
    pub ctx: Ctx,
    /// The leader's request head as filled (a GET), for Vary.
    pub request: Arc<request::Parts>,
    pub origin_request: OriginRequest,
    /// The stored copy being revalidated, if any: a 304 refreshes it, and a 5xx must not replace it.
    pub stale: Option<Arc<Object>>,
}

pub async fn run(proxy: Arc<Proxy>, mut writer: FlightWriter, job: FetchJob) {
    let FetchJob {
        ctx,
        request,
        origin_request,
        stale,
    } = job;
    let key = &ctx.key;
    let request_time = SystemTime::now();
    let started = Instant::now();
    let upstream = proxy.upstream(&ctx, origin_request);
    let answer = if writer.abortable() {
        tokio::select! {
            answer = upstream => answer,
            () = writer.abandoned() => {
                writer.fail(FetchFailure::new(Source::Client, Kind::Abandoned));
                return;
            }
        }
    } else {
        upstream.await
    };
    let (resp, from) = match answer {
        Ok(r) => r,
        Err(why) => {
            proxy.coalescer.mark_failed(key.hash);
            writer.fail(why);
            return;
        }
    };
    // An edge keeps hot keys; the owning shard holds the rest. What came from the
    // origin (no live shard) is kept, or every request would go to the origin.
    let keep_locally = from == super::Upstream::Origin
        || proxy
            .cluster
            .as_ref()
            .map_or(true, |c| c.keep_locally(key.hash));
    let times = Times {
        request_time,
        response_time: SystemTime::now(),
        started,
        received: Instant::now(),
    };
    let (mut parts, body) = resp.into_parts();
    let exchange = crate::origin::Exchange::of(&parts.extensions);
    // RFC 9112 6.1: Content-Length beside Transfer-Encoding "ought to be handled as an
    // error" (response splitting); relay it re-framed, but never store it.
    let bad_framing = parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH);
    headers::strip_hop_by_hop(&mut parts.headers);
    ctx.site.rules().on_response(&mut parts.headers);
    if parts.status.is_server_error() {
        proxy.coalescer.mark_failed(key.hash);
    } else {
        proxy.coalescer.clear_failed(key.hash);
    }
    let content_length = headers::content_length(&parts.headers);
    let fetched = Fetched {
        request: &request,
        asked: &ctx.asked,
        status: parts.status,
        headers: &parts.headers,
        content_length,
        bad_framing,
        stale: stale.as_deref(),
        times,
    };

    // A shard's clients are edges, which ask for identity and encode their own copies:
    // encodings made there would cost CPU and memory for nothing.
    let store_encodings = ctx.site.compression().filter(|_| {
        proxy
            .cluster
            .as_ref()
            .map_or(true, |c| c.role() != crate::config::Role::Shard)
    });
    if parts.status == StatusCode::NOT_MODIFIED {
        if let Some(old) = stale.as_ref() {
            let refreshed = proxy.cache.refresh(key, old, &fetched, ctx.rules());
            if refreshed.kept {
                undo_on_desync(&proxy, exchange.as_ref(), key);
                // The refreshed copy keeps the old one's encodings; one refreshed
                // before they were made gets its own.
                if let Some(policy) = store_encodings {
                    policy.encode_stored(&proxy.cache, key, refreshed.object.clone());
                }
            }
            writer.complete(refreshed.object);
            return;
        }
    }

    let admission = proxy.cache.admit(key, &fetched, ctx.rules());
    let shareable = admission.shareable();
    let admitted = match &admission {
        Admission::Store(admitted) if keep_locally => Some(admitted),
        _ => None,
    };
    let mut storing = admitted.is_some();
    let fill = admitted.map(|admitted| Fill {
        proxy: &proxy,
        key,
        exchange: exchange.as_ref(),
        status: parts.status,
        headers: &parts.headers,
        admitted,
        times: &times,
        compression: store_encodings,
    });

    let idle = proxy.settings.response_idle(&parts.headers);
    let mut body = ProxyBody::stream(body, idle, None);
    let mut size: u64 = 0;
    // The body is held in memory until stored: it draws on the store's fill share.
    let mut claim = proxy.cache.reserve();
    // A small body is read whole and stored before the head goes out; a cut one is an
    // origin failure like no answer at all (stale copy, or 502), never a cut response.
    let mut early = Vec::new();
    let mut stored = false;
    if storing && content_length.is_some_and(|n| n <= SMALL_BODY) {
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        size += data.len() as u64;
                        // Too many fills at once: relay this one, store a later one.
                        storing &= claim.grow(data.len());
                        early.push(data);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(url = %key.url, error = %e, "origin body failed");
                    proxy.coalescer.mark_failed(key.hash);
                    let kind = match e {
                        crate::body::BodyError::Timeout(_) => Kind::Timeout,
                        _ => Kind::Connect,
                    };
                    writer.fail(FetchFailure::new(from.source(), kind));
                    return;
                }
                None => break,
            }
        }
        if content_length != Some(size) {
            tracing::warn!(url = %key.url, "origin body shorter than its Content-Length");
            proxy.coalescer.mark_failed(key.hash);
            writer.fail(FetchFailure::new(from.source(), Kind::Connect));
            return;
        }
        if let Some(fill) = fill.as_ref().filter(|_| storing) {
            if let Some((body, obj)) = fill.store(&early) {
                stored = true;
                // Readers get the stored copy: the chunks can go now, not after them.
                if !body.is_empty() {
                    early = vec![body];
                }
                if let Some(obj) = obj {
                    fill.encode(obj);
                }
            }
        }
        storing = false;
    }
    let head = Arc::new(ResponseHead {
        status: parts.status,
        version: parts.version,
        headers: parts.headers.clone(),
        content_length,
        stored,
    });
    writer.head(head, shareable);
    if shareable && !storing {
        writer.stop_storing();
    }
    if !shareable && early.is_empty() {
        // One reader, nothing to store: it reads the origin's body itself, paced by its
        // client, with the same idle bound (an event stream, a no-store page).
        writer.hand_over(body);
        return;
    }
    for data in early {
        if !writer.push(data).await {
            writer.finish(Err("all readers left".into()));
            return;
        }
    }

    loop {
        // A body that is not being stored is for its readers only: stop when they are gone.
        let frame = if storing {
            body.frame().await
        } else {
            tokio::select! {
                frame = body.frame() => frame,
                () = writer.abandoned() => {
                    writer.finish(Err("all readers left".into()));
                    return;
                }
            }
        };
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                size += data.len() as u64;
                if let Some(admitted) = admitted.filter(|a| storing && !a.fits(size)) {
                    storing = false;
                    writer.stop_storing();
                    proxy.cache.outgrown(key, admitted);
                }
                if storing && !claim.grow(data.len()) {
                    // Too many fills at once: relay this one, store a later one.
                    storing = false;
                    writer.stop_storing();
                }
                if !writer.push(data).await {
                    // Nobody left to read a body we are not keeping.
                    writer.finish(Err("all readers left".into()));
                    return;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(url = %key.url, error = %e, "origin body failed");
                writer.finish(Err(e.to_string()));
                return;
            }
            None => break,
        }
    }
    if content_length.is_some_and(|n| n != size) {
        writer.finish(Err("origin body shorter than its Content-Length".into()));
        return;
    }

    if let Some(fill) = fill.as_ref().filter(|_| storing) {
        if let Some((body, obj)) = fill.store(&writer.body_chunks()) {
            // Readers still behind read the stored copy: the body is held once, not twice
            // (the arrived chunks and the stored copy) until the slowest reader is done.
            writer.rebase(&body);
            if let Some(obj) = obj {
                fill.encode(obj);
            }
        }
    }
    drop(claim);
    writer.finish(Ok(()));
}

/// What storing a fetched response needs besides its body.
struct Fill<'a> {
    proxy: &'a Arc<Proxy>,
    key: &'a CacheKey,
    /// The origin exchange the response came from (see `undo_on_desync`).
    exchange: Option<&'a crate::origin::Exchange>,
    status: StatusCode,
    headers: &'a http::HeaderMap,
    admitted: &'a Admitted,
    times: &'a Times,
    compression: Option<&'a Arc<crate::compress::Policy>>,
}

impl Fill<'_> {
    /// Insert the object. When it is in the store: its body as stored (for readers
    /// still behind), and the object itself when it is complete (for its encodings).
    fn store(&self, chunks: &[Bytes]) -> Option<(Bytes, Option<Arc<Object>>)> {
        if self.admitted.is_part() {
            let cache = &self.proxy.cache;
            let body = cache.insert_part(self.key, self.headers, chunks, self.admitted, self.times);
            if body.is_some() {
                undo_on_desync(self.proxy, self.exchange, self.key);
            }
            return body.map(|b| (b, None));
        }
        let obj = Arc::new(Object::fetched(
            self.status,
            self.headers,
            chunks,
            self.admitted,
            self.times,
        ));
        match self.proxy.cache.insert(self.key, obj.clone()) {
            Ok(()) => {
                undo_on_desync(self.proxy, self.exchange, self.key);
                Some((obj.body.clone(), Some(obj)))
            }
            Err(e) => {
                tracing::debug!(url = %self.key.url, reason = %e, "fetched object not stored");
                None
            }
        }
    }
}

impl Fill<'_> {
    /// Make the site's stored encodings of an object just stored, in the background:
    /// its readers have their body already, only later hits wait for the encodings.
    fn encode(&self, obj: Arc<Object>) {
        if let Some(policy) = self.compression {
            policy.encode_stored(&self.proxy.cache, self.key, obj);
        }
    }
}

/// If the origin connection this response came from later turns out desynchronised (the
/// response may have answered another request), drop what was stored from it.
fn undo_on_desync(proxy: &Arc<Proxy>, exchange: Option<&crate::origin::Exchange>, key: &CacheKey) {
    if let Some(x) = exchange {
        let (proxy, key) = (Arc::downgrade(proxy), key.clone());
        x.on_desync(move || {
            if let Some(p) = proxy.upgrade() {
                p.cache.remove(&key);
            }
        });
    }
}
