//! The auditor endpoints (auditor token only); only these read the private store:
//! - `GET /v1/private/actions/{index}`: the action (token values reduced to their presence),
//!   salt, request id and agent of a logged decision;
//! - `GET /v1/private/policies/{commitment}`: the text and salt of a registered policy, so that
//!   the commitment can be recomputed (`verdict-policy lint --salt`, spec
//!   `policy-statement.md` §9);
//! - `GET /v1/private/disclosure/{index}?rule=i` (auditor, or the agent that asked for the
//!   decision): one violated rule opened against the policy statement's rule-tree root (spec
//!   `disclosure.md` §5).

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use verdict_core::LeafIndex;

use crate::auth::{AuditorAuth, AuditorOrAgentAuth, Role};
use crate::error::ApiError;
use crate::error::ApiQuery;
use crate::routes::parse_index;
use crate::service::policies::VersionInfo;
use crate::service::private;
use crate::AppState;

/// `GET /v1/private/actions/{index}`: `{index, record}` where `record` is the private record
/// stored with the entry: `{action, agent, canonical_action, policy, request_id, salt}`.
pub async fn action(
    _auth: AuditorAuth,
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let index = parse_index(&index)?;
    let record = private::record(&state.log, &state.policies, LeafIndex(index))?;
    Ok(Json(
        serde_json::json!({ "index": index, "record": record }),
    ))
}

/// Answer of `GET /v1/private/policies/{commitment}`.
#[derive(Debug, Serialize)]
pub struct PolicyOpening {
    /// The registration.
    pub policy: VersionInfo,
    /// The policy text as registered.
    pub source: String,
    /// The policy salt (hex): `commit("policy", salt, canonical policy)` is the commitment.
    pub salt: String,
    /// The canonical policy: exactly the committed bytes (UTF-8 JSON; spec
    /// `policy-statement.md` §9), so that a verifier without the checker opens the commitment
    /// (spec `evidence-package.md` §6).
    pub canonical: String,
}

/// `GET /v1/private/policies/{commitment}`.
pub async fn policy(
    _auth: AuditorAuth,
    State(state): State<AppState>,
    Path(commitment): Path<String>,
) -> Result<Json<PolicyOpening>, ApiError> {
    if commitment.len() != 64 || !commitment.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest {
            detail: "commitment must be 64 hex digits".to_owned(),
        });
    }
    let registered = state
        .policies
        .registration(&commitment.to_ascii_lowercase())
        .ok_or_else(|| ApiError::NotFound {
            what: "policy commitment".to_owned(),
        })?;
    Ok(Json(PolicyOpening {
        policy: registered.info.clone(),
        source: registered.source.clone(),
        salt: state.policies.salt().to_hex(),
        canonical: String::from_utf8_lossy(registered.policy.canonical()).into_owned(),
    }))
}

/// Query of `GET /v1/private/disclosure/{index}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureQuery {
    /// Index of the rule (policy order), as receipts list it in `violated_rules`.
    pub rule: u32,
}

/// `GET /v1/private/disclosure/{index}?rule=i`: the disclosure document of spec `disclosure.md`
/// §2. An agent token may only read a decision it asked for (403 otherwise, also for records
/// without an agent name).
pub async fn disclosure(
    AuditorOrAgentAuth(who): AuditorOrAgentAuth,
    State(state): State<AppState>,
    Path(index): Path<String>,
    ApiQuery(query): ApiQuery<DisclosureQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let index = parse_index(&index)?;
    let (disclosure, agent) =
        private::disclosure(&state.log, &state.policies, LeafIndex(index), query.rule)?;
    if who.role == Role::Agent && agent.as_deref() != Some(who.name.as_str()) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(disclosure.to_json()))
}

/// OpenAPI path of the disclosure endpoint (merged into `openapi.rs`).
pub fn openapi_paths() -> serde_json::Value {
    let err = |d: &str| serde_json::json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    serde_json::json!({
        "/v1/private/disclosure/{index}": { "get": {
            "summary": "Selective rule disclosure (spec disclosure.md): one rule the decision at this index violated, its text, salt and Merkle path to the policy statement's rule-tree root, with the receipt and the statement. Auditor token, or the agent token that asked for the decision.",
            "security": [{ "auditorToken": [] }, { "agentToken": [] }],
            "parameters": [
                { "name": "index", "in": "path", "required": true, "description": "Leaf index of the decision.", "schema": { "type": "integer", "format": "uint64", "minimum": 0, "maximum": u64::MAX } },
                { "name": "rule", "in": "query", "required": true, "description": "Rule index (policy order), as the receipt lists it in violated_rules.", "schema": { "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX } }
            ],
            "responses": {
                "200": { "description": "The disclosure document.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RuleDisclosure" } } } },
                "400": err("Bad index or rule, or another query parameter."),
                "401": err("Missing, invalid or expired token (error `unauthorized` or `token_expired`)."),
                "403": err("Not the auditor token, nor the agent token that asked for this decision."),
                "404": err("No decision at this index, or the decision did not violate this rule (only a violated rule is disclosed).")
            }
        }}
    })
}

/// OpenAPI schema of the disclosure document (spec `disclosure.md` §2).
pub fn openapi_schemas() -> serde_json::Value {
    let hex32 = serde_json::json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    let u64s = serde_json::json!({ "type": "integer", "format": "uint64", "minimum": 0, "maximum": u64::MAX });
    let u32s = serde_json::json!({ "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX });
    let b64 = serde_json::json!({ "type": "string", "contentEncoding": "base64" });
    serde_json::json!({
        "RuleDisclosure": { "type": "object", "additionalProperties": false,
            "required": ["version", "decision_index", "receipt", "statement_index", "statement", "rule"],
            "properties": {
                "version": { "type": "integer", "enum": [1] },
                "decision_index": u64s,
                "receipt": b64,
                "statement_index": u64s,
                "statement": b64,
                "rule": { "type": "object", "additionalProperties": false,
                    "required": ["index", "count", "text", "salt", "path"],
                    "properties": {
                        "index": u32s,
                        "count": u32s,
                        "text": { "type": "string", "description": "Canonical rule JSON, exactly the committed bytes." },
                        "salt": hex32,
                        "path": { "type": "array", "maxItems": 32, "items": hex32 }
                    }
                }
            }
        }
    })
}
