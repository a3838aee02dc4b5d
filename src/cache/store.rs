//! Where objects live: a byte-bounded moka cache of entries, one entry per primary key
//! holding that URL's variants, plus the surrogate-key index that purges use.
//!
//! The store is the narrow interface the cache's front door (`front::Cache`) keeps
//! objects behind (lookup, insert, purge); moka is behind it so another storage could
//! replace it. LRU rather than moka's default
//! TinyLFU: TinyLFU refuses new objects under pressure, so a pushed or just-fetched object
//! could be dropped on arrival and the very next request would miss.
//!
//! The index stays exact without scanning: every entry gets a unique id; `insert`
//! updates the index for the key under moka's per-key lock (it sees the entry it
//! replaces), and the eviction listener removes an evicted entry's tags only where the
//! index still points at that same entry id, so a late eviction notice can never
//! erase the tags of a newer entry for the same key.
//!
//! The byte bound covers what the cache holds in memory, not only what moka has
//! accounted. Moka applies inserts to its eviction policy lazily (every 64 writes or
//! 300 ms), so with 1 MiB objects the map held dozens of objects beyond the bound;
//! `insert` therefore settles moka once the bytes inserted since the last settling
//! reach a small share of the budget (`SETTLE_SHARE`). And a fill holds its body in
//! memory for as long as it downloads: fills in progress draw on a share of the budget
//! (`FILL_SHARE`, through `reserve`) that the cache itself leaves free.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::HeaderMap;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::keyhash::KeyHashBuilder;
use moka::Expiry;
use tokio::time::Instant;

use super::key::CacheKey;
use super::object::{self, Object, Source};
use super::vary;

/// All variants stored for one URL, newest first. Replaced whole on every change
/// (copy-on-write) so readers never lock.
#[derive(Debug)]
pub struct Entry {
    pub url: Arc<str>,
    pub variants: Vec<Arc<Object>>,
    id: u64,
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

    fn tags(&self) -> impl Iterator<Item = &str> {
        self.variants
            .iter()
            .flat_map(|o| o.surrogate_keys.iter().map(|k| &**k))
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

/// tag → (primary key → id of the entry that carries the tag).
#[derive(Default)]
struct TagIndex(Mutex<HashMap<Box<str>, HashMap<u128, u64>>>);

impl TagIndex {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, HashMap<u128, u64>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Point every tag of `new` at it; drop tags that only the replaced entry had.
    fn replace(&self, key: u128, old: Option<&Entry>, new: &Entry) {
        let mut idx = self.lock();
        if let Some(old) = old {
            for tag in old.tags() {
                remove_if(&mut idx, tag, key, old.id);
            }
        }
        for tag in new.tags() {
            idx.entry(Box::from(tag)).or_default().insert(key, new.id);
        }
    }

    fn forget(&self, key: u128, old: &Entry) {
        let mut idx = self.lock();
        for tag in old.tags() {
            remove_if(&mut idx, tag, key, old.id);
        }
    }

    fn keys(&self, tag: &str) -> Vec<u128> {
        self.lock()
            .get(tag)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    fn tag_count(&self) -> usize {
        self.lock().len()
    }

    fn pair_count(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}

fn remove_if(idx: &mut HashMap<Box<str>, HashMap<u128, u64>>, tag: &str, key: u128, id: u64) {
    if let Some(m) = idx.get_mut(tag) {
        if m.get(&key) == Some(&id) {
            m.remove(&key);
        }
        if m.is_empty() {
            idx.remove(tag);
        }
    }
}

/// Why an insert was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("a newer pushed object (version {current:?}) is stored")]
    NewerPush { current: Option<u64> },
    #[error("an object was pushed after this fetch started")]
    PushedDuringFetch,
}

/// Counts for an admin answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// URLs (primary keys) touched.
    pub urls: usize,
    /// Variants removed or marked stale.
    pub objects: usize,
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Purged) {
        self.urls += other.urls;
        self.objects += other.objects;
    }
}

/// The cache leaves 1/FILL_SHARE of its budget to fills in progress. An eighth: at the
/// default 256 MiB that is 32 concurrent 1 MiB fills; a fill that finds the share used
/// up is relayed without being stored, like a response over `max_object_size`.
const FILL_SHARE: u64 = 8;
/// `insert` makes moka apply its pending writes (and so its evictions) once the weight
/// inserted since the last time reaches 1/SETTLE_SHARE of the budget. Only inserts pay
/// for it, never lookups.
const SETTLE_SHARE: u64 = 64;

/// Bytes held by fills in progress, within the fill share of the budget.
#[derive(Debug)]
struct FillBudget {
    held: AtomicU64,
    limit: u64,
}

/// A fill's claim on the fill share: grows with the body, returned when dropped (by
/// then the body is either stored, and charged to the cache, or discarded).
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<FillBudget>,
    held: u64,
}

impl Reservation {
    /// Claim what `len` more body bytes cost; false, claiming nothing, when the fill
    /// share cannot cover them (the fill must then stop storing).
    pub fn grow(&mut self, len: usize) -> bool {
        let want = object::body_weight(len) as u64;
        let limit = self.budget.limit;
        let taken = self
            .budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(want).filter(|&n| n <= limit)
            });
        if taken.is_ok() {
            self.held += want;
        }
        taken.is_ok()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.held, Ordering::AcqRel);
    }
}

pub struct Store {
    cache: Cache<u128, Arc<Entry>, KeyHashBuilder>,
    index: Arc<TagIndex>,
    inserted: AtomicU64,
    evicted: Arc<AtomicU64>,
    next_id: AtomicU64,
    max_variants: usize,
    fills: Arc<FillBudget>,
    /// Weight inserted since moka last applied its pending writes.
    unsettled: AtomicU64,
    settle_at: u64,
}

impl Store {
    /// A store whose objects, with the fills in progress, are bounded by `capacity_bytes`.
    pub fn new(capacity_bytes: u64, max_variants: usize) -> Self {
        let fill_share = capacity_bytes / FILL_SHARE;
        let index = Arc::new(TagIndex::default());
        let listener_index = index.clone();
        let evicted = Arc::new(AtomicU64::new(0));
        let listener_evicted = evicted.clone();
        let cache = Cache::builder()
            .max_capacity(capacity_bytes - fill_share)
            .weigher(|_k: &u128, v: &Arc<Entry>| v.weight())
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(KeepUntil)
            .eviction_listener(move |k: Arc<u128>, v: Arc<Entry>, cause| {
                // Replacements are indexed by `insert`, which sees both entries.
                if cause != RemovalCause::Replaced {
                    listener_index.forget(*k, &v);
                }
                if cause.was_evicted() {
                    listener_evicted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(KeyHashBuilder::default());
        Store {
            cache,
            index,
            inserted: AtomicU64::new(0),
            evicted,
            next_id: AtomicU64::new(1),
            max_variants: max_variants.max(1),
            fills: Arc::new(FillBudget {
                held: AtomicU64::new(0),
                limit: fill_share,
            }),
            unsettled: AtomicU64::new(0),
            settle_at: (capacity_bytes / SETTLE_SHARE).max(1),
        }
    }

    /// An empty claim on the fill share, for a fill that means to store its body.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.fills.clone(),
            held: 0,
        }
    }

    /// Bytes held by fills in progress.
    pub fn filling_bytes(&self) -> u64 {
        self.fills.held.load(Ordering::Acquire)
    }

    /// Count an insert's weight; past the threshold, apply moka's pending writes so its
    /// evictions keep up with large objects.
    fn settle_after(&self, weight: u64) {
        let since = self.unsettled.fetch_add(weight, Ordering::AcqRel) + weight;
        if since >= self.settle_at {
            self.unsettled.store(0, Ordering::Release);
            self.cache.run_pending_tasks();
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
    ///
    /// Version safety: a fetch that started before an object was pushed never replaces
    /// it, and a push never replaces a push with a higher version.
    pub fn insert(&self, key: &CacheKey, obj: Arc<Object>) -> Result<(), Rejected> {
        let max = self.max_variants;
        let url = key.url.clone();
        let mut verdict = Ok(());
        let mut weight = 0;
        self.cache.entry(key.hash).and_compute_with(|current| {
            let current = current.map(|c| c.into_value());
            let current = current.filter(|c| c.url == url);
            if let Some(cur) = current.as_ref() {
                if let Err(e) = admissible(cur, &obj) {
                    verdict = Err(e);
                    return Op::Nop;
                }
            }
            let mut variants = Vec::with_capacity(2);
            variants.push(obj.clone());
            if let Some(cur) = current.as_ref() {
                variants.extend(
                    cur.variants
                        .iter()
                        .filter(|o| o.vary == obj.vary && o.secondary != obj.secondary)
                        .take(max - 1)
                        .cloned(),
                );
            }
            let entry = Arc::new(Entry {
                url: url.clone(),
                variants,
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
            });
            self.index.replace(key.hash, current.as_deref(), &entry);
            weight = entry.weight();
            Op::Put(entry)
        });
        if verdict.is_ok() {
            self.inserted.fetch_add(1, Ordering::Relaxed);
            self.settle_after(u64::from(weight));
        }
        verdict
    }

    /// Replace the variant `old` with `new` (the same response, grown: its encodings),
    /// only if `old` is still stored: a newer fetch, a refresh or a purge since then
    /// wins. Not an insertion: the counters stay. True when replaced.
    pub fn upgrade(&self, key: &CacheKey, old: &Arc<Object>, new: Arc<Object>) -> bool {
        let mut weight = None;
        self.cache.entry(key.hash).and_compute_with(|current| {
            let Some(cur) = current.map(|c| c.into_value()) else {
                return Op::Nop;
            };
            if cur.url != key.url {
                return Op::Nop;
            }
            let Some(at) = cur.variants.iter().position(|o| Arc::ptr_eq(o, old)) else {
                return Op::Nop;
            };
            let mut variants = cur.variants.clone();
            variants[at] = new.clone();
            let entry = Arc::new(Entry {
                url: cur.url.clone(),
                variants,
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
            });
            self.index.replace(key.hash, Some(&cur), &entry);
            weight = Some(entry.weight());
            Op::Put(entry)
        });
        if let Some(w) = weight {
            self.settle_after(u64::from(w));
        }
        weight.is_some()
    }

    /// Remove every variant of a URL (hard), or mark them stale (soft).
    pub fn purge_url(&self, key: &CacheKey, soft: bool) -> Purged {
        if soft {
            return self.soften(key.hash, Some(&key.url));
        }
        let mut removed = Purged::default();
        self.cache
            .entry(key.hash)
            .and_compute_with(|current| match current {
                Some(e) if e.value().url == key.url => {
                    removed = Purged {
                        urls: 1,
                        objects: e.value().variants.len(),
                    };
                    Op::Remove
                }
                _ => Op::Nop,
            });
        removed
    }

    /// Every object tagged with `tag` in its Surrogate-Key header.
    pub fn purge_tag(&self, tag: &str, soft: bool) -> Purged {
        self.purge_hashes(self.index.keys(tag), soft)
    }

    /// Every URL that starts with `prefix` (a normalized URL prefix, e.g.
    /// "http://example.com/live/"). A scan: meant for operators, not for hot paths.
    pub fn purge_prefix(&self, prefix: &str, soft: bool) -> Purged {
        let hashes: Vec<u128> = self
            .cache
            .iter()
            .filter(|(_, e)| e.url.starts_with(prefix))
            .map(|(k, _)| *k)
            .collect();
        self.purge_hashes(hashes, soft)
    }

    fn purge_hashes(&self, hashes: Vec<u128>, soft: bool) -> Purged {
        let mut total = Purged::default();
        for hash in hashes {
            total += if soft {
                self.soften(hash, None)
            } else {
                self.remove_hash(hash)
            };
        }
        total
    }

    /// Everything.
    pub fn purge_all(&self, soft: bool) -> Purged {
        self.purge_prefix("", soft)
    }

    fn remove_hash(&self, hash: u128) -> Purged {
        match self.cache.remove(&hash) {
            Some(e) => Purged {
                urls: 1,
                objects: e.variants.len(),
            },
            None => Purged::default(),
        }
    }

    fn soften(&self, hash: u128, url: Option<&Arc<str>>) -> Purged {
        let mut n = Purged::default();
        let now = Instant::now();
        self.cache.entry(hash).and_compute_with(|current| {
            let Some(cur) = current.map(|c| c.into_value()) else {
                return Op::Nop;
            };
            if url.is_some_and(|u| *u != cur.url) {
                return Op::Nop;
            }
            n = Purged {
                urls: 1,
                objects: cur.variants.len(),
            };
            let entry = Arc::new(Entry {
                url: cur.url.clone(),
                variants: cur
                    .variants
                    .iter()
                    .map(|o| Arc::new(o.soft_purged(now)))
                    .collect(),
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
            });
            self.index.replace(hash, Some(&cur), &entry);
            Op::Put(entry)
        });
        n
    }

    /// (objects inserted, URLs evicted for size or expiry) since start.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.inserted.load(Ordering::Relaxed),
            self.evicted.load(Ordering::Relaxed),
        )
    }

    pub fn object_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// (distinct tags, tag→URL pairs) in the surrogate-key index.
    pub fn index_size(&self) -> (usize, usize) {
        (self.index.tag_count(), self.index.pair_count())
    }

    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

fn admissible(current: &Entry, new: &Object) -> Result<(), Rejected> {
    for old in &current.variants {
        match (old.source, new.source) {
            (Source::Pushed { at, .. }, Source::Fetched { started }) if at > started => {
                return Err(Rejected::PushedDuringFetch);
            }
            (
                Source::Pushed {
                    version: Some(old_v),
                    ..
                },
                Source::Pushed {
                    version: Some(new_v),
                    ..
                },
            ) if old_v > new_v => {
                return Err(Rejected::NewerPush {
                    current: Some(old_v),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::KeyRules;
    use crate::cache::policy::Freshness;
    use bytes::Bytes;

    fn obj(tags: &[&str], source: Source, body: usize) -> Arc<Object> {
        Arc::new(Object::for_test(
            Bytes::from(vec![b'x'; body]),
            Freshness {
                lifetime: Duration::from_secs(60),
                initial_age: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep: Duration::ZERO,
                always_revalidate: false,
                no_stale: false,
            },
            tags.iter().map(|t| Box::from(*t)).collect(),
            source,
        ))
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new("http", "example.com", path, &KeyRules::default())
    }

    fn fetched() -> Source {
        Source::Fetched {
            started: Instant::now(),
        }
    }

    #[test]
    fn upgrade_replaces_only_the_object_still_stored() {
        use crate::compress::{Encoding, Encodings};
        let store = Store::new(1 << 24, 4);
        let k = key("/doc");
        let body = vec![b'x'; 20_000];
        let enc = || Encodings::encode(&body, &[Encoding::Br, Encoding::Gzip], 5, 6);
        let old = obj(&["t"], fetched(), 20_000);
        store.insert(&k, old.clone()).unwrap();
        store.run_pending_tasks();
        let before = store.weighted_size();
        let twin = Arc::new(old.with_encodings(enc()));
        assert!(twin.weight() > old.weight());
        assert!(store.upgrade(&k, &old, twin.clone()));
        store.run_pending_tasks();
        let got = store.lookup(&k, &HeaderMap::new()).unwrap();
        assert!(Arc::ptr_eq(&got, &twin) && got.encoded(Encoding::Gzip).is_some());
        assert_eq!(
            store.weighted_size() - before,
            (twin.weight() - old.weight()) as u64
        );
        // Tags still lead to it.
        assert_eq!(store.purge_tag("t", true).objects, 1);
        // A newer object was stored meanwhile: the late twin of the old one loses.
        let newer = obj(&[], fetched(), 10);
        store.insert(&k, newer.clone()).unwrap();
        assert!(!store.upgrade(&k, &old, Arc::new(old.with_encodings(enc()))));
        let got = store.lookup(&k, &HeaderMap::new()).unwrap();
        assert!(Arc::ptr_eq(&got, &newer));
        // Purged meanwhile: nothing comes back.
        store.purge_url(&k, false);
        assert!(!store.upgrade(&k, &newer, Arc::new(newer.with_encodings(enc()))));
        assert!(store.lookup(&k, &HeaderMap::new()).is_none());
    }

    #[test]
    fn tag_index_follows_replacement_purge_and_eviction() {
        let store = Store::new(1 << 20, 4);
        store
            .insert(&key("/a"), obj(&["t1", "t2"], fetched(), 10))
            .unwrap();
        store
            .insert(&key("/b"), obj(&["t2"], fetched(), 10))
            .unwrap();
        assert_eq!(store.index_size(), (2, 3));
        // Replacement drops tags the new object no longer has.
        store
            .insert(&key("/a"), obj(&["t3"], fetched(), 10))
            .unwrap();
        store.run_pending_tasks();
        assert_eq!(store.index_size(), (2, 2));
        assert_eq!(
            store.purge_tag("t2", false),
            Purged {
                urls: 1,
                objects: 1
            }
        );
        store.run_pending_tasks();
        assert_eq!(store.index_size(), (1, 1));
        assert!(store.lookup(&key("/b"), &HeaderMap::new()).is_none());
        assert_eq!(store.purge_url(&key("/a"), false).objects, 1);
        store.run_pending_tasks();
        assert_eq!(store.index_size(), (0, 0));
    }

    #[test]
    fn eviction_under_pressure_keeps_index_exact() {
        let store = Store::new(64 * 1024, 4);
        for i in 0..200 {
            store
                .insert(
                    &key(&format!("/o{i}")),
                    obj(&["all", &format!("t{i}")], fetched(), 1024),
                )
                .unwrap();
            store.run_pending_tasks();
        }
        store.run_pending_tasks();
        let live = store.object_count() as usize;
        assert!(live < 200, "evictions happened");
        let (_, pairs) = store.index_size();
        assert_eq!(
            pairs,
            live * 2,
            "one pair per tag per live object, no orphans"
        );
        assert_eq!(store.purge_tag("all", false).urls, live);
    }

    #[test]
    fn fetch_started_before_push_cannot_replace_it() {
        let store = Store::new(1 << 20, 4);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let pushed = Source::Pushed {
            at: Instant::now(),
            version: Some(5),
        };
        store.insert(&key("/p"), obj(&[], pushed, 1)).unwrap();
        let late_fetch = obj(&[], Source::Fetched { started }, 2);
        assert_eq!(
            store.insert(&key("/p"), late_fetch),
            Err(Rejected::PushedDuringFetch)
        );
        let older_push = Source::Pushed {
            at: Instant::now(),
            version: Some(4),
        };
        assert!(store.insert(&key("/p"), obj(&[], older_push, 3)).is_err());
        assert_eq!(
            store
                .lookup(&key("/p"), &HeaderMap::new())
                .unwrap()
                .body
                .len(),
            1
        );
        // A fetch that starts after the push may refresh it.
        assert!(store.insert(&key("/p"), obj(&[], fetched(), 4)).is_ok());
    }

    #[test]
    fn soft_purge_marks_stale_and_keeps_object() {
        let store = Store::new(1 << 20, 4);
        let mut o = Object::clone_for_test(&obj(&["t"], fetched(), 10));
        o.freshness.stale_if_error = Duration::from_secs(60);
        store.insert(&key("/s"), Arc::new(o)).unwrap();
        assert_eq!(store.purge_tag("t", true).objects, 1);
        let o = store.lookup(&key("/s"), &HeaderMap::new()).unwrap();
        assert!(!o.is_fresh(Instant::now()));
        assert_eq!(store.index_size(), (1, 1));
    }

    /// Bytes held by the entries in the map, whether or not moka has applied them yet.
    fn held(store: &Store) -> u64 {
        store.cache.iter().map(|(_, e)| u64::from(e.weight())).sum()
    }

    #[test]
    fn large_objects_do_not_overshoot_the_bound() {
        // Moka applied its policy every 64 writes: 64 objects of 1 MiB in a 32 MiB store.
        // Without settling on insert this held 112,792,956 B.
        let cap = 32 << 20;
        let store = Store::new(cap, 4);
        let mut most = 0;
        for i in 0..200 {
            store
                .insert(&key(&format!("/big/{i}")), obj(&[], fetched(), 1 << 20))
                .unwrap();
            most = most.max(held(&store));
        }
        // Within the cache's share, plus what settling lets pile up between two settlings.
        let room = cap - cap / FILL_SHARE + cap / SETTLE_SHARE + (2 << 20);
        assert!(most <= room, "held {most} B, bound {room} B");
        assert!(store.object_count() > 0);
    }

    #[test]
    fn fills_share_an_eighth_of_the_budget() {
        let store = Store::new(8 << 20, 4);
        let share = (8 << 20) / FILL_SHARE;
        let mut a = store.reserve();
        let mut b = store.reserve();
        assert!(a.grow(600 << 10));
        // 600 KiB is charged 750 KiB; the share is 1 MiB.
        assert!(!b.grow(300 << 10), "beyond the share");
        assert!(b.grow(100 << 10));
        assert!(store.filling_bytes() <= share);
        drop(a);
        assert!(b.grow(600 << 10), "a's bytes came back");
        drop(b);
        assert_eq!(store.filling_bytes(), 0);
    }

    #[test]
    fn prefix_and_all() {
        let store = Store::new(1 << 20, 4);
        for p in ["/live/1", "/live/2", "/vod/1"] {
            store.insert(&key(p), obj(&[], fetched(), 1)).unwrap();
        }
        assert_eq!(
            store.purge_prefix("http://example.com/live/", false).urls,
            2
        );
        assert_eq!(store.purge_all(false).urls, 1);
    }
}
