//! Stale on failure: a usable stale copy is served when the origin is down, erroring or
//! hanging, and is never replaced by the error.

mod support;

use std::time::Duration;

use support::*;

async fn cached_then_stale(cc: &str) -> (Origin, Node) {
    let cc = cc.to_owned();
    let origin = Origin::start(move |_, n| Reply::ok(format!("good {n}")).cc(&cc)).await;
    let mut cfg = config(&[origin.addr]);
    cfg.upstream.first_byte_timeout = Duration::from_millis(800);
    let node = start(cfg).await;
    let got = node.get("/s").await;
    assert_eq!(got.text(), "good 1");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    (origin, node)
}

/// Origin answering 503: the stale copy is served with Cache-Status fwd=stale; fwd-status=503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_on_503() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, stale-if-error=60").await;
        origin.fail_503();
        let got = node.get("/s").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "good 1");
        let cs = got.cache_status();
        assert!(
            cs.contains("fwd=stale") && cs.contains("fwd-status=503"),
            "{cs}"
        );
        // Still the good copy the second time: the error did not replace it.
        let got = node.get("/s").await;
        assert_eq!(got.text(), "good 1");
        origin.heal();
        let got = node.get("/s").await;
        assert_eq!(got.text(), "good 4", "after healing, a fresh copy");
    })
    .await;
}

/// Origin stopped (connection refused): stale served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_on_connection_refused() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, stale-if-error=60").await;
        origin.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = node.get("/s").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "good 1");
        assert!(
            got.cache_status().contains("fwd=stale"),
            "{}",
            got.cache_status()
        );
    })
    .await;
}

/// Origin hanging past the first-byte timeout: stale served after the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_on_timeout() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, stale-if-error=60").await;
        origin.hang();
        let got = node.get("/s").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "good 1");
        assert!(
            got.cache_status().contains("fwd=stale"),
            "{}",
            got.cache_status()
        );
    })
    .await;
}

/// Without a stale copy, failures are clean 502 / 503 / 504 pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_errors_without_stale() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("x").cc("max-age=60")).await;
        let mut cfg = config(&[origin.addr]);
        cfg.upstream.first_byte_timeout = Duration::from_millis(500);
        let node = start(cfg).await;
        origin.fail_503();
        let got = node.get("/a").await;
        assert_eq!(got.status, 503);
        origin.hang();
        let got = node.get("/b").await;
        assert_eq!(got.status, 504);
        origin.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = node.get("/c").await;
        assert_eq!(got.status, 502);
        assert!(got.body.len() < 200);
    })
    .await;
}

/// must-revalidate forbids serving stale, even on error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_revalidate_is_never_served_stale() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, must-revalidate").await;
        origin.fail_503();
        let got = node.get("/s").await;
        assert_eq!(got.status, 503);
    })
    .await;
}

/// stale-while-revalidate: the stale copy is served at once and one background refresh runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_and_refreshes() {
    within(30, async {
        let origin = Origin::start(|_, n| {
            Reply::ok(format!("v{n}"))
                .cc("max-age=1, stale-while-revalidate=30")
                .delay_ms(300)
        })
        .await;
        let node = start(config(&[origin.addr])).await;
        assert_eq!(node.get("/swr").await.text(), "v1");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let started = std::time::Instant::now();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(node.get("/swr").await);
        }
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "stale answers do not wait for the origin"
        );
        for g in &seen {
            assert_eq!(g.text(), "v1");
        }
        assert!(seen[0].cache_status().contains("stale-while-revalidate"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(origin.count("/swr"), 2, "exactly one background refresh");
        assert_eq!(node.get("/swr").await.text(), "v2");
    })
    .await;
}

/// A herd on a stale object while the origin fails: everyone gets the stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_on_failing_origin_gets_stale() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, stale-if-error=60").await;
        origin.fail_503();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, a) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                send(&c, a, http::Method::GET, "/s", &[], bytes::Bytes::new()).await
            }));
        }
        for t in tasks {
            let g = t.await.unwrap();
            assert_eq!(g.status, 200);
            assert_eq!(g.text(), "good 1");
        }
    })
    .await;
}
