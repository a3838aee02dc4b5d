//! WebSocket tunnels through lacquer: a real WebSocket echo origin (tokio-tungstenite)
//! and real WebSocket clients on loopback, over HTTP/1.1 Upgrade and HTTP/2 extended
//! CONNECT; refusals, bounds, reload and shutdown, metrics.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response as ClientResponse;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket origin that echoes every text and binary message. `/deny` is refused
/// with 403; a client asking for the `chat` subprotocol gets it.
struct EchoOrigin {
    addr: SocketAddr,
    /// Each handshake's request fields, in arrival order.
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl EchoOrigin {
    async fn start() -> EchoOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(echo(stream, log.clone()));
            }
        });
        EchoOrigin { addr, seen }
    }

    fn handshakes(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

// The handshake callback's result type is tungstenite's.
#[allow(clippy::result_large_err)]
async fn echo(stream: TcpStream, seen: Arc<Mutex<Vec<HeaderMap>>>) {
    let check = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        seen.lock().unwrap().push(req.headers().clone());
        if req.uri().path() == "/deny" {
            let mut refusal = ErrorResponse::new(Some("denied by the origin".to_owned()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let wants_chat = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "chat"));
        if wants_chat {
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// A WebSocket client through the node; the handshake's answer with it.
async fn connect(
    node: &Node,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<(Ws, ClientResponse), WsError> {
    let mut req = format!("ws://{}{path}", node.addr)
        .into_client_request()
        .unwrap();
    for (k, v) in fields {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req).await
}

/// Send `msg` and read its echo.
async fn round_trip<S>(ws: &mut WebSocketStream<S>, msg: Message) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(msg).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(m)) if m.is_text() || m.is_binary() => return m,
            Some(Ok(_)) => continue,
            other => panic!("no echo: {other:?}"),
        }
    }
}

/// The value of one metric line (name with labels), 0 when absent.
fn metric(node: &Node, series: &str) -> f64 {
    let text = node.running.as_ref().unwrap().proxy().metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_tunnel_echoes_text_and_binary_and_keeps_the_handshake_fields() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let node = start(config(&[origin.addr])).await;
        let (mut ws, answer) = connect(
            &node,
            "/live?match=7",
            &[("sec-websocket-protocol", "chat")],
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), 101);
        assert_eq!(
            answer.headers().get("sec-websocket-protocol").unwrap(),
            "chat"
        );
        assert!(answer.headers().get("via").is_some(), "{answer:?}");
        let text = Message::text("goal! 1-0");
        assert_eq!(round_trip(&mut ws, text.clone()).await, text);
        let binary = Message::binary(vec![0u8, 1, 2, 255, 0, 13, 10]);
        assert_eq!(round_trip(&mut ws, binary.clone()).await, binary);
        // A message larger than the relay's chunk crosses in pieces.
        let big = Message::binary((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        assert_eq!(round_trip(&mut ws, big.clone()).await, big);
        ws.close(None).await.unwrap();
        // The origin answers the close; then both ends are done.
        while let Some(Ok(_)) = ws.next().await {}
        drop(ws);

        let seen = origin.handshakes();
        assert_eq!(seen.len(), 1);
        let h = &seen[0];
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert!(h.get("sec-websocket-key").is_some());
        assert_eq!(h.get("sec-websocket-version").unwrap(), "13");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.1");
        assert!(h.get("via").is_some());
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_origins_refusal_is_passed_on_as_a_normal_response_never_stored() {
    within(30, async {
        let ws_origin = EchoOrigin::start().await;
        let node = start(config(&[ws_origin.addr])).await;
        match connect(&node, "/deny", &[]).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 403);
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("denied by the origin"), "{body}");
            }
            other => panic!("expected 403, got {other:?}"),
        }
        node.stop().await;

        // An origin that knows nothing of WebSockets answers 200: relayed as it is,
        // and not stored, though it says it may be.
        let plain = Origin::start(|_, _| Reply::ok("just a page").cc("max-age=60")).await;
        let node = start(config(&[plain.addr])).await;
        let upgrade = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        let got = node.get_with("/page", &upgrade).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "just a page");
        assert!(got.cache_status().contains("fwd=bypass"), "{got:?}");
        let seen = plain.last().unwrap();
        assert_eq!(seen.headers.get("upgrade").unwrap(), "websocket");
        let again = node.get("/page").await;
        assert!(!again.is_hit(), "a tunnel's answer is never stored");
        assert_eq!(plain.count("/page"), 2);
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_h2c_upgrade_is_not_tunnelled() {
    within(30, async {
        let plain = Origin::start(|_, _| Reply::ok("h1 it is")).await;
        let node = start(config(&[plain.addr])).await;
        let got = node
            .get_with(
                "/x",
                &[
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", "h2c"),
                    ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                ],
            )
            .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "h1 it is");
        let seen = plain.last().unwrap();
        for field in ["upgrade", "http2-settings", "connection"] {
            assert!(
                seen.headers.get(field).is_none(),
                "{field} reached the origin"
            );
        }
        // A WebSocket upgrade on a POST is no handshake either.
        let got = node
            .send(
                Method::POST,
                "/y",
                &[("connection", "Upgrade"), ("upgrade", "websocket")],
                Bytes::from_static(b"body"),
            )
            .await;
        assert_eq!(got.status, 200);
        assert!(plain.last().unwrap().headers.get("upgrade").is_none());
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_after_the_idle_timeout() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.tunnel_idle_timeout = Duration::from_millis(700);
        let node = start(cfg).await;
        let (mut ws, _) = connect(&node, "/quiet", &[]).await.unwrap();
        let m = Message::text("one");
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        // Messages keep it open past the bound...
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        }
        // ...silence closes it.
        let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        match end {
            Ok(None) | Ok(Some(Err(_))) => {}
            other => panic!("tunnel not closed: {other:?}"),
        }
        until("the tunnel to be counted closed", || {
            metric(&node, "lacquer_tunnels_open") == 0.0
        })
        .await;
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_site_sets_its_own_idle_timeout() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let text = format!(
            r#"
[[listen]]
address = "127.0.0.1:0"
[[origin]]
address = "{}"
health = {{ enabled = false }}
[log]
access_log = false
[admin]
enabled = false
[limits]
tunnel_idle_timeout = "1h"
[[site]]
name = "live"
paths = ["/live/"]
tunnel_idle_timeout = "500ms"
[[site]]
name = "rest"
"#,
            origin.addr
        );
        let cfg = Config::parse(&text, "t.toml").unwrap();
        let node = start(cfg).await;
        let (mut live, _) = connect(&node, "/live/feed", &[]).await.unwrap();
        let (mut rest, _) = connect(&node, "/other", &[]).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), live.next()).await;
        assert!(matches!(end, Ok(None) | Ok(Some(Err(_)))), "{end:?}");
        let m = Message::text("still here");
        assert_eq!(round_trip(&mut rest, m.clone()).await, m);
        drop((live, rest));
        node.stop().await;
    })
    .await;
}

#[tokio::test]
async fn past_max_tunnels_an_upgrade_gets_503_and_a_tunnel_keeps_its_connection_slot() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.max_tunnels = 2;
        cfg.limits.max_connections = 3;
        let node = start(cfg).await;
        let (mut a, _) = connect(&node, "/a", &[]).await.unwrap();
        let (b, _) = connect(&node, "/b", &[]).await.unwrap();
        match connect(&node, "/c", &[]).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 503);
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("max_tunnels"), "{body}");
            }
            other => panic!("expected 503, got {other:?}"),
        }
        assert_eq!(
            metric(&node, "lacquer_tunnels_refused_total{reason=\"limit\"}"),
            1.0
        );
        // Two tunnels hold two of the three connection slots, though hyper is done
        // with their connections: one more connection is served, a fourth is not.
        let one_more = TcpStream::connect(node.addr).await.unwrap();
        until("the third connection to be counted", || {
            metric(&node, "lacquer_connections_open") == 3.0
        })
        .await;
        let refused = raw(node.addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 5).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        drop(one_more);
        let m = Message::text("a");
        assert_eq!(round_trip(&mut a, m.clone()).await, m);
        // A closed tunnel gives its places back.
        drop(b);
        until("the tunnel to close", || {
            metric(&node, "lacquer_tunnels_open") == 1.0
        })
        .await;
        let (mut c, _) = connect(&node, "/c", &[]).await.unwrap();
        assert_eq!(round_trip(&mut c, m.clone()).await, m);
        drop((a, c));
        node.stop().await;
    })
    .await;
}

/// Raise the open-file limit as far as allowed; returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return 1024;
    };
    if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return hard;
    }
    soft
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tunnels_each_echo_a_hundred_messages_through_a_reload() {
    const WANTED: usize = 1000;
    const MESSAGES: usize = 100;
    within(240, async {
        // Four sockets per tunnel in this process (client, node's two ends, origin).
        let fds = raise_fd_limit();
        let tunnels = WANTED.min((fds.saturating_sub(200) / 4) as usize);
        if tunnels < WANTED {
            println!("open-file limit {fds}: scaled down to {tunnels} tunnels");
        }
        let origin = EchoOrigin::start().await;
        let cfg = config(&[origin.addr]);
        let node = Arc::new(start(cfg.clone()).await);
        let sent = Arc::new(AtomicUsize::new(0));
        let (go, go_rx) = tokio::sync::watch::channel(false);
        let connects = Arc::new(tokio::sync::Semaphore::new(100));
        let mut clients = Vec::new();
        for i in 0..tunnels {
            let (node, sent, connects) = (node.clone(), sent.clone(), connects.clone());
            let mut go = go_rx.clone();
            clients.push(tokio::spawn(async move {
                let permit = connects.acquire_owned().await.unwrap();
                let (mut ws, _) = connect(&node, &format!("/t/{i}"), &[]).await.unwrap();
                drop(permit);
                let _ = go.wait_for(|g| *g).await;
                for n in 0..MESSAGES {
                    let m = if n % 2 == 0 {
                        Message::text(format!("tunnel {i} message {n}"))
                    } else {
                        Message::binary(format!("{i}:{n}").into_bytes())
                    };
                    let back = round_trip(&mut ws, m.clone()).await;
                    assert_eq!(back, m, "tunnel {i} message {n}");
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                ws.close(None).await.unwrap();
            }));
        }
        until("every tunnel to open", || {
            metric(&node, "lacquer_tunnels_open") as usize == tunnels
        })
        .await;
        go.send(true).unwrap();
        // The reload lands mid-exchange: a changed config (a new proxy, same origin pool).
        let half = tunnels * MESSAGES / 2;
        while sent.load(Ordering::Relaxed) < half {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut changed = cfg.clone();
        changed.limits.tunnel_idle_timeout = Duration::from_secs(120);
        let live = node.running.as_ref().unwrap().live.clone();
        let note = live.reload(changed).await.unwrap();
        println!(
            "reloaded at {} messages: {note}",
            sent.load(Ordering::Relaxed)
        );
        for c in clients {
            c.await.unwrap();
        }
        assert_eq!(sent.load(Ordering::Relaxed), tunnels * MESSAGES);
        assert_eq!(
            metric(&node, "lacquer_tunnels_opened_total") as usize,
            tunnels
        );
        until("every tunnel to close", || {
            metric(&node, "lacquer_tunnels_open") == 0.0
        })
        .await;
        if let Ok(node) = Arc::try_unwrap(node) {
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_tunnels_after_the_drain_timeout() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let mut cfg = config(&[origin.addr]);
        cfg.limits.drain_timeout = Duration::from_millis(1500);
        let node = start(cfg).await;
        let (mut ws, _) = connect(&node, "/drain", &[]).await.unwrap();
        let started = tokio::time::Instant::now();
        let stopping = tokio::spawn(node.stop());
        // Within the drain the tunnel still works...
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m = Message::text("still open");
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        // ...then it is cut, and shutdown returns.
        let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        assert!(matches!(end, Ok(None) | Ok(Some(Err(_)))), "{end:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "cut before drain_timeout"
        );
        tokio::time::timeout(Duration::from_secs(10), stopping)
            .await
            .expect("shutdown returned")
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn metrics_count_tunnels_bytes_and_refusals() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let node = start(config(&[origin.addr])).await;
        let (mut ws, _) = connect(&node, "/m", &[]).await.unwrap();
        assert_eq!(metric(&node, "lacquer_tunnels_open"), 1.0);
        let payload = vec![7u8; 1000];
        let m = Message::binary(payload);
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        drop(ws);
        until("the tunnel to close", || {
            metric(&node, "lacquer_tunnels_open") == 0.0
        })
        .await;
        assert_eq!(metric(&node, "lacquer_tunnels_opened_total"), 1.0);
        // 1000 payload bytes, a frame header each way (a client's is masked: 8 bytes),
        // and the close frames.
        let up = metric(
            &node,
            "lacquer_tunnel_bytes_total{direction=\"client_to_origin\"}",
        );
        let down = metric(
            &node,
            "lacquer_tunnel_bytes_total{direction=\"origin_to_client\"}",
        );
        assert!((1008.0..1100.0).contains(&up), "client to origin: {up}");
        assert!((1004.0..1100.0).contains(&down), "origin to client: {down}");
        assert!(matches!(
            connect(&node, "/deny", &[]).await,
            Err(WsError::Http(_))
        ));
        assert_eq!(
            metric(&node, "lacquer_tunnels_refused_total{reason=\"origin\"}"),
            1.0
        );
        assert_eq!(metric(&node, "lacquer_tunnels_opened_total"), 1.0);
        node.stop().await;
    })
    .await;
}

/// RFC 8441: a WebSocket over an HTTP/2 connection (h2c, prior knowledge), tunnelled
/// to an HTTP/1.1 WebSocket origin.
#[tokio::test]
async fn a_websocket_over_http2_extended_connect() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    within(30, async {
        let origin = EchoOrigin::start().await;
        // A tunnel's silences are bounded by tunnel_idle_timeout, not by the idle bound
        // of the HTTP/2 connection carrying it; and a site's `methods` see a GET.
        let text = format!(
            r#"
[[listen]]
address = "127.0.0.1:0"
[[origin]]
address = "{}"
health = {{ enabled = false }}
[log]
access_log = false
[admin]
enabled = false
[limits]
idle_timeout = "500ms"
[[site]]
name = "reads"
methods = ["GET"]
"#,
            origin.addr
        );
        let node = start(Config::parse(&text, "t.toml").unwrap()).await;
        let tcp = TcpStream::connect(node.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        // An ordinary request first: the server's SETTINGS (which allow extended
        // CONNECT) have arrived once it is answered.
        let warm = http::Request::get(format!("http://{}/warm", node.addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let _ = sender.send_request(warm).await.unwrap();
        let mut req = http::Request::builder()
            .method(Method::CONNECT)
            .uri(format!("http://{}/h2ws", node.addr))
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat")
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{resp:?}");
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").unwrap(),
            "chat"
        );
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        let m = Message::text("over h2");
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        let b = Message::binary(vec![1u8; 70_000]);
        assert_eq!(round_trip(&mut ws, b.clone()).await, b);
        let seen = origin.handshakes();
        let h = seen.last().unwrap();
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert!(h.get("sec-websocket-key").is_some());
        drop(ws);
        node.stop().await;
    })
    .await;
}

/// In a PoP, an edge sends a WebSocket straight to its origins: never to the shard that
/// owns the URL's key (a tunnel is one client's, and a shard is a cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_tunnels_to_the_origin_not_through_a_shard() {
    within(30, async {
        let origin = EchoOrigin::start().await;
        let free = |ip: [u8; 4]| {
            let l = std::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0)).unwrap();
            l.local_addr().unwrap()
        };
        let (edge_addr, edge_admin) = (free([127, 0, 0, 61]), free([127, 0, 0, 61]));
        let (shard_addr, shard_admin) = (free([127, 0, 0, 62]), free([127, 0, 0, 62]));
        let node = |name: &str, role: &str, public: SocketAddr, admin: SocketAddr| {
            let text = format!(
                "[node]\nname = \"{name}\"\nrole = \"{role}\"\n[[listen]]\naddress = \"{public}\"\n\
                 [[origin]]\naddress = \"{}\"\n[origin.health]\nenabled = false\n\
                 [admin]\naddress = \"{admin}\"\n[log]\naccess_log = false\n\
                 [cluster]\nenabled = true\nhealth_interval = \"100ms\"\nramp_up = \"0s\"\npeers = [\n\
                 {{ name = \"e\", address = \"{edge_addr}\", admin = \"{edge_admin}\", role = \"edge\" }},\n\
                 {{ name = \"s\", address = \"{shard_addr}\", admin = \"{shard_admin}\", role = \"shard\" }},\n]\n",
                origin.addr
            );
            Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
        };
        let shard = start(node("s", "shard", shard_addr, shard_admin)).await;
        let edge = start(node("e", "edge", edge_addr, edge_admin)).await;
        // The edge sees the shard up before the tunnel, so a forward would have gone there.
        until("the edge to see the shard up", || {
            metric(&edge, "lacquer_peer_up{peer=\"s\"}") == 1.0
        })
        .await;
        let (mut ws, _) = connect(&edge, "/live/scores", &[]).await.unwrap();
        let m = Message::text("via the edge");
        assert_eq!(round_trip(&mut ws, m.clone()).await, m);
        drop(ws);
        assert_eq!(metric(&edge, "lacquer_tunnels_opened_total"), 1.0);
        assert_eq!(metric(&shard, "lacquer_tunnels_opened_total"), 0.0);
        let seen = origin.handshakes();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].get("x-lacquer-hop").is_none(), "{:?}", seen[0]);
        let requests = |node: &Node| -> f64 {
            let text = node.running.as_ref().unwrap().proxy().metrics_text();
            text.lines()
                .filter(|l| l.starts_with("lacquer_requests_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(requests(&shard), 0.0);
        // The same URL without an upgrade is the shard's to answer (its origin, a
        // WebSocket-only server, refuses a plain GET).
        let _ = edge.get("/live/scores").await;
        assert_eq!(requests(&shard), 1.0);
        edge.stop().await;
        shard.stop().await;
    })
    .await;
}
