//! Changes made directly on disk while the server runs: served at once,
//! versioned when the folder keeps copies, reconciled into the catalog.

use crate::fixtures::*;
use reqwest::StatusCode;

on_both!(
    copies_follow_the_policy_and_the_budget,
    disk_edits_are_served_and_versioned,
    folders_without_copies_version_only_glow_writes,
    cli_works_beside_a_running_server
);

/// Waits until the server's scan has brought the catalog in line with the disk.
pub async fn settled(env: &Env, folder: &str) {
    let mut last = String::new();
    for _ in 0..200 {
        let out = env.run(&["folder", "verify", folder]);
        if out.status.success() {
            return;
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("catalog of {folder} never agreed with the disk:\n{last}");
}

/// Waits until the folder's copies are made (they come after the first
/// scan, in the background).
async fn copies_made(env: &Env, folder: &str) {
    eventually(30, "copies of current content", || async {
        env.ok(&["folder", "list"])
            .lines()
            .any(|l| l.starts_with(&format!("{folder}\t")) && !l.contains("(0 B of"))
    })
    .await;
}

/// Whether the version store holds a copy of `content`.
fn stored(env: &Env, content: &[u8]) -> bool {
    let h = blake3::hash(content).to_hex().to_string();
    env.data_dir()
        .join("blobs")
        .join(&h[..2])
        .join(&h[2..4])
        .join(&h)
        .exists()
}

async fn disk_edits_are_served_and_versioned(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    settled(&env, "admin/share").await;
    copies_made(&env, "admin/share").await;
    std::fs::write(env.share().join("hello.txt"), b"edited in an editor\n").unwrap();
    let url = srv.file("hello.txt");
    eventually(10, "new content served", || async {
        get_admin(&url).await.text().await.unwrap() == "edited in an editor\n"
    })
    .await;
    eventually(10, "the replaced content listed as a version", || async {
        env.ok(&["versions", "admin/share/hello.txt"])
            .contains("13 bytes\tdisk-edit via disk by disk")
    })
    .await;
    let id = env
        .ok(&["versions", "admin/share/hello.txt"])
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    env.ok(&["restore", "admin/share/hello.txt", &id]);
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");

    // A new file and a removed file on disk.
    std::fs::write(env.share().join("sub/new.txt"), b"new").unwrap();
    eventually(10, "new file served", || async {
        get_admin(&srv.file("sub/new.txt")).await.status() == StatusCode::OK
    })
    .await;
    settled(&env, "admin/share").await;
    std::fs::remove_file(env.share().join("sub/new.txt")).unwrap();
    eventually(10, "a file deleted on disk lands in the trash", || async {
        env.ok(&["trash", "list", "admin"])
            .contains("share/sub/new.txt")
    })
    .await;
    settled(&env, "admin/share").await;
}

async fn folders_without_copies_version_only_glow_writes(b: Backend) {
    let env = Env::new(b);
    std::fs::create_dir(env.path("plain")).unwrap();
    std::fs::write(env.path("plain/f.txt"), b"original").unwrap();
    let srv = env.serve();
    // Added beside the running server; it picks the folder up by itself.
    env.ok(&[
        "folder",
        "add",
        "plain",
        env.path("plain").to_str().unwrap(),
        "--no-keep-copies",
    ]);
    settled(&env, "admin/plain").await;
    let url = format!("{}/u/admin/plain/f.txt", srv.base);
    assert_eq!(get_admin(&url).await.text().await.unwrap(), "original");
    std::fs::write(env.path("plain/f.txt"), b"edited on disk").unwrap();
    eventually(10, "edit served", || async {
        get_admin(&url).await.text().await.unwrap() == "edited on disk"
    })
    .await;
    settled(&env, "admin/plain").await;
    assert!(
        env.ok(&["versions", "admin/plain/f.txt"])
            .starts_with("no earlier versions")
    );
    assert_eq!(
        put_admin(&url, "via http").await.status(),
        StatusCode::NO_CONTENT
    );
    let v = env.ok(&["versions", "admin/plain/f.txt"]);
    assert!(v.contains("14 bytes\toverwrite via http by admin"), "{v}");
    // No copy of the current content sits in the blob store.
    let blobs = walk_files(&env.data_dir().join("blobs"));
    let current = blake3::hash(b"via http").to_hex().to_string();
    assert!(!blobs.iter().any(|p| p.ends_with(&current)));
}

async fn cli_works_beside_a_running_server(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let out = env.ok(&["user", "add", "carol"]);
    let pw = out
        .split("password: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    std::fs::create_dir(env.path("carols")).unwrap();
    std::fs::write(env.path("carols/c.txt"), b"carol's").unwrap();
    env.ok(&[
        "folder",
        "add",
        "docs",
        env.path("carols").to_str().unwrap(),
        "--owner",
        "carol",
    ]);
    let r = client()
        .get(format!("{}/u/carol/docs/c.txt", srv.base))
        .basic_auth("carol", Some(&pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "carol's");
    assert!(env.ok(&["folder", "list"]).contains("carol/docs"));
}

fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

/// Indexing a folder of MP3s printed one WARN per file from a metadata
/// crate ("MPEG: Using bitrate to estimate duration"): other crates'
/// chatter stays out of the default log; Glow's own lines stay in.
#[tokio::test]
async fn third_party_chatter_stays_out_of_the_default_log() {
    let env = Env::new(Backend::Sqlite);
    // MP3 frames with no Xing header: the crate estimates, and says so.
    let frame: Vec<u8> = [0xFF, 0xFB, 0x90, 0x00]
        .into_iter()
        .chain(std::iter::repeat_n(0, 413))
        .collect();
    for i in 0..5 {
        std::fs::write(env.share().join(format!("plain{i}.mp3")), frame.repeat(20)).unwrap();
    }
    let mut cmd = env.glow();
    cmd.env_remove("GLOW_LOG")
        .args(["serve", "--http", "127.0.0.1:0"])
        .arg(env.share());
    let srv = Server::start(cmd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !srv.logged("media indexed") {
        assert!(
            std::time::Instant::now() < deadline,
            "no 'media indexed' line"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = srv.log.lock().unwrap().join("\n");
    assert!(!log.contains("WARN"), "{log}");
    assert!(!log.contains("MPEG"), "{log}");
}

/// Writers in other processes (the CLI's restore and purge, next the sync
/// engine) used to bypass the server's in-process folder lock. The lock is
/// now an `flock` on a file in the data dir: while another process holds
/// it (here util-linux's `flock`), the server's writes to that folder wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_another_process_holding_the_folder_lock() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    let r = put_admin(&srv.file("hello.txt"), "first").await;
    assert!(r.status().is_success());
    let lock = std::fs::read_dir(env.data_dir().join("locks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("folder-")
        })
        .expect("a folder lock file");
    // `-o`: flock itself holds the lock, not the command it runs, so
    // killing it releases the lock.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "600"])
        .spawn()
        .expect("util-linux flock");
    // Until the holder has it, `flock -n` can still take it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::process::Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = srv.file("hello.txt");
    let put = tokio::spawn(async move { put_admin(&url, "second").await.status() });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(!put.is_finished(), "the write waits for the other process");
    assert_eq!(read(&env.share().join("hello.txt")), b"first");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(put.await.unwrap().is_success());
    assert_eq!(read(&env.share().join("hello.txt")), b"second");
}

/// `glow serve ~/Videos` copied a whole media library into the data dir.
/// Copies now cover small files that are not media by default, come after
/// the first scan, stay within a budget (the oldest go first), and show in
/// the banner and `glow folder list`.
async fn copies_follow_the_policy_and_the_budget(b: Backend) {
    let env = Env::new(b);
    let sh = env.share();
    std::fs::write(sh.join("notes.txt"), b"my notes").unwrap();
    std::fs::copy("tests/media/clip.mp4", sh.join("clip.mp4")).unwrap();
    // More media files than one page of the fill, all newer than the
    // notes: they keep no copy, and must not hide the notes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::create_dir(sh.join("songs")).unwrap();
    for i in 0..300 {
        std::fs::write(sh.join(format!("songs/{i}.mp3")), format!("song {i}")).unwrap();
    }
    let big = std::fs::File::create(sh.join("disk.img")).unwrap();
    big.set_len((64 << 20) + 1).unwrap(); // sparse: costs nothing here
    drop(big);
    let srv = env.serve_with(&["--copies-budget", "1MiB", sh.to_str().unwrap()]);
    assert!(srv.banner.contains("copies"), "{}", srv.banner);
    assert!(srv.banner.contains("of 1.0 MiB"), "{}", srv.banner);
    settled(&env, "admin/share").await;
    copies_made(&env, "admin/share").await;
    assert!(stored(&env, b"my notes"), "a small document has its copy");
    assert!(!stored(&env, &read(&sh.join("clip.mp4"))), "media: no copy");
    let list = env.ok(&["folder", "list"]);
    assert!(list.contains("copies small"), "{list}");
    assert!(list.contains("copies on this node:"), "{list}");

    // Writes through Glow: versioned whatever the policy, the new content
    // copied within the budget, the oldest copies going first.
    for i in 0..4u8 {
        let body = vec![i; 400 << 10];
        let r = put_admin(&srv.file(&format!("part{i}.bin")), body).await;
        assert!(r.status().is_success());
    }
    assert!(
        stored(&env, &vec![3u8; 400 << 10]),
        "the newest copy is kept"
    );
    eventually(10, "the oldest copy gone", || async {
        !stored(&env, &vec![0u8; 400 << 10])
    })
    .await;
    let node = env
        .ok(&["folder", "list"])
        .lines()
        .find(|l| l.starts_with("copies on this node:"))
        .unwrap()
        .to_owned();
    // "copies on this node: 800.0 KiB of 1.0 MiB (--copies-budget)"
    let words: Vec<&str> = node.split_whitespace().collect();
    let (used, unit) = (words[4].parse::<f64>().unwrap(), words[5]);
    assert!(node.contains("of 1.0 MiB"), "{node}");
    assert!(
        unit == "B" || unit == "KiB" || (unit == "MiB" && used <= 1.0),
        "{node}"
    );
    // An overwrite keeps the old content as a version even without a copy.
    let r = put_admin(&srv.file("clip.mp4"), "replaced").await;
    assert!(r.status().is_success());
    let versions = env.ok(&["versions", "admin/share/clip.mp4"]);
    assert!(versions.contains("overwrite"), "{versions}");
    // A folder can ask for every file, or none.
    env.ok(&["folder", "copies", "admin/share", "off"]);
    assert!(env.ok(&["folder", "list"]).contains("copies off"));
}
