//! A tiny origin for trying lacquer without writing an app (`lacquer demo`). Every
//! response says how many times the origin was asked for that path, so caching and
//! coalescing are visible from curl.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Paths the demo origin answers, with the caching each one shows off.
pub const ROUTES: &str = "\
/            this page (max-age=10)
/slow?ms=N   waits N ms (default 1000) then answers, max-age=60: try 100 clients at once
/time        the current time, max-age=5, stale-while-revalidate=30, stale-if-error=600
/private     Cache-Control: private (never stored)
/nostore     Cache-Control: no-store (never stored, never coalesced)
/error       503 (try it after /time is cached)
";

#[derive(Default)]
struct Counts(Mutex<HashMap<String, u64>>);

impl Counts {
    fn bump(&self, path: &str) -> u64 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 10_000 && !m.contains_key(path) {
            m.clear();
        }
        let n = m.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
}

/// Bind and serve the demo origin until the process ends.
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let counts = Arc::new(Counts::default());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let counts = counts.clone();
                    async move { Ok::<_, Infallible>(answer(req, &counts).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

async fn answer(req: Request<Incoming>, counts: &Counts) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let n = counts.bump(&path);
    let (status, cc, body) = match path.as_str() {
        "/" => (
            StatusCode::OK,
            "max-age=10",
            format!("lacquer demo origin\n\n{ROUTES}"),
        ),
        "/slow" => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000)
                .min(30_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (
                StatusCode::OK,
                "max-age=60",
                format!("slow response after {ms} ms\n"),
            )
        }
        "/time" => (
            StatusCode::OK,
            "max-age=5, stale-while-revalidate=30, stale-if-error=600",
            format!(
                "{}\n",
                httpdate::fmt_http_date(std::time::SystemTime::now())
            ),
        ),
        "/private" => (StatusCode::OK, "private", "for one user only\n".to_owned()),
        "/nostore" => (StatusCode::OK, "no-store", "never stored\n".to_owned()),
        "/error" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no-store",
            "origin error\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "max-age=10",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("x-origin-count", HeaderValue::from(n));
    resp
}
