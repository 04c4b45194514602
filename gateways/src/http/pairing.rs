//! Adding a nearby device from the Devices page: the HTTP side of the
//! overlay's pairing (`peers::pair`). The fronts never see the overlay; the
//! server hands them a [`DevicePairing`] when it runs one.
//!
//! `GET /api/v1/pairings` lists the pairings; `POST /api/v1/pairings`
//! (`{"node": ID}`) offers a nearby node to join; `POST
//! /api/v1/pairings/decide` (`{"id": N, "accept": true}`) answers one after
//! comparing the codes. Administrators only.

use super::AppState;
use super::api::{ApiError, ApiResult, acting, signed_in};
use super::error::HttpError;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use fabric::Principal;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One pairing, as the pages and the API show it.
#[derive(Clone, Debug, Serialize)]
pub struct PairingView {
    /// Its number on this node.
    pub id: u64,
    /// The other node's id.
    pub node: String,
    /// The other node's name.
    pub name: String,
    /// The code both devices show.
    pub code: String,
    /// This node adds the other (otherwise the other offers to add this one).
    pub outgoing: bool,
    /// `confirm` (answer now), `waiting`, `joining`, `done` or `failed`.
    pub state: &'static str,
    /// How it ended, or what it waits for, in words.
    pub detail: String,
}

/// What the server's overlay does for the Devices page.
pub trait DevicePairing: Send + Sync + 'static {
    /// The pairings open now and those that ended lately.
    fn pairings(&self) -> Vec<PairingView>;
    /// Offers nearby node `node` to join; the pairing's number, or why not.
    fn offer<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<u64, String>>;
    /// Answers pairing `id`; `false` if none waits for an answer.
    fn decide(&self, id: u64, accept: bool) -> bool;
}

/// Only administrators add devices.
async fn admin(state: &AppState, who: &Principal) -> Result<(), ApiError> {
    let ok = match who {
        Principal::System => true,
        Principal::User { name, .. } => state.fabric.user(name).await.is_ok_and(|u| u.is_admin),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError(HttpError::Status(
            StatusCode::FORBIDDEN,
            "only an administrator adds devices",
        )))
    }
}

fn pairing(state: &AppState) -> Result<&dyn DevicePairing, ApiError> {
    state.pairing.as_deref().ok_or(ApiError(HttpError::Status(
        StatusCode::SERVICE_UNAVAILABLE,
        "the overlay is off on this node (start it with --overlay)",
    )))
}

/// `GET /api/v1/pairings`.
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<PairingView>> {
    let c = signed_in(&state, &headers, peer).await?;
    admin(&state, &c.who).await?;
    Ok(Json(
        state
            .pairing
            .as_deref()
            .map(|p| p.pairings())
            .unwrap_or_default(),
    ))
}

/// The body of an offer.
#[derive(Deserialize)]
pub struct Offer {
    node: String,
}

/// The answer to an offer: its number and the code to compare.
#[derive(Serialize)]
pub struct Offered {
    id: u64,
    code: String,
}

/// `POST /api/v1/pairings`: offers a nearby node to join; answers with the
/// code to compare.
pub async fn offer(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Offer>,
) -> ApiResult<Offered> {
    let c = acting(&state, &headers, peer).await?;
    admin(&state, &c.who).await?;
    let p = pairing(&state)?;
    let id = p
        .offer(&body.node)
        .await
        .map_err(|e| ApiError(HttpError::Detail(StatusCode::CONFLICT, e)))?;
    let code = p
        .pairings()
        .into_iter()
        .find(|v| v.id == id)
        .map(|v| v.code)
        .unwrap_or_default();
    Ok(Json(Offered { id, code }))
}

/// The body of an answer.
#[derive(Deserialize)]
pub struct Decision {
    id: u64,
    accept: bool,
}

/// `POST /api/v1/pairings/decide`: the codes match (`accept`) or not.
pub async fn decide(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Decision>,
) -> ApiResult<serde_json::Value> {
    let c = acting(&state, &headers, peer).await?;
    admin(&state, &c.who).await?;
    if pairing(&state)?.decide(body.id, body.accept) {
        Ok(Json(serde_json::json!({ "ok": true })))
    } else {
        Err(ApiError(HttpError::Status(
            StatusCode::NOT_FOUND,
            "no pairing with that number waits for an answer",
        )))
    }
}
