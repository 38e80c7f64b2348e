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
use postgres_types::Type;
use tokio_postgres::Client;

use crate::cancel::PgCanceller;
use crate::deferred::{self, after_carry, not_started, Deferred, Meet};
use crate::error;
use crate::io::Io;
use crate::options::DriveMode;
use crate::pipeline;
use crate::request::{decode, execute_one, start_query, BoxFuture, Started};
use crate::session::{is_query_canceled, rolled_back_error, Session};
use crate::socket::{BeginOutcome, BeginProgress, SocketHandle, TxnStatus};
use crate::sql::{self, SqlInfo, TxnEffect};
use crate::statements::{Failure, Statements};
use crate::types::{self, RowPlan};

/// How long [`reset`](DriverConnection::reset) waits for an interrupted operation to finish by
/// itself before it sends a cancel request.
const RESET_GRACE: Duration = Duration::from_millis(50);

/// How long [`close`](DriverConnection::close) waits for the server to acknowledge.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// A transaction's `BEGIN`, deferred to its first statement.
    deferred: Deferred,
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
            deferred: Deferred::None,
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
    ///
    /// In a transaction whose `BEGIN` is still deferred (see the crate docs, Transactions), the
    /// `BEGIN` is sent first, alone. Should it fail, `f` still runs, outside any transaction, and
    /// the transaction's next statement reports that it never started.
    pub async fn with_client<T, F>(&mut self, f: F) -> T
    where
        F: for<'c> FnOnce(&'c Client) -> Pin<Box<dyn Future<Output = T> + Send + 'c>>,
    {
        if !matches!(self.deferred, Deferred::None) {
            let _ = self.begin_now().await;
        }
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

    /// Learns what became of a `BEGIN` that an operation whose future was dropped had on its
    /// way: a request queued behind it is answered after it. The transaction is open if the
    /// server says so; otherwise the `BEGIN` did not run (or failed, unreported, and the statement
    /// sent with it did not run either), and is pending again.
    async fn resolve_carried(&mut self) -> Result<(), Error> {
        let (Deferred::Carried(begin) | Deferred::Sending(begin)) = &self.deferred else {
            return Ok(());
        };
        let begin = begin.clone();
        self.start()?;
        let Self { client, io, .. } = self;
        let result = io
            .drive(client.simple_query(""))
            .await
            .map(drop)
            .map_err(Failure::from);
        self.session.settle(None, "", &[], result)?;
        let progress = self.server.take_begin();
        if matches!(
            progress,
            BeginProgress::Awaiting | BeginProgress::Done(BeginOutcome::Confused)
        ) || !self.server.settled()
        {
            self.session.broken = true;
            self.deferred = Deferred::None;
            return Err(Error::connection(
                "the connection is out of step with the server (a deferred BEGIN went unanswered);                  acquire a new connection",
            ));
        }
        self.session.sync();
        self.deferred = if self.server.txn_status() == TxnStatus::Idle {
            Deferred::Pending(begin)
        } else {
            Deferred::None
        };
        Ok(())
    }

    /// Sends the pending `BEGIN` alone. If it fails, the transaction never started.
    async fn send_begin(&mut self, begin: String) -> Result<(), Error> {
        let info = sql::scan(&begin);
        self.deferred = Deferred::Sending(begin.clone());
        let result = self.execute_now(&begin, &info, Vec::new()).await;
        self.deferred = match &result {
            Err(_) if !self.session.broken => Deferred::Failed,
            _ => Deferred::None,
        };
        result.map(drop)
    }

    /// Before an operation that cannot carry a deferred `BEGIN`: sends it first.
    async fn begin_now(&mut self) -> Result<(), Error> {
        self.resolve_carried().await?;
        match std::mem::take(&mut self.deferred) {
            Deferred::None => Ok(()),
            Deferred::Pending(begin) => self.send_begin(begin).await,
            other => {
                self.deferred = other;
                Err(not_started())
            }
        }
    }

    /// Before the statement `sql` while the transaction's `BEGIN` is deferred: carries the
    /// `BEGIN` with it (arms the socket), sends it first, or answers the statement itself
    /// (`Some`: a `COMMIT` or `ROLLBACK` of the transaction).
    async fn meet_deferred(
        &mut self,
        sql: &str,
        info: &SqlInfo,
        extended: bool,
    ) -> Result<Option<u64>, Error> {
        self.resolve_carried().await?;
        let how = deferred::meet(sql, info, extended);
        match std::mem::take(&mut self.deferred) {
            Deferred::None => Ok(None),
            Deferred::Pending(begin) => match how {
                // Nothing was sent: nothing to undo.
                Meet::Rollback => Ok(Some(0)),
                Meet::Commit => {
                    let both = format!("{begin}; {sql}");
                    let both_info = sql::scan(&both);
                    self.deferred = Deferred::Sending(begin);
                    let result = self.execute_now(&both, &both_info, Vec::new()).await;
                    self.deferred = Deferred::None;
                    result.map(Some)
                }
                Meet::Carry if self.session.txn() == Some(TxnStatus::Idle) => {
                    self.server.arm_begin(&begin);
                    self.deferred = Deferred::Carried(begin);
                    Ok(None)
                }
                Meet::Carry | Meet::Flush => self.send_begin(begin).await.map(|()| None),
            },
            Deferred::Failed => {
                if info.effects.as_slice() == [TxnEffect::Rollback] {
                    Ok(Some(0))
                } else if info.effects.as_slice() == [TxnEffect::Commit] {
                    Err(rolled_back_error())
                } else {
                    self.deferred = Deferred::Failed;
                    Err(not_started())
                }
            }
            // Resolved above.
            other @ (Deferred::Carried(_) | Deferred::Sending(_)) => {
                self.deferred = other;
                Err(not_started())
            }
        }
    }

    /// Runs a statement, the transaction's `BEGIN` settled.
    async fn execute_now(
        &mut self,
        sql: &str,
        info: &SqlInfo,
        params: Vec<Value>,
    ) -> Result<u64, Error> {
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
                info,
                &params,
                unspecified,
            ))
            .await;
        after_carry(&mut self.deferred, &self.server, &mut self.session);
        self.session
            .settle(Some(&mut self.statements), sql, &info.effects, result)
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
        if !matches!(self.deferred, Deferred::None)
            && self.meet_deferred(sql, &info, true).await?.is_some()
        {
            return Ok(());
        }
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
        after_carry(&mut self.deferred, &self.server, &mut self.session);
        self.session
            .settle(Some(&mut self.statements), sql, &info.effects, result)
    }

    /// [`fetch`](DriverConnection::fetch), the transaction's `BEGIN` settled (or armed).
    fn fetch_now<'a>(
        &'a mut self,
        sql: &'a str,
        info: SqlInfo,
        params: Vec<Value>,
    ) -> RowStream<'a> {
        if let Err(e) = self.start() {
            return Box::pin(futures_lite::stream::once(Err(e)));
        }
        let Self {
            client,
            statements,
            io,
            session,
            unspecified,
            deferred,
            server,
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
            deferred,
            server,
            sql,
            effects: info.effects,
            phase: Phase::Starting(start),
        })
    }
}

#[async_trait]
impl DriverConnection for PgConnection {
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let info = sql::scan(sql);
        info.check(params.len())?;
        if !matches!(self.deferred, Deferred::None) {
            if let Some(done) = self.meet_deferred(sql, &info, !params.is_empty()).await? {
                return Ok(done);
            }
        }
        self.execute_now(sql, &info, params).await
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
        if !matches!(self.deferred, Deferred::None) {
            // Every set is sent at once: if a `BEGIN` carried by the first failed, the others
            // would run outside the transaction. So it goes first, alone.
            self.begin_now().await?;
        }
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

    /// Sends the statements and `end` in one write and reads their replies together: one round
    /// trip, where the statements' prepared statements are cached (a statement that must be
    /// prepared first waits for the ones before it, and goes alone). Each statement is its own
    /// request, so after a failed one the server refuses the rest (the transaction is aborted)
    /// and turns a `COMMIT` into a rollback. Where pipelining is not safe (the server's
    /// transaction status is not known to be an open, healthy transaction, or a statement
    /// controls the transaction itself), the statements run one by one.
    async fn execute_pipeline(
        &mut self,
        statements: Vec<(&str, Vec<Value>)>,
        end: &str,
    ) -> Result<Vec<u64>, Error> {
        let count = statements.len();
        let mut infos = Vec::with_capacity(count);
        for (index, (sql, params)) in statements.iter().enumerate() {
            let info = sql::scan(sql);
            info.check(params.len())
                .map_err(|e| anysql_core::pipeline_statement_failed(index, count, e))?;
            infos.push(info);
        }
        if !matches!(self.deferred, Deferred::None) {
            // As in `execute_many`: a `BEGIN` carried by the first statement must not fail with
            // the others already sent, to run outside the transaction. So it goes first, alone.
            self.begin_now().await?;
        }
        if self.session.txn() != Some(TxnStatus::InTransaction)
            || infos.iter().any(|info| !info.effects.is_empty())
        {
            return anysql_core::execute_pipeline_one_by_one(self, statements, end).await;
        }
        self.start()?;
        let Self {
            client,
            statements: cache,
            io,
            unspecified,
            server,
            ..
        } = self;
        let join = (io.is_inline() && server.settled()).then_some(&*server);
        let result = io
            .drive(pipeline::run_statements(
                client,
                cache,
                unspecified,
                &statements,
                &infos,
                end,
                join,
            ))
            .await;
        let end_effects = sql::scan(end).effects;
        match result {
            Ok(changed) => {
                self.session
                    .settle(Some(&mut self.statements), "", &end_effects, Ok(changed))
            }
            Err((index, failure)) => {
                // The failed statement's SQL, for the statement cache. Whether the transaction
                // is still open after it is the server's word, read with the last reply.
                let (sql, effects) = match statements.get(index) {
                    Some((sql, _)) => (*sql, &[][..]),
                    None => (end, &end_effects[..]),
                };
                self.session
                    .settle(Some(&mut self.statements), sql, effects, Err(failure))
                    .map_err(|error| {
                        if index < count {
                            anysql_core::pipeline_statement_failed(index, count, error)
                        } else {
                            error
                        }
                    })
            }
        }
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
        if let Err(e) = info.check(params.len()) {
            return Box::pin(futures_lite::stream::once(Err(e)));
        }
        match &self.deferred {
            Deferred::None => self.fetch_now(sql, info, params),
            // The common case needs no await: arm the socket and go.
            Deferred::Pending(begin)
                if deferred::meet(sql, &info, true) == Meet::Carry
                    && self.session.txn() == Some(TxnStatus::Idle) =>
            {
                let begin = begin.clone();
                self.server.arm_begin(&begin);
                self.deferred = Deferred::Carried(begin);
                self.fetch_now(sql, info, params)
            }
            _ => {
                let start = async move {
                    match self.meet_deferred(sql, &info, true).await {
                        Ok(None) => self.fetch_now(sql, info, params),
                        Ok(Some(_)) => Box::pin(futures_lite::stream::empty()) as RowStream<'a>,
                        Err(e) => Box::pin(futures_lite::stream::once(Err(e))),
                    }
                };
                Box::pin(futures_lite::stream::once_future(start).flatten())
            }
        }
    }

    /// Defers the `BEGIN` to the transaction's first statement, when the session is idle by the
    /// server's current word (see the crate docs, Transactions); otherwise runs it now.
    async fn begin(&mut self, options: &TransactionOptions) -> Result<(), Error> {
        let sql = self.begin_statement(options)?;
        if matches!(self.deferred, Deferred::None)
            && !self.session.broken
            && !self.server.copy_in_open()
            && self.session.txn() == Some(TxnStatus::Idle)
        {
            self.deferred = Deferred::Pending(sql.into_owned());
            return Ok(());
        }
        self.execute(&sql, Vec::new()).await.map(drop)
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
        // Every request written before the ROLLBACK has been answered (or the connection is
        // discarded): whatever `BEGIN` was deferred or on its way is over.
        self.deferred = Deferred::None;
        self.server.clear_begin();
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
        self.server_reported_transaction()
            || !self.server.settled()
            || !matches!(self.deferred, Deferred::None)
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
        self.begin_now().await?;
        crate::copy::copy_in(self, sql).await
    }

    async fn copy_out(&mut self, sql: &str) -> Result<ByteStream<'_>, Error> {
        self.begin_now().await?;
        crate::copy::copy_out(self, sql).await
    }

    async fn copy_in_rows(
        &mut self,
        table: &str,
        columns: &[&str],
    ) -> Result<Box<dyn DriverCopyRows + '_>, Error> {
        self.begin_now().await?;
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
    deferred: &'a mut Deferred,
    server: &'a SocketHandle,
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
                            after_carry(this.deferred, this.server, this.session);
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
                    after_carry(this.deferred, this.server, this.session);
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
