//! C2SP tlog-policy files: which logs and witnesses a verifier trusts, and the witness quorum.
//!
//! One directive per line; `#` starts a comment; blank lines are ignored:
//! - `log <vkey> [url]`: a trusted log, by signed-note verifier key, with an optional URL;
//! - `witness <name> <vkey> [url]`: a witness;
//! - `group <name> <k|all|any> <member>...`: a group of witnesses or groups, satisfied when `k`
//!   (or all, or any one) of its members are;
//! - `quorum <name>`: the witness or group whose cosignatures a checkpoint needs, or `none`.
//!
//! Witnesses and groups share one namespace in which `none` is predefined; a member must be
//! defined before it is used; at most one `quorum` line.
//!
//! Verdict extension (not part of C2SP tlog-policy): `checker <vkey>` names a trusted receipt
//! (checker) key in the same signed-note key format.
//!
//! Witness keys are C2SP tlog-cosignature `cosignature/v1` vkeys (signature type 0x04).
//! [`Policy::check_quorum`] verifies a checkpoint note's cosignatures and evaluates the quorum:
//! a listed witness whose cosignature fails rejects the checkpoint, and a quorum that is not met
//! rejects it too, naming the witnesses that did sign. There is no "not checked" path: a policy
//! that lists witnesses or groups must have a `quorum` line, and a policy without witnesses and
//! without a `quorum` line means `quorum none`. Spec: `spec/witness.md` §8.

use std::collections::{BTreeMap, BTreeSet};

use verdict_core::cosignature::{verify_note, CosignatureError, CosignerKey};
use verdict_core::note::{Note, Verifier};

/// Maximum number of lines of a policy file.
pub const MAX_POLICY_LINES: usize = 10_000;

/// A policy file did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {reason}")]
pub struct PolicyError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// A met quorum: its name and the witnesses (policy names) whose cosignatures verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QuorumReport {
    /// The quorum name, `none` when no cosignature is required.
    pub quorum: String,
    /// Witnesses with a valid cosignature, sorted.
    pub signed: Vec<String>,
}

impl QuorumReport {
    /// One line for reports.
    pub fn human(&self) -> String {
        let who = if self.signed.is_empty() {
            "no witness".to_owned()
        } else {
            self.signed.join(", ")
        };
        if self.quorum == "none" {
            format!("witness quorum none (no cosignature required); cosigned by {who}")
        } else {
            format!("witness quorum {} met: cosigned by {who}", self.quorum)
        }
    }
}

/// A checkpoint that does not satisfy the policy's witnesses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// A listed witness's cosignature is invalid or malformed.
    #[error("witness cosignature rejected: {0}")]
    Cosignature(#[from] CosignatureError),
    /// Not enough valid cosignatures.
    #[error("witness quorum {quorum} not met: valid cosignatures from {} ({} of {listed} listed witnesses)", signed_list(signed), signed.len())]
    NotMet {
        /// The quorum name.
        quorum: String,
        /// The witnesses that did sign (policy names).
        signed: Vec<String>,
        /// How many witnesses the policy lists.
        listed: usize,
    },
}

fn signed_list(signed: &[String]) -> String {
    if signed.is_empty() {
        "no witness".to_owned()
    } else {
        signed.join(", ")
    }
}

/// A trusted log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The log's verifier key.
    pub key: Verifier,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The witness's `cosignature/v1` verifier key.
    pub key: CosignerKey,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// The threshold of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// Every member.
    All,
    /// At least one member.
    Any,
    /// At least this many members.
    AtLeast(usize),
}

/// A group of witnesses and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Threshold.
    pub threshold: Threshold,
    /// Member names (witnesses or earlier groups).
    pub members: Vec<String>,
}

/// A parsed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Trusted logs, in file order.
    pub logs: Vec<LogEntry>,
    /// Witnesses by name.
    pub witnesses: BTreeMap<String, Witness>,
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
    /// The quorum name (`none` when no cosignatures are required), if a `quorum` line was given.
    pub quorum: Option<String>,
    /// Trusted checker (receipt) keys: the Verdict `checker` extension.
    pub checkers: Vec<Verifier>,
}

impl Policy {
    /// Parse a policy file's text.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut policy = Policy::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if line > MAX_POLICY_LINES {
                return Err(err(line, "too many lines"));
            }
            let content = raw.split('#').next().unwrap_or("");
            let words: Vec<&str> = content.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["log", vkey, rest @ ..] if rest.len() <= 1 => {
                    let entry = LogEntry {
                        key: key(line, vkey)?,
                        url: rest.first().map(|u| (*u).to_owned()),
                    };
                    if policy.logs.iter().any(|l| l.key.key() == entry.key.key()) {
                        return Err(err(line, "duplicate log key"));
                    }
                    policy.logs.push(entry);
                }
                ["log", ..] => return Err(err(line, "expected: log <vkey> [url]")),
                ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                    policy.define(line, name)?;
                    let witness = Witness {
                        key: CosignerKey::parse(vkey).map_err(|e| err(line, e))?,
                        url: rest.first().map(|u| (*u).to_owned()),
                    };
                    if policy
                        .witnesses
                        .values()
                        .any(|w| w.key.key() == witness.key.key())
                    {
                        return Err(err(line, "duplicate witness key"));
                    }
                    policy.witnesses.insert((*name).to_owned(), witness);
                }
                ["witness", ..] => return Err(err(line, "expected: witness <name> <vkey> [url]")),
                ["group", name, threshold, members @ ..] if !members.is_empty() => {
                    policy.define(line, name)?;
                    for m in members {
                        if !policy.is_defined(m) {
                            return Err(err(line, format!("undefined member {m:?}")));
                        }
                        if *m == "none" {
                            return Err(err(line, "none cannot be a group member"));
                        }
                    }
                    let threshold = match *threshold {
                        "all" => Threshold::All,
                        "any" => Threshold::Any,
                        k => {
                            let k: usize = k.parse().map_err(|_| {
                                err(line, format!("threshold {k:?} is not all, any or a number"))
                            })?;
                            if k == 0 || k > members.len() {
                                return Err(err(line, format!("threshold {k} out of range")));
                            }
                            Threshold::AtLeast(k)
                        }
                    };
                    let members = members.iter().map(|m| (*m).to_owned()).collect();
                    policy
                        .groups
                        .insert((*name).to_owned(), Group { threshold, members });
                }
                ["group", ..] => {
                    return Err(err(line, "expected: group <name> <k|all|any> <member>..."))
                }
                ["quorum", name] => {
                    if policy.quorum.is_some() {
                        return Err(err(line, "more than one quorum line"));
                    }
                    if *name != "none" && !policy.is_defined(name) {
                        return Err(err(line, format!("undefined quorum {name:?}")));
                    }
                    policy.quorum = Some((*name).to_owned());
                }
                ["quorum", ..] => return Err(err(line, "expected: quorum <name>")),
                ["checker", vkey] => policy.checkers.push(key(line, vkey)?),
                ["checker", ..] => return Err(err(line, "expected: checker <vkey>")),
                [other, ..] => return Err(err(line, format!("unknown directive {other:?}"))),
            }
        }
        if policy.quorum.is_none() && !(policy.witnesses.is_empty() && policy.groups.is_empty()) {
            return Err(err(
                text.lines().count(),
                "witnesses are listed but there is no quorum line",
            ));
        }
        Ok(policy)
    }

    /// Verify the cosignatures of the listed witnesses on a checkpoint note and evaluate the
    /// quorum (spec `witness.md` §8). Lines by keys the policy does not list are ignored.
    ///
    /// # Errors
    /// [`QuorumError::Cosignature`] when a listed witness's cosignature fails (or it signed
    /// twice); [`QuorumError::NotMet`] naming the witnesses that did sign.
    pub fn check_quorum(&self, note: &Note) -> Result<QuorumReport, QuorumError> {
        let keys: Vec<CosignerKey> = self.witnesses.values().map(|w| w.key.clone()).collect();
        let verified = verify_note(note, &keys)?;
        let mut signed = BTreeSet::new();
        for v in &verified {
            for (name, w) in &self.witnesses {
                if w.key.key_id() == v.key_id() && w.key.name() == v.name() {
                    signed.insert(name.clone());
                }
            }
        }
        let quorum = self.quorum.clone().unwrap_or_else(|| "none".to_owned());
        let met = quorum == "none" || self.satisfied(&quorum, &signed, 0);
        let signed: Vec<String> = signed.into_iter().collect();
        if !met {
            return Err(QuorumError::NotMet {
                quorum,
                signed,
                listed: self.witnesses.len(),
            });
        }
        Ok(QuorumReport { quorum, signed })
    }

    /// Whether witness or group `name` witnessed, given the witnesses that signed. Groups only
    /// name earlier definitions, so the recursion ends; `depth` bounds it anyway.
    fn satisfied(&self, name: &str, signed: &BTreeSet<String>, depth: usize) -> bool {
        if self.witnesses.contains_key(name) {
            return signed.contains(name);
        }
        let Some(group) = self.groups.get(name) else {
            return false;
        };
        if depth > MAX_POLICY_LINES {
            return false;
        }
        let count = group
            .members
            .iter()
            .filter(|m| self.satisfied(m, signed, depth + 1))
            .count();
        let need = match group.threshold {
            Threshold::All => group.members.len(),
            Threshold::Any => 1,
            Threshold::AtLeast(k) => k,
        };
        count >= need
    }

    /// Whether the policy requires witness cosignatures (a quorum other than `none`).
    pub fn requires_witnesses(&self) -> bool {
        self.quorum.as_deref().is_some_and(|q| q != "none")
    }

    fn is_defined(&self, name: &str) -> bool {
        name == "none" || self.witnesses.contains_key(name) || self.groups.contains_key(name)
    }

    fn define(&self, line: usize, name: &str) -> Result<(), PolicyError> {
        if self.is_defined(name) {
            return Err(err(line, format!("name {name:?} defined twice")));
        }
        Ok(())
    }
}

fn key(line: usize, vkey: &str) -> Result<Verifier, PolicyError> {
    Verifier::parse(vkey).map_err(|e| err(line, e))
}

fn err(line: usize, reason: impl std::fmt::Display) -> PolicyError {
    PolicyError {
        line,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::cosignature::Cosigner;

    const LOG: &str =
        "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
    const BODY: &str =
        "example.com/log/testdata\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

    fn witness(i: u8) -> Cosigner {
        Cosigner::new(
            &format!("witness.example/w{i}"),
            ed25519_dalek::SigningKey::from_bytes(&[i; 32]),
        )
        .unwrap()
    }

    fn vkey(i: u8) -> String {
        witness(i).verifier().to_string()
    }

    /// A note cosigned by the witnesses `by` (no log signature: only cosignatures matter here).
    fn cosigned(by: &[u8]) -> Note {
        let mut note = Note::new(BODY).unwrap();
        for &i in by {
            note.signatures
                .push(witness(i).cosign(BODY, 1_700_000_000).unwrap());
        }
        note
    }

    #[test]
    fn parses_full_policy() {
        let text = format!(
            "# comment\n\nlog {LOG} https://log.example\nwitness w1 {}\nwitness w2 {} https://w2\n\
             group g 1 w1 w2 # trailing\ngroup top all g\nquorum top\nchecker {LOG}\n",
            vkey(1),
            vkey(2)
        );
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.logs.len(), 1);
        assert_eq!(p.logs[0].url.as_deref(), Some("https://log.example"));
        assert_eq!(p.witnesses.len(), 2);
        assert_eq!(p.groups["g"].threshold, Threshold::AtLeast(1));
        assert_eq!(p.groups["top"].threshold, Threshold::All);
        assert_eq!(p.quorum.as_deref(), Some("top"));
        assert!(p.requires_witnesses());
        assert_eq!(p.checkers.len(), 1);
    }

    #[test]
    fn rejects_bad_lines() {
        let w = vkey(1);
        let bad = [
            "log".to_owned(),
            "log notakey".to_owned(),
            format!("log {LOG} url extra"),
            format!("log {LOG}\nlog {LOG}"),
            format!("witness w {w}\nwitness w {}\nquorum w", vkey(2)),
            format!("witness w {w}\nwitness v {w}\nquorum w"),
            // A signed-note (0x01) key is not a witness key.
            format!("witness w {LOG}\nquorum w"),
            "group g any missing".to_owned(),
            format!("witness w {w}\ngroup g 2 w\nquorum g"),
            format!("witness w {w}\ngroup g 0 w\nquorum g"),
            format!("witness w {w}\ngroup g many w\nquorum g"),
            // Witnesses without a quorum line: no silent "none".
            format!("witness w {w}\n"),
            "quorum nobody".to_owned(),
            "quorum none\nquorum none".to_owned(),
            "frobnicate x".to_owned(),
        ];
        for text in bad {
            assert!(Policy::parse(&text).is_err(), "{text}");
        }
        let e = Policy::parse("\n\nfrobnicate").unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn quorum_none_requires_nothing() {
        let p = Policy::parse("quorum none\n").unwrap();
        assert!(!p.requires_witnesses());
        assert_eq!(p.check_quorum(&cosigned(&[])).unwrap().quorum, "none");
        // No quorum line and no witnesses: none.
        let p = Policy::parse(&format!("log {LOG}\n")).unwrap();
        assert!(p.check_quorum(&cosigned(&[])).is_ok());
    }

    #[test]
    fn quorum_evaluation() {
        let text = format!(
            "witness x1 {}\nwitness x2 {}\nwitness x3 {}\ngroup X 2 x1 x2 x3\n\
             witness y1 {}\ngroup Y any y1\ngroup XY all X Y\nquorum XY\n",
            vkey(1),
            vkey(2),
            vkey(3),
            vkey(4)
        );
        let p = Policy::parse(&text).unwrap();
        let ok = p.check_quorum(&cosigned(&[1, 3, 4])).unwrap();
        assert_eq!(ok.signed, vec!["x1", "x3", "y1"]);
        assert_eq!(ok.human(), "witness quorum XY met: cosigned by x1, x3, y1");
        for by in [&[][..], &[1, 2], &[1, 4], &[4], &[1, 2, 3]] {
            let e = p.check_quorum(&cosigned(by)).unwrap_err();
            assert!(matches!(e, QuorumError::NotMet { .. }), "{by:?}");
        }
        let e = p.check_quorum(&cosigned(&[1])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "witness quorum XY not met: valid cosignatures from x1 (1 of 4 listed witnesses)"
        );
        // Unknown witnesses do not count.
        assert!(p.check_quorum(&cosigned(&[1, 4, 9])).is_err());
        // A listed witness's bad cosignature rejects, even when the quorum would be met.
        let mut note = cosigned(&[1, 2, 4]);
        note.signatures[1].signature[20] ^= 1;
        assert!(matches!(
            p.check_quorum(&note),
            Err(QuorumError::Cosignature(_))
        ));
        // A cosignature over another checkpoint does not count.
        let mut note = cosigned(&[1, 2, 4]);
        note.text = BODY.replace("\n3\n", "\n4\n");
        assert!(p.check_quorum(&note).is_err());
    }
}
