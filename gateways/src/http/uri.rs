//! Decoding request paths into fabric addresses.
//!
//! Works on the raw (still percent-encoded) path so that every traversal
//! spelling (`..`, `%2e%2e`, `..%2f`, `%5c`, NUL) is decoded first and then
//! refused by [`RelPath`]'s checks, in one place.

use fabric::{FabricError, RelPath};
use percent_encoding::percent_decode_str;

/// A request path below `/u/`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath {
    /// The user segment, if any.
    pub user: Option<String>,
    /// The folder segment, if any.
    pub folder: Option<String>,
    /// Path inside the folder.
    pub path: RelPath,
    /// Whether the request path ended with `/`.
    pub trailing_slash: bool,
}

/// Decodes the raw path of a request under `prefix` (e.g. `/u`).
pub fn decode(raw: &str, prefix: &str) -> Result<FilePath, FabricError> {
    let rest = raw.strip_prefix(prefix).unwrap_or(raw);
    let trailing_slash = rest.ends_with('/');
    let mut segs = Vec::new();
    for seg in rest.split('/').filter(|s| !s.is_empty()) {
        let s = percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| FabricError::InvalidPath("path is not UTF-8".into()))?;
        segs.push(s.into_owned());
    }
    let mut it = segs.iter();
    let user = it.next().cloned();
    let folder = it.next().cloned();
    for s in [&user, &folder].into_iter().flatten() {
        RelPath::from_components([s.as_str()])?;
    }
    let path = RelPath::from_components(it.map(String::as_str))?;
    Ok(FilePath {
        user,
        folder,
        path,
        trailing_slash,
    })
}

/// A `Content-Disposition: attachment` value for a file name (RFC 6266 with
/// the RFC 5987 UTF-8 form: everything but unreserved characters encoded).
pub fn attachment(name: &str) -> axum::http::HeaderValue {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const ATTR: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let v = format!(
        "attachment; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    );
    axum::http::HeaderValue::from_str(&v)
        .unwrap_or(axum::http::HeaderValue::from_static("attachment"))
}

/// Percent-encodes one path segment for an `href`.
pub fn encode_segment(s: &str) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'\\')
        .add(b'\'');
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::CASES))]

        /// Whatever the encoding, a decoded path has no component that
        /// climbs, and no separator or NUL inside a component.
        #[test]
        fn decoded_paths_never_climb(raw in prop_oneof![
            "/u(/[a-z.%0-9A-F\\\\]{0,12}){0,6}/?",
            "\\PC{0,64}",
        ]) {
            if let Ok(p) = decode(&raw, "/u") {
                for part in p.user.iter().chain(p.folder.iter()).map(String::as_str).chain(p.path.as_str().split('/')) {
                    prop_assert!(part != ".." && part != ".", "{raw:?}");
                    prop_assert!(!part.contains(['\\', '\0']) , "{raw:?}");
                }
            }
        }
    }

    #[test]
    fn decodes_users_folders_and_paths() {
        let p = decode("/u/alice/photos/a%20b/%F0%9F%98%80.bin", "/u").unwrap();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.folder.as_deref(), Some("photos"));
        assert_eq!(p.path.as_str(), "a b/😀.bin");
        assert!(!p.trailing_slash);
        let p = decode("/u/alice/", "/u").unwrap();
        assert_eq!((p.folder, p.trailing_slash), (None, true));
    }

    #[test]
    fn refuses_every_traversal_spelling() {
        for raw in [
            "/u/a/f/../x",
            "/u/a/f/%2e%2e/x",
            "/u/a/f/%2E%2E/x",
            "/u/a/f/..%2fx",
            "/u/a/f/..%2Fetc%2Fpasswd",
            "/u/a/f/..%5c..%5cx",
            "/u/a/f/a%5cb",
            "/u/a/f/a%00b",
            "/u/a/..",
            "/u/../f/x",
            "/u/a/f/%ff",
            "/u/a/f/.",
        ] {
            assert!(decode(raw, "/u").is_err(), "{raw} accepted");
        }
    }

    #[test]
    fn attachments_name_files_safely() {
        assert_eq!(
            attachment("a b;c.zip"),
            "attachment; filename*=UTF-8''a%20b%3Bc.zip"
        );
        assert_eq!(
            attachment("ü.txt"),
            "attachment; filename*=UTF-8''%C3%BC.txt"
        );
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_segment("a b#?.txt"), "a%20b%23%3F.txt");
        assert_eq!(encode_segment("ü"), "%C3%BC");
    }
}
