//! Issue 15 acceptance with real processes: `verdict-server`, the approvers' `verdict-approve`
//! and `verdict verify`. The agent's check escalates; the tool lists it; two approvers approve
//! (2 of 2); the agent's long-poll returns `allow` with a bundle `verdict verify` accepts; the
//! approvals in the private record verify offline with the policy's keys. A rejection and an
//! expiry are logged as `deny`; the same approvals again give one allow, also after a restart;
//! a new policy version between escalation and approval changes nothing.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use verdict_core::approval::{ApprovalMessage, SignedApproval, Verdict};
use verdict_core::note::{Signer, Verifier};
use verdict_core::Hash;
use verdict_tests::bins::{binary, Run};
use verdict_tests::server::Server;

/// Name of the escalating policy of [`policy`].
pub(crate) const POLICY: &str = "e2e-bulk-export";

/// An escalating policy with two approvers, alice and bob: more than 1000 records need both
/// (also used by the frontends tests).
pub(crate) fn policy(alice: &Verifier, bob: &Verifier, version: &str) -> String {
    format!(
        r#"
name = "{POLICY}"
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

async fn register(server: &Server, alice: &Signer, bob: &Signer, version: &str) -> Value {
    let r = server
        .http
        .post(format!("{}/v1/policies", server.base))
        .bearer_auth(server.role_token("admin.token").unwrap())
        .json(&json!({"source": policy(&alice.verifier(), &bob.verifier(), version)}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn check(server: &Server, request_id: &str, count: u64) -> Value {
    let r = server
        .http
        .post(format!("{}/v1/check", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": "e2e-bulk-export", "action": {"record_count": count}, "request_id": request_id}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

async fn poll(server: &Server, id: &str, wait: &str) -> Value {
    let r = server
        .http
        .get(format!("{}/v1/escalations/{id}?wait={wait}", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// Run `verdict-approve` against `server` (auditor token for reading).
fn approve_tool(server: &Server, dir: &Path, args: &[&str]) -> Run {
    let token_file = dir.join("approver-desk.token");
    std::fs::write(&token_file, server.role_token("auditor.token").unwrap()).unwrap();
    let out = Command::new(binary("verdict-approve").unwrap())
        .arg("--server")
        .arg(&server.base)
        .args(args)
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn key_file(dir: &Path, signer: &Signer) -> String {
    let path = dir.join(format!("{}.key", signer.name()));
    std::fs::write(&path, format!("{}\n", signer.to_private_key_string())).unwrap();
    path.display().to_string()
}

/// `verdict verify` accepts the final decision's bundle.
fn verify_bundle(server: &Server, dir: &Path, decision: &Value, want: &str) {
    let name = decision["index"].to_string();
    let (_, run) = server.verify_answer(dir, &name, decision, &[]).unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(&format!("check {want}")), "{run:?}");
}

/// The auditor's offline tool, `verdict-approve verify`, on the final decision's saved bundle
/// (written by [`verify_bundle`]) and private record, with the policy text's approver keys; also
/// on a copy of the record whose first signature is altered, which must fail (exit 1).
async fn approve_verify(server: &Server, dir: &Path, decision: &Value, policy_text: &str) -> Run {
    let index = &decision["index"];
    let private: Value = server
        .http
        .get(format!("{}/v1/private/actions/{index}", server.base))
        .bearer_auth(server.role_token("auditor.token").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = dir.join(format!("{index}.record.json"));
    std::fs::write(&record, private.to_string()).unwrap();
    let policy = dir.join(format!("{index}.policy.toml"));
    std::fs::write(&policy, policy_text).unwrap();
    let run = |record: &Path| {
        let out = Command::new(binary("verdict-approve").unwrap())
            .arg("verify")
            .arg("--bundle")
            .arg(dir.join(format!("{index}.proof")))
            .arg("--record")
            .arg(record)
            .arg("--policy")
            .arg(&policy)
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    // Tampered: the first signature's first base64 character changed.
    let mut bad = private.clone();
    let sig = bad["record"]["escalation"]["approvals"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    bad["record"]["escalation"]["approvals"][0]["signature"] =
        json!(format!("{flipped}{}", &sig[1..]));
    let bad_record = dir.join(format!("{index}.record.bad.json"));
    std::fs::write(&bad_record, bad.to_string()).unwrap();
    let tampered = run(&bad_record);
    assert_eq!(tampered.code, Some(1), "tampered signature: {tampered:?}");
    run(&record)
}

/// The approvals in the final decision's private record verify offline with the policy's
/// approver keys; returns the approving key ids.
async fn verify_approvals_offline(server: &Server, decision: &Value, keys: &[Verifier]) -> usize {
    let private: Value = server
        .http
        .get(format!(
            "{}/v1/private/actions/{}",
            server.base, decision["index"]
        ))
        .bearer_auth(server.role_token("auditor.token").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ev = &private["record"]["escalation"];
    let h = |v: &Value| Hash::from_slice(&hex::decode(v.as_str().unwrap()).unwrap()).unwrap();
    let mut approving = 0;
    for a in ev["approvals"].as_array().unwrap() {
        let message = ApprovalMessage {
            escalation_id: hex::decode(ev["id"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
            action_commitment: h(&decision["action_commitment"]),
            policy_commitment: h(&decision["policy"]["commitment"]),
            verdict: Verdict::from_name(a["verdict"].as_str().unwrap()).unwrap(),
            expires_ms: ev["expires_ms"].as_u64().unwrap(),
        };
        let signed = SignedApproval::from_wire(
            a["key_id"].as_str().unwrap(),
            a["signature"].as_str().unwrap(),
        )
        .unwrap();
        let ok = signed.verify(&message, keys).unwrap();
        if ok.verdict == Verdict::Approve {
            approving += 1;
            assert!(decision["approvers"]
                .as_array()
                .unwrap()
                .contains(&json!(ok.key_id.to_string())));
        }
    }
    approving
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_resolved_by_people_with_real_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let mut server = Server::start(&data, None).await.unwrap();
    let alice = Signer::generate("alice").unwrap();
    let bob = Signer::generate("bob").unwrap();
    let keys = [alice.verifier(), bob.verifier()];
    let (alice_key, bob_key) = (key_file(dir, &alice), key_file(dir, &bob));
    register(&server, &alice, &bob, "1").await;

    // Escalate; the tool lists and shows it.
    let first = check(&server, "e2e-1", 5000).await;
    assert_eq!(first["decision"], "escalate", "{first}");
    let id = first["escalation_id"].as_str().unwrap().to_owned();
    let run = approve_tool(&server, dir, &["list"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(&id), "{run:?}");
    let run = approve_tool(&server, dir, &["show", &id]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains(r#"{"record_count":5000}"#), "{run:?}");
    assert!(run.stdout.contains("bulk-needs-two-approvers"), "{run:?}");

    // A new policy version is registered before the approvals.
    register(&server, &alice, &bob, "2").await;

    // 2 of 2, while the agent long-polls.
    let run = approve_tool(&server, dir, &["approve", &id, "--key", &alice_key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("status pending"), "{run:?}");
    let waiter = {
        let http = server.http.clone();
        let url = format!("{}/v1/escalations/{id}?wait=8s", server.base);
        let token = server.token.clone();
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let run = approve_tool(&server, dir, &["approve", &id, "--key", &bob_key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("final decision allow"), "{run:?}");
    let polled = waiter.await.unwrap();
    assert_eq!(polled["status"], "approved", "{polled}");
    let allow = &polled["decision"];
    assert_eq!(allow["decision"], "allow");
    assert_eq!(
        allow["policy"]["version"], "1",
        "decided under the original version"
    );
    verify_bundle(&server, dir, allow, "allow");
    assert_eq!(verify_approvals_offline(&server, allow, &keys).await, 2);
    let run = approve_verify(&server, dir, allow, &policy(&keys[0], &keys[1], "1")).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("approved escalation; approved by [alice, bob]"),
        "{run:?}"
    );
    let size = server.tree_size().await.unwrap();

    // Replay: the same approvals again give the one allow.
    let run = approve_tool(&server, dir, &["approve", &id, "--key", &bob_key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        poll(&server, &id, "0s").await["final_index"],
        allow["index"]
    );

    // Rejection -> deny.
    let second = check(&server, "e2e-2", 2000).await;
    let rid = second["escalation_id"].as_str().unwrap().to_owned();
    let run = approve_tool(&server, dir, &["reject", &rid, "--key", &alice_key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rejected = poll(&server, &rid, "0s").await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["decision"]["decision"], "deny");
    verify_bundle(&server, dir, &rejected["decision"], "deny");
    let run = approve_verify(
        &server,
        dir,
        &rejected["decision"],
        &policy(&keys[0], &keys[1], "1"),
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("rejected by [alice]"), "{run:?}");
    // An unregistered key is refused with exit 1.
    let mallory = Signer::generate("mallory").unwrap();
    let third = check(&server, "e2e-3", 3000).await;
    let xid = third["escalation_id"].as_str().unwrap().to_owned();
    let run = approve_tool(
        &server,
        dir,
        &["approve", &xid, "--key", &key_file(dir, &mallory)],
    );
    assert_eq!(run.code, Some(1), "{run:?}");

    // Restart with a short escalation lifetime: the replay still finds the one allow; a new
    // escalation expires and is logged as a fail-closed deny.
    let size_before = server.tree_size().await.unwrap();
    assert!(size_before > size);
    server.stop().unwrap();
    let server = Server::start_with_env(&data, None, &[("VERDICT_ESCALATION_TTL_S", "2")])
        .await
        .unwrap();
    assert_eq!(server.tree_size().await.unwrap(), size_before);
    let run = approve_tool(&server, dir, &["approve", &id, "--key", &alice_key]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(server.tree_size().await.unwrap(), size_before);
    assert_eq!(
        poll(&server, &id, "0s").await["final_index"],
        allow["index"]
    );
    let fourth = check(&server, "e2e-4", 4000).await;
    let eid = fourth["escalation_id"].as_str().unwrap().to_owned();
    let expired = poll(&server, &eid, "8s").await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(expired["decision"]["decision"], "deny");
    assert_eq!(expired["decision"]["fail_closed"], true);
    verify_bundle(&server, dir, &expired["decision"], "deny");
}
