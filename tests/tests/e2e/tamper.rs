//! The tamper suite: every single-field corruption of a valid bundle is rejected by the real
//! `verdict verify` with exit 1 and the expected reason; the valid bundle passes with exit 0.

use verdict_tests::bins::verdict;
use verdict_tests::tamper::{generate, read_rows, suite_dir, write_suite};

fn keys() -> (String, String) {
    let dir = suite_dir().join("keys");
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    (read("log.vkey"), read("checker.vkey"))
}

/// Regenerates `testdata/bundles/` (run by hand after a format change).
#[test]
#[ignore = "writes testdata/bundles; run by hand to regenerate the suite"]
fn regenerate_tamper_suite() {
    let dir = suite_dir();
    let cases = generate(&dir).unwrap();
    write_suite(&dir, &cases).unwrap();
    println!("wrote {} cases to {}", cases.len(), dir.display());
}

/// The committed files are exactly what the generator produces from the committed test keys
/// (so the suite cannot drift from the formats silently).
#[test]
fn committed_suite_is_fresh() {
    let dir = suite_dir();
    let cases = generate(&dir).unwrap();
    let rows = read_rows(&dir).unwrap();
    assert_eq!(rows.len(), cases.len(), "cases.tsv is stale: regenerate");
    for (case, row) in cases.iter().zip(&rows) {
        assert_eq!(case.file, row.file);
        assert_eq!(case.expect, row.expect, "{}", case.name);
        let on_disk = std::fs::read(dir.join(&row.file)).unwrap();
        assert!(on_disk == case.bytes, "{} is stale: regenerate", row.file);
    }
}

#[test]
fn verify_rejects_every_corruption() {
    let dir = suite_dir();
    let (log_key, checker_key) = keys();
    let rows = read_rows(&dir).unwrap();
    let mut failures = Vec::new();
    let (mut valid, mut rejected) = (0, 0);
    for row in &rows {
        let mut args = vec![
            "verify".to_owned(),
            dir.join(&row.file).display().to_string(),
            "--log-key".into(),
            log_key.clone(),
            "--checker-key".into(),
            checker_key.clone(),
        ];
        for a in &row.args {
            let p = dir.join(a);
            args.push(if p.is_file() {
                p.display().to_string()
            } else {
                a.clone()
            });
        }
        let run = verdict(&args).unwrap();
        let code = run.code.map(|c| c as u8);
        if code != Some(row.exit) || !run.stdout.contains(&row.expect) {
            failures.push(format!(
                "{} {:?}: exit {:?} (want {}), stdout {:?}, stderr {:?}, want {:?}",
                row.file, row.args, run.code, row.exit, run.stdout, run.stderr, row.expect
            ));
        } else if row.exit == 0 {
            valid += 1;
        } else {
            rejected += 1;
        }
    }
    println!(
        "tamper suite: {} cases, {valid} accepted as valid, {rejected} rejected with the expected reason",
        rows.len()
    );
    assert!(rows.len() > 150, "suite too small: {}", rows.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn verify_json_names_the_check_and_oversize_is_rejected() {
    let dir = suite_dir();
    let (log_key, checker_key) = keys();
    let run = verdict([
        "--json",
        "verify",
        dir.join("tampered/receipt-decision.proof")
            .to_str()
            .unwrap(),
        "--log-key",
        &log_key,
        "--checker-key",
        &checker_key,
    ])
    .unwrap();
    assert_eq!(run.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["result"], "failed");
    assert_eq!(v["check"], "receipt_signature");

    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.proof");
    let mut bytes = std::fs::read(dir.join("valid.proof")).unwrap();
    bytes.resize(verdict_core::bundle::MAX_BUNDLE_SIZE + 1, b'\n');
    std::fs::write(&big, bytes).unwrap();
    let run = verdict([
        "verify",
        big.to_str().unwrap(),
        "--log-key",
        &log_key,
        "--checker-key",
        &checker_key,
    ])
    .unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("check bundle_format failed"), "{run:?}");
}

/// Regression: `verdict ... | head` closed stdout before the result was written, and `println!`
/// panicked (exit 101). The exit code must still be the verification result.
#[test]
fn closed_stdout_keeps_the_verification_exit_code() {
    let (log_key, checker_key) = keys();
    let valid = suite_dir().join("valid.proof");
    for (bundle, want) in [
        (valid, 0),
        (suite_dir().join("tampered").join(first_tampered()), 1),
    ] {
        let mut child = std::process::Command::new(verdict_tests::bins::binary("verdict").unwrap())
            .args(["verify", bundle.to_str().unwrap(), "--log-key", &log_key])
            .args(["--checker-key", &checker_key])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the child writes its one line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}: {stderr}",
            bundle.display()
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn first_tampered() -> String {
    let mut names: Vec<String> = std::fs::read_dir(suite_dir().join("tampered"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next().unwrap()
}

#[test]
fn verify_usage_errors_exit_2() {
    let dir = suite_dir();
    let (log_key, _) = keys();
    let valid = dir.join("valid.proof");
    // No checker key: the receipt signature is required.
    let run = verdict(["verify", valid.to_str().unwrap(), "--log-key", &log_key]).unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no trusted checker key"), "{run:?}");
    // Malformed key.
    let run = verdict([
        "verify",
        valid.to_str().unwrap(),
        "--log-key",
        "nope",
        "--checker-key",
        "nope",
    ])
    .unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
    // Missing file.
    let run = verdict(["verify", "/nonexistent/bundle", "--log-key", &log_key]).unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
    // --action without --salt is a clap usage error.
    let run = verdict(["verify", valid.to_str().unwrap(), "--action", "x"]).unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[test]
fn verify_with_policy_file_and_inspect() {
    let dir = suite_dir();
    let (log_key, checker_key) = keys();
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy");
    // A witness quorum the bundle's checkpoint does not meet (it carries no cosignature).
    // Before issue 14 this exited 0 with "witness cosignatures are NOT checked yet".
    let witness = verdict_core::cosignature::Cosigner::new(
        "witness.test/w1",
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    )
    .unwrap()
    .verifier();
    std::fs::write(
        &policy,
        format!(
            "# test policy\nlog {log_key}\nwitness w1 {witness} https://w1.example\n\
             group g any w1\nquorum g\nchecker {checker_key}\n"
        ),
    )
    .unwrap();
    let valid = dir.join("valid.proof");
    let run = verdict([
        "verify",
        valid.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("check witness_quorum failed")
            && run.stdout.contains("from no witness"),
        "{run:?}"
    );
    // The same policy with `quorum none` verifies, on the log signature alone.
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("quorum g", "quorum none")).unwrap();
    let run = verdict([
        "verify",
        valid.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("witness quorum none"), "{run:?}");

    let run = verdict(["inspect", valid.to_str().unwrap()]).unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("NOT VERIFIED"), "{run:?}");
    assert!(run.stdout.contains("tamper-req-5"), "{run:?}");
    let run = verdict(["--json", "inspect", valid.to_str().unwrap()]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["index"], 5);
    let run = verdict(["inspect", dir.join("action.json").to_str().unwrap()]).unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[test]
fn help_documents_exit_codes() {
    for args in [
        vec!["--help"],
        vec!["verify", "--help"],
        vec!["consistency", "--help"],
        vec!["audit", "--help"],
    ] {
        let run = verdict(&args).unwrap();
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(
            run.stdout.contains("1  verification failed"),
            "{args:?}: {run:?}"
        );
        assert!(
            run.stdout.contains("2  usage, input or network error"),
            "{args:?}"
        );
    }
    let run = verdict(["frobnicate"]).unwrap();
    assert_eq!(run.code, Some(2), "{run:?}");
}
