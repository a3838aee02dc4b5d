//! The fetch task: one origin request whose response feeds a flight and, when storable,
//! the store. It runs in its own task so a leader's client hanging up cannot abort a
//! fetch that other waiters (or the cache) still need; a fetch nobody else can use
//! (an abortable flight, or a body that is not being stored) ends when its last waiter
//! leaves, which drops the origin request and closes its connection.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, request, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::headers;
use super::Proxy;
use crate::body::ProxyBody;
use crate::cache::fields::Fields;
use crate::cache::object::{self, Object, Source};
use crate::cache::policy;
use crate::cache::vary::{self, SecondaryKey, Vary};
use crate::coalesce::{FetchFailure, FlightWriter, ResponseHead};
use crate::origin::OriginRequest;

/// A body up to this size (by Content-Length) is read whole and stored before the head is
/// published, so Cache-Status can say `stored` truthfully; a longer one streams as it comes.
const SMALL_BODY: u64 = 64 * 1024;

/// What the fetch needs to know about the request it serves.
pub struct FetchJob {
    /// The leader's request head (method, URI, headers) for storability decisions.
    pub request: Arc<request::Parts>,
    pub origin_request: OriginRequest,
    /// The stored copy being revalidated, if any: a 304 refreshes it, and a 5xx must not replace it.
    pub stale: Option<Arc<Object>>,
    /// The request carried Authorization (a Cookie under the pass policy never gets here):
    /// an unstorable answer then says nothing about the URL, so no hit-for-miss marker.
    pub credentials: bool,
}

pub async fn run(proxy: Arc<Proxy>, mut writer: FlightWriter, job: FetchJob) {
    let FetchJob {
        request,
        origin_request,
        stale,
        credentials,
    } = job;
    let key = writer.flight().key.clone();
    let request_time = SystemTime::now();
    let started = Instant::now();
    let upstream = proxy.upstream(&key, origin_request);
    let answer = if writer.abortable() {
        tokio::select! {
            answer = upstream => answer,
            () = writer.abandoned() => {
                writer.fail(FetchFailure::Abandoned);
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
    let response_time = SystemTime::now();
    let stored_at = Instant::now();
    let (mut parts, body) = resp.into_parts();
    let exchange = crate::origin::Exchange::of(&parts.extensions);
    // RFC 9112 6.1: Content-Length beside Transfer-Encoding "ought to be handled as an
    // error" (response splitting); relay it re-framed, but never store it.
    let bad_framing = parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH);
    headers::strip_hop_by_hop(&mut parts.headers);
    let server_error = parts.status.is_server_error();
    if server_error {
        proxy.coalescer.mark_failed(key.hash);
    } else {
        proxy.coalescer.clear_failed(key.hash);
    }

    if parts.status == StatusCode::NOT_MODIFIED {
        if let Some(old) = stale.as_ref() {
            let mut merged = policy::merge_304(&old.headers.to_map(), &parts.headers);
            if !merged.contains_key(header::DATE) {
                merged.insert(
                    header::DATE,
                    HeaderValue::from_str(&httpdate::fmt_http_date(response_time))
                        .unwrap_or(HeaderValue::from_static("")),
                );
            }
            // The 304 can change what may be stored (no-store, private...): check again.
            let still_storable =
                policy::storable(&request, old.status, &merged, &proxy.policy).is_ok();
            policy::strip_before_store(&mut merged);
            let tags = object::surrogate_keys(&merged);
            let refreshed = Arc::new(Object {
                status: old.status,
                freshness: policy::freshness(
                    old.status,
                    &merged,
                    request_time,
                    response_time,
                    &proxy.policy,
                ),
                headers: Fields::from_map(&merged),
                body: old.body.clone(),
                stored_at,
                vary: old.vary.clone(),
                secondary: old.secondary.clone(),
                public: old.public,
                hits: Default::default(),
                surrogate_keys: tags,
                source: Source::Fetched { started },
            });
            if still_storable {
                if let Err(e) = proxy.store.insert(&key, refreshed.clone()) {
                    tracing::debug!(url = %key.url, reason = %e, "304 refresh not stored");
                }
                undo_on_desync(&proxy, exchange.as_ref(), &key);
            } else {
                proxy.store.purge_url(&key, false);
            }
            writer.complete(refreshed);
            return;
        }
    }

    let content_length = headers::content_length(&parts.headers);
    let variant = match vary::parse_vary(&parts.headers) {
        Vary::None => Some((Vec::new(), SecondaryKey(Vec::new()))),
        Vary::Star => None,
        Vary::Fields(fields) => {
            vary::secondary_key(&fields, &request.headers).map(|sk| (fields, sk))
        }
    };
    // A 5xx never replaces a stored copy: stale must not be replaced by an error (a stored
    // error may be, by the next error).
    let error_over_stale =
        server_error && stale.as_ref().is_some_and(|o| !o.status.is_server_error());
    let (cc, targeted) = policy::effective_cache_control(&parts.headers, &proxy.policy);
    let verdict = policy::storable_with(&request, parts.status, &parts.headers, &cc, &proxy.policy);
    let too_big = content_length.is_some_and(|n| n > proxy.settings.max_object_size);
    let fits = variant.is_some() && !too_big && !error_over_stale && !bad_framing;
    let storable = verdict.is_ok() && fits;
    // Negative caching (`error_ttl`): a 5xx without freshness of its own is kept briefly,
    // when it would be storable with that lifetime (no-store, private, Set-Cookie still win).
    let negative = !storable
        && fits
        && server_error
        && !credentials
        && !proxy.settings.error_ttl.is_zero()
        && {
            let mut with_ttl = cc.clone();
            with_ttl.max_age = Some(proxy.settings.error_ttl.as_secs().max(1));
            policy::storable_with(
                &request,
                parts.status,
                &parts.headers,
                &with_ttl,
                &proxy.policy,
            )
            .is_ok()
        };
    let mut storing = (storable || negative) && keep_locally;
    // Shareable: the response is the same for anyone who asked the same thing. Errors are
    // shared (each waiter falls back to its stale copy, or gets the error) rather than
    // releasing every waiter to hammer a failing origin; unless the error is personal.
    let personal_error =
        credentials || cc.private || parts.headers.contains_key(header::SET_COOKIE);
    let shareable =
        storable || negative || (server_error && !personal_error) || (verdict.is_ok() && too_big);
    // `public` is the origin's word to every cache, so it is read from Cache-Control
    // even when a targeted field decides freshness.
    let shared = |c: &crate::cache::control::CacheControl| c.public || c.s_maxage.is_some();
    let public = if targeted {
        shared(&crate::cache::control::CacheControl::parse(
            parts.headers.get_all(header::CACHE_CONTROL),
        ))
    } else {
        shared(&cc)
    };
    // A 5xx says the origin is failing, not that the URL is uncacheable: the next wave
    // must be coalesced too.
    if storable || negative {
        proxy.coalescer.clear_hit_for_miss(key.hash);
    } else if !credentials && !server_error {
        proxy.coalescer.mark_hit_for_miss(key.hash);
    }
    let mut freshness = policy::freshness_with(
        parts.status,
        &parts.headers,
        &cc,
        request_time,
        response_time,
        &proxy.policy,
    );
    if negative {
        // lacquer's own lifetime, counted from receipt: the origin's Date (whole seconds)
        // must not eat a one-second error_ttl.
        freshness.initial_age = std::time::Duration::ZERO;
        freshness.lifetime = proxy.settings.error_ttl;
        freshness.stale_while_revalidate = std::time::Duration::ZERO;
        freshness.stale_if_error = std::time::Duration::ZERO;
        freshness.keep = std::time::Duration::ZERO;
    }
    let fill = Fill {
        proxy: &proxy,
        key: &key,
        exchange: exchange.as_ref(),
        status: parts.status,
        headers: &parts.headers,
        variant: variant.as_ref(),
        freshness,
        stored_at,
        public,
        started,
    };

    let mut body = ProxyBody::stream(body, proxy.settings.between_bytes_timeout, None);
    let mut size: u64 = 0;
    // The body is held in memory until stored: it draws on the store's fill share.
    let mut claim = proxy.store.reserve();
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
                    writer.fail(match e {
                        crate::body::BodyError::Timeout(_) => FetchFailure::Timeout,
                        _ => FetchFailure::Connect,
                    });
                    return;
                }
                None => break,
            }
        }
        if content_length != Some(size) {
            tracing::warn!(url = %key.url, "origin body shorter than its Content-Length");
            proxy.coalescer.mark_failed(key.hash);
            writer.fail(FetchFailure::Connect);
            return;
        }
        if storing {
            if let Some(body) = fill.store(&early, size) {
                stored = true;
                // Readers get the stored copy: the chunks can go now, not after them.
                if !body.is_empty() {
                    early = vec![body];
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
                if storing && size > proxy.settings.max_object_size {
                    storing = false;
                    writer.stop_storing();
                    if !credentials {
                        proxy.coalescer.mark_hit_for_miss(key.hash);
                    }
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

    if storing {
        if let Some(body) = fill.store(&writer.body_chunks(), size) {
            // Readers still behind read the stored copy: the body is held once, not twice
            // (the arrived chunks and the stored copy) until the slowest reader is done.
            writer.rebase(&body);
        }
    }
    drop(claim);
    writer.finish(Ok(()));
}

/// What storing a fetched response needs besides its body.
struct Fill<'a> {
    proxy: &'a Arc<Proxy>,
    key: &'a crate::cache::key::CacheKey,
    /// The origin exchange the response came from (see `undo_on_desync`).
    exchange: Option<&'a crate::origin::Exchange>,
    status: StatusCode,
    headers: &'a http::HeaderMap,
    variant: Option<&'a (Vec<http::HeaderName>, SecondaryKey)>,
    freshness: policy::Freshness,
    stored_at: Instant,
    public: bool,
    started: Instant,
}

impl Fill<'_> {
    /// Insert the object; its body when it is in the store.
    fn store(&self, chunks: &[Bytes], size: u64) -> Option<Bytes> {
        let (fields, secondary) = self.variant?;
        let mut stored_headers = self.headers.clone();
        policy::strip_before_store(&mut stored_headers);
        stored_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        let tags = object::surrogate_keys(&stored_headers);
        let body = object::stored_body(chunks);
        let obj = Arc::new(Object {
            status: self.status,
            headers: Fields::from_map(&stored_headers),
            body: body.clone(),
            freshness: self.freshness,
            stored_at: self.stored_at,
            vary: fields.clone(),
            secondary: secondary.clone(),
            public: self.public,
            hits: Default::default(),
            surrogate_keys: tags,
            source: Source::Fetched {
                started: self.started,
            },
        });
        match self.proxy.store.insert(self.key, obj) {
            Ok(_) => {
                undo_on_desync(self.proxy, self.exchange, self.key);
                Some(body)
            }
            Err(e) => {
                tracing::debug!(url = %self.key.url, reason = %e, "fetched object not stored");
                None
            }
        }
    }
}

/// If the origin connection this response came from later turns out desynchronised (the
/// response may have answered another request), drop what was stored from it.
fn undo_on_desync(
    proxy: &Arc<Proxy>,
    exchange: Option<&crate::origin::Exchange>,
    key: &crate::cache::key::CacheKey,
) {
    if let Some(x) = exchange {
        let (proxy, key) = (Arc::downgrade(proxy), key.clone());
        x.on_desync(move || {
            if let Some(p) = proxy.upgrade() {
                p.store.purge_url(&key, false);
            }
        });
    }
}
