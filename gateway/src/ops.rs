//! Operations: the HTTP router (`/mcp`, `/health`, `/metrics`) and the gateway's counters in
//! the Prometheus text format (`docs/gateway-guide.md` §6).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::proxy::GatewayHandler;

/// Bound on one HTTP request body at `/mcp` (4 MiB). Arguments beyond
/// `max_argument_bytes` but within this bound get a JSON-RPC error; beyond it, 413.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Outcome labels of `verdict_gateway_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Checked and allowed; forwarded.
    Allow,
    /// Checked and denied.
    Deny,
    /// Checked and escalated (not forwarded).
    Escalate,
    /// Unmapped tool screened as not-applicable; forwarded.
    NotApplicable,
    /// Unmapped tool refused without a check.
    Unmapped,
    /// No decision (server unreachable or erroring): refused.
    Refused,
    /// Bad input: JSON-RPC error, nothing checked.
    Invalid,
}

const OUTCOMES: [(Outcome, &str); 7] = [
    (Outcome::Allow, "allow"),
    (Outcome::Deny, "deny"),
    (Outcome::Escalate, "escalate"),
    (Outcome::NotApplicable, "not-applicable"),
    (Outcome::Unmapped, "unmapped-denied"),
    (Outcome::Refused, "refused"),
    (Outcome::Invalid, "invalid"),
];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: [AtomicU64; 7],
    forwarded: AtomicU64,
    upstream_errors: AtomicU64,
    check_micros_sum: AtomicU64,
    check_count: AtomicU64,
}

impl Metrics {
    /// Count one call with its outcome.
    pub fn call(&self, outcome: Outcome) {
        let i = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or(0);
        if let Some(c) = self.calls.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one call forwarded to an upstream, and whether the upstream failed.
    pub fn forwarded(&self, upstream_failed: bool) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        if upstream_failed {
            self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Record the latency of one round trip to verdict-server.
    pub fn check_latency(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.check_micros_sum.fetch_add(micros, Ordering::Relaxed);
        self.check_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP verdict_gateway_calls_total Tool calls by outcome.\n# TYPE verdict_gateway_calls_total counter\n",
        );
        for ((_, label), c) in OUTCOMES.iter().zip(self.calls.iter()) {
            out.push_str(&format!(
                "verdict_gateway_calls_total{{outcome=\"{label}\"}} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        let sum = self.check_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "# HELP verdict_gateway_forwarded_total Tool calls forwarded to an upstream.\n\
             # TYPE verdict_gateway_forwarded_total counter\n\
             verdict_gateway_forwarded_total {}\n\
             # HELP verdict_gateway_upstream_errors_total Forwarded calls whose upstream request failed.\n\
             # TYPE verdict_gateway_upstream_errors_total counter\n\
             verdict_gateway_upstream_errors_total {}\n\
             # HELP verdict_gateway_check_seconds Round trips to verdict-server.\n\
             # TYPE verdict_gateway_check_seconds summary\n\
             verdict_gateway_check_seconds_sum {sum}\n\
             verdict_gateway_check_seconds_count {}\n",
            self.forwarded.load(Ordering::Relaxed),
            self.upstream_errors.load(Ordering::Relaxed),
            self.check_count.load(Ordering::Relaxed),
        ));
        out
    }
}

/// The HTTP app: MCP over Streamable HTTP at `/mcp`, `/health` and `/metrics`.
pub fn app(handler: GatewayHandler, ct: CancellationToken) -> Router {
    let factory = handler.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(factory.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(ct),
    );
    let mcp = tower::Layer::layer(&axum::middleware::from_fn(json_rpc_errors), mcp);
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .with_state(handler)
}

/// Bad JSON-RPC at the HTTP layer gets a JSON-RPC error object: a POST body that is not JSON is
/// a parse error (-32700); any other 4xx the SDK answers with plain text becomes an
/// invalid-request error (-32600) with the SDK's message, keeping the status and the request id
/// when the body has one.
async fn json_rpc_errors(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                "request body too large",
            )
        }
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
    let id = match &parsed {
        Ok(v) => v.get("id").cloned().unwrap_or(Value::Null),
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32700,
                &format!("parse error: {e}"),
            );
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !response.status().is_client_error() || is_json {
        return response;
    }
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&text).replace('\n', " ");
    rpc_error(
        status,
        id,
        -32600,
        &format!("invalid request: {}", message.trim()),
    )
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

async fn health(State(h): State<GatewayHandler>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "upstreams": h.gateway().upstream_names(),
        "tools": h.gateway().tool_count(),
    });
    (StatusCode::OK, axum::Json(body))
}

async fn metrics(State(h): State<GatewayHandler>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.gateway().metrics.render(),
    )
}
