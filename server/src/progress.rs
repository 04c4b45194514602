//! Progress of long scans: a bar on a terminal, a log line every few seconds
//! otherwise.

use fabric::ScanObserver;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the plain reporter logs.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Reports scan progress to a person.
pub struct ScanProgress {
    bar: Mutex<Option<ProgressBar>>,
    terminal: bool,
    done: AtomicU64,
    total: AtomicU64,
    last_log: Mutex<Instant>,
}

impl ScanProgress {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub fn new() -> ScanProgress {
        ScanProgress {
            bar: Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_log: Mutex::new(Instant::now()),
        }
    }
}

impl ScanObserver for ScanProgress {
    fn started(&self, folder: &str, files: u64, bytes: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(bytes, Ordering::Relaxed);
        if files == 0 {
            return;
        }
        if self.terminal {
            let bar = ProgressBar::new(bytes);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("indexing {folder} ({files} files)"));
            *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
        } else {
            tracing::info!(folder, files, bytes, "indexing");
        }
    }

    fn advanced(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let total = self.total.load(Ordering::Relaxed).max(1);
            tracing::info!(
                "indexing: {} of {} MiB ({}%)",
                done >> 20,
                total >> 20,
                done * 100 / total
            );
        }
    }

    fn finished(&self, folder: &str, changed: u64) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
        if changed > 0 {
            tracing::info!(folder, changed, "folder indexed");
        }
    }
}
