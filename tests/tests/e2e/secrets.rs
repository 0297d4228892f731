//! Secret scan (issue 6, "Bad input and abuse"): after checks whose actions carry distinctive
//! token values and a distinctive string, no public endpoint returns any of them, nor a salt,
//! a policy's rule text or description, or an API token. Every public response is scanned:
//! `/checkpoint`, every hash tile and entry bundle, `/v1/keys`, inclusion and consistency
//! proofs, every `/v1/bundle/N` (raw, and the receipt it carries decoded from base64),
//! `/metrics` (as its scraper sees it, with the metrics token), `/openapi.json` and `/health`.

use base64::Engine as _;
use serde_json::json;
use verdict_core::bundle::ProofBundle;
use verdict_core::tile::{hash_tiles, new_entry_bundles};
use verdict_core::TreeSize;
use verdict_tests::bins::workspace_root;
use verdict_tests::server::Server;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const POLICY: &str = "customer-data-egress";
/// Checks to run: more than one entry bundle and hash tile of 256.
const CHECKS: usize = 300;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Rule `text` and `description` values of every policy in `testdata/policies/`.
fn policy_texts() -> Vec<String> {
    let dir = workspace_root().join("testdata").join("policies");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name.ends_with(".cases.toml") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            for key in ["text = \"", "description = \""] {
                if let Some(rest) = line.trim().strip_prefix(key) {
                    let value = rest.trim_end_matches('"');
                    if value.len() >= 20 {
                        out.push(value.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_leak_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(Server::start(&tmp.path().join("data"), None).await.unwrap());

    // Checks with distinctive secret values, in parallel, both modes.
    let mut tasks = Vec::new();
    for t in 0..6usize {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..CHECKS / 6 {
                let n = t * 1000 + i;
                let auth = format!("SECRET-AUTH-TOKEN-q8Zx{n:05}");
                let approval = format!("SECRET-APPROVAL-TOKEN-w3Kp{n:05}");
                let approver = format!("approver-Nyx-Quasimodo-{n:05}");
                let action = json!({
                    "destination": if n % 2 == 0 { "external" } else { "internal" },
                    "classification": "restricted",
                    "record_count": 10 + n,
                    "transfers_in_session": 0,
                    "is_privileged": true,
                    "approver_id": approver,
                    "authorization_token": auth,
                    "approval_token": approval,
                });
                let resp = server.check(POLICY, action, i % 10 == 0).await.unwrap();
                out.push((resp, vec![auth, approval, approver]));
            }
            out
        }));
    }
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let mut max_index = 0;
    for t in tasks {
        for (resp, secrets) in t.await.unwrap() {
            max_index = max_index.max(resp["index"].as_u64().unwrap());
            let salt_hex = resp["salt"].as_str().unwrap();
            let salt = hex::decode(salt_hex).unwrap();
            assert_eq!(salt.len(), 32);
            needles.push(salt_hex.as_bytes().to_vec());
            needles.push(salt_hex.to_uppercase().into_bytes());
            needles.push(B64.encode(&salt).into_bytes());
            needles.push(salt);
            needles.extend(secrets.into_iter().map(String::into_bytes));
        }
    }
    for file in [
        "admin.token",
        "agent.token",
        "auditor.token",
        "metrics.token",
    ] {
        let token = std::fs::read_to_string(server.data_dir.join(file)).unwrap();
        needles.push(token.trim().as_bytes().to_vec());
    }
    let texts = policy_texts();
    assert!(texts.len() >= 5, "{texts:?}");
    needles.extend(texts.into_iter().map(String::into_bytes));

    // Integrated: a checkpoint covering every check.
    let mut size = server.tree_size().await.unwrap();
    for _ in 0..100 {
        if size > max_index {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        size = server.tree_size().await.unwrap();
    }
    assert!(size > max_index && size >= CHECKS as u64);

    // Every public response.
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let mut get = |path: String, body: Vec<u8>| bodies.push((path, body));
    for p in ["checkpoint", "v1/keys", "openapi.json", "health"] {
        get(p.into(), server.get_bytes(p).await.unwrap());
    }
    // `/metrics` takes the metrics token (issue 16 item 6); what a scraper sees holds no secret.
    let metrics_token = std::fs::read_to_string(server.data_dir.join("metrics.token")).unwrap();
    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .bearer_auth(metrics_token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    get("metrics".into(), metrics.bytes().await.unwrap().to_vec());
    let tiles = hash_tiles(TreeSize(size));
    assert!(tiles.len() >= 3, "{tiles:?}");
    let bundles = new_entry_bundles(TreeSize(0), TreeSize(size));
    assert!(bundles.len() >= 2, "{bundles:?}");
    for tile in tiles.into_iter().chain(bundles) {
        let p = tile.path();
        let body = server.get_bytes(&p).await.unwrap();
        get(p, body);
    }
    let mut receipts = 0;
    for i in 0..size {
        let p = format!("v1/bundle/{i}");
        let body = server.get_bytes(&p).await.unwrap();
        let receipt = ProofBundle::parse(&body).unwrap().extra.unwrap();
        receipts += 1;
        get(format!("{p} (receipt, decoded)"), receipt);
        get(p, body);
    }
    assert_eq!(receipts, size);
    for i in (0..size).step_by(7) {
        let p = format!("v1/proof/inclusion?index={i}&size={size}");
        let body = server.get_bytes(&p).await.unwrap();
        get(p, body);
        if i > 0 {
            let p = format!("v1/proof/consistency?from={i}&to={size}");
            let body = server.get_bytes(&p).await.unwrap();
            get(p, body);
        }
    }

    // The scan must be able to fail: the private endpoint (auditor token) does hold the string
    // values (token values are reduced to their presence, issue 13).
    let auditor = std::fs::read_to_string(server.data_dir.join("auditor.token")).unwrap();
    let private = server
        .http
        .get(format!("{}/v1/private/actions/{max_index}", server.base))
        .bearer_auth(auditor.trim())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(needles.iter().any(|n| contains(&private, n)));

    let mut leaks = Vec::new();
    for (path, body) in &bodies {
        for n in &needles {
            if contains(body, n) {
                leaks.push(format!("{path}: {}", String::from_utf8_lossy(n)));
            }
        }
    }
    eprintln!(
        "secret scan: {} public responses, {} bytes, {} secret values: {} leaks",
        bodies.len(),
        bodies.iter().map(|(_, b)| b.len()).sum::<usize>(),
        needles.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{leaks:#?}");
}
