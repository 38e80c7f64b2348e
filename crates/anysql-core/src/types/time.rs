//! The `time` crate's dates and times (feature `time`).
//!
//! | Rust | value | PostgreSQL | SQLite stores |
//! |---|---|---|---|
//! | `Date` | [`Value::Date`] | `date` | text `2026-12-01` |
//! | `Time` | [`Value::Time`] | `time` | text `21:24:05.769430` |
//! | `PrimitiveDateTime` | [`Value::Timestamp`] | `timestamp` | text `2026-12-01 21:24:05.769430` |
//! | `OffsetDateTime` | [`Value::TimestampTz`] | `timestamptz` | text `2026-12-01T21:24:05.769430+00:00` |

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{date_days, instant, local_timestamp, time_nanos};
use crate::error::Error;
use crate::value::{FromValue, Timestamp, ToValue, Value};
use crate::ArrayElement;

impl ArrayElement for Date {}
impl ArrayElement for Time {}
impl ArrayElement for PrimitiveDateTime {}
impl ArrayElement for OffsetDateTime {}

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

fn out_of_range(what: &str, wanted: &str) -> Error {
    Error::decode(format!("{what} is out of the range of {wanted}"))
}

fn nanos_of(time: Time) -> u64 {
    let (h, m, s, n) = time.as_hms_nano();
    (u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s)) * 1_000_000_000 + u64::from(n)
}

impl ToValue for Date {
    fn to_value(&self) -> Value {
        Value::Date(self.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
    }
}

impl FromValue for Date {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let days = date_days(value, "time::Date")?;
        i32::try_from(days + i64::from(UNIX_EPOCH_JULIAN_DAY))
            .ok()
            .and_then(|d| Date::from_julian_day(d).ok())
            .ok_or_else(|| out_of_range("the date", "time::Date"))
    }
}

impl ToValue for Time {
    fn to_value(&self) -> Value {
        Value::Time(nanos_of(*self))
    }
}

impl FromValue for Time {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let nanos = time_nanos(value, "time::Time")?;
        let seconds = nanos / 1_000_000_000;
        Time::from_hms_nano(
            (seconds / 3600) as u8,
            (seconds / 60 % 60) as u8,
            (seconds % 60) as u8,
            (nanos % 1_000_000_000) as u32,
        )
        .map_err(|_| out_of_range("the time", "time::Time"))
    }
}

fn offset_date_time(t: Timestamp, wanted: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .and_then(|at| at.replace_nanosecond(t.nanos).ok())
        .ok_or_else(|| out_of_range("the date and time", wanted))
}

impl ToValue for PrimitiveDateTime {
    fn to_value(&self) -> Value {
        let utc = self.assume_utc();
        Value::Timestamp(Timestamp {
            seconds: utc.unix_timestamp(),
            nanos: utc.nanosecond(),
        })
    }
}

impl FromValue for PrimitiveDateTime {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let local = local_timestamp(value, "PrimitiveDateTime")?;
        let at = offset_date_time(local, "PrimitiveDateTime")?;
        Ok(PrimitiveDateTime::new(at.date(), at.time()))
    }
}

impl ToValue for OffsetDateTime {
    fn to_value(&self) -> Value {
        Value::TimestampTz(
            Timestamp {
                seconds: self.unix_timestamp(),
                nanos: self.nanosecond(),
            },
            self.offset().whole_seconds(),
        )
    }
}

impl FromValue for OffsetDateTime {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let (utc, offset) = instant(value, "OffsetDateTime")?;
        let offset = UtcOffset::from_whole_seconds(offset)
            .map_err(|_| Error::decode(format!("the offset {offset} s is out of range")))?;
        Ok(offset_date_time(utc, "OffsetDateTime")?.to_offset(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values_round_trip_through_value_and_text() {
        let date = Date::from_calendar_date(1969, time::Month::July, 20).unwrap();
        assert_eq!(date.to_value(), Value::Date(-165));
        assert_eq!(Date::from_value(date.to_value()).unwrap(), date);
        for d in [Date::MIN, Date::MAX] {
            assert_eq!(Date::from_value(d.to_value()).unwrap(), d);
        }
        let t = Time::from_hms_nano(23, 59, 59, 999_999_999).unwrap();
        assert_eq!(Time::from_value(t.to_value()).unwrap(), t);
        let local = PrimitiveDateTime::new(
            Date::from_calendar_date(2040, time::Month::February, 29).unwrap(),
            Time::from_hms_micro(1, 2, 3, 4).unwrap(),
        );
        assert_eq!(
            PrimitiveDateTime::from_value(local.to_value()).unwrap(),
            local
        );
        let text = Value::Text("2040-02-29 01:02:03.000004".into());
        assert_eq!(PrimitiveDateTime::from_value(text).unwrap(), local);
        let at = local.assume_offset(UtcOffset::from_hms(-5, 0, 0).unwrap());
        let back = OffsetDateTime::from_value(at.to_value()).unwrap();
        assert_eq!((back, back.offset().whole_seconds()), (at, -18_000));
        assert!(PrimitiveDateTime::from_value(at.to_value()).is_err());
        assert!(OffsetDateTime::from_value(local.to_value()).is_err());
    }
}
