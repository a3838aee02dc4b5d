//! Operations: TLS (SNI, ALPN h2, certificate reload), metrics, config reload under
//! traffic, graceful shutdown on SIGTERM, the systemd unit.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::net::TcpStream;

fn write_cert(
    dir: &Path,
    name: &str,
    hosts: &[&str],
) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().clone())
}

fn client_config(roots: &[&CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Handshake with SNI `name`; returns the TLS stream and the certificate the server chose.
async fn handshake(
    addr: SocketAddr,
    name: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
)> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let sni = ServerName::try_from(name.to_owned()).unwrap();
    let tls = connector.connect(sni, tcp).await?;
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    Ok((tls, peer))
}

async fn tls_node(dir: &Path, origin: SocketAddr) -> (Node, PathBuf) {
    let (a_cert, a_key, _) = write_cert(dir, "a", &["a.test"]);
    let (b_cert, b_key, _) = write_cert(dir, "b", &["b.test"]);
    let path = dir.join("lacquer.toml");
    std::fs::write(
        &path,
        format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {a_cert:?}, key = {a_key:?}, sni = [{{ cert = {b_cert:?}, key = {b_key:?} }}] }}\n\n\
             [[origin]]\naddress = \"{origin}\"\nhealth = {{ enabled = false }}\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = false\n"
        ),
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    (start(cfg).await, path)
}

fn read_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

use rustls_pki_types::pem::PemObject;

/// Two SNI names get their own certificates; h2 and http/1.1 by ALPN; a certificate
/// swap on reload keeps an open connection working and serves the new certificate to
/// new connections; a broken new certificate is refused and the old one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sni_alpn_and_certificate_reload() {
    within(30, async {
        let dir = temp_path("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let origin = Origin::start(|_, n| Reply::ok(format!("v{n}")).cc("max-age=60")).await;
        let (node, config_path) = tls_node(&dir, origin.addr).await;
        let a_der = read_der(&dir.join("a.pem"));
        let b_der = read_der(&dir.join("b.pem"));

        // SNI picks the certificate; the client verifies it for that name.
        let (_, got_a) = handshake(
            node.addr,
            "a.test",
            client_config(&[&a_der, &b_der], &[b"http/1.1"]),
        )
        .await
        .unwrap();
        assert_eq!(got_a, a_der);
        let (_, got_b) = handshake(
            node.addr,
            "b.test",
            client_config(&[&a_der, &b_der], &[b"http/1.1"]),
        )
        .await
        .unwrap();
        assert_eq!(got_b, b_der);

        // h2 over TLS via ALPN.
        let (tls, _) = handshake(node.addr, "a.test", client_config(&[&a_der], &[b"h2"]))
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut h2, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("https://a.test/h2")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "v1");

        // An HTTP/1.1 connection held open across a certificate swap.
        let (tls, _) = handshake(
            node.addr,
            "a.test",
            client_config(&[&a_der], &[b"http/1.1"]),
        )
        .await
        .unwrap();
        let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let get = |p: &str| {
            http::Request::get(p)
                .header("host", "a.test")
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        assert_eq!(h1.send_request(get("/held")).await.unwrap().status(), 200);

        let (_, _, new_a) = write_cert(&dir, "a", &["a.test"]);
        let live = node.running.as_ref().unwrap().live.clone();
        live.reload_from_source().await.unwrap();
        // hyper's client takes the next request only once the previous exchange has
        // finished on the connection; without waiting, the send races it.
        h1.ready().await.unwrap();
        let resp = h1.send_request(get("/held")).await.unwrap();
        assert_eq!(resp.status(), 200, "the open connection survives the swap");
        let (_, got) = handshake(
            node.addr,
            "a.test",
            client_config(&[&new_a], &[b"http/1.1"]),
        )
        .await
        .unwrap();
        assert_eq!(got, new_a, "new connections get the new certificate");

        // A broken certificate file: refused, the running one stays.
        std::fs::write(dir.join("a.pem"), "not a certificate").unwrap();
        assert!(live.reload_from_source().await.is_err());
        let (_, got) = handshake(
            node.addr,
            "a.test",
            client_config(&[&new_a], &[b"http/1.1"]),
        )
        .await
        .unwrap();
        assert_eq!(got, new_a);
        let _ = config_path;
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// /metrics is scraped and parsed: request counters move with traffic; with promtool
/// installed, `promtool check metrics` accepts the output.
#[tokio::test]
async fn metrics_scraped_and_parsed() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("m").cc("max-age=60")).await;
        let node = start(config(&[origin.addr])).await;
        node.get("/m").await;
        node.get("/m").await;
        let m = node.admin(http::Method::GET, "/metrics", None, "").await;
        assert_eq!(m.status, 200);
        let text = m.text();
        let value = |line_start: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(line_start))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no sample {line_start} in\n{text}"))
        };
        assert_eq!(
            value("lacquer_requests_total{result=\"hit\",status=\"2xx\"}"),
            1.0
        );
        assert_eq!(
            value("lacquer_requests_total{result=\"miss\",status=\"2xx\"}"),
            1.0
        );
        assert_eq!(value("lacquer_cache_objects "), 1.0);
        assert!(value("lacquer_origin_requests_total{") >= 1.0);
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "unparsable sample: {line}");
        }
        if let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            eprintln!("promtool not installed: skipped `promtool check metrics`");
        }
        node.stop().await;
    })
    .await;
}

fn write_config(path: &Path, origin: SocketAddr, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[[origin]]\naddress = \"{origin}\"\nhealth = {{ enabled = false }}\n\n\
             [admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = false\n{extra}"
        ),
    )
    .unwrap();
}

/// Reload under traffic: a good config moves requests to the new origin, a bad one is
/// refused with the reason, and no request fails at any point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_traffic() {
    within(30, async {
        let a = Origin::start(|_, _| Reply::ok("a")).await;
        let b = Origin::start(|_, _| Reply::ok("b")).await;
        let dir = temp_path("reload");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lacquer.toml");
        write_config(&path, a.addr, "");
        let node = start(Config::load(&path).unwrap()).await;
        let live = node.running.as_ref().unwrap().live.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for w in 0..4 {
            let (c, addr, stop) = (client(), node.addr, stop.clone());
            load.push(tokio::spawn(async move {
                let mut n = 0u32;
                let mut bodies = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let g = send(
                        &c,
                        addr,
                        http::Method::GET,
                        &format!("/t{w}-{n}"),
                        &[],
                        Bytes::new(),
                    )
                    .await;
                    assert_eq!(g.status, 200, "a request failed during reload");
                    bodies.push(g.text());
                    n += 1;
                }
                bodies
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        write_config(&path, b.addr, "");
        let note = live.reload_from_source().await.unwrap();
        assert!(note.starts_with("reloaded"), "{note}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::write(&path, "[[listen]\nbroken").unwrap();
        let err = live.reload_from_source().await.unwrap_err();
        assert!(
            err.contains("lacquer.toml:1"),
            "error names file and line: {err}"
        );
        // Bad config over the admin API: 422 with the reason, still serving.
        let r = node.admin(http::Method::POST, "/reload", None, "").await;
        assert_eq!(r.status, 422, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for l in load {
            all.extend(l.await.unwrap());
        }
        assert!(
            all.iter().any(|b| b == "a") && all.iter().any(|b| b == "b"),
            "traffic moved to the new origin"
        );
        assert_eq!(
            all.last().map(String::as_str),
            Some("b"),
            "the refused config changed nothing"
        );
        node.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// SIGTERM to the real binary: in-flight requests complete, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    within(40, async {
        let origin = Origin::start(|_, _| Reply::ok("finished").delay_ms(1500)).await;
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
            .args([
                "run",
                "--listen",
                &addr.to_string(),
                "--origin",
                &origin.addr.to_string(),
                "--admin",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let c = client();
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut inflight = Vec::new();
        for i in 0..5 {
            let c = c.clone();
            inflight.push(tokio::spawn(async move {
                send(
                    &c,
                    addr,
                    http::Method::GET,
                    &format!("/slow{i}"),
                    &[],
                    Bytes::new(),
                )
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        for t in inflight {
            let g = t.await.unwrap();
            assert_eq!(g.status, 200);
            assert_eq!(g.text(), "finished");
        }
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "{exit:?}");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer accepting"
        );
    })
    .await;
}

/// The shipped unit passes `systemd-analyze verify` (when systemd-analyze exists).
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/lacquer.service"
    ))
    .unwrap();
    for key in [
        "Type=notify",
        "ExecReload=",
        "WatchdogSec=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(key), "unit lacks {key}");
    }
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed: skipped verify");
        return;
    };
    if !out.status.success() {
        return;
    }
    let dir = temp_path("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lacquer.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/lacquer", env!("CARGO_BIN_EXE_lacquer")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `lacquer stat --once` reads a node's metrics and prints the main counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_prints_counters() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("s").cc("max-age=60")).await;
        let node = start(config(&[origin.addr])).await;
        node.get("/s").await;
        node.get("/s").await;
        let admin = node.running.as_ref().unwrap().admin.unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
            .args(["stat", "--once", "--admin", &admin.to_string()])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("hit ratio (requests)") && text.contains("50.0%"),
            "{text}"
        );
        // An unreachable node is a clear error, not a hang.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
            .args(["stat", "--once", "--admin", "127.0.0.1:1"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach admin API"));
        node.stop().await;
    })
    .await;
}

/// PROXY protocol on a listener: the client address in the header is used (for
/// X-Forwarded-For, geo) only when the load balancer is a trusted proxy; a connection
/// without a header is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_client_address() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("pp")).await;
        for (trusted, expect) in [(true, "203.0.113.7"), (false, "127.0.0.1")] {
            let mut cfg = config(&[origin.addr]);
            cfg.listen[0].proxy_protocol = true;
            if trusted {
                cfg.client.trusted_proxies = vec!["127.0.0.1/32".into()];
            }
            let node = start(cfg).await;
            let v1 = raw(
                node.addr,
                b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nGET /pp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                3,
            )
            .await;
            assert!(v1.starts_with("HTTP/1.1 200"), "{v1}");
            assert_eq!(origin.last().unwrap().headers.get("x-forwarded-for").unwrap(), expect);
            let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            v2.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x15, 0xb3, 0, 80]);
            v2.extend_from_slice(b"GET /pp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let got = raw(node.addr, &v2, 3).await;
            assert!(got.starts_with("HTTP/1.1 200"), "{got}");
            let want = if trusted { "198.51.100.9" } else { "127.0.0.1" };
            assert_eq!(origin.last().unwrap().headers.get("x-forwarded-for").unwrap(), want);
            let none = raw(node.addr, b"GET /pp HTTP/1.1\r\nhost: x\r\n\r\n", 3).await;
            assert!(none.is_empty(), "no PROXY header: closed, got {none}");
            node.stop().await;
        }
    })
    .await;
}

/// HTTPS to an origin: SNI and verification against the configured CA; a response from
/// an origin whose certificate is not trusted is a clean 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_origin_with_sni_and_ca() {
    within(20, async {
        let dir = temp_path("origin-tls");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key, _) = write_cert(&dir, "origin", &["origin.test"]);
        let (other, _, _) = write_cert(&dir, "other", &["other.test"]);
        // A TLS origin: rustls acceptor in front of a tiny hyper service.
        let tls = lacquer::tls::Tls::new(vec![lacquer::tls::CertPaths {
            cert: cert.clone(),
            key,
        }])
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    let Ok(s) = acceptor.accept(s).await else {
                        return;
                    };
                    let sni = s.get_ref().1.server_name().unwrap_or("").to_owned();
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = format!("secure via {sni}");
                        async move {
                            let mut r =
                                http::Response::new(http_body_util::Full::new(Bytes::from(body)));
                            r.headers_mut()
                                .insert("cache-control", "max-age=60".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        for (ca, want) in [(&cert, 200u16), (&other, 502)] {
            let mut cfg = config(&[addr]);
            cfg.origin[0].tls = true;
            cfg.origin[0].sni = Some("origin.test".into());
            cfg.origin[0].ca_file = Some(ca.clone());
            let node = start(cfg).await;
            let g = node.get("/s").await;
            assert_eq!(g.status, want, "{}", g.text());
            if want == 200 {
                assert_eq!(g.text(), "secure via origin.test");
                assert!(node.get("/s").await.is_hit());
            }
            node.stop().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// A free loopback port (bound then released) for the real binary's listeners.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// The value of one sample line of the Prometheus exposition, 0 when absent.
fn sample(metrics: &str, line_prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A broken config sent by SIGHUP (and by `POST /reload`) is logged with its
/// `file:line`, counted as a failed reload, and changes nothing (issue 11, finding 10:
/// it used to be silent and uncounted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_broken_config_is_logged_and_counted() {
    within(40, async {
        let origin = Origin::start(|_, _| Reply::ok("served")).await;
        let dir = temp_path("sighup");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lacquer.toml");
        let (listen, admin) = (free_port(), free_port());
        let good = format!(
            "[[listen]]\naddress = \"{listen}\"\n\n[[origin]]\naddress = \"{}\"\n\
             health = {{ enabled = false }}\n\n[admin]\naddress = \"{admin}\"\n",
            origin.addr
        );
        std::fs::write(&path, &good).unwrap();
        let log = dir.join("stderr.log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
            .args(["run", "--config", path.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let c = client();
        for _ in 0..100 {
            if TcpStream::connect(admin).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let failed = |m: &str| sample(m, "lacquer_config_reloads_total{result=\"failed\"}");
        let metrics = || async {
            send(&c, admin, http::Method::GET, "/metrics", &[], Bytes::new())
                .await
                .text()
        };
        assert_eq!(failed(&metrics().await), 0.0);

        std::fs::write(&path, format!("{good}\n[cache]\nmemroy = \"1GiB\"\n")).unwrap();
        let pid = child.id().unwrap().to_string();
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(hup.success());
        let mut counted = 0.0;
        for _ in 0..100 {
            counted = failed(&metrics().await);
            if counted >= 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counted, 1.0, "the refused SIGHUP reload is counted");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains("lacquer.toml:") && logged.contains("memroy"),
            "the refusal is logged with file:line and the key: {logged}"
        );

        let r = send(&c, admin, http::Method::POST, "/reload", &[], Bytes::new()).await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(
            failed(&metrics().await),
            2.0,
            "POST /reload refusal counted"
        );

        let g = send(&c, listen, http::Method::GET, "/x", &[], Bytes::new()).await;
        assert_eq!((g.status, g.text().as_str()), (200, "served"));
        let _ = child.start_kill();
        let _ = child.wait().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
