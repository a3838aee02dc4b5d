//! The bytes of an upgraded connection, copied both ways between client and origin
//! until both ends have finished (each end's EOF is passed on as a half-close, and the
//! other end then has `LINGER` to finish too), either fails, nothing moves either way
//! for the idle bound, or shutdown's drain runs out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes read from one end before they are written to the other: per direction, so a
/// tunnel holds at most twice this, and a slow reader stops the reads from its peer.
const CHUNK: usize = 8 * 1024;

/// How long the other end may go on once one end has closed its side. A WebSocket
/// sends nothing after its close frame but the close reply, so this bounds only the
/// closing handshake; an end that never closes would otherwise hold the tunnel until
/// the idle bound.
const LINGER: Duration = Duration::from_secs(5);

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Both ends closed their sides.
    Closed,
    /// An end failed (reset, broken pipe).
    Failed,
    /// One end closed, and the other did not follow within `LINGER`.
    HalfClosed,
    Idle,
    Shutdown,
}

/// When a byte last moved, in milliseconds since the tunnel opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

pub(super) struct Relay {
    pub idle: Duration,
    pub closing: watch::Receiver<Option<Instant>>,
    pub client_to_origin: Counter,
    pub origin_to_client: Counter,
}

impl Relay {
    pub(super) async fn run(mut self, client: Upgraded, origin: Upgraded) -> End {
        let activity = Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        };
        let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(client));
        let (mut origin_read, mut origin_write) = tokio::io::split(TokioIo::new(origin));
        let up = pump(
            &mut client_read,
            &mut origin_write,
            &self.client_to_origin,
            &activity,
        );
        let down = pump(
            &mut origin_read,
            &mut client_write,
            &self.origin_to_client,
            &activity,
        );
        let idle = self.idle;
        let silent = async {
            loop {
                let due = activity.last() + idle;
                if Instant::now() >= due {
                    return;
                }
                tokio::time::sleep_until(due).await;
            }
        };
        let closing = &mut self.closing;
        let drained = async {
            let deadline = match closing.wait_for(Option::is_some).await {
                Ok(d) => *d,
                // The node is gone without a shutdown: nothing will ask.
                Err(_) => None,
            };
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let (mut up, mut down) = (std::pin::pin!(up), std::pin::pin!(down));
        let (mut silent, mut drained) = (std::pin::pin!(silent), std::pin::pin!(drained));
        let linger = tokio::time::sleep(Duration::MAX);
        let mut linger = std::pin::pin!(linger);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => {
                    if r.is_err() {
                        return End::Failed;
                    }
                    up_done = true;
                }
                r = &mut down, if !down_done => {
                    if r.is_err() {
                        return End::Failed;
                    }
                    down_done = true;
                }
                () = &mut linger, if up_done || down_done => return End::HalfClosed,
                () = &mut silent => return End::Idle,
                () = &mut drained => return End::Shutdown,
            }
            if up_done && down_done {
                return End::Closed;
            }
            linger.as_mut().reset(Instant::now() + LINGER);
        }
    }
}

/// Copy `from` to `to` until `from` ends, then end `to`'s side (half-close).
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    bytes: &Counter,
    activity: &Activity,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // The other end may already be gone; that ends nothing this side still sends.
            let _ = to.shutdown().await;
            return Ok(());
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        activity.touch();
        bytes.inc_by(n as u64);
    }
}
