//! The NATS side: connection options, and the stream, consumer and object bucket the
//! control plane needs (created when missing, so a fresh nats-server just works).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, object_store, stream};
use async_nats::{ConnectOptions, Event, ServerAddr};

use crate::config::ControlConfig;
use crate::metrics::Metrics;

/// The bucket pushed bodies too large for one message travel through.
pub const OBJECT_BUCKET: &str = "LACQUER_OBJECTS";
/// How long JetStream waits for an ack before it redelivers: applying a message is
/// quick (a purge, a store, starting a job), so a node restarted after applying but
/// before acking gets the message again soon, and skips it by its id if it can.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Deliveries in flight to one node; bounds what a node holds unacked.
const MAX_ACK_PENDING: i64 = 1024;
/// A JetStream API call (stream info, publish ack) waits at most this long.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Objects kept in the bucket, at most; the stream's own bound is in messages.
const MAX_OBJECT_BYTES: i64 = 1 << 30;

/// Connect in the background: `connect` returns at once, and the client keeps
/// reconnecting forever, so NATS being down never holds back the node's start.
pub async fn connect(
    cfg: &ControlConfig,
    node: &str,
    metrics: Arc<Metrics>,
) -> Result<async_nats::Client, String> {
    let addrs = cfg
        .nats
        .iter()
        .map(|u| u.parse::<ServerAddr>().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = ConnectOptions::new();
    if let Some(path) = &cfg.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| format!("creds_file {}: {e}", path.display()))?;
    }
    if let Some(token) = cfg.read_token().map_err(|e| format!("token_file: {e}"))? {
        options = options.token(token);
    }
    let client = options
        .name(format!("lacquer {node}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // Backoff capped at 2 s: a NATS restart costs at most that much delay.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100u64 << attempts.min(5)).min(2000))
        })
        .event_callback(move |event| {
            let metrics = metrics.clone();
            async move {
                match event {
                    Event::Connected => {
                        metrics.control_connected.set(1);
                        tracing::info!(target: "lacquer::control", "connected to NATS");
                    }
                    Event::Disconnected => {
                        metrics.control_connected.set(0);
                        tracing::warn!(target: "lacquer::control", "disconnected from NATS; reconnecting");
                    }
                    other => {
                        tracing::debug!(target: "lacquer::control", event = %other, "NATS event")
                    }
                }
            }
        })
        .connect(addrs)
        .await
        .map_err(|e| format!("NATS: {e}"))?;
    Ok(client)
}

pub fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(API_TIMEOUT)
        .build(client)
}

/// The control stream: file storage (it outlives nats-server restarts), bounded in age
/// and count, and a dedup window so a publish retried with the same id is kept once.
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &ControlConfig,
) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![cfg.subject.clone()],
        storage: stream::StorageType::File,
        max_age: cfg.max_age,
        max_messages: cfg.max_msgs,
        duplicate_window: Duration::from_secs(120).min(cfg.max_age),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("stream {}: {e}", cfg.stream))
}

/// This node's durable pull consumer. A consumer made now starts at new messages: the
/// cache is in memory, so what was purged or pushed before this node first existed is
/// not its concern. Once made it keeps its place across restarts of the node.
pub async fn ensure_consumer(
    stream: &stream::Stream,
    name: &str,
    cfg: &ControlConfig,
) -> Result<consumer::PullConsumer, String> {
    stream
        .get_or_create_consumer(
            name,
            consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                description: Some("lacquer control plane".to_owned()),
                deliver_policy: consumer::DeliverPolicy::New,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                filter_subject: cfg.subject.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {name}: {e}"))
}

/// The bucket for large pushed bodies; its objects expire with the stream's messages.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    cfg: &ControlConfig,
) -> Result<object_store::ObjectStore, String> {
    if let Ok(b) = js.get_object_store(OBJECT_BUCKET).await {
        return Ok(b);
    }
    js.create_object_store(object_store::Config {
        bucket: OBJECT_BUCKET.to_owned(),
        description: Some("lacquer: pushed bodies too large for one control message".into()),
        max_age: cfg.max_age,
        max_bytes: MAX_OBJECT_BYTES,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("object store {OBJECT_BUCKET}: {e}"))
}
