//! Content in verified blocks: BLAKE3 verified streaming in the bao format
//! (the `bao-tree` crate, which iroh-blobs uses), in groups of 16 KiB.
//!
//! A file's BLAKE3 hash is the root of its bao tree, so the hash every
//! index already carries is all a receiver needs to check each block as it
//! arrives: the sender streams the tree's parent hashes along with the
//! blocks asked for, and a block that does not hash up to the root is
//! refused there and then (the transfer fails, and the content is asked of
//! another member). To send less, a receiver that already holds a version
//! of the file (an edit elsewhere changed a few blocks) or part of it (a
//! cut transfer) first asks for the tree's hashes (the outboard, 64 bytes
//! per 16 KiB), finds which of its blocks already match, and asks only for
//! the rest.

use bao_tree::io::outboard::{EmptyOutboard, PreOrderOutboard};
use bao_tree::io::sync::{CreateOutboard, decode_ranges, encode_ranges_validated, valid_ranges};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks of 16 chunks of 1 KiB (iroh-blobs' choice).
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(4);

/// A tree's hashes, in bao's pre-order layout.
pub type Outboard = PreOrderOutboard<Vec<u8>>;

/// The tree of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK)
}

/// Computes the outboard of `size` bytes of `file` (blocking: it reads the
/// whole file).
pub fn outboard_of(file: &std::fs::File, size: u64) -> io::Result<Outboard> {
    let reader = io::BufReader::with_capacity(256 * 1024, file);
    Outboard::create_sized(reader.take(size), size, BLOCK)
}

/// An outboard received for content `root` of `size` bytes, if it has the
/// right length for it.
pub fn outboard_from(root: [u8; 32], size: u64, data: Vec<u8>) -> Option<Outboard> {
    let tree = tree(size);
    (data.len() as u64 == tree.outboard_size()).then(|| Outboard {
        root: blake3::Hash::from_bytes(root),
        tree,
        data,
    })
}

/// The most ranges one request names (a request of many tiny ranges would
/// cost the sender time for nothing).
pub const MAX_RANGES: usize = 4096;

/// Chunk ranges `[start, end)` as they travel.
pub type Ranges = Vec<(u64, u64)>;

/// Every chunk of `size` bytes.
pub fn all(size: u64) -> Ranges {
    let n = BaoTree::new(size, BLOCK).chunks().0;
    if n == 0 { Vec::new() } else { vec![(0, n)] }
}

/// The travelling form as a range set: at most [`MAX_RANGES`], in order,
/// not overlapping.
pub fn to_set(ranges: &[(u64, u64)]) -> io::Result<ChunkRanges> {
    let bad = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
    if ranges.len() > MAX_RANGES {
        return bad("too many ranges");
    }
    let mut set = ChunkRanges::empty();
    let mut end = 0;
    for &(a, b) in ranges {
        if a >= b || a < end {
            return bad("ranges out of order");
        }
        end = b;
        set |= ChunkRanges::from(ChunkNum(a)..ChunkNum(b));
    }
    Ok(set)
}

/// The chunks of `file` (already `size` bytes long) that do not yet hold
/// the content `outboard` describes (blocking: it hashes the file).
pub fn missing(outboard: &Outboard, file: &std::fs::File, size: u64) -> io::Result<Ranges> {
    let mut want = to_set(&all(size))?;
    for valid in valid_ranges(outboard, file, &ChunkRanges::all()) {
        let valid = valid?;
        want -= ChunkRanges::from(valid);
    }
    let b = want.boundaries();
    let gaps: Ranges = b
        .chunks(2)
        .map(|p| (p[0].0, p.get(1).map_or(u64::MAX, |e| e.0)))
        .collect();
    if gaps.len() > MAX_RANGES {
        // Changes everywhere: one range over all of them.
        return Ok(vec![(gaps[0].0, gaps[gaps.len() - 1].1)]);
    }
    Ok(gaps)
}

/// Streams the blocks of `ranges` of `file` (content of `outboard`) to
/// `out`, with the parent hashes that prove them (blocking). Fails if the
/// file no longer matches the outboard.
pub fn encode(
    file: &std::fs::File,
    outboard: &Outboard,
    ranges: &[(u64, u64)],
    out: impl io::Write,
) -> io::Result<()> {
    encode_ranges_validated(file, outboard, &to_set(ranges)?, out)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Reads an encoded stream of `ranges` of content `root` (`size` bytes)
/// from `input`, checks each block against the root and writes it into
/// `file` at its offset (blocking). `received` counts the bytes read.
pub fn decode(
    input: impl Read,
    ranges: &[(u64, u64)],
    file: &std::fs::File,
    (root, size): ([u8; 32], u64),
    received: Arc<AtomicU64>,
) -> io::Result<()> {
    let counted = Counted {
        inner: input,
        n: received,
    };
    // The parent hashes arrive with the blocks; none need keeping here.
    let outboard = EmptyOutboard {
        tree: tree(size),
        root: blake3::Hash::from_bytes(root),
    };
    decode_ranges(counted, &to_set(ranges)?, file.try_clone()?, outboard)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn file_with(data: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.rewind().unwrap();
        f
    }

    fn content(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(seed) >> 7) as u8)
            .collect()
    }

    #[test]
    fn only_changed_blocks_travel_and_each_is_checked() {
        let size = 1 << 20;
        let new = content(size, 2_654_435_761);
        let mut old = new.clone();
        // One changed run of 20 KiB in the middle: two or three blocks.
        for b in &mut old[500_000..520_000] {
            *b ^= 0x5a;
        }
        let root = *blake3::hash(&new).as_bytes();
        let sender = file_with(&new);
        let ob = outboard_of(&sender, size as u64).unwrap();
        assert_eq!(
            ob.root.as_bytes(),
            &root,
            "the tree's root is the file's BLAKE3"
        );

        // The receiver starts from its old version and the sender's hashes.
        let target = file_with(&old);
        let wire_ob = outboard_from(root, size as u64, ob.data.clone()).unwrap();
        let gaps = missing(&wire_ob, &target, size as u64).unwrap();
        let gap_bytes: u64 = gaps.iter().map(|(a, b)| (b - a) * 1024).sum();
        assert!(gap_bytes <= 48 * 1024, "{gaps:?}");

        let mut stream = Vec::new();
        encode(&sender, &ob, &gaps, &mut stream).unwrap();
        assert!(stream.len() < 64 * 1024, "sent {} bytes", stream.len());
        let n = Arc::new(AtomicU64::new(0));
        decode(&stream[..], &gaps, &target, (root, size as u64), n.clone()).unwrap();
        let mut got = Vec::new();
        (&target).rewind().unwrap();
        (&target).read_to_end(&mut got).unwrap();
        assert!(got == new, "the file is the new content");
        assert_eq!(n.load(Ordering::Relaxed), stream.len() as u64);

        // A flipped byte in the stream is refused.
        let everything = all(size as u64);
        let mut full = Vec::new();
        encode(&sender, &ob, &everything, &mut full).unwrap();
        full[300_000] ^= 1;
        let fresh = file_with(&vec![0; size]);
        assert!(
            decode(
                &full[..],
                &everything,
                &fresh,
                (root, size as u64),
                Arc::default()
            )
            .is_err()
        );
        // And an outboard of the wrong length is not taken, nor ranges out
        // of order or too many.
        assert!(outboard_from(root, size as u64, vec![0; 10]).is_none());
        assert!(to_set(&[(5, 9), (1, 2)]).is_err());
        assert!(to_set(&[(5, 5)]).is_err());
        let many: Ranges = (0..5000).map(|i| (2 * i, 2 * i + 1)).collect();
        assert!(to_set(&many).is_err());
    }
}
