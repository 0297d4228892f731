//! Trusted keys, from command-line flags and an optional tlog-policy file ([`crate::policy`]).
//!
//! Trust never comes from the server: every key is given by the user.

use std::path::Path;

use verdict_core::note::{Note, Verifier};

use crate::error::{Check, CliError};
use crate::files::{read_limited, MAX_TEXT_FILE};
use crate::policy::{Policy, QuorumError, QuorumReport};

/// The keys a command trusts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Trusted log keys (flags first, then `log` lines of the policy).
    pub log_keys: Vec<Verifier>,
    /// Trusted checker keys (flags first, then `checker` lines of the policy).
    pub checker_keys: Vec<Verifier>,
    /// The policy file, if one was given: its witnesses and quorum are enforced by
    /// [`Trust::check_quorum`].
    pub policy: Option<Policy>,
    /// Pinned policy commitments (`--policy-commitment`): when not empty, a receipt made under
    /// any other policy fails [`crate::error::Check::PolicyCommitment`].
    pub policy_commitments: Vec<verdict_core::Hash>,
}

impl Trust {
    /// Build from `--log-key`, `--checker-key` and `--policy` values.
    ///
    /// # Errors
    /// [`CliError::Input`] for a malformed key or policy file.
    pub fn load(
        log_keys: &[String],
        checker_keys: &[String],
        policy: Option<&Path>,
    ) -> Result<Self, CliError> {
        let mut trust = Trust::default();
        for k in log_keys {
            trust
                .log_keys
                .push(Verifier::parse(k).map_err(|e| CliError::input("--log-key", e))?);
        }
        for k in checker_keys {
            trust
                .checker_keys
                .push(Verifier::parse(k).map_err(|e| CliError::input("--checker-key", e))?);
        }
        if let Some(path) = policy {
            let bytes = read_limited(path, MAX_TEXT_FILE)?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| CliError::input(path.display(), "policy is not UTF-8"))?;
            let parsed = Policy::parse(text).map_err(|e| CliError::input(path.display(), e))?;
            trust
                .log_keys
                .extend(parsed.logs.iter().map(|l| l.key.clone()));
            trust.checker_keys.extend(parsed.checkers.iter().cloned());
            trust.policy = Some(parsed);
        }
        Ok(trust)
    }

    /// Require at least one log key.
    ///
    /// # Errors
    /// [`CliError::Usage`] when none was given.
    pub fn require_log_key(&self) -> Result<(), CliError> {
        if self.log_keys.is_empty() {
            return Err(CliError::usage(
                "no trusted log key: give --log-key VKEY or a --policy file with a log line",
            ));
        }
        Ok(())
    }

    /// Require at least one checker key.
    ///
    /// # Errors
    /// [`CliError::Usage`] when none was given.
    pub fn require_checker_key(&self) -> Result<(), CliError> {
        if self.checker_keys.is_empty() {
            return Err(CliError::usage(
                "no trusted checker key: give --checker-key VKEY (or a `checker` line in --policy); \
                 a receipt is only evidence when its signature is checked",
            ));
        }
        Ok(())
    }

    /// The log key for a signed checkpoint: the trusted key whose name equals the checkpoint's
    /// origin (first line), or the first log key when none matches (its check then fails with a
    /// clear origin mismatch).
    pub fn log_key_for(&self, checkpoint_note: &[u8]) -> Option<&Verifier> {
        let origin = Note::parse(checkpoint_note)
            .ok()
            .and_then(|n| n.text.lines().next().map(str::to_owned));
        origin
            .and_then(|o| self.log_keys.iter().find(|k| k.name() == o))
            .or_else(|| self.log_keys.first())
    }

    /// Enforce the policy's witness quorum on a signed checkpoint note (spec `witness.md` §8):
    /// every cosignature by a listed witness must verify, and the quorum must be met. Without a
    /// policy file no cosignature is required and `Ok(None)` is returned. Call it on every
    /// checkpoint a command accepts; [`crate::consistency::open_checkpoint`] does.
    ///
    /// # Errors
    /// [`CliError::Failed`] with [`Check::WitnessQuorum`] (naming the witnesses that did sign),
    /// [`Check::Cosignature`] for a failing cosignature, or [`Check::CheckpointSignature`] when
    /// the note does not parse.
    pub fn check_quorum(&self, checkpoint_note: &[u8]) -> Result<Option<QuorumReport>, CliError> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        let note = Note::parse(checkpoint_note)
            .map_err(|e| CliError::failed(Check::CheckpointSignature, e))?;
        policy.check_quorum(&note).map(Some).map_err(|e| match e {
            QuorumError::Cosignature(_) => CliError::failed(Check::Cosignature, e),
            QuorumError::NotMet { .. } => CliError::failed(Check::WitnessQuorum, e),
        })
    }

    /// One line about witnesses for reports, or `None` when the policy lists none. Every
    /// checkpoint accepted under a policy has passed [`Trust::check_quorum`].
    pub fn witness_note(&self) -> Option<String> {
        let policy = self.policy.as_ref()?;
        if policy.witnesses.is_empty() && !policy.requires_witnesses() {
            return None;
        }
        Some(format!(
            "witness quorum {} enforced: the policy lists {} witness(es) and every checkpoint \
             accepted carried the required valid cosignatures",
            policy.quorum.as_deref().unwrap_or("none"),
            policy.witnesses.len(),
        ))
    }
}
