//! The one mapping from fabric results to WebDAV's file-system results;
//! dav-server turns those into HTTP statuses.

use dav_server::fs::FsError;
use fabric::FabricError;

/// Maps a fabric error onto dav-server's result codes.
pub fn to_fs(e: FabricError) -> FsError {
    match e {
        FabricError::NotFound | FabricError::ParentMissing => FsError::NotFound,
        FabricError::Forbidden | FabricError::InvalidPath(_) | FabricError::Gone(_) => {
            FsError::Forbidden
        }
        FabricError::AlreadyExists | FabricError::PreconditionFailed => FsError::Exists,
        FabricError::NoSpace => FsError::InsufficientStorage,
        FabricError::WrongKind(_) | FabricError::NotEmpty | FabricError::Invalid(_) => {
            FsError::Forbidden
        }
        FabricError::RateLimited(_) | FabricError::BadCredentials => FsError::Forbidden,
        e @ (FabricError::Io(_) | FabricError::Catalog(_) | FabricError::Migrate(_)) => {
            tracing::error!("webdav: internal error: {e}");
            FsError::GeneralFailure
        }
    }
}
