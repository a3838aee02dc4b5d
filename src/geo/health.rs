//! Active health checks of the PoPs' `health_url`s.
//!
//! A PoP is up until proven otherwise (a node that just started must not send
//! everyone to the default PoP), down after [`FALL`] failed probes in a row,
//! and up again after one successful probe.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{header, Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::pops::PopTable;

/// Consecutive failures before a PoP is skipped: one lost probe should not
/// move a continent's traffic.
pub const FALL: u32 = 2;

/// Which PoPs are down, readable without a lock on every request.
#[derive(Default)]
pub struct Health {
    down: ArcSwap<HashSet<String>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Health {
    pub fn is_up(&self, name: &str) -> bool {
        !self.down.load().contains(name)
    }

    /// Names of the PoPs currently down, sorted.
    pub fn down(&self) -> Vec<String> {
        let mut v: Vec<String> = self.down.load().iter().cloned().collect();
        v.sort();
        v
    }

    /// Folds one round of probe results in. PoPs absent from `results` (no
    /// `health_url`, or removed from the table) are forgotten, hence up.
    pub fn record(&self, results: &[(String, bool)]) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let mut next = HashMap::with_capacity(results.len());
        for (name, ok) in results {
            let count = if *ok {
                0
            } else {
                failures.get(name).copied().unwrap_or(0).saturating_add(1)
            };
            next.insert(name.clone(), count);
        }
        let down: HashSet<String> = next
            .iter()
            .filter(|(_, &n)| n >= FALL)
            .map(|(name, _)| name.clone())
            .collect();
        for name in down.difference(&self.down.load()) {
            tracing::warn!(pop = %name, "geo: PoP failed its health checks; skipping it");
        }
        for name in self.down.load().difference(&down) {
            tracing::info!(pop = %name, "geo: PoP is healthy again");
        }
        *failures = next;
        self.down.store(Arc::new(down));
    }
}

/// Probes every PoP that has a `health_url`, concurrently, each bounded by
/// `timeout`.
pub async fn probe_all(table: &PopTable, timeout: Duration) -> Vec<(String, bool)> {
    let mut set = tokio::task::JoinSet::new();
    for pop in table.pops() {
        if let Some(url) = pop.health_url.clone() {
            let name = pop.name.clone();
            set.spawn(async move { (name, probe(&url, timeout).await) });
        }
    }
    let mut results = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results
}

/// One GET; up means a 2xx response head within `timeout` (connect included).
pub async fn probe(url: &Uri, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, get_status(url)).await {
        Ok(Ok(status)) => status.is_success(),
        Ok(Err(e)) => {
            tracing::debug!(%url, error = %e, "geo: health probe failed");
            false
        }
        Err(_) => {
            tracing::debug!(%url, "geo: health probe timed out");
            false
        }
    }
}

async fn get_status(url: &Uri) -> Result<http::StatusCode, String> {
    let host = url.host().ok_or("no host")?;
    let port = url.port_u16().unwrap_or(80);
    // IPv6 literals come bracketed in a URI but not in a socket address.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let authority = url.authority().map_or(host, |a| a.as_str());
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::get(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, "lacquer-geo-health")
        .header(header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = sender.send_request(req).await.map_err(|e| e.to_string());
    driver.abort();
    result.map(|r| r.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, ok: bool) -> (String, bool) {
        (name.to_string(), ok)
    }

    #[test]
    fn fall_then_rise() {
        let h = Health::default();
        assert!(h.is_up("a"));
        h.record(&[r("a", false), r("b", true)]);
        assert!(h.is_up("a"), "one failure is not enough");
        h.record(&[r("a", false), r("b", true)]);
        assert!(!h.is_up("a"));
        assert!(h.is_up("b"));
        assert_eq!(h.down(), ["a"]);
        h.record(&[r("a", true), r("b", true)]);
        assert!(h.is_up("a"), "one pass brings it back");
        // A success in between resets the count.
        h.record(&[r("a", false)]);
        h.record(&[r("a", true)]);
        h.record(&[r("a", false)]);
        assert!(h.is_up("a"));
        // Dropped from the table: forgotten.
        h.record(&[r("a", false)]);
        assert!(!h.is_up("a"));
        h.record(&[]);
        assert!(h.is_up("a"));
    }

    #[tokio::test]
    async fn probe_refused_and_timeout_are_down() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts and never answers: the timeout decides.
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let url: Uri = format!("http://{addr}/health").parse().unwrap();
        let started = std::time::Instant::now();
        assert!(!probe(&url, Duration::from_millis(200)).await);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Nothing listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        assert!(!probe(&url, Duration::from_secs(2)).await);
    }
}
