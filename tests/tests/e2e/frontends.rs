//! Several `verdict-server` frontends on one PostgreSQL database (issue 18; spec
//! `spec/storage-postgres.md` §5), real processes on loopback and a throwaway cluster of the
//! machine's PostgreSQL binaries:
//!
//! - [`two_frontends_survive_kill_9_of_the_integrator`]: mixed checks to both frontends, the
//!   integrator killed with SIGKILL in the middle of the load, the other takes over, the killed one
//!   restarts as a frontend; 3 cycles. Then: every acknowledged index holds the acknowledged
//!   receipt, every checkpoint either frontend served (in answers and on `/checkpoint`) is
//!   consistent with every other (`verdict consistency` on each pair adjacent in size, equal
//!   sizes byte-identical), and every tile and entry bundle is byte-identical on both.
//! - [`ten_cycles`] (`#[ignore]`): the same for 10 cycles, printing the counts:
//!   `cargo test -p verdict-tests --test e2e frontends::ten_cycles -- --ignored --nocapture`
//! - [`a_paused_integrator_is_fenced`]: the integrator stopped with SIGSTOP in the middle of the
//!   load; the other takes over after the lock timeout; SIGCONT: the old one comes back as a
//!   frontend, and nothing it does publishes a checkpoint inconsistent with the new one.
//! - [`lock`]: the checkpoint lock in the database (written by the integrator, checked at
//!   takeover) and each frontend's lock file as a rollback tripwire (spec §5.4);
//! - [`times`]: entry times non-decreasing across two frontends with skewed clocks, and the
//!   whole log's evidence package verified (spec §5.6).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use verdict_core::merkle::TreeSize;
use verdict_core::tile::{decode_entry_bundle, width_in, Tile, TileKind};
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_tests::bins::verdict;
use verdict_tests::server::{copy_dir, Server};

const POLICY: &str = "approved-vendors";

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged entries: index → receipt bytes.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Every checkpoint served, by size (equal sizes must be byte-identical).
    checkpoints: BTreeMap<u64, Vec<u8>>,
    /// Checkpoints of one size that differed (must stay 0).
    forks: usize,
    /// Checks that got no answer with a proof (server killed or paused): not acknowledged.
    unanswered: usize,
}

impl Seen {
    fn checkpoint(&mut self, note: &[u8]) {
        let Some(size) = std::str::from_utf8(note)
            .ok()
            .and_then(|t| t.lines().nth(1))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            return;
        };
        match self.checkpoints.get(&size) {
            Some(old) if old != note => self.forks += 1,
            Some(_) => {}
            None => {
                self.checkpoints.insert(size, note.to_vec());
            }
        }
    }
}

/// Two frontends on one database, their data directories (same keys and tokens) and settings.
struct Frontends {
    _tmp: tempfile::TempDir,
    cluster: PgCluster,
    db: &'static str,
    env: Vec<(&'static str, String)>,
    dirs: [PathBuf; 2],
    servers: [Option<Server>; 2],
    token: String,
    http: reqwest::Client,
}

impl Frontends {
    async fn start(db: &'static str, lock_timeout_ms: u64) -> Frontends {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
        let url = cluster.create_database(db).unwrap();
        let env = vec![
            ("VERDICT_STORAGE", "postgres".to_owned()),
            ("VERDICT_POSTGRES_URL", url),
            ("VERDICT_POSTGRES_TAKEOVER_INTERVAL_MS", "100".to_owned()),
            (
                "VERDICT_POSTGRES_LOCK_TIMEOUT_MS",
                lock_timeout_ms.to_string(),
            ),
            ("VERDICT_POSTGRES_POLL_MS", "100".to_owned()),
            ("VERDICT_BATCH_MAX_AGE_MS", "5".to_owned()),
            // The role messages ("as a frontend", "took over") are logged at info.
            ("RUST_LOG", "warn,verdict_log_server::log=info".to_owned()),
        ];
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [tmp.path().join("a"), tmp.path().join("b")];
        let mut fronts = Frontends {
            _tmp: tmp,
            cluster,
            db,
            env,
            dirs,
            servers: [None, None],
            token: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        fronts.launch(0).await;
        // The second frontend shares the first one's keys and tokens (files, by copy).
        copy_dir(&fronts.dirs[0], &fronts.dirs[1]).unwrap();
        fronts.launch(1).await;
        fronts.token = fronts.server(0).token.clone();
        assert!(
            fronts.server(1).output().contains("as a frontend"),
            "the second server should run as a frontend: {}",
            fronts.server(1).output()
        );
        fronts
    }

    async fn launch(&mut self, i: usize) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.servers[i] = Some(
            Server::start_with_env(&self.dirs[i], None, &env)
                .await
                .unwrap(),
        );
    }

    fn server(&self, i: usize) -> &Server {
        self.servers[i].as_ref().unwrap()
    }

    fn bases(&self) -> Vec<String> {
        self.servers
            .iter()
            .flatten()
            .map(|s| s.base.clone())
            .collect()
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.server(i).pid().unwrap();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn takeovers(&self, i: usize) -> usize {
        self.server(i)
            .output()
            .matches("took over as the integrator")
            .count()
    }

    /// Wait until server `i` logged `before + 1` takeovers; the time it took.
    async fn wait_takeover(&self, i: usize, before: usize, since: Instant) -> Duration {
        loop {
            if self.takeovers(i) > before {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "no takeover within 30 s: {}",
                self.server(i).output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Mixed checks, `workers` at a time, alternating between `bases`, until `until`; and
    /// `/checkpoint` polled on each base every 50 ms.
    fn load(
        &self,
        bases: Vec<String>,
        until: Instant,
        seen: &Arc<Mutex<Seen>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for worker in 0..4usize {
            let (bases, http, token, seen) = (
                bases.clone(),
                self.http.clone(),
                self.token.clone(),
                Arc::clone(seen),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = worker;
                while Instant::now() < until {
                    n += 1;
                    let base = &bases[n % bases.len()];
                    let vendor = ["acme", "evilcorp", "globex"][n % 3];
                    let action = json!({"call_type": "third_party_api", "vendor": vendor,
                        "sends_personal_data": n % 3 == 2, "payload_bytes": n});
                    let answer = http
                        .post(format!("{base}/v1/check?wait=true"))
                        .bearer_auth(&token)
                        .json(&json!({"policy": POLICY, "action": action}))
                        .send()
                        .await;
                    let body = match answer {
                        Ok(r) if r.status().is_success() => {
                            r.json::<serde_json::Value>().await.ok()
                        }
                        _ => None,
                    };
                    let Some(body) = body else {
                        seen.lock().unwrap().unanswered += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let index = body["index"].as_u64().unwrap();
                    let receipt = base64::engine::general_purpose::STANDARD
                        .decode(body["receipt"].as_str().unwrap())
                        .unwrap();
                    assert_eq!(body["integrated"], true, "{body}");
                    let checkpoint = body["proof"]["checkpoint"].as_str().unwrap();
                    let mut seen = seen.lock().unwrap();
                    seen.checkpoint(checkpoint.as_bytes());
                    assert!(
                        seen.acked.insert(index, receipt).is_none(),
                        "index {index} twice"
                    );
                }
            }));
        }
        for base in bases {
            let (http, seen) = (self.http.clone(), Arc::clone(seen));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    if let Ok(r) = http.get(format!("{base}/checkpoint")).send().await {
                        if r.status().is_success() {
                            if let Ok(bytes) = r.bytes().await {
                                seen.lock().unwrap().checkpoint(&bytes);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        tasks
    }

    async fn get(&self, base: &str, path: &str) -> Option<Vec<u8>> {
        let r = self
            .http
            .get(format!("{base}/{path}"))
            .send()
            .await
            .unwrap();
        r.status()
            .is_success()
            .then_some(r.bytes().await.unwrap().to_vec())
    }

    /// Once both frontends serve the same checkpoint covering everything staged: check that
    /// nothing acknowledged was lost, that all checkpoints are consistent, and that tiles are
    /// byte-identical on both. Returns the printed counts.
    async fn verify(&self, seen: &Arc<Mutex<Seen>>, dir: &Path) -> String {
        let bases = self.bases();
        assert_eq!(bases.len(), 2);
        let deadline = Instant::now() + Duration::from_secs(30);
        let final_note = loop {
            let staged: u64 = self
                .cluster
                .psql(self.db, "SELECT staged_size FROM verdict_log")
                .unwrap()
                .parse()
                .unwrap();
            let a = self.get(&bases[0], "checkpoint").await.unwrap();
            let b = self.get(&bases[1], "checkpoint").await.unwrap();
            let size = std::str::from_utf8(&a).unwrap().lines().nth(1).unwrap();
            if a == b && size.parse::<u64>().unwrap() == staged {
                break a;
            }
            assert!(Instant::now() < deadline, "frontends never converged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (size, acked, checkpoints, unanswered) = {
            let mut seen = seen.lock().unwrap();
            seen.checkpoint(&final_note);
            assert_eq!(
                seen.forks, 0,
                "two different checkpoints of the same size were served"
            );
            let size = *seen.checkpoints.keys().next_back().unwrap();
            let acked = std::mem::take(&mut seen.acked);
            (size, acked, seen.checkpoints.clone(), seen.unanswered)
        };

        // Tiles and entry bundles: byte-identical on both frontends; entries as acknowledged.
        let mut tiles = 0;
        let mut found = 0;
        let mut kinds = vec![TileKind::Entries];
        kinds.extend((0..8u8).map(|level| TileKind::Hashes { level }));
        for kind in kinds {
            for index in 0.. {
                let width = width_in(kind, index, TreeSize(size));
                if width == 0 {
                    break;
                }
                let path = Tile { kind, index, width }.path();
                let a = self.get(&bases[0], &path).await.unwrap();
                let b = self.get(&bases[1], &path).await.unwrap();
                assert_eq!(a, b, "{path} differs between the frontends");
                tiles += 1;
                if kind == TileKind::Entries {
                    let entries = decode_entry_bundle(&a).unwrap();
                    for (i, entry) in (index * 256..).zip(entries) {
                        if let Some(receipt) = acked.get(&i) {
                            assert_eq!(*receipt, entry, "index {i} holds another entry");
                            found += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(
            found,
            acked.len(),
            "acknowledged entries missing from the log"
        );

        // Every checkpoint consistent with every other: each pair adjacent in size proven
        // consistent by `verdict consistency` against one frontend or the other (transitive).
        let log_key = self.server(0).log_key.clone();
        let notes: Vec<(u64, PathBuf)> = checkpoints
            .iter()
            .map(|(size, note)| {
                let path = dir.join(format!("cp-{size}"));
                std::fs::write(&path, note).unwrap();
                (*size, path)
            })
            .collect();
        for (n, pair) in notes.windows(2).enumerate() {
            let (old, new) = (&pair[0].1, &pair[1].1);
            let run = verdict([
                "consistency",
                &old.display().to_string(),
                &new.display().to_string(),
                "--log-key",
                &log_key,
                "--log",
                &bases[n % 2],
            ])
            .unwrap();
            assert_eq!(
                run.code,
                Some(0),
                "checkpoints {} and {} not consistent: {run:?}",
                pair[0].0,
                pair[1].0
            );
        }
        format!(
            "{} acknowledged entries, all at their index; {unanswered} checks unanswered (not \
             acknowledged); final tree size {size}; {} distinct checkpoints, {} consistency \
             proofs verified, 0 forks; {tiles} tiles byte-identical on both frontends",
            acked.len(),
            notes.len(),
            notes.len().saturating_sub(1)
        )
    }
}

/// `cycles` rounds of: load on both, kill -9 the integrator in the middle, the other takes over,
/// restart the killed one (as a frontend).
async fn kill_cycles(cycles: usize, db: &'static str) -> String {
    let mut fronts = Frontends::start(db, 5_000).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut integrator = 0;
    let mut takeover_ms = Vec::new();
    for cycle in 0..cycles {
        let other = 1 - integrator;
        let before = fronts.takeovers(other);
        let until = Instant::now() + Duration::from_millis(1_500);
        let tasks = fronts.load(fronts.bases(), until, &seen);
        tokio::time::sleep(Duration::from_millis(600)).await;
        fronts.signal(integrator, "KILL");
        let killed = Instant::now();
        let took = fronts.wait_takeover(other, before, killed).await;
        takeover_ms.push(took.as_millis());
        for task in tasks {
            task.await.unwrap();
        }
        eprintln!("cycle {cycle}: integrator {integrator} killed, {other} took over in {took:?}");
        fronts.servers[integrator] = None;
        fronts.launch(integrator).await;
        integrator = other;
    }
    // A last round of load on both, with the restarted frontend.
    let until = Instant::now() + Duration::from_millis(500);
    for task in fronts.load(fronts.bases(), until, &seen) {
        task.await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let counts = fronts.verify(&seen, dir.path()).await;
    format!(
        "{cycles} kill -9 cycles, {cycles} takeovers (ms after the kill: {takeover_ms:?}); {counts}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_frontends_survive_kill_9_of_the_integrator() {
    let counts = kill_cycles(3, "verdict_frontends").await;
    println!("two frontends: {counts}");
}

/// The acceptance run of issue 18 (10 cycles; about a minute):
/// `cargo test -p verdict-tests --test e2e frontends::ten_cycles -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 kill -9 cycles (about a minute); run with --ignored"]
async fn ten_cycles() {
    let counts = kill_cycles(10, "verdict_frontends_10").await;
    println!("two frontends, 10 cycles: {counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_integrator_is_fenced() {
    let lock_timeout = Duration::from_millis(1_500);
    let fronts = Frontends::start("verdict_paused", 1_500).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let before = fronts.takeovers(1);
    let until = Instant::now() + Duration::from_millis(1_500);
    let tasks = fronts.load(fronts.bases(), until, &seen);
    tokio::time::sleep(Duration::from_millis(400)).await;
    fronts.signal(0, "STOP");
    let paused = Instant::now();
    let took = fronts.wait_takeover(1, before, paused).await;
    assert!(
        took >= lock_timeout / 2,
        "took over after {took:?}, before the paused integrator's session could have ended"
    );
    // The new integrator serves checks (B alone) while the old one is still paused.
    let until_b = Instant::now() + Duration::from_millis(500);
    for task in fronts.load(vec![fronts.server(1).base.clone()], until_b, &seen) {
        task.await.unwrap();
    }
    let size_b = fronts.server(1).tree_size().await.unwrap();
    fronts.signal(0, "CONT");
    for task in tasks {
        task.await.unwrap();
    }
    // The old integrator is a frontend now: its answers and checkpoints join the others.
    let until = Instant::now() + Duration::from_millis(700);
    for task in fronts.load(fronts.bases(), until, &seen) {
        task.await.unwrap();
    }
    assert_eq!(
        fronts.takeovers(0),
        0,
        "the resumed server took the role back"
    );
    let dir = tempfile::tempdir().unwrap();
    let counts = fronts.verify(&seen, dir.path()).await;
    let output = fronts.server(0).output();
    let fenced = output
        .matches("published state changed concurrently")
        .count();
    let guarded = output.matches("is this database's integrator").count();
    println!(
        "paused integrator: the other took over {took:?} after SIGSTOP (lock timeout \
         {lock_timeout:?}), tree size {size_b} before SIGCONT; {fenced} publish(es) of the resumed \
         one refused by the compare-and-swap, {guarded} integrator write(s) refused by the lock \
         guard; {counts}"
    );
}

fn shared_policy(version: &str, limit: u32) -> String {
    format!(
        r#"name = "shared-frontends"
version = "{version}"
[variables]
amount = {{ type = "int", min = 0, max = 1000 }}
[[rules]]
id = "small"
text = "Amounts up to {limit} only."
require = 'amount <= {limit}'
effect = "deny"
"#
    )
}

/// Issue 18 (spec `storage-postgres.md` §5.4): a policy registered on one frontend is current on
/// the other within the refresh bound, both for a new name and for a new version of it, so no
/// frontend goes on deciding under a superseded version. Fails before the refresh: the other
/// frontend answered 404 until it restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_registered_on_one_frontend_is_current_on_the_other() {
    let fronts = Frontends::start("verdict_frontends_policies", 5_000).await;
    let register = |i: usize, text: String| {
        let server = fronts.server(i);
        let admin = std::fs::read_to_string(fronts.dirs[i].join("admin.token")).unwrap();
        let request = server
            .http
            .post(format!("{}/v1/policies", server.base))
            .bearer_auth(admin.trim())
            .header("content-type", "application/toml")
            .body(text);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
        }
    };
    // Decided on `other` under `version` within 5 s (the refresh runs every 100 ms here).
    let current_on = |other: usize, version: &'static str| {
        let server = fronts.server(other);
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let answer = server
                    .check("shared-frontends", serde_json::json!({"amount": 7}), true)
                    .await;
                match answer {
                    Ok(a) if a["policy"]["version"] == version => return a,
                    other if Instant::now() > deadline => {
                        panic!("frontend {version}: not current after 5 s: {other:?}")
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    };
    register(0, shared_policy("1.0.0", 5)).await;
    let a = current_on(1, "1.0.0").await;
    assert_eq!(a["decision"], "deny", "{a}");
    register(1, shared_policy("1.1.0", 10)).await;
    let a = current_on(0, "1.1.0").await;
    assert_eq!(a["decision"], "allow", "{a}");
}

mod lock;
mod times;
