//! End to end: agent → gateway → verdict-server → filesystem MCP server.

use std::time::Duration;

use anyhow::{Context as _, Result};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{json, Value};
use verdict_gateway::META_KEY;

use crate::support::{filesystem_server, python_with_mcp, skip, Setup};

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
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

fn invalid_params(e: &ServiceError) -> bool {
    matches!(e, ServiceError::McpError(d) if d.code == ErrorCode::INVALID_PARAMS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_checks_every_call_end_to_end() -> Result<()> {
    let fs = match filesystem_server() {
        Ok(fs) => fs,
        Err(e) => {
            skip("gateway end-to-end test (npm filesystem server)", &e);
            return Ok(());
        }
    };
    let mut setup = Setup::new(fs).await?;
    let root = setup.root.clone();
    let mut gw = setup.gateway().await?;
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            gw.base
        )))
        .await?;

    // The upstream's tools are offered as the gateway's own.
    let tools = client.list_all_tools().await?;
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for t in [
        "write_file",
        "create_directory",
        "read_text_file",
        "list_directory",
    ] {
        assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
    }

    // 1. Allowed: reaches the upstream, the file is written, the bundle verifies.
    let allowed = root.join("internal/report.txt");
    let r = call(
        &client,
        "write_file",
        json!({"path": allowed, "content": "quarterly numbers"}),
    )
    .await?;
    assert_ne!(r.is_error, Some(true), "allowed call failed: {}", text(&r));
    assert_eq!(std::fs::read_to_string(&allowed)?, "quarterly numbers");
    let m = meta(&r);
    assert_eq!(m["decision"], "allow", "{m}");
    let bundle = m["bundle"].as_str().context("no bundle in _meta")?;
    let run = setup.verify(bundle, "allow")?;
    assert_eq!(
        run.code,
        Some(0),
        "verify allow: {} {}",
        run.stdout,
        run.stderr
    );

    // 2. Denied: not forwarded, the file is absent, the error names the rule and the log index.
    let denied = root.join("outbox/customers.csv");
    let r = call(
        &client,
        "write_file",
        json!({"path": denied, "content": "id,email"}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    let m = meta(&r);
    assert!(t.contains("external-needs-authorization"), "{t}");
    let index = m["index"].as_u64().context("no index")?;
    assert!(t.contains(&format!("log index {index}")), "{t}");
    assert!(!denied.exists(), "a denied write reached the filesystem");
    assert_eq!(m["decision"], "deny");
    let run = setup.verify(m["bundle"].as_str().context("no bundle")?, "deny")?;
    assert_eq!(
        run.code,
        Some(0),
        "verify deny: {} {}",
        run.stdout,
        run.stderr
    );

    // 3. Escalated: not forwarded; the error names the undetermined variable.
    let dir = root.join("outbox/export-2026");
    let r = call(&client, "create_directory", json!({"path": dir})).await?;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("escalated") && t.contains("authorization_token"),
        "{t}"
    );
    assert!(!dir.exists(), "an escalated call reached the filesystem");
    let m = meta(&r);
    assert_eq!(m["decision"], "escalate");
    // escalation_wait_ms = 0: the escalation id is returned at once.
    let escalation = m["escalation_id"].as_str().context("no escalation id")?;
    assert!(t.contains(&format!("escalation id {escalation}")), "{t}");
    let run = setup.verify(m["bundle"].as_str().context("no bundle")?, "escalate")?;
    assert_eq!(
        run.code,
        Some(0),
        "verify escalate: {} {}",
        run.stdout,
        run.stderr
    );
    // The same tool to an internal path is allowed.
    let r = call(
        &client,
        "create_directory",
        json!({"path": root.join("internal/sub")}),
    )
    .await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(root.join("internal/sub").is_dir());

    // 4. Unmapped tools are refused by default (no check, not forwarded).
    let r = call(&client, "read_text_file", json!({"path": allowed})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("no policy mapping"), "{}", text(&r));

    // 5. Bad input: JSON-RPC errors, and the gateway keeps serving.
    let e = call(&client, "no_such_tool", json!({})).await.unwrap_err();
    assert!(invalid_params(&e), "unknown tool: {e:?}");
    let e = call(&client, "write_file", json!({"path": 5, "content": "x"}))
        .await
        .unwrap_err();
    assert!(invalid_params(&e), "wrong type: {e:?}");
    let e = call(&client, "write_file", json!({"content": "x"}))
        .await
        .unwrap_err();
    assert!(invalid_params(&e), "missing argument: {e:?}");
    let big = "x".repeat(100 * 1024);
    let e = call(
        &client,
        "write_file",
        json!({"path": root.join("internal/big"), "content": big}),
    )
    .await
    .unwrap_err();
    assert!(invalid_params(&e), "oversized: {e:?}");
    assert!(!root.join("internal/big").exists());
    let e = call(
        &client,
        "write_file",
        json!({"path": format!("{}/internal/../outbox/x", root.display()), "content": "x"}),
    )
    .await
    .unwrap_err();
    assert!(invalid_params(&e), "dot segments: {e:?}");
    assert!(!root.join("outbox/x").exists());
    malformed_json_rpc(&gw.base).await?;
    let again = root.join("internal/after-bad-input.txt");
    let r = call(
        &client,
        "write_file",
        json!({"path": again, "content": "still serving"}),
    )
    .await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(again.exists());

    // 6. A client from another implementation: the Python MCP SDK.
    match python_with_mcp() {
        Ok(python) => python_client(&setup, &gw.base, &python).await?,
        Err(e) => skip("Python mcp client part", &e),
    }

    // 7. The stdio transport, driven by rmcp spawning the gateway.
    stdio_transport(&setup).await?;

    // 8. Operations: metrics count what happened.
    let metrics = reqwest::get(format!("{}/metrics", gw.base))
        .await?
        .text()
        .await?;
    for needle in [
        // rmcp: 3 allowed, 1 denied; Python: 1 allowed, 1 denied (stdio ran its own gateway).
        "verdict_gateway_calls_total{outcome=\"allow\"} 4",
        "verdict_gateway_calls_total{outcome=\"deny\"} 2",
        "verdict_gateway_calls_total{outcome=\"escalate\"} 1",
        "verdict_gateway_calls_total{outcome=\"unmapped-denied\"} 1",
        // 5 bad calls from rmcp, the unknown tool from Python.
        "verdict_gateway_calls_total{outcome=\"invalid\"} 6",
        "verdict_gateway_forwarded_total 4",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    let log = gw.output();
    assert!(
        log.contains(&format!("tool call write_file: deny (log index {index})")),
        "{log}"
    );

    // 9. verdict-server down: calls are refused and nothing is forwarded.
    setup.server.stop()?;
    let down = root.join("internal/while-down.txt");
    let r = call(&client, "write_file", json!({"path": down, "content": "x"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("no policy decision"), "{}", text(&r));
    assert!(!down.exists(), "a call was forwarded with the server down");
    assert!(gw.alive());
    let health = reqwest::get(format!("{}/health", gw.base)).await?;
    assert!(health.status().is_success());
    client.cancel().await?;
    Ok(())
}

/// Malformed JSON-RPC over raw HTTP gets a JSON-RPC error object.
async fn malformed_json_rpc(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for body in [
        "{not json",
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#,
        r#"[1,2,3]"#,
    ] {
        let r = http
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        // The answer is a JSON-RPC error, possibly inside an SSE `data:` line.
        let json_part = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or(&text)
            .trim();
        let v: Value = serde_json::from_str(json_part)
            .with_context(|| format!("{body}: answer {status} is not JSON: {text}"))?;
        assert!(v["error"]["code"].is_i64(), "{body}: {status} {text}");
    }
    Ok(())
}

async fn python_client(setup: &Setup, base: &str, python: &std::path::Path) -> Result<()> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/mcp_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("{base}/mcp"))
        .arg(&setup.root)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(step("tools")["names"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n == "write_file")));
    let allow = step("allow");
    assert_eq!(allow["is_error"], false, "{allow}");
    assert!(setup.root.join("internal/py-allowed.txt").exists());
    let bundle = allow["meta"][META_KEY]["bundle"]
        .as_str()
        .context("python: no bundle")?;
    assert_eq!(setup.verify(bundle, "py-allow")?.code, Some(0));
    let deny = step("deny");
    assert_eq!(deny["is_error"], true, "{deny}");
    assert!(deny["text"]
        .as_str()
        .unwrap_or("")
        .contains("external-needs-authorization"));
    assert!(!setup.root.join("outbox/py-denied.txt").exists());
    let bundle = deny["meta"][META_KEY]["bundle"]
        .as_str()
        .context("python: no deny bundle")?;
    assert_eq!(setup.verify(bundle, "py-deny")?.code, Some(0));
    let unknown = step("unknown");
    assert!(
        unknown.get("error").is_some() || unknown["is_error"] == true,
        "unknown tool via python: {unknown}"
    );
    Ok(())
}

async fn stdio_transport(setup: &Setup) -> Result<()> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict-gateway"));
    cmd.arg("--config")
        .arg(&setup.config)
        .arg("--stdio")
        .env("RUST_LOG", "warn");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let client = ().serve(transport).await?;
    let path = setup.root.join("internal/via-stdio.txt");
    let r = call(
        &client,
        "write_file",
        json!({"path": path, "content": "stdio"}),
    )
    .await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(std::fs::read_to_string(&path)?, "stdio");
    let bundle = meta(&r)["bundle"]
        .as_str()
        .map(str::to_owned)
        .context("stdio: no bundle")?;
    assert_eq!(setup.verify(&bundle, "stdio")?.code, Some(0));
    let denied = setup.root.join("outbox/via-stdio.txt");
    let r = call(
        &client,
        "write_file",
        json!({"path": denied, "content": "stdio"}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(!denied.exists());
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_tools_can_be_screened_as_not_applicable() -> Result<()> {
    let fs = match filesystem_server() {
        Ok(fs) => fs,
        Err(e) => {
            skip("gateway not-applicable test (npm filesystem server)", &e);
            return Ok(());
        }
    };
    let setup = Setup::new(fs).await?;
    let text_cfg = crate::support::config_text(
        &setup.server.base,
        &setup.root,
        &setup.fs_server,
        "not-applicable",
    );
    std::fs::write(&setup.config, text_cfg)?;
    let gw = setup.gateway().await?;
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "{}/mcp",
            gw.base
        )))
        .await?;
    std::fs::write(setup.root.join("internal/readme.txt"), "hello")?;
    let r = call(
        &client,
        "read_text_file",
        json!({"path": setup.root.join("internal/readme.txt")}),
    )
    .await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(text(&r).contains("hello"));
    let m = meta(&r);
    assert_eq!(m["decision"], "not-applicable", "{m}");
    let run = setup.verify(m["bundle"].as_str().context("no bundle")?, "na")?;
    assert_eq!(run.code, Some(0), "{} {}", run.stdout, run.stderr);
    assert!(
        gw.output()
            .contains("tool call read_text_file: not-applicable"),
        "{}",
        gw.output()
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_mapping_stops_the_gateway_with_file_and_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy =
        verdict_tests::bins::workspace_root().join("testdata/policies/customer-data-egress.toml");
    std::fs::write(dir.path().join("t.token"), "abc\n")?;
    let config = dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "policies = [\"{}\"]\n[verdict]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"t.token\"\n\
             [[upstreams]]\nname = \"x\"\ncommand = \"true\"\n[tools.send_email]\npolicy = \"customer-data-egress\"\n\
             [tools.send_email.variables]\nrecord_count = {{ value = \"lots\" }}\n",
            policy.display()
        ),
    )?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict-gateway"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:11: tool `send_email`, variable `record_count`",
            config.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    Ok(())
}
