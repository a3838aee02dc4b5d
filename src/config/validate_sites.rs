//! Checks of `[[origin_group]]` and `[[site]]`: names, servers, match conditions,
//! answers, access, header edits and cache policy, and that every site can match.
//! Template strings (header values, redirect locations) are parsed by
//! `crate::site::template`, the same parser the request path uses.

use std::collections::HashSet;

use super::site_cover;
use super::validate::{check_health, is_token, parse_host_port, Checker};
use super::{
    Cidr, Config, CookieMode, HeaderEdits, Role, SiteCacheConfig, SiteConfig, SiteKeyConfig,
    DEFAULT_GROUP, DEFAULT_SITE,
};
use crate::site::host::HostPattern;

/// Most `[[site]]`s; the router and the unreachable-site check are sized for this.
pub const MAX_SITES: usize = 10_000;
/// Most `[[origin_group]]`s.
pub const MAX_GROUPS: usize = 1_000;
/// Longest site or group name; names become metric labels and log fields.
pub const MAX_NAME_LEN: usize = 64;
/// Largest server weight in a group, as for cluster peers.
pub const MAX_SERVER_WEIGHT: u32 = 100;
/// Most header fields, and most cookies, in a site's cache key.
pub const MAX_KEY_FIELDS: usize = 32;
/// Highest rate limit, in requests per second; a higher one is no limit at all.
pub const MAX_RATE: f64 = 1e9;
/// Most clients one site's rate limiter tracks.
pub const MAX_RATE_CLIENTS: usize = 10_000_000;

const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

pub(super) fn check(c: &mut Checker<'_, '_>, config: &Config) {
    check_groups(c, config);
    check_sites(c, config);
}

fn check_name(c: &mut Checker<'_, '_>, path: &str, name: &str) -> bool {
    let problem = if name.is_empty() {
        "a name is required".to_string()
    } else if name.len() > MAX_NAME_LEN {
        format!("{name:?} is longer than {MAX_NAME_LEN} characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        format!("{name:?} may contain only letters, digits, '-' and '_'")
    } else {
        return true;
    };
    c.fail(&format!("{path}.name"), format!("{path}.name: {problem}"));
    false
}

fn check_groups(c: &mut Checker<'_, '_>, config: &Config) {
    let groups = &config.origin_group;
    if groups.len() > MAX_GROUPS {
        c.fail(
            "origin_group",
            format!(
                "origin_group: {} groups; at most {MAX_GROUPS} are allowed",
                groups.len()
            ),
        );
    }
    let mut names = HashSet::new();
    for (i, group) in groups.iter().enumerate() {
        let path = format!("origin_group[{i}]");
        let name = &group.name;
        if check_name(c, &path, name) {
            if name == DEFAULT_GROUP && !config.origin.is_empty() {
                c.fail(
                    &format!("{path}.name"),
                    format!("{path}.name: \"{DEFAULT_GROUP}\" is the group of the top-level [[origin]] list"),
                );
            } else if !names.insert(name.as_str()) {
                c.fail(
                    &format!("{path}.name"),
                    format!("{path}.name: another group is named {name:?}"),
                );
            }
        }
        if group.servers.is_empty() {
            c.fail(
                &format!("{path}.servers"),
                format!("{path}.servers: at least one server is required"),
            );
        }
        let mut seen = HashSet::new();
        for (j, server) in group.servers.iter().enumerate() {
            let sp = format!("{path}.servers[{j}]");
            match parse_host_port(&server.address) {
                Ok(_) if !seen.insert(server.address.to_ascii_lowercase()) => c.fail(
                    &format!("{sp}.address"),
                    format!(
                        "{sp}.address: {:?} is listed more than once",
                        server.address
                    ),
                ),
                Ok(_) => {}
                Err(e) => c.fail(&format!("{sp}.address"), format!("{sp}.address: {e}")),
            }
            if !(1..=MAX_SERVER_WEIGHT).contains(&server.weight) {
                c.fail(
                    &format!("{sp}.weight"),
                    format!("{sp}.weight: must be from 1 to {MAX_SERVER_WEIGHT}"),
                );
            }
        }
        if let Some(sni) = &group.sni {
            if rustls_pki_types::ServerName::try_from(sni.as_str()).is_err() {
                c.fail(
                    &format!("{path}.sni"),
                    format!("{path}.sni: {sni:?} is not a valid server name"),
                );
            }
        }
        if let Some(ca) = &group.ca_file {
            if !ca.is_file() {
                c.fail(
                    &format!("{path}.ca_file"),
                    format!("{path}.ca_file: file {} does not exist", ca.display()),
                );
            }
        }
        check_health(c, &format!("{path}.health"), &group.health);
    }
}

fn check_sites(c: &mut Checker<'_, '_>, config: &Config) {
    let sites = &config.site;
    if sites.len() > MAX_SITES {
        c.fail(
            "site",
            format!(
                "site: {} sites; at most {MAX_SITES} are allowed",
                sites.len()
            ),
        );
    }
    let mut groups: HashSet<&str> = config
        .origin_group
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    if !config.origin.is_empty() {
        groups.insert(DEFAULT_GROUP);
    }
    // An edge sends its misses to its tier, never to an origin.
    let has_default = groups.contains(DEFAULT_GROUP) || config.node.role == Role::Edge;
    let mut names = HashSet::new();
    for (i, site) in sites.iter().enumerate() {
        let path = format!("site[{i}]");
        let name = &site.name;
        if check_name(c, &path, name) {
            if name == DEFAULT_SITE && !config.origin.is_empty() {
                c.fail(
                    &format!("{path}.name"),
                    format!("{path}.name: \"{DEFAULT_SITE}\" is the site of the top-level [cache] and [[origin]]"),
                );
            } else if !names.insert(name.as_str()) {
                c.fail(
                    &format!("{path}.name"),
                    format!("{path}.name: another site is named {name:?}"),
                );
            }
        }
        check_answer(c, &path, site, &groups, has_default);
        check_match(c, &path, site);
        check_access(c, &path, site);
        let edits = [
            ("request_headers", &site.request_headers, true),
            ("response_headers", &site.response_headers, false),
        ];
        for (field, list, request) in edits {
            check_edits(c, &format!("{path}.{field}"), list, request);
        }
        check_cache(c, &format!("{path}.cache"), &site.cache, config);
        if let Some(idle) = site.tunnel_idle_timeout {
            c.nonzero_duration(&format!("{path}.tunnel_idle_timeout"), idle);
        }
    }
    if sites.len() <= MAX_SITES {
        for (later, earlier) in site_cover::unreachable(sites) {
            c.fail(
                &format!("site[{later}]"),
                format!(
                    "site[{later}] {:?} can never match: site[{earlier}] {:?} matches every request it would",
                    sites[later].name, sites[earlier].name
                ),
            );
        }
    }
}

/// Where the site's requests go: an origin group, a redirect or a fixed response.
fn check_answer(
    c: &mut Checker<'_, '_>,
    path: &str,
    site: &SiteConfig,
    groups: &HashSet<&str>,
    has_default: bool,
) {
    if site.redirect.is_some() && site.respond.is_some() {
        c.fail(
            &format!("{path}.respond"),
            format!("{path}: redirect and respond are exclusive; a site answers one way"),
        );
    }
    if let Some(r) = &site.redirect {
        if !REDIRECT_STATUSES.contains(&r.status) {
            c.fail(
                &format!("{path}.redirect.status"),
                format!(
                    "{path}.redirect.status: {} is not a redirect status (301, 302, 303, 307 or 308)",
                    r.status
                ),
            );
        }
        if r.location.is_empty() {
            c.fail(
                &format!("{path}.redirect.location"),
                format!("{path}.redirect.location: a location is required"),
            );
        } else if let Err(e) = crate::site::template::check(&r.location, false) {
            c.fail(
                &format!("{path}.redirect.location"),
                format!("{path}.redirect.location: {e}"),
            );
        }
    }
    if let Some(r) = &site.respond {
        if !(200..=599).contains(&r.status) {
            c.fail(
                &format!("{path}.respond.status"),
                format!(
                    "{path}.respond.status: {} must be from 200 to 599",
                    r.status
                ),
            );
        }
        // RFC 9110 §15.3.5, §15.3.6, §15.4.5: these carry no content.
        if matches!(r.status, 204 | 205 | 304) && !r.body.is_empty() {
            c.fail(
                &format!("{path}.respond.body"),
                format!("{path}.respond.body: a {} response has no body", r.status),
            );
        }
        if http::HeaderValue::from_str(&r.content_type).is_err() {
            c.fail(
                &format!("{path}.respond.content_type"),
                format!(
                    "{path}.respond.content_type: {:?} is not a valid header value",
                    r.content_type
                ),
            );
        }
    }
    let answers_itself = site.redirect.is_some() || site.respond.is_some();
    match &site.origin_group {
        Some(group) if !groups.contains(group.as_str()) => {
            let hint = if group == DEFAULT_GROUP {
                " (\"default\" is the top-level [[origin]] list, and there is none)"
            } else {
                ""
            };
            c.fail(
                &format!("{path}.origin_group"),
                format!("{path}.origin_group: no [[origin_group]] is named {group:?}{hint}"),
            );
        }
        None if !answers_itself && !has_default => c.fail(
            &format!("{path}.origin_group"),
            format!(
                "{path}.origin_group: required, as there is no top-level [[origin]] list (the default group) to send misses to"
            ),
        ),
        _ => {}
    }
}

fn check_match(c: &mut Checker<'_, '_>, path: &str, site: &SiteConfig) {
    for (k, host) in site.hosts.iter().enumerate() {
        if let Err(e) = HostPattern::parse(host) {
            c.fail(&format!("{path}.hosts[{k}]"), format!("{path}.hosts: {e}"));
        }
    }
    for (field, list) in [("paths", &site.paths), ("exact_paths", &site.exact_paths)] {
        for (k, p) in list.iter().enumerate() {
            let problem = if !p.starts_with('/') {
                "must start with '/'"
            } else if !p
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
            {
                "may hold only visible ASCII (percent-encode the rest) and no '?' or '#': the query is not part of the path"
            } else {
                continue;
            };
            c.fail(
                &format!("{path}.{field}[{k}]"),
                format!("{path}.{field}: {p:?} {problem}"),
            );
        }
    }
    for (k, pattern) in site.path_regex.iter().enumerate() {
        if let Err(e) = regex::Regex::new(pattern) {
            c.fail(
                &format!("{path}.path_regex[{k}]"),
                format!(
                    "{path}.path_regex: {pattern:?}: {}",
                    one_line(&e.to_string())
                ),
            );
        }
    }
    for (k, method) in site.methods.iter().enumerate() {
        let problem = if !is_token(method) {
            "is not a method name"
        } else if method.bytes().any(|b| b.is_ascii_lowercase()) {
            "must be upper-case, as methods are case-sensitive (\"GET\", not \"get\")"
        } else {
            continue;
        };
        c.fail(
            &format!("{path}.methods[{k}]"),
            format!("{path}.methods: {method:?} {problem}"),
        );
    }
    for (k, scheme) in site.schemes.iter().enumerate() {
        if scheme != "http" && scheme != "https" {
            c.fail(
                &format!("{path}.schemes[{k}]"),
                format!("{path}.schemes: {scheme:?} is not \"http\" or \"https\""),
            );
        }
    }
}

/// The regex crate explains a syntax error over several lines with a caret under the
/// pattern; one configuration error is one line, so only its "error:" line is kept.
fn one_line(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| message.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn check_access(c: &mut Checker<'_, '_>, path: &str, site: &SiteConfig) {
    for (field, list) in [("allow", &site.allow), ("deny", &site.deny)] {
        for (k, cidr) in list.iter().enumerate() {
            if let Err(e) = cidr.parse::<Cidr>() {
                c.fail(
                    &format!("{path}.{field}[{k}]"),
                    format!("{path}.{field}: {e}"),
                );
            }
        }
    }
    let Some(r) = &site.rate_limit else { return };
    let p = format!("{path}.rate_limit");
    if !(r.rate > 0.0 && r.rate <= MAX_RATE) {
        c.fail(
            &format!("{p}.rate"),
            format!("{p}.rate: must be a number of requests per second greater than 0 and at most 1e9 (leave rate_limit out for no limit)"),
        );
    }
    if !(1..=MAX_RATE_CLIENTS).contains(&r.max_clients) {
        c.fail(
            &format!("{p}.max_clients"),
            format!("{p}.max_clients: must be from 1 to {MAX_RATE_CLIENTS}"),
        );
    }
}

fn check_edits(c: &mut Checker<'_, '_>, path: &str, edits: &HeaderEdits, request: bool) {
    let names = edits
        .set
        .keys()
        .map(|n| ("set", format!("{path}.set.{n}"), n))
        .chain(
            edits
                .add
                .keys()
                .map(|n| ("add", format!("{path}.add.{n}"), n)),
        )
        .chain(
            edits
                .remove
                .iter()
                .enumerate()
                .map(|(k, n)| ("remove", format!("{path}.remove[{k}]"), n)),
        );
    let mut seen = HashSet::new();
    for (field, at, name) in names {
        let lower = name.to_ascii_lowercase();
        let parsed = http::HeaderName::from_bytes(lower.as_bytes());
        let problem = if parsed.is_err() {
            "is not a valid header field name"
        } else if let Some(why) = parsed
            .as_ref()
            .ok()
            .and_then(|n| crate::site::edit::refusal(n, request))
        {
            why
        } else if field != "remove" && !seen.insert((field, lower)) {
            "is listed twice (header names are case-insensitive)"
        } else {
            continue;
        };
        c.fail(&at, format!("{path}.{field}: {name:?} {problem}"));
    }
    let values = edits.set.iter().map(|v| ("set", v));
    for (field, (name, value)) in values.chain(edits.add.iter().map(|v| ("add", v))) {
        if let Err(e) = crate::site::template::check(value, !request) {
            c.fail(
                &format!("{path}.{field}.{name}"),
                format!("{path}.{field}.{name}: {e}"),
            );
        }
    }
}

fn check_cache(c: &mut Checker<'_, '_>, path: &str, k: &SiteCacheConfig, config: &Config) {
    if k.pass {
        // Nothing is looked up or stored, so these would silently do nothing.
        let unused = [
            ("default_ttl", k.default_ttl.is_some()),
            ("status_ttl", !k.status_ttl.is_empty()),
            ("force_ttl", k.force_ttl.is_some()),
            ("grace", k.grace.is_some()),
            ("stale_if_error", k.stale_if_error.is_some()),
            ("keep", k.keep.is_some()),
            ("max_object_size", k.max_object_size.is_some()),
            ("key", k.key != SiteKeyConfig::default()),
        ];
        for (field, _) in unused.iter().filter(|(_, set)| *set) {
            c.fail(
                &format!("{path}.{field}"),
                format!("{path}.{field}: has no effect with pass = true, which never stores"),
            );
        }
    }
    // A zero force_ttl would store what is never fresh: that is `pass`, said unclearly.
    // With force_ttl set, default_ttl and status_ttl would never be consulted.
    if let Some(force) = k.force_ttl {
        if force.is_zero() {
            c.fail(
                &format!("{path}.force_ttl"),
                format!(
                    "{path}.force_ttl: 0 stores nothing usable; write pass = true to not cache"
                ),
            );
        }
        for (field, set) in [
            ("default_ttl", k.default_ttl.is_some()),
            ("status_ttl", !k.status_ttl.is_empty()),
        ] {
            if set {
                c.fail(
                    &format!("{path}.{field}"),
                    format!("{path}.{field}: has no effect with force_ttl, which sets the lifetime of every stored response"),
                );
            }
        }
    }
    for key in k.status_ttl.keys() {
        if super::StatusMatch::parse(key).is_none() {
            c.fail(
                &format!("{path}.status_ttl.{key}"),
                format!(
                    "{path}.status_ttl: {key:?} is not a status code (100-599) or class (\"1xx\" to \"5xx\")"
                ),
            );
        }
    }
    if let Some(size) = k.max_object_size {
        if size == 0 {
            c.fail(
                &format!("{path}.max_object_size"),
                format!("{path}.max_object_size: must be greater than 0"),
            );
        } else if size > config.cache.memory {
            c.fail(
                &format!("{path}.max_object_size"),
                format!(
                    "{path}.max_object_size: {} is larger than cache.memory ({})",
                    super::format_size(size),
                    super::format_size(config.cache.memory)
                ),
            );
        }
    }
    if !k.keep_cookies.is_empty() && !k.strip_cookies.is_empty() {
        c.fail(
            &format!("{path}.strip_cookies"),
            format!("{path}: keep_cookies and strip_cookies are exclusive; keep_cookies already removes every other cookie"),
        );
    }
    if k.cookies == Some(CookieMode::Strip)
        && !(k.keep_cookies.is_empty() && k.strip_cookies.is_empty())
    {
        c.fail(
            &format!("{path}.cookies"),
            format!("{path}.cookies: \"strip\" removes every cookie, so keep_cookies and strip_cookies do nothing"),
        );
    }
    for (field, list) in [
        ("keep_cookies", &k.keep_cookies),
        ("strip_cookies", &k.strip_cookies),
        ("key.cookies", &k.key.cookies),
    ] {
        for (i, name) in list.iter().enumerate() {
            // RFC 6265 §4.1.1: cookie-name is a token.
            if !is_token(name) {
                c.fail(
                    &format!("{path}.{field}[{i}]"),
                    format!("{path}.{field}: {name:?} is not a cookie name"),
                );
            }
        }
    }
    check_key(c, &format!("{path}.key"), &k.key);
}

fn check_key(c: &mut Checker<'_, '_>, path: &str, key: &SiteKeyConfig) {
    for (field, count) in [
        ("headers", key.headers.len()),
        ("cookies", key.cookies.len()),
    ] {
        if count > MAX_KEY_FIELDS {
            c.fail(
                &format!("{path}.{field}"),
                format!("{path}.{field}: {count} names; at most {MAX_KEY_FIELDS} are allowed"),
            );
        }
    }
    for (i, name) in key.headers.iter().enumerate() {
        if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            c.fail(
                &format!("{path}.headers[{i}]"),
                format!("{path}.headers: {name:?} is not a valid header field name"),
            );
        }
    }
    for (i, param) in key.drop_params.iter().flatten().enumerate() {
        if param.is_empty()
            || param.contains(['&', '=', '#'])
            || param.chars().any(char::is_whitespace)
        {
            c.fail(
                &format!("{path}.drop_params[{i}]"),
                format!("{path}.drop_params: {param:?} is not a query parameter name"),
            );
        }
    }
}
