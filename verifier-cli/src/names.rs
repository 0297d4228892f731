//! Stable lowercase names of core enums, for output. The spelling is core's
//! ([`Decision::as_str`], [`Kind::as_str`]), the same as the server prints, so that there is one
//! name per decision everywhere (`spec/decision-semantics.md` "Decision names").

use verdict_core::receipt::{Decision, Kind};

/// `allow`, `deny`, `escalate`, `not-applicable` or `in-scope`.
pub fn decision_name(d: Decision) -> &'static str {
    d.as_str()
}

/// `screen` or `check`.
pub fn kind_name(k: Kind) -> &'static str {
    k.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Check;

    /// Every decision, with a match that stops compiling when a variant is added.
    fn decisions() -> Vec<Decision> {
        let all = [
            Decision::Allow,
            Decision::Deny,
            Decision::Escalate,
            Decision::NotApplicable,
            Decision::InScope,
        ];
        for d in all {
            match d {
                Decision::Allow
                | Decision::Deny
                | Decision::Escalate
                | Decision::NotApplicable
                | Decision::InScope => {}
            }
        }
        all.to_vec()
    }

    /// The names the verifier prints (`verify`, `inspect`, `audit` counts and failed checks),
    /// pinned: a change here is a change of the documented output.
    #[test]
    fn output_names() {
        let kinds = [Kind::Screen, Kind::Check];
        for k in kinds {
            match k {
                Kind::Screen | Kind::Check => {}
            }
        }
        let checks = [
            Check::BundleFormat,
            Check::CheckpointSignature,
            Check::Inclusion,
            Check::ReceiptFormat,
            Check::ReceiptSignature,
            Check::ActionCommitment,
            Check::Consistency,
            Check::Rollback,
            Check::Fork,
            Check::Tiles,
            Check::Cosignature,
            Check::WitnessQuorum,
            Check::PolicyCommitment,
            Check::PolicyRegistration,
            Check::Manifest,
            Check::Layout,
            Check::EntryTime,
            Check::Records,
            Check::Approval,
            Check::Summary,
        ];
        // A BTreeMap, not `json!`: serde_json's `preserve_order` feature is switched on by other
        // crates in a workspace build, and the key order must not depend on who else is built.
        let names: std::collections::BTreeMap<&str, Vec<&str>> = [
            (
                "decision",
                decisions().into_iter().map(decision_name).collect(),
            ),
            ("kind", kinds.into_iter().map(kind_name).collect()),
            ("check", checks.into_iter().map(Check::name).collect()),
        ]
        .into_iter()
        .collect();
        insta::assert_json_snapshot!("output_names", names);
        // `--json` serialises a check with the same name.
        for c in checks {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
    }
}
