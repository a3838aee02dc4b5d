//! Compression at the edge: which responses are compressed, in which encoding, and the
//! one step that turns a response into its compressed form on the way to the client.
//!
//! - `accept`: Accept-Encoding negotiation
//! - `store`: the encodings made once when an object is stored, kept beside its body
//! - `stream`: the body adapter that compresses a response as it streams
//!
//! A stored object keeps its identity body (ranges, and clients that accept no
//! encoding, read it) and gains encoded copies after it is stored; the cache key and
//! the object's own Vary do not change: one object serves every encoding.

pub mod accept;
pub mod store;
pub mod stream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{request, Method, Response, StatusCode};

use crate::body::ProxyBody;
use crate::cache::control::CacheControl;
use crate::cache::key::CacheKey;
use crate::cache::object::Object;
use crate::cache::Cache;
use crate::config::CompressionConfig;
pub use store::Encodings;

/// A content coding lacquer makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "br" => Some(Encoding::Br),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }
}

/// A response built from a stored object carries it here, so that the compression
/// step can serve the object's stored encoding instead of compressing again.
#[derive(Clone)]
pub struct FromStore(pub Arc<Object>);

/// Store-time compressions queued or running at once; past it an object is stored
/// without encodings (and compressed on the fly when served) rather than queueing
/// behind a backlog the CPU cannot clear.
const MAX_STORE_JOBS: usize = 64;

/// One media type pattern of `[compression] types`.
#[derive(Debug, Clone)]
enum TypePattern {
    Exact(Box<str>),
    /// `text/*`: the type with its slash.
    Major(Box<str>),
    /// `+json`: the suffix with its plus.
    Suffix(Box<str>),
}

/// `[compression]` compiled: shared by every site that compresses.
#[derive(Debug)]
pub struct Policy {
    min_size: u64,
    types: Vec<TypePattern>,
    store: Vec<Encoding>,
    brotli_level: u32,
    gzip_level: u32,
    on_the_fly: bool,
    fly_brotli_level: u32,
    fly_gzip_level: u32,
    max_streams: usize,
    streams: Arc<AtomicUsize>,
    jobs: Arc<AtomicUsize>,
}

impl Policy {
    /// From a validated config (entries that do not parse are skipped; it has none).
    pub fn new(c: &CompressionConfig) -> Policy {
        let types = c
            .types
            .iter()
            .map(|t| {
                if t.starts_with('+') {
                    TypePattern::Suffix(t.as_str().into())
                } else if let Some(major) = t.strip_suffix('*') {
                    TypePattern::Major(major.into())
                } else {
                    TypePattern::Exact(t.as_str().into())
                }
            })
            .collect();
        Policy {
            min_size: c.min_size,
            types,
            store: c
                .store
                .iter()
                .filter_map(|e| Encoding::from_name(e))
                .collect(),
            brotli_level: c.brotli_level,
            gzip_level: c.gzip_level,
            on_the_fly: c.on_the_fly,
            fly_brotli_level: c.on_the_fly_brotli_level,
            fly_gzip_level: c.on_the_fly_gzip_level,
            max_streams: c.on_the_fly_max_streams,
            streams: Arc::new(AtomicUsize::new(0)),
            jobs: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// May a response with this status and these fields be compressed? It has a body
    /// (not 204, 206, 304), is not encoded already, not a range, not `no-transform`,
    /// larger than `min_size` when its length is known, of a listed type, and not an
    /// event stream: its events are small and latency-bound, and some clients and
    /// intermediaries buffer a compressed stream.
    pub fn eligible(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT
                    | StatusCode::RESET_CONTENT
                    | StatusCode::PARTIAL_CONTENT
                    | StatusCode::NOT_MODIFIED
            )
        {
            return false;
        }
        // Cheapest and most often decisive first: small bodies (every hit of a small
        // object asks this).
        if content_length(headers).is_some_and(|n| n <= self.min_size) {
            return false;
        }
        let identity = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .all(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        if !identity || headers.contains_key(header::CONTENT_RANGE) {
            return false;
        }
        let Some(media) = media_type(headers) else {
            return false;
        };
        if media.eq_ignore_ascii_case("text/event-stream") || !self.type_listed(media) {
            return false;
        }
        !CacheControl::parse(headers.get_all(header::CACHE_CONTROL)).no_transform
    }

    /// Patterns are lowercase (validated); the response's type may be in any case.
    fn type_listed(&self, media: &str) -> bool {
        let media = media.as_bytes();
        self.types.iter().any(|p| match p {
            TypePattern::Exact(t) => media.eq_ignore_ascii_case(t.as_bytes()),
            TypePattern::Major(m) => {
                media.len() > m.len() && media[..m.len()].eq_ignore_ascii_case(m.as_bytes())
            }
            TypePattern::Suffix(s) => {
                media.contains(&b'/')
                    && media.len() > s.len()
                    && media[media.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        })
    }

    /// Make the stored encodings of an object just inserted under `key`, off the async
    /// runtime, and replace the object with its encoded twin, unless it was replaced or
    /// removed meanwhile. Does nothing for an object that is not eligible.
    pub fn encode_stored(self: &Arc<Self>, cache: &Arc<Cache>, key: &CacheKey, obj: Arc<Object>) {
        if self.store.is_empty() || obj.has_encodings() {
            return;
        }
        if !self.eligible(obj.status, &obj.headers.to_map()) {
            return;
        }
        let Some(job) = Permit::take(&self.jobs, MAX_STORE_JOBS) else {
            tracing::debug!(url = %key.url, "store-time compression backlog full");
            return;
        };
        let (policy, cache, key) = (self.clone(), cache.clone(), key.clone());
        tokio::spawn(async move {
            let body = obj.body.clone();
            let (which, br, gz) = (policy.store.clone(), policy.brotli_level, policy.gzip_level);
            let made =
                tokio::task::spawn_blocking(move || Encodings::encode(&body, &which, br, gz)).await;
            drop(job);
            match made {
                Ok(enc) if !enc.is_empty() => {
                    let twin = Arc::new(obj.with_encodings(enc));
                    cache.upgrade(&key, &obj, twin);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(url = %key.url, error = %e, "compression failed"),
            }
        });
    }

    /// The compression step: turn a response into the representation the client asked
    /// for. Adds `Vary: Accept-Encoding` to every eligible response (identity too: a
    /// downstream cache must not give one client's encoding to another), and when an
    /// encoding is chosen serves the stored one or compresses on the fly, with
    /// Content-Encoding, the encoding's Content-Length (none on the fly), a weak ETag
    /// and no Accept-Ranges (ranges are of the identity body only).
    /// Returns the encoding sent and where it came from (`stored`, `on-the-fly`).
    pub fn respond(
        &self,
        asked: &Asked,
        resp: &mut Response<ProxyBody>,
    ) -> Option<(Encoding, &'static str)> {
        let stored = resp.extensions_mut().remove::<FromStore>();
        if resp.status() == StatusCode::NOT_MODIFIED {
            // A 304 describes the representation a 200 would have carried.
            let obj = stored?.0;
            if self.eligible(obj.status, &obj.headers.to_map()) {
                add_vary(resp.headers_mut());
                if asked.encoding.is_some() {
                    weaken_etag(resp.headers_mut());
                }
            }
            return None;
        }
        if !self.eligible(resp.status(), resp.headers()) {
            return None;
        }
        add_vary(resp.headers_mut());
        let encoding = asked.encoding?;
        let from_store = stored.and_then(|s| s.0.encoded(encoding).cloned());
        let headers = resp.headers_mut();
        let source = if from_store.is_some() {
            "stored"
        } else {
            "on-the-fly"
        };
        if let Some(body) = from_store {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            if !asked.head {
                *resp.body_mut() = ProxyBody::full(body);
            }
        } else {
            if !self.on_the_fly {
                return None;
            }
            let permit = Permit::take(&self.streams, self.max_streams)?;
            headers.remove(header::CONTENT_LENGTH);
            if !asked.head {
                let level = match encoding {
                    Encoding::Br => self.fly_brotli_level,
                    Encoding::Gzip => self.fly_gzip_level,
                };
                let body = std::mem::replace(resp.body_mut(), ProxyBody::empty());
                *resp.body_mut() =
                    ProxyBody::compressed(stream::Compressing::new(body, encoding, level, permit));
            }
        }
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.name()),
        );
        headers.remove(header::ACCEPT_RANGES);
        weaken_etag(headers);
        Some((encoding, source))
    }
}

/// What a request asks of the compression step.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// The encoding to send, None for identity.
    pub encoding: Option<Encoding>,
    pub head: bool,
}

impl Asked {
    /// None when the step must leave the response alone: a Range request gets ranges
    /// of the identity body, with its own validators. A request's `no-transform`
    /// asks for identity.
    pub fn of(req: &request::Parts) -> Option<Asked> {
        if req.headers.contains_key(header::RANGE) {
            return None;
        }
        // The request's Cache-Control is parsed only when it could matter: an encoding
        // is accepted and the field is there at all (this runs on every request).
        let encoding = accept::preferred(&req.headers).filter(|_| {
            !req.headers.contains_key(header::CACHE_CONTROL)
                || !CacheControl::parse(req.headers.get_all(header::CACHE_CONTROL)).no_transform
        });
        Some(Asked {
            encoding,
            head: req.method == Method::HEAD,
        })
    }
}

/// A slot in a bounded count (streams compressing, store jobs), freed when dropped.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Permit {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(count.clone()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The media type without parameters, e.g. `text/html` of `text/html; charset=utf-8`.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let t = v.split(';').next()?.trim();
    (!t.is_empty()).then_some(t)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Add Accept-Encoding to Vary, unless it is there already or Vary is `*`.
fn add_vary(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding"));
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A transformed body is not the bytes a strong ETag promised (RFC 9110 8.8.1): `"x"`
/// becomes `W/"x"`. A weak one stays as it is.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(tag) = headers.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"\"") {
        let mut weak = Vec::with_capacity(tag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&weak) {
            headers.insert(header::ETAG, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(&CompressionConfig::default())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn eligibility() {
        let p = policy();
        let ok = |pairs: &[(&str, &str)]| p.eligible(StatusCode::OK, &headers(pairs));
        assert!(ok(&[
            ("content-type", "application/json"),
            ("content-length", "2000")
        ]));
        assert!(ok(&[("content-type", "Text/HTML; charset=utf-8")]));
        assert!(ok(&[("content-type", "application/ld+json")]));
        assert!(ok(&[("content-type", "application/rss+xml")]));
        assert!(ok(&[("content-type", "image/svg+xml")]));
        assert!(ok(&[
            ("content-type", "text/css"),
            ("content-encoding", "identity")
        ]));
        assert!(!ok(&[
            ("content-type", "application/json"),
            ("content-length", "1024")
        ]));
        assert!(!ok(&[("content-type", "image/png")]));
        assert!(!ok(&[]));
        assert!(!ok(&[("content-type", "text/event-stream")]));
        assert!(!ok(&[
            ("content-type", "text/html"),
            ("content-encoding", "gzip")
        ]));
        assert!(!ok(&[
            ("content-type", "text/html"),
            ("content-range", "bytes 0-1/2")
        ]));
        assert!(!ok(&[
            ("content-type", "text/html"),
            ("cache-control", "max-age=60, no-transform")
        ]));
        assert!(!p.eligible(
            StatusCode::PARTIAL_CONTENT,
            &headers(&[("content-type", "text/html")])
        ));
        assert!(!p.eligible(
            StatusCode::NO_CONTENT,
            &headers(&[("content-type", "text/html")])
        ));
        assert!(p.eligible(
            StatusCode::NOT_FOUND,
            &headers(&[("content-type", "text/html")])
        ));
    }

    #[test]
    fn vary_and_etag() {
        let mut h = headers(&[("vary", "Accept-Language"), ("etag", "\"v1\"")]);
        add_vary(&mut h);
        add_vary(&mut h);
        let vary: Vec<_> = h.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Accept-Language", "Accept-Encoding"]);
        weaken_etag(&mut h);
        weaken_etag(&mut h);
        assert_eq!(h[header::ETAG], "W/\"v1\"");
        let mut star = headers(&[("vary", "*")]);
        add_vary(&mut star);
        assert_eq!(star.get_all(header::VARY).iter().count(), 1);
        let mut listed = headers(&[("vary", "origin, accept-encoding")]);
        add_vary(&mut listed);
        assert_eq!(listed.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn permits_are_bounded_and_returned() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Permit::take(&count, 2).unwrap();
        let _b = Permit::take(&count, 2).unwrap();
        assert!(Permit::take(&count, 2).is_none());
        drop(a);
        assert!(Permit::take(&count, 2).is_some());
    }
}
