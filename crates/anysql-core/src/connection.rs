//! [`Connection`]: a connection checked out of the engine's pool, with the query API.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_core::Stream;

use crate::copy::{CopyIn, CopyInRows, CopyOut};
use crate::driver::{pipeline_statement_failed, DriverConnection, ParamSets, RowSink, RowStream};
use crate::error::{Error, ErrorKind};
use crate::params::Params;
use crate::pool::Lease;
use crate::row::{FromRow, Row};
use crate::runtime::{BoxFuture, SharedRuntime};
use crate::transaction::Transaction;
use crate::transaction_options::TransactionOptions;
use crate::value::{FromValue, Value};
use crate::CancelHandle;

/// Runs one driver operation, marking the connection interrupted until it finishes, so that a
/// future dropped half-way leaves a connection the pool knows to reset.
macro_rules! run {
    ($conn:expr, sql $sql:expr, $driver:ident => $op:expr) => {{
        crate::sql::check_statement($sql)?;
        run!($conn, $driver => $op)
    }};
    ($conn:expr, $driver:ident => $op:expr) => {{
        let ($driver, state) = $conn.prepare().await?;
        state.interrupted = true;
        let result = $op.await;
        state.interrupted = false;
        result
    }};
}

/// A database connection checked out of an [`Engine`](crate::Engine)'s pool.
///
/// Dropping it returns it to the pool. Every future it returns may be dropped at any await point: the
/// connection records that, and it is reset (any in-flight work finished or aborted, any open
/// transaction rolled back) before anyone uses it again.
///
/// Parameters are written `$1, $2, …` on every database and passed as a tuple, an array or a `Vec`
/// (see [`Params`]).
///
/// Hold a connection when statements must share a session (a temporary table, a `SET`); `&mut
/// conn` is an [`Executor`](crate::Executor) for the query builders:
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
/// query("CREATE TEMP TABLE seen (id INTEGER)").execute(&mut conn).await?;
/// query("INSERT INTO seen VALUES ($1), ($2)").bind(1).bind(2).execute(&mut conn).await?;
/// let n: i64 = query_scalar("SELECT count(*) FROM seen").fetch_one(&mut conn).await?;
/// assert_eq!(n, 2);
/// drop(conn); // back to the pool
/// # Ok::<(), anysql_core::Error>(())
/// # }).unwrap();
pub struct Connection {
    driver: Box<dyn DriverConnection>,
    lease: Option<Lease>,
    pub(crate) state: ConnectionState,
}

/// What the core knows of a connection's protocol and transaction state.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    /// An operation started and its future was dropped before it finished.
    pub(crate) interrupted: bool,
    /// Open transaction levels: 1 is the outer transaction, more are savepoints.
    pub(crate) depth: u32,
    /// The shallowest level whose [`Transaction`] was dropped without commit or rollback.
    pub(crate) abandoned: Option<u32>,
    /// Levels `1..=lost` still have live [`Transaction`] handles, but their transaction was
    /// rolled back underneath them (its state had become unknown). Every statement fails until
    /// those handles end, so that nothing meant for the transaction runs in autocommit mode.
    pub(crate) lost: u32,
}

impl ConnectionState {
    fn needs_reset(&self) -> bool {
        self.interrupted || self.depth > 0 || self.abandoned.is_some()
    }
}

/// The name of the savepoint that transaction level `level + 1` opens.
pub(crate) fn savepoint_name(level: u32) -> String {
    format!("anysql_savepoint_{level}")
}

/// Runs a transaction-control statement through the driver's `execute`.
async fn control(driver: &mut dyn DriverConnection, sql: &str) -> Result<(), Error> {
    driver.execute(sql, Vec::new()).await.map(drop)
}

/// Rolls back to the savepoint `name` and releases it.
async fn rollback_to_savepoint(driver: &mut dyn DriverConnection, name: &str) -> Result<(), Error> {
    control(driver, &format!("ROLLBACK TO SAVEPOINT {name}")).await?;
    release_savepoint(driver, name).await
}

/// Releases (keeps the work of) the savepoint `name`.
async fn release_savepoint(driver: &mut dyn DriverConnection, name: &str) -> Result<(), Error> {
    control(driver, &format!("RELEASE SAVEPOINT {name}")).await
}

impl Connection {
    pub(crate) fn new(driver: Box<dyn DriverConnection>, lease: Lease) -> Self {
        Connection {
            driver,
            lease: Some(lease),
            state: ConnectionState::default(),
        }
    }

    /// A connection outside the pool, for the `after_connect` hook.
    pub(crate) fn unpooled(driver: Box<dyn DriverConnection>) -> Self {
        Connection {
            driver,
            lease: None,
            state: ConnectionState::default(),
        }
    }

    /// Takes the driver connection back out of an unpooled connection.
    pub(crate) fn into_driver(mut self) -> Box<dyn DriverConnection> {
        std::mem::replace(&mut self.driver, Box::new(Detached))
    }

    /// Brings the connection to a usable state before an operation: resets it after an interrupted
    /// operation outside a transaction, and rolls back abandoned transaction levels.
    pub(crate) async fn prepare(
        &mut self,
    ) -> Result<(&mut dyn DriverConnection, &mut ConnectionState), Error> {
        if self.driver.is_broken() {
            return Err(self.driver.broken_error().unwrap_or_else(|| {
                Error::connection(
                    "the connection is broken; drop it and acquire another from the engine",
                )
            }));
        }
        if self.state.lost > 0 {
            return Err(lost_transaction());
        }
        if self.state.interrupted && self.state.depth == 0 {
            // A dropped `begin` may have opened a transaction the caller never received.
            self.driver.reset().await?;
            self.state = ConnectionState::default();
        }
        if let Some(level) = self.state.abandoned {
            self.state.interrupted = true;
            let driver = &mut *self.driver;
            let undo = if level <= 1 {
                control(driver, "ROLLBACK").await
            } else {
                rollback_to_savepoint(driver, &savepoint_name(level - 1)).await
            };
            if let Err(e) = undo {
                // The savepoint is gone (its end was interrupted after it took effect): the only
                // known state left is none at all.
                self.driver.reset().await?;
                // The outer levels' handles are still alive: they must not go on in autocommit.
                self.state = ConnectionState {
                    lost: level - 1,
                    ..ConnectionState::default()
                };
                return Err(e.context(
                    "rolling back an abandoned nested transaction failed, so the whole transaction was rolled back",
                ));
            }
            self.state.depth = level - 1;
            self.state.abandoned = None;
            self.state.interrupted = false;
        }
        Ok((&mut *self.driver, &mut self.state))
    }

    /// Runs a statement and returns the number of rows it changed.
    pub fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        let params = params.into_values();
        async move { run!(self, sql sql, d => d.execute(sql, params)) }
    }

    /// Runs one statement once for each parameter set, preparing it once: the batch API for bulk
    /// inserts. Returns the total of rows changed.
    ///
    /// The sets are converted as the driver takes them, so a driver can start on the first ones
    /// while the rest are still being converted (the SQLite driver does); hence the iterator must
    /// be `Send`. On SQLite and PostgreSQL the batch is atomic: it applies entirely or not at all
    /// (inside a transaction, as a savepoint).
    pub fn execute_many<'a, P: Params + 'a>(
        &'a mut self,
        sql: &'a str,
        param_sets: impl IntoIterator<Item = P, IntoIter: Send + 'a>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        let sets: ParamSets<'a> = Box::new(param_sets.into_iter().map(Params::into_values));
        self.execute_many_sets(sql, sets)
    }

    #[allow(clippy::manual_async_fn)] // the `Send` bound is part of the signature
    pub(crate) fn execute_many_sets<'a>(
        &'a mut self,
        sql: &'a str,
        sets: ParamSets<'a>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        async move { run!(self, sql sql, d => d.execute_many(sql, sets)) }
    }

    /// Runs a query and collects all its rows.
    pub fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move { run!(self, sql sql, d => d.fetch_all(sql, params)) }
    }

    /// Runs a query and returns its first row, or `None`.
    pub fn fetch_optional<'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move { run!(self, sql sql, d => d.fetch_optional(sql, params)) }
    }

    /// Runs a query and returns its first row, or an [`ErrorKind::RowNotFound`] error.
    pub fn fetch_one<'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        let optional = self.fetch_optional(sql, params);
        async move { optional.await?.ok_or_else(row_not_found) }
    }

    /// Runs a query and decodes the first column of its first row.
    pub fn fetch_scalar<'a, T: FromValue + Send + 'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a {
        let one = self.fetch_one(sql, params);
        async move { first_column(one.await?) }
    }

    /// Runs a query and decodes every row into `T` (a tuple or your [`FromRow`] type).
    pub fn fetch_all_as<'a, T: FromRow + Send + 'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'a {
        let params = params.into_values();
        async move {
            let mut decoded = Vec::new();
            run!(self, sql sql, d => d.fetch_each(sql, params, &mut |row| {
                decoded.push(T::from_row_mut(row)?);
                Ok(ControlFlow::Continue(()))
            }))?;
            Ok(decoded)
        }
    }

    /// Runs a query and decodes its first row into `T`, or fails with [`ErrorKind::RowNotFound`].
    pub fn fetch_one_as<'a, T: FromRow + Send + 'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a {
        let one = self.fetch_one(sql, params);
        async move { T::from_row(one.await?) }
    }

    /// Runs a query and decodes its first row into `T`, if there is one.
    pub fn fetch_optional_as<'a, T: FromRow + Send + 'a>(
        &'a mut self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'a {
        let optional = self.fetch_optional(sql, params);
        async move { optional.await?.map(T::from_row).transpose() }
    }

    /// Runs a query and streams its rows, holding only a bounded number in memory.
    ///
    /// Dropping the stream early is fine: the rest of the result is discarded before the
    /// connection is used again.
    pub fn fetch<'a>(&'a mut self, sql: &'a str, params: impl Params) -> Rows<'a> {
        let params = params.into_values();
        let start: BoxFuture<'a, Result<(RowStream<'a>, &'a mut ConnectionState), Error>> =
            Box::pin(async move {
                crate::sql::check_statement(sql)?;
                let (driver, state) = self.prepare().await?;
                state.interrupted = true;
                Ok((driver.fetch(sql, params), state))
            });
        Rows {
            phase: RowsPhase::Starting(start),
        }
    }

    /// Starts a `COPY … FROM STDIN` and returns its writer: [`send`](CopyIn::send) it text or CSV
    /// data, then [`finish`](CopyIn::finish) it for the row count. Works on a transaction too
    /// (through `Deref`), as part of it.
    ///
    /// PostgreSQL only: other drivers return an [`ErrorKind::Unsupported`] error. Dropping the
    /// writer before `finish` aborts the COPY (see [`crate::copy`]).
    pub async fn copy_in(&mut self, sql: &str) -> Result<CopyIn<'_>, Error> {
        crate::sql::check_statement(sql)?;
        let (driver, state) = self.prepare().await?;
        state.interrupted = true;
        match driver.copy_in(sql).await {
            Ok(inner) => Ok(CopyIn::new(inner, state)),
            Err(e) => {
                // Refused or failed at the start: the driver answered, nothing is in flight.
                state.interrupted = false;
                Err(e)
            }
        }
    }

    /// Starts a `COPY … TO STDOUT` and streams its data in chunks, holding a bounded amount in
    /// memory.
    ///
    /// PostgreSQL only: other drivers return an [`ErrorKind::Unsupported`] error.
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>, Error> {
        crate::sql::check_statement(sql)?;
        let (driver, state) = self.prepare().await?;
        state.interrupted = true;
        match driver.copy_out(sql).await {
            Ok(stream) => Ok(CopyOut::new(stream, state)),
            Err(e) => {
                state.interrupted = false;
                Err(e)
            }
        }
    }

    /// Starts a typed bulk insert into `columns` of `table` over binary COPY: each
    /// [`write`](CopyInRows::write) takes one row (a tuple of values), and
    /// [`finish`](CopyInRows::finish) returns the row count. The fastest way to load many rows.
    ///
    /// `table` may be qualified (`schema.table`); it and the column names are quoted as they
    /// are given (case-sensitive). PostgreSQL only: other drivers return an
    /// [`ErrorKind::Unsupported`] error.
    pub async fn copy_in_rows(
        &mut self,
        table: &str,
        columns: &[&str],
    ) -> Result<CopyInRows<'_>, Error> {
        crate::sql::check_statement(table)?;
        for column in columns {
            crate::sql::check_statement(column)?;
        }
        let (driver, state) = self.prepare().await?;
        state.interrupted = true;
        match driver.copy_in_rows(table, columns).await {
            Ok(inner) => Ok(CopyInRows::new(inner, state)),
            Err(e) => {
                state.interrupted = false;
                Err(e)
            }
        }
    }

    /// Starts a transaction; inside a transaction, starts a nested one as a savepoint.
    ///
    /// A driver may send the `BEGIN` with the transaction's first statement instead, saving a
    /// round trip (the PostgreSQL driver does; see
    /// [`DriverConnection::begin`]). The transaction is the same:
    /// its first statement runs inside it. Only an error of the `BEGIN` itself is reported by
    /// that first statement (or by `commit`, if there is none) rather than here.
    pub async fn begin(&mut self) -> Result<Transaction<'_>, Error> {
        self.begin_with(TransactionOptions::default()).await
    }

    /// Starts a transaction with options (isolation level, read-only, SQLite `IMMEDIATE`).
    /// Inside a transaction the options are ignored and a savepoint is taken.
    pub async fn begin_with(
        &mut self,
        options: TransactionOptions,
    ) -> Result<Transaction<'_>, Error> {
        self.begin_level(options).await?;
        let depth = self.state.depth;
        Ok(Transaction::borrowed(self, depth))
    }

    pub(crate) async fn begin_level(&mut self, options: TransactionOptions) -> Result<(), Error> {
        // The depth as `prepare` leaves it: it first rolls back a dropped transaction.
        let (d, state) = self.prepare().await?;
        let depth = state.depth;
        state.interrupted = true;
        let result = if depth == 0 {
            // The driver may defer the `BEGIN` to the first statement (see
            // `DriverConnection::begin`).
            d.begin(&options).await
        } else {
            control(d, &format!("SAVEPOINT {}", savepoint_name(depth))).await
        };
        state.interrupted = false;
        result?;
        state.depth = depth + 1;
        Ok(())
    }

    /// Ends transaction level `level` (1 = outermost) by committing or rolling back; a commit
    /// first runs `statements` in it (the driver may send them and the commit together), and
    /// returns the rows each changed. If one fails, the level ends as with a failed commit:
    /// nothing of it is kept.
    pub(crate) async fn end_level(
        &mut self,
        level: u32,
        commit: bool,
        statements: Vec<(&str, Vec<Value>)>,
    ) -> Result<Vec<u64>, Error> {
        if self.state.lost >= level {
            self.state.lost = level - 1;
            // A rollback's wish is already granted; a commit's cannot be.
            return if commit {
                Err(lost_transaction())
            } else {
                Ok(Vec::new())
            };
        }
        self.prepare().await?;
        if self.state.depth != level {
            return Err(Error::new(
                ErrorKind::Closed,
                "the transaction is no longer open on this connection",
            ));
        }
        let result = run!(self, d => async {
            let release;
            let end = match (level, commit) {
                (1, true) => "COMMIT",
                (1, false) => return control(d, "ROLLBACK").await.map(|()| Vec::new()),
                (_, true) => {
                    release = format!("RELEASE SAVEPOINT {}", savepoint_name(level - 1));
                    &release
                }
                (_, false) => {
                    return rollback_to_savepoint(d, &savepoint_name(level - 1))
                        .await
                        .map(|()| Vec::new())
                }
            };
            if statements.is_empty() {
                control(d, end).await.map(|()| Vec::new())
            } else {
                let count = statements.len();
                for (index, (sql, _)) in statements.iter().enumerate() {
                    crate::sql::check_statement(sql)
                        .map_err(|e| pipeline_statement_failed(index, count, e))?;
                }
                d.execute_pipeline(statements, end).await
            }
        });
        match &result {
            Ok(_) => self.state.depth = level - 1,
            // A failed COMMIT ends the transaction on every database we support; a failed
            // ROLLBACK TO leaves the level to be rolled back again before the next use. A failed
            // statement before the COMMIT: the transaction is reset before the next use.
            Err(_) if level == 1 => {
                self.state.depth = 0;
                self.state.interrupted = true;
            }
            Err(_) => self.state.abandoned = Some(level),
        }
        result
    }

    /// Checks that the connection is alive with a round trip.
    pub async fn ping(&mut self) -> Result<(), Error> {
        run!(self, d => d.ping())
    }

    /// Whether a transaction is open on this connection, as far as anysql knows.
    pub fn in_transaction(&self) -> bool {
        self.state.depth > 0 && self.state.abandoned != Some(1)
    }

    /// A handle that cancels the query running on this connection, from another task
    /// (PostgreSQL; `None` where the database cannot cancel).
    pub fn cancel_handle(&self) -> Option<CancelHandle> {
        self.driver.cancel_handle()
    }

    /// The runtime this connection does its I/O on.
    pub fn runtime(&self) -> Option<&SharedRuntime> {
        self.lease.as_ref().map(|lease| &lease.pool.runtime)
    }

    /// The driver's own connection type, for escape hatches such as the SQLite driver's `run_sync`.
    /// `None` if `T` is not this connection's driver type.
    ///
    /// This is the connection as it is: prefer [`ready_driver_connection`](Self::ready_driver_connection)
    /// before running statements on it.
    pub fn driver_connection<T: Any>(&mut self) -> Option<&mut T> {
        self.driver.as_any_mut().downcast_mut::<T>()
    }

    /// The driver's own connection type, made ready first as before any statement: an abandoned
    /// transaction is rolled back and an interrupted operation is finished. `Ok(None)` if `T` is not
    /// this connection's driver type.
    pub async fn ready_driver_connection<T: Any>(&mut self) -> Result<Option<&mut T>, Error> {
        let (driver, _) = self.prepare().await?;
        Ok(driver.as_any_mut().downcast_mut::<T>())
    }

    /// Closes the connection instead of returning it to the pool.
    pub async fn close(mut self) -> Result<(), Error> {
        let driver = std::mem::replace(&mut self.driver, Box::new(Detached));
        if let Some(lease) = self.lease.take() {
            lease.pool.discard(Box::new(Detached), false);
            drop(lease);
        }
        driver.close().await
    }
}

fn lost_transaction() -> Error {
    Error::closed(
        "the transaction was rolled back after one of its savepoints ended in an unknown state \
         (a cancelled commit or rollback), so nothing of it was committed; end this transaction \
         and start a new one",
    )
}

/// Decodes the first column of `row`, for the `fetch_scalar` methods.
pub(crate) fn first_column<T: FromValue>(mut row: Row) -> Result<T, Error> {
    if row.is_empty() {
        return Err(Error::decode("the query returned rows with no columns"));
    }
    row.take(0)
}

pub(crate) fn row_not_found() -> Error {
    Error::new(
        ErrorKind::RowNotFound,
        "the query returned no rows; use fetch_optional if that is expected",
    )
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let driver = std::mem::replace(&mut self.driver, Box::new(Detached));
            // Ask the database too: SQL such as `BEGIN` run through `execute` opens a transaction
            // that the core's own bookkeeping never saw.
            let needs_reset = self.state.needs_reset() || driver.in_transaction();
            lease.release(driver, needs_reset);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("driver", &self.driver)
            .field("depth", &self.state.depth)
            .finish_non_exhaustive()
    }
}

/// A stream of rows from [`Connection::fetch`].
#[must_use = "streams do nothing unless polled"]
pub struct Rows<'a> {
    phase: RowsPhase<'a>,
}

enum RowsPhase<'a> {
    Starting(BoxFuture<'a, Result<(RowStream<'a>, &'a mut ConnectionState), Error>>),
    Streaming(RowStream<'a>, &'a mut ConnectionState),
    Done,
}

impl Stream for Rows<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match &mut self.phase {
                RowsPhase::Starting(start) => match start.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok((stream, state))) => {
                        self.phase = RowsPhase::Streaming(stream, state)
                    }
                    Poll::Ready(Err(e)) => {
                        self.phase = RowsPhase::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                RowsPhase::Streaming(stream, state) => {
                    let item = std::task::ready!(stream.as_mut().poll_next(cx));
                    match item {
                        Some(Ok(row)) => return Poll::Ready(Some(Ok(row))),
                        end => {
                            // The driver has finished the statement either way; the connection is in
                            // sync again.
                            state.interrupted = false;
                            self.phase = RowsPhase::Done;
                            return Poll::Ready(end);
                        }
                    }
                }
                RowsPhase::Done => return Poll::Ready(None),
            }
        }
    }
}

impl fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows").finish_non_exhaustive()
    }
}

/// The stand-in left in a [`Connection`] once its driver connection has gone back to the pool.
#[derive(Debug)]
struct Detached;

#[async_trait]
impl DriverConnection for Detached {
    async fn execute(&mut self, _: &str, _: Vec<Value>) -> Result<u64, Error> {
        Err(detached())
    }
    async fn fetch_each(
        &mut self,
        _: &str,
        _: Vec<Value>,
        _: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        Err(detached())
    }
    fn fetch<'a>(&'a mut self, _: &'a str, _: Vec<Value>) -> RowStream<'a> {
        Box::pin(futures_lite::stream::once(Err(detached())))
    }
    async fn ping(&mut self) -> Result<(), Error> {
        Err(detached())
    }
    async fn reset(&mut self) -> Result<(), Error> {
        Err(detached())
    }
    fn in_transaction(&self) -> bool {
        false
    }
    fn is_broken(&self) -> bool {
        true
    }
    async fn close(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn detached() -> Error {
    Error::closed("the connection was closed")
}
