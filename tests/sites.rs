//! Sites (`[[origin_group]]` + `[[site]]`) end to end over real sockets, against the
//! user-facing contract in the README's "Sites" section: routing by host, path, method
//! and scheme; each site's origin group, cache policy, cache key and header edits;
//! answers without an origin (redirect, fixed response, access, rate limit); the debug
//! header, reloads under load, and the admin `GET /route` explanation.
//!
//! Every config is TOML text (origin addresses formatted in) parsed by `Config::parse`,
//! then moved to loopback listeners with health probes off: probes would reach the
//! origins whose requests the tests count.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::net::TcpStream;

// ---- shared helpers ----

/// An origin answering its own name, never storable: every request reaches it, and the
/// body says which group served it.
async fn named(name: &'static str) -> Origin {
    Origin::start(move |_, _| Reply::ok(name).cc("no-store")).await
}

/// An origin answering `v{n}` (`n` counting requests for the path) with `cc`.
async fn versioned(cc: &'static str) -> Origin {
    Origin::start(move |_, n| Reply::ok(format!("v{n}")).cc(cc)).await
}

/// `[[origin_group]]` named `name` with `servers` (weight 1), health probes off.
fn group(name: &str, servers: &[&Origin]) -> String {
    let weighted: Vec<(&Origin, u32)> = servers.iter().map(|o| (*o, 1)).collect();
    weighted_group(name, &weighted)
}

fn weighted_group(name: &str, servers: &[(&Origin, u32)]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|(o, w)| format!("{{ address = \"{}\", weight = {w} }}", o.addr))
        .collect();
    format!(
        "[[origin_group]]\nname = \"{name}\"\nservers = [{}]\nhealth = {{ enabled = false }}\n\n",
        list.join(", ")
    )
}

/// A top-level `[[origin]]`: the default site's pool.
fn default_origin(o: &Origin) -> String {
    format!(
        "[[origin]]\naddress = \"{}\"\nhealth = {{ enabled = false }}\n\n",
        o.addr
    )
}

/// Parse a config; listeners and the admin API on ephemeral loopback ports, no access
/// log, no health probes.
fn parse(text: &str) -> Config {
    let mut cfg = Config::parse(text, "t.toml")
        .unwrap_or_else(|e| panic!("config refused:\n{e}\n--- config ---\n{text}"));
    loopback(&mut cfg);
    cfg
}

fn loopback(cfg: &mut Config) {
    for l in &mut cfg.listen {
        l.address = "127.0.0.1:0".parse().unwrap();
    }
    cfg.admin.address = "127.0.0.1:0".parse().unwrap();
    cfg.log.access_log = false;
    for o in &mut cfg.origin {
        o.health.enabled = false;
    }
    for g in &mut cfg.origin_group {
        g.health.enabled = false;
    }
}

async fn node(text: &str) -> Node {
    start(parse(text)).await
}

/// GET `path` with `Host: host`.
async fn at(node: &Node, host: &str, path: &str) -> Got {
    at_with(node, host, path, &[]).await
}

async fn at_with(node: &Node, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    node.get_with(path, &all).await
}

/// `method` on `path` with `Host: host`, a small body for unsafe methods.
async fn call(node: &Node, method: Method, host: &str, path: &str) -> Got {
    let body = if method == Method::GET || method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(b"payload")
    };
    node.send(method, path, &[("host", host)], body).await
}

/// GET requests the origin saw for `path`.
fn gets(o: &Origin, path: &str) -> usize {
    o.requests()
        .iter()
        .filter(|s| s.method == Method::GET && s.path == path)
        .count()
}

/// Every value of header `name` on a request the origin saw.
fn values(seen: &Seen, name: &str) -> Vec<String> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// The Cookie header the origin saw last (empty when none).
fn last_cookie(o: &Origin) -> String {
    o.last()
        .map(|s| values(&s, "cookie").join("; "))
        .unwrap_or_default()
}

// ---- routing ----

/// An exact host takes its own site's requests, and only that host's: a subdomain of it
/// is another host.
#[tokio::test]
async fn exact_host_routes_to_its_site() {
    within(20, async {
        let (a, b, d) = (named("a").await, named("b").await, named("default").await);
        let text = [
            default_origin(&d),
            group("a", &[&a]),
            group("b", &[&b]),
            r#"
[[site]]
name = "a"
hosts = ["a.example.com"]
origin_group = "a"

[[site]]
name = "b"
hosts = ["b.example.com"]
origin_group = "b"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "a.example.com", "/x").await.text(), "a");
        assert_eq!(at(&node, "b.example.com", "/x").await.text(), "b");
        assert_eq!(at(&node, "x.a.example.com", "/x").await.text(), "default");
        assert_eq!(at(&node, "example.com", "/x").await.text(), "default");
        assert_eq!((a.total(), b.total(), d.total()), (1, 1, 2));
        node.stop().await;
    })
    .await;
}

/// `*.cdn.example.com` matches any name below it, at any depth, but neither the bare
/// domain nor a name that merely ends in the same letters.
#[tokio::test]
async fn wildcard_host_matches_names_below_it() {
    within(20, async {
        let (cdn, www) = (named("cdn").await, named("www").await);
        let text = [
            group("cdn", &[&cdn]),
            group("www", &[&www]),
            r#"
[[site]]
name = "cdn"
hosts = ["*.cdn.example.com"]
origin_group = "cdn"

[[site]]
name = "www"
hosts = ["www.example.com"]
origin_group = "www"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for host in ["a.cdn.example.com", "x.y.cdn.example.com"] {
            let g = at(&node, host, "/img.png").await;
            assert_eq!((g.status, g.text().as_str()), (200, "cdn"), "{host}");
        }
        for host in ["cdn.example.com", "acdn.example.com"] {
            assert_eq!(at(&node, host, "/img.png").await.status, 421, "{host}");
        }
        assert_eq!(at(&node, "www.example.com", "/").await.text(), "www");
        assert_eq!(cdn.total(), 2);
        node.stop().await;
    })
    .await;
}

/// Host names match in any case, and a port in the Host header is ignored.
#[tokio::test]
async fn host_case_and_port_are_ignored() {
    within(20, async {
        let (api, d) = (named("api").await, named("default").await);
        let text = [
            default_origin(&d),
            group("api", &[&api]),
            r#"
[[site]]
name = "api"
hosts = ["Api.Example.com", "*.Edge.example.com"]
origin_group = "api"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for host in [
            "api.example.com",
            "API.EXAMPLE.COM",
            "api.example.com:8080",
            "Api.Example.Com:443",
            "p1.EDGE.example.com:8443",
        ] {
            assert_eq!(at(&node, host, "/x").await.text(), "api", "{host}");
        }
        assert_eq!(d.total(), 0);
        node.stop().await;
    })
    .await;
}

/// `paths` are prefixes of the path (the query is not part of it).
#[tokio::test]
async fn path_prefix_routes() {
    within(20, async {
        let (s, r) = (named("static").await, named("rest").await);
        let text = [
            group("static", &[&s]),
            group("rest", &[&r]),
            r#"
[[site]]
name = "static"
hosts = ["p.test"]
paths = ["/static/"]
origin_group = "static"

[[site]]
name = "rest"
hosts = ["p.test"]
origin_group = "rest"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for (path, want) in [
            ("/static/app.css", "static"),
            ("/static/", "static"),
            ("/static/a/b.js?v=3", "static"),
            ("/static", "rest"),
            ("/staticfile", "rest"),
            ("/x/static/a", "rest"),
        ] {
            assert_eq!(at(&node, "p.test", path).await.text(), want, "{path}");
        }
        node.stop().await;
    })
    .await;
}

/// `exact_paths` match the whole path, whatever the query.
#[tokio::test]
async fn exact_path_routes() {
    within(20, async {
        let (robots, r) = (named("robots").await, named("rest").await);
        let text = [
            group("robots", &[&robots]),
            group("rest", &[&r]),
            r#"
[[site]]
name = "robots"
hosts = ["e.test"]
exact_paths = ["/robots.txt"]
origin_group = "robots"

[[site]]
name = "rest"
hosts = ["e.test"]
origin_group = "rest"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for (path, want) in [
            ("/robots.txt", "robots"),
            ("/robots.txt?x=1", "robots"),
            ("/robots.txt/more", "rest"),
            ("/robots.txt2", "rest"),
            ("/a/robots.txt", "rest"),
        ] {
            assert_eq!(at(&node, "e.test", path).await.text(), want, "{path}");
        }
        node.stop().await;
    })
    .await;
}

/// `path_regex` is a regular expression on the path.
#[tokio::test]
async fn path_regex_routes() {
    within(20, async {
        let (v, r) = (named("versioned").await, named("rest").await);
        let text = [
            group("versioned", &[&v]),
            group("rest", &[&r]),
            r#"
[[site]]
name = "versioned"
hosts = ["r.test"]
path_regex = ["^/v[0-9]+/"]
origin_group = "versioned"

[[site]]
name = "rest"
hosts = ["r.test"]
origin_group = "rest"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for (path, want) in [
            ("/v2/users", "versioned"),
            ("/v10/users?page=2", "versioned"),
            ("/vx/users", "rest"),
            ("/v2", "rest"),
            ("/api/v2/users", "rest"),
        ] {
            assert_eq!(at(&node, "r.test", path).await.text(), want, "{path}");
        }
        node.stop().await;
    })
    .await;
}

/// `methods` restrict a site to those request methods.
#[tokio::test]
async fn methods_route() {
    within(20, async {
        let (w, r) = (named("writes").await, named("reads").await);
        let text = [
            group("writes", &[&w]),
            group("reads", &[&r]),
            r#"
[[site]]
name = "writes"
hosts = ["m.test"]
methods = ["POST", "PUT"]
origin_group = "writes"

[[site]]
name = "reads"
hosts = ["m.test"]
origin_group = "reads"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for (method, want) in [
            (Method::GET, "reads"),
            (Method::POST, "writes"),
            (Method::PUT, "writes"),
            (Method::DELETE, "reads"),
        ] {
            let g = call(&node, method.clone(), "m.test", "/item").await;
            assert_eq!(g.text(), want, "{method}");
        }
        node.stop().await;
    })
    .await;
}

/// `schemes = ["http"]` takes plain-HTTP requests only; the same request over TLS goes
/// on to the next site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_routes_plain_http_and_tls_apart() {
    within(30, async {
        let (plain, secure) = (named("plain").await, named("secure").await);
        let dir = temp_path("schemes");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key, der) = write_cert(&dir, "s", &["s.test"]);
        let text = [
            format!(
                "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[[listen]]\naddress = \"127.0.0.1:0\"\n\
                 tls = {{ cert = {cert:?}, key = {key:?} }}\n\n"
            ),
            group("plain", &[&plain]),
            group("secure", &[&secure]),
            r#"
[[site]]
name = "plain"
hosts = ["s.test"]
schemes = ["http"]
origin_group = "plain"

[[site]]
name = "any"
hosts = ["s.test"]
origin_group = "secure"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "s.test", "/page").await.text(), "plain");
        let tls_addr = node.running.as_ref().unwrap().listen[1];
        let (status, body) = https_get(tls_addr, "s.test", &der, "/page").await;
        assert_eq!((status, body.as_str()), (200, "secure"));
        assert_eq!((plain.total(), secure.total()), (1, 1));
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// Of two sites that both match a request, the first in the file serves it; swapping
/// their order swaps the answer.
#[tokio::test]
async fn first_matching_site_in_file_order_wins() {
    within(20, async {
        let (one, two) = (named("one").await, named("two").await);
        // Neither site covers the other: one is limited by path, the other by method.
        let by_path = r#"
[[site]]
name = "by-path"
hosts = ["f.test"]
paths = ["/shared/"]
origin_group = "one"
"#;
        let by_method = r#"
[[site]]
name = "by-method"
hosts = ["f.test"]
methods = ["GET"]
origin_group = "two"
"#;
        let groups = [group("one", &[&one]), group("two", &[&two])].concat();
        let node = self::node(&format!("{groups}{by_path}{by_method}")).await;
        assert_eq!(at(&node, "f.test", "/shared/a").await.text(), "one");
        assert_eq!(at(&node, "f.test", "/other").await.text(), "two");
        node.stop().await;

        let node = self::node(&format!("{groups}{by_method}{by_path}")).await;
        assert_eq!(at(&node, "f.test", "/shared/a").await.text(), "two");
        let post = call(&node, Method::POST, "f.test", "/shared/a").await;
        assert_eq!(post.text(), "one");
        node.stop().await;
    })
    .await;
}

/// With a top-level `[[origin]]`, a request no site matches — unknown host, or a known
/// host on a path no site takes — goes to the default site, cached by `[cache]`.
#[tokio::test]
async fn unmatched_request_goes_to_the_default_site() {
    within(20, async {
        let app = named("app").await;
        let d = Origin::start(|_, n| Reply::ok(format!("default v{n}")).cc("max-age=60")).await;
        let text = [
            default_origin(&d),
            group("app", &[&app]),
            r#"
[[site]]
name = "app"
hosts = ["k.test"]
paths = ["/app/"]
origin_group = "app"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "k.test", "/app/x").await.text(), "app");
        assert_eq!(at(&node, "unknown.test", "/d").await.text(), "default v1");
        assert_eq!(at(&node, "k.test", "/other").await.text(), "default v1");
        let again = at(&node, "unknown.test", "/d").await;
        assert!(again.is_hit(), "{}", again.cache_status());
        assert_eq!(app.total(), 1);
        assert_eq!(d.count("/d"), 1);
        assert_eq!(d.count("/other"), 1);
        node.stop().await;
    })
    .await;
}

/// Without a top-level `[[origin]]`: 421 when no site serves the host, 404 when a site
/// serves the host but none this path or method; no origin is asked.
#[tokio::test]
async fn unmatched_request_without_default_gets_421_or_404() {
    within(20, async {
        let app = named("app").await;
        let text = [
            group("app", &[&app]),
            r#"
[[site]]
name = "app"
hosts = ["k.test"]
paths = ["/app/"]
methods = ["GET"]
origin_group = "app"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "k.test", "/app/x").await.status, 200);
        assert_eq!(at(&node, "unknown.test", "/app/x").await.status, 421);
        assert_eq!(at(&node, "k.test", "/other").await.status, 404);
        assert_eq!(
            call(&node, Method::POST, "k.test", "/app/x").await.status,
            404
        );
        assert_eq!(app.total(), 1);
        node.stop().await;
    })
    .await;
}

/// A site without `hosts` takes any host: nothing is misdirected (421), even without
/// a default site; an earlier site for one host still comes first.
#[tokio::test]
async fn site_without_hosts_matches_any_host() {
    within(20, async {
        let (special, any) = (named("special").await, named("any").await);
        let text = [
            group("special", &[&special]),
            group("any", &[&any]),
            r#"
[[site]]
name = "special"
hosts = ["special.test"]
origin_group = "special"

[[site]]
name = "any"
origin_group = "any"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "special.test", "/").await.text(), "special");
        for host in ["random.test", "Other.Example:81", "127.0.0.1"] {
            let g = at(&node, host, "/").await;
            assert_eq!((g.status, g.text().as_str()), (200, "any"), "{host}");
        }
        node.stop().await;
    })
    .await;
}

/// Each site's misses reach its own origin group and no other.
#[tokio::test]
async fn each_sites_misses_reach_its_own_group() {
    within(20, async {
        let a = versioned("max-age=60").await;
        let b = versioned("max-age=60").await;
        let c = versioned("max-age=60").await;
        let text = [
            group("a", &[&a]),
            group("b", &[&b]),
            group("c", &[&c]),
            r#"
[[site]]
name = "a"
hosts = ["a.test"]
origin_group = "a"

[[site]]
name = "b"
hosts = ["b.test"]
origin_group = "b"

[[site]]
name = "c"
hosts = ["c.test"]
origin_group = "c"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for i in 0..3 {
            at(&node, "a.test", &format!("/a{i}")).await;
        }
        for i in 0..5 {
            at(&node, "b.test", &format!("/b{i}")).await;
        }
        at(&node, "c.test", "/c").await;
        // Repeats are hits: no origin sees them.
        at(&node, "a.test", "/a0").await;
        at(&node, "c.test", "/c").await;
        assert_eq!((a.total(), b.total(), c.total()), (3, 5, 1));
        assert!(a.requests().iter().all(|s| s.path.starts_with("/a")));
        assert!(b.requests().iter().all(|s| s.path.starts_with("/b")));
        node.stop().await;
    })
    .await;
}

// ---- origin groups ----

/// A site's misses are spread over its group's servers by weight (1:2).
#[tokio::test]
async fn group_servers_share_by_weight() {
    within(20, async {
        let (light, heavy) = (named("light").await, named("heavy").await);
        let text = [
            weighted_group("pool", &[(&light, 1), (&heavy, 2)]),
            r#"
[[site]]
name = "pool"
hosts = ["w.test"]
origin_group = "pool"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for i in 0..60 {
            assert_eq!(at(&node, "w.test", &format!("/p{i}")).await.status, 200);
        }
        assert!(
            light.total().abs_diff(20) <= 3 && heavy.total().abs_diff(40) <= 3,
            "light {} heavy {}",
            light.total(),
            heavy.total()
        );
        node.stop().await;
    })
    .await;
}

/// A group whose only server refuses connections answers 502/503 for its site, while
/// another site's group keeps serving.
#[tokio::test]
async fn a_group_down_fails_only_its_site() {
    within(20, async {
        let (up, down) = (named("up").await, named("down").await);
        let text = [
            group("up", &[&up]),
            group("down", &[&down]),
            r#"
[[site]]
name = "up"
hosts = ["up.test"]
origin_group = "up"

[[site]]
name = "down"
hosts = ["down.test"]
origin_group = "down"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        down.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..4 {
            let g = at(&node, "down.test", &format!("/d{i}")).await;
            assert!(
                g.status == 502 || g.status == 503,
                "down site: {} {}",
                g.status,
                g.text()
            );
            let g = at(&node, "up.test", &format!("/u{i}")).await;
            assert_eq!((g.status, g.text().as_str()), (200, "up"));
        }
        node.stop().await;
    })
    .await;
}

/// `balance = "hash"` places a request by the site's cache key: one URL always reaches
/// the same server, also with its parameters in another order under `query = "sort"`,
/// and many URLs spread over both servers.
#[tokio::test]
async fn hash_balance_follows_the_sites_cache_key() {
    within(20, async {
        let (a, b) = (named("a").await, named("b").await);
        let text = [
            group("h", &[&a, &b]),
            "balance = \"hash\"\n\n".into(),
            r#"
[[site]]
name = "sharded"
hosts = ["h.test"]
origin_group = "h"
cache = { key = { query = "sort" } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for _ in 0..5 {
            at(&node, "h.test", "/item?x=1&y=2").await;
            at(&node, "h.test", "/item?y=2&x=1").await;
        }
        let (on_a, on_b) = (a.count("/item"), b.count("/item"));
        assert!(
            (on_a, on_b) == (10, 0) || (on_a, on_b) == (0, 10),
            "one key, one server: a {on_a} b {on_b}"
        );
        for i in 0..40 {
            at(&node, "h.test", &format!("/p{i}")).await;
        }
        assert!(
            a.total() > on_a && b.total() > on_b,
            "a {} b {}",
            a.total(),
            b.total()
        );
        node.stop().await;
    })
    .await;
}

// ---- cache policy per site ----

/// `pass = true`: a cacheable response is never stored (nor collapsed) for that site,
/// and `{cache}` says pass; another site on the same group stores it.
#[tokio::test]
async fn pass_site_never_stores() {
    within(20, async {
        let o = Origin::start(|s, n| {
            let r = Reply::ok(format!("v{n}")).cc("max-age=60");
            if s.path == "/slow" {
                r.delay_ms(200)
            } else {
                r
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "live"
hosts = ["live.test"]
origin_group = "g"
cache = { pass = true }
response_headers = { set = { "x-cache" = "{cache}" } }

[[site]]
name = "cached"
hosts = ["cached.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "live.test", "/feed").await.text(), "v1");
        let second = at(&node, "live.test", "/feed").await;
        assert_eq!(second.text(), "v2", "{}", second.cache_status());
        assert!(!second.is_hit());
        assert_eq!(second.header("x-cache"), Some("pass"));
        at(&node, "cached.test", "/page").await;
        assert!(at(&node, "cached.test", "/page").await.is_hit());
        assert_eq!((o.count("/feed"), o.count("/page")), (2, 1));
        // Not collapsed either: concurrent requests each reach the origin.
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (c, addr) = (client(), node.addr);
            tasks.push(tokio::spawn(async move {
                let h = [("host", "live.test")];
                send(&c, addr, Method::GET, "/slow", &h, Bytes::new()).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().status, 200);
        }
        assert_eq!(o.count("/slow"), 5);
        node.stop().await;
    })
    .await;
}

/// `default_ttl` makes a response without freshness a hit, for the statuses a cache may
/// store without one (200, 404, ...; not 302), but not one the origin said `max-age=0`
/// or `no-cache` for; a site without it does not store the bare response.
#[tokio::test]
async fn default_ttl_applies_only_without_origin_freshness() {
    within(20, async {
        let o = Origin::start(|s, n| {
            let r = Reply::ok(format!("v{n}"));
            match s.path.as_str() {
                "/zero" => r.cc("max-age=0"),
                "/nocache" => r.cc("no-cache"),
                "/missing" => r.status(404),
                "/found" => r.status(302).header("location", "/elsewhere"),
                _ => r,
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "ttl"
hosts = ["ttl.test"]
origin_group = "g"
cache = { default_ttl = "1m" }

[[site]]
name = "plain"
hosts = ["plain.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for path in ["/bare", "/zero", "/nocache", "/missing", "/found"] {
            at(&node, "ttl.test", path).await;
            at(&node, "ttl.test", path).await;
        }
        assert_eq!(o.count("/bare"), 1, "no freshness: default_ttl applies");
        assert_eq!(o.count("/missing"), 1, "a bare 404 too");
        assert_eq!(o.count("/zero"), 2, "max-age=0 is the origin's word");
        assert_eq!(o.count("/nocache"), 2, "no-cache is the origin's word");
        assert_eq!(o.count("/found"), 2, "a 302 needs explicit freshness");
        at(&node, "plain.test", "/plainbare").await;
        at(&node, "plain.test", "/plainbare").await;
        assert_eq!(o.count("/plainbare"), 2, "no default_ttl on this site");
        node.stop().await;
    })
    .await;
}

/// `status_ttl` by code ("404") and by class ("3xx"): a bare 404 and a bare 302 are
/// cached, a bare 410 listed in neither is not; a code wins over its class (301), and a
/// 5xx stays capped by `cache.max_error_ttl`.
#[tokio::test]
async fn status_ttl_by_code_and_class() {
    within(20, async {
        let o = Origin::start(|s, n| {
            let body = format!("v{n}");
            match s.path.as_str() {
                "/missing" => Reply::ok(body).status(404),
                "/moved" => Reply::ok(body).status(302).header("location", "/elsewhere"),
                "/perm" => Reply::ok(body).status(301).header("location", "/new"),
                "/error" => Reply::ok(body).status(500),
                _ => Reply::ok(body).status(410),
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[cache]
max_error_ttl = "1s"

[[site]]
name = "s"
hosts = ["s.test"]
origin_group = "g"
cache = { status_ttl = { "404" = "1h", "3xx" = "1h", "301" = "1s", "5xx" = "1h" } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let paths = [
            ("/missing", 404),
            ("/moved", 302),
            ("/perm", 301),
            ("/error", 500),
            ("/gone", 410),
        ];
        for (path, status) in paths {
            assert_eq!(at(&node, "s.test", path).await.status, status, "{path}");
            let again = at(&node, "s.test", path).await;
            assert_eq!(again.status, status, "{path}");
        }
        assert_eq!(o.count("/missing"), 1, "404 cached per \"404\"");
        assert_eq!(o.count("/moved"), 1, "302 cached per \"3xx\"");
        assert_eq!(o.count("/perm"), 1, "301 cached per \"301\"");
        assert_eq!(o.count("/error"), 1, "500 cached per \"5xx\"");
        assert_eq!(o.count("/gone"), 2, "410 has no status_ttl");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        for (path, _) in &paths[..4] {
            at(&node, "s.test", path).await;
        }
        assert_eq!(o.count("/missing"), 1);
        assert_eq!(o.count("/moved"), 1, "3xx: an hour");
        assert_eq!(o.count("/perm"), 2, "the code's 1s wins over its class");
        assert_eq!(o.count("/error"), 2, "5xx capped by max_error_ttl = 1s");
        node.stop().await;
    })
    .await;
}

/// `force_ttl` overrides `max-age=0`, `no-cache` and `must-revalidate`, but `no-store`,
/// `private` and Set-Cookie still keep a response out.
#[tokio::test]
async fn force_ttl_overrides_freshness_not_no_store() {
    within(20, async {
        let o = Origin::start(|s, n| {
            let r = Reply::ok(format!("v{n}"));
            match s.path.as_str() {
                "/zero" => r.cc("max-age=0"),
                "/nocache" => r.cc("no-cache"),
                "/mustrev" => r.cc("max-age=0, must-revalidate"),
                "/private" => r.cc("private, max-age=60"),
                "/cookie" => r.header("set-cookie", "id=1"),
                _ => r.cc("no-store"),
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "forced"
hosts = ["f.test"]
origin_group = "g"
cache = { force_ttl = "1d" }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let paths = [
            "/zero", "/nocache", "/mustrev", "/nostore", "/private", "/cookie",
        ];
        for path in paths {
            at(&node, "f.test", path).await;
            at(&node, "f.test", path).await;
        }
        assert_eq!(o.count("/zero"), 1);
        assert_eq!(o.count("/nocache"), 1);
        assert_eq!(o.count("/mustrev"), 1);
        assert_eq!(o.count("/nostore"), 2, "no-store is never stored");
        assert_eq!(o.count("/private"), 2, "private is never stored");
        assert_eq!(o.count("/cookie"), 2, "Set-Cookie is not stored");
        node.stop().await;
    })
    .await;
}

/// `grace` per site: past its freshness, the copy is served stale at once while one
/// background fetch refreshes it; a site without grace waits for the origin.
#[tokio::test]
async fn grace_per_site() {
    within(20, async {
        let o = versioned("max-age=1").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "graceful"
hosts = ["grace.test"]
origin_group = "g"
cache = { grace = "1m" }

[[site]]
name = "strict"
hosts = ["strict.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at(&node, "grace.test", "/g").await;
        at(&node, "strict.test", "/s").await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let g = at(&node, "grace.test", "/g").await;
        assert_eq!(g.text(), "v1", "stale at once: {}", g.cache_status());
        while o.count("/g") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut refreshed = at(&node, "grace.test", "/g").await;
        while refreshed.text() != "v2" {
            tokio::time::sleep(Duration::from_millis(10)).await;
            refreshed = at(&node, "grace.test", "/g").await;
        }
        assert_eq!(o.count("/g"), 2, "one background refresh");
        let s = at(&node, "strict.test", "/s").await;
        assert_eq!(s.text(), "v2", "no grace: {}", s.cache_status());
        node.stop().await;
    })
    .await;
}

/// `keep` per site: past its freshness, a copy with a validator is kept for a
/// conditional request only on the site that keeps it; with the global keep at zero,
/// the other site's request to the origin is unconditional.
#[tokio::test]
async fn keep_per_site() {
    within(20, async {
        let o = Origin::start(|s, n| {
            if s.headers.contains_key("if-none-match") {
                Reply::ok("")
                    .status(304)
                    .cc("max-age=1")
                    .header("etag", "\"e1\"")
            } else {
                Reply::ok(format!("v{n}"))
                    .cc("max-age=1")
                    .header("etag", "\"e1\"")
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[cache]
default_keep = "0s"
default_stale_if_error = "0s"

[[site]]
name = "kept"
hosts = ["kept.test"]
origin_group = "g"
cache = { keep = "1h" }

[[site]]
name = "dropped"
hosts = ["dropped.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at(&node, "kept.test", "/k").await;
        at(&node, "dropped.test", "/d").await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let g = at(&node, "kept.test", "/k").await;
        assert_eq!(
            (g.status, g.text().as_str()),
            (200, "v1"),
            "{}",
            g.cache_status()
        );
        let conditional = |path: &str| {
            o.requests()
                .iter()
                .filter(|s| s.path == path && s.headers.contains_key("if-none-match"))
                .count()
        };
        assert_eq!(conditional("/k"), 1, "the kept copy was revalidated");
        let g = at(&node, "dropped.test", "/d").await;
        assert_eq!(g.text(), "v2");
        assert_eq!(conditional("/d"), 0, "nothing kept to revalidate");
        node.stop().await;
    })
    .await;
}

/// `stale_if_error` per site: with the global default at zero, only the site that sets
/// it serves its stale copy when the origin turns to 503.
#[tokio::test]
async fn stale_if_error_per_site() {
    within(20, async {
        let o = versioned("max-age=1").await;
        let text = [
            group("g", &[&o]),
            r#"
[cache]
default_stale_if_error = "0s"

[[site]]
name = "sie"
hosts = ["sie.test"]
origin_group = "g"
cache = { stale_if_error = "10m" }

[[site]]
name = "strict"
hosts = ["strict.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "sie.test", "/a").await.text(), "v1");
        assert_eq!(at(&node, "strict.test", "/b").await.text(), "v1");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        o.fail_503();
        let g = at(&node, "sie.test", "/a").await;
        assert_eq!((g.status, g.text().as_str()), (200, "v1"), "stale copy");
        assert!(
            g.cache_status().contains("fwd=stale"),
            "{}",
            g.cache_status()
        );
        let g = at(&node, "strict.test", "/b").await;
        assert_eq!(
            g.status,
            503,
            "no stale-if-error here: {}",
            g.cache_status()
        );
        node.stop().await;
    })
    .await;
}

/// `max_object_size` per site: a larger body streams through whole and is not stored;
/// the same body is stored for a site without the limit.
#[tokio::test]
async fn max_object_size_per_site() {
    within(20, async {
        let o = Origin::start(|_, _| Reply::ok(vec![b'x'; 4096]).cc("max-age=60")).await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "small"
hosts = ["small.test"]
origin_group = "g"
cache = { max_object_size = "1KiB" }

[[site]]
name = "big"
hosts = ["big.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for _ in 0..2 {
            let g = at(&node, "small.test", "/blob").await;
            assert_eq!((g.status, g.body.len()), (200, 4096));
        }
        assert_eq!(o.count("/blob"), 2, "over the site's limit: not stored");
        at(&node, "big.test", "/bigblob").await;
        let g = at(&node, "big.test", "/bigblob").await;
        assert!(g.is_hit() && g.body.len() == 4096, "{}", g.cache_status());
        assert_eq!(o.count("/bigblob"), 1);
        node.stop().await;
    })
    .await;
}

/// `keep_cookies = ["session"]` with `cookies = "pass"`: tracking cookies are removed
/// (the page is cached and the origin never sees them); a session cookie passes the
/// cache and reaches the origin.
#[tokio::test]
async fn keep_cookies_with_pass() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "www"
hosts = ["www.test"]
origin_group = "g"
cache = { keep_cookies = ["session"], cookies = "pass" }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let first = at_with(
            &node,
            "www.test",
            "/page",
            &[("cookie", "_ga=GA1.2; _fbp=fb.1")],
        )
        .await;
        assert_eq!(first.text(), "v1");
        assert_eq!(
            last_cookie(&o),
            "",
            "tracking cookies never reach the origin"
        );
        let hit = at_with(&node, "www.test", "/page", &[("cookie", "_ga=other")]).await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(o.count("/page"), 1);

        let session = at_with(
            &node,
            "www.test",
            "/page",
            &[("cookie", "session=abc; _ga=x")],
        )
        .await;
        assert_eq!(session.text(), "v2", "{}", session.cache_status());
        let seen = last_cookie(&o);
        assert!(seen.contains("session=abc"), "origin saw {seen:?}");
        assert!(!seen.contains("_ga"), "origin saw {seen:?}");
        at_with(&node, "www.test", "/page", &[("cookie", "session=abc")]).await;
        assert_eq!(o.count("/page"), 3, "a session passes every time");
        let anon = at(&node, "www.test", "/page").await;
        assert_eq!(anon.text(), "v1", "passed responses were not stored");
        node.stop().await;
    })
    .await;
}

/// `cookies = "strip"`: every cookie is removed before lookup and from the request to
/// the origin, so requests with different cookies share one cached copy.
#[tokio::test]
async fn cookies_strip() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "assets"
hosts = ["a.test"]
origin_group = "g"
cache = { cookies = "strip" }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at_with(
            &node,
            "a.test",
            "/app.js",
            &[("cookie", "session=1; lang=de")],
        )
        .await;
        assert_eq!(last_cookie(&o), "");
        let g = at_with(&node, "a.test", "/app.js", &[("cookie", "session=2")]).await;
        assert!(g.is_hit(), "{}", g.cache_status());
        assert_eq!(o.count("/app.js"), 1);
        node.stop().await;
    })
    .await;
}

/// `strip_cookies = ["_ga"]`: that cookie is removed (a request left with no cookie is
/// cached); any other cookie still passes the cache (the `[cache]` default) without it.
#[tokio::test]
async fn strip_cookies_removes_the_named_ones() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "www"
hosts = ["w.test"]
origin_group = "g"
cache = { strip_cookies = ["_ga"] }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at_with(&node, "w.test", "/p", &[("cookie", "_ga=1")]).await;
        assert_eq!(last_cookie(&o), "");
        let hit = at_with(&node, "w.test", "/p", &[("cookie", "_ga=2")]).await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        let user = at_with(&node, "w.test", "/p", &[("cookie", "_ga=3; user=u")]).await;
        assert_eq!(user.text(), "v2", "{}", user.cache_status());
        let seen = last_cookie(&o);
        assert!(
            seen.contains("user=u") && !seen.contains("_ga"),
            "origin saw {seen:?}"
        );
        assert_eq!(o.count("/p"), 2);
        node.stop().await;
    })
    .await;
}

/// `set_cookie = "strip"`: the response is stored and no client, not even the first,
/// sees the Set-Cookie. The default (`refuse`) relays it and does not store.
#[tokio::test]
async fn set_cookie_strip_versus_refuse() {
    within(20, async {
        let o = Origin::start(|_, n| {
            Reply::ok(format!("v{n}"))
                .cc("max-age=60")
                .header("set-cookie", "id=42; Path=/")
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "strip"
hosts = ["strip.test"]
origin_group = "g"
cache = { set_cookie = "strip" }

[[site]]
name = "refuse"
hosts = ["refuse.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let first = at(&node, "strip.test", "/s").await;
        assert_eq!(
            first.header("set-cookie"),
            None,
            "stripped for the first client too"
        );
        let second = at(&node, "strip.test", "/s").await;
        assert!(second.is_hit(), "{}", second.cache_status());
        assert_eq!(second.header("set-cookie"), None);
        assert_eq!(o.count("/s"), 1);

        let first = at(&node, "refuse.test", "/r").await;
        assert_eq!(first.header("set-cookie"), Some("id=42; Path=/"));
        let second = at(&node, "refuse.test", "/r").await;
        assert_eq!(second.text(), "v2", "not stored: {}", second.cache_status());
        assert_eq!(second.header("set-cookie"), Some("id=42; Path=/"));
        node.stop().await;
    })
    .await;
}

/// `invalidate_unsafe = false`: a successful POST leaves the cached copy; by default it
/// invalidates it.
#[tokio::test]
async fn invalidate_unsafe_per_site() {
    within(20, async {
        let o = Origin::start(|s, n| {
            if s.method == Method::POST {
                Reply::ok("posted").cc("no-store")
            } else {
                Reply::ok(format!("v{n}")).cc("max-age=60")
            }
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "keep"
hosts = ["keep.test"]
origin_group = "g"
cache = { invalidate_unsafe = false }

[[site]]
name = "default"
hosts = ["inval.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        for host in ["keep.test", "inval.test"] {
            let path = format!("/{host}");
            at(&node, host, &path).await;
            assert!(at(&node, host, &path).await.is_hit(), "{host}");
            assert_eq!(call(&node, Method::POST, host, &path).await.status, 200);
            at(&node, host, &path).await;
        }
        assert_eq!(gets(&o, "/keep.test"), 1, "the POST did not purge");
        assert_eq!(gets(&o, "/inval.test"), 2, "the POST purged");
        node.stop().await;
    })
    .await;
}

// ---- per-site cache key ----

/// `key.query = "sort"`: parameters in another order are the same object.
#[tokio::test]
async fn key_query_sort() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["q.test"]
origin_group = "g"
cache = { key = { query = "sort" } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at(&node, "q.test", "/search?b=2&a=1").await;
        let g = at(&node, "q.test", "/search?a=1&b=2").await;
        assert!(g.is_hit(), "{}", g.cache_status());
        at(&node, "q.test", "/search?a=1&b=3").await;
        assert_eq!(o.count("/search"), 2);
        node.stop().await;
    })
    .await;
}

/// `key.query = "drop"`: the query is not part of the key.
#[tokio::test]
async fn key_query_drop() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["q.test"]
origin_group = "g"
cache = { key = { query = "drop" } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at(&node, "q.test", "/img?x=1").await;
        assert!(at(&node, "q.test", "/img?y=2").await.is_hit());
        assert!(at(&node, "q.test", "/img").await.is_hit());
        assert_eq!(o.count("/img"), 1);
        node.stop().await;
    })
    .await;
}

/// `key.drop_params`: the named parameters are not part of the key, the others are.
#[tokio::test]
async fn key_drop_params() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["q.test"]
origin_group = "g"
cache = { key = { drop_params = ["utm_source", "fbclid"] } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        at(&node, "q.test", "/item?id=1&utm_source=news").await;
        assert!(at(&node, "q.test", "/item?id=1").await.is_hit());
        assert!(at(&node, "q.test", "/item?fbclid=z&id=1").await.is_hit());
        assert!(!at(&node, "q.test", "/item?id=2").await.is_hit());
        assert_eq!(o.count("/item"), 2);
        node.stop().await;
    })
    .await;
}

/// `key.headers = ["x-device"]`: each device value is its own variant (both hits once
/// filled), and the response says `Vary: x-device`.
#[tokio::test]
async fn key_headers_select_variants() {
    within(20, async {
        let o = Origin::start(|s, _| {
            let device = s
                .headers
                .get("x-device")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            Reply::ok(format!("for {device}")).cc("max-age=60")
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["d.test"]
origin_group = "g"
cache = { key = { headers = ["x-device"] } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let vary_names_device = |g: &Got| {
            g.headers
                .get_all("vary")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|f| f.trim().eq_ignore_ascii_case("x-device"))
                })
        };
        for device in ["mobile", "desktop"] {
            let g = at_with(&node, "d.test", "/home", &[("x-device", device)]).await;
            assert_eq!(g.text(), format!("for {device}"));
            assert!(vary_names_device(&g), "{:?}", g.headers);
        }
        for device in ["mobile", "desktop"] {
            let g = at_with(&node, "d.test", "/home", &[("x-device", device)]).await;
            assert_eq!(g.text(), format!("for {device}"));
            assert!(g.is_hit(), "{device}: {}", g.cache_status());
            assert!(vary_names_device(&g), "{:?}", g.headers);
        }
        assert_eq!(o.count("/home"), 2);
        node.stop().await;
    })
    .await;
}

/// `key.cookies = ["lang"]` with `cookies = "cache"`: `lang=de` and `lang=en` are two
/// cached variants; other cookies do not matter.
#[tokio::test]
async fn key_cookies_select_variants() {
    within(20, async {
        let o = Origin::start(|s, _| {
            let cookie = s
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let lang = cookie
                .split(';')
                .filter_map(|c| c.trim().strip_prefix("lang="))
                .next()
                .unwrap_or("none")
                .to_owned();
            Reply::ok(format!("lang {lang}")).cc("max-age=60")
        })
        .await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["l.test"]
origin_group = "g"
cache = { cookies = "cache", key = { cookies = ["lang"] } }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let de = at_with(&node, "l.test", "/news", &[("cookie", "lang=de; other=1")]).await;
        let en = at_with(&node, "l.test", "/news", &[("cookie", "lang=en")]).await;
        assert_eq!(
            (de.text().as_str(), en.text().as_str()),
            ("lang de", "lang en")
        );
        let de = at_with(&node, "l.test", "/news", &[("cookie", "other=2; lang=de")]).await;
        assert!(de.is_hit(), "{}", de.cache_status());
        assert_eq!(de.text(), "lang de");
        let en = at_with(&node, "l.test", "/news", &[("cookie", "lang=en; x=9")]).await;
        assert!(en.is_hit(), "{}", en.cache_status());
        assert_eq!(en.text(), "lang en");
        assert_eq!(o.count("/news"), 2);
        let vary = en.header("vary").unwrap_or("").to_ascii_lowercase();
        assert!(vary.contains("cookie"), "Vary: {vary}");
        // A client cannot pick a variant by sending the internal field itself.
        let forged = at_with(
            &node,
            "l.test",
            "/news",
            &[("lacquer-key-cookie-lang", "de"), ("cookie", "x=1")],
        )
        .await;
        assert_eq!(forged.text(), "lang none", "{}", forged.cache_status());
        let leaked = o
            .requests()
            .iter()
            .flat_map(|s| s.headers.keys().cloned().collect::<Vec<_>>())
            .filter(|k| k.as_str().starts_with("lacquer-key-cookie-"))
            .count();
        assert_eq!(leaked, 0, "no internal field reaches the origin");
        node.stop().await;
    })
    .await;
}

/// An admin purge by URL finds the object under the key rules of the site the URL
/// routes to: under `query = "sort"`, the parameters in another order name it.
#[tokio::test]
async fn purge_uses_the_sites_key_rules() {
    within(20, async {
        let o = versioned("max-age=60").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "s"
hosts = ["q.test"]
origin_group = "g"
cache = { key = { query = "sort" } }
"#
            .into(),
        ]
        .concat();
        let mut cfg = parse(&text);
        cfg.admin.enabled = true;
        let node = start(cfg).await;
        at(&node, "q.test", "/s?b=2&a=1").await;
        assert!(at(&node, "q.test", "/s?b=2&a=1").await.is_hit());
        let body = r#"{"urls":["http://q.test/s?a=1&b=2"]}"#;
        let r = node.admin(Method::POST, "/purge", None, body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["total"]["objects"], 1, "{}", r.text());
        let g = at(&node, "q.test", "/s?b=2&a=1").await;
        assert!(!g.is_hit(), "{}", g.cache_status());
        assert_eq!(o.count("/s"), 2);
        node.stop().await;
    })
    .await;
}

// ---- header edits ----

fn edits_site() -> &'static str {
    r#"
[[site]]
name = "edits"
hosts = ["edits.test"]
origin_group = "g"
request_headers = { set = { "x-client" = "{client_ip}", "x-host" = "{host}", "x-path" = "{path}", "x-site" = "{site}", "x-uri" = "{uri}", "x-query" = "{query}", "x-scheme" = "{scheme}" }, add = { "x-tag" = "lacquer" }, remove = ["x-secret"] }
response_headers = { set = { "x-cache" = "{cache}" }, add = { "x-powered-by" = "lacquer" }, remove = ["x-internal", "x-powered-by"] }
"#
}

/// Request edits reach the origin (set replaces, add appends, remove removes, with
/// `{client_ip}`, `{host}`, `{path}`, `{uri}`, `{query}`, `{scheme}`, `{site}`); response edits reach the client, with
/// `{cache}` saying miss then hit, applied remove, then set, then add.
#[tokio::test]
async fn header_edits_on_request_and_response() {
    within(20, async {
        let o = Origin::start(|_, _| {
            Reply::ok("edited")
                .cc("max-age=60")
                .header("x-internal", "secret")
                .header("x-powered-by", "php")
        })
        .await;
        let text = [group("g", &[&o]), edits_site().into()].concat();
        let node = node(&text).await;
        let first = at_with(
            &node,
            "edits.test",
            "/a/b?q=1",
            &[
                ("x-secret", "s3"),
                ("x-site", "forged"),
                ("x-tag", "client"),
            ],
        )
        .await;
        let seen = o.last().unwrap();
        assert_eq!(values(&seen, "x-client"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-host"), ["edits.test"]);
        assert_eq!(values(&seen, "x-path"), ["/a/b"]);
        assert_eq!(values(&seen, "x-uri"), ["/a/b?q=1"]);
        assert_eq!(values(&seen, "x-query"), ["q=1"]);
        assert_eq!(values(&seen, "x-scheme"), ["http"]);
        assert_eq!(values(&seen, "x-site"), ["edits"], "set replaces");
        assert!(values(&seen, "x-secret").is_empty(), "removed");
        let tags = values(&seen, "x-tag").join(",");
        assert!(
            tags.contains("client") && tags.contains("lacquer"),
            "add appends: {tags}"
        );

        assert_eq!(first.header("x-cache"), Some("miss"));
        assert_eq!(first.header("x-internal"), None);
        let powered: Vec<_> = first.headers.get_all("x-powered-by").iter().collect();
        assert_eq!(powered, ["lacquer"], "removed, then added");
        let second = at(&node, "edits.test", "/a/b?q=1").await;
        assert!(second.is_hit(), "{}", second.cache_status());
        assert_eq!(second.header("x-cache"), Some("hit"));
        assert_eq!(second.header("x-internal"), None);
        node.stop().await;
    })
    .await;
}

/// A path carrying an encoded CR LF cannot inject a header: `{path}` stays one value
/// (as received, still percent-encoded) and no `X-Evil` field appears anywhere.
#[tokio::test]
async fn hostile_path_cannot_inject_a_header() {
    within(20, async {
        let o = Origin::start(|_, _| Reply::ok("ok").cc("no-store")).await;
        let text = [group("g", &[&o]), edits_site().into()].concat();
        let node = node(&text).await;
        let g = at(&node, "edits.test", "/%0d%0aX-Evil:%201").await;
        assert_eq!(g.status, 200);
        assert!(g.headers.get("x-evil").is_none());
        let seen = o.last().unwrap();
        assert!(seen.headers.get("x-evil").is_none(), "{:?}", seen.headers);
        let path = values(&seen, "x-path");
        assert_eq!(path.len(), 1, "{path:?}");
        assert_eq!(path[0].to_ascii_lowercase(), "/%0d%0ax-evil:%201");

        // The same over a raw socket, with the bytes exactly as a client may send them.
        let raw = raw(
            node.addr,
            b"GET /x%0D%0AX-Evil:%201%0D%0A HTTP/1.1\r\nHost: edits.test\r\nConnection: close\r\n\r\n",
            5,
        )
        .await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(!raw.to_ascii_lowercase().contains("\nx-evil"), "{raw}");
        let seen = o.last().unwrap();
        assert!(seen.headers.get("x-evil").is_none(), "{:?}", seen.headers);
        node.stop().await;
    })
    .await;
}

// ---- answers without an origin ----

/// http→https: a site for plain HTTP only answers 301 to `https://{host}{uri}`, the
/// query kept; the origin is never asked.
#[tokio::test]
async fn redirect_http_to_https_keeps_the_query() {
    within(20, async {
        let o = named("www").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "https"
hosts = ["www.example.com"]
schemes = ["http"]
redirect = { status = 301, location = "https://{host}{uri}" }

[[site]]
name = "www"
hosts = ["www.example.com"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let g = at(&node, "www.example.com", "/a/b?x=1&y=2").await;
        assert_eq!(g.status, 301);
        assert_eq!(
            g.header("location"),
            Some("https://www.example.com/a/b?x=1&y=2")
        );
        let g = at(&node, "www.example.com", "/").await;
        assert_eq!(g.header("location"), Some("https://www.example.com/"));
        assert_eq!(o.total(), 0);
        node.stop().await;
    })
    .await;
}

/// `respond`: a fixed maintenance page with its status, content type and body; no
/// origin request.
#[tokio::test]
async fn respond_serves_a_fixed_page() {
    within(20, async {
        let o = named("app").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "maintenance"
hosts = ["m.test"]
respond = { status = 503, content_type = "text/html", body = "<h1>Back soon</h1>" }

[[site]]
name = "app"
hosts = ["app.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let g = at(&node, "m.test", "/any/path?x=1").await;
        assert_eq!(g.status, 503);
        assert!(
            g.header("content-type")
                .unwrap_or("")
                .starts_with("text/html"),
            "{:?}",
            g.header("content-type")
        );
        assert_eq!(g.text(), "<h1>Back soon</h1>");
        assert_eq!(o.total(), 0);
        assert_eq!(at(&node, "app.test", "/").await.text(), "app");
        node.stop().await;
    })
    .await;
}

/// `allow` / `deny` by client network: 127.0.0.1 is let in by `127.0.0.0/8`, refused
/// (403, no origin request) when only `10.0.0.0/8` is allowed or when it is denied.
#[tokio::test]
async fn allow_and_deny_by_client_network() {
    within(20, async {
        let o = named("app").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "in"
hosts = ["in.test"]
origin_group = "g"
allow = ["127.0.0.0/8"]

[[site]]
name = "out"
hosts = ["out.test"]
origin_group = "g"
allow = ["10.0.0.0/8"]

[[site]]
name = "denied"
hosts = ["deny.test"]
origin_group = "g"
allow = ["127.0.0.0/8"]
deny = ["127.0.0.1/32"]
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        assert_eq!(at(&node, "in.test", "/").await.status, 200);
        assert_eq!(o.total(), 1);
        assert_eq!(at(&node, "out.test", "/").await.status, 403);
        assert_eq!(at(&node, "deny.test", "/").await.status, 403);
        assert_eq!(o.total(), 1, "refused requests never reach the origin");
        node.stop().await;
    })
    .await;
}

/// The address `allow` checks (and `{client_ip}` renders) is the client's after
/// `[client] trusted_proxies`: X-Forwarded-For from a trusted peer is believed, from
/// anyone else ignored.
#[tokio::test]
async fn allow_uses_the_client_address_after_trusted_proxies() {
    within(20, async {
        let o = named("office").await;
        let site = r#"
[[site]]
name = "office"
hosts = ["office.test"]
origin_group = "g"
allow = ["10.1.0.0/16"]
request_headers = { set = { "x-client" = "{client_ip}" } }
"#;
        let xff = |ip| [("x-forwarded-for", ip)];
        let trusted = [
            group("g", &[&o]),
            "[client]\ntrusted_proxies = [\"127.0.0.0/8\"]\n".into(),
            site.into(),
        ]
        .concat();
        let node = node(&trusted).await;
        let g = at_with(&node, "office.test", "/", &xff("10.1.2.3")).await;
        assert_eq!(g.status, 200);
        assert_eq!(values(&o.last().unwrap(), "x-client"), ["10.1.2.3"]);
        let g = at_with(&node, "office.test", "/", &xff("192.0.2.7")).await;
        assert_eq!(g.status, 403);
        assert_eq!(at(&node, "office.test", "/").await.status, 403);
        node.stop().await;

        let untrusted = [group("g", &[&o]), site.into()].concat();
        let node = self::node(&untrusted).await;
        let g = at_with(&node, "office.test", "/", &xff("10.1.2.3")).await;
        assert_eq!(
            g.status, 403,
            "a client's own X-Forwarded-For is not believed"
        );
        assert_eq!(o.total(), 1);
        node.stop().await;
    })
    .await;
}

/// `rate_limit = { rate = 1, burst = 2 }`: three immediate requests pass, the fourth
/// gets 429 with `Retry-After` of at least a second; another site is not limited.
#[tokio::test]
async fn rate_limit_per_site() {
    within(20, async {
        let o = named("app").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "limited"
hosts = ["rl.test"]
origin_group = "g"
rate_limit = { rate = 1, burst = 2 }

[[site]]
name = "free"
hosts = ["free.test"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for i in 0..4 {
            let g = at(&node, "rl.test", &format!("/r{i}")).await;
            statuses.push(g.status);
            retry_after = g.header("retry-after").map(str::to_owned);
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        let secs: u64 = retry_after
            .as_deref()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("Retry-After: {retry_after:?}"));
        assert!(secs >= 1, "Retry-After {secs}");
        assert_eq!(
            o.count("/r3"),
            0,
            "the refused request never reached the origin"
        );
        for i in 0..10 {
            assert_eq!(at(&node, "free.test", &format!("/f{i}")).await.status, 200);
        }
        node.stop().await;
    })
    .await;
}

/// The value of one sample of the Prometheus exposition, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `max_clients` bounds the clients a site's limiter tracks, forgetting the least
/// recently seen first: a forgotten client starts again with a full bucket. Clients are
/// told apart by X-Forwarded-For from a trusted proxy; the gauge and the refusal
/// counter say what happened.
#[tokio::test]
async fn rate_limit_tracks_at_most_max_clients() {
    within(20, async {
        let o = named("app").await;
        let text = [
            group("g", &[&o]),
            r#"
[client]
trusted_proxies = ["127.0.0.0/8"]

[[site]]
name = "limited"
hosts = ["rl.test"]
origin_group = "g"
rate_limit = { rate = 0.01, burst = 0, max_clients = 2 }
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let from = |ip: &'static str| {
            let node = &node;
            async move {
                at_with(node, "rl.test", "/", &[("x-forwarded-for", ip)])
                    .await
                    .status
            }
        };
        assert_eq!(from("10.0.0.1").await, 200);
        assert_eq!(from("10.0.0.1").await, 429, "one request per 100s");
        assert_eq!(from("10.0.0.2").await, 200);
        assert_eq!(from("10.0.0.3").await, 200, "10.0.0.1 is forgotten for it");
        assert_eq!(
            from("10.0.0.1").await,
            200,
            "forgotten: a full bucket again"
        );
        assert_eq!(from("10.0.0.3").await, 429, "recently seen: still tracked");
        let metrics = node.admin(Method::GET, "/metrics", None, "").await.text();
        let clients = "lacquer_site_rate_limit_clients{site=\"limited\"}";
        assert_eq!(sample(&metrics, clients), 2.0, "{metrics}");
        let refused = "lacquer_site_rate_limited_total{site=\"limited\"}";
        assert_eq!(sample(&metrics, refused), 2.0, "{metrics}");
        let by_status = metrics.lines().any(|l| {
            l.starts_with("lacquer_site_requests_total{")
                && l.contains("site=\"limited\"")
                && l.contains("status=\"4xx\"")
        });
        assert!(by_status, "site requests by status class: {metrics}");
        node.stop().await;
    })
    .await;
}

/// `response_headers` edit every response of the site to the client, the answers it
/// gives without an origin included (a redirect's HSTS, a fixed page's robots tag).
#[tokio::test]
async fn response_edits_apply_to_answers_too() {
    within(20, async {
        let o = named("app").await;
        let text = [
            group("g", &[&o]),
            r#"
[[site]]
name = "https"
schemes = ["http"]
hosts = ["www.example.com"]
redirect = { status = 308, location = "https://{host}{uri}" }
response_headers = { set = { "strict-transport-security" = "max-age=63072000" } }

[[site]]
name = "robots"
exact_paths = ["/robots.txt"]
respond = { status = 200, body = "User-agent: *\nDisallow: /\n" }
response_headers = { set = { "x-robots-tag" = "noindex", "x-site" = "{site}" } }

[[site]]
name = "app"
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let node = node(&text).await;
        let g = at(&node, "www.example.com", "/x").await;
        assert_eq!(g.status, 308);
        assert_eq!(
            g.header("strict-transport-security"),
            Some("max-age=63072000"),
            "{:?}",
            g.headers
        );
        let g = at(&node, "other.test", "/robots.txt").await;
        assert_eq!(g.text(), "User-agent: *\nDisallow: /\n");
        assert_eq!(g.header("x-robots-tag"), Some("noindex"), "{:?}", g.headers);
        assert_eq!(g.header("x-site"), Some("robots"));
        assert_eq!(o.total(), 0);
        node.stop().await;
    })
    .await;
}

// ---- debug header ----

fn two_sites(o: &Origin) -> String {
    [
        group("g", &[o]),
        r#"
[[site]]
name = "app"
hosts = ["app.test"]
origin_group = "g"

[[site]]
name = "fixed"
hosts = ["fixed.test"]
respond = { status = 200, body = "fixed" }
"#
        .into(),
    ]
    .concat()
}

/// `[log] site_header = true` names the serving site on every response, proxied or
/// answered by the site itself.
#[tokio::test]
async fn site_header_names_the_site() {
    within(20, async {
        let o = named("app").await;
        let text = format!("{}\n[log]\nsite_header = true\n", two_sites(&o));
        let node = node(&text).await;
        let g = at(&node, "app.test", "/").await;
        assert_eq!(g.header("x-lacquer-site"), Some("app"));
        let g = at(&node, "fixed.test", "/").await;
        assert_eq!(g.header("x-lacquer-site"), Some("fixed"));
        node.stop().await;
    })
    .await;
}

/// Without `site_header`, no `X-Lacquer-Site`.
#[tokio::test]
async fn site_header_absent_by_default() {
    within(20, async {
        let o = named("app").await;
        let node = node(&two_sites(&o)).await;
        for host in ["app.test", "fixed.test"] {
            let g = at(&node, host, "/").await;
            assert_eq!(g.status, 200);
            assert_eq!(g.header("x-lacquer-site"), None, "{host}");
        }
        node.stop().await;
    })
    .await;
}

// ---- reload ----

/// A config file whose site `app.test` sends misses to group `app_group`.
fn reload_config(one: &Origin, two: &Origin, app_group: &str, one_balance: &str) -> String {
    [
        "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [log]\naccess_log = false\n\n"
            .into(),
        group("one", &[one]),
        format!("balance = \"{one_balance}\"\n\n"),
        group("two", &[two]),
        format!(
            "[[site]]\nname = \"app\"\nhosts = [\"app.test\"]\norigin_group = \"{app_group}\"\n\n\
             [[site]]\nname = \"other\"\nhosts = [\"other.test\"]\norigin_group = \"two\"\n"
        ),
    ]
    .concat()
}

/// Four clients loop GETs while a reload moves `app.test` to another group (and
/// rebuilds the old group with new settings): no request fails, each client sees the
/// switch once and for good, a request in flight at the origin finishes, and after the
/// reload the new routing applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_sites_under_load() {
    within(30, async {
        let one = Origin::start(|s, _| {
            let r = Reply::ok("one").cc("no-store");
            if s.path == "/slow" {
                r.delay_ms(800)
            } else {
                r
            }
        })
        .await;
        let two = named("two").await;
        let dir = temp_path("sites-reload");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lacquer.toml");
        std::fs::write(&path, reload_config(&one, &two, "one", "round-robin")).unwrap();
        let node = start(Config::load(&path).unwrap()).await;
        let live = node.running.as_ref().unwrap().live.clone();
        assert_eq!(at(&node, "app.test", "/first").await.text(), "one");

        let (c, addr) = (client(), node.addr);
        let in_flight = tokio::spawn(async move {
            send(
                &c,
                addr,
                Method::GET,
                "/slow",
                &[("host", "app.test")],
                Bytes::new(),
            )
            .await
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Vec::new();
        for w in 0..4 {
            let (c, addr, stop) = (client(), node.addr, stop.clone());
            load.push(tokio::spawn(async move {
                let mut bodies = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let g = send(
                        &c,
                        addr,
                        Method::GET,
                        &format!("/t{w}-{n}"),
                        &[("host", "app.test")],
                        Bytes::new(),
                    )
                    .await;
                    assert_eq!(g.status, 200, "a request failed during the reload");
                    bodies.push(g.text());
                    n += 1;
                }
                bodies
            }));
        }
        while one.count("/slow") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&path, reload_config(&one, &two, "two", "least-connections")).unwrap();
        let note = live.reload_from_source().await.unwrap();
        assert!(note.starts_with("reloaded"), "{note}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let mut before = 0;
        for (w, l) in load.into_iter().enumerate() {
            let bodies = l.await.unwrap();
            let switch = bodies.iter().position(|b| b == "two");
            let switch = switch.unwrap_or_else(|| panic!("client {w} never saw the reload"));
            assert!(
                bodies[switch..].iter().all(|b| b == "two"),
                "client {w} went back to the old site: {bodies:?}"
            );
            assert!(bodies[..switch].iter().all(|b| b == "one"), "{bodies:?}");
            before += switch;
        }
        assert!(before > 0, "traffic before the reload");
        let slow = in_flight.await.unwrap();
        assert_eq!((slow.status, slow.text().as_str()), (200, "one"));
        assert_eq!(at(&node, "app.test", "/after").await.text(), "two");
        assert_eq!(one.count("/after"), 0);
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// A reload naming an unknown origin group is refused, through the library and the
/// admin API, and the old sites keep serving.
#[tokio::test]
async fn reload_with_unknown_origin_group_is_refused() {
    within(20, async {
        let (one, two) = (named("one").await, named("two").await);
        let dir = temp_path("sites-bad-reload");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lacquer.toml");
        std::fs::write(&path, reload_config(&one, &two, "one", "round-robin")).unwrap();
        let node = start(Config::load(&path).unwrap()).await;
        let live = node.running.as_ref().unwrap().live.clone();

        std::fs::write(&path, reload_config(&one, &two, "nope", "round-robin")).unwrap();
        let err = live.reload_from_source().await.unwrap_err();
        assert!(err.contains("nope"), "the refusal names the group: {err}");
        let r = node.admin(Method::POST, "/reload", None, "").await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(at(&node, "app.test", "/still").await.text(), "one");
        assert_eq!(at(&node, "other.test", "/still").await.text(), "two");
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// A reload that removes a site stops exporting its series; the sites that stay keep
/// theirs.
#[tokio::test]
async fn reload_forgets_a_removed_sites_metrics() {
    within(20, async {
        let (one, two) = (named("one").await, named("two").await);
        let dir = temp_path("sites-forget");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lacquer.toml");
        std::fs::write(&path, reload_config(&one, &two, "one", "round-robin")).unwrap();
        let node = start(Config::load(&path).unwrap()).await;
        let live = node.running.as_ref().unwrap().live.clone();
        at(&node, "app.test", "/a").await;
        at(&node, "other.test", "/b").await;
        let text = node.running.as_ref().unwrap().proxy().metrics_text();
        assert!(
            text.contains("lacquer_site_requests_total{site=\"other\""),
            "{text}"
        );
        let without_other = reload_config(&one, &two, "one", "round-robin");
        let cut = without_other.find("[[site]]\nname = \"other\"").unwrap();
        std::fs::write(&path, &without_other[..cut]).unwrap();
        live.reload_from_source().await.unwrap();
        let text = node.running.as_ref().unwrap().proxy().metrics_text();
        assert!(!text.contains("site=\"other\""), "{text}");
        assert!(
            text.contains("lacquer_site_requests_total{site=\"app\""),
            "{text}"
        );
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

// ---- in a PoP ----

/// A PoP node skips a site's answers, limits and request edits for a request another
/// node of the PoP forwarded (the edge applied them). A client is not such a node:
/// sending the PoP's hop marker (`X-Lacquer-Hop`) and `X-Forwarded-Proto: https`
/// itself must not get it past `allow`, the rate limit or the request edits, nor make
/// plain HTTP count as HTTPS.
#[tokio::test]
async fn a_client_claiming_to_be_a_pop_peer_gets_no_bypass() {
    within(20, async {
        let o = named("app").await;
        // The node on 127.0.0.2: the test client connects from 127.0.0.1, which is no
        // member of the PoP.
        let free = || {
            let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
            l.local_addr().unwrap()
        };
        let (public, admin) = (free(), free());
        let text = [
            format!(
                "[node]\nname = \"s1\"\nrole = \"shard\"\n\n[[listen]]\naddress = \"{public}\"\n\n\
                 [admin]\naddress = \"{admin}\"\n\n[cluster]\nenabled = true\npeers = [\
                 {{ name = \"s1\", address = \"{public}\", admin = \"{admin}\", role = \"shard\" }}]\n\n"
            ),
            group("g", &[&o]),
            r#"
[[site]]
name = "office"
hosts = ["office.test"]
origin_group = "g"
allow = ["10.0.0.0/8"]

[[site]]
name = "limited"
hosts = ["rl.test"]
origin_group = "g"
rate_limit = { rate = 0.01, burst = 0 }

[[site]]
name = "scrub"
hosts = ["scrub.test"]
origin_group = "g"
request_headers = { remove = ["x-internal-auth"] }

[[site]]
name = "secure"
hosts = ["tls.test"]
schemes = ["https"]
origin_group = "g"
"#
            .into(),
        ]
        .concat();
        let mut cfg = Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        cfg.log.access_log = false;
        for g in &mut cfg.origin_group {
            g.health.enabled = false;
        }
        let node = start(cfg).await;
        // Without the claim, the rules hold.
        assert_eq!(at(&node, "office.test", "/").await.status, 403);
        assert_eq!(at(&node, "tls.test", "/").await.status, 404);
        let claim = [("x-lacquer-hop", "e1"), ("x-forwarded-proto", "https")];
        let mut bypassed = Vec::new();
        let g = at_with(&node, "office.test", "/", &claim).await;
        if g.status != 403 {
            bypassed.push(format!("allow: {} instead of 403", g.status));
        }
        let statuses = [
            at_with(&node, "rl.test", "/a", &claim).await.status,
            at_with(&node, "rl.test", "/b", &claim).await.status,
        ];
        if statuses != [200, 429] {
            bypassed.push(format!("rate limit: {statuses:?} instead of [200, 429]"));
        }
        let with_secret = [claim[0], claim[1], ("x-internal-auth", "forged")];
        at_with(&node, "scrub.test", "/", &with_secret).await;
        if o.last().is_some_and(|s| s.headers.contains_key("x-internal-auth")) {
            bypassed.push("request edits: x-internal-auth reached the origin".into());
        }
        let g = at_with(&node, "tls.test", "/", &claim).await;
        if g.status != 404 {
            bypassed.push(format!("https-only site over plain HTTP: {}", g.status));
        }
        assert!(bypassed.is_empty(), "a client's own hop marker bypassed: {bypassed:#?}");
        node.stop().await;
    })
    .await;
}

// ---- admin explain ----

fn query_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /route?url=...&method=...` names the site, its origin group and the cache key.
#[tokio::test]
async fn admin_route_explains_a_url() {
    within(20, async {
        let (api, w) = (named("api").await, named("writes").await);
        let text = [
            group("api", &[&api]),
            group("writes", &[&w]),
            r#"
[[site]]
name = "writes"
hosts = ["api.example.com"]
methods = ["POST"]
origin_group = "writes"

[[site]]
name = "api"
hosts = ["api.example.com"]
origin_group = "api"
"#
            .into(),
        ]
        .concat();
        let mut cfg = parse(&text);
        cfg.admin.enabled = true;
        let node = start(cfg).await;
        let url = query_encode("http://api.example.com/scores?team=7");
        let r = node
            .admin(Method::GET, &format!("/route?url={url}"), None, "")
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        assert_eq!(j["site"], "api", "{j}");
        assert_eq!(j["origin_group"], "api", "{j}");
        let key = j["key"].to_string();
        assert!(
            !j["key"].is_null() && key.contains("/scores"),
            "the key names the path: {j}"
        );

        let r = node
            .admin(
                Method::GET,
                &format!("/route?url={url}&method=POST"),
                None,
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        assert_eq!(
            (j["site"].as_str(), j["origin_group"].as_str()),
            (Some("writes"), Some("writes")),
            "{j}"
        );
        assert_eq!(api.total() + w.total(), 0, "explaining asks no origin");
        node.stop().await;
    })
    .await;
}

// ---- the issue's example ----

const ISSUE_EXAMPLE: &str = r#"
[[origin_group]]
name = "api"
servers = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", weight = 2 }]
[[origin_group]]
name = "static"
servers = [{ address = "127.0.0.1:9003" }]
[[site]]
name = "api"
hosts = ["api.example.com"]
origin_group = "api"
cache = { default_ttl = "2s", stale_if_error = "10m" }
[[site]]
name = "static"
hosts = ["static.example.com", "*.cdn.example.com"]
origin_group = "static"
cache = { force_ttl = "1d" }
[[site]]
name = "admin"
hosts = ["www.example.com"]
paths = ["/admin/"]
origin_group = "api"
allow = ["10.1.0.0/16"]
cache = { pass = true }
"#;

/// The issue's example config, as written with the test origins' addresses: the API's
/// bare responses are fresh for 2s and spread 1:2 over its servers, and served stale
/// when both fail; static assets are kept whatever they say; the admin path refuses a
/// client outside its network; other hosts and paths are refused.
#[tokio::test]
async fn issue_example_works_as_written() {
    within(30, async {
        let api1 = Origin::start(|_, n| Reply::ok(format!("api1 v{n}"))).await;
        let api2 = Origin::start(|_, n| Reply::ok(format!("api2 v{n}"))).await;
        let stat = Origin::start(|_, n| Reply::ok(format!("static v{n}")).cc("max-age=0")).await;
        let text = ISSUE_EXAMPLE
            .replace("127.0.0.1:9001", &api1.addr.to_string())
            .replace("127.0.0.1:9002", &api2.addr.to_string())
            .replace("127.0.0.1:9003", &stat.addr.to_string());
        let node = node(&text).await;

        // api: weights 1:2 over distinct URLs, then a hit within default_ttl.
        for i in 0..30 {
            assert_eq!(
                at(&node, "api.example.com", &format!("/s{i}")).await.status,
                200
            );
        }
        assert!(
            api1.total().abs_diff(10) <= 2 && api2.total().abs_diff(20) <= 2,
            "api1 {} api2 {}",
            api1.total(),
            api2.total()
        );
        let scores = at(&node, "api.example.com", "/scores").await.text();
        let hit = at(&node, "api.example.com", "/scores").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(hit.text(), scores);

        // static: max-age=0 overridden by force_ttl, on both host forms.
        for host in ["static.example.com", "img.cdn.example.com"] {
            at(&node, host, "/app.css").await;
            let g = at(&node, host, "/app.css").await;
            assert!(g.is_hit(), "{host}: {}", g.cache_status());
        }
        assert_eq!(stat.count("/app.css"), 2, "one miss per host");

        // admin: 127.0.0.1 is outside 10.1.0.0/16; no origin request.
        let before = api1.total() + api2.total();
        assert_eq!(
            at(&node, "www.example.com", "/admin/users").await.status,
            403
        );
        assert_eq!(api1.total() + api2.total(), before);
        // No [[origin]]: a known host elsewhere is 404, an unknown host 421.
        assert_eq!(at(&node, "www.example.com", "/").await.status, 404);
        assert_eq!(at(&node, "unknown.example.com", "/").await.status, 421);

        // stale_if_error = 10m: past default_ttl, both servers failing, the copy stays.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        api1.fail_503();
        api2.fail_503();
        let g = at(&node, "api.example.com", "/scores").await;
        assert_eq!((g.status, g.text()), (200, scores), "{}", g.cache_status());
        node.stop().await;
    })
    .await;
}

// ---- TLS client helpers (for the scheme test) ----

fn write_cert(
    dir: &Path,
    name: &str,
    hosts: &[&str],
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    CertificateDer<'static>,
) {
    let ck =
        rcgen::generate_simple_self_signed(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().clone())
}

/// One HTTP/1.1 GET over TLS to `addr`, trusting only `root`, with SNI and Host `host`.
async fn https_get(
    addr: SocketAddr,
    host: &str,
    root: &CertificateDer<'static>,
    path: &str,
) -> (u16, String) {
    let mut store = rustls::RootCertStore::empty();
    store.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let sni = ServerName::try_from(host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(sni, tcp)
        .await
        .unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = h1.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
