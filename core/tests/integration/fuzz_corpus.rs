//! Every file of the fuzz seed corpus (`fuzz/corpus/<target>/`) run through the fuzz targets'
//! own checks (`fuzz/src/lib.rs`, compiled in here) on stable Rust: no panic, and whatever
//! parses re-encodes to exactly its input. A fuzz crash is kept as a named seed file, so it
//! becomes a regression test here.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

fn corpus() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// A fuzz target's name and its check.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("note", checks::note),
    ("checkpoint", checks::checkpoint),
    ("tile_path", checks::tile_path),
    ("tlog_proof", checks::tlog_proof),
    ("receipt", checks::receipt),
    ("manifest", checks::manifest),
];

#[test]
fn seed_corpus_passes_fuzz_checks() {
    let mut total = 0;
    for (target, check) in TARGETS {
        let dir = corpus().join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target}: empty seed corpus");
        for file in &files {
            check(&std::fs::read(file).unwrap());
        }
        println!("fuzz corpus {target}: {} seeds", files.len());
        total += files.len();
    }
    println!("fuzz corpus: {total} seeds ran");
}

/// The seed keys of `fuzz/src/lib.rs` are the vector keys of `testdata/receipts/`, so seeds
/// reach the verification code.
#[test]
fn seed_keys_match_vector_keys() {
    assert_eq!(checks::checker_key(), &super::checker().verifier());
    assert_eq!(checks::log_key(), &super::log().verifier());
}

/// Write the generated receipts and bundles as seeds (called by `receipts::regenerate`).
pub fn write_seeds(files: &BTreeMap<String, Vec<u8>>) {
    let doc: serde_json::Value = serde_json::from_slice(&files["vectors.json"]).unwrap();
    let receipts = corpus().join("receipt");
    std::fs::create_dir_all(&receipts).unwrap();
    for group in ["valid", "invalid"] {
        for case in doc[group].as_array().unwrap() {
            if let Some(h) = case["receipt_hex"].as_str() {
                let name = format!("{group}-{}", case["name"].as_str().unwrap());
                std::fs::write(receipts.join(name), hex::decode(h).unwrap()).unwrap();
            }
        }
    }
    let proofs = corpus().join("tlog_proof");
    std::fs::create_dir_all(&proofs).unwrap();
    for (path, bytes) in files {
        if let Some(name) = path.strip_prefix("bundles/") {
            std::fs::write(proofs.join(name), bytes).unwrap();
        }
    }
}
