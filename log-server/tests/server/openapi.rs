//! Snapshot of `GET /openapi.json`.

use axum::http::StatusCode;

use crate::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_snapshot() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("application/json"));
    let doc = r.json();
    // Every routed path is documented.
    for path in [
        "/checkpoint",
        "/tile/{path}",
        "/v1/keys",
        "/v1/proof/inclusion",
        "/v1/proof/consistency",
        "/v1/bundle/{index}",
        "/health",
        "/metrics",
        "/openapi.json",
        "/v1/policies",
        "/v1/policies/{name}/versions",
        "/v1/screen",
        "/v1/check",
        "/v1/private/actions/{index}",
        "/v1/private/policies/{commitment}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    insta::assert_json_snapshot!("openapi", doc);
}
