//! The primary cache key (RFC 9111 section 2: "the request method and target URI").
//!
//! The key is a normalized absolute URL plus its 128-bit xxh3 hash. Normalization
//! only applies rewrites that RFC 3986 section 6.2.2 / 6.2.3 and RFC 9110 section
//! 4.2.3 declare equivalence-preserving, plus the operator-chosen query rules.
//! Reserved characters stay encoded (`%2F` is not `/`), otherwise two distinct
//! origin resources could share a cache entry.
//!
//! Deliberately not done: dot-segment removal (the origin may route `/a/../b`
//! differently from `/b`), `+` vs `%20` in queries (not equivalent in RFC 3986),
//! and case folding of paths.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128;

/// How the query component takes part in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMode {
    /// Byte-for-byte (after percent-encoding normalization).
    #[default]
    Keep,
    /// Parameters sorted by name; parameters with equal names keep their
    /// relative order because repeated names are often order-significant
    /// (`a=1&a=2` is a list to most frameworks).
    Sort,
    /// The whole query is ignored.
    Drop,
}

/// Operator-configured key rules.
#[derive(Debug, Clone, Default)]
pub struct KeyRules {
    pub query: QueryMode,
    /// Parameter names (matched exactly, case-sensitively, against the
    /// percent-normalized name) removed in every mode, e.g. `utm_source`.
    pub drop_params: Vec<String>,
    /// Omit the authority, for single-site deployments with many host aliases.
    pub ignore_host: bool,
}

/// Fixed-size hash + the normalized URL (kept for admin listing and to detect
/// hash collisions: callers compare `url` on lookup).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub hash: u128,
    pub url: Arc<str>,
}

/// Operator URLs longer than this are rejected; request targets are already
/// bounded by the HTTP parser.
const MAX_OPERATOR_URL: usize = 64 * 1024;

/// The per-thread build buffer is dropped back to this size after an unusually
/// long URL so one huge request does not pin memory forever.
const KEEP_BUFFER: usize = 4 * 1024;

thread_local! {
    // Reusing one buffer per thread means the only allocation per key is the
    // final `Arc<str>`, even when the input needed rewriting.
    static BUF: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl CacheKey {
    /// Build a key from the parts of a request target. Never fails: odd input
    /// is kept verbatim where it cannot be normalized safely.
    pub fn new(scheme: &str, authority: &str, path_and_query: &str, rules: &KeyRules) -> CacheKey {
        let target = Target {
            scheme,
            authority,
            path_and_query,
            encode_raw: false,
        };
        build_key(&target, rules)
    }

    fn from_normalized(url: &str) -> CacheKey {
        CacheKey {
            hash: xxh3_128(url.as_bytes()),
            url: Arc::from(url),
        }
    }
}

/// Request-target parts plus how to treat bytes that are not allowed in a URI.
///
/// Raw non-ASCII bytes reaching us in a request target are kept verbatim:
/// mapping them onto their `%XX` form would give a malformed request (which
/// the origin may answer differently) the key of the well-formed one, a cache
/// poisoning vector. Operator URLs are encoded instead, so a pasted IRI finds
/// what browsers request.
struct Target<'a> {
    scheme: &'a str,
    authority: &'a str,
    path_and_query: &'a str,
    encode_raw: bool,
}

fn build_key(target: &Target<'_>, rules: &KeyRules) -> CacheKey {
    let reused = BUF.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        let key = build_key_in(&mut buf, target, rules);
        if buf.capacity() > KEEP_BUFFER {
            *buf = String::with_capacity(256);
        }
        Some(key)
    });
    // The buffer is unavailable only during thread teardown or re-entry;
    // stay correct rather than panic.
    match reused {
        Ok(Some(key)) => key,
        _ => build_key_in(&mut String::new(), target, rules),
    }
}

fn build_key_in(buf: &mut String, target: &Target<'_>, rules: &KeyRules) -> CacheKey {
    buf.clear();
    write_normalized(buf, target, rules);
    CacheKey::from_normalized(buf)
}

/// Parse an absolute URL given by an operator ("http://example.com/a?b") into a
/// key with the same normalization; Err with a message on junk.
pub fn key_for_url(url: &str, rules: &KeyRules) -> Result<CacheKey, String> {
    if url.len() > MAX_OPERATOR_URL {
        return Err(format!("URL longer than {MAX_OPERATOR_URL} bytes"));
    }
    if let Some(c) = url
        .chars()
        .find(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(format!(
            "URL contains whitespace or control character {c:?}"
        ));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "URL must be absolute, like http://host/path".to_string())?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "unsupported scheme {scheme:?} (expected http or https)"
        ));
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    validate_authority(authority)?;
    let target = Target {
        scheme,
        authority,
        path_and_query,
        encode_raw: true,
    };
    Ok(build_key(&target, rules))
}

fn validate_authority(authority: &str) -> Result<(), String> {
    if authority.is_empty() {
        return Err("URL has no host".to_string());
    }
    // Userinfo is deprecated for http(s) (RFC 9110 section 4.2.4) and would
    // only be stripped again; refuse it so the operator notices.
    if authority.contains('@') {
        return Err("URL must not contain userinfo (user@host)".to_string());
    }
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|e| format!("invalid host {authority:?}: {e}"))?;
    if parsed.host().is_empty() {
        return Err("URL has no host".to_string());
    }
    let (_, port) = split_port(authority);
    if let Some(port) = port {
        if !port.is_empty() && parse_port(port).is_none() {
            return Err(format!("invalid port {port:?}"));
        }
    }
    Ok(())
}

fn write_normalized(out: &mut String, target: &Target<'_>, rules: &KeyRules) {
    push_lowercase(out, target.scheme);
    out.push_str("://");
    if !rules.ignore_host {
        write_authority(out, target.scheme, target.authority);
    }

    // Fragments are never part of a request target (RFC 9110 section 4.2.5).
    let pq = target.path_and_query;
    let pq = pq.split_once('#').map_or(pq, |(before, _)| before);
    let (path, query) = match pq.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (pq, None),
    };

    // RFC 9110 section 4.2.3: an empty path is equivalent to "/".
    if path.is_empty() {
        out.push('/');
    } else {
        push_percent_normalized(out, path, target.encode_raw);
    }

    if let Some(query) = query {
        write_query(out, query, rules, target.encode_raw);
    }
}

/// Host lowercased, trailing dot and default port removed (RFC 3986 6.2.2.1,
/// 6.2.3; RFC 9110 4.2.3). Anything unusual (userinfo, junk after an IPv6
/// literal, a non-numeric port) is kept, lowercased, rather than cut: the
/// origin sees the raw Host, so a key that dropped it would let a crafted
/// Host store its response under the key of the clean one.
fn write_authority(out: &mut String, scheme: &str, authority: &str) {
    let (host, port) = split_port(authority);
    // Every trailing dot: "a.." must key like "a." and "a", or a key read back from
    // its own URL would differ.
    let host = host.trim_end_matches('.');
    push_lowercase(out, host);

    let Some(port) = port else { return };
    if port.is_empty() {
        return; // "host:" means the default port (RFC 3986 section 6.2.3)
    }
    match parse_port(port) {
        Some(n) if Some(n) == default_port(scheme) => {}
        // Numeric rendering removes leading zeros: ":080" is port 80.
        Some(n) => {
            let _ = write!(out, ":{n}");
        }
        None => {
            out.push(':');
            push_lowercase(out, port);
        }
    }
}

/// Split "host:port" / "[v6]:port"; the port is `None` when there is no colon.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    // "[::1]junk": no port syntax; keep it all as the host.
                    None if !rest.is_empty() => (authority, None),
                    None => (host, None),
                }
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

fn push_lowercase(out: &mut String, s: &str) {
    let start = out.len();
    out.push_str(s);
    if let Some(pushed) = out.get_mut(start..) {
        pushed.make_ascii_lowercase();
    }
}

fn write_query(out: &mut String, query: &str, rules: &KeyRules, encode_raw: bool) {
    if rules.query == QueryMode::Drop {
        return;
    }
    let start = out.len();
    out.push('?');
    push_percent_normalized(out, query, encode_raw);

    let sort = rules.query == QueryMode::Sort;
    if !sort && rules.drop_params.is_empty() {
        return;
    }
    let normalized = out.get(start + 1..).unwrap_or("");
    if !needs_rewrite(normalized, sort, &rules.drop_params) {
        return;
    }
    // Slow path, only for Sort / drop_params when the query is not already in
    // final form: one temporary copy to split from.
    let copy = normalized.to_owned();
    out.truncate(start);
    let mut params: Vec<&str> = copy
        .split('&')
        .filter(|p| !(sort && p.is_empty()))
        .filter(|p| !is_dropped(p, &rules.drop_params))
        .collect();
    if sort {
        params.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    }
    // A query emptied by the rules is the same as no query at all.
    if params.is_empty() {
        return;
    }
    out.push('?');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(p);
    }
}

fn needs_rewrite(query: &str, sort: bool, drop: &[String]) -> bool {
    if query.is_empty() {
        // "?" alone is kept in Keep mode (RFC 3986 6.2.3 does not license
        // removing an empty query); Sort is an operator request to normalize.
        return sort;
    }
    let mut prev: Option<&str> = None;
    for p in query.split('&') {
        if is_dropped(p, drop) || (sort && p.is_empty()) {
            return true;
        }
        if sort {
            let name = param_name(p);
            if prev.is_some_and(|prev| prev > name) {
                return true;
            }
            prev = Some(name);
        }
    }
    false
}

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(name, _)| name)
}

fn is_dropped(param: &str, drop: &[String]) -> bool {
    !drop.is_empty() && {
        let name = param_name(param);
        drop.iter().any(|d| d == name)
    }
}

/// RFC 3986 6.2.2.1 / 6.2.2.2: uppercase hex in escapes and decode escapes of
/// unreserved characters. Escapes of reserved characters are kept: decoding
/// `%2F` or `%3F` changes which resource is addressed. If the component holds
/// any malformed escape ("%4", "%zz") its escapes are left alone entirely:
/// decoding next to a stray `%` could turn "%%41" into the different "%A".
/// With `encode_raw`, bytes that may not appear in a URI at all (non-ASCII,
/// controls, space) are percent-encoded (see [`Target`]).
fn push_percent_normalized(out: &mut String, s: &str, encode_raw: bool) {
    let bytes = s.as_bytes();
    // Fast path: most targets contain nothing to rewrite.
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (encode_raw && needs_encoding(b)))
    {
        out.push_str(s);
        return;
    }
    let decode = !has_malformed_escape(bytes);
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' && decode {
            if let Some(decoded) = hex_pair(bytes.get(i + 1), bytes.get(i + 2)) {
                push_run(out, s, run_start, i);
                if is_unreserved(decoded) {
                    out.push(char::from(decoded));
                } else {
                    push_escape(out, decoded);
                }
                i += 3;
                run_start = i;
                continue;
            }
        } else if encode_raw && needs_encoding(b) {
            push_run(out, s, run_start, i);
            push_escape(out, b);
            run_start = i + 1;
        }
        i += 1;
    }
    push_run(out, s, run_start, bytes.len());
}

fn has_malformed_escape(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && hex_pair(bytes.get(i + 1), bytes.get(i + 2)).is_none())
}

/// Runs always start and end at ASCII bytes or the ends of `s` (every
/// non-ASCII byte is consumed individually), so `get` cannot miss.
fn push_run(out: &mut String, s: &str, start: usize, end: usize) {
    if let Some(run) = s.get(start..end) {
        out.push_str(run);
    }
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    for nibble in [b >> 4, b & 0x0f] {
        let digit = char::from_digit(u32::from(nibble), 16).unwrap_or('0');
        out.push(digit.to_ascii_uppercase());
    }
}

fn hex_pair(hi: Option<&u8>, lo: Option<&u8>) -> Option<u8> {
    let hi = char::from(*hi?).to_digit(16)?;
    let lo = char::from(*lo?).to_digit(16)?;
    u8::try_from(hi * 16 + lo).ok()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn needs_encoding(b: u8) -> bool {
    b <= b' ' || b >= 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: &str, auth: &str, pq: &str) -> String {
        CacheKey::new(scheme, auth, pq, &KeyRules::default())
            .url
            .to_string()
    }

    fn with(rules: &KeyRules, pq: &str) -> String {
        CacheKey::new("http", "example.com", pq, rules)
            .url
            .to_string()
    }

    fn sort_rules() -> KeyRules {
        KeyRules {
            query: QueryMode::Sort,
            ..KeyRules::default()
        }
    }

    #[test]
    fn already_normal_is_unchanged() {
        assert_eq!(
            url("http", "example.com", "/a/b?x=1"),
            "http://example.com/a/b?x=1"
        );
        assert_eq!(
            url("https", "example.com:8443", "/"),
            "https://example.com:8443/"
        );
    }

    #[test]
    fn hash_is_xxh3_of_url() {
        let k = CacheKey::new("http", "example.com", "/a", &KeyRules::default());
        assert_eq!(k.hash, xxh3_128(b"http://example.com/a"));
    }

    #[test]
    fn scheme_and_host_lowercased() {
        assert_eq!(url("HTTP", "ExAmple.COM", "/A"), "http://example.com/A");
    }

    #[test]
    fn default_ports_removed() {
        assert_eq!(url("http", "example.com:80", "/"), "http://example.com/");
        assert_eq!(url("https", "example.com:443", "/"), "https://example.com/");
        assert_eq!(
            url("http", "example.com:443", "/"),
            "http://example.com:443/"
        );
        assert_eq!(
            url("https", "example.com:80", "/"),
            "https://example.com:80/"
        );
        assert_eq!(url("http", "example.com:", "/"), "http://example.com/");
        assert_eq!(url("http", "example.com:080", "/"), "http://example.com/");
        assert_eq!(
            url("http", "example.com:08080", "/"),
            "http://example.com:8080/"
        );
    }

    #[test]
    fn junk_port_kept_verbatim() {
        assert_eq!(
            url("http", "example.com:ABC", "/"),
            "http://example.com:abc/"
        );
        assert_eq!(
            url("http", "example.com:99999", "/"),
            "http://example.com:99999/"
        );
    }

    #[test]
    fn trailing_dot_removed() {
        assert_eq!(url("http", "example.com.", "/"), "http://example.com/");
        assert_eq!(url("http", "Example.com.:80", "/"), "http://example.com/");
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(url("http", "[::1]:80", "/"), "http://[::1]/");
        assert_eq!(url("http", "[FE80::1]:8080", "/"), "http://[fe80::1]:8080/");
        assert_eq!(url("http", "[::1", "/"), "http://[::1/");
    }

    #[test]
    fn odd_authorities_never_truncated() {
        assert_eq!(
            url("http", "user:pw@Example.com", "/"),
            "http://user:pw@example.com/"
        );
        assert_ne!(
            url("http", "evil@example.com", "/"),
            url("http", "example.com", "/")
        );
        assert_eq!(url("http", "[::1]junk", "/"), "http://[::1]junk/");
        assert_eq!(url("http", "[::1]junk:80", "/"), "http://[::1]junk:80/");
        assert_eq!(url("http", "a:b:80", "/"), "http://a:b/");
    }

    #[test]
    fn empty_path_becomes_slash() {
        assert_eq!(url("http", "example.com", ""), "http://example.com/");
        assert_eq!(
            url("http", "example.com", "?a=1"),
            "http://example.com/?a=1"
        );
    }

    #[test]
    fn percent_encoding_normalized() {
        assert_eq!(url("http", "h", "/%7euser/%41%2d"), "http://h/~user/A-");
        assert_eq!(
            url("http", "h", "/a%2fb%3f%c3%a9"),
            "http://h/a%2Fb%3F%C3%A9"
        );
        assert_eq!(url("http", "h", "/?q=%7e%2b%26"), "http://h/?q=~%2B%26");
    }

    #[test]
    fn reserved_escapes_not_merged() {
        assert_ne!(url("http", "h", "/a%2Fb"), url("http", "h", "/a/b"));
        assert_ne!(url("http", "h", "/a%3Fb"), url("http", "h", "/a?b"));
    }

    #[test]
    fn malformed_escapes_kept() {
        assert_eq!(url("http", "h", "/%"), "http://h/%");
        assert_eq!(url("http", "h", "/%4"), "http://h/%4");
        assert_eq!(url("http", "h", "/%zz%4G"), "http://h/%zz%4G");
        assert_eq!(url("http", "h", "/%%41"), "http://h/%%41");
        assert_eq!(url("http", "h", "/%41%"), "http://h/%41%");
        // Components are judged separately: a bad query leaves the path alone.
        assert_eq!(url("http", "h", "/%7e?%zz%7e"), "http://h/~?%zz%7e");
    }

    #[test]
    fn raw_bytes_from_requests_kept() {
        // Not merged with the encoded form: see `Target`.
        assert_eq!(url("http", "h", "/café"), "http://h/café");
        assert_eq!(url("http", "h", "/a b\x7f"), "http://h/a b\x7f");
        assert_ne!(url("http", "h", "/caf%C3%A9"), url("http", "h", "/café"));
        assert_eq!(url("http", "h", "/é%7e?é=%7e"), "http://h/é~?é=~");
    }

    #[test]
    fn operator_iri_is_encoded() {
        let r = KeyRules::default();
        let k = key_for_url("http://h/café?q=é", &r).unwrap();
        assert_eq!(&*k.url, "http://h/caf%C3%A9?q=%C3%A9");
        assert_eq!(k, CacheKey::new("http", "h", "/caf%c3%a9?q=%C3%a9", &r));
    }

    #[test]
    fn fragment_ignored() {
        assert_eq!(url("http", "h", "/a?b=1#frag?x"), "http://h/a?b=1");
        assert_eq!(url("http", "h", "/a#f"), "http://h/a");
    }

    #[test]
    fn keep_mode_preserves_query() {
        let r = KeyRules::default();
        assert_eq!(with(&r, "/?b=2&a=1&&"), "http://example.com/?b=2&a=1&&");
        assert_eq!(with(&r, "/?"), "http://example.com/?");
    }

    #[test]
    fn sort_mode_is_stable_by_name() {
        let r = sort_rules();
        assert_eq!(
            with(&r, "/?b=2&a=1&a=0&c"),
            "http://example.com/?a=1&a=0&b=2&c"
        );
        assert_eq!(with(&r, "/?a=1&&b=2&"), "http://example.com/?a=1&b=2");
        assert_eq!(with(&r, "/?"), "http://example.com/");
        assert_eq!(with(&r, "/?&&"), "http://example.com/");
        assert_eq!(with(&r, "/?a=1&b=2"), "http://example.com/?a=1&b=2");
    }

    #[test]
    fn sort_uses_normalized_names() {
        let r = sort_rules();
        assert_eq!(with(&r, "/?b=1&%61=2"), "http://example.com/?a=2&b=1");
    }

    #[test]
    fn drop_mode_removes_query() {
        let r = KeyRules {
            query: QueryMode::Drop,
            ..KeyRules::default()
        };
        assert_eq!(with(&r, "/p?a=1"), "http://example.com/p");
        assert_eq!(with(&r, "?a=1"), "http://example.com/");
    }

    #[test]
    fn drop_params_in_every_mode() {
        let mut r = KeyRules {
            drop_params: vec!["utm_source".into(), "fbclid".into()],
            ..KeyRules::default()
        };
        assert_eq!(
            with(&r, "/?z=1&utm_source=x&a=2&fbclid"),
            "http://example.com/?z=1&a=2"
        );
        assert_eq!(with(&r, "/?utm_source=x"), "http://example.com/");
        assert_eq!(
            with(&r, "/?utm_source2=x"),
            "http://example.com/?utm_source2=x"
        );
        assert_eq!(
            with(&r, "/?UTM_SOURCE=x"),
            "http://example.com/?UTM_SOURCE=x"
        );
        r.query = QueryMode::Sort;
        assert_eq!(
            with(&r, "/?z=1&utm_source=x&a=2"),
            "http://example.com/?a=2&z=1"
        );
    }

    #[test]
    fn ignore_host() {
        let r = KeyRules {
            ignore_host: true,
            ..KeyRules::default()
        };
        let a = CacheKey::new("http", "a.example", "/x", &r);
        let b = CacheKey::new("http", "b.example:8080", "/x", &r);
        assert_eq!(a, b);
        assert_eq!(&*a.url, "http:///x");
        let s = CacheKey::new("https", "a.example", "/x", &r);
        assert_ne!(a, s);
    }

    #[test]
    fn equivalent_inputs_share_key() {
        let r = KeyRules::default();
        let a = CacheKey::new("HTTP", "Example.COM.:80", "/%7Ea", &r);
        let b = key_for_url("http://example.com/~a", &r).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hash, b.hash);
    }

    #[test]
    fn key_for_url_parses() {
        let r = KeyRules::default();
        let k = key_for_url("HTTPS://Example.com:443/a?b", &r).unwrap();
        assert_eq!(&*k.url, "https://example.com/a?b");
        let k = key_for_url("http://example.com", &r).unwrap();
        assert_eq!(&*k.url, "http://example.com/");
        let k = key_for_url("http://example.com?x=1", &r).unwrap();
        assert_eq!(&*k.url, "http://example.com/?x=1");
        let k = key_for_url("http://[::1]:8080/a#f", &r).unwrap();
        assert_eq!(&*k.url, "http://[::1]:8080/a");
        let k = key_for_url("http://example.com/café", &r).unwrap();
        assert_eq!(&*k.url, "http://example.com/caf%C3%A9");
    }

    #[test]
    fn key_for_url_rejects_junk() {
        let r = KeyRules::default();
        for bad in [
            "",
            "example.com/a",
            "/a",
            "ftp://example.com/",
            "http://",
            "http:///a",
            "http://exa mple.com/",
            "http://example.com/a b",
            "http://example.com/\n",
            "http://user@example.com/",
            "http://example.com:abc/",
            "http://example.com:99999/",
            "http://[::1/",
            "http://exa<mple.com/",
            "://x",
        ] {
            assert!(key_for_url(bad, &r).is_err(), "accepted {bad:?}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_OPERATOR_URL));
        assert!(key_for_url(&long, &r).is_err());
    }

    #[test]
    fn huge_input_does_not_pin_buffer() {
        let long = format!("/{}", "a".repeat(100_000));
        let k = CacheKey::new("http", "h", &long, &KeyRules::default());
        assert_eq!(k.url.len(), "http://h".len() + long.len());
        BUF.with(|b| assert!(b.borrow().capacity() <= KEEP_BUFFER));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "%",
            "%%",
            "%%%",
            "?",
            "??",
            "#",
            "&&&",
            "?=&=",
            "/%E9%",
            "é%",
            "%é",
            "\u{0}",
            "/\u{10FFFF}?\u{10FFFF}=é",
        ];
        let rules = [
            KeyRules::default(),
            sort_rules(),
            KeyRules {
                query: QueryMode::Drop,
                drop_params: vec![String::new()],
                ignore_host: true,
            },
        ];
        for s in samples {
            for r in &rules {
                let k = CacheKey::new(s, s, s, r);
                assert!(!k.url.is_empty());
                let _ = key_for_url(s, r);
                let _ = key_for_url(&format!("http://h/{s}"), r);
            }
        }
    }
}
