//! Entries: the catalog's index of what each folder holds, with the content
//! hash, version vector and sequence number that sync will exchange.

use super::Catalog;
use crate::error::Result as FabricResult;
use crate::ids::{ContentHash, NodeId, VersionVector};
use crate::resource::EntryKind;
use sqlx::{FromRow, Row};

/// One entry as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRow {
    /// Path inside the folder.
    pub path: String,
    /// `file` or `dir`.
    pub kind: String,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// BLAKE3 of the content (files).
    pub hash: Option<ContentHash>,
    /// Which node changed it how often.
    pub version_vector: VersionVector,
    /// Folder sequence number of the last change.
    pub sequence: i64,
    /// Tombstone.
    pub deleted: bool,
    /// The node that made the current content (empty: recorded before
    /// folder sync).
    pub modified_by: String,
}

impl<'r> FromRow<'r, sqlx::any::AnyRow> for EntryRow {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(EntryRow {
            path: row.try_get("path")?,
            kind: row.try_get("kind")?,
            size: row.try_get("size")?,
            mtime_ns: row.try_get("mtime_ns")?,
            hash: row
                .try_get::<Option<String>, _>("hash")?
                .map(|h| h.parse::<ContentHash>())
                .transpose()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            version_vector: VersionVector::parse(&row.try_get::<String, _>("version_vector")?),
            sequence: row.try_get("sequence")?,
            // Flags are 0/1 integers: the Any driver has no SQLite booleans.
            deleted: row.try_get::<i64, _>("deleted")? != 0,
            modified_by: row.try_get("modified_by")?,
        })
    }
}

impl EntryRow {
    /// File or directory.
    pub fn kind(&self) -> EntryKind {
        EntryKind::parse(&self.kind)
    }
}

/// An entry to store, with its version vector as given.
pub struct NewEntry<'a> {
    /// Path inside the folder.
    pub path: &'a str,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// BLAKE3 of the content (files).
    pub hash: Option<&'a ContentHash>,
    /// Its version vector.
    pub version: &'a VersionVector,
    /// The node that made this content.
    pub modified_by: &'a str,
    /// Tombstone.
    pub deleted: bool,
}

/// Writes `e` as the entry of its path, with the folder's next sequence
/// number.
pub(crate) async fn upsert_entry(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    folder_id: &str,
    e: &NewEntry<'_>,
) -> FabricResult<()> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE folders SET sequence = sequence + 1 WHERE id = $1 RETURNING sequence",
    )
    .bind(folder_id)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO entries (folder_id, path, kind, size, mtime_ns, hash, version_vector, sequence, deleted, modified_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (folder_id, path) DO UPDATE SET kind = excluded.kind, size = excluded.size, \
         mtime_ns = excluded.mtime_ns, hash = excluded.hash, version_vector = excluded.version_vector, \
         sequence = excluded.sequence, deleted = excluded.deleted, modified_by = excluded.modified_by",
    )
    .bind(folder_id)
    .bind(e.path)
    .bind(e.kind.as_str())
    .bind(e.size)
    .bind(e.mtime_ns)
    .bind(e.hash.map(|h| h.to_string()))
    .bind(e.version.to_string())
    .bind(seq)
    .bind(e.deleted as i64)
    .bind(e.modified_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) const ENTRY_COLUMNS: &str =
    "path, kind, size, mtime_ns, hash, version_vector, sequence, deleted, modified_by";

impl Catalog {
    /// One entry, tombstones included.
    pub async fn entry(&self, folder_id: &str, path: &str) -> FabricResult<Option<EntryRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE folder_id = $1 AND path = $2"
        ));
        Ok(sqlx::query_as(q)
            .bind(folder_id)
            .bind(path)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every entry of a folder, tombstones included.
    pub async fn entries(&self, folder_id: &str) -> FabricResult<Vec<EntryRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE folder_id = $1"
        ));
        Ok(sqlx::query_as(q)
            .bind(folder_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Live entries at or below `prefix` (everything for the root).
    pub async fn entries_under(
        &self,
        folder_id: &str,
        prefix: &str,
    ) -> FabricResult<Vec<EntryRow>> {
        if prefix.is_empty() {
            let all = self.entries(folder_id).await?;
            return Ok(all.into_iter().filter(|e| !e.deleted).collect());
        }
        // substr/length count characters on both engines; no LIKE, so names with
        // % or _ need no escaping.
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE folder_id = $1 AND deleted = 0 \
             AND (path = $2 OR substr(path, 1, CAST($3 AS INTEGER)) = $4)"
        ));
        let with_slash = format!("{prefix}/");
        Ok(sqlx::query_as(q)
            .bind(folder_id)
            .bind(prefix)
            .bind(with_slash.chars().count() as i64)
            .bind(&with_slash)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records that `path` now has this content (or is a tombstone when
    /// `deleted`), bumping the folder's sequence and this node's counter in the
    /// entry's version vector.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_entry(
        &self,
        folder_id: &str,
        node: &NodeId,
        path: &str,
        kind: EntryKind,
        size: i64,
        mtime_ns: i64,
        hash: Option<&ContentHash>,
        deleted: bool,
    ) -> FabricResult<()> {
        let mut tx = self.pool.begin().await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT version_vector FROM entries WHERE folder_id = $1 AND path = $2",
        )
        .bind(folder_id)
        .bind(path)
        .fetch_optional(&mut *tx)
        .await?;
        let mut vv = VersionVector::parse(old.as_deref().unwrap_or(""));
        vv.bump(node);
        let row = NewEntry {
            path,
            kind,
            size,
            mtime_ns,
            hash,
            version: &vv,
            modified_by: &node.to_string(),
            deleted,
        };
        upsert_entry(&mut tx, folder_id, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Bytes in the live files of some folders.
    pub async fn used_bytes(&self, folder_ids: &[String]) -> FabricResult<i64> {
        let mut total = 0;
        for fid in folder_ids {
            let n: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM entries WHERE folder_id = $1 AND deleted = 0 AND kind = 'file'",
            )
            .bind(fid)
            .fetch_one(&self.pool)
            .await?;
            total += n;
        }
        Ok(total)
    }

    /// True if a kept version, or a folder's copy of current content, still
    /// points at this blob.
    pub async fn blob_in_use(&self, hash: &ContentHash) -> FabricResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM versions WHERE hash = $1) + \
                    (SELECT COUNT(*) FROM copies WHERE hash = $1)",
        )
        .bind(hash.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
