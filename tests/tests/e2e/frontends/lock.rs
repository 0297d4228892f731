//! The checkpoint lock with two frontends on one database (spec `storage-postgres.md` §5.4,
//! `checkpoint-lock.md` §6), real processes:
//!
//! - [`the_integrator_writes_the_shared_lock_and_a_takeover_checks_it`]: the shared lock
//!   (`verdict_log.locked`) holds the checkpoint served and the frontend's lock file followed it;
//!   then a lock beyond the database (signed by the log key, 5 entries past what is staged) is
//!   written, the integrator killed: the other frontend's takeover refuses it (alarm naming
//!   `postgres:verdict_log.locked`), signs nothing, and refuses checks with 503.
//! - [`a_rolled_back_database_is_refused_by_a_frontend_that_saw_newer`]: the log row rolled back
//!   to an earlier published state and lock, and the entries staged since deleted, as a restore
//!   of an older backup leaves them: the running frontend that followed the newer checkpoint
//!   halts with an alarm, and restarted alone it refuses to start (exit 3, its lock file).
//!
//! Both failed on the code before the shared lock (no `locked` column; frontends neither advanced
//! nor checked a lock file, so a restarted frontend served the rolled-back log).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{Hash, TreeSize};
use verdict_core::note::Signer;
use verdict_tests::server::Server;

use super::{Frontends, Seen, POLICY};

/// Load on both frontends for `ms`, then wait until both serve one checkpoint covering
/// everything staged; returns it.
async fn load_and_settle(fronts: &Frontends, ms: u64) -> Vec<u8> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let until = Instant::now() + Duration::from_millis(ms);
    for task in fronts.load(fronts.bases(), until, &seen) {
        task.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged = staged_size(fronts);
        let bases = fronts.bases();
        let a = fronts.get(&bases[0], "checkpoint").await.unwrap();
        let b = fronts.get(&bases[1], "checkpoint").await.unwrap();
        if a == b && size_of(&a) == staged {
            return a;
        }
        assert!(Instant::now() < deadline, "frontends never converged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn staged_size(fronts: &Frontends) -> u64 {
    fronts
        .cluster
        .psql(fronts.db, "SELECT staged_size FROM verdict_log")
        .unwrap()
        .parse()
        .unwrap()
}

fn size_of(note: &[u8]) -> u64 {
    std::str::from_utf8(note)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Wait (at most 15 s) until frontend `i` logged `what`.
async fn wait_logged(fronts: &Frontends, i: usize, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = fronts.server(i).output();
        if output.contains(what) {
            return output;
        }
        assert!(
            Instant::now() < deadline,
            "frontend {i} never logged {what:?}: {output}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check_status(server: &Server) -> u16 {
    server
        .http
        .post(format!("{}/v1/check", server.base))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"policy": POLICY, "action": {"call_type": "internal", "vendor": "acme"}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrator_writes_the_shared_lock_and_a_takeover_checks_it() {
    let fronts = Frontends::start("verdict_frontend_lock", 5_000).await;
    let note = load_and_settle(&fronts, 600).await;
    let locked = fronts
        .cluster
        .psql(
            fronts.db,
            "SELECT convert_from(locked, 'UTF8') FROM verdict_log",
        )
        .unwrap();
    let served = String::from_utf8(note.clone()).unwrap();
    assert_eq!(
        locked,
        served.trim_end(),
        "the shared lock is not the checkpoint served"
    );
    // The frontend's own file followed the published checkpoint (it polls every 100 ms).
    let file = fronts.dirs[1].join("checkpoint.lock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read(&file).unwrap_or_default() != note {
        assert!(
            Instant::now() < deadline,
            "the frontend's lock file did not follow"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A shared lock beyond the database, signed by the log key (a store that lost entries the
    // last integrator had signed), then the integrator dies.
    let key = std::fs::read_to_string(fronts.dirs[0].join("log.key")).unwrap();
    let signer = Signer::parse(key.trim()).unwrap();
    let staged = staged_size(&fronts);
    let forged = Checkpoint {
        origin: signer.name().to_owned(),
        size: TreeSize(staged + 5),
        root: Hash([7; 32]),
        extensions: Vec::new(),
    }
    .sign(&signer)
    .unwrap();
    fronts
        .cluster
        .psql(
            fronts.db,
            &format!(
                "UPDATE verdict_log SET locked = decode('{}', 'hex')",
                hex::encode(&forged)
            ),
        )
        .unwrap();
    fronts.signal(0, "KILL");
    let output = wait_logged(&fronts, 1, "ALARM").await;
    assert!(
        output.contains("postgres:verdict_log.locked"),
        "the refusal does not name the shared lock: {output}"
    );
    // Nothing signed past the refusal, and no new entry accepted.
    assert_eq!(check_status(fronts.server(1)).await, 503);
    let after = fronts
        .get(&fronts.server(1).base, "checkpoint")
        .await
        .unwrap();
    assert_eq!(
        size_of(&after),
        size_of(&note),
        "a checkpoint was signed after the refusal"
    );
    assert_eq!(staged_size(&fronts), staged);
    println!(
        "shared lock: held the served checkpoint at tree size {}; a lock 5 entries beyond the \
         database refused at takeover, nothing signed, checks answered 503",
        size_of(&note)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_database_is_refused_by_a_frontend_that_saw_newer() {
    let mut fronts = Frontends::start("verdict_frontend_rollback", 5_000).await;
    let old = load_and_settle(&fronts, 400).await;
    // The "backup": the log row as it is now.
    let row = fronts
        .cluster
        .psql(
            fronts.db,
            "SELECT encode(published, 'hex') || ' ' || encode(locked, 'hex') || ' ' || \
             staged_size FROM verdict_log",
        )
        .unwrap();
    let parts: Vec<&str> = row.split(' ').collect();
    let (published, locked, old_staged) = (parts[0], parts[1], parts[2]);
    let new = load_and_settle(&fronts, 400).await;
    assert!(size_of(&new) > size_of(&old));
    let file = fronts.dirs[1].join("checkpoint.lock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read(&file).unwrap_or_default() != new {
        assert!(
            Instant::now() < deadline,
            "the frontend's lock file did not follow"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Roll the database back as a restore of the backup leaves it: the row (published state and
    // shared lock) and no entry staged after it.
    fronts
        .cluster
        .psql(
            fronts.db,
            &format!(
                "BEGIN; UPDATE verdict_log SET published = decode('{published}', 'hex'), \
                 locked = decode('{locked}', 'hex'), staged_size = {old_staged}; \
                 DELETE FROM verdict_staged WHERE idx >= {old_staged}; \
                 DELETE FROM verdict_private WHERE idx >= {old_staged}; COMMIT;"
            ),
        )
        .unwrap();
    // While running: the frontend that followed the newer checkpoint halts.
    wait_logged(&fronts, 1, "ALARM").await;
    assert_eq!(check_status(fronts.server(1)).await, 503);

    // Restarted alone (it would be the integrator): refused by its lock file, exit 3.
    fronts.servers[0] = None;
    fronts.servers[1] = None;
    let env: Vec<(&str, &str)> = fronts.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Err(refused) = Server::start_with_env(&fronts.dirs[1], None, &env).await else {
        panic!(
            "a frontend whose lock file saw a newer checkpoint started on the rolled-back database"
        );
    };
    let message = refused.to_string();
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.contains("checkpoint lock"), "{message}");
    println!(
        "rolled-back database (tree size {} back to {}): the running frontend halted with an \
         alarm; restarted, it refused to start with exit 3",
        size_of(&new),
        size_of(&old)
    );
}
