//! DIDL-Lite: the XML that describes containers and items in Browse and
//! Search results (ContentDirectory:1 §2.8, DLNA guidelines 7.3), and the
//! one item sent along with "play on TV".
//!
//! Written straight into a string, one escaped value at a time; the whole
//! document is escaped once more where SOAP carries it as text.

use super::ids::Object;
use super::profiles;
use super::quirks::Client;
use crate::http::uri::encode_segment;
use crate::xml::escape_into;
use fabric::media::MediaItem;
use fabric::{Address, MediaKind};

const HEAD: &str = "<DIDL-Lite xmlns=\"urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:upnp=\"urn:schemas-upnp-org:metadata-1-0/upnp/\" xmlns:dlna=\"urn:schemas-dlna-org:metadata-1-0/\" xmlns:sec=\"http://www.sec.co.kr/\">";

/// How to write items for one request.
#[derive(Debug, Clone)]
pub struct Context {
    /// `http://host:port` as the client reached Glow: every URL starts so.
    pub base: String,
    /// The client's quirks.
    pub client: Client,
    /// Whether the Filter asks for vendor extras (`*` or a `sec:` name).
    pub extras: bool,
}

impl Context {
    /// The context for a request's `Host`, client and `Filter` argument.
    pub fn new(base: String, client: Client, filter: &str) -> Context {
        Context {
            base,
            client,
            extras: filter.contains('*') || filter.contains("sec:"),
        }
    }

    /// The URL of a file under one of the media routes (`m`, `thumb`, `art`).
    pub fn url(&self, route: &str, addr: &Address) -> String {
        let mut u = format!(
            "{}/dlna/{route}/{}/{}",
            self.base,
            encode_segment(&addr.user),
            encode_segment(&addr.folder)
        );
        for seg in addr.path.as_str().split('/').filter(|s| !s.is_empty()) {
            u.push('/');
            u.push_str(&encode_segment(seg));
        }
        u
    }
}

/// A DIDL-Lite document being written.
pub struct Didl {
    buf: String,
    /// Objects written so far.
    pub count: u32,
}

impl Default for Didl {
    fn default() -> Self {
        Didl::new()
    }
}

impl Didl {
    /// Starts a document.
    pub fn new() -> Didl {
        let mut buf = String::with_capacity(16 * 1024);
        buf.push_str(HEAD);
        Didl { buf, count: 0 }
    }

    /// Writes a container.
    pub fn container(&mut self, obj: &Object, title: &str, child_count: u32) {
        self.count += 1;
        let b = &mut self.buf;
        b.push_str("<container id=\"");
        escape_into(b, &obj.id());
        b.push_str("\" parentID=\"");
        escape_into(b, &obj.parent_id());
        b.push_str("\" restricted=\"1\" searchable=\"1\" childCount=\"");
        b.push_str(&child_count.to_string());
        b.push_str("\"><dc:title>");
        escape_into(b, title);
        b.push_str("</dc:title>");
        if *obj == Object::Root {
            b.push_str("<upnp:class>object.container</upnp:class>");
            for class in ["audioItem", "imageItem", "videoItem"] {
                b.push_str("<upnp:searchClass includeDerived=\"1\">object.item.");
                b.push_str(class);
                b.push_str("</upnp:searchClass>");
            }
        } else {
            b.push_str("<upnp:class>object.container.storageFolder</upnp:class>");
        }
        b.push_str("</container>");
    }

    /// Writes a media file as an item.
    pub fn item(&mut self, cx: &Context, obj: &Object, addr: &Address, item: &MediaItem) {
        self.count += 1;
        let info = &item.info;
        let b = &mut self.buf;
        b.push_str("<item id=\"");
        escape_into(b, &obj.id());
        b.push_str("\" parentID=\"");
        escape_into(b, &obj.parent_id());
        b.push_str("\" restricted=\"1\"><dc:title>");
        escape_into(b, item.title());
        b.push_str("</dc:title><upnp:class>");
        b.push_str(class(item.kind));
        b.push_str("</upnp:class>");
        if let Some(date) = date(item) {
            b.push_str("<dc:date>");
            b.push_str(&date);
            b.push_str("</dc:date>");
        }
        if item.kind == MediaKind::Audio {
            for (tag, value) in [
                ("upnp:artist", &info.artist),
                ("dc:creator", &info.artist),
                ("upnp:album", &info.album),
                ("upnp:genre", &info.genre),
            ] {
                if let Some(v) = value {
                    tag_into(b, tag, v);
                }
            }
            if let Some(n) = info.track {
                tag_into(b, "upnp:originalTrackNumber", &n.to_string());
            }
        }
        let dir = addr.with_path(addr.path.parent());
        let art = match (item.kind, &item.cover) {
            (MediaKind::Image, _) => Some(cx.url("thumb", addr)),
            (_, _) if info.has_cover => Some(cx.url("art", addr)),
            (_, Some(cover)) => dir
                .path
                .join(cover)
                .ok()
                .map(|p| cx.url("thumb", &dir.with_path(p))),
            _ => None,
        };
        if let Some(art) = &art {
            b.push_str("<upnp:albumArtURI dlna:profileID=\"JPEG_TN\">");
            escape_into(b, art);
            b.push_str("</upnp:albumArtURI>");
        }
        b.push_str("<res protocolInfo=\"");
        escape_into(b, &profiles::protocol_info(cx.client, item));
        b.push_str("\" size=\"");
        b.push_str(&item.entry.size.to_string());
        b.push('"');
        if let Some(ms) = info.duration_ms {
            b.push_str(" duration=\"");
            b.push_str(&duration(ms));
            b.push('"');
        }
        if let (Some(w), Some(h)) = (info.width, info.height) {
            b.push_str(&format!(" resolution=\"{w}x{h}\""));
        }
        if let Some(bits) = info.bitrate {
            let rate = if cx.client.bitrate_in_bits() {
                bits
            } else {
                bits / 8
            };
            b.push_str(&format!(" bitrate=\"{rate}\""));
        }
        if let Some(c) = info.channels {
            b.push_str(&format!(" nrAudioChannels=\"{c}\""));
        }
        if let Some(r) = info.sample_rate {
            b.push_str(&format!(" sampleFrequency=\"{r}\""));
        }
        b.push('>');
        escape_into(b, &cx.url("m", addr));
        b.push_str("</res>");
        if let Some(art) = &art {
            b.push_str("<res protocolInfo=\"http-get:*:image/jpeg:");
            b.push_str(profiles::THUMB_FEATURES);
            b.push_str("\">");
            escape_into(b, art);
            b.push_str("</res>");
        }
        if item.kind == MediaKind::Video
            && let Some(sub) = preferred_subtitle(item)
            && let Ok(sub_path) = dir.path.join(sub)
        {
            let url = cx.url("m", &dir.with_path(sub_path));
            let kind = sub.rsplit('.').next().unwrap_or("srt").to_ascii_lowercase();
            if cx.client.subtitle_res() {
                b.push_str("<res protocolInfo=\"http-get:*:");
                b.push_str(fabric::media_mime(sub));
                b.push_str(":*\">");
                escape_into(b, &url);
                b.push_str("</res>");
            }
            if cx.extras || cx.client.caption_info_always() {
                b.push_str("<sec:CaptionInfoEx sec:type=\"");
                escape_into(b, &kind);
                b.push_str("\">");
                escape_into(b, &url);
                b.push_str("</sec:CaptionInfoEx>");
            }
        }
        b.push_str("</item>");
    }

    /// Ends the document.
    pub fn finish(mut self) -> String {
        self.buf.push_str("</DIDL-Lite>");
        self.buf
    }
}

/// The subtitle offered first: SRT if there is one (every TV that reads
/// subtitles reads SRT), else the first.
pub fn preferred_subtitle(item: &MediaItem) -> Option<&str> {
    item.subtitles
        .iter()
        .find(|s| s.to_ascii_lowercase().ends_with(".srt"))
        .or(item.subtitles.first())
        .map(String::as_str)
}

/// The UPnP class of a media kind.
pub fn class(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Video => "object.item.videoItem",
        MediaKind::Audio => "object.item.audioItem.musicTrack",
        MediaKind::Image => "object.item.imageItem.photo",
    }
}

/// The title of a view.
pub fn view_title(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Video => "All videos",
        MediaKind::Audio => "All music",
        MediaKind::Image => "All photos",
    }
}

fn tag_into(b: &mut String, tag: &str, value: &str) {
    b.push('<');
    b.push_str(tag);
    b.push('>');
    escape_into(b, value);
    b.push_str("</");
    b.push_str(tag);
    b.push('>');
}

/// `dc:date`: the file's modification time (ISO 8601, UTC).
fn date(item: &MediaItem) -> Option<String> {
    let secs = item.entry.mtime_ns.div_euclid(1_000_000_000);
    let t = chrono::DateTime::from_timestamp(secs, 0)?;
    Some(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// `res@duration`: `H+:MM:SS.FFF`.
pub fn duration(ms: u64) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    format!(
        "{h}:{:02}:{:02}.{:03}",
        rest / 60_000,
        (rest / 1000) % 60,
        rest % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0:00:00.000");
        assert_eq!(duration(3_000), "0:00:03.000");
        assert_eq!(duration(2 * 3_600_000 + 5 * 60_000 + 7_250), "2:05:07.250");
    }

    #[test]
    fn containers_and_escaping() {
        let mut d = Didl::new();
        d.container(&Object::Root, "Glow", 4);
        d.container(
            &Object::Dir(Address::parse("alice/Tom & Jerry").unwrap()),
            "Tom & Jerry <3",
            2,
        );
        assert_eq!(d.count, 2);
        let xml = d.finish();
        assert!(xml.starts_with("<DIDL-Lite "));
        assert!(xml.contains("<container id=\"0\" parentID=\"-1\" restricted=\"1\" searchable=\"1\" childCount=\"4\">"));
        assert!(xml.contains("id=\"d/alice/Tom &amp; Jerry\" parentID=\"0\""));
        assert!(xml.contains("<dc:title>Tom &amp; Jerry &lt;3</dc:title>"));
        roxmltree::Document::parse(&xml).expect("well-formed");
    }
}
