//! Templates: operator text with `{variable}`s filled in per request, for header
//! values (`Location`, header edits). Parsed once at config load into literal and
//! variable segments, so a request only copies strings.
//!
//! Variables: `client_ip`, `host` (without port), `path`, `query` (without `?`, empty
//! when none), `uri` (path plus `?query` when the query is not empty), `scheme`,
//! `pop`, `node`, `site`, and `cache` (the Cache-Status result, only in response
//! headers). `{{` and `}}` are literal braces.
//!
//! Every rendered value is a valid header value: literals are checked at parse time
//! (ASCII without control characters), and in a variable's value every byte outside visible
//! ASCII (controls, space, DEL, non-ASCII) is percent-encoded. A client chooses its
//! path and Host; with that rule no byte of them can end a header line or smuggle a
//! field, and a `Location` built from them stays a well-formed URI. `%` itself is not
//! encoded: a path arrives percent-encoded already, and encoding it again would
//! change the URI a redirect points to.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderValue;

/// The request (and response) facts a template can use. Strings are as received;
/// rendering makes them safe.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub client_ip: IpAddr,
    /// The request's host; a `:port` suffix is dropped when rendered.
    pub host: &'a str,
    pub path: &'a str,
    /// Without the `?`; empty when the request has none.
    pub query: &'a str,
    pub scheme: &'a str,
    pub pop: &'a str,
    pub node: &'a str,
    pub site: &'a str,
    /// The Cache-Status result (`hit`, `miss`, `pass`, ...); empty on requests.
    pub cache: &'a str,
}

/// One template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    Host,
    Path,
    Query,
    Uri,
    Scheme,
    Pop,
    Node,
    Site,
    Cache,
}

const NAMES: [(&str, Var); 10] = [
    ("client_ip", Var::ClientIp),
    ("host", Var::Host),
    ("path", Var::Path),
    ("query", Var::Query),
    ("uri", Var::Uri),
    ("scheme", Var::Scheme),
    ("pop", Var::Pop),
    ("node", Var::Node),
    ("site", Var::Site),
    ("cache", Var::Cache),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// Bytes of literal text: the rendered value's size before variables.
    literal_len: usize,
}

/// Validates a template for the config checker: the error names the offending part.
pub fn check(text: &str, allow_cache: bool) -> Result<(), String> {
    Template::parse(text, allow_cache).map(drop)
}

impl Template {
    /// Parses `text`. `allow_cache` admits `{cache}`, which only a response has.
    pub fn parse(text: &str, allow_cache: bool) -> Result<Template, String> {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "template {text:?} contains the control character {c:?}; header values cannot"
            ));
        }
        if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
            return Err(format!(
                "template {text:?} contains the non-ASCII character {c:?}; header values are \
                 ASCII (percent-encode it in a URL)"
            ));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(format!(
                    "template {text:?}: '}}' at byte {} closes nothing (write '}}}}' for a literal brace)",
                    text.len() - tail.len()
                ));
            } else {
                let inner = &tail[1..];
                let Some(end) = inner
                    .find(['}', '{'])
                    .filter(|&e| inner[e..].starts_with('}'))
                else {
                    return Err(format!(
                        "template {text:?}: '{{' at byte {} is not closed (write '{{{{' for a literal brace)",
                        text.len() - tail.len()
                    ));
                };
                let name = &inner[..end];
                let var = NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                        format!(
                            "template {text:?}: unknown variable {{{name}}} (known: {})",
                            known.join(", ")
                        )
                    })?;
                if var == Var::Cache && !allow_cache {
                    return Err(format!(
                        "template {text:?}: {{cache}} is only known for responses, not here"
                    ));
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal).into()));
                }
                segments.push(Segment::Var(var));
                rest = &inner[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal.into()));
        }
        let literal_len = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.len(),
                Segment::Var(_) => 0,
            })
            .sum();
        Ok(Template {
            segments,
            literal_len,
        })
    }

    /// The whole text when the template has no variable: the caller can build its
    /// value once instead of per request.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// Whether the template uses `var` (`Var::Uri` also counts as using path and query).
    pub fn uses(&self, var: Var) -> bool {
        self.segments.iter().any(|s| match s {
            Segment::Var(v) => {
                *v == var || (*v == Var::Uri && matches!(var, Var::Path | Var::Query))
            }
            Segment::Literal(_) => false,
        })
    }

    /// Appends the rendered text to `out`.
    pub fn render(&self, vars: &Vars, out: &mut String) {
        out.reserve(self.literal_len + 32);
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var(v) => render_var(*v, vars, out),
            }
        }
    }

    /// The rendered text as a header value.
    pub fn header_value(&self, vars: &Vars) -> HeaderValue {
        let mut s = String::new();
        self.render(vars, &mut s);
        // Takes the buffer without a copy. Rendering only emits valid bytes, so the
        // fallback is never taken; it keeps a bug from being a panic.
        HeaderValue::from_maybe_shared(Bytes::from(s)).unwrap_or(HeaderValue::from_static(""))
    }
}

fn render_var(var: Var, vars: &Vars, out: &mut String) {
    match var {
        Var::ClientIp => {
            // A v4 client on a dual-stack socket appears as ::ffff:a.b.c.d.
            let _ = write!(out, "{}", vars.client_ip.to_canonical());
        }
        Var::Host => push_safe(out, without_port(vars.host)),
        Var::Path => push_safe(out, vars.path),
        Var::Query => push_safe(out, vars.query),
        Var::Uri => {
            push_safe(out, vars.path);
            if !vars.query.is_empty() {
                out.push('?');
                push_safe(out, vars.query);
            }
        }
        Var::Scheme => push_safe(out, vars.scheme),
        Var::Pop => push_safe(out, vars.pop),
        Var::Node => push_safe(out, vars.node),
        Var::Site => push_safe(out, vars.site),
        Var::Cache => push_safe(out, vars.cache),
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// Appends `s`, percent-encoding every byte that is not visible ASCII.
fn push_safe(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| !b.is_ascii_graphic()) {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes()[i];
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        // A non-ASCII char is encoded byte by byte: step over all of its bytes.
        let width = rest[i..].chars().next().map_or(1, char::len_utf8);
        for &b in &rest.as_bytes()[i + 1..i + width] {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        rest = &rest[i + width..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(path: &'a str, query: &'a str, host: &'a str) -> Vars<'a> {
        Vars {
            client_ip: "::ffff:192.0.2.7".parse().unwrap(),
            host,
            path,
            query,
            scheme: "https",
            pop: "eu-west",
            node: "edge-1",
            site: "shop",
            cache: "hit",
        }
    }

    fn render(text: &str, v: &Vars) -> String {
        let t = Template::parse(text, true).unwrap();
        let mut out = String::new();
        t.render(v, &mut out);
        out
    }

    #[test]
    fn renders_every_variable() {
        let v = vars("/a/b", "x=1&y=2", "Example.com:8443");
        assert_eq!(
            render(
                "{scheme}://{host}{uri} p={path} q={query} ip={client_ip} {pop}/{node}/{site}/{cache}",
                &v
            ),
            "https://Example.com/a/b?x=1&y=2 p=/a/b q=x=1&y=2 ip=192.0.2.7 eu-west/edge-1/shop/hit"
        );
        let v = vars("/", "", "[2001:db8::1]:80");
        assert_eq!(render("{host}|{uri}|{query}", &v), "[2001:db8::1]|/|");
        let mut v = vars("/", "", "h");
        v.client_ip = "2001:db8::9".parse().unwrap();
        assert_eq!(render("{client_ip}", &v), "2001:db8::9");
    }

    #[test]
    fn braces_and_literals() {
        let v = vars("/p", "", "h");
        assert_eq!(render("{{host}} is {host}", &v), "{host} is h");
        assert_eq!(render("}}{{", &v), "}{");
        assert_eq!(render("", &v), "");
        let t = Template::parse("plain {{text}}", false).unwrap();
        assert_eq!(t.as_literal(), Some("plain {text}"));
        assert_eq!(Template::parse("", false).unwrap().as_literal(), Some(""));
        let t = Template::parse("a{path}", false).unwrap();
        assert_eq!(t.as_literal(), None);
        assert!(t.uses(Var::Path) && !t.uses(Var::Host));
        assert!(Template::parse("{uri}", false).unwrap().uses(Var::Query));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let err = |t: &str, cache: bool| Template::parse(t, cache).unwrap_err();
        let e = err("https://{hots}/", false);
        assert!(e.contains("unknown variable {hots}"), "{e}");
        assert!(e.contains("client_ip"), "{e}");
        let e = err("a{host", false);
        assert!(e.contains("'{' at byte 1 is not closed"), "{e}");
        let e = err("a{ho{st}", false);
        assert!(e.contains("not closed"), "{e}");
        let e = err("a}b", false);
        assert!(e.contains("'}' at byte 1 closes nothing"), "{e}");
        let e = err("{}", false);
        assert!(e.contains("unknown variable {}"), "{e}");
        let e = err("x {cache}", false);
        assert!(e.contains("{cache} is only known for responses"), "{e}");
        assert!(Template::parse("x {cache}", true).is_ok());
        let e = err("a\r\nInjected: 1", true);
        assert!(e.contains("control character"), "{e}");
        let e = err("/caf\u{e9}", true);
        assert!(e.contains("non-ASCII character '\u{e9}'"), "{e}");
        assert!(check("{host}", false).is_ok());
        assert!(check("{Host}", false).is_err());
    }

    #[test]
    fn hostile_bytes_cannot_break_a_header() {
        let path = "/a\r\nSet-Cookie: x=1\0\x7f\t b/é☃";
        let v = vars(path, "q=\n", "evil\r\n.example:80");
        let out = render("{scheme}://{host}{uri} {path}", &v);
        assert_eq!(
            out,
            "https://evil%0D%0A.example/a%0D%0ASet-Cookie:%20x=1%00%7F%09%20b/%C3%A9%E2%98%83?q=%0A \
             /a%0D%0ASet-Cookie:%20x=1%00%7F%09%20b/%C3%A9%E2%98%83"
        );
        let t = Template::parse("{uri}", false).unwrap();
        let value = t.header_value(&v);
        assert!(value.as_bytes().iter().all(|b| b.is_ascii_graphic()));
        // Already-encoded paths are left as they are.
        let v = vars("/a%20b", "", "h");
        assert_eq!(render("{path}", &v), "/a%20b");
        // Every single byte value, as it could arrive in a lossy-decoded path.
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let s = c.to_string();
            let v = vars(&s, &s, &s);
            let value = Template::parse("x{host}{uri}{query}", false)
                .unwrap()
                .header_value(&v);
            assert!(
                value.as_bytes().iter().all(|b| b.is_ascii_graphic()),
                "{c:?}"
            );
        }
    }
}
