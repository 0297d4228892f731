//! Transport-agnostic formats of Verdict.
//!
//! This crate has no I/O, no async runtime, no storage and no solver. It implements:
//! - [`approval`]: signed approvals and rejections of escalations; spec `spec/approval.md`;
//! - [`merkle`]: RFC 9162 §2.1 Merkle tree hashing, the right edge of a growing tree ([`merkle::RightEdge`]);
//! - [`proof`]: inclusion and consistency proof generation from stored hashes and verification
//!   (RFC 9162 §2.1.3, §2.1.4); spec `spec/merkle.md`;
//! - [`note`]: C2SP signed-note with Ed25519 keys; spec `spec/note-and-checkpoint.md`;
//! - [`checkpoint`]: C2SP tlog-checkpoint; spec `spec/note-and-checkpoint.md`;
//! - [`cosignature`]: C2SP tlog-cosignature (`cosignature/v1` witness cosignatures); spec
//!   `spec/witness.md`;
//! - [`tile`]: C2SP tlog-tiles coordinates, paths and entry bundles; spec `spec/tiles.md`;
//! - [`bundle`]: C2SP tlog-proof offline proof files; spec `spec/proof-bundle.md`;
//! - [`receipt`]: COSE_Sign1 decision receipts and salted commitments; spec `spec/receipt.md`;
//! - [`disclosure`]: selective disclosure of one violated rule; spec `spec/disclosure.md`;
//! - [`package`]: reading evidence packages (directory or tar); spec `spec/evidence-package.md`;
//! - [`statement`]: COSE_Sign1 policy statements (registrations) and telling log entry types
//!   apart; spec `spec/policy-statement.md`.
#![deny(missing_docs)]

pub mod approval;
pub mod bundle;
mod cbor;
pub mod checkpoint;
mod cose;
pub mod cosignature;
pub mod disclosure;
pub mod merkle;
pub mod note;
mod note_key;
pub mod package;
pub mod proof;
pub mod receipt;
pub mod statement;
pub mod tile;

pub use merkle::{Hash, LeafIndex, TreeSize};
