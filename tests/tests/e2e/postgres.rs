//! A real `verdict-server` on `storage = "postgres"`, on a throwaway PostgreSQL cluster of the
//! machine's server binaries: allow, deny and escalate checks; their bundles verified by the
//! real `verdict`; the log kept across a server restart (tree size, consistency of the old
//! checkpoint with the new one); no sled store created; and while PostgreSQL is down a check
//! fails closed (503 `storage_unavailable`), recovering by itself once it is back.

use serde_json::json;
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_tests::bins::verdict;
use verdict_tests::server::Server;

const POLICY: &str = "approved-vendors";

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_serves_checks_and_verifiable_bundles() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    let url = cluster.create_database("verdict_e2e").unwrap();
    let env = [
        ("VERDICT_STORAGE", "postgres"),
        ("VERDICT_POSTGRES_URL", url.as_str()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_with_env(&data, None, &env).await.unwrap();
    let cases = [
        (
            "allow",
            json!({"call_type": "third_party_api", "vendor": "acme", "sends_personal_data": false, "payload_bytes": 1000}),
        ),
        (
            "deny",
            json!({"call_type": "third_party_api", "vendor": "evilcorp", "sends_personal_data": false, "payload_bytes": 1000}),
        ),
        (
            "escalate",
            json!({"call_type": "third_party_api", "vendor": "globex", "sends_personal_data": true, "payload_bytes": 100}),
        ),
    ];
    for (want, action) in cases {
        let resp = server.check(POLICY, action, true).await.unwrap();
        assert_eq!(resp["decision"], want, "{resp}");
        let (_, run) = server.verify_answer(tmp.path(), want, &resp, &[]).unwrap();
        assert_eq!(run.code, Some(0), "{want}: {run:?}");
        assert!(run.stdout.contains(&format!("check {want}")), "{run:?}");
    }
    assert!(
        !data.join("store").exists(),
        "a sled store was created although storage = postgres"
    );
    let rows = cluster
        .psql("verdict_e2e", "SELECT staged_size FROM verdict_log")
        .unwrap();
    let size = server.tree_size().await.unwrap();
    assert!(rows.parse::<u64>().unwrap() >= size, "{rows} < {size}");

    // Restart on the same database: the log goes on from where it was.
    let old = tmp.path().join("old.checkpoint");
    std::fs::write(&old, server.get_bytes("checkpoint").await.unwrap()).unwrap();
    server.stop().unwrap();
    let server = Server::start_with_env(&data, None, &env).await.unwrap();
    assert!(server.tree_size().await.unwrap() >= size);
    let resp = server
        .check(
            POLICY,
            json!({"call_type": "internal", "vendor": "after"}),
            true,
        )
        .await
        .unwrap();
    let (_, run) = server
        .verify_answer(tmp.path(), "after", &resp, &[])
        .unwrap();
    assert_eq!(run.code, Some(0), "after restart: {run:?}");
    let new = tmp.path().join("new.checkpoint");
    std::fs::write(&new, server.get_bytes("checkpoint").await.unwrap()).unwrap();
    let run = verdict([
        "consistency",
        &path(&old),
        &path(&new),
        "--log-key",
        &server.log_key,
        "--log",
        &server.base,
    ])
    .unwrap();
    assert_eq!(run.code, Some(0), "consistency across the restart: {run:?}");

    // PostgreSQL down: a check fails closed (503 storage_unavailable, no decision), then the
    // server recovers by itself once the database is back.
    cluster.stop(true).unwrap();
    let action = json!({"call_type": "third_party_api", "vendor": "acme", "sends_personal_data": false, "payload_bytes": 1});
    let down = server
        .http
        .post(format!("{}/v1/check", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": POLICY, "action": action}))
        .send()
        .await
        .unwrap();
    let status = down.status();
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage_unavailable", "{body}");
    assert!(body.get("decision").is_none(), "{body}");
    cluster.restart().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let resp = loop {
        match server.check(POLICY, action.clone(), true).await {
            Ok(resp) => break resp,
            Err(error) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for recovery: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no recovery after PostgreSQL came back: {error}"),
        }
    };
    assert_eq!(resp["decision"], "allow", "{resp}");
    println!(
        "postgres e2e: 3 decisions verified, restart kept tree size {size}, consistency proven, \
         503 storage_unavailable while PostgreSQL was down, recovered after"
    );
}
