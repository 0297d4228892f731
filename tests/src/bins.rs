//! Locating the real `verdict` and `verdict-server` binaries in the target directory of the
//! running test, building them once (`cargo build --bins`) so that they are never stale.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The profile directory of the running test binary (`<target>/debug`).
///
/// # Errors
/// When the test binary's path is not `<target>/<profile>/deps/<exe>`.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe
        .parent()
        .ok_or_else(|| anyhow!("no parent of {}", exe.display()))?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().ok_or_else(|| anyhow!("no profile dir"))?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of binary `name` (`verdict`, `verdict-server` or `verdict-witness`), after building them once per test
/// process. Set `VERDICT_E2E_NO_BUILD=1` to skip the build and use what is there.
///
/// # Errors
/// When the build fails or the binary is missing.
pub fn binary(name: &str) -> Result<PathBuf> {
    let dir = BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("binary {} is missing", path.display());
    }
    Ok(path)
}

fn build() -> Result<PathBuf> {
    let dir = profile_dir()?;
    if std::env::var_os("VERDICT_E2E_NO_BUILD").is_some() {
        return Ok(dir);
    }
    let target = dir
        .parent()
        .ok_or_else(|| anyhow!("no target dir above {}", dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--bins",
            "-p",
            "verdict-verifier",
            "-p",
            "verdict-log-server",
            "-p",
            "verdict-witness",
            "-p",
            "verdict-approve",
        ])
        .arg("--target-dir")
        .arg(target);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("cargo build of the binaries failed: {status}");
    }
    Ok(dir)
}

/// Output of one `verdict` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Run the real `verdict` binary with `args`.
///
/// # Errors
/// When it cannot be started.
pub fn verdict<I, S>(args: I) -> Result<Run>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(binary("verdict")?).args(args).output()?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
