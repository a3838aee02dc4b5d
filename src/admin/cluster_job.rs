//! A cluster pre-warm as one job: `POST /prewarm` with `"scope": "cluster"` starts a job
//! on each owning shard (and every edge with `"edges": true`); the node that took the
//! call remembers where those jobs are, and `GET /prewarm/{id}` sums their progress, so
//! an operator watches one job instead of polling every shard. `DELETE` cancels them
//! all.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use http::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::prewarm::{self, Jobs};
use crate::cluster::{Cluster, NodeAck};

/// One node's part of a cluster job: its job id there, or why it has none.
struct Part {
    node: String,
    id: Option<u64>,
    error: Option<String>,
}

pub struct ClusterJob {
    id: u64,
    started: Instant,
    /// This node's own job, when it pre-warms some of the URLs itself.
    local: Option<u64>,
    parts: Vec<Part>,
}

/// The cluster jobs this node started, oldest first, at most `prewarm::MAX_JOBS`.
#[derive(Default)]
pub struct ClusterJobs {
    jobs: Mutex<VecDeque<std::sync::Arc<ClusterJob>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClusterJobs {
    /// Remember a cluster job made of the peers' answers to the fan-out and this
    /// node's own job; returns its id.
    pub fn register(&self, jobs: &Jobs, local: Option<u64>, acks: &[NodeAck]) -> u64 {
        let parts = acks
            .iter()
            .map(|a| Part {
                node: a.node.clone(),
                id: a
                    .answer
                    .as_ref()
                    .and_then(|v| v.get("id"))
                    .and_then(Value::as_u64),
                error: (!a.ok).then(|| a.error.clone().unwrap_or_default()),
            })
            .collect();
        let job = std::sync::Arc::new(ClusterJob {
            id: jobs.next_id(),
            started: Instant::now(),
            local,
            parts,
        });
        let id = job.id;
        let mut list = lock(&self.jobs);
        // Views only: forgetting the oldest loses no work (the parts run on).
        if list.len() >= prewarm::MAX_JOBS {
            list.pop_front();
        }
        list.push_back(job);
        id
    }

    pub fn find(&self, id: &str) -> Option<std::sync::Arc<ClusterJob>> {
        let wanted: u64 = id.parse().ok()?;
        lock(&self.jobs).iter().find(|j| j.id == wanted).cloned()
    }
}

impl ClusterJob {
    /// The summed progress (`method` GET), or the parts cancelled first (`DELETE`).
    pub async fn view(&self, node: &str, jobs: &Jobs, cluster: &Cluster, method: Method) -> Value {
        let mut nodes = Vec::new();
        if let Some(id) = self.local {
            if method == Method::DELETE {
                let _ = jobs.cancel(&id.to_string());
            }
            nodes.push(part_view(node, Some(id), jobs.view_json(id), None));
        }
        let calls = self.parts.iter().map(|p| {
            let method = method.clone();
            async move {
                let Some(id) = p.id else {
                    return part_view(&p.node, None, None, p.error.clone());
                };
                let ack = cluster
                    .admin_request(&p.node, method, &format!("/prewarm/{id}"))
                    .await;
                part_view(&p.node, Some(id), ack.answer, ack.error)
            }
        });
        // A handful of peers, each bounded by the fan-out timeout: asked together.
        nodes.extend(crate::cluster::fanout::join_all(calls).await);
        summary(self.id, self.started, nodes)
    }
}

fn part_view(node: &str, id: Option<u64>, status: Option<Value>, error: Option<String>) -> Value {
    match status {
        Some(s) => json!({
            "node": node,
            "id": id,
            "state": s.get("state").cloned().unwrap_or(Value::Null),
            "total": s.get("total").cloned().unwrap_or(Value::Null),
            "done": s.get("done").cloned().unwrap_or(Value::Null),
            "failed": s.get("failed").cloned().unwrap_or(Value::Null),
            "remaining": s.get("remaining").cloned().unwrap_or(Value::Null),
            "elapsed_ms": s.get("elapsed_ms").cloned().unwrap_or(Value::Null),
            "failures": s.get("failures").cloned().unwrap_or(Value::Null),
        }),
        None => json!({
            "node": node,
            "id": id,
            "state": "unknown",
            "error": error.unwrap_or_else(|| "no job there".into()),
        }),
    }
}

/// Sums over the parts. The job runs while any part runs; a part that cannot be
/// asked is "unknown" and keeps the whole "unknown" once the others are over.
fn summary(id: u64, started: Instant, nodes: Vec<Value>) -> Value {
    let sum = |k: &str| -> u64 { nodes.iter().filter_map(|n| n[k].as_u64()).sum() };
    let states: Vec<&str> = nodes.iter().filter_map(|n| n["state"].as_str()).collect();
    let state = if states.contains(&"running") {
        "running"
    } else if states.contains(&"unknown") {
        "unknown"
    } else if states.contains(&"cancelled") {
        "cancelled"
    } else {
        "done"
    };
    let elapsed = nodes
        .iter()
        .filter_map(|n| n["elapsed_ms"].as_u64())
        .max()
        .unwrap_or_else(|| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut failures: Vec<Value> = Vec::new();
    for n in &nodes {
        for f in n["failures"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if failures.len() < prewarm::MAX_LISTED_FAILURES {
                failures.push(f.clone());
            }
        }
    }
    let failed = sum("failed");
    json!({
        "id": id,
        "scope": "cluster",
        "state": state,
        "total": sum("total"),
        "done": sum("done"),
        "failed": failed,
        "remaining": sum("remaining"),
        "elapsed_ms": elapsed,
        "failures_not_listed": failed.saturating_sub(failures.len() as u64),
        "failures": failures,
        "nodes": nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_states() {
        let a = json!({"node":"a","state":"done","total":3,"done":2,"failed":1,"remaining":0,"elapsed_ms":10,"failures":[{"url":"u","reason":"r"}]});
        let b = json!({"node":"b","state":"running","total":5,"done":1,"failed":0,"remaining":4,"elapsed_ms":30,"failures":[]});
        let s = summary(9, Instant::now(), vec![a.clone(), b]);
        assert_eq!(s["state"], "running");
        assert_eq!(
            (
                s["total"].as_u64(),
                s["done"].as_u64(),
                s["remaining"].as_u64()
            ),
            (Some(8), Some(3), Some(4))
        );
        assert_eq!(s["elapsed_ms"], 30);
        assert_eq!(s["failures"].as_array().map(Vec::len), Some(1));
        let gone = part_view("c", Some(4), None, Some("connect refused".into()));
        let s = summary(9, Instant::now(), vec![a.clone(), gone]);
        assert_eq!(s["state"], "unknown");
        let s = summary(9, Instant::now(), vec![a]);
        assert_eq!(s["state"], "done");
    }
}
