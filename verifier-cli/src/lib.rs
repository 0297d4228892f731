//! `verdict`: independent verification of Verdict evidence for customers, partners and auditors.
//!
//! Depends on `verdict-core` alone (plus an HTTP client for online mode): a verifier needs
//! neither the policy nor a solver, and trusts only keys and checkpoints the user already holds.
//!
//! - [`verify`]: offline proof-bundle verification (checkpoint signature, inclusion, receipt
//!   signature, optional action commitment). No network code is reachable from it.
//! - [`consistency`]: one checkpoint extends another.
//! - [`audit`]: sampling (or full) audit of a live log over C2SP tlog-tiles.
//! - [`inspect`]: decode without verifying.
//! - [`package`]: `audit export` and `audit verify-package`, the auditor's evidence package
//!   (`spec/evidence-package.md`).
//! - [`policy`] and [`trust`]: trusted keys from flags and C2SP tlog-policy files.
//! - [`error`]: outcomes and the documented exit codes (0 valid, 1 failed, 2 error).
//!
//! Specs: `spec/proof-bundle.md`, `spec/receipt.md`, `spec/tiles.md`; user docs:
//! `docs/verifying.md`, `docs/auditor-guide.md`.
//!
//! ```no_run
//! use verdict_verifier::{trust::Trust, verify::verify_bundle};
//! let trust = Trust::load(&["log.example+01234567+AQ...".into()], &["checker+89abcdef+AQ...".into()], None)?;
//! let bundle = std::fs::read("receipt.proof")?;
//! let report = verify_bundle(&bundle, &trust, None)?;
//! println!("{}", report.human());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod consistency;
pub mod disclosure;
pub mod error;
pub mod fetch;
pub mod files;
pub mod inspect;
pub mod names;
pub mod package;
pub mod policies;
pub mod policy;
pub mod report;
pub mod trust;
pub mod verify;
