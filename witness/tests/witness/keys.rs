//! `keygen` and `vkey`.

use std::process::Command;

use verdict_core::cosignature::Cosigner;

use crate::{bin, keygen};

#[test]
fn keygen_writes_a_private_file_and_prints_the_vkey() {
    let dir = tempfile::tempdir().unwrap();
    let (path, vkey) = keygen(dir.path(), "witness.test/k");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let signer = Cosigner::parse(text.trim()).unwrap();
    assert_eq!(signer.verifier(), vkey);
    assert!(vkey.to_string().starts_with("witness.test/k+"));
    // `vkey` prints the same key.
    let out = Command::new(bin())
        .args(["vkey", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        vkey.to_string()
    );
    // An existing key is never overwritten: exit 2, file unchanged.
    let out = Command::new(bin())
        .args(["keygen", "--name", "witness.test/k", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A bad name or a bad key file: exit 2.
    let out = Command::new(bin())
        .args(["keygen", "--name", "bad name", "--out"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(dir.path().join("junk"), "PRIVATE+KEY+x+00000000+AAAA\n").unwrap();
    let out = Command::new(bin())
        .args(["vkey", "--key"])
        .arg(dir.path().join("junk"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
