//! [`SqliteConnection`], the handle the pool holds, and the `run_sync` escape hatch.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anysql_core::{
    CancelHandle, CancelQuery, Columns, Connection, DriverConnection, Error, ParamSets, Row,
    RowSink, RowStream, SharedRuntime, TransactionOptions, Value,
};
use async_trait::async_trait;
use futures_core::Stream;

use crate::batch::{FlatParams, RowBatch};
use crate::error::worker_gone;
use crate::gate::WriterGate;
use crate::options::Config;
use crate::reply::{self, Wait};
use crate::statements::Sql;
use crate::statements::{Fetched, Statements};
use crate::worker::{
    self, BatchPart, Chunk, Command, Control, Response, Shared, WalWatch, WorkerCell,
};
use anysql_core::spin::{SpinPolicy, Waiters};

/// Parameter sets per command of an `execute_many`.
const EXECUTE_MANY_PART_SETS: usize = 256;
/// Rows per chunk of a streamed result.
const STREAM_CHUNK_ROWS: usize = 256;
/// Chunks a streamed result may hold ready before the worker waits for the consumer.
const STREAM_BUFFER_CHUNKS: usize = 2;
/// Statements a connection runs inline in a row before it lets its task yield once (tokio's own
/// budget is 128 operations per task poll; an inline point select takes a few microseconds, so this
/// yields about every 100–300 µs).
const INLINE_BUDGET: u32 = 128;
/// While another caller of the engine waits for its connection's thread, the longest a task runs
/// inline statements (and whatever it does between them) before it yields: the same bound that a
/// caller's spin inside `poll` keeps ([`Wait::inline`]). The waiting caller may share this task's
/// executor thread and can only run once this task returns `Pending`.
const SHARED_INLINE_SLICE: Duration = Duration::from_micros(25);

/// One SQLite connection: a handle to the dedicated thread that owns the `rusqlite::Connection`.
///
/// The pool holds these; applications meet them through [`SqliteConnectionExt::run_sync`] or
/// [`Connection::driver_connection`], to run blocking rusqlite code on the connection's thread.
///
/// Dropping it ends the thread once its current command is done (a running statement is
/// interrupted); [`close`](DriverConnection::close) does the same and waits for it.
pub struct SqliteConnection {
    commands: crossbeam_channel::Sender<Command>,
    shared: Arc<Shared>,
    /// The worker, for statements that run inline.
    worker: Arc<WorkerCell>,
    thread: Option<JoinHandle<()>>,
    runtime: SharedRuntime,
    config: Arc<Config>,
    spin: SpinPolicy,
    waiters: Arc<Waiters>,
    statements: Statements,
    seq: u64,
    /// Statements run inline since this connection last went through its thread or yielded, and
    /// when the first of them that ran beside another waiting caller started.
    turns: Turns,
    #[cfg(test)]
    gate: Option<Arc<WriterGate>>,
}

impl SqliteConnection {
    /// Starts the worker thread, which opens the database.
    pub(crate) async fn connect(
        config: Arc<Config>,
        writer_gate: Option<Arc<WriterGate>>,
        wal_watch: Arc<WalWatch>,
        waiters: Arc<Waiters>,
        runtime: SharedRuntime,
    ) -> Result<Self, Error> {
        let (commands, receiver) = crossbeam_channel::unbounded();
        let shared = Shared::new();
        let worker = Arc::new(WorkerCell::default());
        let (opened, reply) = reply::channel();
        #[cfg(test)]
        let gate = writer_gate.clone();
        let thread = worker::spawn(
            Arc::clone(&config),
            writer_gate,
            wal_watch,
            Arc::clone(&shared),
            Arc::clone(&worker),
            receiver,
            opened,
        )
        .map_err(|e| {
            Error::connection(format!(
                "cannot start a thread for a sqlite connection: {e}"
            ))
        })?;
        // Opening touches the disk: no busy-polling.
        let (result, _) = Wait::new(reply, Instant::now(), Duration::ZERO).await;
        result.map_err(|_| worker_gone())??;
        Ok(SqliteConnection {
            commands,
            shared,
            worker,
            thread: Some(thread),
            runtime,
            spin: SpinPolicy::new(config.busy_poll),
            waiters,
            config,
            statements: Statements::default(),
            seq: 0,
            turns: Turns::default(),
            #[cfg(test)]
            gate,
        })
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    #[cfg(test)]
    pub(crate) fn worker_cell(&self) -> &Arc<WorkerCell> {
        &self.worker
    }

    /// Whether the worker has taken every command sent off its queue.
    #[cfg(test)]
    pub(crate) fn all_commands_taken(&self) -> bool {
        self.commands.is_empty()
    }

    /// The connector's writer gate, if it has one.
    #[cfg(test)]
    pub(crate) fn writer_gate(&self) -> Option<&Arc<WriterGate>> {
        self.gate.as_ref()
    }

    /// Sends the command made for the next sequence number and waits for its reply. With
    /// `abandon`, dropping the wait tells the worker to skip or stop that command.
    async fn call(
        &mut self,
        abandon: bool,
        command: impl FnOnce(u64) -> Command,
    ) -> Result<Response, Error> {
        let seq = self.next_seq();
        self.send(command(seq))?;
        self.reply(seq, abandon).await
    }

    /// The sequence number of the next command.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| worker_gone())
    }

    /// Waits for the reply to command `seq`. With `abandon`, dropping the wait tells the worker to
    /// skip or stop that command.
    async fn reply(&mut self, seq: u64, abandon: bool) -> Result<Response, Error> {
        let sent_at = Instant::now();
        let mut guard = AbandonOnDrop {
            shared: &self.shared,
            seq: abandon.then_some(seq),
        };
        let reply = next_reply(&self.shared, &self.waiters, &mut self.spin, seq, sent_at).await;
        guard.seq = None;
        reply
    }

    /// The command of a fetch of up to `limit` rows under the next sequence number (returned
    /// too); `pipelined` sends them back in batches. Also whether the statement's runs have been
    /// quick lately.
    fn fetch_command(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        limit: usize,
        pipelined: bool,
    ) -> (Command, u64, bool) {
        let (stmt, known_columns, quick) = self.statements.lookup_quick(sql);
        let seq = self.next_seq();
        let command = Command::Fetch {
            seq,
            sql: stmt,
            known_columns,
            params: params.into(),
            limit,
            pipelined,
        };
        (command, seq, quick)
    }

    /// Fetches up to `limit` rows in one reply.
    async fn fetch_rows(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        limit: usize,
    ) -> Result<Fetched, Error> {
        self.take_turns().await;
        let (command, seq, quick) = self.fetch_command(sql, params, limit, false);
        match self.run(command, seq, quick).await? {
            Response::Fetched(fetched) => Ok(fetched),
            _ => Err(mixed_up()),
        }
    }

    /// Runs `command`, numbered `seq`: inline, on this thread, if its statement has been `quick`
    /// lately and the worker may run it so (see the crate docs, Inline statements), else on the
    /// worker's thread. Dropping the wait for the thread tells the worker to skip or stop it.
    ///
    /// Inline runs go on while other callers of the engine wait for their connections' threads,
    /// but then in slices of at most [`SHARED_INLINE_SLICE`] between two yields
    /// ([`take_turns`](Self::take_turns)): a waiting caller (a writer, say) may share this task's
    /// executor thread, and a task whose statements all run inline never returns `Pending` on its
    /// own, so it would not get to run.
    async fn run(&mut self, command: Command, seq: u64, quick: bool) -> Result<Response, Error> {
        if quick {
            // The thread holds the lock while it runs a command; then the command waits its turn.
            if let Ok(mut worker) = self.worker.try_lock() {
                if let Some(worker) = worker.as_mut() {
                    self.turns.before_inline(&self.waiters);
                    if let Some(response) = worker.run_inline(&command, seq - 1) {
                        self.turns.streak += 1;
                        if self.shared.sleeps_through_lingering() {
                            // Cannot fail while the worker is alive (it holds the receiver).
                            let _ = self.commands.send(Command::Wake);
                        }
                        return response;
                    }
                }
            }
        }
        self.turns = Turns::default();
        self.send(command)?;
        self.reply(seq, true).await
    }

    /// Lets the executor run other tasks once this connection's inline statements used up their
    /// turn ([`Turns::used_up`]), as tokio's own resources do after a budget of operations: a loop
    /// of inline statements would otherwise hold its executor thread for as long as it runs.
    /// Called before a statement's sequence number is taken, so that a future dropped here leaves
    /// nothing behind.
    async fn take_turns(&mut self) {
        if self.turns.used_up() {
            self.turns = Turns::default();
            futures_lite::future::yield_now().await;
        }
    }

    /// Runs a query and passes every row to `sink`, decoding each batch of rows while the worker
    /// reads the next, until `sink` says stop.
    async fn fetch_pipelined(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        let (command, seq, _) = self.fetch_command(sql, params, usize::MAX, true);
        self.send(command)?;
        // Until the last reply, dropping this future, failing in `sink` or a `sink` that wants no
        // more rows stops the worker.
        let mut guard = AbandonOnDrop {
            shared: &self.shared,
            seq: Some(seq),
        };
        let mut waiting_since = Instant::now();
        loop {
            let reply = next_reply(
                &self.shared,
                &self.waiters,
                &mut self.spin,
                seq,
                waiting_since,
            );
            match reply.await? {
                Response::Partial(fetched) => {
                    if self.statements.each(sql, fetched, sink)?.is_break() {
                        return Ok(());
                    }
                    waiting_since = Instant::now();
                }
                Response::Fetched(fetched) => {
                    guard.seq = None;
                    return self.statements.each(sql, fetched, sink).map(drop);
                }
                _ => return Err(mixed_up()),
            }
        }
    }

    async fn control(&mut self, op: Control) -> Result<(), Error> {
        match self.call(false, |seq| Command::Control { seq, op }).await? {
            Response::Done => Ok(()),
            _ => Err(mixed_up()),
        }
    }

    /// Runs `f` with the `rusqlite::Connection`, on the connection's own thread, and returns its
    /// result: the escape hatch for anything anysql does not cover (custom functions, backups,
    /// blobs, pragmas with results, …).
    ///
    /// `f` runs after any command sent before, and before any sent after. A panic in `f` is caught
    /// and returned as an [`ErrorKind::Panic`](anysql_core::ErrorKind::Panic) error; any open
    /// transaction is then rolled back and the connection goes on serving.
    ///
    /// `f` does not take the engine's writer gate (see the crate docs): its writes wait for other
    /// writers through `busy_timeout` only.
    ///
    /// Leave the connection as you found it: in particular, do not leave a transaction open that
    /// anysql does not know about (use `rusqlite::Transaction`, which rolls back when dropped).
    /// Dropping the returned future does not stop `f`.
    pub fn run_sync<F, R>(&mut self, f: F) -> impl Future<Output = Result<R, Error>> + Send + '_
    where
        F: FnOnce(&mut rusqlite::Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let job = Box::new(move |conn: &mut rusqlite::Connection| {
            Box::new(f(conn)) as Box<dyn Any + Send>
        });
        async move {
            match self.call(false, |seq| Command::Run { seq, job }).await? {
                Response::Any(value) => value
                    .downcast::<R>()
                    .map(|value| *value)
                    .map_err(|_| mixed_up()),
                _ => Err(mixed_up()),
            }
        }
    }
}

/// How long a connection's task has been running inline statements without returning `Pending`.
#[derive(Debug, Default)]
struct Turns {
    /// Statements run inline since the task last yielded or went through the connection's thread.
    streak: u32,
    /// When the first of them that ran while another caller of the engine waited started.
    shared_since: Option<Instant>,
}

impl Turns {
    /// Notes that an inline statement is about to start, beside the engine's other `waiters`.
    fn before_inline(&mut self, waiters: &Waiters) {
        if self.shared_since.is_none() && !waiters.is_empty() {
            self.shared_since = Some(Instant::now());
        }
    }

    /// Whether the task should yield before its next statement: after [`INLINE_BUDGET`]
    /// statements in a row, or, once another caller waited beside them, after
    /// [`SHARED_INLINE_SLICE`].
    fn used_up(&self) -> bool {
        self.streak >= INLINE_BUDGET
            || self
                .shared_since
                .is_some_and(|since| since.elapsed() >= SHARED_INLINE_SLICE)
    }
}

/// Waits for the next reply to command `seq`, sent (or last answered) at `since`, busy-polling as
/// `spin` and the engine's other `waiters` allow.
async fn next_reply(
    shared: &Shared,
    waiters: &Waiters,
    spin: &mut SpinPolicy,
    seq: u64,
    since: Instant,
) -> Result<Response, Error> {
    let (_waiting, alone) = waiters.enter();
    let (reply, took) = Wait::new(shared.mailbox.ticket(seq), since, spin.next())
        .inline(alone)
        .await;
    spin.record(took);
    reply.map_err(|_| worker_gone())?
}

/// A reply of the wrong kind: cannot happen, but is an error rather than a panic.
fn mixed_up() -> Error {
    Error::connection(
        "the sqlite connection mixed up its replies (a bug in anysql-sqlite); drop this connection",
    )
}

/// Sends [`Shared::abandon`] for a command whose caller stopped waiting.
struct AbandonOnDrop<'a> {
    shared: &'a Shared,
    seq: Option<u64>,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq {
            self.shared.abandon(seq);
        }
    }
}

#[async_trait]
impl DriverConnection for SqliteConnection {
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        self.take_turns().await;
        let (stmt, _, quick) = self.statements.lookup_quick(sql);
        let seq = self.next_seq();
        let command = Command::Execute {
            seq,
            sql: stmt,
            params: params.into(),
        };
        match self.run(command, seq, quick).await? {
            Response::Executed { rows, quick } => {
                self.statements.record_quick(sql, quick);
                Ok(rows)
            }
            _ => Err(mixed_up()),
        }
    }

    async fn execute_many(&mut self, sql: &str, param_sets: ParamSets<'_>) -> Result<u64, Error> {
        let mut sets = param_sets.peekable();
        if sets.peek().is_none() {
            return Ok(0);
        }
        let (mut sql, _) = self.statements.lookup(sql);
        let id = sql.id();
        let seq = self.next_seq();
        // The sets go in parts: the worker runs each while this side converts the next.
        let mut offset = 0;
        loop {
            let mut part = FlatParams::default();
            let mut failed = None;
            for set in sets.by_ref().take(EXECUTE_MANY_PART_SETS) {
                if let Err(e) = part.push(set) {
                    failed = Some(e.context(format_args!("parameter set {}", offset + part.len())));
                    break;
                }
            }
            let next = offset + part.len();
            let last = failed.is_some() || sets.peek().is_none();
            self.send(Command::ExecuteMany {
                seq,
                sql: std::mem::replace(&mut sql, Sql::Known(id)),
                sets: part,
                part: BatchPart {
                    offset,
                    last,
                    failed,
                },
            })?;
            if last {
                break;
            }
            offset = next;
        }
        match self.reply(seq, true).await? {
            Response::Count(n) => Ok(n),
            _ => Err(mixed_up()),
        }
    }

    async fn fetch_each(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        self.fetch_pipelined(sql, params, sink).await
    }

    /// One row in one reply, which may run inline: no pipelining.
    async fn fetch_optional(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Option<Row>, Error> {
        let fetched = self.fetch_rows(sql, params, 1).await?;
        self.statements.first_row(sql, fetched)
    }

    fn fetch<'a>(&'a mut self, sql: &'a str, params: Vec<Value>) -> RowStream<'a> {
        let (sql, _) = self.statements.lookup(sql);
        let seq = self.next_seq();
        let (rows, chunks) = async_channel::bounded(STREAM_BUFFER_CHUNKS);
        let command = Command::Stream {
            seq,
            sql,
            params: params.into(),
            chunk: STREAM_CHUNK_ROWS,
            rows,
        };
        let error = self.commands.send(command).err().map(|_| worker_gone());
        Box::pin(SqliteRows {
            chunks: Box::pin(chunks),
            columns: None,
            current: None,
            next_row: 0,
            error,
            abandon: Some((&*self.shared, seq)),
        })
    }

    /// `BEGIN`, or `BEGIN IMMEDIATE` for an [`immediate`](TransactionOptions::immediate)
    /// transaction, which waits for the connection's turn to write first (see the crate docs,
    /// Writers take turns). SQLite is always serializable; the isolation level and read-only flag
    /// change nothing.
    fn begin_statement(&self, options: &TransactionOptions) -> Result<Cow<'static, str>, Error> {
        Ok(Cow::Borrowed(if options.is_immediate() {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        }))
    }

    async fn ping(&mut self) -> Result<(), Error> {
        self.control(Control::Ping).await
    }

    async fn reset(&mut self) -> Result<(), Error> {
        self.control(Control::Reset).await
    }

    fn in_transaction(&self) -> bool {
        self.shared.in_transaction()
    }

    fn is_broken(&self) -> bool {
        !self.shared.is_alive()
    }

    async fn close(mut self: Box<Self>) -> Result<(), Error> {
        let (reply, receiver) = reply::channel();
        let result = match self.commands.send(Command::Close { reply }) {
            Ok(()) => Wait::new(receiver, Instant::now(), Duration::ZERO)
                .await
                .0
                .unwrap_or(Ok(())),
            // The thread is gone already.
            Err(_) => Ok(()),
        };
        if let Some(thread) = self.thread.take() {
            // The worker returns right after it replies, so this does not block for long.
            let _ = thread.join();
        }
        result
    }

    fn cancel_handle(&self) -> Option<CancelHandle> {
        let canceller = Arc::new(Canceller {
            shared: Arc::clone(&self.shared),
        });
        Some(CancelHandle::new(canceller, Arc::clone(&self.runtime)))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        // Nobody will read the result of whatever still runs: stop it, so the thread ends soon.
        // Dropping `commands` then ends the thread, which closes the database.
        self.shared.cancel_running();
    }
}

impl fmt::Debug for SqliteConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnection")
            .field("database", &format_args!("{}", self.config.describe()))
            .field("alive", &self.shared.is_alive())
            .finish_non_exhaustive()
    }
}

/// Interrupts the statement a connection is running, from anywhere.
struct Canceller {
    shared: Arc<Shared>,
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCanceller").finish_non_exhaustive()
    }
}

#[async_trait]
impl CancelQuery for Canceller {
    async fn cancel(&self, _runtime: &SharedRuntime) -> Result<(), Error> {
        self.shared.cancel_running();
        Ok(())
    }
}

/// The stream behind [`DriverConnection::fetch`]: chunks of rows from the worker.
struct SqliteRows<'a> {
    chunks: Pin<Box<async_channel::Receiver<Chunk>>>,
    columns: Option<Arc<Columns>>,
    current: Option<RowBatch>,
    next_row: usize,
    error: Option<Error>,
    /// The command to abandon if the stream is dropped before its end.
    abandon: Option<(&'a Shared, u64)>,
}

impl SqliteRows<'_> {
    /// The next row of the current chunk, if it has one left.
    fn next_in_chunk(&mut self) -> Option<Result<Row, Error>> {
        let batch = self.current.as_ref()?;
        if self.next_row >= batch.len() {
            self.current = None;
            return None;
        }
        let index = self.next_row;
        self.next_row += 1;
        let Some(columns) = &self.columns else {
            return Some(Err(Error::connection(
                "the sqlite connection streamed rows without their columns (a bug in anysql-sqlite); \
                 drop this connection",
            )));
        };
        Some(
            batch
                .values(index, columns)
                .map(|values| Row::new(Arc::clone(columns), values)),
        )
    }
}

impl Stream for SqliteRows<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.next_in_chunk() {
                Some(Ok(row)) => return Poll::Ready(Some(Ok(row))),
                Some(Err(error)) => {
                    // A row that cannot be decoded ends the stream, as a database error would.
                    this.current = None;
                    if let Some((shared, seq)) = this.abandon.take() {
                        shared.abandon(seq);
                    }
                    return Poll::Ready(Some(Err(error)));
                }
                None => {}
            }
            if let Some(error) = this.error.take() {
                this.abandon = None;
                return Poll::Ready(Some(Err(error)));
            }
            if this.abandon.is_none() {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.chunks.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    if chunk.columns.is_some() {
                        this.columns = chunk.columns;
                    }
                    this.current = Some(chunk.rows);
                    this.next_row = 0;
                }
                // The worker's last word on this statement.
                Some(Err(error)) => this.error = Some(error),
                None => this.abandon = None,
            }
        }
    }
}

impl Drop for SqliteRows<'_> {
    fn drop(&mut self) {
        if let Some((shared, seq)) = self.abandon.take() {
            shared.abandon(seq);
        }
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for anysql_core::Connection {}
}

/// [`SqliteConnection::run_sync`] on an anysql [`Connection`] (and, through `Deref`, on a
/// `Transaction`).
///
/// ```
/// use anysql_sqlite::{from_rusqlite, SqliteConnectionExt};
///
/// # async fn demo(conn: &mut anysql_core::Connection) -> Result<(), anysql_core::Error> {
/// let version: String = conn
///     .run_sync(|c| c.query_row("SELECT sqlite_version()", [], |r| r.get(0)).map_err(from_rusqlite))
///     .await??;
/// # Ok(()) }
/// ```
///
/// The closure's own result comes back inside anysql's `Result`, hence the `??`;
/// [`from_rusqlite`](crate::from_rusqlite) turns rusqlite's errors into anysql's.
pub trait SqliteConnectionExt: private::Sealed {
    /// Runs `f` with the `rusqlite::Connection` on the connection's thread; see
    /// [`SqliteConnection::run_sync`].
    ///
    /// Fails with [`ErrorKind::Configuration`](anysql_core::ErrorKind::Configuration) if the
    /// connection is not to SQLite.
    fn run_sync<F, R>(&mut self, f: F) -> impl Future<Output = Result<R, Error>> + Send + '_
    where
        F: FnOnce(&mut rusqlite::Connection) -> R + Send + 'static,
        R: Send + 'static;
}

impl SqliteConnectionExt for Connection {
    async fn run_sync<F, R>(&mut self, f: F) -> Result<R, Error>
    where
        F: FnOnce(&mut rusqlite::Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        // Made ready first, as before any statement: an abandoned transaction is rolled back.
        match self.ready_driver_connection::<SqliteConnection>().await? {
            Some(conn) => conn.run_sync(f).await,
            None => Err(Error::configuration(
                "run_sync needs a sqlite connection, but this connection is to another database; \
                 check the engine's url",
            )),
        }
    }
}
