//! Request coalescing over real sockets: herds, uncacheable herds, streaming to waiters.

mod support;

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
