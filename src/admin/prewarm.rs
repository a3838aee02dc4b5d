//! Pull pre-warm jobs: fetch a list of URLs through the normal request path
//! (`Proxy::fill`) in the background, with bounded concurrency, and report progress.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::error::{json, ApiError, ApiResult};
use super::input::parse_json;
use crate::cache::key::CacheKey;
use crate::proxy::Proxy;

pub const MAX_URLS: usize = 100_000;
pub const MAX_CONCURRENCY: usize = 64;
const DEFAULT_CONCURRENCY: usize = 8;
/// Jobs remembered for `GET /prewarm/{id}`; the oldest finished ones are forgotten first.
pub const MAX_JOBS: usize = 16;
/// Failures listed per job; beyond that only counted (a broken origin would
/// otherwise make the report as long as the URL list).
pub const MAX_LISTED_FAILURES: usize = 100;

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const CANCELLED: u8 = 2;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrewarmRequest {
    pub urls: Vec<String>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// "node" (default) or "cluster": each URL pre-warmed on its owning shard.
    #[serde(default)]
    pub scope: Option<String>,
    /// With cluster scope, also pre-warm every edge.
    #[serde(default)]
    pub edges: bool,
}

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub url: String,
    pub reason: String,
}

/// One job's progress, shared between its workers and the status endpoint.
pub struct Job {
    id: u64,
    total: usize,
    concurrency: usize,
    started: Instant,
    /// Milliseconds from start to the end (done or cancelled); u64::MAX while running.
    /// A finished job's elapsed time must stop growing.
    ended_ms: AtomicU64,
    state: AtomicU8,
    done: AtomicUsize,
    failed: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    workers: Mutex<Vec<AbortHandle>>,
}

#[derive(Debug, Serialize)]
struct JobView {
    id: u64,
    state: &'static str,
    total: usize,
    done: usize,
    failed: usize,
    remaining: usize,
    concurrency: usize,
    elapsed_ms: u64,
    failures: Vec<Failure>,
    /// Failures counted but not listed (beyond MAX_LISTED_FAILURES).
    failures_not_listed: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these lists inconsistent: recover them.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Job {
    fn running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    fn record(&self, url: &str, result: Result<(StatusCode, &'static str), String>) {
        let reason = match result {
            Ok((status, _)) if status.as_u16() < 400 => {
                self.done.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok((status, _)) => format!("status {}", status.as_u16()),
            Err(e) => e,
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = lock(&self.failures);
        if failures.len() < MAX_LISTED_FAILURES {
            failures.push(Failure {
                url: url.to_owned(),
                reason,
            });
        }
    }

    /// Stop starting fills and abort those running. A fill's origin fetch runs in its
    /// own task, so aborting the waiter never leaves a half-stored object.
    fn cancel(&self) {
        if self
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.end();
            for w in lock(&self.workers).drain(..) {
                w.abort();
            }
        }
    }

    fn end(&self) {
        self.ended_ms.store(self.millis(), Ordering::Release);
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn view(&self) -> JobView {
        let done = self.done.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let failures = lock(&self.failures).clone();
        JobView {
            id: self.id,
            state: match self.state.load(Ordering::Acquire) {
                RUNNING => "running",
                DONE => "done",
                _ => "cancelled",
            },
            total: self.total,
            done,
            failed,
            remaining: self.total.saturating_sub(done + failed),
            concurrency: self.concurrency,
            elapsed_ms: match self.ended_ms.load(Ordering::Acquire) {
                u64::MAX => self.millis(),
                ended => ended,
            },
            failures_not_listed: failed.saturating_sub(failures.len()),
            failures,
        }
    }
}

/// The jobs this node remembers, oldest first.
#[derive(Default)]
pub struct Jobs {
    next_id: AtomicU64,
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

impl Jobs {
    /// `POST /prewarm`: validate, register, and start a job; 202 with its id.
    pub fn start(&self, proxy: &Arc<Proxy>, body: &[u8]) -> ApiResult {
        let req: PrewarmRequest = parse_json(body)?;
        check_request(&req, &|u| proxy.key_for_url(u))?;
        let (id, total) = self.start_urls(proxy, req.urls, req.concurrency)?;
        #[derive(Serialize)]
        struct Started {
            id: u64,
            total: usize,
        }
        Ok(json(StatusCode::ACCEPTED, &Started { id, total }))
    }

    /// Start a job over already checked URLs; returns its id and size.
    pub fn start_urls(
        &self,
        proxy: &Arc<Proxy>,
        urls: Vec<String>,
        concurrency: usize,
    ) -> Result<(u64, usize), ApiError> {
        let req = PrewarmRequest {
            urls,
            concurrency,
            scope: None,
            edges: false,
        };
        let job = Arc::new(Job {
            id: self.next_id(),
            total: req.urls.len(),
            concurrency: req.concurrency,
            started: Instant::now(),
            ended_ms: AtomicU64::new(u64::MAX),
            state: AtomicU8::new(RUNNING),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        });
        self.register(job.clone())?;
        spawn_workers(proxy, &job, req.urls);
        tracing::info!(target: "lacquer::admin", job = job.id, urls = job.total, concurrency = job.concurrency, "prewarm started");
        Ok((job.id, job.total))
    }

    /// Keep at most MAX_JOBS: make room by forgetting the oldest finished job; when
    /// all are still running, refuse (429) rather than grow without bound.
    fn register(&self, job: Arc<Job>) -> Result<(), ApiError> {
        let mut jobs = lock(&self.jobs);
        if jobs.len() >= MAX_JOBS {
            match jobs.iter().position(|j| !j.running()) {
                Some(i) => {
                    jobs.remove(i);
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("{MAX_JOBS} prewarm jobs are running; wait for one or cancel one"),
                    ))
                }
            }
        }
        jobs.push_back(job);
        Ok(())
    }

    /// A fresh id from the same sequence as jobs' (a cluster job is looked up by it).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A job's progress as `GET /prewarm/{id}` shows it.
    pub fn view_json(&self, id: u64) -> Option<serde_json::Value> {
        let job = self.find(&id.to_string()).ok()?;
        serde_json::to_value(job.view()).ok()
    }

    fn find(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        let wanted: Option<u64> = id.parse().ok();
        lock(&self.jobs)
            .iter()
            .find(|j| Some(j.id) == wanted)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no prewarm job {id:?}")))
    }

    /// `GET /prewarm/{id}`.
    pub fn status(&self, id: &str) -> ApiResult {
        Ok(json(StatusCode::OK, &self.find(id)?.view()))
    }

    /// `DELETE /prewarm/{id}`: cancel (a finished job stays as it was) and show it.
    pub fn cancel(&self, id: &str) -> ApiResult {
        let job = self.find(id)?;
        job.cancel();
        tracing::info!(target: "lacquer::admin", job = job.id, "prewarm cancelled");
        Ok(json(StatusCode::OK, &job.view()))
    }

    /// On shutdown: nothing may keep fetching for a node that is going away.
    pub fn cancel_all(&self) {
        for j in lock(&self.jobs).iter() {
            j.cancel();
        }
    }
}

/// `keys` gives an operator URL's cache key (under the key rules of its site).
pub fn check_request(
    req: &PrewarmRequest,
    keys: &dyn Fn(&str) -> Result<CacheKey, String>,
) -> Result<(), ApiError> {
    if req.urls.is_empty() {
        return Err(ApiError::bad_request("urls is empty"));
    }
    if req.urls.len() > MAX_URLS {
        return Err(ApiError::bad_request(format!(
            "{} urls; at most {MAX_URLS} per job",
            req.urls.len()
        )));
    }
    if !(1..=MAX_CONCURRENCY).contains(&req.concurrency) {
        return Err(ApiError::bad_request(format!(
            "concurrency must be 1 to {MAX_CONCURRENCY}"
        )));
    }
    // All checked up front: a typo in line 90 000 is reported now, not after an hour.
    for (i, u) in req.urls.iter().enumerate() {
        keys(u).map_err(|e| ApiError::bad_request(format!("urls[{i}] {u:?}: {e}")))?;
    }
    Ok(())
}

/// `concurrency` workers share one cursor over the list; the last one to finish
/// marks the job done (unless it was cancelled).
fn spawn_workers(proxy: &Arc<Proxy>, job: &Arc<Job>, urls: Vec<String>) {
    let urls: Arc<[String]> = urls.into();
    let cursor = Arc::new(AtomicUsize::new(0));
    let remaining_workers = Arc::new(AtomicUsize::new(job.concurrency));
    let mut workers = lock(&job.workers);
    for _ in 0..job.concurrency {
        let (proxy, job2, urls, cursor, left) = (
            proxy.clone(),
            job.clone(),
            urls.clone(),
            cursor.clone(),
            remaining_workers.clone(),
        );
        let handle = tokio::spawn(async move {
            while job2.running() {
                let Some(url) = urls.get(cursor.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let result = proxy.fill(url).await;
                let ok = matches!(&result, Ok((status, _)) if status.as_u16() < 400);
                proxy.metrics().prewarm(if ok { "ok" } else { "failed" });
                job2.record(url, result);
            }
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                if job2
                    .state
                    .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    job2.end();
                }
                lock(&job2.workers).clear();
            }
        });
        workers.push(handle.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Result<(), ApiError> {
        let r: PrewarmRequest = parse_json(body.as_bytes())?;
        check_request(&r, &|u| {
            crate::cache::key::key_for_url(u, &crate::cache::key::KeyRules::default())
        })
    }

    #[test]
    fn request_checks() {
        assert!(req(r#"{"urls":["http://a/1"]}"#).is_ok());
        assert!(req(r#"{"urls":["http://a/1"],"concurrency":64}"#).is_ok());
        assert!(req(r#"{"urls":[]}"#).is_err());
        assert!(req(r#"{"urls":["http://a/1"],"concurrency":0}"#).is_err());
        assert!(req(r#"{"urls":["http://a/1"],"concurrency":65}"#).is_err());
        assert!(req(r#"{"urls":["http://a/1"],"concurrency":-1}"#).is_err());
        assert!(req(r#"{"urls":["http://a/1", "nope"]}"#)
            .unwrap_err()
            .message
            .contains("urls[1]"));
        assert!(req(r#"{"urls":["http://a/1"],"extra":1}"#).is_err());
    }

    fn job(id: u64, state: u8) -> Arc<Job> {
        Arc::new(Job {
            id,
            total: 3,
            concurrency: 1,
            started: Instant::now(),
            ended_ms: AtomicU64::new(u64::MAX),
            state: AtomicU8::new(state),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_jobs_elapsed_time_stops() {
        let j = job(1, RUNNING);
        tokio::time::advance(std::time::Duration::from_millis(250)).await;
        j.cancel();
        let at_end = j.view().elapsed_ms;
        assert_eq!(at_end, 250);
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(j.view().elapsed_ms, at_end);
    }

    #[test]
    fn failures_are_bounded_and_counted() {
        let j = job(1, RUNNING);
        j.record("http://a/ok", Ok((StatusCode::OK, "miss")));
        for _ in 0..MAX_LISTED_FAILURES + 5 {
            j.record("http://a/x", Ok((StatusCode::NOT_FOUND, "miss")));
        }
        j.record("http://a/y", Err("boom".into()));
        let v = j.view();
        assert_eq!(v.done, 1);
        assert_eq!(v.failed, MAX_LISTED_FAILURES + 6);
        assert_eq!(v.failures.len(), MAX_LISTED_FAILURES);
        assert_eq!(v.failures_not_listed, 6);
        assert_eq!(v.failures[0].reason, "status 404");
        assert_eq!(v.remaining, 0);
    }

    #[test]
    fn registry_drops_oldest_finished_then_refuses() {
        let jobs = Jobs::default();
        jobs.register(job(1, DONE)).unwrap();
        for id in 2..=MAX_JOBS as u64 {
            jobs.register(job(id, RUNNING)).unwrap();
        }
        jobs.register(job(100, RUNNING)).unwrap();
        assert!(jobs.find("1").is_err(), "oldest finished job forgotten");
        assert!(jobs.find("100").is_ok());
        let e = jobs.register(job(101, RUNNING)).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(jobs.find("abc").is_err());
    }

    #[test]
    fn cancel_only_moves_running_jobs() {
        let j = job(1, DONE);
        j.cancel();
        assert_eq!(j.view().state, "done");
        let j = job(2, RUNNING);
        j.cancel();
        assert_eq!(j.view().state, "cancelled");
    }
}
