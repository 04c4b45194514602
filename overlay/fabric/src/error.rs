//! The fabric's one error type.
//!
//! Like dav-server's `FsError`, these are result codes more than errors: every
//! front maps each variant once onto its own protocol (HTTP status, SFTP status,
//! SOAP fault). The status each variant usually becomes is given in its doc.

use std::io;

/// Everything a fabric call can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    /// The path, folder or user does not exist, or the principal may not know
    /// that it exists (404).
    #[error("not found")]
    NotFound,
    /// The principal is known but may not do this (403).
    #[error("permission denied")]
    Forbidden,
    /// A path was malformed or tried to leave its folder (400).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The target exists and overwriting was not asked for (412 / 405).
    #[error("already exists")]
    AlreadyExists,
    /// A conditional request's condition did not hold (412).
    #[error("precondition failed")]
    PreconditionFailed,
    /// The parent of the target is missing or is not a directory (409).
    #[error("parent directory missing")]
    ParentMissing,
    /// A file operation was asked of a directory, or the reverse (409).
    #[error("{0}")]
    WrongKind(&'static str),
    /// A directory that must be empty is not (409).
    #[error("directory not empty")]
    NotEmpty,
    /// A bad argument from the caller, with a message meant for a person (400).
    #[error("{0}")]
    Invalid(String),
    /// Too many failed sign-ins; retry after this many seconds (429).
    #[error("too many failed attempts, retry in {0} s")]
    RateLimited(u64),
    /// The thing existed but is no more: a revoked, expired or used-up share
    /// link (410), with a reason for a person.
    #[error("{0}")]
    Gone(&'static str),
    /// Wrong user name or password (401).
    #[error("wrong user name or password")]
    BadCredentials,
    /// The disk is full or a quota is reached (507).
    #[error("no space left")]
    NoSpace,
    /// Any other I/O failure (500).
    #[error("I/O: {0}")]
    Io(io::Error),
    /// The catalog failed (500).
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    /// The catalog's migrations failed (500).
    #[error("catalog migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<io::Error> for FabricError {
    /// Errno is mapped onto result codes here, once, for every caller.
    fn from(err: io::Error) -> Self {
        use io::ErrorKind::*;
        match err.kind() {
            NotFound => FabricError::NotFound,
            PermissionDenied => FabricError::Forbidden,
            AlreadyExists => FabricError::AlreadyExists,
            DirectoryNotEmpty => FabricError::NotEmpty,
            NotADirectory => FabricError::ParentMissing,
            IsADirectory => FabricError::WrongKind("is a directory"),
            StorageFull | QuotaExceeded => FabricError::NoSpace,
            _ => FabricError::Io(err),
        }
    }
}

/// The fabric's result type.
pub type Result<T, E = FabricError> = std::result::Result<T, E>;
