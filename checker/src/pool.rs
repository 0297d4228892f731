//! [`CheckerPool`]: dedicated OS threads with warm per-policy [`Checker`]s, callable from async
//! code (`spec/decision-semantics.md` §7).
//!
//! Jobs go through one channel shared by the workers; each reply comes back on a
//! `tokio::sync::oneshot`. Every worker keeps a small LRU of warm checkers keyed by policy
//! commitment, so Z3 objects are created, used and dropped on that worker's thread only.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;
use verdict_core::Hash;

use crate::compile::CompiledPolicy;
use crate::decide::{CheckRequest, Checker, Outcome};
use crate::error::CheckError;

/// Warm checkers kept per worker thread.
pub const WARM_PER_THREAD: usize = 8;

struct Job {
    policy: Arc<CompiledPolicy>,
    request: CheckRequest,
    reply: oneshot::Sender<Result<Outcome, CheckError>>,
}

/// A pool of checker threads.
#[derive(Debug)]
pub struct CheckerPool {
    sender: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl CheckerPool {
    /// Start `threads` workers (at least one) whose solvers use `timeout` per check call.
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
        }
    }

    /// Number of running worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Check one action on a worker thread.
    ///
    /// # Errors
    /// The [`CheckError`] of [`Checker::check`], or [`CheckError::PoolUnavailable`].
    pub async fn check(
        &self,
        policy: Arc<CompiledPolicy>,
        request: CheckRequest,
    ) -> Result<Outcome, CheckError> {
        let (reply, rx) = oneshot::channel();
        let sender = self.sender.as_ref().ok_or(CheckError::PoolUnavailable)?;
        sender
            .send(Job {
                policy,
                request,
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
        let outcome = result.and_then(|()| match warm.first_mut() {
            Some((_, checker)) => checker.check(&job.request),
            None => Err(CheckError::PoolUnavailable),
        });
        let _ = job.reply.send(outcome);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
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
}
