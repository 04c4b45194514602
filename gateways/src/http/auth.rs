//! Who is calling: HTTP Basic (password or app password) or a session cookie
//! made by `POST /login`.

use super::AppState;
use super::error::HttpError;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use overlay::Principal;
use std::net::SocketAddr;
use std::time::Duration;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "glow_session";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// The principal of a request, or `None` if it carries no credentials.
/// Wrong credentials are an error (401, or 429 when rate-limited).
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<Principal>, HttpError> {
    if let Some((user, password)) = basic_credentials(headers) {
        let who = state
            .fabric
            .authenticate(&user, &password, peer.map(|p| p.ip()))
            .await?;
        return Ok(Some(who));
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return match state.fabric.session(&token).await {
            Ok(who) => Ok(Some(who)),
            Err(_) => Ok(None),
        };
    }
    Ok(None)
}

/// The user name and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The sign-in form.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

/// `POST /login`: checks the form's credentials and sets a session cookie.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Result<Response, HttpError> {
    let who = state
        .fabric
        .authenticate(&form.user, &form.password, Some(peer.ip()))
        .await?;
    let token = state.fabric.create_session(&who, SESSION_TTL).await?;
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut r =
        Redirect::to(&format!("/u/{}/", super::uri::encode_segment(who.actor()))).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie)
            .map_err(|_| HttpError::Status(StatusCode::INTERNAL_SERVER_ERROR, "cookie"))?,
    );
    Ok(r)
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.fabric.end_session(&token).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("glow_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cDpx"),
        );
        assert_eq!(basic_credentials(&h), Some(("alice".into(), "p:q".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; glow_session=xyz"),
        );
        assert_eq!(cookie(&h, "glow_session").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
