//! Battle-test suites: a policy plus actions with their expected outcomes
//! (`spec/policy-language.md` §9), and a runner that puts every case through a real [`Checker`].
//!
//! A suite is TOML (or JSON with the same shape):
//! ```toml
//! policy = "customer-data-egress.toml"   # optional: policy file, relative to the suite
//! keys = "keys"                          # optional: approver key folder, relative to the suite
//!
//! [[case]]
//! name = "external without authorization"
//! action = { destination = "external", record_count = 10 }
//! approvals = ["alice"]                  # optional: key files `<keys>/<name>.key` to sign with
//! expect = "escalate"                    # allow | deny | escalate | error
//! violated = []                          # optional: violated rule ids, compared as a set
//! undetermined = ["authorization_token"] # optional: undetermined variables, compared as a set
//! ```
//! Each case is screened first, as the server does (`spec/decision-semantics.md` §6): an action
//! that binds no policy variable is `not-applicable`. The runner checks each case twice when it
//! carries approvals: once without, to learn the
//! action commitment under the case's fixed salt and request id, then with approvals signed
//! over it (`spec/decision-semantics.md` §7), exactly as an escalated action is resubmitted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use verdict_core::note::Signer;
use verdict_core::receipt::{Decision, Salt};

use crate::{Approval, CheckError, CheckRequest, Checker, CompiledPolicy, Outcome};

/// Largest suite file accepted.
pub const MAX_SUITE_BYTES: usize = 4 << 20;

/// Errors of loading or running a suite (not case mismatches: those are results).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The suite file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The suite file is over [`MAX_SUITE_BYTES`].
    #[error("suite {path} exceeds {limit} bytes")]
    TooLarge {
        /// File.
        path: PathBuf,
        /// Limit.
        limit: usize,
    },
    /// The suite does not parse.
    #[error("malformed suite {path}: {reason}")]
    Malformed {
        /// File.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// An approver key file is missing or malformed.
    #[error("approver key {path}: {reason}")]
    Key {
        /// Key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The checker could not be created.
    #[error("checker: {0}")]
    Checker(CheckError),
}

/// Expected outcome of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Decision allow.
    Allow,
    /// Decision deny.
    Deny,
    /// Decision escalate.
    Escalate,
    /// The action is out of scope: screening matched no policy variable
    /// (`spec/decision-semantics.md` §6).
    #[serde(rename = "not-applicable")]
    NotApplicable,
    /// The action (or an approval) is rejected with an error; no decision.
    Error,
}

impl Expect {
    /// The expectation matching a decision.
    pub fn of(decision: Decision) -> Self {
        match decision {
            Decision::Allow => Expect::Allow,
            Decision::Deny => Expect::Deny,
            Decision::Escalate => Expect::Escalate,
            Decision::NotApplicable => Expect::NotApplicable,
            // Only a logged screen carries in-scope (spec receipt.md §3); a check never decides
            // it, so no suite case can expect it.
            Decision::InScope => Expect::Error,
        }
    }

    /// Lowercase name, as in suites and every output: a decision's name
    /// ([`Decision::as_str`], `not-applicable` with a hyphen) or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Allow => Decision::Allow.as_str(),
            Expect::Deny => Decision::Deny.as_str(),
            Expect::Escalate => Decision::Escalate.as_str(),
            Expect::NotApplicable => Decision::NotApplicable.as_str(),
            Expect::Error => "error",
        }
    }
}

/// One case of a suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Human name, unique within the suite.
    pub name: String,
    /// The action (a JSON object of variable values).
    pub action: serde_json::Value,
    /// Approver key file names (without `.key`) that sign approvals for this case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// Expected outcome.
    pub expect: Expect,
    /// Expected violated rule ids (set comparison); unchecked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violated: Option<Vec<String>>,
    /// Expected undetermined variables (set comparison); unchecked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undetermined: Option<Vec<String>>,
}

/// A suite file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Policy file relative to the suite (informational for `verdict-policy test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Approver key folder relative to the suite; default `keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// The cases, in order.
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

impl Suite {
    /// Parse suite text; `json` selects JSON instead of TOML.
    ///
    /// # Errors
    /// The parser's message as a string.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| first_line(&e.to_string()))
        }
    }

    /// Read and parse a suite file (JSON when the name ends in `.json`).
    ///
    /// # Errors
    /// [`SuiteError::Io`], [`SuiteError::TooLarge`], [`SuiteError::Malformed`].
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let text = read_bounded(path, MAX_SUITE_BYTES).map_err(|e| match e {
            Bounded::Io(source) => SuiteError::Io {
                path: path.to_owned(),
                source,
            },
            Bounded::TooLarge => SuiteError::TooLarge {
                path: path.to_owned(),
                limit: MAX_SUITE_BYTES,
            },
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, json).map_err(|reason| SuiteError::Malformed {
            path: path.to_owned(),
            reason,
        })
    }
}

/// Outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Expected outcome.
    pub expected: Expect,
    /// Actual outcome (`error` when the check was rejected).
    pub actual: Expect,
    /// Actual violated rule ids.
    pub violated: Vec<String>,
    /// Actual undetermined variables.
    pub undetermined: Vec<String>,
    /// Whether the decision failed closed.
    pub fail_closed: bool,
    /// The error message when the check was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the case failed; empty when it passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    /// True when the case passed.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Result of a whole suite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuiteReport {
    /// Policy name.
    pub policy: String,
    /// Number of cases.
    pub total: usize,
    /// Number of passing cases.
    pub passed: usize,
    /// Number of failing cases.
    pub failed: usize,
    /// Per-case results, in suite order.
    pub cases: Vec<CaseResult>,
}

/// Run every case of `suite` against `policy`. Approver keys are read from `keys_dir`.
///
/// # Errors
/// [`SuiteError::Checker`] when no checker can be built, [`SuiteError::Key`] for a missing or
/// malformed key file. Case mismatches are reported in the result, not as errors.
pub fn run(
    policy: &CompiledPolicy,
    suite: &Suite,
    keys_dir: &Path,
    timeout: Duration,
) -> Result<SuiteReport, SuiteError> {
    let mut checker = Checker::new(policy, timeout).map_err(SuiteError::Checker)?;
    let mut cases = Vec::with_capacity(suite.cases.len());
    for (index, case) in suite.cases.iter().enumerate() {
        let signers = case
            .approvals
            .iter()
            .map(|name| load_signer(&keys_dir.join(format!("{name}.key"))))
            .collect::<Result<Vec<_>, _>>()?;
        let result = run_case(&mut checker, policy, index, case, &signers);
        cases.push(result);
    }
    let passed = cases.iter().filter(|c| c.passed()).count();
    Ok(SuiteReport {
        policy: policy.name().to_owned(),
        total: cases.len(),
        passed,
        failed: cases.len() - passed,
        cases,
    })
}

/// The fixed salt of a case: SHA-256("verdict-suite/v1\n" ‖ case name), so reruns are identical.
pub fn case_salt(name: &str) -> Salt {
    let mut h = Sha256::new();
    h.update(b"verdict-suite/v1\n");
    h.update(name.as_bytes());
    Salt(h.finalize().into())
}

/// Read a C2SP private key file.
///
/// # Errors
/// [`SuiteError::Key`].
pub fn load_signer(path: &Path) -> Result<Signer, SuiteError> {
    let text = read_bounded(path, 4096).map_err(|e| SuiteError::Key {
        path: path.to_owned(),
        reason: match e {
            Bounded::Io(e) => e.to_string(),
            Bounded::TooLarge => "file too large".to_owned(),
        },
    })?;
    Signer::parse(text.trim()).map_err(|e| SuiteError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn run_case(
    checker: &mut Checker,
    policy: &CompiledPolicy,
    index: usize,
    case: &Case,
    signers: &[Signer],
) -> CaseResult {
    let request_id = format!("suite-{index}");
    let mut req = CheckRequest {
        action: case.action.clone(),
        request_id: request_id.clone(),
        salt: Some(case_salt(&case.name)),
        approvals: Vec::new(),
    };
    let mut outcome = checker.screen_and_check(&req);
    if !signers.is_empty() {
        if let Ok(first) = &outcome {
            req.approvals = signers
                .iter()
                .map(|s| Approval::sign(s, &first.action_commitment, &request_id))
                .collect();
            outcome = checker.screen_and_check(&req);
        }
    }
    compare(policy, case, outcome)
}

fn compare(
    policy: &CompiledPolicy,
    case: &Case,
    outcome: Result<Outcome, CheckError>,
) -> CaseResult {
    let mut result = CaseResult {
        name: case.name.clone(),
        expected: case.expect,
        actual: Expect::Error,
        violated: Vec::new(),
        undetermined: Vec::new(),
        fail_closed: false,
        error: None,
        mismatches: Vec::new(),
    };
    match outcome {
        Err(e) => result.error = Some(e.to_string()),
        Ok(o) => {
            result.actual = Expect::of(o.decision);
            result.violated = rule_ids(policy, &o.violated);
            result.undetermined = o.undetermined.clone();
            result.fail_closed = o.fail_closed;
        }
    }
    if result.actual != case.expect {
        result.mismatches.push(format!(
            "expected {}, got {}{}",
            case.expect.name(),
            result.actual.name(),
            result
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    if result.fail_closed {
        result.mismatches.push("decision failed closed".to_owned());
    }
    if let Some(want) = &case.violated {
        if !same_set(want, &result.violated) {
            result.mismatches.push(format!(
                "violated: expected [{}], got [{}]",
                want.join(", "),
                result.violated.join(", ")
            ));
        }
    }
    if let Some(want) = &case.undetermined {
        if !same_set(want, &result.undetermined) {
            result.mismatches.push(format!(
                "undetermined: expected [{}], got [{}]",
                want.join(", "),
                result.undetermined.join(", ")
            ));
        }
    }
    result
}

/// Rule ids of rule indices (an index without a rule is shown as `#<index>`).
pub fn rule_ids(policy: &CompiledPolicy, indices: &[u32]) -> Vec<String> {
    indices
        .iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| policy.ast().rules.get(i))
                .map_or_else(|| format!("#{i}"), |r| r.id.clone())
        })
        .collect()
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

enum Bounded {
    Io(std::io::Error),
    TooLarge,
}

fn read_bounded(path: &Path, limit: usize) -> Result<String, Bounded> {
    let meta = std::fs::metadata(path).map_err(Bounded::Io)?;
    if meta.len() > limit as u64 {
        return Err(Bounded::TooLarge);
    }
    std::fs::read_to_string(path).map_err(Bounded::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let s = Suite::parse(
            r#"
policy = "p.toml"
[[case]]
name = "a"
action = { x = 1, y = "s", z = true }
approvals = ["alice"]
expect = "escalate"
violated = ["r"]
"#,
            false,
        )
        .unwrap();
        assert_eq!(s.cases.len(), 1);
        assert_eq!(s.cases[0].expect, Expect::Escalate);
        assert_eq!(s.cases[0].action["x"], serde_json::json!(1));
        assert_eq!(s.cases[0].violated.as_deref(), Some(&["r".to_owned()][..]));
    }

    #[test]
    fn rejects_unknown_fields_and_bad_expect() {
        assert!(Suite::parse(
            "[[case]]\nname='a'\naction={}\nexpect='allow'\nextra=1\n",
            false
        )
        .is_err());
        assert!(Suite::parse("[[case]]\nname='a'\naction={}\nexpect='maybe'\n", false).is_err());
    }

    #[test]
    fn case_salts_differ_by_name() {
        assert_ne!(case_salt("a"), case_salt("b"));
        assert_eq!(case_salt("a"), case_salt("a"));
    }
}
