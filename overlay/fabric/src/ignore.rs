//! What of a folder is not synced: the patterns of `.glowignore` at the
//! folder's root (each replica its own; the file itself is not synced),
//! and the OS metadata files the fabric already keeps out of versions
//! (`.DS_Store`, `._name`).
//!
//! The syntax is Syncthing's `.stignore`, which is gitignore's with a few
//! additions; the matching is the `ignore` crate's (ripgrep's gitignore
//! engine): `*`, `**`, `?`, `[a-z]`, a leading `/` anchors at the folder's
//! root, a trailing `/` matches directories only, `!` re-includes, and a
//! path is ignored when it or any directory above it is. From Syncthing:
//! `//` starts a comment line (as `#` does), `(?i)` makes one pattern
//! case-insensitive, and `(?d)` is accepted and dropped (ignored files
//! never block a deletion here). `#include` is not supported (a line
//! that uses it is skipped and logged).
//!
//! Ignored paths stay this node's: the scanner still records and versions
//! them, the fronts still serve them; only sync leaves them out, both in
//! the index a replica sends and in what it takes from others.

use crate::fabric::Fabric;
use crate::path::RelPath;
use crate::resource::Folder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::sync::Arc;

/// The ignore file at a folder's root.
pub const IGNORE_FILE: &str = ".glowignore";

/// A folder's rules and the stamp (length, mtime) of the file read.
#[derive(Clone)]
pub struct Cached {
    stamp: Option<(u64, i64)>,
    rules: Arc<Rules>,
}

/// One folder's ignore rules.
#[derive(Debug)]
pub struct Rules {
    exact: Gitignore,
    caseless: Gitignore,
}

impl Rules {
    /// Rules from the text of an ignore file.
    pub fn parse(text: &str) -> Rules {
        let mut exact = GitignoreBuilder::new("");
        let mut caseless = GitignoreBuilder::new("");
        caseless.case_insensitive(true).ok();
        for raw in text.lines() {
            let mut line = raw.trim();
            if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
                if line.starts_with("#include") {
                    tracing::warn!("{IGNORE_FILE}: #include is not supported: {line}");
                }
                continue;
            }
            let mut fold = false;
            loop {
                if let Some(rest) = line.strip_prefix("(?i)") {
                    fold = true;
                    line = rest;
                } else if let Some(rest) = line.strip_prefix("(?d)") {
                    line = rest;
                } else {
                    break;
                }
            }
            let builder = if fold { &mut caseless } else { &mut exact };
            if let Err(e) = builder.add_line(None, line) {
                tracing::warn!("{IGNORE_FILE}: pattern {line:?} skipped: {e}");
            }
        }
        Rules {
            exact: exact.build().unwrap_or_else(|_| Gitignore::empty()),
            caseless: caseless.build().unwrap_or_else(|_| Gitignore::empty()),
        }
    }

    /// Whether `path` (or a directory above it) is ignored; `dir`: the
    /// path is a directory.
    pub fn ignores(&self, path: &str, dir: bool) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == IGNORE_FILE || crate::path::is_os_metadata(name) {
            return true;
        }
        // The last match wins within one set; across the two sets an
        // exact re-include (`!`) does not undo a caseless ignore.
        self.exact
            .matched_path_or_any_parents(path, dir)
            .is_ignore()
            || self
                .caseless
                .matched_path_or_any_parents(path, dir)
                .is_ignore()
    }
}

impl Fabric {
    /// `folder`'s ignore rules, read again when its `.glowignore` changed.
    pub(crate) async fn ignore_rules(&self, folder: &Folder) -> Arc<Rules> {
        let file = folder.path.join(IGNORE_FILE);
        let stamp = tokio::fs::metadata(&file)
            .await
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.len(), crate::store::local::mtime_ns(&m)));
        if let Some(c) = self
            .inner
            .ignores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&folder.id)
            && c.stamp == stamp
        {
            return c.rules.clone();
        }
        let text = match stamp {
            // The file is read below the folder's root, never through a link.
            Some(_) => {
                let path = folder.path.clone();
                crate::fabric::blocking(move || {
                    let rel = RelPath::parse(IGNORE_FILE)?;
                    let (_, mut f, _) = crate::store::beneath::Root::open_regular(&path, &rel)?;
                    let mut text = String::new();
                    std::io::Read::read_to_string(
                        &mut std::io::Read::take(&mut f, 1 << 20),
                        &mut text,
                    )?;
                    Ok(text)
                })
                .await
                .unwrap_or_default()
            }
            None => String::new(),
        };
        let rules = Arc::new(Rules::parse(&text));
        self.inner
            .ignores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                folder.id.clone(),
                Cached {
                    stamp,
                    rules: rules.clone(),
                },
            );
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stignore_syntax_as_syncthing_users_write_it() {
        let r = Rules::parse(
            "// build output\n\
             /target\n\
             *.tmp\n\
             (?i)thumbs.db\n\
             (?d).cache/\n\
             logs/**\n\
             !logs/keep.log\n\
             #include more.txt\n",
        );
        assert!(r.ignores("target", true));
        assert!(r.ignores("target/debug/app", false));
        assert!(!r.ignores("src/target", true), "anchored at the root");
        assert!(r.ignores("a/b/c.tmp", false));
        assert!(r.ignores("Photos/THUMBS.DB", false));
        assert!(r.ignores(".cache", true));
        assert!(r.ignores(".cache/x", false));
        assert!(
            !r.ignores(".cache", false),
            "a trailing slash: directories only"
        );
        assert!(r.ignores("logs/a.log", false));
        assert!(!r.ignores("logs/keep.log", false), "re-included");
        assert!(!r.ignores("notes.txt", false));
        // Never synced, whatever the rules.
        assert!(r.ignores(".glowignore", false));
        assert!(r.ignores("a/.DS_Store", false));
        assert!(r.ignores("._photo.jpg", false));
        // Garbage lines do not stop the rest.
        let r = Rules::parse("[\n*.bak\n\u{0}\n");
        assert!(r.ignores("x.bak", false));
    }
}
