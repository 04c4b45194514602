//! The renderer quirk table: what differs between TVs and players, found by
//! the request's `User-Agent` and `X-AV-Client-Info` headers.
//!
//! Gathered from minidlna's `clients.c`, Gerbera's `quirks` and supported
//! devices list, and pdlna; docs/dlna.md explains each row. Everything not
//! listed gets standard UPnP AV / DLNA behaviour.

use axum::http::HeaderMap;

/// The families of clients that need something different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Anything else: standard behaviour.
    Generic,
    /// Samsung TVs (C series on): `SEC_HHP_[TV]…` in the User-Agent.
    SamsungTv,
    /// Samsung Blu-ray players (`SEC_HHP_BD…`).
    SamsungBd,
    /// Older Samsung TVs (A/B series, `SamsungWiselinkPro`).
    SamsungLegacy,
    /// LG TVs (`LGE_DLNA_SDK`, webOS `LG Smart TV`).
    Lg,
    /// Xbox 360 / One (`Xbox`).
    Xbox,
    /// PlayStation 3 (`PLAYSTATION 3` in `X-AV-Client-Info` or the agent).
    Ps3,
    /// Sony Bravia TVs (`BRAVIA` in `X-AV-Client-Info`).
    SonyBravia,
    /// Panasonic Viera (`Panasonic MIL DLNA`).
    Panasonic,
}

impl Client {
    /// Recognises a client from its request headers.
    pub fn detect(headers: &HeaderMap) -> Client {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let ua = get("user-agent");
        let av = get("x-av-client-info");
        if ua.contains("SEC_HHP_BD") {
            Client::SamsungBd
        } else if ua.contains("SEC_HHP_") && !ua.contains("SEC_HHP_[PC]") {
            Client::SamsungTv
        } else if ua.contains("SamsungWiselinkPro") || ua.contains("Samsung DTV DMR") {
            Client::SamsungLegacy
        } else if ua.contains("LGE_DLNA_SDK")
            || ua.contains("LG Smart TV")
            || ua.contains("LGE WebOS")
        {
            Client::Lg
        } else if ua.contains("Xbox") {
            Client::Xbox
        } else if ua.contains("PLAYSTATION") || av.contains("PLAYSTATION 3") {
            Client::Ps3
        } else if av.contains("BRAVIA") || ua.contains("BRAVIA") {
            Client::SonyBravia
        } else if ua.contains("Panasonic MIL DLNA") || ua.contains("Panasonic") {
            Client::Panasonic
        } else {
            Client::Generic
        }
    }

    /// Recognises a renderer ("play on TV") from its device description's
    /// manufacturer and model name.
    pub fn from_description(manufacturer: &str, model: &str) -> Client {
        let (maker, model) = (manufacturer.to_lowercase(), model.to_lowercase());
        if maker.contains("samsung") {
            if model.contains("bd") || model.contains("blu-ray") {
                Client::SamsungBd
            } else {
                Client::SamsungTv
            }
        } else if maker.starts_with("lg") {
            Client::Lg
        } else if maker.contains("microsoft") && model.contains("xbox") {
            Client::Xbox
        } else if maker.contains("sony") && model.contains("bravia") {
            Client::SonyBravia
        } else if maker.contains("sony") && model.contains("playstation") {
            Client::Ps3
        } else if maker.contains("panasonic") {
            Client::Panasonic
        } else {
            Client::Generic
        }
    }

    /// Whether this is one of Samsung's.
    pub fn is_samsung(self) -> bool {
        matches!(
            self,
            Client::SamsungTv | Client::SamsungBd | Client::SamsungLegacy
        )
    }

    /// The MIME type to announce and serve for a file, given the standard one.
    pub fn mime(self, standard: &'static str) -> &'static str {
        match (self, standard) {
            // Samsung TVs play Matroska only when it is called this.
            (c, "video/x-matroska") if c.is_samsung() => "video/x-mkv",
            // … and QuickTime only as MP4.
            (c, "video/quicktime") if c.is_samsung() => "video/mp4",
            (Client::SamsungLegacy, "video/x-msvideo") => "video/mpeg",
            (Client::Xbox, "video/x-msvideo") => "video/avi",
            (Client::Ps3 | Client::SonyBravia, "video/x-msvideo") => "video/divx",
            // Many TVs know FLAC and WAV only by the older names.
            (_, "audio/flac") => "audio/x-flac",
            (_, "audio/wav") => "audio/x-wav",
            (_, other) => other,
        }
    }

    /// Whether a video's subtitles are offered as an extra `<res>` of type
    /// `text/srt` (LG, players, most TVs); Samsung Blu-ray players mis-handle
    /// folders holding such items, so they get the Samsung element only.
    pub fn subtitle_res(self) -> bool {
        self != Client::SamsungBd
    }

    /// Whether `sec:CaptionInfoEx` is sent whatever the Filter says.
    pub fn caption_info_always(self) -> bool {
        self.is_samsung()
    }

    /// Whether `res@bitrate` is sent in bits per second (Microsoft's
    /// reading) rather than the bytes per second UPnP AV specifies.
    pub fn bitrate_in_bits(self) -> bool {
        self == Client::Xbox
    }

    /// Whether containers are sorted before items and by title when the
    /// client asks for no order (LG and Panasonic show them in the order
    /// given, which otherwise interleaves folders and files).
    pub fn wants_default_sort(self) -> bool {
        matches!(self, Client::Lg | Client::Panasonic)
    }

    /// Whether the device description must call Glow a Windows Media Connect
    /// server (the Xbox 360 ignores anything else).
    pub fn wants_wmc_model(self) -> bool {
        self == Client::Xbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ua: &str, av: &str) -> Client {
        let mut h = HeaderMap::new();
        if !ua.is_empty() {
            h.insert("user-agent", ua.parse().unwrap());
        }
        if !av.is_empty() {
            h.insert("x-av-client-info", av.parse().unwrap());
        }
        Client::detect(&h)
    }

    #[test]
    fn table() {
        assert_eq!(
            client("DLNADOC/1.50 SEC_HHP_[TV]UE40D7000/1.0", ""),
            Client::SamsungTv
        );
        assert_eq!(
            client("DLNADOC/1.50 SEC_HHP_[PC]LPC001/1.0", ""),
            Client::Generic
        );
        assert_eq!(
            client("DLNADOC/1.50 SEC_HHP_BD-D5100/1.0", ""),
            Client::SamsungBd
        );
        assert_eq!(
            client("Linux/2.6.35 UPnP/1.0 LGE_DLNA_SDK/1.6.0 DLNADOC/1.50", ""),
            Client::Lg
        );
        assert_eq!(
            client("Xbox/2.0.4548.0 UPnP/1.0 Xbox/2.0.4548.0", ""),
            Client::Xbox
        );
        assert_eq!(
            client(
                "UPnP/1.0",
                "av=5.0; cn=\"Sony Computer Entertainment Inc.\"; mn=\"PLAYSTATION 3\""
            ),
            Client::Ps3
        );
        assert_eq!(
            client(
                "",
                "av=5.0; cn=\"Sony Corporation\"; mn=\"BRAVIA KDL-40EX720\""
            ),
            Client::SonyBravia
        );
        assert_eq!(
            client("Panasonic MIL DLNA CP UPnP/1.0 DLNADOC/1.50", ""),
            Client::Panasonic
        );
        assert_eq!(client("BubbleUPnP UPnP/1.1", ""), Client::Generic);
        assert_eq!(client("", ""), Client::Generic);
        assert_eq!(Client::SamsungTv.mime("video/x-matroska"), "video/x-mkv");
        assert_eq!(Client::Generic.mime("video/x-matroska"), "video/x-matroska");
        assert_eq!(Client::Xbox.mime("video/x-msvideo"), "video/avi");
        assert_eq!(Client::Generic.mime("audio/flac"), "audio/x-flac");
        assert!(!Client::SamsungBd.subtitle_res() && Client::Lg.subtitle_res());
        assert_eq!(
            Client::from_description("Samsung Electronics", "UE55RU7100"),
            Client::SamsungTv
        );
        assert_eq!(
            Client::from_description("LG Electronics.", "LG TV"),
            Client::Lg
        );
        assert_eq!(
            Client::from_description("Sony Corporation", "BRAVIA 4K GB"),
            Client::SonyBravia
        );
        assert_eq!(
            Client::from_description("gmrender-resurrect", "gmediarender"),
            Client::Generic
        );
    }
}
