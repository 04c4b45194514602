//! Versioned records the members of a glow share, their history, the
//! cursors of what each peer sent, and invites.

use super::Catalog;
use crate::error::Result;
use sqlx::Row;

/// One record as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    /// What it describes ("user", "member", …).
    pub kind: String,
    /// Which one.
    pub key: String,
    /// Its value (JSON).
    pub value: String,
    /// Its version vector, in text form.
    pub version_vector: String,
    /// The node (id) where this value was made.
    pub origin: String,
    /// When, ms.
    pub changed_at: i64,
    /// Who made it.
    pub changed_by: String,
    /// A deletion.
    pub deleted: bool,
    /// This node's sequence number for it (set when stored).
    pub sequence: i64,
    /// In history rows: when it stopped being current; else 0.
    pub replaced_at: i64,
    /// In history rows: why ("replaced", "conflict", …); else empty.
    pub reason: String,
}

const COLUMNS: &str =
    "kind, key, value, version_vector, origin, changed_at, changed_by, deleted, sequence";

fn row_of(r: &sqlx::any::AnyRow, history: bool) -> Result<RecordRow> {
    Ok(RecordRow {
        kind: r.try_get("kind")?,
        key: r.try_get("key")?,
        value: r.try_get("value")?,
        version_vector: r.try_get("version_vector")?,
        origin: r.try_get("origin")?,
        changed_at: r.try_get("changed_at")?,
        changed_by: r.try_get("changed_by")?,
        deleted: r.try_get::<i64, _>("deleted")? != 0,
        sequence: if history { 0 } else { r.try_get("sequence")? },
        replaced_at: if history {
            r.try_get("replaced_at")?
        } else {
            0
        },
        reason: if history {
            r.try_get("reason")?
        } else {
            String::new()
        },
    })
}

impl Catalog {
    /// Makes `row` the current value of its kind and key under the next
    /// sequence number (returned); the value it replaces goes to history
    /// with `reason`. One transaction.
    pub async fn put_record(&self, row: &RecordRow, reason: &str, now: i64) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        // Write first: an SQLite transaction that reads before it writes
        // can fail to upgrade its lock when another process writes.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('record_sequence', '1') \
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)",
        )
        .execute(&mut *tx)
        .await?;
        let seq: String = sqlx::query("SELECT value FROM meta WHERE key = 'record_sequence'")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let seq: i64 = seq.parse().unwrap_or(1);
        sqlx::query(
            "INSERT INTO record_history (kind, key, value, version_vector, origin, changed_at, \
             changed_by, deleted, replaced_at, reason) \
             SELECT kind, key, value, version_vector, origin, changed_at, changed_by, deleted, $3, $4 \
             FROM records WHERE kind = $1 AND key = $2",
        )
        .bind(&row.kind)
        .bind(&row.key)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO records (kind, key, value, version_vector, origin, changed_at, changed_by, \
             deleted, sequence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, \
             version_vector = excluded.version_vector, origin = excluded.origin, \
             changed_at = excluded.changed_at, changed_by = excluded.changed_by, \
             deleted = excluded.deleted, sequence = excluded.sequence",
        )
        .bind(&row.kind)
        .bind(&row.key)
        .bind(&row.value)
        .bind(&row.version_vector)
        .bind(&row.origin)
        .bind(row.changed_at)
        .bind(&row.changed_by)
        .bind(row.deleted as i64)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Keeps `row` in history only (a value that lost to a concurrent one).
    pub async fn add_record_history(&self, row: &RecordRow, reason: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO record_history (kind, key, value, version_vector, origin, changed_at, \
             changed_by, deleted, replaced_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&row.kind)
        .bind(&row.key)
        .bind(&row.value)
        .bind(&row.version_vector)
        .bind(&row.origin)
        .bind(row.changed_at)
        .bind(&row.changed_by)
        .bind(row.deleted as i64)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The current record of `kind` and `key`.
    pub async fn record(&self, kind: &str, key: &str) -> Result<Option<RecordRow>> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM records WHERE kind = $1 AND key = $2"
        )))
        .bind(kind)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| row_of(&r, false)).transpose()
    }

    /// Records numbered after `since`, in order, at most `limit`.
    pub async fn records_since(&self, since: i64, limit: i64) -> Result<Vec<RecordRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM records WHERE sequence > $1 ORDER BY sequence LIMIT $2"
        )))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| row_of(r, false)).collect()
    }

    /// Every current record of `kind`, by key.
    pub async fn records_of_kind(&self, kind: &str) -> Result<Vec<RecordRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM records WHERE kind = $1 ORDER BY key"
        )))
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| row_of(r, false)).collect()
    }

    /// Earlier values of records (of `kind`, or every kind), newest first.
    pub async fn record_history(&self, kind: Option<&str>, limit: i64) -> Result<Vec<RecordRow>> {
        let rows = sqlx::query(
            "SELECT kind, key, value, version_vector, origin, changed_at, changed_by, deleted, \
             replaced_at, reason FROM record_history WHERE $1 = '' OR kind = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(kind.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| row_of(r, true)).collect()
    }

    /// The last of `node`'s sequence numbers applied here (0: none).
    pub async fn peer_cursor(&self, node: &str) -> Result<i64> {
        let r = sqlx::query("SELECT sequence FROM peer_cursors WHERE node = $1")
            .bind(node)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// Remembers the last of `node`'s sequence numbers applied here.
    pub async fn set_peer_cursor(&self, node: &str, sequence: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO peer_cursors (node, sequence) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET sequence = excluded.sequence",
        )
        .bind(node)
        .bind(sequence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the member list and every peer's cursor (a node joining
    /// another glow leaves the old one behind; its history stays).
    pub async fn leave_glow(&self, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO record_history (kind, key, value, version_vector, origin, changed_at, \
             changed_by, deleted, replaced_at, reason) \
             SELECT kind, key, value, version_vector, origin, changed_at, changed_by, deleted, $1, 'left' \
             FROM records WHERE kind = 'member'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM records WHERE kind = 'member'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM peer_cursors")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps a new invite (its secret's digest only).
    pub async fn insert_invite(
        &self,
        digest: &str,
        now: i64,
        expires: i64,
        by: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO invites (digest, created_at, expires_at, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(digest)
        .bind(now)
        .bind(expires)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses up the invite of `digest` for `node` if it is unused and not
    /// expired; false otherwise. One statement: two nodes presenting the
    /// same invite at once cannot both succeed.
    pub async fn use_invite(&self, digest: &str, node: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invites SET used_by = $2, used_at = $3 \
             WHERE digest = $1 AND used_by IS NULL AND expires_at > $3",
        )
        .bind(digest)
        .bind(node)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The digests of the invites open (unused, not expired) at `now`.
    pub async fn open_invites(&self, now: i64) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT digest FROM invites WHERE used_by IS NULL AND expires_at > $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether an invite is open (unused, not expired) at `now`.
    pub async fn invite_open(&self, now: i64) -> Result<bool> {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM invites WHERE used_by IS NULL AND expires_at > $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(n > 0)
    }

    /// Forgets invites that expired before `before`.
    pub async fn forget_invites_before(&self, before: i64) -> Result<()> {
        sqlx::query("DELETE FROM invites WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a node-wide setting.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a node-wide setting.
    pub async fn delete_meta(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
