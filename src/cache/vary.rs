//! Vary handling (RFC 9111 section 4.1): which request fields select a stored
//! variant, and the normalized request values that form the secondary key.
//!
//! Normalization is limited to what RFC 9111 4.1 allows: adding or removing
//! whitespace where the field syntax allows it, combining field lines (RFC 9110
//! 5.3), and rewrites known to keep the same semantics. The only field-specific
//! rewrite is Accept-Encoding (see [`normalize_accept_encoding`]).

use bytes::Bytes;
use http::header::{ACCEPT_CHARSET, ACCEPT_ENCODING, ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName};

/// The parsed Vary of a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No Vary: every request for the URL matches.
    None,
    /// `Vary: *` (or an unreasonable Vary): no later request matches.
    Star,
    /// Lowercase, sorted, deduplicated field names.
    Fields(Vec<HeaderName>),
}

/// More distinct fields than this is not a real content negotiation scheme;
/// storing per-variant keys for it would only let an origin bloat the cache,
/// so such a response is treated like `Vary: *`.
pub const MAX_VARY_FIELDS: usize = 32;

/// Upper bound on the request bytes that make up one secondary key.
pub const MAX_SECONDARY_KEY_BYTES: usize = 8 * 1024;

/// Parse all Vary lines of a response. Junk tokens are ignored; a `*` anywhere
/// wins (RFC 9110 12.5.5: "*" signals that anything about the request might
/// play a role).
pub fn parse_vary(resp: &HeaderMap) -> Vary {
    let mut fields: Vec<HeaderName> = Vec::new();
    for value in resp.get_all(VARY) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = trim_ows(token);
            if token == b"*" {
                return Vary::Star;
            }
            // from_bytes validates the token syntax and lowercases it.
            if let Ok(name) = HeaderName::from_bytes(token) {
                if !fields.contains(&name) {
                    if fields.len() == MAX_VARY_FIELDS {
                        return Vary::Star;
                    }
                    fields.push(name);
                }
            }
        }
    }
    if fields.is_empty() {
        return Vary::None;
    }
    fields.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Vary::Fields(fields)
}

/// Normalized request values for the fields: per field, `None` if absent,
/// else the combined field value. Returns `None` ("do not cache this
/// variant") when the request values exceed [`MAX_SECONDARY_KEY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecondaryKey(pub Vec<Option<Bytes>>);

/// Compute the secondary key of `req` for the given Vary fields.
pub fn secondary_key(fields: &[HeaderName], req: &HeaderMap) -> Option<SecondaryKey> {
    // Checked on the raw input first so an oversized header costs no work.
    let raw: usize = fields
        .iter()
        .flat_map(|f| req.get_all(f))
        .map(|v| v.len())
        .fold(0, usize::saturating_add);
    if raw > MAX_SECONDARY_KEY_BYTES {
        return None;
    }
    let values = fields
        .iter()
        .map(|field| normalized_value(field, req))
        .collect();
    Some(SecondaryKey(values))
}

fn normalized_value(field: &HeaderName, req: &HeaderMap) -> Option<Bytes> {
    let mut lines = req.get_all(field).iter().peekable();
    lines.peek()?;
    let mut elements: Vec<&[u8]> = Vec::new();
    for line in lines {
        elements.extend(split_list(line.as_bytes()).map(trim_ows));
    }
    if *field == ACCEPT_ENCODING {
        return Some(normalize_accept_encoding(elements));
    }
    if *field == ACCEPT_LANGUAGE || *field == ACCEPT_CHARSET {
        return Some(normalize_preferences(elements));
    }
    Some(Bytes::from(elements.join(&b", "[..])))
}

/// Accept-Language and Accept-Charset: language ranges and charsets are
/// case-insensitive (RFC 4647 2.1, RFC 9110 12.5.2), whitespace around `;` and `=` is
/// optional and empty elements mean nothing, so `de-DE, en;q=0.5` and
/// `DE-de,en ; q=0.5` ask for the same thing. Order is kept among equal weights (an
/// origin may take the first of `de, en` and `en, de` alike, so they stay apart) and
/// otherwise follows the weights, as a browser writes them.
fn normalize_preferences(elements: Vec<&[u8]>) -> Bytes {
    let mut items: Vec<(u32, Vec<u8>)> = elements
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(normalize_coding)
        .map(|e| (weight(&e), e))
        .collect();
    // Stable: equal weights keep their order.
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(items.len());
    for (_, e) in items {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Bytes::from(out.join(&b", "[..]))
}

/// An element's qvalue in thousandths (1000 without `q=`; an unreadable one sorts as 0
/// but stays in the value, so it still tells requests apart).
fn weight(element: &[u8]) -> u32 {
    element
        .split(|&b| b == b';')
        .skip(1)
        .find_map(|p| p.strip_prefix(b"q="))
        .map_or(1000, |q| {
            std::str::from_utf8(q)
                .ok()
                .and_then(|q| q.parse::<f64>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .map_or(0, |q| (q * 1000.0).round() as u32)
        })
}

/// Accept-Encoding is normalized further because browsers differ mostly in
/// token order and case, which would otherwise multiply variants:
///
/// * content codings and parameters are case-insensitive (RFC 9110 8.4.1,
///   12.4.2), so elements are lowercased;
/// * whitespace around `;` and `=` is optional (RFC 9110 5.6.6) and removed;
/// * empty list elements carry no meaning (RFC 9110 5.6.1) and are dropped;
/// * preference comes from qvalues, not position (RFC 9110 12.5.3), so the set
///   is sorted and exact duplicates removed.
///
/// qvalues are kept: `gzip;q=0` refuses gzip, so dropping `q=` would hand a
/// gzip body to a client that cannot decode it. Collapsing to "gzip or not"
/// (as some caches do) is also avoided: it is only correct if the origin
/// supports nothing but gzip, which this module cannot know.
fn normalize_accept_encoding(elements: Vec<&[u8]>) -> Bytes {
    let mut codings: Vec<Vec<u8>> = elements
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(normalize_coding)
        .collect();
    codings.sort();
    codings.dedup();
    Bytes::from(codings.join(&b", "[..]))
}

fn normalize_coding(element: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(element.len());
    for (i, part) in element.split(|&b| b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        match part.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, value) = part.split_at(eq);
                out.extend(trim_ows(name).iter().map(u8::to_ascii_lowercase));
                out.push(b'=');
                let value = value.get(1..).unwrap_or_default();
                out.extend(trim_ows(value).iter().map(u8::to_ascii_lowercase));
            }
            None => out.extend(trim_ows(part).iter().map(u8::to_ascii_lowercase)),
        }
    }
    out
}

/// Split a field value at top-level commas. Commas inside quoted strings
/// (RFC 9110 5.6.4) are data, and trimming around them would change the value.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in current.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == b',' && !quoted {
                let (head, tail) = current.split_at(i);
                rest = tail.get(1..);
                return Some(head);
            }
        }
        rest = None;
        Some(current)
    })
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn names(list: &[&str]) -> Vec<HeaderName> {
        list.iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect()
    }

    fn key(fields: &[&str], req: &[(&str, &[u8])]) -> Option<SecondaryKey> {
        secondary_key(&names(fields), &headers(req))
    }

    fn value(field: &str, req: &[(&str, &[u8])]) -> Option<Bytes> {
        key(&[field], req).unwrap().0.pop().unwrap()
    }

    #[test]
    fn no_vary() {
        assert_eq!(parse_vary(&HeaderMap::new()), Vary::None);
        assert_eq!(parse_vary(&headers(&[("vary", b"")])), Vary::None);
        assert_eq!(parse_vary(&headers(&[("vary", b" , ,")])), Vary::None);
    }

    #[test]
    fn fields_lowercased_sorted_deduped() {
        let h = headers(&[
            ("vary", b"User-Agent, Accept-Encoding"),
            ("vary", b"accept-encoding,ACCEPT-LANGUAGE ,,"),
        ]);
        assert_eq!(
            parse_vary(&h),
            Vary::Fields(names(&["accept-encoding", "accept-language", "user-agent"]))
        );
    }

    #[test]
    fn star_anywhere() {
        assert_eq!(parse_vary(&headers(&[("vary", b"*")])), Vary::Star);
        assert_eq!(parse_vary(&headers(&[("vary", b"Accept, * ")])), Vary::Star);
        assert_eq!(
            parse_vary(&headers(&[("vary", b"accept"), ("vary", b"*")])),
            Vary::Star
        );
    }

    #[test]
    fn junk_tokens_ignored() {
        let h = headers(&[("vary", b"acc ept, \"quoted\", a/b, accept, * *, \xff")]);
        assert_eq!(parse_vary(&h), Vary::Fields(names(&["accept"])));
    }

    #[test]
    fn too_many_fields_is_star() {
        let many: Vec<String> = (0..=MAX_VARY_FIELDS).map(|i| format!("x-f{i}")).collect();
        let h = headers(&[("vary", many.join(",").as_bytes())]);
        assert_eq!(parse_vary(&h), Vary::Star);
        let ok: Vec<String> = (0..MAX_VARY_FIELDS).map(|i| format!("x-f{i}")).collect();
        let dup = format!("{},x-f0,X-F1", ok.join(","));
        assert!(matches!(
            parse_vary(&headers(&[("vary", dup.as_bytes())])),
            Vary::Fields(f) if f.len() == MAX_VARY_FIELDS
        ));
    }

    #[test]
    fn absent_vs_empty() {
        assert_eq!(value("accept-language", &[]), None);
        assert_eq!(
            value("accept-language", &[("accept-language", b"")]),
            Some(Bytes::new())
        );
    }

    #[test]
    fn lines_combined_and_whitespace_collapsed() {
        let a = value(
            "accept-language",
            &[("accept-language", b"en ,  fr"), ("accept-language", b"de")],
        );
        let b = value("accept-language", &[("accept-language", b"en,fr, de")]);
        assert_eq!(a, b);
        assert_eq!(a, Some(Bytes::from_static(b"en, fr, de")));
    }

    #[test]
    fn order_matters_for_generic_fields() {
        let a = value("accept-language", &[("accept-language", b"en, fr")]);
        let b = value("accept-language", &[("accept-language", b"fr, en")]);
        assert_ne!(a, b);
    }

    /// Accept-Language is compared by meaning (issue 13): case, whitespace, empty
    /// elements and the order of different weights do not make a new variant; the
    /// order of equal weights does (`de, en` is not `en, de` to an origin that takes
    /// the first), and so do the weights themselves.
    #[test]
    fn accept_language_case_whitespace_and_weight_order() {
        let lang = |v: &'static [u8]| value("accept-language", &[("accept-language", v)]);
        let a = lang(b"de-DE,de;q=0.9,en;q=0.8");
        assert_eq!(a, lang(b"DE-de , De ; Q=0.9,, en;q=0.8"));
        assert_eq!(a, lang(b"en;q=0.8, de;q=0.9, de-de"));
        assert_eq!(a, Some(Bytes::from_static(b"de-de, de;q=0.9, en;q=0.8")));
        assert_ne!(lang(b"de, en"), lang(b"en, de"));
        assert_ne!(lang(b"de, en;q=0.5"), lang(b"de, en;q=0.6"));
        let charset = value(
            "accept-charset",
            &[("accept-charset", b"UTF-8, ISO-8859-1;q=0.5")],
        );
        assert_eq!(
            charset,
            value(
                "accept-charset",
                &[("accept-charset", b"iso-8859-1;q=0.5,utf-8")]
            )
        );
    }

    #[test]
    fn quoted_commas_untouched() {
        let v = value("x-a", &[("x-a", b"a, \"x , y\", \"q\\\" , z\" ,b")]);
        assert_eq!(
            v,
            Some(Bytes::from_static(b"a, \"x , y\", \"q\\\" , z\", b"))
        );
        let v = value("x-a", &[("x-a", b"\"unterminated, x")]);
        assert_eq!(v, Some(Bytes::from_static(b"\"unterminated, x")));
    }

    #[test]
    fn accept_encoding_order_and_case_insensitive() {
        let a = value(
            "accept-encoding",
            &[("accept-encoding", b"gzip, deflate, br")],
        );
        let b = value(
            "accept-encoding",
            &[
                ("accept-encoding", b"BR,gzip"),
                ("accept-encoding", b" deflate,,gzip"),
            ],
        );
        assert_eq!(a, b);
        assert_eq!(a, Some(Bytes::from_static(b"br, deflate, gzip")));
    }

    #[test]
    fn accept_encoding_keeps_qvalues() {
        let refuse = value("accept-encoding", &[("accept-encoding", b"gzip;q=0, br")]);
        let accept = value("accept-encoding", &[("accept-encoding", b"gzip, br")]);
        assert_ne!(refuse, accept);
        let spaced = value(
            "accept-encoding",
            &[("accept-encoding", b"br, GZIP ; Q = 0")],
        );
        assert_eq!(refuse, spaced);
    }

    #[test]
    fn accept_encoding_empty_and_absent_differ() {
        let empty = value("accept-encoding", &[("accept-encoding", b"")]);
        assert_eq!(empty, Some(Bytes::new()));
        assert_eq!(value("accept-encoding", &[]), None);
    }

    #[test]
    fn key_has_one_slot_per_field() {
        let k = key(
            &["accept", "accept-encoding", "x-missing"],
            &[("accept", b"text/html"), ("accept-encoding", b"gzip")],
        )
        .unwrap();
        assert_eq!(
            k.0,
            vec![
                Some(Bytes::from_static(b"text/html")),
                Some(Bytes::from_static(b"gzip")),
                None
            ]
        );
        assert_eq!(
            secondary_key(&[], &HeaderMap::new()),
            Some(SecondaryKey(vec![]))
        );
    }

    #[test]
    fn oversized_values_not_cached() {
        let big = vec![b'a'; MAX_SECONDARY_KEY_BYTES + 1];
        assert_eq!(key(&["cookie"], &[("cookie", &big)]), None);
        let half = vec![b'a'; MAX_SECONDARY_KEY_BYTES / 2 + 1];
        assert_eq!(
            key(&["x-a", "x-b"], &[("x-a", &half), ("x-b", &half)]),
            None
        );
        let fits = vec![b'a'; MAX_SECONDARY_KEY_BYTES];
        assert!(key(&["cookie"], &[("cookie", &fits)]).is_some());
    }

    #[test]
    fn obs_text_values_kept_as_bytes() {
        let v = value("x-a", &[("x-a", b"caf\xc3\xa9 , \xff")]);
        assert_eq!(v, Some(Bytes::from_static(b"caf\xc3\xa9, \xff")));
        let v = value("accept-encoding", &[("accept-encoding", b"\xff;=;")]);
        assert!(v.is_some());
    }
}
