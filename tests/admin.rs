//! The admin API end to end: auth, purge (URL, surrogate key, prefix, all, soft), push
//! (incl. the version race against a slow fetch), inspect, pre-warm jobs, malformed
//! calls, and the `lacquer` CLI client against a real node.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use support::*;

const TOKEN: &str = "t0ken-for-tests";

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn node_for(origin: &Origin) -> Node {
    start(admin_config(&[origin.addr], None)).await
}

async fn purge(node: &Node, body: &str) -> serde_json::Value {
    let got = node.admin(Method::POST, "/purge", None, body).await;
    assert_eq!(got.status, 200, "{}", got.text());
    got.json()
}

async fn push(node: &Node, path_and_query: &str, headers: &[(&str, &str)], body: &str) -> Got {
    send(
        &node.client,
        node.admin_addr(),
        Method::PUT,
        path_and_query,
        headers,
        Bytes::from(body.to_owned()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_and_open_endpoints() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("x").cc("max-age=60")).await;
        let node = start(admin_config(&[origin.addr], Some(TOKEN))).await;
        let body = r#"{"all":true}"#;
        let missing = node.admin(Method::POST, "/purge", None, body).await;
        assert_eq!(missing.status, 401);
        assert!(missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("missing"));
        assert!(missing
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
        let wrong = node.admin(Method::POST, "/purge", Some("nope"), body).await;
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.json()["error"], "token rejected");
        let right = node.admin(Method::POST, "/purge", Some(TOKEN), body).await;
        assert_eq!(right.status, 200, "{}", right.text());
        // Unknown paths need the token too: anonymous callers learn nothing.
        assert_eq!(node.admin(Method::GET, "/nope", None, "").await.status, 401);
        for open in ["/health", "/ready", "/metrics"] {
            let got = node.admin(Method::GET, open, None, "").await;
            assert_eq!(got.status, 200, "{open}");
        }
        let metrics = node.admin(Method::GET, "/metrics", None, "").await;
        assert!(
            metrics.text().contains("lacquer_cache_objects "),
            "{}",
            metrics.text()
        );
        assert!(metrics.text().contains("lacquer_cache_bytes "));
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_url_removes_every_vary_variant() {
    within(20, async {
        let origin = Origin::start(|s, n| {
            let lang = s
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Reply::ok(format!("{lang} {n}"))
                .cc("max-age=60")
                .header("vary", "accept-language")
        })
        .await;
        let node = node_for(&origin).await;
        for lang in ["en", "de", "en", "de"] {
            node.get_with("/v", &[("accept-language", lang)]).await;
        }
        assert_eq!(origin.count("/v"), 2, "two variants, then hits");
        let inspected = node
            .admin(
                Method::GET,
                &format!("/objects?url={}", enc(&node.url("/v"))),
                None,
                "",
            )
            .await;
        assert_eq!(inspected.status, 200, "{}", inspected.text());
        let variants = inspected.json()["variants"].as_array().unwrap().clone();
        assert_eq!(variants.len(), 2);
        let v = &variants[0];
        assert_eq!(v["fresh"], true);
        assert!(v["ttl_left"].as_i64().unwrap() > 50);
        assert_eq!(v["source"], "fetched");
        assert!(v["vary"]["accept-language"].is_string());
        assert!(v["hits"].as_u64().unwrap() >= 1);

        let url = node.url("/v").replace("http://", "HTTP://");
        let answer = purge(&node, &format!(r#"{{"urls":["{url}"]}}"#)).await;
        assert_eq!(answer["total"]["objects"], 2);
        assert_eq!(answer["total"]["urls"], 1);
        assert_eq!(answer["nodes"][0]["ok"], true);
        assert_eq!(answer["scope"], "node");
        for lang in ["en", "de"] {
            let got = node.get_with("/v", &[("accept-language", lang)]).await;
            assert!(!got.is_hit(), "{}", got.cache_status());
        }
        assert_eq!(origin.count("/v"), 4);
        let gone = node
            .admin(
                Method::GET,
                &format!("/objects?url={}", enc(&node.url("/nothing"))),
                None,
                "",
            )
            .await;
        assert_eq!(gone.status, 404);
        assert!(gone.json()["error"]
            .as_str()
            .unwrap()
            .contains("nothing cached"));
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_surrogate_key_prefix_and_all() {
    within(20, async {
        let origin = Origin::start(|s, n| {
            let tags = match s.path.as_str() {
                "/live/a" => "live news",
                "/live/b" => "live",
                _ => "static",
            };
            Reply::ok(format!("{} {n}", s.path))
                .cc("max-age=60")
                .header("surrogate-key", tags)
        })
        .await;
        let node = node_for(&origin).await;
        let paths = ["/live/a", "/live/b", "/static/c", "/static/d"];
        let fetch_all = || async {
            for p in paths {
                node.get(p).await;
            }
        };
        fetch_all().await;
        let counts = |o: &Origin| paths.map(|p| o.count(p));

        let a = purge(&node, r#"{"surrogate_keys":["live"]}"#).await;
        assert_eq!(a["total"]["urls"], 2);
        fetch_all().await;
        assert_eq!(
            counts(&origin),
            [2, 2, 1, 1],
            "only the tagged URLs refetched"
        );

        // Scheme and host in the prefix are normalized like keys.
        let prefix = format!("HTTP://{}/static/", node.addr);
        let a = purge(&node, &format!(r#"{{"prefix":"{prefix}"}}"#)).await;
        assert_eq!(a["total"]["urls"], 2);
        fetch_all().await;
        assert_eq!(counts(&origin), [2, 2, 2, 2]);

        let a = purge(&node, r#"{"all":true,"scope":"cluster"}"#).await;
        assert_eq!(a["total"]["urls"], 4);
        assert_eq!(a["requested_scope"], "cluster");
        assert_eq!(a["scope"], "node");
        assert!(a["note"].as_str().unwrap().contains("not available"));
        fetch_all().await;
        assert_eq!(counts(&origin), [3, 3, 3, 3]);
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_purge_keeps_stale_for_errors() {
    within(20, async {
        let origin =
            Origin::start(|_, n| Reply::ok(format!("v{n}")).cc("max-age=60, stale-if-error=60"))
                .await;
        let node = node_for(&origin).await;
        assert_eq!(node.get("/s").await.text(), "v1");
        let a = purge(
            &node,
            &format!(r#"{{"urls":["{}"],"soft":true}}"#, node.url("/s")),
        )
        .await;
        assert_eq!(a["total"]["objects"], 1);
        assert_eq!(a["soft"], true);
        origin.fail_503();
        let got = node.get("/s").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "v1", "stale copy served while the origin fails");
        assert!(
            got.cache_status().contains("fwd=stale"),
            "{}",
            got.cache_status()
        );
        origin.heal();
        // After a failed fetch, the stale copy is served without asking the origin for
        // `cache.error_backoff` (1 s).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let got = node.get("/s").await;
        assert_ne!(
            got.text(),
            "v1",
            "soft-purged: refreshed once the origin is back"
        );
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_into_a_nearly_full_cache_then_hit() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok(vec![b'o'; 4000]).cc("max-age=60")).await;
        let mut cfg = admin_config(&[origin.addr], Some(TOKEN));
        cfg.cache.memory = 64 * 1024;
        cfg.cache.max_object_size = 16 * 1024;
        let node = start(cfg).await;
        for i in 0..14 {
            node.get(&format!("/fill/{i}")).await;
        }
        let body = "p".repeat(6000);
        let auth = format!("Bearer {TOKEN}");
        let got = push(
            &node,
            &format!("/objects?url={}&ttl=120", enc(&node.url("/pushed"))),
            &[
                ("authorization", &auth),
                ("content-type", "text/plain"),
                ("surrogate-key", "promo"),
            ],
            &body,
        )
        .await;
        assert_eq!(got.status, 201, "{}", got.text());
        let stored = got.json();
        assert_eq!(stored["size"], 6000);
        assert_eq!(stored["ttl"], 120);
        assert_eq!(stored["surrogate_keys"][0], "promo");
        let hit = node.get("/pushed").await;
        assert!(hit.is_hit(), "{}", hit.cache_status());
        assert_eq!(hit.text(), body);
        assert_eq!(hit.header("content-type"), Some("text/plain"));
        assert_eq!(hit.header("cache-control"), Some("max-age=120"));
        assert!(hit.header("authorization").is_none());
        assert_eq!(origin.count("/pushed"), 0);
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wins_over_a_slower_fetch_and_versions_order_pushes() {
    within(20, async {
        let origin =
            Origin::start(|_, _| Reply::ok("from origin").cc("max-age=60").delay_ms(1000)).await;
        let node = node_for(&origin).await;
        let (client, addr) = (node.client.clone(), node.addr);
        let slow = tokio::spawn(async move {
            send(&client, addr, Method::GET, "/race", &[], Bytes::new()).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let url = enc(&node.url("/race"));
        let got = push(&node, &format!("/objects?url={url}&ttl=60"), &[], "pushed").await;
        assert_eq!(got.status, 201, "{}", got.text());
        assert_eq!(
            slow.await.unwrap().text(),
            "from origin",
            "the slow client gets its answer"
        );
        let after = node.get("/race").await;
        assert_eq!(
            after.text(),
            "pushed",
            "the fetch that started earlier did not replace the push"
        );
        assert!(after.is_hit());

        let v5 = push(
            &node,
            &format!("/objects?url={url}&ttl=60&version=5"),
            &[],
            "v5",
        )
        .await;
        assert_eq!(v5.status, 201);
        let v3 = push(
            &node,
            &format!("/objects?url={url}&ttl=60&version=3"),
            &[],
            "v3",
        )
        .await;
        assert_eq!(v3.status, 409, "{}", v3.text());
        assert!(v3.json()["error"].as_str().unwrap().contains('5'));
        assert_eq!(node.get("/race").await.text(), "v5");
        let v6 = push(
            &node,
            &format!("/objects?url={url}&ttl=60&version=6"),
            &[],
            "v6",
        )
        .await;
        assert_eq!(v6.status, 201);
        assert_eq!(node.get("/race").await.text(), "v6");
        let inspected = node
            .admin(Method::GET, &format!("/objects?url={url}"), None, "")
            .await;
        assert_eq!(inspected.json()["variants"][0]["source"], "pushed");
        assert_eq!(inspected.json()["variants"][0]["version"], 6);
        node.stop().await;
    })
    .await;
}

async fn wait_job(node: &Node, id: u64) -> serde_json::Value {
    loop {
        let got = node
            .admin(Method::GET, &format!("/prewarm/{id}"), None, "")
            .await;
        assert_eq!(got.status, 200, "{}", got.text());
        let v = got.json();
        if v["state"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prewarm_1000_urls_with_failures() {
    within(30, async {
        let origin = Origin::start(|s, _| {
            let n: u32 = s.path.trim_start_matches("/p/").parse().unwrap_or(0);
            let status = match (n % 10, n % 50) {
                (3, _) => 404,
                (_, 7) => 500,
                _ => 200,
            };
            Reply::ok(format!("page {n}"))
                .status(status)
                .cc("max-age=60")
        })
        .await;
        let node = node_for(&origin).await;
        let urls: Vec<String> = (0..1000).map(|i| node.url(&format!("/p/{i}"))).collect();
        let body = serde_json::json!({ "urls": urls, "concurrency": 32 }).to_string();
        let started = node.admin(Method::POST, "/prewarm", None, &body).await;
        assert_eq!(started.status, 202, "{}", started.text());
        let id = started.json()["id"].as_u64().unwrap();
        let report = wait_job(&node, id).await;
        assert_eq!(report["state"], "done");
        assert_eq!(report["total"], 1000);
        assert_eq!(report["done"], 880);
        assert_eq!(report["failed"], 120, "100 404s and 20 500s");
        assert_eq!(report["remaining"], 0);
        let failures = report["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 100, "listed failures are bounded");
        assert_eq!(report["failures_not_listed"], 20);
        assert!(failures.iter().all(|f| {
            let r = f["reason"].as_str().unwrap();
            r == "status 404" || r == "status 500"
        }));
        assert_eq!(origin.total(), 1000, "each URL fetched once");
        let got = node.get("/p/1").await;
        assert!(got.is_hit(), "{}", got.cache_status());
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_job_can_be_cancelled() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("slow").cc("max-age=60").delay_ms(200)).await;
        let node = node_for(&origin).await;
        let urls: Vec<String> = (0..50).map(|i| node.url(&format!("/c/{i}"))).collect();
        let body = serde_json::json!({ "urls": urls, "concurrency": 1 }).to_string();
        let id = node
            .admin(Method::POST, "/prewarm", None, &body)
            .await
            .json()["id"]
            .as_u64()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cancelled = node
            .admin(Method::DELETE, &format!("/prewarm/{id}"), None, "")
            .await;
        assert_eq!(cancelled.status, 200);
        assert_eq!(cancelled.json()["state"], "cancelled");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let later = wait_job(&node, id).await;
        assert_eq!(later["state"], "cancelled");
        assert!(later["remaining"].as_u64().unwrap() > 40, "{later}");
        assert!(origin.total() < 10, "no fills after cancelling");
        node.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_admin_calls_get_4xx_and_the_node_keeps_serving() {
    within(20, async {
        let origin = Origin::start(|_, n| Reply::ok(format!("ok {n}")).cc("max-age=60")).await;
        let mut cfg = admin_config(&[origin.addr], None);
        cfg.admin.max_body = 1024;
        let node = start(cfg).await;
        let good = enc(&node.url("/x"));
        let big = format!(r#"{{"urls":["{}"]}}"#, "a".repeat(2000));
        let cases: Vec<Case> = vec![
            (
                Method::POST,
                "/purge".into(),
                vec![],
                "{".into(),
                400,
                "invalid JSON",
            ),
            (
                Method::POST,
                "/purge".into(),
                vec![],
                "".into(),
                400,
                "empty",
            ),
            (
                Method::POST,
                "/purge".into(),
                vec![],
                r#"{"all":true,"bogus":1}"#.into(),
                400,
                "unknown field",
            ),
            (
                Method::POST,
                "/purge".into(),
                vec![],
                r#"{"urls":"http://a/"}"#.into(),
                400,
                "invalid type",
            ),
            (Method::POST, "/purge".into(), vec![], big, 413, "max_body"),
            (
                Method::POST,
                "/purge".into(),
                vec![],
                r#"{"urls":["not-a-url"]}"#.into(),
                400,
                "absolute",
            ),
            (
                Method::POST,
                "/purge".into(),
                vec![],
                r#"{"all":true,"prefix":"http://a/"}"#.into(),
                400,
                "only one",
            ),
            (
                Method::PUT,
                "/objects?url=ftp%3A%2F%2Fa%2F".into(),
                vec![],
                "x".into(),
                400,
                "scheme",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}&status=99"),
                vec![],
                "x".into(),
                400,
                "status",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}&ttl=soon"),
                vec![],
                "x".into(),
                400,
                "ttl",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}&ttl=9"),
                vec![("vary", "accept")],
                "x".into(),
                400,
                "Vary",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}&ttl=9"),
                vec![("cache-control", "private")],
                "x".into(),
                400,
                "private",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}"),
                vec![],
                "x".into(),
                400,
                "ttl",
            ),
            (
                Method::PUT,
                format!("/objects?url={good}&ttl=9"),
                vec![],
                "y".repeat(2000),
                413,
                "max_body",
            ),
            (
                Method::GET,
                "/objects".into(),
                vec![],
                "".into(),
                400,
                "missing",
            ),
            (
                Method::GET,
                format!("/objects?url={good}&extra=1"),
                vec![],
                "".into(),
                400,
                "unknown query",
            ),
            (
                Method::GET,
                "/objects?url=%zz".into(),
                vec![],
                "".into(),
                400,
                "percent",
            ),
            (
                Method::POST,
                "/prewarm".into(),
                vec![],
                r#"{"urls":["http://a/"],"concurrency":0}"#.into(),
                400,
                "concurrency",
            ),
            (
                Method::POST,
                "/prewarm".into(),
                vec![],
                r#"{"urls":[]}"#.into(),
                400,
                "empty",
            ),
            (
                Method::GET,
                "/prewarm/999".into(),
                vec![],
                "".into(),
                404,
                "no prewarm job",
            ),
            (
                Method::GET,
                "/prewarm/abc".into(),
                vec![],
                "".into(),
                404,
                "no prewarm job",
            ),
            (
                Method::GET,
                "/nope".into(),
                vec![],
                "".into(),
                404,
                "no admin endpoint",
            ),
            (Method::GET, "/purge".into(), vec![], "".into(), 405, "POST"),
            (
                Method::POST,
                "/objects".into(),
                vec![],
                "".into(),
                405,
                "GET, PUT",
            ),
        ];
        for (method, path, headers, body, status, says) in cases {
            let got = send(
                &node.client,
                node.admin_addr(),
                method.clone(),
                &path,
                &headers,
                Bytes::from(body),
            )
            .await;
            assert_eq!(got.status, status, "{method} {path}: {}", got.text());
            let error = got.json()["error"].as_str().unwrap_or_default().to_owned();
            assert!(
                error.contains(says),
                "{method} {path}: {error:?} should mention {says:?}"
            );
        }
        let raw = raw(node.admin_addr(), b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 1).await;
        assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
        assert_eq!(
            node.admin(Method::GET, "/health", None, "").await.status,
            200
        );
        assert_eq!(node.get("/x").await.text(), "ok 1");
        node.stop().await;
    })
    .await;
}

/// method, path, headers, body, expected status, a word the error must contain.
type Case = (
    Method,
    String,
    Vec<(&'static str, &'static str)>,
    String,
    u16,
    &'static str,
);

/// Run the `lacquer` binary with `args`; (exit success, stdout, stderr).
async fn lacquer(args: Vec<String>) -> (bool, String, String) {
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
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_against_a_node() {
    within(30, async {
        let origin = Origin::start(|s, n| {
            let status = if s.path == "/missing" { 404 } else { 200 };
            Reply::ok(format!("origin {n}"))
                .status(status)
                .cc("max-age=60")
        })
        .await;
        let cfg = admin_config(&[origin.addr], Some(TOKEN));
        let token_file = cfg.admin.token_file.clone().unwrap().display().to_string();
        let node = start(cfg).await;
        let conn = |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            v.extend([
                "--admin".into(),
                node.admin_addr().to_string(),
                "--token-file".into(),
                token_file.clone(),
            ]);
            v
        };

        let body = temp_path("body");
        std::fs::write(&body, "pushed by cli").unwrap();
        let url = node.url("/cli");
        let (ok, out, err) = lacquer(conn(&[
            "push",
            &url,
            "--file",
            &body.display().to_string(),
            "-H",
            "Content-Type: text/plain",
            "--ttl",
            "60",
            "--version",
            "3",
        ]))
        .await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("stored") && out.contains("version 3"), "{out}");
        assert_eq!(node.get("/cli").await.text(), "pushed by cli");

        let (ok, out, err) = lacquer(conn(&["inspect", &url])).await;
        assert!(ok, "{err}");
        assert!(out.contains("\"pushed\""), "{out}");

        let (ok, out, err) = lacquer(conn(&["purge", &url])).await;
        assert!(ok, "{err}");
        assert!(out.contains("purged 1 objects"), "{out}");
        assert_eq!(node.get("/cli").await.text(), "origin 1");

        let list = temp_path("urls");
        std::fs::write(
            &list,
            format!(
                "# warm these\n{}\n\n{}\n",
                node.url("/w1"),
                node.url("/missing")
            ),
        )
        .unwrap();
        let (ok, out, _) = lacquer(conn(&["prewarm", &list.display().to_string()])).await;
        assert!(!ok, "a failed URL fails the command");
        assert!(out.contains("2 URLs, 1 fetched, 1 failed"), "{out}");
        assert!(out.contains("/missing: status 404"), "{out}");

        let wrong = temp_path("wrong-token");
        std::fs::write(&wrong, "wrong").unwrap();
        let (ok, _, err) = lacquer(vec![
            "purge".into(),
            "--all".into(),
            "--admin".into(),
            node.admin_addr().to_string(),
            "--token-file".into(),
            wrong.display().to_string(),
        ])
        .await;
        assert!(!ok);
        assert!(err.contains("token rejected"), "{err}");

        let (ok, _, err) = lacquer(conn(&["inspect", &node.url("/never")])).await;
        assert!(!ok);
        assert!(
            err.contains("404") && err.contains("nothing cached"),
            "{err}"
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (ok, _, err) = lacquer(vec![
            "purge".into(),
            "--all".into(),
            "--admin".into(),
            closed.to_string(),
        ])
        .await;
        assert!(!ok);
        assert!(err.contains("cannot reach admin API at"), "{err}");
        for f in [body, list, wrong] {
            let _ = std::fs::remove_file(f);
        }
        node.stop().await;
    })
    .await;
}
