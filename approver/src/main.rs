//! `verdict-approve`: the approvers' tool for escalations (issue 15; spec `spec/approval.md`).
//!
//! - `list`: the pending escalations of a server (admin or auditor token);
//! - `show ID`: what the approver is asked about: the canonical action (from the server's
//!   private store), the rules involved, the undetermined variables, the policy version, the
//!   approvals so far and the expiry;
//! - `approve ID --key FILE` / `reject ID --key FILE`: fetch the escalation, show it, sign the
//!   message of spec `approval.md` §2 with the approver's signed-note private key and submit it.
//!
//! A separate binary rather than a `verdict-policy` subcommand: it needs only `verdict-core` and an
//! HTTP client, so an approver's machine needs neither Z3 nor the policy toolchain.
//!
//! - `verify --bundle B --record R --policy P`: offline, for auditors: every approval or
//!   rejection in the private record verifies with the policy's approver keys over the receipt's
//!   commitments, and the approving keys are the receipt's `approvers` (spec `approval.md` §5).
//!
//! Exit codes: 0 success; 1 the server refused (4xx: unknown escalation, invalid approval, wrong
//! token), or `verify` found evidence that does not hold; 2 usage; 3 the server or a local file could not be used (network, 5xx, unreadable key
//! or token file). Errors are one line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

mod offline;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use verdict_core::approval::{parse_escalation_id, ApprovalMessage, Verdict};
use verdict_core::note::Signer;
use verdict_core::Hash;

/// List, inspect, approve and reject Verdict escalations.
#[derive(Parser, Debug)]
#[command(name = "verdict-approve", version)]
struct Cli {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        env = "VERDICT_SERVER",
        global = true,
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Print the server's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List escalations (pending by default).
    List {
        #[command(flatten)]
        token: TokenArg,
        /// pending, approved, rejected, expired or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Show one escalation: the canonical action, the rules, the approvals so far.
    Show {
        /// Escalation id (32 hex digits).
        id: String,
        #[command(flatten)]
        token: TokenArg,
    },
    /// Sign and submit an approval.
    Approve(Answer),
    /// Sign and submit a rejection.
    Reject(Answer),
    /// Offline, for auditors: check who approved or rejected an escalated decision, from its
    /// proof bundle, its private record and the policy's approver keys (spec approval.md §5).
    /// Exit 0 when every approval verifies and matches the receipt, 1 when not.
    Verify {
        /// The final decision's proof bundle (`GET /v1/bundle/{index}`); check it with
        /// `verdict verify` too (signatures, inclusion).
        #[arg(long)]
        bundle: PathBuf,
        /// Its private record (`GET /v1/private/actions/{index}`, auditor token), as saved.
        #[arg(long)]
        record: PathBuf,
        /// The policy text (`GET /v1/private/policies/{commitment}`) whose `[[approvers]]` keys
        /// are trusted.
        #[arg(long, required_unless_present = "approver_key")]
        policy: Option<PathBuf>,
        /// An approver verifier key (`<name>+<id>+<key>`), instead of or besides `--policy`.
        #[arg(long)]
        approver_key: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct TokenArg {
    /// File holding an admin or auditor token (first line), to read escalations.
    #[arg(long, env = "VERDICT_TOKEN_FILE")]
    token_file: PathBuf,
}

#[derive(Args, Debug)]
struct Answer {
    /// Escalation id (32 hex digits).
    id: String,
    /// The approver's signed-note private key file (`PRIVATE+KEY+<name>+<id>+<key>`).
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    token: TokenArg,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn unusable(message: impl Into<String>) -> Failure {
    Failure {
        code: 3,
        message: message.into(),
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))
}

/// `verify`: offline; exit 1 when the evidence does not hold, 3 when an input is unusable.
fn verify_offline(
    bundle: &std::path::Path,
    record: &std::path::Path,
    policy: Option<&std::path::Path>,
    approver_keys: &[String],
    json: bool,
) -> Result<(), Failure> {
    let problem = |p: offline::Problem| match p {
        offline::Problem::Input(m) => unusable(m),
        offline::Problem::Invalid(m) => refused(format!("approvals do not verify: {m}")),
    };
    let mut keys = Vec::new();
    if let Some(policy) = policy {
        let text = String::from_utf8(read_file(policy)?)
            .map_err(|_| unusable(format!("{} is not UTF-8", policy.display())))?;
        keys.extend(offline::policy_approvers(&text).map_err(problem)?);
    }
    for k in approver_keys {
        keys.push(
            verdict_core::note::Verifier::parse(k)
                .map_err(|e| unusable(format!("--approver-key {k:?}: {e}")))?,
        );
    }
    let record: Value = serde_json::from_slice(&read_file(record)?)
        .map_err(|e| unusable(format!("{} is not JSON: {e}", record.display())))?;
    let checked = offline::check(&read_file(bundle)?, &record, &keys).map_err(problem)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "valid": true,
                "resolution": checked.resolution,
                "approved_by": checked.approved_by,
                "rejected_by": checked.rejected_by,
            })
        );
    } else {
        println!(
            "ok: {} escalation; approved by [{}]; rejected by [{}]",
            checked.resolution,
            checked.approved_by.join(", "),
            checked.rejected_by.join(", ")
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("verdict-approve: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client {
        http: reqwest::Client::new(),
        base: cli.server.trim_end_matches('/').to_owned(),
    };
    match cli.command {
        Command::Verify {
            bundle,
            record,
            policy,
            approver_key,
        } => verify_offline(&bundle, &record, policy.as_deref(), &approver_key, cli.json),
        Command::List { token, status } => {
            let token = read_token(&token.token_file)?;
            let query = if status == "all" {
                String::new()
            } else {
                format!("?status={status}")
            };
            let list = client
                .get(&format!("/v1/escalations{query}"), &token)
                .await?;
            if cli.json {
                println!("{list}");
                return Ok(());
            }
            let items = at(&list, "/escalations")
                .as_array()
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                println!("no {status} escalations");
            }
            for e in &items {
                println!(
                    "{}  {}  {}@{}  request {}  agent {}  approvals {}/{}  expires_ms {}",
                    s(at(e, "/id")),
                    s(at(e, "/status")),
                    s(at(e, "/policy/name")),
                    s(at(e, "/policy/version")),
                    s(at(e, "/request_id")),
                    s(at(e, "/agent")),
                    approvals_count(e),
                    at(e, "/approvals_needed")
                        .as_u64()
                        .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    at(e, "/expires_ms")
                );
            }
            Ok(())
        }
        Command::Show { id, token } => {
            let token = read_token(&token.token_file)?;
            let e = client.escalation(&id, &token).await?;
            if cli.json {
                println!("{e}");
            } else {
                print_escalation(&e);
            }
            Ok(())
        }
        Command::Approve(a) => answer(&client, a, Verdict::Approve, cli.json).await,
        Command::Reject(a) => answer(&client, a, Verdict::Reject, cli.json).await,
    }
}

async fn answer(client: &Client, a: Answer, verdict: Verdict, json: bool) -> Result<(), Failure> {
    let signer = read_key(&a.key)?;
    let token = read_token(&a.token.token_file)?;
    let e = client.escalation(&a.id, &token).await?;
    let message = message_of(&e, verdict)?;
    if !json {
        print_escalation(&e);
        println!(
            "signing {} as {} ({})",
            verdict.name(),
            signer.name(),
            signer.key_id()
        );
    }
    let signed = message.sign(&signer);
    let path = match verdict {
        Verdict::Approve => "approvals",
        Verdict::Reject => "rejections",
    };
    let body = serde_json::json!({
        "key_id": signed.key_id.to_string(),
        "signature": signed.signature_base64(),
    });
    let after = client
        .post(&format!("/v1/escalations/{}/{path}", a.id), &body)
        .await?;
    if json {
        println!("{after}");
    } else {
        println!(
            "status {}; approvals {}; final decision {}",
            s(at(&after, "/status")),
            approvals_count(&after),
            at(&after, "/final_decision")
                .as_str()
                .unwrap_or("(pending)")
        );
    }
    Ok(())
}

/// The message of spec `approval.md` §2 for escalation `e`.
fn message_of(e: &Value, verdict: Verdict) -> Result<ApprovalMessage, Failure> {
    let bad = |what: &str| unusable(format!("server answered a malformed escalation: {what}"));
    let hash = |v: &Value, what: &str| {
        v.as_str()
            .and_then(|t| hex::decode(t).ok())
            .and_then(|b| Hash::from_slice(&b).ok())
            .ok_or_else(|| bad(what))
    };
    Ok(ApprovalMessage {
        escalation_id: parse_escalation_id(at(e, "/id").as_str().unwrap_or_default())
            .map_err(|_| bad("id"))?,
        action_commitment: hash(at(e, "/action_commitment"), "action_commitment")?,
        policy_commitment: hash(at(e, "/policy/commitment"), "policy commitment")?,
        verdict,
        expires_ms: at(e, "/expires_ms")
            .as_u64()
            .ok_or_else(|| bad("expires_ms"))?,
    })
}

fn print_escalation(e: &Value) {
    println!(
        "escalation {}  status {}",
        s(at(e, "/id")),
        s(at(e, "/status"))
    );
    println!(
        "policy     {}@{} ({})",
        s(at(e, "/policy/name")),
        s(at(e, "/policy/version")),
        s(at(e, "/policy/commitment"))
    );
    println!(
        "request    {} by agent {}",
        s(at(e, "/request_id")),
        s(at(e, "/agent"))
    );
    println!("action     {}", s(at(e, "/canonical_action")));
    for r in at(e, "/rules").as_array().into_iter().flatten() {
        println!(
            "rule       {} ({}): {}",
            s(at(r, "/id")),
            s(at(r, "/effect")),
            s(at(r, "/text"))
        );
    }
    let undetermined: Vec<&str> = at(e, "/undetermined_variables")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !undetermined.is_empty() {
        println!("undetermined {}", undetermined.join(", "));
    }
    println!(
        "approvals  {} of {} needed; expires_ms {}",
        approvals_count(e),
        at(e, "/approvals_needed").as_u64().map_or_else(
            || "none (approvals cannot allow it)".to_owned(),
            |n| n.to_string()
        ),
        at(e, "/expires_ms")
    );
    for a in at(e, "/approvals").as_array().into_iter().flatten() {
        println!(
            "           {} {} ({})",
            s(at(a, "/verdict")),
            s(at(a, "/name")),
            s(at(a, "/key_id"))
        );
    }
}

fn approvals_count(e: &Value) -> usize {
    at(e, "/approvals").as_array().map_or(0, |a| {
        a.iter().filter(|x| at(x, "/verdict") == "approve").count()
    })
}

/// `v` at the JSON pointer `path`, or null (never panics, unlike indexing).
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    v.pointer(path).unwrap_or(&Value::Null)
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), ToOwned::to_owned)
}

fn read_token(path: &PathBuf) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| unusable(format!("token file {}: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(ToOwned::to_owned)
        .ok_or_else(|| unusable(format!("token file {} is empty", path.display())))
}

fn read_key(path: &PathBuf) -> Result<Signer, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| unusable(format!("key file {}: {e}", path.display())))?;
    Signer::parse(text.trim()).map_err(|e| unusable(format!("key file {}: {e}", path.display())))
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn escalation(&self, id: &str, token: &str) -> Result<Value, Failure> {
        parse_escalation_id(id).map_err(|e| refused(e.to_string()))?;
        self.get(&format!("/v1/escalations/{id}"), token).await
    }

    async fn get(&self, path: &str, token: &str) -> Result<Value, Failure> {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        answer_of(request).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        answer_of(request).await
    }
}

async fn answer_of(request: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| unusable(format!("server: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| unusable(format!("server answered {status} without JSON: {e}")))?;
    if status.is_success() {
        Ok(body)
    } else {
        let message = format!(
            "server answered {status}: {}",
            at(&body, "/message").as_str().unwrap_or("no message")
        );
        Err(if status.is_client_error() {
            refused(message)
        } else {
            unusable(message)
        })
    }
}
