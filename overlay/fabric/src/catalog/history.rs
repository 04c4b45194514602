//! Versions (earlier contents) and the trash.

use super::Catalog;
use crate::error::Result;
use crate::ids::ContentHash;
use crate::path::RelPath;
use crate::resource::{EntryKind, Version};
use sqlx::FromRow;

/// A version about to be recorded.
#[derive(Clone, Debug)]
pub struct NewVersion<'a> {
    /// Folder id.
    pub folder_id: &'a str,
    /// Path of the file.
    pub path: &'a str,
    /// Blob hash.
    pub hash: &'a ContentHash,
    /// Size.
    pub size: i64,
    /// Content mtime, ns.
    pub mtime_ns: i64,
    /// `overwrite`, `delete`, `disk-edit`, `disk-delete`.
    pub reason: &'a str,
    /// Front that made the change.
    pub front: &'a str,
    /// Who made it.
    pub actor: &'a str,
    /// The trash item this belongs to, for deletions.
    pub trash_id: Option<i64>,
}

#[derive(FromRow)]
struct VersionRow {
    id: i64,
    folder_id: String,
    path: String,
    hash: String,
    size: i64,
    mtime_ns: i64,
    created_at: i64,
    reason: String,
    front: String,
    actor: String,
}

impl TryFrom<VersionRow> for Version {
    type Error = crate::error::FabricError;
    fn try_from(r: VersionRow) -> Result<Version> {
        Ok(Version {
            id: r.id,
            folder_id: r.folder_id,
            path: RelPath::parse(&r.path).unwrap_or_default(),
            hash: r.hash.parse()?,
            size: r.size as u64,
            mtime_ns: r.mtime_ns,
            created_at: r.created_at,
            reason: r.reason,
            front: r.front,
            actor: r.actor,
        })
    }
}

/// A trash row with totals over its kept files.
#[derive(Clone, Debug, FromRow)]
pub struct TrashRow {
    /// Id.
    pub id: i64,
    /// Folder id.
    pub folder_id: String,
    /// Deleted path.
    pub path: String,
    /// `file` or `dir`.
    pub kind: String,
    /// Deleted at, ms.
    pub deleted_at: i64,
    /// Who.
    pub actor: String,
    /// Which front.
    pub front: String,
    /// Number of files kept.
    pub files: i64,
    /// Their total size.
    pub size: i64,
}

impl TrashRow {
    /// File or directory.
    pub fn kind(&self) -> EntryKind {
        EntryKind::parse(&self.kind)
    }
}

const VERSION_COLUMNS: &str =
    "id, folder_id, path, hash, size, mtime_ns, created_at, reason, front, actor";

impl Catalog {
    /// Records a version.
    pub async fn insert_version(&self, v: &NewVersion<'_>, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO versions (folder_id, path, hash, size, mtime_ns, created_at, reason, front, actor, trash_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(v.folder_id)
        .bind(v.path)
        .bind(v.hash.to_string())
        .bind(v.size)
        .bind(v.mtime_ns)
        .bind(now)
        .bind(v.reason)
        .bind(v.front)
        .bind(v.actor)
        .bind(v.trash_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Versions of one path, newest first.
    pub async fn versions(&self, folder_id: &str, path: &str) -> Result<Vec<Version>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE folder_id = $1 AND path = $2 ORDER BY id DESC"
        ));
        let rows: Vec<VersionRow> = sqlx::query_as(q)
            .bind(folder_id)
            .bind(path)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Version::try_from).collect()
    }

    /// One version by id.
    pub async fn version(&self, id: i64) -> Result<Option<Version>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE id = $1"
        ));
        let row: Option<VersionRow> = sqlx::query_as(q)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Version::try_from).transpose()
    }

    /// The versions kept for one trash item.
    pub async fn trash_versions(&self, trash_id: i64) -> Result<Vec<Version>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE trash_id = $1 ORDER BY path"
        ));
        let rows: Vec<VersionRow> = sqlx::query_as(q)
            .bind(trash_id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Version::try_from).collect()
    }

    /// Opens a trash item.
    pub async fn insert_trash(
        &self,
        folder_id: &str,
        path: &str,
        kind: EntryKind,
        actor: &str,
        front: &str,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO trash (folder_id, path, kind, deleted_at, actor, front) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(folder_id)
        .bind(path)
        .bind(kind.as_str())
        .bind(now)
        .bind(actor)
        .bind(front)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The trash of some folders, newest first.
    pub async fn trash(&self, folder_ids: &[String]) -> Result<Vec<TrashRow>> {
        let mut out = Vec::new();
        for fid in folder_ids {
            let rows: Vec<TrashRow> = sqlx::query_as(
                "SELECT t.id, t.folder_id, t.path, t.kind, t.deleted_at, t.actor, t.front, \
                 CAST((SELECT COUNT(*) FROM versions v WHERE v.trash_id = t.id) AS BIGINT) AS files, \
                 CAST((SELECT COALESCE(SUM(v.size), 0) FROM versions v WHERE v.trash_id = t.id) AS BIGINT) AS size \
                 FROM trash t WHERE t.folder_id = $1",
            )
            .bind(fid)
            .fetch_all(&self.pool)
            .await?;
            out.extend(rows);
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.id));
        Ok(out)
    }

    /// One trash item.
    pub async fn trash_item(&self, id: i64) -> Result<Option<TrashRow>> {
        Ok(sqlx::query_as(
            "SELECT t.id, t.folder_id, t.path, t.kind, t.deleted_at, t.actor, t.front, \
             CAST((SELECT COUNT(*) FROM versions v WHERE v.trash_id = t.id) AS BIGINT) AS files, \
             CAST((SELECT COALESCE(SUM(v.size), 0) FROM versions v WHERE v.trash_id = t.id) AS BIGINT) AS size \
             FROM trash t WHERE t.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Takes an item out of the trash. With `purge`, its kept versions go too;
    /// without, they stay in the file's history. Returns the hashes that were
    /// dropped, for blob collection.
    pub async fn remove_trash(&self, id: i64, purge: bool) -> Result<Vec<ContentHash>> {
        let mut tx = self.pool.begin().await?;
        let mut hashes: Vec<String> = Vec::new();
        if purge {
            // Write first: an SQLite transaction that reads before it writes
            // cannot wait for another writer and fails at once.
            hashes = sqlx::query_scalar("DELETE FROM versions WHERE trash_id = $1 RETURNING hash")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE versions SET trash_id = NULL WHERE trash_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM trash WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Committed: a row that names no blob (never written by Glow) is
        // simply nothing to collect, not an error after the fact.
        Ok(hashes.iter().filter_map(|h| h.parse().ok()).collect())
    }
}
