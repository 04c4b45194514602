//! The in-memory media index: one tree per media folder, directory by
//! directory, kept current from the watcher's events.

use super::probe::{self, MediaInfo};
use super::{MediaKind, is_subtitle, media_kind};
use crate::error::{FabricError, Result};
use crate::fabric::blocking;
use crate::path::{RelPath, is_os_metadata};
use crate::resource::{Entry, Folder};
use crate::store::beneath::Root;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{OnceCell, broadcast};

/// A media file with its facts and the files that ride along with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaItem {
    /// The file as on disk.
    pub entry: Entry,
    /// Video, audio or image.
    pub kind: MediaKind,
    /// What its headers say.
    pub info: Arc<MediaInfo>,
    /// Sidecar subtitles in the same directory (`film.srt`, `film.en.vtt`
    /// for `film.mkv`), by name.
    pub subtitles: Vec<String>,
    /// A picture in the same directory that stands for it: one with the same
    /// base name, else the directory's `cover.jpg` / `folder.jpg`.
    pub cover: Option<String>,
}

impl MediaItem {
    /// The title to show: the tags' title, else the file name without its
    /// extension.
    pub fn title(&self) -> &str {
        match &self.info.title {
            Some(t) => t,
            None => base_name(&self.entry.name),
        }
    }
}

/// One directory of a media folder as the media front shows it.
#[derive(Clone, Debug)]
pub struct MediaDir {
    /// Its path in the folder (root for the folder itself).
    pub path: RelPath,
    /// Its subdirectories (hidden ones left out), by name.
    pub dirs: Vec<Entry>,
    /// Its media files, by name.
    pub items: Vec<Arc<MediaItem>>,
    /// The system update id when it last changed.
    pub update_id: u32,
}

/// A directory with what its subdirectories hold, for child counts.
#[derive(Clone, Debug)]
pub struct MediaListing {
    /// The media folder.
    pub folder: Arc<Folder>,
    /// The directory.
    pub dir: Arc<MediaDir>,
    /// For each of `dir.dirs`, how many children it has.
    pub child_counts: Vec<u32>,
}

/// A media file and the folder it is in (an entry of a view).
#[derive(Clone, Debug)]
pub struct MediaRef {
    /// The media folder.
    pub folder: Arc<Folder>,
    /// The file.
    pub item: Arc<MediaItem>,
}

/// What changed in the media index.
#[derive(Clone, Debug)]
pub struct MediaChange {
    /// The new system update id.
    pub update_id: u32,
    /// The directories whose content changed, with their new update id.
    pub dirs: Vec<(Arc<Folder>, RelPath, u32)>,
}

/// The index of one media folder.
pub(crate) struct FolderTree {
    folder: Arc<Folder>,
    dirs: RwLock<HashMap<RelPath, Arc<MediaDir>>>,
}

impl FolderTree {
    /// A directory and the sizes of its subdirectories.
    pub fn listing(&self, path: &RelPath) -> Option<MediaListing> {
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        let dir = dirs.get(path)?.clone();
        let child_counts = dir
            .dirs
            .iter()
            .map(|d| {
                dirs.get(&d.path)
                    .map_or(0, |c| (c.dirs.len() + c.items.len()) as u32)
            })
            .collect();
        Some(MediaListing {
            folder: self.folder.clone(),
            dir,
            child_counts,
        })
    }

    /// One directory.
    pub fn dir(&self, path: &RelPath) -> Option<Arc<MediaDir>> {
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        dirs.get(path).cloned()
    }

    /// How many media files the folder holds.
    pub fn item_count(&self) -> usize {
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        dirs.values().map(|d| d.items.len()).sum()
    }

    fn items_of(&self, kind: MediaKind, out: &mut Vec<MediaRef>) {
        let dirs = self.dirs.read().unwrap_or_else(|e| e.into_inner());
        for d in dirs.values() {
            for i in d.items.iter().filter(|i| i.kind == kind) {
                out.push(MediaRef {
                    folder: self.folder.clone(),
                    item: i.clone(),
                });
            }
        }
    }
}

/// Facts already read, by disk path, valid while size and mtime hold.
#[derive(Default)]
pub(crate) struct ProbeCache(Mutex<HashMap<PathBuf, Probed>>);

/// Size and mtime of a file when it was probed, and what the probe found.
type Probed = (u64, i64, Arc<MediaInfo>);

/// A view's key: its kind and the ids of the folders it spans.
type ViewKey = (MediaKind, String);

impl ProbeCache {
    /// The facts of a file, read now unless its size and mtime are those
    /// of the last read (`key` names it in the cache; `open` opens it below
    /// its folder's root). Blocking.
    pub fn get(
        &self,
        key: &Path,
        open: impl FnOnce() -> Option<std::fs::File>,
        e: &Entry,
        kind: MediaKind,
    ) -> Arc<MediaInfo> {
        {
            let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((size, mtime, info)) = map.get(key)
                && *size == e.size
                && *mtime == e.mtime_ns
            {
                return info.clone();
            }
        }
        let info = Arc::new(match open() {
            Some(f) => probe::probe(&f, &e.name, kind),
            None => MediaInfo::default(),
        });
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_owned(), (e.size, e.mtime_ns, info.clone()));
        info
    }
}

/// The media index of every media folder on this node.
pub(crate) struct MediaLibrary {
    trees: Mutex<HashMap<String, Arc<OnceCell<Arc<FolderTree>>>>>,
    probes: Arc<ProbeCache>,
    update_id: AtomicU32,
    changes: broadcast::Sender<MediaChange>,
    views: Mutex<HashMap<ViewKey, Arc<Vec<MediaRef>>>>,
}

impl Default for MediaLibrary {
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        MediaLibrary {
            trees: Mutex::default(),
            probes: Arc::default(),
            update_id: AtomicU32::new(now as u32),
            changes: broadcast::channel(64).0,
            views: Mutex::default(),
        }
    }
}

impl MediaLibrary {
    /// The cache of facts read.
    pub fn probes(&self) -> Arc<ProbeCache> {
        self.probes.clone()
    }

    pub fn update_id(&self) -> u32 {
        self.update_id.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<MediaChange> {
        self.changes.subscribe()
    }

    /// Drops a folder's index (its media flag changed, or it is gone).
    pub fn forget(&self, folder_id: &str) {
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(folder_id);
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Drops the indexes of folders that are no longer media folders.
    pub fn keep_only(&self, media_folders: &[&str]) {
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        let before = trees.len();
        trees.retain(|id, _| media_folders.contains(&id.as_str()));
        if trees.len() != before {
            self.views.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The index of a folder, built on first use.
    pub async fn tree(&self, folder: &Arc<Folder>) -> Result<Arc<FolderTree>> {
        let cell = {
            let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
            trees.entry(folder.id.clone()).or_default().clone()
        };
        let update_id = self.update_id();
        cell.get_or_try_init(|| async {
            let (root, probes) = (folder.path.clone(), self.probes.clone());
            let dirs =
                blocking(move || walk(&Root::open(&root)?, &RelPath::root(), &probes, update_id))
                    .await?;
            self.views.lock().unwrap_or_else(|e| e.into_inner()).clear();
            Ok::<_, FabricError>(Arc::new(FolderTree {
                folder: folder.clone(),
                dirs: RwLock::new(dirs),
            }))
        })
        .await
        .cloned()
    }

    /// Every media file of `kind` in `folders`, sorted by title.
    pub async fn view(
        &self,
        folders: &[Arc<Folder>],
        kind: MediaKind,
    ) -> Result<Arc<Vec<MediaRef>>> {
        let key = (
            kind,
            folders
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        if let Some(v) = self
            .views
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        let mut out = Vec::new();
        for f in folders {
            self.tree(f).await?.items_of(kind, &mut out);
        }
        out.sort_by_cached_key(|r| {
            (
                r.item.title().to_lowercase(),
                r.folder.owner.clone(),
                r.folder.name.clone(),
                r.item.entry.path.as_str().to_owned(),
            )
        });
        let out = Arc::new(out);
        self.views
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, out.clone());
        Ok(out)
    }

    /// Brings a folder's index up to date after changes at `paths` (or all
    /// of it, with `rescan`), and announces what changed.
    pub async fn touched(
        &self,
        folder: &Arc<Folder>,
        paths: Vec<RelPath>,
        rescan: bool,
    ) -> Result<()> {
        let tree = self.tree(folder).await?;
        let update_id = self
            .update_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let root = folder.path.clone();
        let probes = self.probes.clone();
        let changed: Vec<RelPath>;
        if rescan {
            let dirs =
                blocking(move || walk(&Root::open(&root)?, &RelPath::root(), &probes, update_id))
                    .await?;
            changed = dirs.keys().cloned().collect();
            *tree.dirs.write().unwrap_or_else(|e| e.into_inner()) = dirs;
        } else {
            let mut dirty = BTreeSet::new();
            for p in paths {
                if !p.is_root() {
                    dirty.insert(p.parent());
                }
                dirty.insert(p);
            }
            let known: HashSet<RelPath> = {
                let dirs = tree.dirs.read().unwrap_or_else(|e| e.into_inner());
                dirty
                    .iter()
                    .filter(|d| dirs.contains_key(*d))
                    .cloned()
                    .collect()
            };
            let dirty: Vec<RelPath> = dirty.into_iter().collect();
            let update = blocking(move || {
                let mut found = HashMap::new();
                let mut gone = Vec::new();
                let root = Root::open(&root)?;
                for d in dirty {
                    if !root.metadata(&d).is_ok_and(|m| m.is_dir()) {
                        gone.push(d);
                        continue;
                    }
                    if known.contains(&d) {
                        found.insert(d.clone(), list(&root, &d, &probes, update_id)?);
                    } else {
                        found.extend(walk(&root, &d, &probes, update_id)?);
                    }
                }
                Ok((found, gone))
            })
            .await?;
            let (found, gone) = update;
            let mut dirs = tree.dirs.write().unwrap_or_else(|e| e.into_inner());
            let mut all = Vec::new();
            for g in gone {
                let before = dirs.len();
                dirs.retain(|k, _| !k.starts_with(&g));
                if dirs.len() != before {
                    all.push(g);
                }
            }
            for (k, v) in found {
                let same = dirs
                    .get(&k)
                    .is_some_and(|old| old.dirs == v.dirs && old.items == v.items);
                if !same {
                    all.push(k.clone());
                    dirs.insert(k, v);
                }
            }
            changed = all;
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let change = MediaChange {
            update_id,
            dirs: changed
                .into_iter()
                .map(|p| (folder.clone(), p, update_id))
                .collect(),
        };
        let _ = self.changes.send(change);
        Ok(())
    }
}

/// Walks a directory and everything below it. Blocking.
fn walk(
    root: &Root,
    start: &RelPath,
    probes: &ProbeCache,
    update_id: u32,
) -> Result<HashMap<RelPath, Arc<MediaDir>>> {
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    let mut todo = vec![start.clone()];
    while let Some(rel) = todo.pop() {
        // A symbolic link may lead back up the tree: each directory once.
        let Ok(meta) = root.metadata(&rel) else {
            continue;
        };
        if !meta.is_dir() || !seen.insert(std::os::unix::fs::MetadataExt::ino(&meta)) {
            continue;
        }
        let dir = list(root, &rel, probes, update_id)?;
        todo.extend(dir.dirs.iter().map(|d| d.path.clone()));
        out.insert(rel, dir);
    }
    Ok(out)
}

/// Lists one directory: subdirectories, media files and their sidecars.
/// Blocking.
fn list(root: &Root, rel: &RelPath, probes: &ProbeCache, update_id: u32) -> Result<Arc<MediaDir>> {
    let entries = root.list(rel)?;
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut subtitles = Vec::new();
    let mut pictures: HashMap<String, String> = HashMap::new();
    for e in entries {
        if e.name.starts_with('.') || is_os_metadata(&e.name) {
            continue;
        }
        if e.is_dir() {
            dirs.push(e);
        } else if is_subtitle(&e.name) {
            subtitles.push(e.name);
        } else if let Some(kind) = media_kind(&e.name) {
            if kind == MediaKind::Image {
                pictures.insert(base_name(&e.name).to_lowercase(), e.name.clone());
            }
            files.push((e, kind));
        }
    }
    let folder_cover = ["cover", "folder", "front", "albumart"]
        .iter()
        .find_map(|b| pictures.get(*b).cloned());
    subtitles.sort();
    let mut items: Vec<Arc<MediaItem>> = files
        .into_iter()
        .map(|(entry, kind)| {
            let key = entry.path.to_disk(root.path());
            let info = probes.get(&key, || root.open_file(&entry.path).ok(), &entry, kind);
            let base = base_name(&entry.name).to_owned();
            let (subs, cover) = if kind == MediaKind::Image {
                (Vec::new(), None)
            } else {
                let subs = subtitles
                    .iter()
                    .filter(|s| {
                        s.strip_prefix(base.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                    .cloned()
                    .collect();
                let cover = pictures
                    .get(&base.to_lowercase())
                    .cloned()
                    .or_else(|| folder_cover.clone());
                (subs, cover)
            };
            Arc::new(MediaItem {
                entry,
                kind,
                info,
                subtitles: subs,
                cover,
            })
        })
        .collect();
    dirs.sort_by_cached_key(|d| (d.name.to_lowercase(), d.name.clone()));
    items.sort_by_cached_key(|i| (i.entry.name.to_lowercase(), i.entry.name.clone()));
    Ok(Arc::new(MediaDir {
        path: rel.clone(),
        dirs,
        items,
        update_id,
    }))
}

/// A file name without its last extension.
fn base_name(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, _)) if !base.is_empty() => base,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_media_with_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for f in [
            "film.mkv",
            "film.srt",
            "film.en.vtt",
            "filmography.srt",
            "film.jpg",
            "song.mp3",
            "cover.jpg",
            "notes.txt",
            ".hidden.mp4",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::fs::create_dir(root.join("Sub")).unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join("Sub/b.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(&root, root.join("Sub/loop")).unwrap();
        let probes = ProbeCache::default();
        let tree = walk(&Root::open(&root).unwrap(), &RelPath::root(), &probes, 7).unwrap();
        let top = &tree[&RelPath::root()];
        let names: Vec<&str> = top.items.iter().map(|i| i.entry.name.as_str()).collect();
        assert_eq!(names, ["cover.jpg", "film.jpg", "film.mkv", "song.mp3"]);
        assert_eq!(top.dirs.len(), 1);
        let film = &top.items[2];
        assert_eq!(film.subtitles, ["film.en.vtt", "film.srt"]);
        assert_eq!(film.cover.as_deref(), Some("film.jpg"));
        assert_eq!(top.items[3].cover.as_deref(), Some("cover.jpg"));
        assert_eq!(film.title(), "film");
        assert_eq!(top.update_id, 7);
        // The symbolic link back to the root is listed but not walked twice.
        let sub = &tree[&RelPath::parse("Sub").unwrap()];
        assert_eq!(sub.items.len(), 1);
        assert_eq!(tree.len(), 2);
    }
}
