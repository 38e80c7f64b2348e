//! [`Value`] ↔ PostgreSQL: one [`ToSql`] wrapper that encodes a value for whatever type the
//! statement's parameter has ([`encode`]), and the per-column decoders of a result ([`decode`]).
//!
//! [`ToSql`]: postgres_types::ToSql

mod datetime;
mod decode;
mod encode;
mod render;
#[cfg(test)]
mod tests;

#[cfg(doc)]
use anysql_core::Value;
use postgres_types::{Kind, Type};

pub(crate) use decode::RowPlan;
pub(crate) use encode::{check_params, params, retype, unnamed_param_type, PgParam};

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

/// The underlying type of a domain, recursively.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

/// A type's name as SQL writes it: `interval[]` rather than `_interval`.
fn sql_name(ty: &Type) -> String {
    match ty.kind() {
        Kind::Array(member) => format!("{}[]", member.name()),
        _ => ty.name().to_owned(),
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
