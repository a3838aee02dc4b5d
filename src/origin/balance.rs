//! How a pool chooses the server for a request: weighted round-robin, least connections
//! (fewest requests in flight per unit of weight), or weighted rendezvous hashing on the
//! request's affinity (the cache key's hash), which gives every key its own fixed order of
//! servers.
//!
//! Every mode yields servers in order of preference, and the first one in rotation (probes
//! up and circuit closed, or half-open and admitting its one probe) is taken. A hashed
//! key whose server is out of rotation, or a retry, therefore moves to the next server
//! of *that key's* order: its second choice does not depend on what other keys do. When
//! no server is in rotation the first preferred one is tried anyway: a health check can
//! be wrong, and a refused request is no worse than none.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::Origin;
use crate::config::Balance;

/// Weights above this count as this, in every mode: it keeps the round-robin schedule
/// small, and the modes agree on what a weight means.
const MAX_WEIGHT: u32 = 100;

/// A server's share of the traffic.
pub(super) fn share(weight: u32) -> u32 {
    weight.clamp(1, MAX_WEIGHT)
}

/// One request counted in flight on one server until this is dropped, whichever way the
/// exchange ends: answered and read, failed, timed out, or its future dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(super) fn start(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) struct Balancer {
    mode: Balance,
    /// Round-robin (and hash without an affinity): each server's index repeated by its
    /// share.
    schedule: Vec<usize>,
    /// Where the next round-robin turn, or least-connections tie-break, starts.
    next: AtomicUsize,
    /// Hash: each server's seed, from its address rather than its position, so reordering
    /// the list moves no key and adding a server moves only the keys it wins.
    seeds: Vec<u64>,
}

impl Balancer {
    pub(super) fn new(mode: Balance, origins: &[Arc<Origin>]) -> Balancer {
        let mut schedule = Vec::new();
        for (i, o) in origins.iter().enumerate() {
            schedule.extend(std::iter::repeat(i).take(share(o.weight) as usize));
        }
        let seeds = origins
            .iter()
            .map(|o| xxh3_64(o.address.as_bytes()))
            .collect();
        Balancer {
            mode,
            schedule,
            next: AtomicUsize::new(0),
            seeds,
        }
    }

    pub(super) fn mode(&self) -> Balance {
        self.mode
    }

    /// The server for the next attempt, never `exclude` (the server that just failed).
    /// `affinity` only matters to `Hash`.
    pub(super) fn pick(
        &self,
        origins: &[Arc<Origin>],
        affinity: Option<u128>,
        exclude: Option<usize>,
    ) -> Option<usize> {
        match (self.mode, affinity) {
            (Balance::LeastConnections, _) => {
                first_in_rotation(origins, self.least_loaded(origins), exclude)
            }
            (Balance::Hash, Some(key)) => {
                first_in_rotation(origins, ranking(&self.seeds, origins, key), exclude)
            }
            (Balance::RoundRobin | Balance::Hash, _) => {
                let n = self.schedule.len();
                if n == 0 {
                    return None;
                }
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let order = (0..n).map(|i| self.schedule[start.wrapping_add(i) % n]);
                first_in_rotation(origins, order, exclude)
            }
        }
    }

    /// Servers by requests in flight per unit of weight, fewest first. Ties keep a
    /// rotating order, so an idle pool still spreads its requests.
    fn least_loaded(&self, origins: &[Arc<Origin>]) -> Vec<usize> {
        let n = origins.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // One reading of every counter: they move while we sort, and a comparison that
        // changes its mind mid-sort is not an order.
        let mut order: Vec<(u128, u128, usize)> = (0..n)
            .map(|i| {
                let idx = start.wrapping_add(i) % n;
                let o = &origins[idx];
                (o.in_flight() as u128, u128::from(share(o.weight)), idx)
            })
            .collect();
        order.sort_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)));
        order.into_iter().map(|(_, _, idx)| idx).collect()
    }
}

/// Every server in `key`'s order of preference: weighted rendezvous hashing, highest
/// score first.
fn ranking(seeds: &[u64], origins: &[Arc<Origin>], key: u128) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = seeds
        .iter()
        .zip(origins)
        .enumerate()
        .map(|(i, (&seed, o))| (score(key, seed, share(o.weight)), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// `share / -ln(u)` with `u` uniform in (0, 1), drawn from the key and the server: the
/// highest score among the servers wins, and a server wins a share of all keys
/// proportional to its weight.
fn score(key: u128, seed: u64, share: u32) -> f64 {
    let h = xxh3_64_with_seed(&key.to_le_bytes(), seed);
    // The top 53 bits, centred in their interval: never 0 and never 1, so ln(u) < 0.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(share) / -u.ln()
}

/// The first server of `order` that is in rotation, else the first one at all (both
/// skipping `exclude`). A half-open server that admits its probe counts as in rotation,
/// and is then the one picked: admitting claims the probe.
fn first_in_rotation(
    origins: &[Arc<Origin>],
    order: impl IntoIterator<Item = usize>,
    exclude: Option<usize>,
) -> Option<usize> {
    let mut fallback = None;
    for idx in order {
        if Some(idx) == exclude {
            continue;
        }
        let Some(o) = origins.get(idx) else { continue };
        if o.admits() {
            return Some(idx);
        }
        fallback.get_or_insert(idx);
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(names: &[&str]) -> Vec<u64> {
        names.iter().map(|n| xxh3_64(n.as_bytes())).collect()
    }

    /// The winner among `names` (weights `w`) for `key`, computed as `ranking` does.
    fn winner(seeds: &[u64], w: &[u32], key: u128) -> usize {
        let mut best = (f64::MIN, 0);
        for (i, (&s, &w)) in seeds.iter().zip(w).enumerate() {
            let sc = score(key, s, share(w));
            if sc > best.0 {
                best = (sc, i);
            }
        }
        best.1
    }

    #[test]
    fn rendezvous_shares_follow_weights() {
        let s = seeds(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let w = [1, 2, 1];
        let mut wins = [0usize; 3];
        for k in 0..40_000u128 {
            wins[winner(&s, &w, xxhash_rust::xxh3::xxh3_128(&k.to_le_bytes()))] += 1;
        }
        for (got, want) in wins.iter().zip([10_000, 20_000, 10_000]) {
            assert!(got.abs_diff(want) < want / 20, "{wins:?}");
        }
    }

    #[test]
    fn adding_a_server_moves_only_the_keys_it_wins() {
        let before = seeds(&["a:1", "b:1", "c:1"]);
        let after = seeds(&["a:1", "b:1", "c:1", "d:1"]);
        let mut moved = 0;
        for k in 0..10_000u128 {
            let x = winner(&before, &[1, 1, 1], k);
            let y = winner(&after, &[1, 1, 1, 1], k);
            if x != y {
                assert_eq!(y, 3, "a key moved between old servers");
                moved += 1;
            }
        }
        assert!((2_000..3_000).contains(&moved), "{moved}");
    }

    #[test]
    fn in_flight_counts_until_dropped() {
        let c = Arc::new(AtomicUsize::new(0));
        let a = InFlight::start(&c);
        let b = InFlight::start(&c);
        assert_eq!(c.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(c.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(c.load(Ordering::Relaxed), 0);
    }
}
