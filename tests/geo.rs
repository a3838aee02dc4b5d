//! Geo routing end to end: a tiny database written at test time, PoP tables,
//! health endpoints and nodes on real loopback sockets. Clients bind to
//! chosen loopback addresses (127.1.x London, 127.2.x New York, 127.3.x Tokyo)
//! so that routing is decided by the real peer address. Every test bounds its
//! own time.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lacquer::config::{Cidr, GeoConfig, GeoMode};
use lacquer::geo::{client_ip, Geo, GeoAction, GeoDb, Reason, POP_HEADER};
use lacquer::metrics::Metrics;
use mmdb_writer::{Value, Writer};
use tokio::net::{TcpListener, TcpSocket};

async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test exceeded its {secs}s bound"),
    }
}

// ---------------------------------------------------------------- test data

struct City {
    country: &'static str,
    continent: &'static str,
    lat: f64,
    lon: f64,
}

const LONDON: City = City {
    country: "GB",
    continent: "EU",
    lat: 51.5074,
    lon: -0.1278,
};
const NEW_YORK: City = City {
    country: "US",
    continent: "NA",
    lat: 40.7128,
    lon: -74.0060,
};
const TOKYO: City = City {
    country: "JP",
    continent: "AS",
    lat: 35.6762,
    lon: 139.6503,
};

fn record(c: &City) -> Value {
    Value::map([
        (
            "country",
            Value::map([("iso_code", Value::from(c.country))]),
        ),
        (
            "continent",
            Value::map([("code", Value::from(c.continent))]),
        ),
        (
            "location",
            Value::map([
                ("latitude", Value::Double(c.lat)),
                ("longitude", Value::Double(c.lon)),
            ]),
        ),
    ])
}

fn range(w: &mut Writer, first: &str, last: &str, v: &Value) {
    w.insert_range(first.parse().unwrap(), last.parse().unwrap(), v)
        .unwrap();
}

/// 127.1/16 London, 127.2/16 New York, 127.3/16 Tokyo, 127.4/16 a French
/// record without a location, ::1 Tokyo, 2001:db8:1::/48 London.
fn test_db(swap_london_tokyo: bool) -> Vec<u8> {
    let mut w = Writer::builder("Lacquer-Test-City")
        .description(&[("en", "lacquer geo test data")])
        .build();
    let (london, tokyo) = if swap_london_tokyo {
        (record(&TOKYO), record(&LONDON))
    } else {
        (record(&LONDON), record(&TOKYO))
    };
    range(&mut w, "127.1.0.0", "127.1.255.255", &london);
    range(&mut w, "127.2.0.0", "127.2.255.255", &record(&NEW_YORK));
    range(&mut w, "127.3.0.0", "127.3.255.255", &tokyo);
    let france = Value::map([
        ("country", Value::map([("iso_code", Value::from("FR"))])),
        ("continent", Value::map([("code", Value::from("EU"))])),
    ]);
    range(&mut w, "127.4.0.0", "127.4.255.255", &france);
    range(&mut w, "::1", "::1", &record(&TOKYO));
    range(
        &mut w,
        "2001:db8:1::",
        "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
        &record(&LONDON),
    );
    w.to_bytes().unwrap()
}

/// A fresh directory per test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lacquer-geo-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct PopSpec<'a> {
    name: &'a str,
    city: City,
    base_url: String,
    health_url: Option<String>,
}

fn pops_toml(pops: &[PopSpec<'_>]) -> String {
    let mut s = String::new();
    for p in pops {
        s.push_str(&format!(
            "[[pop]]\nname = {:?}\nlat = {}\nlon = {}\nbase_url = {:?}\n",
            p.name, p.city.lat, p.city.lon, p.base_url
        ));
        if let Some(h) = &p.health_url {
            s.push_str(&format!("health_url = {h:?}\n"));
        }
        s.push('\n');
    }
    s
}

fn three_pops(health: Option<&str>) -> Vec<PopSpec<'static>> {
    vec![
        PopSpec {
            name: "eu-west",
            city: LONDON,
            base_url: "http://eu.example".into(),
            health_url: None,
        },
        PopSpec {
            name: "us-east",
            city: NEW_YORK,
            base_url: "http://us.example".into(),
            health_url: health.map(str::to_owned),
        },
        PopSpec {
            name: "ap-northeast",
            city: TOKYO,
            base_url: "http://ap.example".into(),
            health_url: None,
        },
    ]
}

fn geo_config(dir: &TempDir, pops: &[PopSpec<'_>], action: GeoMode) -> GeoConfig {
    let mmdb = dir.path("city.mmdb");
    if !mmdb.exists() {
        std::fs::write(&mmdb, test_db(false)).unwrap();
    }
    let table = dir.path("pops.toml");
    std::fs::write(&table, pops_toml(pops)).unwrap();
    GeoConfig {
        enabled: true,
        mmdb: Some(mmdb),
        pops: table,
        action,
        default_pop: Some("us-east".into()),
        health_interval: Duration::from_millis(50),
        health_timeout: Duration::from_millis(500),
        reload_interval: Duration::from_millis(50),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- servers

/// A node: answers through the geo API the way the proxy will.
async fn node(geo: Arc<Geo>, trusted: Vec<Cidr>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(listener, geo, trusted)
}

fn serve(listener: TcpListener, geo: Arc<Geo>, trusted: Vec<Cidr>) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let trusted = Arc::new(trusted);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let geo = geo.clone();
            let trusted = trusted.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let geo = geo.clone();
                    let trusted = trusted.clone();
                    async move { Ok::<_, Infallible>(handle(&geo, &trusted, peer, req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn handle(
    geo: &Geo,
    trusted: &[Cidr],
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, _) = req.into_parts();
    let reply = |(status, headers, body): (StatusCode, HeaderMap, Bytes)| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        r
    };
    match geo.route(peer.ip(), trusted, &parts) {
        GeoAction::Redirect(r) | GeoAction::PopJson(r) => reply(r),
        GeoAction::Serve { annotate, uri } => {
            let target = uri.unwrap_or(parts.uri);
            let mut r = Response::new(Full::new(Bytes::from(format!("served {target}"))));
            if let Some(v) = annotate {
                r.headers_mut().insert(POP_HEADER, v);
            }
            r
        }
    }
}

/// A health endpoint whose answer the test flips.
async fn health_server(up: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let up = up.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let status = if up.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    async move {
                        let mut r = Response::new(Empty::<Bytes>::new());
                        *r.status_mut() = status;
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One GET from the local address `from` (port chosen by the OS).
async fn get_from(from: &str, to: SocketAddr, target: &str, xff: Option<&str>) -> Got {
    let from: IpAddr = from.parse().unwrap();
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(target).header("host", "site.example");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn location(g: &Got) -> &str {
    g.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn routes_by_real_client_address() {
    within(20, async {
        let dir = TempDir::new("route");
        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
        let metrics = Arc::new(Metrics::new());
        let geo = Geo::new(&cfg, Some("eu-west"), Some(metrics.clone())).unwrap();
        let addr = node(geo, Vec::new()).await;

        // London client: this PoP, served.
        let g = get_from("127.1.0.5", addr, "/a?x=1", None).await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.body);
        assert_eq!(g.body, "served /a?x=1");

        // New York client: 307 to us-east with path, query and marker.
        let g = get_from("127.2.0.5", addr, "/a/b?x=1&y=2", None).await;
        assert_eq!(g.status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(location(&g), "http://us.example/a/b?x=1&y=2&_lqpop=eu-west");
        assert_eq!(g.headers["cache-control"], "private");
        assert_eq!(g.headers[POP_HEADER], "us-east; reason=nearest");

        // Tokyo client.
        let g = get_from("127.3.0.9", addr, "/", None).await;
        assert_eq!(location(&g), "http://ap.example/?_lqpop=eu-west");

        // No record (127.0.0.1): the default PoP, us-east.
        let g = get_from("127.0.0.1", addr, "/", None).await;
        assert_eq!(location(&g), "http://us.example/?_lqpop=eu-west");

        // The explanation endpoint.
        let g = get_from("127.2.0.5", addr, "/.lacquer/pop", None).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.headers["cache-control"], "no-store");
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["client_ip"], "127.2.0.5");
        assert_eq!(v["country"], "US");
        assert_eq!(v["continent"], "NA");
        assert_eq!(v["pop"], "us-east");
        assert_eq!(v["reason"], "nearest");
        assert_eq!(v["distance_km"], 0.0);
        assert_eq!(v["this_pop"], "eu-west");
        let g = get_from("127.1.0.5", addr, "/.lacquer/pop", None).await;
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(
            (v["pop"].as_str(), v["reason"].as_str()),
            (Some("eu-west"), Some("local"))
        );
        let g = get_from("127.0.0.1", addr, "/.lacquer/pop", None).await;
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["reason"], "no-record");
        let g = get_from("127.4.0.1", addr, "/.lacquer/pop", None).await;
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(
            (v["country"].as_str(), v["reason"].as_str()),
            (Some("FR"), Some("fallback"))
        );

        let text = metrics.encode();
        assert!(
            text.contains("lacquer_geo_decisions_total{pop=\"eu-west\",outcome=\"local\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("lacquer_geo_decisions_total{pop=\"us-east\",outcome=\"redirected\"} 2")
        );
    })
    .await;
}

#[tokio::test]
async fn header_mode_annotates_and_serves() {
    within(20, async {
        let dir = TempDir::new("header");
        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Header);
        let geo = Geo::new(&cfg, Some("eu-west"), None).unwrap();
        let addr = node(geo, Vec::new()).await;
        let g = get_from("127.3.0.9", addr, "/x", None).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.headers[POP_HEADER], "ap-northeast; reason=nearest");
        let g = get_from("127.1.0.1", addr, "/x", None).await;
        assert_eq!(g.headers[POP_HEADER], "eu-west; reason=local");

        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Off);
        let geo = Geo::new(&cfg, Some("eu-west"), None).unwrap();
        let addr = node(geo, Vec::new()).await;
        let g = get_from("127.3.0.9", addr, "/x", None).await;
        assert_eq!(g.status, StatusCode::OK);
        assert!(g.headers.get(POP_HEADER).is_none());
    })
    .await;
}

#[tokio::test]
async fn trusted_forwarded_for_is_followed_and_spoofing_ignored() {
    within(20, async {
        let dir = TempDir::new("xff");
        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
        let geo = Geo::new(&cfg, Some("eu-west"), None).unwrap();
        let trusted: Vec<Cidr> = vec!["127.9.0.0/16".parse().unwrap()];
        let addr = node(geo, trusted).await;

        // Through a trusted load balancer at 127.9.0.1: the Tokyo client counts,
        // not the forged leftmost entry.
        let g = get_from("127.9.0.1", addr, "/p", Some("127.2.0.1, 127.3.0.7")).await;
        assert_eq!(location(&g), "http://ap.example/p?_lqpop=eu-west");

        // Two trusted hops.
        let g = get_from("127.9.0.1", addr, "/p", Some("127.3.0.7, 127.9.0.2")).await;
        assert_eq!(location(&g), "http://ap.example/p?_lqpop=eu-west");

        // A London client forging X-Forwarded-For: ignored, served here.
        let g = get_from("127.1.0.9", addr, "/p", Some("127.3.0.7")).await;
        assert_eq!(g.status, StatusCode::OK);
        let g = get_from("127.1.0.9", addr, "/.lacquer/pop", Some("127.3.0.7")).await;
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["client_ip"], "127.1.0.9");
    })
    .await;
}

#[test]
fn client_ip_is_pure() {
    let trusted: Vec<Cidr> = vec!["127.9.0.0/16".parse().unwrap()];
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", "127.3.0.7".parse().unwrap());
    assert_eq!(client_ip(ip("127.9.0.1"), &h, &trusted), ip("127.3.0.7"));
    assert_eq!(client_ip(ip("127.1.0.1"), &h, &trusted), ip("127.1.0.1"));
}

#[tokio::test]
async fn nearest_pop_down_goes_to_the_next_nearest_and_back() {
    within(30, async {
        let up = Arc::new(AtomicBool::new(true));
        let health = health_server(up.clone()).await;
        let dir = TempDir::new("health");
        let url = format!("http://{health}/health");
        let cfg = geo_config(&dir, &three_pops(Some(&url)), GeoMode::Redirect);
        let geo = Geo::new(&cfg, Some("ap-northeast"), None).unwrap();
        geo.spawn_health_and_reload();
        let addr = node(geo.clone(), Vec::new()).await;

        let g = get_from("127.2.0.5", addr, "/", None).await;
        assert_eq!(location(&g), "http://us.example/?_lqpop=ap-northeast");

        up.store(false, Ordering::SeqCst);
        // New York's next nearest is London (5,570 km), not Tokyo (10,850 km).
        loop {
            let d = geo.decide(ip("127.2.0.5"));
            if d.pop.as_deref() == Some("eu-west") {
                assert_eq!(d.reason, Reason::Nearest);
                assert_eq!(d.down, ["us-east"]);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let g = get_from("127.2.0.5", addr, "/", None).await;
        assert_eq!(location(&g), "http://eu.example/?_lqpop=ap-northeast");

        up.store(true, Ordering::SeqCst);
        while geo.decide(ip("127.2.0.5")).pop.as_deref() != Some("us-east") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn redirect_loop_is_impossible() {
    within(30, async {
        // Two PoPs that disagree: eu-west sees us-east healthy and sends New York
        // there; us-east believes itself down and would send New York back.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let eu_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let us_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let eu_addr = eu_listener.local_addr().unwrap();
        let us_addr = us_listener.local_addr().unwrap();
        let table = |us_health: Option<String>| {
            let mut p = three_pops(None);
            p[0].base_url = format!("http://{eu_addr}");
            p[1].base_url = format!("http://{us_addr}");
            p[1].health_url = us_health;
            p
        };
        let eu_dir = TempDir::new("loop-eu");
        let eu = Geo::new(
            &geo_config(&eu_dir, &table(None), GeoMode::Redirect),
            Some("eu-west"),
            None,
        )
        .unwrap();
        let us_dir = TempDir::new("loop-us");
        let us = Geo::new(
            &geo_config(
                &us_dir,
                &table(Some(format!("http://{dead}/"))),
                GeoMode::Redirect,
            ),
            Some("us-east"),
            None,
        )
        .unwrap();
        // Two failed rounds mark us-east down in us-east's own view.
        us.check_health_now().await;
        us.check_health_now().await;
        assert_eq!(us.decide(ip("127.2.0.5")).pop.as_deref(), Some("eu-west"));
        serve(eu_listener, eu, Vec::new());
        serve(us_listener, us, Vec::new());

        // Follow redirects like a browser, from New York, at most 5 times.
        let mut to = eu_addr;
        let mut target = "/page?q=1".to_string();
        let mut redirects = 0;
        let last = loop {
            let g = get_from("127.2.0.5", to, &target, None).await;
            if g.status != StatusCode::TEMPORARY_REDIRECT {
                break g;
            }
            redirects += 1;
            assert!(redirects < 5, "redirect loop");
            let next: http::Uri = location(&g).parse().unwrap();
            to = next.authority().unwrap().as_str().parse().unwrap();
            target = next.path_and_query().unwrap().to_string();
        };
        assert_eq!(redirects, 1);
        assert_eq!(last.status, StatusCode::OK);
        // Served by us-east, with the marker removed before caching/origin.
        assert_eq!(last.body, "served /page?q=1");
    })
    .await;
}

#[tokio::test]
async fn reload_refuses_corrupt_files_and_takes_good_ones() {
    within(30, async {
        let dir = TempDir::new("reload");
        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
        let mmdb = cfg.mmdb.clone().unwrap();
        let geo = Geo::new(&cfg, Some("eu-west"), None).unwrap();
        assert_eq!(geo.decide(ip("127.1.0.1")).pop.as_deref(), Some("eu-west"));

        // Truncated: explicit reload fails, the old database stays.
        let good = test_db(true);
        std::fs::write(&mmdb, &good[..good.len() / 2]).unwrap();
        let err = geo.reload().unwrap_err();
        assert!(err.contains("city.mmdb"), "{err}");
        assert_eq!(geo.decide(ip("127.1.0.1")).pop.as_deref(), Some("eu-west"));

        // Garbage through the watcher: still the old one.
        geo.spawn_health_and_reload();
        std::fs::write(&mmdb, b"not a database at all").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(geo.decide(ip("127.1.0.1")).pop.as_deref(), Some("eu-west"));

        // A flipped bit in the data section of an otherwise whole file.
        let mut flipped = good.clone();
        let metadata_at = flipped
            .windows(14)
            .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
            .unwrap();
        for b in &mut flipped[metadata_at - 64..metadata_at] {
            *b = 0xff;
        }
        assert!(GeoDb::from_bytes(flipped).is_err());

        // A good new database is picked up by the watcher (London now Tokyo).
        std::fs::write(&mmdb, &good).unwrap();
        while geo.decide(ip("127.1.0.1")).pop.as_deref() != Some("ap-northeast") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A PoP table without this node's PoP is refused too.
        let mut without_me = three_pops(None);
        without_me.retain(|p| p.name != "eu-west");
        std::fs::write(&cfg.pops, pops_toml(&without_me)).unwrap();
        assert!(geo.reload().unwrap_err().contains("eu-west"));
        std::fs::write(&cfg.pops, "[[pop]\nbroken").unwrap();
        assert!(geo.reload().is_err());
        assert_eq!(geo.decide(ip("127.3.0.1")).pop.as_deref(), Some("eu-west"));
    })
    .await;
}

#[tokio::test]
async fn ipv6_clients() {
    within(20, async {
        let dir = TempDir::new("v6");
        let cfg = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
        let geo = Geo::new(&cfg, Some("eu-west"), None).unwrap();
        let d = geo.decide(ip("2001:db8:1::42"));
        assert_eq!(
            (d.pop.as_deref(), d.reason),
            (Some("eu-west"), Reason::Local)
        );
        let d = geo.decide(ip("2001:db8:2::1"));
        assert_eq!(d.reason, Reason::NoRecord);
        // IPv4-mapped addresses are looked up as IPv4.
        let d = geo.decide(ip("::ffff:127.3.0.1"));
        assert_eq!(d.client_ip, ip("127.3.0.1"));
        assert_eq!(d.pop.as_deref(), Some("ap-northeast"));

        // A real IPv6 connection from ::1 (Tokyo), where the host has IPv6.
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            eprintln!("skipping the IPv6 socket part: no ::1 on this host");
            return;
        };
        let addr = serve(listener, geo, Vec::new());
        let g = get_from("::1", addr, "/v6", None).await;
        assert_eq!(location(&g), "http://ap.example/v6?_lqpop=eu-west");
    })
    .await;
}

#[test]
fn lookup_command_prints_the_decision() {
    let dir = TempDir::new("cmd");
    let cfg = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
    let conf = dir.path("lacquer.toml");
    std::fs::write(
        &conf,
        format!(
            "[node]\npop = \"eu-west\"\n[[origin]]\naddress = \"127.0.0.1:9\"\n[geo]\nenabled = true\nmmdb = \"{}\"\npops = \"pops.toml\"\ndefault_pop = \"us-east\"\naction = \"redirect\"\n",
            cfg.mmdb.unwrap().file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let out = lacquer::geo::lookup_command("127.3.0.1", Some(&conf)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pop"], "ap-northeast");
    assert_eq!(v["country"], "JP");
    assert!(lacquer::geo::lookup_command("nope", Some(&conf)).is_err());
    assert!(
        lacquer::geo::lookup_command("127.0.0.1", Some(Path::new("/nonexistent.toml"))).is_err()
    );
}

#[test]
fn check_config_reports_geo_problems_with_lines() {
    let dir = TempDir::new("check");
    let _ = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
    let conf = dir.path("bad.toml");
    std::fs::write(
        &conf,
        "[node]\npop = \"mars\"\n[[origin]]\naddress = \"127.0.0.1:9\"\n[client]\ntrusted_proxies = [\"10.0.0.0/33\"]\n[geo]\nenabled = true\nmmdb = \"missing.mmdb\"\npops = \"pops.toml\"\ndefault_pop = \"venus\"\nhealth_interval = \"0s\"\n",
    )
    .unwrap();
    let err = lacquer::config::Config::load(&conf)
        .unwrap_err()
        .to_string();
    for needle in [
        "bad.toml:2: node.pop \"mars\" is not in",
        "bad.toml:6: client.trusted_proxies",
        "bad.toml:9: geo.mmdb: file",
        "bad.toml:11: geo.default_pop \"venus\"",
        "bad.toml:12: geo.health_interval must be greater than 0",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// MaxMind's own test database, when the repository has it beside it
/// (`../shared/geo/GeoIP2-City-Test.mmdb`), or at `LACQUER_GEO_TEST_DB`.
#[test]
fn maxmind_test_database_is_readable() {
    let path = std::env::var_os("LACQUER_GEO_TEST_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/geo/GeoIP2-City-Test.mmdb")
        });
    if !path.is_file() {
        eprintln!(
            "skipping: MaxMind test database not found at {}",
            path.display()
        );
        return;
    }
    let db = GeoDb::open(&path).unwrap();
    let london = db.lookup(ip("81.2.69.142")).unwrap();
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.continent.as_deref(), Some("EU"));
    let l = london.location.unwrap();
    assert!(
        (l.lat - 51.5).abs() < 0.5 && (l.lon + 0.1).abs() < 0.5,
        "{l:?}"
    );
    let seattle = db.lookup(ip("216.160.83.56")).unwrap();
    assert_eq!(seattle.country.as_deref(), Some("US"));
    let s = seattle.location.unwrap();
    assert!(
        (s.lat - 47.3).abs() < 1.0 && (s.lon + 122.3).abs() < 1.0,
        "{s:?}"
    );
    let japan = db.lookup(ip("2001:218::1")).unwrap();
    assert_eq!(japan.country.as_deref(), Some("JP"));
    assert!(db.lookup(ip("127.0.0.1")).is_none());

    // With the shipped PoP table.
    let table =
        lacquer::geo::PopTable::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/pops.toml"))
            .unwrap();
    let pick = |place| {
        table
            .choose(Some(&place), "us-east", |_: &lacquer::geo::Pop| true)
            .unwrap()
            .pop
            .name
            .clone()
    };
    assert_eq!(pick(london), "eu-west");
    assert_eq!(pick(seattle), "us-west");
    assert_eq!(pick(japan), "ap-northeast");
}

/// Through a real lacquer node: a New York client is redirected to us-east, a London
/// client is served by this (eu-west) node with its PoP named, and /.lacquer/pop answers.
#[tokio::test]
async fn lacquer_node_routes_by_client_address() {
    within(20, async {
        let dir = TempDir::new("e2e");
        let origin = lacquer::demo::serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut cfg =
            lacquer::config::Config::quick("127.0.0.1:0".parse().unwrap(), &[origin.to_string()])
                .unwrap();
        cfg.admin.enabled = false;
        cfg.log.access_log = false;
        for o in &mut cfg.origin {
            o.health.enabled = false;
        }
        cfg.node.pop = Some("eu-west".into());
        cfg.geo = geo_config(&dir, &three_pops(None), GeoMode::Redirect);
        let running = lacquer::server::start(cfg).await.unwrap();
        let addr = running.listen[0];

        let ny = get_from("127.2.0.5", addr, "/time", None).await;
        assert_eq!(ny.status, StatusCode::TEMPORARY_REDIRECT);
        assert!(
            location(&ny).starts_with("http://us.example/time"),
            "{}",
            location(&ny)
        );

        let london = get_from("127.1.0.5", addr, "/time", None).await;
        assert_eq!(london.status, StatusCode::OK);
        assert!(london.headers.get("cache-status").is_some());

        let pop = get_from("127.3.0.9", addr, "/.lacquer/pop", None).await;
        assert_eq!(pop.status, StatusCode::OK);
        assert!(pop.body.contains("ap-northeast"), "{}", pop.body);
        running.shutdown().await;
    })
    .await;
}
