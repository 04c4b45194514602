//! Folders in the catalog.

use super::Catalog;
use crate::error::Result;
use crate::resource::Folder;
use sqlx::FromRow;

#[derive(FromRow)]
struct FolderRow {
    id: String,
    owner_id: String,
    owner: String,
    name: String,
    path: String,
    copies: String,
    copy_budget: Option<i64>,
    media: i64,
    sequence: i64,
}

impl From<FolderRow> for Folder {
    fn from(r: FolderRow) -> Folder {
        Folder {
            id: r.id,
            owner_id: r.owner_id,
            owner: r.owner,
            name: r.name,
            path: r.path.into(),
            copies: crate::resource::CopyPolicy::parse(&r.copies).unwrap_or_default(),
            copy_budget: r.copy_budget.map(|b| b.max(0) as u64),
            media: r.media != 0,
            sequence: r.sequence,
        }
    }
}

const FOLDER_SELECT: &str = "SELECT f.id, f.owner_id, u.name AS owner, f.name, f.path, f.copies, f.copy_budget, f.media, f.sequence \
     FROM folders f JOIN users u ON u.id = f.owner_id";

impl Catalog {
    /// Inserts a folder.
    pub async fn insert_folder(&self, f: &Folder, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO folders (id, owner_id, name, path, copies, copy_budget, media, sequence, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
        )
        .bind(&f.id)
        .bind(&f.owner_id)
        .bind(&f.name)
        .bind(f.path.to_string_lossy().into_owned())
        .bind(f.copies.as_str())
        .bind(f.copy_budget.map(|b| b as i64))
        .bind(f.media as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets whether a folder is shown to the LAN media front.
    pub async fn set_folder_media(&self, folder_id: &str, media: bool) -> Result<()> {
        sqlx::query("UPDATE folders SET media = $1 WHERE id = $2")
            .bind(media as i64)
            .bind(folder_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every folder of every user, by owner and name.
    pub async fn folders(&self) -> Result<Vec<Folder>> {
        let q = sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} ORDER BY u.name, f.name"));
        let rows: Vec<FolderRow> = sqlx::query_as(q).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Folder::from).collect())
    }

    /// Removes a folder and its history from the catalog (not from disk).
    pub async fn delete_folder(&self, folder_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM versions WHERE folder_id = $1",
            "DELETE FROM copies WHERE folder_id = $1",
            "DELETE FROM trash WHERE folder_id = $1",
            "DELETE FROM entries WHERE folder_id = $1",
            "DELETE FROM sync_cursors WHERE folder_id = $1",
        ] {
            sqlx::query(sql).bind(folder_id).execute(&mut *tx).await?;
        }
        let r = sqlx::query("DELETE FROM folders WHERE id = $1")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }
}
