//! `GET /control`: this node's connection and consumer, and every node's lag as the
//! stream's consumers show it (any node can tell which one is behind).

use std::time::Duration;

use futures_util::StreamExt;

use super::{lock, nats, Plane};

/// Consumers listed at most.
const MAX_LISTED: usize = 1024;
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn status(p: &Plane) -> serde_json::Value {
    let (last_id, last_seq, last_kind, count, error) = {
        let s = lock(&p.state);
        (
            s.last_id.clone(),
            s.last_seq,
            s.last_kind,
            s.count,
            s.error.clone(),
        )
    };
    let connected = p.connected();
    let info = p.client.server_info();
    let mut v = serde_json::json!({
        "node": p.node,
        "enabled": true,
        "connected": connected,
        "state": p.client.connection_state().to_string(),
        "servers": p.cfg.nats,
        "server": if connected { format!("{}:{}", info.host, info.port) } else { String::new() },
        "server_version": info.version,
        "max_payload": info.max_payload,
        "stream": p.cfg.stream,
        "subject": p.cfg.subject,
        "consumer": p.consumer,
        "caught_up": p.caught_up(),
        "applied": count,
        "last_applied": last_id.map(|id| serde_json::json!({"id": id, "seq": last_seq, "kind": last_kind})),
        "error": error,
    });
    if !connected {
        return v;
    }
    let query = async {
        let js = nats::context(p.client.clone());
        let mut stream = js
            .get_stream(&p.cfg.stream)
            .await
            .map_err(|e| e.to_string())?;
        let last = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        let mut nodes = Vec::new();
        let mut consumers = stream.consumers();
        while let Some(c) = consumers.next().await {
            let c = c.map_err(|e| e.to_string())?;
            nodes.push(serde_json::json!({
                "consumer": c.name,
                "pending": c.num_pending,
                "ack_pending": c.num_ack_pending,
                "acked_seq": c.ack_floor.stream_sequence,
                "lag": last.saturating_sub(c.ack_floor.stream_sequence),
            }));
            if nodes.len() >= MAX_LISTED {
                break;
            }
        }
        Ok::<_, String>((last, nodes))
    };
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok((last, nodes))) => {
            let mine = nodes.iter().find(|n| n["consumer"] == p.consumer).cloned();
            v["stream_last_seq"] = last.into();
            if let Some(m) = mine {
                v["pending"] = m["pending"].clone();
                v["ack_pending"] = m["ack_pending"].clone();
                v["lag"] = m["lag"].clone();
            }
            v["nodes"] = nodes.into();
        }
        Ok(Err(e)) => v["error"] = format!("stream {}: {e}", p.cfg.stream).into(),
        Err(_) => v["error"] = format!("stream {}: no answer in time", p.cfg.stream).into(),
    }
    v
}
