//! Dates and times between anysql's counts (days and seconds since 1970-01-01, nanoseconds) and
//! PostgreSQL's (days and microseconds since 2000-01-01).

use anysql_core::Timestamp;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Seconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_SECONDS: i64 = PG_EPOCH_DAYS * 86_400;
const MICROS_PER_SECOND: i64 = 1_000_000;
/// 24:00:00 in microseconds.
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// PostgreSQL's days since 2000-01-01 as days since 1970-01-01; `None` for a count past `i32`
/// (only `infinity`, `i32::MAX`, comes near: the caller checks it first).
pub(super) fn date_from_pg(days: i32) -> Option<i32> {
    days.checked_add(PG_EPOCH_DAYS as i32)
}

/// PostgreSQL's microseconds since midnight as nanoseconds; `None` outside 00:00:00–24:00:00.
pub(super) fn time_from_pg(micros: i64) -> Option<u64> {
    if (0..=MICROS_PER_DAY).contains(&micros) {
        u64::try_from(micros).ok().map(|m| m * 1_000)
    } else {
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_counts_shift_to_1970() {
        assert_eq!(date_from_pg(-10_957), Some(0));
        assert_eq!(date_from_pg(i32::MAX), None);
        assert_eq!(time_from_pg(1), Some(1_000));
        assert_eq!(time_from_pg(-1), None);
        assert_eq!(time_from_pg(MICROS_PER_DAY + 1), None);
        assert_eq!(
            timestamp_from_pg(-1),
            Timestamp {
                seconds: PG_EPOCH_SECONDS - 1,
                nanos: 999_999_000
            }
        );
    }
}
