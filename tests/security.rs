//! What a hostile visitor, a link holder or a signed-in user could do to a
//! node, each tried the way an attacker would (issue 11), against the real
//! binary: stored script through WebDAV, parser bombs, floods that make the
//! server allocate, open redirects, requests that make the node write far
//! more than they carry, download limits dodged with ranges, a link that
//! deletes its own root, tokens readable in the catalog, broken zips,
//! range and `If` edge cases.

use crate::fixtures::*;
use reqwest::{Method, StatusCode, header};
use std::process::Command;
use std::time::Duration;

on_both!(
    every_path_to_file_bytes_is_sandboxed,
    deep_xml_bodies_are_refused_before_parsing,
    range_requests_count_toward_the_download_limit,
    a_read_write_link_cannot_remove_its_own_root,
    share_tokens_are_not_kept_in_the_clear,
    zips_stay_inside_what_the_caller_may_read,
    range_edge_cases,
    foreign_lock_tokens_and_foreign_destinations,
    sftp_requests_cannot_make_the_node_write_gigabytes,
    a_drop_box_cannot_fill_the_disk,
    copies_the_server_makes_keep_the_reserve_too,
    download_limits_are_exact,
    drop_boxes_take_large_files
);

/// A share link's token (the last segment of its URL).
fn token_of(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

fn header_of(r: &reqwest::Response, name: header::HeaderName) -> String {
    r.headers()
        .get(&name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts that a response carrying a file's bytes cannot run script on
/// Glow's origin.
fn assert_sandboxed(r: &reqwest::Response, what: &str) {
    assert_eq!(
        header_of(r, header::CONTENT_SECURITY_POLICY),
        "sandbox",
        "{what}: {:?}",
        r.headers()
    );
    assert_eq!(
        header_of(r, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{what}"
    );
}

const EVIL: &str = "<html><script>fetch('/api/v1/me')</script></html>";

/// The chain of issue 11: an anonymous visitor drops `evil.html` into an
/// upload-only link; the owner opens it through `/dav/` while signed in.
/// Every route that returns a file's bytes must sandbox it, and `/dav/`
/// must not accept the browser's session cookie at all.
async fn every_path_to_file_bytes_is_sandboxed(b: Backend) {
    let env = Env::new(b);
    std::fs::create_dir_all(env.share().join("drop")).unwrap();
    std::fs::copy("tests/media/song.mp3", env.share().join("song.mp3")).unwrap();
    std::fs::copy("tests/media/photo.jpg", env.share().join("photo.jpg")).unwrap();
    let srv = env.serve();
    let drop_url = crate::share::share(&env, &srv, &["admin/share/drop", "--upload-only"], None);
    let r = client()
        .put(format!("{drop_url}evil.html"))
        .body(EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let dav = format!("{}/dav/share/drop/evil.html", srv.base);

    // The owner's browser session does not open /dav/.
    let cookie = session_cookie(&srv).await;
    let r = client()
        .get(&dav)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "cookie on /dav/");
    let r = client()
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}/dav/", srv.base),
        )
        .header(header::COOKIE, &cookie)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "cookie on PROPFIND");

    // Every route to the bytes sandboxes them.
    let r = get_admin(&dav).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "/dav GET");
    let r = client()
        .get(srv.file("drop/evil.html"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "/u GET with a session");
    let read_url = crate::share::share(&env, &srv, &["admin/share"], None);
    let r = client()
        .get(format!("{read_url}drop/evil.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "/s GET");
    let r = client()
        .get(format!("{read_url}drop/evil.html?inline"))
        .send()
        .await
        .unwrap();
    assert_sandboxed(&r, "/s GET inline");
    let r = client()
        .get(format!("{read_url}?zip"))
        .send()
        .await
        .unwrap();
    assert_sandboxed(&r, "/s zip");
    // An earlier version of the file.
    let r = put_admin(&srv.file("drop/evil.html"), "<html>second</html>").await;
    assert!(r.status().is_success());
    let out = env.ok(&["versions", "admin/share/drop/evil.html"]);
    let id = out
        .lines()
        .find_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("a version id in {out}"));
    let r = get_admin(&format!("{}?version={id}", srv.file("drop/evil.html"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "a version");
    let r = get_admin(&format!("{}?zip", srv.file("drop/"))).await;
    assert_sandboxed(&r, "/u zip");
    let r = get_admin(&format!("{}?thumb", srv.file("photo.jpg"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "a thumbnail");
    let r = get_admin(&srv.file("drop/evil.html")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // 304s too.
    let etag = header_of(&r, header::ETAG);
    let r = admin(Method::GET, &srv.file("drop/evil.html"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_sandboxed(&r, "a 304");

    // The LAN media front: media files sandboxed, other files not served.
    let base = srv.dlna_base("127.0.0.1");
    let r = client()
        .get(format!("{base}/dlna/m/admin/share/song.mp3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_sandboxed(&r, "a DLNA file");
    let r = client()
        .get(format!("{base}/dlna/m/admin/share/drop/evil.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Glow's own pages run their script under their own policy.
    let r = client()
        .get(format!("{}/u/admin/share/", srv.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = header_of(&r, header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("script-src 'self'") || csp.contains("default-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("sandbox"), "{csp}");
}

/// About 3,000 nested elements (21 KB) used to overflow a worker's stack
/// in the recursive XML parsers and abort the whole process.
async fn deep_xml_bodies_are_refused_before_parsing(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let mut deep = String::from("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\">");
    deep.push_str(&"<D:prop>".repeat(3000));
    deep.push_str(&"</D:prop>".repeat(3000));
    deep.push_str("</D:propfind>");
    let url = format!("{}/dav/share/hello.txt", srv.base);
    for (method, depth) in [
        ("PROPFIND", Some("0")),
        ("PROPFIND", Some("1")),
        ("PROPFIND", Some("infinity")),
        ("PROPPATCH", None),
        ("LOCK", None),
        ("REPORT", None),
    ] {
        let mut req =
            admin(Method::from_bytes(method.as_bytes()).unwrap(), &url).body(deep.clone());
        if let Some(d) = depth {
            req = req.header("Depth", d);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{method} {depth:?}");
    }
    // Entities that expand are refused too.
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><D:propfind xmlns:D="DAV:"><D:prop>&b;</D:prop></D:propfind>"#;
    let r = admin(Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .header("Depth", "0")
        .body(laughs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Too large a body.
    let r = admin(Method::from_bytes(b"PROPPATCH").unwrap(), &url)
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The SOAP entry point of the LAN media front.
    let base = srv.dlna_base("127.0.0.1");
    let mut soap = String::from(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>",
    );
    soap.push_str(&"<x>".repeat(3000));
    soap.push_str(&"</x>".repeat(3000));
    soap.push_str("</s:Body></s:Envelope>");
    let r = client()
        .post(format!("{base}/dlna/cds/control"))
        .header(
            "SOAPACTION",
            "\"urn:schemas-upnp-org:service:ContentDirectory:1#Browse\"",
        )
        .header(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")
        .body(soap)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "a UPnP fault"
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<errorCode>401</errorCode>")
    );
    // Still alive, for everyone.
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // An ordinary PROPFIND still works.
    let r = admin(Method::from_bytes(b"PROPFIND").unwrap(), &url)
        .header("Depth", "0")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 207);
}

/// 200 wrong passwords at once took the server to 2.4 GiB (argon2 running
/// unbounded in parallel); while they arrive, the owner signing in from
/// elsewhere must still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_passwords_stays_small_and_the_owner_gets_in() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    let before = srv.peak_rss();
    let url = srv.file("hello.txt");
    let mut flood = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        flood.push(tokio::spawn(async move {
            client()
                .get(&url)
                .basic_auth("admin", Some(format!("wrong-{i}")))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    // The owner, from another address, while the flood is on.
    let owner = crate::fixtures::client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = owner
        .get(&url)
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the owner signs in during the flood"
    );
    for f in flood {
        let s = f.await.unwrap();
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS,
            "{s}"
        );
    }
    let grew = srv.peak_rss().saturating_sub(before);
    eprintln!("sign-in flood: peak RSS grew by {} MiB", grew >> 20);
    assert!(grew < 200 << 20, "the flood took {} MiB", grew >> 20);
    // And again after the flood, from the flooded address too once the
    // right password is given from elsewhere.
    let r = owner
        .get(&url)
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Writes a PNG that claims `side`×`side` RGB pixels, all black: a few
/// hundred KB on disk, hundreds of MB decoded.
fn huge_png(path: &std::path::Path, side: u32) {
    let script = r#"
import struct, sys, zlib
path, side = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
z = zlib.compressobj(9)
row = b"\x00" * (1 + 3 * side)
idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
    f.write(chunk(b"IDAT", idat))
    f.write(chunk(b"IEND", b""))
"#;
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), &side.to_string()])
        .output()
        .expect("python3 is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ten parallel thumbnails of 11000×11000 images took 4.3 GB: each image's
/// header is read first, and what its pixels would need comes out of one
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_images_are_refused_at_their_header() {
    let env = Env::new(Backend::Sqlite);
    for i in 0..3 {
        huge_png(&env.share().join(format!("huge{i}.png")), 11000);
    }
    std::fs::copy("tests/media/photo.jpg", env.share().join("photo.jpg")).unwrap();
    let srv = env.serve();
    let before = srv.peak_rss();
    let mut all = Vec::new();
    for i in 0..10 {
        let url = format!("{}?thumb", srv.file(&format!("huge{}.png", i % 3)));
        all.push(tokio::spawn(async move { get_admin(&url).await.status() }));
    }
    for t in all {
        assert_eq!(t.await.unwrap(), StatusCode::BAD_REQUEST);
    }
    let base = srv.dlna_base("127.0.0.1");
    let r = client()
        .get(format!("{base}/dlna/thumb/admin/share/huge0.png"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let grew = srv.peak_rss().saturating_sub(before);
    eprintln!("huge thumbnails: peak RSS grew by {} MiB", grew >> 20);
    assert!(grew < 100 << 20, "thumbnails took {} MiB", grew >> 20);
    // An ordinary photo still gets its thumbnail.
    let r = get_admin(&format!("{}?thumb", srv.file("photo.jpg"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, header::CONTENT_TYPE), "image/jpeg");
}

/// `next=/%09/evil.example` became `Location: /\t/evil.example`, which a
/// browser reads as `//evil.example`; a `next` with a newline gave a 303
/// without a Location.
#[tokio::test]
async fn sign_in_redirects_stay_on_this_site() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    for (next, want) in [
        ("/\t/evil.example", "/u/admin/"),
        ("/\n/evil.example", "/u/admin/"),
        ("//evil.example/", "/u/admin/"),
        ("/.//evil.example", "/u/admin/"),
        ("/\\evil.example", "/u/admin/"),
        ("https://evil.example/", "/u/admin/"),
        ("/x\r\nSet-Cookie: a=b", "/u/admin/"),
        ("/trash", "/trash"),
        ("/u/admin/share/?view", "/u/admin/share/?view"),
    ] {
        let r = client()
            .post(format!("{}/login", srv.base))
            .form(&[("user", "admin"), ("password", ADMIN_PW), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(header_of(&r, header::LOCATION), want, "{next:?}");
    }
    // The sign-in page does not carry a foreign `next` either.
    let page = client()
        .get(format!("{}/login?next=/%09/evil.example", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("evil.example"), "{page}");
}

/// Only ranges from byte 0 used to count, so `Range: bytes=1-` fetched all
/// but one byte of a one-download link without limit.
async fn range_requests_count_toward_the_download_limit(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("big.bin"), vec![7u8; 100_000]).unwrap();
    let srv = env.serve();
    let url = crate::share::share(
        &env,
        &srv,
        &["admin/share/big.bin", "--max-downloads", "1"],
        None,
    );
    let file = format!("{url}big.bin");
    let r = client()
        .get(&file)
        .header(header::RANGE, "bytes=1-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().len(), 99_999);
    // That was (all but) the one download.
    let r = client()
        .get(&file)
        .header(header::RANGE, "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);

    // Halves add up: a link of two downloads.
    let url = crate::share::share(
        &env,
        &srv,
        &["admin/share/big.bin", "--max-downloads", "2"],
        None,
    );
    let file = format!("{url}big.bin");
    for range in [
        "bytes=0-49999",
        "bytes=50000-",
        "bytes=0-49999",
        "bytes=50000-",
    ] {
        let r = client()
            .get(&file)
            .header(header::RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
    }
    let r = client().get(&file).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    // HEAD is free, and the owner sees whole downloads.
    let list = env.ok(&["share", "list", "admin"]);
    assert!(list.contains("2 download(s)/2"), "{list}");
}

/// `DELETE /s/<token>/` on a read-write link deleted the shared directory.
async fn a_read_write_link_cannot_remove_its_own_root(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("sub/inner.txt"), b"inner").unwrap();
    let srv = env.serve();
    let url = crate::share::share(&env, &srv, &["admin/share/sub", "--read-write"], None);
    let r = client().delete(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(env.share().join("sub/inner.txt").exists());
    // What is inside may still be changed.
    let r = client()
        .put(format!("{url}new.txt"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .delete(format!("{url}inner.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(env.share().join("sub").is_dir());
}

/// Share tokens were stored in plain text: anyone with a copy of the
/// catalog could open every link. Now only a digest is kept (and a sealed
/// copy for the owner's list, under a key in the data dir).
async fn share_tokens_are_not_kept_in_the_clear(b: Backend) {
    let env = Env::new(b);
    let mut srv = env.serve();
    let url = crate::share::share(&env, &srv, &["admin/share"], None);
    let token = token_of(&url);
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let dump = catalog_dump(&env);
    assert!(!dump.is_empty());
    assert!(!dump.contains(&token), "the token is in the catalog");
    // The owner still sees the URL, and may revoke by it.
    assert!(env.ok(&["share", "list", "admin"]).contains(&token));
    srv.terminate();
    let srv = env.serve();
    let r = client()
        .get(format!("{}/s/{token}/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the link survives a restart");
    env.ok(&["share", "revoke", &url]);
    let r = client()
        .get(format!("{}/s/{token}/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    // A link from before (its token in the clear) is converted on start-up.
    if b == Backend::Sqlite {
        drop(srv);
        let old = "abcdefghijklmnopqrstuvwxyz";
        sqlite(
            &env,
            &format!("UPDATE shares SET token_digest = '{old}', token_sealed = NULL, revoked = 0"),
        );
        let srv = env.serve();
        let r = client()
            .get(format!("{}/s/{old}/", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "an old link still works");
        assert!(!catalog_dump(&env).contains(old));
        assert!(env.ok(&["share", "list", "admin"]).contains(old));
    }
}

/// Everything the catalog holds, as text.
fn catalog_dump(env: &Env) -> String {
    match env.backend {
        Backend::Sqlite => {
            // The database file and its write-ahead log, byte for byte.
            let mut all = Vec::new();
            for name in ["catalog.db", "catalog.db-wal"] {
                if let Ok(b) = std::fs::read(env.data_dir().join(name)) {
                    all.extend(b);
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Backend::Postgres => {
            let out = Command::new("pg_dump")
                .args(["--data-only", env.database_url.as_deref().unwrap()])
                .output()
                .expect("pg_dump");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }
}

fn sqlite(env: &Env, sql: &str) {
    let db = env.data_dir().join("catalog.db");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
            db.to_str().unwrap(),
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lists the names in a zip, checking that it is whole (python's zipfile).
fn zip_names(bytes: &[u8], dir: &std::path::Path) -> Vec<String> {
    let path = dir.join(format!("z-{}.zip", random_hex()));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('\\n'.join(z.namelist()))",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not a whole zip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A symbolic link loop ended the zip as a 200 with a broken (or endless)
/// archive; links inside a shared directory that lead elsewhere in the
/// folder must not reach a link's visitors.
async fn zips_stay_inside_what_the_caller_may_read(b: Backend) {
    use std::os::unix::fs::symlink;
    let env = Env::new(b);
    let sh = env.share();
    std::fs::write(sh.join("sub/inner.txt"), b"inner").unwrap();
    std::fs::create_dir_all(sh.join("pub")).unwrap();
    std::fs::write(sh.join("pub/open.txt"), b"open").unwrap();
    symlink(&sh, sh.join("sub/loop")).unwrap(); // back up to the folder's root
    symlink(sh.join("sub"), sh.join("pub/elsewhere")).unwrap(); // out of the link
    symlink(env.path("secret.txt"), sh.join("pub/secret.txt")).unwrap(); // out of the folder
    let srv = env.serve();

    let r = get_admin(&format!("{}?zip", srv.file(""))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let names = zip_names(&r.bytes().await.unwrap(), env.tmp.path());
    assert!(names.contains(&"sub/inner.txt".to_owned()), "{names:?}");
    assert!(names.contains(&"hello.txt".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("sub/loop")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("secret")), "{names:?}");

    let url = crate::share::share(&env, &srv, &["admin/share/pub"], None);
    let r = client().get(format!("{url}?zip")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let names = zip_names(&r.bytes().await.unwrap(), env.tmp.path());
    assert_eq!(names, ["open.txt"]);
    // The link's page does not list the way out either.
    let page = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("open.txt") && !page.contains("elsewhere"),
        "{page}"
    );
    let r = client()
        .get(format!("{url}elsewhere/inner.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// `bytes=-0` is unsatisfiable (416); an invalid `bytes=5-2` is ignored (200).
async fn range_edge_cases(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = srv.file("hello.txt");
    for (range, status) in [
        ("bytes=-0", StatusCode::RANGE_NOT_SATISFIABLE),
        ("bytes=5-2", StatusCode::OK),
        ("bytes=0-0", StatusCode::PARTIAL_CONTENT),
        ("bytes=999-", StatusCode::RANGE_NOT_SATISFIABLE),
        ("bytes=0-1,3-4", StatusCode::OK),
    ] {
        let r = admin(Method::GET, &url)
            .header(header::RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{range}");
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            assert_eq!(header_of(&r, header::CONTENT_RANGE), "bytes */13");
        }
    }
}

/// `If:` naming another user's lock token on an unlocked file is a failed
/// precondition (412), and COPY or MOVE to another server is 502.
async fn foreign_lock_tokens_and_foreign_destinations(b: Backend) {
    let env = Env::new(b);
    let bobs = env.path("bobs");
    std::fs::create_dir_all(&bobs).unwrap();
    std::fs::write(bobs.join("b.txt"), b"bob").unwrap();
    env.add_user("bob", "bob-password-1");
    env.ok(&[
        "folder",
        "add",
        "files",
        bobs.to_str().unwrap(),
        "--owner",
        "bob",
    ]);
    let srv = env.serve();
    let lockinfo = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = client()
        .request(
            Method::from_bytes(b"LOCK").unwrap(),
            format!("{}/dav/files/b.txt", srv.base),
        )
        .basic_auth("bob", Some("bob-password-1"))
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = header_of(&r, header::HeaderName::from_static("lock-token"));
    let url = format!("{}/dav/share/hello.txt", srv.base);
    let r = admin(Method::PUT, &url)
        .header("If", format!("({token})"))
        .body("changed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");
    // A made-up token, the same.
    let r = admin(Method::PUT, &url)
        .header("If", "(<urn:uuid:00000000-0000-0000-0000-000000000000>)")
        .body("changed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // The owner's own lock token still works.
    let r = admin(Method::from_bytes(b"LOCK").unwrap(), &url)
        .body(lockinfo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mine = header_of(&r, header::HeaderName::from_static("lock-token"));
    let r = admin(Method::PUT, &url)
        .header("If", format!("({mine})"))
        .body("changed")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // COPY and MOVE elsewhere.
    for method in ["COPY", "MOVE"] {
        let r = admin(Method::from_bytes(method.as_bytes()).unwrap(), &url)
            .header("Destination", "http://evil.example/dav/share/x.txt")
            .header("If", format!("({mine})"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{method}");
    }
    let r = admin(Method::from_bytes(b"COPY").unwrap(), &url)
        .header("Destination", format!("{}/dav/share/copy.txt", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// A raw SFTP session over `ssh -s sftp`, for requests no client sends.
struct RawSftp {
    child: std::process::Child,
    input: std::process::ChildStdin,
    replies: std::sync::mpsc::Receiver<Vec<u8>>,
    next_id: u32,
}

impl RawSftp {
    fn open(env: &Env, srv: &Server) -> RawSftp {
        use std::io::Read;
        use std::process::Stdio;
        let s = crate::sftp::Sftp::new(env, srv);
        let mut child = s
            .with_password("ssh", ADMIN_PW)
            .args(["-p", &s.port.to_string(), "-s", "admin@127.0.0.1", "sftp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut len = [0u8; 4];
                if output.read_exact(&mut len).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if output.read_exact(&mut body).is_err() {
                    return;
                }
                let _ = tx.send(body);
            }
        });
        let mut raw = RawSftp {
            child,
            input,
            replies,
            next_id: 1,
        };
        raw.send(&[1, 0, 0, 0, 3]);
        assert_eq!(raw.reply()[0], 2, "VERSION");
        raw
    }

    fn send(&mut self, body: &[u8]) {
        use std::io::Write;
        let mut packet = (body.len() as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(body);
        self.input.write_all(&packet).unwrap();
        self.input.flush().unwrap();
    }

    fn reply(&self) -> Vec<u8> {
        self.replies
            .recv_timeout(Duration::from_secs(60))
            .expect("the server answers within a minute")
    }

    /// Sends a request of type `kind` with a fresh id and `payload`;
    /// returns the reply.
    fn request(&mut self, kind: u8, payload: &[u8]) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(payload);
        self.send(&body);
        let r = self.reply();
        assert_eq!(&r[1..5], &id.to_be_bytes(), "a reply to request {id}");
        r
    }
}

impl Drop for RawSftp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sftp_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// The status code of an SFTP STATUS reply (`None` for another reply).
fn sftp_status(r: &[u8]) -> Option<u32> {
    (r[0] == 101).then(|| u32::from_be_bytes(r[5..9].try_into().unwrap()))
}

/// Bytes the data dir's version store holds.
fn blob_bytes(env: &Env) -> u64 {
    let out = Command::new("du")
        .args(["-sb", env.data_dir().join("blobs").to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A 30-byte SETSTAT (or a WRITE at a far offset) made the server hash and
/// copy gigabytes of zeros into the version store.
async fn sftp_requests_cannot_make_the_node_write_gigabytes(b: Backend) {
    const SETSTAT: u8 = 9;
    const OPEN: u8 = 3;
    const WRITE: u8 = 6;
    const CLOSE: u8 = 4;
    const SIZE: u32 = 0x1;
    let env = Env::new(b);
    let srv = env.serve();
    let blobs_before = blob_bytes(&env);
    let mut s = RawSftp::open(&env, &srv);
    let huge: u64 = 8 << 30;

    // SETSTAT of hello.txt to 8 GiB.
    let mut p = sftp_string(b"/share/hello.txt");
    p.extend_from_slice(&SIZE.to_be_bytes());
    p.extend_from_slice(&huge.to_be_bytes());
    let r = s.request(SETSTAT, &p);
    assert_ne!(sftp_status(&r), Some(0), "an 8 GiB SETSTAT is refused");
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");

    // OPEN a new file, WRITE 30 bytes at 8 GiB, CLOSE.
    let mut p = sftp_string(b"/share/far.bin");
    p.extend_from_slice(&(0x02u32 | 0x08 | 0x10).to_be_bytes()); // WRITE|CREAT|TRUNC
    p.extend_from_slice(&0u32.to_be_bytes()); // no attributes
    let r = s.request(OPEN, &p);
    assert_eq!(r[0], 102, "HANDLE");
    let handle = r[9..].to_vec();
    let mut p = handle.clone();
    p.extend_from_slice(&huge.to_be_bytes());
    p.extend_from_slice(&sftp_string(&[b'x'; 30]));
    let _ = s.request(WRITE, &p);
    let r = s.request(CLOSE, &handle);
    assert_ne!(sftp_status(&r), Some(0), "a far WRITE is not committed");
    let far = env.share().join("far.bin");
    assert!(std::fs::metadata(&far).map_or(true, |m| m.len() < huge));

    // A modest extension is still fine (sparse files have their uses).
    let mut p = sftp_string(b"/share/hello.txt");
    p.extend_from_slice(&SIZE.to_be_bytes());
    p.extend_from_slice(&(1u64 << 20).to_be_bytes());
    let r = s.request(SETSTAT, &p);
    assert_eq!(sftp_status(&r), Some(0));
    assert_eq!(
        std::fs::metadata(env.share().join("hello.txt"))
            .unwrap()
            .len(),
        1 << 20
    );
    drop(s);
    let grew = blob_bytes(&env).saturating_sub(blobs_before);
    assert!(grew < 64 << 20, "the version store grew by {grew} bytes");
}

/// Free bytes on the filesystem of `path` (from `df`).
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1", path.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// An anonymous upload-only link could fill the node's disk: every write
/// leaves `--min-free-space` free (1 GiB by default). Here the reserve is
/// set just above what is free, so any upload must stop with 507 and
/// leave nothing behind.
async fn a_drop_box_cannot_fill_the_disk(b: Backend) {
    let env = Env::new(b);
    std::fs::create_dir_all(env.share().join("drop")).unwrap();
    let reserve = free_bytes(env.tmp.path()) + (256 << 20);
    let reserve = reserve.to_string();
    let srv = env.serve_with(&["--min-free-space", &reserve, env.share().to_str().unwrap()]);
    let drop_url = crate::share::share(&env, &srv, &["admin/share/drop", "--upload-only"], None);
    let r = client()
        .put(format!("{drop_url}big.bin"))
        .body(vec![1u8; 32 << 20])
        .send()
        .await;
    // The server may stop reading before the body is sent.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
    assert!(!env.share().join("drop/big.bin").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.share().join("drop"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // WebDAV and SFTP uploads too.
    let r = put_admin(
        &format!("{}/dav/share/dav.bin", srv.base),
        vec![1u8; 1 << 20],
    )
    .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let s = crate::sftp::Sftp::new(&env, &srv);
    std::fs::write(
        env.tmp.path().join("sftp-client/up.bin"),
        vec![1u8; 1 << 20],
    )
    .unwrap();
    let out = s
        .with_password("sftp", ADMIN_PW)
        .arg("-P")
        .arg(s.port.to_string())
        .arg("-b")
        .arg("-")
        .arg("admin@127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"put up.bin share/up.bin\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success(), "the SFTP upload must fail");
    assert!(!env.share().join("up.bin").exists());
    // Reading still works. Deleting a file whose content has no copy yet
    // would need room for one (the trash keeps it): refused, nothing lost.
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = admin(Method::DELETE, &srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");
}

/// The LAN media front has no sign-in: a page that rebinds its own domain
/// to the node's address must not be able to read media from a browser.
#[tokio::test]
async fn the_media_front_answers_only_to_its_own_addresses() {
    let env = Env::new(Backend::Sqlite);
    std::fs::copy("tests/media/song.mp3", env.share().join("song.mp3")).unwrap();
    let srv = env.serve();
    let base = srv.dlna_base("127.0.0.1");
    let addr = base.trim_start_matches("http://").to_owned();
    for (host, status) in [
        (addr.clone(), 200),
        ("localhost".to_owned(), 200),
        ("evil.example".to_owned(), 403),
        (
            format!("evil.example:{}", addr.rsplit(':').next().unwrap()),
            403,
        ),
    ] {
        let (got, _) = raw_request(
            &addr,
            &format!(
                "GET /dlna/m/admin/share/song.mp3 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(got, status, "Host: {host}");
    }
}

/// A client that connects and says nothing (or only part of HTTP/2's
/// preface) held a descriptor forever: it is dropped after the header
/// timeout, while others are served.
#[tokio::test]
async fn silent_connections_are_dropped() {
    use std::io::Write;
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve_with(&["--header-timeout", "2", env.share().to_str().unwrap()]);
    let silent = std::net::TcpStream::connect(&srv.addr).unwrap();
    let mut partial = std::net::TcpStream::connect(&srv.addr).unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK, "others are served meanwhile");
    assert_hung_up(silent);
    assert_hung_up(partial);
}

/// `GET /` with Basic credentials counted no address: one address could
/// try any number of names.
#[tokio::test]
async fn guesses_at_the_root_count_against_the_address() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    for i in 0..20 {
        let r = client()
            .get(format!("{}/", srv.base))
            .basic_auth(format!("user{i}"), Some("Summer2025!"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "to the sign-in page");
    }
    // The address is locked now, whatever it tries.
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A sign-in posted by another site is refused (it would sign the visitor
/// into the other site's account).
#[tokio::test]
async fn sign_in_from_another_site_is_refused() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    let r = client()
        .post(format!("{}/login", srv.base))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("user", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
}

/// Copies Glow makes itself (the old content copied for a partial update,
/// versions kept in the data dir) must leave the reserve too: a 40-byte
/// SETSTAT on a large file copied it whole each time.
async fn copies_the_server_makes_keep_the_reserve_too(b: Backend) {
    let env = Env::new(b);
    // A large file that costs nothing to make (sparse), too large to copy.
    let f = std::fs::File::create(env.share().join("large.bin")).unwrap();
    f.set_len(256 << 20).unwrap();
    drop(f);
    let reserve = (free_bytes(env.tmp.path()) - (64 << 20)).to_string();
    let srv = env.serve_with(&["--min-free-space", &reserve, env.share().to_str().unwrap()]);
    let mut s = RawSftp::open(&env, &srv);
    let mut p = sftp_string(b"/share/large.bin");
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&((256u64 << 20) + 1).to_be_bytes());
    let r = s.request(9, &p);
    assert_ne!(sftp_status(&r), Some(0), "no room for the copy");
    assert_eq!(
        std::fs::metadata(env.share().join("large.bin"))
            .unwrap()
            .len(),
        256 << 20
    );
    // A WebDAV partial update of it, the same.
    let r = admin(Method::PUT, &format!("{}/dav/share/large.bin", srv.base))
        .header("Content-Range", "bytes 0-0/*")
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status().is_server_error(),
        "{}",
        r.status()
    );
    assert_eq!(
        std::fs::metadata(env.share().join("large.bin"))
            .unwrap()
            .len(),
        256 << 20
    );
}

/// A one-download link let out almost two downloads (the limit was checked
/// before the amount being served was added).
async fn download_limits_are_exact(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("f.bin"), vec![1u8; 10_000]).unwrap();
    let srv = env.serve();
    let url = crate::share::share(
        &env,
        &srv,
        &["admin/share/f.bin", "--max-downloads", "1"],
        None,
    );
    let file = format!("{url}f.bin");
    let r = client()
        .get(&file)
        .header(header::RANGE, "bytes=0-9989")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = client().get(&file).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::GONE,
        "a whole download would pass the limit"
    );
    let r = client()
        .get(&file)
        .header(header::RANGE, "bytes=9990-")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PARTIAL_CONTENT,
        "the rest still fits"
    );
}

/// The drop page posts a multipart form; anything over axum's default
/// 2 MiB body limit failed.
async fn drop_boxes_take_large_files(b: Backend) {
    let env = Env::new(b);
    std::fs::create_dir_all(env.share().join("drop")).unwrap();
    let srv = env.serve();
    let url = crate::share::share(&env, &srv, &["admin/share/drop", "--upload-only"], None);
    let big = vec![7u8; 5 << 20];
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(big.clone()).file_name("photo.jpg"),
    );
    let r = client().post(&url).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(read(&env.share().join("drop/photo.jpg")), big);
}

/// The LAN media front answered anyone who could reach it; on a host with
/// a public address that was the Internet. Only peers on a network of the
/// host are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_front_serves_its_networks_only() {
    let env = Env::new(Backend::Sqlite);
    std::fs::copy("tests/media/song.mp3", env.share().join("song.mp3")).unwrap();
    let lan = crate::lan::Lan::new();
    let srv = lan.serve(&env, &[env.share().to_str().unwrap()]);
    let base = srv.dlna_base(crate::lan::SERVER_IP);
    // A second address on the TV side, on no network of the Glow host
    // (reached through a host route).
    let far = "198.51.100.7";
    let server_if = lan.client_if.trim_end_matches('c').to_owned() + "s";
    for args in [
        vec![
            "-n",
            &lan.client_ns,
            "addr",
            "add",
            &format!("{far}/32"),
            "dev",
            &lan.client_if,
        ],
        vec![
            "-n",
            &lan.server_ns,
            "route",
            "add",
            &format!("{far}/32"),
            "dev",
            &server_if,
        ],
    ] {
        let out = Command::new("ip").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let url = format!("{base}/dlna/m/admin/share/song.mp3");
    let status = |from: &str| {
        let out = lan
            .client_cmd("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--interface",
                from,
                &url,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status(crate::lan::CLIENT_IP), "200");
    assert_eq!(status(far), "403");
}

/// A FIFO (or a device) that someone put in a folder: reading it would
/// block a thread forever, and the blocking pool is finite. It is not a
/// file to serve: not found, at once, over every read path.
#[tokio::test]
async fn special_files_in_a_folder_are_not_served() {
    let env = Env::new(Backend::Sqlite);
    let fifo = env.share().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let srv = env.serve();
    for _ in 0..3 {
        // Twice the fast path's chance, then whatever the caches hold.
        let r = tokio::time::timeout(Duration::from_secs(10), get_admin(&srv.file("pipe")))
            .await
            .expect("a GET of a FIFO must not hang");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK, "the node still serves");
}
