//! The one body type lacquer hands to hyper, both toward clients and toward origins.
//!
//! An enum instead of `BoxBody` keeps the hit path free of a heap allocation and a
//! virtual call per frame: a hit is `Full(Bytes)`, a miss streams from a coalesced
//! fetch, a pass streams the peer's body straight through.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::coalesce::BodyReader;

/// Why a body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("peer sent no body bytes for {0:?}")]
    Timeout(Duration),
    #[error("body larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("upstream body failed: {0}")]
    Upstream(String),
    #[error("connection error: {0}")]
    Hyper(#[from] hyper::Error),
}

pin_project_lite::pin_project! {
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        Empty,
        Full { data: Option<Bytes> },
        Coalesced { #[pin] reader: BodyReader },
        /// Bytes `skip..skip + left` of a coalesced body: one client's range of a fill
        /// that fetches the whole object.
        Sliced { #[pin] reader: BodyReader, skip: u64, left: u64 },
        Stream { #[pin] inner: Guarded },
        // Boxed: it holds a body of this type, and an encoder's state.
        Compressed { inner: Box<crate::compress::stream::Compressing> },
    }
}

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody::Empty
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        if data.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::Full { data: Some(data) }
        }
    }

    /// A body compressed as it streams (`crate::compress`).
    pub fn compressed(inner: crate::compress::stream::Compressing) -> Self {
        ProxyBody::Compressed {
            inner: Box::new(inner),
        }
    }

    pub fn coalesced(reader: BodyReader) -> Self {
        ProxyBody::Coalesced { reader }
    }

    /// `len` bytes from `start` of a coalesced body. It ends there, and the reader goes
    /// with the body: a fill that is not being stored stops once no reader is left.
    pub fn sliced(reader: BodyReader, start: u64, len: u64) -> Self {
        ProxyBody::Sliced {
            reader,
            skip: start,
            left: len,
        }
    }

    /// A peer's body passed through with a limit on silence between frames and on total size.
    pub fn stream(inner: Incoming, idle: Duration, limit: Option<BodyLimit>) -> Self {
        ProxyBody::Stream {
            inner: Guarded::new(inner, idle, limit),
        }
    }

    /// A receiver told when the last byte of this body has been handed on, or `None`
    /// when the body is already complete. The origin client times the wait for a
    /// response head from then: an upload that keeps making progress is bounded by the
    /// idle timer between its chunks, not by the first-byte timeout. The sender is
    /// dropped unsent when the body fails.
    pub fn on_sent(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        match self {
            ProxyBody::Stream { inner } if !inner.inner.is_end_stream() => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                inner.sent = Some(tx);
                Some(rx)
            }
            _ => None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ProxyBodyProj::Empty => Poll::Ready(None),
            ProxyBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBodyProj::Coalesced { reader } => reader.poll_frame(cx),
            ProxyBodyProj::Sliced {
                mut reader,
                skip,
                left,
            } => loop {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                let Some(frame) = std::task::ready!(reader.as_mut().poll_frame(cx)) else {
                    // Short of the range: hyper sees fewer bytes than the Content-Length
                    // it sent and ends the connection, as for any cut body.
                    return Poll::Ready(None);
                };
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                let n = data.len() as u64;
                if *skip >= n {
                    *skip -= n;
                    continue;
                }
                let from = *skip as usize;
                *skip = 0;
                let take = (n - from as u64).min(*left);
                *left -= take;
                let to = from + take as usize;
                return Poll::Ready(Some(Ok(Frame::data(data.slice(from..to)))));
            },
            ProxyBodyProj::Stream { inner } => inner.poll_frame(cx),
            ProxyBodyProj::Compressed { inner } => Pin::new(&mut **inner).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full { data } => data.is_none(),
            ProxyBody::Coalesced { reader } => reader.is_end_stream(),
            ProxyBody::Sliced { left, .. } => *left == 0,
            ProxyBody::Stream { inner } => inner.inner.is_end_stream(),
            ProxyBody::Compressed { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Coalesced { reader } => reader.size_hint(),
            ProxyBody::Sliced { left, .. } => SizeHint::with_exact(*left),
            ProxyBody::Stream { inner } => inner.inner.size_hint(),
            ProxyBody::Compressed { .. } => SizeHint::default(),
        }
    }
}

/// A bodiless GET of `path` on `scheme://authority` for a health probe, or None when
/// the path is not a valid request target. Origin and peer probes share it.
pub fn probe_request(
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    path: &str,
    user_agent: &'static str,
) -> Option<http::Request<ProxyBody>> {
    let pq = http::uri::PathAndQuery::try_from(path).ok()?;
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build()
        .ok()?;
    let mut req = http::Request::new(ProxyBody::empty());
    *req.uri_mut() = uri;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(user_agent),
    );
    Some(req)
}

/// A size cap on a client's streamed body, and where its failure is recorded: when
/// the origin request fails because the client's body broke, the client gets 413, 400
/// or 408 for its own fault instead of a 502 that blames the origin.
#[derive(Clone, Debug)]
pub struct BodyLimit {
    pub max: u64,
    pub fault: Arc<ClientFault>,
}

/// How a client's request body failed, if it did.
#[derive(Debug, Default)]
pub struct ClientFault(AtomicU8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Past `limits.max_body`.
    TooLarge,
    /// Bad framing (a malformed chunk), or the client closed mid-body.
    Malformed,
    /// No body bytes for `limits.body_read_timeout`.
    Stalled,
}

impl ClientFault {
    fn set(&self, fault: Fault) {
        let v = match fault {
            Fault::TooLarge => 1,
            Fault::Malformed => 2,
            Fault::Stalled => 3,
        };
        // The first fault is the cause; what follows is its consequence.
        let _ = self
            .0
            .compare_exchange(0, v, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Fault> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Fault::TooLarge),
            2 => Some(Fault::Malformed),
            3 => Some(Fault::Stalled),
            _ => None,
        }
    }
}

pin_project_lite::pin_project! {
    /// `Incoming` with an idle timer and an optional size cap.
    pub struct Guarded {
        #[pin]
        inner: Incoming,
        // Boxed so the body stays Unpin, which hyper's client requires.
        sleep: Pin<Box<Sleep>>,
        idle: Duration,
        seen: u64,
        limit: Option<BodyLimit>,
        sent: Option<tokio::sync::oneshot::Sender<()>>,
    }
}

impl Guarded {
    fn new(inner: Incoming, idle: Duration, limit: Option<BodyLimit>) -> Self {
        Guarded {
            inner,
            sleep: Box::pin(tokio::time::sleep(idle)),
            idle,
            seen: 0,
            limit,
            sent: None,
        }
    }

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if let Some(limit) = this.limit.as_ref() {
                        if *this.seen > limit.max {
                            limit.fault.set(Fault::TooLarge);
                            return Poll::Ready(Some(Err(BodyError::TooLarge(limit.max))));
                        }
                    }
                }
                let deadline = Instant::now() + *this.idle;
                this.sleep.as_mut().reset(deadline);
                // hyper stops polling once `is_end_stream` says so, so the last frame
                // may be the last poll.
                if this.inner.is_end_stream() {
                    if let Some(tx) = this.sent.take() {
                        let _ = tx.send(());
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(limit) = this.limit.as_ref() {
                    limit.fault.set(Fault::Malformed);
                }
                Poll::Ready(Some(Err(BodyError::Hyper(e))))
            }
            Poll::Ready(None) => {
                if let Some(tx) = this.sent.take() {
                    let _ = tx.send(());
                }
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    if let Some(limit) = this.limit.as_ref() {
                        limit.fault.set(Fault::Stalled);
                    }
                    Poll::Ready(Some(Err(BodyError::Timeout(*this.idle))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
