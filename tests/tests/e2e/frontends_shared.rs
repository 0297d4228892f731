//! What several frontends on one PostgreSQL share beyond the log (issue 18; spec
//! `spec/storage-postgres.md` §5.4), with two real `verdict-server` processes on loopback and a
//! throwaway cluster of the machine's PostgreSQL binaries:
//!
//! - [`a_request_id_is_logged_once_across_frontends`]: the same request id sent to frontend A
//!   and then B is logged once, and B answers with A's entry (same index, same salt); sent to
//!   both at the same instant (many rounds) it is logged once a round, every success carries the
//!   one entry and the other answer is that entry or 409 (in flight), as a single server answers;
//!   the same id with another action is 409 on either frontend.
//! - [`an_escalation_is_finished_once_across_frontends`]: escalations that expire while both
//!   frontends read them at the same instant get exactly one final entry each (the claim on
//!   logging the final decision is in the shared record), and both frontends show it.
//! - [`an_approved_escalation_is_finished_once_across_frontends`]: two approvers answer one
//!   escalation at the same instant, one on each frontend, while both read it: one final
//!   `allow` per escalation.
//! - [`registrations_on_both_frontends_form_one_chain`]: policies registered on both frontends
//!   at the same instant: every accepted registration listed on both, one version chain per
//!   name, both deciding under the newest version.
//!
//! Entries are counted with sentinel checks: a sentinel's index is the number of entries
//! before it, so `last - first - 1` is the number logged in between.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use verdict_core::approval::{ApprovalMessage, Verdict};
use verdict_core::note::Signer;
use verdict_core::Hash;
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_tests::server::{copy_dir, Server};

/// Two frontends on one database (same keys and tokens, by copy).
struct Two {
    _tmp: tempfile::TempDir,
    _cluster: PgCluster,
    servers: [Server; 2],
}

impl Two {
    async fn start(db: &str, extra: &[(&str, &str)]) -> Two {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
        let url = cluster.create_database(db).unwrap();
        let mut env = vec![
            ("VERDICT_STORAGE", "postgres"),
            ("VERDICT_POSTGRES_URL", url.as_str()),
            ("VERDICT_POSTGRES_POLL_MS", "100"),
            ("VERDICT_BATCH_MAX_AGE_MS", "5"),
        ];
        env.extend_from_slice(extra);
        let tmp = tempfile::tempdir().unwrap();
        let dirs: [PathBuf; 2] = [tmp.path().join("a"), tmp.path().join("b")];
        let a = Server::start_with_env(&dirs[0], None, &env).await.unwrap();
        copy_dir(&dirs[0], &dirs[1]).unwrap();
        let b = Server::start_with_env(&dirs[1], None, &env).await.unwrap();
        Two {
            _tmp: tmp,
            _cluster: cluster,
            servers: [a, b],
        }
    }
}

/// `POST /v1/check?wait=true`: status and body.
async fn check(server: &Server, policy: &str, action: Value, request_id: &str) -> (u16, Value) {
    let r = server
        .http
        .post(format!("{}/v1/check?wait=true", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": policy, "action": action, "request_id": request_id}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// A sentinel entry's index (the number of entries before it).
async fn sentinel(server: &Server, policy: &str, action: Value) -> u64 {
    let id = format!("sentinel-{}", verdict_log_server::keys::random_hex32());
    let (status, body) = check(server, policy, action, &id[..40]).await;
    assert_eq!(status, 200, "{body}");
    body["index"].as_u64().unwrap()
}

const VENDORS: &str = "approved-vendors";

fn vendor_action(n: u64) -> Value {
    json!({"call_type": "third_party_api", "vendor": "acme", "sends_personal_data": false,
        "payload_bytes": n})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_is_logged_once_across_frontends() {
    let two = Two::start("verdict_shared_request_ids", &[]).await;
    let [a, b] = &two.servers;
    let first = sentinel(a, VENDORS, vendor_action(0)).await;

    // A, then B: B answers with A's entry.
    let (status, on_a) = check(a, VENDORS, vendor_action(1), "retry-on-b").await;
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = check(b, VENDORS, vendor_action(1), "retry-on-b").await;
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(on_b["index"], on_a["index"], "B logged the retry again");
    assert_eq!(on_b["salt"], on_a["salt"]);
    assert_eq!(on_b["receipt"], on_a["receipt"]);
    // The same id with another action is 409 on either frontend, nothing logged.
    for server in [a, b] {
        let (status, body) = check(server, VENDORS, vendor_action(2), "retry-on-b").await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"], "request_id_conflict");
    }

    // Both at the same instant: one entry a round.
    let rounds = 12u64;
    for round in 0..rounds {
        let id = format!("both-{round}");
        let action = vendor_action(100 + round);
        let (ra, rb) = tokio::join!(
            check(a, VENDORS, action.clone(), &id),
            check(b, VENDORS, action.clone(), &id)
        );
        let answers = [ra, rb];
        let ok: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v)
            .collect();
        assert!(!ok.is_empty(), "round {round}: no success: {answers:?}");
        for (status, body) in &answers {
            assert!(
                *status == 200 || *status == 409 && body["error"] == "request_id_conflict",
                "round {round}: {status} {body}"
            );
        }
        for answer in &ok {
            assert_eq!(
                answer["index"], ok[0]["index"],
                "round {round}: {answers:?}"
            );
            assert_eq!(answer["salt"], ok[0]["salt"], "round {round}");
        }
        // The retry of a 409 (in flight) now gets the entry, on either frontend.
        for server in [a, b] {
            let (status, again) = check(server, VENDORS, action.clone(), &id).await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["index"], ok[0]["index"], "round {round}");
        }
    }

    let last = sentinel(b, VENDORS, vendor_action(0)).await;
    assert_eq!(
        last - first - 1,
        1 + rounds,
        "each request id logged exactly once across both frontends"
    );
    println!(
        "request ids across frontends: 1 retried on the other frontend, {rounds} sent to both at once: {} entries",
        last - first - 1
    );
}

/// Approvers alice and bob, the escalating policy registered on `a` and known to `b`, and the
/// index of a sentinel entry logged on `a` after it (entries after it are the test's).
async fn escalating(a: &Server, b: &Server) -> (Signer, Signer, &'static str, u64) {
    let (alice, bob) = (
        Signer::generate("alice").unwrap(),
        Signer::generate("bob").unwrap(),
    );
    let source = super::escalations::policy(&alice.verifier(), &bob.verifier(), "1");
    let r = a
        .http
        .post(format!("{}/v1/policies", a.base))
        .bearer_auth(a.role_token("admin.token").unwrap())
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let policy = super::escalations::POLICY;
    wait_known(b, policy).await;
    let first = sentinel(a, policy, json!({"record_count": 2})).await;
    (alice, bob, policy, first)
}

/// Wait until `server` decides under `policy` (the other frontend's refresh).
async fn wait_known(server: &Server, policy: &str) {
    let since = Instant::now();
    while check(server, policy, json!({"record_count": 1}), "probe")
        .await
        .0
        != 200
    {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the frontend never learnt the policy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_escalation(server: &Server, id: &str, wait: &str) -> Value {
    let r = server
        .http
        .get(format!("{}/v1/escalations/{id}?wait={wait}", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "GET escalation {id}: {status} {text}; server log:\n{}",
        tail(&server.output())
    );
    serde_json::from_str(&text).unwrap()
}

/// The last lines of a server's log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_escalation_is_finished_once_across_frontends() {
    let two = Two::start(
        "verdict_shared_escalations",
        &[("VERDICT_ESCALATION_TTL_S", "1")],
    )
    .await;
    let [a, b] = &two.servers;
    let (_alice, _bob, policy, first) = escalating(a, b).await;

    let count = 8u64;
    let mut ids = Vec::new();
    for n in 0..count {
        let (status, body) = check(
            a,
            policy,
            json!({"record_count": 5000 + n}),
            &format!("esc-{n}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["decision"], "escalate", "{body}");
        ids.push(body["escalation_id"].as_str().unwrap().to_owned());
    }
    // Expired: both frontends read every escalation at the same instant, twice each.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut reads = Vec::new();
    for id in &ids {
        for server in [a, b, a, b] {
            let (http, token) = (server.http.clone(), server.token.clone());
            let url = format!("{}/v1/escalations/{id}?wait=0s", server.base);
            reads.push(tokio::spawn(async move {
                let r = http.get(url).bearer_auth(token).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.json::<Value>().await.unwrap()
            }));
        }
    }
    for read in reads {
        let read = read.await.unwrap();
        assert_eq!(read["status"], "expired", "{read}");
    }
    for id in &ids {
        let (on_a, on_b) = (
            get_escalation(a, id, "5s").await,
            get_escalation(b, id, "5s").await,
        );
        assert!(on_a["final_index"].is_u64(), "{on_a}");
        assert_eq!(on_a["final_index"], on_b["final_index"]);
        assert_eq!(on_a["decision"]["decision"], "deny");
        assert!(
            on_a.get("finishing").is_none(),
            "the claim is never shown: {on_a}"
        );
    }
    let last = sentinel(b, policy, json!({"record_count": 3})).await;
    assert_eq!(
        last - first - 1,
        2 * count,
        "one escalate and exactly one final entry per escalation"
    );
    println!(
        "escalations across frontends: {count} expired under concurrent reads on both: {} final entries",
        last - first - 1 - count
    );
}

/// `POST /v1/escalations/{id}/approvals` signed by `signer`: the answer.
async fn approve(server: &Server, signer: &Signer, escalation: &Value, check: &Value) -> Value {
    let hash = |v: &Value| Hash::from_slice(&hex::decode(v.as_str().unwrap()).unwrap()).unwrap();
    let message = ApprovalMessage {
        escalation_id: hex::decode(escalation["id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
        action_commitment: hash(&check["action_commitment"]),
        policy_commitment: hash(&check["policy"]["commitment"]),
        verdict: Verdict::Approve,
        expires_ms: escalation["expires_ms"].as_u64().unwrap(),
    };
    let signed = message.sign(signer);
    let r = server
        .http
        .post(format!(
            "{}/v1/escalations/{}/approvals",
            server.base,
            escalation["id"].as_str().unwrap()
        ))
        .json(&json!({"key_id": signed.key_id.to_string(), "signature": signed.signature_base64()}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// Read escalation `id` on `server` without waiting, again and again, until it shows its final
/// decision (at most 10 s): a reader that finds it resolved but not yet logged finishes it.
async fn read_until_final(server: &Server, id: &str) -> Value {
    let since = Instant::now();
    loop {
        let read = get_escalation(server, id, "0s").await;
        if read["final_index"].is_u64() || since.elapsed() > Duration::from_secs(10) {
            return read;
        }
    }
}

/// Two approvers answer the same escalation at the same instant, one on each frontend, while
/// both frontends read it again and again: the second approval resolves it, and exactly one
/// final `allow` is logged, shown by both. (Before the claim was shared, the frontend that had
/// not resolved it read it resolved but unlogged and logged a second final entry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_escalation_is_finished_once_across_frontends() {
    let two = Two::start("verdict_shared_approvals", &[]).await;
    let [a, b] = &two.servers;
    let (alice, bob, policy, first) = escalating(a, b).await;
    let count = 6u64;
    for n in 0..count {
        let (status, check) = check(
            b,
            policy,
            json!({"record_count": 7000 + n}),
            &format!("approved-{n}"),
        )
        .await;
        assert_eq!(status, 200, "{check}");
        let id = check["escalation_id"].as_str().unwrap();
        let escalation = get_escalation(a, id, "0s").await;
        let (by_alice, by_bob, read_a, read_b) = tokio::join!(
            approve(a, &alice, &escalation, &check),
            approve(b, &bob, &escalation, &check),
            read_until_final(a, id),
            read_until_final(b, id),
        );
        for answer in [&by_alice, &by_bob, &read_a, &read_b] {
            assert!(
                answer["status"] == "pending" || answer["status"] == "approved",
                "{answer}"
            );
        }
        let (on_a, on_b) = (
            get_escalation(a, id, "5s").await,
            get_escalation(b, id, "5s").await,
        );
        assert_eq!(on_a["status"], "approved", "{on_a}");
        assert_eq!(on_a["decision"]["decision"], "allow", "{on_a}");
        assert_eq!(on_a["final_index"], on_b["final_index"]);
    }
    let last = sentinel(a, policy, json!({"record_count": 3})).await;
    assert_eq!(
        last - first - 1,
        2 * count,
        "one escalate and exactly one final entry per escalation"
    );
    println!(
        "approvals across frontends: {count} escalations approved on both at once: {} final entries",
        last - first - 1 - count
    );
}

fn versioned_policy(name: &str, version: &str, limit: u64) -> String {
    format!(
        r#"name = "{name}"
version = "{version}"
[variables]
amount = {{ type = "int", min = 0, max = 1000 }}
[[rules]]
id = "small"
text = "Amounts up to {limit} only."
require = 'amount <= {limit}'
effect = "deny"
"#
    )
}

/// `POST /v1/policies` with the admin token: the status.
async fn register(server: &Server, text: String) -> (u16, String) {
    let r = server
        .http
        .post(format!("{}/v1/policies", server.base))
        .bearer_auth(server.role_token("admin.token").unwrap())
        .header("content-type", "application/toml")
        .body(text)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The versions of `name` a frontend lists (none while it does not know the name yet).
async fn versions(server: &Server, name: &str) -> Vec<Value> {
    let r = server
        .http
        .get(format!("{}/v1/policies/{name}/versions", server.base))
        .bearer_auth(server.role_token("admin.token").unwrap())
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return Vec::new();
    }
    assert!(r.status().is_success(), "{}", r.status());
    let body: Value = r.json().await.unwrap();
    body["versions"].as_array().unwrap().clone()
}

/// Registrations on both frontends at the same instant, many rounds: each frontend its own name,
/// and both one shared name with interleaved versions. Afterwards both frontends list the same
/// versions of every name, every accepted registration among them; the shared name's versions
/// form one chain (each statement's predecessor is the version before it, versions increase in
/// log order); and both decide under the newest version. Registrations are serialised across
/// the frontends (the registration lock), so the version rules see every registration: before,
/// two frontends registering one name at once both took the same predecessor (a fork of the
/// version chain), and one's `pending` record could be settled away by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_on_both_frontends_form_one_chain() {
    let two = Two::start("verdict_shared_registrations", &[]).await;
    let [a, b] = &two.servers;
    let rounds = 8u64;
    let mut accepted: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let (va, vb) = (
            format!("1.0.{}", 2 * round + 1),
            format!("1.0.{}", 2 * round + 2),
        );
        let own = format!("{}.0.0", round + 1);
        let (ra, rb, oa, ob) = tokio::join!(
            register(a, versioned_policy("race", &va, 2 * round + 1)),
            register(b, versioned_policy("race", &vb, 2 * round + 2)),
            register(a, versioned_policy("only-a", &own, round)),
            register(b, versioned_policy("only-b", &own, round)),
        );
        for (name, version, (status, body)) in [
            ("race", &va, ra),
            ("race", &vb, rb),
            ("only-a", &own, oa),
            ("only-b", &own, ob),
        ] {
            match status {
                201 => accepted.push((name.to_owned(), version.clone())),
                // Another frontend's newer version got in first: the version rules hold across
                // frontends.
                409 if name == "race" => assert!(body.contains("policy_conflict"), "{body}"),
                _ => panic!("round {round}: {name} {version}: {status} {body}"),
            }
        }
    }
    let race_accepted = accepted.iter().filter(|(n, _)| n == "race").count();
    assert!(
        race_accepted >= usize::try_from(rounds).unwrap(),
        "{accepted:?}"
    );

    for name in ["race", "only-a", "only-b"] {
        // Both frontends list the same versions (the other one's within its refresh).
        let since = Instant::now();
        let listed = loop {
            let (on_a, on_b) = (versions(a, name).await, versions(b, name).await);
            if on_a == on_b {
                break on_a;
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "{name}: the frontends list different versions: {on_a:?} {on_b:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for (n, version) in &accepted {
            if n == name {
                assert!(
                    listed.iter().any(|v| v["version"] == version.as_str()),
                    "{name} {version} accepted but not listed"
                );
            }
        }
        let mut previous: Option<&Value> = None;
        for v in &listed {
            match previous {
                None => assert!(v["predecessor"].is_null(), "{name}: {v}"),
                Some(p) => {
                    assert_eq!(
                        v["predecessor"], p["commitment"],
                        "{name}: the version chain forks at {}",
                        v["version"]
                    );
                    assert!(v["index"].as_u64() > p["index"].as_u64());
                }
            }
            previous = Some(v);
        }
        // Both decide under the newest version.
        let newest = &listed.last().unwrap()["version"];
        for server in [a, b] {
            let since = Instant::now();
            loop {
                let answer = server
                    .check(name, json!({"amount": 0}), true)
                    .await
                    .unwrap();
                if answer["policy"]["version"] == *newest {
                    break;
                }
                assert!(
                    since.elapsed() < Duration::from_secs(10),
                    "{name}: not decided under {newest}: {answer}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    println!(
        "registrations across frontends: {rounds} rounds of 4 at once, {} accepted, one chain per name",
        accepted.len()
    );
}
