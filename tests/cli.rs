//! The command line: management commands, errors, help, config files,
//! TLS and graceful shutdown.

use crate::fixtures::*;
use std::process::Command;

on_both!(
    users_are_managed,
    folders_are_managed,
    ssh_keys_are_stored,
    config_file_sets_serve_options
);

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE7x9ln6uZLLkfXM8iatrnAAuytVHeCznU8VlEgx7TvL alice@laptop";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn users_are_managed(b: Backend) {
    let env = Env::new(b);
    let out = env.ok(&["user", "add", "alice"]);
    assert!(out.contains("added user alice; password: "), "{out}");
    let list = env.ok(&["user", "list"]);
    assert!(list.contains("alice"), "{list}");

    let dup = env.run(&["user", "add", "alice"]);
    assert_eq!(dup.status.code(), Some(1));
    let msg = stderr(&dup);
    assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    assert!(
        msg.starts_with("error: ") && msg.contains("already exists"),
        "{msg}"
    );

    let bad = env.run(&["user", "add", "../evil"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("not a valid user name"));

    let mut child = env
        .glow()
        .args(["user", "passwd", "alice", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "too short a password is refused"
    );

    env.ok(&["user", "remove", "alice"]);
    assert!(!env.ok(&["user", "list"]).contains("alice"));
    assert_eq!(env.run(&["user", "remove", "alice"]).status.code(), Some(1));
}

async fn folders_are_managed(b: Backend) {
    let env = Env::new(b);
    env.ok(&["user", "add", "alice"]);
    let out = env.ok(&[
        "folder",
        "add",
        "docs",
        env.share().to_str().unwrap(),
        "--owner",
        "alice",
    ]);
    assert!(out.contains("added folder alice/docs"), "{out}");
    let list = env.ok(&["folder", "list"]);
    assert!(
        list.contains("alice/docs") && list.contains("copies small"),
        "{list}"
    );

    let missing = env.run(&[
        "folder",
        "add",
        "x",
        env.path("does-not-exist").to_str().unwrap(),
        "--owner",
        "alice",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("does-not-exist"),
        "{}",
        stderr(&missing)
    );

    let dup = env.run(&[
        "folder",
        "add",
        "docs",
        env.share().to_str().unwrap(),
        "--owner",
        "alice",
    ]);
    assert_eq!(dup.status.code(), Some(1));

    let inside = env.run(&[
        "folder",
        "add",
        "data",
        env.data_dir().to_str().unwrap(),
        "--owner",
        "alice",
    ]);
    assert_eq!(inside.status.code(), Some(1));
    assert!(stderr(&inside).contains("data dir"), "{}", stderr(&inside));

    let nobody = env.run(&[
        "folder",
        "add",
        "y",
        env.share().to_str().unwrap(),
        "--owner",
        "nobody",
    ]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        stderr(&nobody).contains("no user named"),
        "{}",
        stderr(&nobody)
    );

    let bad_addr = env.run(&["versions", "just-a-user"]);
    assert_eq!(bad_addr.status.code(), Some(1));
    assert!(
        stderr(&bad_addr).contains("USER/FOLDER"),
        "{}",
        stderr(&bad_addr)
    );
}

async fn ssh_keys_are_stored(b: Backend) {
    let env = Env::new(b);
    env.ok(&["user", "add", "alice"]);
    let key = env.path("id.pub");
    std::fs::write(&key, format!("{ED25519}\n")).unwrap();
    let out = env.ok(&["user", "key", "add", "alice", key.to_str().unwrap()]);
    assert!(out.contains("ssh-ed25519 key SHA256:"), "{out}");
    let list = env.ok(&["user", "key", "list", "alice"]);
    assert!(
        list.contains("alice@laptop") && list.contains("SHA256:"),
        "{list}"
    );
    assert_eq!(
        env.run(&["user", "key", "add", "alice", key.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    std::fs::write(&key, "ssh-ed25519 garbage\n").unwrap();
    let bad = env.run(&["user", "key", "add", "alice", key.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("not an OpenSSH public key"),
        "{}",
        stderr(&bad)
    );
}

async fn config_file_sets_serve_options(b: Backend) {
    let env = Env::new(b);
    let cfg = env.path("glow.toml");
    std::fs::write(
        &cfg,
        format!(
            "http = \"127.0.0.1:0\"\nfolders = [{:?}]\n",
            env.share().to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = env.glow();
    cmd.args(["serve", "--config", cfg.to_str().unwrap()]);
    let srv = Server::start(cmd);
    assert!(srv.banner.contains("admin/share"), "{}", srv.banner);
    assert_eq!(
        get_admin(&srv.file("hello.txt"))
            .await
            .text()
            .await
            .unwrap(),
        "hello, world\n"
    );
}

#[test]
fn bad_config_names_file_line_and_key() {
    let env = Env::new(Backend::Sqlite);
    let cfg = env.path("bad.toml");
    std::fs::write(&cfg, "http = \"127.0.0.1:0\"\n\nhtp = \"oops\"\n").unwrap();
    let out = env.run(&["--config", cfg.to_str().unwrap(), "user", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert!(
        msg.contains(cfg.to_str().unwrap()) && msg.contains(":3:") && msg.contains("key `htp`"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");

    std::fs::write(&cfg, "data_dir = 42\n").unwrap();
    let msg = stderr(&env.run(&["--config", cfg.to_str().unwrap(), "user", "list"]));
    assert!(
        msg.contains(":1:") && msg.contains("key `data_dir`"),
        "{msg}"
    );
}

#[test]
fn bad_arguments_fail_with_usage() {
    let env = Env::new(Backend::Sqlite);
    for args in [
        &["user", "add"][..],
        &["frobnicate"],
        &["folder", "add", "x"],
        &["restore", "a/b/c", "notanumber"],
        &[],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "glow {args:?}");
        let e = stderr(&out);
        assert!(
            e.contains("Usage") || e.contains("--help"),
            "glow {args:?}: {e}"
        );
    }
    let out = env.run(&[
        "serve",
        "--http",
        "not-an-address",
        env.share().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not an address"), "{}", stderr(&out));
    let out = env.run(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        env.path("missing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot serve"), "{}", stderr(&out));
    let out = env
        .glow()
        .args(["user", "list"])
        .env("GLOW_DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unsupported database URL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["user"],
        &["user", "add"],
        &["user", "list"],
        &["user", "passwd"],
        &["user", "remove"],
        &["user", "key"],
        &["user", "key", "add"],
        &["user", "key", "list"],
        &["user", "app-password"],
        &["folder"],
        &["folder", "add"],
        &["folder", "list"],
        &["folder", "verify"],
        &["folder", "remove"],
        &["versions"],
        &["restore"],
        &["trash"],
        &["trash", "list"],
        &["trash", "restore"],
        &["trash", "purge"],
    ];
    for c in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_glow"))
            .args(*c)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "glow {c:?} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: glow"), "glow {c:?} --help: {text}");
    }
}

#[tokio::test]
async fn self_signed_tls_serves_https() {
    let env = Env::new(Backend::Sqlite);
    let srv = env.serve_with(&["--tls", "self-signed", env.share().to_str().unwrap()]);
    assert!(srv.base.starts_with("https://"), "{}", srv.banner);
    let out = Command::new("curl")
        .args([
            "-sk",
            "-u",
            &format!("admin:{ADMIN_PW}"),
            &srv.file("hello.txt"),
        ])
        .output()
        .expect("curl is needed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world\n");
    // Plain HTTP on the TLS port gets nothing.
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            &srv.file("hello.txt").replace("https", "http"),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hello"));
    assert!(env.data_dir().join("tls/self-signed.crt").is_file());
}

#[tokio::test]
async fn sigterm_stops_gracefully() {
    let env = Env::new(Backend::Sqlite);
    let mut srv = env.serve();
    assert_eq!(
        get_admin(&srv.file("hello.txt")).await.status(),
        reqwest::StatusCode::OK
    );
    srv.terminate();
    assert!(srv.child.wait().unwrap().success());
}

#[tokio::test]
async fn banner_lists_endpoints_and_a_generated_password() {
    let env = Env::new(Backend::Sqlite);
    let mut cmd = env.glow();
    cmd.env_remove("GLOW_ADMIN_PASSWORD").args([
        "serve",
        "--http",
        "127.0.0.1:0",
        env.share().to_str().unwrap(),
    ]);
    let srv = Server::start(cmd);
    let b = srv.banner.clone();
    assert!(
        b.contains("/healthz") && b.contains("admin/share ->") && b.contains("SQLite"),
        "{b}"
    );
    let line = b.lines().find(|l| l.contains("sign in")).unwrap();
    let pw = line
        .split(" / ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let r = client()
        .get(srv.file("hello.txt"))
        .basic_auth("admin", Some(&pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    // The password is shown once: a restart does not print it again.
    drop(srv);
    let mut cmd = env.glow();
    cmd.env_remove("GLOW_ADMIN_PASSWORD")
        .args(["serve", "--http", "127.0.0.1:0"]);
    let srv = Server::start(cmd);
    assert!(!srv.banner.contains(&pw));
}

#[test]
fn many_commands_at_once_on_a_new_data_dir() {
    // A server and the CLI may create and migrate the catalog at the same time.
    let env = Env::new(Backend::Sqlite);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut c = env.glow();
            if i % 2 == 0 {
                c.args(["user", "list"])
            } else {
                c.args(["folder", "list"])
            };
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_node_has_one_id_kept_in_its_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(Backend::Sqlite);
    let first = env.ok(&["node", "id"]);
    let id = first
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("id    "))
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert_eq!(id.len(), 64, "{first}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(env.ok(&["node", "id"]), first, "the same id every time");
    let key = env.data_dir().join("node.key");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(
        meta.permissions().mode() & 0o077,
        0,
        "only its owner reads the key"
    );

    // The banner shows the same id, and the name the node runs under.
    let mut srv = env.serve_with(&[
        "--name",
        "nas-in-the-closet",
        "--no-sftp",
        "--no-dlna",
        env.share().to_str().unwrap(),
    ]);
    assert!(srv.banner.contains(&format!("node {id}")), "{}", srv.banner);
    assert!(
        srv.banner
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["name", "nas-in-the-closet"]),
        "{}",
        srv.banner
    );
    srv.terminate();
    let again = env.ok(&["node", "id"]);
    assert!(
        again.contains(&id) && again.contains("name  nas-in-the-closet"),
        "{again}"
    );

    // A damaged key is refused in one line that says what to do; it is
    // never silently replaced (the node's id would change under its peers).
    std::fs::write(&key, b"not a key").unwrap();
    let out = env.run(&["node", "id"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = stderr(&out);
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains("node.key") && msg.contains("move it away"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), b"not a key");
}

#[test]
fn a_reader_that_stops_reading_ends_a_command_quietly() {
    let env = Env::new(Backend::Sqlite);
    env.ok(&["user", "list"]);
    // `glow node invite | head -0`: the pipe is closed before the first line.
    let mut child = env
        .glow()
        .args(["node", "invite"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}
