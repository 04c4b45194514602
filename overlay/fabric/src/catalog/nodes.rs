//! The other nodes this node knows of (found on the LAN; members, next).

use super::Catalog;
use crate::error::Result;
use sqlx::Row;

/// One known node as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    /// Its id, 64 hex digits.
    pub id: String,
    /// The name it announced.
    pub name: String,
    /// The socket addresses it announced.
    pub addrs: Vec<String>,
    /// When it was last heard from, ms since the epoch.
    pub last_seen: i64,
    /// Still heard from on the LAN.
    pub nearby: bool,
    /// The relay URLs it serves.
    pub relays: Vec<String>,
    /// The relay it was last reachable through ("" if none).
    pub home_relay: String,
}

impl Catalog {
    /// Whether `id` is known (0 or 1), and how many nodes are.
    async fn node_counts(&self, id: &str) -> Result<(i64, i64)> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM nodes WHERE id = $1), (SELECT COUNT(*) FROM nodes)",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// Records that a node was heard from on the LAN now; a node not yet
    /// known is added only while fewer than `cap` are.
    pub async fn node_heard(
        &self,
        id: &str,
        name: &str,
        addrs: &[String],
        now: i64,
        cap: i64,
    ) -> Result<()> {
        let (known, count) = self.node_counts(id).await?;
        if known == 0 && count >= cap {
            tracing::debug!("node not recorded: {cap} nodes are known already");
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO nodes (id, name, addrs, last_seen, nearby) VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, addrs = excluded.addrs, \
             last_seen = excluded.last_seen, nearby = 1",
        )
        .bind(id)
        .bind(name)
        .bind(addrs.join(","))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records where a member was reached (or said it listens) without
    /// changing whether it is heard on the LAN. At the cap, the stalest
    /// node that is not a member is forgotten to make room.
    #[allow(clippy::too_many_arguments)]
    pub async fn node_reached(
        &self,
        id: &str,
        name: &str,
        addrs: &[String],
        relays: &[String],
        home_relay: &str,
        now: i64,
        cap: i64,
    ) -> Result<()> {
        let (known, count) = self.node_counts(id).await?;
        if known == 0 && count >= cap {
            // Members come first: the stalest node that is not one makes
            // room (strangers heard on the LAN cannot keep a member out).
            sqlx::query(
                "DELETE FROM nodes WHERE id = (SELECT id FROM nodes WHERE id NOT IN \
                 (SELECT key FROM records WHERE kind = 'member') ORDER BY last_seen LIMIT 1)",
            )
            .execute(&self.pool)
            .await?;
        }
        let sql = "INSERT INTO nodes (id, name, addrs, last_seen, nearby, relays, home_relay) \
             VALUES ($1, $2, $3, $4, 0, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, addrs = excluded.addrs, \
             last_seen = excluded.last_seen, relays = excluded.relays, home_relay = excluded.home_relay";
        sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(addrs.join(","))
            .bind(now)
            .bind(relays.join(","))
            .bind(home_relay)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that a node is no longer heard from on the LAN (`None`:
    /// every node, as at start-up, before anything is heard).
    pub async fn node_not_nearby(&self, id: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE nodes SET nearby = 0 WHERE $1 = '' OR id = $1")
            .bind(id.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets nodes last heard from before `before` (ms).
    pub async fn forget_nodes_before(&self, before: i64) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE last_seen < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every known node, nearby ones first, then by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT id, name, addrs, last_seen, nearby, relays, home_relay FROM nodes \
             ORDER BY nearby DESC, name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let addrs: String = r.try_get("addrs")?;
                let relays: String = r.try_get("relays")?;
                Ok(NodeRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    addrs: addrs
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    last_seen: r.try_get("last_seen")?,
                    nearby: r.try_get::<i64, _>("nearby")? != 0,
                    relays: relays
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    home_relay: r.try_get("home_relay")?,
                })
            })
            .collect()
    }
}
