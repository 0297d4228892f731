//! Integration tests of `verdict-core`, one binary with a sub-module per area:
//! - `approval_vectors`: escalation approval vectors in `testdata/approvals/`;
//! - `merkle_vectors`: the transparency-dev RFC 6962/9162 inclusion and consistency vectors;
//! - `tessera`: a complete C2SP tlog-tiles log from Tessera (checkpoints, tiles, entry bundles);
//! - `note_vectors`: C2SP signed-note known answers;
//! - `cosignature_vectors`: C2SP tlog-cosignature vectors and known answers;
//! - `props`: property tests against a naive model and `rs_merkle`;
//! - `sigstore_oracle`: our proof verifier against sigstore's RFC 6962 verification;
//! - `receipts`: receipt and bundle vectors in `testdata/`;
//! - `statements`: policy statement vectors in `testdata/statements/`.
//! - `disclosures`: rule disclosure vectors in `testdata/disclosures/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

mod approval_vectors;
mod cosignature_vectors;
mod disclosures;
mod merkle_vectors;
mod note_vectors;
mod props;
mod receipts;
mod sigstore_oracle;
mod statements;
mod tessera;

/// Path of the workspace's `testdata/` directory.
pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}
