//! The SFTP v3 protocol over one channel, answered from the fabric.
//!
//! Packets are decoded and encoded with russh-sftp's protocol types; the
//! loop around them is written here because russh-sftp's own server answers
//! one request at a time (read, handle, write, flush), while OpenSSH's
//! clients keep 64 reads or writes in flight. So this loop reads packets
//! continuously, runs READs and WRITEs concurrently (positional I/O on a
//! file opened once per handle), makes every other request wait for those
//! in flight (which keeps the order a client may rely on, e.g. CLOSE after
//! its WRITEs), and sends replies from a separate task, in request order:
//! the protocol allows any order, but OpenSSH's `scp` and `reput` compute
//! how much arrived from in-order acknowledgements.
//!
//! Writes go to an [`Upload`]: the new content becomes visible atomically
//! on CLOSE or `fsync@openssh.com`, with the old content kept as a version.
//! A session that ends with uploads still open (a dropped connection) saves
//! what arrived, so that `reput` can resume it; the content it replaced is
//! a version, so nothing is lost.

use super::error::Failure;
use bytes::{Bytes, BytesMut};
use fabric::{
    Address, Entry, Fabric, FabricError, Place, Precondition, Principal, ReadHandle, RelPath,
};
use fabric::{Upload, UploadWriter};
use russh_sftp::extensions::{
    FsyncExtension, HardlinkExtension, LimitsExtension, Statvfs, StatvfsExtension,
};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Largest packet accepted (OpenSSH's sftp-server: 256 KiB).
const MAX_PACKET: u32 = 256 * 1024;
/// Largest READ answered and WRITE accepted, leaving room for headers.
const MAX_DATA: u32 = MAX_PACKET - 1024;
/// Handles one session may hold open.
const MAX_HANDLES: usize = 256;
/// READs and WRITEs running at once per session.
const IN_FLIGHT: usize = 64;
/// Names per READDIR reply (as OpenSSH's sftp-server).
const DIR_BATCH: usize = 100;

/// Serves SFTP on `stream` for `who` until the client closes it; gives the
/// stream back so that the caller can end the channel properly.
pub(super) async fn run<S>(stream: S, fabric: Fabric, who: Principal) -> Option<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Reply>(IN_FLIGHT * 2);
    let writer = tokio::spawn(write_replies(wr, rx));
    let mut engine = Engine {
        fabric,
        who,
        tx,
        handles: HashMap::new(),
        next_handle: 1,
        tasks: JoinSet::new(),
        started: false,
    };
    loop {
        match read_packet(&mut rd).await {
            Ok(Some(packet)) => engine.handle(packet).await,
            Ok(None) => break,
            Err(why) => {
                tracing::debug!("sftp session ends: {why}");
                break;
            }
        }
    }
    engine.finish().await;
    drop(engine);
    let wr = writer.await.ok()??;
    Some(rd.unsplit(wr))
}

/// Reads one length-prefixed packet; `None` at a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(rd: &mut R) -> Result<Option<Bytes>, String> {
    let len = match rd.read_u32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    // A length that cannot be right leaves no way to find the next packet.
    if len == 0 || len > MAX_PACKET + 1024 {
        return Err(format!("bad packet length {len}"));
    }
    let mut buf = BytesMut::zeroed(len as usize);
    rd.read_exact(&mut buf)
        .await
        .map_err(|e| format!("truncated packet: {e}"))?;
    Ok(Some(buf.freeze()))
}

/// A reply to come, queued in request order.
type Reply = oneshot::Receiver<Bytes>;

/// Sends replies in the order of their requests, flushing when none are
/// waiting.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Reply>,
) -> Option<W> {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(reply) = next {
            // A reply whose sender vanished (a failed encode) is skipped.
            if let Ok(bytes) = reply.await {
                wr.write_all(&bytes).await.ok()?;
            }
            next = rx.try_recv().ok();
        }
        wr.flush().await.ok()?;
    }
    Some(wr)
}

fn encode(packet: Packet) -> Option<Bytes> {
    match Bytes::try_from(packet) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!("cannot encode an sftp reply: {e}");
            None
        }
    }
}

fn status(id: u32, code: StatusCode, message: &str) -> Packet {
    Packet::Status(Status {
        id,
        status_code: code,
        error_message: message.to_owned(),
        language_tag: "en".to_owned(),
    })
}

fn ok(id: u32) -> Packet {
    status(id, StatusCode::Ok, "ok")
}

fn failure(id: u32, f: Failure) -> Packet {
    status(id, f.code, &f.message)
}

/// What a handle refers to.
enum Open {
    /// A file opened for reading.
    Read { addr: Address, handle: ReadHandle },
    /// A file being written.
    Write(Writing),
    /// A directory listing, handed out in batches.
    Dir {
        addr: Option<Address>,
        rest: VecDeque<File>,
    },
}

/// What a READ reads from.
enum Source {
    File(ReadHandle),
    Upload(UploadWriter),
}

/// A file opened for writing.
struct Writing {
    addr: Address,
    /// `None` after an fsync committed it; the next write starts anew.
    upload: Option<Upload>,
    append: bool,
    /// Anything to save on close (writes, truncation, a new file).
    dirty: bool,
    /// Set by a WRITE that failed: the upload is then not saved.
    failed: Arc<AtomicBool>,
    /// Permission bits and mtime to set once the content is saved.
    mode: Option<u32>,
    mtime: Option<SystemTime>,
}

struct Engine {
    fabric: Fabric,
    who: Principal,
    tx: mpsc::Sender<Reply>,
    handles: HashMap<String, Open>,
    next_handle: u64,
    tasks: JoinSet<()>,
    started: bool,
}

impl Engine {
    async fn send(&self, packet: Packet) {
        let slot = self.slot().await;
        if let Some(b) = encode(packet) {
            let _ = slot.send(b);
        }
    }

    /// Reserves the next place in the reply order.
    async fn slot(&self) -> oneshot::Sender<Bytes> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(rx).await;
        tx
    }

    async fn handle(&mut self, raw: Bytes) {
        // The request id, to answer even a packet that does not decode.
        let id = if raw.len() >= 5 {
            u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]])
        } else {
            0
        };
        let packet = match Packet::try_from(&mut raw.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("undecodable sftp packet: {e}");
                return self
                    .send(status(id, StatusCode::BadMessage, "malformed packet"))
                    .await;
            }
        };
        if let Packet::Init(init) = packet {
            self.started = true;
            tracing::debug!(version = init.version, "sftp session starts");
            return self.send(Packet::Version(version())).await;
        }
        if !self.started {
            return self
                .send(status(id, StatusCode::BadMessage, "INIT first"))
                .await;
        }
        match packet {
            Packet::Read(r) => self.read(r.id, &r.handle, r.offset, r.len).await,
            Packet::Write(w) => self.write(w.id, &w.handle, w.offset, w.data).await,
            other => {
                // Everything else waits for the reads and writes before it.
                self.drain().await;
                let reply = self.serve(other).await.unwrap_or_else(|f| failure(id, f));
                self.send(reply).await;
            }
        }
    }

    /// Waits for every READ and WRITE in flight.
    async fn drain(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs `job` beside the loop, at most [`IN_FLIGHT`] at once.
    async fn spawn(&mut self, job: impl std::future::Future<Output = ()> + Send + 'static) {
        while self.tasks.len() >= IN_FLIGHT {
            self.tasks.join_next().await;
        }
        self.tasks.spawn(job);
    }

    /// The session is over: finish what is in flight and save uploads that
    /// were cut off, so that a client can resume them.
    async fn finish(&mut self) {
        self.drain().await;
        for (_, open) in std::mem::take(&mut self.handles) {
            if let Open::Write(w) = open
                && w.dirty
            {
                let addr = w.addr.to_string();
                match self.save(w).await {
                    Ok(()) => tracing::info!(path = %addr, "saved an interrupted sftp upload"),
                    Err(f) => {
                        tracing::debug!(path = %addr, "interrupted upload not saved: {}", f.message)
                    }
                }
            }
        }
    }

    async fn serve(&mut self, packet: Packet) -> Result<Packet, Failure> {
        match packet {
            Packet::Open(o) => self.open(o.id, &o.filename, o.pflags, o.attrs).await,
            Packet::Close(c) => self.close(c.id, &c.handle).await,
            Packet::Lstat(s) => self.stat(s.id, &s.path).await,
            Packet::Stat(s) => self.stat(s.id, &s.path).await,
            Packet::Fstat(s) => self.fstat(s.id, &s.handle).await,
            Packet::SetStat(s) => self.setstat(s.id, &s.path, s.attrs).await,
            Packet::FSetStat(s) => self.fsetstat(s.id, &s.handle, s.attrs).await,
            Packet::OpenDir(o) => self.opendir(o.id, &o.path).await,
            Packet::ReadDir(r) => self.readdir(r.id, &r.handle),
            Packet::Remove(r) => self.remove(r.id, &r.filename, false).await,
            Packet::RmDir(r) => self.remove(r.id, &r.path, true).await,
            Packet::MkDir(m) => self.mkdir(m.id, &m.path).await,
            Packet::RealPath(r) => Ok(realpath(r.id, &r.path)),
            Packet::Rename(r) => self.rename(r.id, &r.oldpath, &r.newpath, false).await,
            Packet::ReadLink(r) => {
                self.stat(r.id, &r.path).await?;
                Err(Failure::failed("not a symbolic link"))
            }
            Packet::Symlink(_) => Err(Failure::new(
                StatusCode::OpUnsupported,
                "symbolic links cannot be made here",
            )),
            Packet::Extended(e) => self.extended(e.id, &e.request, e.data).await,
            _ => Err(Failure::bad_message("not a request")),
        }
    }

    // ---- paths ------------------------------------------------------------

    fn place(&self, path: &str) -> Result<Place, Failure> {
        Ok(Place::of(&self.who, components(path))?)
    }

    /// A path that must name something inside a folder, not a folder itself.
    fn inside(&self, path: &str, what: &str) -> Result<Address, Failure> {
        match self.place(path)? {
            Place::In(a) if !a.path.is_root() => Ok(a),
            _ => Err(Failure::denied(what)),
        }
    }

    /// Makes what this session has written to `addr` (a file it has not
    /// closed yet) the file's content, as `fsync` would, before a request
    /// that acts on the file by its name. sshfs sends a file's CLOSE after
    /// the program's `close(2)` has returned, so an rsync that renames its
    /// temp file over the target may overtake it: the rename must move what
    /// was written.
    async fn settle(&mut self, addr: &Address) -> Result<(), Failure> {
        for open in self.handles.values_mut() {
            if let Open::Write(w) = open
                && (w.addr == *addr
                    || w.addr.path.starts_with(&addr.path) && w.addr.folder == addr.folder)
                && w.dirty
                && !w.failed.load(Ordering::Relaxed)
            {
                if let Some(u) = w.upload.take() {
                    u.commit().await?;
                }
                w.dirty = false;
            }
        }
        Ok(())
    }

    async fn entry(&self, addr: &Address) -> Result<Entry, Failure> {
        Ok(self.fabric.stat(&self.who, addr).await?)
    }

    // ---- requests ---------------------------------------------------------

    async fn stat(&self, id: u32, path: &str) -> Result<Packet, Failure> {
        let attrs = match self.place(path)? {
            Place::Root => root_attrs(),
            Place::In(a) => attrs_of(&self.entry(&a).await?),
        };
        Ok(Packet::Attrs(Attrs { id, attrs }))
    }

    async fn open(
        &mut self,
        id: u32,
        path: &str,
        flags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Packet, Failure> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Failure::failed("too many open files"));
        }
        let writing = flags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        );
        let top_level = || Failure::denied("the top level holds only folders; write inside one");
        let addr = match self.place(path)? {
            Place::In(a) if !a.path.is_root() => a,
            // A name at the top level: a folder, or nothing that can be made.
            Place::In(a) => {
                return Err(match self.fabric.stat(&self.who, &a).await {
                    Ok(_) => Failure::failed("is a directory"),
                    Err(_) if writing => top_level(),
                    Err(e) => e.into(),
                });
            }
            Place::Root if writing => return Err(top_level()),
            Place::Root => return Err(Failure::failed("is a directory")),
        };
        let open = if writing {
            let existing = match self.fabric.stat(&self.who, &addr).await {
                Ok(e) => Some(e),
                Err(FabricError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            if existing.as_ref().is_some_and(Entry::is_dir) {
                return Err(Failure::failed("is a directory"));
            }
            if flags.contains(OpenFlags::CREATE | OpenFlags::EXCLUDE) && existing.is_some() {
                return Err(Failure::failed("already exists"));
            }
            if !flags.contains(OpenFlags::CREATE) && existing.is_none() {
                return Err(Failure::no_such_file());
            }
            let truncate = flags.contains(OpenFlags::TRUNCATE);
            let upload = self
                .fabric
                .begin_write(&self.who, &addr, "sftp", Precondition::None, !truncate)
                .await?;
            Open::Write(Writing {
                dirty: truncate || existing.is_none(),
                mode: existing
                    .is_none()
                    .then_some(attrs.permissions)
                    .flatten()
                    .map(|m| m & 0o777),
                addr,
                upload: Some(upload),
                append: flags.contains(OpenFlags::APPEND),
                failed: Arc::new(AtomicBool::new(false)),
                mtime: None,
            })
        } else {
            let handle = self.fabric.open_read_handle(&self.who, &addr).await?;
            Open::Read { addr, handle }
        };
        Ok(Packet::Handle(Handle {
            id,
            handle: self.add_handle(open),
        }))
    }

    fn add_handle(&mut self, open: Open) -> String {
        let name = format!("{:x}", self.next_handle);
        self.next_handle += 1;
        self.handles.insert(name.clone(), open);
        name
    }

    async fn read(&mut self, id: u32, handle: &str, offset: u64, len: u32) {
        let len = len.min(MAX_DATA) as usize;
        let source = match self.handles.get_mut(handle) {
            Some(Open::Read { handle, .. }) => Source::File(handle.clone()),
            Some(Open::Write(w)) => match ensure_upload(&self.fabric, &self.who, w).await {
                Ok(u) => Source::Upload(u.writer()),
                Err(f) => return self.send(failure(id, f)).await,
            },
            Some(Open::Dir { .. }) => {
                return self
                    .send(failure(id, Failure::failed("is a directory")))
                    .await;
            }
            None => return self.send(failure(id, bad_handle())).await,
        };
        let slot = self.slot().await;
        self.spawn(async move {
            let got = match source {
                Source::File(h) => h.read_at(offset, len).await,
                Source::Upload(w) => w.read_at(offset, len).await,
            };
            let reply = match got {
                Ok(data) if data.is_empty() => failure(id, Failure::eof()),
                Ok(data) => Packet::Data(Data {
                    id,
                    data: data.to_vec(),
                }),
                Err(e) => failure(id, e.into()),
            };
            if let Some(b) = encode(reply) {
                let _ = slot.send(b);
            }
        })
        .await;
    }

    async fn write(&mut self, id: u32, handle: &str, offset: u64, data: Vec<u8>) {
        let Some(Open::Write(w)) = self.handles.get_mut(handle) else {
            let f = if self.handles.contains_key(handle) {
                Failure::denied("not open for writing")
            } else {
                bad_handle()
            };
            return self.send(failure(id, f)).await;
        };
        let append = w.append;
        let failed = w.failed.clone();
        let data = Bytes::from(data);
        let writer = match ensure_upload(&self.fabric, &self.who, w).await {
            Ok(u) => {
                // In request order, before the writes run side by side.
                // (An append lands wherever the end is: not in sequence.)
                if let Err(e) = u.note_write(if append { u64::MAX } else { offset }, &data) {
                    // A refused write (no space) is a failed one: the file
                    // is left as it was, even when the session ends.
                    failed.store(true, Ordering::Relaxed);
                    return self.send(failure(id, e.into())).await;
                }
                u.writer()
            }
            Err(f) => return self.send(failure(id, f)).await,
        };
        w.dirty = true;
        let slot = self.slot().await;
        let job = async move {
            // Appends land at the end whatever the offset (SFTP v3).
            let done = if append {
                writer.append(data).await
            } else {
                writer.write_at(offset, data).await
            };
            let reply = match done {
                Ok(()) => ok(id),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    failure(id, e.into())
                }
            };
            if let Some(b) = encode(reply) {
                let _ = slot.send(b);
            }
        };
        if append {
            // Appends in order, one at a time.
            self.drain().await;
            job.await;
        } else {
            self.spawn(job).await;
        }
    }

    async fn close(&mut self, id: u32, handle: &str) -> Result<Packet, Failure> {
        match self.handles.remove(handle) {
            None => Err(bad_handle()),
            Some(Open::Write(w)) => {
                self.save(w).await?;
                Ok(ok(id))
            }
            Some(_) => Ok(ok(id)),
        }
    }

    /// Saves a written file: its content atomically, then its attributes.
    async fn save(&self, mut w: Writing) -> Result<(), Failure> {
        if w.failed.load(Ordering::Relaxed) {
            return Err(Failure::failed(
                "an earlier write failed; the file was left as it was",
            ));
        }
        if let Some(u) = w.upload.take()
            && w.dirty
        {
            u.commit().await?;
        }
        if w.mode.is_some() || w.mtime.is_some() {
            self.fabric
                .set_attributes(&self.who, &w.addr, w.mode, w.mtime)
                .await?;
        }
        Ok(())
    }

    async fn fstat(&mut self, id: u32, handle: &str) -> Result<Packet, Failure> {
        let attrs = match self.handles.get(handle) {
            None => return Err(bad_handle()),
            Some(Open::Read { handle, .. }) => attrs_of(handle.entry()),
            Some(Open::Dir { addr: None, .. }) => root_attrs(),
            Some(Open::Dir { addr: Some(a), .. }) => attrs_of(&self.entry(a).await?),
            Some(Open::Write(w)) => {
                let mut attrs = match self.fabric.stat(&self.who, &w.addr).await {
                    Ok(e) => attrs_of(&e),
                    Err(_) => new_file_attrs(),
                };
                if let Some(u) = &w.upload {
                    attrs.size = Some(u.len().await?);
                }
                attrs
            }
        };
        Ok(Packet::Attrs(Attrs { id, attrs }))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: &str,
        attrs: FileAttributes,
    ) -> Result<Packet, Failure> {
        let addr = match self.place(path)? {
            Place::Root => return Err(Failure::denied("the top level cannot be changed")),
            Place::In(a) => a,
        };
        self.settle(&addr).await?;
        if let Some(size) = attrs.size {
            let mut w = Writing {
                upload: Some(
                    self.fabric
                        .begin_write(&self.who, &addr, "sftp", Precondition::Exists, true)
                        .await?,
                ),
                addr: addr.clone(),
                append: false,
                dirty: true,
                failed: Arc::new(AtomicBool::new(false)),
                mode: None,
                mtime: None,
            };
            if let Some(u) = &mut w.upload {
                u.set_len(size).await?;
            }
            self.save(w).await?;
        }
        let (mode, mtime) = wanted_attributes(&attrs);
        if mode.is_some() || mtime.is_some() {
            self.fabric
                .set_attributes(&self.who, &addr, mode, mtime)
                .await?;
        }
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: &str,
        attrs: FileAttributes,
    ) -> Result<Packet, Failure> {
        let (mode, mtime) = wanted_attributes(&attrs);
        let addr = match self.handles.get_mut(handle) {
            None => return Err(bad_handle()),
            Some(Open::Write(w)) => {
                if let Some(size) = attrs.size {
                    ensure_upload(&self.fabric, &self.who, w)
                        .await?
                        .set_len(size)
                        .await?;
                    w.dirty = true;
                }
                // Applied once the content is saved (the file is replaced).
                w.mode = mode.or(w.mode);
                w.mtime = mtime.or(w.mtime);
                return Ok(ok(id));
            }
            Some(Open::Read { addr, .. })
            | Some(Open::Dir {
                addr: Some(addr), ..
            }) => addr.clone(),
            Some(Open::Dir { addr: None, .. }) => {
                return Err(Failure::denied("the top level cannot be changed"));
            }
        };
        if attrs.size.is_some() {
            return Err(Failure::denied("not open for writing"));
        }
        if mode.is_some() || mtime.is_some() {
            self.fabric
                .set_attributes(&self.who, &addr, mode, mtime)
                .await?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: &str) -> Result<Packet, Failure> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Failure::failed("too many open files"));
        }
        let owner = self.who.actor().to_owned();
        let (addr, entries) = match self.place(path)? {
            Place::Root => {
                let mut entries = Vec::new();
                for f in self.fabric.folders(&self.who, Some(&owner)).await? {
                    let a = Address::new(&owner, &f.name, RelPath::root());
                    if let Ok(e) = self.fabric.stat(&self.who, &a).await {
                        entries.push(e);
                    }
                }
                (None, entries)
            }
            Place::In(a) => {
                if !self.entry(&a).await?.is_dir() {
                    return Err(Failure::failed("not a directory"));
                }
                let list = self.fabric.list(&self.who, &a).await?;
                (Some(a), list)
            }
        };
        let now = SystemTime::now();
        let rest = entries
            .iter()
            .map(|e| File {
                filename: e.name.clone(),
                longname: longname(e, &owner, now),
                attrs: attrs_of(e),
            })
            .collect();
        Ok(Packet::Handle(Handle {
            id,
            handle: self.add_handle(Open::Dir { addr, rest }),
        }))
    }

    fn readdir(&mut self, id: u32, handle: &str) -> Result<Packet, Failure> {
        let Some(Open::Dir { rest, .. }) = self.handles.get_mut(handle) else {
            return Err(bad_handle());
        };
        if rest.is_empty() {
            return Err(Failure::eof());
        }
        let n = rest.len().min(DIR_BATCH);
        Ok(Packet::Name(Name {
            id,
            files: rest.drain(..n).collect(),
        }))
    }

    async fn remove(&mut self, id: u32, path: &str, dir: bool) -> Result<Packet, Failure> {
        let addr = self.inside(
            path,
            "folders are removed with `glow folder remove`, not over SFTP",
        )?;
        self.settle(&addr).await?;
        let entry = self.entry(&addr).await?;
        match (dir, entry.is_dir()) {
            (false, true) => return Err(Failure::failed("is a directory")),
            (true, false) => return Err(Failure::failed("not a directory")),
            (true, true) if !self.fabric.list(&self.who, &addr).await?.is_empty() => {
                return Err(Failure::failed("directory not empty"));
            }
            _ => {}
        }
        self.fabric.delete(&self.who, &addr, "sftp").await?;
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: &str) -> Result<Packet, Failure> {
        let addr = self.inside(
            path,
            "new top-level folders are made with `glow folder add`",
        )?;
        self.fabric.mkdir(&self.who, &addr).await?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<Packet, Failure> {
        let what = "folders are renamed with `glow folder`, not over SFTP";
        let (a, b) = (self.inside(from, what)?, self.inside(to, what)?);
        self.settle(&a).await?;
        self.settle(&b).await?;
        self.fabric
            .rename(&self.who, &a, &b, overwrite, "sftp")
            .await?;
        // Handles still open follow the file, as a descriptor would.
        for open in self.handles.values_mut() {
            if let Open::Write(w) = open
                && w.addr.folder == a.folder
                && w.addr.path.starts_with(&a.path)
            {
                w.addr = b.with_path(w.addr.path.rebase(&a.path, &b.path));
            }
        }
        Ok(ok(id))
    }

    async fn extended(&mut self, id: u32, request: &str, data: Vec<u8>) -> Result<Packet, Failure> {
        let mut data = Bytes::from(data);
        let reply = |value: Result<Bytes, _>| -> Result<Packet, Failure> {
            let data = value.map_err(|_| Failure::failed("cannot encode reply"))?;
            Ok(Packet::ExtendedReply(ExtendedReply {
                id,
                data: data.to_vec(),
            }))
        };
        let malformed = |_| Failure::bad_message("malformed extended request");
        match request {
            "posix-rename@openssh.com" => {
                let r: HardlinkExtension =
                    russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                self.rename(id, &r.oldpath, &r.newpath, true).await
            }
            "statvfs@openssh.com" => {
                let r: StatvfsExtension =
                    russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                if let Place::In(a) = self.place(&r.path)? {
                    self.entry(&a).await?;
                }
                reply(russh_sftp::ser::to_bytes(&self.statvfs().await?))
            }
            "fstatvfs@openssh.com" => {
                let r: FsyncExtension = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                if !self.handles.contains_key(&r.handle) {
                    return Err(bad_handle());
                }
                reply(russh_sftp::ser::to_bytes(&self.statvfs().await?))
            }
            "fsync@openssh.com" => {
                let r: FsyncExtension = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                match self.handles.get_mut(&r.handle) {
                    None => Err(bad_handle()),
                    Some(Open::Write(w)) => {
                        if w.failed.load(Ordering::Relaxed) {
                            return Err(Failure::failed("an earlier write failed"));
                        }
                        // The content so far becomes the file's; later writes
                        // start a new upload from it.
                        if let Some(u) = w.upload.take()
                            && w.dirty
                        {
                            u.commit().await?;
                        }
                        w.dirty = false;
                        Ok(ok(id))
                    }
                    Some(_) => Ok(ok(id)),
                }
            }
            "limits@openssh.com" => reply(russh_sftp::ser::to_bytes(&LimitsExtension {
                max_packet_len: MAX_PACKET as u64,
                max_read_len: MAX_DATA as u64,
                max_write_len: MAX_DATA as u64,
                max_open_handles: MAX_HANDLES as u64,
            })),
            other => Err(Failure::new(
                StatusCode::OpUnsupported,
                format!("{other} is not supported"),
            )),
        }
    }

    async fn statvfs(&self) -> Result<Statvfs, Failure> {
        const BLOCK: u64 = 4096;
        let q = self.fabric.quota(&self.who).await?;
        let free = q.available.unwrap_or(0) / BLOCK;
        Ok(Statvfs {
            block_size: BLOCK,
            fragment_size: BLOCK,
            blocks: q.used / BLOCK + free,
            blocks_free: free,
            blocks_avail: free,
            inodes: 0,
            inodes_free: 0,
            inodes_avail: 0,
            fs_id: 0,
            flags: 0,
            name_max: 255,
        })
    }
}

/// The upload behind a write handle, starting a new one (from the saved
/// content) after an fsync.
async fn ensure_upload<'w>(
    fabric: &Fabric,
    who: &Principal,
    w: &'w mut Writing,
) -> Result<&'w mut Upload, Failure> {
    if w.upload.is_none() {
        w.upload = Some(
            fabric
                .begin_write(who, &w.addr, "sftp", Precondition::None, true)
                .await?,
        );
    }
    Ok(w.upload.as_mut().expect("just set"))
}

fn bad_handle() -> Failure {
    Failure::failed("invalid handle")
}

/// The extensions this server answers (OpenSSH's names and versions).
fn version() -> Version {
    let extensions = [
        ("posix-rename@openssh.com", "1"),
        ("statvfs@openssh.com", "2"),
        ("fstatvfs@openssh.com", "2"),
        ("fsync@openssh.com", "1"),
        ("limits@openssh.com", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Version {
        version: russh_sftp::protocol::VERSION,
        extensions,
    }
}

/// The components of a path after resolving `.` and `..` against `/` (the
/// user's namespace is the whole world: `..` at the top stays there).
fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

fn realpath(id: u32, path: &str) -> Packet {
    let full = format!("/{}", components(path).join("/"));
    Packet::Name(Name {
        id,
        files: vec![File {
            filename: full.clone(),
            longname: full,
            attrs: FileAttributes::default(),
        }],
    })
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

fn unix_secs(mtime_ns: i64) -> u32 {
    (mtime_ns.max(0) / 1_000_000_000).min(u32::MAX as i64) as u32
}

fn attrs_of(e: &Entry) -> FileAttributes {
    let kind = if e.is_dir() { S_IFDIR } else { S_IFREG };
    let secs = unix_secs(e.mtime_ns);
    FileAttributes {
        size: Some(e.size),
        permissions: Some(kind | (e.mode & 0o7777)),
        atime: Some(secs),
        mtime: Some(secs),
        ..FileAttributes::default()
    }
}

fn root_attrs() -> FileAttributes {
    FileAttributes {
        size: Some(0),
        permissions: Some(S_IFDIR | 0o555),
        atime: Some(0),
        mtime: Some(0),
        ..FileAttributes::default()
    }
}

fn new_file_attrs() -> FileAttributes {
    FileAttributes {
        size: Some(0),
        permissions: Some(S_IFREG | 0o644),
        ..FileAttributes::default()
    }
}

/// The permission bits and mtime a SETSTAT asks for (ownership is ignored:
/// every file belongs to the signed-in user).
fn wanted_attributes(a: &FileAttributes) -> (Option<u32>, Option<SystemTime>) {
    (
        a.permissions.map(|p| p & 0o777),
        a.mtime
            .map(|s| UNIX_EPOCH + Duration::from_secs(u64::from(s))),
    )
}

/// A line like `ls -l` prints, which OpenSSH's `sftp` shows as it is.
fn longname(e: &Entry, owner: &str, now: SystemTime) -> String {
    let mut perms = String::with_capacity(10);
    perms.push(if e.is_dir() { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 0o7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let secs = unix_secs(e.mtime_ns);
    let when =
        chrono::DateTime::<chrono::Utc>::from_timestamp(i64::from(secs), 0).unwrap_or_default();
    let recent = now
        .duration_since(UNIX_EPOCH + Duration::from_secs(u64::from(secs)))
        .is_ok_and(|age| age < Duration::from_secs(182 * 24 * 3600));
    let date = if recent {
        when.format("%b %e %H:%M")
    } else {
        when.format("%b %e  %Y")
    };
    format!(
        "{perms}    1 {owner:<8} {owner:<8} {size:>8} {date} {name}",
        size = e.size,
        name = e.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use std::sync::OnceLock;
    use tokio::io::AsyncReadExt;

    /// A fabric with user alice and her folder `docs`, beside a file that
    /// no request may touch; shared by every fuzzed session.
    struct World {
        rt: tokio::runtime::Runtime,
        fabric: Fabric,
        alice: Principal,
        tmp: tempfile::TempDir,
    }

    fn world() -> &'static World {
        static W: OnceLock<World> = OnceLock::new();
        W.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(tmp.path().join("docs/d")).unwrap();
            std::fs::write(tmp.path().join("docs/a.txt"), b"alpha").unwrap();
            std::fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
            let (fabric, alice) = rt.block_on(async {
                let fabric = Fabric::open(fabric::FabricConfig::new(tmp.path().join("data")))
                    .await
                    .unwrap();
                let u = fabric
                    .create_user("alice", "alice-password", false)
                    .await
                    .unwrap();
                fabric
                    .add_folder(
                        "alice",
                        "docs",
                        &tmp.path().join("docs"),
                        Default::default(),
                    )
                    .await
                    .unwrap();
                (
                    fabric,
                    Principal::User {
                        id: u.id,
                        name: u.name,
                    },
                )
            });
            World {
                rt,
                fabric,
                alice,
                tmp,
            }
        })
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    fn path() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"/".to_vec()),
            Just(b"/docs".to_vec()),
            Just(b"/docs/a.txt".to_vec()),
            Just(b"/docs/new.txt".to_vec()),
            Just(b"/docs/d".to_vec()),
            Just(b"/docs/d/../../..".to_vec()),
            Just(b"../../secret.txt".to_vec()),
            Just(b"/docs/../../secret.txt".to_vec()),
            Just(b"/docs/.glow-tmp-0".to_vec()),
            Just(b"/other/x".to_vec()),
            Just(Vec::new()),
            prop::collection::vec(any::<u8>(), 0..24),
        ]
        .prop_map(|p| string(&p))
    }

    fn handle() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just("1"), Just("2"), Just("3"), Just("zz"), Just("")]
            .prop_map(|h| string(h.as_bytes()))
    }

    fn u64_() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(4096),
            Just(1 << 40),
            Just(u64::MAX),
            any::<u64>()
        ]
    }

    fn u32_() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0), Just(1), Just(32768), Just(u32::MAX), any::<u32>()]
    }

    fn attrs() -> impl Strategy<Value = Vec<u8>> {
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(flags, rest)| {
            let mut v = (flags & 0x8000_000f).to_be_bytes().to_vec();
            v.extend(rest);
            v
        })
    }

    /// One request as a client could send it (or nearly).
    fn packet() -> impl Strategy<Value = Vec<u8>> {
        let id = any::<u32>();
        let body =
            prop_oneof![
                (path(), u32_(), attrs()).prop_map(|(p, f, a)| [
                    vec![3],
                    p,
                    f.to_be_bytes().to_vec(),
                    a
                ]
                .concat()),
                handle().prop_map(|h| [vec![4], h].concat()),
                (handle(), u64_(), u32_()).prop_map(|(h, o, l)| [
                    vec![5],
                    h,
                    o.to_be_bytes().to_vec(),
                    l.to_be_bytes().to_vec()
                ]
                .concat()),
                (handle(), u64_(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(
                    |(h, o, d)| [vec![6], h, o.to_be_bytes().to_vec(), string(&d)].concat()
                ),
                (
                    prop::sample::select(vec![7u8, 11, 13, 15, 16, 17, 19]),
                    path()
                )
                    .prop_map(|(t, p)| [vec![t], p].concat()),
                (prop::sample::select(vec![8u8, 12]), handle())
                    .prop_map(|(t, h)| [vec![t], h].concat()),
                (prop::sample::select(vec![9u8, 14]), path(), attrs()).prop_map(|(t, p, a)| [
                    vec![t],
                    p,
                    a
                ]
                .concat()),
                (handle(), attrs()).prop_map(|(h, a)| [vec![10], h, a].concat()),
                (prop::sample::select(vec![18u8, 20]), path(), path()).prop_map(|(t, a, b)| [
                    vec![t],
                    a,
                    b
                ]
                .concat()),
                (
                    prop::sample::select(vec![
                        "posix-rename@openssh.com",
                        "statvfs@openssh.com",
                        "fstatvfs@openssh.com",
                        "fsync@openssh.com",
                        "limits@openssh.com",
                        "hardlink@openssh.com",
                        "x"
                    ]),
                    prop::collection::vec(any::<u8>(), 0..40)
                )
                    .prop_map(|(n, d)| [vec![200], string(n.as_bytes()), d].concat()),
            ];
        (id, body, prop::option::of(any::<(usize, u8)>())).prop_map(|(id, body, flip)| {
            let mut p = vec![body[0]];
            p.extend(id.to_be_bytes());
            p.extend(&body[1..]);
            if let Some((i, b)) = flip {
                let i = i % p.len();
                p[i] ^= b;
            }
            p
        })
    }

    /// Runs one session: INIT, the packets, end of input. The engine must
    /// answer in well-formed packets and end, without a panic or a hang.
    async fn session(packets: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
        let w = world();
        let (client, server) = tokio::io::duplex(1 << 20);
        let engine = tokio::spawn(run(server, w.fabric.clone(), w.alice.clone()));
        let (mut rd, mut wr) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = rd.read_to_end(&mut all).await;
            all
        });
        let mut input = Vec::new();
        for p in std::iter::once(vec![1, 0, 0, 0, 3]).chain(packets) {
            input.extend((p.len() as u32).to_be_bytes());
            input.extend(p);
        }
        wr.write_all(&input).await.map_err(|e| e.to_string())?;
        wr.shutdown().await.map_err(|e| e.to_string())?;
        let limit = std::time::Duration::from_secs(30);
        tokio::time::timeout(limit, engine)
            .await
            .map_err(|_| "the engine hung".to_owned())?
            .map_err(|e| format!("the engine panicked: {e}"))?;
        drop(wr);
        tokio::time::timeout(limit, reader)
            .await
            .map_err(|_| "the replies never ended".to_owned())?
            .map_err(|e| e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Random sessions of nearly valid packets: every reply is a
        /// well-formed packet, the session ends, and nothing outside the
        /// folder changes.
        #[test]
        fn fuzzed_sessions_answer_and_stay_in_the_folder(
            packets in prop::collection::vec(
                prop_oneof![4 => packet(), 1 => prop::collection::vec(any::<u8>(), 1..32)],
                1..24,
            )
        ) {
            let w = world();
            let out = w.rt.block_on(session(packets));
            let out = out.map_err(TestCaseError::fail)?;
            let mut rest = &out[..];
            prop_assert!(rest.len() >= 9 && rest[4] == 2, "starts with VERSION");
            while !rest.is_empty() {
                prop_assert!(rest.len() >= 4);
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                prop_assert!(len >= 1 && rest.len() >= 4 + len, "a whole reply");
                rest = &rest[4 + len..];
            }
            prop_assert_eq!(std::fs::read(w.tmp.path().join("secret.txt")).unwrap(), b"secret");
            let mut names: Vec<String> = std::fs::read_dir(w.tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            prop_assert_eq!(names, ["data", "docs", "secret.txt"]);
        }
    }

    #[test]
    fn dot_dot_never_leaves_the_namespace() {
        assert_eq!(components("/../../etc/passwd"), ["etc", "passwd"]);
        assert_eq!(components("a/./b/../c"), ["a", "c"]);
        assert!(components("/..").is_empty());
        assert!(components("").is_empty());
    }
}
