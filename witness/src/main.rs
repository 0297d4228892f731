//! `verdict-witness`: keygen, serve (c2sp tlog-witness push mode) and watch (pull mode).
//!
//! Exit codes: 0 success; 1 a watched log misbehaved (bad signature, rollback, fork,
//! inconsistent tree); 2 usage, configuration, key, state or network error.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use verdict_core::cosignature::Cosigner;
use verdict_core::note::Verifier;
use verdict_witness::server::{app, now};
use verdict_witness::state::Store;
use verdict_witness::watch::{http_client, watch_once, WatchError, WatchOutcome, WatchedLog};
use verdict_witness::witness::Witness;

const EXIT_CODES: &str = "EXIT CODES:\n  0  success\n  1  a watched log misbehaved (bad signature, rollback, fork, inconsistent tree)\n  2  usage, configuration, key, state or network error";

/// A C2SP tlog-witness: cosigns checkpoints only when they are consistent with what it saw.
#[derive(Parser, Debug)]
#[command(name = "verdict-witness", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a witness key: writes the private key to FILE (mode 0600, never overwritten)
    /// and prints the verifier key (vkey) to give to log operators and to put in policy files.
    #[command(after_help = EXIT_CODES)]
    Keygen {
        /// The witness name, e.g. `witness.example.com/acme-1` (no spaces, no '+').
        #[arg(long)]
        name: String,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the verifier key (vkey) of a private key file.
    #[command(after_help = EXIT_CODES)]
    Vkey {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Serve POST /add-checkpoint (logs push checkpoints) and GET /<origin hash>/checkpoint.
    #[command(after_help = EXIT_CODES)]
    Serve {
        /// Listen address, e.g. 127.0.0.1:7380 (port 0 picks a free port; the first line on
        /// stdout says which).
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// State directory (created if missing).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The witness's private key file (from `keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A log's verifier key (signed-note vkey; its name is the log origin); repeatable.
        #[arg(long = "log", value_name = "VKEY")]
        logs: Vec<String>,
    },
    /// Pull mode: poll logs' /checkpoint, prove consistency from their tiles, cosign and
    /// publish the cosigned checkpoint in DIR (served by `serve --data-dir DIR`).
    #[command(after_help = EXIT_CODES)]
    Watch {
        /// Base URL of a log (C2SP tlog-tiles); repeatable, paired in order with --log-key.
        #[arg(long = "log", value_name = "URL", required = true)]
        urls: Vec<String>,
        /// The log's verifier key; repeatable, one per --log.
        #[arg(long = "log-key", value_name = "VKEY", required = true)]
        keys: Vec<String>,
        /// State directory (created if missing).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The witness's private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Seconds between rounds.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        interval: u64,
        /// Run one round and exit (0 cosigned, 1 misbehaviour, 2 error).
        #[arg(long)]
        once: bool,
        /// Per-request timeout in seconds.
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
}

/// An error with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 2, error }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from(anyhow::Error::from(e)))
        .and_then(|rt| rt.block_on(run(cli.command)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("verdict-witness: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn load_key(path: &Path) -> anyhow::Result<Cosigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    Cosigner::parse(text.trim()).with_context(|| format!("key file {}", path.display()))
}

fn write_private_key(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen { name, out } => {
            let key = Cosigner::generate(&name).context("witness name")?;
            write_private_key(&out, &format!("{}\n", key.to_private_key_string()))?;
            emit(&format!("{}\n", key.verifier()));
            Ok(())
        }
        Command::Vkey { key } => {
            emit(&format!("{}\n", load_key(&key)?.verifier()));
            Ok(())
        }
        Command::Serve {
            listen,
            data_dir,
            key,
            logs,
        } => {
            let cosigner = load_key(&key)?;
            let keys = parse_log_keys(&logs)?;
            let store = Store::open(&data_dir).context("data directory")?;
            let vkey = cosigner.verifier();
            let witness = Arc::new(Witness::new(cosigner, keys, store));
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr().context("local address")?;
            emit(&format!("verdict-witness listening on {addr} as {vkey}\n"));
            axum::serve(listener, app(witness))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .context("server")?;
            Ok(())
        }
        Command::Watch {
            urls,
            keys,
            data_dir,
            key,
            interval,
            once,
            timeout,
        } => {
            if urls.len() != keys.len() {
                return Err(anyhow::anyhow!(
                    "give one --log-key per --log ({} URLs, {} keys)",
                    urls.len(),
                    keys.len()
                )
                .into());
            }
            let cosigner = load_key(&key)?;
            let log_keys = parse_log_keys(&keys)?;
            let logs: Vec<WatchedLog> = urls
                .iter()
                .zip(&log_keys)
                .map(|(url, key)| WatchedLog {
                    url: url.clone(),
                    key: key.clone(),
                })
                .collect();
            for l in &logs {
                if !(l.url.starts_with("http://") || l.url.starts_with("https://")) {
                    return Err(anyhow::anyhow!("--log {:?} is not an http(s) URL", l.url).into());
                }
            }
            let store = Store::open(&data_dir).context("data directory")?;
            let witness = Arc::new(Witness::new(cosigner, log_keys, store));
            let http = http_client(Duration::from_secs(timeout)).context("http client")?;
            loop {
                let mut worst: Option<Failure> = None;
                for log in &logs {
                    match watch_once(&http, log, &witness, now()).await {
                        Ok(WatchOutcome::Cosigned { previous, cosigned }) => {
                            let line = cosigned
                                .cosignatures
                                .first()
                                .map(|s| s.to_line())
                                .unwrap_or_default();
                            emit(&format!(
                                "cosigned {} size {} (previous {}): {}",
                                cosigned.checkpoint.origin,
                                cosigned.checkpoint.size,
                                previous,
                                line
                            ));
                        }
                        Err(e) => {
                            let code = match e {
                                WatchError::Misbehaviour { .. } => 1,
                                WatchError::Network { .. } | WatchError::State(_) => 2,
                            };
                            tracing::error!("{e}");
                            let replace = worst.as_ref().is_none_or(|w| code < w.code);
                            if replace {
                                worst = Some(Failure {
                                    code,
                                    error: anyhow::Error::from(e),
                                });
                            }
                        }
                    }
                }
                if once {
                    return worst.map_or(Ok(()), Err);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(interval.max(1))) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    }
}

fn parse_log_keys(keys: &[String]) -> anyhow::Result<Vec<Verifier>> {
    keys.iter()
        .map(|k| Verifier::parse(k).with_context(|| format!("log key {k:?}")))
        .collect()
}
