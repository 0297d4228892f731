//! Approvals carried by a resubmitted `POST /v1/check` (spec `decision-semantics.md` §7): the
//! caller resubmits an escalated action with the same request id and action salt, plus
//! approvals signed over
//!
//! ```text
//! "verdict-approval/v1\n" ‖ action_commitment (32 raw bytes) ‖ request_id (UTF-8)
//! ```
//!
//! An approval names its approver by hex key id or key name; the signature is standard base64 of
//! 64 bytes, verified strictly (RFC 8032 §5.1.7). The server keeps the approvals it verified in
//! the decision's private record (spec `evidence-package.md` §5), so an auditor verifies them
//! offline with [`verify`], as the checker did.
//!
//! ```
//! use verdict_core::approval::resubmission;
//! use verdict_core::note::Signer;
//! use verdict_core::Hash;
//!
//! let alice = Signer::new("alice", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
//! let commitment = Hash([7; 32]);
//! let signature = resubmission::sign(&alice, &commitment, "order-1");
//! let approver = resubmission::verify(&[alice.verifier()], "alice", &signature, &commitment, "order-1");
//! assert_eq!(approver.unwrap().key_id, alice.key_id());
//! ```

use base64::Engine as _;

use super::ApprovalError;
use crate::note::{KeyId, Signer, Verifier};
use crate::Hash;

/// Domain-separation prefix of a resubmission approval (spec `decision-semantics.md` §7).
pub const TAG: &[u8] = b"verdict-approval/v1\n";

/// A resubmission approval whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    /// Key id of the approver key.
    pub key_id: KeyId,
    /// Key name of the approver key.
    pub name: String,
}

/// The signed message.
pub fn message(action_commitment: &Hash, request_id: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(TAG.len() + 32 + request_id.len());
    m.extend_from_slice(TAG);
    m.extend_from_slice(&action_commitment.0);
    m.extend_from_slice(request_id.as_bytes());
    m
}

/// Sign an approval (standard base64 of the signature), for approver tooling and tests.
pub fn sign(signer: &Signer, action_commitment: &Hash, request_id: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signer.sign_raw(&message(action_commitment, request_id)))
}

/// Verify one approval: `approver` (hex key id or key name) must name one of `approvers`, and
/// `signature` (standard base64 of 64 bytes) must verify strictly under its key.
///
/// # Errors
/// [`ApprovalError::NotAnApprover`] when no key has that id or name,
/// [`ApprovalError::Malformed`] for a signature that is not base64 of 64 bytes,
/// [`ApprovalError::BadSignature`] when it does not verify.
pub fn verify(
    approvers: &[Verifier],
    approver: &str,
    signature: &str,
    action_commitment: &Hash,
    request_id: &str,
) -> Result<Approver, ApprovalError> {
    let key = approvers
        .iter()
        .find(|v| v.key_id().to_string() == approver || v.name() == approver)
        .ok_or_else(|| ApprovalError::NotAnApprover {
            approver: approver.chars().take(64).collect(),
        })?;
    let malformed = ApprovalError::Malformed {
        what: "signature is not base64 of 64 bytes",
    };
    if signature.len() > 128 {
        return Err(malformed);
    }
    let bytes: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(malformed)?;
    key.verify_raw(&message(action_commitment, request_id), &bytes)
        .map_err(|_| ApprovalError::BadSignature {
            key_id: key.key_id(),
        })?;
    Ok(Approver {
        key_id: key.key_id(),
        name: key.name().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> Signer {
        Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn by_key_id_or_name_and_every_failure_named() {
        let alice = signer("alice", 1);
        let mallory = signer("mallory", 3);
        let keys = [alice.verifier()];
        let c = Hash([7; 32]);
        let sig = sign(&alice, &c, "req-1");
        let by_id = verify(&keys, &alice.key_id().to_string(), &sig, &c, "req-1").unwrap();
        assert_eq!(by_id.name, "alice");
        assert_eq!(verify(&keys, "alice", &sig, &c, "req-1").unwrap(), by_id);
        // Another request id, another commitment: the signature binds both.
        assert!(matches!(
            verify(&keys, "alice", &sig, &c, "req-2"),
            Err(ApprovalError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(&keys, "alice", &sig, &Hash([8; 32]), "req-1"),
            Err(ApprovalError::BadSignature { .. })
        ));
        // A key that is not an approver, even with a valid signature of its own.
        let m = sign(&mallory, &c, "req-1");
        assert!(matches!(
            verify(&keys, "mallory", &m, &c, "req-1"),
            Err(ApprovalError::NotAnApprover { .. })
        ));
        for bad in ["AAAA", "", &"A".repeat(200), "not base64!"] {
            assert!(matches!(
                verify(&keys, "alice", bad, &c, "req-1"),
                Err(ApprovalError::Malformed { .. })
            ));
        }
    }
}
