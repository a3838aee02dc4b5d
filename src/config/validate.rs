//! Semantic checks that serde cannot express. Every check runs; all failures
//! are returned together.

use std::collections::HashSet;
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use super::parse::Locator;
use super::units::format_size;
use super::{Cidr, Config, ConfigError, Role, MAX_TOKEN_FILE, OPEN_ENDPOINTS};

pub(super) struct Checker<'a, 'l> {
    pub(super) at: &'a Locator<'l>,
    errors: Vec<ConfigError>,
}

impl Checker<'_, '_> {
    pub(super) fn fail(&mut self, path: &str, message: String) {
        self.errors.push(self.at.error(path, message));
    }

    pub(super) fn nonzero_duration(&mut self, path: &str, value: Duration) {
        if value.is_zero() {
            self.fail(path, format!("{path} must be greater than 0"));
        }
    }

    pub(super) fn nonzero(&mut self, path: &str, value: u64) {
        if value == 0 {
            self.fail(path, format!("{path} must be greater than 0"));
        }
    }
}

pub(crate) fn validate(config: &Config, at: &Locator<'_>) -> Vec<ConfigError> {
    let mut c = Checker {
        at,
        errors: Vec::new(),
    };
    check_node(&mut c, config);
    check_listen(&mut c, config);
    check_origins(&mut c, config);
    super::validate_sites::check(&mut c, config);
    check_upstream(&mut c, config);
    check_cache(&mut c, config);
    check_limits(&mut c, config);
    check_admin(&mut c, config);
    check_log(&mut c, config);
    check_client(&mut c, config);
    check_geo(&mut c, config);
    check_cluster(&mut c, config);
    super::compression::check(&mut c, &config.compression);
    super::control::check(&mut c, &config.control);
    c.errors
}

fn check_node(c: &mut Checker<'_, '_>, config: &Config) {
    // The name goes into `Via` as a pseudonym, which must be a token
    // (RFC 9110 §7.6.3, §5.6.2).
    if !is_token(&config.node.name) {
        c.fail(
            "node.name",
            format!(
                "node.name {:?} must be non-empty and contain only letters, digits and -._~!#$%&'*+^`|",
                config.node.name
            ),
        );
    }
    if let Some(pop) = &config.node.pop {
        if !is_token(pop) {
            c.fail(
                "node.pop",
                format!("node.pop {pop:?} must be a non-empty token without spaces"),
            );
        }
    }
}

fn check_listen(c: &mut Checker<'_, '_>, config: &Config) {
    if config.listen.is_empty() {
        c.fail(
            "listen",
            "at least one [[listen]] address is required".to_string(),
        );
    }
    let mut seen = HashSet::new();
    for (i, listen) in config.listen.iter().enumerate() {
        let path = format!("listen[{i}]");
        // Port 0 asks the OS for a fresh port each time, so it never collides.
        if listen.address.port() != 0 && !seen.insert(listen.address) {
            c.fail(
                &format!("{path}.address"),
                format!("{path}.address {} is listed more than once", listen.address),
            );
        }
        if config.admin.enabled
            && listen.address.port() != 0
            && listen.address == config.admin.address
        {
            c.fail(
                &format!("{path}.address"),
                format!("{path}.address {} is also admin.address", listen.address),
            );
        }
        if let Some(tls) = &listen.tls {
            let mut files = vec![
                (format!("{path}.tls.cert"), &tls.cert),
                (format!("{path}.tls.key"), &tls.key),
            ];
            for (i, extra) in tls.sni.iter().enumerate() {
                files.push((format!("{path}.tls.sni[{i}].cert"), &extra.cert));
                files.push((format!("{path}.tls.sni[{i}].key"), &extra.key));
            }
            for (key, file) in files {
                if file.as_os_str().is_empty() {
                    c.fail(
                        &key,
                        format!("{key} is required when [{path}.tls] is present"),
                    );
                } else if !file.is_file() {
                    c.fail(
                        &key,
                        format!("{key}: file {} does not exist", file.display()),
                    );
                }
            }
        }
    }
}

fn check_origins(c: &mut Checker<'_, '_>, config: &Config) {
    // With [[site]]s the top-level list is only the default group, which the site
    // checks require where a site needs it; a request no site matches is answered
    // 421/404 rather than sent to it.
    if config.origin.is_empty() && config.node.role != Role::Edge && config.site.is_empty() {
        let role = match config.node.role {
            Role::Shard => "shard",
            _ => "standalone",
        };
        // Point at an explicit `origin = []`, else at the role that needs one.
        let path = if c.at.has_top_level("origin") {
            "origin"
        } else {
            "node.role"
        };
        c.fail(
            path,
            format!("at least one [[origin]] is required for role {role}"),
        );
    }
    let mut seen = HashSet::new();
    for (i, origin) in config.origin.iter().enumerate() {
        let path = format!("origin[{i}]");
        match parse_host_port(&origin.address) {
            Ok(_) if !seen.insert(origin.address.to_ascii_lowercase()) => c.fail(
                &format!("{path}.address"),
                format!(
                    "{path}.address {:?} is listed more than once",
                    origin.address
                ),
            ),
            Ok(_) => {}
            Err(e) => c.fail(&format!("{path}.address"), format!("{path}.address: {e}")),
        }
        if origin.weight == 0 {
            c.fail(
                &format!("{path}.weight"),
                format!("{path}.weight must be greater than 0"),
            );
        }
        if let Some(ca) = &origin.ca_file {
            if !ca.is_file() {
                c.fail(
                    &format!("{path}.ca_file"),
                    format!("{path}.ca_file: file {} does not exist", ca.display()),
                );
            }
        }
        if let Some(sni) = &origin.sni {
            if rustls_pki_types::ServerName::try_from(sni.as_str()).is_err() {
                c.fail(
                    &format!("{path}.sni"),
                    format!("{path}.sni {sni:?} is not a valid server name"),
                );
            }
        }
        check_health(c, &format!("{path}.health"), &origin.health);
    }
}

pub(super) fn check_health(c: &mut Checker<'_, '_>, p: &str, h: &super::HealthConfig) {
    // The path is sent verbatim as a request-target (RFC 9112 §3.2.1,
    // origin-form), so it must start with '/' and hold only visible ASCII.
    if !h.path.starts_with('/') || !h.path.bytes().all(|b| b.is_ascii_graphic()) {
        c.fail(
            &format!("{p}.path"),
            format!(
                "{p}.path {:?} must start with '/' and contain no spaces or control characters",
                h.path
            ),
        );
    }
    c.nonzero_duration(&format!("{p}.interval"), h.interval);
    c.nonzero_duration(&format!("{p}.timeout"), h.timeout);
    c.nonzero(&format!("{p}.fall"), u64::from(h.fall));
    c.nonzero(&format!("{p}.rise"), u64::from(h.rise));
    c.nonzero_duration(&format!("{p}.passive_cooldown"), h.passive_cooldown);
    for status in &h.expect_status {
        if !(100..=599).contains(status) {
            c.fail(
                &format!("{p}.expect_status"),
                format!("{p}.expect_status: {status} is not an HTTP status code (100-599)"),
            );
        }
    }
}

fn check_upstream(c: &mut Checker<'_, '_>, config: &Config) {
    let u = &config.upstream;
    c.nonzero_duration("upstream.connect_timeout", u.connect_timeout);
    c.nonzero_duration("upstream.first_byte_timeout", u.first_byte_timeout);
    c.nonzero_duration("upstream.between_bytes_timeout", u.between_bytes_timeout);
    c.nonzero_duration("upstream.stream_idle_timeout", u.stream_idle_timeout);
    c.nonzero_duration("upstream.pool_idle_timeout", u.pool_idle_timeout);
}

fn check_cache(c: &mut Checker<'_, '_>, config: &Config) {
    let k = &config.cache;
    c.nonzero("cache.max_object_size", k.max_object_size);
    if k.max_object_size > k.memory {
        c.fail(
            "cache.max_object_size",
            format!(
                "cache.max_object_size ({}) is larger than cache.memory ({})",
                format_size(k.max_object_size),
                format_size(k.memory)
            ),
        );
    }
    if !(0.0..=1.0).contains(&k.heuristic_fraction) {
        c.fail(
            "cache.heuristic_fraction",
            format!(
                "cache.heuristic_fraction ({}) must be between 0 and 1",
                k.heuristic_fraction
            ),
        );
    }
    c.nonzero_duration("cache.coalesce_timeout", k.coalesce_timeout);
    if k.error_ttl > k.max_error_ttl {
        c.fail(
            "cache.error_ttl",
            format!(
                "cache.error_ttl ({:?}) is longer than cache.max_error_ttl ({:?}), which caps every stored 5xx",
                k.error_ttl, k.max_error_ttl
            ),
        );
    }
    c.nonzero("cache.max_waiters", k.max_waiters as u64);
    c.nonzero("cache.max_variants", k.max_variants as u64);
    for (i, param) in k.key.drop_params.iter().enumerate() {
        if param.is_empty()
            || param.contains(['&', '=', '#'])
            || param.chars().any(char::is_whitespace)
        {
            c.fail(
                &format!("cache.key.drop_params[{i}]"),
                format!("cache.key.drop_params: {param:?} is not a query parameter name"),
            );
        }
    }
}

fn check_limits(c: &mut Checker<'_, '_>, config: &Config) {
    let l = &config.limits;
    // Below ~1KiB ordinary browsers' request headers no longer fit.
    if l.max_header_bytes < 1024 {
        c.fail(
            "limits.max_header_bytes",
            format!(
                "limits.max_header_bytes ({}) must be at least 1KiB",
                format_size(l.max_header_bytes as u64)
            ),
        );
    }
    // Below ~256B ordinary page URLs no longer fit; above 64KiB hyper's own bound applies.
    if !(256..=64 * 1024).contains(&l.max_uri_bytes) {
        c.fail(
            "limits.max_uri_bytes",
            format!(
                "limits.max_uri_bytes ({}) must be between 256B and 64KiB",
                format_size(l.max_uri_bytes as u64)
            ),
        );
    }
    // Below one full-size frame (16KiB) HTTP/2 uploads and downloads stall on every frame.
    if !(16 * 1024..=16 * 1024 * 1024).contains(&l.h2_stream_buffer) {
        c.fail(
            "limits.h2_stream_buffer",
            format!(
                "limits.h2_stream_buffer ({}) must be between 16KiB and 16MiB",
                format_size(l.h2_stream_buffer as u64)
            ),
        );
    }
    c.nonzero(
        "limits.h2_max_control_frames_per_sec",
        u64::from(l.h2_max_control_frames_per_sec),
    );
    c.nonzero("limits.max_headers", l.max_headers as u64);
    c.nonzero_duration("limits.header_read_timeout", l.header_read_timeout);
    c.nonzero_duration("limits.idle_timeout", l.idle_timeout);
    c.nonzero_duration("limits.body_read_timeout", l.body_read_timeout);
    c.nonzero("limits.max_connections", l.max_connections as u64);
    c.nonzero("limits.h2_max_streams", u64::from(l.h2_max_streams));
    c.nonzero_duration("limits.tunnel_idle_timeout", l.tunnel_idle_timeout);
}

fn check_admin(c: &mut Checker<'_, '_>, config: &Config) {
    let a = &config.admin;
    for (i, name) in a.open.iter().enumerate() {
        if !OPEN_ENDPOINTS.contains(&name.as_str()) {
            c.fail(
                &format!("admin.open[{i}]"),
                format!(
                    "admin.open: {name:?} is not one of \"health\", \"ready\", \"metrics\" (other endpoints always need the token)"
                ),
            );
        }
    }
    for (i, cidr) in a.purge_allowed.iter().enumerate() {
        if let Err(e) = cidr.parse::<Cidr>() {
            c.fail(
                &format!("admin.purge_allowed[{i}]"),
                format!("admin.purge_allowed: {e}"),
            );
        }
    }
    if !a.enabled {
        return;
    }
    c.nonzero("admin.max_body", a.max_body);
    if let Some(path) = &a.token_file {
        if let Err(e) = read_token_file(path) {
            c.fail("admin.token_file", format!("admin.token_file: {e}"));
        }
    }
}

fn check_log(c: &mut Checker<'_, '_>, config: &Config) {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level = config.log.level.trim();
    // Anything with a directive separator is a full filter, checked by the
    // subscriber itself; a lone word must be a level, catching "infos".
    let is_directive = level.contains(['=', ',', ':', '[']);
    if level.is_empty() || (!is_directive && !LEVELS.contains(&level.to_ascii_lowercase().as_str()))
    {
        c.fail(
            "log.level",
            format!(
                "log.level {:?} must be one of trace, debug, info, warn, error, off (or a filter like \"info,lacquer=debug\")",
                config.log.level
            ),
        );
    }
}

fn check_client(c: &mut Checker<'_, '_>, config: &Config) {
    for (i, cidr) in config.client.trusted_proxies.iter().enumerate() {
        if let Err(e) = cidr.parse::<Cidr>() {
            c.fail(
                &format!("client.trusted_proxies[{i}]"),
                format!("client.trusted_proxies: {e}"),
            );
        }
    }
    let names = &config.client.unkeyed_headers;
    if names.len() > super::geo::MAX_UNKEYED_HEADERS {
        c.fail(
            "client.unkeyed_headers",
            format!(
                "client.unkeyed_headers: {} names, at most {} allowed",
                names.len(),
                super::geo::MAX_UNKEYED_HEADERS
            ),
        );
    }
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let problem = if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            Some("is not a valid header field name")
        } else if super::geo::UNSTRIPPABLE_HEADERS.contains(&lower.as_str()) {
            Some("cannot be stripped (the request needs it, or lacquer sets it itself)")
        } else {
            None
        };
        if let Some(problem) = problem {
            c.fail(
                &format!("client.unkeyed_headers[{i}]"),
                format!("client.unkeyed_headers: {name:?} {problem}"),
            );
        }
    }
}

/// The PoP table is loaded here too, so that `check-config` catches a broken
/// table or a `default_pop` / `node.pop` it does not list before a node
/// starts with it.
fn check_geo(c: &mut Checker<'_, '_>, config: &Config) {
    let g = &config.geo;
    if !g.enabled {
        return;
    }
    c.nonzero_duration("geo.health_interval", g.health_interval);
    c.nonzero_duration("geo.health_timeout", g.health_timeout);
    c.nonzero_duration("geo.reload_interval", g.reload_interval);
    match &g.mmdb {
        None => c.fail(
            "geo.mmdb",
            "geo.mmdb (a GeoIP2/GeoLite2 City .mmdb file) is required when geo is enabled"
                .to_string(),
        ),
        Some(path) if !path.is_file() => c.fail(
            "geo.mmdb",
            format!("geo.mmdb: file {} does not exist", path.display()),
        ),
        Some(_) => {}
    }
    let table = match crate::geo::pops::PopTable::load(&g.pops) {
        Ok(t) => Some(t),
        Err(e) => {
            c.fail("geo.pops", format!("geo.pops: {e}"));
            None
        }
    };
    let listed = |name: &str| table.as_ref().map_or(true, |t| t.get(name).is_some());
    match &g.default_pop {
        None => c.fail(
            "geo.default_pop",
            "geo.default_pop is required when geo is enabled".to_string(),
        ),
        Some(name) if !listed(name) => c.fail(
            "geo.default_pop",
            format!("geo.default_pop {name:?} is not in {}", g.pops.display()),
        ),
        Some(_) => {}
    }
    match &config.node.pop {
        None => c.fail(
            "node.pop",
            "node.pop (this node's PoP in the geo PoP table) is required when geo is enabled"
                .to_string(),
        ),
        Some(name) if !listed(name) => c.fail(
            "node.pop",
            format!("node.pop {name:?} is not in {}", g.pops.display()),
        ),
        Some(_) => {}
    }
}

/// The peer list is checked even when the cluster is disabled, so a list being
/// prepared is already known to be good when it is switched on.
fn check_cluster(c: &mut Checker<'_, '_>, config: &Config) {
    use super::{PeerRole, MAX_FANOUT_RETRIES, MAX_PEERS, MAX_PEER_WEIGHT, MAX_PURGE_LOG};
    let k = &config.cluster;
    if k.peers.len() > MAX_PEERS {
        c.fail(
            "cluster.peers",
            format!(
                "cluster.peers has {} entries; at most {MAX_PEERS}",
                k.peers.len()
            ),
        );
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, peer) in k.peers.iter().enumerate() {
        let path = format!("cluster.peers[{i}]");
        // Names go into the hop marker header and metric labels.
        if !is_token(&peer.name) {
            c.fail(
                &format!("{path}.name"),
                format!(
                    "{path}.name {:?} must be the peer's node.name: a non-empty token",
                    peer.name
                ),
            );
        } else if !names.insert(peer.name.as_str()) {
            c.fail(
                &format!("{path}.name"),
                format!("{path}.name {:?} is listed more than once", peer.name),
            );
        }
        for (field, value) in [("address", &peer.address), ("admin", &peer.admin)] {
            match parse_host_port(value) {
                Ok(_) if !addresses.insert(value.to_ascii_lowercase()) => c.fail(
                    &format!("{path}.{field}"),
                    format!("{path}.{field} {value:?} is used more than once"),
                ),
                Ok(_) => {}
                Err(e) => c.fail(&format!("{path}.{field}"), format!("{path}.{field}: {e}")),
            }
        }
        if !(1..=MAX_PEER_WEIGHT).contains(&peer.weight) {
            c.fail(
                &format!("{path}.weight"),
                format!("{path}.weight must be from 1 to {MAX_PEER_WEIGHT}"),
            );
        }
    }
    // The health path is sent verbatim as a request-target (RFC 9112 §3.2.1).
    if !k.health_path.starts_with('/') || !k.health_path.bytes().all(|b| b.is_ascii_graphic()) {
        c.fail(
            "cluster.health_path",
            format!(
                "cluster.health_path {:?} must start with '/' and contain no spaces or control characters",
                k.health_path
            ),
        );
    }
    c.nonzero_duration("cluster.health_interval", k.health_interval);
    c.nonzero_duration("cluster.health_timeout", k.health_timeout);
    c.nonzero_duration("cluster.connect_timeout", k.connect_timeout);
    c.nonzero_duration("cluster.fanout_timeout", k.fanout_timeout);
    c.nonzero_duration("cluster.purge_deadline", k.purge_deadline);
    c.nonzero_duration("cluster.first_byte_timeout", k.first_byte_timeout);
    c.nonzero("cluster.fall", u64::from(k.fall));
    c.nonzero("cluster.rise", u64::from(k.rise));
    if k.fanout_retries > MAX_FANOUT_RETRIES {
        c.fail(
            "cluster.fanout_retries",
            format!("cluster.fanout_retries must be at most {MAX_FANOUT_RETRIES}"),
        );
    }
    if !(1..=MAX_PURGE_LOG).contains(&k.purge_log_size) {
        c.fail(
            "cluster.purge_log_size",
            format!("cluster.purge_log_size must be from 1 to {MAX_PURGE_LOG}"),
        );
    }
    if let Some(path) = &k.token_file {
        if let Err(e) = read_token_file(path) {
            c.fail("cluster.token_file", format!("cluster.token_file: {e}"));
        }
    }
    if let Some(dir) = &k.state_dir {
        if dir.exists() && !dir.is_dir() {
            c.fail(
                "cluster.state_dir",
                format!("cluster.state_dir {}: not a directory", dir.display()),
            );
        }
    }
    if !k.enabled {
        return;
    }
    if !k.peers.iter().any(|p| p.role == PeerRole::Shard) {
        c.fail(
            "cluster.peers",
            "cluster.peers needs at least one peer with role \"shard\" when the cluster is enabled"
                .to_string(),
        );
    }
    let me = k.peers.iter().find(|p| p.name == config.node.name);
    match (config.node.role, me.map(|p| p.role)) {
        (Role::Shard, Some(PeerRole::Shard)) | (Role::Edge, None | Some(PeerRole::Edge)) => {}
        (Role::Shard, _) => c.fail(
            "node.name",
            format!(
                "node.name {:?} must be listed in cluster.peers with role \"shard\": edges only send a shard the keys the ring gives it",
                config.node.name
            ),
        ),
        (Role::Edge, Some(PeerRole::Shard)) => c.fail(
            "node.name",
            format!(
                "node.name {:?} is an edge but cluster.peers lists it as a shard",
                config.node.name
            ),
        ),
        (Role::Standalone, _) => c.fail(
            "node.role",
            "node.role must be \"edge\" or \"shard\" when [cluster] is enabled".to_string(),
        ),
    }
}

pub(crate) fn read_token_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!("{shown} is larger than {MAX_TOKEN_FILE} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(token.to_string())
}

/// RFC 9110 §5.6.2 `token`.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits an origin `host:port` (IPv6 literals in brackets) into host and
/// port, rejecting anything that is not a plain authority with a port.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err("address is required (\"host:port\")".to_string());
    }
    if s.contains("://") {
        return Err(format!(
            "{s:?} must be host:port without a scheme, e.g. \"127.0.0.1:9000\""
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (literal, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{s:?} must be [IPv6]:port, e.g. \"[::1]:9000\""))?;
        literal
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("{s:?}: {literal:?} is not an IPv6 address"))?;
        (literal, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is missing a port, expected host:port"))?;
        if host.contains(':') {
            return Err(format!(
                "{s:?}: IPv6 addresses must be in brackets, e.g. \"[::1]:9000\""
            ));
        }
        if !is_hostname(host) {
            return Err(format!(
                "{s:?}: {host:?} is not a valid host name or IPv4 address"
            ));
        }
        (host, port)
    };
    let port = (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{s:?}: port must be a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

/// Letters, digits, '-', '_' and '.' in non-empty labels (RFC 1123 §2.1,
/// plus '_' which appears in real internal names); IPv4 literals also pass.
fn is_hostname(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:9000").unwrap(),
            ("127.0.0.1".to_string(), 9000)
        );
        assert_eq!(
            parse_host_port("origin.example:80").unwrap(),
            ("origin.example".to_string(), 80)
        );
        assert_eq!(
            parse_host_port("[::1]:8080").unwrap(),
            ("::1".to_string(), 8080)
        );
        assert_eq!(parse_host_port("my_backend:1").unwrap().1, 1);
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "http://host:80",
            "::1:80",
            "[::1]",
            "[::1]80",
            "[nope]:80",
            "-bad:80",
            "a..b:80",
            "sp ace:80",
            ":80",
            "host:80/x",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn token_chars() {
        assert!(is_token("edge-fra1.example"));
        assert!(!is_token(""));
        assert!(!is_token("has space"));
        assert!(!is_token("a,b"));
    }
}
