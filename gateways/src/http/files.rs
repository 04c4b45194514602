//! `GET`/`HEAD`/`PUT`/`DELETE` under `/u/<user>/<folder>/<path>`.
//!
//! Files stream from the fabric's open file (never loaded whole), with
//! single byte ranges, strong ETags and Last-Modified validators. Uploads
//! stream into the fabric's atomic write.

use super::AppState;
use super::auth::{Caller, caller, check_csrf};
use super::browse;
use super::error::HttpError;
use super::range::{RangeAnswer, answer};
use super::uri::{FilePath, decode, encode_segment};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fabric::{Address, Entry, FabricError, FileBody, OpenFile, Precondition, Principal};
use futures_util::TryStreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::io::StreamReader;

/// Read buffer for streamed responses: large reads keep the blocking-pool
/// hops per byte low (nginx uses sendfile; this is how Glow keeps up).
const READ_CHUNK: usize = 1024 * 1024;
/// The methods this route answers.
const ALLOW: &str = "GET, HEAD, PUT, DELETE";

/// Entry point for every method under `/u`.
pub async fn handle(State(state): State<AppState>, req: Request) -> Result<Response, HttpError> {
    let (req, body) = req.into_parts();
    let peer = req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Some(c) = caller(&state, &req.headers, peer).await? else {
        if browse::wants_html(&req.headers) && matches!(req.method, Method::GET | Method::HEAD) {
            return Ok(browse::to_login(req.uri.path()));
        }
        return Err(HttpError::Unauthorized);
    };
    if !matches!(req.method, Method::GET | Method::HEAD) {
        check_csrf(&req.headers, &c, None)?;
    }
    let fp = decode(req.uri.path(), "/u")?;
    let method = req.method.clone();
    let (Some(user), Some(folder)) = (fp.user.clone(), fp.folder.clone()) else {
        return namespace(&state, &c, &fp, &req).await;
    };
    let addr = Address::new(user, folder, fp.path.clone());
    let who = &c.who;
    match method {
        Method::GET | Method::HEAD => get(&state, &c, &addr, &fp, &req).await,
        Method::PUT => put(&state, who, &addr, &fp, &req, body).await,
        Method::DELETE => {
            state.fabric.delete(who, &addr, "http").await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Ok(method_not_allowed()),
    }
}

fn method_not_allowed() -> Response {
    let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    r
}

/// `/u/` and `/u/<user>/`: the signed-in user's folders.
async fn namespace(
    state: &AppState,
    c: &Caller,
    fp: &FilePath,
    req: &Parts,
) -> Result<Response, HttpError> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(method_not_allowed());
    }
    let Some(user) = &fp.user else {
        return Ok(redirect(&format!("/u/{}/", encode_segment(c.who.actor()))));
    };
    if !fp.trailing_slash {
        return Ok(redirect(&format!("{}/", req.uri.path())));
    }
    state.fabric.namespace(&c.who, user).await?;
    let folders = state.fabric.folders(&c.who, Some(user)).await?;
    Ok(browse::namespace_page(state, c, user, &folders).await)
}

async fn get(
    state: &AppState,
    c: &Caller,
    addr: &Address,
    fp: &FilePath,
    req: &Parts,
) -> Result<Response, HttpError> {
    let who = &c.who;
    let query = req.uri.query().unwrap_or("");
    let flag = |name: &str| {
        query
            .split('&')
            .any(|kv| kv == name || kv.starts_with(&format!("{name}=")))
    };
    if flag("thumb") {
        let jpeg = state.fabric.thumbnail(who, addr).await?;
        let mut r = jpeg.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=300"),
        );
        return Ok(r);
    }
    if flag("versions") {
        return browse::versions_page(state, c, addr).await;
    }
    if let Some(id) = query.split('&').find_map(|kv| kv.strip_prefix("version=")) {
        let id: i64 = id
            .parse()
            .map_err(|_| HttpError::Status(StatusCode::BAD_REQUEST, "bad version id"))?;
        let (file, v) = state.fabric.open_version(who, addr, id).await?;
        let entry = fabric::Entry {
            path: addr.path.clone(),
            name: addr.path.name().to_owned(),
            kind: fabric::EntryKind::File,
            size: v.size,
            mtime_ns: v.mtime_ns,
            inode: v.id as u64,
            mode: 0o644,
        };
        return send_file(
            req,
            OpenFile {
                entry,
                body: FileBody::File(file),
            },
            true,
        )
        .await;
    }
    let OpenFile {
        entry,
        body: content,
    } = match state.fabric.open_file(who, addr).await {
        Ok(x) => x,
        Err(FabricError::WrongKind(_)) => {
            if !fp.trailing_slash {
                let mut to = format!("{}/", req.uri.path());
                if !query.is_empty() {
                    to = format!("{to}?{query}");
                }
                return Ok(redirect(&to));
            }
            if flag("zip") {
                let name = if addr.path.is_root() {
                    addr.folder.clone()
                } else {
                    addr.path.name().to_owned()
                };
                return Ok(super::zip::download(state, who, addr, &name));
            }
            let mut entries = state.fabric.list(who, addr).await?;
            entries.retain(|e| !fabric::is_os_metadata(&e.name));
            // A folder's own page says what it keeps copies of.
            let mut notes = Vec::new();
            if addr.path.is_root()
                && let Some(f) = state
                    .fabric
                    .folders(who, Some(&addr.user))
                    .await?
                    .iter()
                    .find(|f| f.name == addr.folder)
            {
                notes.push(browse::copies_note(state, f).await);
            }
            return Ok(browse::dir_page(
                c,
                addr,
                entries,
                browse::Sort::from_query(query),
                notes,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if flag("view") && !fp.trailing_slash && req.method == Method::GET {
        return browse::viewer_page(state, c, addr).await;
    }
    if fp.trailing_slash {
        return Err(FabricError::NotFound.into());
    }
    send_file(
        req,
        OpenFile {
            entry,
            body: content,
        },
        false,
    )
    .await
}

/// Answers a GET or HEAD for an opened file: validators (304), a single
/// range (206/416), the content streamed. With `attachment`, browsers are
/// told to save it rather than show it.
pub(crate) async fn send_file(
    req: &Parts,
    opened: OpenFile,
    attachment: bool,
) -> Result<Response, HttpError> {
    let OpenFile {
        entry,
        body: content,
    } = opened;
    let headers = &req.headers;
    let etag = entry.etag();
    let modified = mtime(&entry);
    let mut base = HeaderMap::new();
    base.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("etag is ASCII"),
    );
    base.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(modified)).expect("date"),
    );
    base.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // The sandbox and nosniff headers come from `headers::protect`, the
    // layer every answer passes through (a 304 included).
    if not_modified(headers, &etag, modified) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().extend(base);
        return Ok(r);
    }
    let mime = mime_guess::from_path(&entry.name).first_or_octet_stream();
    let ctype = if mime.type_() == "text" && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    base.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ctype)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range_header = if if_range_holds(headers, &etag, modified) {
        range_header
    } else {
        None
    };
    let (status, start, len) = match answer(range_header, entry.size) {
        RangeAnswer::Full => (StatusCode::OK, 0, entry.size),
        RangeAnswer::Partial(r) => {
            base.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start(), r.end(), entry.size))
                    .expect("ascii"),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                *r.start(),
                r.end() - r.start() + 1,
            )
        }
        RangeAnswer::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut().extend(base);
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", entry.size)).expect("ascii"),
            );
            return Ok(r);
        }
    };
    base.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if attachment {
        base.insert(
            header::CONTENT_DISPOSITION,
            super::uri::attachment(&entry.name),
        );
    }
    let body = match content {
        _ if req.method == Method::HEAD => Body::empty(),
        FileBody::Inline(bytes) => Body::from(bytes.slice(start as usize..(start + len) as usize)),
        FileBody::File(file) => Body::from_stream(file_stream(file.into_std().await, start, len)),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().extend(base);
    Ok(r)
}

/// The bytes `start..start + len` of `file`, in chunks of up to
/// [`READ_CHUNK`] read on the blocking pool with one chunk read ahead, so
/// that the disk and the network work at the same time. Each chunk is read
/// straight into the buffer that is sent (no copy through a reader's own
/// buffer). A file that turns out shorter than promised ends the body with
/// an error, so the connection is cut rather than a short body passed off
/// as whole.
pub fn file_stream(
    file: std::fs::File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    type Pending = tokio::task::JoinHandle<std::io::Result<Bytes>>;
    fn read(file: &Arc<std::fs::File>, pos: u64, n: usize) -> Pending {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; n];
            let mut filled = 0;
            while filled < n {
                match file.read_at(&mut buf[filled..], pos + filled as u64) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Bytes::from(buf))
        })
    }
    let end = start + len;
    let chunk = move |pos: u64| READ_CHUNK.min((end - pos) as usize);
    let file = Arc::new(file);
    let first = (len > 0).then(|| read(&file, start, chunk(start)));
    futures_util::stream::unfold(
        (file, start, first),
        move |(file, pos, pending): (Arc<std::fs::File>, u64, Option<Pending>)| async move {
            let got = match pending?.await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e)),
            };
            match got {
                Ok(bytes) => {
                    let pos = pos + bytes.len() as u64;
                    let next = (pos < end).then(|| read(&file, pos, chunk(pos)));
                    Some((Ok(bytes), (file, pos, next)))
                }
                Err(e) => Some((Err(e), (file, end, None))),
            }
        },
    )
}

async fn put(
    state: &AppState,
    who: &Principal,
    addr: &Address,
    fp: &FilePath,
    req: &Parts,
    body: Body,
) -> Result<Response, HttpError> {
    if fp.trailing_slash || addr.path.is_root() {
        return Err(HttpError::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "cannot PUT a directory",
        ));
    }
    let headers = &req.headers;
    let existing = match state.fabric.stat(who, addr).await {
        Ok(e) => Some(e),
        Err(FabricError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let current = existing.as_ref().map(Entry::etag);
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(im) = header_str(header::IF_MATCH)
        && !current.as_ref().is_some_and(|e| etag_matches_strong(im, e))
    {
        return Err(HttpError::Status(
            StatusCode::PRECONDITION_FAILED,
            "If-Match failed",
        ));
    }
    if let Some(inm) = header_str(header::IF_NONE_MATCH)
        && current.as_ref().is_some_and(|e| etag_matches(inm, e))
    {
        return Err(HttpError::Status(
            StatusCode::PRECONDITION_FAILED,
            "If-None-Match failed",
        ));
    }
    // The checks above save a wasted upload; this one, made again when the
    // upload is committed, is the one that holds against a concurrent writer.
    let pre = match (
        header_str(header::IF_MATCH),
        header_str(header::IF_NONE_MATCH),
    ) {
        (Some("*"), _) => Precondition::Exists,
        (Some(one), _) if !one.contains(',') => Precondition::Etag(one.trim().to_owned()),
        (_, Some("*")) => Precondition::Absent,
        _ => Precondition::None,
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let outcome = state
        .fabric
        .write_if(who, addr, StreamReader::new(stream), "http", &pre)
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut r = status.into_response();
    r.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&outcome.entry.etag()).expect("ascii"),
    );
    Ok(r)
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn mtime(e: &Entry) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(e.mtime_ns.max(0) as u64)
}

/// True if an `If-None-Match` / `If-Match` value lists `etag` (or is `*`).
/// True if an `If-None-Match` value lists `etag` (weak comparison) or is `*`.
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// True if an `If-Match` value lists `etag` (strong comparison: a weak
/// validator never matches) or is `*`.
fn etag_matches_strong(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
}

fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return etag_matches(inm, etag);
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        && let Ok(since) = httpdate::parse_http_date(ims)
    {
        return secs(modified) <= secs(since);
    }
    false
}

/// `If-Range`: the range applies only if the validator still matches.
fn if_range_holds(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    let Some(v) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if v.starts_with('"') {
        return v == etag;
    }
    httpdate::parse_http_date(v).is_ok_and(|d| secs(modified) == secs(d))
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
