//! Origin groups through the library API, against real origins on 127.0.0.1: the
//! balancing modes, the in-flight count least-connections reads, hash affinity and its
//! failover, and what a rebuild keeps.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use lacquer::body::ProxyBody;
use lacquer::config::{Balance, OriginGroupConfig, ServerConfig};
use lacquer::metrics::Metrics;
use lacquer::origin::{OriginGroups, OriginPool, OriginRequest};
use support::*;

fn group(name: &str, balance: Balance, servers: &[(SocketAddr, u32)]) -> OriginGroupConfig {
    let mut g = OriginGroupConfig {
        name: name.to_owned(),
        servers: servers
            .iter()
            .map(|(addr, weight)| ServerConfig {
                address: addr.to_string(),
                weight: *weight,
            })
            .collect(),
        balance,
        ..OriginGroupConfig::default()
    };
    g.health.enabled = false;
    g
}

/// The pool of a one-group config.
fn pool_of(g: OriginGroupConfig) -> Arc<OriginPool> {
    let name = g.name.clone();
    let cfg = Config {
        origin_group: vec![g],
        ..Config::default()
    };
    let groups = OriginGroups::build(&cfg, None, &Arc::new(Metrics::new())).unwrap();
    groups.get(&name).unwrap().clone()
}

fn request(path: &str) -> OriginRequest {
    OriginRequest {
        method: Method::GET,
        path_and_query: PathAndQuery::try_from(path).unwrap(),
        headers: HeaderMap::new(),
        body: ProxyBody::empty(),
        retryable: true,
    }
}

/// Send and read the whole answer: which origin said what.
async fn get(pool: &OriginPool, path: &str, affinity: Option<u128>) -> String {
    let resp = match affinity {
        Some(a) => pool.send_with_affinity(request(path), a).await,
        None => pool.send(request(path)).await,
    }
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(resp.status(), 200, "{path}");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The pool's record of the origin at `addr`.
fn member(pool: &OriginPool, addr: SocketAddr) -> &lacquer::origin::Origin {
    pool.origins()
        .iter()
        .find(|o| o.address == addr.to_string())
        .unwrap()
}

/// Wait (the test's own bound applies) until `cond` holds.
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Start an origin on `addr` again once the old listener has let go of the port.
async fn restart(addr: SocketAddr, name: &'static str) -> Origin {
    while std::net::TcpListener::bind(addr).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Origin::start_on(addr, Arc::new(move |_: &Seen, _| Reply::ok(name))).await
}

#[tokio::test]
async fn round_robin_follows_the_weights() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let pool = pool_of(group(
            "rr",
            Balance::RoundRobin,
            &[(a.addr, 1), (b.addr, 2)],
        ));
        let mut got = Vec::new();
        for i in 0..300 {
            got.push(get(&pool, &format!("/rr{i}"), None).await);
        }
        let n = tally(got);
        assert!(n["a"].abs_diff(100) <= 10, "{n:?}");
        assert!(n["b"].abs_diff(200) <= 20, "{n:?}");
    })
    .await;
}

/// Two slow requests in flight on one server and one on the other: every new request goes
/// to the other. Abandoned requests leave the count.
#[tokio::test]
async fn least_connections_prefers_the_server_with_fewer_requests_in_flight() {
    within(30, async {
        let slow = |name: &'static str| {
            move |s: &Seen, _| {
                let r = Reply::ok(name);
                if s.path.starts_with("/slow") {
                    r.delay_ms(60_000)
                } else {
                    r
                }
            }
        };
        let a = Origin::start(slow("a")).await;
        let b = Origin::start(slow("b")).await;
        let pool = pool_of(group(
            "lc",
            Balance::LeastConnections,
            &[(a.addr, 1), (b.addr, 1)],
        ));
        let (ma, mb) = (member(&pool, a.addr), member(&pool, b.addr));
        let mut slow_requests = Vec::new();
        for i in 0..3 {
            let p = pool.clone();
            slow_requests.push(tokio::spawn(async move {
                let _ = p.send(request(&format!("/slow{i}"))).await;
            }));
            until(|| a.total() + b.total() == i + 1).await;
        }
        assert_eq!(ma.in_flight() + mb.in_flight(), 3);
        let (busy, idle) = if ma.in_flight() == 2 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        assert_eq!(ma.in_flight().min(mb.in_flight()), 1);
        for i in 0..10 {
            assert_eq!(
                get(&pool, &format!("/fast{i}"), None).await,
                idle,
                "not {busy}"
            );
            // The exchange ends once the body is read, a moment after the caller has it.
            until(|| ma.in_flight() + mb.in_flight() == 3).await;
        }
        for t in &slow_requests {
            t.abort();
        }
        until(|| ma.in_flight() + mb.in_flight() == 0).await;
    })
    .await;
}

/// A response whose body is dropped unread stays in flight until then.
#[tokio::test]
async fn an_unread_body_is_in_flight_until_dropped() {
    within(30, async {
        let o = RawOrigin::start(|_, _| {
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello".to_vec(),
                AfterReply::Hang,
            )
        })
        .await;
        let pool = pool_of(group("lc", Balance::LeastConnections, &[(o.addr, 1)]));
        let resp = pool.send(request("/half")).await.unwrap();
        let origin = member(&pool, o.addr);
        assert_eq!(origin.in_flight(), 1);
        drop(resp);
        until(|| origin.in_flight() == 0).await;
    })
    .await;
}

#[tokio::test]
async fn hash_keeps_an_affinity_on_one_server_and_spreads_by_weight() {
    within(60, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let c = Origin::start(|_, _| Reply::ok("c")).await;
        let pool = pool_of(group(
            "hash",
            Balance::Hash,
            &[(a.addr, 1), (b.addr, 1), (c.addr, 2)],
        ));
        let key = 0x5eed_u128 << 64 | 42;
        let first = get(&pool, "/k", Some(key)).await;
        for i in 0..20 {
            assert_eq!(get(&pool, &format!("/k{i}"), Some(key)).await, first);
        }
        // Without an affinity, the path and query place the request.
        let by_path = get(&pool, "/same?x=1", None).await;
        for _ in 0..5 {
            assert_eq!(get(&pool, "/same?x=1", None).await, by_path);
        }

        let mut got = Vec::new();
        for i in 0..2400u128 {
            got.push(get(&pool, "/spread", Some(i)).await);
        }
        let n = tally(got);
        // 4+ standard deviations wide: the ports, hence the placement, change every run.
        for (name, want) in [("a", 600), ("b", 600), ("c", 1200)] {
            assert!(n[name].abs_diff(want) <= want * 15 / 100, "{n:?}");
        }
    })
    .await;
}

/// A key whose server goes down moves to its second choice, the same one every time,
/// whatever other keys do; when the server is back, the key returns to it.
#[tokio::test]
async fn hash_fails_over_to_a_stable_second_choice_and_returns() {
    within(30, async {
        let names = ["a", "b", "c"];
        let mut origins = Vec::new();
        for name in names {
            origins.push(Some(Origin::start(move |_, _| Reply::ok(name)).await));
        }
        let addrs: Vec<SocketAddr> = origins.iter().flatten().map(|o| o.addr).collect();
        let mut g = group(
            "hash",
            Balance::Hash,
            &[(addrs[0], 1), (addrs[1], 1), (addrs[2], 1)],
        );
        g.health.enabled = true;
        g.health.path = "/health".into();
        g.health.interval = Duration::from_millis(100);
        g.health.timeout = Duration::from_millis(500);
        g.health.fall = 1;
        g.health.rise = 1;
        g.health.passive_fall = 1;
        g.health.passive_cooldown = Duration::from_millis(200);
        let pool = pool_of(g);
        assert_eq!(pool.spawn_health_checks(), 3);

        let key = 7_u128;
        let primary = get(&pool, "/k", Some(key)).await;
        let p = names.iter().position(|n| *n == primary).unwrap();
        let down = origins[p].take().unwrap();
        down.stop();
        drop(down);

        let mut second = Vec::new();
        for i in 0..15u128 {
            second.push(get(&pool, "/k", Some(key)).await);
            // Other keys' traffic moves no counter that placement reads.
            get(&pool, "/other", Some(1000 + i)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(second.iter().all(|s| *s == second[0]), "{second:?}");
        assert_ne!(second[0], primary);

        origins[p] = Some(restart(addrs[p], names[p]).await);
        while get(&pool, "/k", Some(key)).await != primary {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..10 {
            assert_eq!(get(&pool, "/k", Some(key)).await, primary);
        }
    })
    .await;
}

/// A rebuild keeps an unchanged group's pool, with what it learned about its servers and
/// its probe tasks; a changed group starts over, with probes of its own.
#[tokio::test]
async fn a_kept_group_keeps_its_health_state_and_a_changed_group_starts_fresh() {
    within(30, async {
        let x = Origin::start(|_, _| Reply::ok("x")).await;
        let y = Origin::start(|_, _| Reply::ok("y")).await;
        let mut cfg = Config::default();
        for (name, o) in [("kept", &x), ("changed", &y)] {
            let mut g = group(name, Balance::RoundRobin, &[(o.addr, 1)]);
            g.health.enabled = true;
            g.health.interval = Duration::from_secs(60);
            g.health.passive_fall = 1;
            g.health.passive_cooldown = Duration::from_secs(60);
            cfg.origin_group.push(g);
        }
        let metrics = Arc::new(Metrics::new());
        let first = OriginGroups::build(&cfg, None, &metrics).unwrap();
        assert_eq!(first.spawn_health_checks(), 2);
        assert_eq!(first.spawn_health_checks(), 0, "probes start once");

        x.stop();
        y.stop();
        for name in ["kept", "changed"] {
            let pool = first.get(name).unwrap();
            assert!(pool.send(request("/down")).await.is_err());
            assert!(!pool.origins()[0].is_healthy(), "{name}: circuit open");
        }
        let gauge = format!(
            "lacquer_origin_up{{group=\"kept\",origin=\"{}\"}} 0",
            x.addr
        );
        assert!(metrics.encode().contains(&gauge), "{}", metrics.encode());

        let mut next_cfg = cfg.clone();
        next_cfg.origin_group[1].servers[0].weight = 2;
        let next = OriginGroups::build(&next_cfg, Some(&first), &metrics).unwrap();
        let kept = next.get("kept").unwrap();
        assert!(Arc::ptr_eq(kept, first.get("kept").unwrap()));
        assert!(
            !kept.origins()[0].is_healthy(),
            "still down after the rebuild"
        );
        let changed = next.get("changed").unwrap();
        assert!(!Arc::ptr_eq(changed, first.get("changed").unwrap()));
        assert!(
            changed.origins()[0].is_healthy(),
            "a new pool starts healthy"
        );
        assert_eq!(next.spawn_health_checks(), 1, "only the new pool's probe");
        let text = metrics.encode();
        assert!(text.contains(&gauge), "{text}");
        let fresh = format!(
            "lacquer_origin_up{{group=\"changed\",origin=\"{}\"}} 1",
            y.addr
        );
        assert!(text.contains(&fresh), "{text}");
    })
    .await;
}

#[tokio::test]
async fn groups_by_name_and_the_default_group() {
    within(10, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let mut cfg = config(&[a.addr]);
        cfg.origin_group
            .push(group("images", Balance::Hash, &[(b.addr, 1)]));
        let groups = OriginGroups::build(&cfg, None, &Arc::new(Metrics::new())).unwrap();
        assert_eq!(groups.names().collect::<Vec<_>>(), ["default", "images"]);
        assert!(groups.get("videos").is_none(), "an unknown group");
        let default = groups.default_group().unwrap();
        assert_eq!(default.name(), "default");
        assert_eq!(get(default, "/", None).await, "a");
        let images = groups.get("images").unwrap();
        assert_eq!(images.balance(), Balance::Hash);
        assert_eq!(get(images, "/", Some(1)).await, "b");
    })
    .await;
}
