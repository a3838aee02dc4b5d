//! Server-sent events through lacquer: an event stream is relayed event by event, and
//! its silences between events are bounded by `upstream.stream_idle_timeout`, not by
//! `between_bytes_timeout`, which would cut it (issue 13).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// An origin answering every request with `content_type`, then three chunks 1.5 s apart.
async fn slow_stream_origin(content_type: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut s, &mut buf).await.is_none() {
                    return;
                }
                // Cacheable by its headers: an event stream must pass anyway.
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: public, max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..3 {
                    let event = format!("data: event {i}\n\n");
                    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// GET / through `node`; the bytes received and when the first event arrived.
async fn read_stream(node: SocketAddr) -> (String, Option<Duration>) {
    let mut s = TcpStream::connect(node).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut first = None;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if first.is_none() && String::from_utf8_lossy(&out).contains("event 0") {
                    first = Some(started.elapsed());
                }
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), first)
}

fn node_config(origin: SocketAddr) -> lacquer::config::Config {
    let mut cfg = config(&[origin]);
    cfg.upstream.between_bytes_timeout = Duration::from_secs(1);
    cfg
}

#[tokio::test]
async fn an_event_stream_is_relayed_event_by_event_through_its_silences() {
    within(30, async {
        let origin = slow_stream_origin("text/event-stream; charset=utf-8").await;
        let node = start(node_config(origin)).await;
        let (body, first) = read_stream(node.addr).await;
        for i in 0..3 {
            assert!(body.contains(&format!("data: event {i}")), "{body}");
        }
        assert!(
            body.ends_with("0\r\n\r\n"),
            "the stream ends cleanly: {body:?}"
        );
        // Relayed as it came, not held until the stream ended (4.5 s).
        let first = first.expect("the first event arrived");
        assert!(
            first < Duration::from_millis(1400),
            "first event after {first:?}"
        );
        // Never stored: a second client gets its own live stream, not a replay.
        let (again, first) = read_stream(node.addr).await;
        assert!(again.contains("data: event 2"), "{again}");
        assert!(!again.contains("cache-status: lacquer; hit"), "{again}");
        assert!(first.is_some_and(|f| f < Duration::from_millis(1400)));
        node.stop().await;
    })
    .await;
}

/// Anything else still may not stall longer than `between_bytes_timeout`.
#[tokio::test]
async fn other_responses_are_still_cut_by_between_bytes_timeout() {
    within(30, async {
        let origin = slow_stream_origin("text/plain").await;
        let node = start(node_config(origin)).await;
        let (body, _) = read_stream(node.addr).await;
        assert!(body.contains("data: event 0"), "{body}");
        assert!(
            !body.contains("data: event 1"),
            "cut after 1 s of silence: {body}"
        );
        assert!(
            !body.ends_with("0\r\n\r\n"),
            "a cut body is not ended cleanly: {body:?}"
        );
        node.stop().await;
    })
    .await;
}

#[test]
fn the_stream_idle_timeout_is_five_minutes_by_default() {
    let cfg = lacquer::config::Config::default();
    assert_eq!(cfg.upstream.stream_idle_timeout, Duration::from_secs(300));
}
