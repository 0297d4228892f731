//! Issue 16: the evidence-package reads (`GET /v1/private/period`, `GET /v1/private/records`,
//! spec `evidence-package.md` §3, §5) are for the auditor only, and bad queries are a 400 JSON
//! error that changes nothing.

use axum::http::StatusCode;
use serde_json::json;

use crate::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn period_and_records_are_auditor_only_and_refuse_bad_queries() {
    let s = TestServer::start().await;
    let r = s
        .check(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 3}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let size = s.tree_size();
    let period = "/v1/private/period?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let records = format!("/v1/private/records?start=0&end={size}");

    for uri in [period, records.as_str()] {
        // No token: 401; the agent, admin and metrics tokens: 403.
        let r = s.get(uri).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        for token in [&s.agent_token, &s.admin_token, &s.metrics_token] {
            let r = s.get_with_token(uri, token).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
            assert_eq!(r.json()["error"], "forbidden", "{uri}");
        }
        let r = s.get_with_token(uri, &s.auditor_token).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
    }

    // The whole log is one period; every index has one line.
    let r = s.get_with_token(period, &s.auditor_token).await;
    assert_eq!(
        r.json(),
        json!({"start": 0, "end": size, "tree_size": size})
    );
    let r = s.get_with_token(&records, &s.auditor_token).await;
    let lines: Vec<serde_json::Value> = String::from_utf8(r.body.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, size);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64);
    }

    // Bad queries: 400 with a JSON error; the log is unchanged.
    let bad = [
        "/v1/private/period?from=yesterday&to=2100-01-01T00:00:00Z".to_owned(),
        "/v1/private/period?from=2100-01-01T00:00:00Z&to=2000-01-01T00:00:00Z".to_owned(),
        "/v1/private/period?from=2000-01-01T00:00:00Z".to_owned(),
        "/v1/private/records?start=1&end=0".to_owned(),
        format!("/v1/private/records?start=0&end={}", size + 1),
        "/v1/private/records?start=0&end=100001".to_owned(),
        "/v1/private/records?start=-1&end=1".to_owned(),
    ];
    for uri in &bad {
        let r = s.get_with_token(uri, &s.auditor_token).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"].is_string(), "{uri}");
    }
    assert_eq!(s.tree_size(), size);
}
