//! Folder sync's door into the fabric, between two fabrics on real temp
//! dirs: one replica's index read after a cursor and applied on the other
//! (as `overlay/sync` does over the network), content checked against its
//! hash, versions and trash on the receiving side, conflicts, and entries
//! that try to leave the folder.

use fabric::sync::{Applied, Need, RemoteEntry};
use fabric::{Address, Fabric, FabricConfig, FolderOptions, Principal};
use std::path::PathBuf;

const SYS: Principal = Principal::System;
const KEY: &str = "alice/docs";

struct Node {
    _tmp: tempfile::TempDir,
    f: Fabric,
    dir: PathBuf,
}

async fn node() -> Node {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fabric::open(FabricConfig::new(tmp.path().join("data")))
        .await
        .unwrap();
    f.create_user("alice", "alice-password-1", false)
        .await
        .unwrap();
    let dir = tmp.path().join("docs");
    std::fs::create_dir(&dir).unwrap();
    f.add_folder("alice", "docs", &dir, FolderOptions::default())
        .await
        .unwrap();
    Node { _tmp: tmp, f, dir }
}

fn addr(path: &str) -> Address {
    Address::parse(&format!("{KEY}/{path}")).unwrap()
}

async fn write(n: &Node, path: &str, body: &[u8]) {
    n.f.write(&SYS, &addr(path), body, "test").await.unwrap();
}

/// `to` takes everything in `from`'s index, as a pull does (content from
/// `from`'s disk). Returns what each entry did.
async fn sync(from: &Node, to: &Node) -> Vec<Applied> {
    let peer = from.f.node_id().to_string();
    let since =
        to.f.sync_cursor(KEY, &peer)
            .await
            .unwrap()
            .map_or(0, |c| c.1);
    let batch = from.f.index_since(KEY, since).await.unwrap();
    let (index_id, rows) = (batch.index_id, batch.entries);
    let mut out = Vec::new();
    let mut last = batch.until;
    for row in &rows {
        last = last.max(row.sequence);
        let e = RemoteEntry::from(row);
        let body: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>> =
            match to.f.remote_need(KEY, &e).await.unwrap() {
                Need::Nothing => continue,
                Need::Apply => None,
                Need::Content => {
                    let (file, _) = from
                        .f
                        .local_content(KEY, &e.hash.unwrap())
                        .await
                        .unwrap()
                        .unwrap();
                    Some(Box::new(tokio::fs::File::from_std(file)))
                }
            };
        out.push(to.f.apply_remote(KEY, &e, body).await.unwrap());
    }
    to.f.set_sync_cursor(KEY, &peer, &index_id, last)
        .await
        .unwrap();
    out
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_change_arrives_byte_exact_and_what_it_replaces_is_a_version() {
    let (a, b) = (node().await, node().await);
    write(&a, "report.txt", b"first").await;
    sync(&a, &b).await;
    assert_eq!(std::fs::read(b.dir.join("report.txt")).unwrap(), b"first");
    write(&a, "report.txt", b"second, longer").await;
    let applied = sync(&a, &b).await;
    assert_eq!(applied, vec![Applied::Changed]);
    assert_eq!(
        std::fs::read(b.dir.join("report.txt")).unwrap(),
        b"second, longer"
    );
    let versions = b.f.versions(&SYS, &addr("report.txt")).await.unwrap();
    assert_eq!(versions.len(), 1, "the replaced content is kept on b");
    // Nothing echoes back: a finds b's entry equal to its own.
    assert!(sync(&b, &a).await.iter().all(|x| *x != Applied::Changed));
    assert!(sync(&a, &b).await.is_empty(), "the cursor moved on");
}

#[tokio::test]
async fn content_that_does_not_match_its_hash_changes_nothing() {
    let (a, b) = (node().await, node().await);
    write(&a, "x.bin", b"good content").await;
    sync(&a, &b).await;
    write(&a, "x.bin", b"new content").await;
    let rows = a.f.index_since(KEY, 0).await.unwrap().entries;
    let e = RemoteEntry::from(rows.iter().find(|r| r.path == "x.bin").unwrap());
    assert_eq!(b.f.remote_need(KEY, &e).await.unwrap(), Need::Content);
    let forged: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(&b"evil content"[..]);
    let err = b.f.apply_remote(KEY, &e, Some(forged)).await.unwrap_err();
    assert!(err.to_string().contains("does not match its hash"), "{err}");
    assert_eq!(std::fs::read(b.dir.join("x.bin")).unwrap(), b"good content");
    assert_eq!(names(&b.dir), vec!["x.bin"], "no temp file is left behind");
    // A body cut short is refused the same way.
    let short: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(&b"new"[..]);
    assert!(b.f.apply_remote(KEY, &e, Some(short)).await.is_err());
    // And a content-less apply of a file that needs content.
    assert!(b.f.apply_remote(KEY, &e, None).await.is_err());
    assert_eq!(std::fs::read(b.dir.join("x.bin")).unwrap(), b"good content");
}

#[tokio::test]
async fn entries_cannot_name_anything_outside_the_folder() {
    let (a, b) = (node().await, node().await);
    write(&a, "x.txt", b"x").await;
    let rows = a.f.index_since(KEY, 0).await.unwrap().entries;
    let good = RemoteEntry::from(&rows[0]);
    let outside = b.dir.parent().unwrap().join("escaped.txt");
    for path in [
        "../escaped.txt",
        "a/../../escaped.txt",
        "..",
        ".",
        "a\\..\\x",
        &format!("{}x", fabric::path::TEMP_PREFIX),
    ] {
        let e = RemoteEntry {
            path: path.into(),
            ..good.clone()
        };
        let body: Box<dyn tokio::io::AsyncRead + Unpin + Send> = Box::new(&b"x"[..]);
        let need = b.f.remote_need(KEY, &e).await;
        let applied = b.f.apply_remote(KEY, &e, Some(body)).await;
        assert!(
            need.is_err() || need.as_ref().is_ok_and(|n| *n == Need::Nothing),
            "{path}: {need:?}"
        );
        assert!(
            applied.is_err() || applied.as_ref().is_ok_and(|a| *a == Applied::Skipped),
            "{path}: {applied:?}"
        );
    }
    assert!(!outside.exists());
    // A folder this node has no replica of.
    assert!(b.f.remote_need("alice/other", &good).await.is_err());
}

#[tokio::test]
async fn concurrent_edits_keep_both_contents_on_both_replicas() {
    let (a, b) = (node().await, node().await);
    write(&a, "plan.txt", b"base").await;
    sync(&a, &b).await;
    write(&a, "plan.txt", b"edited on a").await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&b, "plan.txt", b"edited on b, later").await;
    // b finds the two changes concurrent and keeps both; a then takes b's
    // resolution (its vector covers both) and the copy.
    let on_b = sync(&a, &b).await;
    assert!(
        on_b.iter().any(|x| matches!(x, Applied::Conflict(_))),
        "{on_b:?}"
    );
    sync(&b, &a).await;
    sync(&a, &b).await;
    for n in [&a, &b] {
        let all = names(&n.dir);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            std::fs::read(n.dir.join("plan.txt")).unwrap(),
            b"edited on b, later"
        );
        let copy = all.iter().find(|x| x.contains(".sync-conflict-")).unwrap();
        assert!(copy.starts_with("plan.sync-conflict-") && copy.ends_with(".txt"));
        assert_eq!(std::fs::read(n.dir.join(copy)).unwrap(), b"edited on a");
    }
    assert_eq!(names(&a.dir), names(&b.dir), "the same copy name on both");
    // Settled: nothing more moves.
    assert!(sync(&a, &b).await.iter().all(|x| *x != Applied::Changed));
    assert!(sync(&b, &a).await.iter().all(|x| *x != Applied::Changed));
}

#[tokio::test]
async fn a_deletion_lands_in_the_trash_and_a_rename_reuses_local_content() {
    let (a, b) = (node().await, node().await);
    write(&a, "old name.txt", b"some content").await;
    write(&a, "gone.txt", b"to delete").await;
    sync(&a, &b).await;
    a.f.delete(&SYS, &addr("gone.txt"), "test").await.unwrap();
    a.f.rename(
        &SYS,
        &addr("old name.txt"),
        &addr("new name.txt"),
        false,
        "test",
    )
    .await
    .unwrap();
    sync(&a, &b).await;
    assert_eq!(names(&b.dir), vec!["new name.txt"]);
    assert_eq!(
        std::fs::read(b.dir.join("new name.txt")).unwrap(),
        b"some content"
    );
    let trash = b.f.trash(&SYS, "alice").await.unwrap();
    assert!(
        trash.iter().any(|t| t.path.as_str() == "gone.txt"),
        "{trash:?}"
    );
}

#[tokio::test]
async fn ignored_paths_are_neither_sent_nor_taken() {
    let (a, b) = (node().await, node().await);
    // a leaves out temp files and its build output; b will not take logs.
    write(&a, ".glowignore", b"// a's rules\n*.tmp\n/build/\n").await;
    write(&b, ".glowignore", b"*.log\n").await;
    write(&a, "keep.txt", b"kept").await;
    write(&a, "scratch.tmp", b"scratch").await;
    a.f.mkdir(&SYS, &addr("build")).await.unwrap();
    write(&a, "build/app", b"binary").await;
    write(&a, "run.log", b"log").await;
    write(&a, ".DS_Store", b"finder").await;
    sync(&a, &b).await;
    assert_eq!(names(&b.dir), vec![".glowignore", "keep.txt"]);
    assert_eq!(
        std::fs::read(b.dir.join(".glowignore")).unwrap(),
        b"*.log\n",
        "each replica keeps its own rules"
    );
    // The cursor moved past what was left out: later changes still come.
    write(&a, "later.txt", b"later").await;
    sync(&a, &b).await;
    assert!(b.dir.join("later.txt").exists());
}

#[tokio::test]
async fn content_put_together_in_place_starts_from_the_previous_version() {
    use std::os::unix::fs::FileExt;
    let (a, b) = (node().await, node().await);
    write(&a, "doc.txt", b"from the laptop").await;
    sync(&a, &b).await;
    write(&a, "doc.txt", b"edited, and longer").await;
    let rows = a.f.index_since(KEY, 0).await.unwrap().entries;
    let e = RemoteEntry::from(rows.iter().find(|r| r.path == "doc.txt").unwrap());
    let inc = b.f.begin_remote(KEY, &e).await.unwrap();
    assert_eq!(inc.base, fabric::sync::Base::Previous);
    // Only the changed bytes are written, at their offsets.
    inc.file().write_all_at(b"edited, and longer", 0).unwrap();
    assert_eq!(
        b.f.finish_remote(KEY, &e, inc).await.unwrap(),
        Applied::Changed
    );
    assert_eq!(
        std::fs::read(b.dir.join("doc.txt")).unwrap(),
        b"edited, and longer"
    );
    // A transfer cut short resumes from what it wrote; wrong bytes are
    // refused at the end and the partial file goes.
    write(&a, "doc.txt", b"third version").await;
    let rows = a.f.index_since(KEY, 0).await.unwrap().entries;
    let e = RemoteEntry::from(rows.iter().find(|r| r.path == "doc.txt").unwrap());
    let inc = b.f.begin_remote(KEY, &e).await.unwrap();
    inc.file().write_all_at(b"third", 0).unwrap();
    drop(inc);
    let inc = b.f.begin_remote(KEY, &e).await.unwrap();
    assert_eq!(inc.base, fabric::sync::Base::Resumed);
    inc.file().write_all_at(b" wrong!!", 5).unwrap();
    assert!(b.f.finish_remote(KEY, &e, inc).await.is_err());
    assert_eq!(names(&b.dir), vec!["doc.txt"], "no partial file is left");
    assert_eq!(
        std::fs::read(b.dir.join("doc.txt")).unwrap(),
        b"edited, and longer"
    );
}

#[tokio::test]
async fn a_member_claiming_a_huge_file_gets_no_space_not_a_huge_file() {
    let (a, b) = (node().await, node().await);
    write(&a, "small.bin", b"tiny").await;
    let rows = a.f.index_since(KEY, 0).await.unwrap().entries;
    let mut e = RemoteEntry::from(&rows[0]);
    e.size = 1 << 50;
    let err = b.f.begin_remote(KEY, &e).await.err().expect("refused");
    assert!(matches!(err, fabric::FabricError::NoSpace), "{err}");
    assert!(names(&b.dir).is_empty(), "nothing was made");
    // Two pulls of one change at once do not share a temp file.
    let e = RemoteEntry::from(&rows[0]);
    let first = b.f.begin_remote(KEY, &e).await.unwrap();
    assert!(b.f.begin_remote(KEY, &e).await.is_err());
    drop(first);
    assert!(b.f.begin_remote(KEY, &e).await.is_ok());
}

#[tokio::test]
async fn a_file_that_became_a_folder_elsewhere_goes_to_the_trash_here() {
    let (a, b) = (node().await, node().await);
    write(&a, "notes", b"a file at first").await;
    sync(&a, &b).await;
    a.f.delete(&SYS, &addr("notes"), "test").await.unwrap();
    a.f.mkdir(&SYS, &addr("notes")).await.unwrap();
    write(&a, "notes/today.txt", b"now a folder").await;
    sync(&a, &b).await;
    assert!(b.dir.join("notes").is_dir());
    assert_eq!(
        std::fs::read(b.dir.join("notes/today.txt")).unwrap(),
        b"now a folder"
    );
    let trash = b.f.trash(&SYS, "alice").await.unwrap();
    assert!(
        trash.iter().any(|t| t.path.as_str() == "notes"),
        "{trash:?}"
    );
}
