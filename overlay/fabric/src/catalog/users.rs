//! Users and their credentials in the catalog.

use super::Catalog;
use crate::error::Result;
use crate::resource::{AppPassword, SshKey, User};
use sqlx::FromRow;

/// A user row including the password hash (never leaves the fabric).
#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Administrator (0/1).
    pub is_admin: i64,
    /// Created, ms.
    pub created_at: i64,
}

impl UserRow {
    /// The public part.
    pub fn to_user(&self) -> User {
        User {
            id: self.id.clone(),
            name: self.name.clone(),
            is_admin: self.is_admin != 0,
            created_at: self.created_at,
        }
    }
}

/// An app password row including its hash.
#[derive(Clone, Debug, FromRow)]
pub struct AppPasswordRow {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Created, ms.
    pub created_at: i64,
}

impl AppPasswordRow {
    /// The public part.
    pub fn to_public(&self) -> AppPassword {
        AppPassword {
            id: self.id.clone(),
            label: self.label.clone(),
            created_at: self.created_at,
        }
    }
}

#[derive(FromRow)]
struct SshKeyRow {
    id: String,
    algorithm: String,
    public_key: String,
    fingerprint: String,
    comment: String,
}

const USER_COLUMNS: &str = "id, name, password_hash, is_admin, created_at";

impl Catalog {
    /// Inserts a user.
    pub async fn insert_user(&self, row: &UserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.password_hash)
        .bind(row.is_admin)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a user by name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"));
        Ok(sqlx::query_as(q)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Finds a user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"));
        Ok(sqlx::query_as(q)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// All users, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"));
        Ok(sqlx::query_as(q).fetch_all(&self.pool).await?)
    }

    /// Replaces a user's password hash; false if there is no such user.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes a user with everything they own in the catalog (their files on
    /// disk stay where they are).
    pub async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM versions WHERE folder_id IN (SELECT id FROM folders WHERE owner_id = $1)",
            "DELETE FROM trash WHERE folder_id IN (SELECT id FROM folders WHERE owner_id = $1)",
            "DELETE FROM entries WHERE folder_id IN (SELECT id FROM folders WHERE owner_id = $1)",
            "DELETE FROM folders WHERE owner_id = $1",
            "DELETE FROM ssh_keys WHERE user_id = $1",
            "DELETE FROM app_passwords WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores an SSH public key.
    pub async fn insert_ssh_key(&self, user_id: &str, key: &SshKey, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO ssh_keys (id, user_id, algorithm, public_key, fingerprint, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(user_id)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(&key.fingerprint)
        .bind(&key.comment)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A user's SSH public keys.
    pub async fn ssh_keys(&self, user_id: &str) -> Result<Vec<SshKey>> {
        let rows: Vec<SshKeyRow> = sqlx::query_as(
            "SELECT id, algorithm, public_key, fingerprint, comment FROM ssh_keys WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SshKey {
                id: r.id,
                algorithm: r.algorithm,
                public_key: r.public_key,
                fingerprint: r.fingerprint,
                comment: r.comment,
            })
            .collect())
    }

    /// Stores an app password (hashed).
    pub async fn insert_app_password(&self, user_id: &str, row: &AppPasswordRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_passwords (id, user_id, label, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(user_id)
        .bind(&row.label)
        .bind(&row.password_hash)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes `user` (by id) and exactly `keys` and `apps` its credentials,
    /// as a record from another member says: one transaction. Its sessions
    /// end if its password changed.
    pub async fn put_user_with_credentials(
        &self,
        user: &UserRow,
        keys: &[SshKey],
        apps: &[AppPasswordRow],
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $2, is_admin = $3 WHERE id = $1 AND password_hash <> $2",
        )
        .bind(&user.id)
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, is_admin = excluded.is_admin",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        for sql in [
            "DELETE FROM ssh_keys WHERE user_id = $1",
            "DELETE FROM app_passwords WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(&user.id).execute(&mut *tx).await?;
        }
        for key in keys {
            sqlx::query(
                "INSERT INTO ssh_keys (id, user_id, algorithm, public_key, fingerprint, comment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&key.id)
            .bind(&user.id)
            .bind(&key.algorithm)
            .bind(&key.public_key)
            .bind(&key.fingerprint)
            .bind(&key.comment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for app in apps {
            sqlx::query(
                "INSERT INTO app_passwords (id, user_id, label, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&app.id)
            .bind(&user.id)
            .bind(&app.label)
            .bind(&app.password_hash)
            .bind(app.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A user's app passwords (hashed).
    pub async fn app_passwords(&self, user_id: &str) -> Result<Vec<AppPasswordRow>> {
        Ok(sqlx::query_as(
            "SELECT id, label, password_hash, created_at FROM app_passwords WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a sign-in session by the hash of its token.
    pub async fn insert_session(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
        expires: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of a live session.
    pub async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.name, u.password_hash, u.is_admin, u.created_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends every session of a user (after a password change).
    pub async fn delete_sessions_of(&self, user_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
