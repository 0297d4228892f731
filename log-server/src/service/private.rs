//! Private records: the action as received with token values reduced to their presence
//! (`true`; spec `policy-language.md`: a token's value is never stored), its salt, the request id, the agent name and the policy commitment of each
//! logged decision, kept beside the log entry in the private store. Only the auditor endpoint
//! (`GET /v1/private/actions/{index}`) serves them, and the request-id window is restored from
//! them at start ([`super::request_ids::RequestIds::restore`]).

use verdict_checker::{CompiledPolicy, Outcome};
use verdict_core::LeafIndex;

use super::policies::PolicyRegistry;
use super::ServiceError;
use crate::log::Log;

/// The private record of a decision, served only by `GET /v1/private/actions/<index>` and read
/// back at start to restore the request-id window
/// ([`super::request_ids::RequestIds::restore`]). Fields in sorted order: the same bytes as a
/// `serde_json::json!` object.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PrivateRecord<'a> {
    /// The action as received, with the value of every `token` variable replaced by `true`
    /// (its presence), as in the canonical action.
    pub(crate) action: std::borrow::Cow<'a, serde_json::Value>,
    /// Name of the agent token that asked for the decision (absent in records written before
    /// roles existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<std::borrow::Cow<'a, str>>,
    /// For a resubmission with approvals (`POST /v1/check`, spec `decision-semantics.md` §7):
    /// the approvals the checker verified, as sent, so that an auditor verifies them offline
    /// (spec `evidence-package.md` §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) approvals: Option<std::borrow::Cow<'a, [verdict_checker::approval::Approval]>>,
    /// The canonical action the commitment covers.
    pub(crate) canonical_action: std::borrow::Cow<'a, str>,
    /// For the final decision of an escalation: its id, expiry, resolution and the signed
    /// approvals and rejections (spec `approval.md` §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) escalation: Option<std::borrow::Cow<'a, serde_json::Value>>,
    /// Policy commitment, hex.
    pub(crate) policy: String,
    /// The request id.
    pub(crate) request_id: std::borrow::Cow<'a, str>,
    /// Action salt, hex.
    pub(crate) salt: String,
}

/// The private record of a decision, encoded for the log's private store.
///
/// # Errors
/// [`ServiceError::Internal`] when it cannot be serialized.
pub(crate) fn encode_record(
    policy: &CompiledPolicy,
    outcome: &Outcome,
    request_id: &str,
    agent: &str,
    action: &serde_json::Value,
) -> Result<Vec<u8>, ServiceError> {
    encode_record_with(policy, outcome, request_id, agent, action, None)
}

/// As [`encode_record`], with the verified approvals of a resubmission (spec
/// `decision-semantics.md` §7; none when `approvals` is empty).
///
/// # Errors
/// [`ServiceError::Internal`] when it cannot be serialized.
pub(crate) fn encode_record_approved(
    policy: &CompiledPolicy,
    outcome: &Outcome,
    request_id: &str,
    agent: &str,
    action: &serde_json::Value,
    approvals: &[verdict_checker::approval::Approval],
) -> Result<Vec<u8>, ServiceError> {
    encode(
        policy,
        outcome,
        request_id,
        agent,
        action,
        (!approvals.is_empty()).then_some(approvals),
        None,
    )
}

/// As [`encode_record`], with the escalation evidence of a final decision (spec `approval.md` §5).
///
/// # Errors
/// [`ServiceError::Internal`] when it cannot be serialized.
pub(crate) fn encode_record_with(
    policy: &CompiledPolicy,
    outcome: &Outcome,
    request_id: &str,
    agent: &str,
    action: &serde_json::Value,
    escalation: Option<&serde_json::Value>,
) -> Result<Vec<u8>, ServiceError> {
    encode(policy, outcome, request_id, agent, action, None, escalation)
}

fn encode(
    policy: &CompiledPolicy,
    outcome: &Outcome,
    request_id: &str,
    agent: &str,
    action: &serde_json::Value,
    approvals: Option<&[verdict_checker::approval::Approval]>,
    escalation: Option<&serde_json::Value>,
) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec(&PrivateRecord {
        action: std::borrow::Cow::Borrowed(action),
        agent: Some(std::borrow::Cow::Borrowed(agent)),
        approvals: approvals.map(std::borrow::Cow::Borrowed),
        canonical_action: String::from_utf8_lossy(&outcome.canonical_action),
        escalation: escalation.map(std::borrow::Cow::Borrowed),
        policy: policy.commitment().to_hex(),
        request_id: std::borrow::Cow::Borrowed(request_id),
        salt: outcome.salt.to_hex(),
    })
    .map_err(ServiceError::internal)
}

/// The private record stored with entry `index`, as JSON. A record written before token values
/// were reduced to their presence (issue 13) is served with them reduced too, when its policy
/// is registered: the endpoint never returns a token value.
///
/// # Errors
/// [`ServiceError::NotFound`] when there is none; [`ServiceError::Internal`] for storage errors
/// or a record that is not JSON.
pub fn record(
    log: &Log,
    policies: &PolicyRegistry,
    index: LeafIndex,
) -> Result<serde_json::Value, ServiceError> {
    let record = log
        .private_record(index)
        .map_err(ServiceError::internal)?
        .ok_or_else(|| ServiceError::NotFound {
            what: format!("private record {}", index.0),
        })?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&record).map_err(ServiceError::internal)?;
    let policy = value
        .get("policy")
        .and_then(serde_json::Value::as_str)
        .and_then(|commitment| policies.resolve(commitment));
    if let (Some(policy), Some(action)) = (policy, value.get_mut("action")) {
        *action = super::action::redact_tokens(&policy, action);
    }
    Ok(value)
}

/// The disclosure of rule `rule` for the decision at `index` (spec `disclosure.md` §5), with the
/// name of the agent that asked for the decision (for the agent-token check), or `None` when
/// the record predates roles.
///
/// # Errors
/// [`ServiceError::NotFound`] when the index holds no decision, the decision did not violate
/// the rule, or its policy is not registered; [`ServiceError::Internal`] for storage errors.
pub fn disclosure(
    log: &Log,
    policies: &PolicyRegistry,
    index: LeafIndex,
    rule: u32,
) -> Result<(verdict_core::disclosure::Disclosure, Option<String>), ServiceError> {
    use verdict_core::disclosure::{Disclosure, RuleOpening};
    let not_found = |what: String| ServiceError::NotFound { what };
    let record = log
        .private_record(index)
        .map_err(ServiceError::internal)?
        .ok_or_else(|| not_found(format!("decision {}", index.0)))?;
    let record: PrivateRecord<'_> =
        serde_json::from_slice(&record).map_err(ServiceError::internal)?;
    let receipt = log
        .entry(index)
        .map_err(ServiceError::internal)?
        .ok_or_else(|| not_found(format!("decision {}", index.0)))?;
    let decoded =
        verdict_core::receipt::Receipt::decode(&receipt).map_err(ServiceError::internal)?;
    if !decoded.statement.violated_rules.contains(&rule) {
        return Err(not_found(format!(
            "violated rule {rule} of decision {} (only a rule the decision violated is disclosed)",
            index.0
        )));
    }
    let registered = policies
        .registration(&record.policy)
        .ok_or_else(|| not_found(format!("registration of policy {}", record.policy)))?;
    let proof = usize::try_from(rule)
        .ok()
        .and_then(|r| registered.policy.rule_proof(r))
        .ok_or_else(|| not_found(format!("rule {rule} of policy {}", record.policy)))?;
    // The statement's inclusion proof (spec `disclosure.md` §2, version 2): against the latest
    // checkpoint, which covers the statement because it precedes the decision.
    let statement_proof = log
        .bundle(LeafIndex(registered.info.index))
        .map_err(ServiceError::internal)?
        .encode();
    let disclosure = Disclosure {
        decision_index: index.0,
        receipt,
        statement_index: registered.info.index,
        statement: registered.statement.clone(),
        statement_proof: Some(statement_proof),
        rule: RuleOpening {
            index: rule,
            count: u32::try_from(proof.rule_count).map_err(ServiceError::internal)?,
            text: String::from_utf8(proof.canonical_rule).map_err(ServiceError::internal)?,
            salt: proof.salt,
            path: proof.path,
        },
    };
    Ok((disclosure, record.agent.map(std::borrow::Cow::into_owned)))
}
