//! `/metrics` on a real `verdict-server` (issue 16 item 6): by default on the main listener,
//! 401 without a token and 200 with the metrics token; with `metrics_listen` (set through
//! `VERDICT_METRICS_LISTEN`) on its own port without a token, and 404 on the main listener.

use verdict_tests::server::{free_addr, Server};

async fn get(server: &Server, url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = server.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn metrics_token(server: &Server) -> String {
    std::fs::read_to_string(server.data_dir.join("metrics.token"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_and_metrics_listen() {
    let dir = tempfile::tempdir().unwrap();

    let mut server = Server::start(&dir.path().join("token"), None)
        .await
        .unwrap();
    let url = format!("{}/metrics", server.base);
    let (status, body) = get(&server, &url, None).await;
    assert_eq!(
        (status, body.contains("\"unauthorized\"")),
        (401, true),
        "{body}"
    );
    let (status, body) = get(&server, &url, Some(&server.token)).await;
    assert_eq!(
        (status, body.contains("\"forbidden\"")),
        (403, true),
        "{body}"
    );
    let (status, body) = get(&server, &url, Some(&metrics_token(&server))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("verdict_tree_size "), "{body}");
    server.stop().unwrap();

    let metrics_addr = free_addr().unwrap();
    let mut server = Server::start_with_env(
        &dir.path().join("listen"),
        None,
        &[("VERDICT_METRICS_LISTEN", &metrics_addr.to_string())],
    )
    .await
    .unwrap();
    let main = format!("{}/metrics", server.base);
    let (status, body) = get(&server, &main, Some(&metrics_token(&server))).await;
    assert_eq!(
        (status, body.contains("\"not_found\"")),
        (404, true),
        "{body}"
    );
    let (status, body) = get(&server, &format!("http://{metrics_addr}/metrics"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("verdict_tree_size "), "{body}");
    let (status, _) = get(&server, &format!("http://{metrics_addr}/checkpoint"), None).await;
    assert_eq!(status, 404);
    server.stop().unwrap();
}
