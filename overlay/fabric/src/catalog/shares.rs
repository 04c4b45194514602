//! Share links in the catalog.

use super::Catalog;
use crate::error::Result;
use sqlx::{FromRow, Row};

/// A share row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRow {
    /// Id.
    pub id: String,
    /// BLAKE3 of the secret part of the URL (hex); the token itself is
    /// never stored in the clear.
    pub token_digest: String,
    /// The token sealed under the node's link key, for showing the owner
    /// the URL again (`None` for rows from before it was kept).
    pub token_sealed: Option<String>,
    /// Owner's user id.
    pub owner_id: String,
    /// Folder id.
    pub folder_id: String,
    /// Path inside the folder.
    pub path: String,
    /// `file` or `dir`.
    pub kind: String,
    /// `read`, `upload` or `readwrite`.
    pub permission: String,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
    /// Argon2 hash of the link's password.
    pub password_hash: Option<String>,
    /// Download limit.
    pub max_downloads: Option<i64>,
    /// Downloads so far, in thousandths of the file (or zip) served.
    pub served_millis: i64,
    /// Opens so far.
    pub uses: i64,
    /// Revoked.
    pub revoked: bool,
    /// Created, ms.
    pub created_at: i64,
}

impl<'r> FromRow<'r, sqlx::any::AnyRow> for ShareRow {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(ShareRow {
            id: row.try_get("id")?,
            token_digest: row.try_get("token_digest")?,
            token_sealed: row.try_get("token_sealed")?,
            owner_id: row.try_get("owner_id")?,
            folder_id: row.try_get("folder_id")?,
            path: row.try_get("path")?,
            kind: row.try_get("kind")?,
            permission: row.try_get("permission")?,
            expires_at: row.try_get("expires_at")?,
            password_hash: row.try_get("password_hash")?,
            max_downloads: row.try_get("max_downloads")?,
            served_millis: row.try_get("served_millis")?,
            uses: row.try_get("uses")?,
            revoked: row.try_get::<i64, _>("revoked")? != 0,
            created_at: row.try_get("created_at")?,
        })
    }
}

const SHARE_COLUMNS: &str = "id, token_digest, token_sealed, owner_id, folder_id, path, kind, permission, \
     expires_at, password_hash, max_downloads, served_millis, uses, revoked, created_at";

impl Catalog {
    /// Stores a new share.
    pub async fn insert_share(&self, s: &ShareRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO shares (id, token_digest, token_sealed, owner_id, folder_id, path, kind, \
             permission, expires_at, password_hash, max_downloads, served_millis, uses, revoked, \
             created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0, $12)",
        )
        .bind(&s.id)
        .bind(&s.token_digest)
        .bind(s.token_sealed.as_deref())
        .bind(&s.owner_id)
        .bind(&s.folder_id)
        .bind(&s.path)
        .bind(&s.kind)
        .bind(&s.permission)
        .bind(s.expires_at)
        .bind(s.password_hash.as_deref())
        .bind(s.max_downloads)
        .bind(s.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes a share from another member what its record says: inserted
    /// (without a sealed token: the URL is shown where it was made) or,
    /// if this node has it, its terms updated. Counts stay this node's.
    pub async fn put_share(&self, s: &ShareRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO shares (id, token_digest, token_sealed, owner_id, folder_id, path, kind, \
             permission, expires_at, password_hash, max_downloads, served_millis, uses, revoked, \
             created_at) \
             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET permission = excluded.permission, \
             expires_at = excluded.expires_at, password_hash = excluded.password_hash, \
             max_downloads = excluded.max_downloads, revoked = excluded.revoked",
        )
        .bind(&s.id)
        .bind(&s.token_digest)
        .bind(&s.owner_id)
        .bind(&s.folder_id)
        .bind(&s.path)
        .bind(&s.kind)
        .bind(&s.permission)
        .bind(s.expires_at)
        .bind(s.password_hash.as_deref())
        .bind(s.max_downloads)
        .bind(s.revoked as i64)
        .bind(s.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The share with this id or this token digest.
    pub async fn share_by_id_or_digest(&self, id: &str, digest: &str) -> Result<Option<ShareRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLUMNS} FROM shares WHERE id = $1 OR token_digest = $2"
        ));
        Ok(sqlx::query_as(q)
            .bind(id)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The share whose token has this digest.
    pub async fn share_by_digest(&self, digest: &str) -> Result<Option<ShareRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLUMNS} FROM shares WHERE token_digest = $1"
        ));
        Ok(sqlx::query_as(q)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Shares whose token is still stored in the clear (made before tokens
    /// were kept as digests): `(id, token)`.
    pub async fn plain_share_tokens(&self) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT id, token_digest FROM shares WHERE LENGTH(token_digest) <> 64")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("token_digest")?)))
            .collect()
    }

    /// After secrets were replaced: moves what SQLite's write-ahead log holds
    /// into the database file and empties the log, so that no earlier page
    /// image (with the old secret) stays on disk.
    pub async fn flush_replaced_secrets(&self) -> Result<()> {
        if self.backend() == super::Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Replaces a clear token by its digest and sealed copy.
    pub async fn set_share_digest(&self, id: &str, digest: &str, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE shares SET token_digest = $2, token_sealed = $3 WHERE id = $1")
            .bind(id)
            .bind(digest)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's shares (every user's with `None`), newest first.
    pub async fn shares(&self, owner_id: Option<&str>) -> Result<Vec<ShareRow>> {
        let rows: Vec<ShareRow> = match owner_id {
            Some(o) => {
                let q = sqlx::AssertSqlSafe(format!(
                    "SELECT {SHARE_COLUMNS} FROM shares WHERE owner_id = $1 ORDER BY created_at DESC"
                ));
                sqlx::query_as(q).bind(o).fetch_all(&self.pool).await?
            }
            None => {
                let q = sqlx::AssertSqlSafe(format!(
                    "SELECT {SHARE_COLUMNS} FROM shares ORDER BY created_at DESC"
                ));
                sqlx::query_as(q).fetch_all(&self.pool).await?
            }
        };
        Ok(rows)
    }

    /// Revokes a share; false if there is none with this id.
    pub async fn revoke_share(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE shares SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Counts an opening of a share.
    pub async fn count_share_use(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE shares SET uses = uses + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts `millis` thousandths of a download if the share's limit has
    /// room for them; false if not.
    pub async fn take_share_download(&self, id: &str, millis: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE shares SET served_millis = served_millis + $2 \
             WHERE id = $1 AND (max_downloads IS NULL OR served_millis + $2 <= max_downloads * 1000)",
        )
        .bind(id)
        .bind(millis)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
