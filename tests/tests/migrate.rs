//! Migrations on every cell: run, info and revert; concurrent runners; an edited applied file; a
//! failing migration; the no-transaction opt-out; the lock; embedded files; and the fresh-database
//! test helper.

use std::time::Duration;

use anysql::migrate::{MigrateErrorKind, Migration, MigrationState, Migrator};
use anysql::prelude::*;
use anysql_conformance::{spawn, with_timeout, TestDb};

anysql_conformance::cell_tests!(
    every_cell,
    None,
    run_info_and_revert,
    concurrent_runners_apply_each_migration_once,
    an_edited_applied_migration_stops_the_run,
    a_failing_migration_leaves_nothing_behind,
    no_transaction_migrations_run_outside_a_transaction,
    a_failed_no_transaction_migration_blocks_later_runs,
    a_missing_file_for_an_applied_migration_stops_the_run,
    revert_without_a_down_file_is_a_clear_error,
    embedded_migrations_run_and_revert,
    a_migrator_reads_a_directory_at_run_time,
    a_held_lock_times_out,
    a_dropped_run_releases_the_lock_and_keeps_nothing,
    fresh_databases_are_separate_and_removed,
    migrations_through_pgbouncer_are_refused,
);

fn migration(
    version: i64,
    name: &'static str,
    up: &'static str,
    down: Option<&'static str>,
) -> Migration {
    Migration::new(version, name, up, down.map(Into::into))
}

fn states(info: &[anysql::migrate::MigrationInfo]) -> Vec<(i64, MigrationState)> {
    info.iter().map(|l| (l.version, l.state)).collect()
}

async fn table_exists(engine: &Engine, db: &TestDb, table: &str) -> Result<bool, Error> {
    let sql = if db.is_postgres() {
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name = $1"
    } else {
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
    };
    let n: i64 = query_scalar(sql).bind(table).fetch_one(engine).await?;
    Ok(n > 0)
}

async fn run_info_and_revert(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let migrator = Migrator::new(vec![
        migration(
            2,
            "ada",
            "INSERT INTO people (id, name) VALUES (1, 'Ada'); INSERT INTO people (id, name) VALUES (2, 'Grace')",
            Some("DELETE FROM people"),
        ),
        migration(
            1,
            "people",
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            Some("DROP TABLE people"),
        ),
    ])
    .unwrap();

    let info = migrator.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Pending), (2, MigrationState::Pending)]
    );
    assert!(
        !table_exists(&engine, &db, "_anysql_migrations").await?,
        "info creates nothing"
    );

    let applied = migrator.run(&engine).await.unwrap();
    assert_eq!(
        applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let n: i64 = query_scalar("SELECT count(*) FROM people")
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 2, "both statements of the script ran");
    assert!(
        migrator.run(&engine).await.unwrap().is_empty(),
        "a second run does nothing"
    );

    let info = migrator.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Applied), (2, MigrationState::Applied)]
    );
    let at = info[0].applied_at.as_deref().unwrap();
    assert!(
        at.len() >= 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert!(info.iter().all(|l| l.reversible));

    assert_eq!(migrator.revert(&engine).await.unwrap().version, 2);
    let n: i64 = query_scalar("SELECT count(*) FROM people")
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 0);
    let info = migrator.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Applied), (2, MigrationState::Pending)]
    );

    assert_eq!(migrator.revert(&engine).await.unwrap().version, 1);
    assert!(!table_exists(&engine, &db, "people").await?);
    let err = migrator.revert(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::NoRevert);
    assert!(err.to_string().contains("nothing to revert"), "{err}");

    assert_eq!(
        migrator.run(&engine).await.unwrap().len(),
        2,
        "reverted ones apply again"
    );
    // The migrator gave its connection back.
    anysql_conformance::assert_pool_settles(&engine).await;
    Ok(())
}

async fn concurrent_runners_apply_each_migration_once(db: TestDb) -> Result<(), Error> {
    let setup = db.direct_engine_with("");
    query("CREATE TABLE ran (version INTEGER NOT NULL)")
        .execute(&setup)
        .await?;
    // Slow enough that the runners overlap.
    let slow = if db.is_postgres() {
        "SELECT pg_sleep(0.05); "
    } else {
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
         SELECT count(*) FROM c; "
    };
    // Every third one outside a transaction: on SQLite it runs outside the write lock, and the
    // other runners wait for it instead of applying it again.
    let migrations: Vec<Migration> = (1..=9)
        .map(|v| {
            let opt_out = if v % 3 == 0 { "-- anysql:no-transaction\n" } else { "" };
            Migration::new(
                v,
                format!("step{v}"),
                format!(
                    "{opt_out}{slow}INSERT INTO ran (version) VALUES ({v}); CREATE TABLE t{v} (x INTEGER)"
                ),
                None,
            )
        })
        .collect();
    let migrator = Migrator::new(migrations).unwrap();
    // Separate engines, as separate processes would have: no pool or in-process gate in common.
    let runners: Vec<_> = (0..3)
        .map(|_| {
            let engine = db.direct_engine_with("");
            let migrator = migrator.clone();
            spawn(async move {
                let applied = migrator.run(&engine).await;
                engine.close().await;
                applied
            })
        })
        .collect();
    let mut applied = Vec::new();
    for runner in runners {
        let mine = runner
            .await
            .unwrap_or_else(|e| panic!("a runner failed: {e}"));
        applied.extend(mine.into_iter().map(|a| a.version));
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..=9).collect::<Vec<_>>(),
        "each migration applied by one runner"
    );
    let ran: Vec<i64> = query_scalar("SELECT version FROM ran ORDER BY version")
        .fetch_all(&setup)
        .await?;
    assert_eq!(
        ran,
        (1..=9).collect::<Vec<_>>(),
        "each migration's SQL ran once"
    );
    let info = migrator.info(&setup).await.unwrap();
    assert!(
        info.iter().all(|l| l.state == MigrationState::Applied),
        "{info:?}"
    );
    Ok(())
}

async fn an_edited_applied_migration_stops_the_run(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let original =
        Migrator::new(vec![migration(1, "t", "CREATE TABLE t (x INTEGER)", None)]).unwrap();
    original.run(&engine).await.unwrap();

    let edited = Migrator::new(vec![
        migration(1, "t", "CREATE TABLE t (x INTEGER, y INTEGER)", None),
        migration(2, "u", "CREATE TABLE u (x INTEGER)", None),
    ])
    .unwrap();
    let err = edited.run(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::ChecksumMismatch);
    let message = err.to_string();
    assert!(
        message.contains("migration 1 (t) was edited after it was applied"),
        "{message}"
    );
    assert!(
        message.contains(original.migrations()[0].checksum()),
        "{message}"
    );
    assert!(
        !table_exists(&engine, &db, "u").await?,
        "nothing ran after the mismatch"
    );
    let info = edited.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Edited), (2, MigrationState::Pending)]
    );
    let err = edited.revert(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::ChecksumMismatch);
    assert!(
        original.run(&engine).await.unwrap().is_empty(),
        "the unedited file still runs"
    );
    Ok(())
}

async fn a_failing_migration_leaves_nothing_behind(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let broken = Migrator::new(vec![
        migration(1, "ok", "CREATE TABLE ok (x INTEGER)", None),
        migration(
            2,
            "half",
            "CREATE TABLE half (x INTEGER); INSERT INTO half VALUES (1); INSERT INTO no_such_table VALUES (1)",
            None,
        ),
        migration(3, "later", "CREATE TABLE later (x INTEGER)", None),
    ])
    .unwrap();
    let err = broken.run(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::Failed);
    let message = err.to_string();
    assert!(
        message.contains("applying migration 2 (half) failed"),
        "{message}"
    );
    assert!(message.contains("rolled back"), "{message}");
    assert!(
        message.contains("no_such_table"),
        "the database's error is kept: {message}"
    );
    assert_eq!(err.database_error().unwrap().kind(), ErrorKind::Database);

    assert!(
        table_exists(&engine, &db, "ok").await?,
        "the migration before it stays"
    );
    assert!(
        !table_exists(&engine, &db, "half").await?,
        "nothing of the failed one is left"
    );
    assert!(
        !table_exists(&engine, &db, "later").await?,
        "nothing after it ran"
    );
    let info = broken.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [
            (1, MigrationState::Applied),
            (2, MigrationState::Pending),
            (3, MigrationState::Pending)
        ],
        "the failed version is not recorded"
    );

    let fixed = Migrator::new(vec![
        migration(1, "ok", "CREATE TABLE ok (x INTEGER)", None),
        migration(
            2,
            "half",
            "CREATE TABLE half (x INTEGER); INSERT INTO half VALUES (1)",
            None,
        ),
        migration(3, "later", "CREATE TABLE later (x INTEGER)", None),
    ])
    .unwrap();
    assert_eq!(
        fixed.run(&engine).await.unwrap().len(),
        2,
        "a fixed file runs"
    );
    let n: i64 = query_scalar("SELECT count(*) FROM half")
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 1);
    Ok(())
}

async fn no_transaction_migrations_run_outside_a_transaction(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    // VACUUM refuses to run inside a transaction on both databases.
    let (vacuum, in_tx): (&'static str, &'static str) = if db.is_postgres() {
        ("-- anysql:no-transaction\nVACUUM items", "VACUUM items")
    } else {
        ("-- anysql:no-transaction\nVACUUM", "VACUUM")
    };
    let create = migration(
        1,
        "items",
        "CREATE TABLE items (x INTEGER)",
        Some("DROP TABLE items"),
    );

    let in_transaction =
        Migrator::new(vec![create.clone(), migration(2, "vacuum", in_tx, None)]).unwrap();
    let err = in_transaction.run(&engine).await.unwrap_err();
    assert_eq!(
        err.kind(),
        MigrateErrorKind::Failed,
        "VACUUM fails in a transaction: {err}"
    );
    in_transaction.revert(&engine).await.unwrap();

    let opted_out = Migrator::new(vec![
        create,
        migration(
            2,
            "vacuum",
            vacuum,
            Some("-- anysql:no-transaction\nSELECT 1"),
        ),
    ])
    .unwrap();
    assert!(!opted_out.migrations()[1].in_transaction());
    let applied = opted_out.run(&engine).await.unwrap();
    assert_eq!(
        applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let info = opted_out.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Applied), (2, MigrationState::Applied)]
    );
    assert_eq!(opted_out.revert(&engine).await.unwrap().version, 2);
    let info = opted_out.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Applied), (2, MigrationState::Pending)]
    );
    Ok(())
}

async fn a_failed_no_transaction_migration_blocks_later_runs(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let migrator = Migrator::new(vec![
        migration(1, "a", "CREATE TABLE a (x INTEGER)", None),
        migration(2, "b", "-- anysql:no-transaction\nCREATE TABLE b (x INTEGER); INSERT INTO no_such_table VALUES (1)", None),
    ])
    .unwrap()
    .lock_timeout(Duration::from_millis(300));
    let err = migrator.run(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::Failed);
    assert!(err.to_string().contains("may be partly done"), "{err}");
    let info = migrator.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [(1, MigrationState::Applied), (2, MigrationState::Failed)]
    );

    let err = migrator.run(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::Dirty);
    assert!(err.to_string().contains("migration 2 (b)"), "{err}");

    // The way out the message gives: repair by hand, delete the row, run again.
    query("DROP TABLE IF EXISTS b").execute(&engine).await?;
    query("DELETE FROM _anysql_migrations WHERE version = 2")
        .execute(&engine)
        .await?;
    let fixed = Migrator::new(vec![
        migration(1, "a", "CREATE TABLE a (x INTEGER)", None),
        migration(
            2,
            "b",
            "-- anysql:no-transaction\nCREATE TABLE b (x INTEGER)",
            None,
        ),
    ])
    .unwrap();
    assert_eq!(fixed.run(&engine).await.unwrap().len(), 1);
    Ok(())
}

async fn a_missing_file_for_an_applied_migration_stops_the_run(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    Migrator::new(vec![
        migration(1, "a", "CREATE TABLE a (x INTEGER)", None),
        migration(2, "b", "CREATE TABLE b (x INTEGER)", None),
    ])
    .unwrap()
    .run(&engine)
    .await
    .unwrap();
    let fewer = Migrator::new(vec![
        migration(1, "a", "CREATE TABLE a (x INTEGER)", None),
        migration(3, "c", "CREATE TABLE c (x INTEGER)", None),
    ])
    .unwrap();
    let err = fewer.run(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::Missing);
    assert!(
        err.to_string().contains("migration 2 (b) is applied"),
        "{err}"
    );
    assert!(!table_exists(&engine, &db, "c").await?);
    let info = fewer.info(&engine).await.unwrap();
    assert_eq!(
        states(&info),
        [
            (1, MigrationState::Applied),
            (2, MigrationState::Missing),
            (3, MigrationState::Pending)
        ]
    );
    Ok(())
}

async fn revert_without_a_down_file_is_a_clear_error(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let migrator = Migrator::new(vec![migration(
        7,
        "keep",
        "CREATE TABLE keep (x INTEGER)",
        None,
    )])
    .unwrap();
    migrator.run(&engine).await.unwrap();
    let err = migrator.revert(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::NoRevert);
    assert!(err.to_string().contains("7_keep.down.sql"), "{err}");
    assert!(table_exists(&engine, &db, "keep").await?);
    Ok(())
}

async fn embedded_migrations_run_and_revert(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let migrator = anysql::migrate!("migrations");
    assert_eq!(migrator.migrations().len(), 2);
    assert_eq!(migrator.migrations()[0].name(), "notes");
    assert!(migrator.migrations()[0].down().is_some());
    assert!(migrator.migrations()[1].down().is_none());
    migrator.run(&engine).await.unwrap();
    let bodies: Vec<String> = query_scalar("SELECT body FROM notes ORDER BY id")
        .fetch_all(&engine)
        .await?;
    assert_eq!(bodies, ["first; with a semicolon", "second"]);
    // The same files read at run time have the same checksums: either may run after the other.
    let from_dir = Migrator::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap();
    assert!(from_dir.run(&engine).await.unwrap().is_empty());
    let err = migrator.revert(&engine).await.unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::NoRevert, "2 has no down file");
    Ok(())
}

async fn a_migrator_reads_a_directory_at_run_time(db: TestDb) -> Result<(), Error> {
    let engine = db.direct_engine_with("");
    let dir = std::env::temp_dir().join(anysql_conformance::unique_name("anysql_migrations"));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, sql: &str| std::fs::write(dir.join(name), sql).unwrap();
    write("10_second.sql", "INSERT INTO d VALUES (10)");
    write("9_first.sql", "CREATE TABLE d (x INTEGER)");
    write("9_first.down.sql", "DROP TABLE d");
    write("README.md", "not a migration");
    let migrator = Migrator::from_dir(&dir).unwrap();
    let versions: Vec<i64> = migrator.migrations().iter().map(|m| m.version()).collect();
    assert_eq!(versions, [9, 10], "numeric order, not text order");
    migrator.run(&engine).await.unwrap();
    let n: i64 = query_scalar("SELECT count(*) FROM d")
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 1);

    write("10_second.sql", "INSERT INTO d VALUES (11)");
    let err = Migrator::from_dir(&dir)
        .unwrap()
        .run(&engine)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        MigrateErrorKind::ChecksumMismatch,
        "an edited file on disk: {err}"
    );

    write("11_bad name.sql", "SELECT 1");
    write("x_bad.sql", "SELECT 1");
    let err = Migrator::from_dir(&dir).unwrap_err();
    assert_eq!(err.kind(), MigrateErrorKind::Source);
    assert!(err.to_string().contains("x_bad.sql"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn a_held_lock_times_out(db: TestDb) -> Result<(), Error> {
    // SQLite waits its busy timeout for the write lock before the migrator sees it busy.
    let engine = if db.is_postgres() {
        db.direct_engine_with("")
    } else {
        db.direct_engine_with("busy_timeout=100ms")
    };
    let first = migration(1, "a", "CREATE TABLE a (x INTEGER)", None);
    // On PostgreSQL, slow enough for another runner to find the lock taken.
    let second = if db.is_postgres() {
        migration(
            2,
            "b",
            "SELECT pg_sleep(2); CREATE TABLE b (x INTEGER)",
            None,
        )
    } else {
        migration(2, "b", "CREATE TABLE b (x INTEGER)", None)
    };
    Migrator::new(vec![first.clone()])
        .unwrap()
        .run(&engine)
        .await
        .unwrap();
    let waiting = Migrator::new(vec![first, second])
        .unwrap()
        .lock_timeout(Duration::from_millis(300));

    // Another process holds the lock: on SQLite the write lock, on PostgreSQL a run (its advisory
    // lock) busy with the slow migration.
    let other = db.direct_engine_with("");
    if db.is_postgres() {
        let slow = waiting.clone().lock_timeout(Duration::from_secs(30));
        let other = other.clone();
        let run = spawn(async move { slow.run(&other).await.map(|a| a.len()) });
        anysql_conformance::sleep(Duration::from_millis(500)).await;
        let err = waiting.run(&engine).await.unwrap_err();
        assert_eq!(err.kind(), MigrateErrorKind::LockTimeout, "{err}");
        assert!(err.to_string().contains("migration lock"), "{err}");
        assert_eq!(run.await.unwrap(), 1, "the holder went on undisturbed");
        assert!(waiting.run(&engine).await.unwrap().is_empty());
    } else {
        let mut tx = other
            .begin_with(anysql::TransactionOptions::new().immediate(true))
            .await?;
        query("INSERT INTO a VALUES (1)").execute(&mut tx).await?;
        let err = waiting.run(&engine).await.unwrap_err();
        assert_eq!(err.kind(), MigrateErrorKind::LockTimeout, "{err}");
        assert!(err.to_string().contains("migration lock"), "{err}");
        tx.rollback().await?;
        assert_eq!(
            waiting.run(&engine).await.unwrap().len(),
            1,
            "free once released"
        );
    }
    assert!(table_exists(&engine, &db, "b").await?);
    Ok(())
}

/// A run whose future is dropped in the middle of a migration: its transaction is rolled back,
/// and on PostgreSQL its advisory lock is released (the connection would otherwise go back to
/// the pool still holding it, and no other runner could ever migrate).
async fn a_dropped_run_releases_the_lock_and_keeps_nothing(db: TestDb) -> Result<(), Error> {
    let slow = if db.is_postgres() {
        "CREATE TABLE s (x INTEGER); SELECT pg_sleep(1)"
    } else {
        "CREATE TABLE s (x INTEGER); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 \
         FROM c WHERE x < 2000000) SELECT count(*) FROM c"
    };
    let migrator = Migrator::new(vec![migration(1, "s", slow, None)])
        .unwrap()
        .lock_timeout(Duration::from_secs(5));
    let first = db.direct_engine_with("");
    let dropped = with_timeout(Duration::from_millis(200), migrator.run(&first)).await;
    assert!(
        dropped.is_none(),
        "the run should still be busy: {dropped:?}"
    );

    let second = db.direct_engine_with("");
    let applied = migrator.run(&second).await.unwrap();
    assert_eq!(applied.len(), 1, "the dropped run recorded nothing");
    let n: i64 = query_scalar("SELECT count(*) FROM _anysql_migrations")
        .fetch_one(&second)
        .await?;
    assert_eq!(n, 1);
    assert!(table_exists(&second, &db, "s").await?);
    // The first engine can migrate again too: its connection came back clean.
    assert!(migrator.run(&first).await.unwrap().is_empty());
    Ok(())
}

async fn fresh_databases_are_separate_and_removed(db: TestDb) -> Result<(), Error> {
    let base = if db.is_postgres() {
        anysql_conformance::pg_url()
    } else {
        "sqlite:".to_owned()
    };
    let a = anysql::testing::fresh_database(&base).await?;
    let b = anysql::testing::fresh_database(&base).await?;
    assert_ne!(a.url(), b.url());
    query("CREATE TABLE only_in_a (x INTEGER)")
        .execute(a.engine())
        .await?;
    let err = query("SELECT * FROM only_in_a")
        .execute(b.engine())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    let (a_url, b_url) = (a.url().to_owned(), b.url().to_owned());
    a.close().await;
    b.close().await;

    // Dropped even when the test panics.
    let url = base.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen_in = seen.clone();
    let body = async move {
        anysql::testing::with_fresh_database(&url, move |engine| async move {
            *seen_in.lock().unwrap() = engine.url().to_owned();
            query("CREATE TABLE t (x INTEGER)").execute(&engine).await?;
            if !engine.is_closed() {
                panic!("the test body panics");
            }
            Ok::<(), Error>(())
        })
        .await
    };
    let panicked = spawn(futures_lite::FutureExt::catch_unwind(
        std::panic::AssertUnwindSafe(body),
    ))
    .await;
    assert!(panicked.is_err(), "the panic goes on");
    let c_url = seen.lock().unwrap().clone();

    for url in [a_url, b_url, c_url] {
        if db.is_postgres() {
            let name = url
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            let admin = anysql::builder(&base).max_size(1).build()?;
            let n: i64 = query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(name.as_str())
                .fetch_one(&admin)
                .await?;
            admin.close().await;
            assert_eq!(n, 0, "{name} was dropped");
        } else {
            let path = url.trim_start_matches("sqlite://");
            let path = path.split('?').next().unwrap();
            let dir = std::path::Path::new(path).parent().unwrap();
            assert!(!dir.exists(), "{} was removed", dir.display());
        }
    }
    Ok(())
}

/// Behind PgBouncer's transaction pooling the migrations' session advisory lock would be taken
/// on whichever server session the pooler lends, and kept there: a run is refused, clearly,
/// before anything runs. Elsewhere the same engine migrates.
async fn migrations_through_pgbouncer_are_refused(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let migrator = Migrator::new(vec![migration(1, "a", "CREATE TABLE a (x INTEGER)", None)])
        .expect("a valid migration");
    let result = migrator.run(&engine).await;
    if db.is_postgres() && anysql_conformance::pgbouncer_mode() {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), MigrateErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("pgbouncer=true"), "{err}");
        let tables: i64 = query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('a', '_anysql_migrations') AND table_schema = current_schema()",
        )
        .fetch_one(&engine)
        .await?;
        assert_eq!(tables, 0, "nothing was run");
    } else {
        assert_eq!(result.expect("migrations run").len(), 1);
    }
    Ok(())
}
