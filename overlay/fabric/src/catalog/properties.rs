//! Named properties of entries.

use super::Catalog;
use crate::error::Result;
use sqlx::FromRow;

/// A property row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct PropertyRow {
    /// Namespace ("" for none).
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// The prefix the client used.
    pub prefix: Option<String>,
    /// The value, as the client sent it.
    pub value: Option<Vec<u8>>,
}

impl Catalog {
    /// Properties of one entry, in a stable order.
    pub async fn properties(&self, folder_id: &str, path: &str) -> Result<Vec<PropertyRow>> {
        Ok(sqlx::query_as(
            "SELECT namespace, name, prefix, value FROM properties WHERE folder_id = $1 AND path = $2 \
             ORDER BY namespace, name",
        )
        .bind(folder_id)
        .bind(path)
        .fetch_all(&self.pool)
        .await?)
    }

    /// True if any entry of the folder has a property.
    pub async fn folder_has_properties(&self, folder_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM properties WHERE folder_id = $1 LIMIT 1) AS t",
        )
        .bind(folder_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Sets (`Some`) or removes (`None` value in `set == false`) properties, all at once.
    pub async fn patch_properties(
        &self,
        folder_id: &str,
        path: &str,
        changes: &[(bool, PropertyRow)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (set, p) in changes {
            if *set {
                sqlx::query(
                    "INSERT INTO properties (folder_id, path, namespace, name, prefix, value) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (folder_id, path, namespace, name) DO UPDATE SET prefix = excluded.prefix, value = excluded.value",
                )
                .bind(folder_id)
                .bind(path)
                .bind(&p.namespace)
                .bind(&p.name)
                .bind(p.prefix.as_deref())
                .bind(p.value.as_deref())
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query("DELETE FROM properties WHERE folder_id = $1 AND path = $2 AND namespace = $3 AND name = $4")
                    .bind(folder_id)
                    .bind(path)
                    .bind(&p.namespace)
                    .bind(&p.name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves the properties at or below `from` to `to` (another folder, maybe).
    pub async fn move_properties(
        &self,
        from_folder: &str,
        from: &str,
        to_folder: &str,
        to: &str,
    ) -> Result<()> {
        let prefix = format!("{from}/");
        sqlx::query(
            "UPDATE properties SET folder_id = $1, path = $2 || substr(path, CAST($3 AS INTEGER)) \
             WHERE folder_id = $4 AND (path = $5 OR substr(path, 1, CAST($6 AS INTEGER)) = $7)",
        )
        .bind(to_folder)
        .bind(to)
        .bind(from.chars().count() as i64 + 1)
        .bind(from_folder)
        .bind(from)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops the properties at or below `path`.
    pub async fn drop_properties(&self, folder_id: &str, path: &str) -> Result<()> {
        let prefix = format!("{path}/");
        sqlx::query(
            "DELETE FROM properties WHERE folder_id = $1 AND (path = $2 OR substr(path, 1, CAST($3 AS INTEGER)) = $4)",
        )
        .bind(folder_id)
        .bind(path)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
