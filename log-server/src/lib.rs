//! `verdict-server`: the Verdict transparency log and check API, on axum, tokio and sled.
//!
//! Agents call `POST /v1/check` before acting. The server screens the action against the policy,
//! decides it with the checker pool (Z3, validity semantics), signs a receipt with the checker key,
//! sequences the receipt into an RFC 9162 log (C2SP tlog-tiles), and answers with the decision and
//! a proof bundle (C2SP tlog-proof). The raw action and its salt go to a private store readable
//! only with the auditor token. Public endpoints serve only the log.
//!
//! # Layers
//!
//! The modules form layers; each imports only from the layers below it (no cycles):
//!
//! ```text
//! main.rs (binary)        CLI: serve, keygen, info, fill
//!   |
//! lib.rs                  AppState, start() (open keys, store, log, policies), app() (router)
//!   |
//! routes/                 thin HTTP adapters: extract, call the log or a service, map errors
//!   |   auth, error         bearer tokens (extractors); ApiError, the one HTTP error boundary
//!   |   openapi, serve      the OpenAPI document; the accept loop (header-read timeout)
//!   |
//! service/                use cases without axum: check and screen, logging and replaying a
//!   |                     decision, the request-id window, private records, the policy registry,
//!   |                     escalations, the evidence-package reads (period, records)
//!   |   metrics             counters and histograms (prometheus-client), rebuilt from the log
//!   |
//! log/                    the Log handle, the sequencer thread, extending the tree (tiles.rs),
//!   |                     the checkpoint lock (lock.rs, spec/checkpoint-lock.md), the entry
//!   |                     clock (clock.rs: times follow log order), witnesses,
//!   |                     the frontend/integrator roles on a shared store (sequencer/shared.rs),
//!   |                     batch proofs, reads and proofs from tiles, LogError;
//!   |                     log::check, the whole-log checker (feature `testing`)
//!   |
//! storage/                the Storage trait and its contract; sled.rs (+ files.rs, immutable
//!                         full tile files); postgres.rs (+ several frontends, shared.rs);
//!                         cache.rs (bounded tile cache); mem.rs, the fault-injecting in-memory
//!                         backend (feature `testing`)
//!
//! config, keys            configuration (figment: TOML file + VERDICT_* environment) and key
//!                         and token files, used by start() and the binary
//! ```
//!
//! Main pieces:
//! - [`app`]: the router (every route, middleware and the error boundary);
//! - [`start`]: open the data directory (keys, sled store, policies) and build the [`AppState`];
//! - [`config::Config`]: the configuration reference;
//! - [`error::ApiError`]: the only place that chooses status codes;
//! - [`service`]: the check use case and the other use cases;
//! - [`log::Log`]: the sequencer and log (spec `spec/tiles.md`, `spec/proof-bundle.md`);
//! - [`storage::Storage`]: the storage contract.
//!
//! The operator guide is `docs/operator-guide.md`; the API is described by `GET /openapi.json`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = verdict_log_server::config::Config::default();
//! let started = verdict_log_server::start(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let app = verdict_log_server::app(started.state.clone());
//! let options = verdict_log_server::serve::ServeOptions::from_config(&config);
//! verdict_log_server::serve::serve(listener, app, options, std::future::pending()).await;
//! started.state.log.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// The OpenAPI document (`openapi.rs`) is one large `serde_json::json!` literal.
#![recursion_limit = "256"]

pub mod at_rest;
pub mod auth;
pub mod config;
pub mod error;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod service;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use verdict_checker::CheckerPool;
use verdict_core::note::{Signer, Verifier};

use crate::auth::Tokens;
use crate::config::Config;
use crate::keys::Keys;
use crate::log::{Log, LogConfig};
use crate::metrics::Metrics;
use crate::service::policies::PolicyRegistry;
use crate::service::request_ids::RequestIds;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct StateInner {
    /// The log.
    pub log: Log,
    /// The checker threads.
    pub pool: CheckerPool,
    /// The checker (receipt) key.
    pub checker_key: Signer,
    /// Verifier of the log key.
    pub log_verifier: Verifier,
    /// Verifier of the checker key.
    pub checker_verifier: Verifier,
    /// Registered policies.
    pub policies: PolicyRegistry,
    /// API tokens.
    pub tokens: Tokens,
    /// Metrics.
    pub metrics: Metrics,
    /// Request ids seen recently (replay detection).
    pub request_ids: RequestIds,
    /// Escalations (spec `approval.md`).
    pub escalations: service::escalations::Escalations,
    /// The configuration the server runs with.
    pub config: Config,
    /// The witnesses checkpoints are pushed to, and the cosigned checkpoints collected.
    pub witnesses: log::witness::Witnesses,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.inner
    }
}

impl AppState {
    /// Wrap the parts.
    pub fn new(inner: StateInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The parts the use cases of [`service`] work with.
    pub fn service(&self) -> service::Context<'_> {
        service::Context {
            log: &self.log,
            pool: &self.pool,
            checker_key: &self.checker_key,
            policies: &self.policies,
            metrics: &self.metrics,
            request_ids: &self.request_ids,
            escalations: &self.escalations,
        }
    }
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Key or token files.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The store or the log.
    #[error("log: {0}")]
    Log(String),
    /// The store is damaged or does not extend the checkpoint lock: the server refuses to start
    /// rather than serve wrong data or fork the log (`verdict-server` exit code 3; see the
    /// operator guide, "Start-up refused").
    #[error("refusing to start: {0}")]
    Refused(#[source] log::LogError),
    /// Policies.
    #[error("policies: {0}")]
    Policies(#[from] service::policies::RegistryError),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// [`StartError::Refused`] for integrity errors ([`log::LogError::is_integrity`]), otherwise
    /// [`StartError::Log`].
    pub fn from_log(error: log::LogError) -> Self {
        if error.is_integrity() {
            Self::Refused(error)
        } else {
            Self::Log(error.to_string())
        }
    }
}

/// A started server: the state and the keys (for printing).
#[derive(Debug)]
pub struct Started {
    /// State for [`app`].
    pub state: AppState,
    /// Paths and key material.
    pub keys: Keys,
    /// Names of the policies loaded from the policies directory.
    pub loaded_policies: Vec<String>,
}

/// Open (or create) the data directory of `config`: keys and tokens, the sled store, the log
/// (recovering from a crash), the checker pool and the policies.
///
/// # Errors
/// [`StartError`].
pub async fn start(config: &Config) -> Result<Started, StartError> {
    // Files at rest (issue 13, `at_rest`): nothing this process creates is readable by group or
    // others, whatever umask it was started with.
    at_rest::restrict_umask();
    let keys = keys::load_or_create(
        &config.data_dir,
        &config.default_origin(),
        config.origin.is_some(),
    )?;
    let storage =
        open_store(config).map_err(|e| StartError::from_log(log::LogError::Storage(e)))?;
    let log_key = keys.log.clone();
    let log = Log::open(
        storage,
        log_key,
        LogConfig {
            batch_max_entries: config.batch_max_entries,
            batch_max_age: Duration::from_millis(config.batch_max_age_ms),
            max_pending: config.max_pending,
            checkpoint_lock: Some(config.checkpoint_lock_path()),
            ..LogConfig::new(keys.log.name())
        },
    )
    .await
    .map_err(StartError::from_log)?;
    // Entry times never decrease in log order (spec `evidence-package.md` §3.1): the entry clock
    // starts at the time of the last logged entry, whatever the wall clock says now.
    if let Some(last) = log
        .latest_checkpoint()
        .and_then(|cp| cp.checkpoint.size.0.checked_sub(1))
    {
        let entry = log
            .entry(verdict_core::LeafIndex(last))
            .map_err(StartError::from_log)?;
        if let Some(time_ms) = entry
            .as_deref()
            .and_then(verdict_core::package::entry_time_ms)
        {
            log.raise_clock(time_ms);
        }
    }

    // Registrations are log entries (spec `policy-statement.md`): reload them from the store,
    // then register the policies directory through the same path, then migrate the loose files
    // of earlier versions. Start-up registrations are integrated before the server serves.
    let policies = PolicyRegistry::new(keys.policy_salt);
    let restored = policies.restore(&log)?;
    tracing::info!(restored, "policy registrations restored from the store");
    let ctx = service::policies::RegisterContext {
        log: &log,
        checker_key: &keys.checker,
        analysis_timeout: config.analysis_timeout(),
    };
    let loaded_policies = if config.policies_dir.is_dir() {
        policies.register_dir(ctx, &config.policies_dir).await?
    } else {
        tracing::warn!(dir = %config.policies_dir.display(), "policies directory not found; starting with none");
        Vec::new()
    };
    let migrated = policies
        .migrate_loose_files(ctx, &config.data_dir.join("policies"))
        .await?;
    if migrated > 0 {
        tracing::warn!(
            migrated,
            "registered {migrated} policies from the loose files of {} (they are now in the store and the log; the files are no longer read)",
            config.data_dir.join("policies").display()
        );
    }
    // Bring files written earlier (an older version, a looser umask) to 0700/0600.
    restrict_modes(config)?;
    let staged = log.stats().staged_size;
    if staged > 0 {
        log.wait_integrated(verdict_core::LeafIndex(staged - 1))
            .await
            .map_err(|e| StartError::Log(e.to_string()))?;
    }

    let request_ids = RequestIds::for_log(config.request_id_window, &log);
    let restored = request_ids
        .restore(&log)
        .map_err(|e| StartError::Log(e.to_string()))?;
    tracing::info!(restored, "request ids restored from the private records");

    let mut specs = Vec::with_capacity(config.witness.len());
    for w in &config.witness {
        let key = verdict_core::cosignature::CosignerKey::parse(&w.vkey)
            .map_err(|e| StartError::Log(format!("witness {}: {e}", w.name)))?;
        specs.push(log::witness::WitnessSpec {
            name: w.name.clone(),
            key,
            url: w.url.clone(),
        });
    }
    let witnesses = log::witness::Witnesses::start(
        log.clone(),
        specs,
        config.witness_quorum(),
        config.witness_timeout(),
    )
    .map_err(|e| StartError::Log(e.to_string()))?;

    let checker_key = keys.checker.clone();
    let state = AppState::new(StateInner {
        log,
        pool: CheckerPool::new(config.checker_threads(), config.check_timeout()),
        log_verifier: keys.log.verifier(),
        checker_verifier: keys.checker.verifier(),
        checker_key,
        policies,
        tokens: Tokens::of_keys(&keys),
        metrics: Metrics::default(),
        request_ids,
        escalations: service::escalations::Escalations::new(std::time::Duration::from_secs(
            config.escalation_ttl_s,
        )),
        config: config.clone(),
        witnesses,
    });
    let counting = state.clone();
    let counted =
        tokio::task::spawn_blocking(move || service::decision::count_logged(counting.service()))
            .await
            .map_err(|e| StartError::Log(e.to_string()))?
            .map_err(|e| StartError::Log(e.to_string()))?;
    tracing::info!(
        entries = counted,
        "decision counters rebuilt from {counted} log entries"
    );
    if state.log.storage().shared().is_some() {
        refresh_policies(&state, Duration::from_millis(config.postgres_poll_ms));
    }
    Ok(Started {
        state,
        keys,
        loaded_policies,
    })
}

/// Several frontends on one store (spec `storage-postgres.md` §5.4): load the registrations
/// other frontends made, every `every`, so that a new policy or version is current here within
/// that bound. The task holds the state weakly and ends with it.
fn refresh_policies(state: &AppState, every: Duration) {
    let weak = Arc::downgrade(&state.inner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let state = AppState { inner };
            let done =
                tokio::task::spawn_blocking(move || state.policies.refresh(&state.log)).await;
            match done {
                Ok(Ok(0)) => {}
                Ok(Ok(added)) => {
                    tracing::info!(added, "policy registrations of other frontends loaded");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "loading other frontends' registrations"),
                Err(e) => tracing::warn!(error = %e, "policy refresh task"),
            }
        }
    });
}

/// Set the at-rest modes ([`at_rest::restrict_tree`]) on the data directory and on the
/// checkpoint lock (which may live on another volume).
fn restrict_modes(config: &Config) -> Result<(), StartError> {
    let error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StartError::DataDir { path, source }
    };
    let changed = at_rest::restrict_tree(&config.data_dir).map_err(error(&config.data_dir))?;
    let lock = config.checkpoint_lock_path();
    if lock.is_file() && !lock.starts_with(&config.data_dir) {
        at_rest::private_file(&lock).map_err(error(&lock))?;
    }
    if changed > 0 {
        tracing::warn!(
            changed,
            "set mode 0700/0600 on {changed} entries of the data directory {}",
            config.data_dir.display()
        );
    }
    Ok(())
}

/// Open the store `config` names: sled in `<data_dir>/store` (the default), or PostgreSQL at
/// `postgres_url` (`storage = "postgres"`, schema created or migrated on open).
///
/// # Errors
/// [`storage::StorageError`] when the store cannot be opened (sled: locked or damaged;
/// PostgreSQL: unreachable within the connect timeout, or a schema newer than this server).
pub fn open_store(config: &Config) -> Result<Arc<dyn storage::Storage>, storage::StorageError> {
    match config.postgres() {
        Some(pg) => Ok(Arc::new(storage::postgres::PostgresStorage::open(&pg)?)),
        None => Ok(Arc::new(storage::sled::SledStorage::open(
            &config.data_dir.join("store"),
        )?)),
    }
}

/// The router: every route of [`routes`], the error boundary and the tower-http middleware
/// (body limit, timeout, compression, tracing, panic catching).
pub fn app(state: AppState) -> Router {
    let routes = routes::router().merge(routes::metrics::router(&state.config));
    layered(routes, state)
}

/// The app of the metrics listener (`metrics_listen`): `GET /metrics` without a token, 404
/// elsewhere, with the middleware of [`app`] (issue 16 item 6, [`routes::metrics`]).
pub fn metrics_app(state: AppState) -> Router {
    layered(routes::metrics::open_router(), state)
}

/// `routes` with the 404 fallback, the state, and the middleware and error boundary of [`app`].
fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let timeout = state.config.request_timeout();
    // Layers wrap outwards: the body limit and timeout sit inside `normalize_response`, so
    // their bare 413/503 answers are rewritten into the `{error, message}` shape.
    routes
        .fallback(routes::not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::map_response(move |response| {
            error::normalize_response(response, limit)
        }))
        .layer(CompressionLayer::new())
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
}
