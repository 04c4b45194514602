//! ContentDirectory object ids: what each id names, both ways.
//!
//! Ids are paths, so they stay the same across restarts (TVs keep
//! bookmarks and resume points by id) and need no table:
//!
//! | id | object |
//! |---|---|
//! | `0` | the root |
//! | `videos`, `music`, `photos` | the "All …" views |
//! | `d/<user>/<folder>[/<path>]` | a folder or one of its directories |
//! | `i/<user>/<folder>/<path>` | a media file, in its directory |
//! | `videos/<user>/<folder>/<path>` (and `music/`, `photos/`) | a media file, in a view |

use fabric::{Address, MediaKind, RelPath};

/// What an object id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// The root container.
    Root,
    /// An "All videos / music / photos" container.
    View(MediaKind),
    /// A media folder or a directory in it.
    Dir(Address),
    /// A media file; `view` is the view it is listed in, if not its directory.
    Item {
        /// The view it is listed in, or `None` for its directory.
        view: Option<MediaKind>,
        /// The file.
        addr: Address,
    },
}

/// A view's id.
pub fn view_id(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Video => "videos",
        MediaKind::Audio => "music",
        MediaKind::Image => "photos",
    }
}

fn view_of(word: &str) -> Option<MediaKind> {
    MediaKind::ALL.into_iter().find(|k| view_id(*k) == word)
}

impl Object {
    /// Parses an id; `None` for ids Glow never gives out (only the
    /// canonical spelling of each is accepted).
    pub fn parse(id: &str) -> Option<Object> {
        Object::parse_loose(id).filter(|o| o.id() == id)
    }

    fn parse_loose(id: &str) -> Option<Object> {
        if id == "0" {
            return Some(Object::Root);
        }
        let (head, rest) = match id.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (id, None),
        };
        let addr = |rest: Option<&str>| -> Option<Address> {
            let mut parts = rest?.splitn(3, '/');
            let user = parts.next().filter(|s| !s.is_empty())?;
            let folder = parts.next().filter(|s| !s.is_empty())?;
            RelPath::from_components([user, folder]).ok()?;
            let path = RelPath::parse(parts.next().unwrap_or("")).ok()?;
            Some(Address::new(user, folder, path))
        };
        match head {
            "d" => addr(rest).map(Object::Dir),
            "i" => addr(rest)
                .filter(|a| !a.path.is_root())
                .map(|addr| Object::Item { view: None, addr }),
            word => {
                let kind = view_of(word)?;
                match rest {
                    None => Some(Object::View(kind)),
                    Some(_) => addr(rest)
                        .filter(|a| !a.path.is_root())
                        .map(|addr| Object::Item {
                            view: Some(kind),
                            addr,
                        }),
                }
            }
        }
    }

    /// The object's id.
    pub fn id(&self) -> String {
        match self {
            Object::Root => "0".into(),
            Object::View(k) => view_id(*k).into(),
            Object::Dir(a) => format!("d/{a}"),
            Object::Item { view: None, addr } => format!("i/{addr}"),
            Object::Item {
                view: Some(k),
                addr,
            } => format!("{}/{addr}", view_id(*k)),
        }
    }

    /// The id of the container the object is listed in (`-1` for the root).
    pub fn parent_id(&self) -> String {
        match self {
            Object::Root => "-1".into(),
            Object::View(_) => "0".into(),
            Object::Dir(a) if a.path.is_root() => "0".into(),
            Object::Dir(a) => Object::Dir(a.with_path(a.path.parent())).id(),
            Object::Item { view: Some(k), .. } => view_id(*k).into(),
            Object::Item { view: None, addr } => {
                Object::Dir(addr.with_path(addr.path.parent())).id()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::CASES))]

        /// Only canonical ids parse, and they give themselves back.
        #[test]
        fn ids_parse_only_in_their_canonical_form(id in prop_oneof![
            "\\PC{0,48}",
            "[0dim]/[a-z.%/|]{0,24}",
            "(videos|music|photos|0|d/admin/share|i/admin/share/a.mp4)[/|%.]{0,4}[a-z.]{0,8}",
        ]) {
            if let Some(o) = Object::parse(&id) {
                prop_assert_eq!(o.id(), id);
            }
        }
    }

    fn a(p: &str) -> Address {
        Address::parse(p).unwrap()
    }

    #[test]
    fn ids_both_ways() {
        let table = [
            ("0", Object::Root, "-1"),
            ("videos", Object::View(MediaKind::Video), "0"),
            ("d/alice/Films", Object::Dir(a("alice/Films")), "0"),
            (
                "d/alice/Films/2024 trip",
                Object::Dir(a("alice/Films/2024 trip")),
                "d/alice/Films",
            ),
            (
                "i/alice/Films/2024/a.mp4",
                Object::Item {
                    view: None,
                    addr: a("alice/Films/2024/a.mp4"),
                },
                "d/alice/Films/2024",
            ),
            (
                "music/bob/Music/x.mp3",
                Object::Item {
                    view: Some(MediaKind::Audio),
                    addr: a("bob/Music/x.mp3"),
                },
                "music",
            ),
        ];
        for (id, obj, parent) in table {
            assert_eq!(Object::parse(id).as_ref(), Some(&obj), "{id}");
            assert_eq!(obj.id(), id);
            assert_eq!(obj.parent_id(), parent, "{id}");
        }
        for bad in [
            "",
            "1",
            "-1",
            "d",
            "d/",
            "d/alice",
            "i/alice/Films",
            "d/alice/Films/../x",
            "d/alice/Films/a//b",
            "x/alice/Films/a",
            "videos/alice",
            "i/alice/F/\0",
        ] {
            assert_eq!(Object::parse(bad), None, "{bad:?}");
        }
    }
}
