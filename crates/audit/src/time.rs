//! Wall-clock time as unix nanoseconds and RFC 3339 UTC, without a
//! calendar dependency.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `2026-11-23T07:45:01.123456Z` (microseconds).
pub fn rfc3339(unix_nanos: u128) -> String {
    let secs = (unix_nanos / 1_000_000_000) as i64;
    let micros = (unix_nanos / 1_000 % 1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses the forms `query --since/--until` accept: RFC 3339 UTC
/// (`2026-11-23T07:45:01Z`, fraction optional) or a date (`2026-11-23`).
pub fn parse_rfc3339(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    let (mut hh, mut mm, mut ss, mut frac) = (0i64, 0i64, 0i64, 0u128);
    if b.len() > 10 {
        if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 {
            return None;
        }
        hh = s[11..13].parse().ok()?;
        mm = s[14..16].parse().ok()?;
        ss = s[17..19].parse().ok()?;
        let rest = s[19..].trim_end_matches('Z');
        if let Some(f) = rest.strip_prefix('.') {
            let digits: String = f.chars().take(9).collect();
            let n: u128 = digits.parse().ok()?;
            frac = n * 10u128.pow(9 - digits.len() as u32);
        } else if !rest.is_empty() {
            return None;
        }
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    (secs >= 0).then(|| secs as u128 * 1_000_000_000 + frac)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = 1_795_419_901_123_456_000u128;
        let s = rfc3339(t);
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            parse_rfc3339("2000-03-01"),
            Some(951_868_800 * 1_000_000_000)
        );
        assert_eq!(parse_rfc3339("2000-13-01"), None);
    }
}
