//! The SQLite driver for anysql, over [`rusqlite`] with a bundled SQLite.
//!
//! Applications use it through the `anysql` facade (feature `sqlite`) with a `sqlite:` URL; this
//! crate provides [`SqliteDriver`], the `run_sync` escape hatch ([`SqliteConnectionExt`]) and
//! re-exports [`rusqlite`].
//!
//! # URLs
//!
//! | URL | database |
//! |---|---|
//! | `sqlite:data.db` | `data.db`, relative to the current directory |
//! | `sqlite://data.db`, `sqlite://dir/data.db` | the same: a relative path (as in sqlx) |
//! | `sqlite:///var/lib/app/data.db` | an absolute path |
//! | `sqlite::memory:`, `sqlite://:memory:` | an in-memory database, one per engine (see below) |
//!
//! Relative paths are resolved against the current directory once, when the engine is built.
//! `%XX` escapes in the path are decoded (`sqlite:///tmp/my%20data.db`).
//!
//! Options go in the query string, for example `sqlite:data.db?mode=ro&busy_timeout=10s`:
//!
//! | option | values | default |
//! |---|---|---|
//! | `mode` | `ro` (read-only; the file must exist), `rw` (the file must exist), `rwc` (created if missing) | `rwc` |
//! | `busy_timeout` | how long a statement waits for another connection's lock before failing with `SQLITE_BUSY`: `500ms`, `5s`, `2m` (a bare number is seconds); at most `24h`; `0` fails at once | `5s` |
//! | `journal_mode` | `wal`, `delete`, `truncate`, `persist`, `memory`, `off` | `wal` for files opened writable; SQLite's own otherwise |
//! | `synchronous` | `off`, `normal`, `full`, `extra` | `normal` in WAL mode, SQLite's own (`full`) otherwise |
//! | `foreign_keys` | `true`/`false` (`on`/`off`, `1`/`0`) | `true` |
//! | `statement_cache_capacity` | prepared statements kept per connection (LRU): `0` to `10000`; `0` turns the cache off | `128` |
//! | `busy_poll` | how long a caller busy-polls for a reply before its task sleeps, and the connection's thread for the next command before it blocks (see [Performance](#performance)); at most `10ms`; `0` turns spinning off | `50us` |
//! | `writer_gate` | `true`/`false`: the engine's connections take turns to write, first come first served, instead of failing with `SQLITE_BUSY` (see [Writers take turns](#writers-take-turns)) | `true` |
//! | `inline_limit` | a statement that took SQLite at most this long lately runs on the calling task's thread, without the hop to the connection's thread, where it may (read-only `fetch_one`/`fetch_optional`, `execute` with parameters in WAL mode, inside a write transaction or while the writer gate is free, and in WAL mode `BEGIN`, `COMMIT` and `ROLLBACK`: see [Inline statements](#inline-statements)); at most `1ms`; `0` sends every statement to the connection's thread | `100us` |
//!
//! An unknown option or a bad value (one out of its range too) fails when the engine is built, with
//! an [`ErrorKind::Configuration`](anysql_core::ErrorKind::Configuration) error naming the option and
//! its limits. An explicit
//! `journal_mode` the database refuses fails the connection; the default WAL is best effort.
//!
//! ```
//! use anysql_core::{AsyncDriver, ConnectOptions};
//! use anysql_sqlite::SqliteDriver;
//!
//! let driver = SqliteDriver::new();
//! for url in [
//!     "sqlite:data.db",
//!     "sqlite://my data.db",
//!     "sqlite:///tmp/app.db?mode=ro",
//!     "sqlite://:memory:?foreign_keys=off",
//! ] {
//!     driver.connector(&ConnectOptions::parse(url)?)?;
//! }
//! let err = driver.connector(&ConnectOptions::parse("sqlite:data.db?mode=readonly")?).unwrap_err();
//! assert_eq!(err.kind(), anysql_core::ErrorKind::Configuration);
//! # Ok::<(), anysql_core::Error>(())
//! ```
//!
//! # In-memory databases
//!
//! `sqlite::memory:` is one database shared by all the connections of the engine, as a file would
//! be: a table created on one pooled connection is seen by the others. It lives as long as the
//! engine. Under the hood it is SQLite's `memdb` VFS under a name unique to the engine
//! (`file:/anysql-mem-<pid>-<n>?vfs=memdb`), so connections lock it as they would a file and
//! `busy_timeout` applies between them, and the writer gate too (below). It cannot use WAL, so a
//! writer and readers exclude each other for the duration of a write transaction.
//!
//! # How it works
//!
//! Each connection owns a dedicated OS thread (named `anysql-sqlite`) holding the
//! `rusqlite::Connection`; the async side sends it commands over a channel and awaits each reply in
//! the connection's reply slot. No executor is involved, so the driver behaves the same on every
//! runtime. (Statements known to be quick and unable to wait for a lock skip the hop and run on
//! the caller's thread: see [Inline statements](#inline-statements).)
//!
//! - Results come back in one message (`fetch_all`) or, for `fetch`, in chunks of 256 rows with at
//!   most two chunks queued: the worker waits while the consumer is behind, so a result of any size
//!   streams in bounded memory. Dropping the stream stops the query and resets the statement.
//! - Statements are prepared through rusqlite's LRU statement cache (`statement_cache_capacity`).
//! - `$1, $2, …` placeholders are rewritten to `?1, ?2, …`; SQLite's own `?`, `?N` and `:name` work
//!   too (bound by position). A wrong number of parameters is an
//!   [`ErrorKind::Parameter`](anysql_core::ErrorKind::Parameter) error.
//! - `execute` without parameters runs a script of several statements.
//! - `execute_many` prepares once and runs every parameter set on the worker, atomically: inside a
//!   transaction (a savepoint within the caller's transaction).
//! - A panic on the worker (in `run_sync` code, say) becomes an
//!   [`ErrorKind::Panic`](anysql_core::ErrorKind::Panic) error; any open transaction is rolled back
//!   and the thread goes on serving.
//! - Cancellation: if the future of a statement is dropped before the worker starts it, the worker
//!   skips it; if the statement is running in autocommit mode, it is interrupted
//!   (`sqlite3_interrupt`); in a transaction it runs to its end, so that the transaction survives.
//!   [`Connection::cancel_handle`](anysql_core::Connection::cancel_handle) interrupts the running
//!   statement from anywhere.
//! - If SQLite rolls back a transaction by itself (an interrupt, a full disk, …), further
//!   statements in it fail with `SQLITE_ABORT_ROLLBACK` until it is rolled back, so nothing runs in
//!   autocommit mode by mistake.
//! - Transaction control is SQL, run through `execute` by the core and by applications alike:
//!   `BEGIN`, `BEGIN IMMEDIATE` (which first waits for the connection's turn to write), `COMMIT`
//!   (a failed one rolls back) and `ROLLBACK` (a no-op outside a transaction). A transaction opened
//!   by an application's own `BEGIN` is tracked as the core's are.
//!
//! ## Writers take turns
//!
//! SQLite lets one connection write at a time; another that tries fails with `SQLITE_BUSY` ("database
//! is locked") once `busy_timeout` runs out, and SQLite's busy handler is neither fair nor
//! prompt (it sleeps and retries). So the connections of one engine take turns through a **writer
//! gate**: a first-come-first-served (ticket) lock shared by the engine's connections, which each
//! connection's thread takes before it writes. Writers queue there in order, and by the time one
//! reaches SQLite the database's write lock is free. Only the connections' own threads wait on it;
//! no executor thread ever blocks (a write or `BEGIN IMMEDIATE` running inline takes the gate only
//! when it is free, and otherwise goes to its connection's thread to wait: see
//! [Inline statements](#inline-statements)). A writer that leaves wakes only the next in line.
//!
//! - A statement in autocommit mode takes the gate only if it writes (`sqlite3_stmt_readonly`
//!   says so once it is prepared), for the time it runs. Read-only statements never touch it, and
//!   in WAL mode they run beside the writer.
//! - `begin` of an immediate transaction
//!   ([`TransactionOptions::immediate`](anysql_core::TransactionOptions::immediate)) takes the
//!   gate, then runs `BEGIN IMMEDIATE`. A deferred transaction (plain `BEGIN`) takes it at its
//!   first statement that writes. Either keeps it until the transaction ends, however it ends:
//!   commit, rollback, a failed commit, SQLite rolling back by itself, a reset by the pool, a panic
//!   on the connection's thread, or the connection closed or dropped.
//! - `execute_many` takes it for the whole batch; a script (`execute` without parameters running
//!   several statements) from its first statement that writes to its end (or, if the script
//!   leaves a transaction open, to that transaction's end).
//! - `run_sync` code does not take it: rusqlite calls there cannot be seen. Such writes still
//!   wait for other writers through `busy_timeout`, as before.
//! - A deferred transaction that read before its first write may still fail with
//!   `SQLITE_BUSY_SNAPSHOT` if another connection wrote in between (its snapshot is stale); the
//!   error is retryable. Use an immediate transaction for read-modify-write work.
//! - The gate only knows one engine's connections: `busy_timeout` still applies against other
//!   processes, or other engines, using the same file.
//! - A writer waits for the gate as long as it takes: if a task holds a write transaction on one
//!   connection and then writes through a second connection of the same engine, the second waits
//!   for the first (without the gate it would fail with `SQLITE_BUSY` after `busy_timeout`).
//!   Dropping the waiting statement's future, or its cancel handle, makes it leave the queue
//!   within a few milliseconds; a `begin` of an immediate transaction that leaves so begins
//!   nothing.
//! - `writer_gate=false` turns it off, leaving writers to SQLite's busy handler.
//!
//! Why a gate rather than one writer connection and a pool of readers: routing statements
//! between two pools would mean classifying SQL before preparing it (SQLite only knows whether a
//! statement writes once it is prepared, on some connection), and it would break transactions
//! that mix reads and writes, which must run on one connection. With the gate, every connection
//! reads and writes as before, and only the order in which writers reach SQLite changes.
//!
//! Values: `NULL`, `INTEGER` (`Value::Int`), `REAL` (`Value::Float`), `TEXT` and `BLOB` are read by
//! each cell's storage class, except the numbers of decimal columns (below); `Value::Bool` is
//! stored as the integer 0 or 1, `Value::Numeric` as its text. Errors from SQLite carry
//! the extended result code name as [`Error::code`](anysql_core::Error::code)
//! (`SQLITE_CONSTRAINT_UNIQUE`, …) and a constraint kind; `SQLITE_BUSY` and `SQLITE_LOCKED` are
//! [retryable](anysql_core::Error::is_retryable).
//!
//! # Decimal columns
//!
//! A result column whose declared type (`sqlite3_column_decltype`) contains `NUMERIC` or `DECIMAL`,
//! in any case (`NUMERIC(40,10)`, `decimal(10,2)`), reads its numbers as
//! [`Value::Numeric`](anysql_core::Value::Numeric), an exact decimal as text: they decode into
//! `String`, and into integer types when whole and in range, but not into `f64`. Cast in SQL to
//! read a float: `SELECT CAST(price AS REAL) FROM t`.
//!
//! - An `INTEGER` cell becomes its digits: `12`.
//! - A `REAL` cell becomes the shortest decimal that reads back as the same `f64`, without an
//!   exponent: `12.5`, `0.1`, `12345678901234567000` (for 1.2345678901234567e19); an infinity is
//!   `Infinity` or `-Infinity`.
//! - `TEXT`, `BLOB` and `NULL` cells stay as they are (`Value::Text`, …): a table's decimal column
//!   holds text only when SQLite could not read it as a number (`'n/a'`, `'0x1F'`), so that text is
//!   no decimal literal.
//!
//! Only the declared type counts, not the affinity: `BOOLEAN`, `DATE` or `MONEY` columns have
//! SQLite's NUMERIC affinity too, and read as before. Expressions (`price * 2`, `sum(price)`,
//! `CAST(..)`) have no declared type and read by storage class. A statement's decimal columns are
//! worked out once, with its column names, and again after a schema change.
//!
//! **SQLite does not store decimals exactly.** NUMERIC affinity turns text that looks like a number
//! into an `INTEGER` or, with a fraction or beyond 64 bits, a `REAL`, which keeps 15 to 17
//! significant digits: `'12345678901234567890.0123456789'` inserted into a `NUMERIC(40,10)` column
//! reads back as `12345678901234567000`; nor does it keep the scale (`'12.50'` reads back as
//! `12.5`). The driver reads back exactly what SQLite kept, never
//! less, but cannot bring back what it dropped. To keep every digit, store exact decimals in a
//! `TEXT` column (or bind them as text to a column declared with no type): they then read back as
//! the same text, digit for digit, as `Value::Text`, which decodes into `String`.
//!
//! # Dates, times, UUIDs, JSON and the other types SQLite lacks
//!
//! SQLite has no date, time, UUID, JSON, decimal or network-address type, so a value of one is
//! stored in a type it has, in the forms SQLite's own functions and other SQLite libraries (sqlx
//! among them) write and read:
//!
//! | value | stored as | example |
//! |---|---|---|
//! | date (`NaiveDate`, `time::Date`) | `TEXT` | `2026-12-01` |
//! | time of day (`NaiveTime`, `time::Time`) | `TEXT` | `21:24:05.769430` |
//! | local date and time (`NaiveDateTime`, `PrimitiveDateTime`) | `TEXT` | `2026-12-01 21:24:05.769430` |
//! | instant (`DateTime<Tz>`, `OffsetDateTime`) | `TEXT`, with its offset | `2026-12-01T21:24:05.769430+00:00` |
//! | `Uuid` | `BLOB`, the 16 bytes | `X'67E5504410B1426F9247BB680E5FE0C8'` |
//! | JSON (`serde_json::Value`, `Json<T>`) | `TEXT` | `{"a":[1,2]}` |
//! | `Decimal`, `BigDecimal`, and `u64` above `i64::MAX` | `TEXT`, exact | `12345.6789` |
//! | `IpAddr` | `TEXT` | `2001:db8::1` |
//! | arrays (`Vec<T>`, `&[T]`) | `TEXT`, a JSON array | `[1,2,3]` |
//!
//! The fraction of a second has as many digits as it takes, in threes (milli-, micro- or
//! nanoseconds). `datetime(col)`, `date(col)` and `strftime(.., col)` read all of these texts.
//! Reading also takes the other common forms: a `T` or a space between date and time, no
//! seconds, an offset written `Z`, `+01` or `+0100` (and none, for UTC, when the Rust type has a
//! time zone), Unix-epoch integers for dates and times with a time zone, and text UUIDs
//! (hyphenated or not). Keep decimals and large `u64`s in `TEXT` columns: a `NUMERIC` or
//! `INTEGER` column's affinity turns their text into a float.
//!
//! Arrays (`Vec<T>`, `&[T]`) are stored as JSON text, `[1,2,3]` or `["a",null]`, which SQLite's
//! `json_each` reads: `WHERE id IN (SELECT value FROM json_each($1))` is this database's
//! `= ANY($1)`. They decode back into `Vec<T>` with the `json` feature. An array of byte strings
//! has no such form and is an error.
//!
//! # The `run_sync` escape hatch
//!
//! ```
//! use anysql_sqlite::{from_rusqlite, SqliteConnectionExt};
//!
//! async fn sqlite_version(conn: &mut anysql_core::Connection) -> Result<String, anysql_core::Error> {
//!     conn.run_sync(|c| c.query_row("SELECT sqlite_version()", [], |r| r.get(0)).map_err(from_rusqlite))
//!         .await?
//! }
//! ```
//!
//! # Performance
//!
//! The round trip to the connection's thread is the cost every async SQLite binding pays; this
//! crate is built to keep it small, and to skip it for statements known to be quick ([Inline
//! statements](#inline-statements)). `cargo xtask bench` measures it against raw rusqlite, called
//! synchronously, in the same run: see `docs/benchmarks.md` in the repository for the figures.
//!
//! - **Nobody sleeps between queries.** A point select takes SQLite a microsecond or two; waking a
//!   sleeping thread takes longer (a futex call, and on a virtual machine an interrupt through the
//!   hypervisor: measured at 5 to 50 µs). So the awaiting future busy-polls for up to `busy_poll`
//!   (50 µs) after the request, and only then parks. A caller waiting alone among the engine's
//!   callers spins inside `poll` itself for up to 25 µs of that: returning `Pending` instead, even
//!   with the task woken at once, lets tokio's multi-thread scheduler wake its idle second worker
//!   to steal the task, and the task then bounces between threads, each bounce waking a sleeping
//!   CPU. Callers waiting side by side (tasks sharing an executor thread, each with its own
//!   connection) yield to the executor instead, so that their commands all run at once; the cost
//!   of spinning inside `poll` is that other tasks on the same executor thread wait up to 25 µs.
//!   Symmetrically, the worker polls its channel for up to `busy_poll` after each reply before it
//!   blocks, to catch the next command of a caller running queries back to back. Both sides keep a
//!   moving average of their recent waits and do not spin while it exceeds twice `busy_poll`, so
//!   connections running slow queries or sitting idle in the pool burn no CPU; the worst case is
//!   `busy_poll` of CPU per slow query before the average catches up. `busy_poll=0` turns spinning
//!   off on both sides, for machines where CPU matters more than latency.
//! - **Few cache lines cross cores per query**, because each transfer costs hundreds of
//!   nanoseconds on a VM: a statement's text crosses once, later commands carry its id; result
//!   column names cross once per statement (and again after a schema change), and the caller's side
//!   builds the `Row`s with its own `Arc<Columns>`, so no reference count bounces between cores; a
//!   single fetched row travels inline in the reply; replies land in one reusable queue per
//!   connection whose ready flag sits on its own cache line.
//! - **Rows cross in flat batches, and both threads work at once.** The worker appends the cells
//!   of many rows to one vector and the bytes of their text and blobs to one buffer, so it
//!   allocates nothing per row; the caller allocates each `String` itself, on the thread that will
//!   free it (memory allocated on one thread and freed on another takes glibc's slow paths on
//!   both). `fetch_all` and `fetch_all_as` are pipelined: the worker sends a batch every few hundred
//!   rows and reads on while the caller decodes, so on two cores fetching a large result takes
//!   about as long as the slower of the two halves, and often less than raw rusqlite, which does
//!   both on one thread. `fetch_all_as` decodes straight from the batch through one reused `Row`
//!   ([`FromRow::from_row_mut`](anysql_core::FromRow::from_row_mut)): for a tuple, nothing is
//!   allocated per row but its own `String`s.
//! - **`execute_many` overlaps the two threads too.** It takes its parameter sets lazily, flattens
//!   them into the same cell-and-byte layout and sends them in parts of 256 sets: the worker binds
//!   straight from the buffer, with no allocation, and runs each part while the caller converts
//!   the next. The batch stays one transaction (a savepoint inside the caller's).
//!
//! ## Inline statements
//!
//! The hop to the connection's thread is the cost of every async SQLite binding, and for a point
//! select it is as large as the query: on the virtual machines this is measured on, a cache line
//! takes 44–560 ns to cross between two vCPUs, depending on where the hypervisor put them, and a
//! command and its reply each take a few such crossings. So a statement known to be quick, which
//! cannot wait for a lock, does not cross at all: it runs on the calling task's thread when
//!
//! - it is a read-only `fetch_one` or `fetch_optional` (and what is built on them: `fetch_one_as`,
//!   `fetch_scalar`, …; `sqlite3_stmt_readonly` says whether it reads only), or an `execute` with
//!   parameters on a database in WAL mode, either inside a transaction that has already written
//!   (the transaction then holds the writer gate and the database's write lock, and a write needs
//!   no other lock) or in autocommit mode while the writer gate is free: the statement takes the
//!   gate without waiting, and lets go of it when it ends; if another writer holds the gate or
//!   waits for it, the statement goes to the connection's thread and waits its turn there (with
//!   `writer_gate=false` there is no gate to take, and a write that finds the database locked
//!   goes to the thread as below); or, in WAL mode, transaction control through `execute`
//!   without parameters: `BEGIN` (plain or `DEFERRED`) outside a transaction, `BEGIN IMMEDIATE`
//!   (or `EXCLUSIVE`) once it has taken the writer gate without waiting (with the gate taken or
//!   waited for, it goes to the thread to wait its turn), and `COMMIT` or `ROLLBACK` of an open
//!   transaction (in WAL mode a commit appends to the log and needs no lock it does not hold; the
//!   checkpoint stays on the thread, below). A transaction whose writer gate was free then runs
//!   without crossing to the thread at all;
//! - its recent runs on this connection each took SQLite at most `inline_limit` (100 µs by
//!   default): the first run of a statement always goes to the connection's thread, which times
//!   it, and a statement that has been quick a few times turns slow after two slow runs in a row
//!   (so that one run that was preempted does not count);
//! - the connection's thread is idle, with nothing queued: a command sent before (say, by a
//!   future dropped half-way) always runs first, so statements still run in the order they were
//!   sent. The thread holds the rusqlite connection behind a lock while it runs a command, and an
//!   inline statement only runs if it can take that lock at once: the two never use the
//!   connection at the same time.
//!
//! A task whose statements all run inline never returns `Pending` by itself, so it takes turns
//! with the executor's other tasks as tokio's own resources do: it yields once every 128
//! statements it runs inline in a row, and, while another caller of the engine waits for its
//! connection's thread (a writer that found the gate taken, a `fetch_all`, …), as soon as it has
//! run inline for 25 µs since it last yielded. That waiting caller may share this task's
//! executor thread, and can only see its reply once this task lets it run; 25 µs is also the
//! longest a lone caller spins inside `poll` (above), and within the 10–100 µs between `.await`s
//! that tokio's documentation asks of a task. The yield comes before the statement takes its
//! sequence number, so a future dropped there leaves nothing behind; an inline statement itself
//! runs within one `poll`, with no `.await` inside, so a future dropped at any point has either
//! run it completely or not at all.
//!
//! A point read that runs inline in autocommit mode on a database in WAL mode keeps its read
//! transaction open after its row, until the connection's next statement of any kind (or a
//! checkpoint on its thread) ends it, and at most 1 ms while the connection runs nothing else:
//! its thread then ends it. Every statement still starts with a fresh read of the database, so
//! what a caller sees does not change; what changes is the locking underneath. A WAL read holds a
//! shared lock on one of the log's read marks, and SQLite's unix VFS takes and drops that lock with
//! `fcntl`, under a process-wide mutex, only when no other connection of the process holds it.
//! Four threads that read through four connections overlap and share it; two executor threads
//! that run four tasks' reads inline take turns and would pay both system calls on every read,
//! contending on the mutex as they do (rusqlite itself reads at a sixth of its four-thread speed
//! from two threads). A read that lingers keeps the lock held for the connections reading beside
//! it. A lingering read holds back checkpoints from the frames written after it began, so reads
//! stop lingering while the log has reached its checkpoint length and not yet started over.
//!
//! Checkpoints stay on the connection's thread. On a database in WAL mode the connection
//! replaces SQLite's automatic checkpoint (which runs inside the commit that makes the log reach
//! 1,000 frames, and writes pages back and syncs: milliseconds) with a hook that only notes the
//! log's length; once it reaches 1,000 frames, the connection's next statement goes to its thread,
//! which runs a passive checkpoint after replying. (A `PRAGMA wal_autocheckpoint` run through
//! `run_sync` puts SQLite's own back, for that connection.)
//!
//! Inline, the statement runs exactly as it would on the connection's thread: the same statement
//! cache, transaction state, writer gate, cancellation through the cancel handle, panic and error
//! handling. The executor thread is held for about as long as the statement took last time, at
//! most about `inline_limit` (so one statement may run past the 25 µs slice above; the task yields
//! before its next one). It never waits for a lock: `busy_timeout` is off while it runs, and a statement that finds the database
//! locked by another connection (it then has changed nothing) is handed to the connection's
//! thread, which waits for the lock as configured. (The busy timeout is set back to the URL's
//! value afterwards, so one changed through `run_sync` does not last.) `fetch_all`, `fetch_each`,
//! streams, `execute_many`, scripts, `execute` without parameters (but for the transaction
//! control above), savepoints, and writes and transaction control outside WAL mode always go to
//! the connection's thread. `inline_limit=0` turns inline
//! statements off.
//!
//! What inline statements saved, and where the rest of a point select's time goes, is measured
//! in the repository's `docs/benchmarks.md` ("SQLite: inline statements and the hop").

mod batch;
mod connection;
mod error;
mod gate;
mod options;
mod reply;
mod statements;
mod value;
mod worker;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex};

use anysql_core::{
    AsyncDriver, ConnectOptions, Connector, DriverConnection, Error, ServerInfo, SharedRuntime,
};
use async_trait::async_trait;

pub use connection::{SqliteConnection, SqliteConnectionExt};
pub use rusqlite;

use anysql_core::spin::Waiters;
use gate::WriterGate;
use options::{Config, Target};
use worker::WalWatch;

/// The SQLite driver: serves `sqlite:` URLs.
///
/// Register it on an engine builder (the `anysql` facade does this when its `sqlite` feature is
/// on).
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteDriver {
    _private: (),
}

impl SqliteDriver {
    /// The driver.
    pub const fn new() -> Self {
        SqliteDriver { _private: () }
    }
}

impl AsyncDriver for SqliteDriver {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    fn connector(&self, options: &ConnectOptions) -> Result<Arc<dyn Connector>, Error> {
        let config = Config::from_options(options)?;
        let keeper = match &config.target {
            Target::Memory(uri) => Some(Mutex::new(open_keeper(uri)?)),
            Target::File(_) => None,
        };
        let writer_gate = config.writer_gate.then(WriterGate::new);
        Ok(Arc::new(SqliteConnector {
            config: Arc::new(config),
            writer_gate,
            wal_watch: WalWatch::new(),
            waiters: Arc::default(),
            _keeper: keeper,
        }))
    }
}

/// Opens the connection that keeps an engine's in-memory database alive while the pool has none
/// open.
fn open_keeper(uri: &str) -> Result<rusqlite::Connection, Error> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    rusqlite::Connection::open_with_flags(uri, flags).map_err(|e| {
        Error::connection(format!(
            "cannot create the in-memory sqlite database: {}",
            from_rusqlite(e)
        ))
    })
}

/// Opens connections to one SQLite database for one engine.
struct SqliteConnector {
    config: Arc<Config>,
    /// The gate its connections take turns through to write; `None` with `writer_gate=false`.
    writer_gate: Option<Arc<WriterGate>>,
    /// What its connections know about the database's write-ahead log.
    wal_watch: Arc<WalWatch>,
    /// The callers waiting for replies from its connections.
    waiters: Arc<Waiters>,
    /// For `sqlite::memory:`: a connection held for the engine's lifetime, so that the database
    /// outlives the pool's connections. Never used; the mutex only makes it `Sync`.
    _keeper: Option<Mutex<rusqlite::Connection>>,
}

impl fmt::Debug for SqliteConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnector")
            .field("database", &format_args!("{}", self.config.describe()))
            .field("mode", &self.config.mode_str())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for SqliteConnector {
    async fn connect(&self, runtime: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        let conn = SqliteConnection::connect(
            Arc::clone(&self.config),
            self.writer_gate.clone(),
            Arc::clone(&self.wal_watch),
            Arc::clone(&self.waiters),
            Arc::clone(runtime),
        )
        .await?;
        Ok(Box::new(conn))
    }

    fn server_info(&self) -> ServerInfo {
        ServerInfo::new("sqlite").namespace(self.config.namespace())
    }
}

/// Converts a rusqlite error into anysql's [`Error`], as the driver does: SQLite errors become
/// [`ErrorKind::Database`](anysql_core::ErrorKind::Database) errors with their extended code name,
/// conversion errors become decode or parameter errors. Handy inside `run_sync` closures.
pub fn from_rusqlite(error: rusqlite::Error) -> Error {
    error::from_rusqlite(error)
}
