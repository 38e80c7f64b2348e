//! Regression tests for issue #10's PostgreSQL defects, through the engine as applications use
//! it, each on tokio (multi-thread), smol and async-std, against a live PostgreSQL
//! (`ANYSQL_PG_URL`, or `postgres://root@127.0.0.1:5432/test`). Skipped when no server answers,
//! unless `CI=true`.

mod common;

use std::future::Future;
use std::sync::Arc;

use anysql_core::{Engine, ErrorKind, SharedRuntime, Value};
use anysql_postgres::{PgConnection, PostgresDriver};
use common::{unique, url_with};
use futures_lite::StreamExt;

/// Runs `test` once on each runtime, or not at all when no server answers (unless `CI=true`).
fn on_every_runtime<F, Fut>(test: F)
where
    F: Fn(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle: SharedRuntime = Arc::new(anysql_tokio::TokioRuntime::from_handle(
        tokio.handle().clone(),
    ));
    let up = tokio.block_on({
        let handle = Arc::clone(&handle);
        async move {
            let url = url_with("");
            match PgConnection::connect(&common::options(&url), &handle).await {
                Ok(_) => true,
                Err(e)
                    if e.kind() == ErrorKind::Connection
                        && std::env::var("CI").as_deref() != Ok("true") =>
                {
                    eprintln!("SKIPPED: no PostgreSQL server at {url}: {e}");
                    false
                }
                Err(e) => panic!("connecting to {url}: {e}"),
            }
        }
    });
    if !up {
        return;
    }
    tokio.block_on(test(handle));
    smol::block_on(test(Arc::new(anysql_smol::SmolRuntime::new())));
    async_std::task::block_on(test(Arc::new(anysql_async_std::AsyncStdRuntime::new())));
}

fn engine(options: &str, runtime: &SharedRuntime) -> Engine {
    Engine::builder(&url_with(options))
        .driver(PostgresDriver)
        .shared_runtime(Arc::clone(runtime))
        .build()
        .unwrap()
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
            .fetch_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", ())
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
            assert_eq!(e.kind(), ErrorKind::Database, "{what}: {e:?}");
            assert_eq!(e.code(), Some("0A000"), "{what}: {e:?}");
            assert!(
                e.message()
                    .contains("COPY FROM STDIN / TO STDOUT is not supported through execute/fetch"),
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
                refused(conn.fetch_all_as::<(i64,)>(sql, ()).await.unwrap_err(), &what);
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
                refused(conn.execute(sql, params.clone()).await.unwrap_err(), options);
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
