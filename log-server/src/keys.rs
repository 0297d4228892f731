//! Key and token files in the data directory.
//!
//! | file | content | mode |
//! |---|---|---|
//! | `log.key` | log signing key, C2SP signed-note private key string; its name is the origin | 0600 |
//! | `checker.key` | checker (receipt) signing key, named `<origin>/checker` | 0600 |
//! | `policy-salt.key` | 32 random bytes (hex) from which policy commitment salts derive | 0600 |
//! | `admin.token` | bearer token of the admin role: policy registration (`POST /v1/policies`) | 0600 |
//! | `agent.token` | bearer token of the default agent (named `default`): `/v1/screen`, `/v1/check` | 0600 |
//! | `agent-<name>.token` | optional further agent tokens, one per named agent (created by the operator) | 0600 |
//! | `auditor.token` | bearer token of the auditor role: `/v1/private/...` | 0600 |
//! | `metrics.token` | bearer token of the metrics role: `GET /metrics` only (issue 16 item 6) | 0600 |
//!
//! Files are created with `create_new` and mode 0600 on first start and never overwritten.
//!
//! ## Roles (issue 11)
//!
//! Three roles ([`crate::auth::Role`]): **admin** (policies and operations), **agent** (screen and
//! check only; every decision's private record holds the agent's name) and **auditor** (private
//! reads); plus **metrics** (`GET /metrics` only, for a Prometheus scraper; issue 16 item 6). An agent name is `default` for `agent.token` and `<name>` for `agent-<name>.token`,
//! where `<name>` is 1 to 32 characters of `a-z`, `0-9`, `-` and `_`.
//!
//! **Migration.** Earlier versions had one `write.token` for policies, screen and check. At start,
//! a `write.token` without an `agent.token` beside it is renamed to `agent.token` (so the agent
//! keeps its token but can no longer change policies), and the server logs a line saying so. A
//! `write.token` beside an existing `agent.token` is ignored, with a warning.
//!
//! ## Token files and expiry
//!
//! Token files hold the token (64 hex digits) on the first non-blank line.
//! Further lines are optional: blank lines, comments starting with `#`, and at most one
//! `expires=<time>` line, where `<time>` is Unix seconds (`expires=1798761600`) or an RFC 3339
//! date-time (`expires=2027-01-01T00:00:00Z`, any offset, optional fraction). A file without an
//! `expires` line never expires, so files created by older versions stay valid:
//!
//! ```text
//! 3f5a...64 hex digits...c2
//! # rotated 2026-11-22 by ops
//! expires=2026-12-31T23:59:59Z
//! ```
//!
//! The expiry is checked on every request ([`crate::auth`]): from that instant the token gets
//! 401 `token_expired`. To rotate, write a new file (mode 0600) and restart the server. A file
//! over 4 KiB, a token that is not 64 hex digits, an unknown `key=value` line, a second `expires`
//! line or an unparsable time stops the server at start ([`KeyError::BadTokenFile`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use verdict_core::note::{NoteError, Signer};
use verdict_core::receipt::Salt;

/// Errors of key and token files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An I/O error on a key file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not hold a valid key.
    #[error("key file {path}: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why the key is invalid.
        #[source]
        source: NoteError,
    },
    /// A token or salt file does not hold 64 hex digits.
    #[error("file {path}: expected 64 hex digits")]
    BadSecret {
        /// The file.
        path: PathBuf,
    },
    /// A token file is not in the token file format (see the module docs).
    #[error("token file {path}, line {line}: {reason}")]
    BadTokenFile {
        /// The file.
        path: PathBuf,
        /// Line of the problem (1-based).
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The configured origin differs from the existing log key's name.
    #[error("configured origin {configured:?} differs from the log key name {existing:?}")]
    OriginMismatch {
        /// Origin in the configuration.
        configured: String,
        /// Name of the existing key.
        existing: String,
    },
}

/// Everything secret the server needs, loaded from (or created in) the data directory.
#[derive(Debug)]
pub struct Keys {
    /// Log key; its name is the origin.
    pub log: Signer,
    /// Checker key (signs receipts).
    pub checker: Signer,
    /// Salt of policy commitments (derived from the salt secret).
    pub policy_salt: Salt,
    /// Admin token (and its optional expiry).
    pub admin_token: ApiToken,
    /// Token of the default agent (`agent.token`, agent name [`DEFAULT_AGENT`]).
    pub agent_token: ApiToken,
    /// Further agent tokens by agent name (`agent-<name>.token`), sorted by name.
    pub named_agent_tokens: Vec<(String, ApiToken)>,
    /// Auditor token (and its optional expiry).
    pub auditor_token: ApiToken,
    /// Metrics token (`GET /metrics` for a Prometheus scraper; and its optional expiry).
    pub metrics_token: ApiToken,
    /// Paths of the files.
    pub paths: KeyPaths,
    /// True when any file was created by this call.
    pub created: bool,
    /// True when this call renamed a legacy `write.token` to `agent.token`.
    pub migrated_write_token: bool,
}

impl Keys {
    /// Every agent token with its agent name, the default agent first.
    pub fn agent_tokens(&self) -> Vec<(String, ApiToken)> {
        let mut out = vec![(DEFAULT_AGENT.to_owned(), self.agent_token.clone())];
        out.extend(self.named_agent_tokens.iter().cloned());
        out
    }
}

/// Name of the agent of `agent.token`.
pub const DEFAULT_AGENT: &str = "default";

/// Paths of the key and token files in a data directory.
#[derive(Clone, Debug)]
pub struct KeyPaths {
    /// `log.key`.
    pub log_key: PathBuf,
    /// `checker.key`.
    pub checker_key: PathBuf,
    /// `policy-salt.key`.
    pub policy_salt: PathBuf,
    /// `admin.token`.
    pub admin_token: PathBuf,
    /// `agent.token` (the default agent).
    pub agent_token: PathBuf,
    /// `auditor.token`.
    pub auditor_token: PathBuf,
    /// `metrics.token`.
    pub metrics_token: PathBuf,
    /// `write.token`, the legacy token migrated to `agent.token` at start.
    pub legacy_write_token: PathBuf,
    /// The data directory (where `agent-<name>.token` files are looked for).
    pub data_dir: PathBuf,
}

impl KeyPaths {
    /// The paths inside `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            log_key: data_dir.join("log.key"),
            checker_key: data_dir.join("checker.key"),
            policy_salt: data_dir.join("policy-salt.key"),
            admin_token: data_dir.join("admin.token"),
            agent_token: data_dir.join("agent.token"),
            auditor_token: data_dir.join("auditor.token"),
            metrics_token: data_dir.join("metrics.token"),
            legacy_write_token: data_dir.join("write.token"),
            data_dir: data_dir.to_owned(),
        }
    }
}

/// Load the keys in `data_dir`, creating any missing one. `origin` names a new log key; when
/// `configured` is true and a log key exists under another name, that is an error.
///
/// # Errors
/// [`KeyError`].
pub fn load_or_create(data_dir: &Path, origin: &str, configured: bool) -> Result<Keys, KeyError> {
    // The data directory is 0700 whatever the umask (issue 13: files at rest).
    crate::at_rest::private_dir(data_dir).map_err(|source| KeyError::Io {
        path: data_dir.to_owned(),
        source,
    })?;
    let paths = KeyPaths::new(data_dir);
    let mut created = false;
    let log = load_or_create_signer(&paths.log_key, origin, &mut created)?;
    if configured && log.name() != origin {
        return Err(KeyError::OriginMismatch {
            configured: origin.to_owned(),
            existing: log.name().to_owned(),
        });
    }
    let checker_name = format!("{}/checker", log.name());
    let checker = load_or_create_signer(&paths.checker_key, &checker_name, &mut created)?;
    let salt_secret = load_or_create_secret(&paths.policy_salt, &mut created)?;
    let migrated_write_token = migrate_write_token(&paths)?;
    let admin_token = load_or_create_token(&paths.admin_token, &mut created)?;
    let agent_token = load_or_create_token(&paths.agent_token, &mut created)?;
    let auditor_token = load_or_create_token(&paths.auditor_token, &mut created)?;
    let metrics_token = load_or_create_token(&paths.metrics_token, &mut created)?;
    let named_agent_tokens = named_agent_tokens(data_dir)?;
    let policy_salt = derive_policy_salt(&salt_secret);
    Ok(Keys {
        log,
        checker,
        policy_salt,
        admin_token,
        agent_token,
        named_agent_tokens,
        auditor_token,
        metrics_token,
        paths,
        created,
        migrated_write_token,
    })
}

/// Rename a legacy `write.token` to `agent.token` when there is no `agent.token` yet (see the
/// module docs). Returns true when it did.
fn migrate_write_token(paths: &KeyPaths) -> Result<bool, KeyError> {
    if !paths.legacy_write_token.exists() {
        return Ok(false);
    }
    if paths.agent_token.exists() {
        tracing::warn!(
            "{} is ignored: {} exists; delete the old file",
            paths.legacy_write_token.display(),
            paths.agent_token.display()
        );
        return Ok(false);
    }
    let io = |source| KeyError::Io {
        path: paths.legacy_write_token.clone(),
        source,
    };
    std::fs::rename(&paths.legacy_write_token, &paths.agent_token).map_err(io)?;
    std::fs::File::open(&paths.data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    tracing::warn!(
        "migrated {} to {}: the old write token is now the token of agent \"default\" and may no longer change policies; policy registration needs {}",
        paths.legacy_write_token.display(),
        paths.agent_token.display(),
        paths.admin_token.display()
    );
    Ok(true)
}

/// Whether `name` is a valid agent name (see the module docs).
pub fn is_agent_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The `agent-<name>.token` files of `data_dir`, sorted by name. A file whose name is not a
/// valid agent name stops the start ([`KeyError::BadTokenFile`]).
fn named_agent_tokens(data_dir: &Path) -> Result<Vec<(String, ApiToken)>, KeyError> {
    let io = |source| KeyError::Io {
        path: data_dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(name) = file
            .strip_prefix("agent-")
            .and_then(|n| n.strip_suffix(".token"))
        else {
            continue;
        };
        if !is_agent_name(name) || name == DEFAULT_AGENT {
            return Err(KeyError::BadTokenFile {
                path,
                line: 0,
                reason: "agent name must be 1 to 32 of a-z, 0-9, - and _, and not `default`",
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        out.push((name.to_owned(), ApiToken::parse(&path, &text)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The policy salt: SHA-256("verdict/policy-salt/v1\n" ‖ secret). One salt per server, so the
/// same policy text always has the same commitment on this server.
pub fn derive_policy_salt(secret: &str) -> Salt {
    let mut h = Sha256::new();
    h.update(b"verdict/policy-salt/v1\n");
    h.update(secret.as_bytes());
    Salt(h.finalize().into())
}

fn load_or_create_signer(path: &Path, name: &str, created: &mut bool) -> Result<Signer, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Signer::parse(text.trim()).map_err(|source| KeyError::Malformed {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = Signer::generate(name).map_err(|source| KeyError::Malformed {
                path: path.to_owned(),
                source,
            })?;
            write_secret_file(path, &format!("{}\n", signer.to_private_key_string()))?;
            *created = true;
            Ok(signer)
        }
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn load_or_create_secret(path: &Path, created: &mut bool) -> Result<String, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(t.to_owned())
            } else {
                Err(KeyError::BadSecret {
                    path: path.to_owned(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_hex32();
            write_secret_file(path, &format!("{secret}\n"))?;
            *created = true;
            Ok(secret)
        }
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Largest token file accepted, in bytes.
const MAX_TOKEN_FILE: usize = 4096;

/// An API bearer token and its optional expiry, as read from a token file (see the module docs).
/// `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    secret: String,
    expires_at: Option<u64>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("secret", &"..")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl ApiToken {
    /// A token with an optional expiry (Unix seconds).
    pub fn new(secret: impl Into<String>, expires_at: Option<u64>) -> Self {
        Self {
            secret: secret.into(),
            expires_at,
        }
    }

    /// The bearer token itself.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires (Unix seconds), if ever.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Parse the text of a token file (see the module docs); `path` only names errors.
    ///
    /// # Errors
    /// [`KeyError::BadTokenFile`] or [`KeyError::BadSecret`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let bad = |line: usize, reason: &'static str| KeyError::BadTokenFile {
            path: path.to_owned(),
            line,
            reason,
        };
        if text.len() > MAX_TOKEN_FILE {
            return Err(bad(1, "file is larger than 4096 bytes"));
        }
        let mut secret = None;
        let mut expires_at = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if secret.is_none() {
                if line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit()) {
                    secret = Some(line.to_owned());
                    continue;
                }
                return Err(KeyError::BadSecret {
                    path: path.to_owned(),
                });
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(bad(n + 1, "expected `expires=<time>` after the token"));
            };
            if key.trim() != "expires" {
                return Err(bad(n + 1, "unknown key (only `expires` is allowed)"));
            }
            if expires_at.is_some() {
                return Err(bad(n + 1, "a second `expires` line"));
            }
            expires_at = Some(parse_time(value.trim()).ok_or_else(|| {
                bad(
                    n + 1,
                    "expires must be Unix seconds or an RFC 3339 date-time such as 2027-01-01T00:00:00Z",
                )
            })?);
        }
        let secret = secret.ok_or_else(|| KeyError::BadSecret {
            path: path.to_owned(),
        })?;
        Ok(Self { secret, expires_at })
    }
}

/// Unix seconds (decimal, at most 20 digits) or an RFC 3339 `date-time` (RFC 3339 §5.6:
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `t`/`z`/space accepted as RFC 3339 §5.6 notes allow)
/// as Unix seconds, parsed by `jiff` (which also accepts a few ISO 8601 variants of the same
/// form). Times before 1970 are rejected; a leap second (`:60`) counts as `:59`.
pub fn parse_time(text: &str) -> Option<u64> {
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(timestamp.as_second()).ok()
}

fn load_or_create_token(path: &Path, created: &mut bool) -> Result<ApiToken, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => ApiToken::parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_hex32();
            write_secret_file(path, &format!("{secret}\n"))?;
            *created = true;
            Ok(ApiToken::new(secret, None))
        }
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// 32 random bytes from the OS, as 64 hex digits.
pub fn random_hex32() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Create `path` with mode 0600 (failing if it exists) and write `content`, then fsync.
///
/// # Errors
/// [`KeyError::Io`].
pub fn write_secret_file(path: &Path, content: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(content.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_reload() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), "example.com/log", true).unwrap();
        assert!(a.created);
        assert_eq!(a.log.name(), "example.com/log");
        assert_eq!(a.checker.name(), "example.com/log/checker");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for p in [
                &a.paths.log_key,
                &a.paths.checker_key,
                &a.paths.admin_token,
                &a.paths.agent_token,
                &a.paths.auditor_token,
                &a.paths.metrics_token,
            ] {
                let mode = std::fs::metadata(p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", p.display());
            }
        }
        let b = load_or_create(dir.path(), "ignored/when-not-configured", false).unwrap();
        assert!(!b.created);
        assert_eq!(b.log.verifier(), a.log.verifier());
        assert_eq!(b.checker.verifier(), a.checker.verifier());
        assert_eq!(b.agent_token, a.agent_token);
        assert_eq!(b.admin_token, a.admin_token);
        assert_eq!(b.metrics_token, a.metrics_token);
        assert_ne!(a.metrics_token, a.admin_token);
        assert_ne!(a.metrics_token, a.auditor_token);
        assert_ne!(a.agent_token, a.auditor_token);
        assert_ne!(a.agent_token, a.admin_token);
        assert_eq!(a.agent_token.expires_at(), None);
        assert!(!format!("{a:?}").contains(a.agent_token.secret()));
        assert!(!format!("{a:?}").contains(a.admin_token.secret()));
        assert!(!a.migrated_write_token);
        assert_eq!(b.policy_salt, a.policy_salt);
        assert!(matches!(
            load_or_create(dir.path(), "other.example/log", true),
            Err(KeyError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn token_files_with_expiry() {
        let p = Path::new("write.token");
        let t = "ab".repeat(32);
        let plain = ApiToken::parse(p, &format!("{t}\n")).unwrap();
        assert_eq!((plain.secret(), plain.expires_at()), (t.as_str(), None));
        for (line, want) in [
            ("expires=1798761600", 1_798_761_600),
            ("expires = 2027-01-01T00:00:00Z", 1_798_761_600),
            ("expires=2027-01-01t01:30:00.123+01:30", 1_798_761_600),
            ("expires=2026-12-31 19:00:00-05:00", 1_798_761_600),
            ("expires=2024-02-29T00:00:00Z", 1_709_164_800),
            ("expires=1970-01-01T00:00:00Z", 0),
            ("expires=2016-12-31T23:59:60Z", 1_483_228_799),
        ] {
            let token = ApiToken::parse(p, &format!("# comment\n{t}\n\n{line}\n")).unwrap();
            assert_eq!(token.expires_at(), Some(want), "{line}");
        }
        for (text, why) in [
            (String::new(), "empty"),
            ("abc\n".to_owned(), "short token"),
            (format!("{t}\nexpires=soon\n"), "bad time"),
            (
                format!("{t}\nexpires=2027-02-29T00:00:00Z\n"),
                "no such day",
            ),
            (format!("{t}\nexpires=2027-01-01T24:00:00Z\n"), "hour 24"),
            (format!("{t}\nexpires=2027-01-01T00:00:00\n"), "no offset"),
            (
                format!("{t}\nexpires=2027-01-01T00:00:00.Z\n"),
                "empty fraction",
            ),
            (
                format!("{t}\nexpires=1969-12-31T23:59:59Z\n"),
                "before 1970",
            ),
            (format!("{t}\nexpires=-5\n"), "negative"),
            (
                format!("{t}\nexpires=99999999999999999999999\n"),
                "overflow",
            ),
            (format!("{t}\nexpires=1\nexpires=2\n"), "two expires"),
            (format!("{t}\nowner=alice\n"), "unknown key"),
            (format!("{t}\n{t}\n"), "second token"),
            (format!("{t}\n{}", "#".repeat(5000)), "too large"),
        ] {
            assert!(ApiToken::parse(p, &text).is_err(), "{why}");
        }
        // Loaded from the data directory, and reported without the secret.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.token"), format!("{t}\nexpires=5\n")).unwrap();
        let keys = load_or_create(dir.path(), "example.com/log", true).unwrap();
        assert_eq!(keys.agent_token.expires_at(), Some(5));
        assert_eq!(keys.auditor_token.expires_at(), None);
        std::fs::write(
            dir.path().join("auditor.token"),
            format!("{t}\nexpires=x\n"),
        )
        .unwrap();
        let err = load_or_create(dir.path(), "example.com/log", true).unwrap_err();
        assert!(
            matches!(err, KeyError::BadTokenFile { line: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(&t));
    }

    #[test]
    fn write_token_migrates_to_the_default_agent() {
        let dir = tempfile::tempdir().unwrap();
        let t = "cd".repeat(32);
        std::fs::write(dir.path().join("write.token"), format!("{t}\n")).unwrap();
        let keys = load_or_create(dir.path(), "example.com/log", true).unwrap();
        assert!(keys.migrated_write_token);
        assert_eq!(keys.agent_token.secret(), t);
        assert_ne!(keys.admin_token.secret(), t);
        assert!(!dir.path().join("write.token").exists());
        // A second start finds nothing to migrate; a stray write.token beside agent.token is
        // ignored.
        std::fs::write(
            dir.path().join("write.token"),
            format!("{}\n", "ef".repeat(32)),
        )
        .unwrap();
        let again = load_or_create(dir.path(), "example.com/log", true).unwrap();
        assert!(!again.migrated_write_token);
        assert_eq!(again.agent_token.secret(), t);
    }

    #[test]
    fn named_agent_tokens_are_loaded_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent-zeta.token"), "aa".repeat(32)).unwrap();
        std::fs::write(dir.path().join("agent-billing_bot.token"), "bb".repeat(32)).unwrap();
        let keys = load_or_create(dir.path(), "example.com/log", true).unwrap();
        let names: Vec<String> = keys.agent_tokens().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["default", "billing_bot", "zeta"]);
        std::fs::write(dir.path().join("agent-Bad Name.token"), "cc".repeat(32)).unwrap();
        assert!(matches!(
            load_or_create(dir.path(), "example.com/log", true),
            Err(KeyError::BadTokenFile { .. })
        ));
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("log.key"), "garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path(), "x", false),
            Err(KeyError::Malformed { .. })
        ));
    }
}
