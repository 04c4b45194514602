//! The resource model as plain data: users, folders, entries, versions, trash.
//!
//! These are what the fabric hands to fronts: POD types with public fields, no
//! behaviour, no references back into the catalog.

use crate::path::RelPath;

/// A user: one namespace of folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Stable id (random, text).
    pub id: String,
    /// Unique sign-in name; also the first segment of every address.
    pub name: String,
    /// Administrators may manage other users.
    pub is_admin: bool,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// A folder: a named tree owned by a user, replicated as a directory on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// Stable id (random, text).
    pub id: String,
    /// The owning user's id.
    pub owner_id: String,
    /// The owning user's name.
    pub owner: String,
    /// The folder's name inside its owner's namespace.
    pub name: String,
    /// The replica's directory on this node (canonical).
    pub path: std::path::PathBuf,
    /// Which files keep a copy of their current content in the blob store,
    /// so that a change made directly on disk can still be undone.
    pub copies: CopyPolicy,
    /// The most this folder's copies may take, in bytes (besides the node's
    /// budget).
    pub copy_budget: Option<u64>,
    /// Visible to the LAN media front (DLNA), which has no sign-in.
    pub media: bool,
    /// Highest sequence number handed to an entry of this folder.
    pub sequence: i64,
}

/// Which files of a folder keep a copy of their current content in the
/// version store, so that an edit made on disk behind Glow's back can still
/// be kept as a version. Writes through Glow are versioned whatever this
/// says (Glow reads the old content before it replaces it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CopyPolicy {
    /// No copies: only writes through Glow are versioned.
    Off,
    /// Files up to [`SMALL_FILE_LIMIT`] that are not media: documents,
    /// notes, code, what people edit in place. The default.
    #[default]
    Small,
    /// Every file, large and media ones included.
    All,
}

/// The largest file [`CopyPolicy::Small`] keeps a copy of.
pub const SMALL_FILE_LIMIT: u64 = 64 << 20;

impl CopyPolicy {
    /// The catalog's and the CLI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyPolicy::Off => "off",
            CopyPolicy::Small => "small",
            CopyPolicy::All => "all",
        }
    }

    /// Parses the catalog's and the CLI's spelling.
    pub fn parse(s: &str) -> Option<CopyPolicy> {
        match s {
            "off" => Some(CopyPolicy::Off),
            "small" => Some(CopyPolicy::Small),
            "all" => Some(CopyPolicy::All),
            _ => None,
        }
    }

    /// Whether a file named `name` of `size` bytes keeps a copy.
    pub fn covers(self, name: &str, size: u64) -> bool {
        if crate::path::is_os_metadata(name) {
            return false;
        }
        match self {
            CopyPolicy::Off => false,
            CopyPolicy::All => true,
            CopyPolicy::Small => {
                size <= SMALL_FILE_LIMIT && crate::media::media_kind(name).is_none()
            }
        }
    }

    /// In words, for the banner, `glow folder list` and the pages.
    pub fn describe(self) -> &'static str {
        match self {
            CopyPolicy::Off => "no copies (only changes made through Glow are versioned)",
            CopyPolicy::Small => "copies of files up to 64 MiB that are not media",
            CopyPolicy::All => "copies of every file",
        }
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

impl EntryKind {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
        }
    }

    /// Parses the catalog's spelling.
    pub fn parse(s: &str) -> EntryKind {
        if s == "dir" {
            EntryKind::Dir
        } else {
            EntryKind::File
        }
    }
}

/// A file or directory as seen now (from the disk, which is the truth for
/// what exists; the catalog adds hashes and history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside its folder (empty for the folder's root).
    pub path: RelPath,
    /// Last path component (the folder's name for its root).
    pub name: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number, for validators that must change on every rename-over.
    pub inode: u64,
    /// Unix permission bits (`0o644`), for fronts that show them (SFTP).
    pub mode: u32,
}

impl Entry {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// A strong validator that changes whenever the content may have: every
    /// write through Glow replaces the inode, and disk edits move the mtime.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}-{:x}\"", self.inode, self.mtime_ns, self.size)
    }
}

/// An earlier content of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Id to name it in restore.
    pub id: i64,
    /// Folder id.
    pub folder_id: String,
    /// Path of the file when the version was taken.
    pub path: RelPath,
    /// BLAKE3 of the content: the blob's name.
    pub hash: crate::ids::ContentHash,
    /// Size in bytes.
    pub size: u64,
    /// The content's modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// When it was replaced, milliseconds since the epoch.
    pub created_at: i64,
    /// Why it was kept: `overwrite`, `delete`, `disk-edit`, `disk-delete`.
    pub reason: String,
    /// Which front made the change (`http`, `cli`, `disk`, ...).
    pub front: String,
    /// Who made the change (user name, `system`, `disk`).
    pub actor: String,
}

/// Something deleted, restorable until purged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrashItem {
    /// Id to name it in restore and purge.
    pub id: i64,
    /// Folder id.
    pub folder_id: String,
    /// The folder's name.
    pub folder: String,
    /// The deleted path.
    pub path: RelPath,
    /// File or directory.
    pub kind: EntryKind,
    /// Files kept for it and their total size.
    pub files: u64,
    /// Total size of the files kept, in bytes.
    pub size: u64,
    /// When, milliseconds since the epoch.
    pub deleted_at: i64,
    /// Who.
    pub actor: String,
    /// Through which front.
    pub front: String,
}

/// An SSH public key of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKey {
    /// Key id.
    pub id: String,
    /// Algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The key in OpenSSH one-line form (without comment).
    pub public_key: String,
    /// SHA-256 fingerprint as OpenSSH prints it.
    pub fingerprint: String,
    /// The comment given with the key.
    pub comment: String,
}

/// An app password's public part (the secret is only shown once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPassword {
    /// Id.
    pub id: String,
    /// Label given at creation.
    pub label: String,
    /// Creation time, milliseconds since the epoch.
    pub created_at: i64,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// True if the file did not exist before.
    pub created: bool,
    /// The file as written.
    pub entry: Entry,
    /// BLAKE3 of the new content.
    pub hash: crate::ids::ContentHash,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
