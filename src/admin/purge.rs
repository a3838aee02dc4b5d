//! `POST /purge`: remove (or, soft, mark stale) by URL, surrogate key, URL prefix, or
//! everything. The answer lists nodes so a cluster-wide purge can fill it in later
//! without changing the shape.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{json, ApiError, ApiResult};
use super::input::parse_json;
use crate::cache;
use crate::cache::key::CacheKey;
use crate::cache::store::Purged;
use crate::cluster::NodeAck;
use crate::proxy::Proxy;

/// Most URLs or keys in one purge call: bounds the work one request can ask for.
pub const MAX_ITEMS: usize = 10_000;
/// Same bound as the Surrogate-Key tags the store indexes: a longer one matches nothing.
const MAX_KEY_LEN: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    surrogate_keys: Option<Vec<String>>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    soft: bool,
    #[serde(default)]
    scope: Scope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Node,
    Cluster,
    /// Every node of every PoP, through the control plane (`crate::control`).
    Global,
}

/// What to purge, validated and normalized.
#[derive(Debug, PartialEq)]
enum Target {
    Urls(Vec<CacheKey>),
    Keys(Vec<String>),
    Prefix(String),
    All,
}

#[derive(Debug, Serialize)]
struct PurgeResponse {
    /// The scope actually applied.
    scope: Scope,
    requested_scope: Scope,
    soft: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    /// This node first, then every other node of the cluster (scope "cluster").
    nodes: Vec<NodeAck>,
    /// Summed over the nodes that answered.
    total: Purged,
}

/// The scope a purge body asks for (the body is checked in full by whoever handles it).
pub fn requested_scope(body: &[u8]) -> Result<Scope, ApiError> {
    Ok(parse_json::<PurgeRequest>(body)?.scope)
}

/// A global purge's body as published: checked in full here (a bad entry is refused
/// before anything is sent), without its scope, so every node applies it as node scope.
pub fn global_body(proxy: &Proxy, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let req: PurgeRequest = parse_json(body)?;
    target(&req, &|u| proxy.key_for_url(u))?;
    let mut raw: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if let Some(o) = raw.as_object_mut() {
        o.remove("scope");
    }
    Ok(raw)
}

/// Purge on this node only, as node scope does; for control-plane messages.
pub fn apply_here(proxy: &Proxy, node: &str, body: &[u8]) -> Result<Purged, ApiError> {
    let req: PurgeRequest = parse_json(body)?;
    let target = target(&req, &|u| proxy.key_for_url(u))?;
    Ok(apply_logged(proxy, node, &target, req.soft))
}

fn apply_logged(proxy: &Proxy, node: &str, target: &Target, soft: bool) -> Purged {
    let started = std::time::Instant::now();
    let purged = apply(proxy, target, soft);
    let kind = match target {
        Target::Urls(_) => "url",
        Target::Keys(_) => "surrogate_key",
        Target::Prefix(_) => "prefix",
        Target::All => "all",
    };
    proxy
        .metrics()
        .purge(kind, purged.objects, started.elapsed());
    tracing::info!(target: "lacquer::admin", node, soft, urls = purged.urls, objects = purged.objects, what = %describe(target), "purged");
    purged
}

pub async fn purge(proxy: &Proxy, node: &str, body: &[u8]) -> ApiResult {
    let req: PurgeRequest = parse_json(body)?;
    let target = target(&req, &|u| proxy.key_for_url(u))?;
    let started = std::time::Instant::now();
    let purged = apply_logged(proxy, node, &target, req.soft);
    let mut nodes = vec![NodeAck {
        node: node.to_string(),
        ok: true,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        purged: serde_json::to_value(purged).ok(),
        answer: None,
        error: None,
        pending: false,
    }];
    let mut total = purged;
    let cluster = proxy.cluster().filter(|_| req.scope == Scope::Cluster);
    if let Some(cluster) = cluster {
        // The body as sent (validated above); the fan-out forces its scope to "node".
        let raw: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        for ack in cluster.purge_all_nodes(raw).await {
            if let Some(p) = &ack.purged {
                let count = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
                let add = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
                total.urls = total.urls.saturating_add(add(count("urls")));
                total.objects = total.objects.saturating_add(add(count("objects")));
            }
            nodes.push(ack);
        }
    }
    let note = (req.scope == Scope::Cluster && cluster.is_none()).then_some(
        "cluster scope is not available: this node is not in a cluster; purged this node only",
    );
    Ok(json(
        StatusCode::OK,
        &PurgeResponse {
            scope: if cluster.is_some() {
                Scope::Cluster
            } else {
                Scope::Node
            },
            requested_scope: req.scope,
            soft: req.soft,
            note,
            nodes,
            total,
        },
    ))
}

/// Exactly one kind of target; everything checked before anything is purged, so a
/// bad entry in a list purges nothing rather than half of it.
/// `keys` gives an operator URL's cache key (under the key rules of its site).
fn target(
    req: &PurgeRequest,
    keys: &dyn Fn(&str) -> Result<CacheKey, String>,
) -> Result<Target, ApiError> {
    let given = [
        req.urls.is_some(),
        req.surrogate_keys.is_some(),
        req.prefix.is_some(),
        req.all.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            return Err(ApiError::bad_request(
                "say what to purge: one of \"urls\", \"surrogate_keys\", \"prefix\", \"all\"",
            ))
        }
        1 => {}
        _ => {
            return Err(ApiError::bad_request(
                "give only one of \"urls\", \"surrogate_keys\", \"prefix\", \"all\"",
            ))
        }
    }
    if let Some(urls) = &req.urls {
        check_count("urls", urls.len())?;
        return urls
            .iter()
            .map(|u| keys(u).map_err(|e| ApiError::bad_request(format!("url {u:?}: {e}"))))
            .collect::<Result<_, _>>()
            .map(Target::Urls);
    }
    if let Some(keys) = &req.surrogate_keys {
        check_count("surrogate_keys", keys.len())?;
        for k in keys {
            check_surrogate_key(k)?;
        }
        return Ok(Target::Keys(keys.clone()));
    }
    if let Some(prefix) = &req.prefix {
        return normalize_prefix(prefix, keys).map(Target::Prefix);
    }
    match req.all {
        Some(true) => Ok(Target::All),
        _ => Err(ApiError::bad_request("\"all\" must be true when given")),
    }
}

fn check_count(what: &str, n: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request(format!("{what} is empty")));
    }
    if n > MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "{what} has {n} entries; at most {MAX_ITEMS} per call"
        )));
    }
    Ok(())
}

fn check_surrogate_key(k: &str) -> Result<(), ApiError> {
    if k.is_empty()
        || k.len() > MAX_KEY_LEN
        || k.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad_request(format!(
            "surrogate key {k:?} must be 1 to {MAX_KEY_LEN} bytes without spaces"
        )));
    }
    Ok(())
}

/// A prefix is normalized like a URL (scheme and host lowercased, default port
/// dropped...) so it matches the stored keys. It must name at least a host:
/// `{"all": true}` is the explicit way to purge everything.
fn normalize_prefix(
    prefix: &str,
    keys: &dyn Fn(&str) -> Result<CacheKey, String>,
) -> Result<String, ApiError> {
    let key = keys(prefix).map_err(|e| ApiError::bad_request(format!("prefix {prefix:?}: {e}")))?;
    Ok(key.url.to_string())
}

fn apply(proxy: &Proxy, target: &Target, soft: bool) -> Purged {
    let cache = proxy.cache();
    match target {
        Target::Urls(keys) => {
            let mut total = Purged::default();
            for key in keys {
                total += cache.purge(cache::Target::Url(key), soft);
            }
            total
        }
        Target::Keys(keys) => {
            let mut total = Purged::default();
            for k in keys {
                total += cache.purge(cache::Target::Tag(k), soft);
            }
            total
        }
        Target::Prefix(prefix) => cache.purge(cache::Target::Prefix(prefix), soft),
        Target::All => cache.purge(cache::Target::All, soft),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Urls(k) => format!("{} url(s)", k.len()),
        Target::Keys(k) => format!("surrogate keys {k:?}"),
        Target::Prefix(p) => format!("prefix {p}"),
        Target::All => "all".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Target, ApiError> {
        let req: PurgeRequest = parse_json(body.as_bytes())?;
        target(&req, &|u| {
            crate::cache::key::key_for_url(u, &crate::cache::key::KeyRules::default())
        })
    }

    #[test]
    fn urls_are_normalized() {
        let Target::Urls(keys) = parse(r#"{"urls":["HTTP://Example.COM:80/a?b"]}"#).unwrap() else {
            panic!("not urls")
        };
        assert_eq!(&*keys[0].url, "http://example.com/a?b");
    }

    #[test]
    fn prefix_is_normalized() {
        assert_eq!(
            parse(r#"{"prefix":"http://Example.com/live/"}"#).unwrap(),
            Target::Prefix("http://example.com/live/".into())
        );
    }

    #[test]
    fn exactly_one_kind() {
        assert!(parse(r#"{}"#).is_err());
        assert!(parse(r#"{"soft":true}"#).is_err());
        assert!(parse(r#"{"all":true,"prefix":"http://a/"}"#).is_err());
        assert!(parse(r#"{"all":false}"#).is_err());
        assert_eq!(parse(r#"{"all":true,"soft":true}"#).unwrap(), Target::All);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(parse(r#"{"urls":[]}"#).is_err());
        assert!(parse(r#"{"urls":["/relative"]}"#).is_err());
        assert!(parse(r#"{"urls":["http://ok/", "ftp://x/"]}"#).is_err());
        assert!(parse(r#"{"surrogate_keys":["a b"]}"#).is_err());
        assert!(parse(r#"{"surrogate_keys":[""]}"#).is_err());
        assert!(parse(r#"{"prefix":""}"#).is_err());
        assert!(parse(r#"{"prefix":"http:///"}"#).is_err());
        assert!(parse(r#"{"all":true,"scope":"planet"}"#).is_err());
        assert!(parse(r#"{"all":true,"bogus":1}"#).is_err());
        let many = format!(
            r#"{{"surrogate_keys":[{}"x"]}}"#,
            "\"k\",".repeat(MAX_ITEMS)
        );
        assert!(parse(&many).is_err());
    }
}
