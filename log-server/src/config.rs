//! Server configuration: a TOML file plus `VERDICT_*` environment overrides.
//!
//! [`Config`] is the configuration reference: every field is documented with its default. A TOML
//! file (`verdict-server serve --config FILE`) sets any subset of the fields; then each environment
//! variable `VERDICT_<FIELD NAME IN UPPER CASE>` overrides its field (e.g. `VERDICT_LISTEN=0.0.0.0:80`,
//! `VERDICT_MAX_PENDING=50000`). Environment values are read as numbers or booleans when they
//! parse as one and as strings otherwise. Other `VERDICT_*` variables (such as `VERDICT_CONFIG`)
//! are not configuration fields and are ignored; unknown keys in the file are an error.
//!
//! The layers are merged by `figment` (defaults, then the TOML file, then the environment), and
//! the set of field names comes from the [`Config`] struct itself, so it cannot drift from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format as _, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Errors of loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file (with environment overrides applied) is not a valid configuration.
    #[error("invalid configuration: {source}")]
    Invalid {
        /// The error (names the field, and the file or variable it came from).
        #[source]
        source: Box<figment::Error>,
    },
    /// A value is out of its allowed range.
    #[error("invalid configuration field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The TLS settings of PostgreSQL (`sslmode`/`sslrootcert` in `postgres_url`,
    /// `postgres_ca_file`) are unusable (spec `spec/storage-postgres.md` §1.1).
    #[error("invalid configuration: {source}")]
    PostgresTls {
        /// What is wrong (never quotes the URL).
        #[source]
        source: crate::storage::postgres::sslmode::PgTlsError,
    },
}

/// The `verdict-server` configuration. Every field is optional in the file; the default is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory: the sled store (`store/`), the log key (`log.key`), the checker key
    /// (`checker.key`), the policy salt secret (`policy-salt.key`), the admin, agent, auditor and
    /// metrics tokens (`admin.token`, `agent.token`, `auditor.token`, `metrics.token`). Created on
    /// first start. Default `./verdict-data`.
    pub data_dir: PathBuf,
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// A separate address for `GET /metrics` (Prometheus), e.g. `127.0.0.1:9100`. When set,
    /// `/metrics` is served there without a token (keep it on a private interface) and the main
    /// listener answers it 404. Default: none, and `/metrics` is on the main listener with the
    /// metrics token (`metrics.token`) or the admin token.
    pub metrics_listen: Option<SocketAddr>,
    /// Log origin (C2SP tlog-checkpoint origin line; also the log key's name). A schema-less
    /// URL without spaces or `+`. Default: the name of an existing log key in `data_dir`; for a
    /// new data directory `verdict.localhost/<listen address>`, e.g.
    /// `verdict.localhost/127.0.0.1:8080`. Once the log key exists the origin cannot change.
    pub origin: Option<String>,
    /// Directory of policy files loaded at start: every `*.toml` file in it that is a policy (test
    /// suites such as `*.cases.toml` are skipped). Default `testdata/policies`. A missing
    /// directory is an error only when set explicitly.
    pub policies_dir: PathBuf,
    /// Maximum request body in bytes; larger bodies get 413. Default 262144 (256 KiB).
    pub max_body_bytes: usize,
    /// Request timeout in milliseconds; a request taking longer gets 503. Default 10000.
    pub request_timeout_ms: u64,
    /// Time a client has to send a complete request head (request line and headers), counted
    /// from when the server starts reading it; it also bounds idle keep-alive connections.
    /// Slower connections are closed without an answer. Default 10000.
    pub header_read_timeout_ms: u64,
    /// Sequencer: maximum entries per batch. Default 256.
    pub batch_max_entries: usize,
    /// Sequencer: maximum age of a batch in milliseconds before it is flushed. Default 50.
    pub batch_max_age_ms: u64,
    /// Backpressure: maximum entries sequenced but not yet integrated; beyond it writes get 503
    /// with `Retry-After`. Default 65536.
    pub max_pending: usize,
    /// Checker threads (each owns its Z3 context and warm solvers). Default 0 = number of CPUs.
    pub checker_threads: usize,
    /// Bound of one whole decision in milliseconds, counted from when the check is handed to
    /// the checker pool (time queued for a checker thread, building a warm solver and every
    /// solver call included). At the deadline the running solver call is interrupted and the
    /// decision fails closed: a `deny` with `fail_closed: true`, logged and answered like any
    /// decision; no work for it continues. Must be below `request_timeout_ms`. Default 2000.
    pub check_timeout_ms: u64,
    /// Bound of the analysis of a policy at registration in milliseconds (all its solver
    /// queries together). A policy whose analysis cannot finish in time is not registered (422
    /// `policy_has_errors`, finding `analysis-incomplete`) unless registered with `force=true`,
    /// which records the incomplete analysis as an error-level finding in the statement. Must
    /// be below `request_timeout_ms`. Default 5000.
    pub analysis_timeout_ms: u64,
    /// `GET /health` is 200 only while the latest checkpoint was signed within this many seconds.
    /// Default 30.
    pub health_max_age_secs: u64,
    /// `Cache-Control: max-age` of `GET /checkpoint` in seconds (at most 5). Default 1.
    pub checkpoint_max_age_secs: u64,
    /// How many request ids are remembered for replay detection (409 on a different action).
    /// Default 100000.
    pub request_id_window: usize,
    /// Lifetime of an escalation in seconds (issue 15, spec `approval.md` §1): an escalation
    /// not approved or rejected within it is logged as `deny` (fail closed). Default 86400.
    pub escalation_ttl_s: u64,
    /// Format of the log lines on stderr: `text` (human-readable, the default) or `json` (one JSON
    /// object per line, with the event's fields, for log collectors). The level filter is
    /// `RUST_LOG` (default `info,tower_http=warn`).
    pub log_format: LogFormat,
    /// The checkpoint lock: the last checkpoint the log signed, kept outside the store and
    /// written durably before each checkpoint is published (spec `spec/checkpoint-lock.md`). At
    /// start the store must equal or extend it, or the server refuses to start (exit 3). Put it
    /// on another volume than the store (or a replicated mount) so that restoring or losing the
    /// store cannot roll it back. Default `<data_dir>/checkpoint.lock`.
    pub checkpoint_lock: Option<PathBuf>,
    /// Witnesses the log pushes every new checkpoint to (C2SP tlog-witness; spec
    /// `spec/witness.md` §9, guide `docs/witness-guide.md`), one `[[witness]]` table each with
    /// `name`, `vkey` (the witness's verifier key, `<name>+<hex key id>+<base64 0x04‖key>`) and
    /// `url` (its submission prefix, e.g. `http://127.0.0.1:7380`). Default: none.
    pub witness: Vec<WitnessConfig>,
    /// Cosignatures needed before a checkpoint counts as witnessed: `GET /v1/bundle/{i}` and
    /// `POST /v1/check?witnessed=true` serve only checkpoints cosigned by at least this many of
    /// the `[[witness]]` entries. `0`: none required (bundles use the latest checkpoint, as
    /// without witnesses, and cosignatures are still collected). Default: all configured
    /// witnesses. At most the number of witnesses.
    pub witness_quorum: Option<usize>,
    /// Timeout of one request to a witness in milliseconds (each witness gets 3 attempts per
    /// checkpoint with backoff), and the longest time `?witnessed=true` waits for a quorum.
    /// Default 5000.
    pub witness_timeout_ms: u64,
    /// Storage backend: `sled` (embedded, the default; the store is `<data_dir>/store`) or
    /// `postgres` (PostgreSQL at [`Config::postgres_url`]; the server creates and migrates its
    /// tables, spec `spec/storage-postgres.md`). Keys, tokens and the checkpoint lock stay files
    /// in either case.
    pub storage: StorageBackend,
    /// PostgreSQL connection URL, e.g. `postgresql://verdict:PASSWORD@db.internal:5432/verdict`
    /// (or the `host=… user=… dbname=…` form). Required with `storage = "postgres"`. It may carry
    /// a password: keep the config file readable by the server's user only, or set it with
    /// `VERDICT_POSTGRES_URL`; it is never printed. TLS follows libpq: `sslmode=disable`,
    /// `prefer`, `require`, `verify-ca` or `verify-full`, and `sslrootcert=FILE` (or `system`);
    /// without `sslmode`, `verify-full` for a host on another machine and `prefer` for a Unix
    /// socket or loopback address (spec `spec/storage-postgres.md` §1.1). Default: none.
    pub postgres_url: Option<PostgresUrl>,
    /// PEM file of the CA(s) that signed the PostgreSQL server's certificate, for
    /// `sslmode=verify-full` / `verify-ca` (the same as `sslrootcert` in `postgres_url`; set one
    /// of the two). Read and checked at start. Default: none.
    pub postgres_ca_file: Option<PathBuf>,
    /// Maximum connections in the PostgreSQL pool. Default 8.
    pub postgres_pool_size: usize,
    /// Bound on establishing one PostgreSQL connection, in milliseconds. Default 5000.
    pub postgres_connect_timeout_ms: u64,
    /// Bound on one storage call on PostgreSQL (waiting for a pooled connection included), in
    /// milliseconds; past it the call fails (a write gets 503 `storage_unavailable`, never a
    /// decision without its log entry). Default 10000.
    pub postgres_timeout_ms: u64,
    /// Several frontends on one database (spec `spec/storage-postgres.md` §5): how often a
    /// server that is not the integrator tries to take the integrator lock, in milliseconds.
    /// Default 1000.
    pub postgres_takeover_interval_ms: u64,
    /// `idle_session_timeout` of the integrator-lock session, in milliseconds: an integrator
    /// that is paused or cut off from the database loses the lock after at most this long (one
    /// that dies loses it at once). Default 5000.
    pub postgres_lock_timeout_ms: u64,
    /// How often the published state and staging are polled besides `LISTEN`/`NOTIFY`, in
    /// milliseconds (a lost notification delays by at most this). Default 250.
    pub postgres_poll_ms: u64,
}

/// One `[[witness]]` entry of [`Config::witness`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// A name for logs (usually the key name).
    pub name: String,
    /// The witness's cosigner verifier key (`verdict-witness keygen` prints it).
    pub vkey: String,
    /// Base URL of the witness (`POST <url>/add-checkpoint`).
    pub url: String,
}

/// Storage backend of the log ([`Config::storage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Embedded sled store in `<data_dir>/store`.
    #[default]
    Sled,
    /// PostgreSQL at `postgres_url`.
    Postgres,
}

/// A PostgreSQL connection URL ([`Config::postgres_url`]); `Debug` does not print it (it may
/// hold a password).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PostgresUrl(pub String);

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresUrl(<redacted>)")
    }
}

/// Format of the server's log lines ([`Config::log_format`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("verdict-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            origin: None,
            policies_dir: PathBuf::from("testdata/policies"),
            max_body_bytes: 256 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            batch_max_entries: 256,
            batch_max_age_ms: 50,
            max_pending: 65_536,
            checker_threads: 0,
            check_timeout_ms: 2_000,
            analysis_timeout_ms: 5_000,
            health_max_age_secs: 30,
            checkpoint_max_age_secs: 1,
            request_id_window: 100_000,
            escalation_ttl_s: 86_400,
            log_format: LogFormat::Text,
            checkpoint_lock: None,
            witness: Vec::new(),
            witness_quorum: None,
            witness_timeout_ms: 5_000,
            storage: StorageBackend::Sled,
            postgres_url: None,
            postgres_ca_file: None,
            postgres_pool_size: 8,
            postgres_connect_timeout_ms: 5_000,
            postgres_timeout_ms: 10_000,
            postgres_takeover_interval_ms: 1_000,
            postgres_lock_timeout_ms: 5_000,
            postgres_poll_ms: 250,
        }
    }
}

impl Config {
    /// Load from an optional TOML file, then apply `VERDICT_*` overrides from `env`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or field.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml_and_env(&text, env)
    }

    /// Parse TOML text and apply `VERDICT_*` overrides.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] or [`ConfigError::Field`].
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let invalid = |source| ConfigError::Invalid {
            source: Box::new(source),
        };
        let defaults = Value::serialize(Config::default()).map_err(invalid)?;
        let fields: Vec<String> = defaults
            .as_dict()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        let mut figment = Figment::from(Serialized::defaults(defaults)).merge(Toml::string(text));
        for (key, value) in env {
            let Some(field) = key.strip_prefix("VERDICT_") else {
                continue;
            };
            let field = field.to_ascii_lowercase();
            if !fields.contains(&field) {
                continue;
            }
            let value = value
                .parse::<Value>()
                .unwrap_or_else(|never| match never {});
            figment = figment.merge(Serialized::global(&field, value));
        }
        let config: Config = figment.extract().map_err(invalid)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, field: &'static str, reason: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Field { field, reason })
            }
        };
        check(
            self.max_body_bytes >= 1024,
            "max_body_bytes",
            "must be at least 1024",
        )?;
        check(
            self.batch_max_entries >= 1,
            "batch_max_entries",
            "must be at least 1",
        )?;
        check(self.max_pending >= 1, "max_pending", "must be at least 1")?;
        check(
            self.metrics_listen != Some(self.listen),
            "metrics_listen",
            "must differ from listen",
        )?;
        check(
            self.request_timeout_ms >= 1,
            "request_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.header_read_timeout_ms >= 1,
            "header_read_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.check_timeout_ms >= 1,
            "check_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.analysis_timeout_ms >= 1,
            "analysis_timeout_ms",
            "must be at least 1",
        )?;
        // A decision or an analysis that outlived its request would go on burning CPU after
        // the client has its 503 (issue 13): both bounds end before the request's.
        check(
            self.check_timeout_ms < self.request_timeout_ms,
            "check_timeout_ms",
            "must be below request_timeout_ms",
        )?;
        check(
            self.analysis_timeout_ms < self.request_timeout_ms,
            "analysis_timeout_ms",
            "must be below request_timeout_ms",
        )?;
        check(
            self.checkpoint_max_age_secs <= 5,
            "checkpoint_max_age_secs",
            "must be at most 5",
        )?;
        check(
            self.health_max_age_secs >= 1,
            "health_max_age_secs",
            "must be at least 1",
        )?;
        check(
            self.witness_timeout_ms >= 1,
            "witness_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.witness_quorum.unwrap_or(0) <= self.witness.len(),
            "witness_quorum",
            "must be at most the number of [[witness]] entries",
        )?;
        for w in &self.witness {
            check(
                verdict_core::cosignature::CosignerKey::parse(&w.vkey).is_ok(),
                "witness.vkey",
                "must be a cosignature/v1 verifier key",
            )?;
            check(
                w.url.starts_with("http://") || w.url.starts_with("https://"),
                "witness.url",
                "must be an http:// or https:// URL",
            )?;
        }
        check(
            self.storage != StorageBackend::Postgres || self.postgres_url.is_some(),
            "postgres_url",
            "is required with storage = \"postgres\"",
        )?;
        if let (StorageBackend::Postgres, Some(url)) = (self.storage, &self.postgres_url) {
            crate::storage::postgres::tls::validate(&url.0, self.postgres_ca_file.as_deref())
                .map_err(|source| ConfigError::PostgresTls { source })?;
        }
        check(
            (1..=1000).contains(&self.postgres_pool_size),
            "postgres_pool_size",
            "must be in 1..=1000",
        )?;
        check(
            self.postgres_connect_timeout_ms >= 1,
            "postgres_connect_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.postgres_timeout_ms >= 1,
            "postgres_timeout_ms",
            "must be at least 1",
        )?;
        check(
            (10..=3_600_000).contains(&self.postgres_takeover_interval_ms),
            "postgres_takeover_interval_ms",
            "must be in 10..=3600000",
        )?;
        check(
            (100..=3_600_000).contains(&self.postgres_lock_timeout_ms),
            "postgres_lock_timeout_ms",
            "must be in 100..=3600000",
        )?;
        check(
            (10..=60_000).contains(&self.postgres_poll_ms),
            "postgres_poll_ms",
            "must be in 10..=60000",
        )?;
        if let Some(origin) = &self.origin {
            check(
                valid_origin(origin),
                "origin",
                "must be non-empty, without spaces or '+'",
            )?;
        }
        Ok(())
    }

    /// The witness quorum in effect ([`Config::witness_quorum`], default all witnesses).
    pub fn witness_quorum(&self) -> usize {
        self.witness_quorum.unwrap_or(self.witness.len())
    }

    /// [`Config::witness_timeout_ms`] as a duration.
    pub fn witness_timeout(&self) -> Duration {
        Duration::from_millis(self.witness_timeout_ms)
    }

    /// The origin for a new log: the configured one, or `verdict.localhost/<listen>`.
    pub fn default_origin(&self) -> String {
        self.origin
            .clone()
            .unwrap_or_else(|| format!("verdict.localhost/{}", self.listen))
    }

    /// Path of the checkpoint lock: `checkpoint_lock`, or `<data_dir>/checkpoint.lock`.
    pub fn checkpoint_lock_path(&self) -> PathBuf {
        self.checkpoint_lock
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoint.lock"))
    }

    /// The PostgreSQL settings, when `storage = "postgres"` (`None` for sled).
    pub fn postgres(&self) -> Option<crate::storage::postgres::PostgresConfig> {
        let url = self.postgres_url.as_ref()?;
        (self.storage == StorageBackend::Postgres).then(|| {
            crate::storage::postgres::PostgresConfig {
                url: url.0.clone(),
                ca_file: self.postgres_ca_file.clone(),
                pool_size: self.postgres_pool_size,
                connect_timeout: Duration::from_millis(self.postgres_connect_timeout_ms),
                op_timeout: Duration::from_millis(self.postgres_timeout_ms),
                takeover_interval: Duration::from_millis(self.postgres_takeover_interval_ms),
                lock_timeout: Duration::from_millis(self.postgres_lock_timeout_ms),
                poll_interval: Duration::from_millis(self.postgres_poll_ms),
            }
        })
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Header-read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Bound of one whole decision.
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }

    /// Bound of a policy's analysis at registration.
    pub fn analysis_timeout(&self) -> Duration {
        Duration::from_millis(self.analysis_timeout_ms)
    }

    /// Number of checker threads (resolving 0 to the CPU count).
    pub fn checker_threads(&self) -> usize {
        if self.checker_threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.checker_threads
        }
    }
}

/// An origin (and key name) is non-empty printable ASCII/UTF-8 without whitespace or `+`
/// (C2SP signed-note key names; tlog-checkpoint origin).
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin.len() <= 255
        && !origin
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::from_toml_and_env("", Vec::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.default_origin(), "verdict.localhost/127.0.0.1:8080");
    }

    #[test]
    fn file_then_env() {
        let c = Config::from_toml_and_env(
            "listen = \"127.0.0.1:9000\"\nmax_pending = 10\n",
            vec![
                ("VERDICT_MAX_PENDING".into(), "20".into()),
                ("VERDICT_DATA_DIR".into(), "/tmp/x".into()),
                ("VERDICT_ORIGIN".into(), "example.com/log".into()),
                ("OTHER".into(), "1".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_pending, 20);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.default_origin(), "example.com/log");
    }

    #[test]
    fn log_format_from_file_or_env() {
        assert_eq!(Config::default().log_format, LogFormat::Text);
        let file = Config::from_toml_and_env("log_format = \"json\"", Vec::new()).unwrap();
        assert_eq!(file.log_format, LogFormat::Json);
        let env = Config::from_toml_and_env(
            "log_format = \"json\"",
            vec![("VERDICT_LOG_FORMAT".into(), "text".into())],
        )
        .unwrap();
        assert_eq!(env.log_format, LogFormat::Text);
        assert!(Config::from_toml_and_env("log_format = \"xml\"", Vec::new()).is_err());
    }

    #[test]
    fn storage_backend_and_postgres_settings() {
        let c = Config::default();
        assert_eq!(c.storage, StorageBackend::Sled);
        assert!(c.postgres().is_none());
        let c = Config::from_toml_and_env(
            "storage = \"postgres\"\npostgres_url = \"postgresql://v:secret@db/verdict?sslmode=require\"\npostgres_pool_size = 3\n",
            vec![("VERDICT_POSTGRES_TIMEOUT_MS".into(), "1500".into())],
        )
        .unwrap();
        let pg = c.postgres().unwrap();
        assert_eq!(pg.url, "postgresql://v:secret@db/verdict?sslmode=require");
        assert_eq!(pg.pool_size, 3);
        assert_eq!(pg.op_timeout, Duration::from_millis(1500));
        assert_eq!(pg.takeover_interval, Duration::from_secs(1));
        assert_eq!(pg.lock_timeout, Duration::from_secs(5));
        assert_eq!(pg.poll_interval, Duration::from_millis(250));
        let tuned = Config::from_toml_and_env(
            "postgres_takeover_interval_ms = 200\npostgres_lock_timeout_ms = 1500\npostgres_poll_ms = 50\n",
            Vec::new(),
        )
        .unwrap();
        assert_eq!(tuned.postgres_takeover_interval_ms, 200);
        assert_eq!(tuned.postgres_lock_timeout_ms, 1500);
        assert_eq!(tuned.postgres_poll_ms, 50);
        assert!(
            Config::from_toml_and_env("postgres_takeover_interval_ms = 0", Vec::new()).is_err()
        );
        assert!(Config::from_toml_and_env("postgres_lock_timeout_ms = 10", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("postgres_poll_ms = 0", Vec::new()).is_err());
        assert!(!format!("{c:?}").contains("secret"));
        let env = Config::from_toml_and_env(
            "",
            vec![
                ("VERDICT_STORAGE".into(), "postgres".into()),
                (
                    "VERDICT_POSTGRES_URL".into(),
                    "host=/run/pg dbname=v".into(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(env.postgres().unwrap().url, "host=/run/pg dbname=v");
        assert!(Config::from_toml_and_env("storage = \"postgres\"", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("storage = \"mysql\"", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("postgres_pool_size = 0", Vec::new()).is_err());
    }

    #[test]
    fn postgres_tls_settings_are_checked_at_load() {
        let pg = |url: &str, env: Vec<(String, String)>| {
            Config::from_toml_and_env(
                &format!("storage = \"postgres\"\npostgres_url = \"{url}\"\n"),
                env,
            )
        };
        // A database on another machine without a CA: refused, saying what to set.
        let err = pg("postgresql://v:secret@db.internal/v", Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify-full"), "{err}");
        assert!(err.contains("postgres_ca_file"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = pg(
            "postgresql://v:secret@db/v?sslmode=verify-everything",
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sslmode must be"), "{err}");
        // A missing CA file (from the environment) is an error at load.
        let err = pg(
            "postgresql://db.internal/v?sslmode=verify-full",
            vec![(
                "VERDICT_POSTGRES_CA_FILE".into(),
                "/nonexistent/ca.pem".into(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        // Loopback needs nothing; sled ignores the URL's settings.
        assert!(pg("postgresql://127.0.0.1:5432/v", Vec::new()).is_ok());
        assert!(Config::from_toml_and_env(
            "postgres_url = \"postgresql://db.internal/v?sslmode=verify-full\"",
            Vec::new()
        )
        .is_ok());
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        assert!(Config::from_toml_and_env("nope = 1", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("max_pending = \"x\"", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("checkpoint_max_age_secs = 60", Vec::new()).is_err());
        assert!(Config::from_toml_and_env("origin = \"a b\"", Vec::new()).is_err());
        // Work bounds end before the request's (issue 13).
        for toml in [
            "request_timeout_ms = 2000",
            "request_timeout_ms = 1500\ncheck_timeout_ms = 1000",
            "check_timeout_ms = 10000",
        ] {
            assert!(
                Config::from_toml_and_env(toml, Vec::new()).is_err(),
                "{toml}"
            );
        }
        assert!(Config::from_toml_and_env(
            "request_timeout_ms = 6000\ncheck_timeout_ms = 5999\nanalysis_timeout_ms = 5999",
            Vec::new()
        )
        .is_ok());
        assert!(Config::from_toml_and_env(
            "",
            vec![("VERDICT_LISTEN".into(), "not an address".into())]
        )
        .is_err());
        // The metrics listener is another address (issue 16 item 6), from the file or the env.
        assert!(Config::from_toml_and_env(
            "listen = \"127.0.0.1:9000\"\nmetrics_listen = \"127.0.0.1:9000\"",
            Vec::new()
        )
        .is_err());
        let c = Config::from_toml_and_env(
            "",
            vec![("VERDICT_METRICS_LISTEN".into(), "127.0.0.1:9100".into())],
        )
        .unwrap();
        assert_eq!(
            c.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
    }

    #[test]
    fn witnesses_quorum_defaults_to_all_and_is_bounded() {
        let w = verdict_core::cosignature::Cosigner::generate("witness.test/w1")
            .unwrap()
            .verifier()
            .to_string();
        let one =
            format!("[[witness]]\nname = \"w1\"\nvkey = \"{w}\"\nurl = \"http://127.0.0.1:1\"\n");
        let c = Config::from_toml_and_env(&one, Vec::new()).unwrap();
        assert_eq!(c.witness.len(), 1);
        assert_eq!(c.witness_quorum(), 1);
        let c =
            Config::from_toml_and_env(&format!("witness_quorum = 0\n{one}"), Vec::new()).unwrap();
        assert_eq!(c.witness_quorum(), 0);
        assert_eq!(Config::default().witness_quorum(), 0);
        for bad in [
            format!("witness_quorum = 2\n{one}"),
            one.replace(&w, "notakey"),
            one.replace("http://", "ftp://"),
            format!("witness_timeout_ms = 0\n{one}"),
            format!("{one}extra = 1\n"),
        ] {
            assert!(
                Config::from_toml_and_env(&bad, Vec::new()).is_err(),
                "{bad}"
            );
        }
    }
}
