//! Escalations (issue 15, spec `approval.md`): escalate → list → signed approvals (2 of 2) →
//! one `allow` with a verifiable bundle and the signatures in its private record; rejection and
//! expiry are logged as `deny`; the same approvals again, also after a restart, give the one
//! allow; a new policy version between escalation and approval changes nothing; bad input is
//! 4xx and changes nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};
use verdict_core::approval::{ApprovalMessage, SignedApproval, Verdict};
use verdict_core::bundle::ProofBundle;
use verdict_core::note::{Signer, Verifier};
use verdict_core::receipt::{published_request_id, Decision, Receipt, Salt};
use verdict_core::Hash;

use crate::{Reply, TestServer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A policy needing two distinct approvers for bulk exports.
fn two_approver_policy(alice: &Verifier, bob: &Verifier, version: &str) -> String {
    format!(
        r#"
name = "bulk-export"
version = "{version}"

[variables]
record_count = {{ type = "int", min = 0, max = 1000000 }}

[[approvers]]
name = "alice"
key = "{alice}"

[[approvers]]
name = "bob"
key = "{bob}"

[[rules]]
id = "bulk-needs-two-approvers"
text = "More than 1000 records need two approvers."
when = 'record_count > 1000'
require = 'approvals >= 2'
effect = "escalate"
"#
    )
}

struct Setup {
    s: TestServer,
    alice: Signer,
    bob: Signer,
}

async fn setup(tweak: impl FnOnce(&mut verdict_log_server::config::Config)) -> Setup {
    let s = TestServer::start_with(tweak).await;
    let alice = Signer::generate("alice").unwrap();
    let bob = Signer::generate("bob").unwrap();
    register(&s, &alice, &bob, "1").await;
    Setup { s, alice, bob }
}

async fn register(s: &TestServer, alice: &Signer, bob: &Signer, version: &str) -> Value {
    let r = s
        .post_json(
            "/v1/policies",
            Some(&s.admin_token.clone()),
            &json!({"source": two_approver_policy(&alice.verifier(), &bob.verifier(), version)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    r.json()
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

async fn get_as(s: &TestServer, uri: &str, token: &str) -> Reply {
    s.send(
        Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Sign `verdict` for the escalation `e` (a status or list item) as spec `approval.md` §2 says.
fn sign(e: &Value, signer: &Signer, verdict: Verdict) -> Value {
    let h = |k: &str| Hash::from_slice(&hex::decode(k).unwrap()).unwrap();
    let message = ApprovalMessage {
        escalation_id: hex::decode(e["id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        action_commitment: h(e["action_commitment"].as_str().unwrap()),
        policy_commitment: h(e["policy"]["commitment"].as_str().unwrap()),
        verdict,
        expires_ms: e["expires_ms"].as_u64().unwrap(),
    };
    let signed = message.sign(signer);
    json!({"key_id": signed.key_id.to_string(), "signature": signed.signature_base64()})
}

async fn escalate(s: &TestServer, request_id: &str, count: u64) -> Value {
    let r = s
        .check(json!({"policy": "bulk-export", "action": {"record_count": count}, "request_id": request_id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let j = r.json();
    assert_eq!(j["decision"], "escalate", "{j}");
    j
}

async fn status(s: &TestServer, id: &str) -> Value {
    let r = get_as(s, &format!("/v1/escalations/{id}"), &s.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json()
}

async fn answer(s: &TestServer, id: &str, what: &str, body: &Value) -> Reply {
    s.post_json(&format!("/v1/escalations/{id}/{what}"), None, body)
        .await
}

/// The final decision's bundle verifies, and the approvals in its private record verify offline
/// with the policy's approver keys; returns the receipt's approver key ids.
async fn verify_final(s: &TestServer, e: &Value, keys: &[Verifier], expected: Decision) -> Value {
    let d = &e["decision"];
    let bundle = ProofBundle::parse(d["proof"]["bundle"].as_str().unwrap().as_bytes()).unwrap();
    let verified = bundle.verify(&s.log_key).unwrap();
    assert_eq!(verified.index().0, e["final_index"].as_u64().unwrap());
    let receipt_bytes = B64.decode(d["receipt"].as_str().unwrap()).unwrap();
    assert_eq!(verified.entry(), receipt_bytes.as_slice());
    let receipt = Receipt::verify(&receipt_bytes, std::slice::from_ref(&s.checker_key)).unwrap();
    let st = receipt.statement();
    assert_eq!(st.decision, expected);
    // The receipt publishes a commitment to the request id, never the id (spec receipt.md §7.1).
    let salt = Salt::from_hex(d["salt"].as_str().unwrap()).unwrap();
    assert_ne!(st.request_id, e["request_id"].as_str().unwrap());
    assert_eq!(
        st.request_id,
        published_request_id(&salt, e["request_id"].as_str().unwrap())
    );
    assert_eq!(st.action_commitment.to_hex(), e["action_commitment"]);
    assert_eq!(st.policy_commitment.to_hex(), e["policy"]["commitment"]);
    // The private record keeps the signatures (auditor).
    let private = get_as(
        s,
        &format!("/v1/private/actions/{}", e["final_index"]),
        &s.auditor_token,
    )
    .await
    .json();
    let ev = &private["record"]["escalation"];
    assert_eq!(ev["id"], e["id"]);
    let mut approvers = Vec::new();
    for a in ev["approvals"].as_array().unwrap() {
        let signed = SignedApproval::from_wire(
            a["key_id"].as_str().unwrap(),
            a["signature"].as_str().unwrap(),
        )
        .unwrap();
        let message = ApprovalMessage {
            escalation_id: hex::decode(ev["id"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
            action_commitment: st.action_commitment,
            policy_commitment: st.policy_commitment,
            verdict: Verdict::from_name(a["verdict"].as_str().unwrap()).unwrap(),
            expires_ms: ev["expires_ms"].as_u64().unwrap(),
        };
        let ok = signed.verify(&message, keys).unwrap();
        if ok.verdict == Verdict::Approve {
            approvers.push(ok.key_id);
        }
    }
    approvers.sort();
    assert_eq!(
        st.approvers, approvers,
        "receipt approvers = verified approvals"
    );
    json!(approvers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_two_approvals_allow_once_also_after_restart() {
    let Setup { s, alice, bob } = setup(|_| {}).await;
    let keys = [alice.verifier(), bob.verifier()];
    let first = escalate(&s, "esc-1", 5000).await;
    let id = first["escalation_id"].as_str().unwrap().to_owned();
    assert_eq!(first["status_url"], format!("/v1/escalations/{id}"));

    // Listed as pending for admin and auditor, with the action and the rules; not for agents.
    for token in [&s.admin_token, &s.auditor_token] {
        let list = get_as(&s, "/v1/escalations?status=pending", token).await;
        assert_eq!(list.status, StatusCode::OK, "{}", text(&list));
        let list = list.json();
        let items = list["escalations"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], id.as_str());
        assert_eq!(items[0]["canonical_action"], r#"{"record_count":5000}"#);
        assert_eq!(items[0]["rules"][0]["id"], "bulk-needs-two-approvers");
        assert_eq!(items[0]["approvals_needed"], 2);
        assert_eq!(items[0]["eligible_approvers"].as_array().unwrap().len(), 2);
    }
    let denied = get_as(&s, "/v1/escalations", &s.agent_token).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // The agent that raised it sees its status, without the action.
    let own = get_as(&s, &format!("/v1/escalations/{id}"), &s.agent_token)
        .await
        .json();
    assert_eq!(own["status"], "pending");
    assert!(own.get("canonical_action").is_none());

    let e = status(&s, &id).await;
    let size = s.log_size();
    // Alice approves: still pending (1 of 2); approving again changes nothing.
    for _ in 0..2 {
        let r = answer(&s, &id, "approvals", &sign(&e, &alice, Verdict::Approve)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
        let j = r.json();
        assert_eq!(j["status"], "pending");
        assert_eq!(j["approvals"].as_array().unwrap().len(), 1);
    }
    assert_eq!(s.log_size(), size, "nothing logged before 2 of 2");

    // The agent long-polls while bob approves.
    let poll = {
        let app = s.app.clone();
        let token = s.agent_token.clone();
        let uri = format!("/v1/escalations/{id}?wait=8s");
        tokio::spawn(async move {
            use http_body_util::BodyExt as _;
            use tower::ServiceExt as _;
            let r = app
                .oneshot(
                    Request::get(uri)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = r.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&body).unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = answer(&s, &id, "approvals", &sign(&e, &bob, Verdict::Approve)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let done = r.json();
    assert_eq!(done["status"], "approved");
    assert_eq!(done["final_decision"], "allow");
    assert_eq!(done["decision"]["decision"], "allow");
    let polled = poll.await.unwrap();
    assert_eq!(polled["status"], "approved");
    assert_eq!(polled["decision"]["decision"], "allow");
    assert_eq!(polled["final_index"], done["final_index"]);
    let approvers = verify_final(&s, &polled, &keys, Decision::Allow).await;
    let mut want = vec![alice.key_id().to_string(), bob.key_id().to_string()];
    want.sort();
    assert_eq!(approvers, json!(want));
    let size = s.log_size();
    assert_eq!(size, done["final_index"].as_u64().unwrap() + 1);

    // Replays: the same approvals, a check with the same request id: the one allow.
    for signer in [&alice, &bob] {
        let again = answer(&s, &id, "approvals", &sign(&e, signer, Verdict::Approve)).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json()["final_index"], done["final_index"]);
    }
    let replay = s
        .check(json!({"policy": "bulk-export", "action": {"record_count": 5000}, "request_id": "esc-1"}))
        .await
        .json();
    assert_eq!(replay["decision"], "allow");
    assert_eq!(replay["index"], done["final_index"]);
    assert_eq!(s.log_size(), size);

    // After a restart too.
    let s = s.restart().await;
    let again = answer(&s, &id, "approvals", &sign(&e, &bob, Verdict::Approve)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", text(&again));
    assert_eq!(again.json()["final_index"], done["final_index"]);
    assert_eq!(s.log_size(), size);
    let after = status(&s, &id).await;
    assert_eq!(after["status"], "approved");
    verify_final(&s, &after, &keys, Decision::Allow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_and_expiry_are_logged_as_deny() {
    let Setup { s, alice, bob } = setup(|c| c.escalation_ttl_s = 2).await;
    let keys = [alice.verifier(), bob.verifier()];

    // Rejection.
    let first = escalate(&s, "rej-1", 2000).await;
    let id = first["escalation_id"].as_str().unwrap();
    let e = status(&s, id).await;
    // An approval signature presented as a rejection does not verify: 403, nothing changes.
    let swapped = answer(&s, id, "rejections", &sign(&e, &alice, Verdict::Approve)).await;
    assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    assert_eq!(swapped.json()["error"], "approval_refused");
    assert_eq!(status(&s, id).await["approvals"], json!([]));
    let r = answer(&s, id, "rejections", &sign(&e, &bob, Verdict::Reject)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let j = r.json();
    assert_eq!(j["status"], "rejected");
    assert_eq!(j["decision"]["decision"], "deny");
    assert_eq!(j["decision"]["fail_closed"], false);
    verify_final(&s, &j, &keys, Decision::Deny).await;
    // Approving after the rejection changes nothing.
    let late = answer(&s, id, "approvals", &sign(&e, &alice, Verdict::Approve)).await;
    assert_eq!(late.json()["final_index"], j["final_index"]);

    // Expiry: the agent's long-poll wakes at the expiry and gets a fail-closed deny.
    let second = escalate(&s, "exp-1", 3000).await;
    let id = second["escalation_id"].as_str().unwrap();
    let e = status(&s, id).await;
    let started = std::time::Instant::now();
    let r = get_as(&s, &format!("/v1/escalations/{id}?wait=8s"), &s.agent_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let j = r.json();
    assert!(started.elapsed() < std::time::Duration::from_secs(7));
    assert_eq!(j["status"], "expired");
    assert_eq!(j["decision"]["decision"], "deny");
    assert_eq!(j["decision"]["fail_closed"], true);
    verify_final(&s, &j, &keys, Decision::Deny).await;
    // Approvals after the expiry are not counted.
    let size = s.log_size();
    let late = answer(&s, id, "approvals", &sign(&e, &alice, Verdict::Approve)).await;
    assert_eq!(late.json()["status"], "expired");
    assert_eq!(s.log_size(), size);
    let listed = get_as(&s, "/v1/escalations?status=expired", &s.admin_token)
        .await
        .json();
    assert_eq!(listed["escalations"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_version_does_not_break_resolution() {
    let Setup { s, alice, bob } = setup(|_| {}).await;
    let first = escalate(&s, "pv-1", 5000).await;
    let id = first["escalation_id"].as_str().unwrap();
    let v1 = first["policy"]["commitment"].clone();
    let e = status(&s, id).await;
    // Version 2 is registered between the escalation and its approval.
    let v2 = register(&s, &alice, &bob, "2").await;
    assert_ne!(v2["policy"]["commitment"], v1);
    // The same request by name: the logged escalation again, not a 409.
    let replay = s
        .check(json!({"policy": "bulk-export", "action": {"record_count": 5000}, "request_id": "pv-1"}))
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", text(&replay));
    assert_eq!(replay.json()["escalation_id"], id);
    for signer in [&alice, &bob] {
        let r = answer(&s, id, "approvals", &sign(&e, signer, Verdict::Approve)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }
    let done = status(&s, id).await;
    assert_eq!(done["decision"]["decision"], "allow");
    assert_eq!(done["decision"]["policy"]["commitment"], v1);
    assert_eq!(done["decision"]["policy"]["version"], "1");
    verify_final(
        &s,
        &done,
        &[alice.verifier(), bob.verifier()],
        Decision::Allow,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_4xx_and_change_nothing() {
    let Setup { s, alice, bob: _ } = setup(|_| {}).await;
    let first = escalate(&s, "bad-1", 5000).await;
    let id = first["escalation_id"].as_str().unwrap();
    let e = status(&s, id).await;
    let size = s.log_size();
    let mallory = Signer::generate("mallory").unwrap();
    let cases: Vec<(&str, Reply, StatusCode)> = vec![
        (
            "unknown id",
            get_as(
                &s,
                &format!("/v1/escalations/{}", "0".repeat(32)),
                &s.admin_token,
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "malformed id",
            get_as(&s, "/v1/escalations/xyz", &s.admin_token).await,
            StatusCode::NOT_FOUND,
        ),
        (
            "no token",
            s.get(&format!("/v1/escalations/{id}")).await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "bad wait",
            get_as(
                &s,
                &format!("/v1/escalations/{id}?wait=90s"),
                &s.admin_token,
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad status filter",
            get_as(&s, "/v1/escalations?status=open", &s.admin_token).await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "unregistered approver",
            answer(&s, id, "approvals", &sign(&e, &mallory, Verdict::Approve)).await,
            StatusCode::FORBIDDEN,
        ),
        (
            "garbage signature",
            answer(
                &s,
                id,
                "approvals",
                &json!({"key_id": alice.key_id().to_string(), "signature": "AAAA"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "extra field",
            answer(
                &s,
                id,
                "approvals",
                &json!({"key_id": "00000000", "signature": "", "verdict": "approve"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown escalation answered",
            answer(
                &s,
                &"0".repeat(32),
                "approvals",
                &sign(&e, &alice, Verdict::Approve),
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (name, reply, want) in cases {
        assert_eq!(reply.status, want, "{name}: {}", text(&reply));
        assert!(reply.json()["error"].is_string(), "{name}");
    }
    assert_eq!(status(&s, id).await["approvals"], json!([]));
    assert_eq!(s.log_size(), size);
}

/// The legacy resubmission (`POST /v1/check` with `approvals`, `decision-semantics.md` §7) is
/// single use too: the same approvals three times log one allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_resubmission_with_the_same_approvals_logs_one_allow() {
    let s = TestServer::start().await;
    let action = json!({"destination": "internal", "record_count": 5000});
    let first = s
        .check(
            json!({"policy": "customer-data-egress", "action": action, "request_id": "legacy-1"}),
        )
        .await
        .json();
    assert_eq!(first["decision"], "escalate");
    assert!(first["escalation_id"].is_string());
    let commitment =
        Hash::from_slice(&hex::decode(first["action_commitment"].as_str().unwrap()).unwrap())
            .unwrap();
    let approval = verdict_checker::approval::Approval::sign(&s.approver, &commitment, "legacy-1");
    let body = json!({"policy": "customer-data-egress", "action": action, "request_id": "legacy-1",
                      "salt": first["salt"], "approvals": [approval]});
    let allow = s.check(body.clone()).await.json();
    assert_eq!(allow["decision"], "allow");
    let size = s.log_size();
    for _ in 0..2 {
        let again = s.check(body.clone()).await.json();
        assert_eq!(again["index"], allow["index"]);
    }
    assert_eq!(s.log_size(), size);
    // The escalation then adopts that allow instead of logging another one.
    let id = first["escalation_id"].as_str().unwrap();
    let e = status(&s, id).await;
    let r = answer(
        &s,
        id,
        "approvals",
        &sign(&e, &s.approver, Verdict::Approve),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json()["final_index"], allow["index"]);
    assert_eq!(s.log_size(), size);
}

/// Issue 15, measured: with `request_id_window = 3`, once the request id had aged out of the
/// window, the same id, salt and approvals logged a fresh `allow`. The approvals stay single use:
/// the resubmission answers the one allow and logs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_stay_single_use_after_the_request_id_left_the_window() {
    let s = TestServer::start_with(|c| c.request_id_window = 3).await;
    let action = json!({"destination": "internal", "record_count": 5000});
    let first = s
        .check(json!({"policy": "customer-data-egress", "action": action, "request_id": "aged-1"}))
        .await
        .json();
    assert_eq!(first["decision"], "escalate");
    let commitment =
        Hash::from_slice(&hex::decode(first["action_commitment"].as_str().unwrap()).unwrap())
            .unwrap();
    let approval = verdict_checker::approval::Approval::sign(&s.approver, &commitment, "aged-1");
    let body = json!({"policy": "customer-data-egress", "action": action, "request_id": "aged-1",
                      "salt": first["salt"], "approvals": [approval]});
    let allow = s.check(body.clone()).await.json();
    assert_eq!(allow["decision"], "allow", "{allow}");
    // Five other requests push "aged-1" out of a window of three.
    for i in 0..5 {
        let r = s
            .check(
                json!({"policy": "customer-data-egress", "request_id": format!("other-{i}"),
                          "action": {"destination": "internal", "record_count": 1}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    }
    let size = s.log_size();
    let again = s.check(body).await;
    let again_json = again.json();
    assert!(
        again_json["decision"] != "allow" || again_json["index"] == allow["index"],
        "a fresh allow from reused approvals: {again_json}"
    );
    assert_eq!(
        s.log_size(),
        size,
        "reused approvals logged an entry: {again_json}"
    );
}

/// An escalated action with a token: the token's value is never stored (issue 13), yet the
/// approved escalation is decided again from the stored action (tokens kept as presence) and
/// logs its `allow`; the value appears in no answer and no private record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_with_a_token_is_approved_without_storing_the_token() {
    let Setup { s, alice, bob } = setup(|_| {}).await;
    let source = two_approver_policy(&alice.verifier(), &bob.verifier(), "1")
        .replace("name = \"bulk-export\"", "name = \"bulk-export-session\"")
        .replace(
            "[variables]\n",
            "[variables]\nsession = { type = \"token\" }\n",
        )
        .replace(
            "when = 'record_count > 1000'",
            "when = 'present(session) and record_count > 1000'",
        );
    let r = s
        .post_json(
            "/v1/policies",
            Some(&s.admin_token.clone()),
            &json!({ "source": source }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let secret = "session-value-4f1c9b7e2d";
    let r = s
        .check(
            json!({"policy": "bulk-export-session", "request_id": "tok-1",
                      "action": {"record_count": 5000, "session": secret}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let first = r.json();
    assert_eq!(first["decision"], "escalate", "{first}");
    let id = first["escalation_id"].as_str().unwrap().to_owned();
    let e = status(&s, &id).await;
    for signer in [&alice, &bob] {
        let r = answer(&s, &id, "approvals", &sign(&e, signer, Verdict::Approve)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
        assert!(!text(&r).contains(secret));
    }
    let done = status(&s, &id).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(done["decision"]["decision"], "allow", "{done}");
    for index in [
        first["index"].as_u64().unwrap(),
        done["final_index"].as_u64().unwrap(),
    ] {
        let private = get_as(
            &s,
            &format!("/v1/private/actions/{index}"),
            &s.auditor_token,
        )
        .await;
        assert_eq!(private.status, StatusCode::OK, "{}", text(&private));
        assert!(!text(&private).contains(secret), "{}", text(&private));
    }
}
