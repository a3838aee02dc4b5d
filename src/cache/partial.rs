//! Incomplete responses (RFC 9111 3.3) and combining them (RFC 9111 3.4, RFC 9110
//! 15.3.7.3): the byte ranges of one representation that 206 answers brought, kept
//! until they answer later ranges or, joined, make the whole representation.
//!
//! Only a 206 with one `Content-Range: bytes first-last/complete` is kept: a
//! multipart/byteranges body or an unknown complete length (`/*`) cannot be placed in
//! the representation. Parts are joined only when both carry the same strong validator
//! and complete length; otherwise the newer part replaces the stored ones, since bytes of
//! two representations must never be served as one.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_RANGE, DATE, ETAG, LAST_MODIFIED};
use http::HeaderMap;

use super::conditional::{parse_etag, single_date};
use super::object::stored_body;

/// Most separate parts kept per object: a client asking scattered ranges must not make
/// one object a long list to search and charge.
pub const MAX_PARTS: usize = 16;

/// Bytes charged per stored part beyond its body (its `Part` and slot in the list).
pub const PART_OVERHEAD: usize = 48;

/// RFC 9110 8.8.2.2: a Last-Modified at least this long before the response's Date is a
/// strong validator for a cache comparing two responses it received.
const STRONG_LAST_MODIFIED: Duration = Duration::from_secs(60);

/// A 206's `Content-Range`: bytes `first..=last` of a representation `complete` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub complete: u64,
}

impl ContentRange {
    /// Bytes in the range.
    pub fn size(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// The single `Content-Range: bytes first-last/complete` of a 206; None for anything
/// that cannot be placed in a representation (several field lines, another unit, `*`,
/// last before first, last beyond the complete length).
pub fn content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let mut values = headers.get_all(CONTENT_RANGE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let s = value.to_str().ok()?.trim();
    let (unit, rest) = s.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, complete) = rest.trim_start().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, complete) = (number(first)?, number(last)?, number(complete)?);
    (first <= last && last < complete).then_some(ContentRange {
        first,
        last,
        complete,
    })
}

/// `1*DIGIT` that fits in a u64: a position beyond that is no position in a body.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What says two responses carry the same representation, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    /// A strong entity-tag (its opaque part).
    ETag(Box<[u8]>),
    /// A Last-Modified that is strong by RFC 9110 8.8.2.2 (no ETag at all).
    LastModified(SystemTime),
}

/// The response's strong validator: its ETag when strong; without an ETag, a
/// Last-Modified at least a minute before its Date. A weak ETag means none: a weak
/// validator allows different bytes.
pub fn validator(headers: &HeaderMap) -> Option<Validator> {
    let mut etags = headers.get_all(ETAG).iter();
    if let Some(first) = etags.next() {
        if etags.next().is_some() {
            return None;
        }
        let tag = parse_etag(first.as_bytes())?;
        return (!tag.weak).then(|| Validator::ETag(Box::from(tag.opaque)));
    }
    let modified = single_date(headers, &LAST_MODIFIED)?;
    let date = single_date(headers, &DATE)?;
    let strong = date
        .duration_since(modified)
        .is_ok_and(|d| d >= STRONG_LAST_MODIFIED);
    strong.then_some(Validator::LastModified(modified))
}

/// One stored range: `body` holds bytes `first..first + body.len()`.
#[derive(Debug, Clone)]
struct Part {
    first: u64,
    body: Bytes,
}

impl Part {
    /// Position of the last byte (a part is never empty).
    fn last(&self) -> u64 {
        self.first + self.body.len() as u64 - 1
    }
}

/// The stored ranges of one representation: sorted, disjoint, never adjacent (adjacent
/// ranges are joined), each non-empty.
#[derive(Debug, Clone)]
pub struct Parts {
    complete: u64,
    validator: Option<Validator>,
    parts: Vec<Part>,
}

impl Parts {
    /// The first part of a representation; None when the body does not fill its range.
    pub fn new(range: ContentRange, body: Bytes, validator: Option<Validator>) -> Option<Parts> {
        (body.len() as u64 == range.size()).then(|| Parts {
            complete: range.complete,
            validator,
            parts: vec![Part {
                first: range.first,
                body,
            }],
        })
    }

    /// Length of the whole representation.
    pub fn complete_length(&self) -> u64 {
        self.complete
    }

    /// A part with this length and validator may join these (RFC 9111 3.4: both have
    /// the same strong validator).
    pub fn joins(&self, complete: u64, validator: Option<&Validator>) -> bool {
        self.complete == complete
            && self.validator.is_some()
            && self.validator.as_ref() == validator
    }

    /// These parts and a new one of the same representation. Where they overlap the new
    /// bytes are kept (the same, by the strong validator). Past `MAX_PARTS` parts or
    /// `max_bytes` in all, only the new part (with the parts it joined) is kept.
    pub fn with(&self, range: ContentRange, body: Bytes, max_bytes: u64) -> Option<Parts> {
        if body.len() as u64 != range.size() || range.complete != self.complete {
            return None;
        }
        let (first, last) = (range.first, range.last);
        let mut head = Bytes::new();
        let mut tail = Bytes::new();
        let mut start = first;
        let mut kept = Vec::with_capacity(self.parts.len() + 1);
        for p in &self.parts {
            // Apart from the new range, with a gap on either side: kept as it is.
            if p.last().saturating_add(1) < first || p.first > last.saturating_add(1) {
                kept.push(p.clone());
                continue;
            }
            if p.first < first {
                head = p.body.slice(..(first - p.first) as usize);
                start = p.first;
            }
            if p.last() > last {
                tail = p.body.slice((last + 1 - p.first) as usize..);
            }
        }
        let joined = head.len() as u64 + range.size() + tail.len() as u64;
        let new = if head.is_empty() && tail.is_empty() {
            Part { first, body }
        } else if joined > max_bytes {
            // The neighbours it touches would make one part over the bound: the new
            // range alone, as admitted.
            kept.clear();
            Part { first, body }
        } else {
            Part {
                first: start,
                body: stored_body(&[head, body, tail]),
            }
        };
        let total: u64 =
            kept.iter().map(|p| p.body.len() as u64).sum::<u64>() + new.body.len() as u64;
        if kept.len() + 1 > MAX_PARTS || total > max_bytes {
            kept.clear();
        }
        let at = kept.partition_point(|p| p.first < new.first);
        kept.insert(at, new);
        Some(Parts {
            complete: self.complete,
            validator: self.validator.clone(),
            parts: kept,
        })
    }

    /// The whole representation, once the parts cover it.
    pub fn whole(&self) -> Option<&Bytes> {
        match self.parts.as_slice() {
            [p] if p.first == 0 && p.body.len() as u64 == self.complete => Some(&p.body),
            _ => None,
        }
    }

    /// Bytes `start..=end_inclusive`, when one part holds them all.
    pub fn slice(&self, start: u64, end_inclusive: u64) -> Option<Bytes> {
        if end_inclusive < start {
            return None;
        }
        let p = self
            .parts
            .iter()
            .find(|p| p.first <= start && end_inclusive <= p.last())?;
        let from = usize::try_from(start - p.first).ok()?;
        let to = usize::try_from(end_inclusive - p.first).ok()?;
        Some(p.body.slice(from..=to))
    }

    /// Bytes these parts cost in memory (bodies as `object::body_weight` counts them).
    pub fn weight(&self) -> usize {
        self.parts
            .iter()
            .map(|p| super::object::body_weight(p.body.len()) + PART_OVERHEAD)
            .sum()
    }

    /// Number of separate parts.
    pub fn count(&self) -> usize {
        self.parts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cr(v: &str) -> Option<ContentRange> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, HeaderValue::from_str(v).unwrap());
        content_range(&h)
    }

    fn range(first: u64, last: u64, complete: u64) -> ContentRange {
        ContentRange {
            first,
            last,
            complete,
        }
    }

    fn etag() -> Option<Validator> {
        Some(Validator::ETag(Box::from(&b"v1"[..])))
    }

    /// Parts of "0123456789" holding `first..=last`.
    fn part(first: u64, last: u64) -> (ContentRange, Bytes) {
        let all = b"0123456789";
        (
            range(first, last, 10),
            Bytes::copy_from_slice(&all[first as usize..=last as usize]),
        )
    }

    #[test]
    fn content_range_single_known_length_only() {
        assert_eq!(cr("bytes 0-4/10"), Some(range(0, 4, 10)));
        assert_eq!(cr("Bytes 9-9/10"), Some(range(9, 9, 10)));
        for bad in [
            "bytes 4-9/*",
            "bytes */10",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes 0-4/",
            "bytes -1-4/10",
            "bytes 0-4",
            "items 0-4/10",
            "bytes 0 -4/10",
            "bytes 0-4/99999999999999999999999",
            "bytes=0-4/10",
        ] {
            assert_eq!(cr(bad), None, "{bad}");
        }
        let mut two = HeaderMap::new();
        two.append(CONTENT_RANGE, HeaderValue::from_static("bytes 0-4/10"));
        two.append(CONTENT_RANGE, HeaderValue::from_static("bytes 0-4/10"));
        assert_eq!(content_range(&two), None);
        assert_eq!(content_range(&HeaderMap::new()), None);
    }

    #[test]
    fn validators_strong_only() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(validator(&h(&[("etag", "\"v1\"")])), etag());
        assert_eq!(validator(&h(&[("etag", "W/\"v1\"")])), None);
        assert_eq!(validator(&h(&[])), None);
        let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert!(matches!(
            validator(&h(&[
                ("last-modified", lm),
                ("date", "Sun, 06 Nov 1994 08:50:37 GMT")
            ])),
            Some(Validator::LastModified(_))
        ));
        // Modified within the minute before Date: it may change again within its second.
        assert_eq!(
            validator(&h(&[
                ("last-modified", lm),
                ("date", "Sun, 06 Nov 1994 08:50:36 GMT")
            ])),
            None
        );
        assert_eq!(validator(&h(&[("last-modified", lm)])), None);
    }

    #[test]
    fn body_must_fill_its_range() {
        assert!(Parts::new(range(4, 9, 10), Bytes::from_static(b"01234"), None).is_none());
        assert!(Parts::new(range(5, 9, 10), Bytes::from_static(b"01234"), None).is_some());
    }

    #[test]
    fn parts_join_and_complete() {
        let (r, b) = part(0, 3);
        let p = Parts::new(r, b, etag()).unwrap();
        assert_eq!(p.slice(1, 2).unwrap(), "12");
        assert!(p.slice(3, 4).is_none());
        let (r, b) = part(7, 9);
        let p = p.with(r, b, 100).unwrap();
        assert_eq!(p.count(), 2);
        assert!(p.whole().is_none());
        assert_eq!(p.slice(7, 9).unwrap(), "789");
        // Adjacent on the left, overlapping on the right.
        let (r, b) = part(4, 8);
        let p = p.with(r, b, 100).unwrap();
        assert_eq!(p.count(), 1);
        assert_eq!(p.whole().unwrap(), "0123456789");
    }

    #[test]
    fn a_part_inside_a_stored_one_keeps_both_ends() {
        let (r, b) = part(0, 9);
        let p = Parts::new(r, b, etag()).unwrap();
        let (r, b) = part(3, 5);
        let p = p.with(r, b, 100).unwrap();
        assert_eq!(p.whole().unwrap(), "0123456789");
    }

    #[test]
    fn joining_needs_the_same_strong_validator_and_length() {
        let (r, b) = part(0, 3);
        let p = Parts::new(r, b, etag()).unwrap();
        assert!(p.joins(10, etag().as_ref()));
        assert!(!p.joins(11, etag().as_ref()));
        assert!(!p.joins(10, None));
        assert!(!p.joins(10, Some(&Validator::ETag(Box::from(&b"v2"[..])))));
        let (r, b) = part(0, 3);
        let none = Parts::new(r, b, None).unwrap();
        assert!(
            !none.joins(10, None),
            "no validator, no proof of the same bytes"
        );
    }

    #[test]
    fn bounded_in_count_and_bytes() {
        let big = 1000;
        let mut p = Parts::new(range(0, 0, big), Bytes::from_static(b"x"), etag()).unwrap();
        for i in 1..MAX_PARTS as u64 {
            p = p
                .with(range(i * 2, i * 2, big), Bytes::from_static(b"x"), 1000)
                .unwrap();
        }
        assert_eq!(p.count(), MAX_PARTS);
        let p = p
            .with(range(100, 100, big), Bytes::from_static(b"y"), 1000)
            .unwrap();
        assert_eq!(p.count(), 1, "past the bound only the newest part stays");
        assert_eq!(p.slice(100, 100).unwrap(), "y");
        let p = p
            .with(range(200, 209, big), Bytes::from_static(b"0123456789"), 10)
            .unwrap();
        assert_eq!(
            p.count(),
            1,
            "past the byte bound only the newest part stays"
        );
        // Joining its neighbour would make one part over the bound: the new range alone.
        let p = p
            .with(range(210, 219, big), Bytes::from_static(b"abcdefghij"), 15)
            .unwrap();
        assert_eq!(p.count(), 1);
        assert_eq!(p.slice(210, 219).unwrap(), "abcdefghij");
        assert!(p.slice(209, 210).is_none());
    }
}
