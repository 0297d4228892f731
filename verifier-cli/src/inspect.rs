//! `verdict inspect`: decode and print a bundle or receipt WITHOUT verifying anything.

use base64::Engine as _;
use verdict_core::bundle::ProofBundle;
use verdict_core::checkpoint::Checkpoint;
use verdict_core::note::Note;
use verdict_core::receipt::{Receipt, Statement};

use crate::error::CliError;
use crate::names::{decision_name, kind_name};

/// The header every inspect output starts with.
pub const NOT_VERIFIED: &str =
    "NOT VERIFIED: decoded only; no signature, inclusion or commitment was checked (use `verdict verify`)";

/// Decode `bytes` as a proof bundle, a binary COSE receipt or a base64 receipt, in that order.
///
/// # Errors
/// [`CliError::Input`] when the bytes are none of these.
pub fn inspect(what: &str, bytes: &[u8]) -> Result<serde_json::Value, CliError> {
    if bytes.starts_with(b"c2sp.org/tlog-proof@v1") {
        let bundle = ProofBundle::parse(bytes).map_err(|e| CliError::input(what, e))?;
        return Ok(bundle_json(&bundle));
    }
    let receipt = Receipt::decode(bytes).or_else(|first| {
        let text = std::str::from_utf8(bytes).map_err(|_| first.clone())?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| first.clone())?;
        Receipt::decode(&raw)
    });
    match receipt {
        Ok(r) => Ok(serde_json::json!({
            "verified": false,
            "type": "receipt",
            "receipt": receipt_json(&r),
        })),
        Err(e) => Err(CliError::input(
            what,
            format!("neither a proof bundle nor a receipt: {e}"),
        )),
    }
}

fn bundle_json(bundle: &ProofBundle) -> serde_json::Value {
    let checkpoint = match Note::parse(&bundle.checkpoint) {
        Ok(note) => {
            let sigs: Vec<_> = note
                .signatures
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "key_id": s.key_id.to_string()}))
                .collect();
            match Checkpoint::parse(&note.text) {
                Ok(cp) => serde_json::json!({
                    "origin": cp.origin, "size": cp.size.0, "root": cp.root.to_base64(),
                    "extensions": cp.extensions, "signatures": sigs,
                }),
                Err(e) => serde_json::json!({"error": e.to_string(), "signatures": sigs}),
            }
        }
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    let receipt = match &bundle.extra {
        None => serde_json::Value::Null,
        Some(bytes) => match Receipt::decode(bytes) {
            Ok(r) => receipt_json(&r),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        },
    };
    serde_json::json!({
        "verified": false,
        "type": "proof_bundle",
        "index": bundle.index.0,
        "proof": bundle.proof.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
        "checkpoint": checkpoint,
        "receipt": receipt,
    })
}

fn receipt_json(r: &Receipt) -> serde_json::Value {
    let s: &Statement = &r.statement;
    serde_json::json!({
        "key_id": r.key_id.to_string(),
        "signature": hex::encode(&r.signature),
        "statement": {
            "version": s.version,
            "checker_key_id": s.checker_key_id.to_string(),
            "policy_commitment": s.policy_commitment.to_hex(),
            "policy_version": s.policy_version,
            "action_commitment": s.action_commitment.to_hex(),
            "decision": decision_name(s.decision),
            "kind": kind_name(s.kind),
            "fail_closed": s.fail_closed,
            "violated_rules": s.violated_rules,
            "matched_variables": s.matched_variables,
            "undetermined_variables": s.undetermined_variables,
            "approvers": s.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "time_ms": s.time_ms,
            "request_id": s.request_id,
            "checker_version": s.checker_version,
            "solver_version": s.solver_version,
        }
    })
}
