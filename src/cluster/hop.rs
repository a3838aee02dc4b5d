//! The hop marker's proof. A request carrying `X-Lacquer-Hop` skips the shard tier and
//! the site's access rules and limits on the node that receives it, so the marker is
//! believed only when it comes from a peer's address *and* carries an HMAC-SHA256, made
//! with the cluster token, over the sender's name, the method, the target and a
//! timestamp. A client that learned the header's name cannot forge one; a copied marker
//! is only good for the same request for a minute, and only from a peer's address.
//!
//! `node; t=<unix seconds>; sig=<hex>`. Without a cluster token the marker is the bare
//! node name, and the peer address alone decides (a warning says so at start).
//! HMAC from `ring`, which rustls already builds on.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method};
use ring::hmac;

/// How far a marker's timestamp may be from this node's clock: nodes of one PoP run
/// NTP, and a request is forwarded within milliseconds of being signed.
const SKEW_SECS: u64 = 60;

pub struct HopSigner {
    node: String,
    key: Option<hmac::Key>,
}

impl HopSigner {
    pub fn new(node: &str, token: Option<&str>) -> HopSigner {
        HopSigner {
            node: node.to_string(),
            key: token.map(|t| hmac::Key::new(hmac::HMAC_SHA256, t.as_bytes())),
        }
    }

    pub fn authenticated(&self) -> bool {
        self.key.is_some()
    }

    /// The marker for a request this node sends a peer.
    pub fn marker(&self, method: &Method, target: &str) -> HeaderValue {
        let Some(key) = &self.key else {
            return header_value(&self.node);
        };
        let t = now();
        let tag = hmac::sign(key, &message(&self.node, method, target, t));
        header_value(&format!("{}; t={t}; sig={}", self.node, hex(tag.as_ref())))
    }

    /// Whether `value` is a marker a peer made for this request.
    pub fn verify(&self, value: &HeaderValue, method: &Method, target: &str) -> bool {
        let Some(key) = &self.key else {
            return true;
        };
        let Some((node, t, sig)) = value.to_str().ok().and_then(parse) else {
            return false;
        };
        if now().abs_diff(t) > SKEW_SECS {
            return false;
        }
        let Some(sig) = unhex(sig) else {
            return false;
        };
        hmac::verify(key, &message(node, method, target, t), &sig).is_ok()
    }
}

fn message(node: &str, method: &Method, target: &str, t: u64) -> Vec<u8> {
    format!("{node}\n{method}\n{target}\n{t}").into_bytes()
}

fn parse(v: &str) -> Option<(&str, u64, &str)> {
    let mut parts = v.split(';').map(str::trim);
    let node = parts.next()?;
    let t = parts.next()?.strip_prefix("t=")?.parse().ok()?;
    let sig = parts.next()?.strip_prefix("sig=")?;
    parts.next().is_none().then_some((node, t, sig))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Node names are validated as header values at start; anything else still makes a
/// marker (one that will not verify) rather than a panic.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_verifies_for_its_own_request_only() {
        let edge = HopSigner::new("edge-1", Some("secret"));
        let shard = HopSigner::new("shard-a", Some("secret"));
        let m = edge.marker(&Method::GET, "/a?b=1");
        assert!(shard.verify(&m, &Method::GET, "/a?b=1"));
        assert!(!shard.verify(&m, &Method::GET, "/a?b=2"));
        assert!(!shard.verify(&m, &Method::POST, "/a?b=1"));
        let other = HopSigner::new("shard-a", Some("another"));
        assert!(!other.verify(&m, &Method::GET, "/a?b=1"));
    }

    #[test]
    fn forged_stale_and_malformed_markers_fail() {
        let s = HopSigner::new("shard-a", Some("secret"));
        for v in [
            "edge-1",
            "",
            "edge-1; t=1; sig=00",
            "edge-1; t=x; sig=",
            "edge-1; sig=ab; t=1",
            "édge",
        ] {
            if let Ok(v) = HeaderValue::from_str(v) {
                assert!(!s.verify(&v, &Method::GET, "/"), "{v:?}");
            }
        }
        // A marker signed long ago no longer passes.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let old = now() - 3600;
        let tag = hmac::sign(&key, &message("edge-1", &Method::GET, "/", old));
        let v = header_value(&format!("edge-1; t={old}; sig={}", hex(tag.as_ref())));
        assert!(!s.verify(&v, &Method::GET, "/"));
        // Non-ASCII input to the hex decoder is refused, not sliced mid-character.
        assert!(unhex(&"é".repeat(32)).is_none());
    }

    #[test]
    fn without_a_token_the_address_decides() {
        let s = HopSigner::new("edge-1", None);
        assert!(!s.authenticated());
        assert_eq!(s.marker(&Method::GET, "/"), "edge-1");
        assert!(s.verify(&HeaderValue::from_static("x"), &Method::GET, "/"));
    }
}
