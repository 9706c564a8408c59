//! The school's time zone. Times are stored in UTC; people read them, and days and
//! months begin and end, in the school's local time, daylight saving included.

use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};

use crate::DomainError;

/// A time zone of the IANA database (compiled in: a machine without tzdata still
/// knows Europe/Warsaw).
///
/// ```
/// use chrono::NaiveDate;
/// use napiatke_domain::Zone;
///
/// let warsaw: Zone = "Europe/Warsaw".parse()?;
/// let at = |d, h| NaiveDate::from_ymd_opt(2026, 10, d).unwrap().and_hms_opt(h, 0, 0).unwrap();
/// // 08:00 in Warsaw is 06:00 UTC in summer time and 07:00 UTC after 25 October.
/// assert_eq!(warsaw.utc(at(23, 8)), at(23, 6));
/// assert_eq!(warsaw.utc(at(26, 8)), at(26, 7));
/// assert_eq!(warsaw.local(at(26, 7)), at(26, 8));
/// # Ok::<(), napiatke_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(chrono_tz::Tz);

impl Default for Zone {
    /// Europe/Warsaw: the school is in Poland.
    fn default() -> Self {
        Zone(chrono_tz::Europe::Warsaw)
    }
}

impl std::str::FromStr for Zone {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<chrono_tz::Tz>()
            .map(Zone)
            .map_err(|_| DomainError::UnknownZone(s.to_owned()))
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Zone {
    /// UTC itself (tests that want stored and shown times to agree).
    pub const UTC: Zone = Zone(chrono_tz::UTC);

    /// The wall-clock time here at the UTC instant `utc`.
    #[must_use]
    pub fn local(self, utc: NaiveDateTime) -> NaiveDateTime {
        self.0.from_utc_datetime(&utc).naive_local()
    }

    /// The UTC instant of the local wall-clock time `local`. A time the clocks skip
    /// when they go forward (02:30 on the last Sunday of March in Warsaw) is taken
    /// as the same time after the jump (03:30); one they show twice when they go
    /// back, as its first (summer-time) occurrence.
    #[must_use]
    pub fn utc(self, local: NaiveDateTime) -> NaiveDateTime {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.naive_utc(),
            LocalResult::None => {
                // In the gap: read with the offset in force a day earlier (no zone
                // changes twice in a day), which lands after the jump.
                let before = self
                    .0
                    .from_local_datetime(&(local - chrono::Duration::days(1)))
                    .earliest()
                    .map_or(0, |t| t.offset().fix().local_minus_utc());
                local - chrono::Duration::seconds(i64::from(before))
            }
        }
    }

    /// The local date at the UTC instant `utc`.
    #[must_use]
    pub fn today(self, utc: NaiveDateTime) -> NaiveDate {
        self.local(utc).date()
    }

    /// The UTC instant the local day `date` begins.
    #[must_use]
    pub fn day_start(self, date: NaiveDate) -> NaiveDateTime {
        self.utc(date.and_time(NaiveTime::MIN))
    }
}

/// The Monday that begins `date`'s week (the school's weeks run Monday to Sunday).
///
/// ```
/// use chrono::NaiveDate;
/// let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
/// assert_eq!(napiatke_domain::week_start(day(26)), day(23));
/// assert_eq!(napiatke_domain::week_start(day(23)), day(23));
/// assert_eq!(napiatke_domain::week_start(day(29)), day(23));
/// ```
#[must_use]
pub fn week_start(date: NaiveDate) -> NaiveDate {
    date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .unwrap()
    }

    #[test]
    fn eight_oclock_stays_eight_oclock_across_both_changes() {
        let z = Zone::default();
        // Last Sunday of October 2026 (25th): UTC+2 before, UTC+1 after.
        assert_eq!(z.utc(at(2026, 10, 23, 8, 0)), at(2026, 10, 23, 6, 0));
        assert_eq!(z.utc(at(2026, 10, 26, 8, 0)), at(2026, 10, 26, 7, 0));
        // Last Sunday of March 2027 (28th): UTC+1 before, UTC+2 after.
        assert_eq!(z.utc(at(2027, 3, 26, 8, 0)), at(2027, 3, 26, 7, 0));
        assert_eq!(z.utc(at(2027, 3, 29, 8, 0)), at(2027, 3, 29, 6, 0));
        for t in [
            at(2026, 10, 23, 8, 0),
            at(2026, 10, 26, 8, 0),
            at(2027, 3, 29, 8, 0),
        ] {
            assert_eq!(z.local(z.utc(t)), t);
        }
    }

    #[test]
    fn skipped_and_repeated_hours_have_one_answer() {
        let z = Zone::default();
        // 02:30 does not exist on 28 March 2027: it is 03:30 summer time, 01:30 UTC.
        assert_eq!(z.utc(at(2027, 3, 28, 2, 30)), at(2027, 3, 28, 1, 30));
        assert_eq!(z.local(at(2027, 3, 28, 1, 30)), at(2027, 3, 28, 3, 30));
        // 02:30 happens twice on 25 October 2026: the first, summer time.
        assert_eq!(z.utc(at(2026, 10, 25, 2, 30)), at(2026, 10, 25, 0, 30));
    }

    #[test]
    fn days_begin_at_local_midnight() {
        let z = Zone::default();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(z.day_start(d(2026, 10, 25)), at(2026, 10, 24, 22, 0));
        assert_eq!(z.day_start(d(2026, 10, 26)), at(2026, 10, 25, 23, 0));
        // 23:30 UTC on a winter Sunday is already Monday in Warsaw.
        assert_eq!(z.today(at(2026, 11, 29, 23, 30)), d(2026, 11, 30));
        assert_eq!(Zone::UTC.today(at(2026, 11, 29, 23, 30)), d(2026, 11, 29));
    }

    #[test]
    fn names_parse_and_print() {
        assert_eq!("Europe/Warsaw".parse::<Zone>(), Ok(Zone::default()));
        assert_eq!(Zone::default().to_string(), "Europe/Warsaw");
        assert_eq!(
            "Mars/Olympus".parse::<Zone>(),
            Err(DomainError::UnknownZone("Mars/Olympus".to_owned()))
        );
    }
}
