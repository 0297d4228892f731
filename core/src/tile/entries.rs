//! Entry bundles: big-endian uint16 length-prefixed entries, 1 to 256 per bundle.
//! Spec: `spec/tiles.md` §4.

use super::{BundleError, Tile, TILE_WIDTH};

/// Encode entries as a bundle: each is a big-endian uint16 length and the bytes
/// (spec `tiles.md` §4). A bundle holds 1 to 256 entries.
///
/// # Errors
/// [`BundleError::EntryTooLong`] for an entry over 65,535 bytes; [`BundleError::WrongCount`]
/// for no entries or more than 256.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    check_count(entries.len())?;
    let total: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| BundleError::EntryTooLong { len: e.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

fn check_count(got: usize) -> Result<(), BundleError> {
    let max = usize::from(TILE_WIDTH);
    if got == 0 {
        return Err(BundleError::WrongCount { expected: 1, got });
    }
    if got > max {
        return Err(BundleError::WrongCount { expected: max, got });
    }
    Ok(())
}

/// Decode a bundle into its entries, rejecting truncation and more than 256 entries
/// (spec `tiles.md` §4). An empty input is a bundle of no entries and is rejected.
///
/// # Errors
/// [`BundleError`].
pub fn decode_entry_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() == usize::from(TILE_WIDTH) {
            // Count what is left without allocating, for the error.
            let mut got = out.len();
            while let Some((len, tail)) = split_entry(rest) {
                rest = tail.get(len..).unwrap_or_default();
                got += 1;
            }
            return Err(BundleError::WrongCount {
                expected: usize::from(TILE_WIDTH),
                got,
            });
        }
        let (len, tail) = split_entry(rest).ok_or(BundleError::Truncated)?;
        let (entry, tail) = tail.split_at_checked(len).ok_or(BundleError::Truncated)?;
        out.push(entry.to_vec());
        rest = tail;
    }
    check_count(out.len())?;
    Ok(out)
}

/// Decode a bundle that must hold exactly the `tile.width` entries of `tile` (spec `tiles.md` §4).
///
/// # Errors
/// [`BundleError`], with [`BundleError::WrongCount`] when the count differs from the width.
pub fn decode_entry_bundle_for(tile: &Tile, bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let entries = decode_entry_bundle(bytes)?;
    if entries.len() != usize::from(tile.width) {
        return Err(BundleError::WrongCount {
            expected: usize::from(tile.width),
            got: entries.len(),
        });
    }
    Ok(entries)
}

fn split_entry(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (prefix, tail) = bytes.split_first_chunk::<2>()?;
    Some((usize::from(u16::from_be_bytes(*prefix)), tail))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::tile::TileKind;

    #[test]
    fn bundles() {
        let entries: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![], vec![7; 300]];
        let b = encode_entry_bundle(&entries).unwrap();
        assert_eq!(decode_entry_bundle(&b).unwrap(), entries);
        assert_eq!(
            decode_entry_bundle(&b[..b.len() - 1]),
            Err(BundleError::Truncated)
        );
        assert_eq!(decode_entry_bundle(&[0]), Err(BundleError::Truncated));
        assert!(decode_entry_bundle(&[]).is_err());
        assert_eq!(
            encode_entry_bundle(&[vec![0u8; 65_536]]),
            Err(BundleError::EntryTooLong { len: 65_536 })
        );
        assert!(encode_entry_bundle(&[vec![0u8; 65_535]]).is_ok());
        let many = vec![0u8; 2 * 257];
        assert_eq!(
            decode_entry_bundle(&many),
            Err(BundleError::WrongCount {
                expected: 256,
                got: 257
            })
        );
        let tile = Tile {
            kind: TileKind::Entries,
            index: 0,
            width: 2,
        };
        assert!(decode_entry_bundle_for(&tile, &b).is_err());
    }
}
