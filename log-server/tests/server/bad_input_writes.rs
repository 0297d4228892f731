//! Bad-input cases of `POST /v1/policies`, `GET /v1/policies` and `POST /v1/screen` (see
//! `bad_input_cases.rs`).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::bad_input_cases::{action, json_body, nested, post, Case, Group, Tokens, JSON, TOML};

pub fn policies(t: &Tokens<'_>) -> Vec<Case> {
    use StatusCode as S;
    let w = Some(t.admin);
    let mut out = Vec::new();
    let mut g = Group::new("POST /v1/policies");
    let p = "/v1/policies";
    g.c(
        "no token",
        post(p, None, TOML, "name = \"x\""),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "wrong token",
        post(p, Some("nope"), TOML, "x"),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "auditor token",
        post(p, Some(t.auditor), TOML, "x"),
        S::FORBIDDEN,
        "forbidden",
    );
    g.c(
        "agent token",
        post(p, Some(t.write), TOML, "x"),
        S::FORBIDDEN,
        "forbidden",
    );
    g.expired(
        "expired write token",
        post(p, Some(t.expired_write), TOML, "x"),
    );
    g.c(
        "toml syntax",
        post(p, w, TOML, "name = \n"),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "type error",
        post(p, w, TOML, "name = \"p\"\nversion = \"1\"\n[variables]\nn = { type = \"int\" }\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'n == \"a\"'\neffect = \"deny\"\n"),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "empty toml",
        post(p, w, TOML, ""),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "huge integer bound",
        post(p, w, TOML, "name = \"p\"\nversion = \"1\"\n[variables]\nn = { type = \"int\", min = 0, max = 99999999999999999999999 }\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'n > 1'\neffect = \"deny\"\n"),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "negative bound above max",
        post(p, w, TOML, "name = \"p\"\nversion = \"1\"\n[variables]\nn = { type = \"int\", min = 5, max = -9223372036854775808 }\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'n > 1'\neffect = \"deny\"\n"),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "deep toml nesting",
        post(p, w, TOML, format!("a = {}", nested(5_000, false))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "deep expression nesting",
        post(p, w, TOML, format!("name = \"p\"\nversion = \"1\"\n[variables]\nn = {{ type = \"int\" }}\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = '{}n > 1{}'\neffect = \"deny\"\n", "(".repeat(5_000), ")".repeat(5_000))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    g.c(
        "invalid utf-8 toml",
        post(p, w, TOML, vec![b'n', b'=', 0xff, 0xfe]),
        S::BAD_REQUEST,
        "bad_request",
    );
    g.c(
        "json without source",
        post(p, w, JSON, "{}"),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "json source is a number",
        post(p, w, JSON, r#"{"source": 1}"#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "json source is null",
        post(p, w, JSON, r#"{"source": null}"#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "json source is an array",
        post(p, w, JSON, r#"{"source": ["name"]}"#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "json unknown field",
        post(p, w, JSON, r#"{"source": "", "x": 1}"#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "truncated json",
        post(p, w, JSON, r#"{"source": "name = "#),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "invalid utf-8 json",
        post(p, w, JSON, vec![b'{', b'"', 0xff, b'"']),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "deep json nesting",
        post(p, w, JSON, nested(7_000, false)),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "wrong content type",
        post(p, w, Some("application/xml"), "<p/>"),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "no content type",
        post(p, w, None, "name = \"x\""),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "multipart",
        post(p, w, Some("multipart/form-data; boundary=x"), "--x--"),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "huge body",
        post(p, w, TOML, format!("a = \"{}\"", "x".repeat(40_000))),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    g.c(
        "100k open brackets",
        post(p, w, JSON, nested(100_000, true)),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    out.extend(g.cases);

    let mut g = Group::new("GET /v1/policies");
    g.wrong_methods(p, &[Method::PUT, Method::DELETE, Method::PATCH]);
    g.no_route(&[
        "/v1/policies/customer-data-egress",
        "/v1/policies/../private/actions/0",
        "/v1/policiesx",
        "/v1/policies/a/b/c",
    ]);
    out.extend(g.cases);
    out
}

pub fn screen(t: &Tokens<'_>) -> Vec<Case> {
    use StatusCode as S;
    let w = Some(t.write);
    let s = "/v1/screen";
    let ok = json_body(&action(json!({"destination": "internal"})));
    let mut g = Group::new("POST /v1/screen");
    g.c(
        "no token",
        post(s, None, JSON, ok.clone()),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "wrong token",
        post(s, Some("nope"), JSON, ok.clone()),
        S::UNAUTHORIZED,
        "unauthorized",
    );
    g.c(
        "auditor token",
        post(s, Some(t.auditor), JSON, ok.clone()),
        S::FORBIDDEN,
        "forbidden",
    );
    g.expired(
        "expired write token",
        post(s, Some(t.expired_write), JSON, ok.clone()),
    );
    g.c(
        "malformed",
        post(s, w, JSON, "{"),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "truncated",
        post(s, w, JSON, ok[..ok.len() / 2].to_vec()),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "empty body",
        post(s, w, JSON, ""),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "invalid utf-8",
        post(s, w, JSON, vec![b'{', 0xc3, 0x28, b'}']),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "deep nesting",
        post(s, w, JSON, nested(7_000, false)),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "unknown field",
        post(
            s,
            w,
            JSON,
            r#"{"policy":"customer-data-egress","action":{},"approvals":[]}"#,
        ),
        S::BAD_REQUEST,
        "bad_json",
    );
    g.c(
        "wrong content type",
        post(s, w, Some("text/plain"), ok.clone()),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "form content type",
        post(s, w, Some("application/x-www-form-urlencoded"), "policy=x"),
        S::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    g.c(
        "huge body",
        post(
            s,
            w,
            JSON,
            json_body(&action(json!({"vendor": "x".repeat(40_000)}))),
        ),
        S::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    g.c(
        "unknown policy",
        post(s, w, JSON, r#"{"policy":"nope","action":{"x":1}}"#),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c(
        "policy path traversal",
        post(
            s,
            w,
            JSON,
            r#"{"policy":"../../etc/passwd","action":{"x":1}}"#,
        ),
        S::NOT_FOUND,
        "unknown_policy",
    );
    g.c(
        "action is an array",
        post(s, w, JSON, json_body(&action(json!([1, 2])))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "action is null",
        post(s, w, JSON, json_body(&action(json!(null)))),
        S::UNPROCESSABLE_ENTITY,
        "invalid_action",
    );
    g.c(
        "bad wait param",
        post(&format!("{s}?wait=2"), w, JSON, ok.clone()),
        S::BAD_REQUEST,
        "bad_query",
    );
    g.c("request id too long", post(s, w, JSON, json_body(&json!({"policy": "customer-data-egress", "action": {}, "request_id": "r".repeat(65)}))), S::BAD_REQUEST, "bad_request");
    g.c(
        "empty request id",
        post(
            s,
            w,
            JSON,
            json_body(&json!({"policy": "customer-data-egress", "action": {}, "request_id": ""})),
        ),
        S::BAD_REQUEST,
        "bad_request",
    );
    g.wrong_methods(s, &[Method::GET, Method::PUT]);
    g.cases
}
