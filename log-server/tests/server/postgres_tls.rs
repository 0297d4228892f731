//! TLS to a real PostgreSQL (spec `spec/storage-postgres.md` §1.1): a throwaway cluster with
//! `ssl = on` and `hostssl`-only TCP access ([`PgCluster::start_tls`]), a test PKI made with
//! `openssl` whose server certificate names `localhost` only ([`TestPki`]). Each refusal
//! asserts the error says why, and no error carries the URL's password.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use verdict_log_server::storage::conformance::{run_all, Backend, Opener};
use verdict_log_server::storage::postgres::testing::tls::TestPki;
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_log_server::storage::postgres::{PostgresConfig, PostgresStorage};
use verdict_log_server::storage::{Storage, StorageError};

/// In every URL: it must never show up in an error.
const PASSWORD: &str = "pw-hunter2-secret";

fn url(host: &str, port: u16, db: &str, query: &str) -> String {
    format!("postgresql://verdict:{PASSWORD}@{host}:{port}/{db}?{query}")
}

fn open(url: &str) -> Result<PostgresStorage, StorageError> {
    PostgresStorage::open(&PostgresConfig::new(url))
}

/// `open` must fail; its message, which must contain every one of `why`.
fn refused(url: &str, why: &[&str]) -> String {
    let err = open(url).map(drop).unwrap_err();
    let message = err.to_string();
    for w in why {
        assert!(message.contains(w), "{message:?} lacks {w:?}");
    }
    assert!(!message.contains(PASSWORD), "password in {message:?}");
    assert!(
        !format!("{err:?}").contains(PASSWORD),
        "password in {err:?}"
    );
    message
}

/// The conformance suite over verify-full: one database per case, each open a new pool.
struct TlsPostgres<'a> {
    cluster: &'a PgCluster,
    ca: String,
    next: AtomicU32,
}

impl Backend for TlsPostgres<'_> {
    fn name(&self) -> &'static str {
        "postgres over TLS (verify-full)"
    }
    fn fresh(&self) -> Result<Opener, StorageError> {
        let name = format!("tls_{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.cluster.create_database(&name).unwrap();
        let url = url(
            "localhost",
            self.cluster.port(),
            &name,
            &format!("sslmode=verify-full&sslrootcert={}", self.ca),
        );
        let live: Mutex<Weak<PostgresStorage>> = Mutex::new(Weak::new());
        Ok(Box::new(move || {
            let mut live = live.lock().unwrap();
            if let Some(store) = live.upgrade() {
                return Ok(store as Arc<dyn Storage>);
            }
            let store = Arc::new(open(&url)?);
            *live = Arc::downgrade(&store);
            Ok(store as Arc<dyn Storage>)
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_over_tls_and_refuses_a_wrong_ca_host_or_plain_text() {
    let pki = TestPki::generate(&["localhost"]).unwrap_or_else(|e| panic!("test PKI: {e}"));
    let cluster =
        PgCluster::start_tls(&pki).unwrap_or_else(|e| panic!("test PostgreSQL with TLS: {e}"));
    let port = cluster.port();
    let ca = pki.ca_file().display().to_string();
    cluster.create_database("probe").unwrap();

    // The right CA and host: the conformance suite passes over TLS.
    let backend = TlsPostgres {
        cluster: &cluster,
        ca: ca.clone(),
        next: AtomicU32::new(0),
    };
    let passed = run_all(&backend).await.unwrap_or_else(|e| panic!("{e}"));
    println!(
        "conformance over verify-full: {} cases passed",
        passed.len()
    );
    assert_eq!(passed.len(), 6);

    // The CA from postgres_ca_file instead of sslrootcert; the store's connections are TLS
    // (pg_stat_ssl), as the hostssl-only pg_hba.conf already demands.
    let store = PostgresStorage::open(&PostgresConfig {
        ca_file: Some(pki.ca_file()),
        ..PostgresConfig::new(url("localhost", port, "probe", "sslmode=verify-full"))
    })
    .unwrap();
    let tls = cluster
        .psql(
            "postgres",
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'verdict-server'",
        )
        .unwrap();
    let (encrypted, all) = tls.split_once('|').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 1, "{tls}");
    assert_eq!(encrypted, all, "a store connection without TLS: {tls}");
    drop(store);

    // Password authentication (SCRAM, the server offering SCRAM-SHA-256-PLUS over TLS) works
    // without channel binding; a wrong password is refused without showing either password.
    cluster
        .psql(
            "postgres",
            &format!("CREATE ROLE verdict_scram LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
        )
        .unwrap();
    let scram = |password: &str| {
        format!(
            "postgresql://verdict_scram:{password}@localhost:{port}/probe?sslmode=verify-full&sslrootcert={ca}"
        )
    };
    drop(open(&scram(PASSWORD)).unwrap());
    let message = open(&scram("wrong-pw-123"))
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-pw-123") && !message.contains(PASSWORD),
        "{message}"
    );

    // Another CA: refused at the handshake.
    let other = pki.other_ca_file().display().to_string();
    refused(
        &url(
            "localhost",
            port,
            "probe",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        &["sslmode=verify-full", "not signed by the configured CA"],
    );
    // verify-ca checks the CA too.
    refused(
        &url(
            "localhost",
            port,
            "probe",
            &format!("sslmode=verify-ca&sslrootcert={other}"),
        ),
        &["not signed by the configured CA"],
    );
    // The right CA, but the certificate names localhost, not 127.0.0.1.
    refused(
        &url(
            "127.0.0.1",
            port,
            "probe",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &["not valid for host \"127.0.0.1\""],
    );
    // ... which verify-ca, checking the chain only, accepts.
    drop(
        open(&url(
            "127.0.0.1",
            port,
            "probe",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        ))
        .unwrap(),
    );
    // Plain text against a hostssl-only server: refused by the server, saying so.
    refused(
        &url("localhost", port, "probe", "sslmode=disable"),
        &["no pg_hba.conf entry", "no encryption"],
    );
    // A bad CA file: refused before any connection.
    refused(
        &url(
            "localhost",
            port,
            "probe",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &["cannot read the PostgreSQL CA file /nonexistent/ca.pem"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_never_falls_back_to_plain_text() {
    let pki = TestPki::generate(&["localhost"]).unwrap_or_else(|e| panic!("test PKI: {e}"));
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    let port = cluster.port();
    cluster.create_database("plain").unwrap();
    let verify = format!(
        "sslmode=verify-full&sslrootcert={}",
        pki.ca_file().display()
    );
    for query in ["sslmode=require", verify.as_str()] {
        let message = refused(
            &url("127.0.0.1", port, "plain", query),
            &["server does not support TLS"],
        );
        println!("{query}: {message}");
    }
    // prefer (also the default on loopback) connects in clear to a server without TLS.
    drop(open(&url("127.0.0.1", port, "plain", "sslmode=prefer")).unwrap());
    drop(open(&format!("postgresql://verdict@127.0.0.1:{port}/plain")).unwrap());
}
