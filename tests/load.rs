//! Load held without an error: a thousand HTTP and WebDAV clients at once,
//! each on its own connection, and a hundred SFTP sessions at once; the
//! server's peak memory is printed (ARCHITECTURE.md keeps the numbers).
//! Counts, not timings: nothing here measures speed.

use crate::fixtures::*;
use reqwest::{Method, StatusCode};
use std::process::Stdio;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_web_clients_and_a_hundred_sftp_sessions() {
    const CLIENTS: usize = 1000;
    const SESSIONS: usize = 100;
    let env = Env::new(Backend::Sqlite);
    for i in 0..50 {
        std::fs::write(env.share().join(format!("f{i}.txt")), vec![b'x'; 4096]).unwrap();
    }
    let srv = env.serve();
    let idle = srv.peak_rss();

    // Every client holds its own connection until all are connected.
    let all_in = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (base, all_in) = (srv.base.clone(), all_in.clone());
        tasks.push(tokio::spawn(async move {
            let c = crate::fixtures::client_builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let file = format!("{base}/u/admin/share/f{}.txt", i % 50);
            let r = c
                .get(&file)
                .basic_auth("admin", Some(ADMIN_PW))
                .send()
                .await?;
            let first = (r.status(), r.bytes().await?.len());
            all_in.wait().await;
            let r = c
                .request(
                    Method::from_bytes(b"PROPFIND").unwrap(),
                    format!("{base}/dav/share/"),
                )
                .basic_auth("admin", Some(ADMIN_PW))
                .header("Depth", "1")
                .send()
                .await?;
            let listing = (r.status(), r.text().await?.matches("<D:response>").count());
            let r = c
                .get(&file)
                .basic_auth("admin", Some(ADMIN_PW))
                .send()
                .await?;
            Ok::<_, reqwest::Error>((first, listing, r.status()))
        }));
    }
    for t in tasks {
        let (first, listing, again) = t.await.unwrap().expect("no client error");
        assert_eq!(first, (StatusCode::OK, 4096));
        assert_eq!(listing.0.as_u16(), 207);
        assert!(listing.1 >= 52, "{}", listing.1);
        assert_eq!(again, StatusCode::OK);
    }
    let after_web = srv.peak_rss();

    // A hundred SFTP sessions, all open at once (each waits a moment in
    // the middle of its batch).
    let s = crate::sftp::Sftp::new(&env, &srv);
    let mut children = Vec::new();
    for i in 0..SESSIONS {
        let batch = env.tmp.path().join(format!("load-batch-{i}"));
        std::fs::write(
            &batch,
            format!(
                "ls share\nget share/f{}.txt /dev/null\n!sleep 3\nput {} share/up{i}.txt\n",
                i % 50,
                batch.display()
            ),
        )
        .unwrap();
        children.push(
            s.with_password("sftp", ADMIN_PW)
                .arg("-P")
                .arg(s.port.to_string())
                .arg("-b")
                .arg(&batch)
                .arg("admin@127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "session {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..SESSIONS {
        assert!(env.share().join(format!("up{i}.txt")).exists());
    }
    let after_sftp = srv.peak_rss();
    eprintln!(
        "load: peak RSS idle {} MiB, after {CLIENTS} web clients {} MiB, after {SESSIONS} SFTP sessions {} MiB",
        idle >> 20,
        after_web >> 20,
        after_sftp >> 20
    );
    assert!(after_sftp < 1 << 30, "peak RSS {} MiB", after_sftp >> 20);
    // And the node still answers.
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK);
}
