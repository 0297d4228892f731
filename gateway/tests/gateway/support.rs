//! Real parts for the gateway tests: the npm filesystem server and the Python `mcp` SDK
//! (installed into `<target>/gateway-test-deps` when missing), a real `verdict-server`, and the
//! real `verdict-gateway` binary with a configuration written for them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use verdict_tests::bins::{profile_dir, workspace_root};
use verdict_tests::server::{free_addr, Server};

/// Where test dependencies are installed: `$VERDICT_GATEWAY_TEST_DEPS` or
/// `<target>/gateway-test-deps`.
pub fn deps_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("VERDICT_GATEWAY_TEST_DEPS") {
        return Ok(PathBuf::from(d));
    }
    let profile = profile_dir()?;
    Ok(profile
        .parent()
        .unwrap_or(&profile)
        .join("gateway-test-deps"))
}

/// `node` and the entry point of `@modelcontextprotocol/server-filesystem`, installed with npm
/// if missing. `Err` (with the reason) only when they truly cannot be had.
pub fn filesystem_server() -> Result<(String, PathBuf)> {
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
    Command::new(&node)
        .arg("--version")
        .output()
        .context("node is not installed")?;
    let prefix = deps_dir()?.join("npm");
    let entry = prefix.join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    if !entry.exists() {
        std::fs::create_dir_all(&prefix)?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("@modelcontextprotocol/server-filesystem")
            .stdout(Stdio::null())
            .status()
            .context("npm is not installed")?;
        if !status.success() || !entry.exists() {
            bail!("npm install @modelcontextprotocol/server-filesystem failed ({status})");
        }
    }
    Ok((node, entry))
}

/// A Python with the `mcp` package: a venv in the deps dir, created and filled with pip if
/// missing.
pub fn python_with_mcp() -> Result<PathBuf> {
    let venv = deps_dir()?.join("venv");
    let python = venv.join("bin/python");
    let has_mcp = |p: &Path| {
        Command::new(p)
            .args(["-c", "import mcp.client.streamable_http"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has_mcp(&python) {
        return Ok(python);
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 is not installed")?;
    if !status.success() {
        bail!("python3 -m venv failed ({status})");
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "mcp"])
        .status()
        .context("pip failed to start")?;
    if !status.success() || !has_mcp(&python) {
        bail!("pip install mcp failed ({status})");
    }
    Ok(python)
}

/// Print a loud skip notice (a dependency that truly cannot be installed).
pub fn skip(what: &str, why: &anyhow::Error) {
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    );
    eprintln!("!!! SKIPPED: {what}: {why:#}");
    eprintln!("!!! install node/npm and python3-venv (scripts/test.sh does) to run it");
    eprintln!(
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

/// The test setup: a server, a directory tree the filesystem server may write, and a gateway
/// configuration mapping `write_file` and `create_directory` onto `customer-data-egress`.
pub struct Setup {
    /// Temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// The filesystem server's root (contains `internal/` and `outbox/`).
    pub root: PathBuf,
    /// The running verdict-server.
    pub server: Server,
    /// The gateway configuration file.
    pub config: PathBuf,
    /// node and the filesystem server's entry point.
    pub fs_server: (String, PathBuf),
}

impl Setup {
    /// Start verdict-server and write the gateway configuration.
    pub async fn new(fs_server: (String, PathBuf)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("files").canonicalize().or_else(|_| {
            std::fs::create_dir_all(dir.path().join("files"))?;
            dir.path().join("files").canonicalize()
        })?;
        std::fs::create_dir_all(root.join("internal"))?;
        std::fs::create_dir_all(root.join("outbox"))?;
        let server = Server::start(&dir.path().join("server"), None).await?;
        std::fs::write(
            dir.path().join("agent.token"),
            format!("{}\n", server.token),
        )?;
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            config_text(&server.base, &root, &fs_server, "deny"),
        )?;
        Ok(Self {
            dir,
            root,
            server,
            config,
            fs_server,
        })
    }

    /// Start the gateway binary serving HTTP on a free port; waits for `/health`.
    pub async fn gateway(&self) -> Result<Gateway> {
        Gateway::start(&self.config).await
    }

    /// `verdict verify` of a bundle text with the server's keys; the exit code and output.
    pub fn verify(&self, bundle: &str, name: &str) -> Result<verdict_tests::bins::Run> {
        let path = self.dir.path().join(format!("{name}.bundle"));
        std::fs::write(&path, bundle)?;
        let mut args = vec![
            "verify".to_owned(),
            path.display().to_string(),
            "--log-key".to_owned(),
            self.server.log_key.clone(),
        ];
        for k in &self.server.checker_keys {
            args.push("--checker-key".to_owned());
            args.push(k.clone());
        }
        verdict_tests::bins::verdict(args)
    }
}

/// The gateway configuration used by the tests (also the worked example of
/// `docs/gateway-guide.md`, with the paths filled in).
pub fn config_text(server: &str, root: &Path, fs: &(String, PathBuf), unmapped: &str) -> String {
    let policy = workspace_root().join("testdata/policies/customer-data-egress.toml");
    let policy = policy.display();
    let root = root.display();
    let unmapped = if unmapped == "deny" {
        "[unmapped]\nmode = \"deny\"\n".to_owned()
    } else {
        "[unmapped]\nmode = \"not-applicable\"\npolicy = \"customer-data-egress\"\n".to_owned()
    };
    format!(
        r#"policies = ["{policy}"]

[verdict]
url = "{server}"
token_file = "agent.token"
timeout_ms = 5000

{unmapped}
[[upstreams]]
name = "fs"
command = "{node}"
args = ["{entry}", "{root}"]

# Writing a file: under outbox/ the data leaves the company (external), elsewhere it stays.
# The agent has no authorization token to present, so it is stated absent.
[tools.write_file]
policy = "customer-data-egress"
[tools.write_file.variables]
destination = {{ pointer = "/path", prefix_map = {{ "{root}/outbox/" = "external", "{root}/" = "internal" }} }}
classification = {{ value = "public" }}
record_count = {{ value = 1 }}
transfers_in_session = {{ value = 0 }}
is_privileged = {{ value = false }}
authorization_token = {{ absent = true }}

# Creating a directory: the authorization token is left unstated, so an external destination
# escalates (the outcome depends on it).
[tools.create_directory]
policy = "customer-data-egress"
[tools.create_directory.variables]
destination = {{ pointer = "/path", prefix_map = {{ "{root}/outbox/" = "external", "{root}/" = "internal" }} }}
classification = {{ value = "public" }}
record_count = {{ value = 0 }}
transfers_in_session = {{ value = 0 }}
is_privileged = {{ value = false }}
"#,
        node = fs.0,
        entry = fs.1.display(),
    )
}

/// A running `verdict-gateway` (HTTP). Killed on drop.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Gateway {
    /// Start it with `config` on a free port and wait for `/health`.
    pub async fn start(config: &Path) -> Result<Self> {
        let addr: SocketAddr = free_addr()?;
        let log = config.with_extension(format!("{}.log", addr.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_verdict-gateway"))
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut gw = Gateway {
            child,
            base: format!("http://{addr}"),
            log,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/health", gw.base)).send().await {
                if r.status().is_success() {
                    return Ok(gw);
                }
            }
            if let Some(status) = gw.child.try_wait()? {
                bail!("gateway exited ({status}): {}", gw.output());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("gateway not healthy after 60 s: {}", gw.output());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|s| s.is_none())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
