//! The escalation record and its views (spec `approval.md` §1): status, the stored record,
//! what a reader is shown, and the id and status URL of an escalation.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use verdict_core::approval::ESCALATION_ID_LEN;
use verdict_core::{Hash, LeafIndex};

use super::super::decision::DecisionResponse;
use super::super::ServiceError;
use super::ID_PREFIX;

/// Status of an escalation (spec `approval.md` §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for approvals.
    Pending,
    /// Approved: decided again with the approvals.
    Approved,
    /// Rejected: denied.
    Rejected,
    /// Expired: denied, fail closed.
    Expired,
}

impl Status {
    /// Parse the query value.
    ///
    /// # Errors
    /// [`ServiceError::BadRequest`] for anything else.
    pub fn from_name(name: &str) -> Result<Self, ServiceError> {
        match name {
            "pending" => Ok(Self::Pending),
            "approved" => Ok(Self::Approved),
            "rejected" => Ok(Self::Rejected),
            "expired" => Ok(Self::Expired),
            _ => Err(ServiceError::BadRequest {
                detail: "status must be pending, approved, rejected or expired".to_owned(),
            }),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

/// The policy an escalation is decided under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Commitment (hex): the decision is made under it, whatever is registered since.
    pub commitment: String,
}

/// An eligible approver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverRef {
    /// Key name.
    pub name: String,
    /// Key id (8 hex digits).
    pub key_id: String,
}

/// An accepted approval or rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    /// Key id (8 hex digits).
    pub key_id: String,
    /// Key name.
    pub name: String,
    /// `approve` or `reject`.
    pub verdict: String,
    /// Base64 of the 64-byte Ed25519 signature over the message of spec `approval.md` §2.
    pub signature: String,
}

/// The stored escalation record (spec `approval.md` §1), JSON in field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Escalation id (32 hex digits).
    pub id: String,
    /// The escalated request's id.
    pub request_id: String,
    /// The agent that raised it.
    pub agent: String,
    /// The policy it is decided under.
    pub policy: PolicyInfo,
    /// Action commitment of the escalate receipt (hex).
    pub action_commitment: String,
    /// Leaf index of the escalate receipt.
    pub escalate_index: u64,
    /// Policy variables the action names.
    pub matched_variables: Vec<String>,
    /// Unbound variables that decide the outcome.
    pub undetermined_variables: Vec<String>,
    /// Violated escalate rules (indices).
    pub violated_rules: Vec<u32>,
    /// Violated escalate rules (ids).
    pub violated_rule_ids: Vec<String>,
    /// Least number of distinct approvers that allows the action; `None` when none does.
    pub approvals_needed: Option<u32>,
    /// The policy's approver keys.
    pub eligible_approvers: Vec<ApproverRef>,
    /// Creation (ms since the Unix epoch).
    pub created_ms: u64,
    /// Expiry (ms since the Unix epoch).
    pub expires_ms: u64,
    /// Status.
    pub status: Status,
    /// Accepted approvals and rejections, in arrival order.
    pub approvals: Vec<ApprovalEntry>,
    /// The final decision, once logged.
    pub final_decision: Option<String>,
    /// Leaf index of the final decision, once logged.
    pub final_index: Option<u64>,
    /// The server process logging the final decision, while it does (never shown to clients;
    /// absent at rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finishing: Option<Finishing>,
}

/// A claim on logging the final decision of a record that has left `pending` (spec
/// `approval.md` §4): written by compare-and-swap, so that of several servers sharing the store
/// exactly one logs it; it lapses at `until_ms`, so a claim of a server that crashed is taken
/// over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finishing {
    /// The claiming server process (random per start).
    pub by: String,
    /// Until when the claim holds (ms since the Unix epoch).
    pub until_ms: u64,
}

/// A violated rule, shown to approvers.
#[derive(Clone, Debug, Serialize)]
pub struct RuleView {
    /// Rule id.
    pub id: String,
    /// Rule text.
    pub text: String,
    /// `deny` or `escalate`.
    pub effect: &'static str,
}

/// The answer of the escalation endpoints.
#[derive(Debug, Serialize)]
pub struct EscalationView {
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// `/v1/escalations/<id>`.
    pub status_url: String,
    /// The final decision with its receipt and proof bundle, once logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionResponse>,
    /// The canonical action (admin and auditor only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_action: Option<String>,
    /// The violated rules (admin and auditor only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleView>>,
}

/// The id of the escalation opened by the escalate entry at `index` (spec `approval.md` §1).
pub fn escalation_id(index: LeafIndex, action_commitment: &Hash) -> [u8; ESCALATION_ID_LEN] {
    let mut h = Sha256::new();
    h.update(ID_PREFIX);
    h.update(index.0.to_be_bytes());
    h.update(action_commitment.0);
    let digest: [u8; 32] = h.finalize().into();
    let mut id = [0u8; ESCALATION_ID_LEN];
    for (dst, src) in id.iter_mut().zip(digest) {
        *dst = src;
    }
    id
}

/// The status URL of an escalation.
pub fn status_url(id: &str) -> String {
    format!("/v1/escalations/{id}")
}
