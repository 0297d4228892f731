//! Receipt issuing: build the [`Statement`] of a decision and sign it (`spec/receipt.md`,
//! `spec/decision-semantics.md` §6).

use verdict_core::note::Signer;
use verdict_core::receipt::{published_request_id, Kind, Receipt, Statement, STATEMENT_VERSION};

use crate::compile::CompiledPolicy;
use crate::decide::Outcome;
use crate::error::CheckError;

/// Checker software version recorded in receipts.
pub const CHECKER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Solver name and version recorded in receipts, e.g. `z3 4.8.12.0` (from the loaded libz3's
/// full version string, whose leading `Z3 ` is dropped).
pub fn solver_version() -> String {
    let full = z3::full_version();
    format!("z3 {}", full.strip_prefix("Z3 ").unwrap_or(full))
}

/// The statement a receipt for `outcome` signs. Its `request_id` is the commitment to the caller's
/// `request_id` under the outcome's action salt, never the caller's text (spec `receipt.md` §7.1).
pub fn statement(
    outcome: &Outcome,
    kind: Kind,
    policy: &CompiledPolicy,
    request_id: &str,
    time_ms: u64,
    signer: &Signer,
) -> Statement {
    Statement {
        version: STATEMENT_VERSION,
        checker_key_id: signer.verifier().key_id(),
        policy_commitment: policy.commitment(),
        policy_version: policy.version().to_owned(),
        action_commitment: outcome.action_commitment,
        decision: outcome.decision,
        kind,
        fail_closed: outcome.fail_closed,
        violated_rules: outcome.violated.clone(),
        matched_variables: outcome.matched.clone(),
        undetermined_variables: outcome.undetermined.clone(),
        approvers: outcome.approvers.clone(),
        time_ms,
        request_id: published_request_id(&outcome.salt, request_id),
        checker_version: CHECKER_VERSION.to_owned(),
        solver_version: solver_version(),
    }
}

/// Build and sign the receipt (COSE_Sign1 bytes) for a decision.
///
/// # Errors
/// [`CheckError::Receipt`] when the statement is over a bound or signing fails.
pub fn issue_receipt(
    outcome: &Outcome,
    kind: Kind,
    policy: &CompiledPolicy,
    request_id: &str,
    time_ms: u64,
    signer: &Signer,
) -> Result<Vec<u8>, CheckError> {
    let st = statement(outcome, kind, policy, request_id, time_ms, signer);
    Ok(Receipt::sign(&st, signer)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use verdict_core::receipt::{Decision, Salt};

    use super::*;
    use crate::{CheckRequest, Checker};

    #[test]
    fn receipt_round_trip() {
        let src = "name = \"p\"\nversion = \"2.0\"\n[variables]\nn = { type = \"int\" }\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'n < 5'\neffect = \"deny\"\n";
        let policy = crate::compile(src, Salt([0; 32])).unwrap();
        let mut c = Checker::new(&policy, Duration::from_secs(5)).unwrap();
        let o = c
            .check(&CheckRequest {
                action: json!({"n": 7}),
                request_id: "req-9".into(),
                salt: Some(Salt([5; 32])),
                approvals: vec![],
            })
            .unwrap();
        let signer = Signer::new(
            "checker.example",
            ed25519_dalek::SigningKey::from_bytes(&[4; 32]),
        )
        .unwrap();
        let bytes = issue_receipt(
            &o,
            Kind::Check,
            &policy,
            "req-9",
            1_700_000_000_000,
            &signer,
        )
        .unwrap();
        let v = Receipt::verify(&bytes, &[signer.verifier()]).unwrap();
        let st = v.statement();
        assert_eq!(st.decision, Decision::Deny);
        assert_eq!(st.violated_rules, [0]);
        assert_eq!(st.matched_variables, ["n"]);
        assert_eq!(st.policy_commitment, policy.commitment());
        assert_eq!(st.policy_version, "2.0");
        assert_eq!(st.action_commitment, o.action_commitment);
        assert!(
            st.solver_version.starts_with("z3 "),
            "{}",
            st.solver_version
        );
        assert_eq!(st.checker_version, CHECKER_VERSION);
        // Same policy + action + salt + time ⇒ same receipt bytes.
        let again = c
            .check(&CheckRequest {
                action: json!({"n": 7}),
                request_id: "req-9".into(),
                salt: Some(Salt([5; 32])),
                approvals: vec![],
            })
            .unwrap();
        let bytes2 = issue_receipt(
            &again,
            Kind::Check,
            &policy,
            "req-9",
            1_700_000_000_000,
            &signer,
        )
        .unwrap();
        assert_eq!(bytes, bytes2);
    }
}
