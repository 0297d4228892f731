//! Pull mode: `verdict-witness watch --once` against a static C2SP tlog-tiles log (checkpoint and
//! hash tiles as files) served by a real HTTP file server, `python3 -m http.server`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::cosignature::{verify_note, CosignerKey};
use verdict_core::note::Note;
use verdict_core::TreeSize;
use verdict_witness::protocol::origin_hash;

use crate::{bin, keygen, TestLog, ORIGIN};

/// `python3 -m http.server` on a free loopback port, serving `dir`; killed on drop.
struct FileServer {
    child: Child,
    url: String,
}

impl FileServer {
    fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed to serve the static test log");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "file server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer { child, url }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch_once(url: &str, log: &TestLog, data: &Path, key: &Path) -> Output {
    Command::new(bin())
        .args([
            "watch",
            "--once",
            "--timeout",
            "10",
            "--log",
            url,
            "--log-key",
        ])
        .arg(log.vkey().to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--key")
        .arg(key)
        .output()
        .unwrap()
}

/// The published note in the data directory: size, after checking both signatures.
fn published(data: &Path, log: &TestLog, witness: &CosignerKey) -> TreeSize {
    let bytes = std::fs::read(data.join("checkpoints").join(origin_hash(ORIGIN))).unwrap();
    let cp = Checkpoint::open(&bytes, &log.vkey(), &[]).unwrap();
    let note = Note::parse(&bytes).unwrap();
    assert_eq!(
        verify_note(&note, std::slice::from_ref(witness))
            .unwrap()
            .len(),
        1
    );
    cp.checkpoint().size
}

#[test]
fn watch_follows_growth_and_detects_fork_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = keygen(dir.path(), "witness.test/watcher");
    let site = dir.path().join("site");
    let data = dir.path().join("state");
    std::fs::create_dir_all(&site).unwrap();
    let server = FileServer::start(&site);
    let mut log = TestLog::new(7, 300, "entry");
    log.publish(&site, 300);
    // First contact.
    let out = watch_once(&server.url, &log, &data, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("cosigned verdict.test/log size 300"));
    assert_eq!(published(&data, &log, &vkey), TreeSize(300));
    // Growth across tile boundaries: the proof comes from the tiles.
    log.grow(700, "entry");
    log.publish(&site, 700);
    let out = watch_once(&server.url, &log, &data, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(published(&data, &log, &vkey), TreeSize(700));
    // A fork: the same key signs a history that diverges after 650 entries.
    let mut fork = TestLog::new(7, 650, "entry");
    fork.grow(900, "forked");
    fork.publish(&site, 900);
    let out = watch_once(&server.url, &fork, &data, &key);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(published(&data, &log, &vkey), TreeSize(700));
    // A rollback to an older checkpoint.
    log.publish(&site, 500);
    let out = watch_once(&server.url, &log, &data, &key);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rollback"));
    // A checkpoint not signed by the log key.
    let impostor = TestLog::new(8, 800, "entry");
    impostor.publish(&site, 800);
    let out = watch_once(&server.url, &log, &data, &key);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(published(&data, &log, &vkey), TreeSize(700));
    // The honest log again: followed.
    log.grow(800, "entry");
    log.publish(&site, 800);
    let out = watch_once(&server.url, &log, &data, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(published(&data, &log, &vkey), TreeSize(800));
    // An unreachable log: exit 2.
    drop(server);
    let out = watch_once("http://127.0.0.1:9", &log, &data, &key);
    assert_eq!(out.status.code(), Some(2));
}
