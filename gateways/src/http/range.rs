//! Single byte ranges (RFC 9110 §14).
//!
//! Written here rather than with the `http-range-header` crate, which this
//! module used before: it refused `bytes=5-2` as unsatisfiable (416) where
//! the RFC says an invalid range set is ignored (200), and took `bytes=-0`
//! for a syntax error (200) where the RFC says a zero-length suffix is
//! unsatisfiable (416). The grammar is one line; the cases are the work.
//!
//! Several satisfiable ranges in one request are answered with the whole
//! file (allowed by the RFC, and what most file servers do).

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

/// One `range-spec` of a `bytes=` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From(u64, Option<u64>),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// Parses `bytes=spec, spec, …`; `None` for anything invalid (another unit,
/// bad numbers, `last < first`), which the RFC says to ignore.
fn parse(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut specs = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let (first, last) = spec.split_once('-')?;
        specs.push(if first.trim().is_empty() {
            Spec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = match last.trim() {
                "" => None,
                l => Some(number(l)?),
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            Spec::From(first, last)
        });
    }
    (!specs.is_empty()).then_some(specs)
}

/// Decides how to answer `header` (the `Range` value) for a file of `size` bytes.
pub fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(specs) = header.and_then(parse) else {
        return RangeAnswer::Full;
    };
    let satisfiable: Vec<RangeInclusive<u64>> = specs
        .iter()
        .filter_map(|s| match *s {
            Spec::From(first, _) if first >= size => None,
            Spec::From(first, last) => Some(first..=last.unwrap_or(u64::MAX).min(size - 1)),
            // A suffix longer than the file means the whole file.
            Spec::Suffix(n) if n == 0 || size == 0 => None,
            Spec::Suffix(n) => Some(size.saturating_sub(n)..=size - 1),
        })
        .collect();
    match satisfiable.as_slice() {
        [] => RangeAnswer::Unsatisfiable,
        [one] => RangeAnswer::Partial(one.clone()),
        _ => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::testing::CASES))]

        /// Any header gives a whole file, a range inside it, or 416.
        #[test]
        fn ranges_stay_inside_the_file(
            header in prop_oneof![
                "\\PC{0,40}",
                "bytes=[0-9 ,-]{0,24}",
                "(bytes|BYTES|items)=[0-9]{0,20}-[0-9]{0,20}",
            ],
            size in prop_oneof![Just(0u64), 1u64..100, Just(u64::MAX)],
        ) {
            if let RangeAnswer::Partial(r) = answer(Some(&header), size) {
                prop_assert!(r.start() <= r.end() && *r.end() < size, "{header:?} {size}");
            }
        }
    }

    #[test]
    fn table() {
        use RangeAnswer::*;
        let cases = [
            (None, Full),
            (Some("bytes=0-4"), Partial(0..=4)),
            (Some("bytes=5-"), Partial(5..=9)),
            (Some("bytes=-3"), Partial(7..=9)),
            (Some("bytes=-300"), Partial(0..=9)),
            (Some("bytes=8-100"), Partial(8..=9)),
            (Some("bytes=10-"), Unsatisfiable),
            (Some("bytes=20-30"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=0-1,4-5"), Full),
            (Some("bytes=0-1, 20-30"), Partial(0..=1)),
            (Some("bytes=5-2"), Full),
            (Some("bytes=0-1,5-2"), Full),
            (Some("lines=1-2"), Full),
            (Some("bytes=x-y"), Full),
            (Some("bytes="), Full),
            (Some("bytes=-"), Full),
            (Some("bytes=+1-2"), Full),
            (Some("bytes=1-18446744073709551616"), Full),
            (Some(" BYTES = 1 - 2 "), Partial(1..=2)),
            (Some("bytes=18446744073709551615-"), Unsatisfiable),
        ];
        for (header, want) in cases {
            assert_eq!(answer(header, 10), want, "{header:?}");
        }
        assert_eq!(answer(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(answer(Some("bytes=-5"), 0), Unsatisfiable);
    }
}
