//! The pages of a signed-in person: sign-in, folders, the viewer, versions,
//! trash and share links. Actions on them go through `/api/v1` (see
//! `api.rs`) from `web/static/glow.js`.

use super::AppState;
use super::auth::{Caller, caller};
use super::error::HttpError;
use super::pages::{self, Crumb, MediaKind, Row, crumbs, html};
use super::uri::encode_segment;
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use fabric::{Address, Entry, Folder, Principal};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: String,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "browse.html")]
struct BrowsePage {
    user: String,
    csrf: String,
    title: String,
    crumbs: Vec<Crumb>,
    rows: Vec<BrowseRow>,
    here: String,
    in_folder: bool,
    /// Lines under the listing (what a folder keeps copies of).
    notes: Vec<String>,
}

/// A line saying which files of a folder keep copies, and what they take.
pub async fn copies_note(state: &AppState, f: &Folder) -> String {
    let usage = match state.fabric.copies_usage(Some(f)).await {
        Ok(u) => u,
        Err(_) => return String::new(),
    };
    let size = |n: u64| pages::human_size(n);
    match f.copies {
        fabric::CopyPolicy::Off => format!("{}: {}.", f.name, f.copies.describe()),
        p => format!(
            "{}: {} ({} of {}), so that edits made on this computer are versioned too.",
            f.name,
            p.describe(),
            size(usage.used),
            size(usage.budget)
        ),
    }
}

/// A listing row with what the browse page adds.
struct BrowseRow {
    name: String,
    href: String,
    is_dir: bool,
    size: String,
    modified: String,
    icon: &'static str,
    media: bool,
    thumb: bool,
}

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    user: String,
    csrf: String,
    name: String,
    crumbs: Vec<Crumb>,
    raw: String,
    media: MediaKind,
    prev: Option<String>,
    next: Option<String>,
    /// `user/folder/path` for "Play on TV", when the LAN media front runs.
    cast: Option<String>,
}

#[derive(Template)]
#[template(path = "versions.html")]
struct VersionsPage {
    user: String,
    csrf: String,
    name: String,
    crumbs: Vec<Crumb>,
    address: String,
    versions: Vec<VersionRow>,
}

struct VersionRow {
    id: i64,
    when: String,
    size: String,
    reason: String,
    front: String,
    actor: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    user: String,
    csrf: String,
    devices: Vec<DeviceRow>,
    changes: Vec<ChangeRow>,
    pairings: Vec<super::pairing::PairingView>,
    /// The overlay runs: nearby devices can be added from here.
    can_pair: bool,
}

/// One change to what the glow shares, as the Devices page lists it.
struct ChangeRow {
    when: String,
    what: String,
    node: String,
    who: String,
    state: String,
}

struct DeviceRow {
    id: String,
    short_id: String,
    name: String,
    state: &'static str,
    link: String,
    addrs: String,
    seen: String,
    /// Heard on this LAN and not a member: it can be added.
    addable: bool,
}

#[derive(Template)]
#[template(path = "trash.html")]
struct TrashPage {
    user: String,
    csrf: String,
    items: Vec<TrashRow>,
}

struct TrashRow {
    id: i64,
    when: String,
    place: String,
    icon: &'static str,
    files: u64,
    size: String,
    actor: String,
    front: String,
}

#[derive(Template)]
#[template(path = "links.html")]
struct LinksPage {
    user: String,
    csrf: String,
    links: Vec<LinkRow>,
}

struct LinkRow {
    id: String,
    /// `None` when the link was made with another data dir.
    url: Option<String>,
    what: String,
    permission: &'static str,
    password: bool,
    state: String,
    live: bool,
    used: String,
}

/// How a listing is ordered (`?sort=name|size|date`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// By name, folders first.
    Name,
    /// Largest first.
    Size,
    /// Newest first.
    Date,
}

impl Sort {
    /// From the query string.
    pub fn from_query(q: &str) -> Sort {
        match q.split('&').find_map(|kv| kv.strip_prefix("sort=")) {
            Some("size") => Sort::Size,
            Some("date") => Sort::Date,
            _ => Sort::Name,
        }
    }
}

fn ms_to_text(ms: i64) -> String {
    pages::human_time(ms.saturating_mul(1_000_000))
}

/// True when the client is a browser that wants a page (not curl or a WebDAV client).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Where a browser without credentials is sent.
pub fn to_login(next: &str) -> Response {
    let to = format!("/login?next={}", encode_segment(next));
    let mut r = Redirect::to(&to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// `GET /`: the signed-in user's folders, or the sign-in page.
pub async fn root(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers, Some(peer)).await {
        Ok(Some(c)) => {
            Redirect::to(&format!("/u/{}/", encode_segment(c.who.actor()))).into_response()
        }
        _ => to_login("/"),
    }
}

/// The `next` parameter of the sign-in page.
#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: only a path of this site. `next` must read,
/// relative to this origin, as a URL of this origin, the way a browser
/// would read it (browsers drop tabs and newlines and take `\\` for `/`, so
/// `/\t/evil.example` leaves the site); the normalised path and query are
/// returned, and anything else gives `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let home = || "/".to_owned();
    let Some(n) = next else { return home() };
    if !n.starts_with('/')
        || n.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return home();
    }
    let base = url::Url::parse("http://glow.invalid/").expect("a valid base");
    match base.join(n) {
        // `/.//evil` normalises to the path `//evil`, which a browser
        // would again read as another host.
        Ok(u) if u.origin() == base.origin() && !u.path().starts_with("//") => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        _ => home(),
    }
}

/// `GET /login`.
pub async fn login_page(Query(q): Query<Next>) -> Response {
    html(
        StatusCode::OK,
        LoginPage {
            next: safe_next(q.next.as_deref()),
            error: None,
        },
    )
}

/// The sign-in page again, after a failure.
pub fn login_failed(next: Option<&str>, error: &str, status: StatusCode) -> Response {
    html(
        status,
        LoginPage {
            next: safe_next(next),
            error: Some(error),
        },
    )
}

async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    here: &str,
) -> Result<Caller, Response> {
    match caller(state, headers, peer).await {
        Ok(Some(c)) if matches!(c.who, Principal::User { .. }) => Ok(c),
        Ok(_) => Err(to_login(here)),
        Err(e) => Err(e.into_response()),
    }
}

/// `GET /trash`.
pub async fn trash_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let c = match signed_in(&state, &headers, Some(peer), "/trash").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let user = c.who.actor().to_owned();
    match state.fabric.trash(&c.who, &user).await {
        Ok(items) => {
            let items = items
                .into_iter()
                .map(|t| TrashRow {
                    id: t.id,
                    when: ms_to_text(t.deleted_at),
                    place: format!("{}/{}", t.folder, t.path),
                    icon: pages::icon(t.path.name(), t.kind == fabric::EntryKind::Dir),
                    files: t.files,
                    size: pages::human_size(t.size),
                    actor: t.actor,
                    front: t.front,
                })
                .collect();
            html(
                StatusCode::OK,
                TrashPage {
                    user,
                    csrf: c.csrf(),
                    items,
                },
            )
        }
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// `GET /devices`: this node and the nodes it knows of (administrators).
pub async fn devices_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let c = match signed_in(&state, &headers, Some(peer), "/devices").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let nodes = match state.fabric.node_views(&c.who).await {
        Ok(n) => n,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let changes = match state.fabric.record_changes(&c.who, None, 30).await {
        Ok(list) => list,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let name_of = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id.to_string() == id)
            .map(|n| n.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| head(id, 10))
    };
    let changes: Vec<ChangeRow> = changes
        .into_iter()
        .map(|ch| ChangeRow {
            when: ms_to_text(ch.changed_at),
            what: match ch.kind.as_str() {
                fabric::USER => format!("user {}", ch.key),
                fabric::SHARE => format!("share link {}", head(&ch.key, 8)),
                fabric::MEMBER => format!("member {}", name_of(&ch.key)),
                other => format!("{other} {}", ch.key),
            },
            node: name_of(&ch.origin),
            who: ch.changed_by,
            state: match (ch.current, ch.deleted) {
                (true, false) => "current".into(),
                (true, true) => "deleted".into(),
                (false, _) if ch.reason == "conflict" => "lost a conflict".into(),
                (false, _) => "replaced".into(),
            },
        })
        .collect();
    let devices = nodes
        .into_iter()
        .map(|n| DeviceRow {
            id: n.id.to_string(),
            short_id: n.id.short(),
            name: if n.name.is_empty() {
                "(no name)".into()
            } else {
                n.name
            },
            state: match n.state {
                fabric::NodeState::This => "this device",
                fabric::NodeState::Member if n.link.is_some() => "member, connected",
                fabric::NodeState::Member => "member, not connected",
                fabric::NodeState::Nearby => "nearby",
                fabric::NodeState::Away => "not seen now",
                fabric::NodeState::Removed => "removed",
            },
            link: match &n.link {
                Some(l) => format!(
                    "{} · {} · {:.1} ms",
                    l.class.as_str(),
                    if l.direct { "direct" } else { "relayed" },
                    l.rtt_ms
                ),
                None => "-".into(),
            },
            addrs: if n.addrs.is_empty() {
                "-".into()
            } else {
                n.addrs.join(", ")
            },
            seen: n.last_seen_ms.map_or("now".into(), ms_to_text),
            addable: n.state == fabric::NodeState::Nearby,
        })
        .collect();
    html(
        StatusCode::OK,
        DevicesPage {
            user: c.who.actor().to_owned(),
            csrf: c.csrf(),
            devices,
            changes,
            pairings: state
                .pairing
                .as_deref()
                .map(|p| p.pairings())
                .unwrap_or_default(),
            can_pair: state.pairing.is_some(),
        },
    )
}

/// `GET /links`.
pub async fn links_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let c = match signed_in(&state, &headers, Some(peer), "/links").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let user = c.who.actor().to_owned();
    let now = fabric::resource::now_ms();
    match state.fabric.shares(&c.who, Some(&user)).await {
        Ok(list) => {
            let links = list
                .into_iter()
                .map(|s| {
                    let dead = s.dead_reason(now);
                    let state = match (dead, s.expires_at) {
                        (Some(why), _) => why.trim_start_matches("this link ").to_owned(),
                        (None, Some(t)) => format!("live until {}", ms_to_text(t)),
                        (None, None) => "live".to_owned(),
                    };
                    let limit = s
                        .max_downloads
                        .map(|m| format!(" of {m}"))
                        .unwrap_or_default();
                    LinkRow {
                        url: s.token.as_ref().map(|t| format!("/s/{t}/")),
                        what: if s.path.is_root() {
                            s.folder.clone()
                        } else {
                            format!("{}/{}", s.folder, s.path)
                        },
                        permission: match s.permission {
                            fabric::SharePermission::Read => "view",
                            fabric::SharePermission::Upload => "upload only",
                            fabric::SharePermission::ReadWrite => "view and change",
                        },
                        password: s.has_password,
                        live: dead.is_none(),
                        used: format!("{} opens, {} downloads{limit}", s.uses, s.downloads),
                        state,
                        id: s.id,
                    }
                })
                .collect();
            html(
                StatusCode::OK,
                LinksPage {
                    user,
                    csrf: c.csrf(),
                    links,
                },
            )
        }
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// `/u/<user>/`: the user's folders.
pub async fn namespace_page(
    state: &AppState,
    c: &Caller,
    user: &str,
    folders: &[Arc<Folder>],
) -> Response {
    let rows = folders
        .iter()
        .map(|f| BrowseRow {
            name: f.name.clone(),
            href: format!("./{}/", encode_segment(&f.name)),
            is_dir: true,
            size: String::new(),
            modified: String::new(),
            icon: "📁",
            media: false,
            thumb: false,
        })
        .collect();
    let mut notes = Vec::new();
    for f in folders {
        notes.push(copies_note(state, f).await);
    }
    html(
        StatusCode::OK,
        BrowsePage {
            notes,
            user: c.who.actor().to_owned(),
            csrf: c.csrf(),
            title: format!("{user}'s folders"),
            crumbs: vec![Crumb {
                name: user.to_owned(),
                href: format!("/u/{}/", encode_segment(user)),
            }],
            rows,
            here: format!("{user}/"),
            in_folder: false,
        },
    )
}

/// A directory page.
pub fn dir_page(
    c: &Caller,
    addr: &Address,
    mut entries: Vec<Entry>,
    sort: Sort,
    notes: Vec<String>,
) -> Response {
    match sort {
        Sort::Name => entries.sort_by(|a, b| {
            b.is_dir()
                .cmp(&a.is_dir())
                .then_with(|| a.name.cmp(&b.name))
        }),
        Sort::Size => entries.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name))),
        Sort::Date => entries.sort_by_key(|e| std::cmp::Reverse(e.mtime_ns)),
    }
    let rows = entries
        .iter()
        .map(|e| {
            let r = Row::from_entry(e);
            let media = !e.is_dir() && pages::media_kind(&e.name) != MediaKind::Other;
            BrowseRow {
                thumb: !e.is_dir() && fabric::thumbs::can_thumbnail(&e.name),
                media,
                name: r.name,
                href: r.href,
                is_dir: r.is_dir,
                size: r.size,
                modified: r.modified,
                icon: r.icon,
            }
        })
        .collect();
    let base = format!("/u/{}/", encode_segment(&addr.user));
    let mut cr = crumbs(
        &base,
        &addr.user,
        &fabric::RelPath::parse(&addr.folder).unwrap_or_default(),
    );
    cr.extend(
        crumbs(
            &format!("{base}{}/", encode_segment(&addr.folder)),
            "",
            &addr.path,
        )
        .into_iter()
        .skip(1),
    );
    let title = if addr.path.is_root() {
        addr.folder.clone()
    } else {
        addr.path.name().to_owned()
    };
    let here = if addr.path.is_root() {
        format!("{}/{}/", addr.user, addr.folder)
    } else {
        format!("{addr}/")
    };
    html(
        StatusCode::OK,
        BrowsePage {
            user: c.who.actor().to_owned(),
            csrf: c.csrf(),
            title,
            crumbs: cr,
            rows,
            here,
            in_folder: true,
            notes,
        },
    )
}

fn file_crumbs(addr: &Address) -> Vec<Crumb> {
    let base = format!("/u/{}/", encode_segment(&addr.user));
    let mut cr = crumbs(
        &base,
        &addr.user,
        &fabric::RelPath::parse(&addr.folder).unwrap_or_default(),
    );
    cr.extend(
        crumbs(
            &format!("{base}{}/", encode_segment(&addr.folder)),
            "",
            &addr.path.parent(),
        )
        .into_iter()
        .skip(1),
    );
    cr
}

/// The viewer for an image, video or song, with its neighbours.
pub async fn viewer_page(
    state: &AppState,
    c: &Caller,
    addr: &Address,
) -> Result<Response, HttpError> {
    let name = addr.path.name().to_owned();
    let media = pages::media_kind(&name);
    let mut siblings: Vec<Entry> = state
        .fabric
        .list(&c.who, &addr.with_path(addr.path.parent()))
        .await?
        .into_iter()
        .filter(|e| !e.is_dir() && pages::media_kind(&e.name) == media)
        .collect();
    siblings.sort_by(|a, b| a.name.cmp(&b.name));
    let i = siblings.iter().position(|e| e.name == name);
    let prev = i
        .and_then(|i| i.checked_sub(1))
        .map(|j| format!("./{}", encode_segment(&siblings[j].name)));
    let next = i
        .and_then(|i| siblings.get(i + 1))
        .map(|e| format!("./{}", encode_segment(&e.name)));
    Ok(html(
        StatusCode::OK,
        ViewerPage {
            user: c.who.actor().to_owned(),
            csrf: c.csrf(),
            raw: format!("./{}", encode_segment(&name)),
            name,
            crumbs: file_crumbs(addr),
            cast: (state.dlna.is_some() && media != MediaKind::Other).then(|| addr.to_string()),
            media,
            prev,
            next,
        },
    ))
}

/// The versions of a file.
pub async fn versions_page(
    state: &AppState,
    c: &Caller,
    addr: &Address,
) -> Result<Response, HttpError> {
    let versions = state
        .fabric
        .versions(&c.who, addr)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            id: v.id,
            when: ms_to_text(v.created_at),
            size: pages::human_size(v.size),
            reason: v.reason,
            front: v.front,
            actor: v.actor,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        VersionsPage {
            user: c.who.actor().to_owned(),
            csrf: c.csrf(),
            name: addr.path.name().to_owned(),
            crumbs: file_crumbs(addr),
            address: addr.to_string(),
            versions,
        },
    ))
}

/// The first `n` characters of `text` (a cut by bytes could split one).
fn head(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        let cases = [
            (Some("/u/admin/photos/"), "/u/admin/photos/"),
            (Some("/u/admin/a%20b/?view"), "/u/admin/a%20b/?view"),
            (Some("/trash"), "/trash"),
            (None, "/"),
            (Some(""), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("//evil.example"), "/"),
            (Some("/\t/evil.example"), "/"),
            (Some("/\n/evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("/.//evil.example"), "/"),
            (Some("/./../..//evil.example"), "/"),
            (Some("/ /evil.example"), "/"),
            (Some("/x\r\nSet-Cookie: a=b"), "/"),
            (Some("javascript:alert(1)"), "/"),
        ];
        for (next, want) in cases {
            assert_eq!(safe_next(next), want, "{next:?}");
        }
    }
}
