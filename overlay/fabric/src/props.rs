//! Named properties of files and directories (WebDAV's dead properties):
//! opaque values the fabric keeps for clients, authorized like the entry
//! they belong to, moved with it and dropped when it is deleted.

use crate::access::{Op, Principal};
use crate::catalog::PropertyRow;
use crate::error::Result;
use crate::fabric::Address;
use crate::fabric::Fabric;

/// One property: a namespaced name and an opaque value.
pub type Property = PropertyRow;

/// An advisory lock on a path of a user's namespace.
pub type Lock = crate::catalog::LockRow;

/// Space used and left in a user's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes in the user's files.
    pub used: u64,
    /// Bytes still free where the user's folders live (the least of them).
    pub available: Option<u64>,
}

impl Fabric {
    /// What a user has stored, and the room left (no quotas are set yet: the
    /// disk's free space is the limit).
    pub async fn quota(&self, who: &Principal) -> Result<Quota> {
        let folders = self.folders(who, Some(who.actor())).await?;
        let ids: Vec<String> = folders.iter().map(|f| f.id.clone()).collect();
        let used = self.inner.catalog.used_bytes(&ids).await?.max(0) as u64;
        let paths: Vec<std::path::PathBuf> = folders.iter().map(|f| f.path.clone()).collect();
        let available = crate::fabric::blocking(move || {
            Ok(paths
                .iter()
                .filter_map(|p| rustix::fs::statvfs(p).ok())
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
                .min())
        })
        .await?;
        Ok(Quota { used, available })
    }

    /// The live locks in `user`'s namespace. The caller (a front) has
    /// signed `user` in; locks are advisory and never stop the fabric itself.
    pub async fn locks(&self, user: &str) -> Result<Vec<Lock>> {
        self.inner
            .catalog
            .locks(user, crate::resource::now_ms())
            .await
    }

    /// Records a lock.
    pub async fn add_lock(&self, lock: &Lock) -> Result<()> {
        self.inner
            .catalog
            .insert_lock(lock, crate::resource::now_ms())
            .await
    }

    /// Drops locks.
    pub async fn remove_locks(&self, tokens: &[String]) -> Result<()> {
        self.inner.catalog.delete_locks(tokens).await
    }

    /// Gives a lock a new expiry.
    pub async fn refresh_lock(
        &self,
        token: &str,
        expires_at: Option<i64>,
        timeout_ms: Option<i64>,
    ) -> Result<()> {
        self.inner
            .catalog
            .refresh_lock(token, expires_at, timeout_ms)
            .await
    }

    /// The properties of an entry.
    pub async fn properties(&self, who: &Principal, addr: &Address) -> Result<Vec<Property>> {
        let folder = self.folder_for(who, addr, Op::Read).await?;
        self.inner
            .catalog
            .properties(&folder.id, addr.path.as_str())
            .await
    }

    /// True if anything in the folder of `addr` has properties (a cheap test
    /// before asking for the properties of every entry of a listing).
    pub async fn folder_has_properties(&self, who: &Principal, addr: &Address) -> Result<bool> {
        let folder = self.folder_for(who, addr, Op::Read).await?;
        self.inner.catalog.folder_has_properties(&folder.id).await
    }

    /// Sets (`true`) and removes (`false`) properties of an entry, all or none.
    pub async fn patch_properties(
        &self,
        who: &Principal,
        addr: &Address,
        changes: &[(bool, Property)],
    ) -> Result<()> {
        let folder = self.folder_for(who, addr, Op::Write).await?;
        self.stat(who, addr).await?;
        self.inner
            .catalog
            .patch_properties(&folder.id, addr.path.as_str(), changes)
            .await
    }
}
