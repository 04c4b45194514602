//! Media facts read from a file's headers, with crates: `lofty` for audio
//! (MP3, FLAC, M4A, Ogg, WAV, …), `mp4` for MP4/MOV video, `matroska` for
//! MKV/WebM, `image` for picture dimensions. No decoding, no ffmpeg: each
//! probe reads headers only (the MP4 reader seeks over the media data).
//!
//! A file these crates cannot read still shows, with what the name and size
//! tell. The parsers are third-party code fed arbitrary files, so every probe
//! runs under `catch_unwind`: a parser's panic costs that file's facts, not
//! the server.

use super::MediaKind;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

/// A reader of its own over `file`, from its start (each parser reads from
/// the top; the file was opened below the folder's root by the caller).
fn fresh(file: &File) -> Option<File> {
    let mut f = file.try_clone().ok()?;
    f.seek(SeekFrom::Start(0)).ok()?;
    Some(f)
}

/// What Glow knows about a media file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// Play time, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Picture width in pixels (video, images).
    pub width: Option<u32>,
    /// Picture height in pixels (video, images).
    pub height: Option<u32>,
    /// Overall bitrate, in bits per second.
    pub bitrate: Option<u32>,
    /// Audio sample rate, in Hz.
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u8>,
    /// The video track's codec.
    pub video_codec: Option<VideoCodec>,
    /// The (first) audio track's codec.
    pub audio_codec: Option<AudioCodec>,
    /// Title from the tags.
    pub title: Option<String>,
    /// Artist from the tags.
    pub artist: Option<String>,
    /// Album from the tags.
    pub album: Option<String>,
    /// Genre from the tags.
    pub genre: Option<String>,
    /// Track number from the tags.
    pub track: Option<u32>,
    /// Year from the tags.
    pub year: Option<u16>,
    /// The tags hold a cover picture ([`crate::Fabric::media_cover`]).
    pub has_cover: bool,
}

/// A video codec, with what DLNA profiles need to know of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264/AVC with its `profile_idc` (66 baseline, 77 main, 100 high)
    /// and `level_idc` (31 = 3.1).
    H264 {
        /// `profile_idc` from the AVC configuration.
        profile: u8,
        /// `level_idc` from the AVC configuration.
        level: u8,
    },
    /// H.265/HEVC.
    Hevc,
    /// VP8 or VP9.
    Vp,
    /// AV1.
    Av1,
    /// Something else (the container's codec id).
    Other(String),
}

/// An audio codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC.
    Aac,
    /// MPEG-1/2 Layer III.
    Mp3,
    /// FLAC.
    Flac,
    /// Dolby AC-3 or E-AC-3.
    Ac3,
    /// Vorbis or Opus.
    Vorbis,
    /// Uncompressed PCM.
    Pcm,
    /// Something else.
    Other,
}

/// Reads what can be read of a media file's headers (`name` is its name,
/// for the container its extension says). Blocking.
pub fn probe(file: &File, name: &str, kind: MediaKind) -> MediaInfo {
    let run = || match kind {
        MediaKind::Audio => audio(file),
        MediaKind::Image => image(file),
        MediaKind::Video => video(file, name),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Some(info)) => info,
        Ok(None) => MediaInfo::default(),
        Err(_) => {
            tracing::debug!(name, "a media parser panicked on this file");
            MediaInfo::default()
        }
    }
}

/// The cover picture in an audio file's tags: MIME type and bytes. Blocking.
pub fn cover(file: &File) -> Option<(String, Vec<u8>)> {
    let run = || {
        use lofty::prelude::*;
        let file = lofty::read_from(&mut fresh(file)?).ok()?;
        let tag = file.primary_tag().or_else(|| file.first_tag())?;
        let pic = tag.pictures().first()?;
        let mime = pic
            .mime_type()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "image/jpeg".into());
        Some((mime, pic.data().to_vec()))
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .ok()
        .flatten()
}

fn audio(file: &File) -> Option<MediaInfo> {
    use lofty::prelude::*;
    let file = lofty::probe::Probe::new(BufReader::new(fresh(file)?))
        .guess_file_type()
        .ok()?
        .options(lofty::config::ParseOptions::new().read_cover_art(true))
        .read()
        .ok()?;
    let props = file.properties();
    let mut info = MediaInfo {
        duration_ms: Some(props.duration().as_millis() as u64).filter(|d| *d > 0),
        bitrate: props
            .overall_bitrate()
            .or(props.audio_bitrate())
            .map(|kbps| kbps.saturating_mul(1000)),
        sample_rate: props.sample_rate(),
        channels: props.channels(),
        audio_codec: Some(match file.file_type() {
            lofty::file::FileType::Mpeg => AudioCodec::Mp3,
            lofty::file::FileType::Flac => AudioCodec::Flac,
            lofty::file::FileType::Mp4 | lofty::file::FileType::Aac => AudioCodec::Aac,
            lofty::file::FileType::Vorbis | lofty::file::FileType::Opus => AudioCodec::Vorbis,
            lofty::file::FileType::Wav | lofty::file::FileType::Aiff => AudioCodec::Pcm,
            _ => AudioCodec::Other,
        }),
        ..MediaInfo::default()
    };
    if let Some(tag) = file.primary_tag().or_else(|| file.first_tag()) {
        let text = |v: Option<std::borrow::Cow<'_, str>>| {
            v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
        };
        info.title = text(tag.title());
        info.artist = text(tag.artist());
        info.album = text(tag.album());
        info.genre = text(tag.genre());
        info.track = tag.track();
        info.year = tag.date().map(|d| d.year).filter(|y| *y > 0);
        info.has_cover = !tag.pictures().is_empty();
    }
    Some(info)
}

fn image(file: &File) -> Option<MediaInfo> {
    let (width, height) = image::ImageReader::new(BufReader::new(fresh(file)?))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()?;
    Some(MediaInfo {
        width: Some(width),
        height: Some(height),
        ..MediaInfo::default()
    })
}

fn video(file: &File, name: &str) -> Option<MediaInfo> {
    let name = name.to_ascii_lowercase();
    if name.ends_with(".mkv") || name.ends_with(".webm") {
        matroska_info(file)
    } else if [".mp4", ".m4v", ".mov", ".3gp"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        mp4_info(file)
    } else {
        None
    }
}

fn mp4_info(file: &File) -> Option<MediaInfo> {
    let file = fresh(file)?;
    let size = file.metadata().ok()?.len();
    let mp4 = mp4::Mp4Reader::read_header(BufReader::new(file), size).ok()?;
    let meta = mp4.metadata();
    use mp4::Metadata;
    let mut info = MediaInfo {
        duration_ms: Some(mp4.duration().as_millis() as u64).filter(|d| *d > 0),
        title: meta
            .title()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
        year: meta.year().and_then(|y| u16::try_from(y).ok()),
        ..MediaInfo::default()
    };
    let mut tracks: Vec<_> = mp4.tracks().values().collect();
    tracks.sort_by_key(|t| t.track_id());
    for t in tracks {
        match t.track_type() {
            Ok(mp4::TrackType::Video) if info.video_codec.is_none() => {
                info.width = Some(t.width() as u32).filter(|w| *w > 0);
                info.height = Some(t.height() as u32).filter(|h| *h > 0);
                info.video_codec = Some(match t.media_type() {
                    Ok(mp4::MediaType::H264) => {
                        let sps = t.sequence_parameter_set().ok();
                        // SPS: NAL header, profile_idc, constraint flags, level_idc.
                        let (profile, level) = match sps {
                            Some(s) if s.len() >= 4 => (s[1], s[3]),
                            _ => (0, 0),
                        };
                        VideoCodec::H264 { profile, level }
                    }
                    Ok(mp4::MediaType::H265) => VideoCodec::Hevc,
                    Ok(mp4::MediaType::VP9) => VideoCodec::Vp,
                    _ => VideoCodec::Other(t.box_type().map(|b| b.to_string()).unwrap_or_default()),
                });
            }
            Ok(mp4::TrackType::Audio) if info.audio_codec.is_none() => {
                info.audio_codec = Some(match t.media_type() {
                    Ok(mp4::MediaType::AAC) => AudioCodec::Aac,
                    _ => AudioCodec::Other,
                });
                info.sample_rate = t.sample_freq_index().ok().map(|i| i.freq());
                info.channels = t.channel_config().ok().map(|c| c as u8);
            }
            _ => {}
        }
    }
    if let Some(ms) = info.duration_ms.filter(|ms| *ms > 0) {
        info.bitrate = u32::try_from(size.saturating_mul(8000) / ms).ok();
    }
    Some(info)
}

fn matroska_info(file: &File) -> Option<MediaInfo> {
    let mut file = BufReader::new(fresh(file)?);
    let size = file.get_ref().metadata().ok()?.len();
    let segment = matroska::get::<_, matroska::Info>(&mut file).ok().flatten();
    file.seek(SeekFrom::Start(0)).ok()?;
    let tracks = matroska::get::<_, matroska::Track>(&mut file)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut info = MediaInfo {
        duration_ms: segment
            .as_ref()
            .and_then(|i| i.duration)
            .map(|d| d.as_millis() as u64)
            .filter(|d| *d > 0),
        title: segment
            .and_then(|i| i.title)
            .filter(|t| !t.trim().is_empty()),
        ..MediaInfo::default()
    };
    for t in tracks {
        match &t.settings {
            matroska::Settings::Video(v) if info.video_codec.is_none() => {
                info.width = u32::try_from(v.pixel_width).ok();
                info.height = u32::try_from(v.pixel_height).ok();
                let id = t.codec_id.as_str();
                info.video_codec = Some(match id {
                    "V_MPEG4/ISO/AVC" => {
                        // CodecPrivate is the AVC configuration record:
                        // version, profile_idc, compatibility, level_idc.
                        let (profile, level) = match t.codec_private.as_deref() {
                            Some(p) if p.len() >= 4 => (p[1], p[3]),
                            _ => (0, 0),
                        };
                        VideoCodec::H264 { profile, level }
                    }
                    "V_MPEGH/ISO/HEVC" => VideoCodec::Hevc,
                    "V_VP8" | "V_VP9" => VideoCodec::Vp,
                    "V_AV1" => VideoCodec::Av1,
                    other => VideoCodec::Other(other.to_owned()),
                });
            }
            matroska::Settings::Audio(a) if info.audio_codec.is_none() => {
                info.sample_rate = Some(a.sample_rate as u32).filter(|r| *r > 0);
                info.channels = u8::try_from(a.channels).ok();
                let id = t.codec_id.as_str();
                info.audio_codec = Some(if id.starts_with("A_AAC") {
                    AudioCodec::Aac
                } else if id == "A_MPEG/L3" {
                    AudioCodec::Mp3
                } else if id.starts_with("A_AC3") || id.starts_with("A_EAC3") {
                    AudioCodec::Ac3
                } else if id == "A_FLAC" {
                    AudioCodec::Flac
                } else if id == "A_VORBIS" || id == "A_OPUS" {
                    AudioCodec::Vorbis
                } else if id.starts_with("A_PCM") {
                    AudioCodec::Pcm
                } else {
                    AudioCodec::Other
                });
            }
            _ => {}
        }
    }
    if let Some(ms) = info.duration_ms {
        info.bitrate = u32::try_from(size.saturating_mul(8000) / ms).ok();
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> File {
        File::open(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/media")
                .join(name),
        )
        .unwrap()
    }

    fn probe_fixture(name: &str, kind: MediaKind) -> MediaInfo {
        probe(&fixture(name), name, kind)
    }

    #[test]
    fn reads_the_fixtures() {
        let mp4 = probe_fixture("clip.mp4", MediaKind::Video);
        assert_eq!((mp4.width, mp4.height), (Some(320), Some(240)));
        assert_eq!(mp4.duration_ms, Some(3000));
        assert_eq!(mp4.title.as_deref(), Some("Test clip"));
        assert_eq!(
            mp4.video_codec,
            Some(VideoCodec::H264 {
                profile: 100,
                level: mp4_level(&mp4)
            })
        );
        assert_eq!(mp4.audio_codec, Some(AudioCodec::Aac));
        assert_eq!((mp4.sample_rate, mp4.channels), (Some(48000), Some(2)));
        assert!(mp4.bitrate.is_some_and(|b| b > 10_000));

        let mkv = probe_fixture("movie.mkv", MediaKind::Video);
        assert_eq!((mkv.width, mkv.height), (Some(320), Some(240)));
        assert_eq!(mkv.duration_ms, Some(2000));
        assert!(matches!(
            mkv.video_codec,
            Some(VideoCodec::H264 { profile: 100, .. })
        ));

        let mp3 = probe_fixture("song.mp3", MediaKind::Audio);
        assert_eq!(mp3.title.as_deref(), Some("Test song"));
        assert_eq!(mp3.artist.as_deref(), Some("Glow Band"));
        assert_eq!(mp3.album.as_deref(), Some("Glow Album"));
        assert_eq!(mp3.track, Some(3));
        assert_eq!(mp3.audio_codec, Some(AudioCodec::Mp3));
        assert_eq!((mp3.sample_rate, mp3.channels), (Some(44100), Some(1)));
        assert!(mp3.duration_ms.is_some_and(|d| (4900..5200).contains(&d)));
        assert!(mp3.has_cover);
        let (mime, bytes) = cover(&fixture("song.mp3")).unwrap();
        assert_eq!(mime, "image/jpeg");
        assert!(bytes.starts_with(&[0xFF, 0xD8]));

        let flac = probe_fixture("tone.flac", MediaKind::Audio);
        assert_eq!(flac.audio_codec, Some(AudioCodec::Flac));
        assert_eq!(flac.duration_ms, Some(1000));

        let jpg = probe_fixture("photo.jpg", MediaKind::Image);
        assert_eq!((jpg.width, jpg.height), (Some(640), Some(480)));
    }

    fn mp4_level(info: &MediaInfo) -> u8 {
        match info.video_codec {
            Some(VideoCodec::H264 { level, .. }) => level,
            _ => 0,
        }
    }

    #[test]
    fn garbage_gives_no_facts_and_no_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("a.mp4", MediaKind::Video),
            ("a.mkv", MediaKind::Video),
            ("a.mp3", MediaKind::Audio),
            ("a.jpg", MediaKind::Image),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"\x1a\x45\xdf\xa3garbage that is not media at all").unwrap();
            assert_eq!(
                probe(&File::open(&p).unwrap(), name, kind),
                MediaInfo::default(),
                "{name}"
            );
        }
        assert!(cover(&File::open(dir.path().join("a.mp3")).unwrap()).is_none());
    }
}
