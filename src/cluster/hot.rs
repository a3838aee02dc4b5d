//! Hot keys: a key asked for more than `cluster.hot_key_threshold` times a second on
//! one edge is worth keeping in that edge's own cache whatever the tier does, so a
//! flash crowd does not turn one shard into the PoP's bottleneck.
//!
//! Counters live in a bounded moka cache (TinyLFU admission keeps frequent keys, idle
//! ones expire), one 1-second tumbling window per key plus the previous window's count,
//! so a key stays hot across a window boundary instead of flapping each second.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::cache::keyhash::KeyHashBuilder;
use tokio::time::Instant;

/// Keys tracked at once: memory is bounded whatever the request mix.
const MAX_TRACKED: u64 = 65_536;

#[derive(Debug)]
struct Window {
    /// Seconds since the tracker started, of the window `count` belongs to.
    second: AtomicU64,
    count: AtomicU32,
    previous: AtomicU32,
}

pub struct HotKeys {
    threshold: u32,
    started: Instant,
    counters: Cache<u128, Arc<Window>, KeyHashBuilder>,
}

impl HotKeys {
    /// `threshold` requests per second; 0 turns tracking off.
    pub fn new(threshold: u32) -> HotKeys {
        HotKeys {
            threshold,
            started: Instant::now(),
            counters: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(Duration::from_secs(3))
                .build_with_hasher(KeyHashBuilder::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.threshold > 0
    }

    /// Whether `key_hash` is hot, without counting a request (for the fetch that a
    /// counted request led to).
    pub fn is_hot(&self, key_hash: u128) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let Some(w) = self.counters.get(&key_hash) else {
            return false;
        };
        let now = self.started.elapsed().as_secs();
        let second = w.second.load(Ordering::Acquire);
        let count = w.count.load(Ordering::Acquire);
        let previous = w.previous.load(Ordering::Acquire);
        (second == now && (count > self.threshold || previous > self.threshold))
            || (now == second.saturating_add(1) && count > self.threshold)
    }

    /// Count one request for `key_hash`; true when the key is above the threshold in
    /// this second or was in the last one.
    pub fn observe(&self, key_hash: u128) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let now = self.started.elapsed().as_secs();
        let w = self.counters.get_with(key_hash, || {
            Arc::new(Window {
                second: AtomicU64::new(now),
                count: AtomicU32::new(0),
                previous: AtomicU32::new(0),
            })
        });
        let second = w.second.load(Ordering::Acquire);
        if second != now
            && w.second
                .compare_exchange(second, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This caller rolled the window; concurrent callers count into the new one.
            let last = w.count.swap(0, Ordering::AcqRel);
            w.previous.store(
                if now == second.saturating_add(1) {
                    last
                } else {
                    0
                },
                Ordering::Release,
            );
        }
        let count = w.count.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        count > self.threshold || w.previous.load(Ordering::Acquire) > self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn above_threshold_is_hot_and_cools_down() {
        let hot = HotKeys::new(10);
        for _ in 0..10 {
            assert!(!hot.observe(1));
        }
        assert!(!hot.is_hot(1), "peeking does not count");
        assert!(hot.observe(1), "11th request in one second");
        assert!(hot.is_hot(1));
        assert!(!hot.observe(2), "other keys are not affected");
        assert!(!hot.is_hot(3), "never seen");
        // Next second: still hot thanks to the previous window.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(hot.is_hot(1), "hot in the last window");
        assert!(hot.observe(1));
        // A quiet second later, cold again.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!hot.is_hot(1));
        assert!(!hot.observe(1));
    }

    #[test]
    fn zero_threshold_is_off() {
        let hot = HotKeys::new(0);
        assert!(!hot.enabled());
        for _ in 0..1000 {
            assert!(!hot.observe(7));
        }
    }

    #[test]
    fn tracking_is_bounded() {
        let hot = HotKeys::new(1);
        for k in 0..(MAX_TRACKED as u128 * 2) {
            hot.observe(k);
        }
        hot.counters.run_pending_tasks();
        assert!(hot.counters.entry_count() <= MAX_TRACKED);
    }
}
