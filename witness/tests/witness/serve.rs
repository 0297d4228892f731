//! Push mode against the real `verdict-witness serve` on loopback.

use std::time::Duration;

use verdict_core::checkpoint::Checkpoint;
use verdict_core::cosignature::verify_note;
use verdict_core::note::{Note, Signer};
use verdict_core::{Hash, TreeSize};
use verdict_witness::client::{AddOutcome, ClientError, WitnessClient};
use verdict_witness::protocol::{origin_hash, AddCheckpointRequest};

use crate::{keygen, post_raw, TestLog, WitnessProcess, ORIGIN};

struct Setup {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    key: std::path::PathBuf,
    client: WitnessClient,
    process: WitnessProcess,
    log: TestLog,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = keygen(dir.path(), "witness.test/w1");
    let log = TestLog::new(1, 20, "leaf");
    let data = dir.path().join("state");
    let process = WitnessProcess::start(&data, &key, &[log.vkey()]);
    let client = WitnessClient::new(&process.url, vkey, Duration::from_secs(10)).unwrap();
    Setup {
        _dir: dir,
        data,
        key,
        client,
        process,
        log,
    }
}

async fn add(s: &Setup, log: &TestLog, old: u64, size: u64) -> Result<AddOutcome, ClientError> {
    s.client
        .add_checkpoint(&log.checkpoint(size), TreeSize(old), &log.proof(old, size))
        .await
}

fn status(r: Result<AddOutcome, ClientError>) -> u16 {
    match r {
        Ok(AddOutcome::Cosigned { .. }) => 200,
        Ok(AddOutcome::Conflict { .. }) => 409,
        Err(e) => e.status().unwrap_or_else(|| panic!("{e}")),
    }
}

#[tokio::test]
async fn valid_adds_are_cosigned_and_published() {
    let s = setup();
    // First contact: old 0, no proof.
    let first = add(&s, &s.log, 0, 5).await.unwrap();
    let AddOutcome::Cosigned { lines, verified } = first else {
        panic!("not cosigned: {first:?}");
    };
    assert_eq!(lines.len(), 1);
    assert_eq!(verified[0].name(), "witness.test/w1");
    let age = verdict_witness::server::now().abs_diff(verified[0].timestamp());
    assert!(age < 60, "timestamp is now");
    // Growth with a proof from the witness's size.
    assert_eq!(status(add(&s, &s.log, 5, 13).await), 200);
    // The same checkpoint again is cosigned again.
    assert_eq!(status(add(&s, &s.log, 13, 13).await), 200);
    // The monitoring endpoint serves the note with the log's signature and the cosignature.
    let url = format!("{}/{}/checkpoint", s.process.url, origin_hash(ORIGIN));
    let note = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    let cp = Checkpoint::open(&note, &s.log.vkey(), &[]).unwrap();
    assert_eq!(cp.checkpoint().size, TreeSize(13));
    let parsed = Note::parse(&note).unwrap();
    let cosigs = verify_note(&parsed, std::slice::from_ref(s.client.key())).unwrap();
    assert_eq!(cosigs.len(), 1);
    // Unknown origins have no checkpoint.
    let missing = format!("{}/{}/checkpoint", s.process.url, origin_hash("nope"));
    assert_eq!(reqwest::get(&missing).await.unwrap().status().as_u16(), 404);
    // GET / is the witness's vkey.
    let vkey = reqwest::get(&s.process.url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(vkey.trim(), s.client.key().to_string());
}

#[tokio::test]
async fn wrong_old_size_gets_409_with_the_witness_size() {
    let s = setup();
    assert_eq!(status(add(&s, &s.log, 0, 7).await), 200);
    for old in [0, 3, 6] {
        let body = AddCheckpointRequest {
            old: TreeSize(old),
            proof: s.log.proof(old, 10),
            checkpoint: s.log.checkpoint(10),
        }
        .encode();
        let (code, ct, text) = post_raw(&s.process.url, body).await;
        assert_eq!(
            (code, ct.as_str(), text.as_str()),
            (409, "text/x.tlog.size", "7\n")
        );
    }
    let r = add(&s, &s.log, 3, 10).await.unwrap();
    assert_eq!(
        r,
        AddOutcome::Conflict {
            witness_size: TreeSize(7)
        }
    );
    // Resending from the stated size succeeds.
    assert_eq!(status(add(&s, &s.log, 7, 10).await), 200);
}

#[tokio::test]
async fn forks_are_rejected_with_409_or_422_and_kept_as_evidence() {
    let s = setup();
    assert_eq!(status(add(&s, &s.log, 0, 8).await), 200);
    // The same log key signs another history (a copied data directory whose appends diverge).
    let mut fork = TestLog::new(1, 6, "leaf");
    fork.grow(12, "forked");
    // Same size, other root: 409 stating the witness's size (c2sp tlog-witness: "If the old
    // size matches the checkpoint size, the witness MUST check that the root hashes are also
    // identical. If they don't match, the witness MUST respond with a 409 Conflict").
    let mut other8 = TestLog::new(1, 7, "leaf");
    other8.grow(8, "forked");
    let body = AddCheckpointRequest {
        old: TreeSize(8),
        proof: Vec::new(),
        checkpoint: other8.checkpoint(8),
    }
    .encode();
    let (code, ct, text) = post_raw(&s.process.url, body).await;
    assert_eq!(
        (code, ct.as_str(), text.as_str()),
        (409, "text/x.tlog.size", "8\n")
    );
    assert_eq!(
        add(&s, &other8, 8, 8).await.unwrap(),
        AddOutcome::Conflict {
            witness_size: TreeSize(8)
        }
    );
    // The honest checkpoint of the same size with a (non-empty) proof between equal sizes: 422.
    let r = s
        .client
        .add_checkpoint(&s.log.checkpoint(8), TreeSize(8), &[Hash([0; 32])])
        .await;
    assert_eq!(status(r), 422);
    // A larger tree whose proof (honestly computed on the fork) does not connect.
    assert_eq!(status(add(&s, &fork, 8, 12).await), 422);
    // The honest proof with the forked checkpoint does not verify either.
    let r = s
        .client
        .add_checkpoint(&fork.checkpoint(12), TreeSize(8), &s.log.proof(8, 12))
        .await;
    assert_eq!(status(r), 422);
    // A garbage proof.
    let r = s
        .client
        .add_checkpoint(&s.log.checkpoint(12), TreeSize(8), &[Hash([0; 32]); 3])
        .await;
    assert_eq!(status(r), 422);
    let evidence = std::fs::read_dir(s.data.join("evidence")).unwrap().count();
    assert_eq!(
        evidence, 6,
        "2 same-size forks, 1 proof between equal sizes, 3 proofs that do not connect"
    );
    // The witness still follows the honest log.
    assert_eq!(status(add(&s, &s.log, 8, 12).await), 200);
}

#[tokio::test]
async fn rollbacks_are_rejected() {
    let s = setup();
    assert_eq!(status(add(&s, &s.log, 0, 10).await), 200);
    // Old size above the checkpoint size: 400.
    let body = AddCheckpointRequest {
        old: TreeSize(10),
        proof: vec![],
        checkpoint: s.log.checkpoint(4),
    }
    .encode();
    let (code, ct, _) = post_raw(&s.process.url, body).await;
    assert_eq!((code, ct.as_str()), (400, "application/json"));
    // Claiming the smaller size as old: 409 with the real size.
    let r = add(&s, &s.log, 4, 4).await.unwrap();
    assert_eq!(
        r,
        AddOutcome::Conflict {
            witness_size: TreeSize(10)
        }
    );
}

#[tokio::test]
async fn bad_signatures_and_malformed_requests_are_rejected() {
    let s = setup();
    // Signed by another key with the log's name: no trusted signature, 403.
    let impostor = Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[99; 32])).unwrap();
    let forged = s.log.body(5).sign(&impostor).unwrap();
    let r = s.client.add_checkpoint(&forged, TreeSize(0), &[]).await;
    assert_eq!(status(r), 403);
    // The trusted key's signature edited: 403.
    let mut note = Note::parse(&s.log.checkpoint(5)).unwrap();
    note.signatures[0].signature[10] ^= 1;
    let r = s
        .client
        .add_checkpoint(&note.to_bytes(), TreeSize(0), &[])
        .await;
    assert_eq!(status(r), 403);
    // Body edited after signing: 403.
    let mut note = Note::parse(&s.log.checkpoint(5)).unwrap();
    note.text = note.text.replacen("\n5\n", "\n6\n", 1);
    let r = s
        .client
        .add_checkpoint(&note.to_bytes(), TreeSize(0), &[])
        .await;
    assert_eq!(status(r), 403);
    // Unknown origin: 404.
    let other = Signer::new(
        "other.test/log",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap();
    let mut body = s.log.body(5);
    body.origin = "other.test/log".into();
    let r = s
        .client
        .add_checkpoint(&body.sign(&other).unwrap(), TreeSize(0), &[])
        .await;
    assert_eq!(status(r), 404);
    // Size 0 with a root other than the empty tree's: 422.
    let mut zero = s.log.body(5);
    zero.size = TreeSize(0);
    let r = s
        .client
        .add_checkpoint(&zero.sign(&s.log.signer).unwrap(), TreeSize(0), &[])
        .await;
    assert_eq!(status(r), 422);
    // A proof from size 0: 422.
    let r = s
        .client
        .add_checkpoint(&s.log.checkpoint(5), TreeSize(0), &[Hash([1; 32])])
        .await;
    assert_eq!(status(r), 422);
    // Malformed bodies: 400.
    for body in [&b"old 01\n\nx"[..], b"nonsense", b"old 0\n\nnot a note"] {
        let (code, ct, text) = post_raw(&s.process.url, body.to_vec()).await;
        assert_eq!((code, ct.as_str()), (400, "application/json"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"].is_string());
    }
    // Nothing was cosigned.
    assert!(std::fs::read_dir(s.data.join("checkpoints"))
        .unwrap()
        .filter_map(Result::ok)
        .all(|e| e.file_name().to_string_lossy().starts_with('.')));
}

/// SIGKILL the witness, then start it again on the same data directory and key.
fn kill9_and_restart(s: &mut Setup) {
    s.process.child.kill().unwrap();
    s.process.child.wait().unwrap();
    s.process = WitnessProcess::start(&s.data, &s.key, &[s.log.vkey()]);
    s.client = WitnessClient::new(
        &s.process.url,
        s.client.key().clone(),
        Duration::from_secs(10),
    )
    .unwrap();
}

#[tokio::test]
async fn state_survives_kill_9() {
    let mut s = setup();
    assert_eq!(status(add(&s, &s.log, 0, 9).await), 200);
    kill9_and_restart(&mut s);
    // The restarted witness still knows size 9: a client starting from 0 learns it.
    assert_eq!(
        add(&s, &s.log, 0, 12).await.unwrap(),
        AddOutcome::Conflict {
            witness_size: TreeSize(9)
        }
    );
    assert_eq!(status(add(&s, &s.log, 9, 12).await), 200);
    kill9_and_restart(&mut s);
    assert_eq!(
        add(&s, &s.log, 0, 12).await.unwrap(),
        AddOutcome::Conflict {
            witness_size: TreeSize(12)
        }
    );
    // A rollback to the state before the kill is still refused.
    assert_eq!(status(add(&s, &s.log, 12, 9).await), 400);
}
