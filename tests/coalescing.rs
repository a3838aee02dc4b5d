//! Request coalescing over real sockets: herds, uncacheable herds, streaming to waiters.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;

/// 500 concurrent clients for one cold URL on a slow origin: exactly one origin request,
/// every client gets the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_of_500_makes_one_origin_request() {
    within(60, async {
        let body = Bytes::from(vec![b'x'; 64 * 1024]);
        let b2 = body.clone();
        let origin =
            Origin::start(move |_, _| Reply::ok(b2.clone()).cc("max-age=60").delay_ms(500)).await;
        let node = start(config(&[origin.addr])).await;
        let mut tasks = Vec::new();
        for _ in 0..500 {
            let (client, addr) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                send(&client, addr, http::Method::GET, "/herd", &[], Bytes::new()).await
            }));
        }
        let mut collapsed = 0;
        for t in tasks {
            let got = t.await.unwrap();
            assert_eq!(got.status, 200);
            assert_eq!(got.body, body, "every client gets the full body");
            if got.cache_status().contains("collapsed") {
                collapsed += 1;
            }
        }
        assert_eq!(origin.count("/herd"), 1);
        assert!(collapsed > 0, "requests were collapsed");
        // And the object is now a hit.
        let got = node.get("/herd").await;
        assert!(got.is_hit(), "{}", got.cache_status());
        assert_eq!(origin.count("/herd"), 1);
    })
    .await;
}

/// The same herd on a no-store URL is not serialized: all finish within about one
/// origin latency, and every request reaches the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_herd_is_not_serialized() {
    within(60, async {
        let origin =
            Origin::start(|_, _| Reply::ok("private stuff").cc("no-store").delay_ms(500)).await;
        let node = start(config(&[origin.addr])).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (client, addr) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                send(
                    &client,
                    addr,
                    http::Method::GET,
                    "/nostore",
                    &[],
                    Bytes::new(),
                )
                .await
            }));
        }
        for t in tasks {
            let got = t.await.unwrap();
            assert_eq!(got.status, 200);
            assert_eq!(got.text(), "private stuff");
        }
        let took = started.elapsed();
        assert_eq!(origin.count("/nostore"), 200);
        // Serialized, 200 × 500 ms would be 100 s; released waiters take about two latencies.
        assert!(took < Duration::from_secs(5), "took {took:?}");
    })
    .await;
}

/// Followers receive body bytes while the origin is still sending (streaming, not
/// after the last byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_stream_before_the_body_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(30, async {
        // A raw origin that sends the head and first chunk, then waits 2 s before the rest.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let oaddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                        .await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let _ = s.write_all(b"4\r\nlast\r\n0\r\n\r\n").await;
                });
            }
        });
        let node = start(config(&[oaddr])).await;
        let mut readers = Vec::new();
        for _ in 0..5 {
            let addr = node.addr;
            readers.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
                let started = Instant::now();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&got).contains("first") {
                        return started.elapsed();
                    }
                    assert!(n > 0, "closed early");
                }
            }));
        }
        for r in readers {
            let first_byte = r.await.unwrap();
            assert!(first_byte < Duration::from_millis(1500), "first chunk arrived after {first_byte:?}");
        }
    })
    .await;
}

/// A response too big to store is still streamed whole to the leader and followers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_object_streams_but_is_not_stored() {
    within(30, async {
        let big = Bytes::from(vec![b'z'; 3 * 1024 * 1024]);
        let b2 = big.clone();
        let origin =
            Origin::start(move |_, _| Reply::ok(b2.clone()).cc("max-age=60").delay_ms(200)).await;
        let mut cfg = config(&[origin.addr]);
        cfg.cache.max_object_size = 1024 * 1024;
        let node = start(cfg).await;
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (client, addr) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                send(&client, addr, http::Method::GET, "/big", &[], Bytes::new()).await
            }));
        }
        for t in tasks {
            let got = t.await.unwrap();
            assert_eq!(got.status, 200);
            assert_eq!(got.body.len(), big.len());
        }
        let again = node.get("/big").await;
        assert_eq!(again.body.len(), big.len());
        assert!(!again.is_hit());
    })
    .await;
}

/// A leader whose client hangs up does not abort the fetch: the object is still stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_hanging_up_does_not_abort_the_fill() {
    use tokio::io::AsyncWriteExt;
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("kept").cc("max-age=60").delay_ms(500)).await;
        let node = start(config(&[origin.addr])).await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        let req = format!("GET /leader HTTP/1.1\r\nhost: {}\r\n\r\n", node.addr);
        s.write_all(req.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
        tokio::time::sleep(Duration::from_millis(900)).await;
        let got = node.get("/leader").await;
        assert_eq!(got.text(), "kept");
        assert!(got.is_hit(), "{}", got.cache_status());
        assert_eq!(origin.count("/leader"), 1);
    })
    .await;
}

/// Finding 1: an origin that accepts and never answers. Followers used to give up at
/// `coalesce_timeout` (here shorter than the fetch's first-byte timeout, as 15 s vs 30 s
/// in the shipped defaults) and each fetch alone. Now they stay with the leader, whose
/// fetch is bounded by its own timeout, and share its failure: one origin request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_origin_herd_shares_the_leaders_timeout() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("x").cc("max-age=60")).await;
        origin.hang();
        let mut cfg = config(&[origin.addr]);
        cfg.upstream.first_byte_timeout = Duration::from_secs(2);
        cfg.cache.coalesce_timeout = Duration::from_secs(1);
        let node = start(cfg).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (client, addr) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                let got = send(&client, addr, http::Method::GET, "/hung", &[], Bytes::new()).await;
                (got.status, started.elapsed())
            }));
        }
        let mut statuses = Vec::new();
        let mut slowest = Duration::ZERO;
        for t in tasks {
            let (status, took) = t.await.unwrap();
            statuses.push(status);
            slowest = slowest.max(took);
        }
        let requests = origin.count("/hung");
        eprintln!(
            "100 clients on a hung origin: {requests} origin requests, statuses {:?}, slowest {slowest:?}",
            tally(statuses.iter().copied())
        );
        assert_eq!(requests, 1, "one origin request for the whole herd");
        assert!(statuses.iter().all(|s| *s == 504), "{:?}", tally(statuses));
        assert!(slowest < Duration::from_millis(2900), "slowest answer at {slowest:?}");
    })
    .await;
}

/// Finding 8: without a stale copy, a herd on an origin answering 503 shares the one
/// error response (not stored), and the 5xx leaves no hit-for-miss marker: the next wave
/// is coalesced too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_on_503_shares_the_error_and_the_next_wave_is_coalesced() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("origin down").status(503).delay_ms(300)).await;
        let node = start(config(&[origin.addr])).await;
        for wave in 1..=2 {
            let mut tasks = Vec::new();
            for _ in 0..100 {
                let (client, addr) = (client(), node.addr);
                tasks.push(tokio::spawn(async move {
                    send(&client, addr, http::Method::GET, "/down", &[], Bytes::new()).await
                }));
            }
            for t in tasks {
                let got = t.await.unwrap();
                assert_eq!(got.status, 503);
                assert_eq!(got.text(), "origin down");
                assert!(
                    !got.cache_status().contains("stored"),
                    "{}",
                    got.cache_status()
                );
            }
            eprintln!(
                "after wave {wave} of 100 clients on a 503: {} origin requests",
                origin.count("/down")
            );
            assert_eq!(origin.count("/down"), wave, "one origin request per wave");
        }
    })
    .await;
}

/// Finding 13b: a truncated origin response (Content-Length larger than what is sent
/// before the origin closes) must not be reported as `stored`; a small complete fill is.
/// A small body (<= 64 KiB) is read whole before the head goes out, so a cut one is a 502;
/// a large one streams, and its head says nothing about storing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_says_stored_only_when_it_is_true() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let oaddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if head.contains("/trunc") {
                        // Part of the promised body, a pause (the client sees the head), then close.
                        let promised = if head.contains("/trunc-big") { 200_000 } else { 2000 };
                        let _ = s
                            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\nCache-Control: max-age=60\r\n\r\n").as_bytes())
                            .await;
                        let _ = s.write_all(&[b'a'; 1000]).await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    } else {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nwhole")
                            .await;
                    }
                });
            }
        });
        let node = start(config(&[oaddr])).await;
        for (path, status) in [("/trunc-big", "HTTP/1.1 200"), ("/trunc-small", "HTTP/1.1 502")] {
            let req = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", node.addr);
            let answer = raw(node.addr, req.as_bytes(), 3).await;
            let cache_status = answer
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("cache-status:"))
                .unwrap_or("")
                .to_owned();
            eprintln!("truncated fill {path}: {cache_status}");
            assert!(answer.starts_with(status), "{answer}");
            assert!(!cache_status.contains("stored"), "{cache_status}");
        }
        let got = node.get("/whole").await;
        assert_eq!(got.text(), "whole");
        assert!(got.cache_status().contains("stored"), "{}", got.cache_status());
        assert!(node.get("/whole").await.is_hit());
    })
    .await;
}

/// An origin that records, per request, whether the handler ran to its end or was dropped
/// because lacquer closed the connection or reset the stream.
struct TrackingOrigin {
    addr: std::net::SocketAddr,
    started: Arc<AtomicUsize>,
    completed: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct DropGuard {
    done: bool,
    completed: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.done {
            self.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl TrackingOrigin {
    async fn start(cache_control: &'static str, delay: Duration) -> TrackingOrigin {
        use hyper::service::service_fn;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let completed = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (s, c, d) = (started.clone(), completed.clone(), dropped.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, c, d) = (s.clone(), c.clone(), d.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                        let (s, c, d) = (s.clone(), c.clone(), d.clone());
                        async move {
                            s.fetch_add(1, Ordering::SeqCst);
                            let mut guard = DropGuard {
                                done: false,
                                completed: c,
                                dropped: d,
                            };
                            tokio::time::sleep(delay).await;
                            guard.done = true;
                            let mut r = http::Response::new(http_body_util::Full::new(
                                Bytes::from_static(b"tracked"),
                            ));
                            r.headers_mut().insert(
                                "cache-control",
                                http::HeaderValue::from_static(cache_control),
                            );
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        TrackingOrigin {
            addr,
            started,
            completed,
            dropped,
        }
    }

    fn counts(&self) -> (usize, usize, usize) {
        (
            self.started.load(Ordering::SeqCst),
            self.completed.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst),
        )
    }
}

/// `n` HTTP/2 requests (h2c prior knowledge, one connection) each cancelled after 10 ms.
/// `warm` is requested first and runs to its end.
async fn cancelled_h2_requests(addr: std::net::SocketAddr, warm: &str, path: &str, n: usize) {
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    // A first request that runs to its end: it opens the connection (so the burst is not
    // cancelled before it is sent) and, on an uncacheable URL, sets hit-for-miss.
    let first = http::Request::get(format!("http://{addr}{warm}"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = h2.request(first).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let h2 = h2.clone();
        let uri: http::Uri = format!("http://{addr}{path}").parse().unwrap();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(uri)
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(10), h2.request(req)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Finding 9: HTTP/2 streams for an uncacheable URL (hit-for-miss) cancelled after 10 ms
/// abort their origin requests instead of running them to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_uncacheable_requests_abort_their_origin_requests() {
    within(30, async {
        let origin = TrackingOrigin::start("no-store", Duration::from_millis(500)).await;
        let node = start(config(&[origin.addr])).await;
        cancelled_h2_requests(node.addr, "/private", "/private", 100).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (started, completed, dropped) = origin.counts();
        eprintln!("100 cancelled h2 streams (uncacheable): origin started {started}, completed {completed}, dropped {dropped}");
        assert_eq!(completed, 1, "only the first, uncancelled request ran to its end");
        assert_eq!(dropped, started - 1);
    })
    .await;
}

/// Finding 9, the other half: cancelled requests for a cacheable URL share one fill that
/// runs to completion and is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_cacheable_requests_share_one_fill() {
    within(30, async {
        let origin = TrackingOrigin::start("max-age=60", Duration::from_millis(300)).await;
        let node = start(config(&[origin.addr])).await;
        cancelled_h2_requests(node.addr, "/warm", "/public", 100).await;
        // Joins the fill the cancelled requests started (or hits what it stored).
        let got = node.get("/public").await;
        assert_eq!(got.text(), "tracked");
        let cs = got.cache_status().to_owned();
        assert!(cs.contains("collapsed") || got.is_hit(), "{cs}");
        assert!(node.get("/public").await.is_hit());
        let (started, completed, dropped) = origin.counts();
        eprintln!("100 cancelled h2 streams (cacheable): origin started {started}, completed {completed}, dropped {dropped}");
        assert_eq!((started, completed, dropped), (2, 2, 0), "warm-up and one fill");
    })
    .await;
}

/// A reader still behind when a large fill is stored reads the rest from the stored copy
/// (the arrived chunks are swapped for slices of it): every byte must still be the
/// origin's, in order.
#[tokio::test]
async fn slow_reader_of_a_stored_fill_gets_every_byte() {
    within(20, async {
        let pattern: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let body = Bytes::from(pattern.clone());
        let origin = Origin::start(move |_, _| Reply::ok(body.clone()).cc("max-age=60")).await;
        let node = start(config(&[origin.addr])).await;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        s.write_all(b"GET /slow-reader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut first = vec![0u8; 16 * 1024];
        s.read_exact(&mut first).await.unwrap();
        // The fill completes and is stored while this reader waits.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut out = first;
        s.read_to_end(&mut out).await.unwrap();
        let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(out.len() - at, pattern.len());
        assert!(
            out[at..] == pattern[..],
            "the slow reader's bytes differ from the origin's"
        );
        let hit = node.get_with("/slow-reader", &[("host", "x")]).await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert!(hit.body == pattern[..]);
        assert_eq!(origin.count("/slow-reader"), 1);
    })
    .await;
}
