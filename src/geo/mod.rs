//! Geo routing (DESIGN.md §2 steps 2–3): find the client, look it up in a
//! MaxMind City database, choose the nearest healthy PoP, and redirect,
//! annotate or just report per `[geo] action`.
//!
//! - `client`: the client address (peer, trusted `X-Forwarded-For`)
//! - `proxy_protocol`: PROXY protocol v1/v2 headers, as a pure parser
//! - `mmdb`: the database
//! - `pops`: the PoP table and the choice (overrides, haversine, ties)
//! - `health`: active checks of each PoP's `health_url`
//! - `decision`: the decision, the 307, the header and the JSON
//!
//! The database and the table are swapped atomically on reload; a file that
//! does not load is refused and the previous one stays in use.

pub mod client;
pub mod decision;
pub mod health;
pub mod mmdb;
pub mod pops;
pub mod proxy_protocol;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::header::HeaderValue;
use http::{request, Method, Uri};

use crate::config::{Cidr, Config, GeoConfig, GeoMode};
use crate::metrics::Metrics;

pub use client::{canonical, client_ip, proxied_peer};
pub use decision::{Decision, Reason, Reply, POP_HEADER, POP_PATH, REDIRECT_MARKER};
pub use mmdb::GeoDb;
pub use pops::{LatLon, Place, Pop, PopTable};
pub use proxy_protocol::{parse_proxy_header, ProxyHeader, ProxyHeaderError};

/// What the request path should do after the geo step.
#[derive(Debug, Clone, PartialEq)]
pub enum GeoAction {
    /// Carry on. `annotate`: add `X-Lacquer-Pop` with this value to the
    /// request sent to the origin and to the response. `uri`: replace the
    /// request URI with this one (the redirect marker removed) before the
    /// cache key is computed.
    Serve {
        annotate: Option<HeaderValue>,
        uri: Option<Uri>,
    },
    /// Answer with this 307 instead.
    Redirect(Reply),
    /// Answer `GET /.lacquer/pop` with this JSON.
    PopJson(Reply),
}

/// The geo step's shared state.
pub struct Geo {
    mode: GeoMode,
    node_pop: Option<String>,
    default_pop: String,
    mmdb_path: PathBuf,
    pops_path: PathBuf,
    db: ArcSwap<GeoDb>,
    pops: ArcSwap<PopTable>,
    health: health::Health,
    health_interval: Duration,
    health_timeout: Duration,
    reload_interval: Duration,
    stamps: Mutex<(Option<Stamp>, Option<Stamp>)>,
    metrics: Option<Arc<Metrics>>,
}

/// What a file looked like when last loaded; a change means reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

impl Geo {
    /// Loads the database and the PoP table. `node_pop` is `[node] pop`.
    pub fn new(
        cfg: &GeoConfig,
        node_pop: Option<&str>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Arc<Geo>, String> {
        let mmdb_path = cfg
            .mmdb
            .clone()
            .ok_or("geo.mmdb is not set (path to a GeoIP2/GeoLite2 City .mmdb)")?;
        let default_pop = cfg
            .default_pop
            .clone()
            .ok_or("geo.default_pop is not set")?;
        let stamps = (stamp(&mmdb_path), stamp(&cfg.pops));
        let db = GeoDb::open(&mmdb_path)?;
        let table = PopTable::load(&cfg.pops)?;
        check_table(&table, &default_pop, node_pop)?;
        tracing::info!(
            db = %db.describe(),
            pops = table.pops().len(),
            action = ?cfg.action,
            "geo: loaded"
        );
        Ok(Arc::new(Geo {
            mode: cfg.action,
            node_pop: node_pop.map(str::to_owned),
            default_pop,
            mmdb_path,
            pops_path: cfg.pops.clone(),
            db: ArcSwap::from_pointee(db),
            pops: ArcSwap::from_pointee(table),
            health: health::Health::default(),
            health_interval: cfg.health_interval.max(Duration::from_millis(10)),
            health_timeout: cfg.health_timeout.max(Duration::from_millis(10)),
            reload_interval: cfg.reload_interval.max(Duration::from_millis(10)),
            stamps: Mutex::new(stamps),
            metrics,
        }))
    }

    /// Which PoP should serve `ip` (already the client address, see
    /// [`client_ip`]), and why.
    pub fn decide(&self, ip: IpAddr) -> Decision {
        let ip = canonical(ip);
        let place = self.db.load().lookup(ip);
        let table = self.pops.load();
        let choice = table.choose(place.as_ref(), &self.default_pop, |p| {
            self.health.is_up(&p.name)
        });
        let local = match (&choice, &self.node_pop) {
            (Some(c), Some(me)) => c.pop.name == *me,
            _ => false,
        };
        let place = place.unwrap_or_default();
        Decision {
            client_ip: ip,
            country: place.country,
            continent: place.continent,
            location: place.location,
            pop: choice.map(|c| c.pop.name.clone()),
            pop_url: choice.map(|c| c.pop.base_url.clone()),
            reason: choice.map_or(Reason::Fallback, |c| Reason::from_how(c.how, local)),
            distance_km: choice
                .and_then(|c| c.distance_km)
                .map(|d| (d * 10.0).round() / 10.0),
            local,
            this_pop: self.node_pop.clone(),
            down: self.health.down(),
        }
    }

    /// Turns a decision into what the request path does. Redirects only
    /// GET and HEAD (a 307 would make the client resend a body to another
    /// PoP), never to this node's own PoP, and never a request that already
    /// carries the redirect marker.
    pub fn apply(&self, decision: &Decision, parts: &request::Parts) -> GeoAction {
        let safe = parts.method == Method::GET || parts.method == Method::HEAD;
        if safe && parts.uri.path() == POP_PATH {
            return GeoAction::PopJson(decision::pop_json(decision, &parts.method));
        }
        let stripped = parts.uri.query().and_then(decision::strip_marker);
        let marked = stripped.is_some();
        let uri = stripped.and_then(|q| with_query(&parts.uri, &q));
        if self.mode == GeoMode::Redirect && safe && !marked && !decision.local {
            if let Some(reply) = self.redirect(decision, parts) {
                self.count(decision, "redirected");
                return GeoAction::Redirect(reply);
            }
        }
        self.count(decision, decision.served_outcome());
        let annotate = match self.mode {
            GeoMode::Header => decision.header_value(),
            _ => None,
        };
        GeoAction::Serve { annotate, uri }
    }

    /// `client_ip` + `decide` + `apply` in one call.
    pub fn route(&self, peer: IpAddr, trusted: &[Cidr], parts: &request::Parts) -> GeoAction {
        let ip = client_ip(peer, &parts.headers, trusted);
        self.apply(&self.decide(ip), parts)
    }

    fn redirect(&self, decision: &Decision, parts: &request::Parts) -> Option<Reply> {
        let base = decision.pop_url.as_deref()?;
        let from = self.node_pop.as_deref().unwrap_or("edge");
        decision::redirect(
            decision,
            base,
            parts.uri.path(),
            parts.uri.query(),
            from,
            &parts.method,
        )
    }

    fn count(&self, decision: &Decision, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.geo_decision(decision.pop.as_deref().unwrap_or("none"), outcome);
        }
    }

    /// Re-reads both files now. Each is swapped in only if it loads and
    /// verifies; on error the old one stays and the error is returned (and
    /// logged). Verifying a full City database takes a moment: call this
    /// from a blocking context (`spawn_blocking`) on a server.
    pub fn reload(&self) -> Result<(), String> {
        let db = self.reload_db();
        let pops = self.reload_pops();
        match (db, pops) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(format!("{a}\n{b}")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    /// Reloads whichever file changed (modification time or size) since it
    /// was last read. A refused file is not retried until it changes again.
    pub fn reload_if_changed(&self) {
        let now = (stamp(&self.mmdb_path), stamp(&self.pops_path));
        let before = match self.stamps.lock() {
            Ok(s) => *s,
            Err(_) => return,
        };
        if now.0 != before.0 {
            let _ = self.reload_db();
        }
        if now.1 != before.1 {
            let _ = self.reload_pops();
        }
    }

    fn reload_db(&self) -> Result<(), String> {
        let seen = stamp(&self.mmdb_path);
        let result = GeoDb::open(&self.mmdb_path);
        self.remember(|s| s.0 = seen);
        match result {
            Ok(db) => {
                tracing::info!(db = %db.describe(), "geo: database reloaded");
                self.db.store(Arc::new(db));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "geo: new database refused; keeping the old one");
                Err(e)
            }
        }
    }

    fn reload_pops(&self) -> Result<(), String> {
        let seen = stamp(&self.pops_path);
        let result = PopTable::load(&self.pops_path)
            .and_then(|t| check_table(&t, &self.default_pop, self.node_pop.as_deref()).map(|()| t));
        self.remember(|s| s.1 = seen);
        match result {
            Ok(t) => {
                tracing::info!(pops = t.pops().len(), "geo: PoP table reloaded");
                self.pops.store(Arc::new(t));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "geo: new PoP table refused; keeping the old one");
                Err(e)
            }
        }
    }

    fn remember(&self, f: impl FnOnce(&mut (Option<Stamp>, Option<Stamp>))) {
        if let Ok(mut s) = self.stamps.lock() {
            f(&mut s);
        }
    }

    /// One round of health probes, folded into the up/down state.
    pub async fn check_health_now(&self) {
        let table = self.pops.load_full();
        let results = health::probe_all(&table, self.health_timeout).await;
        self.health.record(&results);
    }

    /// Starts the health checker and the file watcher. Both hold only a weak
    /// reference and stop once the `Geo` is dropped.
    pub fn spawn_health_and_reload(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.health_interval;
        tokio::spawn(periodically(weak, every, |geo| async move {
            geo.check_health_now().await;
        }));
        let weak = Arc::downgrade(self);
        let every = self.reload_interval;
        tokio::spawn(periodically(weak, every, |geo| async move {
            // Reading and verifying a large file must not stall a runtime thread.
            let _ = tokio::task::spawn_blocking(move || geo.reload_if_changed()).await;
        }));
    }

    /// The mode in force (`[geo] action`).
    pub fn mode(&self) -> GeoMode {
        self.mode
    }
}

async fn periodically<F, Fut>(geo: Weak<Geo>, every: Duration, mut f: F)
where
    F: FnMut(Arc<Geo>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(geo) = geo.upgrade() else { return };
        f(geo).await;
    }
}

/// A new table must still list the PoPs the configuration names, or every
/// decision would fall through to nothing.
fn check_table(table: &PopTable, default_pop: &str, node_pop: Option<&str>) -> Result<(), String> {
    if table.get(default_pop).is_none() {
        return Err(format!(
            "PoP table does not list default_pop {default_pop:?}"
        ));
    }
    if let Some(me) = node_pop {
        if table.get(me).is_none() {
            return Err(format!("PoP table does not list this node's pop {me:?}"));
        }
    }
    Ok(())
}

/// `uri` with its query replaced (an empty query removed).
fn with_query(uri: &Uri, query: &str) -> Option<Uri> {
    let pq = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// `lacquer geo lookup IP [--config FILE]`: what this node would decide for
/// `ip`, as JSON, after one round of health probes. Uses the config's
/// `[geo]` section even when `enabled = false`, so a database can be tried
/// before it is switched on.
pub fn lookup_command(ip: &str, config: Option<&Path>) -> Result<String, String> {
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let path = config.unwrap_or(Path::new("conf/lacquer.toml"));
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    let geo = Geo::new(&cfg.geo, cfg.node.pop.as_deref(), None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(geo.check_health_now());
    let decision = geo.decide(ip);
    serde_json::to_string_pretty(&decision).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_replacement() {
        let u: Uri = "/a/b?x=1&_lqpop=e".parse().unwrap();
        assert_eq!(with_query(&u, "x=1").unwrap(), "/a/b?x=1");
        assert_eq!(with_query(&u, "").unwrap(), "/a/b");
        let abs: Uri = "http://h.example/p?_lqpop=e".parse().unwrap();
        assert_eq!(with_query(&abs, "").unwrap(), "http://h.example/p");
    }

    #[test]
    fn table_must_list_configured_pops() {
        let t =
            PopTable::parse("[[pop]]\nname=\"a\"\nlat=0.0\nlon=0.0\nbase_url=\"http://a.example\"")
                .unwrap();
        assert!(check_table(&t, "a", Some("a")).is_ok());
        assert!(check_table(&t, "a", None).is_ok());
        assert!(check_table(&t, "b", Some("a")).is_err());
        assert!(check_table(&t, "a", Some("b")).is_err());
    }
}
