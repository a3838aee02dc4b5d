//! Client preconditions evaluated against a stored response (RFC 9110 section 13,
//! RFC 9111 section 4.3.2).
//!
//! Malformed input never produces a 304: an unparseable entity-tag never
//! matches and an invalid date makes its field ignored, so the worst case is a
//! full response, which is always correct.

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

/// Result of evaluating the request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the stored response as usual (Range evaluation comes next).
    Proceed,
    /// Answer 304 with [`not_modified_headers`].
    NotModified,
    /// Answer 412 Precondition Failed.
    Failed,
}

/// Evaluate preconditions in the order of RFC 9110 section 13.2.2.
pub fn evaluate(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
) -> Precondition {
    // RFC 9110 13.1: preconditions are ignored when the response would not be
    // 2xx (or 412), so only successful stored responses are considered.
    if !status.is_success() {
        return Precondition::Proceed;
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    let stored_etag = stored_etag(resp);

    // Step 1, else step 2.
    if req.contains_key(IF_MATCH) {
        if !if_match(req, stored_etag) {
            return Precondition::Failed;
        }
    } else if let Some(since) = single_date(req, &IF_UNMODIFIED_SINCE) {
        // RFC 9110 13.1.4: ignored when no modification date is available.
        if single_date(resp, &LAST_MODIFIED).is_some_and(|lm| lm > since) {
            return Precondition::Failed;
        }
    }

    // Step 3, else step 4.
    if req.contains_key(IF_NONE_MATCH) {
        if if_none_match_fails(req, stored_etag) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head {
        if let Some(since) = single_date(req, &IF_MODIFIED_SINCE) {
            // RFC 9111 4.3.2: a cache compares against Last-Modified, falling
            // back to the stored Date (the receipt time is not known here).
            let validator = single_date(resp, &LAST_MODIFIED).or_else(|| single_date(resp, &DATE));
            if validator.is_some_and(|t| t <= since) {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Headers that a 304 generated from a stored 200 must carry (RFC 9110
/// 15.4.5). Last-Modified is included because it guides cache updates when
/// the response has no ETag; other representation metadata is left out.
pub fn not_modified_headers(resp: &HeaderMap) -> HeaderMap {
    const KEEP: [HeaderName; 7] = [
        CACHE_CONTROL,
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        VARY,
        LAST_MODIFIED,
    ];
    let mut out = HeaderMap::new();
    for name in KEEP {
        for value in resp.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The fields of a 304 sent to another cache of the PoP (an edge revalidating its copy
/// with its shard): every stored end-to-end field but the body's framing. RFC 9110
/// 15.4.5 allows metadata that exists to guide cache updates, and RFC 9111 3.2 has the
/// edge take each of them into its copy: with the minimal set, an edge kept the old
/// values of fields the origin changed under the same validator (a CSP, a CORS or a
/// Content-Type) for as long as that validator lived.
pub fn not_modified_headers_for_cache(resp: &HeaderMap) -> HeaderMap {
    let mut out = resp.clone();
    out.remove(http::header::CONTENT_LENGTH);
    out.remove(http::header::CONTENT_RANGE);
    out.remove(http::header::TRANSFER_ENCODING);
    out
}

/// An entity-tag (RFC 9110 8.8.3); `opaque` excludes the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a [u8],
}

impl EntityTag<'_> {
    /// RFC 9110 8.8.3.2: both strong and identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// RFC 9110 8.8.3.2: identical opaque-tags, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Parse a complete field value holding exactly one entity-tag.
pub(crate) fn parse_etag(value: &[u8]) -> Option<EntityTag<'_>> {
    let (tag, rest) = parse_etag_prefix(trim_ows(value))?;
    rest.is_empty().then_some(tag)
}

/// The stored response's ETag; absent or malformed (including several ETag
/// lines) means there is nothing to compare against.
pub(crate) fn stored_etag(resp: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut values = resp.get_all(ETAG).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_etag(first.as_bytes())
}

/// Exactly one field line holding a valid HTTP-date; anything else is ignored
/// (RFC 9110 13.1.3 / 13.1.4: invalid or multi-member values are ignored).
pub(crate) fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(first.to_str().ok()?.trim()).ok()
}

/// RFC 9110 13.1.1: "*" matches any current representation (a stored 2xx is
/// one); otherwise a strong comparison against any listed tag.
fn if_match(req: &HeaderMap, stored: Option<EntityTag<'_>>) -> bool {
    match parse_condition_list(req, &IF_MATCH) {
        TagList::Star => true,
        TagList::Tags(tags) => stored.is_some_and(|s| tags.iter().any(|t| t.strong_eq(&s))),
    }
}

/// RFC 9110 13.1.2: the condition is false ("not modified") on "*" or when any
/// listed tag weakly matches.
fn if_none_match_fails(req: &HeaderMap, stored: Option<EntityTag<'_>>) -> bool {
    match parse_condition_list(req, &IF_NONE_MATCH) {
        TagList::Star => true,
        TagList::Tags(tags) => stored.is_some_and(|s| tags.iter().any(|t| t.weak_eq(&s))),
    }
}

enum TagList<'a> {
    Star,
    Tags(Vec<EntityTag<'a>>),
}

/// `"*" / #entity-tag` over all field lines. "*" only counts as the sole
/// member; malformed members are skipped up to the next comma, so they never
/// match anything.
fn parse_condition_list<'a>(req: &'a HeaderMap, name: &HeaderName) -> TagList<'a> {
    let mut members = req
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .filter(|m| !m.is_empty());
    if members.next() == Some(b"*".as_slice()) && members.next().is_none() {
        return TagList::Star;
    }
    let mut tags = Vec::new();
    for line in req.get_all(name) {
        collect_tags(line.as_bytes(), &mut tags);
    }
    TagList::Tags(tags)
}

/// Entity-tags may contain commas, so the list is scanned tag by tag rather
/// than split on commas.
fn collect_tags<'a>(mut rest: &'a [u8], tags: &mut Vec<EntityTag<'a>>) {
    loop {
        rest = skip_separators(rest);
        if rest.is_empty() {
            return;
        }
        match parse_etag_prefix(rest) {
            Some((tag, after)) => {
                let after = trim_ows(after);
                if after.is_empty() || after.first() == Some(&b',') {
                    tags.push(tag);
                    rest = after;
                } else {
                    rest = skip_past_comma(after);
                }
            }
            None => rest = skip_past_comma(rest),
        }
    }
}

/// Parse `[W/] DQUOTE *etagc DQUOTE` at the start of `s`; returns the tag and
/// the remaining bytes.
fn parse_etag_prefix(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = s.strip_prefix(b"\"")?;
    let end = body.iter().position(|&b| b == b'"')?;
    let (opaque, after) = body.split_at(end);
    if !opaque.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    Some((
        EntityTag { weak, opaque },
        after.get(1..).unwrap_or_default(),
    ))
}

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b','))
        .unwrap_or(s.len());
    s.get(start..).unwrap_or_default()
}

fn skip_past_comma(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == b',') {
        Some(i) => s.get(i + 1..).unwrap_or_default(),
        None => &[],
    }
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
    use Precondition::*;

    const T0: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const T1: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const T_1: &str = "Sun, 06 Nov 1994 08:49:36 GMT";

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

    fn stored() -> HeaderMap {
        headers(&[
            ("etag", b"\"v1\""),
            ("last-modified", T0.as_bytes()),
            ("date", T1.as_bytes()),
        ])
    }

    fn eval(req: &[(&str, &[u8])]) -> Precondition {
        evaluate(&Method::GET, &headers(req), StatusCode::OK, &stored())
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(&[]), Proceed);
    }

    #[test]
    fn if_none_match_weak_comparison() {
        assert_eq!(eval(&[("if-none-match", b"\"v1\"")]), NotModified);
        assert_eq!(eval(&[("if-none-match", b"W/\"v1\"")]), NotModified);
        assert_eq!(eval(&[("if-none-match", b"\"v0\", W/\"v1\"")]), NotModified);
        assert_eq!(
            eval(&[("if-none-match", b"\"v0\""), ("if-none-match", b"\"v1\"")]),
            NotModified
        );
        assert_eq!(eval(&[("if-none-match", b"\"v2\"")]), Proceed);
        assert_eq!(eval(&[("if-none-match", b"*")]), NotModified);
        let weak_stored = headers(&[("etag", b"W/\"v1\"")]);
        let req = headers(&[("if-none-match", b"\"v1\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &weak_stored),
            NotModified
        );
    }

    #[test]
    fn if_none_match_on_unsafe_method_fails() {
        let req = headers(&[("if-none-match", b"\"v1\"")]);
        assert_eq!(
            evaluate(&Method::POST, &req, StatusCode::OK, &stored()),
            Failed
        );
        assert_eq!(
            evaluate(&Method::HEAD, &req, StatusCode::OK, &stored()),
            NotModified
        );
    }

    #[test]
    fn if_match_strong_comparison() {
        assert_eq!(eval(&[("if-match", b"\"v1\"")]), Proceed);
        assert_eq!(eval(&[("if-match", b"\"v0\" , \"v1\"")]), Proceed);
        assert_eq!(eval(&[("if-match", b"W/\"v1\"")]), Failed);
        assert_eq!(eval(&[("if-match", b"\"v2\"")]), Failed);
        assert_eq!(eval(&[("if-match", b"*")]), Proceed);
        let weak_stored = headers(&[("etag", b"W/\"v1\"")]);
        let req = headers(&[("if-match", b"\"v1\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &weak_stored),
            Failed
        );
        let req = headers(&[("if-match", b"*")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &HeaderMap::new()),
            Proceed
        );
    }

    #[test]
    fn if_match_without_stored_etag_fails() {
        let req = headers(&[("if-match", b"\"v1\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &HeaderMap::new()),
            Failed
        );
    }

    #[test]
    fn if_match_takes_precedence_over_unmodified_since() {
        // If-Match true: If-Unmodified-Since (which would fail) is skipped.
        assert_eq!(
            eval(&[
                ("if-match", b"\"v1\""),
                ("if-unmodified-since", T_1.as_bytes())
            ]),
            Proceed
        );
    }

    #[test]
    fn if_match_before_if_none_match() {
        assert_eq!(
            eval(&[("if-match", b"\"v0\""), ("if-none-match", b"\"v1\"")]),
            Failed
        );
        assert_eq!(
            eval(&[("if-match", b"\"v1\""), ("if-none-match", b"\"v1\"")]),
            NotModified
        );
    }

    #[test]
    fn if_unmodified_since() {
        assert_eq!(eval(&[("if-unmodified-since", T0.as_bytes())]), Proceed);
        assert_eq!(eval(&[("if-unmodified-since", T1.as_bytes())]), Proceed);
        assert_eq!(eval(&[("if-unmodified-since", T_1.as_bytes())]), Failed);
        assert_eq!(eval(&[("if-unmodified-since", b"yesterday")]), Proceed);
        let no_lm = headers(&[("etag", b"\"v1\"")]);
        let req = headers(&[("if-unmodified-since", T_1.as_bytes())]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &no_lm),
            Proceed
        );
    }

    #[test]
    fn if_modified_since() {
        assert_eq!(eval(&[("if-modified-since", T0.as_bytes())]), NotModified);
        assert_eq!(eval(&[("if-modified-since", T1.as_bytes())]), NotModified);
        assert_eq!(eval(&[("if-modified-since", T_1.as_bytes())]), Proceed);
        // Obsolete formats are valid HTTP-dates (RFC 9110 5.6.7).
        assert_eq!(
            eval(&[("if-modified-since", b"Sunday, 06-Nov-94 08:49:37 GMT")]),
            NotModified
        );
        assert_eq!(
            eval(&[("if-modified-since", b"Sun Nov  6 08:49:37 1994")]),
            NotModified
        );
    }

    #[test]
    fn if_modified_since_ignored_with_if_none_match() {
        assert_eq!(
            eval(&[
                ("if-none-match", b"\"v2\""),
                ("if-modified-since", T1.as_bytes())
            ]),
            Proceed
        );
    }

    #[test]
    fn if_modified_since_only_for_get_head() {
        let req = headers(&[("if-modified-since", T1.as_bytes())]);
        assert_eq!(
            evaluate(&Method::POST, &req, StatusCode::OK, &stored()),
            Proceed
        );
        assert_eq!(
            evaluate(&Method::HEAD, &req, StatusCode::OK, &stored()),
            NotModified
        );
    }

    #[test]
    fn if_modified_since_falls_back_to_date() {
        let resp = headers(&[("date", T0.as_bytes())]);
        let req = headers(&[("if-modified-since", T0.as_bytes())]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &resp),
            NotModified
        );
        let req = headers(&[("if-modified-since", T_1.as_bytes())]);
        assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &resp), Proceed);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &HeaderMap::new()),
            Proceed
        );
    }

    #[test]
    fn invalid_dates_ignored() {
        for bad in [
            &b"not a date"[..],
            b"",
            b"Sun, 06 Nov 1994 08:49:37",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"99999999999999999999",
            b"\xff\xfe",
        ] {
            assert_eq!(eval(&[("if-modified-since", bad)]), Proceed, "{bad:?}");
            assert_eq!(eval(&[("if-unmodified-since", bad)]), Proceed, "{bad:?}");
        }
        // Two lines: more than one member, ignored.
        assert_eq!(
            eval(&[
                ("if-modified-since", T1.as_bytes()),
                ("if-modified-since", T1.as_bytes())
            ]),
            Proceed
        );
        // Invalid stored Last-Modified: fall back to Date.
        let resp = headers(&[("last-modified", b"junk"), ("date", T0.as_bytes())]);
        let req = headers(&[("if-modified-since", T0.as_bytes())]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &resp),
            NotModified
        );
    }

    #[test]
    fn malformed_etags_never_match() {
        for bad in [
            &b"v1"[..],
            b"\"v1",
            b"w/\"v1\"",
            b"W/ \"v1\"",
            b"\"v 1\"",
            b"\"v1\"x",
            b"*, \"v2\"",
            b",,,",
            b"\"",
            b"W/",
            b"\xff",
        ] {
            assert_eq!(eval(&[("if-none-match", bad)]), Proceed, "{bad:?}");
        }
        // A junk member does not hide a good one.
        assert_eq!(eval(&[("if-none-match", b"junk, \"v1\"")]), NotModified);
        assert_eq!(eval(&[("if-none-match", b"\"x\"y, \"v1\"")]), NotModified);
        // Unquoted stored ETag compares as absent.
        let resp = headers(&[("etag", b"v1")]);
        let req = headers(&[("if-none-match", b"\"v1\"")]);
        assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &resp), Proceed);
        // Two stored ETag lines are ambiguous.
        let resp = headers(&[("etag", b"\"v1\""), ("etag", b"\"v2\"")]);
        assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &resp), Proceed);
    }

    #[test]
    fn etags_with_commas() {
        let resp = headers(&[("etag", b"\"a,b\"")]);
        let req = headers(&[("if-none-match", b"\"x\", \"a,b\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &resp),
            NotModified
        );
        let req = headers(&[("if-none-match", b"\"a\", \"b\"")]);
        assert_eq!(evaluate(&Method::GET, &req, StatusCode::OK, &resp), Proceed);
    }

    #[test]
    fn empty_etag_is_valid() {
        let resp = headers(&[("etag", b"\"\"")]);
        let req = headers(&[("if-none-match", b"\"\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::OK, &resp),
            NotModified
        );
    }

    #[test]
    fn non_success_stored_response_ignored() {
        let req = headers(&[("if-none-match", b"*"), ("if-match", b"\"zz\"")]);
        for s in [
            StatusCode::NOT_FOUND,
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert_eq!(evaluate(&Method::GET, &req, s, &stored()), Proceed);
        }
    }

    #[test]
    fn not_modified_headers_filtered() {
        let resp = headers(&[
            ("etag", b"\"v1\""),
            ("cache-control", b"max-age=60"),
            ("cache-control", b"public"),
            ("content-location", b"/a.en"),
            ("date", T0.as_bytes()),
            ("expires", T1.as_bytes()),
            ("vary", b"accept"),
            ("last-modified", T0.as_bytes()),
            ("content-type", b"text/html"),
            ("content-length", b"10"),
            ("set-cookie", b"a=b"),
            ("x-custom", b"1"),
        ]);
        let out = not_modified_headers(&resp);
        assert_eq!(out.len(), 8);
        assert_eq!(out.get_all("cache-control").iter().count(), 2);
        for gone in ["content-type", "content-length", "set-cookie", "x-custom"] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert!(not_modified_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn parse_etag_forms() {
        assert_eq!(
            parse_etag(b" W/\"x\" "),
            Some(EntityTag {
                weak: true,
                opaque: b"x"
            })
        );
        assert_eq!(parse_etag(b"\"x\" \"y\""), None);
        assert_eq!(parse_etag(b""), None);
    }
}
