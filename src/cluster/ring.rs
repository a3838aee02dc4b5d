//! The consistent-hash ring over the shard peers (ketama-style virtual nodes, via the
//! `consistent_hash` crate's `StaticHashRing`).
//!
//! Every node of a PoP must compute the same ring from the same peer list, or edges
//! would disagree about owners and each object would be cached once per opinion. The
//! crate's `DefaultHash` goes through `std::hash::Hash`, whose byte stream for integers
//! and tuples is native-endian and not promised stable across Rust releases. So every
//! value given to the ring here hashes through [`Portable`], which feeds explicit
//! little-endian bytes to xxh3: the ring is a pure function of the peer names and weights.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use consistent_hash::{Node, RingHash, StaticHashRing};
use xxhash_rust::xxh3::Xxh3Default;

use super::peers::Peer;

/// Ring points per unit of weight. ~100 points per member keep the spread of key
/// shares within a few percent for small clusters (ketama uses 100-160).
pub const POINTS_PER_WEIGHT: usize = 100;

/// A member name or a key hash as explicit bytes, so ring positions do not depend on
/// the platform or the compiler version (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Portable(Vec<u8>);

impl Hash for Portable {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// xxh3 over exactly the bytes [`Portable`] writes. Virtual node `i` of member `m`
/// is at xxh3(name ‖ 0xff ‖ i as u32 LE).
#[derive(Debug, Clone, Copy)]
struct Xxh3Ring;

impl RingHash for Xxh3Ring {
    fn hash_item<T: Hash>(&self, item: &T) -> u64 {
        let mut h = Xxh3Default::new();
        item.hash(&mut h);
        h.finish()
    }

    fn hash_vnode<K: Hash>(&self, node_key: &K, vnode_seq: usize) -> u64 {
        let mut h = Xxh3Default::new();
        node_key.hash(&mut h);
        // 0xff cannot occur in a member name (a token), so name ‖ seq is unambiguous.
        h.write(&[0xff]);
        h.write(&u32::try_from(vnode_seq).unwrap_or(u32::MAX).to_le_bytes());
        h.finish()
    }
}

/// The shard members and their ring. Built once from the peer list; health does not
/// change the ring (that would move keys on every blip), it only makes callers skip
/// members in [`Ring::owners`] order.
pub struct Ring {
    members: Vec<Arc<Peer>>,
    /// Node value = index into `members`.
    inner: StaticHashRing<'static, Portable, usize, Xxh3Ring>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field(
                "members",
                &self.members.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("points", &self.inner.len())
            .finish()
    }
}

impl Ring {
    /// A ring over `members` (duplicate names after the first are ignored; config
    /// validation refuses them anyway). Weight 0 counts as 1.
    pub fn new(members: Vec<Arc<Peer>>) -> Ring {
        let nodes = members
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                key: Portable(p.name.as_bytes().to_vec()),
                value: i,
                quantity: (p.weight.max(1) as usize).saturating_mul(POINTS_PER_WEIGHT),
            })
            .collect::<Vec<_>>();
        Ring {
            members,
            inner: StaticHashRing::new(Xxh3Ring, nodes.into_iter()),
        }
    }

    pub fn members(&self) -> &[Arc<Peer>] {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, owner first, then the fallback order: the distinct members met
    /// walking the ring clockwise from the key's position. Health is not considered.
    pub fn owners(&self, key_hash: u128) -> impl Iterator<Item = &Arc<Peer>> + '_ {
        let item = Portable(key_hash.to_le_bytes().to_vec());
        self.inner
            .calc_candidates(&item)
            .filter_map(|n| self.members.get(n.value))
    }

    /// The owner when every member is up.
    pub fn primary(&self, key_hash: u128) -> Option<&Arc<Peer>> {
        self.owners(key_hash).next()
    }

    /// Fraction of `samples` evenly spread key hashes each member owns (by index into
    /// [`Ring::members`]), when `usable` says which members may take keys.
    pub fn share(&self, samples: u32, usable: impl Fn(&Peer, u128) -> bool) -> Vec<f64> {
        let mut counts = vec![0u64; self.members.len()];
        let samples = samples.max(1);
        let step = u128::MAX / u128::from(samples);
        for i in 0..samples {
            let h = step.wrapping_mul(u128::from(i));
            let owner = self
                .inner
                .calc_candidates(&Portable(h.to_le_bytes().to_vec()))
                .find(|n| self.members.get(n.value).is_some_and(|p| usable(p, h)));
            if let Some(c) = owner.and_then(|n| counts.get_mut(n.value)) {
                *c += 1;
            }
        }
        counts
            .into_iter()
            .map(|c| c as f64 / f64::from(samples))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PeerConfig, PeerRole};

    fn peer(name: &str, weight: u32) -> Arc<Peer> {
        Arc::new(
            Peer::from_config(
                &PeerConfig {
                    name: name.into(),
                    address: "127.0.0.1:1".into(),
                    admin: "127.0.0.1:2".into(),
                    weight,
                    role: PeerRole::Shard,
                },
                false,
            )
            .unwrap(),
        )
    }

    fn ring(names: &[&str]) -> Ring {
        Ring::new(names.iter().map(|n| peer(n, 1)).collect())
    }

    fn key(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    fn owner(r: &Ring, h: u128) -> String {
        r.primary(h).unwrap().name.clone()
    }

    const KEYS: u64 = 20_000;

    fn moved_fraction(a: &Ring, b: &Ring) -> f64 {
        let moved = (0..KEYS)
            .filter(|&i| owner(a, key(i)) != owner(b, key(i)))
            .count();
        moved as f64 / KEYS as f64
    }

    #[test]
    fn adding_one_of_n_moves_about_one_nth() {
        let names = ["s1", "s2", "s3", "s4", "s5"];
        let before = ring(&names[..4]);
        let after = ring(&names);
        let f = moved_fraction(&before, &after);
        assert!((0.14..0.26).contains(&f), "moved {f}, ideal 0.20");
        // Every moved key moved to the new member, none between old members.
        for i in 0..KEYS {
            let (a, b) = (owner(&before, key(i)), owner(&after, key(i)));
            assert!(a == b || b == "s5", "{a} -> {b}");
        }
    }

    #[test]
    fn removing_one_of_n_moves_only_its_keys() {
        let all = ring(&["s1", "s2", "s3", "s4"]);
        let without = ring(&["s1", "s2", "s4"]);
        let f = moved_fraction(&all, &without);
        assert!((0.18..0.32).contains(&f), "moved {f}, ideal 0.25");
        for i in 0..KEYS {
            let a = owner(&all, key(i));
            if a != "s3" {
                assert_eq!(a, owner(&without, key(i)));
            } else {
                // The new owner is the next member in the old fallback order.
                let next = all.owners(key(i)).nth(1).unwrap().name.clone();
                assert_eq!(next, owner(&without, key(i)));
            }
        }
    }

    #[test]
    fn weights_shape_the_shares() {
        let r = Ring::new(vec![peer("a", 1), peer("b", 3)]);
        let share = r.share(20_000, |_, _| true);
        assert!((0.18..0.32).contains(&share[0]), "{share:?}");
        assert!((0.68..0.82).contains(&share[1]), "{share:?}");
        let even = ring(&["a", "b", "c"]).share(30_000, |_, _| true);
        for s in even {
            assert!((0.25..0.42).contains(&s), "{s}");
        }
    }

    #[test]
    fn owners_list_every_member_once_in_a_stable_order() {
        let r = ring(&["a", "b", "c", "d"]);
        let order: Vec<_> = r.owners(key(7)).map(|p| p.name.clone()).collect();
        assert_eq!(order.len(), 4);
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        // Independent of the order the members were listed in.
        let r2 = ring(&["d", "c", "b", "a"]);
        let order2: Vec<_> = r2.owners(key(7)).map(|p| p.name.clone()).collect();
        assert_eq!(order, order2);
    }

    #[test]
    fn ring_positions_are_pinned() {
        // Nodes of different architectures and builds must agree: this pins the
        // hashing so a change to it is a conscious, documented one.
        let r = ring(&["shard-a", "shard-b", "shard-c"]);
        let got: Vec<_> = (0..8).map(|i| owner(&r, key(i))).collect();
        let again: Vec<_> = (0..8)
            .map(|i| owner(&ring(&["shard-a", "shard-b", "shard-c"]), key(i)))
            .collect();
        assert_eq!(got, again);
        assert_eq!(
            Xxh3Ring.hash_vnode(&Portable(b"shard-a".to_vec()), 0),
            xxhash_rust::xxh3::xxh3_64(b"shard-a\xff\x00\x00\x00\x00")
        );
        assert_eq!(
            Xxh3Ring.hash_item(&Portable(5u128.to_le_bytes().to_vec())),
            xxhash_rust::xxh3::xxh3_64(&5u128.to_le_bytes())
        );
    }

    #[test]
    fn empty_ring_has_no_owner() {
        let r = Ring::new(Vec::new());
        assert!(r.is_empty());
        assert!(r.primary(key(1)).is_none());
        assert_eq!(r.owners(key(1)).count(), 0);
        assert!(r.share(10, |_, _| true).is_empty());
    }
}
