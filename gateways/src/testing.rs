//! Strategies shared by the property tests of the parsers (test builds
//! only): arbitrary bytes, XML-ish token soup, and random edits of a valid
//! sample, the mutations a fuzzer would make.

use proptest::prelude::*;

/// Cases per property: enough to find the shallow bugs, few enough that
/// the whole suite stays short in CI.
pub(crate) const CASES: u32 = 512;

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), 1usize..32, 1usize..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut s: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Flip(i, b) if !s.is_empty() => {
                let i = i % s.len();
                s[i] ^= b | 1;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, b) => {
                let i = at(*i, s.len());
                s.splice(i..i, b.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, s.len());
                let end = (i + n).min(s.len());
                s.drain(i..end);
            }
            Edit::Repeat(i, n, k) => {
                let i = at(*i, s.len());
                let end = (i + n).min(s.len());
                let piece = s[i..end].to_vec();
                for _ in 0..*k {
                    s.splice(end..end, piece.iter().copied());
                }
            }
            Edit::Truncate(i) => {
                let i = at(*i, s.len());
                s.truncate(i);
            }
        }
    }
    s
}

/// `sample` with a few random edits.
pub(crate) fn mutated(sample: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(edit(), 1..6).prop_map(move |edits| apply(sample.to_vec(), &edits))
}

/// Text that looks like XML: tags, entities, declarations and text in any
/// order and nesting.
pub(crate) fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("<a>".to_owned()),
        Just("</a>".to_owned()),
        Just("<D:prop>".to_owned()),
        Just("</D:prop>".to_owned()),
        Just("<x xmlns=\"DAV:\"/>".to_owned()),
        Just("<?xml version=\"1.0\"?>".to_owned()),
        Just("<!DOCTYPE a [<!ENTITY e \"x\">]>".to_owned()),
        Just("&amp;".to_owned()),
        Just("&e;".to_owned()),
        Just("&#0;".to_owned()),
        Just("&#x110000;".to_owned()),
        Just("<![CDATA[".to_owned()),
        Just("]]>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("\"".to_owned()),
        "[a-zA-Z0-9 :=/]{0,8}",
        "\\PC{0,4}",
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat().into_bytes())
}

/// Any bytes, up to `max` of them.
pub(crate) fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}
