//! Issue 11 acceptance with the real binary: 50 concurrent policy registrations all get 201,
//! are listed by `/v1/policies/{name}/versions`, and survive `kill -9` and a restart, with no 5xx.
//!
//! Versions of one name must increase (spec `policy-statement.md` §6), so concurrent clients
//! registering versions of one name out of order would rightly get 409; the 50 registrations
//! here are of 50 names, all serialised by the one registration lock of the server.

use std::sync::Arc;

use verdict_tests::server::Server;

fn policy(i: usize) -> String {
    format!(
        r#"name = "concurrent-{i:02}"
version = "1.0.{i}"
[variables]
amount = {{ type = "int", min = 0, max = 1000 }}
[[rules]]
id = "small"
text = "Amounts up to {i} only."
require = 'amount <= {i}'
effect = "deny"
"#
    )
}

async fn versions(server: &Server, i: usize) -> serde_json::Value {
    server
        .get_json(&format!("v1/policies/concurrent-{i:02}/versions"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Arc::new(Server::start(&data, None).await.unwrap());
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (server, admin) = (Arc::clone(&server), admin.clone());
            tokio::spawn(async move {
                let r = server
                    .http
                    .post(format!("{}/v1/policies", server.base))
                    .bearer_auth(&admin)
                    .header("content-type", "application/toml")
                    .body(policy(i))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (i, status, r.text().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        assert_eq!(status, 201, "registration {i}: {body}");
    }
    // An agent token is refused.
    let agent = server
        .http
        .post(format!("{}/v1/policies", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/toml")
        .body(policy(99))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status().as_u16(), 403);
    let mut indices = std::collections::BTreeSet::new();
    for i in 0..50 {
        let v = versions(&server, i).await;
        assert_eq!(v["versions"][0]["version"], format!("1.0.{i}"));
        indices.insert(v["versions"][0]["index"].as_u64().unwrap());
    }
    assert_eq!(indices.len(), 50, "one log entry each");

    // kill -9 (Drop is SIGKILL) and restart on the same data directory.
    let server = Arc::into_inner(server).unwrap();
    let addr = server.addr;
    drop(server);
    let server = Server::start(&data, Some(addr)).await.unwrap();
    let mut after = std::collections::BTreeSet::new();
    for i in 0..50 {
        let v = versions(&server, i).await;
        assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["versions"][0]["version"], format!("1.0.{i}"));
        after.insert(v["versions"][0]["index"].as_u64().unwrap());
    }
    assert_eq!(after, indices);
    // Every registration entry is in the log the restarted server serves.
    let size = server.tree_size().await.unwrap();
    assert!(indices.iter().all(|&i| i < size));
}
