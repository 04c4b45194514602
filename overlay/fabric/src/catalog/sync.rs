//! Folder sync's queries: a folder's index in sequence order, entries
//! stored with another replica's version vector, and how far each peer's
//! index has been read.

use super::Catalog;
use super::entries::{ENTRY_COLUMNS, EntryRow, NewEntry, upsert_entry};
use crate::error::Result;
use sqlx::FromRow;

/// How this node's pulls from one peer of one folder stand.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct SyncStateRow {
    /// The peer's node id.
    pub peer: String,
    /// The last of its sequence numbers applied here.
    pub sequence: i64,
    /// When its index was last read, ms (0: never).
    pub checked_at: i64,
    /// Entries of the last batch read that are not applied yet.
    pub left_files: i64,
    /// Their bytes.
    pub left_bytes: i64,
    /// Why the last pull failed (empty: it did not).
    pub error: String,
    /// Content bytes received from it in all.
    pub received_bytes: i64,
}

/// What a pull notes when the member keeps no replica of the folder.
pub const NO_REPLICA: &str = "no replica there";

impl SyncStateRow {
    /// How the folder stands with this member at `now` (ms):
    /// `not-reached` (never, or not in the last minute), `no-replica`,
    /// `failing`, `syncing` or `in-sync`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.checked_at == 0 || now - self.checked_at > 60_000 {
            "not-reached"
        } else if self.error == NO_REPLICA {
            "no-replica"
        } else if !self.error.is_empty() && self.left_files == 0 {
            "failing"
        } else if self.left_files > 0 {
            "syncing"
        } else {
            "in-sync"
        }
    }
}

impl Catalog {
    /// Entries of a folder changed after sequence `since`, in order, at
    /// most `limit`.
    pub async fn entries_since(
        &self,
        folder_id: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<EntryRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE folder_id = $1 AND sequence > $2 \
             ORDER BY sequence LIMIT $3"
        ));
        Ok(sqlx::query_as(q)
            .bind(folder_id)
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Live files of a folder whose content has hash `hash`.
    pub async fn live_entries_with_hash(
        &self,
        folder_id: &str,
        hash: &crate::ids::ContentHash,
    ) -> Result<Vec<EntryRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE hash = $1 AND folder_id = $2 \
             AND deleted = 0 AND kind = 'file' LIMIT 8"
        ));
        Ok(sqlx::query_as(q)
            .bind(hash.to_string())
            .bind(folder_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Stores `e` as it is (its version vector is another replica's, not
    /// bumped here) with the folder's next sequence number.
    pub async fn put_entry(&self, folder_id: &str, e: &NewEntry<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_entry(&mut tx, folder_id, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where this node is in `peer`'s index of a folder: the index id and
    /// the last sequence applied.
    pub async fn sync_cursor(&self, folder_id: &str, peer: &str) -> Result<Option<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT index_id, sequence FROM sync_cursors WHERE folder_id = $1 AND peer = $2",
        )
        .bind(folder_id)
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Notes how a pull from `peer` went.
    pub async fn set_sync_state(
        &self,
        folder_id: &str,
        peer: &str,
        checked_at: i64,
        left: (i64, i64),
        error: &str,
        received: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_cursors (folder_id, peer, index_id, sequence, checked_at, left_files, left_bytes, error, received_bytes) \
             VALUES ($1, $2, '', 0, $3, $4, $5, $6, $7) \
             ON CONFLICT (folder_id, peer) DO UPDATE SET checked_at = excluded.checked_at, \
             left_files = excluded.left_files, left_bytes = excluded.left_bytes, error = excluded.error, \
             received_bytes = sync_cursors.received_bytes + excluded.received_bytes",
        )
        .bind(folder_id)
        .bind(peer)
        .bind(checked_at)
        .bind(left.0)
        .bind(left.1)
        .bind(error)
        .bind(received)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How the pulls of a folder from each peer stand.
    pub async fn sync_states(&self, folder_id: &str) -> Result<Vec<SyncStateRow>> {
        Ok(sqlx::query_as(
            "SELECT peer, sequence, checked_at, left_files, left_bytes, error, received_bytes FROM sync_cursors \
             WHERE folder_id = $1 ORDER BY peer",
        )
        .bind(folder_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Remembers where this node is in `peer`'s index of a folder.
    pub async fn set_sync_cursor(
        &self,
        folder_id: &str,
        peer: &str,
        index_id: &str,
        sequence: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_cursors (folder_id, peer, index_id, sequence) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (folder_id, peer) DO UPDATE SET index_id = excluded.index_id, \
             sequence = excluded.sequence",
        )
        .bind(folder_id)
        .bind(peer)
        .bind(index_id)
        .bind(sequence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
