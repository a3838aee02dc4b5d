//! `"scope": "global"` on purge, push and pre-warm: checked here in full, then handed
//! to the control plane (`crate::control`), which publishes it once for every node of
//! every PoP, this one included, and answers with the nodes that applied it in time.

use bytes::Bytes;
use http::StatusCode;

use super::error::{json, ApiError, ApiResult};
use super::{objects, prewarm, purge};
use crate::control::{Command, Control};
use crate::proxy::Proxy;

/// Request fields that mean nothing to the stored object: not sent to other nodes.
const NOT_FORWARDED: [http::header::HeaderName; 3] = [
    http::header::AUTHORIZATION,
    http::header::HOST,
    http::header::CONTENT_LENGTH,
];

pub async fn purge(control: &Control, proxy: &Proxy, body: &[u8]) -> ApiResult {
    let plane = control.plane()?;
    let request = purge::global_body(proxy, body)?;
    let answer = plane.publish(Command::Purge { request }, None).await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `PUT /objects?scope=global[&edges=true]`: the query without scope and edges, and
/// the request's fields, as the node that applies it would have received them.
pub async fn push(
    control: &Control,
    proxy: &Proxy,
    parts: &http::request::Parts,
    body: Bytes,
) -> ApiResult {
    let plane = control.plane()?;
    objects::push_key(parts, proxy)?;
    let query = parts.uri.query().unwrap_or("");
    let edges = query.split('&').any(|p| p == "edges=true");
    let forwarded: String = query
        .split('&')
        .filter(|p| !p.starts_with("scope=") && !p.starts_with("edges="))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = Vec::new();
    for (name, value) in &parts.headers {
        if NOT_FORWARDED.contains(name) {
            continue;
        }
        let value = value.to_str().map_err(|_| {
            ApiError::bad_request(format!(
                "{name}: only visible ASCII field values can be pushed globally"
            ))
        })?;
        headers.push((name.as_str().to_owned(), value.to_owned()));
    }
    let command = Command::Push {
        query: forwarded,
        headers,
        edges,
        body: None,
        object: None,
    };
    let answer = plane.publish(command, Some(body)).await?;
    Ok(json(StatusCode::OK, &answer))
}

pub async fn prewarm(control: &Control, proxy: &Proxy, req: prewarm::PrewarmRequest) -> ApiResult {
    let plane = control.plane()?;
    prewarm::check_request(&req, &|u| proxy.key_for_url(u))?;
    let command = Command::Prewarm {
        urls: req.urls,
        concurrency: req.concurrency,
        edges: req.edges,
    };
    let answer = plane.publish(command, None).await?;
    Ok(json(StatusCode::ACCEPTED, &answer))
}

/// `GET /ready` while a starting node applies its control backlog.
pub fn unready(control: &Control) -> Option<ApiResult> {
    let reason = control.unready()?;
    Some(Ok(json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"status": "catching up", "detail": reason}),
    )))
}
