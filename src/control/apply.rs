//! Applying one control message on this node, through the same code as the admin
//! API's node scope: purge as `POST /purge`, push as `PUT /objects` (only where the
//! key belongs), pre-warm as a local job over the URLs this node owns.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::message::Command;
use crate::admin::{objects, prewarm, purge};
use crate::config::Role;
use crate::proxy::Proxy;

/// What a node holds to apply messages with.
pub struct Target<'a> {
    pub proxy: &'a Arc<Proxy>,
    pub jobs: &'a prewarm::Jobs,
    pub node: &'a str,
}

/// Apply `command` (a pushed body already fetched when it came by object store).
/// Returns a one-line account for the receipt, or why it failed.
pub fn apply(t: &Target<'_>, command: &Command, body: Option<Bytes>) -> Result<String, String> {
    match command {
        Command::Purge { request } => {
            let raw = serde_json::to_vec(request).map_err(|e| e.to_string())?;
            let purged = purge::apply_here(t.proxy, t.node, &raw).map_err(|e| e.message)?;
            Ok(format!(
                "purged {} url(s), {} object(s)",
                purged.urls, purged.objects
            ))
        }
        Command::Push {
            query,
            headers,
            edges,
            ..
        } => push(t, query, headers, *edges, body.unwrap_or_default()),
        Command::Prewarm {
            urls,
            concurrency,
            edges,
        } => {
            let mine: Vec<String> = urls
                .iter()
                .filter(|u| match t.proxy.key_for_url(u) {
                    Ok(key) => owns(t.proxy, key.hash, *edges),
                    Err(_) => false,
                })
                .cloned()
                .collect();
            if mine.is_empty() {
                return Ok("no URL is this node's to pre-warm".to_owned());
            }
            let n = mine.len();
            let (id, _) = t
                .jobs
                .start_urls(
                    t.proxy,
                    mine,
                    (*concurrency).clamp(1, prewarm::MAX_CONCURRENCY),
                )
                .map_err(|e| e.message)?;
            Ok(format!("pre-warm job {id} for {n} url(s)"))
        }
    }
}

/// Whether this node stores (or pre-warms) a key: alone, every key; in a PoP, the
/// shard that owns it, and every edge when `edges` — as the cluster scope decides.
fn owns(proxy: &Proxy, hash: u128, edges: bool) -> bool {
    match proxy.cluster() {
        None => true,
        Some(c) if c.role() == Role::Edge => edges,
        Some(c) => c.owner_is_self(hash),
    }
}

fn push(
    t: &Target<'_>,
    query: &str,
    fields: &[(String, String)],
    edges: bool,
    body: Bytes,
) -> Result<String, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
        headers.append(name, value);
    }
    let mut req = http::Request::builder()
        .method(http::Method::PUT)
        .uri(format!("/objects?{query}"))
        .body(())
        .map_err(|e| format!("query: {e}"))?;
    *req.headers_mut() = headers;
    let (parts, ()) = req.into_parts();
    let key = objects::push_key(&parts, t.proxy).map_err(|e| e.message)?;
    if !owns(t.proxy, key.hash, edges) {
        return Ok("not the owner: not stored here".to_owned());
    }
    let resp = objects::push(t.proxy, &parts, body).map_err(|e| e.message)?;
    Ok(format!("stored (status {})", resp.status().as_u16()))
}
