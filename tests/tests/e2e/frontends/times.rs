//! Entry times across two frontends whose clocks differ (spec `storage-postgres.md` §5.6,
//! `receipt.md` §9): the second frontend runs 3 s behind (`VERDICT_TEST_CLOCK_OFFSET_MS`, test
//! only) under concurrent checks on both. Every entry's time is at least its predecessor's, the
//! receipts the clients got are the entries in the log (also the re-stamped ones), and
//! `verdict audit export` + `verify-package` of the whole log pass (check `entry_time`). Before
//! the database kept the last staged time, the slow frontend's entries were staged with times
//! up to 3 s older than their predecessors and `verify-package` failed `entry_time`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verdict_core::merkle::TreeSize;
use verdict_core::package::entry_time_ms;
use verdict_core::tile::{decode_entry_bundle, width_in, Tile, TileKind};
use verdict_tests::bins::verdict;
use verdict_tests::server::Server;

use super::{Frontends, Seen};

/// Restart frontend `i` with `extra` environment on top of the shared settings.
pub(super) async fn relaunch_with(
    fronts: &mut Frontends,
    i: usize,
    extra: &[(&'static str, &str)],
) {
    fronts.servers[i] = None;
    let mut env: Vec<(&str, &str)> = fronts.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend(extra.iter().copied());
    fronts.servers[i] = Some(
        Server::start_with_env(&fronts.dirs[i], None, &env)
            .await
            .unwrap(),
    );
}

/// Every entry of the log served at `base`, in index order.
pub(super) async fn all_entries(fronts: &Frontends, base: &str) -> Vec<Vec<u8>> {
    let note = fronts.get(base, "checkpoint").await.unwrap();
    let size: u64 = std::str::from_utf8(&note)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut entries = Vec::new();
    for index in 0.. {
        let width = width_in(TileKind::Entries, index, TreeSize(size));
        if width == 0 {
            break;
        }
        let path = Tile {
            kind: TileKind::Entries,
            index,
            width,
        }
        .path();
        let bundle = fronts.get(base, &path).await.unwrap();
        entries.extend(decode_entry_bundle(&bundle).unwrap());
    }
    assert_eq!(entries.len() as u64, size);
    entries
}

fn export_and_verify(fronts: &Frontends, out: &Path) {
    let server = fronts.server(0);
    let auditor = fronts.dirs[0].join("auditor.token");
    let checker = server.checker_keys[0].clone();
    let export = verdict([
        "audit",
        "export",
        "--log",
        &server.base,
        "--token-file",
        auditor.to_str().unwrap(),
        "--log-key",
        &server.log_key,
        "--checker-key",
        &checker,
        "--out",
        out.to_str().unwrap(),
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
    ])
    .unwrap();
    assert_eq!(export.code, Some(0), "export: {export:?}");
    let verify = verdict([
        "audit",
        "verify-package",
        out.to_str().unwrap(),
        "--log-key",
        &server.log_key,
        "--checker-key",
        &checker,
    ])
    .unwrap();
    assert_eq!(
        verify.code,
        Some(0),
        "verify-package of the whole log failed: {verify:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_times_stay_in_order_across_skewed_frontends() {
    let mut fronts = Frontends::start("verdict_frontend_times", 5_000).await;
    // Frontend 1's clock 3 s behind; its re-stamps logged (debug) to be counted.
    relaunch_with(
        &mut fronts,
        1,
        &[
            ("VERDICT_TEST_CLOCK_OFFSET_MS", "-3000"),
            (
                "RUST_LOG",
                "warn,verdict_log_server::log=info,verdict_log_server::log::sequencer::shared=debug",
            ),
        ],
    )
    .await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let until = Instant::now() + Duration::from_millis(2_500);
    for task in fronts.load(fronts.bases(), until, &seen) {
        task.await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    // Converged, nothing acknowledged lost, every acknowledged receipt is the entry at its index.
    let counts = fronts.verify(&seen, dir.path()).await;

    let entries = all_entries(&fronts, &fronts.server(1).base).await;
    let times: Vec<u64> = entries.iter().map(|e| entry_time_ms(e).unwrap()).collect();
    let inversions: Vec<(usize, u64, u64)> = times
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] < w[0])
        .map(|(i, w)| (i + 1, w[0], w[1]))
        .collect();
    assert!(
        inversions.is_empty(),
        "{} entries older than their predecessor (index, previous, time): {:?}",
        inversions.len(),
        &inversions[..inversions.len().min(10)]
    );
    let restamps = fronts.server(1).output().matches("re-stamped").count();
    let package = dir.path().join("package");
    export_and_verify(&fronts, &package);
    let summary = std::fs::read_to_string(package.join("summary.json")).unwrap();
    assert!(summary.contains("\"entry_time\""), "{summary}");
    println!(
        "skewed frontends (one 3 s behind): {} entries, times non-decreasing; {restamps} \
         re-stamped batch(es) on the slow frontend; verify-package of the whole log: exit 0; \
         {counts}",
        entries.len()
    );
}
