//! Binding: a [`Value`] encoded for the type of the parameter it is bound to.
//!
//! The plain values (integers, floats, bools, text, bytes) are written inline (the hot paths);
//! dates, times, UUIDs, `inet` and arrays through postgres-protocol's codecs.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt::{self, Write as _};

use anysql_core::{Error, Value};
use bytes::{BufMut, BytesMut};
use postgres_protocol::types as pg;
use postgres_types::{to_sql_checked, Format, IsNull, Kind, ToSql, Type};

use super::datetime::{
    date_text, date_to_pg, time_to_pg, timestamp_text, timestamp_to_pg, write_date, write_time,
    write_timestamp, BadTimestamp, DATE_RANGE, TIMESTAMP_RANGE,
};
use super::{base_type, is_text_like, sql_name, unspecified_type};

/// The type a value declares for its placeholder when PostgreSQL is not asked to infer it: the
/// value's own type for integers (`int8`), floats (`float8`), bools, bytes, dates and times
/// (`date`, `time`, `timestamp`, `timestamptz`), UUIDs, JSON (`jsonb`) and IP addresses (`inet`);
/// for an array, the array type of its first non-NULL element's type (`int8[]`). Text, numerics
/// and NULL are left to the server (unspecified) and sent as text, which it parses for the type
/// it infers; so are arrays of them, empty arrays and arrays of NULLs.
fn declared_type(value: &Value) -> Option<Type> {
    match value {
        Value::Int(_) => Some(Type::INT8),
        Value::Float(_) => Some(Type::FLOAT8),
        Value::Bool(_) => Some(Type::BOOL),
        Value::Blob(_) => Some(Type::BYTEA),
        Value::Date(_) => Some(Type::DATE),
        Value::Time(_) => Some(Type::TIME),
        Value::Timestamp(_) => Some(Type::TIMESTAMP),
        Value::TimestampTz(..) => Some(Type::TIMESTAMPTZ),
        Value::Uuid(_) => Some(Type::UUID),
        Value::Json(_) => Some(Type::JSONB),
        Value::Inet(_) => Some(Type::INET),
        Value::Array(items) => array_type(&declared_type(first_element(items)?)?),
        _ => None,
    }
}

/// The first element of an array that is not NULL.
fn first_element(items: &[Value]) -> Option<&Value> {
    items.iter().find(|item| !item.is_null())
}

/// The array type of an element type that values declare.
fn array_type(element: &Type) -> Option<Type> {
    Some(match *element {
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::BOOL => Type::BOOL_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::UUID => Type::UUID_ARRAY,
        Type::JSONB => Type::JSONB_ARRAY,
        Type::INET => Type::INET_ARRAY,
        _ => return None,
    })
}

/// The type an unnamed (PgBouncer-safe) statement declares for a value: see [`declared_type`].
pub(crate) fn unnamed_param_type(value: &Value, unspecified: &Type) -> Type {
    declared_type(value).unwrap_or_else(|| unspecified.clone())
}

/// The type a value takes on a placeholder that PostgreSQL typed as text for want of context: its
/// [`declared_type`], and `text[]` (`numeric[]`) for an array of text (numerics), an empty array
/// and an array of NULLs, which cannot bind to `text`.
fn own_type(value: &Value) -> Option<Type> {
    declared_type(value).or_else(|| match value {
        Value::Array(items) => match first_element(items) {
            None | Some(Value::Text(_)) => Some(Type::TEXT_ARRAY),
            Some(Value::Numeric(_)) => Some(Type::NUMERIC_ARRAY),
            Some(_) => None,
        },
        _ => None,
    })
}

/// For a prepared statement whose inferred parameter types refuse `values`: if some refused value
/// sits on a placeholder PostgreSQL typed as text for want of context (`SELECT $1`), the types to
/// prepare it again with (the value's own type there, unspecified elsewhere) and a signature to
/// cache that under. `None` when that would change nothing.
pub(crate) fn retype(values: &[Value], inferred: &[Type]) -> Option<(String, Vec<Type>)> {
    if values.len() != inferred.len() {
        return None;
    }
    let mut changed = false;
    let mut signature = String::new();
    let mut types = Vec::with_capacity(values.len());
    for (i, (value, ty)) in values.iter().zip(inferred).enumerate() {
        let text_by_default = matches!(*ty, Type::TEXT | Type::UNKNOWN);
        let declared = match own_type(value) {
            Some(declared)
                if text_by_default && encoding(value, ty, Place::top(i + 1)).is_err() =>
            {
                declared
            }
            _ => {
                signature.push(',');
                types.push(unspecified_type());
                continue;
            }
        };
        changed = true;
        signature.push_str(declared.name());
        signature.push(',');
        types.push(declared);
    }
    changed.then_some((signature, types))
}

/// The types that text and numerics never bind to: integers, floats, `bool` and `bytea`, which
/// have values of their own and would refuse or round what PostgreSQL's text input made of them.
fn has_native_value(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::BOOL
            | Type::BYTEA
    )
}

/// How one value is written for one parameter type.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Null,
    I16(i16),
    I32(i32),
    I64(i64),
    U32(u32),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// The value's own bytes (text, JSON or blob), in binary format.
    Raw,
    /// The value rendered as text, in text format, for the server to parse.
    Text,
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 2000-01-01 (`timestamp` and `timestamptz`).
    Timestamp(i64),
    Uuid,
    /// Version 1, then the JSON text.
    Jsonb,
    Inet,
    /// A binary array of the parameter's element type, each element encoded for it.
    Array,
}

/// Where a value sits, for messages: its placeholder and, inside an array, its element.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// 1-based.
    position: usize,
    /// 0-based, or [`Place::TOP`].
    element: usize,
}

impl Place {
    const TOP: usize = usize::MAX;

    fn top(position: usize) -> Self {
        Place {
            position,
            element: Self::TOP,
        }
    }

    fn element(self, index: usize) -> Self {
        Place {
            position: self.position,
            element: index,
        }
    }

    fn in_array(self) -> bool {
        self.element != Self::TOP
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter ${}", self.position)?;
        if self.in_array() {
            write!(f, ", array element {}", self.element)?;
        }
        Ok(())
    }
}

/// Why a value cannot be bound to a parameter type.
#[derive(Debug)]
pub(crate) struct BindError(String);

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for BindError {}

/// The type to cast a placeholder to for this value.
fn cast_hint(value: &Value) -> Cow<'static, str> {
    Cow::Borrowed(match value {
        Value::Int(_) => "bigint",
        Value::Float(_) => "float8",
        Value::Bool(_) => "boolean",
        Value::Blob(_) => "bytea",
        Value::Numeric(_) => "numeric",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(..) => "timestamptz",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "jsonb",
        Value::Inet(_) => "inet",
        Value::Array(items) => {
            return Cow::Owned(match first_element(items) {
                Some(item) => format!("{}[]", cast_hint(item)),
                None => "text[]".to_owned(),
            })
        }
        _ => "text",
    })
}

fn encoding(value: &Value, declared: &Type, place: Place) -> Result<Encoding, BindError> {
    let ty = base_type(declared);
    let unspecified = ty.oid() == 0;
    let out_of_range = |v: i64, range: &str| {
        BindError(format!(
            "{place}: integer {v} is out of range for PostgreSQL type {} ({range}); \
             pass a smaller value or change the column type",
            declared.name()
        ))
    };
    let encoding = match value {
        Value::Null => Encoding::Null,
        Value::Int(v) => match *ty {
            Type::INT2 => {
                Encoding::I16(i16::try_from(*v).map_err(|_| out_of_range(*v, "-32768 to 32767"))?)
            }
            Type::INT4 => Encoding::I32(
                i32::try_from(*v).map_err(|_| out_of_range(*v, "-2147483648 to 2147483647"))?,
            ),
            Type::INT8 => Encoding::I64(*v),
            Type::OID => {
                Encoding::U32(u32::try_from(*v).map_err(|_| out_of_range(*v, "0 to 4294967295"))?)
            }
            // Deliberate: an integer bound to a float parameter is converted, as SQL would.
            #[allow(clippy::cast_precision_loss)]
            Type::FLOAT4 => Encoding::F32(*v as f32),
            #[allow(clippy::cast_precision_loss)]
            Type::FLOAT8 => Encoding::F64(*v as f64),
            Type::NUMERIC => Encoding::Text,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Float(v) => match *ty {
            // Narrowing to float4 loses precision, never range errors: what every driver does.
            #[allow(clippy::cast_possible_truncation)]
            Type::FLOAT4 => Encoding::F32(*v as f32),
            Type::FLOAT8 => Encoding::F64(*v),
            Type::NUMERIC => Encoding::Text,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Bool(v) => match *ty {
            Type::BOOL => Encoding::Bool(*v),
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Text(_) => {
            if is_text_like(ty) {
                Encoding::Raw
            } else if unspecified || !has_native_value(ty) {
                // Dates, numeric, uuid, jsonb, arrays, …: PostgreSQL's text input parses them.
                Encoding::Text
            } else {
                return Err(mismatch(value, declared, place));
            }
        }
        Value::Blob(_) => match *ty {
            Type::BYTEA => Encoding::Raw,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        // As text does, except that the text types take it in text format: `numeric` (exact,
        // whatever the precision), the text types, and the types PostgreSQL's text input parses
        // (a numeric domain, `money`, …); never an integer, float, bool or bytea parameter, which
        // would round or refuse digits silently: cast the placeholder (`$1::numeric`) instead.
        Value::Numeric(_) => {
            if unspecified || is_text_like(ty) || !has_native_value(ty) {
                Encoding::Text
            } else {
                return Err(mismatch(value, declared, place));
            }
        }
        // The richer types, out of line: the plain values above stay as small and as fast.
        _ => return typed_encoding(value, declared, ty, place),
    };
    Ok(encoding)
}

/// [`encoding`] of dates and times, UUIDs, JSON, IP addresses, arrays and invalid values, for
/// `ty`, the base type of `declared`.
#[inline(never)]
fn typed_encoding(
    value: &Value,
    declared: &Type,
    ty: &Type,
    place: Place,
) -> Result<Encoding, BindError> {
    let unspecified = ty.oid() == 0;
    Ok(match value {
        Value::Date(days) => match *ty {
            Type::DATE => Encoding::Date(pg_date(*days, place)?),
            _ if unspecified => pg_date(*days, place).map(|_| Encoding::Text)?,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Time(nanos) => match *ty {
            Type::TIME => Encoding::Time(pg_time(*nanos, place)?),
            _ if unspecified => pg_time(*nanos, place).map(|_| Encoding::Text)?,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Timestamp(t) => match *ty {
            Type::TIMESTAMP => Encoding::Timestamp(pg_timestamp(*t, false, place)?),
            Type::TIMESTAMPTZ => return Err(local_as_instant(declared, place)),
            _ if unspecified => pg_timestamp(*t, false, place).map(|_| Encoding::Text)?,
            _ => return Err(mismatch(value, declared, place)),
        },
        // The instant, whatever the offset it was shown at: never shifted.
        Value::TimestampTz(t, _) => match *ty {
            Type::TIMESTAMPTZ => Encoding::Timestamp(pg_timestamp(*t, true, place)?),
            Type::TIMESTAMP => return Err(instant_as_local(declared, place)),
            _ if unspecified => pg_timestamp(*t, true, place).map(|_| Encoding::Text)?,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Uuid(_) => match *ty {
            Type::UUID => Encoding::Uuid,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Json(_) => match *ty {
            Type::JSONB => Encoding::Jsonb,
            // `json` and the text types: the text itself.
            _ if is_text_like(ty) => Encoding::Raw,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Inet(_) => match *ty {
            // A single address: the full netmask, which `cidr` takes as well.
            Type::INET | Type::CIDR => Encoding::Inet,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, place)),
        },
        Value::Array(items) => array_encoding(value, items, declared, place)?,
        Value::Invalid(why) => return Err(BindError(format!("{place}: {why}"))),
        _ => {
            return Err(BindError(format!(
                "{place}: anysql-postgres cannot bind {} {} value yet",
                article(value.type_name()),
                value.type_name()
            )))
        }
    })
}

/// An array binds to an array type whose element type takes every element (NULLs included), in
/// binary; in text when an element goes through PostgreSQL's text input (text into `uuid[]`,
/// numerics) or the type is left to the server.
fn array_encoding(
    value: &Value,
    items: &[Value],
    declared: &Type,
    place: Place,
) -> Result<Encoding, BindError> {
    if place.in_array() {
        return Err(BindError(format!(
            "{place}: an array inside an array; anysql binds one-dimensional arrays only (each \
             element a single value)"
        )));
    }
    let ty = base_type(declared);
    let member = match ty.kind() {
        Kind::Array(member) => member,
        _ if ty.oid() == 0 => ty,
        _ => return Err(mismatch(value, declared, place)),
    };
    let mut text = ty.oid() == 0;
    for (i, item) in items.iter().enumerate() {
        if let Encoding::Text = encoding(item, member, place.element(i))? {
            text = true;
        }
    }
    Ok(if text {
        Encoding::Text
    } else {
        Encoding::Array
    })
}

fn pg_date(days: i32, place: Place) -> Result<i32, BindError> {
    date_to_pg(days).ok_or_else(|| {
        BindError(format!(
            "{place}: date {} is out of PostgreSQL's range ({DATE_RANGE})",
            date_text(i64::from(days))
        ))
    })
}

fn pg_time(nanos: u64, place: Place) -> Result<i64, BindError> {
    time_to_pg(nanos).ok_or_else(|| {
        BindError(format!(
            "{place}: a time of day of {nanos} nanoseconds since midnight is past 24:00:00, the \
             latest PostgreSQL's time takes"
        ))
    })
}

fn pg_timestamp(t: anysql_core::Timestamp, instant: bool, place: Place) -> Result<i64, BindError> {
    timestamp_to_pg(t).map_err(|bad| {
        BindError(match bad {
            BadTimestamp::OutOfRange => format!(
                "{place}: {} {}{} is out of PostgreSQL's range ({TIMESTAMP_RANGE})",
                if instant { "timestamptz" } else { "timestamp" },
                timestamp_text(t),
                if instant { " UTC" } else { "" }
            ),
            BadTimestamp::Nanos => format!(
                "{place}: a timestamp with {} nanoseconds past its second, which takes fewer than \
                 1,000,000,000",
                t.nanos
            ),
        })
    })
}

/// The cast a message suggests: `$1::timestamp`, or `$1::timestamp[]` for an element.
fn placeholder_cast(place: Place, ty: &str) -> String {
    let brackets = if place.in_array() { "[]" } else { "" };
    format!("${}::{ty}{brackets}", place.position)
}

fn local_as_instant(declared: &Type, place: Place) -> BindError {
    BindError(format!(
        "{place}: cannot bind a timestamp without time zone (a local date and time, such as \
         chrono's NaiveDateTime) to PostgreSQL type {}: PostgreSQL would read it in the session's \
         TimeZone, so the instant stored would shift with that setting; bind an instant \
         (timestamptz: DateTime<Utc>, OffsetDateTime), or cast the placeholder (`{}`) to have \
         PostgreSQL read it in the session's time zone",
        declared.name(),
        placeholder_cast(place, "timestamp")
    ))
}

fn instant_as_local(declared: &Type, place: Place) -> BindError {
    BindError(format!(
        "{place}: cannot bind an instant (timestamptz, such as DateTime<Utc>) to PostgreSQL type {}, \
         a local date and time: which one depends on a time zone, and PostgreSQL would use the \
         session's TimeZone; bind a local date and time (timestamp: NaiveDateTime, \
         PrimitiveDateTime) in the time zone you mean, or cast the placeholder (`{}`) to have \
         PostgreSQL convert it in the session's time zone",
        declared.name(),
        placeholder_cast(place, "timestamptz")
    ))
}

/// `a` or `an`, for a type's name.
fn article(name: &str) -> &'static str {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn mismatch(value: &Value, ty: &Type, place: Place) -> BindError {
    let name = value.type_name();
    let hint = cast_hint(value);
    let ty = sql_name(ty);
    if place.in_array() {
        BindError(format!(
            "{place}: cannot bind {} {name} value to the array's element type {ty}; pass elements of \
             that type, or cast the placeholder in the SQL (such as `{}`) so that PostgreSQL \
             expects an array of this type",
            article(name),
            placeholder_cast(place, &hint)
        ))
    } else {
        BindError(format!(
            "{place}: cannot bind {} {name} value to a parameter of PostgreSQL type {ty}; pass a \
             value of the parameter's type, or cast the placeholder in the SQL (such as `{}`) so \
             that PostgreSQL expects this type",
            article(name),
            placeholder_cast(place, &hint)
        ))
    }
}

/// Writes a value as PostgreSQL's text input reads it: for [`Encoding::Text`], and for the
/// elements of an array literal. Dates and times are truncated to the microsecond, as in binary.
fn write_text(value: &Value, out: &mut BytesMut) {
    match value {
        Value::Null | Value::Invalid(_) => {}
        Value::Bool(v) => out.put_slice(if *v { b"t" } else { b"f" }),
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float(v) => {
            if v.is_nan() {
                out.put_slice(b"NaN");
            } else if v.is_infinite() {
                out.put_slice(if *v > 0.0 { b"Infinity" } else { b"-Infinity" });
            } else {
                // `{:?}` is the shortest text that reads back to the same f64, and always shows
                // that it is a float (`1.0`, `1e300`), so an integer column refuses it.
                let _ = write!(out, "{v:?}");
            }
        }
        Value::Text(v) | Value::Numeric(v) | Value::Json(v) => out.put_slice(v.as_bytes()),
        Value::Blob(v) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.reserve(2 + v.len() * 2);
            out.put_slice(b"\\x");
            for byte in v {
                out.put_u8(HEX[usize::from(byte >> 4)]);
                out.put_u8(HEX[usize::from(byte & 0xf)]);
            }
        }
        Value::Date(days) => {
            let _ = write_date(out, i64::from(*days));
        }
        Value::Time(nanos) => {
            let _ = write_time(out, *nanos);
        }
        Value::Timestamp(t) => {
            let _ = write_timestamp(out, *t, false);
        }
        Value::TimestampTz(t, _) => {
            let _ = write_timestamp(out, *t, true);
        }
        Value::Uuid(bytes) => {
            for (i, byte) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.put_u8(b'-');
                }
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Inet(addr) => {
            let _ = write!(out, "{addr}");
        }
        Value::Array(items) => write_array_literal(items, out),
        _ => {}
    }
}

/// `{"1","two",NULL}`: every element quoted (`"` and `\` escaped), NULL bare.
fn write_array_literal(items: &[Value], out: &mut BytesMut) {
    out.put_u8(b'{');
    let mut element = BytesMut::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        if item.is_null() {
            out.put_slice(b"NULL");
            continue;
        }
        element.clear();
        write_text(item, &mut element);
        out.put_u8(b'"');
        for &byte in element.iter() {
            if byte == b'"' || byte == b'\\' {
                out.put_u8(b'\\');
            }
            out.put_u8(byte);
        }
        out.put_u8(b'"');
    }
    out.put_u8(b'}');
}

/// Writes `value` as `encoding` says.
fn write(
    value: &Value,
    encoding: Encoding,
    ty: &Type,
    place: Place,
    out: &mut BytesMut,
) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
    match encoding {
        Encoding::Null => return Ok(IsNull::Yes),
        Encoding::I16(v) => out.put_i16(v),
        Encoding::I32(v) => out.put_i32(v),
        Encoding::I64(v) => out.put_i64(v),
        Encoding::U32(v) => out.put_u32(v),
        Encoding::F32(v) => out.put_f32(v),
        Encoding::F64(v) => out.put_f64(v),
        Encoding::Bool(v) => out.put_u8(u8::from(v)),
        Encoding::Raw => match value {
            Value::Text(v) | Value::Json(v) => out.put_slice(v.as_bytes()),
            Value::Blob(v) => out.put_slice(v),
            _ => {}
        },
        Encoding::Text => write_text(value, out),
        Encoding::Date(days) => pg::date_to_sql(days, out),
        Encoding::Time(micros) => pg::time_to_sql(micros, out),
        Encoding::Timestamp(micros) => pg::timestamp_to_sql(micros, out),
        Encoding::Uuid => {
            if let Value::Uuid(bytes) = value {
                pg::uuid_to_sql(*bytes, out);
            }
        }
        Encoding::Jsonb => {
            if let Value::Json(v) = value {
                out.put_u8(1);
                out.put_slice(v.as_bytes());
            }
        }
        Encoding::Inet => {
            if let Value::Inet(addr) = *value {
                pg::inet_to_sql(addr, if addr.is_ipv4() { 32 } else { 128 }, out);
            }
        }
        Encoding::Array => write_array(value, ty, place, out)?,
    }
    Ok(IsNull::No)
}

/// A binary array of one dimension (none when empty, as PostgreSQL's own empty arrays), lower
/// bound 1, of the parameter's element type.
fn write_array(
    value: &Value,
    ty: &Type,
    place: Place,
    out: &mut BytesMut,
) -> Result<(), Box<dyn StdError + Sync + Send>> {
    let (Value::Array(items), Kind::Array(member)) = (value, base_type(ty).kind()) else {
        return Err(Box::new(BindError(format!(
            "{place}: not an array of PostgreSQL type {}",
            sql_name(ty)
        ))));
    };
    let dimension = if items.is_empty() {
        None
    } else {
        let len = i32::try_from(items.len()).map_err(|_| {
            BindError(format!(
                "{place}: an array of {} elements, more than PostgreSQL takes",
                items.len()
            ))
        })?;
        Some(pg::ArrayDimension {
            len,
            lower_bound: 1,
        })
    };
    pg::array_to_sql(
        dimension,
        member.oid(),
        items.iter().enumerate(),
        |(i, item), out| {
            let place = place.element(i);
            let encoding = encoding(item, member, place)?;
            Ok(match write(item, encoding, member, place, out)? {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            })
        },
        out,
    )
}

/// One anysql [`Value`] as a tokio-postgres parameter. It accepts every parameter type and encodes
/// itself for the type the statement declares (see [`check_params`] for the rules).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgParam<'a> {
    pub(crate) value: &'a Value,
    /// 1-based, for messages.
    pub(crate) position: usize,
}

impl ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let place = Place::top(self.position);
        let encoding = encoding(self.value, ty, place)?;
        write(self.value, encoding, ty, place, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        match encoding(self.value, ty, Place::top(self.position)) {
            Ok(Encoding::Text) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

/// Checks every value against the statement's parameter types before anything is sent, so that a
/// wrong type is a [`Parameter`](anysql_core::ErrorKind::Parameter) error and the connection is
/// untouched.
///
/// The rules: NULL binds to anything. An integer binds to `int2`/`int4`/`int8`/`oid` (range-checked),
/// `float4`/`float8` (converted) and `numeric`. A float binds to `float4`/`float8` and `numeric`. A
/// bool binds to `bool`, bytes to `bytea`. A [`Value::Numeric`] binds, as its exact text, to
/// `numeric`, the text types and every other type but the integer, float, `bool` and `bytea` types.
/// Text binds to the text types (`text`, `varchar`, `char(n)`, `name`, `json`, enums, `citext`)
/// and, through PostgreSQL's text input, to every other type but the integer, float, `bool` and
/// `bytea` types (`numeric`, dates and times, `uuid`, `jsonb`, arrays, …).
///
/// A date binds to `date`, a time to `time` (up to 24:00:00), a [`Value::Timestamp`] to
/// `timestamp` and a [`Value::TimestampTz`] to `timestamptz` (its instant, whatever its offset),
/// each range-checked against PostgreSQL's range and truncated toward the past to the microsecond.
/// A timestamp is refused for `timestamptz`, and an instant for `timestamp`: PostgreSQL would
/// convert either in the session's time zone. A UUID binds to `uuid`, JSON to `json`, `jsonb` and
/// the text types, an IP address to `inet` and `cidr`. An array binds to an array type whose
/// element type takes each element by these rules (NULL elements too), one dimension deep.
/// [`Value::Invalid`] binds to nothing: its message is the error. Domains follow their base type.
pub(crate) fn check_params(values: &[Value], types: &[Type]) -> Result<(), Error> {
    if values.len() != types.len() {
        return Err(Error::parameter_count(types.len(), values.len()));
    }
    for (i, (value, ty)) in values.iter().zip(types).enumerate() {
        encoding(value, ty, Place::top(i + 1)).map_err(|e| Error::parameter(e.0))?;
    }
    Ok(())
}

/// The parameters of a statement, as tokio-postgres wants them.
pub(crate) fn params(values: &[Value]) -> impl ExactSizeIterator<Item = PgParam<'_>> {
    values.iter().enumerate().map(|(i, value)| PgParam {
        value,
        position: i + 1,
    })
}
