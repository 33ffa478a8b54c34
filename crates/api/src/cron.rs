//! Cron schedules as Kubernetes reads them (the standard five fields with lists, ranges,
//! steps, `*`/`?` and month/day names, the `@yearly`..`@hourly` macros and `@every`), parsed
//! once here for both CronJob validation and the CronJob controller. Error messages follow
//! Kubernetes' parser, since validation returns them to users.

use crate::duration::parse_go_duration;
use std::time::Duration;

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronSchedule {
    /// Five cron fields.
    Fields(CronFields),
    /// `@every <duration>`: a fixed period.
    Every(Duration),
}

/// One bit per allowed value of each field, plus whether the day fields were written as `*`
/// (which switches the day-of-month / day-of-week combination from OR to AND, as cron does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFields {
    /// Minutes 0-59.
    pub minute: u64,
    /// Hours 0-23.
    pub hour: u64,
    /// Days of the month 1-31.
    pub dom: u64,
    /// Months 1-12.
    pub month: u64,
    /// Days of the week 0-6, Sunday first.
    pub dow: u64,
    /// Day of month was `*` or `?`.
    pub dom_star: bool,
    /// Day of week was `*` or `?`.
    pub dow_star: bool,
}

/// Parses a schedule (five fields or a descriptor).
pub fn parse_cron(schedule: &str) -> Result<CronSchedule, String> {
    let s = schedule.trim();
    let expanded = match s {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    if let Some(descriptor) = expanded.strip_prefix('@') {
        return match descriptor.strip_prefix("every ") {
            Some(d) => parse_go_duration(d)
                .map(CronSchedule::Every)
                .ok_or_else(|| format!("failed to parse duration {s}: time: invalid duration \"{}\"", d.trim())),
            None => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    let (minute, _) = cron_field(fields[0], 0, 59, &[], 0)?;
    let (hour, _) = cron_field(fields[1], 0, 23, &[], 0)?;
    let (dom, dom_star) = cron_field(fields[2], 1, 31, &[], 0)?;
    let (month, _) = cron_field(fields[3], 1, 12, MONTHS, 1)?;
    let (dow, dow_star) = cron_field(fields[4], 0, 6, DAYS, 0)?;
    Ok(CronSchedule::Fields(CronFields { minute, hour, dom, month, dow, dom_star, dow_star }))
}

/// One comma-separated field within `min..=max` (`names[i]` stands for `i + name_base`): the
/// bits it allows, and whether it was a bare `*`/`?` (a `*` with a step above one is not).
fn cron_field(field: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<(u64, bool), String> {
    let atoi = |s: &str| format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax");
    let mut bits = 0u64;
    let mut star = false;
    for expr in field.split(',') {
        let (range, step) = match expr.split('/').collect::<Vec<_>>().as_slice() {
            [r] => (*r, None),
            [r, s] => (*r, Some(*s)),
            _ => return Err(format!("too many slashes: {expr}")),
        };
        let number = |s: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                return Ok(u32::try_from(i).unwrap_or(0) + name_base);
            }
            s.parse::<u32>().map_err(|_| atoi(s))
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n > 0 => n,
                Ok(_) => return Err(format!("step of range should be a positive number: {expr}")),
                Err(_) => return Err(atoi(s)),
            },
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (min, max, step == 1)
        } else {
            match range.split('-').collect::<Vec<_>>().as_slice() {
                // "N/step" means N through the maximum.
                [a] => {
                    let a = number(a)?;
                    (a, if expr.contains('/') { max } else { a }, false)
                }
                [a, b] => (number(a)?, number(b)?, false),
                _ => return Err(format!("too many hyphens: {expr}")),
            }
        };
        if start < min {
            return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
        }
        if end > max {
            return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
        }
        if start > end {
            return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
        }
        star |= is_star;
        let mut v = start;
        while v <= end {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok((bits, star))
}
