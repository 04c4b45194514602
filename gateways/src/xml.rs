//! XML helpers shared by the fronts: escaping for the ones that write XML by
//! hand (WebDAV's common PROPFIND, DLNA's SOAP answers and DIDL-Lite),
//! straight into their output buffers, and [`check_body`], the guard every
//! XML request body passes before any parser sees it.

/// Appends `text` escaped for XML text or an attribute value. Characters
/// XML 1.0 cannot carry (controls other than tab and newlines, which a file
/// name may hold) become U+FFFD. Written here rather than with quick-xml's
/// `escape` because it writes into the caller's buffer: a PROPFIND of
/// 10,000 entries or DIDL-Lite for 100 items is thousands of small values.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// The XML-escaped form of `text`.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 8);
    escape_into(&mut s, text);
    s
}

/// How deep elements may nest in a request body. WebDAV and SOAP bodies
/// nest a handful of levels (a dead property's value a few more); the
/// recursive parsers behind them (xmltree, inside dav-server too) use stack
/// per level, and about 3,000 levels overflow a worker's stack.
pub const MAX_DEPTH: usize = 64;

/// Why a request body was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A document type declaration (entity definitions can expand without
    /// bound; no WebDAV or UPnP client sends one).
    #[error("XML with a DOCTYPE is not accepted")]
    Doctype,
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Checks a request body before a parser sees it: well-formed as far as a
/// streaming reader can tell, no DOCTYPE, and no deeper than [`MAX_DEPTH`].
/// One pass, constant stack: quick-xml reads events and keeps no tree.
/// An empty (or all-whitespace) body passes.
pub fn check_body(body: &[u8]) -> Result<(), BodyRefusal> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| BodyRefusal::Malformed(e.to_string()))?;
        match event {
            Event::Start(_) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(BodyRefusal::TooDeep);
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::DocType(_) => return Err(BodyRefusal::Doctype),
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CASES, bytes, mutated, xmlish};
    use proptest::prelude::*;

    const PROPPATCH: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://ns.example.com/z/"><D:set><D:prop><Z:Authors><Z:Author>Jim Whitehead</Z:Author><Z:Author>Roy Fielding</Z:Author></Z:Authors></D:prop></D:set><D:remove><D:prop><Z:Copyright-Owner/></D:prop></D:remove></D:propertyupdate>"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn any_body_is_judged_without_panic(body in prop_oneof![bytes(512), xmlish(), mutated(PROPPATCH)]) {
            let _ = check_body(&body);
        }

        #[test]
        fn depth_is_the_only_limit_on_nesting(levels in 0usize..200) {
            prop_assert_eq!(check_body(nested(levels).as_bytes()).is_ok(), levels <= MAX_DEPTH);
        }
    }

    fn nested(levels: usize) -> String {
        let mut s = String::from("<?xml version=\"1.0\"?>");
        for _ in 0..levels {
            s.push_str("<a>");
        }
        for _ in 0..levels {
            s.push_str("</a>");
        }
        s
    }

    #[test]
    fn bodies_are_checked_for_depth_and_doctypes() {
        assert_eq!(check_body(b""), Ok(()));
        assert_eq!(check_body(b"  \n"), Ok(()));
        assert_eq!(check_body(nested(MAX_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            check_body(nested(MAX_DEPTH + 1).as_bytes()),
            Err(BodyRefusal::TooDeep)
        );
        assert_eq!(
            check_body(nested(3000).as_bytes()),
            Err(BodyRefusal::TooDeep)
        );
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]><l>&a;</l>";
        assert_eq!(check_body(laughs), Err(BodyRefusal::Doctype));
        assert!(matches!(
            check_body(b"<a><b></a>"),
            Err(BodyRefusal::Malformed(_))
        ));
        let propfind = b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/></D:prop></D:propfind>";
        assert_eq!(check_body(propfind), Ok(()));
    }

    #[test]
    fn escapes_markup_and_characters_xml_cannot_carry() {
        assert_eq!(
            escape("a&b<\"c'>\u{1}\tz"),
            "a&amp;b&lt;&quot;c&apos;&gt;\u{FFFD}\tz"
        );
        assert_eq!(escape("plain ☀"), "plain ☀");
    }
}
