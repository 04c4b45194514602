//! Conditional headers (`If`, `If-Match`, `If-None-Match`, `If-Range`)
//! checked before dav-server parses them.
//!
//! dav-server 0.11's own parsers index past the end of some malformed
//! values and panic: an `If: <` with no closing `>` (its `scan_until`), or
//! an entity tag that is a lone `"` (its `ETag::from_str` slices `[1..0]`).
//! No other crate parses RFC 4918's `If` grammar, so this module walks the
//! same tokens dav-server will and refuses, with a 400, any value that
//! would take its parser off the end. Values it would merely reject are
//! left to it.

use axum::http::HeaderMap;

/// Why a request's conditional headers are refused, or `Ok` when
/// dav-server can read them safely.
pub fn check(headers: &HeaderMap) -> Result<(), &'static str> {
    for v in headers.get_all("if") {
        if if_would_overrun(v.as_bytes()) {
            return Err("malformed If header: an unterminated <...> or [...]");
        }
    }
    for name in ["if-match", "if-none-match"] {
        for v in headers.get_all(name) {
            let Ok(s) = v.to_str() else { continue };
            if s.split(',').any(|t| lone_quote(t.trim())) {
                return Err("malformed entity tag in If-Match or If-None-Match");
            }
        }
    }
    for v in headers.get_all("if-range") {
        if v.to_str().is_ok_and(lone_quote) {
            return Err("malformed entity tag in If-Range");
        }
    }
    Ok(())
}

/// An entity tag that is one `"` (optionally weak): dav-server slices
/// between the opening and the closing quote, which are the same byte.
fn lone_quote(tag: &str) -> bool {
    tag.strip_prefix("W/").unwrap_or(tag) == "\""
}

/// Whether dav-server's tokenizer of the `If` header would read past the
/// end of `buf`: a `<` or `[` whose closing byte never comes (quotes
/// inside hide it, as they do for dav-server).
fn if_would_overrun(mut buf: &[u8]) -> bool {
    let space = |c: u8| b" \t\r\n".contains(&c);
    loop {
        while let [c, rest @ ..] = buf
            && space(*c)
        {
            buf = rest;
        }
        let Some(&first) = buf.first() else {
            return false;
        };
        match first {
            b'(' | b')' => buf = &buf[1..],
            b'N' if buf.starts_with(b"Not") => buf = &buf[3..],
            b'<' | b'[' => {
                let close = if first == b'<' { b'>' } else { b']' };
                let mut quote = false;
                let mut i = 1;
                loop {
                    let Some(&c) = buf.get(i) else {
                        return true;
                    };
                    if !quote && c == close {
                        break;
                    }
                    if space(c) {
                        return false; // dav-server refuses it cleanly.
                    }
                    if c == b'"' {
                        quote = !quote;
                    }
                    i += 1;
                }
                buf = &buf[i + 1..];
            }
            _ => {
                let end = buf
                    .iter()
                    .position(|&c| space(c) || b"<>()[]".contains(&c) || c < 32)
                    .unwrap_or(buf.len());
                if end == 0 {
                    return false; // dav-server refuses it cleanly.
                }
                buf = &buf[end..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unterminated_if_tokens_are_caught() {
        for bad in [
            "<",
            "<http://x/a",
            "(<urn:x> [\"a]",
            "([\"])",
            "</a> ([W/\"])",
        ] {
            assert!(if_would_overrun(bad.as_bytes()), "{bad}");
        }
        for good in [
            "(<urn:uuid:1>)",
            "</dav/a> (<opaquelocktoken:x> [\"e1\"])",
            "(Not <urn:x>)",
            "< a>",
            "",
            "  ",
            ">",
        ] {
            assert!(!if_would_overrun(good.as_bytes()), "{good}");
        }
    }

    #[test]
    fn lone_quotes_are_caught() {
        assert!(lone_quote("\""));
        assert!(lone_quote("W/\""));
        assert!(!lone_quote("\"\""));
        assert!(!lone_quote("W/\"x\""));
        assert!(!lone_quote("*"));
    }
}
