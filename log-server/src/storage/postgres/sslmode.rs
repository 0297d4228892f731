//! The TLS parameters of a PostgreSQL connection string, with libpq's names and meanings (spec
//! `spec/storage-postgres.md` §1.1): `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert` (a PEM file, or `system`).
//!
//! `tokio-postgres` knows only `disable`, `prefer` and `require`, and no `sslrootcert`, so
//! [`split`] takes both parameters out of the string (URL or `key=value` form) before the rest
//! is parsed by `tokio-postgres`; the store then asks for TLS with `tokio-postgres`'
//! `SslMode::Require` for `require`, `verify-ca` and `verify-full` (never a fallback to plain
//! text) and checks the certificate itself (`tls.rs`).
//!
//! Without `sslmode` the mode is `verify-full` when any host is on another machine, and
//! `prefer` when every host is a Unix socket or a loopback address (`localhost`, `127.0.0.0/8`,
//! `::1`): stricter than libpq's `prefer` everywhere, which a network attacker defeats by
//! answering "no TLS".

use std::net::IpAddr;
use std::path::PathBuf;

use tokio_postgres::config::Host;

/// How a connection uses TLS (libpq's `sslmode`; spec §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, without checking its certificate; plain text otherwise.
    Prefer,
    /// TLS or no connection; the certificate is not checked (checked against the CA as
    /// `verify-ca` when a CA is configured, as libpq does).
    Require,
    /// TLS, and the server's certificate must chain to the configured CA.
    VerifyCa,
    /// TLS, the certificate must chain to the CA and name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether the server's certificate must chain to a CA.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the CA certificates come from (`sslrootcert` or `postgres_ca_file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, as in libpq 16).
    System,
}

/// Errors of the TLS settings of `postgres_url` (never quoting the URL, which may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    /// `sslmode` has a value libpq does not know.
    #[error(
        "postgres_url: sslmode must be disable, prefer, require, verify-ca or verify-full, \
         not {value:?}"
    )]
    BadMode {
        /// The value given.
        value: String,
    },
    /// The rest of the connection string does not parse.
    #[error("postgres_url is not a valid connection string ({reason})")]
    BadUrl {
        /// `tokio-postgres`' reason (names an option, never a value).
        reason: String,
    },
    /// Both `sslrootcert` and `postgres_ca_file` are set.
    #[error(
        "set the PostgreSQL CA once: sslrootcert in postgres_url or postgres_ca_file, not both"
    )]
    TwoCas,
    /// A verifying mode without a CA.
    #[error(
        "sslmode={mode}{default} needs the CA of the database's certificate: set \
         postgres_ca_file (VERDICT_POSTGRES_CA_FILE), or sslrootcert=FILE or sslrootcert=system \
         in postgres_url; or sslmode=disable to connect in clear (docs/operator-guide.md)"
    )]
    NoCa {
        /// The mode.
        mode: SslMode,
        /// `" (the default for a database on another machine)"` when not given.
        default: &'static str,
    },
    /// The CA file cannot be read.
    #[error("cannot read the PostgreSQL CA file {path}: {source}")]
    CaRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("the PostgreSQL CA file {path} {reason}")]
    CaInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The system trust store has no certificate.
    #[error("sslrootcert=system: no CA certificate found in the system trust store")]
    NoSystemRoots,
    /// The TLS client configuration cannot be built.
    #[error("cannot configure TLS to PostgreSQL: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS settings of one connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode in effect.
    pub mode: SslMode,
    /// Whether `sslmode` was given (else the default of the module docs).
    pub explicit: bool,
    /// The CA, from `sslrootcert` or `postgres_ca_file`.
    pub root_cert: Option<RootCert>,
}

/// Parse `url` into the `tokio-postgres` settings (its TLS mode set from ours) and the TLS
/// settings; `ca_file` is `postgres_ca_file`.
///
/// # Errors
/// [`PgTlsError::BadMode`], [`PgTlsError::BadUrl`], [`PgTlsError::TwoCas`].
pub fn split(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<(tokio_postgres::Config, TlsSettings), PgTlsError> {
    let (rest, params) = take_params(url);
    let mut mode = None;
    let mut root = None;
    for (key, value) in params {
        match key {
            Param::Mode => {
                mode = Some(SslMode::parse(&value).ok_or(PgTlsError::BadMode { value })?);
            }
            Param::RootCert => root = Some(value),
        }
    }
    let mut config: tokio_postgres::Config =
        rest.parse()
            .map_err(|e: tokio_postgres::Error| PgTlsError::BadUrl {
                // The cause names an option, never a value (which may be the password).
                reason: std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |cause| cause.to_string()),
            })?;
    let root_cert = match (root, ca_file) {
        (Some(_), Some(_)) => return Err(PgTlsError::TwoCas),
        (Some(value), None) if value == "system" => Some(RootCert::System),
        (Some(value), None) => Some(RootCert::File(PathBuf::from(value))),
        (None, Some(path)) => Some(RootCert::File(path.to_path_buf())),
        (None, None) => None,
    };
    let explicit = mode.is_some();
    let mode = mode.unwrap_or_else(|| {
        if all_local(&config) {
            SslMode::Prefer
        } else {
            SslMode::VerifyFull
        }
    });
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    if mode.verifies() && root_cert.is_none() {
        return Err(PgTlsError::NoCa {
            mode,
            default: if explicit {
                ""
            } else {
                " (the default for a database on another machine)"
            },
        });
    }
    Ok((
        config,
        TlsSettings {
            mode,
            explicit,
            root_cert,
        },
    ))
}

/// Whether every host is a Unix socket or a loopback address (no host: the local socket).
pub(super) fn all_local(config: &tokio_postgres::Config) -> bool {
    let loopback = |name: &str| {
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => loopback(name),
        Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(IpAddr::is_loopback)
}

/// A TLS parameter taken out of the connection string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Param {
    Mode,
    RootCert,
}

fn param(key: &str) -> Option<Param> {
    match key {
        "sslmode" => Some(Param::Mode),
        "sslrootcert" => Some(Param::RootCert),
        _ => None,
    }
}

/// The connection string without `sslmode` and `sslrootcert`, and their (decoded) values in
/// order. A string that does not tokenize is returned whole, for `tokio-postgres` to reject.
fn take_params(url: &str) -> (String, Vec<(Param, String)>) {
    for prefix in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return take_url_params(prefix, rest);
        }
    }
    take_key_value_params(url).unwrap_or_else(|| (url.to_owned(), Vec::new()))
}

/// URL form, split as `tokio-postgres` does: credentials up to the first `@`, then the query
/// from the next `?`, parameters separated by `&`, keys and values percent-encoded.
fn take_url_params(prefix: &str, rest: &str) -> (String, Vec<(Param, String)>) {
    let after_credentials = rest.find('@').map_or(0, |at| at + 1);
    let Some(query_at) = rest
        .get(after_credentials..)
        .and_then(|tail| tail.find('?'))
        .map(|q| after_credentials + q)
    else {
        return (format!("{prefix}{rest}"), Vec::new());
    };
    let (head, query) = rest.split_at(query_at);
    let query = query.strip_prefix('?').unwrap_or(query);
    let decode = |s: &str| -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let taken_param = pair
            .split_once('=')
            .and_then(|(key, value)| Some((param(&decode(key))?, decode(value))));
        match taken_param {
            Some(p) => taken.push(p),
            None => kept.push(pair),
        }
    }
    let mut out = format!("{prefix}{head}");
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    (out, taken)
}

/// `key = value` form, tokenized as `tokio-postgres` (and libpq) do: values unquoted or in
/// single quotes, `\` escaping the next character. `None` when it does not tokenize.
fn take_key_value_params(s: &str) -> Option<(String, Vec<(Param, String)>)> {
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else {
            break;
        };
        let mut key_end = start;
        while let Some((i, c)) = it.next_if(|&(_, c)| !c.is_whitespace() && c != '=') {
            key_end = i + c.len_utf8();
        }
        let key = s.get(start..key_end)?;
        if key.is_empty() {
            return None;
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        it.next_if(|&(_, c)| c == '=')?;
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = it.next_if(|&(_, c)| c == '\'').is_some();
        let mut end = None;
        while let Some(&(i, c)) = it.peek() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                break;
            }
            it.next();
            end = Some(i + c.len_utf8());
            if c == '\\' {
                if let Some((j, escaped)) = it.next() {
                    value.push(escaped);
                    end = Some(j + escaped.len_utf8());
                }
            } else {
                value.push(c);
            }
        }
        if quoted {
            let (i, _) = it.next_if(|&(_, c)| c == '\'')?;
            end = Some(i + 1);
        } else if value.is_empty() {
            return None;
        }
        let pair = s.get(start..end?)?;
        match param(key) {
            Some(p) => taken.push((p, value)),
            None => kept.push(pair),
        }
    }
    Some((kept.join(" "), taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> SslMode {
        split(url, Some(std::path::Path::new("/ca.pem")))
            .unwrap()
            .1
            .mode
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, taken) = take_params(
            "postgresql://u:p%40ss@db:5432/v?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://u:p%40ss@db:5432/v?application_name=x");
        assert_eq!(
            taken,
            vec![
                (Param::Mode, "verify-full".to_owned()),
                (Param::RootCert, "/etc/ca.pem".to_owned())
            ]
        );
        let (rest, taken) = take_params("postgres://db/v?sslmode=require");
        assert_eq!(rest, "postgres://db/v");
        assert_eq!(taken, vec![(Param::Mode, "require".to_owned())]);
        // A '?' in the password is not the query.
        let (rest, taken) = take_params("postgresql://u:a?b@db/v");
        assert_eq!(rest, "postgresql://u:a?b@db/v");
        assert!(taken.is_empty());
    }

    #[test]
    fn key_value_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, taken) = take_params(
            "host=db sslmode = verify-ca password='a b\\' c' sslrootcert='/x y/ca.pem' dbname=v",
        );
        assert_eq!(rest, "host=db password='a b\\' c' dbname=v");
        assert_eq!(
            taken,
            vec![
                (Param::Mode, "verify-ca".to_owned()),
                (Param::RootCert, "/x y/ca.pem".to_owned())
            ]
        );
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a b' c"[..]));
        assert_eq!(take_params("host=db sslmode=").0, "host=db sslmode=");
    }

    #[test]
    fn every_libpq_mode_parses_and_maps_to_a_tokio_postgres_mode() {
        use tokio_postgres::config::SslMode as Tp;
        for (name, ours, theirs) in [
            ("disable", SslMode::Disable, Tp::Disable),
            ("prefer", SslMode::Prefer, Tp::Prefer),
            ("require", SslMode::Require, Tp::Require),
            ("verify-ca", SslMode::VerifyCa, Tp::Require),
            ("verify-full", SslMode::VerifyFull, Tp::Require),
        ] {
            let url = format!("postgresql://db.internal/v?sslmode={name}");
            let (config, settings) = split(&url, Some(std::path::Path::new("/ca.pem"))).unwrap();
            assert_eq!(settings.mode, ours);
            assert!(settings.explicit);
            assert_eq!(config.get_ssl_mode(), theirs, "{name}");
            assert_eq!(ours.as_str(), name);
        }
        let err = split("postgresql://u:hunter2@db/v?sslmode=verify_full", None).unwrap_err();
        assert!(matches!(err, PgTlsError::BadMode { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn the_default_is_verify_full_off_the_machine_and_prefer_on_it() {
        assert_eq!(mode("postgresql://db.internal/v"), SslMode::VerifyFull);
        assert_eq!(mode("postgresql://10.0.0.5/v"), SslMode::VerifyFull);
        assert_eq!(mode("host=db.internal dbname=v"), SslMode::VerifyFull);
        assert_eq!(
            mode("postgresql://localhost,db.internal/v"),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("host=localhost hostaddr=10.0.0.5 dbname=v"),
            SslMode::VerifyFull
        );
        assert_eq!(mode("postgresql://127.0.0.1:5433/v"), SslMode::Prefer);
        assert_eq!(mode("postgresql://[::1]/v"), SslMode::Prefer);
        assert_eq!(mode("postgresql://LocalHost/v"), SslMode::Prefer);
        assert_eq!(mode("host=/run/postgresql dbname=v"), SslMode::Prefer);
        let (_, settings) = split("postgresql://127.0.0.1/v", None).unwrap();
        assert!(!settings.explicit);
    }

    #[test]
    fn a_verifying_mode_needs_a_ca_and_the_ca_is_set_once() {
        let err = split("postgresql://u:hunter2@db.internal/v", None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("verify-full (the default"), "{message}");
        assert!(message.contains("postgres_ca_file"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let err = split("postgresql://127.0.0.1/v?sslmode=verify-ca", None).unwrap_err();
        assert!(matches!(err, PgTlsError::NoCa { .. }), "{err}");
        let err = split(
            "postgresql://db/v?sslrootcert=/a.pem",
            Some(std::path::Path::new("/b.pem")),
        )
        .unwrap_err();
        assert!(matches!(err, PgTlsError::TwoCas), "{err}");
        let (_, settings) = split("postgresql://db/v?sslrootcert=system", None).unwrap();
        assert_eq!(settings.root_cert, Some(RootCert::System));
        let (_, settings) = split("postgresql://db/v?sslmode=require", None).unwrap();
        assert_eq!(settings.root_cert, None);
        // Plain text on another machine only when asked for.
        let (config, settings) = split("postgresql://db/v?sslmode=disable", None).unwrap();
        assert_eq!(settings.mode, SslMode::Disable);
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn a_bad_rest_is_reported_without_the_password() {
        let err = split("postgresql://u:hunter2@db/v?sslmode=disable&bogus=1", None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("bogus"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
