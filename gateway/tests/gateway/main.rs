//! The gateway's integration tests, with real processes only: a real `verdict-server`, the real
//! upstream `@modelcontextprotocol/server-filesystem` (npm), the real `verdict-gateway` binary,
//! the `rmcp` client and the Python `mcp` SDK client, and `verdict verify` on every bundle.
//!
//! - [`flow`]: allowed, denied, escalated and unmapped calls over HTTP and stdio, proofs, both
//!   clients, bad input, and fail-closed with the server down.
//! - [`escalation`]: escalated calls held by `escalation_wait_ms` and resolved by approvers with
//!   `verdict-approve` (approve 2 of 2, reject, wait runs out, server gone mid-wait).
//! - [`overhead`] (`--ignored`): p50/p99 latency added by the gateway (docs/benchmarks.md).
//!
//! Node/npm and Python are installed into `<target>/gateway-test-deps` if missing; a test skips
//! with a loud notice only when that is impossible.

// clippy.toml exempts #[test] functions; the helpers they call index serde_json values the same way.
#![allow(
    clippy::indexing_slicing,
    reason = "test helpers index JSON answers, a miss is a test failure"
)]

mod escalation;
mod flow;
mod overhead;
mod support;
