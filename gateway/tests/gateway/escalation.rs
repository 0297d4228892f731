//! Issue 17, escalations through the gateway, with real processes: `verdict-server`, the npm
//! filesystem server, the `verdict-gateway` binary with `escalation_wait_ms`, the approvers'
//! `verdict-approve` binary and `verdict verify` (`docs/gateway-guide.md` §5, `spec/approval.md`).
//!
//! - An external write escalates (two approvers needed); the call waits in the gateway; alice
//!   and bob approve with `verdict-approve`; the call completes with the file written, and the
//!   final `allow` bundle verifies.
//! - Another escalated write is rejected by one approver: the call is refused, nothing written,
//!   and the final `deny` bundle verifies.
//! - A gateway with a short wait refuses an unresolved escalation with its id, nothing written.
//! - verdict-server stopped while a call waits: refused without a decision, nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{json, Value};
use verdict_core::note::Signer;
use verdict_gateway::META_KEY;
use verdict_tests::bins::{binary, Run};
use verdict_tests::server::Server;

use crate::support::{filesystem_server, skip, Gateway, Setup};

const POLICY: &str = "gateway-external-writes";

fn policy_text(alice: &Signer, bob: &Signer) -> String {
    format!(
        r#"name = "{POLICY}"
version = "1"

[variables]
destination = {{ type = "enum", values = ["internal", "external"] }}

[[approvers]]
name = "alice"
key = "{alice}"

[[approvers]]
name = "bob"
key = "{bob}"

[[rules]]
id = "external-write-needs-two-approvers"
text = "A file written where it leaves the company needs two approvers."
when = 'destination == "external"'
require = 'approvals >= 2'
effect = "escalate"
"#,
        alice = alice.verifier(),
        bob = bob.verifier(),
    )
}

fn token(server: &Server, file: &str) -> Result<String> {
    Ok(std::fs::read_to_string(server.data_dir.join(file))?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// A gateway configuration mapping `write_file` onto the escalation policy.
fn config(setup: &Setup, policy: &Path, wait_ms: u64, name: &str) -> Result<PathBuf> {
    let root = setup.root.display();
    let text = format!(
        r#"policies = ["{policy}"]

[verdict]
url = "{server}"
token_file = "agent.token"
timeout_ms = 5000
escalation_wait_ms = {wait_ms}

[unmapped]
mode = "deny"

[[upstreams]]
name = "fs"
command = "{node}"
args = ["{entry}", "{root}"]

[tools.write_file]
policy = "{POLICY}"
[tools.write_file.variables]
destination = {{ pointer = "/path", prefix_map = {{ "{root}/outbox/" = "external", "{root}/" = "internal" }} }}
"#,
        policy = policy.display(),
        server = setup.server.base,
        node = setup.fs_server.0,
        entry = setup.fs_server.1.display(),
    );
    let path = setup.dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `verdict-approve ARGS --server BASE` (the auditor token for reading).
fn approve_tool(setup: &Setup, args: &[&str]) -> Result<Run> {
    let token_file = setup.dir.path().join("approver-desk.token");
    std::fs::write(&token_file, token(&setup.server, "auditor.token")?)?;
    let out = Command::new(binary("verdict-approve")?)
        .arg("--server")
        .arg(&setup.server.base)
        .args(args)
        .arg("--token-file")
        .arg(&token_file)
        .output()?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Wait until `verdict-approve list` shows a pending escalation not in `seen`; its id.
async fn next_pending(setup: &Setup, seen: &[String]) -> Result<String> {
    let started = Instant::now();
    loop {
        let run = approve_tool(setup, &["--json", "list"])?;
        if run.code != Some(0) {
            bail!("verdict-approve list: {run:?}");
        }
        let listed: Value = serde_json::from_str(&run.stdout)?;
        if let Some(id) = listed["escalations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["id"].as_str())
            .find(|id| !seen.iter().any(|s| s == id))
        {
            return Ok(id.to_owned());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no new pending escalation after 30 s: {}", run.stdout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn key_file(setup: &Setup, signer: &Signer) -> Result<String> {
    let path = setup.dir.path().join(format!("{}.key", signer.name()));
    std::fs::write(&path, format!("{}\n", signer.to_private_key_string()))?;
    Ok(path.display().to_string())
}

async fn client(gw: &Gateway) -> Result<RunningService<RoleClient, ()>> {
    Ok(()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            gw.base
        )))
        .await?)
}

fn write_call(path: &Path, content: &str) -> CallToolRequestParams {
    let args = json!({"path": path, "content": content});
    CallToolRequestParams::new("write_file")
        .with_arguments(args.as_object().cloned().unwrap_or_default())
}

fn text(r: &CallToolResult) -> String {
    serde_json::to_value(&r.content)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" ")
}

fn meta(r: &CallToolResult) -> Value {
    r.meta
        .as_ref()
        .and_then(|m| m.0.get(META_KEY).cloned())
        .unwrap_or(Value::Null)
}

/// `verdict verify` accepts the bundle in `_meta` and reports `check <decision>`.
fn verified(setup: &Setup, m: &Value, name: &str, decision: &str) -> Result<()> {
    let run = setup.verify(m["bundle"].as_str().context("no bundle in _meta")?, name)?;
    if run.code != Some(0) || !run.stdout.contains(&format!("check {decision}")) {
        bail!("verify {name}: {run:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_calls_wait_for_approvers() -> Result<()> {
    let fs = match filesystem_server() {
        Ok(fs) => fs,
        Err(e) => {
            skip("gateway escalation test (npm filesystem server)", &e);
            return Ok(());
        }
    };
    let mut setup = Setup::new(fs).await?;
    let alice = Signer::generate("alice")?;
    let bob = Signer::generate("bob")?;
    let (alice_key, bob_key) = (key_file(&setup, &alice)?, key_file(&setup, &bob)?);
    let source = policy_text(&alice, &bob);
    let policy = setup.dir.path().join("external-writes.toml");
    std::fs::write(&policy, &source)?;
    let r = setup
        .server
        .http
        .post(format!("{}/v1/policies", setup.server.base))
        .bearer_auth(token(&setup.server, "admin.token")?)
        .json(&json!({ "source": source }))
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.text().await?);

    let gw = Gateway::start(&config(&setup, &policy, 30_000, "waiting.toml")?).await?;
    let agent = client(&gw).await?;
    let root = setup.root.clone();
    let mut seen = Vec::new();

    // 1. Approved by two approvers: the waiting call completes and the file is written.
    let approved = root.join("outbox/approved.txt");
    let call = tokio::spawn({
        let peer = agent.peer().clone();
        let params = write_call(&approved, "signed off");
        async move { peer.call_tool(params).await }
    });
    let id = next_pending(&setup, &seen).await?;
    seen.push(id.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!approved.exists(), "written before any approval");
    let run = approve_tool(&setup, &["approve", &id, "--key", &alice_key])?;
    assert_eq!(run.code, Some(0), "{run:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!approved.exists(), "written after one approval of two");
    assert!(
        !call.is_finished(),
        "the call ended after one approval of two"
    );
    let run = approve_tool(&setup, &["approve", &id, "--key", &bob_key])?;
    assert_eq!(run.code, Some(0), "{run:?}");
    let r = tokio::time::timeout(Duration::from_secs(20), call).await???;
    assert_ne!(r.is_error, Some(true), "approved call failed: {}", text(&r));
    assert_eq!(std::fs::read_to_string(&approved)?, "signed off");
    let m = meta(&r);
    assert_eq!(m["decision"], "allow", "{m}");
    assert_eq!(m["escalation_id"], json!(id), "{m}");
    assert_eq!(m["escalation_status"], "approved", "{m}");
    verified(&setup, &m, "approved", "allow")?;

    // 2. Rejected by one approver: refused, nothing written.
    let rejected = root.join("outbox/rejected.txt");
    let call = tokio::spawn({
        let peer = agent.peer().clone();
        let params = write_call(&rejected, "never");
        async move { peer.call_tool(params).await }
    });
    let id = next_pending(&setup, &seen).await?;
    seen.push(id.clone());
    let run = approve_tool(&setup, &["reject", &id, "--key", &alice_key])?;
    assert_eq!(run.code, Some(0), "{run:?}");
    let r = tokio::time::timeout(Duration::from_secs(20), call).await???;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let t = text(&r);
    assert!(t.contains(&format!("escalation {id} was rejected")), "{t}");
    assert!(t.contains("external-write-needs-two-approvers"), "{t}");
    assert!(!rejected.exists(), "a rejected call reached the filesystem");
    let m = meta(&r);
    assert_eq!(m["decision"], "deny", "{m}");
    verified(&setup, &m, "rejected", "deny")?;
    agent.cancel().await?;

    // 3. A short wait runs out: refused with the escalation id, nothing written.
    let gw_short = Gateway::start(&config(&setup, &policy, 1_500, "short.toml")?).await?;
    let agent = client(&gw_short).await?;
    let pending = root.join("outbox/pending.txt");
    let started = Instant::now();
    let r = agent.call_tool(write_call(&pending, "later")).await?;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1_400),
        "returned after {waited:?}"
    );
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let m = meta(&r);
    assert_eq!(m["decision"], "escalate", "{m}");
    let id = m["escalation_id"].as_str().context("no escalation id")?;
    assert!(
        text(&r).contains(&format!("escalation id {id}")),
        "{}",
        text(&r)
    );
    assert!(
        !pending.exists(),
        "an unresolved escalation reached the filesystem"
    );
    verified(&setup, &m, "pending", "escalate")?;
    // Approving it afterwards does not replay the call: the gateway forwards nothing by itself.
    for key in [&alice_key, &bob_key] {
        let run = approve_tool(&setup, &["approve", id, "--key", key])?;
        assert_eq!(run.code, Some(0), "{run:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.exists());
    agent.cancel().await?;

    // 4. verdict-server goes down while a call waits: refused without a decision, not forwarded.
    let agent = client(&gw).await?;
    let orphan = root.join("outbox/orphan.txt");
    let call = tokio::spawn({
        let peer = agent.peer().clone();
        let params = write_call(&orphan, "never");
        async move { peer.call_tool(params).await }
    });
    next_pending(&setup, &seen_with(&seen, id)).await?;
    setup.server.stop()?;
    let r = tokio::time::timeout(Duration::from_secs(20), call).await???;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert!(text(&r).contains("no policy decision"), "{}", text(&r));
    assert!(!orphan.exists(), "forwarded with the server gone mid-wait");
    agent.cancel().await?;
    drop(gw);
    Ok(())
}

fn seen_with(seen: &[String], id: &str) -> Vec<String> {
    let mut all = seen.to_vec();
    all.push(id.to_owned());
    all
}
