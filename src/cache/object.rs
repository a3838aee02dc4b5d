//! A stored response and what it takes to reuse it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::control::CacheControl;
use super::fields::Fields;
use super::front::{Admitted, Times};
use super::partial::Parts;
use super::policy::{self, Freshness, Usability};
use super::vary::SecondaryKey;
use crate::compress::{Encoding, Encodings};

/// Bytes charged per object beyond headers and body: the `Object` and `Entry`
/// structs, moka's node and timer wheel entry, the Arcs, the URL, allocator slack.
/// Calibrated, not guessed: the byte bound is only a bound on RSS if overhead is
/// counted. Measured by filling 100k objects of 1 KiB from nginx (9 stored fields
/// each) and reading RSS: 2,413 B per object; with these constants such an object
/// is charged about 2,640 B.
pub const OBJECT_OVERHEAD: usize = 800;
/// Per stored header field: its name and value offset (see `Fields`).
const FIELD_OVERHEAD: usize = 40;

/// Bytes a body of `len` costs in memory: a quarter more than its length. The allocator
/// serves bodies from size classes about 12% apart, and LRU eviction of mixed sizes
/// leaves pages partly used, more so the longer it runs. The soak run (bodies of 256 B
/// to 16 KiB under churn, tests/soak.rs) measured the cache's RSS at about 125% of its
/// bound with bodies charged at their length (40 s), 112% with a sixth more (10 min),
/// and 106% with a quarter (10 min). Fills in progress are charged the same way.
pub fn body_weight(len: usize) -> usize {
    len.saturating_add(len / 4)
}

/// Bodies of at least this size are stored in their own anonymous memory mapping.
/// mimalloc serves 84 to 512 KiB from 4 MiB pages shared by one size class, and a page
/// stays resident while any body in it lives: under LRU churn of mixed sizes most
/// pages were held by a few bodies (soak, SOAK_MIX=1: the cache's RSS at 1.7x its bound
/// with everything else fixed). A mapping leaves RSS when its body is dropped, and wastes
/// less than a 4 KiB page; 64 KiB keeps the number of mappings at most one per 64 KiB
/// of cache (and `vm.max_map_count` is a fallback, not a failure).
const MAPPED_BODY_MIN: usize = 64 * 1024;

/// The body to store, in one exactly-sized buffer built from the chunks that arrived.
/// Copied, not kept as is: chunks from hyper can be slices of a larger read buffer, and
/// keeping them would pin that whole buffer for the object's lifetime.
pub fn stored_body(chunks: &[Bytes]) -> Bytes {
    let size: usize = chunks.iter().map(Bytes::len).sum();
    if size >= MAPPED_BODY_MIN {
        // Mapping fails when the process is out of mappings or memory: the heap then.
        // Populated: one call faults every page in, rather than one fault per page.
        if let Ok(mut map) = memmap2::MmapOptions::new().len(size).populate().map_anon() {
            let mut at = 0;
            for c in chunks {
                map[at..at + c.len()].copy_from_slice(c);
                at += c.len();
            }
            return Bytes::from_owner(map);
        }
    }
    let mut buf = BytesMut::with_capacity(size);
    for c in chunks {
        buf.extend_from_slice(c);
    }
    buf.freeze()
}

/// One stored response (one variant of a URL). Built only by its constructors
/// ([`Object::fetched`], [`Object::with_body`], [`Object::partial`],
/// [`Object::refreshed`], [`Object::pushed`]), which apply the
/// rules every stored object follows (fields stripped as the origin asked, tags read,
/// Content-Length true to the body).
#[derive(Debug)]
pub struct Object {
    pub status: StatusCode,
    /// Stored header fields: hop-by-hop removed, Content-Length set to the body's length.
    pub headers: Fields,
    pub body: Bytes,
    pub freshness: Freshness,
    /// When the response (or the 304 that last refreshed it) was received.
    pub stored_at: Instant,
    /// Request fields this variant was selected by (its response's Vary).
    pub vary: Vec<HeaderName>,
    pub secondary: SecondaryKey,
    /// Stored under `public` / `s-maxage`: may also answer requests with credentials.
    pub public: bool,
    hits: AtomicU64,
    /// Tags from the `Surrogate-Key` response header, for purge by tag.
    pub surrogate_keys: Vec<Box<str>>,
    /// Where the object came from; pushed objects carry a version.
    pub source: Source,
    /// The ranges held of an incomplete response (a stored 206, `body` empty); None for
    /// a complete one. Only the cache's partial entries hold these (`Cache::lookup_part`).
    parts: Option<Arc<Parts>>,
    /// Encoded copies of the body, made after the object was stored (`crate::compress`).
    encodings: Option<Arc<Encodings>>,
}

/// How an object entered the cache, which decides what may replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fetched from the origin by a request that started at `started`.
    Fetched { started: Instant },
    /// Pushed through the admin API, with an optional operator-given version.
    Pushed { at: Instant, version: Option<u64> },
}

/// Most tags kept per object, and longest tag: the header is origin input.
const MAX_SURROGATE_KEYS: usize = 64;
const MAX_SURROGATE_KEY_LEN: usize = 256;

const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// Tags from `Surrogate-Key` (space-separated, as Fastly and Varnish xkey use them).
pub fn surrogate_keys(headers: &HeaderMap) -> Vec<Box<str>> {
    let mut keys: Vec<Box<str>> = headers
        .get_all(&SURROGATE_KEY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(str::split_ascii_whitespace)
        .filter(|k| k.len() <= MAX_SURROGATE_KEY_LEN)
        .map(Box::from)
        .collect();
    keys.sort();
    keys.dedup();
    keys.truncate(MAX_SURROGATE_KEYS);
    keys
}

impl Object {
    /// A fetched response admitted for storing (`Cache::admit`), with its whole body.
    pub fn fetched(
        status: StatusCode,
        headers: &HeaderMap,
        chunks: &[Bytes],
        admitted: &Admitted,
        times: &Times,
    ) -> Object {
        let mut stored = headers.clone();
        policy::strip_before_store(&mut stored);
        Object::with_body(status, &stored, stored_body(chunks), admitted, times)
    }

    /// A fetched response with its body in place, fields already stripped for storing
    /// (a fetched 200, or one whose parts were joined into the whole representation).
    pub fn with_body(
        status: StatusCode,
        stored: &HeaderMap,
        body: Bytes,
        admitted: &Admitted,
        times: &Times,
    ) -> Object {
        let mut stored = stored.clone();
        stored.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Object::admitted(status, &stored, body, None, admitted, times)
    }

    /// An incomplete response: the ranges held of one representation, with the fields
    /// of the 206 that last added to them (RFC 9111 3.4), stripped for storing and
    /// without Content-Range and Content-Length, which each answer sets for its range.
    pub fn partial(stored: &HeaderMap, parts: Parts, admitted: &Admitted, times: &Times) -> Object {
        let parts = Some(Arc::new(parts));
        Object::admitted(
            StatusCode::PARTIAL_CONTENT,
            stored,
            Bytes::new(),
            parts,
            admitted,
            times,
        )
    }

    /// The fields every fetched object takes from its admission and fetch times.
    fn admitted(
        status: StatusCode,
        stored: &HeaderMap,
        body: Bytes,
        parts: Option<Arc<Parts>>,
        admitted: &Admitted,
        times: &Times,
    ) -> Object {
        Object {
            status,
            surrogate_keys: surrogate_keys(stored),
            headers: Fields::from_map(stored),
            body,
            freshness: admitted.freshness,
            stored_at: times.received,
            vary: admitted.vary.clone(),
            secondary: admitted.secondary.clone(),
            public: admitted.public,
            hits: AtomicU64::new(0),
            source: Source::Fetched {
                started: times.started,
            },
            parts,
            encodings: None,
        }
    }

    /// The ranges held, for an incomplete response.
    pub fn parts(&self) -> Option<&Parts> {
        self.parts.as_deref()
    }

    /// `old` revalidated by a 304: the same body and variant, with the merged fields
    /// (already stripped for storing) and the lifetime they give.
    pub fn refreshed(
        old: &Object,
        merged: &HeaderMap,
        freshness: Freshness,
        times: &Times,
    ) -> Object {
        Object {
            status: old.status,
            headers: Fields::from_map(merged),
            body: old.body.clone(),
            freshness,
            stored_at: times.received,
            vary: old.vary.clone(),
            secondary: old.secondary.clone(),
            public: old.public,
            hits: AtomicU64::new(0),
            surrogate_keys: surrogate_keys(merged),
            source: Source::Fetched {
                started: times.started,
            },
            parts: old.parts.clone(),
            // The same body, so the same encodings.
            encodings: old.encodings.clone(),
        }
    }

    /// An object pushed by an operator at `at`: fields already stripped for storing,
    /// the body in its own buffer ([`stored_body`]). One representation per URL (no
    /// Vary), and `public`: the operator speaks for every client.
    pub fn pushed(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        freshness: Freshness,
        version: Option<u64>,
        at: Instant,
    ) -> Object {
        Object {
            status,
            surrogate_keys: surrogate_keys(headers),
            headers: Fields::from_map(headers),
            body,
            freshness,
            stored_at: at,
            vary: Vec::new(),
            secondary: SecondaryKey(Vec::new()),
            public: true,
            hits: AtomicU64::new(0),
            source: Source::Pushed { at, version },
            parts: None,
            encodings: None,
        }
    }

    /// Times this object was served.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Current age (RFC 9111 4.2.3): the age it had on arrival plus time resident here.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// What this object is good for now, given the request's own Cache-Control.
    pub fn usability(&self, now: Instant, req: &CacheControl) -> Usability {
        policy::usability_with(&self.freshness, self.age(now), req)
    }

    /// How long from now this object is worth keeping at all: fresh time, then the
    /// longest stale window, then `keep` for revalidation.
    pub fn time_to_keep(&self, now: Instant) -> Duration {
        let f = &self.freshness;
        let stale_window = f.stale_while_revalidate.max(f.stale_if_error);
        let total = f
            .lifetime
            .saturating_add(stale_window)
            .saturating_add(f.keep);
        total.saturating_sub(self.age(now))
    }

    /// Bytes this object costs in memory, for the store's byte bound.
    pub fn weight(&self) -> usize {
        let headers = self.headers.byte_len() + self.headers.len() * FIELD_OVERHEAD;
        let secondary: usize = self
            .secondary
            .0
            .iter()
            .map(|v| v.as_ref().map_or(8, |b| b.len() + 32))
            .sum();
        let tags: usize = self.surrogate_keys.iter().map(|k| k.len() + 16).sum();
        OBJECT_OVERHEAD
            + headers
            + secondary
            + tags
            + body_weight(self.body.len())
            + self.parts().map_or(0, Parts::weight)
            + self.encodings.as_ref().map_or(0, |e| e.weight())
            + self.vary.len() * 32
    }

    /// The body in `encoding`, when a copy was made.
    pub fn encoded(&self, encoding: Encoding) -> Option<&Bytes> {
        self.encodings.as_ref()?.get(encoding)
    }

    pub fn has_encodings(&self) -> bool {
        self.encodings.is_some()
    }

    /// This object with encoded copies of its body: the same response, freshness and
    /// hit count, for replacing it in the store.
    pub fn with_encodings(&self, encodings: Encodings) -> Object {
        let mut twin = self.with_freshness(self.freshness, self.stored_at);
        twin.encodings = Some(Arc::new(encodings));
        twin
    }

    pub fn hit(&self) -> u64 {
        self.hits.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn content_length(&self) -> u64 {
        self.body.len() as u64
    }

    /// A copy with other freshness (and the same body, which is shared, not copied).
    fn with_freshness(&self, freshness: Freshness, stored_at: Instant) -> Object {
        Object {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
            freshness,
            stored_at,
            vary: self.vary.clone(),
            secondary: self.secondary.clone(),
            public: self.public,
            hits: AtomicU64::new(self.hits.load(Ordering::Relaxed)),
            surrogate_keys: self.surrogate_keys.clone(),
            source: self.source,
            parts: self.parts.clone(),
            encodings: self.encodings.clone(),
        }
    }

    /// Any object, for the store's tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        body: Bytes,
        freshness: Freshness,
        surrogate_keys: Vec<Box<str>>,
        source: Source,
    ) -> Object {
        Object {
            status: StatusCode::OK,
            headers: Fields::default(),
            body,
            freshness,
            stored_at: Instant::now(),
            vary: Vec::new(),
            secondary: SecondaryKey(Vec::new()),
            public: false,
            hits: AtomicU64::new(0),
            surrogate_keys,
            source,
            parts: None,
            encodings: None,
        }
    }

    #[cfg(test)]
    pub fn clone_for_test(&self) -> Object {
        self.with_freshness(self.freshness, self.stored_at)
    }

    /// Soft purge: stale from now on, so it can still be served within its stale
    /// windows (grace, stale-if-error) while one refresh runs.
    pub fn soft_purged(&self, now: Instant) -> Object {
        let mut f = self.freshness;
        let age = self.age(now);
        if f.lifetime > age {
            f.lifetime = age;
        }
        self.with_freshness(f, self.stored_at)
    }

    /// Is this object stale already (for inspection)?
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_body_joins_chunks_small_and_mapped() {
        for size in [
            0,
            1000,
            MAPPED_BODY_MIN - 1,
            MAPPED_BODY_MIN,
            3 * MAPPED_BODY_MIN + 17,
        ] {
            let whole: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let chunks: Vec<Bytes> = whole.chunks(10_000).map(Bytes::copy_from_slice).collect();
            let body = stored_body(&chunks);
            assert_eq!(body.len(), size);
            assert_eq!(&body[..], &whole[..], "size {size}");
        }
    }
}
