//! The text forms of dates, times and UUIDs: what the SQLite driver stores for them, and what
//! decoding accepts from a text column.
//!
//! Written: dates `2026-12-01`, times `21:24:05.769430`, timestamps
//! `2026-12-01 21:24:05.769430`, instants `2026-12-01T21:24:05.769430+00:00` (the fraction only
//! when there is one, in milli-, micro- or nanoseconds: as many digits as it takes, in threes). SQLite's date and time functions read all of them, and so do other SQLite
//! libraries (sqlx writes the same forms). Read: those, with `T` or a space between date and
//! time, seconds and fraction optional, and an offset written `Z`, `+01`, `+0100` or `+01:00`.
//! Years outside 0000–9999 are written with a sign and at least four digits (`+10000-01-01`),
//! which SQLite's functions do not read.

use crate::value::{Timestamp, Value};

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` for a date that does not exist.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// The proleptic Gregorian year, month and day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `2026-12-01` for `days` since 1970-01-01.
pub fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:+05}-{month:02}-{day:02}")
    }
}

/// `21:24:05`, `21:24:05.500` or `21:24:05.769430` for `nanos` since midnight.
pub fn format_time(nanos: u64) -> String {
    let seconds = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        // Milli-, micro- or nanoseconds, as many as it takes: fixed widths keep the texts of
        // one column comparable as strings.
        let digits = format!("{fraction:09}");
        let kept = digits.trim_end_matches('0').len().div_ceil(3) * 3;
        out.push('.');
        out.push_str(&digits[..kept]);
    }
    out
}

/// `2026-12-01 21:24:05.76943`, a timestamp with no time zone.
pub fn format_timestamp(timestamp: Timestamp) -> String {
    let (days, nanos) = timestamp.date_and_time();
    format!("{} {}", format_date(days), format_time(nanos))
}

/// `2026-12-01T21:24:05.76943+01:00`: the instant `utc`, shown at `offset` seconds east of UTC.
pub fn format_timestamptz(utc: Timestamp, offset: i32) -> String {
    let local = Timestamp {
        seconds: utc.seconds.saturating_add(i64::from(offset)),
        nanos: utc.nanos,
    };
    let (days, nanos) = local.date_and_time();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    let mut out = format!(
        "{}T{}{sign}{:02}:{:02}",
        format_date(days),
        format_time(nanos),
        offset / 3600,
        offset / 60 % 60
    );
    if !offset.is_multiple_of(60) {
        out.push_str(&format!(":{:02}", offset % 60));
    }
    out
}

/// A date, `2026-12-01` (a year of four or more digits, with an optional sign), as days since
/// 1970-01-01, and what follows it.
fn split_date(text: &str) -> Option<(i64, &str)> {
    let (negative, digits_start) = match text.as_bytes().first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let rest = &text[digits_start..];
    let year_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if !(4..=9).contains(&year_len) {
        return None;
    }
    let year: i64 = rest[..year_len].parse().ok()?;
    let year = if negative { -year } else { year };
    let rest = rest[year_len..].strip_prefix('-')?;
    let month = two_digits(rest)?;
    let rest = rest[2..].strip_prefix('-')?;
    let day = two_digits(rest)?;
    Some((days_from_civil(year, month, day)?, &rest[2..]))
}

fn two_digits(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_digit() && bytes[1].is_ascii_digit() {
        Some(u32::from(bytes[0] - b'0') * 10 + u32::from(bytes[1] - b'0'))
    } else {
        None
    }
}

/// A time, `21:24[:05[.76943]]`, as nanoseconds since midnight, and what follows it.
fn split_time(text: &str) -> Option<(u64, &str)> {
    let hours = two_digits(text)?;
    let rest = text[2..].strip_prefix(':')?;
    let minutes = two_digits(rest)?;
    let mut rest = &rest[2..];
    let mut seconds = 0;
    let mut nanos = 0u64;
    if let Some(after) = rest.strip_prefix(':') {
        seconds = two_digits(after)?;
        rest = &after[2..];
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            for (i, b) in after[..len].bytes().enumerate() {
                // Digits past nanoseconds are dropped: no database keeps them.
                if i < 9 {
                    nanos += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
                }
            }
            rest = &after[len..];
        }
    }
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = (u64::from(hours) * 3600 + u64::from(minutes) * 60 + u64::from(seconds))
        * 1_000_000_000
        + nanos;
    Some((total, rest))
}

/// An offset from UTC, `Z`, `+01`, `+0100`, `+01:00` or `+01:00:30`, in seconds east.
fn parse_offset(text: &str) -> Option<i32> {
    if text == "Z" || text == "z" {
        return Some(0);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &text[1..];
    let hours = two_digits(rest)?;
    let rest = &rest[2..];
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let (minutes, rest) = if rest.is_empty() {
        (0, rest)
    } else {
        (two_digits(rest)?, &rest[2..])
    };
    let seconds = match rest.strip_prefix(':') {
        Some(s) if s.len() == 2 => two_digits(s)?,
        None if rest.is_empty() => 0,
        _ => return None,
    };
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60 + seconds) as i32)
}

/// Parses a date, `2026-12-01`, as days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    match split_date(text.trim())? {
        (days, "") => Some(days),
        _ => None,
    }
}

/// Parses a time of day, `21:24:05.76943`, as nanoseconds since midnight.
pub fn parse_time(text: &str) -> Option<u64> {
    match split_time(text.trim())? {
        (nanos, "") if nanos < NANOS_PER_DAY => Some(nanos),
        _ => None,
    }
}

/// Parses a date and time, `2026-12-01 21:24:05.76943` or `2026-12-01T21:24:05+01:00`: the
/// local date and time, counted as if it were UTC, and the offset when the text has one. A date
/// alone is its midnight.
pub fn parse_datetime(text: &str) -> Option<(Timestamp, Option<i32>)> {
    let (days, rest) = split_date(text.trim())?;
    if rest.is_empty() {
        return Some((Timestamp::from_date_and_time(days, 0)?, None));
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))?;
    let (nanos, rest) = split_time(rest)?;
    let local = Timestamp::from_date_and_time(days, nanos)?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.is_empty() {
        Some((local, None))
    } else {
        Some((local, Some(parse_offset(rest)?)))
    }
}

/// An array as JSON text, for databases without arrays (SQLite stores arrays so, and its `json_each`
/// reads them: `WHERE id IN (SELECT value FROM json_each($1))`): integers and floats as numbers,
/// booleans, NULL as `null`, text, exact decimals and the date, time, UUID and address values as
/// strings in their text forms, JSON values as themselves, nested arrays as arrays. Bytes have no
/// JSON form: `Err` names them.
pub fn format_json_array(items: &[Value]) -> Result<String, String> {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json(item, &mut out)?;
    }
    out.push(']');
    Ok(out)
}

fn write_json(value: &Value, out: &mut String) -> Result<(), String> {
    use std::fmt::Write as _;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float(v) if v.is_finite() => {
            let _ = write!(out, "{v:?}");
        }
        Value::Float(v) => write_json_string(&format!("{v}"), out),
        Value::Text(v) | Value::Numeric(v) => write_json_string(v, out),
        Value::Json(v) => out.push_str(v),
        Value::Date(days) => write_json_string(&format_date(i64::from(*days)), out),
        Value::Time(nanos) => write_json_string(&format_time(*nanos), out),
        Value::Timestamp(t) => write_json_string(&format_timestamp(*t), out),
        Value::TimestampTz(t, offset) => write_json_string(&format_timestamptz(*t, *offset), out),
        Value::Uuid(bytes) => write_json_string(&super::hyphenated(bytes), out),
        Value::Inet(addr) => write_json_string(&addr.to_string(), out),
        Value::Array(items) => out.push_str(&format_json_array(items)?),
        Value::Blob(_) => {
            return Err("an array of bytes has no text form; store each in a row of its own".into())
        }
        Value::Invalid(why) => return Err(why.clone()),
    }
    Ok(())
}

fn write_json_string(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses a UUID's text: 32 hex digits, hyphenated or not, in any case, optionally in braces.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let hyphenated = text.len() == 36;
    if hyphenated
        && (text.as_bytes()[8] != b'-'
            || text.as_bytes()[13] != b'-'
            || text.as_bytes()[18] != b'-'
            || text.as_bytes()[23] != b'-')
    {
        return None;
    }
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 || (!hyphenated && text.len() != 32) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_across_the_range() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        for days in (-3_000_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days), "{y}-{m}-{d}");
        }
    }

    #[test]
    fn text_forms_round_trip() {
        for text in [
            "2026-12-01",
            "1900-02-28",
            "0001-01-01",
            "9999-12-31",
            "+10000-01-01",
            "-0044-03-15",
        ] {
            let days = parse_date(text).unwrap();
            assert_eq!(format_date(days), text);
        }
        for text in [
            "00:00:00",
            "21:24:05.769430",
            "21:24:05.500",
            "23:59:59.999999999",
        ] {
            assert_eq!(format_time(parse_time(text).unwrap()), text);
        }
        assert_eq!(parse_time("21:24"), parse_time("21:24:00"));
        assert_eq!(parse_time("24:00:00"), None);
        let (local, offset) = parse_datetime("2026-12-01 21:24:05.76943").unwrap();
        assert_eq!(offset, None);
        assert_eq!(format_timestamp(local), "2026-12-01 21:24:05.769430");
        let (local, offset) = parse_datetime("2026-12-01T21:24:05.5+01:00").unwrap();
        assert_eq!(offset, Some(3600));
        let utc = Timestamp {
            seconds: local.seconds - 3600,
            nanos: local.nanos,
        };
        assert_eq!(
            format_timestamptz(utc, 3600),
            "2026-12-01T21:24:05.500+01:00"
        );
        assert_eq!(format_timestamptz(utc, 0), "2026-12-01T20:24:05.500+00:00");
        for (text, want) in [
            ("2026-12-01T21:24:05Z", 0),
            ("2026-12-01 21:24:05-0530", -19_800),
            ("2026-12-01 21:24:05 +02", 7200),
        ] {
            assert_eq!(parse_datetime(text).unwrap().1, Some(want), "{text}");
        }
        for bad in [
            "2026-13-01",
            "2026-12-01X",
            "2026-12-01 25:00",
            "12/01/2026",
            "2026-12-01T21:24:05+1",
        ] {
            assert!(parse_datetime(bad).is_none(), "{bad}");
        }
        // Before 1970 and after 2038.
        let (t, _) = parse_datetime("1901-12-13 20:45:52").unwrap();
        assert_eq!(t.seconds, -2_147_483_648);
        let (t, _) = parse_datetime("2100-01-01 00:00:00.000001").unwrap();
        assert_eq!(format_timestamp(t), "2100-01-01 00:00:00.000001");
    }

    #[test]
    fn arrays_as_json_text() {
        let items = vec![
            Value::Int(-1),
            Value::Float(1.5),
            Value::Null,
            Value::Bool(true),
            Value::Text("a \"q\" \\ \n \u{1} é".into()),
            Value::Numeric("1.50".into()),
            Value::Date(0),
            Value::Json(r#"{"k":1}"#.into()),
            Value::Array(vec![Value::Int(2)]),
        ];
        assert_eq!(
            format_json_array(&items).unwrap(),
            r#"[-1,1.5,null,true,"a \"q\" \\ \n \u0001 é","1.50","1970-01-01",{"k":1},[2]]"#
        );
        assert!(format_json_array(&[Value::Blob(vec![1])]).is_err());
        assert_eq!(format_json_array(&[]).unwrap(), "[]");
    }

    #[test]
    fn uuid_text_forms() {
        let want = parse_uuid("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(
            parse_uuid("{67E55044-10B1-426F-9247-BB680E5FE0C8}"),
            Some(want)
        );
        assert_eq!(parse_uuid("67e5504410b1426f9247bb680e5fe0c8"), Some(want));
        assert_eq!(parse_uuid("67e55044-10b1-426f-9247-bb680e5fe0c"), None);
        assert_eq!(parse_uuid("67e5504410b1-426f-9247-bb680e5fe0c8"), None);
        assert_eq!(parse_uuid("zze55044-10b1-426f-9247-bb680e5fe0c8"), None);
    }
}
