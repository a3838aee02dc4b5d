//! Serving Range requests from a cached full object (RFC 9110 section 14).
//!
//! Only a single byte range is served. Anything else (several ranges, other
//! units, syntax errors) yields the full representation, which RFC 9110 14.2
//! allows: "A server MAY ignore the Range header field".

use http::header::{IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue};

use super::conditional::{parse_etag, single_date, stored_etag};

/// How to answer a GET that may carry Range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes `start..=end_inclusive`.
    Partial { start: u64, end_inclusive: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decide how to serve `req` from a stored representation of `len` bytes with
/// response headers `resp`.
///
/// Zero-length bodies: RFC 9110 14.1.1 says the only satisfiable range-spec
/// for an empty representation is a suffix-range with a non-zero length, yet
/// no `Content-Range` can describe an empty range, so that case is answered
/// with the (empty) full body; every other range on an empty body is
/// unsatisfiable.
pub fn evaluate(req: &HeaderMap, resp: &HeaderMap, len: u64) -> RangeOutcome {
    let Some(range) = single_value(req) else {
        return RangeOutcome::Full;
    };
    // RFC 9110 13.1.5: If-Range is only looked at when Range is present, and a
    // failed (or unusable) If-Range means "send everything".
    if req.contains_key(IF_RANGE) && !if_range_matches(req, resp) {
        return RangeOutcome::Full;
    }
    match parse_byte_range(range.as_bytes()) {
        Some(spec) => resolve(spec, len),
        None => RangeOutcome::Full,
    }
}

/// The request asks one byte range this module understands (`evaluate` would not
/// ignore it): such a request can be forwarded as it is and its 206 stored as a part.
pub fn is_single_range(req: &HeaderMap) -> bool {
    single_value(req).is_some_and(|v| parse_byte_range(v.as_bytes()).is_some())
}

/// `Content-Range` for a 206: "bytes a-b/len".
pub fn content_range(start: u64, end_inclusive: u64, len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {start}-{end_inclusive}/{len}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// `Content-Range` for a 416 (RFC 9110 15.5.17): "bytes */len".
pub fn unsatisfied_range(len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{len}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// A syntactically valid single byte-range-spec (RFC 9110 14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `first-last` or `first-` (last = None).
    FromTo { first: u64, last: Option<u64> },
    /// `-suffix`: the final `suffix` bytes.
    Suffix(u64),
}

fn resolve(spec: ByteRange, len: u64) -> RangeOutcome {
    match spec {
        // RFC 9110 14.1.2: satisfiable iff first-pos < length; last-pos is
        // clamped to the end of the representation.
        ByteRange::FromTo { first, last } => {
            if first >= len {
                return RangeOutcome::Unsatisfiable;
            }
            let end_of_body = len - 1;
            let end = last.map_or(end_of_body, |l| l.min(end_of_body));
            RangeOutcome::Partial {
                start: first,
                end_inclusive: end,
            }
        }
        // A zero suffix-length is never satisfiable; a suffix longer than the
        // body means the whole body.
        ByteRange::Suffix(0) => RangeOutcome::Unsatisfiable,
        ByteRange::Suffix(_) if len == 0 => RangeOutcome::Full,
        ByteRange::Suffix(n) => RangeOutcome::Partial {
            start: len.saturating_sub(n),
            end_inclusive: len - 1,
        },
    }
}

/// The Range field must be a single line: several lines are equivalent to a
/// multi-range list, which is served in full.
fn single_value(req: &HeaderMap) -> Option<&HeaderValue> {
    let mut values = req.get_all(RANGE).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// `Range: bytes=<one range-spec>`; `None` for anything we choose to ignore:
/// other or malformed units, several ranges, invalid specs (RFC 9110 14.2).
fn parse_byte_range(value: &[u8]) -> Option<ByteRange> {
    let value = trim_ows(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    let (unit, set) = value.split_at(eq);
    // Range unit names are case-insensitive (RFC 9110 14.1); no whitespace is
    // allowed around "=".
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let set = set.get(1..)?;
    // Empty list elements are allowed and meaningless (RFC 9110 5.6.1).
    let mut specs = set
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    parse_spec(spec)
}

fn parse_spec(spec: &[u8]) -> Option<ByteRange> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = spec.split_at(dash);
    let last = last.get(1..)?;
    if first.is_empty() {
        return Some(ByteRange::Suffix(parse_pos(last)?));
    }
    let first = parse_pos(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_pos(last)?)
    };
    // RFC 9110 14.1.2: last-pos below first-pos makes the spec invalid.
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(ByteRange::FromTo { first, last })
}

/// `1*DIGIT`, saturating: a position beyond u64 is beyond any body, so
/// saturation keeps the meaning (unsatisfiable start, clamped end, whole-body
/// suffix) without overflow.
fn parse_pos(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// RFC 9110 13.1.5: an entity-tag must match strongly; a date must exactly
/// equal the stored Last-Modified. Malformed or repeated If-Range never
/// matches.
fn if_range_matches(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let mut values = req.get_all(IF_RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let bytes = trim_ows(value.as_bytes());
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        let (Some(tag), Some(stored)) = (parse_etag(bytes), stored_etag(resp)) else {
            return false;
        };
        return tag.strong_eq(&stored);
    }
    let Some(date) = value
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    else {
        return false;
    };
    single_date(resp, &LAST_MODIFIED) == Some(date)
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
    use http::HeaderName;
    use RangeOutcome::*;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

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
        headers(&[("etag", b"\"v1\""), ("last-modified", LM.as_bytes())])
    }

    fn range(v: &[u8], len: u64) -> RangeOutcome {
        evaluate(&headers(&[("range", v)]), &stored(), len)
    }

    fn part(start: u64, end_inclusive: u64) -> RangeOutcome {
        Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn no_range_is_full() {
        assert_eq!(evaluate(&HeaderMap::new(), &stored(), 100), Full);
    }

    #[test]
    fn int_ranges() {
        assert_eq!(range(b"bytes=0-9", 100), part(0, 9));
        assert_eq!(range(b"bytes=10-", 100), part(10, 99));
        assert_eq!(range(b"bytes=99-99", 100), part(99, 99));
        assert_eq!(range(b"bytes=0-", 100), part(0, 99));
        assert_eq!(range(b"bytes=5-5", 100), part(5, 5));
    }

    #[test]
    fn end_clamped() {
        assert_eq!(range(b"bytes=50-1000", 100), part(50, 99));
        assert_eq!(range(b"bytes=0-99999999999999999999999", 100), part(0, 99));
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(range(b"bytes=-10", 100), part(90, 99));
        assert_eq!(range(b"bytes=-100", 100), part(0, 99));
        assert_eq!(range(b"bytes=-500", 100), part(0, 99));
        assert_eq!(range(b"bytes=-99999999999999999999999", 100), part(0, 99));
        assert_eq!(range(b"bytes=-0", 100), Unsatisfiable);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(range(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(range(b"bytes=100-200", 100), Unsatisfiable);
        assert_eq!(range(b"bytes=99999999999999999999999-", 100), Unsatisfiable);
        assert_eq!(
            range(
                b"bytes=99999999999999999999998-99999999999999999999999",
                u64::MAX
            ),
            Unsatisfiable
        );
    }

    #[test]
    fn zero_length_body() {
        assert_eq!(range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(range(b"bytes=0-0", 0), Unsatisfiable);
        assert_eq!(range(b"bytes=-0", 0), Unsatisfiable);
        assert_eq!(range(b"bytes=-5", 0), Full);
    }

    #[test]
    fn huge_length() {
        assert_eq!(
            range(b"bytes=-1", u64::MAX),
            part(u64::MAX - 1, u64::MAX - 1)
        );
        assert_eq!(range(b"bytes=0-", u64::MAX), part(0, u64::MAX - 1));
    }

    #[test]
    fn whitespace_and_case() {
        assert_eq!(range(b" bytes=0-9 ", 100), part(0, 9));
        assert_eq!(range(b"Bytes=0-9", 100), part(0, 9));
        assert_eq!(range(b"BYTES=0-9", 100), part(0, 9));
        assert_eq!(range(b"bytes= 0-9 ,", 100), part(0, 9));
        assert_eq!(range(b"bytes=,0-9", 100), part(0, 9));
    }

    #[test]
    fn multiple_ranges_full() {
        assert_eq!(range(b"bytes=0-1,5-6", 100), Full);
        assert_eq!(range(b"bytes=0-1, -5", 100), Full);
        let req = headers(&[("range", b"bytes=0-1"), ("range", b"bytes=5-6")]);
        assert_eq!(evaluate(&req, &stored(), 100), Full);
    }

    #[test]
    fn malformed_is_full() {
        for bad in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=,",
            b"bytes=-",
            b"bytes=a-b",
            b"bytes=1",
            b"bytes=1-2-3",
            b"bytes=--1",
            b"bytes=+1-2",
            b"bytes=1 -2",
            b"bytes=0x10-",
            b"bytes=10-5",
            b"bytes=-1-",
            b"bytes =0-1",
            b"items=0-1",
            b"bytes0-1",
            b"=0-1",
            b"bytes=\xff-1",
            b"bytes=\xd9\xa1-",
        ] {
            assert_eq!(range(bad, 100), Full, "{bad:?}");
        }
    }

    #[test]
    fn if_range_etag_must_match_strongly() {
        let req = |ir: &[u8]| headers(&[("range", b"bytes=0-9"), ("if-range", ir)]);
        assert_eq!(evaluate(&req(b"\"v1\""), &stored(), 100), part(0, 9));
        assert_eq!(evaluate(&req(b"\"v2\""), &stored(), 100), Full);
        assert_eq!(evaluate(&req(b"W/\"v1\""), &stored(), 100), Full);
        assert_eq!(evaluate(&req(b"\"v1"), &stored(), 100), Full);
        let weak = headers(&[("etag", b"W/\"v1\"")]);
        assert_eq!(evaluate(&req(b"\"v1\""), &weak, 100), Full);
        assert_eq!(evaluate(&req(b"\"v1\""), &HeaderMap::new(), 100), Full);
    }

    #[test]
    fn if_range_date_must_match_exactly() {
        let req = |ir: &[u8]| headers(&[("range", b"bytes=0-9"), ("if-range", ir)]);
        assert_eq!(evaluate(&req(LM.as_bytes()), &stored(), 100), part(0, 9));
        assert_eq!(
            evaluate(&req(b"Sun, 06 Nov 1994 08:49:38 GMT"), &stored(), 100),
            Full
        );
        assert_eq!(
            evaluate(&req(b"Sun, 06 Nov 1994 08:49:36 GMT"), &stored(), 100),
            Full
        );
        assert_eq!(evaluate(&req(b"junk"), &stored(), 100), Full);
        assert_eq!(evaluate(&req(b""), &stored(), 100), Full);
        let no_lm = headers(&[("etag", b"\"v1\"")]);
        assert_eq!(evaluate(&req(LM.as_bytes()), &no_lm, 100), Full);
    }

    #[test]
    fn if_range_repeated_is_full() {
        let req = headers(&[
            ("range", b"bytes=0-9"),
            ("if-range", b"\"v1\""),
            ("if-range", b"\"v1\""),
        ]);
        assert_eq!(evaluate(&req, &stored(), 100), Full);
    }

    #[test]
    fn if_range_without_range_is_ignored() {
        let req = headers(&[("if-range", b"\"v2\"")]);
        assert_eq!(evaluate(&req, &stored(), 100), Full);
    }

    #[test]
    fn if_range_mismatch_beats_unsatisfiable() {
        let req = headers(&[("range", b"bytes=500-"), ("if-range", b"\"v2\"")]);
        assert_eq!(evaluate(&req, &stored(), 100), Full);
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(0, 9, 100), "bytes 0-9/100");
        assert_eq!(
            content_range(u64::MAX - 1, u64::MAX - 1, u64::MAX),
            "bytes 18446744073709551614-18446744073709551614/18446744073709551615"
        );
        assert_eq!(unsatisfied_range(100), "bytes */100");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }
}
