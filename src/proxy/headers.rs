//! Header rules that apply to every hop: hop-by-hop removal (RFC 9110 7.6.1), Via,
//! X-Forwarded-For, and the request headers a cache fill must not carry.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fields that describe one connection, never forwarded (RFC 9110 7.6.1), plus the
/// pre-standard `Proxy-Connection` and `Keep-Alive` that clients still send.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A field that describes one connection (RFC 9110 7.6.1).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Remove hop-by-hop fields, including every field named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common message has none of these: one scan of its few names is far cheaper
    // than a hashed remove of each of the seven (this runs on every hop, both ways).
    if !headers.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            // `Connection: Host` must not make the origin pick another virtual host
            // than the one the response is cached under.
            if name != header::HOST {
                headers.remove(name);
            }
        }
    }
    // RFC 9112 6.3: with Transfer-Encoding, Content-Length is wrong or a smuggling
    // attempt; an intermediary removes it and re-frames the message itself.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Remove every field in `names`. Most messages carry none of them: one scan of the
/// message's few names is far cheaper than a hashed remove per listed name.
fn remove_listed(headers: &mut HeaderMap, names: &[HeaderName]) {
    if !headers.keys().any(|n| names.contains(n)) {
        return;
    }
    for name in names {
        headers.remove(name);
    }
}

/// Request fields that some origin frameworks read as the URL, host, method or client
/// but the cache key does not include (`[client] unkeyed_headers`): forwarded as-is
/// they let one client poison a shared entry. Dropped unless the peer is trusted.
#[derive(Debug, Clone, Default)]
pub struct NameList {
    names: Vec<HeaderName>,
    /// Bit n set when some listed name is n bytes long (n < 64): most request fields
    /// are ruled out by their length alone, so the common request costs a few bit
    /// tests instead of a comparison with every listed name.
    lengths: u64,
}

impl NameList {
    /// Invalid names are skipped (validation has refused them already).
    pub fn new<S: AsRef<str>>(names: &[S]) -> NameList {
        let mut list = NameList::default();
        for n in names {
            let Ok(name) = HeaderName::from_bytes(n.as_ref().to_ascii_lowercase().as_bytes())
            else {
                continue;
            };
            list.lengths |= length_bit(name.as_str().len());
            if !list.names.contains(&name) {
                list.names.push(name);
            }
        }
        list
    }

    fn contains(&self, name: &HeaderName) -> bool {
        self.lengths & length_bit(name.as_str().len()) != 0 && self.names.contains(name)
    }

    /// Remove every listed field from `headers`.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !headers.keys().any(|n| self.contains(n)) {
            return;
        }
        for name in &self.names {
            headers.remove(name);
        }
    }
}

/// Names of 63 bytes and more share the top bit.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Drop fields with `_` in their name: CGI-style servers map `Transfer_Encoding` to the
/// same variable as `Transfer-Encoding` (nginx drops them by default for that reason).
pub fn strip_underscored(headers: &mut HeaderMap) {
    let bad: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in bad {
        headers.remove(name);
    }
}

/// Client preconditions and ranges: a cache fill fetches the full, unconditional object
/// (they are answered from the stored copy instead), so they must not reach the origin.
const CLIENT_CONDITIONALS: [HeaderName; 6] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// Whether the request carries any client precondition or range.
pub fn has_conditionals(headers: &HeaderMap) -> bool {
    CLIENT_CONDITIONALS.iter().any(|n| headers.contains_key(n))
}

/// The client's preconditions and range, to be sent on as they are.
pub fn copy_conditionals(from: &HeaderMap, to: &mut HeaderMap) {
    for name in &CLIENT_CONDITIONALS {
        for value in from.get_all(name) {
            to.append(name, value.clone());
        }
    }
}

pub fn strip_client_conditionals(headers: &mut HeaderMap) {
    remove_listed(headers, &CLIENT_CONDITIONALS);
}

/// The request carries a precondition other than If-Range (RFC 9110 13.1).
pub fn has_client_preconditions(headers: &HeaderMap) -> bool {
    CLIENT_CONDITIONALS[..4]
        .iter()
        .any(|n| headers.contains_key(n))
}

/// Put `entry` after the members `name` already has (every line of it), as one line:
/// the order of a list field that each hop extends.
pub fn append_member(headers: &mut HeaderMap, name: HeaderName, entry: HeaderValue) {
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all(&name) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if !joined.is_empty() {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(entry.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            headers.insert(name, v);
            return;
        }
    }
    headers.insert(name, entry);
}

/// Append this hop to `Via` (RFC 9110 7.6.3).
pub fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    headers.append(header::VIA, via.clone());
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Append the client's address to `X-Forwarded-For`, keeping what earlier proxies wrote.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    use std::fmt::Write;
    let mut value = String::with_capacity(48);
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str() {
            if !value.is_empty() {
                value.push_str(", ");
            }
            value.push_str(s);
        }
    }
    if !value.is_empty() {
        value.push_str(", ");
    }
    let _ = write!(value, "{client}");
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// Content-Length as a number, when present once and valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()?.trim().parse().ok()
}

/// A response's Vary as clients see it: the internal fields that carry a site's key
/// cookies (`site::rules::COOKIE_FIELD_PREFIX`) mean nothing outside, and say `Cookie`.
pub fn public_vary(headers: &mut HeaderMap) {
    use crate::site::rules::COOKIE_FIELD_PREFIX;
    let internal = |t: &str| {
        t.trim()
            .get(..COOKIE_FIELD_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(COOKIE_FIELD_PREFIX))
    };
    let lines: Vec<String> = headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    if !lines.iter().any(|l| l.split(',').any(internal)) {
        return;
    }
    let mut names: Vec<&str> = Vec::new();
    for token in lines.iter().flat_map(|l| l.split(',')).map(str::trim) {
        let name = if internal(token) { "Cookie" } else { token };
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    headers.remove(http::header::VARY);
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(http::header::VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_connection_listed_fields() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret , bad name"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn name_list_strips_listed_fields_only() {
        let list = NameList::new(&["X-Forwarded-Prefix", "x-original-uri", "bad name"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/evil"));
        h.insert("x-original-uri", HeaderValue::from_static("/admin"));
        h.insert("x-forwarded-prefiz", HeaderValue::from_static("kept"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        list.strip(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.get("x-forwarded-prefiz").is_some() && h.get(header::ACCEPT).is_some());
        let long = "x-".repeat(40);
        let list = NameList::new(&[long.as_str()]);
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(long.as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        list.strip(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn xff_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "1.1.1.1, 2.2.2.2, 127.0.0.1"
        );
    }

    #[test]
    fn content_length_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(&h), Some(12));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(&h), None);
    }
}
