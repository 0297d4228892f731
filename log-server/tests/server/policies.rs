//! Policy registration (issue 11, spec `spec/policy-statement.md`): version rules, statements
//! in the log, public history, the auditor's opening, start-up registration of the policies
//! directory, and registrations surviving a restart.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use serde_json::json;
use verdict_core::receipt::{commit, CommitmentTag, Receipt, Salt};
use verdict_core::statement::{entry_type, EntryType, PolicyStatement};
use verdict_core::LeafIndex;

use crate::TestServer;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn versioned(s: &TestServer, version: &str) -> String {
    crate::test_policy(&s.approver.verifier())
        .replace("version = \"1.0.0\"", &format!("version = \"{version}\""))
}

async fn register(s: &TestServer, source: &str, query: &str) -> crate::Reply {
    s.post_json(
        &format!("/v1/policies{query}"),
        Some(&s.admin_token.clone()),
        &json!({ "source": source }),
    )
    .await
}

async fn auditor_get(s: &TestServer, uri: &str) -> crate::Reply {
    s.send(
        Request::get(uri)
            .header("authorization", format!("Bearer {}", s.auditor_token))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_immutable_and_ordered() {
    let s = TestServer::start().await;
    let v110 = versioned(&s, "1.1.0");
    let created = register(&s, &v110, "").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json());
    let created = created.json();
    assert_eq!(created["created"], true);
    let size = s.log_size();

    // Same name, version and text (reformatted): 200, nothing appended.
    let again = register(&s, &format!("# a comment\n{v110}\n"), "").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["policy"]["index"], created["policy"]["index"]);
    assert_eq!(s.log_size(), size);

    // Same name and version, other text: 409.
    let other = v110.replace("\"acme\", \"globex\"", "\"acme\", \"globex\", \"evil\"");
    let r = register(&s, &other, "").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["error"], "policy_conflict");
    // A downgrade and an equal version under another spelling: 409.
    for v in ["1.0.1", "1.1"] {
        let r = register(&s, &versioned(&s, v), "").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{v}");
    }
    // Not a semantic version: 422.
    let r = register(&s, &versioned(&s, "latest"), "").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.log_size(), size, "refused registrations log nothing");

    // The current version is still 1.1.0.
    let c = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    assert_eq!(c["policy"]["version"], "1.1.0");

    // History: both versions, in order, each with its index; the second names the first.
    let h = s.get("/v1/policies/customer-data-egress/versions").await;
    assert_eq!(h.status, StatusCode::OK);
    let h = h.json();
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], "1.0.0");
    assert_eq!(versions[0]["registered_by"], "policies-dir");
    assert_eq!(versions[1]["version"], "1.1.0");
    assert_eq!(versions[1]["registered_by"], "admin");
    assert_eq!(versions[1]["predecessor"], versions[0]["commitment"]);
    assert!(!h.to_string().contains("external-needs-auth"), "no text");
    assert_eq!(
        s.get("/v1/policies/nope/versions").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_findings_need_force_and_are_recorded() {
    let s = TestServer::start().await;
    let contradiction = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/policies/analysis/contradiction.toml"),
    )
    .unwrap();
    let size = s.log_size();
    let r = register(&s, &contradiction, "").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    assert_eq!(r.json()["error"], "policy_has_errors");
    assert_eq!(s.log_size(), size);
    let r = register(&s, &contradiction, "?force=true").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let j = r.json();
    assert_eq!(j["policy"]["forced"], true);
    let statement = B64.decode(j["statement"].as_str().unwrap()).unwrap();
    let verified =
        PolicyStatement::verify(&statement, std::slice::from_ref(&s.checker_key)).unwrap();
    assert!(verified.record().analysis.forced);
    assert!(verified.record().analysis.errors >= 1);
    assert!(verified.record().analysis.findings[0].starts_with("error "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_log_entries_before_receipts() {
    let s = TestServer::start().await;
    let list = s.get("/v1/policies").await;
    assert_eq!(list.status, StatusCode::OK, "public");
    let list = list.json();
    let current = &list[0];
    let index = current["index"].as_u64().unwrap();
    // The statement is the log entry at that index, a policy statement, signed by the checker
    // key, and tells its commitment.
    let entry = s.state.log.entry(LeafIndex(index)).unwrap().unwrap();
    assert_eq!(entry_type(&entry), EntryType::PolicyStatement);
    assert!(Receipt::decode(&entry).is_err());
    let record = PolicyStatement::verify(&entry, std::slice::from_ref(&s.checker_key))
        .unwrap()
        .record()
        .clone();
    assert_eq!(record.policy_commitment.to_hex(), current["commitment"]);
    assert_eq!(record.predecessor, None);
    // A receipt made under it comes later in the log.
    let c = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    assert!(c["index"].as_u64().unwrap() > index);
    assert_eq!(c["policy"]["commitment"], current["commitment"]);

    // The auditor opens the commitment: text and salt recompute it.
    let uri = format!(
        "/v1/private/policies/{}",
        current["commitment"].as_str().unwrap()
    );
    assert_eq!(s.get(&uri).await.status, StatusCode::UNAUTHORIZED);
    let agent = s
        .send(
            Request::get(&uri)
                .header("authorization", format!("Bearer {}", s.agent_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
    let opening = auditor_get(&s, &uri).await;
    assert_eq!(opening.status, StatusCode::OK);
    let opening = opening.json();
    let salt = Salt::from_hex(opening["salt"].as_str().unwrap()).unwrap();
    let policy = verdict_checker::compile(opening["source"].as_str().unwrap(), salt).unwrap();
    assert_eq!(policy.commitment().to_hex(), current["commitment"]);
    assert_eq!(
        commit(CommitmentTag::Policy, &salt, policy.canonical()).to_hex(),
        current["commitment"]
    );
    assert_eq!(
        auditor_get(&s, &format!("/v1/private/policies/{}", "0".repeat(64)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        auditor_get(&s, "/v1/private/policies/xyz").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_restart_and_the_directory_is_not_registered_twice() {
    let s = TestServer::start().await;
    let r = register(&s, &versioned(&s, "2.0.0"), "").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let before = s
        .get("/v1/policies/customer-data-egress/versions")
        .await
        .json();
    let size = s.log_size();
    let s = s.restart().await;
    assert_eq!(
        s.log_size(),
        size,
        "the unchanged directory registers nothing"
    );
    let after = s
        .get("/v1/policies/customer-data-egress/versions")
        .await
        .json();
    assert_eq!(after, before);
    let c = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    assert_eq!(c["policy"]["version"], "2.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_directory_file_stops_the_start_naming_it() {
    let s = TestServer::start().await;
    let config = s.config.clone();
    let path = config.policies_dir.join("customer-data-egress.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    s.state.log.shutdown().await.unwrap();
    drop(s.app);
    drop(s.state);
    std::fs::write(&path, text.replace("\"acme\", \"globex\"", "\"acme\"")).unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        match verdict_log_server::start(&config).await {
            Ok(_) => panic!("a changed file under a registered version must stop the start"),
            Err(e) if e.to_string().contains("lock") => last = e.to_string(),
            Err(e) => {
                last = e.to_string();
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        last.contains("customer-data-egress.toml") && last.contains("other content"),
        "{last}"
    );
}

/// Issue 11 acceptance (salts): with an all-zero client salt, the published action commitment
/// differs from `commit(action, client salt)`; the answer's salt (server-mixed) reproduces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_client_salt_does_not_make_the_commitment_guessable() {
    let s = TestServer::start().await;
    let zero = "0".repeat(64);
    let r = s
        .check(json!({
            "policy": "customer-data-egress",
            "action": {"destination": "internal", "record_count": 4242},
            "salt": zero,
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let j = r.json();
    let canonical = j["canonical_action"].as_str().unwrap().as_bytes().to_vec();
    let published = j["action_commitment"].as_str().unwrap();
    let naive = commit(CommitmentTag::Action, &Salt([0; 32]), &canonical).to_hex();
    assert_ne!(published, naive);
    assert_ne!(j["salt"], zero);
    let mixed = Salt::from_hex(j["salt"].as_str().unwrap()).unwrap();
    assert_eq!(
        commit(CommitmentTag::Action, &mixed, &canonical).to_hex(),
        published
    );
}

/// Issue 11: an escalated request resubmitted with approvals after a new version of its policy
/// was registered is decided under the version it was first decided under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmission_after_a_policy_update_keeps_its_policy_version() {
    let s = TestServer::start().await;
    let action = json!({"destination": "internal", "record_count": 5000});
    let first = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "esc-1"}))
        .await
        .json();
    assert_eq!(first["decision"], "escalate");
    let r = register(&s, &versioned(&s, "1.1.0"), "").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let commitment = verdict_core::Hash::from_slice(
        &hex::decode(first["action_commitment"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let approval = verdict_checker::approval::Approval::sign(&s.approver, &commitment, "esc-1");
    let approved = s
        .check(
            json!({"policy": "customer-data-egress", "action": action, "request_id": "esc-1",
                      "salt": first["salt"], "approvals": [approval]}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.json());
    let ap = approved.json();
    assert_eq!(ap["decision"], "allow");
    assert_eq!(ap["policy"]["version"], "1.0.0");
    assert_eq!(ap["policy"]["commitment"], first["policy"]["commitment"]);
    // A new request by name uses the new version.
    let fresh = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    assert_eq!(fresh["policy"]["version"], "1.1.0");
}
