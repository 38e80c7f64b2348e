//! `#[anysql::test]` on each runtime: a fresh database per test, and failures that fail the test.
#![cfg(all(
    feature = "testing",
    feature = "macros",
    feature = "sqlite",
    feature = "runtime-tokio",
    feature = "runtime-smol",
    feature = "runtime-async-std"
))]

use anysql::{query, query_scalar, Engine, Error};

/// Each test's database starts empty: every test below creates the same table.
async fn starts_empty(engine: &Engine) -> Result<(), Error> {
    query("CREATE TABLE t (x INTEGER)").execute(engine).await?;
    query("INSERT INTO t VALUES (1)").execute(engine).await?;
    let n: i64 = query_scalar("SELECT count(*) FROM t")
        .fetch_one(engine)
        .await?;
    assert_eq!(n, 1);
    Ok(())
}

#[anysql::test]
async fn on_tokio(engine: Engine) -> Result<(), Error> {
    assert_eq!(engine.runtime().name(), "tokio");
    starts_empty(&engine).await
}

#[anysql::test(runtime = "smol")]
async fn on_smol(engine: Engine) -> Result<(), Error> {
    assert_eq!(engine.runtime().name(), "smol");
    starts_empty(&engine).await
}

#[anysql::test(runtime = "async-std")]
async fn on_async_std(engine: Engine) {
    assert_eq!(engine.runtime().name(), "async-std");
    starts_empty(&engine).await.unwrap();
}

/// An `Err` fails the test, with the error in the message.
#[anysql::test(runtime = "smol")]
#[should_panic(expected = "the test failed")]
async fn an_error_fails_the_test(engine: Engine) -> Result<(), Error> {
    query("SELECT * FROM no_such_table")
        .execute(&engine)
        .await?;
    Ok(())
}
