//! The LAN media front (DLNA/UPnP MediaServer) against independent control
//! points: rupnp (discovery, descriptions, actions, GENA subscriptions),
//! GNOME's `gssdp-discover`, Python's async-upnp-client (`upnp-client`),
//! raw SSDP datagrams and reqwest for SOAP and media requests. Tests that
//! need multicast run in a network namespace pair ([`crate::lan::Lan`]);
//! the SOAP rules run against the loopback listener.

use crate::fixtures::{Backend, Env, Server};
use crate::lan::{CLIENT_IP, Lan, SERVER_IP, media_fixture};
use futures_util::StreamExt;
use rupnp::ssdp::{SearchTarget, URN};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const MEDIA_SERVER: URN = URN::device("schemas-upnp-org", "MediaServer", 1);
const CDS: URN = URN::service("schemas-upnp-org", "ContentDirectory", 1);
const CDS_TYPE: &str = "urn:schemas-upnp-org:service:ContentDirectory:1";

/// One DIDL-Lite object.
#[derive(Debug, Clone)]
struct Obj {
    id: String,
    parent: String,
    container: bool,
    child_count: Option<u32>,
    title: String,
    class: String,
    artist: Option<String>,
    album_art: Option<String>,
    /// (protocolInfo, URL, attributes)
    res: Vec<(String, String, HashMap<String, String>)>,
    caption: Option<String>,
}

fn parse_didl(xml: &str) -> Vec<Obj> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad DIDL ({e}): {xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "DIDL-Lite");
    root.children()
        .filter(|n| n.is_element())
        .map(|n| {
            let text = |name: &str| {
                n.children()
                    .find(|c| c.tag_name().name() == name)
                    .and_then(|c| c.text())
                    .map(str::to_owned)
            };
            Obj {
                id: n.attribute("id").unwrap().to_owned(),
                parent: n.attribute("parentID").unwrap().to_owned(),
                container: n.tag_name().name() == "container",
                child_count: n.attribute("childCount").map(|c| c.parse().unwrap()),
                title: text("title").expect("dc:title"),
                class: text("class").expect("upnp:class"),
                artist: text("artist"),
                album_art: text("albumArtURI"),
                res: n
                    .children()
                    .filter(|c| c.tag_name().name() == "res")
                    .map(|r| {
                        let attrs = r
                            .attributes()
                            .map(|a| (a.name().to_owned(), a.value().to_owned()))
                            .collect();
                        (
                            r.attribute("protocolInfo").unwrap().to_owned(),
                            r.text().unwrap().to_owned(),
                            attrs,
                        )
                    })
                    .collect(),
                caption: text("CaptionInfoEx"),
            }
        })
        .collect()
}

/// Sends one SOAP action with reqwest; returns the HTTP status and body.
async fn soap(base: &str, service: &str, action: &str, args: &[(&str, &str)]) -> (u16, String) {
    let ty = match service {
        "cds" => CDS_TYPE,
        "cms" => "urn:schemas-upnp-org:service:ConnectionManager:1",
        _ => "urn:microsoft.com:service:X_MS_MediaReceiverRegistrar:1",
    };
    let mut body = format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{ty}\">"
    );
    for (k, v) in args {
        let v = v
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        body.push_str(&format!("<{k}>{v}</{k}>"));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>"));
    raw_soap(base, service, &format!("\"{ty}#{action}\""), body).await
}

async fn raw_soap(base: &str, service: &str, soap_action: &str, body: String) -> (u16, String) {
    let r = crate::fixtures::plain_client()
        .post(format!("{base}/dlna/{service}/control"))
        .header("SOAPACTION", soap_action)
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The text of an element of a SOAP answer (the first with that name).
fn out_arg(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or("").to_owned())
}

fn fault_code(xml: &str) -> Option<u16> {
    out_arg(xml, "errorCode").map(|c| c.parse().unwrap())
}

struct Page {
    objs: Vec<Obj>,
    returned: u32,
    total: u32,
}

/// A paged ContentDirectory call (Browse or Search): its first two
/// arguments, then Filter `*`, the page and the sort.
async fn paged(
    base: &str,
    action: &str,
    first: [(&str, &str); 2],
    start: u32,
    count: u32,
    sort: &str,
) -> (u16, String) {
    let (start, count) = (start.to_string(), count.to_string());
    let args = [
        first[0],
        first[1],
        ("Filter", "*"),
        ("StartingIndex", &start),
        ("RequestedCount", &count),
        ("SortCriteria", sort),
    ];
    soap(base, "cds", action, &args).await
}

async fn browse(base: &str, id: &str, flag: &str, start: u32, count: u32, sort: &str) -> Page {
    let first = [("ObjectID", id), ("BrowseFlag", flag)];
    let (status, xml) = paged(base, "Browse", first, start, count, sort).await;
    assert_eq!(status, 200, "Browse {id}: {xml}");
    page(&xml)
}

/// The titles of a Browse or Search answer, in order.
fn titles_of(xml: &str) -> Vec<String> {
    page(xml).objs.into_iter().map(|o| o.title).collect()
}

fn page(xml: &str) -> Page {
    let objs = parse_didl(&out_arg(xml, "Result").unwrap());
    let returned: u32 = out_arg(xml, "NumberReturned").unwrap().parse().unwrap();
    let total: u32 = out_arg(xml, "TotalMatches").unwrap().parse().unwrap();
    assert_eq!(objs.len() as u32, returned);
    Page {
        objs,
        returned,
        total,
    }
}

async fn search(
    base: &str,
    id: &str,
    criteria: &str,
    start: u32,
    count: u32,
    sort: &str,
) -> (u16, String) {
    let first = [("ContainerID", id), ("SearchCriteria", criteria)];
    paged(base, "Search", first, start, count, sort).await
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/media")
            .join(name),
    )
    .unwrap()
}

/// Walks the whole tree from the root with a rupnp ContentDirectory
/// client, `per_page` objects per Browse; returns every object by id.
async fn walk_with_rupnp(dev: &rupnp::Device, per_page: u32) -> HashMap<String, Obj> {
    let cds = dev.find_service(&CDS).expect("a ContentDirectory");
    let mut seen = HashMap::new();
    let mut todo = vec!["0".to_owned()];
    while let Some(id) = todo.pop() {
        let mut start = 0u32;
        loop {
            let args = format!(
                "<ObjectID>{}</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>{start}</StartingIndex><RequestedCount>{per_page}</RequestedCount><SortCriteria></SortCriteria>",
                id.replace('&', "&amp;").replace('<', "&lt;")
            );
            let out = cds.action(dev.url(), "Browse", &args).await.unwrap();
            let objs = parse_didl(&out["Result"]);
            let returned: u32 = out["NumberReturned"].parse().unwrap();
            let total: u32 = out["TotalMatches"].parse().unwrap();
            assert_eq!(objs.len() as u32, returned);
            assert!(returned <= per_page);
            for o in objs {
                assert_eq!(o.parent, id, "{} listed under {id}", o.id);
                if o.container {
                    todo.push(o.id.clone());
                }
                assert!(seen.insert(o.id.clone(), o).is_none(), "listed twice");
            }
            start += returned;
            if returned == 0 || start >= total {
                assert_eq!(start, total, "pages of {id} add up");
                break;
            }
        }
    }
    seen
}

fn serve_media(env: &Env, lan: &Lan, name: &str) -> Server {
    media_fixture(&env.share());
    lan.serve(env, &["--name", name, env.share().to_str().unwrap()])
}

#[test]
fn a_tv_finds_glow_walks_the_tree_and_fetches_each_file() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    let srv = serve_media(&env, &lan, "Glow Test Server");
    let base = srv.dlna_base(SERVER_IP);
    lan.client(move || async move {
        // Discovery by M-SEARCH for the device type, as a TV does.
        let found = rupnp::discover(&SearchTarget::URN(MEDIA_SERVER), Duration::from_secs(5), None)
            .await
            .unwrap();
        let mut found = std::pin::pin!(found);
        let mut dev = None;
        while let Some(d) = found.next().await {
            let d = d.unwrap();
            if d.friendly_name() == "Glow Test Server" {
                dev = Some(d);
                break;
            }
        }
        let dev = dev.expect("Glow answers the M-SEARCH");
        assert_eq!(dev.url().to_string(), format!("{base}/dlna/description.xml"));
        assert_eq!(dev.device_type(), &MEDIA_SERVER);
        let types: HashSet<String> = dev.services().iter().map(|s| s.service_type().to_string()).collect();
        for t in [
            CDS_TYPE,
            "urn:schemas-upnp-org:service:ConnectionManager:1",
            "urn:microsoft.com:service:X_MS_MediaReceiverRegistrar:1",
        ] {
            assert!(types.contains(t), "{t} in {types:?}");
        }
        // Every service's description is served and parses.
        for s in dev.services() {
            s.scpd(dev.url()).await.unwrap();
        }
        // The icons the description lists.
        let desc = reqwest::get(dev.url().to_string()).await.unwrap().text().await.unwrap();
        let doc = roxmltree::Document::parse(&desc).unwrap();
        let icons: Vec<String> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "icon")
            .map(|n| n.children().find(|c| c.tag_name().name() == "url").unwrap().text().unwrap().to_owned())
            .collect();
        assert_eq!(icons.len(), 4);
        for i in icons {
            let r = reqwest::get(format!("{base}{i}")).await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("image/"));
        }

        // The whole tree, two objects per page.
        let all = walk_with_rupnp(&dev, 2).await;
        let root: Vec<&Obj> = all.values().filter(|o| o.parent == "0").collect();
        assert_eq!(root.len(), 4, "the folder and three views: {root:?}");
        let by_title = |title: &str, parent_prefix: &str| -> Obj {
            all.values()
                .find(|o| o.title == title && o.parent.starts_with(parent_prefix))
                .unwrap_or_else(|| panic!("{title} under {parent_prefix}: {:?}", all.keys()))
                .clone()
        };
        assert!(all.values().all(|o| o.title != "notes"), "only media is shown");
        let views: HashMap<&str, u32> = root.iter().map(|o| (o.id.as_str(), o.child_count.unwrap())).collect();
        assert_eq!(views["videos"], 2);
        assert_eq!(views["music"], 2);
        assert_eq!(views["photos"], 1);

        let clip = by_title("Test clip", "d/");
        assert_eq!(clip.class, "object.item.videoItem");
        let (pi, url, attrs) = &clip.res[0];
        assert_eq!(
            pi,
            "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_HP_HD_AAC;DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
        );
        assert_eq!(attrs["size"], fixture_bytes("clip.mp4").len().to_string());
        assert_eq!(attrs["duration"], "0:00:03.000");
        assert_eq!(attrs["resolution"], "320x240");
        assert_eq!(attrs["nrAudioChannels"], "2");
        assert_eq!(attrs["sampleFrequency"], "48000");
        assert!(url.starts_with(&format!("{base}/dlna/m/admin/share/Films/clip.mp4")));
        let subs: Vec<_> = clip.res.iter().filter(|r| r.0.starts_with("http-get:*:text/srt:")).collect();
        assert_eq!(subs.len(), 1, "the sidecar subtitle as a res");
        assert_eq!(clip.caption.as_deref(), Some(subs[0].1.as_str()));

        let song = by_title("Test song", "d/");
        assert_eq!(song.class, "object.item.audioItem.musicTrack");
        assert_eq!(song.artist.as_deref(), Some("Glow Band"));
        assert!(song.res[0].0.starts_with("http-get:*:audio/mpeg:DLNA.ORG_PN=MP3;DLNA.ORG_OP=01;"));
        let photo = by_title("photo", "d/");
        assert_eq!(photo.class, "object.item.imageItem.photo");
        assert!(photo.res[0].0.starts_with("http-get:*:image/jpeg:DLNA.ORG_PN=JPEG_SM;DLNA.ORG_OP=01;"), "{:?}", photo.res);
        assert_eq!(photo.res[0].2["resolution"], "640x480");
        let mkv = by_title("movie", "d/");
        assert!(mkv.res[0].0.starts_with("http-get:*:video/x-matroska:DLNA.ORG_OP=01;"));

        // Each file, with a range and the DLNA headers.
        let http = crate::fixtures::plain_client();
        for (obj, fixture, mode) in [
            (&clip, "clip.mp4", "Streaming"),
            (&song, "song.mp3", "Streaming"),
            (&photo, "photo.jpg", "Interactive"),
            (&mkv, "movie.mkv", "Streaming"),
        ] {
            let (pi, url, _) = &obj.res[0];
            let r = http
                .get(url)
                .header("Range", "bytes=100-199")
                .header("getcontentFeatures.dlna.org", "1")
                .header("transferMode.dlna.org", mode)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 206, "{url}");
            let want = fixture_bytes(fixture);
            assert_eq!(
                r.headers()["content-range"],
                format!("bytes 100-199/{}", want.len()).as_str()
            );
            assert_eq!(r.headers()["transferMode.dlna.org"], mode);
            let features = pi.splitn(4, ':').nth(3).unwrap();
            assert_eq!(r.headers()["contentFeatures.dlna.org"], features);
            assert_eq!(r.headers()["content-type"], pi.split(':').nth(2).unwrap());
            assert_eq!(r.bytes().await.unwrap(), want[100..200]);
            let head = http.head(url).send().await.unwrap();
            assert_eq!(head.status(), 200);
            assert_eq!(head.headers()["content-length"], want.len().to_string().as_str());
            assert_eq!(head.headers()["accept-ranges"], "bytes");
        }
        // The subtitle, and Samsung's way of asking for it.
        let sub = http.get(&subs[0].1).send().await.unwrap();
        assert_eq!(sub.headers()["content-type"], "text/srt");
        assert!(sub.text().await.unwrap().contains("Hello from Glow"));
        let r = http
            .get(&clip.res[0].1)
            .header("getCaptionInfo.sec", "1")
            .header("getMediaInfo.sec", "1")
            .header("User-Agent", "DLNADOC/1.50 SEC_HHP_[TV]UE40D7000/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["CaptionInfo.sec"], subs[0].1.as_str());
        assert_eq!(r.headers()["MediaInfo.sec"], "SEC_Duration=3000;");
        // A picture is not streamed; time seeking is not offered.
        let r = http.get(&photo.res[0].1).header("transferMode.dlna.org", "Streaming").send().await.unwrap();
        assert_eq!(r.status(), 406);
        let r = http
            .get(&clip.res[0].1)
            .header("TimeSeekRange.dlna.org", "npt=10.0-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 406);
        // Album art: the song's embedded cover and the photo's thumbnail.
        for art in [song.album_art.as_ref().unwrap(), photo.album_art.as_ref().unwrap()] {
            let r = http.get(art).send().await.unwrap();
            assert_eq!(r.status(), 200, "{art}");
            assert_eq!(r.headers()["content-type"], "image/jpeg");
            let jpeg = r.bytes().await.unwrap();
            assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        }
        // A Samsung TV is told Matroska by the name it knows.
        let (_, xml) = soap_as(&base, "DLNADOC/1.50 SEC_HHP_[TV]UE40D7000/1.0", &mkv.parent).await;
        assert!(xml.contains("video/x-mkv"), "{xml}");
    });
}

/// Browses a container as a client with this User-Agent.
async fn soap_as(base: &str, ua: &str, id: &str) -> (u16, String) {
    let body = format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:Browse xmlns:u=\"{CDS_TYPE}\"><ObjectID>{id}</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria></u:Browse></s:Body></s:Envelope>"
    );
    let r = crate::fixtures::plain_client()
        .post(format!("{base}/dlna/cds/control"))
        .header("SOAPACTION", format!("\"{CDS_TYPE}#Browse\""))
        .header("User-Agent", ua)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A server on loopback (no multicast needed) with the media fixture in
/// its served folder, plus a folder that is not media.
async fn loopback_server(env: &Env) -> (Server, String) {
    media_fixture(&env.share());
    // A hidden directory: never shown, never served.
    std::fs::create_dir_all(env.share().join(".hidden")).unwrap();
    std::fs::write(
        env.share().join(".hidden/x.srt"),
        "1\n00:00:00,000 --> 00:00:01,000\nhidden\n",
    )
    .unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/clip.mp4"),
        env.share().join(".hidden/y.mp4"),
    )
    .unwrap();
    let private = env.path("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/clip.mp4"),
        private.join("secret.mp4"),
    )
    .unwrap();
    let srv = env.serve();
    env.ok(&["folder", "add", "private", private.to_str().unwrap()]);
    let url = format!("{}/u/admin/private/secret.mp4", srv.base);
    crate::fixtures::eventually(10, "the server sees the private folder", || async {
        crate::fixtures::get_admin(&url).await.status() == 200
    })
    .await;
    let base = srv.dlna_base("127.0.0.1");
    (srv, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_and_search_follow_the_content_directory_rules() {
    let env = Env::new(Backend::Sqlite);
    let (_srv, base) = loopback_server(&env).await;

    // The root: the media folder and three views; never the private folder.
    let root = browse(&base, "0", "BrowseDirectChildren", 0, 0, "").await;
    let ids: Vec<&str> = root.objs.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["d/admin/share", "videos", "music", "photos"]);
    let meta = browse(&base, "0", "BrowseMetadata", 0, 0, "").await;
    assert_eq!((meta.returned, meta.total), (1, 1));
    assert_eq!(meta.objs[0].parent, "-1");
    assert_eq!(meta.objs[0].child_count, Some(4));

    // Paging: RequestedCount 0 means all; StartingIndex past the end gives
    // none but the right total; a page in the middle.
    let share = browse(&base, "d/admin/share", "BrowseDirectChildren", 0, 0, "").await;
    let titles: Vec<&str> = share.objs.iter().map(|o| o.title.as_str()).collect();
    assert_eq!(
        titles,
        ["Films", "Music", "sub", "photo"],
        "directories first, then media; no notes.txt"
    );
    let past = browse(&base, "d/admin/share", "BrowseDirectChildren", 10, 5, "").await;
    assert_eq!((past.returned, past.total), (0, 4));
    let mid = browse(&base, "d/admin/share", "BrowseDirectChildren", 1, 1, "").await;
    assert_eq!((mid.returned, mid.total), (1, 4));
    assert_eq!(mid.objs[0].id, share.objs[1].id);
    let edge = browse(&base, "d/admin/share", "BrowseDirectChildren", 3, 5, "").await;
    assert_eq!((edge.returned, edge.total), (1, 4));
    // BrowseMetadata of an item.
    let item = browse(
        &base,
        "i/admin/share/Music/song.mp3",
        "BrowseMetadata",
        0,
        0,
        "",
    )
    .await;
    assert_eq!(item.objs[0].title, "Test song");
    assert_eq!(item.objs[0].parent, "d/admin/share/Music");

    // Sorting.
    let up = browse(&base, "music", "BrowseDirectChildren", 0, 0, "+dc:title").await;
    let titles: Vec<&str> = up.objs.iter().map(|o| o.title.as_str()).collect();
    assert_eq!(titles, ["Quiet", "Test song"]);
    let down = browse(&base, "music", "BrowseDirectChildren", 0, 0, "-dc:title").await;
    let titles: Vec<&str> = down.objs.iter().map(|o| o.title.as_str()).collect();
    assert_eq!(titles, ["Test song", "Quiet"]);
    let second = browse(&base, "music", "BrowseDirectChildren", 1, 1, "-dc:title").await;
    assert_eq!((second.objs[0].title.as_str(), second.total), ("Quiet", 2));

    // Search: by class, by title, combined, paged and sorted.
    let (s, xml) = search(
        &base,
        "0",
        "upnp:class derivedfrom \"object.item.audioItem\"",
        0,
        0,
        "+dc:title",
    )
    .await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!(titles_of(&xml), ["Quiet", "Test song"]);
    let (_, xml) = search(&base, "0", "dc:title contains \"CLIP\"", 0, 0, "").await;
    assert_eq!(titles_of(&xml), ["Test clip"]);
    let (_, xml) = search(
        &base,
        "d/admin/share/Films",
        "(upnp:class derivedfrom \"object.item.videoItem\" or upnp:class = \"object.item.imageItem.photo\") and dc:title doesNotContain \"clip\"",
        0,
        0,
        "",
    )
    .await;
    assert_eq!(titles_of(&xml), ["movie"]);
    let (_, xml) = search(&base, "videos", "*", 1, 1, "+dc:title").await;
    let p = page(&xml);
    assert_eq!(
        (p.returned, p.total, p.objs[0].title.as_str()),
        (1, 2, "Test clip")
    );
    let (_, xml) = search(
        &base,
        "0",
        "upnp:class derivedfrom \"object.container\"",
        0,
        0,
        "",
    )
    .await;
    let p = page(&xml);
    assert!(
        p.objs.iter().all(|o| o.container) && p.total == 3,
        "Films, Music, sub"
    );

    // The capabilities and the update id.
    let (_, xml) = soap(&base, "cds", "GetSearchCapabilities", &[]).await;
    assert!(out_arg(&xml, "SearchCaps").unwrap().contains("upnp:class"));
    let (_, xml) = soap(&base, "cds", "GetSortCapabilities", &[]).await;
    assert!(out_arg(&xml, "SortCaps").unwrap().contains("dc:title"));
    let (_, xml) = soap(&base, "cds", "GetSystemUpdateID", &[]).await;
    assert!(out_arg(&xml, "Id").unwrap().parse::<u32>().unwrap() > 0);
    let (_, xml) = soap(&base, "cds", "X_GetFeatureList", &[]).await;
    assert!(
        out_arg(&xml, "FeatureList")
            .unwrap()
            .contains("samsung.com_BASICVIEW")
    );

    // ConnectionManager and the registrar.
    let (_, xml) = soap(&base, "cms", "GetProtocolInfo", &[]).await;
    assert!(
        out_arg(&xml, "Source")
            .unwrap()
            .contains("http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_HP_HD_AAC")
    );
    let (_, xml) = soap(&base, "cms", "GetCurrentConnectionIDs", &[]).await;
    assert_eq!(out_arg(&xml, "ConnectionIDs").as_deref(), Some("0"));
    let (s, xml) = soap(
        &base,
        "cms",
        "GetCurrentConnectionInfo",
        &[("ConnectionID", "0")],
    )
    .await;
    assert_eq!((s, out_arg(&xml, "Status").as_deref()), (200, Some("OK")));
    let (s, xml) = soap(
        &base,
        "cms",
        "GetCurrentConnectionInfo",
        &[("ConnectionID", "7")],
    )
    .await;
    assert_eq!((s, fault_code(&xml)), (500, Some(706)));
    let (_, xml) = soap(&base, "mrr", "IsAuthorized", &[("DeviceID", "")]).await;
    assert_eq!(out_arg(&xml, "Result").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_upnp_faults_not_crashes() {
    let env = Env::new(Backend::Sqlite);
    let (srv, base) = loopback_server(&env).await;
    let browse_args = |id: &'static str, flag: &'static str| {
        vec![
            ("ObjectID", id),
            ("BrowseFlag", flag),
            ("Filter", "*"),
            ("StartingIndex", "0"),
            ("RequestedCount", "0"),
            ("SortCriteria", ""),
        ]
    };
    // Unknown objects: 701, including the private folder and paths that try
    // to climb out.
    for id in [
        "nope",
        "d/admin/private",
        "d/admin/share/../private",
        "i/admin/share/notes.txt",
        "d/admin/share/Nope",
    ] {
        let (s, xml) = soap(
            &base,
            "cds",
            "Browse",
            &browse_args(id, "BrowseDirectChildren"),
        )
        .await;
        assert_eq!((s, fault_code(&xml)), (500, Some(701)), "{id}: {xml}");
    }
    // Bad arguments: 402.
    for args in [
        browse_args("0", "BrowseEverything"),
        vec![("ObjectID", "0"), ("BrowseFlag", "BrowseDirectChildren")],
        vec![
            ("ObjectID", "0"),
            ("BrowseFlag", "BrowseDirectChildren"),
            ("Filter", "*"),
            ("StartingIndex", "-1"),
            ("RequestedCount", "0"),
            ("SortCriteria", ""),
        ],
        vec![
            ("ObjectID", "0"),
            ("BrowseFlag", "BrowseDirectChildren"),
            ("Filter", "*"),
            ("StartingIndex", "0"),
            ("RequestedCount", "lots"),
            ("SortCriteria", ""),
        ],
    ] {
        let (s, xml) = soap(&base, "cds", "Browse", &args).await;
        assert_eq!((s, fault_code(&xml)), (500, Some(402)), "{args:?}: {xml}");
    }
    // Bad sort and search criteria: 709 and 708; search in an item: 710.
    let mut sorted = browse_args("0", "BrowseDirectChildren");
    sorted[5] = ("SortCriteria", "+bogus:prop");
    let (s, xml) = soap(&base, "cds", "Browse", &sorted).await;
    assert_eq!((s, fault_code(&xml)), (500, Some(709)));
    let (s, xml) = search(&base, "0", "dc:title contains", 0, 0, "").await;
    assert_eq!((s, fault_code(&xml)), (500, Some(708)));
    let (s, xml) = search(&base, "i/admin/share/Music/song.mp3", "*", 0, 0, "").await;
    assert_eq!((s, fault_code(&xml)), (500, Some(710)));
    // Not SOAP, unknown actions, garbage: 401.
    let action = format!("\"{CDS_TYPE}#Browse\"");
    for body in [
        "".to_owned(),
        "hello".to_owned(),
        "<Envelope><Body>".to_owned(),
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><s:Envelope xmlns:s=\"x\"><s:Body><u:Browse><ObjectID>&a;</ObjectID></u:Browse></s:Body></s:Envelope>".to_owned(),
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x41]).into_owned(),
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:Nope xmlns:u=\"x\"/></s:Body></s:Envelope>".to_owned(),
    ] {
        let (s, xml) = raw_soap(&base, "cds", &action, body.clone()).await;
        assert_eq!((s, fault_code(&xml)), (500, Some(401)), "{body:?}: {xml}");
    }
    // Oversized bodies are refused before parsing; GET on a control URL is
    // not allowed; unknown services are not found.
    let (s, _) = raw_soap(&base, "cds", &action, "x".repeat(200 * 1024)).await;
    assert_eq!(s, 413);
    let r = reqwest::get(format!("{base}/dlna/cds/control"))
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (s, _) = raw_soap(&base, "avt", &action, "<x/>".into()).await;
    assert_eq!(s, 404);
    // Media routes: only media of media folders, never a way out.
    let http = crate::fixtures::plain_client();
    for path in [
        "/dlna/m/admin/share/notes.txt",
        "/dlna/m/admin/private/secret.mp4",
        "/dlna/m/admin/share/Nope.mp4",
        "/dlna/m/admin/share/.hidden/x.srt",
        "/dlna/m/admin/share/.hidden/y.mp4",
        "/dlna/thumb/admin/share/.hidden/y.mp4",
        "/dlna/thumb/admin/share/Music/song.mp3",
        "/dlna/art/admin/share/photo.jpg",
        "/dlna/cast/0-00/admin/share/photo.jpg",
        "/dlna/cast/garbage",
        "/dlna/m/admin",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(
            r.status() == 404 || r.status() == 410,
            "{path}: {}",
            r.status()
        );
    }
    for raw in [
        "/dlna/m/admin/share/..%2f..%2fsecret.txt",
        "/dlna/m/admin/share/%2e%2e/private/secret.mp4",
        "/dlna/m/admin/share/Films/../../private/secret.mp4",
    ] {
        let addr = base.trim_start_matches("http://");
        let (status, body) = crate::fixtures::raw_request(
            addr,
            &format!("GET {raw} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        );
        assert!(status == 400 || status == 404, "{raw}: {status}");
        assert!(!body.contains(crate::fixtures::SECRET));
    }
    let r = http
        .put(format!("{base}/dlna/m/admin/share/photo.jpg"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A slow client is cut off (the listener's header timeout), and the
    // server still answers afterwards.
    let r = http
        .get(format!("{base}/dlna/description.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_the_gena_rules() {
    let env = Env::new(Backend::Sqlite);
    let (_srv, base) = loopback_server(&env).await;
    let http = crate::fixtures::plain_client();
    let subscribe = reqwest::Method::from_bytes(b"SUBSCRIBE").unwrap();
    let unsubscribe = reqwest::Method::from_bytes(b"UNSUBSCRIBE").unwrap();
    let url = format!("{base}/dlna/cds/event");
    let req = |m: &reqwest::Method, headers: &[(&str, &str)]| {
        let mut r = http.request(m.clone(), &url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    // A callback elsewhere than the subscriber itself is refused (the server
    // is not to be used against third parties), as are a missing NT or
    // CALLBACK.
    for headers in [
        vec![
            ("CALLBACK", "<http://10.1.2.3:4000/evt>"),
            ("NT", "upnp:event"),
        ],
        vec![("CALLBACK", "<http://127.0.0.1:4000/evt>")],
        vec![("NT", "upnp:event")],
        vec![
            ("CALLBACK", "http://127.0.0.1:4000/evt"),
            ("NT", "upnp:event"),
        ],
    ] {
        assert_eq!(
            req(&subscribe, &headers).await.unwrap().status(),
            412,
            "{headers:?}"
        );
    }
    let r = req(&subscribe, &[("SID", "uuid:x"), ("NT", "upnp:event")])
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = req(
        &subscribe,
        &[("SID", "uuid:not-ours"), ("TIMEOUT", "Second-300")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 412);
    let r = req(&unsubscribe, &[("SID", "uuid:not-ours")])
        .await
        .unwrap();
    assert_eq!(r.status(), 412);

    // A real subscriber on loopback gets the initial event.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cb = format!("<http://{}/evt>", listener.local_addr().unwrap());
    let r = req(
        &subscribe,
        &[
            ("CALLBACK", &cb),
            ("NT", "upnp:event"),
            ("TIMEOUT", "Second-300"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["SID"].to_str().unwrap().to_owned();
    assert!(sid.starts_with("uuid:"));
    assert_eq!(r.headers()["TIMEOUT"], "Second-300");
    let event = next_notify(&listener).await;
    assert!(
        event.contains("NT: upnp:event") || event.contains("nt: upnp:event"),
        "{event}"
    );
    assert!(event.to_ascii_lowercase().contains("seq: 0"), "{event}");
    assert!(event.contains(&sid));
    assert!(event.contains("<SystemUpdateID>"));
    // Renewal and unsubscription; then the SID is gone.
    let r = req(&subscribe, &[("SID", &sid), ("TIMEOUT", "Second-600")])
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["TIMEOUT"].to_str().unwrap()
        ),
        (200, "Second-600")
    );
    assert_eq!(
        req(&unsubscribe, &[("SID", &sid)]).await.unwrap().status(),
        200
    );
    assert_eq!(
        req(&unsubscribe, &[("SID", &sid)]).await.unwrap().status(),
        412
    );
    assert_eq!(
        req(&subscribe, &[("SID", &sid), ("TIMEOUT", "Second-600")])
            .await
            .unwrap()
            .status(),
        412
    );
    // Other methods on an event URL.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 405);
}

/// Accepts one NOTIFY on `listener`, answers 200, returns it (head and body).
async fn next_notify(listener: &tokio::net::TcpListener) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("a NOTIFY arrives")
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if String::from_utf8_lossy(&buf).contains("</e:propertyset>") {
            break;
        }
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn a_subscriber_hears_of_new_files() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    let srv = serve_media(&env, &lan, "Glow Events");
    let desc = format!("{}/dlna/description.xml", srv.dlna_base(SERVER_IP));
    let music = env.share().join("Music");
    lan.client(move || async move {
        let dev = rupnp::Device::from_url(desc.parse().unwrap()).await.unwrap();
        let cds = dev.find_service(&CDS).unwrap();
        // rupnp listens for events on this side's address (10.77.0.2).
        let (sid, stream) = cds.subscribe(dev.url(), 300).await.unwrap();
        assert!(sid.starts_with("uuid:"));
        let mut stream = std::pin::pin!(stream);
        let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the initial event")
            .unwrap()
            .unwrap();
        let before: u32 = first["SystemUpdateID"].parse().unwrap();
        // A new file in a media folder.
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/song.mp3"),
            music.join("new song.mp3"),
        )
        .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("an event after the change")
            .unwrap()
            .unwrap();
        let after: u32 = next["SystemUpdateID"].parse().unwrap();
        assert!(after > before, "{before} -> {after}");
        let ids = &next["ContainerUpdateIDs"];
        assert!(ids.contains("d/admin/share/Music,"), "{ids}");
        assert!(ids.contains("music,"), "{ids}");
        // And the new file is there to browse.
        let out = cds
            .action(
                dev.url(),
                "Browse",
                "<ObjectID>d/admin/share/Music</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria>",
            )
            .await
            .unwrap();
        assert_eq!(out["TotalMatches"], "3");
        cds.unsubscribe(dev.url(), &sid).await.unwrap();
    });
}

/// Reads SSDP datagrams on the TV side until `until` holds or time is up.
async fn ssdp_listen(secs: u64, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], 1900)).into())
        .unwrap();
    s.join_multicast_v4(
        &"239.255.255.250".parse().unwrap(),
        &CLIENT_IP.parse().unwrap(),
    )
    .unwrap();
    s.set_nonblocking(true).unwrap();
    let sock = tokio::net::UdpSocket::from_std(s.into()).unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 2048];
    while !until(&got) {
        match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => break,
        }
    }
    got
}

#[test]
fn glow_announces_itself_and_says_goodbye() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listening = lan.client_spawn(move || async move {
        // Listen before the server starts: its first ssdp:alive must come.
        let alive = tokio::spawn(ssdp_listen(30, |got| {
            got.iter()
                .any(|m| m.contains("NTS: ssdp:alive") && m.contains("upnp:rootdevice"))
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready_tx.send(()).unwrap();
        let alive = alive.await.unwrap();
        let _ = stop_rx.await;
        let bye = ssdp_listen(30, |got| {
            got.iter()
                .filter(|m| m.contains("NTS: ssdp:byebye"))
                .count()
                >= 6
        });
        (alive, bye.await)
    });
    ready_rx.recv().unwrap();
    let mut srv = lan.serve(&env, &["--name", "Glow Bye", env.share().to_str().unwrap()]);
    let base = srv.dlna_base(SERVER_IP);
    // Give the TV side time to hear the announcements, then stop the server
    // and hear its goodbyes.
    std::thread::sleep(Duration::from_secs(2));
    stop_tx.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    srv.terminate();
    let (alive, bye) = listening.join().unwrap();
    let alive: Vec<&String> = alive
        .iter()
        .filter(|m| m.contains("NTS: ssdp:alive"))
        .collect();
    assert!(!alive.is_empty(), "no ssdp:alive seen");
    assert!(
        alive
            .iter()
            .all(|m| m.contains(&format!("LOCATION: {base}/dlna/description.xml"))),
        "{alive:?}"
    );
    let uuid = std::fs::read_to_string(env.data_dir().join("dlna-uuid")).unwrap();
    let byes: Vec<&String> = bye
        .iter()
        .filter(|m| m.contains("NTS: ssdp:byebye"))
        .collect();
    assert!(byes.len() >= 6, "byebye for every target: {bye:?}");
    for nt in [
        "upnp:rootdevice",
        "urn:schemas-upnp-org:device:MediaServer:1",
        CDS_TYPE,
        "urn:schemas-upnp-org:service:ConnectionManager:1",
        "urn:microsoft.com:service:X_MS_MediaReceiverRegistrar:1",
    ] {
        assert!(
            byes.iter()
                .any(|m| m.contains(&format!("NT: {nt}\r\n")) && m.contains(uuid.trim())),
            "byebye for {nt}: {byes:?}"
        );
    }
}

#[test]
fn ssdp_answers_every_target_and_ignores_garbage() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    let srv = serve_media(&env, &lan, "Glow SSDP");
    let base = srv.dlna_base(SERVER_IP);
    let uuid = std::fs::read_to_string(env.data_dir().join("dlna-uuid"))
        .unwrap()
        .trim()
        .to_owned();
    lan.client(move || async move {
        let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let group = "239.255.255.250:1900";
        let unicast = format!("{SERVER_IP}:1900");
        // Garbage first, to the group and to the server itself.
        let mut noise: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"garbage".to_vec(),
            vec![0xff; 1500],
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n".to_vec(),
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: x\r\nST: ssdp:all\r\n\r\n".to_vec(),
            format!("M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {}\r\n\r\n", "x".repeat(1000)).into_bytes(),
            b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\n\r\n".to_vec(),
        ];
        noise.push(vec![b'A'; 9000]);
        for n in &noise {
            let _ = sock.send_to(n, group).await;
            let _ = sock.send_to(n, &unicast).await;
        }
        // Then a real search for everything.
        let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";
        sock.send_to(search, group).await.unwrap();
        let mut answers = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            assert_eq!(from.ip().to_string(), SERVER_IP);
            answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let usns: HashSet<String> = answers
            .iter()
            .filter_map(|a| a.lines().find(|l| l.starts_with("USN: ")).map(|l| l[5..].to_owned()))
            .collect();
        let want: HashSet<String> = [
            format!("uuid:{uuid}::upnp:rootdevice"),
            format!("uuid:{uuid}"),
            format!("uuid:{uuid}::urn:schemas-upnp-org:device:MediaServer:1"),
            format!("uuid:{uuid}::{CDS_TYPE}"),
            format!("uuid:{uuid}::urn:schemas-upnp-org:service:ConnectionManager:1"),
            format!("uuid:{uuid}::urn:microsoft.com:service:X_MS_MediaReceiverRegistrar:1"),
        ]
        .into();
        assert_eq!(usns, want, "{answers:?}");
        for a in &answers {
            assert!(a.starts_with("HTTP/1.1 200 OK\r\n"));
            assert!(a.contains(&format!("LOCATION: {base}/dlna/description.xml\r\n")));
            assert!(a.contains("\r\nEXT:\r\n") && a.contains("CACHE-CONTROL: max-age="));
        }
        // A search for something else gets no answer at all.
        sock.send_to(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:MediaRenderer:1\r\n\r\n", group)
            .await
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await;
        assert!(r.is_err(), "Glow is no renderer");
    });
}

#[test]
fn gssdp_discover_and_async_upnp_client_find_and_browse_glow() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    let srv = serve_media(&env, &lan, "Glow GUPnP");
    let desc = format!("{}/dlna/description.xml", srv.dlna_base(SERVER_IP));
    // GNOME's GSSDP, searching for media servers on the TV side's interface.
    let out = lan
        .client_cmd("gssdp-discover")
        .args([
            "-i",
            &lan.client_if,
            "-t",
            "urn:schemas-upnp-org:device:MediaServer:1",
            "-n",
            "6",
        ])
        .output()
        .expect("gssdp-discover (apt-get install gupnp-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("resource available"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("Location: {desc}")), "{text}");
    // Home Assistant's async-upnp-client: search, then a Browse of the root.
    let out = lan
        .client_cmd("upnp-client")
        .args([
            "--timeout",
            "6",
            "search",
            "--search_target",
            "urn:schemas-upnp-org:device:MediaServer:1",
        ])
        .output()
        .expect("upnp-client (pip install async-upnp-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&desc),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lan
        .client_cmd("upnp-client")
        .args([
            "--timeout",
            "10",
            "call-action",
            &desc,
            "ContentDirectory/Browse",
            "ObjectID=0",
            "BrowseFlag=BrowseDirectChildren",
            "Filter=*",
            "StartingIndex=0",
            "RequestedCount=0",
            "SortCriteria=",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let outp = &json["out_parameters"];
    assert_eq!(outp["NumberReturned"], 4, "{json}");
    assert_eq!(outp["TotalMatches"], 4);
    let didl = outp["Result"].as_str().unwrap();
    assert!(didl.contains("All videos"), "{didl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_on_the_dlna_port() {
    use std::io::Write;
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    let srv = env.serve_with(&["--header-timeout", "2", env.share().to_str().unwrap()]);
    let base = srv.dlna_base("127.0.0.1");
    let mut slow = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    slow.write_all(b"POST /dlna/cds/control HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // TVs are served meanwhile.
    let r = reqwest::get(format!("{base}/dlna/description.xml"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    crate::fixtures::assert_hung_up(slow);
}

#[test]
fn another_port_is_taken_when_the_default_one_is_busy() {
    let lan = Lan::new();
    let env = Env::new(Backend::Sqlite);
    media_fixture(&env.share());
    // Something else (say minidlna) holds 8200 on the Glow host.
    let _squatter = lan_squat(&lan.server_ns, 8200);
    lan.client(|| async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect((SERVER_IP, 8200))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the squatter did not come up");
    });
    let mut cmd = env.glow_in(&lan.server_ns);
    cmd.env_remove("GLOW_DLNA").arg("serve").args([
        "--http",
        &format!("{SERVER_IP}:0"),
        "--no-sftp",
        env.share().to_str().unwrap(),
    ]);
    let srv = Server::start(cmd);
    let base = srv.dlna_base(SERVER_IP);
    assert!(!base.ends_with(":8200"), "{base}");
    lan.client(move || async move {
        let r = reqwest::get(format!("{base}/dlna/description.xml"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    // An address asked for is never swapped for another.
    let out = env
        .glow_in(&lan.server_ns)
        .args([
            "serve",
            "--http",
            &format!("{SERVER_IP}:0"),
            "--no-sftp",
            "--dlna",
            "0.0.0.0:8200",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on 0.0.0.0:8200 for DLNA"),
        "{err}"
    );
}

/// A process holding a TCP port in a namespace; killed on drop.
struct Squatter(std::process::Child);

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lan_squat(ns: &str, port: u16) -> Squatter {
    let code = format!(
        "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',{port}))\ns.listen()\ntime.sleep(120)"
    );
    Squatter(
        std::process::Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", &code])
            .spawn()
            .unwrap(),
    )
}
