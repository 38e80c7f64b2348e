//! [`PgConnection`]: one PostgreSQL connection, implementing anysql's [`DriverConnection`].

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anysql_core::{
    ByteStream, CancelHandle, DriverConnection, DriverCopyIn, DriverCopyRows, Error, ParamSets,
    Row, RowSink, RowStream, SharedRuntime, TransactionOptions, Value,
};
use async_trait::async_trait;
use futures_core::Stream;
use futures_lite::StreamExt;
use postgres_types::{ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::cancel::PgCanceller;
use crate::error;
use crate::io::Io;
use crate::options::DriveMode;
use crate::pipeline;
use crate::session::{is_query_canceled, Session};
use crate::socket::{SocketHandle, TxnStatus};
use crate::sql::{self, SqlInfo, TxnEffect};
use crate::statements::{Failure, Statements};
use crate::types::{self, unnamed_param_type, PgParam, RowPlan};

/// How long [`reset`](DriverConnection::reset) waits for an interrupted operation to finish by
/// itself before it sends a cancel request.
const RESET_GRACE: Duration = Duration::from_millis(50);

/// How long [`close`](DriverConnection::close) waits for the server to acknowledge.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A boxed, sendable future.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A row stream of tokio-postgres, with how to decode it (known after the first row for unnamed
/// statements).
type Started = (tokio_postgres::RowStream, Option<Arc<RowPlan>>);

/// Starts a query: prepares (or finds) the statement, checks the parameters and sends it.
async fn start_query(
    client: &Client,
    statements: &mut Statements,
    sql: &str,
    info: &SqlInfo,
    params: &[Value],
    unspecified: &Type,
) -> Result<Started, Failure> {
    if statements.unnamed() {
        if params.len() != info.max_param {
            return Err(Error::parameter_count(info.max_param, params.len()).into());
        }
        let typed = types::params(params).map(|p| (p, unnamed_param_type(p.value, unspecified)));
        Ok((client.query_typed_raw(sql, typed).await?, None))
    } else {
        let prepared = statements.for_params(client, sql, params).await?;
        let rows = client
            .query_raw(&prepared.statement, types::params(params))
            .await?;
        Ok((rows, Some(Arc::clone(&prepared.plan))))
    }
}

/// Decodes one row, building the plan from the first row when the statement had none.
pub(crate) fn decode(
    plan: &mut Option<Arc<RowPlan>>,
    row: &tokio_postgres::Row,
) -> Result<Row, Error> {
    plan.get_or_insert_with(|| Arc::new(RowPlan::new(row.columns())))
        .decode(row)
}

/// Runs one statement with parameters and returns the rows it changed.
pub(crate) async fn execute_one(
    client: &Client,
    statements: &mut Statements,
    sql: &str,
    info: &SqlInfo,
    params: &[Value],
    unspecified: &Type,
) -> Result<u64, Failure> {
    if params.is_empty() {
        // No parameters: the simple protocol is one round trip, needs no prepared statement and
        // accepts several statements separated by semicolons.
        if info.max_param > 0 {
            return Err(Error::parameter_count(info.max_param, 0).into());
        }
        // Streamed, so that rows a statement returns are dropped as they come, never collected.
        let mut messages = pin!(client.simple_query_raw(sql).await?);
        let mut total = 0;
        while let Some(message) = messages.next().await {
            if let SimpleQueryMessage::CommandComplete(n) = message? {
                total += n;
            }
        }
        return Ok(total);
    }
    if statements.unnamed() {
        if params.len() != info.max_param {
            return Err(Error::parameter_count(info.max_param, params.len()).into());
        }
        let values: Vec<PgParam<'_>> = types::params(params).collect();
        Ok(client
            .execute_typed(sql, &typed_params(&values, unspecified))
            .await?)
    } else {
        let prepared = statements.for_params(client, sql, params).await?;
        Ok(client
            .execute_raw(&prepared.statement, types::params(params))
            .await?)
    }
}

/// One PostgreSQL connection.
///
/// Applications reach it through [`Connection::driver_connection`](anysql_core::Connection::driver_connection)
/// for what anysql does not cover; see [`with_client`](Self::with_client).
pub struct PgConnection {
    // Field order matters: the client and its statements drop before `io`, whose `Drop` then lets
    // the connection say goodbye to the server.
    pub(crate) client: Client,
    statements: Statements,
    pub(crate) session: Session,
    unspecified: Type,
    runtime: SharedRuntime,
    canceller: Arc<PgCanceller>,
    /// What the server said about the session in the messages read so far.
    pub(crate) server: SocketHandle,
    /// A COPY FROM STDIN that the server may still be in is tokio-postgres' own (started by
    /// [`copy_in`](DriverConnection::copy_in)): it ends it (CopyDone, or CopyFail when the
    /// writer is dropped) before any later request, so the session is not out of step.
    pub(crate) copy_owned: bool,
    /// `pgbouncer=true`: the server connection may change after every statement outside a
    /// transaction, so a COPY must run inside one (see [`copy`](crate::copy)).
    pub(crate) behind_pgbouncer: bool,
    pub(crate) io: Io,
}

impl PgConnection {
    pub(crate) fn new(
        client: Client,
        io: Io,
        server: SocketHandle,
        runtime: SharedRuntime,
        canceller: Arc<PgCanceller>,
        cache_capacity: usize,
        unnamed: bool,
    ) -> Self {
        PgConnection {
            client,
            statements: Statements::new(cache_capacity, unnamed),
            session: Session::new(server.clone()),
            unspecified: types::unspecified_type(),
            runtime,
            canceller,
            server,
            copy_owned: false,
            behind_pgbouncer: false,
            io,
        }
    }

    /// Sends this connection's notifications to `queue` (a listener's).
    pub(crate) fn attach_notifications(&mut self, queue: Arc<crate::listen::NotificationQueue>) {
        self.io.route().attach(queue);
    }

    /// The tokio-postgres client.
    ///
    /// In the default inline [`DriveMode`] nothing polls the connection unless an operation of this
    /// connection is running, so awaiting a request made on this client directly would never
    /// finish. Use [`with_client`](Self::with_client), which drives the connection while your
    /// future runs; plain synchronous calls (`is_closed`, `cancel_token`) are fine here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `f` with the tokio-postgres client, driving the connection while its future runs, in
    /// every [`DriveMode`].
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut anysql_core::Connection) -> Result<(), anysql_core::Error> {
    /// use anysql_postgres::PgConnection;
    ///
    /// let pg = conn.driver_connection::<PgConnection>().expect("a PostgreSQL connection");
    /// let rows = pg.with_client(|client| Box::pin(async move {
    ///     client.query("SELECT now()::text", &[]).await
    /// })).await;
    /// # let _ = rows;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Whatever `f` does to the session, the driver then learns from the server whether a
    /// transaction is open (the transaction status of the last ReadyForQuery message), and a
    /// connection dropped inside one is rolled back before it goes back to the pool.
    pub async fn with_client<T, F>(&mut self, f: F) -> T
    where
        F: for<'c> FnOnce(&'c Client) -> Pin<Box<dyn Future<Output = T> + Send + 'c>>,
    {
        self.session.in_flight = true;
        let out = self.io.drive(f(&self.client)).await;
        self.session.in_flight = false;
        self.session.sync();
        out
    }

    /// How this connection's I/O is driven.
    pub fn drive_mode(&self) -> DriveMode {
        self.io.mode()
    }

    /// How many prepared statements the cache holds now.
    pub fn cached_statements(&self) -> usize {
        self.statements.len()
    }

    /// Whether this connection uses unnamed statements only (PgBouncer-safe mode).
    pub fn uses_unnamed_statements(&self) -> bool {
        self.statements.unnamed()
    }

    /// Marks this connection broken when a statement is refused as read-only (`25006`): for
    /// engines that want a writable server, whose connection to a demoted primary must go.
    pub(crate) fn set_discard_on_read_only(&mut self, discard: bool) {
        self.session.discard_on_read_only = discard;
    }

    /// Whether [`set_discard_on_read_only`](Self::set_discard_on_read_only) is on.
    pub(crate) fn discards_on_read_only(&self) -> bool {
        self.session.discard_on_read_only
    }

    /// Whether the last ReadyForQuery message read said that a transaction block is open (or
    /// failed), however stale that may be.
    pub(crate) fn server_reported_transaction(&self) -> bool {
        self.server.txn_status() != TxnStatus::Idle
    }

    /// Starts an operation, refusing if the connection is known to be gone.
    pub(crate) fn start(&mut self) -> Result<(), Error> {
        if self.io.has_ended() || self.client.is_closed() {
            self.session.broken = true;
            return Err(self.ended_error());
        }
        if !self.server.copy_in_open() {
            self.copy_owned = false;
        }
        self.session.start()
    }

    /// The error for a connection the server (or the network) ended, not the application: a
    /// connection error, with the server's SQLSTATE when it said why.
    fn ended_error(&self) -> Error {
        let ended = self.io.end_reason();
        let reason = ended
            .as_ref()
            .map_or("the server closed it", |e| e.reason.as_str());
        let error = Error::connection(format!(
            "the connection to PostgreSQL has ended ({reason}); acquire a new connection"
        ));
        match ended.and_then(|e| e.database) {
            Some(database) => error.with_database(database),
            None => error,
        }
    }

    /// Runs a query and passes its rows to `sink` through one reused [`Row`], until `sink` says
    /// stop.
    async fn fetch_rows(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        let info = sql::scan(sql);
        info.check(params.len())?;
        self.start()?;
        let Self {
            client,
            statements,
            io,
            unspecified,
            ..
        } = self;
        let result = io
            .drive(async {
                let (stream, mut plan) =
                    start_query(client, statements, sql, &info, &params, unspecified).await?;
                let mut stream = pin!(stream);
                let mut buffer: Option<Row> = None;
                while let Some(row) = stream.next().await {
                    let row = row?;
                    let plan = plan.get_or_insert_with(|| Arc::new(RowPlan::new(row.columns())));
                    let buffer = buffer.get_or_insert_with(|| plan.empty_row());
                    plan.decode_into(&row, buffer.refill())?;
                    // An error or a stop here leaves the rest of the result to be discarded by
                    // tokio-postgres when the stream drops.
                    if sink(buffer)?.is_break() {
                        break;
                    }
                }
                Ok(())
            })
            .await;
        self.session
            .settle(Some(&mut self.statements), sql, &info.effects, result)
    }
}

/// Parameters of an unnamed statement, each with the type sent for it (unspecified for text and
/// NULL, so that the server infers them).
pub(crate) fn typed_params<'v>(
    values: &'v [PgParam<'_>],
    unspecified: &Type,
) -> Vec<(&'v (dyn ToSql + Sync), Type)> {
    values
        .iter()
        .map(|p| {
            (
                p as &(dyn ToSql + Sync),
                unnamed_param_type(p.value, unspecified),
            )
        })
        .collect()
}

#[async_trait]
impl DriverConnection for PgConnection {
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let info = sql::scan(sql);
        info.check(params.len())?;
        self.start()?;
        let Self {
            client,
            statements,
            io,
            unspecified,
            ..
        } = self;
        let result = io
            .drive(execute_one(
                client,
                statements,
                sql,
                &info,
                &params,
                unspecified,
            ))
            .await;
        self.session
            .settle(Some(&mut self.statements), sql, &info.effects, result)
    }

    /// Prepares once and pipelines the executes. Outside a transaction the batch runs in a
    /// transaction of its own, so it is atomic: if one set fails, none is applied. Inside a
    /// transaction a failure aborts that transaction, as any failed statement does.
    async fn execute_many(&mut self, sql: &str, param_sets: ParamSets<'_>) -> Result<u64, Error> {
        // Every set is written to the socket before the first reply is read, so take them all.
        let param_sets: Vec<Vec<Value>> = param_sets.collect();
        if param_sets.is_empty() {
            return Ok(0);
        }
        let info = sql::scan(sql);
        info.check(param_sets.iter().map(Vec::len).max().unwrap_or(0))?;
        let txn = self.session.txn();
        if txn.is_none() || !info.effects.is_empty() {
            // Nothing safe to pipeline around (the server's last word on the transaction may be
            // stale, or the statement changes it): one by one, stopping at the first error.
            let mut total = 0;
            for params in param_sets {
                total += self.execute(sql, params).await?;
            }
            return Ok(total);
        }
        self.start()?;
        let wrap = txn == Some(TxnStatus::Idle);
        let Self {
            client,
            statements,
            io,
            unspecified,
            ..
        } = self;
        let result = io
            .drive(pipeline::run(
                client,
                statements,
                unspecified,
                sql,
                &info,
                &param_sets,
                wrap,
            ))
            .await;
        self.session
            .settle(Some(&mut self.statements), sql, &[], result)
    }

    async fn fetch_each(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        self.fetch_rows(sql, params, sink).await
    }

    fn fetch<'a>(&'a mut self, sql: &'a str, params: Vec<Value>) -> RowStream<'a> {
        let info = sql::scan(sql);
        if let Err(e) = info.check(params.len()).and_then(|()| self.start()) {
            return Box::pin(futures_lite::stream::once(Err(e)));
        }
        let Self {
            client,
            statements,
            io,
            session,
            unspecified,
            ..
        } = self;
        let client = &*client;
        let unspecified = &*unspecified;
        let max_param = info.max_param;
        let start: BoxFuture<'a, (Result<Started, Failure>, &'a mut Statements)> =
            Box::pin(async move {
                let info = SqlInfo {
                    max_param,
                    ..SqlInfo::default()
                };
                let result =
                    start_query(client, statements, sql, &info, &params, unspecified).await;
                (result, statements)
            });
        Box::pin(PgRows {
            io,
            session,
            sql,
            effects: info.effects,
            phase: Phase::Starting(start),
        })
    }

    fn begin_statement(&self, options: &TransactionOptions) -> Result<Cow<'static, str>, Error> {
        let mut sql = String::from("BEGIN");
        if let Some(level) = options.isolation_level() {
            sql.push_str(" ISOLATION LEVEL ");
            sql.push_str(level.as_sql());
        }
        if options.is_read_only() {
            sql.push_str(" READ ONLY");
        }
        if options.is_deferrable() {
            sql.push_str(" DEFERRABLE");
        }
        Ok(Cow::Owned(sql))
    }

    async fn ping(&mut self) -> Result<(), Error> {
        self.start()?;
        let result = self
            .io
            .drive(self.client.check_connection())
            .await
            .map_err(Failure::from);
        self.session.settle(None, "", &[], result)
    }

    async fn reset(&mut self) -> Result<(), Error> {
        if self.is_broken() {
            return Err(Error::connection(
                "the connection is broken and cannot be reset",
            ));
        }
        let interrupted = self.session.in_flight;
        self.session.in_flight = true;
        let Self {
            client,
            io,
            runtime,
            canceller,
            ..
        } = self;
        // Queued behind whatever is still in flight: when its reply arrives, every stale reply has
        // been read and discarded, and no transaction is open any more.
        let mut rollback = pin!(client.batch_execute("ROLLBACK"));
        let mut cancelled = false;
        let mut result = if interrupted {
            let grace = runtime.sleep(RESET_GRACE);
            let early = io
                .drive(futures_lite::future::or(
                    async { Some(rollback.as_mut().await) },
                    async {
                        grace.await;
                        None
                    },
                ))
                .await;
            match early {
                Some(result) => result,
                None => {
                    // Still busy (a long query whose future was dropped): ask the server to cancel it
                    // rather than wait for it. Best effort: without it we only wait longer.
                    cancelled = canceller.cancel_on(runtime).await.is_ok();
                    io.drive(rollback.as_mut()).await
                }
            }
        } else {
            io.drive(rollback.as_mut()).await
        };
        if cancelled {
            // The cancel request is a signal to the backend and may land late (PostgreSQL's
            // postmaster signals the backend and its process group): on the ROLLBACK, or as a flag
            // that cancels the next statement. Absorb it here rather than in the user's next query.
            for _ in 0..3 {
                if is_query_canceled(&result) {
                    result = io.drive(client.batch_execute("ROLLBACK")).await;
                    continue;
                }
                if result.is_ok() {
                    let probe = io.drive(client.batch_execute("SELECT 1")).await;
                    if is_query_canceled(&probe) {
                        continue;
                    }
                }
                break;
            }
        }
        if result.is_ok() && self.server.txn_status() != TxnStatus::Idle {
            // Never hand out a connection that the server says is still in a transaction.
            self.session.broken = true;
            return Err(Error::connection(
                "resetting the connection failed: the server still reports an open transaction \
                 after ROLLBACK",
            ));
        }
        match result {
            Ok(()) => {
                self.session.reset();
                Ok(())
            }
            Err(e) => {
                self.session.broken = true;
                Err(error::map(e).0.context("resetting the connection failed"))
            }
        }
    }

    /// The server's word, from the transaction status of the last ReadyForQuery message read:
    /// however `BEGIN` ran (the core's transactions, an application's own `BEGIN` through
    /// [`execute`](DriverConnection::execute), inside a multi-statement string or through
    /// [`with_client`](PgConnection::with_client)). While a request written is still unanswered (a
    /// statement that failed before its ReadyForQuery was read, a result left unread) that status
    /// may be stale, and this says `true` so that [`reset`](DriverConnection::reset) rolls back
    /// after the last reply.
    fn in_transaction(&self) -> bool {
        self.server_reported_transaction() || !self.server.settled()
    }

    fn is_broken(&self) -> bool {
        self.session.broken
            || (self.server.copy_in_open() && !self.copy_owned)
            || self.client.is_closed()
            || self.io.probe()
    }

    fn broken_error(&self) -> Option<Error> {
        self.io.end_reason().map(|_| self.ended_error())
    }

    async fn close(mut self: Box<Self>) -> Result<(), Error> {
        let conn = self.io.take_inline();
        let runtime = Arc::clone(&self.runtime);
        // Dropping the client ends the request queue; the connection then sends Terminate and
        // closes the socket once the replies still owed have been read.
        drop(self);
        if let Some(conn) = conn {
            let _ = anysql_core::RuntimeExt::timeout(&*runtime, CLOSE_TIMEOUT, conn).await;
        }
        Ok(())
    }

    fn cancel_handle(&self) -> Option<CancelHandle> {
        let canceller: Arc<dyn anysql_core::CancelQuery> = self.canceller.clone();
        Some(CancelHandle::new(canceller, Arc::clone(&self.runtime)))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    async fn copy_in(&mut self, sql: &str) -> Result<Box<dyn DriverCopyIn + '_>, Error> {
        crate::copy::copy_in(self, sql).await
    }

    async fn copy_out(&mut self, sql: &str) -> Result<ByteStream<'_>, Error> {
        crate::copy::copy_out(self, sql).await
    }

    async fn copy_in_rows(
        &mut self,
        table: &str,
        columns: &[&str],
    ) -> Result<Box<dyn DriverCopyRows + '_>, Error> {
        crate::copy::copy_in_rows(self, table, columns).await
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("server", &self.canceller.host())
            .field("drive", &self.io.mode())
            .field("unnamed_statements", &self.statements.unnamed())
            .field("cached_statements", &self.statements.len())
            .field("broken", &(self.session.broken || self.client.is_closed()))
            .finish_non_exhaustive()
    }
}

/// The stream of [`DriverConnection::fetch`].
struct PgRows<'a> {
    io: &'a mut Io,
    session: &'a mut Session,
    sql: &'a str,
    effects: Vec<TxnEffect>,
    phase: Phase<'a>,
}

enum Phase<'a> {
    Starting(BoxFuture<'a, (Result<Started, Failure>, &'a mut Statements)>),
    Streaming {
        rows: Pin<Box<tokio_postgres::RowStream>>,
        plan: Option<Arc<RowPlan>>,
        statements: &'a mut Statements,
    },
    Done,
}

impl Stream for PgRows<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Starting(start) => {
                    let (result, statements) =
                        match this.io.poll_with(cx, |cx| start.as_mut().poll(cx)) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(out) => out,
                        };
                    match result {
                        Ok((rows, plan)) => {
                            this.phase = Phase::Streaming {
                                rows: Box::pin(rows),
                                plan,
                                statements,
                            };
                        }
                        Err(failure) => {
                            this.phase = Phase::Done;
                            let error = this.session.settle(
                                Some(statements),
                                this.sql,
                                &[],
                                Err::<(), _>(failure),
                            );
                            return Poll::Ready(error.err().map(Err));
                        }
                    }
                }
                Phase::Streaming {
                    rows,
                    plan,
                    statements,
                } => {
                    let item = match this.io.poll_with(cx, |cx| rows.as_mut().poll_next(cx)) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(item) => item,
                    };
                    let outcome = match item {
                        Some(Ok(row)) => match decode(plan, &row) {
                            Ok(row) => return Poll::Ready(Some(Ok(row))),
                            // The rest of the result is discarded when the stream drops.
                            Err(e) => Err(Failure::Any(e)),
                        },
                        Some(Err(e)) => Err(Failure::Pg(e)),
                        None => Ok(()),
                    };
                    let result = this.session.settle(
                        Some(&mut **statements),
                        this.sql,
                        &this.effects,
                        outcome,
                    );
                    this.phase = Phase::Done;
                    return Poll::Ready(result.err().map(Err));
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }
}
