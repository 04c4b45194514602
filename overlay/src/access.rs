//! Who is asking, and the one place that decides what they may do.
//!
//! Every fabric call carries a [`Principal`]. [`authorize`] is the only
//! authorization decision in Glow; fronts never decide access themselves.

use crate::error::{FabricError, Result};
use crate::resource::Folder;

/// The party on whose behalf a fabric call is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user.
    User {
        /// User id.
        id: String,
        /// User name.
        name: String,
    },
    /// The local operator (the `glow` CLI on this node's data dir): may do
    /// anything, as they can read the data dir anyway.
    System,
}

impl Principal {
    /// A name for logs and version records.
    pub fn actor(&self) -> &str {
        match self {
            Principal::User { name, .. } => name,
            Principal::System => "system",
        }
    }
}

/// What a call wants to do with a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Stat, list, read, list versions.
    Read,
    /// Create, overwrite, rename, delete, restore.
    Write,
}

/// Decides whether `who` may do `op` in `folder`.
///
/// A folder that is not the principal's is reported as [`FabricError::NotFound`]:
/// other namespaces are invisible, not merely closed.
pub fn authorize(who: &Principal, folder: &Folder, op: Op) -> Result<()> {
    let _ = op; // Sharing between users will make read and write differ.
    match who {
        Principal::System => Ok(()),
        Principal::User { id, .. } if *id == folder.owner_id => Ok(()),
        Principal::User { .. } => Err(FabricError::NotFound),
    }
}

/// Decides whether `who` may see the namespace of the user `owner_id`.
pub fn authorize_namespace(who: &Principal, owner_id: &str) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        Principal::User { id, .. } if id == owner_id => Ok(()),
        Principal::User { .. } => Err(FabricError::NotFound),
    }
}
