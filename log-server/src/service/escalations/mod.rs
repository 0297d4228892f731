//! Escalations that people resolve (issue 15; spec `spec/approval.md`).
//!
//! An `escalate` decision of `POST /v1/check` opens an escalation record ([`opened`]), stored
//! through [`crate::storage::Storage::swap_escalation`] (compare-and-swap, durable on return).
//! Approvers answer it with signed approvals or rejections ([`answer`], message in
//! [`verdict_core::approval`]). Once the approvals make the checker decide something other than
//! `escalate` under the record's original policy commitment, or on a rejection, or at the expiry,
//! the record leaves `pending` and exactly one final decision is logged ([`finish`]), with the
//! signatures in its private record (spec `approval.md` §5). Expiry is lazy and deterministic:
//! every read or write of a record first expires it when its time has come ([`current`]).
//!
//! Single use: a record that has left `pending` never changes again, so the same approvals
//! answered twice, also after a restart, find the one final decision.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use verdict_checker::{CheckError, CheckRequest, CompiledPolicy};
use verdict_core::approval::{
    parse_escalation_id, ApprovalError, ApprovalMessage, SignedApproval, Verdict, ESCALATION_ID_LEN,
};
use verdict_core::note::KeyId;
use verdict_core::receipt::{Decision, Salt};
use verdict_core::{Hash, LeafIndex};

use super::decision::{now_ms, replay, Logged};
use super::private::PrivateRecord;
use super::{Context, ServiceError};

/// Domain separator of escalation ids (spec `approval.md` §1).
pub const ID_PREFIX: &[u8] = b"verdict/escalation-id/v1\n";
/// Longest long-poll (`?wait=`) of `GET /v1/escalations/{id}`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most approvers tried when computing `approvals_needed`.
const MAX_NEEDED_PROBE: usize = 16;
/// Compare-and-swap attempts before giving up on a record that keeps changing.
const MAX_SWAP_ATTEMPTS: usize = 32;

/// How long a claim on logging a final decision holds ([`Finishing`]): far beyond deciding
/// (the checker timeout) and logging with its proof (integration, across a takeover).
const FINISH_LEASE: Duration = Duration::from_secs(60);
/// How often a waiter re-reads a record whose final decision another server is logging.
const FINISH_POLL: Duration = Duration::from_millis(25);

/// The server's escalation state: lifetime, waiters and resolutions in flight.
#[derive(Debug)]
pub struct Escalations {
    ttl: Duration,
    changed: tokio::sync::Notify,
    finishing: Mutex<HashSet<String>>,
    /// This process in [`Finishing::by`] (random per start).
    instance: String,
}

impl Escalations {
    /// Escalations that expire `ttl` after they are opened (config `escalation_ttl_s`).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            changed: tokio::sync::Notify::new(),
            finishing: Mutex::new(HashSet::new()),
            instance: crate::keys::random_hex32().chars().take(32).collect(),
        }
    }
}

mod record;
mod resolve;

pub use record::{
    escalation_id, status_url, ApprovalEntry, ApproverRef, EscalationView, Finishing, PolicyInfo,
    Record, RuleView, Status,
};
use resolve::{approving, current, finish};

// ---------------------------------------------------------------------------------------------
// Opening.

/// For an `escalate` decision of kind `check` (new or replayed): make sure its escalation record
/// exists and put its id and status URL in the answer. Other decisions pass through. `action`
/// is the stored form (token values as their presence), the one its private record keeps.
///
/// # Errors
/// Storage errors; a checker failure while computing `approvals_needed` is not an error (the
/// field is then `null`).
pub(crate) async fn opened(
    ctx: Context<'_>,
    agent: &str,
    action: &serde_json::Value,
    mut logged: Logged,
) -> Result<Logged, ServiceError> {
    if logged.body.decision != "escalate" || logged.body.kind != "check" {
        return Ok(logged);
    }
    let body = &logged.body;
    let action_commitment = hash_of(&body.action_commitment)?;
    let id = escalation_id(logged.index, &action_commitment);
    let id_hex = hex::encode(id);
    if load(ctx, &id)?.is_none() {
        let policy = policy_of(ctx, &body.policy.commitment)?;
        let salt = Salt::from_hex(&body.salt).map_err(ServiceError::internal)?;
        let needed = approvals_needed(ctx, &policy, action, &body.request_id, salt).await;
        let created_ms = now_ms();
        let ttl_ms = u64::try_from(ctx.escalations.ttl.as_millis()).unwrap_or(u64::MAX);
        let record = Record {
            id: id_hex.clone(),
            request_id: body.request_id.clone(),
            agent: agent.to_owned(),
            policy: PolicyInfo {
                name: body.policy.name.clone(),
                version: body.policy.version.clone(),
                commitment: body.policy.commitment.clone(),
            },
            action_commitment: body.action_commitment.clone(),
            escalate_index: logged.index.0,
            matched_variables: body.matched_variables.clone(),
            undetermined_variables: body.undetermined_variables.clone(),
            violated_rules: body.violated_rules.clone(),
            violated_rule_ids: body.violated_rule_ids.clone(),
            approvals_needed: needed,
            eligible_approvers: policy
                .approvers()
                .iter()
                .map(|v| ApproverRef {
                    name: v.name().to_owned(),
                    key_id: v.key_id().to_string(),
                })
                .collect(),
            created_ms,
            expires_ms: created_ms.saturating_add(ttl_ms),
            status: Status::Pending,
            approvals: Vec::new(),
            final_decision: None,
            final_index: None,
            finishing: None,
        };
        // A concurrent replay may have created it first: either record is the same escalation.
        if swap(ctx, &id, None, &record)? {
            tracing::info!(
                escalation.id = %id_hex,
                leaf.index = logged.index.0,
                "escalation {id_hex} opened for entry {}",
                logged.index.0
            );
        }
    }
    logged.body.status_url = Some(status_url(&id_hex));
    logged.body.escalation_id = Some(id_hex);
    Ok(logged)
}

/// The least number of the policy's approvers (first ones, at most [`MAX_NEEDED_PROBE`]) with
/// which the action is allowed; `None` when none is.
async fn approvals_needed(
    ctx: Context<'_>,
    policy: &Arc<CompiledPolicy>,
    action: &serde_json::Value,
    request_id: &str,
    salt: Salt,
) -> Option<u32> {
    let keys: Vec<KeyId> = policy.approvers().iter().map(|v| v.key_id()).collect();
    for n in 1..=keys.len().min(MAX_NEEDED_PROBE) {
        let ids = keys.iter().take(n).copied().collect();
        let outcome = ctx
            .pool
            .check_approved(
                Arc::clone(policy),
                request(policy, action, request_id, salt),
                ids,
            )
            .await
            .ok()?;
        if outcome.decision == Decision::Allow {
            return u32::try_from(n).ok();
        }
    }
    None
}

/// The check request that decides an escalated action again, from its stored form (token values
/// kept as their presence: [`super::action::decidable`]).
fn request(
    policy: &CompiledPolicy,
    stored: &serde_json::Value,
    request_id: &str,
    salt: Salt,
) -> CheckRequest {
    CheckRequest {
        action: super::action::decidable(policy, stored),
        request_id: request_id.to_owned(),
        salt: Some(salt),
        approvals: Vec::new(),
    }
}

/// For a resubmission with (legacy) approvals: the latest entry logged for `request_id` when its
/// decision is final (not `escalate`), so that the same approvals never log a second decision.
///
/// # Errors
/// Log errors waiting for the entry or reading it.
pub(crate) async fn settled(
    ctx: Context<'_>,
    request_id: &str,
) -> Result<Option<LeafIndex>, ServiceError> {
    let Some(index) = ctx.request_ids.logged(request_id)? else {
        return Ok(None);
    };
    ctx.log
        .wait_integrated(index)
        .await
        .map_err(|e| super::log_error(ctx.metrics, e))?;
    let entry = ctx
        .log
        .entry(index)
        .map_err(ServiceError::internal)?
        .ok_or_else(|| ServiceError::internal(format!("entry {index} missing")))?;
    let decision = verdict_core::receipt::Receipt::decode(&entry)
        .map_err(ServiceError::internal)?
        .statement
        .decision;
    Ok((decision != Decision::Escalate).then_some(index))
}

// ---------------------------------------------------------------------------------------------
// Reading, waiting, listing.

/// The record of `id` after expiry and any unfinished resolution are applied.
///
/// # Errors
/// [`ServiceError::NotFound`] for an unknown or malformed id; storage and logging errors.
pub async fn get(ctx: Context<'_>, id: &str) -> Result<Record, ServiceError> {
    let id = parse_id(id)?;
    current(ctx, &id).await.map(|(_, r)| r)
}

/// As [`get`], waiting up to `wait` (at most [`MAX_WAIT`]) for the final decision to be logged.
///
/// # Errors
/// As [`get`].
pub async fn wait(ctx: Context<'_>, id: &str, wait: Duration) -> Result<Record, ServiceError> {
    wait_for(ctx, &parse_id(id)?, wait).await
}

async fn wait_for(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
    wait: Duration,
) -> Result<Record, ServiceError> {
    let deadline = Instant::now() + wait.min(MAX_WAIT);
    loop {
        // Registered before reading, so a change between the read and the wait is not missed.
        let changed = ctx.escalations.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (_, record) = current(ctx, id).await?;
        let now = Instant::now();
        if record.final_index.is_some() || now >= deadline {
            return Ok(record);
        }
        // Wake at the expiry too, so that the waiter logs it.
        let to_expiry =
            Duration::from_millis(record.expires_ms.saturating_sub(now_ms()).saturating_add(1));
        let mut nap = deadline.saturating_duration_since(now).min(to_expiry);
        if record.status != Status::Pending {
            // Being logged, possibly by another server, whose wake-up does not reach this one.
            nap = nap.min(FINISH_POLL);
        } else if let Some(shared) = ctx.log.storage().shared() {
            // Another frontend may resolve it (spec `storage-postgres.md` §5.4).
            nap = nap.min(shared.poll_interval());
        }
        let _ = tokio::time::timeout(nap, changed).await;
    }
}

/// Every escalation, expired ones resolved first, optionally only those with `status`.
///
/// # Errors
/// Storage and logging errors.
pub async fn list(ctx: Context<'_>, status: Option<Status>) -> Result<Vec<Record>, ServiceError> {
    let all = ctx.log.storage().escalations().map_err(storage_error)?;
    let mut out = Vec::new();
    for (key, bytes) in all {
        let record = decode(&bytes)?;
        let record = if record.status == Status::Pending && now_ms() >= record.expires_ms
            || record.status != Status::Pending && record.final_index.is_none()
        {
            let id: [u8; ESCALATION_ID_LEN] = key
                .as_slice()
                .try_into()
                .map_err(|_| ServiceError::internal("escalation key is not 16 bytes"))?;
            current(ctx, &id).await?.1
        } else {
            record
        };
        if status.is_none_or(|s| s == record.status) {
            out.push(record);
        }
    }
    Ok(out)
}

/// The answer for `record`: with the final decision (receipt and proof bundle) once logged, and
/// with the canonical action and the violated rules when `privileged` (admin, auditor).
///
/// # Errors
/// Storage errors reading the escalate entry's private record or the final entry.
pub async fn view(
    ctx: Context<'_>,
    record: Record,
    privileged: bool,
) -> Result<EscalationView, ServiceError> {
    let mut record = record;
    record.finishing = None;
    let policy = policy_of(ctx, &record.policy.commitment)?;
    let escalated = escalated(ctx, &record)?;
    let decision = match record.final_index {
        Some(index) => Some(
            replay(
                ctx,
                &policy,
                &record.request_id,
                &escalated.action,
                LeafIndex(index),
                escalated.salt,
                true,
            )
            .await?
            .body,
        ),
        None => None,
    };
    let rules = privileged.then(|| {
        record
            .violated_rules
            .iter()
            .filter_map(|&i| policy.ast().rules.get(usize::try_from(i).ok()?))
            .map(|r| RuleView {
                id: r.id.clone(),
                text: r.text.clone(),
                effect: match r.effect {
                    verdict_checker::ast::Effect::Deny => "deny",
                    verdict_checker::ast::Effect::Escalate => "escalate",
                },
            })
            .collect()
    });
    Ok(EscalationView {
        status_url: status_url(&record.id),
        canonical_action: privileged.then_some(escalated.canonical),
        rules,
        decision,
        record,
    })
}

// ---------------------------------------------------------------------------------------------
// Answering.

/// Body of `POST /v1/escalations/{id}/approvals` and `/rejections` (spec `approval.md` §3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// Key id of the approver key (8 hex digits).
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// Add a signed approval or rejection to escalation `id` and resolve it when it is decided.
/// The signature is verified first; a record that is no longer pending is then returned as it
/// is (single use).
///
/// # Errors
/// [`ServiceError::NotFound`] for an unknown id; [`ServiceError::InvalidAction`] for a malformed
/// approval, [`ServiceError::ApprovalRefused`] for one by an unknown key or that does not verify
/// (nothing changes in either case); storage, checker and logging errors.
pub async fn answer(
    ctx: Context<'_>,
    id: &str,
    verdict: Verdict,
    body: AnswerBody,
) -> Result<Record, ServiceError> {
    let id = parse_id(id)?;
    let signed = SignedApproval::from_wire(&body.key_id, &body.signature).map_err(invalid)?;
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let (bytes, record) = current(ctx, &id).await?;
        // Verified first, also on a resolved record: the endpoints take no token, so only a
        // holder of an eligible key learns anything about the escalation.
        let policy = policy_of(ctx, &record.policy.commitment)?;
        let message = ApprovalMessage {
            escalation_id: id,
            action_commitment: hash_of(&record.action_commitment)?,
            policy_commitment: hash_of(&record.policy.commitment)?,
            verdict,
            expires_ms: record.expires_ms,
        };
        let verified = signed
            .verify(&message, policy.approvers())
            .map_err(refused)?;
        if record.status != Status::Pending {
            return Ok(record);
        }
        let key_id = verified.key_id.to_string();
        if record
            .approvals
            .iter()
            .any(|a| a.key_id == key_id && a.verdict == verdict.name())
        {
            return Ok(record);
        }
        let mut next = record.clone();
        next.approvals.push(ApprovalEntry {
            key_id,
            name: verified.name,
            verdict: verdict.name().to_owned(),
            signature: signed.signature_base64(),
        });
        match verdict {
            Verdict::Reject => next.status = Status::Rejected,
            Verdict::Approve => {
                let escalated = escalated(ctx, &next)?;
                let outcome = ctx
                    .pool
                    .check_approved(
                        Arc::clone(&policy),
                        request(&policy, &escalated.action, &next.request_id, escalated.salt),
                        approving(&next),
                    )
                    .await
                    .map_err(check_error)?;
                if outcome.decision != Decision::Escalate {
                    next.status = Status::Approved;
                }
            }
        }
        if !swap(ctx, &id, Some(&bytes), &next)? {
            continue;
        }
        tracing::info!(
            escalation.id = %next.id,
            "escalation {}: {} by {}; status {}",
            next.id,
            verdict.name(),
            verified.key_id,
            next.status.name()
        );
        ctx.escalations.changed.notify_waiters();
        if next.status == Status::Pending {
            return Ok(next);
        }
        let done = finish(ctx, &id).await?;
        if done.final_index.is_some() {
            return Ok(done);
        }
        // Another task or server is logging it: answer with its result.
        return wait_for(ctx, &id, MAX_WAIT).await;
    }
    Err(ServiceError::internal("escalation record keeps changing"))
}

// ---------------------------------------------------------------------------------------------
// Resolution.
// ---------------------------------------------------------------------------------------------
// Helpers.

/// The escalated action, from the escalate entry's private record.
struct Escalated {
    action: serde_json::Value,
    canonical: String,
    salt: Salt,
}

fn escalated(ctx: Context<'_>, record: &Record) -> Result<Escalated, ServiceError> {
    let bytes = ctx
        .log
        .private_record(LeafIndex(record.escalate_index))
        .map_err(ServiceError::internal)?
        .ok_or_else(|| {
            ServiceError::internal(format!(
                "private record of escalate entry {} missing",
                record.escalate_index
            ))
        })?;
    let private: PrivateRecord<'_> =
        serde_json::from_slice(&bytes).map_err(ServiceError::internal)?;
    Ok(Escalated {
        action: private.action.into_owned(),
        canonical: private.canonical_action.into_owned(),
        salt: Salt::from_hex(&private.salt).map_err(ServiceError::internal)?,
    })
}

fn parse_id(id: &str) -> Result<[u8; ESCALATION_ID_LEN], ServiceError> {
    parse_escalation_id(id).map_err(|_| not_found())
}

fn not_found() -> ServiceError {
    ServiceError::NotFound {
        what: "escalation".to_owned(),
    }
}

/// A well-formed answer whose signature is not an eligible approver's, or does not verify: the
/// credential is refused (403), as a wrong token would be.
fn refused(e: ApprovalError) -> ServiceError {
    ServiceError::ApprovalRefused {
        detail: e.to_string(),
    }
}

fn invalid(e: ApprovalError) -> ServiceError {
    ServiceError::InvalidAction {
        detail: e.to_string(),
    }
}

fn check_error(e: CheckError) -> ServiceError {
    match e {
        CheckError::PoolUnavailable => ServiceError::Unavailable {
            reason: "checker pool unavailable",
        },
        other => ServiceError::internal(other),
    }
}

fn storage_error(e: crate::storage::StorageError) -> ServiceError {
    if e.is_integrity() {
        ServiceError::internal(e)
    } else {
        ServiceError::StorageUnavailable
    }
}

fn hash_of(text: &str) -> Result<Hash, ServiceError> {
    hex::decode(text)
        .ok()
        .and_then(|b| Hash::from_slice(&b).ok())
        .ok_or_else(|| ServiceError::internal("stored hash is not 64 hex digits"))
}

fn policy_of(ctx: Context<'_>, commitment: &str) -> Result<Arc<CompiledPolicy>, ServiceError> {
    ctx.policies.resolve(commitment).ok_or_else(|| {
        ServiceError::internal(format!(
            "policy {commitment} of an escalation is not registered"
        ))
    })
}

fn decode(bytes: &[u8]) -> Result<Record, ServiceError> {
    serde_json::from_slice(bytes).map_err(ServiceError::internal)
}

fn load(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
) -> Result<Option<(Vec<u8>, Record)>, ServiceError> {
    match ctx.log.storage().escalation(id).map_err(storage_error)? {
        Some(bytes) => {
            let record = decode(&bytes)?;
            Ok(Some((bytes, record)))
        }
        None => Ok(None),
    }
}

fn swap(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
    expected: Option<&[u8]>,
    new: &Record,
) -> Result<bool, ServiceError> {
    let bytes = serde_json::to_vec(new).map_err(ServiceError::internal)?;
    ctx.log
        .storage()
        .swap_escalation(id, expected, &bytes)
        .map_err(storage_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_index_and_commitment() {
        let a = escalation_id(LeafIndex(1), &Hash([1; 32]));
        assert_eq!(a, escalation_id(LeafIndex(1), &Hash([1; 32])));
        assert_ne!(a, escalation_id(LeafIndex(2), &Hash([1; 32])));
        assert_ne!(a, escalation_id(LeafIndex(1), &Hash([2; 32])));
        assert!(parse_id(&hex::encode(a)).is_ok());
        assert!(parse_id("x").is_err());
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            Status::Pending,
            Status::Approved,
            Status::Rejected,
            Status::Expired,
        ] {
            assert_eq!(Status::from_name(s.name()).unwrap(), s);
        }
        assert!(Status::from_name("open").is_err());
    }
}
