//! Regression tests for issue #10's PostgreSQL defects, through the engine as applications use
//! it, each on tokio (multi-thread), smol and async-std, against a live PostgreSQL
//! (`ANYSQL_PG_URL`, or `postgres://root@127.0.0.1:5432/test`). Skipped when no server answers,
//! unless `CI=true`.

mod common;

use std::sync::Arc;

use anysql_core::{Engine, EngineBuilder, ErrorKind, SharedRuntime, Value};
use anysql_postgres::{PgConnection, PostgresDriver};
use common::{on_every_runtime, unique, url_with};
use futures_lite::StreamExt;

fn engine(options: &str, runtime: &SharedRuntime) -> Engine {
    EngineBuilder::new(&url_with(options))
        .driver(PostgresDriver)
        .shared_runtime(Arc::clone(runtime))
        .build()
        .unwrap()
}

async fn count(observer: &Engine, table: &str) -> i64 {
    observer
        .fetch_scalar(&format!("SELECT count(*)::int8 FROM {table}"), ())
        .await
        .unwrap()
}

/// Issue #10, 2: a transaction opened with raw SQL (`BEGIN` through `execute`, in a
/// multi-statement string, through `fetch`, through the raw client) never goes back to the pool
/// open: the next user's statements are autocommitted and seen by everyone.
#[test]
fn a_transaction_opened_with_raw_sql_is_rolled_back_before_reuse() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = unique("raw_begin");
        observer
            .execute(&format!("CREATE TABLE {table} (id int8)"), ())
            .await
            .unwrap();
        for options in [
            "max_size=1&shared=false",
            "max_size=1&shared=false&drive=spawned",
            "max_size=1&pgbouncer=true",
            "max_size=1",
        ] {
            let engine = engine(options, &rt);
            let openers = [
                "BEGIN".to_owned(),
                "start transaction isolation level repeatable read".to_owned(),
                format!("BEGIN; INSERT INTO {table} VALUES (-1)"),
                // A failed transaction block (status `E`).
                "BEGIN; SELECT 1/0".to_owned(),
                "fetch:BEGIN".to_owned(),
                "client:BEGIN".to_owned(),
            ];
            for opener in &openers {
                let before = count(&observer, &table).await;
                let mut conn = engine.acquire().await.unwrap();
                if let Some(sql) = opener.strip_prefix("fetch:") {
                    conn.fetch_all(sql, ()).await.unwrap();
                } else if let Some(sql) = opener.strip_prefix("client:") {
                    let pg = conn.driver_connection::<PgConnection>().unwrap();
                    let sql = sql.to_owned();
                    pg.with_client(move |client| {
                        Box::pin(async move { client.batch_execute(&sql).await })
                    })
                    .await
                    .unwrap();
                } else {
                    let _ = conn.execute(opener.as_str(), ()).await;
                }
                drop(conn);
                let n = engine
                    .execute(&format!("INSERT INTO {table} VALUES (1)"), ())
                    .await
                    .unwrap();
                assert_eq!(n, 1, "{options}: {opener}");
                assert_eq!(
                    count(&observer, &table).await,
                    before + 1,
                    "{options}: after {opener:?}, the next user's insert is not committed"
                );
                // And the connection is usable in every way afterwards.
                let mut tx = engine.begin().await.unwrap();
                tx.execute(&format!("INSERT INTO {table} VALUES (2)"), ())
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                assert_eq!(count(&observer, &table).await, before + 1);
            }
            engine.close().await;
        }
        observer
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
        observer.close().await;
    });
}

/// Issue #10, 2: the engine's shared connection never takes transaction control, in any form:
/// each goes to a pooled connection (which the pool then opens).
#[test]
fn the_shared_connection_refuses_every_form_of_transaction_control() {
    on_every_runtime(|rt| async move {
        for sql in [
            "BEGIN",
            "START TRANSACTION",
            "BEGIN; SELECT 1",
            "SELECT 1; COMMIT",
            "COMMIT AND CHAIN",
            "ROLLBACK AND CHAIN",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "ROLLBACK TO SAVEPOINT s",
            "ROLLBACK PREPARED 'anysql_none'",
            "COMMIT PREPARED 'anysql_none'",
            "END",
            "ABORT",
        ] {
            let engine = engine("", &rt);
            let n: i64 = engine.fetch_scalar("SELECT 1::int8", ()).await.unwrap();
            assert_eq!(n, 1);
            assert_eq!(
                engine.status().size,
                0,
                "the shared connection is not pooled"
            );
            // Most of these fail outside a transaction; where they run is the point.
            let _ = engine.execute(sql, ()).await;
            assert_eq!(
                engine.status().size,
                1,
                "{sql:?} ran on the shared connection, not a pooled one"
            );
            engine.close().await;
        }
    });
}

/// Issue #10, 5: `COPY … FROM STDIN` / `COPY … TO STDOUT` through the query methods is a clear
/// error before anything is sent, on every entry point, the shared and the pooled connection, and
/// no other caller ever sees a failure. COPY with a server file is unaffected.
#[test]
fn copy_to_or_from_the_client_is_refused_before_sending() {
    on_every_runtime(|rt| async move {
        let table = unique("copy");
        let setup = engine("shared=false", &rt);
        setup
            .execute(&format!("CREATE TABLE {table} (id int8)"), ())
            .await
            .unwrap();
        let superuser: bool = setup
            .fetch_scalar(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                (),
            )
            .await
            .unwrap();
        let statements = [
            format!("COPY {table} FROM STDIN"),
            format!("copy {table} (id) from stdin with (format csv)"),
            format!("COPY {table} TO STDOUT"),
            format!("COPY (SELECT id FROM {table}) TO STDOUT"),
            format!("SELECT 1; COPY {table} FROM STDIN"),
            format!("/* load */ COPY {table} FROM STDIN; SELECT 1"),
        ];
        let refused = |e: anysql_core::Error, what: &str| {
            assert_eq!(e.kind(), ErrorKind::InvalidStatement, "{what}: {e:?}");
            assert_eq!(e.code(), None, "{what}: {e:?}");
            assert!(
                e.message()
                    .contains("COPY FROM STDIN / TO STDOUT cannot run through execute or fetch"),
                "{what}: {e}"
            );
        };
        for options in [
            "",
            "shared=false",
            "pgbouncer=true",
            "statement_cache_capacity=0",
        ] {
            let engine = engine(options, &rt);
            for sql in &statements {
                let what = format!("{options}: {sql}");
                // Another caller's statements run beside it and after it, and never fail.
                let (copy, others) = futures_lite::future::zip(engine.execute(sql, ()), async {
                    for i in 0..5_i64 {
                        let n: i64 = engine.fetch_scalar("SELECT $1::int8", (i,)).await.unwrap();
                        assert_eq!(n, i);
                    }
                })
                .await;
                let () = others;
                refused(copy.unwrap_err(), &what);
                refused(engine.fetch_all(sql, ()).await.unwrap_err(), &what);
                refused(engine.fetch_optional(sql, ()).await.unwrap_err(), &what);
                let n: i64 = engine.fetch_scalar("SELECT 1::int8", ()).await.unwrap();
                assert_eq!(n, 1, "{what}");

                // The pooled connection's every entry point; it stays usable (same session).
                let mut conn = engine.acquire().await.unwrap();
                let pid: i64 = conn
                    .fetch_scalar("SELECT pg_backend_pid()::int8", ())
                    .await
                    .unwrap();
                refused(conn.execute(sql, ()).await.unwrap_err(), &what);
                refused(conn.fetch_all(sql, ()).await.unwrap_err(), &what);
                refused(conn.fetch_optional(sql, ()).await.unwrap_err(), &what);
                refused(
                    conn.fetch_all_as::<(i64,)>(sql, ()).await.unwrap_err(),
                    &what,
                );
                let mut rows = conn.fetch(sql, ());
                refused(rows.next().await.unwrap().unwrap_err(), &what);
                drop(rows);
                refused(
                    conn.execute_many(sql, vec![(), ()]).await.unwrap_err(),
                    &what,
                );
                let again: i64 = conn
                    .fetch_scalar("SELECT pg_backend_pid()::int8", ())
                    .await
                    .unwrap();
                assert_eq!(again, pid, "{what}: the connection was replaced");
            }
            if superuser {
                // COPY with a file on the server is an ordinary statement.
                let n = engine
                    .execute(&format!("COPY {table} FROM '/dev/null'"), ())
                    .await
                    .unwrap();
                assert_eq!(n, 0, "{options}");
            }
            engine.close().await;
        }
        setup
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
        setup.close().await;
    });
}

/// Issue #10, 5, defence in depth: if the server ever starts a COPY that the driver did not
/// expect (here through the raw client, which bypasses every check), the connection is broken
/// and never handed out again, so the next caller does not fail.
#[test]
fn an_unexpected_copy_response_breaks_the_connection() {
    on_every_runtime(|rt| async move {
        let table = unique("copy_raw");
        let engine = engine("max_size=1&shared=false", &rt);
        engine
            .execute(&format!("CREATE TABLE {table} (id int8)"), ())
            .await
            .unwrap();
        // tokio-postgres' own COPY API through the raw client is fine: the connection stays.
        let mut conn = engine.acquire().await.unwrap();
        let pid: i64 = conn
            .fetch_scalar("SELECT pg_backend_pid()::int8", ())
            .await
            .unwrap();
        let pg = conn.driver_connection::<PgConnection>().unwrap();
        let (copy_in, copy_out) = (
            format!("COPY {table} FROM STDIN"),
            format!("COPY {table} TO STDOUT"),
        );
        let copied = pg
            .with_client(move |client| {
                Box::pin(async move {
                    let sink = client.copy_in::<_, &'static [u8]>(&copy_in).await?;
                    let n = std::pin::pin!(sink).finish().await?;
                    let out = client.copy_out(&copy_out).await?;
                    let chunks = out.count().await;
                    Ok::<_, tokio_postgres::Error>((n, chunks))
                })
            })
            .await
            .unwrap();
        assert_eq!(copied, (0, 0));
        assert!(!DriverConnectionExt::broken(pg));
        assert!(
            !DriverConnectionExt::in_tx(pg),
            "every reply read, and no transaction"
        );
        drop(conn);
        let same: i64 = engine
            .fetch_scalar("SELECT pg_backend_pid()::int8", ())
            .await
            .unwrap();
        assert_eq!(
            same, pid,
            "a COPY through tokio-postgres' API keeps the connection"
        );

        let mut conn = engine.acquire().await.unwrap();
        let pg = conn.driver_connection::<PgConnection>().unwrap();
        let sql = format!("COPY {table} FROM STDIN");
        let raw = pg
            .with_client(move |client| {
                Box::pin(async move { client.simple_query(&sql).await.map(drop) })
            })
            .await;
        assert!(raw.is_err(), "tokio-postgres refuses the COPY response");
        assert!(
            DriverConnectionExt::broken(pg),
            "a session in COPY mode must count as broken"
        );
        drop(conn);
        let n: i64 = engine.fetch_scalar("SELECT 3::int8", ()).await.unwrap();
        assert_eq!(n, 3);
        engine
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
        engine.close().await;
    });
}

/// `is_broken` and `in_transaction` through the trait, without importing it into every test.
trait DriverConnectionExt {
    fn broken(&self) -> bool;
    fn in_tx(&self) -> bool;
}

impl DriverConnectionExt for PgConnection {
    fn broken(&self) -> bool {
        anysql_core::DriverConnection::is_broken(self)
    }

    fn in_tx(&self) -> bool {
        anysql_core::DriverConnection::in_transaction(self)
    }
}

/// `SELECT 1 WHERE 1 IN ($1, …, $n)` and `n` parameters.
fn many_params(n: usize) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT 1::int8 WHERE 1 IN (");
    for i in 1..=n {
        if i > 1 {
            sql.push(',');
        }
        sql.push('$');
        sql.push_str(&i.to_string());
    }
    sql.push(')');
    (sql, vec![Value::Int(1); n])
}

/// Issue #10, 10: more than 65,535 parameters is a parameter error naming the limit and the count,
/// raised before sending, on every path, and the connection stays usable.
#[test]
fn too_many_parameters_are_refused_before_sending() {
    let (sql, params) = many_params(65_536);
    let (sql_max, params_max) = many_params(65_535);
    let (sql, sql_max) = (sql.as_str(), sql_max.as_str());
    on_every_runtime(|rt| {
        let (params, params_max) = (params.clone(), params_max.clone());
        async move {
            let refused = |e: anysql_core::Error, what: &str| {
                assert_eq!(e.kind(), ErrorKind::Parameter, "{what}: {e:?}");
                assert!(
                    e.message().contains("65535") && e.message().contains("65536"),
                    "{what}: {e}"
                );
            };
            for options in [
                "",
                "shared=false",
                "pgbouncer=true",
                "statement_cache_capacity=0",
            ] {
                let engine = engine(options, &rt);
                refused(
                    engine.execute(sql, params.clone()).await.unwrap_err(),
                    options,
                );
                refused(
                    engine.fetch_all(sql, params.clone()).await.unwrap_err(),
                    options,
                );
                refused(
                    engine
                        .fetch_optional(sql, params.clone())
                        .await
                        .unwrap_err(),
                    options,
                );
                // The placeholders alone are too many, whatever was passed.
                refused(
                    engine
                        .fetch_all(sql, params[..10].to_vec())
                        .await
                        .unwrap_err(),
                    options,
                );
                let n: i64 = engine.fetch_scalar("SELECT 1::int8", ()).await.unwrap();
                assert_eq!(n, 1, "{options}");

                let mut conn = engine.acquire().await.unwrap();
                let pid: i64 = conn
                    .fetch_scalar("SELECT pg_backend_pid()::int8", ())
                    .await
                    .unwrap();
                refused(
                    conn.execute(sql, params.clone()).await.unwrap_err(),
                    options,
                );
                refused(
                    conn.fetch_all(sql, params.clone()).await.unwrap_err(),
                    options,
                );
                refused(
                    conn.fetch_all_as::<(i64,)>(sql, params.clone())
                        .await
                        .unwrap_err(),
                    options,
                );
                let mut rows = conn.fetch(sql, params.clone());
                refused(rows.next().await.unwrap().unwrap_err(), options);
                drop(rows);
                refused(
                    conn.execute_many(sql, vec![params.clone()])
                        .await
                        .unwrap_err(),
                    options,
                );
                // The limit itself is fine.
                let one: i64 = conn
                    .fetch_scalar(sql_max, params_max.clone())
                    .await
                    .unwrap();
                assert_eq!(one, 1, "{options}");
                let again: i64 = conn
                    .fetch_scalar("SELECT pg_backend_pid()::int8", ())
                    .await
                    .unwrap();
                assert_eq!(again, pid, "{options}: the connection was replaced");
                drop(conn);
                engine.close().await;
            }
        }
    });
}

/// Issue #10, 4: `numeric` comes back digit for digit as [`Value::Numeric`], scale respected, and
/// binds exactly.
#[test]
fn numerics_keep_every_digit() {
    on_every_runtime(|rt| async move {
        for options in ["", "shared=false", "pgbouncer=true"] {
            let engine = engine(options, &rt);
            let table = unique("numeric");
            engine
                .execute(
                    &format!("CREATE TABLE {table} (id int8, n numeric(40,10), free numeric)"),
                    (),
                )
                .await
                .unwrap();
            let exact = "12345678901234567890.0123456789";
            engine
                .execute(
                    &format!("INSERT INTO {table} VALUES (1, $1, $2)"),
                    (
                        Value::Numeric(exact.to_owned()),
                        Value::Numeric("-0.000000000000000000000000000001".to_owned()),
                    ),
                )
                .await
                .unwrap();
            engine
                .execute(
                    &format!("INSERT INTO {table} VALUES (2, 1.5, 'NaN'), (3, 0, 'Infinity'), (4, -2, '-Infinity')"),
                    (),
                )
                .await
                .unwrap();
            let rows = engine
                .fetch_all(
                    &format!("SELECT n, free, n::text AS t FROM {table} ORDER BY id"),
                    (),
                )
                .await
                .unwrap();
            let got: Vec<(Value, Value)> = rows
                .iter()
                .map(|r| (r.values()[0].clone(), r.values()[1].clone()))
                .collect();
            let numeric = |s: &str| Value::Numeric(s.to_owned());
            assert_eq!(
                got,
                [
                    (numeric(exact), numeric("-0.000000000000000000000000000001")),
                    (numeric("1.5000000000"), numeric("NaN")),
                    (numeric("0.0000000000"), numeric("Infinity")),
                    (numeric("-2.0000000000"), numeric("-Infinity")),
                ],
                "{options}"
            );
            // Digit for digit as PostgreSQL prints it.
            for row in &rows {
                let Value::Numeric(n) = &row.values()[0] else {
                    panic!("{row:?}")
                };
                assert_eq!(
                    Some(n.as_str()),
                    row.get::<Option<String>>("t").unwrap().as_deref()
                );
            }
            let s: String = engine
                .fetch_scalar(&format!("SELECT n FROM {table} WHERE id = 1"), ())
                .await
                .unwrap();
            assert_eq!(s, exact);
            let sum: i64 = engine
                .fetch_scalar(
                    "SELECT sum(x) FROM (VALUES (1::int8), (2), (4000)) v(x)",
                    (),
                )
                .await
                .unwrap();
            assert_eq!(sum, 4003);
            // Bound: to numeric exactly (found again by equality), to text as its text; refused by
            // an integer parameter, as text is.
            let id: i64 = engine
                .fetch_scalar(
                    &format!("SELECT id FROM {table} WHERE n = $1"),
                    (Value::Numeric(exact.to_owned()),),
                )
                .await
                .unwrap();
            assert_eq!(id, 1);
            let t: String = engine
                .fetch_scalar("SELECT $1::text", (Value::Numeric("1.10".to_owned()),))
                .await
                .unwrap();
            assert_eq!(t, "1.10");
            if !options.contains("pgbouncer") {
                let err = engine
                    .fetch_scalar::<i64>("SELECT $1::int8", (Value::Numeric("1".to_owned()),))
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Parameter, "{err:?}");
            }
            engine
                .execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            engine.close().await;
        }
    });
}
