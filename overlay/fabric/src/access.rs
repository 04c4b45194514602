//! Who is asking, and the one place that decides what they may do.
//!
//! Every fabric call carries a [`Principal`]. [`authorize`] is the only
//! authorization decision in Glow; fronts never decide access themselves.

use crate::error::{FabricError, Result};
use crate::path::RelPath;
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
    /// Whoever holds a share link (already checked: live, and unlocked if it
    /// has a password).
    Share(ShareScope),
    /// Any device on the local network, through the LAN media front (DLNA
    /// has no sign-in): may list and read folders flagged as media, nothing
    /// else.
    LanMedia,
    /// The local operator (the `glow` CLI on this node's data dir): may do
    /// anything, as they can read the data dir anyway.
    System,
}

/// What a share link reaches and allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareScope {
    /// Share id.
    pub id: String,
    /// Folder the link points into.
    pub folder_id: String,
    /// The shared file or directory; nothing outside it is reachable.
    pub root: RelPath,
    /// What the link allows.
    pub permission: SharePermission,
}

/// What a share link allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharePermission {
    /// List and download.
    Read,
    /// Upload new files only: no listing, no download, no overwrite (a drop box).
    Upload,
    /// Everything the owner can do inside the shared directory.
    ReadWrite,
}

impl SharePermission {
    /// The catalog's and the CLI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SharePermission::Read => "read",
            SharePermission::Upload => "upload",
            SharePermission::ReadWrite => "readwrite",
        }
    }

    /// Parses the catalog's spelling.
    pub fn parse(s: &str) -> Option<SharePermission> {
        match s {
            "read" => Some(SharePermission::Read),
            "upload" => Some(SharePermission::Upload),
            "readwrite" => Some(SharePermission::ReadWrite),
            _ => None,
        }
    }

    /// Whether the link allows `op`.
    pub fn allows(self, op: Op) -> bool {
        match self {
            SharePermission::Read => matches!(op, Op::Read | Op::Content),
            SharePermission::Upload => op == Op::Create,
            SharePermission::ReadWrite => op != Op::History,
        }
    }
}

impl Principal {
    /// A name for logs and version records.
    pub fn actor(&self) -> &str {
        match self {
            Principal::User { name, .. } => name,
            Principal::Share(_) => "share-link",
            Principal::LanMedia => "lan-media",
            Principal::System => "system",
        }
    }
}

/// What a call wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Stat and list.
    Read,
    /// Read a file's bytes (download, stream, thumbnail, copy from).
    Content,
    /// Create a file or directory that does not exist yet.
    Create,
    /// Overwrite, rename, delete, restore.
    Write,
    /// See earlier versions and the trash: owners only, never share links.
    History,
}

/// Decides whether `who` may do `op` at `path` in `folder`.
///
/// A folder that is not the principal's, or a path outside a share link, is
/// reported as [`FabricError::NotFound`]: other namespaces are invisible, not
/// merely closed.
///
/// The LAN media guest may list media folders and read the bytes of media
/// and subtitle files in them, nothing else. A share link may never change
/// its own root (a read-write link cannot delete or rename what it shares).
pub fn authorize(who: &Principal, folder: &Folder, path: &RelPath, op: Op) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        Principal::User { id, .. } if *id == folder.owner_id => Ok(()),
        Principal::User { .. } => Err(FabricError::NotFound),
        Principal::LanMedia if folder.media && op == Op::Read => Ok(()),
        Principal::LanMedia
            if folder.media
                && op == Op::Content
                && crate::media::is_servable_media(path.name()) =>
        {
            Ok(())
        }
        Principal::LanMedia => Err(FabricError::NotFound),
        Principal::Share(s) => {
            if s.folder_id != folder.id || !path.starts_with(&s.root) {
                Err(FabricError::NotFound)
            } else if op == Op::Write && *path == s.root {
                Err(FabricError::Forbidden)
            } else if s.permission.allows(op) {
                Ok(())
            } else {
                Err(FabricError::Forbidden)
            }
        }
    }
}

/// Decides whether `who` may see the namespace of the user `owner_id`.
pub fn authorize_namespace(who: &Principal, owner_id: &str) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        Principal::User { id, .. } if id == owner_id => Ok(()),
        _ => Err(FabricError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> Folder {
        Folder {
            id: "f".into(),
            owner_id: "u".into(),
            owner: "alice".into(),
            name: "docs".into(),
            path: "/x".into(),
            copies: Default::default(),
            copy_budget: None,
            media: false,
            sequence: 0,
        }
    }

    fn share(root: &str, permission: SharePermission) -> Principal {
        Principal::Share(ShareScope {
            id: "s".into(),
            folder_id: "f".into(),
            root: RelPath::parse(root).unwrap(),
            permission,
        })
    }

    #[test]
    fn table() {
        let f = folder();
        let p = |s| RelPath::parse(s).unwrap();
        let owner = Principal::User {
            id: "u".into(),
            name: "alice".into(),
        };
        let other = Principal::User {
            id: "v".into(),
            name: "bob".into(),
        };
        assert!(authorize(&owner, &f, &p("a"), Op::Write).is_ok());
        assert!(matches!(
            authorize(&other, &f, &p("a"), Op::Read),
            Err(FabricError::NotFound)
        ));
        let read = share("pub", SharePermission::Read);
        assert!(authorize(&read, &f, &p("pub/x"), Op::Read).is_ok());
        assert!(matches!(
            authorize(&read, &f, &p("pub/x"), Op::Create),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            authorize(&read, &f, &p("public"), Op::Read),
            Err(FabricError::NotFound)
        ));
        assert!(matches!(
            authorize(&read, &f, &p(""), Op::Read),
            Err(FabricError::NotFound)
        ));
        let drop = share("in", SharePermission::Upload);
        assert!(authorize(&drop, &f, &p("in/new"), Op::Create).is_ok());
        assert!(matches!(
            authorize(&drop, &f, &p("in/new"), Op::Read),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            authorize(&drop, &f, &p("in/new"), Op::Write),
            Err(FabricError::Forbidden)
        ));
        let lan = Principal::LanMedia;
        assert!(matches!(
            authorize(&lan, &f, &p("a.mp4"), Op::Read),
            Err(FabricError::NotFound)
        ));
        let media = Folder {
            media: true,
            ..folder()
        };
        assert!(authorize(&lan, &media, &p("a.mp4"), Op::Read).is_ok());
        assert!(authorize(&lan, &media, &p("a.mp4"), Op::Content).is_ok());
        assert!(authorize(&lan, &media, &p("d/a.srt"), Op::Content).is_ok());
        for op in [Op::Create, Op::Write, Op::History] {
            assert!(authorize(&lan, &media, &p("a.mp4"), op).is_err());
        }
        // Listing any directory, but no bytes of what is not media.
        assert!(authorize(&lan, &media, &p("notes.html"), Op::Read).is_ok());
        assert!(authorize(&lan, &media, &p("notes.html"), Op::Content).is_err());
        assert!(authorize(&lan, &media, &p("id_rsa"), Op::Content).is_err());
        let rw = share("", SharePermission::ReadWrite);
        assert!(authorize(&rw, &f, &p("any/thing"), Op::Write).is_ok());
        assert!(authorize(&rw, &f, &p("any/thing"), Op::Content).is_ok());
        assert!(matches!(
            authorize(&rw, &f, &p(""), Op::Write),
            Err(FabricError::Forbidden)
        ));
        let rw_sub = share("pub", SharePermission::ReadWrite);
        assert!(authorize(&rw_sub, &f, &p("pub"), Op::Write).is_err());
        assert!(authorize(&rw_sub, &f, &p("pub/x"), Op::Write).is_ok());
        assert!(authorize(&read, &f, &p("pub/x"), Op::Content).is_ok());
        assert!(authorize(&drop, &f, &p("in/x"), Op::Content).is_err());
    }
}
