//! The SFTP front with OpenSSH's own clients: `sftp -b` batches, `scp`
//! (which speaks SFTP since OpenSSH 9), `ssh` for what must be refused,
//! `sshpass` for password sign-in and `ssh-keygen` for keys.

use crate::fixtures::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Polls `done` until it holds, or fails the test after `secs` seconds.
fn wait_until(secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

on_both!(
    batch_session_covers_the_common_commands,
    interrupted_transfers_resume,
    scp_copies_both_ways,
    keys_passwords_and_refusals,
    users_are_confined_to_their_namespace,
    uploads_are_versioned_and_served_over_http,
    malformed_packets_get_errors_not_hangs,
    slow_clients_are_dropped
);

/// How a test reaches the SFTP front.
pub(crate) struct Sftp {
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Sftp {
    pub(crate) fn new(env: &Env, srv: &Server) -> Sftp {
        let dir = env.tmp.path().join("sftp-client");
        std::fs::create_dir_all(&dir).unwrap();
        Sftp {
            port: srv.sftp_port.expect("the banner names the SFTP port"),
            dir,
        }
    }

    /// Common OpenSSH options: no prompts, no host key file, quiet.
    fn options(&self) -> Vec<String> {
        [
            "-oStrictHostKeyChecking=no",
            "-oUserKnownHostsFile=/dev/null",
            "-oLogLevel=ERROR",
            "-oConnectTimeout=20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `sshpass -e PROGRAM` with the password in the environment.
    pub(crate) fn with_password(&self, program: &str, password: &str) -> Command {
        let mut c = Command::new("sshpass");
        c.arg("-e")
            .arg(program)
            .env("SSHPASS", password)
            .arg("-oBatchMode=no")
            .arg("-oPubkeyAuthentication=no")
            .args(self.options())
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    /// Runs an `sftp -b` batch as `user` with `password`.
    fn batch(&self, user: &str, password: &str, script: &str) -> Output {
        let file = self.dir.join(format!("batch-{}", random_hex()));
        std::fs::write(&file, script).unwrap();
        self.with_password("sftp", password)
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg(&file)
            .arg(format!("{user}@127.0.0.1"))
            .output()
            .expect("sftp and sshpass are needed (apt-get install openssh-client sshpass)")
    }

    /// A batch as the admin that must succeed; returns its output.
    pub(crate) fn ok(&self, script: &str) -> String {
        let out = self.batch("admin", ADMIN_PW, script);
        let text = text(&out);
        assert!(out.status.success(), "sftp batch failed:\n{script}\n{text}");
        text
    }

    /// A batch as the admin that must fail; returns its output.
    fn fails(&self, script: &str) -> String {
        let out = self.batch("admin", ADMIN_PW, script);
        let text = text(&out);
        assert!(
            !out.status.success(),
            "sftp batch should fail:\n{script}\n{text}"
        );
        text
    }

    fn local(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every blob in the version store is named by the BLAKE3 hash of its
/// content (uploads are hashed on the way in; a wrong name would corrupt
/// deduplication).
fn assert_blobs_named_by_content(env: &Env) {
    let mut stack = vec![env.data_dir().join("blobs")];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let actual = blake3::hash(&read(&path)).to_hex().to_string();
                assert_eq!(name, actual, "blob {}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "the version store holds the uploads");
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `len` bytes that do not repeat in any short period.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn batch_session_covers_the_common_commands(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    std::fs::write(s.local("small.txt"), b"hello over sftp\n").unwrap();
    std::fs::write(s.local("big.bin"), pattern(100 * 1024 * 1024)).unwrap();
    let out = s.ok("pwd\n\
         ls -l\n\
         cd share\n\
         mkdir docs\n\
         put small.txt docs/small.txt\n\
         put big.bin docs/big.bin\n\
         get docs/small.txt small.back\n\
         get docs/big.bin big.back\n\
         rename docs/small.txt docs/renamed.txt\n\
         chmod 600 docs/renamed.txt\n\
         ls -l docs\n\
         df\n");
    assert!(out.contains("Remote working directory: /"), "{out}");
    // `/` lists the user's folders, like `ls -l` would.
    assert!(
        out.lines()
            .any(|l| l.starts_with("drwx") && l.ends_with(" share")),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.ends_with(" renamed.txt"))
        .unwrap_or_else(|| panic!("no renamed.txt in ls -l:\n{out}"));
    assert!(line.starts_with("-rw------- "), "chmod 600 shows: {line}");
    assert!(line.contains(" admin "), "{line}");
    assert!(line.contains(" 16 "), "size in the long name: {line}");
    assert_eq!(read(&s.local("small.back")), b"hello over sftp\n");
    assert_eq!(sha256(&s.local("big.back")), sha256(&s.local("big.bin")));
    assert_eq!(
        sha256(&env.share().join("docs/big.bin")),
        sha256(&s.local("big.bin"))
    );
    assert_blobs_named_by_content(&env);
    // The fabric saw it all: renamed on disk, mode set.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(env.share().join("docs/renamed.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(!env.share().join("docs/small.txt").exists());

    // Errors come back as errors, with a reason, and the session goes on.
    let out = s.fails("get share/missing.txt nothing.txt\n");
    assert!(
        out.contains("not found") || out.contains("No such file"),
        "{out}"
    );
    let out = s.fails("put small.txt /top-level.txt\n");
    assert!(out.to_lowercase().contains("permission denied"), "{out}");
    let out = s.fails("rmdir share/docs\n");
    assert!(out.to_lowercase().contains("fail"), "{out}");
    let out = s.fails("mkdir /newfolder\n");
    assert!(out.to_lowercase().contains("permission denied"), "{out}");

    // rm, then rmdir of the emptied directory.
    s.ok("rm share/docs/renamed.txt\nrm share/docs/big.bin\nrmdir share/docs\n");
    assert!(!env.share().join("docs").exists());
    assert!(
        env.ok(&["trash", "list", "admin"])
            .contains("share/docs/big.bin"),
        "removals go to the trash"
    );
}

async fn interrupted_transfers_resume(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    let data = pattern(24 * 1024 * 1024);
    std::fs::write(s.local("movie.bin"), &data).unwrap();
    // An upload throttled to 8 Mbit/s, killed after a second or so.
    let script = s.local(&format!("slow-batch-{}", random_hex()));
    std::fs::write(&script, "put movie.bin share/movie.bin\n").unwrap();
    let mut child = s
        .with_password("sftp", ADMIN_PW)
        .args(["-l", "8000", "-P", &s.port.to_string(), "-b"])
        .arg(&script)
        .arg("admin@127.0.0.1")
        .spawn()
        .unwrap();
    let target = env.share().join("movie.bin");
    wait_until(30, || {
        target.metadata().is_ok_and(|m| m.len() > 0)
            || std::fs::read_dir(env.share()).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".glow")
            })
    });
    std::thread::sleep(Duration::from_millis(1500));
    // sshpass runs sftp in a session of its own: find it by its batch file.
    let _ = Command::new("pkill")
        .args(["-KILL", "-f"])
        .arg(script.to_str().unwrap())
        .status();
    let _ = child.kill();
    let _ = child.wait();
    // The server saves what arrived, so that the client can resume.
    wait_until(20, || target.metadata().is_ok_and(|m| m.len() > 0));
    let partial = target.metadata().unwrap().len();
    assert!(
        partial < data.len() as u64,
        "the transfer was cut short ({partial} bytes)"
    );
    assert_eq!(read(&target), data[..partial as usize], "a clean prefix");
    s.ok("reput movie.bin share/movie.bin\n");
    assert_eq!(sha256(&target), sha256(&s.local("movie.bin")));

    // reget: the local copy holds a prefix; the rest is fetched.
    std::fs::write(s.local("movie.back"), &data[..5_000_000]).unwrap();
    s.ok("reget share/movie.bin movie.back\n");
    assert_eq!(
        sha256(&s.local("movie.back")),
        sha256(&s.local("movie.bin"))
    );
}

async fn scp_copies_both_ways(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    std::fs::write(s.local("photo.raw"), pattern(3 * 1024 * 1024 + 17)).unwrap();
    let port = s.port.to_string();
    let out = s
        .with_password("scp", ADMIN_PW)
        .args(["-P", &port, "photo.raw", "admin@127.0.0.1:share/photo.raw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "scp in: {}", text(&out));
    let out = s
        .with_password("scp", ADMIN_PW)
        .args(["-P", &port, "admin@127.0.0.1:share/photo.raw", "photo.back"])
        .output()
        .unwrap();
    assert!(out.status.success(), "scp out: {}", text(&out));
    assert_eq!(
        sha256(&env.share().join("photo.raw")),
        sha256(&s.local("photo.raw"))
    );
    assert_eq!(
        sha256(&s.local("photo.back")),
        sha256(&s.local("photo.raw"))
    );
    // Legacy scp (-O) needs a shell on the server: refused with a reason.
    let out = s
        .with_password("scp", ADMIN_PW)
        .args([
            "-O",
            "-P",
            &port,
            "photo.raw",
            "admin@127.0.0.1:share/legacy.raw",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!env.share().join("legacy.raw").exists());
}

async fn keys_passwords_and_refusals(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    let keygen = |name: &str| {
        let path = s.local(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen is needed (apt-get install openssh-client)");
        assert!(out.status.success(), "{}", text(&out));
        path
    };
    let good = keygen("good_key");
    let bad = keygen("bad_key");
    env.ok(&[
        "user",
        "key",
        "add",
        "admin",
        good.with_extension("pub").to_str().unwrap(),
    ]);
    // The host key is the one the banner names, and stays across restarts.
    let host_pub = s.local("host.pub");
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(env.data_dir().join("ssh_host_ed25519_key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&host_pub, &out.stdout).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&host_pub)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        srv.banner.contains(&fingerprint),
        "{fingerprint} in\n{}",
        srv.banner
    );
    // A known_hosts file with that key: strict checking passes.
    let known = s.local("known_hosts");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}",
            s.port,
            String::from_utf8_lossy(&read(&host_pub))
        ),
    )
    .unwrap();
    let script = s.local("ls-batch");
    std::fs::write(&script, "ls /\n").unwrap();
    let with_key = |key: &Path| {
        Command::new("sftp")
            .args([
                "-oBatchMode=yes",
                "-oStrictHostKeyChecking=yes",
                "-oLogLevel=ERROR",
            ])
            .arg(format!("-oUserKnownHostsFile={}", known.display()))
            .arg("-oIdentitiesOnly=yes")
            .arg("-i")
            .arg(key)
            .args(["-P", &s.port.to_string(), "-b"])
            .arg(&script)
            .arg("admin@127.0.0.1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = with_key(&good);
    assert!(out.status.success(), "key sign-in: {}", text(&out));
    assert!(text(&out).contains("share"), "{}", text(&out));
    let out = with_key(&bad);
    assert!(!out.status.success(), "an unknown key is refused");
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    // A wrong password is refused.
    let out = s.batch("admin", "not-the-password", "ls\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    // No shell, no commands, no port forwarding: refused, with a reason.
    let ssh = |extra: &[&str]| {
        s.with_password("ssh", ADMIN_PW)
            .args(["-p", &s.port.to_string()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = ssh(&["admin@127.0.0.1", "cat", "/etc/passwd"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("SFTP only"), "{}", text(&out));
    assert!(!text(&out).contains("root:"), "{}", text(&out));
    let out = ssh(&["-T", "admin@127.0.0.1"]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = ssh(&[
        "-N",
        "-oExitOnForwardFailure=yes",
        "-L",
        "127.0.0.1:0:127.0.0.1:22",
        "admin@127.0.0.1",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
}

async fn users_are_confined_to_their_namespace(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    std::fs::write(env.share().join("admin-only.txt"), b"admin's").unwrap();
    std::os::unix::fs::symlink("/etc", env.share().join("etc-link")).unwrap();
    env.ok(&["user", "add", "bob"]);
    let bob_pw = env.ok(&["user", "app-password", "bob"]).trim().to_owned();
    std::fs::create_dir_all(env.path("bobs")).unwrap();
    env.ok(&[
        "folder",
        "add",
        "--owner",
        "bob",
        "stuff",
        env.path("bobs").to_str().unwrap(),
    ]);
    let bob = |script: &str| s.batch("bob", &bob_pw, script);
    let out = bob("ls /\ncd ..\npwd\nls\n");
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("stuff") && !t.contains("share"), "{t}");
    assert!(t.contains("Remote working directory: /"), "{t}");
    for escape in [
        "get /share/admin-only.txt x\n",
        "get ../share/admin-only.txt x\n",
        "get /stuff/../../share/admin-only.txt x\n",
        "get /../../../etc/passwd x\n",
        "get /etc/passwd x\n",
        "cd /share\n",
    ] {
        let out = bob(escape);
        assert!(!out.status.success(), "{escape}: {}", text(&out));
    }
    assert!(!s.local("x").exists());
    // A symbolic link that leaves the folder leads nowhere, and none can be made.
    let out = s.fails("get share/etc-link/passwd x\n");
    assert!(
        out.contains("not found") || out.contains("No such file"),
        "{out}"
    );
    let out = s.fails("symlink /etc share/my-link\n");
    assert!(!env.share().join("my-link").exists(), "{out}");
    assert!(!s.local("x").exists());
    // Bob may not write into admin's folder either.
    std::fs::write(s.local("evil.txt"), b"x").unwrap();
    let out = bob("put evil.txt /share/evil.txt\n");
    assert!(!out.status.success());
    assert!(!env.share().join("evil.txt").exists());
}

async fn uploads_are_versioned_and_served_over_http(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    std::fs::write(s.local("v1.txt"), b"first version\n").unwrap();
    std::fs::write(s.local("v2.txt"), b"second version, longer\n").unwrap();
    s.ok("put v1.txt share/notes.txt\nput v2.txt share/notes.txt\n");
    let r = admin(reqwest::Method::GET, &srv.file("notes.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        b"second version, longer\n"
    );
    let v = env.ok(&["versions", "admin/share/notes.txt"]);
    assert!(v.contains("14 bytes\toverwrite via sftp by admin"), "{v}");
    assert_blobs_named_by_content(&env);
}

/// Raw SFTP packets over `ssh -s sftp`: garbage gets a BAD_MESSAGE status
/// with the request's id and the session goes on; a length no packet can
/// have ends the session instead of a hang.
async fn malformed_packets_get_errors_not_hangs(b: Backend) {
    use std::io::{Read, Write};
    let env = Env::new(b);
    let srv = env.serve();
    let s = Sftp::new(&env, &srv);
    let mut child = s
        .with_password("ssh", ADMIN_PW)
        .args(["-p", &s.port.to_string(), "-s", "admin@127.0.0.1", "sftp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    // Replies are read on a thread so that a hang fails the test.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
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
    let mut send = |body: &[u8]| {
        let mut packet = (body.len() as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(body);
        input.write_all(&packet).unwrap();
        input.flush().unwrap();
    };
    let reply = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the server answers")
    };
    const STATUS: u8 = 101;
    const BAD_MESSAGE: u32 = 5;
    let status_of = |r: &[u8]| {
        (
            r[0],
            u32::from_be_bytes(r[1..5].try_into().unwrap()),
            u32::from_be_bytes(r[5..9].try_into().unwrap()),
        )
    };
    send(&[1, 0, 0, 0, 3]); // INIT, version 3
    assert_eq!(reply()[0], 2, "VERSION");
    // OPEN (3) with id 7 and a file name whose length runs past the end.
    send(&[3, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0x00, b'x']);
    assert_eq!(status_of(&reply()), (STATUS, 7, BAD_MESSAGE));
    // A packet type that does not exist, id 8.
    send(&[99, 0, 0, 0, 8]);
    assert_eq!(status_of(&reply()), (STATUS, 8, BAD_MESSAGE));
    // A packet too short to carry an id.
    send(&[16]);
    assert_eq!(reply()[0], STATUS);
    // The session still works: REALPATH (16) of "." with id 9.
    send(&[16, 0, 0, 0, 9, 0, 0, 0, 1, b'.']);
    let r = reply();
    assert_eq!((r[0], &r[1..5]), (104, &9u32.to_be_bytes()[..]), "NAME");
    // READ on a handle that was never opened.
    send(&[
        5, 0, 0, 0, 10, 0, 0, 0, 2, b'z', b'z', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0,
    ]);
    let (t, id, code) = status_of(&reply());
    assert_eq!((t, id), (STATUS, 10));
    assert_ne!(code, 0, "an unknown handle is an error");
    // A 2 GiB length: the server hangs up rather than wait for it.
    input.write_all(&0x7fff_fff0u32.to_be_bytes()).unwrap();
    input.flush().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected),
        "the channel ends (a timeout here means the server hung)"
    );
    drop(input);
    let _ = child.kill();
    let _ = child.wait();
    // And the server still serves others.
    assert!(s.ok("ls /\n").contains("share"));
}

/// A client that never finishes the SSH handshake, or never signs in, is
/// dropped after the grace time (`--header-timeout`), not kept for an hour.
async fn slow_clients_are_dropped(b: Backend) {
    use std::io::{Read, Write};
    let env = Env::new(b);
    let srv = env.serve_with(&[env.share().to_str().unwrap(), "--header-timeout", "2"]);
    let port = srv.sftp_port.unwrap();
    for hello in [&b""[..], b"SSH-2.0-SlowClient_1.0\r\n"] {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tcp.write_all(hello).unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
            }
        }
        // The server spoke first, then hung up well before the 30 s read
        // timeout above (the grace is 2 s).
        assert!(
            seen.starts_with(b"SSH-2.0-Glow"),
            "{:?}",
            String::from_utf8_lossy(&seen)
        );
    }
}
