//! The cache tier of a PoP (DESIGN.md §1): edges send each cache miss to the shard
//! that owns the key on a consistent-hash ring; a dead shard's keys, and only its
//! keys, move to the next live shard; with no live shard the edge uses the origins.
//!
//! - `ring`: the ring over shard peers, owners in fallback order
//! - `peers`: peer health (active checks, passive marking, ramp-up after recovery)
//! - `forward`: the pooled client toward owners, the hop marker, failover
//! - `fanout`: purge / push / pre-warm to peers, with a purge log for catch-up
//! - `journal`: the purge log and peers' acknowledgements on disk (`state_dir`)
//! - `hop`: the hop marker's HMAC, so that only peers can send one
//! - `hot`: hot-key detection, so an edge keeps very popular keys itself
//! - `status`: the `GET /cluster` answer
//!
//! Freshness across tiers: a shard answers with `Age` (RFC 9111 §5.1) like any cache,
//! and the edge computes the stored copy's age from it (`policy::freshness`, RFC 9111
//! §4.2.3), so an edge's copy expires when the shard's does, never later.

pub mod fanout;
pub mod forward;
pub mod hop;
pub mod hot;
pub mod journal;
pub mod peers;
pub mod ring;
pub mod status;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::config::{ClusterConfig, Config, PeerRole, Role};
use crate::metrics::Metrics;

pub use fanout::NodeAck;
pub use forward::{is_forwarded, ForwardError, HOP_HEADER};
pub use hot::HotKeys;
pub use peers::Peer;
pub use ring::Ring;

/// Idle keep-alive connections kept per peer: edges send every miss to a handful
/// of shards, so the pool is what keeps forwarding cheap.
const POOL_IDLE_PER_PEER: usize = 256;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// This node's view of the cluster.
pub struct Cluster {
    node: String,
    role: Role,
    pop: Option<String>,
    /// Every configured peer, this node's own entry included (marked `is_self`).
    peers: Vec<Arc<Peer>>,
    /// The shard peers.
    ring: Ring,
    client: Client<HttpConnector, ProxyBody>,
    cfg: ClusterConfig,
    first_byte_timeout: Duration,
    /// Bearer token for peers' admin APIs.
    token: Option<String>,
    /// Makes and checks `X-Lacquer-Hop` markers.
    hop: hop::HopSigner,
    /// The addresses peers connect from: a hop marker is believed only from them.
    peer_ips: Vec<IpAddr>,
    log: Mutex<fanout::PurgeLog>,
    /// The purge log on disk, when `cluster.state_dir` is set.
    journal: Option<Arc<journal::Journal>>,
    pub hot: HotKeys,
    metrics: Arc<Metrics>,
    /// Set when the node shuts down: background work of this view ends.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    /// The cluster of a configuration, `None` when `[cluster]` is disabled. Reads the
    /// peers' token (`cluster.token_file`, else `admin.token_file`).
    pub fn from_config(
        cfg: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Cluster>>, String> {
        Cluster::succeeding(cfg, metrics, None)
    }

    /// The cluster of a new configuration that replaces `previous` (a reload): the
    /// purge log, and the health and acknowledged purges of every peer that is still
    /// the same peer, carry over; a peer the reload added starts down and unknown, is
    /// probed at once, and ramps up after its first passing probe.
    pub fn succeeding(
        cfg: &Config,
        metrics: Arc<Metrics>,
        previous: Option<&Cluster>,
    ) -> Result<Option<Arc<Cluster>>, String> {
        if !cfg.cluster.enabled {
            return Ok(None);
        }
        let token = cfg
            .cluster
            .read_token(&cfg.admin)
            .map_err(|e| format!("cluster token: {e}"))?;
        Cluster::build(cfg, token, metrics, previous).map(Some)
    }

    /// A cluster from `cfg.cluster` whatever its `enabled` says (tests, tools).
    pub fn new(
        cfg: &Config,
        token: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Cluster>, String> {
        Cluster::build(cfg, token, metrics, None)
    }

    fn build(
        cfg: &Config,
        token: Option<String>,
        metrics: Arc<Metrics>,
        previous: Option<&Cluster>,
    ) -> Result<Arc<Cluster>, String> {
        let c = &cfg.cluster;
        let peers = c
            .peers
            .iter()
            .map(|p| Peer::from_config(p, p.name == cfg.node.name).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let (journal, log, restored_acks) = purge_state(c, previous)?;
        let head = log.head();
        for peer in peers.iter().filter(|p| !p.is_self) {
            let same = previous.and_then(|prev| {
                prev.peers.iter().find(|old| {
                    old.name == peer.name
                        && old.address == peer.address
                        && old.admin == peer.admin
                        && old.role == peer.role
                })
            });
            match (same, previous) {
                (Some(old), _) => peer.carry_from(old),
                (None, Some(_)) => {
                    // New to this node: nothing sent before it joined is owed to it.
                    peer.acked.store(head, std::sync::atomic::Ordering::Release);
                    peer.start_unknown();
                }
                (None, None) => {
                    let acked = restored_acks.get(&peer.name).copied().unwrap_or(head);
                    peer.acked
                        .store(acked.min(head), std::sync::atomic::Ordering::Release);
                }
            }
        }
        let ring = Ring::new(
            peers
                .iter()
                .filter(|p| p.role == PeerRole::Shard)
                .cloned()
                .collect(),
        );
        HeaderValue::from_str(&cfg.node.name)
            .map_err(|_| format!("node.name {:?} is not a header value", cfg.node.name))?;
        let hop = hop::HopSigner::new(&cfg.node.name, token.as_deref());
        if !hop.authenticated() {
            tracing::warn!("no cluster token (cluster.token_file or admin.token_file): hop markers are believed from peer addresses alone");
        }
        let peer_ips: Vec<IpAddr> = peers.iter().filter_map(|p| peer_ip(&p.address)).collect();
        let mut connector = HttpConnector::new();
        // Forward from this node's own PoP address, so that the peer can tell it from
        // a client (which could send the hop marker too): on a host with several
        // addresses, the kernel's pick could be any of them.
        let own = peers
            .iter()
            .find(|p| p.is_self)
            .and_then(|p| peer_ip(&p.address));
        if let Some(ip) = own.filter(|ip| bindable(*ip)) {
            connector.set_local_address(Some(ip));
        }
        connector.set_connect_timeout(Some(c.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_PEER)
            .build(connector);
        Ok(Arc::new(Cluster {
            node: cfg.node.name.clone(),
            role: cfg.node.role,
            pop: cfg.node.pop.clone(),
            peers,
            ring,
            client,
            first_byte_timeout: cfg.upstream.first_byte_timeout,
            token,
            hop,
            peer_ips,
            log: Mutex::new(log),
            journal,
            hot: HotKeys::new(c.hot_key_threshold),
            cfg: c.clone(),
            metrics,
            stopped: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// End this view's background work (peer health checks) now.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn peers(&self) -> &[Arc<Peer>] {
        &self.peers
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn peer(&self, name: &str) -> Option<&Arc<Peer>> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// Count a request for `key_hash` toward hot-key detection (edges only).
    pub fn observe(&self, key_hash: u128) {
        if self.role == Role::Edge {
            self.hot.observe(key_hash);
        }
    }

    /// Whether a response fetched through the tier is kept in this node's own cache:
    /// always on a shard or a standalone node; on an edge with hot-key tracking, only
    /// hot keys (the shard holds the rest, and edge memory is for the crowd's keys).
    pub fn keep_locally(&self, key_hash: u128) -> bool {
        self.role != Role::Edge || !self.hot.enabled() || self.hot.is_hot(key_hash)
    }

    /// Whether a connection from `ip` is a PoP peer's: only then is its hop marker (and
    /// the `X-Forwarded-Proto` beside it) believed.
    pub fn is_peer(&self, ip: IpAddr) -> bool {
        self.peer_ips.contains(&crate::geo::client::canonical(ip))
    }

    /// Whether a request's hop marker is believed: it came from a peer's address and
    /// carries a proof made with the cluster token for this very request.
    pub fn believes(&self, req: &http::request::Parts, ip: IpAddr) -> bool {
        let Some(marker) = req.headers.get(HOP_HEADER) else {
            return false;
        };
        let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        self.is_peer(ip) && self.hop.verify(marker, &req.method, target)
    }

    /// Whether a request goes to the tier rather than the origins: only an edge
    /// forwards, and never a request that another node already `forwarded` (a believed
    /// hop marker, `Ctx::forwarded`)
    /// (loops are impossible whatever the nodes believe about each other's health).
    pub fn forwards(&self, forwarded: bool) -> bool {
        self.role == Role::Edge && !forwarded
    }
}

type PurgeState = (
    Option<Arc<journal::Journal>>,
    fanout::PurgeLog,
    std::collections::HashMap<String, u64>,
);

/// The purge log a new view starts with: the previous view's (a reload), else what
/// the journal in `state_dir` kept (a restart), else empty; and the journal, reused
/// from the previous view when its directory is unchanged.
fn purge_state(c: &ClusterConfig, previous: Option<&Cluster>) -> Result<PurgeState, String> {
    let kept = previous.map(|p| {
        let log = p.log();
        (log.head(), log.entries())
    });
    let reused = previous
        .and_then(|p| p.journal.clone())
        .filter(|j| Some(j.dir()) == c.state_dir.as_deref());
    let (journal, restored) = match (&c.state_dir, reused) {
        (Some(_), Some(j)) => (Some(j), journal::Restored::default()),
        (Some(dir), None) => {
            let (j, restored) = journal::Journal::open(dir, c.purge_log_size)?;
            let j = Arc::new(j);
            if let Some((_, entries)) = &kept {
                // A new directory on reload: it must hold what this node still owes.
                j.replace_all(entries);
            }
            (Some(j), restored)
        }
        (None, _) => (None, journal::Restored::default()),
    };
    let log = match kept {
        Some((head, entries)) => fanout::PurgeLog::restored(c.purge_log_size, head, entries),
        None => fanout::PurgeLog::restored(c.purge_log_size, restored.head, restored.entries),
    };
    Ok((journal, log, restored.acked))
}

/// The IP of a peer's `ip:port` address (hostnames are not resolved: a peer that is to
/// be trusted is named by its address).
fn peer_ip(address: &str) -> Option<IpAddr> {
    address
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| crate::geo::client::canonical(a.ip()))
        .filter(|ip| !ip.is_unspecified())
}

/// Whether this host has `ip`, so that connections can be made from it.
fn bindable(ip: IpAddr) -> bool {
    std::net::TcpListener::bind((ip, 0)).is_ok()
}
