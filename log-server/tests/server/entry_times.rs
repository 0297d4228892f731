//! Issue 16: entry times never decrease in log order (spec `evidence-package.md` §3.1), so a
//! period of time is one range of indices. Concurrent checks, screens and a policy registration
//! on a real server; every entry's time is at least the previous one's. Fails before the entry
//! clock: receipts were stamped before they queued, so concurrent ones could land out of order.

use axum::http::StatusCode;
use serde_json::json;
use verdict_core::bundle::ProofBundle;

use crate::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_times_never_decrease_in_log_order() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..120u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (uri, action) = match i % 3 {
                0 => (
                    "/v1/check",
                    json!({"destination": "internal", "record_count": i}),
                ),
                1 => (
                    "/v1/check",
                    json!({"destination": "external", "vendor": "evil-corp"}),
                ),
                _ => ("/v1/screen", json!({"colour": "red"})),
            };
            let body = json!({"policy": "customer-data-egress", "action": action});
            let r = s.post_json(uri, Some(&s.agent_token), &body).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&r.body)
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let size = s.tree_size();
    assert!(size >= 120);
    let mut last = 0;
    for index in 0..size {
        let r = s.get(&format!("/v1/bundle/{index}")).await;
        assert_eq!(r.status, StatusCode::OK);
        let bundle = ProofBundle::parse(&r.body).unwrap();
        let entry = bundle.extra.unwrap();
        let t = verdict_core::package::entry_time_ms(&entry).unwrap();
        assert!(t >= last, "entry {index}: time {t} is before {last}");
        last = t;
    }
}
