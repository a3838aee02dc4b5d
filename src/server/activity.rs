//! What moves on one client connection, for its timeouts: the idle timer (nothing moved
//! either way for `idle_timeout`) and the request-head timer (a head that has begun must
//! be complete within `header_read_timeout`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Last time bytes moved on a connection, in ms since `base`, how many requests on it
/// are waiting for their response head, and the state of the request-head timer.
pub(super) struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicU64,
    /// Requests seen on this connection (the first head is timed from its arming).
    requests: AtomicU64,
    /// Any byte has arrived from the client.
    spoke: AtomicBool,
    /// Woken when a request stops waiting for its response head.
    settled: Notify,
    /// Fast check on the read path: is a head timer waiting for its first byte?
    head_armed: AtomicBool,
    head: Mutex<HeadWait>,
}

#[derive(Default)]
struct HeadWait {
    /// Which arming this state belongs to (a replaced timer must not disarm its successor).
    generation: u64,
    armed: bool,
    /// When the first byte of the head arrived.
    started: Option<Instant>,
}

/// Marks a request as waiting for its response (a slow origin is not an idle client).
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
        self.0.settled.notify_waiters();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            spoke: AtomicBool::new(false),
            settled: Notify::new(),
            head_armed: AtomicBool::new(false),
            head: Mutex::new(HeadWait::default()),
        })
    }

    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Keep the connection from counting as idle while the guard lives, without counting
    /// a request: an HTTP/2 stream carrying a tunnel, which has its own idle bound.
    pub(super) fn hold(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Bytes arrived from the client. No wake-up for the head timer: hyper reads inside
    /// its head parsing and polls the timer right after any read that left the head
    /// incomplete (`Conn::poll_read_head`), so the timer sees the start in the same poll.
    /// Waking the connection's own task here cost a second poll of the whole connection
    /// per request (+3k instructions per hit, callgrind).
    fn read_some(&self) {
        self.touch();
        self.spoke.store(true, Ordering::Relaxed);
        if self.head_armed.load(Ordering::Relaxed) {
            let mut head = lock(&self.head);
            if head.armed && head.started.is_none() {
                head.started = Some(Instant::now());
            }
        }
    }

    /// Resolves if the client has sent nothing `within` of the connection's start: a
    /// silent new connection is not an idle keep-alive client.
    pub(super) async fn silent_for(&self, within: Duration) {
        tokio::time::sleep_until(self.base + within).await;
        if self.spoke.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once no byte has moved either way for `idle` while no request waits on
    /// the origin: bounds idle keep-alive connections and clients that stop reading.
    pub(super) async fn idle_for(&self, idle: Duration) {
        loop {
            let settled = self.settled.notified();
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() < deadline {
                tokio::time::sleep_until(deadline).await;
            } else if self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            } else {
                // Waiting on an origin (bounded by its own timeouts): the idle time counts
                // again from when the response head goes out.
                settled.await;
            }
        }
    }

    /// The arming of the request-head timer in force, if hyper is waiting for a head.
    pub(super) fn armed_head(&self) -> Option<u64> {
        if !self.head_armed.load(Ordering::Relaxed) {
            return None;
        }
        let head = lock(&self.head);
        head.armed.then_some(head.generation)
    }

    fn arm_head(&self) -> u64 {
        let first = self.requests.load(Ordering::Relaxed) == 0;
        let mut head = lock(&self.head);
        head.generation += 1;
        head.armed = true;
        // The first head is timed from the start (a new connection that sends nothing
        // is a slowloris, not an idle keep-alive client); later ones from their first byte.
        head.started = first.then(Instant::now);
        self.head_armed.store(true, Ordering::Relaxed);
        head.generation
    }

    fn disarm_head(&self, generation: u64) {
        let mut head = lock(&self.head);
        if head.generation == generation {
            head.armed = false;
            self.head_armed.store(false, Ordering::Relaxed);
        }
    }

    /// When the armed head began, if it has.
    fn head_started(&self, generation: u64) -> Option<Instant> {
        let head = lock(&self.head);
        if head.generation != generation {
            return None;
        }
        head.started
    }
}

/// hyper's HTTP/1 timer for one connection. hyper uses it only for its
/// `header_read_timeout`, whose clock it starts as soon as it waits for the next request
/// head: an idle keep-alive connection would be closed at `header_read_timeout` instead of
/// `idle_timeout`. This timer starts that clock at the head's first byte instead (for the
/// first request on a connection, at once), so idle time is governed by the idle timer
/// and a begun head still has to finish in time.
#[derive(Clone)]
pub(super) struct HeadTimer(pub(super) Arc<Activity>);

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        let generation = self.0.arm_head();
        Box::pin(HeadDeadline {
            activity: self.0.clone(),
            generation,
            timeout,
            sleep: None,
        })
    }
}

struct TokioSleep(Pin<Box<tokio::time::Sleep>>);

impl std::future::Future for TokioSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

/// Fires `timeout` after the armed head's first byte.
struct HeadDeadline {
    activity: Arc<Activity>,
    generation: u64,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::future::Future for HeadDeadline {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.is_none() {
            match self.activity.head_started(self.generation) {
                Some(start) => {
                    let deadline = start + self.timeout;
                    self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                None => return Poll::Pending,
            }
        }
        match self.sleep.as_mut() {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl hyper::rt::Sleep for HeadDeadline {}

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        self.activity.disarm_head(self.generation);
    }
}

pin_project_lite::pin_project! {
    /// A socket that records activity for the connection's timers, with any bytes already
    /// read from it (after a PROXY header) put back in front. Hand-written: hyper-util's
    /// equivalent (`Rewind`) is not public.
    pub(super) struct IdleIo {
        prefix: Bytes,
        #[pin]
        inner: TcpStream,
        activity: Arc<Activity>,
    }
}

impl IdleIo {
    pub(super) fn new(inner: TcpStream, prefix: Bytes, activity: Arc<Activity>) -> Self {
        IdleIo {
            prefix,
            inner,
            activity,
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            if buf.filled().len() > before {
                this.activity.read_some();
            }
        }
        r
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = r {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = r {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
