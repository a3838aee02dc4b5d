//! The WebSocket opening handshake as a proxy sees it: which requests are one, the
//! origin request made of them, and the client's answer made of the origin's 101.
//!
//! An HTTP/1.1 handshake goes to the origin as it came (its Sec-WebSocket-Key, the
//! origin's Accept back unchanged: the two ends check each other). An HTTP/2 one
//! (RFC 8441 extended CONNECT) has no key; the origin is asked over HTTP/1.1, so this
//! node is the client there: it makes the key and checks the origin's Accept.

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Response, StatusCode, Version};

use crate::body::ProxyBody;
use crate::origin::OriginRequest;
use crate::proxy::headers;

/// RFC 6455 4.2.2: what the origin's Accept is the SHA-1 of, after the key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// How the client asked for a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 `GET` with `Connection: Upgrade` and `Upgrade: websocket` (RFC 6455).
    Http1,
    /// HTTP/2 `CONNECT` with `:protocol = websocket` (RFC 8441).
    Http2,
}

/// Whether a comma-separated field has `token` among its elements (any case).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The request asks for a WebSocket tunnel. Other upgrades (h2c, TLS, anything else)
/// are not tunnelled: their Upgrade goes the way of every hop-by-hop field.
pub fn kind(parts: &request::Parts) -> Option<Kind> {
    if parts.method == Method::CONNECT {
        let protocol = parts.extensions.get::<hyper::ext::Protocol>()?;
        return (parts.version == Version::HTTP_2
            && protocol.as_str().eq_ignore_ascii_case("websocket"))
        .then_some(Kind::Http2);
    }
    (parts.method == Method::GET
        && parts.version == Version::HTTP_11
        && has_token(&parts.headers, header::UPGRADE, "websocket")
        && has_token(&parts.headers, header::CONNECTION, "upgrade"))
    .then_some(Kind::Http1)
}

/// Turn the pass-through form of the request (hop-by-hop fields gone) into the origin's
/// handshake. Returns the Accept the origin must answer with, when this node made the
/// key; None when no key could be made.
pub fn prepare(req: &mut OriginRequest, kind: Kind) -> Result<Option<HeaderValue>, &'static str> {
    req.method = Method::GET;
    req.retryable = false;
    let h = &mut req.headers;
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    match kind {
        Kind::Http1 => Ok(None),
        Kind::Http2 => {
            let key = new_key().ok_or("cannot make a WebSocket key")?;
            let accept = accept_for(key.as_bytes());
            h.insert(SEC_WEBSOCKET_KEY, key);
            h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            h.remove(header::CONTENT_LENGTH);
            Ok(Some(accept))
        }
    }
}

/// Is the origin's 101 a WebSocket handshake (and, for a key this node made, the
/// right answer to it)?
pub fn check_answer(headers: &HeaderMap, accept: Option<&HeaderValue>) -> Result<(), &'static str> {
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err("the origin switched to another protocol than WebSocket");
    }
    if let Some(want) = accept {
        if headers.get(SEC_WEBSOCKET_ACCEPT) != Some(want) {
            return Err("the origin's Sec-WebSocket-Accept does not match the key");
        }
    }
    Ok(())
}

/// The client's answer to a handshake the origin accepted: its 101's fields
/// (Sec-WebSocket-Accept, -Protocol, -Extensions, cookies...) under the client's own
/// protocol's status: 101 with Upgrade on HTTP/1.1, 200 on HTTP/2 (RFC 8441 5).
pub fn client_answer(kind: Kind, origin: &HeaderMap) -> Response<ProxyBody> {
    let mut h = origin.clone();
    headers::strip_hop_by_hop(&mut h);
    h.remove(header::CONTENT_LENGTH);
    let mut resp = Response::new(ProxyBody::empty());
    match kind {
        Kind::Http1 => {
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        Kind::Http2 => {
            h.remove(SEC_WEBSOCKET_ACCEPT);
        }
    }
    *resp.headers_mut() = h;
    resp
}

/// A fresh Sec-WebSocket-Key: 16 random bytes, base64.
fn new_key() -> Option<HeaderValue> {
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut raw).ok()?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(raw)).ok()
}

/// The Sec-WebSocket-Accept that answers `key` (RFC 6455 4.2.2).
fn accept_for(key: &[u8]) -> HeaderValue {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(ACCEPT_GUID);
    let encoded = base64::engine::general_purpose::STANDARD.encode(ctx.finish());
    // Base64 is always a valid field value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, version: Version, fields: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder()
            .method(method)
            .version(version)
            .uri("/ws");
        for (k, v) in fields {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn accept_matches_the_rfc_example() {
        // RFC 6455 1.3.
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_websocket_upgrades_are_tunnelled() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert_eq!(
            kind(&parts(Method::GET, Version::HTTP_11, &ws)),
            Some(Kind::Http1)
        );
        let h2c = [
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ];
        assert_eq!(kind(&parts(Method::GET, Version::HTTP_11, &h2c)), None);
        assert_eq!(kind(&parts(Method::POST, Version::HTTP_11, &ws)), None);
        assert_eq!(kind(&parts(Method::GET, Version::HTTP_10, &ws)), None);
        let no_connection = [("upgrade", "websocket")];
        assert_eq!(
            kind(&parts(Method::GET, Version::HTTP_11, &no_connection)),
            None
        );
        // CONNECT without :protocol is plain CONNECT, refused elsewhere.
        assert_eq!(kind(&parts(Method::CONNECT, Version::HTTP_2, &[])), None);
        let mut p = parts(Method::CONNECT, Version::HTTP_2, &[]);
        p.extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(kind(&p), Some(Kind::Http2));
    }

    #[test]
    fn an_http2_handshake_gets_a_key_and_checks_the_accept() {
        let mut req = OriginRequest {
            method: Method::CONNECT,
            path_and_query: http::uri::PathAndQuery::from_static("/ws"),
            headers: HeaderMap::new(),
            body: ProxyBody::empty(),
            retryable: true,
        };
        let accept = prepare(&mut req, Kind::Http2).unwrap().unwrap();
        assert_eq!(req.method, Method::GET);
        let key = req.headers.get(SEC_WEBSOCKET_KEY).unwrap();
        assert_eq!(accept, accept_for(key.as_bytes()));
        let mut answer = HeaderMap::new();
        answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(check_answer(&answer, Some(&accept)).is_err());
        answer.insert(SEC_WEBSOCKET_ACCEPT, accept.clone());
        assert!(check_answer(&answer, Some(&accept)).is_ok());
        let resp = client_answer(Kind::Http2, &answer);
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get(SEC_WEBSOCKET_ACCEPT).is_none());
    }
}
