//! A real browser: headless Chromium driven over WebDriver (chromedriver)
//! signs in, browses, uploads a file, creates a share link, then opens the
//! link in a fresh browser profile with no account and downloads the file.
//! Screenshots of the browse page and the share page are saved under
//! `target/tmp/` (copies are committed in `docs/`).

use crate::fixtures::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// W3C WebDriver's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed (apt-get install chromium chromium-driver)");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver) -> Browser {
        let http = crate::fixtures::plain_client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--disable-dev-shm-usage", "--disable-component-update", "--disable-sync",
                    "--window-size=1100,800", format!("--user-data-dir={}", profile.path().display())
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Browser {
            http,
            base: format!("{}/session/{id}", driver.url),
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r: Value = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = r["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {r}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.source().await.contains(text) {
            assert!(
                Instant::now() < deadline,
                "page never showed {text:?}:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_uploads_shares_and_a_friend_downloads() {
    let env = Env::new(Backend::Sqlite);
    std::fs::write(env.share().join("notes.md"), b"# notes\n").unwrap();
    let srv = env.serve();
    let driver = Driver::start();
    let me = Browser::open(&driver).await;

    // Sign in: opening a folder sends the browser to the sign-in page first.
    me.goto(&format!("{}/u/admin/share/", srv.base)).await;
    me.type_into("input[name=user]", "admin").await;
    me.type_into("input[name=password]", ADMIN_PW).await;
    me.click("input[type=submit]").await;
    me.wait_for_text("hello.txt").await;
    assert!(
        me.current_url().await.ends_with("/u/admin/share/"),
        "{}",
        me.current_url().await
    );

    // Upload through the page's file picker (the real XHR upload path).
    let upload = env.path("upload-me.txt");
    let content = "uploaded through a real browser ✓\n".repeat(1000);
    std::fs::write(&upload, &content).unwrap();
    me.script("document.getElementById('pick').hidden = false")
        .await;
    me.type_into("#pick", upload.to_str().unwrap()).await;
    me.wait_for_text("data-name=\"upload-me.txt\"").await;
    assert_eq!(
        std::fs::read_to_string(env.share().join("upload-me.txt")).unwrap(),
        content
    );
    let browse_png = me.screenshot("browse.png").await;

    // Share it: the row's menu, the dialog, the link.
    me.click("tr[data-name='upload-me.txt'] summary").await;
    me.click("tr[data-name='upload-me.txt'] button[data-action=share]")
        .await;
    me.click("#share-create").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let link = loop {
        let v = me
            .script("return document.getElementById('share-url').value")
            .await;
        if let Some(s) = v.as_str().filter(|s| s.contains("/s/")) {
            break s.to_owned();
        }
        assert!(Instant::now() < deadline, "no share link appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    me.close().await;

    // A friend: a fresh profile, no account, no cookies.
    let friend = Browser::open(&driver).await;
    friend.goto(&link).await;
    friend.wait_for_text("Download").await;
    let share_png = friend.screenshot("share.png").await;
    let fetched = friend
        .post(
            "/execute/async",
            json!({
                "script": "const done = arguments[arguments.length - 1]; \
                           const a = document.querySelector('a[download]'); \
                           fetch(a.href).then(r => r.text()).then(done, e => done('ERR ' + e));",
                "args": []
            }),
        )
        .await;
    assert_eq!(
        fetched.as_str().unwrap(),
        content,
        "the friend downloads the same bytes"
    );
    friend.close().await;
    eprintln!(
        "screenshots: {} {}",
        browse_png.display(),
        share_png.display()
    );
}
