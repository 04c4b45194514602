//! The browser-facing front: the JSON API, CSRF protection, pages, folder
//! zips and thumbnails, over real HTTP.

use crate::fixtures::*;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

on_both!(
    api_does_what_the_pages_do,
    csrf_guards_cookie_sessions,
    zip_downloads_unpack_to_the_same_bytes
);

async fn api(srv: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let r = admin(Method::POST, &format!("{}/api/v1/{path}", srv.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn api_get(srv: &Server, path: &str) -> Value {
    let r = get_admin(&format!("{}/api/v1/{path}", srv.base)).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

async fn api_does_what_the_pages_do(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    assert_eq!(api_get(&srv, "me").await["user"], "admin");
    assert_eq!(api_get(&srv, "folders").await[0]["address"], "admin/share");
    let (s, _) = api(&srv, "mkdir", json!({"path": "admin/share/new dir"})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(env.share().join("new dir").is_dir());
    let (s, v) = api(&srv, "mkdir", json!({"path": "admin/share/new dir"})).await;
    assert!(s.is_client_error() && v["error"].is_string(), "{s} {v}");
    let (s, _) = api(
        &srv,
        "move",
        json!({"from": "admin/share/hello.txt", "to": "admin/share/new dir/hi.txt"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(read(&env.share().join("new dir/hi.txt")), b"hello, world\n");
    let (s, _) = api(
        &srv,
        "copy",
        json!({"from": "admin/share/new dir", "to": "admin/share/copied"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(read(&env.share().join("copied/hi.txt")), b"hello, world\n");
    let list = api_get(&srv, "list?path=admin/share/copied").await;
    assert_eq!(list[0]["name"], "hi.txt");
    assert_eq!(list[0]["size"], 13);

    put_admin(&srv.file("copied/hi.txt"), "changed").await;
    let versions = api_get(&srv, "versions?path=admin/share/copied/hi.txt").await;
    let id = versions[0]["id"].as_i64().unwrap();
    let (s, _) = api(
        &srv,
        "restore",
        json!({"path": "admin/share/copied/hi.txt", "version": id}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(read(&env.share().join("copied/hi.txt")), b"hello, world\n");

    let (s, v) = api(&srv, "delete", json!({"path": "admin/share/copied"})).await;
    assert_eq!(s, StatusCode::OK);
    let trash_id = v["trash_id"].as_i64().unwrap();
    assert!(!env.share().join("copied").exists());
    assert_eq!(
        api_get(&srv, "trash").await[0]["path"],
        "admin/share/copied"
    );
    let (s, _) = api(&srv, "trash/restore", json!({"id": trash_id})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(env.share().join("copied/hi.txt").exists());
    api(&srv, "delete", json!({"path": "admin/share/copied"})).await;
    let (s, _) = api(&srv, "trash/empty", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api_get(&srv, "trash").await, json!([]));

    let r = admin(Method::POST, &format!("{}/api/v1/shares", srv.base))
        .json(&json!({"path": "admin/share/new dir", "permission": "read", "max_downloads": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let share: Value = r.json().await.unwrap();
    let url = format!("{}{}", srv.base, share["url"].as_str().unwrap());
    assert_eq!(
        client()
            .get(format!("{url}hi.txt"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "hello, world\n"
    );
    assert_eq!(api_get(&srv, "shares").await[0]["downloads"], 1);
    let (s, _) = api(&srv, "shares/revoke", json!({"id": share["id"]})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::GONE
    );

    // Bad input: JSON errors, never a crash.
    let r = admin(Method::POST, &format!("{}/api/v1/mkdir", srv.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (s, _) = api(&srv, "mkdir", json!({"path": "admin/share/../../etc"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api(
        &srv,
        "shares",
        json!({"path": "admin/share", "permission": "root"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = client()
        .get(format!("{}/api/v1/me", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let doc: Value = client()
        .get(format!("{}/api/v1/openapi.json", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/shares"]["post"].is_object());
}

async fn csrf_guards_cookie_sessions(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let cookie = session_cookie(&srv).await;
    let with_cookie =
        |m: Method, url: String| client().request(m, url).header(header::COOKIE, &cookie);
    let me: Value = with_cookie(Method::GET, format!("{}/api/v1/me", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = me["csrf"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32);

    // Without the token: refused, nothing happens.
    let r = with_cookie(Method::POST, format!("{}/api/v1/mkdir", srv.base))
        .json(&json!({"path": "admin/share/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = with_cookie(Method::PUT, srv.file("x.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = with_cookie(Method::DELETE, srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = with_cookie(Method::POST, format!("{}/api/v1/mkdir", srv.base))
        .header("x-csrf-token", "0".repeat(32))
        .json(&json!({"path": "admin/share/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        !env.share().join("x").exists()
            && !env.share().join("x.txt").exists()
            && env.share().join("hello.txt").exists()
    );

    // With it: allowed.
    let r = with_cookie(Method::POST, format!("{}/api/v1/mkdir", srv.base))
        .header("x-csrf-token", &token)
        .json(&json!({"path": "admin/share/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_cookie(Method::PUT, srv.file("x.txt"))
        .header("x-csrf-token", &token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A browser that says the request is cross-site is refused, whatever it carries.
    let r = admin(Method::PUT, &srv.file("y.txt"))
        .header("sec-fetch-site", "cross-site")
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Pages for a browser without a session: the sign-in page.
    let r = client()
        .get(srv.file(""))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    let page = client()
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("type=\"password\""));
    let r = client()
        .post(format!("{}/login", srv.base))
        .form(&[
            ("user", "admin"),
            ("password", ADMIN_PW),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()[header::LOCATION],
        "/u/admin/",
        "no open redirect"
    );
    // Signed-in pages render.
    for page in [
        "/trash",
        "/links",
        "/u/admin/share/",
        "/u/admin/share/hello.txt?versions",
    ] {
        let r = with_cookie(Method::GET, format!("{}{page}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let html = r.text().await.unwrap();
        assert!(html.contains(&token), "{page} carries the CSRF token");
    }
}

async fn zip_downloads_unpack_to_the_same_bytes(b: Backend) {
    let env = Env::new(b);
    let dir = env.share().join("ünïcødé 📷");
    std::fs::create_dir_all(dir.join("深い/folder")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("ünïcødé 📷/日本語.txt", "こんにちは".as_bytes().to_vec()),
        (
            "ünïcødé 📷/深い/folder/random.bin",
            (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            "ünïcødé 📷/photo.jpg",
            vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        ),
        ("ünïcødé 📷/empty.txt", vec![]),
    ];
    for (p, bytes) in &files {
        std::fs::write(env.share().join(p), bytes).unwrap();
    }
    let srv = env.serve();
    let r = get_admin(&srv.file("%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%F0%9F%93%B7/?zip")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/zip");
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(".zip")
    );
    let zip = r.bytes().await.unwrap();
    let zpath = env.path("out.zip");
    std::fs::write(&zpath, &zip).unwrap();
    let out = env.path("unzipped");
    // Python's zipfile, an independent reader.
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2])"])
        .arg(&zpath)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for (p, bytes) in &files {
        let rel = p.split_once('/').unwrap().1;
        assert_eq!(&read(&out.join(rel)), bytes, "{rel}");
    }
    assert!(out.join("深い/folder").is_dir());
}

#[tokio::test]
async fn thumbnails_are_small_jpegs() {
    let env = Env::new(Backend::Sqlite);
    // A 600x400 PNG, written by hand-rolled bytes through the image crate's
    // independent reader in python would be overkill: use ImageMagick-free
    // PNG from the test's own encoder below.
    std::fs::write(env.share().join("pic.png"), png(600, 400)).unwrap();
    std::fs::write(env.share().join("fake.png"), b"not an image").unwrap();
    let srv = env.serve();
    let r = get_admin(&format!("{}?thumb", srv.file("pic.png"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    assert!(jpeg.len() < 20_000);
    // Cached: a second request gives the same bytes.
    assert_eq!(
        get_admin(&format!("{}?thumb", srv.file("pic.png")))
            .await
            .bytes()
            .await
            .unwrap(),
        jpeg
    );
    assert_eq!(
        get_admin(&format!("{}?thumb", srv.file("fake.png")))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get_admin(&format!("{}?thumb", srv.file("hello.txt")))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let html = get_admin(&format!("{}?view", srv.file("pic.png")))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<img"), "{html}");
}

/// A valid, uncompressed-deflate PNG of a gradient, built by hand (zlib
/// stored blocks) so the test needs no image library of its own.
fn png(w: u32, h: u32) -> Vec<u8> {
    fn crc(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        out.extend(&c);
        out.extend(crc(&c).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w {
            raw.extend([(x % 256) as u8, (y % 256) as u8, 128]);
        }
    }
    let mut z = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65535).enumerate() {
        let last = (i + 1) * 65535 >= raw.len();
        z.push(last as u8);
        z.extend((block.len() as u16).to_le_bytes());
        z.extend((!(block.len() as u16)).to_le_bytes());
        z.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
