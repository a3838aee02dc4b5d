//! A per-client-IP rate limit: a token bucket per address, kept as GCRA (one
//! "theoretical arrival time" per client instead of a token count and a timestamp).
//! A client may make `burst + 1` requests at once, then one per `1 / rate` seconds;
//! a refused request costs it nothing.
//!
//! At most `max_clients` addresses are tracked: the table is split into shards, each
//! a hash map plus a least-recently-seen list threaded through a slot array, with a
//! fixed share of `max_clients`. A new client in a full shard takes the slot of that
//! shard's least recently seen one, so every call does a constant amount of work:
//! one hash, one lock, one probe, a few index writes. A forgotten client starts again
//! with a full bucket; an active abuser is recently seen, so it is not the one
//! forgotten unless the table churns faster than it sends.
//!
//! Why not moka (`entry().and_compute_with`): measured with the loops of the ignored
//! test `rate_limiter_cost` (`cargo test --lib site::ratelimit -- --ignored
//! --nocapture`) in a release build, on a shared 2-core machine under load (ranges
//! over five runs): a tracked client under its rate cost 40-115 ns per check here
//! against 0.6-1.2 µs with moka (LRU policy); from two threads at once 80-240 ns
//! against 1.1-3.6 µs; a new client evicting another 50-130 ns against 1.0-2.1 µs.
//! Ten times the cost on every request of a rate-limited site, and moka enforces its
//! size bound in deferred maintenance, where these shards never exceed their share.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use crate::config::RateLimitConfig;

/// The longest interval between requests (a year): a lower rate, or one `check`
/// refuses, is treated as this one, and the arithmetic stays far from overflow.
const MAX_INTERVAL_NS: u64 = 1_000_000_000 * 86_400 * 365;

/// No slot.
const NIL: u32 = u32::MAX;

/// Checks a `rate_limit` table for the config validator.
pub fn check(cfg: &RateLimitConfig) -> Result<(), String> {
    if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
        return Err(format!(
            "rate_limit.rate must be a positive number of requests per second, not {}",
            cfg.rate
        ));
    }
    if cfg.rate > 1e9 {
        return Err(format!(
            "rate_limit.rate {} is above 1e9 requests per second: leave rate_limit out instead",
            cfg.rate
        ));
    }
    if cfg.max_clients == 0 {
        return Err("rate_limit.max_clients must be at least 1".to_owned());
    }
    if cfg.max_clients > u32::MAX as usize / 2 {
        return Err(format!(
            "rate_limit.max_clients {} is too large",
            cfg.max_clients
        ));
    }
    Ok(())
}

/// `Retry-After` for a refused request: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

pub struct RateLimiter {
    shards: Box<[Mutex<Shard>]>,
    /// Keyed SipHash: clients choose their addresses (an IPv6 client a whole /64), so
    /// the table's hash must not be predictable.
    hasher: std::collections::hash_map::RandomState,
    shard_mask: usize,
    interval_ns: u64,
    /// How far ahead of now a client's arrival time may run: `burst` intervals.
    tolerance_ns: u64,
    epoch: Instant,
    tracked: AtomicUsize,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shards", &self.shards.len())
            .field("interval_ns", &self.interval_ns)
            .field("tolerance_ns", &self.tolerance_ns)
            .field("tracked", &self.tracked())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Never fails: a config `check` refuses is clamped to something harmless.
    pub fn new(cfg: &RateLimitConfig) -> RateLimiter {
        let interval_ns = if cfg.rate > 0.0 {
            // Float-to-int casts saturate; the clamp catches an infinite result.
            ((1e9 / cfg.rate).round() as u64).clamp(1, MAX_INTERVAL_NS)
        } else {
            MAX_INTERVAL_NS
        };
        let max_clients = cfg.max_clients.clamp(1, u32::MAX as usize / 2);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Enough shards that two cores rarely meet on one lock, few enough that each
        // keeps a useful least-recently-seen order.
        let mut shards = (cores * 4).next_power_of_two().min(64);
        while shards > 1 && max_clients / shards < 64 {
            shards /= 2;
        }
        let (share, extra) = (max_clients / shards, max_clients % shards);
        let shards: Box<[Mutex<Shard>]> = (0..shards)
            .map(|i| Mutex::new(Shard::new(share + usize::from(i < extra))))
            .collect();
        RateLimiter {
            shard_mask: shards.len() - 1,
            shards,
            hasher: Default::default(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(cfg.burst)),
            epoch: Instant::now(),
            tracked: AtomicUsize::new(0),
        }
    }

    /// `Ok` lets the request in (and counts it); `Err` refuses it and says how long
    /// until the client may send again, for `Retry-After`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = Key::new(ip, &self.hasher);
        // hashbrown places an entry by the hash's low bits and tags it with the top
        // seven, so the shard comes from bits neither uses for any table size here.
        let Some(shard) = self.shards.get((key.hash >> 32) as usize & self.shard_mask) else {
            return Ok(());
        };
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let (verdict, added) = lock(shard).check(key, now, self.interval_ns, self.tolerance_ns);
        if added {
            self.tracked.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Clients tracked now, for the `lacquer_site_rate_limit_clients` gauge.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing in a shard's critical section panics; a poisoned lock's data is whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An address with its hash computed once: it picks the shard and places the entry.
#[derive(Clone, Copy, Eq)]
struct Key {
    ip: u128,
    hash: u64,
}

impl Key {
    fn new(ip: IpAddr, hasher: &impl BuildHasher) -> Key {
        let ip = as_u128(ip);
        Key {
            ip,
            hash: hasher.hash_one(ip),
        }
    }
}

/// A v4 client on a dual-stack socket is the same client as over IPv4. An IPv6 client
/// is its /64: one subscriber is routinely given a whole /64, and keying by full address
/// would let it dodge its limit and push every other client out of the table.
fn as_u128(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.ip == other.ip
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hands the precomputed hash to the map unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called (by `Key::hash`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Slot {
    key: Key,
    /// GCRA theoretical arrival time, in ns since the limiter's epoch.
    tat: u64,
    /// Toward the most recently seen.
    prev: u32,
    /// Toward the least recently seen.
    next: u32,
}

struct Shard {
    index: HashMap<Key, u32, BuildHasherDefault<PassThrough>>,
    slots: Vec<Slot>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen: the next to be forgotten.
    tail: u32,
    cap: usize,
}

impl Shard {
    fn new(cap: usize) -> Shard {
        Shard {
            index: HashMap::default(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            cap,
        }
    }

    /// The GCRA step for `key` at `now`, and whether the client is newly tracked
    /// (rather than known, or taking a forgotten client's slot).
    fn check(
        &mut self,
        key: Key,
        now: u64,
        interval: u64,
        tolerance: u64,
    ) -> (Result<(), Duration>, bool) {
        let (i, added) = match self.index.get(&key) {
            Some(&i) => {
                self.move_to_front(i);
                (i, false)
            }
            None => match self.insert(key, now) {
                Some(inserted) => inserted,
                None => return (Ok(()), false),
            },
        };
        let slot = &mut self.slots[i as usize];
        // An idle client's arrival time lies in the past: its bucket is full.
        let tat = slot.tat.max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return (Err(Duration::from_nanos(ahead - tolerance)), added);
        }
        slot.tat = tat.saturating_add(interval);
        (Ok(()), added)
    }

    /// A slot for a new client: a free one, or the least recently seen client's.
    fn insert(&mut self, key: Key, now: u64) -> Option<(u32, bool)> {
        let fresh = Slot {
            key,
            tat: now,
            prev: NIL,
            next: NIL,
        };
        let (i, added) = if self.slots.len() < self.cap {
            let i = u32::try_from(self.slots.len()).ok()?;
            self.slots.push(fresh);
            (i, true)
        } else {
            let i = self.tail;
            let old = self.slots.get(i as usize)?.key;
            self.index.remove(&old);
            self.unlink(i);
            self.slots[i as usize] = fresh;
            (i, false)
        };
        self.link_front(i);
        self.index.insert(key, i);
        Some((i, added))
    }

    fn move_to_front(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        let slot = &mut self.slots[i as usize];
        slot.prev = NIL;
        slot.next = old;
        match old {
            NIL => self.tail = i,
            h => self.slots[h as usize].prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32, max_clients: usize) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            rate,
            burst,
            max_clients,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The shards' own view, to hold `tracked()` to it.
    fn counted(l: &RateLimiter) -> usize {
        l.shards
            .iter()
            .map(|s| {
                let s = lock(s);
                assert!(s.slots.len() <= s.cap);
                assert_eq!(s.index.len(), s.slots.len());
                s.slots.len()
            })
            .sum()
    }

    #[test]
    fn burst_then_rate() {
        let l = limiter(10.0, 5, 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..6 {
            assert_eq!(l.check(a, t0), Ok(()), "request {i} is within burst + 1");
        }
        assert_eq!(l.check(a, t0), Err(ms(100)));
        assert_eq!(l.check(a, t0 + ms(40)), Err(ms(60)));
        // A refused request costs nothing: one interval later, one more.
        assert_eq!(l.check(a, t0 + ms(100)), Ok(()));
        assert_eq!(l.check(a, t0 + ms(100)), Err(ms(100)));
        assert_eq!(l.check(a, t0 + ms(200)), Ok(()));
        // Long idle: the bucket is full again, and no fuller.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..6 {
            assert_eq!(l.check(a, later), Ok(()));
        }
        assert_eq!(l.check(a, later), Err(ms(100)));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn steady_client_under_its_rate_is_never_refused() {
        let l = limiter(10.0, 0, 100);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert_eq!(l.check(ip("192.0.2.1"), t0 + ms(100 * i)), Ok(()));
        }
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + ms(100 * 999 + 50)),
            Err(ms(50))
        );
    }

    #[test]
    fn retry_after_for_slow_rates() {
        let l = limiter(0.5, 0, 10);
        let t0 = Instant::now();
        let a = ip("2001:db8::1");
        assert_eq!(l.check(a, t0), Ok(()));
        assert_eq!(l.check(a, t0), Err(Duration::from_secs(2)));
        assert_eq!(l.check(a, t0 + ms(1500)), Err(ms(500)));
        assert_eq!(l.check(a, t0 + ms(2000)), Ok(()));
        assert_eq!(retry_after(ms(1)).to_str().unwrap(), "1");
        assert_eq!(retry_after(ms(1000)).to_str().unwrap(), "1");
        assert_eq!(retry_after(ms(1001)).to_str().unwrap(), "2");
        assert_eq!(retry_after(Duration::ZERO).to_str().unwrap(), "1");
    }

    #[test]
    fn clients_are_separate_and_mapped_v4_is_v4() {
        let l = limiter(1.0, 0, 100);
        let t0 = Instant::now();
        assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        assert!(l.check(ip("::ffff:192.0.2.1"), t0).is_err());
        assert_eq!(l.check(ip("192.0.2.2"), t0), Ok(()));
        assert_eq!(l.check(ip("2001:db8:0:1::1"), t0), Ok(()));
        assert_eq!(l.check(ip("2001:db8:0:2::1"), t0), Ok(()));
        // One /64 is one client.
        assert!(l.check(ip("2001:db8:0:2::9"), t0).is_err());
        assert_eq!(l.tracked(), 4);
        assert_eq!(counted(&l), 4);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let l = limiter(10.0, 1, 10);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(l.check(a, t0 + ms(500)), Ok(()));
        assert_eq!(l.check(a, t0 + ms(500)), Ok(()));
        // Earlier than the last request, and earlier than the limiter itself.
        assert!(l.check(a, t0).is_err());
        let before = l.epoch.checked_sub(Duration::from_secs(5)).unwrap();
        assert!(l.check(ip("192.0.2.9"), before).is_ok());
    }

    #[test]
    fn tracked_clients_stay_bounded_and_a_hot_client_stays_limited() {
        let l = limiter(1.0, 3, 1000);
        let t0 = Instant::now();
        let hot = ip("198.51.100.1");
        let early = ip("198.51.100.2");
        for _ in 0..4 {
            assert!(l.check(early, t0).is_ok());
        }
        assert!(l.check(early, t0).is_err());
        let mut hot_allowed = 0;
        for i in 0u32..1_000_000 {
            let now = t0 + Duration::from_micros(u64::from(i));
            let client = if i % 2 == 0 {
                IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
            } else {
                // Each its own /64.
                IpAddr::V6(std::net::Ipv6Addr::from(
                    0x2001_0db8_u128 << 96 | u128::from(i) << 64,
                ))
            };
            assert_eq!(l.check(client, now), Ok(()), "a new client has its burst");
            if i % 20 == 0 && l.check(hot, now).is_ok() {
                hot_allowed += 1;
            }
            assert!(l.tracked() <= 1000);
        }
        // Under a second passed: burst + 1 and no more, so it was never forgotten.
        assert_eq!(hot_allowed, 4, "the hot client stays limited");
        let end = t0 + Duration::from_micros(999_999);
        assert!(
            l.check(early, end).is_ok(),
            "the early client was forgotten"
        );
        assert!(l.tracked() >= 900, "{}", l.tracked());
        assert_eq!(l.tracked(), counted(&l));
    }

    #[test]
    fn small_table_keeps_exactly_max_clients() {
        for max in [1, 2, 3, 63, 64, 65, 1000, 1001] {
            let l = limiter(1.0, 0, max);
            let t0 = Instant::now();
            for i in 0..(max as u32 * 50) {
                let _ = l.check(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
            }
            let total: usize = l.shards.iter().map(|s| lock(s).cap).sum();
            assert_eq!(total, max);
            assert!(l.tracked() <= max);
            assert_eq!(l.tracked(), counted(&l));
        }
        // The least recently seen client is the one forgotten.
        let l = limiter(1.0, 0, 2);
        let t0 = Instant::now();
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        assert!(l.check(a, t0).is_ok() && l.check(b, t0).is_ok());
        assert!(
            l.check(a, t0).is_err(),
            "a is seen again, b is now the oldest"
        );
        assert!(l.check(c, t0).is_ok(), "c takes b's slot");
        assert!(l.check(a, t0).is_err(), "a is still tracked");
        assert!(l.check(b, t0).is_ok(), "b was forgotten: a full bucket");
    }

    #[test]
    fn shared_between_threads() {
        let l = std::sync::Arc::new(limiter(1.0, 99, 10_000));
        let t0 = Instant::now();
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let l = &l;
                    s.spawn(move || {
                        (0..1000)
                            .filter(|i| {
                                let _ = l.check(IpAddr::V4((*i as u32).into()), t0);
                                l.check(ip("192.0.2.1"), t0).is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
        assert_eq!(l.tracked(), 1001);
        assert_eq!(counted(&l), 1001);
    }

    #[test]
    fn config_check_and_clamping() {
        let cfg = |rate: f64, max_clients: usize| RateLimitConfig {
            rate,
            burst: 1,
            max_clients,
        };
        assert!(check(&RateLimitConfig::default()).is_ok());
        assert!(check(&cfg(0.001, 1)).is_ok());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = check(&cfg(rate, 10)).unwrap_err();
            assert!(
                e.contains("rate_limit.rate must be a positive number"),
                "{e}"
            );
            // Refused, but never a panic: such a limiter lets the burst through, then
            // nothing (or, for an infinite rate, everything).
            let l = RateLimiter::new(&cfg(rate, 0));
            let t0 = Instant::now();
            let _ = l.check(ip("192.0.2.1"), t0);
            let _ = l.check(ip("192.0.2.1"), t0);
        }
        assert!(check(&cfg(2e9, 10)).unwrap_err().contains("above 1e9"));
        assert_eq!(
            check(&cfg(1.0, 0)).unwrap_err(),
            "rate_limit.max_clients must be at least 1"
        );
        let l = RateLimiter::new(&RateLimitConfig {
            rate: 1e-12,
            burst: u32::MAX,
            max_clients: 1,
        });
        let t0 = Instant::now();
        assert!(l.check(ip("192.0.2.1"), t0).is_ok());
    }

    /// The same check on moka (`entry().and_compute_with`, LRU policy), for the
    /// comparison in the module comment.
    struct MokaLimiter {
        cache: moka::sync::Cache<u128, u64>,
        interval: u64,
        tolerance: u64,
        epoch: Instant,
    }

    impl MokaLimiter {
        fn new(max_clients: u64, interval: u64, tolerance: u64, epoch: Instant) -> Self {
            MokaLimiter {
                cache: moka::sync::Cache::builder()
                    .max_capacity(max_clients)
                    .eviction_policy(moka::policy::EvictionPolicy::lru())
                    .build(),
                interval,
                tolerance,
                epoch,
            }
        }

        fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
            let key = as_u128(ip);
            let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
            let mut verdict = Ok(());
            self.cache.entry(key).and_compute_with(|e| {
                let tat = e.map_or(now, |e| *e.value()).max(now);
                let ahead = tat - now;
                if ahead > self.tolerance {
                    verdict = Err(Duration::from_nanos(ahead - self.tolerance));
                    moka::ops::compute::Op::Nop
                } else {
                    moka::ops::compute::Op::Put(tat + self.interval)
                }
            });
            verdict
        }
    }

    /// Prints what a check costs here and with moka; no assertion (timings vary by
    /// machine and profile).
    /// `cargo test --lib site::ratelimit -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn rate_limiter_cost() {
        let n = 1_000_000u32;
        let t0 = Instant::now();
        let clients: Vec<IpAddr> = (0..1024u32)
            .map(|i| IpAddr::V4((0x0a00_0000 + i).into()))
            .collect();
        // Wall time per check, each of `threads` threads doing `n`.
        let time_on = |threads: u32, f: &(dyn Fn(u32) -> bool + Sync)| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        for i in 0..n {
                            std::hint::black_box(f(i + t * 512));
                        }
                    });
                }
            });
            start.elapsed() / n
        };
        let time = |f: &(dyn Fn(u32) -> bool + Sync)| time_on(1, f);
        // Known clients under their rate: the common request.
        let ours = limiter(1e9, 100, 100_000);
        let moka = MokaLimiter::new(100_000, 1, 100, t0);
        let known = |i: u32| clients[(i % 1024) as usize];
        let a = time(&|i| ours.check(known(i), t0).is_ok());
        let b = time(&|i| moka.check(known(i), t0).is_ok());
        println!("known client under its rate: {a:?} per check, moka {b:?}");
        let a = time_on(2, &|i| ours.check(known(i), t0).is_ok());
        let b = time_on(2, &|i| moka.check(known(i), t0).is_ok());
        println!("the same from 2 threads: {a:?} per check, moka {b:?}");
        // A new client each time, evicting another.
        let ours = limiter(10.0, 10, 1000);
        let moka = MokaLimiter::new(1000, 100_000_000, 1_000_000_000, t0);
        let new = |i: u32| IpAddr::V4((0x0b00_0000 + i).into());
        let a = time(&|i| ours.check(new(i), t0).is_ok());
        let b = time(&|i| moka.check(new(i), t0).is_ok());
        println!("new client evicting another: {a:?} per check, moka {b:?}");
    }
}
