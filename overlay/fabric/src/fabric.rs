//! The façade every front calls: [`Fabric`].
//!
//! It owns the catalog, the blob store and the folder index, and is the one
//! place where a [`Principal`] is checked (through [`crate::access`]). File
//! operations live in `files.rs`, history in `history.rs`, disk upkeep in
//! `scan.rs` and `watch.rs`; this file holds construction, users, credentials
//! and folders.

use crate::access::{Op, Principal, authorize, authorize_namespace};
use crate::auth::{self, CredentialCache, RateLimiter};
use crate::catalog::{AppPasswordRow, Catalog, UserRow, new_id};
use crate::error::{FabricError, Result};
use crate::path::RelPath;
use crate::resource::{AppPassword, Folder, SshKey, User, now_ms};
use crate::store::{BlobStore, local};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How a node's fabric is set up.
#[derive(Clone, Debug)]
pub struct FabricConfig {
    /// The node's data dir (catalog file, blobs, keys).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; `None` for the SQLite file in the data dir.
    pub database_url: Option<String>,
    /// Space every write leaves free on its disk: a write that would go
    /// below it stops with [`FabricError::NoSpace`] (an anonymous drop box
    /// must not be able to fill the disk).
    pub min_free_space: u64,
    /// The most copies of current content may take on this node.
    pub copies_budget: crate::copies::CopiesBudget,
}

/// The default of [`FabricConfig::min_free_space`].
pub const DEFAULT_MIN_FREE_SPACE: u64 = 1 << 30;

impl FabricConfig {
    /// A fabric in `data_dir` with the SQLite catalog and the defaults.
    pub fn new(data_dir: impl Into<PathBuf>) -> FabricConfig {
        FabricConfig {
            data_dir: data_dir.into(),
            database_url: None,
            min_free_space: DEFAULT_MIN_FREE_SPACE,
            copies_budget: Default::default(),
        }
    }
}

/// An address inside the fabric: `user/folder/path`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Owner of the folder.
    pub user: String,
    /// Folder name.
    pub folder: String,
    /// Path inside the folder.
    pub path: RelPath,
}

impl Address {
    /// Builds an address.
    pub fn new(user: impl Into<String>, folder: impl Into<String>, path: RelPath) -> Address {
        Address {
            user: user.into(),
            folder: folder.into(),
            path,
        }
    }

    /// Parses `user/folder[/path]`.
    pub fn parse(text: &str) -> Result<Address> {
        let mut parts = text.trim_matches('/').splitn(3, '/');
        let user = parts.next().filter(|s| !s.is_empty());
        let folder = parts.next().filter(|s| !s.is_empty());
        match (user, folder) {
            (Some(u), Some(f)) => Ok(Address::new(
                u,
                f,
                RelPath::parse(parts.next().unwrap_or(""))?,
            )),
            _ => Err(FabricError::InvalidPath(format!(
                "{text:?} is not USER/FOLDER[/PATH]"
            ))),
        }
    }

    /// The same folder, another path.
    pub fn with_path(&self, path: RelPath) -> Address {
        Address {
            user: self.user.clone(),
            folder: self.folder.clone(),
            path,
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_root() {
            write!(f, "{}/{}", self.user, self.folder)
        } else {
            write!(f, "{}/{}/{}", self.user, self.folder, self.path)
        }
    }
}

/// Where a path in a signed-in user's namespace points. The fronts that
/// show a user's folders as their top level (WebDAV, SFTP) map their paths
/// here, so that the namespace has one mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `/`: the user's folders.
    Root,
    /// Something in a folder (its root when the path is empty).
    In(Address),
}

impl Place {
    /// The place of `parts`, decoded path components (a front resolves `.`
    /// and `..` by its own protocol's rules first), in `who`'s namespace.
    pub fn of<'a>(who: &Principal, parts: impl IntoIterator<Item = &'a str>) -> Result<Place> {
        let mut it = parts.into_iter().filter(|p| !p.is_empty());
        let Some(folder) = it.next() else {
            return Ok(Place::Root);
        };
        RelPath::from_components([folder])?;
        let rel = RelPath::from_components(it)?;
        Ok(Place::In(Address::new(who.actor(), folder, rel)))
    }
}

/// Options of a new folder.
#[derive(Clone, Copy, Debug, Default)]
pub struct FolderOptions {
    /// Which files keep a copy of their current content, so that edits made
    /// on disk are versioned too.
    pub copies: crate::resource::CopyPolicy,
    /// Show to the LAN media front.
    pub media: bool,
}

/// An address whose folder is known and whose use is authorized; the disk is
/// reached through [`Resolved::root`], below which the kernel confines every
/// path.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub folder: Arc<Folder>,
    pub rel: RelPath,
    /// A share link's subtree, which nothing may leave (even through a
    /// symbolic link that stays in the folder).
    pub bound: Option<RelPath>,
}

impl Resolved {
    /// The folder's directory (or the share link's subtree), opened.
    /// Blocking.
    pub fn root(&self) -> Result<crate::store::beneath::Root> {
        crate::store::beneath::Root::for_scope(&self.folder.path, self.bound.as_ref())
    }

    /// The name's entry in the folder as a directory listing would show it.
    pub fn name(&self) -> String {
        if self.rel.is_root() {
            self.folder.name.clone()
        } else {
            self.rel.name().to_owned()
        }
    }
}

#[derive(Default)]
struct FolderIndex {
    /// owner name -> folder name -> folder (nested so lookups need no allocation).
    by_name: HashMap<String, HashMap<String, Arc<Folder>>>,
    loaded_at: Option<Instant>,
}

pub(crate) struct Inner {
    pub catalog: Catalog,
    pub blobs: BlobStore,
    /// This node's key pair (`node.key` in the data dir).
    pub node: crate::ids::NodeKey,
    /// The name this node runs under, once the server set it.
    pub node_name: Mutex<Option<String>>,
    pub data_dir: PathBuf,
    folders: RwLock<FolderIndex>,
    folder_locks: Mutex<HashMap<String, Arc<crate::store::locks::ExclusiveLock>>>,
    limiter: RateLimiter,
    pub(crate) cache: CredentialCache,
    pub media: crate::media::MediaLibrary,
    /// The data dir's secret (`share-links.key`): seals share-link tokens
    /// and, derived, keys playback tickets.
    pub link_key: [u8; 32],
    /// See [`FabricConfig::min_free_space`].
    pub min_free_space: u64,
    /// New files being written, visible by their name while open.
    pub pending: Mutex<crate::files::PendingWrites>,
    /// Folder roots opened by the read fast path, by folder path, each
    /// reopened after a second (see `files::open_cached`).
    pub open_roots: Mutex<HashMap<PathBuf, (Arc<crate::store::beneath::Root>, std::time::Instant)>>,
    /// See [`FabricConfig::copies_budget`].
    pub copies_budget: crate::copies::CopiesBudget,
    /// Whether the upkeep loop builds media indexes ahead of use (a LAN
    /// media front runs); see [`Fabric::prewarm_media`].
    pub prewarm_media: std::sync::atomic::AtomicBool,
    /// One change to shared records at a time (see `records`).
    pub records_lock: tokio::sync::Mutex<()>,
    /// The overlay's links to members now (see `Fabric::set_links`).
    /// When they were last noted in the catalog (0: never, in this process).
    pub links: Mutex<(i64, Vec<(crate::ids::NodeId, crate::nodes::LinkInfo)>)>,
    /// Each folder's sync ignore rules, with the stamp of the file they
    /// were read from (see `ignore`).
    pub ignores: Mutex<HashMap<String, crate::ignore::Cached>>,
    /// The transfers from other replicas under way, by temp file (two
    /// members' pulls of one change never share it).
    pub partials: Mutex<std::collections::HashSet<std::path::PathBuf>>,
}

/// Glow's fabric on this node. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Fabric {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("node", &self.inner.node.id())
            .finish()
    }
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FabricError::Io(std::io::Error::other(e)))?
}

impl Fabric {
    /// Opens the fabric: creates the data dir, opens and migrates the catalog,
    /// opens the blob store and loads the folder index.
    pub async fn open(cfg: FabricConfig) -> Result<Fabric> {
        local::mark_start();
        let dir = cfg.data_dir.clone();
        let data_dir = blocking(move || {
            std::fs::create_dir_all(&dir)?;
            Ok(std::fs::canonicalize(&dir)?)
        })
        .await?;
        let catalog =
            Catalog::open(cfg.database_url.as_deref(), &data_dir.join("catalog.db")).await?;
        let d = data_dir.clone();
        let (blobs, link_key, node) = blocking(move || {
            Ok((
                BlobStore::open(d.join("blobs"))?,
                crate::shares::load_link_key(&d)?,
                crate::ids::NodeKey::load_or_create(&d)?,
            ))
        })
        .await?;
        let fabric = Fabric {
            inner: Arc::new(Inner {
                catalog,
                blobs,
                node,
                node_name: Mutex::default(),
                records_lock: tokio::sync::Mutex::new(()),
                links: Mutex::default(),
                data_dir,
                folders: RwLock::default(),
                folder_locks: Mutex::default(),
                ignores: Mutex::default(),
                partials: Mutex::default(),
                limiter: RateLimiter::default(),
                cache: CredentialCache::default(),
                media: Default::default(),
                link_key,
                min_free_space: cfg.min_free_space,
                pending: Mutex::default(),
                open_roots: Mutex::default(),
                copies_budget: cfg.copies_budget,
                prewarm_media: Default::default(),
            }),
        };
        fabric.seal_plain_share_tokens().await?;
        fabric.ensure_records().await?;
        fabric.reload_folders().await?;
        Ok(fabric)
    }

    /// This node's id (its public key; in version vectors).
    pub fn node_id(&self) -> crate::ids::NodeId {
        self.inner.node.id()
    }

    /// This node's key pair, for the overlay's endpoint.
    pub fn node_key(&self) -> &crate::ids::NodeKey {
        &self.inner.node
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Which database holds the catalog.
    pub fn backend(&self) -> crate::catalog::Backend {
        self.inner.catalog.backend()
    }

    /// Closes the catalog.
    pub async fn close(&self) {
        self.inner.catalog.close().await;
    }

    // ---- users -----------------------------------------------------------

    /// Creates a user. Names are 1–64 of `a-z A-Z 0-9 . _ -`, not starting
    /// with a dot.
    pub async fn create_user(&self, name: &str, password: &str, is_admin: bool) -> Result<User> {
        check_user_name(name)?;
        check_password(password)?;
        if self.inner.catalog.user_by_name(name).await?.is_some() {
            return Err(FabricError::Invalid(format!(
                "user {name:?} already exists"
            )));
        }
        let pw = password.to_owned();
        let password_hash = auth::with_argon2(move || auth::hash_password(&pw)).await?;
        let row = UserRow {
            id: new_id(),
            name: name.to_owned(),
            password_hash,
            is_admin: is_admin as i64,
            created_at: now_ms(),
        };
        self.inner.catalog.insert_user(&row).await?;
        self.publish_user(name, "operator").await?;
        Ok(row.to_user())
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(self
            .inner
            .catalog
            .users()
            .await?
            .iter()
            .map(UserRow::to_user)
            .collect())
    }

    /// One user by name.
    pub async fn user(&self, name: &str) -> Result<User> {
        Ok(self.user_row(name).await?.to_user())
    }

    async fn user_row(&self, name: &str) -> Result<UserRow> {
        self.inner
            .catalog
            .user_by_name(name)
            .await?
            .ok_or_else(|| no_such_user(name))
    }

    /// Sets a user's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        check_password(password)?;
        let user = self.user_row(name).await?;
        let pw = password.to_owned();
        let hash = auth::with_argon2(move || auth::hash_password(&pw)).await?;
        self.inner
            .catalog
            .set_password_hash(&user.id, &hash)
            .await?;
        self.inner.catalog.delete_sessions_of(&user.id).await?;
        self.inner.cache.clear();
        self.publish_user(name, "operator").await
    }

    /// Removes a user and their folders from the catalog (files on disk stay).
    pub async fn remove_user(&self, name: &str) -> Result<()> {
        let user = self.user_row(name).await?;
        self.inner.catalog.delete_user(&user.id).await?;
        self.inner.cache.clear();
        self.publish_user(name, "operator").await?;
        self.reload_folders().await
    }

    /// Adds an SSH public key (one OpenSSH line) to a user.
    pub async fn add_ssh_key(&self, name: &str, line: &str) -> Result<SshKey> {
        let user = self.user_row(name).await?;
        let parsed = auth::parse_ssh_key(line)?;
        if self
            .inner
            .catalog
            .ssh_keys(&user.id)
            .await?
            .iter()
            .any(|k| k.fingerprint == parsed.fingerprint)
        {
            return Err(FabricError::Invalid(format!(
                "user {name:?} already has key {}",
                parsed.fingerprint
            )));
        }
        let key = SshKey {
            id: new_id(),
            algorithm: parsed.algorithm,
            public_key: parsed.public_key,
            fingerprint: parsed.fingerprint,
            comment: parsed.comment,
        };
        self.inner
            .catalog
            .insert_ssh_key(&user.id, &key, now_ms())
            .await?;
        self.publish_user(name, "operator").await?;
        Ok(key)
    }

    /// A user's SSH public keys.
    pub async fn ssh_keys(&self, name: &str) -> Result<Vec<SshKey>> {
        let user = self.user_row(name).await?;
        self.inner.catalog.ssh_keys(&user.id).await
    }

    /// Creates an app password for a device; the secret is returned once and
    /// only its hash is kept.
    pub async fn create_app_password(
        &self,
        name: &str,
        label: &str,
    ) -> Result<(AppPassword, String)> {
        let user = self.user_row(name).await?;
        let secret = auth::random_secret(24);
        let s = secret.clone();
        let password_hash = auth::with_argon2(move || auth::hash_password(&s)).await?;
        let row = AppPasswordRow {
            id: new_id(),
            label: label.to_owned(),
            password_hash,
            created_at: now_ms(),
        };
        self.inner
            .catalog
            .insert_app_password(&user.id, &row)
            .await?;
        self.publish_user(name, "operator").await?;
        Ok((row.to_public(), secret))
    }

    /// A user's app passwords (without secrets).
    pub async fn app_passwords(&self, name: &str) -> Result<Vec<AppPassword>> {
        let user = self.user_row(name).await?;
        Ok(self
            .inner
            .catalog
            .app_passwords(&user.id)
            .await?
            .iter()
            .map(AppPasswordRow::to_public)
            .collect())
    }

    // ---- sign-in -----------------------------------------------------------

    /// Checks a user name and a password (the account password or any of the
    /// user's app passwords). Failures are counted per name and per address;
    /// too many give [`FabricError::RateLimited`], even for right credentials.
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<Principal> {
        // Credentials verified a moment ago pass without argon2; a lockout
        // (from someone else's guesses) then does not shut out the owner.
        if let Some(p) = self.inner.cache.get(name, password) {
            return Ok(p);
        }
        // argon2 runs a few at a time (memory); the limiter is asked once a
        // slot is ours, so a flood of guesses queued behind each other is
        // refused as soon as it has failed enough, without hashing.
        let _slot = auth::argon2_slot().await?;
        if let Some(p) = self.inner.cache.get(name, password) {
            return Ok(p);
        }
        self.inner.limiter.check(name, addr)?;
        let user = self.inner.catalog.user_by_name(name).await?;
        let apps = match &user {
            Some(u) => self.inner.catalog.app_passwords(&u.id).await?,
            None => Vec::new(),
        };
        let main_hash = user.as_ref().map(|u| u.password_hash.clone());
        let pw = password.to_owned();
        let ok = blocking(move || {
            // Without such a user, verify against a fixed hash anyway so that
            // timing does not tell which names exist.
            let main = main_hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
            Ok(auth::verify_password(&pw, &main)
                || apps
                    .iter()
                    .any(|a| auth::verify_password(&pw, &a.password_hash)))
        })
        .await?;
        match (ok, user) {
            (true, Some(u)) => {
                let who = Principal::User {
                    id: u.id,
                    name: u.name,
                };
                self.inner.limiter.succeed(name, addr);
                self.inner.cache.put(name, password, who.clone());
                Ok(who)
            }
            _ => {
                self.inner.limiter.fail(name, addr);
                tracing::info!(user = ?name, addr = ?addr, "failed sign-in");
                Err(FabricError::BadCredentials)
            }
        }
    }

    /// Signs a user in with one of their SSH public keys, named by its
    /// SHA-256 fingerprint (`SHA256:…`, as `glow user key add` stored it).
    /// The SSH layer has already checked the client's signature.
    pub async fn authenticate_key(&self, name: &str, fingerprint: &str) -> Result<Principal> {
        let Some(user) = self.inner.catalog.user_by_name(name).await? else {
            return Err(FabricError::BadCredentials);
        };
        let keys = self.inner.catalog.ssh_keys(&user.id).await?;
        if keys.iter().any(|k| k.fingerprint == fingerprint) {
            Ok(Principal::User {
                id: user.id,
                name: user.name,
            })
        } else {
            Err(FabricError::BadCredentials)
        }
    }

    /// Opens a sign-in session for a principal; returns the secret token.
    pub async fn create_session(&self, who: &Principal, ttl: Duration) -> Result<String> {
        let Principal::User { id, .. } = who else {
            return Err(FabricError::Forbidden);
        };
        let token = auth::random_secret(43);
        let now = now_ms();
        self.inner
            .catalog
            .insert_session(&token_digest(&token), id, now, now + ttl.as_millis() as i64)
            .await?;
        Ok(token)
    }

    /// The principal of a live session token.
    pub async fn session(&self, token: &str) -> Result<Principal> {
        match self
            .inner
            .catalog
            .session_user(&token_digest(token), now_ms())
            .await?
        {
            Some(u) => Ok(Principal::User {
                id: u.id,
                name: u.name,
            }),
            None => Err(FabricError::BadCredentials),
        }
    }

    /// Ends a session.
    pub async fn end_session(&self, token: &str) -> Result<()> {
        self.inner
            .catalog
            .delete_session(&token_digest(token))
            .await
    }

    // ---- folders -----------------------------------------------------------

    /// Adds the directory `path` as folder `name` of user `owner`.
    pub async fn add_folder(
        &self,
        owner: &str,
        name: &str,
        path: &Path,
        opts: FolderOptions,
    ) -> Result<Folder> {
        RelPath::from_components([name])
            .map_err(|_| FabricError::Invalid(format!("{name:?} is not a valid folder name")))?;
        let user = self.user_row(owner).await?;
        let p = path.to_path_buf();
        let (real, is_dir) = blocking(move || {
            let real = std::fs::canonicalize(&p)
                .map_err(|e| FabricError::Invalid(format!("cannot use {}: {e}", p.display())))?;
            let is_dir = real.is_dir();
            Ok((real, is_dir))
        })
        .await?;
        if !is_dir {
            return Err(FabricError::Invalid(format!(
                "{} is not a directory",
                path.display()
            )));
        }
        if real.starts_with(&self.inner.data_dir) || self.inner.data_dir.starts_with(&real) {
            return Err(FabricError::Invalid(format!(
                "{} overlaps Glow's data dir {}; pick another directory",
                real.display(),
                self.inner.data_dir.display()
            )));
        }
        self.reload_folders().await?;
        if let Some(f) = self.find_folder(owner, name) {
            return Err(FabricError::Invalid(format!(
                "folder {owner}/{name} already exists (at {})",
                f.path.display()
            )));
        }
        let folder = Folder {
            id: new_id(),
            owner_id: user.id,
            owner: user.name,
            name: name.to_owned(),
            path: real,
            copies: opts.copies,
            copy_budget: None,
            media: opts.media,
            sequence: 0,
        };
        self.inner.catalog.insert_folder(&folder, now_ms()).await?;
        self.reload_folders().await?;
        self.publish_folder(owner, name, "operator").await?;
        Ok(folder)
    }

    /// Removes a folder from the catalog; its directory stays on disk.
    pub async fn remove_folder(&self, owner: &str, name: &str) -> Result<()> {
        self.reload_folders().await?;
        let f = self.find_folder(owner, name).ok_or(FabricError::NotFound)?;
        self.inner.catalog.delete_folder(&f.id).await?;
        self.reload_folders().await
    }

    /// The folders `who` may see in the namespace of `owner` (all of them for
    /// [`Principal::System`] when `owner` is `None`).
    pub async fn folders(&self, who: &Principal, owner: Option<&str>) -> Result<Vec<Arc<Folder>>> {
        // Not for anyone on the LAN at every request: the upkeep loop
        // re-reads the index every few seconds anyway.
        if *who != Principal::LanMedia {
            self.maybe_reload().await?;
        }
        let index = self.inner.folders.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<Folder>> = index
            .by_name
            .values()
            .flat_map(|m| m.values())
            .filter(|f| owner.is_none_or(|o| f.owner == o))
            .filter(|f| authorize(who, f, &RelPath::root(), Op::Read).is_ok())
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
        Ok(out)
    }

    /// Checks that `who` may see the namespace of user `owner`.
    pub async fn namespace(&self, who: &Principal, owner: &str) -> Result<User> {
        let user = self
            .inner
            .catalog
            .user_by_name(owner)
            .await?
            .ok_or(FabricError::NotFound)?;
        authorize_namespace(who, &user.id)?;
        Ok(user.to_user())
    }

    /// Re-reads the folder index from the catalog.
    pub async fn reload_folders(&self) -> Result<()> {
        let list = self.inner.catalog.folders().await?;
        let mut index = self
            .inner
            .folders
            .write()
            .unwrap_or_else(|e| e.into_inner());
        index.by_name.clear();
        for f in list {
            index
                .by_name
                .entry(f.owner.clone())
                .or_default()
                .insert(f.name.clone(), Arc::new(f));
        }
        index.loaded_at = Some(Instant::now());
        Ok(())
    }

    /// Re-reads the index unless it was read a moment ago (another process,
    /// such as the CLI, may have added a folder).
    async fn maybe_reload(&self) -> Result<()> {
        let stale = {
            let index = self.inner.folders.read().unwrap_or_else(|e| e.into_inner());
            index
                .loaded_at
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
        };
        if stale {
            self.reload_folders().await
        } else {
            Ok(())
        }
    }

    /// A folder by id from the index, re-reading the index once on a miss.
    pub(crate) async fn folder_by_id(&self, id: &str) -> Result<Arc<Folder>> {
        let find = || self.all_folders().into_iter().find(|f| f.id == id);
        if let Some(f) = find() {
            return Ok(f);
        }
        self.reload_folders().await?;
        find().ok_or(FabricError::NotFound)
    }

    pub(crate) fn find_folder(&self, owner: &str, name: &str) -> Option<Arc<Folder>> {
        let index = self.inner.folders.read().unwrap_or_else(|e| e.into_inner());
        index.by_name.get(owner)?.get(name).cloned()
    }

    /// The folder of an address, if `who` may use it for `op`.
    pub(crate) async fn folder_for(
        &self,
        who: &Principal,
        addr: &Address,
        op: Op,
    ) -> Result<Arc<Folder>> {
        let folder = match self.find_folder(&addr.user, &addr.folder) {
            Some(f) => f,
            // Anyone on the LAN may ask the media front for any name: no
            // catalog read per miss for them (the upkeep loop re-reads the
            // index every few seconds anyway).
            None if *who == Principal::LanMedia => return Err(FabricError::NotFound),
            None => {
                // Only signed-in callers get here, so a re-read per miss is
                // cheap insurance: the CLI may have just added the folder.
                self.reload_folders().await?;
                self.find_folder(&addr.user, &addr.folder)
                    .ok_or(FabricError::NotFound)?
            }
        };
        authorize(who, &folder, &addr.path, op)?;
        Ok(folder)
    }

    /// The sign-in rate limiter (also used for link passwords).
    pub(crate) fn limiter_ref(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Authorizes `who` for `op` at `addr`; the disk is reached later, below
    /// the folder's root (see [`Resolved::root`]).
    pub(crate) async fn resolve(
        &self,
        who: &Principal,
        addr: &Address,
        op: Op,
    ) -> Result<Resolved> {
        let folder = self.folder_for(who, addr, op).await?;
        let bound = match who {
            Principal::Share(s) => Some(s.root.clone()),
            _ => None,
        };
        Ok(Resolved {
            folder,
            rel: addr.path.clone(),
            bound,
        })
    }

    /// Takes the lock that serialises commits (and disk reconciliation) in
    /// a folder, in this process and across processes (the CLI's restore
    /// and purge, and every other writer, wait for it too).
    pub(crate) async fn lock_folder(
        &self,
        folder_id: &str,
    ) -> Result<crate::store::locks::ExclusiveGuard> {
        let lock = {
            let mut locks = self
                .inner
                .folder_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            locks
                .entry(folder_id.to_owned())
                .or_insert_with(|| {
                    Arc::new(crate::store::locks::ExclusiveLock::new(
                        self.inner
                            .data_dir
                            .join("locks")
                            .join(format!("folder-{folder_id}.lock")),
                    ))
                })
                .clone()
        };
        lock.lock().await
    }

    /// The locks of one or two folders, always taken in id order.
    pub(crate) async fn lock_folders(
        &self,
        a: &str,
        b: &str,
    ) -> Result<(
        crate::store::locks::ExclusiveGuard,
        Option<crate::store::locks::ExclusiveGuard>,
    )> {
        if a == b {
            return Ok((self.lock_folder(a).await?, None));
        }
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        let g1 = self.lock_folder(first).await?;
        let g2 = self.lock_folder(second).await?;
        Ok((g1, Some(g2)))
    }

    /// Every folder in the index (for the scanner and watcher).
    pub(crate) fn all_folders(&self) -> Vec<Arc<Folder>> {
        let index = self.inner.folders.read().unwrap_or_else(|e| e.into_inner());
        index
            .by_name
            .values()
            .flat_map(|m| m.values())
            .cloned()
            .collect()
    }
}

/// An argon2id hash of a random string, verified against when a user does not
/// exist so that both cases take the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$u6tW7hm1WcInGS2ZCgn2Kq1cDx/6lTfEtxQrRzHC3Bw";

fn token_digest(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn no_such_user(name: &str) -> FabricError {
    FabricError::Invalid(format!("no user named {name:?}"))
}

pub(crate) fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(FabricError::Invalid(format!(
            "{name:?} is not a valid user name: use 1-64 of a-z, A-Z, 0-9, '.', '_', '-'"
        )))
    }
}

fn check_password(pw: &str) -> Result<()> {
    if pw.chars().count() < 8 {
        return Err(FabricError::Invalid(
            "passwords need at least 8 characters".into(),
        ));
    }
    if pw.len() > 1024 {
        return Err(FabricError::Invalid(
            "passwords may have at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let a = Address::parse("alice/photos/2024/a.jpg").unwrap();
        assert_eq!(
            (a.user.as_str(), a.folder.as_str(), a.path.as_str()),
            ("alice", "photos", "2024/a.jpg")
        );
        assert_eq!(a.to_string(), "alice/photos/2024/a.jpg");
        assert!(Address::parse("alice").is_err());
        assert!(Address::parse("alice/photos/../x").is_err());
        assert_eq!(
            Address::parse("/alice/photos/").unwrap().path,
            RelPath::root()
        );
    }

    #[test]
    fn user_names_are_checked() {
        assert!(check_user_name("alice.b-c_9").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ü"] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(!auth::verify_password("x", DUMMY_HASH));
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
