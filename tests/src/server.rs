//! A real `verdict-server` process on a free loopback port with its own data directory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::bins::{binary, workspace_root};

/// A running server. Killed on drop; [`Server::stop`] shuts it down gracefully.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// Listen address.
    pub addr: SocketAddr,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Write token.
    pub token: String,
    /// The log's verifier key (from `/v1/keys`).
    pub log_key: String,
    /// The checker's verifier keys (from `/v1/keys`).
    pub checker_keys: Vec<String>,
    /// HTTP client.
    pub http: reqwest::Client,
    log_file: PathBuf,
}

/// A free loopback port (bound and released; good enough for tests).
///
/// # Errors
/// When no port can be bound.
pub fn free_addr() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

impl Server {
    /// Start `verdict-server serve` on `data_dir` with `testdata/policies`, on `addr` (or a
    /// free port), and wait until `/health` answers 200.
    ///
    /// # Errors
    /// When the server does not become healthy within 60 s.
    pub async fn start(data_dir: &Path, addr: Option<SocketAddr>) -> Result<Server> {
        Self::start_full(data_dir, addr, None, true, &[]).await
    }

    /// [`Server::start`] with extra environment variables for the server process, e.g.
    /// `("VERDICT_CHECK_TIMEOUT_MS", "2000")` (configuration overrides).
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_with_env(
        data_dir: &Path,
        addr: Option<SocketAddr>,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        Self::start_full(data_dir, addr, None, true, env).await
    }

    /// As [`Server::start`], with `--config FILE` when `config` is given; without
    /// `wait_health`, wait only until `/checkpoint` answers 200 (a server whose `/health` fails,
    /// e.g. on a witness alarm).
    ///
    /// # Errors
    /// When the server does not answer within 60 s.
    pub async fn start_with(
        data_dir: &Path,
        addr: Option<SocketAddr>,
        config: Option<&Path>,
        wait_health: bool,
    ) -> Result<Server> {
        Self::start_full(data_dir, addr, config, wait_health, &[]).await
    }

    async fn start_full(
        data_dir: &Path,
        addr: Option<SocketAddr>,
        config: Option<&Path>,
        wait_health: bool,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let addr = match addr {
            Some(a) => a,
            None => free_addr()?,
        };
        std::fs::create_dir_all(data_dir)?;
        let log_file = data_dir.with_extension(format!("{}.log", addr.port()));
        let log = std::fs::File::create(&log_file)?;
        let mut command = Command::new(binary("verdict-server")?);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--policies")
            .arg(workspace_root().join("testdata").join("policies"))
            .env("VERDICT_ORIGIN", "verdict.test/e2e")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning verdict-server")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut server = Server {
            child: Some(child),
            addr,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            token: String::new(),
            log_key: String::new(),
            checker_keys: vec![],
            http,
            log_file,
        };
        server
            .wait_ready(if wait_health { "health" } else { "checkpoint" })
            .await?;
        server.token = server.role_token("agent.token")?;
        let keys: serde_json::Value = server.get_json("v1/keys").await?;
        server.log_key = keys
            .pointer("/log/verifier_key")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("no log key in {keys}"))?
            .to_owned();
        server.checker_keys = keys
            .get("checkers")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.get("verifier_key")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(server)
    }

    async fn wait_ready(&mut self, path: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("verdict-server exited with {status}: {}", self.output());
                }
            }
            if let Ok(r) = self.http.get(format!("{}/{path}", self.base)).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("verdict-server not healthy after 60 s: {}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// GET a JSON document.
    ///
    /// # Errors
    /// Transport or non-200.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// GET raw bytes.
    ///
    /// # Errors
    /// Transport or non-200.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET {path}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }

    /// The token in `file` of the data directory (`agent.token`, `admin.token`,
    /// `auditor.token`, …): its first line, without an `expires=` line.
    ///
    /// # Errors
    /// When the file cannot be read or is empty.
    pub fn role_token(&self, file: &str) -> Result<String> {
        let text = std::fs::read_to_string(self.data_dir.join(file))
            .with_context(|| format!("read {file}"))?;
        text.lines()
            .next()
            .map(|l| l.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("{file} is empty"))
    }

    /// `POST /v1/check` with the write token; `wait=false` returns once sequenced.
    ///
    /// # Errors
    /// Transport or non-2xx.
    pub async fn check(
        &self,
        policy: &str,
        action: serde_json::Value,
        wait: bool,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/v1/check?wait={wait}", self.base);
        let body = serde_json::json!({ "policy": policy, "action": action });
        for _ in 0..100 {
            let r = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await?;
            if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                // Backpressure: retry after a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let status = r.status();
            let text = r.text().await?;
            if !status.is_success() {
                bail!("POST /v1/check: {status}: {text}");
            }
            return Ok(serde_json::from_str(&text)?);
        }
        bail!("POST /v1/check: still overloaded after 100 retries")
    }

    /// Save the proof bundle of a check answer (`answer["proof"]["bundle"]`) as
    /// `dir/<name>.proof` and run `verdict verify` on it with this server's log key and first
    /// checker key, plus `extra` arguments. Returns the bundle path and the run.
    ///
    /// # Errors
    /// When the answer has no bundle, or the file or the run fails.
    pub fn verify_answer(
        &self,
        dir: &Path,
        name: &str,
        answer: &serde_json::Value,
        extra: &[&str],
    ) -> Result<(PathBuf, crate::bins::Run)> {
        let bundle = dir.join(format!("{name}.proof"));
        let text = answer
            .pointer("/proof/bundle")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("no proof bundle in {answer}"))?;
        std::fs::write(&bundle, text)?;
        let checker = self
            .checker_keys
            .first()
            .ok_or_else(|| anyhow!("the server published no checker key"))?;
        let path = bundle.display().to_string();
        let mut args = vec![
            "verify",
            path.as_str(),
            "--log-key",
            self.log_key.as_str(),
            "--checker-key",
            checker.as_str(),
        ];
        args.extend_from_slice(extra);
        let run = crate::bins::verdict(args)?;
        Ok((bundle, run))
    }

    /// The current tree size (from `/checkpoint`'s second line).
    ///
    /// # Errors
    /// Transport or parse errors.
    pub async fn tree_size(&self) -> Result<u64> {
        let cp = self.get_bytes("checkpoint").await?;
        let text = String::from_utf8(cp)?;
        Ok(text
            .lines()
            .nth(1)
            .ok_or_else(|| anyhow!("short checkpoint"))?
            .parse()?)
    }

    /// Graceful shutdown: SIGTERM, then wait (kill after 20 s).
    ///
    /// # Errors
    /// When the process cannot be signalled or waited for.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                eprintln!("verdict-server stopped in {:?}", started.elapsed());
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("verdict-server did not stop within 20 s of SIGTERM; killing it");
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Copy a directory tree (a stopped server's data directory).
///
/// # Errors
/// I/O errors.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
