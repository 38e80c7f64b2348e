//! Fault tests: servers killing sessions under load, writers contending on SQLite, panics in user
//! code. Tests in `pg_only` and `sqlite_only` return at once on the other database; `cargo xtask
//! test-matrix` skips them there so the counts stay honest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anysql::prelude::*;
use anysql_conformance::{assert_pool_settles, driver_kind, spawn, DriverKind, TestDb};

anysql_conformance::cell_tests!(
    pg_only,
    Some(anysql_conformance::DriverKind::Postgres),
    terminated_sessions_under_load_fail_in_flight_work_then_recover,
    terminated_idle_connection_is_replaced,
    a_pooled_connection_the_server_ended_is_replaced_before_it_is_handed_out,
    connects_over_the_unix_socket,
    cancel_handle_stops_a_long_query_within_a_second,
    statements_are_named_only_outside_pgbouncer_mode,
    engine_survives_a_server_restart_without_being_rebuilt,
    isolation_read_only_and_serialization_failures,
);
anysql_conformance::cell_tests!(
    sqlite_only,
    Some(anysql_conformance::DriverKind::Sqlite),
    eight_writers_and_four_readers_never_see_locked,
    immediate_transactions_take_the_write_lock_at_begin,
    run_sync_never_sees_an_abandoned_transaction,
);

mod every_cell {
    #[test]
    fn panic_in_transaction_closure_keeps_the_engine_serving() {
        anysql_conformance::run(super::panic_in_transaction_closure_keeps_the_engine_serving);
    }
}

/// Ends every session of the test's own; with a nonzero `wait`, also waits (up to `wait`) until
/// each one's server process has exited. Returns how many ended.
async fn terminate_sessions(db: &TestDb, wait: Duration) -> Result<i64, Error> {
    let admin = anysql::builder(&anysql_conformance::pg_url())
        .max_size(1)
        .build()?;
    let schema = db.schema.as_deref().unwrap_or_default();
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    // In an aggregate's filter, so that it only ever reaches rows the WHERE clause kept.
    let killed: i64 = query_scalar(format!(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)) FROM pg_stat_activity \
         WHERE {}",
        db.sessions_predicate()
    ))
    .bind(schema)
    .bind(wait_ms)
    .fetch_one(&admin)
    .await?;
    admin.close().await;
    Ok(killed)
}

async fn terminated_sessions_under_load_fail_in_flight_work_then_recover(
    db: TestDb,
) -> Result<(), Error> {
    assert_eq!(driver_kind(), DriverKind::Postgres);
    let engine = db.engine_with("max_size=4&acquire_timeout=20s");
    query("CREATE TABLE load (id BIGSERIAL PRIMARY KEY, worker BIGINT NOT NULL)")
        .execute(&engine)
        .await?;
    let failures = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..8_i64 {
        let engine = engine.clone();
        let failures = Arc::clone(&failures);
        let successes = Arc::clone(&successes);
        workers.push(spawn(async move {
            for _ in 0..150 {
                let result: Result<i64, Error> = async {
                    let mut conn = engine.acquire().await?;
                    query("INSERT INTO load (worker) VALUES ($1)")
                        .bind(worker)
                        .execute(&mut conn)
                        .await?;
                    query_scalar("SELECT count(*) FROM pg_sleep(0.001)")
                        .fetch_one(&mut conn)
                        .await
                }
                .await;
                match result {
                    Ok(1) => successes.fetch_add(1, Ordering::Relaxed),
                    Ok(n) => panic!("wrong answer {n}"),
                    Err(e) => {
                        assert!(
                            matches!(e.kind(), ErrorKind::Connection | ErrorKind::Closed)
                                || e.code() == Some("57P01"),
                            "a killed session must give a connection error, got {e:?}"
                        );
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    // Kill every session of this test, twice, while the workers run.
    let mut killed = 0;
    for _ in 0..2 {
        anysql_conformance::sleep(Duration::from_millis(150)).await;
        killed += terminate_sessions(&db, Duration::ZERO).await?;
    }
    for worker in workers {
        worker.await;
    }
    assert!(killed > 0, "nothing was killed; the test proves nothing");
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "killed sessions must surface as errors"
    );
    // Later work succeeds on fresh connections.
    for i in 0..10_i64 {
        assert_eq!(
            query_scalar::<i64>("SELECT $1::bigint")
                .bind(i)
                .fetch_one(&engine)
                .await?,
            i
        );
    }
    assert_pool_settles(&engine).await;
    assert!(engine.metrics().connections_closed_broken > 0);
    println!(
        "killed {killed} sessions: {} operations failed, {} succeeded",
        failures.load(Ordering::Relaxed),
        successes.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn terminated_idle_connection_is_replaced(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let mut conn = engine.acquire().await?;
    let pid: i32 = query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await?;
    terminate_sessions(&db, Duration::ZERO).await?;
    if anysql_conformance::through_pgbouncer() {
        // PgBouncer replaces the server session it lends when it notices the loss: the client
        // connection sees at most one connection error, and the engine serves on.
        match query_scalar::<i64>("SELECT 1").fetch_one(&mut conn).await {
            Ok(one) => assert_eq!(one, 1),
            Err(err) => assert!(
                matches!(err.kind(), ErrorKind::Connection | ErrorKind::Closed),
                "{err:?}"
            ),
        }
        drop(conn);
        let one: i64 = query_scalar("SELECT 1").fetch_one(&engine).await?;
        assert_eq!(one, 1);
        return Ok(());
    }
    // The next use of that very connection reports the loss as a connection error...
    let err = query_scalar::<i64>("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Closed),
        "{err:?}"
    );
    drop(conn);
    // ...and the engine then serves from a fresh connection.
    let new_pid: i32 = query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&engine)
        .await?;
    assert_ne!(pid, new_pid);
    Ok(())
}

/// A connection the server ended while it sat in the pool is noticed when it is next taken out,
/// and replaced: the caller never sees the error, whatever the connection did last. (The reactor
/// timing that once let such a connection through on smol and async-std is reproduced exactly by
/// a unit test in `anysql-postgres`'s `io.rs`.)
async fn a_pooled_connection_the_server_ended_is_replaced_before_it_is_handed_out(
    db: TestDb,
) -> Result<(), Error> {
    if anysql_conformance::through_pgbouncer() {
        // PgBouncer keeps the client connection open when its server session is ended.
        return Ok(());
    }
    let engine = db.engine_with("max_size=1&target_session_attrs=read-write");
    let table = "pooled_then_ended";
    query(format!("CREATE TABLE {table} (id BIGINT)"))
        .execute(&engine)
        .await?;
    // The connection's last work before it goes back to the pool, in every shape.
    for round in 0..5 {
        let mut conn = engine.acquire().await?;
        let pid: i32 = query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        match round {
            0 => {
                query(format!("INSERT INTO {table} VALUES (1)"))
                    .execute(&mut conn)
                    .await?;
            }
            1 => {
                query(format!("SELECT id FROM {table}"))
                    .fetch_all(&mut conn)
                    .await?;
            }
            2 => {
                query_scalar::<i64>("SELECT generate_series(1, 1000)::bigint")
                    .fetch_optional(&mut conn)
                    .await?;
            }
            3 => {
                let mut tx = conn.begin().await?;
                query(format!("INSERT INTO {table} VALUES (2)"))
                    .execute(&mut tx)
                    .await?;
                tx.commit().await?;
            }
            _ => {}
        }
        drop(conn);
        // Ended, and gone: the server process has exited, so its goodbye and the end of the
        // stream are on their way (a machine under load can take a while to get there).
        let ended = terminate_sessions(&db, Duration::from_secs(10)).await?;
        assert!(ended >= 1, "round {round}: no session of the test's ended");
        anysql_conformance::sleep(Duration::from_millis(50)).await;
        let mut conn = engine.acquire().await?;
        let new_pid: i32 = query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::connection(format!("round {round}: {e}")))?;
        assert_ne!(pid, new_pid, "round {round}");
    }
    assert!(engine.metrics().connections_closed_broken >= 5);
    Ok(())
}

async fn eight_writers_and_four_readers_never_see_locked(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=12");
    query(
        "CREATE TABLE writes (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, n INTEGER NOT NULL)",
    )
    .execute(&engine)
    .await?;
    let reads = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..8_i64 {
        let engine = engine.clone();
        writers.push(spawn(async move {
            for n in 0..1000_i64 {
                query("INSERT INTO writes (writer, n) VALUES ($1, $2)")
                    .bind(writer)
                    .bind(n)
                    .execute(&engine)
                    .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let engine = engine.clone();
        let reads = Arc::clone(&reads);
        readers.push(spawn(async move {
            for _ in 0..300 {
                let n: i64 = query_scalar("SELECT count(*) FROM writes")
                    .fetch_one(&engine)
                    .await?;
                assert!((0..=8000).contains(&n));
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Error>(())
        }));
    }
    // Any "database is locked" fails here.
    for writer in writers {
        writer.await?;
    }
    for reader in readers {
        reader.await?;
    }
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM writes")
            .fetch_one(&engine)
            .await?,
        8000
    );
    assert_eq!(
        query_scalar::<i64>("SELECT count(DISTINCT writer * 10000 + n) FROM writes")
            .fetch_one(&engine)
            .await?,
        8000
    );
    assert_eq!(reads.load(Ordering::Relaxed), 1200);
    Ok(())
}

async fn panic_in_transaction_closure_keeps_the_engine_serving(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .execute(&engine)
        .await?;
    let engine2 = engine.clone();
    let task = spawn(async move {
        futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(engine2.transaction(
            async move |tx| {
                query("INSERT INTO notes (id, body) VALUES (1, 'lost')")
                    .execute(&mut *tx)
                    .await?;
                if tx.level() == 1 {
                    panic!("user code panicked inside the transaction closure");
                }
                Ok::<_, Error>(())
            },
        )))
        .await
        .is_err()
    });
    assert!(task.await, "the closure panicked");
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM notes")
            .fetch_one(&engine)
            .await?,
        0
    );
    query("INSERT INTO notes (id, body) VALUES (2, 'kept')")
        .execute(&engine)
        .await?;
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM notes")
            .fetch_one(&engine)
            .await?,
        1
    );
    assert_pool_settles(&engine).await;
    Ok(())
}

/// The Unix socket directory of the test server: `ANYSQL_PG_SOCKET_DIR`, else Debian's default.
fn pg_socket_dir() -> String {
    std::env::var("ANYSQL_PG_SOCKET_DIR").unwrap_or_else(|_| "/var/run/postgresql".into())
}

async fn connects_over_the_unix_socket(db: TestDb) -> Result<(), Error> {
    let tcp = anysql::core::ConnectOptions::parse(&anysql_conformance::pg_url())?;
    let url = tcp.url().expect("ANYSQL_PG_URL is a URL");
    let port = url.port().unwrap_or(5432);
    let dir = pg_socket_dir();
    let socket = format!("{dir}/.s.PGSQL.{port}");
    assert!(
        std::path::Path::new(&socket).exists(),
        "no PostgreSQL socket at {socket}; set ANYSQL_PG_SOCKET_DIR"
    );
    let unix_url = format!(
        "postgres://{}@localhost:{port}{}?host={dir}&application_name={}",
        url.username(),
        url.path(),
        db.schema.as_deref().unwrap_or_default()
    );
    let engine = anysql::builder(&unix_url).max_size(1).build()?;
    let over_unix: Option<String> = query_scalar("SELECT inet_client_addr()::text")
        .fetch_one(&engine)
        .await?;
    assert_eq!(
        over_unix, None,
        "a Unix-socket session has no client address"
    );
    assert_eq!(
        query_scalar::<i64>("SELECT $1::int8 * 2")
            .bind(21)
            .fetch_one(&engine)
            .await?,
        42
    );
    engine.close().await;
    Ok(())
}

async fn cancel_handle_stops_a_long_query_within_a_second(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let mut conn = engine.acquire().await?;
    let cancel = conn
        .cancel_handle()
        .expect("PostgreSQL connections can be cancelled");
    let canceller = spawn(async move {
        anysql_conformance::sleep(Duration::from_millis(100)).await;
        cancel.cancel().await
    });
    let started = std::time::Instant::now();
    let err = query("SELECT pg_sleep(10)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let took = started.elapsed();
    canceller.await?;
    assert_eq!(err.code(), Some("57014"), "query_canceled, got {err:?}");
    assert!(took < Duration::from_secs(1), "the cancel took {took:?}");
    // The connection is still good.
    assert_eq!(
        query_scalar::<i64>("SELECT 3").fetch_one(&mut conn).await?,
        3
    );
    Ok(())
}

async fn statements_are_named_only_outside_pgbouncer_mode(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let mut conn = engine.acquire().await?;
    for i in 0..3_i64 {
        assert_eq!(
            query_scalar::<i64>("SELECT $1::int8 + 1")
                .bind(i)
                .fetch_one(&mut conn)
                .await?,
            i + 1
        );
    }
    let named: i64 = query_scalar("SELECT count(*) FROM pg_prepared_statements")
        .fetch_one(&mut conn)
        .await?;
    if anysql_conformance::pgbouncer_mode() {
        assert_eq!(
            named, 0,
            "PgBouncer-safe mode must not leave named statements on the server"
        );
    } else {
        assert!(
            named >= 1,
            "the statement cache should hold named statements"
        );
    }
    Ok(())
}

/// Runs blocking work (the cluster's `pg_ctl` calls) on a thread of its own and awaits it.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send_blocking(work());
    });
    rx.recv().await.expect("the blocking work panicked")
}

async fn engine_survives_a_server_restart_without_being_rebuilt(_db: TestDb) -> Result<(), Error> {
    use xtask::pg::cluster::{Cluster, ServerBinaries};
    let Some(binaries) = ServerBinaries::find() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs the PostgreSQL server binaries"
        );
        eprintln!("SKIPPED: no initdb/pg_ctl to start a server of our own");
        return Ok(());
    };
    // A directory of its own, so that it never waits on the lock of a cluster xtask is running.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/anysql-pg-restart-test");
    let cluster =
        blocking(move || Cluster::start(binaries, &dir).map_err(|e| format!("{e:#}"))).await;
    let mut cluster = cluster
        .map_err(|e| Error::connection(format!("the throwaway cluster did not start: {e}")))?;
    let engine = anysql::builder(&cluster.url())
        .max_size(2)
        .acquire_timeout(Duration::from_secs(20))
        .build()?;
    query("CREATE TABLE survivors (id INTEGER PRIMARY KEY)")
        .execute(&engine)
        .await?;
    let mut a = engine.acquire().await?;
    let mut b = engine.acquire().await?;
    query("INSERT INTO survivors (id) VALUES (1)")
        .execute(&mut a)
        .await?;
    query("INSERT INTO survivors (id) VALUES (2)")
        .execute(&mut b)
        .await?;
    drop((a, b));

    let cluster = blocking(move || {
        cluster
            .restart()
            .map(|()| cluster)
            .map_err(|e| format!("{e:#}"))
    })
    .await;
    let mut cluster = cluster.map_err(|e| Error::connection(format!("the restart failed: {e}")))?;

    // Pooled connections died with the server: each fails once at most, as a connection error,
    // and is replaced. The engine is the same value throughout.
    let mut failures = 0;
    let mut rows = None;
    for _ in 0..10 {
        match query_scalar::<i64>("SELECT count(*) FROM survivors")
            .fetch_one(&engine)
            .await
        {
            Ok(n) => {
                rows = Some(n);
                break;
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Closed),
                    "{e:?}"
                );
                failures += 1;
            }
        }
    }
    assert_eq!(
        rows,
        Some(2),
        "committed rows survive the restart ({failures} failures first)"
    );
    assert!(failures <= 2, "{failures} failures for a pool of 2");
    for i in 0..5_i64 {
        assert_eq!(
            query_scalar::<i64>("SELECT $1::int8")
                .bind(i)
                .fetch_one(&engine)
                .await?,
            i
        );
    }
    assert_pool_settles(&engine).await;
    engine.close().await;
    blocking(move || cluster.stop().map_err(|e| format!("{e:#}")))
        .await
        .map_err(|e| Error::connection(format!("stopping the throwaway cluster failed: {e}")))?;
    Ok(())
}

async fn isolation_read_only_and_serialization_failures(db: TestDb) -> Result<(), Error> {
    use anysql::{IsolationLevel, TransactionOptions};
    let engine = db.engine_with("max_size=2");
    query("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount BIGINT NOT NULL)")
        .execute(&engine)
        .await?;
    let serializable = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    let mut tx = engine
        .begin_with(serializable.read_only(true).deferrable(true))
        .await?;
    assert_eq!(
        query_scalar::<String>("SHOW transaction_isolation")
            .fetch_one(&mut tx)
            .await?,
        "serializable"
    );
    assert_eq!(
        query_scalar::<String>("SHOW transaction_read_only")
            .fetch_one(&mut tx)
            .await?,
        "on"
    );
    assert_eq!(
        query_scalar::<String>("SHOW transaction_deferrable")
            .fetch_one(&mut tx)
            .await?,
        "on"
    );
    let err = query("INSERT INTO ledger (id, amount) VALUES (1, 1)")
        .execute(&mut tx)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("25006"), "read-only transaction: {err:?}");
    tx.rollback().await?;

    // Two serializable transactions that each read what the other writes: one must fail with
    // 40001, which is retryable, and a retry then succeeds.
    let mut a = engine.begin_with(serializable).await?;
    let mut b = engine.begin_with(serializable).await?;
    let sum_a: i64 = query_scalar("SELECT coalesce(sum(amount), 0)::int8 FROM ledger")
        .fetch_one(&mut a)
        .await?;
    let sum_b: i64 = query_scalar("SELECT coalesce(sum(amount), 0)::int8 FROM ledger")
        .fetch_one(&mut b)
        .await?;
    query("INSERT INTO ledger (id, amount) VALUES (10, $1)")
        .bind(sum_a + 1)
        .execute(&mut a)
        .await?;
    query("INSERT INTO ledger (id, amount) VALUES (20, $1)")
        .bind(sum_b + 1)
        .execute(&mut b)
        .await?;
    a.commit().await?;
    let err = b.commit().await.unwrap_err();
    assert_eq!(err.code(), Some("40001"), "{err:?}");
    assert!(err.is_retryable());
    let retried = engine
        .transaction_with(serializable, anysql::core::RetryPolicy::new(), async |tx| {
            let sum: i64 = query_scalar("SELECT sum(amount)::int8 FROM ledger")
                .fetch_one(&mut *tx)
                .await?;
            query("INSERT INTO ledger (id, amount) VALUES (20, $1)")
                .bind(sum + 1)
                .execute(&mut *tx)
                .await?;
            Ok(sum)
        })
        .await?;
    assert_eq!(retried, 1);
    Ok(())
}

async fn immediate_transactions_take_the_write_lock_at_begin(db: TestDb) -> Result<(), Error> {
    use anysql::TransactionOptions;
    // No busy timeout and no writer gate: a second writer fails at once instead of waiting, which
    // shows who holds the write lock.
    let engine = db.engine_with("max_size=2&busy_timeout=0&writer_gate=false");
    query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&engine)
        .await?;
    let mut a = engine.acquire().await?;
    let mut b = engine.acquire().await?;
    // A deferred BEGIN takes no lock until the first write.
    let deferred = a.begin().await?;
    query("INSERT INTO t (id) VALUES (1)")
        .execute(&mut b)
        .await?;
    deferred.rollback().await?;
    // BEGIN IMMEDIATE takes it at once.
    let immediate = a
        .begin_with(TransactionOptions::new().immediate(true))
        .await?;
    let err = query("INSERT INTO t (id) VALUES (2)")
        .execute(&mut b)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "SQLITE_BUSY is retryable: {err:?}");
    assert!(
        err.code().is_some_and(|c| c.starts_with("SQLITE_BUSY")),
        "{err:?}"
    );
    immediate.commit().await?;
    query("INSERT INTO t (id) VALUES (2)")
        .execute(&mut b)
        .await?;
    Ok(())
}

async fn run_sync_never_sees_an_abandoned_transaction(db: TestDb) -> Result<(), Error> {
    use anysql::sqlite::SqliteConnectionExt;
    let engine = db.engine_with("max_size=1");
    query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&engine)
        .await?;
    let mut conn = engine.acquire().await?;
    {
        let mut tx = conn.begin().await?;
        query("INSERT INTO t (id) VALUES (1)")
            .execute(&mut tx)
            .await?;
    }
    // The dropped transaction is rolled back before the closure runs on the raw connection.
    let (autocommit, rows) = conn
        .run_sync(|raw| {
            (
                raw.is_autocommit(),
                raw.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)),
            )
        })
        .await?;
    assert!(autocommit, "run_sync ran inside the abandoned transaction");
    assert_eq!(rows.map_err(|e| Error::decode(e.to_string()))?, 0);
    Ok(())
}
