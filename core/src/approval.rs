//! Signed approvals and rejections of an escalation (issue 15); spec `spec/approval.md`.
//!
//! An approver answers one escalation with an Ed25519 signature (RFC 8032, strict verification)
//! over a fixed-layout message (spec `approval.md` §2):
//!
//! ```text
//! "verdict-escalation-approval/v1\n"   31 bytes, domain-separation tag
//! escalation id                        16 bytes
//! action commitment                    32 bytes (receipt `action_commitment`)
//! policy commitment                    32 bytes (receipt `policy_commitment`)
//! verdict                               1 byte  (0x01 approve, 0x02 reject)
//! expiry                                8 bytes (ms since the Unix epoch, u64 big-endian)
//! ```
//!
//! The message is 120 bytes. The key is one of the policy's `[[approvers]]`; the signature is
//! carried as the approver's 4-byte key id (C2SP signed-note key id) and the 64 signature bytes,
//! so that an auditor holding the policy's approver keys verifies it offline.
//!
//! ```
//! use verdict_core::approval::{ApprovalMessage, Verdict};
//! use verdict_core::note::Signer;
//! use verdict_core::Hash;
//!
//! let alice = Signer::new("alice", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
//! let message = ApprovalMessage {
//!     escalation_id: [7; 16],
//!     action_commitment: Hash([1; 32]),
//!     policy_commitment: Hash([2; 32]),
//!     verdict: Verdict::Approve,
//!     expires_ms: 1_700_000_000_000,
//! };
//! let signed = message.sign(&alice);
//! let verified = signed.verify(&message, &[alice.verifier()]).unwrap();
//! assert_eq!(verified.key_id, alice.key_id());
//! ```

use crate::note::{KeyId, Signer, Verifier};
use crate::Hash;

pub mod resubmission;

/// Domain-separation tag that starts every approval message (spec `approval.md` §2).
pub const APPROVAL_TAG: &[u8] = b"verdict-escalation-approval/v1\n";
/// Length of an approval message.
pub const MESSAGE_LEN: usize = 31 + 16 + 32 + 32 + 1 + 8;
/// Length of an escalation id.
pub const ESCALATION_ID_LEN: usize = 16;

/// What the approver decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The escalated action may proceed (byte `0x01`).
    Approve,
    /// The escalated action must not proceed (byte `0x02`).
    Reject,
}

impl Verdict {
    /// The message byte.
    pub fn byte(self) -> u8 {
        match self {
            Verdict::Approve => 0x01,
            Verdict::Reject => 0x02,
        }
    }

    /// The wire name: `approve` or `reject`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    /// Parse a wire name.
    ///
    /// # Errors
    /// [`ApprovalError::Malformed`] for anything but `approve` and `reject`.
    pub fn from_name(name: &str) -> Result<Self, ApprovalError> {
        match name {
            "approve" => Ok(Verdict::Approve),
            "reject" => Ok(Verdict::Reject),
            _ => Err(ApprovalError::Malformed {
                what: "verdict is neither approve nor reject",
            }),
        }
    }
}

/// Why an approval does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// A field of the approval is malformed.
    #[error("malformed approval: {what}")]
    Malformed {
        /// Which part.
        what: &'static str,
    },
    /// The key id names none of the eligible approver keys.
    #[error("approver key {key_id} is not an eligible approver")]
    UnknownApprover {
        /// The key id given.
        key_id: KeyId,
    },
    /// The approver named (key id or key name) is none of the eligible approver keys.
    #[error("approver {approver} is not an eligible approver")]
    NotAnApprover {
        /// The approver as given (at most 64 characters).
        approver: String,
    },
    /// The signature does not verify under the approver's key.
    #[error("approval signature of {key_id} does not verify")]
    BadSignature {
        /// The key id given.
        key_id: KeyId,
    },
}

/// The signed content of an approval or rejection (spec `approval.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovalMessage {
    /// The escalation answered.
    pub escalation_id: [u8; ESCALATION_ID_LEN],
    /// The escalated receipt's action commitment.
    pub action_commitment: Hash,
    /// The escalated receipt's policy commitment (the decision is made under it).
    pub policy_commitment: Hash,
    /// Approve or reject.
    pub verdict: Verdict,
    /// The escalation's expiry (ms since the Unix epoch); after it the escalation is denied.
    pub expires_ms: u64,
}

impl ApprovalMessage {
    /// The exact bytes that are signed.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        let parts: [&[u8]; 6] = [
            APPROVAL_TAG,
            &self.escalation_id,
            &self.action_commitment.0,
            &self.policy_commitment.0,
            &[self.verdict.byte()],
            &self.expires_ms.to_be_bytes(),
        ];
        let mut at = 0;
        for part in parts {
            for (dst, src) in out.iter_mut().skip(at).zip(part) {
                *dst = *src;
            }
            at += part.len();
        }
        out
    }

    /// Sign as `signer`.
    pub fn sign(&self, signer: &Signer) -> SignedApproval {
        SignedApproval {
            key_id: signer.key_id(),
            signature: signer.sign_raw(&self.encode()),
        }
    }
}

/// An approval as carried: the approver's key id and the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedApproval {
    /// C2SP signed-note key id of the approver key.
    pub key_id: KeyId,
    /// Ed25519 signature over [`ApprovalMessage::encode`].
    pub signature: [u8; 64],
}

/// An approval whose signature verified: who signed, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedApproval {
    /// Key id of the approver.
    pub key_id: KeyId,
    /// Key name of the approver (from the verifier key).
    pub name: String,
    /// Approve or reject.
    pub verdict: Verdict,
}

impl SignedApproval {
    /// Parse the wire form: key id as 8 hex digits, signature as standard base64 of 64 bytes.
    ///
    /// # Errors
    /// [`ApprovalError::Malformed`].
    pub fn from_wire(key_id: &str, signature: &str) -> Result<Self, ApprovalError> {
        use base64::Engine as _;
        if key_id.len() != 8 {
            return Err(ApprovalError::Malformed {
                what: "key id is not 8 hex digits",
            });
        }
        let id: [u8; 4] = hex::decode(key_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(ApprovalError::Malformed {
                what: "key id is not 8 hex digits",
            })?;
        if signature.len() != 88 {
            return Err(ApprovalError::Malformed {
                what: "signature is not base64 of 64 bytes",
            });
        }
        let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(ApprovalError::Malformed {
                what: "signature is not base64 of 64 bytes",
            })?;
        Ok(Self {
            key_id: KeyId(id),
            signature,
        })
    }

    /// The signature as standard base64.
    pub fn signature_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.signature)
    }

    /// Verify against `message` with the eligible approver keys.
    ///
    /// # Errors
    /// [`ApprovalError::UnknownApprover`] when no key has this key id;
    /// [`ApprovalError::BadSignature`] when the signature does not verify (strictly).
    pub fn verify(
        &self,
        message: &ApprovalMessage,
        approvers: &[Verifier],
    ) -> Result<VerifiedApproval, ApprovalError> {
        let key = approvers.iter().find(|v| v.key_id() == self.key_id).ok_or(
            ApprovalError::UnknownApprover {
                key_id: self.key_id,
            },
        )?;
        key.verify_raw(&message.encode(), &self.signature)
            .map_err(|_| ApprovalError::BadSignature {
                key_id: self.key_id,
            })?;
        Ok(VerifiedApproval {
            key_id: self.key_id,
            name: key.name().to_owned(),
            verdict: message.verdict,
        })
    }
}

/// Parse an escalation id: 32 lowercase hex digits.
///
/// # Errors
/// [`ApprovalError::Malformed`].
pub fn parse_escalation_id(text: &str) -> Result<[u8; ESCALATION_ID_LEN], ApprovalError> {
    let bad = ApprovalError::Malformed {
        what: "escalation id is not 32 lowercase hex digits",
    };
    if text.len() != 2 * ESCALATION_ID_LEN
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad);
    }
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> Signer {
        Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn message() -> ApprovalMessage {
        ApprovalMessage {
            escalation_id: [9; 16],
            action_commitment: Hash([1; 32]),
            policy_commitment: Hash([2; 32]),
            verdict: Verdict::Approve,
            expires_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn layout_is_fixed() {
        let m = message().encode();
        assert_eq!(m.len(), 120);
        assert_eq!(&m[..31], APPROVAL_TAG);
        assert_eq!(&m[31..47], &[9; 16]);
        assert_eq!(&m[47..79], &[1; 32]);
        assert_eq!(&m[79..111], &[2; 32]);
        assert_eq!(m[111], 1);
        assert_eq!(&m[112..], &1_700_000_000_000u64.to_be_bytes());
    }

    #[test]
    fn every_bound_field_matters() {
        let alice = signer("alice", 1);
        let keys = [alice.verifier()];
        let m = message();
        let s = m.sign(&alice);
        assert!(s.verify(&m, &keys).is_ok());
        let changed = [
            ApprovalMessage {
                escalation_id: [8; 16],
                ..m
            },
            ApprovalMessage {
                action_commitment: Hash([3; 32]),
                ..m
            },
            ApprovalMessage {
                policy_commitment: Hash([3; 32]),
                ..m
            },
            ApprovalMessage {
                verdict: Verdict::Reject,
                ..m
            },
            ApprovalMessage {
                expires_ms: m.expires_ms + 1,
                ..m
            },
        ];
        for other in changed {
            assert_eq!(
                s.verify(&other, &keys),
                Err(ApprovalError::BadSignature {
                    key_id: alice.key_id()
                })
            );
        }
        let mallory = signer("mallory", 3);
        assert!(matches!(
            m.sign(&mallory).verify(&m, &keys),
            Err(ApprovalError::UnknownApprover { .. })
        ));
    }

    #[test]
    fn wire_form_round_trips_and_rejects_garbage() {
        let alice = signer("alice", 1);
        let s = message().sign(&alice);
        let back = SignedApproval::from_wire(&s.key_id.to_string(), &s.signature_base64()).unwrap();
        assert_eq!(back, s);
        assert!(SignedApproval::from_wire("zz", &s.signature_base64()).is_err());
        assert!(SignedApproval::from_wire("0000000g", &s.signature_base64()).is_err());
        assert!(SignedApproval::from_wire(&s.key_id.to_string(), "AAAA").is_err());
        assert!(parse_escalation_id(&"ab".repeat(16)).is_ok());
        assert!(parse_escalation_id(&"AB".repeat(16)).is_err());
        assert!(parse_escalation_id("ab").is_err());
        assert_eq!(Verdict::from_name("reject"), Ok(Verdict::Reject));
        assert!(Verdict::from_name("maybe").is_err());
    }
}
