//! Screening: exact, cheap relevance check (`spec/decision-semantics.md` §1).
//!
//! `matched` = action keys ∩ policy variables (sorted); `should_check` = `matched` non-empty;
//! keys that are not variables (including the reserved `approvals`) are reported in
//! `unknown_keys` (sorted). No values are inspected.

use serde::Serialize;

use verdict_core::receipt::{commit, CommitmentTag, Decision, Salt};

use crate::compile::CompiledPolicy;
use crate::decide::Outcome;
use crate::error::CheckError;

/// Maximum number of keys screened in one action.
pub const MAX_SCREEN_KEYS: usize = 4096;

/// The result of screening one action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Screen {
    /// True when at least one action key is a policy variable.
    pub should_check: bool,
    /// Action keys that are policy variables, sorted.
    pub matched: Vec<String>,
    /// Action keys that are not policy variables, sorted.
    pub unknown_keys: Vec<String>,
}

/// Screen an action against a policy.
///
/// # Errors
/// [`CheckError::NotAnObject`] or [`CheckError::TooLarge`] (over [`MAX_SCREEN_KEYS`] keys).
pub fn screen(policy: &CompiledPolicy, action: &serde_json::Value) -> Result<Screen, CheckError> {
    let obj = action.as_object().ok_or(CheckError::NotAnObject)?;
    if obj.len() > MAX_SCREEN_KEYS {
        return Err(CheckError::TooLarge {
            limit: crate::action::MAX_ACTION_BYTES,
        });
    }
    let ast = policy.ast();
    let mut matched = Vec::new();
    let mut unknown_keys = Vec::new();
    for key in obj.keys() {
        if ast.variable(key).is_some() {
            matched.push(key.clone());
        } else {
            unknown_keys.push(key.clone());
        }
    }
    matched.sort();
    unknown_keys.sort();
    Ok(Screen {
        should_check: !matched.is_empty(),
        matched,
        unknown_keys,
    })
}

/// The outcome recorded in a `kind = screen` receipt for an out-of-scope action: decision
/// `NotApplicable`, no matched variables, and the action commitment over the canonical action of
/// an action that binds no policy variable (`{}`).
pub fn not_applicable_outcome(salt: Salt) -> Outcome {
    let canonical_action = b"{}".to_vec();
    Outcome {
        decision: Decision::NotApplicable,
        fail_closed: false,
        violated: Vec::new(),
        violated_ids: Vec::new(),
        undetermined: Vec::new(),
        matched: Vec::new(),
        approvers: Vec::new(),
        action_commitment: commit(CommitmentTag::Action, &salt, &canonical_action),
        salt,
        canonical_action,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn screen_intersects_keys() {
        let p = crate::compile(
            "name = \"p\"\nversion = \"1\"\n[variables]\nb = { type = \"bool\" }\na = { type = \"int\" }\n",
            Salt([0; 32]),
        )
        .unwrap();
        let s = screen(
            &p,
            &json!({"z": 1, "b": "wrong type is fine here", "a": 1, "approvals": 2}),
        )
        .unwrap();
        assert!(s.should_check);
        assert_eq!(s.matched, ["a", "b"]);
        assert_eq!(s.unknown_keys, ["approvals", "z"]);
        let s = screen(&p, &json!({"tool": "search"})).unwrap();
        assert!(!s.should_check && s.matched.is_empty());
        assert_eq!(screen(&p, &json!([])), Err(CheckError::NotAnObject));
        let o = not_applicable_outcome(Salt([2; 32]));
        assert_eq!(o.decision, Decision::NotApplicable);
        assert_eq!(
            o.action_commitment,
            commit(CommitmentTag::Action, &Salt([2; 32]), b"{}")
        );
    }
}
