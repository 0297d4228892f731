//! Checks run by the fuzz targets: each parser must never panic, and whatever it accepts must
//! encode back to exactly the input (`encode(decode(x)) == x`, hence `decode(encode(y)) == y`).
//!
//! This file is also compiled into `core/tests/integration/receipts.rs` (module `fuzz_corpus`),
//! which runs every file under `fuzz/corpus/<target>/` through the same checks on stable Rust.
//! It must therefore depend on nothing but `verdict_core`, `ed25519_dalek` and `std`.

use std::sync::OnceLock;

use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::note::{Note, Signer, Verifier};
use verdict_core::package::{parse_canonical, Manifest};
use verdict_core::receipt::{Receipt, Statement};
use verdict_core::tile::Tile;

/// A fixed key, so that inputs signed by it (seeds) reach the verification code.
fn key(name: &'static str, seed: u8) -> Verifier {
    Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        .map(|s| s.verifier())
        .unwrap_or_else(|e| unreachable!("fixed key name {name}: {e}"))
}

/// The log key of the seed corpus (`verdict.example/log`, seed 0x4c).
pub fn log_key() -> &'static Verifier {
    static KEY: OnceLock<Verifier> = OnceLock::new();
    KEY.get_or_init(|| key("verdict.example/log", 0x4c))
}

/// The checker key of the seed corpus (`verdict.example/checker`, seed 0x43).
pub fn checker_key() -> &'static Verifier {
    static KEY: OnceLock<Verifier> = OnceLock::new();
    KEY.get_or_init(|| key("verdict.example/checker", 0x43))
}

/// Signed notes.
pub fn note(data: &[u8]) {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(
            note.to_bytes(),
            data,
            "note does not re-encode to its input"
        );
        let _ = note.verify(std::slice::from_ref(log_key()));
    }
}

/// Checkpoint bodies and signed checkpoints.
pub fn checkpoint(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(text) {
            assert_eq!(
                cp.to_text(),
                text,
                "checkpoint does not re-encode to its input"
            );
        }
    }
    if let Ok(cp) = Checkpoint::open(data, log_key(), &[]) {
        assert_eq!(cp.checkpoint().to_text(), cp.note().text());
    }
}

/// Tile paths.
pub fn tile_path(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(tile) = Tile::parse_path(path) {
            assert_eq!(
                tile.path(),
                path,
                "tile path does not re-encode to its input"
            );
        }
    }
}

/// tlog-proof bundles.
pub fn tlog_proof(data: &[u8]) {
    if let Ok(bundle) = ProofBundle::parse(data) {
        assert_eq!(
            bundle.encode(),
            data,
            "bundle does not re-encode to its input"
        );
        if let Ok(verified) = bundle.verify(log_key()) {
            assert_eq!(Some(verified.entry()), bundle.extra.as_deref());
        }
    }
}

/// COSE receipts and bare statements.
pub fn receipt(data: &[u8]) {
    if let Ok(receipt) = Receipt::decode(data) {
        let again = receipt.encode();
        assert_eq!(
            again.as_deref(),
            Ok(data),
            "receipt does not re-encode to its input"
        );
        if let Ok(verified) = Receipt::verify(data, std::slice::from_ref(checker_key())) {
            assert_eq!(verified.statement(), &receipt.statement);
        }
    } else {
        assert!(Receipt::verify(data, std::slice::from_ref(checker_key())).is_err());
    }
    if let Ok(statement) = Statement::from_cbor(data) {
        let again = statement.to_cbor();
        assert_eq!(
            again.as_deref(),
            Ok(data),
            "statement does not re-encode to its input"
        );
    }
}

/// Evidence-package manifests (`Manifest::parse`, the streaming scanner that `Package::open`
/// uses, spec `evidence-package.md` §2).
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(
            m.to_bytes().as_deref(),
            Ok(data),
            "manifest does not re-encode to its input"
        );
        // What the scanner accepts is canonical JSON by the generic definition too.
        assert!(
            parse_canonical(data).is_ok(),
            "manifest accepted but not canonical JSON"
        );
    }
}

// The checks of the checker's parsers. Left out under `cfg(test)`: this file is also compiled
// into verdict-core's tests, which cannot depend on verdict-checker; the checker checks have
// their own stable harness (`tests/tests/fuzz_corpus.rs`, which includes `checker.rs` itself).
#[cfg(not(test))]
pub mod checker;
