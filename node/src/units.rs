//! Human units for durations and sizes in flags and the config file. A bare number keeps the
//! unit etcd uses for the same flag (milliseconds, bytes), so etcd command lines carry over.

/// Parses `"150ms"`, `"2s"`, `"1m"`, `"1h"`; a bare number is milliseconds (etcd's
/// `--heartbeat-interval 100`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("'{text}' is not a duration; write e.g. 150ms, 2s, 1m"))?;
    let millis = match unit.trim() {
        "" | "ms" => value,
        "us" | "µs" => value / 1000.0,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        "h" => value * 3_600_000.0,
        other => {
            return Err(format!("unknown duration unit '{other}' in '{text}'; use ms, s, m or h"));
        }
    };
    if !millis.is_finite() || millis < 0.0 {
        return Err(format!("'{text}' is not a valid duration"));
    }
    Ok(std::time::Duration::from_micros((millis * 1000.0) as u64))
}

/// Parses `"64MiB"`, `"1.5MiB"`, `"512KiB"`, `"2GB"`; a bare number is bytes (etcd's
/// `--max-request-bytes 1572864`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| format!("'{text}' is not a size; write e.g. 1572864, 64MiB"))?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => {
            return Err(format!("unknown size unit '{other}' in '{text}'; use B, KiB, MiB or GiB"));
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{text}' is not a valid size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_and_sizes_parse_with_etcd_defaults_for_bare_numbers() {
        assert_eq!(parse_duration("100"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(parse_bytes("1572864"), Ok(1_572_864));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
    }
}
