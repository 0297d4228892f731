//! A real `verdict-server` on PostgreSQL over TLS (spec `spec/storage-postgres.md` §1.1): a
//! throwaway cluster with `ssl = on` and `hostssl`-only TCP access, the server started with
//! `sslmode=verify-full` and `VERDICT_POSTGRES_CA_FILE`, serving a check whose bundle the real
//! `verdict` verifies; its pool, integrator-lock session and `LISTEN` connection all over TLS.
//! A CA file that does not exist stops the server at start with exit 2 and one line that names
//! the file; a CA that did not sign the database's certificate, with exit 1 saying so; neither
//! shows the URL's password.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use verdict_log_server::storage::postgres::testing::tls::TestPki;
use verdict_log_server::storage::postgres::testing::PgCluster;
use verdict_tests::bins::binary;
use verdict_tests::server::Server;

const PASSWORD: &str = "pw-hunter2-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_with_verify_full_serves_a_check() {
    let pki = TestPki::generate(&["localhost"]).unwrap_or_else(|e| panic!("test PKI: {e}"));
    let cluster =
        PgCluster::start_tls(&pki).unwrap_or_else(|e| panic!("test PostgreSQL with TLS: {e}"));
    cluster.create_database("verdict_tls").unwrap();
    let url = format!(
        "postgresql://verdict:{PASSWORD}@localhost:{}/verdict_tls?sslmode=verify-full",
        cluster.port()
    );
    let ca = pki.ca_file().display().to_string();
    let tmp = tempfile::tempdir().unwrap();

    // A CA file that is not there: exit 2, one line, the file named, no password.
    let out = Command::new(binary("verdict-server").unwrap())
        .arg("--data-dir")
        .arg(tmp.path().join("refused"))
        .arg("serve")
        .env("VERDICT_STORAGE", "postgres")
        .env("VERDICT_POSTGRES_URL", &url)
        .env(
            "VERDICT_POSTGRES_CA_FILE",
            tmp.path().join("no-such-ca.pem"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-ca.pem"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    // A CA that did not sign the database's certificate: the server does not start (exit 1)
    // and says why.
    let out = Command::new(binary("verdict-server").unwrap())
        .arg("--data-dir")
        .arg(tmp.path().join("refused"))
        .arg("serve")
        .env("VERDICT_STORAGE", "postgres")
        .env("VERDICT_POSTGRES_URL", &url)
        .env("VERDICT_POSTGRES_CA_FILE", pki.other_ca_file())
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not signed by the configured CA"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    let env = [
        ("VERDICT_STORAGE", "postgres"),
        ("VERDICT_POSTGRES_URL", url.as_str()),
        ("VERDICT_POSTGRES_CA_FILE", ca.as_str()),
    ];
    let data = tmp.path().join("data");
    let mut server = Server::start_with_env(&data, None, &env).await.unwrap();
    let resp = server
        .check(
            "approved-vendors",
            json!({"call_type": "third_party_api", "vendor": "acme", "sends_personal_data": false, "payload_bytes": 1000}),
            true,
        )
        .await
        .unwrap();
    assert_eq!(resp["decision"], "allow", "{resp}");
    let (_, run) = server
        .verify_answer(tmp.path(), "allow", &resp, &[])
        .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");

    // Every connection of the server is encrypted: the pool, the integrator-lock session and
    // the LISTEN connection (hostssl-only pg_hba.conf would refuse any other).
    let mut seen = String::new();
    for _ in 0..50 {
        seen = cluster
            .psql(
                "postgres",
                "SELECT count(*) FILTER (WHERE s.ssl), count(*), \
                 count(*) FILTER (WHERE a.query ILIKE 'LISTEN%'), \
                 count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_locks l \
                   WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)) \
                 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = 'verdict_tls'",
            )
            .unwrap();
        let counts: Vec<u32> = seen.split('|').map(|c| c.parse().unwrap()).collect();
        if counts[2] >= 1 && counts[3] >= 1 {
            assert_eq!(counts[0], counts[1], "a connection without TLS: {seen}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts: Vec<u32> = seen.split('|').map(|c| c.parse().unwrap()).collect();
    assert!(
        counts[2] >= 1 && counts[3] >= 1,
        "no LISTEN or lock session seen: {seen}"
    );
    assert!(!server.output().contains(PASSWORD));
    server.stop().unwrap();
}
