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
//! Witness cosignature checking is not implemented yet: witnesses, groups and the quorum are
//! parsed, validated and reported, but a checkpoint is accepted on the log signature alone, and
//! every report says so.

use std::collections::BTreeMap;

use verdict_core::note::Verifier;

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

/// A trusted log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The log's verifier key.
    pub key: Verifier,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness's verifier key, checked for shape only: witnesses sign timestamped cosignatures
/// (C2SP tlog-cosignature, key type 0x04) that this version does not verify yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    /// Key name.
    pub name: String,
    /// Key id (8 hex digits).
    pub key_id: String,
    /// Signature type byte (0x01 Ed25519 note signatures, 0x04 cosignature/v1).
    pub key_type: u8,
    /// The verifier key string as given.
    pub vkey: String,
}

impl WitnessKey {
    /// Parse `<name>+<8 hex>+<base64(type ‖ key)>`.
    ///
    /// # Errors
    /// A reason when the shape is wrong.
    pub fn parse(vkey: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("witness key needs three '+'-separated fields".into());
        };
        if name.is_empty() || id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("malformed witness key name or key id".into());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| "witness key is not base64".to_owned())?;
        let (&key_type, rest) = raw
            .split_first()
            .ok_or_else(|| "empty witness key".to_owned())?;
        if rest.len() != 32 {
            return Err("witness public key is not 32 bytes".into());
        }
        Ok(WitnessKey {
            name: name.to_owned(),
            key_id: id.to_ascii_lowercase(),
            key_type,
            vkey: vkey.to_owned(),
        })
    }
}

/// A witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The witness's verifier key.
    pub key: WitnessKey,
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
                ["log", vkey] => policy.logs.push(LogEntry {
                    key: key(line, vkey)?,
                    url: None,
                }),
                ["log", vkey, url] => policy.logs.push(LogEntry {
                    key: key(line, vkey)?,
                    url: Some((*url).to_owned()),
                }),
                ["log", ..] => return Err(err(line, "expected: log <vkey> [url]")),
                ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                    policy.define(line, name)?;
                    let witness = Witness {
                        key: WitnessKey::parse(vkey).map_err(|e| err(line, e))?,
                        url: rest.first().map(|u| (*u).to_owned()),
                    };
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
        Ok(policy)
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

    const LOG: &str =
        "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

    #[test]
    fn parses_full_policy() {
        let text = format!(
            "# comment\n\nlog {LOG} https://log.example\nwitness w1 {LOG}\nwitness w2 {LOG} https://w2\n\
             group g 1 w1 w2 # trailing\ngroup top all g\nquorum top\nchecker {LOG}\n"
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
        let bad = [
            "log".to_owned(),
            "log notakey".to_owned(),
            format!("log {LOG} url extra"),
            format!("witness w {LOG}\nwitness w {LOG}"),
            "group g any missing".to_owned(),
            format!("witness w {LOG}\ngroup g 2 w"),
            format!("witness w {LOG}\ngroup g 0 w"),
            format!("witness w {LOG}\ngroup g many w"),
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
    fn witness_keys_of_cosignature_type() {
        // A cosignature/v1 (type 0x04) witness key is accepted for reporting.
        let w = "witness.example+01234567+BDuN3bNfQZl/KCjlPROiMrQmimWMFxf7fgxTRV3pPgdA";
        let p = Policy::parse(&format!("witness w {w}\nquorum w\n")).unwrap();
        assert_eq!(p.witnesses["w"].key.key_type, 4);
        assert!(Policy::parse("witness w nope+zz+AA\n").is_err());
    }

    #[test]
    fn quorum_none_requires_nothing() {
        let p = Policy::parse("quorum none\n").unwrap();
        assert!(!p.requires_witnesses());
    }
}
