//! Issue 11 item 8: a request id published in the log is a commitment under the decision's
//! salt (spec `receipt.md` §7.1), never the caller's text; the caller, who holds the salt,
//! recomputes it. Fails before the change: the receipt held `"customer-4242-refund"` as is.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use serde_json::json;
use verdict_core::receipt::{published_request_id, Receipt, Salt};
use verdict_core::tile::{decode_entry_bundle, Tile, TileKind};

use crate::TestServer;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn receipt_of(reply: &serde_json::Value) -> Receipt {
    Receipt::decode(&B64.decode(reply["receipt"].as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_request_ids_are_commitments_never_client_text() {
    let s = TestServer::start().await;
    let id = "customer-4242-refund";
    let mut published = Vec::new();
    // A check (allow), a screen out of scope (not-applicable), both with the client's id,
    // and a check without an id (the server generates one).
    for (uri, body) in [
        (
            "/v1/check",
            json!({"policy": "customer-data-egress", "request_id": id,
                   "action": {"destination": "internal", "record_count": 10}}),
        ),
        (
            "/v1/screen",
            json!({"policy": "customer-data-egress", "request_id": format!("{id}-screen"),
                   "action": {"colour": "red"}}),
        ),
        (
            "/v1/check",
            json!({"policy": "customer-data-egress",
                   "action": {"destination": "internal", "record_count": 11}}),
        ),
    ] {
        let r = s.post_json(uri, Some(&s.agent_token), &body).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        let clear = j["request_id"].as_str().unwrap().to_owned();
        let salt = Salt::from_hex(j["salt"].as_str().unwrap()).unwrap();
        let st = receipt_of(&j).statement;
        // The answer gives the caller its id; the receipt holds only the commitment, which the
        // caller recomputes from the salt in the same answer.
        assert_ne!(st.request_id, clear);
        assert_eq!(st.request_id, published_request_id(&salt, &clear));
        assert_eq!(st.request_id.len(), 64);
        published.push(clear);
    }
    assert_eq!(published[0], id);

    // Nothing public carries the ids: not the entry bundles, not a proof bundle.
    let size = s.tree_size();
    let mut public = Vec::new();
    let bundles = size.div_ceil(256);
    for n in 0..bundles {
        let width = if n + 1 == bundles && size % 256 != 0 {
            size % 256
        } else {
            256
        };
        let tile = Tile {
            kind: TileKind::Entries,
            index: n,
            width: u16::try_from(width).unwrap(),
        };
        let r = s.get(&format!("/{}", tile.path())).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(!decode_entry_bundle(&r.body).unwrap().is_empty());
        public.extend_from_slice(&r.body);
    }
    for index in 0..size {
        let r = s.get(&format!("/v1/bundle/{index}")).await;
        assert_eq!(r.status, StatusCode::OK);
        public.extend_from_slice(&r.body);
    }
    for clear in &published {
        assert!(
            !public.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "request id {clear:?} is public"
        );
    }

    // The private record (auditor) keeps the caller's id, so the auditor can open it too.
    let index = s
        .post_json(
            "/v1/check",
            Some(&s.agent_token),
            &json!({"policy": "customer-data-egress", "request_id": id,
                    "action": {"destination": "internal", "record_count": 10}}),
        )
        .await
        .json()["index"]
        .as_u64()
        .unwrap();
    let r = s
        .send(
            Request::get(format!("/v1/private/actions/{index}"))
                .header("authorization", format!("Bearer {}", s.auditor_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["record"]["request_id"], id);
}
