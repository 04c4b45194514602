//! The device description (`/dlna/description.xml`), the three service
//! descriptions (SCPDs) and the icons.
//!
//! Every URL in the description is an absolute path: control points splice
//! it onto the description's own address, so the same document is right on
//! every interface.

use super::quirks::Client;
use super::soap::CONTENT_TYPE_XML;
use crate::xml::escape_into;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// ContentDirectory's SCPD.
pub const CDS_SCPD: &str = include_str!("xml/cds.xml");
/// ConnectionManager's SCPD.
pub const CMS_SCPD: &str = include_str!("xml/cms.xml");
/// X_MS_MediaReceiverRegistrar's SCPD.
pub const MRR_SCPD: &str = include_str!("xml/mrr.xml");

/// The device type Glow announces.
pub const DEVICE_TYPE: &str = "urn:schemas-upnp-org:device:MediaServer:1";

/// The icons: (path, MIME type, side, bytes).
pub const ICONS: &[(&str, &str, u32, &[u8])] = &[
    (
        "48.png",
        "image/png",
        48,
        include_bytes!("icons/icon-48.png"),
    ),
    (
        "120.png",
        "image/png",
        120,
        include_bytes!("icons/icon-120.png"),
    ),
    (
        "48.jpg",
        "image/jpeg",
        48,
        include_bytes!("icons/icon-48.jpg"),
    ),
    (
        "120.jpg",
        "image/jpeg",
        120,
        include_bytes!("icons/icon-120.jpg"),
    ),
];

/// What the description says of this server.
pub struct Identity<'a> {
    /// The node's UPnP UUID (without `uuid:`).
    pub uuid: &'a str,
    /// The name TVs show.
    pub name: &'a str,
    /// Where people manage Glow (the web front), if known.
    pub presentation_url: Option<&'a str>,
}

/// The device description for a client.
pub fn device(me: &Identity<'_>, client: Client) -> String {
    let mut s = String::with_capacity(4096);
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\" xmlns:dlna=\"urn:schemas-dlna-org:device-1-0\" xmlns:sec=\"http://www.sec.co.kr/dlna\"><specVersion><major>1</major><minor>0</minor></specVersion><device><deviceType>");
    s.push_str(DEVICE_TYPE);
    s.push_str("</deviceType><friendlyName>");
    escape_into(&mut s, me.name);
    if client.wants_wmc_model() {
        s.push_str(" : 1");
    }
    s.push_str("</friendlyName><manufacturer>Glow</manufacturer><manufacturerURL>https://github.com/glow</manufacturerURL><modelDescription>Glow media server</modelDescription><modelName>");
    if client.wants_wmc_model() {
        s.push_str("Windows Media Connect compatible (Glow)");
    } else {
        s.push_str("Glow");
    }
    s.push_str("</modelName><modelNumber>");
    s.push_str(if client.wants_wmc_model() {
        "1"
    } else {
        env!("CARGO_PKG_VERSION")
    });
    s.push_str("</modelNumber><modelURL>https://github.com/glow</modelURL><serialNumber>");
    escape_into(&mut s, &me.uuid[..me.uuid.len().min(8)]);
    s.push_str("</serialNumber><UDN>uuid:");
    escape_into(&mut s, me.uuid);
    s.push_str("</UDN><dlna:X_DLNACAP/><dlna:X_DLNADOC>DMS-1.50</dlna:X_DLNADOC><dlna:X_DLNADOC>M-DMS-1.50</dlna:X_DLNADOC><sec:ProductCap>smi,DCM10,getMediaInfo.sec,getCaptionInfo.sec</sec:ProductCap><sec:X_ProductCap>smi,DCM10,getMediaInfo.sec,getCaptionInfo.sec</sec:X_ProductCap><iconList>");
    for (path, mime, side, _) in ICONS {
        s.push_str(&format!(
            "<icon><mimetype>{mime}</mimetype><width>{side}</width><height>{side}</height><depth>24</depth><url>/dlna/icon/{path}</url></icon>"
        ));
    }
    s.push_str("</iconList><serviceList>");
    for (ty, id, name) in [
        (
            super::content_directory::SERVICE,
            "urn:upnp-org:serviceId:ContentDirectory",
            "cds",
        ),
        (
            super::connection_manager::SERVICE,
            "urn:upnp-org:serviceId:ConnectionManager",
            "cms",
        ),
        (
            super::registrar::SERVICE,
            "urn:microsoft.com:serviceId:X_MS_MediaReceiverRegistrar",
            "mrr",
        ),
    ] {
        s.push_str(&format!(
            "<service><serviceType>{ty}</serviceType><serviceId>{id}</serviceId><SCPDURL>/dlna/{name}.xml</SCPDURL><controlURL>/dlna/{name}/control</controlURL><eventSubURL>/dlna/{name}/event</eventSubURL></service>"
        ));
    }
    s.push_str("</serviceList>");
    if let Some(url) = me.presentation_url {
        s.push_str("<presentationURL>");
        escape_into(&mut s, url);
        s.push_str("</presentationURL>");
    }
    s.push_str("</device></root>\r\n");
    s
}

/// An XML answer.
pub fn xml(body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_XML),
    );
    r
}

/// An icon by its file name, or 404.
pub fn icon(name: &str) -> Response {
    match ICONS.iter().find(|(p, ..)| *p == name) {
        Some((_, mime, _, bytes)) => {
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=86400"),
            );
            r
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_well_formed() {
        let me = Identity {
            uuid: "5f0c1a2b-0000-4000-8000-000000000001",
            name: "Glow on <box> & co",
            presentation_url: Some("http://10.0.0.5:8080/"),
        };
        for client in [Client::Generic, Client::Xbox] {
            let xml = device(&me, client);
            let doc = roxmltree::Document::parse(&xml).unwrap();
            let name = doc
                .descendants()
                .find(|n| n.has_tag_name("friendlyName"))
                .unwrap();
            assert!(name.text().unwrap().starts_with("Glow on <box> & co"));
        }
        assert!(device(&me, Client::Xbox).contains("Windows Media Connect"));
        for scpd in [CDS_SCPD, CMS_SCPD, MRR_SCPD] {
            roxmltree::Document::parse(scpd).unwrap();
        }
    }
}
