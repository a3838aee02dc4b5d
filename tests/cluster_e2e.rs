//! A PoP of real lacquer nodes (two edges, two shards) on distinct loopback addresses
//! in front of one origin: each object is fetched from the origin once per PoP, a
//! cluster-scoped purge reaches every node, and a dead shard's keys move.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;
use support::*;

fn free_addr(ip: [u8; 4]) -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::from(ip), 0)).unwrap();
    l.local_addr().unwrap()
}

struct Member {
    name: &'static str,
    role: &'static str,
    public: SocketAddr,
    admin: SocketAddr,
}

/// Start a PoP: `members` as (name, role, last octet of 127.0.0.x) in front of `origin`.
async fn pop(
    origin: SocketAddr,
    spec: &[(&'static str, &'static str, u8)],
) -> (Vec<Member>, Vec<Node>) {
    pop_with(origin, spec, "").await
}

/// `pop` with extra `[cluster]` lines.
async fn pop_with(
    origin: SocketAddr,
    spec: &[(&'static str, &'static str, u8)],
    cluster_extra: &str,
) -> (Vec<Member>, Vec<Node>) {
    let members = members(spec);
    let all: Vec<&Member> = members.iter().collect();
    let mut nodes = Vec::new();
    for m in &members {
        nodes.push(start(node_config(m, &all, origin, cluster_extra)).await);
    }
    (members, nodes)
}

/// PoP members from (name, role, last octet of 127.0.0.x), on free ports.
fn members(spec: &[(&'static str, &'static str, u8)]) -> Vec<Member> {
    spec.iter()
        .map(|&(name, role, last)| Member {
            name,
            role,
            public: free_addr([127, 0, 0, last]),
            admin: free_addr([127, 0, 0, last]),
        })
        .collect()
}

/// The config of PoP member `m` that knows the peers `peers`.
fn node_config(m: &Member, peers: &[&Member], origin: SocketAddr, cluster_extra: &str) -> Config {
    let peers: String = peers
        .iter()
        .map(|p| {
            format!(
                "  {{ name = \"{}\", address = \"{}\", admin = \"{}\", role = \"{}\" }},\n",
                p.name, p.public, p.admin, p.role
            )
        })
        .collect();
    let text = format!(
        "[node]\nname = \"{}\"\nrole = \"{}\"\n[[listen]]\naddress = \"{}\"\n[[origin]]\naddress = \"{}\"\n[origin.health]\nenabled = false\n[admin]\naddress = \"{}\"\n[log]\naccess_log = false\n[cluster]\nenabled = true\nhealth_interval = \"100ms\"\nfall = 1\nramp_up = \"0s\"\n{cluster_extra}peers = [\n{peers}]\n",
        m.name, m.role, m.public, origin, m.admin
    );
    Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// 3 edges + 3 shards: a herd spread over all edges makes exactly one origin request;
/// a purge by surrogate key is acknowledged by all six nodes; killing a shard under
/// traffic fails no request and moves only that shard's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_three_shards_herd_purge_and_failover() {
    within(60, async {
        let origin = Origin::start(|s, _| {
            let delay = if s.path == "/herd" { 500 } else { 0 };
            Reply::ok("hello")
                .cc("max-age=300")
                .header("surrogate-key", "all")
                .delay_ms(delay)
        })
        .await;
        let (members, mut nodes) = pop(
            origin.addr,
            &[
                ("e1", "edge", 41),
                ("e2", "edge", 42),
                ("e3", "edge", 43),
                ("s1", "shard", 44),
                ("s2", "shard", 45),
                ("s3", "shard", 46),
            ],
        )
        .await;
        // Edges started before the shards saw them down; let health checks (100 ms,
        // rise 2) bring them up before the herd.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let edges: Vec<SocketAddr> = nodes[..3].iter().map(|n| n.addr).collect();
        let mut herd = Vec::new();
        for i in 0..300 {
            let (c, addr) = (client(), edges[i % 3]);
            herd.push(tokio::spawn(async move {
                send(
                    &c,
                    addr,
                    http::Method::GET,
                    "/herd",
                    &[("host", "example.com")],
                    bytes::Bytes::new(),
                )
                .await
            }));
        }
        for h in herd {
            let g = h.await.unwrap();
            assert_eq!(g.status, 200);
            assert_eq!(g.text(), "hello");
        }
        assert_eq!(
            origin.count("/herd"),
            1,
            "one origin request for the whole PoP"
        );

        // Fill 60 keys through one edge, then purge them all by surrogate key.
        for i in 0..60 {
            nodes[0]
                .get_with(&format!("/k{i}"), &[("host", "example.com")])
                .await;
        }
        let answer = admin_call(
            members[0].admin,
            http::Method::POST,
            "/purge",
            r#"{"surrogate_keys":["all"],"scope":"cluster"}"#,
        )
        .await;
        let acked = answer["nodes"].as_array().unwrap();
        assert_eq!(acked.len(), 6, "{answer}");
        assert!(acked.iter().all(|n| n["ok"] == true), "{answer}");
        for i in 0..60 {
            nodes[1]
                .get_with(&format!("/k{i}"), &[("host", "example.com")])
                .await;
        }
        let before: usize = (0..60).map(|i| origin.count(&format!("/k{i}"))).sum();
        assert_eq!(before, 120, "every key refetched once after the purge");

        // Kill s3 and keep asking: no errors; only s3's keys are fetched again.
        let s3 = nodes.pop().unwrap();
        s3.stop().await;
        for i in 0..60 {
            let g = nodes[2]
                .get_with(&format!("/k{i}"), &[("host", "example.com")])
                .await;
            assert_eq!(g.status, 200, "k{i} after a shard died");
        }
        let moved: usize = (0..60)
            .map(|i| origin.count(&format!("/k{i}")))
            .sum::<usize>()
            - before;
        assert!(
            moved > 0 && moved < 40,
            "about a third of the keys moved, got {moved} of 60"
        );
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_pop_fetches_each_object_once_and_purges_everywhere() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("hello").cc("max-age=300")).await;
        let (members, mut nodes) = pop(
            origin.addr,
            &[
                ("edge-1", "edge", 31),
                ("edge-2", "edge", 32),
                ("shard-a", "shard", 33),
                ("shard-b", "shard", 34),
            ],
        )
        .await;
        let host = [("host", "example.com")];
        for path in ["/a", "/b", "/c", "/d"] {
            for edge in &nodes[..2] {
                let got = edge.get_with(path, &host).await;
                assert_eq!(got.status, 200);
                assert_eq!(got.text(), "hello");
                let via = got.header("via").unwrap_or("");
                assert!(via.contains("shard-"), "filled through a shard: {via}");
            }
            assert_eq!(
                origin.count(path),
                1,
                "{path}: once per PoP, not once per edge"
            );
        }

        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        assert_eq!(status["role"], "edge");
        assert_eq!(status["shards"], 2);

        let answer = admin_call(
            members[0].admin,
            http::Method::POST,
            "/purge",
            r#"{"urls":["http://example.com/a"],"scope":"cluster"}"#,
        )
        .await;
        assert_eq!(answer["scope"], "cluster");
        let acked = answer["nodes"].as_array().unwrap();
        assert_eq!(acked.len(), 4, "{answer}");
        assert!(acked.iter().all(|n| n["ok"] == true), "{answer}");
        nodes[1].get_with("/a", &host).await;
        assert_eq!(origin.count("/a"), 2, "purged on the shard too");

        // Stop both shards: the edges go to the origin themselves.
        let shard_b = nodes.pop().unwrap();
        let shard_a = nodes.pop().unwrap();
        shard_a.stop().await;
        shard_b.stop().await;
        let got = nodes[0].get_with("/e", &host).await;
        assert_eq!(got.status, 200);
        assert_eq!(origin.count("/e"), 1);
        let _ = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// Measurement, not a check (run with `--ignored --nocapture`): purge propagation
/// latency across a 6-node PoP, as acknowledged per node by the cluster purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: prints purge propagation latency percentiles"]
async fn measure_purge_propagation_latency() {
    within(120, async {
        let origin = Origin::start(|_, _| Reply::ok("x").cc("max-age=300").header("surrogate-key", "t")).await;
        let (members, nodes) = pop(
            origin.addr,
            &[
                ("e1", "edge", 51),
                ("e2", "edge", 52),
                ("e3", "edge", 53),
                ("s1", "shard", 54),
                ("s2", "shard", 55),
                ("s3", "shard", 56),
            ],
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let mut per_node = Vec::new();
        let mut whole = Vec::new();
        for i in 0..200 {
            nodes[i % 3].get_with(&format!("/p{i}"), &[("host", "example.com")]).await;
            let started = std::time::Instant::now();
            let answer = admin_call(
                members[0].admin,
                http::Method::POST,
                "/purge",
                r#"{"surrogate_keys":["t"],"scope":"cluster"}"#,
            )
            .await;
            whole.push(started.elapsed().as_secs_f64() * 1000.0);
            for n in answer["nodes"].as_array().unwrap() {
                assert_eq!(n["ok"], true, "{answer}");
                if let Some(ms) = n["latency_ms"].as_f64() {
                    per_node.push(ms);
                }
            }
        }
        let pct = |v: &mut Vec<f64>, p: f64| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[((v.len() as f64 - 1.0) * p).round() as usize]
        };
        println!(
            "purge propagation over 6 nodes, 200 purges: per-peer ack p50 {:.2} ms p99 {:.2} ms; whole cluster purge p50 {:.2} ms p99 {:.2} ms",
            pct(&mut per_node, 0.5),
            pct(&mut per_node, 0.99),
            pct(&mut whole, 0.5),
            pct(&mut whole, 0.99)
        );
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// Membership change without restart: an edge reloaded with a third shard rebuilds its
/// ring and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_shard_without_restart() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("m").cc("max-age=300")).await;
        let (members, nodes) = pop(
            origin.addr,
            &[
                ("m-e1", "edge", 61),
                ("m-s1", "shard", 62),
                ("m-s2", "shard", 63),
                ("m-s3", "shard", 64),
            ],
        )
        .await;
        // Rebuild the edge's view from a config that lists only two of the shards, then
        // reload it with all three.
        let live = nodes[0].running.as_ref().unwrap().live.clone();
        let two = node_config(
            &members[0],
            &[&members[0], &members[1], &members[2]],
            origin.addr,
            "",
        );
        live.reload(two).await.unwrap();
        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        assert_eq!(status["shards"], 2, "{status}");
        let three = node_config(
            &members[0],
            &[&members[0], &members[1], &members[2], &members[3]],
            origin.addr,
            "",
        );
        let note = live.reload(three).await.unwrap();
        assert!(note.contains("cluster view"), "{note}");
        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        assert_eq!(status["shards"], 3, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        for i in 0..30 {
            let g = nodes[0]
                .get_with(&format!("/m{i}"), &[("host", "example.com")])
                .await;
            assert_eq!(g.status, 200);
        }
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// A push with `scope=cluster` lands on the owning shard (and, with `edges=true`, in
/// the edges' caches): both edges then serve it without asking the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_push_reaches_the_owner_and_edges() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("from origin").cc("max-age=300")).await;
        let (members, nodes) = pop(
            origin.addr,
            &[
                ("p-e1", "edge", 71),
                ("p-e2", "edge", 72),
                ("p-s1", "shard", 73),
                ("p-s2", "shard", 74),
            ],
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let got = send(
            &client(),
            members[0].admin,
            http::Method::PUT,
            "/objects?url=http://example.com/live&ttl=300&scope=cluster&edges=true",
            &[("content-type", "text/plain")],
            bytes::Bytes::from_static(b"pushed"),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        let answer: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert!(
            answer["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["ok"] == true),
            "{answer}"
        );
        for edge in &nodes[..2] {
            let g = edge.get_with("/live", &[("host", "example.com")]).await;
            assert_eq!(g.text(), "pushed");
        }
        assert_eq!(origin.count("/live"), 0, "served from pushed copies");
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// A pull pre-warm with `scope: cluster` fetches each URL once, on its owning shard,
/// and with `edges: true` warms every edge too (from the shard, not the origin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_prewarm_fills_owners_and_edges() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("warm").cc("max-age=300")).await;
        // Edges keep only hot keys by default; here they keep everything they fetch.
        let (members, nodes) = pop_with(
            origin.addr,
            &[
                ("w-e1", "edge", 81),
                ("w-e2", "edge", 82),
                ("w-s1", "shard", 83),
                ("w-s2", "shard", 84),
            ],
            "hot_key_threshold = 0\n",
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let urls: Vec<String> = (0..20)
            .map(|i| format!("http://example.com/w{i}"))
            .collect();
        let body =
            serde_json::json!({ "urls": urls, "scope": "cluster", "edges": true }).to_string();
        let got = send(
            &client(),
            members[0].admin,
            http::Method::POST,
            "/prewarm",
            &[("content-type", "application/json")],
            bytes::Bytes::from(body),
        )
        .await;
        assert_eq!(got.status, 202, "{}", got.text());
        // One job id for the whole cluster job; its status sums every node's part.
        let started: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        let id = started["id"].as_u64().expect("a cluster job id");
        let mut job = serde_json::Value::Null;
        for _ in 0..100 {
            job = admin_call(
                members[0].admin,
                http::Method::GET,
                &format!("/prewarm/{id}"),
                "",
            )
            .await;
            if job["state"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["scope"], "cluster", "{job}");
        // Each URL once on its owning shard, and 20 on each of the two edges.
        assert_eq!(job["total"], 60, "{job}");
        assert_eq!(job["done"], 60, "{job}");
        assert_eq!(job["nodes"].as_array().map(Vec::len), Some(4), "{job}");
        let elapsed = job["elapsed_ms"].as_u64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = admin_call(
            members[0].admin,
            http::Method::GET,
            &format!("/prewarm/{id}"),
            "",
        )
        .await;
        assert_eq!(
            again["elapsed_ms"].as_u64(),
            Some(elapsed),
            "a finished job's time stays"
        );
        for i in 0..20 {
            assert_eq!(
                origin.count(&format!("/w{i}")),
                1,
                "w{i} fetched once for the PoP"
            );
            for edge in &nodes[..2] {
                let g = edge
                    .get_with(&format!("/w{i}"), &[("host", "example.com")])
                    .await;
                assert!(g.is_hit(), "w{i} warm on every edge: {}", g.cache_status());
            }
        }
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// A slow upload through an edge to its shard is bounded by the body's idle timer, not
/// by the first-byte timeout (issue 11, finding 2, on the cluster hop: the edge's own
/// forward timer used to start before the body was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upload_through_an_edge_is_not_cut() {
    within(30, async {
        let origin = Origin::start(|s, _| Reply::ok(format!("got {} bytes", s.body.len()))).await;
        let members = members(&[("e1", "edge", 61), ("s1", "shard", 62)]);
        let all: Vec<&Member> = members.iter().collect();
        let mut nodes = Vec::new();
        for m in &members {
            let mut cfg = node_config(m, &all, origin.addr, "");
            cfg.upstream.first_byte_timeout = std::time::Duration::from_secs(1);
            nodes.push(start(cfg).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(nodes[0].addr).await.unwrap();
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // 2,000 bytes over 2 s: twice the first-byte timeout.
        for _ in 0..20 {
            s.write_all(&[b'x'; 100]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
            .await;
        let resp = String::from_utf8_lossy(&out);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("got 2000 bytes"), "{resp}");
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// An edge's stale copy stands in when the owning shard does not answer in time, and
/// the stale metric and Cache-Status blame the shard, not the origin (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_shard_is_counted_as_the_shards_timeout() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("v1").cc("max-age=1, stale-if-error=60")).await;
        let members = members(&[("e1", "edge", 63), ("s1", "shard", 64)]);
        let all: Vec<&Member> = members.iter().collect();
        let mut nodes = Vec::new();
        for m in &members {
            // hot_key_threshold = 0: the edge keeps every key, so it has a stale copy.
            let mut cfg = node_config(m, &all, origin.addr, "hot_key_threshold = 0\n");
            // The edge gives up on its shard long before the shard gives up on the origin.
            let first_byte = if m.role == "edge" { 300 } else { 3_000 };
            cfg.upstream.first_byte_timeout = std::time::Duration::from_millis(first_byte);
            cfg.cache.stale_on_slow = std::time::Duration::ZERO;
            nodes.push(start(cfg).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let host = [("host", "example.com")];
        let first = nodes[0].get_with("/obj", &host).await;
        assert_eq!((first.status, first.text()), (200, "v1".to_string()));
        origin.hang();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let stale = nodes[0].get_with("/obj", &host).await;
        assert_eq!((stale.status, stale.text()), (200, "v1".to_string()));
        assert!(
            stale.cache_status().contains("shard timeout"),
            "{}",
            stale.cache_status()
        );
        let metrics = nodes[0].running.as_ref().unwrap().proxy().metrics_text();
        assert!(
            metrics.contains(r#"lacquer_stale_served_total{reason="shard-timeout"} 1"#),
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("stale_served"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(!metrics.contains(r#"reason="origin-timeout""#));
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// A site's answers, limits and edits apply once, on the edge: the shard a request is
/// forwarded to does not limit the edge as if it were the client, nor add its edits a
/// second time (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_rules_apply_once_through_an_edge() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("page").cc("max-age=60")).await;
        let members = members(&[("e1", "edge", 71), ("s1", "shard", 72)]);
        let all: Vec<&Member> = members.iter().collect();
        let mut nodes = Vec::new();
        for m in &members {
            let mut cfg = node_config(m, &all, origin.addr, "");
            let site = Config::parse(
                &format!(
                    "[[origin]]\naddress = \"{}\"\n[[site]]\nname = \"www\"\nhosts = [\"example.com\"]\nrate_limit = {{ rate = 0.01, burst = 2 }}\nrequest_headers = {{ add = {{ \"x-site\" = \"{{site}}\" }} }}\nresponse_headers = {{ add = {{ \"x-result\" = \"{{cache}}\" }} }}\n",
                    origin.addr
                ),
                "t.toml",
            )
            .unwrap();
            cfg.site = site.site;
            nodes.push(start(cfg).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let edge = &nodes[0];
        for (i, path) in ["/a", "/b", "/c"].iter().enumerate() {
            let got = edge.get_with(path, &[("host", "example.com")]).await;
            assert_eq!(got.status, 200, "request {i}: {}", got.text());
            let results: Vec<_> = got.headers.get_all("x-result").iter().collect();
            assert_eq!(results.len(), 1, "{:?}", got.headers);
        }
        let got = edge.get_with("/d", &[("host", "example.com")]).await;
        assert_eq!(got.status, 429, "burst + 1 = 3 at once, counted on the edge only");
        for seen in origin.requests() {
            let sites: Vec<_> = seen.headers.get_all("x-site").iter().collect();
            assert_eq!(sites, ["www"], "{}: {:?}", seen.path, seen.headers);
        }
        assert_eq!(origin.total(), 3);
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// A shard that hangs (stopped, wedged: connections are accepted, nothing is answered)
/// used to hold every request sent to it until the origin's first-byte timeout (30 s),
/// then answer 504, with nothing retried on the next owner. Now the edge probes a shard
/// that is slow past `cluster.first_byte_timeout`, finds it silent, marks it down and
/// sends the request to the next owner: every client gets its answer, none a 504, and
/// within a few seconds instead of 30.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_shard_costs_a_second_not_a_504() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("fresh").cc("max-age=300")).await;
        let members = members(&[("h-e1", "edge", 81), ("h-s1", "shard", 82), ("h-s2", "shard", 83)]);
        let all: Vec<&Member> = members.iter().collect();
        // h-s1 is hung: its ports accept connections and never answer. The listeners'
        // backlogs hold the connections as a stopped process's would.
        let hung_public = std::net::TcpListener::bind(members[1].public).unwrap();
        let hung_admin = std::net::TcpListener::bind(members[1].admin).unwrap();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for l in [hung_public, hung_admin] {
            let held = held.clone();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    held.lock().unwrap().push(s);
                }
            });
        }
        let mut nodes = Vec::new();
        for m in [&members[0], &members[2]] {
            // Health checks that would take 20 s to notice: the edge must find out from
            // the requests themselves, as in the seconds before a real mark-down.
            let mut cfg = node_config(
                m,
                &all,
                origin.addr,
                "health_timeout = \"20s\"\nfirst_byte_timeout = \"1s\"\nconnect_timeout = \"300ms\"\n",
            );
            cfg.upstream.first_byte_timeout = std::time::Duration::from_secs(30);
            nodes.push(start(cfg).await);
        }
        let edge = std::sync::Arc::new(nodes.remove(0));
        let host = [("host", "example.com")];
        let mut tasks = Vec::new();
        for i in 0..40 {
            let edge = edge.clone();
            tasks.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let got = edge.get_with(&format!("/k{i}"), &host).await;
                (got.status, got.text(), started.elapsed())
            }));
        }
        let mut slowest = std::time::Duration::ZERO;
        for t in tasks {
            let (status, text, took) = t.await.unwrap();
            assert_eq!((status, text.as_str()), (200, "fresh"));
            slowest = slowest.max(took);
        }
        // The figure for the issue's note (before: 30 s, then a 504).
        println!("hung shard: 40 clients, slowest answered in {slowest:?}, no 504");
        assert!(
            slowest < std::time::Duration::from_secs(10),
            "a client waited {slowest:?}, as for the origin's first-byte timeout"
        );
        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        let s1 = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "h-s1")
            .unwrap();
        assert_eq!(s1["up"], false, "{status}");
        // Marked down: later requests do not wait at all for it.
        let got = edge.get_with("/after", &host).await;
        assert_eq!(got.status, 200);
        let metrics = edge.running.as_ref().unwrap().proxy().metrics_text();
        assert!(!metrics.contains(r#"status="504""#), "no 504");
        match std::sync::Arc::try_unwrap(edge) {
            Ok(e) => e.stop().await,
            Err(_) => panic!("edge still shared"),
        }
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// The other side of the hung-shard rule: a shard that is slow because its origin is
/// slow answers the edge's probe, and is waited for; the request is not sent to a
/// second shard (which would fetch from the origin again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_waiting_on_a_slow_origin_is_waited_for() {
    within(30, async {
        let origin =
            Origin::start(|_, _| Reply::ok("slow").cc("max-age=300").delay_ms(2_500)).await;
        let (members, nodes) = pop_with(
            origin.addr,
            &[
                ("w-e1", "edge", 84),
                ("w-s1", "shard", 85),
                ("w-s2", "shard", 86),
            ],
            "first_byte_timeout = \"500ms\"\n",
        )
        .await;
        let got = nodes[0].get_with("/slow", &[("host", "example.com")]).await;
        assert_eq!((got.status, got.text().as_str()), (200, "slow"));
        assert_eq!(origin.count("/slow"), 1, "fetched once, by the owner");
        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        assert!(
            status["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["up"] == true),
            "{status}"
        );
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// The hop marker is believed only when it is signed with the cluster token for the
/// request: a client that knows the header's name, even from a peer's own address,
/// cannot make an edge skip its shards; and no origin ever sees the marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_marker_must_be_signed_by_a_peer() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("v").cc("max-age=300")).await;
        let token = temp_path("hop-token");
        std::fs::write(&token, "a-cluster-token-of-some-length\n").unwrap();
        let extra = format!("token_file = \"{}\"\n", token.display());
        let (members, nodes) =
            pop_with(origin.addr, &[("g-e1", "edge", 87), ("g-s1", "shard", 88)], &extra).await;
        all_up(members[0].admin).await;
        // Through the edge, signed: the shard believes it and fetches once.
        let got = nodes[0].get_with("/signed", &[("host", "example.com")]).await;
        assert!(got.header("via").unwrap_or("").contains("g-s1"), "{:?}", got.headers);
        assert_eq!(origin.count("/signed"), 1);
        let seen = origin.requests();
        assert!(
            seen.iter().all(|s| !s.headers.contains_key("x-lacquer-hop")),
            "the marker reached the origin"
        );
        // A forged marker from the shard's own address (a client on the peer's host).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(members[1].public.ip(), 0)).unwrap();
        let mut s = socket.connect(members[0].public).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /forged HTTP/1.1\r\nhost: example.com\r\nx-lacquer-hop: g-s1\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        let via = answer.lines().find(|l| l.starts_with("via:")).unwrap_or("");
        assert!(via.contains("g-s1"), "the edge skipped its shard for a forged marker: {answer}");
        // A forged marker sent to the shard from the edge's own address, claiming
        // https: believed, it would set the scheme of the cache key and of
        // X-Forwarded-Proto toward the origin.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(members[0].public.ip(), 0)).unwrap();
        let mut s = socket.connect(members[1].public).await.unwrap();
        s.write_all(b"GET /claimed HTTP/1.1\r\nhost: example.com\r\nx-lacquer-hop: g-e1\r\nx-forwarded-proto: https\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        let seen = origin.last().unwrap();
        assert_eq!(seen.path, "/claimed");
        assert_eq!(
            seen.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            Some("http"),
            "the shard believed a forged marker"
        );
        assert!(
            origin.requests().iter().all(|s| !s.headers.contains_key("x-lacquer-hop")),
            "the marker reached the origin"
        );
        for n in nodes {
            n.stop().await;
        }
        let _ = std::fs::remove_file(&token);
    })
    .await;
}

/// The command-line client reaches the whole PoP: `purge --scope cluster` answers per
/// node, `prewarm --scope cluster --edges` follows the cluster job to its end, and
/// `--edges` without the cluster scope is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_purges_and_prewarms_a_pop() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("c").cc("max-age=300")).await;
        let (members, nodes) = pop_with(
            origin.addr,
            &[("c-e1", "edge", 89), ("c-s1", "shard", 90)],
            "hot_key_threshold = 0\n",
        )
        .await;
        all_up(members[0].admin).await;
        let run = |args: Vec<String>| {
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
                    .args(&args)
                    .output()
                    .unwrap();
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
        };
        let admin = members[0].admin.to_string();
        let list = temp_path("cli-urls");
        std::fs::write(&list, "http://example.com/p1\nhttp://example.com/p2\n").unwrap();
        let args = |a: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            v.extend(["--admin".to_string(), admin.clone()]);
            v
        };
        let l = list.display().to_string();
        let (ok, out, err) = run(args(&["prewarm", &l, "--scope", "cluster", "--edges"]))
            .await
            .unwrap();
        assert!(ok, "{out}{err}");
        assert!(out.contains("done: 4 URLs, 4 fetched, 0 failed"), "{out}");
        assert_eq!(origin.count("/p1"), 1);
        let (ok, out, err) = run(args(&[
            "purge",
            "http://example.com/p1",
            "--scope",
            "cluster",
        ]))
        .await
        .unwrap();
        assert!(ok, "{out}{err}");
        assert!(out.contains("c-e1: purged 1 objects"), "{out}");
        assert!(out.contains("c-s1: purged 1 objects"), "{out}");
        let (ok, _, err) = run(args(&["prewarm", &l, "--edges"])).await.unwrap();
        assert!(!ok);
        assert!(err.contains("--edges goes with --scope cluster"), "{err}");
        for n in nodes {
            n.stop().await;
        }
        let _ = std::fs::remove_file(&list);
    })
    .await;
}

/// RFC 9211 through the tier: each cache adds its own `Cache-Status` entry, named after
/// the node, after the upstream's; an edge passing on a shard's hit shows it, and an
/// entry is never stored and replayed on later hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_lists_the_shard_and_the_edge() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("cs").cc("max-age=300")).await;
        let (members, nodes) = pop(
            origin.addr,
            &[("cs-e1", "edge", 91), ("cs-s1", "shard", 92)],
        )
        .await;
        all_up(members[0].admin).await;
        let host = [("host", "example.com")];
        let first = nodes[0].get_with("/cs", &host).await;
        let entries: Vec<&str> = first.cache_statuses().split(", ").collect();
        assert_eq!(entries.len(), 2, "{}", first.cache_statuses());
        assert!(
            entries[0].starts_with("cs-s1; fwd=") && entries[0].contains("stored"),
            "{entries:?}"
        );
        assert!(entries[1].starts_with("cs-e1; fwd="), "{entries:?}");
        // Not hot: the edge keeps no copy, and the shard's hit shows.
        let second = nodes[0].get_with("/cs", &host).await;
        let entries: Vec<&str> = second.cache_statuses().split(", ").collect();
        assert_eq!(entries.len(), 2, "{}", second.cache_statuses());
        assert!(entries[0].starts_with("cs-s1; hit"), "{entries:?}");
        assert!(entries[1].starts_with("cs-e1; fwd="), "{entries:?}");
        // On the shard itself, a hit is its entry alone: nothing stored is replayed.
        let direct = send(
            &client(),
            members[1].public,
            http::Method::GET,
            "/cs",
            &host,
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(
            direct.cache_statuses().split(", ").count(),
            1,
            "{}",
            direct.cache_statuses()
        );
        assert!(direct.is_hit());
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// Wait until every member of the PoP is up as the first node sees it.
async fn all_up(admin: SocketAddr) {
    for _ in 0..100 {
        let status = admin_call(admin, http::Method::GET, "/cluster", "").await;
        if status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["up"] == true)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the PoP never came up");
}

/// Issue 17 finding 1: when an edge revalidates its copy with the shard, the shard's
/// 304 carries every stored field, so fields the origin changed under the same ETag
/// (here X-Frame-Options and Content-Type, sent on the origin's 304) reach the edge's
/// copy and its clients, instead of the edge serving the old values for as long as the
/// ETag lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shards_304_updates_the_edges_copy() {
    within(30, async {
        let changed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c2 = changed.clone();
        let origin = Origin::start(move |s, _| {
            let new = c2.load(std::sync::atomic::Ordering::SeqCst);
            let (xfo, ctype) = if new {
                ("SAMEORIGIN", "text/html; charset=utf-8")
            } else {
                ("DENY", "text/html")
            };
            let conditional = s
                .headers
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"");
            let reply = if conditional {
                Reply::ok("").status(304)
            } else {
                Reply::ok("page")
            };
            reply
                .cc("max-age=1")
                .header("etag", "\"v1\"")
                .header("x-frame-options", xfo)
                .header("content-type", ctype)
        })
        .await;
        let (members, nodes) = pop_with(
            origin.addr,
            &[("u-e1", "edge", 93), ("u-s1", "shard", 94)],
            "hot_key_threshold = 0\n",
        )
        .await;
        all_up(members[0].admin).await;
        let host = [("host", "example.com")];
        let first = nodes[0].get_with("/u", &host).await;
        assert_eq!(first.header("x-frame-options"), Some("DENY"));
        assert!(
            nodes[0].get_with("/u", &host).await.is_hit(),
            "the edge keeps a copy"
        );
        changed.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let revalidated = nodes[0].get_with("/u", &host).await;
        assert_eq!(revalidated.text(), "page");
        assert_eq!(
            revalidated.header("x-frame-options"),
            Some("SAMEORIGIN"),
            "{:?}",
            revalidated.headers
        );
        let hit = nodes[0].get_with("/u", &host).await;
        assert!(hit.is_hit(), "{}", hit.cache_statuses());
        assert_eq!(hit.header("x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(hit.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(origin.count("/u"), 2, "one fill, one revalidation");
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// Issue 17 finding 2: an edge that keeps no copy of a key sends the client's
/// validators and range to the shard, which answers 304 or 206 from its copy, instead
/// of the edge stripping them and relaying the full body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_passes_validators_and_ranges_to_its_shard() {
    within(30, async {
        let origin = Origin::start(|_, _| {
            Reply::ok("0123456789")
                .cc("max-age=300")
                .header("etag", "\"r1\"")
                .header("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT")
        })
        .await;
        // The default threshold: the edge keeps only hot keys, these are not.
        let (members, nodes) =
            pop(origin.addr, &[("v-e1", "edge", 95), ("v-s1", "shard", 96)]).await;
        all_up(members[0].admin).await;
        let host = ("host", "example.com");
        let full = nodes[0].get_with("/v", &[host]).await;
        assert_eq!(full.status, 200);
        let inm = nodes[0]
            .get_with("/v", &[host, ("if-none-match", "\"r1\"")])
            .await;
        assert_eq!(inm.status, 304, "{:?}", inm.headers);
        assert!(inm.body.is_empty());
        assert_eq!(inm.header("etag"), Some("\"r1\""));
        let ims = nodes[0]
            .get_with(
                "/v",
                &[host, ("if-modified-since", "Tue, 03 Nov 2026 10:00:00 GMT")],
            )
            .await;
        assert_eq!(ims.status, 304);
        let ranged = nodes[0]
            .get_with("/v", &[host, ("range", "bytes=2-4")])
            .await;
        assert_eq!(ranged.status, 206, "{:?}", ranged.headers);
        assert_eq!(ranged.text(), "234");
        assert_eq!(ranged.header("content-range"), Some("bytes 2-4/10"));
        let failed = nodes[0]
            .get_with("/v", &[host, ("if-match", "\"other\"")])
            .await;
        assert_eq!(failed.status, 412);
        let changed = nodes[0]
            .get_with("/v", &[host, ("if-none-match", "\"r0\"")])
            .await;
        assert_eq!(
            (changed.status, changed.text().as_str()),
            (200, "0123456789")
        );
        assert_eq!(
            origin.count("/v"),
            1,
            "every answer came from the shard's copy"
        );
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}

/// Issue 17 finding 4: `PURGE` on an edge's public port from an allowed address reaches
/// the whole PoP. Purged on the edge alone, the URL came back from the shard's copy on
/// the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_purge_on_an_edge_reaches_the_shard() {
    within(30, async {
        let origin = Origin::start(|_, n| Reply::ok(format!("v{n}")).cc("max-age=300")).await;
        let (members, nodes) = pop_with(
            origin.addr,
            &[("x-e1", "edge", 97), ("x-s1", "shard", 98)],
            "hot_key_threshold = 0\n",
        )
        .await;
        all_up(members[0].admin).await;
        let host = [("host", "example.com")];
        assert_eq!(nodes[0].get_with("/x", &host).await.text(), "v1");
        assert!(nodes[0].get_with("/x", &host).await.is_hit());
        let purge = nodes[0]
            .send(
                http::Method::from_bytes(b"PURGE").unwrap(),
                "/x",
                &host,
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(purge.status, 200, "{}", purge.text());
        let answer: Value = serde_json::from_slice(&purge.body).unwrap();
        assert_eq!(answer["purged"], 1, "{answer}");
        assert_eq!(answer["nodes"][0]["node"], "x-s1", "{answer}");
        assert_eq!(answer["nodes"][0]["ok"], true, "{answer}");
        let after = nodes[0].get_with("/x", &host).await;
        assert_eq!(
            after.text(),
            "v2",
            "the shard's copy was purged too: {}",
            after.cache_statuses()
        );
        assert_eq!(origin.count("/x"), 2);
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}
