//! The request-id window shared by several frontends (issue 18; spec `storage-postgres.md`
//! §5.4), on a real PostgreSQL: the conformance case
//! [`verdict_log_server::storage::conformance_shared::request_ids`] through two independent
//! stores (two pools, as two frontends have) on one database.

use std::sync::Arc;

use verdict_log_server::storage::conformance_shared::{request_ids, RACE_ROUNDS};
use verdict_log_server::storage::postgres::{PostgresConfig, PostgresStorage};
use verdict_log_server::storage::Storage;

use crate::storage_conformance::Postgres;

#[test]
fn two_stores_share_one_request_id_window() {
    let pg = Postgres::start();
    let (db, url) = pg.database();
    let open = || -> Arc<dyn Storage> {
        Arc::new(PostgresStorage::open(&PostgresConfig::new(url.clone())).unwrap())
    };
    let (a, b) = (open(), open());
    request_ids("postgres", a, b).unwrap_or_else(|e| panic!("{e}"));
    // The store keeps keys derived from the ids, never the ids: the race left one row a round.
    let rows = pg
        .cluster
        .psql(
            &db,
            "SELECT count(*) FROM verdict_request_ids WHERE get_byte(key, 0) >= 128",
        )
        .unwrap();
    assert_eq!(rows, RACE_ROUNDS.to_string());
    println!("request ids: {RACE_ROUNDS} racing rounds, one reservation won each");
}
