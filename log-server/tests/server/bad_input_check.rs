//! Bad-input cases of `POST /v1/check`: authentication, body format, and semantics (policy,
//! action values, request ids, salts, replays). See `bad_input_cases.rs`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::bad_input_cases::{
    action, json_body, nested, post, Case, Group, Tokens, JSON, REPLAY_ID, TOML,
};

pub fn check(t: &Tokens<'_>) -> Vec<Case> {
    use StatusCode as S;
    let w = Some(t.write);
    let c = "/v1/check";
    let ok = json_body(&action(json!({"destination": "internal"})));
    let big = json_body(&action(
        json!({"destination": "internal", "vendor": "x".repeat(20_000)}),
    ));
    let mut g = Group::new("POST /v1/check");
    // Authentication.
    g.c(
        "no token",
        post(c, None, JSON, ok.clone()),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "wrong token",
        post(c, Some("not-the-token"), JSON, ok.clone()),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "token with a suffix",
        post(c, Some(&format!("{}0", t.write)), JSON, ok.clone()),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "basic scheme",
        Request::post(c)
            .header("authorization", format!("Basic {}", t.write))
            .header("content-type", "application/json")
            .body(Body::from(ok.clone()))
            .unwrap(),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "empty bearer",
        Request::post(c)
            .header("authorization", "Bearer ")
            .header("content-type", "application/json")
            .body(Body::from(ok.clone()))
            .unwrap(),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "non-ascii authorization",
        Request::post(c)
            .header(
                "authorization",
                axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
            )
            .header("content-type", "application/json")
            .body(Body::from(ok.clone()))
            .unwrap(),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "auditor token",
        post(c, Some(t.auditor), JSON, ok.clone()),
        S::FORBIDDEN,
        "forbidden",
    );
    g.expired(
        "expired write token",
        post(c, Some(t.expired_write), JSON, ok.clone()),
    );
    g.expired(
        "expired auditor token",
        post(c, Some(t.expired_auditor), JSON, ok.clone()),
    );
    // Body format.
    g.c(
        "malformed json",
        post(c, w, JSON, "{\"policy\": "),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "truncated json",
        post(c, w, JSON, ok[..ok.len() - 1].to_vec()),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "empty body",
        post(c, w, JSON, ""),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "json array body",
        post(c, w, JSON, "[]"),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "trailing data",
        post(c, w, JSON, [ok.as_slice(), b"{}"].concat()),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "byte order mark",
        post(c, w, JSON, [b"\xef\xbb\xbf".as_slice(), &ok].concat()),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "invalid utf-8",
        post(c, w, JSON, vec![0xff, 0xfe, b'{']),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "invalid utf-8 in a string",
        post(
            c,
            w,
            JSON,
            [
                br#"{"policy":"customer-data-egress","action":{"vendor":""#.as_slice(),
                b"\xff\xfe",
                br#""}}"#,
            ]
            .concat(),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "lone surrogate escape",
        post(
            c,
            w,
            JSON,
            r#"{"policy":"customer-data-egress","action":{"vendor":"\ud800"}}"#,
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "deep nesting 7k",
        post(c, w, JSON, nested(7_000, false)),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "deep nesting in action",
        post(
            c,
            w,
            JSON,
            format!(
                r#"{{"policy":"customer-data-egress","action":{{"vendor":{}}}}}"#,
                nested(5_000, false)
            ),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "100k open brackets",
        post(c, w, JSON, nested(100_000, true)),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    g.c(
        "missing policy field",
        post(
            c,
            w,
            JSON,
            json_body(&json!({"action": {"destination": "internal"}})),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "missing action field",
        post(
            c,
            w,
            JSON,
            json_body(&json!({"policy": "customer-data-egress"})),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "unknown top-level field",
        post(
            c,
            w,
            JSON,
            json_body(&json!({"policy": "customer-data-egress", "action": {}, "extra": 1})),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "policy is a number",
        post(c, w, JSON, json_body(&json!({"policy": 7, "action": {}}))),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "approvals not an array",
        post(
            c,
            w,
            JSON,
            json_body(
                &json!({"policy": "customer-data-egress", "action": {}, "approvals": "alice"}),
            ),
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "duplicate field",
        post(c, w, JSON, r#"{"policy":"a","policy":"b","action":{}}"#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "number beyond f64",
        post(
            c,
            w,
            JSON,
            r#"{"policy":"customer-data-egress","action":{"record_count":1e400}}"#,
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "NaN literal",
        post(
            c,
            w,
            JSON,
            r#"{"policy":"customer-data-egress","action":{"record_count":NaN}}"#,
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "gzip-encoded garbage",
        Request::post(c)
            .header("authorization", format!("Bearer {}", t.write))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Body::from(vec![0x1f, 0x8b, 0x08, 0x00, 0xff]))
            .unwrap(),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "no content type",
        post(c, w, None, ok.clone()),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "text/plain",
        post(c, w, Some("text/plain"), ok.clone()),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "text/json",
        post(c, w, Some("text/json"), ok.clone()),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "toml",
        post(c, w, TOML, ok.clone()),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "oversized with length",
        Request::post(c)
            .header("authorization", format!("Bearer {}", t.write))
            .header("content-type", "application/json")
            .header("content-length", big.len().to_string())
            .body(Body::from(big.clone()))
            .unwrap(),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    g.c(
        "oversized streamed",
        post(c, w, JSON, big.clone()),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    g.c(
        "bad wait param",
        post(&format!("{c}?wait=maybe"), w, JSON, ok.clone()),
        S::BAD_REQUEST,
        "bad_query",
    );
    g.c(
        "duplicate wait param",
        post(&format!("{c}?wait=true&wait=false"), w, JSON, ok.clone()),
        S::BAD_REQUEST,
        "bad_query",
    );
    g.c(
        "unknown query param",
        post(&format!("{c}?wait=true&debug=1"), w, JSON, ok.clone()),
        S::BAD_REQUEST,
        "bad_query",
    );
    g.wrong_methods(c, &[Method::GET, Method::PUT, Method::DELETE]);
    g.no_route(&["/v1/check/", "/v1/check/0"]);
    g.cases
}

pub fn check_semantics(t: &Tokens<'_>) -> Vec<Case> {
    use StatusCode as S;
    let w = t.write;
    let j = |v: serde_json::Value| post("/v1/check", Some(w), JSON, json_body(&v));
    let mut g = Group::new("POST /v1/check");
    g.c(
        "unknown policy",
        j(json!({"policy": "no-such-policy", "action": {"destination": "internal"}})),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c(
        "unknown commitment",
        j(json!({"policy": "00".repeat(32), "action": {"destination": "internal"}})),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c(
        "empty policy id",
        j(json!({"policy": "", "action": {"destination": "internal"}})),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c(
        "long policy id",
        j(json!({"policy": "p".repeat(10_000), "action": {"destination": "internal"}})),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c("policy id traversal", j(json!({"policy": "../policies/customer-data-egress", "action": {"destination": "internal"}})), S::NOT_FOUND, "unknown_policy");
    g.c(
        "action is a string",
        j(action(json!("destination=internal"))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "action unknown key",
        j(action(json!({"destination": "internal", "colour": "red"}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "int as string",
        j(action(json!({"record_count": "ten"}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "int as bool",
        j(action(json!({"record_count": true}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "enum value not in enum",
        j(action(json!({"destination": "moon"}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "negative int below min",
        j(action(json!({"record_count": -5}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "int above max",
        j(action(json!({"record_count": 1_000_001}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "i64::MIN",
        j(action(json!({"record_count": i64::MIN}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "u64::MAX",
        j(action(json!({"record_count": u64::MAX}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "beyond u64",
        post(
            "/v1/check",
            Some(w),
            JSON,
            r#"{"policy":"customer-data-egress","action":{"record_count":18446744073709551616}}"#,
        ),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "below i64",
        post(
            "/v1/check",
            Some(w),
            JSON,
            r#"{"policy":"customer-data-egress","action":{"record_count":-9223372036854775809}}"#,
        ),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "huge float",
        j(action(json!({"record_count": 1e30}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "fractional int",
        j(action(json!({"record_count": 1.5}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "negative zero float",
        j(action(json!({"record_count": -0.0}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "nested object value",
        j(action(json!({"record_count": {"a": {"b": 1}}}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "nesting near the parser limit",
        post(
            "/v1/check",
            Some(w),
            JSON,
            format!(
                r#"{{"policy":"customer-data-egress","action":{{"vendor":{}}}}}"#,
                nested(120, false)
            ),
        ),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "token as object",
        j(action(
            json!({"destination": "external", "authorization_token": {"x": 1}}),
        )),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "reserved approvals key",
        j(action(json!({"destination": "internal", "approvals": 3}))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c("unknown approver", j(json!({"policy": "customer-data-egress", "action": {"record_count": 5000}, "approvals": [{"approver": "mallory", "signature": "AAAA"}]})), S::UNPROCESSABLE_ENTITY, "invalid_action");
    g.c("approval bad base64", j(json!({"policy": "customer-data-egress", "action": {"record_count": 5000}, "approvals": [{"approver": "alice", "signature": "!!!"}]})), S::UNPROCESSABLE_ENTITY, "invalid_action");
    g.c("request id too long", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": "r".repeat(65)})), S::BAD_REQUEST, "bad_request");
    g.c("request id with space", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": "a b"})), S::BAD_REQUEST, "bad_request");
    g.c("request id non-ascii", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": "é"})), S::BAD_REQUEST, "bad_request");
    g.c("bad salt", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "salt": "zz"})), S::BAD_REQUEST, "bad_request");
    g.c("salt too long", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "salt": "00".repeat(33)})), S::BAD_REQUEST, "bad_request");
    // Replayed request ids: REPLAY_ID was logged with {"destination": "internal"}.
    g.c("replayed id, other action", j(json!({"policy": "customer-data-egress", "action": {"destination": "external"}, "request_id": REPLAY_ID})), S::CONFLICT, "request_id_conflict");
    g.c("replayed id, extra key", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal", "record_count": 1}, "request_id": REPLAY_ID})), S::CONFLICT, "request_id_conflict");
    g.c("replayed id, approvals and wrong salt", j(json!({"policy": "customer-data-egress", "action": {"destination": "internal"}, "request_id": REPLAY_ID, "salt": "00".repeat(32), "approvals": [{"approver": "alice", "signature": "AAAA"}]})), S::CONFLICT, "request_id_conflict");
    g.cases
}
