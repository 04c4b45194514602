//! The WebDAV front: `/dav/` on the HTTP port, built on dav-server with
//! [`fs::GlowDavFs`] over the fabric (no second path to the disk). The
//! signed-in user sees their folders as top-level collections.
//!
//! Sign-in is HTTP Basic only (password or app password, rate-limited like
//! every front): the browser's session cookie is not accepted here, so a
//! page cannot use WebDAV on a signed-in owner's behalf. Every XML body is
//! checked (size, depth, no DOCTYPE) before any parser reads it.
//!
//! Class 1 and 2: locks live in the catalog (`locks.rs`) and survive a
//! restart; dead properties live in the catalog too.

mod conditions;
mod error;
pub mod fs;
pub mod locks;
mod propfind;

use crate::http::basic_caller;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav_server::DavHandler;
use fabric::{Fabric, Principal};
use std::net::SocketAddr;

/// What every WebDAV request shares.
#[derive(Clone)]
pub struct Dav {
    fabric: Fabric,
    fs: fs::GlowDavFs,
    lock_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Dav {
    /// The WebDAV front over `fabric`, mounted at `/dav`.
    pub fn new(fabric: Fabric) -> Dav {
        Dav {
            fs: fs::GlowDavFs::new(fabric.clone()),
            fabric,
            lock_gate: Default::default(),
        }
    }

    /// A handler bound to one user's namespace (their lock table).
    fn handler_for(&self, user: &str) -> DavHandler<Principal> {
        DavHandler::builder()
            .filesystem(Box::new(self.fs.clone()))
            .locksystem(Box::new(locks::CatalogLs::new(
                self.fabric.clone(),
                user.to_owned(),
                self.lock_gate.clone(),
            )))
            .strip_prefix("/dav")
            .build_handler()
    }
}

/// `OPTIONS /`: Windows' WebDAV redirector (and some other clients) asks the
/// server root, without credentials, whether it speaks WebDAV before it
/// mounts `/dav/`; say so.
pub async fn root_options() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(
        header::HeaderName::from_static("dav"),
        HeaderValue::from_static("1, 2"),
    );
    h.insert(
        header::HeaderName::from_static("ms-author-via"),
        HeaderValue::from_static("DAV"),
    );
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, GET, HEAD"),
    );
    r
}

/// Every method under `/dav`.
pub async fn handle(State(state): State<crate::http::AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let caller = match basic_caller(&state, req.headers(), peer).await {
        Ok(Some(c)) => c,
        Ok(None) => return crate::http::HttpError::Unauthorized.into_response(),
        Err(e) => return e.into_response(),
    };
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    if cross_site {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    if let Err(why) = conditions::check(req.headers()) {
        return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    }
    let method = req.method().clone();
    if matches!(method.as_str(), "COPY" | "MOVE") && !destination_is_here(req.headers(), req.uri())
    {
        // RFC 4918 §9.8.5: a destination on another server is 502.
        return (
            StatusCode::BAD_GATEWAY,
            "the Destination is on another server\n",
        )
            .into_response();
    }
    // Every body but PUT's is XML that a recursive parser will read
    // (xmltree, here and inside dav-server): read it whole (dav-server
    // reads at most this much anyway) and check it first.
    let (parts, body) = req.into_parts();
    let body = if matches!(method.as_str(), "PUT" | "PATCH") {
        Err(body)
    } else {
        let Ok(bytes) = axum::body::to_bytes(body, XML_BODY_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        };
        if let Err(why) = crate::xml::check_body(&bytes) {
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
        Ok(bytes)
    };
    // dav-server refuses Depth: infinity PROPFIND with 501; RFC 4918 §9.1
    // says 403 with the propfind-finite-depth precondition, which clients
    // understand as "ask level by level".
    let depth = parts
        .headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let infinite_propfind = method.as_str() == "PROPFIND"
        && depth
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("infinity"));
    let name = caller.who.actor().to_owned();
    if method.as_str() == "PROPFIND"
        && matches!(depth.as_deref(), Some("0" | "1"))
        && !parts.headers.contains_key("if")
        && let Ok(bytes) = &body
        && let Some(pieces) =
            fast_propfind(&state.dav, &caller.who, &parts.uri, depth.as_deref(), bytes).await
    {
        return multistatus(pieces);
    }
    let req = Request::from_parts(
        parts,
        match body {
            Ok(bytes) => Body::from(bytes),
            Err(stream) => stream,
        },
    );
    if req.method() == axum::http::Method::DELETE
        && let Some(r) = delete_tree(&state.dav, &caller.who, req.uri(), req.headers()).await
    {
        return r;
    }
    // A panic inside dav-server (a parser bug not yet known) answers this
    // request with a 500 instead of dropping the connection unanswered.
    let handler = state.dav.handler_for(&name);
    let handled =
        std::panic::AssertUnwindSafe(handler.handle_guarded(req, name.clone(), caller.who));
    let mut r = match futures_util::FutureExt::catch_unwind(handled).await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(%method, "the WebDAV handler panicked; answered 500");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if infinite_propfind && r.status() == StatusCode::NOT_IMPLEMENTED {
        *r.status_mut() = StatusCode::FORBIDDEN;
    }
    // macOS Finder and Windows look for this to offer a writable mount.
    r.headers_mut()
        .entry(header::HeaderName::from_static("ms-author-via"))
        .or_insert(HeaderValue::from_static("DAV"));
    if r.status() == StatusCode::MULTI_STATUS {
        return r.map(|b| Body::from_stream(Coalesce::new(Body::new(b).into_data_stream())));
    }
    r.map(Body::new)
}

/// Whether a COPY or MOVE's `Destination` names this server: a path, or
/// an absolute URL whose host and port are the request's `Host` (the
/// scheme's port when one leaves it out), or `X-Forwarded-Host` behind a
/// reverse proxy that rewrites `Host`.
fn destination_is_here(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> bool {
    let Some(dest) = headers.get("destination").and_then(|v| v.to_str().ok()) else {
        return true; // dav-server answers a missing one with 400.
    };
    let Ok(dest) = dest.parse::<axum::http::Uri>() else {
        return true; // ... and a malformed one.
    };
    let Some(authority) = dest.authority() else {
        return true;
    };
    let default_port = if dest.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let key = |a: &str| -> Option<(String, u16)> {
        let a: axum::http::uri::Authority = a.parse().ok()?;
        Some((
            a.host().to_ascii_lowercase(),
            a.port_u16().unwrap_or(default_port),
        ))
    };
    let wanted = key(authority.as_str());
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    // HTTP/2 carries the host in the request's own URI.
    [
        header("host").or(uri.authority().map(|x| x.as_str())),
        header("x-forwarded-host"),
    ]
    .into_iter()
    .flatten()
    .any(|h| key(h) == wanted)
}

/// Largest request body other than PUT's (dav-server's own limit: a
/// PROPFIND, PROPPATCH or LOCK body is a few KiB).
const XML_BODY_LIMIT: usize = 64 * 1024;

async fn fast_propfind(
    dav: &Dav,
    who: &Principal,
    uri: &axum::http::Uri,
    depth: Option<&str>,
    body: &[u8],
) -> Option<propfind::Pieces> {
    let path = dav_path(uri)?;
    propfind::answer(&dav.fs, &dav.fabric, who, &path, depth?, body).await
}

/// The request path as dav-server sees it (decoded, below `/dav`).
fn dav_path(uri: &axum::http::Uri) -> Option<dav_server::davpath::DavPath> {
    let mut path = dav_server::davpath::DavPath::new(uri.path()).ok()?;
    path.set_prefix("/dav").ok()?;
    Some(path)
}

/// Whether any of the caller's locks covers something in `addr`'s folder
/// (a lock inside it, or a deep lock above it). `None` when the catalog
/// cannot say. The shortcuts around dav-server are taken only without.
async fn locks_in_folder(fabric: &Fabric, who: &Principal, addr: &fabric::Address) -> Option<bool> {
    let folder = format!("/{}/", addr.folder);
    let locks = fabric.locks(who.actor()).await.ok()?;
    Some(
        locks
            .iter()
            .any(|l| l.scope.starts_with(&folder) || folder.starts_with(&l.scope)),
    )
}

/// A 207 Multi-Status whose body is written piece by piece as it is sent.
fn multistatus(pieces: propfind::Pieces) -> Response {
    let mut r = Response::new(Body::from_stream(pieces));
    *r.status_mut() = StatusCode::MULTI_STATUS;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    h.insert(
        header::HeaderName::from_static("ms-author-via"),
        HeaderValue::from_static("DAV"),
    );
    r
}

/// DELETE of a directory as one fabric call, so that it lands in the trash
/// as one item that restores whole (dav-server would delete it file by
/// file). Only when no lock can be involved (no `If` header, no locks in
/// the folder); otherwise, and for files, dav-server does it.
async fn delete_tree(
    dav: &Dav,
    who: &Principal,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    if headers.contains_key("if") {
        return None;
    }
    if headers
        .get("depth")
        .is_some_and(|d| !d.as_bytes().eq_ignore_ascii_case(b"infinity"))
    {
        return None;
    }
    let path = dav_path(uri)?;
    let fabric::Place::In(addr) = fs::target(&path, who).ok()? else {
        return None;
    };
    if addr.path.is_root() || !dav.fabric.stat(who, &addr).await.ok()?.is_dir() {
        return None;
    }
    if locks_in_folder(&dav.fabric, who, &addr).await? {
        return None;
    }
    dav.fabric.delete(who, &addr, "webdav").await.ok()?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::HeaderName::from_static("ms-author-via"),
        HeaderValue::from_static("DAV"),
    );
    Some(r)
}

/// Bytes gathered before a piece of a multistatus body is sent.
const COALESCE: usize = 64 * 1024;

/// Joins the small pieces dav-server writes a multistatus in (one per
/// `<response>`, a few hundred bytes each) into pieces of up to
/// [`COALESCE`] bytes: a 10,000-entry PROPFIND then costs ~100 body frames
/// and writes instead of 10,000. Whatever is ready is sent as soon as the
/// inner stream has to wait, so nothing is held back.
struct Coalesce<S> {
    inner: S,
    buf: bytes::BytesMut,
    done: bool,
}

impl<S> Coalesce<S> {
    fn new(inner: S) -> Self {
        Coalesce {
            inner,
            buf: bytes::BytesMut::new(),
            done: false,
        }
    }
}

impl<S, E> futures_util::Stream for Coalesce<S>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    type Item = Result<bytes::Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match std::pin::Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.buf.extend_from_slice(&chunk);
                    if this.buf.len() >= COALESCE {
                        return Poll::Ready(Some(Ok(this.buf.split().freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(
                        (!this.buf.is_empty()).then(|| Ok(this.buf.split().freeze())),
                    );
                }
                Poll::Pending if this.buf.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(this.buf.split().freeze()))),
            }
        }
    }
}

#[cfg(test)]
mod destination_tests {
    use super::destination_is_here;
    use axum::http::{HeaderMap, HeaderValue, Uri};

    fn here(host: &str, dest: &str, forwarded: Option<&str>) -> bool {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(host).unwrap());
        h.insert("destination", HeaderValue::from_str(dest).unwrap());
        if let Some(f) = forwarded {
            h.insert("x-forwarded-host", HeaderValue::from_str(f).unwrap());
        }
        destination_is_here(&h, &Uri::from_static("/dav/a"))
    }

    #[test]
    fn destinations_on_this_server_only() {
        assert!(here("h:8080", "http://h:8080/dav/b", None));
        assert!(here("H", "http://h/dav/b", None));
        assert!(here("h", "http://h:80/dav/b", None));
        assert!(here("h", "https://h:443/dav/b", None));
        assert!(here("h", "/dav/b", None));
        assert!(here(
            "127.0.0.1:8080",
            "https://files.example/dav/b",
            Some("files.example")
        ));
        assert!(!here("h", "http://evil.example/dav/b", None));
        assert!(!here("h:8080", "http://h:8081/dav/b", None));
    }
}
