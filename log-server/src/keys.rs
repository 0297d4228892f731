//! Key and token files in the data directory.
//!
//! | file | content | mode |
//! |---|---|---|
//! | `log.key` | log signing key, C2SP signed-note private key string; its name is the origin | 0600 |
//! | `checker.key` | checker (receipt) signing key, named `<origin>/checker` | 0600 |
//! | `policy-salt.key` | 32 random bytes (hex) from which policy commitment salts derive | 0600 |
//! | `write.token` | bearer token of the write API (`/v1/policies`, `/v1/screen`, `/v1/check`) | 0600 |
//! | `auditor.token` | bearer token of `/v1/private/...` | 0600 |
//!
//! Files are created with `create_new` and mode 0600 on first start and never overwritten.

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
    /// Write token.
    pub write_token: String,
    /// Auditor token.
    pub auditor_token: String,
    /// Paths of the files.
    pub paths: KeyPaths,
    /// True when any file was created by this call.
    pub created: bool,
}

/// Paths of the key and token files in a data directory.
#[derive(Clone, Debug)]
pub struct KeyPaths {
    /// `log.key`.
    pub log_key: PathBuf,
    /// `checker.key`.
    pub checker_key: PathBuf,
    /// `policy-salt.key`.
    pub policy_salt: PathBuf,
    /// `write.token`.
    pub write_token: PathBuf,
    /// `auditor.token`.
    pub auditor_token: PathBuf,
}

impl KeyPaths {
    /// The paths inside `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            log_key: data_dir.join("log.key"),
            checker_key: data_dir.join("checker.key"),
            policy_salt: data_dir.join("policy-salt.key"),
            write_token: data_dir.join("write.token"),
            auditor_token: data_dir.join("auditor.token"),
        }
    }
}

/// Load the keys in `data_dir`, creating any missing one. `origin` names a new log key; when
/// `configured` is true and a log key exists under another name, that is an error.
///
/// # Errors
/// [`KeyError`].
pub fn load_or_create(data_dir: &Path, origin: &str, configured: bool) -> Result<Keys, KeyError> {
    std::fs::create_dir_all(data_dir).map_err(|source| KeyError::Io {
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
    let write_token = load_or_create_secret(&paths.write_token, &mut created)?;
    let auditor_token = load_or_create_secret(&paths.auditor_token, &mut created)?;
    let policy_salt = derive_policy_salt(&salt_secret);
    Ok(Keys {
        log,
        checker,
        policy_salt,
        write_token,
        auditor_token,
        paths,
        created,
    })
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
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
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
                &a.paths.write_token,
                &a.paths.auditor_token,
            ] {
                let mode = std::fs::metadata(p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", p.display());
            }
        }
        let b = load_or_create(dir.path(), "ignored/when-not-configured", false).unwrap();
        assert!(!b.created);
        assert_eq!(b.log.verifier(), a.log.verifier());
        assert_eq!(b.checker.verifier(), a.checker.verifier());
        assert_eq!(b.write_token, a.write_token);
        assert_ne!(a.write_token, a.auditor_token);
        assert_eq!(b.policy_salt, a.policy_salt);
        assert!(matches!(
            load_or_create(dir.path(), "other.example/log", true),
            Err(KeyError::OriginMismatch { .. })
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
