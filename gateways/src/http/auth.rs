//! Who is calling: HTTP Basic (password or app password) or a session cookie
//! made by `POST /login`.

use super::AppState;
use super::error::HttpError;
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use fabric::Principal;
use std::net::SocketAddr;
use std::time::Duration;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "glow_session";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A signed-in caller and how they signed in.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub who: Principal,
    /// The session token when signed in with the cookie (not Basic).
    pub session: Option<String>,
}

impl Caller {
    /// The CSRF token pages embed for this caller (empty for Basic auth).
    pub fn csrf(&self) -> String {
        self.session.as_deref().map(csrf_token).unwrap_or_default()
    }
}

/// The caller of a request that signs in with HTTP Basic only (WebDAV:
/// its clients use Basic, and a browser's session cookie must not reach
/// it, so that a page cannot act there on the signed-in owner's behalf).
pub async fn basic_caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<Caller>, HttpError> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Ok(None);
    };
    let who = state
        .fabric
        .authenticate(&user, &password, peer.map(|p| p.ip()))
        .await?;
    Ok(Some(Caller { who, session: None }))
}

/// The caller of a request, if it carries credentials: HTTP Basic, or the
/// session cookie.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<Caller>, HttpError> {
    if let Some(c) = basic_caller(state, headers, peer).await? {
        return Ok(Some(c));
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return match state.fabric.session(&token).await {
            Ok(who) => Ok(Some(Caller {
                who,
                session: Some(token),
            })),
            Err(_) => Ok(None),
        };
    }
    Ok(None)
}

/// The CSRF token of a session: a hash of the (HttpOnly, secret) session
/// token, so a page can carry it and another site cannot compute it.
pub fn csrf_token(session: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"glow csrf v1\0");
    h.update(session.as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

/// Refuses a state-changing request that another site could have sent:
/// with a session cookie it must carry the session's CSRF token (header
/// `X-CSRF-Token` or form field `csrf`); with any credentials a browser
/// that says the request is cross-site is refused.
pub fn check_csrf(
    headers: &HeaderMap,
    caller: &Caller,
    form_token: Option<&str>,
) -> Result<(), HttpError> {
    check_csrf_for(headers, caller.session.as_deref(), form_token)
}

/// [`check_csrf`] for a request whose session (if any) is `session`.
fn check_csrf_for(
    headers: &HeaderMap,
    session: Option<&str>,
    form_token: Option<&str>,
) -> Result<(), HttpError> {
    let cross = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    if cross {
        return Err(HttpError::Status(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ));
    }
    if let Some(session) = session {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or(form_token);
        if sent != Some(csrf_token(session).as_str()) {
            return Err(HttpError::Status(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token; reload the page",
            ));
        }
    }
    Ok(())
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
    /// Where to go afterwards (a same-site path).
    next: Option<String>,
}

/// `POST /login`: checks the form's credentials and sets a session cookie.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, HttpError> {
    // Another site must not sign a visitor into an account of its choosing
    // (whose folders would then receive the visitor's uploads).
    check_csrf_for(&headers, None, None)?;
    let who = match state
        .fabric
        .authenticate(&form.user, &form.password, Some(peer.ip()))
        .await
    {
        Ok(who) => who,
        Err(fabric::FabricError::BadCredentials) => {
            return Ok(super::browse::login_failed(
                form.next.as_deref(),
                "Wrong user name or password.",
                StatusCode::UNAUTHORIZED,
            ));
        }
        Err(fabric::FabricError::RateLimited(secs)) => {
            let msg = format!("Too many failed attempts; try again in {secs} s.");
            let mut r = super::browse::login_failed(
                form.next.as_deref(),
                &msg,
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Ok(r);
        }
        Err(e) => return Err(e.into()),
    };
    let token = state.fabric.create_session(&who, SESSION_TTL).await?;
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let to = match super::browse::safe_next(form.next.as_deref()) {
        next if next == "/" => format!("/u/{}/", super::uri::encode_segment(who.actor())),
        next => next,
    };
    let mut r = Redirect::to(&to).into_response();
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
    req: axum::extract::Request,
) -> Result<Response, HttpError> {
    #[derive(serde::Deserialize, Default)]
    struct LogoutForm {
        csrf: Option<String>,
    }
    let headers = req.headers().clone();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        use axum::extract::FromRequest;
        Form::<LogoutForm>::from_request(req, &state)
            .await
            .map(|Form(f)| f)
            .unwrap_or_default()
    } else {
        LogoutForm::default()
    };
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        // Signing someone out is a change too: the page's token is needed.
        check_csrf_for(&headers, Some(&token), form.csrf.as_deref())?;
        state.fabric.end_session(&token).await?;
    }
    let mut r = if is_form {
        let mut r = Redirect::to("/login").into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        r
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
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
