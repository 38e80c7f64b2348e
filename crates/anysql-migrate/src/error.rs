//! [`MigrateError`]: what can go wrong while reading or running migrations.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure a [`MigrateError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MigrateErrorKind {
    /// A migration file could not be read, or its name is not `<version>_<name>.sql`, or two
    /// files share a version.
    Source,
    /// A migration that was applied has been edited since: its checksum no longer matches the one
    /// recorded when it ran. Nothing was run.
    ChecksumMismatch,
    /// The database records an applied migration that no file provides. Nothing was run.
    Missing,
    /// A migration's SQL failed. A migration in a transaction left nothing behind; one that opted
    /// out of the transaction may be partly applied and is recorded as failed.
    Failed,
    /// A migration that opted out of its transaction started and never finished (its run failed
    /// or died): the database must be checked by hand before migrating again.
    Dirty,
    /// `revert` found no applied migration, or the last one has no `.down.sql` file.
    NoRevert,
    /// Another process held the migration lock for longer than the lock timeout.
    LockTimeout,
    /// The database is neither SQLite nor PostgreSQL.
    Unsupported,
    /// The database failed outside a migration's own SQL (connecting, the bookkeeping table, the
    /// lock).
    Database,
}

/// An error from reading or running migrations: a [`MigrateErrorKind`], a message that names the
/// migration concerned, and the database error underneath, if any.
#[derive(Debug)]
pub struct MigrateError {
    kind: MigrateErrorKind,
    message: String,
    source: Option<anysql_core::Error>,
}

impl MigrateError {
    pub(crate) fn new(kind: MigrateErrorKind, message: impl Into<String>) -> Self {
        MigrateError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: anysql_core::Error) -> Self {
        self.source = Some(source);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> MigrateErrorKind {
        self.kind
    }

    /// The message, without the database error underneath.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The database error underneath, if any.
    pub fn database_error(&self) -> Option<&anysql_core::Error> {
        self.source.as_ref()
    }
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for MigrateError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<anysql_core::Error> for MigrateError {
    fn from(error: anysql_core::Error) -> Self {
        MigrateError::new(MigrateErrorKind::Database, "the database failed").with_source(error)
    }
}
