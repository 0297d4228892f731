//! Selective rule disclosure with real processes (issue 11 item 6, spec `spec/disclosure.md`):
//! a real `verdict-server` denies an action; the auditor fetches the disclosure of the violated
//! rule; the real `verdict verify BUNDLE --disclosure FILE` accepts it offline, and rejects it
//! (exit 1, check `disclosure`) once the rule text, salt or a path hash is changed; a rule the
//! decision did not violate is refused by the server.

use serde_json::json;
use verdict_tests::bins::verdict;
use verdict_tests::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disclosure_verifies_offline_and_tampering_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), None).await.unwrap();
    let checker = server.checker_keys[0].clone();
    let auditor = std::fs::read_to_string(server.data_dir.join("auditor.token"))
        .unwrap()
        .trim()
        .to_owned();
    let resp = server
        .check(
            "approved-vendors",
            json!({"call_type": "third_party_api", "vendor": "evilcorp", "sends_personal_data": false, "payload_bytes": 1000}),
            true,
        )
        .await
        .unwrap();
    assert_eq!(resp["decision"], "deny", "{resp}");
    let index = resp["index"].as_u64().unwrap();
    let violated: Vec<u64> = resp["violated_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let rule = violated[0];
    let bundle = tmp.path().join("deny.proof");
    std::fs::write(&bundle, resp["proof"]["bundle"].as_str().unwrap()).unwrap();

    let get = |rule: u64| {
        server
            .http
            .get(format!(
                "{}/v1/private/disclosure/{index}?rule={rule}",
                server.base
            ))
            .bearer_auth(&auditor)
            .send()
    };
    let r = get(rule).await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    // A rule the decision did not violate: refused.
    let other = (0..8).find(|i| !violated.contains(i)).unwrap();
    let r = get(other).await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found", "{body}");

    let run_with = |doc: &serde_json::Value, name: &str| {
        let file = tmp.path().join(name);
        std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
        verdict([
            "verify",
            bundle.to_str().unwrap(),
            "--log-key",
            &server.log_key,
            "--checker-key",
            &checker,
            "--disclosure",
            file.to_str().unwrap(),
        ])
        .unwrap()
    };
    let run = run_with(&doc, "good.json");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(&format!("disclosed rule {rule}")),
        "{run:?}"
    );

    let text = doc["rule"]["text"].as_str().unwrap().to_owned();
    let salt = doc["rule"]["salt"].as_str().unwrap().to_owned();
    let mut tampered = Vec::new();
    let mut t = doc.clone();
    t["rule"]["text"] = json!(text.replacen('"', "'", 1));
    tampered.push(("text", t));
    let mut t = doc.clone();
    let flipped = if salt.starts_with('0') { "1" } else { "0" };
    t["rule"]["salt"] = json!(format!("{flipped}{}", &salt[1..]));
    tampered.push(("salt", t));
    if let Some(first) = doc["rule"]["path"][0].as_str() {
        let mut t = doc.clone();
        let flipped = if first.starts_with('0') { "1" } else { "0" };
        t["rule"]["path"][0] = json!(format!("{flipped}{}", &first[1..]));
        tampered.push(("path", t));
    }
    let mut t = doc.clone();
    t["rule"]["index"] = json!(other);
    tampered.push(("rule index", t));
    // The statement's inclusion proof (version 2): dropped (as version 1), or moved to another
    // index, fails check statement-inclusion.
    let mut t = doc.clone();
    t.as_object_mut().unwrap().remove("statement_proof");
    t["version"] = json!(1);
    tampered.push(("statement proof dropped", t));
    let mut t = doc.clone();
    let si = doc["statement_index"].as_u64().unwrap();
    t["statement_index"] = json!(if si > 0 { si - 1 } else { si + 1 });
    tampered.push(("statement index", t));
    assert!(tampered.len() >= 3);
    for (what, t) in &tampered {
        let run = run_with(t, "tampered.json");
        assert_eq!(run.code, Some(1), "{what}: {run:?}");
        assert!(
            run.stdout.contains("check disclosure failed"),
            "{what}: {run:?}"
        );
        if what.starts_with("statement") {
            assert!(
                run.stdout.contains("statement-inclusion"),
                "{what}: {run:?}"
            );
        }
    }
}
