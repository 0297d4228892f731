//! Decision replay (`verdict-policy replay PKG`, issue 16 item 4; package layout
//! `spec/evidence-package.md`): decide every logged action again, under the policy version it
//! was decided under, with the inputs it was decided with, and report each decision that differs.
//!
//! For an auditor who holds the policy texts under NDA: the package's `policies/<hex>.json`
//! carry each version's text and salt; its compiled commitment must equal `<hex>`, so the text is
//! the one the receipts commit to. The decision, kind, violated rules, approvers and time come
//! from the receipt (the signed entry); the action, salt and escalation evidence from the private
//! record. Entries are replayed as the server decided them (`log-server` `service/check.rs`,
//! `service/escalations/resolve.rs`):
//!
//! - **screen** receipts: screening the stored action again must give the same answer:
//!   `not-applicable` when no key of the action is a policy variable, `in-scope` otherwise.
//! - **check** receipts without escalation evidence: checked again with the receipt's salt and
//!   request id; with the receipt's approvers when it lists any (a resubmission with approvals,
//!   whose signatures the server verified; their key ids are signed in the receipt).
//! - **final decisions of escalations** (`escalation` object in the record, spec `approval.md`
//!   §5): `approved` → checked again with the key ids that approved (an escalate result becomes a
//!   fail-closed deny, as the server does); `rejected` / `expired` → the action must still
//!   escalate without approvals, and the final decision is a deny (fail-closed when expired)
//!   listing the rules the escalation listed; an `expired` decision must be logged at or after
//!   the escalation's expiry.
//!
//! Decisions do not depend on the wall clock (the policy language has no time input), so the
//! receipt's time is an input only of the expiry check. Token values are stored as their
//! presence (`true`); the checker reads every token as its presence, so the stored action decides
//! the same ([`decidable`]).
//!
//! What is compared: decision, `fail_closed`, violated rules, undetermined variables, matched
//! variables, approvers, and the action commitment (salt + canonical action of the record).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use verdict_core::note::KeyId;
use verdict_core::receipt::{Decision, Kind, Receipt, Salt, Statement};
use verdict_core::statement::{entry_type, EntryType};

use crate::ast::VarType;
use crate::compile::{compile, CompiledPolicy};
use crate::decide::{CheckRequest, Checker, Outcome};

/// A policy file of the package (`policies/<hex>.json`), the fields replay needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyText {
    /// Commitment, 64 lowercase hex digits (the file name).
    pub commitment: String,
    /// The policy source text.
    pub text: String,
    /// The policy salt, 64 hex digits.
    pub salt: String,
}

/// Why the package cannot be replayed at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A policy file is unusable: its salt is not hex, its text does not compile, or the
    /// compiled commitment is not the file's.
    #[error("policy {commitment}: {reason}")]
    Policy {
        /// The file's commitment.
        commitment: String,
        /// What is wrong.
        reason: String,
    },
    /// The checker could not be set up for a policy (encoding error).
    #[error("checker for policy {commitment}: {reason}")]
    Checker {
        /// The policy's commitment.
        commitment: String,
        /// The checker's error.
        reason: String,
    },
}

/// One decision that did not replay to the logged one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Log index of the receipt.
    pub index: u64,
    /// What the receipt says (decision, or the differing field's value).
    pub expected: String,
    /// What replay gave.
    pub got: String,
    /// Which field differs, or why the entry could not be replayed.
    pub what: String,
}

/// Counts of a replay run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries read.
    pub entries: u64,
    /// Check receipts decided again.
    pub checks: u64,
    /// Screen receipts screened again.
    pub screens: u64,
    /// Final decisions of escalations among the checks.
    pub escalation_finals: u64,
    /// Policy statements (nothing to replay).
    pub statements: u64,
    /// Decisions that differ (each listed).
    pub differ: u64,
}

/// Replays the entries of a package, fed in index order. Keeps one warm [`Checker`] per policy
/// version (thread-bound: use it on one thread).
pub struct Replayer {
    policies: BTreeMap<String, CompiledPolicy>,
    checkers: BTreeMap<String, Checker>,
    timeout: Duration,
    /// The counts so far.
    pub summary: Summary,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Replayer {
    /// A replayer for these policy versions; `timeout` bounds each decision (as the server's).
    ///
    /// # Errors
    /// [`ReplayError::Policy`] when a policy file does not compile to its commitment.
    pub fn new(policies: &[PolicyText], timeout: Duration) -> Result<Self, ReplayError> {
        let mut compiled = BTreeMap::new();
        for p in policies {
            let bad = |reason: String| ReplayError::Policy {
                commitment: p.commitment.clone(),
                reason,
            };
            let salt = Salt::from_hex(&p.salt).map_err(|e| bad(format!("salt: {e}")))?;
            let policy =
                compile(&p.text, salt).map_err(|e| bad(format!("does not compile: {e}")))?;
            let got = policy.commitment().to_hex();
            if got != p.commitment {
                return Err(bad(format!("text and salt commit to {got}")));
            }
            compiled.insert(p.commitment.clone(), policy);
        }
        Ok(Replayer {
            policies: compiled,
            checkers: BTreeMap::new(),
            timeout,
            summary: Summary::default(),
        })
    }

    /// Replay the entry at `index` (its bytes and private record). Returns the differences
    /// found for it (none when it replays to the logged decision).
    ///
    /// # Errors
    /// [`ReplayError::Checker`] when no checker can be built for a policy.
    pub fn entry(
        &mut self,
        index: u64,
        entry: &[u8],
        record: Option<&Value>,
    ) -> Result<Vec<Difference>, ReplayError> {
        self.summary.entries = self.summary.entries.saturating_add(1);
        let diffs = match entry_type(entry) {
            EntryType::PolicyStatement => {
                self.summary.statements = self.summary.statements.saturating_add(1);
                Vec::new()
            }
            EntryType::Unknown => vec![unreplayable(
                index,
                "entry is neither a receipt nor a policy statement",
            )],
            EntryType::Receipt => match Receipt::decode(entry) {
                Err(e) => vec![unreplayable(
                    index,
                    &format!("receipt does not decode: {e}"),
                )],
                Ok(receipt) => self.receipt(index, &receipt.statement, record)?,
            },
        };
        self.summary.differ = self
            .summary
            .differ
            .saturating_add(u64::try_from(diffs.len()).unwrap_or(u64::MAX));
        Ok(diffs)
    }

    fn receipt(
        &mut self,
        index: u64,
        st: &Statement,
        record: Option<&Value>,
    ) -> Result<Vec<Difference>, ReplayError> {
        let commitment = st.policy_commitment.to_hex();
        let Some(policy) = self.policies.get(&commitment) else {
            return Ok(vec![unreplayable(
                index,
                &format!("no policy file for commitment {commitment}"),
            )]);
        };
        let Some(record) = record else {
            return Ok(vec![unreplayable(index, "no private record")]);
        };
        let stored = match Stored::parse(record) {
            Ok(s) => s,
            Err(reason) => {
                return Ok(vec![unreplayable(
                    index,
                    &format!("private record: {reason}"),
                )])
            }
        };
        if stored.policy != commitment {
            return Ok(vec![differ(
                index,
                "record policy",
                &commitment,
                &stored.policy,
            )]);
        }
        let action = decidable(policy, &stored.action);
        if st.kind == Kind::Screen {
            self.summary.screens = self.summary.screens.saturating_add(1);
            let got = match crate::screen::screen(policy, &action) {
                Ok(s) if s.should_check => "in-scope".to_owned(),
                Ok(_) => Decision::NotApplicable.as_str().to_owned(),
                Err(e) => format!("error: {e}"),
            };
            let expected = st.decision.as_str();
            return Ok(if got == expected {
                Vec::new()
            } else {
                vec![differ(index, "screen", expected, &got)]
            });
        }
        self.summary.checks = self.summary.checks.saturating_add(1);
        let checker = match self.checkers.entry(commitment.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let c = Checker::new(policy, self.timeout).map_err(|e| ReplayError::Checker {
                    commitment: commitment.clone(),
                    reason: e.to_string(),
                })?;
                v.insert(c)
            }
        };
        let request = CheckRequest {
            action,
            request_id: st.request_id.clone(),
            salt: Some(stored.salt),
            approvals: Vec::new(),
        };
        let deadline = || std::time::Instant::now() + self.timeout;
        let mut extra = Vec::new();
        let outcome = match &stored.escalation {
            Some(evidence) => {
                self.summary.escalation_finals = self.summary.escalation_finals.saturating_add(1);
                match evidence.resolution.as_str() {
                    "approved" => checker
                        .check_approved_until(&request, &evidence.approving, deadline(), None)
                        .map(|mut o| {
                            if o.decision == Decision::Escalate {
                                o.decision = Decision::Deny;
                                o.fail_closed = true;
                                o.undetermined.clear();
                            }
                            o
                        }),
                    resolution @ ("rejected" | "expired") => {
                        if resolution == "expired" && st.time_ms < evidence.expires_ms {
                            extra.push(differ(
                                index,
                                "expiry",
                                &format!("decided at or after {}", evidence.expires_ms),
                                &st.time_ms.to_string(),
                            ));
                        }
                        checker.check_until(&request, deadline(), None).map(|o| {
                            if o.decision == Decision::Escalate {
                                Outcome {
                                    decision: Decision::Deny,
                                    fail_closed: resolution == "expired",
                                    undetermined: Vec::new(),
                                    ..o
                                }
                            } else {
                                extra.push(differ(
                                    index,
                                    "escalation",
                                    "escalate without approvals",
                                    o.decision.as_str(),
                                ));
                                o
                            }
                        })
                    }
                    other => {
                        return Ok(vec![unreplayable(
                            index,
                            &format!("unknown escalation resolution {other:?}"),
                        )])
                    }
                }
            }
            None if !st.approvers.is_empty() => {
                checker.check_approved_until(&request, &st.approvers, deadline(), None)
            }
            None => checker.check_until(&request, deadline(), None),
        };
        let mut diffs = match outcome {
            Ok(o) => compare(index, st, &o),
            Err(e) => vec![differ(
                index,
                "decision",
                st.decision.as_str(),
                &format!("error: {e}"),
            )],
        };
        diffs.extend(extra);
        if stored.canonical.as_deref().is_some_and(|c| {
            verdict_core::receipt::commit(
                verdict_core::receipt::CommitmentTag::Action,
                &stored.salt,
                c.as_bytes(),
            ) != st.action_commitment
        }) {
            diffs.push(differ(
                index,
                "record canonical_action",
                &st.action_commitment.to_hex(),
                "a canonical action that does not open the commitment",
            ));
        }
        Ok(diffs)
    }
}

/// The outcome against the receipt, field by field; the decision first.
fn compare(index: u64, st: &Statement, o: &Outcome) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let mut field = |what: &str, expected: String, got: String| {
        if expected != got {
            diffs.push(differ(index, what, &expected, &got));
        }
    };
    let closed =
        |d: Decision, f: bool| format!("{}{}", d.as_str(), if f { " (fail-closed)" } else { "" });
    field(
        "decision",
        closed(st.decision, st.fail_closed),
        closed(o.decision, o.fail_closed),
    );
    field(
        "violated_rules",
        format!("{:?}", st.violated_rules),
        format!("{:?}", o.violated),
    );
    field(
        "undetermined_variables",
        format!("{:?}", st.undetermined_variables),
        format!("{:?}", o.undetermined),
    );
    field(
        "matched_variables",
        format!("{:?}", st.matched_variables),
        format!("{:?}", o.matched),
    );
    let ids = |v: &[KeyId]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    field("approvers", ids(&st.approvers), ids(&o.approvers));
    field(
        "action_commitment",
        st.action_commitment.to_hex(),
        o.action_commitment.to_hex(),
    );
    diffs
}

fn differ(index: u64, what: &str, expected: &str, got: &str) -> Difference {
    Difference {
        index,
        expected: expected.to_owned(),
        got: got.to_owned(),
        what: what.to_owned(),
    }
}

fn unreplayable(index: u64, why: &str) -> Difference {
    differ(index, "not replayable", "a replayable decision", why)
}

/// The parts of a private record replay reads.
struct Stored {
    action: Value,
    canonical: Option<String>,
    policy: String,
    salt: Salt,
    escalation: Option<Evidence>,
}

/// The escalation evidence of a final decision (spec `approval.md` §5).
struct Evidence {
    resolution: String,
    expires_ms: u64,
    /// Distinct key ids whose verdict is `approve`.
    approving: Vec<KeyId>,
}

impl Stored {
    fn parse(record: &Value) -> Result<Self, String> {
        let text = |k: &str| {
            record
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no string field {k:?}"))
        };
        let action = record
            .get("action")
            .filter(|a| a.is_object())
            .cloned()
            .ok_or("no action object")?;
        let salt = Salt::from_hex(text("salt")?).map_err(|e| format!("salt: {e}"))?;
        let escalation = match record.get("escalation") {
            None | Some(Value::Null) => None,
            Some(e) => {
                let resolution = e
                    .get("resolution")
                    .and_then(Value::as_str)
                    .ok_or("escalation without resolution")?
                    .to_owned();
                let expires_ms = e.get("expires_ms").and_then(Value::as_u64).unwrap_or(0);
                let mut approving = BTreeSet::new();
                for a in e
                    .get("approvals")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if a.get("verdict").and_then(Value::as_str) != Some("approve") {
                        continue;
                    }
                    let id = a
                        .get("key_id")
                        .and_then(Value::as_str)
                        .and_then(|h| hex::decode(h).ok())
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .ok_or("approval with a malformed key_id")?;
                    approving.insert(KeyId(id));
                }
                Some(Evidence {
                    resolution,
                    expires_ms,
                    approving: approving.into_iter().collect(),
                })
            }
        };
        Ok(Stored {
            action,
            canonical: record
                .get("canonical_action")
                .and_then(Value::as_str)
                .map(str::to_owned),
            policy: text("policy")?.to_owned(),
            salt,
            escalation,
        })
    }
}

/// The stored action as the checker decides it: a token kept as its presence (`true`) becomes
/// an empty token string (the checker reads every token as its presence only). The same
/// mapping as the server's `service/action.rs` `decidable`.
pub fn decidable(policy: &CompiledPolicy, stored: &Value) -> Value {
    let mut action = stored.clone();
    if let Value::Object(map) = &mut action {
        for (key, value) in map.iter_mut() {
            let token = policy
                .ast()
                .variable(key)
                .is_some_and(|v| v.ty == VarType::Token);
            if token && *value == Value::Bool(true) {
                *value = Value::String(String::new());
            }
        }
    }
    action
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use verdict_core::note::Signer;

    use super::*;
    use crate::issue::issue_receipt;

    const SRC: &str = r#"name = "payments"
version = "1.0.0"
[variables]
amount = { type = "int", min = 0, max = 1000000 }
country = { type = "string" }
api_key = { type = "token" }
[[rules]]
id = "limit"
text = "at most 1000"
require = 'amount <= 1000'
effect = "deny"
[[rules]]
id = "review"
text = "foreign payments are reviewed"
require = 'country == "FR"'
effect = "escalate"
"#;

    struct Fixture {
        policy: CompiledPolicy,
        signer: Signer,
        checker: Checker,
        replayer: Replayer,
        next: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let policy = compile(SRC, Salt([7; 32])).unwrap();
            let text = PolicyText {
                commitment: policy.commitment().to_hex(),
                text: SRC.to_owned(),
                salt: Salt([7; 32]).to_hex(),
            };
            Fixture {
                checker: Checker::new(&policy, Duration::from_secs(5)).unwrap(),
                replayer: Replayer::new(&[text], Duration::from_secs(5)).unwrap(),
                signer: Signer::generate("checker.example").unwrap(),
                policy,
                next: 0,
            }
        }

        /// Decide `action` as the server does, log it (receipt + private record), replay it.
        fn decide_and_replay(
            &mut self,
            action: Value,
            tamper: impl FnOnce(&mut Outcome),
        ) -> Vec<Difference> {
            let screened = crate::screen::screen(&self.policy, &action).unwrap();
            let request_id = format!("r{}", self.next);
            let req = CheckRequest {
                action: action.clone(),
                request_id: request_id.clone(),
                salt: None,
                approvals: Vec::new(),
            };
            let (mut outcome, kind) = if screened.should_check {
                (self.checker.check(&req).unwrap(), Kind::Check)
            } else {
                (
                    crate::screen::not_applicable_outcome(Salt([1; 32])),
                    Kind::Screen,
                )
            };
            let canonical = String::from_utf8(outcome.canonical_action.clone()).unwrap();
            tamper(&mut outcome);
            let receipt = issue_receipt(
                &outcome,
                kind,
                &self.policy,
                &request_id,
                1_000,
                &self.signer,
            )
            .unwrap();
            // The server stores token values as their presence.
            let mut stored = action;
            if let Some(k) = stored.get_mut("api_key") {
                *k = json!(true);
            }
            let record = json!({
                "action": stored,
                "canonical_action": canonical,
                "policy": self.policy.commitment().to_hex(),
                "request_id": request_id,
                "salt": outcome.salt.to_hex(),
            });
            self.next += 1;
            self.replayer
                .entry(self.next - 1, &receipt, Some(&record))
                .unwrap()
        }
    }

    #[test]
    fn logged_decisions_replay_to_themselves() {
        let mut f = Fixture::new();
        for action in [
            json!({"amount": 10, "country": "FR", "api_key": "sk-secret"}),
            json!({"amount": 5000, "country": "FR"}),
            json!({"amount": 10}),
            json!({"unrelated": 1}),
        ] {
            assert_eq!(f.decide_and_replay(action.clone(), |_| {}), [], "{action}");
        }
        let s = &f.replayer.summary;
        assert_eq!((s.checks, s.screens, s.differ), (3, 1, 0));
    }

    #[test]
    fn a_changed_decision_is_reported_with_index_expected_and_got() {
        let mut f = Fixture::new();
        let diffs = f.decide_and_replay(json!({"amount": 5000, "country": "FR"}), |o| {
            o.decision = Decision::Allow;
            o.violated.clear();
        });
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert_eq!(diffs[0].index, 0);
        assert_eq!(diffs[0].what, "decision");
        assert_eq!(diffs[0].expected, "allow");
        assert_eq!(diffs[0].got, "deny");
        assert_eq!(diffs[1].what, "violated_rules");
        // An allow logged as a deny differs too.
        let diffs = f.decide_and_replay(json!({"amount": 1}), |o| o.decision = Decision::Deny);
        assert_eq!(diffs.len(), 1);
        assert_eq!(f.replayer.summary.differ, 3);
    }

    #[test]
    fn a_policy_text_must_commit_to_its_file_name() {
        let err = Replayer::new(
            &[PolicyText {
                commitment: "00".repeat(32),
                text: SRC.to_owned(),
                salt: Salt([7; 32]).to_hex(),
            }],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("commit to"), "{err}");
    }

    #[test]
    fn missing_records_and_policies_are_not_replayable() {
        let mut f = Fixture::new();
        let other = compile(&SRC.replace("1.0.0", "2.0.0"), Salt([7; 32])).unwrap();
        let o = crate::screen::not_applicable_outcome(Salt([1; 32]));
        let receipt = issue_receipt(&o, Kind::Screen, &other, "x", 1, &f.signer).unwrap();
        let d = f.replayer.entry(0, &receipt, Some(&json!({}))).unwrap();
        assert!(d[0].got.contains("no policy file"), "{d:?}");
        let receipt = issue_receipt(&o, Kind::Screen, &f.policy, "x", 1, &f.signer).unwrap();
        let d = f.replayer.entry(1, &receipt, None).unwrap();
        assert_eq!(d[0].got, "no private record");
        let d = f.replayer.entry(2, b"junk", None).unwrap();
        assert_eq!(d[0].what, "not replayable");
    }
}
