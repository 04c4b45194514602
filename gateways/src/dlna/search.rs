//! Search and sort criteria of ContentDirectory:1 (§2.5.5 and §2.5.7):
//! parsing, and evaluation against an object's properties.
//!
//! Hand-written: no crate parses this small grammar. Search criteria are
//! `*` or relations (`prop op "value"`, `prop exists true`) joined by `and`
//! (binding tighter) and `or`, with parentheses; string comparisons ignore
//! case, as the specification asks. Sort criteria are `+prop,-prop,…`.

use super::error::UpnpError;

/// Properties Glow can search on.
pub const SEARCH_CAPS: &str = "@id,@parentID,@refID,dc:title,dc:creator,dc:date,upnp:class,upnp:artist,upnp:album,upnp:genre,upnp:originalTrackNumber,res@size,res@duration";
/// Properties Glow can sort on.
pub const SORT_CAPS: &str = "dc:title,dc:date,dc:creator,upnp:class,upnp:artist,upnp:album,upnp:genre,upnp:originalTrackNumber,res@size,res@duration";

/// A value of a property of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A number (sizes, durations in ms, track numbers).
    Number(u64),
}

/// Anything that can be searched and sorted.
pub trait Properties {
    /// The value of a property (`dc:title`, `res@size`, …), if it has one.
    fn property(&self, name: &str) -> Option<Value>;
}

/// A parsed search criteria.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    /// `*`: everything.
    All,
    /// Both.
    And(Box<Criteria>, Box<Criteria>),
    /// Either.
    Or(Box<Criteria>, Box<Criteria>),
    /// `prop op "value"`.
    Rel(String, Op, String),
    /// `prop exists true|false`.
    Exists(String, bool),
}

/// A relation's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`
    Contains,
    /// `doesNotContain`
    DoesNotContain,
    /// `derivedfrom`: a class and its subclasses.
    DerivedFrom,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Quoted(String),
    Op(Op),
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, UpnpError> {
    let bad = UpnpError::BadSearchCriteria;
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next().ok_or(bad)? {
                        '"' => break,
                        '\\' => s.push(chars.next().ok_or(bad)?),
                        c => s.push(c),
                    }
                }
                out.push(Token::Quoted(s));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    chars.next();
                }
                out.push(Token::Op(match (c, eq) {
                    ('=', false) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err(bad),
                }));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"' | '=' | '!' | '<' | '>') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(match w.as_str() {
                    "contains" => Token::Op(Op::Contains),
                    "doesNotContain" => Token::Op(Op::DoesNotContain),
                    "derivedfrom" | "derivedFrom" => Token::Op(Op::DerivedFrom),
                    _ => Token::Word(w),
                });
            }
        }
        if out.len() > 512 {
            return Err(bad);
        }
    }
    Ok(out)
}

/// Parses search criteria; 708 for anything else.
pub fn parse(text: &str) -> Result<Criteria, UpnpError> {
    let text = text.trim();
    if text == "*" || text.is_empty() {
        return Ok(Criteria::All);
    }
    let toks = tokens(text)?;
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
    };
    let c = p.or()?;
    if p.at != p.toks.len() {
        return Err(UpnpError::BadSearchCriteria);
    }
    Ok(c)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self) -> Result<Criteria, UpnpError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Criteria::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Criteria, UpnpError> {
        let mut left = self.primary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Criteria::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Criteria, UpnpError> {
        let bad = UpnpError::BadSearchCriteria;
        match self.next().ok_or(bad)? {
            Token::Open => {
                self.depth += 1;
                if self.depth > 32 {
                    return Err(bad);
                }
                let c = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(c),
                    _ => Err(bad),
                }
            }
            Token::Word(prop) => {
                if !SEARCH_CAPS.split(',').any(|p| p == prop) {
                    return Err(bad);
                }
                match self.next().ok_or(bad)? {
                    Token::Op(op) => match self.next().ok_or(bad)? {
                        Token::Quoted(v) => Ok(Criteria::Rel(prop, op, v)),
                        _ => Err(bad),
                    },
                    Token::Word(w) if w == "exists" => match self.next().ok_or(bad)? {
                        Token::Word(b) if b == "true" => Ok(Criteria::Exists(prop, true)),
                        Token::Word(b) if b == "false" => Ok(Criteria::Exists(prop, false)),
                        _ => Err(bad),
                    },
                    _ => Err(bad),
                }
            }
            _ => Err(bad),
        }
    }
}

impl Criteria {
    /// Whether an object matches.
    pub fn matches(&self, obj: &dyn Properties) -> bool {
        match self {
            Criteria::All => true,
            Criteria::And(a, b) => a.matches(obj) && b.matches(obj),
            Criteria::Or(a, b) => a.matches(obj) || b.matches(obj),
            Criteria::Exists(p, want) => obj.property(p).is_some() == *want,
            Criteria::Rel(p, op, want) => {
                let Some(have) = obj.property(p) else {
                    return matches!(op, Op::Ne | Op::DoesNotContain);
                };
                let text = match &have {
                    Value::Text(t) => t.to_lowercase(),
                    Value::Number(n) => n.to_string(),
                };
                let want_l = want.to_lowercase();
                let ord = match (&have, want.trim().parse::<u64>()) {
                    (Value::Number(n), Ok(w)) => n.cmp(&w),
                    _ => text.cmp(&want_l),
                };
                use std::cmp::Ordering::*;
                match op {
                    Op::Eq => ord == Equal,
                    Op::Ne => ord != Equal,
                    Op::Lt => ord == Less,
                    Op::Le => ord != Greater,
                    Op::Gt => ord == Greater,
                    Op::Ge => ord != Less,
                    Op::Contains => text.contains(&want_l),
                    Op::DoesNotContain => !text.contains(&want_l),
                    Op::DerivedFrom => {
                        text == want_l
                            || text
                                .strip_prefix(want_l.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                    }
                }
            }
        }
    }
}

/// A parsed sort criteria: properties with a direction (true = descending).
pub type Sort = Vec<(String, bool)>;

/// Parses sort criteria (`+dc:title,-dc:date`); 709 for unknown properties
/// or a missing direction.
pub fn parse_sort(text: &str) -> Result<Sort, UpnpError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (desc, prop) = if let Some(p) = part.strip_prefix('+') {
            (false, p)
        } else if let Some(p) = part.strip_prefix('-') {
            (true, p)
        } else {
            // Some clients leave out the `+`.
            (false, part)
        };
        if !SORT_CAPS.split(',').any(|c| c == prop) {
            return Err(UpnpError::BadSortCriteria);
        }
        out.push((prop.to_owned(), desc));
    }
    Ok(out)
}

/// Compares two objects by sort criteria.
pub fn compare(sort: &Sort, a: &dyn Properties, b: &dyn Properties) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (prop, desc) in sort {
        let ord = match (a.property(prop), b.property(prop)) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => x.cmp(&y),
            (Some(Value::Text(x)), Some(Value::Text(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        let ord = if *desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CASES, mutated};
    use proptest::prelude::*;

    const CRITERIA: &[u8] = br#"(upnp:class derivedfrom "object.item.audioItem" and (dc:title contains "a\"b" or upnp:artist = "X")) and @refID exists false"#;
    const SORT: &[u8] = b"+upnp:artist,-dc:date,+dc:title";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Search and sort criteria parse or give a UPnP error.
        #[test]
        fn any_criteria_parse_or_fail(
            c in prop_oneof!["\\PC{0,64}", mutated(CRITERIA).prop_map(|b| String::from_utf8_lossy(&b).into_owned())],
            s in prop_oneof!["\\PC{0,32}", mutated(SORT).prop_map(|b| String::from_utf8_lossy(&b).into_owned())],
        ) {
            let _ = parse(&c);
            let _ = parse_sort(&s);
        }

        /// Deep nesting of parentheses is refused or parsed, not a stack overflow.
        #[test]
        fn nesting_is_bounded(depth in 0usize..20_000) {
            let text = format!("{}dc:title = \"a\"{}", "(".repeat(depth), ")".repeat(depth));
            let _ = parse(&text);
        }
    }
    use std::collections::HashMap;

    struct Obj(HashMap<&'static str, Value>);
    impl Properties for Obj {
        fn property(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
    }

    fn song() -> Obj {
        Obj(HashMap::from([
            (
                "upnp:class",
                Value::Text("object.item.audioItem.musicTrack".into()),
            ),
            ("dc:title", Value::Text("Tom & Jerry Theme".into())),
            ("upnp:artist", Value::Text("Glow Band".into())),
            ("res@size", Value::Number(42_000)),
        ]))
    }

    #[test]
    fn searches() {
        let s = song();
        let yes = [
            "*",
            "upnp:class derivedfrom \"object.item.audioItem\"",
            "upnp:class derivedfrom \"object.item\"",
            "upnp:class = \"object.item.audioItem.musicTrack\"",
            "upnp:class=\"object.item.audioItem.musicTrack\"",
            "dc:title contains \"jerry\"",
            "dc:title doesNotContain \"spike\"",
            "(upnp:class derivedfrom \"object.item.videoItem\" or upnp:class derivedfrom \"object.item.audioItem\") and dc:title contains \"Tom\"",
            "upnp:artist exists true and upnp:album exists false",
            "res@size > \"1000\" and res@size <= \"42000\"",
            "dc:title != \"Other\"",
            "dc:title contains \"say \\\"hi\\\"\" or dc:title contains \"theme\"",
        ];
        for q in yes {
            assert!(parse(q).unwrap().matches(&s), "{q}");
        }
        let no = [
            "upnp:class derivedfrom \"object.item.audio\"",
            "upnp:class derivedfrom \"object.item.videoItem\"",
            "dc:title contains \"spike\"",
            "upnp:album exists true",
            "res@size < \"1000\"",
            "dc:title contains \"x\" and dc:title contains \"tom\"",
        ];
        for q in no {
            assert!(!parse(q).unwrap().matches(&s), "{q}");
        }
        for bad in [
            "dc:title",
            "dc:title contains",
            "dc:title contains jerry",
            "dc:title contains \"unterminated",
            "(dc:title contains \"x\"",
            "dc:title contains \"x\")",
            "dc:title contains \"x\" and",
            "bogus:prop = \"x\"",
            "upnp:album exists maybe",
            "dc:title == \"x\"",
            "and and and",
            &"(".repeat(100),
        ] {
            assert_eq!(parse(bad), Err(UpnpError::BadSearchCriteria), "{bad}");
        }
    }

    #[test]
    fn sorts() {
        assert_eq!(
            parse_sort("+dc:title,-dc:date").unwrap(),
            vec![("dc:title".into(), false), ("dc:date".into(), true)]
        );
        assert_eq!(parse_sort("").unwrap(), vec![]);
        assert_eq!(
            parse_sort("dc:title").unwrap(),
            vec![("dc:title".into(), false)]
        );
        assert_eq!(parse_sort("+bogus:x"), Err(UpnpError::BadSortCriteria));
        let a = song();
        let mut b = song();
        b.0.insert("dc:title", Value::Text("alpha".into()));
        let sort = parse_sort("+dc:title").unwrap();
        assert_eq!(compare(&sort, &b, &a), std::cmp::Ordering::Less);
        let sort = parse_sort("-dc:title").unwrap();
        assert_eq!(compare(&sort, &b, &a), std::cmp::Ordering::Greater);
    }
}
