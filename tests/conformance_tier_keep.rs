//! RFC 9111 conformance through the cache tier: the cases of `conformance.rs` (the
//! cache-tests suite's shared-cache cases), each run with the client talking to
//! an edge that keeps copies (`hot_key_threshold = 0`) in front of a shard, the shard
//! talking to the origin (issue 17). Two caches in series must be as
//! correct as one: every case that passes on one node passes here, except those listed
//! in `DIFFERS` with the RFC section that allows the difference.

mod support;

#[path = "conformance/engine.rs"]
mod engine;

use engine::*;

const TOPOLOGY: Topology = Topology::Tier { edge_keeps: true };

/// Cases whose outcome through the tier differs from one node's, and why that is allowed.
const DIFFERS: &[(&str, &str)] = &[];

include!("conformance/cases.rs");
