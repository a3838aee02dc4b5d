//! The `GET /cluster` answer: members, their health and ramp-up, each shard's share
//! of the key space (as configured and as it is right now), and this node's role.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Cluster;
use crate::config::{PeerRole, Role};

/// Key hashes sampled to measure ring shares: enough for ~1% precision, cheap enough
/// for an admin call.
const SHARE_SAMPLES: u32 = 16_384;

impl Cluster {
    /// The answer for `GET /cluster`.
    pub fn status_json(&self) -> Value {
        let window = self.cfg.ramp_up;
        let configured = self.ring.share(SHARE_SAMPLES, |_, _| true);
        // What an edge does now: skip down and ramping shards (this node included
        // when it is a shard, since it does not forward to itself).
        let live = self
            .ring
            .share(SHARE_SAMPLES, |p, h| !p.is_self && p.accepts(h, window));
        let head = self.purge_head();
        let members: Vec<Value> = self
            .peers
            .iter()
            .map(|p| {
                let idx = self
                    .ring
                    .members()
                    .iter()
                    .position(|m| std::sync::Arc::ptr_eq(m, p));
                let share = |v: &[f64]| idx.and_then(|i| v.get(i).copied()).unwrap_or(0.0);
                json!({
                    "name": p.name,
                    "address": p.address,
                    "admin": p.admin,
                    "role": match p.role { PeerRole::Shard => "shard", PeerRole::Edge => "edge" },
                    "weight": p.weight,
                    "self": p.is_self,
                    "up": p.is_up(),
                    "probed": p.probed(),
                    "ramp": round(p.ramp(window)),
                    "ring_share": round(share(&configured)),
                    "live_share": round(share(&live)),
                    "purges_behind": if p.is_self { 0 } else { head.saturating_sub(p.acked.load(Ordering::Acquire)) },
                })
            })
            .collect();
        json!({
            "node": self.node,
            "role": match self.role { Role::Edge => "edge", Role::Shard => "shard", Role::Standalone => "standalone" },
            "pop": self.pop,
            "forwards": self.role == Role::Edge,
            "shards": self.ring.members().len(),
            "share_samples": SHARE_SAMPLES,
            "members": members,
            "purge_log": {
                "head": head,
                "entries": self.purge_log_len(),
                "durable": self.cfg.state_dir.is_some(),
            },
            "hot_key_threshold": self.cfg.hot_key_threshold,
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
