//! The pool's contracts, checked against a scripted in-memory driver on smol: exact accounting
//! under cancellation, connect errors surfaced, FIFO waiters, resets before reuse, expiry and
//! refill in the background, hooks and graceful close.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anysql_core::{
    AsyncDriver, Columns, ConnectOptions, Connector, DriverConnection, Engine, EngineBuilder,
    Error, ErrorKind, Row, RowSink, RowStream, SharedRuntime, Value,
};
use async_trait::async_trait;

mod support;
use support::Smol;

/// What the scripted database has seen.
#[derive(Debug, Default)]
struct Script {
    fail_connect: AtomicBool,
    connects: AtomicUsize,
    resets: AtomicUsize,
    open_transactions: AtomicUsize,
    /// Statements named `insert` that ran outside any transaction: autocommitted.
    autocommitted: AtomicUsize,
    /// How long a ping takes, in milliseconds.
    ping_ms: AtomicU64,
    next_id: AtomicU64,
    log: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
struct MockDriver(Arc<Script>);

impl AsyncDriver for MockDriver {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["mock"]
    }
    fn connector(&self, _: &ConnectOptions) -> Result<Arc<dyn Connector>, Error> {
        Ok(Arc::new(self.clone()))
    }
}

#[async_trait]
impl Connector for MockDriver {
    async fn connect(&self, runtime: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        runtime.sleep(Duration::from_millis(1)).await;
        if self.0.fail_connect.load(Ordering::SeqCst) {
            return Err(Error::connection(
                "could not connect to mock: connection refused",
            ));
        }
        self.0.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MockConnection {
            id: self.0.next_id.fetch_add(1, Ordering::SeqCst),
            script: Arc::clone(&self.0),
            runtime: Arc::clone(runtime),
            in_transaction: false,
            savepoints: Vec::new(),
            broken: false,
        }))
    }
}

#[derive(Debug)]
struct MockConnection {
    id: u64,
    script: Arc<Script>,
    runtime: SharedRuntime,
    in_transaction: bool,
    savepoints: Vec<String>,
    broken: bool,
}

impl MockConnection {
    /// `sleep <ms>` waits, `break` breaks the connection, `id` returns the connection id.
    async fn run(&mut self, sql: &str) -> Result<Vec<Row>, Error> {
        self.script
            .log
            .lock()
            .unwrap()
            .push(format!("{}: {sql}", self.id));
        if let Some(ms) = sql.strip_prefix("sleep ") {
            self.runtime
                .sleep(Duration::from_millis(ms.parse().unwrap()))
                .await;
        }
        if sql == "busy" {
            let mut details =
                anysql_core::DatabaseError::new("database is busy", Some("BUSY".into()));
            details.retryable = true;
            return Err(Error::database(details));
        }
        if sql == "raw begin" {
            // Transaction control the core never sees: only the database knows.
            self.set_transaction(true);
        }
        if sql == "insert" && !self.in_transaction {
            self.script.autocommitted.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(name) = sql.strip_prefix("SAVEPOINT ") {
            self.savepoints.push(name.to_owned());
        }
        if let Some(name) = sql
            .strip_prefix("RELEASE SAVEPOINT ")
            .or_else(|| sql.strip_prefix("ROLLBACK TO SAVEPOINT "))
        {
            let Some(at) = self.savepoints.iter().position(|s| s == name) else {
                let details = anysql_core::DatabaseError::new(
                    format!("savepoint \"{name}\" does not exist"),
                    Some("3B001".into()),
                );
                return Err(Error::database(details));
            };
            let keep = if sql.starts_with("RELEASE") {
                at
            } else {
                at + 1
            };
            self.savepoints.truncate(keep);
            if sql.starts_with("RELEASE") {
                // The database has done it; the reply takes a while to come back.
                self.runtime.sleep(Duration::from_millis(20)).await;
            }
        }
        if sql == "break" {
            self.broken = true;
            return Err(Error::connection("the mock connection broke"));
        }
        match sql {
            "BEGIN" => self.set_transaction(true),
            "COMMIT" | "ROLLBACK" => self.set_transaction(false),
            _ => {}
        }
        Ok(vec![Row::new(
            Columns::new(["id".to_string()]),
            vec![Value::Int(self.id as i64)],
        )])
    }

    fn set_transaction(&mut self, open: bool) {
        if !open {
            self.savepoints.clear();
        }
        if open != self.in_transaction {
            self.in_transaction = open;
            if open {
                self.script.open_transactions.fetch_add(1, Ordering::SeqCst);
            } else {
                self.script.open_transactions.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

#[async_trait]
impl DriverConnection for MockConnection {
    async fn execute(&mut self, sql: &str, _: Vec<Value>) -> Result<u64, Error> {
        self.run(sql).await.map(|_| 1)
    }
    async fn fetch_each(
        &mut self,
        sql: &str,
        _: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        for mut row in self.run(sql).await? {
            if sink(&mut row)?.is_break() {
                break;
            }
        }
        Ok(())
    }
    fn fetch<'a>(&'a mut self, sql: &'a str, _: Vec<Value>) -> RowStream<'a> {
        Box::pin(futures_lite::stream::once_future(async move {
            self.run(sql).await.map(|mut rows| rows.remove(0))
        }))
    }
    async fn ping(&mut self) -> Result<(), Error> {
        let ms = self.script.ping_ms.load(Ordering::SeqCst);
        self.runtime.sleep(Duration::from_millis(ms)).await;
        self.run("ping").await.map(drop)
    }
    async fn reset(&mut self) -> Result<(), Error> {
        self.script.resets.fetch_add(1, Ordering::SeqCst);
        self.run("reset").await?;
        self.set_transaction(false);
        Ok(())
    }
    fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    fn is_broken(&self) -> bool {
        self.broken
    }
    async fn close(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Drop for MockConnection {
    fn drop(&mut self) {
        self.set_transaction(false);
    }
}

fn engine(url_query: &str) -> (Engine, Arc<Script>) {
    let script = Arc::new(Script::default());
    let engine = EngineBuilder::new(&format!("mock://db{url_query}"))
        .driver(MockDriver(Arc::clone(&script)))
        .runtime(Smol)
        .build()
        .unwrap();
    (engine, script)
}

async fn settle(engine: &Engine) {
    for _ in 0..200 {
        if engine.status().in_use == 0 {
            return;
        }
        smol::Timer::after(Duration::from_millis(5)).await;
    }
    panic!("pool did not settle: {:?}", engine.status());
}

async fn race<T>(budget: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        smol::Timer::after(budget).await;
        None
    })
    .await
}

#[test]
fn connect_errors_are_not_hidden_behind_a_timeout() {
    smol::block_on(async {
        let (engine, script) = engine("?acquire_timeout=2s");
        script.fail_connect.store(true, Ordering::SeqCst);
        let err = engine.acquire().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
        assert_eq!(engine.status().in_use, 0);
        script.fail_connect.store(false, Ordering::SeqCst);
        assert!(engine.acquire().await.is_ok());
    });
}

#[test]
fn timeouts_say_what_is_in_use_and_the_last_connect_error() {
    smol::block_on(async {
        let (engine, _) = engine("?max_size=1&acquire_timeout=50ms");
        let held = engine.acquire().await.unwrap();
        let err = engine.acquire().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PoolTimeout);
        assert!(err.to_string().contains("1 of 1 in use"), "{err}");
        assert_eq!(engine.metrics().acquire_timeouts, 1);
        drop(held);
        assert!(engine.acquire().await.is_ok());
    });
}

#[test]
fn cancelled_acquires_and_queries_never_leak_a_slot() {
    smol::block_on(async {
        let (engine, script) = engine("?max_size=2");
        for i in 0..200_u64 {
            let budget = Duration::from_micros((i * 97) % 4000);
            race(budget, async {
                let mut conn = engine.acquire().await.unwrap();
                conn.execute("sleep 2", ()).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                tx.execute("sleep 1", ()).await.unwrap();
                tx.commit().await.unwrap();
            })
            .await;
        }
        settle(&engine).await;
        let status = engine.status();
        assert_eq!((status.in_use, status.waiting), (0, 0), "{status:?}");
        assert!(status.size <= 2, "{status:?}");
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        assert!(
            script.resets.load(Ordering::SeqCst) > 0,
            "interrupted connections are reset"
        );
    });
}

#[test]
fn an_interrupted_connection_is_reset_before_anyone_reuses_it() {
    smol::block_on(async {
        let (engine, script) = engine("?max_size=1");
        let interrupted = race(Duration::from_millis(5), async {
            let mut conn = engine.acquire().await.unwrap();
            conn.execute("sleep 50", ()).await.unwrap();
        })
        .await;
        assert!(interrupted.is_none());
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("after", ()).await.unwrap();
        let log = script.log.lock().unwrap().clone();
        let reset = log
            .iter()
            .position(|l| l.ends_with("reset"))
            .expect("a reset");
        let after = log.iter().position(|l| l.ends_with("after")).unwrap();
        assert!(reset < after, "{log:?}");
    });
}

#[test]
fn a_dropped_transaction_is_rolled_back_on_the_same_connection_before_its_next_statement() {
    smol::block_on(async {
        let (engine, script) = engine("");
        let mut conn = engine.acquire().await.unwrap();
        {
            let mut tx = conn.begin().await.unwrap();
            tx.execute("work", ()).await.unwrap();
        }
        assert_eq!(
            script.open_transactions.load(Ordering::SeqCst),
            1,
            "rolled back lazily"
        );
        conn.execute("next", ()).await.unwrap();
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        let log = script.log.lock().unwrap().clone();
        let tail: Vec<&str> = log
            .iter()
            .rev()
            .take(2)
            .map(|l| l.split(": ").nth(1).unwrap())
            .collect();
        assert_eq!(tail, ["next", "ROLLBACK"]);
    });
}

#[test]
fn waiters_are_served_in_order() {
    smol::block_on(async {
        let (engine, _) = engine("?max_size=1");
        let held = engine.acquire().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let engine = engine.clone();
            let order = Arc::clone(&order);
            tasks.push(smol::spawn(async move {
                let mut conn = engine.acquire().await.unwrap();
                order.lock().unwrap().push(i);
                conn.execute("sleep 1", ()).await.unwrap();
            }));
            // Let each waiter queue up before the next.
            smol::Timer::after(Duration::from_millis(5)).await;
        }
        assert_eq!(engine.status().waiting, 5);
        drop(held);
        for task in tasks {
            task.await;
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    });
}

#[test]
fn broken_connections_are_discarded() {
    smol::block_on(async {
        let (engine, script) = engine("?max_size=1");
        let mut conn = engine.acquire().await.unwrap();
        assert!(conn.execute("break", ()).await.is_err());
        drop(conn);
        let mut conn = engine.acquire().await.unwrap();
        assert_eq!(
            conn.fetch_scalar::<i64>("id", ()).await.unwrap(),
            1,
            "a new connection"
        );
        assert_eq!(script.connects.load(Ordering::SeqCst), 2);
        assert_eq!(engine.metrics().connections_closed_broken, 1);
    });
}

#[test]
fn background_task_expires_and_refills() {
    smol::block_on(async {
        let (engine, script) = engine("?min_idle=2&max_lifetime=100ms&max_size=4");
        smol::Timer::after(Duration::from_millis(400)).await;
        let status = engine.status();
        assert_eq!(status.idle, 2, "{status:?}");
        // Lifetimes of 100 ms over 400 ms: the refilled connections were replaced at least once.
        assert!(
            script.connects.load(Ordering::SeqCst) >= 4,
            "{}",
            script.connects.load(Ordering::SeqCst)
        );
        engine.close().await;
        let connects = script.connects.load(Ordering::SeqCst);
        smol::Timer::after(Duration::from_millis(200)).await;
        assert_eq!(
            script.connects.load(Ordering::SeqCst),
            connects,
            "the task ended with close"
        );
    });
}

#[test]
fn background_task_ends_when_the_engine_is_dropped() {
    smol::block_on(async {
        let (engine, script) = engine("?min_idle=1&max_size=1");
        smol::Timer::after(Duration::from_millis(200)).await;
        assert_eq!(script.connects.load(Ordering::SeqCst), 1);
        let weak = Arc::downgrade(&script);
        drop(engine);
        drop(script);
        smol::Timer::after(Duration::from_millis(1200)).await;
        assert!(
            weak.upgrade().is_none(),
            "the pool (and its driver) was freed"
        );
    });
}

#[test]
fn after_connect_runs_once_per_connection() {
    smol::block_on(async {
        let script = Arc::new(Script::default());
        let engine = EngineBuilder::new("mock://db?max_size=2")
            .driver(MockDriver(Arc::clone(&script)))
            .runtime(Smol)
            .after_connect(|conn| {
                Box::pin(async move { conn.execute("setup", ()).await.map(drop) })
            })
            .build()
            .unwrap();
        let a = engine.acquire().await.unwrap();
        let b = engine.acquire().await.unwrap();
        drop((a, b));
        for _ in 0..5 {
            engine.execute("work", ()).await.unwrap();
        }
        let setups = script
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with("setup"))
            .count();
        assert_eq!(setups, 2);
    });
}

#[test]
fn close_waits_for_connections_in_use_and_refuses_new_ones() {
    smol::block_on(async {
        let (engine, _) = engine("");
        let mut conn = engine.acquire().await.unwrap();
        let closer = {
            let engine = engine.clone();
            smol::spawn(async move { engine.close().await })
        };
        smol::Timer::after(Duration::from_millis(20)).await;
        assert!(
            !closer.is_finished(),
            "close waits for the connection in use"
        );
        assert_eq!(
            engine.acquire().await.unwrap_err().kind(),
            ErrorKind::Closed
        );
        conn.execute("still works", ()).await.unwrap();
        drop(conn);
        closer.await;
        assert_eq!(engine.status().size, 0);
    });
}

#[test]
fn transaction_closure_commits_on_ok_and_rolls_back_on_err() {
    smol::block_on(async {
        let (engine, script) = engine("");
        let value = engine
            .transaction(async |tx| tx.fetch_scalar::<i64>("id", ()).await)
            .await
            .unwrap();
        assert_eq!(value, 0);
        let err = engine
            .transaction::<(), Error, _>(async |tx| {
                tx.execute("work", ()).await?;
                Err(Error::configuration("user says no"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.message(), "user says no");
        let log = script.log.lock().unwrap().clone();
        let ends: Vec<&str> = log
            .iter()
            .map(|l| l.split(": ").nth(1).unwrap())
            .filter(|s| matches!(*s, "COMMIT" | "ROLLBACK"))
            .collect();
        assert_eq!(ends, ["COMMIT", "ROLLBACK"]);
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
    });
}

/// The work of `transaction` and `transaction_with` may borrow the caller's locals, shared and
/// mutably (it once had to be `'static`: E0597 "borrowed for 'static"), and nest a savepoint.
#[test]
fn transaction_work_borrows_the_callers_locals() {
    use anysql_core::{RetryPolicy, TransactionOptions};
    smol::block_on(async {
        let (engine, script) = engine("");
        let statement = String::from("work");
        let mut done = Vec::new();
        let level = engine
            .transaction(async |tx| {
                tx.execute(statement.as_str(), ()).await?;
                done.push(statement.clone());
                let inner = tx.begin().await?;
                let level = inner.level();
                inner.commit().await?;
                Ok::<_, Error>(level)
            })
            .await
            .unwrap();
        assert_eq!(
            (level, done.as_slice()),
            (2, [statement.clone()].as_slice())
        );
        let mut attempts = 0;
        let policy = RetryPolicy::new().initial_backoff(Duration::from_millis(1));
        engine
            .transaction_with(TransactionOptions::new(), policy, async |tx| {
                attempts += 1;
                tx.execute(statement.as_str(), ()).await
            })
            .await
            .unwrap();
        assert_eq!(attempts, 1);
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        settle(&engine).await;
    });
}

#[test]
fn transaction_with_retries_retryable_errors_within_its_bound() {
    use anysql_core::{RetryPolicy, TransactionOptions};
    smol::block_on(async {
        let (engine, script) = engine("");
        let policy = RetryPolicy::new()
            .max_attempts(4)
            .initial_backoff(Duration::from_millis(1));
        // Fails twice with a retryable error, then succeeds: three attempts, one commit.
        let attempts = AtomicUsize::new(0);
        let value = engine
            .transaction_with(TransactionOptions::new(), policy, async |tx| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                tx.execute(if attempt < 2 { "busy" } else { "work" }, ())
                    .await?;
                Ok(attempt)
            })
            .await
            .unwrap();
        assert_eq!(value, 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        // Always retryable: gives up after max_attempts, with the last error.
        let attempts = AtomicUsize::new(0);
        let err = engine
            .transaction_with(TransactionOptions::new(), policy, async |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.execute("busy", ()).await
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        // Not retryable: one attempt only.
        let attempts = AtomicUsize::new(0);
        let err = engine
            .transaction_with(TransactionOptions::new(), policy, async |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                tx.execute("break", ()).await
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        settle(&engine).await;
    });
}

/// Regression: an `acquire` dropped while the pool health-checked an idle connection dropped the
/// connection but kept counting it in `size`, until `min_idle` never refilled.
#[test]
fn acquires_dropped_during_a_health_check_keep_the_size_exact() {
    smol::block_on(async {
        let (engine, script) = engine("?max_size=2");
        script.ping_ms.store(50, Ordering::SeqCst);
        for _ in 0..3 {
            drop(engine.acquire().await.unwrap());
            assert_eq!(engine.status().size, 1);
            // Idle for longer than the health check's threshold (1 s): the next acquire pings.
            smol::Timer::after(Duration::from_millis(1050)).await;
            assert!(race(Duration::from_millis(10), engine.acquire())
                .await
                .is_none());
            let status = engine.status();
            assert_eq!(
                (status.size, status.idle, status.in_use),
                (0, 0, 0),
                "{status:?}"
            );
        }
        script.ping_ms.store(0, Ordering::SeqCst);
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("after", ()).await.unwrap();
        assert_eq!(engine.status().size, 1);
    });
}

/// Regression: a transaction opened by SQL the core does not parse (`BEGIN` through `execute`)
/// went back to the pool still open, and the next user's statements ran inside it.
#[test]
fn a_transaction_opened_by_raw_sql_is_rolled_back_before_the_pool_reuses_the_connection() {
    smol::block_on(async {
        let (engine, script) = engine("?max_size=1");
        let mut conn = engine.acquire().await.unwrap();
        conn.execute("raw begin", ()).await.unwrap();
        drop(conn);
        settle(&engine).await;
        assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        assert_eq!(script.resets.load(Ordering::SeqCst), 1);
        engine.execute("insert", ()).await.unwrap();
        assert_eq!(script.autocommitted.load(Ordering::SeqCst), 1);
    });
}

/// Regression: when a savepoint's `commit()` was dropped after the database had released it, the
/// core rolled back the whole transaction, and the outer `Transaction` handle went on in
/// autocommit mode: its statements were committed one by one.
#[test]
fn a_transaction_whose_state_is_lost_refuses_every_later_statement() {
    smol::block_on(async {
        for end in ["commit", "rollback"] {
            let (engine, script) = engine("");
            let mut conn = engine.acquire().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            {
                let mut sp = tx.begin().await.unwrap();
                sp.execute("insert", ()).await.unwrap();
                let ending = if end == "commit" {
                    futures_lite::future::poll_once(sp.commit()).await
                } else {
                    // A rollback first rolls back to the savepoint, then releases it.
                    futures_lite::future::poll_once(sp.rollback()).await
                };
                assert!(ending.is_none(), "the end is still under way");
            }
            smol::Timer::after(Duration::from_millis(30)).await;
            let first = tx.execute("insert", ()).await.unwrap_err();
            assert!(first.to_string().contains("rolled back"), "{first}");
            for _ in 0..3 {
                let err = tx.execute("insert", ()).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
                assert!(err.to_string().contains("rolled back"), "{err}");
            }
            assert!(!tx.in_transaction());
            let err = tx.commit().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
            assert_eq!(script.autocommitted.load(Ordering::SeqCst), 0, "{end}");
            // The connection itself serves again once the handle is gone.
            conn.execute("insert", ()).await.unwrap();
            assert_eq!(script.autocommitted.load(Ordering::SeqCst), 1);
            assert_eq!(script.open_transactions.load(Ordering::SeqCst), 0);
        }
    });
}
