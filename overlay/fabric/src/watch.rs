//! Upkeep of local replicas while a server runs: each folder is scanned once
//! (start-up recovery), then watched for changes made directly on disk; folders
//! added later (for instance by the CLI beside a running server) are picked up
//! within a few seconds.

use crate::fabric::Fabric;
use crate::path::RelPath;
use crate::resource::Folder;
use crate::scan::ScanObserver;
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the folder list is re-read.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Events closer together than this are handled as one batch.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// The longest a batch of events waits before it is handled.
const MAX_BATCH: Duration = Duration::from_secs(1);

struct Watched {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opening or reading a file changes nothing; a close after writing does.
fn is_read(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

impl Fabric {
    /// Scans and watches every folder until the returned future is dropped.
    pub async fn maintain(self, obs: Arc<dyn ScanObserver>) {
        let mut watched: HashMap<String, Watched> = HashMap::new();
        let mut first = true;
        loop {
            if let Err(e) = self.reload_folders().await {
                tracing::warn!("cannot reload folders: {e}");
            }
            let folders = self.all_folders();
            watched.retain(|id, _| folders.iter().any(|f| &f.id == id));
            let media: Vec<&str> = folders
                .iter()
                .filter(|f| f.media)
                .map(|f| f.id.as_str())
                .collect();
            self.inner.media.keep_only(&media);
            let mut scanned = false;
            for folder in folders {
                if watched.contains_key(&folder.id) {
                    continue;
                }
                scanned = true;
                match self.watch(folder.clone()).await {
                    Ok(w) => {
                        watched.insert(folder.id.clone(), w);
                    }
                    Err(e) => {
                        tracing::warn!(folder = %folder.name, "cannot watch {}: {e}", folder.path.display())
                    }
                }
                if let Err(e) = self.scan_folder(&folder, first, obs.as_ref()).await {
                    tracing::warn!(folder = %folder.name, "scan failed: {e}");
                }
                if folder.media {
                    self.media_prewarm_folder(&folder).await;
                }
            }
            // Copies of what the scans found, now that the catalog is
            // complete (newest files first, within the budget); then, once,
            // the blobs nothing refers to any more.
            if scanned {
                match self.fill_copies().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(copies = n, "copies made of current content"),
                    Err(e) => tracing::warn!("cannot make copies of current content: {e}"),
                }
            }
            if first {
                match self.sweep_blobs().await {
                    Ok((0, _)) => {}
                    Ok((n, bytes)) => {
                        tracing::info!(blobs = n, bytes, "removed blobs nothing refers to")
                    }
                    Err(e) => tracing::warn!("cannot sweep the version store: {e}"),
                }
            }
            first = false;
            tokio::time::sleep(RELOAD_EVERY).await;
        }
    }

    async fn watch(&self, folder: Arc<Folder>) -> notify::Result<Watched> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Changes only: by default inotify would also report every open
        // and every read-only close, i.e. one event per file served (an
        // eighth of the CPU of a small-file benchmark went there). The
        // kernel filters them out with this mask. A write's close stays:
        // it says when a file written on disk is complete.
        let config = notify::Config::default()
            .with_event_kinds(notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE);
        let mut watcher = notify::RecommendedWatcher::new(
            move |ev| {
                let _ = tx.send(ev);
            },
            config,
        )?;
        // A recursive watch visits every directory (one inotify watch
        // each): a large folder takes a while, off the async threads.
        let path = folder.path.clone();
        let watcher = tokio::task::spawn_blocking(move || {
            watcher
                .watch(&path, RecursiveMode::Recursive)
                .map(|()| watcher)
        })
        .await
        .map_err(|e| notify::Error::generic(&e.to_string()))??;
        let task = tokio::spawn(self.clone().follow(folder, rx));
        Ok(Watched {
            _watcher: watcher,
            task,
        })
    }

    async fn follow(
        self,
        folder: Arc<Folder>,
        mut rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    ) {
        while let Some(ev) = rx.recv().await {
            let mut paths = BTreeSet::new();
            let mut rescan = false;
            let mut take = |ev: notify::Result<notify::Event>| match ev {
                Ok(ev) if ev.need_rescan() => rescan = true,
                Ok(ev) if is_read(&ev.kind) => {}
                Ok(ev) => paths.extend(ev.paths),
                Err(_) => rescan = true,
            };
            take(ev);
            // Gather what follows closely, but never for longer than
            // MAX_BATCH: steady traffic (reads of a busy folder) must not
            // hold changes back.
            let deadline = tokio::time::Instant::now() + MAX_BATCH;
            loop {
                let wait =
                    DEBOUNCE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(ev)) => take(ev),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if paths.is_empty() && !rescan {
                continue;
            }
            if rescan {
                if let Err(e) = self
                    .scan_folder(&folder, false, &crate::scan::NoProgress)
                    .await
                {
                    tracing::warn!(folder = %folder.name, "rescan failed: {e}");
                }
                self.media_touched(&folder.id, Vec::new(), true).await;
                continue;
            }
            let mut changed = Vec::new();
            for p in paths {
                let Some(rel) = RelPath::from_disk(&folder.path, &p) else {
                    continue;
                };
                if let Err(e) = self.reconcile(&folder, &rel).await {
                    tracing::warn!(folder = %folder.name, path = %rel, "cannot index a change: {e}");
                }
                changed.push(rel);
            }
            self.media_touched(&folder.id, changed, false).await;
        }
    }
}
