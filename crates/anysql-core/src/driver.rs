//! The [`AsyncDriver`] trait and its per-connection trait [`DriverConnection`]: what a database driver
//! implements to plug into anysql.
//!
//! Users do not call these traits; they use [`Engine`](crate::Engine), [`Connection`](crate::Connection)
//! and [`Transaction`](crate::Transaction). Driver authors implement them.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::Stream;

use crate::copy::{self, ByteStream, DriverCopyIn, DriverCopyRows};
use crate::error::Error;
use crate::listener::DriverListener;
use crate::options::ConnectOptions;
use crate::row::{FromRow, Row};
use crate::runtime::SharedRuntime;
use crate::transaction_options::TransactionOptions;
use crate::value::Value;

/// A stream of rows borrowed from a connection.
pub type RowStream<'a> = Pin<Box<dyn Stream<Item = Result<Row, Error>> + Send + 'a>>;

/// The parameter sets of [`DriverConnection::execute_many`], converted lazily, one per item.
pub type ParamSets<'a> = Box<dyn Iterator<Item = Vec<Value>> + Send + 'a>;

/// What [`DriverConnection::fetch_each`] hands each row to. It may take values out of the row, and
/// it says whether it wants the next one: [`ControlFlow::Break`] stops the query there.
pub type RowSink<'a> = dyn FnMut(&mut Row) -> Result<ControlFlow<()>, Error> + Send + 'a;

/// What [`DriverConnection::execute_pipeline`] returns when statement `index` (counted from 0)
/// of its `count` failed with `error`: the same error, its message saying which statement it was.
pub fn pipeline_statement_failed(index: usize, count: usize, error: Error) -> Error {
    error.context(format_args!(
        "statement {} of {count} in the pipeline failed, and the pipeline's transaction is not \
         committed",
        index + 1
    ))
}

/// [`DriverConnection::execute_pipeline`] one statement at a time: each through
/// [`execute`](DriverConnection::execute), stopping at the first that fails, then `end`. The
/// default, and the fallback of a driver whose faster path does not apply.
pub async fn execute_pipeline_one_by_one<C: DriverConnection + ?Sized>(
    conn: &mut C,
    statements: Vec<(&str, Vec<Value>)>,
    end: &str,
) -> Result<Vec<u64>, Error> {
    let count = statements.len();
    let mut changed = Vec::with_capacity(count);
    for (index, (sql, params)) in statements.into_iter().enumerate() {
        let rows = conn
            .execute(sql, params)
            .await
            .map_err(|e| pipeline_statement_failed(index, count, e))?;
        changed.push(rows);
    }
    conn.execute(end, Vec::new()).await?;
    Ok(changed)
}

/// A database driver: the URL schemes it serves and a factory for its connections.
pub trait AsyncDriver: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages, such as `"sqlite"`.
    fn name(&self) -> &'static str;

    /// The URL schemes this driver serves, such as `["postgres", "postgresql"]`.
    fn schemes(&self) -> &'static [&'static str];

    /// Whether this driver also serves scheme-less `key=value` connection strings
    /// (`host=/run/postgresql dbname=test`, libpq's form; see
    /// [`ConnectOptions::is_key_value`]). The first registered driver that does gets them.
    fn accepts_key_value(&self) -> bool {
        false
    }

    /// Validates `options` once, when the engine is built, and returns the connector the pool uses to
    /// open connections.
    ///
    /// Configuration errors (an unknown option, an unsupported mode) belong here, so that they surface
    /// when the engine is built rather than on first use.
    fn connector(&self, options: &ConnectOptions) -> Result<Arc<dyn Connector>, Error>;
}

/// Opens connections for one engine. Built by [`AsyncDriver::connector`].
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    /// Opens a new connection, doing all its I/O through `runtime`.
    async fn connect(&self, runtime: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error>;

    /// The largest pool this database supports, if it has a limit; the pool never exceeds it.
    fn max_pool_size(&self) -> Option<usize> {
        None
    }

    /// What telemetry reports about the server these connections go to (with the `tracing`
    /// feature, every statement's span carries it). The default names no system and no server.
    fn server_info(&self) -> ServerInfo {
        ServerInfo::default()
    }

    /// Opens a connection that many tasks may use at once, for the statements the
    /// [`Engine`](crate::Engine) runs outside any transaction (`engine.execute`,
    /// `engine.fetch_*`); `Ok(None)` (the default) when this driver or these options have none.
    ///
    /// A driver whose protocol pipelines (PostgreSQL) serves concurrent callers on one connection
    /// this way, and the server sees one session instead of one per caller. The engine opens it
    /// on first use, replaces it when it reports [`is_broken`](SharedConnection::is_broken), and
    /// falls back to a pooled connection for statements it does not
    /// [`accept`](SharedConnection::accepts).
    async fn connect_shared(
        &self,
        runtime: &SharedRuntime,
    ) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        let _ = runtime;
        Ok(None)
    }

    /// The read replicas these options name (PostgreSQL's `replica_hosts`): for each, a
    /// description for messages (its URL without password) and the connector of its pool. The
    /// engine gives each a pool of its own, for [`Engine::reader`](crate::Engine::reader). The
    /// default is none.
    fn replicas(&self) -> Vec<(String, Arc<dyn Connector>)> {
        Vec::new()
    }

    /// Opens a connection of its own, outside the pool, that receives notifications for a
    /// [`Listener`](crate::Listener) (PostgreSQL's `LISTEN`), buffering at most `capacity` of
    /// them. The default, for databases without notifications, is an
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.
    async fn connect_listener(
        &self,
        runtime: &SharedRuntime,
        capacity: usize,
    ) -> Result<Box<dyn DriverListener>, Error> {
        let _ = (runtime, capacity);
        Err(crate::listener::unsupported())
    }

    /// The statement that sends a notification, with the channel as `$1` and the payload as `$2`
    /// (PostgreSQL: `SELECT pg_notify($1, $2)`), for [`Engine::notify`](crate::Engine::notify);
    /// `None` (the default) where the database has no notifications.
    fn notify_statement(&self) -> Option<&'static str> {
        None
    }
}

/// The server a [`Connector`]'s connections go to, as telemetry names it: OpenTelemetry's
/// `db.system.name`, `db.namespace`, `server.address` and `server.port`.
///
/// ```
/// use anysql_core::ServerInfo;
///
/// let info = ServerInfo::new("postgresql")
///     .namespace("shop")
///     .address("db.internal")
///     .port(5432);
/// assert_eq!(info.system, "postgresql");
/// assert_eq!(info.port, Some(5432));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The database system, by OpenTelemetry's names: `postgresql`, `sqlite`, …; empty when
    /// unknown (then `other_sql` is reported).
    pub system: &'static str,
    /// The database: its name on a server, its file for SQLite.
    pub namespace: Option<String>,
    /// The server's host name or address (a Unix socket's directory for a local socket).
    pub address: Option<String>,
    /// The server's port, over TCP.
    pub port: Option<u16>,
}

impl ServerInfo {
    /// Information naming only the system.
    pub fn new(system: &'static str) -> Self {
        ServerInfo {
            system,
            ..ServerInfo::default()
        }
    }

    /// Sets the database name or file.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the server's host name or address.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Sets the server's port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// A connection used by many tasks at once: see [`Connector::connect_shared`].
///
/// Every method may be called concurrently, and every returned future may be dropped at any
/// await point without disturbing the others' statements.
#[async_trait]
pub trait SharedConnection: Send + Sync + fmt::Debug + 'static {
    /// Whether `sql` may run here. Statements that change the session for the statements after
    /// them (transaction control above all) must not, since those belong to other callers.
    fn accepts(&self, sql: &str) -> bool;

    /// Runs a statement and returns the number of rows it changed.
    async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, Error>;

    /// Runs a query and collects its rows.
    async fn fetch_all(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error>;

    /// Runs a query and returns its first row, if any.
    async fn fetch_optional(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, Error>;

    /// Whether the connection is unusable (then the engine opens another).
    fn is_broken(&self) -> bool;
}

/// One open database connection, as a driver implements it.
///
/// A driver implements:
///
/// - three query primitives: [`execute`](Self::execute) (run a statement, count the rows it
///   changed), [`fetch_each`](Self::fetch_each) (hand each row to a sink, which may stop the
///   query) and [`fetch`](Self::fetch) (a bounded stream of rows);
/// - the lifecycle: [`ping`](Self::ping), [`reset`](Self::reset), [`close`](Self::close), and the
///   cheap, I/O-free [`is_broken`](Self::is_broken) and [`in_transaction`](Self::in_transaction);
/// - [`as_any_mut`](Self::as_any_mut), for escape hatches.
///
/// Everything else is provided: [`fetch_all`](Self::fetch_all) and
/// [`fetch_optional`](Self::fetch_optional) on `fetch_each`, [`execute_many`](Self::execute_many)
/// on `execute`, and transaction control, which the core runs as SQL through `execute` (a driver
/// says how to spell `BEGIN` with [`begin_statement`](Self::begin_statement), and may defer it to
/// the transaction's first statement by overriding [`begin`](Self::begin)). A driver overrides a
/// provided method where it has a faster path, and adds [`cancel_handle`](Self::cancel_handle) and
/// [`broken_error`](Self::broken_error) where it can.
///
/// Every method takes `&mut self`: a connection serves one operation at a time. The caller may drop any
/// returned future at any await point. The core records that, and calls [`reset`](Self::reset) before the
/// connection is used again, so a driver only has to guarantee that `reset` brings the connection back to
/// an idle, autocommit state (or fails, and the connection is discarded).
#[async_trait]
pub trait DriverConnection: Send + fmt::Debug + 'static {
    /// Runs a statement and returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error>;

    /// Runs one statement once per parameter set and returns the total of rows changed.
    ///
    /// The sets are converted from the caller's values as the iterator is advanced, so a driver
    /// that starts on the first sets before taking the rest overlaps the two. The default calls
    /// [`execute`](Self::execute) in a loop; drivers override it to prepare once and to avoid a
    /// round trip per set.
    async fn execute_many(&mut self, sql: &str, param_sets: ParamSets<'_>) -> Result<u64, Error> {
        let mut total = 0;
        for params in param_sets {
            total += self.execute(sql, params).await?;
        }
        Ok(total)
    }

    /// Runs `statements` in order inside the open transaction, then `end` (the statement that ends
    /// the transaction: `COMMIT`, or `RELEASE SAVEPOINT name` for a nested one), and
    /// returns the rows each statement changed: the path of [`Pipeline`](crate::Pipeline).
    ///
    /// It stops at the first statement that fails and returns that statement's error, marked with
    /// [`pipeline_statement_failed`]; what the transaction did is then the core's to roll back.
    /// A driver that sends the statements before their replies are read may have sent `end`
    /// already: then the database must not keep the transaction's work (PostgreSQL turns a
    /// `COMMIT` after a failed statement into a rollback).
    ///
    /// The core calls it only inside a transaction. The default runs the statements one by one
    /// through [`execute`](Self::execute) ([`execute_pipeline_one_by_one`]); a driver overrides
    /// it to send them together.
    async fn execute_pipeline(
        &mut self,
        statements: Vec<(&str, Vec<Value>)>,
        end: &str,
    ) -> Result<Vec<u64>, Error> {
        execute_pipeline_one_by_one(self, statements, end).await
    }

    /// Runs a query and hands each of its rows to `sink`, in order, until the rows end or `sink`
    /// returns [`ControlFlow::Break`]; then the rest of the result is discarded.
    ///
    /// This is the path of [`fetch_all`](Self::fetch_all), [`fetch_optional`](Self::fetch_optional)
    /// and [`Connection::fetch_all_as`](crate::Connection::fetch_all_as). A driver may pass every
    /// row in one [`Row`] that it refills (see [`Row::refill`]), so that decoding into the caller's
    /// type needs no `Row` per row; the sink may take values out of the row. An error from the sink
    /// ends the call with that error. After an error or a `Break`, as after the last row, the
    /// connection must be idle: ready for the next statement, its transaction state as the
    /// statement left it.
    async fn fetch_each(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error>;

    /// Runs a query and streams its rows, holding a bounded number of them in memory.
    fn fetch<'a>(&'a mut self, sql: &'a str, params: Vec<Value>) -> RowStream<'a>;

    /// Runs a query and collects all its rows. The default collects what
    /// [`fetch_each`](Self::fetch_each) hands over, taking each row's values out of the sink's
    /// row.
    async fn fetch_all(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        self.fetch_each(sql, params, &mut |row| {
            rows.push(Row::from_row_mut(row)?);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
        Ok(rows)
    }

    /// Runs a query and returns its first row, if any, discarding the rest. The default stops
    /// [`fetch_each`](Self::fetch_each) after the first row; a driver overrides it where it has a
    /// faster path for one row.
    async fn fetch_optional(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Option<Row>, Error> {
        let mut first = None;
        self.fetch_each(sql, params, &mut |row| {
            first = Some(Row::from_row_mut(row)?);
            Ok(ControlFlow::Break(()))
        })
        .await?;
        Ok(first)
    }

    /// How to spell the statement that starts a transaction with `options`; the default is
    /// `BEGIN`, whatever the options.
    ///
    /// The core runs transaction control through [`begin`](Self::begin) (whose default runs this
    /// statement through [`execute`](Self::execute)) and otherwise through `execute`: `COMMIT` or
    /// `ROLLBACK`, and for nested transactions `SAVEPOINT name`, `RELEASE SAVEPOINT name` and
    /// `ROLLBACK TO SAVEPOINT name` (then `RELEASE SAVEPOINT name`).
    /// Whatever a driver must do around them (wait for its turn to write before a `BEGIN
    /// IMMEDIATE`, report as an error a `COMMIT` that the database turned into a rollback) belongs
    /// in its `execute`, which sees the same statements when an application runs them itself.
    ///
    /// A driver may refuse options its database cannot honour with an error here, before anything
    /// runs; the default, like the SQLite driver for the isolation level, ignores them.
    fn begin_statement(&self, options: &TransactionOptions) -> Result<Cow<'static, str>, Error> {
        let _ = options;
        Ok(Cow::Borrowed("BEGIN"))
    }

    /// Starts a transaction with `options`, outside any: what
    /// [`Connection::begin`](crate::Connection::begin) runs. The default runs
    /// [`begin_statement`](Self::begin_statement) through [`execute`](Self::execute).
    ///
    /// A driver may instead defer the `BEGIN` and send it with the transaction's first statement,
    /// saving a round trip (the PostgreSQL driver does). It then owes the caller the same
    /// transaction as if `BEGIN` had run here:
    ///
    /// - nothing of the transaction may run outside it: if the deferred `BEGIN` fails, the
    ///   statement sent with it must not run, and that statement's call reports `BEGIN`'s error;
    ///   later statements fail until `ROLLBACK` (which succeeds) or `COMMIT` (which fails);
    /// - `COMMIT` and `ROLLBACK` through `execute` end the transaction whether or not `BEGIN` was
    ///   sent yet (a `COMMIT` must still report an error of the `BEGIN`);
    /// - [`in_transaction`](Self::in_transaction) reports `true` while the `BEGIN` is pending,
    ///   and [`reset`](Self::reset) forgets it;
    /// - an operation whose future is dropped after it carried the `BEGIN` leaves the driver to
    ///   learn, before its next statement, whether the transaction opened.
    async fn begin(&mut self, options: &TransactionOptions) -> Result<(), Error> {
        let sql = self.begin_statement(options)?;
        self.execute(&sql, Vec::new()).await.map(drop)
    }

    /// Checks that the connection is alive with a round trip.
    async fn ping(&mut self) -> Result<(), Error>;

    /// Brings the connection back to an idle, autocommit state after an interrupted operation or an
    /// abandoned transaction: finishes or aborts whatever is in flight and rolls back any open
    /// transaction. An error means the connection cannot be trusted and is discarded.
    async fn reset(&mut self) -> Result<(), Error>;

    /// Whether the connection is known to be unusable (its socket closed, its worker gone). Cheap; no
    /// I/O.
    fn is_broken(&self) -> bool;

    /// Whether the database itself reports an open transaction on this connection, as of the last
    /// statement that finished: SQLite's autocommit flag, PostgreSQL's transaction status in
    /// `ReadyForQuery`. Cheap; no I/O.
    ///
    /// The core never trusts its own bookkeeping alone: a connection that reports a transaction
    /// when it goes back to the pool (a `BEGIN` run through `execute`, say) is
    /// [`reset`](Self::reset) before anyone reuses it, so `reset` must roll back whatever this
    /// reports.
    fn in_transaction(&self) -> bool;

    /// Why the connection broke, once [`is_broken`](Self::is_broken) says it did, if the driver
    /// knows: the error the next operation on it fails with (a PostgreSQL session the server
    /// terminated keeps its SQLSTATE). `None` (the default) gives a generic connection error.
    fn broken_error(&self) -> Option<Error> {
        None
    }

    /// Closes the connection gracefully.
    async fn close(self: Box<Self>) -> Result<(), Error>;

    /// A handle that can cancel the query running on this connection from another task, where the
    /// database supports it.
    fn cancel_handle(&self) -> Option<crate::CancelHandle> {
        None
    }

    /// The driver's own connection object, for escape hatches such as `run_sync`.
    fn as_any_mut(&mut self) -> &mut dyn Any;

    /// Starts a `COPY … FROM STDIN` (`sql`), for [`Connection::copy_in`](crate::Connection::copy_in).
    /// Optional: the default is an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// error, and nothing runs.
    ///
    /// Dropping the returned writer without finishing it must abort the COPY, and leave the
    /// connection for [`reset`](Self::reset) (or [`is_broken`](Self::is_broken)).
    async fn copy_in(&mut self, sql: &str) -> Result<Box<dyn DriverCopyIn + '_>, Error> {
        let _ = sql;
        Err(copy::unsupported("COPY FROM STDIN"))
    }

    /// Starts a `COPY … TO STDOUT` (`sql`) and streams its data, for
    /// [`Connection::copy_out`](crate::Connection::copy_out). Optional, like
    /// [`copy_in`](Self::copy_in).
    async fn copy_out(&mut self, sql: &str) -> Result<ByteStream<'_>, Error> {
        let _ = sql;
        Err(copy::unsupported("COPY TO STDOUT"))
    }

    /// Starts a binary COPY of typed rows into `columns` of `table`, for
    /// [`Connection::copy_in_rows`](crate::Connection::copy_in_rows). Optional, like
    /// [`copy_in`](Self::copy_in).
    async fn copy_in_rows(
        &mut self,
        table: &str,
        columns: &[&str],
    ) -> Result<Box<dyn DriverCopyRows + '_>, Error> {
        let _ = (table, columns);
        Err(copy::unsupported("copy_in_rows (binary COPY)"))
    }
}

/// Cancels a running query from outside its connection. Implemented by drivers; users hold a
/// [`CancelHandle`](crate::CancelHandle).
#[async_trait]
pub trait CancelQuery: Send + Sync + fmt::Debug + 'static {
    /// Asks the server to cancel whatever the connection is running now.
    async fn cancel(&self, runtime: &SharedRuntime) -> Result<(), Error>;
}
