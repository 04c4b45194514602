//! Paths resolved by the kernel beneath a folder's root: every operation on a
//! folder goes through a [`Root`] (the folder's directory, opened) and
//! `openat2(2)` with `RESOLVE_BENEATH`, so that a symbolic link swapped in
//! between a check and a use can never lead outside the folder (or a share
//! link's subtree). Operations that change a name (write, rename, delete,
//! mkdir, attributes) act through the name's [`Parent`] directory with the
//! `*at` calls and never follow the name itself.
//!
//! Symbolic links that stay inside are followed, as before. The kernel
//! refuses absolute links under `RESOLVE_BENEATH` even when they point
//! inside; for those the path is resolved by name once, checked to stay
//! inside, and opened again beneath the root with what it resolved to (the
//! kernel still has the last word).
//!
//! Everything here is blocking and runs on the blocking pool.

pub use super::local::entry_from;
use crate::error::{FabricError, Result};
use crate::path::{RelPath, TEMP_PREFIX};
use crate::resource::{Entry, EntryKind};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, openat, openat2};
use rustix::io::Errno;
use std::fs::{self, File};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A folder's root directory (or a share link's subtree of it), opened.
/// Its methods take paths relative to the folder; a path outside the
/// subtree is not found.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// Where the opened directory is in the folder (the folder's root, or
    /// a share link's subtree).
    base: RelPath,
}

/// The directory holding a name, opened beneath a [`Root`], and the name.
#[derive(Debug)]
pub struct Parent {
    fd: OwnedFd,
    name: String,
}

/// How an `openat2` failure reads for Glow.
fn refused(e: Errno) -> FabricError {
    match e {
        Errno::NOENT | Errno::NOTDIR => FabricError::NotFound,
        // Out of the root (XDEV), a link where none may be (LOOP), a
        // magic link (the kernel refuses those too).
        Errno::XDEV | Errno::LOOP | Errno::PERM => FabricError::Forbidden,
        e => FabricError::Io(e.into()),
    }
}

fn io(e: Errno) -> FabricError {
    match e {
        Errno::NOENT => FabricError::NotFound,
        Errno::EXIST => FabricError::AlreadyExists,
        Errno::NOTEMPTY => FabricError::NotEmpty,
        Errno::NOSPC | Errno::DQUOT => FabricError::NoSpace,
        e => FabricError::Io(e.into()),
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens the directory at `path` (a folder's root, trusted: it was
    /// given by the node's operator).
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR => FabricError::NotFound,
            e => FabricError::Io(e.into()),
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            base: RelPath::root(),
        })
    }

    /// [`Root::open`] only if it needs no disk access: every component of
    /// `path` is in the kernel's lookup cache (`RESOLVE_CACHED`), so that it
    /// is fine on an async thread. `None` means "ask the blocking pool".
    pub fn open_cached(path: &Path) -> Option<Root> {
        let fd = openat2(
            rustix::fs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::CACHED,
        )
        .ok()?;
        Some(Root {
            fd,
            path: path.to_path_buf(),
            base: RelPath::root(),
        })
    }

    /// [`Root::open_file`] only if the lookup needs no disk access (see
    /// [`Root::open_cached`]); `None` for anything else, errors included,
    /// which the blocking path then gives properly.
    pub fn open_file_cached(&self, rel: &RelPath) -> Option<File> {
        let local = self.local(rel).ok()?;
        if local.is_root() {
            return None;
        }
        openat2(
            &self.fd,
            local.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            BENEATH.union(ResolveFlags::CACHED),
        )
        .ok()
        .map(File::from)
    }

    /// The regular file at `rel` itself (never through a link) below the
    /// folder at `path`: its directory, the file opened for reading and its
    /// metadata. [`FabricError::NotFound`] for anything that is not a
    /// regular file. For the scan and the copies, which look at the disk
    /// as it is.
    pub fn open_regular(path: &Path, rel: &RelPath) -> Result<(Parent, File, fs::Metadata)> {
        let parent = Root::open(path)?.parent(rel)?;
        if parent.standing()? != Standing::File {
            return Err(FabricError::NotFound);
        }
        let f = parent.open_file()?;
        let meta = f.metadata()?;
        Ok((parent, f, meta))
    }

    /// The folder at `path`, narrowed to `bound` (a share link's subtree)
    /// when that is a directory; a link to a file is bounded by its path
    /// alone (`authorize` lets it reach nothing else).
    pub fn for_scope(path: &Path, bound: Option<&RelPath>) -> Result<Root> {
        let root = Root::open(path)?;
        match bound {
            Some(b) if !b.is_root() => match root.narrow(b) {
                Ok(r) => Ok(r),
                Err(FabricError::WrongKind(_)) => Ok(root),
                Err(e) => Err(e),
            },
            _ => Ok(root),
        }
    }

    /// The root's path (for messages and for watching it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The subtree at `rel` as a root of its own (a share link's bound).
    /// [`FabricError::WrongKind`] when `rel` is a file.
    pub fn narrow(&self, rel: &RelPath) -> Result<Root> {
        if *rel == self.base {
            return Ok(Root {
                fd: self.fd.try_clone()?,
                path: self.path.clone(),
                base: self.base.clone(),
            });
        }
        let fd = self
            .resolve(rel, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| match e {
                FabricError::NotFound if self.metadata(rel).is_ok() => {
                    FabricError::WrongKind("not a directory")
                }
                e => e,
            })?;
        let inner = self.local(rel)?;
        Ok(Root {
            fd,
            path: inner.to_disk(&self.path),
            base: rel.clone(),
        })
    }

    /// `rel` (relative to the folder) relative to the opened directory.
    fn local(&self, rel: &RelPath) -> Result<RelPath> {
        if !rel.starts_with(&self.base) {
            return Err(FabricError::NotFound);
        }
        Ok(rel.rebase(&self.base, &RelPath::root()))
    }

    /// Opens `rel` below the root with `flags`, following links that stay
    /// inside.
    fn resolve(&self, rel: &RelPath, flags: OFlags) -> Result<OwnedFd> {
        let local = &self.local(rel)?;
        let at = if local.is_root() { "." } else { local.as_str() };
        let opened = match openat2(
            &self.fd,
            at,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::XDEV) => self.resolve_by_name(local, flags),
            Err(e) => Err(refused(e)),
        };
        // Below a share link's subtree, a way out is simply not found: the
        // rest of the folder is invisible to the link.
        match opened {
            Err(FabricError::Forbidden) if !self.base.is_root() => Err(FabricError::NotFound),
            other => other,
        }
    }

    /// An absolute symbolic link on the way: resolved by name, and if what
    /// it leads to is inside the root, opened again beneath it.
    fn resolve_by_name(&self, rel: &RelPath, flags: OFlags) -> Result<OwnedFd> {
        let root = fs::canonicalize(&self.path)?;
        let real = fs::canonicalize(rel.to_disk(&self.path)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FabricError::NotFound,
            _ => FabricError::Forbidden,
        })?;
        let inside = real
            .strip_prefix(&root)
            .map_err(|_| FabricError::Forbidden)?;
        let at = if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        };
        openat2(
            &self.fd,
            at,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        )
        .map_err(refused)
    }

    /// Opens the file at `rel` for reading (without blocking on a FIFO
    /// someone put in the folder; callers check the kind).
    pub fn open_file(&self, rel: &RelPath) -> Result<File> {
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    /// Metadata of what `rel` names (links inside followed).
    pub fn metadata(&self, rel: &RelPath) -> Result<fs::Metadata> {
        let fd = self.resolve(rel, OFlags::PATH)?;
        Ok(File::from(fd).metadata()?)
    }

    /// The entry at `rel`, named `name`.
    pub fn entry(&self, rel: &RelPath, name: String) -> Result<Entry> {
        Ok(entry_from(rel.clone(), name, &self.metadata(rel)?))
    }

    /// Lists the directory at `rel`: internal files, special files and
    /// links that lead outside the root are left out, as are names Glow
    /// cannot address (not UTF-8).
    pub fn list(&self, rel: &RelPath) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.list_each(rel, |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// [`Root::list`] one entry at a time, in directory order, for listings
    /// that are sent as they are read; `each` returns false to stop.
    pub fn list_each(&self, rel: &RelPath, mut each: impl FnMut(Entry) -> bool) -> Result<()> {
        let dir = self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        for item in rustix::fs::Dir::read_from(&dir).map_err(io)? {
            let item = item.map_err(io)?;
            let Ok(name) = item.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." || crate::path::is_internal_name(name) {
                continue;
            }
            let Ok(child) = rel.join(name) else {
                continue;
            };
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(_) => continue, // gone meanwhile
            };
            let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
            let entry = match ft {
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory => {
                    entry_from_stat(child, name.to_owned(), &st)
                }
                rustix::fs::FileType::Symlink => match self.metadata(&child) {
                    Ok(m) if m.is_file() || m.is_dir() => entry_from(child, name.to_owned(), &m),
                    _ => continue,
                },
                _ => continue,
            };
            if !each(entry) {
                break;
            }
        }
        Ok(())
    }

    /// The names of the regular files and directories in the directory at
    /// `rel`, for walks (symbolic links and special files left out, Glow's
    /// temp files too). A name that is not UTF-8 is an error: a walk that
    /// deletes or copies a tree must not drop it silently.
    pub fn list_names(&self, rel: &RelPath) -> Result<Vec<(String, EntryKind)>> {
        let dir = self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut out = Vec::new();
        for item in rustix::fs::Dir::read_from(&dir).map_err(io)? {
            let item = item.map_err(io)?;
            let raw = item.file_name();
            if raw.to_bytes() == b"." || raw.to_bytes() == b".." {
                continue;
            }
            let st = match rustix::fs::statat(&dir, raw, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(_) => continue,
            };
            let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::RegularFile => EntryKind::File,
                rustix::fs::FileType::Directory => EntryKind::Dir,
                _ => continue,
            };
            let Ok(name) = raw.to_str() else {
                return Err(FabricError::Invalid(format!(
                    "{rel} holds a name Glow cannot handle ({}); rename or remove it on disk first",
                    raw.to_string_lossy()
                )));
            };
            if !crate::path::is_internal_name(name) {
                out.push((name.to_owned(), kind));
            }
        }
        Ok(out)
    }

    /// The parent directory of `rel` (following links that stay inside)
    /// and its last name. A missing parent is [`FabricError::ParentMissing`].
    pub fn parent(&self, rel: &RelPath) -> Result<Parent> {
        if rel.is_root() || *rel == self.base {
            return Err(FabricError::Forbidden);
        }
        let fd = self
            .resolve(&rel.parent(), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| match e {
                FabricError::NotFound => FabricError::ParentMissing,
                e => e,
            })?;
        Ok(Parent {
            fd,
            name: rel.name().to_owned(),
        })
    }
}

/// What stands at a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Nothing.
    Nothing,
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link or a special file (never acted on through its name).
    Other,
}

impl Parent {
    /// The name in its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory, for calls of its own.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What stands at the name (not followed).
    pub fn standing(&self) -> Result<Standing> {
        match rustix::fs::statat(&self.fd, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::RegularFile => Standing::File,
                rustix::fs::FileType::Directory => Standing::Dir,
                _ => Standing::Other,
            }),
            Err(Errno::NOENT) => Ok(Standing::Nothing),
            Err(e) => Err(io(e)),
        }
    }

    /// Opens the file at the name for reading, never through a link.
    pub fn open_file(&self) -> Result<File> {
        self.open_name(OFlags::RDONLY | OFlags::NOFOLLOW)
    }

    /// Opens the name itself (a file or a directory) to change its
    /// attributes, never through a link.
    fn open_name(&self, flags: OFlags) -> Result<File> {
        let fd = openat(
            &self.fd,
            self.name.as_str(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => FabricError::Forbidden,
            e => io(e),
        })?;
        Ok(File::from(fd))
    }

    /// The entry at the name (not followed), as `rel`.
    pub fn entry(&self, rel: &RelPath) -> Result<Entry> {
        let st = rustix::fs::statat(&self.fd, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io)?;
        Ok(entry_from_stat(rel.clone(), self.name.clone(), &st))
    }

    /// Creates a new, invisible temp file beside the name, for an atomic
    /// write; returns its name.
    pub fn create_temp(&self) -> Result<(String, File)> {
        let b = crate::catalog::random_bytes::<8>();
        let tmp = format!("{TEMP_PREFIX}{}", crate::catalog::hex(&b));
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            // An SFTP handle may read back what it wrote.
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(io)?;
        Ok((tmp, File::from(fd)))
    }

    /// Opens (or makes) the temp file `name` beside the target: a
    /// transfer that resumes finds what it wrote before. `true`: it
    /// existed.
    pub fn open_temp_named(&self, name: &str) -> Result<(File, bool)> {
        if !crate::path::is_internal_name(name) {
            return Err(FabricError::Forbidden);
        }
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok((File::from(fd), true)),
            Err(Errno::NOENT) => {
                let fd = openat(
                    &self.fd,
                    name,
                    flags | OFlags::CREATE | OFlags::EXCL,
                    Mode::from_raw_mode(0o666),
                )
                .map_err(io)?;
                Ok((File::from(fd), false))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Removes a temp file made by [`Parent::create_temp`].
    pub fn remove_temp(&self, tmp: &str) {
        let _ = rustix::fs::unlinkat(&self.fd, tmp, AtFlags::empty());
    }

    /// Moves a finished temp file over the name and makes the rename
    /// durable. The old file's permissions carry over to the new one.
    pub fn replace_with(&self, tmp: &str, tmp_file: &File) -> Result<()> {
        if let Ok(st) = rustix::fs::statat(&self.fd, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            && rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        {
            let _ = rustix::fs::fchmod(tmp_file, Mode::from_raw_mode(st.st_mode & 0o7777));
        }
        rustix::fs::renameat(&self.fd, tmp, &self.fd, self.name.as_str()).map_err(io)?;
        self.sync();
        Ok(())
    }

    /// Makes a directory at the name.
    pub fn mkdir(&self) -> Result<()> {
        rustix::fs::mkdirat(&self.fd, self.name.as_str(), Mode::from_raw_mode(0o777))
            .map_err(io)?;
        self.sync();
        Ok(())
    }

    /// Removes the file, or the directory and everything in it, at the name
    /// (links inside are removed, never followed).
    pub fn remove(&self) -> Result<()> {
        match self.standing()? {
            Standing::Nothing => Err(FabricError::NotFound),
            Standing::Dir => {
                remove_tree(&self.fd, &self.name)?;
                self.sync();
                Ok(())
            }
            _ => {
                rustix::fs::unlinkat(&self.fd, self.name.as_str(), AtFlags::empty()).map_err(io)?;
                self.sync();
                Ok(())
            }
        }
    }

    /// Moves what stands at this name to `to`'s name, replacing a file
    /// there in one step. Across filesystems, the tree is copied beside the
    /// target under a temp name (links made again as links), renamed over
    /// it, and the original removed.
    pub fn rename_to(&self, to: &Parent) -> Result<()> {
        match rustix::fs::renameat(&self.fd, self.name.as_str(), &to.fd, to.name.as_str()) {
            Ok(()) => {
                to.sync();
                self.sync();
                Ok(())
            }
            Err(Errno::XDEV) => {
                let b = crate::catalog::random_bytes::<8>();
                let tmp = format!("{TEMP_PREFIX}{}", crate::catalog::hex(&b));
                if let Err(e) = copy_tree(&self.fd, &self.name, &to.fd, &tmp) {
                    let _ = remove_tree(&to.fd, &tmp).or_else(|_| {
                        rustix::fs::unlinkat(&to.fd, tmp.as_str(), AtFlags::empty()).map_err(io)
                    });
                    return Err(e);
                }
                rustix::fs::renameat(&to.fd, tmp.as_str(), &to.fd, to.name.as_str()).map_err(io)?;
                to.sync();
                self.remove()
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Sets permission bits and the modification time of the name (a file
    /// or a directory, never a link).
    pub fn set_attributes(
        &self,
        mode: Option<u32>,
        modified: Option<std::time::SystemTime>,
    ) -> Result<()> {
        let f = match self.standing()? {
            Standing::Dir => {
                self.open_name(OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)?
            }
            Standing::File => self.open_name(OFlags::RDONLY | OFlags::NOFOLLOW)?,
            Standing::Nothing => return Err(FabricError::NotFound),
            Standing::Other => return Err(FabricError::Forbidden),
        };
        if let Some(m) = mode {
            rustix::fs::fchmod(&f, Mode::from_raw_mode(m & 0o777)).map_err(io)?;
        }
        if let Some(t) = modified {
            f.set_modified(t)?;
        }
        Ok(())
    }

    /// fsyncs the directory, so that a change of a name in it survives a
    /// crash.
    pub fn sync(&self) {
        let _ = rustix::fs::fsync(&self.fd);
    }
}

/// Removes the directory `name` in `dir` and everything below it, through
/// descriptors (a link is removed, never followed).
fn remove_tree(dir: &OwnedFd, name: &str) -> Result<()> {
    let sub = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let mut names = Vec::new();
    for item in rustix::fs::Dir::read_from(&sub).map_err(io)? {
        let item = item.map_err(io)?;
        let n = item.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push((item.file_name().to_owned(), item.file_type()));
        }
    }
    for (n, ft) in names {
        let is_dir = match ft {
            rustix::fs::FileType::Directory => true,
            rustix::fs::FileType::Unknown => {
                rustix::fs::statat(&sub, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Directory
                })
            }
            _ => false,
        };
        if is_dir {
            let n = n
                .to_str()
                .map_err(|_| FabricError::Invalid("a name that is not UTF-8".into()))?;
            remove_tree(&sub, n)?;
        } else {
            rustix::fs::unlinkat(&sub, n.as_c_str(), AtFlags::empty()).map_err(io)?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(io)
}

/// Copies `name` in `from` to `to_name` in `to` (a move across
/// filesystems), as `mv` does: links made again as links (never followed:
/// one that leads out of the folder must not pull outside data in), special
/// files left out.
fn copy_tree(from: &OwnedFd, name: &str, to: &OwnedFd, to_name: &str) -> Result<()> {
    let st = rustix::fs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Symlink => {
            let target = rustix::fs::readlinkat(from, name, Vec::new()).map_err(io)?;
            rustix::fs::symlinkat(target.as_c_str(), to, to_name).map_err(io)?;
        }
        rustix::fs::FileType::Directory => {
            rustix::fs::mkdirat(to, to_name, Mode::from_raw_mode(st.st_mode & 0o7777))
                .map_err(io)?;
            let src = openat(
                from,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io)?;
            let dst = openat(
                to,
                to_name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io)?;
            for item in rustix::fs::Dir::read_from(&src).map_err(io)? {
                let item = item.map_err(io)?;
                let Ok(n) = item.file_name().to_str() else {
                    return Err(FabricError::Invalid(
                        "a name that is not UTF-8 cannot be moved; rename it on disk first".into(),
                    ));
                };
                if n != "." && n != ".." {
                    copy_tree(&src, n, &dst, n)?;
                }
            }
            let _ = rustix::fs::fsync(&dst);
        }
        rustix::fs::FileType::RegularFile => {
            let mut input = File::from(
                openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?,
            );
            let mut output = File::from(
                openat(
                    to,
                    to_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                )
                .map_err(io)?,
            );
            std::io::copy(&mut input, &mut output)?;
            output.sync_all()?;
        }
        _ => {}
    }
    Ok(())
}

/// An [`Entry`] from a `stat` (listing: one call per name).
fn entry_from_stat(rel: RelPath, name: String, st: &rustix::fs::Stat) -> Entry {
    let dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    Entry {
        path: rel,
        name,
        kind: if dir { EntryKind::Dir } else { EntryKind::File },
        size: if dir { 0 } else { st.st_size.max(0) as u64 },
        mtime_ns: st
            .st_mtime
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec as i64),
        inode: st.st_ino,
        mode: st.st_mode & 0o7777,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn links_inside_are_followed_and_links_out_are_refused() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(top.path().join("secret"), b"x").unwrap();
        fs::write(root.join("sub/a"), b"a").unwrap();
        symlink(top.path().join("secret"), root.join("out")).unwrap();
        symlink(root.join("sub"), root.join("in")).unwrap(); // absolute, inside
        symlink("sub", root.join("rel")).unwrap(); // relative, inside
        symlink(top.path(), root.join("updir")).unwrap();
        symlink("../secret", root.join("dotdot")).unwrap();
        let r = Root::open(&root).unwrap();
        let read = |rel: &str| -> Result<String> {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut r.open_file(&p(rel))?, &mut s)?;
            Ok(s)
        };
        assert_eq!(read("sub/a").unwrap(), "a");
        assert_eq!(read("in/a").unwrap(), "a");
        assert_eq!(read("rel/a").unwrap(), "a");
        for bad in ["out", "updir/secret", "dotdot"] {
            assert!(matches!(read(bad), Err(FabricError::Forbidden)), "{bad}");
        }
        assert!(matches!(read("nope"), Err(FabricError::NotFound)));
        // Changes act on names and never through links.
        assert!(matches!(
            r.parent(&p("updir/new")),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            r.parent(&p("nope/new")),
            Err(FabricError::ParentMissing)
        ));
        let out = r.parent(&p("out")).unwrap();
        assert_eq!(out.standing().unwrap(), Standing::Other);
        assert!(matches!(out.open_file(), Err(FabricError::Forbidden)));
        // Listing leaves out the links that lead outside.
        let mut names: Vec<String> = r
            .list(&RelPath::root())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, ["in", "rel", "sub"]);
        // A share link's bound: paths stay relative to the folder.
        let sub = Root::for_scope(&root, Some(&p("sub"))).unwrap();
        assert!(sub.open_file(&p("sub/a")).is_ok());
        assert_eq!(sub.list(&p("sub")).unwrap()[0].path, p("sub/a"));
        assert!(matches!(
            sub.open_file(&p("in/a")),
            Err(FabricError::NotFound)
        ));
        assert!(matches!(sub.parent(&p("sub")), Err(FabricError::Forbidden)));
        assert!(sub.parent(&p("sub/new")).is_ok());
        assert!(matches!(
            r.narrow(&p("sub/a")),
            Err(FabricError::WrongKind(_))
        ));
        assert!(Root::for_scope(&root, Some(&p("sub/a"))).is_ok());
    }

    #[test]
    fn moves_across_filesystems_copy_and_never_follow_links() {
        // /dev/shm is a filesystem of its own (tmpfs) on Linux.
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::write(root.join("d/sub/a.txt"), b"a").unwrap();
        fs::write(top.path().join("outside.txt"), b"outside").unwrap();
        symlink(top.path().join("outside.txt"), root.join("d/out")).unwrap();
        fs::write(other.path().join("f.txt"), b"old").unwrap();
        fs::write(root.join("f.txt"), b"new").unwrap();
        let here = Root::open(&root).unwrap();
        let there = Root::open(other.path()).unwrap();
        here.parent(&p("d"))
            .unwrap()
            .rename_to(&there.parent(&p("d")).unwrap())
            .unwrap();
        assert!(!root.join("d").exists());
        assert_eq!(fs::read(other.path().join("d/sub/a.txt")).unwrap(), b"a");
        let out = other.path().join("d/out");
        assert!(fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(&out).unwrap(), top.path().join("outside.txt"));
        // A file over a file, in one step.
        here.parent(&p("f.txt"))
            .unwrap()
            .rename_to(&there.parent(&p("f.txt")).unwrap())
            .unwrap();
        assert_eq!(fs::read(other.path().join("f.txt")).unwrap(), b"new");
        let left: Vec<_> = fs::read_dir(other.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temp file is left");
    }

    #[test]
    fn temps_replace_names_and_trees_go_whole() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(root.join("d/e/f"), b"f").unwrap();
        symlink(top.path(), root.join("d/link")).unwrap();
        let r = Root::open(&root).unwrap();
        let parent = r.parent(&p("d/new.txt")).unwrap();
        let (tmp, mut f) = parent.create_temp().unwrap();
        std::io::Write::write_all(&mut f, b"new").unwrap();
        parent.replace_with(&tmp, &f).unwrap();
        assert_eq!(fs::read(root.join("d/new.txt")).unwrap(), b"new");
        r.parent(&p("d")).unwrap().remove().unwrap();
        assert!(!root.join("d").exists());
        assert!(top.path().exists(), "the link was removed, not followed");
    }
}
