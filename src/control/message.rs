//! What travels on the control stream: one JSON message per global admin call, and
//! the receipts nodes send back once they applied one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One global admin call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Unique per call; the JetStream `Nats-Msg-Id` (so a re-sent publish is stored
    /// once) and the key nodes remember to apply a redelivery only once.
    pub id: String,
    /// The node whose admin API took the call.
    pub from: String,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Command {
    /// A `POST /purge` body without its scope.
    Purge { request: serde_json::Value },
    /// A `PUT /objects` call: its query (without scope and edges), the request's
    /// fields, and the body inline (base64) or as an object-store object's name.
    Push {
        query: String,
        headers: Vec<(String, String)>,
        edges: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<String>,
    },
    /// Pre-warm: each node fetches the URLs it owns (every edge all of them with
    /// `edges`).
    Prewarm {
        urls: Vec<String>,
        concurrency: usize,
        edges: bool,
    },
}

impl Command {
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Purge { .. } => "purge",
            Command::Push { .. } => "push",
            Command::Prewarm { .. } => "prewarm",
        }
    }
}

/// Sent on `<subject>.applied.<id>` by each node that applied (or had already
/// applied) message `id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub node: String,
    pub consumer: String,
    pub id: String,
    /// What applying it did here, or why it failed.
    pub result: String,
    pub ok: bool,
}

/// A fresh message id: the node's consumer name, the wall clock and a counter, so ids
/// from different nodes and from restarts of one node do not collide. Only letters,
/// digits, '-' and '_': it is a subject token.
pub fn new_id(consumer: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{consumer}-{nanos:x}-{n:x}")
}

/// `node.name` as a JetStream consumer name: characters NATS refuses in names or
/// subjects become '_'.
pub fn consumer_name(node: &str) -> String {
    let mut s: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if s.is_empty() {
        s.push_str("node");
    }
    s
}

/// Whether a receipt subject's id token is one `new_id` could have made.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_subject_tokens() {
        assert_eq!(consumer_name("edge-1.pop.a b"), "edge-1_pop_a_b");
        assert_eq!(consumer_name(""), "node");
        let a = new_id("n1");
        let b = new_id("n1");
        assert_ne!(a, b);
        assert!(is_id(&a) && !is_id("a.b") && !is_id(""));
    }

    #[test]
    fn messages_round_trip() {
        let m = ControlMessage {
            id: "x".into(),
            from: "n".into(),
            command: Command::Prewarm {
                urls: vec!["http://a/".into()],
                concurrency: 2,
                edges: true,
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"kind\":\"prewarm\""), "{text}");
        let back: ControlMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back.command.kind(), "prewarm");
        assert!(
            serde_json::from_str::<ControlMessage>(r#"{"id":"x","from":"n","kind":"nuke"}"#)
                .is_err()
        );
    }
}
