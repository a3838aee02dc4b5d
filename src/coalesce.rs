//! Request coalescing: one origin fetch per cache key, its response streamed to every waiter.
//!
//! Life of a flight (see also `proxy::fetch`):
//!
//! ```text
//!  join() ──► Leader ── spawns the fetch task, which owns the FlightWriter
//!        └──► Follower ─┐
//!                       ▼
//!   head pending ──► Streaming{shareable}  ─► chunks appended ─► finished (stored, or not)
//!               ├──► Complete(object)       (a 304 refreshed the stored copy)
//!               └──► Failed(error)          (no response head from the origin)
//! ```
//!
//! Waiters register a body cursor when they join, so a waiter never misses the start of
//! the body however late it reads. Waiters stay with the fetch until it has a head or
//! fails: the fetch is bounded by its own timeouts, and its failure (or 5xx) is everyone's
//! answer, so a failing origin sees one request per wave, not one per waiter. When the
//! response is not shareable (private, no-store, Set-Cookie...), followers get `GiveUp`
//! and fetch on their own: an uncacheable URL must never be serialized behind one request.
//! A short hit-for-miss marker (the cache's, `cache::Cache`) then keeps later requests
//! from queueing at all. A fetch nobody can join (hit-for-miss, released followers) is
//! `abortable`: when its last waiter leaves (the client hung up), the fetch drops its
//! origin request. A joinable fill goes on
//! without readers, since it may fill the cache. While a body is kept for storing, every
//! chunk stays in memory (it becomes the cached object); once it is known not to be
//! stored, chunks that every reader has passed are dropped, the writer waits for the
//! slowest reader beyond a window (so memory stays bounded whatever the response size),
//! and the fetch ends when no reader is left.
//!
//! Hand-written rather than built on `tokio::sync::broadcast`: broadcast cannot replay the
//! start of the stream to a late joiner, and a lagging receiver loses data instead of
//! applying backpressure.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{request, HeaderMap, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use crate::body::BodyError;
use crate::cache::key::CacheKey;
use crate::cache::keyhash::KeyHashBuilder;
use crate::cache::object::Object;
use crate::failure::FetchFailure;

/// Bytes buffered ahead of the slowest reader for a body that is not being stored. Every
/// stalled reader of such a body holds this much: at 1 MiB, 768 stalled HTTP/2 streams
/// took the process to 876 MiB; at 64 KiB, to 140 MiB (`tests/h2_limits.rs`,
/// `stalled_streams_rss`). Kernel socket buffers and hyper's own buffer already keep a
/// fast reader fed, so the window only has to cover a read or two of the origin.
const PASS_WINDOW: u64 = 64 << 10;

/// The response head as received from the origin, shared by every waiter.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// Content-Length of the body when the origin stated it.
    pub content_length: Option<u64>,
    /// The whole response was in the store before this head was published (Cache-Status
    /// `stored` must be true when it is said, and the head goes out before a long body ends).
    pub stored: bool,
}

/// What a waiter learns once the leader's fetch has a head (or failed).
pub enum Outcome {
    /// Stream this response; `shareable` is false only for the leader of an unshareable response.
    Stream {
        head: Arc<ResponseHead>,
        reader: BodyReader,
    },
    /// A complete object: a 304 refreshed the stored copy.
    Object(Arc<Object>),
    /// The response is not for sharing; fetch on your own.
    GiveUp,
    /// The origin gave no response.
    Failed(FetchFailure),
    /// The waiter stopped waiting: the fetch is slower than `stale_on_slow` and the waiter
    /// has a stale copy to serve (the fetch goes on and refreshes the cache).
    Slow,
}

enum Head {
    Pending,
    Streaming {
        head: Arc<ResponseHead>,
        shareable: bool,
    },
    Complete(Arc<Object>),
    Failed(FetchFailure),
}

struct State {
    head: Head,
    chunks: VecDeque<Bytes>,
    /// Index (in chunks ever written) of `chunks[0]`.
    first: u64,
    /// Bytes held in `chunks`.
    buffered: u64,
    /// Set when the body ended: Ok for a clean end, Err with the reason otherwise.
    end: Option<Result<(), String>>,
    /// One slot per waiter: its cursor (index of the next chunk to read) and waker.
    readers: Vec<Option<Slot>>,
    live_readers: usize,
    /// True once the body will not be stored: read chunks are dropped.
    trimming: bool,
    writer_waker: Option<Waker>,
    /// The rest of an unshared body, handed over whole to its one reader
    /// (`FlightWriter::hand_over`).
    direct: Option<Pin<Box<crate::body::ProxyBody>>>,
}

struct Slot {
    cursor: u64,
    waker: Option<Waker>,
    leader: bool,
}

impl State {
    fn wake_all(&mut self) {
        for slot in self.readers.iter_mut().flatten() {
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    fn min_cursor(&self) -> u64 {
        self.readers
            .iter()
            .flatten()
            .map(|s| s.cursor)
            .min()
            .unwrap_or(self.first + self.chunks.len() as u64)
    }

    fn trim(&mut self) {
        if !self.trimming {
            return;
        }
        let min = self.min_cursor();
        while self.first < min {
            match self.chunks.pop_front() {
                Some(c) => {
                    self.buffered -= c.len() as u64;
                    self.first += 1;
                }
                None => break,
            }
        }
        if self.buffered < PASS_WINDOW {
            if let Some(w) = self.writer_waker.take() {
                w.wake();
            }
        }
    }
}

/// One in-flight origin fetch.
pub struct Flight {
    pub key: CacheKey,
    /// When the fetch started: a waiter with a stale copy serves it once the fetch is
    /// older than `stale_on_slow`, however late the waiter joined.
    pub started: Instant,
    /// The leader's request: a follower may share a response only if it selects the
    /// same variant (Vary) as the request that was sent.
    pub leader: Arc<request::Parts>,
    state: Mutex<State>,
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere while holding it; the state is still
        // consistent for our purposes (every mutation is a few field writes).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(self: &Arc<Self>, leader: bool) -> Waiter {
        let mut st = self.lock();
        let slot = Slot {
            cursor: st.first,
            waker: None,
            leader,
        };
        let id = match st.readers.iter().position(Option::is_none) {
            Some(i) => {
                st.readers[i] = Some(slot);
                i
            }
            None => {
                st.readers.push(Some(slot));
                st.readers.len() - 1
            }
        };
        st.live_readers += 1;
        Waiter {
            flight: self.clone(),
            slot: Some(id),
        }
    }

    /// Number of waiters still attached (leader included).
    pub fn readers(&self) -> usize {
        self.lock().live_readers
    }
}

/// A request attached to a flight, waiting for its head.
pub struct Waiter {
    flight: Arc<Flight>,
    slot: Option<usize>,
}

impl Waiter {
    pub fn flight(&self) -> &Arc<Flight> {
        &self.flight
    }

    /// Wait until the fetch has a head (no polling: the writer wakes us).
    pub async fn outcome(mut self) -> Outcome {
        let Some(id) = self.slot else {
            return Outcome::Failed(FetchFailure::ABANDONED);
        };
        let decided = std::future::poll_fn(|cx| {
            let mut st = self.flight.lock();
            let leader = st
                .readers
                .get(id)
                .and_then(|s| s.as_ref())
                .map(|s| s.leader);
            let r = match &st.head {
                Head::Pending => None,
                Head::Streaming { head, shareable } => {
                    if *shareable || leader == Some(true) {
                        Some(Ok(head.clone()))
                    } else {
                        Some(Err(Outcome::GiveUp))
                    }
                }
                Head::Complete(obj) => Some(Err(Outcome::Object(obj.clone()))),
                Head::Failed(f) => Some(Err(Outcome::Failed(*f))),
            };
            match r {
                Some(r) => Poll::Ready(r),
                None => {
                    if let Some(Some(slot)) = st.readers.get_mut(id) {
                        slot.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        match decided {
            Ok(head) => {
                let content_length = head.content_length;
                self.slot = None;
                Outcome::Stream {
                    head,
                    reader: BodyReader {
                        flight: self.flight.clone(),
                        slot: Some(id),
                        content_length,
                        done: false,
                        direct: None,
                    },
                }
            }
            // Dropping `self` releases the slot.
            Err(outcome) => outcome,
        }
    }
}

fn release(flight: &Flight, id: usize) {
    let mut st = flight.lock();
    if let Some(slot) = st.readers.get_mut(id) {
        if slot.take().is_some() {
            st.live_readers -= 1;
        }
    }
    st.trim();
    if st.live_readers == 0 {
        if let Some(w) = st.writer_waker.take() {
            w.wake();
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(id) = self.slot.take() {
            release(&self.flight, id);
        }
    }
}

/// A waiter's view of the shared body: yields each chunk as the writer appends it.
pub struct BodyReader {
    flight: Arc<Flight>,
    slot: Option<usize>,
    content_length: Option<u64>,
    done: bool,
    /// The upstream body itself, once handed over: read without the flight.
    direct: Option<Pin<Box<crate::body::ProxyBody>>>,
}

impl BodyReader {
    pub fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(body) = self.direct.as_mut() {
            let polled = http_body::Body::poll_frame(body.as_mut(), cx);
            if let Poll::Ready(None | Some(Err(_))) = &polled {
                self.done = true;
            }
            return polled;
        }
        let Some(id) = self.slot else {
            return Poll::Ready(None);
        };
        let mut st = self.flight.lock();
        let written = st.first + st.chunks.len() as u64;
        let cursor = match st.readers.get(id).and_then(|s| s.as_ref()) {
            Some(s) => s.cursor,
            None => return Poll::Ready(None),
        };
        if cursor < written {
            let idx = cursor.saturating_sub(st.first) as usize;
            let chunk = st.chunks.get(idx).cloned().unwrap_or_default();
            if let Some(Some(slot)) = st.readers.get_mut(id) {
                slot.cursor = cursor + 1;
            }
            st.trim();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(body) = st.direct.take() {
            drop(st);
            self.direct = Some(body);
            return self.poll_frame(cx);
        }
        match &st.end {
            Some(Ok(())) => {
                drop(st);
                self.done = true;
                Poll::Ready(None)
            }
            Some(Err(reason)) => {
                let e = BodyError::Upstream(reason.clone());
                drop(st);
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                if let Some(Some(slot)) = st.readers.get_mut(id) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.done
            || self.content_length == Some(0)
            || self
                .direct
                .as_ref()
                .is_some_and(|b| http_body::Body::is_end_stream(&**b))
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        if let Some(id) = self.slot.take() {
            release(&self.flight, id);
        }
    }
}

/// The fetch task's handle: the only way to change a flight's state. Dropping it without
/// finishing marks the flight failed, so waiters never hang on a vanished fetch.
pub struct FlightWriter {
    flight: Arc<Flight>,
    coalescer: Arc<Coalescer>,
    finished: bool,
    abortable: bool,
}

impl FlightWriter {
    pub fn flight(&self) -> &Arc<Flight> {
        &self.flight
    }

    /// Nobody can join this fetch: once its waiters are gone, nobody needs it.
    pub fn abortable(&self) -> bool {
        self.abortable
    }

    /// Resolves once no waiter is attached (all clients hung up, or were served elsewhere).
    pub async fn abandoned(&self) {
        std::future::poll_fn(|cx| {
            let mut st = self.flight.lock();
            if st.live_readers == 0 {
                Poll::Ready(())
            } else {
                st.writer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Publish the response head. Not shareable: followers are released and the key
    /// leaves the in-flight map at once, so nobody else queues behind this fetch.
    pub fn head(&mut self, head: Arc<ResponseHead>, shareable: bool) {
        {
            let mut st = self.flight.lock();
            st.head = Head::Streaming { head, shareable };
            if !shareable {
                st.trimming = true;
            }
            st.wake_all();
        }
        if !shareable {
            self.coalescer.leave(&self.flight);
        }
    }

    /// The body will not be stored after all (it grew past the object size limit):
    /// stop new joiners and start dropping chunks every reader has passed.
    pub fn stop_storing(&mut self) {
        self.coalescer.leave(&self.flight);
        let mut st = self.flight.lock();
        st.trimming = true;
        st.trim();
    }

    /// Append a chunk. Returns false when nobody is left to read a body that is not
    /// being stored: the caller should stop fetching.
    pub async fn push(&mut self, chunk: Bytes) -> bool {
        {
            let mut st = self.flight.lock();
            st.buffered += chunk.len() as u64;
            st.chunks.push_back(chunk);
            st.wake_all();
            if st.trimming && st.live_readers == 0 {
                return false;
            }
        }
        // Backpressure only for bodies we do not keep: wait for the slowest reader.
        std::future::poll_fn(|cx| {
            let mut st = self.flight.lock();
            if !st.trimming || st.buffered < PASS_WINDOW || st.live_readers == 0 {
                Poll::Ready(())
            } else {
                st.writer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let st = self.flight.lock();
        !(st.trimming && st.live_readers == 0)
    }

    /// All chunks written so far, for building the stored object.
    pub fn body_chunks(&self) -> Vec<Bytes> {
        self.flight.lock().chunks.iter().cloned().collect()
    }

    /// The body was stored as `body`: swap each kept chunk for the same bytes of the
    /// stored copy, so the arrived chunks are freed now rather than when the slowest
    /// reader is done. Readers' cursors count chunks, so the chunk boundaries stay.
    /// Does nothing unless the flight still holds the whole body, and it is `body`.
    pub fn rebase(&mut self, body: &Bytes) {
        let mut st = self.flight.lock();
        let held: usize = st.chunks.iter().map(Bytes::len).sum();
        if st.trimming || st.first != 0 || held != body.len() {
            return;
        }
        let mut at = 0;
        for chunk in st.chunks.iter_mut() {
            let len = chunk.len();
            *chunk = body.slice(at..at + len);
            at += len;
        }
    }

    /// End the body (clean or not) and leave the in-flight map. Call after storing, so a
    /// request arriving in between finds the object in the store, not a missing flight.
    pub fn finish(mut self, result: Result<(), String>) {
        self.finished = true;
        {
            let mut st = self.flight.lock();
            st.end = Some(result);
            st.wake_all();
        }
        self.coalescer.leave(&self.flight);
    }

    /// An unshared body (its head published with `shareable = false`, nothing pushed
    /// yet): its one reader takes `body` and reads it itself, and the fetch task is done.
    /// Relaying each chunk through the flight cost a task wake-up and a lock per chunk,
    /// for a reader that was always going to be the only one (event streams, no-store).
    pub fn hand_over(mut self, body: crate::body::ProxyBody) {
        self.finished = true;
        let mut st = self.flight.lock();
        st.direct = Some(Box::pin(body));
        st.wake_all();
    }

    /// The fetch ended with a complete object (304 refresh) instead of a stream.
    pub fn complete(mut self, obj: Arc<Object>) {
        self.finished = true;
        {
            let mut st = self.flight.lock();
            st.head = Head::Complete(obj);
            st.end = Some(Ok(()));
            st.wake_all();
        }
        self.coalescer.leave(&self.flight);
    }

    /// No response head: every waiter decides for itself (stale copy or error page).
    pub fn fail(mut self, why: FetchFailure) {
        self.finished = true;
        self.set_failed(why);
    }

    fn set_failed(&mut self, why: FetchFailure) {
        {
            let mut st = self.flight.lock();
            if matches!(st.head, Head::Pending) {
                st.head = Head::Failed(why);
            }
            if st.end.is_none() {
                st.end = Some(Err("fetch abandoned".into()));
            }
            st.wake_all();
        }
        self.coalescer.leave(&self.flight);
    }
}

impl Drop for FlightWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.set_failed(FetchFailure::ABANDONED);
        }
    }
}

/// The result of asking to join a fetch for a key.
pub enum Join {
    /// Nobody is fetching this key: start the fetch with the writer; wait like everyone else.
    Leader(FlightWriter, Waiter),
    Follower(Waiter),
    /// Too many requests already wait on this key.
    Busy,
}

/// The in-flight map and the failure backoff markers. (The hit-for-miss markers are
/// the cache's: `cache::Cache` decides what can be shared.)
pub struct Coalescer {
    flights: Mutex<HashMap<u128, Arc<Flight>, KeyHashBuilder>>,
    /// Keys whose last fetch failed (no head, or 5xx), for `error_backoff`; None when off.
    failed: Option<moka::sync::Cache<u128, (), KeyHashBuilder>>,
    max_waiters: usize,
}

impl Coalescer {
    pub fn new(max_waiters: usize, error_backoff: Duration) -> Arc<Self> {
        // Bounded: an attacker requesting endless URLs only churns markers.
        let failed = (!error_backoff.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(error_backoff)
                .build_with_hasher(KeyHashBuilder::default())
        });
        Arc::new(Coalescer {
            flights: Mutex::new(HashMap::default()),
            failed,
            max_waiters,
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<u128, Arc<Flight>, KeyHashBuilder>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn join(self: &Arc<Self>, key: &CacheKey, leader: &Arc<request::Parts>) -> Join {
        let mut map = self.map();
        if let Some(f) = map.get(&key.hash) {
            if f.key.url == key.url {
                if f.readers() >= self.max_waiters {
                    return Join::Busy;
                }
                return Join::Follower(f.clone().register(false));
            }
            // A hash collision with a different URL: do not share; lead unshared.
            drop(map);
            let (w, r) = self.detached(key, leader, false);
            return Join::Leader(w, r);
        }
        let flight = Arc::new(Flight::new(key.clone(), leader.clone()));
        map.insert(key.hash, flight.clone());
        drop(map);
        let waiter = flight.register(true);
        Join::Leader(
            FlightWriter {
                flight,
                coalescer: self.clone(),
                finished: false,
                abortable: false,
            },
            waiter,
        )
    }

    /// A flight that is not in the map, for one request (hit-for-miss, a released follower,
    /// a hash collision): `abortable` when its fetch should end with its client.
    pub fn detached(
        self: &Arc<Self>,
        key: &CacheKey,
        leader: &Arc<request::Parts>,
        abortable: bool,
    ) -> (FlightWriter, Waiter) {
        let flight = Arc::new(Flight::new(key.clone(), leader.clone()));
        let waiter = flight.register(true);
        (
            FlightWriter {
                flight,
                coalescer: self.clone(),
                finished: false,
                abortable,
            },
            waiter,
        )
    }

    /// Claim the key for a background refresh: None when a fetch is already running.
    pub fn claim(
        self: &Arc<Self>,
        key: &CacheKey,
        leader: &Arc<request::Parts>,
    ) -> Option<FlightWriter> {
        let mut map = self.map();
        if map.contains_key(&key.hash) {
            return None;
        }
        let flight = Arc::new(Flight::new(key.clone(), leader.clone()));
        map.insert(key.hash, flight.clone());
        Some(FlightWriter {
            flight,
            coalescer: self.clone(),
            finished: false,
            abortable: false,
        })
    }

    fn leave(&self, flight: &Arc<Flight>) {
        let mut map = self.map();
        if let Some(f) = map.get(&flight.key.hash) {
            if Arc::ptr_eq(f, flight) {
                map.remove(&flight.key.hash);
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.map().len()
    }

    /// The last fetch for this key failed within `error_backoff`.
    pub fn recently_failed(&self, hash: u128) -> bool {
        self.failed.as_ref().is_some_and(|m| m.contains_key(&hash))
    }

    pub fn mark_failed(&self, hash: u128) {
        if let Some(m) = &self.failed {
            m.insert(hash, ());
        }
    }

    pub fn clear_failed(&self, hash: u128) {
        if let Some(m) = &self.failed {
            if m.contains_key(&hash) {
                m.invalidate(&hash);
            }
        }
    }
}

impl Flight {
    fn new(key: CacheKey, leader: Arc<request::Parts>) -> Self {
        Flight {
            key,
            started: Instant::now(),
            leader,
            state: Mutex::new(State {
                head: Head::Pending,
                chunks: VecDeque::new(),
                first: 0,
                buffered: 0,
                end: None,
                readers: Vec::new(),
                live_readers: 0,
                trimming: false,
                writer_waker: None,
                direct: None,
            }),
        }
    }
}
