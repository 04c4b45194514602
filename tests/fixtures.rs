//! Test fixtures: a temp environment per test, the spawned server, a CLI
//! runner, PostgreSQL databases made and dropped per test, raw HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The admin password every test server gets.
pub const ADMIN_PW: &str = "admin-password-1";

/// Which catalog a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::fixtures::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::fixtures::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Base URL of the PostgreSQL server tests use (a database is made per test).
fn pg_base() -> String {
    std::env::var("GLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(format!("{}/test", pg_base()))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql must be installed for the PostgreSQL tests");
    assert!(
        out.status.success(),
        "PostgreSQL is needed at {} (set GLOW_TEST_POSTGRES): {}",
        pg_base(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One test's world: a temp dir with a data dir, a served directory `share`
/// (holding `hello.txt`) and a secret file beside it that must never leak.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub backend: Backend,
    pub database_url: Option<String>,
    pg_db: Option<String>,
}

impl Env {
    pub fn new(backend: Backend) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("glow-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(tmp.path().join("share/sub")).unwrap();
        std::fs::write(tmp.path().join("share/hello.txt"), b"hello, world\n").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
        let (database_url, pg_db) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let name = format!("glow_test_{}", random_hex());
                psql(&format!("CREATE DATABASE {name}"));
                (Some(format!("{}/{name}", pg_base())), Some(name))
            }
        };
        Env {
            tmp,
            backend,
            database_url,
            pg_db,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn share(&self) -> PathBuf {
        self.path("share")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// A `glow` command on this env's data dir and catalog.
    pub fn glow(&self) -> Command {
        self.configure(Command::new(env!("CARGO_BIN_EXE_glow")))
    }

    /// A `glow` command run inside the network namespace `ns`.
    pub fn glow_in(&self, ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_glow")]);
        self.configure(c)
    }

    fn configure(&self, mut c: Command) -> Command {
        c.env("GLOW_DATA_DIR", self.data_dir())
            .env("GLOW_ADMIN_PASSWORD", ADMIN_PW)
            // Tests run side by side: never the default SFTP or DLNA port,
            // and the LAN media front on loopback only.
            .env("GLOW_SFTP", "127.0.0.1:0")
            .env("GLOW_DLNA", "127.0.0.1:0")
            // The overlay announces itself over mDNS on the host's network:
            // only the overlay tests turn it on, in namespaces of their own.
            .env("GLOW_OVERLAY", "off")
            .env(
                "GLOW_LOG",
                // The LAN media front's access log is kept: tests look for it.
                std::env::var("GLOW_TEST_LOG").unwrap_or_else(|_| "warn,glow::dlna=info".into()),
            )
            .env_remove("GLOW_DATABASE_URL")
            .env_remove("GLOW_CONFIG")
            .env_remove("GLOW_ADMIN_USER");
        if let Some(u) = &self.database_url {
            c.env("GLOW_DATABASE_URL", u);
        }
        c
    }

    /// Runs a CLI command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.glow()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a CLI command with `input` on its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .glow()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Adds a user with a known password.
    pub fn add_user(&self, name: &str, password: &str) {
        let out = self.run_with_input(
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "glow {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `glow serve share` on an ephemeral port.
    pub fn serve(&self) -> Server {
        self.serve_with(&[self.share().to_str().unwrap()])
    }

    /// Starts `glow serve` with these extra arguments.
    pub fn serve_with(&self, args: &[&str]) -> Server {
        let mut cmd = self.glow();
        cmd.arg("serve").args(["--http", "127.0.0.1:0"]).args(args);
        Server::start(cmd)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            let _ = Command::new("psql")
                .arg(format!("{}/test", pg_base()))
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

/// Content of the file outside the served folder.
pub const SECRET: &str = "TOP-SECRET-never-served";

pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running `glow serve`, killed on drop.
pub struct Server {
    pub child: Child,
    /// e.g. `http://127.0.0.1:41234`
    pub base: String,
    pub addr: String,
    pub banner: String,
    /// The SFTP front's port, from the banner.
    pub sftp_port: Option<u16>,
    /// The DLNA description URLs, from the banner.
    pub dlna: Vec<String>,
    /// What the server logged (stderr), line by line.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (etx, erx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = String::new();
        let mut base = None;
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if base.is_none() && line.trim_start().starts_with("http ") {
                        base = Some(
                            line.split_whitespace()
                                .nth(1)
                                .unwrap()
                                .trim_end_matches('/')
                                .to_owned(),
                        );
                    }
                    if line.starts_with("Ready.") {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let err: Vec<String> = erx.try_iter().collect();
                        panic!("glow serve exited with {status}: {}", err.join("\n"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    let err: Vec<String> = erx.try_iter().collect();
                    panic!("glow serve closed stdout: {}", err.join("\n"));
                }
            }
        }
        let base = base.unwrap_or_else(|| panic!("no HTTP address in banner:\n{banner}"));
        let addr = base.split("://").nth(1).unwrap().to_owned();
        let sftp_port = banner
            .lines()
            .find(|l| l.trim_start().starts_with("sftp "))
            .and_then(|l| l.trim_end_matches('/').rsplit(':').next()?.parse().ok());
        let dlna = banner
            .lines()
            .filter(|l| l.trim_start().starts_with("dlna "))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in erx {
                if std::env::var_os("GLOW_TEST_VERBOSE").is_some() {
                    eprintln!("[glow] {line}");
                }
                keep.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            base,
            addr,
            banner,
            sftp_port,
            dlna,
            log,
        }
    }

    /// URL of a path under `/u/admin/share/`.
    pub fn file(&self, rel: &str) -> String {
        format!("{}/u/admin/share/{rel}", self.base)
    }

    /// The DLNA front's base URL (`http://host:port`) on the host `ip`.
    pub fn dlna_base(&self, ip: &str) -> String {
        let url = self
            .dlna
            .iter()
            .find(|u| u.contains(&format!("//{ip}:")))
            .unwrap_or_else(|| panic!("no DLNA address on {ip} in banner:\n{}", self.banner));
        url.trim_end_matches("/dlna/description.xml").to_owned()
    }

    /// The most memory the server has held so far (its peak RSS), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Whether the server logged a line containing `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Stops the server like Ctrl-C would.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("glow serve did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what its servers said.
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("---- log of the server at {} ----", self.base);
            for line in log.iter().rev().take(200).rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A reqwest client builder. reqwest is built with rustls here (iroh's
/// relay client asks for it, with no crypto provider of its own), so the
/// process's provider must be installed first, as `glow` itself does at
/// start: every test client is made through this.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// An HTTP client with reqwest's defaults (it follows redirects).
pub fn plain_client() -> reqwest::Client {
    client_builder().build().unwrap()
}

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request signed in as the admin.
pub fn admin(method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, url)
        .basic_auth("admin", Some(ADMIN_PW))
}

pub async fn get_admin(url: &str) -> reqwest::Response {
    admin(reqwest::Method::GET, url).send().await.unwrap()
}

pub async fn put_admin(url: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    admin(reqwest::Method::PUT, url)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Sends one request exactly as written (no client-side normalisation of
/// `..`) and returns the status code and body.
pub fn raw_request(addr: &str, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Asserts that the server hangs up on `slow`, a client that never finished
/// its request's headers, well within 15 s (with a 408 or silently).
pub fn assert_hung_up(mut slow: TcpStream) {
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the slow connection was not closed"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

/// Signs the admin in through `POST /login`; returns the `name=value`
/// cookie pair to send back.
pub async fn session_cookie(srv: &Server) -> String {
    let r = client()
        .post(format!("{}/login", srv.base))
        .form(&[("user", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = r.headers()[reqwest::header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// `Authorization` header value for the admin.
pub fn admin_basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    )
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
