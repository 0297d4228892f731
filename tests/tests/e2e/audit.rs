//! `audit --sample` on a log of at least 10k entries, `--full`, and a rolled-back server
//! (restarted on an older copy of its data directory) detected through `--state`.

use std::sync::Arc;

use serde_json::json;
use verdict_tests::bins::verdict;
use verdict_tests::server::{copy_dir, Server};

const POLICY: &str = "approved-vendors";

/// Submit `n` checks with `?wait=false`, `parallel` at a time, then wait until integrated.
pub(crate) async fn grow(server: &Arc<Server>, n: u64, parallel: u64) {
    let start = server.tree_size().await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..parallel {
        let s = Arc::clone(server);
        set.spawn(async move {
            let mut i = w;
            while i < n {
                let action = if i % 3 == 0 {
                    json!({"call_type": "third_party_api", "vendor": "evilcorp", "sends_personal_data": false, "payload_bytes": i})
                } else {
                    json!({"call_type": "internal", "vendor": format!("v{i}")})
                };
                s.check(POLICY, action, false).await.unwrap();
                i += parallel;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while server.tree_size().await.unwrap() < start + n {
        assert!(
            std::time::Instant::now() < deadline,
            "log did not integrate"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(crate) fn audit(server: &Server, extra: &[&str]) -> verdict_tests::bins::Run {
    let mut args = vec![
        "--json".to_owned(),
        "audit".into(),
        "--log".into(),
        server.base.clone(),
        "--log-key".into(),
        server.log_key.clone(),
    ];
    for k in &server.checker_keys {
        args.push("--checker-key".into());
        args.push(k.clone());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    verdict(&args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_full_and_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("state");
    let state_s = state.display().to_string();
    let mut server = Server::start(&data, None).await.unwrap();
    let first = {
        let s = Arc::new(server);
        grow(&s, 10_000, 32).await;
        server = Arc::try_unwrap(s).unwrap();
        server.tree_size().await.unwrap()
    };
    assert!(first >= 10_000);

    // Sample 300 entries, reproducibly.
    let t = std::time::Instant::now();
    let run = audit(
        &server,
        &["--sample", "300", "--seed", "e2e", "--state", &state_s],
    );
    let took = t.elapsed();
    assert_eq!(run.code, Some(0), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verified"], 300);
    assert_eq!(v["tree_size"], first);
    assert!(
        v["counts"]["by_decision"]["deny"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(
        v["counts"]["by_decision"]["allow"].as_u64().unwrap() > 0,
        "{v}"
    );
    println!("audit --sample 300 of {first} entries: {took:?}");
    let again = audit(&server, &["--sample", "300", "--seed", "e2e"]);
    let w: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["counts"], w["counts"], "same seed, same sample");

    // Keep a copy of the data directory at this size (server stopped for a clean copy).
    server.stop().unwrap();
    let old_copy = tmp.path().join("data-old");
    copy_dir(&data, &old_copy).unwrap();
    let server = Server::start(&data, None).await.unwrap();
    let server = Arc::new(server);
    grow(&server, 300, 16).await;
    let mut server = Arc::try_unwrap(server).unwrap();
    let second = server.tree_size().await.unwrap();
    assert!(second > first);

    // Consistent growth: state advances.
    let run = audit(&server, &["--sample", "50", "--state", &state_s]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["previous_size"], first);

    // Full audit: every entry and tile, root recomputed.
    let run = audit(&server, &["--full"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verified"], second);

    // Roll the server back to the old copy: the auditor's state catches it.
    server.stop().unwrap();
    let old_server = Server::start(&old_copy, None).await.unwrap();
    assert_eq!(old_server.tree_size().await.unwrap(), first);
    let run = audit(&old_server, &["--sample", "10", "--state", &state_s]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["check"], "rollback", "{v}");
    // Human output says it loudly.
    let mut args = vec![
        "audit".to_owned(),
        "--log".into(),
        old_server.base.clone(),
        "--log-key".into(),
        old_server.log_key.clone(),
        "--sample".into(),
        "1".into(),
        "--state".into(),
        state_s.clone(),
    ];
    for k in &old_server.checker_keys {
        args.push("--checker-key".into());
        args.push(k.clone());
    }
    let run = verdict(&args).unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("rolled back"), "{run:?}");
}

/// The benchmark figure of `docs/benchmarks.md` "## verifier": `audit --sample 1000` against a
/// large local log. Slow (builds the log through the check API): run by hand with
/// `VERDICT_E2E_LOG_SIZE=100000 cargo test -p verdict-tests --test e2e -- --ignored audit_sample_1000_large_log --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: builds a large log; a benchmark, run by hand"]
async fn audit_sample_1000_large_log() {
    let size: u64 = std::env::var("VERDICT_E2E_LOG_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(&tmp.path().join("data"), None).await.unwrap());
    let t = std::time::Instant::now();
    grow(&server, size, 64).await;
    println!("built a log of {size} entries in {:?}", t.elapsed());
    for round in 0..3 {
        let t = std::time::Instant::now();
        let run = audit(
            &server,
            &["--sample", "1000", "--seed", &format!("bench-{round}")],
        );
        let took = t.elapsed();
        assert_eq!(run.code, Some(0), "{run:?}");
        println!("audit --sample 1000 of {size} entries (round {round}): {took:?}");
    }
}

/// A forked log: two servers with the same keys (a copied data directory) grow different
/// histories; an auditor that verified one of them detects the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("state");
    let state_s = state.display().to_string();
    let s = Arc::new(Server::start(&data, None).await.unwrap());
    grow(&s, 40, 4).await;
    let mut s = Arc::try_unwrap(s).unwrap();
    s.stop().unwrap();
    let fork_dir = tmp.path().join("data-fork");
    copy_dir(&data, &fork_dir).unwrap();

    // History A.
    let a = Arc::new(Server::start(&data, None).await.unwrap());
    grow(&a, 10, 2).await;
    let run = audit(&a, &["--sample", "20", "--state", &state_s]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut a = Arc::try_unwrap(a).unwrap();
    a.stop().unwrap();

    // History B, from the same keys and prefix, with other entries.
    let b = Arc::new(Server::start(&fork_dir, None).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let b = Arc::clone(&b);
        set.spawn(async move {
            let action = json!({"call_type": "internal", "vendor": format!("fork-{i}")});
            b.check(POLICY, action, true).await.unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let run = audit(&b, &["--sample", "5", "--state", &state_s]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        v["check"] == "fork" || v["check"] == "consistency" || v["check"] == "rollback",
        "{v}"
    );
}
