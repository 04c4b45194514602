//! Storage on this node: the local replicas of folders (plain directories) and
//! the content-addressed blob store that keeps versions.

pub mod beneath;
pub mod blobs;
pub mod local;
pub mod locks;

pub use blobs::BlobStore;
