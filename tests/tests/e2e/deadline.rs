//! One deadline per decision on a real `verdict-server` process (issue 13, acceptance
//! "Deadline"): with the chain-1000 fixture (`testdata/policies/generated/chain-1000.toml`),
//! a check is answered within `check_timeout_ms` plus slack, fail-closed and logged so, and the
//! server process's CPU time (`/proc/<pid>/stat` utime + stime) grows by at most 1 s after the
//! answer. (A decision cannot outlive its request: the server refuses a `check_timeout_ms` not
//! below `request_timeout_ms`, see `config.rs`.)

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use verdict_core::receipt::Receipt;
use verdict_tests::bins::workspace_root;
use verdict_tests::server::Server;

const CHECK_MS: u64 = 2_000;

/// CPU time (user + system) of process `pid` so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the state field.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn register_chain(server: &Server) {
    let admin = std::fs::read_to_string(server.data_dir.join("admin.token")).unwrap();
    let source = std::fs::read_to_string(
        workspace_root().join("testdata/policies/generated/chain-1000.toml"),
    )
    .unwrap();
    // Its analysis cannot finish (422 without force): registered with force=true.
    let r = server
        .http
        .post(format!("{}/v1/policies?force=true", server.base))
        .bearer_auth(admin.trim())
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn post_check(server: &Server, wait: bool) -> (reqwest::StatusCode, serde_json::Value) {
    let r = server
        .http
        .post(format!("{}/v1/check?wait={wait}", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": "chain-1000", "action": {"v0000": 1}}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// CPU the process uses over `window` after the answer.
async fn cpu_after(pid: u32, window: Duration) -> Duration {
    let at_answer = cpu(pid);
    tokio::time::sleep(window).await;
    cpu(pid).saturating_sub(at_answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_stops_at_its_deadline_and_no_cpu_work_follows_the_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        &tmp.path().join("data"),
        None,
        &[
            ("VERDICT_CHECK_TIMEOUT_MS", "2000"),
            ("VERDICT_ANALYSIS_TIMEOUT_MS", "1000"),
            ("VERDICT_CHECKER_THREADS", "1"),
        ],
    )
    .await
    .unwrap();
    register_chain(&server).await;
    let pid = server.pid().unwrap();

    let t = Instant::now();
    let (status, d) = post_check(&server, false).await;
    let took = t.elapsed();
    let after = cpu_after(pid, Duration::from_secs(3)).await;
    eprintln!(
        "chain-1000 check: answered in {took:?} (deadline {CHECK_MS} ms), server CPU in the 3 s after the answer: {after:?}"
    );
    assert_eq!(status, 202, "{d}");
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["fail_closed"], true, "{d}");
    // Deadline plus 10 %, plus slack for a loaded 2-core machine (HTTP, sequencing).
    assert!(
        took < Duration::from_millis(CHECK_MS * 11 / 10 + 1_000),
        "answered after {took:?}"
    );
    assert!(
        after <= Duration::from_secs(1),
        "CPU after the answer: {after:?}"
    );
    // Logged fail-closed: the signed receipt in the log says so.
    let receipt = base64::engine::general_purpose::STANDARD
        .decode(d["receipt"].as_str().unwrap())
        .unwrap();
    assert!(Receipt::decode(&receipt).unwrap().statement.fail_closed);
}
