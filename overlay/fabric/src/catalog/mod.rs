//! The catalog: users, credentials, folders, entries, versions and trash in a
//! relational database reached through sqlx.
//!
//! One code path serves SQLite (the default, a file in the data dir, WAL mode so
//! the CLI can work beside a running server) and PostgreSQL: queries are
//! written once with `$N` placeholders, which both accept, against an
//! `AnyPool`; each backend has its own migrations folder. The catalog knows
//! nothing about disks or permissions; the fabric decides those.

mod copies;
mod entries;
mod folders;
mod history;
mod locks;
mod nodes;
mod properties;
mod records;
mod shares;
mod sync;
mod users;

pub use entries::{EntryRow, NewEntry};
pub use history::{NewVersion, TrashRow};
pub use locks::LockRow;
pub use nodes::NodeRow;
pub use properties::PropertyRow;
pub use records::RecordRow;
pub use shares::ShareRow;
pub use sync::{NO_REPLICA, SyncStateRow};
pub use users::{AppPasswordRow, UserRow};

use crate::error::Result;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::time::Duration;

/// Which database engine holds the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A handle on the catalog; cloning is cheap.
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

impl Catalog {
    /// Opens (creating and migrating as needed) the catalog at `url`:
    /// `postgres://…` for PostgreSQL, otherwise the SQLite file `default_file`.
    pub async fn open(url: Option<&str>, default_file: &Path) -> Result<Catalog> {
        install_default_drivers();
        let (url, backend) = match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                (u.to_owned(), Backend::Postgres)
            }
            Some(u) if u.starts_with("sqlite:") => (u.to_owned(), Backend::Sqlite),
            Some(other) => {
                return Err(crate::FabricError::Invalid(format!(
                    "unsupported database URL {:?}: use postgres://… or sqlite:PATH",
                    redact_url(other)
                )));
            }
            None => (
                format!("sqlite://{}?mode=rwc", default_file.display()),
                Backend::Sqlite,
            ),
        };
        // Several processes may open a new SQLite file at once (a server and
        // the CLI); setting WAL and migrating take write locks that SQLite
        // sometimes refuses at once instead of waiting, so retry for a while.
        let _guard = if backend == Backend::Sqlite {
            // sqlx's migrator does not lock SQLite: without this, two processes
            // opening a new catalog both run the first migration.
            let lock_path = default_file.with_extension("lock");
            Some(
                tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                    let f = std::fs::File::create(lock_path)?;
                    f.lock()?;
                    Ok(f)
                })
                .await
                .map_err(std::io::Error::other)??,
            )
        } else {
            None
        };
        let mut tries = 0;
        let pool = loop {
            match connect(&url, backend).await {
                Ok(pool) => break pool,
                Err(e) if backend == Backend::Sqlite && is_locked(&e) && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 + 10 * tries)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Catalog { pool, backend })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Reads a node-wide setting.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// Writes a node-wide setting unless one is already there; returns the
    /// value in force.
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self.meta(key).await?.unwrap_or_else(|| value.to_owned()))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn connect(url: &str, backend: Backend) -> Result<AnyPool> {
    let max = if backend == Backend::Sqlite { 8 } else { 16 };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A node is idle most of the time: connections (each with its page
        // cache) close after a minute unused, and one stays.
        .idle_timeout(Duration::from_secs(60))
        .min_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // Several processes (server and CLI) share the file.
                    sqlx::query("PRAGMA busy_timeout = 15000")
                        .execute(&mut *conn)
                        .await?;
                    // Safe with WAL: a power cut may lose the last commits,
                    // never corrupt; the start-up scan recovers from the disk.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    // What is deleted or replaced (a secret's old form) is
                    // overwritten in the file, not left in free space.
                    sqlx::query("PRAGMA secure_delete = ON")
                        .execute(&mut *conn)
                        .await?;
                    // 1 MiB of page cache per connection (SQLite's default
                    // is 2 MiB): the catalog's hot pages are few, and the
                    // OS caches the file anyway.
                    sqlx::query("PRAGMA cache_size = -1024")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
    } else {
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
    }
    Ok(pool)
}

fn is_locked(e: &crate::FabricError) -> bool {
    e.to_string().contains("database is locked")
}

/// Hides the password of a database URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A fresh random id: 128 bits as hex.
pub fn new_id() -> String {
    hex(&random_bytes::<16>())
}

/// Bytes from the OS random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b
}

/// Lower-case hex of `bytes`.
/// A content hash column, validated (a damaged row is a decode error, not
/// a path).
pub(crate) fn hash_column(
    row: &sqlx::any::AnyRow,
    name: &str,
) -> std::result::Result<crate::ids::ContentHash, sqlx::Error> {
    use sqlx::Row;
    row.try_get::<String, _>(name)?
        .parse()
        .map_err(|e: crate::error::FabricError| sqlx::Error::Decode(Box::new(e)))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite:x.db"), "sqlite:x.db");
    }
}
