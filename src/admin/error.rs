//! Every admin answer is JSON; every problem is a 4xx/5xx with `{"error": "..."}` that
//! names what is wrong, so a script (or the CLI) can show it as is.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The body type of every admin response: small, fully built before it is sent.
pub type Body = Full<Bytes>;

pub type ApiResult = Result<Response<Body>, ApiError>;

/// A refused admin call: its status and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// For 405: the methods the path does accept (RFC 9110 15.5.6 requires `Allow`).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("method not allowed here; use {allow}"),
            allow: Some(allow),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
        }
        let mut resp = json(
            self.status,
            &ErrorBody {
                error: &self.message,
            },
        );
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 3: a 401 for a bearer-protected resource names the scheme.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lacquer-admin\""),
            );
        }
        resp
    }
}

/// A JSON response. Admin answers describe live state, so no cache may keep them.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            with_type(status, bytes, "application/json")
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin response");
            with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                b"{\"error\":\"cannot encode the response\"}\n".to_vec(),
                "application/json",
            )
        }
    }
}

/// A response with a body of the given media type.
pub fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_text(resp: Response<Body>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_body_is_json_with_message() {
        let resp = ApiError::bad_request("bad \"thing\"").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
        assert_eq!(v["error"], "bad \"thing\"");
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let resp = ApiError::method_not_allowed("POST").into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn unauthorized_names_the_scheme() {
        let resp = ApiError::new(StatusCode::UNAUTHORIZED, "no").into_response();
        assert!(resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
}
