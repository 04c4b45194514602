//! GENA eventing (UPnP Device Architecture 1.0 §4): SUBSCRIBE, renewal and
//! UNSUBSCRIBE on each service's `eventSubURL`, the initial event with
//! every evented variable, and ContentDirectory's `SystemUpdateID` and
//! `ContainerUpdateIDs` when media folders change (at most one event per
//! two seconds, as ContentDirectory:1 asks).
//!
//! Each subscription has its own delivery task and queue, so a slow or dead
//! subscriber delays only itself; events reach it in order with `SEQ`
//! counting up. Callbacks must point at the subscriber's own address
//! (no third-party hosts: the server cannot be made to send requests
//! elsewhere).

use super::connection_manager;
use crate::xml::escape_into;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest subscription granted (and what `Second-infinite` gets).
const MAX_TIMEOUT: u64 = 1800;
/// Shortest subscription granted.
const MIN_TIMEOUT: u64 = 60;
/// How many subscriptions the server keeps at once.
const MAX_SUBSCRIPTIONS: usize = 256;
/// How long one NOTIFY may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two ContentDirectory events.
pub const MODERATION: Duration = Duration::from_secs(2);

/// The evented services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// ContentDirectory.
    Cds,
    /// ConnectionManager.
    Cms,
    /// X_MS_MediaReceiverRegistrar.
    Mrr,
}

impl Service {
    /// The service by its path segment (`cds`, `cms`, `mrr`).
    pub fn from_path(name: &str) -> Option<Service> {
        match name {
            "cds" => Some(Service::Cds),
            "cms" => Some(Service::Cms),
            "mrr" => Some(Service::Mrr),
            _ => None,
        }
    }
}

struct Subscription {
    service: Service,
    expires: Instant,
    queue: mpsc::Sender<String>,
}

/// The subscriptions of this server.
#[derive(Default)]
pub struct Gena {
    subs: Mutex<HashMap<String, Subscription>>,
}

/// A property set: the body of an event. `<e:propertyset` starts a line
/// and the body ends with a line break, as line-based readers (rupnp's)
/// expect.
pub fn propertyset(vars: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">",
    );
    for (name, value) in vars {
        s.push_str("<e:property><");
        s.push_str(name);
        s.push('>');
        escape_into(&mut s, value);
        s.push_str("</");
        s.push_str(name);
        s.push_str("></e:property>");
    }
    s.push_str("</e:propertyset>\r\n");
    s
}

fn initial_event(service: Service, system_update_id: u32) -> String {
    match service {
        Service::Cds => propertyset(&[
            ("SystemUpdateID", &system_update_id.to_string()),
            ("ContainerUpdateIDs", ""),
        ]),
        Service::Cms => propertyset(&[
            (
                "SourceProtocolInfo",
                &connection_manager::source_protocol_info(),
            ),
            ("SinkProtocolInfo", ""),
            ("CurrentConnectionIDs", "0"),
        ]),
        Service::Mrr => propertyset(&[
            ("AuthorizationGrantedUpdateID", "0"),
            ("AuthorizationDeniedUpdateID", "0"),
            ("ValidationSucceededUpdateID", "0"),
            ("ValidationRevokedUpdateID", "0"),
        ]),
    }
}

fn status(code: StatusCode, why: &'static str) -> Response {
    (code, format!("{why}\n")).into_response()
}

/// A granted `TIMEOUT` from the asked one (`Second-N` or `Second-infinite`).
fn timeout(headers: &HeaderMap) -> u64 {
    headers
        .get("timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Second-"))
        .map(|n| n.parse::<u64>().unwrap_or(MAX_TIMEOUT))
        .unwrap_or(MAX_TIMEOUT)
        .clamp(MIN_TIMEOUT, MAX_TIMEOUT)
}

/// The callback URLs of a `CALLBACK: <url><url>` header, if every one is
/// plain HTTP to the subscriber's own address.
fn callbacks(value: &str, peer: IpAddr) -> Option<Vec<axum::http::Uri>> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while let Some(start) = rest.strip_prefix('<') {
        let (url, tail) = start.split_once('>')?;
        let uri: axum::http::Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        if ip != peer {
            return None;
        }
        out.push(uri);
        rest = tail.trim_start();
        if out.len() > 4 {
            return None;
        }
    }
    (rest.is_empty() && !out.is_empty()).then_some(out)
}

impl Gena {
    /// Answers SUBSCRIBE and UNSUBSCRIBE on a service's event URL.
    pub fn handle(
        &self,
        service: Service,
        method: &str,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        server: &str,
        system_update_id: u32,
    ) -> Response {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (sid, callback, nt) = (h("sid"), h("callback"), h("nt"));
        if sid.is_some() && (callback.is_some() || nt.is_some()) {
            return status(StatusCode::BAD_REQUEST, "SID goes without CALLBACK and NT");
        }
        match method {
            "SUBSCRIBE" => match sid {
                Some(sid) => self.renew(service, sid, timeout(headers), server),
                None => {
                    if nt != Some("upnp:event") {
                        return status(StatusCode::PRECONDITION_FAILED, "NT must be upnp:event");
                    }
                    let (Some(peer), Some(cb)) = (peer, callback) else {
                        return status(StatusCode::PRECONDITION_FAILED, "CALLBACK is required");
                    };
                    let Some(urls) = callbacks(cb, peer.ip()) else {
                        return status(
                            StatusCode::PRECONDITION_FAILED,
                            "CALLBACK must be <http://your-address:port/path>",
                        );
                    };
                    self.subscribe(service, urls, timeout(headers), server, system_update_id)
                }
            },
            "UNSUBSCRIBE" => {
                let Some(sid) = sid else {
                    return status(StatusCode::PRECONDITION_FAILED, "SID is required");
                };
                let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
                match subs.get(sid) {
                    Some(s) if s.service == service => {
                        subs.remove(sid);
                        StatusCode::OK.into_response()
                    }
                    _ => status(StatusCode::PRECONDITION_FAILED, "no such subscription"),
                }
            }
            _ => {
                let mut r = status(StatusCode::METHOD_NOT_ALLOWED, "SUBSCRIBE or UNSUBSCRIBE");
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("SUBSCRIBE, UNSUBSCRIBE"),
                );
                r
            }
        }
    }

    fn subscribe(
        &self,
        service: Service,
        urls: Vec<axum::http::Uri>,
        secs: u64,
        server: &str,
        system_update_id: u32,
    ) -> Response {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        subs.retain(|_, s| s.expires > now && !s.queue.is_closed());
        if subs.len() >= MAX_SUBSCRIPTIONS {
            return status(StatusCode::SERVICE_UNAVAILABLE, "too many subscriptions");
        }
        let sid = format!("uuid:{}", uuid::Uuid::new_v4());
        let (tx, rx) = mpsc::channel(16);
        // The initial event: queued now, sent once this answer is out.
        let _ = tx.try_send(initial_event(service, system_update_id));
        tokio::spawn(deliver(urls, sid.clone(), rx));
        subs.insert(
            sid.clone(),
            Subscription {
                service,
                expires: now + Duration::from_secs(secs),
                queue: tx,
            },
        );
        granted(&sid, secs, server)
    }

    fn renew(&self, service: Service, sid: &str, secs: u64, server: &str) -> Response {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match subs.get_mut(sid) {
            Some(s) if s.service == service && s.expires > now => {
                s.expires = now + Duration::from_secs(secs);
                granted(sid, secs, server)
            }
            _ => status(StatusCode::PRECONDITION_FAILED, "no such subscription"),
        }
    }

    /// Queues an event for every live subscriber of a service; forgets the
    /// expired ones.
    pub fn publish(&self, service: Service, body: &str) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        subs.retain(|_, s| s.expires > now && !s.queue.is_closed());
        for s in subs.values().filter(|s| s.service == service) {
            // A subscriber 16 events behind loses this one; the next carries
            // the current SystemUpdateID anyway.
            let _ = s.queue.try_send(body.to_owned());
        }
    }
}

fn granted(sid: &str, secs: u64, server: &str) -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(sid) {
        h.insert("SID", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("Second-{secs}")) {
        h.insert("TIMEOUT", v);
    }
    if let Ok(v) = HeaderValue::from_str(server) {
        h.insert(header::SERVER, v);
    }
    h.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
            .expect("dates are ASCII"),
    );
    r
}

/// Sends a subscription's events in order, until it ends.
async fn deliver(urls: Vec<axum::http::Uri>, sid: String, mut queue: mpsc::Receiver<String>) {
    // Let the SUBSCRIBE answer reach the subscriber first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seq: u32 = 0;
    while let Some(body) = queue.recv().await {
        let mut sent = false;
        for url in &urls {
            match tokio::time::timeout(NOTIFY_TIMEOUT, notify(url, &sid, seq, &body)).await {
                Ok(Ok(())) => {
                    sent = true;
                    break;
                }
                Ok(Err(e)) => tracing::debug!(%url, "event not delivered: {e}"),
                Err(_) => tracing::debug!(%url, "event not delivered: timed out"),
            }
        }
        if !sent {
            tracing::debug!(%sid, seq, "no callback took the event");
        }
        seq = seq.checked_add(1).unwrap_or(1);
    }
}

/// One NOTIFY request.
async fn notify(url: &axum::http::Uri, sid: &str, seq: u32, body: &str) -> Result<(), String> {
    let host = url
        .host()
        .ok_or("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host.parse().map_err(|_| "not an address")?;
    let addr = SocketAddr::new(ip, url.port_u16().unwrap_or(80));
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let authority = url.authority().map(|a| a.as_str()).unwrap_or(host);
    let req = hyper::Request::builder()
        .method(axum::http::Method::from_bytes(b"NOTIFY").expect("valid method"))
        .uri(url.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, super::soap::CONTENT_TYPE_XML)
        .header(header::CONTENT_LENGTH, body.len())
        .header("NT", "upnp:event")
        .header("NTS", "upnp:propchange")
        .header("SID", sid)
        .header("SEQ", seq.to_string())
        .header(header::CONNECTION, "close")
        .body(axum::body::Body::from(body.to_owned()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    conn.abort();
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("subscriber answered {}", resp.status()))
    }
}

/// ContentDirectory's event for a batch of changed containers.
pub fn content_event(system_update_id: u32, containers: &[(String, u32)]) -> String {
    let ids = containers
        .iter()
        // CSV: a comma or backslash inside an id is escaped.
        .map(|(id, u)| format!("{},{u}", id.replace('\\', "\\\\").replace(',', "\\,")))
        .collect::<Vec<_>>()
        .join(",");
    propertyset(&[
        ("SystemUpdateID", &system_update_id.to_string()),
        ("ContainerUpdateIDs", &ids),
    ])
}

/// Forwards the fabric's media changes to ContentDirectory subscribers,
/// at most one event per [`MODERATION`].
pub async fn pump(fabric: fabric::Fabric, gena: std::sync::Arc<Gena>) {
    let mut changes = fabric.media_changes();
    let mut last = Instant::now() - MODERATION;
    loop {
        let mut containers: HashMap<String, u32> = HashMap::new();
        let mut take = |c: fabric::media::MediaChange| {
            for (folder, path, u) in c.dirs {
                let addr = fabric::Address::new(folder.owner.clone(), folder.name.clone(), path);
                containers.insert(super::ids::Object::Dir(addr).id(), u);
            }
            for kind in fabric::MediaKind::ALL {
                containers.insert(super::ids::view_id(kind).to_owned(), c.update_id);
            }
        };
        match changes.recv().await {
            Ok(c) => take(c),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        // Gather what else arrives until the moderation interval is over.
        let ready = last + MODERATION;
        while Instant::now() < ready {
            match tokio::time::timeout_at(ready.into(), changes.recv()).await {
                Ok(Ok(c)) => take(c),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                Err(_) => break,
            }
        }
        last = Instant::now();
        let mut list: Vec<(String, u32)> = containers.into_iter().collect();
        list.sort();
        let body = content_event(fabric.media_update_id(), &list);
        gena.publish(Service::Cds, &body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_must_be_the_subscribers_own() {
        let me: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            callbacks("<http://10.0.0.2:4000/evt>", me).unwrap().len(),
            1
        );
        assert_eq!(
            callbacks("<http://10.0.0.2:4000/a><http://10.0.0.2/b>", me)
                .unwrap()
                .len(),
            2
        );
        for bad in [
            "",
            "http://10.0.0.2/evt",
            "<http://10.0.0.3:4000/evt>",
            "<http://10.0.0.2/a><http://169.254.169.254/>",
            "<https://10.0.0.2/evt>",
            "<http://example.com/evt>",
            "<http://10.0.0.2/evt",
            "<http://10.0.0.2/evt> trailing",
        ] {
            assert!(callbacks(bad, me).is_none(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_clamped() {
        let t = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("timeout", v.parse().unwrap());
            timeout(&h)
        };
        assert_eq!(t("Second-300"), 300);
        assert_eq!(t("Second-5"), MIN_TIMEOUT);
        assert_eq!(t("Second-infinite"), MAX_TIMEOUT);
        assert_eq!(t("Second-99999"), MAX_TIMEOUT);
        assert_eq!(timeout(&HeaderMap::new()), MAX_TIMEOUT);
    }

    #[test]
    fn property_sets() {
        let body = content_event(12, &[("d/a/b".into(), 12), ("videos".into(), 12)]);
        assert!(body.contains("\r\n<e:propertyset "));
        assert!(body.ends_with("</e:propertyset>\r\n"));
        assert!(body.contains("<ContainerUpdateIDs>d/a/b,12,videos,12</ContainerUpdateIDs>"));
        roxmltree::Document::parse(&body).unwrap();
    }
}
