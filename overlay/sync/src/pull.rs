//! The asking side of `glow/sync/1`: every [`PULL_EVERY`], for every
//! member linked now and every folder this node holds a replica of, read
//! that member's index after the last sequence applied and take what is
//! new: content this node already has (a renamed file, a kept version) is
//! copied here; the rest is fetched from that member.

use crate::SYNC_ALPN;
use crate::blocks;
use crate::serve::short;
use crate::wire::{self, SyncRequest, SyncResponse, WireEntry, WireError};
use fabric::sync::{Applied, Base, Need, RemoteEntry};
use fabric::{ContentHash, EntryKind, Fabric, VersionVector};
use peers::{Connection, Peers};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often each member's index of each folder is read.
pub const PULL_EVERY: Duration = Duration::from_secs(2);
/// The longest path an entry may name.
const MAX_PATH: usize = 4096;
/// The most nodes a version vector may name.
const MAX_VECTOR: usize = 256;
/// The highest change counter taken (2^48: a node changing an entry a
/// million times a second for nine years; a forged `u64::MAX` would wrap).
const MAX_COUNTER: u64 = 1 << 48;

/// The connections to members, shared by their pulls (content a member
/// no longer has is asked of the others).
type Conns = Arc<std::sync::Mutex<HashMap<String, Connection>>>;

/// Pulls from every linked member, each on its own (a member that went
/// away without a word stalls only its own pulls), for as long as the
/// node runs.
pub(crate) async fn run(fabric: Fabric, peers: Peers) {
    let conns: Conns = Arc::default();
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let members: Vec<String> = peers.links().into_iter().map(|l| l.id).collect();
        tasks.retain(|id, t| {
            let keep = members.contains(id) && !t.is_finished();
            if !keep {
                t.abort();
                lock(&conns).remove(id);
            }
            keep
        });
        for m in members {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(m.clone()) {
                slot.insert(tokio::spawn(pull_member(
                    fabric.clone(),
                    peers.clone(),
                    conns.clone(),
                    m,
                )));
            }
        }
        tokio::time::sleep(PULL_EVERY).await;
    }
}

fn lock(conns: &Conns) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
    conns.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pulls every folder from one member every [`PULL_EVERY`]; returns when
/// its connection cannot be made or breaks (the next round starts again).
async fn pull_member(fabric: Fabric, peers: Peers, conns: Conns, member: String) {
    let conn = match peers.connect(&member, SYNC_ALPN).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(node = %short(&member), "sync: cannot connect: {e}");
            for r in fabric.replicas() {
                let why = format!("cannot connect: {e}");
                let _ = fabric.note_sync(&r.key, &member, (0, 0), &why, 0).await;
            }
            return;
        }
    };
    lock(&conns).insert(member.clone(), conn.clone());
    // A folder whose changes keep failing is asked less often: after n
    // failing rounds in a row, it waits 2^n rounds (at most 64).
    let mut backoff: HashMap<String, (u32, u32)> = HashMap::new();
    while conn.close_reason().is_none() {
        let others: Vec<Connection> = lock(&conns)
            .iter()
            .filter(|(id, c)| **id != member && c.close_reason().is_none())
            .map(|(_, c)| c.clone())
            .collect();
        for r in fabric.replicas() {
            let (_, wait) = backoff.entry(r.key.clone()).or_default();
            if *wait > 0 {
                *wait -= 1;
                continue;
            }
            let counted = Arc::new(AtomicU64::new(0));
            let pulled = RECEIVED
                .scope(
                    counted.clone(),
                    pull_folder(&fabric, &conn, &others, &member, &r.key),
                )
                .await;
            let got = counted.load(Ordering::Relaxed);
            let failing = !matches!(pulled, Ok((0, _)) | Err(PullError::NoReplica));
            let (fails, wait) = backoff.entry(r.key.clone()).or_default();
            if failing {
                *fails = (*fails + 1).min(6);
                *wait = (1 << *fails) - 1;
            } else {
                (*fails, *wait) = (0, 0);
            }
            let noted = match pulled {
                Ok((files, bytes)) => {
                    let why = if files > 0 {
                        "some changes could not be applied yet"
                    } else {
                        ""
                    };
                    fabric
                        .note_sync(&r.key, &member, (files, bytes), why, got)
                        .await
                }
                Err(e) => {
                    if !matches!(e, PullError::NoReplica) {
                        tracing::info!(node = %short(&member), folder = %r.key, "sync: {e}");
                    }
                    fabric
                        .note_sync(&r.key, &member, (0, 0), &e.to_string(), got)
                        .await
                }
            };
            if let Err(e) = noted {
                tracing::debug!(folder = %r.key, "sync state not noted: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PULL_EVERY) => {}
            _ = conn.closed() => {}
        }
    }
    lock(&conns).remove(&member);
}

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Fabric(#[from] fabric::FabricError),
    #[error("refused: {0}")]
    Refused(String),
    /// The member has no replica of the folder (nothing to pull).
    #[error("{NO_REPLICA}")]
    NoReplica,
}

use fabric::catalog::NO_REPLICA;

/// Reads `member`'s index of folder `key` after the cursor, batch after
/// batch, and applies it. Returns what could not be applied (entries,
/// bytes).
async fn pull_folder(
    fabric: &Fabric,
    conn: &Connection,
    others: &[Connection],
    member: &str,
    key: &str,
) -> Result<(i64, i64), PullError> {
    let cursor = fabric.sync_cursor(key, member).await?;
    let mut since = cursor.as_ref().map_or(0, |c| c.1);
    // Once an entry fails, the cursor stays before it (it is tried again
    // next round) but reading goes on: what follows is not held up.
    let mut held = false;
    let mut left_all = (0i64, 0i64);
    loop {
        let asked = ask(
            conn,
            &SyncRequest::Index {
                folder: key.to_owned(),
                since: u64::try_from(since).unwrap_or(0),
            },
        )
        .await?;
        let (index_id, entries, until, more) = match asked {
            SyncResponse::Index {
                index_id,
                entries,
                until,
                more,
            } => (
                index_id,
                entries,
                i64::try_from(until).unwrap_or(i64::MAX),
                more,
            ),
            SyncResponse::NotFound => return Err(PullError::NoReplica),
            SyncResponse::Refused(why) => return Err(PullError::Refused(why)),
            other => {
                return Err(WireError::Malformed(format!("{other:?} to an index request")).into());
            }
        };
        if let Some((known, seq)) = &cursor
            && *known != index_id
            && *seq > 0
            && since == *seq
        {
            // The member made its replica again: read it from the start.
            fabric.set_sync_cursor(key, member, &index_id, 0).await?;
            since = 0;
            continue;
        }
        if !entries.is_empty() {
            // What this batch may bring, for `glow folder status` while it
            // is applied.
            let files = entries.iter().filter(|e| !e.deleted && !e.dir);
            let bytes = files.clone().fold(0i64, |t, e| {
                t.saturating_add(i64::try_from(e.size).unwrap_or(i64::MAX))
            });
            fabric
                .note_sync(key, member, (files.count() as i64, bytes), "", 0)
                .await?;
        }
        let (last, left) = apply_batch(fabric, conn, others, member, key, entries, since).await;
        left_all = (
            left_all.0.saturating_add(left.0),
            left_all.1.saturating_add(left.1),
        );
        if !held {
            // Past what the member left out too, unless something failed.
            let to = if left.0 == 0 { last.max(until) } else { last };
            fabric
                .set_sync_cursor(key, member, &index_id, to.max(since))
                .await?;
            held = left.0 > 0;
        }
        if !more || until <= since {
            return Ok(left_all);
        }
        since = until;
    }
}

/// Applies one batch; returns the sequence up to which every entry was
/// handled (the next pull starts after it, so a failed entry is tried
/// again), and the entries and bytes that failed.
async fn apply_batch(
    fabric: &Fabric,
    conn: &Connection,
    others: &[Connection],
    member: &str,
    key: &str,
    entries: Vec<WireEntry>,
    since: i64,
) -> (i64, (i64, i64)) {
    let mut last = since;
    let mut failed: Option<i64> = None;
    let mut left = (0i64, 0i64);
    // Live entries first (parents come before children in the index), then
    // deleted files, then deleted directories, deepest first: a directory
    // goes once what was in it is gone.
    let mut order: Vec<&WireEntry> = entries.iter().filter(|e| !e.deleted).collect();
    order.extend(entries.iter().filter(|e| e.deleted && !e.dir));
    let mut dirs: Vec<&WireEntry> = entries.iter().filter(|e| e.deleted && e.dir).collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    order.extend(dirs);
    for w in order {
        let seq = i64::try_from(w.sequence).unwrap_or(i64::MAX);
        last = last.max(seq);
        let e = match from_wire(w) {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(node = %short(member), folder = %key, "sync: entry refused: {why}");
                continue;
            }
        };
        if let Err(err) = apply_one(fabric, conn, others, key, &e).await {
            tracing::info!(node = %short(member), folder = %key, path = %e.path, "sync: not applied: {err}");
            failed = Some(failed.map_or(seq, |f| f.min(seq)));
            left = (left.0 + 1, left.1.saturating_add(e.size));
        }
    }
    let last = match failed {
        Some(f) => (f - 1).max(since),
        None => last,
    };
    (last, left)
}

/// Applies one remote entry, with its content from here, from the member,
/// or (if it no longer has it, or sends content that does not match its
/// hash) from another member.
async fn apply_one(
    fabric: &Fabric,
    conn: &Connection,
    others: &[Connection],
    key: &str,
    e: &RemoteEntry,
) -> Result<(), PullError> {
    let applied = match fabric.remote_need(key, e).await? {
        Need::Nothing => return Ok(()),
        Need::Apply => fabric.apply_remote(key, e, None).await?,
        Need::Content => {
            let hash = e.hash.expect("a file that needs content has a hash");
            let mut done = None;
            if let Some((file, _)) = fabric.local_content(key, &hash).await? {
                // Already here (a rename, a copy, a kept version): no
                // transfer. If the disk changed since, fetch it instead.
                let body = Box::new(tokio::fs::File::from_std(file));
                match fabric.apply_remote(key, e, Some(body)).await {
                    Ok(a) => done = Some(a),
                    Err(err) => tracing::debug!(path = %e.path, "sync: local copy unusable: {err}"),
                }
            }
            match done {
                Some(a) => a,
                None => {
                    let mut result = fetch_and_apply(fabric, conn, key, e, &hash).await;
                    for other in others {
                        let Err(err) = &result else { break };
                        tracing::info!(path = %e.path, "sync: {err}; asking another member");
                        result = fetch_and_apply(fabric, other, key, e, &hash).await;
                    }
                    result?
                }
            }
        }
    };
    match &applied {
        Applied::Conflict(copy) => tracing::info!(
            folder = %key, path = %e.path, copy = %copy,
            "sync: changed on two nodes at once; both kept"
        ),
        Applied::Changed => tracing::debug!(folder = %key, path = %e.path, "sync: applied"),
        Applied::Recorded | Applied::Skipped => {}
    }
    Ok(())
}

/// Fetches content from the member, in verified blocks, and applies the
/// entry with it. When this node holds an older version of the file, or
/// part of it from a cut transfer, only the blocks it lacks are asked for.
async fn fetch_and_apply(
    fabric: &Fabric,
    conn: &Connection,
    key: &str,
    e: &RemoteEntry,
    hash: &ContentHash,
) -> Result<Applied, PullError> {
    let inc = fabric.begin_remote(key, e).await?;
    let size = u64::try_from(e.size).unwrap_or(0);
    let root = *hash.as_bytes();
    let mut ranges = blocks::all(size);
    // The tree's hashes are worth asking for when some blocks may be here
    // already, and kept in memory up to 64 MiB (files up to 16 GiB; a
    // bigger one comes whole).
    if inc.base != Base::Empty
        && size > blocks::BLOCK.bytes() as u64
        && blocks::tree(size).outboard_size() <= MAX_OUTBOARD
        && let Some(known) = fetch_outboard(conn, key, root, size).await?
    {
        let file = inc.file();
        let gaps = tokio::task::spawn_blocking(move || blocks::missing(&known, &file, size))
            .await
            .map_err(|err| WireError::Connection(err.to_string()))?;
        ranges = gaps.map_err(|err| PullError::Refused(err.to_string()))?;
    }
    if !ranges.is_empty() {
        let mut recv = request(
            conn,
            &SyncRequest::Blocks {
                folder: key.to_owned(),
                hash: root,
                ranges: ranges.clone(),
            },
        )
        .await?;
        let header = tokio::time::timeout(Duration::from_secs(120), wire::read_header(&mut recv))
            .await
            .map_err(|_| WireError::Connection("no answer within 120 s".into()))??;
        match header {
            SyncResponse::Blocks { size: s } if s == size => {}
            SyncResponse::Blocks { size: s } => {
                return Err(
                    WireError::Malformed(format!("{s} bytes where {size} were announced")).into(),
                );
            }
            SyncResponse::NotFound => {
                return Err(PullError::Refused(format!(
                    "{}: its content is no longer there",
                    e.path
                )));
            }
            SyncResponse::Refused(why) => return Err(PullError::Refused(why)),
            other => {
                return Err(WireError::Malformed(format!("{other:?} to a blocks request")).into());
            }
        }
        let input = tokio_util::io::SyncIoBridge::new(recv);
        let (file, received) = (inc.file(), Arc::new(AtomicU64::new(0)));
        let counter = received.clone();
        let decoding = tokio::task::spawn_blocking(move || {
            blocks::decode(input, &ranges, &file, (root, size), counter)
        });
        // A member that stops sending does not hold this pull for ever: a
        // minute, plus a second per 256 KiB.
        let limit = Duration::from_secs(60 + size / (256 * 1024));
        let decoded = tokio::time::timeout(limit, decoding)
            .await
            .map_err(|_| WireError::Connection(format!("{}: no content within {limit:?}", e.path)))?
            .map_err(|err| WireError::Connection(err.to_string()))?;
        count(received.load(Ordering::Relaxed));
        if let Err(err) = decoded {
            return Err(PullError::Refused(format!("{}: {err}", e.path)));
        }
    }
    Ok(fabric.finish_remote(key, e, inc).await?)
}

/// The largest outboard asked for (64 MiB: files up to 16 GiB).
const MAX_OUTBOARD: u64 = 64 << 20;

tokio::task_local! {
    /// Content bytes received (blocks and the hashes that prove them) in
    /// the pull under way, for `glow folder status`.
    static RECEIVED: Arc<AtomicU64>;
}

/// Counts `n` bytes received in the pull under way.
fn count(n: u64) {
    let _ = RECEIVED.try_with(|c| c.fetch_add(n, Ordering::Relaxed));
}

/// Asks for the outboard of content `root`; `None` if the member has not
/// got it or sends one of the wrong length.
async fn fetch_outboard(
    conn: &Connection,
    key: &str,
    root: [u8; 32],
    size: u64,
) -> Result<Option<blocks::Outboard>, PullError> {
    tokio::time::timeout(
        Duration::from_secs(120),
        fetch_outboard_now(conn, key, root, size),
    )
    .await
    .map_err(|_| WireError::Connection("no outboard within 120 s".into()))?
}

async fn fetch_outboard_now(
    conn: &Connection,
    key: &str,
    root: [u8; 32],
    size: u64,
) -> Result<Option<blocks::Outboard>, PullError> {
    let mut recv = request(
        conn,
        &SyncRequest::Outboard {
            folder: key.to_owned(),
            hash: root,
        },
    )
    .await?;
    match wire::read_header(&mut recv).await? {
        SyncResponse::Outboard { size: s } if s == size => {}
        _ => return Ok(None),
    }
    let want = blocks::tree(size).outboard_size();
    let data = recv
        .read_to_end(
            usize::try_from(want)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .await
        .map_err(|err| WireError::Connection(err.to_string()))?;
    count(data.len() as u64);
    Ok(blocks::outboard_from(root, size, data))
}

/// Sends one request on a new stream; the answer comes on the stream
/// returned.
async fn request(conn: &Connection, q: &SyncRequest) -> Result<peers::RecvStream, WireError> {
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| WireError::Connection(e.to_string()))?;
    wire::send_message(&mut send, q).await?;
    Ok(recv)
}

/// Asks one question on a new stream and reads the whole answer.
async fn ask(conn: &Connection, q: &SyncRequest) -> Result<SyncResponse, WireError> {
    let exchange = async {
        let mut recv = request(conn, q).await?;
        wire::read_message(&mut recv).await
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| WireError::Connection("no answer within 60 s".into()))?
}

/// A wire entry checked: a path of reasonable length, a vector of
/// reasonable size, a hash on every live file.
fn from_wire(w: &WireEntry) -> Result<RemoteEntry, String> {
    if w.path.len() > MAX_PATH {
        return Err(format!("a path of {} bytes", w.path.len()));
    }
    if w.version.is_empty() || w.version.len() > MAX_VECTOR {
        return Err(format!("a version vector of {} nodes", w.version.len()));
    }
    if w.version.iter().any(|(_, c)| *c > MAX_COUNTER) {
        return Err("a version counter beyond any real count".to_owned());
    }
    if !w.dir && !w.deleted && w.hash.is_none() {
        return Err(format!("{}: a file without a hash", w.path));
    }
    // Only the canonical form: relative, no empty, `.` or `..` part, not
    // the folder itself.
    match fabric::RelPath::parse(&w.path) {
        Ok(p) if !p.is_root() && p.as_str() == w.path => {}
        _ => return Err(format!("{:?} is not a path inside a folder", w.path)),
    }
    Ok(RemoteEntry {
        path: w.path.clone(),
        kind: if w.dir {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: i64::try_from(w.size).map_err(|_| "a size beyond 2^63".to_owned())?,
        mtime_ns: w.mtime_ns,
        hash: w.hash.map(ContentHash::from_bytes),
        version: w.version.iter().cloned().collect::<VersionVector>(),
        modified_by: w.modified_by.chars().take(64).collect(),
        deleted: w.deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> WireEntry {
        WireEntry {
            path: path.into(),
            dir: false,
            size: 1,
            mtime_ns: 0,
            hash: Some([1; 32]),
            version: vec![("a".into(), 1)],
            modified_by: "a".into(),
            deleted: false,
            sequence: 1,
        }
    }

    #[test]
    fn entries_that_name_outside_the_folder_or_lack_a_hash_are_refused() {
        assert!(from_wire(&entry("docs/a.txt")).is_ok());
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", ""] {
            assert!(from_wire(&entry(bad)).is_err(), "{bad:?}");
        }
        let mut e = entry("a");
        e.hash = None;
        assert!(from_wire(&e).is_err());
        let mut e = entry("a");
        e.version = Vec::new();
        assert!(from_wire(&e).is_err());
        let mut e = entry("a");
        e.version = (0..300).map(|i| (format!("n{i}"), 1)).collect();
        assert!(from_wire(&e).is_err());
        let mut e = entry("a");
        e.version = vec![("a".into(), u64::MAX)];
        assert!(from_wire(&e).is_err());
    }
}
