//! Peers and their health: active checks (GET a path on the admin or public port),
//! passive marking when a connection to the peer is refused, and a ramp-up after a
//! peer comes back so that it is not flooded with every key it owns at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use tokio::time::Instant;

use super::Cluster;
use crate::config::{HealthPort, PeerConfig, PeerRole};

/// A state change worth telling someone about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Down,
    Up,
}

#[derive(Debug, Default)]
struct Counts {
    fails: u32,
    passes: u32,
    /// When the peer last came back; its ramp-up runs from here.
    recovered_at: Option<Instant>,
}

/// One member of the cluster, as this node sees it.
#[derive(Debug)]
pub struct Peer {
    pub name: String,
    /// Public `host:port`.
    pub address: String,
    /// Admin `host:port`.
    pub admin: String,
    pub weight: u32,
    pub role: PeerRole,
    /// This entry is the local node: never forwarded to, never sent fan-out.
    pub is_self: bool,
    pub(crate) authority: Authority,
    pub(crate) admin_authority: Authority,
    up: AtomicBool,
    counts: Mutex<Counts>,
    /// Every purge with a sequence number up to this one was delivered.
    pub(crate) acked: AtomicU64,
    /// A purge catch-up is running: one at a time per peer.
    pub(crate) replaying: AtomicBool,
    /// Added by a reload and not probed yet: down until its first passing probe,
    /// which brings it up at once (and into its ramp-up).
    unknown: AtomicBool,
}

impl Peer {
    pub fn from_config(cfg: &PeerConfig, is_self: bool) -> Result<Peer, String> {
        let authority = parse_authority(&cfg.name, "address", &cfg.address)?;
        let admin_authority = parse_authority(&cfg.name, "admin", &cfg.admin)?;
        Ok(Peer {
            name: cfg.name.clone(),
            address: cfg.address.clone(),
            admin: cfg.admin.clone(),
            weight: cfg.weight,
            role: cfg.role,
            is_self,
            authority,
            admin_authority,
            // Assumed up until shown otherwise, like origins: a node starting next to
            // live peers should use them at once, and a refused connect marks it down.
            up: AtomicBool::new(true),
            counts: Mutex::new(Counts::default()),
            acked: AtomicU64::new(0),
            replaying: AtomicBool::new(false),
            unknown: AtomicBool::new(false),
        })
    }

    /// Take over what an earlier view of the cluster knew of the same peer: its
    /// health, its ramp-up, and the purges it acknowledged.
    pub(crate) fn carry_from(&self, old: &Peer) {
        self.up
            .store(old.up.load(Ordering::Relaxed), Ordering::Relaxed);
        self.unknown
            .store(old.unknown.load(Ordering::Relaxed), Ordering::Relaxed);
        let counts = old.counts();
        let mut mine = self.counts();
        mine.fails = counts.fails;
        mine.passes = counts.passes;
        mine.recovered_at = counts.recovered_at;
        drop(mine);
        self.acked
            .store(old.acked.load(Ordering::Acquire), Ordering::Release);
    }

    /// Whether a probe has been made since a reload added this peer (its `up` is then
    /// an observation, not an assumption).
    pub fn probed(&self) -> bool {
        !self.unknown.load(Ordering::Relaxed)
    }

    /// A peer a reload added: not used until a probe has shown it alive.
    pub(crate) fn start_unknown(&self) {
        self.unknown.store(true, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.is_self || self.up.load(Ordering::Relaxed)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay meaningful whatever a panicking holder left behind.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record one health-check result: the state flips after `fall` failures or
    /// `rise` successes in a row, so one lost probe does not move keys.
    pub fn record_check(&self, ok: bool, fall: u32, rise: u32) -> Transition {
        let mut c = self.counts();
        let first = self.unknown.swap(false, Ordering::Relaxed);
        if ok {
            c.fails = 0;
            c.passes = c.passes.saturating_add(1);
            if !self.up.load(Ordering::Relaxed) && (first || c.passes >= rise.max(1)) {
                c.recovered_at = Some(Instant::now());
                self.up.store(true, Ordering::Relaxed);
                return Transition::Up;
            }
        } else {
            c.passes = 0;
            c.fails = c.fails.saturating_add(1);
            if self.up.load(Ordering::Relaxed) && c.fails >= fall.max(1) {
                self.up.store(false, Ordering::Relaxed);
                return Transition::Down;
            }
        }
        Transition::None
    }

    /// Passive marking: a refused or failed connect says more than a missed probe
    /// (the process or host is gone), so the peer is down at once and requests stop
    /// paying a connect attempt each; the active check brings it back after `rise`.
    pub fn mark_failed(&self) -> Transition {
        let mut c = self.counts();
        c.passes = 0;
        c.fails = c.fails.saturating_add(1);
        if self.up.swap(false, Ordering::Relaxed) {
            Transition::Down
        } else {
            Transition::None
        }
    }

    /// How much of its key space a recovered peer takes, from 0 to 1, `window` after
    /// it came back. 1 when it never went down or `window` is zero.
    pub fn ramp(&self, window: Duration) -> f64 {
        let mut c = self.counts();
        let Some(since) = c.recovered_at else {
            return 1.0;
        };
        let elapsed = since.elapsed();
        if window.is_zero() || elapsed >= window {
            c.recovered_at = None;
            return 1.0;
        }
        elapsed.as_secs_f64() / window.as_secs_f64()
    }

    /// Whether this peer takes `key_hash` now: up, and within its ramp. A key's ramp
    /// position comes from the key's own high bits, independent of its ring position,
    /// so the keys a recovering peer takes back are a uniform sample that only grows.
    pub fn accepts(&self, key_hash: u128, window: Duration) -> bool {
        if !self.is_up() {
            return false;
        }
        let ramp = self.ramp(window);
        ramp >= 1.0 || ramp_position(key_hash) < ramp
    }
}

/// A key's place in [0, 1) for ramp-up: the top 53 bits (an f64 mantissa).
fn ramp_position(key_hash: u128) -> f64 {
    let top = u64::try_from(key_hash >> 75).unwrap_or(0);
    top as f64 / (1u64 << 53) as f64
}

fn parse_authority(peer: &str, field: &str, value: &str) -> Result<Authority, String> {
    value
        .parse()
        .map_err(|e| format!("cluster peer {peer:?} {field} {value:?}: {e}"))
}

impl Cluster {
    /// One health-check task per remote peer; they stop when the cluster is dropped.
    /// A peer that passes a check and has purges it has not acknowledged (it was down
    /// or unreachable when they were sent) is caught up right after.
    pub fn spawn_health_checks(self: &Arc<Self>) {
        for peer in self.peers.iter().filter(|p| !p.is_self) {
            let weak = Arc::downgrade(self);
            let peer = peer.clone();
            let mut stopped = self.stopped.subscribe();
            self.metrics.peer_health(&peer.name, peer.is_up());
            tokio::spawn(async move {
                loop {
                    if *stopped.borrow() {
                        return;
                    }
                    let interval = match weak.upgrade() {
                        Some(cluster) => {
                            cluster.check_once(&peer).await;
                            cluster.cfg.health_interval
                        }
                        None => return,
                    };
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        _ = stopped.changed() => return,
                    }
                }
            });
        }
    }

    /// Probe one peer, record the result, and start a purge catch-up if it is due.
    pub async fn check_once(self: &Arc<Self>, peer: &Arc<Peer>) {
        let ok = self.probe(peer).await;
        let cfg = &self.cfg;
        match peer.record_check(ok, cfg.fall, cfg.rise) {
            Transition::Up => {
                tracing::info!(peer = %peer.name, ramp_up = ?cfg.ramp_up, "cluster peer is up")
            }
            Transition::Down => tracing::warn!(peer = %peer.name, "cluster peer is down"),
            Transition::None => {}
        }
        self.metrics.peer_health(&peer.name, peer.is_up());
        if ok && peer.is_up() && self.purges_pending(peer) {
            self.spawn_catch_up(peer.clone());
        }
    }

    /// Whether a peer that is slow to answer a request is alive: one probe, bounded by
    /// the connect timeout (a live process answers its health check at once, whatever
    /// its origins are doing).
    pub(crate) async fn alive(&self, peer: &Peer) -> bool {
        self.probe_within(peer, self.cfg.connect_timeout).await
    }

    async fn probe(&self, peer: &Peer) -> bool {
        self.probe_within(peer, self.cfg.health_timeout).await
    }

    async fn probe_within(&self, peer: &Peer, timeout: Duration) -> bool {
        let authority = match self.cfg.health_port {
            HealthPort::Admin => peer.admin_authority.clone(),
            HealthPort::Public => peer.authority.clone(),
        };
        let Some(mut req) = crate::body::probe_request(
            Scheme::HTTP,
            authority,
            &self.cfg.health_path,
            "lacquer-peer-health",
        ) else {
            return false;
        };
        // The marker keeps a public-port probe from being forwarded anywhere.
        req.headers_mut().insert(
            super::HOP_HEADER,
            self.hop.marker(&http::Method::GET, &self.cfg.health_path),
        );
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => {
                let ok = resp.status().is_success();
                // Drain so the connection goes back to the pool.
                let _ = tokio::time::timeout(
                    timeout,
                    http_body_util::BodyExt::collect(resp.into_body()),
                )
                .await;
                ok
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer::from_config(
            &PeerConfig {
                name: "p".into(),
                address: "127.0.0.1:1".into(),
                admin: "127.0.0.1:2".into(),
                weight: 1,
                role: PeerRole::Shard,
            },
            false,
        )
        .unwrap()
    }

    #[test]
    fn fall_and_rise() {
        let p = peer();
        assert!(p.is_up());
        assert_eq!(p.record_check(false, 2, 2), Transition::None);
        assert_eq!(p.record_check(true, 2, 2), Transition::None);
        assert_eq!(p.record_check(false, 2, 2), Transition::None);
        assert_eq!(p.record_check(false, 2, 2), Transition::Down);
        assert!(!p.is_up());
        assert_eq!(p.record_check(true, 2, 2), Transition::None);
        assert_eq!(p.record_check(true, 2, 2), Transition::Up);
        assert!(p.is_up());
    }

    #[test]
    fn connect_failure_marks_down_at_once() {
        let p = peer();
        assert_eq!(p.mark_failed(), Transition::Down);
        assert_eq!(p.mark_failed(), Transition::None);
        assert!(!p.accepts(0, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn ramp_grows_and_keeps_what_it_took() {
        let p = peer();
        let window = Duration::from_secs(10);
        assert_eq!(p.ramp(window), 1.0, "never down: no ramp");
        p.mark_failed();
        assert_eq!(p.record_check(true, 1, 1), Transition::Up);
        let keys: Vec<u128> = (0..2000u64)
            .map(|i| xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()))
            .collect();
        let taken = |p: &Peer| keys.iter().filter(|k| p.accepts(**k, window)).count();
        assert!(taken(&p) < 40, "just back: almost nothing");
        tokio::time::advance(Duration::from_secs(5)).await;
        let half = taken(&p);
        assert!((800..1200).contains(&half), "{half}");
        let at_half: Vec<bool> = keys.iter().map(|k| p.accepts(*k, window)).collect();
        tokio::time::advance(Duration::from_secs(2)).await;
        for (k, was) in keys.iter().zip(at_half) {
            assert!(!was || p.accepts(*k, window), "a key taken back left again");
        }
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(taken(&p), keys.len());
        assert_eq!(p.ramp(window), 1.0);
        assert!(p.accepts(u128::MAX, Duration::ZERO));
    }

    #[test]
    fn ramp_position_is_in_range() {
        assert_eq!(ramp_position(0), 0.0);
        assert!(ramp_position(u128::MAX) < 1.0);
        assert!(ramp_position(u128::MAX) > 0.999);
    }

    #[test]
    fn bad_addresses_are_errors() {
        let cfg = PeerConfig {
            name: "p".into(),
            address: "not an authority".into(),
            ..PeerConfig::default()
        };
        assert!(Peer::from_config(&cfg, false).is_err());
    }
}
