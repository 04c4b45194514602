//! Folder downloads as zip, streamed: entries are written into a pipe as
//! they are read, so nothing is buffered whole and no temp file is made.
//! Already-compressed media are stored, everything else deflated. Names are
//! UTF-8 (flagged as such in the archive).
//!
//! A failure half-way cannot change the status any more (it went out with
//! the first byte), so it aborts the response instead: the client sees a
//! broken transfer, never a 200 with a silently truncated archive. Symbolic
//! links are followed only within what the caller may read (the fabric's
//! listing leaves the others out), and a directory met again below itself
//! (a link loop) is skipped.

use super::AppState;
use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use fabric::{Address, Fabric, Principal};
use futures_util::AsyncWriteExt;
use tokio_util::compat::TokioAsyncWriteCompatExt;
use tokio_util::io::ReaderStream;

/// Size of the pipe between the zip writer and the response.
const PIPE: usize = 256 * 1024;

/// A streamed zip of the directory at `addr`, named `name.zip`.
pub fn download(state: &AppState, who: &Principal, addr: &Address, name: &str) -> Response {
    let (tx, rx) = tokio::io::duplex(PIPE);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (fabric, who, addr) = (state.fabric.clone(), who.clone(), addr.clone());
    // Deflating is CPU work: the writer runs on a blocking-pool thread of
    // its own (driving its async calls there), not on the async threads
    // that serve everyone else.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let result = runtime.block_on(write(&fabric, &who, &addr, tx));
        if let Err(e) = &result {
            tracing::warn!(folder = %addr, "zip download stopped: {e}");
        }
        let _ = done_tx.send(result.is_ok());
    });
    let mut r = Response::new(Body::from_stream(then_outcome(rx, done_rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        super::uri::attachment(&format!("{name}.zip")),
    );
    r
}

/// The bytes of `pipe`, then, once the writer is done, its outcome: a clean
/// end, or an error that makes the server abort the transfer (the status
/// went out with the first byte; a client must not take a truncated
/// archive for a whole one).
fn then_outcome(
    pipe: impl tokio::io::AsyncRead + Send + 'static,
    done: tokio::sync::oneshot::Receiver<bool>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    use futures_util::StreamExt;
    let outcome = futures_util::stream::once(async move {
        match done.await {
            Ok(true) => None,
            _ => Some(Err(std::io::Error::other("the zip could not be completed"))),
        }
    })
    .filter_map(std::future::ready);
    ReaderStream::with_capacity(pipe, PIPE).chain(outcome)
}

async fn write(
    fabric: &Fabric,
    who: &Principal,
    top: &Address,
    out: tokio::io::DuplexStream,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut zip = ZipFileWriter::new(out.compat_write());
    let top_inode = fabric.stat(who, top).await?.inode;
    // Each directory to write, with its name in the archive and the inodes
    // of the directories above it (a link back to one of them is a loop).
    let mut stack = vec![(top.clone(), String::new(), vec![top_inode])];
    while let Some((dir, prefix, above)) = stack.pop() {
        let mut entries = fabric.list(who, &dir).await?;
        entries.retain(|e| !fabric::is_os_metadata(&e.name));
        entries.sort_by(|a, b| b.name.cmp(&a.name)); // popped in name order
        for e in entries {
            let child = dir.with_path(e.path.clone());
            let name = format!("{prefix}{}", e.name);
            if e.is_dir() {
                if above.contains(&e.inode) {
                    tracing::info!(folder = %top, "zip: {name} leads back above itself; left out");
                    continue;
                }
                let b = ZipEntryBuilder::new(format!("{name}/").into(), Compression::Stored);
                zip.write_entry_whole(b, &[]).await?;
                let mut below = above.clone();
                below.push(e.inode);
                stack.push((child, format!("{name}/"), below));
                continue;
            }
            let compression = if already_compressed(&e.name) {
                Compression::Stored
            } else {
                Compression::Deflate
            };
            let b = ZipEntryBuilder::new(name.into(), compression).unix_permissions(0o644);
            let mut entry = zip.write_entry_stream(b).await?;
            let mut reader = fabric.open_file(who, &child).await?.into_reader();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf).await?;
                if n == 0 {
                    break;
                }
                entry.write_all(&buf[..n]).await?;
            }
            entry.close().await?;
        }
    }
    zip.close().await?;
    Ok(())
}

/// Media and archives gain nothing from deflate.
fn already_compressed(name: &str) -> bool {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    matches!(
        ext.as_str(),
        "jpg"
            | "jpeg"
            | "png"
            | "gif"
            | "webp"
            | "heic"
            | "avif"
            | "mp4"
            | "m4v"
            | "mkv"
            | "webm"
            | "mov"
            | "avi"
            | "mp3"
            | "m4a"
            | "aac"
            | "ogg"
            | "opus"
            | "flac"
            | "zip"
            | "gz"
            | "tgz"
            | "xz"
            | "zst"
            | "7z"
            | "rar"
            | "bz2"
            | "pdf"
            | "docx"
            | "xlsx"
            | "pptx"
            | "odt"
            | "ods"
            | "epub"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_failed_zip_ends_in_an_error_not_a_clean_end() {
        for ok in [true, false] {
            let (tx, done) = tokio::sync::oneshot::channel();
            let pipe: &'static [u8] = b"PK partial";
            tx.send(ok).unwrap();
            let items: Vec<_> = then_outcome(pipe, done).collect().await;
            assert_eq!(items[0].as_ref().unwrap().as_ref(), b"PK partial");
            assert_eq!(items.last().unwrap().is_err(), !ok, "ok = {ok}");
        }
        // A writer that vanished (a panic) counts as a failure.
        let (tx, done) = tokio::sync::oneshot::channel::<bool>();
        drop(tx);
        let items: Vec<_> = then_outcome(&b""[..], done).collect().await;
        assert!(items.last().unwrap().is_err());
    }
}
