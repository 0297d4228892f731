//! The server's normal dependency tree stays free of the load tool's and the CLIs' crates
//! (issue 10, "Dependencies"): `cargo tree -p verdict-log-server -e normal` names no reqwest
//! (the witness push client is on hyper-util + hyper-rustls), no hdrhistogram (the load tool is
//! `verdict-bench`) and no anyhow (binaries' `main.rs` only). Runs `cargo tree` offline on the
//! lockfile: it builds nothing.

use std::process::Command;

/// Crates that must not be in the server's normal dependency tree.
const BANNED: &[&str] = &["reqwest", "anyhow", "hdrhistogram"];

#[test]
fn no_reqwest_anyhow_or_hdrhistogram_in_the_server_tree() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["tree", "--offline", "--locked", "--manifest-path", manifest])
        .args([
            "-p",
            "verdict-log-server",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Not vacuous: the tree was read, with the crates the server is built on.
    for present in [
        "verdict-log-server",
        "axum",
        "hyper-util",
        "verdict-witness",
    ] {
        assert!(
            names.contains(&present),
            "{present} missing from:\n{stdout}"
        );
    }
    let found: Vec<&&str> = BANNED.iter().filter(|b| names.contains(b)).collect();
    assert!(
        found.is_empty(),
        "{found:?} in the server's normal dependency tree; \
         `cargo tree -p verdict-log-server -e normal -i <crate>` shows who brings it"
    );
}
