//! Memory given back to the system when the node is idle.
//!
//! Two allocators live in the process: mimalloc for Rust code, and glibc's
//! malloc for the C code (SQLite). After the start-up scan of a large
//! library both held freed memory: glibc kept one arena per thread that
//! had talked to SQLite (about 4 MiB each), and mimalloc kept pages of
//! the scan's short-lived buffers. Measured with `benches/library.sh`
//! (31,000 files, `--no-dlna`): 56-59 MiB resident when idle before.

use std::time::Duration;

/// How often idle memory is handed back.
const EVERY: Duration = Duration::from_secs(20);

/// Caps glibc's arenas before any thread starts: SQLite's connection
/// threads then share two instead of keeping one each.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns what both allocators hold free to the system. Cheap when
/// there is nothing to return (a walk of the free lists).
#[allow(unsafe_code)]
pub fn give_back() {
    // SAFETY: plain calls into the allocators, safe from any thread.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}

/// Hands idle memory back every [`EVERY`], off the async threads.
pub fn spawn_trimmer() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(give_back).await;
        }
    })
}
