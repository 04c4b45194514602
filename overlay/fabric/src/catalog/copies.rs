//! Copies of current content in the catalog: which blobs are copies of a
//! folder's files, how much they take, and which are the oldest.

use super::Catalog;
use super::hash_column;
use crate::error::Result;
use crate::ids::ContentHash;
use sqlx::Row;

impl Catalog {
    /// Records that `hash` is a copy of content in a folder.
    pub async fn add_copy(
        &self,
        folder_id: &str,
        hash: &ContentHash,
        size: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO copies (folder_id, hash, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (folder_id, hash) DO NOTHING",
        )
        .bind(folder_id)
        .bind(hash.to_string())
        .bind(size)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a copy (its blob is removed separately, if nothing else
    /// refers to it).
    pub async fn remove_copy(&self, folder_id: &str, hash: &ContentHash) -> Result<()> {
        sqlx::query("DELETE FROM copies WHERE folder_id = $1 AND hash = $2")
            .bind(folder_id)
            .bind(hash.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a folder has a copy of `hash`.
    pub async fn has_copy(&self, folder_id: &str, hash: &ContentHash) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM copies WHERE folder_id = $1 AND hash = $2")
                .bind(folder_id)
                .bind(hash.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Bytes of copies: of one folder, or of every folder with `None`.
    pub async fn copy_bytes(&self, folder_id: Option<&str>) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(size) AS BIGINT) FROM copies WHERE $1 = '' OR folder_id = $1",
        )
        .bind(folder_id.unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.unwrap_or(0))
    }

    /// The oldest copies (of one folder, or of all): `(folder id, hash,
    /// size)`, oldest first.
    pub async fn oldest_copies(
        &self,
        folder_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, ContentHash, i64)>> {
        let rows = sqlx::query(
            "SELECT folder_id, hash, size FROM copies WHERE $1 = '' OR folder_id = $1 \
             ORDER BY created_at, hash LIMIT $2",
        )
        .bind(folder_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("folder_id")?,
                    hash_column(r, "hash")?,
                    r.try_get("size")?,
                ))
            })
            .collect()
    }

    /// Live files of a folder whose content has no copy yet, newest first,
    /// from the `skip`-th on: `(path, hash, size, mtime)`.
    pub async fn files_without_copies(
        &self,
        folder_id: &str,
        max_size: Option<i64>,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<(String, ContentHash, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT e.path, e.hash, e.size, e.mtime_ns FROM entries e \
             WHERE e.folder_id = $1 AND e.deleted = 0 AND e.kind = 'file' AND e.hash IS NOT NULL \
             AND ($2 < 0 OR e.size <= $2) \
             AND NOT EXISTS (SELECT 1 FROM copies c WHERE c.folder_id = e.folder_id AND c.hash = e.hash) \
             ORDER BY e.mtime_ns DESC, e.path LIMIT $3 OFFSET $4",
        )
        .bind(folder_id)
        .bind(max_size.unwrap_or(-1))
        .bind(limit)
        .bind(skip)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("path")?,
                    hash_column(r, "hash")?,
                    r.try_get("size")?,
                    r.try_get("mtime_ns")?,
                ))
            })
            .collect()
    }

    /// Sets a folder's copy policy and budget.
    pub async fn set_folder_copies(
        &self,
        folder_id: &str,
        policy: &str,
        budget: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE folders SET copies = $1, copy_budget = $2 WHERE id = $3")
            .bind(policy)
            .bind(budget)
            .bind(folder_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
