//! Dates and times between anysql's counts (days and seconds since 1970-01-01, nanoseconds) and
//! PostgreSQL's (days and microseconds since 2000-01-01), within PostgreSQL's ranges, and the text
//! literals PostgreSQL's input reads for them.
//!
//! PostgreSQL keeps microseconds. A value with nanoseconds below a microsecond is **truncated**
//! toward the past to its microsecond (`…05.123456789` is stored as `…05.123456`), in binary and
//! in text alike, before and after 2000: truncation never carries a value into the next second,
//! day or year (a time of `23:59:59.9999999` stays on its day), and it is what the usual Rust
//! conversions do. PostgreSQL's own text input rounds instead, so the text literals written here
//! carry six digits at most, already truncated.

use std::fmt::{self, Write as _};

use anysql_core::types::text::civil_from_days;
use anysql_core::Timestamp;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Seconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_SECONDS: i64 = PG_EPOCH_DAYS * 86_400;
const MICROS_PER_SECOND: i64 = 1_000_000;
/// 24:00:00, the latest time of day PostgreSQL's `time` takes, in nanoseconds.
const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;
/// 24:00:00 in microseconds.
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// PostgreSQL's first date, 4714-11-24 BC (Julian day 0), in days since 1970-01-01.
const MIN_DATE: i64 = -2_440_588;
/// The day after PostgreSQL's last date, 5874897-12-31, in days since 1970-01-01.
const END_DATE: i64 = 2_145_042_906;
/// PostgreSQL's first timestamp, 4714-11-24 00:00:00 BC, in microseconds since 2000-01-01.
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
/// The microsecond after PostgreSQL's last timestamp, 294276-12-31 23:59:59.999999.
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;

/// PostgreSQL's range of `date`, for messages.
pub(super) const DATE_RANGE: &str = "4714-11-24 BC to 5874897-12-31";
/// PostgreSQL's range of `timestamp` and `timestamptz`, for messages.
pub(super) const TIMESTAMP_RANGE: &str =
    "4714-11-24 00:00:00 BC to 294276-12-31 23:59:59.999999 (UTC for timestamptz)";

/// A [`Value::Date`](anysql_core::Value::Date) as PostgreSQL's days since 2000-01-01; `None`
/// outside PostgreSQL's range (whose ends, `i32::MIN` and `i32::MAX`, would be `-infinity` and
/// `infinity`).
pub(super) fn date_to_pg(days: i32) -> Option<i32> {
    let days = i64::from(days);
    if (MIN_DATE..END_DATE).contains(&days) {
        i32::try_from(days - PG_EPOCH_DAYS).ok()
    } else {
        None
    }
}

/// PostgreSQL's days since 2000-01-01 as days since 1970-01-01; `None` for a count past `i32`
/// (only `infinity`, `i32::MAX`, comes near: the caller checks it first).
pub(super) fn date_from_pg(days: i32) -> Option<i32> {
    days.checked_add(PG_EPOCH_DAYS as i32)
}

/// A [`Value::Time`](anysql_core::Value::Time) as PostgreSQL's microseconds since midnight,
/// truncated; `None` past 24:00:00.
pub(super) fn time_to_pg(nanos: u64) -> Option<i64> {
    if nanos <= NANOS_PER_DAY {
        i64::try_from(nanos / 1_000).ok()
    } else {
        None
    }
}

/// PostgreSQL's microseconds since midnight as nanoseconds; `None` outside 00:00:00–24:00:00.
pub(super) fn time_from_pg(micros: i64) -> Option<u64> {
    if (0..=MICROS_PER_DAY).contains(&micros) {
        u64::try_from(micros).ok().map(|m| m * 1_000)
    } else {
        None
    }
}

/// Why a timestamp cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadTimestamp {
    /// Outside PostgreSQL's range.
    OutOfRange,
    /// Its nanoseconds are a second or more (a `Timestamp` built by hand).
    Nanos,
}

/// A timestamp as PostgreSQL's microseconds since 2000-01-01 (local for `timestamp`, UTC for
/// `timestamptz`), truncated toward the past; an error outside PostgreSQL's range (whose ends,
/// `i64::MIN` and `i64::MAX`, would be `-infinity` and `infinity`).
pub(super) fn timestamp_to_pg(t: Timestamp) -> Result<i64, BadTimestamp> {
    if t.nanos >= 1_000_000_000 {
        return Err(BadTimestamp::Nanos);
    }
    let micros = (i128::from(t.seconds) - i128::from(PG_EPOCH_SECONDS))
        * i128::from(MICROS_PER_SECOND)
        + i128::from(t.nanos / 1_000);
    match i64::try_from(micros) {
        Ok(micros) if (MIN_TIMESTAMP..END_TIMESTAMP).contains(&micros) => Ok(micros),
        _ => Err(BadTimestamp::OutOfRange),
    }
}

/// PostgreSQL's microseconds since 2000-01-01 as a [`Timestamp`] since 1970 (any finite `i64`
/// fits: the caller checks `infinity` and `-infinity`).
pub(super) fn timestamp_from_pg(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(MICROS_PER_SECOND) + PG_EPOCH_SECONDS,
        // Below 1,000,000,000.
        nanos: (micros.rem_euclid(MICROS_PER_SECOND) * 1_000) as u32,
    }
}

/// Writes `2026-12-01`, or `0044-03-15` for 44 BC, returning whether the year is BC (which
/// PostgreSQL writes as a suffix, ` BC`, after the time if there is one).
fn write_ymd(out: &mut impl fmt::Write, days: i64) -> Result<bool, fmt::Error> {
    let (year, month, day) = civil_from_days(days);
    // Year 0 is 1 BC, -1 is 2 BC.
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    write!(out, "{year:04}-{month:02}-{day:02}")?;
    Ok(bc)
}

/// Writes `21:24:05` or `21:24:05.123456` (microseconds at most, truncated).
fn write_hms(out: &mut impl fmt::Write, nanos: u64) -> fmt::Result {
    let seconds = nanos / 1_000_000_000;
    let micros = nanos % 1_000_000_000 / 1_000;
    write!(
        out,
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )?;
    if micros != 0 {
        write!(out, ".{micros:06}")?;
    }
    Ok(())
}

/// Writes a date as PostgreSQL's input reads it: `2026-12-01`, `0044-03-15 BC`.
pub(super) fn write_date(out: &mut impl fmt::Write, days: i64) -> fmt::Result {
    if write_ymd(out, days)? {
        out.write_str(" BC")?;
    }
    Ok(())
}

/// Writes a time of day as PostgreSQL's input reads it, truncated to the microsecond.
pub(super) fn write_time(out: &mut impl fmt::Write, nanos: u64) -> fmt::Result {
    write_hms(out, nanos)
}

/// Writes a timestamp as PostgreSQL's input reads it, truncated to the microsecond:
/// `2026-12-01 21:24:05.5`, with `+00` when it is an instant in UTC, then ` BC` before year 1.
pub(super) fn write_timestamp(out: &mut impl fmt::Write, t: Timestamp, utc: bool) -> fmt::Result {
    let (days, nanos) = t.date_and_time();
    let bc = write_ymd(out, days)?;
    out.write_char(' ')?;
    write_hms(out, nanos)?;
    if utc {
        out.write_str("+00")?;
    }
    if bc {
        out.write_str(" BC")?;
    }
    Ok(())
}

/// A date's text, for messages.
pub(super) fn date_text(days: i64) -> String {
    let mut out = String::new();
    let _ = write_date(&mut out, days);
    out
}

/// A timestamp's text, with every nanosecond, for messages.
pub(super) fn timestamp_text(t: Timestamp) -> String {
    let mut out = String::new();
    let (days, nanos) = t.date_and_time();
    if let Ok(bc) = write_ymd(&mut out, days) {
        let seconds = nanos / 1_000_000_000;
        let _ = write!(
            out,
            " {:02}:{:02}:{:02}.{:09}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            t.nanos
        );
        if bc {
            out.push_str(" BC");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: u32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn dates_shift_to_2000_within_postgres_range() {
        assert_eq!(date_to_pg(0), Some(-10_957));
        assert_eq!(date_to_pg(10_957), Some(0));
        assert_eq!(date_to_pg(MIN_DATE as i32), Some(-2_451_545));
        assert_eq!(date_to_pg(MIN_DATE as i32 - 1), None);
        assert_eq!(date_to_pg(END_DATE as i32 - 1), Some(2_145_031_948));
        assert_eq!(date_to_pg(END_DATE as i32), None);
        assert_eq!(date_to_pg(i32::MAX), None);
        assert_eq!(date_to_pg(i32::MIN), None);
        assert_eq!(date_from_pg(-10_957), Some(0));
        assert_eq!(date_from_pg(i32::MAX), None);
        assert_eq!(date_text(MIN_DATE), "4714-11-24 BC");
        assert_eq!(date_text(END_DATE - 1), "5874897-12-31");
        assert_eq!(date_text(END_DATE), "5874898-01-01");
        assert_eq!(date_text(-719_163), "0001-12-31 BC", "year 0 is 1 BC");
        assert_eq!(date_text(-719_528), "0001-01-01 BC");
        assert_eq!(date_text(-719_162), "0001-01-01");
    }

    #[test]
    fn times_truncate_to_the_microsecond() {
        assert_eq!(time_to_pg(1_999), Some(1));
        assert_eq!(time_to_pg(NANOS_PER_DAY - 1), Some(MICROS_PER_DAY - 1));
        assert_eq!(time_to_pg(NANOS_PER_DAY), Some(MICROS_PER_DAY), "24:00:00");
        assert_eq!(time_to_pg(NANOS_PER_DAY + 1), None);
        assert_eq!(time_from_pg(1), Some(1_000));
        assert_eq!(time_from_pg(-1), None);
        assert_eq!(time_from_pg(MICROS_PER_DAY + 1), None);
        let mut text = String::new();
        write_time(&mut text, NANOS_PER_DAY - 1).unwrap();
        assert_eq!(text, "23:59:59.999999");
    }

    #[test]
    fn timestamps_truncate_toward_the_past_within_postgres_range() {
        assert_eq!(timestamp_to_pg(ts(PG_EPOCH_SECONDS, 0)), Ok(0));
        assert_eq!(timestamp_to_pg(ts(PG_EPOCH_SECONDS, 1_999)), Ok(1));
        // Before 2000 as after: toward the past, not toward 2000.
        assert_eq!(
            timestamp_to_pg(ts(PG_EPOCH_SECONDS - 1, 999_999_999)),
            Ok(-1)
        );
        assert_eq!(timestamp_to_pg(ts(0, 0)), Ok(-946_684_800_000_000));
        let min = timestamp_from_pg(MIN_TIMESTAMP);
        assert_eq!(min, ts(-210_866_803_200, 0));
        assert_eq!(timestamp_to_pg(min), Ok(MIN_TIMESTAMP));
        assert_eq!(
            timestamp_to_pg(ts(min.seconds - 1, 999_999_999)),
            Err(BadTimestamp::OutOfRange)
        );
        let last = timestamp_from_pg(END_TIMESTAMP - 1);
        assert_eq!(timestamp_to_pg(last), Ok(END_TIMESTAMP - 1));
        assert_eq!(
            timestamp_to_pg(ts(last.seconds + 1, 0)),
            Err(BadTimestamp::OutOfRange)
        );
        assert_eq!(
            timestamp_to_pg(ts(i64::MAX, 0)),
            Err(BadTimestamp::OutOfRange)
        );
        assert_eq!(
            timestamp_to_pg(ts(i64::MIN, 0)),
            Err(BadTimestamp::OutOfRange)
        );
        assert_eq!(
            timestamp_to_pg(ts(0, 1_000_000_000)),
            Err(BadTimestamp::Nanos)
        );
        assert_eq!(timestamp_from_pg(-1), ts(PG_EPOCH_SECONDS - 1, 999_999_000));
        let mut text = String::new();
        write_timestamp(&mut text, min, true).unwrap();
        assert_eq!(text, "4714-11-24 00:00:00+00 BC");
        text.clear();
        write_timestamp(&mut text, last, false).unwrap();
        assert_eq!(text, "294276-12-31 23:59:59.999999");
        text.clear();
        write_timestamp(&mut text, ts(1, 500), false).unwrap();
        assert_eq!(
            text, "1970-01-01 00:00:01",
            "below a microsecond: truncated"
        );
        assert_eq!(timestamp_text(ts(1, 5)), "1970-01-01 00:00:01.000000005");
    }
}
