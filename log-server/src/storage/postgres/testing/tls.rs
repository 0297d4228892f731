//! A throwaway cluster that speaks TLS (feature `testing`; spec `spec/storage-postgres.md`
//! §1.1): a test PKI made with the `openssl` command (Debian's `postgresql` depends on it
//! through `ssl-cert`), and [`PgCluster::start_tls`]: `ssl = on` with the PKI's server
//! certificate and key, and a `pg_hba.conf` that takes TCP connections over TLS only
//! (`hostssl`), so that a connection that succeeds is encrypted.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{check, command_failed, id_of, PgCluster, PgClusterError};

/// A test PKI in a temporary directory (removed on drop): a CA, a server certificate signed by
/// it for the given DNS names, and a second, unrelated CA.
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
}

/// The configuration of a CA named `{name}` (its common name).
const CA_CNF: &str =
    "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = verdict test {name}\n\
    [ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
    subjectKeyIdentifier = hash\n";

fn openssl(dir: &Path, args: &[&str]) -> Result<(), PgClusterError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(command_failed("openssl (apt-get install -y openssl)"))?;
    check("openssl", out).map(drop)
}

fn write(path: &Path, text: &str) -> Result<(), PgClusterError> {
    std::fs::write(path, text).map_err(command_failed("write a PKI file"))
}

/// A new self-signed CA `name` (`name.crt`, `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<(), PgClusterError> {
    let cnf = format!("{name}.cnf");
    write(&dir.join(&cnf), &CA_CNF.replace("{name}", name))?;
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-config",
            &cnf,
            "-extensions",
            "ext",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
        ],
    )
}

impl TestPki {
    /// Make the PKI; the server certificate names `dns_names` (subjectAltName DNS entries only,
    /// so that connecting by IP address fails the host check of `verify-full`).
    ///
    /// # Errors
    /// [`PgClusterError::Command`] when `openssl` is missing or fails.
    pub fn generate(dns_names: &[&str]) -> Result<Self, PgClusterError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("verdict-pki-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(command_failed("create the PKI directory"))?;
        let pki = Self { dir };
        make_ca(&pki.dir, "ca")?;
        make_ca(&pki.dir, "other-ca")?;
        let san = dns_names
            .iter()
            .map(|n| format!("DNS:{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let cn = dns_names.first().copied().unwrap_or("server");
        write(
            &pki.dir.join("server.cnf"),
            &format!(
                "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n[ext]\n\
                 basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = {san}\n\
                 subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
            ),
        )?;
        openssl(
            &pki.dir,
            &[
                "req",
                "-new",
                "-config",
                "server.cnf",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        )?;
        openssl(
            &pki.dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-out",
                "server.crt",
                "-extfile",
                "server.cnf",
                "-extensions",
                "ext",
            ],
        )?;
        Ok(pki)
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A CA that did not sign it.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// The server certificate and its key (PEM).
    pub fn server_files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PgCluster {
    /// [`PgCluster::start`] with TLS: `ssl = on` with `pki`'s server certificate and key (mode
    /// 0600, owned by the cluster's user), and TCP connections accepted over TLS only
    /// (`hostssl`; `local` over the socket stays `trust`). A role named `verdict_scram`, once
    /// created, must authenticate with a password (`scram-sha-256`); others are trusted.
    ///
    /// # Errors
    /// As [`PgCluster::start`], and when the files cannot be installed.
    pub fn start_tls(pki: &TestPki) -> Result<Self, PgClusterError> {
        Self::start_with(|cluster| cluster.install_tls(pki))
    }

    fn install_tls(&self, pki: &TestPki) -> Result<(), PgClusterError> {
        let data = self.data_dir();
        let (crt, key) = pki.server_files();
        let owner = match &self.run_as {
            Some(user) => Some((id_of("-u", user)?, id_of("-g", user)?)),
            None => None,
        };
        for (from, to) in [(crt, "server.crt"), (key, "server.key")] {
            let to = data.join(to);
            std::fs::copy(&from, &to).map_err(command_failed("copy the server certificate"))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .map_err(command_failed("chmod the server key"))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid))
                    .map_err(command_failed("chown the server key"))?;
            }
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf"))
            .map_err(command_failed("read postgresql.conf"))?;
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        write(&data.join("postgresql.conf"), &conf)?;
        write(
            &data.join("pg_hba.conf"),
            "local all all trust\nhostssl all verdict_scram 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
    }
}
