//! A body compressed as it streams: each data frame is encoded and flushed at once
//! (a sync flush), so the client can decode everything that has arrived without
//! waiting for more of the origin's body.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

use super::{Encoding, Permit};
use crate::body::{BodyError, ProxyBody};

/// Brotli's window on the fly: 256 KiB, so that each stream's encoder stays small.
const STREAM_LGWIN: u32 = 18;
const BROTLI_BUFFER: usize = 4096;

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(encoding: Encoding, level: u32) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Encoding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level,
                STREAM_LGWIN,
            ))),
        }
    }

    /// Encode `data`; the output stays in the encoder until `flushed` or `finish`.
    fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Br(e) => e.write_all(data),
        }
    }

    /// Flush: what comes out decodes to all input so far.
    fn flushed(&mut self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.flush()?;
                e.get_mut()
            }
            Encoder::Br(e) => {
                e.flush()?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The end of the stream (and gzip's trailer).
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Br(e) => e.into_inner(),
        };
        Ok(Bytes::from(out))
    }
}

/// A response body compressed on the way out.
pub struct Compressing {
    inner: Pin<Box<ProxyBody>>,
    /// None once the stream has been finished.
    encoder: Option<Encoder>,
    /// The inner body's trailers, sent after the last compressed bytes.
    trailers: Option<HeaderMap>,
    _permit: Permit,
}

impl Compressing {
    pub fn new(inner: ProxyBody, encoding: Encoding, level: u32, permit: Permit) -> Self {
        Compressing {
            inner: Box::pin(inner),
            encoder: Some(Encoder::new(encoding, level)),
            trailers: None,
            _permit: permit,
        }
    }

    fn failed(e: std::io::Error) -> BodyError {
        BodyError::Upstream(format!("compression failed: {e}"))
    }

    /// Finish the encoder: its last bytes, or None when it has none to give.
    fn finish(&mut self) -> Result<Option<Bytes>, BodyError> {
        match self.encoder.take() {
            Some(enc) => {
                let last = enc.finish().map_err(Self::failed)?;
                Ok((!last.is_empty()).then_some(last))
            }
            None => Ok(None),
        }
    }
}

impl Body for Compressing {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if this.encoder.is_none() {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(f) => f,
            };
            let data = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        match this.finish() {
                            Ok(Some(last)) => return Poll::Ready(Some(Ok(Frame::data(last)))),
                            Ok(None) => continue,
                            Err(e) => return Poll::Ready(Some(Err(e))),
                        }
                    }
                },
                Some(Err(e)) => {
                    // A cut body stays cut: no trailer that would make it look whole.
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => match this.finish() {
                    Ok(Some(last)) => return Poll::Ready(Some(Ok(Frame::data(last)))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
            };
            // The last data frame: finish rather than flush, which would add a
            // flush marker right before the end.
            let last = this.inner.is_end_stream();
            let Some(enc) = this.encoder.as_mut() else {
                continue;
            };
            let out = match enc.feed(&data) {
                Ok(()) if last => this.finish().map(Option::unwrap_or_default),
                Ok(()) => enc.flushed().map_err(Self::failed),
                Err(e) => Err(Self::failed(e)),
            };
            match out {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(e) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }
}
