//! chrono's dates and times (feature `chrono`).
//!
//! | Rust | value | PostgreSQL | SQLite stores |
//! |---|---|---|---|
//! | `NaiveDate` | [`Value::Date`] | `date` | text `2026-12-01` |
//! | `NaiveTime` | [`Value::Time`] | `time` | text `21:24:05.769430` |
//! | `NaiveDateTime` | [`Value::Timestamp`] | `timestamp` | text `2026-12-01 21:24:05.769430` |
//! | `DateTime<Utc>`, `DateTime<FixedOffset>`, `DateTime<Local>` | [`Value::TimestampTz`] | `timestamptz` | text `2026-12-01T21:24:05.769430+00:00` |
//!
//! A leap second (chrono's nanoseconds of 1e9 and more) is kept as the last nanosecond of the
//! second before.

use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};

use super::{date_days, instant, local_timestamp, time_nanos};
use crate::error::Error;
use crate::value::{FromValue, Timestamp, ToValue, Value};
use crate::ArrayElement;

impl ArrayElement for NaiveDate {}
impl ArrayElement for NaiveTime {}
impl ArrayElement for NaiveDateTime {}
impl<Tz: TimeZone> ArrayElement for DateTime<Tz> {}

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const CE_TO_UNIX_DAYS: i32 = 719_163;

fn out_of_range(what: &str, wanted: &str) -> Error {
    Error::decode(format!("{what} is out of the range of {wanted}"))
}

fn capped_nanos(nanos: u32) -> u32 {
    nanos.min(999_999_999)
}

impl ToValue for NaiveDate {
    fn to_value(&self) -> Value {
        Value::Date(self.num_days_from_ce() - CE_TO_UNIX_DAYS)
    }
}

impl FromValue for NaiveDate {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let days = date_days(value, "NaiveDate")?;
        i32::try_from(days + i64::from(CE_TO_UNIX_DAYS))
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or_else(|| out_of_range("the date", "NaiveDate"))
    }
}

impl ToValue for NaiveTime {
    fn to_value(&self) -> Value {
        Value::Time(
            u64::from(self.num_seconds_from_midnight()) * 1_000_000_000
                + u64::from(capped_nanos(self.nanosecond())),
        )
    }
}

impl FromValue for NaiveTime {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let nanos = time_nanos(value, "NaiveTime")?;
        u32::try_from(nanos / 1_000_000_000)
            .ok()
            .and_then(|s| {
                NaiveTime::from_num_seconds_from_midnight_opt(s, (nanos % 1_000_000_000) as u32)
            })
            .ok_or_else(|| out_of_range("the time", "NaiveTime"))
    }
}

fn timestamp_of(utc: &NaiveDateTime) -> Timestamp {
    let utc = utc.and_utc();
    Timestamp {
        seconds: utc.timestamp(),
        nanos: capped_nanos(utc.timestamp_subsec_nanos()),
    }
}

fn utc_of(t: Timestamp, wanted: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp(t.seconds, t.nanos)
        .ok_or_else(|| out_of_range("the date and time", wanted))
}

impl ToValue for NaiveDateTime {
    fn to_value(&self) -> Value {
        Value::Timestamp(timestamp_of(self))
    }
}

impl FromValue for NaiveDateTime {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let local = local_timestamp(value, "NaiveDateTime")?;
        Ok(utc_of(local, "NaiveDateTime")?.naive_utc())
    }
}

impl<Tz: TimeZone> ToValue for DateTime<Tz> {
    fn to_value(&self) -> Value {
        let offset = self.offset().fix().local_minus_utc();
        Value::TimestampTz(timestamp_of(&self.naive_utc()), offset)
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let (utc, _) = instant(value, "DateTime<Utc>")?;
        utc_of(utc, "DateTime<Utc>")
    }
}

impl FromValue for DateTime<FixedOffset> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let (utc, offset) = instant(value, "DateTime<FixedOffset>")?;
        let offset = FixedOffset::east_opt(offset)
            .ok_or_else(|| Error::decode(format!("the offset {offset} s is out of range")))?;
        Ok(utc_of(utc, "DateTime<FixedOffset>")?.with_timezone(&offset))
    }
}

impl FromValue for DateTime<Local> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        let (utc, _) = instant(value, "DateTime<Local>")?;
        Ok(utc_of(utc, "DateTime<Local>")?.with_timezone(&Local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrono_values_round_trip_through_value_and_text() {
        let date = NaiveDate::from_ymd_opt(1969, 7, 20).unwrap();
        assert_eq!(NaiveDate::from_value(date.to_value()).unwrap(), date);
        assert_eq!(date.to_value(), Value::Date(-165));
        for d in [NaiveDate::MIN, NaiveDate::MAX] {
            assert_eq!(NaiveDate::from_value(d.to_value()).unwrap(), d);
        }
        let time = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap();
        assert_eq!(NaiveTime::from_value(time.to_value()).unwrap(), time);
        let naive = NaiveDate::from_ymd_opt(2040, 2, 29)
            .unwrap()
            .and_hms_micro_opt(1, 2, 3, 4)
            .unwrap();
        assert_eq!(NaiveDateTime::from_value(naive.to_value()).unwrap(), naive);
        let text = Value::Text("2040-02-29 01:02:03.000004".into());
        assert_eq!(NaiveDateTime::from_value(text).unwrap(), naive);
        let offset = FixedOffset::east_opt(-5 * 3600).unwrap();
        let at = offset.from_local_datetime(&naive).unwrap();
        let back = DateTime::<FixedOffset>::from_value(at.to_value()).unwrap();
        assert_eq!((back, back.offset().local_minus_utc()), (at, -18_000));
        let utc =
            DateTime::<Utc>::from_value(Value::Text("2040-02-29T01:02:03.000004-05:00".into()))
                .unwrap();
        assert_eq!(utc, at.with_timezone(&Utc));
        assert_eq!(
            DateTime::<Utc>::from_value(Value::Int(0)).unwrap(),
            DateTime::UNIX_EPOCH
        );
        // Never a silent shift between local times and instants.
        assert!(NaiveDateTime::from_value(at.to_value()).is_err());
        assert!(DateTime::<Utc>::from_value(naive.to_value()).is_err());
        assert!(
            NaiveDateTime::from_value(Value::Text("2040-02-29 01:02:03+01:00".into())).is_err()
        );
        assert!(NaiveDate::from_value(Value::Date(i32::MAX)).is_err());
    }
}
