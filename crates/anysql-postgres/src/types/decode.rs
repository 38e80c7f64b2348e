//! Decoding: the per-column decoders of a result, from PostgreSQL's binary format.
//!
//! The fixed-width types are read inline (the hot paths); dates, times, UUIDs, `inet` and arrays
//! through postgres-protocol's codecs; the types without a [`Value`] variant of their own that the
//! driver writes as text, in [`render`].

use std::error::Error as StdError;
use std::sync::Arc;

use anysql_core::{Columns, Error, Row, Value};
use fallible_iterator::FallibleIterator;
use postgres_protocol::types as pg;
use postgres_types::{FromSql, Kind, Type};

use super::datetime::{date_from_pg, time_from_pg, timestamp_from_pg};
use super::render::{self, renderable};
use super::{base_type, is_text_like, sql_name};

/// How one result column (or one element of an array column) is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoder {
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Bool,
    Text,
    Json,
    Jsonb,
    Bytea,
    Numeric,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Inet,
    /// A one-dimensional array whose elements decode with the decoder given (never an array).
    Array(&'static Decoder),
    /// A type without a variant of its own, or an array of one, that the driver writes as
    /// PostgreSQL's text output ([`render`]), by the column's type.
    Render,
    Unsupported,
}

/// The decoders an array's elements may have, to point [`Decoder::Array`] at.
static ELEMENTS: [Decoder; 18] = [
    Decoder::Int2,
    Decoder::Int4,
    Decoder::Int8,
    Decoder::Oid,
    Decoder::Float4,
    Decoder::Float8,
    Decoder::Bool,
    Decoder::Text,
    Decoder::Json,
    Decoder::Jsonb,
    Decoder::Bytea,
    Decoder::Numeric,
    Decoder::Date,
    Decoder::Time,
    Decoder::Timestamp,
    Decoder::TimestampTz,
    Decoder::Uuid,
    Decoder::Inet,
];

pub(super) fn decoder(ty: &Type) -> Decoder {
    let ty = base_type(ty);
    if let Some(scalar) = scalar_decoder(ty) {
        return scalar;
    }
    let array = match ty.kind() {
        Kind::Array(member) => scalar_decoder(base_type(member))
            .and_then(|element| ELEMENTS.iter().find(|e| **e == element))
            .map(Decoder::Array),
        _ => None,
    };
    match array {
        Some(array) => array,
        None if renderable(ty) => Decoder::Render,
        None => Decoder::Unsupported,
    }
}

/// The decoder of a type with a [`Value`] variant of its own (not an array; not a domain: the
/// caller takes its base type).
pub(super) fn scalar_decoder(ty: &Type) -> Option<Decoder> {
    Some(match *ty {
        Type::INT2 => Decoder::Int2,
        Type::INT4 => Decoder::Int4,
        Type::INT8 => Decoder::Int8,
        Type::OID => Decoder::Oid,
        Type::FLOAT4 => Decoder::Float4,
        Type::FLOAT8 => Decoder::Float8,
        Type::BOOL => Decoder::Bool,
        Type::BYTEA => Decoder::Bytea,
        Type::JSON => Decoder::Json,
        Type::JSONB => Decoder::Jsonb,
        Type::NUMERIC => Decoder::Numeric,
        Type::DATE => Decoder::Date,
        Type::TIME => Decoder::Time,
        Type::TIMESTAMP => Decoder::Timestamp,
        Type::TIMESTAMPTZ => Decoder::TimestampTz,
        Type::UUID => Decoder::Uuid,
        Type::INET | Type::CIDR => Decoder::Inet,
        _ if is_text_like(ty) => Decoder::Text,
        _ => return None,
    })
}

/// How to turn the rows of one statement into anysql [`Row`]s: the shared column names and a
/// decoder per column. Built once per prepared statement (or once per unnamed query).
#[derive(Debug)]
pub(crate) struct RowPlan {
    columns: Arc<Columns>,
    decoders: Box<[Decoder]>,
    types: Box<[Type]>,
}

impl RowPlan {
    pub(crate) fn new(columns: &[tokio_postgres::Column]) -> Self {
        RowPlan {
            columns: Columns::new(columns.iter().map(|c| c.name().to_owned())),
            decoders: columns.iter().map(|c| decoder(c.type_())).collect(),
            types: columns.iter().map(|c| c.type_().clone()).collect(),
        }
    }

    /// Converts one row.
    pub(crate) fn decode(&self, row: &tokio_postgres::Row) -> Result<Row, Error> {
        let mut values = vec![Value::Null; self.decoders.len()];
        self.decode_into(row, &mut values)?;
        Ok(Row::new(Arc::clone(&self.columns), values))
    }

    /// An empty row of this result's columns, to refill with [`decode_into`](Self::decode_into).
    pub(crate) fn empty_row(&self) -> Row {
        Row::new(
            Arc::clone(&self.columns),
            vec![Value::Null; self.decoders.len()],
        )
    }

    /// Converts one row into `out`, one slot per column.
    pub(crate) fn decode_into(
        &self,
        row: &tokio_postgres::Row,
        out: &mut [Value],
    ) -> Result<(), Error> {
        for (i, (decoder, slot)) in self.decoders.iter().zip(out.iter_mut()).enumerate() {
            let raw = row
                .try_get::<_, RawCell<'_>>(i)
                .map_err(|e| Error::decode(format!("column {i}: {e}")))?
                .0;
            *slot = match raw {
                None => Value::Null,
                Some(raw) if *decoder == Decoder::Render => {
                    render::value(&self.types[i], raw).map_err(|e| self.column_error(i, e))?
                }
                Some(raw) => decode_value(*decoder, raw).map_err(|e| self.column_error(i, e))?,
            };
        }
        Ok(())
    }

    fn column_error(&self, i: usize, problem: Problem) -> Error {
        let name = self.columns.name(i).unwrap_or("");
        let ty = sql_name(&self.types[i]);
        column_error(i, name, &ty, problem)
    }
}

/// The message for a column that cannot be decoded.
pub(super) fn column_error(i: usize, name: &str, ty: &str, problem: Problem) -> Error {
    let (element, problem) = match problem {
        Problem::InArray(index, problem) => (format!(", array element {index}"), *problem),
        problem => (String::new(), problem),
    };
    match problem {
        Problem::Unsupported if ty == "money" || ty == "money[]" => Error::decode(format!(
            "column {i} ({name:?}) has PostgreSQL type {ty}, which anysql does not decode: its text \
             follows the server's lc_monetary (currency symbol, separators), which the driver \
             cannot reproduce exactly; cast that column in the SQL to numeric for the exact \
             amount (`expression::numeric`) or to text for the server's own text \
             (`expression::text`)"
        )),
        Problem::Unsupported => Error::decode(format!(
            "column {i} ({name:?}) has PostgreSQL type {ty}, which anysql cannot decode yet; cast that \
             column in the SQL to a type anysql decodes, such as text (`expression::text`)"
        )),
        Problem::Malformed(what) => Error::decode(format!(
            "column {i} ({name:?}) of type {ty}{element}: the server sent a malformed value ({what})"
        )),
        Problem::Infinite(which) => Error::decode(format!(
            "column {i} ({name:?}) of type {ty}{element} is {which}, which no Rust date or time type \
             holds; cast that column in the SQL to text (`expression::text`) to read it, or leave \
             such rows out (`WHERE isfinite(expression)`)"
        )),
        Problem::Dimensions(n) => Error::decode(format!(
            "column {i} ({name:?}) of type {ty}{element} is a {n}-dimensional array, and anysql decodes \
             one-dimensional arrays only; unnest it in the SQL (`unnest(expression)`), or cast it to \
             text (`expression::text`)"
        )),
        Problem::InArray(..) => Error::decode(format!("column {i} ({name:?}) of type {ty}")),
    }
}

/// Why a value could not be decoded.
#[derive(Debug)]
pub(super) enum Problem {
    /// A type anysql has no [`Value`] for.
    Unsupported,
    /// Bytes that are not the type's binary format.
    Malformed(&'static str),
    /// A date or timestamp that is `infinity` or `-infinity`.
    Infinite(&'static str),
    /// An array of more than one dimension.
    Dimensions(usize),
    /// The problem of one element of an array (0-based).
    InArray(usize, Box<Problem>),
}

pub(super) fn decode_value(decoder: Decoder, raw: &[u8]) -> Result<Value, Problem> {
    fn array<const N: usize>(raw: &[u8]) -> Result<[u8; N], Problem> {
        raw.try_into()
            .map_err(|_| Problem::Malformed("wrong length"))
    }
    fn utf8(raw: &[u8]) -> Result<String, Problem> {
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| Problem::Malformed("invalid UTF-8"))
    }
    Ok(match decoder {
        Decoder::Int2 => Value::Int(i16::from_be_bytes(array(raw)?).into()),
        Decoder::Int4 => Value::Int(i32::from_be_bytes(array(raw)?).into()),
        Decoder::Int8 => Value::Int(i64::from_be_bytes(array(raw)?)),
        Decoder::Oid => Value::Int(u32::from_be_bytes(array(raw)?).into()),
        Decoder::Float4 => Value::Float(f32::from_be_bytes(array(raw)?).into()),
        Decoder::Float8 => Value::Float(f64::from_be_bytes(array(raw)?)),
        Decoder::Bool => Value::Bool(array::<1>(raw)?[0] != 0),
        Decoder::Text => Value::Text(utf8(raw)?),
        Decoder::Json => Value::Json(utf8(raw)?),
        Decoder::Jsonb => match raw.split_first() {
            Some((1, json)) => Value::Json(utf8(json)?),
            _ => return Err(Problem::Malformed("unknown jsonb version")),
        },
        Decoder::Bytea => Value::Blob(raw.to_vec()),
        Decoder::Numeric => numeric(raw)?,
        // The richer types, out of line: the plain values above stay as small and as fast.
        _ => return typed_value(decoder, raw),
    })
}

/// [`decode_value`] of dates and times, UUIDs, addresses and arrays.
#[inline(never)]
fn typed_value(decoder: Decoder, raw: &[u8]) -> Result<Value, Problem> {
    Ok(match decoder {
        Decoder::Date => {
            let days = pg::date_from_sql(raw).map_err(|_| Problem::Malformed("bad date"))?;
            match days {
                i32::MAX => return Err(Problem::Infinite("infinity")),
                i32::MIN => return Err(Problem::Infinite("-infinity")),
                days => Value::Date(date_from_pg(days).ok_or(Problem::Malformed("bad date"))?),
            }
        }
        Decoder::Time => {
            let micros = pg::time_from_sql(raw).map_err(|_| Problem::Malformed("bad time"))?;
            Value::Time(time_from_pg(micros).ok_or(Problem::Malformed("bad time"))?)
        }
        Decoder::Timestamp | Decoder::TimestampTz => {
            let micros =
                pg::timestamp_from_sql(raw).map_err(|_| Problem::Malformed("bad timestamp"))?;
            let t = match micros {
                i64::MAX => return Err(Problem::Infinite("infinity")),
                i64::MIN => return Err(Problem::Infinite("-infinity")),
                micros => timestamp_from_pg(micros),
            };
            if decoder == Decoder::Timestamp {
                Value::Timestamp(t)
            } else {
                Value::TimestampTz(t, 0)
            }
        }
        Decoder::Uuid => {
            Value::Uuid(pg::uuid_from_sql(raw).map_err(|_| Problem::Malformed("bad uuid"))?)
        }
        Decoder::Inet => {
            let inet = pg::inet_from_sql(raw).map_err(|_| Problem::Malformed("bad inet"))?;
            let full = if inet.addr().is_ipv4() { 32 } else { 128 };
            if inet.netmask() != full {
                // A network: an IpAddr has no netmask, so its text (`10.0.0.0/8`), which
                // decodes into String.
                return render::text(&Type::CIDR, raw).map(Value::Text);
            }
            Value::Inet(inet.addr())
        }
        Decoder::Array(element) => array_value(*element, raw)?,
        _ => return Err(Problem::Unsupported),
    })
}

/// Decodes a one-dimensional array (or an empty one, which has no dimensions), element by element.
fn array_value(element: Decoder, raw: &[u8]) -> Result<Value, Problem> {
    let malformed = |_| Problem::Malformed("bad array");
    let array = pg::array_from_sql(raw).map_err(malformed)?;
    let dimensions = array.dimensions().count().map_err(malformed)?;
    if dimensions > 1 {
        return Err(Problem::Dimensions(dimensions));
    }
    let mut values = array.values();
    // Each element takes at least its 4-byte length: no bogus count allocates more than that.
    let (len, _) = values.size_hint();
    let mut out = Vec::with_capacity(len.min(raw.len() / 4));
    while let Some(item) = values.next().map_err(malformed)? {
        out.push(match item {
            None => Value::Null,
            Some(raw) => decode_value(element, raw)
                .map_err(|problem| Problem::InArray(out.len(), Box::new(problem)))?,
        });
    }
    Ok(Value::Array(out))
}

/// Decodes PostgreSQL's binary `numeric` into [`Value::Numeric`] with the text PostgreSQL
/// itself prints: every digit, the column's scale respected (`1.50` for `numeric(10,2)`), `NaN`,
/// `Infinity` and `-Infinity`.
///
/// The binary form is `ndigits`, `weight`, `sign` and `dscale` (16 bits each), then `ndigits`
/// base-10000 digits, the first worth 10000^`weight`; `dscale` is the number of decimal digits
/// after the point.
pub(super) fn numeric(raw: &[u8]) -> Result<Value, Problem> {
    let malformed = || Problem::Malformed("bad numeric");
    let word = |i: usize| -> Result<u16, Problem> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(malformed)
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    match sign {
        0xC000 => return Ok(Value::Numeric("NaN".to_owned())),
        0xD000 => return Ok(Value::Numeric("Infinity".to_owned())),
        0xF000 => return Ok(Value::Numeric("-Infinity".to_owned())),
        0x0000 | 0x4000 => {}
        _ => return Err(malformed()),
    }
    // ndigits and dscale are non-negative 16-bit fields; PostgreSQL's largest scale is 16383.
    if ndigits > i16::MAX as usize || dscale > 0x3FFF || raw.len() != 8 + 2 * ndigits {
        return Err(malformed());
    }
    let digit = |group: i64| -> Result<u16, Problem> {
        match usize::try_from(group) {
            Ok(g) if g < ndigits => {
                let d = word(4 + g)?;
                if d < 10_000 {
                    Ok(d)
                } else {
                    Err(malformed())
                }
            }
            _ => Ok(0),
        }
    };
    let integral_groups = usize::try_from(weight + 1).unwrap_or(0);
    let mut text = String::with_capacity(2 + integral_groups * 4 + 1 + dscale + 3);
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for group in 0..=weight {
            let d = digit(group)?;
            if group == 0 {
                // The first group without leading zeros.
                let mut buf = [0u8; 4];
                let all = push_group(&mut buf, d);
                let first = all.iter().position(|&c| c != b'0').unwrap_or(3);
                text.extend(all[first..].iter().map(|&c| char::from(c)));
            } else {
                let mut buf = [0u8; 4];
                text.extend(push_group(&mut buf, d).iter().map(|&c| char::from(c)));
            }
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut left = dscale;
        let mut group = weight + 1;
        while left > 0 {
            let mut buf = [0u8; 4];
            let all = push_group(&mut buf, digit(group)?);
            let take = left.min(4);
            text.extend(all[..take].iter().map(|&c| char::from(c)));
            left -= take;
            group += 1;
        }
    }
    Ok(Value::Numeric(text))
}

/// The four decimal digits of a base-10000 digit, zero-padded.
fn push_group(buf: &mut [u8; 4], mut d: u16) -> &[u8; 4] {
    for slot in buf.iter_mut().rev() {
        // `d % 10` is a single decimal digit.
        *slot = b'0' + (d % 10) as u8;
        d /= 10;
    }
    buf
}

/// A column's raw binary value, whatever its type.
struct RawCell<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawCell<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
