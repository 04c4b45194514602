//! A small LAN for the tests that need multicast (SSDP): two network
//! namespaces joined by a veth pair, `10.77.0.1` (the Glow host) and
//! `10.77.0.2` (the TV side), each with a route for 239.0.0.0/8 on its end.
//! Nothing leaves them: they have no other interface and no route out.
//! Both are deleted (and whatever still runs in them killed) on drop.
//!
//! Test code runs on the TV side with [`Lan::client`]: a thread moved into
//! that namespace with its own Tokio runtime, so every socket it opens (and
//! every process it starts) is there. Needs root, as CI is.

use crate::fixtures::{Env, Server};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The Glow host's address.
pub const SERVER_IP: &str = "10.77.0.1";
/// The TV side's address.
pub const CLIENT_IP: &str = "10.77.0.2";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two namespaces and the link between them.
pub struct Lan {
    /// The Glow host's namespace.
    pub server_ns: String,
    /// The TV side's namespace.
    pub client_ns: String,
    /// The TV side's interface name.
    pub client_if: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("the DLNA tests need iproute2's `ip` (apt-get install iproute2): {e}")
    });
    assert!(
        out.status.success(),
        "ip {} failed: {} (the DLNA tests need root to make network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lan {
    /// Makes the two namespaces and the link.
    pub fn new() -> Lan {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let lan = Lan {
            server_ns: format!("glow{tag}s"),
            client_ns: format!("glow{tag}c"),
            client_if: format!("gv{tag}c"),
        };
        let server_if = format!("gv{tag}s");
        let (s, c) = (&lan.server_ns, &lan.client_ns);
        ip(&["netns", "add", s]);
        ip(&["netns", "add", c]);
        ip(&[
            "link",
            "add",
            &server_if,
            "netns",
            s,
            "type",
            "veth",
            "peer",
            "name",
            &lan.client_if,
            "netns",
            c,
        ]);
        for (ns, dev, addr) in [(s, &server_if, SERVER_IP), (c, &lan.client_if, CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "route", "add", "239.0.0.0/8", "dev", dev]);
            // mDNS (224.0.0.251) for the overlay's discovery.
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        lan
    }

    /// Starts `glow serve` on the Glow host: HTTP on its LAN address, DLNA
    /// on every interface (the default, wildcard bind), SFTP off.
    pub fn serve(&self, env: &Env, args: &[&str]) -> Server {
        let mut cmd = env.glow_in(&self.server_ns);
        cmd.arg("serve")
            .args([
                "--http",
                &format!("{SERVER_IP}:0"),
                "--dlna",
                "0.0.0.0:0",
                "--no-sftp",
            ])
            .args(args);
        Server::start(cmd)
    }

    /// Starts `glow serve` on the other side (a second node): HTTP on its
    /// LAN address, the overlay on, SFTP and DLNA off.
    pub fn serve_on_client(&self, env: &Env, args: &[&str]) -> Server {
        let mut cmd = env.glow_in(&self.client_ns);
        cmd.arg("serve")
            .args([
                "--http",
                &format!("{CLIENT_IP}:0"),
                "--no-dlna",
                "--no-sftp",
            ])
            .args(args);
        Server::start(cmd)
    }

    /// A command run on the TV side.
    pub fn client_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns, program]);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `f` on the TV side, on a runtime of its own, and returns what it
    /// returns (a panic in it fails the test).
    pub fn client<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        match self.client_spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Starts `f` on the TV side and returns at once; join the handle.
    pub fn client_spawn<F, Fut, T>(&self, f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{}", self.client_ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the test namespace");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Copies the media fixtures into a served directory: `Films/clip.mp4`
/// with `Films/clip.srt`, `Music/song.mp3`, `Music/tone.flac`,
/// `photo.jpg`, `Films/movie.mkv` — and `notes.txt`, which is not media.
pub fn media_fixture(dir: &std::path::Path) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media");
    for (from, to) in [
        ("clip.mp4", "Films/clip.mp4"),
        ("clip.srt", "Films/clip.srt"),
        ("movie.mkv", "Films/movie.mkv"),
        ("song.mp3", "Music/song.mp3"),
        ("tone.flac", "Music/tone.flac"),
        ("photo.jpg", "photo.jpg"),
    ] {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(from), to).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not media").unwrap();
}
