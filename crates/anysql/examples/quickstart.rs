//! The anysql quickstart: a SQLite database in a temporary directory, a table, a transaction and a
//! query, on whichever executor is enabled.
//!
//! ```text
//! cargo run --example quickstart                                  # tokio (the default)
//! cargo run --example quickstart --features runtime-smol          # smol
//! cargo run --example quickstart --features runtime-async-std     # async-std
//! ```
//!
//! The code in `run` is the same on every executor: only `main` differs, because each executor
//! starts its own way.

use anysql::prelude::*;

async fn run() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("anysql-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::configuration("cannot create a temp dir").with_source(e))?;
    let path = dir.join("quickstart.db");
    let engine = create_async_engine(&format!("sqlite://{}", path.display()))?;
    println!("engine: {} on {}", engine.url(), engine.runtime().name());

    let mut conn = engine.acquire().await?;
    query("DROP TABLE IF EXISTS tasks")
        .execute(&mut conn)
        .await?;
    query(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done BOOLEAN NOT NULL, hours REAL)",
    )
    .execute(&mut conn)
    .await?;

    // A transaction commits all its inserts at once, or none of them.
    let mut tx = conn.begin().await?;
    for (title, done, hours) in [
        ("write the docs", true, Some(1.5)),
        ("ship it", false, None),
    ] {
        query("INSERT INTO tasks (title, done, hours) VALUES ($1, $2, $3)")
            .bind(title)
            .bind(done)
            .bind(hours)
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;

    // A transaction dropped without commit rolls back.
    {
        let mut tx = conn.begin().await?;
        query("INSERT INTO tasks (title, done) VALUES ($1, $2)")
            .bind_all(("never seen", false))
            .execute(&mut tx)
            .await?;
    }

    let tasks: Vec<(i64, String, bool, Option<f64>)> =
        query_as("SELECT id, title, done, hours FROM tasks ORDER BY id")
            .fetch_all(&mut conn)
            .await?;
    for (id, title, done, hours) in &tasks {
        println!("task {id}: {title:<16} done={done:<5} hours={hours:?}");
    }
    let open: i64 = query_scalar("SELECT count(*) FROM tasks WHERE NOT done")
        .fetch_one(&mut conn)
        .await?;
    println!("{} tasks, {open} open", tasks.len());

    drop(conn);
    engine.close().await;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[cfg(feature = "runtime-smol")]
fn main() -> Result<(), Error> {
    smol::block_on(run())
}

#[cfg(all(feature = "runtime-async-std", not(feature = "runtime-smol")))]
fn main() -> Result<(), Error> {
    async_std::task::block_on(run())
}

#[cfg(all(
    feature = "runtime-tokio",
    not(feature = "runtime-smol"),
    not(feature = "runtime-async-std")
))]
fn main() -> Result<(), Error> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::configuration("cannot start tokio").with_source(e))?
        .block_on(run())
}

#[cfg(not(any(
    feature = "runtime-tokio",
    feature = "runtime-smol",
    feature = "runtime-async-std"
)))]
fn main() {
    eprintln!(
        "enable a runtime feature: --features runtime-tokio, runtime-smol or runtime-async-std"
    );
}
