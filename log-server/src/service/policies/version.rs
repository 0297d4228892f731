//! What a registration is and shows: [`Registered`] (compiled policy, text, statement),
//! its summary [`VersionInfo`], and the [`Outcome`] of [`super::PolicyRegistry::register`].

use std::sync::Arc;

use verdict_checker::CompiledPolicy;

/// One registered version, as `GET /v1/policies` and `/v1/policies/{name}/versions` show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VersionInfo {
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
    /// Log index of the policy statement.
    pub index: u64,
    /// Registration time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Name of the token (or `policies-dir`) that registered it.
    pub registered_by: String,
    /// Commitment of the previous version (hex), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<String>,
    /// Error-level analysis findings at registration.
    pub analysis_errors: u32,
    /// Warning-level analysis findings at registration.
    pub analysis_warnings: u32,
    /// Registered with `force=true` despite error-level findings.
    pub forced: bool,
}

/// Former name of [`VersionInfo`].
pub type PolicyInfo = VersionInfo;

/// A registered version: the compiled policy, its text and its statement.
#[derive(Debug)]
pub struct Registered {
    /// The compiled policy.
    pub policy: Arc<CompiledPolicy>,
    /// The policy text as registered.
    pub source: String,
    /// The signed policy statement (log entry bytes).
    pub statement: Vec<u8>,
    /// Summary.
    pub info: VersionInfo,
    pub(super) semver: semver::Version,
}

/// What [`PolicyRegistry::register`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A new version was registered and logged (HTTP 201), with its analysis findings.
    Created(Arc<Registered>, Vec<serde_json::Value>),
    /// The same name, version and text was registered before; nothing new (HTTP 200).
    Existing(Arc<Registered>),
}

impl Outcome {
    /// The registration either way.
    pub fn registered(&self) -> &Arc<Registered> {
        match self {
            Self::Created(r, _) | Self::Existing(r) => r,
        }
    }
}
