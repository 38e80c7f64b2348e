//! Binding parameters to SQLite statements.

use anysql_core::{Error, Value};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::Statement;

use crate::error::from_rusqlite;

/// A parameter as rusqlite binds it. Booleans become the integers 0 and 1.
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Bool(v) => ValueRef::Integer(i64::from(*v)),
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Float(v) => ValueRef::Real(*v),
            // SQLite has no decimal type: the text goes in as it is, and a NUMERIC column's
            // affinity decides how it is stored.
            Value::Text(v) | Value::Numeric(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
            other => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("sqlite cannot store a {} value", other.type_name()).into(),
                ))
            }
        }))
    }
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
