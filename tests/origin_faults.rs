//! Origins that misbehave on the connection itself: extra responses on a keep-alive
//! connection, slow request bodies, and origins that keep failing. Real loopback sockets.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the smuggling origin sends after the first response on a connection.
#[derive(Clone, Copy)]
struct Extra {
    /// Send the extra response at all (otherwise a well-behaved keep-alive origin).
    forge: bool,
    /// Delay before the extra response (zero: in the same write as the real one).
    delay: Duration,
}

/// An origin that answers the first request on each connection correctly, then sends an
/// unrequested, cacheable response (`forged`) on the same connection; later requests get
/// `real <path>`. Counts connections, so a test can tell whether one was reused.
struct SmugglingOrigin {
    addr: SocketAddr,
    conns: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmugglingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FORGED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nCache-Control: max-age=600\r\n\r\nforged";

impl SmugglingOrigin {
    async fn start(extra: Extra) -> SmugglingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(0));
        let c2 = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                *c2.lock().unwrap() += 1;
                tokio::spawn(smuggling_conn(s, extra));
            }
        });
        SmugglingOrigin { addr, conns, task }
    }

    fn connections(&self) -> usize {
        *self.conns.lock().unwrap()
    }
}

async fn smuggling_conn(mut s: TcpStream, extra: Extra) {
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        let Some(head) = read_head(&mut s, &mut buf).await else {
            return;
        };
        let path = head.split(' ').nth(1).unwrap_or("?").to_owned();
        if first && extra.forge {
            first = false;
            let body = format!("first {path}");
            let mut reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n{body}",
                body.len()
            )
            .into_bytes();
            if extra.delay.is_zero() {
                reply.extend_from_slice(FORGED);
                if s.write_all(&reply).await.is_err() {
                    return;
                }
            } else {
                if s.write_all(&reply).await.is_err() {
                    return;
                }
                tokio::time::sleep(extra.delay).await;
                if s.write_all(FORGED).await.is_err() {
                    return;
                }
            }
        } else {
            let body = format!("real {path}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=600\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// What `rounds` rounds of the smuggling origin did to the cache.
#[derive(Debug, Default)]
struct Poisoning {
    /// Clean requests answered with the forged response while it was in flight: the
    /// request that was outstanding when it arrived (HTTP/1.1 cannot tell).
    in_flight: usize,
    /// Clean clients served the forged response later, from the cache.
    served_later: usize,
    origin_connections: usize,
}

/// Runs `rounds` rounds of: a request whose connection then receives a forged response,
/// a pause of `gap`, a clean request for another URL and at once its repeat, then after a
/// pause a third request for it from another client (a cache hit if anything was stored).
async fn poisoned_rounds(extra: Extra, gap: Duration, rounds: usize) -> Poisoning {
    let origin = SmugglingOrigin::start(extra).await;
    let mut cfg = config(&[origin.addr]);
    cfg.admin.enabled = false;
    cfg.upstream.first_byte_timeout = Duration::from_secs(2);
    let node = start(cfg).await;
    let later_client = client();
    let mut p = Poisoning::default();
    for i in 0..rounds {
        let first = node.get(&format!("/trigger{i}")).await;
        assert_eq!(first.status, 200, "{first:?}");
        tokio::time::sleep(gap).await;
        let path = format!("/clean{i}");
        let clean = node.get(&path).await;
        let again = node.get(&path).await;
        if clean.text() == "forged" || again.text() == "forged" {
            p.in_flight += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later = send(
            &later_client,
            node.addr,
            http::Method::GET,
            &path,
            &[],
            bytes::Bytes::new(),
        )
        .await;
        if later.text() == "forged" {
            p.served_later += 1;
        }
    }
    p.origin_connections = origin.connections();
    node.stop().await;
    p
}

/// An extra response written a little after the real one is taken as the answer to the
/// request that goes out on that connection before it arrives (no HTTP/1.1 client can
/// tell), but when the connection then shows bytes no request asked for, what was stored
/// from it is dropped: no later client gets the forged response.
#[tokio::test]
async fn late_extra_response_is_not_served_from_cache() {
    within(30, async {
        let p = poisoned_rounds(
            Extra {
                forge: true,
                delay: Duration::from_millis(20),
            },
            Duration::from_millis(100),
            20,
        )
        .await;
        assert_eq!(p.served_later, 0, "{p:?}");
    })
    .await;
}

/// The same with the extra response in the same write as the real one: never used.
#[tokio::test]
async fn extra_response_in_same_write_is_not_served() {
    within(30, async {
        let p = poisoned_rounds(
            Extra {
                forge: true,
                delay: Duration::ZERO,
            },
            Duration::from_millis(20),
            20,
        )
        .await;
        assert_eq!((p.in_flight, p.served_later), (0, 0), "{p:?}");
    })
    .await;
}

/// A well-behaved keep-alive origin counting its connections, and a node in front of it
/// with the given pool settings.
async fn pooled(max_idle: usize, idle_timeout: Duration) -> (SmugglingOrigin, Node) {
    let origin = SmugglingOrigin::start(Extra {
        forge: false,
        delay: Duration::ZERO,
    })
    .await;
    let mut cfg = config(&[origin.addr]);
    cfg.admin.enabled = false;
    cfg.upstream.pool_max_idle_per_origin = max_idle;
    cfg.upstream.pool_idle_timeout = idle_timeout;
    let node = start(cfg).await;
    (origin, node)
}

/// Sequential misses share one origin connection.
#[tokio::test]
async fn pool_reuses_one_connection() {
    within(20, async {
        let (origin, node) = pooled(8, Duration::from_secs(60)).await;
        for i in 0..10 {
            let g = node.get(&format!("/reuse{i}")).await;
            assert_eq!(g.text(), format!("real /reuse{i}"));
        }
        assert_eq!(origin.connections(), 1);
    })
    .await;
}

/// `pool_max_idle_per_origin = 0` turns reuse off; an idle connection older than
/// `pool_idle_timeout` is not reused.
#[tokio::test]
async fn pool_max_idle_and_idle_timeout() {
    within(20, async {
        let (origin, node) = pooled(0, Duration::from_secs(60)).await;
        for i in 0..3 {
            node.get(&format!("/noreuse{i}")).await;
        }
        assert_eq!(origin.connections(), 3);

        let (origin, node) = pooled(8, Duration::from_millis(200)).await;
        node.get("/t1").await;
        node.get("/t2").await;
        assert_eq!(origin.connections(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.get("/t3").await;
        assert_eq!(origin.connections(), 2);
    })
    .await;
}

/// An origin that closes each connection after its response, without saying so: the
/// pool must notice and not send the next request into a closed connection.
#[tokio::test]
async fn origin_closing_idle_connections_costs_no_request() {
    within(20, async {
        let origin = RawOrigin::start(|_, _| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok"
                    .to_vec(),
                AfterReply::Close,
            )
        })
        .await;
        let mut cfg = config(&[origin.addr]);
        cfg.admin.enabled = false;
        let node = start(cfg).await;
        for i in 0..20 {
            let g = node.get(&format!("/closing{i}")).await;
            assert_eq!((g.status, g.text().as_str()), (200, "ok"), "request {i}");
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(origin.total(), 20);
    })
    .await;
}

/// Writes a POST head for `len` body bytes, then the body in `chunks` pieces `every` apart;
/// then reads the answer. Returns (status, body).
async fn slow_upload(
    node: SocketAddr,
    len: usize,
    chunks: usize,
    every: Duration,
) -> (u16, String) {
    let mut s = TcpStream::connect(node).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b'u'; len / chunks];
    for _ in 0..chunks {
        tokio::time::sleep(every).await;
        if s.write_all(&piece).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A node whose first-byte timeout (1 s) is much shorter than an upload that keeps making
/// progress; the silence allowed between client body chunks is 1 s.
async fn upload_node(origin: SocketAddr) -> Node {
    let mut cfg = config(&[origin]);
    cfg.admin.enabled = false;
    cfg.upstream.first_byte_timeout = Duration::from_secs(1);
    cfg.limits.body_read_timeout = Duration::from_secs(1);
    start(cfg).await
}

/// A slow upload that keeps making progress gets the origin's answer: the first-byte
/// timer starts once the body has been sent.
#[tokio::test]
async fn slow_upload_gets_the_origin_answer() {
    within(20, async {
        let origin = Origin::start(|s, _| Reply::ok(format!("got {} bytes", s.body.len()))).await;
        let node = upload_node(origin.addr).await;
        // 2,000 bytes in 20 chunks 150 ms apart: 3 s, three first-byte timeouts.
        let started = std::time::Instant::now();
        let (status, body) = slow_upload(node.addr, 2000, 20, Duration::from_millis(150)).await;
        let took = started.elapsed();
        assert_eq!(
            (status, body.as_str()),
            (200, "got 2000 bytes"),
            "after {took:?}"
        );
        assert_eq!(origin.total(), 1);
    })
    .await;
}

/// An upload that stops sending ends at `body_read_timeout` with 408, not as an origin
/// failure.
#[tokio::test]
async fn stalled_upload_ends_with_408() {
    within(20, async {
        let origin = Origin::start(|s, _| Reply::ok(format!("got {} bytes", s.body.len()))).await;
        let mut cfg = config(&[origin.addr]);
        cfg.admin.enabled = false;
        cfg.upstream.first_byte_timeout = Duration::from_secs(5);
        cfg.limits.body_read_timeout = Duration::from_secs(1);
        let node = start(cfg).await;
        let mut s = TcpStream::connect(node.addr).await.unwrap();
        s.write_all(
            b"POST /stall HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut out)).await;
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 408 "),
            "after {took:?}: {text:?}"
        );
        assert!(took < Duration::from_secs(4), "took {took:?}");
    })
    .await;
}
