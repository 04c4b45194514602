//! Locks that hold across processes: the server, the `glow` CLI run beside
//! it (restore, purge) and, next, the sync engine all write into the same
//! folders and the same blob store.
//!
//! Each lock is an `flock(2)` on a file in the data dir, taken after an
//! in-process lock, so that tasks of one process queue fairly among
//! themselves and only one of them waits on the kernel. `flock` locks belong
//! to an open file, so a crashed process can never leave one held.

use crate::error::{FabricError, Result};
use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

fn io(e: rustix::io::Errno) -> FabricError {
    FabricError::Io(e.into())
}

/// An exclusive lock, one holder at a time in all processes.
#[derive(Debug)]
pub struct ExclusiveLock {
    path: PathBuf,
    local: Arc<tokio::sync::Mutex<Option<Arc<File>>>>,
}

/// Held while an [`ExclusiveLock`] is taken; dropping it releases the lock.
#[derive(Debug)]
pub struct ExclusiveGuard {
    file: Arc<File>,
    _local: tokio::sync::OwnedMutexGuard<Option<Arc<File>>>,
}

impl Drop for ExclusiveGuard {
    fn drop(&mut self) {
        let _ = flock(&*self.file, FlockOperation::Unlock);
    }
}

impl ExclusiveLock {
    /// The lock kept in the file at `path` (made when first taken).
    pub fn new(path: PathBuf) -> ExclusiveLock {
        ExclusiveLock {
            path,
            local: Arc::default(),
        }
    }

    /// Takes the lock: first in this process, then across processes
    /// (waiting off the async threads only when another process holds it).
    pub async fn lock(&self) -> Result<ExclusiveGuard> {
        let mut local = self.local.clone().lock_owned().await;
        let file = match &*local {
            Some(f) => f.clone(),
            None => {
                let path = self.path.clone();
                let f = Arc::new(crate::fabric::blocking(move || open_lock_file(&path)).await?);
                *local = Some(f.clone());
                f
            }
        };
        if flock(&*file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let f = file.clone();
            crate::fabric::blocking(move || flock(&*f, FlockOperation::LockExclusive).map_err(io))
                .await?;
        }
        Ok(ExclusiveGuard {
            file,
            _local: local,
        })
    }
}

/// A lock many may hold at once (shared) unless one holds it alone
/// (exclusive): the blob store's, where writers that refer to blobs share
/// it and garbage collection takes it alone.
#[derive(Debug)]
pub struct SharedLock {
    path: PathBuf,
    /// This process's shared holders, on one open file: the kernel lock is
    /// taken by the first and released by the last.
    shared: Arc<Mutex<(usize, Option<File>)>>,
}

/// Held while a [`SharedLock`] is shared.
#[derive(Debug)]
pub struct SharedGuard {
    shared: Arc<Mutex<(usize, Option<File>)>>,
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        if s.0 == 0
            && let Some(f) = &s.1
        {
            let _ = flock(f, FlockOperation::Unlock);
        }
    }
}

/// Held while a [`SharedLock`] is held alone.
#[derive(Debug)]
pub struct SoleGuard {
    _file: File,
}

impl SharedLock {
    /// The lock kept in the file at `path`.
    pub fn new(path: PathBuf) -> SharedLock {
        SharedLock {
            path,
            shared: Arc::default(),
        }
    }

    /// Shares the lock. Blocking (waits while someone holds it alone).
    pub fn share(&self) -> Result<SharedGuard> {
        self.share_with(FlockOperation::LockShared)?
            .ok_or_else(|| FabricError::Io(std::io::Error::other("lock not taken")))
    }

    /// Shares the lock if that needs no waiting; `None` if someone holds it
    /// alone. Never blocks on the kernel (fine on an async thread).
    pub fn try_share(&self) -> Result<Option<SharedGuard>> {
        self.share_with(FlockOperation::NonBlockingLockShared)
    }

    fn share_with(&self, op: FlockOperation) -> Result<Option<SharedGuard>> {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 == 0 {
            if s.1.is_none() {
                s.1 = Some(open_lock_file(&self.path)?);
            }
            let f = s.1.as_ref().expect("opened above");
            match flock(f, op) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(io(e)),
            }
        }
        s.0 += 1;
        Ok(Some(SharedGuard {
            shared: self.shared.clone(),
        }))
    }

    /// Takes the lock alone: waits until no holder in any process shares
    /// it (this process's own included). Blocking.
    pub fn alone(&self) -> Result<SoleGuard> {
        let file = open_lock_file(&self.path)?;
        flock(&file, FlockOperation::LockExclusive).map_err(io)?;
        Ok(SoleGuard { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exclusive_locks_hold_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/f.lock");
        // Two lock objects stand for two processes (two open files).
        let a = ExclusiveLock::new(path.clone());
        let b = ExclusiveLock::new(path);
        let held = a.lock().await.unwrap();
        let waiting = tokio::spawn(async move {
            let _g = b.lock().await.unwrap();
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the second holder waits");
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn the_sole_holder_waits_for_every_sharer() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Arc::new(SharedLock::new(dir.path().join("blobs.lock")));
        let one = lock.share().unwrap();
        let two = lock.share().unwrap();
        let l = lock.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let gc = std::thread::spawn(move || {
            let _g = l.alone().unwrap();
            tx.send(()).unwrap();
        });
        drop(one);
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "one sharer is left"
        );
        drop(two);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        gc.join().unwrap();
    }
}
