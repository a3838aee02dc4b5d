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
        // Still the good copy the second time: the error did not replace it. Within
        // `error_backoff` (1 s) of the failure it is served without asking the origin.
        let got = node.get("/s").await;
        assert_eq!(got.text(), "good 1");
        assert!(
            got.cache_status().contains("backoff"),
            "{}",
            got.cache_status()
        );
        assert_eq!(origin.count("/s"), 2);
        origin.heal();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let got = node.get("/s").await;
        assert_eq!(
            got.text(),
            "good 3",
            "after healing and the backoff, a fresh copy"
        );
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

/// Finding 1: a usable stale copy and a slow origin: past `stale_on_slow` every waiter gets
/// the stale copy while the fetch goes on and refreshes the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origin_herd_gets_stale_then_the_refresh_lands() {
    within(30, async {
        let origin = Origin::start(|_, n| {
            // The refresh is fresh for longer than its 1.5 s delay (which counts in its age).
            if n == 1 {
                Reply::ok("good 1").cc("max-age=1, stale-if-error=60")
            } else {
                Reply::ok(format!("good {n}")).cc("max-age=30").delay_ms(1500)
            }
        })
        .await;
        let mut cfg = config(&[origin.addr]);
        cfg.upstream.first_byte_timeout = Duration::from_secs(3);
        cfg.cache.stale_on_slow = Duration::from_millis(300);
        let node = start(cfg).await;
        assert_eq!(node.get("/slow").await.text(), "good 1");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, a) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                let g = send(&c, a, http::Method::GET, "/slow", &[], bytes::Bytes::new()).await;
                (g, started.elapsed())
            }));
        }
        let mut slowest = Duration::ZERO;
        let mut bodies = Vec::new();
        for t in tasks {
            let (g, took) = t.await.unwrap();
            slowest = slowest.max(took);
            bodies.push(g.text());
        }
        eprintln!(
            "50 clients, stale copy, origin 1.5 s slow: bodies {:?}, slowest {slowest:?}, origin requests {}",
            tally(bodies.iter().cloned()),
            origin.count("/slow")
        );
        assert!(bodies.iter().all(|b| b == "good 1"), "{:?}", tally(bodies));
        assert!(slowest < Duration::from_millis(1200), "stale served at {slowest:?}");
        assert_eq!(origin.count("/slow"), 2, "one refresh for the herd");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = node.get("/slow").await;
        assert_eq!(got.text(), "good 2", "the background fetch refreshed the cache");
        assert!(got.is_hit(), "{}", got.cache_status());
    })
    .await;
}

/// Finding 8: a stale copy and an origin answering 503 at once: requests keep getting the
/// stale copy, but the origin sees at most one refresh per `error_backoff`, not one per
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_origin_with_stale_copy_is_shielded() {
    within(30, async {
        let (origin, node) = cached_then_stale("max-age=1, stale-if-error=60").await;
        origin.fail_503();
        let before = origin.count("/s");
        let until = std::time::Instant::now() + Duration::from_millis(1500);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, a) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                while std::time::Instant::now() < until {
                    let g = send(&c, a, http::Method::GET, "/s", &[], bytes::Bytes::new()).await;
                    answers.push((g.status, g.text()));
                }
                answers
            }));
        }
        let mut total = 0;
        for t in tasks {
            for (status, text) in t.await.unwrap() {
                total += 1;
                assert_eq!((status, text.as_str()), (200, "good 1"));
            }
        }
        let refreshes = origin.count("/s") - before;
        eprintln!("{total} requests over 1.5 s on a 503 origin with a stale copy: {refreshes} origin requests");
        // error_backoff is 1 s by default: the first failure, then at most one retry per second.
        assert!(refreshes <= 3, "{refreshes} origin requests");
    })
    .await;
}

/// Finding 8: the optional negative cache: with `error_ttl`, a 5xx for a key with no stale
/// copy is answered from memory for that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_ttl_caches_a_5xx_briefly() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("x").cc("max-age=60")).await;
        origin.fail_503();
        let mut cfg = config(&[origin.addr]);
        cfg.cache.error_ttl = Duration::from_secs(1);
        let node = start(cfg).await;
        assert_eq!(node.get("/e").await.status, 503);
        let again = node.get("/e").await;
        assert_eq!(again.status, 503);
        assert_eq!(again.text(), "origin down");
        eprintln!(
            "error_ttl=1s: second request {} origin requests",
            origin.count("/e")
        );
        assert_eq!(origin.count("/e"), 1, "{}", again.cache_status());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(node.get("/e").await.status, 503);
        assert_eq!(origin.count("/e"), 2, "the negative entry expired");
    })
    .await;
}

/// Finding 14: a 503 with `max-age=600` is stored for at most `max_error_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_5xx_freshness_is_capped() {
    within(30, async {
        let origin =
            Origin::start(|_, n| Reply::ok(format!("busy {n}")).status(503).cc("max-age=600"))
                .await;
        let mut cfg = config(&[origin.addr]);
        // 2 s, not 1: the origin's Date has whole seconds, so the age at receipt is up to 1 s.
        cfg.cache.max_error_ttl = Duration::from_secs(2);
        let node = start(cfg).await;
        assert_eq!(node.get("/busy").await.text(), "busy 1");
        let again = node.get("/busy").await;
        assert!(
            again.is_hit(),
            "a fresh 5xx is still reused: {}",
            again.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let later = node.get("/busy").await;
        eprintln!(
            "503 max-age=600, max_error_ttl=2s, after 2.3 s: {:?} ({})",
            later.text(),
            later.cache_status()
        );
        assert_eq!(later.text(), "busy 2", "{}", later.cache_status());
    })
    .await;
}
