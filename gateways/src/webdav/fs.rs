//! `GlowDavFs`: dav-server's `GuardedFileSystem` over the fabric, with the
//! caller's [`Principal`] as credentials. The root lists the caller's
//! folders; below it, `/<folder>/<path>` maps to `user/folder/path`.
//! Writes go through [`fabric::Upload`], so a PUT becomes visible only when
//! it completes (atomically, with the old content kept as a version).

use super::error::to_fs;
use bytes::{Buf, Bytes};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsResult, FsStream,
    GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use fabric::{Address, Entry, Fabric, FileBody, Place, Precondition, Principal, Upload};
use futures_util::{FutureExt, stream};
use std::io::SeekFrom;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The WebDAV view of the fabric.
#[derive(Clone, Debug)]
pub struct GlowDavFs {
    fabric: Fabric,
    props_cache: PropsCache,
}

impl GlowDavFs {
    /// A file system over `fabric`.
    pub fn new(fabric: Fabric) -> Self {
        GlowDavFs {
            fabric,
            props_cache: PropsCache::default(),
        }
    }
}

impl GlowDavFs {
    /// Whether the folder of `addr` has any dead properties (cached for a
    /// moment).
    pub(super) async fn folder_has_props(&self, who: &Principal, addr: &Address) -> bool {
        self.props_cache.has(&self.fabric, who, addr).await
    }
}

/// Remembers for a moment whether a folder has any dead properties at all,
/// so that a PROPFIND of a big folder without any asks the catalog once,
/// not once per entry.
#[derive(Clone, Debug, Default)]
struct PropsCache(std::sync::Arc<std::sync::Mutex<HasProps>>);

/// (user, folder) -> (has properties, when that was read).
type HasProps = std::collections::HashMap<(String, String), (bool, std::time::Instant)>;

impl PropsCache {
    const FRESH: Duration = Duration::from_millis(500);

    async fn has(&self, fabric: &Fabric, who: &Principal, addr: &Address) -> bool {
        let key = (addr.user.clone(), addr.folder.clone());
        if let Some((has, at)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && at.elapsed() < Self::FRESH
        {
            return *has;
        }
        let has = fabric
            .folder_has_properties(who, addr)
            .await
            .unwrap_or(true);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (has, std::time::Instant::now()));
        has
    }

    fn forget(&self, addr: &Address) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(addr.user.clone(), addr.folder.clone()));
    }
}

/// Where a DAV path points in the caller's namespace (the fabric's one
/// mapping).
pub(super) fn target(path: &DavPath, who: &Principal) -> FsResult<Place> {
    let text = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    Place::of(who, text.split('/')).map_err(|_| FsError::Forbidden)
}

fn in_folder(path: &DavPath, who: &Principal) -> FsResult<Address> {
    match target(path, who)? {
        Place::Root => Err(FsError::Forbidden),
        Place::In(a) => Ok(a),
    }
}

/// Metadata of an entry (or of the virtual root).
#[derive(Clone, Debug)]
struct Meta {
    len: u64,
    modified: SystemTime,
    dir: bool,
    etag: Option<String>,
}

impl Meta {
    fn of(e: &Entry) -> Meta {
        Meta {
            len: e.size,
            modified: UNIX_EPOCH + Duration::from_nanos(e.mtime_ns.max(0) as u64),
            dir: e.is_dir(),
            etag: Some(e.etag().trim_matches('"').to_owned()),
        }
    }

    fn root() -> Meta {
        Meta {
            len: 0,
            modified: UNIX_EPOCH,
            dir: true,
            etag: None,
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn etag(&self) -> Option<String> {
        self.etag.clone()
    }
}

struct DirEntry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&'_ self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
}

/// An open file: reading from the fabric, or an upload in progress.
enum Handle {
    Read {
        meta: Meta,
        body: FileBody,
        pos: u64,
    },
    Write {
        upload: Option<Upload>,
        pos: u64,
        meta: Meta,
    },
}

/// dav-server's file handle.
struct GlowFile(Handle);

impl std::fmt::Debug for GlowFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GlowFile")
    }
}

impl DavFile for GlowFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        async move {
            let m: Box<dyn DavMetaData> = match &self.0 {
                Handle::Read { meta, .. } => Box::new(meta.clone()),
                Handle::Write { upload, meta, .. } => {
                    let mut m = meta.clone();
                    if let Some(u) = upload {
                        m.len = u.len().await.map_err(to_fs)?;
                    }
                    Box::new(m)
                }
            };
            Ok(m)
        }
        .boxed()
    }

    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            match &mut self.0 {
                Handle::Write {
                    upload: Some(u),
                    pos,
                    ..
                } => {
                    let n = buf.len() as u64;
                    u.write_at(*pos, buf).await.map_err(to_fs)?;
                    *pos += n;
                    Ok(())
                }
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            match &mut self.0 {
                Handle::Read {
                    body: FileBody::Inline(b),
                    pos,
                    ..
                } => {
                    let start = (*pos as usize).min(b.len());
                    let end = start.saturating_add(count).min(b.len());
                    *pos = end as u64;
                    Ok(b.slice(start..end))
                }
                Handle::Read {
                    body: FileBody::File(f),
                    pos,
                    ..
                } => {
                    let mut buf = vec![0u8; count];
                    let mut filled = 0;
                    while filled < count {
                        let n = f
                            .read(&mut buf[filled..])
                            .await
                            .map_err(|_| FsError::GeneralFailure)?;
                        if n == 0 {
                            break;
                        }
                        filled += n;
                    }
                    buf.truncate(filled);
                    *pos += filled as u64;
                    Ok(Bytes::from(buf))
                }
                _ => Err(FsError::Forbidden),
            }
        }
        .boxed()
    }

    fn seek(&'_ mut self, to: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let (len, pos) = match &mut self.0 {
                Handle::Read { meta, pos, .. } => (meta.len, pos),
                Handle::Write {
                    upload: Some(u),
                    pos,
                    ..
                } => (u.len().await.map_err(to_fs)?, pos),
                Handle::Write { .. } => return Err(FsError::GeneralFailure),
            };
            let new = match to {
                SeekFrom::Start(n) => n as i64,
                SeekFrom::End(d) => len as i64 + d,
                SeekFrom::Current(d) => *pos as i64 + d,
            };
            if new < 0 {
                return Err(FsError::GeneralFailure);
            }
            *pos = new as u64;
            if let Handle::Read {
                body: FileBody::File(f),
                ..
            } = &mut self.0
            {
                f.seek(SeekFrom::Start(new as u64))
                    .await
                    .map_err(|_| FsError::GeneralFailure)?;
            }
            Ok(new as u64)
        }
        .boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async move {
            if let Handle::Write { upload, meta, .. } = &mut self.0
                && let Some(u) = upload.take()
            {
                let out = u.commit().await.map_err(to_fs)?;
                *meta = Meta::of(&out.entry);
            }
            Ok(())
        }
        .boxed()
    }
}

impl GuardedFileSystem<Principal> for GlowDavFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        who: &'a Principal,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let addr = in_folder(path, who)?;
            if options.write || options.append || options.create || options.create_new {
                let pre = if options.create_new {
                    Precondition::Absent
                } else if !options.create {
                    Precondition::Exists
                } else {
                    Precondition::None
                };
                let keep = options.append || !options.truncate;
                let upload = self
                    .fabric
                    .begin_write(who, &addr, "webdav", pre, keep)
                    .await
                    .map_err(to_fs)?;
                let pos = if options.append {
                    upload.len().await.map_err(to_fs)?
                } else {
                    0
                };
                let meta = Meta {
                    len: 0,
                    modified: SystemTime::now(),
                    dir: false,
                    etag: None,
                };
                return Ok(Box::new(GlowFile(Handle::Write {
                    upload: Some(upload),
                    pos,
                    meta,
                })) as Box<dyn DavFile>);
            }
            let opened = self.fabric.open_file(who, &addr).await.map_err(to_fs)?;
            let meta = Meta::of(&opened.entry);
            Ok(Box::new(GlowFile(Handle::Read {
                meta,
                body: opened.body,
                pos: 0,
            })) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        who: &'a Principal,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let entries: Vec<DirEntry> = match target(path, who)? {
                Place::Root => self
                    .fabric
                    .folders(who, Some(who.actor()))
                    .await
                    .map_err(to_fs)?
                    .iter()
                    .map(|f| DirEntry {
                        name: f.name.clone(),
                        meta: Meta::root(),
                    })
                    .collect(),
                Place::In(addr) => self
                    .fabric
                    .list(who, &addr)
                    .await
                    .map_err(to_fs)?
                    .iter()
                    .map(|e| DirEntry {
                        name: e.name.clone(),
                        meta: Meta::of(e),
                    })
                    .collect(),
            };
            let s: FsStream<Box<dyn DavDirEntry>> = Box::pin(stream::iter(
                entries
                    .into_iter()
                    .map(|e| Ok(Box::new(e) as Box<dyn DavDirEntry>)),
            ));
            Ok(s)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Principal,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let m = match target(path, who)? {
                Place::Root => Meta::root(),
                Place::In(addr) => Meta::of(&self.fabric.stat(who, &addr).await.map_err(to_fs)?),
            };
            Ok(Box::new(m) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, who: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            let addr = in_folder(path, who)?;
            if addr.path.is_root() {
                return Err(FsError::Forbidden); // new folders are made with `glow folder add`
            }
            self.fabric
                .mkdir(who, &addr)
                .await
                .map(|_| ())
                .map_err(to_fs)
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, who: &'a Principal) -> FsFuture<'a, ()> {
        self.remove_file(path, who)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, who: &'a Principal) -> FsFuture<'a, ()> {
        async move {
            let addr = in_folder(path, who)?;
            self.fabric
                .delete(who, &addr, "webdav")
                .await
                .map(|_| ())
                .map_err(to_fs)
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        who: &'a Principal,
    ) -> FsFuture<'a, ()> {
        async move {
            let (a, b) = (in_folder(from, who)?, in_folder(to, who)?);
            self.fabric
                .rename(who, &a, &b, true, "webdav")
                .await
                .map_err(to_fs)
        }
        .boxed()
    }

    fn copy<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        who: &'a Principal,
    ) -> FsFuture<'a, ()> {
        async move {
            let (a, b) = (in_folder(from, who)?, in_folder(to, who)?);
            self.fabric
                .copy(who, &a, &b, true, "webdav")
                .await
                .map_err(to_fs)
        }
        .boxed()
    }

    fn get_quota<'a>(&'a self, who: &'a Principal) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            let q = self.fabric.quota(who).await.map_err(to_fs)?;
            Ok((q.used, q.available.map(|a| a.saturating_add(q.used))))
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Principal,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        async move {
            match target(path, who) {
                Ok(Place::In(addr)) => self.props_cache.has(&self.fabric, who, &addr).await,
                _ => false,
            }
        }
        .boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        who: &'a Principal,
    ) -> FsFuture<'a, Vec<(axum::http::StatusCode, DavProp)>> {
        async move {
            let addr = in_folder(path, who)?;
            let changes: Vec<(bool, fabric::Property)> = patch
                .iter()
                .map(|(set, p)| {
                    (
                        *set,
                        fabric::Property {
                            namespace: p.namespace.clone().unwrap_or_default(),
                            name: p.name.clone(),
                            prefix: p.prefix.clone(),
                            value: p.xml.clone(),
                        },
                    )
                })
                .collect();
            self.fabric
                .patch_properties(who, &addr, &changes)
                .await
                .map_err(to_fs)?;
            self.props_cache.forget(&addr);
            Ok(patch
                .into_iter()
                .map(|(_, p)| (axum::http::StatusCode::OK, DavProp { xml: None, ..p }))
                .collect())
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        who: &'a Principal,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let Place::In(addr) = target(path, who)? else {
                return Ok(Vec::new());
            };
            let props = self.fabric.properties(who, &addr).await.map_err(to_fs)?;
            Ok(props.into_iter().map(|p| to_prop(p, do_content)).collect())
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        who: &'a Principal,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let addr = in_folder(path, who)?;
            let ns = prop.namespace.clone().unwrap_or_default();
            let found = self
                .fabric
                .properties(who, &addr)
                .await
                .map_err(to_fs)?
                .into_iter()
                .find(|p| p.namespace == ns && p.name == prop.name)
                .ok_or(FsError::NotFound)?;
            found.value.ok_or(FsError::NotFound)
        }
        .boxed()
    }
}

fn to_prop(p: fabric::Property, with_value: bool) -> dav_server::fs::DavProp {
    dav_server::fs::DavProp {
        name: p.name,
        prefix: p.prefix,
        namespace: (!p.namespace.is_empty()).then_some(p.namespace),
        xml: if with_value { p.value } else { None },
    }
}
