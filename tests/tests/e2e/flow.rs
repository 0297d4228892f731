//! A real server: allow, deny and escalate checks; their bundles verified by the real `verdict`
//! (including the action commitment from the private store); the log grown and consistency
//! proven (proof from a file and from tiles); a forged checkpoint and a swapped pair detected.

use serde_json::json;
use verdict_tests::bins::verdict;
use verdict_tests::server::Server;

const POLICY: &str = "approved-vendors";

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_bundles_consistency_and_forgery() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), None).await.unwrap();
    assert!(!server.checker_keys.is_empty());
    let checker = server.checker_keys[0].clone();

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
    let auditor_token = std::fs::read_to_string(server.data_dir.join("auditor.token"))
        .unwrap()
        .trim()
        .to_owned();
    for (want, action) in cases {
        let resp = server.check(POLICY, action, true).await.unwrap();
        assert_eq!(resp["decision"], want, "{resp}");
        let bundle = tmp.path().join(format!("{want}.proof"));
        std::fs::write(&bundle, resp["proof"]["bundle"].as_str().unwrap()).unwrap();
        let run = verdict([
            "verify",
            &path(&bundle),
            "--log-key",
            &server.log_key,
            "--checker-key",
            &checker,
        ])
        .unwrap();
        assert_eq!(run.code, Some(0), "{want}: {run:?}");
        assert!(run.stdout.contains(&format!("check {want}")), "{run:?}");

        // The customer's own action: from the private store (auditor token), canonical JSON.
        let index = resp["index"].as_u64().unwrap();
        let private: serde_json::Value = server
            .http
            .get(format!("{}/v1/private/actions/{index}", server.base))
            .bearer_auth(&auditor_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let record = &private["record"];
        // The commitment opens with the canonical action's exact bytes, as the record keeps
        // them (never a re-serialisation of `action`, whose key order is the sender's).
        let canonical = record["canonical_action"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec();
        let action_file = tmp.path().join(format!("{want}.action.json"));
        std::fs::write(&action_file, &canonical).unwrap();
        let salt = record["salt"]
            .as_str()
            .unwrap_or(resp["salt"].as_str().unwrap());
        let run = verdict([
            "verify",
            &path(&bundle),
            "--log-key",
            &server.log_key,
            "--checker-key",
            &checker,
            "--action",
            &path(&action_file),
            "--salt",
            salt,
        ])
        .unwrap();
        assert_eq!(run.code, Some(0), "{want} with action {record}: {run:?}");
        // The request id: the receipt publishes its commitment (spec receipt.md §7.1), which
        // the caller's id and salt open, and another id does not.
        let request_id = record["request_id"].as_str().unwrap();
        assert_eq!(resp["request_id"], request_id);
        for (id, code) in [(request_id.to_owned(), 0), (format!("{request_id}x"), 1)] {
            std::fs::write(&action_file, &canonical).unwrap();
            let run = verdict([
                "verify",
                &path(&bundle),
                "--log-key",
                &server.log_key,
                "--checker-key",
                &checker,
                "--action",
                &path(&action_file),
                "--salt",
                salt,
                "--request-id",
                &id,
            ])
            .unwrap();
            assert_eq!(run.code, Some(code), "{want} request id {id}: {run:?}");
            if code == 1 {
                assert!(run.stdout.contains("check request_id failed"), "{run:?}");
            } else {
                assert!(!run.stdout.contains(request_id), "id published: {run:?}");
            }
        }
        // Another action does not match.
        std::fs::write(&action_file, b"{\"call_type\":\"internal\"}").unwrap();
        let run = verdict([
            "verify",
            &path(&bundle),
            "--log-key",
            &server.log_key,
            "--checker-key",
            &checker,
            "--action",
            &path(&action_file),
            "--salt",
            salt,
        ])
        .unwrap();
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(
            run.stdout.contains("check action_commitment failed"),
            "{run:?}"
        );
        // The wrong log key fails the checkpoint check.
        let run = verdict([
            "verify",
            &path(&bundle),
            "--log-key",
            &checker,
            "--checker-key",
            &checker,
        ])
        .unwrap();
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(
            run.stdout.contains("check checkpoint_signature failed"),
            "{run:?}"
        );
    }

    // Grow the log and prove consistency.
    let old = tmp.path().join("old.checkpoint");
    std::fs::write(&old, server.get_bytes("checkpoint").await.unwrap()).unwrap();
    let old_size = server.tree_size().await.unwrap();
    for i in 0..20 {
        let action = json!({"call_type": "internal", "vendor": format!("v{i}")});
        server.check(POLICY, action, i == 19).await.unwrap();
    }
    let new = tmp.path().join("new.checkpoint");
    std::fs::write(&new, server.get_bytes("checkpoint").await.unwrap()).unwrap();
    let new_size = server.tree_size().await.unwrap();
    assert!(new_size >= old_size + 20);
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
    assert_eq!(run.code, Some(0), "{run:?}");
    let proof = tmp.path().join("proof.json");
    std::fs::write(
        &proof,
        server
            .get_bytes(&format!(
                "v1/proof/consistency?from={old_size}&to={new_size}"
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    let run = verdict([
        "--json",
        "consistency",
        &path(&old),
        &path(&new),
        "--log-key",
        &server.log_key,
        "--proof",
        &path(&proof),
    ])
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["new_size"], new_size);
    // Swapped: the "new" one is smaller, a rollback.
    let run = verdict([
        "consistency",
        &path(&new),
        &path(&old),
        "--log-key",
        &server.log_key,
        "--proof",
        &path(&proof),
    ])
    .unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("check rollback failed"), "{run:?}");
    // A proof with one hash altered does not verify.
    let mut pj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    pj["proof"][0] = json!(verdict_core::Hash([7; 32]).to_base64());
    std::fs::write(&proof, serde_json::to_vec(&pj).unwrap()).unwrap();
    let run = verdict([
        "consistency",
        &path(&old),
        &path(&new),
        "--log-key",
        &server.log_key,
        "--proof",
        &path(&proof),
    ])
    .unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("check consistency failed"), "{run:?}");

    // A forged checkpoint: the real one with another root, signature kept.
    let text = std::fs::read_to_string(&new).unwrap();
    let mut lines: Vec<&str> = text.split('\n').collect();
    let fake_root = verdict_core::Hash([9; 32]).to_base64();
    lines[2] = &fake_root;
    let forged = tmp.path().join("forged.checkpoint");
    std::fs::write(&forged, lines.join("\n")).unwrap();
    let run = verdict([
        "consistency",
        &path(&old),
        &path(&forged),
        "--log-key",
        &server.log_key,
        "--log",
        &server.base,
    ])
    .unwrap();
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("check checkpoint_signature failed"),
        "{run:?}"
    );
}
