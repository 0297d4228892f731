//! `verdict-approve verify`: the auditor's offline check of who approved or rejected an
//! escalation (spec `approval.md` §5), with no server and no policy engine.
//!
//! Inputs: the final decision's proof bundle (C2SP tlog-proof; its `extra` is the receipt), its
//! private record (`GET /v1/private/actions/{index}`, auditor token; the JSON answer or just its
//! `record` object) and the approvers' verifier keys, from the policy text's `[[approvers]]`
//! (`--policy FILE`) or given one by one (`--approver-key`). The bundle's signatures and inclusion
//! are `verdict verify`'s job; this checks the approvals against the receipt it carries:
//! every signature verifies over the message of §2 rebuilt from the record's escalation id and
//! expiry and the receipt's commitments, and the approving key ids are exactly the receipt's
//! `approvers` (for an approved escalation) or the receipt is a `deny` (rejected, expired).

use std::collections::BTreeSet;

use serde_json::Value;
use verdict_core::approval::{parse_escalation_id, ApprovalMessage, SignedApproval, Verdict};
use verdict_core::bundle::ProofBundle;
use verdict_core::note::{KeyId, Verifier};
use verdict_core::receipt::{Decision, Receipt};

/// What the check found, for the one-line summary.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// The escalation's resolution as the record states it.
    pub resolution: String,
    /// Approver names whose approval verified.
    pub approved_by: Vec<String>,
    /// Approver names whose rejection verified.
    pub rejected_by: Vec<String>,
}

/// Why the evidence does not hold (exit 1), or cannot be read (exit 2 for usage, 3 for files).
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// The inputs are unreadable or malformed.
    Input(String),
    /// The evidence does not verify.
    Invalid(String),
}

fn input(m: impl Into<String>) -> Problem {
    Problem::Input(m.into())
}

fn invalid(m: impl Into<String>) -> Problem {
    Problem::Invalid(m.into())
}

/// The `[[approvers]]` verifier keys of a policy text.
///
/// # Errors
/// [`Problem::Input`] when the text is not TOML or a key does not parse.
pub fn policy_approvers(text: &str) -> Result<Vec<Verifier>, Problem> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e| input(format!("policy is not TOML: {e}")))?;
    let Some(list) = doc.get("approvers") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| input("policy `approvers` is not an array of tables"))?;
    list.iter()
        .map(|a| {
            let key = a
                .get("key")
                .and_then(toml::Value::as_str)
                .ok_or_else(|| input("an [[approvers]] entry has no `key`"))?;
            Verifier::parse(key).map_err(|e| input(format!("approver key {key:?}: {e}")))
        })
        .collect()
}

fn escalation_id_field(v: &Value, what: &str) -> Result<[u8; 16], Problem> {
    let s = v
        .as_str()
        .ok_or_else(|| input(format!("record: {what} is missing")))?;
    parse_escalation_id(s).map_err(|e| input(format!("record: {what}: {e}")))
}

/// Check the approvals of `record` against the receipt in `bundle` with `approvers`.
///
/// # Errors
/// [`Problem`].
pub fn check(bundle: &[u8], record: &Value, approvers: &[Verifier]) -> Result<Checked, Problem> {
    let bundle = ProofBundle::parse(bundle).map_err(|e| input(format!("bundle: {e}")))?;
    let entry = bundle
        .extra
        .as_deref()
        .ok_or_else(|| input("bundle has no receipt (extra)"))?;
    let receipt = Receipt::decode(entry).map_err(|e| input(format!("bundle receipt: {e}")))?;
    let statement = &receipt.statement;
    // The JSON answer of /v1/private/actions/{i}, or its `record` object.
    let record = record.get("record").unwrap_or(record);
    let escalation = record.get("escalation").ok_or_else(|| {
        invalid("the private record has no escalation: not an escalated decision")
    })?;
    let id = escalation_id_field(&escalation["id"], "escalation.id")?;
    let expires_ms = escalation["expires_ms"]
        .as_u64()
        .ok_or_else(|| input("record: escalation.expires_ms is missing"))?;
    let resolution = escalation["resolution"]
        .as_str()
        .ok_or_else(|| input("record: escalation.resolution is missing"))?
        .to_owned();
    let list = escalation["approvals"]
        .as_array()
        .ok_or_else(|| input("record: escalation.approvals is missing"))?;
    let mut approving: BTreeSet<KeyId> = BTreeSet::new();
    let (mut approved_by, mut rejected_by) = (Vec::new(), Vec::new());
    for (n, a) in list.iter().enumerate() {
        let (Some(key_id), Some(signature), Some(verdict)) = (
            a["key_id"].as_str(),
            a["signature"].as_str(),
            a["verdict"].as_str(),
        ) else {
            return Err(input(format!(
                "record: approval {n} lacks key_id, signature or verdict"
            )));
        };
        let verdict =
            Verdict::from_name(verdict).map_err(|e| input(format!("record: approval {n}: {e}")))?;
        let signed = SignedApproval::from_wire(key_id, signature)
            .map_err(|e| input(format!("record: approval {n}: {e}")))?;
        let message = ApprovalMessage {
            escalation_id: id,
            action_commitment: statement.action_commitment,
            policy_commitment: statement.policy_commitment,
            verdict,
            expires_ms,
        };
        let ok = signed
            .verify(&message, approvers)
            .map_err(|e| invalid(format!("approval {n} ({key_id}): {e}")))?;
        match ok.verdict {
            Verdict::Approve => {
                approving.insert(ok.key_id);
                approved_by.push(ok.name);
            }
            Verdict::Reject => rejected_by.push(ok.name),
        }
    }
    let receipt_approvers: BTreeSet<KeyId> = statement.approvers.iter().copied().collect();
    match resolution.as_str() {
        "approved" => {
            if statement.decision != Decision::Allow {
                return Err(invalid(format!(
                    "resolution approved but the receipt's decision is {}",
                    statement.decision.as_str()
                )));
            }
            if approving != receipt_approvers {
                return Err(invalid(
                    "the verified approvals are not the receipt's approvers",
                ));
            }
        }
        "rejected" | "expired" => {
            if statement.decision != Decision::Deny {
                return Err(invalid(format!(
                    "resolution {resolution} but the receipt's decision is {}",
                    statement.decision.as_str()
                )));
            }
            if resolution == "rejected" && rejected_by.is_empty() {
                return Err(invalid("resolution rejected without a verified rejection"));
            }
        }
        other => return Err(input(format!("record: unknown resolution {other:?}"))),
    }
    Ok(Checked {
        resolution,
        approved_by,
        rejected_by,
    })
}
