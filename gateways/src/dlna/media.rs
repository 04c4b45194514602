//! Media over HTTP for TVs: files of media folders (`/dlna/m/…`),
//! thumbnails (`/dlna/thumb/…`), embedded cover art (`/dlna/art/…`), files
//! reached with a playback ticket (`/dlna/cast/<ticket>/…`) and the icons.
//!
//! Files stream through the HTTP front's `send_file` (Range, HEAD,
//! validators); this module adds what DLNA clients ask for:
//! `contentFeatures.dlna.org`, `transferMode.dlna.org`, Samsung's
//! `CaptionInfo.sec` and `MediaInfo.sec`, and per-client MIME types.

use super::Dlna;
use super::didl::{Context, preferred_subtitle};
use super::profiles;
use super::quirks::Client;
use crate::http::HttpError;
use crate::http::files::send_file;
use crate::http::uri::decode;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fabric::media::MediaItem;
use fabric::{Address, FabricError, MediaKind, Principal, is_servable_media};
use std::net::SocketAddr;

/// Side of the thumbnails served as album art (DLNA `JPEG_TN`).
const THUMB_SIDE: u32 = 160;

fn address(raw: &str, prefix: &str) -> Result<Address, HttpError> {
    let fp = decode(raw, prefix)?;
    match (fp.user, fp.folder) {
        (Some(u), Some(f)) if !fp.path.is_root() && !fp.trailing_slash => {
            Ok(Address::new(u, f, fp.path))
        }
        _ => Err(FabricError::NotFound.into()),
    }
}

fn get_or_head(req: &Parts) -> Result<(), HttpError> {
    if matches!(req.method, Method::GET | Method::HEAD) {
        Ok(())
    } else {
        Err(HttpError::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or HEAD",
        ))
    }
}

fn log(req: &Parts) {
    let peer = req
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let range = req
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A ticket is a capability: the log shows that one was used, not which.
    let path = req.uri.path();
    let shown = match path.strip_prefix("/dlna/cast/") {
        Some(rest) => format!(
            "/dlna/cast/…/{}",
            rest.split_once('/').map_or("", |(_, p)| p)
        ),
        None => path.to_owned(),
    };
    tracing::info!(target: "glow::dlna", "dlna {} {shown} from {peer} {range}", req.method);
}

/// `/dlna/m/<user>/<folder>/<path>`: a file of a media folder.
pub async fn file(State(dlna): State<Dlna>, req: Request) -> Result<Response, HttpError> {
    let (req, _) = req.into_parts();
    get_or_head(&req)?;
    log(&req);
    let addr = address(req.uri.path(), "/dlna/m")?;
    let name = addr.path.name().to_owned();
    if !is_servable_media(&name) {
        return Err(FabricError::NotFound.into());
    }
    let fabric = dlna.fabric();
    let who = Principal::LanMedia;
    let item = if fabric::media_kind(&name).is_some() {
        Some(fabric.media_item(&who, &addr).await?)
    } else {
        // A subtitle: only beside what TVs are shown (not in hidden
        // directories).
        fabric
            .media_dir(&who, &addr.with_path(addr.path.parent()))
            .await?;
        None
    };
    stream(&req, fabric, &who, &addr, item.as_deref(), &|sub| {
        let cx = Context::new(dlna.base_url(&req), Client::Generic, "");
        let dir = addr.with_path(addr.path.parent());
        dir.path
            .join(sub)
            .ok()
            .map(|p| cx.url("m", &dir.with_path(p)))
    })
    .await
}

/// Streams a file (Range, HEAD, validators) with the DLNA headers.
async fn stream(
    req: &Parts,
    fabric: &fabric::Fabric,
    who: &Principal,
    addr: &Address,
    item: Option<&MediaItem>,
    subtitle_url: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Response, HttpError> {
    let opened = fabric.open_file(who, addr).await?;
    let mut r = send_file(req, opened, false).await?;
    let client = Client::detect(&req.headers);
    dlna_headers(
        &req.headers,
        &mut r,
        client,
        addr.path.name(),
        item,
        subtitle_url,
    )?;
    Ok(r)
}

/// `/dlna/cast/<ticket>/<user>/<folder>/<path>`: a file reached with a
/// playback ticket ("play on TV" on any folder).
pub async fn cast(State(dlna): State<Dlna>, req: Request) -> Result<Response, HttpError> {
    let (req, _) = req.into_parts();
    get_or_head(&req)?;
    log(&req);
    let rest = req.uri.path().strip_prefix("/dlna/cast/").unwrap_or("");
    let (ticket, _) = rest.split_once('/').ok_or(FabricError::NotFound)?;
    let prefix = format!("/dlna/cast/{ticket}");
    let addr = address(req.uri.path(), &prefix)?;
    let fabric = dlna.fabric();
    let who = fabric.open_ticket(ticket, &addr).await?;
    let item = fabric.probe_media(&who, &addr).await.ok();
    stream(&req, fabric, &who, &addr, item.as_ref(), &|_| None).await
}

/// `/dlna/thumb/<user>/<folder>/<path>`: a 160-pixel JPEG of an image.
pub async fn thumb(State(dlna): State<Dlna>, req: Request) -> Result<Response, HttpError> {
    let (req, _) = req.into_parts();
    get_or_head(&req)?;
    let addr = address(req.uri.path(), "/dlna/thumb")?;
    if fabric::media_kind(addr.path.name()) != Some(MediaKind::Image) {
        return Err(FabricError::NotFound.into());
    }
    let fabric = dlna.fabric();
    // Only media folders, like every other media route.
    fabric.media_item(&Principal::LanMedia, &addr).await?;
    let jpeg = fabric
        .thumbnail_sized(&Principal::LanMedia, &addr, THUMB_SIDE)
        .await?;
    Ok(picture(&req, "image/jpeg", jpeg, profiles::THUMB_FEATURES))
}

/// `/dlna/art/<user>/<folder>/<path>`: the cover embedded in a song.
pub async fn art(State(dlna): State<Dlna>, req: Request) -> Result<Response, HttpError> {
    let (req, _) = req.into_parts();
    get_or_head(&req)?;
    let addr = address(req.uri.path(), "/dlna/art")?;
    let (mime, bytes) = dlna
        .fabric()
        .media_cover(&Principal::LanMedia, &addr)
        .await?;
    let features = if mime == "image/jpeg" {
        profiles::THUMB_FEATURES.to_owned()
    } else {
        profiles::plain_features("cover.png")
    };
    let mime: &'static str = if mime == "image/png" {
        "image/png"
    } else {
        "image/jpeg"
    };
    Ok(picture(&req, mime, bytes, &features))
}

fn picture(req: &Parts, mime: &'static str, bytes: Vec<u8>, features: &str) -> Response {
    let len = bytes.len();
    let mut r = if req.method == Method::HEAD {
        Response::new(axum::body::Body::empty())
    } else {
        bytes.into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    if let Ok(v) = HeaderValue::from_str(features) {
        h.insert("contentFeatures.dlna.org", v);
    }
    h.insert(
        "transferMode.dlna.org",
        HeaderValue::from_static("Interactive"),
    );
    r
}

/// Adds the DLNA headers to a file answer (or refuses the request as DLNA
/// says: 406 for a transfer mode or time seek Glow does not offer).
fn dlna_headers(
    req: &HeaderMap,
    r: &mut Response,
    client: Client,
    name: &str,
    item: Option<&MediaItem>,
    subtitle_url: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(), HttpError> {
    let asked = |h: &str| req.get(h).and_then(|v| v.to_str().ok()).map(str::trim);
    let image_like = item.is_none_or(|i| i.kind == MediaKind::Image);
    let mode = match asked("transfermode.dlna.org") {
        None => {
            if image_like {
                "Interactive"
            } else {
                "Streaming"
            }
        }
        Some(m) if m.eq_ignore_ascii_case("Streaming") => {
            if image_like && item.is_some() {
                return Err(HttpError::Status(
                    StatusCode::NOT_ACCEPTABLE,
                    "pictures are not streamed (transferMode.dlna.org)",
                ));
            }
            "Streaming"
        }
        // Samsung TVs ask for Interactive on videos too: tolerated.
        Some(m) if m.eq_ignore_ascii_case("Interactive") => "Interactive",
        Some(m) if m.eq_ignore_ascii_case("Background") => "Background",
        Some(_) => {
            return Err(HttpError::Status(
                StatusCode::BAD_REQUEST,
                "unknown transferMode.dlna.org",
            ));
        }
    };
    if asked("timeseekrange.dlna.org").is_some() && req.get(header::RANGE).is_none() {
        return Err(HttpError::Status(
            StatusCode::NOT_ACCEPTABLE,
            "time seek is not offered (DLNA.ORG_OP=01: byte ranges only)",
        ));
    }
    let status = r.status();
    let h = r.headers_mut();
    h.insert("transferMode.dlna.org", HeaderValue::from_static(mode));
    let features = match item {
        Some(i) => profiles::features(i),
        None => profiles::plain_features(name),
    };
    if let Ok(v) = HeaderValue::from_str(&features) {
        h.insert("contentFeatures.dlna.org", v);
    }
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(profiles::mime(client, name)),
        );
    }
    if let Some(i) = item {
        if asked("getcaptioninfo.sec") == Some("1")
            && let Some(url) = preferred_subtitle(i).and_then(subtitle_url)
            && let Ok(v) = HeaderValue::from_str(&url)
        {
            h.insert("CaptionInfo.sec", v);
        }
        if asked("getmediainfo.sec") == Some("1")
            && let Some(ms) = i.info.duration_ms
            && let Ok(v) = HeaderValue::from_str(&format!("SEC_Duration={ms};"))
        {
            h.insert("MediaInfo.sec", v);
        }
    }
    Ok(())
}
