//! Prometheus metrics (prefix `lacquer_`), registered explicitly by name in one place so
//! an operator can read the whole set here. Hot-path counters are resolved once into
//! fixed arrays: a request bumps an atomic, it never hashes a label set.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// One origin's request counters (created on first use, so only outcomes that happened
/// are exported) and its latency histogram, labelled with its origin group.
pub struct OriginMeters {
    group: String,
    origin: String,
    requests: Family<OriginLabels, Counter>,
    counters: [std::sync::OnceLock<Counter>; 4],
    duration: Histogram,
}

impl std::fmt::Debug for OriginMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginMeters")
            .field("group", &self.group)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl OriginMeters {
    pub fn record(&self, outcome: &'static str, took: Duration) {
        let i = match outcome {
            "ok" => 0,
            "5xx" => 1,
            "timeout" => 2,
            _ => 3,
        };
        self.counters[i]
            .get_or_init(|| {
                self.requests
                    .get_or_create(&OriginLabels {
                        group: self.group.clone(),
                        origin: self.origin.clone(),
                        outcome,
                    })
                    .clone()
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }
}

/// One site's rate-limit meters, resolved once per config load so a refused request
/// bumps an atomic instead of hashing a label set.
#[derive(Debug, Clone)]
pub struct SiteMeters {
    site: String,
    rate_limited: Counter,
    clients: Gauge,
    requests: Family<SiteRequestLabels, Counter>,
    /// Resolved on first use, so only results that happened are exported (a node with a
    /// thousand sites would otherwise export 30,000 zero series).
    counters: [std::sync::OnceLock<Counter>; RESULTS.len() * CLASSES.len()],
}

impl SiteMeters {
    /// One client request served by the site, by cache result and status.
    pub fn request(&self, result: &'static str, status: u16) {
        let (r, c) = result_and_class(result, status);
        if let Some(slot) = self.counters.get(r * CLASSES.len() + c) {
            slot.get_or_init(|| {
                self.requests
                    .get_or_create(&SiteRequestLabels {
                        site: self.site.clone(),
                        result: RESULTS[r],
                        status: CLASSES[c],
                    })
                    .clone()
            })
            .inc();
        }
    }

    /// One request answered 429 by the site's rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The clients the site's limiter tracks now (`RateLimiter::tracked`).
    pub fn clients(&self, tracked: usize) {
        self.clients.set(i64::try_from(tracked).unwrap_or(i64::MAX));
    }
}

/// Indexes of a result (unknown: the last, synth) and of a status class.
fn result_and_class(result: &str, status: u16) -> (usize, usize) {
    let r = RESULTS
        .iter()
        .position(|x| *x == result)
        .unwrap_or(RESULTS.len() - 1);
    (r, usize::from((status / 100).clamp(1, 5) - 1))
}

/// Results a request can have, as in the access log and Cache-Status.
pub const RESULTS: [&str; 6] = ["hit", "miss", "stale", "pass", "coalesced", "synth"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    result: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    /// The origin group's name (from the config, so a bounded set).
    pub group: String,
    pub origin: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    group: String,
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompressLabels {
    encoding: &'static str,
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// WebSocket tunnels: resolved once, so a relayed chunk bumps an atomic.
#[derive(Debug, Clone)]
pub struct TunnelMeters {
    pub open: Gauge,
    pub opened: Counter,
    pub client_to_origin: Counter,
    pub origin_to_client: Counter,
    refused: Family<ReasonLabel, Counter>,
}

impl TunnelMeters {
    /// An upgrade request not tunnelled: `limit` (max_tunnels), `origin` (no 101),
    /// `failed` (no origin answer at all).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GeoLabels {
    pop: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerOutcome {
    peer: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteRequestLabels {
    site: String,
    result: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Vec<Counter>,
    bytes: Vec<Counter>,
    duration: Vec<Histogram>,
    origin_requests: Family<OriginLabels, Counter>,
    origin_duration: Family<OriginLabel, Histogram>,
    pub coalesced_waiting: Gauge,
    pub coalesce_wait: Histogram,
    stale: Family<ReasonLabel, Counter>,
    compressed: Family<CompressLabels, Counter>,
    pub cache_objects: Gauge,
    pub tasks_alive: Gauge,
    pub cache_bytes: Gauge,
    pub cache_capacity: Gauge,
    pub insertions: Counter,
    pub evictions: Counter,
    purges: Family<KindLabel, Counter>,
    pub purged_objects: Counter,
    pub purge_duration: Histogram,
    prewarm_objects: Family<ResultLabel, Counter>,
    pub connections_open: Gauge,
    pub connections_accepted: Counter,
    /// Connections refused at once because `limits.max_connections` were open.
    pub connections_refused: Counter,
    /// HTTP/2 connections sent GOAWAY for a control-frame flood.
    pub h2_control_floods: Counter,
    reloads: Family<ResultLabel, Counter>,
    tls_handshakes: Family<ResultLabel, Counter>,
    origin_up: Family<OriginLabel, Gauge>,
    geo_decisions: Family<GeoLabels, Counter>,
    peer_up: Family<PeerLabel, Gauge>,
    peer_requests: Family<PeerOutcome, Counter>,
    site_rate_limited: Family<SiteLabel, Counter>,
    site_requests: Family<SiteRequestLabels, Counter>,
    site_rate_limit_clients: Family<SiteLabel, Gauge>,
    pub tunnels: TunnelMeters,
    /// 1 while the control plane's NATS connection is up (`crate::control`).
    pub control_connected: Gauge,
    control_applied: Family<KindLabel, Counter>,
    control_published: Family<KindLabel, Counter>,
    control_errors: Family<ReasonLabel, Counter>,
}

/// Kinds of control messages, and what can go wrong on the control plane: each family
/// is exported at 0 from the start, so a rate over it works before the first event.
pub const CONTROL_KINDS: [&str; 3] = ["purge", "push", "prewarm"];
pub const CONTROL_ERRORS: [&str; 6] =
    ["connect", "stream", "consume", "apply", "publish", "object"];

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 µs .. ~13 s: hits are tens of µs, slow origins seconds.
    exponential_buckets(0.00005, 2.0, 19)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lacquer");
        let requests: Family<RequestLabels, Counter> = Family::default();
        registry.register(
            "requests",
            "Client requests by cache result and status class",
            requests.clone(),
        );
        let bytes: Family<ResultLabel, Counter> = Family::default();
        registry.register_with_unit(
            "response_body",
            "Response body bytes sent to clients (declared length) by cache result",
            Unit::Bytes,
            bytes.clone(),
        );
        let duration: Family<ResultLabel, Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register_with_unit(
            "request_duration",
            "Time from request head to response head, by cache result",
            Unit::Seconds,
            duration.clone(),
        );
        let origin_requests = Family::<OriginLabels, Counter>::default();
        registry.register(
            "origin_requests",
            "Requests sent to origins by origin group, origin and outcome",
            origin_requests.clone(),
        );
        let origin_duration: Family<OriginLabel, Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register_with_unit(
            "origin_duration",
            "Time from sending a request to an origin to its response head",
            Unit::Seconds,
            origin_duration.clone(),
        );
        let coalesced_waiting = Gauge::default();
        registry.register(
            "coalesced_waiters",
            "Requests waiting on another request's origin fetch",
            coalesced_waiting.clone(),
        );
        let coalesce_wait = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "coalesce_wait",
            "Time a coalesced request waited for the shared response head",
            Unit::Seconds,
            coalesce_wait.clone(),
        );
        let stale = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "stale_served",
            "Stale objects served, by reason",
            stale.clone(),
        );
        let compressed = Family::<CompressLabels, Counter>::default();
        registry.register(
            "compressed_responses",
            "Responses sent compressed, by encoding and source (stored: an encoding made when the object was stored; on-the-fly)",
            compressed.clone(),
        );
        let tasks_alive = Gauge::default();
        registry.register(
            "runtime_tasks_alive",
            "Tasks alive in the async runtime (connections, fetches, timers): flat under steady load, or something leaks",
            tasks_alive.clone(),
        );
        let cache_objects = Gauge::default();
        registry.register(
            "cache_objects",
            "URLs (primary keys) in the cache",
            cache_objects.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register_with_unit(
            "cache",
            "Bytes charged to the cache",
            Unit::Bytes,
            cache_bytes.clone(),
        );
        let cache_capacity = Gauge::default();
        registry.register_with_unit(
            "cache_capacity",
            "Configured cache memory",
            Unit::Bytes,
            cache_capacity.clone(),
        );
        let insertions = Counter::default();
        registry.register("cache_insertions", "Objects stored", insertions.clone());
        let evictions = Counter::default();
        registry.register(
            "cache_evictions",
            "URLs evicted for space or expiry",
            evictions.clone(),
        );
        let purges = Family::<KindLabel, Counter>::default();
        registry.register("purges", "Purge requests by kind", purges.clone());
        let purged_objects = Counter::default();
        registry.register(
            "purged_objects",
            "Objects removed or marked stale by purges",
            purged_objects.clone(),
        );
        let purge_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "purge_duration",
            "Time to apply a purge on this node",
            Unit::Seconds,
            purge_duration.clone(),
        );
        let prewarm_objects = Family::<ResultLabel, Counter>::default();
        registry.register(
            "prewarm_objects",
            "Objects pre-warmed, by result",
            prewarm_objects.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Client connections closed at once because limits.max_connections were open",
            connections_refused.clone(),
        );
        let h2_control_floods = Counter::default();
        registry.register(
            "h2_control_floods",
            "HTTP/2 connections closed (GOAWAY) for exceeding limits.h2_max_control_frames_per_sec",
            h2_control_floods.clone(),
        );
        let tls_handshakes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "tls_handshakes",
            "Client TLS handshakes by result (ok, failed, timeout)",
            tls_handshakes.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        let origin_up = Family::<OriginLabel, Gauge>::default();
        registry.register(
            "origin_up",
            "1 when the origin (in its origin group) passes health checks and its circuit is closed",
            origin_up.clone(),
        );
        let geo_decisions = Family::<GeoLabels, Counter>::default();
        registry.register(
            "geo_decisions",
            "Geo routing decisions by chosen PoP and outcome",
            geo_decisions.clone(),
        );
        let peer_up = Family::<PeerLabel, Gauge>::default();
        registry.register(
            "peer_up",
            "1 when the cluster peer passes health checks",
            peer_up.clone(),
        );
        let peer_requests = Family::<PeerOutcome, Counter>::default();
        registry.register(
            "peer_requests",
            "Requests forwarded to cluster peers, by outcome",
            peer_requests.clone(),
        );
        let site_requests = Family::<SiteRequestLabels, Counter>::default();
        registry.register(
            "site_requests",
            "Client requests by site, cache result and status class",
            site_requests.clone(),
        );
        let site_rate_limited = Family::<SiteLabel, Counter>::default();
        registry.register(
            "site_rate_limited",
            "Requests answered 429 by a site's rate_limit, by site",
            site_rate_limited.clone(),
        );
        let site_rate_limit_clients = Family::<SiteLabel, Gauge>::default();
        registry.register(
            "site_rate_limit_clients",
            "Client addresses a site's rate limiter tracks (at most its max_clients), by site",
            site_rate_limit_clients.clone(),
        );
        let tunnel_bytes = Family::<DirectionLabel, Counter>::default();
        registry.register_with_unit(
            "tunnel",
            "Bytes relayed through WebSocket tunnels, by direction",
            Unit::Bytes,
            tunnel_bytes.clone(),
        );
        let direction = |direction| {
            tunnel_bytes
                .get_or_create(&DirectionLabel { direction })
                .clone()
        };
        let tunnels = TunnelMeters {
            open: Gauge::default(),
            opened: Counter::default(),
            client_to_origin: direction("client_to_origin"),
            origin_to_client: direction("origin_to_client"),
            refused: Family::default(),
        };
        registry.register(
            "tunnels_open",
            "WebSocket tunnels open",
            tunnels.open.clone(),
        );
        registry.register(
            "tunnels_opened",
            "WebSocket tunnels opened (the origin answered 101)",
            tunnels.opened.clone(),
        );
        registry.register(
            "tunnels_refused",
            "WebSocket upgrade requests not tunnelled, by reason (limit, origin, failed)",
            tunnels.refused.clone(),
        );

        let control_connected = Gauge::default();
        registry.register(
            "control_connected",
            "1 while the control plane is connected to NATS",
            control_connected.clone(),
        );
        let control_applied = Family::<KindLabel, Counter>::default();
        registry.register(
            "control_applied",
            "Control messages applied on this node, by kind (a redelivery is not counted)",
            control_applied.clone(),
        );
        let control_published = Family::<KindLabel, Counter>::default();
        registry.register(
            "control_published",
            "Global admin calls published to the control stream, by kind",
            control_published.clone(),
        );
        let control_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "control_errors",
            "Control plane failures, by reason",
            control_errors.clone(),
        );
        for kind in CONTROL_KINDS {
            drop(control_applied.get_or_create(&KindLabel { kind }));
            drop(control_published.get_or_create(&KindLabel { kind }));
        }
        for reason in CONTROL_ERRORS {
            drop(control_errors.get_or_create(&ReasonLabel { reason }));
        }

        let mut req_vec = Vec::with_capacity(RESULTS.len() * CLASSES.len());
        for result in RESULTS {
            for status in CLASSES {
                req_vec.push(
                    requests
                        .get_or_create(&RequestLabels { result, status })
                        .clone(),
                );
            }
        }
        let bytes_vec = RESULTS
            .iter()
            .map(|r| bytes.get_or_create(&ResultLabel { result: r }).clone())
            .collect();
        let dur_vec = RESULTS
            .iter()
            .map(|r| duration.get_or_create(&ResultLabel { result: r }).clone())
            .collect();
        Metrics {
            registry,
            requests: req_vec,
            bytes: bytes_vec,
            duration: dur_vec,
            origin_requests,
            origin_duration,
            coalesced_waiting,
            coalesce_wait,
            stale,
            compressed,
            cache_objects,
            tasks_alive,
            cache_bytes,
            cache_capacity,
            insertions,
            evictions,
            purges,
            purged_objects,
            purge_duration,
            prewarm_objects,
            connections_open,
            connections_accepted,
            connections_refused,
            h2_control_floods,
            reloads,
            tls_handshakes,
            origin_up,
            geo_decisions,
            peer_up,
            peer_requests,
            control_connected,
            control_applied,
            control_published,
            control_errors,
            site_rate_limited,
            site_rate_limit_clients,
            site_requests,
            tunnels,
        }
    }

    /// One finished request head.
    pub fn request(&self, result: &str, status: u16, body_len: Option<u64>, took: Duration) {
        let (r, c) = result_and_class(result, status);
        if let Some(counter) = self.requests.get(r * CLASSES.len() + c) {
            counter.inc();
        }
        if let (Some(n), Some(b)) = (body_len, self.bytes.get(r)) {
            b.inc_by(n);
        }
        if let Some(h) = self.duration.get(r) {
            h.observe(took.as_secs_f64());
        }
    }

    /// Handles for the request metrics of one origin of origin group `group`, resolved
    /// once: a label lookup costs String allocations and a locked map probe, on every
    /// origin request.
    pub fn origin_meters(&self, group: &str, origin: &str) -> OriginMeters {
        OriginMeters {
            group: group.to_owned(),
            origin: origin.to_owned(),
            requests: self.origin_requests.clone(),
            counters: Default::default(),
            duration: self
                .origin_duration
                .get_or_create(&OriginLabel {
                    group: group.to_owned(),
                    origin: origin.to_owned(),
                })
                .clone(),
        }
    }

    pub fn origin_health(&self, group: &str, origin: &str, up: bool) {
        self.origin_up
            .get_or_create(&OriginLabel {
                group: group.to_owned(),
                origin: origin.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Count a coalesced waiter until the guard drops (also when its client hangs up).
    pub fn waiting(&self) -> GaugeGuard {
        self.coalesced_waiting.inc();
        GaugeGuard(self.coalesced_waiting.clone())
    }

    /// Count an open connection until the guard drops.
    pub fn connection(&self) -> GaugeGuard {
        self.connections_accepted.inc();
        self.connections_open.inc();
        GaugeGuard(self.connections_open.clone())
    }

    /// One pre-warmed URL: result is "ok" or "failed".
    pub fn prewarm(&self, result: &'static str) {
        self.prewarm_objects
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One client TLS handshake: result is "ok", "failed" or "timeout".
    pub fn tls_handshake(&self, result: &'static str) {
        self.tls_handshakes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One config reload: result is "ok" or "failed".
    pub fn reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn control_applied(&self, kind: &'static str) {
        self.control_applied
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn control_published(&self, kind: &'static str) {
        self.control_published
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// One of `CONTROL_ERRORS`.
    pub fn control_error(&self, reason: &'static str) {
        self.control_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn stale(&self, reason: &'static str) {
        self.stale.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A response sent in `encoding` (`br`, `gzip`) from `source` (`stored`, `on-the-fly`).
    pub fn compressed(&self, encoding: &'static str, source: &'static str) {
        self.compressed
            .get_or_create(&CompressLabels { encoding, source })
            .inc();
    }

    pub fn purge(&self, kind: &'static str, objects: usize, took: Duration) {
        self.purges.get_or_create(&KindLabel { kind }).inc();
        self.purged_objects.inc_by(objects as u64);
        self.purge_duration.observe(took.as_secs_f64());
    }

    /// One geo decision: outcome is "local", "redirected", "remote" (another PoP
    /// is nearer but this one serves: `header`/`off` mode, a non-GET method, or an
    /// already-redirected request), "fallback" or "no-record". PoP names come from
    /// the bounded PoP table, so the label set stays small.
    pub fn geo_decision(&self, pop: &str, outcome: &'static str) {
        self.geo_decisions
            .get_or_create(&GeoLabels {
                pop: pop.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A cluster peer's health; names come from the bounded peer list.
    pub fn peer_health(&self, peer: &str, up: bool) {
        self.peer_up
            .get_or_create(&PeerLabel {
                peer: peer.to_owned(),
            })
            .set(i64::from(up));
    }

    /// One request forwarded to a peer: outcome is "ok", "5xx", "error" or "timeout".
    pub fn peer_request(&self, peer: &str, outcome: &'static str) {
        self.peer_requests
            .get_or_create(&PeerOutcome {
                peer: peer.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Handles for one site's request and rate-limit metrics. `site` is a config site name: the
    /// label set must stay as small as the config, so never a value from a request.
    pub fn site_meters(&self, site: &str) -> SiteMeters {
        let label = SiteLabel {
            site: site.to_owned(),
        };
        SiteMeters {
            rate_limited: self.site_rate_limited.get_or_create(&label).clone(),
            clients: self.site_rate_limit_clients.get_or_create(&label).clone(),
            requests: self.site_requests.clone(),
            counters: Default::default(),
            site: label.site,
        }
    }

    /// Drops a site's series, when a reload removed the site or its limit.
    pub fn forget_site(&self, site: &str) {
        let label = SiteLabel {
            site: site.to_owned(),
        };
        self.site_rate_limited.remove(&label);
        self.site_rate_limit_clients.remove(&label);
        for result in RESULTS {
            for status in CLASSES {
                self.site_requests.remove(&SiteRequestLabels {
                    site: label.site.clone(),
                    result,
                    status,
                });
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The classic Prometheus text format (0.0.4), which every scraper and `promtool
    /// check metrics` read: prometheus-client only writes OpenMetrics, whose counter
    /// families are named without `_total` and which adds `# UNIT` and `# EOF` lines.
    pub fn encode_prometheus(&self) -> String {
        to_prometheus_text(&self.encode())
    }
}

/// Decrements its gauge when dropped.
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let lines: Vec<&str> = open_metrics.lines().collect();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        i += 1;
        if line.starts_with("# UNIT ") || *line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = lines
                .get(i)
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            let name = if counter && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            out.push_str(&format!("# HELP {name} {help}\n"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                if !name.ends_with("_total") {
                    out.push_str(&format!("# TYPE {name}_total counter\n"));
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_prefix_and_counts() {
        let m = Metrics::new();
        m.request("hit", 200, Some(10), Duration::from_micros(30));
        m.request("bogus", 999, None, Duration::ZERO);
        m.origin_meters("default", "127.0.0.1:9000")
            .record("ok", Duration::from_millis(3));
        m.origin_meters("images", "127.0.0.1:9000")
            .record("timeout", Duration::from_millis(3));
        m.origin_health("images", "127.0.0.1:9000", false);
        let text = m.encode();
        assert!(
            text.contains("lacquer_requests_total{result=\"hit\",status=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("lacquer_requests_total{result=\"synth\",status=\"5xx\"} 1"));
        assert!(text.contains("lacquer_response_body_bytes_total{result=\"hit\"} 10"));
        assert!(text.contains(
            "lacquer_origin_requests_total{group=\"default\",origin=\"127.0.0.1:9000\",outcome=\"ok\"} 1"
        ));
        assert!(text.contains(
            "lacquer_origin_requests_total{group=\"images\",origin=\"127.0.0.1:9000\",outcome=\"timeout\"} 1"
        ));
        assert!(text.contains(
            "lacquer_origin_duration_seconds_count{group=\"images\",origin=\"127.0.0.1:9000\"} 1"
        ));
        assert!(text.contains("lacquer_origin_up{group=\"images\",origin=\"127.0.0.1:9000\"} 0"));
        // Outcomes that never happened are not exported as zeros.
        assert!(
            !text.contains("group=\"default\",origin=\"127.0.0.1:9000\",outcome=\"timeout\""),
            "{text}"
        );
        m.geo_decision("eu-west", "local");
        let text = m.encode();
        assert!(text.contains("lacquer_geo_decisions_total{pop=\"eu-west\",outcome=\"local\"} 1"));
        m.peer_health("shard-a", true);
        m.peer_request("shard-a", "ok");
        let text = m.encode();
        assert!(
            text.contains("lacquer_peer_up{peer=\"shard-a\"} 1"),
            "{text}"
        );
        assert!(text.contains("lacquer_peer_requests_total{peer=\"shard-a\",outcome=\"ok\"} 1"));
        assert!(text.ends_with("# EOF\n"));
        let classic = m.encode_prometheus();
        assert!(
            classic.contains("# TYPE lacquer_requests_total counter"),
            "{classic}"
        );
        assert!(classic.contains("# HELP lacquer_requests_total "));
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
    }

    #[test]
    fn site_rate_limit_meters() {
        let m = Metrics::new();
        let shop = m.site_meters("shop");
        shop.rate_limited();
        shop.rate_limited();
        shop.clients(42);
        m.site_meters("api").clients(0);
        let text = m.encode_prometheus();
        assert!(
            text.contains("# TYPE lacquer_site_rate_limited_total counter"),
            "{text}"
        );
        assert!(text.contains("lacquer_site_rate_limited_total{site=\"shop\"} 2"));
        assert!(text.contains("lacquer_site_rate_limited_total{site=\"api\"} 0"));
        assert!(text.contains("# TYPE lacquer_site_rate_limit_clients gauge"));
        assert!(text.contains("lacquer_site_rate_limit_clients{site=\"shop\"} 42"));
        // Handles resolved again (after a reload) count on the same series.
        m.site_meters("shop").rate_limited();
        assert!(m
            .encode()
            .contains("lacquer_site_rate_limited_total{site=\"shop\"} 3"));
        m.forget_site("shop");
        let text = m.encode();
        assert!(!text.contains("site=\"shop\""), "{text}");
        assert!(text.contains("site=\"api\""));
    }
}
