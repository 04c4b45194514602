//! Every way of reaching outside a folder is refused, and the secret file
//! beside the served folder is never served.

use crate::fixtures::*;
use std::os::unix::fs::symlink;

on_both!(
    traversal_spellings_are_refused,
    symlinks_out_of_the_folder_are_refused
);

async fn traversal_spellings_are_refused(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let auth = admin_basic();
    let secret = env.path("secret.txt");
    let abs = secret.to_str().unwrap();
    let targets = [
        "/u/admin/share/../secret.txt".to_owned(),
        "/u/admin/share/%2e%2e/secret.txt".to_owned(),
        "/u/admin/share/%2E%2E/secret.txt".to_owned(),
        "/u/admin/share/..%2fsecret.txt".to_owned(),
        "/u/admin/share/..%2Fsecret.txt".to_owned(),
        "/u/admin/share/%2e%2e%2fsecret.txt".to_owned(),
        "/u/admin/share/sub/../../secret.txt".to_owned(),
        "/u/admin/share/..\\secret.txt".to_owned(),
        "/u/admin/share/..%5csecret.txt".to_owned(),
        "/u/admin/share/..%5Csecret.txt".to_owned(),
        "/u/admin/share/%252e%252e/secret.txt".to_owned(),
        "/u/admin/share/.%2e/secret.txt".to_owned(),
        "/u/admin/share/secret.txt%00.txt".to_owned(),
        format!("/u/admin/share/{abs}"),
        format!("/u/admin/share/{}", abs.replace('/', "%2f")),
        format!("/u/admin/share//{abs}"),
        "/u/admin/../admin/share/../secret.txt".to_owned(),
        "/u/../u/admin/share/../secret.txt".to_owned(),
        format!("http://{}/u/admin/share/../secret.txt", srv.addr),
    ];
    for t in &targets {
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            let (status, text) = raw_request(
                &srv.addr,
                &format!(
                    "{method} {t} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nX"
                ),
            );
            assert!(
                matches!(status, 400 | 403 | 404 | 409),
                "{method} {t} answered {status}: {text}"
            );
            assert!(!text.contains(SECRET), "{method} {t} leaked the secret");
        }
    }
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        SECRET,
        "the secret file was changed"
    );
    // Nothing was created outside (or inside) by the refused PUTs.
    assert!(!env.path("X").exists());
}

async fn symlinks_out_of_the_folder_are_refused(b: Backend) {
    let env = Env::new(b);
    symlink(env.path("secret.txt"), env.share().join("link-out")).unwrap();
    symlink(env.tmp.path(), env.share().join("dir-out")).unwrap();
    symlink(env.path("nowhere"), env.share().join("dangling")).unwrap();
    symlink(env.share().join("hello.txt"), env.share().join("link-in")).unwrap();
    let srv = env.serve();
    for rel in ["link-out", "dir-out/secret.txt", "dir-out/", "dangling"] {
        let r = get_admin(&srv.file(rel)).await;
        let status = r.status().as_u16();
        assert!(matches!(status, 403 | 404), "GET {rel}: {status}");
        assert!(!r.text().await.unwrap().contains(SECRET));
    }
    for rel in [
        "link-out",
        "dir-out/secret.txt",
        "dir-out/new.txt",
        "dangling",
    ] {
        let r = put_admin(&srv.file(rel), "overwritten").await;
        assert!(
            matches!(r.status().as_u16(), 403 | 404 | 409),
            "PUT {rel}: {}",
            r.status()
        );
        let r = admin(reqwest::Method::DELETE, &srv.file(rel))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 403 | 404 | 409),
            "DELETE {rel}: {}",
            r.status()
        );
    }
    assert_eq!(
        std::fs::read_to_string(env.path("secret.txt")).unwrap(),
        SECRET
    );
    assert!(!env.path("new.txt").exists() && !env.path("nowhere").exists());
    // Changes act on the name, never through a link: the target stays intact.
    let r = admin(reqwest::Method::DELETE, &srv.file("link-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = put_admin(&srv.file("link-in"), "through the link").await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        std::fs::read_to_string(env.share().join("hello.txt")).unwrap(),
        "hello, world\n"
    );
    // A link that stays inside the folder works, and listings hide the others.
    assert_eq!(
        get_admin(&srv.file("link-in")).await.text().await.unwrap(),
        "hello, world\n"
    );
    let html = get_admin(&srv.file("")).await.text().await.unwrap();
    assert!(
        html.contains("link-in") && !html.contains("link-out") && !html.contains("dir-out"),
        "{html}"
    );
}
