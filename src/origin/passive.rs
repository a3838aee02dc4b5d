//! Passive health: what real requests say about an origin, beside the active probes.
//!
//! A circuit breaker per origin. `fall` consecutive failures (connect errors, first-byte
//! timeouts and, when configured, 5xx answers) open it: the origin gets no traffic for
//! `cooldown`. After that one request is let through (half-open); its success closes the
//! circuit, its failure opens it for another cooldown. A probe that never reports (its
//! client went away) does not wedge the origin: the next probe is admitted one cooldown
//! later.
//!
//! Lock-free: the whole state is two atomics, read on every pick.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What one origin exchange says about the origin's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// Says nothing about the origin (the client's body failed, a bad request).
    Neutral,
}

/// A change of state worth a log line and a gauge update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The circuit opened after this many consecutive failures.
    Down(u32),
    /// A request after the cooldown succeeded.
    Up,
}

#[derive(Debug)]
pub struct Passive {
    /// Consecutive failures that open the circuit; 0 turns passive health off.
    fall: u32,
    cooldown_ms: u64,
    epoch: Instant,
    fails: AtomicU32,
    /// 0 while closed; otherwise the time (ms after `epoch`, never 0) from which the
    /// next probe may go.
    open_until: AtomicU64,
}

impl Passive {
    pub fn new(fall: u32, cooldown: Duration) -> Self {
        Passive {
            fall,
            cooldown_ms: u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX / 4)
                .max(1),
            epoch: Instant::now(),
            fails: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps every "until" non-zero, 0 meaning closed.
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 4) + 1
    }

    /// The circuit is open or half-open: the origin is out of rotation.
    pub fn is_down(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// May a request go to this origin now? While half-open exactly one caller per
    /// cooldown gets `true`: it is the probe.
    pub fn admits(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        self.open_until
            .compare_exchange(
                until,
                now.saturating_add(self.cooldown_ms),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    pub fn record(&self, verdict: Verdict) -> Option<Transition> {
        if self.fall == 0 {
            return None;
        }
        match verdict {
            Verdict::Neutral => None,
            Verdict::Success => {
                self.fails.store(0, Ordering::Relaxed);
                (self.open_until.swap(0, Ordering::AcqRel) != 0).then_some(Transition::Up)
            }
            Verdict::Failure => {
                let n = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                let until = self.now_ms().saturating_add(self.cooldown_ms);
                if self.is_down() {
                    // A failed probe (or a request sent before the circuit opened):
                    // start the cooldown again.
                    self.open_until.store(until, Ordering::Release);
                    None
                } else if n >= self.fall {
                    self.open_until.store(until, Ordering::Release);
                    Some(Transition::Down(n))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_fall_then_one_probe_per_cooldown() {
        let p = Passive::new(3, Duration::from_secs(10));
        assert_eq!(p.record(Verdict::Failure), None);
        assert_eq!(p.record(Verdict::Neutral), None);
        assert_eq!(p.record(Verdict::Failure), None);
        assert_eq!(p.record(Verdict::Failure), Some(Transition::Down(3)));
        assert!(!p.admits());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(p.admits(), "one probe after the cooldown");
        assert!(!p.admits(), "only one");
        assert_eq!(p.record(Verdict::Failure), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!p.admits(), "a failed probe restarts the cooldown");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(p.admits());
        assert_eq!(p.record(Verdict::Success), Some(Transition::Up));
        assert!(p.admits() && p.admits());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_does_not_wedge_the_origin() {
        let p = Passive::new(1, Duration::from_secs(1));
        assert_eq!(p.record(Verdict::Failure), Some(Transition::Down(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(p.admits());
        // The probe never reports.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(p.admits());
    }

    #[test]
    fn zero_fall_is_off() {
        let p = Passive::new(0, Duration::from_secs(1));
        for _ in 0..10 {
            assert_eq!(p.record(Verdict::Failure), None);
        }
        assert!(p.admits());
    }

    #[test]
    fn a_success_resets_the_count() {
        let p = Passive::new(2, Duration::from_secs(1));
        p.record(Verdict::Failure);
        p.record(Verdict::Success);
        assert_eq!(p.record(Verdict::Failure), None);
        assert!(p.admits());
    }
}
