//! `[cluster]`: the consistent-hash tier of a PoP (DESIGN.md §1). Every node of a
//! PoP can carry the same peer list; a node finds itself in it by `node.name`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units;

/// Most peers in one cluster: the ring, the health tasks and every fan-out scale
/// with it, and a PoP is a handful to a few dozen nodes.
pub const MAX_PEERS: usize = 256;
/// Largest peer weight: a weight buys that many times the ring points.
pub const MAX_PEER_WEIGHT: u32 = 100;
/// Bounds on the in-memory purge log.
pub const MAX_PURGE_LOG: usize = 100_000;
/// Bound on re-sends of one fan-out message to one peer.
pub const MAX_FANOUT_RETRIES: u32 = 10;

/// What a peer does in the tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    /// Owns a slice of the key space on the ring.
    #[default]
    Shard,
    /// Client-facing; receives purges (and, on request, pushes) but owns no keys.
    Edge,
}

/// Which of a peer's ports the health check probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthPort {
    /// The admin listener (its `/health` needs no token by default).
    #[default]
    Admin,
    /// The public listener: probes what forwarded requests actually use.
    Public,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerConfig {
    /// The peer's `node.name`.
    pub name: String,
    /// Public `host:port`: where edges forward cache misses.
    pub address: String,
    /// Admin `host:port`: purge, push and pre-warm fan-out, health checks.
    pub admin: String,
    /// Share of the ring relative to the other shards.
    pub weight: u32,
    pub role: PeerRole,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            name: String::new(),
            address: String::new(),
            admin: String::new(),
            weight: 1,
            role: PeerRole::Shard,
        }
    }
}

/// The cluster tier: peers, their health checks, ramp-up and fan-out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub peers: Vec<PeerConfig>,
    /// Request path probed with GET on each peer.
    pub health_path: String,
    pub health_port: HealthPort,
    #[serde(deserialize_with = "units::de_duration")]
    pub health_interval: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub health_timeout: Duration,
    /// Consecutive failed probes before a peer is marked down.
    pub fall: u32,
    /// Consecutive passed probes before a down peer is used again.
    pub rise: u32,
    /// After a peer comes back, it takes a growing share of its keys over this
    /// window instead of all of them at once; "0s" turns ramp-up off.
    #[serde(deserialize_with = "units::de_duration")]
    pub ramp_up: Duration,
    /// Connect timeout toward peers: short, so a dead shard costs little before
    /// the next owner is tried.
    #[serde(deserialize_with = "units::de_duration")]
    pub connect_timeout: Duration,
    /// A shard that sends no response head to a forwarded request within this time is
    /// probed (its health check, bounded by `connect_timeout`): alive, it is waited for
    /// up to `upstream.first_byte_timeout` (it may be fetching from a slow origin);
    /// silent, it is marked down and the request goes to the next owner or the origins.
    #[serde(deserialize_with = "units::de_duration")]
    pub first_byte_timeout: Duration,
    /// Longest wait for one peer's answer to a purge, push or pre-warm.
    #[serde(deserialize_with = "units::de_duration")]
    pub fanout_timeout: Duration,
    /// Re-sends of a fan-out message to a peer that failed it.
    pub fanout_retries: u32,
    /// Purges remembered for peers that were unreachable when they were sent.
    pub purge_log_size: usize,
    /// Longest a cluster purge waits for one peer before answering that it is
    /// pending; the peer then gets it from the purge log when its health check passes.
    #[serde(deserialize_with = "units::de_duration")]
    pub purge_deadline: Duration,
    /// Where the purge log and each peer's acknowledgements are kept, so that a purge
    /// a peer has not received outlives a restart; unset: in memory only (a reload
    /// keeps them either way).
    pub state_dir: Option<PathBuf>,
    /// Requests per second above which an edge keeps a key in its own cache;
    /// below it, the shard alone holds it. 0: an edge keeps everything it may store.
    pub hot_key_threshold: u32,
    /// Bearer token for the peers' admin APIs; unset means `admin.token_file`.
    pub token_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            peers: Vec::new(),
            health_path: "/health".to_string(),
            health_port: HealthPort::Admin,
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(1),
            fall: 2,
            rise: 2,
            ramp_up: Duration::from_secs(30),
            connect_timeout: Duration::from_millis(500),
            first_byte_timeout: Duration::from_secs(1),
            fanout_timeout: Duration::from_secs(5),
            fanout_retries: 2,
            purge_log_size: 1024,
            purge_deadline: Duration::from_secs(1),
            state_dir: None,
            hot_key_threshold: 100,
            token_file: None,
        }
    }
}

impl ClusterConfig {
    /// The token to present to peers: `cluster.token_file`, else the admin one.
    pub fn read_token(&self, admin: &super::AdminConfig) -> Result<Option<String>, String> {
        match &self.token_file {
            Some(path) => super::validate::read_token_file(path).map(Some),
            None => admin.read_token(),
        }
    }
}
