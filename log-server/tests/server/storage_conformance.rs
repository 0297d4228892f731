//! The storage conformance suite ([`verdict_log_server::storage::conformance`]) on every
//! backend: memory, sled and a real PostgreSQL (a throwaway cluster of the machine's server
//! binaries, [`PgCluster`]); plus PostgreSQL's own checks: escalation compare-and-swap, schema
//! migration, and fault injection (connections terminated and the server restarted in the
//! middle of the load: clean errors, recovery, no acknowledged entry lost).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use verdict_log_server::storage::conformance::{run_all, Backend, Opener};
use verdict_log_server::storage::mem::MemStorage;
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_log_server::storage::postgres::{PostgresConfig, PostgresStorage};
use verdict_log_server::storage::sled::SledStorage;
use verdict_log_server::storage::{Storage, StorageError};

struct Mem;

impl Backend for Mem {
    fn name(&self) -> &'static str {
        "mem"
    }
    fn fresh(&self) -> Result<Opener, StorageError> {
        let store: Arc<dyn Storage> = Arc::new(MemStorage::new());
        Ok(Box::new(move || Ok(store.clone())))
    }
    fn reopens(&self) -> bool {
        false
    }
}

/// sled: one directory per case. sled's file lock allows one open `Db` per directory, so the
/// opener reopens the directory when no handle is alive and hands out the live one otherwise.
struct Sled {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

impl Backend for Sled {
    fn name(&self) -> &'static str {
        "sled"
    }
    fn fresh(&self) -> Result<Opener, StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::Backend {
            op: "tempdir",
            source: Box::new(e),
        })?;
        let path = dir.path().to_path_buf();
        self.dirs.lock().unwrap().push(dir);
        let live: Mutex<Weak<SledStorage>> = Mutex::new(Weak::new());
        Ok(Box::new(move || {
            let mut live = live.lock().unwrap();
            if let Some(store) = live.upgrade() {
                return Ok(store as Arc<dyn Storage>);
            }
            let store = Arc::new(SledStorage::open(&path)?);
            *live = Arc::downgrade(&store);
            Ok(store as Arc<dyn Storage>)
        }))
    }
}

/// PostgreSQL: one database per case on a shared throwaway cluster; each open is a new pool.
pub struct Postgres {
    pub cluster: PgCluster,
    next: AtomicU32,
}

impl Postgres {
    pub fn start() -> Self {
        Self {
            cluster: PgCluster::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}")),
            next: AtomicU32::new(0),
        }
    }

    /// A new database; returns its name and URL.
    pub fn database(&self) -> (String, String) {
        let name = format!("case_{}", self.next.fetch_add(1, Ordering::Relaxed));
        let url = self.cluster.create_database(&name).unwrap();
        (name, url)
    }
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn fresh(&self) -> Result<Opener, StorageError> {
        let (_, url) = self.database();
        let live: Mutex<Weak<PostgresStorage>> = Mutex::new(Weak::new());
        Ok(Box::new(move || {
            let mut live = live.lock().unwrap();
            if let Some(store) = live.upgrade() {
                return Ok(store as Arc<dyn Storage>);
            }
            let store = Arc::new(PostgresStorage::open(&PostgresConfig::new(url.clone()))?);
            *live = Arc::downgrade(&store);
            Ok(store as Arc<dyn Storage>)
        }))
    }
}

async fn conformance(backend: &dyn Backend) {
    let passed = run_all(backend).await.unwrap_or_else(|e| panic!("{e}"));
    println!(
        "conformance {}: {} cases passed: {}",
        backend.name(),
        passed.len(),
        passed.join(", ")
    );
    assert_eq!(passed.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_mem() {
    conformance(&Mem).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sled() {
    conformance(&Sled {
        dirs: Mutex::new(Vec::new()),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_postgres() {
    let pg = Postgres::start();
    conformance(&pg).await;
}
