//! The per-item checks of `verify-package` (spec `evidence-package.md` §5, §6, §9): a policy
//! file and its statement bundle, a record against its receipt, and a record's approvals.

use super::*;

/// Read and check one policy file: canonical, exact fields, file name = commitment, and the
/// commitment opens with `canonical` and `salt` (spec §6).
pub(super) fn policy_file(
    pkg: &Package,
    path: &str,
    hex: &str,
) -> Result<(Hash, PolicyFile), CliError> {
    let bytes = pkg.read(path).map_err(package_failure)?;
    let bad = |why: &str| fail(Check::PolicyCommitment, path, why);
    let v = parse_canonical(&bytes).map_err(|e| fail(Check::PolicyCommitment, path, e))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    if sorted
        != [
            "canonical",
            "commitment",
            "name",
            "salt",
            "statement_index",
            "text",
            "version",
        ]
    {
        return Err(bad(
            "fields are not canonical, commitment, name, salt, statement_index, text, version",
        ));
    }
    let s = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a field is not a string"))
    };
    if s("commitment")? != hex {
        return Err(bad("commitment differs from the file name"));
    }
    let commitment = Hash::from_slice(&hex::decode(hex).map_err(|_| bad("file name is not hex"))?)
        .map_err(|_| bad("file name is not 32 bytes of hex"))?;
    if hex != commitment.to_hex() {
        return Err(bad("file name is not lowercase hex"));
    }
    let salt = Salt::from_hex(s("salt")?).map_err(|_| bad("salt is not 64 hex digits"))?;
    if salt.to_hex() != s("salt")? {
        return Err(bad("salt is not lowercase hex"));
    }
    let canonical = s("canonical")?;
    s("text")?;
    if commit(CommitmentTag::Policy, &salt, canonical.as_bytes()) != commitment {
        return Err(bad("canonical and salt do not open the commitment"));
    }
    let statement_index = obj
        .get("statement_index")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("statement_index is not an integer"))?;
    // Approver keys from the canonical policy (spec approval.md §5).
    let parsed: Value =
        serde_json::from_str(canonical).map_err(|_| bad("canonical is not JSON"))?;
    let mut approvers = Vec::new();
    if let Some(list) = parsed
        .get("policy")
        .and_then(|p| p.get("approvers"))
        .and_then(Value::as_array)
    {
        for a in list {
            let key = a
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("approver without a key"))?;
            approvers.push(Verifier::parse(key).map_err(|_| bad("approver key does not parse"))?);
        }
    }
    Ok((
        commitment,
        PolicyFile {
            name: s("name")?.to_owned(),
            version: s("version")?.to_owned(),
            statement_index,
            approvers,
            seen: false,
        },
    ))
}

/// A policy statement before the entry range, proven by its bundle against the package's
/// checkpoint (spec §6).
pub(super) fn check_policy_bundle(
    pkg: &Package,
    path: &str,
    cp_bytes: &[u8],
    commitment: Hash,
    pf: &PolicyFile,
    trust: &Trust,
) -> Result<(), CliError> {
    let bytes = pkg.read(path).map_err(|e| match e {
        PackageError::Missing { .. } => fail(Check::Layout, path, "missing"),
        other => package_failure(other),
    })?;
    let bad = |why: String| fail(Check::PolicyRegistration, path, why);
    let bundle = ProofBundle::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    if bundle.encode() != bytes {
        return Err(bad("not in canonical tlog-proof form".to_owned()));
    }
    if bundle.checkpoint != cp_bytes {
        return Err(bad("not against the package's checkpoint".to_owned()));
    }
    let key = trust
        .log_key_for(cp_bytes)
        .ok_or_else(|| CliError::usage("no trusted log key"))?;
    let verified = bundle.verify(key).map_err(|e| bad(e.to_string()))?;
    if verified.index().0 != pf.statement_index {
        return Err(bad(
            "index is not the policy file's statement_index".to_owned()
        ));
    }
    let s = PolicyStatement::verify(verified.entry(), &trust.checker_keys)
        .map_err(|e| bad(format!("policy statement: {e}")))?;
    let r = s.record();
    if r.policy_commitment != commitment || r.name != pf.name || r.policy_version != pf.version {
        return Err(bad("the statement registers another policy".to_owned()));
    }
    Ok(())
}

/// Check the record of `index` against its receipt (spec §5) and its approvals (approval.md §5).
pub(super) fn check_record(
    index: u64,
    receipt: Option<&Statement>,
    record: Option<&Value>,
    policies: &HashMap<Hash, PolicyFile>,
) -> Result<(), CliError> {
    let here = format!("{} (index {index})", paths::RECORDS);
    let bad = |check: Check, why: &str| fail(check, &here, why);
    let (st, rec) = match (receipt, record) {
        (None, None) => return Ok(()),
        (Some(st), Some(rec)) => (st, rec),
        (None, Some(_)) => return Err(bad(Check::Records, "a policy statement has a record")),
        (Some(_), None) => return Err(bad(Check::Records, "a receipt has no record")),
    };
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    if s("policy") != Some(st.policy_commitment.to_hex().as_str()) {
        return Err(bad(
            Check::Records,
            "policy differs from the receipt's policy commitment",
        ));
    }
    let salt = s("salt")
        .and_then(|h| Salt::from_hex(h).ok().filter(|salt| salt.to_hex() == h))
        .ok_or_else(|| {
            bad(
                Check::ActionCommitment,
                "salt is not 64 lowercase hex digits",
            )
        })?;
    // The receipt publishes a commitment to the request id under the action salt (spec
    // `receipt.md` §7.1); receipts written before that rule hold the id as sent.
    let opens_request_id = s("request_id")
        .is_some_and(|id| published_request_id(&salt, id) == st.request_id || id == st.request_id);
    if !opens_request_id {
        return Err(bad(
            Check::RequestId,
            "request_id does not open the receipt's published request id",
        ));
    }
    let canonical =
        s("canonical_action").ok_or_else(|| bad(Check::ActionCommitment, "no canonical_action"))?;
    if commit(CommitmentTag::Action, &salt, canonical.as_bytes()) != st.action_commitment {
        return Err(bad(
            Check::ActionCommitment,
            "canonical_action and salt do not open the receipt's action commitment",
        ));
    }
    let projected: Value = serde_json::from_str(canonical)
        .map_err(|_| bad(Check::Records, "canonical_action is not JSON"))?;
    let action = rec
        .get("action")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(Check::Records, "action is not an object"))?;
    if let Some(p) = projected.as_object() {
        for (k, v) in p {
            if !v.is_null() && action.get(k) != Some(v) {
                return Err(bad(
                    Check::Records,
                    "action disagrees with canonical_action",
                ));
            }
        }
    }
    let approvers = policies
        .get(&st.policy_commitment)
        .map(|p| p.approvers.as_slice())
        .unwrap_or_default();
    match (rec.get("escalation"), rec.get("approvals")) {
        (Some(esc), None) => check_escalation(&here, st, esc, approvers),
        (None, Some(approvals)) => {
            let request_id = s("request_id").unwrap_or_default();
            check_resubmission(&here, st, approvals, request_id, approvers)
        }
        (None, None) if st.approvers.is_empty() => Ok(()),
        (None, None) => Err(fail(
            Check::Approval,
            &here,
            "receipt lists approvers but the record has neither an escalation nor approvals",
        )),
        (Some(_), Some(_)) => Err(fail(
            Check::Approval,
            &here,
            "the record has both an escalation and resubmission approvals",
        )),
    }
}

/// The approvals of a resubmission (`POST /v1/check` with approvals, spec
/// `decision-semantics.md` §7): each verifies over the receipt's action commitment and the
/// record's request id with an approver key of the policy, and the approving key ids are the
/// receipt's `approvers`.
fn check_resubmission(
    here: &str,
    st: &Statement,
    approvals: &Value,
    request_id: &str,
    approvers: &[Verifier],
) -> Result<(), CliError> {
    let bad = |why: String| fail(Check::Approval, here, why);
    let list = approvals
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("approvals is not a non-empty array".to_owned()))?;
    let mut approving: BTreeSet<KeyId> = BTreeSet::new();
    for a in list {
        let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
        let approver = resubmission::verify(
            approvers,
            field("approver"),
            field("signature"),
            &st.action_commitment,
            request_id,
        )
        .map_err(|e| bad(e.to_string()))?;
        approving.insert(approver.key_id);
    }
    let listed: BTreeSet<KeyId> = st.approvers.iter().copied().collect();
    if approving != listed {
        return Err(bad(
            "approving key ids differ from the receipt's approvers".to_owned()
        ));
    }
    Ok(())
}

/// The approvals and rejections of an escalation's final decision (spec `approval.md` §5).
fn check_escalation(
    here: &str,
    st: &Statement,
    esc: &Value,
    approvers: &[Verifier],
) -> Result<(), CliError> {
    let bad = |why: String| fail(Check::Approval, here, why);
    let id = esc
        .get("id")
        .and_then(Value::as_str)
        .and_then(|t| parse_escalation_id(t).ok())
        .ok_or_else(|| bad("escalation id is not 32 hex digits".to_owned()))?;
    let expires_ms = esc
        .get("expires_ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("escalation expires_ms is not an integer".to_owned()))?;
    let mut approving: BTreeSet<KeyId> = BTreeSet::new();
    for a in esc
        .get("approvals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
        let verdict = Verdict::from_name(field("verdict")).map_err(|e| bad(e.to_string()))?;
        let signed = SignedApproval::from_wire(field("key_id"), field("signature"))
            .map_err(|e| bad(e.to_string()))?;
        let message = ApprovalMessage {
            escalation_id: id,
            action_commitment: st.action_commitment,
            policy_commitment: st.policy_commitment,
            verdict,
            expires_ms,
        };
        let v = signed
            .verify(&message, approvers)
            .map_err(|e| bad(e.to_string()))?;
        if v.name != field("name") {
            return Err(bad(format!(
                "approval by {} names {}",
                v.name,
                field("name")
            )));
        }
        if verdict == Verdict::Approve {
            approving.insert(v.key_id);
        }
    }
    let listed: BTreeSet<KeyId> = st.approvers.iter().copied().collect();
    if approving != listed {
        return Err(bad(
            "approving key ids differ from the receipt's approvers".to_owned()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::note::Signer;
    use verdict_core::receipt::{Decision, Kind};

    fn statement(action_commitment: Hash, approvers: Vec<KeyId>) -> Statement {
        Statement {
            version: 1,
            checker_key_id: KeyId([0; 4]),
            policy_commitment: Hash([2; 32]),
            policy_version: "1.0.0".to_owned(),
            action_commitment,
            decision: Decision::Allow,
            kind: Kind::Check,
            fail_closed: false,
            violated_rules: Vec::new(),
            matched_variables: Vec::new(),
            undetermined_variables: Vec::new(),
            approvers,
            time_ms: 0,
            request_id: String::new(),
            checker_version: String::new(),
            solver_version: String::new(),
        }
    }

    /// A resubmission's approvals in the record (spec §5) are verified offline: over the
    /// receipt's action commitment and the record's request id, by an approver of the policy,
    /// and their key ids are the receipt's approvers.
    #[test]
    fn resubmission_approvals_are_verified_against_the_receipt() {
        let alice = Signer::new("alice", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
        let mallory =
            Signer::new("mallory", ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap();
        let keys = [alice.verifier()];
        let c = Hash([7; 32]);
        let st = statement(c, vec![alice.key_id()]);
        let record = |who: &str, signer: &Signer, commitment: &Hash, id: &str| {
            serde_json::json!([{"approver": who,
                "signature": resubmission::sign(signer, commitment, id)}])
        };
        let good = record("alice", &alice, &c, "a5");
        check_resubmission("r", &st, &good, "a5", &keys).unwrap();
        let refused = |approvals: &Value, id: &str, st: &Statement| {
            let e = check_resubmission("r", st, approvals, id, &keys).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("approval"), "{text}");
            text
        };
        // Another request id or commitment than the signed ones.
        refused(&good, "a6", &st);
        refused(&record("alice", &alice, &Hash([8; 32]), "a5"), "a5", &st);
        // A key that is not the policy's approver, under either name.
        refused(&record("mallory", &mallory, &c, "a5"), "a5", &st);
        refused(&record("alice", &mallory, &c, "a5"), "a5", &st);
        // The receipt lists no approver, or another one, than the record proves.
        refused(&good, "a5", &statement(c, Vec::new()));
        refused(&good, "a5", &statement(c, vec![mallory.key_id()]));
        // Not a non-empty array.
        refused(&serde_json::json!([]), "a5", &st);
        refused(&serde_json::json!({"approver": "alice"}), "a5", &st);
    }
}
