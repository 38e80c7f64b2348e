//! The typed values (dates and times, UUIDs, JSON, IP addresses, arrays) against a live PostgreSQL
//! (`ANYSQL_PG_URL`, or `postgres://root@127.0.0.1:5432/test`): bound and decoded through the
//! engine, in a session whose time zone is not UTC, in both statement modes (named and
//! unnamed/PgBouncer-safe), on tokio, smol and async-std. Skipped when no server answers, unless
//! `CI=true`.

mod common;

use std::sync::Arc;

use anysql_core::types::text::{parse_date, parse_datetime, parse_time};
use anysql_core::{Connection, Engine, EngineBuilder, ErrorKind, SharedRuntime, Timestamp, Value};
use anysql_postgres::PostgresDriver;
use common::{on_every_runtime, unique, url_with};

/// The statement modes: named statements, and unnamed ones (two ways of asking for them).
const MODES: [&str; 3] = ["", "statement_cache_capacity=0", "pgbouncer=true"];

/// An engine in `mode` and one of its connections, whose session is in Newfoundland's time zone
/// (UTC-03:30, and -02:30 in summer): nothing here may depend on the session being UTC.
async fn session(mode: &str, runtime: &SharedRuntime) -> (Engine, Connection) {
    let engine = EngineBuilder::new(&url_with(mode))
        .driver(PostgresDriver)
        .shared_runtime(Arc::clone(runtime))
        .build()
        .unwrap();
    let mut conn = engine.acquire().await.unwrap();
    conn.execute("SET TimeZone = 'America/St_Johns'", ())
        .await
        .unwrap();
    (engine, conn)
}

fn unnamed(mode: &str) -> bool {
    !mode.is_empty()
}

fn date(text: &str) -> Value {
    Value::Date(parse_date(text).unwrap().try_into().unwrap())
}

fn time(text: &str) -> Value {
    Value::Time(parse_time(text).unwrap())
}

fn local(text: &str) -> Timestamp {
    let (t, offset) = parse_datetime(text).unwrap();
    assert_eq!(offset, None, "{text}");
    t
}

fn timestamp(text: &str) -> Value {
    Value::Timestamp(local(text))
}

/// The instant `text` (which has an offset) names, in UTC.
fn utc(text: &str) -> Timestamp {
    let (t, offset) = parse_datetime(text).unwrap();
    Timestamp {
        seconds: t.seconds - i64::from(offset.expect("an offset")),
        nanos: t.nanos,
    }
}

/// The instant `text` names, shown at its own offset: how chrono's `DateTime<FixedOffset>` binds.
fn instant(text: &str) -> Value {
    let offset = parse_datetime(text).unwrap().1.unwrap();
    Value::TimestampTz(utc(text), offset)
}

/// The same instant as PostgreSQL sends it back: at offset 0.
fn instant_utc(text: &str) -> Value {
    Value::TimestampTz(utc(text), 0)
}

fn uuid(text: &str) -> Value {
    Value::Uuid(anysql_core::types::text::parse_uuid(text).unwrap())
}

fn inet(text: &str) -> Value {
    Value::Inet(text.parse().unwrap())
}

fn json(text: &str) -> Value {
    Value::Json(text.to_owned())
}

fn text(text: &str) -> Value {
    Value::Text(text.to_owned())
}

fn array(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Array(items.into_iter().collect())
}

/// A 38-digit numeric, the precision of most databases' widest decimal.
const WIDE: &str = "12345678901234567890.123456789012345678";

/// One row of every column type, with their values.
fn typed_columns() -> Vec<(&'static str, Value)> {
    vec![
        ("d date", date("2026-12-01")),
        ("tm time", time("21:24:05.76943")),
        ("ts timestamp", timestamp("2026-12-01 21:24:05.76943")),
        ("tz timestamptz", instant_utc("2026-12-01T21:24:05.76943Z")),
        ("u uuid", uuid("67e55044-10b1-426f-9247-bb680e5fe0c8")),
        ("j json", json(r#"{"ключ":"値",  "emoji": "😀"}"#)),
        ("jb jsonb", json(r#"{"emoji": "😀", "ключ": "値"}"#)),
        ("ip inet", inet("2001:db8::1")),
        ("net cidr", inet("192.0.2.7")),
        ("n numeric(38, 18)", Value::Numeric(WIDE.to_owned())),
        (
            "ai int4[]",
            array([Value::Int(1), Value::Null, Value::Int(-3)]),
        ),
        (
            "at text[]",
            array([text("a\"b\\c,{}"), Value::Null, text("NULL"), text("")]),
        ),
        (
            "au uuid[]",
            array([uuid("00000000-0000-0000-0000-000000000001"), Value::Null]),
        ),
        ("ad date[]", array([date("1900-02-28"), date("2100-03-01")])),
        (
            "atz timestamptz[]",
            array([instant_utc("1969-07-20T20:17:40Z"), Value::Null]),
        ),
        (
            "ajb jsonb[]",
            array([json("[1, 2]"), Value::Null, json("null")]),
        ),
        (
            "ab bytea[]",
            array([Value::Blob(vec![0, 255]), Value::Blob(vec![])]),
        ),
        (
            "an numeric[]",
            array([Value::Numeric(WIDE.to_owned()), Value::Null]),
        ),
        ("ae int8[]", array([])),
    ]
}

#[test]
fn every_variant_round_trips_through_a_table() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            let table = unique("anysql_typed");
            let columns = typed_columns();
            let definitions: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            conn.execute(
                &format!(
                    "CREATE TABLE {table} (id int4 PRIMARY KEY, {})",
                    definitions.join(", ")
                ),
                (),
            )
            .await
            .unwrap();
            let names: Vec<&str> = definitions
                .iter()
                .map(|d| d.split(' ').next().unwrap())
                .collect();
            let placeholders: Vec<String> =
                (2..=columns.len() + 1).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} (id, {}) VALUES ($1, {})",
                names.join(", "),
                placeholders.join(", ")
            );
            let mut row = vec![Value::Int(1)];
            row.extend(columns.iter().map(|(_, v)| v.clone()));
            // The instant is bound at +05:30: the offset only says how it was shown.
            let tz = names.iter().position(|n| *n == "tz").unwrap() + 1;
            row[tz] = instant("2026-12-02T02:54:05.76943+05:30");
            conn.execute(&insert, row).await.unwrap();
            let mut nulls = vec![Value::Null; columns.len() + 1];
            nulls[0] = Value::Int(2);
            conn.execute(&insert, nulls).await.unwrap();

            let select = format!("SELECT {} FROM {table} ORDER BY id", names.join(", "));
            let rows = conn.fetch_all(&select, ()).await.unwrap();
            for ((name, want), got) in names
                .iter()
                .zip(columns.iter().map(|(_, v)| v))
                .zip(rows[0].values())
            {
                if *name == "j" && unnamed(mode) {
                    // Unnamed statements declare JSON jsonb, which PostgreSQL casts to json in
                    // its own spelling.
                    assert_eq!(got, &json(r#"{"emoji": "😀", "ключ": "値"}"#), "{mode}");
                    continue;
                }
                assert_eq!(got, want, "{mode}: column {name}");
            }
            assert!(rows[1].values().iter().all(Value::is_null), "{mode}");

            // In the Newfoundland session the instant is shown at its offset there, and the
            // timestamp without time zone as it was written.
            let row = conn
                .fetch_one(
                    &format!(
                        "SELECT tz::text, ts::text, tz = '2026-12-01 21:24:05.76943+00', \
                         d::text, u::text, ip::text, net::text, n::text FROM {table} WHERE id = 1"
                    ),
                    (),
                )
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    text("2026-12-01 17:54:05.76943-03:30"),
                    text("2026-12-01 21:24:05.76943"),
                    Value::Bool(true),
                    text("2026-12-01"),
                    text("67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    // `text(inet)` shows the netmask, as `host()` does not.
                    text("2001:db8::1/128"),
                    text("192.0.2.7/32"),
                    text(WIDE),
                ],
                "{mode}"
            );
            conn.execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn dates_and_times_keep_their_range_edges_before_1970_and_after_2038() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            let table = unique("anysql_edges");
            conn.execute(
                &format!(
                    "CREATE TABLE {table} (id int4 PRIMARY KEY, d date, tm time, ts timestamp, tz timestamptz)"
                ),
                (),
            )
            .await
            .unwrap();
            let rows = [
                // PostgreSQL's first day and instant, 4714-11-24 BC.
                [
                    date("-4713-11-24"),
                    time("00:00:00"),
                    timestamp("-4713-11-24 00:00:00"),
                    instant_utc("-4713-11-24T00:00:00Z"),
                ],
                // Its last ones.
                [
                    date("5874897-12-31"),
                    Value::Time(86_400_000_000_000),
                    timestamp("294276-12-31 23:59:59.999999"),
                    instant_utc("294276-12-31T23:59:59.999999Z"),
                ],
                // Before 1970, and 32-bit time's ends.
                [
                    date("1901-12-13"),
                    time("23:59:59.999999"),
                    timestamp("1901-12-13 20:45:52"),
                    instant_utc("1969-12-31T23:59:59.999999Z"),
                ],
                [
                    date("2038-01-20"),
                    time("12:00:00.000001"),
                    timestamp("2038-01-19 03:14:08"),
                    instant_utc("2100-02-28T23:30:00Z"),
                ],
                // Year 1 and 1 BC.
                [
                    date("0001-01-01"),
                    time("00:00:00.5"),
                    timestamp("0000-12-31 23:59:59"),
                    instant_utc("0001-01-01T00:00:00Z"),
                ],
            ];
            for (id, values) in rows.iter().enumerate() {
                let mut params = vec![Value::Int(id as i64)];
                params.extend(values.iter().cloned());
                conn.execute(
                    &format!("INSERT INTO {table} VALUES ($1, $2, $3, $4, $5)"),
                    params,
                )
                .await
                .unwrap_or_else(|e| panic!("{mode}: row {id}: {e}"));
            }
            let got = conn
                .fetch_all(
                    &format!("SELECT d, tm, ts, tz FROM {table} ORDER BY id"),
                    (),
                )
                .await
                .unwrap();
            for (id, values) in rows.iter().enumerate() {
                assert_eq!(got[id].values(), values.as_slice(), "{mode}: row {id}");
            }
            let texts = conn
                .fetch_all(
                    &format!(
                        "SELECT d::text, ts::text FROM {table} WHERE id IN (0, 1, 4) ORDER BY id"
                    ),
                    (),
                )
                .await
                .unwrap();
            let texts: Vec<Vec<Value>> = texts.iter().map(|r| r.values().to_vec()).collect();
            assert_eq!(
                texts,
                [
                    [text("4714-11-24 BC"), text("4714-11-24 00:00:00 BC")],
                    [text("5874897-12-31"), text("294276-12-31 23:59:59.999999")],
                    [text("0001-01-01"), text("0001-12-31 23:59:59 BC")],
                ],
                "{mode}"
            );

            // A step past each edge is a parameter error naming the placeholder, before the
            // statement runs; the connection stays usable.
            for (column, past) in [
                ("d", date("5874898-01-01")),
                ("d", date("-4713-11-23")),
                ("ts", timestamp("294277-01-01 00:00:00")),
                (
                    "ts",
                    Value::Timestamp(Timestamp {
                        seconds: local("-4713-11-24 00:00:00").seconds - 1,
                        nanos: 999_999_999,
                    }),
                ),
                ("tz", instant_utc("294277-01-01T00:00:00Z")),
                ("tm", Value::Time(86_400_000_000_001)),
            ] {
                let err = conn
                    .execute(
                        &format!("INSERT INTO {table} (id, {column}) VALUES (99, $1)"),
                        vec![past.clone()],
                    )
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Parameter, "{mode}: {past:?}: {err}");
                assert!(err.message().starts_with("parameter $1: "), "{err}");
                assert!(
                    err.message().contains("PostgreSQL's range")
                        || err.message().contains("24:00:00"),
                    "{err}"
                );
            }
            let count: i64 = conn
                .fetch_scalar(&format!("SELECT count(*)::int8 FROM {table}"), ())
                .await
                .unwrap();
            assert_eq!(count, rows.len() as i64, "{mode}");

            // Below a microsecond: truncated toward the past, never carried into the next day.
            let row = conn
                .fetch_one(
                    "SELECT $1::timestamp, $2::time, $3::timestamptz, $4::timestamp",
                    vec![
                        Value::Timestamp(Timestamp {
                            seconds: local("2026-12-31 23:59:59").seconds,
                            nanos: 999_999_999,
                        }),
                        Value::Time(parse_time("23:59:59").unwrap() + 999_999_999),
                        Value::TimestampTz(
                            Timestamp {
                                seconds: -1,
                                nanos: 1_999,
                            },
                            0,
                        ),
                        Value::Timestamp(Timestamp {
                            seconds: local("1960-06-01 00:00:00").seconds,
                            nanos: 1_500,
                        }),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    timestamp("2026-12-31 23:59:59.999999"),
                    time("23:59:59.999999"),
                    Value::TimestampTz(
                        Timestamp {
                            seconds: -1,
                            nanos: 1_000
                        },
                        0
                    ),
                    timestamp("1960-06-01 00:00:00.000001"),
                ],
                "{mode}"
            );
            conn.execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn every_variant_round_trips_through_select_placeholder() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            // A placeholder nothing types: the value's own type.
            for value in [
                date("1969-07-20"),
                time("13:37:00.000042"),
                timestamp("2040-02-29 12:00:00"),
                instant_utc("1999-12-31T23:59:59.999999Z"),
                uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"),
                inet("10.0.0.1"),
                array([Value::Int(1), Value::Null]),
                array([Value::Null, Value::Bool(true)]),
                array([Value::Float(0.5)]),
                array([date("2000-01-01")]),
                array([timestamp("2000-01-01 00:00:00")]),
                array([instant_utc("2000-01-01T00:00:00Z")]),
                array([uuid("00000000-0000-0000-0000-000000000000")]),
                array([json(r#"{"a": 1}"#)]),
                array([Value::Blob(vec![1, 2])]),
                array([inet("::1")]),
            ] {
                let got: Value = conn
                    .fetch_scalar("SELECT $1", vec![value.clone()])
                    .await
                    .unwrap();
                assert_eq!(got, value, "{mode}");
            }
            // An instant bound at an offset comes back at offset 0, the same instant.
            let got: Value = conn
                .fetch_scalar("SELECT $1", vec![instant("2026-01-01T12:00:00-03:30")])
                .await
                .unwrap();
            assert_eq!(got, instant_utc("2026-01-01T15:30:00Z"), "{mode}");

            // JSON binds to text, which is what PostgreSQL makes of `SELECT $1`; unnamed
            // statements declare it jsonb. Either way it reads back as the same JSON.
            let doc = r#"{"name": "Zoë", "tags": ["ü", "😀"]}"#;
            let got: Value = conn
                .fetch_scalar("SELECT $1", vec![json(doc)])
                .await
                .unwrap();
            assert_eq!(
                got,
                if unnamed(mode) { json(doc) } else { text(doc) },
                "{mode}"
            );
            let got: String = conn
                .fetch_scalar("SELECT $1::jsonb ->> 'name'", vec![json(doc)])
                .await
                .unwrap();
            assert_eq!(got, "Zoë");
            // Arrays of text (and empty ones) are text[] where nothing types them, in named
            // mode; unnamed statements leave them to the server, which makes them text.
            for value in [array([text("a,b"), Value::Null]), array([])] {
                let got: Value = conn
                    .fetch_scalar("SELECT $1", vec![value.clone()])
                    .await
                    .unwrap();
                if unnamed(mode) {
                    assert!(matches!(got, Value::Text(_)), "{mode}: {got:?}");
                } else {
                    assert_eq!(got, value, "{mode}");
                }
            }

            // Typed by the SQL.
            let row = conn
                .fetch_one(
                    "SELECT $1::date + 1, $2::uuid, $3::jsonb, $4::json, $5::inet, $6::cidr, \
                     $7::numeric, $8::int2[], $9::float4[], $10::varchar[], $11::timestamp[]",
                    vec![
                        date("2024-02-28"),
                        uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"),
                        json(r#"{"b":1,"a":2}"#),
                        json(r#"{"b":1,"a":2}"#),
                        inet("192.0.2.1"),
                        inet("2001:db8::2"),
                        Value::Numeric("-99999999999999999999999999999999999999".to_owned()),
                        array([Value::Int(-32768), Value::Null, Value::Int(32767)]),
                        array([Value::Float(1.5), Value::Int(2)]),
                        array([text("é"), Value::Null]),
                        array([timestamp("1900-01-01 00:00:00"), Value::Null]),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    date("2024-02-29"),
                    uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    json(r#"{"a": 2, "b": 1}"#),
                    if unnamed(mode) {
                        json(r#"{"a": 2, "b": 1}"#)
                    } else {
                        json(r#"{"b":1,"a":2}"#)
                    },
                    inet("192.0.2.1"),
                    inet("2001:db8::2"),
                    Value::Numeric("-99999999999999999999999999999999999999".to_owned()),
                    array([Value::Int(-32768), Value::Null, Value::Int(32767)]),
                    array([Value::Float(1.5), Value::Float(2.0)]),
                    array([text("é"), Value::Null]),
                    array([timestamp("1900-01-01 00:00:00"), Value::Null]),
                ],
                "{mode}"
            );

            // An array with a text element goes as PostgreSQL's text literal, whose dates and
            // times are spelled as its input reads them (BC years) and truncated as in binary.
            let row = conn
                .fetch_one(
                    "SELECT $1::date[], $2::timestamp[], $3::timestamptz[]",
                    vec![
                        array([text("2024-01-01"), date("-0043-03-15")]),
                        array([
                            text("2000-01-01 00:00:00"),
                            Value::Timestamp(Timestamp {
                                seconds: local("2026-12-31 23:59:59").seconds,
                                nanos: 999_999_999,
                            }),
                        ]),
                        array([
                            text("2000-01-01 00:00:00+00"),
                            instant_utc("-0100-01-01T12:00:00Z"),
                        ]),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    array([date("2024-01-01"), date("-0043-03-15")]),
                    array([
                        timestamp("2000-01-01 00:00:00"),
                        timestamp("2026-12-31 23:59:59.999999")
                    ]),
                    array([
                        instant_utc("2000-01-01T00:00:00Z"),
                        instant_utc("-0100-01-01T12:00:00Z")
                    ]),
                ],
                "{mode}"
            );
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn arrays_bind_to_any_and_decode_with_null_elements() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            let table = unique("anysql_any");
            conn.execute(
                &format!(
                    "CREATE TABLE {table} (id int4 PRIMARY KEY, big int8, name text, u uuid); \
                     INSERT INTO {table} SELECT i, i * 1000000000000, 'n' || i, \
                     ('00000000-0000-0000-0000-00000000000' || i)::uuid FROM generate_series(1, 9) i"
                ),
                (),
            )
            .await
            .unwrap();
            let ids = |rows: Vec<anysql_core::Row>| -> Vec<i64> {
                rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect()
            };
            let wanted = array([Value::Int(2), Value::Null, Value::Int(5), Value::Int(42)]);
            for column in ["id", "big / 1000000000000"] {
                let rows = conn
                    .fetch_all(
                        &format!("SELECT id FROM {table} WHERE {column} = ANY($1) ORDER BY id"),
                        vec![wanted.clone()],
                    )
                    .await
                    .unwrap();
                assert_eq!(ids(rows), [2, 5], "{mode}: {column}");
            }
            let rows = conn
                .fetch_all(
                    &format!("SELECT id FROM {table} WHERE id = ANY($1)"),
                    vec![array([])],
                )
                .await
                .unwrap();
            assert!(rows.is_empty(), "{mode}");
            let rows = conn
                .fetch_all(
                    &format!("SELECT id FROM {table} WHERE name = ANY($1) ORDER BY id"),
                    vec![array([text("n3"), text("n7"), text("x")])],
                )
                .await
                .unwrap();
            assert_eq!(ids(rows), [3, 7], "{mode}");
            let rows = conn
                .fetch_all(
                    &format!("SELECT id FROM {table} WHERE u = ANY($1) ORDER BY id"),
                    vec![array([uuid("00000000-0000-0000-0000-000000000004")])],
                )
                .await
                .unwrap();
            assert_eq!(ids(rows), [4], "{mode}");
            // An element the array's type cannot take names its index (in named mode, before
            // anything runs; unnamed statements find out as they encode it).
            let err = conn
                .fetch_all(
                    &format!("SELECT id FROM {table} WHERE id = ANY($1)"),
                    vec![array([Value::Int(1), text("two")])],
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Parameter, "{mode}: {err}");
            assert!(err.message().contains("array element 1"), "{err}");

            // Every element type decodes, NULL elements included.
            let row = conn
                .fetch_one(
                    "SELECT ARRAY[1, NULL]::int2[], ARRAY[NULL, 2]::int4[], ARRAY[3]::int8[], \
                     ARRAY[0.5, NULL]::float4[], ARRAY[0.25]::float8[], ARRAY[true, NULL, false], \
                     ARRAY['a', NULL]::text[], ARRAY['b']::varchar[], ARRAY[1.50, NULL]::numeric[], \
                     ARRAY['00000000-0000-0000-0000-00000000000a'::uuid], ARRAY['1999-12-31'::date, NULL], \
                     ARRAY['2000-01-01 00:00:00'::timestamp], ARRAY['2000-01-01 00:00:00+00'::timestamptz], \
                     ARRAY['{\"a\": 1}'::jsonb, NULL], ARRAY['\\x00ff'::bytea], ARRAY['10.0.0.1'::inet], \
                     '{}'::int4[], ARRAY[NULL]::text[], ARRAY['12:00'::time]",
                    (),
                )
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    array([Value::Int(1), Value::Null]),
                    array([Value::Null, Value::Int(2)]),
                    array([Value::Int(3)]),
                    array([Value::Float(0.5), Value::Null]),
                    array([Value::Float(0.25)]),
                    array([Value::Bool(true), Value::Null, Value::Bool(false)]),
                    array([text("a"), Value::Null]),
                    array([text("b")]),
                    array([Value::Numeric("1.50".to_owned()), Value::Null]),
                    array([uuid("00000000-0000-0000-0000-00000000000a")]),
                    array([date("1999-12-31"), Value::Null]),
                    array([timestamp("2000-01-01 00:00:00")]),
                    array([instant_utc("2000-01-01T00:00:00Z")]),
                    array([json(r#"{"a": 1}"#), Value::Null]),
                    array([Value::Blob(vec![0, 255])]),
                    array([inet("10.0.0.1")]),
                    array([]),
                    array([Value::Null]),
                    array([time("12:00:00")]),
                ],
                "{mode}"
            );
            let err = conn
                .fetch_all("SELECT ARRAY[[1, 2], [3, 4]] AS grid", ())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            assert!(
                err.message().contains("(\"grid\")") && err.message().contains("2-dimensional"),
                "{err}"
            );
            conn.execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn infinity_networks_and_unsupported_types_are_clear_decode_errors() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            for (sql, which) in [
                ("SELECT 'infinity'::date AS due", "infinity"),
                ("SELECT '-infinity'::timestamp AS due", "-infinity"),
                ("SELECT 'infinity'::timestamptz AS due", "infinity"),
                (
                    "SELECT ARRAY[now(), 'infinity']::timestamptz[] AS due",
                    "infinity",
                ),
            ] {
                let err = conn.fetch_all(sql, ()).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Decode, "{mode}: {err}");
                assert!(
                    err.message().contains("(\"due\")")
                        && err.message().contains(&format!(" is {which}, "))
                        && err.message().contains("::text"),
                    "{err}"
                );
            }
            // A network is its text; an IpAddr refuses it, saying why.
            let net: String = conn
                .fetch_scalar("SELECT '10.0.0.0/8'::cidr AS net", ())
                .await
                .unwrap();
            assert_eq!(net, "10.0.0.0/8");
            let err = conn
                .fetch_scalar::<std::net::IpAddr>("SELECT '10.0.0.0/8'::cidr AS net", ())
                .await
                .unwrap_err();
            assert!(err.message().contains("network (/8)"), "{err}");
            for ty in ["interval", "timetz", "money", "int4range", "interval[]"] {
                let err = conn
                    .fetch_all(&format!("SELECT NULL::{ty} AS x UNION ALL SELECT NULL"), ())
                    .await
                    .map(|rows| rows.len());
                // NULLs of any type decode; a value names the type and the cast.
                assert_eq!(err.ok(), Some(2), "{ty}");
            }
            // Types the driver has no text for (see `unsupported_types_keep_a_clear_error` for
            // the rest).
            for (sql, ty) in [
                ("SELECT 1::money AS x", "money"),
                ("SELECT 'a b'::tsvector AS x", "tsvector"),
                ("SELECT ROW(1, 1::money) AS x", "record"),
            ] {
                let err = conn.fetch_all(sql, ()).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Decode);
                assert!(
                    err.message()
                        .contains(&format!("has PostgreSQL type {ty},"))
                        && err.message().contains("::text"),
                    "{err}"
                );
            }
            // The same columns cast to text read fine, and the session goes on.
            let got: String = conn
                .fetch_scalar("SELECT 'infinity'::timestamptz::text", ())
                .await
                .unwrap();
            assert_eq!(got, "infinity");
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn local_times_and_instants_never_shift_and_invalid_values_are_refused() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            let table = unique("anysql_zones");
            conn.execute(
                &format!("CREATE TABLE {table} (id int4, ts timestamp, tz timestamptz, j jsonb)"),
                (),
            )
            .await
            .unwrap();
            // A local date and time on a timestamptz column, an instant on a timestamp column:
            // PostgreSQL would convert either in the session's time zone. Named statements refuse
            // both before anything runs.
            let mix = [
                ("tz", timestamp("2026-06-01 12:00:00"), "$1::timestamp"),
                ("ts", instant_utc("2026-06-01T12:00:00Z"), "$1::timestamptz"),
            ];
            for (column, value, cast) in mix {
                let result = conn
                    .execute(
                        &format!("INSERT INTO {table} (id, {column}) VALUES (1, $1)"),
                        vec![value],
                    )
                    .await;
                if unnamed(mode) {
                    // Unnamed statements have no parameter types to check against: the value
                    // declares its own and the server converts it, as the cast would (see the
                    // crate docs).
                    result.unwrap();
                } else {
                    let err = result.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Parameter, "{err}");
                    assert!(err.message().contains(cast), "{err}");
                }
            }
            if unnamed(mode) {
                let row = conn
                    .fetch_one(&format!("SELECT tz::text, ts::text FROM {table} WHERE tz IS NOT NULL OR ts IS NOT NULL ORDER BY tz NULLS LAST LIMIT 1"), ())
                    .await
                    .unwrap();
                assert_eq!(row.values()[0], text("2026-06-01 12:00:00-02:30"), "{mode}");
                conn.execute(&format!("DELETE FROM {table}"), ())
                    .await
                    .unwrap();
            }
            // The casts the messages suggest: PostgreSQL converts, in the session's time zone.
            conn.execute(
                &format!(
                    "INSERT INTO {table} (id, tz, ts) VALUES (2, $1::timestamp, $2::timestamptz)"
                ),
                vec![
                    timestamp("2026-06-01 12:00:00"),
                    instant_utc("2026-06-01T12:00:00Z"),
                ],
            )
            .await
            .unwrap();
            let row = conn
                .fetch_one(&format!("SELECT tz, ts FROM {table} WHERE id = 2"), ())
                .await
                .unwrap();
            assert_eq!(
                row.values(),
                &[
                    instant_utc("2026-06-01T14:30:00Z"),
                    timestamp("2026-06-01 09:30:00")
                ],
                "{mode}"
            );

            // A value that could not be made: its message, and nothing inserted.
            let err = conn
                .execute(
                    &format!("INSERT INTO {table} (id, j) VALUES (3, $1)"),
                    vec![Value::Invalid("key must be a string".to_owned())],
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Parameter, "{mode}: {err}");
            assert!(
                err.message().contains("parameter $1: key must be a string"),
                "{err}"
            );
            let err = conn
                .execute(
                    &format!("INSERT INTO {table} (id, j) SELECT 4, x FROM unnest($1::jsonb[]) x"),
                    vec![array([json("1"), Value::Invalid("no".to_owned())])],
                )
                .await
                .unwrap_err();
            assert!(err.message().contains("array element 1: no"), "{err}");
            let count: i64 = conn
                .fetch_scalar(
                    &format!("SELECT count(*)::int8 FROM {table} WHERE id IN (3, 4)"),
                    (),
                )
                .await
                .unwrap();
            assert_eq!(count, 0, "{mode}");
            conn.execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}

/// Values of types without a [`Value`] variant, each beside the server's own text of the same
/// value: the driver's text must be the same, character for character.
fn rendered_cases(composite: &str) -> Vec<String> {
    [
        // interval, IntervalStyle postgres
        "'1 year 2 mons 3 days 04:05:06.789'::interval",
        "'-1 day +2 hours'::interval",
        "'0'::interval",
        "'-1 mons -2 days -03:00:00'::interval",
        "'1.5 seconds'::interval",
        "'-0.000001 seconds'::interval",
        "'178000000 years'::interval",
        "'-178000000 years -11 mons'::interval",
        "'100 hours 59 minutes'::interval",
        "'1 day -1 second'::interval",
        "'-1 day 1 second'::interval",
        "'1 mon -1 day'::interval",
        // timetz
        "'12:00:00.5+05:30'::timetz",
        "'23:59:59.999999-08'::timetz",
        "'00:00:00+00'::timetz",
        "'01:02:03+05:30:15'::timetz",
        "'24:00:00-14'::timetz",
        // ranges: bounds inclusive, exclusive, unbounded, empty, infinite values
        "int4range(1, 5)",
        "'empty'::int4range",
        "'(,)'::int4range",
        "int8range(NULL, 10)",
        "int8range(-9223372036854775808, 0)",
        "numrange(1.5, 2.50, '[]')",
        "numrange(NULL, -0.001)",
        "daterange('2020-01-01', 'infinity')",
        "daterange('0044-03-15 BC', '2020-01-01', '[]')",
        "daterange('-infinity', NULL)",
        "tsrange('2020-01-01 00:00:00.5', NULL)",
        "tsrange('2020-01-01', '2020-01-02', '(]')",
        "tsrange('-infinity', 'infinity')",
        "tstzrange('2020-01-01 12:00+02', '2021-06-01 00:00:00.25+00')",
        "tstzrange('2020-01-01 00:00+00', 'infinity', '[]')",
        // multiranges
        "'{[1,3), [5,7)}'::int4multirange",
        "'{}'::int4multirange",
        "'{(,0), [1.5,2]}'::nummultirange",
        "'{[2020-01-01,2020-02-01), [2021-01-01,)}'::datemultirange",
        "'{[\"2020-01-01 00:00\",\"2020-01-02 00:00\")}'::tsmultirange",
        // records, with every kind of field, quoting and NULLs
        r#"ROW(1, 'a b', NULL, '', 'x"y\z', 'a,b', '(p)', true, false)"#,
        "ROW(0.1::float8, 1e20::float8, 1.5e-5::float4, 'NaN'::float8, '-Infinity'::float8, \
         -0::float8, 123456789.125::float8, 3.4e38::float4)",
        "ROW(1.50::numeric(10,2), 'NaN'::numeric, 12345678901234567890.0123456789::numeric, \
         (-5)::int2, 4000000000::oid)",
        "ROW('2020-01-01'::date, '0044-03-15 BC'::date, 'infinity'::date, '10000-01-01'::date)",
        "ROW('2020-01-01 12:00:00.5'::timestamp, '0044-03-15 10:00 BC'::timestamp, \
         '-infinity'::timestamp, '12:30:00.25'::time, '24:00:00'::time)",
        "ROW('2020-01-01 00:00:00+00'::timestamptz, '1999-12-31 23:59:59.999999+05'::timestamptz)",
        r#"ROW('{"a": [1, 2], "b": "x y"}'::jsonb, '[1,2]'::json, '\x01ff'::bytea, ''::bytea)"#,
        "ROW('67e55044-10b1-426f-9247-bb680e5fe0c8'::uuid, '10.0.0.1'::inet, \
         '10.0.0.0/8'::cidr, '2001:db8::1/64'::inet, '::ffff:1.2.3.4'::inet, '::1.2.3.4'::inet)",
        "ROW(ARRAY[1, NULL, 3], ARRAY['a b', 'NULL', '', 'q\"'], ARRAY[]::int4[], \
         ARRAY[ARRAY[1,2],ARRAY[3,4]], '[0:1]={7,8}'::int4[], ARRAY['(1,2),(0,0)'::box, \
         '(3,3),(2,2)'::box])",
        "ROW(1, ROW(2, 'x y', ROW(NULL, 'z')))",
        "ROW('1 day'::interval, '12:00+01'::timetz, int4range(1, 2), 'empty'::numrange, \
         'a'::\"char\")",
        "ROW()",
        // bit strings
        "B'1010'::bit(4)",
        "B'101'::varbit",
        "''::varbit",
        "B'1111111110'::varbit",
        "B'10000000000000001'::varbit",
        // addresses
        "'08:00:2b:01:02:03'::macaddr",
        "'08:00:2b:01:02:03:04:ff'::macaddr8",
        "'10.0.0.0/8'::cidr",
        "'10.1.2.3/8'::inet",
        "'2001:db8::/32'::cidr",
        "'::ffff:1.2.3.0/120'::cidr",
        // "char" and pg_lsn
        "'a'::\"char\"",
        "'é'::\"char\"",
        "''::\"char\"",
        "'16/B374D848'::pg_lsn",
        "'0/0'::pg_lsn",
        // geometry
        "point(1.5, -2)",
        "point(1e20, 0.1)",
        "'{1,2,3}'::line",
        "'[(1,2),(3,4)]'::lseg",
        "box '(3,4),(1,2)'",
        "'((1,2),(3,4))'::path",
        "'[(1,2),(3,4),(5.5,6)]'::path",
        "'((0,0),(1,1),(1,0))'::polygon",
        "'<(1,2),3>'::circle",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("ROW(1, 'x y', '2 days'::interval)::{composite}"),
        format!("ROW(NULL, NULL, NULL)::{composite}"),
        format!("ROW(-1, '', '-1 day'::interval)::{composite}"),
    ])
    .collect()
}

#[test]
fn types_without_a_variant_read_as_the_servers_own_text() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            // The documented forms: timestamps with a time zone in UTC.
            conn.execute("SET TimeZone = 'UTC'", ()).await.unwrap();
            let composite = unique("anysql_rendered");
            conn.execute(
                &format!("CREATE TYPE {composite} AS (n int4, t text, i interval)"),
                (),
            )
            .await
            .unwrap();
            for case in rendered_cases(&composite) {
                let rows = conn
                    .fetch_all(&format!("SELECT {case} AS v, ({case})::text AS t"), ())
                    .await
                    .unwrap_or_else(|e| panic!("{mode}: {case}: {e}"));
                let server: String = rows[0].get("t").unwrap();
                let value: Value = rows[0].get("v").unwrap();
                assert_eq!(value, Value::Text(server.clone()), "{mode}: {case}");
                // Into String too.
                let got: String = conn
                    .fetch_scalar(&format!("SELECT {case}"), ())
                    .await
                    .unwrap();
                assert_eq!(got, server, "{mode}: {case}");
            }
            // Arrays of such types: each element's text, NULL elements Null.
            for case in [
                "ARRAY['1 day'::interval, NULL, '-2 hours']",
                "ARRAY[int4range(1, 3), 'empty', NULL]",
                "ARRAY[ROW(1, 'a b'), ROW(NULL, '')]",
                // Networks only: one address (`/32`) is an `Inet`, as ever.
                "ARRAY['10.0.0.0/8'::cidr, NULL, '192.168.0.0/16']",
                "ARRAY[B'01'::varbit]",
            ] {
                let rows = conn
                    .fetch_all(
                        &format!(
                            "SELECT {case} AS v, ARRAY(SELECT (({case})[i])::text \
                             FROM generate_series(1, cardinality({case})) i ORDER BY i) AS t"
                        ),
                        (),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{mode}: {case}: {e}"));
                let server: Value = rows[0].get("t").unwrap();
                let value: Value = rows[0].get("v").unwrap();
                assert_eq!(value, server, "{mode}: {case}");
                // Into Vec<Option<String>> too.
                let texts: Vec<Option<String>> = rows[0].get("v").unwrap();
                let server: Vec<Option<String>> = rows[0].get("t").unwrap();
                assert_eq!(texts, server, "{mode}: {case}");
            }
            // The same in a table's columns, NULLs included.
            let table = unique("anysql_rendered_t");
            conn.execute(
                &format!(
                    "CREATE TABLE {table} (id int PRIMARY KEY, i interval, r int4range, \
                     c {composite}, m macaddr)"
                ),
                (),
            )
            .await
            .unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO {table} VALUES (1, '1 day 02:00', '[1,9)', ROW(1, 'q', NULL), \
                     '08:00:2b:01:02:03'), (2, NULL, NULL, NULL, NULL)"
                ),
                (),
            )
            .await
            .unwrap();
            type Texts = (
                i64,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Texts> = conn
                .fetch_all_as(
                    &format!("SELECT id, i, r, c, m FROM {table} ORDER BY id"),
                    (),
                )
                .await
                .unwrap();
            assert_eq!(
                rows,
                [
                    (
                        1,
                        Some("1 day 02:00:00".to_owned()),
                        Some("[1,9)".to_owned()),
                        Some("(1,q,)".to_owned()),
                        Some("08:00:2b:01:02:03".to_owned())
                    ),
                    (2, None, None, None, None)
                ]
            );
            // Whatever the session's TimeZone, timestamps with a time zone inside such values
            // are written in UTC (the server's own text would follow the session).
            conn.execute("SET TimeZone = 'America/St_Johns'", ())
                .await
                .unwrap();
            let got: String = conn
                .fetch_scalar(
                    "SELECT tstzrange('2020-01-01 12:00+00', '2020-01-02 00:00+00')",
                    (),
                )
                .await
                .unwrap();
            assert_eq!(
                got,
                r#"["2020-01-01 12:00:00+00","2020-01-02 00:00:00+00")"#
            );
            conn.execute(&format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            conn.execute(&format!("DROP TYPE {composite}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}

#[test]
fn unsupported_types_keep_a_clear_error() {
    on_every_runtime(|rt| async move {
        for mode in MODES {
            let (engine, mut conn) = session(mode, &rt).await;
            let kind = unique("anysql_mood");
            conn.execute(&format!("CREATE TYPE {kind} AS ENUM ('ok')"), ())
                .await
                .unwrap();
            for (sql, ty, says) in [
                // money's text follows lc_monetary: cast it.
                ("SELECT 12.5::money AS x", "money", "lc_monetary"),
                ("SELECT ARRAY[1::money] AS x", "money[]", "lc_monetary"),
                ("SELECT 'a b'::tsvector AS x", "tsvector", "::text"),
                ("SELECT 'a & b'::tsquery AS x", "tsquery", "::text"),
                ("SELECT '<a/>'::xml AS x", "xml", "::text"),
                ("SELECT ROW(1, 2::money) AS x", "record", "::text"),
                (
                    &*format!("SELECT ROW('ok'::{kind}) AS x"),
                    "record",
                    "::text",
                ),
            ] {
                let err = conn.fetch_all(sql, ()).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Decode, "{mode}: {sql}");
                assert!(
                    err.message()
                        .contains(&format!("(\"x\") has PostgreSQL type {ty},"))
                        && err.message().contains(says)
                        && err.message().contains("::text"),
                    "{mode}: {err}"
                );
                let err = conn.fetch_scalar::<String>(sql, ()).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Decode, "{mode}: {sql}");
                // Cast, the value reads, and the session goes on.
                let cast: String = conn
                    .fetch_scalar(&format!("SELECT x::text FROM ({sql}) s"), ())
                    .await
                    .unwrap();
                assert!(!cast.is_empty());
            }
            conn.execute(&format!("DROP TYPE {kind}"), ())
                .await
                .unwrap();
            drop(conn);
            engine.close().await;
        }
    });
}
