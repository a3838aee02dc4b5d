//! RFC 9111 conformance: a port of the shared-cache tests of the http-tests "cache-tests"
//! suite (https://cache-tests.fyi, github.com/http-tests/cache-tests), run against a lacquer
//! node with its default configuration.
//!
//! Each test is named after the suite's test id and documented with the suite's description
//! and kind (required / optimal). The suite's engine (scripted origin, per-request checks,
//! origin-side request log) is ported in `conformance/engine.rs`; a case fails here exactly
//! when it would fail there. Tests marked `#[ignore]` are known failures of lacquer (or
//! cases this harness cannot express), each with the reason.
//!
//! All cases run concurrently on one background runtime (the suite pauses 3 s between many
//! requests); each `#[tokio::test]` waits for its own case's result.

mod support;

#[path = "conformance/engine.rs"]
mod engine;

use engine::*;

/// One lacquer node with its default configuration.
const TOPOLOGY: Topology = Topology::Single;

/// One node is the reference: no case may differ.
const DIFFERS: &[(&str, &str)] = &[];

include!("conformance/cases.rs");
