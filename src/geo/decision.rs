//! A geo decision and the responses made from it: the redirect, the
//! annotation header and the `/.lacquer/pop` JSON.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;

use super::pops::{How, LatLon};

/// Query parameter a geo redirect adds to its `Location`. A browser follows
/// a 307 carrying no header we could set, so the marker has to live in the
/// URL; a request that has it is never redirected again (so two PoPs that
/// disagree, e.g. about health, cannot bounce a client between them), and it
/// is removed before the request is cached or sent to the origin.
pub const REDIRECT_MARKER: &str = "_lqpop";

/// Request and response header carrying the decision in `header` mode.
pub const POP_HEADER: &str = "x-lacquer-pop";

/// The path that explains the decision to the caller.
pub const POP_PATH: &str = "/.lacquer/pop";

/// Why a PoP was chosen, as shown in JSON, headers and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// This node's own PoP is the nearest (or the override).
    Local,
    /// Another PoP is nearer by great-circle distance.
    Nearest,
    /// A country or continent override in the PoP table.
    Override,
    /// A record without location and no override, or every PoP down.
    Fallback,
    /// The database has no record for the client.
    NoRecord,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Local => "local",
            Reason::Nearest => "nearest",
            Reason::Override => "override",
            Reason::Fallback => "fallback",
            Reason::NoRecord => "no-record",
        }
    }

    pub(crate) fn from_how(how: How, local: bool) -> Reason {
        match how {
            How::Override | How::Nearest if local => Reason::Local,
            How::Override => Reason::Override,
            How::Nearest => Reason::Nearest,
            How::Fallback => Reason::Fallback,
            How::NoRecord => Reason::NoRecord,
        }
    }
}

/// Which PoP should serve a client, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub client_ip: IpAddr,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub location: Option<LatLon>,
    /// `None` only if the default PoP is missing from the table.
    pub pop: Option<String>,
    /// Where a redirect would send the client.
    pub pop_url: Option<String>,
    pub reason: Reason,
    /// Great-circle distance from the client to the chosen PoP, to 0.1 km.
    pub distance_km: Option<f64>,
    /// Whether the chosen PoP is this node's.
    pub local: bool,
    /// This node's PoP (`[node] pop`).
    pub this_pop: Option<String>,
    /// PoPs skipped because their health checks fail.
    pub down: Vec<String>,
}

impl Decision {
    /// The `X-Lacquer-Pop` value: `NAME; reason=REASON`.
    pub fn header_value(&self) -> Option<HeaderValue> {
        let pop = self.pop.as_deref()?;
        HeaderValue::from_str(&format!("{pop}; reason={}", self.reason.as_str())).ok()
    }

    /// Metric outcome for a request that is served here.
    pub(crate) fn served_outcome(&self) -> &'static str {
        match self.reason {
            Reason::Fallback => "fallback",
            Reason::NoRecord => "no-record",
            _ if self.local => "local",
            _ => "remote",
        }
    }
}

/// A complete response for the lead's body type: status, headers, body.
pub type Reply = (StatusCode, HeaderMap, Bytes);

/// `GET /.lacquer/pop`: the decision as JSON, never cached (it is per client).
pub fn pop_json(decision: &Decision, method: &Method) -> Reply {
    let mut body = serde_json::to_vec_pretty(decision).unwrap_or_default();
    body.push(b'\n');
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    (StatusCode::OK, h, body)
}

/// The 307 to `base_url` + path + query + marker. 307 keeps the method
/// (RFC 9110 §15.4.8); `private` because the answer depends on the client's
/// address, so no shared cache may reuse it for anyone else.
pub fn redirect(
    decision: &Decision,
    base_url: &str,
    path: &str,
    query: Option<&str>,
    from_pop: &str,
    method: &Method,
) -> Option<Reply> {
    let mut location = format!("{base_url}{path}?");
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        location.push_str(q);
        location.push('&');
    }
    location.push_str(REDIRECT_MARKER);
    location.push('=');
    percent_encode_into(from_pop, &mut location);
    let mut h = HeaderMap::new();
    h.insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(v) = decision.header_value() {
        h.insert(POP_HEADER, v);
    }
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(format!("redirecting to {location}\n"))
    };
    Some((StatusCode::TEMPORARY_REDIRECT, h, body))
}

/// Removes every `_lqpop` parameter; `None` when there was none. The rest of
/// the query is kept byte for byte (and an empty query dropped).
pub fn strip_marker(query: &str) -> Option<String> {
    let is_marker = |p: &&str| *p == REDIRECT_MARKER || p.starts_with("_lqpop=");
    if !query.split('&').any(|p| is_marker(&p)) {
        return None;
    }
    Some(
        query
            .split('&')
            .filter(|p| !is_marker(p))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// RFC 3986 §2.3 unreserved characters pass; everything else is escaped.
fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            client_ip: "127.2.0.5".parse().unwrap(),
            country: Some("US".into()),
            continent: Some("NA".into()),
            location: LatLon::new(40.7, -74.0),
            pop: Some("us-east".into()),
            pop_url: Some("http://us.example".into()),
            reason: Reason::Nearest,
            distance_km: Some(300.5),
            local: false,
            this_pop: Some("eu-west".into()),
            down: vec![],
        }
    }

    #[test]
    fn redirect_keeps_path_and_query_and_marks() {
        let d = decision();
        let (status, h, body) = redirect(
            &d,
            "http://us.example",
            "/a/b",
            Some("x=1&y=2"),
            "eu-west",
            &Method::GET,
        )
        .unwrap();
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            h[header::LOCATION],
            "http://us.example/a/b?x=1&y=2&_lqpop=eu-west"
        );
        assert_eq!(h[header::CACHE_CONTROL], "private");
        assert_eq!(h[POP_HEADER], "us-east; reason=nearest");
        assert!(!body.is_empty());
        let (_, h, body) =
            redirect(&d, "http://us.example", "/", None, "a&b", &Method::HEAD).unwrap();
        assert_eq!(h[header::LOCATION], "http://us.example/?_lqpop=a%26b");
        assert!(body.is_empty());
        let (_, h, _) =
            redirect(&d, "http://us.example", "/", Some(""), "e", &Method::GET).unwrap();
        assert_eq!(h[header::LOCATION], "http://us.example/?_lqpop=e");
    }

    #[test]
    fn marker_is_stripped() {
        assert_eq!(strip_marker("a=1&b=2"), None);
        assert_eq!(strip_marker("_lqpopx=1"), None);
        assert_eq!(strip_marker("_lqpop=eu-west").as_deref(), Some(""));
        assert_eq!(
            strip_marker("a=1&_lqpop=eu&b=2").as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(strip_marker("_lqpop&a=1&_lqpop=x").as_deref(), Some("a=1"));
    }

    #[test]
    fn json_shape() {
        let (status, h, body) = pop_json(&decision(), &Method::GET);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["client_ip"], "127.2.0.5");
        assert_eq!(v["pop"], "us-east");
        assert_eq!(v["reason"], "nearest");
        assert_eq!(v["location"]["lat"], 40.7);
        assert_eq!(v["distance_km"], 300.5);
        let (_, _, body) = pop_json(&decision(), &Method::HEAD);
        assert!(body.is_empty());
    }

    #[test]
    fn reasons() {
        assert_eq!(Reason::from_how(How::Nearest, true), Reason::Local);
        assert_eq!(Reason::from_how(How::Override, true), Reason::Local);
        assert_eq!(Reason::from_how(How::Override, false), Reason::Override);
        assert_eq!(Reason::from_how(How::NoRecord, true), Reason::NoRecord);
        assert_eq!(Reason::from_how(How::Fallback, false), Reason::Fallback);
    }
}
