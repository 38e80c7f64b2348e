//! The types of the type features (chrono, time, uuid, json, decimal, bigdecimal) and the plain ones
//! (u64, IpAddr, arrays) on every cell: bound as parameters and decoded from columns, NULLs,
//! range edges, time zones, exact decimals, unicode JSON, and (SQLite) the stored forms other
//! SQLite libraries write and read.

use std::net::IpAddr;
use std::str::FromStr;

use anysql::prelude::*;
use anysql::Json;
use anysql_conformance::{driver_kind, DriverKind, TestDb};
use bigdecimal::BigDecimal;
use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

anysql_conformance::cell_tests!(
    cell,
    None,
    every_type_round_trips_through_a_table,
    nulls_round_trip_in_every_typed_column,
    dates_and_times_keep_their_edges,
    time_crate_types_round_trip,
    decimals_are_exact_or_an_error,
    big_decimals_keep_every_digit,
    json_keeps_unicode_and_structure,
    a_bad_stored_value_is_a_clear_error,
    enums_and_newtypes_through_derive_type,
);

anysql_conformance::cell_tests!(
    postgres_only,
    Some(anysql_conformance::DriverKind::Postgres),
    timestamptz_keeps_its_instant_in_any_session_time_zone,
    arrays_bind_and_decode_with_null_elements,
    a_postgres_enum_type_binds_and_decodes,
    postgres_types_without_a_rust_type_read_as_their_text,
);

anysql_conformance::cell_tests!(
    sqlite_only,
    Some(anysql_conformance::DriverKind::Sqlite),
    sqlite_reads_and_writes_the_stored_forms_of_other_libraries,
    sqlite_stores_arrays_as_json_text,
);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    nickname: String,
    langs: Vec<String>,
}

#[derive(Debug, PartialEq, FromRow)]
struct Everything {
    id: i64,
    day: NaiveDate,
    at: NaiveTime,
    local: NaiveDateTime,
    instant: DateTime<Utc>,
    offset: DateTime<FixedOffset>,
    id2: Uuid,
    doc: serde_json::Value,
    profile: Json<Profile>,
    amount: Decimal,
    big: u64,
    small: i16,
    ip: IpAddr,
    scores: Vec<Option<i64>>,
    mood: Mood,
}

/// The column types of `everything` on the cell's database.
fn ddl(table: &str) -> String {
    match driver_kind() {
        DriverKind::Postgres => format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, day DATE, at TIME, local TIMESTAMP, \
             instant TIMESTAMPTZ, \"offset\" TIMESTAMPTZ, id2 UUID, doc JSONB, profile JSON, \
             amount NUMERIC(40, 10), big NUMERIC(20, 0), small SMALLINT, ip INET, scores INT8[], \
             mood TEXT)"
        ),
        // SQLite: decimals in TEXT columns keep every digit (NUMERIC affinity would make them
        // floats); the rest is as the driver stores it.
        DriverKind::Sqlite => format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, day TEXT, at TEXT, local TEXT, \
             instant TEXT, \"offset\" TEXT, id2 BLOB, doc TEXT, profile TEXT, amount TEXT, \
             big TEXT, small INTEGER, ip TEXT, scores TEXT, mood TEXT)"
        ),
    }
}

fn sample() -> Everything {
    let local = NaiveDate::from_ymd_opt(2040, 2, 29)
        .unwrap()
        .and_hms_micro_opt(23, 59, 58, 123_456)
        .unwrap();
    let east = FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap();
    Everything {
        id: 1,
        day: NaiveDate::from_ymd_opt(1901, 12, 13).unwrap(),
        at: NaiveTime::from_hms_micro_opt(7, 8, 9, 10).unwrap(),
        local,
        instant: Utc.from_utc_datetime(&local),
        offset: east.from_local_datetime(&local).unwrap(),
        id2: Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8),
        doc: serde_json::json!({"k": [1, 2.5, null, "Zoë"], "nested": {"ok": true}}),
        profile: Json(Profile {
            nickname: "Ada 🦀".into(),
            langs: vec!["rust".into(), "sql".into()],
        }),
        amount: Decimal::from_str("-1234567890123456.0123456789").unwrap(),
        big: u64::MAX,
        small: i16::MIN,
        ip: "2001:db8::1".parse().unwrap(),
        scores: vec![Some(3), None, Some(-4)],
        mood: Mood::SoSo,
    }
}

async fn insert(engine: &Engine, table: &str, row: &Everything) -> Result<u64, Error> {
    query(format!(
        "INSERT INTO {table} (id, day, at, local, instant, \"offset\", id2, doc, profile, amount, \
         big, small, ip, scores, mood) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15)"
    ))
    .bind(row.id)
    .bind(row.day)
    .bind(row.at)
    .bind(row.local)
    .bind(row.instant)
    .bind(row.offset)
    .bind(row.id2)
    .bind(&row.doc)
    .bind(&row.profile)
    .bind(row.amount)
    .bind(row.big)
    .bind(row.small)
    .bind(row.ip)
    .bind(&row.scores)
    .bind(row.mood)
    .execute(engine)
    .await
}

async fn every_type_round_trips_through_a_table(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query(ddl("everything")).execute(&engine).await?;
    let row = sample();
    insert(&engine, "everything", &row).await?;
    let back: Everything = query_as("SELECT * FROM everything")
        .fetch_one(&engine)
        .await?;
    // PostgreSQL shows an instant at UTC: compare the instant, and the offset where it is kept.
    assert_eq!(back.offset, row.offset);
    if driver_kind() == DriverKind::Sqlite {
        assert_eq!(back.offset.offset().local_minus_utc(), 19_800);
    }
    let back = Everything {
        offset: row.offset,
        ..back
    };
    assert_eq!(back, row);
    // And through a parameter alone, which the database types from the value.
    let day: NaiveDate = query_scalar("SELECT $1")
        .bind(row.day)
        .fetch_one(&engine)
        .await?;
    assert_eq!(day, row.day);
    let id: Uuid = query_scalar("SELECT $1")
        .bind(row.id2)
        .fetch_one(&engine)
        .await?;
    assert_eq!(id, row.id2);
    let local: DateTime<Local> = query_scalar("SELECT instant FROM everything")
        .fetch_one(&engine)
        .await?;
    assert_eq!(local, row.instant);
    Ok(())
}

#[derive(Debug, PartialEq, FromRow)]
struct Nullable {
    id: i64,
    day: Option<NaiveDate>,
    at: Option<NaiveTime>,
    local: Option<NaiveDateTime>,
    instant: Option<DateTime<Utc>>,
    id2: Option<Uuid>,
    doc: Option<serde_json::Value>,
    profile: Option<Json<Profile>>,
    amount: Option<Decimal>,
    big: Option<u64>,
    ip: Option<IpAddr>,
}

async fn nulls_round_trip_in_every_typed_column(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query(ddl("everything")).execute(&engine).await?;
    query(
        "INSERT INTO everything (id, day, at, local, instant, id2, doc, profile, amount, big, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(2)
    .bind(None::<NaiveDate>)
    .bind(None::<NaiveTime>)
    .bind(None::<NaiveDateTime>)
    .bind(None::<DateTime<Utc>>)
    .bind(None::<Uuid>)
    .bind(None::<serde_json::Value>)
    .bind(None::<Json<Profile>>)
    .bind(None::<Decimal>)
    .bind(None::<u64>)
    .bind(None::<IpAddr>)
    .execute(&engine)
    .await?;
    let back: Nullable = query_as(
        "SELECT id, day, at, local, instant, id2, doc, profile, amount, big, ip FROM everything",
    )
    .fetch_one(&engine)
    .await?;
    assert_eq!(
        back,
        Nullable {
            id: 2,
            day: None,
            at: None,
            local: None,
            instant: None,
            id2: None,
            doc: None,
            profile: None,
            amount: None,
            big: None,
            ip: None,
        }
    );
    // A NULL into a non-Option names the way out.
    let err = query_scalar::<NaiveDate>("SELECT day FROM everything")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Option<"), "{err}");
    Ok(())
}

async fn dates_and_times_keep_their_edges(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let (date, ts) = match driver_kind() {
        DriverKind::Postgres => ("DATE", "TIMESTAMP"),
        DriverKind::Sqlite => ("TEXT", "TEXT"),
    };
    query(format!(
        "CREATE TABLE edges (id INTEGER PRIMARY KEY, d {date}, t {ts})"
    ))
    .execute(&engine)
    .await?;
    let days = [
        NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(1969, 12, 31).unwrap(),
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2038, 1, 19).unwrap(),
        NaiveDate::from_ymd_opt(2038, 1, 20).unwrap(),
        NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
    ];
    for (i, day) in days.iter().enumerate() {
        let at = day.and_hms_micro_opt(23, 59, 59, 999_999).unwrap();
        query("INSERT INTO edges (id, d, t) VALUES ($1, $2, $3)")
            .bind(i as i64)
            .bind(day)
            .bind(at)
            .execute(&engine)
            .await?;
    }
    let back: Vec<(NaiveDate, NaiveDateTime)> = query_as("SELECT d, t FROM edges ORDER BY id")
        .fetch_all(&engine)
        .await?;
    let want: Vec<_> = days
        .iter()
        .map(|d| (*d, d.and_hms_micro_opt(23, 59, 59, 999_999).unwrap()))
        .collect();
    assert_eq!(back, want);
    Ok(())
}

async fn time_crate_types_round_trip(db: TestDb) -> Result<(), Error> {
    use time::macros::{date, datetime, time};
    let engine = db.engine();
    let ddl = match driver_kind() {
        DriverKind::Postgres => {
            "CREATE TABLE t (d DATE, tm TIME, local TIMESTAMP, instant TIMESTAMPTZ)"
        }
        DriverKind::Sqlite => "CREATE TABLE t (d TEXT, tm TEXT, local TEXT, instant TEXT)",
    };
    query(ddl).execute(&engine).await?;
    let d = date!(1969 - 07 - 20);
    let tm = time!(20:17:40.123456);
    let local = datetime!(2100-01-01 00:00:00.000001);
    let instant = datetime!(1950-06-01 12:00 -3:30);
    query("INSERT INTO t (d, tm, local, instant) VALUES ($1, $2, $3, $4)")
        .bind(d)
        .bind(tm)
        .bind(local)
        .bind(instant)
        .execute(&engine)
        .await?;
    let back: (
        time::Date,
        time::Time,
        time::PrimitiveDateTime,
        time::OffsetDateTime,
    ) = query_as("SELECT d, tm, local, instant FROM t")
        .fetch_one(&engine)
        .await?;
    assert_eq!(back, (d, tm, local, instant));
    Ok(())
}

async fn decimals_are_exact_or_an_error(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let column = match driver_kind() {
        DriverKind::Postgres => "NUMERIC(40, 10)",
        DriverKind::Sqlite => "TEXT",
    };
    query(format!(
        "CREATE TABLE money (id INTEGER PRIMARY KEY, amount {column})"
    ))
    .execute(&engine)
    .await?;
    // 30 significant digits: exact as text; more than a Decimal holds, so decoding into one fails.
    let long = "12345678901234567890.0123456789";
    query("INSERT INTO money (id, amount) VALUES (1, $1)")
        .bind(Value::Numeric(long.into()))
        .execute(&engine)
        .await?;
    let text: String = query_scalar("SELECT amount FROM money WHERE id = 1")
        .fetch_one(&engine)
        .await?;
    assert_eq!(text, long);
    let err = query_scalar::<Decimal>("SELECT amount FROM money WHERE id = 1")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    // An error that says why, never a rounded value.
    assert!(
        err.to_string().contains("does not fit a Decimal exactly"),
        "{err}"
    );
    // 38 digits, PostgreSQL's `numeric` and SQLite's text alike, digit for digit.
    let widest = "-1234567890123456789012345678.0123456789";
    query("INSERT INTO money (id, amount) VALUES (3, $1)")
        .bind(Value::Numeric(widest.into()))
        .execute(&engine)
        .await?;
    let text: String = query_scalar("SELECT amount FROM money WHERE id = 3")
        .fetch_one(&engine)
        .await?;
    assert_eq!(text, widest);
    // 28 digits fit.
    let fits = Decimal::from_str("123456789012345678.0123456789").unwrap();
    query("INSERT INTO money (id, amount) VALUES (2, $1)")
        .bind(fits)
        .execute(&engine)
        .await?;
    let back: Decimal = query_scalar("SELECT amount FROM money WHERE id = 2")
        .fetch_one(&engine)
        .await?;
    assert_eq!(back, fits);
    // Never into a float silently.
    assert!(query_scalar::<f64>("SELECT amount FROM money WHERE id = 2")
        .fetch_one(&engine)
        .await
        .is_err());
    Ok(())
}

/// `numeric(40,10)` and wider, digit for digit as `String` and as `BigDecimal` (feature
/// `bigdecimal`), bound and decoded, NULL as `None`, and (PostgreSQL) arrays.
async fn big_decimals_keep_every_digit(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let column = match driver_kind() {
        DriverKind::Postgres => "NUMERIC(40, 10)",
        DriverKind::Sqlite => "TEXT",
    };
    query(format!(
        "CREATE TABLE wide (id INTEGER PRIMARY KEY, amount {column})"
    ))
    .execute(&engine)
    .await?;
    let long = "12345678901234567890.0123456789";
    let negative = "-1234567890123456789012345678.0123456789";
    // Bound as a BigDecimal and as exact text; NULL from `None`.
    query("INSERT INTO wide (id, amount) VALUES (1, $1), (2, $2), (3, $3)")
        .bind(BigDecimal::from_str(long).unwrap())
        .bind(Value::Numeric(negative.into()))
        .bind(None::<BigDecimal>)
        .execute(&engine)
        .await?;
    for (id, expected) in [(1, long), (2, negative)] {
        let text: String = query_scalar("SELECT amount FROM wide WHERE id = $1")
            .bind(id)
            .fetch_one(&engine)
            .await?;
        assert_eq!(text, expected);
        let big: BigDecimal = query_scalar("SELECT amount FROM wide WHERE id = $1")
            .bind(id)
            .fetch_one(&engine)
            .await?;
        assert_eq!(big.to_plain_string(), expected);
        assert_eq!(big, BigDecimal::from_str(expected).unwrap());
        // The same value as a parameter finds its row: what was bound is what was stored.
        let found: i64 = query_scalar("SELECT id FROM wide WHERE amount = $1")
            .bind(big)
            .fetch_one(&engine)
            .await?;
        assert_eq!(found, id);
    }
    let rows: Vec<(i64, Option<BigDecimal>)> = query_as("SELECT id, amount FROM wide ORDER BY id")
        .fetch_all(&engine)
        .await?;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2], (3, None));
    // A Decimal cannot hold it: an error, not a rounding.
    let err = query_scalar::<Decimal>("SELECT amount FROM wide WHERE id = 1")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("BigDecimal"), "{err}");
    if driver_kind() == DriverKind::Postgres {
        // Arrays, NULL elements included, both ways; the scale as `numeric` prints it.
        let values = vec![
            Some(BigDecimal::from_str(long).unwrap()),
            None,
            Some(BigDecimal::from_str("1e-20").unwrap()),
        ];
        let back: Vec<Option<BigDecimal>> = query_scalar("SELECT $1::numeric[]")
            .bind(&values)
            .fetch_one(&engine)
            .await?;
        assert_eq!(back, values);
        let texts: Vec<Option<String>> = query_scalar("SELECT $1::numeric[]")
            .bind(&values)
            .fetch_one(&engine)
            .await?;
        assert_eq!(
            texts,
            [
                Some(long.into()),
                None,
                Some("0.00000000000000000001".into())
            ]
        );
        // Wider than any Decimal and than a numeric(40,10): a bare numeric keeps it all.
        let huge = format!("{}.{}", "9".repeat(120), "1".repeat(60));
        let back: BigDecimal = query_scalar("SELECT $1::numeric")
            .bind(BigDecimal::from_str(&huge).unwrap())
            .fetch_one(&engine)
            .await?;
        assert_eq!(back.to_plain_string(), huge);
        // NaN is no BigDecimal: a clear error.
        let err = query_scalar::<BigDecimal>("SELECT 'NaN'::numeric")
            .fetch_one(&engine)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    }
    Ok(())
}

async fn json_keeps_unicode_and_structure(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let column = match driver_kind() {
        DriverKind::Postgres => "JSONB",
        DriverKind::Sqlite => "TEXT",
    };
    query(format!(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body {column})"
    ))
    .execute(&engine)
    .await?;
    let profile = Profile {
        nickname: "Zoë \u{1F980} \u{1} control, \"quoted\" \\ back".into(),
        langs: vec!["日本語".into(), String::new()],
    };
    query("INSERT INTO docs (id, body) VALUES (1, $1)")
        .bind(Json(&profile))
        .execute(&engine)
        .await?;
    let Json(back): Json<Profile> = query_scalar("SELECT body FROM docs")
        .fetch_one(&engine)
        .await?;
    assert_eq!(back, profile);
    let doc: serde_json::Value = query_scalar("SELECT body FROM docs")
        .fetch_one(&engine)
        .await?;
    assert_eq!(doc["langs"][0], "日本語");
    // A document that does not fit the type is a decode error naming it.
    let err = query_scalar::<Json<Vec<i32>>>("SELECT body FROM docs")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    // A value whose serialization fails is a parameter error, and nothing is stored.
    let unserializable: std::collections::HashMap<(i32, i32), i32> = [((1, 2), 3)].into();
    let err = query("INSERT INTO docs (id, body) VALUES (2, $1)")
        .bind(Json(unserializable))
        .execute(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err}");
    let n: i64 = query_scalar("SELECT count(*) FROM docs")
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 1);
    Ok(())
}

async fn a_bad_stored_value_is_a_clear_error(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    // Text that is no date, UUID or JSON: each a decode error that quotes it.
    for (sql, wanted) in [
        ("SELECT 'not a date'", "NaiveDate"),
        ("SELECT 'nope'", "Uuid"),
        ("SELECT '{bad'", "json"),
    ] {
        let err = match wanted {
            "NaiveDate" => query_scalar::<NaiveDate>(sql)
                .fetch_one(&engine)
                .await
                .err(),
            "Uuid" => query_scalar::<Uuid>(sql).fetch_one(&engine).await.err(),
            _ => query_scalar::<serde_json::Value>(sql)
                .fetch_one(&engine)
                .await
                .err(),
        }
        .expect("decoding fails");
        assert_eq!(err.kind(), ErrorKind::Decode, "{sql}: {err}");
    }
    Ok(())
}

async fn timestamptz_keeps_its_instant_in_any_session_time_zone(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    query("CREATE TABLE tz (instant TIMESTAMPTZ, local TIMESTAMP)")
        .execute(&mut conn)
        .await?;
    let instant = Utc.with_ymd_and_hms(1960, 3, 4, 5, 6, 7).unwrap();
    let local = NaiveDate::from_ymd_opt(2050, 6, 7)
        .unwrap()
        .and_hms_opt(8, 9, 10)
        .unwrap();
    query("SET TimeZone = 'America/St_Johns'")
        .execute(&mut conn)
        .await?;
    query("INSERT INTO tz VALUES ($1, $2)")
        .bind(instant)
        .bind(local)
        .execute(&mut conn)
        .await?;
    query("SET TimeZone = 'Asia/Kathmandu'")
        .execute(&mut conn)
        .await?;
    let back: (DateTime<Utc>, NaiveDateTime) = query_as("SELECT instant, local FROM tz")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(back, (instant, local));
    // The server agrees on the instant: its text at UTC.
    let text: String = query_scalar("SELECT (instant AT TIME ZONE 'UTC')::text FROM tz")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(text, "1960-03-04 05:06:07");
    // Infinity has no Rust value: a clear error.
    let err = query_scalar::<DateTime<Utc>>("SELECT 'infinity'::timestamptz")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("infinity"), "{err}");
    query("RESET TimeZone").execute(&mut conn).await?;
    Ok(())
}

async fn arrays_bind_and_decode_with_null_elements(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TABLE arr (id INT8 PRIMARY KEY, tags TEXT[], nums INT8[], days DATE[])")
        .execute(&engine)
        .await?;
    let tags = vec![Some("a".to_string()), None, Some("ü".to_string())];
    let days = vec![NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()];
    query("INSERT INTO arr VALUES (1, $1, $2, $3), (2, '{}', '{}', '{}')")
        .bind(&tags)
        .bind([1i64, 2, 3].as_slice())
        .bind(&days)
        .execute(&engine)
        .await?;
    let back: (Vec<Option<String>>, Vec<i64>, Vec<NaiveDate>) =
        query_as("SELECT tags, nums, days FROM arr WHERE id = 1")
            .fetch_one(&engine)
            .await?;
    assert_eq!(back, (tags, vec![1, 2, 3], days));
    let empty: Vec<i64> = query_scalar("SELECT nums FROM arr WHERE id = 2")
        .fetch_one(&engine)
        .await?;
    assert!(empty.is_empty());
    let ids: Vec<i64> = query_scalar("SELECT id FROM arr WHERE id = ANY($1) ORDER BY id")
        .bind([2i64, 3].as_slice())
        .fetch_all(&engine)
        .await?;
    assert_eq!(ids, [2]);
    // A NULL element into a non-Option element type names the element.
    let err = query_scalar::<Vec<String>>("SELECT tags FROM arr WHERE id = 1")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("element 1"), "{err}");
    Ok(())
}

/// What sqlx's SQLite driver writes for these types (RFC 3339 datetimes with an offset, `%F %T%.f`
/// local datetimes, 16-byte UUID blobs, JSON and decimals as text) reads back here, and what this
/// driver writes is exactly those forms.
async fn sqlite_reads_and_writes_the_stored_forms_of_other_libraries(
    db: TestDb,
) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TABLE foreign_rows (at TEXT, local TEXT, day TEXT, tm TEXT, id BLOB, doc TEXT, amount TEXT)")
        .execute(&engine)
        .await?;
    query(
        "INSERT INTO foreign_rows VALUES ('2026-12-01T21:24:05.769430+00:00', \
         '2026-12-01 21:24:05.769430', '2026-12-01', '21:24:05.769430', \
         X'67E5504410B1426F9247BB680E5FE0C8', '{\"a\":[1,2]}', '1.50')",
    )
    .execute(&engine)
    .await?;
    #[derive(FromRow, Debug)]
    struct Foreign {
        at: DateTime<Utc>,
        local: NaiveDateTime,
        day: NaiveDate,
        tm: NaiveTime,
        id: Uuid,
        doc: serde_json::Value,
        amount: Decimal,
    }
    let row: Foreign = query_as("SELECT * FROM foreign_rows")
        .fetch_one(&engine)
        .await?;
    let local = NaiveDate::from_ymd_opt(2026, 12, 1)
        .unwrap()
        .and_hms_micro_opt(21, 24, 5, 769_430)
        .unwrap();
    assert_eq!(row.at, Utc.from_utc_datetime(&local));
    assert_eq!(row.local, local);
    assert_eq!(row.day, local.date());
    assert_eq!(row.tm, local.time());
    assert_eq!(
        row.id,
        Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8)
    );
    assert_eq!(row.doc, serde_json::json!({"a": [1, 2]}));
    assert_eq!(row.amount, Decimal::from_str("1.50").unwrap());
    // Also the other common forms: a text UUID, a space-separated datetime with no offset (UTC),
    // a Unix-epoch integer.
    let id: Uuid = query_scalar("SELECT '67e55044-10b1-426f-9247-bb680e5fe0c8'")
        .fetch_one(&engine)
        .await?;
    assert_eq!(id, row.id);
    let at: DateTime<Utc> = query_scalar("SELECT '2026-12-01 21:24:05.769430'")
        .fetch_one(&engine)
        .await?;
    assert_eq!(at, row.at);
    let epoch: DateTime<Utc> = query_scalar("SELECT 1764624245").fetch_one(&engine).await?;
    assert_eq!(epoch.timestamp(), 1_764_624_245);
    // And the reverse: what this driver stores, and SQLite's own functions read it.
    query("DELETE FROM foreign_rows").execute(&engine).await?;
    query("INSERT INTO foreign_rows VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(row.at)
        .bind(row.local)
        .bind(row.day)
        .bind(row.tm)
        .bind(row.id)
        .bind(&row.doc)
        .bind(row.amount)
        .execute(&engine)
        .await?;
    let stored: (String, String, String, String, String, String, String) = query_as(
        "SELECT at, local, day, tm, typeof(id) || ':' || hex(id), doc, amount FROM foreign_rows",
    )
    .fetch_one(&engine)
    .await?;
    assert_eq!(stored.0, "2026-12-01T21:24:05.769430+00:00");
    assert_eq!(stored.1, "2026-12-01 21:24:05.769430");
    assert_eq!(stored.2, "2026-12-01");
    assert_eq!(stored.3, "21:24:05.769430");
    assert_eq!(stored.4, "blob:67E5504410B1426F9247BB680E5FE0C8");
    assert_eq!(stored.5, r#"{"a":[1,2]}"#);
    assert_eq!(stored.6, "1.50");
    let utc: String = query_scalar("SELECT datetime(at) FROM foreign_rows")
        .fetch_one(&engine)
        .await?;
    assert_eq!(utc, "2026-12-01 21:24:05");
    Ok(())
}

async fn sqlite_stores_arrays_as_json_text(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TABLE arr (id INTEGER PRIMARY KEY, tags TEXT, nums TEXT)")
        .execute(&engine)
        .await?;
    let tags = vec![Some("a".to_string()), None, Some("ü \"q\"".to_string())];
    query("INSERT INTO arr VALUES (1, $1, $2), (2, $3, $3)")
        .bind(&tags)
        .bind([1i64, 2, 3].as_slice())
        .bind(Vec::<i64>::new())
        .execute(&engine)
        .await?;
    let stored: String = query_scalar("SELECT nums FROM arr WHERE id = 1")
        .fetch_one(&engine)
        .await?;
    assert_eq!(stored, "[1,2,3]");
    let back: (Vec<Option<String>>, Vec<i64>) = query_as("SELECT tags, nums FROM arr WHERE id = 1")
        .fetch_one(&engine)
        .await?;
    assert_eq!(back, (tags, vec![1, 2, 3]));
    let empty: Vec<i64> = query_scalar("SELECT nums FROM arr WHERE id = 2")
        .fetch_one(&engine)
        .await?;
    assert!(empty.is_empty());
    // json_each is SQLite's `= ANY($1)`.
    let ids: Vec<i64> = query_scalar(
        "SELECT id FROM arr WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
    )
    .bind([2i64, 3].as_slice())
    .fetch_all(&engine)
    .await?;
    assert_eq!(ids, [2]);
    let err = query("SELECT $1")
        .bind(vec![vec![1u8]])
        .execute(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parameter, "{err}");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, anysql::Type)]
#[anysql(rename_all = "snake_case")]
enum Mood {
    Happy,
    SoSo,
    #[anysql(rename = "grumpy!")]
    Grumpy,
}

#[derive(Debug, Clone, Copy, PartialEq, anysql::Type)]
#[anysql(transparent)]
struct UserId(i64);

#[derive(Debug, PartialEq, FromRow)]
struct Person {
    id: UserId,
    mood: Mood,
    was: Option<Mood>,
}

async fn enums_and_newtypes_through_derive_type(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TABLE people (id BIGINT PRIMARY KEY, mood TEXT NOT NULL, was TEXT)")
        .execute(&engine)
        .await?;
    for (id, mood, was) in [(1, Mood::Happy, None), (2, Mood::SoSo, Some(Mood::Grumpy))] {
        query("INSERT INTO people (id, mood, was) VALUES ($1, $2, $3)")
            .bind(UserId(id))
            .bind(mood)
            .bind(was)
            .execute(&engine)
            .await?;
    }
    let people: Vec<Person> = query_as("SELECT id, mood, was FROM people ORDER BY id")
        .fetch_all(&engine)
        .await?;
    assert_eq!(
        people,
        [
            Person {
                id: UserId(1),
                mood: Mood::Happy,
                was: None
            },
            Person {
                id: UserId(2),
                mood: Mood::SoSo,
                was: Some(Mood::Grumpy)
            },
        ]
    );
    let stored: Vec<String> =
        query_scalar("SELECT mood || '/' || coalesce(was, '-') FROM people ORDER BY id")
            .fetch_all(&engine)
            .await?;
    assert_eq!(stored, ["happy/-", "so_so/grumpy!"]);
    query("INSERT INTO people (id, mood) VALUES (3, 'furious')")
        .execute(&engine)
        .await?;
    let err = query_scalar::<Mood>("SELECT mood FROM people WHERE id = 3")
        .fetch_one(&engine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string().contains("furious") && err.to_string().contains("Mood"),
        "{err}"
    );
    Ok(())
}

async fn a_postgres_enum_type_binds_and_decodes(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TYPE mood AS ENUM ('happy', 'so_so', 'grumpy!')")
        .execute(&engine)
        .await?;
    query("CREATE TABLE feelings (id INT8 PRIMARY KEY, mood mood NOT NULL, history mood[])")
        .execute(&engine)
        .await?;
    query("INSERT INTO feelings VALUES ($1, $2, '{happy,grumpy!}')")
        .bind(UserId(1))
        .bind(Mood::SoSo)
        .execute(&engine)
        .await?;
    let (mood, history): (Mood, Vec<Mood>) = query_as("SELECT mood, history FROM feelings")
        .fetch_one(&engine)
        .await?;
    assert_eq!(
        (mood, history),
        (Mood::SoSo, vec![Mood::Happy, Mood::Grumpy])
    );
    let n: i64 = query_scalar("SELECT count(*) FROM feelings WHERE mood = $1")
        .bind(Mood::SoSo)
        .fetch_one(&engine)
        .await?;
    assert_eq!(n, 1);
    Ok(())
}

/// PostgreSQL types anysql has no Rust type for read into `String` as the server's own text,
/// with no cast in the SQL; `money` stays a clear error naming the cast.
async fn postgres_types_without_a_rust_type_read_as_their_text(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let mut conn = engine.acquire().await?;
    for sql in [
        "'1 year 2 mons -3 days +04:05:06.5'::interval",
        "numrange(1.5, NULL)",
        "'{[1,3), [5,7)}'::int4multirange",
        "ROW(1, 'a b', NULL, '2020-01-01'::date, ARRAY[1, NULL])",
        "'12:00:00.5+05:30'::timetz",
        "B'1010'::varbit",
        "'08:00:2b:01:02:03'::macaddr",
        "'10.0.0.0/8'::cidr",
        "'<(1,2),3>'::circle",
    ] {
        let (value, server): (String, String) = query_as(format!("SELECT {sql}, ({sql})::text"))
            .fetch_one(&mut conn)
            .await?;
        assert_eq!(value, server, "{sql}");
    }
    let (values, none): (Vec<Option<String>>, Option<String>) =
        query_as("SELECT ARRAY['1 day'::interval, NULL], NULL::interval")
            .fetch_one(&mut conn)
            .await?;
    assert_eq!(values, [Some("1 day".to_owned()), None]);
    assert_eq!(none, None);
    let err = query_scalar::<String>("SELECT 1.5::money AS cash")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(
        err.to_string().contains("money") && err.to_string().contains("::numeric"),
        "{err}"
    );
    // The connection goes on.
    let one: i64 = query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    Ok(())
}
