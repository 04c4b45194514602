//! The HTTP front: file access under `/u/<user>/<folder>/<path>` (GET, HEAD,
//! PUT, DELETE), sign-in sessions, `/healthz`, and the listener that serves
//! it over plain TCP or TLS.

mod auth;
mod error;
mod files;
mod listing;
mod pages;
mod range;
mod serve;
mod share;
mod uri;

pub use error::HttpError;
pub use serve::{Listener, ServeOptions, serve};

use axum::Router;
use axum::routing::{any, get, post};
use overlay::Fabric;

/// Shared state of the HTTP front's handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The fabric every handler calls.
    pub fabric: Fabric,
    /// Whether the front is served over TLS (cookies get `Secure`).
    pub tls: bool,
}

/// The HTTP front's routes. Tests may call it with `oneshot`.
pub fn app(fabric: Fabric, tls: bool) -> Router {
    let state = AppState { fabric, tls };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/glow.css", get(pages::stylesheet))
        .route("/s/{token}", any(share::bare))
        .route("/s/{token}/", any(share::handle))
        .route("/s/{token}/{*rest}", any(share::handle))
        .route("/u", any(files::handle))
        .route("/u/", any(files::handle))
        .route("/u/{*rest}", any(files::handle))
        .with_state(state)
}
