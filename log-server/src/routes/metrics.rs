//! `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]), which names every policy
//! and counts its decisions, so it is not public (issue 16 item 6). Two ways to serve it:
//!
//! - on the main listener (the default): with the metrics token (`metrics.token`, role
//!   [`crate::auth::Role::Metrics`]) or the admin token; no token or an unknown one is 401, an
//!   agent or auditor token 403 ([`with_token`]);
//! - on its own listener (`metrics_listen`): without a token, and the main listener answers
//!   `/metrics` 404 ([`router`] decides; [`crate::metrics_app`] is the second listener's app).
//!
//! The counters survive a restart either way (rebuilt from the log at start, [`crate::metrics`]).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::MetricsAuth;
use crate::config::Config;
use crate::AppState;

/// The `/metrics` route of the main listener: with a token, unless `metrics_listen` moves it to
/// its own listener (then none, and the main listener's fallback answers 404).
pub fn router(config: &Config) -> Router<AppState> {
    if config.metrics_listen.is_some() {
        Router::new()
    } else {
        Router::new().route("/metrics", get(with_token))
    }
}

/// The routes of the metrics listener (`metrics_listen`): `/metrics` without a token.
pub fn open_router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// `GET /metrics` on the main listener: the metrics or admin token ([`MetricsAuth`]).
pub async fn with_token(_: MetricsAuth, state: State<AppState>) -> Response {
    render(state).await
}

/// `GET /metrics`: Prometheus text.
pub async fn render(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(super::public::gauges(&state)),
    )
        .into_response()
}
