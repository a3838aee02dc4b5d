//! The control plane across PoPs (README "Across PoPs"), on NATS JetStream.
//!
//! A global admin call is published once to a stream; every node of every PoP reads
//! it through a durable pull consumer named after `node.name`, applies it through the
//! admin API's node-scope code, acknowledges it and sends a receipt, which the caller's
//! node gathers until `apply_deadline`. The consumer's position lives on the NATS
//! server, so a node that was down, partitioned or reloaded resumes where it stopped.
//!
//! - `nats`: connection, stream, consumer and object bucket
//! - `message`: the messages and receipts, ids and names
//! - `consume`: the consumer loop; `apply`: one message on this node
//! - `publish`: the sending side of a global call; `applied`: the redelivery guard
//! - `status`: `GET /control`

mod applied;
mod apply;
mod consume;
pub mod message;
mod nats;
mod publish;
mod status;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::error::ApiError;
use crate::config::{Config, ControlConfig};
use crate::metrics::Metrics;
use crate::server::Live;
use applied::Applied;

pub use message::{consumer_name, Command};

/// The control plane of one node: none when `[control] nats` is empty.
#[derive(Default)]
pub struct Control {
    plane: ArcSwapOption<Plane>,
    /// Shared by successive planes: a reload that reconnects can stop a session between
    /// applying a message and acknowledging it, and the next plane gets it again.
    applied: Arc<Mutex<Applied>>,
}

/// A running connection to NATS and the consumer loop that goes with it.
pub struct Plane {
    cfg: ControlConfig,
    node: String,
    consumer: String,
    client: async_nats::Client,
    metrics: Arc<Metrics>,
    /// Bound on a pushed body read from the object store (`admin.max_body`).
    max_body: u64,
    started: Instant,
    caught_up: AtomicBool,
    /// Messages the server said were left after the last one delivered.
    pending_hint: AtomicU64,
    applied: Arc<Mutex<Applied>>,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    last_id: Option<String>,
    last_seq: u64,
    last_kind: &'static str,
    count: u64,
    error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panicking holder cannot leave it half-updated in a harmful way.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    /// Connect (in the background) and start consuming, when configured. Only a bad
    /// credentials file fails here; NATS being down does not.
    pub async fn start(
        &self,
        cfg: &Config,
        live: Weak<Live>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        if !cfg.control.enabled() {
            self.plane.store(None);
            metrics.control_connected.set(0);
            return Ok(());
        }
        let client = nats::connect(&cfg.control, &cfg.node.name, metrics.clone()).await?;
        let (stop, stop_rx) = watch::channel(false);
        let plane = Arc::new(Plane {
            cfg: cfg.control.clone(),
            node: cfg.node.name.clone(),
            consumer: consumer_name(&cfg.node.name),
            client,
            metrics,
            max_body: cfg.admin.max_body,
            started: Instant::now(),
            caught_up: AtomicBool::new(false),
            pending_hint: AtomicU64::new(u64::MAX),
            applied: self.applied.clone(),
            state: Mutex::new(State::default()),
            stop,
        });
        tracing::info!(target: "lacquer::control", servers = ?cfg.control.nats, stream = %cfg.control.stream, consumer = %plane.consumer, "control plane starting");
        tokio::spawn(run_until_stopped(plane.clone(), live, stop_rx, shutdown));
        if let Some(old) = self.plane.swap(Some(plane)) {
            old.halt();
        }
        Ok(())
    }

    /// A reload: a changed `[control]` (or node name, which names the consumer)
    /// reconnects; otherwise the connection and the consumer's session stay.
    pub async fn reload(
        &self,
        old: &Config,
        new: &Config,
        live: Weak<Live>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Option<&'static str>, String> {
        if old.control == new.control && old.node.name == new.node.name {
            return Ok(None);
        }
        if !new.control.enabled() {
            if let Some(old) = self.plane.swap(None) {
                old.halt();
            }
            metrics.control_connected.set(0);
            return Ok(Some("control plane stopped"));
        }
        self.start(new, live, metrics, shutdown).await?;
        Ok(Some("control plane reconnected"))
    }

    /// The plane, or the 503 a global call answers without one.
    pub fn plane(&self) -> Result<Arc<Plane>, ApiError> {
        self.plane.load_full().ok_or_else(|| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "scope \"global\" needs the control plane: [control] nats is not configured on this node (node and cluster scopes work)",
            )
        })
    }

    /// Why `/ready` should say no: a starting node applies its consumer's backlog
    /// first, for at most `catch_up_timeout`.
    pub fn unready(&self) -> Option<String> {
        let plane = self.plane.load_full()?;
        if plane.caught_up() || plane.started.elapsed() >= plane.cfg.catch_up_timeout {
            return None;
        }
        Some(match plane.pending_hint.load(Ordering::Relaxed) {
            u64::MAX => "catching up: reading the control stream".to_owned(),
            n => format!("catching up: {n} control messages left to apply"),
        })
    }

    /// `GET /control`.
    pub async fn status(&self, node: &str) -> serde_json::Value {
        match self.plane.load_full() {
            Some(p) => status::status(&p).await,
            None => serde_json::json!({"node": node, "enabled": false}),
        }
    }

    /// On shutdown: stop consuming (the NATS connection closes with the last handle).
    pub fn stop(&self) {
        if let Some(old) = self.plane.swap(None) {
            old.halt();
        }
    }
}

async fn run_until_stopped(
    plane: Arc<Plane>,
    live: Weak<Live>,
    stop: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = consume::run(plane.clone(), live, stop) => {},
        _ = shutdown.changed() => {},
    }
    plane.metrics.control_connected.set(0);
    // Undelivered publishes (receipts) go out before the connection is dropped.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), plane.client.flush()).await;
    tracing::info!(target: "lacquer::control", "control plane stopped");
}

impl Plane {
    fn halt(&self) {
        let _ = self.stop.send(true);
    }

    fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    fn set_caught_up(&self) {
        if !self.caught_up.swap(true, Ordering::AcqRel) {
            tracing::info!(target: "lacquer::control", applied = lock(&self.state).count, took_ms = self.started.elapsed().as_millis() as u64, "control stream caught up");
        }
    }

    fn pending_hint(&self) -> u64 {
        self.pending_hint.load(Ordering::Relaxed)
    }

    fn set_pending_hint(&self, n: u64) {
        self.pending_hint.store(n, Ordering::Relaxed);
    }

    fn already_applied(&self, id: &str) -> bool {
        lock(&self.applied).contains(id)
    }

    fn record_applied(&self, id: &str, seq: u64, kind: &'static str) {
        lock(&self.applied).insert(id);
        let mut s = lock(&self.state);
        s.last_id = Some(id.to_owned());
        s.last_seq = seq;
        s.last_kind = kind;
        s.count += 1;
    }

    fn set_error(&self, e: &str) {
        lock(&self.state).error = Some(e.to_owned());
    }

    fn clear_error(&self) {
        lock(&self.state).error = None;
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}
