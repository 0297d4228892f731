//! Action input over HTTP (issue 13, "what was measured"): the server parses the `action` of
//! `/v1/check` and `/v1/screen` from its raw bytes with the checker's strict parser
//! (`spec/decision-semantics.md` §3). Each case sends the request through the router with the
//! real checker pool and sled log, and checks the status, the error code, that a rejected input
//! logs nothing (the log size is unchanged) and that no answer echoes a token value.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::{Reply, TestServer};

const POLICY: &str = "customer-data-egress";

/// A server whose body limit is the default (256 KiB), so that the action limit (64 KiB), not
/// the body limit, is what a large action meets.
async fn server() -> TestServer {
    TestServer::start_with(|c| c.max_body_bytes = 256 * 1024).await
}

/// POST raw bytes as JSON with the agent token.
async fn post_raw(s: &TestServer, uri: &str, body: impl Into<Vec<u8>>) -> Reply {
    s.send(
        Request::post(uri)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", s.agent_token))
            .body(Body::from(body.into()))
            .unwrap(),
    )
    .await
}

/// `{"policy": POLICY, "action": <action text>}` with the action text as given.
fn with_action(action: &str) -> String {
    format!(r#"{{"policy":"{POLICY}","action":{action}}}"#)
}

/// Assert a rejection: status and code, nothing logged, and `secret` (when given) not echoed.
fn assert_rejected(
    s: &TestServer,
    r: &Reply,
    before: u64,
    status: StatusCode,
    code: &str,
    secret: Option<&str>,
) -> serde_json::Value {
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, status, "{text}");
    let body = r.json();
    assert_eq!(body["error"], code, "{text}");
    assert_eq!(s.log_size(), before, "a rejected input must log nothing");
    if let Some(secret) = secret {
        assert!(
            !text.contains(secret),
            "the answer echoes the token: {text}"
        );
    }
    body
}

/// `null` for a variable that is neither a token nor `optional = true` is a type error: the
/// same action with the variable left out escalates (it names the variable), so `null` can no
/// longer turn that escalation into an allow. `null` for a token (always absent-able) is
/// accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_for_a_required_variable_is_rejected_where_absence_escalates() {
    let s = server().await;
    let absent = s
        .check(json!({"policy": POLICY, "action": {"vendor": "evilcorp", "record_count": 5, "authorization_token": "t"}}))
        .await;
    assert_eq!(absent.status, StatusCode::OK);
    let a = absent.json();
    assert_eq!(a["decision"], "escalate", "{a}");
    assert_eq!(a["undetermined_variables"], json!(["destination"]));

    let before = s.log_size();
    let null = s
        .check(json!({"policy": POLICY, "action": {"destination": null, "vendor": "evilcorp", "record_count": 5, "authorization_token": "t"}}))
        .await;
    let body = assert_rejected(
        &s,
        &null,
        before,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_action",
        None,
    );
    assert_eq!(
        body["message"],
        "invalid action: variable `destination` is not optional: null is not allowed"
    );
    // A null token is explicit absence and decides as absent.
    let token_null = s
        .check(json!({"policy": POLICY, "action": {"destination": "external", "vendor": "acme", "record_count": 5, "authorization_token": null}}))
        .await;
    assert_eq!(token_null.status, StatusCode::OK);
    let t = token_null.json();
    assert_eq!(t["decision"], "deny", "{t}");
    assert_eq!(t["violated_rule_ids"], json!(["external-needs-auth"]));
}

/// Duplicate keys are rejected at any depth, in the action and in the request body itself, on
/// both endpoints, whatever their order (the last value no longer wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_are_rejected_at_any_depth() {
    let s = server().await;
    let before = s.log_size();
    let cases = [
        with_action(r#"{"record_count":5,"record_count":50000}"#),
        with_action(r#"{"record_count":50000,"record_count":5}"#),
        with_action(r#"{"destination":"internal","vendor":{"a":1,"a":2}}"#),
        format!(
            r#"{{"policy":"{POLICY}","policy":"{POLICY}","action":{{"destination":"internal"}}}}"#
        ),
        format!(
            r#"{{"policy":"{POLICY}","action":{{"destination":"internal"}},"action":{{"destination":"external"}}}}"#
        ),
    ];
    for body in &cases {
        for uri in ["/v1/check", "/v1/screen"] {
            let r = post_raw(&s, uri, body.clone()).await;
            let b = assert_rejected(&s, &r, before, StatusCode::BAD_REQUEST, "bad_json", None);
            assert!(
                b["message"].as_str().unwrap().contains("duplicate"),
                "{uri} {body}: {b}"
            );
        }
    }
}

/// The 64 KiB limit applies to the action's raw text: 65,536 bytes (whitespace padding
/// included) are accepted, 65,537 are 422 `invalid_action`, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_limit_applies_to_the_raw_bytes() {
    let s = server().await;
    let head = r#"{"destination":"internal","record_count":1"#;
    let padded = |total: usize| format!("{head}{}}}", " ".repeat(total - head.len() - 1));
    assert_eq!(padded(65_536).len(), 65_536);

    let ok = post_raw(&s, "/v1/check", with_action(&padded(65_536))).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.json()["decision"], "allow");

    let before = s.log_size();
    for uri in ["/v1/check", "/v1/screen"] {
        let r = post_raw(&s, uri, with_action(&padded(65_537))).await;
        let b = assert_rejected(
            &s,
            &r,
            before,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_action",
            None,
        );
        assert_eq!(b["message"], "invalid action: action exceeds 65536 bytes");
    }
}

/// Every string value has the 4096-byte limit, tokens included: a 32.8 KB action holding a
/// 32,758-byte token is rejected by the per-string limit (not as over 65,536), and so is a
/// 4097-byte token; 4096 bytes are accepted. No answer echoes the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tokens_are_rejected_by_the_string_limit_without_echo() {
    let s = server().await;
    let token = |n: usize| {
        let unit = "SECRETTOKENVALUE";
        unit.repeat(n / unit.len() + 1)[..n].to_owned()
    };
    let before = s.log_size();
    for n in [32_758, 4_097] {
        let value = token(n);
        let action =
            json!({"destination": "external", "vendor": "acme", "authorization_token": value})
                .to_string();
        if n == 32_758 {
            assert!((32_700..33_000).contains(&action.len()), "{}", action.len());
        }
        let r = post_raw(&s, "/v1/check", with_action(&action)).await;
        let b = assert_rejected(
            &s,
            &r,
            before,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_action",
            Some("SECRETTOKENVALUE"),
        );
        assert_eq!(
            b["message"],
            "invalid action: value of `authorization_token` is too long"
        );
    }
    let ok = s
        .check(json!({"policy": POLICY, "action": {"destination": "external", "vendor": "acme", "record_count": 1, "authorization_token": token(4_096)}}))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let body = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(!body.contains("SECRETTOKENVALUE"), "{body}");
    assert_eq!(ok.json()["decision"], "allow");
}

/// `-0` is a JSON integer within bounds: accepted as 0 (canonical action `0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_zero_is_accepted_as_zero() {
    let s = server().await;
    let r = post_raw(
        &s,
        "/v1/check",
        with_action(r#"{"destination":"internal","record_count":-0}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let b = r.json();
    assert_eq!(b["decision"], "allow");
    assert_eq!(
        b["canonical_action"],
        r#"{"destination":"internal","record_count":0}"#
    );
}

/// The private record keeps a token's presence, never its value; the canonical action (what
/// the commitment covers) has `true` for it, and the commitment recomputed from the record
/// matches the receipt's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_record_keeps_only_a_tokens_presence() {
    let s = server().await;
    let r = s
        .check(json!({"policy": POLICY, "action": {"destination": "external", "vendor": "acme", "record_count": 1, "authorization_token": "SECRETTOKENVALUE123"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let d = r.json();
    assert_eq!(d["decision"], "allow");
    let index = d["index"].as_u64().unwrap();
    let record = s
        .send(
            Request::get(format!("/v1/private/actions/{index}"))
                .header("authorization", format!("Bearer {}", s.auditor_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(record.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&record.body).into_owned();
    assert!(!text.contains("SECRETTOKENVALUE123"), "{text}");
    let rec = record.json()["record"].clone();
    assert_eq!(rec["action"]["authorization_token"], true);
    assert_eq!(
        rec["canonical_action"],
        r#"{"authorization_token":true,"destination":"external","record_count":1,"vendor":"acme"}"#
    );
    let salt = verdict_core::receipt::Salt::from_hex(rec["salt"].as_str().unwrap()).unwrap();
    let commitment = verdict_core::receipt::commit(
        verdict_core::receipt::CommitmentTag::Action,
        &salt,
        rec["canonical_action"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(commitment.to_hex(), d["action_commitment"]);

    // The same request id and action again (another token value) is a replay of that entry:
    // the fingerprint covers the token's presence, as the commitment does.
    let id = d["request_id"].as_str().unwrap();
    let again = s
        .check(json!({"policy": POLICY, "request_id": id, "action": {"destination": "external", "vendor": "acme", "record_count": 1, "authorization_token": "OTHERVALUE"}}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["index"], index);
}

/// A private record written before token values were reduced (an older version stored the raw
/// action) is served with its token values reduced: the endpoint never returns one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_record_is_served_without_its_token_value() {
    let s = server().await;
    let d = s
        .check(json!({"policy": POLICY, "action": {"destination": "internal", "record_count": 1}}))
        .await
        .json();
    let commitment = d["policy"]["commitment"].as_str().unwrap();
    let legacy = json!({
        "action": {"destination": "external", "authorization_token": "LEGACYSECRET42"},
        "canonical_action": r#"{"authorization_token":true,"destination":"external"}"#,
        "policy": commitment,
        "request_id": "legacy-1",
        "salt": "00".repeat(32),
    });
    let index = s
        .state
        .log
        .submit(
            b"legacy entry".to_vec(),
            Some(serde_json::to_vec(&legacy).unwrap()),
        )
        .await
        .unwrap();
    let r = s
        .send(
            Request::get(format!("/v1/private/actions/{}", index.0))
                .header("authorization", format!("Bearer {}", s.auditor_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!text.contains("LEGACYSECRET42"), "{text}");
    let rec = r.json()["record"].clone();
    assert_eq!(rec["action"]["authorization_token"], true);
    assert_eq!(rec["action"]["destination"], "external");
}
