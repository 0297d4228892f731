//! The short crash soak (3 cycles of a few seconds, issue 6): a real server under load is
//! `kill -9`ed and restarted; nothing acknowledged is lost and every checkpoint stays
//! consistent. Then the verification itself is shown to catch a lost or moved receipt.

use std::time::Duration;

use verdict_core::note::Verifier;
use verdict_tests::server::Server;
use verdict_tests::soak::{run, verify_after_restart, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_crash_soak() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = SoakConfig {
        cycles: 3,
        clients: 6,
        seed: 0x5eed,
        min_run: Duration::from_millis(1000),
        max_run: Duration::from_millis(2500),
    };
    let mut cycles = Vec::new();
    let report = run(&cfg, &data, |c| {
        eprintln!("soak {c:?}");
        cycles.push(c.clone());
    })
    .await
    .unwrap();
    assert_eq!(report.cycles, 3);
    assert_eq!(cycles.len(), 3);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!((report.lost, report.inconsistent), (0, 0));
    // Load really ran in every cycle, in both modes, and checkpoints were collected.
    assert!(cycles.iter().all(|c| c.acked > 0), "{cycles:?}");
    assert!(report.acknowledged_with_bundle > 0);
    assert!(report.acknowledged > report.acknowledged_with_bundle);
    assert!(report.checkpoints >= 3);
    // Indices are distinct; the last write (after the final check) is the only one not counted.
    let indices: std::collections::BTreeSet<u64> = report.acks.iter().map(|a| a.index).collect();
    assert_eq!(indices.len(), report.acknowledged);
    assert!(report.tree_size + 1 >= report.acknowledged as u64);

    // The check is not vacuous: a receipt altered or moved is reported lost.
    let server = Server::start(&data, None).await.unwrap();
    let key = Verifier::parse(&server.log_key).unwrap();
    let mut seen = report.seen_checkpoints.clone();
    let mut violations = Vec::new();
    let (lost, inconsistent, _) =
        verify_after_restart(&server, &key, &report.acks, &mut seen, &mut violations)
            .await
            .unwrap();
    assert_eq!((lost, inconsistent), (0, 0), "{violations:#?}");
    let mut acks = report.acks.clone();
    acks[0].receipt[10] ^= 1;
    acks[1].index = acks[2].index;
    let (lost, _, _) = verify_after_restart(&server, &key, &acks, &mut seen, &mut violations)
        .await
        .unwrap();
    assert_eq!(lost, 2, "{violations:#?}");
}
