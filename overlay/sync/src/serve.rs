//! The answering side of `glow/sync/1`: a member asks for this node's
//! index of a folder, or for content it lacks.

use crate::wire::{self, SyncRequest, SyncResponse, WireEntry};
use fabric::{ContentHash, EntryKind, Fabric};
use peers::{Connection, Peers, RecvStream, SendStream};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The longest a request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from disk per write to the stream.
const CHUNK: usize = 256 * 1024;

/// Serves one member's sync connection until it closes.
pub(crate) async fn serve(fabric: Fabric, peers: Peers, conn: Connection, member: String) {
    loop {
        let Ok((send, recv)) = conn.accept_bi().await else {
            return;
        };
        let (fabric, peers, member) = (fabric.clone(), peers.clone(), member.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(&fabric, &peers, &member, send, recv).await {
                tracing::debug!(node = %short(&member), "sync request: {e}");
            }
        });
    }
}

async fn answer(
    fabric: &Fabric,
    peers: &Peers,
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
        return wire::send_message(&mut send, &SyncResponse::Refused("not a member".into())).await;
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
        SyncRequest::Content { folder, hash } => {
            let hash = ContentHash::from_bytes(hash);
            match fabric.local_content(&folder, &hash).await {
                Ok(Some((file, size))) => {
                    wire::send_header(&mut send, &SyncResponse::Content { size }).await?;
                    let mut file = tokio::fs::File::from_std(file);
                    let mut buf = vec![0u8; CHUNK];
                    let mut left = size;
                    while left > 0 {
                        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        let n = file
                            .read(&mut buf[..want])
                            .await
                            .map_err(|e| wire::WireError::Connection(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        send.write_all(&buf[..n])
                            .await
                            .map_err(|e| wire::WireError::Connection(e.to_string()))?;
                        left -= n as u64;
                    }
                    send.finish()
                        .map_err(|e| wire::WireError::Connection(e.to_string()))?;
                    Ok(())
                }
                Ok(None) | Err(fabric::FabricError::NotFound) => {
                    wire::send_header(&mut send, &SyncResponse::NotFound).await?;
                    send.finish()
                        .map_err(|e| wire::WireError::Connection(e.to_string()))
                }
                Err(e) => {
                    wire::send_header(&mut send, &SyncResponse::Refused(e.to_string())).await?;
                    send.finish()
                        .map_err(|e| wire::WireError::Connection(e.to_string()))
                }
            }
        }
    }
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
