//! When the monthly rebuild may run: after the month's Patch Tuesday.
//!
//! Microsoft releases the month's security updates on the second Tuesday
//! at 10:00 Pacific time (17:00 UTC in summer, 18:00 UTC in winter), and
//! Linux distributions publish continuously, so the monthly rebuild waits
//! for that release. EventBridge's cron cannot say "the day after the
//! second Tuesday": `WED#2` is six days early in a month that starts on a
//! Wednesday (2026-04-08, 2026-07-08). So the stack's schedule fires on
//! every day that can follow a second Tuesday (days 9-15) and this module
//! decides which fire counts: the first one at or after the release. The
//! month stays the dedupe key, so the later fires of that month are no-ops
//! in the ledger, and a fire missed on one day is made up the next.

use time::{Date, Duration, Month, OffsetDateTime, Time, Weekday};

/// The hour (UTC) after which the second Tuesday's release is out in every
/// season: 10:00 Pacific standard time.
pub const RELEASE_HOUR_UTC: u8 = 18;

/// The month's second Tuesday.
pub fn second_tuesday(year: i32, month: Month) -> Date {
    // Day 1 always exists; the second Tuesday is within days 8-14.
    let first = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
    let to_tuesday = (7 + Weekday::Tuesday.number_days_from_monday() as i64
        - first.weekday().number_days_from_monday() as i64)
        % 7;
    first + Duration::days(to_tuesday + 7)
}

/// The instant the month's security release is out, by [`RELEASE_HOUR_UTC`].
pub fn release(year: i32, month: Month) -> OffsetDateTime {
    let hour = Time::from_hms(RELEASE_HOUR_UTC, 0, 0).unwrap_or(Time::MIDNIGHT);
    second_tuesday(year, month).with_time(hour).assume_utc()
}

/// Whether a scheduled fire at `at` may start the month's rebuild; the
/// reason says why not.
pub fn due(at: OffsetDateTime) -> Result<(), String> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let release = release(at.year(), at.month());
    if at >= release {
        Ok(())
    } else {
        Err(format!(
            "scheduled fire at {at} is before this month's Patch Tuesday release \
             ({} {RELEASE_HOUR_UTC}:00 UTC): the monthly rebuild waits for it",
            release.date()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn second_tuesdays_of_months_starting_on_every_weekday() {
        // 2026: Apr 1 and Jul 1 are Wednesdays, Sep 1 a Tuesday, Dec 1 a Tuesday.
        assert_eq!(second_tuesday(2026, Month::April).to_string(), "2026-04-14");
        assert_eq!(second_tuesday(2026, Month::July).to_string(), "2026-07-14");
        assert_eq!(
            second_tuesday(2026, Month::September).to_string(),
            "2026-09-08"
        );
        assert_eq!(
            second_tuesday(2026, Month::November).to_string(),
            "2026-11-10"
        );
        assert_eq!(
            second_tuesday(2026, Month::December).to_string(),
            "2026-12-08"
        );
    }

    #[test]
    fn a_fire_before_the_release_waits() {
        assert!(due(datetime!(2026-04-08 03:00 UTC)).is_err());
        assert!(due(datetime!(2026-04-14 17:59 UTC)).is_err());
        assert!(due(datetime!(2026-04-14 18:00 UTC)).is_ok());
        assert!(due(datetime!(2026-04-15 03:00 UTC)).is_ok());
    }
}
