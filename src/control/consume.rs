//! The consumer loop: pull batches from this node's durable consumer, apply each
//! message once, acknowledge it, send a receipt. Any failure (NATS down, restarted,
//! the stream gone) ends the session; the loop waits and starts a new one, so the
//! node resumes from its consumer's position whatever happened.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::apply::{self, Target};
use super::message::{Command, ControlMessage, Receipt};
use super::nats;
use super::Plane;
use crate::server::Live;

/// Messages asked for at once, and how long a pull waits for them: an idle node
/// sends one small request per `PULL_EXPIRES`.
const BATCH: usize = 128;
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// A pull that the server never answers (it restarted mid-request) is given up after
/// this, and the session goes on with a new pull.
const PULL_STALL: Duration = Duration::from_secs(4);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub async fn run(plane: Arc<Plane>, live: std::sync::Weak<Live>, mut stop: watch::Receiver<bool>) {
    let mut delay = RETRY_MIN;
    loop {
        let session = session(&plane, &live);
        let result = tokio::select! {
            r = session => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(()) => return,
            Err((reason, e)) => {
                plane.metrics.control_error(reason);
                plane.set_error(&e);
                tracing::warn!(target: "lacquer::control", error = %e, retry_in_ms = delay.as_millis() as u64, "control plane session ended");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

type SessionError = (&'static str, String);

/// Ok(()) only when the node is gone (nothing left to apply to).
async fn session(plane: &Arc<Plane>, live: &std::sync::Weak<Live>) -> Result<(), SessionError> {
    let js = nats::context(plane.client.clone());
    let stream = nats::ensure_stream(&js, &plane.cfg)
        .await
        .map_err(|e| ("stream", e))?;
    let consumer = nats::ensure_consumer(&stream, &plane.consumer, &plane.cfg)
        .await
        .map_err(|e| ("stream", e))?;
    plane.clear_error();
    check_caught_up(plane, &consumer).await;
    loop {
        let mut batch = consumer
            .batch()
            .max_messages(BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|e| ("consume", format!("pull: {e}")))?;
        let mut seen = false;
        loop {
            let next = match tokio::time::timeout(PULL_STALL, batch.next()).await {
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => break,
            };
            let msg = next.map_err(|e| ("consume", format!("pull: {e}")))?;
            let Some(live) = live.upgrade() else {
                return Ok(());
            };
            seen = true;
            handle(plane, &js, &live, msg).await?;
            // The backlog's last message: ready now, not when this pull expires.
            if !plane.caught_up() && plane.pending_hint() == 0 {
                check_caught_up(plane, &consumer).await;
            }
        }
        if !plane.caught_up() && (!seen || plane.pending_hint() == 0) {
            check_caught_up(plane, &consumer).await;
        }
    }
}

/// Ready once the consumer has nothing waiting: neither undelivered messages nor
/// deliveries of an earlier run still unacknowledged.
async fn check_caught_up(plane: &Plane, consumer: &PullConsumer) {
    if plane.caught_up() {
        return;
    }
    let mut consumer = consumer.clone();
    if let Ok(Ok(info)) = tokio::time::timeout(nats::API_TIMEOUT, consumer.info()).await {
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            plane.set_caught_up();
        }
    }
}

async fn handle(
    plane: &Plane,
    js: &jetstream::Context,
    live: &Arc<Live>,
    msg: jetstream::Message,
) -> Result<(), SessionError> {
    let (seq, pending) = msg
        .info()
        .map(|i| (i.stream_sequence, i.pending))
        .unwrap_or((0, u64::MAX));
    plane.set_pending_hint(pending);
    let parsed: Result<ControlMessage, _> = serde_json::from_slice(&msg.payload);
    let m = match parsed {
        Ok(m) => m,
        Err(e) => {
            // Not ours to understand (another writer on the subject, a newer
            // version): acknowledged so it does not come back forever.
            plane.metrics.control_error("apply");
            tracing::warn!(target: "lacquer::control", seq, error = %e, "control message not understood; skipped");
            msg.double_ack()
                .await
                .map_err(|e| ("consume", format!("ack: {e}")))?;
            return Ok(());
        }
    };
    let kind = m.command.kind();
    let (ok, result) = if plane.already_applied(&m.id) {
        (true, "already applied".to_owned())
    } else {
        // A body that cannot be read now (NATS went away mid-read) ends the session
        // unacknowledged: the message comes again and is applied then.
        let body = body_of(plane, js, &m.command)
            .await
            .map_err(|e| ("object", e))?;
        let proxy = live.proxy();
        let jobs = live.prewarm_jobs();
        let target = Target {
            proxy: &proxy,
            jobs: &jobs,
            node: &plane.node,
        };
        let outcome = apply::apply(&target, &m.command, body);
        // Applied or refused, the message is done with: a push this node refuses
        // (an older version, too large) would be refused again on every redelivery.
        plane.record_applied(&m.id, seq, kind);
        match outcome {
            Ok(r) => {
                plane.metrics.control_applied(kind);
                tracing::info!(target: "lacquer::control", id = %m.id, from = %m.from, seq, kind, result = %r, "control message applied");
                (true, r)
            }
            Err(e) => {
                plane.metrics.control_error("apply");
                tracing::warn!(target: "lacquer::control", id = %m.id, from = %m.from, seq, kind, error = %e, "control message refused here");
                (false, e)
            }
        }
    };
    msg.double_ack()
        .await
        .map_err(|e| ("consume", format!("ack: {e}")))?;
    let receipt = Receipt {
        node: plane.node.clone(),
        consumer: plane.consumer.clone(),
        id: m.id.clone(),
        result,
        ok,
    };
    if let Ok(payload) = serde_json::to_vec(&receipt) {
        let subject = format!("{}.applied.{}", plane.cfg.subject, m.id);
        // A lost receipt only shortens the caller's list; the purge itself is done.
        let _ = plane.client.publish(subject, Bytes::from(payload)).await;
    }
    Ok(())
}

/// A pushed body: inline (base64) or fetched from the object store, bounded by this
/// node's `admin.max_body` like a push through its own API.
async fn body_of(
    plane: &Plane,
    js: &jetstream::Context,
    command: &Command,
) -> Result<Option<Bytes>, String> {
    use base64::Engine as _;
    let Command::Push { body, object, .. } = command else {
        return Ok(None);
    };
    if let Some(b64) = body {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("body: {e}"))?;
        return Ok(Some(Bytes::from(raw)));
    }
    let Some(name) = object else {
        return Ok(Some(Bytes::new()));
    };
    let bucket = nats::ensure_bucket(js, &plane.cfg).await?;
    let read = async {
        let mut object = bucket
            .get(name)
            .await
            .map_err(|e| format!("object {name}: {e}"))?;
        let mut buf = Vec::new();
        (&mut object)
            .take(plane.max_body.saturating_add(1))
            .read_to_end(&mut buf)
            .await
            .map_err(|e| format!("object {name}: {e}"))?;
        if buf.len() as u64 > plane.max_body {
            return Err(format!(
                "object {name} is larger than admin.max_body ({} bytes)",
                plane.max_body
            ));
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(format!("object {name}: not read within 30s")),
    }
}
