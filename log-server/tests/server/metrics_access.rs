//! Who may read `GET /metrics` (issue 16 item 6): it names every policy and counts its
//! decisions, so it takes the metrics token or the admin token (401 without a valid token, 403
//! for an agent or auditor token); with `metrics_listen` it moves to its own app without a token
//! and the main listener answers 404. The metrics token opens nothing else.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

use crate::{Reply, TestServer};

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("content-type").starts_with("application/json"));
    assert_eq!(r.json()["error"], code);
}

fn assert_metrics(r: &Reply) {
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.contains("verdict_tree_size "), "{text}");
    assert!(text.contains("policy=\"customer-data-egress\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_or_admin_token() {
    let s = TestServer::start().await;
    let deny = json!({"policy": "customer-data-egress", "action": {"destination": "external"}});
    assert_eq!(s.check(deny).await.status, StatusCode::OK);

    assert_error(
        &s.get("/metrics").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let unknown = "ab".repeat(32);
    assert_error(
        &s.get_with_token("/metrics", &unknown).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for token in [&s.agent_token, &s.auditor_token] {
        assert_error(
            &s.get_with_token("/metrics", token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    assert_metrics(&s.metrics().await);
    assert_metrics(&s.get_with_token("/metrics", &s.admin_token).await);

    // The metrics token opens nothing else: not check, not policies, not private reads.
    let check = json!({"policy": "customer-data-egress", "action": {"destination": "internal"}});
    let before = s.log_size();
    assert_error(
        &s.post_json("/v1/check", Some(&s.metrics_token), &check)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for uri in ["/v1/private/actions/0", "/v1/escalations"] {
        assert_error(
            &s.get_with_token(uri, &s.metrics_token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    assert_eq!(s.log_size(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_metrics_token_is_refused() {
    let token = "cd".repeat(32);
    let t = token.clone();
    let s = TestServer::start_prepared(
        move |data| {
            std::fs::write(data.join("metrics.token"), format!("{t}\nexpires=1000\n")).unwrap()
        },
        |_| {},
    )
    .await;
    assert_eq!(s.metrics_token, token);
    assert_error(
        &s.metrics().await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_moves_metrics_off_the_main_listener() {
    let s =
        TestServer::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let deny = json!({"policy": "customer-data-egress", "action": {"destination": "external"}});
    assert_eq!(s.check(deny).await.status, StatusCode::OK);
    // The main listener: no /metrics, whatever the token.
    for r in [
        s.get("/metrics").await,
        s.metrics().await,
        s.get_with_token("/metrics", &s.admin_token).await,
    ] {
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(s.get("/checkpoint").await.status, StatusCode::OK);

    // The metrics listener's app: /metrics without a token, nothing else.
    let metrics = verdict_log_server::metrics_app(s.state.clone());
    let get = |uri: &str| {
        let app = metrics.clone();
        let req = Request::get(uri).body(Body::empty()).unwrap();
        async move {
            let response = app.oneshot(req).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            Reply {
                status,
                headers,
                body,
            }
        }
    };
    assert_metrics(&get("/metrics").await);
    for uri in ["/checkpoint", "/v1/keys", "/openapi.json", "/metrics/"] {
        assert_error(&get(uri).await, StatusCode::NOT_FOUND, "not_found");
    }
}
