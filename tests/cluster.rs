//! The cluster module against real sockets: peers are small HTTP servers on distinct
//! loopback addresses (127.0.0.2, 127.0.0.3, ...), the cluster is built from a parsed
//! config, and every test bounds its own time.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lacquer::body::ProxyBody;
use lacquer::cache::key::{CacheKey, KeyRules};
use lacquer::cache::policy::{self, PolicyConfig};
use lacquer::cluster::{is_forwarded, Cluster, ForwardError, Peer, Ring, HOP_HEADER};
use lacquer::config::{Config, PeerConfig, PeerRole};
use lacquer::metrics::Metrics;
use lacquer::origin::OriginRequest;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test exceeded its {secs}s bound"),
    }
}

/// One request a peer server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    body: String,
    hop: Option<String>,
}

/// A stand-in lacquer node: public port answers with who it is, admin port takes
/// purge / push / prewarm and answers `/health`.
struct PeerServer {
    name: &'static str,
    public: SocketAddr,
    admin: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: Option<JoinHandle<()>>,
}

impl PeerServer {
    async fn start(name: &'static str, ip: [u8; 4]) -> PeerServer {
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        Self::start_on(
            name,
            SocketAddr::new(ip, 0),
            SocketAddr::new(ip, 0),
            Arc::default(),
        )
        .await
    }

    async fn start_on(
        name: &'static str,
        public: SocketAddr,
        admin: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
    ) -> PeerServer {
        let public_l = TcpListener::bind(public).await.unwrap();
        let admin_l = TcpListener::bind(admin).await.unwrap();
        let (public, admin) = (
            public_l.local_addr().unwrap(),
            admin_l.local_addr().unwrap(),
        );
        let log = seen.clone();
        // Connections live in a JoinSet owned by the task: aborting the task closes
        // them all, like a killed process.
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    Ok((s, _)) = public_l.accept() => s,
                    Ok((s, _)) = admin_l.accept() => s,
                };
                let log = log.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(name, log.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        PeerServer {
            name,
            public,
            admin,
            seen,
            task: Some(task),
        }
    }

    async fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        // Let clients' pools see the closed keep-alive connections.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    async fn restart(&mut self) {
        *self = Self::start_on(self.name, self.public, self.admin, self.seen.clone()).await;
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.starts_with(path))
            .cloned()
            .collect()
    }

    fn peer_line(&self, role: &str) -> String {
        format!(
            "  {{ name = \"{}\", address = \"{}\", admin = \"{}\", role = \"{role}\" }},\n",
            self.name, self.public, self.admin
        )
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn handle(
    name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let hop = parts
        .headers
        .get(HOP_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        hop: hop.clone(),
    });
    let (status, answer) = match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/health") => (200, json!({"status": "ok"})),
        ("POST", "/purge") => (
            200,
            json!({"scope": "node", "nodes": [{"node": name, "ok": true}], "total": {"urls": 1, "objects": 2}}),
        ),
        ("PUT", "/objects") => (201, json!({"stored": true})),
        ("POST", "/prewarm") => (202, json!({"job": "1"})),
        _ => (200, json!({"served_by": name})),
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    let h = resp.headers_mut();
    h.insert("x-served-by", HeaderValue::from_static(name));
    if let Some(hop) = hop {
        h.insert("x-saw-hop", HeaderValue::from_str(&hop).unwrap());
    }
    // What a shard sends back: the remaining freshness is max-age minus Age.
    h.insert("cache-control", HeaderValue::from_static("max-age=60"));
    h.insert("age", HeaderValue::from_static("50"));
    Ok(resp)
}

/// A cluster for node `me` with `role`, over `peers` (already formatted lines).
fn cluster(me: &str, role: &str, peers: &str, extra: &str) -> Arc<Cluster> {
    let origin = if role == "shard" {
        "[[origin]]\naddress = \"127.0.0.1:9\"\n"
    } else {
        ""
    };
    let text = format!(
        "[node]\nname = \"{me}\"\nrole = \"{role}\"\n{origin}[cluster]\nenabled = true\nconnect_timeout = \"300ms\"\nfanout_timeout = \"2s\"\nfanout_retries = 1\n{extra}\npeers = [\n{peers}]\n"
    );
    let cfg = Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    Cluster::new(&cfg, None, Arc::new(Metrics::new())).unwrap()
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(
        "http",
        "example.com",
        &format!("/obj/{i}"),
        &KeyRules::default(),
    )
}

fn get(path: &str) -> OriginRequest {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.com"));
    OriginRequest {
        method: Method::GET,
        path_and_query: PathAndQuery::try_from(path).unwrap(),
        headers,
        body: ProxyBody::empty(),
        retryable: true,
    }
}

async fn served_by(c: &Cluster, k: &CacheKey) -> Result<String, ForwardError> {
    let resp = c
        .send(k, get(k.url.trim_start_matches("http://example.com")))
        .await?;
    let by = resp.headers()["x-served-by"].to_str().unwrap().to_string();
    let _ = resp.into_body().collect().await;
    Ok(by)
}

async fn three_shards() -> Vec<PeerServer> {
    vec![
        PeerServer::start("shard-a", [127, 0, 0, 2]).await,
        PeerServer::start("shard-b", [127, 0, 0, 3]).await,
        PeerServer::start("shard-c", [127, 0, 0, 4]).await,
    ]
}

fn lines(servers: &[PeerServer], role: &str) -> String {
    servers.iter().map(|s| s.peer_line(role)).collect()
}

#[tokio::test]
async fn misses_go_to_the_owner_with_the_hop_marker() {
    within(20, async {
        let shards = three_shards().await;
        let edge = cluster("edge-1", "edge", &lines(&shards, "shard"), "");
        let mut per_shard = std::collections::HashMap::new();
        for i in 0..60 {
            let k = key(i);
            let owner = edge.ring().primary(k.hash).unwrap().name.clone();
            assert_eq!(served_by(&edge, &k).await.unwrap(), owner, "key {i}");
            *per_shard.entry(owner).or_insert(0) += 1;
        }
        assert_eq!(
            per_shard.len(),
            3,
            "every shard owns some keys: {per_shard:?}"
        );
        for s in &shards {
            for seen in s.seen("/obj/") {
                assert_eq!(seen.hop.as_deref(), Some("edge-1"));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_forwarded_request_is_never_forwarded_again() {
    within(20, async {
        let shards = three_shards().await;
        let edge = cluster("edge-1", "edge", &lines(&shards, "shard"), "");
        let mut req = get("/obj/1");
        req.headers
            .insert(HOP_HEADER, HeaderValue::from_static("edge-2"));
        assert!(is_forwarded(&req.headers));
        assert!(!edge.forwards(is_forwarded(&req.headers)));
        let err = edge.send(&key(1), req).await.unwrap_err();
        assert!(err.is_no_live_shard(), "{err}");
        let back = err.into_request().unwrap();
        assert_eq!(back.headers[HOP_HEADER], "edge-2", "handed back untouched");
        for s in &shards {
            assert!(
                s.seen("/obj/").is_empty(),
                "{} was sent a marked request",
                s.name
            );
        }
        // A shard never forwards, even unmarked requests; an edge forwards unmarked ones.
        let shard = cluster("shard-a", "shard", &lines(&shards, "shard"), "");
        assert!(!shard.forwards(false));
        assert!(edge.forwards(false));
        // A shard asked to send skips itself: keys it owns go to the next owner.
        for i in 0..30 {
            let k = key(i);
            let by = served_by(&shard, &k).await.unwrap();
            assert_ne!(by, "shard-a");
        }
    })
    .await;
}

#[tokio::test]
async fn a_dead_owner_moves_only_its_keys() {
    within(20, async {
        let mut shards = three_shards().await;
        let edge = cluster(
            "edge-1",
            "edge",
            &lines(&shards, "shard"),
            "ramp_up = \"0s\"",
        );
        let keys: Vec<CacheKey> = (0..90).map(key).collect();
        let mut before = Vec::new();
        for k in &keys {
            before.push(served_by(&edge, k).await.unwrap());
        }
        shards[1].kill().await;
        for (k, was) in keys.iter().zip(&before) {
            let now = served_by(&edge, k).await.unwrap();
            if was == "shard-b" {
                let next = edge.ring().owners(k.hash).nth(1).unwrap().name.clone();
                assert_eq!(now, next, "a dead owner's key goes to the next on the ring");
            } else {
                assert_eq!(&now, was, "a live owner's key must not move");
            }
        }
        assert!(
            !edge.peer("shard-b").unwrap().is_up(),
            "connect failure marks it down"
        );
        // With no shard left, the request comes back for the origin pool.
        shards[0].kill().await;
        shards[2].kill().await;
        let err = edge.send(&keys[0], get("/obj/0")).await.unwrap_err();
        assert!(err.is_no_live_shard(), "{err}");
        assert!(err.into_request().is_some_and(|r| r.retryable));
    })
    .await;
}

#[tokio::test]
async fn a_recovered_owner_ramps_up() {
    within(20, async {
        let mut shards = three_shards().await;
        let edge = cluster(
            "edge-1",
            "edge",
            &lines(&shards, "shard"),
            "ramp_up = \"1s\"\nhealth_interval = \"50ms\"\nrise = 1\nfall = 1",
        );
        edge.spawn_health_checks();
        shards[1].kill().await;
        let b = edge.peer("shard-b").unwrap().clone();
        while b.is_up() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shards[1].restart().await;
        while !b.is_up() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Just back: it takes only a small part of its keys.
        let owned: Vec<u128> = (0..3000)
            .map(|i| key(i).hash)
            .filter(|h| edge.ring().primary(*h).unwrap().name == "shard-b")
            .collect();
        let taken = |c: &Cluster| {
            owned
                .iter()
                .filter(|h| c.live_owners(**h).next().unwrap().name == "shard-b")
                .count()
        };
        let early = taken(&edge);
        assert!(early < owned.len() / 2, "{early} of {}", owned.len());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(taken(&edge), owned.len(), "fully ramped after the window");
        let status = edge.status_json();
        let b_status = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "shard-b")
            .unwrap()
            .clone();
        assert_eq!(b_status["up"], true);
        assert_eq!(b_status["ramp"], 1.0);
    })
    .await;
}

#[tokio::test]
async fn the_shards_age_bounds_the_edge_copy() {
    within(20, async {
        let shards = three_shards().await;
        let edge = cluster("edge-1", "edge", &lines(&shards, "shard"), "");
        let k = key(5);
        let request_time = SystemTime::now();
        let resp = edge.send(&k, get("/obj/5")).await.unwrap();
        let response_time = SystemTime::now();
        // The edge stores what the shard sent, Age included (RFC 9111 §4.2.3): the
        // shard's copy had 10 s left, so the edge's has at most 10 s too.
        let f = policy::freshness(
            resp.status(),
            resp.headers(),
            request_time,
            response_time,
            &PolicyConfig::default(),
        );
        assert_eq!(f.lifetime, Duration::from_secs(60));
        assert!(f.initial_age >= Duration::from_secs(50), "{f:?}");
        assert!(f.lifetime - f.initial_age <= Duration::from_secs(10));
    })
    .await;
}

#[tokio::test]
async fn purge_fans_out_to_every_other_node_with_acks() {
    within(20, async {
        let shards = three_shards().await;
        let edge2 = PeerServer::start("edge-2", [127, 0, 0, 5]).await;
        let peers = format!(
            "  {{ name = \"edge-1\", address = \"127.0.0.9:1\", admin = \"127.0.0.9:2\", role = \"edge\" }},\n{}{}",
            lines(&shards, "shard"),
            edge2.peer_line("edge")
        );
        let edge = cluster("edge-1", "edge", &peers, "");
        let acks = edge
            .purge_all_nodes(json!({"urls": ["http://example.com/a"], "soft": true, "scope": "cluster"}))
            .await;
        let mut names: Vec<&str> = acks.iter().map(|a| a.node.as_str()).collect();
        names.sort();
        assert_eq!(names, ["edge-2", "shard-a", "shard-b", "shard-c"], "not itself");
        for a in &acks {
            assert!(a.ok, "{a:?}");
            assert!(a.latency_ms < 2000);
            assert_eq!(a.purged, Some(json!({"urls": 1, "objects": 2})));
            assert!(a.error.is_none());
        }
        for s in shards.iter().chain([&edge2]) {
            let got = s.seen("/purge");
            assert_eq!(got.len(), 1);
            let body: Value = serde_json::from_str(&got[0].body).unwrap();
            assert_eq!(body["scope"], "node", "peers must not fan out again");
            assert_eq!(body["soft"], true);
            assert_eq!(got[0].hop.as_deref(), Some("edge-1"));
        }
        let json = serde_json::to_value(&acks[0]).unwrap();
        assert!(json.get("latency_ms").is_some() && json.get("error").is_none(), "{json}");
    })
    .await;
}

#[tokio::test]
async fn a_node_down_during_a_purge_catches_up_when_it_returns() {
    within(30, async {
        let shards = three_shards().await;
        let mut late = PeerServer::start("shard-d", [127, 0, 0, 6]).await;
        let peers = format!("{}{}", lines(&shards, "shard"), late.peer_line("shard"));
        let edge = cluster(
            "edge-1",
            "edge",
            &peers,
            "health_interval = \"50ms\"\nrise = 1\nfall = 1\nramp_up = \"0s\"",
        );
        late.kill().await;
        edge.spawn_health_checks();
        let first = edge
            .purge_all_nodes(json!({"urls": ["http://example.com/1"]}))
            .await;
        let d = first.iter().find(|a| a.node == "shard-d").unwrap();
        assert!(!d.ok && d.error.is_some(), "{d:?}");
        assert!(first.iter().filter(|a| a.node != "shard-d").all(|a| a.ok));
        let second = edge
            .purge_all_nodes(json!({"surrogate_keys": ["news"]}))
            .await;
        assert!(!second.iter().find(|a| a.node == "shard-d").unwrap().ok);
        assert!(edge.purges_pending(edge.peer("shard-d").unwrap()));

        late.restart().await;
        while late.seen("/purge").len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let replayed = late.seen("/purge");
        let bodies: Vec<Value> = replayed
            .iter()
            .map(|s| serde_json::from_str(&s.body).unwrap())
            .collect();
        assert_eq!(bodies[0]["urls"][0], "http://example.com/1", "in order");
        assert_eq!(bodies[1]["surrogate_keys"][0], "news");
        assert!(bodies.iter().all(|b| b["scope"] == "node"));
        while edge.purges_pending(edge.peer("shard-d").unwrap()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = edge.status_json();
        assert!(status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["purges_behind"] == 0));
        // The others were not sent anything twice.
        for s in &shards {
            assert_eq!(s.seen("/purge").len(), 2);
        }
    })
    .await;
}

#[tokio::test]
async fn pushes_and_prewarms_go_to_the_owner() {
    within(20, async {
        let shards = three_shards().await;
        let edge2 = PeerServer::start("edge-2", [127, 0, 0, 7]).await;
        let peers = format!("{}{}", lines(&shards, "shard"), edge2.peer_line("edge"));
        let edge = cluster("edge-1", "edge", &peers, "");
        let k = key(3);
        let owner = edge.ring().primary(k.hash).unwrap().name.clone();
        let pq = PathAndQuery::try_from("/objects?url=http%3A%2F%2Fexample.com%2Fobj%2F3&ttl=60")
            .unwrap();
        let acks = edge
            .push(
                k.hash,
                pq.clone(),
                HeaderMap::new(),
                Bytes::from_static(b"hello"),
                false,
            )
            .await;
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].node, owner);
        assert!(acks[0].ok, "{:?}", acks[0]);
        assert_eq!(acks[0].answer, Some(json!({"stored": true})));
        let s = shards.iter().find(|s| s.name == owner).unwrap();
        let put = s.seen("/objects");
        assert_eq!(put.len(), 1);
        assert_eq!(put[0].method, Method::PUT);
        assert_eq!(put[0].body, "hello");
        assert!(!edge.owner_is_self(k.hash));
        // With edges: the owner and every other edge.
        let acks = edge
            .push(
                k.hash,
                pq,
                HeaderMap::new(),
                Bytes::from_static(b"hi"),
                true,
            )
            .await;
        assert_eq!(acks.len(), 2);
        assert_eq!(edge2.seen("/objects").len(), 1);

        let urls: Vec<(String, u128)> = (0..30)
            .map(|i| {
                let k = key(i);
                (k.url.to_string(), k.hash)
            })
            .collect();
        let (local, acks) = edge.prewarm(&urls, 4, false).await;
        assert!(local.is_empty());
        assert!(acks
            .iter()
            .all(|a| a.ok && a.answer == Some(json!({"job": "1"}))));
        let mut total = 0;
        for s in &shards {
            for seen in s.seen("/prewarm") {
                let body: Value = serde_json::from_str(&seen.body).unwrap();
                assert_eq!(body["concurrency"], 4);
                for u in body["urls"].as_array().unwrap() {
                    let h = urls
                        .iter()
                        .find(|(x, _)| x == u.as_str().unwrap())
                        .unwrap()
                        .1;
                    assert_eq!(
                        edge.ring().primary(h).unwrap().name,
                        s.name,
                        "sent to its owner"
                    );
                    total += 1;
                }
            }
        }
        assert_eq!(total, urls.len());
    })
    .await;
}

#[tokio::test]
async fn status_lists_members_and_shares() {
    within(20, async {
        let shards = three_shards().await;
        let edge = cluster("edge-1", "edge", &lines(&shards, "shard"), "");
        let s = edge.status_json();
        assert_eq!(s["node"], "edge-1");
        assert_eq!(s["role"], "edge");
        assert_eq!(s["shards"], 3);
        let members = s["members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        let sum: f64 = members
            .iter()
            .map(|m| m["ring_share"].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 0.01, "{sum}");
        for m in members {
            let share = m["ring_share"].as_f64().unwrap();
            assert!((0.2..0.5).contains(&share), "{m}");
            assert_eq!(m["live_share"], m["ring_share"]);
            assert_eq!(m["up"], true);
        }
    })
    .await;
}

#[test]
fn ring_movement_is_about_one_nth() {
    let peer = |n: usize| {
        Arc::new(
            Peer::from_config(
                &PeerConfig {
                    name: format!("shard-{n}"),
                    address: format!("10.0.0.{n}:80"),
                    admin: format!("10.0.0.{n}:6082"),
                    weight: 1,
                    role: PeerRole::Shard,
                },
                false,
            )
            .unwrap(),
        )
    };
    let keys: Vec<u128> = (0..20_000).map(|i| key(i).hash).collect();
    for n in [3usize, 5, 8] {
        let small = Ring::new((0..n).map(peer).collect());
        let big = Ring::new((0..=n).map(peer).collect());
        let moved = keys
            .iter()
            .filter(|h| small.primary(**h).unwrap().name != big.primary(**h).unwrap().name)
            .count() as f64
            / keys.len() as f64;
        let ideal = 1.0 / (n + 1) as f64;
        assert!(
            (moved - ideal).abs() < ideal * 0.35,
            "adding the {}th member moved {moved:.3}, ideal {ideal:.3}",
            n + 1
        );
    }
}
