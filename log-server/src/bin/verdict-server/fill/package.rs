//! `verdict-server fill --package`: grow a log that `verdict audit export` can export and
//! `verdict audit verify-package` accepts (issue 16, "Scale"; spec `evidence-package.md`).
//!
//! Unlike the fast mode of [`super::run`], nothing here writes a log entry itself. The data
//! directory is opened by [`verdict_log_server::start`], exactly as `serve` opens it (keys and
//! tokens, store, log with its checkpoint lock and entry clock, policy registry, checker pool,
//! request-id window, escalations), and every entry goes through a use case of
//! [`verdict_log_server::service`]:
//!
//! 1. one policy statement: `testdata/policies/customer-data-egress.toml` registered through
//!    [`PolicyRegistry::register`](verdict_log_server::service::policies::PolicyRegistry::register),
//!    the path of `POST /v1/policies` (statement entry and policy record; nothing new when the
//!    directory has it already), so the `policy_registration` order of `evidence-package.md` §9
//!    holds;
//! 2. `--entries` decisions through [`check::check`] and [`check::screen`], the paths of
//!    `POST /v1/check` and `POST /v1/screen` with `?wait=false`: decided by the checker pool
//!    (Z3), receipts signed by the directory's checker key, each with the private record the
//!    server writes (action with token values as their presence, canonical action, salt,
//!    request id, agent, policy commitment), times stamped by the entry clock (non-decreasing
//!    in log order, `evidence-package.md` §3.1), escalations opened for `escalate` decisions.
//!
//! The traffic cycles through [`Traffic`]: allow, deny and escalate checks, checks of
//! out-of-scope actions (`not-applicable`), and `in-scope` and `not-applicable` screens, so every
//! entry kind of a package is present. Actions differ by a counter (record counts), request ids
//! are generated as the server generates them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_core::LeafIndex;
use verdict_log_server::config::Config;
use verdict_log_server::service::check::{self, CheckBody, ScreenBody};
use verdict_log_server::service::policies::RegisterContext;
use verdict_log_server::service::ServiceError;
use verdict_log_server::AppState;

use super::{rss_kib, FillArgs, BENCH_ORIGIN};
use crate::{CmdResult, Context as _, Failure};

/// The policy every filled decision is made under (the ISO/IEC 42001 worked example).
pub const POLICY_TEXT: &str =
    include_str!("../../../../../testdata/policies/customer-data-egress.toml");
/// Its name.
pub const POLICY_NAME: &str = "customer-data-egress";
/// Registrant of the fill's policy statement and agent name of its decisions.
pub const FILL_AGENT: &str = "bench-fill";

/// One filled request: which use case, and the decision the policy gives its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// A check of an action every rule allows.
    Allow,
    /// A check of an action over the session record cap.
    Deny,
    /// A check of an external transfer that leaves the authorization token unbound.
    Escalate,
    /// A check of an action that names no policy variable (logged as a `not-applicable` screen).
    CheckNotApplicable,
    /// A screen of an action in scope.
    ScreenInScope,
    /// A screen of an action out of scope.
    ScreenNotApplicable,
}

impl Traffic {
    /// The request number `n`'s kind: of every 10, 4 allow, 2 deny, 1 escalate, 1 out-of-scope
    /// check, 1 in-scope and 1 out-of-scope screen.
    pub fn of(n: u64) -> Self {
        match n % 10 {
            0..=3 => Self::Allow,
            4 | 5 => Self::Deny,
            6 => Self::Escalate,
            7 => Self::CheckNotApplicable,
            8 => Self::ScreenInScope,
            _ => Self::ScreenNotApplicable,
        }
    }

    /// The action of request `n` (distinct for distinct `n` of the same kind).
    pub fn action(self, n: u64) -> serde_json::Value {
        let small = n % 10_000;
        match self {
            Self::Allow => serde_json::json!({
                "destination": "internal", "classification": "public", "record_count": small,
                "transfers_in_session": 0, "is_privileged": false
            }),
            Self::Deny => serde_json::json!({
                "destination": "internal", "classification": "public",
                "record_count": 10_001 + n % 900_000, "transfers_in_session": 0,
                "is_privileged": false
            }),
            Self::Escalate => serde_json::json!({"destination": "external", "record_count": small}),
            Self::CheckNotApplicable => serde_json::json!({"colour": "red", "n": n}),
            Self::ScreenInScope => {
                serde_json::json!({"destination": "internal", "record_count": small})
            }
            Self::ScreenNotApplicable => serde_json::json!({"colour": "blue", "n": n}),
        }
    }

    /// The decision the policy gives [`Self::action`].
    pub fn decision(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Escalate => "escalate",
            Self::CheckNotApplicable | Self::ScreenNotApplicable => "not-applicable",
            Self::ScreenInScope => "in-scope",
        }
    }
}

/// Log request `n` through the service, retrying while the log pushes back. Returns the
/// decision logged.
async fn request(state: &AppState, n: u64) -> Result<String, ServiceError> {
    let traffic = Traffic::of(n);
    let raw = || {
        serde_json::value::RawValue::from_string(traffic.action(n).to_string())
            .map_err(ServiceError::internal)
    };
    loop {
        let answer = match traffic {
            Traffic::ScreenInScope | Traffic::ScreenNotApplicable => {
                let body = ScreenBody {
                    policy: POLICY_NAME.to_owned(),
                    action: raw()?,
                    request_id: None,
                };
                check::screen(state.service(), FILL_AGENT, body, false)
                    .await
                    .map(|s| match s {
                        check::Screened::InScope { logged, .. }
                        | check::Screened::Logged(logged) => logged.body.decision,
                    })
            }
            _ => {
                let body = CheckBody {
                    policy: POLICY_NAME.to_owned(),
                    action: raw()?,
                    request_id: None,
                    approvals: Vec::new(),
                    salt: None,
                };
                check::check(state.service(), FILL_AGENT, body, false)
                    .await
                    .map(|l| l.body.decision)
            }
        };
        match answer {
            Ok(decision) => return Ok(decision.to_owned()),
            Err(ServiceError::Backpressure { .. }) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Open `config`'s data directory as the server does, register the policy, and log
/// `args.entries` decisions (see the module docs).
///
/// # Errors
/// The directory cannot be opened (a server holds it, or it is not a benchmark directory: exit
/// code 4), the registration fails, or a request fails with anything but backpressure, or
/// gets another decision than its traffic kind should.
pub async fn run(args: &FillArgs, config: &Config) -> CmdResult {
    super::prepare_bench_dir(&config.data_dir)?;
    let mut config = config.clone();
    config.origin = Some(BENCH_ORIGIN.to_owned());
    // The fill's only policy is the one it registers; a policies directory would add others.
    config.policies_dir = config.data_dir.join("fill-registers-its-own-policy");
    config.batch_max_entries = args.batch.max(1);
    config.max_pending = config.max_pending.max(args.concurrency);
    let started = verdict_log_server::start(&config)
        .await
        .context("cannot open the data directory")?;
    let state = started.state;
    let registered = state
        .policies
        .register(
            RegisterContext {
                log: &state.log,
                checker_key: &state.checker_key,
                analysis_timeout: config.analysis_timeout(),
            },
            POLICY_TEXT,
            FILL_AGENT,
            false,
        )
        .await
        .context("cannot register the policy")?;
    let info = &registered.registered().info;
    println!(
        "fill --package: policy {} {} ({}) at index {}; {} decisions into {} ({} submitters, batches of {})",
        info.name,
        info.version,
        info.commitment,
        info.index,
        args.entries,
        config.data_dir.display(),
        args.concurrency,
        config.batch_max_entries
    );
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency.max(1));
    for _ in 0..args.concurrency.max(1) {
        let (state, next, done) = (state.clone(), Arc::clone(&next), Arc::clone(&done));
        let total = args.entries;
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), Failure>(());
                }
                let decision = request(&state, n)
                    .await
                    .map_err(|e| Failure(format!("request {n}: {e}"), 1))?;
                let expected = Traffic::of(n).decision();
                if decision != expected {
                    return Err(Failure(
                        format!("request {n}: decided {decision}, expected {expected}"),
                        1,
                    ));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let reporter = super::progress(
        state.log.clone(),
        Arc::clone(&done),
        args.entries,
        args.report_every,
        start,
    );
    for task in tasks {
        task.await.context("submitter panicked")??;
    }
    reporter.abort();
    let stats = state.log.stats();
    if let Some(last) = stats.staged_size.checked_sub(1) {
        state
            .log
            .wait_integrated(LeafIndex(last))
            .await
            .context("integration")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let added = done.load(Ordering::Relaxed);
    let stats = state.log.stats();
    state.log.shutdown().await.context("log shutdown")?;
    println!(
        "fill --package: logged {added} decisions in {elapsed:.1} s ({:.0}/s); tree size {}; RSS {} KiB",
        added as f64 / elapsed,
        stats.tree_size,
        rss_kib().unwrap_or(0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_recurs_and_actions_differ() {
        let kinds: std::collections::BTreeSet<&str> =
            (0..10).map(|n| Traffic::of(n).decision()).collect();
        assert_eq!(
            kinds,
            ["allow", "deny", "escalate", "in-scope", "not-applicable"]
                .into_iter()
                .collect()
        );
        assert_eq!(Traffic::of(3), Traffic::of(13));
        assert_ne!(Traffic::Allow.action(3), Traffic::Allow.action(13));
        assert_ne!(
            Traffic::ScreenNotApplicable.action(9),
            Traffic::ScreenNotApplicable.action(19)
        );
    }

    /// The decisions [`Traffic::decision`] names are the checker's, on the embedded policy.
    #[test]
    fn the_policy_decides_each_kind_as_named() {
        let policy =
            verdict_checker::compile(POLICY_TEXT, verdict_core::receipt::Salt([7; 32])).unwrap();
        assert_eq!(policy.name(), POLICY_NAME);
        let mut checker = verdict_checker::Checker::new(&policy, Duration::from_secs(10)).unwrap();
        for n in 0..20 {
            let traffic = Traffic::of(n);
            let action = traffic.action(n);
            let screen = verdict_checker::screen(&policy, &action).unwrap();
            let decided = match traffic {
                Traffic::CheckNotApplicable | Traffic::ScreenNotApplicable => {
                    assert!(!screen.should_check, "{action}");
                    "not-applicable"
                }
                Traffic::ScreenInScope => {
                    assert!(screen.should_check, "{action}");
                    "in-scope"
                }
                _ => {
                    assert!(screen.should_check, "{action}");
                    let request = verdict_checker::CheckRequest {
                        action: action.clone(),
                        request_id: format!("r{n}"),
                        salt: None,
                        approvals: Vec::new(),
                    };
                    checker.check(&request).unwrap().decision.as_str()
                }
            };
            assert_eq!(decided, traffic.decision(), "{action}");
        }
    }
}
