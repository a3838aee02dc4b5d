//! Bad input from clients: each answered with the right 4xx or a closed connection, and
//! the process keeps serving.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use support::*;

async fn node() -> (Origin, Node) {
    let origin =
        Origin::start(|s, _| Reply::ok(format!("ok {}", s.body.len())).cc("max-age=60")).await;
    let mut cfg = config(&[origin.addr]);
    cfg.limits.max_header_bytes = 16 * 1024;
    cfg.limits.max_headers = 50;
    cfg.limits.max_body = 1024;
    cfg.limits.header_read_timeout = Duration::from_millis(500);
    cfg.limits.idle_timeout = Duration::from_secs(1);
    let node = start(cfg).await;
    (origin, node)
}

/// An oversize header block gets 431.
#[tokio::test]
async fn oversize_header_gets_431() {
    within(20, async {
        let (_o, node) = node().await;
        let big = "a".repeat(20 * 1024);
        let req = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
        assert_eq!(node.get("/still-alive").await.status, 200);
    })
    .await;
}

/// Too many header fields gets 431.
#[tokio::test]
async fn too_many_headers_gets_431() {
    within(20, async {
        let (_o, node) = node().await;
        let mut req = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
        for i in 0..80 {
            req.push_str(&format!("x-h{i}: v\r\n"));
        }
        req.push_str("\r\n");
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    })
    .await;
}

/// An over-long request line is refused (414 or 431 from the header bound).
#[tokio::test]
async fn long_request_line_refused() {
    within(20, async {
        let (_o, node) = node().await;
        let path = "/".to_owned() + &"p".repeat(20 * 1024);
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(
            resp.starts_with("HTTP/1.1 414") || resp.starts_with("HTTP/1.1 431"),
            "{resp}"
        );
    })
    .await;
}

/// A body over the limit: 413 by Content-Length, and streamed (chunked) bodies are cut.
#[tokio::test]
async fn oversize_body_gets_413() {
    within(20, async {
        let (origin, node) = node().await;
        let g = node
            .send(Method::POST, "/up", &[], Bytes::from(vec![b'a'; 4096]))
            .await;
        assert_eq!(g.status, 413);
        assert_eq!(origin.count("/up"), 0);
        let mut req =
            String::from("POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..4 {
            req.push_str("400\r\n");
            req.push_str(&"b".repeat(1024));
            req.push_str("\r\n");
        }
        req.push_str("0\r\n\r\n");
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(
            resp.starts_with("HTTP/1.1 413") || resp.is_empty(),
            "{resp}"
        );
        let ok = node
            .send(Method::POST, "/up", &[], Bytes::from(vec![b'a'; 100]))
            .await;
        assert_eq!(ok.text(), "ok 100");
    })
    .await;
}

/// Garbage instead of HTTP gets 400 (or a closed connection), never a crash.
#[tokio::test]
async fn garbage_request_gets_400() {
    within(20, async {
        let (_o, node) = node().await;
        let resp = raw(node.addr, b"\x16\x03\x01\x00garbage\r\n\r\n", 3).await;
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 400"),
            "{resp}"
        );
        let resp = raw(
            node.addr,
            b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            3,
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert_eq!(node.get("/alive").await.status, 200);
    })
    .await;
}

/// A slowloris client that never finishes its headers is disconnected.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let (_o, node) = node().await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "connection closed by the server");
    })
    .await;
}

/// An idle keep-alive connection is closed after the idle timeout.
#[tokio::test]
async fn idle_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let (_o, node) = node().await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        s.write_all(b"GET /idle HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        let mut rest = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(r.is_ok(), "idle connection closed");
    })
    .await;
}

/// HTTP/2 with prior knowledge (h2c) works and hits the cache.
#[tokio::test]
async fn h2c_prior_knowledge() {
    within(20, async {
        let (origin, node) = node().await;
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let a = send(&client, node.addr, Method::GET, "/h2", &[], Bytes::new()).await;
        let b = send(&client, node.addr, Method::GET, "/h2", &[], Bytes::new()).await;
        assert_eq!(a.status, 200);
        assert!(b.is_hit(), "{}", b.cache_status());
        assert_eq!(origin.count("/h2"), 1);
    })
    .await;
}
