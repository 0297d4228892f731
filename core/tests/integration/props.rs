//! Property tests of the Merkle half of `verdict-core` (spec `merkle.md` §9, `tiles.md` §7):
//! roots against a naive recursive model and against `rs_merkle`, proofs against a naive model
//! of RFC 9162 §2.1.3.1 / §2.1.4.1, every leaf included and every pair of sizes consistent,
//! `RightEdge` against `root_of`, tile paths and entry bundles round-tripping, and proofs served
//! from tiles (written with `tile_updates`) equal to in-memory proofs.

use std::collections::HashMap;
use std::convert::Infallible;

use proptest::prelude::*;
use verdict_core::merkle::{
    empty_root, leaf_hash, node_hash, root_of, Hash, RightEdge, StoredHash,
};
use verdict_core::proof::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, HashSource,
    MemoryHashSource,
};
use verdict_core::tile::{
    decode_entry_bundle, encode_entry_bundle, hash_tiles, tile_updates, Tile, TileHashSource,
    TileKind, TileReader,
};
use verdict_core::{LeafIndex, TreeSize};

// ---------- naive model: RFC 9162 §2.1 written recursively over a Vec ----------

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(l: &[Hash]) -> Hash {
    match l.len() {
        0 => empty_root(),
        1 => l[0],
        n => {
            let k = split(n);
            node_hash(&mth(&l[..k]), &mth(&l[k..]))
        }
    }
}

fn path(m: usize, l: &[Hash]) -> Vec<Hash> {
    if l.len() <= 1 {
        return vec![];
    }
    let k = split(l.len());
    let (mut p, other) = if m < k {
        (path(m, &l[..k]), mth(&l[k..]))
    } else {
        (path(m - k, &l[k..]), mth(&l[..k]))
    };
    p.push(other);
    p
}

fn subproof(m: usize, l: &[Hash], complete: bool) -> Vec<Hash> {
    let n = l.len();
    if m == n {
        return if complete { vec![] } else { vec![mth(l)] };
    }
    let k = split(n);
    let (mut p, other) = if m <= k {
        (subproof(m, &l[..k], complete), mth(&l[k..]))
    } else {
        (subproof(m - k, &l[k..], false), mth(&l[..k]))
    };
    p.push(other);
    p
}

// ---------- a HashSource over the hashes RightEdge reports ----------

#[derive(Default)]
struct Stored(HashMap<(u8, u64), Hash>);

#[derive(Debug, thiserror::Error)]
#[error("missing stored hash")]
struct Missing;

impl HashSource for Stored {
    type Error = Missing;
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Missing> {
        wanted
            .iter()
            .map(|k| self.0.get(k).copied().ok_or(Missing))
            .collect()
    }
}

fn build(leaves: &[Hash]) -> (RightEdge, Stored, Vec<Hash>) {
    let mut edge = RightEdge::new();
    let mut stored = Stored::default();
    let mut roots = vec![edge.root()];
    for l in leaves {
        edge.append(*l, &mut |s: StoredHash| {
            assert!(stored.0.insert((s.level, s.index), s.hash).is_none());
        })
        .unwrap();
        roots.push(edge.root());
    }
    (edge, stored, roots)
}

fn leaves_of(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| leaf_hash(e)).collect()
}

// ---------- rs_merkle with an RFC 6962 hasher ----------

#[derive(Clone)]
struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        leaf_hash(data).0
    }
    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => node_hash(&Hash(*left), &Hash(*r)).0,
            // rs_merkle promotes a node without a right sibling unchanged, which is exactly
            // how RFC 9162's left-balanced tree treats the right edge.
            None => *left,
        }
    }
}

fn entries(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Roots: root_of, RightEdge at every size, the naive model and rs_merkle agree. rs_merkle's
    /// bottom-up pairing with promotion of an odd last node builds the same left-balanced tree as
    /// RFC 9162 for every size >= 1, so all sizes are compared; rs_merkle has no empty-tree root.
    #[test]
    fn roots_agree(e in entries(160)) {
        let leaves = leaves_of(&e);
        let (edge, _, roots) = build(&leaves);
        for n in 0..=leaves.len() {
            prop_assert_eq!(roots[n], mth(&leaves[..n]));
            prop_assert_eq!(roots[n], root_of(&leaves[..n]));
        }
        prop_assert_eq!(edge.size(), TreeSize(leaves.len() as u64));
        let rebuilt = RightEdge::from_parts(edge.size(), edge.hashes().to_vec()).unwrap();
        prop_assert_eq!(&rebuilt, &edge);
        let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
        let tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&raw);
        match tree.root() {
            Some(r) => prop_assert_eq!(Hash(r), edge.root()),
            None => prop_assert!(leaves.is_empty()),
        }
        // rs_merkle single-leaf proofs hold the same hashes, bottom-up, and verify.
        for i in (0..leaves.len()).step_by(7) {
            let ours = inclusion_proof(&MemoryHashSource::new(leaves.clone()), LeafIndex(i as u64), edge.size()).unwrap();
            let theirs = tree.proof(&[i]);
            let theirs_h: Vec<Hash> = theirs.proof_hashes().iter().map(|h| Hash(*h)).collect();
            prop_assert_eq!(&ours, &theirs_h);
            prop_assert!(theirs.verify(edge.root().0, &[i], &[raw[i]], raw.len()));
        }
    }

    /// Every leaf provably included and every pair of sizes provably consistent; proofs equal the
    /// naive model's; a tampered proof, root or index fails.
    #[test]
    fn proofs_complete_and_sound(e in entries(40), flip in any::<(usize, u8)>()) {
        let leaves = leaves_of(&e);
        let (_, stored, roots) = build(&leaves);
        let n = leaves.len();
        for size in 1..=n {
            for i in 0..size {
                let p = inclusion_proof(&stored, LeafIndex(i as u64), TreeSize(size as u64)).unwrap();
                prop_assert_eq!(&p, &path(i, &leaves[..size]));
                verify_inclusion(&leaves[i], LeafIndex(i as u64), TreeSize(size as u64), &p, &roots[size]).unwrap();
                if !p.is_empty() {
                    let mut bad = p.clone();
                    let j = flip.0 % bad.len();
                    bad[j].0[usize::from(flip.1) % 32] ^= 1;
                    prop_assert!(verify_inclusion(&leaves[i], LeafIndex(i as u64), TreeSize(size as u64), &bad, &roots[size]).is_err());
                    let other = (i + 1) % size;
                    if leaves[other] != leaves[i] {
                        prop_assert!(verify_inclusion(&leaves[i], LeafIndex(other as u64), TreeSize(size as u64), &p, &roots[size]).is_err());
                    }
                }
            }
            for old in 1..=size {
                let p = consistency_proof(&stored, TreeSize(old as u64), TreeSize(size as u64)).unwrap();
                prop_assert_eq!(&p, &subproof(old, &leaves[..size], true));
                verify_consistency(TreeSize(old as u64), TreeSize(size as u64), &p, &roots[old], &roots[size]).unwrap();
                if !p.is_empty() {
                    let mut bad = p.clone();
                    let j = flip.0 % bad.len();
                    bad[j].0[usize::from(flip.1) % 32] ^= 1;
                    prop_assert!(verify_consistency(TreeSize(old as u64), TreeSize(size as u64), &bad, &roots[old], &roots[size]).is_err());
                    prop_assert!(verify_consistency(TreeSize(old as u64), TreeSize(size as u64), &p[1..], &roots[old], &roots[size]).is_err());
                }
            }
            prop_assert!(verify_consistency(TreeSize(0), TreeSize(size as u64), &[], &empty_root(), &roots[size]).is_err());
        }
    }

    /// Tile paths round-trip for every kind, level, index and width.
    #[test]
    fn tile_path_round_trip(entries_kind in any::<bool>(), level in 0u8..=63, index in any::<u64>(), width in 1u16..=256) {
        let kind = if entries_kind { TileKind::Entries } else { TileKind::Hashes { level } };
        let tile = Tile { kind, index, width };
        prop_assert_eq!(Tile::parse_path(&tile.path()).unwrap(), tile);
    }

    /// Arbitrary strings never panic the path parser, and anything it accepts is canonical.
    #[test]
    fn tile_path_parse_is_canonical(s in "tile/[0-9a-z./x]{0,40}") {
        if let Ok(t) = Tile::parse_path(&s) {
            prop_assert_eq!(t.path(), s);
        }
    }

    /// Entry bundles round-trip; any strict prefix is rejected.
    #[test]
    fn entry_bundle_round_trip(e in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..=256), cut in any::<usize>()) {
        let b = encode_entry_bundle(&e).unwrap();
        prop_assert_eq!(&decode_entry_bundle(&b).unwrap(), &e);
        let cut = cut % b.len();
        // A prefix ending exactly on an entry boundary is a valid shorter bundle.
        if let Ok(d) = decode_entry_bundle(&b[..cut]) {
            prop_assert!(d.len() < e.len());
            prop_assert_eq!(&d[..], &e[..d.len()]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Tiles written batch by batch with `tile_updates` serve the same proofs as stored hashes.
    #[test]
    fn tile_source_matches_memory(batches in prop::collection::vec(1usize..300, 1..6), picks in prop::collection::vec(any::<(u64, u64)>(), 8)) {
        let total: usize = batches.iter().sum();
        let leaves: Vec<Hash> = (0..total as u64).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let (store, mem, sizes) = write_tiles(&leaves, &batches);
        check_tiles(&store, &mem, &leaves, &sizes, &picks)?;
    }
}

/// Tiles keyed by (tile, width), as a store keeping every partial width.
#[derive(Default)]
struct TileStore(HashMap<Tile, Vec<u8>>);

#[derive(Debug, thiserror::Error)]
#[error("tile {0} not stored")]
struct NotStored(String);

impl TileReader for TileStore {
    type Error = NotStored;
    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, NotStored> {
        self.0
            .get(&tile)
            .cloned()
            .ok_or_else(|| NotStored(tile.path()))
    }
}

fn write_tiles(leaves: &[Hash], batches: &[usize]) -> (TileStore, Stored, Vec<u64>) {
    let mut store = TileStore::default();
    let mut all = Stored::default();
    let mut edge = RightEdge::new();
    let mut sizes = vec![];
    let mut next = 0;
    for &b in batches {
        let old = edge.size();
        let mut created = vec![];
        for l in &leaves[next..next + b] {
            edge.append(*l, &mut |s| created.push(s)).unwrap();
        }
        next += b;
        all.0
            .extend(created.iter().map(|s| ((s.level, s.index), s.hash)));
        let updates = tile_updates(old, edge.size(), &created, |t| {
            Ok::<_, Infallible>(store.0.get(&t).cloned())
        })
        .unwrap();
        for (t, bytes) in updates {
            assert!(store.0.insert(t, bytes).is_none(), "tile rewritten");
        }
        sizes.push(edge.size().0);
        // Every hash tile of the new size is now stored.
        for t in hash_tiles(edge.size()) {
            assert!(store.0.contains_key(&t), "{} missing", t.path());
        }
    }
    (store, all, sizes)
}

fn check_tiles(
    store: &TileStore,
    mem: &Stored,
    leaves: &[Hash],
    sizes: &[u64],
    picks: &[(u64, u64)],
) -> Result<(), TestCaseError> {
    for (k, &size) in sizes.iter().enumerate() {
        let src = TileHashSource::new(store, TreeSize(size));
        let root = root_of(&leaves[..size as usize]);
        for &(a, b) in picks {
            let i = a % size;
            let p = inclusion_proof(&src, LeafIndex(i), TreeSize(size)).unwrap();
            prop_assert_eq!(
                &p,
                &inclusion_proof(mem, LeafIndex(i), TreeSize(size)).unwrap()
            );
            verify_inclusion(&leaves[i as usize], LeafIndex(i), TreeSize(size), &p, &root).unwrap();
            let old = b % size + 1;
            let c = consistency_proof(&src, TreeSize(old), TreeSize(size)).unwrap();
            prop_assert_eq!(
                &c,
                &consistency_proof(mem, TreeSize(old), TreeSize(size)).unwrap()
            );
        }
        // Consistency with every earlier batch boundary, proven from the new size's tiles.
        for &old in &sizes[..k] {
            let c = consistency_proof(&src, TreeSize(old), TreeSize(size)).unwrap();
            verify_consistency(
                TreeSize(old),
                TreeSize(size),
                &c,
                &root_of(&leaves[..old as usize]),
                &root,
            )
            .unwrap();
        }
    }
    Ok(())
}

/// A tree past 65,536 leaves, so tiles of levels 0, 1 and 2 and subtrees at levels that are not
/// multiples of 8 are all served from tiles.
#[test]
fn tile_source_three_tile_levels() {
    let total = 256 * 256 + 300;
    let leaves: Vec<Hash> = (0..total as u64)
        .map(|i| leaf_hash(&i.to_le_bytes()))
        .collect();
    let (store, mem, sizes) = write_tiles(&leaves, &[1000, 256 * 256 - 1000, 300]);
    assert!(store
        .0
        .keys()
        .any(|t| t.kind == TileKind::Hashes { level: 2 }));
    let picks: Vec<(u64, u64)> = (0..6u64).map(|i| (i * 12_345 + 7, i * 9_999 + 3)).collect();
    check_tiles(&store, &mem, &leaves, &sizes, &picks).unwrap();
}

/// `tile_updates` fails closed: a missing old partial tile or missing stored hash is an error.
#[test]
fn tile_updates_errors() {
    let leaves: Vec<Hash> = (0..10u64).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut edge = RightEdge::new();
    let mut created = vec![];
    for l in &leaves {
        edge.append(*l, &mut |s| created.push(s)).unwrap();
    }
    let none = |_t: Tile| Ok::<_, Infallible>(None);
    assert!(tile_updates(TreeSize(5), TreeSize(10), &created, none).is_err());
    assert!(tile_updates(TreeSize(0), TreeSize(10), &created[..3], none).is_err());
    let short = |_t: Tile| Ok::<_, Infallible>(Some(vec![0u8; 31]));
    assert!(tile_updates(TreeSize(5), TreeSize(10), &created, short).is_err());
    let ok = tile_updates(TreeSize(0), TreeSize(10), &created, none).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].0.path(), "tile/0/000.p/10");
    assert_eq!(
        ok[0].1,
        leaves.iter().flat_map(|h| h.0).collect::<Vec<u8>>()
    );
}
