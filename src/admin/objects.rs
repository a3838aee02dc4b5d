//! `PUT /objects?url=...` pushes an object; `GET /objects?url=...` shows what is stored.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, StatusCode};
use serde::Serialize;
use tokio::time::Instant;

use super::error::{json, ApiError, ApiResult};
use super::input::Query;
use crate::cache::control::DELTA_SECONDS_MAX;
use crate::cache::key::CacheKey;
use crate::cache::object::{Object, Source};
use crate::cache::policy;
use crate::cache::store::Rejected;
use crate::cache::{Push, PushRefused};
use crate::proxy::{headers, Proxy};

/// Fields that only make sense in a request (RFC 9110 10.1, 12.5; RFC 9111 5.2.1):
/// clients such as curl add some on their own, and none belongs in a stored response.
const REQUEST_ONLY: [HeaderName; 16] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::EXPECT,
    header::USER_AGENT,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::ACCEPT_CHARSET,
    header::COOKIE,
    header::REFERER,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::RANGE,
    header::ORIGIN,
];

/// The `url=` parameter as a cache key, like a request for that URL would compute it.
fn url_key(q: &Query, proxy: &Proxy) -> Result<CacheKey, ApiError> {
    let url = q.required("url")?;
    proxy
        .key_for_url(url)
        .map_err(|e| ApiError::bad_request(format!("url {url:?}: {e}")))
}

/// What a push asked for, from its query.
struct PushParams {
    key: CacheKey,
    status: StatusCode,
    ttl: Option<Duration>,
    version: Option<u64>,
}

/// The cache key a push targets (validates the whole query on the way).
pub fn push_key(parts: &request::Parts, proxy: &Proxy) -> Result<CacheKey, ApiError> {
    Ok(push_params(parts, proxy)?.key)
}

fn push_params(parts: &request::Parts, proxy: &Proxy) -> Result<PushParams, ApiError> {
    let q = Query::parse(
        parts.uri.query(),
        &["url", "status", "ttl", "version", "scope", "edges"],
    )?;
    let key = url_key(&q, proxy)?;
    let status = match q.number::<u16>("status")? {
        None => StatusCode::OK,
        Some(s) => StatusCode::from_u16(s)
            .ok()
            .filter(|s| (200..=599).contains(&s.as_u16()))
            .ok_or_else(|| {
                ApiError::bad_request(format!("status={s} is not a final status (200-599)"))
            })?,
    };
    let ttl = q
        .number::<u64>("ttl")?
        .map(|s| Duration::from_secs(s.min(DELTA_SECONDS_MAX)));
    let version = match q.number::<u64>("version")? {
        Some(v) => Some(v),
        None => last_modified_version(&parts.headers),
    };
    Ok(PushParams {
        key,
        status,
        ttl,
        version,
    })
}

/// Without an explicit version, Last-Modified (in seconds since the epoch) orders pushes
/// of the same URL: a push of an older document then cannot replace a newer one.
fn last_modified_version(h: &HeaderMap) -> Option<u64> {
    let raw = h.get(header::LAST_MODIFIED)?;
    let t = policy::parse_http_date(raw.as_bytes())?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The response headers to store: what the client sent, minus connection and
/// request-only fields, with Content-Length set to the body's real length.
fn stored_headers(
    sent: &HeaderMap,
    len: usize,
    ttl: Option<Duration>,
) -> Result<HeaderMap, ApiError> {
    let mut h = sent.clone();
    headers::strip_hop_by_hop(&mut h);
    for name in &REQUEST_ONLY {
        h.remove(name);
    }
    // Pushes hold one representation per URL; selecting among variants would need the
    // request fields of every variant, which a push cannot give.
    if h.contains_key(header::VARY) {
        return Err(ApiError::bad_request(
            "pushing objects with Vary is not supported: push without Vary",
        ));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // Without any Cache-Control, downstream clients get the same lifetime as this cache.
    if let Some(ttl) = ttl.filter(|_| !h.contains_key(header::CACHE_CONTROL)) {
        if let Ok(v) = HeaderValue::from_str(&format!("max-age={}", ttl.as_secs())) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    Ok(h)
}

#[derive(Serialize)]
struct Pushed<'a> {
    url: &'a str,
    status: u16,
    size: usize,
    ttl: i64,
    version: Option<u64>,
    surrogate_keys: &'a [Box<str>],
}

pub fn push(proxy: &Proxy, parts: &request::Parts, body: Bytes) -> ApiResult {
    let p = push_params(parts, proxy)?;
    let rules = proxy.rules_for(&p.key.url);
    if body.len() as u64 > rules.max_object_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "object of {} bytes is larger than cache.max_object_size ({} bytes)",
                body.len(),
                rules.max_object_size
            ),
        ));
    }
    let headers = stored_headers(&parts.headers, body.len(), p.ttl)?;
    let push = Push {
        status: p.status,
        headers,
        body,
        ttl: p.ttl,
        version: p.version,
    };
    let obj = match proxy.cache().push(&p.key, push, rules) {
        Ok(obj) => obj,
        Err(PushRefused::NotStorable(r)) => {
            return Err(ApiError::bad_request(format!(
                "not storable: {r}{}",
                if r.lacks_freshness() {
                    " (give ttl= or a Cache-Control max-age)"
                } else {
                    ""
                }
            )))
        }
        Err(PushRefused::Rejected(r)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                rejected_message(&r, p.version),
            ))
        }
    };
    // Hits get the stored encodings too, once made.
    if let Some(policy) = proxy.compression_for(&p.key.url) {
        policy.encode_stored(proxy.cache(), &p.key, obj.clone());
    }
    let now = Instant::now();
    tracing::info!(target: "lacquer::admin", url = %p.key.url, version = ?p.version, size = obj.body.len(), "pushed");
    Ok(json(
        StatusCode::CREATED,
        &Pushed {
            url: &p.key.url,
            status: p.status.as_u16(),
            size: obj.body.len(),
            ttl: signed_secs(obj.freshness.lifetime, obj.age(now)),
            version: p.version,
            surrogate_keys: &obj.surrogate_keys,
        },
    ))
}

fn rejected_message(r: &Rejected, version: Option<u64>) -> String {
    match r {
        Rejected::NewerPush { current } => format!(
            "not stored: a push with version {} is stored, newer than {}",
            current.map_or_else(|| "?".to_string(), |v| v.to_string()),
            version.map_or_else(|| "?".to_string(), |v| v.to_string()),
        ),
        other => format!("not stored: {other}"),
    }
}

#[derive(Serialize)]
struct Inspected<'a> {
    node: &'a str,
    url: &'a str,
    variants: Vec<VariantView>,
}

/// One stored variant. Times are whole seconds; the `*_left` values go negative once
/// their window has passed, so an operator sees by how much.
#[derive(Serialize)]
struct VariantView {
    status: u16,
    fresh: bool,
    age: u64,
    ttl_left: i64,
    grace_left: i64,
    stale_if_error_left: i64,
    keep_left: i64,
    size: usize,
    hits: u64,
    surrogate_keys: Vec<String>,
    source: &'static str,
    version: Option<u64>,
    vary: BTreeMap<String, Option<String>>,
}

pub fn inspect(proxy: &Proxy, node: &str, parts: &request::Parts) -> ApiResult {
    let q = Query::parse(parts.uri.query(), &["url"])?;
    let key = url_key(&q, proxy)?;
    let variants = proxy.cache().variants(&key);
    if variants.is_empty() {
        return Err(ApiError::not_found(format!(
            "nothing cached for {}",
            key.url
        )));
    }
    let now = Instant::now();
    let views = variants.iter().map(|o| view(o, now)).collect();
    Ok(json(
        StatusCode::OK,
        &Inspected {
            node,
            url: &key.url,
            variants: views,
        },
    ))
}

fn view(o: &Object, now: Instant) -> VariantView {
    let f = &o.freshness;
    let age = o.age(now);
    let (source, version) = match o.source {
        Source::Fetched { .. } => ("fetched", None),
        Source::Pushed { version, .. } => ("pushed", version),
    };
    VariantView {
        status: o.status.as_u16(),
        fresh: o.is_fresh(now),
        age: age.as_secs(),
        ttl_left: signed_secs(f.lifetime, age),
        grace_left: signed_secs(f.lifetime.saturating_add(f.stale_while_revalidate), age),
        stale_if_error_left: signed_secs(f.lifetime.saturating_add(f.stale_if_error), age),
        keep_left: signed_secs(
            f.lifetime
                .saturating_add(f.stale_while_revalidate.max(f.stale_if_error))
                .saturating_add(f.keep),
            age,
        ),
        size: o.body.len(),
        hits: o.hits(),
        surrogate_keys: o.surrogate_keys.iter().map(|k| k.to_string()).collect(),
        source,
        version,
        vary: o
            .vary
            .iter()
            .zip(o.secondary.0.iter())
            .map(|(name, v)| {
                let value = v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
                (name.as_str().to_owned(), value)
            })
            .collect(),
    }
}

/// `end - now` in whole seconds, negative once `end` has passed.
fn signed_secs(end: Duration, now: Duration) -> i64 {
    let diff = i128::from(end.as_secs()) - i128::from(now.as_secs());
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_request_and_hop_fields() {
        let mut sent = HeaderMap::new();
        sent.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        sent.insert(header::USER_AGENT, HeaderValue::from_static("curl/8"));
        sent.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        sent.insert(header::CONNECTION, HeaderValue::from_static("x-conn"));
        sent.insert("x-conn", HeaderValue::from_static("1"));
        sent.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let h = stored_headers(&sent, 5, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(h[header::CONTENT_LENGTH], "5");
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        for gone in ["authorization", "user-agent", "connection", "x-conn"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn ttl_keeps_an_explicit_cache_control() {
        let mut sent = HeaderMap::new();
        sent.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        let h = stored_headers(&sent, 0, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(h[header::CACHE_CONTROL], "max-age=5");
    }

    #[test]
    fn vary_is_refused() {
        let mut sent = HeaderMap::new();
        sent.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        assert_eq!(
            stored_headers(&sent, 0, None).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn version_from_last_modified() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:01:40 GMT"),
        );
        assert_eq!(last_modified_version(&h), Some(100));
        h.insert(header::LAST_MODIFIED, HeaderValue::from_static("yesterday"));
        assert_eq!(last_modified_version(&h), None);
    }

    #[test]
    fn signed_seconds() {
        assert_eq!(
            signed_secs(Duration::from_secs(10), Duration::from_secs(3)),
            7
        );
        assert_eq!(
            signed_secs(Duration::from_secs(3), Duration::from_secs(10)),
            -7
        );
        assert_eq!(signed_secs(Duration::MAX, Duration::ZERO), i64::MAX);
    }
}
