//! [`Transaction`]: a transaction (or a savepoint inside one) that rolls back unless committed.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::connection::Connection;
use crate::error::Error;

/// An open transaction. It derefs to [`Connection`], so every query method works on it.
///
/// It ends with [`commit`](Self::commit) or [`rollback`](Self::rollback). If it is dropped instead
/// (an early `?`, a panic, a cancelled future), it is rolled back before the connection is used
/// again, or before the connection goes back to the pool.
///
/// Calling [`begin`](Connection::begin) on a transaction starts a nested transaction, which is a
/// savepoint: committing it keeps its work inside the outer transaction, rolling it back undoes only
/// its own work. `&mut tx` is an [`Executor`](crate::Executor) for the query builders.
///
/// ```
/// # smol::block_on(async {
/// # let engine: anysql_core::Engine = anysql_core::EngineBuilder::new("sqlite::memory:")
/// #     .driver(anysql_sqlite::SqliteDriver::new())
/// #     .runtime(anysql_smol::SmolRuntime::new())
/// #     .build()?;
/// use anysql_core::{query, query_scalar};
///
/// let mut conn = engine.acquire().await?;
/// query("CREATE TABLE log (line TEXT)").execute(&mut conn).await?;
///
/// let mut tx = conn.begin().await?;
/// query("INSERT INTO log VALUES ('kept')").execute(&mut tx).await?;
/// let mut savepoint = tx.begin().await?;
/// query("INSERT INTO log VALUES ('undone')").execute(&mut savepoint).await?;
/// savepoint.rollback().await?;
/// tx.commit().await?;
///
/// let tx = conn.begin().await?;
/// drop(tx); // dropped without commit: rolled back
///
/// let lines: Vec<String> = query_scalar("SELECT line FROM log").fetch_all(&mut conn).await?;
/// assert_eq!(lines, ["kept"]);
/// # Ok::<(), anysql_core::Error>(())
/// # }).unwrap();
pub struct Transaction<'c> {
    conn: TransactionConnection<'c>,
    level: u32,
    open: bool,
}

enum TransactionConnection<'c> {
    Borrowed(&'c mut Connection),
    Owned(Connection),
}

impl<'c> Transaction<'c> {
    pub(crate) fn borrowed(conn: &'c mut Connection, level: u32) -> Self {
        Transaction {
            conn: TransactionConnection::Borrowed(conn),
            level,
            open: true,
        }
    }

    pub(crate) fn owned(conn: Connection, level: u32) -> Transaction<'static> {
        Transaction {
            conn: TransactionConnection::Owned(conn),
            level,
            open: true,
        }
    }

    /// Commits: the transaction's work becomes durable (for a savepoint, part of the outer
    /// transaction).
    pub async fn commit(mut self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Rolls back the transaction's work.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), Error> {
        let level = self.level;
        let result = self.connection_mut().end_level(level, commit).await;
        // Only now: if this future is dropped half-way, `Drop` still sees the level open and has it
        // rolled back (a no-op if the COMMIT had already gone through).
        self.open = false;
        result
    }

    /// The nesting level: 1 for a transaction, 2 and more for savepoints inside it.
    pub fn level(&self) -> u32 {
        self.level
    }

    fn connection_mut(&mut self) -> &mut Connection {
        match &mut self.conn {
            TransactionConnection::Borrowed(c) => c,
            TransactionConnection::Owned(c) => c,
        }
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match &self.conn {
            TransactionConnection::Borrowed(c) => c,
            TransactionConnection::Owned(c) => c,
        }
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection_mut()
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let level = self.level;
            let state = &mut self.connection_mut().state;
            if state.lost >= level {
                state.lost = level - 1;
            } else if state.depth >= level {
                state.abandoned = Some(state.abandoned.map_or(level, |a| a.min(level)));
            }
        }
    }
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("level", &self.level)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}
