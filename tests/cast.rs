//! "Play on TV" against a real renderer: Debian's gmediarender
//! (gmrender-resurrect, libupnp) on the TV side of a test LAN with GStreamer
//! sinks that discard the sound, driven by `glow cast` on the Glow host.

use crate::fixtures::{Backend, Env};
use crate::lan::{CLIENT_IP, Lan, media_fixture};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const TV_NAME: &str = "Glow Test TV";
const TV_UUID: &str = "3f6c0d2e-0000-4000-8000-00000000c0de";
const TV_PORT: &str = "49494";

/// gmediarender on the TV side, killed on drop.
struct Tv(Child);

impl Drop for Tv {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tv(lan: &Lan) -> Tv {
    let child = lan
        .client_cmd("gmediarender")
        .args([
            "-f",
            TV_NAME,
            "-u",
            TV_UUID,
            "-I",
            &lan.client_if,
            "-p",
            TV_PORT,
            // Plays in real time into nothing, so "playing" lasts.
            "--gstout-audiopipe",
            "fakesink sync=true",
            "--gstout-videosink",
            "fakesink",
            "--logfile",
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gmediarender (apt-get install gmediarender gstreamer1.0-plugins-good)");
    // Up when its description answers.
    let url = format!("http://{CLIENT_IP}:{TV_PORT}/description.xml");
    lan.client(move || async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("gmediarender did not come up");
    });
    Tv(child)
}

fn cast(env: &Env, lan: &Lan, args: &[&str]) -> (bool, String, String) {
    let out = env
        .glow_in(&lan.server_ns)
        .arg("cast")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The renderer's description URL: naming it so skips the search.
fn tv_url() -> String {
    format!("http://{CLIENT_IP}:{TV_PORT}/description.xml")
}

fn state(env: &Env, lan: &Lan) -> String {
    let (ok, out, err) = cast(env, lan, &["status", &tv_url()]);
    assert!(ok, "{out}{err}");
    out.split('\t').nth(1).unwrap_or("").to_owned()
}

fn wait_state(env: &Env, lan: &Lan, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = state(env, lan);
        if want.contains(&s.as_str()) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn glow_cast_plays_a_file_on_a_real_renderer() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    let srv = lan.serve(&env, &[env.share().to_str().unwrap()]);
    let _tv = start_tv(&lan);

    let (ok, out, err) = cast(&env, &lan, &["list"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(TV_NAME), "{out}{err}");
    assert!(out.contains(&format!("uuid:{TV_UUID}")), "{out}");

    // Play: the renderer is told a ticket URL on Glow's DLNA listener and
    // fetches the file from it, without signing in.
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/long.mp3"),
        env.share().join("Music/long.mp3"),
    )
    .unwrap();
    let (ok, out, err) = cast(
        &env,
        &lan,
        &["play", "test tv", "admin/share/Music/long.mp3"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("/dlna/cast/"), "{out}");
    let url = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("from "))
        .unwrap()
        .to_owned();
    assert!(url.starts_with("http://10.77.0.1:"), "{url}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !srv.logged("dlna GET /dlna/cast/") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        srv.logged("dlna GET /dlna/cast/"),
        "the renderer fetched the file from Glow"
    );
    assert!(
        srv.logged(&format!("from {CLIENT_IP}:")),
        "and it was the renderer"
    );
    assert_eq!(wait_state(&env, &lan, &["PLAYING"]), "PLAYING");
    let (_, out, _) = cast(&env, &lan, &["status", &tv_url()]);
    assert!(
        out.trim_end().ends_with(&url),
        "the renderer's URI is Glow's: {out}"
    );

    // Pause, resume, stop.
    let (ok, out, err) = cast(&env, &lan, &["pause", &tv_url()]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        wait_state(&env, &lan, &["PAUSED_PLAYBACK"]),
        "PAUSED_PLAYBACK"
    );
    let (ok, _, _) = cast(&env, &lan, &["resume", &tv_url()]);
    assert!(ok);
    assert_eq!(wait_state(&env, &lan, &["PLAYING"]), "PLAYING");
    let (ok, _, _) = cast(&env, &lan, &["stop", TV_NAME]);
    assert!(ok);
    assert_eq!(wait_state(&env, &lan, &["STOPPED"]), "STOPPED");

    // The ticket opens that file only, and nothing else of the folder.
    let other = url.replace("Music/long.mp3", "Music/tone.flac");
    let forged = url.clone() + "x";
    lan.client(move || async move {
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
        assert_eq!(reqwest::get(&other).await.unwrap().status(), 404);
        assert_eq!(reqwest::get(&forged).await.unwrap().status(), 404);
    });

    // Clear errors.
    let (ok, _, err) = cast(
        &env,
        &lan,
        &[
            "play",
            "No Such TV",
            "admin/share/Music/song.mp3",
            "--wait",
            "2",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("no TV or renderer called \"No Such TV\""),
        "{err}"
    );
    let (ok, _, err) = cast(&env, &lan, &["play", TV_NAME, "admin/share/notes.txt"]);
    assert!(!ok);
    assert!(err.contains("is not a video, song or picture"), "{err}");
    let (ok, _, err) = cast(&env, &lan, &["play", TV_NAME, "admin/share/Music/nope.mp3"]);
    assert!(!ok, "{err}");
}

#[test]
fn glow_cast_play_needs_a_running_server() {
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    // No server runs on this data dir.
    let out = env.run(&[
        "cast",
        "play",
        "http://127.0.0.1:9/description.xml",
        "someone/x/y.mp3",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `glow serve` with DLNA runs on the data dir"),
        "{err}"
    );
}

#[test]
fn the_web_front_plays_on_tv_through_its_api() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/long.mp3"),
        env.share().join("Music/long.mp3"),
    )
    .unwrap();
    let srv = lan.serve(&env, &[env.share().to_str().unwrap()]);
    let _tv = start_tv(&lan);
    let base = srv.base.clone();
    lan.client(move || async move {
        let http = crate::fixtures::client();
        let get = |path: &str| {
            http.get(format!("{base}{path}"))
                .basic_auth("admin", Some(crate::fixtures::ADMIN_PW))
                .send()
        };
        // The viewer page of a song offers it.
        let page = get("/u/admin/share/Music/long.mp3?view").await.unwrap().text().await.unwrap();
        assert!(page.contains("data-action=\"cast\"") && page.contains("Play on TV"), "{page}");
        let notes = get("/u/admin/share/notes.txt?view").await.unwrap().text().await.unwrap();
        assert!(!notes.contains("Play on TV"));
        // Signed-out callers get nothing.
        let r = http.get(format!("{base}/api/v1/renderers")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = get("/api/v1/renderers").await.unwrap();
        assert_eq!(r.status(), 200);
        let tvs: serde_json::Value = r.json().await.unwrap();
        let tv = tvs
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == TV_NAME)
            .unwrap_or_else(|| panic!("{tvs}"))
            .clone();
        let location = tv["location"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("http://{CLIENT_IP}:{TV_PORT}/description.xml"));
        let post = |path: &str, body: serde_json::Value| {
            http.post(format!("{base}{path}"))
                .basic_auth("admin", Some(crate::fixtures::ADMIN_PW))
                .json(&body)
                .send()
        };
        // Only renderers a search found: no other URL is contacted.
        let r = post(
            "/api/v1/cast",
            serde_json::json!({"path": "admin/share/Music/long.mp3", "renderer": "http://10.77.0.2:9/x.xml"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 404);
        let r = post(
            "/api/v1/cast",
            serde_json::json!({"path": "admin/share/notes.txt", "renderer": location}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 400, "not media");
        let r = post(
            "/api/v1/cast",
            serde_json::json!({"path": "admin/share/Music/long.mp3", "renderer": location}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let playing: serde_json::Value = r.json().await.unwrap();
        assert_eq!(playing["renderer"], TV_NAME);
        assert!(playing["url"].as_str().unwrap().contains("/dlna/cast/"));
        let r = post("/api/v1/cast/control", serde_json::json!({"renderer": location, "action": "bogus"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = post("/api/v1/cast/control", serde_json::json!({"renderer": location, "action": "pause"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The renderer, asked directly, is paused on Glow's URL.
        let dev = rupnp::Device::from_url(location.parse().unwrap()).await.unwrap();
        let avt = dev
            .find_service(&rupnp::ssdp::URN::service("schemas-upnp-org", "AVTransport", 1))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut st = String::new();
        while Instant::now() < deadline {
            let info = avt.action(dev.url(), "GetTransportInfo", "<InstanceID>0</InstanceID>").await.unwrap();
            st = info["CurrentTransportState"].clone();
            if st == "PAUSED_PLAYBACK" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(st, "PAUSED_PLAYBACK");
        let media = avt.action(dev.url(), "GetMediaInfo", "<InstanceID>0</InstanceID>").await.unwrap();
        assert_eq!(media["CurrentURI"], playing["url"].as_str().unwrap());
        let r = post("/api/v1/cast/control", serde_json::json!({"renderer": location, "action": "stop"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
}
