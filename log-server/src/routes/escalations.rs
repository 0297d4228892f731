//! Escalations (issue 15; spec `spec/approval.md` §6): thin adapters over
//! [`crate::service::escalations`].
//!
//! Access (least privilege):
//! - `GET /v1/escalations` (list, with the canonical actions): admin or auditor token;
//! - `GET /v1/escalations/{id}`: the agent token that raised it (without the canonical action), or
//!   admin or auditor;
//! - `POST /v1/escalations/{id}/approvals` and `/rejections`: no bearer token. The Ed25519
//!   signature by one of the policy's `[[approvers]]` keys over the message of spec `approval.md`
//!   §2 is the credential, and it answers only this escalation.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use verdict_core::approval::Verdict;

use crate::auth::{AuthError, Principal, Role};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::service::escalations::{self as service, AnswerBody, EscalationView, Status};
use crate::AppState;

/// Query of `GET /v1/escalations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending`, `approved`, `rejected` or `expired`; all when absent.
    #[serde(default)]
    pub status: Option<String>,
}

/// Query of `GET /v1/escalations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Long-poll: `<seconds>s`, 0 to 60 (default `0s`).
    #[serde(default)]
    pub wait: Option<String>,
}

/// Answer of `GET /v1/escalations`.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    /// The escalations, in id order.
    pub escalations: Vec<EscalationView>,
}

/// `GET /v1/escalations?status=pending`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let who = principal(&state, &headers)?;
    if who.role == Role::Agent {
        return Err(ApiError::Forbidden);
    }
    let status = query
        .status
        .as_deref()
        .map(Status::from_name)
        .transpose()
        .map_err(|e| ApiError::BadQuery {
            detail: e.to_string(),
        })?;
    let ctx = state.service();
    let mut escalations = Vec::new();
    for record in service::list(ctx, status).await? {
        escalations.push(service::view(ctx, record, true).await?);
    }
    Ok(Json(ListResponse { escalations }))
}

/// `GET /v1/escalations/{id}?wait=30s`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<Json<EscalationView>, ApiError> {
    let who = principal(&state, &headers)?;
    let wait = parse_wait(query.wait.as_deref())?;
    // Stay under the request timeout, which would answer 503 instead.
    let cap = Duration::from_millis(state.config.request_timeout_ms.saturating_sub(1_000));
    let ctx = state.service();
    // Authorize on the record before waiting on it.
    let record = service::get(ctx, &id).await?;
    let privileged = who.role != Role::Agent;
    if !privileged && record.agent != who.name {
        return Err(ApiError::Forbidden);
    }
    let record = if wait.is_zero() {
        record
    } else {
        service::wait(ctx, &id, wait.min(cap)).await?
    };
    Ok(Json(service::view(ctx, record, privileged).await?))
}

/// `POST /v1/escalations/{id}/approvals`.
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<Json<EscalationView>, ApiError> {
    answer(&state, &id, Verdict::Approve, body).await
}

/// `POST /v1/escalations/{id}/rejections`.
pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<Json<EscalationView>, ApiError> {
    answer(&state, &id, Verdict::Reject, body).await
}

async fn answer(
    state: &AppState,
    id: &str,
    verdict: Verdict,
    body: AnswerBody,
) -> Result<Json<EscalationView>, ApiError> {
    let ctx = state.service();
    let record = service::answer(ctx, id, verdict, body).await?;
    // The approver signed over the escalation; the action itself is for admin and auditor.
    Ok(Json(service::view(ctx, record, false).await?))
}

/// `<seconds>s` with 0 ≤ seconds ≤ 60.
fn parse_wait(text: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = text else {
        return Ok(Duration::ZERO);
    };
    let bad = || ApiError::BadQuery {
        detail: "wait must be <seconds>s, 0 to 60 (e.g. 30s)".to_owned(),
    };
    let digits = text.strip_suffix('s').ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = digits.parse().map_err(|_| bad())?;
    if secs > service::MAX_WAIT.as_secs() {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

/// The principal of the bearer token, whatever its role.
fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let to_api = |e: AuthError| match e {
        AuthError::Missing => ApiError::Unauthorized,
        AuthError::Expired => ApiError::TokenExpired,
        AuthError::WrongRole => ApiError::Forbidden,
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthorized)?;
    let now = SystemTime::now();
    for role in [Role::Agent, Role::Admin, Role::Auditor] {
        match state.tokens.authorize(token, role, now) {
            Ok(p) => return Ok(p),
            Err(AuthError::WrongRole) => {}
            Err(e) => return Err(to_api(e)),
        }
    }
    Err(ApiError::Forbidden)
}

/// The escalation paths of the OpenAPI document ([`crate::openapi`]).
pub fn openapi_paths() -> serde_json::Value {
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let escalation = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Escalation" } } } });
    let id_param = json!({
        "name": "id", "in": "path", "required": true,
        "description": "Escalation id, 32 lowercase hex digits (spec approval.md section 1).",
        "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" }
    });
    let answer = |verdict: &str| {
        json!({
            "summary": format!("Add a signed {verdict} (no bearer token: the Ed25519 signature of a policy approver key over the message of spec approval.md section 2 is the credential). A resolved escalation is answered as it is (single use)."),
            "security": [],
            "parameters": [id_param.clone()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EscalationAnswer" } } } },
            "responses": {
                "200": escalation("The escalation after the answer; with the final decision once resolved."),
                "400": err("Malformed body."),
                "404": err("No such escalation."),
                "413": err("Body over the configured limit."),
                "415": err("Wrong content type."),
                "403": err("approval_refused: the key id is not an approver key of the escalation's policy, or the signature does not verify; nothing changed."),
                "422": err("invalid_action: malformed key id or signature; nothing changed."),
                "503": err("Storage failing, backpressure or unavailable.")
            }
        })
    };
    json!({
        "/v1/escalations": { "get": {
            "summary": "Escalations with the canonical action and the rules involved (admin or auditor token); expired ones are resolved first.",
            "security": [{ "adminToken": [] }, { "auditorToken": [] }],
            "parameters": [{
                "name": "status", "in": "query", "required": false,
                "schema": { "type": "string", "enum": ["pending", "approved", "rejected", "expired"] }
            }],
            "responses": {
                "200": { "description": "Escalations in id order.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EscalationList" } } } },
                "400": err("Bad query."),
                "401": err("Missing, invalid or expired bearer token (error `unauthorized` or `token_expired`)."),
                "403": err("An agent token."),
                "503": err("Storage failing or unavailable.")
            }
        }},
        "/v1/escalations/{id}": { "get": {
            "summary": "Status of an escalation (the agent that raised it, admin or auditor); with wait, held until the final decision is logged or the time is up (bounded by 60 s and the request timeout).",
            "security": [{ "agentToken": [] }, { "adminToken": [] }, { "auditorToken": [] }],
            "parameters": [id_param.clone(), {
                "name": "wait", "in": "query", "required": false,
                "description": "Long-poll time, <seconds>s from 0s to 60s.",
                "schema": { "type": "string", "pattern": "^([0-9]|[0-5][0-9]|60)s$", "default": "0s" }
            }],
            "responses": {
                "200": escalation("The escalation; with the final decision and its proof bundle once resolved."),
                "400": err("Bad query."),
                "401": err("Missing, invalid or expired bearer token (error `unauthorized` or `token_expired`)."),
                "403": err("An agent token of another agent."),
                "404": err("No such escalation."),
                "503": err("Storage failing or unavailable.")
            }
        }},
        "/v1/escalations/{id}/approvals": { "post": answer("approval") },
        "/v1/escalations/{id}/rejections": { "post": answer("rejection") }
    })
}

/// The escalation schemas of the OpenAPI document ([`crate::openapi`]).
pub fn openapi_schemas() -> serde_json::Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "EscalationAnswer": { "type": "object", "required": ["key_id", "signature"], "additionalProperties": false, "properties": {
            "key_id": { "type": "string", "pattern": "^[0-9a-fA-F]{8}$", "description": "C2SP signed-note key id of the approver key." },
            "signature": { "type": "string", "pattern": "^[A-Za-z0-9+/]{85}[AQgw]==$", "contentEncoding": "base64", "description": "Ed25519 signature (64 bytes) over the message of spec approval.md section 2." }
        }},
        "EscalationList": { "type": "object", "required": ["escalations"], "properties": {
            "escalations": { "type": "array", "items": { "$ref": "#/components/schemas/Escalation" } }
        }},
        "Escalation": { "type": "object", "required": [
            "id", "request_id", "agent", "policy", "action_commitment", "escalate_index", "matched_variables",
            "undetermined_variables", "violated_rules", "violated_rule_ids", "approvals_needed",
            "eligible_approvers", "created_ms", "expires_ms", "status", "approvals", "final_decision",
            "final_index", "status_url"
        ], "properties": {
            "id": { "type": "string", "pattern": "^[0-9a-f]{32}$" },
            "request_id": { "type": "string" },
            "agent": { "type": "string" },
            "policy": { "type": "object", "properties": {
                "name": { "type": "string" }, "version": { "type": "string" }, "commitment": { "type": "string" }
            }},
            "action_commitment": { "type": "string" },
            "escalate_index": { "type": "integer", "minimum": 0 },
            "matched_variables": strings,
            "undetermined_variables": strings,
            "violated_rules": { "type": "array", "items": { "type": "integer" } },
            "violated_rule_ids": strings,
            "approvals_needed": { "type": ["integer", "null"], "minimum": 1 },
            "eligible_approvers": { "type": "array", "items": { "type": "object", "properties": {
                "name": { "type": "string" }, "key_id": { "type": "string" }
            }}},
            "created_ms": { "type": "integer" },
            "expires_ms": { "type": "integer" },
            "status": { "enum": ["pending", "approved", "rejected", "expired"] },
            "approvals": { "type": "array", "items": { "type": "object", "properties": {
                "key_id": { "type": "string" }, "name": { "type": "string" },
                "verdict": { "enum": ["approve", "reject"] },
                "signature": { "type": "string", "contentEncoding": "base64" }
            }}},
            "final_decision": { "type": ["string", "null"] },
            "final_index": { "type": ["integer", "null"] },
            "status_url": { "type": "string" },
            "decision": { "$ref": "#/components/schemas/Decision" },
            "canonical_action": { "type": "string", "description": "Admin and auditor only." },
            "rules": { "type": "array", "description": "Admin and auditor only.", "items": { "type": "object", "properties": {
                "id": { "type": "string" }, "text": { "type": "string" }, "effect": { "enum": ["deny", "escalate"] }
            }}}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_bounded() {
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("30s")).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_wait(Some("60s")).unwrap(), Duration::from_secs(60));
        for bad in ["61s", "30", "s", "-1s", "1.5s", "100s", "30S"] {
            assert!(parse_wait(Some(bad)).is_err(), "{bad}");
        }
    }
}
