//! A throwaway PostgreSQL cluster for tests (feature `testing`): the real server binaries of the
//! machine, never a mock.
//!
//! [`PgCluster::start`] finds the binaries (`VERDICT_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`), `initdb`s a cluster in a fresh
//! temporary directory and starts it on a free loopback port (TCP on 127.0.0.1 only, trust
//! authentication, user `verdict`). `initdb` refuses to run as root, so as root every server
//! command runs as the `postgres` user through `runuser`, and the directory is handed to it.
//! The cluster is stopped (immediate shutdown) and its directory removed on drop, also when a
//! test panics; a watchdog process does the same if the test process dies without unwinding.
//!
//! Install the binaries with `apt-get install -y postgresql` (Debian); `scripts/test.sh` does.

pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Errors of the test cluster.
#[derive(Debug, thiserror::Error)]
pub enum PgClusterError {
    /// The PostgreSQL server binaries are not installed.
    #[error("postgresql server binaries not found (install them: apt-get install -y postgresql)")]
    NotInstalled,
    /// A command failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The command.
        what: &'static str,
        /// Its output or error.
        detail: String,
    },
}

/// A running throwaway cluster. See the module docs.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// Base directory: `data/` (the cluster), the socket and `server.log`.
    base: PathBuf,
    port: u16,
    /// `Some("postgres")` when running as root.
    run_as: Option<String>,
    watchdog: Option<Child>,
}

fn command_failed(what: &'static str) -> impl Fn(std::io::Error) -> PgClusterError {
    move |e| PgClusterError::Command {
        what,
        detail: e.to_string(),
    }
}

fn check(what: &'static str, output: Output) -> Result<String, PgClusterError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(PgClusterError::Command {
            what,
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// The directory holding `initdb`, `pg_ctl` and `psql`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("VERDICT_PG_BIN").map(PathBuf::from) {
        return has_all(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    has_all(&dir).then_some(dir)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn id_of(flag: &str, user: &str) -> Result<u32, PgClusterError> {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .map_err(command_failed("id"))?;
    check("id", out)?
        .trim()
        .parse()
        .map_err(|_| PgClusterError::Command {
            what: "id",
            detail: format!("no numeric id for user {user}"),
        })
}

fn free_port() -> Result<u16, PgClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(command_failed("bind"))?;
    Ok(listener
        .local_addr()
        .map_err(command_failed("local address"))?
        .port())
}

impl PgCluster {
    /// `initdb` and start a cluster. See the module docs.
    ///
    /// # Errors
    /// [`PgClusterError::NotInstalled`]; [`PgClusterError::Command`] when a step fails.
    pub fn start() -> Result<Self, PgClusterError> {
        Self::start_with(|_| Ok(()))
    }

    /// [`PgCluster::start`], running `prepare` on the initialised cluster before it starts
    /// (TLS files and settings: [`tls`]).
    fn start_with(
        prepare: impl FnOnce(&Self) -> Result<(), PgClusterError>,
    ) -> Result<Self, PgClusterError> {
        let bin = find_bin_dir().ok_or(PgClusterError::NotInstalled)?;
        let run_as = is_root().then(|| "postgres".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let base =
            std::env::temp_dir().join(format!("verdict-pg-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir_all(&base).map_err(command_failed("create the cluster directory"))?;
        if let Some(user) = &run_as {
            let (uid, gid) = (id_of("-u", user)?, id_of("-g", user)?);
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))
                .map_err(command_failed("chown the cluster directory"))?;
        }
        let mut cluster = Self {
            bin,
            base,
            port: free_port()?,
            run_as,
            watchdog: None,
        };
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "verdict", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(command_failed("initdb"))?;
        check("initdb", out)?;
        prepare(&cluster)?;
        // The port was free when probed; another process may take it before the server binds
        // it: then try another one.
        let mut attempts = 0;
        while let Err(error) = cluster.start_server() {
            attempts += 1;
            if attempts >= 3 {
                return Err(error);
            }
            cluster.port = free_port()?;
        }
        cluster.watchdog = cluster.spawn_watchdog().ok();
        Ok(cluster)
    }

    /// A command for a server binary, as the `postgres` user when running as root.
    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.stdin(Stdio::null()).current_dir(&self.base);
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://verdict@127.0.0.1:{}/{db}", self.port)
    }

    fn start_server(&self) -> Result<(), PgClusterError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=60 -c shared_buffers=16MB",
            self.port,
            self.base.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.base.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(command_failed("pg_ctl start"))?;
        check("pg_ctl start", out).map(drop)
    }

    /// Stop the server: `immediate` is a crash (no shutdown checkpoint; committed transactions
    /// survive through the WAL), otherwise a fast shutdown.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop(&self, immediate: bool) -> Result<(), PgClusterError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", if immediate { "immediate" } else { "fast" }])
            .args(["-w", "-t", "60", "stop"])
            .output()
            .map_err(command_failed("pg_ctl stop"))?;
        check("pg_ctl stop", out).map(drop)
    }

    /// Start the server again after [`PgCluster::stop`], on the same port.
    ///
    /// # Errors
    /// When `pg_ctl start` fails.
    pub fn restart(&self) -> Result<(), PgClusterError> {
        self.start_server()
    }

    /// Run one SQL command with `psql` on database `db`; returns its unaligned output.
    ///
    /// # Errors
    /// When `psql` fails.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgClusterError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(command_failed("psql"))?;
        check("psql", out).map(|s| s.trim().to_owned())
    }

    /// Create database `name` (letters, digits, `_`) and return its URL.
    ///
    /// # Errors
    /// When `name` is not a plain identifier or `CREATE DATABASE` fails.
    pub fn create_database(&self, name: &str) -> Result<String, PgClusterError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PgClusterError::Command {
                what: "create database",
                detail: format!("not a plain identifier: {name}"),
            });
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// Terminate every other connection to database `db` (`pg_terminate_backend`), as a
    /// network failure or an administrator would; returns how many were terminated.
    ///
    /// # Errors
    /// When `psql` fails.
    pub fn terminate_connections(&self, db: &str) -> Result<u64, PgClusterError> {
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.replace('\'', "''")
        );
        let out = self.psql("postgres", &sql)?;
        Ok(out.parse().unwrap_or(0))
    }

    /// A detached shell that stops the cluster and removes its directory once this process is
    /// gone (when a test process is killed and cannot run [`Drop`]).
    fn spawn_watchdog(&self) -> Result<Child, PgClusterError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_user = self
            .run_as
            .as_ref()
            .map(|u| format!("runuser -u {u} -- "))
            .unwrap_or_default();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{base}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data_dir().display(),
            base = self.base.display(),
        );
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(command_failed("spawn the watchdog"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop(true);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
