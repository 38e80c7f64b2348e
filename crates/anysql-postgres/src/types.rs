//! [`Value`] ↔ PostgreSQL: one [`ToSql`] wrapper that encodes a value for whatever type the
//! statement's parameter has, and the per-column decoders of a result.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use anysql_core::{Columns, Error, Row, Value};
use bytes::{BufMut, BytesMut};
use postgres_types::{to_sql_checked, Format, FromSql, IsNull, Kind, ToSql, Type};

/// A parameter type left for the server to infer (OID 0), as in an unnamed statement parsed with
/// no type: the value is then sent in text format and parsed by the server for the inferred type.
pub(crate) fn unspecified_type() -> Type {
    Type::new(
        "unspecified".to_owned(),
        0,
        Kind::Pseudo,
        "pg_catalog".to_owned(),
    )
}

/// The type a value declares for its placeholder when PostgreSQL is not asked to infer it: the
/// value's own type for integers (`int8`), floats (`float8`), bools and bytes; text and NULL are
/// left to the server (unspecified) and sent as text, which it parses for the type it infers.
fn declared_type(value: &Value) -> Option<Type> {
    match value {
        Value::Int(_) => Some(Type::INT8),
        Value::Float(_) => Some(Type::FLOAT8),
        Value::Bool(_) => Some(Type::BOOL),
        Value::Blob(_) => Some(Type::BYTEA),
        _ => None,
    }
}

/// The type an unnamed (PgBouncer-safe) statement declares for a value: see [`declared_type`].
pub(crate) fn unnamed_param_type(value: &Value, unspecified: &Type) -> Type {
    declared_type(value).unwrap_or_else(|| unspecified.clone())
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
        let declared = match declared_type(value) {
            Some(declared) if text_by_default && encoding(value, ty, i + 1).is_err() => declared,
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

/// The underlying type of a domain, recursively.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

/// Types whose binary format is their UTF-8 text.
fn is_text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

/// Types anysql has a [`Value`] variant for: other values are not silently converted to them.
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
    /// The value's own bytes (text or blob), in binary format.
    Raw,
    /// The value rendered as text, in text format, for the server to parse.
    Text,
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

fn cast_hint(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "bigint",
        Value::Float(_) => "float8",
        Value::Bool(_) => "boolean",
        Value::Blob(_) => "bytea",
        Value::Numeric(_) => "numeric",
        _ => "text",
    }
}

fn encoding(value: &Value, declared: &Type, position: usize) -> Result<Encoding, BindError> {
    let ty = base_type(declared);
    let unspecified = ty.oid() == 0;
    let out_of_range = |v: i64, range: &str| {
        BindError(format!(
            "parameter ${position}: integer {v} is out of range for PostgreSQL type {} ({range}); \
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
            _ => return Err(mismatch(value, declared, position)),
        },
        Value::Float(v) => match *ty {
            // Narrowing to float4 loses precision, never range errors: what every driver does.
            #[allow(clippy::cast_possible_truncation)]
            Type::FLOAT4 => Encoding::F32(*v as f32),
            Type::FLOAT8 => Encoding::F64(*v),
            Type::NUMERIC => Encoding::Text,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, position)),
        },
        Value::Bool(v) => match *ty {
            Type::BOOL => Encoding::Bool(*v),
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, position)),
        },
        Value::Text(_) => {
            if is_text_like(ty) {
                Encoding::Raw
            } else if unspecified || !has_native_value(ty) {
                // Dates, numeric, uuid, jsonb, arrays, …: PostgreSQL's text input parses them.
                Encoding::Text
            } else {
                return Err(mismatch(value, declared, position));
            }
        }
        Value::Blob(_) => match *ty {
            Type::BYTEA => Encoding::Raw,
            _ if unspecified => Encoding::Text,
            _ => return Err(mismatch(value, declared, position)),
        },
        // As text does, except that the text types take it in text format: `numeric` (exact,
        // whatever the precision), the text types, and the types PostgreSQL's text input parses
        // (a numeric domain, `money`, …); never an integer, float, bool or bytea parameter, which
        // would round or refuse digits silently: cast the placeholder (`$1::numeric`) instead.
        Value::Numeric(_) => {
            if unspecified || is_text_like(ty) || !has_native_value(ty) {
                Encoding::Text
            } else {
                return Err(mismatch(value, declared, position));
            }
        }
        _ => {
            return Err(BindError(format!(
                "parameter ${position}: anysql-postgres cannot bind a {} value yet",
                value.type_name()
            )))
        }
    };
    Ok(encoding)
}

fn mismatch(value: &Value, ty: &Type, position: usize) -> BindError {
    BindError(format!(
        "parameter ${position}: cannot bind a {} value to a parameter of PostgreSQL type {}; pass a value \
         of the parameter's type, or cast the placeholder in the SQL (such as `${position}::{}`) so that \
         PostgreSQL expects this type",
        value.type_name(),
        ty.name(),
        cast_hint(value)
    ))
}

fn write_text(value: &Value, out: &mut BytesMut) {
    use std::fmt::Write as _;
    match value {
        Value::Null => {}
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
        Value::Text(v) | Value::Numeric(v) => out.put_slice(v.as_bytes()),
        Value::Blob(v) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.reserve(2 + v.len() * 2);
            out.put_slice(b"\\x");
            for byte in v {
                out.put_u8(HEX[usize::from(byte >> 4)]);
                out.put_u8(HEX[usize::from(byte & 0xf)]);
            }
        }
        _ => {}
    }
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
        let encoding = encoding(self.value, ty, self.position)?;
        match encoding {
            Encoding::Null => return Ok(IsNull::Yes),
            Encoding::I16(v) => out.put_i16(v),
            Encoding::I32(v) => out.put_i32(v),
            Encoding::I64(v) => out.put_i64(v),
            Encoding::U32(v) => out.put_u32(v),
            Encoding::F32(v) => out.put_f32(v),
            Encoding::F64(v) => out.put_f64(v),
            Encoding::Bool(v) => out.put_u8(u8::from(v)),
            Encoding::Raw => match self.value {
                Value::Text(v) => out.put_slice(v.as_bytes()),
                Value::Blob(v) => out.put_slice(v),
                _ => {}
            },
            Encoding::Text => write_text(self.value, out),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        match encoding(self.value, ty, self.position) {
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
/// `numeric`, the text types and every type anysql has no value for, but not to the integer,
/// float, `bool` and `bytea` types. Text binds to the text types (`text`, `varchar`, `char(n)`,
/// `name`, `json`, enums, `citext`) and, through PostgreSQL's text input, to every type anysql has no
/// value for (`numeric`, dates and times, `uuid`, `jsonb`, arrays, …), but not to the integer, float,
/// `bool` and `bytea` types. Domains follow their base type.
pub(crate) fn check_params(values: &[Value], types: &[Type]) -> Result<(), Error> {
    if values.len() != types.len() {
        return Err(Error::parameter_count(types.len(), values.len()));
    }
    for (i, (value, ty)) in values.iter().zip(types).enumerate() {
        encoding(value, ty, i + 1).map_err(|e| Error::parameter(e.0))?;
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

/// How one result column is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Bool,
    Text,
    Jsonb,
    Bytea,
    Numeric,
    Unsupported,
}

fn decoder(ty: &Type) -> Decoder {
    let ty = base_type(ty);
    match *ty {
        Type::INT2 => Decoder::Int2,
        Type::INT4 => Decoder::Int4,
        Type::INT8 => Decoder::Int8,
        Type::OID => Decoder::Oid,
        Type::FLOAT4 => Decoder::Float4,
        Type::FLOAT8 => Decoder::Float8,
        Type::BOOL => Decoder::Bool,
        Type::BYTEA => Decoder::Bytea,
        Type::JSONB => Decoder::Jsonb,
        Type::NUMERIC => Decoder::Numeric,
        _ if is_text_like(ty) => Decoder::Text,
        _ => Decoder::Unsupported,
    }
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
                Some(raw) => decode_value(*decoder, raw).map_err(|e| self.column_error(i, e))?,
            };
        }
        Ok(())
    }

    fn column_error(&self, i: usize, problem: Problem) -> Error {
        let name = self.columns.name(i).unwrap_or("");
        let ty = &self.types[i];
        match problem {
            Problem::Unsupported => Error::decode(format!(
                "column {i} ({name:?}) has PostgreSQL type {}, which anysql cannot decode yet; cast that \
                 column in the SQL to a type anysql decodes, such as text (`expression::text`)",
                ty.name()
            )),
            Problem::Malformed(what) => Error::decode(format!(
                "column {i} ({name:?}) of type {}: the server sent a malformed value ({what})",
                ty.name()
            )),
        }
    }
}

enum Problem {
    Unsupported,
    Malformed(&'static str),
}

fn decode_value(decoder: Decoder, raw: &[u8]) -> Result<Value, Problem> {
    fn array<const N: usize>(raw: &[u8]) -> Result<[u8; N], Problem> {
        raw.try_into()
            .map_err(|_| Problem::Malformed("wrong length"))
    }
    fn text(raw: &[u8]) -> Result<Value, Problem> {
        std::str::from_utf8(raw)
            .map(|s| Value::Text(s.to_owned()))
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
        Decoder::Text => text(raw)?,
        Decoder::Jsonb => match raw.split_first() {
            Some((1, json)) => text(json)?,
            _ => return Err(Problem::Malformed("unknown jsonb version")),
        },
        Decoder::Bytea => Value::Blob(raw.to_vec()),
        Decoder::Numeric => numeric(raw)?,
        Decoder::Unsupported => return Err(Problem::Unsupported),
    })
}

/// Decodes PostgreSQL's binary `numeric` into [`Value::Numeric`] with the text PostgreSQL
/// itself prints: every digit, the column's scale respected (`1.50` for `numeric(10,2)`), `NaN`,
/// `Infinity` and `-Infinity`.
///
/// The binary form is `ndigits`, `weight`, `sign` and `dscale` (16 bits each), then `ndigits`
/// base-10000 digits, the first worth 10000^`weight`; `dscale` is the number of decimal digits
/// after the point.
fn numeric(raw: &[u8]) -> Result<Value, Problem> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use anysql_core::ErrorKind;

    fn encode(
        value: Value,
        ty: &Type,
    ) -> Result<(Format, Vec<u8>), Box<dyn StdError + Sync + Send>> {
        let param = PgParam {
            value: &value,
            position: 1,
        };
        let mut out = BytesMut::new();
        let format = param.encode_format(ty);
        match param.to_sql_checked(ty, &mut out)? {
            IsNull::Yes => Ok((format, b"NULL".to_vec())),
            IsNull::No => Ok((format, out.to_vec())),
        }
    }

    fn is_text(format: Format) -> bool {
        matches!(format, Format::Text)
    }

    #[test]
    fn integers_are_range_checked_for_small_types() {
        assert_eq!(encode(Value::Int(7), &Type::INT2).unwrap().1, [0, 7]);
        assert_eq!(encode(Value::Int(-1), &Type::INT4).unwrap().1, [255; 4]);
        let err = check_params(&[Value::Int(70_000)], &[Type::INT2]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parameter);
        assert!(
            err.message().contains("$1") && err.message().contains("int2"),
            "{err}"
        );
        assert!(check_params(&[Value::Int(i64::from(i32::MAX) + 1)], &[Type::INT4]).is_err());
        assert!(check_params(&[Value::Int(i64::MAX)], &[Type::INT8]).is_ok());
    }

    #[test]
    fn conversions_and_mismatches() {
        assert_eq!(
            encode(Value::Int(2), &Type::FLOAT8).unwrap().1,
            2.0f64.to_be_bytes()
        );
        let (format, text) = encode(Value::Int(12), &Type::NUMERIC).unwrap();
        assert!(is_text(format) && text == b"12");
        let (format, text) = encode(Value::Text("2024-01-02".into()), &Type::DATE).unwrap();
        assert!(is_text(format) && text == b"2024-01-02");
        assert!(!is_text(
            encode(Value::Text("x".into()), &Type::VARCHAR).unwrap().0
        ));
        let err = check_params(
            &[Value::Null, Value::Text("x".into())],
            &[Type::INT4, Type::INT4],
        )
        .unwrap_err();
        assert!(
            err.message()
                .starts_with("parameter $2: cannot bind a text value"),
            "{err}"
        );
        assert!(check_params(&[Value::Float(1.5)], &[Type::INT8]).is_err());
        assert!(check_params(&[Value::Bool(true)], &[Type::TEXT]).is_err());
        assert!(check_params(&[Value::Blob(vec![1])], &[Type::TEXT]).is_err());
        assert_eq!(
            check_params(&[], &[Type::INT4]).unwrap_err().message(),
            Error::parameter_count(1, 0).message()
        );
    }

    #[test]
    fn unspecified_parameters_are_text() {
        let unspecified = unspecified_type();
        let text = |v: Value| {
            let (format, bytes) = encode(v, &unspecified).unwrap();
            assert!(is_text(format));
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(text(Value::Int(-5)), "-5");
        assert_eq!(text(Value::Float(1.0)), "1.0");
        assert_eq!(text(Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(text(Value::Float(0.1)), "0.1");
        assert_eq!(text(Value::Bool(false)), "f");
        assert_eq!(text(Value::Blob(vec![0, 0xab])), "\\x00ab");
        assert_eq!(text(Value::Text("é".into())), "é");
        assert_eq!(encode(Value::Null, &unspecified).unwrap().1, b"NULL");
    }

    #[test]
    fn placeholders_typed_text_by_default_take_the_value_type() {
        let values = [Value::Int(5), Value::Text("x".into()), Value::Bool(true)];
        let (signature, types) = retype(&values, &[Type::TEXT, Type::TEXT, Type::INT4]).unwrap();
        assert_eq!(signature, "int8,,,");
        assert_eq!(types[0], Type::INT8);
        assert_eq!(types[1].oid(), 0);
        assert_eq!(
            types[2].oid(),
            0,
            "int4 was inferred from context: the bool stays refused"
        );
        assert!(retype(&[Value::Text("x".into())], &[Type::INT4]).is_none());
        assert!(retype(&[Value::Int(1)], &[Type::INT4]).is_none());
        assert_eq!(
            unnamed_param_type(&Value::Float(1.0), &unspecified_type()),
            Type::FLOAT8
        );
        assert_eq!(
            unnamed_param_type(&Value::Null, &unspecified_type()).oid(),
            0
        );
    }

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [ndigits, weight, sign as i16, dscale as i16]
            .into_iter()
            .chain(digits.iter().copied())
        {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_decode_digit_for_digit() {
        let value = |n, w, s, d, digits: &[i16]| match numeric(&numeric_bytes(n, w, s, d, digits)) {
            Ok(Value::Numeric(text)) => text,
            Ok(other) => panic!("{other:?}"),
            Err(_) => panic!("malformed"),
        };
        assert_eq!(value(0, 0, 0, 0, &[]), "0");
        assert_eq!(value(0, 0, 0, 3, &[]), "0.000");
        assert_eq!(value(1, 0, 0, 0, &[4000]), "4000");
        assert_eq!(value(2, 1, 0x4000, 0, &[12, 3456]), "-123456");
        assert_eq!(value(1, 2, 0, 0, &[7]), "700000000", "trailing zero groups");
        assert_eq!(value(2, 0, 0, 1, &[1, 5000]), "1.5");
        assert_eq!(value(2, 0, 0, 2, &[1, 5000]), "1.50", "the scale is kept");
        assert_eq!(value(1, -1, 0x4000, 2, &[2500]), "-0.25");
        assert_eq!(value(1, -2, 0, 8, &[12]), "0.00000012");
        assert_eq!(value(1, 0, 0, 3, &[2]), "2.000");
        // numeric(40,10) 12345678901234567890.0123456789
        assert_eq!(
            value(
                8,
                4,
                0,
                10,
                &[1234, 5678, 9012, 3456, 7890, 123, 4567, 8900]
            ),
            "12345678901234567890.0123456789"
        );
        // 2^63, past i64.
        assert_eq!(
            value(5, 4, 0, 0, &[922, 3372, 368, 5477, 5808]),
            "9223372036854775808"
        );
        assert_eq!(value(0, 0, 0xC000, 0, &[]), "NaN");
        assert_eq!(value(0, 0, 0xD000, 0, &[]), "Infinity");
        assert_eq!(value(0, 0, 0xF000, 0, &[]), "-Infinity");
        assert!(numeric(&[0, 1]).is_err());
        assert!(numeric(&numeric_bytes(1, 0, 0, 0, &[10_000])).is_err());
        assert!(numeric(&numeric_bytes(2, 0, 0, 0, &[1])).is_err(), "short");
        assert!(numeric(&numeric_bytes(0, 0, 0x1234, 0, &[])).is_err());
    }

    #[test]
    fn numerics_bind_as_exact_text() {
        let big = Value::Numeric("12345678901234567890.0123456789".into());
        let (format, text) = encode(big.clone(), &Type::NUMERIC).unwrap();
        assert!(is_text(format) && text == b"12345678901234567890.0123456789");
        assert_eq!(encode(big.clone(), &Type::TEXT).unwrap().1, text);
        assert_eq!(encode(big.clone(), &Type::VARCHAR).unwrap().1, text);
        assert_eq!(encode(big.clone(), &unspecified_type()).unwrap().1, text);
        for ty in [
            Type::INT4,
            Type::INT8,
            Type::FLOAT8,
            Type::BOOL,
            Type::BYTEA,
        ] {
            let err = check_params(std::slice::from_ref(&big), &[ty]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Parameter);
            assert!(err.message().contains("$1::numeric"), "{err}");
        }
        assert!(check_params(&[Value::Numeric("1".into())], &[Type::NUMERIC]).is_ok());
        assert_eq!(
            unnamed_param_type(&big, &unspecified_type()).oid(),
            0,
            "left to the server, as text"
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(
            decode_value(Decoder::Int2, &[255, 254]).ok(),
            Some(Value::Int(-2))
        );
        assert_eq!(
            decode_value(Decoder::Oid, &[255; 4]).ok(),
            Some(Value::Int(4_294_967_295))
        );
        assert_eq!(
            decode_value(Decoder::Jsonb, b"\x01{}").ok(),
            Some(Value::Text("{}".into()))
        );
        assert!(decode_value(Decoder::Int4, &[1]).is_err());
        assert!(decode_value(Decoder::Text, &[0xff]).is_err());
        assert_eq!(decoder(&Type::NUMERIC), Decoder::Numeric);
        assert_eq!(decoder(&Type::TIMESTAMPTZ), Decoder::Unsupported);
        assert_eq!(decoder(&Type::NAME), Decoder::Text);
    }
}
