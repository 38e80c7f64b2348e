//! Integration tests against a live PostgreSQL (`ANYSQL_PG_URL`, or
//! `postgres://root@127.0.0.1:5432/test`). Skipped when no server answers, unless `CI=true`.

mod common;

use std::time::{Duration, Instant};

use anysql_core::{
    ConstraintKind, DriverConnection, Engine, EngineBuilder, ErrorKind, IsolationLevel, Row,
    TransactionOptions, Value,
};
use anysql_postgres::{DriveMode, PgConnection, PostgresDriver};
use common::{base_url, connect, unique, url_with, TestTokio, Transactions, MODES};
use futures_lite::StreamExt;

macro_rules! conn {
    ($url:expr) => {
        match common::try_connect(&$url).await {
            Some(conn) => conn,
            None => return,
        }
    };
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

async fn scalar(conn: &mut PgConnection, sql: &str, params: Vec<Value>) -> Value {
    let row = conn
        .fetch_optional(sql, params)
        .await
        .unwrap()
        .expect("a row");
    row.values()[0].clone()
}

/// Terminates, from a connection of its own, the backend that serves `engine`'s next statement (its
/// shared connection, or an idle pooled one), and returns that backend's pid.
async fn terminate_engine_backend(engine: &Engine) -> i64 {
    let pid: i64 = engine
        .fetch_scalar("SELECT pg_backend_pid()::int8", ())
        .await
        .unwrap();
    let mut killer = connect(&base_url()).await.unwrap();
    scalar(
        &mut killer,
        "SELECT pg_terminate_backend($1::int4)",
        vec![Value::Int(pid)],
    )
    .await;
    pid
}

async fn pid(conn: &mut PgConnection) -> i64 {
    match scalar(conn, "SELECT pg_backend_pid()", vec![]).await {
        Value::Int(pid) => pid,
        other => panic!("pid {other:?}"),
    }
}

#[tokio::test]
async fn connects_over_tcp_unix_socket_and_key_value() {
    let mut tcp = conn!(base_url());
    assert_eq!(scalar(&mut tcp, "SELECT 1", vec![]).await, Value::Int(1));
    let db = match scalar(&mut tcp, "SELECT current_database()", vec![]).await {
        Value::Text(db) => db,
        other => panic!("{other:?}"),
    };
    let user = match scalar(&mut tcp, "SELECT current_user::text", vec![]).await {
        Value::Text(user) => user,
        other => panic!("{other:?}"),
    };
    let dir = "/var/run/postgresql";
    if std::path::Path::new(dir).join(".s.PGSQL.5432").exists() {
        let mut unix = connect(&format!("postgres:///{db}?user={user}&host={dir}"))
            .await
            .unwrap();
        let addr = scalar(
            &mut unix,
            "SELECT coalesce(inet_client_addr()::text, 'unix')",
            vec![],
        )
        .await;
        assert_eq!(addr, text("unix"));
        let mut kv = connect(&format!(
            "host={dir} user={user} dbname={db} application_name='kv app'"
        ))
        .await
        .unwrap();
        assert_eq!(
            scalar(
                &mut kv,
                "SELECT current_setting('application_name')",
                vec![]
            )
            .await,
            text("kv app")
        );
        Box::new(unix).close().await.unwrap();
        let mut encoded = connect(&format!("postgres://{user}@%2Fvar%2Frun%2Fpostgresql/{db}"))
            .await
            .unwrap();
        assert_eq!(
            scalar(&mut encoded, "SELECT inet_client_addr() IS NULL", vec![]).await,
            Value::Bool(true)
        );
    }
    Box::new(tcp).close().await.unwrap();
}

#[tokio::test]
async fn url_options_reach_the_server() {
    let mut conn = conn!(url_with(
        "application_name=anysql%20test&options=-c%20search_path%3Dfoo,public"
    ));
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT current_setting('application_name')",
            vec![]
        )
        .await,
        text("anysql test")
    );
    assert_eq!(
        scalar(&mut conn, "SHOW search_path", vec![]).await,
        text("foo,public")
    );
}

#[tokio::test]
async fn several_hosts_are_tried_in_order() {
    let _probe = conn!(base_url());
    let opts = common::options(&base_url());
    let Some(anysql_postgres::PgHost::Tcp { host, port }) = opts.hosts().first().cloned() else {
        return;
    };
    let user = opts.user().unwrap_or("root");
    let db = opts.dbname().unwrap_or("test");
    let url = format!("postgres:///{db}?user={user}&host=127.0.0.1,{host}&port=1,{port}");
    let mut conn = connect(&url).await.unwrap();
    assert_eq!(scalar(&mut conn, "SELECT 1", vec![]).await, Value::Int(1));

    let err = connect(&format!(
        "postgres:///{db}?user={user}&password=hunter2&host=127.0.0.1,127.0.0.1&port=1,2"
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("127.0.0.1:1") && shown.contains("127.0.0.1:2"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn connect_failures_are_connection_errors() {
    let _probe = conn!(base_url());
    let err = connect("postgres://root:s3cret@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(std::error::Error::source(&err).is_some());
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("127.0.0.1:1"),
        "{shown}"
    );

    let opts = common::options(&base_url());
    let db = opts.dbname().unwrap_or("test");
    if let Some(anysql_postgres::PgHost::Tcp { host, port }) = opts.hosts().first() {
        let err = connect(&format!(
            "postgres://no_such_role_anysql:pw@{host}:{port}/{db}"
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.to_string().contains("no_such_role_anysql"), "{err}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
        let user = opts.user().unwrap_or("root");
        let err = connect(&format!(
            "postgres://{user}@{host}:{port}/no_such_db_anysql"
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.to_string().contains("check the database name"), "{err}");
    }
    let timeout = connect("postgres://root@10.255.255.1:5432/test?connect_timeout=0.2")
        .await
        .unwrap_err();
    assert_eq!(timeout.kind(), ErrorKind::Connection, "{timeout}");
}

#[tokio::test]
async fn every_type_round_trips_in_both_statement_modes() {
    for mode in [
        "",
        "statement_cache_capacity=0",
        "pgbouncer=true&drive=spawned",
    ] {
        let mut conn = conn!(url_with(mode));
        let table = unique("anysql_types");
        conn.execute(
            &format!(
                "CREATE TABLE {table} (id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, t text, \
                 vc varchar(20), bp char(3), b bytea, ok bool, j jsonb, n numeric)"
            ),
            vec![],
        )
        .await
        .unwrap();
        let full = vec![
            Value::Int(i64::MAX),
            Value::Int(-32768),
            Value::Int(2_147_483_647),
            Value::Float(1.5),
            Value::Float(0.1),
            text("héllo 'quoted' \\ text"),
            text("varchar"),
            text("abc"),
            Value::Blob(vec![0, 1, 2, 255]),
            Value::Bool(true),
            text(r#"{"a": [1, 2]}"#),
            Value::Float(2.25),
        ];
        let insert = format!(
            "INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        assert_eq!(
            conn.execute(&insert, full.clone()).await.unwrap(),
            1,
            "{mode}"
        );
        let mut nulls = vec![Value::Null; 12];
        nulls[0] = Value::Int(2);
        conn.execute(&insert, nulls).await.unwrap();
        // An integer into a float column is converted.
        conn.execute(
            &format!("INSERT INTO {table} (id, f8) VALUES ($1, $2)"),
            vec![Value::Int(3), Value::Int(7)],
        )
        .await
        .unwrap();

        let rows = conn
            .fetch_all(
                &format!("SELECT id, i2, i4, f4, f8, t, vc, bp, b, ok, j, n::float8 AS n FROM {table} ORDER BY id"),
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let mut expected = full.clone();
        expected[10] = Value::Json(r#"{"a": [1, 2]}"#.to_owned());
        assert_eq!(rows[0].values()[0], Value::Int(2));
        assert!(
            rows[0].values()[1..].iter().all(Value::is_null),
            "{:?}",
            rows[0]
        );
        assert_eq!(rows[1].get::<f64>("f8").unwrap(), 7.0);
        assert_eq!(rows[2].values(), expected.as_slice(), "{mode}");
        assert_eq!(rows[2].get::<String>("bp").unwrap(), "abc");

        // Parameters typed by their context, and literal types.
        let row = conn
            .fetch_optional(
                "SELECT $1::int2 AS a, $2::float4 AS b, $3::bool AS c, $4::bytea AS d, $5::text AS e, 'lit' AS f, \
                 NULL::int4 AS g, 42::oid AS h, 'x'::name AS i",
                vec![Value::Int(7), Value::Float(0.5), Value::Bool(false), Value::Blob(vec![9]), text("t")],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.values(),
            &[
                Value::Int(7),
                Value::Float(0.5),
                Value::Bool(false),
                Value::Blob(vec![9]),
                text("t"),
                text("lit"),
                Value::Null,
                Value::Int(42),
                text("x")
            ],
            "{mode}"
        );
        // Text into types anysql has no value for goes through PostgreSQL's text input.
        let row = conn
            .fetch_optional(
                "SELECT ($1::date + 1)::text, ($2::numeric * 2)::text",
                vec![text("2024-02-28"), text("1.25")],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.values(), &[text("2024-02-29"), text("2.50")]);
        conn.execute(&format!("DROP TABLE {table}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn enums_domains_and_json_follow_their_base_types() {
    for mode in ["", "pgbouncer=true"] {
        let mut conn = conn!(url_with(mode));
        let mood = unique("anysql_mood");
        let positive = unique("anysql_positive");
        let table = unique("anysql_custom");
        conn.execute(
            &format!(
                "CREATE TYPE {mood} AS ENUM ('sad', 'happy'); \
                 CREATE DOMAIN {positive} AS int4 CHECK (VALUE > 0); \
                 CREATE TABLE {table} (m {mood}, p {positive}, j json)"
            ),
            vec![],
        )
        .await
        .unwrap();
        conn.execute(
            &format!("INSERT INTO {table} VALUES ($1, $2, $3)"),
            vec![text("happy"), Value::Int(5), text("[1]")],
        )
        .await
        .unwrap();
        let err = conn
            .execute(
                &format!("INSERT INTO {table} (p) VALUES ($1)"),
                vec![Value::Int(-1)],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("23514"), "{err}");
        let rows = conn
            .fetch_all(&format!("SELECT m, p, j FROM {table}"), vec![])
            .await
            .unwrap();
        assert_eq!(
            rows[0].values(),
            &[text("happy"), Value::Int(5), Value::Json("[1]".to_owned())],
            "{mode}"
        );
        conn.execute(
            &format!("DROP TABLE {table}; DROP TYPE {mood}; DROP DOMAIN {positive}"),
            vec![],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn bad_parameters_are_parameter_errors_and_send_nothing() {
    let mut conn = conn!(base_url());
    let table = unique("anysql_params");
    conn.execute(
        &format!("CREATE TABLE {table} (a int2, b int4, t text)"),
        vec![],
    )
    .await
    .unwrap();
    conn.begin(&TransactionOptions::new()).await.unwrap();
    let insert = format!("INSERT INTO {table} VALUES ($1, $2, $3)");
    let err = conn
        .execute(
            &insert,
            vec![Value::Int(40_000), Value::Int(1), Value::Null],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(
        err.message().contains("$1") && err.message().contains("int2"),
        "{err}"
    );
    let err = conn
        .execute(
            &insert,
            vec![Value::Int(1), Value::Int(1 << 40), Value::Null],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err}");
    let err = conn
        .execute(&insert, vec![Value::Int(1), text("x"), Value::Null])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(
        err.message().contains("$2") && err.message().contains("int4"),
        "{err}"
    );
    let err = conn
        .execute(&insert, vec![Value::Int(1)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert_eq!(
        err.message(),
        "the statement takes 3 parameters but 1 was given"
    );
    let err = conn.fetch_all("SELECT $1::int4", vec![]).await.unwrap_err();
    assert_eq!(
        err.message(),
        "the statement takes 1 parameter but 0 were given"
    );
    // None of that reached the server, so the transaction is intact.
    conn.execute(&insert, vec![Value::Int(1), Value::Int(2), text("ok")])
        .await
        .unwrap();
    conn.commit().await.unwrap();
    assert_eq!(
        scalar(&mut conn, &format!("SELECT count(*) FROM {table}"), vec![]).await,
        Value::Int(1)
    );

    let mut unnamed = conn!(url_with("pgbouncer=true"));
    let err = unnamed
        .execute(&insert, vec![Value::Int(1)])
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "the statement takes 3 parameters but 1 was given"
    );
    conn.execute(&format!("DROP TABLE {table}"), vec![])
        .await
        .unwrap();
}

#[tokio::test]
async fn untyped_placeholders_return_what_was_bound() {
    for mode in ["", "pgbouncer=true"] {
        let mut conn = conn!(url_with(mode));
        for value in [
            Value::Int(5),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Blob(vec![1]),
            text("t"),
            Value::Null,
        ] {
            assert_eq!(
                scalar(&mut conn, "SELECT $1", vec![value.clone()]).await,
                value,
                "{mode}"
            );
        }
        let row = conn
            .fetch_optional(
                "SELECT $1 AS a, $2 AS b, $3 * 1000 + $4 AS c",
                vec![Value::Int(1), text("x"), Value::Int(2), Value::Int(3)],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.values(),
            &[Value::Int(1), text("x"), Value::Int(2003)],
            "{mode}"
        );
        let table = unique("anysql_untyped");
        conn.execute(&format!("CREATE TABLE {table} (name text)"), vec![])
            .await
            .unwrap();
        // An integer compared with a text column: the server's error, and inside a transaction
        // the failure is known, so COMMIT reports the rollback.
        conn.begin(&TransactionOptions::new()).await.unwrap();
        let err = conn
            .fetch_all(
                &format!("SELECT * FROM {table} WHERE name = $1"),
                vec![Value::Int(5)],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Database, "{mode}: {err}");
        assert_eq!(err.code(), Some("42883"), "{err}");
        assert_eq!(conn.commit().await.unwrap_err().code(), Some("25P02"));
        conn.execute(&format!("DROP TABLE {table}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn unsupported_column_types_name_the_type_and_a_cast() {
    let mut conn = conn!(base_url());
    let err = conn
        .fetch_all("SELECT 'a b'::tsvector AS t", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.message()
            .contains("(\"t\") has PostgreSQL type tsvector")
            && err.message().contains("::text"),
        "{err}"
    );
    // An interval is among the types the driver writes as text.
    assert_eq!(
        scalar(&mut conn, "SELECT interval '1 day' AS t", vec![]).await,
        Value::Text("1 day".into())
    );
    let err = conn.fetch_all("SELECT 1::money", vec![]).await.unwrap_err();
    assert!(err.message().contains("type money"), "{err}");
    assert_eq!(scalar(&mut conn, "SELECT 2", vec![]).await, Value::Int(2));
}

/// `numeric` is exact: [`Value::Numeric`] with PostgreSQL's own text, whole values decode into
/// integers, and nothing becomes a float silently (issue #10, 4).
#[tokio::test]
async fn numerics_decode_exactly() {
    for mode in ["", "pgbouncer=true"] {
        let mut conn = conn!(url_with(mode));
        let row = conn
            .fetch_optional(
                "SELECT sum(x) AS s, avg(x) AS a, 1.5::numeric AS f, (-12345678901234)::numeric AS i, \
                 2.000::numeric AS two, 'NaN'::numeric AS nan, 1e30::numeric AS big, 0.1::numeric AS tenth, \
                 $1::numeric AS bound, \
                 12345678901234567890.0123456789::numeric(40,10) AS wide \
                 FROM (VALUES (1::int8), (2), (4000)) v(x)",
                vec![Value::Float(0.25)],
            )
            .await
            .unwrap()
            .unwrap();
        let numeric = |s: &str| Value::Numeric(s.to_owned());
        assert_eq!(row.get::<i64>("s").unwrap(), 4003, "{mode}");
        assert_eq!(row.values()[1], numeric("1334.3333333333333333"));
        assert_eq!(
            row.get::<f64>("a").unwrap_err().kind(),
            ErrorKind::Decode,
            "never a float silently"
        );
        assert_eq!(row.values()[2], numeric("1.5"));
        assert_eq!(row.values()[3], numeric("-12345678901234"));
        assert_eq!(row.get::<i64>("i").unwrap(), -12_345_678_901_234);
        assert_eq!(row.values()[4], numeric("2.000"));
        assert_eq!(row.get::<i64>("two").unwrap(), 2);
        assert_eq!(row.values()[5], numeric("NaN"));
        assert_eq!(row.values()[6], numeric("1000000000000000000000000000000"));
        assert_eq!(row.values()[7], numeric("0.1"));
        assert_eq!(row.values()[8], numeric("0.25"));
        assert_eq!(
            row.get::<String>("wide").unwrap(),
            "12345678901234567890.0123456789"
        );
    }
}

#[tokio::test]
async fn database_errors_carry_sqlstate_and_constraint_kind() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let parent = unique("anysql_parent");
        let child = unique("anysql_child");
        conn.execute(
            &format!(
                "CREATE TABLE {parent} (id int PRIMARY KEY); \
                 CREATE TABLE {child} (id int PRIMARY KEY, parent int REFERENCES {parent}, \
                 name text NOT NULL, qty int CONSTRAINT qty_positive CHECK (qty > 0))"
            ),
            vec![],
        )
        .await
        .unwrap();
        conn.execute(&format!("INSERT INTO {parent} VALUES (1)"), vec![])
            .await
            .unwrap();
        let insert = format!("INSERT INTO {child} VALUES ($1, $2, $3, $4)");
        conn.execute(
            &insert,
            vec![Value::Int(1), Value::Int(1), text("a"), Value::Int(1)],
        )
        .await
        .unwrap();
        let cases = [
            (
                vec![Value::Int(1), Value::Int(1), text("a"), Value::Int(1)],
                "23505",
                ConstraintKind::Unique,
            ),
            (
                vec![Value::Int(2), Value::Int(9), text("a"), Value::Int(1)],
                "23503",
                ConstraintKind::ForeignKey,
            ),
            (
                vec![Value::Int(3), Value::Int(1), Value::Null, Value::Int(1)],
                "23502",
                ConstraintKind::NotNull,
            ),
            (
                vec![Value::Int(4), Value::Int(1), text("a"), Value::Int(0)],
                "23514",
                ConstraintKind::Check,
            ),
        ];
        for (params, code, kind) in cases {
            let err = conn.execute(&insert, params).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Database, "{err}");
            assert_eq!(err.code(), Some(code), "{err}");
            assert_eq!(err.constraint_kind(), Some(kind), "{err}");
            let details = err.as_database_error().unwrap();
            assert_eq!(details.table.as_deref(), Some(child.as_str()));
        }
        let err = conn
            .execute(
                &insert,
                vec![Value::Int(5), Value::Int(1), text("a"), Value::Int(-1)],
            )
            .await
            .unwrap_err();
        assert_eq!(err.constraint(), Some("qty_positive"));
        assert!(!err.is_unique_violation() && !err.is_retryable());

        let err = conn
            .execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$", vec![])
            .await
            .unwrap_err();
        assert!(err.is_retryable() && err.code() == Some("40001"), "{err}");
        let err = conn.fetch_all("SELEC 1", vec![]).await.unwrap_err();
        assert_eq!(err.code(), Some("42601"));
        let err = conn.fetch_all("SELECT 1/0", vec![]).await.unwrap_err();
        assert_eq!(err.code(), Some("22012"));
        // The connection is still usable after every one of those.
        assert!(!conn.is_broken());
        assert_eq!(
            scalar(&mut conn, "SELECT $1::int8 + 1", vec![Value::Int(1)]).await,
            Value::Int(2)
        );
        conn.execute(&format!("DROP TABLE {child}; DROP TABLE {parent}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn transactions_commit_roll_back_and_report_failed_commits() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let table = unique("anysql_tx");
        conn.execute(
            &format!("CREATE TABLE {table} (id int PRIMARY KEY)"),
            vec![],
        )
        .await
        .unwrap();
        let insert = format!("INSERT INTO {table} VALUES ($1)");
        let count = format!("SELECT count(*) FROM {table}");

        conn.begin(&TransactionOptions::new()).await.unwrap();
        conn.execute(&insert, vec![Value::Int(1)]).await.unwrap();
        conn.commit().await.unwrap();
        conn.begin(&TransactionOptions::new().isolation(IsolationLevel::Serializable))
            .await
            .unwrap();
        assert_eq!(
            scalar(&mut conn, "SHOW transaction_isolation", vec![]).await,
            text("serializable")
        );
        conn.execute(&insert, vec![Value::Int(2)]).await.unwrap();
        conn.rollback().await.unwrap();
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(1));

        // A failed statement dooms the transaction: COMMIT must not look like it succeeded.
        conn.begin(&TransactionOptions::new()).await.unwrap();
        conn.execute(&insert, vec![Value::Int(3)]).await.unwrap();
        assert_eq!(
            conn.execute(&insert, vec![Value::Int(1)])
                .await
                .unwrap_err()
                .code(),
            Some("23505")
        );
        let err = conn.commit().await.unwrap_err();
        assert_eq!(err.code(), Some("25P02"), "{err}");
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(1));

        // A savepoint recovers from the failure.
        conn.begin(&TransactionOptions::new().read_only(false))
            .await
            .unwrap();
        conn.execute(&insert, vec![Value::Int(4)]).await.unwrap();
        conn.execute("SAVEPOINT s1", vec![]).await.unwrap();
        conn.execute(&insert, vec![Value::Int(1)])
            .await
            .unwrap_err();
        conn.execute("ROLLBACK TO SAVEPOINT s1", vec![])
            .await
            .unwrap();
        conn.commit().await.unwrap();
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(2));

        // Read-only transactions.
        conn.begin(&TransactionOptions::new().read_only(true).deferrable(true))
            .await
            .unwrap();
        let err = conn
            .execute(&insert, vec![Value::Int(5)])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("25006"));
        conn.rollback().await.unwrap();

        // Transaction control written as SQL is tracked too.
        conn.execute("BEGIN", vec![]).await.unwrap();
        conn.execute(&insert, vec![Value::Int(1)])
            .await
            .unwrap_err();
        assert_eq!(
            conn.execute("COMMIT", vec![]).await.unwrap_err().code(),
            Some("25P02")
        );
        conn.execute(&format!("DROP TABLE {table}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn execute_many_pipelines_and_is_atomic() {
    for mode in ["drive=inline", "drive=spawned", "pgbouncer=true"] {
        let mut conn = conn!(url_with(mode));
        let table = unique("anysql_many");
        conn.execute(
            &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, name text)"),
            vec![],
        )
        .await
        .unwrap();
        let insert = format!("INSERT INTO {table} VALUES ($1, $2)");
        let count = format!("SELECT count(*) FROM {table}");
        let sets: Vec<Vec<Value>> = (0..2000)
            .map(|i| vec![Value::Int(i), text(&format!("n{i}"))])
            .collect();
        assert_eq!(
            conn.execute_many(&insert, Box::new(sets.into_iter()))
                .await
                .unwrap(),
            2000,
            "{mode}"
        );
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(2000));

        // A duplicate in the middle: nothing of the batch is applied.
        let sets: Vec<Vec<Value>> = (5000..5600)
            .chain([10])
            .chain(6000..6100)
            .map(|i| vec![Value::Int(i), text("x")])
            .collect();
        let err = conn
            .execute_many(&insert, Box::new(sets.into_iter()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("23505"), "{err}");
        assert_eq!(
            scalar(&mut conn, &count, vec![]).await,
            Value::Int(2000),
            "{mode}"
        );

        // A bad parameter anywhere: with named statements nothing is sent at all; with unnamed
        // ones the server rejects it, and the batch is rolled back.
        let sets = vec![
            vec![Value::Int(7000), text("a")],
            vec![text("bad"), text("b")],
        ];
        let err = conn
            .execute_many(&insert, Box::new(sets.into_iter()))
            .await
            .unwrap_err();
        if mode == "pgbouncer=true" {
            assert_eq!(err.code(), Some("22P02"), "{err}");
        } else {
            assert_eq!(err.kind(), ErrorKind::Parameter, "{err}");
        }
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(2000));

        // Inside a transaction, the batch joins it.
        conn.begin(&TransactionOptions::new()).await.unwrap();
        let sets: Vec<Vec<Value>> = (8000..8010)
            .map(|i| vec![Value::Int(i), text("t")])
            .collect();
        assert_eq!(
            conn.execute_many(&insert, Box::new(sets.into_iter()))
                .await
                .unwrap(),
            10
        );
        conn.rollback().await.unwrap();
        assert_eq!(scalar(&mut conn, &count, vec![]).await, Value::Int(2000));
        conn.execute(&format!("DROP TABLE {table}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pgbouncer_mode_uses_no_named_statements() {
    for mode in ["statement_cache_capacity=0", "pgbouncer=true"] {
        let mut conn = conn!(url_with(mode));
        assert!(conn.uses_unnamed_statements());
        for i in 0..3 {
            let row = conn
                .fetch_optional(
                    "SELECT $1::int8 + $2, $3::text || $4, $5::bool, $6::bytea, $7::float8 * 2, $8::int4 IS NULL",
                    vec![
                        Value::Int(i),
                        Value::Int(1),
                        text("a"),
                        text("b"),
                        Value::Bool(true),
                        Value::Blob(vec![1, 2]),
                        Value::Float(1.25),
                        Value::Null,
                    ],
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    Value::Int(i + 1),
                    text("ab"),
                    Value::Bool(true),
                    Value::Blob(vec![1, 2]),
                    Value::Float(2.5),
                    Value::Bool(true)
                ]
            );
        }
        // Parameters typed only by their use, with no cast.
        assert_eq!(
            scalar(&mut conn, "SELECT length($1)", vec![text("four")]).await,
            Value::Int(4)
        );
        assert_eq!(
            scalar(&mut conn, "SELECT 10 - $1", vec![Value::Int(3)]).await,
            Value::Int(7)
        );
        assert_eq!(
            scalar(&mut conn, "SELECT $1 = 'x'", vec![text("x")]).await,
            Value::Bool(true)
        );
        assert_eq!(
            scalar(&mut conn, "SELECT NOT $1", vec![Value::Bool(false)]).await,
            Value::Bool(true)
        );
        let stream: Vec<Row> = conn
            .fetch(
                "SELECT g FROM generate_series(1, $1::int4) g",
                vec![Value::Int(5)],
            )
            .try_collect()
            .await
            .unwrap();
        assert_eq!(stream.len(), 5);
        assert_eq!(
            scalar(
                &mut conn,
                "SELECT count(*) FROM pg_prepared_statements",
                vec![]
            )
            .await,
            Value::Int(0)
        );
        assert_eq!(conn.cached_statements(), 0);
    }
}

#[tokio::test]
async fn the_statement_cache_is_bounded() {
    let mut conn = conn!(url_with("statement_cache_capacity=2"));
    for i in 0..5 {
        let sql = format!("SELECT $1::int8 + {i}");
        assert_eq!(
            scalar(&mut conn, &sql, vec![Value::Int(1)]).await,
            Value::Int(1 + i)
        );
        assert!(conn.cached_statements() <= 2);
    }
    let on_server = scalar(
        &mut conn,
        "SELECT count(*) FROM pg_prepared_statements WHERE $1",
        vec![Value::Bool(true)],
    )
    .await;
    assert!(
        matches!(on_server, Value::Int(n) if n <= 2),
        "{on_server:?}"
    );
    assert_eq!(conn.cached_statements(), 2);
    // A cached statement is reused: no new server-side statement.
    let before = scalar(
        &mut conn,
        "SELECT count(*) FROM pg_prepared_statements WHERE $1",
        vec![Value::Bool(true)],
    )
    .await;
    let again = scalar(
        &mut conn,
        "SELECT count(*) FROM pg_prepared_statements WHERE $1",
        vec![Value::Bool(true)],
    )
    .await;
    assert_eq!(before, again);
}

#[tokio::test]
async fn a_changed_table_invalidates_the_cached_statement() {
    let mut conn = conn!(base_url());
    let table = unique("anysql_alter");
    conn.execute(&format!("CREATE TABLE {table} (a int)"), vec![])
        .await
        .unwrap();
    let select = format!("SELECT * FROM {table} WHERE $1");
    conn.fetch_all(&select, vec![Value::Bool(true)])
        .await
        .unwrap();
    conn.execute(&format!("ALTER TABLE {table} ADD COLUMN b int"), vec![])
        .await
        .unwrap();
    let first = conn.fetch_all(&select, vec![Value::Bool(true)]).await;
    if let Err(e) = &first {
        assert_eq!(e.code(), Some("0A000"), "{e}");
    }
    conn.fetch_all(&select, vec![Value::Bool(true)])
        .await
        .unwrap();
    conn.execute(&format!("DROP TABLE {table}"), vec![])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_handle_stops_a_long_query() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let handle = conn.cancel_handle().unwrap();
        let started = Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            handle.cancel().await
        });
        let err = conn
            .fetch_all("SELECT pg_sleep(10)", vec![])
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        canceller.await.unwrap().unwrap();
        assert_eq!(err.code(), Some("57014"), "{err}");
        assert!(
            elapsed < Duration::from_secs(5),
            "cancelled after {elapsed:?}"
        );
        eprintln!("{mode}: cancelled after {elapsed:?}");
        assert_eq!(scalar(&mut conn, "SELECT 3", vec![]).await, Value::Int(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_a_dropped_query_cancels_it() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            conn.fetch_all("SELECT pg_sleep(10)", vec![]),
        )
        .await;
        assert!(dropped.is_err());
        let started = Instant::now();
        conn.reset().await.unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "reset took {elapsed:?}");
        eprintln!("{mode}: reset after a dropped pg_sleep(10) took {elapsed:?}");
        assert_eq!(scalar(&mut conn, "SELECT 4", vec![]).await, Value::Int(4));

        // A dropped transaction is rolled back by reset.
        let table = unique("anysql_reset");
        conn.execute(&format!("CREATE TABLE {table} (a int)"), vec![])
            .await
            .unwrap();
        conn.begin(&TransactionOptions::new()).await.unwrap();
        conn.execute(&format!("INSERT INTO {table} VALUES (1)"), vec![])
            .await
            .unwrap();
        conn.reset().await.unwrap();
        assert_eq!(
            scalar(&mut conn, &format!("SELECT count(*) FROM {table}"), vec![]).await,
            Value::Int(0)
        );

        // A stream dropped half-way.
        {
            let mut rows = conn.fetch("SELECT g FROM generate_series(1, 100000) g", vec![]);
            rows.next().await.unwrap().unwrap();
        }
        conn.reset().await.unwrap();
        assert_eq!(scalar(&mut conn, "SELECT 5", vec![]).await, Value::Int(5));
        conn.execute(&format!("DROP TABLE {table}"), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_breaks_the_connection() {
    for mode in MODES {
        let mut victim = conn!(url_with(mode));
        let mut killer = conn!(base_url());
        let victim_pid = pid(&mut victim).await;
        let killed = scalar(
            &mut killer,
            "SELECT pg_terminate_backend($1::int4)",
            vec![Value::Int(victim_pid)],
        )
        .await;
        assert_eq!(killed, Value::Bool(true));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Noticed while idle, with no operation running: the pool would not hand it out.
        assert!(
            victim.is_broken(),
            "{mode}: idle connection not seen as broken"
        );
        // A connection error (the server ended the session), not `Closed` (for what the
        // application closed).
        let err = victim.fetch_all("SELECT 1", vec![]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode}: {err:?}");
        assert!(err.is_connection() && !err.is_closed(), "{mode}: {err:?}");
        assert!(victim.is_broken(), "{mode}");
        let again = victim.execute("SELECT 1", vec![]).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Connection, "{again:?}");
        assert!(victim.ping().await.is_err());
    }
}

/// Issue #10, 11: a session terminated while a statement runs (SQLSTATE 57P01) is a connection
/// error naming the SQLSTATE, on every path, and the connection is broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_terminated_mid_statement_is_a_connection_error() {
    for mode in MODES {
        let mut victim = conn!(url_with(mode));
        let mut killer = conn!(base_url());
        let victim_pid = pid(&mut victim).await;
        let kill = async {
            // Until the victim's statement is running.
            for _ in 0..100 {
                let running = scalar(
                    &mut killer,
                    "SELECT count(*)::int8 FROM pg_stat_activity \
                     WHERE pid = $1::int4 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
                    vec![Value::Int(victim_pid)],
                )
                .await;
                if running == Value::Int(1) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            scalar(
                &mut killer,
                "SELECT pg_terminate_backend($1::int4)",
                vec![Value::Int(victim_pid)],
            )
            .await
        };
        let (result, killed) = tokio::join!(victim.execute("SELECT pg_sleep(10)", vec![]), kill);
        assert_eq!(killed, Value::Bool(true), "{mode}");
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode}: {err:?}");
        assert!(err.is_connection(), "{mode}: {err:?}");
        assert!(err.to_string().contains("57P01"), "{mode}: {err}");
        assert_eq!(err.code(), Some("57P01"), "{mode}: {err:?}");
        assert!(victim.is_broken(), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_large_results() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let mut rows = conn.fetch(
            "SELECT g, 'row ' || g FROM generate_series(1, 100000) g",
            vec![],
        );
        let mut n = 0i64;
        while let Some(row) = rows.next().await {
            let row = row.unwrap();
            n += 1;
            assert_eq!(row.values()[0], Value::Int(n));
        }
        drop(rows);
        assert_eq!(n, 100_000);
        // fetch_optional stops at the first row.
        let first = conn
            .fetch_optional("SELECT g FROM generate_series(1, 1000000) g", vec![])
            .await
            .unwrap();
        assert_eq!(first.unwrap().values()[0], Value::Int(1));
        assert_eq!(scalar(&mut conn, "SELECT 6", vec![]).await, Value::Int(6));
        let all = conn
            .fetch_all("SELECT g FROM generate_series(1, 5000) g", vec![])
            .await
            .unwrap();
        assert_eq!(all.len(), 5000);
    }
}

#[tokio::test]
async fn with_client_drives_the_connection() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        assert_eq!(
            conn.drive_mode(),
            if mode.starts_with("drive=inline") {
                DriveMode::Inline
            } else {
                DriveMode::Spawned
            }
        );
        let n: i32 = conn
            .with_client(|client| {
                Box::pin(
                    async move { client.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0) },
                )
            })
            .await;
        assert_eq!(n, 42);
        conn.ping().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_engine_a_dropped_query_does_not_block_reuse() {
    let _probe = conn!(base_url());
    // The pooled path: the engine's own statements go through the pool too.
    let engine = EngineBuilder::new(&url_with("max_size=1&shared=false"))
        .driver(PostgresDriver)
        .shared_runtime(TestTokio::shared())
        .build()
        .unwrap();
    let mut conn = engine.acquire().await.unwrap();
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        conn.fetch_all("SELECT pg_sleep(10)", ()),
    )
    .await;
    assert!(dropped.is_err());
    drop(conn);
    let started = Instant::now();
    let n: i64 = engine.fetch_scalar("SELECT $1::int8", (7,)).await.unwrap();
    assert_eq!(n, 7);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A connection whose backend is terminated while idle in the pool is never handed out again.
    let pid = terminate_engine_backend(&engine).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new_pid: i64 = engine
        .fetch_scalar("SELECT pg_backend_pid()::int8", ())
        .await
        .unwrap();
    assert_ne!(pid, new_pid);

    let mut tx = engine.begin().await.unwrap();
    let n: i64 = tx.fetch_scalar("SELECT 8::int8", ()).await.unwrap();
    assert_eq!(n, 8);
    tx.commit().await.unwrap();
    engine.close().await;
}

/// The engine's statements outside transactions share one pipelined connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_connection_pipelines_and_survives_drops_errors_and_termination() {
    let _probe = conn!(base_url());
    for options in ["max_size=2", "max_size=2&statement_cache_capacity=0"] {
        let engine = EngineBuilder::new(&url_with(options))
            .driver(PostgresDriver)
            .shared_runtime(TestTokio::shared())
            .build()
            .unwrap();
        let table = unique("shared");
        engine
            .execute(
                &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, name text)"),
                (),
            )
            .await
            .unwrap();

        // Many tasks at once, more than the pool has connections: each gets its own answer.
        let mut tasks = Vec::new();
        for i in 0..64_i64 {
            let engine = engine.clone();
            let table = table.clone();
            tasks.push(tokio::spawn(async move {
                let inserted = engine
                    .execute(
                        &format!("INSERT INTO {table} VALUES ($1, $2)"),
                        (i, format!("n{i}")),
                    )
                    .await
                    .unwrap();
                assert_eq!(inserted, 1);
                let row = engine
                    .fetch_one(&format!("SELECT id, name FROM {table} WHERE id = $1"), (i,))
                    .await
                    .unwrap();
                assert_eq!(row.values(), &[Value::Int(i), text(&format!("n{i}"))]);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // They all ran on one session, none on the pool.
        assert_eq!(engine.status().size, 0, "{:?}", engine.status());

        // A future dropped while its statement runs does not disturb the statements after it.
        let slow = engine.fetch_all("SELECT pg_sleep(0.3)::text, $1::int8", (1_i64,));
        assert!(tokio::time::timeout(Duration::from_millis(20), slow)
            .await
            .is_err());
        let n: i64 = engine
            .fetch_scalar("SELECT $1::int8", (5_i64,))
            .await
            .unwrap();
        assert_eq!(n, 5);

        // `SELECT $1` returns what it is given, with the statement cached per parameter type; the
        // second round takes both from the cache.
        for _ in 0..2 {
            let n: i64 = engine.fetch_scalar("SELECT $1", (7_i64,)).await.unwrap();
            assert_eq!(n, 7);
            let word: String = engine.fetch_scalar("SELECT $1", ("seven",)).await.unwrap();
            assert_eq!(word, "seven");
        }

        // A server error fails that statement only.
        let err = engine
            .fetch_scalar::<i64>("SELECT 1 / $1::int8", (0_i64,))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Database);
        assert_eq!(err.code(), Some("22012"));
        let count: i64 = engine
            .fetch_scalar(&format!("SELECT count(*) FROM {table}"), ())
            .await
            .unwrap();
        assert_eq!(count, 64);
        assert!(engine
            .fetch_one(&format!("SELECT 1 FROM {table} WHERE id = -1"), ())
            .await
            .is_err_and(|e| e.kind() == ErrorKind::RowNotFound));

        // Transaction control goes to a pooled connection, never the shared one.
        engine.execute("BEGIN", ()).await.unwrap();
        let n: i64 = engine.fetch_scalar("SELECT 6::int8", ()).await.unwrap();
        assert_eq!(n, 6);
        let mut tx = engine.begin().await.unwrap();
        tx.execute(&format!("DELETE FROM {table} WHERE id = 0"), ())
            .await
            .unwrap();
        // Not committed yet: the shared connection still sees the row.
        let count: i64 = engine
            .fetch_scalar(&format!("SELECT count(*) FROM {table}"), ())
            .await
            .unwrap();
        assert_eq!(count, 64);
        tx.rollback().await.unwrap();

        // A shared connection whose backend is terminated is replaced.
        let pid = terminate_engine_backend(&engine).await;
        let mut new_pid = None;
        for _ in 0..50 {
            // The statement in flight when the session ended may fail; a later one must not.
            if let Ok(p) = engine
                .fetch_scalar::<i64>("SELECT pg_backend_pid()::int8", ())
                .await
            {
                new_pid = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(new_pid.expect("a new shared connection"), pid);

        engine
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
        engine.close().await;
        let err = engine
            .fetch_scalar::<i64>("SELECT 1", ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
    }
}
