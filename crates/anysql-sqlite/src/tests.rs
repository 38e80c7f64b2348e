//! Tests of the driver on real SQLite databases, with no async runtime: SQLite needs none, so
//! `block_on` drives everything, and [`TestRuntime`] only satisfies the pool's interface.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anysql_core::runtime::BoxFuture;
use anysql_core::{
    AsyncDriver, BoxSocket, ConnectOptions, Connector, ConstraintKind, DriverConnection, Engine,
    EngineBuilder, ErrorKind, FromRow, Row, Runtime, SharedRuntime, TransactionOptions, Value,
};
use async_trait::async_trait;
use futures_lite::future::block_on;
use futures_lite::StreamExt;

use crate::gate::WriterGate;
use crate::{from_rusqlite, SqliteConnection, SqliteConnectionExt, SqliteDriver};

// ---------------------------------------------------------------------------------------------
// Test support

/// Spawns on OS threads and sleeps on one timer thread.
#[derive(Debug)]
struct TestRuntime;

#[async_trait]
impl Runtime for TestRuntime {
    fn name(&self) -> &'static str {
        "test"
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        std::thread::spawn(move || block_on(task));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(Sleep(Instant::now() + duration))
    }

    async fn connect_tcp(&self, _host: &str, _port: u16) -> io::Result<BoxSocket> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the sqlite tests open no sockets",
        ))
    }
}

struct Timer {
    wakers: Mutex<Vec<(Instant, Waker)>>,
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            wakers: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }));
        std::thread::spawn(move || {
            let mut wakers = timer.wakers.lock().unwrap();
            loop {
                let now = Instant::now();
                wakers.retain(|(at, waker)| {
                    let due = *at <= now;
                    if due {
                        waker.wake_by_ref();
                    }
                    !due
                });
                let next = wakers.iter().map(|(at, _)| *at).min();
                let wait = next.map_or(Duration::from_secs(1), |at| {
                    at.saturating_duration_since(now)
                });
                wakers = timer.changed.wait_timeout(wakers, wait).unwrap().0;
            }
        });
        timer
    })
}

struct Sleep(Instant);

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.0 {
            return Poll::Ready(());
        }
        let timer = timer();
        timer
            .wakers
            .lock()
            .unwrap()
            .push((self.0, cx.waker().clone()));
        timer.changed.notify_one();
        Poll::Pending
    }
}

fn runtime() -> SharedRuntime {
    Arc::new(TestRuntime)
}

/// A connector and one connection from it (the connector keeps a memory database alive).
fn connect(url: &str) -> (Arc<dyn Connector>, Box<dyn DriverConnection>) {
    let connector = SqliteDriver::new()
        .connector(&ConnectOptions::parse(url).unwrap())
        .unwrap();
    let conn = block_on(connector.connect(&runtime())).unwrap();
    (connector, conn)
}

fn engine(url: &str) -> Engine {
    EngineBuilder::new(url)
        .driver(SqliteDriver::new())
        .runtime(TestRuntime)
        .build()
        .unwrap()
}

/// Transaction control as the core runs it: SQL through `execute`.
trait Transactions {
    async fn begin(&mut self, options: &TransactionOptions) -> Result<(), anysql_core::Error>;
    async fn commit(&mut self) -> Result<(), anysql_core::Error>;
    async fn rollback(&mut self) -> Result<(), anysql_core::Error>;
}

impl Transactions for Box<dyn DriverConnection> {
    async fn begin(&mut self, options: &TransactionOptions) -> Result<(), anysql_core::Error> {
        let sql = self.begin_statement(options)?;
        self.execute(&sql, vec![]).await.map(drop)
    }

    async fn commit(&mut self) -> Result<(), anysql_core::Error> {
        self.execute("COMMIT", vec![]).await.map(drop)
    }

    async fn rollback(&mut self) -> Result<(), anysql_core::Error> {
        self.execute("ROLLBACK", vec![]).await.map(drop)
    }
}

fn sqlite(conn: &mut Box<dyn DriverConnection>) -> &mut SqliteConnection {
    conn.as_any_mut()
        .downcast_mut::<SqliteConnection>()
        .unwrap()
}

/// A fresh directory under the system's temp directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("anysql-sqlite-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn url(&self, file: &str, query: &str) -> String {
        format!("sqlite://{}{query}", self.0.join(file).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parameter sets as `DriverConnection::execute_many` takes them.
fn each(sets: Vec<Vec<Value>>) -> anysql_core::ParamSets<'static> {
    Box::new(sets.into_iter())
}

fn int(row: &Row, i: usize) -> i64 {
    row.get::<i64>(i).unwrap()
}

fn scalar(conn: &mut Box<dyn DriverConnection>, sql: &str) -> Value {
    let row = block_on(conn.fetch_optional(sql, vec![])).unwrap().unwrap();
    row.values()[0].clone()
}

// ---------------------------------------------------------------------------------------------
// URLs and opening

#[test]
fn file_urls_open_with_the_defaults() {
    let dir = TempDir::new();
    for url in [
        dir.url("a.db", ""),
        format!("sqlite:{}", dir.0.join("b.db").display()),
    ] {
        let (_c, mut conn) = connect(&url);
        assert_eq!(
            scalar(&mut conn, "PRAGMA journal_mode"),
            Value::Text("wal".into()),
            "{url}"
        );
        assert_eq!(scalar(&mut conn, "PRAGMA foreign_keys"), Value::Int(1));
        assert_eq!(
            scalar(&mut conn, "PRAGMA synchronous"),
            Value::Int(1),
            "NORMAL"
        );
        assert_eq!(scalar(&mut conn, "PRAGMA busy_timeout"), Value::Int(5000));
        block_on(conn.close()).unwrap();
    }
    assert!(dir.0.join("a.db").exists() && dir.0.join("b.db").exists());
    let (_c, mut conn) = connect(&dir.url(
        "c.db",
        "?journal_mode=delete&synchronous=full&foreign_keys=off&busy_timeout=250ms",
    ));
    assert_eq!(
        scalar(&mut conn, "PRAGMA journal_mode"),
        Value::Text("delete".into())
    );
    assert_eq!(scalar(&mut conn, "PRAGMA foreign_keys"), Value::Int(0));
    assert_eq!(scalar(&mut conn, "PRAGMA synchronous"), Value::Int(2));
    assert_eq!(scalar(&mut conn, "PRAGMA busy_timeout"), Value::Int(250));
}

#[test]
fn open_failures_are_connection_errors_that_say_what_to_do() {
    let dir = TempDir::new();
    let connector = |url: &str| {
        SqliteDriver::new()
            .connector(&ConnectOptions::parse(url).unwrap())
            .unwrap()
    };
    let missing = dir.0.join("missing.db");
    for mode in ["ro", "rw"] {
        let err = block_on(
            connector(&dir.url("missing.db", &format!("?mode={mode}"))).connect(&runtime()),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(
            err.message().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(err.message().contains("mode=rwc"), "{err}");
    }
    let err = block_on(connector(&dir.url("no/such/dir.db", "")).connect(&runtime())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("directory does not exist"), "{err}");
    let err = block_on(connector(&format!("sqlite://{}", dir.0.display())).connect(&runtime()))
        .unwrap_err();
    assert!(err.message().contains("is a directory"), "{err}");
    std::fs::write(
        dir.0.join("text.db"),
        b"this is not a database, just some text that is long enough",
    )
    .unwrap();
    let err = block_on(connector(&dir.url("text.db", "")).connect(&runtime())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.message().contains("not a sqlite database"), "{err}");
}

#[test]
fn read_only_mode_refuses_writes() {
    let dir = TempDir::new();
    let (_c, mut rw) = connect(&dir.url("ro.db", ""));
    block_on(rw.execute("CREATE TABLE t(x)", vec![])).unwrap();
    let (_c, mut ro) = connect(&dir.url("ro.db", "?mode=ro"));
    assert_eq!(scalar(&mut ro, "SELECT count(*) FROM t"), Value::Int(0));
    let err = block_on(ro.execute("INSERT INTO t VALUES (1)", vec![])).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_READONLY"), "{err}");
}

#[test]
fn memory_database_is_shared_by_the_engine() {
    let engine = engine("sqlite::memory:?max_size=3");
    block_on(async {
        let mut a = engine.acquire().await.unwrap();
        let mut b = engine.acquire().await.unwrap();
        a.execute("CREATE TABLE t(x INTEGER)", ()).await.unwrap();
        a.execute("INSERT INTO t VALUES ($1)", (7,)).await.unwrap();
        assert_eq!(
            b.fetch_scalar::<i64>("SELECT x FROM t", ()).await.unwrap(),
            7
        );
        // Closed connections do not take the database with them.
        a.close().await.unwrap();
        b.close().await.unwrap();
        let mut c = engine.acquire().await.unwrap();
        assert_eq!(
            c.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            c.fetch_scalar::<String>("PRAGMA journal_mode", ())
                .await
                .unwrap(),
            "memory"
        );
    });
    // Another engine has its own database.
    let other = self::engine("sqlite::memory:");
    let err = block_on(other.fetch_all("SELECT * FROM t", ())).unwrap_err();
    assert!(err.message().contains("no such table"), "{err}");
}

#[test]
fn memory_writers_wait_for_each_other() {
    let (connector, mut a) = connect("sqlite::memory:");
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    block_on(a.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let result = block_on(b.execute("INSERT INTO t VALUES (2)", vec![]));
        (result, started.elapsed(), b)
    });
    std::thread::sleep(Duration::from_millis(300));
    block_on(a.commit()).unwrap();
    let (result, waited, _b) = writer.join().unwrap();
    assert_eq!(result.unwrap(), 1);
    assert!(
        waited >= Duration::from_millis(250),
        "the second writer waited {waited:?}"
    );
    assert_eq!(scalar(&mut a, "SELECT count(*) FROM t"), Value::Int(2));

    // Without the writer gate and with a short busy timeout, the waiting writer gives up with a
    // retryable error.
    let (connector, mut a) = connect("sqlite::memory:?busy_timeout=50ms&writer_gate=false");
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    block_on(a.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    let err = block_on(b.execute("INSERT INTO t VALUES (2)", vec![])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(
        err.code().is_some_and(|c| c.starts_with("SQLITE_BUSY")),
        "{err}"
    );
    assert!(err.is_retryable());
    block_on(a.rollback()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Statements, values, errors

#[test]
fn placeholders_in_every_style() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let params = vec![Value::Int(1), Value::Text("two".into())];
    let row = block_on(conn.fetch_optional("SELECT $2, $1, '$1', \"$2\" -- $3", params.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values()[..3],
        [
            Value::Text("two".into()),
            Value::Int(1),
            Value::Text("$1".into())
        ]
    );
    for sql in [
        "SELECT ?, ?",
        "SELECT ?1, ?2",
        "SELECT :a, :b",
        "SELECT @a, $b",
    ] {
        let row = block_on(conn.fetch_optional(sql, params.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(row.values(), &params[..], "{sql}");
    }
    // `?2 … ?1` reuses numbers: two parameters, bound by number.
    let row = block_on(conn.fetch_optional("SELECT $2 || $1 || $2", params.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(row.values()[0], Value::Text("two1two".into()));
}

#[test]
fn wrong_parameter_counts_are_parameter_errors() {
    let (_c, mut conn) = connect("sqlite::memory:");
    for (sql, params) in [
        ("SELECT $1, $2", vec![Value::Int(1)]),
        ("SELECT 1", vec![Value::Int(1)]),
        ("SELECT ?", vec![]),
    ] {
        let err = block_on(conn.fetch_all(sql, params)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parameter, "{sql}: {err}");
    }
    let err = block_on(conn.execute("SELECT $1, $2", vec![Value::Int(1)])).unwrap_err();
    assert_eq!(
        err.message(),
        "the statement takes 2 parameters but 1 was given"
    );
    assert_eq!(
        scalar(&mut conn, "SELECT 1"),
        Value::Int(1),
        "the connection is still usable"
    );
}

#[test]
fn values_round_trip_by_storage_class() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE v(a, b, c, d, e, f)", vec![])).unwrap();
    let values = vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(-42),
        Value::Float(1.5),
        Value::Text("héllo".into()),
        Value::Blob(vec![0, 1, 255]),
    ];
    assert_eq!(
        block_on(conn.execute("INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6)", values)).unwrap(),
        1
    );
    let row =
        block_on(conn.fetch_optional("SELECT a, b, c, d, e, f, typeof(b) AS tb FROM v", vec![]))
            .unwrap()
            .unwrap();
    assert_eq!(
        row.values(),
        &[
            Value::Null,
            Value::Int(1),
            Value::Int(-42),
            Value::Float(1.5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 1, 255]),
            Value::Text("integer".into()),
        ]
    );
    assert_eq!(
        row.columns().names().collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e", "f", "tb"]
    );
    assert!(row.get::<bool>("b").unwrap());
    // Text that is not UTF-8 is a decode error, not a panic.
    let err = block_on(conn.fetch_all("SELECT CAST(x'ff' AS TEXT)", vec![])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
}

#[test]
fn database_errors_carry_extended_codes() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute(
        "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id TEXT PRIMARY KEY, email TEXT UNIQUE, name TEXT NOT NULL,
                        n INTEGER CONSTRAINT positive CHECK (n > 0), p INTEGER REFERENCES p(id))",
        vec![],
    ))
    .unwrap();
    block_on(conn.execute("INSERT INTO c VALUES ('a', 'a@x', 'a', 1, NULL)", vec![])).unwrap();
    let cases = [
        (
            "INSERT INTO c VALUES ('b', 'a@x', 'b', 1, NULL)",
            "SQLITE_CONSTRAINT_UNIQUE",
            ConstraintKind::Unique,
        ),
        (
            "INSERT INTO c VALUES ('a', 'b@x', 'b', 1, NULL)",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
            ConstraintKind::Unique,
        ),
        (
            "INSERT INTO c VALUES ('b', 'b@x', NULL, 1, NULL)",
            "SQLITE_CONSTRAINT_NOTNULL",
            ConstraintKind::NotNull,
        ),
        (
            "INSERT INTO c VALUES ('b', 'b@x', 'b', 0, NULL)",
            "SQLITE_CONSTRAINT_CHECK",
            ConstraintKind::Check,
        ),
        (
            "INSERT INTO c VALUES ('b', 'b@x', 'b', 1, 99)",
            "SQLITE_CONSTRAINT_FOREIGNKEY",
            ConstraintKind::ForeignKey,
        ),
    ];
    for (sql, code, kind) in cases {
        let err = block_on(conn.execute(sql, vec![])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Database, "{sql}");
        assert_eq!(err.code(), Some(code), "{sql}: {err}");
        assert_eq!(err.constraint_kind(), Some(kind), "{sql}");
        assert!(!err.is_retryable());
    }
    let err = block_on(conn.execute("INSERT INTO c VALUES ('b', 'b@x', 'b', 0, NULL)", vec![]))
        .unwrap_err();
    assert_eq!(err.constraint(), Some("positive"));
    let err = block_on(conn.execute("INSERT INTO c VALUES ('b', 'a@x', 'b', 1, NULL)", vec![]))
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().table.as_deref(), Some("c"));

    let err = block_on(conn.fetch_all("SELEC 1", vec![])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert_eq!(err.code(), Some("SQLITE_ERROR"));
    assert!(err.message().contains("syntax error"), "{err}");
    let err = block_on(conn.fetch_all("SELECT 1; SELECT 2", vec![])).unwrap_err();
    assert!(err.message().contains("more than one statement"), "{err}");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM c"), Value::Int(1));
}

#[test]
fn execute_counts_changes_and_runs_scripts() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let script = "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2); -- a comment\n INSERT INTO t VALUES (3);";
    assert_eq!(block_on(conn.execute(script, vec![])).unwrap(), 3);
    assert_eq!(
        block_on(conn.execute("UPDATE t SET x = x + 1", vec![])).unwrap(),
        3
    );
    // DDL after DML does not report the DML's count again.
    assert_eq!(
        block_on(conn.execute("CREATE TABLE u(y)", vec![])).unwrap(),
        0
    );
    // Statements that return rows are fine in execute.
    assert_eq!(
        block_on(conn.execute("PRAGMA user_version = 3", vec![])).unwrap(),
        0
    );
    assert_eq!(
        block_on(conn.execute("SELECT * FROM t", vec![])).unwrap(),
        0
    );
    assert_eq!(block_on(conn.execute("", vec![])).unwrap(), 0);
    assert_eq!(block_on(conn.execute("-- nothing", vec![])).unwrap(), 0);
    assert!(block_on(conn.fetch_all("", vec![])).unwrap().is_empty());
    let rows =
        block_on(conn.fetch_all("INSERT INTO t VALUES (9) RETURNING x * 2 AS d", vec![])).unwrap();
    assert_eq!(int(&rows[0], 0), 18);
    let err = block_on(conn.execute("INSERT INTO t VALUES ($1); SELECT 1", vec![Value::Int(1)]))
        .unwrap_err();
    assert!(err.message().contains("more than one statement"), "{err}");
}

#[test]
fn execute_many_is_one_atomic_batch() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)", vec![])).unwrap();
    let sets: Vec<Vec<Value>> = (0..1000)
        .map(|i| vec![Value::Int(i), Value::Text(format!("n{i}"))])
        .collect();
    assert_eq!(
        block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(sets))).unwrap(),
        1000
    );
    assert_eq!(
        block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(vec![]))).unwrap(),
        0
    );

    // A failing set rolls the whole batch back.
    let sets: Vec<Vec<Value>> = (1000..1100)
        .chain([5])
        .map(|i| vec![Value::Int(i), Value::Null])
        .collect();
    let err = block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(sets))).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
    assert!(err.message().starts_with("parameter set 100:"), "{err}");
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM t"),
        Value::Int(1000)
    );
    let err = block_on(conn.execute_many(
        "INSERT INTO t VALUES ($1, $2)",
        each(vec![vec![Value::Int(1)]]),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);

    // The sets travel in parts; a set failing in a later part undoes the earlier parts too, and
    // the message counts sets over the whole batch.
    let sets: Vec<Vec<Value>> = (2000..3000)
        .map(|i| vec![Value::Int(if i == 2700 { 7 } else { i }), Value::Null])
        .collect();
    let err = block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(sets))).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
    assert!(err.message().starts_with("parameter set 700:"), "{err}");
    let mut ragged: Vec<Vec<Value>> = (3000..3600)
        .map(|i| vec![Value::Int(i), Value::Null])
        .collect();
    ragged[555].pop();
    let err =
        block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(ragged))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(err.message().starts_with("parameter set 555:"), "{err}");
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM t"),
        Value::Int(1000)
    );

    // Given up on after every part was sent: nothing of it stays, and the connection goes on.
    let sets: Vec<Vec<Value>> = (4000..100_000)
        .map(|i| vec![Value::Int(i), Value::Text(format!("n{i}"))])
        .collect();
    {
        let mut batch = conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(sets));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(batch.as_mut().poll(&mut cx).is_pending());
    }
    block_on(conn.reset()).unwrap();
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM t"),
        Value::Int(1000)
    );

    // Inside a transaction it is a savepoint: the batch goes, the transaction stays.
    block_on(conn.begin(&TransactionOptions::new())).unwrap();
    block_on(conn.execute("DELETE FROM t WHERE id < 10", vec![])).unwrap();
    let bad = vec![
        vec![Value::Int(5000), Value::Null],
        vec![Value::Int(20), Value::Null],
    ];
    assert!(block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(bad))).is_err());
    let good = vec![vec![Value::Int(6000), Value::Null]];
    assert_eq!(
        block_on(conn.execute_many("INSERT INTO t VALUES ($1, $2)", each(good))).unwrap(),
        1
    );
    block_on(conn.commit()).unwrap();
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM t"), Value::Int(991));
}

#[test]
fn transactions_and_savepoints() {
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        {
            let mut inner = tx.begin().await.unwrap();
            inner.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
            inner.rollback().await.unwrap();
        }
        {
            let mut inner = tx.begin().await.unwrap();
            inner.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
            inner.commit().await.unwrap();
        }
        tx.commit().await.unwrap();
        let rows = conn
            .fetch_all_as::<(i64,)>("SELECT x FROM t ORDER BY x", ())
            .await
            .unwrap();
        assert_eq!(rows, [(1,), (3,)]);
        {
            let mut tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
            // Dropped without commit: rolled back before the next use.
        }
        assert_eq!(
            conn.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
                .await
                .unwrap(),
            2
        );
        let tx = conn
            .begin_with(anysql_core::TransactionOptions::new().immediate(true))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    });
    // Rollback outside a transaction is a no-op (the core may roll back after a COMMIT that went
    // through).
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.rollback()).unwrap();
    block_on(conn.begin(&TransactionOptions::new())).unwrap();
    block_on(conn.commit()).unwrap();
    block_on(conn.rollback()).unwrap();
    block_on(conn.reset()).unwrap();
    block_on(conn.ping()).unwrap();
}

#[test]
fn a_transaction_sqlite_rolled_back_stays_failed_until_rolled_back() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(conn.begin(&TransactionOptions::new())).unwrap();
    block_on(conn.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    // The transaction ends behind the caller's back.
    block_on(sqlite(&mut conn).run_sync(|c| c.execute_batch("ROLLBACK")))
        .unwrap()
        .unwrap();
    let err = block_on(conn.execute("INSERT INTO t VALUES (2)", vec![])).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_ABORT_ROLLBACK"), "{err}");
    assert!(err.is_retryable());
    let err = block_on(conn.commit()).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_ABORT_ROLLBACK"));
    block_on(conn.rollback()).unwrap();
    assert_eq!(
        block_on(conn.execute("INSERT INTO t VALUES (3)", vec![])).unwrap(),
        1
    );
    assert_eq!(
        scalar(&mut conn, "SELECT group_concat(x) FROM t"),
        Value::Text("3".into())
    );
}

/// A transaction an application opened with its own `BEGIN` is tracked as the core's are: once
/// SQLite has ended it by itself, the connection still counts as in a transaction, so the pool
/// resets it rather than hand the next caller a connection whose statements fail.
#[test]
fn an_aborted_raw_transaction_is_reset_before_reuse() {
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("CREATE TABLE t(x)", ()).await.unwrap();
        conn.execute("BEGIN", ()).await.unwrap();
        conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        conn.run_sync(|c| c.execute_batch("ROLLBACK"))
            .await
            .unwrap()
            .unwrap();
        let err = conn
            .execute("INSERT INTO t VALUES (2)", ())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SQLITE_ABORT_ROLLBACK"), "{err}");
        drop(conn);
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
        let n: i64 = conn
            .fetch_scalar("SELECT count(*) FROM t", ())
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Streaming

const COUNT_TO: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                        SELECT i, 'row ' || i AS label FROM n";

#[test]
fn streams_large_results_in_bounded_chunks() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let mut stream = conn.fetch(COUNT_TO, vec![Value::Int(100_000)]);
    let first = block_on(stream.next()).unwrap().unwrap();
    assert_eq!(
        (int(&first, 0), first.get::<String>("label").unwrap()),
        (1, "row 1".to_owned())
    );
    drop(stream);
    block_on(conn.ping()).unwrap(); // the worker is done with that stream
    sqlite(&mut conn)
        .shared()
        .streamed_rows
        .store(0, Ordering::Relaxed);
    let mut stream = conn.fetch(COUNT_TO, vec![Value::Int(100_000)]);
    // Let the worker run ahead as far as it can, then check it stopped at the buffer's bound: the
    // chunk being read, two queued, and one waiting to be queued.
    let _ = block_on(stream.next()).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(stream);
    let produced = sqlite(&mut conn)
        .shared()
        .streamed_rows
        .load(Ordering::Relaxed);
    assert!(
        produced <= 4 * 256,
        "the worker ran ahead by {produced} rows"
    );

    let mut stream = conn.fetch(COUNT_TO, vec![Value::Int(100_000)]);
    let mut count = 0;
    let mut sum = 0;
    block_on(async {
        while let Some(row) = stream.next().await {
            let row = row.unwrap();
            count += 1;
            sum += int(&row, 0);
        }
    });
    assert_eq!((count, sum), (100_000, 100_000 * 100_001 / 2));
    drop(stream);
    let err = block_on(conn.fetch("SELECT * FROM nowhere", vec![]).next())
        .unwrap()
        .unwrap_err();
    assert!(err.message().contains("no such table"), "{err}");
    let mut empty = conn.fetch("SELECT 1 WHERE 0", vec![]);
    assert!(block_on(empty.next()).is_none());
}

#[test]
fn a_dropped_stream_stops_the_query_and_the_connection_goes_on() {
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        let started = Instant::now();
        {
            // A billion rows: only stopping early finishes in time.
            let mut rows = conn.fetch(COUNT_TO, (1_000_000_000,));
            for _ in 0..10 {
                rows.next().await.unwrap().unwrap();
            }
        }
        assert_eq!(
            conn.fetch_scalar::<i64>("SELECT 41 + 1", ()).await.unwrap(),
            42
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Same inside a transaction, where the statement is not interrupted but stopped between rows.
        let mut tx = conn.begin().await.unwrap();
        {
            let mut rows = tx.fetch(COUNT_TO, (1_000_000_000,));
            rows.next().await.unwrap().unwrap();
        }
        assert_eq!(tx.fetch_scalar::<i64>("SELECT 7", ()).await.unwrap(), 7);
        tx.commit().await.unwrap();
    });
}

#[test]
fn large_fetches_arrive_whole_and_in_order() {
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        // Enough rows for several batches of a pipelined fetch.
        let rows = conn.fetch_all(COUNT_TO, (5_000,)).await.unwrap();
        assert_eq!(rows.len(), 5_000);
        for (i, row) in rows.iter().enumerate() {
            let n = i as i64 + 1;
            assert_eq!(row.get::<i64>(0).unwrap(), n);
            assert_eq!(row.get::<String>("label").unwrap(), format!("row {n}"));
        }
        let typed: Vec<(i64, String)> = conn.fetch_all_as(COUNT_TO, (5_000,)).await.unwrap();
        assert_eq!(typed.len(), 5_000);
        assert!(typed
            .iter()
            .enumerate()
            .all(|(i, (n, label))| *n == i as i64 + 1 && *label == format!("row {n}")));

        // A type that implements only `from_row` decodes through the default `from_row_mut`.
        #[derive(Debug, PartialEq)]
        struct Labelled(String, i64);
        impl FromRow for Labelled {
            fn from_row(row: Row) -> Result<Self, anysql_core::Error> {
                Ok(Labelled(row.get("label")?, row.get(0)?))
            }
        }
        let labelled: Vec<Labelled> = conn.fetch_all_as(COUNT_TO, (3_000,)).await.unwrap();
        assert_eq!(labelled.len(), 3_000);
        assert_eq!(labelled[2_999], Labelled("row 3000".to_owned(), 3_000));
        let none: Vec<Labelled> = conn
            .fetch_all_as("SELECT 1, 'one' AS label WHERE 0", ())
            .await
            .unwrap();
        assert!(none.is_empty());
    });
}

#[test]
fn a_decode_error_half_way_through_a_large_fetch_leaves_the_connection_usable() {
    const ODD_ROW_OUT: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                               WHERE i < 100000) SELECT CASE WHEN i = 3000 THEN 'oops' ELSE i END FROM n";
    const BAD_UTF8: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                            WHERE i < 5000) SELECT CASE WHEN i = 4000 THEN CAST(x'ff' AS TEXT) \
                            ELSE 'fine' END AS word FROM n";
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        for _ in 0..2 {
            let err = conn
                .fetch_all_as::<(i64,)>(ODD_ROW_OUT, ())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
            // Nothing of the abandoned fetch reaches the next queries.
            assert_eq!(conn.fetch_scalar::<i64>("SELECT 42", ()).await.unwrap(), 42);
            let rows: Vec<(i64,)> = conn
                .fetch_all_as("SELECT 1 UNION ALL SELECT 2", ())
                .await
                .unwrap();
            assert_eq!(rows, vec![(1,), (2,)]);
        }
        let err = conn.fetch_all(BAD_UTF8, ()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        assert!(err.message().contains("column 0 (\"word\")"), "{err}");
        // A stream stops at the row it cannot decode.
        let mut rows = conn.fetch(BAD_UTF8, ());
        let mut good = 0;
        let err = loop {
            match rows.next().await.unwrap() {
                Ok(row) => {
                    assert_eq!(row.get::<String>(0).unwrap(), "fine");
                    good += 1;
                }
                Err(err) => break err,
            }
        };
        assert_eq!((good, err.kind()), (3_999, ErrorKind::Decode), "{err}");
        assert!(rows.next().await.is_none());
        drop(rows);
        assert_eq!(conn.fetch_scalar::<i64>("SELECT 43", ()).await.unwrap(), 43);
        // Inside a transaction the statement is stopped between rows, and the transaction goes on.
        let mut tx = conn.begin().await.unwrap();
        tx.execute("CREATE TABLE kept(x)", ()).await.unwrap();
        let err = tx
            .fetch_all_as::<(i64,)>(ODD_ROW_OUT, ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        tx.execute("INSERT INTO kept VALUES (1)", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            conn.fetch_scalar::<i64>("SELECT count(*) FROM kept", ())
                .await
                .unwrap(),
            1
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Panics, cancellation, lifecycle

#[test]
fn a_panic_in_run_sync_is_an_error_and_the_connection_survives() {
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("CREATE TABLE t(x)", ()).await.unwrap();
        let err = conn
            .run_sync(|_| -> () { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic);
        assert!(err.message().contains("boom"), "{err}");
        let n = conn
            .run_sync(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(from_rusqlite)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);

        // A panic inside a transaction rolls it back; the transaction then fails until dropped.
        let mut tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let err = tx
            .run_sync(|_| -> () { panic!("in a transaction") })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic);
        let err = tx
            .execute("INSERT INTO t VALUES (2)", ())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SQLITE_ABORT_ROLLBACK"), "{err}");
        drop(tx);
        assert_eq!(
            conn.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
                .await
                .unwrap(),
            0
        );
        conn.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
        assert_eq!(
            conn.fetch_scalar::<i64>("SELECT count(*) FROM t", ())
                .await
                .unwrap(),
            1
        );
    });
}

#[test]
fn run_sync_reaches_rusqlite() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let version = block_on(sqlite(&mut conn).run_sync(|c| {
        c.query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
            .unwrap()
    }))
    .unwrap();
    assert!(version.starts_with("3."), "{version}");
    let engine = engine("sqlite::memory:");
    let mut pooled = block_on(engine.acquire()).unwrap();
    let name = block_on(pooled.run_sync(|c| {
        std::thread::current().name().map(str::to_owned) == Some("anysql-sqlite".into())
            && c.is_autocommit()
    }))
    .unwrap();
    assert!(name);
}

#[test]
fn a_dropped_future_cancels_a_long_query() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let started = Instant::now();
    drop(conn.fetch_all("SELECT 1", vec![])); // never polled: nothing was sent
    let count = format!("SELECT count(*) FROM ({})", COUNT_TO);
    let result = block_on(futures_lite::future::or(
        async {
            Some(
                conn.fetch_all(&count, vec![Value::Int(1_000_000_000)])
                    .await,
            )
        },
        async {
            Sleep(Instant::now() + Duration::from_millis(100)).await;
            None
        },
    ));
    assert!(result.is_none());
    block_on(conn.reset()).unwrap();
    assert_eq!(scalar(&mut conn, "SELECT 5"), Value::Int(5));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "interrupted: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_future_dropped_before_the_worker_starts_it_is_skipped() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE t(x)", vec![])).unwrap();
    let conn = sqlite(&mut conn);
    let mut cx = Context::from_waker(Waker::noop());
    {
        // Keep the worker busy for a while...
        let mut busy = Box::pin(conn.run_sync(|_| std::thread::sleep(Duration::from_millis(200))));
        assert!(busy.as_mut().poll(&mut cx).is_pending());
    }
    {
        // ...queue an insert behind it, and give up on it.
        let mut insert = conn.execute("INSERT INTO t VALUES (1)", vec![]);
        assert!(insert.as_mut().poll(&mut cx).is_pending());
    }
    let n = block_on(conn.fetch_optional("SELECT count(*) FROM t", vec![]))
        .unwrap()
        .unwrap();
    assert_eq!(int(&n, 0), 0);
}

#[test]
fn the_cancel_handle_interrupts_the_running_statement() {
    let (_c, mut conn) = connect("sqlite::memory:");
    let handle = conn.cancel_handle().unwrap();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        block_on(handle.cancel()).unwrap();
    });
    let count = format!("SELECT count(*) FROM ({})", COUNT_TO);
    let err = block_on(conn.fetch_all(&count, vec![Value::Int(1_000_000_000)])).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_INTERRUPT"), "{err}");
    canceller.join().unwrap();
    assert_eq!(scalar(&mut conn, "SELECT 6"), Value::Int(6));
}

#[test]
fn close_stops_the_thread_and_drop_too() {
    let (_c, mut conn) = connect("sqlite::memory:");
    assert!(!conn.is_broken());
    let shared_alive = Arc::clone(sqlite(&mut conn).shared());
    block_on(conn.close()).unwrap();
    assert!(!shared_alive.is_alive());

    let (_c, mut conn) = connect("sqlite::memory:");
    let shared = Arc::clone(sqlite(&mut conn).shared());
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.is_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!shared.is_alive());
}

#[test]
fn columns_follow_schema_changes_and_lost_replies() {
    // No busy-polling, so that a first poll returns before the reply is in.
    let (_c, mut conn) = connect("sqlite::memory:?busy_poll=0");
    block_on(conn.execute("CREATE TABLE t(a); INSERT INTO t VALUES (1)", vec![])).unwrap();
    let rows = block_on(conn.fetch_all("SELECT * FROM t", vec![])).unwrap();
    assert_eq!(rows[0].columns().names().collect::<Vec<_>>(), ["a"]);
    block_on(conn.execute("ALTER TABLE t ADD COLUMN b DEFAULT 2", vec![])).unwrap();
    let rows = block_on(conn.fetch_all("SELECT * FROM t", vec![])).unwrap();
    assert_eq!(rows[0].columns().names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(rows[0].values(), &[Value::Int(1), Value::Int(2)]);

    // A reply that carried a statement's columns is lost with its future: the next one brings them
    // again. The worker's lock, held here for the first poll, keeps the reply from coming in
    // before that poll returns, however the threads are scheduled.
    let mut cx = Context::from_waker(Waker::noop());
    let cell = Arc::clone(sqlite(&mut conn).worker_cell());
    {
        let held = cell.lock().unwrap();
        let mut lost = conn.fetch_all("SELECT a AS first FROM t", vec![]);
        assert!(lost.as_mut().poll(&mut cx).is_pending());
        drop(held);
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = block_on(conn.fetch_all("SELECT a AS first FROM t", vec![])).unwrap();
    assert_eq!(
        (rows[0].columns().name(0), int(&rows[0], 0)),
        (Some("first"), 1)
    );
    // Same for a command skipped by the worker before it ran.
    {
        let conn = sqlite(&mut conn);
        let mut busy = Box::pin(conn.run_sync(|_| std::thread::sleep(Duration::from_millis(100))));
        assert!(busy.as_mut().poll(&mut cx).is_pending());
    }
    {
        let mut skipped = conn.fetch_all("SELECT b AS second FROM t", vec![]);
        assert!(skipped.as_mut().poll(&mut cx).is_pending());
    }
    let rows = block_on(conn.fetch_all("SELECT b AS second FROM t", vec![])).unwrap();
    assert_eq!(
        (rows[0].columns().name(0), int(&rows[0], 0)),
        (Some("second"), 2)
    );
}

// ---------------------------------------------------------------------------------------------
// The writer gate

/// The values of table `t`'s column `x`, in the order they were inserted, comma-separated.
fn xs_in_order(conn: &mut Box<dyn DriverConnection>) -> Value {
    scalar(
        conn,
        "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY rowid)",
    )
}

fn gate_of(conn: &mut Box<dyn DriverConnection>) -> Arc<WriterGate> {
    Arc::clone(sqlite(conn).writer_gate().expect("a writer gate"))
}

/// Waits (up to 5 s) until `writers` hold or wait for the gate.
fn await_writers(gate: &WriterGate, writers: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.writers() != writers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(gate.writers(), writers);
}

fn is_busy(err: &anysql_core::Error) -> bool {
    err.code().is_some_and(|c| c.starts_with("SQLITE_BUSY"))
}

#[test]
fn concurrent_writers_take_turns_without_busy_errors() {
    let dir = TempDir::new();
    // busy_timeout=0: without the gate, SQLite would fail a writer at once.
    let (connector, mut conn) = connect(&dir.url("w.db", "?busy_timeout=0"));
    block_on(conn.execute("CREATE TABLE t(w INTEGER, i INTEGER)", vec![])).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|_| block_on(connector.connect(&runtime())).unwrap())
        .collect();
    let threads: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(w, mut writer)| {
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                for i in 0..500 {
                    let params = vec![Value::Int(w as i64), Value::Int(i)];
                    if let Err(e) =
                        block_on(writer.execute("INSERT INTO t VALUES ($1, $2)", params))
                    {
                        errors.push(e);
                    }
                }
                errors
            })
        })
        .collect();
    let errors: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM t"),
        Value::Int(4000)
    );
    assert_eq!(gate_of(&mut conn).writers(), 0);
}

#[test]
fn a_writer_waits_for_the_gate_and_fails_at_once_without_it() {
    let dir = TempDir::new();
    // Without the gate: SQLite refuses the second writer at once.
    let (connector, mut a) = connect(&dir.url("g.db", "?busy_timeout=0&writer_gate=false"));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    assert!(sqlite(&mut a).writer_gate().is_none());
    block_on(a.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    let err = block_on(b.execute("INSERT INTO t VALUES (2)", vec![])).unwrap_err();
    assert!(is_busy(&err), "{err}");
    block_on(a.rollback()).unwrap();
    // Closed, not dropped: the next open must not race with their closing (busy_timeout=0).
    block_on(a.close()).unwrap();
    block_on(b.close()).unwrap();
    drop(connector);

    // With it: the second writer waits until the first commits.
    let (connector, mut a) = connect(&dir.url("g.db", "?busy_timeout=0"));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    let gate = gate_of(&mut a);
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let result = block_on(b.execute("INSERT INTO t VALUES (2)", vec![]));
        (result, started.elapsed())
    });
    await_writers(&gate, 2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished());
    block_on(a.commit()).unwrap();
    let (result, waited) = writer.join().unwrap();
    assert_eq!(result.unwrap(), 1);
    assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
    assert_eq!(xs_in_order(&mut a), Value::Text("1,2".into()));
    assert_eq!(gate.writers(), 0);
}

#[test]
fn immediate_transactions_serialize_in_arrival_order() {
    let dir = TempDir::new();
    let (connector, mut a) = connect(&dir.url("f.db", "?busy_timeout=0"));
    let gate = gate_of(&mut a);
    block_on(a.execute(
        "CREATE TABLE t(x); CREATE TABLE c(n); INSERT INTO c VALUES (0)",
        vec![],
    ))
    .unwrap();
    let immediate = TransactionOptions::new().immediate(true);
    block_on(a.begin(&immediate)).unwrap();
    let mut threads = Vec::new();
    for i in 1..=3 {
        let mut conn = block_on(connector.connect(&runtime())).unwrap();
        threads.push(std::thread::spawn(move || {
            block_on(async {
                conn.begin(&immediate).await?;
                conn.execute("INSERT INTO t VALUES ($1)", vec![Value::Int(i)])
                    .await?;
                conn.commit().await
            })
        }));
        // Each one queues behind the previous before the next comes.
        await_writers(&gate, 1 + i as u64);
    }
    block_on(a.execute("INSERT INTO t VALUES (0)", vec![])).unwrap();
    block_on(a.commit()).unwrap();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(xs_in_order(&mut a), Value::Text("0,1,2,3".into()));

    // Read-modify-write transactions from four connections: none fails, none loses an update.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut conn = block_on(connector.connect(&runtime())).unwrap();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    block_on(async {
                        conn.begin(&immediate).await?;
                        let n = conn.fetch_optional("SELECT n FROM c", vec![]).await?;
                        let n = int(&n.unwrap(), 0);
                        conn.execute("UPDATE c SET n = $1", vec![Value::Int(n + 1)])
                            .await?;
                        conn.commit().await
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(scalar(&mut a, "SELECT n FROM c"), Value::Int(200));
    assert_eq!(gate.writers(), 0);
}

#[test]
fn the_gate_is_released_however_the_transaction_ends() {
    let dir = TempDir::new();
    let (connector, mut a) = connect(&dir.url("r.db", "?busy_timeout=0"));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    let gate = gate_of(&mut a);
    block_on(a.execute(
        "CREATE TABLE t(x); CREATE TABLE p(id INTEGER PRIMARY KEY); \
         CREATE TABLE c(p REFERENCES p DEFERRABLE INITIALLY DEFERRED)",
        vec![],
    ))
    .unwrap();
    assert_eq!(gate.writers(), 0, "a script releases the gate at its end");
    let mut other_writes = |gate: &WriterGate| {
        assert_eq!(gate.writers(), 0);
        assert_eq!(
            block_on(b.execute("INSERT INTO t VALUES (0)", vec![])).unwrap(),
            1
        );
    };

    // Reads never take it; a deferred transaction takes it at its first write, until reset.
    block_on(a.begin(&TransactionOptions::new())).unwrap();
    scalar(&mut a, "SELECT count(*) FROM t");
    assert_eq!(gate.writers(), 0);
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    assert_eq!(gate.writers(), 1);
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    assert_eq!(gate.writers(), 1);
    block_on(a.reset()).unwrap();
    other_writes(&gate);

    // An immediate transaction takes it at BEGIN; ROLLBACK releases it.
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    assert_eq!(gate.writers(), 1);
    block_on(a.rollback()).unwrap();
    other_writes(&gate);

    // SQLite ends the transaction behind the caller's back.
    block_on(a.begin(&TransactionOptions::new())).unwrap();
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    block_on(a.execute("ROLLBACK", vec![])).unwrap();
    other_writes(&gate);
    block_on(a.rollback()).unwrap();

    // A COMMIT that fails (a deferred foreign key is violated) ends the transaction too.
    block_on(a.begin(&TransactionOptions::new())).unwrap();
    block_on(a.execute("INSERT INTO c VALUES (99)", vec![])).unwrap();
    assert_eq!(gate.writers(), 1);
    let err = block_on(a.commit()).unwrap_err();
    assert_eq!(
        err.constraint_kind(),
        Some(ConstraintKind::ForeignKey),
        "{err}"
    );
    other_writes(&gate);

    // A panic on the worker inside a transaction rolls it back.
    block_on(a.begin(&TransactionOptions::new())).unwrap();
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    let err = block_on(sqlite(&mut a).run_sync(|_| -> () { panic!("boom") })).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    other_writes(&gate);
    block_on(a.rollback()).unwrap();

    // Autocommit writes and batches hold it only while they run.
    block_on(a.execute_many(
        "INSERT INTO t VALUES ($1)",
        each(vec![vec![Value::Int(1)], vec![Value::Int(2)]]),
    ))
    .unwrap();
    block_on(a.fetch_all("INSERT INTO t VALUES (3) RETURNING x", vec![])).unwrap();
    other_writes(&gate);

    // A batch failing in its last part, in an earlier part, or before it starts releases it too.
    for failing_set in [1, 300] {
        let sets = (0..400)
            .map(|i| {
                let x = if i == failing_set {
                    Value::Text("not a row".into())
                } else {
                    Value::Int(i)
                };
                vec![x]
            })
            .collect();
        assert!(block_on(a.execute_many("INSERT INTO p VALUES ($1)", each(sets))).is_err());
        other_writes(&gate);
    }
    let ragged = vec![vec![Value::Int(1)], vec![Value::Int(2), Value::Int(3)]];
    assert!(block_on(a.execute_many("INSERT INTO t VALUES ($1)", each(ragged))).is_err());
    other_writes(&gate);

    // Closing a connection that holds it.
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    block_on(a.close()).unwrap();
    other_writes(&gate);

    // Dropping one.
    let mut d = block_on(connector.connect(&runtime())).unwrap();
    block_on(d.begin(&TransactionOptions::new().immediate(true))).unwrap();
    block_on(d.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    drop(d);
    await_writers(&gate, 0);
    other_writes(&gate);
    // Only b's eleven autocommit inserts stayed, and a's three autocommit ones.
    assert_eq!(scalar(&mut b, "SELECT count(*) FROM t"), Value::Int(11 + 3));
}

#[test]
fn a_writer_whose_caller_gave_up_leaves_the_queue() {
    let dir = TempDir::new();
    let (connector, mut a) = connect(&dir.url("q.db", "?busy_timeout=0"));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    let gate = gate_of(&mut a);
    block_on(a.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(a.begin(&TransactionOptions::new().immediate(true))).unwrap();
    {
        let mut insert = b.execute("INSERT INTO t VALUES (2)", vec![]);
        assert!(block_on(futures_lite::future::poll_once(&mut insert)).is_none());
        await_writers(&gate, 2);
        // Dropped while its worker waits for the gate.
    }
    await_writers(&gate, 1);
    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    block_on(a.commit()).unwrap();
    assert_eq!(gate.writers(), 0);
    assert_eq!(
        block_on(b.execute("INSERT INTO t VALUES (3)", vec![])).unwrap(),
        1
    );
    assert_eq!(xs_in_order(&mut b), Value::Text("1,3".into()));
}

#[test]
fn an_immediate_begin_whose_caller_gave_up_leaves_the_queue() {
    let dir = TempDir::new();
    let (connector, mut a) = connect(&dir.url("qb.db", ""));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    let gate = gate_of(&mut a);
    let immediate = TransactionOptions::new().immediate(true);
    block_on(a.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(a.begin(&immediate)).unwrap();
    {
        let mut begin = std::pin::pin!(b.begin(&immediate));
        assert!(block_on(futures_lite::future::poll_once(&mut begin)).is_none());
        await_writers(&gate, 2);
        // Dropped while b's thread waits for the gate.
    }
    // b's thread leaves the line without waiting for a's commit, and begins nothing.
    await_writers(&gate, 1);
    assert!(!b.in_transaction());

    // The cancel handle ends the wait too; the caller sees a cancellation.
    let handle = b.cancel_handle().unwrap();
    let (ended, end) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let result = block_on(b.begin(&immediate));
        ended.send(()).unwrap();
        (b, result)
    });
    await_writers(&gate, 2);
    block_on(handle.cancel()).unwrap();
    end.recv_timeout(Duration::from_secs(5))
        .expect("the cancel handle ends the wait for the gate");
    let (mut b, result) = waiter.join().unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_INTERRUPT"), "{err}");
    await_writers(&gate, 1);
    assert!(!b.in_transaction());

    block_on(a.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    block_on(a.commit()).unwrap();
    assert_eq!(gate.writers(), 0);
    // b writes in a transaction of its own as before.
    block_on(b.begin(&immediate)).unwrap();
    block_on(b.execute("INSERT INTO t VALUES (2)", vec![])).unwrap();
    block_on(b.commit()).unwrap();
    assert_eq!(gate.writers(), 0);
    assert_eq!(xs_in_order(&mut b), Value::Text("1,2".into()));
}

// ---------------------------------------------------------------------------------------------
// Inline statements

/// Makes every read-only fetch of `conn` quick, whatever it takes (tests run unoptimised builds).
fn always_quick(conn: &mut Box<dyn DriverConnection>) {
    sqlite(conn)
        .shared()
        .always_quick
        .store(true, Ordering::Relaxed);
}

/// A connection of its own, which no writer gate knows (as another process's), runs `sql`, which
/// leaves a transaction open, commits it `hold` later, and ends; returns once it runs.
fn hold_database(path: PathBuf, sql: &'static str, hold: Duration) -> std::thread::JoinHandle<()> {
    let locked = Arc::new(std::sync::Barrier::new(2));
    let holder = {
        let locked = Arc::clone(&locked);
        std::thread::spawn(move || {
            let other = rusqlite::Connection::open(path).unwrap();
            other.execute_batch(sql).unwrap();
            locked.wait();
            std::thread::sleep(hold);
            other.execute_batch("COMMIT").unwrap();
        })
    };
    locked.wait();
    holder
}

/// How many fetches of `conn` have run inline so far.
fn inline_runs(conn: &mut Box<dyn DriverConnection>) -> u64 {
    sqlite(conn).shared().inline_runs.load(Ordering::Relaxed)
}

#[test]
fn a_quick_read_runs_inline_from_its_second_fetch_on() {
    let dir = TempDir::new();
    let (_c, mut conn) = connect(&dir.url("inline.db", ""));
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)", vec![])).unwrap();
    block_on(conn.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", vec![])).unwrap();
    let name = |conn: &mut Box<dyn DriverConnection>, id: i64| {
        block_on(conn.fetch_optional("SELECT name FROM t WHERE id = $1", vec![Value::Int(id)]))
            .unwrap()
            .map(|row| row.get::<String>(0).unwrap())
    };
    // The first fetch goes to the connection's thread, which times it; the next ones run here.
    assert_eq!(name(&mut conn, 1).as_deref(), Some("one"));
    assert_eq!(inline_runs(&mut conn), 0);
    assert_eq!(name(&mut conn, 2).as_deref(), Some("two"));
    assert_eq!(name(&mut conn, 3), None);
    assert_eq!(inline_runs(&mut conn), 2);
    // Inline reads see the connection's transaction, as any statement does.
    block_on(conn.begin(&TransactionOptions::default())).unwrap();
    block_on(conn.execute("UPDATE t SET name = 'uno' WHERE id = 1", vec![])).unwrap();
    assert_eq!(name(&mut conn, 1).as_deref(), Some("uno"));
    block_on(conn.rollback()).unwrap();
    assert_eq!(name(&mut conn, 1).as_deref(), Some("one"));
    assert_eq!(inline_runs(&mut conn), 4);
    // fetch_all and streams always go through the thread.
    assert_eq!(
        block_on(conn.fetch_all("SELECT name FROM t WHERE id = $1", vec![Value::Int(1)]))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(inline_runs(&mut conn), 4);

    let (_c, mut off) = connect(&dir.url("inline.db", "?inline_limit=0"));
    always_quick(&mut off);
    for _ in 0..3 {
        assert_eq!(name(&mut off, 2).as_deref(), Some("two"));
    }
    assert_eq!(inline_runs(&mut off), 0);
}

#[test]
fn writes_and_slow_reads_stay_on_the_connections_thread() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)", vec![])).unwrap();
    for id in 1..=3 {
        let row = block_on(conn.fetch_optional(
            "INSERT INTO t VALUES ($1) RETURNING id",
            vec![Value::Int(id)],
        ))
        .unwrap()
        .unwrap();
        assert_eq!(int(&row, 0), id);
    }
    // Counting to 200,000 takes milliseconds: far over the 100 µs default.
    let count = format!("SELECT count(*) FROM ({})", COUNT_TO);
    for _ in 0..3 {
        let row = block_on(conn.fetch_optional(&count, vec![Value::Int(200_000)]))
            .unwrap()
            .unwrap();
        assert_eq!(int(&row, 0), 200_000);
    }
    assert_eq!(inline_runs(&mut conn), 0);
    assert_eq!(
        block_on(conn.fetch_optional("SELECT count(*) FROM t", vec![]))
            .unwrap()
            .map(|r| int(&r, 0)),
        Some(3)
    );
}

#[test]
fn an_inline_read_runs_after_the_commands_sent_before_it() {
    let (_c, mut conn) = connect("sqlite::memory:");
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(x)", vec![])).unwrap();
    let count = |conn: &mut Box<dyn DriverConnection>| {
        int(
            &block_on(conn.fetch_optional("SELECT count(*) FROM t", vec![]))
                .unwrap()
                .unwrap(),
            0,
        )
    };
    assert_eq!((count(&mut conn), count(&mut conn)), (0, 0));
    let before = inline_runs(&mut conn);
    assert_eq!(before, 1);
    let mut cx = Context::from_waker(Waker::noop());
    {
        // A job that inserts a row once the worker gets to it (dropping its future does not stop
        // it), sent and given up on while the worker is still busy with a sleep.
        let conn = sqlite(&mut conn);
        let mut busy = Box::pin(conn.run_sync(|_| std::thread::sleep(Duration::from_millis(100))));
        assert!(busy.as_mut().poll(&mut cx).is_pending());
        drop(busy);
        let mut insert = Box::pin(conn.run_sync(|c| c.execute("INSERT INTO t VALUES (1)", [])));
        assert!(insert.as_mut().poll(&mut cx).is_pending());
    }
    // The count must wait for the insert, so it goes through the thread, after it.
    assert_eq!(count(&mut conn), 1);
    assert_eq!(inline_runs(&mut conn), before);
    assert_eq!(count(&mut conn), 1);
    assert_eq!(inline_runs(&mut conn), before + 1);

    // The same when the worker has taken the insert off its queue but not started it: here it
    // waits for the worker's lock, which this thread holds, and is most likely still waiting when
    // the count below finds the lock free.
    let cell = Arc::clone(sqlite(&mut conn).worker_cell());
    let held = cell.lock().unwrap();
    {
        let conn = sqlite(&mut conn);
        let mut insert = Box::pin(conn.run_sync(|c| c.execute("INSERT INTO t VALUES (2)", [])));
        assert!(insert.as_mut().poll(&mut cx).is_pending());
        drop(insert);
        while !conn.all_commands_taken() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(held);
    assert_eq!(count(&mut conn), 2);
}

#[test]
fn an_inline_read_that_finds_the_database_locked_waits_on_the_thread_instead() {
    let dir = TempDir::new();
    let url = dir.url("locked.db", "?journal_mode=delete&busy_timeout=5s");
    let (_c, mut conn) = connect(&url);
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(conn.execute("INSERT INTO t VALUES (7)", vec![])).unwrap();
    let read = |conn: &mut Box<dyn DriverConnection>| {
        block_on(conn.fetch_optional("SELECT x FROM t", vec![])).map(|row| int(&row.unwrap(), 0))
    };
    assert_eq!(read(&mut conn).unwrap(), 7);
    assert_eq!(read(&mut conn).unwrap(), 7);
    assert_eq!(inline_runs(&mut conn), 1);

    // Another process-like connection holds the database exclusively for a while: readers of a
    // rollback-journal database get SQLITE_BUSY until it commits.
    let release = Duration::from_millis(200);
    let holder = hold_database(
        dir.0.join("locked.db"),
        "BEGIN EXCLUSIVE; UPDATE t SET x = 8",
        release,
    );
    let started = Instant::now();
    // Inline, it would fail at once with SQLITE_BUSY (inline reads never wait); it waits on the
    // connection's thread instead, as `busy_timeout` says, and sees the committed value.
    assert_eq!(read(&mut conn).unwrap(), 8);
    assert!(started.elapsed() >= release / 2, "{:?}", started.elapsed());
    assert_eq!(inline_runs(&mut conn), 1);
    holder.join().unwrap();
    // The busy timeout is back for the connection's other statements.
    let timeout = block_on(sqlite(&mut conn).run_sync(|c| {
        c.query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0))
            .unwrap()
    }))
    .unwrap();
    assert_eq!(timeout, 5000);
}

#[test]
fn writes_run_inline_in_wal_mode_with_the_gate_free_or_held() {
    let dir = TempDir::new();
    let (_c, mut conn) = connect(&dir.url("writes.db", ""));
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", vec![])).unwrap();
    let insert = |conn: &mut Box<dyn DriverConnection>, id: i64| {
        block_on(conn.execute("INSERT INTO t VALUES ($1, 'x')", vec![Value::Int(id)])).unwrap()
    };
    // In autocommit mode each insert takes the writer gate, which is free: from the second on
    // (the first is timed on the thread), they run inline.
    for id in 1..=3 {
        assert_eq!(insert(&mut conn, id), 1);
    }
    assert_eq!(inline_runs(&mut conn), 2);
    assert_eq!(
        gate_of(&mut conn).writers(),
        0,
        "inline writes let go of the gate"
    );
    // In a transaction, from the first write on (on the thread: the transaction does not hold the
    // gate yet), the transaction holds the gate and the database's write lock: the next inserts
    // run inline.
    block_on(conn.begin(&TransactionOptions::default())).unwrap();
    for id in 4..=6 {
        assert_eq!(insert(&mut conn, id), 1);
    }
    assert_eq!(inline_runs(&mut conn), 4);
    // A failing one fails as it would on the thread, and the transaction goes on.
    let err =
        block_on(conn.execute("INSERT INTO t VALUES ($1, 'x')", vec![Value::Int(4)])).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"), "{err}");
    assert_eq!(insert(&mut conn, 7), 1);
    block_on(conn.rollback()).unwrap();
    let count = |conn: &mut Box<dyn DriverConnection>| {
        int(
            &block_on(conn.fetch_optional("SELECT count(*) FROM t", vec![]))
                .unwrap()
                .unwrap(),
            0,
        )
    };
    assert_eq!(
        count(&mut conn),
        3,
        "the rollback undid the inline inserts too"
    );
    block_on(conn.begin(&TransactionOptions::default())).unwrap();
    assert_eq!(insert(&mut conn, 8), 1);
    assert_eq!(insert(&mut conn, 9), 1);
    block_on(conn.commit()).unwrap();
    assert_eq!(count(&mut conn), 5);

    // Not in WAL mode, where a write may still need a lock: always on the thread.
    let (_c, mut memory) = connect("sqlite::memory:");
    always_quick(&mut memory);
    block_on(memory.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", vec![])).unwrap();
    block_on(memory.begin(&TransactionOptions::default())).unwrap();
    for id in 1..=3 {
        assert_eq!(insert(&mut memory, id), 1);
    }
    block_on(memory.commit()).unwrap();
    assert_eq!(inline_runs(&mut memory), 0);
}

#[test]
fn an_autocommit_write_waits_on_the_thread_while_another_writer_has_the_gate() {
    let dir = TempDir::new();
    let (connector, mut a) = connect(&dir.url("gate.db", ""));
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut a);
    block_on(a.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)", vec![])).unwrap();
    let insert = |conn: &mut Box<dyn DriverConnection>, id: i64| {
        block_on(conn.execute("INSERT INTO t VALUES ($1)", vec![Value::Int(id)])).unwrap()
    };
    insert(&mut a, 1);
    insert(&mut a, 2);
    assert_eq!(inline_runs(&mut a), 1);
    let gate = gate_of(&mut a);
    block_on(b.begin(&TransactionOptions::default().immediate(true))).unwrap();
    assert_eq!(gate.writers(), 1);
    // `a`'s next insert cannot take the gate at once: it goes to `a`'s thread, which waits in
    // turn (an inline statement never waits), and runs once `b` commits.
    let writer = std::thread::spawn(move || {
        insert(&mut a, 3);
        a
    });
    await_writers(&gate, 2);
    block_on(b.execute("INSERT INTO t VALUES ($1)", vec![Value::Int(100)])).unwrap();
    block_on(b.commit()).unwrap();
    let mut a = writer.join().unwrap();
    assert_eq!(
        inline_runs(&mut a),
        1,
        "the insert that had to wait ran on the thread"
    );
    insert(&mut a, 4);
    assert_eq!(inline_runs(&mut a), 2);
    assert_eq!(gate.writers(), 0);
    assert_eq!(
        int(
            &block_on(a.fetch_optional("SELECT count(*) FROM t", vec![]))
                .unwrap()
                .unwrap(),
            0
        ),
        5
    );
}

#[test]
fn transaction_control_runs_inline_in_wal_mode() {
    let dir = TempDir::new();
    let (connector, mut conn) = connect(&dir.url("control.db", ""));
    let mut other = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)", vec![])).unwrap();
    let gate = gate_of(&mut conn);
    let immediate = TransactionOptions::new().immediate(true);
    let insert = |conn: &mut Box<dyn DriverConnection>, id: i64| {
        block_on(conn.execute("INSERT INTO t VALUES ($1)", vec![Value::Int(id)])).unwrap()
    };
    let count = |conn: &mut Box<dyn DriverConnection>| scalar(conn, "SELECT count(*) FROM t");
    // The first round is timed on the thread: BEGIN IMMEDIATE, the insert, COMMIT.
    block_on(conn.begin(&immediate)).unwrap();
    insert(&mut conn, 1);
    block_on(conn.commit()).unwrap();
    assert_eq!(inline_runs(&mut conn), 0);
    // From the second on, all three run inline: BEGIN IMMEDIATE takes the free gate without
    // waiting, and COMMIT lets go of it.
    block_on(conn.begin(&immediate)).unwrap();
    assert_eq!(
        gate.writers(),
        1,
        "the inline BEGIN IMMEDIATE holds the gate"
    );
    insert(&mut conn, 2);
    block_on(conn.commit()).unwrap();
    assert_eq!(inline_runs(&mut conn), 3);
    assert_eq!(gate.writers(), 0, "the inline COMMIT let go of the gate");
    assert_eq!(
        count(&mut other),
        Value::Int(2),
        "the inline COMMIT committed"
    );
    // ROLLBACK too, from its second run on, and it undoes the transaction's writes.
    for (round, id) in [3, 4].into_iter().enumerate() {
        block_on(conn.begin(&immediate)).unwrap();
        insert(&mut conn, id);
        block_on(conn.rollback()).unwrap();
        assert_eq!(inline_runs(&mut conn), 5 + 3 * round as u64);
    }
    assert_eq!(
        count(&mut other),
        Value::Int(2),
        "the rollbacks undid the inserts"
    );
    assert_eq!(gate.writers(), 0);
    // A plain BEGIN (deferred) runs inline as well, and its COMMIT after a read.
    for _ in 0..2 {
        block_on(conn.begin(&TransactionOptions::default())).unwrap();
        assert_eq!(count(&mut conn), Value::Int(2));
        block_on(conn.commit()).unwrap();
    }

    // With the gate taken by another connection, BEGIN IMMEDIATE does not run inline (an inline
    // statement never waits): it waits on the connection's thread, in turn, and the rest of its
    // transaction runs inline once it has the gate.
    block_on(other.begin(&immediate)).unwrap();
    let before = inline_runs(&mut conn);
    let writer = std::thread::spawn(move || {
        block_on(conn.begin(&immediate)).unwrap();
        insert(&mut conn, 20);
        block_on(conn.commit()).unwrap();
        conn
    });
    await_writers(&gate, 2);
    block_on(other.execute("INSERT INTO t VALUES (10)", vec![])).unwrap();
    block_on(other.commit()).unwrap();
    let mut conn = writer.join().unwrap();
    assert_eq!(
        inline_runs(&mut conn),
        before + 2,
        "the BEGIN IMMEDIATE that had to wait ran on the thread, its insert and COMMIT inline"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT group_concat(id) FROM (SELECT id FROM t ORDER BY rowid)"
        ),
        Value::Text("1,2,10,20".into())
    );
    assert_eq!(gate.writers(), 0);

    // Not in WAL mode, where COMMIT may wait for readers: always on the thread.
    let (_c, mut memory) = connect("sqlite::memory:");
    always_quick(&mut memory);
    block_on(memory.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)", vec![])).unwrap();
    for _ in 0..3 {
        block_on(memory.begin(&immediate)).unwrap();
        block_on(memory.commit()).unwrap();
    }
    assert_eq!(inline_runs(&mut memory), 0);
}

#[test]
fn an_inline_commit_that_fails_ends_the_transaction_as_on_the_thread() {
    let dir = TempDir::new();
    let (_c, mut conn) = connect(&dir.url("commit-fails.db", ""));
    always_quick(&mut conn);
    block_on(conn.execute(
        "CREATE TABLE p(id INTEGER PRIMARY KEY); \
         CREATE TABLE c(p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
        vec![],
    ))
    .unwrap();
    let gate = gate_of(&mut conn);
    let immediate = TransactionOptions::new().immediate(true);
    let insert_child = |conn: &mut Box<dyn DriverConnection>, p: i64| {
        block_on(conn.execute("INSERT INTO c VALUES ($1)", vec![Value::Int(p)])).unwrap()
    };
    // Warm: the second round's BEGIN IMMEDIATE, insert and COMMIT run inline.
    block_on(conn.execute("INSERT INTO p VALUES (1)", vec![])).unwrap();
    for _ in 0..2 {
        block_on(conn.begin(&immediate)).unwrap();
        insert_child(&mut conn, 1);
        block_on(conn.commit()).unwrap();
    }
    let before = inline_runs(&mut conn);
    assert!(before >= 3, "{before}");

    // A child without its parent: the deferred foreign key fails the COMMIT, inline.
    block_on(conn.begin(&immediate)).unwrap();
    insert_child(&mut conn, 99);
    let err = block_on(conn.commit()).unwrap_err();
    assert_eq!(err.code(), Some("SQLITE_CONSTRAINT_FOREIGNKEY"), "{err}");
    assert_eq!(
        inline_runs(&mut conn),
        before + 3,
        "the failed COMMIT ran inline"
    );
    // As on other databases, and as on the connection's thread, a failed commit ends the
    // transaction: rolled back, the gate let go of, the next BEGIN works.
    assert!(!conn.in_transaction());
    assert_eq!(gate.writers(), 0);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM c"), Value::Int(2));
    block_on(conn.begin(&immediate)).unwrap();
    insert_child(&mut conn, 1);
    block_on(conn.commit()).unwrap();
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM c"), Value::Int(3));
}

#[test]
fn an_inline_begin_immediate_that_finds_the_database_locked_waits_on_the_thread_instead() {
    let dir = TempDir::new();
    let (_c, mut conn) = connect(&dir.url("begin-locked.db", "?busy_timeout=5s"));
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(x)", vec![])).unwrap();
    let immediate = TransactionOptions::new().immediate(true);
    for _ in 0..2 {
        block_on(conn.begin(&immediate)).unwrap();
        block_on(conn.commit()).unwrap();
    }
    assert_eq!(
        inline_runs(&mut conn),
        2,
        "BEGIN IMMEDIATE and COMMIT run inline"
    );
    let gate = gate_of(&mut conn);

    // A connection the gate does not know (another process, say) holds the write lock for a
    // while: an inline BEGIN IMMEDIATE would fail at once with SQLITE_BUSY.
    let release = Duration::from_millis(200);
    let holder = hold_database(
        dir.0.join("begin-locked.db"),
        "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)",
        release,
    );
    let started = Instant::now();
    // It gives the statement up to the connection's thread, which waits as `busy_timeout` says.
    block_on(conn.begin(&immediate)).unwrap();
    assert!(started.elapsed() >= release / 2, "{:?}", started.elapsed());
    assert_eq!(inline_runs(&mut conn), 2);
    assert_eq!(
        gate.writers(),
        1,
        "the transaction holds the gate, taken once"
    );
    block_on(conn.execute("INSERT INTO t VALUES (2)", vec![])).unwrap();
    block_on(conn.commit()).unwrap();
    holder.join().unwrap();
    assert_eq!(gate.writers(), 0);
    assert_eq!(xs_in_order(&mut conn), Value::Text("1,2".into()));
}

#[test]
fn inline_commits_leave_checkpoints_to_the_connections_thread() {
    let dir = TempDir::new();
    let (_c, mut conn) = connect(&dir.url("checkpoints.db", ""));
    always_quick(&mut conn);
    block_on(conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", vec![])).unwrap();
    // Each commit appends at least one frame to the log: 3,000 of them pass the 1,000-frame mark
    // more than twice.
    for id in 1..=3000 {
        let changed =
            block_on(conn.execute("INSERT INTO t VALUES ($1, 'x')", vec![Value::Int(id)])).unwrap();
        assert_eq!(changed, 1);
    }
    let shared = Arc::clone(sqlite(&mut conn).shared());
    let checkpoints = shared.checkpoints.load(Ordering::Relaxed);
    assert!(checkpoints >= 2, "{checkpoints} checkpoints");
    // The statement after each mark went to the thread, which checkpointed after it; the rest ran
    // inline.
    let inline = inline_runs(&mut conn);
    assert!((2990..3000).contains(&inline), "{inline} inline");
    // The checkpoints kept the log short: SQLite restarts it from the beginning after one.
    let wal = std::fs::metadata(dir.0.join("checkpoints.db-wal"))
        .unwrap()
        .len();
    assert!(wal < 1500 * (4096 + 24), "the log grew to {wal} bytes");
    let count = block_on(conn.fetch_optional("SELECT count(*) FROM t", vec![]))
        .unwrap()
        .unwrap();
    assert_eq!(int(&count, 0), 3000);
}

#[test]
fn a_loop_of_inline_statements_lets_other_tasks_run() {
    let (_c, mut conn) = connect("sqlite::memory:");
    always_quick(&mut conn);
    // Counts how often the executor gets to poll it: only when the loop below returns `Pending`.
    let polls = std::cell::Cell::new(0);
    let other = std::future::poll_fn(|cx: &mut Context<'_>| {
        polls.set(polls.get() + 1);
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    });
    let mut polls_while_inline = 0;
    let looping = async {
        // The first run goes through the connection's thread (and may wait); the rest are inline.
        block_on(conn.fetch_optional("SELECT $1", vec![Value::Int(0)])).unwrap();
        let before = polls.get();
        for i in 1..1000 {
            let row = conn
                .fetch_optional("SELECT $1", vec![Value::Int(i)])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(int(&row, 0), i);
        }
        polls_while_inline = polls.get() - before;
    };
    block_on(futures_lite::future::or(looping, other));
    assert_eq!(inline_runs(&mut conn), 999);
    // Once every 128 inline statements the loop yields, and the other task runs.
    assert!(
        polls_while_inline >= 7,
        "the other task ran {polls_while_inline} times"
    );
}

/// A `run_sync` future that has started.
type Started<'a> = Pin<Box<dyn Future<Output = Result<(), anysql_core::Error>> + Send + 'a>>;

/// Starts a `run_sync` on `conn` that holds its connection's thread until the returned sender
/// sends (or drops), and polls it once: its caller is then waiting for that thread.
fn wait_on_thread(
    conn: &mut Box<dyn DriverConnection>,
) -> (Started<'_>, std::sync::mpsc::Sender<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let mut waiting: Started<'_> = Box::pin(sqlite(conn).run_sync(move |_| {
        let _ = released.recv();
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    (waiting, release)
}

/// Runs `statements` fetches of `sql` (with `$1` = their index) on `conn` beside a task that
/// counts its polls, and returns how many times that task was polled during each fetch (a fetch
/// that yields first lets it run).
fn polls_between_fetches(
    conn: &mut Box<dyn DriverConnection>,
    sql: &str,
    statements: usize,
) -> Vec<u32> {
    let polls = std::cell::Cell::new(0);
    let other = std::future::poll_fn(|cx: &mut Context<'_>| {
        polls.set(polls.get() + 1);
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    });
    let mut between = Vec::new();
    let looping = async {
        for i in 0..statements {
            let before = polls.get();
            conn.fetch_optional(sql, vec![Value::Int(i as i64)])
                .await
                .unwrap()
                .unwrap();
            between.push(polls.get() - before);
        }
    };
    block_on(futures_lite::future::or(looping, other));
    between
}

#[test]
fn inline_statements_go_on_beside_a_waiting_caller_in_short_slices() {
    let (connector, mut a) = connect("sqlite::memory:");
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut a);
    // Each run counts to 20,000: far longer than a slice, even in a release build.
    let slow = format!("SELECT count(*) + $1 - $1 FROM ({COUNT_TO})").replace("$1)", "20000)");
    let cheap = "SELECT $1";
    for sql in [slow.as_str(), cheap] {
        block_on(a.fetch_optional(sql, vec![Value::Int(0)])).unwrap();
    }
    assert_eq!(inline_runs(&mut a), 0);

    // Alone, a task runs 128 inline statements before it yields: these slow ones go on in a row.
    let alone = polls_between_fetches(&mut a, &slow, 10);
    assert_eq!(inline_runs(&mut a), 10);
    assert!(alone.iter().all(|&p| p == 0), "{alone:?}");

    // Beside `b`'s caller, which waits for its thread and may share this executor thread, they
    // still run inline, but the task yields once its slice is used up: after every one of them.
    let (waiting, release) = wait_on_thread(&mut b);
    let beside = polls_between_fetches(&mut a, &slow, 10);
    assert_eq!(
        inline_runs(&mut a),
        20,
        "beside a waiting caller, reads still run inline"
    );
    // The first statement starts the slice; every later one waits for a yield first.
    assert!(beside[1..].iter().all(|&p| p >= 1), "{beside:?}");
    // Quick ones run inline too, several to a slice.
    let cheap_runs = polls_between_fetches(&mut a, cheap, 200);
    assert_eq!(inline_runs(&mut a), 220);
    assert!(cheap_runs.iter().any(|&p| p >= 1), "{cheap_runs:?}");
    release.send(()).unwrap();
    block_on(waiting).unwrap();
}

#[test]
fn an_inline_read_never_runs_while_the_connections_thread_does() {
    let (connector, mut a) = connect("sqlite::memory:");
    let mut b = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut a);
    let one = |a: &mut Box<dyn DriverConnection>| {
        let row = block_on(a.fetch_optional("SELECT 1", vec![]))
            .unwrap()
            .unwrap();
        assert_eq!(int(&row, 0), 1);
    };
    one(&mut a);
    let (waiting, release_b) = wait_on_thread(&mut b);
    one(&mut a);
    assert_eq!(inline_runs(&mut a), 1);
    // `a`'s thread runs a closure whose caller gave up on it: the next read waits its turn on the
    // thread instead of using the rusqlite connection beside it.
    let (started, has_started) = std::sync::mpsc::channel::<()>();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (release_a, released_a) = std::sync::mpsc::channel::<()>();
    let flag = Arc::clone(&running);
    let mut abandoned = Box::pin(sqlite(&mut a).run_sync(move |_| {
        flag.store(true, Ordering::SeqCst);
        started.send(()).unwrap();
        let _ = released_a.recv();
        flag.store(false, Ordering::SeqCst);
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(abandoned.as_mut().poll(&mut cx).is_pending());
    drop(abandoned);
    has_started.recv().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        release_a.send(()).unwrap();
    });
    one(&mut a);
    assert!(
        !running.load(Ordering::SeqCst),
        "the read ran beside the closure"
    );
    assert_eq!(inline_runs(&mut a), 1);
    releaser.join().unwrap();
    // Once the thread is idle again, reads run inline again.
    one(&mut a);
    assert_eq!(inline_runs(&mut a), 2);
    release_b.send(()).unwrap();
    block_on(waiting).unwrap();
}

#[test]
fn concurrent_inline_readers_beside_a_writer_read_what_was_written() {
    let dir = TempDir::new();
    let url = dir.url("readers.db", "");
    let (connector, mut setup) = connect(&url);
    block_on(setup.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)", vec![])).unwrap();
    block_on(setup.execute(
        &format!("INSERT INTO t SELECT i, i * 2 FROM ({COUNT_TO})"),
        vec![Value::Int(100)],
    ))
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = block_on(connector.connect(&runtime())).unwrap();
    let writing = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                block_on(writer.execute("INSERT INTO t(v) VALUES ($1)", vec![Value::Int(-1)]))
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|k| {
            let mut conn = block_on(connector.connect(&runtime())).unwrap();
            std::thread::spawn(move || {
                always_quick(&mut conn);
                for i in 0..2000i64 {
                    let id = (i * 7 + k) % 100 + 1;
                    let row = block_on(
                        conn.fetch_optional("SELECT v FROM t WHERE id = $1", vec![Value::Int(id)]),
                    )
                    .unwrap()
                    .unwrap();
                    assert_eq!(int(&row, 0), id * 2);
                }
                inline_runs(&mut conn)
            })
        })
        .collect();
    let inline: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    assert!(writing.join().unwrap() > 0);
    // The first read of each goes through its thread; a read that finds the worker busy (it
    // cannot be, here) or the database locked would too.
    assert!(inline.iter().all(|&n| n >= 1900), "{inline:?}");
}

/// `PRAGMA wal_checkpoint` on `conn`: the log's frames, and how many of them are copied back.
fn checkpoint(conn: &mut Box<dyn DriverConnection>) -> (i64, i64) {
    let row = block_on(conn.fetch_optional("PRAGMA wal_checkpoint(PASSIVE)", vec![]))
        .unwrap()
        .unwrap();
    (int(&row, 1), int(&row, 2))
}

#[test]
fn an_inline_point_read_keeps_its_read_open_until_the_next_statement_or_for_a_moment() {
    let dir = TempDir::new();
    let (connector, mut writer) = connect(&dir.url("linger.db", ""));
    let mut reader = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut reader);
    block_on(writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)", vec![])).unwrap();
    block_on(writer.execute("INSERT INTO t VALUES (1, 10)", vec![])).unwrap();
    let read = |conn: &mut Box<dyn DriverConnection>| {
        let row = block_on(conn.fetch_optional("SELECT v FROM t WHERE id = 1", vec![]))
            .unwrap()
            .unwrap();
        int(&row, 0)
    };
    // The first read goes through the thread; the next run inline and linger. With the worker's
    // lock held here, the thread cannot end the read: the read mark it holds keeps the checkpoint
    // from copying back the frames written after it. (If this thread was held up for a
    // millisecond between the read and the lock, the connection's thread has ended the read
    // already: read again.)
    assert_eq!(read(&mut reader), 10);
    let shared = Arc::clone(sqlite(&mut reader).shared());
    let cell = Arc::clone(sqlite(&mut reader).worker_cell());
    let mut attempts = 0;
    let held = loop {
        attempts += 1;
        assert!(attempts <= 100, "the read never lingered");
        assert_eq!(read(&mut reader), 10);
        let held = cell.lock().unwrap();
        if shared.is_lingering() {
            break held;
        }
    };
    assert!(inline_runs(&mut reader) >= 1);
    for v in 11..=20 {
        let sql = format!("UPDATE t SET v = {v} WHERE id = 1");
        block_on(writer.execute(&sql, vec![])).unwrap();
    }
    let (frames, copied) = checkpoint(&mut writer);
    assert!(copied < frames, "{copied} of {frames} frames copied back");
    drop(held);
    // Left alone, the read ends within a millisecond or so, on the reader's thread.
    let started = Instant::now();
    while checkpoint(&mut writer).1 < checkpoint(&mut writer).0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the read never ended"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The next statement starts a fresh read, which sees every update.
    assert_eq!(read(&mut reader), 20);
    // And a read left lingering ends before the connection's next statement of any kind.
    assert_eq!(read(&mut reader), 20);
    block_on(reader.execute("UPDATE t SET v = 21 WHERE id = 1", vec![])).unwrap();
    assert_eq!(read(&mut writer), 21);
}

#[test]
fn point_reads_never_linger_outside_wal_mode() {
    // In rollback-journal mode a read keeps writers out for as long as it is open.
    let dir = TempDir::new();
    let (connector, mut writer) = connect(&dir.url("journal.db", "?journal_mode=delete"));
    let mut reader = block_on(connector.connect(&runtime())).unwrap();
    always_quick(&mut reader);
    block_on(writer.execute("CREATE TABLE t(x)", vec![])).unwrap();
    block_on(writer.execute("INSERT INTO t VALUES (1)", vec![])).unwrap();
    for _ in 0..2 {
        block_on(reader.fetch_optional("SELECT x FROM t", vec![])).unwrap();
    }
    assert_eq!(inline_runs(&mut reader), 1);
    // Nothing can end a lingering read while this lock is held, so the write would wait for it.
    let cell = Arc::clone(sqlite(&mut reader).worker_cell());
    let _held = cell.lock().unwrap();
    block_on(sqlite(&mut writer).run_sync(|c| c.busy_timeout(Duration::ZERO)))
        .unwrap()
        .unwrap();
    block_on(writer.execute("INSERT INTO t VALUES (2)", vec![])).unwrap();
}

#[test]
fn the_log_starts_over_beside_readers_that_never_stop() {
    let dir = TempDir::new();
    let (connector, mut writer) = connect(&dir.url("restart.db", ""));
    block_on(writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", vec![])).unwrap();
    block_on(writer.execute("INSERT INTO t VALUES (1, 'x')", vec![])).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut reader = block_on(connector.connect(&runtime())).unwrap();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                always_quick(&mut reader);
                while !stop.load(Ordering::Relaxed) {
                    let sql = "SELECT v FROM t WHERE id = 1";
                    block_on(reader.fetch_optional(sql, vec![])).unwrap();
                }
                inline_runs(&mut reader)
            })
        })
        .collect();
    // Every read lingers until its connection's next begins: some read mark older than the last
    // commit is nearly always held. While the log waits for its checkpoint, reads stop lingering,
    // so that a checkpoint soon copies back every frame and the log starts over instead of
    // growing.
    for id in 2..=3000 {
        let sql = "INSERT INTO t VALUES ($1, 'x')";
        block_on(writer.execute(sql, vec![Value::Int(id)])).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    // Each commit adds a frame at least: a log that never started over would hold 3,000.
    let wal = std::fs::metadata(dir.0.join("restart.db-wal"))
        .unwrap()
        .len();
    assert!(wal < 2900 * (4096 + 24), "the log grew to {wal} bytes");
}

// ---------------------------------------------------------------------------------------------
// Decimal columns

/// A decimal with more digits than an f64 holds.
const EXACT: &str = "12345678901234567890.0123456789";
/// What SQLite keeps of [`EXACT`] in a NUMERIC column: a REAL, 1.2345678901234567e19.
const EXACT_AS_REAL: &str = "12345678901234567000";

const DECIMALS_SCHEMA: &str =
    "CREATE TABLE t (n NUMERIC(40,10), d DECIMAL(10,2), i INTEGER, r REAL, s TEXT);
     INSERT INTO t VALUES ('12345678901234567890.0123456789', '12.50', 7, 2.5,
                           '12345678901234567890.0123456789');
     INSERT INTO t VALUES (42, '-0.10', -3, 1.0, 'x');
     INSERT INTO t VALUES (NULL, 9e999, NULL, NULL, NULL);";

const SELECT_DECIMALS: &str =
    "SELECT n, d, i, r, s, CAST(n AS REAL) AS nf, typeof(n) AS tn FROM t ORDER BY rowid";
const SELECT_ONE_DECIMAL: &str =
    "SELECT n, d, i, r, s, CAST(n AS REAL) AS nf, typeof(n) AS tn FROM t WHERE rowid = $1";

/// The rows of [`SELECT_DECIMALS`], after [`DECIMALS_SCHEMA`] and one more row with numerics bound
/// as parameters.
fn decimal_rows() -> Vec<Vec<Value>> {
    let numeric = |text: &str| Value::Numeric(text.to_owned());
    let text = |text: &str| Value::Text(text.to_owned());
    vec![
        vec![
            numeric(EXACT_AS_REAL),
            numeric("12.5"),
            Value::Int(7),
            Value::Float(2.5),
            text(EXACT),
            Value::Float(1.2345678901234567e19),
            text("real"),
        ],
        vec![
            numeric("42"),
            numeric("-0.1"),
            Value::Int(-3),
            Value::Float(1.0),
            text("x"),
            Value::Float(42.0),
            text("integer"),
        ],
        vec![
            Value::Null,
            numeric("Infinity"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            text("null"),
        ],
        // '1e3' is stored as the integer 1000.
        vec![
            numeric("0.1"),
            numeric("1000"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Float(0.1),
            text("real"),
        ],
    ]
}

fn create_decimals(conn: &mut Box<dyn DriverConnection>) {
    block_on(conn.execute(DECIMALS_SCHEMA, vec![])).unwrap();
    let params = vec![Value::Numeric("0.1".into()), Value::Numeric("1e3".into())];
    block_on(conn.execute("INSERT INTO t (n, d) VALUES ($1, $2)", params)).unwrap();
}

fn values_of(rows: &[Row]) -> Vec<Vec<Value>> {
    rows.iter().map(|row| row.values().to_vec()).collect()
}

#[test]
fn decimal_columns_read_as_exact_numerics_on_every_path() {
    let (_c, mut conn) = connect("sqlite::memory:");
    always_quick(&mut conn);
    create_decimals(&mut conn);
    let expected = decimal_rows();

    // fetch_all (pipelined).
    let rows = block_on(conn.fetch_all(SELECT_DECIMALS, vec![])).unwrap();
    assert_eq!(values_of(&rows), expected);
    let first = &rows[0];
    assert_eq!(first.get::<String>("n").unwrap(), EXACT_AS_REAL);
    assert_eq!(first.get::<String>("d").unwrap(), "12.5");
    let err = first.get::<f64>("n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.message().contains("CAST(.. AS REAL)"), "{err}");
    assert_eq!(first.get::<f64>("nf").unwrap(), 1.2345678901234567e19);
    assert_eq!(first.get::<String>("s").unwrap(), EXACT);
    assert_eq!(first.get::<i64>("i").unwrap(), 7);
    assert_eq!(first.get::<f64>("r").unwrap(), 2.5);
    assert!(first.get::<i64>("n").is_err());
    assert_eq!(rows[1].get::<i64>("n").unwrap(), 42);

    // fetch_optional, the one-row reply: through the thread first, then inline.
    for _ in 0..2 {
        for (rowid, want) in (1..).zip(&expected) {
            let row = block_on(conn.fetch_optional(SELECT_ONE_DECIMAL, vec![Value::Int(rowid)]))
                .unwrap()
                .unwrap();
            assert_eq!(row.values(), &want[..], "row {rowid}");
        }
    }
    assert!(inline_runs(&mut conn) >= 4);
    // A row too wide to travel in place.
    let wide = block_on(conn.fetch_optional(
        "SELECT n, d, i, r, s, n, d, i, r, s FROM t WHERE rowid = 1",
        vec![],
    ))
    .unwrap()
    .unwrap();
    assert_eq!(wide.values()[..5], expected[0][..5]);
    assert_eq!(wide.values()[5..], expected[0][..5]);

    // fetch_each.
    let mut seen = Vec::new();
    block_on(conn.fetch_each(SELECT_DECIMALS, vec![], &mut |row| {
        seen.push(row.values().to_vec());
        Ok(std::ops::ControlFlow::Continue(()))
    }))
    .unwrap();
    assert_eq!(seen, expected);

    // A stream.
    let streamed: Vec<Vec<Value>> = block_on(
        conn.fetch(SELECT_DECIMALS, vec![])
            .map(|row| row.unwrap().values().to_vec())
            .collect(),
    );
    assert_eq!(streamed, expected);

    // Many rows: several batches of a pipelined fetch, several chunks of a stream. Expressions
    // have no declared type and read by storage class.
    block_on(conn.execute(
        "CREATE TABLE big (n DECIMAL);
         INSERT INTO big WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
         SELECT i + 0.25 FROM c",
        vec![],
    ))
    .unwrap();
    let check = |rows: Vec<Vec<Value>>| {
        assert_eq!(rows.len(), 3000);
        for (i, row) in (1..).zip(rows) {
            assert_eq!(
                row,
                [
                    Value::Numeric(format!("{i}.25")),
                    Value::Float(i as f64 + 0.25)
                ]
            );
        }
    };
    const SELECT_BIG: &str = "SELECT n, n + 0 FROM big ORDER BY rowid";
    check(values_of(
        &block_on(conn.fetch_all(SELECT_BIG, vec![])).unwrap(),
    ));
    check(block_on(
        conn.fetch(SELECT_BIG, vec![])
            .map(|row| row.unwrap().values().to_vec())
            .collect(),
    ));

    // fetch_all_as, through an engine.
    let engine = engine("sqlite::memory:?max_size=1");
    block_on(async {
        let mut conn = engine.acquire().await.unwrap();
        conn.execute(DECIMALS_SCHEMA, ()).await.unwrap();
        let typed: Vec<(String, String, i64, f64, String)> = conn
            .fetch_all_as("SELECT n, d, i, r, s FROM t WHERE rowid = 1", ())
            .await
            .unwrap();
        assert_eq!(
            typed,
            [(
                EXACT_AS_REAL.to_owned(),
                "12.5".to_owned(),
                7,
                2.5,
                EXACT.to_owned()
            )]
        );
        let err = conn
            .fetch_all_as::<(f64,)>("SELECT n FROM t WHERE rowid = 1", ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        let cast: Vec<(f64,)> = conn
            .fetch_all_as("SELECT CAST(n AS REAL) FROM t WHERE rowid = 1", ())
            .await
            .unwrap();
        assert_eq!(cast, [(1.2345678901234567e19,)]);
    });
}

#[test]
fn exact_decimals_in_text_columns_round_trip_digit_for_digit() {
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute("CREATE TABLE x (s TEXT, u, n NUMERIC)", vec![])).unwrap();
    let exact = Value::Numeric(EXACT.into());
    block_on(conn.execute(
        "INSERT INTO x VALUES ($1, $2, $3)",
        vec![exact.clone(), exact.clone(), exact.clone()],
    ))
    .unwrap();
    // execute_many binds numerics as text too.
    let sets = vec![
        vec![exact.clone(), exact.clone(), exact.clone()],
        vec![Value::Text(EXACT.into()), Value::Text(EXACT.into()), exact],
    ];
    assert_eq!(
        block_on(conn.execute_many("INSERT INTO x VALUES ($1, $2, $3)", each(sets))).unwrap(),
        2
    );
    let rows = block_on(conn.fetch_all(
        "SELECT s, u, n, typeof(s), typeof(u), typeof(n) FROM x",
        vec![],
    ))
    .unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(
            row.values(),
            &[
                Value::Text(EXACT.into()),
                Value::Text(EXACT.into()),
                // What NUMERIC affinity kept.
                Value::Numeric(EXACT_AS_REAL.into()),
                Value::Text("text".into()),
                Value::Text("text".into()),
                Value::Text("real".into()),
            ]
        );
        assert_eq!(row.get::<String>("s").unwrap(), EXACT);
        assert_eq!(row.get::<String>("u").unwrap(), EXACT);
    }
}

/// A statement's columns are read again only when SQLite re-prepared it or rusqlite made a new
/// statement object for its text. A new object (rusqlite's cache evicted the old one) starts
/// with a re-prepare count of 0 again, so it must be noticed as new, whether it first runs
/// through `execute` or a fetch.
#[test]
fn columns_are_checked_again_for_a_statement_prepared_anew() {
    let (_c, mut conn) = connect("sqlite::memory:?statement_cache_capacity=1");
    const SELECT: &str = "SELECT v FROM s";
    let fetch = |conn: &mut Box<dyn DriverConnection>| {
        values_of(&block_on(conn.fetch_all(SELECT, vec![])).unwrap())
    };
    let run = |conn: &mut Box<dyn DriverConnection>, sql: &str| {
        block_on(conn.execute(sql, vec![])).unwrap();
    };
    run(&mut conn, "CREATE TABLE s (v NUMERIC)");
    run(&mut conn, "INSERT INTO s VALUES (5)");
    assert_eq!(fetch(&mut conn), [vec![Value::Numeric("5".into())]]);
    // Each statement below takes rusqlite's one cache slot: the SELECT is dropped, not
    // re-prepared, and comes back as a new object.
    run(&mut conn, "DROP TABLE s");
    run(&mut conn, "CREATE TABLE s (v INTEGER)");
    run(&mut conn, "INSERT INTO s VALUES (5)");
    // First through execute, then fetched.
    run(&mut conn, SELECT);
    assert_eq!(fetch(&mut conn), [vec![Value::Int(5)]]);
    // Straight through a fetch.
    run(&mut conn, "DROP TABLE s");
    run(&mut conn, "CREATE TABLE s (v DECIMAL)");
    run(&mut conn, "INSERT INTO s VALUES (5)");
    assert_eq!(fetch(&mut conn), [vec![Value::Numeric("5".into())]]);
    // And the same object again, unchanged: as before.
    assert_eq!(fetch(&mut conn), [vec![Value::Numeric("5".into())]]);
    // A new object whose first fetch finds no row, and so reads no columns.
    run(&mut conn, "DROP TABLE s");
    run(&mut conn, "CREATE TABLE s (v INTEGER)");
    assert!(fetch(&mut conn).is_empty());
    run(&mut conn, "INSERT INTO s VALUES (5)");
    assert_eq!(fetch(&mut conn), [vec![Value::Int(5)]]);
}

#[test]
fn decimal_columns_follow_schema_changes() {
    let (_c, mut conn) = connect("sqlite::memory:");
    always_quick(&mut conn);
    const SELECT: &str = "SELECT v FROM s";
    let check = |conn: &mut Box<dyn DriverConnection>, want: Value| {
        let rows = block_on(conn.fetch_all(SELECT, vec![])).unwrap();
        assert_eq!(values_of(&rows), [vec![want.clone()]]);
        let streamed: Vec<Row> = block_on(conn.fetch(SELECT, vec![]).map(Result::unwrap).collect());
        assert_eq!(values_of(&streamed), [vec![want.clone()]]);
        let before = inline_runs(conn);
        for _ in 0..2 {
            let row = block_on(conn.fetch_optional(SELECT, vec![]))
                .unwrap()
                .unwrap();
            assert_eq!(row.values(), std::slice::from_ref(&want));
        }
        assert!(inline_runs(conn) > before);
    };
    block_on(conn.execute(
        "CREATE TABLE s (v NUMERIC); INSERT INTO s VALUES (5)",
        vec![],
    ))
    .unwrap();
    check(&mut conn, Value::Numeric("5".into()));
    // The same statement, the same column name, another declared type.
    block_on(conn.execute(
        "DROP TABLE s; CREATE TABLE s (v INTEGER); INSERT INTO s VALUES (5)",
        vec![],
    ))
    .unwrap();
    check(&mut conn, Value::Int(5));
    block_on(conn.execute(
        "DROP TABLE s; CREATE TABLE s (v decimal(3, 1)); INSERT INTO s VALUES (5.5)",
        vec![],
    ))
    .unwrap();
    check(&mut conn, Value::Numeric("5.5".into()));
    block_on(conn.execute(
        "DROP TABLE s; CREATE TABLE s (v REAL); INSERT INTO s VALUES (5.5)",
        vec![],
    ))
    .unwrap();
    check(&mut conn, Value::Float(5.5));
}

#[test]
fn only_decimal_type_names_make_decimal_columns() {
    use crate::batch::is_decimal_type;
    for decimal in [
        "NUMERIC",
        "numeric(40,10)",
        "DECIMAL(10,2)",
        "Decimal",
        "UNSIGNED DECIMAL",
    ] {
        assert!(is_decimal_type(Some(decimal)), "{decimal}");
    }
    // NUMERIC affinity, but no decimal.
    for other in [
        "BOOLEAN", "DATE", "DATETIME", "MONEY", "INTEGER", "REAL", "TEXT", "", "NUM", "DEC",
    ] {
        assert!(!is_decimal_type(Some(other)), "{other}");
    }
    assert!(!is_decimal_type(None));
    let (_c, mut conn) = connect("sqlite::memory:");
    block_on(conn.execute(
        "CREATE TABLE a (b BOOLEAN, d DATE, n NUMERIC);
         INSERT INTO a VALUES (1, 20240101, 'n/a'), (0, 20240102, '0x1F')",
        vec![],
    ))
    .unwrap();
    let rows = block_on(conn.fetch_all("SELECT b, d, n, typeof(n) FROM a", vec![])).unwrap();
    // Text SQLite could not read as a number stays text, even in a decimal column.
    let text = |s: &str| Value::Text(s.to_owned());
    assert_eq!(
        values_of(&rows),
        [
            vec![
                Value::Int(1),
                Value::Int(20240101),
                text("n/a"),
                text("text")
            ],
            vec![
                Value::Int(0),
                Value::Int(20240102),
                text("0x1F"),
                text("text")
            ],
        ]
    );
}
