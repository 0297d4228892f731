//! The bad-input suite: every case gets a 4xx with a JSON `{error, message}` body, and the log
//! is unchanged (nothing staged, nothing integrated). Never a 5xx, never a panic.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::TestServer;

struct Case {
    name: &'static str,
    request: Request<Body>,
    status: StatusCode,
    code: &'static str,
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn post(
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut r = Request::post(uri);
    if let Some(t) = token {
        r = r.header("authorization", bearer(t));
    }
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(body.into()).unwrap()
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(t) = token {
        r = r.header("authorization", bearer(t));
    }
    r.body(Body::empty()).unwrap()
}

fn check_json(token: &str, body: serde_json::Value) -> Request<Body> {
    post(
        "/v1/check",
        Some(token),
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
    )
}

fn action(a: serde_json::Value) -> serde_json::Value {
    json!({"policy": "customer-data-egress", "action": a})
}

fn cases(w: &str, a: &str) -> Vec<Case> {
    use StatusCode as S;
    let c = |name, request, status, code| Case {
        name,
        request,
        status,
        code,
    };
    let ok_body = serde_json::to_vec(&action(json!({"destination": "internal"}))).unwrap();
    let big = serde_json::to_vec(&action(
        json!({"destination": "internal", "vendor": "x".repeat(20_000)}),
    ))
    .unwrap();
    vec![
        // Authentication.
        c("no token", post("/v1/check", None, Some("application/json"), ok_body.clone()), S::UNAUTHORIZED, "unauthorized"),
        c("wrong token", post("/v1/check", Some("not-the-token"), Some("application/json"), ok_body.clone()), S::UNAUTHORIZED, "unauthorized"),
        c("basic scheme", Request::post("/v1/check").header("authorization", format!("Basic {w}")).header("content-type", "application/json").body(Body::from(ok_body.clone())).unwrap(), S::UNAUTHORIZED, "unauthorized"),
        c("empty bearer", Request::post("/v1/check").header("authorization", "Bearer ").header("content-type", "application/json").body(Body::from(ok_body.clone())).unwrap(), S::UNAUTHORIZED, "unauthorized"),
        c("auditor token on check", post("/v1/check", Some(a), Some("application/json"), ok_body.clone()), S::FORBIDDEN, "forbidden"),
        c("no token on screen", post("/v1/screen", None, Some("application/json"), ok_body.clone()), S::UNAUTHORIZED, "unauthorized"),
        c("no token on policies", post("/v1/policies", None, Some("application/toml"), "name = \"x\""), S::UNAUTHORIZED, "unauthorized"),
        c("private without token", get("/v1/private/actions/0", None), S::UNAUTHORIZED, "unauthorized"),
        c("private with write token", get("/v1/private/actions/0", Some(w)), S::FORBIDDEN, "forbidden"),
        // Body format.
        c("malformed json", post("/v1/check", Some(w), Some("application/json"), "{\"policy\": "), S::BAD_REQUEST, "bad_json"),
        c("json array body", post("/v1/check", Some(w), Some("application/json"), "[]"), S::BAD_REQUEST, "bad_json"),
        c("invalid utf-8", post("/v1/check", Some(w), Some("application/json"), vec![0xff, 0xfe, b'{']), S::BAD_REQUEST, "bad_json"),
        c("missing policy field", check_json(w, json!({"action": {"destination": "internal"}})), S::BAD_REQUEST, "bad_json"),
        c("unknown top-level field", check_json(w, json!({"policy": "customer-data-egress", "action": {}, "extra": 1})), S::BAD_REQUEST, "bad_json"),
        c("policy is a number", check_json(w, json!({"policy": 7, "action": {}})), S::BAD_REQUEST, "bad_json"),
        c("duplicate field", post("/v1/check", Some(w), Some("application/json"), r#"{"policy":"a","policy":"b","action":{}}"#), S::BAD_REQUEST, "bad_json"),
        c("no content type", post("/v1/check", Some(w), None, ok_body.clone()), S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        c("text/plain content type", post("/v1/check", Some(w), Some("text/plain"), ok_body.clone()), S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        c("oversized body with length", Request::post("/v1/check").header("authorization", bearer(w)).header("content-type", "application/json").header("content-length", big.len().to_string()).body(Body::from(big.clone())).unwrap(), S::PAYLOAD_TOO_LARGE, "body_too_large"),
        c("oversized body streamed", post("/v1/check", Some(w), Some("application/json"), big.clone()), S::PAYLOAD_TOO_LARGE, "body_too_large"),
        // Semantics: nothing is decided, nothing logged.
        c("unknown policy", check_json(w, json!({"policy": "no-such-policy", "action": {"destination": "internal"}})), S::NOT_FOUND, "unknown_policy"),
        c("unknown commitment", check_json(w, json!({"policy": "00".repeat(32), "action": {"destination": "internal"}})), S::NOT_FOUND, "unknown_policy"),
        c("action is a string", check_json(w, action(json!("destination=internal"))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("action unknown key", check_json(w, action(json!({"destination": "internal", "colour": "red"}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("int as string", check_json(w, action(json!({"record_count": "ten"}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("enum value not in enum", check_json(w, action(json!({"destination": "moon"}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("negative int below min", check_json(w, action(json!({"record_count": -5}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("huge number", check_json(w, action(json!({"record_count": 1e30}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("nested object value", check_json(w, action(json!({"record_count": {"a": {"b": 1}}}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("reserved approvals key", check_json(w, action(json!({"destination": "internal", "approvals": 3}))), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("unknown approver", check_json(w, json!({"policy": "customer-data-egress", "action": {"record_count": 5000}, "approvals": [{"approver": "mallory", "signature": "AAAA"}]})), S::UNPROCESSABLE_ENTITY, "invalid_action"),
        c("request id too long", check_json(w, json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": "r".repeat(65)})), S::BAD_REQUEST, "bad_request"),
        c("request id with space", check_json(w, json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": "a b"})), S::BAD_REQUEST, "bad_request"),
        c("bad salt", check_json(w, json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "salt": "zz"})), S::BAD_REQUEST, "bad_request"),
        c("bad wait param", post("/v1/check?wait=maybe", Some(w), Some("application/json"), ok_body.clone()), S::BAD_REQUEST, "bad_query"),
        c("screen malformed", post("/v1/screen", Some(w), Some("application/json"), "{"), S::BAD_REQUEST, "bad_json"),
        c("screen unknown policy", post("/v1/screen", Some(w), Some("application/json"), r#"{"policy":"nope","action":{"x":1}}"#), S::NOT_FOUND, "unknown_policy"),
        // Policies.
        c("policy toml syntax", post("/v1/policies", Some(w), Some("application/toml"), "name = \n"), S::UNPROCESSABLE_ENTITY, "invalid_policy"),
        c("policy type error", post("/v1/policies", Some(w), Some("application/toml"), "name = \"p\"\nversion = \"1\"\n[variables]\nn = { type = \"int\" }\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'n == \"a\"'\neffect = \"deny\"\n"), S::UNPROCESSABLE_ENTITY, "invalid_policy"),
        c("policy json without source", post("/v1/policies", Some(w), Some("application/json"), "{}"), S::BAD_REQUEST, "bad_json"),
        c("policy wrong content type", post("/v1/policies", Some(w), Some("application/xml"), "<p/>"), S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        // Tiles.
        c("tile path traversal", get("/tile/../../etc/passwd", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile encoded traversal", get("/tile/0/..%2F..%2Fstore", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile short index", get("/tile/0/1", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile width zero", get("/tile/0/000.p/0", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile full width as partial", get("/tile/0/000.p/256", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile level too high", get("/tile/64/000", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile bad entries index", get("/tile/entries/x001", None), S::BAD_REQUEST, "bad_tile_path"),
        c("tile beyond tree", get("/tile/0/x999/999", None), S::NOT_FOUND, "not_found"),
        // Proof parameters.
        c("inclusion missing params", get("/v1/proof/inclusion", None), S::BAD_REQUEST, "bad_query"),
        c("inclusion negative index", get("/v1/proof/inclusion?index=-1&size=1", None), S::BAD_REQUEST, "bad_query"),
        c("inclusion huge index", get("/v1/proof/inclusion?index=99999999999999999999999&size=1", None), S::BAD_REQUEST, "bad_query"),
        c("inclusion index not below size", get("/v1/proof/inclusion?index=1&size=1", None), S::BAD_REQUEST, "bad_query"),
        c("inclusion size beyond tree", get("/v1/proof/inclusion?index=0&size=1000000", None), S::BAD_REQUEST, "bad_query"),
        c("inclusion unknown param", get("/v1/proof/inclusion?index=0&size=1&x=1", None), S::BAD_REQUEST, "bad_query"),
        c("consistency from zero", get("/v1/proof/consistency?from=0&to=1", None), S::BAD_REQUEST, "bad_query"),
        c("consistency from above to", get("/v1/proof/consistency?from=2&to=1", None), S::BAD_REQUEST, "bad_query"),
        c("consistency to beyond tree", get("/v1/proof/consistency?from=1&to=1000000", None), S::BAD_REQUEST, "bad_query"),
        c("consistency float", get("/v1/proof/consistency?from=1.5&to=2", None), S::BAD_REQUEST, "bad_query"),
        c("bundle not a number", get("/v1/bundle/abc", None), S::BAD_REQUEST, "bad_request"),
        c("bundle negative", get("/v1/bundle/-1", None), S::BAD_REQUEST, "bad_request"),
        c("bundle u64 overflow", get("/v1/bundle/18446744073709551616", None), S::BAD_REQUEST, "bad_request"),
        c("bundle beyond tree", get("/v1/bundle/99999", None), S::NOT_FOUND, "not_found"),
        c("private bad index", get("/v1/private/actions/+1", Some(a)), S::BAD_REQUEST, "bad_request"),
        // Routing.
        c("unknown route", get("/v2/nothing", None), S::NOT_FOUND, "not_found"),
        c("get on check", get("/v1/check", Some(w)), S::METHOD_NOT_ALLOWED, "method_not_allowed"),
        c("post on checkpoint", post("/checkpoint", None, None, ""), S::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_4xx_json_and_leaves_the_log_unchanged() {
    let s = TestServer::start().await;
    // One entry so that index 0 exists for the proof cases.
    let first = s.check(action(json!({"destination": "internal"}))).await;
    assert_eq!(first.status, StatusCode::OK);
    let tree = s.tree_size();
    let staged = s.log_size();
    let cases = cases(&s.write_token.clone(), &s.auditor_token.clone());
    let n = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let r = s.send(case.request).await;
        let shape_ok = r.header("content-type").starts_with("application/json")
            && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|j| {
                j["error"].as_str() == Some(case.code)
                    && j["message"].as_str().is_some_and(|m| !m.is_empty())
            });
        if r.status != case.status || !shape_ok {
            failures.push(format!(
                "{}: expected {} {}, got {} {}",
                case.name,
                case.status,
                case.code,
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        assert!(!r.status.is_server_error(), "{}: 5xx", case.name);
        assert_eq!(s.log_size(), staged, "{}: the log changed", case.name);
    }
    println!("bad_input: {n} cases");
    assert!(n >= 30);
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Give the sequencer a moment: still nothing new.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(s.tree_size(), tree);
    assert_eq!(s.log_size(), staged);
}
