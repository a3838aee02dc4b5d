//! `[geo]` (nearest-PoP routing) and `[client]` (who the client is).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units;
use super::Cidr;

/// What an edge does when another PoP is nearer to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeoMode {
    /// Decide (for `/.lacquer/pop` and metrics) but change nothing.
    #[default]
    Off,
    /// Serve, and tell the origin and the client with `X-Lacquer-Pop`.
    Header,
    /// 307 to the nearer PoP's base URL.
    Redirect,
}

/// Nearest-PoP routing from a MaxMind City database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    pub enabled: bool,
    /// GeoIP2 / GeoLite2 City database; required when enabled.
    pub mmdb: Option<PathBuf>,
    /// The PoP table (TOML, see `geo/pops.toml`).
    pub pops: PathBuf,
    pub action: GeoMode,
    /// Where clients go when the database has no answer; required when enabled.
    pub default_pop: Option<String>,
    #[serde(deserialize_with = "units::de_duration")]
    pub health_interval: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub health_timeout: Duration,
    /// How often the database and PoP table files are checked for changes.
    #[serde(deserialize_with = "units::de_duration")]
    pub reload_interval: Duration,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            enabled: false,
            mmdb: None,
            pops: PathBuf::from("geo/pops.toml"),
            action: GeoMode::Off,
            default_pop: None,
            health_interval: Duration::from_secs(10),
            health_timeout: Duration::from_secs(2),
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// How the client's address is found, and which of its claims are not believed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Proxies (CIDR) whose `X-Forwarded-For` and PROXY protocol headers are
    /// believed. Empty: the TCP peer is always the client.
    pub trusted_proxies: Vec<String>,
    /// Request fields removed before a request goes upstream unless the peer is a
    /// trusted proxy: inputs some origins read but the cache key does not include.
    pub unkeyed_headers: Vec<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            trusted_proxies: Vec::new(),
            unkeyed_headers: DEFAULT_UNKEYED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Unkeyed inputs known to poison shared caches, from the published research
/// (Kettle, "Practical Web Cache Poisoning" 2018 and "Web Cache Entanglement" 2020;
/// Nguyen et al., "CPDoS" 2019; the header lists of Param Miner and of Hackmanit's
/// Web Cache Vulnerability Scanner): fields that frameworks read as the host, the
/// scheme, the port, the URL or path, the method, or the client's address. A client
/// sending one of them could otherwise make the origin answer for a different host,
/// path or method under the key of a normal request, for everyone. lacquer sets
/// `X-Forwarded-For` and `X-Forwarded-Proto` itself.
pub const DEFAULT_UNKEYED_HEADERS: &[&str] = &[
    // host and server name
    "x-forwarded-host",
    "x-forwarded-server",
    "x-host",
    "x-http-host-override",
    "x-original-host",
    "forwarded",
    // scheme and port
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
    "x-forwarded-port",
    // URL and path
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-url",
    "x-proxy-url",
    "x-http-destinationurl",
    "x-wap-profile",
    // method (CPDoS "HMO")
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // client address claims (geo-dependent pages)
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-cluster-client-ip",
];

/// Fields `unkeyed_headers` may not name: the request would lose its own framing or
/// the host it is cached under.
pub const UNSTRIPPABLE_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// Most `unkeyed_headers` entries accepted: the list is scanned per request.
pub const MAX_UNKEYED_HEADERS: usize = 128;

impl ClientConfig {
    /// `trusted_proxies` parsed; a validated configuration has no bad entry.
    pub fn trusted_cidrs(&self) -> Vec<Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}
