//! `verdict policies --log URL`: the policy registration history of a log, with every
//! registration proven. Spec: `spec/policy-statement.md`.
//!
//! For each name of `GET /v1/policies` and each version of `GET /v1/policies/{name}/versions`
//! (what the server claims), the entry at the claimed index is fetched from the tiles, its
//! inclusion in the checkpoint (signed by a trusted log key) is recomputed, it must be a policy
//! statement signed by a trusted checker key, and its record must match the claim (name,
//! version, commitment), with each version's predecessor being the previous version's
//! commitment. Any mismatch fails check `policy_registration` (exit 1).

use std::sync::Arc;

use serde::Serialize;
use verdict_core::checkpoint::Checkpoint;

use crate::audit::check::{verify_sample, Outcome};
use crate::consistency::open_checkpoint;
use crate::error::{Check, CliError};
use crate::fetch::{Fetcher, HttpTiles, MAX_CHECKPOINT_BODY};
use crate::trust::Trust;

/// Largest JSON answer read from the policy endpoints.
const MAX_POLICIES_BODY: usize = 4 * 1024 * 1024;

/// One proven registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// Policy name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Policy commitment (hex).
    pub commitment: String,
    /// Log index of the policy statement.
    pub index: u64,
    /// Who registered it (admin token name, `policies-dir`, `migrated`).
    pub registered_by: String,
    /// Registration time (ms since the Unix epoch).
    pub time_ms: u64,
    /// Registered with `force=true` despite error-level findings.
    pub forced: bool,
}

/// What `verdict policies` established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoliciesReport {
    /// Always `"valid"`.
    pub result: &'static str,
    /// Log URL.
    pub log: String,
    /// Tree size of the checkpoint the registrations are proven against.
    pub tree_size: u64,
    /// Every registration, by name then version order.
    pub registrations: Vec<Registration>,
}

impl PoliciesReport {
    /// Human output: one line per registration.
    pub fn human(&self) -> String {
        let mut out = format!(
            "OK: {} policy registrations proven in {} (size {})\n",
            self.registrations.len(),
            self.log,
            self.tree_size
        );
        for r in &self.registrations {
            out.push_str(&format!(
                "  {} {} at index {} commitment {} by {}{}\n",
                r.name,
                r.version,
                r.index,
                r.commitment,
                r.registered_by,
                if r.forced { " (forced)" } else { "" }
            ));
        }
        out
    }
}

fn fail(reason: impl Into<String>) -> CliError {
    CliError::failed(Check::PolicyRegistration, reason.into())
}

fn text<'a>(v: &'a serde_json::Value, field: &str) -> Result<&'a str, CliError> {
    v.get(field)
        .and_then(|x| x.as_str())
        .ok_or_else(|| CliError::input("policy list", format!("no {field} in {v}")))
}

async fn get_json(fetcher: &Fetcher, path: &str) -> Result<serde_json::Value, CliError> {
    let bytes = fetcher.get(path, MAX_POLICIES_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| CliError::input(path, e))
}

/// Prove the registration history of the log at `log`.
///
/// # Errors
/// [`CliError::Failed`] (`checkpoint_signature`, `inclusion`, `policy_registration`, ...) naming
/// the failed check; [`CliError::Network`], [`CliError::Usage`], [`CliError::Input`].
pub async fn run(log: &str, trust: &Trust) -> Result<PoliciesReport, CliError> {
    trust.require_log_key()?;
    trust.require_checker_key()?;
    let fetcher = Fetcher::new(log)?;
    let note = fetcher.get("checkpoint", MAX_CHECKPOINT_BODY).await?;
    let cp: Checkpoint = open_checkpoint(&note, trust)?.checkpoint().clone();
    let tiles = HttpTiles::new(fetcher.clone());
    let list = get_json(&fetcher, "v1/policies").await?;
    let names: Vec<String> = list
        .as_array()
        .ok_or_else(|| CliError::input("v1/policies", "not a list"))?
        .iter()
        .map(|p| text(p, "name").map(str::to_owned))
        .collect::<Result<_, _>>()?;
    let checkers = Arc::new(trust.checker_keys.clone());
    let cp = Arc::new(cp);
    let mut registrations = Vec::new();
    for name in names {
        let versions = get_json(&fetcher, &format!("v1/policies/{name}/versions")).await?;
        let mut predecessor: Option<verdict_core::Hash> = None;
        let listed = versions.get("versions").and_then(|v| v.as_array());
        for v in listed.into_iter().flatten() {
            let index = v
                .get("index")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| CliError::input("versions", format!("no index in {v}")))?;
            if index >= cp.size.0 {
                return Err(fail(format!(
                    "{name} {}: index {index} is not in the checkpoint of size {}",
                    text(v, "version")?,
                    cp.size
                )));
            }
            let verified = verify_sample(&tiles, &cp, index, &checkers).await?;
            let Outcome::Statement(statement) = verified else {
                return Err(fail(format!(
                    "entry {index}, claimed as the registration of {name}, is a receipt"
                )));
            };
            let r = statement.record();
            let claimed = (name.as_str(), text(v, "version")?, text(v, "commitment")?);
            let commitment = r.policy_commitment.to_hex();
            if claimed
                != (
                    r.name.as_str(),
                    r.policy_version.as_str(),
                    commitment.as_str(),
                )
            {
                return Err(fail(format!(
                    "entry {index} registers {} {} {commitment}, the server claims {} {} {}",
                    r.name, r.policy_version, claimed.0, claimed.1, claimed.2
                )));
            }
            if r.predecessor != predecessor {
                return Err(fail(format!(
                    "{name} {}: predecessor does not name the previous version",
                    r.policy_version
                )));
            }
            predecessor = Some(r.policy_commitment);
            registrations.push(Registration {
                name: r.name.clone(),
                version: r.policy_version.clone(),
                commitment,
                index,
                registered_by: r.registered_by.clone(),
                time_ms: r.time_ms,
                forced: r.analysis.forced,
            });
        }
    }
    Ok(PoliciesReport {
        result: "valid",
        log: fetcher.base().to_owned(),
        tree_size: cp.size.0,
        registrations,
    })
}
