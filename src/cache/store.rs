//! Where objects live: a byte-bounded moka cache of entries, one entry per primary key
//! holding that URL's variants.
//!
//! The store is the narrow interface the rest of lacquer uses (lookup, insert, remove);
//! moka is behind it so another storage could replace it. LRU rather than moka's default
//! TinyLFU: TinyLFU refuses new objects under pressure, so a pushed or just-fetched object
//! could be dropped on arrival and the very next request would miss.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;
use tokio::time::Instant;

use super::key::CacheKey;
use super::object::Object;
use super::vary;

/// All variants stored for one URL, newest first. Replaced whole on every change
/// (copy-on-write) so readers never lock.
#[derive(Debug)]
pub struct Entry {
    pub url: Arc<str>,
    pub variants: Vec<Arc<Object>>,
}

impl Entry {
    fn weight(&self) -> u32 {
        let w: usize = self.url.len() + self.variants.iter().map(|o| o.weight()).sum::<usize>();
        u32::try_from(w).unwrap_or(u32::MAX)
    }

    fn time_to_keep(&self) -> Duration {
        let now = Instant::now();
        self.variants
            .iter()
            .map(|o| o.time_to_keep(now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

struct KeepUntil;

impl Expiry<u128, Arc<Entry>> for KeepUntil {
    fn expire_after_create(
        &self,
        _key: &u128,
        value: &Arc<Entry>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.time_to_keep())
    }

    fn expire_after_update(
        &self,
        _key: &u128,
        value: &Arc<Entry>,
        _now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.time_to_keep())
    }
}

pub struct Store {
    cache: Cache<u128, Arc<Entry>>,
    max_variants: usize,
}

impl Store {
    pub fn new(capacity_bytes: u64, max_variants: usize) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &u128, v: &Arc<Entry>| v.weight())
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(KeepUntil)
            .build();
        Store {
            cache,
            max_variants: max_variants.max(1),
        }
    }

    /// The variant stored for this URL that matches the request's Vary-selected fields.
    pub fn lookup(&self, key: &CacheKey, req: &HeaderMap) -> Option<Arc<Object>> {
        let entry = self.cache.get(&key.hash)?;
        if entry.url != key.url {
            return None;
        }
        // All variants of an entry share one Vary field list (insert enforces it).
        let first = entry.variants.first()?;
        if first.vary.is_empty() {
            return Some(first.clone());
        }
        let wanted = vary::secondary_key(&first.vary, req)?;
        entry
            .variants
            .iter()
            .find(|o| o.secondary == wanted)
            .cloned()
    }

    /// Every variant stored for a URL.
    pub fn variants(&self, key: &CacheKey) -> Vec<Arc<Object>> {
        match self.cache.get(&key.hash) {
            Some(e) if e.url == key.url => e.variants.clone(),
            _ => Vec::new(),
        }
    }

    /// Store an object, replacing the variant with the same secondary key. Variants
    /// selected by a different Vary field list are dropped: the origin changed what it
    /// varies on, and the old ones could be chosen wrongly.
    pub fn insert(&self, key: &CacheKey, obj: Arc<Object>) {
        let max = self.max_variants;
        let url = key.url.clone();
        self.cache.entry(key.hash).and_compute_with(|current| {
            let mut variants = Vec::with_capacity(2);
            variants.push(obj.clone());
            if let Some(cur) = current {
                let cur = cur.into_value();
                if cur.url == url {
                    variants.extend(
                        cur.variants
                            .iter()
                            .filter(|o| o.vary == obj.vary && o.secondary != obj.secondary)
                            .take(max - 1)
                            .cloned(),
                    );
                }
            }
            Op::Put(Arc::new(Entry {
                url: url.clone(),
                variants,
            }))
        });
    }

    /// Remove every variant of a URL; returns how many there were.
    pub fn remove(&self, key: &CacheKey) -> usize {
        match self.cache.remove(&key.hash) {
            Some(e) if e.url == key.url => e.variants.len(),
            Some(e) => {
                // A different URL with the same hash: put it back untouched.
                self.cache.insert(key.hash, e);
                0
            }
            None => 0,
        }
    }

    pub fn object_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}
