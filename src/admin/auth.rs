//! Bearer-token authentication (RFC 6750 2.1) for the admin API.

use http::header::{self, HeaderMap};
use http::StatusCode;

use super::error::ApiError;

/// Who may call what: the token (if one is configured) and the endpoints open without it.
#[derive(Debug, Clone)]
pub struct Auth {
    token: Option<String>,
    open: Vec<String>,
}

impl Auth {
    pub fn new(token: Option<String>, open: Vec<String>) -> Self {
        Auth { token, open }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `endpoint` is the open-endpoint name ("health", "ready", "metrics") of the call,
    /// or `None` for every other call, which always needs the token when one is set.
    pub fn check(&self, endpoint: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if endpoint.is_some_and(|e| self.open.iter().any(|o| o == e)) {
            return Ok(());
        }
        let Some(given) = bearer(headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer <token>)",
            ));
        };
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "token rejected"))
        }
    }
}

/// The credentials of `Authorization: Bearer <token>`. The scheme name is
/// case-insensitive (RFC 9110 11.1); more than one Authorization field is ambiguous
/// and counts as none.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, credentials) = value.to_str().ok()?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares without an early exit, so the time taken does not tell an attacker how
/// many leading bytes of a guess were right. Only the lengths (not secret: the
/// attacker chose one of them) influence the time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    // Keeps the optimiser from turning the loop back into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(auth: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn auth() -> Auth {
        Auth::new(Some("s3cret".into()), vec!["health".into()])
    }

    #[test]
    fn constant_time_eq_cases() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        // Lengths differing by a multiple of 256 must not cancel out.
        assert!(!constant_time_eq(&[0; 256], b""));
    }

    #[test]
    fn right_token_passes() {
        assert!(auth().check(None, &headers(&["Bearer s3cret"])).is_ok());
        assert!(auth().check(None, &headers(&["bearer  s3cret "])).is_ok());
    }

    #[test]
    fn wrong_or_missing_token_is_401() {
        for h in [
            headers(&[]),
            headers(&["Bearer nope"]),
            headers(&["Basic s3cret"]),
            headers(&["Bearer"]),
            headers(&["Bearer s3cret", "Bearer s3cret"]),
        ] {
            let e = auth().check(None, &h).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn open_endpoints_skip_the_token() {
        assert!(auth().check(Some("health"), &headers(&[])).is_ok());
        assert!(auth().check(Some("metrics"), &headers(&[])).is_err());
    }

    #[test]
    fn without_a_token_everything_is_open() {
        let a = Auth::new(None, Vec::new());
        assert!(a.check(None, &headers(&[])).is_ok());
    }
}
