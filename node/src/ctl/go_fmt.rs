//! Go-compatible parsing and formatting, so atollctl reads and prints the same strings as
//! etcdctl: durations (`time.ParseDuration`, `time.Duration.String`), byte sizes
//! (`go-humanize.Bytes`, used by `endpoint status`) and `strconv.ParseInt` errors.

use std::time::Duration;

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Go's `time.Duration` is an int64 of nanoseconds: nothing longer is representable.
const NANOS_MAX: u128 = i64::MAX as u128;

/// Parses a Go duration such as `2s`, `500ms`, `1m30s` or `1.5h` (`time.ParseDuration`),
/// with Go's error texts. Negative durations are refused: every atollctl duration is a
/// timeout.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.starts_with('-') {
        return Err(format!("time: invalid duration {text:?} (must not be negative)"));
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid());
    }
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, fraction, after_number) = leading_number(rest).ok_or_else(invalid)?;
        let unit_len = after_number.find(|c: char| c == '.' || c.is_ascii_digit());
        let unit_len = unit_len.unwrap_or(after_number.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let (unit, next) = after_number.split_at(unit_len);
        let unit_nanos = unit_nanos(unit)
            .ok_or_else(|| format!("time: unknown unit {unit:?} in duration {text:?}"))?;
        total = total.saturating_add(component_nanos(whole, fraction, unit_nanos));
        if total > NANOS_MAX {
            return Err(invalid());
        }
        rest = next;
    }
    let nanos = u64::try_from(total).map_err(|_| invalid())?;
    Ok(Duration::from_nanos(nanos))
}

/// Splits `[0-9]*(\.[0-9]*)?` off the front of `text`: the digits before and after the
/// point, and the rest. `None` when there is no digit at all.
fn leading_number(text: &str) -> Option<(&str, &str, &str)> {
    let whole_len = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (whole, rest) = text.split_at(whole_len);
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after_point) => {
            let len = after_point.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_point.len());
            after_point.split_at(len)
        }
        None => ("", rest),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    Some((whole, fraction, rest))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// `whole.fraction` units in nanoseconds, saturating (the caller checks the maximum).
fn component_nanos(whole: &str, fraction: &str, unit_nanos: u128) -> u128 {
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos.saturating_mul(10).saturating_add(u128::from(digit - b'0'));
    }
    nanos = nanos.saturating_mul(unit_nanos);
    // Digits past the 30th cannot change a result capped at i64::MAX nanoseconds.
    let mut scale = unit_nanos;
    for digit in fraction.bytes().take(30) {
        scale /= 10;
        nanos = nanos.saturating_add(u128::from(digit - b'0') * scale);
    }
    nanos
}

/// Formats a duration as Go's `time.Duration.String` does: `0s`, `850ns`, `1.5µs`,
/// `2.345678ms`, `1.5s`, `2m3s`, `1h0m0s`. Durations past Go's range are clamped to it.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos().min(NANOS_MAX);
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SECOND {
        let (unit, precision) = if nanos < NANOS_PER_MICRO {
            ("ns", 0)
        } else if nanos < NANOS_PER_MILLI {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (whole, fraction) = split_fraction(nanos, precision);
        return format!("{whole}{fraction}{unit}");
    }
    let (whole_seconds, fraction) = split_fraction(nanos, 9);
    let seconds = whole_seconds % 60;
    let minutes = whole_seconds / 60 % 60;
    let hours = whole_seconds / 3600;
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}{fraction}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}{fraction}s")
    } else {
        format!("{seconds}{fraction}s")
    }
}

/// Splits `value / 10^precision` into its integer part and `.digits` with trailing zeros
/// removed (Go's `fmtFrac`): the fraction is empty when it is zero.
fn split_fraction(value: u128, precision: u32) -> (u128, String) {
    let divisor = 10u128.pow(precision);
    let fraction = value % divisor;
    if fraction == 0 {
        return (value / divisor, String::new());
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    (value / divisor, format!(".{}", digits.trim_end_matches('0')))
}

/// Formats a byte count as go-humanize's `Bytes` (SI units): `9 B`, `20 kB`, `2.1 MB`.
pub fn humanize_bytes(bytes: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let value = bytes as f64;
    let exponent = (value.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(exponent as usize).min(SIZES.len() - 1)];
    let scaled = (value / 1000f64.powf(exponent) * 10.0 + 0.5).floor() / 10.0;
    if scaled < 10.0 { format!("{scaled:.1} {suffix}") } else { format!("{scaled:.0} {suffix}") }
}

/// Parses a signed 64-bit integer in `radix` with Go's `strconv.ParseInt` error texts,
/// e.g. `strconv.ParseInt: parsing "xyz": invalid syntax`.
pub fn parse_int(text: &str, radix: u32) -> Result<i64, String> {
    i64::from_str_radix(text, radix).map_err(|error| {
        let why = match error.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {text:?}: {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("+3us"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_duration("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn duration_errors_match_go() {
        assert_eq!(parse_duration(""), Err(r#"time: invalid duration """#.into()));
        assert_eq!(parse_duration("abc"), Err(r#"time: invalid duration "abc""#.into()));
        assert_eq!(parse_duration("5"), Err(r#"time: missing unit in duration "5""#.into()));
        assert_eq!(parse_duration("5x"), Err(r#"time: unknown unit "x" in duration "5x""#.into()));
        assert_eq!(parse_duration("."), Err(r#"time: invalid duration ".""#.into()));
        assert!(parse_duration("-1s").is_err_and(|e| e.contains("must not be negative")));
        assert!(parse_duration("99999999999h").is_err());
        assert!(parse_duration("1s.").is_err());
    }

    #[test]
    fn formats_like_go_duration_string() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(850), "850ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(2_345_678), "2.345678ms"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_secs(123), "2m3s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_nanos(3_723_000_000_001), "1h2m3.000000001s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_duration(duration), expected, "{duration:?}");
        }
        assert_eq!(format_duration(Duration::MAX), "2562047h47m16.854775807s");
    }

    #[test]
    fn humanizes_like_go_humanize() {
        let cases = [
            (0, "0 B"),
            (9, "9 B"),
            (10, "10 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (20_480, "20 kB"),
            (20_500, "20 kB"),
            (21_500, "22 kB"),
            (2_100_000, "2.1 MB"),
            (u64::MAX, "18 EB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(humanize_bytes(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn parse_int_errors_match_go() {
        assert_eq!(parse_int("694d", 16), Ok(0x694d));
        assert_eq!(
            parse_int("xyz", 16),
            Err(r#"strconv.ParseInt: parsing "xyz": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("ffffffffffffffff", 16),
            Err(r#"strconv.ParseInt: parsing "ffffffffffffffff": value out of range"#.into())
        );
        assert_eq!(
            parse_int("", 10),
            Err(r#"strconv.ParseInt: parsing "": invalid syntax"#.into())
        );
    }
}
