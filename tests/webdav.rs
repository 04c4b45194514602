//! The WebDAV front with real clients: the litmus suite (all five test
//! groups must pass), curl for sign-in and isolation, and writes that land
//! in the fabric (versions, trash).

use crate::fixtures::*;
use reqwest::{Method, StatusCode};
use std::process::Command;

/// A WebDAV request to `/dav/PATH` as the admin.
fn dav_request(srv: &Server, method: &str, path: &str) -> reqwest::RequestBuilder {
    admin(
        Method::from_bytes(method.as_bytes()).unwrap(),
        &format!("{}/dav/{path}", srv.base),
    )
}

on_both!(
    litmus_passes_every_suite,
    webdav_writes_are_versioned_and_isolated,
    locks_survive_a_restart,
    rclone_round_trip_is_byte_exact,
    large_uploads_stream_both_ways,
    finder_metadata_is_kept_without_history,
    cadaver_session_works,
    propfind_answers_what_file_managers_ask
);

async fn litmus_passes_every_suite(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let out = Command::new("litmus")
        .arg(format!("{}/dav/share/", srv.base))
        .args(["admin", ADMIN_PW])
        .current_dir(env.tmp.path())
        .output()
        .expect("litmus is needed (apt-get install litmus)");
    let text = String::from_utf8_lossy(&out.stdout);
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("<- summary"))
        .collect();
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        let line = summaries
            .iter()
            .find(|l| l.contains(&format!("`{suite}'")))
            .unwrap_or_else(|| panic!("litmus did not run {suite}:\n{text}"));
        assert!(line.contains(" 0 failed"), "{line}\n{text}");
    }
    assert!(out.status.success(), "{text}");
}

async fn webdav_writes_are_versioned_and_isolated(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let dav = |m: &str, path: &str| dav_request(&srv, m, path);
    // The root lists the user's folders.
    let r = dav("PROPFIND", "")
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 207);
    let xml = r.text().await.unwrap();
    assert!(xml.contains("/dav/share/"), "{xml}");
    // PUT over an existing file keeps the old content as a version.
    let r = dav("PUT", "share/hello.txt")
        .body("over webdav")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(read(&env.share().join("hello.txt")), b"over webdav");
    let v = env.ok(&["versions", "admin/share/hello.txt"]);
    assert!(v.contains("13 bytes\toverwrite via webdav by admin"), "{v}");
    // DELETE goes to the trash.
    let r = dav("DELETE", "share/hello.txt").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        env.ok(&["trash", "list", "admin"])
            .contains("share/hello.txt")
    );
    // DELETE of a directory is one trash item, restored whole.
    assert_eq!(
        dav("MKCOL", "share/tree").send().await.unwrap().status(),
        StatusCode::CREATED
    );
    for f in ["a.txt", "b.txt", "c.txt"] {
        dav("PUT", &format!("share/tree/{f}"))
            .body(f)
            .send()
            .await
            .unwrap();
    }
    let r = dav("DELETE", "share/tree/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!env.share().join("tree").exists());
    let trash = env.ok(&["trash", "list", "admin"]);
    let items: Vec<&str> = trash.lines().filter(|l| l.contains("share/tree")).collect();
    assert_eq!(items.len(), 1, "{trash}");
    assert!(items[0].contains("3 file(s)"), "{trash}");
    let id = items[0].split('\t').next().unwrap();
    env.ok(&["trash", "restore", "admin", id]);
    assert_eq!(read(&env.share().join("tree/b.txt")), b"b.txt");
    // Dead properties are listed once each.
    dav("PUT", "share/p.txt").body("p").send().await.unwrap();
    let patch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:glow-test"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    let r = dav("PROPPATCH", "share/p.txt")
        .body(patch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 207);
    let r = dav("PROPFIND", "share/p.txt")
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    let xml = r.text().await.unwrap();
    assert_eq!(xml.matches("blue").count(), 1, "{xml}");
    // A PROPFIND of a folder of 1,000 files lists every one.
    std::fs::create_dir(env.share().join("many")).unwrap();
    for i in 0..1000 {
        std::fs::write(env.share().join(format!("many/f{i:04}.txt")), b"x").unwrap();
    }
    let r = dav("PROPFIND", "share/many/")
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    let xml = r.text().await.unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 1001);
    // Windows' redirector probes the server root, unauthenticated.
    let r = client()
        .request(Method::OPTIONS, format!("{}/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["dav"], "1, 2");
    assert_eq!(r.headers()["ms-author-via"], "DAV");
    let r = dav("OPTIONS", "").send().await.unwrap();
    assert!(r.headers()["dav"].to_str().unwrap().contains('2'));
    // Depth: infinity is refused as RFC 4918 allows.
    let r = dav("PROPFIND", "share/")
        .header("Depth", "infinity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("propfind-finite-depth"));
    // Quota properties (RFC 4331), so clients can show free space.
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let xml = dav("PROPFIND", "")
        .header("Depth", "0")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let number = |tag: &str| -> u64 {
        let start = xml
            .find(&format!("<D:{tag}>"))
            .unwrap_or_else(|| panic!("no {tag}: {xml}"))
            + tag.len()
            + 4;
        xml[start..]
            .split('<')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(number("quota-available-bytes") > 0);
    assert!(number("quota-used-bytes") > 0, "{xml}");
    // Wrong credentials: 401 with a realm; another user sees nothing of admin's.
    let r = client()
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}/dav/", srv.base),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("realm=\"Glow\"")
    );
    env.ok(&["user", "add", "bob"]);
    let pw = env.ok(&["user", "app-password", "bob"]).trim().to_owned();
    let bob = |m: &str, path: &str| {
        client()
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}/dav/{path}", srv.base),
            )
            .basic_auth("bob", Some(&pw))
    };
    let xml = bob("PROPFIND", "")
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!xml.contains("/dav/share/"), "{xml}");
    assert_eq!(
        bob("GET", "share/p.txt").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let r = bob("PUT", "share/evil.txt").body("x").send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(!env.share().join("evil.txt").exists());
}

async fn locks_survive_a_restart(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = format!("{}/dav/share/hello.txt", srv.base);
    let lockinfo = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>glow test</D:owner></D:lockinfo>"#;
    let r = admin(Method::from_bytes(b"LOCK").unwrap(), &url)
        .header("Timeout", "Second-600")
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.headers()["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    assert!(token.starts_with("urn:uuid:"), "{token}");
    let r = admin(Method::PUT, &url)
        .body("no token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 423);

    drop(srv);
    let srv = env.serve();
    let url = format!("{}/dav/share/hello.txt", srv.base);
    let r = admin(Method::PUT, &url)
        .body("no token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 423, "the lock survived the restart");
    let xml = admin(Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .header("Depth", "0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains(&token) && xml.contains("glow test"), "{xml}");
    let r = admin(Method::PUT, &url)
        .header("If", format!("(<{token}>)"))
        .body("with token")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(read(&env.share().join("hello.txt")), b"with token");
    let r = admin(Method::from_bytes(b"UNLOCK").unwrap(), &url)
        .header("Lock-Token", format!("<{token}>"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = admin(Method::PUT, &url)
        .body("unlocked")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// rclone, an independent WebDAV client: a tree in, listed, back out, the
/// same bytes; then a move and a delete.
async fn rclone_round_trip_is_byte_exact(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("deep/er")).unwrap();
    let files = [
        ("a.txt", b"alpha".to_vec()),
        (
            "deep/b b.bin",
            (0..300_000u32)
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>(),
        ),
        ("deep/er/ü.txt", "ünïcødé".as_bytes().to_vec()),
    ];
    for (p, bytes) in &files {
        std::fs::write(src.join(p), bytes).unwrap();
    }
    let conf = env.path("rclone.conf");
    let obscured = Command::new("rclone")
        .args(["obscure", ADMIN_PW])
        .output()
        .expect("rclone is needed (apt-get install rclone)");
    let pass = String::from_utf8(obscured.stdout).unwrap();
    std::fs::write(
        &conf,
        format!(
            "[glow]\ntype = webdav\nurl = {}/dav/\nvendor = other\nuser = admin\npass = {}\n",
            srv.base,
            pass.trim()
        ),
    )
    .unwrap();
    let rclone = |args: &[&str]| {
        let out = Command::new("rclone")
            .arg("--config")
            .arg(&conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    rclone(&["copy", src.to_str().unwrap(), "glow:share/tree"]);
    let listing = rclone(&["lsf", "-R", "glow:share/tree"]);
    for (p, _) in &files {
        assert!(
            listing.lines().any(|l| l == *p),
            "{p} missing from {listing}"
        );
    }
    let back = env.path("back");
    rclone(&["copy", "glow:share/tree", back.to_str().unwrap()]);
    for (p, bytes) in &files {
        assert_eq!(&read(&back.join(p)), bytes, "{p}");
        assert_eq!(
            &read(&env.share().join("tree").join(p)),
            bytes,
            "{p} on the server's disk"
        );
    }
    rclone(&[
        "check",
        src.to_str().unwrap(),
        "glow:share/tree",
        "--size-only",
    ]);
    rclone(&[
        "moveto",
        "glow:share/tree/a.txt",
        "glow:share/tree/deep/a-moved.txt",
    ]);
    assert_eq!(read(&env.share().join("tree/deep/a-moved.txt")), b"alpha");
    assert!(!env.share().join("tree/a.txt").exists());
    rclone(&["delete", "glow:share/tree/deep/er"]);
    assert!(!env.share().join("tree/deep/er/ü.txt").exists());
    assert!(env.ok(&["trash", "list", "admin"]).contains("ü.txt"));
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 512 MiB up and down over WebDAV: the bytes arrive whole and the server
/// never holds the file in memory.
async fn large_uploads_stream_both_ways(b: Backend) {
    const MIB: usize = 1 << 20;
    let env = Env::new(b);
    let srv = env.serve();
    let before = peak_rss_kib(srv.child.id());
    let chunks = (0..512u32).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; MIB]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let url = format!("{}/dav/share/big.bin", srv.base);
    let r = admin(Method::PUT, &url).body(body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = admin(Method::GET, &url).send().await.unwrap();
    assert_eq!(
        r.headers()["content-length"],
        (512 * MIB).to_string().as_str()
    );
    let mut stream = r.bytes_stream();
    let mut seen = 0usize;
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for (k, byte) in chunk.iter().enumerate() {
            let expected = (((seen + k) / MIB) % 251) as u8;
            assert_eq!(*byte, expected, "byte {}", seen + k);
        }
        seen += chunk.len();
    }
    assert_eq!(seen, 512 * MIB);
    let grown = peak_rss_kib(srv.child.id()).saturating_sub(before);
    assert!(
        grown < 128 * 1024,
        "the server grew by {grown} KiB for a 512 MiB file"
    );
}

/// macOS Finder writes `.DS_Store` and AppleDouble `._name` files next to
/// what it copies and reads them back: Glow stores them, but keeps no
/// versions, puts no trash item in the way, and hides them from web pages.
async fn finder_metadata_is_kept_without_history(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let dav = |m: &str, path: &str| dav_request(&srv, m, path);
    for body in ["first", "second"] {
        for name in ["._photo.jpg", ".DS_Store", "photo.jpg"] {
            let r = dav("PUT", &format!("share/{name}"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{name}: {}", r.status());
        }
    }
    // Finder reads them back.
    let r = dav("GET", "share/._photo.jpg").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "second");
    let xml = dav("PROPFIND", "share/")
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("/dav/share/._photo.jpg") && xml.contains("/dav/share/.DS_Store"));
    // The real file has a version; its companions have none.
    let v = env.ok(&["versions", "admin/share/photo.jpg"]);
    assert!(v.contains("overwrite via webdav"), "{v}");
    for name in ["._photo.jpg", ".DS_Store"] {
        let v = env.ok(&["versions", &format!("admin/share/{name}")]);
        assert!(!v.contains("overwrite"), "{name}: {v}");
    }
    // The web page does not show them.
    let page = admin(Method::GET, &format!("{}/u/admin/share/", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("photo.jpg"), "{page}");
    assert!(
        !page.contains("._photo.jpg") && !page.contains(".DS_Store"),
        "{page}"
    );
    // Deleting them leaves no trash item behind.
    for name in ["._photo.jpg", ".DS_Store"] {
        let r = dav("DELETE", &format!("share/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(!env.share().join(name).exists());
    }
    let trash = env.ok(&["trash", "list", "admin"]);
    assert!(
        !trash.contains("._photo") && !trash.contains("DS_Store"),
        "{trash}"
    );
}

/// cadaver, the command-line WebDAV client, through a whole session:
/// make a collection, upload, list, move, download, delete.
async fn cadaver_session_works(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let home = env.tmp.path().join("cadaver-home");
    std::fs::create_dir_all(&home).unwrap();
    let port = srv.base.rsplit(':').next().unwrap().to_owned();
    std::fs::write(
        home.join(".netrc"),
        format!("machine 127.0.0.1 login admin password {ADMIN_PW}\n"),
    )
    .unwrap();
    let local = env.tmp.path().join("up.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let back = env.tmp.path().join("back.bin");
    let script = format!(
        "mkcol docs\ncd docs\nput {} up.bin\nls\nmove up.bin moved.bin\nget moved.bin {}\nls\ndelete moved.bin\nls\nquit\n",
        local.display(),
        back.display()
    );
    let mut child = Command::new("cadaver")
        .arg(format!("http://127.0.0.1:{port}/dav/share/"))
        .env("HOME", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cadaver is needed (apt-get install cadaver)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("failed"), "{text}");
    assert!(text.contains("up.bin"), "{text}");
    assert_eq!(read(&back), data, "cadaver got back what it put");
    assert!(env.share().join("docs").is_dir());
    assert!(!env.share().join("docs/moved.bin").exists());
    assert!(
        env.ok(&["trash", "list", "admin"])
            .contains("docs/moved.bin"),
        "the delete went to the trash"
    );
}

/// What file managers ask for when they list a directory: some live
/// properties of each entry (answered by `webdav/propfind.rs` in a folder
/// without dead properties); names are percent-encoded in hrefs, and a
/// property that does not exist is listed as 404, as RFC 4918 asks.
async fn propfind_answers_what_file_managers_ask(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let dav = |m: &str, path: &str| dav_request(&srv, m, path);
    std::fs::create_dir(env.share().join("many")).unwrap();
    std::fs::create_dir(env.share().join("many/sub")).unwrap();
    for i in 0..1000 {
        std::fs::write(env.share().join(format!("many/f{i:04}.txt")), b"x").unwrap();
    }
    // What file managers ask for: some live properties of each entry.
    std::fs::write(env.share().join("many/a b&c.txt"), b"12345").unwrap();
    let body = r#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><resourcetype/><getetag/><displayname/></prop></propfind>"#;
    let xml = dav("PROPFIND", "share/many/")
        .header("Depth", "1")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 1003, "{}", &xml[..500]);
    let entry = xml
        .split("<D:response>")
        .find(|r| r.contains("<D:href>/dav/share/many/a%20b%26c.txt</D:href>"))
        .unwrap_or_else(|| panic!("no encoded href: {}", &xml[..500]));
    assert!(
        entry.contains("<D:getcontentlength>5</D:getcontentlength>"),
        "{entry}"
    );
    assert!(
        entry.contains("<D:resourcetype></D:resourcetype>"),
        "{entry}"
    );
    assert!(
        entry.contains("HTTP/1.1 404 Not Found") && entry.contains("<D:displayname>"),
        "{entry}"
    );
    let own = xml.split("<D:response>").nth(1).unwrap();
    assert!(
        own.contains("<D:href>/dav/share/many/</D:href>") && own.contains("<D:collection>"),
        "{own}"
    );
    let sub = xml
        .split("<D:response>")
        .find(|r| r.contains("<D:href>/dav/share/many/sub/</D:href>"))
        .unwrap();
    assert!(
        sub.contains("<D:collection>") && !sub.contains("<D:getcontentlength>0"),
        "{sub}"
    );
    // Depth 0: the directory alone; allprop: every live property.
    let xml = dav("PROPFIND", "share/many")
        .header("Depth", "0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<D:response>").count(), 1, "{xml}");
    for p in [
        "getetag",
        "getlastmodified",
        "supportedlock",
        "lockdiscovery",
        "getcontenttype",
    ] {
        assert!(xml.contains(&format!("<D:{p}>")), "{p}: {xml}");
    }
}
