//! The sending side of a global call: publish once (JetStream dedups by message id),
//! then gather receipts until every node's consumer answered or `apply_deadline`.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use tokio::time::Instant;

use super::message::{new_id, Command, ControlMessage, Receipt};
use super::{nats, Plane};
use crate::admin::error::ApiError;

/// Room kept under the server's `max_payload` for the message's JSON around a body.
const ENVELOPE: usize = 16 * 1024;
/// Receipts gathered per call at most (one per node; a PoP is a few dozen nodes).
const MAX_RECEIPTS: usize = 4096;

fn unavailable(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
}

impl Plane {
    /// Publish `command` and answer with who applied it within the deadline. `body` is
    /// a push's body, sent inline or, when too large for one message, through the
    /// object store.
    pub async fn publish(
        &self,
        mut command: Command,
        body: Option<Bytes>,
    ) -> Result<serde_json::Value, ApiError> {
        if !self.connected() {
            self.metrics.control_error("publish");
            return Err(unavailable(format!(
                "scope \"global\": not connected to NATS ({}); node and cluster scopes still work",
                self.cfg.nats.join(", ")
            )));
        }
        let started = Instant::now();
        let id = new_id(&self.consumer);
        let js = nats::context(self.client.clone());
        let fail = |reason: &'static str, e: String| {
            self.metrics.control_error(reason);
            unavailable(format!("scope \"global\": {e}"))
        };
        // Subscribed before publishing, so no receipt can come before we listen.
        let mut receipts = self
            .client
            .subscribe(format!("{}.applied.{id}", self.cfg.subject))
            .await
            .map_err(|e| fail("publish", format!("subscribe: {e}")))?;
        let mut via_object = false;
        if let (
            Command::Push {
                body: inline,
                object,
                ..
            },
            Some(b),
        ) = (&mut command, body)
        {
            use base64::Engine as _;
            let encoded_len = b.len().div_ceil(3) * 4;
            let max = self.client.server_info().max_payload;
            if encoded_len + ENVELOPE <= max {
                *inline = Some(base64::engine::general_purpose::STANDARD.encode(&b));
            } else {
                let bucket = nats::ensure_bucket(&js, &self.cfg)
                    .await
                    .map_err(|e| fail("object", e))?;
                let mut reader: &[u8] = &b;
                // Chunks must fit in one message too (the default is 128 KiB).
                let meta = async_nats::jetstream::object_store::ObjectMetadata {
                    name: id.clone(),
                    chunk_size: Some(max.saturating_sub(ENVELOPE).max(1024)),
                    ..Default::default()
                };
                bucket
                    .put(meta, &mut reader)
                    .await
                    .map_err(|e| fail("object", format!("object store: {e}")))?;
                *object = Some(id.clone());
                via_object = true;
            }
        }
        let kind = command.kind();
        let message = ControlMessage {
            id: id.clone(),
            from: self.node.clone(),
            command,
        };
        let payload = serde_json::to_vec(&message)
            .map_err(|e| ApiError::bad_request(format!("message: {e}")))?;
        let ack = async {
            js.send_publish(
                self.cfg.subject.clone(),
                PublishMessage::build()
                    .payload(Bytes::from(payload))
                    .message_id(&id),
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
        };
        let ack = match tokio::time::timeout(nats::API_TIMEOUT, ack).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => {
                return Err(fail(
                    "publish",
                    format!("publish to {}: {e}", self.cfg.stream),
                ))
            }
            Err(_) => {
                return Err(fail(
                    "publish",
                    format!("publish to {}: no answer from JetStream", self.cfg.stream),
                ))
            }
        };
        self.metrics.control_published(kind);
        tracing::info!(target: "lacquer::control", %id, kind, seq = ack.sequence, duplicate = ack.duplicate, "global call published");

        let deadline = started + self.cfg.apply_deadline;
        let expected = self.consumers(&js, deadline).await;
        let mut applied: Vec<Receipt> = Vec::new();
        let mut seen = BTreeSet::new();
        while applied.len() < MAX_RECEIPTS
            && !expected
                .as_ref()
                .is_some_and(|e| !e.is_empty() && e.is_subset(&seen))
        {
            let next = tokio::time::timeout_at(deadline, receipts.next()).await;
            let Ok(Some(msg)) = next else { break };
            let Ok(r) = serde_json::from_slice::<Receipt>(&msg.payload) else {
                continue;
            };
            if r.id == id && seen.insert(r.consumer.clone()) {
                applied.push(r);
            }
        }
        let _ = receipts.unsubscribe().await;
        let waiting: Vec<&String> = expected
            .as_ref()
            .map(|e| e.difference(&seen).collect())
            .unwrap_or_default();
        let note = if waiting.is_empty() && expected.is_some() {
            "applied by every node that consumes the stream"
        } else {
            "nodes not listed under \"applied\" apply it when they consume it (their durable consumers keep it for them)"
        };
        Ok(serde_json::json!({
            "scope": "global",
            "node": self.node,
            "id": id,
            "kind": kind,
            "stream": self.cfg.stream,
            "seq": ack.sequence,
            "duplicate": ack.duplicate,
            "via_object_store": via_object,
            "applied": applied,
            "waiting": waiting,
            "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "note": note,
        }))
    }

    /// The names of the stream's consumers (one per node), so the wait can end as
    /// soon as all have answered; None when the server does not say in time.
    async fn consumers(
        &self,
        js: &async_nats::jetstream::Context,
        deadline: Instant,
    ) -> Option<BTreeSet<String>> {
        let list = async {
            let stream = js.get_stream_no_info(&self.cfg.stream).await.ok()?;
            let mut names = stream.consumer_names();
            let mut out = BTreeSet::new();
            while let Some(n) = names.next().await {
                out.insert(n.ok()?);
                if out.len() >= MAX_RECEIPTS {
                    break;
                }
            }
            Some(out)
        };
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        tokio::time::timeout(limit, list).await.ok().flatten()
    }
}
