//! Hostile input over real loopback sockets: request smuggling, malformed heads, odd
//! request targets, slow clients, broken origins and cache poisoning through unkeyed
//! headers. Every case checks three things: the answer is right (4xx, a clean 5xx or a
//! closed connection), nothing bad was stored, and the node keeps serving.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A node with tight limits so that every timeout case finishes in about a second.
async fn node_for(origin: SocketAddr) -> Node {
    let mut cfg = config(&[origin]);
    // The admin API is not under test here, and its fixed port would clash between tests.
    cfg.admin.enabled = false;
    cfg.limits.max_header_bytes = 16 * 1024;
    cfg.limits.max_headers = 50;
    cfg.limits.max_body = 64 * 1024;
    cfg.limits.header_read_timeout = Duration::from_millis(800);
    cfg.limits.idle_timeout = Duration::from_millis(1500);
    cfg.limits.body_read_timeout = Duration::from_secs(1);
    cfg.upstream.connect_timeout = Duration::from_secs(1);
    // Below idle_timeout: the client connection is idle while the origin is silent.
    cfg.upstream.first_byte_timeout = Duration::from_millis(500);
    cfg.upstream.between_bytes_timeout = Duration::from_millis(500);
    start(cfg).await
}

/// Request fields that applications commonly trust to build URLs or route requests.
const REFLECTED: [&str; 14] = [
    "host",
    "x-forwarded-prefix",
    "x-original-host",
    "x-original-uri",
    "x-forwarded-uri",
    "x-tenant",
    "x-forwarded-host",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "forwarded",
    "x-http-method-override",
    "x-forwarded-proto",
    "x-forwarded-server",
];

/// An origin that, like a naive application, builds its page and its redirect from
/// whatever request fields it finds, and marks the result cacheable for everyone.
async fn reflecting_origin() -> Origin {
    Origin::start(|s, _| {
        let mut body = format!("{} {} |", s.method, s.path);
        for name in REFLECTED {
            for v in s.headers.get_all(name) {
                body.push_str(&format!(" {name}={};", v.to_str().unwrap_or("?")));
            }
        }
        if !s.body.is_empty() {
            body.push_str(&format!(" body={};", String::from_utf8_lossy(&s.body)));
        }
        let host = ["x-forwarded-host", "x-host", "host"]
            .iter()
            .find_map(|h| s.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        Reply::ok(body)
            .cc("public, max-age=60")
            .header("location", &format!("http://{host}/login"))
    })
    .await
}

/// A plain origin: a small cacheable page per path.
async fn plain_origin() -> Origin {
    Origin::start(|s, _| Reply::ok(format!("page {}", s.path)).cc("max-age=60")).await
}

/// A raw origin that answers every request with `reply` (then does `after`), except the
/// liveness probe of [`still_serves`], which gets a proper response.
async fn raw_origin(reply: &[u8], after: AfterReply) -> RawOrigin {
    let reply = reply.to_vec();
    RawOrigin::start(move |head, _| {
        if head.starts_with("GET /alive-check ") {
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nalive";
            return (ok.to_vec(), AfterReply::Close);
        }
        (reply.clone(), after)
    })
    .await
}

/// The node still answers a normal request correctly.
async fn still_serves(node: &Node) {
    let g = node.get("/alive-check").await;
    assert_eq!(g.status, 200, "node stopped serving: {g:?}");
}

/// The status code of the first response in a raw reply, 0 when there is none.
fn status_of(raw: &str) -> u16 {
    raw.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn header_of<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split_once("\r\n\r\n").map_or(raw, |(h, _)| h);
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Refused: a 4xx, or the connection closed without an answer.
fn assert_refused(raw: &str, what: &str) {
    let s = status_of(raw);
    assert!(
        raw.is_empty() || (400..500).contains(&s),
        "{what}: expected 4xx or close, got {raw:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Request smuggling. The hidden request is `GET /smuggled`: whatever the node decides
// about the ambiguous message, the origin must never see it as a request, the client
// must get at most one answer (RFC 9112 6.1: after a message with both Content-Length
// and Transfer-Encoding the connection MUST be closed), and no request the origin
// receives may carry both framings.
// ---------------------------------------------------------------------------------------

const HIDDEN: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

async fn no_smuggling(framing: &str, body: &str) {
    let origin = raw_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        AfterReply::Close,
    )
    .await;
    let node = node_for(origin.addr).await;
    let req = format!("POST /s HTTP/1.1\r\nHost: x\r\n{framing}\r\n{body}{HIDDEN}");
    let resp = raw(node.addr, req.as_bytes(), 3).await;
    assert!(
        response_count(&resp) <= 1,
        "{framing:?}: more than one answer, the hidden request was processed: {resp:?}"
    );
    let s = status_of(&resp);
    assert!(
        resp.is_empty() || (400..600).contains(&s) || s == 200,
        "{framing:?}: {resp:?}"
    );
    for head in origin.heads() {
        assert!(
            !head.contains("/smuggled"),
            "{framing:?}: origin saw the hidden request: {head:?}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(
            !(lower.contains("content-length:") && lower.contains("transfer-encoding:")),
            "{framing:?}: origin got both framings: {head:?}"
        );
    }
    still_serves(&node).await;
}

#[tokio::test]
async fn smuggle_cl_then_te() {
    within(15, async {
        no_smuggling(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn smuggle_te_then_cl() {
    within(15, async {
        no_smuggling(
            "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
            "0\r\n\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn smuggle_te_chunked_identity() {
    within(15, async {
        no_smuggling(
            "Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n",
            "0\r\n\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn smuggle_obfuscated_te() {
    within(20, async {
        for te in [
            "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n",
            "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: \"chunked\"\r\nContent-Length: 5\r\n",
        ] {
            no_smuggling(te, "0\r\n\r\n").await;
        }
    })
    .await;
}

/// `Transfer_Encoding` is an unknown field to lacquer (Content-Length frames the body and
/// the following request is an ordinary pipelined one), but servers that map `_` and `-`
/// to the same CGI variable read it as Transfer-Encoding: it must not reach the origin.
#[tokio::test]
async fn underscore_transfer_encoding_not_forwarded() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let req = "POST /u HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\n0\r\n\r\n";
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(response_count(&resp) <= 1, "{resp:?}");
        for r in origin.requests() {
            assert!(
                r.headers.keys().all(|k| !k.as_str().contains('_')),
                "origin got {:?}",
                r.headers
            );
        }
        still_serves(&node).await;
    })
    .await;
}

#[tokio::test]
async fn conflicting_content_length_refused() {
    within(20, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        for cl in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: -5\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length: 5 5\r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            let req = format!("POST /cl HTTP/1.1\r\nHost: x\r\n{cl}\r\nhello{HIDDEN}");
            let resp = raw(node.addr, req.as_bytes(), 3).await;
            let s = status_of(&resp);
            assert!(
                resp.is_empty() || s == 400 || s == 413,
                "{cl:?}: expected 400/413, got {resp:?}"
            );
            assert!(response_count(&resp) <= 1, "{cl:?}: {resp:?}");
        }
        assert_eq!(origin.count("/cl"), 0);
        assert_eq!(origin.count("/smuggled"), 0);
        // Identical duplicates may be merged (RFC 9110 8.6); then the framing is
        // unambiguous and the request after the body is an ordinary pipelined one.
        let req = format!(
            "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello{HIDDEN}"
        );
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        let s = status_of(&resp);
        assert!(s == 400 || s == 200, "{resp:?}");
        assert!(origin.requests().iter().all(|r| r.path != "/cl" || &r.body[..] == b"hello"));
        still_serves(&node).await;
    })
    .await;
}

#[tokio::test]
async fn transfer_encoding_on_http10_refused() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let req = format!(
            "POST /te10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{HIDDEN}"
        );
        let resp = raw(node.addr, req.as_bytes(), 3).await;
        assert!(response_count(&resp) <= 1, "{resp:?}");
        assert_eq!(origin.count("/smuggled"), 0);
        still_serves(&node).await;
    })
    .await;
}

/// A request body that breaks is the client's fault, not the origin's (issue 11,
/// finding 13: a malformed chunked body got "502 origin unreachable"): malformed
/// chunks get 400, a body that stalls past `body_read_timeout` gets 408.
#[tokio::test]
async fn broken_request_bodies_are_blamed_on_the_client() {
    within(20, async {
        let origin = plain_origin().await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.body_read_timeout = Duration::from_millis(500);
        let node = start(cfg).await;
        for chunks in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX\r\n0\r\n\r\n"] {
            let req = format!(
                "POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}"
            );
            let resp = raw(node.addr, req.as_bytes(), 3).await;
            assert_eq!(status_of(&resp), 400, "{chunks:?}: {resp:?}");
        }
        // Half a body, then silence past body_read_timeout.
        let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let resp = String::from_utf8_lossy(&out);
        assert_eq!(status_of(&resp), 408, "{resp:?}");
        let metrics = node.running.as_ref().unwrap().proxy().metrics_text();
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("lacquer_origin_requests_total")
                    && !l.contains("outcome=\"ok\"")),
            "a client's broken body is not an origin failure:\n{metrics}"
        );
        still_serves(&node).await;
        let metrics = node.running.as_ref().unwrap().proxy().metrics_text();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("lacquer_origin_requests_total")
                    && l.contains("outcome=\"ok\"")),
            "the metric checked above is the one that counts origin requests:\n{metrics}"
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_chunk_sizes_not_forwarded_whole() {
    within(20, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        for chunks in [
            "zz\r\nhello\r\n0\r\n\r\n",
            "-5\r\nhello\r\n0\r\n\r\n",
            "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXX\r\n0\r\n\r\n",
            "5 5\r\nhello\r\n0\r\n\r\n",
            "0x5\r\nhello\r\n0\r\n\r\n",
        ] {
            let req = format!(
                "POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}{HIDDEN}"
            );
            let resp = raw(node.addr, req.as_bytes(), 3).await;
            let s = status_of(&resp);
            assert!(
                resp.is_empty() || (400..600).contains(&s),
                "{chunks:?}: a malformed chunked body was accepted: {resp:?}"
            );
            assert!(response_count(&resp) <= 1, "{chunks:?}: {resp:?}");
        }
        // The origin may have seen the head of a request whose body then failed, but
        // never a completed body, and never the hidden request.
        assert!(origin
            .requests()
            .iter()
            .all(|r| r.path != "/chunk" || r.body.is_empty()));
        assert_eq!(origin.count("/smuggled"), 0);
        still_serves(&node).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Malformed heads.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_header_lines_refused() {
    within(20, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        for (what, head) in [
            (
                "obs-fold",
                "GET /m HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            ),
            (
                "NUL in value",
                "GET /m HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
            ),
            (
                "NUL in name",
                "GET /m HTTP/1.1\r\nHost: x\r\nX\0A: a\r\n\r\n",
            ),
            ("bare CR", "GET /m HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"),
            ("no colon", "GET /m HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n"),
            (
                "space in name",
                "GET /m HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
            ),
            ("empty name", "GET /m HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n"),
            ("leading space line", "GET /m HTTP/1.1\r\n Host: x\r\n\r\n"),
            ("no Host", "GET /m HTTP/1.1\r\n\r\n"),
            ("two Hosts", "GET /m HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
            ("empty Host", "GET /m HTTP/1.1\r\nHost:\r\n\r\n"),
            ("Host with path", "GET /m HTTP/1.1\r\nHost: x/y\r\n\r\n"),
            ("Host with userinfo", "GET /m HTTP/1.1\r\nHost: u@x\r\n\r\n"),
        ] {
            let resp = raw(node.addr, head.as_bytes(), 3).await;
            assert_refused(&resp, what);
        }
        assert_eq!(
            origin.count("/m"),
            0,
            "a malformed request reached the origin"
        );
        still_serves(&node).await;
    })
    .await;
}

/// RFC 9112 2.2 lets a recipient accept a bare LF as a line end; either way the
/// answer must be a single well-formed response or a refusal.
#[tokio::test]
async fn bare_lf_answered_or_refused() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let resp = raw(
            node.addr,
            b"GET /lf HTTP/1.1\nHost: x\nConnection: close\n\n",
            3,
        )
        .await;
        let s = status_of(&resp);
        assert!(resp.is_empty() || s == 200 || s == 400, "{resp:?}");
        assert!(response_count(&resp) <= 1, "{resp:?}");
        still_serves(&node).await;
    })
    .await;
}

#[tokio::test]
async fn oversized_headers_refused() {
    within(20, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        // One huge value, many fields within the byte bound, and a head with no end.
        let big = format!(
            "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let resp = raw(node.addr, big.as_bytes(), 3).await;
        assert!(resp.is_empty() || status_of(&resp) == 431, "{resp:?}");
        let mut many = String::from("GET /big HTTP/1.1\r\nHost: x\r\n");
        for i in 0..200 {
            many.push_str(&format!("x-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let resp = raw(node.addr, many.as_bytes(), 3).await;
        assert!(resp.is_empty() || status_of(&resp) == 431, "{resp:?}");
        let endless = format!(
            "GET /big HTTP/1.1\r\nHost: x\r\nX-A: {}",
            "b".repeat(200_000)
        );
        let resp = raw(node.addr, endless.as_bytes(), 3).await;
        assert!(resp.is_empty() || status_of(&resp) == 431, "{resp:?}");
        assert_eq!(origin.count("/big"), 0);
        still_serves(&node).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Request lines: methods and targets.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_methods_and_targets_refused() {
    within(20, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(100_000));
        let cases: Vec<(&str, String)> = vec![
            ("method with (", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n".into()),
            (
                "method with NUL",
                "GE\0T / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            ),
            ("empty method", " / HTTP/1.1\r\nHost: x\r\n\r\n".into()),
            (
                "space in target",
                "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            ),
            ("no version", "GET /\r\nHost: x\r\n\r\n".into()),
            ("bad version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n".into()),
            (
                "target with NUL",
                "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            ),
            (
                "target with DEL",
                "GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            ),
            ("very long target", long),
        ];
        for (what, req) in cases {
            let resp = raw(node.addr, req.as_bytes(), 3).await;
            let s = status_of(&resp);
            assert!(
                resp.is_empty() || (400..500).contains(&s) || s == 505,
                "{what}: expected refusal, got {resp:?}"
            );
        }
        assert_eq!(origin.total(), 0, "{:?}", origin.requests());
        still_serves(&node).await;
    })
    .await;
}

/// A reverse proxy is not a forward proxy: CONNECT must not open a tunnel.
#[tokio::test]
async fn connect_is_not_tunnelled() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let resp = raw(
            node.addr,
            b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
            3,
        )
        .await;
        let s = status_of(&resp);
        assert!(
            resp.is_empty() || (400..600).contains(&s),
            "CONNECT answered {resp:?}"
        );
        assert!(
            origin.requests().iter().all(|r| r.method != "CONNECT"),
            "CONNECT forwarded to the origin"
        );
        still_serves(&node).await;
    })
    .await;
}

/// Asterisk-form is only for OPTIONS (RFC 9112 3.2.4); `GET *` must not be cached or
/// sent on as a request for `*`.
#[tokio::test]
async fn asterisk_target() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let resp = raw(
            node.addr,
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            3,
        )
        .await;
        assert!(response_count(&resp) <= 1, "{resp:?}");
        let resp = raw(
            node.addr,
            b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            3,
        )
        .await;
        assert_refused(&resp, "GET *");
        assert!(origin
            .requests()
            .iter()
            .all(|r| r.method == "OPTIONS" || r.path != "*"));
        still_serves(&node).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Slow clients.
// ---------------------------------------------------------------------------------------

/// Slowloris: a head trickled one byte at a time is cut off at `header_read_timeout`
/// even though bytes keep arriving, and other clients are served meanwhile.
#[tokio::test]
async fn slowloris_is_cut_off() {
    within(15, async {
        let origin = plain_origin().await;
        let node = node_for(origin.addr).await;
        let mut loris = Vec::new();
        for _ in 0..20 {
            let mut s = TcpStream::connect(node.addr).await.unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            loris.push(s);
        }
        let started = tokio::time::Instant::now();
        let trickle = async {
            let mut closed = vec![false; loris.len()];
            while closed.iter().any(|c| !c) && started.elapsed() < Duration::from_secs(6) {
                for (s, c) in loris.iter_mut().zip(closed.iter_mut()) {
                    if !*c && s.write_all(b"X").await.is_err() {
                        *c = true;
                    }
                    let mut b = [0u8; 512];
                    if !*c {
                        // Any answer (a 408, then EOF) or EOF means the server gave up.
                        if let Ok(Ok(_)) =
                            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
                        {
                            *c = true;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed
        };
        let (closed, g) = tokio::join!(trickle, node.get("/meanwhile"));
        assert_eq!(g.status, 200, "normal client starved by slowloris");
        assert!(
            closed.iter().all(|c| *c),
            "slowloris connections still open after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(origin.count("/slow"), 0);
    })
    .await;
}

/// A client that never reads a large response does not pin the connection forever and
/// does not hold back another client of the same object.
#[tokio::test]
async fn slow_reader_does_not_block_others() {
    within(20, async {
        const SIZE: usize = 8 << 20;
        let origin =
            Origin::start(|_, _| Reply::ok(vec![b'z'; SIZE]).cc("max-age=60").delay_ms(50)).await;
        let node = node_for(origin.addr).await;
        let mut stuck = TcpStream::connect(node.addr).await.unwrap();
        stuck
            .write_all(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = within(8, node.get("/large")).await;
        assert_eq!(other.status, 200);
        assert_eq!(other.body.len(), SIZE, "second client got a cut body");
        // Past idle_timeout (1 s of no progress) the stuck connection is closed.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let drained = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                match stuck.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        assert!(drained.is_ok(), "slow reader's connection never closed");
        assert!(
            got < SIZE,
            "the whole body fit in socket buffers: test is void"
        );
        still_serves(&node).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Broken origins.
// ---------------------------------------------------------------------------------------

/// Ask twice: each answer must be one of `ok`, and the second must not be a hit (a
/// broken response is never stored). Returns the two raw answers.
async fn ask_twice(node: &Node, path: &str) -> (String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let first = raw(node.addr, req.as_bytes(), 4).await;
    let second = raw(node.addr, req.as_bytes(), 4).await;
    for r in [&first, &second] {
        assert!(
            !header_of(r, "cache-status")
                .unwrap_or("")
                .starts_with("lacquer; hit"),
            "{path}: a broken origin response was served from cache: {r:?}"
        );
    }
    (first, second)
}

#[tokio::test]
async fn origin_garbage_is_502() {
    within(20, async {
        for (what, reply) in [
            ("garbage", &b"garbage\r\n\r\n"[..]),
            ("bad status", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"),
            (
                "NUL header",
                b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
            ),
            ("empty", b""),
            (
                "bad content-length",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\nCache-Control: max-age=60\r\n\r\nok",
            ),
            (
                "two content-lengths",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\nCache-Control: max-age=60\r\n\r\nok!",
            ),
            (
                "bad chunk",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            ),
        ] {
            let origin = raw_origin(reply, AfterReply::Close).await;
            let node = node_for(origin.addr).await;
            let (first, second) = ask_twice(&node, "/g").await;
            for r in [first, second] {
                let s = status_of(&r);
                // A head that parsed may already be on its way when the body fails:
                // then the connection is closed before the declared end.
                let cut = s == 200 && !body_of(&r).ends_with("ok");
                assert!(
                    s == 502 || r.is_empty() || cut,
                    "{what}: expected a clean 502, got {r:?}"
                );
            }
            still_serves(&node).await;
        }
    })
    .await;
}

#[tokio::test]
async fn origin_huge_head_is_502() {
    within(15, async {
        let mut reply = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        reply.extend(std::iter::repeat(b'a').take(2 << 20));
        reply.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
        let origin = raw_origin(&reply, AfterReply::Close).await;
        let node = node_for(origin.addr).await;
        let (first, _) = ask_twice(&node, "/huge").await;
        assert!(
            status_of(&first) == 502 || first.is_empty(),
            "{}",
            first.get(..200).unwrap_or(&first)
        );
        still_serves(&node).await;
    })
    .await;
}

/// Content-Length larger than what is sent, then close: the client sees a cut body (never
/// a complete-looking one), and the fragment is not stored.
#[tokio::test]
async fn truncated_origin_body_not_stored() {
    within(15, async {
        let origin = raw_origin(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly ten b",
            AfterReply::Close,
        )
        .await;
        let node = node_for(origin.addr).await;
        let (first, _) = ask_twice(&node, "/trunc").await;
        let s = status_of(&first);
        assert!(
            s == 502 || first.is_empty() || (s == 200 && body_of(&first).len() < 100),
            "{first:?}"
        );
        assert_eq!(origin.heads().iter().filter(|h| h.contains("/trunc")).count(), 2);
        still_serves(&node).await;
    })
    .await;
}

/// Content-Length larger than what is sent, connection left open: between-bytes timeout.
#[tokio::test]
async fn stalled_origin_body_not_stored() {
    within(15, async {
        let origin = raw_origin(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly ten b",
            AfterReply::Hang,
        )
        .await;
        let node = node_for(origin.addr).await;
        let (first, _) = ask_twice(&node, "/stall").await;
        let s = status_of(&first);
        assert!(
            s == 504 || s == 502 || first.is_empty() || (s == 200 && body_of(&first).len() < 100),
            "{first:?}"
        );
        assert_eq!(origin.heads().iter().filter(|h| h.contains("/stall")).count(), 2);
        still_serves(&node).await;
    })
    .await;
}

/// More body than Content-Length: the extra bytes are a forged second response. It must
/// never be taken as the answer to the next request on a pooled origin connection.
#[tokio::test]
async fn origin_response_splitting_not_reused() {
    within(15, async {
        let origin = RawOrigin::start(|head, _| {
            if head.starts_with("GET /first ") {
                (
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nfirst\
HTTP/1.1 200 OK\r\nContent-Length: 6\r\nCache-Control: max-age=60\r\n\r\nforged"
                        .to_vec(),
                    AfterReply::KeepAlive,
                )
            } else {
                (
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: max-age=60\r\n\r\nreal"
                        .to_vec(),
                    AfterReply::KeepAlive,
                )
            }
        })
        .await;
        let node = node_for(origin.addr).await;
        let first = node.get("/first").await;
        assert!(first.status == 200 || first.status == 502, "{first:?}");
        for _ in 0..3 {
            let second = node.get("/second").await;
            assert_ne!(second.text(), "forged", "forged response was used: {second:?}");
        }
        still_serves(&node).await;
    })
    .await;
}

/// Both Content-Length and Transfer-Encoding from the origin (RFC 9112 6.3: chunked wins,
/// the Content-Length must be removed before forwarding).
#[tokio::test]
async fn origin_cl_and_te_framed_consistently() {
    within(15, async {
        let origin = raw_origin(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            AfterReply::Close,
        )
        .await;
        let node = node_for(origin.addr).await;
        let (first, second) = ask_twice(&node, "/clte").await;
        for r in [first, second] {
            let s = status_of(&r);
            if s == 200 {
                // Re-framed: either chunked or with the real length, never the origin's 3.
                assert!(body_of(&r).contains("hello"), "wrong framing: {r:?}");
                if let Some(cl) = header_of(&r, "content-length") {
                    assert_eq!(cl, "5", "the origin's Content-Length was forwarded: {r:?}");
                }
            } else {
                assert!(s == 502 || r.is_empty(), "{r:?}");
            }
        }
        still_serves(&node).await;
    })
    .await;
}

/// A client waiting for a slow origin is not idle: it must not be cut off by
/// `idle_timeout` while its request is in flight within the upstream timeouts.
#[tokio::test]
async fn slow_origin_not_cut_by_client_idle_timeout() {
    within(15, async {
        let origin = Origin::start(|_, _| Reply::ok("late").cc("max-age=60").delay_ms(2500)).await;
        let mut cfg = config(&[origin.addr]);
        cfg.admin.enabled = false;
        cfg.limits.idle_timeout = Duration::from_secs(1);
        cfg.upstream.first_byte_timeout = Duration::from_secs(5);
        let node = start(cfg).await;
        let r = raw(
            node.addr,
            b"GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            6,
        )
        .await;
        assert_eq!(status_of(&r), 200, "{r:?}");
        assert_eq!(body_of(&r), "late");
    })
    .await;
}

#[tokio::test]
async fn silent_origin_is_504() {
    within(15, async {
        let origin = raw_origin(b"", AfterReply::Hang).await;
        let node = node_for(origin.addr).await;
        let started = tokio::time::Instant::now();
        let g = node.get("/silent").await;
        assert_eq!(g.status, 504, "{g:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        still_serves(&node).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Cache poisoning through unkeyed input. The attacker's request may get whatever the
// origin says; a clean request for the same URL afterwards must get exactly what a clean
// request gets on its own.
// ---------------------------------------------------------------------------------------

/// `attack` is a full request head for `/p` on host victim.test (or something that
/// claims to be). The baseline is a clean request for `/p?baseline`: the origin sees the
/// same path (it ignores the query), so its page is what a clean `/p` must show.
async fn not_poisoned(attack: &str) {
    let origin = reflecting_origin().await;
    let node = node_for(origin.addr).await;
    let clean = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: victim.test\r\nConnection: close\r\n\r\n")
    };
    let baseline = raw(node.addr, clean("/p?baseline").as_bytes(), 3).await;
    assert_eq!(status_of(&baseline), 200, "{baseline:?}");
    let attacked = raw(node.addr, attack.as_bytes(), 3).await;
    for _ in 0..2 {
        let got = raw(node.addr, clean("/p").as_bytes(), 3).await;
        assert_eq!(status_of(&got), 200, "{got:?}");
        assert_eq!(
            body_of(&got),
            body_of(&baseline),
            "poisoned by {attack:?} (attacker got {attacked:?})"
        );
        assert_eq!(
            header_of(&got, "location"),
            header_of(&baseline, "location"),
            "Location poisoned by {attack:?}"
        );
    }
    still_serves(&node).await;
}

fn attack_with(extra: &str) -> String {
    format!("GET /p HTTP/1.1\r\nHost: victim.test\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn poison_x_forwarded_host() {
    within(
        15,
        not_poisoned(&attack_with("X-Forwarded-Host: evil.test\r\n")),
    )
    .await;
}

#[tokio::test]
async fn poison_x_host() {
    within(15, not_poisoned(&attack_with("X-Host: evil.test\r\n"))).await;
}

#[tokio::test]
async fn poison_x_original_url() {
    within(15, not_poisoned(&attack_with("X-Original-URL: /evil\r\n"))).await;
}

#[tokio::test]
async fn poison_x_rewrite_url() {
    within(15, not_poisoned(&attack_with("X-Rewrite-URL: /evil\r\n"))).await;
}

#[tokio::test]
async fn poison_forwarded_host() {
    within(
        15,
        not_poisoned(&attack_with("Forwarded: host=evil.test;proto=https\r\n")),
    )
    .await;
}

#[tokio::test]
async fn poison_method_override() {
    within(
        15,
        not_poisoned(&attack_with("X-HTTP-Method-Override: DELETE\r\n")),
    )
    .await;
}

#[tokio::test]
async fn poison_x_forwarded_proto() {
    within(
        15,
        not_poisoned(&attack_with("X-Forwarded-Proto: https\r\n")),
    )
    .await;
}

/// The unkeyed fields that hostile testing found reaching the origin (issue 11,
/// finding 7), each on its own: an echoing origin's answer to them was cached for all.
#[tokio::test]
async fn poison_prefix_and_original_uri_fields() {
    within(40, async {
        for extra in [
            "X-Forwarded-Prefix: /evil\r\n",
            "X-Original-Host: evil.test\r\n",
            "X-Original-URI: /evil\r\n",
            "X-Forwarded-Uri: /evil\r\n",
        ] {
            not_poisoned(&attack_with(extra)).await;
        }
    })
    .await;
}

/// `[client] unkeyed_headers` is the operator's list: a field added to it is stripped,
/// and an emptied list forwards what it used to strip.
#[tokio::test]
async fn unkeyed_headers_list_is_configurable() {
    within(15, async {
        let origin = reflecting_origin().await;
        let mut cfg = config(&[origin.addr]);
        cfg.client.unkeyed_headers = vec!["X-Tenant".into()];
        let node = start(cfg).await;
        let got = raw(
            node.addr,
            attack_with("X-Tenant: evil\r\nX-Forwarded-Prefix: /kept\r\n").as_bytes(),
            3,
        )
        .await;
        assert!(!got.contains("x-tenant="), "listed field stripped: {got}");
        assert!(
            got.contains("x-forwarded-prefix=/kept"),
            "a field the operator took off the list is forwarded: {got}"
        );
        let bad = lacquer::config::Config::parse(
            "[[origin]]\naddress = \"127.0.0.1:1\"\n[client]\nunkeyed_headers = [\"host\", \"bad name\"]\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("t.toml:4: client.unkeyed_headers: \"host\" cannot be stripped"), "{bad}");
        assert!(bad.contains("\"bad name\" is not a valid header field name"), "{bad}");
    })
    .await;
}

#[tokio::test]
async fn poison_second_host_header() {
    within(15, async {
        let attack = attack_with("Host: evil.test\r\n");
        not_poisoned(&attack).await;
        let origin = reflecting_origin().await;
        let node = node_for(origin.addr).await;
        let r = raw(node.addr, attack.as_bytes(), 3).await;
        assert_eq!(
            status_of(&r),
            400,
            "RFC 9112 3.2: two Host lines are a 400: {r:?}"
        );
        assert_eq!(origin.total(), 0);
    })
    .await;
}

/// RFC 9112 3.2.2: with an absolute-form target the Host field is ignored and replaced by
/// the target's authority when forwarding. Otherwise the origin builds evil.test's page
/// and it is stored under victim.test.
#[tokio::test]
async fn poison_absolute_uri_host_mismatch() {
    within(
        15,
        not_poisoned(
            "GET http://victim.test/p HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        ),
    )
    .await;
}

#[tokio::test]
async fn absolute_uri_for_other_host_stays_there() {
    within(
        15,
        not_poisoned(
            "GET http://evil.test/p HTTP/1.1\r\nHost: victim.test\r\nConnection: close\r\n\r\n",
        ),
    )
    .await;
}

/// `Connection: Host` makes a naive hop-by-hop strip drop the Host the key was built from.
#[tokio::test]
async fn poison_connection_strips_host() {
    within(
        15,
        not_poisoned(&attack_with("Connection: close, Host\r\n")),
    )
    .await;
}

/// A GET with a body is passed through, never stored.
#[tokio::test]
async fn poison_fat_get() {
    within(
        15,
        not_poisoned(
            "GET /p HTTP/1.1\r\nHost: victim.test\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        ),
    )
    .await;
}
