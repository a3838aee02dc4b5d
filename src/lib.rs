//! lacquer: a caching reverse proxy and edge node.
//!
//! - `server`: listeners, HTTP/1.1 + HTTP/2, limits, graceful drain
//! - `proxy`: the request path, step by step (start reading at `Proxy::handle`)
//! - `cache`: RFC 9111 policy, keys, Vary, the byte-bounded store
//! - `coalesce`: one origin fetch per key, streamed to every waiter
//! - `compress`: compression at the edge (stored encodings, on-the-fly streams)
//! - `failure`: why a fetch got no response (by source and kind), and the one retry rule
//! - `origin`: the origin pool, health checks, retries
//! - `site`: `[[site]]` routing and per-site rules
//! - `config`: the TOML schema, defaults and validation
//! - `metrics`: the Prometheus metric set
//! - `geo`: client address, GeoIP lookup, nearest healthy PoP
//! - `demo`: a small origin for trying lacquer without an app
//! - `admin`: the admin API (purge, push, inspect, pre-warm); `cli`: its command-line client

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod body;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod coalesce;
pub mod compress;
pub mod config;
pub mod control;
pub mod demo;
pub mod failure;
pub mod geo;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod proxy;
pub mod server;
pub mod site;
pub mod stat;
pub mod tls;
