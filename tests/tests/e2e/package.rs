//! Evidence packages with real processes (issue 16, spec `spec/evidence-package.md`): a real
//! `verdict-server` receives allow, deny, escalate, in-scope and not-applicable traffic under two
//! versions of a policy; `verdict audit export` writes packages by time, by checkpoint and as a
//! tar; `verdict audit verify-package` accepts them (exit 0). Then >= 100 seeded mutations, each
//! of one file of the package, are each refused (exit 1) with the file named, both when the
//! manifest is left alone and when the attacker also rewrites the manifest entry of the file.

use std::path::{Path, PathBuf};

use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use verdict_tests::bins::{verdict, Run};
use verdict_tests::server::Server;

struct Ctx {
    server: Server,
    auditor: PathBuf,
    checker: String,
}

impl Ctx {
    fn export(&self, out: &Path, period: &[&str]) -> Run {
        let mut args = vec![
            "audit".to_owned(),
            "export".to_owned(),
            "--log".to_owned(),
            self.server.base.clone(),
            "--token-file".to_owned(),
            self.auditor.display().to_string(),
            "--log-key".to_owned(),
            self.server.log_key.clone(),
            "--checker-key".to_owned(),
            self.checker.clone(),
            "--out".to_owned(),
            out.display().to_string(),
        ];
        args.extend(period.iter().map(|s| (*s).to_owned()));
        verdict(args).unwrap()
    }

    fn verify(&self, pkg: &Path) -> Run {
        verdict([
            "audit",
            "verify-package",
            pkg.to_str().unwrap(),
            "--log-key",
            &self.server.log_key,
            "--checker-key",
            &self.checker,
        ])
        .unwrap()
    }
}

async fn screen(server: &Server, action: serde_json::Value) -> serde_json::Value {
    let r = server
        .http
        .post(format!("{}/v1/screen", server.base))
        .bearer_auth(&server.token)
        .json(&json!({"policy": "customer-data-egress", "action": action}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap())
        .unwrap()
        .to_string()
}

/// Traffic under two policy versions; returns the decisions seen and a checkpoint taken early.
async fn traffic(ctx: &Ctx, dir: &Path) -> (std::collections::BTreeSet<String>, PathBuf, u64) {
    let s = &ctx.server;
    let mut seen = std::collections::BTreeSet::new();
    let mut middle_ms = 0;
    let actions = [
        json!({"destination": "internal", "classification": "public", "record_count": 5, "transfers_in_session": 0, "is_privileged": false}),
        json!({"destination": "external", "classification": "public", "record_count": 5, "transfers_in_session": 0, "is_privileged": false}),
        json!({"destination": "external"}),
        json!({"colour": "red"}),
    ];
    for a in &actions {
        let r = s
            .check("customer-data-egress", a.clone(), true)
            .await
            .unwrap();
        seen.insert(r["decision"].as_str().unwrap().to_owned());
    }
    for a in [
        json!({"destination": "internal"}),
        json!({"colour": "blue"}),
    ] {
        let r = screen(s, a).await;
        seen.insert(r["decision"].as_str().unwrap().to_owned());
    }
    let early = dir.join("early.checkpoint");
    // Wait for a checkpoint that covers the traffic so far.
    std::fs::write(&early, s.get_bytes("checkpoint").await.unwrap()).unwrap();
    // A second version of the policy.
    let admin = std::fs::read_to_string(s.data_dir.join("admin.token")).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/policies/customer-data-egress.toml"),
    )
    .unwrap()
    .replacen("version = \"1.0.0\"", "version = \"1.1.0\"", 1)
    .replacen("Five rules", "Five rules (v1.1)", 1);
    let r = s
        .http
        .post(format!("{}/v1/policies", s.base))
        .bearer_auth(admin.trim())
        .header("content-type", "application/toml")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    for (i, a) in actions.iter().enumerate() {
        let r = s
            .check("customer-data-egress", a.clone(), true)
            .await
            .unwrap();
        if i == 1 {
            middle_ms = r["time_ms"].as_u64().unwrap();
        }
        seen.insert(r["decision"].as_str().unwrap().to_owned());
    }
    let r = screen(s, json!({"classification": "public"})).await;
    seen.insert(r["decision"].as_str().unwrap().to_owned());
    let r = s
        .check("approved-vendors", json!({"call_type": "third_party_api", "vendor": "evilcorp", "sends_personal_data": false, "payload_bytes": 1000}), true)
        .await
        .unwrap();
    seen.insert(r["decision"].as_str().unwrap().to_owned());
    (seen, early, middle_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verify_and_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), None).await.unwrap();
    let auditor = server.data_dir.join("auditor.token");
    let checker = server.checker_keys[0].clone();
    let ctx = Ctx {
        server,
        auditor,
        checker,
    };
    let (seen, early, middle_ms) = traffic(&ctx, tmp.path()).await;
    for d in ["allow", "deny", "escalate", "not-applicable", "in-scope"] {
        assert!(seen.contains(d), "{d} missing from {seen:?}");
    }

    // By time: the whole log, then from the middle of the second version's traffic.
    let all = tmp.path().join("all");
    let run = ctx.export(
        &all,
        &[
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = ctx.verify(&all);
    assert_eq!(run.code, Some(0), "{run:?}");
    let part = tmp.path().join("part");
    let from = rfc3339(middle_ms);
    let run = ctx.export(&part, &["--from", &from, "--to", "2100-01-01T00:00:00Z"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = ctx.verify(&part);
    assert_eq!(run.code, Some(0), "{run:?}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("manifest.json")).unwrap()).unwrap();
    assert!(m["period"]["start"].as_u64().unwrap() > 0, "{m}");

    // By checkpoint: start checkpoint, consistency proof, policy bundles.
    let since = tmp.path().join("since");
    let run = ctx.export(&since, &["--start-checkpoint", early.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = ctx.verify(&since);
    assert_eq!(run.code, Some(0), "{run:?}");

    // Tar form.
    let tar = tmp.path().join("all.tar");
    let run = ctx.export(
        &tar,
        &[
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = ctx.verify(&tar);
    assert_eq!(run.code, Some(0), "{run:?}");

    // A failed export leaves nothing: a bad token.
    let bad_token = tmp.path().join("bad.token");
    std::fs::write(&bad_token, "nope").unwrap();
    let failed = tmp.path().join("failed");
    let mut c2 = Ctx {
        server: ctx.server,
        auditor: bad_token,
        checker: ctx.checker.clone(),
    };
    let run = c2.export(
        &failed,
        &[
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(!failed.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty());
    c2.auditor = ctx.auditor.clone();

    tamper(&c2, &since, tmp.path());
}

/// Mutations of one file each (spec §9): `false` leaves the manifest alone, `true` also
/// rewrites the file's manifest entry (size and SHA-256), so only semantic checks can catch it.
fn tamper(ctx: &Ctx, pkg: &Path, tmp: &Path) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("manifest.json")).unwrap()).unwrap();
    let mut files: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    files.push("manifest.json".to_owned());
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut neutral = 0;
    let mut refused = 0;
    for rewrite in [false, true] {
        for n in 0..60 {
            let copy = tmp.join(format!("t-{rewrite}-{n}"));
            verdict_tests::server::copy_dir(pkg, &copy).unwrap();
            let kind = rng.gen_range(0..6);
            let file = if kind == 5 {
                "extra/added.txt".to_owned()
            } else {
                files[rng.gen_range(0..files.len())].clone()
            };
            if rewrite && file == "manifest.json" {
                continue;
            }
            let path = copy.join(&file);
            let before = std::fs::read(&path).unwrap_or_default();
            let mut bytes = before.clone();
            match kind {
                0 if !bytes.is_empty() => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.gen_range(0..8);
                }
                1 if !bytes.is_empty() => bytes.truncate(rng.gen_range(0..bytes.len())),
                2 | 3 => {
                    let mut lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
                    if lines.len() >= 2 {
                        let i = rng.gen_range(0..lines.len() - 1);
                        if kind == 2 {
                            lines.remove(i);
                        } else {
                            lines.swap(i, i + 1);
                        }
                    } else {
                        lines.clear();
                    }
                    bytes = lines.concat();
                }
                5 => bytes = b"more evidence".to_vec(),
                _ => bytes.clear(),
            }
            let deleted = kind == 4;
            if bytes == before && !deleted {
                continue;
            }
            if deleted {
                std::fs::remove_file(&path).unwrap();
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            if rewrite {
                let mut m = manifest.clone();
                let list = m["files"].as_array_mut().unwrap();
                list.retain(|f| f["path"] != file.as_str());
                if !deleted {
                    list.push(json!({"path": file, "sha256": hex::encode(Sha256::digest(&bytes)), "size": bytes.len()}));
                }
                list.sort_by(|a, b| a["path"].as_str().unwrap().cmp(b["path"].as_str().unwrap()));
                std::fs::write(
                    copy.join("manifest.json"),
                    verdict_core::package::canonical_json(&m),
                )
                .unwrap();
            }
            if is_neutral(&file, &before, &bytes) {
                neutral += 1;
                continue;
            }
            let run = ctx.verify(&copy);
            let out = format!("{}{}", run.stdout, run.stderr);
            assert_eq!(
                run.code,
                Some(1),
                "{file} kind {kind} rewrite {rewrite}: {run:?}"
            );
            assert!(
                out.contains(&file),
                "{file} kind {kind} rewrite {rewrite} not named: {out}"
            );
            refused += 1;
            std::fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(
        refused >= 100,
        "only {refused} mutations ({neutral} neutral)"
    );
    eprintln!("tamper: {refused} mutations refused, {neutral} neutral");
}

/// A change that no signature or commitment covers, by design (spec evidence-package.md §2,
/// §5, §6): `exported_at` in the manifest, a policy file's source `text` (only `verdict-policy
/// replay`, which compiles it, can tie it to the committed canonical form), and in a record the
/// `agent` name or an action key that is not a policy variable.
fn is_neutral(file: &str, before: &[u8], after: &[u8]) -> bool {
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    if file == "manifest.json" {
        if let (Some(mut a), Some(mut b)) = (parse(before), parse(after)) {
            a["exported_at"] = json!(null);
            b["exported_at"] = json!(null);
            return a == b
                && verdict_core::package::canonical_json(&parse(after).unwrap()).as_bytes()
                    == after;
        }
        return false;
    }
    if file.starts_with("policies/") && file.ends_with(".json") {
        // The registered source text is bound to the commitment only through the checker's
        // canonical form: `verdict-policy replay` recompiles it; verify-package cannot.
        if let (Some(mut a), Some(mut b)) = (parse(before), parse(after)) {
            let canonical = verdict_core::package::canonical_json(&b).as_bytes() == after;
            a["text"] = json!(null);
            b["text"] = json!(null);
            return canonical && a == b;
        }
        return false;
    }
    if file == "records.jsonl" {
        let la: Vec<&[u8]> = before.split(|&b| b == b'\n').collect();
        let lb: Vec<&[u8]> = after.split(|&b| b == b'\n').collect();
        if la.len() != lb.len() {
            return false;
        }
        for (x, y) in la.iter().zip(&lb) {
            if x == y {
                continue;
            }
            let (Some(mut a), Some(mut b)) = (parse(x), parse(y)) else {
                return false;
            };
            if verdict_core::package::canonical_json(&b).as_bytes() != *y {
                return false;
            }
            for v in [&mut a, &mut b] {
                let canonical: serde_json::Value = v["record"]["canonical_action"]
                    .as_str()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(json!({}));
                if let Some(r) = v["record"].as_object_mut() {
                    r.remove("agent");
                    if let Some(action) = r.get_mut("action").and_then(|x| x.as_object_mut()) {
                        action.retain(|k, _| canonical.get(k).is_some());
                    }
                }
            }
            if a != b {
                return false;
            }
        }
        return true;
    }
    false
}
