//! A complete 15-entry C2SP tlog-tiles log written by Tessera (`testdata/vectors/tessera-log`,
//! spec `tiles.md` §7): entry bundles decode and hash to the level-0 tiles and to every
//! `checkpoint.N` root; proofs built from the tiles alone verify; every pair of sizes is consistent.

use std::path::{Path, PathBuf};

use verdict_core::checkpoint::Checkpoint;
use verdict_core::merkle::{leaf_hash, root_of, Hash};
use verdict_core::note::Verifier;
use verdict_core::proof::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use verdict_core::tile::{
    decode_entry_bundle_for, hash_tiles, Tile, TileHashSource, TileKind, TileReader,
};
use verdict_core::{LeafIndex, TreeSize};

const VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const SIZE: u64 = 15;

fn dir() -> PathBuf {
    crate::testdata().join("vectors/tessera-log")
}

/// Tiles read from the directory by their canonical path, as a static HTTP server would serve them.
struct DirReader(PathBuf);

impl TileReader for DirReader {
    type Error = std::io::Error;
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, Self::Error> {
        std::fs::read(self.0.join(tile.path()))
    }
}

fn checkpoint(n: u64) -> Checkpoint {
    let bytes = std::fs::read(dir().join(format!("checkpoint.{n}"))).unwrap();
    let key = Verifier::parse(VKEY).unwrap();
    let opened = Checkpoint::open(&bytes, &key, &[]).unwrap();
    let cp = opened.checkpoint().clone();
    assert_eq!(cp.size, TreeSize(n), "checkpoint.{n} size");
    cp
}

fn entries_of(size: u64) -> Vec<Vec<u8>> {
    let tile = Tile {
        kind: TileKind::Entries,
        index: 0,
        width: u16::try_from(size).unwrap(),
    };
    let bytes = std::fs::read(dir().join(tile.path())).unwrap();
    decode_entry_bundle_for(&tile, &bytes).unwrap()
}

fn tile_paths_on_disk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("tile")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tessera_log() {
    // Every file under tile/ has a canonical path that round-trips.
    let paths = tile_paths_on_disk(&dir());
    for p in &paths {
        assert_eq!(Tile::parse_path(p).unwrap().path(), *p);
    }

    let full = entries_of(SIZE);
    let leaves: Vec<Hash> = full.iter().map(|e| leaf_hash(e)).collect();
    let reader = DirReader(dir());
    let mut bundles = 0;
    for n in 1..=SIZE {
        // Each partial bundle is a prefix of the full one; the level-0 tile is the leaf hashes.
        let entries = entries_of(n);
        assert_eq!(entries, full[..n as usize]);
        bundles += 1;
        let tiles = hash_tiles(TreeSize(n));
        assert_eq!(tiles.len(), 1);
        let tile_bytes = reader.read_tile(tiles[0]).unwrap();
        let want: Vec<u8> = leaves[..n as usize].iter().flat_map(|h| h.0).collect();
        assert_eq!(tile_bytes, want, "tile for size {n}");
    }

    let mut roots = vec![checkpoint(0).root];
    assert_eq!(roots[0], root_of(&[]));
    for n in 1..=SIZE {
        let cp = checkpoint(n);
        assert_eq!(
            cp.root,
            root_of(&leaves[..n as usize]),
            "checkpoint.{n} root"
        );
        roots.push(cp.root);
    }
    assert_eq!(
        roots[SIZE as usize].to_base64(),
        "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs="
    );
    let latest = std::fs::read(dir().join("checkpoint")).unwrap();
    let latest = Checkpoint::open(&latest, &Verifier::parse(VKEY).unwrap(), &[]).unwrap();
    assert_eq!(latest.checkpoint().root, roots[SIZE as usize]);

    // Proofs from tiles alone (each size reads its own partial tile).
    let (mut inclusions, mut consistencies) = (0, 0);
    for n in 1..=SIZE {
        let source = TileHashSource::new(&reader, TreeSize(n));
        for i in 0..n {
            let p = inclusion_proof(&source, LeafIndex(i), TreeSize(n)).unwrap();
            verify_inclusion(
                &leaves[i as usize],
                LeafIndex(i),
                TreeSize(n),
                &p,
                &roots[n as usize],
            )
            .unwrap();
            inclusions += 1;
        }
        for m in 1..=n {
            let p = consistency_proof(&source, TreeSize(m), TreeSize(n)).unwrap();
            verify_consistency(
                TreeSize(m),
                TreeSize(n),
                &p,
                &roots[m as usize],
                &roots[n as usize],
            )
            .unwrap();
            if m < n {
                // A proof for one pair does not pass for the next old size.
                let other = &roots[(m % (n - 1)) as usize + 1];
                if other != &roots[m as usize] {
                    assert!(verify_consistency(
                        TreeSize(m),
                        TreeSize(n),
                        &p,
                        other,
                        &roots[n as usize]
                    )
                    .is_err());
                }
            }
            consistencies += 1;
        }
    }
    println!(
        "ran tessera-log: {} tile files, {bundles} entry bundles, {} checkpoints, {inclusions} inclusion proofs from tiles, {consistencies} consistency pairs",
        paths.len(),
        roots.len()
    );
}
