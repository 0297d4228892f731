//! Issue 14 acceptance, with real processes only: a `verdict-server` pushing to three real
//! `verdict-witness serve` processes with quorum 2 (spec `spec/witness.md` §9), and the real
//! `verdict verify --policy` enforcing the quorum of a tlog-policy file.
//!
//! `quorum_fork_forgery_and_restored_backup`, in order: bundles verify with the policy; one
//! witness killed (-9) and bundles still verify; an edited cosignature fails, and so does a
//! forged line for a listed witness; the witness restarted on its state (it survived kill -9)
//! cosigns again; a fork (copied data directory, same keys, diverging appends, same witnesses)
//! never reaches the quorum; a log restored from an old backup raises the alarm (`/health` 503
//! `witness_alarm`, checks refused). `same_size_fork_raises_the_alarm`: a fork at exactly the
//! witness's size, with another root, gets the witness's 409 and halts.
//!
//! Run: `cargo test -p verdict-tests --test witnessed` (about 10 s on a loaded 2-core machine).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions, which clippy.toml does not cover"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use verdict_tests::bins::{binary, verdict};
use verdict_tests::server::{copy_dir, free_addr, Server};

const POLICY: &str = "approved-vendors";

fn action(n: u64) -> Value {
    json!({"call_type": "third_party_api", "vendor": "acme", "sends_personal_data": false, "payload_bytes": 1000 + n})
}

/// A real `verdict-witness serve` on a fixed loopback port (so that it can be restarted there).
struct WitnessProc {
    child: Option<Child>,
    addr: SocketAddr,
    data: PathBuf,
    key: PathBuf,
    log_key: String,
}

impl WitnessProc {
    fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
        let key = dir.join(format!("{}.key", name.replace('/', "_")));
        let out = Command::new(binary("verdict-witness").unwrap())
            .args(["keygen", "--name", name, "--out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            key,
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        )
    }

    fn start(data: PathBuf, key: PathBuf, log_key: String, addr: SocketAddr) -> Self {
        let mut w = WitnessProc {
            child: None,
            addr,
            data,
            key,
            log_key,
        };
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let child = Command::new(binary("verdict-witness").unwrap())
            .args(["serve", "--listen", &self.addr.to_string(), "--data-dir"])
            .arg(&self.data)
            .arg("--key")
            .arg(&self.key)
            .arg("--log")
            .arg(&self.log_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "witness on {} not up", self.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `POST /v1/check`, returning the status and JSON body.
async fn check(server: &Server, n: u64, query: &str) -> (u16, Value) {
    let r = server
        .http
        .post(format!("{}/v1/check?{query}", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": POLICY, "action": action(n)}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A witnessed check: 200, the receipt's leaf index and the bundle text.
async fn witnessed_check(server: &Server, n: u64) -> (u64, String) {
    let (status, body) = check(server, n, "witnessed=true").await;
    assert_eq!(status, 200, "{body}\n{}", server.output());
    (
        body["index"].as_u64().unwrap(),
        body["proof"]["bundle"].as_str().unwrap().to_owned(),
    )
}

/// The bundle text of a witnessed check.
async fn witnessed_bundle(server: &Server, n: u64) -> String {
    witnessed_check(server, n).await.1
}

fn verify(dir: &Path, name: &str, bundle: &str, policy: &Path) -> verdict_tests::bins::Run {
    let file = dir.join(format!("{name}.proof"));
    std::fs::write(&file, bundle).unwrap();
    verdict([
        "verify".as_ref(),
        file.as_os_str(),
        "--policy".as_ref(),
        policy.as_os_str(),
    ])
    .unwrap()
}

/// Cosignature lines (by the witness names) in a bundle or checkpoint text.
fn cosigners(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("— witness.test/"))
        .count()
}

/// `bundle` with w1's cosignature line replaced by a line named and keyed as w3 (`w3_vkey`,
/// `<name>+<hex key id>+<base64 key>`) that carries w1's timestamp and signature bytes.
fn forge_w3(bundle: &str, w3_vkey: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = w3_vkey.splitn(3, '+');
    let name = parts.next().unwrap();
    let key_id = hex::decode(parts.next().unwrap()).unwrap();
    bundle
        .lines()
        .map(|l| match l.strip_prefix("— witness.test/w1 ") {
            Some(sig) => {
                let mut bytes = b64.decode(sig).unwrap();
                bytes[..4].copy_from_slice(&key_id);
                format!("— {name} {}\n", b64.encode(bytes))
            }
            None => format!("{l}\n"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_fork_forgery_and_restored_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("log");

    // The log key comes from a first start without witnesses.
    let mut bare = Server::start(&data, None).await.unwrap();
    let log_key = bare.log_key.clone();
    let checker = bare.checker_keys[0].clone();
    bare.stop().unwrap();
    drop(bare);

    let mut witnesses = Vec::new();
    let mut vkeys = Vec::new();
    let mut toml = String::from("witness_quorum = 2\nwitness_timeout_ms = 2000\n");
    let mut policy = format!("log {log_key}\n");
    for i in 1..=3 {
        let name = format!("witness.test/w{i}");
        let (key, vkey) = WitnessProc::keygen(dir, &name);
        let w = WitnessProc::start(
            dir.join(format!("w{i}")),
            key,
            log_key.clone(),
            free_addr().unwrap(),
        );
        toml.push_str(&format!(
            "[[witness]]\nname = \"w{i}\"\nvkey = \"{vkey}\"\nurl = \"http://{}\"\n",
            w.addr
        ));
        policy.push_str(&format!("witness w{i} {vkey}\n"));
        vkeys.push(vkey);
        witnesses.push(w);
    }
    policy.push_str(&format!(
        "group trusted 2 w1 w2 w3\nquorum trusted\nchecker {checker}\n"
    ));
    let config = dir.join("witnessed.toml");
    std::fs::write(&config, &toml).unwrap();
    let policy_file = dir.join("policy.txt");
    std::fs::write(&policy_file, &policy).unwrap();

    let log_addr = free_addr().unwrap();
    let mut log = Server::start_with(&data, Some(log_addr), Some(&config), true)
        .await
        .unwrap();

    // 1. Bundles verify with the policy file; the policy without cosignatures would not.
    let mut n = 0;
    let mut first = None;
    for _ in 0..3 {
        n += 1;
        let (index, bundle) = witnessed_check(&log, n).await;
        first.get_or_insert(index);
        assert!(cosigners(&bundle) >= 2, "{bundle}");
        let run = verify(dir, &format!("ok{n}"), &bundle, &policy_file);
        assert_eq!(run.code, Some(0), "{run:?}");
    }
    // A bundle of GET /v1/bundle/{i} (a receipt's; entry 0 is the policy registration)
    // carries the quorum too.
    let first = first.unwrap();
    let bundle = log.get_bytes(&format!("v1/bundle/{first}")).await.unwrap();
    let bundle = String::from_utf8(bundle).unwrap();
    assert!(cosigners(&bundle) >= 2, "{bundle}");
    assert_eq!(
        verify(dir, "get0", &bundle, &policy_file).code,
        Some(0),
        "{bundle}"
    );
    // Without witness lines the quorum fails (exit 1).
    let stripped: String = bundle
        .lines()
        .filter(|l| !l.starts_with("— witness.test/"))
        .map(|l| format!("{l}\n"))
        .collect();
    let run = verify(dir, "stripped", &stripped, &policy_file);
    assert_eq!(run.code, Some(1), "{run:?}");

    // A backup of the log at this point (server stopped for a consistent copy).
    log.stop().unwrap();
    drop(log);
    let backup = dir.join("backup");
    copy_dir(&data, &backup).unwrap();
    let mut log = Server::start_with(&data, Some(log_addr), Some(&config), true)
        .await
        .unwrap();
    for _ in 0..3 {
        n += 1;
        witnessed_bundle(&log, n).await;
    }

    // 2. One witness killed with -9: bundles still verify (2 of 3).
    witnesses[2].kill9();
    n += 1;
    let bundle = witnessed_bundle(&log, n).await;
    assert_eq!(cosigners(&bundle), 2, "{bundle}");
    assert_eq!(
        verify(dir, "two", &bundle, &policy_file).code,
        Some(0),
        "{bundle}"
    );

    // 3. An edited cosignature fails; so does a forged line by a listed witness.
    let lines: Vec<&str> = bundle.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("— witness.test/"))
        .unwrap();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let line = edited[at].clone();
    let (head, sig) = line.rsplit_once(' ').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    let k = sig.len() - 10;
    sig[k] = if sig[k] == 'A' { 'B' } else { 'A' };
    edited[at] = format!("{head} {}", sig.into_iter().collect::<String>());
    let edited = edited.join("\n") + "\n";
    let run = verify(dir, "edited", &edited, &policy_file);
    assert_eq!(run.code, Some(1), "{run:?}");
    // A forged line for w3 (listed, but killed: it cosigned nothing here) with w3's key id and
    // w1's timestamp and signature, replacing w1's line: w2 + a forged w3 would make the quorum.
    let forged = forge_w3(&bundle, &vkeys[2]);
    assert_eq!(cosigners(&forged), 2, "{forged}");
    let run = verify(dir, "forged", &forged, &policy_file);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("check cosignature failed"), "{run:?}");

    // 4. The killed witness restarts on its state and cosigns again.
    witnesses[2].spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        n += 1;
        let bundle = witnessed_bundle(&log, n).await;
        if cosigners(&bundle) == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "w3 never cosigned again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // 5. A fork: a copy of the data directory, same keys, diverging appends, same witnesses.
    log.stop().unwrap();
    drop(log);
    let fork_dir = dir.join("fork");
    copy_dir(&data, &fork_dir).unwrap();
    let log = Server::start_with(&data, Some(log_addr), Some(&config), true)
        .await
        .unwrap();
    n += 1;
    witnessed_bundle(&log, n).await;
    let fork = Server::start_with(&fork_dir, None, Some(&config), false)
        .await
        .unwrap();
    // The fork grows further than the log did, with different entries.
    for i in 0..5 {
        let (status, body) = check(&fork, 10_000 + i, "").await;
        assert!(status == 200 || status == 503, "{status} {body}");
    }
    // Whichever way the witnesses refuse (its proof does not extend what they saw, or they
    // state a larger size: alarm and halt), the fork gets no quorum.
    let (status, body) = check(&fork, 20_000, "witnessed=true").await;
    assert_eq!(status, 503, "fork reached a quorum: {body}");
    assert!(
        body["error"] == "not_witnessed" || body["error"] == "unavailable",
        "{body}"
    );
    let fork_cp = String::from_utf8(fork.get_bytes("checkpoint").await.unwrap()).unwrap();
    assert_eq!(
        cosigners(&fork_cp),
        0,
        "witnesses cosigned the fork: {fork_cp}"
    );
    let r = fork
        .http
        .get(format!("{}/v1/bundle/0", fork.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    drop(fork);
    // The honest log is still witnessed.
    n += 1;
    let bundle = witnessed_bundle(&log, n).await;
    assert_eq!(
        verify(dir, "after-fork", &bundle, &policy_file).code,
        Some(0)
    );

    // 6. A log restored from the old backup is detected through its witnesses.
    let restored = Server::start_with(&backup, None, Some(&config), false)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alarm = loop {
        let r = restored
            .http
            .get(format!("{}/health", restored.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 503 && body["error"] == "witness_alarm" {
            break body;
        }
        assert!(Instant::now() < deadline, "no alarm: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        alarm["message"].as_str().unwrap().contains("larger than"),
        "{alarm}"
    );
    let (status, body) = check(&restored, 30_000, "").await;
    assert_eq!(status, 503, "a halted log accepted a check: {body}");
}

/// A fork that reaches exactly the size a witness cosigned, with another root: the witness
/// answers `409` with that same size (c2sp tlog-witness), and the forked log raises the alarm
/// (spec `spec/witness.md` §5, §9.3) instead of retrying for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_size_fork_raises_the_alarm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("log");
    let mut bare = Server::start(&data, None).await.unwrap();
    let log_key = bare.log_key.clone();
    bare.stop().unwrap();
    drop(bare);

    let (key, vkey) = WitnessProc::keygen(dir, "witness.test/w1");
    let witness = WitnessProc::start(dir.join("w1"), key, log_key, free_addr().unwrap());
    let config = dir.join("witnessed.toml");
    std::fs::write(
        &config,
        format!(
            "witness_quorum = 1\nwitness_timeout_ms = 2000\n[[witness]]\nname = \"w1\"\n\
             vkey = \"{vkey}\"\nurl = \"http://{}\"\n",
            witness.addr
        ),
    )
    .unwrap();

    // The honest log is witnessed at size S; a copy of its data directory is the fork.
    let mut log = Server::start_with(&data, None, Some(&config), true)
        .await
        .unwrap();
    witnessed_bundle(&log, 1).await;
    log.stop().unwrap();
    drop(log);
    let fork_dir = dir.join("fork");
    copy_dir(&data, &fork_dir).unwrap();
    // The honest log grows by one entry, witnessed: the witness is at S + 1.
    let mut log = Server::start_with(&data, None, Some(&config), true)
        .await
        .unwrap();
    let (index, _) = witnessed_check(&log, 2).await;
    log.stop().unwrap();
    drop(log);

    // The fork grows by one other entry without pushing (no witness configured), so it reaches
    // S + 1 with another root; then it starts with the witness.
    let mut fork = Server::start(&fork_dir, None).await.unwrap();
    let (status, body) = check(&fork, 3, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["index"].as_u64(), Some(index), "{body}");
    fork.stop().unwrap();
    drop(fork);
    let fork = Server::start_with(&fork_dir, None, Some(&config), false)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alarm = loop {
        let r = fork
            .http
            .get(format!("{}/health", fork.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 503 && body["error"] == "witness_alarm" {
            break body;
        }
        assert!(Instant::now() < deadline, "no alarm: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains(&format!("another root at tree size {}", index + 1)),
        "{alarm}"
    );
    let fork_cp = String::from_utf8(fork.get_bytes("checkpoint").await.unwrap()).unwrap();
    assert_eq!(cosigners(&fork_cp), 0, "{fork_cp}");
    let (status, body) = check(&fork, 4, "").await;
    assert_eq!(status, 503, "a halted log accepted a check: {body}");
}
