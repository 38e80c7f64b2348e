//! [`TransactionOptions`]: isolation level, access mode and locking behaviour of a transaction.

/// The SQL isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// `READ UNCOMMITTED`.
    ReadUncommitted,
    /// `READ COMMITTED`, PostgreSQL's default.
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`, SQLite's only level.
    Serializable,
}

impl IsolationLevel {
    /// The SQL spelling, such as `"REPEATABLE READ"`.
    pub fn as_sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// How a transaction starts. The default is the database's default: `BEGIN`.
///
/// ```
/// use anysql_core::{IsolationLevel, TransactionOptions};
///
/// let options = TransactionOptions::new().isolation(IsolationLevel::Serializable).read_only(true);
/// assert_eq!(options.isolation_level(), Some(IsolationLevel::Serializable));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TransactionOptions {
    isolation: Option<IsolationLevel>,
    read_only: bool,
    deferrable: bool,
    immediate: bool,
}

impl TransactionOptions {
    /// The database's default transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the isolation level (PostgreSQL; SQLite is always serializable).
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Makes the transaction read-only (PostgreSQL `READ ONLY`).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Makes a serializable read-only transaction deferrable (PostgreSQL `DEFERRABLE`).
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.deferrable = deferrable;
        self
    }

    /// Takes the write lock at the start (SQLite `BEGIN IMMEDIATE`), so that a write transaction
    /// never fails half-way with "database is locked". Ignored by PostgreSQL.
    pub fn immediate(mut self, immediate: bool) -> Self {
        self.immediate = immediate;
        self
    }

    /// The isolation level, if one was set.
    pub fn isolation_level(&self) -> Option<IsolationLevel> {
        self.isolation
    }

    /// Whether the transaction is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether the transaction is deferrable.
    pub fn is_deferrable(&self) -> bool {
        self.deferrable
    }

    /// Whether the transaction takes the write lock at the start.
    pub fn is_immediate(&self) -> bool {
        self.immediate
    }
}
