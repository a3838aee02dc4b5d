//! Site routing: the per-request cost of picking one of 1,000 sites by host and path.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Method;
use lacquer::site::router::{MatchRule, Route, Router};

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn rule(hosts: &[&str]) -> MatchRule {
    MatchRule {
        hosts: strings(hosts),
        ..MatchRule::default()
    }
}

/// 1,000 sites as a multi-tenant front tier has them: a few rules for any host first,
/// then per shop a static, an API and a catch-all site (a product-page regex for some),
/// wildcard CDN and region hosts, and a catch-all last. About 5% have a regex.
fn sites() -> Vec<MatchRule> {
    let mut rules = Vec::with_capacity(1000);
    let mut health = rule(&[]);
    health.exact_paths = strings(&["/health", "/ready"]);
    rules.push(health);
    let mut acme = rule(&[]);
    acme.paths = strings(&["/.well-known/acme-challenge/"]);
    rules.push(acme);
    for shop in 0..250 {
        let host = format!("shop{shop}.example.com");
        let mut assets = rule(&[&host]);
        assets.paths = strings(&["/static/", "/assets/", "/favicon.ico"]);
        rules.push(assets);
        if shop < 50 {
            let mut product = rule(&[&host]);
            product.path_regex = strings(&["^/p/[0-9]+(/[a-z-]+)?$"]);
            rules.push(product);
        }
        let mut api = rule(&[&host, &format!("api.shop{shop}.example.com")]);
        api.paths = strings(&["/api/"]);
        api.methods = strings(&["GET", "HEAD", "POST"]);
        rules.push(api);
        rules.push(rule(&[&host, &format!("www.shop{shop}.example.com")]));
    }
    for tenant in 0..150 {
        let mut images = rule(&[&format!("*.tenant{tenant}.cdn.example.net")]);
        images.paths = strings(&["/img/", "/video/"]);
        images.schemes = strings(&["https"]);
        rules.push(images);
    }
    for region in 0..47 {
        rules.push(rule(&[&format!("*.region{region}.example.org")]));
    }
    rules.push(rule(&[]));
    assert_eq!(rules.len(), 1000);
    rules
}

struct Request {
    host: String,
    path: &'static str,
    method: Method,
    https: bool,
}

/// A mix weighted like real traffic: mostly shop pages and assets, some API and CDN
/// requests, product pages through the regex, unknown hosts, and health checks.
fn requests() -> Vec<Request> {
    let mut out = Vec::new();
    for i in 0..1000_usize {
        let shop = (i * 7) % 250;
        let (host, path, method) = match i % 20 {
            0..=5 => (format!("shop{shop}.example.com"), "/", Method::GET),
            6..=8 => (
                format!("Shop{shop}.Example.com:443"),
                "/static/app.3f9a.js",
                Method::GET,
            ),
            9 => (format!("www.shop{shop}.example.com"), "/cart", Method::GET),
            10 | 11 => (
                format!("api.shop{shop}.example.com"),
                "/api/v2/scores",
                Method::POST,
            ),
            12 => (
                format!("shop{}.example.com", shop % 50),
                "/p/12345/red-shoes",
                Method::GET,
            ),
            13 | 14 => (
                format!("edge{}.tenant{}.cdn.example.net", i % 9, i % 150),
                "/img/logo.png",
                Method::GET,
            ),
            15 => (
                format!("a.b.region{}.example.org", i % 47),
                "/index.html",
                Method::GET,
            ),
            16 | 17 => ("unknown.example".to_string(), "/", Method::GET),
            18 => (format!("shop{shop}.example.com"), "/health", Method::HEAD),
            _ => (
                format!("shop{shop}.example.com"),
                "/account/orders",
                Method::GET,
            ),
        };
        out.push(Request {
            host,
            path,
            method,
            https: i % 3 != 0,
        });
    }
    out
}

fn routing(c: &mut Criterion) {
    let rules = sites();
    let router = Router::new(&rules).expect("the bench's sites compile");
    let requests = requests();
    // Every request of the mix must reach a site, or the figure measures misses.
    for r in &requests {
        let route = router.route(&r.host, r.path, &r.method, r.https);
        assert!(matches!(route, Route::Site(_)), "{} {}", r.host, r.path);
    }
    c.bench_function("route_1000_sites_mix", |b| {
        let mut i = 0;
        b.iter(|| {
            let r = &requests[i % requests.len()];
            i += 1;
            router.route(black_box(&r.host), black_box(r.path), &r.method, r.https)
        })
    });
    c.bench_function("route_1000_sites_regex", |b| {
        b.iter(|| {
            router.route(
                black_box("shop49.example.com"),
                black_box("/p/98765/blue-socks"),
                &Method::GET,
                true,
            )
        })
    });
    c.bench_function("route_1000_sites_unknown_host", |b| {
        b.iter(|| {
            router.route(
                black_box("nobody.example"),
                black_box("/"),
                &Method::GET,
                true,
            )
        })
    });
    c.bench_function("router_build_1000_sites", |b| {
        b.iter(|| Router::new(black_box(&rules)))
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
