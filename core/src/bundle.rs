//! C2SP tlog-proof offline proof files ("proof bundles"), carrying a receipt in the `extra` line.
//! Spec: `spec/proof-bundle.md`, following c2sp.org/tlog-proof v1.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 receipt>
//! index <decimal leaf index>
//! <base64 proof hash>        (zero or more, leaf sibling first)
//!
//! <signed checkpoint note, verbatim>
//! ```

use base64::Engine as _;

use crate::checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint};
use crate::merkle::{Hash, LeafIndex};
use crate::note::Verifier;
use crate::proof::VerifyError;

/// Maximum size of an encoded bundle (spec `proof-bundle.md` §3).
pub const MAX_BUNDLE_SIZE: usize = 1 << 20;

/// A parsed, unverified tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofBundle {
    /// The `extra` data: for Verdict, the receipt (the log entry itself).
    pub extra: Option<Vec<u8>>,
    /// Leaf index.
    pub index: LeafIndex,
    /// Inclusion proof hashes.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Errors of proof bundles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The file is malformed.
    #[error("malformed proof bundle: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The file is over the size limit.
    #[error("proof bundle over {MAX_BUNDLE_SIZE} bytes")]
    TooLarge,
    /// The bundle carries no entry to prove.
    #[error("proof bundle has no extra (receipt) line")]
    MissingEntry,
    /// The checkpoint did not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof did not verify.
    #[error("inclusion: {0}")]
    Inclusion(#[from] VerifyError),
}

/// A bundle whose checkpoint was signed by the log key and whose entry is included in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle {
    entry: Vec<u8>,
    index: LeafIndex,
    checkpoint: VerifiedCheckpoint,
}

impl VerifiedBundle {
    /// The included entry (the receipt bytes).
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }
    /// Its leaf index.
    pub fn index(&self) -> LeafIndex {
        self.index
    }
    /// The verified checkpoint it is included in.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
}

/// First line of every bundle.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most proof hashes a bundle may carry: a tree of up to 2^64 leaves needs at most 64
/// (spec `proof-bundle.md` §3).
pub const MAX_PROOF_HASHES: usize = 64;

impl ProofBundle {
    /// Encode as `c2sp.org/tlog-proof@v1` text (spec `proof-bundle.md` §2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 + self.proof.len() * 45);
        out.push_str(HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(extra));
            out.push('\n');
        }
        out.push_str("index ");
        out.push_str(&self.index.0.to_string());
        out.push('\n');
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parse, enforcing the size limit and rejecting trailing data (spec `proof-bundle.md` §3).
    /// The checkpoint part must parse as a signed note holding a checkpoint body; its signature
    /// is checked by [`ProofBundle::verify`].
    ///
    /// # Errors
    /// [`BundleError::Malformed`], [`BundleError::TooLarge`], or [`BundleError::Checkpoint`]
    /// when the checkpoint part is not a well-formed checkpoint note.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |reason| BundleError::Malformed { reason };
        if bytes.len() > MAX_BUNDLE_SIZE {
            return Err(BundleError::TooLarge);
        }
        let mut rest = bytes;
        let mut next_line = || -> Result<&[u8], BundleError> {
            let at = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(bad("line does not end in a newline"))?;
            let (line, tail) = rest.split_at(at);
            rest = tail.get(1..).unwrap_or_default();
            Ok(line)
        };
        if next_line()? != HEADER.as_bytes() {
            return Err(bad("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = next_line()?;
        let extra = match line.strip_prefix(b"extra ") {
            Some(data) => {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| bad("extra is not base64"))?;
                line = next_line()?;
                Some(data)
            }
            None => None,
        };
        let index = line
            .strip_prefix(b"index ")
            .ok_or(bad("missing index line"))?;
        let index = std::str::from_utf8(index)
            .ok()
            .and_then(crate::checkpoint::parse_decimal)
            .ok_or(bad("index is not a canonical decimal"))?;
        let mut proof = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            if line.starts_with(b"extra ") || line.starts_with(b"index ") {
                return Err(bad("duplicate or misplaced extra or index line"));
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(bad("too many proof hashes"));
            }
            let hash = std::str::from_utf8(line)
                .ok()
                .and_then(|text| Hash::from_base64(text).ok())
                .ok_or(bad("proof line is not base64 of 32 bytes"))?;
            proof.push(hash);
        }
        let checkpoint = rest.to_vec();
        // The checkpoint runs to the end of the file: a note parse rejects anything after its
        // signature lines, so trailing data cannot hide there.
        let note = crate::note::Note::parse(&checkpoint).map_err(CheckpointError::from)?;
        Checkpoint::parse(&note.text)?;
        Ok(ProofBundle {
            extra,
            index: LeafIndex(index),
            proof,
            checkpoint,
        })
    }

    /// Verify the checkpoint with the log key, then the inclusion of `extra` as the leaf
    /// (spec `proof-bundle.md` §4).
    ///
    /// # Errors
    /// [`BundleError`] naming the failed check.
    pub fn verify(&self, log_key: &Verifier) -> Result<VerifiedBundle, BundleError> {
        self.verify_with_witnesses(log_key, &[])
    }

    /// As [`ProofBundle::verify`], also checking the signatures of the listed witnesses that
    /// cosigned the checkpoint (a failing one rejects; absent ones are not required).
    ///
    /// # Errors
    /// [`BundleError`] naming the failed check.
    pub fn verify_with_witnesses(
        &self,
        log_key: &Verifier,
        witnesses: &[Verifier],
    ) -> Result<VerifiedBundle, BundleError> {
        let entry = self.extra.as_ref().ok_or(BundleError::MissingEntry)?;
        let checkpoint = Checkpoint::open(&self.checkpoint, log_key, witnesses)?;
        let cp = checkpoint.checkpoint();
        crate::proof::verify_inclusion(
            &crate::merkle::leaf_hash(entry),
            self.index,
            cp.size,
            &self.proof,
            &cp.root,
        )?;
        Ok(VerifiedBundle {
            entry: entry.clone(),
            index: self.index,
            checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Signer;

    fn sample() -> ProofBundle {
        let log = Signer::new(
            "example.com/log",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: crate::merkle::TreeSize(5),
            root: Hash([2; 32]),
            extensions: vec![],
        };
        ProofBundle {
            extra: Some(b"receipt".to_vec()),
            index: LeafIndex(3),
            proof: vec![Hash([4; 32]), Hash([5; 32])],
            checkpoint: cp.sign(&log).unwrap(),
        }
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(ProofBundle::parse(&b.encode()).unwrap(), b);
        let mut none = b.clone();
        none.extra = None;
        assert_eq!(ProofBundle::parse(&none.encode()).unwrap(), none);
    }

    #[test]
    fn rejects_garbage() {
        let good = String::from_utf8(sample().encode()).unwrap();
        let cases = [
            good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            good.replacen("index 3", "index 03", 1),
            good.replacen("index 3\n", "index 3\nindex 3\n", 1),
            good.replacen("index 3\n", "index 3\nextra AA==\n", 1),
            good.replacen("extra cmVjZWlwdA==\n", "", 1)
                .replacen("index", "extra AA==\nindex", 1)
                + "x",
            format!("{good}trailing"),
            good.replacen("\n\nexample.com", "\nexample.com", 1),
            good[..good.len() - 1].to_string(),
        ];
        for bad in cases {
            assert!(ProofBundle::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let huge = vec![b'a'; MAX_BUNDLE_SIZE + 1];
        assert_eq!(ProofBundle::parse(&huge), Err(BundleError::TooLarge));
    }
}
