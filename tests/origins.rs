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

/// Passive health: an origin answering 503 is taken out of rotation after `passive_fall`
/// consecutive failures, and after the cooldown one probe request brings it back.
#[tokio::test]
async fn passive_health_takes_a_failing_origin_out_and_back() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let mut cfg = config(&[a.addr, b.addr]);
        for o in &mut cfg.origin {
            o.health.passive_fall = 3;
            o.health.passive_cooldown = Duration::from_millis(500);
        }
        let node = start(cfg).await;
        a.fail_503();
        let mut statuses = Vec::new();
        for i in 0..20 {
            statuses.push(node.get(&format!("/down{i}")).await.status);
        }
        assert_eq!(
            a.total(),
            3,
            "503s that reached the failing origin: {statuses:?}"
        );
        assert_eq!(tally(statuses)[&200], 17);
        assert_eq!(
            node.get("/down-still").await.text(),
            "b",
            "still out of rotation"
        );
        assert_eq!(
            origin_up(&node, &a).await,
            0,
            "the health gauge shows it down"
        );

        a.heal();
        tokio::time::sleep(Duration::from_millis(600)).await;
        for i in 0..10 {
            let g = node.get(&format!("/up{i}")).await;
            assert_eq!(g.status, 200);
        }
        let back = a
            .requests()
            .iter()
            .filter(|s| s.path.starts_with("/up"))
            .count();
        assert_eq!(
            back, 5,
            "after the cooldown the healed origin gets its share again"
        );
        assert_eq!(origin_up(&node, &a).await, 1);
    })
    .await;
}

/// With `passive_5xx = false`, 5xx answers do not count: the origin stays in rotation.
#[tokio::test]
async fn passive_health_can_ignore_5xx() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let mut cfg = config(&[a.addr, b.addr]);
        for o in &mut cfg.origin {
            o.health.passive_fall = 2;
            o.health.passive_5xx = false;
        }
        let node = start(cfg).await;
        a.fail_503();
        for i in 0..10 {
            node.get(&format!("/x{i}")).await;
        }
        assert_eq!(a.total(), 5);
    })
    .await;
}

/// Connect errors open the circuit too: a stopped origin stops costing a failed connect
/// per request.
#[tokio::test]
async fn passive_health_counts_connect_errors() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let mut cfg = config(&[a.addr, b.addr]);
        for o in &mut cfg.origin {
            o.health.passive_fall = 2;
            o.health.passive_cooldown = Duration::from_secs(30);
        }
        cfg.upstream.retry = false;
        let node = start(cfg).await;
        a.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut statuses = Vec::new();
        for i in 0..10 {
            statuses.push(node.get(&format!("/c{i}")).await.status);
        }
        assert_eq!(
            tally(statuses)[&502],
            2,
            "only the first two requests found it down"
        );
    })
    .await;
}

/// The `lacquer_origin_up` gauge for `origin` (of the `[[origin]]` list, the `default`
/// group), from the admin API's /metrics.
async fn origin_up(node: &Node, origin: &Origin) -> i64 {
    let m = node.admin(http::Method::GET, "/metrics", None, "").await;
    let name = format!(
        "lacquer_origin_up{{group=\"default\",origin=\"{}\"}} ",
        origin.addr
    );
    m.text()
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {}", m.text()))
}
