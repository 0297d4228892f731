//! Helpers shared by the benches of `verdict-core`: a whole tree in memory and deterministic
//! indices, so that every bench builds its inputs the same way.

use std::convert::Infallible;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use verdict_core::merkle::{leaf_hash, Hash, RightEdge};
use verdict_core::proof::HashSource;

/// Every complete subtree hash of a tree, by level: `levels[l][i]` is the subtree (l, i), as a
/// server's tile store holds them.
pub struct Levels(pub Vec<Vec<Hash>>);

impl HashSource for Levels {
    type Error = Infallible;
    fn hashes(&self, wanted: &[(u8, u64)]) -> Result<Vec<Hash>, Infallible> {
        Ok(wanted
            .iter()
            .map(|&(l, i)| self.0[usize::from(l)][i as usize])
            .collect())
    }
}

/// The tree of `n` leaves whose entry `i` is `entry(i)`: every stored hash and the right edge.
pub fn tree(n: u64, entry: impl Fn(u64) -> Vec<u8>) -> (Levels, RightEdge) {
    let mut levels: Vec<Vec<Hash>> = vec![Vec::new(); 64];
    let mut edge = RightEdge::new();
    for i in 0..n {
        edge.append(leaf_hash(&entry(i)), &mut |s| {
            levels[usize::from(s.level)].push(s.hash);
        })
        .unwrap();
    }
    (Levels(levels), edge)
}

/// `n` deterministic indices below `below` (a seeded `StdRng`), so runs are comparable.
pub fn indices(n: usize, below: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
    (0..n).map(|_| rng.gen_range(0..below)).collect()
}
