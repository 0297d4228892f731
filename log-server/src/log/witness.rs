//! The log side of witnessing (spec `spec/witness.md` §9; C2SP tlog-witness): push every new
//! checkpoint to the configured witnesses, collect their `cosignature/v1` lines, and publish the
//! latest checkpoint that a quorum of them cosigned.
//!
//! One tokio task (never the sequencer thread) runs *rounds*: it takes the latest published
//! checkpoint and asks every witness in parallel, each with a bounded per-request timeout, up to
//! [`ATTEMPTS`] attempts with doubling backoff, and a consistency proof from the size it last
//! knew for that witness (unknown at start: `old 0`, and the witness's `409` states its size, from
//! which the request is resent). All witnesses of a round see the same checkpoint, so their
//! cosignatures can add up to a quorum. A witness that failed a round is skipped until its
//! backoff (up to [`MAX_BACKOFF`]) expires, so a dead witness does not slow later rounds.
//!
//! **Alarm** (§9.3): a witness whose `409` states a size larger than the log's own latest
//! checkpoint, or that answers a same-size checkpoint with `409` (it cosigned another root at
//! that size, c2sp tlog-witness), has seen a tree this process never published: a fork, or this
//! log was restored from an old backup. The log halts ([`super::Log::halt`]: no new entries, no
//! new checkpoints), `/health` fails with the reason, and `tracing::error!` says why.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::cosignature::CosignerKey;
use verdict_core::note::{Note, NoteSignature};
use verdict_core::{LeafIndex, TreeSize};
use verdict_witness::client::{AddOutcome, ClientError, WitnessClient};

use super::{Log, LogError, SignedCheckpoint};

/// Attempts per witness and round (transport errors and refusals; `409` resends do not count).
pub const ATTEMPTS: u32 = 3;
/// Pause after the first failed attempt; doubled per attempt.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest pause before a failed witness is asked again in a later round.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// `409` resends per attempt (the witness's size may move while we resend).
const CONFLICT_RESENDS: u32 = 3;

/// One configured witness.
#[derive(Clone, Debug)]
pub struct WitnessSpec {
    /// Name used in logs and metrics (the key name is in `key`).
    pub name: String,
    /// Its cosigner (verifier) key.
    pub key: CosignerKey,
    /// Submission prefix, e.g. `http://127.0.0.1:7380`.
    pub url: String,
}

/// Errors of setting up the witness client.
#[derive(Debug, thiserror::Error)]
pub enum WitnessSetupError {
    /// The HTTP client of a witness could not be built.
    #[error("witness {name}: {source}")]
    Client {
        /// The witness.
        name: String,
        /// The error.
        #[source]
        source: ClientError,
    },
    /// More witnesses required than configured.
    #[error("witness quorum {quorum} exceeds the {count} configured witnesses")]
    Quorum {
        /// The quorum.
        quorum: usize,
        /// Configured witnesses.
        count: usize,
    },
}

/// A checkpoint cosigned by at least the quorum: the log's note with the witnesses' lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The signed note: log signature, then the cosignature lines (C2SP signed-note allows
    /// extra lines; verifiers ignore keys they do not know).
    pub note: Vec<u8>,
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// Names of the witnesses whose cosignatures it carries.
    pub witnesses: Vec<String>,
}

/// Per-witness state kept between rounds.
#[derive(Debug, Default)]
struct Known {
    /// The size the witness last stated or cosigned.
    size: Option<TreeSize>,
    /// The checkpoint it last cosigned and its lines.
    latest: Option<(Checkpoint, Vec<NoteSignature>)>,
    /// Failed rounds in a row, and when to ask again.
    failures: u32,
    retry_at: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    log: Log,
    clients: Vec<(String, WitnessClient)>,
    quorum: usize,
    timeout: Duration,
    known: Mutex<Vec<Known>>,
    cosigned: watch::Sender<Option<Cosigned>>,
    alarm: Mutex<Option<String>>,
}

/// The witnesses of a log: cheap to clone. Without witnesses (or with quorum 0) every method
/// answers at once and nothing is waited for.
#[derive(Clone, Debug)]
pub struct Witnesses {
    inner: Arc<Inner>,
}

/// Why a push to one witness failed.
enum PushError {
    /// The witness has seen a larger tree than `log_size` (alarm).
    Ahead { witness_size: u64, log_size: u64 },
    /// The witness cosigned another root at this checkpoint's size (its `409` states our own
    /// size for a same-size checkpoint; c2sp tlog-witness): a fork (alarm).
    OtherRoot { size: u64 },
    /// The witness moved past this checkpoint: a newer round will ask again.
    Stale,
    /// Anything else (transport, refusal, bad response, proof error).
    Failed(String),
}

impl Witnesses {
    /// Witnesses of `log` with a per-request `timeout` and the `quorum` needed for a checkpoint
    /// to count as cosigned. Starts the round task when `specs` is not empty (needs a tokio
    /// runtime).
    ///
    /// # Errors
    /// [`WitnessSetupError`].
    pub fn start(
        log: Log,
        specs: Vec<WitnessSpec>,
        quorum: usize,
        timeout: Duration,
    ) -> Result<Self, WitnessSetupError> {
        if quorum > specs.len() {
            return Err(WitnessSetupError::Quorum {
                quorum,
                count: specs.len(),
            });
        }
        let mut clients = Vec::with_capacity(specs.len());
        for spec in specs {
            let client = WitnessClient::new(&spec.url, spec.key, timeout).map_err(|source| {
                WitnessSetupError::Client {
                    name: spec.name.clone(),
                    source,
                }
            })?;
            clients.push((spec.name, client));
        }
        let known = clients.iter().map(|_| Known::default()).collect();
        let witnesses = Witnesses {
            inner: Arc::new(Inner {
                log,
                clients,
                quorum,
                timeout,
                known: Mutex::new(known),
                cosigned: watch::channel(None).0,
                alarm: Mutex::new(None),
            }),
        };
        if !witnesses.inner.clients.is_empty() {
            tokio::spawn(rounds(Arc::clone(&witnesses.inner)));
        }
        Ok(witnesses)
    }

    /// Cosignatures required before a checkpoint counts as witnessed (0: none).
    pub fn quorum(&self) -> usize {
        self.inner.quorum
    }

    /// The per-request timeout, also the bound of [`Witnesses::wait_covering`] in routes.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The alarm raised by a witness that saw a larger tree, if any.
    pub fn alarm(&self) -> Option<String> {
        self.inner
            .alarm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The latest checkpoint cosigned by at least the quorum.
    pub fn cosigned(&self) -> Option<Cosigned> {
        self.inner.cosigned.borrow().clone()
    }

    /// `checkpoint`'s note with every cosignature collected for exactly that checkpoint (what
    /// `GET /checkpoint` serves).
    pub fn decorate(&self, checkpoint: &SignedCheckpoint) -> Vec<u8> {
        let known = self
            .inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lines: Vec<NoteSignature> = known
            .iter()
            .filter_map(|k| k.latest.as_ref())
            .filter(|(cp, _)| *cp == checkpoint.checkpoint)
            .flat_map(|(_, lines)| lines.iter().cloned())
            .collect();
        drop(known);
        with_lines(&checkpoint.note, lines).unwrap_or_else(|| checkpoint.note.clone())
    }

    /// Wait at most `limit` for a quorum-cosigned checkpoint that covers `index`.
    /// `None` on timeout, alarm or shutdown.
    pub async fn wait_covering(&self, index: LeafIndex, limit: Duration) -> Option<Cosigned> {
        let mut rx = self.inner.cosigned.subscribe();
        let wait = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.checkpoint.size.0 > index.0));
        let found = match tokio::time::timeout(limit, wait).await {
            Ok(Ok(found)) => found.clone(),
            _ => None,
        };
        found
    }
}

/// `note` with `lines` appended to its signatures; `None` if the note does not parse.
fn with_lines(note: &[u8], lines: Vec<NoteSignature>) -> Option<Vec<u8>> {
    let mut parsed = Note::parse(note).ok()?;
    parsed.signatures.extend(lines);
    Some(parsed.to_bytes())
}

/// The round loop: one round per new checkpoint, until the log stops or an alarm.
async fn rounds(inner: Arc<Inner>) {
    let mut rx = inner.log.checkpoints();
    let mut last: Option<Checkpoint> = None;
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(cp) = current.filter(|cp| last.as_ref() != Some(&cp.checkpoint)) {
            round(&inner, &cp).await;
            last = Some(cp.checkpoint.clone());
            if inner
                .alarm
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
            {
                return;
            }
            // A checkpoint published during the round is taken at once.
            if rx.has_changed().unwrap_or(false) {
                continue;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Ask every witness not in backoff to cosign `cp`; record what they return.
async fn round(inner: &Arc<Inner>, cp: &SignedCheckpoint) {
    let now = Instant::now();
    let mut tasks = JoinSet::new();
    {
        let known = inner.known.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, k) in known.iter().enumerate() {
            if k.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            let inner = Arc::clone(inner);
            let cp = cp.clone();
            let start = k.size;
            tasks.spawn(async move {
                let result = push(&inner, i, &cp, start).await;
                (i, result)
            });
        }
    }
    // Bound the round: attempts × (timeout + backoff), plus slack.
    let bound = inner
        .timeout
        .saturating_mul(ATTEMPTS)
        .saturating_add(FIRST_RETRY.saturating_mul(1 << ATTEMPTS));
    let deadline = tokio::time::Instant::now() + bound;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        let Ok((i, result)) = joined else { continue };
        settle(inner, i, cp, result);
    }
    tasks.abort_all();
}

/// Record the outcome of one witness's push.
fn settle(
    inner: &Inner,
    i: usize,
    cp: &SignedCheckpoint,
    result: Result<(TreeSize, Vec<NoteSignature>), (Option<TreeSize>, PushError)>,
) {
    let name = inner.clients.get(i).map_or("?", |(n, _)| n.as_str());
    let mut known = inner.known.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(k) = known.get_mut(i) else { return };
    match result {
        Ok((size, lines)) => {
            k.size = Some(size);
            k.latest = Some((cp.checkpoint.clone(), lines));
            k.failures = 0;
            k.retry_at = None;
            tracing::debug!(
                witness = name,
                tree.size = size.0,
                "witness {name} cosigned size {}",
                size.0
            );
            publish_quorum(inner, &known, cp);
        }
        Err((learned, error)) => {
            if learned.is_some() {
                k.size = learned;
            }
            match error {
                PushError::Stale => {}
                PushError::Failed(reason) => {
                    k.failures = k.failures.saturating_add(1);
                    let backoff = FIRST_RETRY
                        .saturating_mul(1 << k.failures.min(10))
                        .min(MAX_BACKOFF);
                    k.retry_at = Some(Instant::now() + backoff);
                    tracing::warn!(witness = name, tree.size = cp.checkpoint.size.0, error = %reason,
                        "witness {name} did not cosign size {}: {reason}", cp.checkpoint.size.0);
                }
                PushError::Ahead {
                    witness_size,
                    log_size,
                } => {
                    drop(known);
                    let reason = format!(
                        "witness {name} has seen tree size {witness_size}, larger than this log's \
                         {log_size}: a fork, or the log was restored from an old backup; \
                         the log stopped signing"
                    );
                    tracing::error!(
                        witness = name,
                        witness.size = witness_size,
                        tree.size = log_size,
                        "{reason}"
                    );
                    raise_alarm(inner, reason);
                }
                PushError::OtherRoot { size } => {
                    drop(known);
                    let reason = format!(
                        "witness {name} has cosigned another root at tree size {size}: a fork, \
                         or the log was restored from an old backup and diverged; the log \
                         stopped signing"
                    );
                    tracing::error!(witness = name, tree.size = size, "{reason}");
                    raise_alarm(inner, reason);
                }
            }
        }
    }
}

/// Halt the log and record why (spec `spec/witness.md` §9.3).
fn raise_alarm(inner: &Inner, reason: String) {
    inner.log.halt();
    *inner.alarm.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
}

/// Publish `cp` with its cosignatures when at least the quorum of witnesses cosigned it and it is
/// newer than the cosigned checkpoint published so far.
fn publish_quorum(inner: &Inner, known: &[Known], cp: &SignedCheckpoint) {
    let mut names = Vec::new();
    let mut lines = Vec::new();
    for (k, (name, _)) in known.iter().zip(&inner.clients) {
        if let Some((signed, l)) = &k.latest {
            if *signed == cp.checkpoint {
                names.push(name.clone());
                lines.extend(l.iter().cloned());
            }
        }
    }
    if names.len() < inner.quorum.max(1) {
        return;
    }
    let Some(note) = with_lines(&cp.note, lines) else {
        return;
    };
    inner.cosigned.send_if_modified(|current| {
        let newer = current
            .as_ref()
            .is_none_or(|c| c.checkpoint.size <= cp.checkpoint.size);
        if newer && current.as_ref().map(|c| &c.note) != Some(&note) {
            *current = Some(Cosigned {
                note,
                checkpoint: cp.checkpoint.clone(),
                witnesses: names,
            });
            true
        } else {
            false
        }
    });
}

/// Push `cp` to witness `i`, starting from `start` (its last known size), resending on `409`.
/// On error, also returns the size the witness stated, if it stated one.
async fn push(
    inner: &Inner,
    i: usize,
    cp: &SignedCheckpoint,
    start: Option<TreeSize>,
) -> Result<(TreeSize, Vec<NoteSignature>), (Option<TreeSize>, PushError)> {
    let Some((_, client)) = inner.clients.get(i) else {
        return Err((None, PushError::Failed("no such witness".into())));
    };
    let size = cp.checkpoint.size;
    let mut old = start.unwrap_or(TreeSize(0));
    let mut learned = None;
    let mut last_error = String::new();
    let mut delay = FIRST_RETRY;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        for _ in 0..CONFLICT_RESENDS {
            let own = inner
                .log
                .latest_checkpoint()
                .map_or(size.0, |c| c.checkpoint.size.0);
            if old.0 > own {
                return Err((
                    learned,
                    PushError::Ahead {
                        witness_size: old.0,
                        log_size: own,
                    },
                ));
            }
            if old.0 > size.0 {
                return Err((learned, PushError::Stale));
            }
            let proof = if old.0 == 0 || old == size {
                Vec::new()
            } else {
                match inner.log.consistency_proof(old, size) {
                    Ok(proof) => proof,
                    Err(error) => return Err((learned, PushError::Failed(proof_error(&error)))),
                }
            };
            match client.add_checkpoint(&cp.note, old, &proof).await {
                Ok(AddOutcome::Cosigned { lines, .. }) => return Ok((size, lines)),
                Ok(AddOutcome::Conflict { witness_size }) => {
                    if witness_size == old && old == size {
                        return Err((learned, PushError::OtherRoot { size: size.0 }));
                    }
                    if witness_size == old {
                        last_error = format!("409 with our own old size {}", old.0);
                        break;
                    }
                    old = witness_size;
                    learned = Some(witness_size);
                }
                Err(error) => {
                    last_error = error.to_string();
                    break;
                }
            }
        }
    }
    Err((learned, PushError::Failed(last_error)))
}

fn proof_error(error: &LogError) -> String {
    format!("consistency proof: {error}")
}
