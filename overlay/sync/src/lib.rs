//! Glow's folder sync: the replicas of a folder on several members keep
//! the same files.
//!
//! Each replica has an index: its entries (path, size, time, BLAKE3 hash,
//! version vector, the node that made the content, deleted or not)
//! numbered by a per-replica sequence, which the fabric keeps as it
//! records every change. Every [`pull::PULL_EVERY`], each node reads each
//! linked member's index of each folder both have a replica of, after the
//! last sequence it applied (a cursor per folder and member, kept in the
//! catalog), and hands every entry to the fabric's one door for remote
//! changes, [`fabric::Fabric::apply_remote`], which decides (newer,
//! older, concurrent), keeps what it replaces as a version or in the trash,
//! and writes whole files only. Content this node already holds (another
//! file, a kept version: a rename moves no data) is copied here; the rest
//! is fetched from the member and checked against its hash before it
//! replaces anything.
//!
//! The protocol is `glow/sync/1` ([`SYNC_ALPN`]) on the overlay's
//! endpoint, members only (checked by `peers` on connection and by
//! [`serve`] on every request); its messages are in [`wire`].
//!
//! Content travels in blocks checked against the content's hash as they
//! arrive ([`blocks`]); a receiver that holds an older version of the file
//! or part of it (a cut transfer) asks only for the blocks it lacks.
//!
//! Not yet: blocks of one file from several members at once.

pub mod blocks;
pub mod pull;
pub mod serve;
pub mod wire;

use fabric::Fabric;
use peers::{BoxFuture, Connection, Peers};
use std::sync::Arc;

/// Folder sync's protocol on the overlay (ALPN).
pub const SYNC_ALPN: &[u8] = b"glow/sync/1";

/// Serves this node's replicas to members and pulls theirs, from now on.
pub fn start(fabric: Fabric, peers: Peers) -> tokio::task::JoinHandle<()> {
    peers.serve_protocol(
        SYNC_ALPN,
        Arc::new(Server {
            fabric: fabric.clone(),
            peers: peers.clone(),
            outboards: serve::Outboards::default(),
        }),
    );
    tokio::spawn(pull::run(fabric, peers))
}

/// The answering side, as `peers` hands it members' connections.
struct Server {
    fabric: Fabric,
    peers: Peers,
    outboards: serve::Outboards,
}

impl peers::Protocol for Server {
    fn serve(&self, conn: Connection, member: String) -> BoxFuture<'static, ()> {
        Box::pin(serve::serve(
            self.fabric.clone(),
            self.peers.clone(),
            self.outboards.clone(),
            conn,
            member,
        ))
    }
}
