//! The fuzz targets' own checks on stable Rust: every seed (`fuzz/corpus/<target>/`) and every
//! regression input (`fuzz/regressions/<target>/`) of all eight cargo-fuzz targets runs through
//! the same functions libFuzzer calls (`fuzz/src/lib.rs` for the verdict-core parsers,
//! `fuzz/src/checker.rs` for the checker's policy, expression and action parsers, both compiled
//! in here). A crash found by a fuzzer is kept as a file in `fuzz/regressions/<target>/` plus a
//! named test below (`fuzz/regressions/README.md`).
//!
//! Run: `cargo test -p verdict-tests --test fuzz_corpus`. Regenerate the checker seeds from
//! `testdata/policies/`: `cargo test -p verdict-tests --test fuzz_corpus -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod core_checks;

#[path = "../../fuzz/src/checker.rs"]
mod checker_checks;

/// A fuzz target's name and its check.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 9] = [
    ("note", core_checks::note),
    ("checkpoint", core_checks::checkpoint),
    ("tile_path", core_checks::tile_path),
    ("tlog_proof", core_checks::tlog_proof),
    ("receipt", core_checks::receipt),
    ("manifest", core_checks::manifest),
    ("policy", checker_checks::policy),
    ("expr", checker_checks::expr),
    ("action", checker_checks::action),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The input files of a corpus or regression directory, sorted (none when it does not exist).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn check_of(target: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
}

/// Run one regression input (`fuzz/regressions/<target>/<file>`) through its target's checks.
fn run_regression(target: &str, file: &str) {
    let path = fuzz_dir().join("regressions").join(target).join(file);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    check_of(target)(&data);
}

#[test]
fn seed_corpus_passes_fuzz_checks() {
    let mut total = 0;
    for (target, check) in TARGETS {
        let files = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(!files.is_empty(), "{target}: empty seed corpus");
        for file in &files {
            check(&std::fs::read(file).unwrap());
        }
        println!("fuzz corpus {target}: {} seeds", files.len());
        total += files.len();
    }
    println!("fuzz corpus: {total} seeds ran");
}

/// Every file under `fuzz/regressions/<target>/`, whether or not it has a named test yet.
#[test]
fn regression_inputs_pass_fuzz_checks() {
    let dir = fuzz_dir().join("regressions");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let target = path.file_name().unwrap().to_str().unwrap().to_owned();
        for file in inputs(&path) {
            run_regression(&target, file.file_name().unwrap().to_str().unwrap());
            total += 1;
        }
    }
    println!("fuzz regressions: {total} inputs ran");
}

/// Each regression file has its named test in [`REGRESSIONS`], and each named test its file.
#[test]
fn every_regression_has_a_named_test() {
    let dir = fuzz_dir().join("regressions");
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let target = path.file_name().unwrap().to_str().unwrap().to_owned();
            for file in inputs(&path) {
                let name = file.file_name().unwrap().to_str().unwrap().to_owned();
                on_disk.insert((target.clone(), name));
            }
        }
    }
    let named: BTreeSet<(String, String)> = REGRESSIONS
        .iter()
        .map(|(t, f)| ((*t).to_owned(), (*f).to_owned()))
        .collect();
    assert_eq!(
        on_disk, named,
        "fuzz/regressions/ and the named regression tests differ"
    );
}

/// Declares one named test per regression input and the list [`REGRESSIONS`] of all of them.
macro_rules! regressions {
    ($($test:ident: $target:literal / $file:literal;)*) => {
        /// Every regression input with a named test: `(target, file name)`.
        const REGRESSIONS: &[(&str, &str)] = &[$(($target, $file)),*];
        $(
            #[test]
            fn $test() {
                run_regression($target, $file);
            }
        )*
    };
}

// One line per crash found by a fuzzer: `test_name: "target" / "file";`
// (see fuzz/regressions/README.md).
regressions! {}

/// The policy size bound holds above the fuzzers' input sizes (`spec/policy-language.md` §2).
#[test]
fn policy_over_size_bound_is_rejected() {
    use verdict_checker::parse::MAX_POLICY_BYTES;
    use verdict_checker::PolicyErrorKind;
    let mut source = checker_checks::EXAMPLE_POLICIES[0].1.to_owned();
    source.push_str(&"#".repeat(MAX_POLICY_BYTES + 1 - source.len()));
    let e = verdict_checker::compile(&source, verdict_core::receipt::Salt([0; 32])).unwrap_err();
    assert_eq!(
        e.kind(),
        &PolicyErrorKind::TooLarge {
            len: MAX_POLICY_BYTES + 1,
            limit: MAX_POLICY_BYTES
        }
    );
    // One byte less is a valid policy (a comment to the bound).
    source.pop();
    checker_checks::policy(source.as_bytes());
    verdict_checker::compile(&source, verdict_core::receipt::Salt([0; 32])).unwrap();
}

/// Hand-written expression seeds over the variables of `checker_checks::EXPR_TEMPLATE`.
const EXPR_SEEDS: &[(&str, &str)] = &[
    ("bool-var", "b"),
    ("and-or-not", "b and not c or n > 3"),
    ("implies-chain", "b => c => n <= 2"),
    ("parens-or-in-and", "(b or c) and (n == 1 or m != -5)"),
    ("present-token", "present(t) and present(u)"),
    ("enum-eq", r#"e == "high" or f != "other""#),
    ("enum-set", r#"e in ["low", "mid"]"#),
    ("string-list", "s in vendors"),
    ("string-set", r#"u in ["x", "y",]"#),
    ("string-eq", r#"u == "acme""#),
    (
        "int-bounds",
        "n >= -10 and n < 10 and m > -9223372036854775808",
    ),
    ("approvals", "approvals >= 2"),
    ("literal-left", "5 < m"),
    ("bool-literals", "b == true or c != false"),
    ("nested-not", "not not (b)"),
    ("unknown-var", "zz == 1"),
    ("type-error", "n == b"),
    ("not-in-enum", r#"e == "none""#),
    ("token-compared", r#"t == "x""#),
    ("unterminated", r#"u == "abc"#),
    ("int-overflow", "m == 99999999999999999999"),
    ("trailing", "b c"),
    ("empty", ""),
];

/// Hand-written action seeds (the example suites' actions are added to them).
const ACTION_SEEDS: &[(&str, &str)] = &[
    ("empty-object", "{}"),
    ("not-object", "[1, 2]"),
    (
        "null-token",
        r#"{"authorization_token": null, "destination": "external"}"#,
    ),
    ("reserved-approvals", r#"{"approvals": 2}"#),
    ("unknown-key", r#"{"zz": 1}"#),
    ("float", r#"{"amount": 1.5}"#),
    ("u64", r#"{"amount": 18446744073709551615}"#),
    ("negative", r#"{"record_count": -1}"#),
    ("nested", r#"{"vendor": {"a": [1, {"b": []}]}}"#),
    ("too-deep", "[[[[[[[[[[]]]]]]]]]]"),
    ("escapes", r#"{"vendor": "a\u0000\"\\\n\ud83d\ude00"}"#),
    ("duplicate-key", r#"{"amount": 1, "amount": 2}"#),
    ("trailing", r#"{"amount": 1} x"#),
    ("truncated", r#"{"amount": "#),
];

/// Writes the checker targets' seed corpora from `testdata/policies/` and the lists above.
#[test]
#[ignore = "regenerates fuzz/corpus/{policy,expr,action}; run by hand"]
fn write_checker_seeds() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies");
    let corpus = fuzz_dir().join("corpus");
    for target in ["policy", "expr", "action"] {
        std::fs::create_dir_all(corpus.join(target)).unwrap();
    }
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::write(corpus.join(target).join(name), bytes).unwrap();
    };
    let toml_files = |dir: &Path| {
        let mut files: Vec<PathBuf> = inputs(dir)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.ends_with(".toml") && !name.ends_with(".cases.toml") && name != "expected.toml"
            })
            .collect();
        files.sort();
        files
    };
    let stem = |p: &Path| p.file_stem().unwrap().to_str().unwrap().to_owned();

    // policy: every policy file, valid or not.
    for (sub, prefix) in [
        ("", ""),
        ("analysis", "analysis-"),
        ("diff", "diff-"),
        ("invalid", "invalid-"),
    ] {
        for file in toml_files(&policies.join(sub)) {
            let text = std::fs::read(&file).unwrap();
            write("policy", &format!("{prefix}{}.toml", stem(&file)), &text);
        }
    }

    // expr: every expression of the valid policies (printed from the compiled tree), the raw
    // expression strings of the invalid ones, and the hand-written seeds.
    for file in toml_files(&policies) {
        let text = std::fs::read_to_string(&file).unwrap();
        let p = verdict_checker::compile(&text, verdict_core::receipt::Salt([0; 32])).unwrap();
        for rule in &p.ast().rules {
            if let Some(w) = &rule.when {
                let name = format!("{}-{}-when", stem(&file), rule.id);
                write("expr", &name, checker_checks::print_expr(w).as_bytes());
            }
            let name = format!("{}-{}-require", stem(&file), rule.id);
            write(
                "expr",
                &name,
                checker_checks::print_expr(&rule.require).as_bytes(),
            );
        }
    }
    for file in toml_files(&policies.join("invalid")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            for key in ["when", "require"] {
                let Some(rest) = line.strip_prefix(key).map(str::trim_start) else {
                    continue;
                };
                let Some(value) = rest.strip_prefix('=').map(str::trim) else {
                    continue;
                };
                let value = value.trim_matches('\'');
                let name = format!("invalid-{}-{}-line{}", stem(&file), key, i + 1);
                write("expr", &name, value.as_bytes());
            }
        }
    }
    for (name, text) in EXPR_SEEDS {
        write("expr", &format!("seed-{name}"), text.as_bytes());
    }
    let max = verdict_checker::parse::MAX_DEPTH;
    for (name, depth) in [
        ("seed-depth-at-limit", max - 1),
        ("seed-depth-over-limit", max + 1),
    ] {
        let text = format!("{}b{}", "(".repeat(depth), ")".repeat(depth));
        write("expr", name, text.as_bytes());
    }

    // action: every action of the example suites, and the hand-written seeds.
    for file in inputs(&policies) {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(policy) = name.strip_suffix(".cases.toml") else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let suite = verdict_checker::suite::Suite::parse(&text, false).unwrap();
        for (i, case) in suite.cases.iter().enumerate() {
            let json = serde_json::to_vec(&case.action).unwrap();
            write("action", &format!("{policy}-case{i:02}.json"), &json);
        }
    }
    for (name, text) in ACTION_SEEDS {
        write("action", &format!("seed-{name}.json"), text.as_bytes());
    }
}
