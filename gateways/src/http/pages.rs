//! Page rendering: the askama templates in `web/templates`, one wrapper that
//! turns them into responses, and the small formatting helpers they share
//! (human sizes and dates, icons, breadcrumbs).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::{Duration, UNIX_EPOCH};

/// Renders a template as an HTML response with `status`.
pub fn html<T: Template>(status: StatusCode, page: T) -> Response {
    match page.render() {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert("x-frame-options", HeaderValue::from_static("DENY"));
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(super::headers::PAGE_CSP),
            );
            r
        }
        Err(e) => {
            tracing::error!("template {}: {e}", std::any::type_name::<T>());
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// A page with a title and one message (errors, gone links).
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    /// Heading.
    pub title: &'a str,
    /// Text.
    pub message: &'a str,
}

/// `GET /static/glow.css`.
pub async fn stylesheet() -> Response {
    let mut r = include_str!("../../../web/static/glow.css").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// `GET /static/glow.js`.
pub async fn script() -> Response {
    let mut r = include_str!("../../../web/static/glow.js").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One row of a file listing.
pub struct Row {
    /// Shown name.
    pub name: String,
    /// Link (relative, percent-encoded).
    pub href: String,
    /// A directory.
    pub is_dir: bool,
    /// Human size (empty for directories).
    pub size: String,
    /// Human modification time.
    pub modified: String,
    /// An icon for the kind of file.
    pub icon: &'static str,
}

impl Row {
    /// A row for a fabric entry, linked relative to its directory's page
    /// (`./` first: a file named `https:evil.example` must not read as a
    /// link to another site).
    pub fn from_entry(e: &fabric::Entry) -> Row {
        let slash = if e.is_dir() { "/" } else { "" };
        Row {
            name: e.name.clone(),
            href: format!("./{}{slash}", super::uri::encode_segment(&e.name)),
            is_dir: e.is_dir(),
            size: if e.is_dir() {
                String::new()
            } else {
                human_size(e.size)
            },
            modified: human_time(e.mtime_ns),
            icon: icon(&e.name, e.is_dir()),
        }
    }
}

/// A breadcrumb.
pub struct Crumb {
    /// Shown name.
    pub name: String,
    /// Link.
    pub href: String,
}

/// Breadcrumbs for `base` (a URL prefix ending in `/`, shown as `top`)
/// followed by each component of `path`.
pub fn crumbs(base: &str, top: &str, path: &fabric::RelPath) -> Vec<Crumb> {
    let mut out = vec![Crumb {
        name: top.to_owned(),
        href: base.to_owned(),
    }];
    let mut href = base.to_owned();
    for part in path.as_str().split('/').filter(|p| !p.is_empty()) {
        href.push_str(&super::uri::encode_segment(part));
        href.push('/');
        out.push(Crumb {
            name: part.to_owned(),
            href: href.clone(),
        });
    }
    out
}

/// What kind of media a file is, for previews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// Shown with `<img>`.
    Image,
    /// Played with `<video>`.
    Video,
    /// Played with `<audio>`.
    Audio,
    /// No preview.
    Other,
}

/// The media kind of a file name.
pub fn media_kind(name: &str) -> MediaKind {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    match mime.type_().as_str() {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        _ => MediaKind::Other,
    }
}

/// An icon for a name.
pub fn icon(name: &str, is_dir: bool) -> &'static str {
    if is_dir {
        return "📁";
    }
    match media_kind(name) {
        MediaKind::Image => "🖼️",
        MediaKind::Video => "🎬",
        MediaKind::Audio => "🎵",
        MediaKind::Other => {
            let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            match ext.as_str() {
                "zip" | "gz" | "tgz" | "xz" | "zst" | "7z" | "rar" | "tar" | "bz2" => "🗜️",
                "pdf" => "📕",
                "txt" | "md" | "rst" | "log" | "csv" => "📝",
                "doc" | "docx" | "odt" | "rtf" => "📄",
                "xls" | "xlsx" | "ods" => "📊",
                _ => "📄",
            }
        }
    }
}

/// `1.5 MiB` and friends.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// `2026-11-25 14:03` (UTC) from nanoseconds since the epoch.
pub fn human_time(ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    let s = httpdate::fmt_http_date(t);
    // "Wed, 25 Nov 2026 14:03:00 GMT" -> "25 Nov 2026 14:03"
    s.get(5..22).map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_icons() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(50 << 20), "50 MiB");
        assert_eq!(icon("a.JPG", false), "🖼️");
        assert_eq!(icon("x", true), "📁");
        assert_eq!(media_kind("film.mp4"), MediaKind::Video);
        assert_eq!(human_time(0), "01 Jan 1970 00:00");
    }

    #[test]
    fn crumbs_encode_each_level() {
        let p = fabric::RelPath::parse("a b/c").unwrap();
        let c = crumbs("/s/tok/", "shared", &p);
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].href, "/s/tok/a%20b/c/");
    }
}
