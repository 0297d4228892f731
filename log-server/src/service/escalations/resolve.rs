//! Resolution of an escalation (spec `approval.md` §4, §5): expiry on read, finishing a record
//! that has left `pending` exactly once, and logging its final decision with the evidence.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use verdict_checker::Outcome;
use verdict_core::approval::{Verdict, ESCALATION_ID_LEN};
use verdict_core::note::KeyId;
use verdict_core::receipt::{commit, CommitmentTag, Decision, Kind};
use verdict_core::LeafIndex;

use super::super::decision::{decision_name, log_prepared, now_ms};
use super::super::private::encode_record_with;
use super::super::{Context, ServiceError};
use super::*;

/// Evidence kept in the final decision's private record (spec `approval.md` §5).
#[derive(Serialize)]
struct Evidence<'a> {
    id: &'a str,
    expires_ms: u64,
    resolution: &'static str,
    escalate_index: u64,
    approvals: &'a [ApprovalEntry],
}

/// The stored record and its bytes, after expiring it (when due) and finishing a resolution left
/// unfinished (after a restart).
pub(super) async fn current(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
) -> Result<(Vec<u8>, Record), ServiceError> {
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let (bytes, record) = load(ctx, id)?.ok_or_else(not_found)?;
        if record.status == Status::Pending && now_ms() >= record.expires_ms {
            let mut next = record.clone();
            next.status = Status::Expired;
            if !swap(ctx, id, Some(&bytes), &next)? {
                continue;
            }
            tracing::info!(escalation.id = %next.id, "escalation {} expired", next.id);
            ctx.escalations.changed.notify_waiters();
            finish(ctx, id).await?;
            continue;
        }
        if record.status != Status::Pending && record.final_index.is_none() {
            if finish(ctx, id).await?.final_index.is_none() {
                // Another task or server is logging it: answer what is stored.
                return Ok((bytes, record));
            }
            continue;
        }
        return Ok((bytes, record));
    }
    Err(ServiceError::internal("escalation record keeps changing"))
}

/// Releases an in-process claim on a resolution.
struct Claim<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

/// Log the final decision of a record that has left `pending`, once: claimed in this process,
/// then in the record ([`claim`]: of several servers sharing the store, one logs it), skipped
/// when already logged, adopting an entry logged for the request id after the escalate entry (a
/// crash between logging and recording it), then recorded by compare-and-swap (which drops the
/// claim). Returns the record without a final index when another server holds the claim.
pub(super) async fn finish(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
) -> Result<Record, ServiceError> {
    let id_hex = hex::encode(id);
    {
        let mut set = ctx
            .escalations
            .finishing
            .lock()
            .map_err(|_| ServiceError::internal("escalation claims poisoned"))?;
        if !set.insert(id_hex.clone()) {
            drop(set);
            return load(ctx, id)?.map(|(_, r)| r).ok_or_else(not_found);
        }
    }
    let _claim = Claim {
        set: &ctx.escalations.finishing,
        id: id_hex,
    };
    let record = match claim(ctx, id)? {
        Ok(claimed) => claimed,
        Err(settled_or_held) => return Ok(settled_or_held),
    };
    let (index, decision) = match adopt_or_log(ctx, &record).await {
        Ok(logged) => logged,
        Err(e) => {
            // Let the next reader, on any server, try again at once.
            unclaim(ctx, id);
            return Err(e);
        }
    };
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let (bytes, stored) = load(ctx, id)?.ok_or_else(not_found)?;
        if stored.final_index.is_some() {
            return Ok(stored);
        }
        let mut next = stored;
        next.final_index = Some(index.0);
        next.final_decision = Some(decision.clone());
        next.finishing = None;
        if swap(ctx, id, Some(&bytes), &next)? {
            tracing::info!(
                escalation.id = %next.id,
                leaf.index = index.0,
                "escalation {} resolved: {decision} at {}",
                next.id,
                index.0
            );
            ctx.escalations.changed.notify_waiters();
            return Ok(next);
        }
    }
    Err(ServiceError::internal("escalation record keeps changing"))
}

/// The entry logged for the request id after the escalate entry (a crash between logging and
/// recording it), or the final decision logged now.
async fn adopt_or_log(
    ctx: Context<'_>,
    record: &Record,
) -> Result<(LeafIndex, String), ServiceError> {
    match ctx
        .request_ids
        .logged(&record.request_id)?
        .filter(|i| i.0 > record.escalate_index)
    {
        Some(index) => {
            let decision = ctx
                .log
                .entry(index)
                .ok()
                .flatten()
                .and_then(|e| verdict_core::receipt::Receipt::decode(&e).ok())
                .map_or("deny", |r| decision_name(r.statement.decision));
            Ok((index, decision.to_owned()))
        }
        None => log_final(ctx, record).await,
    }
}

/// Drop this process's claim on record `id` (best effort: an error leaves it to lapse).
fn unclaim(ctx: Context<'_>, id: &[u8; ESCALATION_ID_LEN]) {
    let Ok(Some((bytes, record))) = load(ctx, id) else {
        return;
    };
    if record.final_index.is_none()
        && record
            .finishing
            .as_ref()
            .is_some_and(|c| c.by == ctx.escalations.instance)
    {
        let mut next = record;
        next.finishing = None;
        let _ = swap(ctx, id, Some(&bytes), &next);
    }
}

/// Claim the logging of the final decision of record `id` by compare-and-swap: `Ok(record)`
/// with the claim when this process may log it; `Err(record)` when there is nothing to log
/// (pending, or logged) or another server holds an unexpired claim. A claim of this process is
/// taken again: the in-process claim ([`finish`]) shows that its holder is gone (a cancelled
/// request).
fn claim(
    ctx: Context<'_>,
    id: &[u8; ESCALATION_ID_LEN],
) -> Result<Result<Record, Record>, ServiceError> {
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let (bytes, record) = load(ctx, id)?.ok_or_else(not_found)?;
        if record.status == Status::Pending || record.final_index.is_some() {
            return Ok(Err(record));
        }
        let now = now_ms();
        let me = &ctx.escalations.instance;
        if record
            .finishing
            .as_ref()
            .is_some_and(|c| &c.by != me && c.until_ms > now)
        {
            return Ok(Err(record));
        }
        let lease = u64::try_from(FINISH_LEASE.as_millis()).unwrap_or(u64::MAX);
        let mut next = record;
        next.finishing = Some(Finishing {
            by: me.clone(),
            until_ms: now.saturating_add(lease),
        });
        if swap(ctx, id, Some(&bytes), &next)? {
            return Ok(Ok(next));
        }
    }
    Err(ServiceError::internal("escalation record keeps changing"))
}

/// Decide and log the final decision of `record` (spec `approval.md` §4), with its evidence.
async fn log_final(ctx: Context<'_>, record: &Record) -> Result<(LeafIndex, String), ServiceError> {
    let policy = policy_of(ctx, &record.policy.commitment)?;
    let escalated = escalated(ctx, record)?;
    let outcome = match record.status {
        Status::Approved => {
            let mut outcome = ctx
                .pool
                .check_approved(
                    Arc::clone(&policy),
                    request(
                        &policy,
                        &escalated.action,
                        &record.request_id,
                        escalated.salt,
                    ),
                    approving(record),
                )
                .await
                .map_err(check_error)?;
            if outcome.decision == Decision::Escalate {
                // Decided `approved` before; never log a second escalation for it.
                outcome.decision = Decision::Deny;
                outcome.fail_closed = true;
                outcome.undetermined.clear();
            }
            outcome
        }
        Status::Rejected | Status::Expired | Status::Pending => {
            let canonical_action = escalated.canonical.clone().into_bytes();
            Outcome {
                decision: Decision::Deny,
                fail_closed: record.status != Status::Rejected,
                violated: record.violated_rules.clone(),
                violated_ids: record.violated_rule_ids.clone(),
                undetermined: Vec::new(),
                matched: record.matched_variables.clone(),
                approvers: Vec::new(),
                action_commitment: commit(
                    CommitmentTag::Action,
                    &escalated.salt,
                    &canonical_action,
                ),
                salt: escalated.salt,
                canonical_action,
            }
        }
    };
    let evidence = serde_json::to_value(Evidence {
        id: &record.id,
        expires_ms: record.expires_ms,
        resolution: record.status.name(),
        escalate_index: record.escalate_index,
        approvals: &record.approvals,
    })
    .map_err(ServiceError::internal)?;
    let private = encode_record_with(
        &policy,
        &outcome,
        &record.request_id,
        &record.agent,
        &escalated.action,
        Some(&evidence),
    )?;
    let logged = log_prepared(
        ctx,
        &policy,
        &outcome,
        Kind::Check,
        &record.request_id,
        private,
        true,
        Instant::now(),
    )
    .await?;
    ctx.request_ids
        .complete(&record.request_id, logged.index, outcome.salt);
    Ok((logged.index, decision_name(outcome.decision).to_owned()))
}

/// Distinct key ids that approved, sorted.
pub(super) fn approving(record: &Record) -> Vec<KeyId> {
    record
        .approvals
        .iter()
        .filter(|a| a.verdict == Verdict::Approve.name())
        .filter_map(|a| {
            let raw: [u8; 4] = hex::decode(&a.key_id).ok()?.try_into().ok()?;
            Some(KeyId(raw))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
