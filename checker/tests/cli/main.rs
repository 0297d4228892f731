//! The one integration-test binary of `verdict-checker`: drives the real `verdict-policy`
//! binary over `testdata/policies/`.
//!
//! Sub-modules:
//! - [`suites`]: every example policy's battle-test suite passes through `verdict-policy test`,
//!   and a tampered suite fails with exit 1;
//! - [`invalid`]: every malformed policy in `testdata/policies/invalid/` gives exit 2 and the
//!   expected line:column, never a panic;
//! - [`analysis`]: `analyze` finds the planted contradiction, dead rule and redundant rule;
//! - [`diffs`]: `diff` finds a counterexample for a one-rule change and proves
//!   whitespace-different files equivalent;
//! - [`commands`]: `lint`, `decide`, `scenarios` and usage errors, with insta snapshots of stable
//!   `--json` outputs;
//! - [`deadline`]: the per-decision deadline on the generated 1,000-variable chain policy, with
//!   the process's CPU time, and the bound on analysis.
// clippy.toml's test allowances cover `#[test]` functions and `#[cfg(test)]` modules, not the
// helper functions of an integration-test crate: this one crate-level opt-out stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration-test helpers"
)]

mod analysis;
mod commands;
mod deadline;
mod diffs;
mod invalid;
mod suites;

use std::path::PathBuf;
use std::process::Output;

/// The `testdata/policies` folder.
pub fn policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies")
}

/// Run `verdict-policy` with `args`.
pub fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_verdict-policy"))
        .args(args)
        .output()
        .expect("spawn verdict-policy")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout parsed as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

/// A path under `testdata/policies` as a string.
pub fn p(rel: &str) -> String {
    policies().join(rel).display().to_string()
}

/// Assert the process did not panic (Rust panics print "panicked at" and exit 101).
pub fn assert_no_panic(o: &Output) {
    assert_ne!(o.status.code(), Some(101), "panicked: {}", stderr(o));
    assert!(
        !stderr(o).contains("panicked at"),
        "panicked: {}",
        stderr(o)
    );
}
