//! Token files with an `expires=` line (see `verdict_log_server::keys`): a token is accepted
//! until its expiry and answered 401 `token_expired` from then on, checked on every request; the
//! answer never echoes the token, and nothing is logged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::{Reply, TestServer};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_expired(r: &Reply, token: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
    let j = r.json();
    assert_eq!(j["error"], "token_expired", "{what}: {j}");
    assert!(
        j["message"].as_str().unwrap().contains("expired"),
        "{what}: {j}"
    );
    assert!(
        r.header("www-authenticate").contains("invalid_token"),
        "{what}"
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains(token),
        "{what}: token echoed"
    );
}

fn private(token: &str) -> Request<Body> {
    Request::get("/v1/private/actions/0")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_at_their_expiry() {
    let write = "ab".repeat(32);
    let auditor = "cd".repeat(32);
    // The write token expires 3 s after the files are written (RFC 3339 form); the auditor
    // token expired long ago (Unix seconds form).
    let expiry = now_secs() + 3;
    let expiry_rfc3339 = jiff::Timestamp::from_second(i64::try_from(expiry).unwrap())
        .unwrap()
        .to_string();
    let (w, a, e) = (write.clone(), auditor.clone(), expiry_rfc3339.clone());
    let s = TestServer::start_prepared(
        move |data| {
            std::fs::write(
                data.join("write.token"),
                format!("{w}\n# rotated by the test\nexpires={e}\n"),
            )
            .unwrap();
            std::fs::write(data.join("auditor.token"), format!("{a}\nexpires=1000\n")).unwrap();
        },
        |_| {},
    )
    .await;
    assert_eq!(s.agent_token, write);
    assert_eq!(
        s.state.tokens.role(&write),
        Some(verdict_log_server::auth::Role::Agent)
    );
    let before = s.log_size();

    // The auditor token is expired: on its own endpoint and on a write endpoint alike.
    assert_expired(&s.send(private(&auditor)).await, &auditor, "private");
    let r = s
        .post_json(
            "/v1/check",
            Some(&auditor),
            &json!({"policy": "customer-data-egress", "action": {"destination": "internal"}}),
        )
        .await;
    assert_expired(&r, &auditor, "auditor token on check");
    // An unknown token is still plain 401 unauthorized.
    let r = s.send(private(&"ef".repeat(32))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "unauthorized");

    // The write token works until its expiry (when the machine was fast enough to get here
    // before it; a loaded machine skips this half rather than fail).
    let body = json!({"policy": "customer-data-egress", "action": {"destination": "internal"}});
    let mut accepted = 0;
    if now_secs() + 1 < expiry {
        let r = s.check(body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        accepted = 1;
    } else {
        eprintln!("token_expiry: server start took too long to test the valid half");
    }
    // After the expiry, the same token on the same server is refused: checked per request.
    while now_secs() <= expiry {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logged = s.log_size();
    assert_eq!(logged, before + accepted);
    let r = s.check(body.clone()).await;
    assert_expired(&r, &write, "write token after expiry");
    let r = s.post_json("/v1/screen", Some(&write), &body).await;
    assert_expired(&r, &write, "screen after expiry");
    // Expired wins over the wrong role (an agent token may not register policies).
    let r = s
        .post_json("/v1/policies", Some(&write), &json!({"source": "x"}))
        .await;
    assert_expired(&r, &write, "register a policy after expiry");
    // Public endpoints need no token and keep working; the log did not change.
    assert_eq!(s.get("/checkpoint").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(s.log_size(), logged);
}

#[tokio::test]
async fn a_bad_expiry_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("write.token"),
        format!("{}\nexpires=next tuesday\n", "ab".repeat(32)),
    )
    .unwrap();
    let config = verdict_log_server::config::Config {
        data_dir: data,
        policies_dir: dir.path().join("none"),
        checker_threads: 1,
        ..Default::default()
    };
    let err = verdict_log_server::start(&config).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("agent.token") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(!msg.contains(&"ab".repeat(32)), "{msg}");
}
