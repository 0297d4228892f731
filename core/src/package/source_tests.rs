//! Opening packages without holding the file list (issue 16, "Scale"): the block index, the
//! sorted directory walk, the header-by-header tar check, and a manifest changed after open.

use std::path::Path;

use super::*;
use crate::package::{Manifest, Period, FORMAT};

/// Paths that exercise the walk's order (`a.b` < `a/…` < `ab`, `000` < `000.p/…`) and span
/// several blocks of the index (64 records each).
fn paths() -> Vec<String> {
    let mut out: Vec<String> = ["a.b", "a/c", "a/c.d", "ab", "checkpoint", "policies/x.json"]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    for i in 0..200 {
        out.push(format!("tile/entries/{i:03}"));
    }
    out.push("tile/entries/000.p/5".to_owned());
    out.push("tile/entries/x001/000".to_owned());
    out.push("zz".to_owned());
    out
}

fn head() -> ManifestHead {
    ManifestHead {
        exported_at: "2026-12-06T00:00:00Z".to_owned(),
        format: FORMAT.to_owned(),
        origin: "verdict.test/log".to_owned(),
        period: Period {
            start: 0,
            end: 0,
            from: None,
            to: None,
        },
        tree_size: 0,
    }
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let full = dir.join(rel);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, bytes).unwrap();
}

/// A directory package with every path of [`paths`], each holding its own path.
fn dir_package(dir: &Path) {
    for p in paths() {
        write(dir, &p, p.as_bytes());
    }
    write_manifest(dir, &head()).unwrap();
}

fn sorted_paths() -> Vec<String> {
    let mut p = paths();
    p.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    p
}

fn check_every_file(pkg: &Package) {
    let listed: Vec<String> = pkg.files().map(|f| f.unwrap().path).collect();
    assert_eq!(listed, sorted_paths());
    assert_eq!(pkg.file_count(), listed.len() as u64);
    assert!(pkg.blocks.len() > 3, "the list spans several blocks");
    // Every lookup, backwards so that the one-block cache misses.
    for p in listed.iter().rev() {
        assert!(pkg.has(p), "{p}");
        assert_eq!(pkg.read(p).unwrap(), p.as_bytes(), "{p}");
    }
    // The manifest is not a listed file: read refuses it as unlisted.
    assert!(matches!(
        pkg.read(MANIFEST),
        Err(PackageError::Missing { .. })
    ));
    for absent in ["", "a", "a/", "aa", "tile/entries/200", "zzz", "0"] {
        assert!(!pkg.has(absent), "{absent:?}");
        assert!(matches!(
            pkg.read(absent),
            Err(PackageError::Missing { .. })
        ));
    }
    pkg.verify_files().unwrap();
}

#[test]
fn a_written_manifest_lists_the_walk_in_bytewise_order_and_both_forms_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    dir_package(&dir);
    let bytes = std::fs::read(dir.join(MANIFEST)).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(
        m.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        sorted_paths()
    );
    assert_eq!(
        m.to_bytes().unwrap(),
        bytes,
        "the streamed manifest is canonical"
    );
    let pkg = Package::open(&dir).unwrap();
    assert!(!pkg.is_tar());
    assert_eq!(pkg.manifest(), &head());
    check_every_file(&pkg);

    let tar = tmp.path().join("pkg.tar");
    write_tar(&dir, &tar).unwrap();
    let pkg = Package::open(&tar).unwrap();
    assert!(pkg.is_tar());
    check_every_file(&pkg);
}

#[test]
fn a_directory_with_a_file_more_or_less_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    dir_package(&dir);
    write(&dir, "tile/entries/150.extra", b"x");
    assert_eq!(
        Package::open(&dir).unwrap_err(),
        PackageError::Unlisted {
            path: "tile/entries/150.extra".into()
        }
    );
    std::fs::remove_file(dir.join("tile/entries/150.extra")).unwrap();
    std::fs::remove_file(dir.join("tile/entries/077")).unwrap();
    assert_eq!(
        Package::open(&dir).unwrap_err(),
        PackageError::Missing {
            path: "tile/entries/077".into()
        }
    );
    std::fs::remove_file(dir.join(MANIFEST)).unwrap();
    assert!(matches!(
        Package::open(&dir).unwrap_err(),
        PackageError::Manifest { .. }
    ));
}

#[test]
fn a_manifest_changed_after_open_is_refused_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    dir_package(&dir);
    let pkg = Package::open(&dir).unwrap();
    // Same length, another digest for one file: a lookup re-reads its block and refuses it.
    let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
    let m = Manifest::parse(text.as_bytes()).unwrap();
    let target = m.file("tile/entries/100").unwrap();
    let forged = text.replacen(&target.sha256, &"0".repeat(64), 1);
    assert_ne!(forged, text);
    std::fs::write(dir.join(MANIFEST), forged).unwrap();
    let err = pkg.read("tile/entries/100").unwrap_err();
    assert!(err.to_string().contains("changed on disk"), "{err}");
    assert!(pkg.files().any(|f| f.is_err()));
}

/// A tar of `members` (path, bytes) in this order, as `write_tar` writes them.
fn tar_of(out: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(File::create(out).unwrap());
    for (path, bytes) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn a_tar_out_of_order_short_of_a_member_or_with_an_extra_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    dir_package(&dir);
    let manifest = std::fs::read(dir.join(MANIFEST)).unwrap();
    let good: Vec<(String, Vec<u8>)> = sorted_paths()
        .into_iter()
        .map(|p| {
            let bytes = p.clone().into_bytes();
            (p, bytes)
        })
        .chain([(MANIFEST.to_owned(), manifest.clone())])
        .collect();
    let tar = tmp.path().join("t.tar");
    tar_of(&tar, &good);
    check_every_file(&Package::open(&tar).unwrap());

    let open = |members: &[(String, Vec<u8>)]| {
        let _ = std::fs::remove_file(&tar);
        tar_of(&tar, members);
        Package::open(&tar).unwrap_err()
    };
    let mut swapped = good.clone();
    swapped.swap(100, 101);
    let err = open(&swapped);
    assert!(
        matches!(&err, PackageError::Path { path, reason } if *path == good[101].0 && reason.contains("order")),
        "{err}"
    );
    let mut short = good.clone();
    let gone = short.remove(70).0;
    assert_eq!(open(&short), PackageError::Missing { path: gone });
    let mut extra = good.clone();
    extra.insert(50, ("unlisted".to_owned(), b"x".to_vec()));
    assert_eq!(
        open(&extra),
        PackageError::Unlisted {
            path: "unlisted".into()
        }
    );
    let mut early = good.clone();
    let last = early.pop().unwrap();
    early.insert(0, last);
    assert!(
        matches!(open(&early), PackageError::Path { path, .. } if path == MANIFEST),
        "the manifest is the last member"
    );
    let mut twice = good.clone();
    twice.push((MANIFEST.to_owned(), manifest));
    assert!(matches!(open(&twice), PackageError::Path { .. }));
    let mut dup = good.clone();
    dup.insert(10, good[9].clone());
    assert!(matches!(open(&dup), PackageError::Path { .. }));
}
