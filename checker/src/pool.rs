//! [`CheckerPool`]: dedicated OS threads with warm per-policy [`Checker`]s, callable from async
//! code (`spec/decision-semantics.md` §7).
//!
//! Jobs go through one channel shared by the workers; each reply comes back on a
//! `tokio::sync::oneshot`. The pool's timeout bounds each whole decision from the moment the
//! job is submitted (time spent queued counts): at the deadline the running solver call is
//! interrupted and the decision fails closed (`spec/decision-semantics.md` §5). A job whose
//! caller has gone (the reply receiver dropped, e.g. a request timed out) is not started, and a
//! running one is cut off at its next step, so no CPU is spent on answers nobody waits for. Every worker keeps a small LRU of warm checkers keyed by policy
//! commitment, so Z3 objects are created, used and dropped on that worker's thread only.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use verdict_core::note::KeyId;
use verdict_core::Hash;

use crate::compile::CompiledPolicy;
use crate::decide::{CheckRequest, Checker, Outcome};
use crate::error::CheckError;

/// Warm checkers kept per worker thread.
pub const WARM_PER_THREAD: usize = 8;

struct Job {
    policy: Arc<CompiledPolicy>,
    request: CheckRequest,
    /// Approvers verified by the caller (escalation approvals), or `None` for `request.approvals`.
    approvers: Option<Vec<KeyId>>,
    deadline: Instant,
    reply: oneshot::Sender<Result<Outcome, CheckError>>,
}

/// A pool of checker threads.
#[derive(Debug)]
pub struct CheckerPool {
    sender: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl CheckerPool {
    /// Start `threads` workers (at least one); `timeout` bounds each whole decision, counted from
    /// submission.
    pub fn new(threads: usize, timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..threads.max(1))
            .filter_map(|n| {
                let rx = Arc::clone(&receiver);
                std::thread::Builder::new()
                    .name(format!("verdict-checker-{n}"))
                    .stack_size(8 << 20)
                    .spawn(move || worker(&rx, timeout))
                    .ok()
            })
            .collect();
        Self {
            sender: Some(sender),
            workers,
            timeout,
        }
    }

    /// Number of running worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Check one action on a worker thread, decided within the pool's timeout (or failed
    /// closed). Dropping the returned future cancels the job.
    ///
    /// # Errors
    /// The [`CheckError`] of [`Checker::check`], or [`CheckError::PoolUnavailable`].
    pub async fn check(
        &self,
        policy: Arc<CompiledPolicy>,
        request: CheckRequest,
    ) -> Result<Outcome, CheckError> {
        self.submit(policy, request, None).await
    }

    /// Check one action with approvers the caller has verified ([`Checker::check_approved_until`]):
    /// how the server decides an escalation again once approvals arrive (`spec/approval.md` §4).
    ///
    /// # Errors
    /// As [`Self::check`].
    pub async fn check_approved(
        &self,
        policy: Arc<CompiledPolicy>,
        request: CheckRequest,
        approvers: Vec<KeyId>,
    ) -> Result<Outcome, CheckError> {
        self.submit(policy, request, Some(approvers)).await
    }

    async fn submit(
        &self,
        policy: Arc<CompiledPolicy>,
        request: CheckRequest,
        approvers: Option<Vec<KeyId>>,
    ) -> Result<Outcome, CheckError> {
        let (reply, rx) = oneshot::channel();
        let sender = self.sender.as_ref().ok_or(CheckError::PoolUnavailable)?;
        sender
            .send(Job {
                policy,
                request,
                approvers,
                deadline: Instant::now() + self.timeout,
                reply,
            })
            .map_err(|_| CheckError::PoolUnavailable)?;
        rx.await.map_err(|_| CheckError::PoolUnavailable)?
    }

    /// Screen an action (cheap; runs on the caller's thread).
    ///
    /// # Errors
    /// As [`crate::screen::screen`].
    pub fn screen(
        &self,
        policy: &CompiledPolicy,
        action: &serde_json::Value,
    ) -> Result<crate::screen::Screen, CheckError> {
        crate::screen::screen(policy, action)
    }
}

impl Drop for CheckerPool {
    fn drop(&mut self) {
        self.sender.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, timeout: Duration) {
    let mut warm: Vec<(Hash, Checker)> = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if job.reply.is_closed() {
            // The caller has gone: do no work for it.
            continue;
        }
        let key = job.policy.commitment();
        let result = match warm.iter().position(|(k, _)| *k == key) {
            Some(pos) => {
                let entry = warm.remove(pos);
                warm.insert(0, entry);
                Ok(())
            }
            None => Checker::new(&job.policy, timeout).map(|c| {
                warm.insert(0, (key, c));
                warm.truncate(WARM_PER_THREAD);
            }),
        };
        let gone = || job.reply.is_closed();
        let outcome = result.and_then(|()| match warm.first_mut() {
            Some((_, checker)) => match &job.approvers {
                None => checker.check_until(&job.request, job.deadline, Some(&gone)),
                Some(ids) => {
                    checker.check_approved_until(&job.request, ids, job.deadline, Some(&gone))
                }
            },
            None => Err(CheckError::PoolUnavailable),
        });
        let _ = job.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use verdict_core::receipt::{Decision, Salt};

    use super::*;

    const P: &str = r#"
name = "cap"
version = "1"
[variables]
n = { type = "int", min = 0 }
[[rules]]
id = "cap"
text = "n at most 10"
require = 'n <= 10'
effect = "deny"
"#;

    fn req(n: i64) -> CheckRequest {
        CheckRequest {
            action: json!({ "n": n }),
            request_id: format!("r{n}"),
            salt: Some(Salt([1; 32])),
            approvals: vec![],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_on_worker_threads() {
        let pool = Arc::new(CheckerPool::new(2, Duration::from_secs(5)));
        assert_eq!(pool.threads(), 2);
        let a = Arc::new(crate::compile(P, Salt([0; 32])).unwrap());
        let b = Arc::new(crate::compile(&P.replace("<= 10", "<= 20"), Salt([0; 32])).unwrap());
        let mut tasks = Vec::new();
        for n in 0..40i64 {
            let pool = Arc::clone(&pool);
            let policy = if n % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tasks.push(tokio::spawn(async move {
                let limit = if n % 2 == 0 { 10 } else { 20 };
                let o = pool.check(policy, req(n)).await.unwrap();
                let want = if n <= limit {
                    Decision::Allow
                } else {
                    Decision::Deny
                };
                assert_eq!(o.decision, want, "n = {n}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Errors come back as errors, and the pool keeps working.
        let bad = CheckRequest {
            action: json!({ "n": "x" }),
            ..req(1)
        };
        assert!(matches!(
            pool.check(Arc::clone(&a), bad).await,
            Err(CheckError::WrongType { .. })
        ));
        assert_eq!(
            pool.check(a, req(3)).await.unwrap().decision,
            Decision::Allow
        );
        let s = pool.screen(&b, &json!({"n": 1, "m": 2})).unwrap();
        assert!(s.should_check);
        assert_eq!(s.unknown_keys, ["m"]);
    }

    /// The pool's timeout bounds each whole decision: a decision the solver cannot finish in
    /// time comes back fail-closed at the deadline, and the worker is free again right after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timed_out_decision_fails_closed_and_frees_the_worker() {
        let mut src = String::from("name = \"chain\"\nversion = \"1\"\n[variables]\n");
        for i in 0..300 {
            src.push_str(&format!(
                "v{i} = {{ type = \"int\", min = 0, max = 1000000 }}\n"
            ));
        }
        for i in 1..300 {
            src.push_str(&format!(
                "[[rules]]\nid = \"l{i}\"\ntext = \"t\"\nrequire = 'v{} < v{i}'\neffect = \"deny\"\n",
                i - 1
            ));
        }
        let chain = Arc::new(crate::compile(&src, Salt([0; 32])).unwrap());
        let pool = CheckerPool::new(1, Duration::from_millis(200));
        let t = std::time::Instant::now();
        let o = pool
            .check(
                Arc::clone(&chain),
                CheckRequest {
                    action: json!({"v0": 1}),
                    ..req(0)
                },
            )
            .await
            .unwrap();
        assert_eq!((o.decision, o.fail_closed), (Decision::Deny, true));
        // The worker answers the next job at once: nothing keeps running behind the answer.
        let a = Arc::new(crate::compile(P, Salt([0; 32])).unwrap());
        let o = pool.check(a, req(3)).await.unwrap();
        assert_eq!((o.decision, o.fail_closed), (Decision::Allow, false));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
