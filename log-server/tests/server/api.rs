//! Router tests through `oneshot`: real sled log, real checker pool, real keys.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use serde_json::json;
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::leaf_hash;
use verdict_core::proof::{verify_consistency, verify_inclusion};
use verdict_core::receipt::{commit, CommitmentTag, Decision, Kind, Receipt, Salt};
use verdict_core::tile::{decode_entry_bundle, Tile};
use verdict_core::{Hash, LeafIndex, TreeSize};

use crate::TestServer;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Verify a decision answer completely with core: bundle, inclusion, receipt signature.
fn verify_decision(server: &TestServer, reply: &serde_json::Value, expected: Decision) -> Receipt {
    let bundle_text = reply["proof"]["bundle"].as_str().expect("bundle");
    let bundle = ProofBundle::parse(bundle_text.as_bytes()).unwrap();
    let verified = bundle.verify(&server.log_key).unwrap();
    assert_eq!(verified.index().0, reply["index"].as_u64().unwrap());
    let receipt_bytes = B64.decode(reply["receipt"].as_str().unwrap()).unwrap();
    assert_eq!(verified.entry(), receipt_bytes.as_slice());
    let receipt =
        Receipt::verify(&receipt_bytes, std::slice::from_ref(&server.checker_key)).unwrap();
    assert_eq!(receipt.statement().decision, expected);
    assert_eq!(
        receipt.statement().action_commitment.to_hex(),
        reply["action_commitment"].as_str().unwrap()
    );
    // The inclusion proof in the JSON matches the bundle's.
    let proof: Vec<Hash> = reply["proof"]["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let cp = Checkpoint::open(
        reply["proof"]["checkpoint"].as_str().unwrap().as_bytes(),
        &server.log_key,
        &[],
    )
    .unwrap();
    verify_inclusion(
        &leaf_hash(&receipt_bytes),
        LeafIndex(reply["index"].as_u64().unwrap()),
        cp.checkpoint().size,
        &proof,
        &cp.checkpoint().root,
    )
    .unwrap();
    Receipt::decode(&receipt_bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_deny_escalate_with_verifiable_bundles() {
    let s = TestServer::start().await;
    let allow = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 10}}))
        .await;
    assert_eq!(
        allow.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&allow.body)
    );
    let a = allow.json();
    assert_eq!(a["decision"], "allow");
    assert_eq!(a["kind"], "check");
    assert_eq!(a["integrated"], true);
    verify_decision(&s, &a, Decision::Allow);

    let deny = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "external", "vendor": "evil-corp", "authorization_token": "t0k"}}))
        .await;
    assert_eq!(deny.status, StatusCode::OK);
    let d = deny.json();
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["violated_rule_ids"], json!(["external-approved-vendor"]));
    assert_eq!(d["violated_rules"], json!([1]));
    verify_decision(&s, &d, Decision::Deny);

    let esc = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "external", "vendor": "acme"}}))
        .await;
    let e = esc.json();
    assert_eq!(e["decision"], "escalate");
    assert_eq!(
        e["undetermined_variables"],
        json!(["authorization_token", "record_count"])
    );
    verify_decision(&s, &e, Decision::Escalate);

    // Indices are distinct and the tree holds all three.
    let mut idx: Vec<u64> = [&a, &d, &e]
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len(), 3);
    assert!(s.tree_size() >= 3);

    // The policy is addressable by commitment too.
    let by_commitment = s
        .check(json!({"policy": a["policy"]["commitment"], "action": {"destination": "internal"}}))
        .await;
    assert_eq!(by_commitment.status, StatusCode::OK);
    assert_eq!(
        by_commitment.json()["policy"]["name"],
        "customer-data-egress"
    );

    // Metrics count them.
    let m = s.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(text.contains("verdict_decisions_total{policy=\"customer-data-egress\",decision=\"deny\",kind=\"check\"} 1"), "{text}");
    assert!(text.contains("verdict_check_seconds_count 4"), "{text}");
    assert!(text.contains(&format!("verdict_tree_size {}", s.tree_size())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_then_approve_and_request_id_rules() {
    let s = TestServer::start().await;
    let action = json!({"destination": "internal", "record_count": 5000});
    let first = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "req-1"}))
        .await
        .json();
    assert_eq!(first["decision"], "escalate");
    assert_eq!(first["violated_rule_ids"], json!(["bulk-needs-approval"]));
    let size_after_first = s.log_size();

    // Replay without approvals: the same logged decision, nothing new logged.
    let replay = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "req-1"}))
        .await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.json()["index"], first["index"]);
    assert_eq!(s.log_size(), size_after_first);

    // Same id, different action: 409, nothing logged.
    let conflict = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 6000}, "request_id": "req-1"}))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["error"], "request_id_conflict");
    assert_eq!(s.log_size(), size_after_first);

    // Resubmit with alice's approval over the action commitment and request id.
    let commitment =
        Hash::from_slice(&hex::decode(first["action_commitment"].as_str().unwrap()).unwrap())
            .unwrap();
    let approval = verdict_checker::approval::Approval::sign(&s.approver, &commitment, "req-1");
    let approved = s
        .check(
            json!({"policy": "customer-data-egress", "action": action, "request_id": "req-1",
                      "salt": first["salt"], "approvals": [approval]}),
        )
        .await;
    assert_eq!(
        approved.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&approved.body)
    );
    let ap = approved.json();
    assert_eq!(ap["decision"], "allow");
    assert_eq!(ap["action_commitment"], first["action_commitment"]);
    assert_ne!(ap["index"], first["index"]);
    let receipt = verify_decision(&s, &ap, Decision::Allow);
    assert_eq!(
        receipt.statement.approvers,
        vec![s.approver.verifier().key_id()]
    );
}

/// `verdict_decisions_total` is rebuilt from the log at start: a restart keeps the counts, and
/// new decisions add to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_counters_survive_a_restart() {
    let s = TestServer::start().await;
    let deny = json!({"policy": "customer-data-egress", "action": {"destination": "external", "vendor": "evil-corp", "authorization_token": "t0k"}});
    for _ in 0..2 {
        assert_eq!(s.check(deny.clone()).await.json()["decision"], "deny");
    }
    let allow = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 10}}))
        .await
        .json();
    assert_eq!(allow["decision"], "allow");
    let deny_line =
        "verdict_decisions_total{policy=\"customer-data-egress\",decision=\"deny\",kind=\"check\"}";
    let allow_line = "verdict_decisions_total{policy=\"customer-data-egress\",decision=\"allow\",kind=\"check\"}";
    let before = metrics_text(&s).await;
    assert!(before.contains(&format!("{deny_line} 2")), "{before}");

    let s = s.restart().await;
    let after = metrics_text(&s).await;
    assert!(after.contains(&format!("{deny_line} 2")), "{after}");
    assert!(after.contains(&format!("{allow_line} 1")), "{after}");
    assert_eq!(s.check(deny).await.json()["decision"], "deny");
    let later = metrics_text(&s).await;
    assert!(later.contains(&format!("{deny_line} 3")), "{later}");
}

async fn metrics_text(s: &TestServer) -> String {
    String::from_utf8(s.get("/metrics").await.body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_survive_a_restart() {
    let s = TestServer::start().await;
    let action = json!({"destination": "internal", "record_count": 5000});
    let other = json!({"destination": "internal", "record_count": 7});
    let first = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "retry-1"}))
        .await
        .json();
    assert_eq!(first["decision"], "escalate");
    // A second id whose latest decision is a resubmission with approvals (a later index).
    let plain = s
        .check(json!({"policy": "customer-data-egress", "action": other, "request_id": "retry-2"}))
        .await
        .json();
    let s = s.restart().await;
    let size = s.log_size();

    // A client retrying after the restart gets its logged entry back: same index, same salt,
    // nothing new in the log.
    let replay = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "retry-1"}))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&replay.body)
    );
    let replay = replay.json();
    assert_eq!(replay["index"], first["index"]);
    assert_eq!(replay["salt"], first["salt"]);
    assert_eq!(replay["receipt"], first["receipt"]);
    let plain_again = s
        .check(json!({"policy": "customer-data-egress", "action": other, "request_id": "retry-2"}))
        .await
        .json();
    assert_eq!(plain_again["index"], plain["index"]);
    assert_eq!(s.log_size(), size);

    // The same id with another action is still a conflict, and nothing is logged.
    let conflict = s
        .check(json!({"policy": "customer-data-egress", "action": other, "request_id": "retry-1"}))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["error"], "request_id_conflict");
    assert_eq!(s.log_size(), size);

    // A new id is decided and logged as usual.
    let fresh = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "retry-3"}))
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(s.log_size(), size + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_returns_after_sequencing() {
    let s = TestServer::start().await;
    let r = s
        .post_json(
            "/v1/check?wait=false",
            Some(&s.agent_token.clone()),
            &json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let body = r.json();
    assert_eq!(body["integrated"], false);
    assert!(body.get("proof").is_none());
    let index = body["index"].as_u64().unwrap();
    s.state.log.wait_integrated(LeafIndex(index)).await.unwrap();
    let bundle = s.get(&format!("/v1/bundle/{index}")).await;
    assert_eq!(bundle.status, StatusCode::OK);
    assert_eq!(bundle.header("content-type"), "text/plain; charset=utf-8");
    let verified = ProofBundle::parse(&bundle.body)
        .unwrap()
        .verify(&s.log_key)
        .unwrap();
    assert_eq!(verified.index().0, index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_tiles_and_proofs_are_served_per_c2sp() {
    let s = TestServer::start().await;
    let mut receipts = Vec::new();
    for n in 0..5 {
        let r = s
            .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": n}}))
            .await
            .json();
        receipts.push((
            r["index"].as_u64().unwrap(),
            B64.decode(r["receipt"].as_str().unwrap()).unwrap(),
        ));
    }
    let cp_reply = s.get("/checkpoint").await;
    assert_eq!(cp_reply.status, StatusCode::OK);
    assert_eq!(cp_reply.header("content-type"), "text/plain; charset=utf-8");
    let cache = cp_reply.header("cache-control");
    let max_age: u64 = cache.rsplit("max-age=").next().unwrap().parse().unwrap();
    assert!(max_age <= 5, "{cache}");
    let cp = Checkpoint::open(&cp_reply.body, &s.log_key, &[]).unwrap();
    let size = cp.checkpoint().size.0;
    assert!(size >= 5);
    assert_eq!(cp.checkpoint().origin, s.log_key.name());

    // Level-0 hash tile and the entry bundle (partial while size < 256).
    let width = u16::try_from(size).unwrap();
    let hashes = Tile {
        kind: verdict_core::tile::TileKind::Hashes { level: 0 },
        index: 0,
        width,
    };
    let t = s.get(&format!("/{}", hashes.path())).await;
    assert_eq!(t.status, StatusCode::OK, "{}", hashes.path());
    assert_eq!(t.header("content-type"), "application/octet-stream");
    assert_eq!(
        t.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(t.body.len(), usize::from(width) * 32);
    let entries = Tile {
        kind: verdict_core::tile::TileKind::Entries,
        index: 0,
        width,
    };
    let e = s.get(&format!("/{}", entries.path())).await;
    assert_eq!(e.status, StatusCode::OK);
    assert_eq!(e.header("content-type"), "application/octet-stream");
    assert_eq!(
        e.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let bundle = decode_entry_bundle(&e.body).unwrap();
    assert_eq!(bundle.len(), usize::from(width));
    for (index, receipt) in &receipts {
        assert_eq!(&bundle[usize::try_from(*index).unwrap()], receipt);
        // The leaf hashes in the level-0 tile are the receipts' leaf hashes.
        let off = usize::try_from(*index).unwrap() * 32;
        assert_eq!(&t.body[off..off + 32], leaf_hash(receipt).0.as_slice());
    }
    // Tiles beyond the tree are 404 in our error shape.
    let beyond = s.get("/tile/0/001").await;
    assert_eq!(beyond.status, StatusCode::NOT_FOUND);
    assert_eq!(beyond.json()["error"], "not_found");
    let wider = s.get(&format!("/tile/entries/000.p/{}", width + 1)).await;
    assert_eq!(wider.status, StatusCode::NOT_FOUND);

    // Inclusion and consistency proofs verify against checkpoint roots.
    let (index, receipt) = &receipts[2];
    let inc = s
        .get(&format!("/v1/proof/inclusion?index={index}&size={size}"))
        .await
        .json();
    let proof: Vec<Hash> = inc["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    verify_inclusion(
        &leaf_hash(receipt),
        LeafIndex(*index),
        TreeSize(size),
        &proof,
        &cp.checkpoint().root,
    )
    .unwrap();
    let old = s.state.log.latest_checkpoint().unwrap();
    let more = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    let new_size = more["proof"]["tree_size"].as_u64().unwrap();
    let new_cp = Checkpoint::open(
        more["proof"]["checkpoint"].as_str().unwrap().as_bytes(),
        &s.log_key,
        &[],
    )
    .unwrap();
    let cons = s
        .get(&format!(
            "/v1/proof/consistency?from={}&to={new_size}",
            old.checkpoint.size.0
        ))
        .await;
    assert_eq!(cons.status, StatusCode::OK);
    let proof: Vec<Hash> = cons.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    verify_consistency(
        old.checkpoint.size,
        TreeSize(new_size),
        &proof,
        &old.checkpoint.root,
        &new_cp.checkpoint().root,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_health_and_openapi() {
    let s = TestServer::start().await;
    let keys = s.get("/v1/keys").await.json();
    assert_eq!(keys["log"]["verifier_key"], s.log_key.to_string());
    assert_eq!(
        keys["checkers"][0]["verifier_key"],
        s.checker_key.to_string()
    );
    assert_eq!(
        keys["checkers"][0]["key_id"],
        s.checker_key.key_id().to_string()
    );
    assert_eq!(keys["origin"], s.log_key.name());
    let health = s.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let api = s.get("/openapi.json").await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(api.json()["openapi"], "3.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_without_a_fresh_checkpoint() {
    // With a 1 s freshness window and the sequencer stopped (no re-signing), health turns 503.
    let s = TestServer::start_with(|c| c.health_max_age_secs = 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let fresh = s.get("/health").await;
    assert_eq!(fresh.status, StatusCode::OK);
    s.state.log.shutdown().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let stale = s.get("/health").await;
    assert_eq!(stale.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stale.json()["error"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_private_store() {
    let s = TestServer::start().await;
    let body = json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 3}});
    let none = s.post_json("/v1/check", None, &body).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.header("www-authenticate"), "Bearer");
    let auditor = s
        .post_json("/v1/check", Some(&s.auditor_token.clone()), &body)
        .await;
    assert_eq!(auditor.status, StatusCode::FORBIDDEN);

    let r = s.check(body.clone()).await.json();
    let index = r["index"].as_u64().unwrap();
    let uri = format!("/v1/private/actions/{index}");
    assert_eq!(s.get(&uri).await.status, StatusCode::UNAUTHORIZED);
    let with = |t: &str| {
        Request::get(&uri)
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        s.send(with(&s.agent_token)).await.status,
        StatusCode::FORBIDDEN
    );
    let private = s.send(with(&s.auditor_token)).await;
    assert_eq!(private.status, StatusCode::OK);
    let record = private.json();
    assert_eq!(record["record"]["action"], body["action"]);
    assert_eq!(record["record"]["request_id"], r["request_id"]);
    // The salt and the raw action reproduce the action commitment in the receipt.
    let salt = Salt::from_hex(record["record"]["salt"].as_str().unwrap()).unwrap();
    let policy = s.state.policies.resolve("customer-data-egress").unwrap();
    let action =
        verdict_checker::action::Action::from_value(&policy.ast().clone(), &body["action"])
            .unwrap();
    assert_eq!(
        commit(CommitmentTag::Action, &salt, &action.canonical()).to_hex(),
        r["action_commitment"]
    );
    assert_eq!(
        r["canonical_action"].as_str().unwrap().as_bytes(),
        action.canonical().as_slice()
    );
    assert_eq!(record["record"]["canonical_action"], r["canonical_action"]);
    // Public endpoints never carry the raw action.
    let bundle = s.get(&format!("/v1/bundle/{index}")).await;
    assert!(!String::from_utf8_lossy(&bundle.body).contains("record_count"));
    let nope = s
        .send(
            Request::get("/v1/private/actions/999999")
                .header("authorization", format!("Bearer {}", s.auditor_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_logs_in_scope_and_not_applicable() {
    let s = TestServer::start().await;
    let token = s.agent_token.clone();
    let before = s.log_size();
    let r = s
        .post_json("/v1/screen", Some(&token), &json!({"policy": "customer-data-egress", "action": {"destination": "external", "colour": "red"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["applicable"], true);
    assert_eq!(j["matched_variables"], json!(["destination"]));
    assert_eq!(j["unknown_keys"], json!(["colour"]));
    // An in-scope screen is logged too (issue 16): a receipt of kind screen, decision in-scope,
    // with a private record that opens its action commitment.
    assert_eq!(j["decision"], "in-scope");
    assert_eq!(j["kind"], "screen");
    let receipt = verify_decision(&s, &j, Decision::InScope);
    assert_eq!(receipt.statement.kind, Kind::Screen);
    assert_eq!(s.log_size(), before + 1);
    let index = j["index"].as_u64().unwrap();
    let private = s
        .send(
            Request::get(format!("/v1/private/actions/{index}"))
                .header("authorization", format!("Bearer {}", s.auditor_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(private.status, StatusCode::OK);
    let record = &private.json()["record"];
    let salt = verdict_core::receipt::Salt::from_hex(record["salt"].as_str().unwrap()).unwrap();
    assert_eq!(
        verdict_core::receipt::commit(
            verdict_core::receipt::CommitmentTag::Action,
            &salt,
            record["canonical_action"].as_str().unwrap().as_bytes()
        ),
        receipt.statement.action_commitment
    );
    let before = s.log_size();

    let na = s
        .post_json(
            "/v1/screen",
            Some(&token),
            &json!({"policy": "customer-data-egress", "action": {"colour": "red"}}),
        )
        .await;
    assert_eq!(na.status, StatusCode::OK);
    let n = na.json();
    assert_eq!(n["decision"], "not-applicable");
    assert_eq!(n["kind"], "screen");
    let receipt = verify_decision(&s, &n, Decision::NotApplicable);
    assert_eq!(receipt.statement.kind, Kind::Screen);
    assert_eq!(s.log_size(), before + 1);

    // The check endpoint treats an out-of-scope action the same way.
    let c = s
        .check(json!({"policy": "customer-data-egress", "action": {"colour": "blue"}}))
        .await
        .json();
    assert_eq!(c["decision"], "not-applicable");
    assert_eq!(c["kind"], "screen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_policy_versions() {
    let s = TestServer::start().await;
    let token = s.admin_token.clone();
    let source = crate::test_policy(&s.approver.verifier())
        .replace("version = \"1.0.0\"", "version = \"2.0.0\"");
    let r = s
        .post_json("/v1/policies", Some(&token), &json!({ "source": source }))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let j = r.json();
    assert_eq!(j["policy"]["version"], "2.0.0");
    assert_eq!(j["policy"]["rules"], 3);
    assert!(j["findings"].is_array());
    // The name now resolves to version 2.
    let c = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await
        .json();
    assert_eq!(c["policy"]["version"], "2.0.0");
    assert_eq!(c["policy"]["commitment"], j["policy"]["commitment"]);
    // The TOML body form works too.
    let toml_req = Request::post("/v1/policies")
        .header("content-type", "application/toml")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(source.replace("2.0.0", "3.0.0")))
        .unwrap();
    let t = s.send(toml_req).await;
    assert_eq!(t.status, StatusCode::CREATED);
    // Listing is public.
    let list = s.get("/v1/policies").await.json();
    assert_eq!(list[0]["version"], "3.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_back_with_503_and_retry_after_and_loses_nothing() {
    // Two entries fill the log (batches close only after 2 s); the third check is refused
    // before it is decided, with Retry-After, and nothing of it is logged.
    let s = std::sync::Arc::new(
        TestServer::start_with(|c| {
            c.max_pending = 2;
            c.batch_max_age_ms = 2_000;
        })
        .await,
    );
    let action = json!({"policy": "customer-data-egress", "action": {"destination": "internal"}});
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (s, action) = (s.clone(), action.clone());
            tokio::spawn(async move { s.check(action).await })
        })
        .collect();
    while s.state.log.pending() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let refused = s.check(action.clone()).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.header("retry-after").parse::<u64>().unwrap() >= 1);
    let metrics = s.get("/metrics").await;
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(text.contains("verdict_pushback_total 1"), "{text}");
    for task in waiting {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        verify_decision(&s, &reply.json(), Decision::Escalate);
    }
    // The policy's registration statement (logged at start) and the two decisions.
    assert_eq!(s.tree_size(), 3);
}

/// Issue 11 acceptance: an agent token cannot register a policy (403), and the decision for the
/// same action is unchanged afterwards, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_token_cannot_change_its_policy() {
    let s = TestServer::start().await;
    let action = json!({"policy": "customer-data-egress", "action": {"destination": "external", "vendor": "evil", "record_count": 5}});
    let before = s.check(action.clone()).await.json();
    assert_eq!(before["decision"], "deny");
    let permissive = r#"
name = "customer-data-egress"
version = "9.0.0"
[variables]
destination = { type = "enum", values = ["internal", "external"] }
[[rules]]
id = "anything-goes"
text = "Every destination is fine."
require = 'destination == "internal" or destination == "external"'
effect = "deny"
"#;
    let size = s.log_size();
    for token in [s.agent_token.clone(), s.auditor_token.clone()] {
        let r = s
            .post_json(
                "/v1/policies",
                Some(&token),
                &json!({ "source": permissive }),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["error"], "forbidden");
    }
    assert_eq!(s.log_size(), size, "a refused registration logs nothing");
    let after = s.check(action.clone()).await.json();
    assert_eq!(after["decision"], "deny");
    assert_eq!(after["policy"], before["policy"]);
    let s = s.restart().await;
    let restarted = s.check(action).await.json();
    assert_eq!(restarted["decision"], "deny");
    assert_eq!(restarted["policy"], before["policy"]);
    // The admin token may register it.
    let r = s
        .post_json(
            "/v1/policies",
            Some(&s.admin_token.clone()),
            &json!({ "source": permissive }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// The decision's private record names the agent whose token asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_record_names_the_agent() {
    let bot = "ef".repeat(32);
    let b = bot.clone();
    let s = TestServer::start_prepared(
        move |data| std::fs::write(data.join("agent-billing-bot.token"), format!("{b}\n")).unwrap(),
        |_| {},
    )
    .await;
    let body = json!({"policy": "customer-data-egress", "action": {"destination": "internal"}});
    for (token, name) in [
        (bot.as_str(), "billing-bot"),
        (s.agent_token.as_str(), "default"),
    ] {
        let r = s.post_json("/v1/check", Some(token), &body).await;
        assert_eq!(r.status, StatusCode::OK);
        let index = r.json()["index"].as_u64().unwrap();
        let private = s
            .send(
                Request::get(format!("/v1/private/actions/{index}"))
                    .header("authorization", format!("Bearer {}", s.auditor_token))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .json();
        assert_eq!(private["record"]["agent"], name);
    }
    // The admin token may not check.
    let r = s
        .post_json("/v1/check", Some(&s.admin_token.clone()), &body)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
