//! Approvals: Ed25519 signatures by registered approver keys over the action commitment and the
//! request id (`spec/decision-semantics.md` §7), verified by
//! `verdict_core::approval::resubmission`, which auditors' offline tools share.
//!
//! Message: `b"verdict-approval/v1\n" ‖ action_commitment (32 bytes) ‖ request_id (UTF-8)`.
//! Verified with `verify_strict` (RFC 8032 §5.1.7 with canonical `S` and no small-order keys).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use verdict_core::approval::{resubmission, ApprovalError};
use verdict_core::note::{KeyId, Signer, Verifier};
use verdict_core::Hash;

use crate::error::CheckError;

/// Domain-separation prefix of the approval message.
pub const APPROVAL_CONTEXT: &[u8] = resubmission::TAG;
/// Maximum approvals in one request.
pub const MAX_APPROVALS: usize = 64;

/// One approval as sent by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Approver: hex key id or the approver's key name.
    pub approver: String,
    /// Base64 (standard) of the 64-byte Ed25519 signature.
    pub signature: String,
}

impl Approval {
    /// Sign an approval for `action_commitment` and `request_id` (for approver tooling and tests).
    pub fn sign(signer: &Signer, action_commitment: &Hash, request_id: &str) -> Self {
        Self {
            approver: signer.verifier().key_id().to_string(),
            signature: resubmission::sign(signer, action_commitment, request_id),
        }
    }
}

/// The signed message (`verdict_core::approval::resubmission::message`).
pub fn approval_message(action_commitment: &Hash, request_id: &str) -> Vec<u8> {
    resubmission::message(action_commitment, request_id)
}

/// Verify every approval; return the distinct approver key ids, sorted.
///
/// # Errors
/// [`CheckError::InvalidApproval`] for an unknown approver, a malformed or a failing signature;
/// [`CheckError::TooManyApprovals`] above [`MAX_APPROVALS`].
pub fn verify_approvals(
    approvers: &[Verifier],
    approvals: &[Approval],
    action_commitment: &Hash,
    request_id: &str,
) -> Result<Vec<KeyId>, CheckError> {
    if approvals.len() > MAX_APPROVALS {
        return Err(CheckError::TooManyApprovals {
            limit: MAX_APPROVALS,
        });
    }
    let mut ids = BTreeSet::new();
    for a in approvals {
        let approver = resubmission::verify(
            approvers,
            &a.approver,
            &a.signature,
            action_commitment,
            request_id,
        )
        .map_err(|e| CheckError::InvalidApproval {
            approver: a.approver.chars().take(64).collect(),
            reason: match e {
                ApprovalError::NotAnApprover { .. } | ApprovalError::UnknownApprover { .. } => {
                    "unknown approver"
                }
                ApprovalError::Malformed { .. } => "malformed signature",
                ApprovalError::BadSignature { .. } => "bad signature",
            },
        })?;
        ids.insert(approver.key_id);
    }
    Ok(ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> Signer {
        Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn verify_counts_distinct_and_rejects_bad() {
        let alice = signer("alice", 1);
        let bob = signer("bob", 2);
        let mallory = signer("mallory", 3);
        let keys = vec![alice.verifier(), bob.verifier()];
        let c = Hash([7; 32]);
        let a1 = Approval::sign(&alice, &c, "req-1");
        let b1 = Approval::sign(&bob, &c, "req-1");
        let ids =
            verify_approvals(&keys, &[a1.clone(), a1.clone(), b1.clone()], &c, "req-1").unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // By name also works.
        let by_name = Approval {
            approver: "alice".into(),
            ..a1.clone()
        };
        assert_eq!(
            verify_approvals(&keys, &[by_name], &c, "req-1")
                .unwrap()
                .len(),
            1
        );
        // Wrong request id, wrong commitment, unknown key, garbage.
        assert!(verify_approvals(&keys, std::slice::from_ref(&a1), &c, "req-2").is_err());
        assert!(
            verify_approvals(&keys, std::slice::from_ref(&a1), &Hash([8; 32]), "req-1").is_err()
        );
        let m = Approval::sign(&mallory, &c, "req-1");
        assert!(matches!(
            verify_approvals(&keys, &[m], &c, "req-1"),
            Err(CheckError::InvalidApproval {
                reason: "unknown approver",
                ..
            })
        ));
        let bad = Approval {
            signature: "AAAA".into(),
            ..b1
        };
        assert!(verify_approvals(&keys, &[bad], &c, "req-1").is_err());
    }
}
