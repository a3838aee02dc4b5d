//! lacquer's configuration: the TOML schema, its defaults, loading and
//! validation.
//!
//! Every key has a default, so only what differs from the defaults needs to be
//! written. Unknown keys are errors (a misspelt key silently falling back to its
//! default is the worst kind of misconfiguration). Loading reports *all*
//! problems at once, each as `file:line: message`.

mod cidr;
mod cluster;
mod compression;
mod control;
mod geo;
mod parse;
mod site_cover;
mod sites;
mod units;
mod validate;
mod validate_sites;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use cidr::{Cidr, CidrError};
pub use cluster::{
    ClusterConfig, HealthPort, PeerConfig, PeerRole, MAX_FANOUT_RETRIES, MAX_PEERS,
    MAX_PEER_WEIGHT, MAX_PURGE_LOG,
};
pub use compression::CompressionConfig;
pub use control::{is_name as is_control_name, ControlConfig};
pub use geo::{ClientConfig, GeoConfig, GeoMode};
pub use sites::{
    Balance, CookieMode, HeaderEdits, OriginGroupConfig, RateLimitConfig, RedirectConfig,
    RespondConfig, ServerConfig, SetCookieMode, SiteCacheConfig, SiteConfig, SiteKeyConfig,
    StatusMatch, DEFAULT_GROUP, DEFAULT_SITE,
};
pub use units::{format_duration, format_size, parse_duration, parse_size, MAX_DURATION};
pub use validate::parse_host_port;
pub use validate_sites::{
    MAX_GROUPS, MAX_KEY_FIELDS, MAX_NAME_LEN, MAX_RATE, MAX_RATE_CLIENTS, MAX_SERVER_WEIGHT,
    MAX_SITES,
};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub listen: Vec<ListenConfig>,
    pub origin: Vec<OriginConfig>,
    /// Named pools of origins for `[[site]]`s.
    pub origin_group: Vec<OriginGroupConfig>,
    /// Routing rules by host and path, first match wins; see `sites`.
    pub site: Vec<SiteConfig>,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub client: ClientConfig,
    pub geo: GeoConfig,
    pub cluster: ClusterConfig,
    /// Compression at the edge (`crate::compress`).
    pub compression: CompressionConfig,
    /// The control plane across PoPs (`crate::control`).
    pub control: ControlConfig,
    /// The file this configuration was loaded from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: NodeConfig::default(),
            listen: vec![ListenConfig::default()],
            origin: Vec::new(),
            origin_group: Vec::new(),
            site: Vec::new(),
            upstream: UpstreamConfig::default(),
            cache: CacheConfig::default(),
            limits: LimitsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            client: ClientConfig::default(),
            geo: GeoConfig::default(),
            cluster: ClusterConfig::default(),
            compression: CompressionConfig::default(),
            control: ControlConfig::default(),
            source: None,
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths in it
    /// (TLS files, token file) are resolved against the file's directory, so
    /// the result does not depend on the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(ConfigError::new(&file, None, format!("cannot read: {e}")))
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut config = parse::parse(&text, &file, base)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates configuration text; `file_name` only labels
    /// errors. Relative paths are left relative (to the working directory).
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
        parse::parse(text, file_name, None)
    }

    /// Quick mode, like `varnishd -a ADDR -b ORIGIN`: defaults plus one
    /// listener and the given `host:port` origins.
    pub fn quick(listen: SocketAddr, origins: &[String]) -> Result<Config, ConfigErrors> {
        let config = Config {
            listen: vec![ListenConfig {
                address: listen,
                tls: None,
                proxy_protocol: false,
            }],
            origin: origins
                .iter()
                .map(|address| OriginConfig {
                    address: address.clone(),
                    ..OriginConfig::default()
                })
                .collect(),
            ..Config::default()
        };
        let errors = validate::validate(&config, &parse::Locator::none("command line"));
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors { errors })
        }
    }
}

/// Used by `lacquer check-config FILE`; identical to [`Config::load`].
pub fn check_config(path: &Path) -> Result<Config, ConfigErrors> {
    Config::load(path)
}

/// Every problem found in a configuration, one per line when displayed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_errors(&self.errors))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    fn single(error: ConfigError) -> ConfigErrors {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

fn render_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem: `file:line: message`, or `file: message` when no line applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line of the offending key or value.
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(file: &str, line: Option<usize>, message: String) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) if line > 0 => write!(f, "{}:{}: {}", self.file, line, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// This node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Shown in `Via` (RFC 9110 §7.6.3) and logs, so it must be a token.
    pub name: String,
    pub role: Role,
    /// Point-of-presence label, e.g. "fra1"; used in metrics and logs.
    pub pop: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "lacquer".to_string(),
            role: Role::Standalone,
            pop: None,
        }
    }
}

/// How this node participates in a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Caches and talks to origins directly.
    #[default]
    Standalone,
    /// Client-facing node in a tiered deployment.
    Edge,
    /// Holds a slice of the cache and talks to origins.
    Shard,
}

/// One public listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    #[serde(deserialize_with = "units::de_socket_addr")]
    pub address: SocketAddr,
    pub tls: Option<TlsConfig>,
    /// Expect a PROXY protocol v1/v2 header on every connection (behind a TCP load
    /// balancer); its client address is believed only from `[client] trusted_proxies`.
    pub proxy_protocol: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            tls: None,
            proxy_protocol: false,
        }
    }
}

/// PEM certificate chain and private key for a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// More certificates on the same listener, chosen by the client's SNI name; the one
    /// above is the default for clients without SNI or with an unknown name.
    pub sni: Vec<CertFiles>,
}

/// One more certificate chain and key for a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsConfig {
    /// Every (cert, key) pair of the listener, the default first.
    pub fn pairs(&self) -> Vec<(PathBuf, PathBuf)> {
        std::iter::once((self.cert.clone(), self.key.clone()))
            .chain(self.sni.iter().map(|c| (c.cert.clone(), c.key.clone())))
            .collect()
    }
}

/// One origin server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// `host:port`; IPv6 literals in brackets.
    pub address: String,
    pub weight: u32,
    pub health: HealthConfig,
    /// Talk HTTPS to this origin.
    pub tls: bool,
    /// Name sent as SNI and verified in the origin's certificate (default: the host
    /// part of `address`).
    pub sni: Option<String>,
    /// PEM file of CA certificates to trust for this origin (default: the system's).
    pub ca_file: Option<PathBuf>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            address: String::new(),
            weight: 1,
            health: HealthConfig::default(),
            tls: false,
            sni: None,
            ca_file: None,
        }
    }
}

/// Active health checking of an origin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub enabled: bool,
    pub path: String,
    #[serde(deserialize_with = "units::de_duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub timeout: Duration,
    /// Consecutive failures before the origin is marked down.
    pub fall: u32,
    /// Consecutive successes before a down origin is marked up again.
    pub rise: u32,
    /// Acceptable status codes; empty means any 2xx or 3xx.
    pub expect_status: Vec<u16>,
    /// Passive health: consecutive failed requests (connect error, first-byte timeout,
    /// 5xx when `passive_5xx`) that take the origin out of rotation; 0 turns it off.
    pub passive_fall: u32,
    /// How long a passively failed origin gets no traffic before one probe request.
    #[serde(deserialize_with = "units::de_duration")]
    pub passive_cooldown: Duration,
    /// Whether a 5xx answer counts as a failed request for passive health.
    pub passive_5xx: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            path: "/".to_string(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 3,
            rise: 2,
            expect_status: Vec::new(),
            passive_fall: 5,
            passive_cooldown: Duration::from_secs(10),
            passive_5xx: true,
        }
    }
}

/// Connections to origins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    #[serde(deserialize_with = "units::de_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub first_byte_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub between_bytes_timeout: Duration,
    /// Longest silence of a `text/event-stream` response (server-sent events), which
    /// `between_bytes_timeout` would cut between events.
    #[serde(deserialize_with = "units::de_duration")]
    pub stream_idle_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_origin: usize,
    /// Retry idempotent requests once on another connection/origin.
    pub retry: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(3),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(300),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_origin: 256,
            retry: true,
        }
    }
}

/// The cache and its freshness defaults (RFC 9111).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    #[serde(deserialize_with = "units::de_size")]
    pub memory: u64,
    #[serde(deserialize_with = "units::de_size")]
    pub max_object_size: u64,
    #[serde(deserialize_with = "units::de_duration")]
    pub default_grace: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub default_stale_if_error: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub default_keep: Duration,
    pub heuristic_fraction: f64,
    #[serde(deserialize_with = "units::de_duration")]
    pub heuristic_max: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub hit_for_miss_ttl: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub coalesce_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub stale_on_slow: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub error_backoff: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub error_ttl: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub max_error_ttl: Duration,
    pub max_waiters: usize,
    pub max_variants: usize,
    pub cookie_requests: CookiePolicy,
    pub surrogate_control: bool,
    pub key: KeyConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory: 256 * MIB,
            max_object_size: 16 * MIB,
            default_grace: Duration::ZERO,
            default_stale_if_error: Duration::from_secs(3600),
            default_keep: Duration::from_secs(3600),
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            hit_for_miss_ttl: Duration::from_secs(30),
            coalesce_timeout: Duration::from_secs(15),
            stale_on_slow: Duration::from_secs(2),
            error_backoff: Duration::from_secs(1),
            error_ttl: Duration::ZERO,
            max_error_ttl: Duration::from_secs(5),
            max_waiters: 10_000,
            max_variants: 32,
            cookie_requests: CookiePolicy::Pass,
            surrogate_control: true,
            key: KeyConfig::default(),
        }
    }
}

/// What to do with requests carrying a `Cookie` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookiePolicy {
    /// Bypass the cache: cookies usually mean a personalised response.
    #[default]
    Pass,
    /// Cache as usual; the origin must mark personalised responses private.
    Cache,
}

/// How the cache key is built from the request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    pub query: QueryMode,
    /// Query parameters removed from the key (tracking parameters).
    pub drop_params: Vec<String>,
    pub ignore_host: bool,
}

/// Treatment of the query string in the cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryMode {
    /// Use the query string as sent.
    #[default]
    Keep,
    /// Sort parameters so `?a=1&b=2` and `?b=2&a=1` share an entry.
    Sort,
    /// Ignore the query string entirely.
    Drop,
}

/// Bounds on what clients may send and hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// All header fields (names, values and their separators), on both protocols.
    #[serde(deserialize_with = "units::de_size_usize")]
    pub max_header_bytes: usize,
    /// The request target (URI); longer gets 414.
    #[serde(deserialize_with = "units::de_size_usize")]
    pub max_uri_bytes: usize,
    pub max_headers: usize,
    #[serde(deserialize_with = "units::de_size")]
    pub max_body: u64,
    #[serde(deserialize_with = "units::de_duration")]
    pub header_read_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub idle_timeout: Duration,
    #[serde(deserialize_with = "units::de_duration")]
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub h2_max_streams: u32,
    /// Per HTTP/2 stream: response bytes queued for a client that does not read, and
    /// request bytes a client may send before the node reads them.
    #[serde(deserialize_with = "units::de_size_usize")]
    pub h2_stream_buffer: usize,
    /// PING, SETTINGS and PRIORITY frames a client may send per second on one
    /// connection before it gets GOAWAY.
    pub h2_max_control_frames_per_sec: u32,
    #[serde(deserialize_with = "units::de_duration")]
    pub drain_timeout: Duration,
    /// A WebSocket tunnel with no byte either way for this long is closed.
    #[serde(deserialize_with = "units::de_duration")]
    pub tunnel_idle_timeout: Duration,
    /// Tunnels open at once; past it an upgrade request gets 503.
    pub max_tunnels: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_bytes: (32 * KIB) as usize,
            max_uri_bytes: (8 * KIB) as usize,
            max_headers: 100,
            max_body: 100 * MIB,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            h2_max_streams: 100,
            h2_stream_buffer: (64 * KIB) as usize,
            h2_max_control_frames_per_sec: 100,
            drain_timeout: Duration::from_secs(30),
            tunnel_idle_timeout: Duration::from_secs(600),
            max_tunnels: 10_000,
        }
    }
}

/// Admin endpoints the token is not required for.
pub const OPEN_ENDPOINTS: [&str; 3] = ["health", "ready", "metrics"];

/// The admin HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "units::de_socket_addr")]
    pub address: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub open: Vec<String>,
    #[serde(deserialize_with = "units::de_size")]
    pub max_body: u64,
    pub purge_allowed: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6082),
            token_file: None,
            open: OPEN_ENDPOINTS.iter().map(|s| s.to_string()).collect(),
            max_body: 8 * MIB,
            purge_allowed: vec!["127.0.0.1/32".to_string(), "::1/128".to_string()],
        }
    }
}

/// Largest token file accepted; a token is a short secret, not a document.
pub const MAX_TOKEN_FILE: u64 = 4096;

impl AdminConfig {
    /// `purge_allowed` parsed. Entries that do not parse are skipped; a
    /// validated configuration has none.
    pub fn purge_cidrs(&self) -> Vec<Cidr> {
        self.purge_allowed
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Reads the admin token (surrounding whitespace trimmed), `None` when no
    /// `token_file` is configured. Fails if the file is unreadable, larger
    /// than [`MAX_TOKEN_FILE`], not UTF-8 or blank.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        validate::read_token_file(path).map(Some)
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level or `tracing` filter directive; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
    /// Name the site that served each response in `X-Lacquer-Site` (for debugging).
    pub site_header: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Plain,
            access_log: true,
            site_header: false,
        }
    }
}

/// Log line encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sites;
