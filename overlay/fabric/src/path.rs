//! Validated paths inside a folder.
//!
//! A [`RelPath`] is the only way a path reaches the disk: it has no empty,
//! `.` or `..` component, no backslash, no NUL, and never names Glow's own
//! temporary files. Fronts decode their wire syntax first (percent-encoding,
//! SFTP strings) and hand the decoded components here.

use crate::error::{FabricError, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// Prefix of the temporary files atomic writes use; never visible to clients.
pub const TEMP_PREFIX: &str = ".glow-tmp-";

/// A normalised relative path inside a folder; empty means the folder's root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// The folder's root.
    pub fn root() -> Self {
        RelPath(String::new())
    }

    /// Parses `a/b/c` (slashes at either end and doubled slashes are ignored).
    pub fn parse(text: &str) -> Result<Self> {
        Self::from_components(text.split('/').filter(|c| !c.is_empty()))
    }

    /// Builds a path from already-decoded components, refusing any that could
    /// escape the folder or name an internal file.
    pub fn from_components<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut out = String::new();
        for part in parts {
            check_component(part)?;
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(part);
        }
        Ok(RelPath(out))
    }

    /// True for the folder's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as `a/b/c` (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent path; the root is its own parent.
    pub fn parent(&self) -> RelPath {
        match self.0.rfind('/') {
            Some(i) => RelPath(self.0[..i].to_owned()),
            None => RelPath::root(),
        }
    }

    /// This path with one more component.
    pub fn join(&self, name: &str) -> Result<RelPath> {
        check_component(name)?;
        Ok(if self.0.is_empty() {
            RelPath(name.to_owned())
        } else {
            RelPath(format!("{}/{}", self.0, name))
        })
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// Replaces the leading `from` of this path with `to`.
    pub fn rebase(&self, from: &RelPath, to: &RelPath) -> RelPath {
        let rest = self.0[from.0.len()..].trim_start_matches('/');
        match (to.0.is_empty(), rest.is_empty()) {
            (_, true) => to.clone(),
            (true, false) => RelPath(rest.to_owned()),
            (false, false) => RelPath(format!("{}/{}", to.0, rest)),
        }
    }

    /// The path below `root` on disk.
    pub fn to_disk(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in self.0.split('/').filter(|c| !c.is_empty()) {
            p.push(c);
        }
        p
    }

    /// Builds a path from a disk path below `root` (for the scanner and watcher).
    pub fn from_disk(root: &Path, path: &Path) -> Option<RelPath> {
        let rest = path.strip_prefix(root).ok()?;
        let mut parts = Vec::new();
        for c in rest.components() {
            match c {
                std::path::Component::Normal(s) => parts.push(s.to_str()?),
                _ => return None,
            }
        }
        RelPath::from_components(parts).ok()
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for names Glow keeps to itself (temporary files of atomic writes).
pub fn is_internal_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// True for the metadata files desktop clients scatter over shares: macOS
/// Finder's `.DS_Store` and AppleDouble `._name` companions (written next to
/// every copied file that has extended attributes). Glow stores them, since
/// Finder reads them back, but keeps no versions of them, deletes them
/// without a trash item, and leaves them out of web listings and zips.
pub fn is_os_metadata(name: &str) -> bool {
    name == ".DS_Store" || (name.starts_with("._") && name.len() > 2)
}

fn check_component(part: &str) -> Result<()> {
    let bad = |why: &str| Err(FabricError::InvalidPath(format!("{why}: {part:?}")));
    if part.is_empty() {
        return bad("empty path component");
    }
    if part == "." || part == ".." {
        return bad("relative component");
    }
    if part.contains(['/', '\\', '\0']) {
        return bad("forbidden character in name");
    }
    if part.len() > 255 {
        return bad("name longer than 255 bytes");
    }
    if is_internal_name(part) {
        return bad("reserved name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the text, a path that parses stays inside its folder:
        /// no `.`/`..`, no empty or reserved component, no leading slash.
        #[test]
        fn parsed_paths_stay_inside(text in prop_oneof![
            "\\PC{0,64}",
            "[./\\\\a\\x00]{0,24}",
            "(\\.\\.|\\.|a|/|\\.glow-tmp-x|%2e){0,12}",
        ]) {
            if let Ok(p) = RelPath::parse(&text) {
                prop_assert!(!p.as_str().starts_with('/'));
                for c in p.as_str().split('/').filter(|_| !p.is_root()) {
                    prop_assert!(check_component(c).is_ok(), "{text:?} gave {c:?}");
                }
                prop_assert_eq!(RelPath::parse(p.as_str()).unwrap(), p.clone());
            }
        }
    }

    #[test]
    fn parse_accepts_plain_and_unicode_names() {
        assert_eq!(RelPath::parse("").unwrap(), RelPath::root());
        assert_eq!(RelPath::parse("/a//b/").unwrap().as_str(), "a/b");
        assert_eq!(RelPath::parse("ü ñ/😀.bin").unwrap().as_str(), "ü ñ/😀.bin");
        assert_eq!(RelPath::parse("..a/b..").unwrap().as_str(), "..a/b..");
    }

    #[test]
    fn parse_refuses_traversal_and_reserved_names() {
        for bad in [
            "..",
            "a/../b",
            "./a",
            "a\\..\\b",
            "a\\b",
            "a\0b",
            ".glow-tmp-x",
            "d/.glow-tmp-1",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parent_name_join_rebase() {
        let p = RelPath::parse("a/b/c").unwrap();
        assert_eq!(p.name(), "c");
        assert_eq!(p.parent().as_str(), "a/b");
        assert_eq!(RelPath::parse("a").unwrap().parent(), RelPath::root());
        assert_eq!(p.parent().join("d").unwrap().as_str(), "a/b/d");
        assert!(p.starts_with(&RelPath::parse("a/b").unwrap()));
        assert!(
            !RelPath::parse("a/bc")
                .unwrap()
                .starts_with(&RelPath::parse("a/b").unwrap())
        );
        let from = RelPath::parse("a").unwrap();
        let to = RelPath::parse("x/y").unwrap();
        assert_eq!(p.rebase(&from, &to).as_str(), "x/y/b/c");
        assert_eq!(from.rebase(&from, &to).as_str(), "x/y");
    }

    #[test]
    fn from_disk_stays_below_root() {
        let root = Path::new("/srv/f");
        assert_eq!(
            RelPath::from_disk(root, Path::new("/srv/f/a/b"))
                .unwrap()
                .as_str(),
            "a/b"
        );
        assert!(RelPath::from_disk(root, Path::new("/srv/g/a")).is_none());
        assert!(RelPath::from_disk(root, Path::new("/srv/f/.glow-tmp-1")).is_none());
    }
}
