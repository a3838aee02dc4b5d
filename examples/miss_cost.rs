//! The cost of a miss, for callgrind: N sequential keep-alive misses (unique URLs, a
//! stored 1 KiB page) through lacquer in-process, on one thread, origin and client
//! included. Instructions per miss = difference between two runs / difference in N:
//!
//!   cargo build --release --example miss_cost
//!   valgrind --tool=callgrind target/release/examples/miss_cost 200
//!   valgrind --tool=callgrind target/release/examples/miss_cost 1200
//!
//! With a second argument `hit`, every request asks for the same URL: after the first
//! fill, N hits. With `SITES=K` in the environment, the node has K `[[site]]`s (exact
//! hosts, wildcards, prefixes and a few regexes, as `benches/routing.rs`), and the
//! requests' host is served by the last of them, behind every other rule.
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nCache-Control: max-age=3600\r\n\r\n".to_vec();
    reply.extend(std::iter::repeat(b'x').take(1024));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        if s.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let hits = std::env::args().nth(2).is_some_and(|a| a == "hit");
    let o = origin().await;
    let mut cfg =
        lacquer::config::Config::quick("127.0.0.1:0".parse().unwrap(), &[o.to_string()]).unwrap();
    cfg.log.access_log = false;
    cfg.admin.enabled = false;
    for x in &mut cfg.origin {
        x.health.enabled = false;
    }
    let sites: usize = std::env::var("SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if sites > 0 {
        cfg.origin_group = vec![lacquer::config::OriginGroupConfig {
            name: "app".into(),
            servers: vec![lacquer::config::ServerConfig {
                address: o.to_string(),
                weight: 1,
            }],
            health: lacquer::config::HealthConfig {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        }];
        for i in 0..sites - 1 {
            let mut site = lacquer::config::SiteConfig {
                name: format!("s{i}"),
                origin_group: Some("app".into()),
                ..Default::default()
            };
            match i % 4 {
                0 => site.hosts = vec![format!("h{i}.example.com")],
                1 => site.hosts = vec![format!("*.w{i}.example.com")],
                2 => {
                    site.hosts = vec![format!("h{i}.example.com")];
                    site.paths = vec![format!("/p{i}/")];
                }
                _ => {
                    site.hosts = vec![format!("r{i}.example.com")];
                    site.path_regex = vec![format!("^/r{i}/[0-9]+$")];
                }
            }
            cfg.site.push(site);
        }
        cfg.site.push(lacquer::config::SiteConfig {
            name: "bench".into(),
            hosts: vec!["bench".into()],
            origin_group: Some("app".into()),
            ..Default::default()
        });
    }
    let running = lacquer::server::start(cfg).await.unwrap();
    let addr = running.listen[0];
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 8192];
    for i in 0..n {
        let path = if hits { 0 } else { i };
        let req = format!("GET /u/{path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        // Read until the 1 KiB body has arrived (head + 1024 bytes).
        let mut got = Vec::new();
        loop {
            let k = s.read(&mut buf).await.unwrap();
            assert!(k > 0);
            got.extend_from_slice(&buf[..k]);
            if let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= h + 4 + 1024 {
                    break;
                }
            }
        }
    }
    println!("{n} {} done", if hits { "hits" } else { "misses" });
}
