//! WebSocket tunnels: an upgrade request (HTTP/1.1 `Upgrade: websocket`, or HTTP/2
//! extended CONNECT) goes to the site's origin group on a connection of its own, never
//! through the cache, the in-flight map or the cluster's shards. On the origin's 101
//! the client is answered with the origin's fields and the two connections are joined
//! byte for byte (`relay`); any other answer is passed on as an ordinary response.
//!
//! Bounds: `limits.max_tunnels` open at once (`registry`), an idle bound per tunnel
//! (`limits.tunnel_idle_timeout`, or the site's), the client connection's
//! `max_connections` slot held for the tunnel's life (`ConnectionSlot`), and shutdown's
//! `drain_timeout`.

mod handshake;
mod registry;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{request, Method, Response, StatusCode};
use hyper::upgrade::OnUpgrade;

use super::respond::{synthetic, CacheStatus};
use super::{context::Ctx, failure_response, headers, Proxy};
use crate::body::ProxyBody;
use crate::origin::OriginError;
pub use handshake::Kind;
pub use registry::{Slot, Tunnels};
use relay::Relay;

/// How long both ends get to hand their connections over after the 101.
const HANDOVER: Duration = Duration::from_secs(10);

/// A client connection's place in `limits.max_connections`, shared with the requests on
/// it that may become tunnels: an HTTP/1.1 connection's task ends when it is upgraded,
/// and the tunnel keeps the place from then on.
#[derive(Clone)]
pub struct ConnectionSlot {
    _hold: Arc<dyn std::any::Any + Send + Sync>,
}

impl ConnectionSlot {
    pub fn new<T: Send + Sync + 'static>(hold: T) -> ConnectionSlot {
        ConnectionSlot {
            _hold: Arc::new(hold),
        }
    }
}

/// The request could be an upgrade: the one test every request pays for.
#[inline]
pub fn may_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) || *method == Method::CONNECT
}

/// The request asks for a WebSocket tunnel, and how.
pub fn kind(parts: &request::Parts) -> Option<Kind> {
    if !may_upgrade(&parts.method, &parts.headers) {
        return None;
    }
    handshake::kind(parts)
}

/// `kind`, for the request path: a request that is no tunnel lets go of its
/// connection's slot at once (a fetch or refresh may keep its head for a while).
pub(super) fn wanted(parts: &mut request::Parts) -> Option<Kind> {
    if !may_upgrade(&parts.method, &parts.headers) {
        return None;
    }
    let kind = handshake::kind(parts);
    if kind.is_none() {
        parts.extensions.remove::<ConnectionSlot>();
    }
    kind
}

impl Proxy {
    /// Open a tunnel to the site's origin group for a WebSocket handshake.
    pub(super) async fn tunnel(
        self: &Arc<Self>,
        ctx: &Ctx,
        mut parts: request::Parts,
        kind: Kind,
    ) -> (Response<ProxyBody>, CacheStatus) {
        let mut status = CacheStatus::fwd("bypass");
        let meters = self.tunnels.meters();
        let Some(client_side) = parts.extensions.remove::<OnUpgrade>() else {
            return (
                synthetic(
                    StatusCode::BAD_REQUEST,
                    "this connection cannot be upgraded",
                ),
                status,
            );
        };
        let connection = parts.extensions.remove::<ConnectionSlot>();
        let Some(slot) = self.tunnels.try_open(self.settings.max_tunnels) else {
            meters.refused("limit");
            let mut resp = synthetic(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WebSocket connections are open (limits.max_tunnels); try again later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return (resp, status);
        };
        let Some(group) = ctx.site.group() else {
            meters.refused("failed");
            return (failure_response(OriginError::NoOrigin.failure()), status);
        };
        let mut req = self.origin_request(ctx, &parts, ProxyBody::empty(), false);
        let accept = match handshake::prepare(&mut req, kind) {
            Ok(a) => a,
            Err(why) => {
                meters.refused("failed");
                return (synthetic(StatusCode::INTERNAL_SERVER_ERROR, why), status);
            }
        };
        let (mut resp, hold) = match group.upgrade(req, ctx.key.hash).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url = %ctx.key.url, error = %e, "WebSocket handshake with the origin failed");
                meters.refused("failed");
                return (failure_response(e.failure()), status);
            }
        };
        status.fwd_status = Some(resp.status().as_u16());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The origin's refusal (403, 426, a page without upgrade...) is its answer
            // to the client, relayed like any passed response and never stored.
            meters.refused("origin");
            let (mut rparts, rbody) = resp.into_parts();
            headers::strip_hop_by_hop(&mut rparts.headers);
            let idle = self.settings.response_idle(&rparts.headers);
            let body = ProxyBody::stream(rbody, idle, None);
            return (Response::from_parts(rparts, body), status);
        }
        if let Err(why) = handshake::check_answer(resp.headers(), accept.as_ref()) {
            tracing::warn!(url = %ctx.key.url, why, "origin's WebSocket handshake refused");
            meters.refused("failed");
            return (synthetic(StatusCode::BAD_GATEWAY, why), status);
        }
        let origin_side = hyper::upgrade::on(&mut resp);
        let answer = handshake::client_answer(kind, resp.headers());
        meters.opened.inc();
        let relay = Relay {
            idle: ctx
                .site
                .tunnel_idle_timeout()
                .unwrap_or(self.settings.tunnel_idle_timeout),
            closing: self.tunnels.closing(),
            client_to_origin: meters.client_to_origin.clone(),
            origin_to_client: meters.origin_to_client.clone(),
        };
        let url = ctx.key.url.clone();
        tokio::spawn(async move {
            // Held until the tunnel closes: its place among max_tunnels, its client
            // connection's among max_connections, and its origin's in-flight count.
            let _held = (slot, connection, hold);
            let both = async { tokio::try_join!(client_side, origin_side) };
            let (client, origin) = match tokio::time::timeout(HANDOVER, both).await {
                Ok(Ok(ends)) => ends,
                Ok(Err(e)) => {
                    tracing::debug!(%url, error = %e, "WebSocket upgrade not completed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%url, "WebSocket upgrade not completed in time");
                    return;
                }
            };
            let end = relay.run(client, origin).await;
            tracing::debug!(%url, ?end, "WebSocket tunnel closed");
        });
        (answer, status)
    }
}
