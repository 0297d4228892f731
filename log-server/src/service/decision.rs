//! The answer to a logged decision: its wire types, logging it ([`log_decision`]: sign,
//! sequence, wait for the proof) and replaying it for a repeated request id ([`replay`]).
//!
//! The answer carries the decision, the receipt, and once integrated the proof bundle (C2SP
//! tlog-proof, `spec/proof-bundle.md`): receipt, index, inclusion proof and checkpoint.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;
use verdict_checker::{CompiledPolicy, Outcome};
use verdict_core::bundle::ProofBundle;
use verdict_core::receipt::{Decision, Kind, Receipt, Salt, Statement};
use verdict_core::LeafIndex;

use super::action::canonical_json;
use super::private::encode_record;
use super::{log_error, Context, ServiceError};
use crate::log::{Integrated, LogError, Restamp, Restamped, Staged};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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
    /// For `escalate`: the escalation's id (spec `approval.md` §1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_id: Option<String>,
    /// For `escalate`: where the agent polls for the final decision (`/v1/escalations/<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
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

/// A logged (or replayed) decision: the answer body and the entry's index.
#[derive(Debug)]
pub struct Logged {
    /// The answer.
    pub body: DecisionResponse,
    /// Leaf index of the receipt.
    pub index: LeafIndex,
    /// True when the entry is durably sequenced but the caller did not wait for its proof
    /// (`?wait=false` on a new decision: HTTP 202).
    pub accepted: bool,
}

/// The wall clock for entry times, ms since the epoch, moved by the test-only
/// `VERDICT_TEST_CLOCK_OFFSET_MS` (signed ms, read once; see [`test_clock_offset_ms`]).
pub(crate) fn now_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    now.saturating_add_signed(test_clock_offset_ms())
}

/// Test only: `VERDICT_TEST_CLOCK_OFFSET_MS` skews this process's entry clock by that many ms
/// (signed), to run frontends with skewed clocks on one machine
/// (`tests/tests/e2e/frontend_times.rs`). Unset, empty or malformed: 0. Never set it in
/// production: it moves receipt and registration times.
fn test_clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("VERDICT_TEST_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// Sign, sequence, (optionally) wait, and build the answer. Returns the index once sequenced.
///
/// With `wait`, the sequencer hands over the inclusion proof and the checkpoint that first covers
/// the entry ([`crate::log::Sequenced::integrated`]), so the answer needs no tile reads.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per endpoint; all parts needed"
)]
pub(crate) async fn log_decision(
    ctx: Context<'_>,
    policy: &CompiledPolicy,
    outcome: &Outcome,
    kind: Kind,
    request_id: &str,
    agent: &str,
    action: &serde_json::Value,
    wait: bool,
    started: Instant,
) -> Result<Logged, ServiceError> {
    let private = encode_record(policy, outcome, request_id, agent, action)?;
    log_prepared(
        ctx, policy, outcome, kind, request_id, private, wait, started,
    )
    .await
}

/// As [`log_decision`], with the private record already encoded (the final decision of an
/// escalation adds its evidence, [`super::escalations`]).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of log_decision, with the record instead of its inputs"
)]
pub(crate) async fn log_prepared(
    ctx: Context<'_>,
    policy: &CompiledPolicy,
    outcome: &Outcome,
    kind: Kind,
    request_id: &str,
    private: Vec<u8>,
    wait: bool,
    started: Instant,
) -> Result<Logged, ServiceError> {
    // The statement is kept for the answer, so the receipt is not decoded again. The entry clock
    // is held from stamping to queueing, so log order is time order (spec
    // `evidence-package.md` §3.1); no await happens while it is held.
    let (statement, receipt, queued) = {
        let stamp = ctx.log.stamp(now_ms());
        let statement = verdict_checker::issue::statement(
            outcome,
            kind,
            policy,
            request_id,
            stamp.time_ms(),
            ctx.checker_key,
        );
        let receipt = Receipt::sign(&statement, ctx.checker_key).map_err(ServiceError::internal)?;
        // On a shared store the sequencer may have to move the entry to a later time
        // (spec `storage-postgres.md` §5.6): the same statement, signed again at that time.
        let restamp = ctx.log.storage().shared().is_some().then(|| {
            let (mut again, key) = (statement.clone(), ctx.checker_key.clone());
            Box::new(move |time_ms| {
                again.time_ms = time_ms;
                Receipt::sign(&again, &key).ok()
            }) as Restamp
        });
        let queued = stamp
            .submit_restampable(receipt.clone(), Some(private), wait, restamp)
            .map_err(|e| log_error(ctx.metrics, e))?;
        (statement, receipt, queued)
    };
    let submitted = Instant::now();
    let Staged {
        index,
        sequenced,
        restamped,
    } = queued
        .staged()
        .await
        .map_err(|e| log_error(ctx.metrics, e))?;
    let (statement, receipt) = match restamped {
        Some(Restamped { time_ms, entry }) => (
            Statement {
                time_ms,
                ..statement
            },
            entry,
        ),
        None => (statement, receipt),
    };
    ctx.metrics.decision(
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
    let Some(sequenced) = sequenced else {
        let body = decision_body(
            policy,
            statement,
            request_id,
            &receipt,
            outcome.salt,
            &outcome.canonical_action,
            index,
            None,
        );
        return Ok(Logged {
            body,
            index,
            accepted: true,
        });
    };
    let Integrated { checkpoint, proof } = sequenced
        .integrated()
        .await
        .map_err(|e| log_error(ctx.metrics, e))?;
    ctx.metrics.integration.observe(submitted.elapsed());
    let size = checkpoint.checkpoint.size.0;
    let inclusion_proof = proof.iter().map(|h| h.to_base64()).collect();
    let bundle = ProofBundle {
        extra: Some(receipt.clone()),
        index,
        proof,
        checkpoint: checkpoint.note,
    };
    let part = ProofPart {
        tree_size: size,
        inclusion_proof,
        checkpoint: String::from_utf8_lossy(&bundle.checkpoint).into_owned(),
        bundle: String::from_utf8_lossy(&bundle.encode()).into_owned(),
    };
    ctx.metrics.check_to_proof.observe(started.elapsed());
    let body = decision_body(
        policy,
        statement,
        request_id,
        &receipt,
        outcome.salt,
        &outcome.canonical_action,
        index,
        Some(part),
    );
    Ok(Logged {
        body,
        index,
        accepted: false,
    })
}

/// Answer a replayed request id with the entry logged for it.
pub(crate) async fn replay(
    ctx: Context<'_>,
    policy: &CompiledPolicy,
    request_id: &str,
    action: &serde_json::Value,
    index: LeafIndex,
    salt: Salt,
    wait: bool,
) -> Result<Logged, ServiceError> {
    let checkpoint = if wait {
        Some(
            ctx.log
                .wait_integrated(index)
                .await
                .map_err(|e| log_error(ctx.metrics, e))?,
        )
    } else {
        None
    };
    let receipt = ctx
        .log
        .entry(index)
        .map_err(ServiceError::internal)?
        .ok_or_else(|| ServiceError::internal(format!("replayed entry {index} missing")))?;
    let statement = Receipt::decode(&receipt)
        .map_err(ServiceError::internal)?
        .statement;
    let part = match checkpoint {
        Some(cp) => {
            let bundle = ctx.log.bundle(index).map_err(ServiceError::internal)?;
            Some(ProofPart {
                tree_size: bundle_size(&bundle).max(cp.checkpoint.size.0),
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
    let body = decision_body(
        policy, statement, request_id, &receipt, salt, &canonical, index, part,
    );
    Ok(Logged {
        body,
        index,
        accepted: false,
    })
}

fn bundle_size(bundle: &ProofBundle) -> u64 {
    std::str::from_utf8(&bundle.checkpoint)
        .ok()
        .and_then(|t| t.lines().nth(1))
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// The answer of a logged decision. `request_id` is the caller's id (the receipt holds only its
/// commitment, spec `receipt.md` §7.1).
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one answer, from two call paths"
)]
fn decision_body(
    policy: &CompiledPolicy,
    statement: Statement,
    request_id: &str,
    receipt: &[u8],
    salt: Salt,
    canonical_action: &[u8],
    index: LeafIndex,
    proof: Option<ProofPart>,
) -> DecisionResponse {
    let decision = decision_name(statement.decision);
    let kind = kind_name(statement.kind);
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
        decision,
        kind,
        fail_closed: statement.fail_closed,
        request_id: request_id.to_owned(),
        policy: PolicyRef {
            name: policy.name().to_owned(),
            version: statement.policy_version,
            commitment: statement.policy_commitment.to_hex(),
        },
        violated_rules: statement.violated_rules,
        violated_rule_ids: rule_ids,
        matched_variables: statement.matched_variables,
        undetermined_variables: statement.undetermined_variables,
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
        escalation_id: None,
        status_url: None,
    }
}

/// Count the decisions already in the log into the metrics, so that `verdict_decisions_total`
/// survives a restart: one pass over the entries of the published tree at start (by policy name,
/// decision and kind, as [`log_decision`] counts them). Entries that are not receipts are skipped.
/// A policy commitment that no registered policy has is counted under its hex commitment.
/// Returns the number of entries read.
///
/// # Errors
/// Storage errors reading the entries.
pub fn count_logged(ctx: Context<'_>) -> Result<u64, LogError> {
    let size = ctx.log.stats().tree_size;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut counts: HashMap<(String, &'static str, &'static str), u64> = HashMap::new();
    for index in 0..size {
        let Some(entry) = ctx.log.entry(LeafIndex(index))? else {
            continue;
        };
        let Ok(receipt) = Receipt::decode(&entry) else {
            continue;
        };
        let statement = receipt.statement;
        let commitment = statement.policy_commitment.to_hex();
        let name = names
            .entry(commitment)
            .or_insert_with_key(|commitment| {
                ctx.policies
                    .resolve(commitment)
                    .map_or_else(|| commitment.clone(), |p| p.name().to_owned())
            })
            .clone();
        *counts
            .entry((
                name,
                decision_name(statement.decision),
                kind_name(statement.kind),
            ))
            .or_default() += 1;
    }
    for ((policy, decision, kind), n) in counts {
        ctx.metrics.add_decisions(&policy, decision, kind, n);
    }
    Ok(size)
}

/// Wire name of a decision.
pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::Escalate => "escalate",
        Decision::NotApplicable => "not-applicable",
        Decision::InScope => "in-scope",
    }
}

/// Wire name of a kind.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Screen => "screen",
        Kind::Check => "check",
    }
}
