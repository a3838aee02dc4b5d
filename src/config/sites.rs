//! `[[origin_group]]` and `[[site]]`: named pools of origin servers, and the rules that
//! route a request by host, path, method and scheme to one of them with its own cache
//! policy, key, header edits and answers. The schema only; validation lives in
//! `validate`, and the compiled form in `crate::site`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{units, HealthConfig, QueryMode};

/// The name of the origin group built from the top-level `[[origin]]` list.
pub const DEFAULT_GROUP: &str = "default";

/// The name of the site built from the top-level `[cache]` policy and `[[origin]]`.
pub const DEFAULT_SITE: &str = "default";

/// How a group spreads requests over its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Weighted round-robin.
    #[default]
    RoundRobin,
    /// The server with the fewest requests in flight, relative to its weight.
    LeastConnections,
    /// By cache key (weighted rendezvous hashing), for origins that shard themselves.
    Hash,
}

/// A named pool of origin servers with one TLS, health and balancing setup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginGroupConfig {
    pub name: String,
    pub servers: Vec<ServerConfig>,
    pub balance: Balance,
    /// Talk HTTPS to the group's servers.
    pub tls: bool,
    /// Name sent as SNI and verified (default: each server's host).
    pub sni: Option<String>,
    /// PEM file of CA certificates to trust (default: the system's).
    pub ca_file: Option<PathBuf>,
    pub health: HealthConfig,
}

impl Default for OriginGroupConfig {
    fn default() -> Self {
        OriginGroupConfig {
            name: String::new(),
            servers: Vec::new(),
            balance: Balance::RoundRobin,
            tls: false,
            sni: None,
            ca_file: None,
            health: HealthConfig::default(),
        }
    }
}

impl OriginGroupConfig {
    /// The servers as origin entries, each carrying the group's TLS and health setup.
    pub fn origins(&self) -> Vec<super::OriginConfig> {
        self.servers
            .iter()
            .map(|s| super::OriginConfig {
                address: s.address.clone(),
                weight: s.weight,
                health: self.health.clone(),
                tls: self.tls,
                sni: self.sni.clone(),
                ca_file: self.ca_file.clone(),
            })
            .collect()
    }
}

/// One server of an origin group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; IPv6 literals in brackets.
    pub address: String,
    pub weight: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: String::new(),
            weight: 1,
        }
    }
}

/// One site: what requests it matches, and what it does with them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    pub name: String,
    /// Exact host names or `*.suffix` wildcards, case-insensitive, port ignored;
    /// empty matches any host.
    pub hosts: Vec<String>,
    /// Path prefixes.
    pub paths: Vec<String>,
    /// Whole paths (the query is not part of the path).
    pub exact_paths: Vec<String>,
    /// Regular expressions on the path.
    pub path_regex: Vec<String>,
    /// Request methods; empty matches any.
    pub methods: Vec<String>,
    /// `http` and/or `https`; empty matches both.
    pub schemes: Vec<String>,
    /// Where misses go; default: the `[[origin]]` list.
    pub origin_group: Option<String>,
    /// Client networks let in; empty lets everyone in (before `deny`).
    pub allow: Vec<String>,
    /// Client networks answered 403.
    pub deny: Vec<String>,
    pub rate_limit: Option<RateLimitConfig>,
    /// Answer with a redirect instead of asking an origin.
    pub redirect: Option<RedirectConfig>,
    /// Answer with a fixed response instead of asking an origin.
    pub respond: Option<RespondConfig>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub cache: SiteCacheConfig,
    /// Compression for this site: `false` turns it off, `true` on; unset follows
    /// `[compression] enabled`.
    pub compress: Option<bool>,
    /// The site's own `limits.tunnel_idle_timeout` for its WebSocket tunnels.
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub tunnel_idle_timeout: Option<Duration>,
}

/// A per-client-IP token bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second, sustained.
    pub rate: f64,
    /// Requests a client may make at once above the rate.
    pub burst: u32,
    /// Clients tracked at once; beyond it the least recently seen are forgotten.
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: 10.0,
            burst: 20,
            max_clients: 100_000,
        }
    }
}

/// `redirect = { status = 301, location = "https://{host}{uri}" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    pub status: u16,
    /// A template: text with `{variable}`s (see `crate::site::template`).
    pub location: String,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            status: 301,
            location: String::new(),
        }
    }
}

/// `respond = { status = 503, content_type = "text/html", body = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            status: 200,
            content_type: "text/plain; charset=utf-8".to_owned(),
            body: String::new(),
        }
    }
}

/// Header edits, applied in the order remove, set, add. Values are templates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderEdits {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// What a request's cookies do, after `keep_cookies` / `strip_cookies` filtered them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieMode {
    /// A request with a Cookie left bypasses the cache.
    Pass,
    /// Cached as usual; the origin must mark personalised responses private.
    Cache,
    /// Remove the Cookie header before lookup and from the request to the origin.
    Strip,
}

/// What to do with a cacheable response that sets a cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetCookieMode {
    /// Relay it and do not store it.
    #[default]
    Refuse,
    /// Remove Set-Cookie and store the rest.
    Strip,
}

/// A site's cache policy. Every key left out takes its value from `[cache]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteCacheConfig {
    /// Never look up or store: every request goes to the origin.
    pub pass: bool,
    /// Lifetime of a response the origin gave no freshness.
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub default_ttl: Option<Duration>,
    /// Like `default_ttl`, by status code ("404") or class ("4xx"); the code wins.
    #[serde(deserialize_with = "units::de_duration_map")]
    pub status_ttl: BTreeMap<String, Duration>,
    /// Lifetime of every storable response, whatever the origin says about freshness.
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub force_ttl: Option<Duration>,
    /// stale-while-revalidate when the origin gives none.
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub grace: Option<Duration>,
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub stale_if_error: Option<Duration>,
    #[serde(deserialize_with = "units::de_opt_duration")]
    pub keep: Option<Duration>,
    #[serde(deserialize_with = "units::de_opt_size")]
    pub max_object_size: Option<u64>,
    pub cookies: Option<CookieMode>,
    /// Cookies removed before lookup (and from the request to the origin).
    pub strip_cookies: Vec<String>,
    /// When set, every other cookie is removed before lookup.
    pub keep_cookies: Vec<String>,
    pub set_cookie: SetCookieMode,
    /// RFC 9111 §4.4: a successful unsafe method invalidates the target URI.
    pub invalidate_unsafe: Option<bool>,
    pub key: SiteKeyConfig,
}

/// A site's cache key. Left-out keys take their value from `[cache.key]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteKeyConfig {
    pub query: Option<QueryMode>,
    pub drop_params: Option<Vec<String>>,
    /// Request header fields whose values become part of the key.
    pub headers: Vec<String>,
    /// Request cookies whose values become part of the key.
    pub cookies: Vec<String>,
}

/// A `status_ttl` key: one status code ("404"), or a class ("4xx", or "4XX").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// The first digit of the class, 1 to 5.
    Class(u16),
}

impl StatusMatch {
    /// `None` for anything but a code from 100 to 599 or a class "1xx" to "5xx".
    pub fn parse(key: &str) -> Option<StatusMatch> {
        match *key.as_bytes() {
            [d @ b'1'..=b'5', x, y]
                if x.eq_ignore_ascii_case(&b'x') && y.eq_ignore_ascii_case(&b'x') =>
            {
                Some(StatusMatch::Class(u16::from(d - b'0')))
            }
            [a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
                let code = [a, b, c]
                    .iter()
                    .fold(0, |n, &d| n * 10 + u16::from(d - b'0'));
                (100..=599)
                    .contains(&code)
                    .then_some(StatusMatch::Code(code))
            }
            _ => None,
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => status == code,
            StatusMatch::Class(class) => status / 100 == class,
        }
    }
}
