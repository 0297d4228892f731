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

/// The entries of a bundle, in order, borrowed from `bytes` (spec `tiles.md` §4). Yields
/// [`BundleError::Truncated`] once and stops when a length prefix or an entry is cut short. The
/// count is not checked here; [`decode_entry_bundle`] and [`decode_entry_bundle_for`] check it.
pub fn bundle_entries(bytes: &[u8]) -> BundleEntries<'_> {
    BundleEntries { rest: bytes }
}

/// Iterator of [`bundle_entries`].
#[derive(Clone, Debug)]
pub struct BundleEntries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for BundleEntries<'a> {
    type Item = Result<&'a [u8], BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let split = split_entry(self.rest).and_then(|(len, tail)| tail.split_at_checked(len));
        match split {
            Some((entry, tail)) => {
                self.rest = tail;
                Some(Ok(entry))
            }
            None => {
                self.rest = &[];
                Some(Err(BundleError::Truncated))
            }
        }
    }
}

/// Decode a bundle into its entries, rejecting truncation and more than 256 entries
/// (spec `tiles.md` §4). An empty input is a bundle of no entries and is rejected.
///
/// # Errors
/// [`BundleError`].
pub fn decode_entry_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let max = usize::from(TILE_WIDTH);
    let mut out = Vec::new();
    let mut entries = bundle_entries(bytes);
    for entry in entries.by_ref() {
        out.push(entry?.to_vec());
        if out.len() == max {
            break;
        }
    }
    // Past 256 entries, count the rest without allocating, for the error.
    let extra = entries.take_while(Result::is_ok).count();
    if extra > 0 {
        return Err(BundleError::WrongCount {
            expected: max,
            got: max + extra,
        });
    }
    check_count(out.len())?;
    Ok(out)
}

/// The first `count` entries of a bundle, as bytes: the bundle of width `count` that a wider
/// version of the same bundle extends (spec `tiles.md` §2, §4).
///
/// # Errors
/// [`BundleError::Truncated`] when the bundle holds fewer than `count` entries or is cut short.
pub fn bundle_prefix(bytes: &[u8], count: usize) -> Result<&[u8], BundleError> {
    let mut len = 0usize;
    let mut entries = bundle_entries(bytes);
    for _ in 0..count {
        let entry = entries.next().ok_or(BundleError::Truncated)??;
        len = len.saturating_add(2).saturating_add(entry.len());
    }
    bytes.get(..len).ok_or(BundleError::Truncated)
}

/// Entry `position` (0-based) of a bundle.
///
/// # Errors
/// [`BundleError::Truncated`] when the bundle holds no entry at `position` or is cut short.
pub fn bundle_entry(bytes: &[u8], position: usize) -> Result<&[u8], BundleError> {
    bundle_entries(bytes)
        .nth(position)
        .ok_or(BundleError::Truncated)?
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

    #[test]
    fn prefixes_and_single_entries() {
        let entries: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![], vec![7; 300]];
        let b = encode_entry_bundle(&entries).unwrap();
        assert_eq!(bundle_prefix(&b, 0).unwrap(), b"");
        assert_eq!(
            bundle_prefix(&b, 2).unwrap(),
            encode_entry_bundle(&entries[..2]).unwrap()
        );
        assert_eq!(bundle_prefix(&b, 3).unwrap(), b);
        assert_eq!(bundle_prefix(&b, 4), Err(BundleError::Truncated));
        assert_eq!(bundle_entry(&b, 0).unwrap(), b"one");
        assert_eq!(bundle_entry(&b, 1).unwrap(), b"");
        assert_eq!(bundle_entry(&b, 2).unwrap(), &entries[2][..]);
        assert_eq!(bundle_entry(&b, 3), Err(BundleError::Truncated));
        assert_eq!(
            bundle_entry(&b[..b.len() - 1], 2),
            Err(BundleError::Truncated)
        );
        let all: Result<Vec<&[u8]>, _> = bundle_entries(&b).collect();
        assert_eq!(all.unwrap().len(), 3);
        let cut: Vec<_> = bundle_entries(&b[..6]).collect();
        assert_eq!(cut, [Ok(&b"one"[..]), Err(BundleError::Truncated)]);
    }
}
