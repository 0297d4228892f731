//! Issue 11 acceptance with the real binary: 50 concurrent policy registrations all get 201,
//! are listed by `/v1/policies/{name}/versions`, and survive `kill -9` and a restart, with no 5xx.
//!
//! Versions of one name must increase (spec `policy-statement.md` §6), so concurrent clients
//! registering versions of one name out of order would rightly get 409; the 50 registrations
//! here are of 50 names, all serialised by the one registration lock of the server.

use std::sync::Arc;

use verdict_tests::server::Server;

fn policy(i: usize) -> String {
    format!(
        r#"name = "concurrent-{i:02}"
version = "1.0.{i}"
[variables]
amount = {{ type = "int", min = 0, max = 1000 }}
[[rules]]
id = "small"
text = "Amounts up to {i} only."
require = 'amount <= {i}'
effect = "deny"
"#
    )
}

async fn versions(server: &Server, i: usize) -> serde_json::Value {
    server
        .get_json(&format!("v1/policies/concurrent-{i:02}/versions"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Arc::new(Server::start(&data, None).await.unwrap());
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (server, admin) = (Arc::clone(&server), admin.clone());
            tokio::spawn(async move {
                let r = server
                    .http
                    .post(format!("{}/v1/policies", server.base))
                    .bearer_auth(&admin)
                    .header("content-type", "application/toml")
                    .body(policy(i))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (i, status, r.text().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        assert_eq!(status, 201, "registration {i}: {body}");
    }
    // An agent token is refused.
    let agent = server
        .http
        .post(format!("{}/v1/policies", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/toml")
        .body(policy(99))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status().as_u16(), 403);
    let mut indices = std::collections::BTreeSet::new();
    for i in 0..50 {
        let v = versions(&server, i).await;
        assert_eq!(v["versions"][0]["version"], format!("1.0.{i}"));
        indices.insert(v["versions"][0]["index"].as_u64().unwrap());
    }
    assert_eq!(indices.len(), 50, "one log entry each");

    // kill -9 (Drop is SIGKILL) and restart on the same data directory.
    let server = Arc::into_inner(server).unwrap();
    let addr = server.addr;
    drop(server);
    let server = Server::start(&data, Some(addr)).await.unwrap();
    let mut after = std::collections::BTreeSet::new();
    for i in 0..50 {
        let v = versions(&server, i).await;
        assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["versions"][0]["version"], format!("1.0.{i}"));
        after.insert(v["versions"][0]["index"].as_u64().unwrap());
    }
    assert_eq!(after, indices);
    // Every registration entry is in the log the restarted server serves.
    let size = server.tree_size().await.unwrap();
    assert!(indices.iter().all(|&i| i < size));
}

/// Issue 11 acceptance: `verdict audit --full` fails on a receipt that cites a policy commitment
/// no statement registered, even though the receipt is validly signed with the checker key.
/// The server runs in process so that the test can append the forged receipt to its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_fails_on_a_receipt_citing_an_unregistered_policy() {
    use verdict_core::receipt::{Decision, Kind, Receipt, Statement, STATEMENT_VERSION};

    let tmp = tempfile::tempdir().unwrap();
    let config = verdict_log_server::config::Config {
        data_dir: tmp.path().join("data"),
        policies_dir: verdict_tests::bins::workspace_root().join("testdata/policies"),
        checker_threads: 1,
        batch_max_age_ms: 5,
        ..Default::default()
    };
    let started = verdict_log_server::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = verdict_log_server::app(started.state.clone());
    let options = verdict_log_server::serve::ServeOptions::from_config(&config);
    tokio::spawn(verdict_log_server::serve::serve(
        listener,
        app,
        options,
        std::future::pending(),
    ));
    let keys = &started.keys;
    let audit = || {
        verdict_tests::bins::verdict([
            "--json".to_owned(),
            "audit".into(),
            "--log".into(),
            base.clone(),
            "--log-key".into(),
            keys.log.verifier().to_string(),
            "--checker-key".into(),
            keys.checker.verifier().to_string(),
            "--full".into(),
        ])
        .unwrap()
    };
    let clean = audit();
    assert_eq!(clean.code, Some(0), "{}{}", clean.stdout, clean.stderr);
    // `verdict policies` proves every registration of the policies directory.
    let policies = verdict_tests::bins::verdict([
        "--json".to_owned(),
        "policies".into(),
        "--log".into(),
        base.clone(),
        "--log-key".into(),
        keys.log.verifier().to_string(),
        "--checker-key".into(),
        keys.checker.verifier().to_string(),
    ])
    .unwrap();
    assert_eq!(
        policies.code,
        Some(0),
        "{}{}",
        policies.stdout,
        policies.stderr
    );
    let listed: serde_json::Value = serde_json::from_str(&policies.stdout).unwrap();
    let registrations = listed["registrations"].as_array().unwrap();
    assert_eq!(registrations.len(), 5, "{listed}");
    assert!(registrations
        .iter()
        .all(|r| r["registered_by"] == "policies-dir"));
    assert!(
        clean.stdout.contains("customer-data-egress 1.0.0"),
        "{}",
        clean.stdout
    );

    let forged = Statement {
        version: STATEMENT_VERSION,
        checker_key_id: keys.checker.key_id(),
        policy_commitment: verdict_core::Hash([0xab; 32]),
        policy_version: "6.6.6".into(),
        action_commitment: verdict_core::Hash([0xcd; 32]),
        decision: Decision::Allow,
        kind: Kind::Check,
        fail_closed: false,
        violated_rules: vec![],
        matched_variables: vec!["amount".into()],
        undetermined_variables: vec![],
        approvers: vec![],
        time_ms: 1_795_000_000_000,
        request_id: "forged".into(),
        checker_version: "0.1.0".into(),
        solver_version: "z3 4.8.12".into(),
    };
    let bytes = Receipt::sign(&forged, &keys.checker).unwrap();
    let sequenced = started
        .state
        .log
        .submit_for_proof(bytes, None)
        .await
        .unwrap();
    let index = sequenced.index.0;
    sequenced.integrated().await.unwrap();
    let failed = audit();
    assert_eq!(failed.code, Some(1), "{}{}", failed.stdout, failed.stderr);
    let report: serde_json::Value = serde_json::from_str(&failed.stdout).unwrap();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["check"], "policy_registration");
    assert_eq!(failures[0]["index"], index);
}
