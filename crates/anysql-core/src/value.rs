//! [`Value`], the dynamically typed SQL value, and the [`ToValue`]/[`FromValue`] conversions.

use std::fmt;

use crate::error::Error;

/// One SQL value, as sent as a parameter or read from a column.
///
/// Integers are carried as `i64` and floats as `f64` whatever their column width; drivers check the
/// range against the column type when they bind, and [`FromValue`] checks it when it decodes.
///
/// ```
/// use anysql_core::{FromValue, ToValue, Value};
///
/// assert_eq!(7u8.to_value(), Value::Int(7));
/// assert_eq!(None::<&str>.to_value(), Value::Null);
/// assert_eq!(u8::from_value(Value::Int(7))?, 7);
/// assert!(u8::from_value(Value::Int(300)).is_err()); // out of range: an error, not a wrap
/// assert_eq!(Option::<String>::from_value(Value::Null)?, None);
/// # Ok::<(), anysql_core::Error>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer of any width.
    Int(i64),
    /// A floating point number of any width.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// An exact decimal number (PostgreSQL `numeric`, a SQLite column declared `NUMERIC` or
    /// `DECIMAL`), as its decimal text: `12345678901234567890.0123456789`, `-0.5`, `NaN`.
    ///
    /// It decodes into `String` digit for digit, and into an integer type when it is a whole
    /// number in range. It never decodes into `f64` silently: cast it in SQL (`::float8`,
    /// `CAST(.. AS REAL)`) to read a float.
    Numeric(String),
    /// A calendar date (`date`), as days since 1970-01-01 (negative before). Decodes into
    /// `chrono::NaiveDate` and `time::Date` (features `chrono`, `time`).
    Date(i32),
    /// A time of day with no time zone (`time`), as nanoseconds since midnight. Decodes into
    /// `chrono::NaiveTime` and `time::Time`.
    Time(u64),
    /// A date and time with no time zone (`timestamp`), counted as if it were UTC. Decodes into
    /// `chrono::NaiveDateTime` and `time::PrimitiveDateTime`; it never shifts.
    Timestamp(Timestamp),
    /// An instant (`timestamptz`), and the offset from UTC to show it at, in seconds east
    /// (PostgreSQL always sends 0). Decodes into chrono's `DateTime<Utc>`, `DateTime<FixedOffset>`
    /// and `DateTime<Local>`, and `time::OffsetDateTime`.
    TimestampTz(Timestamp, i32),
    /// A UUID, as its 16 bytes. Decodes into `uuid::Uuid` (feature `uuid`).
    Uuid([u8; 16]),
    /// A JSON document, as its text (`json`, `jsonb`). Decodes into `serde_json::Value` and
    /// `Json<T>` (feature `json`), and into `String`.
    Json(String),
    /// An IP address (PostgreSQL `inet`). Decodes into `std::net::IpAddr`.
    Inet(std::net::IpAddr),
    /// A one-dimensional array (PostgreSQL arrays); its elements may be [`Value::Null`]. Decodes
    /// into `Vec<T>` and `Vec<Option<T>>`.
    Array(Vec<Value>),
    /// A parameter that could not be made (a `Json<T>` whose serialization failed), with why. A
    /// statement it is bound to fails with an [`ErrorKind::Parameter`](crate::ErrorKind::Parameter)
    /// error saying so, and nothing is sent; no column decodes into it.
    Invalid(String),
}

/// A point on the time line: whole seconds since 1970-01-01T00:00:00 (negative before) and the
/// nanoseconds past them. [`Value::Timestamp`] counts local time as if it were UTC;
/// [`Value::TimestampTz`] counts UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds past `seconds`: below 1,000,000,000.
    pub nanos: u32,
}

impl Timestamp {
    /// The timestamp `seconds` and `nanos` after the epoch; `None` when `nanos` is a second or
    /// more.
    pub fn new(seconds: i64, nanos: u32) -> Option<Self> {
        (nanos < 1_000_000_000).then_some(Timestamp { seconds, nanos })
    }

    /// Days since 1970-01-01 and nanoseconds since that day's midnight.
    pub fn date_and_time(self) -> (i64, u64) {
        let days = self.seconds.div_euclid(86_400);
        let seconds = self.seconds.rem_euclid(86_400) as u64;
        (days, seconds * 1_000_000_000 + u64::from(self.nanos))
    }

    /// The timestamp of `days` since 1970-01-01 at `nanos` since midnight; `None` when out of
    /// range.
    pub fn from_date_and_time(days: i64, nanos: u64) -> Option<Self> {
        if nanos >= 86_400 * 1_000_000_000 {
            return None;
        }
        let seconds = days
            .checked_mul(86_400)?
            .checked_add((nanos / 1_000_000_000) as i64)?;
        Some(Timestamp {
            seconds,
            nanos: (nanos % 1_000_000_000) as u32,
        })
    }
}

impl Value {
    /// The name of this value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
            Value::Numeric(_) => "numeric",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(..) => "timestamptz",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
            Value::Inet(_) => "inet",
            Value::Array(_) => "array",
            Value::Invalid(_) => "invalid value",
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(v) => write!(f, "Bool({v})"),
            Value::Int(v) => write!(f, "Int({v})"),
            Value::Float(v) => write!(f, "Float({v:?})"),
            Value::Text(v) => write!(f, "Text({v:?})"),
            Value::Blob(v) => write!(f, "Blob({} bytes)", v.len()),
            Value::Numeric(v) => write!(f, "Numeric({v})"),
            Value::Date(days) => write!(f, "Date({days})"),
            Value::Time(nanos) => write!(f, "Time({nanos})"),
            Value::Timestamp(t) => write!(f, "Timestamp({}.{:09})", t.seconds, t.nanos),
            Value::TimestampTz(t, offset) => {
                write!(f, "TimestampTz({}.{:09}, {offset})", t.seconds, t.nanos)
            }
            Value::Uuid(bytes) => write!(f, "Uuid({})", crate::types::hyphenated(bytes)),
            Value::Json(v) => write!(f, "Json({v})"),
            Value::Inet(v) => write!(f, "Inet({v})"),
            Value::Array(v) => f.debug_tuple("Array").field(v).finish(),
            Value::Invalid(why) => write!(f, "Invalid({why:?})"),
        }
    }
}

/// Converts a Rust value into a SQL [`Value`], for parameters.
///
/// Implement it to bind your own types:
///
/// ```
/// use anysql_core::{ToValue, Value};
///
/// struct UserId(u32);
///
/// impl ToValue for UserId {
///     fn to_value(&self) -> Value {
///         Value::Int(self.0.into())
///     }
/// }
///
/// assert_eq!(UserId(7).to_value(), Value::Int(7));
/// // Now `query("SELECT name FROM users WHERE id = $1").bind(UserId(7))` works.
/// ```
pub trait ToValue {
    /// The SQL value.
    fn to_value(&self) -> Value;
}

/// Converts a SQL [`Value`] into a Rust value, for columns.
///
/// Conversions are checked: an integer out of the target's range, a NULL into a non-`Option`, or a
/// value of another type is an [`ErrorKind::Decode`](crate::ErrorKind::Decode) error, never a panic or a
/// silent truncation.
///
/// Implement it to decode columns into your own types:
///
/// ```
/// use anysql_core::{Error, FromValue, Value};
///
/// #[derive(Debug, PartialEq)]
/// struct Email(String);
///
/// impl FromValue for Email {
///     fn from_value_ref(value: &Value) -> Result<Self, Error> {
///         let text = String::from_value_ref(value)?;
///         if text.contains('@') {
///             Ok(Email(text))
///         } else {
///             Err(Error::decode(format!("`{text}` is not an email address")))
///         }
///     }
/// }
///
/// assert_eq!(Email::from_value(Value::Text("a@b.c".into()))?, Email("a@b.c".into()));
/// assert!(Email::from_value(Value::Text("nope".into())).is_err());
/// # Ok::<(), Error>(())
/// ```
pub trait FromValue: Sized {
    /// Decodes a borrowed value.
    fn from_value_ref(value: &Value) -> Result<Self, Error>;

    /// Decodes an owned value; override it to move instead of copying.
    fn from_value(value: Value) -> Result<Self, Error> {
        Self::from_value_ref(&value)
    }
}

pub(crate) fn mismatch(value: &Value, wanted: &str) -> Error {
    if value.is_null() {
        Error::decode(format!(
            "unexpected NULL; decode into Option<{wanted}> to accept NULL"
        ))
    } else {
        Error::decode(format!(
            "cannot decode a {} value into {wanted}",
            value.type_name()
        ))
    }
}

/// The value of a numeric's decimal text if it is a whole number that fits `T` (`12`,
/// `-7.000`), else `None`.
fn whole_numeric<T: std::str::FromStr>(text: &str) -> Option<T> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b == b'0') {
        return None;
    }
    whole.parse().ok()
}

/// An integer as an `f64`, if the float holds it exactly.
fn int_to_f64(v: i64) -> Result<f64, Error> {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let f = v as f64;
    // `f as i128` is exact for every f64 in i64's range, including 2^63.
    #[allow(clippy::cast_possible_truncation)]
    if f as i128 == i128::from(v) {
        Ok(f)
    } else {
        Err(Error::decode(format!(
            "integer {v} has no exact f64; decode it as i64"
        )))
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromValue for Value {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        Ok(value.clone())
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        Ok(value)
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FromValue for bool {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match *value {
            Value::Bool(v) => Ok(v),
            // SQLite has no boolean type and stores them as 0 and 1.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(v) => Err(Error::decode(format!(
                "cannot decode integer {v} into bool"
            ))),
            _ => Err(mismatch(value, "bool")),
        }
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }

        impl FromValue for $t {
            fn from_value_ref(value: &Value) -> Result<Self, Error> {
                match *value {
                    Value::Int(v) => <$t>::try_from(v).map_err(|_| {
                        Error::decode(format!(
                            "integer {v} is out of range for {}",
                            stringify!($t)
                        ))
                    }),
                    Value::Bool(v) => Ok(<$t>::from(v)),
                    Value::Numeric(ref text) => whole_numeric::<i64>(text)
                        .and_then(|v| <$t>::try_from(v).ok())
                        .ok_or_else(|| {
                            Error::decode(format!(
                                "numeric {text} is not a whole number in the range of {}",
                                stringify!($t)
                            ))
                        }),
                    _ => Err(mismatch(value, stringify!($t))),
                }
            }
        }
    )*};
}

integer!(i8, i16, i32, i64, u8, u16, u32);

/// `u64` binds as an integer when it fits in `i64` (SQL integers are signed) and as an exact
/// [`Value::Numeric`] above that, never wrapping: store it in a `numeric(20)` column on
/// PostgreSQL, a `TEXT` one on SQLite (whose integers are `i64`). It decodes from integers that
/// are not negative and from whole decimal text.
impl ToValue for u64 {
    fn to_value(&self) -> Value {
        match i64::try_from(*self) {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Numeric(self.to_string()),
        }
    }
}

impl FromValue for u64 {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match *value {
            Value::Int(v) => u64::try_from(v)
                .map_err(|_| Error::decode(format!("integer {v} is out of range for u64"))),
            Value::Bool(v) => Ok(u64::from(v)),
            // Text too: above i64's range a u64 binds as exact text, which SQLite keeps as text.
            Value::Numeric(ref text) | Value::Text(ref text) => whole_numeric::<u64>(text)
                .ok_or_else(|| {
                    Error::decode(format!(
                        "numeric {text} is not a whole number in the range of u64"
                    ))
                }),
            _ => Err(mismatch(value, "u64")),
        }
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
}

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Float(f64::from(*self))
    }
}

impl FromValue for f64 {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match *value {
            Value::Float(v) => Ok(v),
            // SQLite's REAL affinity may hand back whole numbers as integers.
            Value::Int(v) => int_to_f64(v),
            Value::Numeric(ref text) => Err(Error::decode(format!(
                "numeric {text} is an exact decimal and an f64 may not hold it; decode it as \
                 String, or cast it in SQL (`::float8` on PostgreSQL, `CAST(.. AS REAL)` on \
                 SQLite) to read it as a float"
            ))),
            _ => Err(mismatch(value, "f64")),
        }
    }
}

impl FromValue for f32 {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        // Narrowing a float is what every SQL driver does for real/float4; precision, not range, is lost.
        #[allow(clippy::cast_possible_truncation)]
        f64::from_value_ref(value).map(|v| v as f32)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for String {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Text(v) | Value::Numeric(v) | Value::Json(v) => Ok(v.clone()),
            _ => Err(mismatch(value, "String")),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Text(v) | Value::Numeric(v) | Value::Json(v) => Ok(v),
            other => Err(mismatch(&other, "String")),
        }
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl FromValue for Vec<u8> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            _ => Err(mismatch(value, "Vec<u8>")),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Blob(v) => Ok(v),
            other => Err(mismatch(&other, "Vec<u8>")),
        }
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value_ref(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value_ref(v).map(Some),
        }
    }
    fn from_value(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(i32::from_value(Value::Int(7)).unwrap(), 7);
        let err = i8::from_value(Value::Int(300)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(err.message(), "integer 300 is out of range for i8");
        assert_eq!(
            u32::from_value(Value::Int(-1)).unwrap_err().kind(),
            ErrorKind::Decode
        );
    }

    #[test]
    fn null_needs_an_option() {
        assert_eq!(Option::<i64>::from_value(Value::Null).unwrap(), None);
        let err = String::from_value(Value::Null).unwrap_err();
        assert!(err.message().contains("Option<String>"), "{err}");
    }

    #[test]
    fn numerics_decode_exactly_or_not_at_all() {
        let digits = "12345678901234567890.0123456789";
        let n = Value::Numeric(digits.into());
        assert_eq!(String::from_value_ref(&n).unwrap(), digits);
        assert_eq!(String::from_value(n.clone()).unwrap(), digits);
        let err = f64::from_value_ref(&n).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.message().contains("::float8"), "{err}");
        assert_eq!(
            i64::from_value(Value::Numeric("-7.000".into())).unwrap(),
            -7
        );
        assert!(i64::from_value_ref(&n).is_err());
        assert!(i8::from_value(Value::Numeric("300".into())).is_err());
        assert!(i64::from_value(Value::Numeric("1.5".into())).is_err());
        assert_eq!(format!("{n:?}"), format!("Numeric({digits})"));
    }

    #[test]
    fn integers_become_floats_only_exactly() {
        assert_eq!(
            f64::from_value(Value::Int(1 << 53)).unwrap(),
            9007199254740992.0
        );
        assert!(f64::from_value(Value::Int((1 << 53) + 1)).is_err());
        assert!(f64::from_value(Value::Int(i64::MAX)).is_err());
        assert_eq!(
            f64::from_value(Value::Int(i64::MIN)).unwrap(),
            -(2f64.powi(63))
        );
    }

    #[test]
    fn type_mismatch_is_a_decode_error() {
        let err = i64::from_value(Value::Text("x".into())).unwrap_err();
        assert_eq!(err.message(), "cannot decode a text value into i64");
    }
}
