//! `verdict-server`: the Verdict transparency log and check API.
//!
//! Subcommands: `serve` (default), `keygen`, `info`, `fill`. Exit codes (`docs/operator-guide.md`,
//! "Exit codes"): 0 success, 1 runtime error, 2 usage or configuration error, 3 integrity
//! refusal (the store is damaged or does not extend the checkpoint lock; spec
//! `spec/checkpoint-lock.md`), 4 `fill` refused a data directory a server has used. The load generator is the
//! separate binary `verdict-bench` (workspace crate `bench/`).

mod fill;

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use verdict_log_server::config::{Config, LogFormat};

/// Exit code of a runtime error.
const EXIT_FAILURE: u8 = 1;
/// Exit code of an integrity refusal: the store is damaged or does not extend the checkpoint lock.
const EXIT_INTEGRITY: u8 = 3;
/// Exit code of `fill` on a data directory that a server has used.
const EXIT_NOT_A_BENCH_DIR: u8 = 4;

/// A failed command: its one-line message and exit code (1 unless said otherwise). Any
/// displayable error converts into it (`?`); [`Context::context`] prefixes what was being done.
#[derive(Debug)]
struct Failure(String, u8);

impl<E: Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.to_string(), EXIT_FAILURE)
    }
}

/// Result of a command.
type CmdResult<T = ()> = Result<T, Failure>;

/// Say what failed, in front of the error.
trait Context<T> {
    fn context(self, what: impl Display) -> CmdResult<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> CmdResult<T> {
        self.map_err(|e| Failure(format!("{what}: {e}"), EXIT_FAILURE))
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "verdict-server",
    version,
    about = "Verdict transparency log and check API"
)]
struct Cli {
    /// TOML configuration file (see the `Config` reference in docs/operator-guide.md).
    #[arg(long, global = true, env = "VERDICT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file and VERDICT_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (default).
    Serve {
        /// Listen address (overrides config).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Policies directory (overrides config).
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Create the keys and tokens of the data directory (if missing) and print the verifier keys;
    /// with --name and --out, write one standalone signed-note key (e.g. for an approver).
    Keygen {
        /// Name of a standalone key.
        #[arg(long, requires = "out")]
        name: Option<String>,
        /// File for the standalone private key (created with mode 0600; must not exist).
        #[arg(long, requires = "name")]
        out: Option<PathBuf>,
    },
    /// Print origin, verifier keys, token paths and tree size.
    Info,
    /// Append synthetic entries straight to the log of --data-dir (no server, no checker), for
    /// benchmarks at scale (`scripts/bench-scale.sh`). The server must not be running.
    Fill(fill::FillArgs),
}

/// mimalloc instead of glibc malloc: the request path allocates on two worker threads and the
/// sequencer frees on a third, where glibc's arenas showed up in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verdict-server: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn")),
        )
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("verdict-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve {
            listen: None,
            policies: None,
        }) {
            Command::Serve { listen, policies } => {
                let mut config = config;
                if let Some(l) = listen {
                    config.listen = l;
                }
                if let Some(p) = policies {
                    config.policies_dir = p;
                }
                serve(config).await
            }
            Command::Keygen { name, out } => keygen(&config, name, out),
            Command::Info => info(&config).await,
            Command::Fill(args) => fill::run(args, &config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("verdict-server: {message}");
            ExitCode::from(code)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, verdict_log_server::config::ConfigError> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir.clone_from(d);
    }
    Ok(config)
}

async fn serve(config: Config) -> CmdResult {
    let explicit_policies = std::env::var_os("VERDICT_POLICIES_DIR").is_some();
    if explicit_policies && !config.policies_dir.is_dir() {
        return Err(Failure(
            format!(
                "policies directory {} does not exist",
                config.policies_dir.display()
            ),
            EXIT_FAILURE,
        ));
    }
    let started = match verdict_log_server::start(&config).await {
        Ok(started) => started,
        Err(error @ verdict_log_server::StartError::Refused(_)) => {
            tracing::error!(error = %error, "{error}");
            let mut message = format!("cannot start: {error}");
            if !message.contains("operator-guide") {
                message.push_str(
                    " (the store is damaged: start on an undamaged copy of store/; see \
                     docs/operator-guide.md, \"Start-up refused\")",
                );
            }
            return Err(Failure(message, EXIT_INTEGRITY));
        }
        Err(error) => return Err(Failure(format!("cannot start: {error}"), EXIT_FAILURE)),
    };
    let keys = &started.keys;
    println!("verdict-server {}", env!("CARGO_PKG_VERSION"));
    println!("  origin:              {}", keys.log.name());
    println!("  log verifier key:    {}", keys.log.verifier());
    println!("  checker verifier key: {}", keys.checker.verifier());
    println!(
        "  admin token file:    {}",
        keys.paths.admin_token.display()
    );
    println!(
        "  agent token file:    {}",
        keys.paths.agent_token.display()
    );
    println!(
        "  auditor token file:  {}",
        keys.paths.auditor_token.display()
    );
    println!(
        "  metrics token file:  {}",
        keys.paths.metrics_token.display()
    );
    print_expiries(keys, "  ");
    println!("  data directory:      {}", config.data_dir.display());
    println!(
        "  policies:            {} ({})",
        started.loaded_policies.join(", "),
        config.policies_dir.display()
    );
    if keys.created {
        println!("  (created new keys and tokens in the data directory, mode 0600)");
    }
    if keys.migrated_write_token {
        println!(
            "  (migrated write.token to agent.token: it may screen and check, not register policies; use admin.token)"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .context(format_args!("cannot listen on {}", config.listen))?;
    println!("  listening on:        http://{}", listener.local_addr()?);
    let state = started.state.clone();
    let options = verdict_log_server::serve::ServeOptions::from_config(&config);
    // `metrics_listen`: `/metrics` without a token on its own listener, stopped with the main one.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(addr)
                .await
                .context(format_args!("cannot listen on {addr} (metrics_listen)"))?;
            println!(
                "  metrics on:          http://{}/metrics",
                metrics_listener.local_addr()?
            );
            Some(tokio::spawn(verdict_log_server::serve::serve(
                metrics_listener,
                verdict_log_server::metrics_app(state.clone()),
                options,
                async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    verdict_log_server::serve::serve(
        listener,
        verdict_log_server::app(state.clone()),
        options,
        shutdown_signal(),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    tracing::info!("shutting down: flushing the pending batch");
    state.log.shutdown().await.context("log shutdown")?;
    println!("verdict-server stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Print the expiry of each token that has one (token files may carry `expires=`, see
/// `verdict_log_server::keys`), warning when it has passed.
fn print_expiries(keys: &verdict_log_server::keys::Keys, indent: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, token) in [
        ("admin", &keys.admin_token),
        ("agent", &keys.agent_token),
        ("auditor", &keys.auditor_token),
        ("metrics", &keys.metrics_token),
    ] {
        if let Some(at) = token.expires_at() {
            if at <= now {
                tracing::warn!("the {name} token expired at {at} (Unix seconds)");
                println!("{indent}{name} token expired:  at {at} (Unix seconds); it gets 401");
            } else {
                println!(
                    "{indent}{name} token expires:  at {at} (Unix seconds), in {} s",
                    at - now
                );
            }
        }
    }
}

fn keygen(config: &Config, name: Option<String>, out: Option<PathBuf>) -> CmdResult {
    if let (Some(name), Some(out)) = (name, out) {
        let signer = verdict_core::note::Signer::generate(&name).context("invalid key name")?;
        verdict_log_server::keys::write_secret_file(
            &out,
            &format!("{}\n", signer.to_private_key_string()),
        )?;
        println!("{}", signer.verifier());
        eprintln!("private key written to {} (mode 0600)", out.display());
        return Ok(());
    }
    let keys = verdict_log_server::keys::load_or_create(
        &config.data_dir,
        &config.default_origin(),
        config.origin.is_some(),
    )?;
    println!("origin:               {}", keys.log.name());
    println!("log verifier key:     {}", keys.log.verifier());
    println!("checker verifier key: {}", keys.checker.verifier());
    println!("admin token file:     {}", keys.paths.admin_token.display());
    println!("agent token file:     {}", keys.paths.agent_token.display());
    println!(
        "auditor token file:   {}",
        keys.paths.auditor_token.display()
    );
    println!(
        "metrics token file:   {}",
        keys.paths.metrics_token.display()
    );
    print_expiries(&keys, "");
    println!(
        "{}",
        if keys.created {
            "created missing keys and tokens (mode 0600)"
        } else {
            "all keys already existed; nothing changed"
        }
    );
    Ok(())
}

async fn info(config: &Config) -> CmdResult {
    let paths = verdict_log_server::keys::KeyPaths::new(&config.data_dir);
    if !paths.log_key.exists() {
        return Err(Failure(
            format!(
                "no log key in {} (run `verdict-server keygen` or `serve` first)",
                config.data_dir.display()
            ),
            EXIT_FAILURE,
        ));
    }
    let keys = verdict_log_server::keys::load_or_create(&config.data_dir, "", false)?;
    println!("origin:               {}", keys.log.name());
    println!("log verifier key:     {}", keys.log.verifier());
    println!("checker verifier key: {}", keys.checker.verifier());
    println!("admin token file:     {}", keys.paths.admin_token.display());
    println!("agent token file:     {}", keys.paths.agent_token.display());
    println!(
        "auditor token file:   {}",
        keys.paths.auditor_token.display()
    );
    println!(
        "metrics token file:   {}",
        keys.paths.metrics_token.display()
    );
    print_expiries(&keys, "");
    let size = match verdict_log_server::open_store(config) {
        Ok(storage) => match storage.state()? {
            Some(state) => format!("{}", state.size),
            None => "0 (no checkpoint yet)".to_owned(),
        },
        Err(_) => {
            // The store is locked by a running server: ask it.
            let url = format!("http://{}/checkpoint", config.listen);
            match served_tree_size(config.listen).await {
                Some(size) => format!("{size} (from the running server at {url})"),
                None => "unknown (store in use and server not reachable)".to_owned(),
            }
        }
    };
    println!("tree size:            {size}");
    Ok(())
}

/// The tree size in `GET /checkpoint` of the server at `addr` (second line of the note), through
/// one plain HTTP/1.0 request; `None` when it does not answer 200 within 5 s.
async fn served_tree_size(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let limit = Duration::from_secs(5);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /checkpoint HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.take(1 << 20).read_to_end(&mut answer).await.ok()?;
        Some(answer)
    };
    let answer = tokio::time::timeout(limit, exchange).await.ok()??;
    let text = String::from_utf8(answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    body.lines().nth(1).map(str::to_owned)
}
