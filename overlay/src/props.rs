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

impl Fabric {
    /// The properties of an entry.
    pub async fn properties(&self, who: &Principal, addr: &Address) -> Result<Vec<Property>> {
        let folder = self.folder_for(who, addr, Op::Read).await?;
        self.stat(who, addr).await?;
        self.inner
            .catalog
            .properties(&folder.id, addr.path.as_str())
            .await
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
