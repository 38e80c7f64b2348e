//! The thread that owns one rusqlite connection and serves its commands, one at a time, in order.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anysql_core::{Columns, DatabaseError, Error, Value};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{ffi, InterruptHandle};

use crate::batch::{Decimals, FlatParams, RowBatch};
use crate::error::{self, from_rusqlite};
use crate::gate::{GateHeld, WriterGate};
use crate::options::{Config, Target};
use crate::reply::{self, Mailbox};
use crate::statements::{Fetched, FetchedRows, Registry, Sql};
use crate::value::bind;
use anysql_core::spin::{spin_until, CacheLine, Pause, SpinPolicy};
use anysql_core::sql::has_more_statements;

mod batch;
mod idle;
mod linger;
mod open;
mod protocol;
mod transaction;
mod writes;

use idle::Idle;
pub(crate) use linger::WalWatch;
pub(crate) use open::open;
pub(crate) use protocol::*;
use transaction::{aborted, Txn, TxnControl};
use writes::Writes;

/// The `execute_many` whose parts the worker is running.
struct Batch {
    seq: u64,
    /// Whether it runs in a transaction of its own (else in a savepoint of the caller's).
    outer: bool,
    total: u64,
    failed: Option<Error>,
}

/// State shared between a connection's handle, its cancel handle and its worker.
#[derive(Default)]
pub(crate) struct Shared {
    /// False once the worker thread has ended. Read by the caller before every operation, so kept
    /// away from the fields the worker writes for every command.
    alive: CacheLine<AtomicBool>,
    /// The sequence number of the last command whose caller gave up on it.
    cancelled: AtomicU64,
    /// Whether SQLite was outside autocommit mode (inside a transaction, however it was opened)
    /// when the worker finished its last command, or the caller's transaction was aborted and not
    /// yet rolled back. Written after every command, before its reply goes out.
    in_transaction: AtomicBool,
    running: Mutex<Running>,
    interrupt: OnceLock<InterruptHandle>,
    /// Where the worker posts its replies.
    pub(crate) mailbox: Mailbox<Result<Response, Error>>,
    /// The frames in the write-ahead log after this connection's last commit, as SQLite's WAL
    /// hook reported them: the connection's thread checkpoints once they reach
    /// [`CHECKPOINT_FRAMES`] (see [`Worker::checkpoint_if_due`]).
    wal_frames: AtomicI32,
    /// Checkpoints the connection's thread ran, for tests.
    #[cfg(test)]
    pub(crate) checkpoints: AtomicU64,
    /// Rows the worker has handed to streams, for tests of back-pressure.
    #[cfg(test)]
    pub(crate) streamed_rows: AtomicU64,
    /// Whether a point read lingers, its read transaction open ([`Worker::end_lingering`]): the
    /// thread then sleeps at most [`LINGER_LIMIT`](linger::LINGER_LIMIT) before it ends it.
    lingering: AtomicBool,
    /// Point reads left lingering so far: the thread leaves alone a read that is newer than the
    /// one it timed.
    lingered: AtomicU64,
    /// Whether the thread sleeps without a timeout, to be woken if a read starts lingering.
    asleep: AtomicBool,
    /// Statements that ran inline, for tests of inline statements.
    #[cfg(test)]
    pub(crate) inline_runs: AtomicU64,
    /// Makes every read-only fetch count as quick, however long it took, so that tests of inline
    /// reads do not depend on timing.
    #[cfg(test)]
    pub(crate) always_quick: AtomicBool,
}

/// The write-ahead log's length, in frames, from which a commit is followed by a checkpoint:
/// SQLite's own default for its automatic checkpoints, which this connection's WAL hook replaces.
const CHECKPOINT_FRAMES: i32 = 1000;

/// The statement command the worker is running, if any.
#[derive(Default)]
struct Running {
    /// Its sequence number; 0 when idle.
    seq: u64,
    /// Whether the connection was in autocommit mode when it started: only then may dropping its
    /// future interrupt it, because interrupting a statement inside a transaction makes SQLite roll
    /// back the whole transaction.
    autocommit: bool,
}

impl Shared {
    /// Whether SQLite reported an open transaction after the last command (see
    /// [`DriverConnection::in_transaction`](anysql_core::DriverConnection::in_transaction)).
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::Acquire)
    }

    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            alive: CacheLine(AtomicBool::new(true)),
            ..Shared::default()
        })
    }

    /// Whether the write-ahead log has grown long enough for a checkpoint.
    fn checkpoint_due(&self) -> bool {
        self.wal_frames.load(Ordering::Relaxed) >= CHECKPOINT_FRAMES
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.0.load(Ordering::Acquire)
    }

    fn running(&self) -> MutexGuard<'_, Running> {
        // Only plain stores happen under this lock; take the data either way.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interrupt(&self) {
        if let Some(handle) = self.interrupt.get() {
            handle.interrupt();
        }
    }

    /// The caller of command `seq` gave up on it (its future was dropped): skip it if it has not
    /// started, stop it between rows, and interrupt its statement if it runs in autocommit mode.
    ///
    /// The lock makes sure the interrupt can only land while command `seq` runs.
    pub(crate) fn abandon(&self, seq: u64) {
        let running = self.running();
        self.cancelled.store(seq, Ordering::Relaxed);
        if running.seq == seq && running.autocommit {
            self.interrupt();
        }
    }

    /// Cancels whatever statement command runs now, if any (the cancel handle, and dropping a
    /// connection).
    pub(crate) fn cancel_running(&self) {
        let running = self.running();
        if running.seq != 0 {
            self.cancelled.store(running.seq, Ordering::Relaxed);
            self.interrupt();
        }
    }

    fn is_cancelled(&self, seq: u64) -> bool {
        self.cancelled.load(Ordering::Relaxed) == seq
    }

    /// Marks command `seq` as running; false if its caller already gave up on it.
    fn start(&self, seq: u64, autocommit: bool) -> bool {
        let mut running = self.running();
        running.seq = seq;
        running.autocommit = autocommit;
        !self.is_cancelled(seq)
    }

    fn finish(&self) {
        self.running().seq = 0;
    }
}

/// Clears [`Shared::alive`] when the worker thread ends, however it ends.
struct AliveGuard(Arc<Shared>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.0.store(false, Ordering::Release);
        self.0.mailbox.close();
    }
}

/// Starts the worker thread of a new connection. It opens the database, puts the [`Worker`] in
/// `cell` and reports on `opened`.
pub(crate) fn spawn(
    config: Arc<Config>,
    writer_gate: Option<Arc<WriterGate>>,
    wal_watch: Arc<WalWatch>,
    shared: Arc<Shared>,
    cell: Arc<WorkerCell>,
    commands: crossbeam_channel::Receiver<Command>,
    opened: Reply<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("anysql-sqlite".to_owned())
        .spawn(move || {
            let _alive = AliveGuard(Arc::clone(&shared));
            let (mut conn, wal) = match catch_unwind(|| open(&config)) {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => return opened.send(Err(e)),
                Err(payload) => return opened.send(Err(error::panicked(&*payload))),
            };
            // Set once, here, before anyone can ask to interrupt.
            let _ = shared.interrupt.set(conn.get_interrupt_handle());
            if wal {
                // Commits only note the log's length; this thread checkpoints (after the
                // command's reply), never a statement running inline on an executor thread.
                let (noted, watch) = (Arc::clone(&shared), Arc::clone(&wal_watch));
                let hook = move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                    noted.wal_frames.store(frames, Ordering::Relaxed);
                    watch.note_frames(frames);
                    Ok(())
                };
                if let Err(e) = conn.wal_hook(Some(hook)) {
                    return opened.send(Err(from_rusqlite(e)));
                }
            }
            *lock_worker(&cell) = Some(Worker {
                conn,
                writes: Writes {
                    gate: writer_gate,
                    held: None,
                },
                shared,
                statements: Registry::default(),
                txn: Txn::None,
                batch: None,
                handled: 0,
                busy_timeout: config.busy_timeout,
                inline_limit: config.inline_limit,
                wal,
                wal_watch,
                lingering: None,
            });
            opened.send(Ok(()));
            serve(&cell, &_alive.0, &commands, config.busy_poll);
        })
}

/// A connection's [`Worker`], behind the lock its thread holds while it runs a command, so that the
/// connection's caller can take it to run a quick read itself ([`Worker::run_inline`]). `None`
/// before the database is open and after the thread has ended.
pub(crate) type WorkerCell = Mutex<Option<Worker>>;

/// Locks a [`WorkerCell`]. A panic while it was held (outside `catch`, so in anysql itself) leaves
/// the worker as it was; the thread's other guards then end the connection.
fn lock_worker(cell: &WorkerCell) -> MutexGuard<'_, Option<Worker>> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rusqlite connection and everything the commands on it need.
pub(crate) struct Worker {
    /// Declared before `writes`, so that when the worker ends, the connection closes (rolling back
    /// any transaction) before the writer gate is released.
    conn: rusqlite::Connection,
    writes: Writes,
    shared: Arc<Shared>,
    statements: Registry,
    txn: Txn,
    /// The `execute_many` under way, between its parts.
    batch: Option<Batch>,
    /// The sequence number of the last command fully handled: when it is the last one the caller
    /// sent, nothing is queued or under way, and a command may run inline.
    handled: u64,
    /// The URL's `busy_timeout`, which inline statements turn off while they run.
    busy_timeout: Duration,
    /// The URL's `inline_limit`: a statement that took at most this may run inline next time, if it
    /// may at all (see [`run_inline`](Self::run_inline)).
    inline_limit: Duration,
    /// Whether the database is in WAL mode.
    wal: bool,
    /// The engine's view of the write-ahead log.
    wal_watch: Arc<WalWatch>,
    /// The point read left lingering, by statement id (see [`end_lingering`](Self::end_lingering)).
    lingering: Option<u64>,
}

/// The worker thread's loop: runs the commands in order, each with the worker locked, and posts
/// their replies in `mailbox` once the lock is released, until the connection is closed or its
/// handle dropped; then closes the database (rolling back any open transaction) on this thread.
fn serve(
    cell: &WorkerCell,
    shared: &Shared,
    commands: &crossbeam_channel::Receiver<Command>,
    busy_poll: Duration,
) {
    let mailbox = &shared.mailbox;
    let mut idle = Idle::new(busy_poll);
    while let Some(next) = idle.next(commands, shared) {
        let command = match next {
            idle::Next::Command(command) => command,
            idle::Next::LingeredLong => {
                // A caller running a statement inline holds the lock: it ends the read itself.
                if let Ok(mut guard) = cell.try_lock() {
                    if let Some(worker) = guard.as_mut() {
                        worker.end_lingering();
                    }
                }
                continue;
            }
        };
        let mut guard = lock_worker(cell);
        let Some(worker) = guard.as_mut() else {
            return;
        };
        match command {
            Command::Close { reply } => {
                let worker = guard.take();
                drop(guard);
                return reply.send(worker.map_or(Ok(()), Worker::close));
            }
            command => {
                let reply = worker.handle(command);
                drop(guard);
                if let Some((seq, reply)) = reply {
                    mailbox.post(seq, reply);
                }
                if shared.checkpoint_due() {
                    if let Some(worker) = lock_worker(cell).as_mut() {
                        worker.checkpoint_if_due();
                    }
                }
            }
        }
        idle.replied();
    }
    let worker = lock_worker(cell).take();
    drop(worker);
}

impl Worker {
    /// Runs `command` on the calling thread instead of the worker's, if it may (else `None`, and
    /// the command is to be sent to the thread). The caller only asks for statements whose recent
    /// runs were quick ([`Fetched::quick`], [`Response::Executed`]); here it must also be
    ///
    /// - a fetch without pipelining, or an `execute` with parameters on a database in WAL mode,
    ///   either inside a transaction that already writes (it holds the writer gate, and a write
    ///   needs no lock that the transaction does not hold yet) or in autocommit mode with the
    ///   writer gate taken here without waiting ([`may_write_inline`](Self::may_write_inline));
    ///   or, in WAL mode, transaction control as
    ///   [`may_control_inline`](Self::may_control_inline) allows;
    /// - of a statement the worker knows;
    /// - sent when the last command handled is `previous`, the one the caller sent before this, so
    ///   that nothing is queued or under way.
    ///
    /// It runs with the `busy_timeout` off: a statement that finds the database locked fails
    /// without waiting (and without having changed anything) and is given up here, for the thread
    /// to run again and wait as configured, so an inline statement never sleeps.
    pub(crate) fn run_inline(
        &mut self,
        command: &Command,
        previous: u64,
    ) -> Option<Result<Response, Error>> {
        // A fetch of the statement left lingering resets it itself (see `fetch`).
        if !matches!(command, Command::Fetch { sql: Sql::Known(id), .. } if self.lingering == Some(*id))
        {
            self.end_lingering();
        }
        // A log due for a checkpoint sends the statement to the thread, which checkpoints after it.
        if self.handled != previous || self.batch.is_some() || self.shared.checkpoint_due() {
            return None;
        }
        let (seq, result) = match command {
            Command::Fetch {
                seq,
                sql: Sql::Known(id),
                known_columns,
                params,
                limit,
                pipelined: false,
            } => (
                *seq,
                self.without_waiting(*id, |w, text| {
                    let query = Query {
                        seq: *seq,
                        id: *id,
                        sql: text,
                        params,
                        linger: w.may_linger(),
                    };
                    w.statement(*seq, |w| w.fetch(query, *known_columns, *limit, false))
                        .map(Response::Fetched)
                }),
            ),
            Command::Execute {
                seq,
                sql: Sql::Known(id),
                params,
            } if !params.is_empty() && self.wal && self.may_write_inline() => (
                *seq,
                self.without_waiting(*id, |w, text| w.execute_timed(*seq, text, params)),
            ),
            Command::Execute {
                seq,
                sql: Sql::Known(id),
                params,
            } if params.is_empty() => {
                let op = self.transaction_control(*id)?;
                if !self.may_control_inline(op) {
                    return None;
                }
                (
                    *seq,
                    self.without_waiting(*id, |w, text| w.transaction(*seq, op, text, true)),
                )
            }
            _ => return None,
        };
        // An autocommit write that took the gate here and did not run lets go of it.
        self.settle();
        match result {
            Err(e) if e.is_retryable() => None,
            result => {
                self.handled = seq;
                #[cfg(test)]
                self.shared.inline_runs.fetch_add(1, Ordering::Relaxed);
                Some(result)
            }
        }
    }

    /// Checkpoints the write-ahead log (passively: without waiting for readers or writers) if it
    /// has grown to [`CHECKPOINT_FRAMES`], as SQLite's automatic checkpoint would have right after
    /// the commit, but on this thread: a checkpoint writes pages back and syncs, which may take
    /// milliseconds, too long for a statement running inline on an executor thread. Like SQLite's,
    /// it ignores errors (the next commit tries again).
    fn checkpoint_if_due(&mut self) {
        if !self.shared.checkpoint_due() {
            return;
        }
        // A read of this connection's own left lingering would hold the checkpoint back too.
        self.end_lingering();
        let _ = self
            .conn
            .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE);
        self.shared.wal_frames.store(0, Ordering::Relaxed);
        #[cfg(test)]
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
    }

    /// What transaction control statement `id` is, if it is one.
    fn transaction_control(&mut self, id: u64) -> Option<TxnControl> {
        let (_, text) = self.statements.resolve(Sql::Known(id)).ok()?;
        TxnControl::of(&text)
    }

    /// Runs `run` with the text of statement `id` and the `busy_timeout` off.
    fn without_waiting<T>(
        &mut self,
        id: u64,
        run: impl FnOnce(&mut Self, &str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (_, text) = self.statements.resolve(Sql::Known(id))?;
        let waits = !self.busy_timeout.is_zero();
        if waits {
            self.conn
                .busy_timeout(Duration::ZERO)
                .map_err(from_rusqlite)?;
        }
        let result = run(self, &text);
        if waits {
            self.conn
                .busy_timeout(self.busy_timeout)
                .map_err(from_rusqlite)?;
        }
        result
    }

    /// [`execute`](Self::execute) as a statement command, timed for [`Response::Executed`].
    fn execute_timed(&mut self, seq: u64, sql: &str, params: &[Value]) -> Result<Response, Error> {
        let started = self.timer();
        let rows = self.statement(seq, |w| w.execute(seq, sql, params))?;
        Ok(Response::Executed {
            rows,
            quick: started.is_some_and(|t| self.quick_since(t)),
        })
    }

    /// When a statement started, if whether it is quick matters: while inline runs are on.
    fn timer(&self) -> Option<Instant> {
        (!self.inline_limit.is_zero()).then(Instant::now)
    }

    /// Whether a statement that started at `started` was quick enough for its next run to be
    /// inline.
    fn quick_since(&self, started: Instant) -> bool {
        #[cfg(test)]
        if self.shared.always_quick.load(Ordering::Relaxed) {
            return true;
        }
        started.elapsed() <= self.inline_limit
    }

    fn close(self) -> Result<(), Error> {
        let Worker { conn, writes, .. } = self;
        let result = conn.close().map_err(|(conn, e)| {
            drop(conn);
            from_rusqlite(e)
        });
        // Only now that any transaction is over.
        drop(writes);
        result
    }

    /// Releases the writer gate once the connection is back in autocommit mode, however it got
    /// there: a statement's end, COMMIT, ROLLBACK, a failed COMMIT, SQLite rolling back on its own,
    /// a reset, or the rollback after a panic. Called after every command.
    fn settle(&mut self) {
        let autocommit = self.conn.is_autocommit();
        if self.writes.held.is_some() && autocommit {
            self.writes.held = None;
        }
        // A transaction SQLite ended by itself still counts until the caller rolls it back, so
        // that a connection left so is reset before anyone else uses it.
        let aborted = matches!(self.txn, Txn::Aborted(_));
        self.shared
            .in_transaction
            .store(!autocommit || aborted, Ordering::Release);
    }

    /// Runs a command; returns its reply, for the thread to post once it has let go of the
    /// worker, so that a caller who has the reply finds the worker free for an inline read.
    fn handle(&mut self, command: Command) -> Option<(u64, Result<Response, Error>)> {
        self.end_lingering();
        if let Some(seq) = command.completes() {
            // Set before the reply goes out: once the caller has it, it may run the next command
            // inline.
            self.handled = seq;
        }
        // Statements are registered first, whatever happens to the command, to stay in step with
        // the caller's side.
        match command {
            Command::Execute { seq, sql, params } => {
                let result = self.statements.resolve(sql).and_then(|(_, text)| {
                    match params.is_empty().then(|| TxnControl::of(&text)).flatten() {
                        Some(op) => self.transaction(seq, op, &text, false),
                        None => self.execute_timed(seq, &text, &params),
                    }
                });
                Some((seq, result))
            }
            Command::ExecuteMany {
                seq,
                sql,
                sets,
                part,
            } => {
                let last = part.last;
                let result = self.statements.resolve(sql).and_then(|(_, text)| {
                    self.statement(seq, |w| w.execute_many(seq, &text, &sets, part))
                });
                if let Err(e) = result {
                    self.fail_batch(seq, e);
                }
                let finished = last.then(|| self.finish_batch(seq));
                // A failed batch was rolled back after its part's statement ended: release the
                // writer gate now, not at this connection's next command.
                self.settle();
                finished.map(|result| (seq, result.map(Response::Count)))
            }
            Command::Fetch {
                seq,
                sql,
                known_columns,
                params,
                limit,
                pipelined,
            } => {
                let result = self.statements.resolve(sql).and_then(|(id, text)| {
                    let query = Query {
                        seq,
                        id,
                        sql: &text,
                        params: &params,
                        linger: false,
                    };
                    self.statement(seq, |w| w.fetch(query, known_columns, limit, pipelined))
                });
                Some((seq, result.map(Response::Fetched)))
            }
            Command::Stream {
                seq,
                sql,
                params,
                chunk,
                rows,
            } => {
                let result = self.statements.resolve(sql).and_then(|(id, text)| {
                    self.statement(seq, |w| w.stream(seq, id, &text, &params, chunk, &rows))
                });
                if let Err(e) = result {
                    // A receiver that is gone is fine: nobody wants the error either.
                    let _ = rows.send_blocking(Err(e));
                }
                None
            }
            Command::Control { seq, op } => {
                let result = self.catch(|w| w.control(op));
                self.settle();
                Some((seq, result.map(|()| Response::Done)))
            }
            Command::Run { seq, job } => {
                let autocommit = self.conn.is_autocommit();
                self.shared.start(seq, autocommit);
                let conn = &mut self.conn;
                let result = catch_unwind(AssertUnwindSafe(|| job(conn)));
                self.shared.finish();
                let result = result.map(Response::Any).map_err(|payload| {
                    self.recover();
                    error::panicked(&*payload)
                });
                self.check_transaction(None);
                // The job may have used or flushed rusqlite's statement cache: check every
                // statement's columns again.
                self.statements.forget_column_checks();
                self.settle();
                Some((seq, result))
            }
            // `serve` handles them before they get here.
            Command::Close { .. } | Command::Wake => None,
        }
    }

    /// Runs a statement command: refuses it in an aborted transaction, skips it if its caller
    /// already gave up, and notices when SQLite ended the caller's transaction.
    fn statement<T>(
        &mut self,
        seq: u64,
        run: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Txn::Aborted(reason) = &self.txn {
            return Err(aborted(reason));
        }
        let result = if self.shared.start(seq, self.conn.is_autocommit()) {
            self.catch(run)
        } else {
            Err(error::cancelled())
        };
        self.shared.finish();
        self.check_transaction(result.as_ref().err());
        self.settle();
        result
    }

    /// Runs `run`, turning a panic into an error and repairing the connection after it.
    fn catch<T>(&mut self, run: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        match catch_unwind(AssertUnwindSafe(|| run(self))) {
            Ok(result) => result,
            Err(payload) => {
                self.recover();
                Err(error::panicked(&*payload))
            }
        }
    }

    fn execute(&mut self, seq: u64, sql: &str, params: &[Value]) -> Result<u64, Error> {
        if params.is_empty() && has_more_statements(sql) {
            return self.execute_script(seq, sql);
        }
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::Empty) => return Ok(0),
            Err(e) => return Err(from_rusqlite(e)),
        };
        self.statements.note_if_fresh(&stmt);
        bind(&mut stmt, params)?;
        self.writes.take_for(&stmt, &self.shared, seq)?;
        step_to_end(&self.conn, &self.shared, seq, &mut stmt)
    }

    /// Runs SQL holding several statements, one after the other, with SQLite's own splitter.
    fn execute_script(&mut self, seq: u64, sql: &str) -> Result<u64, Error> {
        let mut batch = rusqlite::Batch::new(&self.conn, sql);
        let mut total = 0;
        while let Some(mut stmt) = batch.next().map_err(from_rusqlite)? {
            if stmt.parameter_count() > 0 {
                return Err(Error::parameter_count(stmt.parameter_count(), 0)
                    .context("a statement of the script takes parameters"));
            }
            // From its first write, the script keeps the gate to its end.
            self.writes.take_for(&stmt, &self.shared, seq)?;
            total += step_to_end(&self.conn, &self.shared, seq, &mut stmt)?;
        }
        Ok(total)
    }

    fn fetch(
        &mut self,
        query: Query<'_>,
        known_columns: u64,
        limit: usize,
        pipelined: bool,
    ) -> Result<Fetched, Error> {
        // Timed only if the next fetch might run inline (see `run_inline`).
        let started = if pipelined { None } else { self.timer() };
        let Query {
            seq,
            id,
            sql,
            params,
            linger,
        } = query;
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::Empty) => {
                return Ok(Fetched {
                    columns: None,
                    rows: FetchedRows::Empty,
                    quick: false,
                })
            }
            Err(e) => return Err(from_rusqlite(e)),
        };
        if self.lingering == Some(id) {
            // This statement's own read, still open: ended here, without a second lookup in
            // rusqlite's cache.
            self.lingering = None;
            self.shared.lingering.store(false, Ordering::Relaxed);
            drop(stmt.raw_query());
        }
        bind(&mut stmt, params)?;
        self.writes.take_for(&stmt, &self.shared, seq)?;
        self.statements.note_if_fresh(&stmt);
        let readonly = started.is_some() && stmt.readonly();
        let mut fetched = Fetched {
            columns: None,
            rows: FetchedRows::Empty,
            quick: false,
        };
        let mut batch: Option<RowBatch> = None;
        let mut decimals = Decimals::default();
        let mut fetched_rows = 0;
        let mut next_partial = FIRST_PARTIAL_ROWS;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(from_rusqlite)? {
            let current = match &mut batch {
                Some(batch) => batch,
                None => {
                    // Taken after the first step, when SQLite has re-prepared the statement if the
                    // schema changed.
                    if fetched_rows == 0 {
                        (fetched.columns, decimals) =
                            self.statements
                                .columns_for_caller(id, row.as_ref(), known_columns)?;
                    }
                    let width = row.as_ref().column_count();
                    if limit == 1 {
                        fetched.rows = FetchedRows::one(row, width, &decimals)?;
                        if linger {
                            // Not reset (the reset is what `Rows` does when dropped): the read
                            // transaction stays open until `end_lingering`.
                            std::mem::forget(rows);
                            self.lingering = Some(id);
                            self.shared.lingered.fetch_add(1, Ordering::Relaxed);
                            self.shared.lingering.store(true, Ordering::SeqCst);
                        }
                        break;
                    }
                    batch.insert(RowBatch::new(width))
                }
            };
            current.push(row, &decimals)?;
            fetched_rows += 1;
            if fetched_rows >= limit {
                break;
            }
            if self.shared.is_cancelled(seq) {
                return Err(error::cancelled());
            }
            if pipelined && current.len() >= next_partial {
                let partial = Fetched {
                    columns: fetched.columns.take(),
                    rows: FetchedRows::Many(batch.take().unwrap_or_default()),
                    quick: false,
                };
                self.shared
                    .mailbox
                    .post(seq, Ok(Response::Partial(partial)));
                next_partial = (next_partial * 2).min(MAX_PARTIAL_ROWS);
            }
        }
        if let Some(batch) = batch {
            fetched.rows = FetchedRows::Many(batch);
        }
        fetched.quick = readonly && started.is_some_and(|t| self.quick_since(t));
        Ok(fetched)
    }

    fn stream(
        &mut self,
        seq: u64,
        id: u64,
        sql: &str,
        params: &[Value],
        chunk_size: usize,
        out: &ChunkSender,
    ) -> Result<(), Error> {
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::Empty) => return Ok(()),
            Err(e) => return Err(from_rusqlite(e)),
        };
        bind(&mut stmt, params)?;
        self.writes.take_for(&stmt, &self.shared, seq)?;
        self.statements.note_if_fresh(&stmt);
        let mut chunk: Option<StreamChunk> = None;
        // The columns go with the first chunk only.
        let mut columns_sent = false;
        let mut decimals = Decimals::default();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(from_rusqlite)? {
            let current = match &mut chunk {
                Some(chunk) => chunk,
                None => {
                    let columns = if columns_sent {
                        None
                    } else {
                        columns_sent = true;
                        let (columns, decimal) = self.statements.columns(id, row.as_ref())?;
                        decimals = decimal;
                        Some(columns)
                    };
                    chunk.insert(StreamChunk {
                        columns,
                        rows: RowBatch::new(row.as_ref().column_count()),
                    })
                }
            };
            current.rows.push(row, &decimals)?;
            if current.rows.len() >= chunk_size {
                let Some(full) = chunk.take() else { break };
                #[cfg(test)]
                self.shared
                    .streamed_rows
                    .fetch_add(full.rows.len() as u64, Ordering::Relaxed);
                // Blocks while the consumer is behind; fails once it is gone.
                if out.send_blocking(Ok(full)).is_err() {
                    return Ok(());
                }
            }
            if self.shared.is_cancelled(seq) {
                return Ok(());
            }
        }
        if let Some(last) = chunk {
            let _ = out.send_blocking(Ok(last));
        }
        Ok(())
    }
}

/// A statement command's identity: its sequence number, its statement id and text, its parameters.
#[derive(Clone, Copy)]
struct Query<'a> {
    seq: u64,
    id: u64,
    sql: &'a str,
    params: &'a [Value],
    /// Whether a point read may leave its read transaction open ([`Worker::may_linger`]).
    linger: bool,
}

/// The rows of a pipelined fetch's first batch: few, so that the caller starts decoding soon.
const FIRST_PARTIAL_ROWS: usize = 64;
/// The most rows of a batch of a pipelined fetch: small enough that the caller, busy-polling for
/// the next batch, rarely waits longer than its spin budget for it.
const MAX_PARTIAL_ROWS: usize = 256;

/// Steps a bound statement to its end, discarding any rows, and returns the rows it changed.
fn step_to_end(
    conn: &rusqlite::Connection,
    shared: &Shared,
    seq: u64,
    stmt: &mut rusqlite::Statement<'_>,
) -> Result<u64, Error> {
    let before = conn.total_changes();
    let mut rows = stmt.raw_query();
    while rows.next().map_err(from_rusqlite)?.is_some() {
        if shared.is_cancelled(seq) {
            return Err(error::cancelled());
        }
    }
    drop(rows);
    // `changes()` keeps the count of the last INSERT, UPDATE or DELETE, even after DDL; only trust
    // it if this statement changed something.
    Ok(if conn.total_changes() == before {
        0
    } else {
        conn.changes()
    })
}
