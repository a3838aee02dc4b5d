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

/// How the client's address is found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Proxies (CIDR) whose `X-Forwarded-For` and PROXY protocol headers are
    /// believed. Empty: the TCP peer is always the client.
    pub trusted_proxies: Vec<String>,
}

impl ClientConfig {
    /// `trusted_proxies` parsed; a validated configuration has no bad entry.
    pub fn trusted_cidrs(&self) -> Vec<Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}
