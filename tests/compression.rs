//! Compression at the edge (issue 13): stored encodings chosen by Accept-Encoding,
//! on-the-fly compression of what streams uncached, and what is never compressed.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Request header fields, and the encoding they should get.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A JSON document of about `len` bytes, repetitive as API answers are.
fn json(len: usize) -> Bytes {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"player\":\"player {i}\",\"score\":{},\"team\":\"team {}\"}},",
            i * 7 % 101,
            i % 20
        ));
        i += 1;
    }
    s.push_str("{}]");
    Bytes::from(s)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The body as sent, decoded by its Content-Encoding.
fn decoded(got: &Got) -> Vec<u8> {
    match got.header("content-encoding") {
        Some("gzip") => gunzip(&got.body),
        Some("br") => unbrotli(&got.body),
        None => got.body.to_vec(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
}

fn vary_lists_accept_encoding(got: &Got) -> bool {
    got.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
        .count()
        == 1
}

/// An origin serving `body` as JSON, cacheable, with a strong ETag, at every path.
async fn json_origin(body: Bytes) -> Origin {
    Origin::start(move |_, _| {
        Reply::ok(body.clone())
            .header("content-type", "application/json")
            .header("etag", "\"v1\"")
            .cc("public, max-age=60")
    })
    .await
}

/// Ask until a hit comes from the stored encoding (it has a Content-Length): the
/// encodings are made after the object is stored.
async fn until_stored_encoding(node: &Node, path: &str) -> Got {
    within(10, async {
        loop {
            let got = node.get_with(path, &[("accept-encoding", "br")]).await;
            if got.is_hit()
                && got.header("content-encoding") == Some("br")
                && got.header("content-length").is_some()
            {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn stored_encodings_are_chosen_by_accept_encoding() {
    within(30, async {
        let body = json(50 * 1024);
        let origin = json_origin(body.clone()).await;
        let node = start(config(&[origin.addr])).await;

        // The miss streams, compressed on the fly: no Content-Length.
        let first = node
            .get_with("/scores", &[("accept-encoding", "gzip, br")])
            .await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("content-encoding"), Some("br"));
        assert_eq!(first.header("content-length"), None);
        assert_eq!(first.header("etag"), Some("W/\"v1\""));
        assert!(vary_lists_accept_encoding(&first), "{:?}", first.headers);
        assert_eq!(decoded(&first), body);

        let br = until_stored_encoding(&node, "/scores").await;
        assert_eq!(
            br.header("content-length"),
            Some(br.body.len().to_string().as_str())
        );
        assert!(br.body.len() < body.len() / 4, "br {} bytes", br.body.len());
        assert_eq!(decoded(&br), body);
        assert_eq!(br.header("etag"), Some("W/\"v1\""));
        assert_eq!(br.header("accept-ranges"), None);
        assert!(vary_lists_accept_encoding(&br));

        let cases: [(Headers, Option<&str>); 9] = [
            (&[("accept-encoding", "gzip")], Some("gzip")),
            (&[("accept-encoding", "gzip, deflate, br")], Some("br")),
            (&[("accept-encoding", "br;q=0.5, gzip")], Some("gzip")),
            (&[("accept-encoding", "br;q=0, gzip;q=0")], None),
            (&[("accept-encoding", "*")], Some("br")),
            (&[("accept-encoding", "br;q=0, *")], Some("gzip")),
            (&[("accept-encoding", "identity")], None),
            (&[("accept-encoding", "deflate")], None),
            (&[], None),
        ];
        for (headers, want) in cases {
            let got = node.get_with("/scores", headers).await;
            assert!(got.is_hit(), "{headers:?}: {}", got.cache_status());
            assert_eq!(got.header("content-encoding"), want, "{headers:?}");
            assert_eq!(
                got.header("content-length"),
                Some(got.body.len().to_string().as_str()),
                "{headers:?}"
            );
            assert_eq!(decoded(&got), body, "{headers:?}");
            assert!(vary_lists_accept_encoding(&got), "{headers:?}");
            let etag = if want.is_some() { "W/\"v1\"" } else { "\"v1\"" };
            assert_eq!(got.header("etag"), Some(etag), "{headers:?}");
        }
        // One stored object served every encoding.
        assert_eq!(origin.count("/scores"), 1);
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn head_range_and_conditional_requests() {
    within(30, async {
        let body = json(20 * 1024);
        let origin = json_origin(body.clone()).await;
        let node = start(config(&[origin.addr])).await;
        node.get("/doc").await;
        let br = until_stored_encoding(&node, "/doc").await;

        // HEAD: the headers of the chosen representation.
        let head = node
            .send(
                Method::HEAD,
                "/doc",
                &[("accept-encoding", "br")],
                Bytes::new(),
            )
            .await;
        assert_eq!(head.header("content-encoding"), Some("br"));
        assert_eq!(
            head.header("content-length"),
            Some(br.body.len().to_string().as_str())
        );
        assert!(head.body.is_empty());

        // A range is of the identity body, with its strong validator.
        let part = node
            .get_with(
                "/doc",
                &[("accept-encoding", "gzip, br"), ("range", "bytes=0-99")],
            )
            .await;
        assert_eq!(part.status, 206);
        assert_eq!(part.header("content-encoding"), None);
        assert_eq!(part.header("etag"), Some("\"v1\""));
        assert_eq!(part.body, body.slice(0..100));

        // If-None-Match compares weakly: the weakened tag matches, and the 304 says
        // what the 200 would have.
        let not_modified = node
            .get_with(
                "/doc",
                &[("accept-encoding", "gzip"), ("if-none-match", "W/\"v1\"")],
            )
            .await;
        assert_eq!(not_modified.status, 304);
        assert_eq!(not_modified.header("etag"), Some("W/\"v1\""));
        assert!(vary_lists_accept_encoding(&not_modified));
        let identity_304 = node.get_with("/doc", &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(identity_304.status, 304);
        assert_eq!(identity_304.header("etag"), Some("\"v1\""));
        assert_eq!(origin.count("/doc"), 1);
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn what_is_never_compressed() {
    within(30, async {
        let big = json(8 * 1024);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(&big).unwrap();
            Bytes::from(e.finish().unwrap())
        };
        let (big2, gz2) = (big.clone(), gz.clone());
        let origin = Origin::start(move |seen, _| match seen.path.as_str() {
            "/no-transform" => Reply::ok(big2.clone())
                .header("content-type", "application/json")
                .cc("max-age=60, no-transform"),
            "/small" => Reply::ok(json(900))
                .header("content-type", "application/json")
                .cc("max-age=60"),
            "/image" => Reply::ok(vec![7u8; 8192])
                .header("content-type", "image/png")
                .cc("max-age=60"),
            "/events" => Reply::ok(big2.clone())
                .header("content-type", "text/event-stream")
                .cc("no-store"),
            // Compressed by the origin: stored and served as sent.
            "/gzipped" => Reply::ok(gz2.clone())
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .header("vary", "Accept-Encoding")
                .cc("max-age=60"),
            _ => Reply::ok(big2.clone())
                .header("content-type", "text/plain")
                .cc("max-age=60"),
        })
        .await;
        let node = start(config(&[origin.addr])).await;
        let br = [("accept-encoding", "br, gzip")];
        for path in ["/no-transform", "/small", "/image", "/events"] {
            for _ in 0..2 {
                let got = node.get_with(path, &br).await;
                assert_eq!(got.status, 200, "{path}");
                assert_eq!(got.header("content-encoding"), None, "{path}");
                assert!(!vary_lists_accept_encoding(&got), "{path}");
            }
        }
        for _ in 0..3 {
            let got = node
                .get_with("/gzipped", &[("accept-encoding", "gzip, br")])
                .await;
            assert_eq!(got.header("content-encoding"), Some("gzip"));
            assert_eq!(got.body, gz, "not compressed again");
            assert_eq!(gunzip(&got.body), big);
        }

        // The client's no-transform: identity, though it accepts br.
        let got = node
            .get_with(
                "/text",
                &[("accept-encoding", "br"), ("cache-control", "no-transform")],
            )
            .await;
        assert_eq!(got.header("content-encoding"), None);
        assert_eq!(got.body, big);
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn compression_can_be_turned_off_globally_and_per_site() {
    within(30, async {
        let body = json(10 * 1024);
        let origin = json_origin(body.clone()).await;
        let mut cfg = config(&[origin.addr]);
        cfg.compression.enabled = false;
        let node = start(cfg).await;
        for _ in 0..3 {
            let got = node
                .get_with("/a", &[("accept-encoding", "gzip, br")])
                .await;
            assert_eq!(got.header("content-encoding"), None);
            assert!(!vary_lists_accept_encoding(&got));
            assert_eq!(got.body, body);
        }
        node.stop().await;

        let mut cfg = config(&[origin.addr]);
        cfg.site.push(lacquer::config::SiteConfig {
            name: "plain".into(),
            paths: vec!["/plain/".into()],
            compress: Some(false),
            ..Default::default()
        });
        let node = start(cfg).await;
        let got = node
            .get_with("/plain/a", &[("accept-encoding", "gzip")])
            .await;
        assert_eq!(got.header("content-encoding"), None);
        assert!(!vary_lists_accept_encoding(&got));
        // Other paths fall to the default site, which compresses.
        let got = node
            .get_with("/other", &[("accept-encoding", "gzip")])
            .await;
        assert_eq!(got.header("content-encoding"), Some("gzip"));
        assert_eq!(decoded(&got), body);
        node.stop().await;
    })
    .await;
}

/// An uncached (no-store) chunked text response, sent in two parts: the second only
/// once `go` is notified.
async fn two_part_origin(
    first: &'static str,
    second: &'static str,
) -> (SocketAddr, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let go = Arc::new(tokio::sync::Notify::new());
    let go2 = go.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let go = go2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut s, &mut buf).await.is_none() {
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nETag: \"s1\"\r\nTransfer-Encoding: chunked\r\n\r\n";
                let chunk = |t: &str| format!("{:x}\r\n{t}\r\n", t.len());
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(chunk(first).as_bytes()).await.is_err()
                {
                    return;
                }
                go.notified().await;
                let _ = s.write_all(chunk(second).as_bytes()).await;
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (addr, go)
}

#[tokio::test]
async fn pass_through_is_compressed_as_it_streams() {
    within(30, async {
        let first = "first part of the live answer; ".repeat(60);
        let second = "second part, sent only after the client decoded the first. ".repeat(40);
        let (first, second): (&'static str, &'static str) = (
            Box::leak(first.into_boxed_str()),
            Box::leak(second.into_boxed_str()),
        );
        for encoding in ["gzip", "br"] {
            let (addr, go) = two_part_origin(first, second).await;
            let node = start(config(&[addr])).await;
            let req = Request::builder()
                .uri(format!("http://{}/live", node.addr))
                .header("accept-encoding", encoding)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = node.client.request(req).await.unwrap();
            assert_eq!(resp.headers()["content-encoding"], encoding);
            assert_eq!(resp.headers().get("content-length"), None);
            assert_eq!(resp.headers()["etag"], "W/\"s1\"");
            let mut body = resp.into_body();
            // Decode what arrives until the first part is whole, before the origin
            // has sent the rest.
            let mut received = Vec::new();
            let mut out_len = 0;
            while out_len < first.len() {
                let frame = body.frame().await.unwrap().unwrap();
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received.extend_from_slice(&data);
                // What everything received so far decodes to.
                let so_far = match encoding {
                    "gzip" => {
                        let mut d = flate2::write::GzDecoder::new(Vec::new());
                        d.write_all(&received).unwrap();
                        d.flush().unwrap();
                        d.get_ref().clone()
                    }
                    _ => {
                        let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
                        d.write_all(&received).unwrap();
                        d.flush().unwrap();
                        d.get_ref().clone()
                    }
                };
                out_len = so_far.len();
                assert!(first
                    .as_bytes()
                    .starts_with(&so_far[..out_len.min(first.len())]));
            }
            assert_eq!(out_len, first.len());
            go.notify_one();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    received.extend_from_slice(&data);
                }
            }
            let whole = match encoding {
                "gzip" => gunzip(&received),
                _ => unbrotli(&received),
            };
            assert_eq!(whole, format!("{first}{second}").as_bytes());
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn stored_encodings_count_in_the_cache_bytes() {
    within(30, async {
        let body = json(50 * 1024);
        let origin = json_origin(body.clone()).await;
        let mut cfg = config(&[origin.addr]);
        cfg.compression.store = vec![];
        let plain = start(cfg).await;
        let node = start(config(&[origin.addr])).await;
        plain.get("/x").await;
        node.get("/x").await;
        until_stored_encoding(&node, "/x").await;
        let bytes = |n: &Node| {
            let r = n.running.as_ref().unwrap();
            r.proxy().cache().run_pending_tasks();
            r.proxy().cache().stats().bytes
        };
        let (identity_only, with_encodings) = (bytes(&plain), bytes(&node));
        let br = node
            .get_with("/x", &[("accept-encoding", "br")])
            .await
            .body
            .len();
        let gz = node
            .get_with("/x", &[("accept-encoding", "gzip")])
            .await
            .body
            .len();
        assert!(
            with_encodings >= identity_only + (br + gz) as u64,
            "{identity_only} + {br} + {gz} > {with_encodings}"
        );
        plain.stop().await;
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn pushed_objects_get_stored_encodings() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("origin").cc("max-age=60")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.admin.enabled = true;
        let node = start(cfg).await;
        let body = json(12 * 1024);
        let url: String = node
            .url("/pushed")
            .bytes()
            .map(|b| match b {
                b':' => "%3A".to_owned(),
                b'/' => "%2F".to_owned(),
                _ => char::from(b).to_string(),
            })
            .collect();
        let pushed = send(
            &node.client,
            node.admin_addr(),
            Method::PUT,
            &format!("/objects?url={url}&ttl=120"),
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        assert_eq!(pushed.status, 201, "{}", pushed.text());
        let br = until_stored_encoding(&node, "/pushed").await;
        assert_eq!(decoded(&br), body);
        assert_eq!(origin.count("/pushed"), 0);
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_large_streamed_fill_and_on_the_fly_off() {
    within(30, async {
        // Past the size read whole before the head: the fill streams to its client.
        let body = json(300 * 1024);
        let origin = json_origin(body.clone()).await;
        let mut cfg = config(&[origin.addr]);
        cfg.compression.on_the_fly = false;
        let node = start(cfg).await;
        let miss = node.get_with("/big", &[("accept-encoding", "gzip")]).await;
        assert!(!miss.is_hit());
        // Nothing stored yet to serve encoded, and no compressing on the fly.
        assert_eq!(miss.header("content-encoding"), None);
        assert_eq!(miss.body, body);
        assert!(vary_lists_accept_encoding(&miss));
        let br = until_stored_encoding(&node, "/big").await;
        assert_eq!(decoded(&br), body);
        let gz = node.get_with("/big", &[("accept-encoding", "gzip")]).await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert_eq!(decoded(&gz), body);
        assert_eq!(origin.count("/big"), 1);
        node.stop().await;
    })
    .await;
}
