//! The memory of reading an evidence package does not grow with the period (issue 16,
//! "Scale"): the heap high-water mark of writing the manifest and the tar, opening the package
//! (directory and tar), checking every file and looking files up is measured with a counting
//! allocator (`cap`), first for a package of 1,100 files, then for one of 35,200 (32 times the
//! files, as for about 280,000 and 9,000,000 log entries). Before the manifest's list stayed on
//! disk, the larger package needed about 240 bytes more per file (about 8 MiB here); now only
//! the block index grows, one entry per 64 files. A count of bytes, not a timing. Its own test
//! binary: the allocator's high-water mark is process-wide.
#![allow(clippy::unwrap_used, missing_docs, reason = "tests")]

use std::path::Path;

use verdict_core::package::{write_manifest, write_tar, ManifestHead, Package, Period, FORMAT};
use verdict_core::tile::{Tile, TileKind};

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// A directory package of `n` entry bundles at their real tile paths (at most 1,000 per
/// directory, as in a real package) and a few other files.
fn package(dir: &Path, n: u64) {
    let write = |rel: &str, bytes: &[u8]| {
        let full = dir.join(rel);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    };
    for rel in ["checkpoint", "records.jsonl", "summary.json"] {
        write(rel, rel.as_bytes());
    }
    for index in 0..n {
        let path = Tile {
            kind: TileKind::Entries,
            index,
            width: 256,
        }
        .path();
        write(&path, path.as_bytes());
    }
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

/// Write a package of `n` files, its manifest and its tar, and for each form open it, check
/// every file, list them and read every 97th.
fn exercise(root: &Path, n: u64) {
    let dir = root.join(format!("pkg-{n}"));
    package(&dir, n - 3);
    write_manifest(&dir, &head()).unwrap();
    let tar = root.join(format!("pkg-{n}.tar"));
    write_tar(&dir, &tar).unwrap();
    for path in [&dir, &tar] {
        let pkg = Package::open(path).unwrap();
        pkg.verify_files().unwrap();
        let mut listed = 0u64;
        for (i, f) in pkg.files().enumerate() {
            let f = f.unwrap();
            if i % 97 == 0 {
                assert_eq!(pkg.read(&f.path).unwrap().len() as u64, f.size);
            }
            listed += 1;
        }
        assert_eq!(listed, n);
    }
}

#[test]
fn reading_a_package_32_times_larger_needs_no_more_than_its_block_index() {
    let tmp = tempfile::tempdir().unwrap();
    exercise(tmp.path(), 1_100);
    let small = ALLOCATOR.max_allocated();
    exercise(tmp.path(), 35_200);
    let large = ALLOCATOR.max_allocated();
    println!("heap high-water mark: {small} bytes after 1,100 files, {large} after 35,200");
    // What may grow: the block index, about 130 bytes per 64 files (72 KiB here) with its
    // Vec's slack. A directory listing is bounded by the tile paths' 1,000 names per
    // directory, which both packages fill.
    assert!(
        large <= small + 160 * 1024,
        "the heap peak grew from {small} to {large} bytes"
    );
}
