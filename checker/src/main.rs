//! `verdict-policy`: the policy author's tool. Lint, battle-test, analyze, diff, generate
//! scenarios for, and run single decisions on a Verdict policy. Spec:
//! `spec/policy-language.md`, `spec/decision-semantics.md`; guide: `docs/policy-guide.md`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use verdict_checker::analyze::{self, Severity};
use verdict_checker::diff::{self, DiffResult};
use verdict_checker::scenarios;
use verdict_checker::suite::{self, Suite};
use verdict_checker::{Approval, CheckRequest, Checker, CompiledPolicy, PolicyError};
use verdict_core::receipt::Salt;

mod replay_cli;

const EXIT_HELP: &str = "\
EXIT CODES:
    0  success: lint ok, every test case passed, analyze found nothing, diff proved equivalence,
       decide produced a decision (whatever it is: the decision is in the output),
       replay found every decision equal to the logged one
    1  a finding: a test case mismatched, analyze reported an error or warning, diff found a
       distinguishing action, replay found a decision that differs (each listed)
    2  usage or input error: bad arguments, unreadable file, malformed policy (located error on
       stderr), malformed suite or action, invalid approval, an unreadable evidence package or
       a policy file in it that does not compile to its commitment";

/// Verdict policy tool.
#[derive(Parser, Debug)]
#[command(name = "verdict-policy", version, about, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Policy salt (64 hex digits) used for the policy commitment; default all zeros.
    #[arg(long, global = true, value_name = "HEX")]
    salt: Option<String>,
    /// Time limit in milliseconds: for `decide` and `test`, of each whole decision (every solver
    /// call included; past it the decision fails closed); for `analyze`, `diff` and
    /// `scenarios`, of the whole run (past it the command fails with exit 2).
    #[arg(long, global = true, default_value_t = 2000, value_name = "MS")]
    timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile and type-check a policy; print its commitment and rule tree root.
    Lint {
        /// Policy file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Run a battle-test suite (each case screened, then checked); exit 1 on any mismatch.
    Test {
        /// Policy file.
        file: PathBuf,
        /// Suite file (TOML, or JSON when it ends in .json).
        #[arg(long)]
        cases: PathBuf,
        /// Approver key folder; default: the suite's `keys` entry, else `keys/` beside the suite.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Find contradictions, never-firing and redundant rules, and unbounded variables.
    Analyze {
        /// Policy file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Find an action on which two policy versions decide differently, or prove them equivalent.
    Diff {
        /// Old policy file.
        old: PathBuf,
        /// New policy file.
        new: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Generate distinct boundary actions as a suite skeleton for a reviewer to label.
    Scenarios {
        /// Policy file.
        file: PathBuf,
        /// Maximum number of scenarios.
        #[arg(long, default_value_t = 32)]
        max: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Decide one action offline: screen, then check, as the server does.
    Decide {
        /// Policy file.
        file: PathBuf,
        /// The action: a JSON object, or `@path` to read it from a file.
        #[arg(long)]
        action: String,
        /// A prepared approval JSON `{"approver": "...", "signature": "<base64>"}` (repeatable).
        #[arg(long)]
        approval: Vec<String>,
        /// Sign an approval with this C2SP private key file (repeatable; TEST keys only).
        #[arg(long, value_name = "KEYFILE")]
        sign_with: Vec<PathBuf>,
        /// Request id (approvals are bound to it).
        #[arg(long, default_value = "cli")]
        request_id: String,
        /// Action salt (64 hex digits); default random. Approvals are bound to the salt too.
        #[arg(long, value_name = "HEX")]
        action_salt: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Decide every logged action of an evidence package again, under the policy version it was
    /// decided under (its text and salt from the package), and list each decision that differs
    /// (exit 1 when any does). The package is a directory or a `.tar` (`verdict audit export`).
    Replay {
        /// The evidence package.
        package: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

/// A failure with its exit code and its one-line message: the error and its sources, joined by
/// `: ` (the form the CLI snapshots pin).
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Exit 2 with `message`.
    fn msg(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Failure::msg(message)
    }
}

/// `context` for results: prefix the error chain with what was being done.
trait Context<T> {
    fn context(self, what: &str) -> Result<T, Failure>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: std::error::Error> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.with_context(|| what.to_owned())
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| {
            let inner = Failure::from(e);
            Failure::msg(format!("{}: {}", what(), inner.message))
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let text = f.message;
            // Located policy errors already render rustc style (`file:line:col: error: ...`).
            if text.contains(": error: ") {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Lint { file, common } => lint(&file, &common),
        Command::Test {
            file,
            cases,
            keys,
            common,
        } => test(&file, &cases, keys.as_deref(), &common),
        Command::Analyze { file, common } => analyze_cmd(&file, &common),
        Command::Diff { old, new, common } => diff_cmd(&old, &new, &common),
        Command::Scenarios { file, max, common } => scenarios_cmd(&file, max, &common),
        Command::Decide {
            file,
            action,
            approval,
            sign_with,
            request_id,
            action_salt,
            common,
        } => decide(
            &file,
            &action,
            &approval,
            &sign_with,
            &request_id,
            action_salt.as_deref(),
            &common,
        ),
        Command::Replay { package, common } => replay_cli::run(
            &package,
            Duration::from_millis(common.timeout_ms),
            common.json,
        )
        .map_err(|e| Failure::msg(e.0)),
    }
}

/// Read and compile a policy; a compile error is printed located (rustc style) and exits 2.
fn load_policy(path: &Path, common: &Common) -> Result<CompiledPolicy, Failure> {
    let salt = policy_salt(common)?;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > verdict_checker::parse::MAX_POLICY_BYTES as u64 {
        return Err(Failure::msg(format_args!(
            "{}: policy exceeds {} bytes",
            path.display(),
            verdict_checker::parse::MAX_POLICY_BYTES
        )));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    verdict_checker::compile(&text, salt).map_err(|e| located(path, e, common.json))
}

fn located(path: &Path, e: PolicyError, json: bool) -> Failure {
    let e = e.with_file(path.display().to_string());
    if json {
        let v = json!({
            "error": "policy",
            "file": path.display().to_string(),
            "line": e.line(),
            "column": e.column(),
            "message": e.kind().to_string(),
        });
        println!("{v}");
    }
    Failure::msg(e)
}

fn policy_salt(common: &Common) -> Result<Salt, Failure> {
    match &common.salt {
        None => Ok(Salt([0; 32])),
        Some(h) => Ok(Salt::from_hex(h).context("--salt")?),
    }
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn lint(file: &Path, common: &Common) -> Result<u8, Failure> {
    let p = load_policy(file, common)?;
    let ast = p.ast();
    if common.json {
        let rules: Vec<Value> = ast
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"index": i, "id": r.id, "effect": r.effect}))
            .collect();
        let vars: Vec<Value> = ast
            .variables
            .iter()
            .map(|v| json!({"name": v.name, "type": v.ty.kind_name()}))
            .collect();
        print_json(&json!({
            "name": p.name(),
            "version": p.version(),
            "commitment": hex::encode(p.commitment().0),
            "rule_tree_root": hex::encode(p.rule_tree_root().0),
            "variables": vars,
            "rules": rules,
        }))?;
    } else {
        println!("ok: {} {}", p.name(), p.version());
        println!("  variables:      {}", ast.variables.len());
        println!("  rules:          {}", ast.rules.len());
        println!("  commitment:     {}", hex::encode(p.commitment().0));
        println!("  rule tree root: {}", hex::encode(p.rule_tree_root().0));
    }
    Ok(0)
}

fn test(file: &Path, cases: &Path, keys: Option<&Path>, common: &Common) -> Result<u8, Failure> {
    let p = load_policy(file, common)?;
    let s = Suite::load(cases)?;
    let base = cases.parent().unwrap_or(Path::new("."));
    let keys_dir = match keys {
        Some(k) => k.to_owned(),
        None => base.join(s.keys.as_deref().unwrap_or("keys")),
    };
    let report = suite::run(&p, &s, &keys_dir, Duration::from_millis(common.timeout_ms))?;
    if common.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        let width = report
            .cases
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<4}  {:<width$}  {:<8}  {:<8}  details",
            "", "case", "expected", "actual"
        );
        for c in &report.cases {
            let mark = if c.passed() { "ok" } else { "FAIL" };
            let mut details = Vec::new();
            if !c.violated.is_empty() {
                details.push(format!("violated: {}", c.violated.join(", ")));
            }
            if !c.undetermined.is_empty() {
                details.push(format!("undetermined: {}", c.undetermined.join(", ")));
            }
            if let Some(e) = &c.error {
                details.push(format!("error: {e}"));
            }
            details.extend(c.mismatches.iter().map(|m| format!("MISMATCH {m}")));
            println!(
                "{mark:<4}  {:<width$}  {:<8}  {:<8}  {}",
                c.name,
                c.expected.name(),
                c.actual.name(),
                details.join("; ")
            );
        }
        println!(
            "{}: {} passed, {} failed, {} total",
            report.policy, report.passed, report.failed, report.total
        );
    }
    Ok(if report.failed == 0 { 0 } else { 1 })
}

fn analyze_cmd(file: &Path, common: &Common) -> Result<u8, Failure> {
    let p = load_policy(file, common)?;
    let report = analyze::analyze(&p, Duration::from_millis(common.timeout_ms))?;
    if common.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        if report.findings.is_empty() {
            println!("{}: no findings", p.name());
        }
        for f in &report.findings {
            println!("{}: {}: {}", f.severity.name(), f.kind.name(), f.message);
            if let Some(a) = &f.counterexample {
                println!("    counterexample: {a}");
            }
        }
    }
    let failing = report
        .findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Error | Severity::Warning));
    Ok(u8::from(failing))
}

fn diff_cmd(old: &Path, new: &Path, common: &Common) -> Result<u8, Failure> {
    let a = load_policy(old, common)?;
    let b = load_policy(new, common)?;
    let result = diff::diff(&a, &b, Duration::from_millis(common.timeout_ms))?;
    if common.json {
        print_json(&serde_json::to_value(&result)?)?;
    } else {
        match &result {
            DiffResult::Equivalent { .. } => {
                println!("equivalent: no action is decided differently")
            }
            DiffResult::Different {
                action,
                old_decision,
                new_decision,
                ..
            } => {
                println!("different: {old_decision} (old) vs {new_decision} (new)");
                println!("    action: {action}");
            }
        }
    }
    Ok(match result {
        DiffResult::Equivalent { .. } => 0,
        DiffResult::Different { .. } => 1,
    })
}

fn scenarios_cmd(file: &Path, max: usize, common: &Common) -> Result<u8, Failure> {
    let p = load_policy(file, common)?;
    let skeleton = scenarios::generate(&p, max, Duration::from_millis(common.timeout_ms))?;
    if common.json {
        print_json(&serde_json::to_value(&skeleton)?)?;
    } else {
        let text =
            scenarios::to_toml(&skeleton, &file.display().to_string()).map_err(Failure::msg)?;
        print!("{text}");
    }
    Ok(0)
}

fn decide(
    file: &Path,
    action: &str,
    approvals: &[String],
    sign_with: &[PathBuf],
    request_id: &str,
    action_salt: Option<&str>,
    common: &Common,
) -> Result<u8, Failure> {
    // `--timeout-ms` bounds the command's decision from its start: reading and compiling the
    // policy and setting up the solver count against it too (decision-semantics §5).
    let timeout = Duration::from_millis(common.timeout_ms);
    let deadline = Instant::now() + timeout;
    let p = load_policy(file, common)?;
    let text = match action.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
        None => action.as_bytes().to_vec(),
    };
    // The same strict parse as the server's: raw size bound, duplicate keys, string limit.
    let action: Value =
        verdict_checker::action::parse_json(&text).context("--action is not a valid action")?;
    let salt = match action_salt {
        Some(h) => Salt::from_hex(h).context("--action-salt")?,
        None => Salt::random(),
    };
    let mut prepared = approvals
        .iter()
        .map(|a| serde_json::from_str::<Approval>(a).context("--approval is not an approval JSON"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut checker = Checker::new(&p, timeout)?;
    let mut req = CheckRequest {
        action,
        request_id: request_id.to_owned(),
        salt: Some(salt),
        approvals: Vec::new(),
    };
    if !sign_with.is_empty() {
        let first = checker.screen_and_check_until(&req, deadline, None)?;
        for k in sign_with {
            let signer = suite::load_signer(k)?;
            prepared.push(Approval::sign(
                &signer,
                &first.action_commitment,
                request_id,
            ));
        }
    }
    let deadline = if sign_with.is_empty() {
        deadline
    } else {
        // The resubmission with approvals is a second decision with its own bound.
        Instant::now() + timeout
    };
    req.approvals = prepared;
    let o = checker.screen_and_check_until(&req, deadline, None)?;
    let violated_ids = suite::rule_ids(&p, &o.violated);
    let decision = o.decision.as_str();
    if common.json {
        print_json(&json!({
            "decision": decision,
            "fail_closed": o.fail_closed,
            "violated": o.violated,
            "violated_ids": violated_ids,
            "undetermined": o.undetermined,
            "matched": o.matched,
            "approvers": o.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "action_commitment": hex::encode(o.action_commitment.0),
            "salt": o.salt.to_hex(),
            "request_id": request_id,
        }))?;
    } else {
        println!(
            "decision: {decision}{}",
            if o.fail_closed { " (fail closed)" } else { "" }
        );
        if !violated_ids.is_empty() {
            println!("violated: {}", violated_ids.join(", "));
        }
        if !o.undetermined.is_empty() {
            println!("undetermined: {}", o.undetermined.join(", "));
        }
        println!("action commitment: {}", hex::encode(o.action_commitment.0));
        println!("salt: {}", o.salt.to_hex());
    }
    Ok(0)
}
