//! The answering side of `glow/sync/1`: a member asks for this node's
//! index of a folder, or for content it lacks.

use crate::blocks;
use crate::wire::{self, SyncRequest, SyncResponse, WireEntry};
use fabric::{ContentHash, EntryKind, Fabric};
use peers::{Connection, Peers, RecvStream, SendStream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest a request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one member's sync connection until it closes.
pub(crate) async fn serve(
    fabric: Fabric,
    peers: Peers,
    cache: Outboards,
    conn: Connection,
    member: String,
) {
    loop {
        let Ok((send, recv)) = conn.accept_bi().await else {
            return;
        };
        let (fabric, peers, member, cache) =
            (fabric.clone(), peers.clone(), member.clone(), cache.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(&fabric, &peers, &cache, &member, send, recv).await {
                tracing::debug!(node = %short(&member), "sync request: {e}");
            }
        });
    }
}

async fn answer(
    fabric: &Fabric,
    peers: &Peers,
    cache: &Outboards,
    member: &str,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), wire::WireError> {
    let request: SyncRequest = tokio::time::timeout(REQUEST_TIMEOUT, wire::read_message(&mut recv))
        .await
        .map_err(|_| wire::WireError::Connection("no request in time".into()))??;
    // Checked on every request: a removed member is cut off.
    if !peers.is_member(member).await {
        tracing::warn!(node = %short(member), "sync request refused: not a member");
        let no = SyncResponse::Refused("not a member".into());
        return match request {
            SyncRequest::Index { .. } => wire::send_message(&mut send, &no).await,
            _ => {
                wire::send_header(&mut send, &no).await?;
                send.finish().map_err(conn)
            }
        };
    }
    match request {
        SyncRequest::Index { folder, since } => {
            let since = i64::try_from(since).unwrap_or(i64::MAX);
            let response = match fabric.index_since(&folder, since).await {
                Ok(batch) => SyncResponse::Index {
                    index_id: batch.index_id,
                    entries: batch.entries.iter().map(to_wire).collect(),
                    until: u64::try_from(batch.until).unwrap_or(0),
                    more: batch.more,
                },
                Err(fabric::FabricError::NotFound) => SyncResponse::NotFound,
                Err(e) => SyncResponse::Refused(e.to_string()),
            };
            wire::send_message(&mut send, &response).await
        }
        SyncRequest::Outboard { folder, hash } => {
            let Some((file, size, outboard)) =
                content_or_answer(fabric, cache, &folder, hash, &mut send).await?
            else {
                return Ok(());
            };
            drop(file);
            wire::send_header(&mut send, &SyncResponse::Outboard { size }).await?;
            send.write_all(&outboard.data).await.map_err(conn)?;
            send.finish().map_err(conn)
        }
        SyncRequest::Blocks {
            folder,
            hash,
            ranges,
        } => {
            let Some((file, size, outboard)) =
                content_or_answer(fabric, cache, &folder, hash, &mut send).await?
            else {
                return Ok(());
            };
            if let Err(e) = blocks::to_set(&ranges) {
                wire::send_header(&mut send, &SyncResponse::Refused(e.to_string())).await?;
                return send.finish().map_err(conn);
            }
            wire::send_header(&mut send, &SyncResponse::Blocks { size }).await?;
            let out = tokio_util::io::SyncIoBridge::new(send);
            let sent = tokio::task::spawn_blocking(move || {
                let mut out = out;
                blocks::encode(&file, &outboard, &ranges, &mut out)?;
                std::io::Write::flush(&mut out)?;
                Ok::<_, std::io::Error>(out.into_inner())
            })
            .await
            .map_err(conn)?
            .map_err(conn)?;
            let mut send = sent;
            send.finish().map_err(conn)
        }
    }
}

fn conn(e: impl std::fmt::Display) -> wire::WireError {
    wire::WireError::Connection(e.to_string())
}

/// [`content`], or the answer that says why there is none (sent here).
async fn content_or_answer(
    fabric: &Fabric,
    cache: &Outboards,
    folder: &str,
    hash: [u8; 32],
    send: &mut SendStream,
) -> Result<Option<(std::fs::File, u64, Arc<blocks::Outboard>)>, wire::WireError> {
    let answer = match content(fabric, cache, folder, hash).await {
        Ok(Some(found)) => return Ok(Some(found)),
        Ok(None) => SyncResponse::NotFound,
        Err(e) => SyncResponse::Refused(e.to_string()),
    };
    wire::send_header(send, &answer).await?;
    send.finish().map_err(conn)?;
    Ok(None)
}

/// Outboards made lately, by content hash (a receiver asks for the
/// outboard, then for blocks: the file is hashed once).
#[derive(Clone, Default)]
pub(crate) struct Outboards(Arc<Mutex<VecDeque<Recent>>>);

/// An outboard and the hash of its content.
type Recent = ([u8; 32], Arc<blocks::Outboard>);

/// Outboards kept at most.
const OUTBOARDS_KEPT: usize = 4;

/// The content with hash `hash` of `folder` here, with its outboard
/// (checked: its root is the hash, so the file did not change since the
/// catalog looked).
async fn content(
    fabric: &Fabric,
    cache: &Outboards,
    folder: &str,
    hash: [u8; 32],
) -> Result<Option<(std::fs::File, u64, Arc<blocks::Outboard>)>, wire::WireError> {
    let found = match fabric
        .local_content(folder, &ContentHash::from_bytes(hash))
        .await
    {
        Ok(Some(found)) => found,
        Ok(None) | Err(fabric::FabricError::NotFound) => return Ok(None),
        Err(e) => return Err(wire::WireError::Connection(e.to_string())),
    };
    let (file, size) = found;
    let cached = {
        let c = cache.0.lock().unwrap_or_else(|e| e.into_inner());
        c.iter()
            .find(|(h, o)| *h == hash && o.tree.size() == size)
            .map(|(_, o)| o.clone())
    };
    let outboard = match cached {
        Some(o) => o,
        None => {
            let f = file.try_clone().map_err(conn)?;
            let o = tokio::task::spawn_blocking(move || blocks::outboard_of(&f, size))
                .await
                .map_err(conn)?
                .map_err(conn)?;
            if o.root.as_bytes() != &hash {
                // The file changed since the catalog recorded it.
                return Ok(None);
            }
            let o = Arc::new(o);
            let mut c = cache.0.lock().unwrap_or_else(|e| e.into_inner());
            c.push_front((hash, o.clone()));
            c.truncate(OUTBOARDS_KEPT);
            o
        }
    };
    Ok(Some((file, size, outboard)))
}

/// An index entry as it travels.
pub(crate) fn to_wire(e: &fabric::catalog::EntryRow) -> WireEntry {
    WireEntry {
        path: e.path.clone(),
        dir: e.kind() == EntryKind::Dir,
        size: u64::try_from(e.size).unwrap_or(0),
        mtime_ns: e.mtime_ns,
        hash: e.hash.map(|h| *h.as_bytes()),
        version: e
            .version_vector
            .iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect(),
        modified_by: e.modified_by.clone(),
        deleted: e.deleted,
        sequence: u64::try_from(e.sequence).unwrap_or(0),
    }
}

/// The first 10 digits of a node id, for logs.
pub(crate) fn short(id: &str) -> &str {
    let end = id.char_indices().nth(10).map_or(id.len(), |(i, _)| i);
    &id[..end]
}
