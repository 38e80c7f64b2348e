//! The conformance suite: every test runs on the cell chosen by `ANYSQL_TEST_RUNTIME` and
//! `ANYSQL_TEST_DRIVER` (see the harness in `src/lib.rs`). `cargo xtask test-matrix` runs all cells.

use std::time::Duration;

use anysql::prelude::*;
use anysql::ConstraintKind;
use anysql_conformance::{assert_pool_settles, spawn, with_timeout, TestDb};
use futures_lite::StreamExt;

/// Declares `#[test]` functions that run the async test bodies of the same name on the cell.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod cell {
            $(
                #[test]
                fn $name() {
                    anysql_conformance::run(super::$name);
                }
            )*
        }
    };
}

conformance!(
    round_trips_every_type,
    null_round_trips_in_every_column,
    placeholders_skip_strings_and_comments,
    commit_keeps_rollback_discards,
    dropped_transaction_rolls_back,
    engine_transaction_rolls_back_on_drop,
    nested_transactions_are_savepoints,
    syntax_error_is_a_database_error_and_connection_survives,
    unique_violation_has_kind_and_code,
    decode_mismatch_is_a_decode_error,
    wrong_parameter_count_is_a_parameter_error,
    bad_urls_are_configuration_errors,
    driver_not_compiled_in_is_a_clear_error,
    fetch_one_on_no_rows_is_row_not_found,
    streams_100k_rows_without_collecting,
    fetch_all_as_decodes_every_row_and_a_bad_row_fails_cleanly,
    fifty_tasks_share_a_pool_of_four,
    cancelled_queries_leave_the_pool_exact,
    cancelled_streams_leave_the_connection_usable,
    cancelled_transactions_are_rolled_back,
    panic_while_holding_a_connection_keeps_the_engine_serving,
    execute_many_inserts_every_set,
    closed_engine_refuses_new_work,
    password_never_shows,
);

/// One row of `all_types`: id, bool, i8, i16, i32, i64, u32, f32, f64, text, bytes.
type AllTypes<'a> = (
    i64,
    bool,
    i8,
    i16,
    i32,
    i64,
    u32,
    f32,
    f64,
    &'a str,
    &'a [u8],
);

/// The same columns read back as NULL-able values (id excluded).
type AllTypesNullable = (
    Option<bool>,
    Option<i8>,
    Option<i16>,
    Option<i32>,
    Option<i64>,
    Option<u32>,
    Option<f32>,
    Option<f64>,
    Option<String>,
    Option<Vec<u8>>,
);

async fn create_all_types(conn: &mut Connection, db: &TestDb) -> Result<(), Error> {
    let sql = format!(
        "CREATE TABLE all_types (id INTEGER PRIMARY KEY, b BOOLEAN, i8v SMALLINT, i16v SMALLINT, \
         i32v INTEGER, i64v BIGINT, u32v BIGINT, f32v REAL, f64v {}, s TEXT, bytes {})",
        db.double_type(),
        db.blob_type()
    );
    query(sql).execute(conn).await.map(drop)
}

async fn round_trips_every_type(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    create_all_types(&mut conn, &db).await?;
    let cases: [AllTypes<'_>; 3] = [
        (
            1,
            true,
            i8::MIN,
            i16::MIN,
            i32::MIN,
            i64::MIN,
            0,
            -1.5,
            f64::MIN_POSITIVE,
            "",
            b"",
        ),
        (
            2,
            false,
            i8::MAX,
            i16::MAX,
            i32::MAX,
            i64::MAX,
            u32::MAX,
            3.25,
            -1.0e300,
            "héllo ☃ 'q' \"d\"",
            &[0, 1, 255],
        ),
        (
            3,
            true,
            0,
            0,
            0,
            0,
            7,
            0.0,
            0.1,
            "$1 -- not a placeholder",
            &[42; 1000],
        ),
    ];
    for (id, b, a, c, d, e, f, g, h, s, bytes) in cases {
        query(
            "INSERT INTO all_types (id, b, i8v, i16v, i32v, i64v, u32v, f32v, f64v, s, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(b)
        .bind(a)
        .bind(c)
        .bind(d)
        .bind(e)
        .bind(f)
        .bind(g)
        .bind(h)
        .bind(s)
        .bind(bytes)
        .execute(&mut conn)
        .await?;
        let row = query(
            "SELECT b, i8v, i16v, i32v, i64v, u32v, f32v, f64v, s, bytes FROM all_types WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(row.get::<bool>("b")?, b);
        assert_eq!(row.get::<i8>("i8v")?, a);
        assert_eq!(row.get::<i16>("i16v")?, c);
        assert_eq!(row.get::<i32>("i32v")?, d);
        assert_eq!(row.get::<i64>("i64v")?, e);
        assert_eq!(row.get::<u32>("u32v")?, f);
        assert_eq!(row.get::<f32>("f32v")?, g);
        assert_eq!(row.get::<f64>("f64v")?, h);
        assert_eq!(row.get::<String>("s")?, s);
        assert_eq!(row.get::<Vec<u8>>("bytes")?, bytes);
        let typed: (bool, i8, i16, i32, i64, u32, f32, f64, String, Vec<u8>) = row.decode()?;
        assert_eq!(typed.8, s);
    }
    // Borrowed and owned parameter forms bind the same.
    let owned = String::from("owned");
    let blob = vec![9_u8, 8];
    query("INSERT INTO all_types (id, s, bytes) VALUES ($1, $2, $3)")
        .bind_all((4, &owned, &blob))
        .execute(&mut conn)
        .await?;
    let (s, bytes): (String, Vec<u8>) = query_as("SELECT s, bytes FROM all_types WHERE id = $1")
        .bind_all([4])
        .fetch_one(&mut conn)
        .await?;
    assert_eq!((s.as_str(), bytes.as_slice()), ("owned", &[9, 8][..]));
    let mixed: &[&dyn ToValue] = &[&5_i64, &"dyn"];
    query("INSERT INTO all_types (id, s) VALUES ($1, $2)")
        .bind_all(mixed)
        .execute(&mut conn)
        .await?;
    assert_eq!(
        query_scalar::<String>("SELECT s FROM all_types WHERE id = 5")
            .fetch_one(&mut conn)
            .await?,
        "dyn"
    );
    Ok(())
}

async fn null_round_trips_in_every_column(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    create_all_types(&mut conn, &db).await?;
    query(
        "INSERT INTO all_types (id, b, i8v, i16v, i32v, i64v, u32v, f32v, f64v, s, bytes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(1)
    .bind(None::<bool>)
    .bind(None::<i8>)
    .bind(None::<i16>)
    .bind(None::<i32>)
    .bind(None::<i64>)
    .bind(None::<u32>)
    .bind(None::<f32>)
    .bind(None::<f64>)
    .bind(None::<&str>)
    .bind(None::<Vec<u8>>)
    .execute(&mut conn)
    .await?;
    let row = query("SELECT b, i8v, i16v, i32v, i64v, u32v, f32v, f64v, s, bytes FROM all_types")
        .fetch_one(&mut conn)
        .await?;
    assert!(row.values().iter().all(Value::is_null), "{row:?}");
    let typed: AllTypesNullable = row.clone().decode()?;
    assert_eq!(
        typed,
        (None, None, None, None, None, None, None, None, None, None)
    );
    let err = row.get::<i64>("i64v").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    // Some(..) of each type binds as the value, not as NULL.
    query("UPDATE all_types SET i64v = $1, s = $2")
        .bind(Some(5_i64))
        .bind(Some("x"))
        .execute(&mut conn)
        .await?;
    assert_eq!(
        query_scalar::<Option<i64>>("SELECT i64v FROM all_types")
            .fetch_one(&mut conn)
            .await?,
        Some(5)
    );
    Ok(())
}

async fn placeholders_skip_strings_and_comments(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    let row = query(
        "SELECT '$1' AS literal, $2 AS second, /* $1 */ $1 AS first -- $3 is in a comment\n, 'it''s $2' AS quoted",
    )
    .bind("one")
    .bind("two")
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(row.get::<String>("literal")?, "$1");
    assert_eq!(row.get::<String>("second")?, "two");
    assert_eq!(row.get::<String>("first")?, "one");
    assert_eq!(row.get::<String>("quoted")?, "it's $2");
    query("CREATE TABLE \"odd $1 name\" (v TEXT)")
        .execute(&mut conn)
        .await?;
    query("INSERT INTO \"odd $1 name\" (v) VALUES ($1)")
        .bind("in")
        .execute(&mut conn)
        .await?;
    assert_eq!(
        query_scalar::<String>("SELECT v FROM \"odd $1 name\"")
            .fetch_one(&mut conn)
            .await?,
        "in"
    );
    Ok(())
}

async fn setup_items(engine: &Engine) -> Result<(), Error> {
    query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .execute(engine)
        .await?;
    Ok(())
}

async fn count_items(engine: &Engine) -> Result<i64, Error> {
    query_scalar("SELECT count(*) FROM items")
        .fetch_one(engine)
        .await
}

async fn commit_keeps_rollback_discards(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    let mut conn = engine.acquire().await?;
    let mut tx = conn.begin().await?;
    assert!(tx.in_transaction());
    query("INSERT INTO items (id, name) VALUES ($1, $2)")
        .bind(1)
        .bind("kept")
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    assert!(!conn.in_transaction());
    let mut tx = conn.begin().await?;
    query("INSERT INTO items (id, name) VALUES ($1, $2)")
        .bind(2)
        .bind("discarded")
        .execute(&mut tx)
        .await?;
    // Inside the transaction the row is visible...
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut tx)
            .await?,
        2
    );
    tx.rollback().await?;
    // ...and after rollback it is gone, from this connection and from another.
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await?,
        1
    );
    drop(conn);
    let names: Vec<(String,)> = query_as("SELECT name FROM items")
        .fetch_all(&engine)
        .await?;
    assert_eq!(names, [("kept".to_string(),)]);
    Ok(())
}

async fn dropped_transaction_rolls_back(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    let mut conn = engine.acquire().await?;
    {
        let mut tx = conn.begin().await?;
        query("INSERT INTO items (id, name) VALUES (1, 'dropped')")
            .execute(&mut tx)
            .await?;
    }
    // The same connection, used again right away, no longer sees the row.
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await?,
        0
    );
    assert!(!conn.in_transaction());
    // An early return with `?` is a drop too.
    async fn fails_half_way(conn: &mut Connection) -> Result<(), Error> {
        let mut tx = conn.begin().await?;
        query("INSERT INTO items (id, name) VALUES (2, 'half')")
            .execute(&mut tx)
            .await?;
        query("INSERT INTO items (id, name) VALUES (3, 'half')")
            .execute(&mut tx)
            .await?; // unique violation
        tx.commit().await
    }
    assert!(fails_half_way(&mut conn).await.is_err());
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await?,
        0
    );
    // A connection dropped right after its transaction goes back to the pool rolled back.
    let mut tx = conn.begin().await?;
    query("INSERT INTO items (id, name) VALUES (4, 'pooled')")
        .execute(&mut tx)
        .await?;
    drop(tx);
    drop(conn);
    for _ in 0..3 {
        assert_eq!(count_items(&engine).await?, 0);
    }
    assert_pool_settles(&engine).await;
    assert_eq!(db.idle_in_transaction().await?, 0);
    Ok(())
}

async fn engine_transaction_rolls_back_on_drop(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    setup_items(&engine).await?;
    {
        let mut tx = engine.begin().await?;
        query("INSERT INTO items (id, name) VALUES (1, 'x')")
            .execute(&mut tx)
            .await?;
    }
    // With one connection, the next acquire gets the same one, reset.
    assert_eq!(count_items(&engine).await?, 0);
    let mut tx = engine.begin().await?;
    query("INSERT INTO items (id, name) VALUES (2, 'y')")
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    assert_eq!(count_items(&engine).await?, 1);
    assert_eq!(engine.status().in_use, 0);
    Ok(())
}

async fn nested_transactions_are_savepoints(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    let mut conn = engine.acquire().await?;
    let mut outer = conn.begin().await?;
    query("INSERT INTO items (id, name) VALUES (1, 'outer')")
        .execute(&mut outer)
        .await?;
    {
        let mut inner = outer.begin().await?;
        assert_eq!(inner.level(), 2);
        query("INSERT INTO items (id, name) VALUES (2, 'inner rolled back')")
            .execute(&mut inner)
            .await?;
        inner.rollback().await?;
    }
    {
        let mut inner = outer.begin().await?;
        query("INSERT INTO items (id, name) VALUES (3, 'inner kept')")
            .execute(&mut inner)
            .await?;
        inner.commit().await?;
    }
    {
        let mut inner = outer.begin().await?;
        query("INSERT INTO items (id, name) VALUES (4, 'inner dropped')")
            .execute(&mut inner)
            .await?;
    }
    let ids: Vec<(i64,)> = query_as("SELECT id FROM items ORDER BY id")
        .fetch_all(&mut outer)
        .await?;
    assert_eq!(ids, [(1,), (3,)]);
    outer.commit().await?;
    drop(conn);
    let ids: Vec<(i64,)> = query_as("SELECT id FROM items ORDER BY id")
        .fetch_all(&engine)
        .await?;
    assert_eq!(ids, [(1,), (3,)]);
    Ok(())
}

async fn syntax_error_is_a_database_error_and_connection_survives(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let mut conn = engine.acquire().await?;
    let err = query("SELEKT 1").execute(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database, "{err:?}");
    assert!(err.code().is_some(), "{err:?}");
    if db.is_postgres() {
        assert_eq!(err.code(), Some("42601"));
    }
    assert_eq!(
        query_scalar::<i64>("SELECT 1").fetch_one(&mut conn).await?,
        1
    );
    // Inside a transaction too: after rollback the connection is fine.
    let mut tx = conn.begin().await?;
    assert!(query("SELECT * FROM no_such_table")
        .execute(&mut tx)
        .await
        .is_err());
    tx.rollback().await?;
    assert_eq!(
        query_scalar::<i64>("SELECT 2").fetch_one(&mut conn).await?,
        2
    );
    Ok(())
}

async fn unique_violation_has_kind_and_code(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    query("INSERT INTO items (id, name) VALUES (1, 'a')")
        .execute(&engine)
        .await?;
    let err = query("INSERT INTO items (id, name) VALUES (2, 'a')")
        .execute(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert_eq!(
        err.constraint_kind(),
        Some(ConstraintKind::Unique),
        "{err:?}"
    );
    assert!(err.is_unique_violation());
    let expected = if db.is_postgres() {
        "23505"
    } else {
        "SQLITE_CONSTRAINT_UNIQUE"
    };
    assert_eq!(err.code(), Some(expected));
    let err = query("INSERT INTO items (id, name) VALUES (3, NULL)")
        .execute(&engine)
        .await
        .unwrap_err();
    assert_eq!(
        err.constraint_kind(),
        Some(ConstraintKind::NotNull),
        "{err:?}"
    );
    assert_eq!(count_items(&engine).await?, 1);
    Ok(())
}

async fn decode_mismatch_is_a_decode_error(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    let row = query("SELECT 'text' AS t, 300 AS n")
        .fetch_one(&mut conn)
        .await?;
    let err = row.get::<i64>("t").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = row.get::<i8>("n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("out of range"), "{err}");
    let err = query_scalar::<Vec<u8>>("SELECT 1.5")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = row.get::<String>("missing").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = query_as::<(i64, i64, i64)>("SELECT 1, 2")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        query_scalar::<i64>("SELECT 3").fetch_one(&mut conn).await?,
        3
    );
    Ok(())
}

async fn wrong_parameter_count_is_a_parameter_error(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let mut conn = engine.acquire().await?;
    let err = query("SELECT $1, $2")
        .bind(1)
        .fetch_all(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err:?}");
    let err = query("SELECT $1")
        .bind(1)
        .bind(2)
        .fetch_all(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err:?}");
    let err = query("SELECT 1")
        .bind_all([7])
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err:?}");
    assert_eq!(
        query_scalar::<i64>("SELECT $1")
            .bind(5)
            .fetch_one(&mut conn)
            .await?,
        5
    );
    Ok(())
}

async fn bad_urls_are_configuration_errors(_db: TestDb) -> Result<(), Error> {
    for url in [
        "",
        "nonsense",
        "mysql2://localhost/db",
        "://",
        "postgres://u@host:99999/db",
        "sqlite://x.db?mode=sideways",
        "sqlite://x.db?max_size=lots",
        "sqlite://x.db?no_such_option=1",
    ] {
        let err = create_async_engine(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err}");
        assert!(
            err.to_string()
                .chars()
                .next()
                .is_some_and(|c| !c.is_uppercase()),
            "{err}"
        );
    }
    let err = create_async_engine("mysql2://localhost/db").unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown database url scheme `mysql2`"),
        "{err}"
    );
    Ok(())
}

async fn driver_not_compiled_in_is_a_clear_error(_db: TestDb) -> Result<(), Error> {
    // The facade registers each driver feature that is off as a missing driver; this is what an
    // application sees then (the facade's own tests build it without features).
    for (url, feature) in [
        ("sqlite::memory:", "sqlite"),
        ("postgres://localhost/db", "postgres"),
    ] {
        let err = anysql::core::EngineBuilder::new(url)
            .shared_runtime(anysql::runtime::detect()?)
            .missing_driver(
                &["sqlite"],
                "enable the `sqlite` feature of the anysql crate",
            )
            .missing_driver(
                &["postgres", "postgresql"],
                "enable the `postgres` feature of the anysql crate",
            )
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(
            err.to_string()
                .contains(&format!("enable the `{feature}` feature")),
            "{err}"
        );
    }
    let err = anysql::core::EngineBuilder::new("sqlite::memory:")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    Ok(())
}

async fn fetch_one_on_no_rows_is_row_not_found(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    let err = query("SELECT id FROM items WHERE id = $1")
        .bind(1)
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RowNotFound);
    assert!(query("SELECT id FROM items")
        .fetch_optional(&engine)
        .await?
        .is_none());
    assert_eq!(
        query_scalar::<i64>("SELECT id FROM items")
            .fetch_one(&engine)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::RowNotFound
    );
    Ok(())
}

async fn fetch_all_as_decodes_every_row_and_a_bad_row_fails_cleanly(
    db: TestDb,
) -> Result<(), Error> {
    const ROWS: i64 = 20_000;
    let engine = db.engine_with("max_size=1");
    // Row 15,000 has a NULL where the tuple wants an integer.
    let sql = if db.is_postgres() {
        "SELECT CASE WHEN g = $2 THEN NULL ELSE g END AS n, 'row ' || g AS label \
         FROM generate_series(1, $1::bigint) AS g"
    } else {
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $1) \
         SELECT CASE WHEN g = $2 THEN NULL ELSE g END AS n, 'row ' || g AS label FROM s"
    };
    let mut conn = engine.acquire().await?;
    for _ in 0..2 {
        let rows: Vec<(i64, String)> = query_as(sql)
            .bind(ROWS)
            .bind(-1_i64)
            .fetch_all(&mut conn)
            .await?;
        assert_eq!(rows.len() as i64, ROWS);
        assert!(rows
            .iter()
            .enumerate()
            .all(|(i, (n, label))| *n == i as i64 + 1 && *label == format!("row {n}")));
        let err = query_as::<(i64, String)>(sql)
            .bind(ROWS)
            .bind(15_000_i64)
            .fetch_all(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        // Nothing of the failed fetch reaches the next statements on the same connection.
        assert_eq!(
            query_scalar::<i64>("SELECT 7").fetch_one(&mut conn).await?,
            7
        );
        let all = query(sql)
            .bind(3_i64)
            .bind(-1_i64)
            .fetch_all(&mut conn)
            .await?;
        assert_eq!(all.len(), 3);
    }
    drop(conn);
    // Through the engine (PostgreSQL: its shared connection) too.
    let rows: Vec<(i64, String)> = query_as(sql)
        .bind(ROWS)
        .bind(-1_i64)
        .fetch_all(&engine)
        .await?;
    assert_eq!(rows.len() as i64, ROWS);
    assert_eq!(
        query_as::<(i64, String)>(sql)
            .bind(ROWS)
            .bind(15_000_i64)
            .fetch_all(&engine)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Decode
    );
    assert_eq!(query_scalar::<i64>("SELECT 8").fetch_one(&engine).await?, 8);
    Ok(())
}

async fn streams_100k_rows_without_collecting(db: TestDb) -> Result<(), Error> {
    const ROWS: i64 = 100_000;
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    let sql = if db.is_postgres() {
        "SELECT g AS n, 'row ' || g AS label FROM generate_series(1, $1::bigint) AS g"
    } else {
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) SELECT n, 'row ' || n AS label FROM s"
    };
    let mut rows = query(sql).bind(ROWS).fetch(&mut conn);
    let (mut count, mut sum) = (0_i64, 0_i64);
    while let Some(row) = rows.next().await {
        let row = row?;
        let n: i64 = row.get(0)?;
        if n == ROWS {
            assert_eq!(row.get::<String>("label")?, format!("row {ROWS}"));
        }
        count += 1;
        sum += n;
    }
    drop(rows);
    assert_eq!(count, ROWS);
    assert_eq!(sum, ROWS * (ROWS + 1) / 2);
    assert_eq!(
        query_scalar::<i64>("SELECT 7").fetch_one(&mut conn).await?,
        7
    );
    Ok(())
}

async fn fifty_tasks_share_a_pool_of_four(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=4");
    query("CREATE TABLE hits (task INTEGER NOT NULL, i INTEGER NOT NULL)")
        .execute(&engine)
        .await?;
    let mut tasks = Vec::new();
    for task in 0..50_i64 {
        let engine = engine.clone();
        tasks.push(spawn(async move {
            for i in 0..20_i64 {
                let mut conn = engine.acquire().await?;
                let echoed: i64 = query_scalar("SELECT $1 * 1000 + $2")
                    .bind(task)
                    .bind(i)
                    .fetch_one(&mut conn)
                    .await?;
                assert_eq!(echoed, task * 1000 + i);
                if i % 5 == 0 {
                    query("INSERT INTO hits (task, i) VALUES ($1, $2)")
                        .bind(task)
                        .bind(i)
                        .execute(&mut conn)
                        .await?;
                }
                assert!(engine.status().size <= 4);
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await?;
    }
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM hits")
            .fetch_one(&engine)
            .await?,
        200
    );
    assert_pool_settles(&engine).await;
    let status = engine.status();
    assert!(status.size <= 4 && status.size >= 1, "{status:?}");
    assert_eq!(engine.metrics().acquire_timeouts, 0);
    Ok(())
}

fn slow_query(db: &TestDb) -> &'static str {
    if db.is_postgres() {
        "SELECT count(*) FROM generate_series(1, 300000) a"
    } else {
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 300000) SELECT count(*) FROM s"
    }
}

async fn cancelled_queries_leave_the_pool_exact(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=3");
    setup_items(&engine).await?;
    let slow = slow_query(&db);
    let mut completed = 0;
    for i in 0..60_u64 {
        let budget = Duration::from_micros((i * 137) % 3000);
        let outcome = with_timeout(budget, async {
            let mut conn = engine.acquire().await?;
            let n: i64 = query_scalar(slow).fetch_one(&mut conn).await?;
            assert_eq!(n, 300_000);
            query("INSERT INTO items (id, name) VALUES ($1, $2)")
                .bind(i as i64)
                .bind(format!("n{i}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, Error>(())
        })
        .await;
        if let Some(result) = outcome {
            result?;
            completed += 1;
        }
    }
    assert_pool_settles(&engine).await;
    // Every connection the pool holds gives correct answers.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = engine.acquire().await?;
        assert_eq!(
            query_scalar::<i64>("SELECT $1 + 1")
                .bind(41)
                .fetch_one(&mut conn)
                .await?,
            42
        );
        assert!(!conn.in_transaction());
        held.push(conn);
    }
    drop(held);
    let rows = count_items(&engine).await?;
    assert!(
        rows >= completed,
        "{rows} rows for {completed} completed inserts"
    );
    assert_eq!(db.idle_in_transaction().await?, 0);
    Ok(())
}

async fn cancelled_streams_leave_the_connection_usable(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    let sql = if db.is_postgres() {
        "SELECT g FROM generate_series(1, 50000) AS g"
    } else {
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50000) SELECT n FROM s"
    };
    let mut conn = engine.acquire().await?;
    for take in [0_usize, 1, 10, 300, 5000] {
        // Dropped after `take` rows, on the same connection.
        let mut rows = query(sql).fetch(&mut conn);
        for _ in 0..take {
            rows.next().await.expect("a row")?;
        }
        drop(rows);
        assert_eq!(
            query_scalar::<i64>("SELECT $1")
                .bind(take as i64)
                .fetch_one(&mut conn)
                .await?,
            take as i64
        );
    }
    drop(conn);
    // Dropped by a timeout mid-stream, with the connection going back to the pool.
    for i in 0..20_u64 {
        let budget = Duration::from_micros(200 + i * 150);
        let _ = with_timeout(budget, async {
            let mut conn = engine.acquire().await?;
            let mut rows = query(sql).fetch(&mut conn);
            while let Some(row) = rows.next().await {
                row?;
            }
            Ok::<_, Error>(())
        })
        .await;
    }
    assert_pool_settles(&engine).await;
    for _ in 0..4 {
        assert_eq!(
            query_scalar::<i64>("SELECT 11").fetch_one(&engine).await?,
            11
        );
    }
    Ok(())
}

async fn cancelled_transactions_are_rolled_back(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)")
        .execute(&engine)
        .await?;
    for id in 0..4_i64 {
        query("INSERT INTO accounts (id, balance) VALUES ($1, 1000)")
            .bind(id)
            .execute(&engine)
            .await?;
    }
    let mut finished = 0;
    for i in 0..120_u64 {
        let budget = Duration::from_micros((i * 53) % 2500);
        let from = (i % 4) as i64;
        let to = ((i + 1) % 4) as i64;
        let outcome = with_timeout(budget, async {
            let mut tx = engine.begin().await?;
            query("UPDATE accounts SET balance = balance - 10 WHERE id = $1")
                .bind(from)
                .execute(&mut tx)
                .await?;
            {
                let mut inner = tx.begin().await?;
                query("UPDATE accounts SET balance = balance + 10 WHERE id = $1")
                    .bind(to)
                    .execute(&mut inner)
                    .await?;
                inner.commit().await?;
            }
            tx.commit().await
        })
        .await;
        if let Some(result) = outcome {
            result?;
            finished += 1;
        }
    }
    assert_pool_settles(&engine).await;
    let total: i64 = query_scalar("SELECT sum(balance) FROM accounts")
        .fetch_one(&engine)
        .await?;
    assert_eq!(
        total, 4000,
        "money was created or destroyed ({finished} transfers finished)"
    );
    // No connection is left inside a transaction: each can start and commit its own.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = engine.acquire().await?;
        assert!(!conn.in_transaction());
        let tx = conn.begin().await?;
        tx.commit().await?;
        held.push(conn);
    }
    drop(held);
    assert_eq!(db.idle_in_transaction().await?, 0);
    Ok(())
}

async fn panic_while_holding_a_connection_keeps_the_engine_serving(
    db: TestDb,
) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    setup_items(&engine).await?;
    // A task that panics inside a transaction: its connection is dropped during unwinding.
    let engine2 = engine.clone();
    let outcome = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async move {
        let mut tx = engine2.begin().await.unwrap();
        query("INSERT INTO items (id, name) VALUES (1, 'panicked')")
            .execute(&mut tx)
            .await
            .unwrap();
        panic!("user code panicked mid-transaction");
    }))
    .await;
    assert!(outcome.is_err());
    assert_eq!(count_items(&engine).await?, 0);
    if !db.is_postgres() {
        // A panic inside run_sync, on the SQLite worker thread.
        use anysql::sqlite::SqliteConnectionExt;
        let mut conn = engine.acquire().await?;
        let err = conn
            .run_sync(|_raw| -> i64 { panic!("boom inside run_sync") })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panic, "{err:?}");
        let n = conn
            .run_sync(|raw| raw.query_row("SELECT 40 + 2", [], |r| r.get::<_, i64>(0)))
            .await?;
        assert_eq!(n.map_err(|e| Error::decode(e.to_string()))?, 42);
        drop(conn);
    }
    assert_eq!(query_scalar::<i64>("SELECT 5").fetch_one(&engine).await?, 5);
    // The connection the panicking task held comes back to the pool once it is reset (the
    // engine's own statements above may not have needed it: on PostgreSQL they run on the shared
    // connection): the pool's only slot can be acquired again, and nothing is left in use.
    let mut conn = engine.acquire().await?;
    assert_eq!(
        query_scalar::<i64>("SELECT 6").fetch_one(&mut conn).await?,
        6
    );
    drop(conn);
    assert_pool_settles(&engine).await;
    Ok(())
}

async fn execute_many_inserts_every_set(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    setup_items(&engine).await?;
    let mut conn = engine.acquire().await?;
    let sets: Vec<(i64, String)> = (0..500).map(|i| (i, format!("item {i}"))).collect();
    let changed = query("INSERT INTO items (id, name) VALUES ($1, $2)")
        .execute_many(&mut conn, sets.iter().map(|(i, s)| (*i, s.as_str())))
        .await?;
    assert_eq!(changed, 500);
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await?,
        500
    );
    // A failing set stops the batch with the database's error; inside a transaction nothing stays.
    let mut tx = conn.begin().await?;
    let err = query("INSERT INTO items (id, name) VALUES ($1, $2)")
        .execute_many(&mut tx, [(1000_i64, "new"), (1001, "item 3")])
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    tx.rollback().await?;
    assert_eq!(
        query_scalar::<i64>("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await?,
        500
    );
    Ok(())
}

async fn closed_engine_refuses_new_work(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    assert_eq!(query_scalar::<i64>("SELECT 1").fetch_one(&engine).await?, 1);
    engine.close().await;
    assert!(engine.is_closed());
    let err = engine.acquire().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(engine.status().size, 0);
    Ok(())
}

async fn password_never_shows(db: TestDb) -> Result<(), Error> {
    let _ = db;
    // Port 1 refuses at once, so the connect error (which names the URL) comes back quickly.
    let url = "postgres://someone:hunter2@127.0.0.1:1/db?connect_timeout=1";
    let shown = match anysql::builder(url)
        .acquire_timeout(Duration::from_secs(2))
        .build()
    {
        Ok(engine) => {
            let debug = format!("{engine:?} {}", engine.url());
            let err = engine.acquire().await.unwrap_err();
            format!("{debug} {err} {err:?}")
        }
        Err(err) => format!("{err} {err:?}"),
    };
    assert!(!shown.contains("hunter2"), "{shown}");
    Ok(())
}
