//! Human units on the command line: durations (`10s`, `500ms`, `2m`) and counts
//! (`1000000`, `1_000_000`, `1M`, `10k`). Parsers return one-line errors for clap to show.

use std::time::Duration;

/// Parses a duration: a decimal number followed by `us`, `ms`, `s`, `m` or `h`
/// (`10s`, `1.5s`, `250ms`). A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration; write it like 10s, 500ms or 2m"));
    }
    let seconds_per_unit = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use us, ms, s, m or h")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write it like 10s, 500ms or 2m"))?;
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > 365.0 * 86_400.0 {
        return Err(format!("{text:?} is too long a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a count: digits with optional `_` separators and an optional `k` (thousand) or
/// `M`/`m` (million) suffix.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1_000),
        Some((i, 'm' | 'M')) => (&text[..i], 1_000_000),
        _ => (text, 1),
    };
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text:?} is not a count; write it like 1000000, 1_000_000 or 1M"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{text:?} is too large a count"))
}

/// A comma-separated list of positive counts (`1,16,64,256`), one flag value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountList(pub Vec<u64>);

/// Parses a [`CountList`].
pub fn parse_count_list(text: &str) -> Result<CountList, String> {
    let list: Vec<u64> = text.split(',').map(parse_count).collect::<Result<_, _>>()?;
    if list.contains(&0) {
        return Err(format!("{text:?} holds a zero; every entry must be at least 1"));
    }
    Ok(CountList(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for bad in ["", "s", "10x", "ten", "1.2.3s", "-1s", "soon"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert!(parse_duration("99999999h").is_err());
    }

    #[test]
    fn counts_parse_with_separators_and_suffixes() {
        assert_eq!(parse_count("1000000"), Ok(1_000_000));
        assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("0"), Ok(0));
        for bad in ["", "k", "1.5M", "-3", "1e6", "99999999999999999999"] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn count_lists_refuse_zero() {
        assert_eq!(parse_count_list("1,16,64,256"), Ok(CountList(vec![1, 16, 64, 256])));
        assert!(parse_count_list("1,0").is_err());
        assert!(parse_count_list("1,,2").is_err());
    }
}
