//! The fabric: Glow's resource model and everything that owns state.
//!
//! Users own folders; folders hold entries; entries have versions; deleted
//! things sit in the trash. [`Fabric`] is the one API every front calls, and
//! every call carries a [`Principal`] that [`access::authorize`] checks.
//!
//! This crate knows nothing about HTTP, WebDAV, SSH or UPnP: fronts translate
//! their protocols into these calls and map [`FabricError`] back.

pub mod access;
pub mod auth;
pub mod catalog;
mod copies;
mod error;
mod fabric;
pub mod files;
mod ids;
pub mod ignore;
pub mod media;
mod nodes;
pub mod path;
mod props;
mod records;
pub mod resource;
pub mod scan;
pub mod shares;
pub mod store;
pub mod sync;
pub mod thumbs;
mod tickets;
mod versions;
mod watch;

pub use access::{Op, Principal, SharePermission, ShareScope};
pub use copies::{CopiesBudget, CopiesUsage};
pub use error::{FabricError, Result};
pub use fabric::{Address, DEFAULT_MIN_FREE_SPACE, Fabric, FabricConfig, FolderOptions, Place};
pub use files::{
    FileBody, INLINE_LIMIT, OpenFile, Precondition, ReadHandle, SPARSE_ALLOWANCE, Upload,
    UploadWriter,
};
pub use ids::{Causality, ContentHash, NODE_KEY_FILE, NodeId, NodeKey, VersionVector};
pub use media::{MediaKind, is_servable_media, media_kind, media_mime};
pub use nodes::{
    KnownNode, LinkClass, LinkInfo, MAX_KNOWN_NODES, NODE_NAME_FILE, NodeState, NodeView,
    read_node_name,
};
pub use path::{RelPath, is_os_metadata};
pub use props::{Lock, Property, Quota};
pub use records::{
    DEFAULT_INVITE_TTL, FOLDER, GlowFolder, INVITE_SECRET_LEN, MAX_INVITE_TTL, MEMBER, Member,
    NodeStanding, Reach, RecordChange, SHARE, SharedRecord, USER,
};
pub use resource::{
    AppPassword, CopyPolicy, Entry, EntryKind, Folder, SMALL_FILE_LIMIT, SshKey, TrashItem, User,
    Version, WriteOutcome,
};
pub use scan::{NoProgress, ScanObserver};
pub use shares::{Share, ShareOptions};
