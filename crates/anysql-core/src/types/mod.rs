//! The conversions of the richer SQL types: dates and times, UUIDs, JSON, decimals, IP addresses
//! and arrays, between their [`Value`] variants and the Rust types of the well-kept crates
//! (behind the features `chrono`, `time`, `uuid`, `json`, `decimal` and `bigdecimal`).
//!
//! # How the values travel
//!
//! Each SQL type has one driver-neutral [`Value`] variant, which no crate's type appears in:
//! [`Value::Date`], [`Value::Time`], [`Value::Timestamp`], [`Value::TimestampTz`],
//! [`Value::Uuid`], [`Value::Json`], [`Value::Inet`], [`Value::Array`]; decimals travel as
//! [`Value::Numeric`] text. The `ToValue`/`FromValue` impls here convert between those variants
//! and chrono, time, uuid, serde_json, rust_decimal and bigdecimal, so a driver handles each variant once,
//! whatever crate the user decodes into, and the variants of the plain types are as they were.
//!
//! Databases without such types store them in their own: SQLite keeps dates and times as text,
//! UUIDs as blobs, JSON and decimals as text. So decoding accepts those forms too:
//! - dates and times from text (`2026-12-01`, `21:24:05.5`, `2026-12-01 21:24:05`,
//!   `2026-12-01T21:24:05.769430+01:00`, `…Z`) and timestamps from integers (Unix seconds);
//! - UUIDs from 16-byte blobs and from their text (hyphenated or not, any case);
//! - JSON from text; decimals from text and integers.
//!
//! A third driver maps each variant onto its database's types when it binds a parameter, and
//! builds the variant a column of such a type holds when it decodes; for a type its database
//! lacks, [`text`] spells the value the way the SQLite driver stores it.

pub mod text;

#[cfg(feature = "bigdecimal")]
mod bigdecimal;
#[cfg(feature = "chrono")]
mod chrono;
#[cfg(feature = "decimal")]
mod decimal;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "time")]
mod time;
#[cfg(feature = "uuid")]
mod uuid;

#[cfg(feature = "json")]
pub use json::Json;

use std::net::IpAddr;

use crate::error::Error;
use crate::value::{mismatch, FromValue, Timestamp, ToValue, Value};

/// A UUID's 16 bytes in the hyphenated form, `67e55044-10b1-426f-9247-bb680e5fe0c8`.
pub(crate) fn hyphenated(bytes: &[u8; 16]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A UUID's bytes from a [`Value::Uuid`], a 16-byte blob or its text.
#[cfg_attr(not(feature = "uuid"), allow(dead_code))]
pub(crate) fn uuid_bytes(value: &Value, wanted: &str) -> Result<[u8; 16], Error> {
    match value {
        Value::Uuid(bytes) => Ok(*bytes),
        Value::Blob(bytes) => <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| {
            Error::decode(format!(
                "a blob of {} bytes is not a UUID, which takes 16",
                bytes.len()
            ))
        }),
        Value::Text(text) => {
            text::parse_uuid(text).ok_or_else(|| Error::decode(format!("`{text}` is not a UUID")))
        }
        _ => Err(mismatch(value, wanted)),
    }
}

/// Days since 1970-01-01 from a [`Value::Date`] or a date's text.
#[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
pub(crate) fn date_days(value: &Value, wanted: &str) -> Result<i64, Error> {
    match value {
        Value::Date(days) => Ok(i64::from(*days)),
        Value::Text(text) => text::parse_date(text)
            .ok_or_else(|| Error::decode(format!("`{text}` is not a date (YYYY-MM-DD)"))),
        _ => Err(mismatch(value, wanted)),
    }
}

/// Nanoseconds since midnight from a [`Value::Time`] or a time's text.
#[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
pub(crate) fn time_nanos(value: &Value, wanted: &str) -> Result<u64, Error> {
    match value {
        Value::Time(nanos) => Ok(*nanos),
        Value::Text(text) => text::parse_time(text)
            .ok_or_else(|| Error::decode(format!("`{text}` is not a time of day (HH:MM:SS)"))),
        _ => Err(mismatch(value, wanted)),
    }
}

/// A date and time with no time zone, from a [`Value::Timestamp`], its text, or an integer
/// (Unix seconds). Text with an offset, and a [`Value::TimestampTz`], are refused rather than
/// shifted.
#[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
pub(crate) fn local_timestamp(value: &Value, wanted: &str) -> Result<Timestamp, Error> {
    match value {
        Value::Timestamp(t) => Ok(*t),
        Value::Int(seconds) => Ok(Timestamp {
            seconds: *seconds,
            nanos: 0,
        }),
        Value::Text(text) => match text::parse_datetime(text) {
            Some((local, None)) => Ok(local),
            Some((_, Some(_))) => Err(Error::decode(format!(
                "`{text}` has an offset from UTC; decode it into a type with one (DateTime<FixedOffset>, OffsetDateTime) rather than {wanted}"
            ))),
            None => Err(not_a_datetime(text)),
        },
        Value::TimestampTz(..) => Err(Error::decode(format!(
            "a timestamptz is an instant, not a local date and time: decode it into a type with a time zone (DateTime<Utc>, OffsetDateTime) rather than {wanted}, or cast it in SQL"
        ))),
        _ => Err(mismatch(value, wanted)),
    }
}

/// An instant and the offset to show it at, from a [`Value::TimestampTz`], text (with an offset,
/// or UTC without one), or an integer (Unix seconds).
#[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
pub(crate) fn instant(value: &Value, wanted: &str) -> Result<(Timestamp, i32), Error> {
    match value {
        Value::TimestampTz(utc, offset) => Ok((*utc, *offset)),
        Value::Int(seconds) => Ok((
            Timestamp {
                seconds: *seconds,
                nanos: 0,
            },
            0,
        )),
        Value::Text(text) => match text::parse_datetime(text) {
            Some((local, offset)) => {
                let offset = offset.unwrap_or(0);
                let utc = Timestamp {
                    seconds: local.seconds - i64::from(offset),
                    nanos: local.nanos,
                };
                Ok((utc, offset))
            }
            None => Err(not_a_datetime(text)),
        },
        Value::Timestamp(_) => Err(Error::decode(format!(
            "a timestamp without time zone is not an instant: decode it into a local date and time (NaiveDateTime, PrimitiveDateTime) rather than {wanted}, or store a timestamptz"
        ))),
        _ => Err(mismatch(value, wanted)),
    }
}

fn not_a_datetime(text: &str) -> Error {
    Error::decode(format!(
        "`{text}` is not a date and time (YYYY-MM-DD HH:MM:SS, optionally with a fraction and an offset)"
    ))
}

impl ToValue for IpAddr {
    fn to_value(&self) -> Value {
        Value::Inet(*self)
    }
}

impl FromValue for IpAddr {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Inet(addr) => Ok(*addr),
            Value::Text(text) => text.parse().map_err(|_| match text.split_once('/') {
                // A network, as PostgreSQL's `inet` and `cidr` hold (`10.0.0.0/8`).
                Some((addr, bits)) if addr.parse::<IpAddr>().is_ok() => Error::decode(format!(
                    "`{text}` is a network (/{bits}), not one address, and an IpAddr cannot hold \
                     its netmask; decode it into String, or take its address alone in the SQL \
                     (PostgreSQL: `host(expression)::inet`)"
                )),
                _ => Error::decode(format!("`{text}` is not an IP address")),
            }),
            _ => Err(mismatch(value, "IpAddr")),
        }
    }
}

/// The element types of arrays: `Vec<T>` and `&[T]` bind as [`Value::Array`] and `Vec<T>`
/// decodes from it, for every `T` here (and `Option<T>` for elements that may be NULL).
///
/// `u8` is not one: `Vec<u8>` and `&[u8]` are bytes ([`Value::Blob`]).
pub trait ArrayElement {}

macro_rules! array_elements {
    ($($t:ty),* $(,)?) => {$( impl ArrayElement for $t {} )*};
}

array_elements!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u16,
    u32,
    u64,
    f32,
    f64,
    String,
    &str,
    Vec<u8>,
    IpAddr
);
impl<T: ArrayElement> ArrayElement for Option<T> {}

impl<T: ArrayElement + ToValue> ToValue for [T] {
    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: ArrayElement + ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}

impl<T: ArrayElement + ToValue, const N: usize> ToValue for [T; N] {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}

impl<T: ArrayElement + FromValue> FromValue for Vec<T> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| T::from_value_ref(item).map_err(|e| element_error(e, i)))
                .collect(),
            Value::Text(text) | Value::Json(text) => decode_elements(json_array(text)?),
            _ => Err(mismatch(value, "Vec<_>")),
        }
    }

    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Array(items) => decode_elements(items),
            Value::Text(text) | Value::Json(text) => decode_elements(json_array(&text)?),
            other => Err(mismatch(&other, "Vec<_>")),
        }
    }
}

fn decode_elements<T: FromValue>(items: impl IntoIterator<Item = Value>) -> Result<Vec<T>, Error> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| T::from_value(item).map_err(|e| element_error(e, i)))
        .collect()
}

fn element_error(e: Error, index: usize) -> Error {
    e.context(format_args!("array element {index}"))
}
/// The elements of an array stored as JSON text (what the SQLite driver writes for an array;
/// see [`text::format_json_array`]).
#[cfg(feature = "json")]
fn json_array(text: &str) -> Result<Vec<Value>, Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => Ok(items.into_iter().map(json::to_value).collect()),
        _ => Err(Error::decode(format!(
            "`{text}` is not a JSON array, which is how an array is stored as text"
        ))),
    }
}

#[cfg(not(feature = "json"))]
fn json_array(_: &str) -> Result<Vec<Value>, Error> {
    Err(Error::decode(
        "an array stored as JSON text (as SQLite stores arrays) decodes with the json feature of \
         anysql; enable it",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_bind_and_decode_with_null_elements() {
        let v = vec![Some(1i64), None, Some(3)].to_value();
        assert_eq!(
            v,
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)])
        );
        assert_eq!(
            Vec::<Option<i64>>::from_value_ref(&v).unwrap(),
            [Some(1), None, Some(3)]
        );
        let err = Vec::<i64>::from_value(v).unwrap_err();
        assert!(err.to_string().contains("array element 1"), "{err}");
        assert_eq!(
            [1i32, 2].as_slice().to_value(),
            Value::Array(vec![Value::Int(1), Value::Int(2)])
        );
        // Bytes stay bytes.
        assert_eq!(vec![1u8, 2].to_value(), Value::Blob(vec![1, 2]));
    }

    #[cfg(feature = "json")]
    #[test]
    fn arrays_stored_as_json_text_decode() {
        let stored = text::format_json_array(&[Value::Int(1), Value::Null, Value::Int(3)]).unwrap();
        let back = Vec::<Option<i64>>::from_value(Value::Text(stored)).unwrap();
        assert_eq!(back, [Some(1), None, Some(3)]);
        let names = Vec::<String>::from_value(Value::Json(r#"["a","é"]"#.into())).unwrap();
        assert_eq!(names, ["a", "é"]);
        assert!(Vec::<i64>::from_value(Value::Text("{}".into())).is_err());
        assert!(Vec::<i64>::from_value(Value::Text(r#"[1,"x"]"#.into())).is_err());
    }

    #[test]
    fn inet_and_u64() {
        let addr: IpAddr = "::1".parse().unwrap();
        assert_eq!(IpAddr::from_value(addr.to_value()).unwrap(), addr);
        assert_eq!(
            IpAddr::from_value(Value::Text("10.0.0.1".into()))
                .unwrap()
                .to_string(),
            "10.0.0.1"
        );
        // A network is text (PostgreSQL's `inet` and `cidr` networks decode as such), which an
        // IpAddr refuses, saying why.
        let err = IpAddr::from_value(Value::Text("10.0.0.0/8".into())).unwrap_err();
        assert!(err.to_string().contains("is a network (/8)"), "{err}");
        let err = IpAddr::from_value(Value::Text("ten".into())).unwrap_err();
        assert!(err.to_string().contains("is not an IP address"), "{err}");
        assert_eq!(u64::MAX.to_value(), Value::Numeric(u64::MAX.to_string()));
        assert_eq!(u64::from_value(u64::MAX.to_value()).unwrap(), u64::MAX);
        assert_eq!(u64::from_value(Value::Int(5)).unwrap(), 5);
        assert!(u64::from_value(Value::Int(-1)).is_err());
    }

    #[test]
    fn uuid_bytes_from_every_form() {
        let bytes = [
            0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f,
            0xe0, 0xc8,
        ];
        assert_eq!(hyphenated(&bytes), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        for v in [
            Value::Uuid(bytes),
            Value::Blob(bytes.to_vec()),
            Value::Text("67E55044-10B1-426F-9247-BB680E5FE0C8".into()),
            Value::Text("67e5504410b1426f9247bb680e5fe0c8".into()),
        ] {
            assert_eq!(uuid_bytes(&v, "Uuid").unwrap(), bytes, "{v:?}");
        }
        assert!(uuid_bytes(&Value::Blob(vec![1, 2]), "Uuid").is_err());
        assert!(uuid_bytes(&Value::Text("nope".into()), "Uuid").is_err());
    }
}
