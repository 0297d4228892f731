//! Secrets at rest (issue 13): a real `verdict-server` started under umask 022 keeps its data
//! directory private (every directory 0700, every file 0600: keys, tokens, sled files, tile
//! files, the checkpoint lock), and no token value an agent sent is stored anywhere: a byte
//! search of every file of the data directory (the sled database included) finds none, and
//! `GET /v1/private/actions/{i}` keeps only the token's presence.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::json;
use verdict_tests::server::Server;

const POLICY: &str = "customer-data-egress";
/// More than one full entry bundle (256), so tile files are written too.
const CHECKS: usize = 300;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every entry under `root` (root included), not following links.
fn walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.push((p, meta));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_is_private_and_holds_no_token_value() {
    // The server inherits the umask; 022 is the usual default that made store/db 0644.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = std::sync::Arc::new(Server::start(&data, None).await.unwrap());
    nix::sys::stat::umask(previous);

    let token = |n: usize| format!("SECRETTOKENVALUE-at-rest-{n:05}-x7Qv");
    let mut tasks = Vec::new();
    for t in 0..6 {
        let server = std::sync::Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut indices = Vec::new();
            for n in (t..CHECKS).step_by(6) {
                let action = json!({
                "destination": "external",
                "classification": "internal",
                "record_count": 10,
                "transfers_in_session": 0,
                "is_privileged": false,
                "approver_id": format!("STOREDSTRING-{n:05}"),
                "authorization_token": token(n),
                "approval_token": token(n + 100_000),
                    });
                let r = server.check(POLICY, action, n % 50 == 0).await.unwrap();
                indices.push(r["index"].as_u64().unwrap());
            }
            indices
        }));
    }
    let mut indices = Vec::new();
    for t in tasks {
        indices.extend(t.await.unwrap());
    }

    // The auditor endpoint keeps the token's presence only.
    let auditor = std::fs::read_to_string(data.join("auditor.token")).unwrap();
    for &i in indices.iter().step_by(37) {
        let r = server
            .http
            .get(format!("{}/v1/private/actions/{i}", server.base))
            .bearer_auth(auditor.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let body = r.bytes().await.unwrap();
        assert!(!contains(&body, b"SECRETTOKENVALUE"), "{i}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["record"]["action"]["authorization_token"], true);
        assert_eq!(v["record"]["action"]["approval_token"], true);
    }
    std::sync::Arc::into_inner(server).unwrap().stop().unwrap();

    let entries = walk(&data);
    let mut bad_modes = Vec::new();
    let (mut files, mut bytes) = (0usize, 0usize);
    let mut found = Vec::new();
    let mut control = false;
    for (path, meta) in &entries {
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            bad_modes.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_file() {
            let content = std::fs::read(path).unwrap();
            files += 1;
            bytes += content.len();
            // The scan can fail: a string variable's value is kept (private record).
            control |= contains(&content, b"STOREDSTRING-00042");
            if contains(&content, b"SECRETTOKENVALUE") {
                found.push(path.display().to_string());
            }
        }
    }
    eprintln!(
        "at rest: {} entries, {files} files, {bytes} bytes scanned",
        entries.len()
    );
    assert!(files >= 8, "the scan must see the store: {entries:?}");
    assert!(
        entries.iter().any(|(p, _)| p.ends_with("store/db")),
        "sled's db file"
    );
    assert!(
        entries
            .iter()
            .any(|(p, _)| p.starts_with(data.join("store/tile"))
                && p.file_name().is_some_and(|n| n == "000")),
        "a full tile file"
    );
    assert!(control, "the scan finds the stored string value");
    assert!(bad_modes.is_empty(), "modes: {bad_modes:#?}");
    assert!(found.is_empty(), "token values stored in {found:?}");
}
