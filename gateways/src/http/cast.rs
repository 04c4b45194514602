//! "Play on TV" for the pages and the API: `GET /api/v1/renderers` lists
//! the TVs and renderers on the LAN, `POST /api/v1/cast` tells one to play a
//! file (fetched from the LAN media front with a playback ticket), and
//! `POST /api/v1/cast/control` pauses, resumes or stops it.
//!
//! Renderers are named by the description URL a search found, and only
//! those are contacted: a signed-in caller cannot make the server fetch
//! other URLs.

use super::AppState;
use super::api::{ApiError, ApiResult, Done, acting, body, detail, parse, peer_of, signed_in};
use super::error::HttpError;
use crate::dlna::cast::{self, CastError, Control, Renderer};
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a search waits for answers.
const SEARCH: Duration = Duration::from_secs(3);
/// How long the renderers found stay known.
const KEEP: Duration = Duration::from_secs(600);
/// How long a playback ticket made here lasts.
const TICKET: Duration = Duration::from_secs(12 * 3600);

/// The renderers found by the last search.
#[derive(Default, Clone)]
pub struct Renderers(Arc<Mutex<Vec<(Renderer, rupnp::Device, Instant)>>>);

impl Renderers {
    fn remember(&self, found: Vec<(Renderer, rupnp::Device)>) {
        let now = Instant::now();
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|(_, _, at)| at.elapsed() < KEEP);
        for (r, d) in found {
            known.retain(|(k, _, _)| k.location != r.location);
            known.push((r, d, now));
        }
    }

    fn get(&self, location: &str) -> Option<rupnp::Device> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known
            .iter()
            .find(|(r, _, at)| r.location == location && at.elapsed() < KEEP)
            .map(|(_, d, _)| d.clone())
    }
}

fn failed(e: CastError) -> ApiError {
    match e {
        CastError::File(f) => detail(f),
        other => ApiError(HttpError::Detail(
            StatusCode::BAD_GATEWAY,
            other.to_string(),
        )),
    }
}

fn dlna(state: &AppState) -> Result<SocketAddr, ApiError> {
    state.dlna.ok_or(ApiError(HttpError::Status(
        StatusCode::SERVICE_UNAVAILABLE,
        "play on TV needs the LAN media front: start glow serve without --no-dlna",
    )))
}

/// A renderer, as the API shows it.
#[derive(Serialize)]
pub struct RendererInfo {
    name: String,
    model: String,
    location: String,
}

/// `GET /api/v1/renderers`: searches the LAN (about three seconds).
pub async fn renderers(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<RendererInfo>> {
    signed_in(&state, &headers, peer).await?;
    dlna(&state)?;
    let found = cast::discover(SEARCH).await.map_err(failed)?;
    let out = found
        .iter()
        .map(|(r, _)| RendererInfo {
            name: r.name.clone(),
            model: r.model.clone(),
            location: r.location.clone(),
        })
        .collect();
    state.renderers.remember(found);
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct CastBody {
    path: String,
    renderer: String,
}

#[derive(Serialize)]
pub struct Casting {
    renderer: String,
    url: String,
}

fn known(state: &AppState, location: &str) -> Result<rupnp::Device, ApiError> {
    state
        .renderers
        .get(location)
        .ok_or(ApiError(HttpError::Status(
            StatusCode::NOT_FOUND,
            "no such renderer found lately: search again (GET /api/v1/renderers)",
        )))
}

/// `POST /api/v1/cast {"path", "renderer"}`: plays a file on a renderer
/// found by the last search.
pub async fn play(State(state): State<AppState>, req: Request) -> ApiResult<Casting> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: CastBody = body(&state, req).await?;
    let at = dlna(&state)?;
    let device = known(&state, &b.renderer)?;
    let addr = parse(&b.path)?;
    let url = cast::play_file(&state.fabric, &c.who, &addr, &device, at, TICKET)
        .await
        .map_err(failed)?;
    Ok(Json(Casting {
        renderer: device.friendly_name().to_owned(),
        url,
    }))
}

#[derive(Deserialize)]
pub struct ControlBody {
    renderer: String,
    action: String,
}

/// `POST /api/v1/cast/control {"renderer", "action": "pause|resume|stop"}`.
pub async fn control(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    acting(&state, req.headers(), peer_of(&req)).await?;
    let b: ControlBody = body(&state, req).await?;
    let what = match b.action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "stop" => Control::Stop,
        _ => {
            return Err(ApiError(HttpError::Status(
                StatusCode::BAD_REQUEST,
                "action is pause, resume or stop",
            )));
        }
    };
    let device = known(&state, &b.renderer)?;
    cast::control(&device, what).await.map_err(failed)?;
    Ok(Json(Done { ok: true }))
}
