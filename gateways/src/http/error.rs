//! The one mapping from fabric results to HTTP statuses.
//!
//! Internal failures become a bare 500; the real error is logged here and
//! never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fabric::FabricError;

/// An HTTP-level failure.
#[derive(Debug)]
pub enum HttpError {
    /// A fabric result other than success.
    Fabric(FabricError),
    /// A status with a short message for the client.
    Status(StatusCode, &'static str),
    /// A status with a message made for this request (bad input explained).
    Detail(StatusCode, String),
    /// Credentials are needed (401 with a Basic challenge).
    Unauthorized,
}

impl From<FabricError> for HttpError {
    fn from(e: FabricError) -> Self {
        HttpError::Fabric(e)
    }
}

/// The realm sent with Basic challenges (Windows and macOS accept plain ASCII).
pub const REALM: &str = "Basic realm=\"Glow\", charset=\"UTF-8\"";

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, msg): (StatusCode, String) = match self {
            HttpError::Status(s, m) => (s, m.to_owned()),
            HttpError::Detail(s, m) => (s, m),
            HttpError::Unauthorized | HttpError::Fabric(FabricError::BadCredentials) => {
                let mut r = (StatusCode::UNAUTHORIZED, "sign-in required\n").into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
                return r;
            }
            HttpError::Fabric(e) => match e {
                FabricError::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
                FabricError::Forbidden => (StatusCode::FORBIDDEN, "forbidden".into()),
                FabricError::InvalidPath(m) => (StatusCode::BAD_REQUEST, format!("bad path: {m}")),
                FabricError::AlreadyExists => {
                    (StatusCode::PRECONDITION_FAILED, "already exists".into())
                }
                FabricError::ParentMissing => (
                    StatusCode::CONFLICT,
                    "parent directory does not exist".into(),
                ),
                FabricError::WrongKind(m) => (StatusCode::CONFLICT, m.into()),
                FabricError::NotEmpty => (StatusCode::CONFLICT, "directory not empty".into()),
                FabricError::Invalid(m) => (StatusCode::BAD_REQUEST, m),
                FabricError::NoSpace => (StatusCode::INSUFFICIENT_STORAGE, "no space left".into()),
                FabricError::Gone(why) => (StatusCode::GONE, why.into()),
                FabricError::PreconditionFailed => (
                    StatusCode::PRECONDITION_FAILED,
                    "precondition failed".into(),
                ),
                FabricError::RateLimited(secs) => {
                    let mut r = (
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("too many failed sign-ins; retry in {secs} s\n"),
                    )
                        .into_response();
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    return r;
                }
                FabricError::BadCredentials => unreachable!("handled above"),
                e @ (FabricError::Io(_) | FabricError::Catalog(_) | FabricError::Migrate(_)) => {
                    tracing::error!("internal error: {e}");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
                }
            },
        };
        (status, format!("{msg}\n")).into_response()
    }
}
