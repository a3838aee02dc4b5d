//! The host patterns of a site's `hosts`: whole names and `*.suffix` wildcards. One
//! reading of them serves validation, the unreachable-site check and the router, so the
//! three cannot disagree on what a pattern matches.

use std::net::Ipv6Addr;

/// Longest host name (RFC 1035 §2.3.4), and so the longest request host worth looking up.
pub const MAX_HOST_LEN: usize = 253;

/// One entry of a site's `hosts`, lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// A whole host name, an IPv4 address, or an IPv6 address in brackets.
    Exact(String),
    /// `*.suffix`: any name that ends in `.suffix` with one or more labels before it
    /// (`*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`).
    Wildcard(String),
}

impl HostPattern {
    /// Reads a pattern as written in a configuration; case does not matter.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.to_ascii_lowercase();
        if lower == "*" {
            return Err("\"*\" is not a host pattern; leave hosts empty to match any host".into());
        }
        if let Some(suffix) = lower.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(format!("{text:?}: only the first label may be \"*\""));
            }
            check_name(suffix).map_err(|e| format!("{text:?}: {e}"))?;
            return Ok(HostPattern::Wildcard(suffix.to_string()));
        }
        if lower.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard must be the whole first label, as in \"*.example.com\""
            ));
        }
        if let Some(inner) = lower.strip_prefix('[') {
            return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
                Some(Ok(_)) => Ok(HostPattern::Exact(lower)),
                _ => Err(format!("{text:?} is not an IPv6 address in brackets")),
            };
        }
        if lower.contains(':') {
            return Err(format!(
                "{text:?} must not carry a port: a site matches its hosts on every port"
            ));
        }
        check_name(&lower).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(HostPattern::Exact(lower))
    }

    /// Whether every host this pattern matches is also matched by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(_), HostPattern::Wildcard(_)) => false,
            (HostPattern::Wildcard(s), HostPattern::Exact(h)) => in_suffix(h, s),
            (HostPattern::Wildcard(s), HostPattern::Wildcard(t)) => t == s || in_suffix(t, s),
        }
    }

    /// Whether `host`, as [`request_host`] gives it, is matched.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => in_suffix(host, suffix),
        }
    }
}

/// `name` is `suffix` with one or more labels in front.
fn in_suffix(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// Labels of letters, digits, '-' and '_' (which real internal names use), 1 to 63
/// bytes each, not starting or ending with '-' (RFC 1123 §2.1).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("host name is empty".into());
    }
    if name.len() > MAX_HOST_LEN {
        return Err(format!("longer than {MAX_HOST_LEN} characters"));
    }
    if name.ends_with('.') {
        return Err("write the name without the trailing dot".into());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(
            "not a valid host name (letters, digits, '-' and '_' in dot-separated labels; \
             internationalised names in their xn-- form)"
                .into(),
        )
    }
}

/// The host of a request as patterns are written: without its port and trailing dot,
/// lower-case (in `buf` when it had upper-case letters, so nothing is allocated).
/// `None` when it is empty, starts with a dot, or is too long to be any pattern's host.
pub fn request_host<'a>(raw: &'a str, buf: &'a mut Option<[u8; MAX_HOST_LEN]>) -> Option<&'a str> {
    let name = if raw.starts_with('[') {
        &raw[..=raw.find(']')?]
    } else {
        raw.rsplit_once(':').map_or(raw, |(name, _port)| name)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.starts_with('.') || name.len() > MAX_HOST_LEN {
        return None;
    }
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(name);
    }
    // Only an upper-case host pays for the buffer (zeroing it cost more than the rest).
    let out = &mut buf.insert([0; MAX_HOST_LEN])[..name.len()];
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    // Lower-casing ASCII letters keeps UTF-8 valid, so this never fails.
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn parses_names_wildcards_and_literals() {
        assert_eq!(
            p("WWW.Example.com"),
            HostPattern::Exact("www.example.com".into())
        );
        assert_eq!(
            p("*.CDN.example.com"),
            HostPattern::Wildcard("cdn.example.com".into())
        );
        assert_eq!(p("192.0.2.1"), HostPattern::Exact("192.0.2.1".into()));
        assert_eq!(p("[::1]"), HostPattern::Exact("[::1]".into()));
        assert_eq!(p("my_host"), HostPattern::Exact("my_host".into()));
        for bad in [
            "",
            "*",
            "*.",
            "www.*.com",
            "w*.example.com",
            "*.*.example.com",
            "example.com:8080",
            "example.com.",
            "-a.example.com",
            "a-.example.com",
            "a..b",
            "ex ample.com",
            "bücher.de",
            "[::1",
            "[nope]",
            "::1",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(HostPattern::parse(&long).is_err());
    }

    #[test]
    fn coverage() {
        let w = p("*.example.com");
        assert!(w.covers(&p("a.example.com")));
        assert!(w.covers(&p("a.b.example.com")));
        assert!(w.covers(&p("*.b.example.com")));
        assert!(w.covers(&w));
        assert!(!w.covers(&p("example.com")));
        assert!(!w.covers(&p("aexample.com")));
        assert!(!w.covers(&p("*.com")));
        assert!(!p("a.example.com").covers(&w));
        assert!(p("a.example.com").covers(&p("A.example.com")));
    }

    #[test]
    fn request_hosts() {
        let mut buf = None;
        assert_eq!(
            request_host("Example.COM:8080", &mut buf),
            Some("example.com")
        );
        let mut buf = None;
        assert_eq!(request_host("example.com.", &mut buf), Some("example.com"));
        let mut buf = None;
        assert_eq!(request_host("[::1]:80", &mut buf), Some("[::1]"));
        let mut buf = None;
        assert_eq!(request_host("[::1", &mut buf), None);
        let mut buf = None;
        assert_eq!(request_host("", &mut buf), None);
        let mut buf = None;
        assert_eq!(request_host(".example.com", &mut buf), None);
        let mut buf = None;
        assert_eq!(request_host(&"a".repeat(300), &mut buf), None);
        let mut buf = None;
        assert_eq!(request_host("ÄB.de", &mut buf), Some("Äb.de"));
        assert!(p("*.example.com").matches("a.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
    }
}
