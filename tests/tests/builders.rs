//! The query builders and the `Executor` trait on every cell: one generic function over
//! `impl Executor<'_>` serves an engine, a connection and a transaction; every finisher runs on
//! each; streams from the engine own their pooled connection and return it clean when dropped.

use std::time::Duration;

use anysql::prelude::*;
use anysql::Pipeline;
use anysql_conformance::{assert_pool_settles, TestDb};
use futures_lite::StreamExt;

anysql_conformance::cell_tests!(
    cell,
    None,
    one_generic_function_serves_engine_connection_and_transaction,
    every_finisher_runs_on_every_executor,
    engine_streams_own_their_connection_and_return_it_clean,
    owned_and_borrowed_sql_bind_the_same,
    the_engine_shorthands_run_on_the_same_path,
    an_owning_transaction_closure_is_send,
    begin_and_acquire_work_from_any_executor,
    a_pipeline_commits_with_its_transaction,
    a_failed_pipeline_statement_stops_it_and_keeps_nothing,
    a_pipeline_statement_sees_what_the_ones_before_it_did,
    a_pipeline_is_atomic_on_every_executor,
    a_pipeline_refuses_bad_input_and_keeps_nothing,
    a_dropped_pipeline_applies_all_or_nothing,
);

/// Not `Send` (see `transaction_work_borrows_the_callers_locals`), so run by `run_local`.
#[test]
fn transaction_work_borrows_the_callers_locals_on_the_cell() {
    anysql_conformance::run_local(transaction_work_borrows_the_callers_locals);
}

async fn add_user(db: impl Executor<'_>, id: i64, name: &str) -> Result<u64, Error> {
    query("INSERT INTO users (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(db)
        .await
}

async fn user_name(db: impl Executor<'_>, id: i64) -> Result<Option<String>, Error> {
    query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

async fn create_users(engine: &Engine) -> Result<(), Error> {
    query("CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .execute(engine)
        .await
        .map(drop)
}

async fn one_generic_function_serves_engine_connection_and_transaction(
    db: TestDb,
) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    assert_eq!(add_user(&engine, 1, "ada").await?, 1);
    let mut conn = engine.acquire().await?;
    assert_eq!(add_user(&mut conn, 2, "grace").await?, 1);
    {
        let mut tx = conn.begin().await?;
        add_user(&mut tx, 3, "edsger").await?;
        assert_eq!(user_name(&mut tx, 3).await?.as_deref(), Some("edsger"));
        // Nested: a savepoint is an executor too.
        let mut sp = tx.begin().await?;
        add_user(&mut sp, 4, "barbara").await?;
        sp.rollback().await?;
        tx.commit().await?;
    }
    let mut tx = engine.begin().await?;
    add_user(&mut tx, 5, "alan").await?;
    tx.rollback().await?;
    drop(conn);
    for (id, name) in [
        (1, Some("ada")),
        (2, Some("grace")),
        (3, Some("edsger")),
        (4, None),
        (5, None),
    ] {
        assert_eq!(user_name(&engine, id).await?.as_deref(), name, "user {id}");
    }
    Ok(())
}

/// `engine.transaction(async |tx| ..)` borrows the caller's locals (shared and mutable), calls
/// `Executor` functions and nests a savepoint; the retrying form borrows too. (A future holding
/// such a borrow across an await is not provably `Send` with today's compiler, rust-lang/rust#110338;
/// the engine's docs say so.)
async fn transaction_work_borrows_the_callers_locals(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    let names = ["ada".to_string(), "grace".to_string()];
    let mut added = 0;
    engine
        .transaction(async |tx| {
            for (id, name) in names.iter().enumerate() {
                added += add_user(&mut *tx, id as i64, name).await?;
            }
            let mut sp = tx.begin().await?;
            add_user(&mut sp, 99, &names[0]).await?;
            sp.rollback().await?;
            Ok::<_, Error>(())
        })
        .await?;
    assert_eq!(added, 2);
    let mut attempts = 0;
    let policy = anysql::core::RetryPolicy::new();
    let count: i64 = engine
        .transaction_with(anysql::TransactionOptions::new(), policy, async |tx| {
            attempts += 1;
            assert_eq!(
                user_name(&mut *tx, 1).await?.as_deref(),
                Some(names[1].as_str())
            );
            query_scalar("SELECT count(*) FROM users")
                .fetch_one(&mut *tx)
                .await
        })
        .await?;
    assert_eq!((count, attempts), (2, 1));
    assert_eq!(user_name(&engine, 99).await?, None);
    Ok(())
}

/// A transaction closure that owns what it uses (`async move`) runs in a spawned task.
async fn an_owning_transaction_closure_is_send(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    let spawned = engine.clone();
    let name = String::from("edsger");
    let task = anysql_conformance::spawn(async move {
        spawned
            .transaction(async move |tx| add_user(&mut *tx, 3, &name).await)
            .await
    });
    assert_eq!(task.await?, 1);
    assert_eq!(user_name(&engine, 3).await?.as_deref(), Some("edsger"));
    Ok(())
}

/// A generic function makes its work atomic with `db.begin()` and pins its statements to one
/// session with `db.acquire()`, whatever executor it was given: on the engine a pooled connection,
/// on a connection itself, inside a transaction a savepoint and the transaction's connection.
async fn begin_and_acquire_work_from_any_executor(db: TestDb) -> Result<(), Error> {
    async fn add_pair(db: impl Executor<'_>, id: i64, commit: bool) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        add_user(&mut tx, id, "first").await?;
        add_user(&mut tx, id + 1, "second").await?;
        if commit {
            tx.commit().await
        } else {
            tx.rollback().await
        }
    }
    async fn count_on_one_connection(db: impl Executor<'_>) -> Result<i64, Error> {
        let mut conn = db.acquire().await?;
        add_user(&mut *conn, 900, "scratch").await?;
        let n = query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut *conn)
            .await?;
        query("DELETE FROM users WHERE id = 900")
            .execute(&mut *conn)
            .await?;
        Ok(n)
    }
    let engine = db.engine();
    create_users(&engine).await?;
    add_pair(&engine, 10, true).await?;
    add_pair(&engine, 20, false).await?;
    let mut conn = engine.acquire().await?;
    add_pair(&mut conn, 30, true).await?;
    let mut tx = engine.begin().await?;
    add_pair(&mut tx, 40, true).await?; // a savepoint, kept by the outer commit
    add_pair(&mut tx, 50, false).await?; // a savepoint, rolled back alone
    assert_eq!(tx.level(), 1);
    // Inside the transaction, the lent connection sees its uncommitted rows.
    assert_eq!(count_on_one_connection(&mut tx).await?, 7);
    tx.commit().await?;
    assert_eq!(count_on_one_connection(&mut conn).await?, 7);
    drop(conn);
    assert_eq!(count_on_one_connection(&engine).await?, 7);
    let ids: Vec<i64> = query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(&engine)
        .await?;
    assert_eq!(ids, [10, 11, 30, 31, 40, 41]);
    assert_pool_settles(&engine).await;
    Ok(())
}

async fn every_finisher_runs_on_every_executor(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    let names = ["a", "b", "c"];
    let inserted = query("INSERT INTO users (id, name) VALUES ($1, $2)")
        .execute_many(
            &engine,
            names.iter().enumerate().map(|(i, n)| (i as i64, *n)),
        )
        .await?;
    assert_eq!(inserted, 3);
    let mut conn = engine.acquire().await?;
    let mut tx = engine.begin().await?;
    macro_rules! on_each {
        ($check:expr) => {{
            $check(&engine).await?;
            $check(&mut conn).await?;
            $check(&mut tx).await?;
        }};
    }
    async fn rows(db: impl Executor<'_>) -> Result<(), Error> {
        let rows = query("SELECT id, name FROM users WHERE id >= $1 ORDER BY id")
            .bind_all((1,))
            .fetch_all(db)
            .await?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<String>("name")?, "b");
        Ok(())
    }
    async fn one(db: impl Executor<'_>) -> Result<(), Error> {
        let (id, name): (i64, String) = query_as("SELECT id, name FROM users WHERE id = $1")
            .bind(2)
            .fetch_one(db)
            .await?;
        assert_eq!((id, name.as_str()), (2, "c"));
        Ok(())
    }
    async fn none(db: impl Executor<'_>) -> Result<(), Error> {
        let err = query("SELECT id FROM users WHERE id = $1")
            .bind(99)
            .fetch_one(db)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RowNotFound);
        Ok(())
    }
    async fn typed(db: impl Executor<'_>) -> Result<(), Error> {
        let all: Vec<(i64, String)> = query_as("SELECT id, name FROM users ORDER BY id")
            .fetch_all(db)
            .await?;
        assert_eq!(all.len(), 3);
        Ok(())
    }
    async fn scalars(db: impl Executor<'_>) -> Result<(), Error> {
        let ids: Vec<i64> = query_scalar("SELECT id FROM users ORDER BY id")
            .fetch_all(db)
            .await?;
        assert_eq!(ids, [0, 1, 2]);
        Ok(())
    }
    async fn streamed(db: impl Executor<'_>) -> Result<(), Error> {
        let names: Vec<String> = query_scalar::<String>("SELECT name FROM users ORDER BY id")
            .fetch(db)
            .try_collect()
            .await?;
        assert_eq!(names, ["a", "b", "c"]);
        Ok(())
    }
    async fn optional(db: impl Executor<'_>) -> Result<(), Error> {
        let missing: Option<(i64,)> = query_as("SELECT id FROM users WHERE id = 99")
            .fetch_optional(db)
            .await?;
        assert!(missing.is_none());
        Ok(())
    }
    on_each!(rows);
    on_each!(one);
    on_each!(none);
    on_each!(typed);
    on_each!(scalars);
    on_each!(streamed);
    on_each!(optional);
    let n = query("UPDATE users SET name = name WHERE id < $1")
        .bind(2)
        .execute(&mut tx)
        .await?;
    assert_eq!(n, 2);
    tx.commit().await?;
    Ok(())
}

async fn engine_streams_own_their_connection_and_return_it_clean(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let sql = if db.is_postgres() {
        "SELECT g FROM generate_series(1, 10000) AS g"
    } else {
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10000) SELECT n FROM s"
    };
    let total: i64 = query_scalar::<i64>(sql)
        .fetch(&engine)
        .try_fold(0_i64, |sum, n| Ok(sum + n))
        .await?;
    assert_eq!(total, 10000 * 10001 / 2);
    for take in [0, 1, 300] {
        let mut rows = query(sql).fetch(&engine);
        for expected in 1..=take {
            let row = rows.next().await.expect("a row")?;
            assert_eq!(row.get::<i64>(0)?, expected);
        }
        assert_eq!(
            engine.status().in_use,
            usize::from(take > 0),
            "the stream holds its connection"
        );
        drop(rows);
        assert_pool_settles(&engine).await;
        // The one connection serves again, outside any transaction.
        let mut conn = engine.acquire().await?;
        assert!(!conn.in_transaction());
        let one: i64 = query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        assert_eq!(one, 1);
    }
    // A stream whose query fails yields the error, then ends.
    let mut failing = query("SELECT * FROM no_such_table").fetch(&engine);
    let err = failing.next().await.expect("an item").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(failing.next().await.is_none());
    drop(failing);
    // A stream cut by a timeout returns its connection too.
    let cut = anysql_conformance::with_timeout(Duration::from_millis(1), async {
        let mut rows = query(sql).fetch(&engine);
        while rows.next().await.is_some() {}
    })
    .await;
    let _ = cut;
    assert_pool_settles(&engine).await;
    assert_eq!(engine.status().size, 1);
    Ok(())
}

async fn owned_and_borrowed_sql_bind_the_same(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    let table = "users";
    let owned = format!("INSERT INTO {table} (id, name) VALUES ($1, $2)");
    query(owned.clone())
        .bind(1)
        .bind("owned")
        .execute(&engine)
        .await?;
    query(owned.as_str())
        .bind_all(vec![Value::Int(2), Value::Text("borrowed".into())])
        .execute(&engine)
        .await?;
    let mut conn = engine.acquire().await?;
    let names: Vec<String> =
        query_scalar::<String>(format!("SELECT name FROM {table} ORDER BY id"))
            .fetch(&mut conn)
            .try_collect()
            .await?;
    assert_eq!(names, ["owned", "borrowed"]);
    let q = query("SELECT $1").bind("secret");
    assert_eq!(format!("{q:?}"), "Query { sql: \"SELECT $1\", params: 1 }");
    Ok(())
}

async fn the_engine_shorthands_run_on_the_same_path(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    create_users(&engine).await?;
    let n = engine
        .execute_many(
            "INSERT INTO users (id, name) VALUES ($1, $2)",
            [(1, "ada"), (2, "grace")],
        )
        .await?;
    assert_eq!(n, 2);
    let (name,): (String,) = engine
        .fetch_one_as("SELECT name FROM users WHERE id = $1", (2,))
        .await?;
    assert_eq!(name, "grace");
    let none: Option<(String,)> = engine
        .fetch_optional_as("SELECT name FROM users WHERE id = $1", (3,))
        .await?;
    assert!(none.is_none());
    let ids: Vec<i64> = engine
        .fetch("SELECT id FROM users ORDER BY id", ())
        .map(|row| row.and_then(|row| row.get::<i64>(0)))
        .try_collect()
        .await?;
    assert_eq!(ids, [1, 2]);
    assert_pool_settles(&engine).await;
    Ok(())
}

const INSERT_USER: &str = "INSERT INTO users (id, name) VALUES ($1, $2)";

async fn user_ids(db: impl Executor<'_>) -> Result<Vec<i64>, Error> {
    query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(db)
        .await
}

/// `commit_with` runs the statements in the transaction, then commits; the same shape twice (on
/// PostgreSQL the second time every statement is prepared and all go out together), an empty
/// pipeline, and a savepoint's.
async fn a_pipeline_commits_with_its_transaction(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    add_user(&engine, 1, "ada").await?;
    for (read, write, gone) in [(1, 2, 3), (2, 3, 1)] {
        let mut tx = engine.begin().await?;
        // A read first, whose answer a real transaction would act on.
        assert!(user_name(&mut tx, read).await?.is_some());
        let changed = tx
            .commit_with(Pipeline::from_iter([
                query("UPDATE users SET name = $1 WHERE id = $2")
                    .bind(format!("read {read}"))
                    .bind(read),
                query(INSERT_USER).bind(write).bind("written"),
                query("DELETE FROM users WHERE id = $1").bind(gone),
            ]))
            .await?;
        let deleted = u64::from(gone == 1);
        assert_eq!(changed, [1, 1, deleted]);
    }
    assert_eq!(user_ids(&engine).await?, [2, 3]);
    assert_eq!(user_name(&engine, 2).await?.as_deref(), Some("read 2"));

    let mut tx = engine.begin().await?;
    add_user(&mut tx, 4, "before").await?;
    assert!(tx.commit_with(Pipeline::new()).await?.is_empty());

    let mut tx = engine.begin().await?;
    let savepoint = tx.begin().await?;
    let mut pipeline = Pipeline::new();
    pipeline.push(query(INSERT_USER).bind(5).bind("nested"));
    assert_eq!(pipeline.len(), 1);
    assert_eq!(savepoint.commit_with(pipeline).await?, [1]);
    assert_eq!(tx.level(), 1);
    tx.commit().await?;
    assert_eq!(user_ids(&engine).await?, [2, 3, 4, 5]);
    assert_pool_settles(&engine).await;
    Ok(())
}

/// A statement that fails stops the pipeline with its own error, naming it; the statements after
/// it and the COMMIT do not take effect, nor does anything before it; the connection is usable at
/// once. Cold and warm statement caches, and a failure before a statement that would have to be
/// prepared (on PostgreSQL: a run of the pipeline that does not carry the COMMIT).
async fn a_failed_pipeline_statement_stops_it_and_keeps_nothing(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    add_user(&engine, 1, "ada").await?;
    let mut conn = engine.acquire().await?;
    for round in 0..3_i64 {
        let mut tx = conn.begin().await?;
        assert!(user_name(&mut tx, 1).await?.is_some());
        let error = tx
            .commit_with(Pipeline::from_iter([
                query(INSERT_USER).bind(10 + round).bind("before"),
                query(INSERT_USER).bind(1).bind("duplicate"),
                query(INSERT_USER).bind(20 + round).bind("after"),
            ]))
            .await
            .unwrap_err();
        assert!(error.is_unique_violation(), "round {round}: {error:?}");
        assert!(
            error.to_string().contains("statement 2 of 3"),
            "round {round}: {error}"
        );
        assert!(!conn.in_transaction());
        assert_eq!(user_ids(&mut conn).await?, [1], "round {round}");

        let tx = conn.begin().await?;
        let error = tx
            .commit_with(Pipeline::from_iter([
                query(INSERT_USER).bind(1).bind("duplicate"),
                query(format!(
                    "UPDATE users SET name = 'never {round}' WHERE id = $1"
                ))
                .bind(1),
            ]))
            .await
            .unwrap_err();
        assert!(error.is_unique_violation(), "round {round}: {error:?}");
        assert!(error.to_string().contains("statement 1 of 2"), "{error}");
        assert_eq!(user_name(&mut conn, 1).await?.as_deref(), Some("ada"));
    }
    drop(conn);
    assert_pool_settles(&engine).await;
    Ok(())
}

/// Statements run in order, each after the ones before it took effect: a table created by the
/// first is there for the next (on PostgreSQL, a statement not yet prepared is prepared only
/// then).
async fn a_pipeline_statement_sees_what_the_ones_before_it_did(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let changed = Pipeline::from_iter([
        query("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"),
        query("INSERT INTO notes (id, body) VALUES ($1, $2)")
            .bind(1)
            .bind("first"),
        query("UPDATE notes SET body = body || $1 WHERE id = $2")
            .bind(", then second")
            .bind(1),
    ])
    .execute(&engine)
    .await?;
    assert_eq!(changed, [0, 1, 1]);
    let body: String = query_scalar("SELECT body FROM notes")
        .fetch_one(&engine)
        .await?;
    assert_eq!(body, "first, then second");
    Ok(())
}

/// `Pipeline::execute` applies all its statements or none: on the engine and on a connection in
/// a transaction of its own, inside a transaction as a savepoint, which a failure rolls back
/// alone.
async fn a_pipeline_is_atomic_on_every_executor(db: TestDb) -> Result<(), Error> {
    fn pair(a: i64, b: i64) -> Pipeline<'static> {
        Pipeline::from_iter([
            query(INSERT_USER).bind(a).bind("a"),
            query(INSERT_USER).bind(b).bind("b"),
        ])
    }
    let engine = db.engine();
    create_users(&engine).await?;
    assert!(Pipeline::new().execute(&engine).await?.is_empty());
    assert_eq!(pair(1, 2).execute(&engine).await?, [1, 1]);
    let error = pair(3, 1).execute(&engine).await.unwrap_err();
    assert!(error.is_unique_violation(), "{error:?}");

    let mut conn = engine.acquire().await?;
    assert_eq!(pair(4, 5).execute(&mut conn).await?, [1, 1]);
    assert!(pair(6, 4).execute(&mut conn).await.is_err());
    assert!(!conn.in_transaction());

    let mut tx = conn.begin().await?;
    add_user(&mut tx, 7, "outer").await?;
    let error = pair(8, 7).execute(&mut tx).await.unwrap_err();
    assert!(error.is_unique_violation(), "{error:?}");
    add_user(&mut tx, 9, "outer, after").await?;
    tx.commit().await?;
    drop(conn);
    assert_eq!(user_ids(&engine).await?, [1, 2, 4, 5, 7, 9]);
    assert_pool_settles(&engine).await;
    Ok(())
}

/// A statement with a NUL in its SQL, or the wrong number of parameters, is refused with a clear
/// error naming it, and nothing of the transaction is kept.
async fn a_pipeline_refuses_bad_input_and_keeps_nothing(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    let mut conn = engine.acquire().await?;
    let bad = [
        // PostgreSQL's text cannot hold a NUL, and the server says so.
        (query(INSERT_USER).bind(2).bind("b\0"), ErrorKind::Database),
        (
            query("DELETE FROM users\0 WHERE id = $1").bind(1),
            ErrorKind::InvalidStatement,
        ),
        (query(INSERT_USER).bind(2), ErrorKind::Parameter),
    ];
    for (round, (statement, kind)) in bad.into_iter().enumerate() {
        let mut tx = conn.begin().await?;
        add_user(&mut tx, 1, "first").await?;
        let result = tx
            .commit_with(Pipeline::from_iter([
                query(INSERT_USER).bind(3).bind("c"),
                statement,
            ]))
            .await;
        if round == 0 {
            // SQLite's text can hold a NUL.
            if !db.is_postgres() {
                assert_eq!(result?, [1, 1]);
                query("DELETE FROM users").execute(&mut conn).await?;
                continue;
            }
        }
        let error = result.unwrap_err();
        assert_eq!(error.kind(), kind, "{error:?}");
        assert!(error.to_string().contains("statement 2 of 2"), "{error}");
        assert!(user_ids(&mut conn).await?.is_empty(), "round {round}");
    }
    drop(conn);
    assert_pool_settles(&engine).await;
    Ok(())
}

/// A `commit_with` future dropped after its first poll leaves the pipeline applied entirely or
/// not at all, and the connection clean.
async fn a_dropped_pipeline_applies_all_or_nothing(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    create_users(&engine).await?;
    for round in 0..20_i64 {
        let mut tx = engine.begin().await?;
        add_user(&mut tx, 1000 + round, "read").await?;
        let pipeline: Pipeline<'static> = (0..3)
            .map(|k| query(INSERT_USER).bind(round * 10 + k).bind("x"))
            .collect();
        let mut commit = Box::pin(tx.commit_with(pipeline));
        let finished = futures_lite::future::poll_once(commit.as_mut()).await;
        drop(commit);
        let kept: i64 =
            query_scalar("SELECT count(*) FROM users WHERE id >= $1 AND id < $2 OR id = $3")
                .bind(round * 10)
                .bind(round * 10 + 10)
                .bind(1000 + round)
                .fetch_one(&engine)
                .await?;
        match finished {
            Some(result) => assert_eq!((result?.len(), kept), (3, 4), "round {round}"),
            None => assert!(kept == 0 || kept == 4, "round {round}: {kept} rows"),
        }
    }
    assert_pool_settles(&engine).await;
    Ok(())
}
