//! Durations as Go's `time.ParseDuration` reads them (`"1m30s"`, `"1.5s"`, `"-2h"`, `"300µs"`):
//! debrid-mount-monitor's `config.json` was written for it. Hand-written because no crate reads
//! exactly this grammar (humantime reads `"1h 30m"` but not `"-5s"`, `".5s"` or `"μs"`); the
//! port follows Go's `time/format.go` step by step, overflow checks included.

/// Why a string is not a Go duration; the message is Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Nanoseconds in each unit Go knows. `µs` is U+00B5 (micro sign), `μs` U+03BC (Greek mu): Go
/// accepts both, and both are what people paste.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const LIMIT: u64 = 1 << 63;

/// Parses `text` into signed nanoseconds, exactly as Go's `time.ParseDuration` does.
pub fn parse_go(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {text:?}"));
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some((&sign @ (b'-' | b'+'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (mut value, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let had_integer = s.len() != before;
        let mut fraction = 0u64;
        let mut scale = 1f64;
        let mut had_fraction = false;
        if let Some((b'.', rest)) = s.split_first() {
            let before = rest.len();
            let (f, sc, rest) = leading_fraction(rest);
            had_fraction = rest.len() != before;
            (fraction, scale, s) = (f, sc, rest);
        }
        if !had_integer && !had_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError(format!(
                "time: missing unit in duration {text:?}"
            )));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let Some(&(_, nanos)) = UNITS.iter().find(|(name, _)| name.as_bytes() == unit) else {
            return Err(DurationError(format!(
                "time: unknown unit {:?} in duration {text:?}",
                String::from_utf8_lossy(unit)
            )));
        };
        if value > LIMIT / nanos {
            return Err(invalid());
        }
        value *= nanos;
        if fraction > 0 {
            // Go adds the fraction in floating point, truncating, and so do we.
            value += (fraction as f64 * (nanos as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        // -(1<<63) is i64::MIN, the one magnitude that fits only when negative.
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// `[0-9]*` as a number; `None` on overflow.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for &c in &s[..digits] {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// `[0-9]*` after the point: its value and its scale (10^digits kept); digits beyond what fits
/// are dropped, as Go drops them.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..digits] {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

/// A duration as Go's `Duration.String` writes it (`"30s"`, `"500ms"`, `"1m30s"`, `"1h0m0s"`,
/// `"0s"`): debrid-mount-monitor's log lines carry durations in this form.
pub fn format_go(duration: std::time::Duration) -> String {
    /// `whole.fraction` of `nanos` in `unit`, without trailing zeros.
    fn decimal(nanos: u128, unit: u128, digits: usize) -> String {
        let (whole, fraction) = (nanos / unit, nanos % unit);
        if fraction == 0 {
            whole.to_string()
        } else {
            let fraction = format!("{fraction:0digits$}");
            format!("{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
    let nanos = duration.as_nanos();
    match nanos {
        0 => "0s".to_owned(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => format!("{}\u{b5}s", decimal(nanos, 1_000, 3)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(nanos, 1_000_000, 6)),
        _ => {
            let secs = duration.as_secs();
            let seconds = decimal(
                u128::from(secs % 60) * 1_000_000_000 + u128::from(duration.subsec_nanos()),
                1_000_000_000,
                9,
            );
            match (secs / 3600, secs / 60 % 60) {
                (0, 0) => format!("{seconds}s"),
                (0, minutes) => format!("{minutes}m{seconds}s"),
                (hours, minutes) => format!("{hours}h{minutes}m{seconds}s"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn what_go_accepts() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("0s", 0),
            ("-0", 0),
            ("+5s", 5 * S),
            ("30s", 30 * S),
            ("1m30s", 90 * S),
            ("1.5s", 3 * S / 2),
            (".5s", S / 2),
            ("5.s", 5 * S),
            ("500ms", S / 2),
            ("1h", 3600 * S),
            ("-5s", -5 * S),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("300µs", 300_000),
            ("300μs", 300_000),
            ("300us", 300_000),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.3333333333333333333h", 1_200_000_000_000),
        ];
        for &(text, nanos) in cases {
            assert_eq!(parse_go(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn what_go_refuses() {
        for text in [
            "",
            "-",
            "s",
            ".s",
            "5",
            "1.5",
            "5 s",
            " 5s",
            "5s ",
            "1d",
            "1sec",
            "3000000h",
            "-.s",
            "1e3s",
            "9223372036854775808ns",
        ] {
            assert!(parse_go(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_go("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go("1d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
    }

    /// Go's own `Duration.String` examples.
    #[test]
    fn formats_as_go_does() {
        use std::time::Duration;
        for (duration, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1\u{b5}s"),
            (Duration::from_micros(2_200), "2.2ms"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(3_300), "3.3s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(4 * 60_000 + 5_001), "4m5.001s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (
                Duration::from_millis(5 * 3_600_000 + 6 * 60_000 + 7_001),
                "5h6m7.001s",
            ),
        ] {
            assert_eq!(format_go(duration), text, "{duration:?}");
        }
    }
}
