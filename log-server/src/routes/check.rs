//! `POST /v1/screen` and `POST /v1/check` (write token): the request path of BRIEF.md "Data flow
//! of one check".
//!
//! Check: resolve the policy → reserve the request id → screen → decide in the checker pool →
//! sign the receipt with the checker key → `Log::submit(receipt, private record)` (durably
//! sequenced) → `Log::wait_integrated` → answer with the decision and the proof bundle.
//! `?wait=false` answers right after durable sequencing (202, decision and index, no proof).
//!
//! Out-of-scope actions: when screening finds that the action names none of the policy's
//! variables (`should_check == false`), both endpoints log a receipt of kind `screen` with decision
//! `not-applicable` and answer with it; an agent must treat it as "not allowed by this policy".
//! When screening finds the action in scope, `/v1/screen` answers `applicable: true` and logs
//! nothing (the check that follows logs the decision).
//!
//! Request ids (1–64 bytes of visible ASCII; generated when absent) are remembered for a window
//! of recent requests: the same id with a different policy or action is 409; the same id and
//! action without approvals returns the logged decision again (idempotent replay, nothing new is
//! logged); the same id and action *with* approvals is a resubmission of an escalated action and is
//! checked and logged anew with the original salt (so the action commitment is unchanged).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use verdict_checker::{CheckError, CheckRequest, CompiledPolicy, Outcome};
use verdict_core::bundle::ProofBundle;
use verdict_core::receipt::{Decision, Kind, Receipt, Salt, Statement};
use verdict_core::LeafIndex;

use crate::auth::WriteAuth;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::log::LogError;
use crate::routes::public::checkpoint_size;
use crate::routes::request_ids::Reservation;
use crate::AppState;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Body of `POST /v1/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// Policy name (current version) or commitment (hex).
    pub policy: String,
    /// The proposed action: a JSON object of policy variables.
    pub action: serde_json::Value,
    /// Caller's request id (1–64 bytes of visible ASCII); generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Approvals of an escalated action (resubmission with the same request id).
    #[serde(default)]
    pub approvals: Vec<ApprovalBody>,
    /// Salt (64 hex digits) of the escalated decision being resubmitted.
    #[serde(default)]
    pub salt: Option<String>,
}

/// One approval: approver name or key id, and a base64 Ed25519 signature over
/// `"verdict-approval/v1\n" ‖ action_commitment ‖ request_id` (checker `approval.rs`).
pub type ApprovalBody = verdict_checker::approval::Approval;

/// Body of `POST /v1/screen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenBody {
    /// Policy name or commitment.
    pub policy: String,
    /// The proposed action.
    pub action: serde_json::Value,
    /// Request id used for the not-applicable receipt; generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Query of the write endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait for integration and return the proof bundle (default `true`).
    #[serde(default = "default_wait")]
    pub wait: bool,
}

fn default_wait() -> bool {
    true
}

/// The policy a decision was made under.
#[derive(Debug, Serialize)]
pub struct PolicyRef {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Commitment (hex).
    pub commitment: String,
}

/// A logged decision, with its proof once integrated.
#[derive(Debug, Serialize)]
pub struct DecisionResponse {
    /// `allow`, `deny`, `escalate` or `not-applicable`.
    pub decision: &'static str,
    /// `check` or `screen`.
    pub kind: &'static str,
    /// True when the decision is a fail-closed deny.
    pub fail_closed: bool,
    /// Request id.
    pub request_id: String,
    /// The policy.
    pub policy: PolicyRef,
    /// Indices of violated rules.
    pub violated_rules: Vec<u32>,
    /// Ids of violated rules.
    pub violated_rule_ids: Vec<String>,
    /// Policy variables the action names.
    pub matched_variables: Vec<String>,
    /// For escalate: unbound variables that decide the outcome.
    pub undetermined_variables: Vec<String>,
    /// Key ids of verified approvers.
    pub approvers: Vec<String>,
    /// Action commitment (hex): what approvers sign, with the request id.
    pub action_commitment: String,
    /// Salt of the action commitment (hex); keep it to resubmit with approvals.
    pub salt: String,
    /// The canonical action the commitment covers (sorted keys, no whitespace, token values
    /// replaced by `true`): with `salt` it proves which action a receipt is about
    /// (`verdict verify --action FILE --salt HEX`).
    pub canonical_action: String,
    /// Decision time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Leaf index of the receipt in the log.
    pub index: u64,
    /// The receipt (COSE_Sign1), base64.
    pub receipt: String,
    /// Whether the entry is in a signed checkpoint (false for `?wait=false`).
    pub integrated: bool,
    /// The proof, once integrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofPart>,
}

/// The proof part of a decision.
#[derive(Debug, Serialize)]
pub struct ProofPart {
    /// Size of the checkpoint the proof is against.
    pub tree_size: u64,
    /// Inclusion proof hashes, base64.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The C2SP tlog-proof text (receipt in the `extra` line): save it and run `verdict verify`.
    pub bundle: String,
}

/// Answer of `POST /v1/screen` for an in-scope action.
#[derive(Debug, Serialize)]
pub struct ScreenResponse {
    /// True: the action is in the policy's scope and needs a check.
    pub applicable: bool,
    /// Policy variables the action names.
    pub matched_variables: Vec<String>,
    /// Action keys that are not policy variables.
    pub unknown_keys: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// `POST /v1/check`.
pub async fn check(
    _auth: WriteAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let policy = resolve(&state, &body.policy)?;
    let request_id = request_id(body.request_id)?;
    let given_salt = body
        .salt
        .as_deref()
        .map(Salt::from_hex)
        .transpose()
        .map_err(|_| ApiError::BadRequest {
            detail: "salt must be 64 hex digits".to_owned(),
        })?;
    if !body.action.is_object() {
        return Err(ApiError::InvalidAction {
            detail: "action must be a json object".to_owned(),
        });
    }
    let approvals = body.approvals;
    let fingerprint = fingerprint(&policy, &body.action);
    let (mut guard, salt) =
        match state
            .request_ids
            .reserve(&state, &request_id, fingerprint, !approvals.is_empty())?
        {
            Reservation::Replay(index, salt) => {
                return replay(&state, &policy, &body.action, index, salt, query.wait).await;
            }
            Reservation::Resubmit(salt) => {
                if given_salt.is_some_and(|g| g != salt) {
                    return Err(ApiError::RequestIdConflict { request_id });
                }
                (None, Some(salt))
            }
            Reservation::New(guard) => (Some(guard), given_salt),
        };

    let screen_started = Instant::now();
    let screen = verdict_checker::screen(&policy, &body.action).map_err(check_error)?;
    state.metrics.screen.observe(screen_started.elapsed());

    let (outcome, kind) = if screen.should_check {
        let check_started = Instant::now();
        let outcome = state
            .pool
            .check(
                Arc::clone(&policy),
                CheckRequest {
                    action: body.action.clone(),
                    request_id: request_id.clone(),
                    salt,
                    approvals,
                },
            )
            .await
            .map_err(check_error)?;
        state.metrics.check.observe(check_started.elapsed());
        (outcome, Kind::Check)
    } else {
        (
            not_applicable(&policy, &body.action, &screen.matched, salt),
            Kind::Screen,
        )
    };
    let response = log_decision(
        &state,
        &policy,
        &outcome,
        kind,
        &request_id,
        &body.action,
        query.wait,
        started,
    )
    .await?;
    if let Some(index) = response.1 {
        // A resubmission with approvals becomes the id's latest decision.
        state.request_ids.complete(&request_id, index, outcome.salt);
        if let Some(g) = guard.as_mut() {
            g.completed = true;
        }
    }
    Ok(response.0)
}

/// `POST /v1/screen`.
pub async fn screen(
    _auth: WriteAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<ScreenBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let policy = resolve(&state, &body.policy)?;
    let request_id = request_id(body.request_id)?;
    if !body.action.is_object() {
        return Err(ApiError::InvalidAction {
            detail: "action must be a json object".to_owned(),
        });
    }
    let screen_started = Instant::now();
    let screen = verdict_checker::screen(&policy, &body.action).map_err(check_error)?;
    state.metrics.screen.observe(screen_started.elapsed());
    if screen.should_check {
        return Ok(Json(ScreenResponse {
            applicable: true,
            matched_variables: screen.matched,
            unknown_keys: screen.unknown_keys,
        })
        .into_response());
    }
    let outcome = not_applicable(&policy, &body.action, &screen.matched, None);
    let (response, _) = log_decision(
        &state,
        &policy,
        &outcome,
        Kind::Screen,
        &request_id,
        &body.action,
        query.wait,
        started,
    )
    .await?;
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn resolve(state: &AppState, key: &str) -> Result<Arc<CompiledPolicy>, ApiError> {
    state
        .policies
        .resolve(key)
        .ok_or_else(|| ApiError::UnknownPolicy {
            policy: key.chars().take(80).collect(),
        })
}

fn request_id(given: Option<String>) -> Result<String, ApiError> {
    match given {
        None => Ok(crate::keys::random_hex32()
            .get(..32)
            .unwrap_or_default()
            .to_owned()),
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(id)
        }
        Some(_) => Err(ApiError::BadRequest {
            detail: "request_id must be 1 to 64 visible ASCII characters".to_owned(),
        }),
    }
}

/// SHA-256 of the policy commitment and the action in canonical JSON (sorted keys).
fn fingerprint(policy: &CompiledPolicy, action: &serde_json::Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(policy.commitment().0);
    h.update(canonical_json(action).as_bytes());
    h.finalize().into()
}

/// Canonical JSON: object keys sorted, no whitespace (independent of serde_json features).
pub fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    let v = map.get(k).map_or_else(|| "null".to_owned(), canonical_json);
                    format!("{}:{v}", serde_json::Value::String(k.clone()))
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn check_error(e: CheckError) -> ApiError {
    match e {
        CheckError::PoolUnavailable => ApiError::Unavailable {
            reason: "checker pool unavailable",
        },
        CheckError::Receipt(_) | CheckError::PolicyKey { .. } => ApiError::internal(e),
        other => ApiError::InvalidAction {
            detail: other.to_string(),
        },
    }
}

fn log_error(state: &AppState, e: LogError) -> ApiError {
    match e {
        LogError::Backpressure { retry_after, .. } => {
            state.metrics.pushback();
            ApiError::Backpressure {
                retry_after_secs: retry_after.as_secs().max(1),
            }
        }
        LogError::ShuttingDown => ApiError::Unavailable {
            reason: "shutting down",
        },
        other => ApiError::internal(other),
    }
}

/// The outcome of an out-of-scope action: decision `not-applicable`, nothing violated.
fn not_applicable(
    policy: &CompiledPolicy,
    action: &serde_json::Value,
    matched: &[String],
    salt: Option<Salt>,
) -> Outcome {
    let salt = salt.unwrap_or_else(Salt::random);
    let canonical_action = canonical_json(action).into_bytes();
    let _ = policy;
    Outcome {
        decision: Decision::NotApplicable,
        fail_closed: false,
        violated: Vec::new(),
        violated_ids: Vec::new(),
        undetermined: Vec::new(),
        matched: matched.to_vec(),
        approvers: Vec::new(),
        action_commitment: verdict_core::receipt::commit(
            verdict_core::receipt::CommitmentTag::Action,
            &salt,
            &canonical_action,
        ),
        salt,
        canonical_action,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sign, sequence, (optionally) wait, and build the answer. Returns the index once sequenced.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per endpoint; all parts needed"
)]
async fn log_decision(
    state: &AppState,
    policy: &CompiledPolicy,
    outcome: &Outcome,
    kind: Kind,
    request_id: &str,
    action: &serde_json::Value,
    wait: bool,
    started: Instant,
) -> Result<(Response, Option<LeafIndex>), ApiError> {
    let receipt = verdict_checker::issue_receipt(
        outcome,
        kind,
        policy,
        request_id,
        now_ms(),
        &state.checker_key,
    )
    .map_err(ApiError::internal)?;
    let private = serde_json::json!({
        "action": action,
        "salt": outcome.salt.to_hex(),
        "canonical_action": String::from_utf8_lossy(&outcome.canonical_action),
        "request_id": request_id,
        "policy": policy.commitment().to_hex(),
    });
    let private = serde_json::to_vec(&private).map_err(ApiError::internal)?;
    let submitted = Instant::now();
    let index = state
        .log
        .submit(receipt.clone(), Some(private))
        .await
        .map_err(|e| log_error(state, e))?;
    let statement = Receipt::decode(&receipt)
        .map_err(ApiError::internal)?
        .statement;
    state.metrics.decision(
        policy.name(),
        decision_name(statement.decision),
        kind_name(kind),
    );
    tracing::debug!(
        leaf.index = index.0,
        request_id,
        "sequenced decision {} at {}",
        decision_name(statement.decision),
        index.0
    );
    if !wait {
        let body = decision_body(
            policy,
            &statement,
            &receipt,
            outcome.salt,
            &outcome.canonical_action,
            index,
            None,
        );
        return Ok((
            (StatusCode::ACCEPTED, Json(body)).into_response(),
            Some(index),
        ));
    }
    let checkpoint = state
        .log
        .wait_integrated(index)
        .await
        .map_err(|e| log_error(state, e))?;
    state.metrics.integration.observe(submitted.elapsed());
    let size = checkpoint_size(&checkpoint);
    let proof = state
        .log
        .inclusion_proof(index, verdict_core::TreeSize(size))
        .map_err(ApiError::internal)?;
    let bundle = ProofBundle {
        extra: Some(receipt.clone()),
        index,
        proof: proof.clone(),
        checkpoint: checkpoint.note.clone(),
    };
    let part = ProofPart {
        tree_size: size,
        inclusion_proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint: String::from_utf8_lossy(&checkpoint.note).into_owned(),
        bundle: String::from_utf8_lossy(&bundle.encode()).into_owned(),
    };
    state.metrics.check_to_proof.observe(started.elapsed());
    let body = decision_body(
        policy,
        &statement,
        &receipt,
        outcome.salt,
        &outcome.canonical_action,
        index,
        Some(part),
    );
    Ok((Json(body).into_response(), Some(index)))
}

/// Answer a replayed request id with the entry logged for it.
async fn replay(
    state: &AppState,
    policy: &CompiledPolicy,
    action: &serde_json::Value,
    index: LeafIndex,
    salt: Salt,
    wait: bool,
) -> Result<Response, ApiError> {
    let checkpoint = if wait {
        Some(
            state
                .log
                .wait_integrated(index)
                .await
                .map_err(|e| log_error(state, e))?,
        )
    } else {
        None
    };
    let receipt = state
        .log
        .entry(index)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("replayed entry {index} missing")))?;
    let statement = Receipt::decode(&receipt)
        .map_err(ApiError::internal)?
        .statement;
    let part = match checkpoint {
        Some(cp) => {
            let bundle = state.log.bundle(index).map_err(ApiError::internal)?;
            Some(ProofPart {
                tree_size: bundle_size(&bundle).max(checkpoint_size(&cp)),
                inclusion_proof: bundle.proof.iter().map(|h| h.to_base64()).collect(),
                checkpoint: String::from_utf8_lossy(&bundle.checkpoint).into_owned(),
                bundle: String::from_utf8_lossy(&bundle.encode()).into_owned(),
            })
        }
        None => None,
    };
    // Same fingerprint, so the same action: recompute its canonical form.
    let canonical = verdict_checker::Action::from_value(policy.ast(), action)
        .map_or_else(|_| canonical_json(action).into_bytes(), |a| a.canonical());
    let body = decision_body(policy, &statement, &receipt, salt, &canonical, index, part);
    Ok(Json(body).into_response())
}

fn bundle_size(bundle: &ProofBundle) -> u64 {
    std::str::from_utf8(&bundle.checkpoint)
        .ok()
        .and_then(|t| t.lines().nth(1))
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

fn decision_body(
    policy: &CompiledPolicy,
    statement: &Statement,
    receipt: &[u8],
    salt: Salt,
    canonical_action: &[u8],
    index: LeafIndex,
    proof: Option<ProofPart>,
) -> DecisionResponse {
    let rule_ids = statement
        .violated_rules
        .iter()
        .map(|i| {
            usize::try_from(*i)
                .ok()
                .and_then(|i| policy.ast().rules.get(i))
                .map_or_else(String::new, |r| r.id.clone())
        })
        .collect();
    DecisionResponse {
        decision: decision_name(statement.decision),
        kind: kind_name(statement.kind),
        fail_closed: statement.fail_closed,
        request_id: statement.request_id.clone(),
        policy: PolicyRef {
            name: policy.name().to_owned(),
            version: statement.policy_version.clone(),
            commitment: statement.policy_commitment.to_hex(),
        },
        violated_rules: statement.violated_rules.clone(),
        violated_rule_ids: rule_ids,
        matched_variables: statement.matched_variables.clone(),
        undetermined_variables: statement.undetermined_variables.clone(),
        approvers: statement
            .approvers
            .iter()
            .map(ToString::to_string)
            .collect(),
        action_commitment: statement.action_commitment.to_hex(),
        salt: salt.to_hex(),
        canonical_action: String::from_utf8_lossy(canonical_action).into_owned(),
        time_ms: statement.time_ms,
        index: index.0,
        receipt: B64.encode(receipt),
        integrated: proof.is_some(),
        proof,
    }
}

/// Wire name of a decision.
pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::Escalate => "escalate",
        Decision::NotApplicable => "not-applicable",
    }
}

/// Wire name of a kind.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Screen => "screen",
        Kind::Check => "check",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": [ {"z": 1, "a": "x\"y"} ], "a": true, "c": null }"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":true,"b":[{"a":"x\"y","z":1}],"c":null}"#
        );
    }

    #[test]
    fn request_ids_are_validated() {
        assert!(request_id(Some("req-1".into())).is_ok());
        assert_eq!(request_id(None).unwrap().len(), 32);
        assert!(request_id(Some(String::new())).is_err());
        assert!(request_id(Some("a b".into())).is_err());
        assert!(request_id(Some("é".into())).is_err());
        assert!(request_id(Some("r".repeat(65))).is_err());
        assert!(request_id(Some("r".repeat(64))).is_ok());
    }
}
