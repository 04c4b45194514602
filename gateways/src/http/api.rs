//! The JSON API under `/api/v1`: everything the pages do, for scripts and
//! other clients. Described in `web/static/openapi.json`
//! (served at `/api/v1/openapi.json`). File content itself moves over the
//! plain HTTP front: `PUT`/`GET`/`DELETE /u/<user>/<folder>/<path>`.
//!
//! Paths in bodies are fabric addresses, `user/folder/path`. Errors are
//! `{"error": "…"}` with the status the HTML front would give.

use super::AppState;
use super::auth::{Caller, caller, check_csrf};
use super::error::HttpError;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fabric::{Address, FabricError, SharePermission};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// An API failure, rendered as JSON.
pub struct ApiError(pub(super) HttpError);

impl<E: Into<HttpError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self.0 {
            HttpError::Detail(_, m) => Some(m.clone()),
            HttpError::Status(_, m) => Some((*m).to_owned()),
            HttpError::Fabric(
                e @ (FabricError::Io(_) | FabricError::Catalog(_) | FabricError::Migrate(_)),
            ) => {
                let _ = e;
                None
            }
            HttpError::Fabric(e) => Some(e.to_string()),
            HttpError::Unauthorized => None,
        };
        let plain = self.0.into_response();
        let status = plain.status();
        let retry = plain.headers().get(header::RETRY_AFTER).cloned();
        let challenge = plain.headers().get(header::WWW_AUTHENTICATE).cloned();
        let message =
            message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        let mut r = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if let Some(v) = retry {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Some(v) = challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// Failures with a message for the person (bad input), kept verbatim.
pub(super) fn detail(e: FabricError) -> ApiError {
    match e {
        FabricError::Invalid(m) => ApiError(HttpError::Detail(StatusCode::BAD_REQUEST, m)),
        FabricError::InvalidPath(m) => ApiError(HttpError::Detail(StatusCode::BAD_REQUEST, m)),
        other => ApiError(other.into()),
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    caller(state, headers, Some(peer))
        .await?
        .ok_or(ApiError(HttpError::Unauthorized))
}

/// A state-changing call: signed in, and not forged by another site.
pub(super) async fn acting(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    let c = signed_in(state, headers, peer).await?;
    check_csrf(headers, &c, None)?;
    Ok(c)
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    let mut r = include_str!("../../../web/static/openapi.json").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Serialize)]
pub struct Me {
    user: String,
    csrf: String,
}

/// `GET /api/v1/me`: who is signed in, and the CSRF token for cookie callers.
pub async fn me(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Me> {
    let c = signed_in(&state, &headers, peer).await?;
    Ok(Json(Me {
        user: c.who.actor().to_owned(),
        csrf: c.csrf(),
    }))
}

#[derive(Serialize)]
pub struct FolderInfo {
    name: String,
    address: String,
    /// Which files keep copies of their current content: `off`, `small`, `all`.
    copies: &'static str,
    media: bool,
    /// How this replica stands with each member it syncs with.
    sync: Vec<SyncInfo>,
}

/// One member a folder syncs with, as `/api/v1/folders` shows it.
#[derive(Serialize)]
pub struct SyncInfo {
    /// The member's node id.
    node: String,
    /// Its name.
    name: String,
    /// `in-sync`, `syncing`, `failing`, `no-replica` or `not-reached`.
    state: &'static str,
    /// Files of the last batch not applied yet, and their bytes.
    left_files: i64,
    left_bytes: i64,
    /// Content bytes received from it in all.
    received_bytes: i64,
    /// When it was last asked, ms since the epoch (0: never).
    checked_ms: i64,
    /// Why the last pull failed (empty: it did not).
    error: String,
}

/// `GET /api/v1/folders`: the caller's folders.
pub async fn folders(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<FolderInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let list = state.fabric.folders(&c.who, Some(c.who.actor())).await?;
    // Member names, read as the node (they name devices, not files).
    let members = state
        .fabric
        .members(&fabric::Principal::System)
        .await
        .unwrap_or_default();
    let now = fabric::resource::now_ms();
    let mut out = Vec::with_capacity(list.len());
    for f in list.iter() {
        let address = format!("{}/{}", f.owner, f.name);
        let rows = state
            .fabric
            .sync_status(&c.who, &address)
            .await
            .unwrap_or_default();
        let sync = rows
            .into_iter()
            .map(|r| SyncInfo {
                name: members
                    .iter()
                    .find(|m| m.id.to_string() == r.peer)
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                state: r.state(now),
                node: r.peer,
                left_files: r.left_files,
                left_bytes: r.left_bytes,
                received_bytes: r.received_bytes,
                checked_ms: r.checked_at,
                error: r.error,
            })
            .collect();
        out.push(FolderInfo {
            name: f.name.clone(),
            address,
            copies: f.copies.as_str(),
            media: f.media,
            sync,
        });
    }
    Ok(Json(out))
}

/// A node, as `GET /api/v1/nodes` lists it.
#[derive(Serialize)]
pub struct NodeInfo {
    id: String,
    name: String,
    /// `this`, `member`, `nearby` (heard on the LAN now, not a member),
    /// `away` or `removed`.
    state: &'static str,
    /// Heard on the LAN now.
    nearby: bool,
    addrs: Vec<String>,
    /// When it was last heard from (`null` for this node).
    last_seen_ms: Option<i64>,
    /// This node's link to it now (members only; `null`: none).
    link: Option<LinkJson>,
}

/// A link to a member.
#[derive(Serialize)]
pub struct LinkJson {
    /// `local`, `wan` or `control` (metadata only).
    class: &'static str,
    /// `direct` or `relayed`.
    path: &'static str,
    rtt_ms: f64,
    remote: String,
}

/// `GET /api/v1/nodes`: this node, the members of its glow and the other
/// nodes it knows of (administrators).
pub async fn nodes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<NodeInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let views = state.fabric.node_views(&c.who).await?;
    Ok(Json(
        views
            .into_iter()
            .map(|n| NodeInfo {
                id: n.id.to_string(),
                name: n.name,
                state: n.state.as_str(),
                nearby: n.nearby,
                addrs: n.addrs,
                last_seen_ms: n.last_seen_ms,
                link: n.link.map(|l| LinkJson {
                    class: l.class.as_str(),
                    path: if l.direct { "direct" } else { "relayed" },
                    rtt_ms: (l.rtt_ms * 10.0).round() / 10.0,
                    remote: l.remote,
                }),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct PathQuery {
    path: String,
}

#[derive(Serialize)]
pub struct EntryInfo {
    name: String,
    path: String,
    kind: &'static str,
    size: u64,
    modified_ms: i64,
    etag: String,
}

pub(super) fn parse(path: &str) -> Result<Address, ApiError> {
    Address::parse(path).map_err(detail)
}

/// `GET /api/v1/list?path=user/folder/dir`.
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<PathQuery>,
) -> ApiResult<Vec<EntryInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let addr = parse(&q.path)?;
    let entries = state.fabric.list(&c.who, &addr).await?;
    Ok(Json(
        entries
            .iter()
            .map(|e| EntryInfo {
                name: e.name.clone(),
                path: addr.with_path(e.path.clone()).to_string(),
                kind: e.kind.as_str(),
                size: e.size,
                modified_ms: e.mtime_ns / 1_000_000,
                etag: e.etag(),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct PathBody {
    path: String,
}

#[derive(Serialize)]
pub struct Done {
    pub(super) ok: bool,
}

/// Reads a JSON body, answering malformed ones with a JSON 400.
pub(super) async fn body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
) -> Result<T, ApiError> {
    Json::<T>::from_request(req, state)
        .await
        .map(|Json(t)| t)
        .map_err(|e| ApiError(HttpError::Detail(StatusCode::BAD_REQUEST, e.body_text())))
}

pub(super) fn peer_of(req: &Request) -> SocketAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
}

/// `POST /api/v1/mkdir {"path"}`.
pub async fn mkdir(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: PathBody = body(&state, req).await?;
    state
        .fabric
        .mkdir(&c.who, &parse(&b.path)?)
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

#[derive(Deserialize)]
pub struct MoveBody {
    from: String,
    to: String,
    #[serde(default)]
    overwrite: bool,
}

/// `POST /api/v1/move {"from", "to", "overwrite"}`: rename or move.
pub async fn move_(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: MoveBody = body(&state, req).await?;
    state
        .fabric
        .rename(&c.who, &parse(&b.from)?, &parse(&b.to)?, b.overwrite, "web")
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

/// `POST /api/v1/copy {"from", "to", "overwrite"}`.
pub async fn copy(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: MoveBody = body(&state, req).await?;
    state
        .fabric
        .copy(&c.who, &parse(&b.from)?, &parse(&b.to)?, b.overwrite, "web")
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

#[derive(Serialize)]
pub struct TrashId {
    /// `null` for OS metadata files (`.DS_Store`, `._*`), removed for good.
    trash_id: Option<i64>,
}

/// `POST /api/v1/delete {"path"}`: to the trash.
pub async fn delete(State(state): State<AppState>, req: Request) -> ApiResult<TrashId> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: PathBody = body(&state, req).await?;
    let trash_id = state
        .fabric
        .delete(&c.who, &parse(&b.path)?, "web")
        .await
        .map_err(detail)?;
    Ok(Json(TrashId { trash_id }))
}

#[derive(Serialize)]
pub struct VersionInfo {
    id: i64,
    size: u64,
    replaced_ms: i64,
    reason: String,
    front: String,
    actor: String,
}

/// `GET /api/v1/versions?path=`.
pub async fn versions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<PathQuery>,
) -> ApiResult<Vec<VersionInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let list = state.fabric.versions(&c.who, &parse(&q.path)?).await?;
    Ok(Json(
        list.into_iter()
            .map(|v| VersionInfo {
                id: v.id,
                size: v.size,
                replaced_ms: v.created_at,
                reason: v.reason,
                front: v.front,
                actor: v.actor,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct RestoreBody {
    path: String,
    version: i64,
}

/// `POST /api/v1/restore {"path", "version"}`.
pub async fn restore(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: RestoreBody = body(&state, req).await?;
    state
        .fabric
        .restore_version(&c.who, &parse(&b.path)?, b.version, "web")
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

#[derive(Serialize)]
pub struct TrashInfo {
    id: i64,
    path: String,
    kind: &'static str,
    files: u64,
    size: u64,
    deleted_ms: i64,
    actor: String,
    front: String,
}

/// `GET /api/v1/trash`.
pub async fn trash(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<TrashInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let user = c.who.actor().to_owned();
    let list = state.fabric.trash(&c.who, &user).await?;
    Ok(Json(
        list.into_iter()
            .map(|t| TrashInfo {
                id: t.id,
                path: format!("{user}/{}/{}", t.folder, t.path),
                kind: t.kind.as_str(),
                files: t.files,
                size: t.size,
                deleted_ms: t.deleted_at,
                actor: t.actor,
                front: t.front,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct IdBody {
    id: Option<i64>,
}

/// `POST /api/v1/trash/restore {"id"}`.
pub async fn trash_restore(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: IdBody = body(&state, req).await?;
    let id = b.id.ok_or(ApiError(HttpError::Detail(
        StatusCode::BAD_REQUEST,
        "id is required".into(),
    )))?;
    let user = c.who.actor().to_owned();
    state
        .fabric
        .restore_trash(&c.who, &user, id, "web")
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

/// `POST /api/v1/trash/empty {"id"?}`: one item, or everything.
pub async fn trash_empty(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: IdBody = body(&state, req).await?;
    let user = c.who.actor().to_owned();
    state
        .fabric
        .purge_trash(&c.who, &user, b.id)
        .await
        .map_err(detail)?;
    Ok(Json(Done { ok: true }))
}

#[derive(Serialize)]
pub struct ShareInfo {
    id: String,
    /// `None` when the link was made with another data dir.
    url: Option<String>,
    path: String,
    permission: &'static str,
    expires_ms: Option<i64>,
    password: bool,
    max_downloads: Option<i64>,
    downloads: i64,
    opens: i64,
    live: bool,
}

impl From<fabric::Share> for ShareInfo {
    fn from(s: fabric::Share) -> Self {
        ShareInfo {
            live: s.dead_reason(fabric::resource::now_ms()).is_none(),
            url: s.token.as_ref().map(|t| format!("/s/{t}/")),
            path: s.address().to_string(),
            permission: s.permission.as_str(),
            expires_ms: s.expires_at,
            password: s.has_password,
            max_downloads: s.max_downloads,
            downloads: s.downloads,
            opens: s.uses,
            id: s.id,
        }
    }
}

/// `GET /api/v1/shares`.
pub async fn shares(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Vec<ShareInfo>> {
    let c = signed_in(&state, &headers, peer).await?;
    let user = c.who.actor().to_owned();
    Ok(Json(
        state
            .fabric
            .shares(&c.who, Some(&user))
            .await?
            .into_iter()
            .map(ShareInfo::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewShare {
    path: String,
    #[serde(default)]
    permission: Option<String>,
    expires_in: Option<u64>,
    password: Option<String>,
    max_downloads: Option<i64>,
}

/// `POST /api/v1/shares {"path", "permission", "expires_in", "password", "max_downloads"}`.
pub async fn create_share(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<ShareInfo>), ApiError> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: NewShare = body(&state, req).await?;
    let permission = match b.permission.as_deref() {
        None => SharePermission::Read,
        Some(p) => SharePermission::parse(p).ok_or(ApiError(HttpError::Detail(
            StatusCode::BAD_REQUEST,
            "permission is read, upload or readwrite".into(),
        )))?,
    };
    let opts = fabric::ShareOptions {
        permission,
        expires_at: b
            .expires_in
            .map(|s| fabric::resource::now_ms() + (s as i64).saturating_mul(1000)),
        password: b.password.filter(|p| !p.is_empty()),
        max_downloads: b.max_downloads,
    };
    let s = state
        .fabric
        .create_share(&c.who, &parse(&b.path)?, opts)
        .await
        .map_err(detail)?;
    Ok((StatusCode::CREATED, Json(ShareInfo::from(s))))
}

#[derive(Deserialize)]
pub struct RevokeBody {
    id: String,
}

/// `POST /api/v1/shares/revoke {"id"}`.
pub async fn revoke_share(State(state): State<AppState>, req: Request) -> ApiResult<Done> {
    let c = acting(&state, req.headers(), peer_of(&req)).await?;
    let b: RevokeBody = body(&state, req).await?;
    state.fabric.revoke_share(&c.who, &b.id).await?;
    Ok(Json(Done { ok: true }))
}
