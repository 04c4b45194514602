//! DLNA media profiles and `protocolInfo` strings (DLNA guidelines 7.4 with
//! the choices minidlna makes): `http-get:*:<mime>:<fourth field>`, where
//! the fourth field names the profile (`DLNA.ORG_PN`) when Glow is sure of
//! it, says byte seeking works (`DLNA.ORG_OP=01`), that the file is not
//! transcoded (`DLNA.ORG_CI=0`) and the transfer flags.
//!
//! A wrong profile makes strict TVs refuse a file that they would play, so a
//! profile is only named when the facts read from the headers fit it;
//! otherwise it is left out and the rest stays.

use super::quirks::Client;
use fabric::media::{AudioCodec, MediaItem, VideoCodec};
use fabric::{MediaKind, media_mime};

/// Flags for audio and video: DLNA 1.5, streaming transfer mode,
/// background transfer mode, connection stalling.
pub const FLAGS_AV: &str = "01700000000000000000000000000000";
/// Flags for images: DLNA 1.5, interactive and background transfer mode,
/// connection stalling.
pub const FLAGS_IMAGE: &str = "00F00000000000000000000000000000";

/// The fourth field for a JPEG thumbnail made by Glow (converted content).
pub const THUMB_FEATURES: &str =
    "DLNA.ORG_PN=JPEG_TN;DLNA.ORG_CI=1;DLNA.ORG_FLAGS=00F00000000000000000000000000000";

/// Every protocolInfo Glow serves, for ConnectionManager's `Source`.
pub const SOURCE_PROTOCOLS: &[&str] = &[
    "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_HP_HD_AAC",
    "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_MP_SD_AAC_MULT5",
    "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_MP_HD_720p_AAC",
    "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_MP_HD_1080i_AAC",
    "http-get:*:video/mp4:DLNA.ORG_PN=AVC_MP4_BL_CIF15_AAC_520",
    "http-get:*:audio/mpeg:DLNA.ORG_PN=MP3",
    "http-get:*:audio/mpeg:DLNA.ORG_PN=MP3X",
    "http-get:*:audio/mp4:DLNA.ORG_PN=AAC_ISO_320",
    "http-get:*:audio/mp4:DLNA.ORG_PN=AAC_ISO",
    "http-get:*:image/jpeg:DLNA.ORG_PN=JPEG_TN",
    "http-get:*:image/jpeg:DLNA.ORG_PN=JPEG_SM",
    "http-get:*:image/jpeg:DLNA.ORG_PN=JPEG_MED",
    "http-get:*:image/jpeg:DLNA.ORG_PN=JPEG_LRG",
    "http-get:*:image/png:DLNA.ORG_PN=PNG_TN",
    "http-get:*:image/png:DLNA.ORG_PN=PNG_LRG",
    "http-get:*:video/mp4:*",
    "http-get:*:video/quicktime:*",
    "http-get:*:video/x-matroska:*",
    "http-get:*:video/x-mkv:*",
    "http-get:*:video/webm:*",
    "http-get:*:video/x-msvideo:*",
    "http-get:*:video/mpeg:*",
    "http-get:*:video/mp2t:*",
    "http-get:*:audio/mpeg:*",
    "http-get:*:audio/mp4:*",
    "http-get:*:audio/x-flac:*",
    "http-get:*:audio/ogg:*",
    "http-get:*:audio/x-wav:*",
    "http-get:*:image/jpeg:*",
    "http-get:*:image/png:*",
    "http-get:*:image/gif:*",
    "http-get:*:text/srt:*",
];

/// The DLNA profile of a media file, when its facts fit one.
pub fn profile(item: &MediaItem) -> Option<&'static str> {
    let info = &item.info;
    let ext = item
        .entry
        .name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match item.kind {
        MediaKind::Image => {
            let (w, h) = (info.width?, info.height?);
            match ext.as_str() {
                "jpg" | "jpeg" => Some(if w <= 160 && h <= 160 {
                    "JPEG_TN"
                } else if w <= 640 && h <= 480 {
                    "JPEG_SM"
                } else if w <= 1024 && h <= 768 {
                    "JPEG_MED"
                } else if w <= 4096 && h <= 4096 {
                    "JPEG_LRG"
                } else {
                    return None;
                }),
                "png" => Some(if w <= 160 && h <= 160 {
                    "PNG_TN"
                } else if w <= 4096 && h <= 4096 {
                    "PNG_LRG"
                } else {
                    return None;
                }),
                _ => None,
            }
        }
        MediaKind::Audio => match (info.audio_codec?, ext.as_str()) {
            (AudioCodec::Mp3, "mp3") => match info.sample_rate {
                Some(32000 | 44100 | 48000) => Some("MP3"),
                Some(_) => Some("MP3X"),
                None => None,
            },
            (AudioCodec::Aac, "m4a") => {
                let small = info.bitrate.is_some_and(|b| b <= 320_000)
                    && info.channels.is_some_and(|c| c <= 2);
                Some(if small { "AAC_ISO_320" } else { "AAC_ISO" })
            }
            _ => None,
        },
        MediaKind::Video => {
            if !matches!(ext.as_str(), "mp4" | "m4v") {
                return None;
            }
            let VideoCodec::H264 { profile, .. } = info.video_codec.as_ref()? else {
                return None;
            };
            if info.audio_codec.is_some_and(|a| a != AudioCodec::Aac) {
                return None;
            }
            let (w, h) = (info.width?, info.height?);
            match profile {
                100 if w <= 1920 && h <= 1080 => Some("AVC_MP4_HP_HD_AAC"),
                66 if w <= 352 && h <= 288 => Some("AVC_MP4_BL_CIF15_AAC_520"),
                66 | 77 if w <= 720 && h <= 576 => Some("AVC_MP4_MP_SD_AAC_MULT5"),
                77 if w <= 1280 && h <= 720 => Some("AVC_MP4_MP_HD_720p_AAC"),
                77 if w <= 1920 && h <= 1080 => Some("AVC_MP4_MP_HD_1080i_AAC"),
                _ => None,
            }
        }
    }
}

/// The fourth field of a media file's protocolInfo, which is also its
/// `contentFeatures.dlna.org` header.
pub fn features(item: &MediaItem) -> String {
    let flags = if item.kind == MediaKind::Image {
        FLAGS_IMAGE
    } else {
        FLAGS_AV
    };
    match profile(item) {
        Some(pn) => format!("DLNA.ORG_PN={pn};DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS={flags}"),
        None => format!("DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS={flags}"),
    }
}

/// The MIME type of a file for this client.
pub fn mime(client: Client, name: &str) -> &'static str {
    client.mime(media_mime(name))
}

/// A media file's protocolInfo for this client.
pub fn protocol_info(client: Client, item: &MediaItem) -> String {
    format!(
        "http-get:*:{}:{}",
        mime(client, &item.entry.name),
        features(item)
    )
}

/// The fourth field for a file served by name only (subtitles, covers):
/// byte seeking, no profile.
pub fn plain_features(name: &str) -> String {
    let flags = if media_mime(name).starts_with("image/") || media_mime(name).starts_with("text/") {
        FLAGS_IMAGE
    } else {
        FLAGS_AV
    };
    format!("DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS={flags}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric::media::MediaInfo;
    use fabric::{Entry, EntryKind, RelPath};
    use std::sync::Arc;

    fn item(name: &str, kind: MediaKind, info: MediaInfo) -> MediaItem {
        MediaItem {
            entry: Entry {
                path: RelPath::parse(name).unwrap(),
                name: name.into(),
                kind: EntryKind::File,
                size: 1,
                mtime_ns: 0,
                inode: 1,
                mode: 0o644,
            },
            kind,
            info: Arc::new(info),
            subtitles: vec![],
            cover: None,
        }
    }

    #[test]
    fn profiles() {
        let jpeg = |w, h| {
            item(
                "p.jpg",
                MediaKind::Image,
                MediaInfo {
                    width: Some(w),
                    height: Some(h),
                    ..MediaInfo::default()
                },
            )
        };
        assert_eq!(profile(&jpeg(160, 120)), Some("JPEG_TN"));
        assert_eq!(profile(&jpeg(640, 480)), Some("JPEG_SM"));
        assert_eq!(profile(&jpeg(1024, 768)), Some("JPEG_MED"));
        assert_eq!(profile(&jpeg(4000, 3000)), Some("JPEG_LRG"));
        assert_eq!(profile(&jpeg(8000, 6000)), None);
        let video = |name: &str, profile: u8, w, h, audio| {
            item(
                name,
                MediaKind::Video,
                MediaInfo {
                    width: Some(w),
                    height: Some(h),
                    video_codec: Some(VideoCodec::H264 { profile, level: 40 }),
                    audio_codec: Some(audio),
                    ..MediaInfo::default()
                },
            )
        };
        assert_eq!(
            profile(&video("a.mp4", 100, 1920, 1080, AudioCodec::Aac)),
            Some("AVC_MP4_HP_HD_AAC")
        );
        assert_eq!(
            profile(&video("a.mp4", 77, 720, 576, AudioCodec::Aac)),
            Some("AVC_MP4_MP_SD_AAC_MULT5")
        );
        assert_eq!(
            profile(&video("a.mp4", 77, 1280, 720, AudioCodec::Aac)),
            Some("AVC_MP4_MP_HD_720p_AAC")
        );
        assert_eq!(
            profile(&video("a.mp4", 100, 3840, 2160, AudioCodec::Aac)),
            None
        );
        assert_eq!(
            profile(&video("a.mp4", 100, 1920, 1080, AudioCodec::Ac3)),
            None
        );
        assert_eq!(
            profile(&video("a.mkv", 100, 1920, 1080, AudioCodec::Aac)),
            None
        );
        let mp3 = item(
            "s.mp3",
            MediaKind::Audio,
            MediaInfo {
                audio_codec: Some(AudioCodec::Mp3),
                sample_rate: Some(44100),
                ..MediaInfo::default()
            },
        );
        assert_eq!(profile(&mp3), Some("MP3"));
        assert_eq!(
            protocol_info(Client::Generic, &mp3),
            "http-get:*:audio/mpeg:DLNA.ORG_PN=MP3;DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
        );
        let mkv = video("m.mkv", 100, 1920, 1080, AudioCodec::Aac);
        assert_eq!(
            protocol_info(Client::SamsungTv, &mkv),
            "http-get:*:video/x-mkv:DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000"
        );
    }
}
