//! The gateway's client of `verdict-server`'s public HTTP API: `POST /v1/check` and
//! `POST /v1/screen` with the agent (write) token (`log-server/src/openapi.rs`,
//! `spec/http-api.md`). It reads only the documented fields of the decision answer.
//!
//! Fail closed: a transport error, a timeout, a non-2xx status or an answer without a decision is
//! a [`CheckFailure`], and the caller does not forward the call.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::VerdictConfig;

/// A decision of verdict-server, as the gateway uses it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `allow`, `deny`, `escalate` or `not-applicable`.
    pub decision: String,
    /// The server's fail-closed flag (a timeout or unknown result in the checker).
    pub fail_closed: bool,
    /// The policy name.
    pub policy: String,
    /// Request id of the decision.
    pub request_id: String,
    /// Leaf index of the receipt in the log.
    pub index: Option<u64>,
    /// Ids of violated rules (deny).
    pub violated_rule_ids: Vec<String>,
    /// Variables that decide an escalation.
    pub undetermined_variables: Vec<String>,
    /// The C2SP tlog-proof bundle text (`verdict verify` input), once integrated.
    pub bundle: Option<String>,
    /// The escalation this decision opened or resolved (`escalation_id` of the check answer).
    pub escalation_id: Option<String>,
    /// Its status URL, relative to the server's base URL.
    pub status_url: Option<String>,
    /// `approved`, `rejected` or `expired` once the gateway waited for the resolution.
    pub escalation_status: Option<String>,
    /// The whole answer, for `_meta` and for fields added by later server versions.
    pub raw: Value,
}

impl Decision {
    /// True only for a clean `allow`.
    pub fn allows(&self) -> bool {
        self.decision == "allow" && !self.fail_closed
    }

    /// The `_meta` entry the gateway attaches to a call result (`docs/gateway-guide.md` §5).
    pub fn meta(&self) -> Value {
        json!({
            "decision": self.decision,
            "fail_closed": self.fail_closed,
            "policy": self.policy,
            "request_id": self.request_id,
            "index": self.index,
            "violated_rule_ids": self.violated_rule_ids,
            "undetermined_variables": self.undetermined_variables,
            "salt": self.raw.get("salt"),
            "action_commitment": self.raw.get("action_commitment"),
            "escalation_id": self.escalation_id,
            "status_url": self.status_url,
            "escalation_status": self.escalation_status,
            "bundle": self.bundle,
        })
    }
}

/// Why no decision was obtained. The call is not forwarded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckFailure {
    /// No answer: connection refused, reset, or timed out.
    #[error("verdict-server unreachable: {detail}")]
    Unreachable {
        /// The transport error.
        detail: String,
    },
    /// An error status with the server's JSON error.
    #[error("verdict-server answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's `error: message`, or the start of the body.
        message: String,
    },
    /// A 2xx answer without a usable decision.
    #[error("verdict-server answer without a decision: {detail}")]
    BadAnswer {
        /// What is missing.
        detail: String,
    },
}

/// The HTTP client of verdict-server.
#[derive(Debug, Clone)]
pub struct VerdictClient {
    http: reqwest::Client,
    base: String,
    token: String,
    escalation_wait: Duration,
    timeout: Duration,
}

/// The longest `wait` `GET /v1/escalations/{id}` accepts (`spec/approval.md` §6).
const MAX_SERVER_WAIT_S: u64 = 60;

impl VerdictClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend initialisation).
    pub fn new(config: &VerdictConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            base: config.url.clone(),
            token: config.token.clone(),
            escalation_wait: config.escalation_wait,
            timeout: config.timeout,
        })
    }

    /// `POST /v1/check {policy, action}`, waiting for the proof.
    ///
    /// # Errors
    /// [`CheckFailure`]: no decision was obtained.
    pub async fn check(&self, policy: &str, action: &Value) -> Result<Decision, CheckFailure> {
        let body = json!({"policy": policy, "action": action});
        let decision = self.post("/v1/check", &body).await?;
        if decision.decision == "escalate" {
            return self.escalation_wait(decision).await;
        }
        Ok(decision)
    }

    /// `POST /v1/screen {policy, action: {}}`: an out-of-scope action, logged as
    /// `not-applicable` with its proof.
    ///
    /// # Errors
    /// [`CheckFailure`]; also when the server finds the empty action in scope.
    pub async fn screen_not_applicable(&self, policy: &str) -> Result<Decision, CheckFailure> {
        let body = json!({"policy": policy, "action": {}});
        self.post("/v1/screen", &body).await
    }

    /// The bounded wait for an escalation (`spec/approval.md` §6, `docs/gateway-guide.md` §5).
    ///
    /// An escalate answer carries `escalation_id` and `status_url` (`/v1/escalations/<id>`,
    /// relative to the server's base URL). With `escalation_wait_ms` > 0 the gateway long-polls
    /// `GET <status_url>?wait=<s>s` with the agent token (the one that raised it) until the
    /// record is resolved and carries its final `decision` (logged, with its own receipt and
    /// bundle), or until the wait runs out. The final decision replaces the escalation; the
    /// escalation id stays attached to it. Without a status URL, with a zero wait, or when the
    /// wait runs out, the escalation is returned as it is: the caller does not forward it.
    ///
    /// # Errors
    /// [`CheckFailure`] when polling fails: fail closed, the call is not forwarded.
    pub async fn escalation_wait(&self, decision: Decision) -> Result<Decision, CheckFailure> {
        let Some(url) = decision.status_url.clone() else {
            return Ok(decision);
        };
        if self.escalation_wait.is_zero() {
            return Ok(decision);
        }
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url
        } else {
            format!("{}/{}", self.base, url.trim_start_matches('/'))
        };
        tracing::info!(
            escalation_id = decision.escalation_id.as_deref(),
            "escalation {}: waiting up to {} ms for approvers",
            decision.escalation_id.as_deref().unwrap_or("?"),
            self.escalation_wait.as_millis()
        );
        let deadline = Instant::now() + self.escalation_wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(decision);
            }
            // The server takes whole seconds, 0 to 60; under one second left, ask without
            // holding and pause briefly between asks.
            let secs = left.as_secs().min(MAX_SERVER_WAIT_S);
            if secs == 0 {
                tokio::time::sleep(Duration::from_millis(200).min(left)).await;
            }
            let view = send_json(
                self.http
                    .get(&url)
                    .bearer_auth(&self.token)
                    .query(&[("wait", format!("{secs}s"))])
                    .timeout(Duration::from_secs(secs) + self.timeout),
            )
            .await?;
            // A record that is no longer pending but has no `decision` yet is still being
            // resolved (its final decision is being logged): keep asking.
            if let Some(final_decision) = view.get("decision").filter(|d| d.is_object()) {
                let mut resolved = parse(final_decision.clone())?;
                if resolved.decision == "escalate" {
                    return Err(CheckFailure::BadAnswer {
                        detail: "a resolved escalation answered `escalate` again".to_owned(),
                    });
                }
                resolved.escalation_id = decision.escalation_id.clone();
                resolved.status_url = decision.status_url.clone();
                resolved.escalation_status = view
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                return Ok(resolved);
            }
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Decision, CheckFailure> {
        parse(
            send_json(
                self.http
                    .post(format!("{}{path}", self.base))
                    .bearer_auth(&self.token)
                    .json(body),
            )
            .await?,
        )
    }
}

/// Send a request to verdict-server and read its JSON answer: unreachable, a non-2xx status
/// and a body that is not JSON are each a [`CheckFailure`] (never a decision).
async fn send_json(request: reqwest::RequestBuilder) -> Result<Value, CheckFailure> {
    let response = request
        .send()
        .await
        .map_err(|e| CheckFailure::Unreachable {
            detail: without_url(&e),
        })?;
    if !response.status().is_success() {
        return Err(status_failure(response).await);
    }
    response.json().await.map_err(|e| CheckFailure::BadAnswer {
        detail: without_url(&e),
    })
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(&format!(" ({url})"), "");
    }
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        format!("connection failed ({s})")
    } else {
        s
    }
}

async fn status_failure(response: reqwest::Response) -> CheckFailure {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            let code = v.get("error")?.as_str()?.to_owned();
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
            Some(format!("{code}: {msg}"))
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    CheckFailure::Status { status, message }
}

fn parse(value: Value) -> Result<Decision, CheckFailure> {
    let missing = |what: &str| CheckFailure::BadAnswer {
        detail: format!("no `{what}`"),
    };
    let decision = value
        .get("decision")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("decision"))?
        .to_owned();
    let strings = |key: &str| -> Vec<String> {
        value
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Decision {
        fail_closed: value
            .get("fail_closed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        policy: value
            .pointer("/policy/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        request_id: value
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        index: value.get("index").and_then(Value::as_u64),
        violated_rule_ids: strings("violated_rule_ids"),
        undetermined_variables: strings("undetermined_variables"),
        bundle: value
            .pointer("/proof/bundle")
            .and_then(Value::as_str)
            .map(str::to_owned),
        escalation_id: value
            .get("escalation_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        status_url: value
            .get("status_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
        escalation_status: None,
        decision,
        raw: value,
    })
}
