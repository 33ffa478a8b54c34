//! Text forms of meta/v1 Time, MicroTime and Duration, matching Go's formatting.

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 for a proleptic Gregorian date (era-based, exact for all years).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of `days_from_civil`: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Format Unix time as RFC 3339 in UTC; `micros` adds six fractional digits (MicroTime).
/// Go refuses to marshal years outside 0..=9999, so those are an error here too.
pub(crate) fn format_rfc3339(seconds: i64, nanos: i32, micros: bool) -> Result<String, String> {
    let days = seconds.div_euclid(SECS_PER_DAY);
    let secs_of_day = seconds.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(format!("timestamp {seconds} is outside years 0000-9999"));
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if micros {
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(format!("nanos {nanos} out of range"));
        }
        out.push_str(&format!(".{:06}", nanos / 1000));
    }
    out.push('Z');
    Ok(out)
}

/// Parse an RFC 3339 timestamp into (Unix seconds, nanoseconds).
pub(crate) fn parse_rfc3339(text: &str) -> Result<(i64, i32), String> {
    let bad = || format!("{text:?} is not an RFC 3339 timestamp");
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = b.get(range).ok_or_else(bad)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(digits
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return Err(bad());
    }
    let (year, month, day) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos = 0i32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        // Keep nanosecond precision; further digits are truncated, as Go does.
        let digits = &b[start..i];
        for k in 0..9 {
            nanos = nanos * 10 + digits.get(k).map_or(0, |d| i32::from(d - b'0'));
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (i64::from(num(i + 1..i + 3)?), i64::from(num(i + 4..i + 6)?));
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let local = days * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second);
    Ok((local - offset, nanos))
}

const NANOS_PER: [(&str, u64); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Write `v / 10^prec` with its fraction, trailing zeros (and a bare point) dropped.
fn push_fraction(out: &mut String, v: u64, prec: u32) {
    let scale = 10u64.pow(prec);
    out.push_str(&(v / scale).to_string());
    let frac = v % scale;
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = prec as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Format nanoseconds like Go's `time.Duration.String()`: "1h0m0s", "1.5s", "300ms".
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let u = nanos.unsigned_abs();
    if u < 1_000 {
        out.push_str(&format!("{u}ns"));
    } else if u < 1_000_000 {
        push_fraction(&mut out, u, 3);
        out.push_str("µs");
    } else if u < 1_000_000_000 {
        push_fraction(&mut out, u, 6);
        out.push_str("ms");
    } else {
        let secs = u / 1_000_000_000;
        let (h, m) = (secs / 3600, secs / 60 % 60);
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        push_fraction(&mut out, u % 60_000_000_000, 9);
        out.push('s');
    }
    out
}

/// Parse a Go duration string ("1h30m", "1.5s", "-2ms", "0") into nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a Go duration");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
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
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos = match unit {
            "µs" | "μs" => 1_000,
            _ => {
                NANOS_PER
                    .iter()
                    .find(|(u, _)| *u == unit)
                    .ok_or_else(bad)?
                    .1
            }
        };
        let unit_nanos = u128::from(unit_nanos);
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        total = total
            .checked_add(int.checked_mul(unit_nanos).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        // Fractions beyond nanosecond resolution cannot change the result: keep 18 digits.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        if !frac_digits.is_empty() {
            let frac: u128 = frac_digits.parse().map_err(|_| bad())?;
            total += frac * unit_nanos / 10u128.pow(frac_digits.len() as u32);
        }
        if total > u128::from(i64::MAX as u64) + u128::from(negative) {
            return Err(bad());
        }
        rest = after;
    }
    let magnitude = i128::try_from(total).map_err(|_| bad())?;
    i64::try_from(if negative { -magnitude } else { magnitude }).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let (s, n) = parse_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!((s, n), (1_704_164_645, 0));
        assert_eq!(format_rfc3339(s, 0, false).unwrap(), "2024-01-02T03:04:05Z");
        assert_eq!(
            format_rfc3339(s, 123_456_789, true).unwrap(),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            parse_rfc3339("2024-01-02T05:04:05.5+02:00").unwrap(),
            (s, 500_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z").unwrap(), (-1, 0));
        assert_eq!(
            format_rfc3339(-1, 0, false).unwrap(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400, 0, false).unwrap(),
            "2000-02-29T00:00:00Z"
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(format_rfc3339(i64::MAX, 0, false).is_err());
    }

    #[test]
    fn go_durations() {
        for (nanos, text) in [
            (0, "0s"),
            (3_600_000_000_000, "1h0m0s"),
            (30_000_000_000, "30s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (300_000_000, "300ms"),
            (1_500, "1.5µs"),
            (12, "12ns"),
            (-2_000_000, "-2ms"),
            (i64::MAX, "2562047h47m16.854775807s"),
        ] {
            assert_eq!(format_duration(nanos), text);
            assert_eq!(parse_duration(text).unwrap(), nanos, "{text}");
        }
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration(".5s").unwrap(), 500_000_000);
        assert_eq!(parse_duration("-9223372036854775808ns").unwrap(), i64::MIN);
        for bad in ["", "5", "1x", "s", "-", "9223372036854775808ns", "1.s.s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
