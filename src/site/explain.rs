//! `lacquer route URL` and admin `GET /route?url=`: what the node would do with a
//! request for a URL — its site, origin group, effective cache rules and cache key —
//! decided by the same router and rules as the request path.

use serde_json::{json, Value};

use super::{Routed, Sites};
use crate::cache::key::CacheKey;

/// Explain a request for the absolute `url` with `method`.
pub fn explain(sites: &Sites, url: &str, method: &str) -> Result<Value, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("URL {url:?} must be absolute (http://host/path)"));
    };
    let https = match scheme {
        "https" => true,
        "http" => false,
        _ => return Err(format!("URL {url:?}: scheme must be http or https")),
    };
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let site = match sites.route(authority.as_str(), uri.path(), &method, https) {
        Routed::Site(site) => site,
        Routed::Misdirected => {
            return Ok(json!({
                "url": url, "method": method.as_str(), "site": null, "status": 421,
                "reason": "no site serves this host",
            }))
        }
        Routed::NotFound => {
            return Ok(json!({
                "url": url, "method": method.as_str(), "site": null, "status": 404,
                "reason": "a site serves this host, none this path, method or scheme",
            }))
        }
    };
    let rules = site.rules();
    let key = CacheKey::new(scheme, authority.as_str(), pq, &rules.cache.key);
    let cache: serde_json::Map<String, Value> = rules
        .summary()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let answer = site.answer().map(|a| a.status().as_u16());
    Ok(json!({
        "url": url,
        "method": method.as_str(),
        "site": site.name(),
        "origin_group": if answer.is_some() { Value::Null } else { json!(site.group_name()) },
        "answer": answer,
        "access": if site.has_access_rules() { "allow/deny" } else { "open" },
        "rate_limited": site.limiter().is_some(),
        "cache": if answer.is_some() { Value::Null } else { Value::Object(cache) },
        "key": if rules.pass || answer.is_some() { Value::Null } else { json!(key.url.as_ref()) },
        "key_fields": rules.key_headers.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
    }))
}

/// The explanation as lines for a terminal.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let field = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    if v["site"].is_null() {
        return format!(
            "{} {}\n  answer: {} ({})\n",
            field("method"),
            field("url"),
            field("status"),
            field("reason")
        );
    }
    out.push_str(&format!("{} {}\n", field("method"), field("url")));
    for k in [
        "site",
        "origin_group",
        "answer",
        "access",
        "rate_limited",
        "key",
    ] {
        out.push_str(&format!("  {k}: {}\n", field(k)));
    }
    if let Some(fields) = v["key_fields"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        out.push_str(&format!("  key_fields: {}\n", names.join(", ")));
    }
    if let Some(cache) = v["cache"].as_object() {
        let parts: Vec<String> = cache
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        out.push_str(&format!("  cache: {}\n", parts.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn explains_site_group_rules_and_key() {
        let cfg = Config::parse(
            r#"
[[origin]]
address = "127.0.0.1:9000"
[[origin_group]]
name = "api"
servers = [{ address = "127.0.0.1:9001" }]
[[site]]
name = "api"
hosts = ["api.example.com"]
origin_group = "api"
cache = { default_ttl = "2s", key = { query = "sort" } }
[[site]]
name = "moved"
hosts = ["old.example.com"]
redirect = { location = "https://new.example.com{uri}" }
"#,
            "t.toml",
        )
        .unwrap();
        let sites = Sites::build(&cfg, None).unwrap();
        let v = explain(&sites, "http://API.example.com:8080/x?b=2&a=1", "get").unwrap();
        assert_eq!(v["site"], "api");
        assert_eq!(v["origin_group"], "api");
        assert_eq!(v["cache"]["default_ttl"], "2s");
        assert_eq!(v["key"], "http://api.example.com:8080/x?a=1&b=2");
        let v = explain(&sites, "http://old.example.com/p", "GET").unwrap();
        assert_eq!(v["answer"], 301);
        assert!(v["origin_group"].is_null());
        let v = explain(&sites, "https://other.example.com/", "GET").unwrap();
        assert_eq!(v["site"], "default");
        assert!(render(&v).contains("origin_group: default"));
        assert!(explain(&sites, "/relative", "GET").is_err());
        assert!(explain(&sites, "http://a/", "BAD METHOD").is_err());
    }

    #[test]
    fn without_a_default_site_unmatched_hosts_are_421() {
        let cfg = Config::parse(
            r#"
[[origin_group]]
name = "www"
servers = [{ address = "127.0.0.1:9001" }]
[[site]]
name = "www"
hosts = ["www.example.com"]
paths = ["/shop/"]
origin_group = "www"
"#,
            "t.toml",
        )
        .unwrap();
        let sites = Sites::build(&cfg, None).unwrap();
        assert_eq!(
            explain(&sites, "http://x.example.com/", "GET").unwrap()["status"],
            421
        );
        assert_eq!(
            explain(&sites, "http://www.example.com/", "GET").unwrap()["status"],
            404
        );
        assert_eq!(
            explain(&sites, "http://www.example.com/shop/a", "GET").unwrap()["site"],
            "www"
        );
    }
}
