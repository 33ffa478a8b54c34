//! Cron schedules (parsed by `rkube_api::cron`, as CronJob validation parses them) evaluated
//! in an IANA time zone. The next-time search follows the classic cron library's semantics, so
//! daylight-saving changes behave as in Kubernetes: a time inside a spring-forward gap is
//! skipped, and one inside a fall-back overlap runs for both instants.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned, civil};
use rkube_api::cron::{CronFields, CronSchedule, parse_cron};

/// How far ahead a search looks before deciding a schedule never fires (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i16 = 5;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Five cron fields.
    Fields(CronFields),
    /// `@every <duration>`: a fixed period in whole seconds, independent of the time zone.
    Every(i64),
}

impl Schedule {
    /// Parses `spec` (five fields or a macro) to be evaluated in `tz`.
    pub fn parse(spec: &str, tz: TimeZone) -> Result<Schedule, String> {
        let kind = match parse_cron(spec)? {
            CronSchedule::Fields(fields) => Kind::Fields(fields),
            // The cron library rounds periods below a second up to one second.
            CronSchedule::Every(period) => Kind::Every(i64::try_from(period.as_secs()).unwrap_or(i64::MAX).max(1)),
        };
        Ok(Schedule { kind, tz })
    }

    /// The first time strictly after `after` the schedule fires, or None when it never does
    /// within the next few years.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(secs) => Timestamp::from_second(after.as_second().checked_add(*secs)?).ok(),
            Kind::Fields(f) => next_after(f, after, &self.tz),
        }
    }
}

/// Whether `t`'s day passes the day-of-month and day-of-week fields, combined as cron does.
fn day_matches(f: &CronFields, t: &Zoned) -> bool {
    let dom = has(f.dom, t.day());
    let dow = has(f.dow, t.weekday().to_sunday_zero_offset());
    if f.dom_star || f.dow_star { dom && dow } else { dom || dow }
}

/// Walks month, day, hour and minute forward until all match. Days move in civil time
/// (midnight to midnight); hours and minutes move in absolute time, so a wall-clock hour
/// that does not exist is never matched and a repeated one is matched twice.
fn next_after(f: &CronFields, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let first_minute = after.as_second().div_euclid(60).checked_add(1)?.checked_mul(60)?;
    let mut t = Timestamp::from_second(first_minute).ok()?.to_zoned(tz.clone());
    let year_limit = t.year().saturating_add(SEARCH_YEARS);
    // Once a field had to move, the smaller fields restart from their minimum.
    let mut moved = false;
    'wrap: loop {
        if t.year() > year_limit {
            return None;
        }
        while !has(f.month, t.month()) {
            if !moved {
                moved = true;
                t = midnight(civil::date(t.year(), t.month(), 1), tz)?;
            }
            t = t.checked_add(1.month()).ok()?;
            if t.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(f, &t) {
            if !moved {
                moved = true;
                t = midnight(t.date(), tz)?;
            }
            t = midnight(t.date().checked_add(1.day()).ok()?, tz)?;
            if t.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(f.hour, t.hour()) {
            if !moved {
                moved = true;
                t = t.date().at(t.hour(), 0, 0, 0).to_zoned(tz.clone()).ok()?;
            }
            t = t.checked_add(1.hour()).ok()?;
            if t.hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(f.minute, t.minute()) {
            moved = true;
            t = t.checked_add(1.minute()).ok()?;
            if t.minute() == 0 {
                continue 'wrap;
            }
        }
        return Some(t.timestamp());
    }
}

/// The start of `date` in `tz` (the first instant after a gap when midnight does not exist).
fn midnight(date: civil::Date, tz: &TimeZone) -> Option<Zoned> {
    date.at(0, 0, 0, 0).to_zoned(tz.clone()).ok()
}

fn has(bits: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|v| v < 64 && bits & (1u64 << v) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, tz: &str, after: &str) -> String {
        let s = Schedule::parse(spec, TimeZone::get(tz).unwrap()).unwrap();
        s.next_after(at(after)).unwrap().to_zoned(TimeZone::get(tz).unwrap()).to_string()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        assert_eq!(next("* * * * *", "UTC", "2026-03-01T10:00:00Z"), "2026-03-01T10:01:00+00:00[UTC]");
        assert_eq!(next("* * * * *", "UTC", "2026-03-01T10:00:30Z"), "2026-03-01T10:01:00+00:00[UTC]");
        assert_eq!(next("*/15 * * * *", "UTC", "2026-03-01T10:16:00Z"), "2026-03-01T10:30:00+00:00[UTC]");
        assert_eq!(next("5,35 9-17 * * *", "UTC", "2026-03-01T17:40:00Z"), "2026-03-02T09:05:00+00:00[UTC]");
        assert_eq!(next("0 0 1 JAN *", "UTC", "2026-03-01T00:00:00Z"), "2027-01-01T00:00:00+00:00[UTC]");
        // 2026-03-01 is a Sunday; the next Monday-to-Friday 08:30 is the 2nd.
        assert_eq!(next("30 8 * * MON-FRI", "UTC", "2026-03-01T09:00:00Z"), "2026-03-02T08:30:00+00:00[UTC]");
        assert_eq!(next("0 12 10/5 * *", "UTC", "2026-03-16T00:00:00Z"), "2026-03-20T12:00:00+00:00[UTC]");
        assert_eq!(next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00+00:00[UTC]");
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_like_cron() {
        // Both restricted: either may match (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * FRI", "UTC", "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00+00:00[UTC]");
        assert_eq!(next("0 0 14 * FRI", "UTC", "2026-03-07T00:00:00Z"), "2026-03-13T00:00:00+00:00[UTC]");
        // One is a star: only the other restricts.
        assert_eq!(next("0 0 * * 5", "UTC", "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00+00:00[UTC]");
        assert_eq!(next("0 0 13 * *", "UTC", "2026-03-01T00:00:00Z"), "2026-03-13T00:00:00+00:00[UTC]");
        // `*/1` keeps the star; `*/2` does not.
        assert_eq!(next("0 0 */2 * 5", "UTC", "2026-03-01T00:00:00Z"), "2026-03-03T00:00:00+00:00[UTC]");
    }

    #[test]
    fn macros_and_every() {
        assert_eq!(next("@hourly", "UTC", "2026-03-01T10:00:00Z"), "2026-03-01T11:00:00+00:00[UTC]");
        assert_eq!(next("@daily", "UTC", "2026-03-01T10:00:00Z"), "2026-03-02T00:00:00+00:00[UTC]");
        assert_eq!(next("@weekly", "UTC", "2026-03-02T10:00:00Z"), "2026-03-08T00:00:00+00:00[UTC]");
        assert_eq!(next("@monthly", "UTC", "2026-03-02T10:00:00Z"), "2026-04-01T00:00:00+00:00[UTC]");
        assert_eq!(next("@yearly", "UTC", "2026-03-02T10:00:00Z"), "2027-01-01T00:00:00+00:00[UTC]");
        assert_eq!(next("@every 1h30m", "UTC", "2026-03-02T10:00:00Z"), "2026-03-02T11:30:00+00:00[UTC]");
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z"),
            "2026-01-11T09:00:00+01:00[Europe/Berlin]"
        );
        // Spring forward (2026-03-29 in Berlin: 02:00 -> 03:00): 02:30 does not exist that day.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
            "2026-03-30T02:30:00+02:00[Europe/Berlin]"
        );
        // Fall back (2026-10-25: 03:00 -> 02:00): 02:30 happens twice and both run.
        let first = next("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z");
        assert_eq!(first, "2026-10-25T02:30:00+02:00[Europe/Berlin]");
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z"),
            "2026-10-25T02:30:00+01:00[Europe/Berlin]"
        );
        // A day schedule keeps firing at local midnight across the change.
        assert_eq!(
            next("0 0 * * *", "America/New_York", "2026-03-08T04:59:00Z"),
            "2026-03-08T00:00:00-05:00[America/New_York]"
        );
        assert_eq!(
            next("0 0 * * *", "America/New_York", "2026-03-08T05:00:00Z"),
            "2026-03-09T00:00:00-04:00[America/New_York]"
        );
    }

    #[test]
    fn invalid_schedules() {
        let parse = |s: &str| Schedule::parse(s, TimeZone::UTC);
        assert!(parse("* * * *").is_err());
        assert!(parse("60 * * * *").is_err());
        assert!(parse("* * 0 * *").is_err());
        assert!(parse("* * * 13 *").is_err());
        assert!(parse("*/0 * * * *").is_err());
        assert!(parse("5-1 * * * *").is_err());
        assert!(parse("@sometimes").is_err());
        assert!(parse("@every forever").is_err());
        // A valid but impossible date never fires.
        assert!(parse("0 0 30 2 *").unwrap().next_after(at("2026-01-01T00:00:00Z")).is_none());
    }
}
