//! Mapping of rusqlite and SQLite errors onto anysql's [`Error`].

use std::any::Any;

use anysql_core::{ConstraintKind, DatabaseError, Error, ErrorKind};
use rusqlite::ffi;

/// Converts a rusqlite error raised while running a statement.
pub(crate) fn from_rusqlite(error: rusqlite::Error) -> Error {
    use rusqlite::Error as E;
    match error {
        E::SqliteFailure(code, message) => {
            let message = message.unwrap_or_else(|| code.to_string());
            database(code.extended_code, message)
        }
        E::SqlInputError { error, msg, offset, .. } => {
            let message = if offset >= 0 { format!("{msg} (at byte {offset} of the sql)") } else { msg };
            database(error.extended_code, message)
        }
        E::InvalidParameterCount(given, expected) => Error::parameter_count(expected, given),
        E::ToSqlConversionFailure(e) => {
            Error::parameter(format!("a parameter cannot be sent to sqlite: {e}"))
        }
        E::InvalidParameterName(name) => {
            Error::parameter(format!("the statement has no parameter named `{name}`"))
        }
        E::NulError(e) => Error::parameter(format!("a string contains a nul byte: {e}")),
        E::FromSqlConversionFailure(column, ty, e) => {
            Error::decode(format!("column {column}: cannot convert a sqlite {ty} value: {e}"))
        }
        E::IntegralValueOutOfRange(column, value) => {
            Error::decode(format!("column {column}: integer {value} is out of range"))
        }
        E::Utf8Error(column, e) => Error::decode(format!(
            "column {column} holds text that is not valid utf-8 ({e}); read it as a blob with CAST(.. AS BLOB)"
        )),
        E::InvalidColumnType(column, name, ty) => {
            Error::decode(format!("column {column} ({name:?}) has the unexpected sqlite type {ty}"))
        }
        E::MultipleStatement => multiple_statements(),
        E::InvalidPath(path) => Error::configuration(format!(
            "the sqlite database path {} is not valid utf-8",
            path.display()
        )),
        E::UnwindingPanic => Error::new(ErrorKind::Panic, "a sqlite callback panicked"),
        other => Error::database(DatabaseError::new(other.to_string(), None)),
    }
}

/// The error for SQL text holding several statements where only one can run.
pub(crate) fn multiple_statements() -> Error {
    Error::database(DatabaseError::new(
        "the sql holds more than one statement; run one statement at a time when it has parameters \
         or returns rows (a script of several statements runs with execute and no parameters)",
        Some("SQLITE_MISUSE".to_owned()),
    ))
}

/// A database error from an extended result code and SQLite's message.
pub(crate) fn database(extended_code: i32, message: String) -> Error {
    let primary = extended_code & 0xff;
    let constraint_kind = match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            Some(ConstraintKind::Unique)
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(ConstraintKind::ForeignKey),
        ffi::SQLITE_CONSTRAINT_NOTNULL => Some(ConstraintKind::NotNull),
        ffi::SQLITE_CONSTRAINT_CHECK => Some(ConstraintKind::Check),
        _ => None,
    };
    let (table, constraint) = constraint_details(constraint_kind, &message);
    let mut details = DatabaseError::new(message, Some(code_name(extended_code)));
    details.constraint_kind = constraint_kind;
    details.table = table;
    details.constraint = constraint;
    details.retryable = primary == ffi::SQLITE_BUSY || primary == ffi::SQLITE_LOCKED;
    Error::database(details)
}

/// Picks the table (`UNIQUE constraint failed: t.a, t.b`) or the constraint name
/// (`CHECK constraint failed: positive`) out of SQLite's constraint messages.
fn constraint_details(
    kind: Option<ConstraintKind>,
    message: &str,
) -> (Option<String>, Option<String>) {
    let Some(kind) = kind else {
        return (None, None);
    };
    let Some((_, detail)) = message.split_once("constraint failed: ") else {
        return (None, None);
    };
    let detail = detail.trim();
    if detail.is_empty() {
        return (None, None);
    }
    match kind {
        ConstraintKind::Check => (None, Some(detail.to_owned())),
        _ => {
            let first = detail.split(',').next().unwrap_or(detail).trim();
            let table = first.rsplit_once('.').map(|(table, _)| table.to_owned());
            (table, None)
        }
    }
}

/// The error for a panic caught on the worker thread.
pub(crate) fn panicked(payload: &(dyn Any + Send)) -> Error {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    let message = match detail {
        Some(detail) => format!(
            "code running on the sqlite connection thread panicked: {detail}; any open transaction \
             was rolled back and the connection goes on serving"
        ),
        None => "code running on the sqlite connection thread panicked; any open transaction was \
                 rolled back and the connection goes on serving"
            .to_owned(),
    };
    Error::new(ErrorKind::Panic, message)
}

/// The error when the worker thread is gone.
pub(crate) fn worker_gone() -> Error {
    Error::connection(
        "the sqlite connection's thread has stopped; drop this connection and acquire another",
    )
}

/// The error for a statement skipped or stopped because its caller cancelled it.
pub(crate) fn cancelled() -> Error {
    database(
        ffi::SQLITE_INTERRUPT,
        "the statement was cancelled".to_owned(),
    )
}

macro_rules! code_names {
    ($($name:ident),* $(,)?) => {
        /// The name of an extended (or primary) result code, such as `SQLITE_CONSTRAINT_UNIQUE`.
        pub(crate) fn code_name(code: i32) -> String {
            match code {
                $(ffi::$name => stringify!($name).to_owned(),)*
                other => match other & 0xff {
                    $(ffi::$name => format!("{}_{}", stringify!($name), other >> 8),)*
                    _ => format!("SQLITE_UNKNOWN_{other}"),
                },
            }
        }
    };
}

code_names!(
    SQLITE_OK,
    SQLITE_ERROR,
    SQLITE_INTERNAL,
    SQLITE_PERM,
    SQLITE_ABORT,
    SQLITE_BUSY,
    SQLITE_LOCKED,
    SQLITE_NOMEM,
    SQLITE_READONLY,
    SQLITE_INTERRUPT,
    SQLITE_IOERR,
    SQLITE_CORRUPT,
    SQLITE_NOTFOUND,
    SQLITE_FULL,
    SQLITE_CANTOPEN,
    SQLITE_PROTOCOL,
    SQLITE_EMPTY,
    SQLITE_SCHEMA,
    SQLITE_TOOBIG,
    SQLITE_CONSTRAINT,
    SQLITE_MISMATCH,
    SQLITE_MISUSE,
    SQLITE_NOLFS,
    SQLITE_AUTH,
    SQLITE_FORMAT,
    SQLITE_RANGE,
    SQLITE_NOTADB,
    SQLITE_NOTICE,
    SQLITE_WARNING,
    SQLITE_ROW,
    SQLITE_DONE,
    SQLITE_ERROR_MISSING_COLLSEQ,
    SQLITE_ERROR_RETRY,
    SQLITE_ERROR_SNAPSHOT,
    SQLITE_IOERR_READ,
    SQLITE_IOERR_SHORT_READ,
    SQLITE_IOERR_WRITE,
    SQLITE_IOERR_FSYNC,
    SQLITE_IOERR_DIR_FSYNC,
    SQLITE_IOERR_TRUNCATE,
    SQLITE_IOERR_FSTAT,
    SQLITE_IOERR_UNLOCK,
    SQLITE_IOERR_RDLOCK,
    SQLITE_IOERR_DELETE,
    SQLITE_IOERR_BLOCKED,
    SQLITE_IOERR_NOMEM,
    SQLITE_IOERR_ACCESS,
    SQLITE_IOERR_CHECKRESERVEDLOCK,
    SQLITE_IOERR_LOCK,
    SQLITE_IOERR_CLOSE,
    SQLITE_IOERR_DIR_CLOSE,
    SQLITE_IOERR_SHMOPEN,
    SQLITE_IOERR_SHMSIZE,
    SQLITE_IOERR_SHMLOCK,
    SQLITE_IOERR_SHMMAP,
    SQLITE_IOERR_SEEK,
    SQLITE_IOERR_DELETE_NOENT,
    SQLITE_IOERR_MMAP,
    SQLITE_IOERR_GETTEMPPATH,
    SQLITE_IOERR_CONVPATH,
    SQLITE_IOERR_VNODE,
    SQLITE_IOERR_AUTH,
    SQLITE_IOERR_BEGIN_ATOMIC,
    SQLITE_IOERR_COMMIT_ATOMIC,
    SQLITE_IOERR_ROLLBACK_ATOMIC,
    SQLITE_IOERR_DATA,
    SQLITE_IOERR_CORRUPTFS,
    SQLITE_IOERR_IN_PAGE,
    SQLITE_LOCKED_SHAREDCACHE,
    SQLITE_LOCKED_VTAB,
    SQLITE_BUSY_RECOVERY,
    SQLITE_BUSY_SNAPSHOT,
    SQLITE_BUSY_TIMEOUT,
    SQLITE_CANTOPEN_NOTEMPDIR,
    SQLITE_CANTOPEN_ISDIR,
    SQLITE_CANTOPEN_FULLPATH,
    SQLITE_CANTOPEN_CONVPATH,
    SQLITE_CANTOPEN_DIRTYWAL,
    SQLITE_CANTOPEN_SYMLINK,
    SQLITE_CORRUPT_VTAB,
    SQLITE_CORRUPT_SEQUENCE,
    SQLITE_CORRUPT_INDEX,
    SQLITE_READONLY_RECOVERY,
    SQLITE_READONLY_CANTLOCK,
    SQLITE_READONLY_ROLLBACK,
    SQLITE_READONLY_DBMOVED,
    SQLITE_READONLY_CANTINIT,
    SQLITE_READONLY_DIRECTORY,
    SQLITE_ABORT_ROLLBACK,
    SQLITE_CONSTRAINT_CHECK,
    SQLITE_CONSTRAINT_COMMITHOOK,
    SQLITE_CONSTRAINT_FOREIGNKEY,
    SQLITE_CONSTRAINT_FUNCTION,
    SQLITE_CONSTRAINT_NOTNULL,
    SQLITE_CONSTRAINT_PRIMARYKEY,
    SQLITE_CONSTRAINT_TRIGGER,
    SQLITE_CONSTRAINT_UNIQUE,
    SQLITE_CONSTRAINT_VTAB,
    SQLITE_CONSTRAINT_ROWID,
    SQLITE_CONSTRAINT_PINNED,
    SQLITE_CONSTRAINT_DATATYPE,
    SQLITE_NOTICE_RECOVER_WAL,
    SQLITE_NOTICE_RECOVER_ROLLBACK,
    SQLITE_WARNING_AUTOINDEX,
    SQLITE_AUTH_USER,
    SQLITE_OK_LOAD_PERMANENTLY,
    SQLITE_OK_SYMLINK,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_names() {
        assert_eq!(
            code_name(ffi::SQLITE_CONSTRAINT_UNIQUE),
            "SQLITE_CONSTRAINT_UNIQUE"
        );
        assert_eq!(code_name(ffi::SQLITE_BUSY), "SQLITE_BUSY");
        assert_eq!(
            code_name(ffi::SQLITE_CONSTRAINT | (99 << 8)),
            "SQLITE_CONSTRAINT_99"
        );
        assert_eq!(code_name(0x7f), "SQLITE_UNKNOWN_127");
    }

    #[test]
    fn constraint_messages_name_the_table() {
        let e = database(
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            "UNIQUE constraint failed: users.email".into(),
        );
        assert_eq!(e.constraint_kind(), Some(ConstraintKind::Unique));
        assert_eq!(
            e.as_database_error().and_then(|d| d.table.as_deref()),
            Some("users")
        );
        let e = database(
            ffi::SQLITE_CONSTRAINT_CHECK,
            "CHECK constraint failed: positive".into(),
        );
        assert_eq!(e.constraint(), Some("positive"));
        let e = database(ffi::SQLITE_BUSY_SNAPSHOT, "database is locked".into());
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("SQLITE_BUSY_SNAPSHOT"));
    }
}
