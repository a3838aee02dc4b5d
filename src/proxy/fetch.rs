//! The fetch task: one origin request whose response feeds a flight and, when storable,
//! the store. It runs in its own task so a leader's client hanging up cannot abort a
//! fetch that other waiters (or the cache) still need.

use std::sync::Arc;
use std::time::SystemTime;

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
use crate::coalesce::{FlightWriter, ResponseHead};
use crate::origin::OriginRequest;

/// What the fetch needs to know about the request it serves.
pub struct FetchJob {
    /// The leader's request head (method, URI, headers) for storability decisions.
    pub request: Arc<request::Parts>,
    pub origin_request: OriginRequest,
    /// The stored copy being revalidated, if any: a 304 refreshes it, and a 5xx must not replace it.
    pub stale: Option<Arc<Object>>,
    /// The request carried credentials (Authorization, or Cookie under the pass policy):
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
    let (resp, from) = match proxy.upstream(&key, origin_request).await {
        Ok(r) => r,
        Err(why) => {
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
    // RFC 9112 6.1: Content-Length beside Transfer-Encoding "ought to be handled as an
    // error" (response splitting); relay it re-framed, but never store it.
    let bad_framing = parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH);
    headers::strip_hop_by_hop(&mut parts.headers);

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
    // A 5xx never replaces a stored copy: stale must not be replaced by an error.
    let error_over_stale = parts.status.is_server_error() && stale.is_some();
    let (cc, targeted) = policy::effective_cache_control(&parts.headers, &proxy.policy);
    let verdict = policy::storable_with(&request, parts.status, &parts.headers, &cc, &proxy.policy);
    let too_big = content_length.is_some_and(|n| n > proxy.settings.max_object_size);
    let storable =
        verdict.is_ok() && variant.is_some() && !too_big && !error_over_stale && !bad_framing;
    let mut storing = storable && keep_locally;
    // Shareable: the response is the same for anyone who asked the same thing. Errors over a
    // stale copy are shared (each waiter falls back to its stale copy) rather than releasing
    // every waiter to hammer a failing origin.
    let shareable = storable || error_over_stale || (verdict.is_ok() && too_big);
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
    if storable {
        proxy.coalescer.clear_hit_for_miss(key.hash);
    } else if !credentials && !error_over_stale {
        proxy.coalescer.mark_hit_for_miss(key.hash);
    }
    let freshness = policy::freshness_with(
        parts.status,
        &parts.headers,
        &cc,
        request_time,
        response_time,
        &proxy.policy,
    );
    let head = Arc::new(ResponseHead {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        content_length,
        storing,
    });
    writer.head(head.clone(), shareable);
    if shareable && !storing {
        writer.stop_storing();
    }

    let mut body = ProxyBody::stream(body, proxy.settings.between_bytes_timeout, None);
    let mut size: u64 = 0;
    // The body is held in memory until stored: it draws on the store's fill share.
    let mut claim = proxy.store.reserve();
    loop {
        match body.frame().await {
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
        if let Some((fields, secondary)) = variant {
            let mut stored_headers = head.headers.clone();
            policy::strip_before_store(&mut stored_headers);
            stored_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            let tags = object::surrogate_keys(&stored_headers);
            let obj = Arc::new(Object {
                status: head.status,
                headers: Fields::from_map(&stored_headers),
                body: object::stored_body(&writer.body_chunks()),
                freshness,
                stored_at,
                vary: fields,
                secondary,
                public,
                hits: Default::default(),
                surrogate_keys: tags,
                source: Source::Fetched { started },
            });
            if let Err(e) = proxy.store.insert(&key, obj) {
                tracing::debug!(url = %key.url, reason = %e, "fetched object not stored");
            }
        }
    }
    drop(claim);
    writer.finish(Ok(()));
}
