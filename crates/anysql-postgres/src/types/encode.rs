//! Binding: a [`Value`] encoded for the type of the parameter it is bound to.

use std::error::Error as StdError;
use std::fmt;

use anysql_core::{Error, Value};
use bytes::{BufMut, BytesMut};
use postgres_types::{to_sql_checked, Format, IsNull, ToSql, Type};

use super::{base_type, is_text_like, unspecified_type};

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
