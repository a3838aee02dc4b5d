//! The origin pool: round-robin, active health checks, one retry on another origin.

mod support;

use std::time::Duration;

use support::*;

/// Requests are spread over the origins in turn.
#[tokio::test]
async fn round_robin_over_origins() {
    within(20, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let node = start(config(&[a.addr, b.addr])).await;
        for i in 0..10 {
            node.get(&format!("/rr{i}")).await;
        }
        assert_eq!(a.total(), 5);
        assert_eq!(b.total(), 5);
    })
    .await;
}

/// An idempotent request that cannot connect is retried once on another origin.
#[tokio::test]
async fn retry_on_another_origin() {
    within(20, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let node = start(config(&[a.addr, b.addr])).await;
        a.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..6 {
            let g = node.get(&format!("/retry{i}")).await;
            assert_eq!(g.status, 200, "request {i}");
            assert_eq!(g.text(), "b");
        }
    })
    .await;
}

/// A POST is not retried: it may have had effects.
#[tokio::test]
async fn post_is_not_retried() {
    within(20, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let node = start(config(&[a.addr, b.addr])).await;
        a.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let g = node
                .send(
                    http::Method::POST,
                    "/p",
                    &[],
                    bytes::Bytes::from_static(b"x"),
                )
                .await;
            statuses.push(g.status);
        }
        assert!(statuses.contains(&502), "{statuses:?}");
        assert!(statuses.contains(&200), "{statuses:?}");
    })
    .await;
}

/// Active health checks take a failing origin out of rotation and bring it back.
#[tokio::test]
async fn health_checks_mark_down_and_up() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let mut cfg = config(&[a.addr, b.addr]);
        for o in &mut cfg.origin {
            o.health.enabled = true;
            o.health.interval = Duration::from_millis(100);
            o.health.timeout = Duration::from_millis(200);
            o.health.fall = 2;
            o.health.rise = 2;
            o.health.path = "/health".into();
        }
        let node = start(cfg).await;
        a.fail_503();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before = a.count("/x");
        for _ in 0..6 {
            node.get("/x").await;
        }
        assert_eq!(a.count("/x"), before, "down origin gets no traffic");
        a.heal();
        tokio::time::sleep(Duration::from_millis(600)).await;
        for _ in 0..6 {
            node.get("/y").await;
        }
        assert!(a.count("/y") > 0, "recovered origin is used again");
    })
    .await;
}
