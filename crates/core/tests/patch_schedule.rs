//! The stack's monthly schedule, read from infra/template.yaml, against the
//! core's Patch Tuesday rule over every month from 2026 to 2035: each month
//! gets exactly one rebuild (its first due fire; the month is the dedupe
//! key), after the second Tuesday's security release and within a day and
//! a half of it (issue 11, defect 8: `cron(0 3 ? * WED#2 *)` ran six days
//! early in months that start on a Wednesday).

use gild_core::patch_day;
use time::{Date, Duration, Month, PrimitiveDateTime, Time, Weekday};

/// The `PatchSchedule` parameter's default, as the template writes it.
fn template_schedule() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    let mut lines = text.lines().skip_while(|l| l.trim() != "PatchSchedule:");
    lines.next().expect("a PatchSchedule parameter");
    lines
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .expect("PatchSchedule has a Default")
        .to_string()
}

/// One field of an EventBridge cron expression: numbers, `*`, `?`, `a-b`,
/// lists, and `DOW#n` (the n-th such weekday) as EventBridge documents
/// them ("Cron expressions reference", Amazon EventBridge User Guide).
fn matches(field: &str, value: u32, names: &[&str]) -> bool {
    field.split(',').any(|part| match part {
        "*" | "?" => true,
        _ => {
            let number = |s: &str| -> u32 {
                names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(s))
                    .map(|i| i as u32 + 1)
                    .unwrap_or_else(|| s.parse().expect("a cron number"))
            };
            match part.split_once('-') {
                Some((a, b)) => (number(a)..=number(b)).contains(&value),
                None => number(part) == value,
            }
        }
    })
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The instants in `year`/`month` at which the cron expression fires.
fn fires(expression: &str, year: i32, month: Month) -> Vec<PrimitiveDateTime> {
    let inner = expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .expect("a cron() expression");
    let f: Vec<&str> = inner.split_whitespace().collect();
    assert_eq!(f.len(), 6, "EventBridge cron has six fields: {expression}");
    let (minute, hour, dom, mon, dow, yr) = (f[0], f[1], f[2], f[3], f[4], f[5]);
    assert!(
        (dom == "?") != (dow == "?"),
        "EventBridge wants `?` in exactly one of day-of-month and day-of-week"
    );
    let mut out = Vec::new();
    let mut day = Date::from_calendar_date(year, month, 1).unwrap();
    while day.month() == month {
        let weekday = day.weekday().number_days_from_sunday() + 1;
        let nth = (u32::from(day.day()) - 1) / 7 + 1;
        let dow_ok = match dow.split_once('#') {
            Some((d, n)) => matches(d, u32::from(weekday), &DAYS) && n.parse::<u32>() == Ok(nth),
            None => matches(dow, u32::from(weekday), &DAYS),
        };
        if matches(dom, u32::from(day.day()), &[])
            && matches(mon, u32::from(u8::from(month)), &[])
            && dow_ok
            && matches(yr, year as u32, &[])
        {
            for h in 0..24u8 {
                for m in 0..60u8 {
                    if matches(hour, u32::from(h), &[]) && matches(minute, u32::from(m), &[]) {
                        out.push(day.with_time(Time::from_hms(h, m, 0).unwrap()));
                    }
                }
            }
        }
        day = day.next_day().unwrap();
    }
    out
}

/// What goes wrong with `expression` in some month of 2026-2035, if anything.
fn problems(expression: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for year in 2026..=2035 {
        for m in 1..=12u8 {
            let month = Month::try_from(m).unwrap();
            let release = patch_day::release(year, month);
            let first_due = fires(expression, year, month)
                .into_iter()
                .map(|t| t.assume_utc())
                .find(|t| patch_day::due(*t).is_ok());
            match first_due {
                None => problems.push(format!(
                    "{year}-{m:02}: no fire after the release {release}"
                )),
                Some(t) if t - release > Duration::hours(36) => problems.push(format!(
                    "{year}-{m:02}: first rebuild at {t}, over 36 h after the release {release}"
                )),
                Some(t) => assert!(t >= release && t.month() == month),
            }
        }
    }
    problems
}

#[test]
fn every_month_from_2026_to_2035_rebuilds_once_after_patch_tuesday() {
    let schedule = template_schedule();
    let problems = problems(&schedule);
    assert!(problems.is_empty(), "{schedule}:\n{}", problems.join("\n"));
}

#[test]
fn the_second_wednesday_misses_months_that_start_on_a_wednesday() {
    // The old default: in 2026-04 and 2026-07 it fires on the 8th, six days
    // before the release, and never again that month.
    let problems = problems("cron(0 3 ? * WED#2 *)");
    assert!(
        problems.iter().any(|p| p.starts_with("2026-04")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("2026-07")),
        "{problems:?}"
    );
    assert_eq!(
        Date::from_calendar_date(2026, Month::April, 1)
            .unwrap()
            .weekday(),
        Weekday::Wednesday
    );
}
