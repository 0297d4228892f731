//! Verdict checker: the policy language, decisions by validity with Z3, screening, approvals and
//! receipt issuing.
//!
//! Data flow of one check (see `spec/decision-semantics.md`):
//! 1. [`compile`] parses a TOML policy ([`parse`]), type checks it ([`typecheck`]) and yields a
//!    [`CompiledPolicy`]: the typed AST ([`ast::Policy`]), its canonical bytes, the salted policy
//!    commitment and the rule commitment tree. Errors are [`PolicyError`]s located at a line
//!    and column of the file, rendered rustc style. Language: `spec/policy-language.md`.
//! 2. [`action::parse_json`] / [`Action::from_json_bytes`] parse action text strictly (raw size
//!    bound, duplicate keys, string limit; `null` only for tokens and `optional` variables), and
//!    [`screen()`] intersects an action's keys with the policy's variables
//!    ([`Checker::screen_and_check`] does both steps as the server does).
//! 3. A [`Checker`] (one warm Z3 solver per policy, bound to its thread) decides a
//!    [`CheckRequest`] by validity: allow, deny (naming violated rules) or escalate (naming the
//!    undetermined variables). Rules the bound values settle, and unbound variables with finitely
//!    many distinguishable values ([`residual`]), are decided exactly without a solver call; Z3
//!    answers the rest. The checker's timeout bounds the whole decision; at the deadline the
//!    solver is interrupted and the decision is a fail-closed deny, as is any `unknown`. Approvals
//!    ([`approval`]) are verified Ed25519 signatures by registered approvers.
//!    [`CheckerPool`] runs checkers on dedicated threads for async callers.
//! 4. [`issue_receipt`] signs the decision statement with the checker key (`verdict_core::receipt`).
//!
//! Encoding and solving are separate: [`encode`] turns the AST into solver-independent terms
//! that can be printed as SMT-LIB; [`solver`] lowers them into Z3; [`eval`] is a direct
//! evaluator used as the test oracle.
//!
//! # Example
//! ```
//! use verdict_checker::{compile, CheckRequest, Checker};
//! use verdict_core::receipt::{Decision, Salt};
//!
//! let policy = compile(r#"
//! name = "egress"
//! version = "1"
//! [variables]
//! destination = { type = "enum", values = ["internal", "external"] }
//! authorization_token = { type = "token" }
//! [[rules]]
//! id = "external-needs-auth"
//! text = "An external destination needs an authorization token."
//! when = 'destination == "external"'
//! require = 'present(authorization_token)'
//! effect = "deny"
//! "#, Salt([0; 32]))?;
//! let mut checker = Checker::new(&policy, std::time::Duration::from_secs(1))?;
//! let request = |action| CheckRequest {
//!     action,
//!     request_id: "req-1".into(),
//!     salt: Some(Salt([1; 32])),
//!     approvals: vec![],
//! };
//! // `null` states that the token is absent; an omitted key would leave it unbound.
//! let out = checker.check(&request(serde_json::json!(
//!     {"destination": "external", "authorization_token": null}
//! )))?;
//! assert_eq!(out.decision, Decision::Deny);
//! assert_eq!(out.violated_ids, ["external-needs-auth"]);
//! let out = checker.check(&request(serde_json::json!({"destination": "internal"})))?;
//! assert_eq!(out.decision, Decision::Allow);
//! let out = checker.check(&request(serde_json::json!({"destination": "external"})))?;
//! assert_eq!(out.decision, Decision::Escalate);
//! assert_eq!(out.undetermined, ["authorization_token"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod action;
pub mod analyze;
pub mod approval;
pub mod ast;
pub mod compile;
pub mod decide;
pub mod diff;
pub mod encode;
pub mod error;
pub mod eval;
pub mod issue;
pub mod parse;
pub mod pool;
pub mod replay;
pub mod residual;
pub mod scenarios;
pub mod screen;
pub mod solver;
pub mod suite;
pub mod typecheck;

pub use action::Action;
pub use approval::Approval;
pub use compile::{compile, CompiledPolicy};
pub use decide::{CheckRequest, Checker, Outcome};
pub use error::{CheckError, PolicyError, PolicyErrorKind};
pub use issue::issue_receipt;
pub use pool::CheckerPool;
pub use screen::{screen, Screen};
pub use verdict_core::receipt::{Decision, Kind};
