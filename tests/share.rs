//! Share links over real HTTP, opened without any account: every
//! permission, password, expiry, download limit and revocation.

use crate::fixtures::*;
use reqwest::{StatusCode, header};
use std::io::Write;
use std::process::Stdio;

on_both!(
    read_links_serve_a_folder_and_refuse_changes,
    password_links_need_the_password,
    limits_expiry_and_revocation
);

/// Creates a link with `glow share create`, returning its URL.
pub(crate) fn share(env: &Env, srv: &Server, args: &[&str], password: Option<&str>) -> String {
    let mut cmd = env.glow();
    cmd.args(["share", "create"])
        .args(args)
        .args(["--public-url", &srv.base]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = password {
        stdin.write_all(format!("{p}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "share create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/s/", srv.base)) && url.ends_with('/'),
        "{url}"
    );
    // 128 random bits in the token.
    let token = url.trim_end_matches('/').rsplit('/').next().unwrap();
    assert!(token.len() >= 26, "{token}");
    url
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn read_links_serve_a_folder_and_refuse_changes(b: Backend) {
    let env = Env::new(b);
    std::fs::write(env.share().join("sub/inner.txt"), b"inner").unwrap();
    let srv = env.serve();
    let url = share(&env, &srv, &["admin/share"], None);

    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("hello.txt") && page.contains("href=\"./sub/\""),
        "{page}"
    );
    let r = get(&format!("{url}hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(r.text().await.unwrap(), "hello, world\n");
    let r = get(&format!("{url}hello.txt?inline")).await;
    assert!(!r.headers().contains_key(header::CONTENT_DISPOSITION));
    assert_eq!(
        get(&format!("{url}sub/inner.txt"))
            .await
            .text()
            .await
            .unwrap(),
        "inner"
    );
    assert_eq!(
        get(url.trim_end_matches('/')).await.status(),
        StatusCode::PERMANENT_REDIRECT
    );
    let r = get(&format!("{url}sub")).await;
    assert!(r.status().is_redirection());
    let r = get(&format!("{url}?zip")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..2], b"PK");

    // Read-only: no uploads, no deletes, nothing outside the folder.
    let r = client()
        .put(format!("{url}new.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .delete(format!("{url}hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!env.share().join("new.txt").exists() && env.share().join("hello.txt").exists());
    let token_path = url.split("://").nth(1).unwrap().split_once('/').unwrap().1;
    for t in [
        "../secret.txt",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "sub/../../secret.txt",
    ] {
        let (status, text) = raw_request(
            &srv.addr,
            &format!("GET /{token_path}{t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(matches!(status, 400 | 404), "{t}: {status}");
        assert!(!text.contains(SECRET));
    }
    // A link inside a shared directory cannot lead elsewhere in the folder.
    std::os::unix::fs::symlink(
        env.share().join("hello.txt"),
        env.share().join("sub/escape"),
    )
    .unwrap();
    let sub_url = share(&env, &srv, &["admin/share/sub"], None);
    assert_eq!(
        get(&format!("{sub_url}inner.txt")).await.status(),
        StatusCode::OK
    );
    let r = get(&format!("{sub_url}escape")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.unwrap().contains("hello, world"));
    std::fs::remove_file(env.share().join("sub/escape")).unwrap();
    // A file link: a preview page and the file, nothing else.
    let file_url = share(&env, &srv, &["admin/share/sub/inner.txt"], None);
    let page = get(&file_url).await.text().await.unwrap();
    assert!(
        page.contains("inner.txt") && page.contains("Download"),
        "{page}"
    );
    assert_eq!(
        get(&format!("{file_url}inner.txt"))
            .await
            .text()
            .await
            .unwrap(),
        "inner"
    );
    assert_eq!(
        get(&format!("{file_url}hello.txt")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!("{}/s/notatoken/", srv.base)).await.status(),
        StatusCode::NOT_FOUND
    );

    // Upload-only: a drop box.
    std::fs::write(env.share().join("sub/existing.txt"), b"mine").unwrap();
    let drop_url = share(&env, &srv, &["admin/share/sub", "--upload-only"], None);
    let page = get(&drop_url).await.text().await.unwrap();
    assert!(
        page.contains("Send files")
            && !page.contains("existing.txt")
            && !page.contains("inner.txt"),
        "{page}"
    );
    assert_eq!(
        get(&format!("{drop_url}existing.txt")).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = client()
        .put(format!("{drop_url}dropped.txt"))
        .body("dropped")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(read(&env.share().join("sub/dropped.txt")), b"dropped");
    let r = client()
        .put(format!("{drop_url}existing.txt"))
        .body("overwrite!")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(read(&env.share().join("sub/existing.txt")), b"mine");
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"second".to_vec()).file_name("existing.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"third".to_vec()).file_name("fresh.txt"),
        );
    let r = client()
        .post(&drop_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .ends_with("?sent=2")
    );
    assert_eq!(read(&env.share().join("sub/existing.txt")), b"mine");
    assert_eq!(read(&env.share().join("sub/existing (1).txt")), b"second");
    assert_eq!(read(&env.share().join("sub/fresh.txt")), b"third");

    // Read-write: uploads and deletes.
    let rw_url = share(&env, &srv, &["admin/share", "--read-write"], None);
    assert_eq!(
        client()
            .put(format!("{rw_url}rw.txt"))
            .body("rw")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        client()
            .delete(format!("{rw_url}rw.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!env.share().join("rw.txt").exists());
    // …and the deletion is in the owner's trash.
    assert!(env.ok(&["trash", "list", "admin"]).contains("share/rw.txt"));
}

async fn password_links_need_the_password(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = share(
        &env,
        &srv,
        &["admin/share", "--password-stdin"],
        Some("link-password"),
    );
    let r = get(&url).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let page = r.text().await.unwrap();
    assert!(page.contains("type=\"password\""), "{page}");
    let r = get(&format!("{url}hello.txt")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.unwrap().contains("hello, world"));

    let r = client()
        .post(&url)
        .form(&[("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Wrong password"));

    let r = client()
        .post(&url)
        .form(&[("password", "link-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    let path = url.split("://").nth(1).unwrap().split_once('/').unwrap().1;
    assert!(
        cookie.contains(&format!("Path=/{path}")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = client()
        .get(format!("{url}hello.txt"))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "hello, world\n");
    // A made-up proof does not work.
    let r = client()
        .get(format!("{url}hello.txt"))
        .header(header::COOKIE, "glow_link=00ff")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Guessing is rate-limited.
    for _ in 0..5 {
        client()
            .post(&url)
            .form(&[("password", "guess")])
            .send()
            .await
            .unwrap();
    }
    let r = client()
        .post(&url)
        .form(&[("password", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn limits_expiry_and_revocation(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    // Download limit: two downloads, then 410.
    let url = share(
        &env,
        &srv,
        &["admin/share/hello.txt", "--max-downloads", "2"],
        None,
    );
    for _ in 0..2 {
        let r = get(&format!("{url}hello.txt")).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = get(&format!("{url}hello.txt")).await;
    assert_eq!(r.status(), StatusCode::GONE);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("download limit") && !page.contains("hello, world"),
        "{page}"
    );
    let list = env.ok(&["share", "list", "admin", "--public-url", &srv.base]);
    assert!(
        list.contains("2 download(s)/2") && list.contains("dead"),
        "{list}"
    );

    // Expiry.
    let url = share(&env, &srv, &["admin/share", "--expires", "1s"], None);
    assert_eq!(get(&url).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = get(&format!("{url}hello.txt")).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("expired"));

    // Revocation, by URL.
    let url = share(&env, &srv, &["admin/share"], None);
    assert_eq!(get(&url).await.status(), StatusCode::OK);
    env.ok(&["share", "revoke", &url]);
    let r = get(&format!("{url}hello.txt")).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("revoked"));

    // Bad arguments are one clear line.
    let out = env.run(&["share", "create", "admin/share", "--expires", "soon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expires"));
    let out = env.run(&["share", "create", "admin/share/hello.txt", "--upload-only"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.run(&["share", "revoke", "nosuchtoken"]);
    assert_eq!(out.status.code(), Some(1));
}
