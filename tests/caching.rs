//! RFC 9111 behaviour of the shared cache, end to end over real sockets.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use support::*;

async fn node_for(handler: impl Fn(&Seen, u64) -> Reply + Send + Sync + 'static) -> (Origin, Node) {
    let origin = Origin::start(handler).await;
    let node = start(config(&[origin.addr])).await;
    (origin, node)
}

/// max-age: a second request is a hit with an Age header.
#[tokio::test]
async fn max_age_hit_with_age() {
    within(20, async {
        let (origin, node) = node_for(|_, n| Reply::ok(format!("v{n}")).cc("max-age=60")).await;
        let a = node.get("/x").await;
        assert!(
            a.cache_status().contains("fwd=miss"),
            "{}",
            a.cache_status()
        );
        assert!(a.cache_status().contains("stored"));
        let b = node.get("/x").await;
        assert_eq!(b.text(), "v1");
        assert!(b.is_hit());
        assert!(b.header("age").is_some());
        assert!(b.header("via").unwrap_or("").contains("lacquer"));
        assert_eq!(origin.count("/x"), 1);
    })
    .await;
}

/// no-store, private and no freshness: never served from cache.
#[tokio::test]
async fn unstorable_responses_go_to_origin() {
    within(20, async {
        let (origin, node) = node_for(|s, n| {
            let cc = match s.path.as_str() {
                "/nostore" => "no-store",
                "/private" => "private, max-age=60",
                _ => "",
            };
            Reply::ok(format!("v{n}")).cc(cc)
        })
        .await;
        for p in ["/nostore", "/private", "/none"] {
            node.get(p).await;
            let g = node.get(p).await;
            assert_eq!(g.text(), "v2", "{p}");
        }
        assert_eq!(origin.total(), 6);
    })
    .await;
}

/// s-maxage overrides max-age for a shared cache.
#[tokio::test]
async fn s_maxage_wins() {
    within(20, async {
        let (origin, node) =
            node_for(|_, n| Reply::ok(format!("v{n}")).cc("max-age=0, s-maxage=60")).await;
        node.get("/s").await;
        assert_eq!(node.get("/s").await.text(), "v1");
        assert_eq!(origin.count("/s"), 1);
    })
    .await;
}

/// Expires with Date gives freshness; an invalid Expires means already stale.
#[tokio::test]
async fn expires_and_invalid_expires() {
    within(20, async {
        let (origin, node) = node_for(|s, n| {
            let now = std::time::SystemTime::now();
            let r = Reply::ok(format!("v{n}")).header("date", &httpdate::fmt_http_date(now));
            if s.path == "/good" {
                r.header(
                    "expires",
                    &httpdate::fmt_http_date(now + Duration::from_secs(60)),
                )
            } else {
                r.header("expires", "0")
            }
        })
        .await;
        node.get("/good").await;
        assert_eq!(node.get("/good").await.text(), "v1");
        node.get("/bad").await;
        assert_eq!(node.get("/bad").await.text(), "v2");
        assert_eq!(origin.total(), 3);
    })
    .await;
}

/// Heuristic freshness from Last-Modified on a 200.
#[tokio::test]
async fn heuristic_freshness() {
    within(20, async {
        let (origin, node) = node_for(|_, n| {
            let lm = std::time::SystemTime::now() - Duration::from_secs(100_000);
            Reply::ok(format!("v{n}")).header("last-modified", &httpdate::fmt_http_date(lm))
        })
        .await;
        node.get("/h").await;
        assert_eq!(node.get("/h").await.text(), "v1");
        assert_eq!(origin.count("/h"), 1);
    })
    .await;
}

/// Vary on Accept-Encoding keeps variants apart.
#[tokio::test]
async fn vary_keeps_variants_apart() {
    within(20, async {
        let (origin, node) = node_for(|s, _| {
            let ae = s
                .headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_owned();
            Reply::ok(format!("encoded as {ae}"))
                .cc("max-age=60")
                .header("vary", "Accept-Encoding")
        })
        .await;
        let gz = node.get_with("/v", &[("accept-encoding", "gzip")]).await;
        let br = node.get_with("/v", &[("accept-encoding", "br")]).await;
        assert_eq!(gz.text(), "encoded as gzip");
        assert_eq!(br.text(), "encoded as br");
        assert_eq!(
            node.get_with("/v", &[("accept-encoding", "gzip")])
                .await
                .text(),
            "encoded as gzip"
        );
        assert_eq!(
            node.get_with("/v", &[("accept-encoding", "br")])
                .await
                .text(),
            "encoded as br"
        );
        assert_eq!(origin.count("/v"), 2);
    })
    .await;
}

/// Vary: * is never served from cache.
#[tokio::test]
async fn vary_star_not_reused() {
    within(20, async {
        let (origin, node) = node_for(|_, n| {
            Reply::ok(format!("v{n}"))
                .cc("max-age=60")
                .header("vary", "*")
        })
        .await;
        node.get("/star").await;
        assert_eq!(node.get("/star").await.text(), "v2");
        assert_eq!(origin.count("/star"), 2);
    })
    .await;
}

/// A stale copy with an ETag is revalidated; the 304 refreshes freshness and merges headers.
#[tokio::test]
async fn revalidation_with_304_refreshes() {
    within(20, async {
        let (origin, node) = node_for(|s, n| {
            if s.headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some("\"e1\"") {
                Reply::ok("")
                    .status(304)
                    .cc("max-age=60")
                    .header("etag", "\"e1\"")
                    .header("x-refresh", &n.to_string())
            } else {
                Reply::ok("body-1")
                    .cc("max-age=1")
                    .header("etag", "\"e1\"")
                    .header("x-refresh", "0")
            }
        })
        .await;
        assert_eq!(node.get("/r").await.text(), "body-1");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let g = node.get("/r").await;
        assert_eq!(g.status, 200);
        assert_eq!(g.text(), "body-1");
        assert_eq!(g.header("x-refresh"), Some("2"), "304 headers merged");
        assert!(
            g.cache_status().contains("fwd-status=304"),
            "{}",
            g.cache_status()
        );
        // Fresh again for 60 s: a hit.
        let h = node.get("/r").await;
        assert!(h.is_hit());
        assert_eq!(origin.count("/r"), 2);
    })
    .await;
}

/// Client conditionals are answered from the cache.
#[tokio::test]
async fn client_if_none_match_gets_304_from_cache() {
    within(20, async {
        let (origin, node) =
            node_for(|_, _| Reply::ok("tagged").cc("max-age=60").header("etag", "\"t\"")).await;
        node.get("/c").await;
        let g = node.get_with("/c", &[("if-none-match", "\"t\"")]).await;
        assert_eq!(g.status, 304);
        assert!(g.body.is_empty());
        assert_eq!(origin.count("/c"), 1);
    })
    .await;
}

/// HEAD is answered from a cached GET; a HEAD miss fills the cache.
#[tokio::test]
async fn head_from_cached_get() {
    within(20, async {
        let (origin, node) = node_for(|_, _| Reply::ok("0123456789").cc("max-age=60")).await;
        let h = node.send(Method::HEAD, "/head", &[], Bytes::new()).await;
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        let g = node.get("/head").await;
        assert_eq!(g.text(), "0123456789");
        let h2 = node.send(Method::HEAD, "/head", &[], Bytes::new()).await;
        assert_eq!(h2.header("content-length"), Some("10"));
        assert_eq!(origin.count("/head"), 1);
        assert_eq!(origin.last().unwrap().method, Method::GET);
    })
    .await;
}

/// Range requests are served from the cached full object.
#[tokio::test]
async fn range_from_cached_object() {
    within(20, async {
        let (origin, node) = node_for(|_, _| Reply::ok("0123456789").cc("max-age=60")).await;
        node.get("/range").await;
        let g = node.get_with("/range", &[("range", "bytes=2-4")]).await;
        assert_eq!(g.status, 206);
        assert_eq!(g.text(), "234");
        assert_eq!(g.header("content-range"), Some("bytes 2-4/10"));
        let g = node.get_with("/range", &[("range", "bytes=-3")]).await;
        assert_eq!(g.text(), "789");
        let g = node.get_with("/range", &[("range", "bytes=50-")]).await;
        assert_eq!(g.status, 416);
        assert_eq!(origin.count("/range"), 1);
    })
    .await;
}

/// Unsafe methods pass through with their body and invalidate the URL (and Location).
#[tokio::test]
async fn post_passes_and_invalidates() {
    within(20, async {
        let (_origin, node) = node_for(|s, n| {
            if s.method == Method::POST {
                Reply::ok(format!("posted {}", String::from_utf8_lossy(&s.body)))
                    .header("location", "/other")
            } else {
                Reply::ok(format!("v{n}")).cc("max-age=60")
            }
        })
        .await;
        node.get("/p").await;
        node.get("/other").await;
        assert!(node.get("/p").await.is_hit());
        let p = node
            .send(Method::POST, "/p", &[], Bytes::from_static(b"hello"))
            .await;
        assert_eq!(p.text(), "posted hello");
        assert!(!node.get("/p").await.is_hit(), "target invalidated");
        assert!(!node.get("/other").await.is_hit(), "Location invalidated");
    })
    .await;
}

/// Authorization: not stored unless the response says public.
#[tokio::test]
async fn authorization_rules() {
    within(20, async {
        let (origin, node) = node_for(|s, n| {
            let cc = if s.path == "/pub" {
                "public, max-age=60"
            } else {
                "max-age=60"
            };
            Reply::ok(format!("v{n}")).cc(cc)
        })
        .await;
        let auth = [("authorization", "Bearer x")];
        node.get_with("/priv", &auth).await;
        assert_eq!(node.get_with("/priv", &auth).await.text(), "v2");
        node.get_with("/pub", &auth).await;
        assert_eq!(node.get_with("/pub", &auth).await.text(), "v1");
        assert_eq!(origin.count("/priv"), 2);
        assert_eq!(origin.count("/pub"), 1);
    })
    .await;
}

/// `cookie_requests = "pass"` (the default) means pass, whatever the response says: a
/// logged-in user's `public` page is never stored for anonymous clients, and a request
/// with a Cookie is never served a stored object (issue 11, finding 6: `public` and
/// `s-maxage` used to make such a response stored and shared).
#[tokio::test]
async fn cookie_requests_pass_even_when_the_response_says_public() {
    within(20, async {
        let (origin, node) = node_for(|s, n| {
            let who = s
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("anonymous")
                .to_owned();
            let cc = if s.path == "/smax" {
                "s-maxage=600"
            } else {
                "public, max-age=600"
            };
            Reply::ok(format!("{who} v{n}")).cc(cc)
        })
        .await;
        for path in ["/page", "/smax"] {
            let alice = node.get_with(path, &[("cookie", "user=alice")]).await;
            assert_eq!(alice.text(), "user=alice v1");
            assert!(
                alice.cache_status().contains("fwd=bypass")
                    && !alice.cache_status().contains("stored"),
                "{}",
                alice.cache_status()
            );
            let anon = node.get(path).await;
            assert_eq!(
                anon.text(),
                "anonymous v2",
                "{path}: alice's page was shared"
            );
            assert_eq!(
                node.get(path).await.text(),
                "anonymous v2",
                "anonymous fill is a hit"
            );
            let bob = node.get_with(path, &[("cookie", "user=bob")]).await;
            assert_eq!(
                bob.text(),
                "user=bob v3",
                "{path}: a cookie request is passed"
            );
            assert_eq!(origin.count(path), 3);
        }
    })
    .await;
}

/// CDN-Cache-Control takes precedence over Cache-Control.
#[tokio::test]
async fn cdn_cache_control_precedence() {
    within(20, async {
        let (origin, node) = node_for(|_, n| {
            Reply::ok(format!("v{n}"))
                .cc("no-store")
                .header("cdn-cache-control", "max-age=60")
        })
        .await;
        node.get("/cdn").await;
        assert_eq!(node.get("/cdn").await.text(), "v1");
        assert_eq!(origin.count("/cdn"), 1);
    })
    .await;
}

/// Hop-by-hop headers are stripped both ways; Via and X-Forwarded-For are added.
#[tokio::test]
async fn hop_by_hop_and_forwarding_headers() {
    within(20, async {
        let (origin, node) = node_for(|_, _| {
            Reply::ok("x")
                .header("connection", "x-hop")
                .header("x-hop", "secret")
                .header("x-end", "kept")
        })
        .await;
        let g = node
            .get_with(
                "/hop",
                &[("connection", "x-client-hop"), ("x-client-hop", "1")],
            )
            .await;
        assert!(g.header("x-hop").is_none());
        assert_eq!(g.header("x-end"), Some("kept"));
        let seen = origin.last().unwrap();
        assert!(seen.headers.get("x-client-hop").is_none());
        assert!(seen.headers.get("via").is_some());
        assert_eq!(seen.headers.get("x-forwarded-for").unwrap(), "127.0.0.1");
    })
    .await;
}

/// PURGE from an allowed address removes the object; Cache-Status is on every response.
#[tokio::test]
async fn purge_method_from_allowed_address() {
    within(20, async {
        let (origin, node) = node_for(|_, n| Reply::ok(format!("v{n}")).cc("max-age=60")).await;
        node.get("/pg").await;
        let p = node
            .send(
                Method::from_bytes(b"PURGE").unwrap(),
                "/pg",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(p.status, 200);
        assert!(p.text().contains("\"purged\":1"));
        assert_eq!(node.get("/pg").await.text(), "v2");
        assert_eq!(origin.count("/pg"), 2);
    })
    .await;
}
