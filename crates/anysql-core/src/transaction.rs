//! [`Transaction`]: a transaction (or a savepoint inside one) that rolls back unless committed.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::connection::Connection;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::value::Value;

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
        self.end(true, Vec::new()).await.map(drop)
    }

    /// Runs the statements of `pipeline` in this transaction, then commits, and returns the rows
    /// each statement changed, in order. On PostgreSQL the statements and the `COMMIT` go out in
    /// one write: one round trip for all of them, where awaiting each statement and then
    /// [`commit`](Self::commit) take one each.
    ///
    /// If a statement fails, its error is returned (its message says which statement it was),
    /// the statements after it do not run, and nothing the transaction did is kept: it is rolled
    /// back (a savepoint: rolled back to) before the connection is used again. That is what
    /// awaiting each statement with `?` and then dropping the transaction gives.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # let engine: anysql_core::Engine = anysql_core::EngineBuilder::new("sqlite::memory:")
    /// #     .driver(anysql_sqlite::SqliteDriver::new())
    /// #     .runtime(anysql_smol::SmolRuntime::new())
    /// #     .build()?;
    /// use anysql_core::{query, query_scalar, Pipeline};
    ///
    /// let mut conn = engine.acquire().await?;
    /// query("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)").execute(&mut conn).await?;
    /// query("CREATE TABLE entry (account INTEGER, delta INTEGER)").execute(&mut conn).await?;
    /// query("INSERT INTO account VALUES (1, 100)").execute(&mut conn).await?;
    ///
    /// let mut tx = conn.begin().await?;
    /// // The statement whose result decides what follows is awaited on its own...
    /// let balance: i64 = query_scalar("SELECT balance FROM account WHERE id = $1")
    ///     .bind(1)
    ///     .fetch_one(&mut tx)
    ///     .await?;
    /// assert_eq!(balance, 100);
    /// // ...the rest travel with the COMMIT.
    /// let changed = tx
    ///     .commit_with(Pipeline::from_iter([
    ///         query("UPDATE account SET balance = balance - $2 WHERE id = $1").bind(1).bind(30),
    ///         query("INSERT INTO entry VALUES ($1, $2)").bind(1).bind(-30),
    ///     ]))
    ///     .await?;
    /// assert_eq!(changed, [1, 1]);
    ///
    /// let balance: i64 = query_scalar("SELECT balance FROM account").fetch_one(&mut conn).await?;
    /// assert_eq!(balance, 70);
    /// # Ok::<(), anysql_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn commit_with(mut self, pipeline: Pipeline<'_>) -> Result<Vec<u64>, Error> {
        let (sqls, params) = pipeline.into_parts();
        let statements = sqls.iter().map(|sql| &**sql).zip(params).collect();
        self.end(true, statements).await
    }

    /// Rolls back the transaction's work.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.end(false, Vec::new()).await.map(drop)
    }

    async fn end(
        &mut self,
        commit: bool,
        statements: Vec<(&str, Vec<Value>)>,
    ) -> Result<Vec<u64>, Error> {
        let level = self.level;
        let result = self
            .connection_mut()
            .end_level(level, commit, statements)
            .await;
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
