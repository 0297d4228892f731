//! A bounded cache of stored tiles, used by the log's read path and by the sled backend for the
//! verified parent tiles of its tile files. Stored tiles only grow by extension (the
//! [`Storage`](super::Storage) contract), so a cached tile answers every read up to its width.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use verdict_core::tile::TileKind;

use super::StoredTile;

/// Bytes charged per cached tile on top of its data: the map slot, the queue slot, the `Arc`
/// and the [`StoredTile`] header, and allocator overhead (an estimate that errs high), so that
/// the bound also holds for many tiny partial tiles.
const ENTRY_OVERHEAD: usize = 128;

/// What a cached tile counts against the bound.
fn cost(tile: &StoredTile) -> usize {
    tile.bytes.len().saturating_add(ENTRY_OVERHEAD)
}

/// A bounded cache of stored tiles (first in, first out, by total bytes including a per-tile
/// overhead). Stored tiles only grow by extension, so a cached tile answers every read up to its
/// width.
#[derive(Debug)]
pub struct TileCache {
    tiles: HashMap<(TileKind, u64), Arc<StoredTile>>,
    order: VecDeque<(TileKind, u64)>,
    bytes: usize,
    max_bytes: usize,
}

impl TileCache {
    /// A cache holding at most `max_bytes` of tile data.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            tiles: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn get(&self, kind: TileKind, index: u64, width: u16) -> Option<Arc<StoredTile>> {
        self.tiles
            .get(&(kind, index))
            .filter(|t| t.width >= width)
            .cloned()
    }

    pub(crate) fn insert(&mut self, kind: TileKind, index: u64, tile: Arc<StoredTile>) {
        let len = cost(&tile);
        if len > self.max_bytes {
            return;
        }
        if let Some(old) = self.tiles.insert((kind, index), tile) {
            self.bytes = self.bytes.saturating_sub(cost(&old));
            self.order.retain(|key| *key != (kind, index));
        }
        self.order.push_back((kind, index));
        self.bytes = self.bytes.saturating_add(len);
        while self.bytes > self.max_bytes {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.tiles.remove(&key) {
                self.bytes = self.bytes.saturating_sub(cost(&old));
            }
        }
    }

    /// Bytes charged for the tiles held (data plus a fixed overhead per tile); at most the
    /// bound given to [`TileCache::new`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_bound_counts_per_tile_overhead() {
        // 1,000 one-hash tiles: 32 bytes of data each, but each costs more than that to hold.
        let mut cache = TileCache::new(10_000);
        for index in 0..1000u64 {
            let tile = StoredTile {
                width: 1,
                bytes: vec![1; 32],
            };
            cache.insert(TileKind::Hashes { level: 0 }, index, Arc::new(tile));
            assert!(cache.bytes() <= 10_000);
        }
        assert_eq!(cache.tiles.len(), 10_000 / (32 + ENTRY_OVERHEAD));
        assert_eq!(cache.order.len(), cache.tiles.len());
        // The oldest were evicted, the newest are held.
        assert!(cache.get(TileKind::Hashes { level: 0 }, 999, 1).is_some());
        assert!(cache.get(TileKind::Hashes { level: 0 }, 0, 1).is_none());
    }
}
