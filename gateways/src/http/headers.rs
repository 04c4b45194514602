//! Headers every answer of the HTTP and LAN media listeners carries, set in
//! one place (a response layer) rather than per handler, so that no route
//! that returns a file's bytes can forget them.
//!
//! Anything Glow serves is untrusted content unless it is one of Glow's own
//! pages: a response without its own `Content-Security-Policy` gets
//! `sandbox` (an HTML or SVG file from a folder, a drop box, a zip entry, a
//! version, a WebDAV GET cannot run script on Glow's origin, where the
//! session cookie lives), and every response gets `nosniff` (a browser
//! never guesses HTML out of a file served as something else). Pages set
//! [`PAGE_CSP`] themselves.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The policy of Glow's own pages: script, styles and images from Glow
/// only (no inline script), no plugins, no framing, forms post to Glow.
pub const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The policy of everything else: a sandbox (no script, no same origin).
pub const CONTENT_CSP: &str = "sandbox";

/// Adds the protective headers to a response that lacks them.
pub async fn protect(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_CSP));
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    // Share links carry their secret in the path: never send it onwards.
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    r
}
