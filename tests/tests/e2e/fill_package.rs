//! `verdict-server fill --package` makes an exportable period (issue 16, "Scale";
//! `scripts/bench-package.sh` runs it at 100k and 1M): a small fill, then the real server on
//! the filled store, `verdict audit export` by time (directory and tar) and
//! `verdict audit verify-package` (exit 0), and the package's summary holds the fill's traffic
//! mix. A fill that wrote a receipt without its private record, a record that does not open its
//! commitment, a receipt before its policy's statement or a time out of order fails here.

use std::path::Path;
use std::process::Command;

use verdict_tests::bins::{binary, verdict, Run};
use verdict_tests::server::Server;

/// Decisions to fill: a multiple of 10, the length of the fill's traffic cycle.
const ENTRIES: u64 = 300;
/// The origin `fill` names its log with (`fill.rs` `BENCH_ORIGIN`).
const BENCH_ORIGIN: &str = "bench.invalid/verdict-server-fill";

fn export(server: &Server, out: &Path) -> Run {
    let auditor = server.data_dir.join("auditor.token");
    verdict([
        "audit",
        "export",
        "--log",
        &server.base,
        "--token-file",
        auditor.to_str().unwrap(),
        "--log-key",
        &server.log_key,
        "--checker-key",
        &server.checker_keys[0],
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap()
}

fn verify(server: &Server, pkg: &Path) -> Run {
    verdict([
        "audit",
        "verify-package",
        pkg.to_str().unwrap(),
        "--log-key",
        &server.log_key,
        "--checker-key",
        &server.checker_keys[0],
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_period_exports_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fill = Command::new(binary("verdict-server").unwrap())
        .arg("--data-dir")
        .arg(&data)
        .args(["fill", "--package", "--entries", &ENTRIES.to_string()])
        .args(["--concurrency", "16", "--batch", "64"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        fill.status.success(),
        "fill: {}\n{}",
        String::from_utf8_lossy(&fill.stdout),
        String::from_utf8_lossy(&fill.stderr)
    );
    let mut server = Server::start_with_env(&data, None, &[("VERDICT_ORIGIN", BENCH_ORIGIN)])
        .await
        .unwrap();

    let dir = tmp.path().join("pkg");
    let run = export(&server, &dir);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = verify(&server, &dir);
    assert_eq!(run.code, Some(0), "{run:?}");
    let tar = tmp.path().join("pkg.tar");
    let run = export(&server, &tar);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = verify(&server, &tar);
    assert_eq!(run.code, Some(0), "{run:?}");

    // The fill's mix, per 10 requests: 4 allow, 2 deny, 1 escalate checks, 1 check of an
    // out-of-scope action (a not-applicable screen receipt), 1 in-scope and 1 not-applicable
    // screen. The period holds every entry: the fill's policy statement first, then the
    // decisions, then the statements of the other testdata policies the server registered.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let tenth = ENTRIES / 10;
    assert_eq!(summary["receipts"], ENTRIES, "{summary}");
    assert_eq!(
        summary["by_decision"],
        serde_json::json!({"allow": 4 * tenth, "deny": 2 * tenth, "escalate": tenth,
            "in-scope": tenth, "not-applicable": 2 * tenth}),
        "{summary}"
    );
    assert_eq!(
        summary["by_kind"],
        serde_json::json!({"check": 7 * tenth, "screen": 3 * tenth}),
        "{summary}"
    );
    assert_eq!(summary["start"], 0, "{summary}");
    assert_eq!(summary["end"], summary["tree_size"], "{summary}");
    let statements = summary["policy_statements"].as_u64().unwrap();
    assert!(statements >= 1, "{summary}");
    assert_eq!(
        summary["entries"].as_u64().unwrap(),
        ENTRIES + statements,
        "{summary}"
    );
    let first = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"index": 0, "record": null}),
        "the fill's policy statement comes first"
    );
    server.stop().unwrap();
}
