//! Plain HTML listings of folders and namespaces (the full pages come with
//! the web front; this is what `curl` and a bare browser see).

use super::uri::encode_segment;
use overlay::Entry;
use std::fmt::Write;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One row of a listing.
pub struct Row<'a> {
    /// Shown name.
    pub name: &'a str,
    /// Directory (gets a trailing slash).
    pub dir: bool,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time in ns.
    pub mtime_ns: i64,
}

impl<'a> From<&'a Entry> for Row<'a> {
    fn from(e: &'a Entry) -> Self {
        Row {
            name: &e.name,
            dir: e.is_dir(),
            size: e.size,
            mtime_ns: e.mtime_ns,
        }
    }
}

/// Renders a listing page for `title`, with a link up unless at the top.
pub fn render(title: &str, up: bool, rows: &mut [Row<'_>]) -> String {
    rows.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(b.name)));
    let mut html = String::with_capacity(256 + rows.len() * 160);
    let t = escape(title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title></head><body><h1>{t}</h1><table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if up {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for r in rows.iter() {
        let slash = if r.dir { "/" } else { "" };
        let size = if r.dir {
            String::new()
        } else {
            r.size.to_string()
        };
        let when =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(r.mtime_ns.max(0) as u64);
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{size}</td><td>{}</td></tr>",
            escape(&encode_segment(r.name)),
            escape(r.name),
            httpdate::fmt_http_date(when)
        );
    }
    html.push_str("</table></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names_and_encodes_links() {
        let mut rows = [Row {
            name: "<b>&\"x y\".txt",
            dir: false,
            size: 3,
            mtime_ns: 0,
        }];
        let html = render("t", true, &mut rows);
        assert!(html.contains("&lt;b&gt;&amp;&quot;x y&quot;.txt"));
        assert!(html.contains("href=\"%3Cb%3E&amp;%22x%20y%22.txt\""));
        assert!(!html.contains("<b>&"));
    }
}
