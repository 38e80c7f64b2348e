//! Binding parameters to SQLite statements.

use anysql_core::{Error, Value};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::Statement;

use crate::error::from_rusqlite;

/// A parameter as rusqlite binds it. Booleans become the integers 0 and 1; the types SQLite lacks
/// are stored as [`stored_text`] says.
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*v))),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Float(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            // SQLite has no decimal type: the text goes in as it is, and a NUMERIC column's
            // affinity decides how it is stored.
            Value::Text(v) | Value::Numeric(v) | Value::Json(v) => {
                ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes()))
            }
            Value::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Value::Uuid(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            other => match stored_text(other) {
                Ok(text) => ToSqlOutput::Owned(rusqlite::types::Value::Text(text)),
                Err(e) => return Err(rusqlite::Error::ToSqlConversionFailure(e.into())),
            },
        })
    }
}

/// The text SQLite stores for a value of a type it has none for: dates and times in the forms its
/// date functions read (`anysql_core::types::text`), IP addresses as written, arrays as JSON.
/// Invalid values are errors.
pub(crate) fn stored_text(value: &Value) -> Result<String, String> {
    use anysql_core::types::text;
    Ok(match value {
        Value::Date(days) => text::format_date(i64::from(*days)),
        Value::Time(nanos) => text::format_time(*nanos),
        Value::Timestamp(t) => text::format_timestamp(*t),
        Value::TimestampTz(t, offset) => text::format_timestamptz(*t, *offset),
        Value::Inet(addr) => addr.to_string(),
        // SQLite has no arrays: JSON text, which its json_each reads.
        Value::Array(items) => text::format_json_array(items)?,
        Value::Invalid(why) => return Err(why.clone()),
        other => return Err(format!("sqlite cannot store a {} value", other.type_name())),
    })
}

/// Binds `params` to `stmt` by position, after checking their number.
pub(crate) fn bind(stmt: &mut Statement<'_>, params: &[Value]) -> Result<(), Error> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(Error::parameter_count(expected, params.len()));
    }
    for (i, value) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Bind(value))
            .map_err(|e| from_rusqlite(e).context(format_args!("parameter ${}", i + 1)))?;
    }
    Ok(())
}
