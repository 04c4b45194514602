//! The HTTP front: file access under `/u/<user>/<folder>/<path>` (GET, HEAD,
//! PUT, DELETE), sign-in sessions, `/healthz`, and the listener that serves
//! it over plain TCP or TLS.

mod api;
mod auth;
mod browse;
mod cast;
mod error;
pub(crate) mod files;
pub(crate) mod headers;
mod pages;
pub mod pairing;
mod range;
mod serve;
mod share;
pub(crate) mod uri;
mod zip;

pub use auth::basic_caller;
pub use error::HttpError;
pub use serve::{Listener, LocalAddr, ServeOptions, Takeover, TakeoverFn, serve};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use fabric::Fabric;

/// Shared state of the HTTP front's handlers.
#[derive(Clone)]
pub struct AppState {
    /// The fabric every handler calls.
    pub fabric: Fabric,
    /// Whether the front is served over TLS (cookies get `Secure`).
    pub tls: bool,
    /// The WebDAV handler (shares its lock table between requests).
    pub dav: crate::webdav::Dav,
    /// The LAN media front's bound address, when it runs ("play on TV"
    /// hands renderers URLs on it).
    pub dlna: Option<std::net::SocketAddr>,
    /// The renderers found by the last search.
    pub renderers: cast::Renderers,
    /// The overlay's device pairing, when the server runs the overlay.
    pub pairing: Option<std::sync::Arc<dyn pairing::DevicePairing>>,
}

/// The HTTP front's routes. Tests may call it with `oneshot`. `dlna` is the
/// LAN media front's address, if it runs; `pairing`, the overlay's device
/// pairing, if it runs.
pub fn app(
    fabric: Fabric,
    tls: bool,
    dlna: Option<std::net::SocketAddr>,
    pairing: Option<std::sync::Arc<dyn pairing::DevicePairing>>,
) -> Router {
    let dav = crate::webdav::Dav::new(fabric.clone());
    let state = AppState {
        fabric,
        tls,
        dav,
        dlna,
        renderers: cast::Renderers::default(),
        pairing,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // The overlay's relay is probed here (iroh's clients ask a relay
        // for `/ping` before they make it their home).
        .route("/ping", get(|| async { "" }))
        .route("/", get(browse::root).options(crate::webdav::root_options))
        .route("/login", get(browse::login_page).post(auth::login))
        .route("/trash", get(browse::trash_page))
        .route("/links", get(browse::links_page))
        .route("/devices", get(browse::devices_page))
        .route("/static/glow.js", get(pages::script))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/folders", get(api::folders))
        .route("/api/v1/nodes", get(api::nodes))
        .route("/api/v1/pairings", get(pairing::list).post(pairing::offer))
        .route("/api/v1/pairings/decide", post(pairing::decide))
        .route("/api/v1/list", get(api::list))
        .route("/api/v1/mkdir", post(api::mkdir))
        .route("/api/v1/move", post(api::move_))
        .route("/api/v1/copy", post(api::copy))
        .route("/api/v1/delete", post(api::delete))
        .route("/api/v1/versions", get(api::versions))
        .route("/api/v1/restore", post(api::restore))
        .route("/api/v1/trash", get(api::trash))
        .route("/api/v1/trash/restore", post(api::trash_restore))
        .route("/api/v1/trash/empty", post(api::trash_empty))
        .route("/api/v1/shares", get(api::shares).post(api::create_share))
        .route("/api/v1/shares/revoke", post(api::revoke_share))
        .route("/api/v1/renderers", get(cast::renderers))
        .route("/api/v1/cast", post(cast::play))
        .route("/api/v1/cast/control", post(cast::control))
        .route("/logout", post(auth::logout))
        .route("/static/glow.css", get(pages::stylesheet))
        .route("/s/{token}", any(share::bare))
        // Uploads through links stream into the fabric, which bounds them
        // by the disk's reserve; axum's 2 MiB default would refuse a photo.
        .route(
            "/s/{token}/",
            any(share::handle).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/s/{token}/{*rest}",
            any(share::handle).layer(DefaultBodyLimit::disable()),
        )
        .route("/dav", any(crate::webdav::handle))
        .route("/dav/", any(crate::webdav::handle))
        .route("/dav/{*rest}", any(crate::webdav::handle))
        .route("/u", any(files::handle))
        .route("/u/", any(files::handle))
        .route("/u/{*rest}", any(files::handle))
        .layer(axum::middleware::map_response(headers::protect))
        .with_state(state)
}
