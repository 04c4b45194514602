//! The messages of `glow/sync/1`, and how they travel.
//!
//! Each exchange is one QUIC bidirectional stream: the asking side writes
//! one [`SyncRequest`] (postcard) and finishes its half. An index request
//! is answered with one [`SyncResponse`] and the stream's end. A content
//! request is answered with a header (a 4-byte big-endian length, then a
//! [`SyncResponse`]) and then the outboard, or the bao-encoded blocks
//! ([`crate::blocks`]), to the stream's end; every block is checked
//! against the content's BLAKE3 hash as it arrives. Postcard (serde's compact binary
//! form, the one iroh itself uses) is also what `peers` speaks: one codec,
//! and one pair of message helpers (`peers::wire`), for the whole overlay.

use peers::{RecvStream, SendStream};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

/// The largest content header.
const MAX_HEADER: usize = 4096;

/// What a replica asks another replica of the same folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "Your index of `folder` after sequence `since`."
    Index {
        /// The folder, `owner/name`.
        folder: String,
        /// The last of the answering replica's sequence numbers applied.
        since: u64,
    },
    /// "The bao tree's hashes (the outboard) of the content with BLAKE3
    /// hash `hash`, of a file of `folder`."
    Outboard {
        /// The folder, `owner/name`.
        folder: String,
        /// The content's hash.
        hash: [u8; 32],
    },
    /// "These chunk ranges of that content, bao-encoded."
    Blocks {
        /// The folder, `owner/name`.
        folder: String,
        /// The content's hash.
        hash: [u8; 32],
        /// Chunk ranges (1 KiB chunks), `[start, end)`.
        ranges: Vec<(u64, u64)>,
    },
}

/// An answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Entries in the order of the answering replica's sequence numbers.
    Index {
        /// The answering replica's index id: when it changes (the replica
        /// was made again), the asking side starts from 0.
        index_id: String,
        /// At most one batch of entries (those the answering replica
        /// ignores left out).
        entries: Vec<WireEntry>,
        /// The last sequence looked at: the asking side's cursor moves
        /// there once every entry is applied.
        until: u64,
        /// More entries follow: ask again from `until`.
        more: bool,
    },
    /// The outboard follows (its length is the tree's outboard size).
    Outboard {
        /// The content's length.
        size: u64,
    },
    /// The bao-encoded ranges follow, to the stream's end.
    Blocks {
        /// The content's length.
        size: u64,
    },
    /// This node has no replica of the folder, or no such content.
    NotFound,
    /// Understood and refused (the reason is for logs).
    Refused(String),
}

/// One entry of an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// Path inside the folder (`/`-separated, no `.` or `..`).
    pub path: String,
    /// A directory (otherwise a file).
    pub dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// BLAKE3 of the content (files).
    pub hash: Option<[u8; 32]>,
    /// The version vector, `(node id, counter)` pairs.
    pub version: Vec<(String, u64)>,
    /// The node that made this content.
    pub modified_by: String,
    /// A deletion.
    pub deleted: bool,
    /// The sending replica's sequence number for it.
    pub sequence: u64,
}

pub use peers::wire::{WireError, read_message, send_message};

fn conn_err(e: impl std::fmt::Display) -> WireError {
    WireError::Connection(e.to_string())
}

/// Writes a length-prefixed header (the stream stays open for content).
pub async fn send_header(send: &mut SendStream, header: &SyncResponse) -> Result<(), WireError> {
    let bytes = postcard::to_allocvec(header).map_err(|e| WireError::Malformed(e.to_string()))?;
    send.write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .map_err(conn_err)?;
    send.write_all(&bytes).await.map_err(conn_err)
}

/// Reads a length-prefixed header.
pub async fn read_header(recv: &mut RecvStream) -> Result<SyncResponse, WireError> {
    let len = recv.read_u32().await.map_err(conn_err)? as usize;
    if len > MAX_HEADER {
        return Err(WireError::Malformed(format!("a header of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf).await.map_err(conn_err)?;
    postcard::from_bytes(&buf).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_message() {
        for garbage in [&b""[..], b"\xff\xff\xff", b"\x07"] {
            assert!(postcard::from_bytes::<SyncRequest>(garbage).is_err());
            assert!(postcard::from_bytes::<SyncResponse>(garbage).is_err());
        }
        let r = SyncRequest::Index {
            folder: "alice/photos".into(),
            since: 7,
        };
        let back: SyncRequest = postcard::from_bytes(&postcard::to_allocvec(&r).unwrap()).unwrap();
        assert!(matches!(back, SyncRequest::Index { since: 7, .. }));
    }
}
