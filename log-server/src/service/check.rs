//! The screen and check use cases (`POST /v1/screen`, `POST /v1/check`): the request path of
//! BRIEF.md "Data flow of one check".
//!
//! Check: resolve the policy → reserve the request id → screen → decide in the checker pool →
//! sign the receipt with the checker key → `Log::submit_for_proof(receipt, private record)`
//! (durably sequenced) → the sequencer hands over the inclusion proof and checkpoint once the
//! batch is integrated → answer with the decision and the proof bundle ([`super::decision`]).
//! `?wait=false` answers right after durable sequencing (202, decision and index, no proof).
//!
//! Out-of-scope actions: when screening finds that the action names none of the policy's
//! variables (`should_check == false`), both endpoints log a receipt of kind `screen` with decision
//! `not-applicable` and answer with it; an agent must treat it as "not allowed by this policy".
//! When screening finds the action in scope, `/v1/screen` logs a receipt of kind `screen` with
//! decision `in-scope` (with its private record, like a not-applicable one) and answers with it
//! plus `applicable: true`; the check that follows logs the decision. So the log holds every
//! screening decision (spec `receipt.md` §3, `evidence-package.md` §7).
//!
//! Request ids (1–64 bytes of visible ASCII; generated when absent) are remembered for a window
//! of recent requests: the same id with a different policy or action is 409; the same id and
//! action without approvals returns the logged decision again (idempotent replay, nothing new is
//! logged); the same id and action *with* approvals is a resubmission of an escalated action and is
//! checked and logged anew with the original salt (so the action commitment is unchanged), under
//! the policy version it was first decided under, even when the request names the policy and a
//! newer version was registered since.
//!
//! Salts: a client-supplied salt on a new request is mixed with 32 bytes of server randomness
//! ([`mix_client_salt`]); the answer carries the final salt.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use verdict_checker::{CheckError, CheckRequest, CompiledPolicy, Outcome};
use verdict_core::receipt::{Decision, Kind, Salt};

use super::action::{canonical_json, fingerprint_of};
use super::decision::{log_decision, log_prepared, replay, Logged};
use super::private::encode_record_approved;
use super::request_ids::Reservation;
use super::{log_error, Context, ServiceError};

/// Body of `POST /v1/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// Policy name (current version) or commitment (hex).
    pub policy: String,
    /// The proposed action: a JSON object of policy variables, kept as its raw bytes and parsed
    /// strictly by the checker ([`parse_action`]).
    pub action: Box<serde_json::value::RawValue>,
    /// Caller's request id (1–64 bytes of visible ASCII); generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Approvals of an escalated action (resubmission with the same request id).
    #[serde(default)]
    pub approvals: Vec<ApprovalBody>,
    /// Salt (64 hex digits) of the escalated decision being resubmitted. On a new request it is
    /// mixed with 32 bytes of server randomness (spec `receipt.md` §7); the answer's `salt` is
    /// the final one.
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
    /// The proposed action (raw bytes, parsed strictly by [`parse_action`]).
    pub action: Box<serde_json::value::RawValue>,
    /// Request id used for the not-applicable receipt; generated when absent.
    #[serde(default)]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Use cases.

/// What `POST /v1/screen` answers.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per screen request, moved once; boxing buys nothing"
)]
pub enum Screened {
    /// The action is in scope: an `in-scope` receipt was logged, a check must follow.
    InScope {
        /// The logged screen.
        logged: Box<Logged>,
        /// Action keys that are not policy variables.
        unknown_keys: Vec<String>,
    },
    /// The action is out of scope: a `not-applicable` receipt was logged.
    Logged(Box<Logged>),
}

/// Check an action for the agent named `agent` (recorded in the private record): resolve the policy, reserve the request id, screen, decide in the checker
/// pool, sign and log the receipt, and (with `wait`) wait for its proof.
///
/// # Errors
/// [`ServiceError`]: unknown policy, bad request id or salt, invalid action, request-id
/// conflict, backpressure, shutdown, internal failures.
pub async fn check(
    ctx: Context<'_>,
    agent: &str,
    body: CheckBody,
    wait: bool,
) -> Result<Logged, ServiceError> {
    let started = Instant::now();
    // The action is part of the body's format: malformed action text is 400 `bad_json` before
    // anything else is looked at.
    let action = parse_action(&body.action)?;
    let policy = resolve(ctx, &body.policy)?;
    let request_id = request_id(body.request_id)?;
    // Push back before deciding and signing when the log would refuse the entry anyway.
    ctx.log
        .check_capacity()
        .map_err(|e| log_error(ctx.metrics, e))?;
    let given_salt = body
        .salt
        .as_deref()
        .map(Salt::from_hex)
        .transpose()
        .map_err(|_| ServiceError::BadRequest {
            detail: "salt must be 64 hex digits".to_owned(),
        })?;
    require_object(&action)?;
    // Token values are never stored (spec/policy-language.md): the private record and the
    // request-id fingerprint (restored from private records at start) see the action with
    // token values reduced to their presence.
    let stored = super::action::redact_tokens(&policy, &action);
    let approvals = body.approvals;
    // A request id seen before (a replay, or an escalated request resubmitted with approvals)
    // after a new version of its policy was registered is answered under the version it was
    // first decided under (issue 11), not with a misleading 409 (issue 15).
    let policy = original_version(ctx, &request_id, policy, &stored)?;
    let fingerprint = fingerprint(&policy, &stored);
    let (mut guard, salt) =
        match ctx
            .request_ids
            .reserve(&request_id, fingerprint, !approvals.is_empty())?
        {
            Reservation::Replay(index, salt) => {
                let logged = replay(ctx, &policy, &request_id, &action, index, salt, wait).await?;
                return super::escalations::opened(ctx, agent, &stored, logged).await;
            }
            Reservation::Resubmit(salt) => {
                if given_salt.is_some_and(|g| g != salt) {
                    return Err(ServiceError::RequestIdConflict { request_id });
                }
                // Approvals are single use (issue 15): once the id's latest decision is final,
                // resubmitting approvals answers it again instead of logging another.
                if let Some(index) = super::escalations::settled(ctx, &request_id).await? {
                    return replay(ctx, &policy, &request_id, &action, index, salt, wait).await;
                }
                (None, Some(salt))
            }
            // A new decision never uses a client salt as it is: 32 bytes of server randomness
            // are mixed in (spec `receipt.md` §7), so a weak client salt (all zeros) cannot
            // make the action commitment guessable. The answer returns the final salt.
            Reservation::New(guard) => (Some(guard), given_salt.map(mix_client_salt)),
        };

    let screen_started = Instant::now();
    let screen = verdict_checker::screen(&policy, &action).map_err(check_error)?;
    ctx.metrics.screen.observe(screen_started.elapsed());

    // The approvals the checker verifies are kept in the private record (spec
    // `evidence-package.md` §5), so that an auditor verifies them offline.
    let recorded_approvals = approvals.clone();
    let (outcome, kind) = if screen.should_check {
        let check_started = Instant::now();
        let outcome = ctx
            .pool
            .check(
                Arc::clone(&policy),
                CheckRequest {
                    action,
                    request_id: request_id.clone(),
                    salt,
                    approvals,
                },
            )
            .await
            .map_err(check_error)?;
        ctx.metrics.check.observe(check_started.elapsed());
        (outcome, Kind::Check)
    } else {
        (
            screened(Decision::NotApplicable, &stored, &screen.matched, salt),
            Kind::Screen,
        )
    };
    let approved = if kind == Kind::Check {
        recorded_approvals.as_slice()
    } else {
        &[]
    };
    let private = encode_record_approved(&policy, &outcome, &request_id, agent, &stored, approved)?;
    let logged = log_prepared(
        ctx,
        &policy,
        &outcome,
        kind,
        &request_id,
        private,
        wait,
        started,
    )
    .await?;
    // A resubmission with approvals becomes the id's latest decision.
    ctx.request_ids
        .complete(&request_id, logged.index, outcome.salt);
    if let Some(g) = guard.as_mut() {
        g.completed = true;
    }
    // An escalate decision opens an escalation (spec `approval.md` §1).
    super::escalations::opened(ctx, agent, &stored, logged).await
}

/// Screen an action and log the screening decision as a receipt of kind `screen`: `in-scope`
/// (answered with `applicable: true` and the unknown keys) or `not-applicable`.
///
/// # Errors
/// As [`check`], without request-id conflicts.
pub async fn screen(
    ctx: Context<'_>,
    agent: &str,
    body: ScreenBody,
    wait: bool,
) -> Result<Screened, ServiceError> {
    let started = Instant::now();
    let action = parse_action(&body.action)?;
    let policy = resolve(ctx, &body.policy)?;
    let request_id = request_id(body.request_id)?;
    require_object(&action)?;
    let screen_started = Instant::now();
    let screen = verdict_checker::screen(&policy, &action).map_err(check_error)?;
    ctx.metrics.screen.observe(screen_started.elapsed());
    let stored = super::action::redact_tokens(&policy, &action);
    let decision = if screen.should_check {
        Decision::InScope
    } else {
        Decision::NotApplicable
    };
    let outcome = screened(decision, &stored, &screen.matched, None);
    let logged = log_decision(
        ctx,
        &policy,
        &outcome,
        Kind::Screen,
        &request_id,
        agent,
        &stored,
        wait,
        started,
    )
    .await?;
    if screen.should_check {
        return Ok(Screened::InScope {
            logged: Box::new(logged),
            unknown_keys: screen.unknown_keys,
        });
    }
    Ok(Screened::Logged(Box::new(logged)))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn resolve(ctx: Context<'_>, key: &str) -> Result<Arc<CompiledPolicy>, ServiceError> {
    ctx.policies
        .resolve(key)
        .ok_or_else(|| ServiceError::UnknownPolicy {
            policy: key.chars().take(80).collect(),
        })
}

fn request_id(given: Option<String>) -> Result<String, ServiceError> {
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
        Some(_) => Err(ServiceError::BadRequest {
            detail: "request_id must be 1 to 64 visible ASCII characters".to_owned(),
        }),
    }
}

/// For a resubmission: the registered version of `policy`'s name whose fingerprint the request
/// id was first used with, or `policy` itself when none matches (then the reservation decides:
/// a different action is 409). A shared window that cannot be read fails the request (503).
fn original_version(
    ctx: Context<'_>,
    request_id: &str,
    policy: Arc<CompiledPolicy>,
    action: &serde_json::Value,
) -> Result<Arc<CompiledPolicy>, ServiceError> {
    let Some(seen) = ctx.request_ids.fingerprint(request_id)? else {
        return Ok(policy);
    };
    if fingerprint(&policy, action) == seen {
        return Ok(policy);
    }
    Ok(ctx
        .policies
        .versions(policy.name())
        .into_iter()
        .flatten()
        .filter_map(|v| ctx.policies.resolve(&v.commitment))
        .find(|p| fingerprint(p, action) == seen)
        .unwrap_or(policy))
}

/// SHA-256 of the policy commitment and the action in canonical JSON (sorted keys).
fn fingerprint(policy: &CompiledPolicy, action: &serde_json::Value) -> [u8; 32] {
    fingerprint_of(&policy.commitment().0, action)
}

/// Domain separator of [`mix_client_salt`] (spec `receipt.md` §7).
pub const SALT_MIX_PREFIX: &[u8] = b"verdict/salt-mix/v1\n";

/// The salt of a new decision whose request carried a client salt:
/// `SHA-256("verdict/salt-mix/v1\n" ‖ server random (32 bytes) ‖ client salt (32 bytes))`.
/// The server randomness is fresh per decision and never published, so the result is as strong
/// as a fresh random salt whatever the client sent.
pub fn mix_client_salt(client: Salt) -> Salt {
    mix_salt(Salt::random(), client)
}

fn mix_salt(server: Salt, client: Salt) -> Salt {
    let mut h = Sha256::new();
    h.update(SALT_MIX_PREFIX);
    h.update(server.0);
    h.update(client.0);
    Salt(h.finalize().into())
}

/// An action is a JSON object (spec `decision-semantics.md` §3); anything else is 4xx.
fn require_object(action: &serde_json::Value) -> Result<(), ServiceError> {
    if action.is_object() {
        Ok(())
    } else {
        Err(ServiceError::InvalidAction {
            detail: "action must be a json object".to_owned(),
        })
    }
}

/// Parse the raw action text with the checker's strict parser (`spec/decision-semantics.md` §3:
/// 64 KiB on the raw bytes, duplicate keys rejected at any depth, every string at most 4096
/// bytes, `-0` read as 0). Text that is not acceptable JSON (syntax, a duplicate key, nesting
/// beyond what the body parser reads) is 400 `bad_json`, as for the rest of the body; JSON
/// nested deeper than an action can be (its values are scalars), an oversize action or string
/// is 422 `invalid_action`. Nothing is reserved, decided or logged.
fn parse_action(raw: &serde_json::value::RawValue) -> Result<serde_json::Value, ServiceError> {
    let text = raw.get();
    verdict_checker::action::parse_json(text.as_bytes()).map_err(|e| match e {
        // Nesting the body parser reads (serde_json's limit of 128) is well-formed JSON that
        // is not an action; deeper text is not JSON this server reads at all.
        CheckError::Malformed { reason }
            if reason.starts_with("nested deeper than")
                && serde_json::from_str::<serde_json::Value>(text).is_ok() =>
        {
            ServiceError::InvalidAction {
                detail: format!("action values must be scalars ({reason})"),
            }
        }
        CheckError::Malformed { reason } => ServiceError::BadJson {
            detail: format!("action: {reason}"),
        },
        other => check_error(other),
    })
}

/// A checker error as the client sees it: the action's fault is 422 `invalid_action` (no
/// value from the action is echoed beyond what the checker's message names); an internal
/// failure (receipt signing, policy key, encoding) is 500 `internal`, never blamed on the
/// client; a missing pool is 503.
fn check_error(e: CheckError) -> ServiceError {
    match e {
        CheckError::PoolUnavailable => ServiceError::Unavailable {
            reason: "checker pool unavailable",
        },
        CheckError::Receipt(_) | CheckError::PolicyKey { .. } | CheckError::Encoding(_) => {
            ServiceError::internal(e)
        }
        other => ServiceError::InvalidAction {
            detail: other.to_string(),
        },
    }
}

/// The outcome of a screen: `not-applicable` (out of scope) or `in-scope`, nothing violated;
/// the action commitment covers the canonical JSON of the stored action (token values `true`).
fn screened(
    decision: Decision,
    action: &serde_json::Value,
    matched: &[String],
    salt: Option<Salt>,
) -> Outcome {
    let salt = salt.unwrap_or_else(Salt::random);
    let canonical_action = canonical_json(action).into_bytes();
    Outcome {
        decision,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_salts_are_mixed_with_server_randomness() {
        let zero = Salt([0; 32]);
        let a = mix_client_salt(zero);
        assert_ne!(a, zero);
        assert_ne!(
            a,
            mix_client_salt(zero),
            "fresh server randomness each time"
        );
        assert_eq!(mix_salt(Salt([1; 32]), zero), mix_salt(Salt([1; 32]), zero));
        assert_ne!(mix_salt(Salt([1; 32]), zero), mix_salt(Salt([2; 32]), zero));
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
