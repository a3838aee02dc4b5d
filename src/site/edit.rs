//! A site's `request_headers` / `response_headers` edits, compiled once: names parsed,
//! values parsed as templates, and values without variables built once.
//!
//! Refused names, in both directions: the hop-by-hop fields (`Connection`,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`),
//! which describe one connection and are stripped or owned by the proxy, and
//! `Content-Length`, which frames the message: a wrong one desynchronises the
//! connection or smuggles a second message. On requests also `Host`: the site, the
//! cache key and Vary were chosen by it, so an edited Host would fetch one resource
//! and store it under another's name, and an HTTP/2 origin is sent the URI's authority,
//! not the header. The refusal covers `remove` as well as `set` and `add`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::template::{Template, Vars};
use crate::config::HeaderEdits;

/// Why a field may not be edited, if it may not: the hop-by-hop ones (RFC 9110 §7.6.1)
/// describe one connection and Content-Length frames the message; on requests, Host
/// chose the site and the cache key. One rule for validation and compilation.
pub fn refusal(name: &HeaderName, request: bool) -> Option<&'static str> {
    if crate::proxy::headers::is_hop_by_hop(name) || name == header::CONTENT_LENGTH {
        Some("cannot be edited: it describes the connection or frames the message")
    } else if request && name == header::HOST {
        Some("cannot be edited on requests: the site and the cache key were chosen by it")
    } else {
        None
    }
}

#[derive(Debug, Clone)]
enum Value {
    Fixed(HeaderValue),
    Template(Template),
}

impl Value {
    fn get(&self, vars: &Vars) -> HeaderValue {
        match self {
            Value::Fixed(v) => v.clone(),
            Value::Template(t) => t.header_value(vars),
        }
    }
}

/// Compiled header edits, applied in the order remove, set, add.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdit {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Value)>,
    add: Vec<(HeaderName, Value)>,
}

impl HeaderEdit {
    /// `response` selects the rules for response edits: `{cache}` is known and `Host`
    /// may be edited.
    pub fn compile(edits: &HeaderEdits, response: bool) -> Result<HeaderEdit, String> {
        let table = if response {
            "response_headers"
        } else {
            "request_headers"
        };
        let name_of = |list: &str, name: &str| -> Result<HeaderName, String> {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{table}.{list}: {name:?} is not a valid header name"))?;
            if let Some(why) = refusal(&parsed, !response) {
                return Err(format!("{table}.{list}: {name} {why}"));
            }
            Ok(parsed)
        };
        let mut remove: Vec<HeaderName> = Vec::with_capacity(edits.remove.len());
        for name in &edits.remove {
            let name = name_of("remove", name)?;
            if !remove.contains(&name) {
                remove.push(name);
            }
        }
        let values = |list: &str,
                      map: &std::collections::BTreeMap<String, String>|
         -> Result<Vec<(HeaderName, Value)>, String> {
            let mut out: Vec<(HeaderName, Value)> = Vec::with_capacity(map.len());
            for (name, text) in map {
                let parsed = name_of(list, name)?;
                if out.iter().any(|(n, _)| *n == parsed) {
                    return Err(format!(
                        "{table}.{list}: {name} is listed twice (header names are case-insensitive)"
                    ));
                }
                let template = Template::parse(text, response)
                    .map_err(|e| format!("{table}.{list}.{name}: {e}"))?;
                let value = match template.as_literal() {
                    Some(fixed) => Value::Fixed(HeaderValue::from_str(fixed).map_err(|_| {
                        format!("{table}.{list}.{name}: {fixed:?} is not a valid header value")
                    })?),
                    None => Value::Template(template),
                };
                out.push((parsed, value));
            }
            Ok(out)
        };
        Ok(HeaderEdit {
            remove,
            set: values("set", &edits.set)?,
            add: values("add", &edits.add)?,
        })
    }

    /// No edits: the request path skips `apply`.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Removes, then sets (replacing every value of the name), then adds (appending).
    pub fn apply(&self, headers: &mut HeaderMap, vars: &Vars) {
        for name in &self.remove {
            headers.remove(name);
        }
        // The try_ forms fail only past HeaderMap's 32768-field limit, far beyond what
        // the parsers accept; a field left out then beats a panic.
        for (name, value) in &self.set {
            let _ = headers.try_insert(name.clone(), value.get(vars));
        }
        for (name, value) in &self.add {
            let _ = headers.try_append(name.clone(), value.get(vars));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vars(path: &str) -> Vars<'_> {
        Vars {
            client_ip: "192.0.2.1".parse().unwrap(),
            host: "example.com:8080",
            path,
            query: "",
            scheme: "http",
            pop: "p",
            node: "n",
            site: "s",
            cache: "miss",
        }
    }

    fn edits(remove: &[&str], set: &[(&str, &str)], add: &[(&str, &str)]) -> HeaderEdits {
        let map = |l: &[(&str, &str)]| -> BTreeMap<String, String> {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        HeaderEdits {
            set: map(set),
            add: map(add),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn remove_then_set_then_add() {
        let e = HeaderEdit::compile(
            &edits(
                &["X-A", "x-gone"],
                &[("X-A", "set"), ("x-b", "{host}{path}")],
                &[("x-a", "added"), ("x-c", "{cache}")],
            ),
            true,
        )
        .unwrap();
        assert!(!e.is_empty());
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("old1"));
        h.append("x-a", HeaderValue::from_static("old2"));
        h.append("x-b", HeaderValue::from_static("old"));
        h.append("x-b", HeaderValue::from_static("old"));
        h.append("x-gone", HeaderValue::from_static("1"));
        h.append("x-c", HeaderValue::from_static("kept"));
        h.append("x-untouched", HeaderValue::from_static("1"));
        e.apply(&mut h, &vars("/p"));
        assert_eq!(values(&h, "x-a"), ["set", "added"]);
        assert_eq!(values(&h, "x-b"), ["example.com/p"]);
        assert_eq!(values(&h, "x-c"), ["kept", "miss"]);
        assert!(h.get("x-gone").is_none());
        assert_eq!(values(&h, "x-untouched"), ["1"]);
    }

    #[test]
    fn empty_edits() {
        let e = HeaderEdit::compile(&HeaderEdits::default(), false).unwrap();
        assert!(e.is_empty());
        let mut h = HeaderMap::new();
        e.apply(&mut h, &vars("/"));
        assert!(h.is_empty());
    }

    #[test]
    fn hostile_path_stays_one_header() {
        let e = HeaderEdit::compile(&edits(&[], &[("x-path", "{path}")], &[]), false).unwrap();
        let mut h = HeaderMap::new();
        e.apply(&mut h, &vars("/a\r\nSet-Cookie: s=1"));
        assert_eq!(values(&h, "x-path"), ["/a%0D%0ASet-Cookie:%20s=1"]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn refuses_framing_hop_by_hop_and_request_host() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "keep-alive",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Upgrade",
        ] {
            for response in [false, true] {
                let err =
                    HeaderEdit::compile(&edits(&[], &[(name, "1")], &[]), response).unwrap_err();
                assert!(err.contains("cannot be edited"), "{err}");
                assert!(HeaderEdit::compile(&edits(&[name], &[], &[]), response).is_err());
                assert!(HeaderEdit::compile(&edits(&[], &[], &[(name, "1")]), response).is_err());
            }
        }
        let err = HeaderEdit::compile(&edits(&[], &[("Host", "x")], &[]), false).unwrap_err();
        assert_eq!(
            err,
            "request_headers.set: Host cannot be edited on requests: the site and the cache key were chosen by it"
        );
        assert!(HeaderEdit::compile(&edits(&[], &[("Host", "x")], &[]), true).is_ok());
    }

    #[test]
    fn bad_names_and_values() {
        let err = HeaderEdit::compile(&edits(&["bad name"], &[], &[]), true).unwrap_err();
        assert!(
            err.contains("\"bad name\" is not a valid header name"),
            "{err}"
        );
        let err = HeaderEdit::compile(&edits(&[], &[("x-a", "{cache}")], &[]), false).unwrap_err();
        assert!(err.starts_with("request_headers.set.x-a: "), "{err}");
        assert!(err.contains("{cache} is only known for responses"), "{err}");
        let err = HeaderEdit::compile(&edits(&[], &[], &[("x-a", "{nope}")]), true).unwrap_err();
        assert!(err.contains("unknown variable {nope}"), "{err}");
        let err =
            HeaderEdit::compile(&edits(&[], &[("X-A", "1"), ("x-a", "2")], &[]), true).unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
        let err = HeaderEdit::compile(&edits(&[], &[("x-a", "a\nb")], &[]), true).unwrap_err();
        assert!(err.contains("control character"), "{err}");
    }
}
