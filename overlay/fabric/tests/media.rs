//! The media library and playback tickets on a real temp dir and SQLite
//! catalog: what the LAN media principal may see, how the index follows the
//! disk (through the real watcher), and that tickets open one file only.

use fabric::{
    Address, Fabric, FabricConfig, FabricError, FolderOptions, MediaKind, Principal, RelPath,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/media")
        .join(name)
}

struct World {
    _tmp: tempfile::TempDir,
    fabric: Fabric,
    media: PathBuf,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("Media");
    let private = tmp.path().join("Private");
    std::fs::create_dir_all(media.join("Films")).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    std::fs::copy(fixture("clip.mp4"), media.join("Films/clip.mp4")).unwrap();
    std::fs::copy(fixture("clip.srt"), media.join("Films/clip.srt")).unwrap();
    std::fs::copy(fixture("song.mp3"), media.join("song.mp3")).unwrap();
    std::fs::copy(fixture("photo.jpg"), media.join("photo.jpg")).unwrap();
    std::fs::write(media.join("notes.txt"), b"not media").unwrap();
    std::fs::copy(fixture("clip.mp4"), private.join("secret.mp4")).unwrap();
    let fabric = Fabric::open(FabricConfig::new(tmp.path().join("data")))
        .await
        .unwrap();
    fabric
        .create_user("alice", "alice-password", false)
        .await
        .unwrap();
    let opts = FolderOptions {
        media: true,
        ..FolderOptions::default()
    };
    fabric
        .add_folder("alice", "Media", &media, opts)
        .await
        .unwrap();
    fabric
        .add_folder("alice", "Private", &private, FolderOptions::default())
        .await
        .unwrap();
    let media = std::fs::canonicalize(media).unwrap();
    World {
        _tmp: tmp,
        fabric,
        media,
    }
}

fn addr(folder: &str, path: &str) -> Address {
    Address::new("alice", folder, RelPath::parse(path).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_media_sees_media_folders_only() {
    let w = world().await;
    let lan = Principal::LanMedia;
    let folders = w.fabric.media_folders(&lan).await.unwrap();
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].name, "Media");
    let root = w.fabric.media_dir(&lan, &addr("Media", "")).await.unwrap();
    let names: Vec<&str> = root
        .dir
        .items
        .iter()
        .map(|i| i.entry.name.as_str())
        .collect();
    assert_eq!(names, ["photo.jpg", "song.mp3"], "notes.txt is not media");
    assert_eq!(root.dir.dirs.len(), 1);
    assert_eq!(root.child_counts, [1]);
    let clip = w
        .fabric
        .media_item(&lan, &addr("Media", "Films/clip.mp4"))
        .await
        .unwrap();
    assert_eq!(clip.kind, MediaKind::Video);
    assert_eq!(clip.subtitles, ["clip.srt"]);
    assert_eq!(clip.info.width, Some(320));
    let song = w
        .fabric
        .media_item(&lan, &addr("Media", "song.mp3"))
        .await
        .unwrap();
    assert_eq!(song.title(), "Test song");
    let (mime, _) = w
        .fabric
        .media_cover(&lan, &addr("Media", "song.mp3"))
        .await
        .unwrap();
    assert_eq!(mime, "image/jpeg");
    let videos = w.fabric.media_view(&lan, MediaKind::Video).await.unwrap();
    assert_eq!(videos.len(), 1);

    // Nothing outside media folders, and no writes or history at all.
    for bad in [
        addr("Private", ""),
        addr("Private", "secret.mp4"),
        addr("Nope", ""),
    ] {
        assert!(matches!(
            w.fabric.media_dir(&lan, &bad).await,
            Err(FabricError::NotFound)
        ));
        assert!(matches!(
            w.fabric.open_file(&lan, &bad).await,
            Err(FabricError::NotFound)
        ));
    }
    assert!(
        w.fabric
            .open_file(&lan, &addr("Media", "song.mp3"))
            .await
            .is_ok()
    );
    assert!(
        w.fabric
            .write(&lan, &addr("Media", "new.mp3"), &b"x"[..], "test")
            .await
            .is_err()
    );
    assert!(
        w.fabric
            .delete(&lan, &addr("Media", "song.mp3"), "test")
            .await
            .is_err()
    );
    assert!(
        w.fabric
            .versions(&lan, &addr("Media", "song.mp3"))
            .await
            .is_err()
    );
    assert!(w.fabric.namespace(&lan, "alice").await.is_err());

    // Turning the flag off hides the folder at once.
    w.fabric
        .set_folder_media(&Principal::System, &addr("Media", ""), false)
        .await
        .unwrap();
    assert!(w.fabric.media_folders(&lan).await.unwrap().is_empty());
    assert!(
        w.fabric
            .open_file(&lan, &addr("Media", "song.mp3"))
            .await
            .is_err()
    );
    // And on again: shown, from a fresh index.
    w.fabric
        .set_folder_media(&Principal::System, &addr("Media", ""), true)
        .await
        .unwrap();
    assert!(
        w.fabric
            .media_item(&lan, &addr("Media", "song.mp3"))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_the_disk() {
    let w = world().await;
    let lan = Principal::LanMedia;
    let mut changes = w.fabric.media_changes();
    let upkeep = tokio::spawn(w.fabric.clone().maintain(Arc::new(fabric::NoProgress)));
    let before = w.fabric.media_update_id();
    // Let the upkeep loop start watching.
    wait_for(|| async { w.fabric.media_dir(&lan, &addr("Media", "")).await.is_ok() }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    std::fs::create_dir(w.media.join("New")).unwrap();
    std::fs::copy(fixture("tone.flac"), w.media.join("New/tone.flac")).unwrap();
    let change = tokio::time::timeout(Duration::from_secs(20), changes.recv())
        .await
        .expect("a change is announced")
        .unwrap();
    assert!(change.update_id > before);
    wait_for(|| async {
        w.fabric
            .media_item(&lan, &addr("Media", "New/tone.flac"))
            .await
            .is_ok()
    })
    .await;
    assert!(w.fabric.media_update_id() > before);
    let audio = w.fabric.media_view(&lan, MediaKind::Audio).await.unwrap();
    assert_eq!(audio.len(), 2);

    std::fs::remove_dir_all(w.media.join("Films")).unwrap();
    wait_for(|| async {
        w.fabric
            .media_dir(&lan, &addr("Media", "Films"))
            .await
            .is_err()
    })
    .await;
    let videos = w.fabric.media_view(&lan, MediaKind::Video).await.unwrap();
    assert!(videos.is_empty());
    upkeep.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_open_one_file_until_they_expire() {
    let w = world().await;
    let alice = w
        .fabric
        .authenticate("alice", "alice-password", None)
        .await
        .unwrap();
    let song = addr("Private", "secret.mp4");
    let t = w
        .fabric
        .issue_ticket(&alice, &song, Duration::from_secs(60))
        .await
        .unwrap();
    let who = w.fabric.open_ticket(&t, &song).await.unwrap();
    assert!(w.fabric.open_file(&who, &song).await.is_ok());
    // Only that file, only reading.
    assert!(
        w.fabric
            .open_file(&who, &addr("Media", "song.mp3"))
            .await
            .is_err()
    );
    assert!(w.fabric.list(&who, &addr("Private", "")).await.is_err());
    assert!(
        w.fabric
            .write(&who, &song, &b"x"[..], "test")
            .await
            .is_err()
    );
    // A ticket for one file does not open another.
    assert!(matches!(
        w.fabric.open_ticket(&t, &addr("Media", "song.mp3")).await,
        Err(FabricError::NotFound)
    ));
    // The last digit changed (to another one: a forgery that equals the
    // ticket is no forgery).
    let last = if t.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &t[..t.len() - 1]);
    assert!(w.fabric.open_ticket(&forged, &song).await.is_err());
    assert!(w.fabric.open_ticket("garbage", &song).await.is_err());
    assert!(w.fabric.open_ticket("zz-00", &song).await.is_err());
    // Directories cannot be played; others' files cannot be ticketed.
    assert!(
        w.fabric
            .issue_ticket(&alice, &addr("Media", "Films"), Duration::from_secs(60))
            .await
            .is_err()
    );
    assert!(
        w.fabric
            .issue_ticket(&Principal::LanMedia, &song, Duration::from_secs(60))
            .await
            .is_err()
    );
    // Expired: an old expiry with a valid MAC is refused as gone.
    let short = w
        .fabric
        .issue_ticket(&alice, &song, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        w.fabric.open_ticket(&short, &song).await,
        Err(FabricError::Gone(_))
    ));
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out");
}
