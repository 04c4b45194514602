//! Share links: `/s/<token>/…`, opened by anyone who holds the URL.
//!
//! A folder link shows a browse page, a file link a preview page with a
//! download button, an upload-only link a drop page. A password-protected
//! link first shows a password page; the right password sets a cookie scoped
//! to that link's path. Dead links (revoked, expired, used up) get a 410
//! page, never the content.

use super::AppState;
use super::error::HttpError;
use super::files::send_file;
use super::pages::{self, MediaKind, Message, Row, crumbs, html};
use super::uri::encode_segment;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use fabric::{Address, EntryKind, FabricError, Principal, RelPath, Share, SharePermission};
use futures_util::TryStreamExt;
use percent_encoding::percent_decode_str;
use std::net::SocketAddr;
use tokio_util::io::StreamReader;

/// Name of the cookie that proves a link's password was given.
const PROOF_COOKIE: &str = "glow_link";

#[derive(Template)]
#[template(path = "share_password.html")]
struct PasswordPage<'a> {
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "share_file.html")]
struct FilePage {
    name: String,
    icon: &'static str,
    size: String,
    modified: String,
    raw_href: String,
    media: MediaKind,
}

#[derive(Template)]
#[template(path = "share_browse.html")]
struct BrowsePage {
    title: String,
    crumbs: Vec<pages::Crumb>,
    rows: Vec<Row>,
    can_upload: bool,
}

#[derive(Template)]
#[template(path = "share_drop.html")]
struct DropPage {
    owner: String,
    sent: Option<usize>,
}

/// `/s/<token>` without the slash: redirect so relative links work.
pub async fn bare(req: Request) -> Response {
    let to = format!("{}/", req.uri().path());
    Redirect::permanent(&to).into_response()
}

/// Every method under `/s/<token>/`.
pub async fn handle(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
) -> Response {
    match serve(&state, req).await {
        Ok(r) => r,
        Err(e) => error_page(e),
    }
}

/// Turns errors into pages a visitor understands.
fn error_page(e: HttpError) -> Response {
    match e {
        HttpError::Fabric(FabricError::Gone(why)) => html(
            StatusCode::GONE,
            Message {
                title: "This link no longer works",
                message: why,
            },
        ),
        HttpError::Fabric(FabricError::NotFound) => html(
            StatusCode::NOT_FOUND,
            Message {
                title: "Not found",
                message: "There is nothing at this address. Check the link you were given.",
            },
        ),
        HttpError::Fabric(FabricError::Forbidden) => html(
            StatusCode::FORBIDDEN,
            Message {
                title: "Not allowed",
                message: "This link does not allow that.",
            },
        ),
        other => other.into_response(),
    }
}

async fn serve(state: &AppState, req: Request) -> Result<Response, HttpError> {
    let raw = req.uri().path().to_owned();
    let (token, rest, trailing) = decode(&raw)?;
    let share = state.fabric.open_share(&token).await?;
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let base = format!("/s/{token}/");

    if share.has_password {
        let proof = super::auth::cookie(req.headers(), PROOF_COOKIE);
        if !state
            .fabric
            .share_unlocked(&share, proof.as_deref())
            .await?
        {
            return unlock(state, &share, req, &base, peer).await;
        }
    }
    let who = share.principal();
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("");
    let inline = query.split('&').any(|q| q == "inline");

    if share.kind == EntryKind::File {
        // `/s/<t>/` is the preview page; `/s/<t>/<name>` the file itself.
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(HttpError::Status(
                StatusCode::METHOD_NOT_ALLOWED,
                "a file link is read-only",
            ));
        }
        let addr = share.address();
        let opened = state.fabric.open_file(&who, &addr).await?;
        if rest.is_root() {
            let e = &opened.entry;
            let page = FilePage {
                name: e.name.clone(),
                icon: pages::icon(&e.name, false),
                size: pages::human_size(e.size),
                modified: pages::human_time(e.mtime_ns),
                raw_href: format!("{base}{}", encode_segment(&e.name)),
                media: pages::media_kind(&e.name),
            };
            return Ok(html(StatusCode::OK, page));
        }
        if rest.as_str() != opened.entry.name {
            return Err(FabricError::NotFound.into());
        }
        return download(state, &share, &parts, opened, !inline).await;
    }

    let addr = Address::new(
        share.owner.clone(),
        share.folder.clone(),
        join(&share.path, &rest)?,
    );
    match parts.method {
        Method::GET | Method::HEAD => {
            if share.permission == SharePermission::Upload {
                if rest.is_root() {
                    let sent = query.strip_prefix("sent=").and_then(|n| n.parse().ok());
                    return Ok(html(
                        StatusCode::OK,
                        DropPage {
                            owner: share.owner.clone(),
                            sent,
                        },
                    ));
                }
                return Err(FabricError::Forbidden.into());
            }
            match state.fabric.open_file(&who, &addr).await {
                Ok(opened) if !trailing => download(state, &share, &parts, opened, !inline).await,
                Ok(_) => Err(FabricError::NotFound.into()),
                Err(FabricError::WrongKind(_)) => {
                    if !trailing {
                        return Ok(
                            Redirect::permanent(&format!("{}/", parts.uri.path())).into_response()
                        );
                    }
                    if query.split('&').any(|q| q == "zip") {
                        // A whole-folder download counts as one download.
                        state.fabric.count_share_download(&share, 1, 1).await?;
                        let name = if addr.path.is_root() {
                            addr.folder.clone()
                        } else {
                            addr.path.name().to_owned()
                        };
                        return Ok(super::zip::download(state, &who, &addr, &name));
                    }
                    let mut rows: Vec<Row> = state
                        .fabric
                        .list(&who, &addr)
                        .await?
                        .iter()
                        .filter(|e| !fabric::is_os_metadata(&e.name))
                        .map(Row::from_entry)
                        .collect();
                    rows.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
                    let top = if share.path.is_root() {
                        share.folder.clone()
                    } else {
                        share.path.name().to_owned()
                    };
                    let title = if rest.is_root() {
                        top.clone()
                    } else {
                        rest.name().to_owned()
                    };
                    let page = BrowsePage {
                        title,
                        crumbs: crumbs(&base, &top, &rest),
                        rows,
                        can_upload: share.permission == SharePermission::ReadWrite,
                    };
                    Ok(html(StatusCode::OK, page))
                }
                Err(e) => Err(e.into()),
            }
        }
        Method::PUT => {
            let stream = body.into_data_stream().map_err(std::io::Error::other);
            let out = state
                .fabric
                .write(&who, &addr, StreamReader::new(stream), "share")
                .await?;
            Ok(if out.created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            }
            .into_response())
        }
        Method::POST => {
            let req = Request::from_parts(parts, body);
            let n = upload_form(state, &who, &addr, &share, req).await?;
            let to = if share.permission == SharePermission::Upload {
                format!("{base}?sent={n}")
            } else {
                raw.clone()
            };
            let mut r = Redirect::to(&to).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            Ok(r)
        }
        Method::DELETE => {
            state.fabric.delete(&who, &addr, "share").await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(HttpError::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    }
}

/// Serves a file through a link, counting what it serves against the
/// download limit: the fraction of the file the response carries (a whole
/// GET is one download, ranges add up; HEAD and 304 are free).
async fn download(
    state: &AppState,
    share: &Share,
    parts: &Parts,
    opened: fabric::OpenFile,
    attachment: bool,
) -> Result<Response, HttpError> {
    let size = opened.entry.size;
    let r = send_file(parts, opened, attachment).await?;
    let served = r
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(size);
    if parts.method == Method::GET && r.status().is_success() {
        let counted = state.fabric.count_share_download(share, served, size).await;
        // Unlimited links are counted too, for the owner's statistics.
        if share.max_downloads.is_some() {
            counted?;
        }
    }
    Ok(r)
}

/// The password page, or the unlock when it is posted.
async fn unlock(
    state: &AppState,
    share: &Share,
    req: Request,
    base: &str,
    peer: Option<SocketAddr>,
) -> Result<Response, HttpError> {
    if req.method() != Method::POST {
        return Ok(html(StatusCode::FORBIDDEN, PasswordPage { error: None }));
    }
    #[derive(serde::Deserialize)]
    struct Form {
        password: String,
    }
    let uri = req.uri().path().to_owned();
    let form = axum::Form::<Form>::from_request(req, state)
        .await
        .map_err(|_| HttpError::Status(StatusCode::BAD_REQUEST, "expected a password form"))?;
    match state
        .fabric
        .unlock_share(share, &form.password, peer.map(|p| p.ip()))
        .await
    {
        Ok(proof) => {
            let secure = if state.tls { "; Secure" } else { "" };
            let cookie =
                format!("{PROOF_COOKIE}={proof}; Path={base}; HttpOnly; SameSite=Lax{secure}");
            let mut r = Redirect::to(&uri).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(FabricError::BadCredentials) => Ok(html(
            StatusCode::FORBIDDEN,
            PasswordPage {
                error: Some("Wrong password. Try again."),
            },
        )),
        Err(e) => Err(e.into()),
    }
}

/// Stores every file of a multipart form in the directory `dir`. Upload-only
/// links never replace: a name already taken gets ` (1)`, ` (2)`, ….
async fn upload_form(
    state: &AppState,
    who: &Principal,
    dir: &Address,
    share: &Share,
    req: Request,
) -> Result<usize, HttpError> {
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|_| HttpError::Status(StatusCode::BAD_REQUEST, "expected a multipart form"))?;
    let mut n = 0;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|_| HttpError::Status(StatusCode::BAD_REQUEST, "malformed multipart form"))?
    {
        let Some(name) = field.file_name().map(base_name) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let stream = field.map_err(std::io::Error::other);
        let mut reader = Some(StreamReader::new(stream));
        for attempt in 0..1000 {
            let candidate = numbered(&name, attempt);
            let addr = dir.with_path(dir.path.join(&candidate)?);
            let exists = state.fabric.stat(&Principal::System, &addr).await.is_ok();
            if exists && share.permission == SharePermission::Upload {
                continue;
            }
            let r = reader.take().expect("one write per field");
            state.fabric.write(who, &addr, r, "share").await?;
            n += 1;
            break;
        }
        if reader.is_some() {
            return Err(FabricError::AlreadyExists.into());
        }
    }
    Ok(n)
}

/// The last component of a browser-supplied file name (some send paths).
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// `a.txt`, `a (1).txt`, `a (2).txt`, …
fn numbered(name: &str, n: usize) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.').filter(|i| *i > 0) {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

fn join(root: &RelPath, rest: &RelPath) -> Result<RelPath, FabricError> {
    if rest.is_root() {
        return Ok(root.clone());
    }
    let mut p = root.clone();
    for part in rest.as_str().split('/') {
        p = p.join(part)?;
    }
    Ok(p)
}

/// Splits `/s/<token>/<rest>` into its token and the decoded rest.
fn decode(raw: &str) -> Result<(String, RelPath, bool), FabricError> {
    let rest = raw.strip_prefix("/s/").ok_or(FabricError::NotFound)?;
    let (token, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let trailing = raw.ends_with('/');
    let mut parts = Vec::new();
    for seg in tail.split('/').filter(|s| !s.is_empty()) {
        let s = percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| FabricError::InvalidPath("path is not UTF-8".into()))?;
        parts.push(s.into_owned());
    }
    let path = RelPath::from_components(parts.iter().map(String::as_str))?;
    Ok((token.to_owned(), path, trailing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_before_the_extension() {
        assert_eq!(numbered("a.txt", 0), "a.txt");
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
        assert_eq!(numbered("noext", 1), "noext (1)");
        assert_eq!(numbered(".hidden", 1), ".hidden (1)");
        assert_eq!(base_name("C:\\Users\\x\\photo.jpg"), "photo.jpg");
    }

    #[test]
    fn decodes_tokens_and_refuses_traversal() {
        let (t, p, slash) = decode("/s/abc/x%20y/").unwrap();
        assert_eq!((t.as_str(), p.as_str(), slash), ("abc", "x y", true));
        assert!(decode("/s/abc/../x").is_err());
        assert!(decode("/s/abc/%2e%2e/x").is_err());
    }
}
