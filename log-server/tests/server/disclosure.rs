//! Selective rule disclosure (issue 11 item 6, spec `spec/disclosure.md`):
//! `GET /v1/private/disclosure/{index}?rule=i` for the auditor and the decision's own agent; a
//! rule the decision did not violate is refused; the document verifies offline with the
//! checker key and fails once its text, salt or a path hash is changed.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use verdict_core::disclosure::{Disclosure, DisclosureError};

use crate::TestServer;

async fn get_as(s: &TestServer, uri: &str, token: Option<&str>) -> crate::Reply {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    s.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violated_rule_is_disclosed_and_verifies_offline() {
    let s = TestServer::start().await;
    // External, unapproved vendor: rule 1 is violated (rule 0 needs the token, whose absence
    // leaves it undetermined; rule 2 does not apply).
    let c = s
        .check(json!({"policy": "customer-data-egress",
            "action": {"destination": "external", "vendor": "evil", "record_count": 5}}))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.json());
    let c = c.json();
    let index = c["index"].as_u64().unwrap();
    assert_eq!(c["decision"], "deny", "{c}");

    let uri = format!("/v1/private/disclosure/{index}?rule=1");
    assert_eq!(
        get_as(&s, &uri, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_as(&s, &uri, Some(&s.admin_token)).await.status,
        StatusCode::FORBIDDEN
    );
    let by_agent = get_as(&s, &uri, Some(&s.agent_token)).await;
    assert_eq!(by_agent.status, StatusCode::OK, "the decision's own agent");
    let r = get_as(&s, &uri, Some(&s.auditor_token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let body = r.json();
    assert_eq!(body, by_agent.json());
    let d = Disclosure::from_json(body.to_string().as_bytes()).unwrap();
    assert_eq!(d.decision_index, index);
    assert_eq!(d.rule.index, 1);
    assert_eq!(d.rule.count, 3);
    assert!(
        d.rule.text.contains("external-approved-vendor"),
        "{}",
        d.rule.text
    );
    assert!(
        !d.rule.text.contains("external-needs-auth"),
        "only rule 1 is shown"
    );
    let keys = std::slice::from_ref(&s.checker_key);
    let verified = d.verify_logged(keys, &s.log_key).unwrap();
    // The statement's inclusion is proven (version 2): a disclosure whose statement_index is
    // moved, or whose proof is dropped, is refused.
    assert_eq!(d.to_json()["version"], 2);
    let mut t = d.clone();
    t.statement_index += 1;
    if t.statement_index < t.decision_index {
        assert!(matches!(
            t.verify_logged(keys, &s.log_key),
            Err(DisclosureError::StatementInclusion(_))
        ));
    }
    let mut t = d.clone();
    t.statement_proof = None;
    assert!(matches!(
        t.verify_logged(keys, &s.log_key),
        Err(DisclosureError::StatementInclusion(_))
    ));
    assert_eq!(verified.policy.name, "customer-data-egress");
    assert_eq!(verified.decision.violated_rules, vec![1]);

    // Tampered text, salt or proof hash: the opening no longer leads to the root.
    let mut t = d.clone();
    t.rule.text = t.rule.text.replace("approved", "approveD");
    assert!(matches!(t.verify(keys), Err(DisclosureError::RuleMismatch)));
    let mut t = d.clone();
    t.rule.salt.0[0] ^= 1;
    assert!(matches!(t.verify(keys), Err(DisclosureError::RuleMismatch)));
    let mut t = d.clone();
    t.rule.path[0].0[31] ^= 1;
    assert!(matches!(t.verify(keys), Err(DisclosureError::RuleMismatch)));
    // Claiming the not-violated rule 2 with rule 1's opening: refused offline too.
    let mut t = d.clone();
    t.rule.index = 2;
    assert!(matches!(
        t.verify(keys),
        Err(DisclosureError::NotViolated(2))
    ));
    // A statement signed by an untrusted key: refused.
    let other = verdict_core::note::Signer::generate("other")
        .unwrap()
        .verifier();
    assert!(matches!(
        d.verify(std::slice::from_ref(&other)),
        Err(DisclosureError::Statement(_))
    ));

    // Rules 0 and 2 were not violated, 7 does not exist: refused with a clear 404, for the
    // auditor too.
    for rule in [0, 2, 7] {
        let r = get_as(
            &s,
            &format!("/v1/private/disclosure/{index}?rule={rule}"),
            Some(&s.auditor_token),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("only a rule the decision violated"),
            "{}",
            r.json()
        );
    }
    // Unknown index (and the policy statement's index, which is no decision): 404.
    for i in [index + 1000, 0] {
        let r = get_as(
            &s,
            &format!("/v1/private/disclosure/{i}?rule=0"),
            Some(&s.auditor_token),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{i}: {}", r.json());
    }
    // Bad query or index: 400.
    for q in ["?rule=x", "", "?rule=1&x=1", "?rule=-1"] {
        let r = get_as(
            &s,
            &format!("/v1/private/disclosure/{index}{q}"),
            Some(&s.auditor_token),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    let r = get_as(
        &s,
        "/v1/private/disclosure/x?rule=0",
        Some(&s.auditor_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// An agent reads disclosures of its own decisions only: another agent's is 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_read_another_agents_disclosure() {
    let bot = "cd".repeat(32);
    let b = bot.clone();
    let s = TestServer::start_prepared(
        move |data| std::fs::write(data.join("agent-billing-bot.token"), format!("{b}\n")).unwrap(),
        |_| {},
    )
    .await;
    let c = s
        .post_json(
            "/v1/check",
            Some(&bot),
            &json!({"policy": "customer-data-egress",
                "action": {"destination": "external", "vendor": "evil", "record_count": 5}}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.json());
    let index = c.json()["index"].as_u64().unwrap();
    let uri = format!("/v1/private/disclosure/{index}?rule=1");
    assert_eq!(get_as(&s, &uri, Some(&bot)).await.status, StatusCode::OK);
    assert_eq!(
        get_as(&s, &uri, Some(&s.agent_token)).await.status,
        StatusCode::FORBIDDEN,
        "the default agent did not ask for this decision"
    );
    assert_eq!(
        get_as(&s, &uri, Some(&s.auditor_token)).await.status,
        StatusCode::OK
    );
}
