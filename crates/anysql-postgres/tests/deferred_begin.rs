//! The deferred `BEGIN`: a transaction's `BEGIN` travels with its first statement. What the caller
//! sees must not change: the statement runs inside the transaction, a failing first statement
//! aborts it, options apply, dropped futures leave no unknown state. Through the engine, on tokio
//! (multi-thread), smol and async-std, in every drive mode and with unnamed statements, against a
//! live PostgreSQL (`ANYSQL_PG_URL`, or `postgres://root@127.0.0.1:5432/test`). Skipped when no
//! server answers, unless `CI=true`.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use anysql_core::{
    Connection, Engine, EngineBuilder, IsolationLevel, SharedRuntime, TransactionOptions,
};
use anysql_postgres::{PgConnection, PostgresDriver};
use common::{on_every_runtime, unique, url_with};

/// Pools of one connection, so that every transaction meets the connection the last one left.
const SETUPS: [&str; 4] = [
    "max_size=1&shared=false",
    "max_size=1&shared=false&drive=spawned",
    "max_size=1&shared=false&busy_poll=0",
    "max_size=1&shared=false&pgbouncer=true",
];

fn engine(options: &str, runtime: &SharedRuntime) -> Engine {
    EngineBuilder::new(&url_with(options))
        .driver(PostgresDriver)
        .shared_runtime(Arc::clone(runtime))
        .build()
        .unwrap()
}

async fn table(observer: &Engine, prefix: &str) -> String {
    let table = unique(prefix);
    observer
        .execute(
            &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, v int8 NOT NULL DEFAULT 0)"),
            (),
        )
        .await
        .unwrap();
    table
}

async fn count(observer: &Engine, table: &str) -> i64 {
    observer
        .fetch_scalar(&format!("SELECT count(*)::int8 FROM {table}"), ())
        .await
        .unwrap()
}

/// Whether the session is outside any transaction block, by the server's word: in autocommit
/// mode two statements get two transactions; and by the driver's.
async fn outside_transaction(conn: &mut Connection) -> bool {
    let xact = "SELECT pg_current_xact_id()::text";
    let first: String = conn.fetch_scalar(xact, ()).await.unwrap();
    let second: String = conn.fetch_scalar(xact, ()).await.unwrap();
    let pg = conn
        .ready_driver_connection::<PgConnection>()
        .await
        .unwrap()
        .unwrap();
    first != second && !anysql_core::DriverConnection::in_transaction(pg)
}

#[test]
fn the_first_statement_runs_inside_the_transaction() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_inside").await;
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();

            // Carried by an execute with parameters, then rolled back: nothing of it stays.
            let mut tx = conn.begin().await.unwrap();
            let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
            assert_eq!(tx.execute(&insert, (1,)).await.unwrap(), 1);
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 0, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");

            // Carried by a query: the second statement is in the same transaction.
            let mut tx = conn.begin().await.unwrap();
            let xact = "SELECT pg_current_xact_id()::text || $1::text";
            let first: String = tx.fetch_scalar(xact, ("",)).await.unwrap();
            tx.execute(&insert, (2,)).await.unwrap();
            let second: String = tx.fetch_scalar(xact, ("",)).await.unwrap();
            assert_eq!(first, second, "{setup}");
            assert_eq!(
                count(&observer, &table).await,
                0,
                "{setup}: not committed yet"
            );
            tx.commit().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // Carried by a streamed query.
            let mut tx = conn.begin().await.unwrap();
            {
                use futures_lite::StreamExt;
                let select = format!("SELECT id FROM {table} WHERE id > $1");
                let mut rows = tx.fetch(&select, (0,));
                let mut seen = 0;
                while let Some(row) = rows.next().await {
                    row.unwrap();
                    seen += 1;
                }
                assert_eq!(seen, 1);
            }
            tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), (2,))
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // A first statement without parameters (the simple protocol) gets the BEGIN first.
            let mut tx = conn.begin().await.unwrap();
            tx.execute(&format!("DELETE FROM {table}"), ())
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // A savepoint as the first statement.
            let mut tx = conn.begin().await.unwrap();
            let mut savepoint = tx.begin().await.unwrap();
            savepoint.execute(&insert, (3,)).await.unwrap();
            savepoint.commit().await.unwrap();
            tx.execute(&insert, (4,)).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(count(&observer, &table).await, 3, "{setup}");

            // A batch as the first statement.
            let mut tx = conn.begin().await.unwrap();
            tx.execute_many(&insert, [(5,), (6,)]).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 3, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
            observer
                .execute(&format!("DELETE FROM {table}"), ())
                .await
                .unwrap();
        }
    });
}

#[test]
fn begin_then_commit_or_rollback_with_no_statement() {
    on_every_runtime(|rt| async move {
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for commit in [true, false, true] {
                let tx = conn.begin().await.unwrap();
                if commit {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
            // Dropped unused: nothing to roll back, and nothing left open.
            drop(conn.begin().await.unwrap());
            assert!(outside_transaction(&mut conn).await, "{setup}");
            drop(conn);
            let tx = engine.begin().await.unwrap();
            tx.commit().await.unwrap();
            drop(engine.begin().await.unwrap());
            let mut conn = engine.acquire().await.unwrap();
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

#[test]
fn a_failing_first_statement_leaves_the_transaction_aborted() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_aborted").await;
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        observer.execute(&insert, (1,)).await.unwrap();
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for commit in [false, true] {
                let mut tx = conn.begin().await.unwrap();
                // A duplicate key: the statement ran in the transaction, and failed.
                let error = tx.execute(&insert, (1,)).await.unwrap_err();
                assert_eq!(error.code(), Some("23505"), "{setup}: {error}");
                let error = tx.execute(&insert, (2,)).await.unwrap_err();
                assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                let error = tx
                    .fetch_scalar::<i64>("SELECT $1::int8", (1,))
                    .await
                    .unwrap_err();
                assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                if commit {
                    let error = tx.commit().await.unwrap_err();
                    assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                } else {
                    tx.rollback().await.unwrap();
                }
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
            // A query failing as the first statement.
            let mut tx = conn.begin().await.unwrap();
            let error = tx
                .fetch_scalar::<i64>("SELECT 1 / $1::int8", (0,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("22012"), "{setup}: {error}");
            let error = tx.execute(&insert, (3,)).await.unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            tx.rollback().await.unwrap();
            // A first statement refused before anything is sent (a wrong parameter count) leaves
            // the transaction as it was: still to begin, and usable.
            let mut tx = conn.begin().await.unwrap();
            assert!(tx.execute(&insert, (3, 4)).await.is_err());
            tx.execute(&insert, (3,)).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

#[test]
fn transaction_options_still_apply() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_options").await;
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            let cases = [
                (TransactionOptions::new(), "read committed", "off", "off"),
                (
                    TransactionOptions::new().isolation(IsolationLevel::RepeatableRead),
                    "repeatable read",
                    "off",
                    "off",
                ),
                (
                    TransactionOptions::new()
                        .isolation(IsolationLevel::Serializable)
                        .read_only(true)
                        .deferrable(true),
                    "serializable",
                    "on",
                    "on",
                ),
            ];
            for (options, isolation, read_only, deferrable) in cases {
                // The first statement carries the BEGIN (a query with a parameter)...
                let mut tx = conn.begin_with(options).await.unwrap();
                let row = tx
                    .fetch_one(
                        "SELECT current_setting('transaction_isolation'), \
                         current_setting('transaction_read_only'), \
                         current_setting('transaction_deferrable'), $1::int8",
                        (1,),
                    )
                    .await
                    .unwrap();
                let got: (String, String, String) = (
                    row.get(0).unwrap(),
                    row.get(1).unwrap(),
                    row.get(2).unwrap(),
                );
                assert_eq!(
                    got,
                    (isolation.into(), read_only.into(), deferrable.into()),
                    "{setup}"
                );
                tx.commit().await.unwrap();
                // ... or comes first (SHOW, without parameters).
                let mut tx = conn.begin_with(options).await.unwrap();
                let shown: String = tx
                    .fetch_scalar("SHOW transaction_isolation", ())
                    .await
                    .unwrap();
                assert_eq!(shown, isolation, "{setup}");
                tx.rollback().await.unwrap();
            }
            // Read only: a write as the first statement is refused, and aborts the transaction.
            let mut tx = conn
                .begin_with(TransactionOptions::new().read_only(true))
                .await
                .unwrap();
            let error = tx
                .execute(&format!("INSERT INTO {table} (id) VALUES ($1)"), (1,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("25006"), "{setup}: {error}");
            let error = tx
                .fetch_scalar::<i64>("SELECT $1::int8", (1,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 0, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

/// Polls `future` `polls` times (yielding in between), then drops it unfinished; `true` if it
/// finished first.
async fn poll_then_drop<F: Future>(future: F, polls: usize) -> bool {
    let mut future = pin!(future);
    for _ in 0..polls {
        if futures_lite::future::poll_once(future.as_mut())
            .await
            .is_some()
        {
            return true;
        }
        futures_lite::future::yield_now().await;
    }
    false
}

#[test]
fn a_dropped_first_statement_leaves_no_unknown_state() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_dropped").await;
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        let slow = format!("INSERT INTO {table} (id) SELECT $1 FROM pg_sleep(0.2)");
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for polls in [0, 1, 2, 3, 5, 8, 1000] {
                for sql in [&insert, &slow] {
                    // Dropped first statement, then the transaction is rolled back: whether the
                    // statement ran or not, it ran inside the transaction, so nothing stays.
                    let mut tx = conn.begin().await.unwrap();
                    poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    tx.execute(&insert, (2,)).await.unwrap();
                    tx.rollback().await.unwrap();
                    assert_eq!(count(&observer, &table).await, 0, "{setup}, {polls} polls");
                    assert!(outside_transaction(&mut conn).await, "{setup}");

                    // Dropped first statement, then the transaction handle too.
                    let mut tx = conn.begin().await.unwrap();
                    poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    drop(tx);
                    assert!(outside_transaction(&mut conn).await, "{setup}");
                    assert_eq!(count(&observer, &table).await, 0, "{setup}, {polls} polls");

                    // Dropped first statement, then a commit: the statement ran once or not
                    // at all, inside the transaction; the next statement is in it too.
                    let mut tx = conn.begin().await.unwrap();
                    let finished = poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    tx.execute(&insert, (2,)).await.unwrap();
                    tx.commit().await.unwrap();
                    let n = count(&observer, &table).await;
                    assert!(n == 2 || (n == 1 && !finished), "{setup}: {n} rows");
                    observer
                        .execute(&format!("DELETE FROM {table}"), ())
                        .await
                        .unwrap();
                }
            }
            drop(conn);
            for polls in [0, 1, 2, 3, 5, 8, 1000] {
                // Dropped query with its connection: reset, not in a transaction.
                let mut tx = engine.begin().await.unwrap();
                poll_then_drop(tx.fetch_all("SELECT pg_sleep($1)", (0.2,)), polls).await;
                drop(tx);
                let mut conn = engine.acquire().await.unwrap();
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
        }
    });
}

#[test]
fn an_error_of_begin_itself_is_reported_by_begin_when_it_runs_at_once() {
    on_every_runtime(|rt| async move {
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            // A transaction block opened and failed with SQL: the server refuses any BEGIN, and
            // the driver, which defers BEGIN only in an idle session, runs it at once.
            let _ = conn.execute("BEGIN; SELECT 1/0", ()).await.unwrap_err();
            let error = conn.begin().await.unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            conn.execute("ROLLBACK", ()).await.unwrap();
            let tx = conn.begin().await.unwrap();
            tx.commit().await.unwrap();
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}
