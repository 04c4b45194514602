//! Sign-in: Basic with passwords and app passwords, sessions, 401s and the
//! rate limit on failures.

use crate::fixtures::*;
use reqwest::{Method, StatusCode, header};

on_both!(
    missing_or_wrong_credentials_get_401,
    repeated_failures_are_rate_limited,
    app_passwords_sign_in,
    session_cookies_sign_in_and_out,
    failures_from_one_address_are_rate_limited,
);

async fn missing_or_wrong_credentials_get_401(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = client().get(srv.file("hello.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"Glow\", charset=\"UTF-8\""
    );
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("admin", Some("wrong-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("nobody", Some("whatever-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .get(srv.file("hello.txt"))
        .header(header::AUTHORIZATION, "Basic %%%garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .put(srv.file("x.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!env.share().join("x.txt").exists());
}

async fn repeated_failures_are_rate_limited(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let wrong = || {
        client()
            .get(srv.file("hello.txt"))
            .basic_auth("admin", Some("wrong-password"))
            .send()
    };
    for i in 1..=5 {
        assert_eq!(
            wrong().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    let r = wrong().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Locked out: even the right password waits.
    assert_eq!(
        get_admin(&srv.file("hello.txt")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn app_passwords_sign_in(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let secret = env
        .ok(&["user", "app-password", "admin", "--label", "phone"])
        .trim()
        .to_owned();
    assert!(secret.len() >= 20);
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("admin", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("admin", Some("not-the-app-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn session_cookies_sign_in_and_out(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let r = client()
        .post(format!("{}/login", srv.base))
        .form(&[("user", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/u/admin/");
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = client()
        .get(srv.file("hello.txt"))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A password change ends every session.
    let mut child = env
        .glow()
        .args(["user", "passwd", "admin", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{ADMIN_PW}\n").as_bytes(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let r = client()
        .get(srv.file("hello.txt"))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let pair = session_cookie(&srv).await;
    let r = client()
        .request(Method::POST, format!("{}/logout", srv.base))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "signing out needs the CSRF token"
    );
    let me: serde_json::Value = client()
        .get(format!("{}/api/v1/me", srv.base))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrf"].as_str().unwrap().to_owned();
    let r = client()
        .request(Method::POST, format!("{}/logout", srv.base))
        .header("x-csrf-token", &csrf)
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client()
        .get(srv.file("hello.txt"))
        .header(header::COOKIE, &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .post(format!("{}/login", srv.base))
        .form(&[("user", "admin"), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn failures_from_one_address_are_rate_limited(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    // Twenty wrong passwords from one address, spread over names so that no
    // single name reaches its own limit.
    for i in 0..20 {
        let r = client()
            .get(srv.file("hello.txt"))
            .basic_auth(format!("guess{}", i % 5), Some("wrong-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("someone-new", Some("wrong-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}
