//! XML escaping for the fronts that write XML by hand (WebDAV's common
//! PROPFIND, DLNA's SOAP answers and DIDL-Lite), straight into their
//! output buffers.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_characters_xml_cannot_carry() {
        assert_eq!(
            escape("a&b<\"c'>\u{1}\tz"),
            "a&amp;b&lt;&quot;c&apos;&gt;\u{FFFD}\tz"
        );
        assert_eq!(escape("plain ☀"), "plain ☀");
    }
}
