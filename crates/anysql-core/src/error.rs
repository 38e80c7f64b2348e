//! The one [`Error`] type of anysql, with queryable kinds.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// The broad class of an [`Error`]. New kinds may be added, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL or an option is invalid, names an unknown scheme, or needs a driver or feature that is
    /// not compiled in.
    Configuration,
    /// No async runtime is available: none was given and none is running.
    NoRuntime,
    /// Connecting failed, or the connection broke during an operation (I/O error, server gone).
    Connection,
    /// No connection became free within the pool's acquire timeout.
    PoolTimeout,
    /// An operation did not finish within its time limit.
    Timeout,
    /// The engine or the connection was closed.
    Closed,
    /// The database rejected the statement: syntax, constraint, permission and so on.
    /// See [`Error::code`] and [`Error::constraint_kind`].
    Database,
    /// Wrong parameters: a wrong count, or a value the column type cannot take.
    Parameter,
    /// The statement cannot be sent as written, and nothing was run: it contains a NUL
    /// character, or it needs an API of its own (PostgreSQL's `COPY ... FROM STDIN`).
    InvalidStatement,
    /// A value could not be decoded into the requested Rust type (type mismatch, out of range, NULL).
    Decode,
    /// A query that must return a row returned none.
    RowNotFound,
    /// User code or the driver panicked while serving the request; the engine goes on serving.
    Panic,
    /// The driver does not support this operation (PostgreSQL's COPY or LISTEN on SQLite); nothing
    /// was run.
    Unsupported,
    /// A [`Listener`](crate::Listener) may have missed notifications: its connection was lost (it
    /// reconnects and listens again by itself) or the application fell behind its buffer. The
    /// stream goes on after this item.
    NotificationsMissed,
}

/// The kind of constraint a [`ErrorKind::Database`] error violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A unique or primary key constraint.
    Unique,
    /// A foreign key constraint.
    ForeignKey,
    /// A NOT NULL constraint.
    NotNull,
    /// A CHECK constraint.
    Check,
}

/// Details of an error reported by the database itself.
///
/// Drivers build it with [`DatabaseError::new`] and attach it with [`Error::database`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DatabaseError {
    /// The message from the database.
    pub message: String,
    /// SQLSTATE on PostgreSQL (`"23505"`), the extended result code name on SQLite
    /// (`"SQLITE_CONSTRAINT_UNIQUE"`).
    pub code: Option<String>,
    /// The constraint kind, for constraint violations.
    pub constraint_kind: Option<ConstraintKind>,
    /// The constraint name, where the database reports it.
    pub constraint: Option<String>,
    /// The table name, where the database reports it.
    pub table: Option<String>,
    /// Whether retrying the whole transaction may succeed (serialization failure, deadlock, busy).
    pub retryable: bool,
}

impl DatabaseError {
    /// A database error with a message and an optional code.
    pub fn new(message: impl Into<String>, code: Option<String>) -> Self {
        Self {
            message: message.into(),
            code,
            ..Self::default()
        }
    }
}

/// The error type of anysql.
///
/// It is opaque: ask it what happened with [`kind`](Self::kind), [`code`](Self::code),
/// [`constraint_kind`](Self::constraint_kind) and the `is_*` methods. Messages are lowercase, say what
/// to do where that is known, and never contain a password.
///
/// ```
/// # smol::block_on(async {
/// # let engine: anysql_core::Engine = anysql_core::EngineBuilder::new("sqlite::memory:")
/// #     .driver(anysql_sqlite::SqliteDriver::new())
/// #     .runtime(anysql_smol::SmolRuntime::new())
/// #     .build()?;
/// use anysql_core::{query, ErrorKind};
///
/// query("CREATE TABLE users (name TEXT UNIQUE)").execute(&engine).await?;
/// query("INSERT INTO users VALUES ('ada')").execute(&engine).await?;
/// let err = query("INSERT INTO users VALUES ('ada')").execute(&engine).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Database);
/// assert!(err.is_unique_violation());
/// assert!(!err.is_retryable()); // a serialization failure or a deadlock would be
///
/// let err = query("SELECT * FROM missing").execute(&engine).await.unwrap_err();
/// assert!(err.to_string().contains("missing"), "{err}");
/// # Ok::<(), anysql_core::Error>(())
/// # }).unwrap();
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
    database: Option<DatabaseError>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// A `Result` with anysql's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`. For drivers and runtimes; applications rarely need it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            database: None,
            source: None,
        }))
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// Attaches what the database reported, keeping this error's kind: a session the server
    /// ended (PostgreSQL's `57P01`) is a [`ErrorKind::Connection`] error whose
    /// [`code`](Self::code) is still the SQLSTATE.
    pub fn with_database(mut self, details: DatabaseError) -> Self {
        self.0.database = Some(details);
        self
    }

    /// An error reported by the database.
    pub fn database(details: DatabaseError) -> Self {
        let mut error = Error::new(ErrorKind::Database, details.message.clone());
        error.0.database = Some(details);
        error
    }

    /// A configuration error.
    pub fn configuration(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Configuration, message)
    }

    /// A connection error.
    pub fn connection(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Connection, message)
    }

    /// A decode error.
    pub fn decode(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Decode, message)
    }

    /// A parameter error.
    pub fn parameter(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Parameter, message)
    }

    /// The connection or engine is closed.
    pub fn closed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Closed, message)
    }

    /// An operation this driver does not support; the message names the driver and the
    /// operation.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// A wrong parameter count.
    pub fn parameter_count(expected: usize, got: usize) -> Self {
        Error::parameter(format!(
            "the statement takes {expected} parameter{} but {got} {} given",
            if expected == 1 { "" } else { "s" },
            if got == 1 { "was" } else { "were" }
        ))
    }

    pub(crate) fn timeout(duration: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            format!("the operation did not finish within {duration:?}"),
        )
    }

    /// The broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The database's details, for [`ErrorKind::Database`] errors.
    pub fn as_database_error(&self) -> Option<&DatabaseError> {
        self.0.database.as_ref()
    }

    /// SQLSTATE on PostgreSQL, the extended result code name on SQLite.
    pub fn code(&self) -> Option<&str> {
        self.0.database.as_ref()?.code.as_deref()
    }

    /// The constraint kind, for constraint violations.
    pub fn constraint_kind(&self) -> Option<ConstraintKind> {
        self.0.database.as_ref()?.constraint_kind
    }

    /// The constraint name, where the database reports it.
    pub fn constraint(&self) -> Option<&str> {
        self.0.database.as_ref()?.constraint.as_deref()
    }

    /// Whether this is a unique or primary key violation.
    pub fn is_unique_violation(&self) -> bool {
        self.constraint_kind() == Some(ConstraintKind::Unique)
    }

    /// Whether this is a connection problem: connecting failed or the connection broke.
    pub fn is_connection(&self) -> bool {
        matches!(self.kind(), ErrorKind::Connection)
    }

    /// Whether a [`Listener`](crate::Listener) says that notifications may have been missed
    /// (see [`ErrorKind::NotificationsMissed`]).
    pub fn is_notifications_missed(&self) -> bool {
        matches!(self.kind(), ErrorKind::NotificationsMissed)
    }

    /// Whether the connection or the engine was closed (including by the server).
    pub fn is_closed(&self) -> bool {
        matches!(self.kind(), ErrorKind::Closed)
    }

    /// Whether retrying the whole transaction may succeed: a serialization failure or deadlock on
    /// PostgreSQL, a busy database on SQLite.
    pub fn is_retryable(&self) -> bool {
        self.0.database.as_ref().is_some_and(|d| d.retryable)
    }

    /// Adds context in front of the message, such as the column being decoded.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.0.kind)
            .field("message", &self.0.message);
        if let Some(db) = &self.0.database {
            s.field("code", &db.code);
            if let Some(kind) = db.constraint_kind {
                s.field("constraint_kind", &kind);
            }
            if let Some(name) = &db.constraint {
                s.field("constraint", name);
            }
        }
        if let Some(source) = &self.0.source {
            s.field("source", &format_args!("{source}"));
        }
        s.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)?;
        if let Some(code) = self.code() {
            write!(f, " (code {code})")?;
        }
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_code_and_cause() {
        let mut details = DatabaseError::new("duplicate key", Some("23505".into()));
        details.constraint_kind = Some(ConstraintKind::Unique);
        let error = Error::database(details);
        assert_eq!(error.to_string(), "duplicate key (code 23505)");
        assert!(error.is_unique_violation());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::connection("could not connect to 127.0.0.1:1").with_source(io);
        assert_eq!(
            error.to_string(),
            "could not connect to 127.0.0.1:1: refused"
        );
        assert!(error.is_connection());
    }

    #[test]
    fn parameter_count_message_is_grammatical() {
        assert_eq!(
            Error::parameter_count(1, 2).message(),
            "the statement takes 1 parameter but 2 were given"
        );
        assert_eq!(
            Error::parameter_count(2, 1).message(),
            "the statement takes 2 parameters but 1 was given"
        );
    }
}
