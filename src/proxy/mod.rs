//! The request path, top to bottom (DESIGN.md §2): geo → limits → key and context →
//! classify → lookup → coalesce → fetch → failure → store → respond. `handle` is the
//! whole path; each step is a small function below it, in that order. What a step
//! learns about the request once (key, client, directives, rules) travels in a
//! `context::Ctx`.

pub mod context;
pub mod fetch;
pub mod headers;
pub mod respond;
pub mod tunnel;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{request, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{BodyLimit, ClientFault, Fault, ProxyBody};
use crate::cache::key::{CacheKey, KeyRules};
use crate::cache::object::Object;
use crate::cache::policy::{self, RequestDirectives, Usability};
use crate::cache::{vary, Cache, Rules, Target};
use crate::coalesce::{Coalescer, Join, Outcome, Waiter};
use crate::config::Cidr;
use crate::failure::{FetchFailure, Kind, Source};
use crate::origin::{OriginError, OriginGroups, OriginRequest};
use crate::site::template::Vars;
use crate::site::{Routed, Site, Sites};
use context::Ctx;
use respond::{synthetic, CacheStatus};

/// Settings the request path reads on every request, resolved from the config once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cache_name: String,
    pub via: HeaderValue,
    pub max_body: u64,
    pub body_read_timeout: Duration,
    pub between_bytes_timeout: Duration,
    /// The same for a `text/event-stream` response (`upstream.stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
    /// Safety bound on waiting for a fetch's head (see [`coalesce_wait_bound`]).
    pub coalesce_timeout: Duration,
    /// With a stale copy usable on error, a fetch older than this serves it (0 = off).
    pub stale_on_slow: Duration,
    pub purge_allowed: Vec<Cidr>,
    pub access_log: bool,
    /// Peers whose X-Forwarded-For is believed (`[client] trusted_proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// Fields dropped from untrusted peers' requests (`[client] unkeyed_headers`).
    pub unkeyed_headers: headers::NameList,
    /// Request head bounds (`[limits]`), checked the same on both protocols.
    pub head: HeadLimits,
    /// `[node] name` and `pop`, for site templates.
    pub node: String,
    pub pop: String,
    /// `[log] site_header`: name the site in `X-Lacquer-Site`.
    pub site_header: bool,
    /// `[cache] surrogate_control`: Surrogate-Control is for this cache, not clients.
    pub surrogate_control: bool,
    /// `limits.max_tunnels` and `limits.tunnel_idle_timeout`.
    pub max_tunnels: usize,
    pub tunnel_idle_timeout: Duration,
}

impl Settings {
    /// How long a response body may be silent: an event stream's silences between
    /// events are its normal state, anything else's a stalled origin.
    pub fn response_idle(&self, headers: &HeaderMap) -> Duration {
        if policy::is_event_stream(headers) {
            self.stream_idle_timeout
        } else {
            self.between_bytes_timeout
        }
    }
}

/// Bounds on a request head, the same on HTTP/1.1 and HTTP/2 (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Everything the request path shares across requests.
pub struct Proxy {
    cache: Arc<Cache>,
    coalescer: Arc<Coalescer>,
    /// The origin groups; a group unchanged by a reload keeps its pool.
    groups: Arc<OriginGroups>,
    /// Where each request goes and under which rules, built once per reload.
    sites: Arc<Sites>,
    /// `[cache]`'s rules, for an operator's URL that no site takes.
    fallback_rules: Rules,
    settings: Settings,
    metrics: Arc<crate::metrics::Metrics>,
    /// Geo-routing, when `[geo] enabled`.
    geo: Option<Arc<crate::geo::Geo>>,
    /// The PoP's cache tier, when `[cluster] enabled`.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Open WebSocket tunnels (outlive reloads).
    tunnels: Arc<tunnel::Tunnels>,
}

/// What a [`Proxy`] is made of: the cache, in-flight map and metrics outlive reloads;
/// the rest is built from each configuration.
pub struct Setup {
    pub cache: Arc<Cache>,
    pub coalescer: Arc<Coalescer>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub groups: Arc<OriginGroups>,
    pub sites: Sites,
    pub fallback_rules: Rules,
    pub settings: Settings,
    pub geo: Option<Arc<crate::geo::Geo>>,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub tunnels: Arc<tunnel::Tunnels>,
}

/// Where a fetch was answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Shard,
    Origin,
}

impl Upstream {
    /// Whom to blame when its response breaks off.
    pub fn source(self) -> Source {
        match self {
            Upstream::Shard => Source::Shard,
            Upstream::Origin => Source::Origin,
        }
    }
}

/// Who is asking, and over what.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl Proxy {
    pub fn new(setup: Setup) -> Arc<Proxy> {
        let Setup {
            cache,
            coalescer,
            metrics,
            groups,
            sites,
            fallback_rules,
            settings,
            geo,
            cluster,
            tunnels,
        } = setup;
        Arc::new(Proxy {
            cache,
            coalescer,
            groups,
            sites: Arc::new(sites),
            fallback_rules,
            settings,
            metrics,
            geo,
            cluster,
            tunnels,
        })
    }

    /// Start what this configuration runs in the background: origin health checks,
    /// and the geo database and PoP health refreshes.
    pub fn spawn_background_tasks(&self) {
        self.groups.spawn_health_checks();
        if let Some(geo) = &self.geo {
            geo.spawn_health_and_reload();
        }
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The sites requests are routed to.
    pub fn sites(&self) -> &Sites {
        &self.sites
    }

    /// The origin groups (kept across a reload while unchanged).
    pub fn groups(&self) -> &Arc<OriginGroups> {
        &self.groups
    }

    /// The cache key of an operator's absolute URL (purge, push, inspect, pre-warm),
    /// under the key rules of the site a GET for it is routed to.
    pub fn key_for_url(&self, url: &str) -> Result<CacheKey, String> {
        crate::cache::key::key_for_url(url, &self.rules_for(url).key)
    }

    /// The cache rules of the site a GET for the absolute `url` goes to; the node's own
    /// (`[cache]`) when no site takes it.
    pub fn rules_for(&self, url: &str) -> &Rules {
        self.site_for(url)
            .map_or(&self.fallback_rules, |site| &site.rules().cache)
    }

    /// How the site a GET for the absolute `url` goes to compresses, if it does.
    pub fn compression_for(&self, url: &str) -> Option<&Arc<crate::compress::Policy>> {
        self.site_for(url)?.compression()
    }

    fn site_for(&self, url: &str) -> Option<&Arc<Site>> {
        let uri = url.parse::<http::Uri>().ok()?;
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority()?;
        match self
            .sites
            .route(authority.as_str(), uri.path(), &Method::GET, https)
        {
            Routed::Site(site) => Some(site),
            _ => None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The PoP's cache tier, when `[cluster] enabled`.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.as_ref()
    }

    /// The request path. Never fails: every problem becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: ClientInfo,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        // The PoP's hop marker is believed only from a peer, signed for this request:
        // from anyone else it would skip the site's access rules, limits and the shard
        // tier.
        let marked = crate::cluster::is_forwarded(&parts.headers);
        let forwarded = marked
            && self
                .cluster
                .as_ref()
                .is_some_and(|c| c.believes(&parts, client.addr.ip()));
        if marked && !forwarded {
            parts.headers.remove(crate::cluster::HOP_HEADER);
        }
        let logged = self
            .settings
            .access_log
            .then(|| (parts.method.clone(), parts.uri.clone()));
        let (mut resp, status, site) = match self.geo_step(&mut parts, client) {
            Err(resp) => (*resp, CacheStatus::default(), None),
            Ok(pop) => {
                let (mut resp, status, site) = self.route(parts, body, client).await;
                if let Some(v) = pop {
                    resp.headers_mut().insert(crate::geo::POP_HEADER, v);
                }
                (resp, status, site)
            }
        };
        self.finish_response(&mut resp, &status, site.as_deref(), forwarded);
        let declared = headers::content_length(resp.headers());
        self.metrics.request(
            status.result(),
            resp.status().as_u16(),
            declared,
            started.elapsed(),
        );
        if let Some(m) = site.as_ref().and_then(|s| s.meters()) {
            m.request(status.result(), resp.status().as_u16());
        }
        if let Some((method, uri)) = logged {
            tracing::info!(
                target: "lacquer::access",
                client = %client.addr.ip(),
                method = %method,
                url = %uri,
                status = resp.status().as_u16(),
                cache = status.result(),
                duration_us = started.elapsed().as_micros() as u64,
            );
        }
        resp
    }

    /// Step: geo (DESIGN.md §2 step 3): redirect to a nearer PoP, answer
    /// `/.lacquer/pop`, or annotate and serve.
    fn geo_step(
        &self,
        parts: &mut request::Parts,
        client: ClientInfo,
    ) -> Result<Option<HeaderValue>, Box<Response<ProxyBody>>> {
        use crate::geo::GeoAction;
        let Some(geo) = &self.geo else {
            return Ok(None);
        };
        // Only lacquer says which PoP serves a request: never believe a client's claim.
        parts.headers.remove(crate::geo::POP_HEADER);
        match geo.route(client.addr.ip(), &self.settings.trusted_proxies, parts) {
            GeoAction::Redirect((status, headers, body))
            | GeoAction::PopJson((status, headers, body)) => {
                let mut resp = Response::new(ProxyBody::full(body));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                Err(Box::new(resp))
            }
            GeoAction::Serve { annotate, uri } => {
                if let Some(uri) = uri {
                    parts.uri = uri;
                }
                if let Some(v) = &annotate {
                    parts.headers.insert(crate::geo::POP_HEADER, v.clone());
                }
                Ok(annotate)
            }
        }
    }

    /// Steps: limits, site, key and context, classify; then pass it through or look it
    /// up. Returns the site the request was served under, for the response's edits.
    async fn route(
        self: &Arc<Self>,
        mut parts: request::Parts,
        body: Incoming,
        client: ClientInfo,
    ) -> (Response<ProxyBody>, CacheStatus, Option<Arc<Site>>) {
        if let Some(resp) = self.reject_bad_request(&parts) {
            return (resp, CacheStatus::default(), None);
        }
        let https = self.client_https(&parts.headers, client);
        let site = match self.site_of(&parts, https) {
            Ok(site) => site,
            Err((code, why)) => return (synthetic(code, why), CacheStatus::default(), None),
        };
        // Who the client is, read only for a site that asks (access, limits, templates).
        let who = if site.uses_client() {
            crate::geo::client::client_ip(
                client.addr.ip(),
                &parts.headers,
                &self.settings.trusted_proxies,
            )
        } else {
            client.addr.ip()
        };
        // A request another node of the PoP forwarded was answered, limited and edited
        // there: doing it again would count a client twice against its rate and add
        // `add` edits twice.
        let forwarded = self.forwarded_by_peer(&parts.headers);
        if !forwarded {
            if let Some(mut resp) = self.answer_without_origin(&site, &parts, who, https) {
                // The site's response edits hold for what it answers itself too (a
                // redirect's HSTS, a fixed page's robots tag).
                let status = CacheStatus::default();
                if !site.response_edits().is_empty() {
                    let host = authority_of(&parts).unwrap_or_default();
                    let vars = self.vars(&site, &parts.uri, host, who, https, status.result());
                    site.response_edits().apply(resp.headers_mut(), &vars);
                }
                return (resp, status, Some(site));
            }
        }
        // Before the key and the directives: what the site strips is gone for both.
        let rules = site.rules();
        let cookie_pass = rules.cookies.apply(&mut parts.headers);
        if site.key_cookies() {
            crate::site::rules::set_cookie_fields(&mut parts.headers, &rules.key_headers);
        }
        let edited = (!forwarded && !site.response_edits().is_empty()).then(|| {
            let host = authority_of(&parts).unwrap_or_default().to_owned();
            (parts.uri.clone(), host)
        });
        // What the client accepts, read before the request moves on. A request another
        // node forwarded gets identity: that node compresses for its own client.
        let compression = site
            .compression()
            .filter(|_| !forwarded)
            .and_then(|p| Some((p, crate::compress::Asked::of(&parts)?)));
        let Some(ctx) = self.context(&parts, client, https, site.clone(), (who, forwarded)) else {
            return (
                synthetic(StatusCode::BAD_REQUEST, "missing or invalid Host"),
                CacheStatus::default(),
                Some(site),
            );
        };
        let (mut resp, status) = self.classify(&ctx, parts, body, cookie_pass).await;
        if let Some((policy, asked)) = compression {
            if let Some((encoding, source)) = policy.respond(&asked, &mut resp) {
                self.metrics.compressed(encoding.name(), source);
            }
        }
        if let Some((uri, host)) = edited {
            let vars = self.vars(&site, &uri, &host, who, https, status.result());
            site.response_edits().apply(resp.headers_mut(), &vars);
        }
        (resp, status, Some(site))
    }

    /// Step: site. The first site whose rules match, else the default site; without
    /// one, 421 for a host no site serves and 404 for the rest.
    fn site_of(
        &self,
        parts: &request::Parts,
        https: bool,
    ) -> Result<Arc<Site>, (StatusCode, &'static str)> {
        let Some(authority) = authority_of(parts) else {
            return Err((StatusCode::BAD_REQUEST, "missing or invalid Host"));
        };
        // A WebSocket is a GET to a site's `methods`, whichever protocol carries it.
        let method = if parts.method == Method::CONNECT && tunnel::kind(parts).is_some() {
            &Method::GET
        } else {
            &parts.method
        };
        match self.sites.route(authority, parts.uri.path(), method, https) {
            Routed::Site(site) => Ok(site.clone()),
            Routed::Misdirected => Err((
                StatusCode::MISDIRECTED_REQUEST,
                "no site is configured for this host",
            )),
            Routed::NotFound => Err((StatusCode::NOT_FOUND, "not found")),
        }
    }

    /// Step: answers without an origin, in this order: access (403), rate limit (429),
    /// the site's redirect or fixed response.
    fn answer_without_origin(
        &self,
        site: &Site,
        parts: &request::Parts,
        who: IpAddr,
        https: bool,
    ) -> Option<Response<ProxyBody>> {
        if !site.permits(who) {
            return Some(synthetic(StatusCode::FORBIDDEN, "forbidden"));
        }
        if let Some(limiter) = site.limiter() {
            if let Err(wait) = limiter.check(who, Instant::now()) {
                if let Some(m) = site.meters() {
                    m.rate_limited();
                }
                let mut resp = synthetic(StatusCode::TOO_MANY_REQUESTS, "too many requests");
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    crate::site::ratelimit::retry_after(wait),
                );
                return Some(resp);
            }
        }
        let answer = site.answer()?;
        let host = authority_of(parts).unwrap_or_default();
        let mut resp = answer.response(&self.vars(site, &parts.uri, host, who, https, ""));
        if parts.method == Method::HEAD {
            *resp.body_mut() = ProxyBody::empty();
        }
        Some(resp)
    }

    /// What a site's templates may use about this request.
    fn vars<'a>(
        &'a self,
        site: &'a Site,
        uri: &'a http::Uri,
        host: &'a str,
        client: IpAddr,
        https: bool,
        cache: &'a str,
    ) -> Vars<'a> {
        Vars {
            client_ip: client,
            host,
            path: uri.path(),
            query: uri.query().unwrap_or_default(),
            scheme: if https { "https" } else { "http" },
            pop: &self.settings.pop,
            node: &self.settings.node,
            site: site.name(),
            cache,
        }
    }

    /// Step: classify. PURGE, requests the cache must not answer (a body, an unsafe
    /// method, `no-store`-ish directives, a passing site or cookie) go through; the
    /// rest are looked up.
    async fn classify(
        self: &Arc<Self>,
        ctx: &Ctx,
        mut parts: request::Parts,
        body: Incoming,
        cookie_pass: bool,
    ) -> (Response<ProxyBody>, CacheStatus) {
        if parts.method.as_str() == "PURGE" {
            return (self.purge(ctx).await, CacheStatus::default());
        }
        if let Some(kind) = tunnel::wanted(&mut parts) {
            return Box::pin(self.tunnel(ctx, parts, kind)).await;
        }
        let has_body = headers::content_length(&parts.headers).is_some_and(|n| n > 0)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        // A Cookie left under `cookies = "pass"` is a pass, as in Varnish's builtin VCL:
        // a Cookie usually means a personalised page, and an origin's `public` on it is
        // a bug the cache must not turn into one user's page served to everyone.
        if ctx.site.rules().pass
            || cookie_pass
            || has_body
            || !policy::request_cacheable_with(&parts.method, &ctx.asked)
        {
            // Boxed, as `miss` is: hyper moves the whole request future into place, and
            // these steps' states (an origin exchange) would make every hit's move
            // kilobytes long.
            return Box::pin(self.pass_through(ctx, parts, body)).await;
        }
        drop(body);
        self.lookup(ctx, Arc::new(parts)).await
    }

    /// Step: limits that hyper does not enforce itself.
    fn reject_bad_request(&self, parts: &request::Parts) -> Option<Response<ProxyBody>> {
        // hyper bounds HTTP/1 heads on its own; these make HTTP/2 equal to it, and give
        // a long target 414 rather than the 431 of a full read buffer.
        let head = &self.settings.head;
        let uri = &parts.uri;
        let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
            + uri.authority().map_or(0, |a| a.as_str().len())
            + uri.path_and_query().map_or(0, |p| p.as_str().len());
        if uri_len > head.max_uri_bytes {
            return Some(synthetic(StatusCode::URI_TOO_LONG, "URI too long"));
        }
        if parts.headers.len() > head.max_headers {
            return Some(synthetic(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ));
        }
        // As on the wire in HTTP/1.1: name, ": ", value, CRLF.
        let header_bytes: usize = parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > head.max_header_bytes {
            return Some(synthetic(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header fields too large",
            ));
        }
        if parts.method == Method::CONNECT && tunnel::kind(parts).is_none() {
            let mut resp = synthetic(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported");
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, PURGE"),
            );
            return Some(resp);
        }
        // RFC 9112 3.2.4: the asterisk form is only for a server-wide OPTIONS.
        if parts.uri.path() == "*" && parts.method != Method::OPTIONS {
            return Some(synthetic(
                StatusCode::BAD_REQUEST,
                "asterisk target is only for OPTIONS",
            ));
        }
        if parts.headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
            return Some(synthetic(
                StatusCode::BAD_REQUEST,
                "duplicate Content-Length",
            ));
        }
        if headers::content_length(&parts.headers).is_some_and(|n| n > self.settings.max_body) {
            return Some(synthetic(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        None
    }

    /// Step: key and context. What every later step needs to know about the request,
    /// worked out once: its key under its site's rules, the client's scheme, its own
    /// cache directives, and the site. None without a usable authority.
    fn context(
        &self,
        parts: &request::Parts,
        client: ClientInfo,
        https: bool,
        site: Arc<Site>,
        (client_ip, forwarded): (IpAddr, bool),
    ) -> Option<Ctx> {
        let authority = authority_of(parts)?;
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let scheme = if https { "https" } else { "http" };
        Some(Ctx {
            key: CacheKey::new(scheme, authority, pq, &site.rules().cache.key),
            client,
            client_ip,
            forwarded,
            https,
            asked: RequestDirectives::of(&parts.headers),
            site,
        })
    }

    /// `PURGE` on the public listener: only from `purge_allowed` addresses. In a PoP it
    /// reaches every node, as a cluster-scope admin purge does: purged on one edge
    /// only, the URL would come back from the shard on the next request.
    async fn purge(&self, ctx: &Ctx) -> Response<ProxyBody> {
        let ip = canonical_ip(ctx.client.addr.ip());
        if !self.settings.purge_allowed.iter().any(|c| c.contains(ip)) {
            return synthetic(StatusCode::FORBIDDEN, "PURGE not allowed from this address");
        }
        let n = self.cache.purge(Target::Url(&ctx.key), false).objects;
        tracing::info!(url = %ctx.key.url, client = %ip, purged = n, "purge");
        let body = match self.cluster.as_ref().filter(|_| !ctx.forwarded) {
            Some(cluster) => {
                let acks = cluster
                    .purge_all_nodes(serde_json::json!({ "urls": [&*ctx.key.url] }))
                    .await;
                let nodes = serde_json::to_string(&acks).unwrap_or_else(|_| "[]".into());
                format!("{{\"purged\":{n},\"nodes\":{nodes}}}\n")
            }
            None => format!("{{\"purged\":{n}}}\n"),
        };
        let mut resp = Response::new(ProxyBody::full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// Step: classify. Requests with a body or an unsafe method go straight through;
    /// a successful unsafe method invalidates what it may have changed (RFC 9111 4.4).
    async fn pass_through(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: request::Parts,
        body: Incoming,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let unsafe_method = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let fault = Arc::new(ClientFault::default());
        let limit = BodyLimit {
            max: self.settings.max_body,
            fault: fault.clone(),
        };
        let req_body = ProxyBody::stream(body, self.settings.body_read_timeout, Some(limit));
        let origin_req = self.origin_request(ctx, &parts, req_body, false);
        let status = CacheStatus::fwd(if unsafe_method { "method" } else { "bypass" });
        match self.upstream(ctx, origin_req).await {
            Ok((resp, _)) => {
                let (mut rparts, rbody) = resp.into_parts();
                headers::strip_hop_by_hop(&mut rparts.headers);
                if unsafe_method
                    && ctx.site.rules().invalidate_unsafe
                    && (rparts.status.is_success() || rparts.status.is_redirection())
                {
                    self.invalidate(ctx, &parts, &rparts.headers);
                }
                let mut status = status;
                status.fwd_status = Some(rparts.status.as_u16());
                let idle = self.settings.response_idle(&rparts.headers);
                let body = ProxyBody::stream(rbody, idle, None);
                (Response::from_parts(rparts, body), status)
            }
            Err(why) => {
                // The client's body broke the exchange: say so, and do not blame the origin.
                let resp = match fault.get() {
                    Some(Fault::TooLarge) => {
                        synthetic(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                    }
                    Some(Fault::Malformed) => synthetic(
                        StatusCode::BAD_REQUEST,
                        "malformed or incomplete request body",
                    ),
                    Some(Fault::Stalled) => {
                        synthetic(StatusCode::REQUEST_TIMEOUT, "request body timed out")
                    }
                    None => failure_response(why),
                };
                (resp, status)
            }
        }
    }

    /// RFC 9111 4.4: after an unsafe method succeeds, the target URI and the URIs in
    /// Location / Content-Location (same authority only, against poisoning) are invalid.
    fn invalidate(&self, ctx: &Ctx, parts: &request::Parts, resp: &HeaderMap) {
        let (key, rules) = (&ctx.key, &ctx.rules().key);
        self.cache.remove(key);
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let Some(authority) = authority else { return };
        let scheme = key.url.split("://").next().unwrap_or("http").to_owned();
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(target) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let target_key = if target.starts_with('/') {
                Some(CacheKey::new(&scheme, &authority, target, rules))
            } else {
                crate::cache::key::key_for_url(target, rules)
                    .ok()
                    .filter(|k| same_authority(&k.url, &scheme, &authority, rules))
            };
            if let Some(k) = target_key {
                self.cache.remove(&k);
            }
        }
    }

    /// Step: lookup. Fresh → serve; stale within stale-while-revalidate → serve and refresh
    /// in the background; otherwise fetch (revalidating the stale copy when it has validators).
    async fn lookup(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: Arc<request::Parts>,
    ) -> (Response<ProxyBody>, CacheStatus) {
        if let Some(cluster) = &self.cluster {
            cluster.observe(ctx.key.hash);
        }
        let now = Instant::now();
        // A Cookie under the pass policy never gets this far (`route` passes it).
        let stored = self
            .cache
            .lookup(&ctx.key, &parts.headers)
            .filter(|o| !ctx.asked.credentials || o.public);
        let cc = &ctx.asked.cc;
        match stored {
            Some(obj) => match obj.usability(now, cc) {
                Usability::Fresh => respond::from_object(&parts, &obj, now, CacheStatus::hit()),
                Usability::StaleWhileRevalidate => {
                    // A refresh that just failed is not retried before `error_backoff`.
                    if !self.coalescer.recently_failed(ctx.key.hash) {
                        self.background_refresh(ctx, &parts, &obj);
                    }
                    self.metrics.stale("stale-while-revalidate");
                    let mut st = CacheStatus::hit();
                    st.stale = true;
                    st.detail = Some("stale-while-revalidate");
                    respond::from_object(&parts, &obj, now, st)
                }
                Usability::MustRevalidate { usable_on_error } => {
                    if cc.only_if_cached {
                        return (
                            synthetic(StatusCode::GATEWAY_TIMEOUT, "not cached"),
                            CacheStatus::fwd("request"),
                        );
                    }
                    // A stored error is no better stand-in for a fresh error.
                    let fallback =
                        (usable_on_error && !obj.status.is_server_error()).then_some(obj.clone());
                    Box::pin(self.miss(ctx, parts, Some(obj), fallback)).await
                }
                Usability::Expired => {
                    if cc.only_if_cached {
                        return (
                            synthetic(StatusCode::GATEWAY_TIMEOUT, "not cached"),
                            CacheStatus::fwd("request"),
                        );
                    }
                    Box::pin(self.miss(ctx, parts, Some(obj), None)).await
                }
            },
            None => {
                // Only a complete copy's absence lets parts answer: a stale complete copy
                // is revalidated whole, as before.
                let ranged =
                    parts.method == Method::GET && parts.headers.contains_key(header::RANGE);
                let part = ranged
                    .then(|| self.cache.lookup_part(&ctx.key, &parts.headers))
                    .flatten()
                    .filter(|o| !ctx.asked.credentials || o.public);
                if let Some(obj) = part.as_ref() {
                    if obj.usability(now, cc) == Usability::Fresh {
                        if let Some(answer) =
                            respond::from_parts(&parts, obj, now, CacheStatus::hit())
                        {
                            return answer;
                        }
                    }
                }
                if cc.only_if_cached {
                    return (
                        synthetic(StatusCode::GATEWAY_TIMEOUT, "not cached"),
                        CacheStatus::fwd("request"),
                    );
                }
                if self.relays_conditionals(ctx, &parts) {
                    let all = crate::proxy::headers::copy_conditionals;
                    return Box::pin(self.relayed_miss(ctx, parts, all, "conditional")).await;
                }
                if self.forwards_range(ctx, &parts, part.is_some()) {
                    let range = |from: &http::HeaderMap, to: &mut http::HeaderMap| {
                        for name in [header::RANGE, header::IF_RANGE] {
                            for value in from.get_all(&name) {
                                to.append(&name, value.clone());
                            }
                        }
                    };
                    return Box::pin(self.relayed_miss(ctx, parts, range, "range")).await;
                }
                Box::pin(self.miss(ctx, parts, None, None)).await
            }
        }
    }

    /// A range request with no complete copy stored is sent to the origin with its Range
    /// (and If-Range) when the origin is known to answer this URL in parts (a part is
    /// stored) or the URL's answers are not shared anyway (hit-for-miss: uncacheable, or
    /// larger than `max_object_size`), so the origin sends the bytes asked rather than
    /// the whole object. Otherwise the fill fetches the whole object, shared with every
    /// request waiting for it, and each range is cut from it. Only a single byte range
    /// with no precondition but If-Range is forwarded: anything else keeps the
    /// whole-object fill, from which lacquer answers it as before.
    fn forwards_range(&self, ctx: &Ctx, parts: &request::Parts, has_part: bool) -> bool {
        parts.method == Method::GET
            && crate::cache::range::is_single_range(&parts.headers)
            && !headers::has_client_preconditions(&parts.headers)
            && (has_part || self.cache.is_hit_for_miss(&ctx.key))
    }

    /// An edge that will not keep this key sends the client's preconditions and range on
    /// to the shard, which answers them from its copy (304, 206, 412) as a single node
    /// would: stripping them, as a fill does, made every conditional or ranged request
    /// of a key that is not hot pay the full body (issue 17).
    fn relays_conditionals(&self, ctx: &Ctx, parts: &request::Parts) -> bool {
        matches!(parts.method, Method::GET | Method::HEAD)
            && headers::has_conditionals(&parts.headers)
            && self
                .cluster
                .as_ref()
                .is_some_and(|c| c.forwards(ctx.forwarded) && !c.keep_locally(ctx.key.hash))
    }

    /// A fetch for this client alone, never joined by other requests (they may want
    /// other bytes, or hold other validators), with the fields `carry` copies from the
    /// client's request (its Range; or every precondition): its answer relayed and, when
    /// storable, stored (a 206 as a part).
    async fn relayed_miss(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: Arc<request::Parts>,
        carry: impl Fn(&http::HeaderMap, &mut http::HeaderMap),
        detail: &'static str,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let mut job = self.fetch_job(ctx, &parts, None);
        carry(&parts.headers, &mut job.origin_request.headers);
        let (writer, waiter) = self.coalescer.detached(&ctx.key, &parts, true);
        tokio::spawn(fetch::run(self.clone(), writer, job));
        let mut st = CacheStatus::fwd("miss");
        st.detail = Some(detail);
        let outcome = self.wait(waiter, false).await;
        self.deliver(&parts, outcome, None, st)
    }

    /// Steps: coalesce, fetch, failure. Join the in-flight fetch for this key or lead one;
    /// a waiter gets the head and then each body chunk as it arrives. With a stale copy
    /// usable on error (`fallback`), a key whose last fetch failed within `error_backoff`
    /// is answered with it at once, and a fetch slower than `stale_on_slow` serves it too.
    async fn miss(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: Arc<request::Parts>,
        stored: Option<Arc<Object>>,
        fallback: Option<Arc<Object>>,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let reason = if stored.is_some() { "stale" } else { "miss" };
        if let Some(obj) = &fallback {
            if self.coalescer.recently_failed(ctx.key.hash) {
                let mut st = CacheStatus::hit();
                st.stale = true;
                st.detail = Some("stale-if-error; backoff");
                self.metrics.stale("origin-backoff");
                return respond::from_object(&parts, obj, Instant::now(), st);
            }
        }
        if self.cache.is_hit_for_miss(&ctx.key) {
            let waiter = self.fetch_alone(ctx, &parts, stored);
            let mut st = CacheStatus::fwd(reason);
            st.detail = Some("hit-for-miss");
            let outcome = self.wait(waiter, fallback.is_some()).await;
            return self.deliver(&parts, outcome, fallback, st);
        }
        match self.coalescer.join(&ctx.key, &parts) {
            Join::Busy => (
                synthetic(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests waiting for this object",
                ),
                CacheStatus::fwd(reason),
            ),
            Join::Leader(writer, waiter) => {
                let job = self.fetch_job(ctx, &parts, stored);
                tokio::spawn(fetch::run(self.clone(), writer, job));
                let outcome = self.wait(waiter, fallback.is_some()).await;
                self.deliver(&parts, outcome, fallback, CacheStatus::fwd(reason))
            }
            Join::Follower(waiter) => {
                let mut st = CacheStatus::fwd(reason);
                st.collapsed = true;
                let same_variant_as_leader =
                    |head_headers: &HeaderMap, flight_headers: &HeaderMap| match vary::parse_vary(
                        head_headers,
                    ) {
                        vary::Vary::None => true,
                        vary::Vary::Star => false,
                        vary::Vary::Fields(f) => {
                            let mine = vary::secondary_key(&f, &parts.headers);
                            mine.is_some() && mine == vary::secondary_key(&f, flight_headers)
                        }
                    };
                let flight = waiter.flight().clone();
                let waited = Instant::now();
                let waiting = self.metrics.waiting();
                let outcome = self.wait(waiter, fallback.is_some()).await;
                drop(waiting);
                self.metrics
                    .coalesce_wait
                    .observe(waited.elapsed().as_secs_f64());
                let outcome = match outcome {
                    Outcome::Stream { head, .. }
                        if !same_variant_as_leader(&head.headers, &flight.leader.headers) =>
                    {
                        Outcome::GiveUp
                    }
                    o => o,
                };
                if let Outcome::GiveUp = outcome {
                    let waiter = self.fetch_alone(ctx, &parts, stored);
                    st.collapsed = false;
                    let outcome = self.wait(waiter, fallback.is_some()).await;
                    return self.deliver(&parts, outcome, fallback, st);
                }
                self.deliver(&parts, outcome, fallback, st)
            }
        }
    }

    /// Wait for a flight's head. Nothing shorter than the fetch's own timeouts ends the
    /// wait (so waiters share the leader's answer or failure), except, with a stale copy
    /// to serve, the fetch reaching `stale_on_slow`: counted from the fetch's start, so a
    /// late joiner of a slow fetch is answered at once.
    async fn wait(&self, waiter: Waiter, has_fallback: bool) -> Outcome {
        let started = waiter.flight().started;
        let bound = started + self.settings.coalesce_timeout;
        let slow = (has_fallback && !self.settings.stale_on_slow.is_zero())
            .then(|| started + self.settings.stale_on_slow);
        let deadline = slow.map_or(bound, |s| s.min(bound));
        match tokio::time::timeout_at(deadline, waiter.outcome()).await {
            Ok(outcome) => outcome,
            Err(_) if slow.is_some() => Outcome::Slow,
            // lacquer's own safety bound fired; which upstream is slow is not known here.
            Err(_) => Outcome::Failed(FetchFailure::new(Source::Local, Kind::Timeout)),
        }
    }

    /// Step: failure and respond. Turn a flight's outcome into this client's response,
    /// falling back to a stale copy when the origin failed or answered 5xx.
    fn deliver(
        &self,
        parts: &request::Parts,
        outcome: Outcome,
        fallback: Option<Arc<Object>>,
        mut status: CacheStatus,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let now = Instant::now();
        match outcome {
            Outcome::Stream { head, reader } => {
                if head.status.is_server_error() {
                    if let Some(obj) = fallback {
                        status.fwd = Some("stale");
                        status.fwd_status = Some(head.status.as_u16());
                        status.stale = true;
                        status.detail = Some("stale-if-error");
                        status.collapsed = false;
                        self.metrics.stale("origin-5xx");
                        return respond::from_object(parts, &obj, now, status);
                    }
                }
                status.fwd_status = Some(head.status.as_u16());
                status.stored = head.stored;
                (respond::from_stream(parts, &head, reader), status)
            }
            Outcome::Object(obj) => {
                status.fwd_status = Some(304);
                respond::from_object(parts, &obj, now, status)
            }
            Outcome::Failed(why) => match fallback {
                Some(obj) => {
                    status.fwd = Some("stale");
                    status.stale = true;
                    status.detail = Some(why.stale_detail());
                    status.collapsed = false;
                    self.metrics.stale(why.stale_reason());
                    respond::from_object(parts, &obj, now, status)
                }
                None => (failure_response(why), status),
            },
            // `wait` says Slow only to a waiter with a fallback.
            Outcome::Slow => match fallback {
                Some(obj) => {
                    status.fwd = Some("stale");
                    status.stale = true;
                    status.detail = Some("stale-on-slow");
                    status.collapsed = false;
                    self.metrics.stale("origin-slow");
                    respond::from_object(parts, &obj, now, status)
                }
                None => (
                    failure_response(FetchFailure::new(Source::Local, Kind::Timeout)),
                    status,
                ),
            },
            // Only followers see GiveUp, and `miss` turns it into a fetch of their own.
            Outcome::GiveUp => (failure_response(FetchFailure::ABANDONED), status),
        }
    }

    /// A fetch of our own, outside the in-flight map (hit-for-miss, or released by a leader).
    fn fetch_alone(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: &Arc<request::Parts>,
        stored: Option<Arc<Object>>,
    ) -> Waiter {
        // Nobody else can join this fetch: it ends with its client, unless it revalidates
        // a stored copy (its answer refreshes the cache).
        let (writer, waiter) = self.coalescer.detached(&ctx.key, parts, stored.is_none());
        let job = self.fetch_job(ctx, parts, stored);
        tokio::spawn(fetch::run(self.clone(), writer, job));
        waiter
    }

    fn fetch_job(
        &self,
        ctx: &Ctx,
        parts: &Arc<request::Parts>,
        stored: Option<Arc<Object>>,
    ) -> fetch::FetchJob {
        let mut origin_request = self.origin_request(ctx, parts, ProxyBody::empty(), true);
        if let Some(obj) = stored.as_ref() {
            for (name, value) in policy::revalidation_headers(&obj.headers.to_map()) {
                origin_request.headers.insert(name, value);
            }
            if self
                .cluster
                .as_ref()
                .is_some_and(|c| c.forwards(ctx.forwarded))
            {
                // An edge revalidating its copy wants the current one: without this, a
                // shard within stale-while-revalidate answered with its own stale copy,
                // and the edge's refresh refreshed nothing (RFC 9111 5.2.1.1).
                headers::append_member(
                    &mut origin_request.headers,
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=0"),
                );
            }
        }
        // The fill is a GET whatever the client asked (a HEAD miss fills the cache too).
        let request = if parts.method == Method::GET {
            parts.clone()
        } else {
            let mut p = request::Parts::clone(parts);
            p.method = Method::GET;
            Arc::new(p)
        };
        fetch::FetchJob {
            ctx: ctx.clone(),
            request,
            origin_request,
            stale: stored,
        }
    }

    /// stale-while-revalidate: one background refresh per key, the client is not kept waiting.
    fn background_refresh(
        self: &Arc<Self>,
        ctx: &Ctx,
        parts: &Arc<request::Parts>,
        obj: &Arc<Object>,
    ) {
        if let Some(writer) = self.coalescer.claim(&ctx.key, parts) {
            let job = self.fetch_job(ctx, parts, Some(obj.clone()));
            tokio::spawn(fetch::run(self.clone(), writer, job));
        }
    }

    /// Step: fetch (DESIGN.md §2 step 8). An edge sends the request to the shard that
    /// owns the key; a shard or standalone node, a request another node already
    /// forwarded (hop marker), and an edge with no live shard use the origin pool.
    pub async fn upstream(
        &self,
        ctx: &Ctx,
        req: OriginRequest,
    ) -> Result<(Response<Incoming>, Upstream), FetchFailure> {
        let key = &ctx.key;
        let req = match &self.cluster {
            Some(cluster) if cluster.forwards(ctx.forwarded) => {
                match cluster.send(key, req).await {
                    Ok(resp) => return Ok((resp, Upstream::Shard)),
                    Err(e) if e.is_no_live_shard() => {
                        tracing::debug!(url = %key.url, error = %e, "no live shard: asking the origins");
                        let failure = e.failure();
                        match e.into_request() {
                            Some(req) => req,
                            None => return Err(failure),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(url = %key.url, error = %e, "shard fetch failed");
                        return Err(e.failure());
                    }
                }
            }
            _ => req,
        };
        // The site's origin group; a `hash` group places the request by its cache key.
        let Some(group) = ctx.site.group() else {
            return Err(OriginError::NoOrigin.failure());
        };
        match group.send_with_affinity(req, key.hash).await {
            Ok(resp) => Ok((resp, Upstream::Origin)),
            Err(e) => {
                tracing::warn!(url = %key.url, error = %e, "origin fetch failed");
                Err(e.failure())
            }
        }
    }

    /// The request as sent to the origin: hop-by-hop removed, Host kept, Via and
    /// X-Forwarded-For added; a cache fill is a GET without client preconditions.
    fn origin_request(
        &self,
        ctx: &Ctx,
        parts: &request::Parts,
        body: ProxyBody,
        fill: bool,
    ) -> OriginRequest {
        let mut h = parts.headers.clone();
        headers::strip_hop_by_hop(&mut h);
        headers::strip_underscored(&mut h);
        // The PoP's own marker: a shard's origin must not see it (a forward adds a new
        // one, signed for that hop).
        h.remove(crate::cluster::HOP_HEADER);
        let peer = canonical_ip(ctx.client.addr.ip());
        if !self
            .settings
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer))
        {
            self.settings.unkeyed_headers.strip(&mut h);
        }
        // The origin must see the host the response will be cached under (RFC 9112
        // 3.2.2: an absolute-form target replaces Host).
        if let Some(a) = authority_of(parts) {
            if let Ok(v) = HeaderValue::from_str(a) {
                h.insert(header::HOST, v);
            }
        }
        headers::append_via(&mut h, &self.settings.via);
        headers::append_forwarded_for(&mut h, ctx.client.addr.ip());
        h.insert(
            http::HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(if ctx.https { "https" } else { "http" }),
        );
        let site = &ctx.site;
        if site.key_cookies() {
            // Internal key fields; the origin sees the cookies themselves.
            for field in &site.rules().key_headers {
                h.remove(field);
            }
        }
        if !site.request_edits().is_empty() && !ctx.forwarded {
            let host = authority_of(parts).unwrap_or_default();
            let vars = self.vars(site, &parts.uri, host, ctx.client_ip, ctx.https, "");
            site.request_edits().apply(&mut h, &vars);
        }
        let method = if fill {
            headers::strip_client_conditionals(&mut h);
            Method::GET
        } else {
            parts.method.clone()
        };
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        OriginRequest {
            retryable: fill || matches!(method, Method::GET | Method::HEAD | Method::OPTIONS),
            method,
            path_and_query,
            headers: h,
            body,
        }
    }

    /// A request another node of the PoP forwarded (hop marker; a shard's port is
    /// reachable only inside the PoP, see the README).
    fn forwarded_by_peer(&self, headers: &HeaderMap) -> bool {
        self.cluster.is_some() && crate::cluster::is_forwarded(headers)
    }

    /// The client's scheme: its own connection's, or, for a request another lacquer
    /// node forwarded (over plain HTTP inside the PoP), the one that node saw.
    fn client_https(&self, headers: &HeaderMap, client: ClientInfo) -> bool {
        client.tls
            || (self.forwarded_by_peer(headers)
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
    }

    /// Headers every response gets, whatever produced it.
    fn finish_response(
        &self,
        resp: &mut Response<ProxyBody>,
        status: &CacheStatus,
        site: Option<&Site>,
        forwarded: bool,
    ) {
        // A 101's Connection and Upgrade are the switch itself (`tunnel`).
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        if !switching {
            headers::strip_hop_by_hop(h);
        }
        if let Some(site) = site {
            if site.key_cookies() {
                headers::public_vary(h);
            }
            if self.settings.site_header {
                if let Ok(v) = HeaderValue::from_str(site.name()) {
                    h.insert(http::HeaderName::from_static("x-lacquer-site"), v);
                }
            }
        }
        if self.settings.surrogate_control && !forwarded {
            // Surrogate-Control is addressed to caches like this one, not to clients; a
            // node of the PoP is such a cache, and gets it as the origin sent it.
            h.remove(http::HeaderName::from_static("surrogate-control"));
        }
        headers::append_via(h, &self.settings.via);
        // RFC 9211 §2: one entry per cache, the upstream caches' first (a shard's, on an
        // edge's miss), this one's last. A stored copy carries none (stripped at store).
        headers::append_member(
            h,
            crate::cache::policy::CACHE_STATUS,
            status.header_value(&self.settings.cache_name),
        );
    }

    /// The Prometheus exposition, with the cache gauges read at scrape time.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            m.tasks_alive
                .set(i64::try_from(rt.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
        for site in self.sites.all() {
            if let (Some(limiter), Some(m)) = (site.limiter(), site.meters()) {
                m.clients(limiter.tracked());
            }
        }
        let stats = self.cache.stats();
        m.cache_objects
            .set(i64::try_from(stats.objects).unwrap_or(i64::MAX));
        m.cache_bytes
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
        m.insertions
            .inner()
            .store(stats.inserted, std::sync::atomic::Ordering::Relaxed);
        m.evictions
            .inner()
            .store(stats.evicted, std::sync::atomic::Ordering::Relaxed);
        m.encode_prometheus()
    }

    /// Pull pre-warm: fetch `url` through the normal request path (coalesced, stored by
    /// the usual rules) as if a client asked for it, and read the body to the end.
    /// Returns the status and the Cache-Status result (hit, miss, ...).
    pub async fn fill(self: &Arc<Self>, url: &str) -> Result<(StatusCode, &'static str), String> {
        use http_body_util::BodyExt;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!("URL {url:?} must be absolute (http://host/path)"));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("URL {url:?}: scheme must be http or https"));
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        let pq = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let (mut parts, ()) = Request::builder()
            .method(Method::GET)
            .uri(pq.as_str())
            .header(header::HOST, host)
            .header(header::USER_AGENT, "lacquer-prewarm")
            .body(())
            .map_err(|e| e.to_string())?
            .into_parts();
        parts.version = http::Version::HTTP_11;
        let client = ClientInfo {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: scheme == "https",
        };
        let https = scheme == "https";
        let site = self
            .site_of(&parts, https)
            .map_err(|(code, why)| format!("URL {url:?}: {code} {why}"))?;
        let ctx = self
            .context(&parts, client, https, site, (client.addr.ip(), false))
            .ok_or_else(|| format!("URL {url:?} has no usable host"))?;
        let (resp, status) = self.lookup(&ctx, Arc::new(parts)).await;
        let code = resp.status();
        // Drain rather than collect: a large body that is not stored must not be held.
        let mut body = std::pin::pin!(resp.into_body());
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| format!("body of {url}: {e}"))?;
        }
        Ok((code, status.result()))
    }
}

/// The request's authority: from the URI (HTTP/2, absolute-form), else the one Host
/// header; None when missing, repeated or malformed.
fn authority_of(parts: &request::Parts) -> Option<&str> {
    let authority = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => {
            let mut hosts = parts.headers.get_all(header::HOST).iter();
            let host = hosts.next()?;
            if hosts.next().is_some() {
                return None;
            }
            host.to_str().ok()?
        }
    };
    if authority.is_empty() || authority.contains(['/', ' ', '@']) {
        return None;
    }
    Some(authority)
}

fn same_authority(url: &str, scheme: &str, authority: &str, rules: &KeyRules) -> bool {
    let probe = CacheKey::new(scheme, authority, "/", rules);
    let prefix = probe.url.trim_end_matches('/');
    url.starts_with(prefix) && url[prefix.len()..].starts_with(['/', '?'])
}

/// IPv4 clients on a dual-stack socket show up as ::ffff:a.b.c.d.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How long a waiter may wait for a fetch's head: `coalesce_timeout`, but never less than
/// the fetch itself may take to fail (connect and first-byte timeouts, twice with a
/// retry), so that waiters always stay with a live fetch and share its outcome.
pub fn coalesce_wait_bound(
    coalesce_timeout: Duration,
    upstream: &crate::config::UpstreamConfig,
) -> Duration {
    let attempts = if upstream.retry { 2 } else { 1 };
    let fetch = (upstream.connect_timeout + upstream.first_byte_timeout) * attempts;
    coalesce_timeout.max(fetch + Duration::from_secs(1))
}

/// A clean error page for a fetch with no response and no stale copy to fall back on.
fn failure_response(why: FetchFailure) -> Response<ProxyBody> {
    synthetic(why.status(), why.message())
}
