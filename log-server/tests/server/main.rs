//! Integration tests of `verdict-log-server`: one binary, sub-modules by concern.
//!
//! - `action_input`: strict action parsing (null, duplicate keys, size and string limits, `-0`,
//!   tokens never echoed nor stored in the private record);
//! - `api`: router tests through `tower::ServiceExt::oneshot` with a real sled log in a
//!   tempdir, the real checker pool and real keys;
//! - `bad_input` (cases in `bad_input_cases`, `bad_input_writes`, `bad_input_check`): the bad-input suite over every endpoint (each
//!   case a documented 4xx with `{error, message}`, no change to the log, the server still
//!   serving; case counts per endpoint printed);
//! - `dependencies`: no reqwest, anyhow or hdrhistogram in the server's normal dependency tree
//!   (`cargo tree`, offline);
//! - `deadline`: analysis bound at registration (422, not registered) and one deadline per
//!   decision (answered and logged fail-closed) on the chain-1000 fixture;
//! - `integrity`: the checkpoint lock (a restored store is refused), random corruption of the
//!   sled store and tile files (no panic, no fork, no wrong entry), a full disk on a tmpfs
//!   (recovery without restart, no acknowledged entry lost);
//! - `entry_times`: entry times never decrease in log order (issue 16);
//! - `escalations`: escalations, signed approvals and rejections, expiry, replay, restart
//!   (issue 15, spec `approval.md`);
//! - `metrics_access`: who may read `GET /metrics` (metrics or admin token; `metrics_listen`);
//! - `package_reads`: the evidence-package reads are auditor-only, bad queries are 400;
//! - `openapi`: insta snapshot of `GET /openapi.json`;
//! - `request_ids`: published request ids are commitments, never the caller's text (issue 11);
//! - `postgres_faults`: PostgreSQL escalation CAS, migrations, connections terminated and the
//!   server restarted under load (nothing acknowledged lost);
//! - `postgres_shared`: PostgreSQL's shared-store additions: stale entry times refused, the
//!   shared checkpoint lock's compare-and-swap, two logs on one database with skewed clocks;
//! - `postgres_tls`: TLS to a real PostgreSQL (ssl = on, hostssl only, an openssl test PKI):
//!   verify-full passes the conformance suite; a wrong CA, a wrong host name, plain text
//!   against hostssl, and require against a server without TLS are refused, saying why;
//! - `storage_conformance`: the storage conformance suite on memory, sled and a real
//!   PostgreSQL (throwaway cluster), PostgreSQL fault injection;
//! - `shared_request_ids`: the request-id window shared by two stores on one PostgreSQL
//!   (issue 18: exactly one of two racing reservations wins);
//! - `slow_client`: `serve::serve` on 127.0.0.1 under trickling (Slowloris) connections;
//! - `token_expiry`: token files with `expires=`, 401 `token_expired`;
//! - `wire_input`: HTTP/1.1 framing errors on a real socket (below the router).
//!
//! The one real-socket end-to-end test lives in the workspace `tests` crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests"
)]

mod action_input;
mod api;
mod bad_input;
mod bad_input_cases;
mod bad_input_check;
mod bad_input_writes;
mod deadline;
mod dependencies;
mod disclosure;
mod entry_times;
mod escalations;
mod integrity;
mod log_faults;
mod log_props;
mod metrics_access;
mod openapi;
mod package_reads;
mod policies;
mod postgres_faults;
mod postgres_shared;
mod postgres_tls;
mod request_ids;
mod shared_request_ids;
mod slow_client;
mod storage_conformance;
mod token_expiry;
mod wire_input;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use verdict_core::note::{Signer, Verifier};
use verdict_log_server::config::Config;
use verdict_log_server::AppState;

/// The test policy: allow, deny and escalate are all reachable.
pub fn test_policy(approver: &Verifier) -> String {
    format!(
        r#"
name = "customer-data-egress"
version = "1.0.0"
description = "Customer data may leave only to approved vendors, with authorization."

[lists]
approved_vendors = ["acme", "globex"]

[variables]
destination = {{ type = "enum", values = ["internal", "external"] }}
record_count = {{ type = "int", min = 0, max = 1000000 }}
vendor = {{ type = "string", list = "approved_vendors" }}
authorization_token = {{ type = "token" }}

[[approvers]]
name = "alice"
key = "{approver}"

[[rules]]
id = "external-needs-auth"
text = "An external destination needs an authorization token."
when = 'destination == "external"'
require = 'present(authorization_token)'
effect = "deny"

[[rules]]
id = "external-approved-vendor"
text = "External transfers go only to approved vendors."
when = 'destination == "external"'
require = 'vendor in approved_vendors'
effect = "deny"

[[rules]]
id = "bulk-needs-approval"
text = "More than 1000 records need an approver."
when = 'record_count > 1000'
require = 'approvals >= 1'
effect = "escalate"
"#
    )
}

/// A server on a fresh data directory, with the test policy loaded.
pub struct TestServer {
    pub app: Router,
    pub state: AppState,
    /// The default agent's token (screen, check).
    pub agent_token: String,
    /// The admin token (policy registration).
    pub admin_token: String,
    pub auditor_token: String,
    /// The metrics token (`GET /metrics`).
    pub metrics_token: String,
    pub log_key: Verifier,
    pub checker_key: Verifier,
    pub approver: Signer,
    pub config: Config,
    pub _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_prepared(|_| {}, tweak).await
    }

    /// Like [`Self::start_with`], with `prepare` run on the (created, empty) data directory
    /// before the server opens it, e.g. to write token files.
    pub async fn start_prepared(
        prepare: impl FnOnce(&std::path::Path),
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        prepare(&dir.path().join("data"));
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        let approver = Signer::generate("alice").unwrap();
        std::fs::write(
            policies.join("customer-data-egress.toml"),
            test_policy(&approver.verifier()),
        )
        .unwrap();
        // A suite file in the directory must be skipped, not compiled as a policy.
        std::fs::write(
            policies.join("customer-data-egress.cases.toml"),
            "policy = \"customer-data-egress\"\n[[cases]]\nname = \"x\"\n",
        )
        .unwrap();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            policies_dir: policies,
            batch_max_age_ms: 5,
            checker_threads: 1,
            max_body_bytes: 16 * 1024,
            ..Config::default()
        };
        tweak(&mut config);
        let started = verdict_log_server::start(&config).await.unwrap();
        Self::from_started(started, approver, config, dir).await
    }

    /// Shut the log down (flushing its batch), drop this server and start a new one on the same
    /// data directory and configuration.
    pub async fn restart(self) -> Self {
        let Self {
            app,
            state,
            approver,
            config,
            _dir: dir,
            ..
        } = self;
        state.log.shutdown().await.unwrap();
        drop(app);
        drop(state);
        // sled's lock is released when its last handle drops; its threads may hold it briefly.
        let mut last = None;
        for _ in 0..100 {
            match verdict_log_server::start(&config).await {
                Ok(started) => return Self::from_started(started, approver, config, dir).await,
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("restart failed: {last:?}");
    }

    async fn from_started(
        started: verdict_log_server::Started,
        approver: Signer,
        config: Config,
        dir: tempfile::TempDir,
    ) -> Self {
        assert_eq!(
            started.loaded_policies,
            vec!["customer-data-egress".to_owned()]
        );
        let state = started.state.clone();
        // Wait for the first checkpoint (the log signs one on open).
        for _ in 0..200 {
            if state.log.latest_checkpoint().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Self {
            app: verdict_log_server::app(state.clone()),
            agent_token: started.keys.agent_token.secret().to_owned(),
            admin_token: started.keys.admin_token.secret().to_owned(),
            auditor_token: started.keys.auditor_token.secret().to_owned(),
            metrics_token: started.keys.metrics_token.secret().to_owned(),
            log_key: started.keys.log.verifier(),
            checker_key: started.keys.checker.verifier(),
            state,
            approver,
            config,
            _dir: dir,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// `GET uri` with `Authorization: Bearer token`.
    pub async fn get_with_token(&self, uri: &str, token: &str) -> Reply {
        self.send(
            Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `GET /metrics` with the metrics token.
    pub async fn metrics(&self) -> Reply {
        self.get_with_token("/metrics", &self.metrics_token).await
    }

    pub async fn post_json(
        &self,
        uri: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Reply {
        let mut req = Request::post(uri).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(
            req.body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    pub async fn check(&self, body: serde_json::Value) -> Reply {
        self.post_json("/v1/check", Some(&self.agent_token.clone()), &body)
            .await
    }

    pub fn tree_size(&self) -> u64 {
        self.state
            .log
            .latest_checkpoint()
            .map_or(0, |c| c.checkpoint.size.0)
    }

    /// Entries staged or integrated: the log has not changed iff this is unchanged.
    pub fn log_size(&self) -> u64 {
        self.state.log.stats().staged_size
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}
