//! Go-style duration strings (`"5m"`, `"1h30m"`, `"250ms"`, `"1.5h"`), as the
//! seed projects' YAML files wrote them, in both directions.

use crate::{Error, Result};
use std::time::Duration;

const NANOS_PER: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µ, MICRO SIGN, as Go accepts
    ("\u{3bc}s", 1_000), // μ, GREEK SMALL LETTER MU, as Go accepts
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    // Go has no day unit; neither do we, but we say so clearly below.
    ("d", 0),
];

/// Parses a Go duration string such as `"5m"`, `"1h30m"`, `"250ms"`,
/// `"5m0s"` or `"1.5h"`.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. `"0"` alone is zero.
/// Negative durations are refused, since every duration in kvs is a
/// length of time.
///
/// ```
/// use std::time::Duration;
/// use kvs::parse_duration;
///
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert!(parse_duration("5 minutes").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |why: &str| Error::config(format!("invalid duration {text:?}: {why}"));
    let mut rest = text.trim();
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(bad("durations must not be negative"));
    }
    if rest.is_empty() {
        return Err(bad(
            "expected a number and a unit, e.g. \"5m\" or \"250ms\"",
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad("expected a number before each unit"));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale = match NANOS_PER.iter().find(|(name, _)| *name == unit) {
            Some((_, 0)) => return Err(bad("there is no day unit; use hours, e.g. \"24h\"")),
            Some((_, scale)) => *scale,
            None if unit.is_empty() => {
                return Err(bad("missing unit; use ns, us, ms, s, m or h"));
            }
            None => {
                return Err(bad(&format!(
                    "unknown unit {unit:?}; use ns, us, ms, s, m or h"
                )))
            }
        };
        let too_long = || bad("too large");
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(too_long)?;
        // Digits beyond nanosecond precision cannot change the result.
        let mut frac_scale = scale;
        for digit in frac_part.bytes().take(30) {
            frac_scale /= 10;
            nanos += u128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad("too large"))?;
    // `total % 1e9` is below 1e9, so it always fits a u32.
    let sub = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way Go does: `"1h30m0s"`, `"250ms"`, `"0s"`.
///
/// ```
/// use std::time::Duration;
/// use kvs::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
/// assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
/// ```
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = fraction(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / scale` in decimal, without trailing zeros.
fn fraction(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_examples() {
        let cases = [
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("5m0s", 300_000),
            ("1h", 3_600_000),
            ("1.5h", 5_400_000),
            (".5s", 500),
            ("1s500ms", 1_500),
            ("0", 0),
            ("0s", 0),
            ("+2s", 2_000),
            ("1000us", 1),
            ("1000µs", 1),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        assert_eq!(parse_duration("1ns").unwrap(), Duration::from_nanos(1));
    }

    #[test]
    fn bad_durations_are_named() {
        for text in [
            "",
            "5",
            "-5m",
            "5 m",
            "m",
            "5x",
            "1d",
            ".s",
            "1.2.3s",
            "99999999999999999999999h",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{text}");
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,20}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn format_round_trips(nanos in 0u64..u64::MAX / 4) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
