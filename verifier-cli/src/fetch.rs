//! HTTP fetching for online mode, with a size bound on every body, and a [`TileReader`] over a
//! C2SP tlog-tiles log (`spec/tiles.md`). Only `audit` and `consistency --log` use this module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use verdict_core::tile::{Tile, TileKind, TileReader, TILE_WIDTH};

use crate::error::CliError;

/// Limit of a checkpoint body.
pub const MAX_CHECKPOINT_BODY: usize = verdict_core::note::MAX_NOTE_SIZE;
/// Limit of a hash tile body: a full tile of 256 hashes.
pub const MAX_HASH_TILE_BODY: usize = TILE_WIDTH as usize * 32;
/// Limit of an entry bundle body: 256 entries of the maximum 65,535 bytes plus length prefixes.
pub const MAX_ENTRY_BUNDLE_BODY: usize = TILE_WIDTH as usize * (2 + 65_535);
/// Limit of a JSON proof body.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// An HTTP client for one log, rooted at its base URL.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    base: String,
}

impl Fetcher {
    /// A client for the log at `base` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// [`CliError::Usage`] for a URL that is not http(s); [`CliError::Network`] when the client
    /// cannot be built.
    pub fn new(base: &str) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "--log {base:?} must be an http:// or https:// URL"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("verdict/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::network(&base, e))?;
        Ok(Fetcher { client, base })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (relative to the base, no leading `/`), reading at most `limit` bytes.
    ///
    /// # Errors
    /// [`CliError::Network`] for a transport error, a non-200 status or a body over `limit`.
    pub async fn get(&self, path: &str, limit: usize) -> Result<Vec<u8>, CliError> {
        let url = format!("{}/{}", self.base, path);
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| CliError::network(&url, e))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(CliError::network(&url, format!("status {}", resp.status())));
        }
        if let Some(len) = resp.content_length() {
            if len > u64::try_from(limit).unwrap_or(u64::MAX) {
                return Err(CliError::network(
                    &url,
                    format!("body of {len} bytes exceeds the {limit}-byte limit"),
                ));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| CliError::network(&url, e))? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(CliError::network(
                    &url,
                    format!("body exceeds the {limit}-byte limit"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A synchronous [`TileReader`] over HTTP with a shared cache. It blocks on the tokio runtime,
/// so call it only from blocking threads (`tokio::task::spawn_blocking`).
#[derive(Clone, Debug)]
pub struct HttpTiles {
    fetcher: Fetcher,
    handle: tokio::runtime::Handle,
    cache: Arc<Mutex<HashMap<Tile, Arc<Vec<u8>>>>>,
}

/// Upper bound on cached tiles; past it the cache is cleared (hash tiles are re-fetched).
const MAX_CACHED_TILES: usize = 4096;

impl HttpTiles {
    /// A reader over `fetcher`, blocking on `handle`.
    pub fn new(fetcher: Fetcher, handle: tokio::runtime::Handle) -> Self {
        HttpTiles {
            fetcher,
            handle,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Fetch a tile (hash tile or entry bundle), checking a hash tile's exact length.
    ///
    /// # Errors
    /// [`CliError::Network`]; [`CliError::Failed`] (`tiles`) for a hash tile of the wrong length.
    pub fn fetch(&self, tile: Tile) -> Result<Arc<Vec<u8>>, CliError> {
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&tile).cloned()) {
            return Ok(hit);
        }
        let limit = match tile.kind {
            TileKind::Hashes { .. } => MAX_HASH_TILE_BODY,
            TileKind::Entries => MAX_ENTRY_BUNDLE_BODY,
        };
        let path = tile.path();
        let bytes = self.handle.block_on(self.fetcher.get(&path, limit))?;
        if matches!(tile.kind, TileKind::Hashes { .. })
            && bytes.len() != usize::from(tile.width) * 32
        {
            return Err(CliError::failed(
                crate::error::Check::Tiles,
                format!(
                    "tile {path} has {} bytes, expected {}",
                    bytes.len(),
                    usize::from(tile.width) * 32
                ),
            ));
        }
        let bytes = Arc::new(bytes);
        // Entry bundles are used once per sample; only hash tiles are worth caching.
        if matches!(tile.kind, TileKind::Hashes { .. }) {
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() >= MAX_CACHED_TILES {
                    cache.clear();
                }
                cache.insert(tile, Arc::clone(&bytes));
            }
        }
        Ok(bytes)
    }
}

impl TileReader for HttpTiles {
    type Error = CliError;

    fn read_tile(&self, tile: Tile) -> Result<Vec<u8>, CliError> {
        self.fetch(tile).map(|b| b.as_ref().clone())
    }
}

/// The tile of `kind` with index `n` as it exists in a tree of `size`: full (width 256) or the
/// partial right-edge tile. `None` when the tree has no such tile.
pub fn tile_at(kind: TileKind, n: u64, size: u64) -> Option<Tile> {
    let level_shift = match kind {
        TileKind::Hashes { level } => 8u32.checked_mul(u32::from(level))?,
        TileKind::Entries => 0,
    };
    let count = size.checked_shr(level_shift).unwrap_or(0);
    let start = n.checked_mul(u64::from(TILE_WIDTH))?;
    if start >= count {
        return None;
    }
    let width = (count - start).min(u64::from(TILE_WIDTH));
    Some(Tile {
        kind,
        index: n,
        width: u16::try_from(width).ok()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn tile_widths() {
        let e = TileKind::Entries;
        assert_eq!(tile_at(e, 0, 0), None);
        assert_eq!(tile_at(e, 0, 5).unwrap().width, 5);
        assert_eq!(tile_at(e, 0, 256).unwrap().width, 256);
        assert_eq!(tile_at(e, 1, 256), None);
        assert_eq!(tile_at(e, 1, 300).unwrap().width, 44);
        let h1 = TileKind::Hashes { level: 1 };
        assert_eq!(tile_at(h1, 0, 255), None);
        assert_eq!(tile_at(h1, 0, 256 * 3 + 5).unwrap().width, 3);
        assert_eq!(tile_at(TileKind::Hashes { level: 9 }, 0, u64::MAX), None);
    }

    #[test]
    fn rejects_non_http_urls() {
        assert!(Fetcher::new("file:///etc/passwd").is_err());
        assert!(Fetcher::new("http://127.0.0.1:1/").is_ok());
    }
}
