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

// ---- finding 12: timeouts, connection limit, URI length and reload notes do what the docs say ----

/// Open client connections, as the node counts them.
fn open_connections(node: &Node) -> i64 {
    node.running
        .as_ref()
        .map(|r| r.live.metrics().connections_open.get())
        .unwrap_or(-1)
}

/// Wait until the node counts no open client connection; returns how long that took.
async fn until_no_connections(node: &Node) -> Duration {
    let t0 = std::time::Instant::now();
    while open_connections(node) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

/// A keep-alive connection between requests lives for `idle_timeout`, not for
/// `header_read_timeout`; a request head that has begun must still finish in
/// `header_read_timeout`.
#[tokio::test]
async fn idle_keepalive_lasts_idle_timeout_but_started_head_does_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("ok").cc("max-age=60")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.header_read_timeout = Duration::from_millis(500);
        cfg.limits.idle_timeout = Duration::from_secs(3);
        let node = start(cfg).await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        let req = b"GET /ka HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut buf = vec![0u8; 4096];
        s.write_all(req).await.unwrap();
        assert!(s.read(&mut buf).await.unwrap() > 0);
        // Idle for twice the header timeout, then a second request on the same connection.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        s.write_all(req).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("answer to the second request")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "second request on the idle connection: {text:?}"
        );
        // Slowloris on the same connection: a head begun and never finished is cut at the
        // header timeout, well before the idle timeout.
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        let took = t0.elapsed();
        eprintln!("unfinished second head cut after {took:?} (header_read_timeout 500ms)");
        assert!(
            took < Duration::from_millis(2000),
            "unfinished head cut after {took:?}"
        );
    })
    .await;
}

/// A client that stops reading is closed at `idle_timeout` after the last byte moved
/// (plus scheduling slack), not anywhere up to twice that.
#[tokio::test]
async fn slow_reader_closed_at_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let big = Bytes::from(vec![b'z'; 32 << 20]);
        let origin = Origin::start(move |_, _| Reply::ok(big.clone()).cc("no-store")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.cache.max_object_size = 64 << 20;
        cfg.limits.header_read_timeout = Duration::from_secs(10);
        cfg.limits.idle_timeout = Duration::from_secs(1);
        let node = start(cfg).await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        // Stop reading. The node fills the socket buffers at once, then nothing moves.
        let took = until_no_connections(&node).await;
        eprintln!("stalled reader closed after {took:?} (idle_timeout 1s)");
        assert!(
            took < Duration::from_millis(1500),
            "stalled reader closed after {took:?} with idle_timeout 1s"
        );
        drop(s);
    })
    .await;
}

/// Past `max_connections` a new client is refused at once (503 or a closed connection),
/// not queued until a slot frees; the refusal is counted.
#[tokio::test]
async fn max_connections_refuses_instead_of_queueing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("ok").cc("max-age=60")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.max_connections = 2;
        cfg.limits.idle_timeout = Duration::from_secs(5);
        cfg.limits.header_read_timeout = Duration::from_secs(5);
        let node = start(cfg).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
            s.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            assert!(s.read(&mut buf).await.unwrap() > 0);
            held.push(s);
        }
        let t0 = std::time::Instant::now();
        let resp = raw(node.addr, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n", 4).await;
        let took = t0.elapsed();
        eprintln!(
            "third client over max_connections: {took:?}, {:?}",
            resp.lines().next()
        );
        assert!(
            took < Duration::from_secs(2),
            "third client answered after {took:?}: {resp:?}"
        );
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 503"),
            "third client: {resp:?}"
        );
        let metrics = node.running.as_ref().unwrap().live.metrics().encode();
        assert!(
            metrics.contains("lacquer_connections_refused_total 1"),
            "{metrics}"
        );
        // A freed slot serves again.
        drop(held);
        let t = std::time::Instant::now();
        while open_connections(&node) > 0 && t.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ok = raw(
            node.addr,
            b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            3,
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    })
    .await;
}

/// A long request target gets 414, both within the head bound and far beyond it.
#[tokio::test]
async fn long_uri_gets_414() {
    within(20, async {
        let (origin, node) = node().await;
        for len in [12 * 1024, 100 * 1024] {
            let path = "/".to_owned() + &"p".repeat(len);
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
            let resp = raw(node.addr, req.as_bytes(), 3).await;
            assert!(resp.starts_with("HTTP/1.1 414"), "{len} B URI: {resp}");
        }
        assert_eq!(origin.total(), 0);
        assert_eq!(node.get("/still-alive").await.status, 200);
    })
    .await;
}

/// The reload answer names exactly the admin keys that wait for a restart, and only
/// when they changed; `purge_allowed` applies at once.
#[tokio::test]
async fn reload_note_names_only_restart_bound_admin_keys() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("ok")).await;
        let cfg = config(&[origin.addr]);
        let node = start(cfg.clone()).await;
        let live = node.running.as_ref().unwrap().live.clone();
        let mut next = cfg.clone();
        next.admin.purge_allowed = vec!["10.0.0.0/8".to_owned()];
        let note = live.reload(next.clone()).await.unwrap();
        assert_eq!(note, "reloaded", "purge_allowed applies at once");
        let purge = node
            .send(
                Method::from_bytes(b"PURGE").unwrap(),
                "/x",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(purge.status, 403, "the new purge_allowed is in force");
        next.admin.max_body = 1024;
        let note = live.reload(next).await.unwrap();
        assert!(note.contains("admin.max_body"), "{note}");
        assert!(note.contains("restart"), "{note}");
        assert!(!note.contains("purge_allowed"), "{note}");
    })
    .await;
}

/// A new connection that sends nothing is closed at `header_read_timeout`, not kept as
/// an idle keep-alive client for `idle_timeout`.
#[tokio::test]
async fn silent_new_connection_closed_at_header_timeout() {
    use tokio::io::AsyncReadExt;
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("ok")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.header_read_timeout = Duration::from_millis(500);
        cfg.limits.idle_timeout = Duration::from_secs(4);
        let node = start(cfg).await;
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        let t0 = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut buf)).await;
        let took = t0.elapsed();
        eprintln!("silent connection closed after {took:?} (header_read_timeout 500ms)");
        assert!(
            took < Duration::from_millis(2500),
            "silent connection closed after {took:?}"
        );
    })
    .await;
}
