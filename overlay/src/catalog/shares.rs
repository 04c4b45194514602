//! Share links in the catalog.

use super::Catalog;
use crate::error::Result;
use sqlx::{FromRow, Row};

/// A share row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRow {
    /// Id.
    pub id: String,
    /// The secret part of the URL.
    pub token: String,
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
    /// Downloads so far.
    pub downloads: i64,
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
            token: row.try_get("token")?,
            owner_id: row.try_get("owner_id")?,
            folder_id: row.try_get("folder_id")?,
            path: row.try_get("path")?,
            kind: row.try_get("kind")?,
            permission: row.try_get("permission")?,
            expires_at: row.try_get("expires_at")?,
            password_hash: row.try_get("password_hash")?,
            max_downloads: row.try_get("max_downloads")?,
            downloads: row.try_get("downloads")?,
            uses: row.try_get("uses")?,
            revoked: row.try_get::<i64, _>("revoked")? != 0,
            created_at: row.try_get("created_at")?,
        })
    }
}

const SHARE_COLUMNS: &str = "id, token, owner_id, folder_id, path, kind, permission, expires_at, password_hash, \
     max_downloads, downloads, uses, revoked, created_at";

impl Catalog {
    /// Stores a new share.
    pub async fn insert_share(&self, s: &ShareRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO shares (id, token, owner_id, folder_id, path, kind, permission, expires_at, \
             password_hash, max_downloads, downloads, uses, revoked, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, 0, $11)",
        )
        .bind(&s.id)
        .bind(&s.token)
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

    /// The share with this id or token.
    pub async fn share_by_id_or_token(&self, key: &str) -> Result<Option<ShareRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLUMNS} FROM shares WHERE id = $1 OR token = $1"
        ));
        Ok(sqlx::query_as(q)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The share with this token.
    pub async fn share_by_token(&self, token: &str) -> Result<Option<ShareRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE_COLUMNS} FROM shares WHERE token = $1"
        ));
        Ok(sqlx::query_as(q)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?)
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

    /// Revokes a share; false if there is none with this id or token.
    pub async fn revoke_share(&self, id_or_token: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE shares SET revoked = 1 WHERE id = $1 OR token = $1")
            .bind(id_or_token)
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

    /// Counts a download if the share's limit allows one more; false if not.
    pub async fn take_share_download(&self, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE shares SET downloads = downloads + 1 \
             WHERE id = $1 AND (max_downloads IS NULL OR downloads < max_downloads)",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
