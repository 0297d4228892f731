//! The one COSE_Sign1 envelope of Verdict's signed log entries: receipts (spec `receipt.md` §5,
//! §6) and policy statements (spec `policy-statement.md` §5, §6). Both are tagged (18), sign with
//! EdDSA under a 4-byte `kid`, carry an attached payload and an empty unprotected header, and
//! differ only in the protected content type (none for a receipt). Each format decodes its own
//! payload; the envelope rules live here once.

use coset::{iana, CoseSign1, CoseSign1Builder, HeaderBuilder};

use crate::cbor;
use crate::note::{KeyId, Verifier};
use crate::receipt::{ReceiptError, MAX_RECEIPT_SIZE};

fn malformed(reason: impl Into<String>) -> ReceiptError {
    ReceiptError::Malformed {
        reason: reason.into(),
    }
}

/// The COSE_Sign1 of `payload` under `key_id`, with `signature` still to be set.
pub(crate) fn envelope(
    key_id: KeyId,
    content_type: Option<&str>,
    payload: Vec<u8>,
) -> CoseSign1Builder {
    let mut protected = HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA);
    if let Some(ct) = content_type {
        protected = protected.content_type(ct.to_owned());
    }
    CoseSign1Builder::new()
        .protected(protected.key_id(key_id.0.to_vec()).build())
        .payload(payload)
}

/// Tagged bytes of a COSE_Sign1, within [`MAX_RECEIPT_SIZE`].
pub(crate) fn to_tagged_bytes(sign1: CoseSign1) -> Result<Vec<u8>, ReceiptError> {
    use coset::TaggedCborSerializable as _;
    let bytes = sign1
        .to_tagged_vec()
        .map_err(|e| malformed(format!("cose encoding failed: {e}")))?;
    if bytes.len() > MAX_RECEIPT_SIZE {
        return Err(ReceiptError::TooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// Parse a tagged COSE_Sign1: the size bound, one CBOR item without trailing data, tag 18.
pub(crate) fn parse_sign1(bytes: &[u8]) -> Result<CoseSign1, ReceiptError> {
    use coset::AsCborValue as _;
    if bytes.len() > MAX_RECEIPT_SIZE {
        return Err(ReceiptError::TooLarge { len: bytes.len() });
    }
    let ciborium::value::Value::Tag(tag, inner) = cbor::read_one(bytes)? else {
        return Err(malformed("not a tagged cose_sign1"));
    };
    if tag != <CoseSign1 as coset::TaggedCborSerializable>::TAG {
        return Err(malformed(format!("cbor tag {tag} is not cose_sign1 (18)")));
    }
    CoseSign1::from_cbor_value(*inner).map_err(|e| malformed(format!("not a cose_sign1: {e}")))
}

/// Check the envelope's headers and signature length; returns the `kid` and the attached
/// payload. In order: no `crit` (protected, then unprotected), EdDSA, the content type
/// (`None`: absent), a 4-byte `kid`, no other protected parameter, an empty unprotected header,
/// an attached payload, a 64-byte signature.
pub(crate) fn check_envelope<'a>(
    sign1: &'a CoseSign1,
    content_type: Option<&str>,
) -> Result<(KeyId, &'a [u8]), ReceiptError> {
    let header = &sign1.protected.header;
    if let Some(label) = header.crit.first() {
        return Err(ReceiptError::UnknownCritical {
            field: format!("header {label:?}"),
        });
    }
    if !sign1.unprotected.crit.is_empty() {
        return Err(ReceiptError::UnknownCritical {
            field: "crit in unprotected header".into(),
        });
    }
    if header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
        return Err(ReceiptError::UnsupportedAlgorithm);
    }
    let mut rest = header.clone();
    if let Some(ct) = content_type {
        if header.content_type != Some(coset::ContentType::Text(ct.to_owned())) {
            return Err(malformed(format!("content type is not {ct}")));
        }
        rest.content_type = None;
    }
    let key_id = <[u8; 4]>::try_from(header.key_id.as_slice())
        .map(KeyId)
        .map_err(|_| malformed("kid is not 4 bytes"))?;
    rest.alg = None;
    rest.key_id.clear();
    if !rest.is_empty() {
        return Err(malformed("unexpected protected header parameter"));
    }
    if !sign1.unprotected.is_empty() {
        return Err(malformed("unprotected header is not empty"));
    }
    let payload = sign1
        .payload
        .as_deref()
        .ok_or(malformed("detached payload"))?;
    if sign1.signature.len() != ed25519_dalek::SIGNATURE_LENGTH {
        return Err(malformed("signature is not 64 bytes"));
    }
    Ok((key_id, payload))
}

/// Verify a decoded envelope with one of `keys`. `named_key_id` is the key the payload itself
/// names (a receipt's or a statement's `checker_key_id`), which must be the `kid`.
/// Errors, in order: [`ReceiptError::UntrustedKey`], [`ReceiptError::KeyIdMismatch`],
/// [`ReceiptError::BadSignature`].
pub(crate) fn verify(
    sign1: &CoseSign1,
    key_id: KeyId,
    named_key_id: KeyId,
    keys: &[Verifier],
) -> Result<(), ReceiptError> {
    let mut candidates = keys.iter().filter(|k| k.key_id() == key_id).peekable();
    if candidates.peek().is_none() {
        return Err(ReceiptError::UntrustedKey { key_id });
    }
    if named_key_id != key_id {
        return Err(ReceiptError::KeyIdMismatch);
    }
    let tbs = sign1.tbs_data(&[]);
    if candidates.any(|k| k.verify_raw(&tbs, &sign1.signature).is_ok()) {
        Ok(())
    } else {
        Err(ReceiptError::BadSignature { key_id })
    }
}
