//! Crash safety: a server killed with SIGKILL in the middle of a large PUT
//! leaves the old file intact and no visible partial file; after a restart
//! the catalog agrees with the disk.

use crate::disk::settled;
use crate::fixtures::*;
use std::time::Duration;

on_both!(sigkill_during_put_keeps_the_old_file);

async fn sigkill_during_put_keeps_the_old_file(b: Backend) {
    let env = Env::new(b);
    let old = vec![b'A'; 8 << 20];
    std::fs::write(env.share().join("big.bin"), &old).unwrap();
    let mut srv = env.serve();
    settled(&env, "admin/share").await;

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let chunks = futures_util::stream::unfold(0u32, move |i| {
        let signal = if i == 8 { tx.take() } else { None };
        async move {
            if let Some(s) = signal {
                let _ = s.send(());
            }
            if i >= 8 {
                // Stall: the body is never finished.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Some((Ok::<_, std::io::Error>(vec![b'B'; 4 << 20]), i + 1))
        }
    });
    let url = srv.file("big.bin");
    let upload =
        tokio::spawn(async move { put_admin(&url, reqwest::Body::wrap_stream(chunks)).await });
    rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    upload.abort();

    assert_eq!(
        read(&env.share().join("big.bin")),
        old,
        "the old file was damaged"
    );
    let visible: Vec<String> = std::fs::read_dir(env.share())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".glow-tmp-"))
        .collect();
    assert!(
        visible
            .iter()
            .all(|n| ["big.bin", "hello.txt", "sub"].contains(&n.as_str())),
        "{visible:?}"
    );

    let srv = env.serve();
    settled(&env, "admin/share").await;
    let left: Vec<String> = std::fs::read_dir(env.share())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".glow-tmp-"))
        .collect();
    assert!(
        left.is_empty(),
        "partial uploads left after restart: {left:?}"
    );
    let html = get_admin(&srv.file("")).await.text().await.unwrap();
    assert!(!html.contains(".glow-tmp"));
    let body = get_admin(&srv.file("big.bin")).await.bytes().await.unwrap();
    assert_eq!(body.len(), old.len());
    assert!(body.iter().all(|b| *b == b'A'));
}
