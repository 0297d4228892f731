//! Snapshot of `GET /openapi.json`.

use axum::http::StatusCode;

use crate::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_snapshot() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("application/json"));
    let doc = r.json();
    // Every routed path is documented.
    for path in [
        "/checkpoint",
        "/tile/{path}",
        "/v1/keys",
        "/v1/proof/inclusion",
        "/v1/proof/consistency",
        "/v1/bundle/{index}",
        "/health",
        "/metrics",
        "/openapi.json",
        "/v1/policies",
        "/v1/policies/{name}/versions",
        "/v1/screen",
        "/v1/check",
        "/v1/private/actions/{index}",
        "/v1/private/policies/{commitment}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    insta::assert_json_snapshot!("openapi", doc);
}

/// The tile path pattern of the document, without its anchors.
fn tile_path_pattern() -> String {
    let doc = verdict_log_server::openapi::document();
    let params = &doc["paths"]["/tile/{path}"]["get"]["parameters"];
    let pattern = params[0]["schema"]["pattern"].as_str().unwrap();
    pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .unwrap()
        .to_owned()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Exactness, one way: every path the document allows is a path the server parses (a
    /// schema-valid tile request is never 400; beyond the tree it is 404).
    #[test]
    fn every_documented_tile_path_parses(
        path in proptest::string::string_regex(&tile_path_pattern()).unwrap()
    ) {
        let full = format!("tile/{path}");
        proptest::prop_assert!(
            verdict_core::tile::Tile::parse_path(&full).is_ok(),
            "{full} is documented but not parsed"
        );
    }

    /// And the other way, for every tile the log can serve below 10^18: its canonical path
    /// matches the pattern.
    #[test]
    fn every_canonical_tile_path_is_documented(
        level in 0u8..=63,
        entries in proptest::bool::ANY,
        index in 0u64..1_000_000_000_000_000_000,
        width in 1u16..=256,
    ) {
        let kind = if entries {
            verdict_core::tile::TileKind::Entries
        } else {
            verdict_core::tile::TileKind::Hashes { level }
        };
        let path = verdict_core::tile::Tile { kind, index, width }.path();
        let re = regex::Regex::new(&format!("^{}$", tile_path_pattern())).unwrap();
        let rest = path.strip_prefix("tile/").unwrap();
        proptest::prop_assert!(re.is_match(rest), "{rest} is served but not documented");
    }
}
