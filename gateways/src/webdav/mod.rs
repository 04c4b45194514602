//! The WebDAV front: `/dav/` on the HTTP port, built on dav-server with
//! [`fs::GlowDavFs`] over the fabric (no second path to the disk). The
//! signed-in user sees their folders as top-level collections.
//!
//! Sign-in is HTTP Basic (password or app password, rate-limited like
//! every front) or the web session cookie.
//!
//! Class 1 and 2: locks live in the catalog (`locks.rs`) and survive a
//! restart; dead properties live in the catalog too.

mod error;
pub mod fs;
pub mod locks;

use crate::http::auth_caller;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav_server::DavHandler;
use overlay::{Fabric, Principal};
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
    let caller = match auth_caller(&state, req.headers(), peer).await {
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
    // dav-server refuses Depth: infinity PROPFIND with 501; RFC 4918 §9.1
    // says 403 with the propfind-finite-depth precondition, which clients
    // understand as "ask level by level".
    let infinite_propfind = req.method().as_str() == "PROPFIND"
        && req
            .headers()
            .get("depth")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|d| d.eq_ignore_ascii_case("infinity"));
    let name = caller.who.actor().to_owned();
    let mut r = state
        .dav
        .handler_for(&name)
        .handle_guarded(req, name.clone(), caller.who)
        .await;
    if infinite_propfind && r.status() == StatusCode::NOT_IMPLEMENTED {
        *r.status_mut() = StatusCode::FORBIDDEN;
    }
    // macOS Finder and Windows look for this to offer a writable mount.
    r.headers_mut()
        .entry(header::HeaderName::from_static("ms-author-via"))
        .or_insert(HeaderValue::from_static("DAV"));
    r.map(Body::new)
}
