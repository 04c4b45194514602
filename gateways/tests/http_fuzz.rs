//! Property tests of the HTTP and WebDAV fronts as a whole, in process:
//! random and mutated requests (methods, paths, `Depth`, `If`, `Range`,
//! `Destination`, `Timeout`, `Lock-Token` and XML bodies) go through the
//! real router, dav-server included, with `oneshot`. Every answer must be
//! a protocol answer (no 500, no panic), and nothing outside the folder may
//! change.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use fabric::{Fabric, FabricConfig};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::sync::OnceLock;
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    tmp: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("docs/d")).unwrap();
        std::fs::write(tmp.path().join("docs/a.txt"), b"alpha").unwrap();
        std::fs::write(tmp.path().join("docs/d/b.txt"), b"beta").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
        let app = rt.block_on(async {
            let fabric = Fabric::open(FabricConfig::new(tmp.path().join("data")))
                .await
                .unwrap();
            fabric
                .create_user("alice", "alice-password", false)
                .await
                .unwrap();
            fabric
                .add_folder(
                    "alice",
                    "docs",
                    &tmp.path().join("docs"),
                    Default::default(),
                )
                .await
                .unwrap();
            gateways::http::app(fabric, false, None, None)
        });
        World { rt, app, tmp }
    })
}

/// `alice:alice-password`.
const ALICE: &str = "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=";

const PROPFIND: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/><D:quota-available-bytes/></D:prop></D:propfind>"#;
const PROPPATCH: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>x<Z:b/></Z:a></D:prop></D:set><D:remove><D:prop><Z:c/></D:prop></D:remove></D:propertyupdate>"#;
const LOCKINFO: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>"#;

fn mutate(sample: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..6).prop_map(move |edits| {
        let mut s = sample.to_vec();
        for (i, b, kind) in edits {
            if s.is_empty() {
                break;
            }
            let i = i % s.len();
            match kind {
                0 => s[i] ^= b | 1,
                1 => s.insert(i, b),
                2 => {
                    s.remove(i);
                }
                _ => s.truncate(i),
            }
        }
        s
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/dav/".to_owned()),
        Just("/dav/docs".to_owned()),
        Just("/dav/docs/".to_owned()),
        Just("/dav/docs/a.txt".to_owned()),
        Just("/dav/docs/d/".to_owned()),
        Just("/dav/docs/new.txt".to_owned()),
        Just("/dav/docs/%2e%2e/%2e%2e/secret.txt".to_owned()),
        Just("/dav/docs/..%2f..%2fsecret.txt".to_owned()),
        Just("/dav/other/x".to_owned()),
        Just("/u/alice/docs/a.txt".to_owned()),
        Just("/u/alice/docs/d/".to_owned()),
        Just("/u/alice/docs/%2e%2e/x".to_owned()),
        "/dav/docs/[a-z%0-9.]{0,12}",
        "/u/alice/docs/[a-z%0-9.?=&]{0,16}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("infinity".to_owned()),
        Just("T".to_owned()),
        Just("F".to_owned()),
        Just("Second-60".to_owned()),
        Just("Infinite, Second-4100000000".to_owned()),
        Just("bytes=0-1".to_owned()),
        Just("bytes=-0".to_owned()),
        Just("bytes=5-2".to_owned()),
        Just("(<urn:uuid:00000000-0000-0000-0000-000000000000>)".to_owned()),
        Just("</dav/docs/a.txt> (Not <DAV:no-lock> [\"x\"])".to_owned()),
        Just("<urn:uuid:x>".to_owned()),
        Just("http://localhost/dav/docs/c.txt".to_owned()),
        Just("/dav/docs/d/e.txt".to_owned()),
        Just("http://elsewhere/dav/docs/c.txt".to_owned()),
        Just("\"etag\"".to_owned()),
        Just("<".to_owned()),
        Just("\"".to_owned()),
        Just("W/\"".to_owned()),
        Just("([\"])".to_owned()),
        "[ -~]{0,40}",
    ]
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Req> {
    let method = prop::sample::select(vec![
        "GET",
        "HEAD",
        "PUT",
        "DELETE",
        "OPTIONS",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "POST",
    ]);
    let names = prop::sample::select(vec![
        "depth",
        "if",
        "range",
        "if-range",
        "if-match",
        "if-none-match",
        "destination",
        "overwrite",
        "timeout",
        "lock-token",
        "content-range",
    ]);
    let body = prop_oneof![
        Just(Vec::new()),
        mutate(PROPFIND),
        mutate(PROPPATCH),
        mutate(LOCKINFO),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    (
        method,
        path(),
        prop::collection::vec((names, header_value()), 0..4),
        body,
    )
        .prop_map(|(method, path, headers, body)| Req {
            method,
            path,
            headers,
            body,
        })
}

async fn send(app: &axum::Router, r: &Req) -> Result<StatusCode, String> {
    let mut b = Request::builder()
        .method(r.method)
        .uri(&r.path)
        .header("authorization", ALICE)
        .header("host", "localhost");
    for (n, v) in &r.headers {
        b = b.header(*n, v.as_str());
    }
    let mut req = b
        .body(Body::from(r.body.clone()))
        .map_err(|e| e.to_string())?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

/// Values that took dav-server 0.11's header parsers past the end of the
/// value (a panic in the worker: the connection died unanswered). Found by
/// the property test below on CI (`PUT /dav/` with `If: <`).
#[test]
fn malformed_conditional_headers_are_refused() {
    let w = world();
    let cases = [
        ("if", "<"),
        ("if", "(<urn:x> [\"a])"),
        ("if", "([W/\"])"),
        ("if-match", "\""),
        ("if-match", "\"a\", W/\""),
        ("if-none-match", "\""),
        ("if-range", "\""),
    ];
    for method in ["PUT", "GET", "PROPFIND", "LOCK", "DELETE", "MOVE"] {
        for path in ["/dav/", "/dav/docs/a.txt", "/u/alice/docs/a.txt"] {
            for (name, value) in cases {
                if path.starts_with("/u/") && !matches!(method, "GET" | "PROPFIND") {
                    continue; // the web front's writes are POSTs with a CSRF token.
                }
                let r = Req {
                    method,
                    path: path.to_owned(),
                    headers: vec![(name, value.to_owned())],
                    body: Vec::new(),
                };
                let status = w.rt.block_on(send(&w.app, &r)).unwrap();
                assert!(
                    status.is_client_error() || status.is_success() || status.is_redirection(),
                    "{method} {path} {name}: {value}: {status}"
                );
                if path.starts_with("/dav/") {
                    assert_eq!(
                        status,
                        StatusCode::BAD_REQUEST,
                        "{method} {path} {name}: {value}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn fuzzed_requests_get_protocol_answers(reqs in prop::collection::vec(request(), 1..8)) {
        let w = world();
        for r in &reqs {
            let status = w.rt.block_on(send(&w.app, r)).map_err(TestCaseError::fail)?;
            prop_assert!(
                status != StatusCode::INTERNAL_SERVER_ERROR,
                "{} {} {:?} {:?}: {status}",
                r.method, r.path, r.headers, String::from_utf8_lossy(&r.body)
            );
        }
        prop_assert_eq!(std::fs::read(w.tmp.path().join("secret.txt")).unwrap(), b"secret");
        let mut names: Vec<String> = std::fs::read_dir(w.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        prop_assert_eq!(names, ["data", "docs", "secret.txt"]);
    }
}

/// The LAN media front over the same fabric (its folder flagged as media).
fn dlna() -> &'static axum::Router {
    static D: OnceLock<axum::Router> = OnceLock::new();
    D.get_or_init(|| {
        let w = world();
        w.rt.block_on(async {
            let fabric = Fabric::open(FabricConfig::new(w.tmp.path().join("data")))
                .await
                .unwrap();
            let addr = fabric::Address::parse("alice/docs").unwrap();
            fabric
                .set_folder_media(&fabric::Principal::System, &addr, true)
                .await
                .unwrap();
            gateways::dlna::Dlna::new(
                fabric,
                gateways::dlna::Options {
                    uuid: "fuzz".into(),
                    name: "Glow fuzz".into(),
                    presentation_url: None,
                },
            )
            .router()
        })
    })
}

fn soap_call() -> impl Strategy<Value = (String, Vec<u8>)> {
    let action = prop::sample::select(vec![
        "Browse",
        "Search",
        "GetSortCapabilities",
        "GetSystemUpdateID",
        "GetProtocolInfo",
        "GetCurrentConnectionInfo",
        "X_GetFeatureList",
        "IsAuthorized",
        "Nope",
    ]);
    let arg = prop_oneof![
        Just("0".to_owned()),
        Just("d/alice/docs".to_owned()),
        Just("i/alice/docs/a.txt".to_owned()),
        Just("BrowseDirectChildren".to_owned()),
        Just("BrowseMetadata".to_owned()),
        Just("*".to_owned()),
        Just("+dc:title,-dc:date".to_owned()),
        Just("4294967295".to_owned()),
        Just("-1".to_owned()),
        Just("upnp:class derivedfrom \"object.item\"".to_owned()),
        "\\PC{0,16}",
    ];
    let names = prop::sample::select(vec![
        "ObjectID",
        "ContainerID",
        "BrowseFlag",
        "Filter",
        "StartingIndex",
        "RequestedCount",
        "SortCriteria",
        "SearchCriteria",
        "ConnectionID",
    ]);
    (action, prop::collection::vec((names, arg), 0..8)).prop_map(|(action, args)| {
        let mut body = format!(
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:{action} xmlns:u=\"urn:schemas-upnp-org:service:ContentDirectory:1\">"
        );
        for (n, v) in args {
            let v = v.replace('&', "&amp;").replace('<', "&lt;");
            body.push_str(&format!("<{n}>{v}</{n}>"));
        }
        body.push_str(&format!("</u:{action}></s:Body></s:Envelope>"));
        (action.to_owned(), body.into_bytes())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// SOAP calls with random arguments and GENA requests with random
    /// headers get a result, a UPnP fault or an HTTP error, never a panic.
    #[test]
    fn fuzzed_media_requests_get_protocol_answers(
        (action, body) in soap_call(),
        service in prop::sample::select(vec!["cds", "cms", "mrr", "x"]),
        gena in prop::collection::vec((prop::sample::select(vec!["callback", "nt", "sid", "timeout"]), header_value()), 0..4),
        method in prop::sample::select(vec!["SUBSCRIBE", "UNSUBSCRIBE", "GET"]),
    ) {
        let w = world();
        let app = dlna();
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut soap = Request::builder()
            .method("POST")
            .uri(format!("/dlna/{service}/control"))
            .header("host", "127.0.0.1:8200")
            .header("soapaction", format!("\"urn:schemas-upnp-org:service:ContentDirectory:1#{action}\""))
            .body(Body::from(body))
            .unwrap();
        soap.extensions_mut().insert(ConnectInfo(peer));
        let mut ev = Request::builder()
            .method(method)
            .uri(format!("/dlna/{service}/event"))
            .header("host", "127.0.0.1:8200");
        for (n, v) in &gena {
            ev = ev.header(*n, v.as_str());
        }
        let mut ev = ev.body(Body::empty()).unwrap();
        ev.extensions_mut().insert(ConnectInfo(peer));
        for req in [soap, ev] {
            let status = w.rt.block_on(async {
                let r = app.clone().oneshot(req).await.unwrap();
                let status = r.status();
                let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
                // A 500 is only ever a UPnP fault.
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    assert!(String::from_utf8_lossy(&body).contains("UPnPError"));
                }
                status
            });
            prop_assert!(status.as_u16() < 600);
        }
    }
}
