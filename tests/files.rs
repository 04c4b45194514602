//! HTTP file access: GET/HEAD/PUT/DELETE semantics, ranges, validators,
//! listings, unicode names, namespaces.

use crate::fixtures::*;
use reqwest::{Method, StatusCode, header};

on_both!(
    get_streams_a_file_with_its_headers,
    head_sends_headers_without_a_body,
    ranges_single_suffix_and_unsatisfiable,
    validators_give_304,
    folders_redirect_and_list,
    unicode_and_spaces_round_trip,
    put_creates_then_replaces,
    put_into_a_missing_directory_is_a_conflict,
    delete_moves_to_trash_and_restores,
    other_users_folders_are_invisible,
    healthz_answers_without_sign_in,
    put_streams_a_large_body,
);

async fn get_streams_a_file_with_its_headers(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(h[header::CONTENT_LENGTH], "13");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    let etag = h[header::ETAG].to_str().unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong etag: {etag}"
    );
    assert!(h.contains_key(header::LAST_MODIFIED));
    assert_eq!(r.bytes().await.unwrap(), "hello, world\n");

    std::fs::write(env.share().join("pic.png"), b"\x89PNG....").unwrap();
    let r = get_admin(&srv.file("pic.png")).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
    let r = get_admin(&srv.file("nope.txt")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn head_sends_headers_without_a_body(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = admin(Method::HEAD, &srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "13");
    assert!(r.headers().contains_key(header::ETAG));
    assert!(r.bytes().await.unwrap().is_empty());
}

async fn ranges_single_suffix_and_unsatisfiable(b: Backend) {
    let env = Env::new(b);
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    std::fs::write(env.share().join("bytes.bin"), &body).unwrap();
    let srv = env.serve();
    let url = srv.file("bytes.bin");
    let range = |r: &'static str| admin(Method::GET, &url).header(header::RANGE, r).send();

    let r = range("bytes=10-19").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 10-19/1000");
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "10");
    assert_eq!(r.bytes().await.unwrap(), &body[10..20]);

    let r = range("bytes=-300").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 700-999/1000");
    assert_eq!(r.bytes().await.unwrap(), &body[700..]);

    let r = range("bytes=990-").await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 990-999/1000");
    assert_eq!(r.bytes().await.unwrap(), &body[990..]);

    let r = range("bytes=1000-").await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");

    let r = range("bytes=0-1,5-6").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "several ranges get the whole file"
    );
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    // If-Range with a stale validator: the whole file, not the range.
    let r = admin(Method::GET, &url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn validators_give_304(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = srv.file("hello.txt");
    let r = get_admin(&url).await;
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    let modified = r.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_owned();

    let r = admin(Method::GET, &url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[header::ETAG], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());

    let r = admin(Method::GET, &url)
        .header(header::IF_NONE_MATCH, "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = admin(Method::GET, &url)
        .header(header::IF_MODIFIED_SINCE, &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = admin(Method::GET, &url)
        .header(header::IF_MODIFIED_SINCE, "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A new write changes the ETag.
    assert!(put_admin(&url, "changed").await.status().is_success());
    let r = admin(Method::GET, &url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()[header::ETAG], etag.as_str());
}

async fn folders_redirect_and_list(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("a <b> & c.txt"), b"x").unwrap();
    let srv = env.serve();
    let r = get_admin(&format!("{}/u/admin/share", srv.base)).await;
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()[header::LOCATION], "/u/admin/share/");
    let r = get_admin(&format!("{}/u/admin/share/sub", srv.base)).await;
    assert_eq!(r.headers()[header::LOCATION], "/u/admin/share/sub/");

    let r = get_admin(&srv.file("")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    // Entities may be named or numeric; compare in one spelling.
    let html = r
        .text()
        .await
        .unwrap()
        .replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#38;", "&amp;")
        .replace("&#34;", "&quot;");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("href=\"./hello.txt\""), "{html}");
    assert!(html.contains("href=\"./sub/\""), "{html}");
    assert!(html.contains("a &lt;b&gt; &amp; c.txt"), "{html}");
    assert!(
        html.contains("href=\"./a%20%3Cb%3E%20&amp;%20c.txt\""),
        "{html}"
    );

    let r = get_admin(&format!("{}/u/", srv.base)).await;
    assert_eq!(r.headers()[header::LOCATION], "/u/admin/");
    let html = get_admin(&format!("{}/u/admin/", srv.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("href=\"./share/\""), "{html}");

    // A file addressed as a directory is not found.
    assert_eq!(
        get_admin(&srv.file("hello.txt/")).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn unicode_and_spaces_round_trip(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let name = "ünï cødé 😀 & space.txt";
    let enc = "%C3%BCn%C3%AF%20c%C3%B8d%C3%A9%20%F0%9F%98%80%20%26%20space.txt";
    let r = put_admin(&srv.file(&format!("sub/{enc}")), "unicode body").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(read(&env.share().join("sub").join(name)), b"unicode body");
    let r = get_admin(&srv.file(&format!("sub/{enc}"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "unicode body");
    std::fs::write(env.share().join("日本語.txt"), "on disk").unwrap();
    let html = get_admin(&srv.file("")).await.text().await.unwrap();
    assert!(html.contains("日本語.txt"));
    let r = get_admin(&srv.file("%E6%97%A5%E6%9C%AC%E8%AA%9E.txt")).await;
    assert_eq!(r.text().await.unwrap(), "on disk");
}

async fn put_creates_then_replaces(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = srv.file("new.txt");
    let r = put_admin(&url, "one").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key(header::ETAG));
    let r = put_admin(&url, "two").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(read(&env.share().join("new.txt")), b"two");
    assert_eq!(get_admin(&url).await.text().await.unwrap(), "two");
    // Conditional creation.
    let r = admin(Method::PUT, &url)
        .header(header::IF_NONE_MATCH, "*")
        .body("three")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = admin(Method::PUT, &url)
        .header(header::IF_MATCH, "\"stale\"")
        .body("three")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(read(&env.share().join("new.txt")), b"two");
    // A directory cannot be replaced by a file.
    assert_eq!(
        put_admin(&srv.file("sub"), "x").await.status(),
        StatusCode::CONFLICT
    );
    // Nothing is left behind by the writes.
    let stray: Vec<_> = std::fs::read_dir(env.share())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".glow-tmp"))
        .collect();
    assert!(stray.is_empty());
}

async fn put_into_a_missing_directory_is_a_conflict(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = put_admin(&srv.file("no/such/dir/x.txt"), "x").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(!env.share().join("no").exists());
}

async fn delete_moves_to_trash_and_restores(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("sub/inner.txt"), b"inner").unwrap();
    let srv = env.serve();
    let r = admin(Method::DELETE, &srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!env.share().join("hello.txt").exists());
    assert_eq!(
        get_admin(&srv.file("hello.txt")).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = admin(Method::DELETE, &srv.file("sub"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!env.share().join("sub").exists());
    assert_eq!(
        admin(Method::DELETE, &srv.file("sub"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    // The folder itself cannot be deleted.
    assert_eq!(
        admin(Method::DELETE, &srv.file(""))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    let list = env.ok(&["trash", "list", "admin"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("share/sub") && lines[0].contains("1 file(s)"),
        "{list}"
    );
    assert!(
        lines[1].contains("share/hello.txt") && lines[1].contains("by admin via http"),
        "{list}"
    );
    let sub_id = lines[0].split('\t').next().unwrap();
    env.ok(&["trash", "restore", "admin", sub_id]);
    assert_eq!(read(&env.share().join("sub/inner.txt")), b"inner");
    let hello_id = lines[1].split('\t').next().unwrap();
    env.ok(&["trash", "purge", "admin", hello_id]);
    assert_eq!(env.ok(&["trash", "list", "admin"]).trim(), "");
}

async fn other_users_folders_are_invisible(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let mut child = env
        .glow()
        .args(["user", "add", "bob", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bob-password-1\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let bob = |m: Method, url: String| {
        client()
            .request(m, url)
            .basic_auth("bob", Some("bob-password-1"))
    };
    let r = bob(Method::GET, srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = bob(Method::GET, format!("{}/u/admin/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = bob(Method::PUT, srv.file("bob.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = bob(Method::DELETE, srv.file("hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(env.share().join("hello.txt").exists());
    let r = bob(Method::GET, format!("{}/u/", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::LOCATION], "/u/bob/");
    let html = bob(Method::GET, format!("{}/u/bob/", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("share"));
}

async fn healthz_answers_without_sign_in(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = client()
        .get(format!("{}/healthz", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let r = client()
        .get(format!("{}/nothing-here", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn put_streams_a_large_body(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    // 64 MiB in 1 MiB chunks, generated as it is sent.
    let chunks = (0..64u8).map(|i| Ok::<_, std::io::Error>(vec![i; 1 << 20]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = put_admin(&srv.file("big.bin"), body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let on_disk = read(&env.share().join("big.bin"));
    assert_eq!(on_disk.len(), 64 << 20);
    assert!(
        on_disk
            .chunks(1 << 20)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );
    let r = admin(Method::GET, &srv.file("big.bin"))
        .header(header::RANGE, "bytes=-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[63u8]);
}
