//! Hostile and broken clients: slow headers, oversize forms, malformed
//! requests. The server answers with a protocol error or drops the
//! connection, never panics, and keeps serving everyone else.

use crate::fixtures::*;
use reqwest::StatusCode;
use std::io::Write;
use std::net::TcpStream;

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve_with(&["--header-timeout", "2", env.share().to_str().unwrap()]);
    let mut slow = TcpStream::connect(&srv.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Others are served meanwhile.
    let r = client()
        .get(format!("{}/healthz", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The slow client never finishes its headers and is dropped.
    crate::fixtures::assert_hung_up(slow);
}

#[tokio::test]
async fn oversize_sign_in_forms_are_refused() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    let big = format!("user=admin&password={}", "x".repeat(3 << 20));
    let r = client()
        .post(format!("{}/login", srv.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = client()
        .post(format!("{}/login", srv.base))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn malformed_requests_get_errors_not_crashes() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve();
    let auth = admin_basic();
    let cases = [
        format!("GET /u/admin/share/%ff%fe HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
        format!("GET /u/admin/share/hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nRange: bytes=zzz\r\nConnection: close\r\n\r\n"),
        format!("GET /u/admin/share/hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nIf-Modified-Since: yesterday\r\nConnection: close\r\n\r\n"),
        "GET /u/admin/share/hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /u/admin/share/hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nConnection: close\r\n\r\n".to_owned(),
        "BREW /u/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        "GARBAGE\r\n\r\n".to_owned(),
        "GET / HTTP/9.9\r\n\r\n".to_owned(),
        format!("PATCH /u/admin/share/hello.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
    ];
    let expected = [400, 200, 200, 401, 401, 401, 400, 505, 405];
    for (req, want) in cases.iter().zip(expected) {
        let (status, text) = raw_request(&srv.addr, req);
        assert!(
            status == want || (want == 505 && status == 400),
            "{req:?} answered {status}: {text}"
        );
    }
    let r = get_admin(&srv.file("hello.txt")).await;
    assert_eq!(r.status(), StatusCode::OK, "still serving");
}

#[tokio::test]
async fn tls_from_certificate_files() {
    let env = Env::new(Backend::Sqlite);
    // Make a certificate once with the self-signed mode, then use the files.
    drop(env.serve_with(&["--tls", "self-signed"]));
    let cert = env.data_dir().join("tls/self-signed.crt");
    let key = env.data_dir().join("tls/self-signed.key");
    let srv = env.serve_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        env.share().to_str().unwrap(),
    ]);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--cacert",
            cert.to_str().unwrap(),
            "-u",
            &format!("admin:{ADMIN_PW}"),
        ])
        .arg(srv.file("hello.txt").replace("127.0.0.1", "localhost"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello, world\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a certificate without a key is a usage error"
    );
    std::fs::write(env.path("bad.pem"), "not a certificate").unwrap();
    let bad = env.path("bad.pem");
    let out = env.run(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        bad.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pem"));
}
