//! "Play on TV": a UPnP AV control point (rupnp) that finds MediaRenderers
//! on the LAN and tells one to play a URL — `SetAVTransportURI` with a
//! DIDL-Lite description of the item, then `Play` — and to pause, resume
//! or stop.
//!
//! The URL is Glow's own (a playback ticket on the DLNA listener), so the
//! TV fetches the file from Glow without signing in.

use super::didl;
use super::profiles;
use super::quirks::Client;
use crate::xml::escape;
use fabric::{Address, Fabric, Principal};
use futures_util::StreamExt;
use rupnp::Device;
use rupnp::ssdp::{SearchTarget, URN};
use std::net::IpAddr;
use std::time::Duration;

const RENDERER: URN = URN::device("schemas-upnp-org", "MediaRenderer", 1);
const AV_TRANSPORT: URN = URN::service("schemas-upnp-org", "AVTransport", 1);

/// A failure of "play on TV", with a message for a person.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    /// No renderer answered by that name.
    #[error(
        "no TV or renderer called {0:?} answered; `glow cast list` shows the ones on this network"
    )]
    NotFound(String),
    /// Several renderers match.
    #[error("{0:?} matches several renderers ({1}); give the whole name or the URL")]
    Ambiguous(String, String),
    /// Searching the LAN failed.
    #[error("cannot search the network for renderers: {0}")]
    Discovery(String),
    /// The renderer has no AVTransport service.
    #[error("{0} cannot be told what to play (it has no AVTransport service)")]
    NoTransport(String),
    /// The renderer refused or failed an action.
    #[error("{0} refused {1}: {2}")]
    Refused(String, &'static str, String),
    /// The file cannot be played (missing, not media, not yours).
    #[error("{0}")]
    File(#[from] fabric::FabricError),
    /// This host has no address the renderer can reach.
    #[error("cannot tell which address of this host {0} reaches")]
    NoRoute(String),
}

/// A renderer found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renderer {
    /// Its friendly name.
    pub name: String,
    /// Its maker and model.
    pub model: String,
    /// Its unique device name (`uuid:…`).
    pub udn: String,
    /// Its description URL.
    pub location: String,
}

/// Description elements read besides the required ones.
const EXTRA: &[&str] = &["manufacturer", "modelName", "UDN"];

fn describe(d: &Device) -> Renderer {
    let extra = |k| d.get_extra_property(k).unwrap_or("").trim();
    Renderer {
        name: d.friendly_name().to_owned(),
        model: format!("{} {}", extra("manufacturer"), extra("modelName"))
            .trim()
            .to_owned(),
        udn: extra("UDN").to_owned(),
        location: d.url().to_string(),
    }
}

/// Searches the LAN for renderers for about `wait` (they answer within the
/// search's 3-second window).
pub async fn discover(wait: Duration) -> Result<Vec<(Renderer, Device)>, CastError> {
    let found = rupnp::discover_with_properties(&SearchTarget::URN(RENDERER), wait, None, EXTRA)
        .await
        .map_err(|e| CastError::Discovery(e.to_string()))?;
    let mut found = std::pin::pin!(found);
    let mut out: Vec<(Renderer, Device)> = Vec::new();
    let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(deadline, found.next()).await {
            Ok(Some(Ok(d))) => {
                let r = describe(&d);
                if !out
                    .iter()
                    .any(|(o, _)| o.location == r.location || (!r.udn.is_empty() && o.udn == r.udn))
                {
                    out.push((r, d));
                }
            }
            // A device whose description cannot be read is not a renderer
            // Glow can use; the others still count.
            Ok(Some(Err(e))) => tracing::debug!("a device answered but: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// Finds one renderer by description URL, UDN, or name (exact, ignoring
/// case, else the one whose name contains it).
pub async fn find(target: &str, wait: Duration) -> Result<Device, CastError> {
    if target.starts_with("http://") {
        let uri = target
            .parse()
            .map_err(|_| CastError::NotFound(target.to_owned()))?;
        return Device::from_url_and_properties(uri, EXTRA)
            .await
            .map_err(|e| CastError::Discovery(format!("{target}: {e}")));
    }
    let all = discover(wait).await?;
    let t = target.to_lowercase();
    let exact: Vec<_> = all
        .iter()
        .filter(|(r, _)| r.udn.eq_ignore_ascii_case(target) || r.name.to_lowercase() == t)
        .collect();
    let chosen = if exact.len() == 1 {
        exact
    } else {
        all.iter()
            .filter(|(r, _)| r.name.to_lowercase().contains(&t))
            .collect()
    };
    match chosen.as_slice() {
        [(_, d)] => Ok(d.clone()),
        [] => Err(CastError::NotFound(target.to_owned())),
        many => Err(CastError::Ambiguous(
            target.to_owned(),
            many.iter()
                .map(|(r, _)| r.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// The address of this host that the renderer reaches it at (for the URL
/// it is told to fetch).
pub fn local_ip_for(device: &Device) -> Option<IpAddr> {
    let host = device
        .url()
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let port = device.url().port_u16().unwrap_or(80);
    let probe = std::net::UdpSocket::bind((
        if ip.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        },
        0,
    ))
    .ok()?;
    // Connecting a UDP socket sends nothing; it only picks the route.
    probe.connect((ip, port)).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

/// What the renderer is told about the item (`CurrentURIMetaData`): many
/// TVs refuse a URI without it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Title to show.
    pub title: String,
    /// `object.item.videoItem` and so on.
    pub class: &'static str,
    /// The resource's protocolInfo.
    pub protocol_info: String,
    /// Size in bytes.
    pub size: u64,
    /// Play time, if known.
    pub duration_ms: Option<u64>,
}

/// The DIDL-Lite document of one item at `url`.
pub fn metadata(item: &Item, url: &str) -> String {
    let mut s = String::from(
        "<DIDL-Lite xmlns=\"urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:upnp=\"urn:schemas-upnp-org:metadata-1-0/upnp/\" xmlns:dlna=\"urn:schemas-dlna-org:metadata-1-0/\"><item id=\"glow-cast\" parentID=\"-1\" restricted=\"1\"><dc:title>",
    );
    s.push_str(&escape(&item.title));
    s.push_str("</dc:title><upnp:class>");
    s.push_str(item.class);
    s.push_str("</upnp:class><res protocolInfo=\"");
    s.push_str(&escape(&item.protocol_info));
    s.push_str(&format!("\" size=\"{}\"", item.size));
    if let Some(ms) = item.duration_ms {
        s.push_str(&format!(" duration=\"{}\"", didl::duration(ms)));
    }
    s.push('>');
    s.push_str(&escape(url));
    s.push_str("</res></item></DIDL-Lite>");
    s
}

async fn transport_action(
    device: &Device,
    action: &'static str,
    args: &str,
) -> Result<std::collections::HashMap<String, String>, CastError> {
    let svc = device
        .find_service(&AV_TRANSPORT)
        .ok_or_else(|| CastError::NoTransport(device.friendly_name().to_owned()))?;
    svc.action(device.url(), action, args)
        .await
        .map_err(|e| CastError::Refused(device.friendly_name().to_owned(), action, e.to_string()))
}

/// What a renderer (whose quirks are `client`'s) is told about a file Glow
/// serves.
pub async fn file_item(
    fabric: &Fabric,
    who: &Principal,
    addr: &Address,
    client: Client,
) -> Result<Item, CastError> {
    let item = fabric.probe_media(who, addr).await?;
    Ok(Item {
        title: item.title().to_owned(),
        class: didl::class(item.kind),
        protocol_info: profiles::protocol_info(client, &item),
        size: item.entry.size,
        duration_ms: item.info.duration_ms,
    })
}

/// The URL of a file by playback ticket on the DLNA listener at `host:port`.
pub fn ticket_url(host: IpAddr, port: u16, ticket: &str, addr: &Address) -> String {
    let host = match host {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let cx = didl::Context::new(format!("http://{host}:{port}"), Client::Generic, "");
    cx.url(&format!("cast/{ticket}"), addr)
}

/// Plays a file of Glow's on a renderer: issues a ticket good for `ttl`,
/// builds the URL on the address of this host that the renderer reaches
/// (`dlna` is the DLNA listener's bound address), and tells the renderer.
/// Returns the URL.
pub async fn play_file(
    fabric: &Fabric,
    who: &Principal,
    addr: &Address,
    device: &Device,
    dlna: std::net::SocketAddr,
    ttl: Duration,
) -> Result<String, CastError> {
    let client = Client::from_description(
        device.get_extra_property("manufacturer").unwrap_or(""),
        device.get_extra_property("modelName").unwrap_or(""),
    );
    let item = file_item(fabric, who, addr, client).await?;
    let ticket = fabric.issue_ticket(who, addr, ttl).await?;
    let host = if dlna.ip().is_unspecified() {
        local_ip_for(device).ok_or_else(|| CastError::NoRoute(device.friendly_name().to_owned()))?
    } else {
        dlna.ip()
    };
    let url = ticket_url(host, dlna.port(), &ticket, addr);
    play(device, &url, &item).await?;
    Ok(url)
}

/// Tells the renderer to play `url`.
pub async fn play(device: &Device, url: &str, item: &Item) -> Result<(), CastError> {
    // Some renderers take a new URI only when stopped; "not playing" is fine.
    let _ = transport_action(device, "Stop", "<InstanceID>0</InstanceID>").await;
    let args = format!(
        "<InstanceID>0</InstanceID><CurrentURI>{}</CurrentURI><CurrentURIMetaData>{}</CurrentURIMetaData>",
        escape(url),
        escape(&metadata(item, url))
    );
    transport_action(device, "SetAVTransportURI", &args).await?;
    transport_action(device, "Play", "<InstanceID>0</InstanceID><Speed>1</Speed>").await?;
    Ok(())
}

/// What to tell a renderer that is playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Pause.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Stop.
    Stop,
}

/// Pauses, resumes or stops the renderer.
pub async fn control(device: &Device, what: Control) -> Result<(), CastError> {
    match what {
        Control::Pause => transport_action(device, "Pause", "<InstanceID>0</InstanceID>").await,
        Control::Resume => {
            transport_action(device, "Play", "<InstanceID>0</InstanceID><Speed>1</Speed>").await
        }
        Control::Stop => transport_action(device, "Stop", "<InstanceID>0</InstanceID>").await,
    }
    .map(|_| ())
}

/// What the renderer is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// `PLAYING`, `PAUSED_PLAYBACK`, `STOPPED`, `TRANSITIONING`, `NO_MEDIA_PRESENT`.
    pub state: String,
    /// The URI it was given, if it says.
    pub uri: Option<String>,
}

/// Asks the renderer what it is doing.
pub async fn transport(device: &Device) -> Result<Transport, CastError> {
    let info = transport_action(device, "GetTransportInfo", "<InstanceID>0</InstanceID>").await?;
    let media = transport_action(device, "GetMediaInfo", "<InstanceID>0</InstanceID>")
        .await
        .ok();
    Ok(Transport {
        state: info
            .get("CurrentTransportState")
            .cloned()
            .unwrap_or_default(),
        uri: media.and_then(|m| m.get("CurrentURI").cloned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_one_escaped_item() {
        let item = Item {
            title: "Tom & Jerry".into(),
            class: "object.item.videoItem",
            protocol_info: "http-get:*:video/mp4:DLNA.ORG_OP=01".into(),
            size: 42,
            duration_ms: Some(61_000),
        };
        let xml = metadata(&item, "http://10.0.0.1:8200/dlna/cast/t/a/b/c.mp4?x=1&y=2");
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let res = doc.descendants().find(|n| n.has_tag_name("res")).unwrap();
        assert_eq!(res.attribute("duration"), Some("0:01:01.000"));
        assert!(res.text().unwrap().ends_with("x=1&y=2"));
        assert!(xml.contains("<dc:title>Tom &amp; Jerry</dc:title>"));
    }
}
