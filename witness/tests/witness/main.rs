//! Integration tests of `verdict-witness`, against the real binary on loopback:
//! - `serve`: push mode (`POST /add-checkpoint`): valid adds, 409 with the witness's size, forks,
//!   rollbacks, bad signatures and malformed requests with the spec's status codes, the
//!   monitoring endpoint, and state that survives `kill -9`;
//! - `watch`: pull mode against a static C2SP tlog-tiles log served by a real HTTP file server
//!   (`python3 -m http.server`): first contact, growth proven from tiles, fork and rollback
//!   detected with exit 1;
//! - `keys`: `keygen` (0600 file, never overwritten), `vkey`.
//!
//! Support: [`TestLog`] (an in-memory log with a real log key that signs checkpoints and builds
//! proofs and tiles with `verdict-core`) and [`WitnessProcess`].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

mod keys;
mod serve;
mod watch;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::cosignature::CosignerKey;
use verdict_core::merkle::{leaf_hash, root_of};
use verdict_core::note::{Signer, Verifier};
use verdict_core::proof::{consistency_proof, MemoryHashSource};
use verdict_core::{Hash, TreeSize};

pub const ORIGIN: &str = "verdict.test/log";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_verdict-witness")
}

/// `verdict-witness keygen` into `dir/witness.key`; returns the key path and vkey.
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, CosignerKey) {
    let key = dir.join("witness.key");
    let out = Command::new(bin())
        .args(["keygen", "--name", name, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let vkey = String::from_utf8(out.stdout).unwrap();
    (key, CosignerKey::parse(vkey.trim()).unwrap())
}

/// A log held in memory: leaves, a log key, signed checkpoints, proofs and tiles.
pub struct TestLog {
    pub signer: Signer,
    pub leaves: Vec<Hash>,
}

impl TestLog {
    /// A log whose leaves are `prefix‖i`; two logs with different prefixes fork.
    pub fn new(seed: u8, size: u64, prefix: &str) -> Self {
        let signer =
            Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap();
        let leaves = (0..size)
            .map(|i| leaf_hash(format!("{prefix}{i}").as_bytes()))
            .collect();
        TestLog { signer, leaves }
    }

    pub fn vkey(&self) -> Verifier {
        self.signer.verifier()
    }

    pub fn grow(&mut self, to: u64, prefix: &str) {
        for i in self.leaves.len() as u64..to {
            self.leaves
                .push(leaf_hash(format!("{prefix}{i}").as_bytes()));
        }
    }

    pub fn body(&self, size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(size),
            root: root_of(&self.leaves[..size as usize]),
            extensions: vec![],
        }
    }

    /// The signed checkpoint note at `size`.
    pub fn checkpoint(&self, size: u64) -> Vec<u8> {
        self.body(size).sign(&self.signer).unwrap()
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 || old >= new {
            return vec![];
        }
        let source = MemoryHashSource::new(self.leaves[..new as usize].to_vec());
        consistency_proof(&source, TreeSize(old), TreeSize(new)).unwrap()
    }

    /// Write the log's checkpoint at `size` and all its hash tiles under `dir` (C2SP
    /// tlog-tiles layout, as a static-file log publishes it).
    pub fn publish(&self, dir: &Path, size: u64) {
        std::fs::write(dir.join("checkpoint"), self.checkpoint(size)).unwrap();
        for tile in verdict_core::tile::hash_tiles(TreeSize(size)) {
            let verdict_core::tile::TileKind::Hashes { level } = tile.kind else {
                continue;
            };
            let height = 8 * u32::from(level);
            let mut bytes = Vec::new();
            for j in 0..u64::from(tile.width) {
                let index = tile.index * 256 + j;
                let lo = (index << height) as usize;
                let hi = ((index + 1) << height) as usize;
                bytes.extend_from_slice(&root_of(&self.leaves[lo..hi]).0);
            }
            let path = dir.join(tile.path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
}

/// A running `verdict-witness serve`, killed (SIGKILL) on drop.
pub struct WitnessProcess {
    pub child: Child,
    pub url: String,
}

impl WitnessProcess {
    pub fn start(data_dir: &Path, key: &Path, logs: &[Verifier]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for l in logs {
            cmd.arg("--log").arg(l.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr: SocketAddr = line
            .strip_prefix("verdict-witness listening on ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        WitnessProcess {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POST a raw body to `/add-checkpoint`: status, content type, body.
pub async fn post_raw(url: &str, body: Vec<u8>) -> (u16, String, String) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}
