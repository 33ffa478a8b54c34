//! Human-readable ages ("5m12s", "3d4h", "<unknown>"), following apimachinery's
//! `duration.HumanDuration` and the printers' `translateTimestampSince`.

use jiff::Timestamp;
use serde_json::Value;

use crate::fields::opt_str;

const SECOND: i128 = 1_000_000_000;
const MINUTE: i128 = 60 * SECOND;
const HOUR: i128 = 60 * MINUTE;

/// Formats a signed duration given in nanoseconds with two or three significant figures.
///
/// The precision shrinks as the duration grows: seconds below two minutes, minutes and seconds
/// below ten minutes, whole minutes below three hours, hours and minutes below eight hours,
/// whole hours below two days, days and hours below eight days, whole days below two years,
/// years and days below eight years, and whole years beyond.
pub fn human_duration(nanos: i128) -> String {
    // Clocks of different machines disagree a little: anything within two seconds in the
    // future counts as "now"; further in the future is reported as invalid.
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// "3d" when the smaller unit is zero, "3d4h" otherwise.
fn with_remainder(big: i128, big_unit: &str, small: i128, small_unit: &str) -> String {
    if small == 0 { format!("{big}{big_unit}") } else { format!("{big}{big_unit}{small}{small_unit}") }
}

/// Parses an RFC 3339 timestamp as Kubernetes writes them (`metav1.Time` and `MicroTime`).
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// Nanoseconds from `from` to `to`.
pub(crate) fn between(from: Timestamp, to: Timestamp) -> i128 {
    to.as_nanosecond() - from.as_nanosecond()
}

/// The time elapsed since `ts`, or "<unknown>" when the timestamp is unset (Go's zero time).
pub(crate) fn since(now: Timestamp, ts: Option<&str>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration(between(t, now)),
        None => "<unknown>".into(),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(crate) fn age(obj: &Value, now: Timestamp) -> Value {
    since(now, opt_str(obj, "/metadata/creationTimestamp")).into()
}

/// A timestamp as Go's `time.RFC3339` prints it in UTC (whole seconds), used by the default
/// table's "Created At" column; an unset time prints as Go's zero time.
pub(crate) fn rfc3339(ts: Option<&str>) -> String {
    match ts.and_then(parse_time) {
        Some(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i128) -> String {
        human_duration(s * SECOND)
    }

    #[test]
    fn seconds_up_to_two_minutes() {
        assert_eq!(secs(0), "0s");
        assert_eq!(secs(59), "59s");
        assert_eq!(secs(90), "90s");
        assert_eq!(secs(119), "119s");
    }

    #[test]
    fn minutes_with_seconds_below_ten_minutes() {
        assert_eq!(secs(120), "2m");
        assert_eq!(secs(5 * 60 + 12), "5m12s");
        assert_eq!(secs(9 * 60 + 59), "9m59s");
        assert_eq!(secs(10 * 60 + 30), "10m");
        assert_eq!(secs(179 * 60 + 59), "179m");
    }

    #[test]
    fn hours() {
        assert_eq!(secs(3 * 3600), "3h");
        // Below three hours Kubernetes still counts minutes: 2h3m is "123m".
        assert_eq!(secs(2 * 3600 + 3 * 60), "123m");
        assert_eq!(secs(3 * 3600 + 5 * 60 + 59), "3h5m");
        assert_eq!(secs(7 * 3600 + 59 * 60 + 59), "7h59m");
        assert_eq!(secs(8 * 3600 + 30 * 60), "8h");
        assert_eq!(secs(47 * 3600), "47h");
    }

    #[test]
    fn days_and_years() {
        assert_eq!(secs(48 * 3600), "2d");
        assert_eq!(secs((3 * 24 + 4) * 3600), "3d4h");
        assert_eq!(secs((7 * 24 + 23) * 3600), "7d23h");
        assert_eq!(secs(8 * 24 * 3600 + 3600), "8d");
        assert_eq!(secs(400 * 24 * 3600), "400d");
        assert_eq!(secs(729 * 24 * 3600), "729d");
        assert_eq!(secs(730 * 24 * 3600), "2y");
        assert_eq!(secs((3 * 365 + 5) * 24 * 3600), "3y5d");
        assert_eq!(secs(9 * 365 * 24 * 3600 + 100 * 24 * 3600), "9y");
    }

    #[test]
    fn clock_skew() {
        assert_eq!(human_duration(-SECOND / 2), "0s");
        assert_eq!(secs(-1), "0s");
        assert_eq!(human_duration(-SECOND - SECOND / 2), "0s");
        assert_eq!(secs(-2), "<invalid>");
    }

    #[test]
    fn since_and_rfc3339() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        assert_eq!(since(now, Some("2024-05-01T11:54:48Z")), "5m12s");
        assert_eq!(since(now, Some("2024-05-01T11:59:59.500000Z")), "0s");
        assert_eq!(since(now, None), "<unknown>");
        assert_eq!(since(now, Some("garbage")), "<unknown>");
        assert_eq!(rfc3339(Some("2024-05-01T11:54:48.123Z")), "2024-05-01T11:54:48Z");
        assert_eq!(rfc3339(Some("2024-05-01T13:54:48+02:00")), "2024-05-01T11:54:48Z");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
    }
}
