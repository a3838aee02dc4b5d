//! Reading what an admin client sent: a bounded body, strict JSON, and query parameters.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A client that stops sending mid-body must not hold a connection forever.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// More query parameters than any call takes: refused before decoding.
const MAX_QUERY_PARAMS: usize = 16;

/// The request body, at most `max` bytes (413 beyond).
pub async fn read_body(body: Incoming, headers: &HeaderMap, max: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > max) {
        return Err(too_large(Some(n), max));
    }
    let limited = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {}s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(None, max)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    }
}

fn too_large(declared: Option<u64>, max: u64) -> ApiError {
    let size = declared.map_or_else(|| "body".to_string(), |n| format!("body of {n} bytes"));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("{size} is larger than admin.max_body ({max} bytes)"),
    )
}

/// Strict JSON: the target types deny unknown fields, and serde's message (with line
/// and column) is passed on so the caller sees exactly what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("empty body: expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Decoded query parameters, each name at most once and from an allowed set.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// RFC 3986 query: `name=value` pairs split on `&`, percent-decoded. `+` is kept
    /// as is (it only means a space in HTML forms), so a pasted URL with a `+` in its
    /// path survives.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if out.len() == MAX_QUERY_PARAMS {
                return Err(ApiError::bad_request("too many query parameters"));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)?;
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?} (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::bad_request(format!(
                    "query parameter {name:?} given twice"
                )));
            }
            out.push((name, percent_decode(value)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {name:?}")))
    }

    /// An optional number; junk is an error rather than a silent default.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "query parameter {name}={v:?} is not a valid number"
                    ))
                })
            })
            .transpose()
    }
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad_request("bad percent-encoding in the query"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("query parameter is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let q = Query::parse(
            Some("url=http%3A%2F%2Fh%2Fa%3Fb%3D1%26c&ttl=60"),
            &["url", "ttl"],
        )
        .unwrap();
        assert_eq!(q.get("url"), Some("http://h/a?b=1&c"));
        assert_eq!(q.number::<u64>("ttl").unwrap(), Some(60));
        assert_eq!(q.number::<u64>("version").unwrap(), None);
    }

    #[test]
    fn raw_url_value_is_kept() {
        let q = Query::parse(Some("url=http://h/a+b?x=1"), &["url"]).unwrap();
        assert_eq!(q.get("url"), Some("http://h/a+b?x=1"));
    }

    #[test]
    fn rejects_unknown_duplicate_and_junk() {
        assert!(Query::parse(Some("nope=1"), &["url"]).is_err());
        assert!(Query::parse(Some("url=a&url=b"), &["url"]).is_err());
        assert!(Query::parse(Some("url=%zz"), &["url"]).is_err());
        assert!(Query::parse(Some("url=%4"), &["url"]).is_err());
        assert!(Query::parse(Some("url=%ff"), &["url"]).is_err());
        let many = "url=1&".repeat(40);
        assert!(Query::parse(Some(&many), &["url"]).is_err());
        let q = Query::parse(Some("ttl=abc"), &["ttl"]).unwrap();
        assert!(q.number::<u64>("ttl").is_err());
        assert!(Query::parse(None, &["url"])
            .unwrap()
            .required("url")
            .is_err());
        assert!(Query::parse(Some("url="), &["url"])
            .unwrap()
            .required("url")
            .is_err());
    }

    #[test]
    fn json_errors_say_what_is_wrong() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        assert!(parse_json::<T>(b"  ")
            .unwrap_err()
            .message
            .contains("empty"));
        assert!(parse_json::<T>(b"{\"b\":1}")
            .unwrap_err()
            .message
            .contains("unknown field"));
        assert!(parse_json::<T>(b"{")
            .unwrap_err()
            .message
            .contains("invalid JSON"));
        assert_eq!(parse_json::<T>(b"{\"a\":1}").unwrap().a, 1);
    }
}
