//! `CatalogLs`: dav-server's lock system, kept in the catalog so that locks
//! survive a restart, and bound to one user's namespace (two users may both
//! have a folder called `docs`; their locks never meet).
//!
//! The conflict rules are dav-server's `MemLs` rules, applied to a flat
//! list: a lock on an ancestor counts only if it is deep; an exclusive lock
//! not held by the request conflicts; shared locks conflict only with
//! exclusive ones.

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use fabric::{Fabric, Lock};
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xmltree::Element;

/// Locks of one user's namespace, in the catalog.
#[derive(Clone, Debug)]
pub struct CatalogLs {
    fabric: Fabric,
    user: String,
    /// Serialises check-then-insert in this process.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// The locks as read at the start of this request (a PROPFIND asks for
    /// the locks of every entry it lists); changes made through this value
    /// refresh it.
    cache: Arc<std::sync::Mutex<Option<Vec<DavLock>>>>,
}

impl CatalogLs {
    /// The lock system of `user`'s namespace; `gate` is shared by all of them.
    pub fn new(fabric: Fabric, user: String, gate: Arc<tokio::sync::Mutex<()>>) -> Self {
        CatalogLs {
            fabric,
            user,
            gate,
            cache: Arc::default(),
        }
    }

    async fn load(&self) -> Vec<DavLock> {
        if let Some(l) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let now = SystemTime::now();
            return l
                .iter()
                .filter(|l| l.timeout_at.is_none_or(|t| t > now))
                .cloned()
                .collect();
        }
        let locks: Vec<DavLock> = match self.fabric.locks(&self.user).await {
            Ok(rows) => rows.into_iter().filter_map(to_dav).collect(),
            Err(e) => {
                tracing::error!("webdav: cannot read locks: {e}");
                return Vec::new();
            }
        };
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(locks.clone());
        locks
    }

    /// Forgets the cached locks after a change.
    fn changed(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn segs(path: &DavPath) -> Vec<&[u8]> {
    path.as_bytes()
        .split(|c| *c == b'/')
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_prefix(a: &[&[u8]], b: &[&[u8]]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn to_dav(l: Lock) -> Option<DavLock> {
    let mut path = DavPath::new(&l.href).ok()?;
    let _ = path.set_prefix("/dav");
    Some(DavLock {
        token: l.token,
        path: Box::new(path),
        principal: l.principal,
        owner: l.owner_xml.as_deref().and_then(parse_owner).map(Box::new),
        timeout_at: l
            .expires_at
            .map(|t| UNIX_EPOCH + Duration::from_millis(t.max(0) as u64)),
        timeout: l.timeout_ms.map(|t| Duration::from_millis(t.max(0) as u64)),
        shared: l.shared,
        deep: l.deep,
    })
}

/// Reads back a stored owner element. Written alone, an element may use a
/// prefix declared on its (absent) parent, so wrap it with the DAV namespace
/// when it does not parse by itself.
fn parse_owner(xml: &[u8]) -> Option<Element> {
    // Stored from a LOCK body that passed the same check; checked again
    // because the catalog may hold rows from older versions.
    crate::xml::check_body(xml).ok()?;
    if let Ok(e) = Element::parse(xml) {
        return Some(e);
    }
    let text = std::str::from_utf8(xml).ok()?;
    let body = match text.find("?>") {
        Some(i) if text.starts_with("<?xml") => &text[i + 2..],
        _ => text,
    };
    let wrapped = format!("<glow-wrap xmlns:D=\"DAV:\" xmlns:d=\"DAV:\">{body}</glow-wrap>");
    let outer = Element::parse(wrapped.as_bytes()).ok()?;
    outer
        .children
        .into_iter()
        .find_map(|c| c.as_element().cloned())
}

/// Do the locks on `path` and its ancestors allow the request?
fn check_to(
    locks: &[DavLock],
    path: &DavPath,
    principal: Option<&str>,
    ignore: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    let target = segs(path);
    let mut holds = false;
    let mut first_shared: Option<&DavLock> = None;
    for l in locks {
        let ls = segs(&l.path);
        if !is_prefix(&ls, &target) || (ls.len() < target.len() && !l.deep) {
            continue;
        }
        if tokens.contains(&l.token) && (ignore || principal == l.principal.as_deref()) {
            holds = true;
        } else if !l.shared {
            return Err(l.clone());
        } else if !shared_ok {
            first_shared.get_or_insert(l);
        }
    }
    match first_shared {
        Some(l) if !holds => Err(l.clone()),
        _ => Ok(()),
    }
}

/// Do the locks below `path` allow a deep request?
fn check_below(
    locks: &[DavLock],
    path: &DavPath,
    principal: Option<&str>,
    ignore: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    let target = segs(path);
    for l in locks {
        let ls = segs(&l.path);
        if !is_prefix(&target, &ls) {
            continue;
        }
        let held = tokens.contains(&l.token) && (ignore || principal == l.principal.as_deref());
        if (!l.shared || !shared_ok) && !held {
            return Err(l.clone());
        }
    }
    Ok(())
}

/// A lock named by one of `tokens` that covers `path` (the path itself, or
/// below a deep lock).
fn covering<'a>(locks: &'a [DavLock], path: &DavPath, tokens: &[String]) -> Option<&'a DavLock> {
    let target = segs(path);
    locks.iter().find(|l| {
        let ls = segs(&l.path);
        tokens.contains(&l.token) && is_prefix(&ls, &target) && (l.deep || ls.len() == target.len())
    })
}

/// The lock with `token` that covers `path`.
fn find<'a>(locks: &'a [DavLock], path: &DavPath, token: &str) -> Option<&'a DavLock> {
    let target = segs(path);
    locks
        .iter()
        .find(|l| l.token == token && is_prefix(&segs(&l.path), &target))
}

impl DavLockSystem for CatalogLs {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, principal, owner) = (path.clone(), principal.map(str::to_owned), owner.cloned());
        async move {
            let _gate = self.gate.lock().await;
            let locks = self.load().await;
            check_to(&locks, &path, None, true, &[], shared)?;
            if deep {
                check_below(&locks, &path, None, true, &[], shared)?;
            }
            let lock = DavLock {
                token: uuid::Uuid::new_v4().urn().to_string(),
                path: Box::new(path.clone()),
                principal,
                owner: owner.map(Box::new),
                timeout_at: timeout.map(|d| SystemTime::now() + d),
                timeout,
                shared,
                deep,
            };
            let mut owner_xml = None;
            if let Some(o) = &lock.owner {
                let mut buf = Vec::new();
                if o.write(&mut buf).is_ok() {
                    owner_xml = Some(buf);
                }
            }
            let row = Lock {
                token: lock.token.clone(),
                owner_user: self.user.clone(),
                scope: String::from_utf8_lossy(path.as_bytes()).into_owned(),
                href: path.with_prefix().as_url_string(),
                principal: lock.principal.clone(),
                owner_xml,
                expires_at: lock.timeout_at.map(ms),
                timeout_ms: timeout.map(|d| d.as_millis() as i64),
                shared,
                deep,
            };
            self.changed();
            if let Err(e) = self.fabric.add_lock(&row).await {
                tracing::error!("webdav: cannot store a lock: {e}");
                return Err(lock);
            }
            Ok(lock)
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            let _gate = self.gate.lock().await;
            let locks = self.load().await;
            let l = find(&locks, &path, &token).ok_or(())?;
            self.changed();
            self.fabric
                .remove_locks(std::slice::from_ref(&l.token))
                .await
                .map_err(|_| ())
        }
        .boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            let _gate = self.gate.lock().await;
            let locks = self.load().await;
            let mut l = find(&locks, &path, &token).cloned().ok_or(())?;
            l.timeout = timeout;
            l.timeout_at = timeout.map(|d| SystemTime::now() + d);
            self.changed();
            self.fabric
                .refresh_lock(
                    &l.token,
                    l.timeout_at.map(ms),
                    timeout.map(|d| d.as_millis() as i64),
                )
                .await
                .map_err(|_| ())?;
            Ok(l)
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal, tokens) = (
            path.clone(),
            principal.map(str::to_owned),
            submitted_tokens.to_vec(),
        );
        async move {
            let locks = self.load().await;
            if ignore_principal {
                // Only dav-server's evaluation of an `If` header asks this
                // way, one state token at a time: the condition holds only
                // if the token names a lock that covers `path` (RFC 4918
                // §10.4), not merely when nothing is locked.
                return covering(&locks, &path, &tokens)
                    .map(|_| ())
                    .ok_or_else(|| DavLock {
                        token: String::new(),
                        path: Box::new(path.clone()),
                        principal: None,
                        owner: None,
                        timeout_at: None,
                        timeout: None,
                        shared: false,
                        deep: false,
                    });
            }
            check_to(
                &locks,
                &path,
                principal.as_deref(),
                ignore_principal,
                &tokens,
                false,
            )?;
            if deep {
                check_below(
                    &locks,
                    &path,
                    principal.as_deref(),
                    ignore_principal,
                    &tokens,
                    false,
                )?;
            }
            Ok(())
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let target = segs(&path);
            self.load()
                .await
                .into_iter()
                .filter(|l| {
                    let ls = segs(&l.path);
                    is_prefix(&ls, &target) && (ls.len() == target.len() || l.deep)
                })
                .collect()
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            let _gate = self.gate.lock().await;
            let target = segs(&path);
            let doomed: Vec<String> = self
                .load()
                .await
                .into_iter()
                .filter(|l| is_prefix(&target, &segs(&l.path)))
                .map(|l| l.token)
                .collect();
            self.changed();
            self.fabric.remove_locks(&doomed).await.map_err(|_| ())
        }
        .boxed()
    }
}
