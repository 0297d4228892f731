//! C2SP tlog-witness wire formats: the `add-checkpoint` request body, the `409 Conflict` size
//! body and the cosignature lines of a `200` response. Spec: `spec/witness.md` §5.
//!
//! Transport-agnostic: shared by the server ([`crate::server`]) and the push client
//! ([`crate::client`]).

use sha2::{Digest as _, Sha256};
use verdict_core::note::{NoteSignature, MAX_NOTE_SIZE};
use verdict_core::{Hash, TreeSize};

/// At most this many consistency proof lines (c2sp tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body: a note of [`MAX_NOTE_SIZE`] plus the old size and proof lines.
pub const MAX_REQUEST_BODY: usize = MAX_NOTE_SIZE + 4096;
/// Content type of the `409 Conflict` body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A request body that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed add-checkpoint request: {reason}")]
pub struct ProtocolError {
    /// What was wrong.
    pub reason: &'static str,
}

/// The body of `POST /add-checkpoint`: `old <size>\n`, up to 63 base64 proof lines, an empty
/// line, then the signed checkpoint note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old: TreeSize,
    /// Consistency proof from `old` to the checkpoint's size (RFC 9162 §2.1.4).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, exactly as sent.
    pub checkpoint: Vec<u8>,
}

impl AddCheckpointRequest {
    /// Parse a request body (size-bounded; every line ends in a newline; canonical decimal;
    /// each proof line base64 of 32 bytes). The checkpoint note itself is parsed later.
    ///
    /// # Errors
    /// [`ProtocolError`].
    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        let bad = |reason| ProtocolError { reason };
        if body.len() > MAX_REQUEST_BODY {
            return Err(bad("body too large"));
        }
        let mut rest = body;
        let no_newline = bad("line does not end in a newline");
        let old = split_line(&mut rest)
            .ok_or(no_newline.clone())?
            .strip_prefix(b"old ")
            .and_then(parse_decimal)
            .ok_or(bad("first line is not `old <decimal size>`"))?;
        let mut proof = Vec::new();
        loop {
            let line = split_line(&mut rest).ok_or(no_newline.clone())?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 proof lines"));
            }
            let text = std::str::from_utf8(line).map_err(|_| bad("proof line is not ASCII"))?;
            proof.push(Hash::from_base64(text).map_err(|_| bad("proof line is not a hash"))?);
        }
        Ok(AddCheckpointRequest {
            old: TreeSize(old),
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old.0).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(h.to_base64().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// Take the next line (without its newline) off `rest`; `None` when no newline is left.
fn split_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = rest.iter().position(|&b| b == b'\n')?;
    let (line, tail) = rest.split_at(end);
    *rest = tail.get(1..).unwrap_or_default();
    Some(line)
}

/// The body of a `409 Conflict`: the witness's size in decimal and a newline.
pub fn size_body(size: TreeSize) -> String {
    format!("{}\n", size.0)
}

/// Parse a `409 Conflict` body.
///
/// # Errors
/// [`ProtocolError`] when it is not a canonical decimal and a newline.
pub fn parse_size_body(body: &[u8]) -> Result<TreeSize, ProtocolError> {
    body.strip_suffix(b"\n")
        .and_then(parse_decimal)
        .map(TreeSize)
        .ok_or(ProtocolError {
            reason: "409 body is not a decimal size and a newline",
        })
}

/// The body of a `200` response: one signature line per cosignature.
pub fn cosignature_body(lines: &[NoteSignature]) -> String {
    lines.iter().map(NoteSignature::to_line).collect()
}

/// Parse the body of a `200` response: one or more note signature lines, each ending in a
/// newline (at most 100).
///
/// # Errors
/// [`ProtocolError`].
pub fn parse_cosignature_body(body: &[u8]) -> Result<Vec<NoteSignature>, ProtocolError> {
    let bad = |reason| ProtocolError { reason };
    let text = std::str::from_utf8(body).map_err(|_| bad("response is not UTF-8"))?;
    let text = text
        .strip_suffix('\n')
        .ok_or(bad("response does not end in a newline"))?;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() > verdict_core::note::MAX_SIGNATURES {
        return Err(bad("too many signature lines"));
    }
    lines
        .into_iter()
        .map(|l| NoteSignature::parse_line(l).map_err(|_| bad("not a signature line")))
        .collect()
}

/// Lowercase hex SHA-256 of an origin: the path segment of the monitoring endpoint
/// `GET /<origin hash>/checkpoint` and the name of the state file.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// ASCII decimal without sign or leading zeros (except `0`), fitting a `u64`.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.iter().all(u8::is_ascii_digit)
        && (text == b"0" || !text.starts_with(b"0"));
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_spec_example_shape() {
        let req = AddCheckpointRequest {
            old: TreeSize(20_852_014),
            proof: vec![Hash([1; 32]), Hash([2; 32])],
            checkpoint: "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— x AAAA\n"
                .as_bytes()
                .to_vec(),
        };
        let body = req.encode();
        assert!(body.starts_with(b"old 20852014\nAQEB"));
        assert_eq!(AddCheckpointRequest::parse(&body).unwrap(), req);
        let empty = AddCheckpointRequest {
            old: TreeSize(0),
            proof: vec![],
            checkpoint: b"cp".to_vec(),
        };
        assert_eq!(empty.encode(), b"old 0\n\ncp");
    }

    #[test]
    fn malformed_requests() {
        let h = Hash([3; 32]).to_base64();
        let too_many = format!("old 1\n{}\nx", format!("{h}\n").repeat(64));
        for bad in [
            "old 01\n\nx".to_owned(),
            "old -1\n\nx".to_owned(),
            "old 1".to_owned(),
            "old\n\nx".to_owned(),
            "new 1\n\nx".to_owned(),
            "old 1\nAAAA\n\nx".to_owned(),
            format!("old 1\n{h}"),
            too_many,
            "old 18446744073709551616\n\nx".to_owned(),
        ] {
            assert!(
                AddCheckpointRequest::parse(bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn size_and_cosignature_bodies() {
        assert_eq!(parse_size_body(b"42\n").unwrap(), TreeSize(42));
        assert!(parse_size_body(b"42").is_err());
        assert!(parse_size_body(b"042\n").is_err());
        let sig = NoteSignature {
            name: "w".into(),
            key_id: verdict_core::note::KeyId([1, 2, 3, 4]),
            signature: vec![9; 72],
        };
        let body = cosignature_body(&[sig.clone(), sig.clone()]);
        assert_eq!(
            parse_cosignature_body(body.as_bytes()).unwrap(),
            vec![sig.clone(), sig]
        );
        assert!(parse_cosignature_body(b"").is_err());
        assert!(parse_cosignature_body(b"nope\n").is_err());
        assert_eq!(origin_hash("example.com/log").len(), 64, "hex sha-256");
    }

    /// The example request and response bodies of c2sp.org/tlog-witness, byte for byte: they
    /// parse, and encoding the parsed values gives the same bytes back.
    #[test]
    fn c2sp_tlog_witness_example_bodies() {
        let request = "old 20852014\n\
            PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
            jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
            5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
            /6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
            \n\
            example.com/behind-the-sofa\n\
            20852163\n\
            CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
            \n\
            \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
            \u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
        let req = AddCheckpointRequest::parse(request.as_bytes()).unwrap();
        assert_eq!(req.old, TreeSize(20_852_014));
        assert_eq!(req.proof.len(), 4);
        assert!(req
            .checkpoint
            .starts_with(b"example.com/behind-the-sofa\n20852163\n"));
        let note = verdict_core::note::Note::parse(&req.checkpoint).unwrap();
        assert_eq!(
            note.signatures.len(),
            2,
            "the checkpoint MAY carry several signatures"
        );
        assert_eq!(req.encode(), request.as_bytes());

        let response = "\u{2014} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n\
            \u{2014} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n\
            \u{2014} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n";
        let lines = parse_cosignature_body(response.as_bytes()).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].name, "witness.example/w2");
        assert_eq!(
            lines[0].signature.len(),
            72,
            "timestamp (8) and Ed25519 signature (64)"
        );
        assert_eq!(cosignature_body(&lines), response);

        // The 409 body: the size in decimal and a newline.
        assert_eq!(size_body(TreeSize(20_852_014)), "20852014\n");
    }
}
