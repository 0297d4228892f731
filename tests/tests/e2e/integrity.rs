//! Log integrity with the real `verdict-server` (issue 12): a restored backup of `store/` under
//! a newer checkpoint lock is refused with exit code 3 and a message naming both trees; a damaged
//! store either is refused with a documented exit code (never 101, never a signal) or serves a
//! log consistent with every checkpoint served before. The many seeded trials run in process in
//! `log-server/tests/server/integrity.rs`; these few cover the binary's exit codes.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::Hash;
use verdict_core::note::Verifier;
use verdict_core::proof::verify_consistency;
use verdict_tests::bins::{binary, workspace_root};
use verdict_tests::server::{copy_dir, free_addr, Server};

const POLICY: &str = "approved-vendors";

async fn grow(server: &Server, n: u64) -> Vec<u8> {
    for i in 0..n {
        server
            .check(
                POLICY,
                json!({"call_type": "internal", "vendor": format!("v{i}")}),
                true,
            )
            .await
            .unwrap();
    }
    server.get_bytes("checkpoint").await.unwrap()
}

/// How a start of the server on a data directory ended.
enum Outcome {
    /// It exited before becoming healthy.
    Exited(ExitStatus, String),
    /// It served: the checkpoint it served, then it was stopped.
    Served(Vec<u8>, Vec<(u64, Vec<Hash>)>),
}

/// Start `verdict-server` on `data_dir`; if it serves, fetch its checkpoint and consistency
/// proofs from each size in `from`, then kill it.
async fn start_once(data_dir: &Path, from: &[u64]) -> Outcome {
    let addr = free_addr().unwrap();
    let log_path = data_dir.with_extension("start.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(binary("verdict-server").unwrap())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--policies")
        .arg(workspace_root().join("testdata").join("policies"))
        .env("VERDICT_ORIGIN", "verdict.test/e2e")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Outcome::Exited(status, std::fs::read_to_string(&log_path).unwrap());
        }
        if let Ok(r) = http.get(format!("{base}/checkpoint")).send().await {
            if r.status().is_success() {
                let note = r.bytes().await.unwrap().to_vec();
                let size: u64 = String::from_utf8_lossy(&note)
                    .lines()
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut proofs = Vec::new();
                for &old in from.iter().filter(|&&old| old < size) {
                    let r = http
                        .get(format!("{base}/v1/proof/consistency?from={old}&to={size}"))
                        .send()
                        .await
                        .unwrap();
                    if !r.status().is_success() {
                        // A damaged tile is refused (503), never served wrong.
                        assert_eq!(r.status().as_u16(), 503, "{}", r.text().await.unwrap());
                        continue;
                    }
                    let body: serde_json::Value = r.json().await.unwrap();
                    let hashes = body["proof"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(h.as_str().unwrap())
                                .unwrap();
                            Hash::from_slice(&bytes).unwrap()
                        })
                        .collect();
                    proofs.push((old, hashes));
                }
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Served(note, proofs);
            }
        }
        assert!(
            Instant::now() < deadline,
            "server neither served nor exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn open(note: &[u8], key: &Verifier) -> Checkpoint {
    Checkpoint::open(note, key, &[])
        .unwrap()
        .checkpoint()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_backup_and_damaged_store_never_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, None).await.unwrap();
    let key = Verifier::parse(&server.log_key).unwrap();
    let first = grow(&server, 12).await;
    server.stop().unwrap();
    drop(server);
    let backup = tmp.path().join("store-backup");
    copy_dir(&data.join("store"), &backup).unwrap();

    let mut server = Server::start(&data, None).await.unwrap();
    let second = grow(&server, 5).await;
    server.stop().unwrap();
    drop(server);
    let (first, second) = (open(&first, &key), open(&second, &key));
    assert!(second.size > first.size);
    let template = tmp.path().join("template");
    copy_dir(&data, &template).unwrap();

    // Restore the old store, keep the lock: refused with exit 3, naming both trees.
    std::fs::remove_dir_all(data.join("store")).unwrap();
    copy_dir(&backup, &data.join("store")).unwrap();
    match start_once(&data, &[]).await {
        Outcome::Exited(status, output) => {
            assert_eq!(status.code(), Some(3), "{output}");
            let (new, old) = (second.size.to_string(), first.size.to_string());
            assert!(
                output.contains("checkpoint lock")
                    && output.contains(&format!("tree size {new}, root {}", second.root))
                    && output.contains(&format!("tree size {old}"))
                    && output.contains("operator-guide"),
                "{output}"
            );
        }
        Outcome::Served(note, _) => panic!(
            "a restored backup was served: {}",
            String::from_utf8_lossy(&note)
        ),
    }

    // Damaged stores: refused with a documented code (3 integrity, 1 runtime), or consistent.
    let served = [first.clone(), second.clone()];
    let (mut refused, mut consistent) = (0, 0);
    for seed in 0u64..10 {
        let dir = tmp.path().join(format!("damaged-{seed}"));
        copy_dir(&template, &dir).unwrap();
        let db = dir.join("store").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let len = bytes.len() as u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (seed + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Aim at the newest writes (the end of the used part of the file), where sled keeps
        // the latest state, or anywhere for odd seeds.
        let used = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(1, |p| p as u64 + 1);
        let recent = used.saturating_sub(1 + next() % used.min(4096));
        if seed >= 8 {
            // The truncated `store/db` (sled panicked, exit 101).
            bytes.truncate((7 + next() % 200) as usize);
        } else if seed % 3 == 2 {
            bytes.truncate(recent as usize);
        } else {
            let at = if seed % 2 == 0 {
                recent as usize
            } else {
                (next() % len) as usize
            };
            for k in 0..16 {
                let i = (at + k) % bytes.len();
                bytes[i] ^= 0x5a;
            }
        }
        std::fs::write(&db, &bytes).unwrap();
        match start_once(&dir, &[first.size.0, second.size.0]).await {
            Outcome::Exited(status, output) => {
                assert!(
                    matches!(status.code(), Some(1 | 3)),
                    "trial {seed}: exit {status}: {output}"
                );
                let last = output.lines().last().unwrap_or_default();
                eprintln!("trial {seed}: refused with {status}: {last}");
                refused += 1;
            }
            Outcome::Served(note, proofs) => {
                let now = open(&note, &key);
                for old in &served {
                    assert!(now.size >= old.size, "trial {seed}: rolled back");
                    if now.size == old.size {
                        assert_eq!(now.root, old.root, "trial {seed}: fork");
                    }
                }
                for (from, proof) in proofs {
                    let old = served.iter().find(|c| c.size.0 == from).unwrap();
                    verify_consistency(old.size, now.size, &proof, &old.root, &now.root)
                        .unwrap_or_else(|e| panic!("trial {seed}: fork: {e}"));
                }
                consistent += 1;
            }
        }
    }
    println!("real binary, damaged store/db: {refused} refused, {consistent} served consistently");
    assert!(refused > 0, "no trial reached the refusal path");

    // `fill` refuses the data directory a server has used (exit 4), and fills a new one with
    // throwaway keys named for benchmarks.
    let fill = |dir: &Path| {
        Command::new(binary("verdict-server").unwrap())
            .arg("--data-dir")
            .arg(dir)
            .args([
                "fill",
                "--entries",
                "20",
                "--concurrency",
                "4",
                "--batch",
                "8",
            ])
            .output()
            .unwrap()
    };
    let before = std::fs::read(template.join("checkpoint.lock")).unwrap();
    let refused = fill(&template);
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a benchmark data directory"));
    assert_eq!(
        std::fs::read(template.join("checkpoint.lock")).unwrap(),
        before
    );
    let bench = tmp.path().join("bench");
    let filled = fill(&bench);
    assert_eq!(filled.status.code(), Some(0), "{filled:?}");
    let key = std::fs::read_to_string(bench.join("log.key")).unwrap();
    assert!(key.contains("bench.invalid/verdict-server-fill"), "{key}");
    assert!(bench.join("BENCHMARK-DATA-ONLY").is_file());
    assert!(bench.join("checkpoint.lock").is_file());
}
