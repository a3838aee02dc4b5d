//! The hit path end to end: lacquer started in-process on loopback, a hyper client
//! doing keep-alive GETs of one cached 1 KiB object.

use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use lacquer::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A minimal keep-alive origin: every request gets the same cacheable 1 KiB page.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nCache-Control: max-age=3600\r\n\r\n".to_vec();
    reply.extend(std::iter::repeat(b'x').take(1024));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, reply.clone()));
        }
    });
    addr
}

async fn serve(mut s: TcpStream, reply: Vec<u8>) {
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
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, url, _node) = rt.block_on(async {
        let origin = origin().await;
        let mut cfg = Config::quick("127.0.0.1:0".parse().unwrap(), &[origin.to_string()]).unwrap();
        cfg.log.access_log = false;
        cfg.admin.enabled = false;
        for o in &mut cfg.origin {
            o.health.enabled = false;
        }
        let node = lacquer::server::start(cfg).await.unwrap();
        let url: http::Uri = format!("http://{}/obj", node.listen[0]).parse().unwrap();
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        // Fill the cache once.
        let body = client.get(url.clone()).await.unwrap().into_body();
        body.collect().await.unwrap();
        (client, url, node)
    });
    c.bench_function("hit_1k_keepalive", |b| {
        b.iter(|| {
            rt.block_on(async {
                let resp = client.get(url.clone()).await.unwrap();
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body.len(), 1024);
            })
        })
    });
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
