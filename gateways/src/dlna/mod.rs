//! The LAN media front: a UPnP AV / DLNA MediaServer, so that TVs, game
//! consoles and media players on the local network find Glow with no setup
//! and play what is in the folders flagged as media — and a control point
//! that tells a TV what to play (`cast`).
//!
//! - `ssdp`: announcements and answers to searches, per interface;
//! - `description`: the device description, service descriptions, icons;
//! - `soap`, `error`: action calls in, responses and UPnP faults out;
//! - `content_directory` (with `ids`, `didl`, `profiles`, `search`),
//!   `connection_manager`, `registrar`: the three services;
//! - `gena`: event subscriptions;
//! - `media`: the files themselves over HTTP, with DLNA headers;
//! - `quirks`: what differs between TVs;
//! - `cast`: "play on TV" (rupnp control point).
//!
//! It runs on a listener of its own (plain HTTP: TVs speak nothing else,
//! whatever the web front uses), and everything it serves is authorized as
//! [`Principal::LanMedia`]: media folders only, read only. DLNA has no
//! sign-in.

pub mod cast;
mod connection_manager;
mod content_directory;
mod description;
mod didl;
mod error;
mod gena;
mod ids;
mod media;
mod profiles;
mod quirks;
mod registrar;
mod search;
mod soap;
pub mod ssdp;

use crate::http::{LocalAddr, ServeOptions};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use fabric::Fabric;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The most a SOAP request body may hold.
const MAX_SOAP_BODY: usize = 64 * 1024;
/// How long a client gets to send a SOAP body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How this node presents itself to the LAN.
#[derive(Debug, Clone)]
pub struct Options {
    /// The node's UPnP UUID (kept in the data dir; without `uuid:`).
    pub uuid: String,
    /// The name TVs show ("Glow on <hostname>" by default).
    pub name: String,
    /// The web front's address, offered as the presentation URL.
    pub presentation_url: Option<String>,
}

struct Inner {
    fabric: Fabric,
    opts: Options,
    server: String,
    gena: Arc<gena::Gena>,
    sorts: content_directory::SortCache,
}

/// The LAN media front's state. Cloning is cheap.
#[derive(Clone)]
pub struct Dlna(Arc<Inner>);

/// The `SERVER` header of every answer and announcement.
pub fn server_header() -> String {
    format!(
        "Linux/1 DLNADOC/1.50 UPnP/1.0 Glow/{}",
        env!("CARGO_PKG_VERSION")
    )
}

impl Dlna {
    /// The front over a fabric.
    pub fn new(fabric: Fabric, opts: Options) -> Dlna {
        Dlna(Arc::new(Inner {
            fabric,
            opts,
            server: server_header(),
            gena: Arc::default(),
            sorts: Default::default(),
        }))
    }

    /// The fabric.
    pub fn fabric(&self) -> &Fabric {
        &self.0.fabric
    }

    /// `http://host:port` as the client reached this listener: the address
    /// the connection came in on, so that every URL handed out works from
    /// that client's network.
    pub(crate) fn base_url(&self, req: &Parts) -> String {
        match req.extensions.get::<LocalAddr>() {
            Some(LocalAddr(SocketAddr::V6(a))) => format!("http://[{}]:{}", a.ip(), a.port()),
            Some(LocalAddr(a)) => format!("http://{a}"),
            None => {
                let host = req
                    .headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .filter(|h| {
                        h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
                    })
                    .unwrap_or("127.0.0.1");
                format!("http://{host}")
            }
        }
    }

    /// The front's routes, all under `/dlna/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/dlna/description.xml", get(description_xml))
            .route("/dlna/{scpd}", get(scpd))
            .route("/dlna/icon/{name}", get(icon))
            .route("/dlna/{service}/control", post(control))
            .route("/dlna/{service}/event", any(event))
            .route("/dlna/m/{*rest}", any(media::file))
            .route("/dlna/thumb/{*rest}", any(media::thumb))
            .route("/dlna/art/{*rest}", any(media::art))
            .route("/dlna/cast/{*rest}", any(media::cast))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .layer(axum::middleware::map_response_with_state(
                self.clone(),
                stamp,
            ))
            .layer(axum::middleware::map_response(
                crate::http::headers::protect,
            ))
            .layer(axum::middleware::from_fn(refuse_foreign_hosts))
            .layer(axum::middleware::from_fn(lan_only))
            .with_state(self.clone())
    }
}

/// Refuses clients that are not on a network this machine is on (the same
/// rule as SSDP's answers): the front has no sign-in, so on a host with a
/// public address it must not serve the Internet. Loopback, IPv4 peers on
/// the subnet of a local interface, and IPv6 link-local and unique-local
/// peers are served.
async fn lan_only(req: Request, next: axum::middleware::Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if peer.is_none_or(is_lan_peer) {
        next.run(req).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "this server answers its local network only\n",
        )
            .into_response()
    }
}

/// Whether `peer` is on a network of this machine.
fn is_lan_peer(peer: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let peer = match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match peer {
        p if p.is_loopback() => true,
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            first & 0xffc0 == 0xfe80 || first & 0xfe00 == 0xfc00
        }
        IpAddr::V4(v4) => local_subnets().iter().any(|i| i.holds(v4)),
    }
}

/// This machine's IPv4 interfaces, read again every few seconds (a laptop
/// changes networks).
fn local_subnets() -> Vec<ssdp::Interface> {
    static CACHE: std::sync::Mutex<Option<(std::time::Instant, Vec<ssdp::Interface>)>> =
        std::sync::Mutex::new(None);
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match &*c {
        Some((at, list)) if at.elapsed() < Duration::from_secs(5) => list.clone(),
        _ => {
            let list = ssdp::interfaces(std::net::Ipv4Addr::UNSPECIFIED.into());
            *c = Some((std::time::Instant::now(), list.clone()));
            list
        }
    }
}

/// Refuses requests whose `Host` is a name other than this machine's: the
/// front has no sign-in, so a web page that rebinds its own domain to this
/// node's address (DNS rebinding) could otherwise read media folders from
/// a visitor's browser. TVs use the address from the SSDP `LOCATION`, an
/// IP literal.
async fn refuse_foreign_hosts(req: Request, next: axum::middleware::Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if host.is_none_or(host_is_ours) {
        next.run(req).await
    } else {
        (StatusCode::FORBIDDEN, "unknown host name\n").into_response()
    }
}

/// Whether a `Host` value names this machine: an IP literal, `localhost`,
/// or the machine's own host name (alone or under `.local`).
fn host_is_ours(host: &str) -> bool {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map_or_else(
            || host.rsplit_once(':').map_or(host, |(n, _)| n),
            |(v6, _)| v6,
        );
    if name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let own = NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default()
    });
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".local").unwrap_or(&name);
    !own.is_empty() && name == own.as_str()
}

/// Every answer says who served it.
async fn stamp(State(dlna): State<Dlna>, mut r: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&dlna.0.server) {
        r.headers_mut().insert(header::SERVER, v);
    }
    r
}

async fn description_xml(State(dlna): State<Dlna>, req: Request) -> Response {
    let client = quirks::Client::detect(req.headers());
    let me = description::Identity {
        uuid: &dlna.0.opts.uuid,
        name: &dlna.0.opts.name,
        presentation_url: dlna.0.opts.presentation_url.as_deref(),
    };
    description::xml(description::device(&me, client))
}

async fn scpd(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "cds.xml" => description::xml(description::CDS_SCPD),
        "cms.xml" => description::xml(description::CMS_SCPD),
        "mrr.xml" => description::xml(description::MRR_SCPD),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn icon(Path(name): Path<String>) -> Response {
    description::icon(&name)
}

async fn control(State(dlna): State<Dlna>, Path(service): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !matches!(service.as_str(), "cds" | "cms" | "mrr") {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let bytes =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_SOAP_BODY)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a SOAP request holds at most 64 KiB\n",
                )
                    .into_response();
            }
            Err(_) => {
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body took too long\n",
                )
                    .into_response();
            }
        };
    let result = match soap::parse(&bytes) {
        Err(e) => Err(e),
        Ok(call) => match service.as_str() {
            "cds" => {
                let client = quirks::Client::detect(&parts.headers);
                let filter = call.arg("Filter").unwrap_or("*").to_owned();
                let cx = didl::Context::new(dlna.base_url(&parts), client, &filter);
                content_directory::control(
                    dlna.fabric(),
                    &dlna.0.sorts,
                    &call,
                    &cx,
                    client.wants_default_sort(),
                )
                .await
            }
            "cms" => connection_manager::control(&call),
            _ => registrar::control(&call),
        },
    };
    match result {
        Ok(xml) => {
            let mut r = description::xml(xml);
            r.headers_mut().insert("EXT", HeaderValue::from_static(""));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn event(State(dlna): State<Dlna>, Path(service): Path<String>, req: Request) -> Response {
    let Some(svc) = gena::Service::from_path(&service) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    dlna.0.gena.handle(
        svc,
        req.method().as_str(),
        req.headers(),
        peer,
        &dlna.0.server,
        dlna.fabric().media_update_id(),
    )
}

/// What SSDP needs to announce this front on `http` (the bound address).
pub fn ssdp_config(opts: &Options, http: SocketAddr) -> ssdp::Config {
    ssdp::Config {
        uuid: opts.uuid.clone(),
        http,
        server: server_header(),
        services: vec![
            content_directory::SERVICE.into(),
            connection_manager::SERVICE.into(),
            registrar::SERVICE.into(),
        ],
        device_type: description::DEVICE_TYPE.into(),
    }
}

/// Opens SSDP for the front on `http` (the bound address); `None`, with a
/// warning, when the SSDP port cannot be opened: the front then still
/// serves, but TVs must be given its address by hand.
pub fn bind_ssdp(opts: &Options, http: SocketAddr) -> Option<ssdp::Ssdp> {
    match ssdp::Ssdp::bind(ssdp_config(opts, http)) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "SSDP is off ({e}): TVs will not find Glow by themselves; give them http://<this host>:{}/dlna/description.xml",
                http.port()
            );
            None
        }
    }
}

/// Serves the front on `listener` and announces it with `ssdp` until
/// `shutdown`; then says goodbye on the LAN before the listener closes, and
/// lets in-flight requests finish.
pub async fn serve(
    dlna: Dlna,
    listener: tokio::net::TcpListener,
    ssdp: Option<ssdp::Ssdp>,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_ssdp, ssdp_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let ssdp = tokio::spawn(async move {
        if let Some(s) = ssdp {
            s.run(async {
                let _ = ssdp_stopped.await;
            })
            .await;
        }
    });
    let pump = tokio::spawn(gena::pump(dlna.fabric().clone(), dlna.0.gena.clone()));
    let http = tokio::spawn(crate::http::serve(listener, dlna.router(), opts, async {
        let _ = http_stopped.await;
    }));
    shutdown.await;
    let _ = stop_ssdp.send(());
    let _ = ssdp.await;
    let _ = stop_http.send(());
    let _ = http.await;
    pump.abort();
}

#[cfg(test)]
mod host_tests {
    use super::host_is_ours;

    #[test]
    fn only_addresses_and_this_machine_are_hosts() {
        for ok in [
            "10.77.0.1:8200",
            "127.0.0.1",
            "[::1]:8200",
            "[fe80::1]",
            "localhost:8200",
        ] {
            assert!(host_is_ours(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8200",
            "10.0.0.1.evil.example",
            "[::1",
            "",
        ] {
            assert!(!host_is_ours(bad), "{bad}");
        }
    }
}
