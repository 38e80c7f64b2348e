//! tokio-postgres errors as anysql [`Error`]s.

use std::error::Error as StdError;
use std::io;

use anysql_core::{ConstraintKind, DatabaseError, Error};
use tokio_postgres::error::DbError;

/// What an error means for the connection it happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The connection is fine (a parameter or decode error caught on the client).
    Untouched,
    /// The server rejected a statement; an open transaction is now aborted.
    StatementFailed,
    /// The connection is gone or out of sync; it must be discarded.
    Broken,
}

/// Whether a server error ends the session: FATAL/PANIC severity, an operator intervention
/// (`57P01` admin_shutdown from `pg_terminate_backend` or a server shutdown, `57P02`
/// crash_shutdown, `57P03` cannot_connect_now) or a connection exception (class `08`).
fn is_fatal(db: &DbError) -> bool {
    let code = db.code().code();
    matches!(db.severity(), "FATAL" | "PANIC")
        || matches!(code, "57P01" | "57P02" | "57P03")
        || code.starts_with("08")
}

/// The server's error details as an anysql [`DatabaseError`].
pub(crate) fn database_error(db: &DbError) -> DatabaseError {
    let code = db.code().code();
    let mut message = db.message().to_owned();
    if let Some(detail) = db.detail() {
        message.push_str("; detail: ");
        message.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        message.push_str("; hint: ");
        message.push_str(hint);
    }
    let mut details = DatabaseError::new(message, Some(code.to_owned()));
    details.constraint_kind = match code {
        "23505" => Some(ConstraintKind::Unique),
        "23503" => Some(ConstraintKind::ForeignKey),
        "23502" => Some(ConstraintKind::NotNull),
        "23514" => Some(ConstraintKind::Check),
        _ => None,
    };
    details.constraint = db.constraint().map(str::to_owned);
    details.table = db.table().map(str::to_owned);
    details.retryable = matches!(code, "40001" | "40P01");
    details
}

fn io_source(error: &tokio_postgres::Error) -> Option<&io::Error> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// Maps a tokio-postgres error from an operation on an open connection.
pub(crate) fn map(error: tokio_postgres::Error) -> (Error, Fate) {
    if let Some(db) = error.as_db_error() {
        if is_fatal(db) {
            let message = format!(
                "the server closed the connection: {}; acquire a new connection and retry",
                db.message(),
            );
            // A connection error, not `Closed` (which is for connections and engines the
            // application closed): the session broke under it, and a retry on a new connection
            // may well succeed. The SQLSTATE stays: `code()` returns it, and Display shows it.
            return (
                Error::connection(message).with_database(database_error(db)),
                Fate::Broken,
            );
        }
        return (Error::database(database_error(db)), Fate::StatementFailed);
    }
    if error.is_closed() {
        return (
            Error::connection(
                "the server closed the connection; acquire a new connection and retry \
                 (the server may have restarted, or the session was terminated)",
            )
            .with_source(error),
            Fate::Broken,
        );
    }
    if io_source(&error).is_some() {
        return (
            Error::connection(
                "i/o error on the connection to PostgreSQL; the connection is no longer usable",
            )
            .with_source(error),
            Fate::Broken,
        );
    }
    let text = error.to_string();
    if text.starts_with("error serializing parameter") {
        let message = error
            .source()
            .map_or_else(|| text.clone(), ToString::to_string);
        return (Error::parameter(message), Fate::Untouched);
    }
    if text.starts_with("error deserializing column") {
        return (Error::decode(text).with_source(error), Fate::Untouched);
    }
    (
        Error::connection(
            "protocol error on the connection to PostgreSQL; the connection is no longer usable",
        )
        .with_source(error),
        Fate::Broken,
    )
}
