//! Folder sync between two nodes on one LAN (two namespaces): both serve
//! a folder `admin/share` of their own and join one glow; from then on
//! the two replicas hold the same files, whichever side changes them, on
//! disk or through a front.

use crate::fixtures::*;
use crate::lan::Lan;
use crate::overlay::{banner_id, glow_in, invite, node_list};
use std::path::Path;

/// Waits until `path` holds exactly `want`.
async fn until_file(path: &Path, want: &[u8], what: &str) {
    eventually(60, what, || {
        let ok = std::fs::read(path).is_ok_and(|got| got == want);
        async move { ok }
    })
    .await;
}

/// Waits until `path` is gone.
async fn until_gone(path: &Path, what: &str) {
    eventually(60, what, || {
        let ok = !path.exists();
        async move { ok }
    })
    .await;
}

/// The names in `dir` that contain `part`.
fn names_with(dir: &Path, part: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(part))
        .collect();
    v.sort();
    v
}

/// Content bytes `env` (in `ns`) received from member `from` for its
/// folder, as `glow folder status` says (`… 2.9 MiB received)`).
fn received(env: &Env, ns: &str, from: &str) -> f64 {
    let out = glow_in(env, ns, &["folder", "status", "admin/share"]).1;
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(from))
        .unwrap_or_else(|| panic!("no {from} in:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.starts_with("received"))
        .unwrap_or_else(|| panic!("{line}"));
    let n: f64 = words[at - 2].parse().unwrap_or_else(|_| panic!("{line}"));
    let unit = match words[at - 1] {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other} in {line}"),
    };
    n * unit
}

/// Starts the two nodes, each serving its `share`, and joins them.
async fn two_replicas(lan: &Lan, a: &Env, b: &Env) -> (Server, Server) {
    let on = ["--overlay", "0.0.0.0:0"];
    let srv_a = lan.serve(
        a,
        &[&on[..], &["--name", "laptop", a.share().to_str().unwrap()]].concat(),
    );
    let srv_b = lan.serve_on_client(
        b,
        &[&on[..], &["--name", "nas", b.share().to_str().unwrap()]].concat(),
    );
    let (code, _) = invite(a, &lan.server_ns, &[]);
    let (ok, out) = glow_in(b, &lan.client_ns, &["node", "join", &code]);
    assert!(ok, "join: {out}");
    let id_a = banner_id(&srv_a);
    eventually(30, "the nas links to the laptop", || {
        let ok = node_list(b, &lan.client_ns)
            .lines()
            .any(|l| l.starts_with("member") && l.contains(&id_a) && l.contains("direct"));
        async move { ok }
    })
    .await;
    (srv_a, srv_b)
}

#[tokio::test]
async fn two_replicas_keep_the_same_files_both_ways() {
    let lan = Lan::new();
    let (a, b) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let (da, db) = (a.share(), b.share());
    // Before they meet: a file only on each side, and one on both.
    std::fs::write(da.join("only-a.txt"), b"from the laptop").unwrap();
    std::fs::write(db.join("only-b.txt"), b"from the nas").unwrap();
    std::fs::write(da.join("both.txt"), b"the same on both").unwrap();
    std::fs::write(db.join("both.txt"), b"the same on both").unwrap();
    let (mut srv_a, srv_b) = two_replicas(&lan, &a, &b).await;

    until_file(
        &db.join("only-a.txt"),
        b"from the laptop",
        "a's file reaches b",
    )
    .await;
    until_file(
        &da.join("only-b.txt"),
        b"from the nas",
        "b's file reaches a",
    )
    .await;
    assert!(
        names_with(&da, "sync-conflict").is_empty() && names_with(&db, "sync-conflict").is_empty(),
        "identical files are recognised, not conflicts"
    );

    // Uploaded through the laptop's HTTP front, in new nested folders with
    // awkward names: byte-exact on the NAS.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::create_dir_all(da.join("docs/été 2026")).unwrap();
    let url = srv_a.file("docs/été%202026/Ünïcode%20%26%20co%20%231.bin");
    let body = big.clone();
    let status = lan.client(move || async move { put_admin(&url, body).await.status() });
    assert!(status.is_success(), "{status}");
    until_file(
        &db.join("docs/été 2026/Ünïcode & co #1.bin"),
        &big,
        "the upload reaches b",
    )
    .await;

    // The NAS's JSON API says it is in sync with the laptop.
    let url = format!("{}/api/v1/folders", srv_b.base);
    eventually(30, "b's API shows the laptop in sync", || {
        let url = url.clone();
        let body = lan.client(move || async move { get_admin(&url).await.text().await.unwrap() });
        let ok = body.contains("\"name\":\"laptop\"") && body.contains("\"state\":\"in-sync\"");
        async move { ok }
    })
    .await;

    // Edited on the NAS's disk behind Glow's back: the laptop has it, and
    // keeps the content it replaced as a version.
    std::fs::write(db.join("only-a.txt"), b"edited on the nas").unwrap();
    until_file(
        &da.join("only-a.txt"),
        b"edited on the nas",
        "b's edit reaches a",
    )
    .await;
    let versions = {
        let url = format!("{}/api/v1/versions?path=admin/share/only-a.txt", srv_a.base);
        lan.client(move || async move { get_admin(&url).await.text().await.unwrap() })
    };
    assert!(
        versions.contains("\"size\":15"),
        "the replaced content is a version on the laptop too: {versions}"
    );

    // A rename moves the file on the other side too, and moves no data:
    // b has the content already. (The count is noted once a pull round
    // ends, just after the file.)
    eventually(10, "b notes the upload's bytes", || {
        let ok = received(&b, &lan.client_ns, "laptop") >= 3_000_000.0;
        async move { ok }
    })
    .await;
    let before = received(&b, &lan.client_ns, "laptop");
    std::fs::rename(
        da.join("docs/été 2026/Ünïcode & co #1.bin"),
        da.join("docs/renamed.bin"),
    )
    .unwrap();
    until_file(&db.join("docs/renamed.bin"), &big, "the rename reaches b").await;
    until_gone(
        &db.join("docs/été 2026/Ünïcode & co #1.bin"),
        "the old name goes",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = received(&b, &lan.client_ns, "laptop");
    assert!(
        after - before < 1024.0,
        "a rename sent {} bytes",
        after - before
    );

    // 100 KB changed in the middle of the 3 MB file: about that much
    // travels (the blocks that changed, and the tree's hashes).
    let mut edited = big.clone();
    for x in &mut edited[1_500_000..1_600_000] {
        *x ^= 0xa5;
    }
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(da.join("docs/renamed.bin"))
            .unwrap();
        f.write_all_at(&edited[1_500_000..1_600_000], 1_500_000)
            .unwrap();
    }
    until_file(
        &db.join("docs/renamed.bin"),
        &edited,
        "the edit in place reaches b",
    )
    .await;
    eventually(10, "b notes the edit's bytes", || {
        let ok = received(&b, &lan.client_ns, "laptop") - after >= 100_000.0;
        async move { ok }
    })
    .await;
    let sent = received(&b, &lan.client_ns, "laptop") - after;
    assert!(
        (100_000.0..300_000.0).contains(&sent),
        "a 100 KB change in a 3 MB file sent {sent} bytes"
    );

    // Deleted on the laptop: gone on the NAS, and in its trash.
    let url = srv_a.file("only-b.txt");
    let status = lan.client(move || async move {
        admin(reqwest::Method::DELETE, &url)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
    until_gone(&db.join("only-b.txt"), "the delete reaches b").await;
    let trash = {
        let url = format!("{}/api/v1/trash", srv_b.base);
        lan.client(move || async move { get_admin(&url).await.text().await.unwrap() })
    };
    assert!(trash.contains("only-b.txt"), "in b's trash: {trash}");

    // Both change the same file while the laptop is off: both contents
    // are kept, the same way on both nodes.
    srv_a.terminate();
    std::fs::write(da.join("both.txt"), b"laptop's version").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(db.join("both.txt"), b"nas's version, later").unwrap();
    let on = ["--overlay", "0.0.0.0:0"];
    let srv_a = lan.serve(
        &a,
        &[&on[..], &["--name", "laptop", da.to_str().unwrap()]].concat(),
    );
    until_file(
        &da.join("both.txt"),
        b"nas's version, later",
        "the later edit wins on a",
    )
    .await;
    eventually(60, "a conflict copy of the laptop's edit on both", || {
        let (ca, cb) = (
            names_with(&da, "both.sync-conflict-"),
            names_with(&db, "both.sync-conflict-"),
        );
        let ok = ca.len() == 1 && ca == cb;
        async move { ok }
    })
    .await;
    let copy = names_with(&da, "both.sync-conflict-").remove(0);
    assert!(copy.ends_with(".txt"), "{copy}");
    assert_eq!(std::fs::read(db.join(&copy)).unwrap(), b"laptop's version");
    assert_eq!(
        std::fs::read(db.join("both.txt")).unwrap(),
        b"nas's version, later"
    );
    drop((srv_a, srv_b));
}

#[tokio::test]
async fn a_node_that_was_away_catches_up_from_whichever_member_is_up() {
    // Three hosts on one LAN (the NAT lab's public segment).
    let mut lab = crate::natlab::NatLab::new(&[]);
    let (ns_b, ip_b) = lab.add_host();
    let (ns_c, ip_c) = lab.add_host();
    let ns_a = lab.public_ns.clone();
    let ip_a = crate::natlab::PUBLIC_IP;
    let (a, b, c) = (
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
    );
    let (da, db, dc) = (a.share(), b.share(), c.path("phone-share"));
    std::fs::write(da.join("f1.txt"), b"one").unwrap();
    std::fs::write(da.join("f2.txt"), b"two").unwrap();
    let serve_a = || crate::nat::serve_with(&a, &ns_a, ip_a, "laptop", &[da.to_str().unwrap()]);
    let serve_b = || crate::nat::serve_with(&b, &ns_b, &ip_b, "nas", &[db.to_str().unwrap()]);
    let srv_a = serve_a();
    let srv_b = serve_b();
    let srv_c = crate::nat::serve_with(&c, &ns_c, &ip_c, "phone", &[]);
    for (env, ns) in [(&b, &ns_b), (&c, &ns_c)] {
        let (code, _) = invite(&a, &ns_a, &[]);
        let (ok, out) = glow_in(env, ns, &["node", "join", &code]);
        assert!(ok, "{out}");
    }
    until_file(&db.join("f1.txt"), b"one", "the nas has the laptop's files").await;

    // The phone has no replica: it makes one, and the files arrive.
    eventually(30, "the phone knows the folder", || {
        let ok = glow_in(&c, &ns_c, &["folder", "list"])
            .1
            .contains("admin/share");
        async move { ok }
    })
    .await;
    let (ok, out) = glow_in(
        &c,
        &ns_c,
        &["folder", "replicate", "admin/share", dc.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(out.contains("replica of admin/share"), "{out}");
    let (ok, out) = glow_in(
        &c,
        &ns_c,
        &["folder", "replicate", "admin/nothing", "/tmp/x"],
    );
    assert!(!ok && out.contains("no folder admin/nothing"), "{out}");
    until_file(&dc.join("f2.txt"), b"two", "the phone's replica fills").await;
    eventually(30, "the phone is in sync with both", || {
        let out = glow_in(&c, &ns_c, &["folder", "status"]).1;
        let ok =
            out.contains("laptop") && out.contains("nas") && out.matches("in sync").count() == 2;
        async move { ok }
    })
    .await;

    // The nas goes away; the laptop and the phone both change things.
    drop(srv_b);
    std::fs::write(da.join("f1.txt"), b"one, edited on the laptop").unwrap();
    std::fs::write(dc.join("f2.txt"), b"two, edited on the phone").unwrap();
    std::fs::write(dc.join("f3.txt"), b"three, new on the phone").unwrap();
    until_file(
        &dc.join("f1.txt"),
        b"one, edited on the laptop",
        "the phone has f1",
    )
    .await;
    until_file(
        &da.join("f2.txt"),
        b"two, edited on the phone",
        "the laptop has f2",
    )
    .await;
    // Then the laptop goes away too, and the nas comes back: it catches up
    // from the phone alone.
    drop(srv_a);
    let srv_b = serve_b();
    until_file(
        &db.join("f1.txt"),
        b"one, edited on the laptop",
        "the nas catches up f1",
    )
    .await;
    until_file(
        &db.join("f2.txt"),
        b"two, edited on the phone",
        "the nas catches up f2",
    )
    .await;
    until_file(
        &db.join("f3.txt"),
        b"three, new on the phone",
        "the nas catches up f3",
    )
    .await;
    let status = glow_in(&b, &ns_b, &["folder", "status"]).1;
    assert!(status.contains("phone"), "{status}");
    drop((srv_b, srv_c, lab));
}
