//! Bounded work on the server (issue 13): a policy whose analysis cannot finish within
//! `analysis_timeout_ms` is 422 and not registered (unless forced); a decision that cannot
//! finish within `check_timeout_ms` is answered at the deadline, fail-closed, and logged as
//! such (the receipt carries `fail_closed: true`). The fixture is
//! `testdata/policies/generated/chain-1000.toml` (a 1,000-variable ordering chain). The CPU
//! bound after the answer is measured on a real server process in the `tests` crate
//! (`e2e/deadline.rs`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use verdict_core::receipt::{Decision, Receipt};

use crate::TestServer;

const CHECK_MS: u64 = 600;
const ANALYSIS_MS: u64 = 400;

fn chain_source() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/policies/generated/chain-1000.toml");
    std::fs::read_to_string(path).unwrap()
}

async fn register(s: &TestServer, source: &str, query: &str) -> crate::Reply {
    s.post_json(
        &format!("/v1/policies{query}"),
        Some(&s.admin_token.clone()),
        &json!({ "source": source }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_analysis_is_422_and_a_decision_past_its_deadline_is_logged_fail_closed() {
    let s = TestServer::start_with(|c| {
        c.max_body_bytes = 256 * 1024;
        c.check_timeout_ms = CHECK_MS;
        c.analysis_timeout_ms = ANALYSIS_MS;
    })
    .await;
    let source = chain_source();

    // Registration: the analysis cannot finish, so nothing is registered or logged.
    let before = s.log_size();
    let t = Instant::now();
    let refused = register(&s, &source, "").await;
    let took = t.elapsed();
    assert_eq!(refused.status, 422, "{}", refused.json());
    let body = refused.json();
    assert_eq!(body["error"], "policy_has_errors");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("analysis-incomplete") && message.contains(&format!("{ANALYSIS_MS} ms")),
        "{message}"
    );
    assert!(took < Duration::from_secs(5), "analysis bound: {took:?}");
    assert_eq!(s.log_size(), before, "nothing logged");
    let listed = s.get("/v1/policies").await.json();
    assert!(
        !listed.to_string().contains("chain-1000"),
        "not registered: {listed}"
    );
    let unknown = s
        .check(json!({"policy": "chain-1000", "action": {"v0000": 1}}))
        .await;
    assert_eq!(unknown.status, 404);

    // Forced: registered, the statement records the incomplete analysis as an error.
    let forced = register(&s, &source, "?force=true").await;
    assert_eq!(forced.status, 201, "{}", forced.json());
    let f = forced.json();
    assert_eq!(f["policy"]["forced"], true, "{f}");
    assert_eq!(f["policy"]["analysis_errors"], 1, "{f}");

    // A decision that needs the solver on a long chain: answered at the deadline, fail-closed,
    // and logged so (the signed receipt says fail_closed).
    let t = Instant::now();
    let r = s
        .check(json!({"policy": "chain-1000", "action": {"v0000": 1}}))
        .await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.json());
    let d = r.json();
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["fail_closed"], true, "{d}");
    assert_eq!(d["violated_rules"], json!([]));
    // Deadline plus generous slack for a loaded 2-core machine (integration of the entry
    // included: the answer waits for its checkpoint).
    assert!(
        took < Duration::from_millis(CHECK_MS + 3_000),
        "answered after {took:?}"
    );
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(d["receipt"].as_str().unwrap())
        .unwrap();
    let statement = Receipt::decode(&receipt).unwrap().statement;
    assert_eq!(statement.decision, Decision::Deny);
    assert!(statement.fail_closed, "the log records fail_closed");

    // The checker thread is free right after: a settled action decides at once.
    let t = Instant::now();
    let ok = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 1}}))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["fail_closed"], false);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
