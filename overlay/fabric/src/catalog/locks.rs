//! Advisory locks on paths (WebDAV class 2), per user namespace.

use super::Catalog;
use crate::error::Result;
use sqlx::{FromRow, Row};

/// A lock row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRow {
    /// The lock token.
    pub token: String,
    /// The user whose namespace the path is in.
    pub owner_user: String,
    /// The locked path inside that namespace (`/folder/path`).
    pub scope: String,
    /// The locked resource as the client addressed it.
    pub href: String,
    /// Who took it.
    pub principal: Option<String>,
    /// The client's owner element, as sent.
    pub owner_xml: Option<Vec<u8>>,
    /// Expiry, ms since the epoch (none: infinite).
    pub expires_at: Option<i64>,
    /// The timeout asked for, ms.
    pub timeout_ms: Option<i64>,
    /// Shared (else exclusive).
    pub shared: bool,
    /// Depth infinity (else depth 0).
    pub deep: bool,
}

impl<'r> FromRow<'r, sqlx::any::AnyRow> for LockRow {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(LockRow {
            token: row.try_get("token")?,
            owner_user: row.try_get("owner_user")?,
            scope: row.try_get("scope")?,
            href: row.try_get("href")?,
            principal: row.try_get("principal")?,
            owner_xml: row.try_get("owner_xml")?,
            expires_at: row.try_get("expires_at")?,
            timeout_ms: row.try_get("timeout_ms")?,
            shared: row.try_get::<i64, _>("shared")? != 0,
            deep: row.try_get::<i64, _>("deep")? != 0,
        })
    }
}

impl Catalog {
    /// A user's live locks (expired ones are dropped on the way).
    pub async fn locks(&self, user: &str, now: i64) -> Result<Vec<LockRow>> {
        sqlx::query("DELETE FROM locks WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_as(
            "SELECT token, owner_user, scope, href, principal, owner_xml, expires_at, timeout_ms, shared, deep \
             FROM locks WHERE owner_user = $1 ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a lock.
    pub async fn insert_lock(&self, l: &LockRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO locks (token, owner_user, scope, href, principal, owner_xml, expires_at, timeout_ms, shared, deep, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&l.token)
        .bind(&l.owner_user)
        .bind(&l.scope)
        .bind(&l.href)
        .bind(l.principal.as_deref())
        .bind(l.owner_xml.as_deref())
        .bind(l.expires_at)
        .bind(l.timeout_ms)
        .bind(l.shared as i64)
        .bind(l.deep as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes locks by token.
    pub async fn delete_locks(&self, tokens: &[String]) -> Result<()> {
        for t in tokens {
            sqlx::query("DELETE FROM locks WHERE token = $1")
                .bind(t)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Sets a lock's new expiry.
    pub async fn refresh_lock(
        &self,
        token: &str,
        expires_at: Option<i64>,
        timeout_ms: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE locks SET expires_at = $1, timeout_ms = $2 WHERE token = $3")
            .bind(expires_at)
            .bind(timeout_ms)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
