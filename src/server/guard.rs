//! A read-side watch over a client connection's plaintext (above TLS, below hyper) for
//! two things hyper does not expose:
//!
//! - HTTP/2 control-frame floods. hyper and h2 answer every PING and SETTINGS frame and
//!   count none of them; the guard parses the 9-byte frame headers after the client
//!   preface, counts PING, SETTINGS (non-ACK) and PRIORITY frames per second, and past
//!   `h2_max_control_frames_per_sec` stops reading (the frames beyond the bound never reach
//!   hyper) and raises a signal on which the connection is shut down gracefully (GOAWAY).
//! - HTTP/1 request lines longer than the read buffer. hyper answers 431 when the head
//!   outgrows its buffer, even when the request line alone did; the guard measures the
//!   first line of each request head and answers 414 itself.
//!
//! Hand-written because no crate offers a frame-counting hook on hyper's server, and a
//! full HTTP/2 or HTTP/1 parser here would duplicate hyper's; only frame and line
//! boundaries are tracked, in O(1) state.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use super::activity::Activity;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// Written when a request line is longer than the URI bound, before closing.
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain\r\ncontent-length: 13\r\nconnection: close\r\n\r\nURI too long\n";

/// Raised once when an HTTP/2 client exceeds the control-frame bound.
#[derive(Default)]
pub(super) struct Flood {
    raised: AtomicBool,
    notify: Notify,
}

impl Flood {
    fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }

    /// Resolves once the bound was exceeded.
    pub(super) async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            if self.raised.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct GuardLimits {
    /// Longest HTTP/1 request line (method, target, version).
    pub(super) max_request_line: usize,
    pub(super) control_frames_per_sec: u32,
}

enum Mode {
    /// Matching the first bytes against the HTTP/2 preface.
    Detect {
        matched: usize,
    },
    H1(LineWatch),
    H2(FrameWatch),
    /// Writing the 414, then end of input.
    Refusing {
        written: usize,
    },
    /// Past a bound: nothing more is read from the client.
    Stopped,
}

/// The first line of the current HTTP/1 request head.
struct LineWatch {
    /// The head-timer arming this line belongs to (0: the connection's first head,
    /// before hyper armed anything).
    generation: u64,
    len: usize,
    done: bool,
}

impl LineWatch {
    /// Account for bytes read; false when the first line outgrew `max`.
    fn feed(&mut self, armed: Option<u64>, bytes: &[u8], max: usize) -> bool {
        match armed {
            // A new head begins: bytes read before the next arming (bodies) are not a
            // request line. With pipelining, the line may already sit in hyper's buffer
            // and this sees a later line: under-counting only.
            Some(g) if g != self.generation && self.generation != 0 => {
                *self = LineWatch {
                    generation: g,
                    len: 0,
                    done: false,
                };
            }
            Some(g) => self.generation = g,
            None if self.generation != 0 => return true,
            None => {}
        }
        if self.done {
            return true;
        }
        match memchr_newline(bytes) {
            Some(i) => {
                self.len += i;
                self.done = true;
            }
            None => self.len += bytes.len(),
        }
        self.len <= max
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// HTTP/2 frame boundaries and the control-frame rate.
struct FrameWatch {
    header: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    window_start: Instant,
    in_window: u32,
}

impl FrameWatch {
    fn new() -> Self {
        FrameWatch {
            header: [0; FRAME_HEADER],
            have: 0,
            skip: 0,
            window_start: Instant::now(),
            in_window: 0,
        }
    }

    /// Account for bytes read. Returns how many of them may be handed on: all, or up to
    /// the start of the first control frame past the bound.
    fn feed(&mut self, bytes: &[u8], max_per_sec: u32) -> Result<(), usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() - i);
                self.skip -= n;
                i += n;
                continue;
            }
            let frame_start = if self.have == 0 { i } else { 0 };
            let n = (FRAME_HEADER - self.have).min(bytes.len() - i);
            self.header[self.have..self.have + n].copy_from_slice(&bytes[i..i + n]);
            self.have += n;
            i += n;
            if self.have < FRAME_HEADER {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.skip = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let control = match kind {
                PING | SETTINGS => flags & ACK == 0,
                PRIORITY => true,
                _ => false,
            };
            if control && !self.count(max_per_sec) {
                return Err(frame_start);
            }
        }
        Ok(())
    }

    /// Count one control frame in the current one-second window; false past the bound.
    fn count(&mut self, max_per_sec: u32) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window += 1;
        self.in_window <= max_per_sec
    }
}

pin_project_lite::pin_project! {
    pub(super) struct Guard<T> {
        #[pin]
        inner: T,
        mode: Mode,
        limits: GuardLimits,
        activity: Arc<Activity>,
        flood: Arc<Flood>,
    }
}

impl<T> Guard<T> {
    pub(super) fn new(
        inner: T,
        limits: GuardLimits,
        activity: Arc<Activity>,
        flood: Arc<Flood>,
    ) -> Self {
        Guard {
            inner,
            mode: Mode::Detect { matched: 0 },
            limits,
            activity,
            flood,
        }
    }
}

/// What to do with bytes just read.
enum Verdict {
    Pass,
    /// Hand on only the first n bytes, then read no more.
    Cut(usize),
    /// Drop them and answer 414.
    UriTooLong,
}

fn inspect(mode: &mut Mode, bytes: &[u8], limits: GuardLimits, activity: &Activity) -> Verdict {
    let mut rest = bytes;
    let mut offset = 0;
    if let Mode::Detect { matched } = mode {
        let n = (PREFACE.len() - *matched).min(rest.len());
        if rest[..n] == PREFACE[*matched..*matched + n] {
            *matched += n;
            if *matched < PREFACE.len() {
                return Verdict::Pass;
            }
            *mode = Mode::H2(FrameWatch::new());
            rest = &rest[n..];
            offset = n;
        } else {
            *mode = Mode::H1(LineWatch {
                generation: 0,
                len: *matched,
                done: false,
            });
        }
    }
    match mode {
        Mode::H1(line) => {
            if line.feed(activity.armed_head(), rest, limits.max_request_line) {
                Verdict::Pass
            } else {
                Verdict::UriTooLong
            }
        }
        Mode::H2(frames) => match frames.feed(rest, limits.control_frames_per_sec) {
            Ok(()) => Verdict::Pass,
            Err(at) => Verdict::Cut(offset + at),
        },
        _ => Verdict::Pass,
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for Guard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.mode {
                // No waker is kept: the connection is being shut down by the flood signal.
                Mode::Stopped => return Poll::Pending,
                Mode::Refusing { written } => {
                    while *written < URI_TOO_LONG.len() {
                        match this
                            .inner
                            .as_mut()
                            .poll_write(cx, &URI_TOO_LONG[*written..])
                        {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                *written = URI_TOO_LONG.len();
                            }
                            Poll::Ready(Ok(n)) => *written += n,
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    let _ = std::task::ready!(this.inner.as_mut().poll_flush(cx));
                    // End of input: hyper closes without an answer of its own.
                    return Poll::Ready(Ok(()));
                }
                _ => {}
            }
            let before = buf.filled().len();
            std::task::ready!(this.inner.as_mut().poll_read(cx, buf))?;
            let verdict = inspect(
                this.mode,
                &buf.filled()[before..],
                *this.limits,
                this.activity,
            );
            match verdict {
                Verdict::Pass => return Poll::Ready(Ok(())),
                Verdict::Cut(n) => {
                    buf.set_filled(before + n);
                    *this.mode = Mode::Stopped;
                    this.flood.raise();
                    if n > 0 {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
                Verdict::UriTooLong => {
                    buf.set_filled(before);
                    *this.mode = Mode::Refusing { written: 0 };
                }
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for Guard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            0,
        ];
        f.extend(std::iter::repeat(0).take(len));
        f
    }

    #[test]
    fn counts_control_frames_across_split_reads() {
        let mut w = FrameWatch::new();
        let mut stream = Vec::new();
        stream.extend(frame(0x0, 0, 20_000)); // DATA, not counted
        for _ in 0..3 {
            stream.extend(frame(PING, 0, 8));
            stream.extend(frame(PING, ACK, 8)); // ACKs are not counted
        }
        let ping4 = stream.len();
        stream.extend(frame(PING, 0, 8));
        // Fed one byte at a time, the fourth PING is refused at its last header byte (the
        // bytes before it were handed on already); fed at once, where it starts.
        let mut refused_at = None;
        for (i, b) in stream.iter().enumerate() {
            if let Err(at) = w.feed(std::slice::from_ref(b), 3) {
                refused_at = Some(i + at);
                break;
            }
        }
        assert_eq!(refused_at, Some(ping4 + FRAME_HEADER - 1));
        let mut w = FrameWatch::new();
        assert_eq!(w.feed(&stream, 3), Err(ping4));
    }

    #[test]
    fn request_line_measured_until_newline() {
        let mut l = LineWatch {
            generation: 0,
            len: 0,
            done: false,
        };
        assert!(l.feed(None, b"GET /aaaa", 10));
        assert!(!l.feed(None, b"aaaaaaaa", 10));
        let mut l = LineWatch {
            generation: 0,
            len: 0,
            done: false,
        };
        assert!(l.feed(None, b"GET / HTTP/1.1\r\nx-long: aaaaaaaaaaaaaaaaaaa", 20));
        // Body bytes between heads are not measured; the next armed head is.
        assert!(l.feed(Some(1), b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 20));
        assert!(!l.feed(Some(2), b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaa", 20));
    }
}
