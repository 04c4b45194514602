//! Single byte ranges (RFC 9110 §14), on top of the `http-range-header` parser.
//!
//! Several ranges in one request are answered with the whole file (allowed by
//! the RFC, and what most file servers do); syntax errors are ignored too.

use std::ops::RangeInclusive;

/// What to send for a `Range` header and a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole file.
    Full,
    /// 206 with these bytes.
    Partial(RangeInclusive<u64>),
    /// 416: nothing of the file matches.
    Unsatisfiable,
}

/// Decides how to answer `header` (the `Range` value) for a file of `size` bytes.
pub fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(h) = header else {
        return RangeAnswer::Full;
    };
    // RFC 9110 §14.1.3: a suffix longer than the file means the whole file;
    // the parser calls that unsatisfiable, so it is answered here.
    if let Some(n) = h
        .trim()
        .strip_prefix("bytes=-")
        .and_then(|n| n.trim().parse::<u64>().ok())
        && n >= size
        && size > 0
        && n > 0
    {
        return RangeAnswer::Partial(0..=size - 1);
    }
    let Ok(parsed) = http_range_header::parse_range_header(h) else {
        return RangeAnswer::Full;
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => RangeAnswer::Partial(ranges[0].clone()),
        Ok(_) => RangeAnswer::Full,
        Err(_) => RangeAnswer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use RangeAnswer::*;
        assert_eq!(answer(None, 10), Full);
        assert_eq!(answer(Some("bytes=0-4"), 10), Partial(0..=4));
        assert_eq!(answer(Some("bytes=5-"), 10), Partial(5..=9));
        assert_eq!(answer(Some("bytes=-3"), 10), Partial(7..=9));
        assert_eq!(answer(Some("bytes=-300"), 10), Partial(0..=9));
        assert_eq!(answer(Some("bytes=8-100"), 10), Partial(8..=9));
        assert_eq!(answer(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(answer(Some("bytes=20-30"), 10), Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(answer(Some("lines=1-2"), 10), Full);
        assert_eq!(answer(Some("bytes=x-y"), 10), Full);
    }
}
