//! `verdict consistency`: prove that a newer checkpoint extends an older one (RFC 9162 §2.1.4),
//! with a proof from a file or computed from the log's tiles. Also used by `audit` against its
//! persisted state.

use verdict_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use verdict_core::proof::{consistency_proof, verify_consistency};
use verdict_core::tile::{TileHashSource, TileReader};
use verdict_core::Hash;

use crate::error::{Check, CliError};
use crate::trust::Trust;
use crate::verify::checkpoint_failure;

/// Maximum number of hashes in a consistency proof (two per tree level).
pub const MAX_PROOF_HASHES: usize = 128;

/// What `verdict consistency` established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsistencyReport {
    /// Always `"valid"`.
    pub result: &'static str,
    /// Log origin.
    pub origin: String,
    /// The log key that verified both checkpoints.
    pub log_key: String,
    /// Old tree size.
    pub old_size: u64,
    /// New tree size.
    pub new_size: u64,
    /// Number of proof hashes checked.
    pub proof_hashes: usize,
    /// The witness quorum both checkpoints met, when a policy file was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnesses: Option<String>,
}

impl ConsistencyReport {
    /// The one-line human summary.
    pub fn human(&self) -> String {
        let mut out = format!(
            "OK: checkpoint {} size {} extends size {} ({} proof hashes; both signed by log key {})",
            self.origin, self.new_size, self.old_size, self.proof_hashes, self.log_key
        );
        if let Some(w) = &self.witnesses {
            out.push_str("; ");
            out.push_str(w);
        }
        out
    }
}

/// Open a signed checkpoint note with the matching trusted log key, and enforce the policy's
/// witness quorum on it ([`Trust::check_quorum`], spec `witness.md` §8). `verify`,
/// `consistency` and `audit` accept checkpoints only through here (or, for bundles, the same two
/// checks in [`crate::verify::verify_bundle`]).
///
/// # Errors
/// [`CliError::Failed`] (`checkpoint_signature`, `cosignature`, `witness_quorum`);
/// [`CliError::Usage`] without a log key.
pub fn open_checkpoint(note: &[u8], trust: &Trust) -> Result<VerifiedCheckpoint, CliError> {
    trust.require_log_key()?;
    let key = trust
        .log_key_for(note)
        .ok_or_else(|| CliError::usage("no trusted log key"))?;
    let verified = Checkpoint::open(note, key, &[]).map_err(checkpoint_failure)?;
    trust.check_quorum(note)?;
    Ok(verified)
}

/// Check the cheap relations between two verified checkpoints: same origin, no rollback, no
/// fork at equal size. Returns `true` when a proof is still needed.
///
/// # Errors
/// [`CliError::Failed`] with `rollback`, `fork` or `consistency`.
pub fn precheck(old: &Checkpoint, new: &Checkpoint) -> Result<bool, CliError> {
    if old.origin != new.origin {
        return Err(CliError::failed(
            Check::Consistency,
            format!("origins differ: {:?} and {:?}", old.origin, new.origin),
        ));
    }
    if new.size < old.size {
        return Err(CliError::failed(
            Check::Rollback,
            format!(
                "log {} is at size {} but size {} was already verified: the log was rolled back",
                new.origin, new.size, old.size
            ),
        ));
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(CliError::failed(
                Check::Fork,
                format!(
                    "two signed checkpoints of size {} with different roots {} and {}: the log forked",
                    new.size, old.root, new.root
                ),
            ));
        }
        return Ok(false);
    }
    Ok(old.size.0 != 0)
}

/// Verify `proof` between two checkpoints (after [`precheck`]).
///
/// # Errors
/// [`CliError::Failed`] (`consistency`).
pub fn check_proof(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> Result<(), CliError> {
    verify_consistency(old.size, new.size, proof, &old.root, &new.root).map_err(|e| {
        CliError::failed(
            Check::Consistency,
            format!(
                "size {} does not extend size {}: {e} (the log forked or the proof is bad)",
                new.size, old.size
            ),
        )
    })
}

/// Build the consistency proof from the log's tiles (which the proof check then authenticates),
/// fetched beforehand with [`crate::fetch::HttpTiles::for_consistency`].
///
/// # Errors
/// [`CliError::Network`] or [`CliError::Failed`] (`tiles`).
pub fn proof_from_tiles(
    tiles: &impl TileReader<Error = CliError>,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<Vec<Hash>, CliError> {
    let source = TileHashSource::new(tiles, new.size);
    consistency_proof(&source, old.size, new.size).map_err(|e| {
        use verdict_core::proof::ProveError;
        use verdict_core::tile::TileSourceError;
        match e {
            ProveError::Source(TileSourceError::Read(inner)) => inner,
            other => CliError::failed(Check::Tiles, other),
        }
    })
}

/// Parse a proof file: base64 hashes one per line (blank lines ignored), or JSON with a
/// `proof` (or `hashes`) array of base64 strings.
///
/// # Errors
/// [`CliError::Input`].
pub fn parse_proof(what: &str, bytes: &[u8]) -> Result<Vec<Hash>, CliError> {
    let text = std::str::from_utf8(bytes).map_err(|_| CliError::input(what, "not UTF-8"))?;
    let items: Vec<String> = if text.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| CliError::input(what, e))?;
        let arr = v
            .get("proof")
            .or_else(|| v.get("hashes"))
            .and_then(|a| a.as_array())
            .ok_or_else(|| CliError::input(what, "JSON without a proof array"))?;
        arr.iter()
            .map(|h| {
                h.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| CliError::input(what, "proof item is not a string"))
            })
            .collect::<Result<_, _>>()?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if items.len() > MAX_PROOF_HASHES {
        return Err(CliError::input(what, "too many proof hashes"));
    }
    items
        .iter()
        .map(|h| Hash::from_base64(h).map_err(|e| CliError::input(what, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_file_formats() {
        let h = Hash([7; 32]).to_base64();
        let lines = format!("{h}\n\n{h}\n");
        assert_eq!(parse_proof("f", lines.as_bytes()).unwrap().len(), 2);
        let json = format!("{{\"proof\":[\"{h}\"]}}");
        assert_eq!(parse_proof("f", json.as_bytes()).unwrap().len(), 1);
        assert!(parse_proof("f", b"notbase64!").is_err());
        assert!(parse_proof("f", b"{\"x\":1}").is_err());
        assert!(parse_proof("f", &[0xff]).is_err());
        let many = format!("{h}\n").repeat(MAX_PROOF_HASHES + 1);
        assert!(parse_proof("f", many.as_bytes()).is_err());
    }
}
