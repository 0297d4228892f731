//! The bad-input suite (issue 6, "Bad input and abuse"): every HTTP endpoint gets malformed,
//! truncated, oversized, deeply nested and non-UTF-8 bodies, wrong content types and methods,
//! negative and huge numbers, unknown policies, replayed request ids, missing, wrong and expired
//! tokens, and path traversal in tile and index paths. The cases are in `bad_input_cases.rs`.
//!
//! Every case must get its documented 4xx with a JSON `{error, message}` body (the `error` code
//! checked), never echo a token, and leave the log unchanged (entries staged, tree size and
//! checkpoint root); after every case the server must still answer `GET /checkpoint`. Cases
//! with expired tokens go to a second server whose token files carry `expires=1000`.
//!
//! The test prints the number of cases per endpoint and the total (`--nocapture`), and fails if
//! an endpoint of the router has fewer than [`MIN_PER_ENDPOINT`] cases or the total drops below
//! [`MIN_TOTAL`].

use axum::http::StatusCode;
use serde_json::json;

use crate::bad_input_cases::{self, Srv, Tokens, REPLAY_ID};
use crate::TestServer;

/// Every route of `routes::router()` and the fallback, as labelled in the cases.
const ENDPOINTS: &[&str] = &[
    "GET /checkpoint",
    "GET /tile/<L>/<N>[.p/<W>]",
    "GET /tile/entries/<N>[.p/<W>]",
    "GET /v1/keys",
    "GET /v1/proof/inclusion",
    "GET /v1/proof/consistency",
    "GET /v1/bundle/<index>",
    "GET /health",
    "GET /metrics",
    "GET /openapi.json",
    "POST /v1/policies",
    "GET /v1/policies",
    "POST /v1/screen",
    "POST /v1/check",
    "GET /v1/private/actions/<index>",
    "(no route)",
];
const MIN_PER_ENDPOINT: usize = 7;
const MIN_TOTAL: usize = 300;

/// What must not change: entries staged, checkpoint size and root.
fn snapshot(s: &TestServer) -> (u64, u64, String) {
    let cp = s.state.log.latest_checkpoint().unwrap();
    (
        s.log_size(),
        cp.checkpoint.size.0,
        cp.checkpoint.root.to_hex(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_4xx_json_and_leaves_the_log_unchanged() {
    let s = TestServer::start().await;
    // One entry so that index 0 exists for the proof cases, and one with a known request id.
    let first = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let replay_body = json!({
        "policy": "customer-data-egress",
        "action": {"destination": "internal"},
        "request_id": REPLAY_ID,
    });
    let logged = s.check(replay_body.clone()).await;
    assert_eq!(logged.status, StatusCode::OK);
    // The same id and action again is an idempotent replay: same index, nothing new logged.
    let before = s.log_size();
    let again = s.check(replay_body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["index"], logged.json()["index"]);
    assert_eq!(s.log_size(), before);

    let (expired_write, expired_auditor) = ("ab".repeat(32), "cd".repeat(32));
    let (ew, ea) = (expired_write.clone(), expired_auditor.clone());
    let e = TestServer::start_prepared(
        move |data| {
            std::fs::write(data.join("write.token"), format!("{ew}\nexpires=1000\n")).unwrap();
            std::fs::write(data.join("auditor.token"), format!("{ea}\nexpires=1000\n")).unwrap();
        },
        |_| {},
    )
    .await;

    let main_before = snapshot(&s);
    let expired_before = snapshot(&e);
    let secrets = [
        s.agent_token.clone(),
        s.admin_token.clone(),
        s.auditor_token.clone(),
        expired_write.clone(),
        expired_auditor.clone(),
    ];
    let cases = bad_input_cases::all(&Tokens {
        write: &s.agent_token,
        admin: &s.admin_token,
        auditor: &s.auditor_token,
        expired_write: &expired_write,
        expired_auditor: &expired_auditor,
    });
    let total = cases.len();
    let mut per_endpoint: Vec<(&str, usize)> = ENDPOINTS.iter().map(|&e| (e, 0)).collect();
    let mut failures = Vec::new();
    for case in cases {
        let server = match case.on {
            Srv::Main => &s,
            Srv::Expired => &e,
        };
        let label = format!("{} / {}", case.endpoint, case.name);
        match per_endpoint.iter_mut().find(|(e, _)| *e == case.endpoint) {
            Some((_, n)) => *n += 1,
            None => panic!("{label}: endpoint not in ENDPOINTS"),
        }
        let r = server.send(case.request).await;
        let shape_ok = r.header("content-type").starts_with("application/json")
            && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|j| {
                j["error"].as_str() == Some(case.code)
                    && j["message"].as_str().is_some_and(|m| !m.is_empty())
            });
        if r.status != case.status || !shape_ok {
            failures.push(format!(
                "{label}: expected {} {}, got {} {}",
                case.status,
                case.code,
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        assert!(!r.status.is_server_error(), "{label}: 5xx");
        let body = String::from_utf8_lossy(&r.body);
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{label}: token echoed");
        }
        // Still serving, and nothing logged.
        assert_eq!(
            server.get("/checkpoint").await.status,
            StatusCode::OK,
            "{label}: stopped serving"
        );
        assert_eq!(server.log_size(), snapshot(server).0);
        let now = snapshot(server);
        let was = if case.on == Srv::Main {
            &main_before
        } else {
            &expired_before
        };
        assert_eq!(&now, was, "{label}: the log changed");
    }

    eprintln!("bad_input: cases per endpoint");
    for (endpoint, n) in &per_endpoint {
        eprintln!("  {endpoint:<34} {n:>4}");
    }
    eprintln!("  {:<34} {total:>4}", "total");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (endpoint, n) in &per_endpoint {
        assert!(
            *n >= MIN_PER_ENDPOINT,
            "{endpoint}: only {n} cases (minimum {MIN_PER_ENDPOINT})"
        );
    }
    assert!(total >= MIN_TOTAL, "{total} cases (minimum {MIN_TOTAL})");
    // Give the sequencers a moment: still nothing new.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(snapshot(&s), main_before);
    assert_eq!(snapshot(&e), expired_before);
}
