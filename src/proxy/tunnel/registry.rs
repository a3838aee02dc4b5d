//! The node's open tunnels: how many (bounded by `limits.max_tunnels`), and the
//! shutdown signal they all listen to. Outlives reloads, so a reload keeps every open
//! tunnel and still counts it against the bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::metrics::TunnelMeters;

pub struct Tunnels {
    open: AtomicUsize,
    /// Set at shutdown: when open tunnels are cut.
    closing: watch::Sender<Option<Instant>>,
    /// Woken when the last tunnel closes.
    drained: Notify,
    meters: TunnelMeters,
}

impl Tunnels {
    pub fn new(meters: TunnelMeters) -> Arc<Tunnels> {
        Arc::new(Tunnels {
            open: AtomicUsize::new(0),
            closing: watch::channel(None).0,
            drained: Notify::new(),
            meters,
        })
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn meters(&self) -> &TunnelMeters {
        &self.meters
    }

    /// A place for one more tunnel, unless `max` are open.
    pub fn try_open(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.meters.open.inc();
        Some(Slot(self.clone()))
    }

    /// Shutdown: every open tunnel, and any opened from now on, is cut `drain` from now.
    pub fn close_after(&self, drain: Duration) {
        let deadline = Instant::now() + drain;
        self.closing.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(deadline);
            true
        });
    }

    /// When open tunnels are to be cut, once shutdown has begun.
    pub(super) fn closing(&self) -> watch::Receiver<Option<Instant>> {
        self.closing.subscribe()
    }

    /// Wait until no tunnel is open, at most `bound`. Returns how many are still open.
    pub async fn wait_closed(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let drained = self.drained.notified();
            let open = self.open();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.open();
            }
        }
    }
}

/// One tunnel's place in the count, given back when dropped.
pub struct Slot(Arc<Tunnels>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.meters.open.dec();
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
