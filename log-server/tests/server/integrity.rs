//! Log integrity on the real sled store (issue 12): the checkpoint lock, damaged stores and a
//! full disk. Everything runs in process on real sled files; the exit codes of the binary are
//! covered by the `integrity` module of the workspace `tests` crate.
//!
//! - `restored_store_is_refused`: a store copied while the log was smaller, restored under the
//!   newer lock, is refused with [`LogError::LockMismatch`], naming both sizes; the lock is
//!   created from an existing store on first start (migration).
//! - `random_corruption_never_forks_or_panics`: 60 seeded trials flip or truncate random bytes
//!   of the sled file, tile files and entry bundle files. Each trial ends in a refusal, or in a
//!   log whose every served checkpoint and entry agrees with what was served before (consistency
//!   proofs checked with core); then it must still append consistently. Counts are printed.
//! - `disk_full_recovers_without_restart`: on a small tmpfs, writes fail while the disk is full
//!   (the log reports the problem) and succeed again once space is freed, without reopening the
//!   log; no acknowledged entry is lost or duplicated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{LeafIndex, TreeSize};
use verdict_core::note::Signer;
use verdict_core::proof::verify_consistency;
use verdict_log_server::log::{Log, LogConfig, LogError};
use verdict_log_server::storage::sled::SledStorage;

const ORIGIN: &str = "example.com/integrity-log";

fn signer() -> Signer {
    Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[33; 32])).unwrap()
}

fn config(dir: &Path) -> LogConfig {
    LogConfig {
        batch_max_entries: 64,
        batch_max_age: Duration::from_millis(1),
        checkpoint_lock: Some(dir.join("checkpoint.lock")),
        ..LogConfig::new(ORIGIN)
    }
}

async fn open(dir: &Path) -> Result<Log, LogError> {
    Log::open_sled(&dir.join("store"), signer(), config(dir)).await
}

fn entry(n: u64) -> Vec<u8> {
    format!("entry {n} {}", "x".repeat((n % 97) as usize)).into_bytes()
}

/// Append entries `from..to` concurrently, record them by index in `log_model`, and return the
/// checkpoint that covers them.
async fn append(
    log: &Log,
    from: u64,
    to: u64,
    log_model: &mut BTreeMap<u64, Vec<u8>>,
) -> Checkpoint {
    let mut last = None;
    let tasks: Vec<_> = (from..to)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { (n, log.submit(entry(n), None).await) })
        })
        .collect();
    for task in tasks {
        let (n, index) = task.await.unwrap();
        let index = index.unwrap();
        assert!(log_model.insert(index.0, entry(n)).is_none());
        last = Some(last.map_or(index, |l: LeafIndex| l.max(index)));
    }
    log.wait_integrated(last.unwrap()).await.unwrap().checkpoint
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        if item.file_type().unwrap().is_dir() {
            files(&item.path(), out);
        } else {
            out.push(item.path());
        }
    }
}

/// `new` equals or extends `old`, proven with a consistency proof from `log`.
fn consistent(log: &Log, old: &Checkpoint, new: &Checkpoint) -> Result<(), String> {
    if old.size > new.size {
        return Err(format!("rolled back from {} to {}", old.size, new.size));
    }
    if old.size == new.size {
        return if old.root == new.root {
            Ok(())
        } else {
            Err(format!("two roots at size {}", old.size))
        };
    }
    if old.size.0 == 0 {
        return Ok(());
    }
    let proof = log
        .consistency_proof(old.size, new.size)
        .map_err(|e| format!("no proof: {e}"))?;
    verify_consistency(old.size, new.size, &proof, &old.root, &new.root)
        .map_err(|e| format!("fork between {} and {}: {e}", old.size, new.size))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut model = BTreeMap::new();
    let log = open(&dir).await.unwrap();
    append(&log, 0, 300, &mut model).await;
    log.shutdown().await.unwrap();
    drop(log);
    let backup = tmp.path().join("backup");
    copy_dir(&dir.join("store"), &backup);

    let log = open(&dir).await.unwrap();
    let newer = append(&log, 300, 340, &mut model).await;
    log.shutdown().await.unwrap();
    drop(log);

    // Restore the older store, keep the lock: refused, naming both sizes.
    std::fs::remove_dir_all(dir.join("store")).unwrap();
    copy_dir(&backup, &dir.join("store"));
    let error = open(&dir).await.unwrap_err();
    assert!(error.is_integrity(), "{error}");
    let LogError::LockMismatch(mismatch) = &error else {
        panic!("expected a lock mismatch, got {error}");
    };
    assert_eq!(
        (mismatch.lock_size, mismatch.store_size),
        (TreeSize(340), TreeSize(300))
    );
    assert_eq!(mismatch.lock_root, newer.root);
    let message = error.to_string();
    assert!(
        message.contains("340") && message.contains("300"),
        "{message}"
    );
    // The refusal wrote nothing: the lock still holds the newer checkpoint.
    let lock = verdict_log_server::log::CheckpointLock::new(dir.join("checkpoint.lock"));
    let locked = lock.read(&signer().verifier(), ORIGIN).unwrap().unwrap();
    assert_eq!(locked.checkpoint, newer);

    // Migration: the same old store without a lock starts, and creates the lock from it.
    std::fs::remove_file(dir.join("checkpoint.lock")).unwrap();
    let log = open(&dir).await.unwrap();
    let created = lock.read(&signer().verifier(), ORIGIN).unwrap().unwrap();
    assert_eq!(created.checkpoint.size, TreeSize(300));
    log.shutdown().await.unwrap();
}

/// A small deterministic generator (xorshift64*), so trials are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    refused: u32,
    served: u32,
    reads_refused: u32,
    panics: u32,
    forks: u32,
    wrong_entries: u32,
}

/// Corrupt one file of the store copy in `dir`: flip bytes or truncate. Returns what was done.
fn corrupt(dir: &Path, rng: &mut Rng) -> String {
    let mut all = Vec::new();
    files(&dir.join("store"), &mut all);
    // The sled file gets half of the trials; tile and bundle files share the rest.
    let db: Vec<_> = all
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "db"))
        .cloned()
        .collect();
    let tiles: Vec<_> = all
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "tile"))
        .cloned()
        .collect();
    let pool = if rng.below(2) == 0 || tiles.is_empty() {
        &db
    } else {
        &tiles
    };
    let target = pool[rng.below(pool.len() as u64) as usize].clone();
    let mut bytes = std::fs::read(&target).unwrap();
    let name = target.strip_prefix(dir).unwrap().display().to_string();
    if bytes.is_empty() {
        return format!("{name}: empty, untouched");
    }
    if rng.below(5) == 0 {
        let len = rng.below(bytes.len() as u64) as usize;
        bytes.truncate(len);
        std::fs::write(&target, &bytes).unwrap();
        return format!("{name}: truncated to {len}");
    }
    let count = 1 + rng.below(16);
    // Flip a run of bytes (like the 16 overwritten bytes) or scattered ones.
    let start = rng.below(bytes.len() as u64) as usize;
    let run = rng.below(2) == 0;
    for k in 0..count as usize {
        let at = if run {
            (start + k) % bytes.len()
        } else {
            rng.below(bytes.len() as u64) as usize
        };
        bytes[at] ^= 1 + rng.below(255) as u8;
    }
    std::fs::write(&target, &bytes).unwrap();
    format!(
        "{name}: {count} bytes flipped ({})",
        if run { "run" } else { "scattered" }
    )
}

/// One trial on a corrupted copy: open; if it opens, everything it serves must agree with what
/// was served before, and it must still append consistently.
async fn trial(
    dir: &Path,
    served: &[Checkpoint],
    model: &BTreeMap<u64, Vec<u8>>,
    outcomes: &mut Outcomes,
) {
    let log = match open(dir).await {
        Ok(log) => log,
        Err(_) => {
            outcomes.refused += 1;
            return;
        }
    };
    outcomes.served += 1;
    let latest = log.latest_checkpoint().unwrap().checkpoint;
    for old in served {
        match consistent(&log, old, &latest) {
            Ok(()) => {}
            Err(e) if e.starts_with("no proof") => outcomes.reads_refused += 1,
            Err(e) => {
                eprintln!("FORK: {e}");
                outcomes.forks += 1;
            }
        }
    }
    for (i, expected) in model.iter().step_by(7) {
        match log.entry(LeafIndex(*i)) {
            Ok(Some(bytes)) if bytes == *expected => {}
            Ok(other) => {
                eprintln!("WRONG entry {i}: {other:?}");
                outcomes.wrong_entries += 1;
            }
            Err(_) => outcomes.reads_refused += 1,
        }
    }
    // Appending must not fork either (the "two entries at one index").
    match log.submit(b"after corruption".to_vec(), None).await {
        Ok(index) => {
            if let Ok(cp) = log.wait_integrated(index).await {
                for old in served.iter().chain([&latest]) {
                    if let Err(e) = consistent(&log, old, &cp.checkpoint) {
                        if e.starts_with("no proof") {
                            outcomes.reads_refused += 1;
                        } else {
                            eprintln!("FORK after append: {e}");
                            outcomes.forks += 1;
                        }
                    }
                }
            }
        }
        Err(_) => outcomes.reads_refused += 1,
    }
    let _ = log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_corruption_never_forks_or_panics() {
    const TRIALS: u64 = 60;
    const SIZE: u64 = 700;
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    let log = open(&template).await.unwrap();
    let mut served = Vec::new();
    let mut model = BTreeMap::new();
    for (from, to) in [(0, 200), (200, 520), (520, SIZE)] {
        served.push(append(&log, from, to, &mut model).await);
    }
    let model = Arc::new(model);
    log.shutdown().await.unwrap();
    drop(log);

    let started = Instant::now();
    let mut outcomes = Outcomes::default();
    for seed in 1..=TRIALS {
        let dir = tmp.path().join(format!("trial-{seed}"));
        copy_dir(&template, &dir);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1234_5678_9abc_def1));
        let what = corrupt(&dir, &mut rng);
        let before = (outcomes.refused, outcomes.forks, outcomes.wrong_entries);
        let run = tokio::spawn({
            let dir = dir.clone();
            let served = served.clone();
            let model = Arc::clone(&model);
            async move {
                let mut o = Outcomes::default();
                trial(&dir, &served, &model, &mut o).await;
                o
            }
        })
        .await;
        match run {
            Ok(o) => {
                outcomes.refused += o.refused;
                outcomes.served += o.served;
                outcomes.reads_refused += o.reads_refused;
                outcomes.forks += o.forks;
                outcomes.wrong_entries += o.wrong_entries;
            }
            Err(e) if e.is_panic() => {
                eprintln!("PANIC in trial {seed} ({what})");
                outcomes.panics += 1;
            }
            Err(e) => panic!("trial {seed}: {e}"),
        }
        let refused = outcomes.refused > before.0;
        eprintln!(
            "trial {seed}: {what} -> {}",
            if refused { "refused" } else { "opened" }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "random corruption: {TRIALS} trials in {:.1} s: {} refused at open, {} opened and \
         consistent ({} reads refused), {} panics, {} forks, {} wrong entries",
        started.elapsed().as_secs_f64(),
        outcomes.refused,
        outcomes.served,
        outcomes.reads_refused,
        outcomes.panics,
        outcomes.forks,
        outcomes.wrong_entries
    );
    assert_eq!(
        outcomes.refused + outcomes.served + outcomes.panics,
        TRIALS as u32
    );
    assert_eq!(
        (outcomes.panics, outcomes.forks, outcomes.wrong_entries),
        (0, 0, 0),
        "{outcomes:?}"
    );
    // The trials really damaged something: some refused.
    assert!(outcomes.refused > 0, "{outcomes:?}");
}

/// Mount a tmpfs of `bytes` at `dir` (root only); `None` when mounting is not possible here.
fn mount_tmpfs(dir: &Path, bytes: u64) -> Option<()> {
    std::fs::create_dir_all(dir).ok()?;
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?;
    status.success().then_some(())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        // sled's threads may hold the files a moment after the last handle is dropped.
        for _ in 0..50 {
            let unmounted = std::process::Command::new("umount")
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if unmounted {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_recovers_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    if mount_tmpfs(&mnt, 24 << 20).is_none() {
        // The in-memory fault-injecting backend covers failed writes (log_faults); a real full
        // disk needs a tmpfs.
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let storage = SledStorage::open_with_cache(&mnt.join("store"), 1 << 20).unwrap();
    let log = Log::open(Arc::new(storage), signer(), config(&mnt))
        .await
        .unwrap();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut n = 0u64;
    let submit = |log: Log, n: &mut u64| {
        *n += 1;
        let payload = format!("disk-full entry {n} {}", "y".repeat(1500)).into_bytes();
        async move { (log.submit(payload.clone(), None).await, payload) }
    };
    for _ in 0..50 {
        let (r, payload) = submit(log.clone(), &mut n).await;
        acked.insert(r.unwrap().0, payload);
    }
    // Fill the disk.
    let ballast = mnt.join("ballast");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&ballast).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let mut failures = 0u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while failures < 5 && Instant::now() < deadline {
        let (r, payload) = submit(log.clone(), &mut n).await;
        match r {
            Ok(index) => {
                acked.insert(index.0, payload);
            }
            Err(LogError::SequencingFailed { .. }) => failures += 1,
            Err(e) => panic!("unexpected error on a full disk: {e}"),
        }
    }
    assert!(failures >= 5, "writes never failed on a full disk");
    assert!(log.storage_problem().is_some());
    println!(
        "disk full: {failures} writes refused, problem reported: {:?}",
        log.storage_problem()
    );

    // Free the space: writes succeed again without reopening the log.
    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    let mut recovered = None;
    while freed.elapsed() < Duration::from_secs(30) {
        let (r, payload) = submit(log.clone(), &mut n).await;
        if let Ok(index) = r {
            acked.insert(index.0, payload);
            recovered = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("writes did not recover within 30 s of freeing space");
    for _ in 0..50 {
        let (r, payload) = submit(log.clone(), &mut n).await;
        acked.insert(r.unwrap().0, payload);
    }
    let last = *acked.keys().last().unwrap();
    let cp = log.wait_integrated(LeafIndex(last)).await.unwrap();
    assert_eq!(log.storage_problem(), None);
    println!(
        "disk full: recovered {:.2} s after space was freed; {} entries acknowledged",
        recovered.as_secs_f64(),
        acked.len()
    );

    // Every acknowledged entry is at its index, exactly once in the log.
    let check = |log: &Log, size: u64| {
        let mut seen = BTreeMap::new();
        for i in 0..size {
            let bytes = log.entry(LeafIndex(i)).unwrap().unwrap();
            *seen.entry(bytes).or_insert(0u32) += 1;
        }
        for (index, payload) in &acked {
            assert_eq!(
                log.entry(LeafIndex(*index)).unwrap().as_ref(),
                Some(payload),
                "acknowledged entry {index} lost or moved"
            );
            assert_eq!(seen.get(payload), Some(&1), "entry {index} duplicated");
        }
    };
    check(&log, cp.checkpoint.size.0);
    log.shutdown().await.unwrap();
    drop(log);
    // And after a restart.
    let log = Log::open_sled(&mnt.join("store"), signer(), config(&mnt))
        .await
        .unwrap();
    let size = log.latest_checkpoint().unwrap().checkpoint.size.0;
    assert!(size >= cp.checkpoint.size.0);
    check(&log, size);
    log.shutdown().await.unwrap();
    drop(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tile_file_is_503_integrity_and_health_reports_it() {
    use axum::http::StatusCode;
    let s = crate::TestServer::start().await;
    let mut last = LeafIndex(0);
    for n in 0..300u64 {
        last = s.state.log.submit(entry(n), None).await.unwrap();
    }
    s.state.log.wait_integrated(last).await.unwrap();
    assert_eq!(s.get("/health").await.status, StatusCode::OK);
    let ok = s.get("/tile/0/001.p/44").await;
    assert_eq!(ok.status, StatusCode::OK);
    std::fs::remove_file(s.config.data_dir.join("store/tile/0/000")).unwrap();
    let missing = s.get("/tile/0/000").await;
    assert_eq!(missing.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(missing.json()["error"], "integrity");
    // The internal detail is logged, not sent.
    assert!(!missing.json()["message"]
        .as_str()
        .unwrap()
        .contains("tile/0"));
    let proof = s.get("/v1/proof/inclusion?index=3&size=300").await;
    assert_eq!(proof.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = s.get("/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["error"], "integrity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_503_with_retry_after_then_recovers_over_http() {
    use axum::http::StatusCode;
    let mut mounted = None;
    let s = crate::TestServer::start_prepared(
        |data| {
            if mount_tmpfs(data, 24 << 20).is_some() {
                mounted = Some(Unmount(data.to_path_buf()));
            }
        },
        |_| {},
    )
    .await;
    let Some(_unmount) = mounted else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let action = serde_json::json!({"policy": "customer-data-egress", "action": {"destination": "internal"}});
    assert_eq!(s.check(action.clone()).await.status, StatusCode::OK);
    let ballast = s.config.data_dir.join("ballast");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&ballast).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let size_before = s.log_size();
    let mut refused = None;
    // `wait=false`: a check that waits for its proof while integration fails gets 503 when the
    // request times out instead (it is sequenced; a retry with its request id finds it).
    let token = s.agent_token.clone();
    for _ in 0..50 {
        let r = s
            .post_json("/v1/check?wait=false", Some(&token), &action)
            .await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        assert!(r.status.is_success(), "{:?}", r.json());
    }
    let refused = refused.expect("no 503 on a full disk");
    assert_eq!(refused.json()["error"], "storage_unavailable");
    assert!(refused.header("retry-after").parse::<u64>().unwrap() >= 1);
    let health = s.get("/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["error"], "storage_unavailable");

    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.check(action.clone()).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {:?}", r.json());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // /health turns green once the sequencer has integrated and re-signed after recovery.
    loop {
        let h = s.get("/health").await;
        if h.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not recover: {:?}",
            h.json()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.log_size() > size_before);
    s.state.log.shutdown().await.unwrap();
    drop(s);
}
