//! ContentDirectory:1: Browse (metadata or children, paged and sorted),
//! Search, the capabilities, the system update id, and Samsung's
//! `X_GetFeatureList`.
//!
//! The tree: the root holds each media folder and the "All videos / music /
//! photos" views; folders hold their directories and media files. Every
//! list comes from the fabric's media index, so a page costs the page.

use super::didl::{self, Context, Didl};
use super::error::UpnpError;
use super::ids::{Object, view_id};
use super::search::{self, Criteria, Properties, Sort, Value};
use super::soap::{self, Call};
use crate::xml::escape;
use fabric::media::{MediaItem, MediaListing, MediaRef};
use fabric::{Address, Fabric, MediaKind, Principal, RelPath};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The service type.
pub const SERVICE: &str = "urn:schemas-upnp-org:service:ContentDirectory:1";

/// One object in a result.
#[derive(Clone)]
enum Node {
    Container {
        obj: Object,
        title: String,
        children: u32,
    },
    Item {
        obj: Object,
        addr: Address,
        item: Arc<MediaItem>,
    },
}

impl Node {
    fn write(&self, didl: &mut Didl, cx: &Context) {
        match self {
            Node::Container {
                obj,
                title,
                children,
            } => didl.container(obj, title, *children),
            Node::Item { obj, addr, item } => didl.item(cx, obj, addr, item),
        }
    }
}

impl Properties for Node {
    fn property(&self, name: &str) -> Option<Value> {
        let text = |s: &str| Some(Value::Text(s.to_owned()));
        match self {
            Node::Container { obj, title, .. } => match name {
                "@id" => text(&obj.id()),
                "@parentID" => text(&obj.parent_id()),
                "dc:title" => text(title),
                "upnp:class" => text("object.container.storageFolder"),
                _ => None,
            },
            Node::Item { obj, item, .. } => {
                let info = &item.info;
                match name {
                    "@id" => text(&obj.id()),
                    "@parentID" => text(&obj.parent_id()),
                    "dc:title" => text(item.title()),
                    "upnp:class" => text(didl::class(item.kind)),
                    "dc:creator" | "upnp:artist" => info.artist.as_deref().and_then(text),
                    "upnp:album" => info.album.as_deref().and_then(text),
                    "upnp:genre" => info.genre.as_deref().and_then(text),
                    "upnp:originalTrackNumber" => info.track.map(|n| Value::Number(n.into())),
                    "res@size" => Some(Value::Number(item.entry.size)),
                    "res@duration" => info.duration_ms.map(Value::Number),
                    "dc:date" => Some(Value::Number(item.entry.mtime_ns.max(0) as u64)),
                    _ => None,
                }
            }
        }
    }
}

/// Answers one ContentDirectory action.
pub async fn control(
    fabric: &Fabric,
    sorts: &SortCache,
    call: &Call,
    cx: &Context,
    folder_sort: bool,
) -> Result<String, UpnpError> {
    let out = |args: &[(&str, &str)]| Ok(soap::response(SERVICE, &call.action, args));
    match call.action.as_str() {
        "GetSearchCapabilities" => out(&[("SearchCaps", search::SEARCH_CAPS)]),
        "GetSortCapabilities" => out(&[("SortCaps", search::SORT_CAPS)]),
        "GetSystemUpdateID" => out(&[("Id", &fabric.media_update_id().to_string())]),
        "X_GetFeatureList" => out(&[("FeatureList", &escape(&feature_list()))]),
        "Browse" => browse(fabric, sorts, call, cx, folder_sort).await,
        "Search" => search(fabric, call, cx).await,
        _ => Err(UpnpError::InvalidAction),
    }
}

/// Samsung's feature list: where its "basic view" finds each kind.
fn feature_list() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Features xmlns=\"urn:schemas-upnp-org:av:avs\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"urn:schemas-upnp-org:av:avs http://www.upnp.org/schemas/av/avs.xsd\"><Feature name=\"samsung.com_BASICVIEW\" version=\"1\">",
    );
    for (kind, class) in [
        (MediaKind::Audio, "object.item.audioItem"),
        (MediaKind::Video, "object.item.videoItem"),
        (MediaKind::Image, "object.item.imageItem"),
    ] {
        s.push_str(&format!(
            "<container id=\"{}\" type=\"{class}\"/>",
            view_id(kind)
        ));
    }
    s.push_str("</Feature></Features>");
    s
}

struct Paging {
    start: u32,
    count: u32,
    sort: Sort,
}

fn paging(call: &Call) -> Result<Paging, UpnpError> {
    let start = call.required_u32("StartingIndex")?;
    let count = call.required_u32("RequestedCount")?;
    let sort = search::parse_sort(call.arg("SortCriteria").unwrap_or(""))?;
    Ok(Paging { start, count, sort })
}

/// The Browse/Search response for `nodes`, which start at the page asked
/// for: at most `count` of them are written.
fn respond(
    call: &Call,
    cx: &Context,
    nodes: &[Node],
    total: usize,
    count: u32,
    update_id: u32,
) -> Result<String, UpnpError> {
    let mut didl = Didl::new();
    for n in nodes.iter().take(take(count)) {
        n.write(&mut didl, cx);
    }
    let returned = didl.count;
    let result = escape(&didl.finish());
    Ok(soap::response(
        SERVICE,
        &call.action,
        &[
            ("Result", &result),
            ("NumberReturned", &returned.to_string()),
            ("TotalMatches", &total.to_string()),
            ("UpdateID", &update_id.to_string()),
        ],
    ))
}

fn take(count: u32) -> usize {
    if count == 0 {
        usize::MAX
    } else {
        count as usize
    }
}

fn compare_keys(sort: &Sort, a: &[Option<Value>], b: &[Option<Value>]) -> std::cmp::Ordering {
    struct Keys<'a>(&'a Sort, &'a [Option<Value>]);
    impl Properties for Keys<'_> {
        fn property(&self, name: &str) -> Option<Value> {
            let i = self.0.iter().position(|(p, _)| p == name)?;
            self.1[i].clone()
        }
    }
    search::compare(sort, &Keys(sort, a), &Keys(sort, b))
}

async fn browse(
    fabric: &Fabric,
    sorts: &SortCache,
    call: &Call,
    cx: &Context,
    folder_sort: bool,
) -> Result<String, UpnpError> {
    // Windows Media Player and the Xbox say ContainerID.
    let id = call
        .arg("ObjectID")
        .or_else(|| call.arg("ContainerID"))
        .ok_or(UpnpError::InvalidArgs)?;
    let flag = call.required("BrowseFlag")?;
    let mut p = paging(call)?;
    let obj = Object::parse(id.trim()).ok_or(UpnpError::NoSuchObject)?;
    match flag {
        "BrowseMetadata" => {
            let node = metadata(fabric, &obj).await?;
            respond(call, cx, &[node], 1, 0, fabric.media_update_id())
        }
        "BrowseDirectChildren" => {
            let mut sort_text = call.arg("SortCriteria").unwrap_or("").trim().to_owned();
            if p.sort.is_empty() && folder_sort {
                sort_text = "+upnp:class,+dc:title".into();
                p.sort = search::parse_sort(&sort_text).expect("valid");
            }
            let (nodes, total, update_id) = children(fabric, &obj, &p, sorts, &sort_text).await?;
            respond(call, cx, &nodes, total, p.count, update_id)
        }
        _ => Err(UpnpError::InvalidArgs),
    }
}

async fn search(fabric: &Fabric, call: &Call, cx: &Context) -> Result<String, UpnpError> {
    let id = call.required("ContainerID")?;
    let criteria = search::parse(call.required("SearchCriteria")?)?;
    let p = paging(call)?;
    let obj = Object::parse(id.trim()).ok_or(UpnpError::NoSuchObject)?;
    let mut found = Vec::new();
    match &obj {
        Object::Item { addr, .. } => {
            fabric.media_item(&Principal::LanMedia, addr).await?;
            return Err(UpnpError::NoSuchContainer);
        }
        Object::View(kind) => {
            for r in fabric.media_view(&Principal::LanMedia, *kind).await?.iter() {
                push_if(&mut found, &criteria, view_item(*kind, r));
            }
        }
        Object::Root => {
            for f in fabric.media_folders(&Principal::LanMedia).await? {
                let root = Address::new(f.owner.clone(), f.name.clone(), RelPath::root());
                walk(fabric, root, &criteria, &mut found).await?;
            }
        }
        Object::Dir(addr) => walk(fabric, addr.clone(), &criteria, &mut found).await?,
    }
    let total = found.len();
    let start = (p.start as usize).min(total);
    if !p.sort.is_empty() {
        found = sort_nodes(found, &p.sort);
    }
    respond(
        call,
        cx,
        &found[start..],
        total,
        p.count,
        fabric.media_update_id(),
    )
}

fn sort_nodes(nodes: Vec<Node>, sort: &Sort) -> Vec<Node> {
    let mut keyed: Vec<(Vec<Option<Value>>, Node)> = nodes
        .into_iter()
        .map(|n| (sort.iter().map(|(prop, _)| n.property(prop)).collect(), n))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(sort, a, b));
    keyed.into_iter().map(|(_, n)| n).collect()
}

fn push_if(out: &mut Vec<Node>, c: &Criteria, n: Node) {
    if c.matches(&n) {
        out.push(n);
    }
}

/// Everything below a directory that matches, depth first.
async fn walk(
    fabric: &Fabric,
    top: Address,
    c: &Criteria,
    out: &mut Vec<Node>,
) -> Result<(), UpnpError> {
    let mut todo = vec![top];
    while let Some(addr) = todo.pop() {
        let listing = fabric.media_dir(&Principal::LanMedia, &addr).await?;
        for (d, n) in listing.dir.dirs.iter().zip(&listing.child_counts) {
            let a = addr.with_path(d.path.clone());
            push_if(
                out,
                c,
                Node::Container {
                    obj: Object::Dir(a.clone()),
                    title: d.name.clone(),
                    children: *n,
                },
            );
            todo.push(a);
        }
        for i in &listing.dir.items {
            push_if(out, c, dir_item(&addr, i));
        }
        if out.len() > 100_000 {
            break;
        }
    }
    Ok(())
}

fn dir_item(dir: &Address, item: &Arc<MediaItem>) -> Node {
    let addr = dir.with_path(item.entry.path.clone());
    Node::Item {
        obj: Object::Item {
            view: None,
            addr: addr.clone(),
        },
        addr,
        item: item.clone(),
    }
}

fn view_item(kind: MediaKind, r: &MediaRef) -> Node {
    let addr = Address::new(
        r.folder.owner.clone(),
        r.folder.name.clone(),
        r.item.entry.path.clone(),
    );
    Node::Item {
        obj: Object::Item {
            view: Some(kind),
            addr: addr.clone(),
        },
        addr,
        item: r.item.clone(),
    }
}

/// Titles for the media folders: their names, with the owner added where
/// two users' folders share one.
async fn folder_titles(fabric: &Fabric) -> Result<Vec<(Address, String)>, UpnpError> {
    let folders = fabric.media_folders(&Principal::LanMedia).await?;
    Ok(folders
        .iter()
        .map(|f| {
            let shared = folders.iter().filter(|g| g.name == f.name).count() > 1;
            let title = if shared {
                format!("{} ({})", f.name, f.owner)
            } else {
                f.name.clone()
            };
            (
                Address::new(f.owner.clone(), f.name.clone(), RelPath::root()),
                title,
            )
        })
        .collect())
}

fn count(l: &MediaListing) -> u32 {
    (l.dir.dirs.len() + l.dir.items.len()) as u32
}

async fn metadata(fabric: &Fabric, obj: &Object) -> Result<Node, UpnpError> {
    let lan = Principal::LanMedia;
    Ok(match obj {
        Object::Root => Node::Container {
            obj: Object::Root,
            title: "Glow".into(),
            children: folder_titles(fabric).await?.len() as u32 + 3,
        },
        Object::View(kind) => Node::Container {
            obj: obj.clone(),
            title: didl::view_title(*kind).into(),
            children: fabric.media_view(&lan, *kind).await?.len() as u32,
        },
        Object::Dir(addr) => {
            let listing = fabric.media_dir(&lan, addr).await?;
            let title = if addr.path.is_root() {
                folder_titles(fabric)
                    .await?
                    .into_iter()
                    .find(|(a, _)| a == addr)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| addr.folder.clone())
            } else {
                addr.path.name().to_owned()
            };
            Node::Container {
                obj: obj.clone(),
                title,
                children: count(&listing),
            }
        }
        Object::Item { view, addr } => {
            let item = fabric.media_item(&lan, addr).await?;
            if view.is_some_and(|k| k != item.kind) {
                return Err(UpnpError::NoSuchObject);
            }
            Node::Item {
                obj: obj.clone(),
                addr: addr.clone(),
                item,
            }
        }
    })
}

/// A container's children, addressable by position.
enum Children {
    /// A few, made up front (the root).
    Made(Vec<Node>),
    /// A view.
    View(MediaKind, Arc<Vec<MediaRef>>),
    /// A directory: its subdirectories, then its media files.
    Dir(Address, MediaListing),
}

impl Children {
    fn len(&self) -> usize {
        match self {
            Children::Made(v) => v.len(),
            Children::View(_, v) => v.len(),
            Children::Dir(_, l) => l.dir.dirs.len() + l.dir.items.len(),
        }
    }

    fn node(&self, i: usize) -> Node {
        match self {
            Children::Made(v) => v[i].clone(),
            Children::View(kind, v) => view_item(*kind, &v[i]),
            Children::Dir(addr, l) => match l.dir.dirs.get(i) {
                Some(d) => Node::Container {
                    obj: Object::Dir(addr.with_path(d.path.clone())),
                    title: d.name.clone(),
                    children: l.child_counts[i],
                },
                None => dir_item(addr, &l.dir.items[i - l.dir.dirs.len()]),
            },
        }
    }
}

/// Sorted orders of recent containers: a TV pages through one listing with
/// the same criteria, so the sort is done once per listing and version,
/// not once per page.
#[derive(Default)]
pub struct SortCache(Mutex<VecDeque<SortedOrder>>);

/// A container and sort criteria, the version of the listing, and the
/// positions of its children in sorted order.
type SortedOrder = (String, u32, Arc<Vec<u32>>);

/// How many sorted orders are kept.
const SORTS_KEPT: usize = 8;

impl SortCache {
    fn order(&self, key: String, version: u32, children: &Children, sort: &Sort) -> Arc<Vec<u32>> {
        {
            let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, _, o)) = cache.iter().find(|(k, v, _)| *k == key && *v == version) {
                return o.clone();
            }
        }
        let keys: Vec<Vec<Option<Value>>> = (0..children.len())
            .map(|i| {
                let n = children.node(i);
                sort.iter().map(|(prop, _)| n.property(prop)).collect()
            })
            .collect();
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_by(|a, b| compare_keys(sort, &keys[*a as usize], &keys[*b as usize]));
        let order = Arc::new(order);
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(k, _, _)| *k != key);
        if cache.len() >= SORTS_KEPT {
            cache.pop_front();
        }
        cache.push_back((key, version, order.clone()));
        order
    }
}

/// The page of a container's children asked for: only those nodes are
/// made (a 10,000-file directory costs 100 nodes per page, sorted or not).
async fn children(
    fabric: &Fabric,
    obj: &Object,
    p: &Paging,
    sorts: &SortCache,
    sort_text: &str,
) -> Result<(Vec<Node>, usize, u32), UpnpError> {
    let lan = Principal::LanMedia;
    let (list, update_id) = match obj {
        Object::Root => {
            let mut nodes = Vec::new();
            for (addr, title) in folder_titles(fabric).await? {
                let listing = fabric.media_dir(&lan, &addr).await?;
                nodes.push(Node::Container {
                    obj: Object::Dir(addr),
                    title,
                    children: count(&listing),
                });
            }
            for kind in MediaKind::ALL {
                nodes.push(Node::Container {
                    obj: Object::View(kind),
                    title: didl::view_title(kind).into(),
                    children: fabric.media_view(&lan, kind).await?.len() as u32,
                });
            }
            (Children::Made(nodes), fabric.media_update_id())
        }
        Object::View(kind) => (
            Children::View(*kind, fabric.media_view(&lan, *kind).await?),
            fabric.media_update_id(),
        ),
        Object::Dir(addr) => {
            let listing = fabric.media_dir(&lan, addr).await?;
            let update_id = listing.dir.update_id;
            (Children::Dir(addr.clone(), listing), update_id)
        }
        Object::Item { addr, .. } => {
            fabric.media_item(&lan, addr).await?;
            return Err(UpnpError::NoSuchContainer);
        }
    };
    let total = list.len();
    let start = (p.start as usize).min(total);
    let end = start.saturating_add(take(p.count)).min(total);
    let nodes = if p.sort.is_empty() {
        (start..end).map(|i| list.node(i)).collect()
    } else {
        let key = format!("{}\0{sort_text}", obj.id());
        let order = sorts.order(key, update_id, &list, &p.sort);
        order[start..end]
            .iter()
            .map(|&i| list.node(i as usize))
            .collect()
    };
    Ok((nodes, total, update_id))
}
