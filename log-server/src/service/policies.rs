//! The policy registry: compiled policies by commitment, and the latest version per name.
//!
//! At start the server compiles every policy file of the configured directory (files named
//! `*.toml` whose top level has `name` and `rules`; suites such as `*.cases.toml` are skipped), then
//! every policy registered through `POST /v1/policies`, which are persisted as
//! `<data_dir>/policies/<seq>-<name>.toml` so that they survive a restart. A later registration of
//! a name becomes that name's current version; older versions stay addressable by commitment.
//!
//! All policies of one server share one salt ([`crate::keys::derive_policy_salt`]), so the same
//! policy text (modulo whitespace and comments) always has the same commitment on this server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use verdict_checker::{CompiledPolicy, PolicyError};
use verdict_core::receipt::Salt;
use verdict_core::Hash;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A policy file could not be read or written.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A policy did not compile.
    #[error("{0}")]
    Compile(#[from] PolicyError),
}

#[derive(Default)]
struct Inner {
    by_commitment: HashMap<Hash, Arc<CompiledPolicy>>,
    latest: HashMap<String, Hash>,
    registered: usize,
}

/// Registered, compiled policies.
pub struct PolicyRegistry {
    inner: RwLock<Inner>,
    salt: Salt,
    persist_dir: Option<PathBuf>,
}

impl std::fmt::Debug for PolicyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRegistry").finish_non_exhaustive()
    }
}

/// Summary of one registered policy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyInfo {
    /// Policy name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Commitment (hex).
    pub commitment: String,
    /// Root of the rule commitment tree (hex).
    pub rule_tree_root: String,
    /// Number of rules.
    pub rules: usize,
}

impl PolicyInfo {
    /// Summarise a compiled policy.
    pub fn of(p: &CompiledPolicy) -> Self {
        Self {
            name: p.name().to_owned(),
            version: p.version().to_owned(),
            commitment: p.commitment().to_hex(),
            rule_tree_root: p.rule_tree_root().to_hex(),
            rules: p.ast().rules.len(),
        }
    }
}

impl PolicyRegistry {
    /// An empty registry. `persist_dir` receives registered policy sources.
    pub fn new(salt: Salt, persist_dir: Option<PathBuf>) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            salt,
            persist_dir,
        }
    }

    /// Compile `source` with this server's salt.
    ///
    /// # Errors
    /// The located [`PolicyError`].
    pub fn compile(&self, source: &str) -> Result<CompiledPolicy, PolicyError> {
        verdict_checker::compile(source, self.salt)
    }

    /// Add a compiled policy; it becomes the current version of its name.
    pub fn insert(&self, policy: CompiledPolicy) -> Arc<CompiledPolicy> {
        let policy = Arc::new(policy);
        if let Ok(mut inner) = self.inner.write() {
            let commitment = policy.commitment();
            inner.latest.insert(policy.name().to_owned(), commitment);
            inner
                .by_commitment
                .entry(commitment)
                .or_insert_with(|| Arc::clone(&policy));
        }
        policy
    }

    /// Compile, persist and add a policy from `POST /v1/policies`.
    ///
    /// # Errors
    /// [`RegistryError`].
    pub fn register(&self, source: &str) -> Result<Arc<CompiledPolicy>, RegistryError> {
        let compiled = self.compile(source)?;
        if let Some(dir) = &self.persist_dir {
            let seq = self.inner.read().map_or(0, |i| i.registered);
            let path = dir.join(format!("{seq:08}-{}.toml", compiled.name()));
            let io = |source| RegistryError::Io {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(dir).map_err(io)?;
            write_durably(&path, source.as_bytes()).map_err(io)?;
        }
        if let Ok(mut inner) = self.inner.write() {
            inner.registered += 1;
        }
        Ok(self.insert(compiled))
    }

    /// Find a policy by name (current version) or by commitment (64 hex digits).
    pub fn resolve(&self, key: &str) -> Option<Arc<CompiledPolicy>> {
        let inner = self.inner.read().ok()?;
        let commitment = match inner.latest.get(key) {
            Some(c) => *c,
            None => {
                let bytes = hex::decode(key).ok()?;
                Hash::from_slice(&bytes).ok()?
            }
        };
        inner.by_commitment.get(&commitment).cloned()
    }

    /// All current policies, sorted by name.
    pub fn list(&self) -> Vec<PolicyInfo> {
        let Ok(inner) = self.inner.read() else {
            return Vec::new();
        };
        let mut out: Vec<PolicyInfo> = inner
            .latest
            .values()
            .filter_map(|c| inner.by_commitment.get(c))
            .map(|p| PolicyInfo::of(p))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Load the policy files of `dir` (see the module docs). Returns the names loaded.
    ///
    /// # Errors
    /// [`RegistryError`] for an unreadable directory or a policy that does not compile.
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<String>, RegistryError> {
        let io = |source| RegistryError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_policy_file_name(p))
            .collect();
        files.sort();
        let mut names = Vec::new();
        for path in files {
            let source = std::fs::read_to_string(&path).map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?;
            if !looks_like_policy(&source) {
                continue;
            }
            let compiled = self
                .compile(&source)
                .map_err(|e| e.with_file(path.display().to_string()))?;
            names.push(compiled.name().to_owned());
            self.insert(compiled);
        }
        Ok(names)
    }

    /// Reload policies persisted by [`Self::register`] in earlier runs.
    ///
    /// # Errors
    /// [`RegistryError`].
    pub fn load_registered(&self) -> Result<usize, RegistryError> {
        let Some(dir) = &self.persist_dir else {
            return Ok(0);
        };
        if !dir.exists() {
            return Ok(0);
        }
        let n = self.load_dir(dir)?.len();
        if let Ok(mut inner) = self.inner.write() {
            inner.registered = n;
        }
        Ok(n)
    }
}

fn is_policy_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    path.is_file()
        && name.ends_with(".toml")
        && !name.ends_with(".cases.toml")
        && !name.ends_with(".suite.toml")
}

/// A policy file has top-level `name` and `rules`; suites and other TOML files do not.
fn looks_like_policy(source: &str) -> bool {
    match toml::from_str::<toml::Table>(source) {
        Ok(t) => t.contains_key("name") && t.contains_key("rules"),
        // Let the compiler report the located syntax error.
        Err(_) => true,
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("toml.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Findings of the checker's analysis (`verdict_checker::analyze`), run on a blocking thread
/// (Z3 contexts are thread-bound). An analysis that times out or fails is reported as a single
/// finding of kind `analysis-incomplete`; it never fails the registration.
pub async fn analysis_findings(
    policy: &Arc<CompiledPolicy>,
    timeout: std::time::Duration,
) -> Vec<serde_json::Value> {
    let policy = Arc::clone(policy);
    let result =
        tokio::task::spawn_blocking(move || verdict_checker::analyze::analyze(&policy, timeout))
            .await;
    match result {
        Ok(Ok(report)) => report
            .findings
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .collect(),
        Ok(Err(e)) => vec![serde_json::json!({
            "kind": "analysis-incomplete",
            "severity": "warning",
            "message": e.to_string(),
        })],
        Err(e) => {
            tracing::error!(error = %e, "policy analysis task failed: {e}");
            vec![serde_json::json!({
                "kind": "analysis-incomplete",
                "severity": "warning",
                "message": "analysis failed",
            })]
        }
    }
}
