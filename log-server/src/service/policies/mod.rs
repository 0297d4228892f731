//! The policy registry (issue 11, spec `spec/policy-statement.md`): compiled policies by
//! commitment, every version of every name in registration order, and registration itself.
//!
//! **A registration is a log entry.** [`PolicyRegistry::register`] compiles the text, enforces
//! the version rules (same name, version and text: nothing new; same name and version, other
//! text: [`RegistryError::VersionExists`]; a version not greater than the current one:
//! [`RegistryError::NotNewer`]; error-level analysis findings: [`RegistryError::AnalysisErrors`]
//! unless forced), signs a policy statement ([`verdict_core::statement`]) with the checker key
//! and appends it to the log. Only after the statement is durably sequenced does the policy
//! become usable, so every receipt's policy commitment refers to an earlier registration entry.
//! Registrations are serialised (one at a time, for every name).
//!
//! **Texts live in the store** ([`crate::storage::Storage::put_policy_record`]): record
//! `r<index, u64 big-endian>` holds the text and the statement bytes of the registration at log
//! index `index`. Before appending, the statement is written as record `pending`; after the log
//! has it, as `r<index>`, and `pending` is deleted. A crash or error in between is settled at the
//! next start or registration ([`PolicyRegistry::settle_pending`]): if the statement is in the
//! log, the registration counts (the log is authoritative); if not, it never happened.
//!
//! **Several frontends** on one store (spec `storage-postgres.md` §5.4) register one at a time
//! across all of them: a registration holds the store's registration lock from reading the
//! registrations (the version rules, the predecessor) to deleting `pending`, and settling takes
//! it too, so the one `pending` record is never another frontend's registration in flight.
//!
//! At start, [`PolicyRegistry::restore`] reloads the registrations from the store, then each
//! policy file of the configured directory is registered through the same path
//! ([`PolicyRegistry::register_dir`]): files named `*.toml` whose top level has `name` and `rules`
//! (suites such as `*.cases.toml` are skipped).
//!
//! All policies of one server share one salt ([`crate::keys::derive_policy_salt`], spec
//! `policy-statement.md` §9), so the same policy text (modulo whitespace and comments) always has
//! the same commitment on this server.

mod analysis;
mod error;
mod files;
mod version;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use verdict_checker::{CompiledPolicy, PolicyError};
use verdict_core::note::Signer;
use verdict_core::receipt::Salt;
use verdict_core::statement::{PolicyRecord, PolicyStatement, RECORD_VERSION};
use verdict_core::{Hash, LeafIndex};

use crate::log::Log;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Registrant name of policies registered from the policies directory at start.
pub const DIR_REGISTRANT: &str = "policies-dir";

/// Registrant name of policies migrated from the loose files of earlier versions.
pub const MIGRATED_REGISTRANT: &str = "migrated";

/// Key of the registration in progress.
const PENDING_KEY: &[u8] = b"pending";

pub use analysis::analysis_findings;
use analysis::summarize;
pub use error::RegistryError;
use files::policy_files;
pub use version::{Outcome, PolicyInfo, Registered, VersionInfo};

#[derive(Default)]
struct Inner {
    by_commitment: HashMap<Hash, Arc<Registered>>,
    /// Versions of each name in registration (= version) order.
    history: HashMap<String, Vec<Arc<Registered>>>,
}

/// Registered, compiled policies.
pub struct PolicyRegistry {
    inner: RwLock<Inner>,
    salt: Salt,
    /// Serialises registrations.
    register_lock: tokio::sync::Mutex<()>,
    /// True while a `pending` record may exist (a registration failed between its writes).
    unsettled: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PolicyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRegistry").finish_non_exhaustive()
    }
}

/// What registration needs from the server.
#[derive(Clone, Copy, Debug)]
pub struct RegisterContext<'a> {
    /// The log the statement is appended to (its storage holds the texts).
    pub log: &'a Log,
    /// The checker key that signs the statement.
    pub checker_key: &'a Signer,
    /// Timeout of the analysis.
    pub analysis_timeout: std::time::Duration,
}

/// Parse a policy version as a semantic version; one or two numbers get the missing ones as 0
/// (spec `policy-statement.md` §6).
///
/// # Errors
/// [`RegistryError::BadVersion`].
pub fn parse_version(version: &str) -> Result<semver::Version, RegistryError> {
    let bad = || RegistryError::BadVersion {
        version: version.chars().take(80).collect(),
    };
    if let Ok(v) = semver::Version::parse(version) {
        return Ok(v);
    }
    let split = version.find(['-', '+']).unwrap_or(version.len());
    let (core, rest) = version.split_at(split);
    let dots = core.matches('.').count();
    let padded = match dots {
        0 => format!("{core}.0.0{rest}"),
        1 => format!("{core}.0{rest}"),
        _ => return Err(bad()),
    };
    semver::Version::parse(&padded).map_err(|_| bad())
}

fn now_ms() -> u64 {
    super::decision::now_ms()
}

/// The stored form of a registration (record `r<index>`).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRegistration {
    /// The policy text.
    source: String,
    /// The statement, base64.
    statement: String,
    /// For `pending` only: the staged size before the append (where to look for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
}

/// On a store shared by several frontends, the lock that serialises registrations across them
/// ([`crate::storage::shared::SharedLog::lock_registrations`]); `None` for a store of one
/// server (the in-process lock suffices).
fn across_frontends(log: &Log) -> Result<Option<Box<dyn Send + Sync>>, RegistryError> {
    Ok(log
        .storage()
        .shared()
        .map(|shared| shared.lock_registrations())
        .transpose()?)
}

fn record_key(index: u64) -> Vec<u8> {
    let mut key = b"r".to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

impl PolicyRegistry {
    /// An empty registry.
    pub fn new(salt: Salt) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            salt,
            register_lock: tokio::sync::Mutex::new(()),
            unsettled: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The salt of this server's policy commitments.
    pub fn salt(&self) -> Salt {
        self.salt
    }

    /// Compile `source` with this server's salt.
    ///
    /// # Errors
    /// The located [`PolicyError`].
    pub fn compile(&self, source: &str) -> Result<CompiledPolicy, PolicyError> {
        verdict_checker::compile(source, self.salt)
    }

    fn current(&self, name: &str) -> Option<Arc<Registered>> {
        let inner = self.inner.read().ok()?;
        inner.history.get(name).and_then(|h| h.last()).cloned()
    }

    fn find_version(&self, name: &str, version: &semver::Version) -> Option<Arc<Registered>> {
        let inner = self.inner.read().ok()?;
        inner
            .history
            .get(name)?
            .iter()
            .find(|r| &r.semver == version)
            .cloned()
    }

    /// The version rules of spec §6 against what is registered: `Some` when this exact policy
    /// is registered already.
    fn check_rules(
        &self,
        policy: &CompiledPolicy,
        version: &semver::Version,
    ) -> Result<Option<Arc<Registered>>, RegistryError> {
        if let Some(existing) = self.find_version(policy.name(), version) {
            return if existing.policy.commitment() == policy.commitment() {
                Ok(Some(existing))
            } else {
                Err(RegistryError::VersionExists {
                    name: policy.name().to_owned(),
                    version: policy.version().to_owned(),
                })
            };
        }
        if let Some(current) = self.current(policy.name()) {
            if version <= &current.semver {
                return Err(RegistryError::NotNewer {
                    name: policy.name().to_owned(),
                    version: policy.version().to_owned(),
                    current: current.info.version.clone(),
                });
            }
        }
        Ok(None)
    }

    /// Insert a registration once: one already known by its commitment (inserted by the
    /// periodic refresh of a shared store while this server registered it) is returned as it
    /// is. A name's versions stay in log order.
    fn insert(&self, registered: Registered) -> Arc<Registered> {
        let registered = Arc::new(registered);
        if let Ok(mut inner) = self.inner.write() {
            if let Some(known) = inner.by_commitment.get(&registered.policy.commitment()) {
                return Arc::clone(known);
            }
            inner
                .by_commitment
                .insert(registered.policy.commitment(), Arc::clone(&registered));
            let history = inner
                .history
                .entry(registered.info.name.clone())
                .or_default();
            history.push(Arc::clone(&registered));
            history.sort_by_key(|r| r.info.index);
        }
        registered
    }

    /// Build the in-memory registration of a logged statement.
    fn registered(
        &self,
        source: String,
        statement: Vec<u8>,
        index: u64,
    ) -> Result<Registered, RegistryError> {
        let key = format!("r{index}");
        let corrupt = |reason: String| RegistryError::Corrupt {
            key: key.clone(),
            reason,
        };
        let decoded = PolicyStatement::decode(&statement)?;
        let policy = self
            .compile(&source)
            .map_err(|e| corrupt(format!("text does not compile: {e}")))?;
        let r = decoded.record;
        if r.policy_commitment != policy.commitment() || r.name != policy.name() {
            return Err(corrupt("text does not match the statement".to_owned()));
        }
        let semver = parse_version(&r.policy_version)?;
        let info = VersionInfo {
            name: r.name,
            version: r.policy_version,
            commitment: r.policy_commitment.to_hex(),
            rule_tree_root: r.rule_tree_root.to_hex(),
            rules: policy.ast().rules.len(),
            index,
            time_ms: r.time_ms,
            registered_by: r.registered_by,
            predecessor: r.predecessor.map(|h| h.to_hex()),
            analysis_errors: r.analysis.errors,
            analysis_warnings: r.analysis.warnings,
            forced: r.analysis.forced,
        };
        Ok(Registered {
            policy: Arc::new(policy),
            source,
            statement,
            info,
            semver,
        })
    }

    /// Reload the registrations kept in the store, then settle an interrupted one. Returns the
    /// number of registrations.
    ///
    /// # Errors
    /// [`RegistryError`] for store errors or inconsistent records.
    pub fn restore(&self, log: &Log) -> Result<usize, RegistryError> {
        let n = self.load(log, false)?;
        // On a shared store, settle only while no other frontend registers.
        let _across = across_frontends(log)?;
        self.settle_pending(log)?;
        Ok(n)
    }

    /// Load the registrations that another server made on a shared store (several frontends
    /// on one PostgreSQL, spec `storage-postgres.md` §5.4): every stored registration whose
    /// policy commitment this registry does not know yet, in log order. Returns how many were
    /// added. The server runs it every `postgres_poll_ms`, so a version registered on one
    /// frontend is current on the others within that bound.
    ///
    /// # Errors
    /// [`RegistryError`] for store errors or a stored registration that does not decode.
    pub fn refresh(&self, log: &Log) -> Result<usize, RegistryError> {
        self.load(log, true)
    }

    /// Insert the stored registrations (keys `r<index>`, in index order); with `only_new`,
    /// skip those whose commitment is already known.
    fn load(&self, log: &Log, only_new: bool) -> Result<usize, RegistryError> {
        let mut n = 0;
        for (key, value) in log.storage().policy_records()? {
            let Some(index) = key
                .strip_prefix(b"r")
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let corrupt = |reason: String| RegistryError::Corrupt {
                key: format!("r{index}"),
                reason,
            };
            let stored: StoredRegistration =
                serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
            let statement = B64
                .decode(&stored.statement)
                .map_err(|e| corrupt(e.to_string()))?;
            if only_new {
                let commitment = PolicyStatement::decode(&statement)?
                    .record
                    .policy_commitment;
                let known = self
                    .inner
                    .read()
                    .map(|inner| inner.by_commitment.contains_key(&commitment))
                    .unwrap_or(true);
                if known {
                    continue;
                }
            }
            self.insert(self.registered(stored.source, statement, index)?);
            n += 1;
        }
        Ok(n)
    }

    /// Settle an interrupted registration (see the module docs): if its statement is in the log,
    /// record it as registered; drop the pending record either way.
    ///
    /// # Errors
    /// [`RegistryError`] for store or log errors.
    pub fn settle_pending(&self, log: &Log) -> Result<(), RegistryError> {
        let storage = log.storage();
        let Some((_, value)) = storage
            .policy_records()?
            .into_iter()
            .find(|(k, _)| k == PENDING_KEY)
        else {
            self.unsettled
                .store(false, std::sync::atomic::Ordering::Release);
            return Ok(());
        };
        let pending: Option<StoredRegistration> = serde_json::from_slice(&value).ok();
        if let Some(pending) = pending {
            let statement = B64.decode(&pending.statement).unwrap_or_default();
            let end = log.stats().staged_size;
            let mut found = None;
            for index in pending.from.unwrap_or(0)..end {
                let entry = match log.entry(LeafIndex(index))? {
                    Some(e) => Some(e),
                    None => storage
                        .staged(LeafIndex(index), LeafIndex(index.saturating_add(1)))?
                        .into_iter()
                        .next(),
                };
                if entry.as_deref() == Some(statement.as_slice()) {
                    found = Some(index);
                    break;
                }
            }
            if let Some(index) = found {
                let already = self
                    .inner
                    .read()
                    .map(|i| i.history.values().flatten().any(|r| r.info.index == index))
                    .unwrap_or(false);
                if !already {
                    let stored = StoredRegistration {
                        source: pending.source.clone(),
                        statement: pending.statement.clone(),
                        from: None,
                    };
                    let bytes =
                        serde_json::to_vec(&stored).map_err(|e| RegistryError::Corrupt {
                            key: "pending".to_owned(),
                            reason: e.to_string(),
                        })?;
                    storage.put_policy_record(&record_key(index), Some(&bytes))?;
                    self.insert(self.registered(pending.source, statement, index)?);
                    tracing::warn!(
                        leaf.index = index,
                        "an interrupted policy registration is in the log at {index}: it counts"
                    );
                }
            } else {
                tracing::warn!("an interrupted policy registration never reached the log: dropped");
            }
        }
        storage.put_policy_record(PENDING_KEY, None)?;
        self.unsettled
            .store(false, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Register a policy text (spec `policy-statement.md` §6): see the module docs.
    ///
    /// # Errors
    /// [`RegistryError`]: compile errors, version rules, analysis errors without `force`, log
    /// and store errors.
    pub async fn register(
        &self,
        ctx: RegisterContext<'_>,
        source: &str,
        registered_by: &str,
        force: bool,
    ) -> Result<Outcome, RegistryError> {
        let policy = self.compile(source)?;
        let version = parse_version(policy.version())?;
        if let Some(existing) = self.check_rules(&policy, &version)? {
            return Ok(Outcome::Existing(existing));
        }
        let policy = Arc::new(policy);
        // The analysis depends on the text alone: run it before taking the lock.
        let findings = analysis_findings(&policy, ctx.analysis_timeout).await;
        let analysis = summarize(&findings, force);
        if analysis.errors > 0 && !force {
            return Err(RegistryError::AnalysisErrors {
                errors: analysis.errors,
                first: analysis.findings.first().cloned().unwrap_or_default(),
            });
        }
        let _serial = self.register_lock.lock().await;
        // Several frontends (spec `storage-postgres.md` §5.4): one registration at a time across
        // all of them; the version rules then see every registration made so far, and a
        // `pending` record found now was left by a registration that is no longer under way.
        let across = across_frontends(ctx.log)?;
        if across.is_some() {
            self.load(ctx.log, true)?;
            self.settle_pending(ctx.log)?;
        } else if self.unsettled.load(std::sync::atomic::Ordering::Acquire) {
            self.settle_pending(ctx.log)?;
        }
        if let Some(existing) = self.check_rules(&policy, &version)? {
            return Ok(Outcome::Existing(existing));
        }
        let storage = ctx.log.storage();
        let owned_source = source.to_owned();
        let stored = move |statement: &[u8], from: Option<u64>| {
            serde_json::to_vec(&StoredRegistration {
                source: owned_source.clone(),
                statement: B64.encode(statement),
                from,
            })
            .map_err(|e| RegistryError::Corrupt {
                key: "new".to_owned(),
                reason: e.to_string(),
            })
        };
        // The entry clock is held from stamping the registration time to queueing the statement,
        // so log order is time order (spec `evidence-package.md` §3.1); no await under it.
        let (statement, queued) = {
            let stamp = ctx.log.stamp(now_ms());
            let record = PolicyRecord {
                version: RECORD_VERSION,
                checker_key_id: ctx.checker_key.key_id(),
                name: policy.name().to_owned(),
                policy_version: policy.version().to_owned(),
                policy_commitment: policy.commitment(),
                rule_tree_root: policy.rule_tree_root(),
                predecessor: self.current(policy.name()).map(|c| c.policy.commitment()),
                time_ms: stamp.time_ms(),
                registered_by: registered_by.to_owned(),
                analysis,
            };
            let statement = PolicyStatement::sign(&record, ctx.checker_key)?;
            self.unsettled
                .store(true, std::sync::atomic::Ordering::Release);
            let from = Some(ctx.log.stats().staged_size);
            storage.put_policy_record(PENDING_KEY, Some(&stored(&statement, from)?))?;
            // On a shared store the sequencer may move the statement to a later time (spec
            // `storage-postgres.md` §5.6): signed again, and the pending marker rewritten first
            // so that it always holds the bytes staged.
            let (mut again, key, store) = (
                record.clone(),
                ctx.checker_key.clone(),
                std::sync::Arc::clone(storage),
            );
            let stored_again = stored.clone();
            let restamp: crate::log::Restamp = Box::new(move |time_ms| {
                again.time_ms = time_ms;
                let statement = PolicyStatement::sign(&again, &key).ok()?;
                let marker = stored_again(&statement, from).ok()?;
                store.put_policy_record(PENDING_KEY, Some(&marker)).ok()?;
                Some(statement)
            });
            let queued = stamp.submit_restampable(statement.clone(), None, false, Some(restamp))?;
            (statement, queued)
        };
        let staged = queued.staged().await?;
        let index = staged.index.0;
        let statement = staged.restamped.map_or(statement, |r| r.entry);
        storage.put_policy_record(&record_key(index), Some(&stored(&statement, None)?))?;
        storage.put_policy_record(PENDING_KEY, None)?;
        self.unsettled
            .store(false, std::sync::atomic::Ordering::Release);
        let registered = self.insert(self.registered(source.to_owned(), statement, index)?);
        tracing::info!(
            policy.name = registered.info.name,
            policy.version = registered.info.version,
            policy.commitment = registered.info.commitment,
            leaf.index = index,
            registered_by,
            "registered policy {} {} at {index}",
            registered.info.name,
            registered.info.version
        );
        Ok(Outcome::Created(registered, findings))
    }

    /// Register every policy file of `dir` (see the module docs) as [`DIR_REGISTRANT`]. Returns
    /// the names of the policies in the directory.
    ///
    /// # Errors
    /// [`RegistryError::File`] naming the file: unreadable, does not compile, conflicts with a
    /// registered version, or has error-level findings.
    pub async fn register_dir(
        &self,
        ctx: RegisterContext<'_>,
        dir: &Path,
    ) -> Result<Vec<String>, RegistryError> {
        let mut names = Vec::new();
        for (path, source) in policy_files(dir)? {
            let in_file = |source: RegistryError| RegistryError::File {
                path: path.clone(),
                source: Box::new(source),
            };
            let outcome = self
                .register(ctx, &source, DIR_REGISTRANT, false)
                .await
                .map_err(|e| match e {
                    RegistryError::Compile(e) => {
                        RegistryError::Compile(e.with_file(path.display().to_string()))
                    }
                    other => in_file(other),
                })?;
            names.push(outcome.registered().info.name.clone());
        }
        Ok(names)
    }

    /// Register the loose policy files that versions before issue 11 wrote to
    /// `<data_dir>/policies/` (as [`MIGRATED_REGISTRANT`]); a file that breaks a version rule is
    /// skipped with a warning naming it. Returns the number registered.
    ///
    /// # Errors
    /// Log and store errors.
    pub async fn migrate_loose_files(
        &self,
        ctx: RegisterContext<'_>,
        dir: &Path,
    ) -> Result<usize, RegistryError> {
        if !dir.is_dir() {
            return Ok(0);
        }
        let mut n = 0;
        for (path, source) in policy_files(dir)? {
            match self.register(ctx, &source, MIGRATED_REGISTRANT, true).await {
                Ok(Outcome::Created(..)) => n += 1,
                Ok(Outcome::Existing(_)) => {}
                Err(e @ (RegistryError::Log(_) | RegistryError::Store(_))) => return Err(e),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    "loose policy file {} not migrated: {e}",
                    path.display()
                ),
            }
        }
        Ok(n)
    }

    /// Find a policy by name (current version) or by commitment (64 hex digits).
    pub fn resolve(&self, key: &str) -> Option<Arc<CompiledPolicy>> {
        self.registration(key).map(|r| Arc::clone(&r.policy))
    }

    /// The registration of a name (current version) or commitment (64 hex digits).
    pub fn registration(&self, key: &str) -> Option<Arc<Registered>> {
        let inner = self.inner.read().ok()?;
        if let Some(current) = inner.history.get(key).and_then(|h| h.last()) {
            return Some(Arc::clone(current));
        }
        let bytes = hex::decode(key).ok()?;
        let commitment = Hash::from_slice(&bytes).ok()?;
        inner.by_commitment.get(&commitment).cloned()
    }

    /// The current version of every name, sorted by name.
    pub fn list(&self) -> Vec<VersionInfo> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        let mut out: Vec<VersionInfo> = inner
            .history
            .values()
            .filter_map(|h| h.last())
            .map(|r| r.info.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every version of `name` in registration order, or `None` for an unknown name.
    pub fn versions(&self, name: &str) -> Option<Vec<VersionInfo>> {
        let inner = self.inner.read().ok()?;
        inner
            .history
            .get(name)
            .map(|h| h.iter().map(|r| r.info.clone()).collect())
    }
}
