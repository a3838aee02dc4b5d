//! Building responses: from a stored object (hit, stale, revalidated), from a streamed
//! fetch, and the short synthetic error pages.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{request, Method, Response, StatusCode};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::cache::object::Object;
use crate::cache::{conditional, policy, range};
use crate::coalesce::{BodyReader, ResponseHead};

/// How the cache handled a request, as RFC 9211 `Cache-Status` parameters and as the
/// access log's / metrics' result.
#[derive(Debug, Clone, Default)]
pub struct CacheStatus {
    pub hit: bool,
    /// `fwd=` reason: bypass, method, uri-miss, vary-miss, miss, request, stale.
    pub fwd: Option<&'static str>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<&'static str>,
    /// A stale stored copy was served (grace, stale-while-revalidate, stale-if-error).
    pub stale: bool,
}

impl CacheStatus {
    pub fn hit() -> Self {
        CacheStatus {
            hit: true,
            ..Default::default()
        }
    }

    pub fn fwd(reason: &'static str) -> Self {
        CacheStatus {
            fwd: Some(reason),
            ..Default::default()
        }
    }

    /// Short name for logs and metrics: hit, stale, pass, coalesced, miss or synth.
    pub fn result(&self) -> &'static str {
        if self.stale {
            "stale"
        } else if self.hit {
            "hit"
        } else if matches!(self.fwd, Some("bypass" | "method" | "request")) {
            "pass"
        } else if self.collapsed {
            "coalesced"
        } else if self.fwd.is_some() {
            "miss"
        } else {
            "synth"
        }
    }

    pub fn header_value(&self, cache_name: &str) -> HeaderValue {
        let mut s = String::with_capacity(48);
        s.push_str(cache_name);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = write!(s, "; fwd={f}");
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            let _ = write!(s, "; detail={d}");
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("lacquer"))
    }
}

/// Answer a request from a stored object: Age, client preconditions (304/412), Range
/// (206/416), HEAD without a body.
pub fn from_object(
    req: &request::Parts,
    obj: &Arc<Object>,
    now: Instant,
    mut status: CacheStatus,
) -> (Response<ProxyBody>, CacheStatus) {
    obj.hit();
    let age = obj.age(now);
    status.ttl = Some(obj.freshness.lifetime.as_secs() as i64 - age.as_secs() as i64);
    // Room for Age, Via, Cache-Status and a PoP marker.
    let mut headers = obj.headers.to_map_with(4);
    headers.insert(header::AGE, policy::age_header(age));

    let cond = if obj.status == StatusCode::OK {
        conditional::evaluate(&req.method, &req.headers, obj.status, &headers)
    } else {
        conditional::Precondition::Proceed
    };
    match cond {
        conditional::Precondition::NotModified => {
            let mut h = if crate::cluster::is_forwarded(&req.headers) {
                // A believed hop marker (an unbelieved one is gone by now): a cache of
                // this PoP revalidating its copy, which must end up identical to ours.
                conditional::not_modified_headers_for_cache(&headers)
            } else {
                conditional::not_modified_headers(&headers)
            };
            h.insert(header::AGE, policy::age_header(age));
            let mut resp = Response::new(ProxyBody::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            *resp.headers_mut() = h;
            // The compression step reads what the 200 would have been from the object.
            resp.extensions_mut()
                .insert(crate::compress::FromStore(obj.clone()));
            return (resp, status);
        }
        conditional::Precondition::Failed => {
            return (
                synthetic(StatusCode::PRECONDITION_FAILED, "precondition failed"),
                status,
            );
        }
        conditional::Precondition::Proceed => {}
    }

    let len = obj.content_length();
    let mut code = obj.status;
    let mut body = obj.body.clone();
    if obj.status == StatusCode::OK && req.method == Method::GET {
        match range::evaluate(&req.headers, &headers, len) {
            range::RangeOutcome::Full => {}
            range::RangeOutcome::Partial {
                start,
                end_inclusive,
            } => {
                code = StatusCode::PARTIAL_CONTENT;
                body = slice(&obj.body, start, end_inclusive);
                headers.insert(
                    header::CONTENT_RANGE,
                    range::content_range(start, end_inclusive, len),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
            }
            range::RangeOutcome::Unsatisfiable => {
                let mut resp =
                    synthetic(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, range::unsatisfied_range(len));
                return (resp, status);
            }
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let body = if req.method == Method::HEAD {
        ProxyBody::empty()
    } else {
        ProxyBody::full(body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    *resp.headers_mut() = headers;
    if obj.has_encodings() && code != StatusCode::PARTIAL_CONTENT {
        // The compression step serves the stored encoding rather than compress again.
        resp.extensions_mut()
            .insert(crate::compress::FromStore(obj.clone()));
    }
    (resp, status)
}

/// A fetched response streamed to this client: for a GET with a single byte range of a
/// 200 whose length is known, only that range (206, or 416 beyond its end), so a range
/// request that fills the whole object is not answered with all of it; HEAD without a
/// body; else the whole response.
pub fn from_stream(
    req: &request::Parts,
    head: &ResponseHead,
    reader: BodyReader,
) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = head.status;
    *resp.headers_mut() = head.headers.clone();
    if req.method == Method::HEAD {
        return resp;
    }
    let len = head.content_length.filter(|_| {
        req.method == Method::GET
            && head.status == StatusCode::OK
            && req.headers.contains_key(header::RANGE)
    });
    let Some(len) = len else {
        *resp.body_mut() = ProxyBody::coalesced(reader);
        return resp;
    };
    match range::evaluate(&req.headers, &head.headers, len) {
        range::RangeOutcome::Full => *resp.body_mut() = ProxyBody::coalesced(reader),
        range::RangeOutcome::Partial {
            start,
            end_inclusive,
        } => {
            let size = end_inclusive - start + 1;
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                range::content_range(start, end_inclusive, len),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            *resp.body_mut() = ProxyBody::sliced(reader, start, size);
        }
        range::RangeOutcome::Unsatisfiable => {
            resp = synthetic(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            resp.headers_mut()
                .insert(header::CONTENT_RANGE, range::unsatisfied_range(len));
        }
    }
    resp
}

/// Answer a range request from a stored incomplete response, when its parts hold the
/// whole range asked (RFC 9111 3.3); None sends the request on to the origin: no single
/// byte range, a failed If-Range, or bytes not held. Preconditions are evaluated as for
/// a complete copy: the validators are the representation's.
pub fn from_parts(
    req: &request::Parts,
    obj: &Arc<Object>,
    now: Instant,
    mut status: CacheStatus,
) -> Option<(Response<ProxyBody>, CacheStatus)> {
    let parts = obj.parts()?;
    if req.method != Method::GET {
        return None;
    }
    let age = obj.age(now);
    let mut headers = obj.headers.to_map_with(6);
    headers.insert(header::AGE, policy::age_header(age));
    let len = parts.complete_length();
    let answer = match range::evaluate(&req.headers, &headers, len) {
        range::RangeOutcome::Full => return None,
        range::RangeOutcome::Unsatisfiable => None,
        range::RangeOutcome::Partial {
            start,
            end_inclusive,
        } => Some((start, end_inclusive, parts.slice(start, end_inclusive)?)),
    };
    obj.hit();
    status.ttl = Some(obj.freshness.lifetime.as_secs() as i64 - age.as_secs() as i64);
    status.detail = Some("partial");
    match conditional::evaluate(&req.method, &req.headers, StatusCode::OK, &headers) {
        conditional::Precondition::NotModified => {
            let mut h = if crate::cluster::is_forwarded(&req.headers) {
                // A believed hop marker (an unbelieved one is gone by now): a cache of
                // this PoP revalidating its copy, which must end up identical to ours.
                conditional::not_modified_headers_for_cache(&headers)
            } else {
                conditional::not_modified_headers(&headers)
            };
            h.insert(header::AGE, policy::age_header(age));
            let mut resp = Response::new(ProxyBody::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            *resp.headers_mut() = h;
            return Some((resp, status));
        }
        conditional::Precondition::Failed => {
            let resp = synthetic(StatusCode::PRECONDITION_FAILED, "precondition failed");
            return Some((resp, status));
        }
        conditional::Precondition::Proceed => {}
    }
    let Some((start, end_inclusive, body)) = answer else {
        let mut resp = synthetic(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
        resp.headers_mut()
            .insert(header::CONTENT_RANGE, range::unsatisfied_range(len));
        return Some((resp, status));
    };
    headers.insert(
        header::CONTENT_RANGE,
        range::content_range(start, end_inclusive, len),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    *resp.headers_mut() = headers;
    Some((resp, status))
}

fn slice(body: &Bytes, start: u64, end_inclusive: u64) -> Bytes {
    let len = body.len();
    let s = usize::try_from(start).unwrap_or(len).min(len);
    let e = usize::try_from(end_inclusive.saturating_add(1))
        .unwrap_or(len)
        .min(len);
    body.slice(s..e.max(s))
}

/// A short plain-text response generated by lacquer itself; never cached downstream.
pub fn synthetic(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let text = format!("{} {}\n", status.as_u16(), message);
    let mut resp = Response::new(ProxyBody::full(Bytes::from(text.clone())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len() as u64));
    resp
}
