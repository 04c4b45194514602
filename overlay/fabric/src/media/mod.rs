//! The media library: what the LAN media front (DLNA) shows of the folders
//! flagged as media, with each file's media facts (duration, resolution,
//! bitrate, tags) read from its headers.
//!
//! The library is an in-memory index per media folder: every directory's
//! subdirectories and media files, sorted, with sidecar subtitles and cover
//! images matched by name. It is built by a walk the first time a folder is
//! needed (the upkeep loop does it right after the start-up scan) and then
//! kept current from the disk watcher's events, one directory at a time, so
//! that browsing never touches the disk and paging a container of 10,000
//! files costs the page, not the container. Every change bumps the system
//! update id and is announced on [`Fabric::media_changes`].
//!
//! This module knows nothing about UPnP: object ids, DIDL-Lite and DLNA
//! profiles belong to the front. It hands out facts.

mod library;
mod probe;

pub(crate) use library::MediaLibrary;
pub use library::{MediaChange, MediaDir, MediaItem, MediaListing, MediaRef};
pub use probe::{AudioCodec, MediaInfo, VideoCodec};

use crate::access::{Op, Principal};
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, blocking};
use crate::path::RelPath;
use crate::resource::Folder;
use std::sync::Arc;

/// What kind of media a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// A film or clip.
    Video,
    /// Music or speech.
    Audio,
    /// A photo or picture.
    Image,
}

impl MediaKind {
    /// Every kind, in the order views list them.
    pub const ALL: [MediaKind; 3] = [MediaKind::Video, MediaKind::Audio, MediaKind::Image];
}

fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// The kind of media a file is, by its name; `None` for everything else.
pub fn media_kind(name: &str) -> Option<MediaKind> {
    if name.starts_with('.') {
        return None;
    }
    match extension(name).as_str() {
        "mp4" | "m4v" | "mov" | "mkv" | "webm" | "avi" | "mpg" | "mpeg" | "ts" | "m2ts" | "mts"
        | "wmv" | "flv" | "3gp" | "vob" => Some(MediaKind::Video),
        "mp3" | "flac" | "m4a" | "aac" | "ogg" | "oga" | "opus" | "wav" | "wma" | "aif"
        | "aiff" => Some(MediaKind::Audio),
        "jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" => Some(MediaKind::Image),
        _ => None,
    }
}

/// True for subtitle files that can ride along with a video of the same
/// base name (`film.srt` beside `film.mkv`).
pub fn is_subtitle(name: &str) -> bool {
    !name.starts_with('.') && matches!(extension(name).as_str(), "srt" | "vtt" | "smi" | "ass")
}

/// The MIME type a media, subtitle or image file is served with (the
/// common, standard spelling; fronts adjust it for clients that want
/// another).
pub fn media_mime(name: &str) -> &'static str {
    match extension(name).as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mpg" | "mpeg" | "vob" => "video/mpeg",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "wmv" => "video/x-ms-wmv",
        "flv" => "video/x-flv",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "wav" => "audio/wav",
        "wma" => "audio/x-ms-wma",
        "aif" | "aiff" => "audio/aiff",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "srt" => "text/srt",
        "vtt" => "text/vtt",
        "smi" => "application/smil",
        "ass" => "text/x-ssa",
        _ => "application/octet-stream",
    }
}

/// True for the files the media front may hand out: media, sidecar
/// subtitles.
pub fn is_servable_media(name: &str) -> bool {
    media_kind(name).is_some() || is_subtitle(name)
}

impl Fabric {
    /// The media folders `who` may see, by owner and name.
    pub async fn media_folders(&self, who: &Principal) -> Result<Vec<Arc<Folder>>> {
        let mut folders = self.folders(who, None).await?;
        folders.retain(|f| f.media);
        Ok(folders)
    }

    /// A directory of a media folder: its subdirectories and media files.
    pub async fn media_dir(&self, who: &Principal, addr: &Address) -> Result<MediaListing> {
        let folder = self.media_folder_for(who, addr).await?;
        let tree = self.inner.media.tree(&folder).await?;
        tree.listing(&addr.path).ok_or(FabricError::NotFound)
    }

    /// One media file of a media folder, with its facts.
    pub async fn media_item(&self, who: &Principal, addr: &Address) -> Result<Arc<MediaItem>> {
        let folder = self.media_folder_for(who, addr).await?;
        if addr.path.is_root() {
            return Err(FabricError::WrongKind("is a directory"));
        }
        let tree = self.inner.media.tree(&folder).await?;
        let dir = tree.dir(&addr.path.parent()).ok_or(FabricError::NotFound)?;
        dir.items
            .iter()
            .find(|i| i.entry.path == addr.path)
            .cloned()
            .ok_or(FabricError::NotFound)
    }

    /// Every media file of one kind in every media folder `who` may see,
    /// sorted by title (the "All videos" kind of view).
    pub async fn media_view(&self, who: &Principal, kind: MediaKind) -> Result<Arc<Vec<MediaRef>>> {
        let folders = self.media_folders(who).await?;
        self.inner.media.view(&folders, kind).await
    }

    /// The system update id: it changes whenever anything the media front
    /// shows changes. It starts from the clock at start-up, so it also grows
    /// across restarts.
    pub fn media_update_id(&self) -> u32 {
        self.inner.media.update_id()
    }

    /// Changes to media folders, as they happen (for eventing).
    pub fn media_changes(&self) -> tokio::sync::broadcast::Receiver<MediaChange> {
        self.inner.media.subscribe()
    }

    /// Builds the media index of every media folder now, so that the first
    /// client does not wait for it.
    pub async fn media_prewarm(&self) {
        let Ok(folders) = self.media_folders(&Principal::System).await else {
            return;
        };
        for f in folders {
            self.build_media_index(&f).await;
        }
    }

    /// Whether the upkeep loop builds each media folder's index after its
    /// scan, so that a TV's first Browse is quick: on when a LAN media
    /// front runs. Off, an index is built on first use only (a node
    /// without the DLNA front keeps no index of 10,000 songs in memory).
    pub fn prewarm_media(&self, on: bool) {
        self.inner
            .prewarm_media
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds one media folder's index now (logs what it found), if
    /// [`Fabric::prewarm_media`] asked for it.
    pub(crate) async fn media_prewarm_folder(&self, f: &Arc<Folder>) {
        if self
            .inner
            .prewarm_media
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.build_media_index(f).await;
        }
    }

    /// Builds one media folder's index now and logs what it found.
    async fn build_media_index(&self, f: &Arc<Folder>) {
        match self.inner.media.tree(f).await {
            Ok(tree) => tracing::info!(
                folder = %format!("{}/{}", f.owner, f.name),
                items = tree.item_count(),
                "media indexed"
            ),
            Err(e) => tracing::warn!(folder = %f.name, "cannot index media: {e}"),
        }
    }

    /// The cover picture embedded in an audio file's tags, with its MIME
    /// type.
    pub async fn media_cover(&self, who: &Principal, addr: &Address) -> Result<(String, Vec<u8>)> {
        self.media_folder_for(who, addr).await?;
        let r = self.resolve(who, addr, Op::Content).await?;
        blocking(move || {
            let f = r.root()?.open_file(&r.rel)?;
            probe::cover(&f).ok_or(FabricError::NotFound)
        })
        .await
    }

    /// The media facts of any file `who` may read (for "play on TV", which
    /// works on every folder, not only media folders).
    pub async fn probe_media(&self, who: &Principal, addr: &Address) -> Result<MediaItem> {
        let kind = media_kind(addr.path.name()).ok_or_else(|| {
            FabricError::Invalid(format!(
                "{} is not a video, song or picture",
                addr.path.name()
            ))
        })?;
        let entry = self.stat(who, addr).await?;
        let r = self.resolve(who, addr, Op::Content).await?;
        // A TV asks again at every seek: facts come from the cache.
        let probes = self.inner.media.probes();
        let e = entry.clone();
        let info = blocking(move || {
            let root = r.root()?;
            let key = r.rel.to_disk(&r.folder.path);
            Ok(probes.get(&key, || root.open_file(&r.rel).ok(), &e, kind))
        })
        .await?;
        Ok(MediaItem {
            entry,
            kind,
            info,
            subtitles: Vec::new(),
            cover: None,
        })
    }

    /// Marks a folder as shown (or not) to the LAN media front.
    pub async fn set_folder_media(
        &self,
        who: &Principal,
        addr: &Address,
        media: bool,
    ) -> Result<()> {
        let folder = self.folder_for(who, addr, Op::Write).await?;
        self.inner
            .catalog
            .set_folder_media(&folder.id, media)
            .await?;
        self.reload_folders().await?;
        self.inner.media.forget(&folder.id);
        Ok(())
    }

    /// The folder of an address, if it is a media folder `who` may read.
    async fn media_folder_for(&self, who: &Principal, addr: &Address) -> Result<Arc<Folder>> {
        let folder = self.folder_for(who, addr, Op::Read).await?;
        if !folder.media {
            return Err(FabricError::NotFound);
        }
        Ok(folder)
    }

    /// The watcher saw changes at `paths` of a folder (or lost track:
    /// `rescan`): the media index follows.
    pub(crate) async fn media_touched(&self, folder_id: &str, paths: Vec<RelPath>, rescan: bool) {
        let Ok(folder) = self.folder_by_id(folder_id).await else {
            return;
        };
        if !folder.media {
            // Hidden from TVs now: the index is made afresh if it is shown
            // again, so nothing changed meanwhile is missed.
            self.inner.media.forget(&folder.id);
            return;
        }
        if let Err(e) = self.inner.media.touched(&folder, paths, rescan).await {
            tracing::warn!(folder = %folder.name, "cannot update the media index: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(media_kind("Film.MKV"), Some(MediaKind::Video));
        assert_eq!(media_kind("a.mp3"), Some(MediaKind::Audio));
        assert_eq!(media_kind("p.jpeg"), Some(MediaKind::Image));
        assert_eq!(media_kind("notes.txt"), None);
        assert_eq!(media_kind(".hidden.mp4"), None);
        assert_eq!(media_kind("mp4"), None);
        assert!(is_subtitle("film.srt") && is_subtitle("film.en.vtt"));
        assert!(!is_subtitle("film.txt"));
        assert_eq!(media_mime("x.flac"), "audio/flac");
        assert_eq!(media_mime("x.srt"), "text/srt");
        assert!(is_servable_media("a.srt") && !is_servable_media("a.sh"));
    }
}
