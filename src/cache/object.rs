//! A stored response and what it takes to reuse it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use tokio::time::Instant;

use super::policy::{self, Freshness, Usability};
use super::vary::SecondaryKey;

/// Bytes charged per object beyond headers and body: the `Object` and `Entry` structs,
/// the store's own node, the Arc counts. Measured, roughly, rather than guessed low:
/// the byte bound is only honest if overhead is counted.
pub const OBJECT_OVERHEAD: usize = 320;

/// One stored response (one variant of a URL).
#[derive(Debug)]
pub struct Object {
    pub status: StatusCode,
    /// Stored header fields: hop-by-hop removed, Content-Length set to the body's length.
    pub headers: HeaderMap,
    pub body: Bytes,
    pub freshness: Freshness,
    /// When the response (or the 304 that last refreshed it) was received.
    pub stored_at: Instant,
    /// Request fields this variant was selected by (its response's Vary).
    pub vary: Vec<HeaderName>,
    pub secondary: SecondaryKey,
    /// Stored under `public` / `s-maxage`: may also answer requests with credentials.
    pub public: bool,
    pub hits: AtomicU64,
}

impl Object {
    /// Current age (RFC 9111 4.2.3): the age it had on arrival plus time resident here.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn usability(&self, now: Instant, req: &HeaderMap) -> Usability {
        policy::usability(&self.freshness, self.age(now), req)
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
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 48)
            .sum();
        let secondary: usize = self
            .secondary
            .0
            .iter()
            .map(|v| v.as_ref().map_or(8, |b| b.len() + 32))
            .sum();
        OBJECT_OVERHEAD + headers + secondary + self.body.len() + self.vary.len() * 32
    }

    pub fn hit(&self) -> u64 {
        self.hits.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn content_length(&self) -> u64 {
        self.body.len() as u64
    }
}
