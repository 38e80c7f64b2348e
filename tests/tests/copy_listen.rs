//! PostgreSQL's protocol features beyond queries, on every cell: LISTEN/NOTIFY through
//! [`Listener`], COPY in and out (text and binary), and server notices; and, on SQLite, the clear
//! error they give there.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anysql::prelude::*;
use anysql::{Listener, Notification};
use anysql_conformance::{spawn, with_timeout, TestDb};
use futures_lite::StreamExt;

anysql_conformance::cell_tests!(
    sqlite_only,
    Some(anysql_conformance::DriverKind::Sqlite),
    copy_and_listen_are_unsupported_errors_on_sqlite,
);
anysql_conformance::cell_tests!(
    pg_only,
    Some(anysql_conformance::DriverKind::Postgres),
    notifications_arrive_in_order,
    a_terminated_listener_comes_back_and_hears_later_notifications,
    a_slow_listener_is_told_what_it_missed,
    copy_round_trips_100k_rows_in_text_and_binary,
    a_dropped_copy_leaves_no_rows_and_a_working_connection,
    copy_errors_are_clear_and_the_connection_goes_on,
    notices_become_log_records_with_their_sqlstate,
);

const ROWS: i64 = 100_000;

/// Behind PgBouncer's transaction pooling (`pgbouncer=true`), a Listener is refused (it needs a
/// session of its own) and so is a COPY outside a transaction.
fn pgbouncer() -> bool {
    anysql_conformance::pgbouncer_mode()
}

/// The error of what PgBouncer's transaction pooling cannot carry: clear, and nothing sent.
fn refused_behind_pgbouncer<T>(result: Result<T, Error>) {
    let Err(e) = result else {
        panic!("refused behind PgBouncer")
    };
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("pgbouncer=true"), "{e}");
}

/// Runs `$body` with `$c` the connection `$conn`, or, behind PgBouncer (where a COPY must run
/// in a transaction), a transaction on it that commits after the body.
macro_rules! copying {
    ($conn:ident, |$c:ident| $body:expr) => {{
        if pgbouncer() {
            refused_behind_pgbouncer($conn.copy_out("COPY (SELECT 1) TO STDOUT").await);
            let mut tx = $conn.begin().await?;
            let out = {
                let $c: &mut Connection = &mut tx;
                $body
            };
            tx.commit().await?;
            out
        } else {
            let $c: &mut Connection = &mut $conn;
            $body
        }
    }};
}

/// The next notification, within a few seconds.
async fn next(listener: &mut Listener) -> Result<Notification, Error> {
    with_timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("no notification within 10 s")
        .expect("the listener's stream never ends")
}

async fn copy_and_listen_are_unsupported_errors_on_sqlite(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    query("CREATE TABLE t (id INTEGER)")
        .execute(&engine)
        .await?;
    let unsupported = |e: Error| {
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("not supported"), "{e}");
    };
    unsupported(engine.listener().await.unwrap_err());
    unsupported(engine.notify("c", "p").await.unwrap_err());
    let mut conn = engine.acquire().await?;
    unsupported(conn.copy_in("COPY t FROM STDIN").await.unwrap_err());
    unsupported(conn.copy_out("COPY t TO STDOUT").await.unwrap_err());
    unsupported(conn.copy_in_rows("t", &["id"]).await.unwrap_err());
    let mut tx = conn.begin().await?;
    unsupported(tx.copy_in("COPY t FROM STDIN").await.unwrap_err());
    query("INSERT INTO t VALUES (1)").execute(&mut tx).await?;
    tx.commit().await?;
    let n: i64 = query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(n, 1);
    Ok(())
}

async fn notifications_arrive_in_order(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    if pgbouncer() {
        refused_behind_pgbouncer(engine.listener().await);
        return Ok(());
    }
    let channel = anysql_conformance::unique_name("Chan");
    let other = anysql_conformance::unique_name("other");
    let mut listener = engine.listener().await?;
    listener.listen(&channel).await?;
    listener.listen(&other).await?;
    listener.listen(&channel).await?; // a no-op
    assert_eq!(listener.channels(), [channel.clone(), other.clone()]);
    // Outside the pool's count.
    assert_eq!(engine.status().in_use, 0);

    // Through `notify`, the builders and plain SQL, in one order.
    for i in 0..300 {
        match i % 3 {
            0 => engine.notify(&channel, &i.to_string()).await?,
            1 => query("SELECT pg_notify($1, $2)")
                .bind(channel.as_str())
                .bind(i.to_string())
                .execute(&engine)
                .await
                .map(drop)?,
            _ => {
                let mut conn = engine.acquire().await?;
                conn.execute(&format!("NOTIFY \"{channel}\", '{i}'"), ())
                    .await?;
            }
        }
    }
    for i in 0..300 {
        let n = next(&mut listener).await?;
        assert_eq!(n.channel(), channel);
        assert_eq!(n.payload(), i.to_string());
        assert!(n.process_id() > 0);
    }

    // Inside a transaction: delivered at commit, not at all after a rollback.
    let mut tx = engine.begin().await?;
    query("SELECT pg_notify($1, 'rolled back')")
        .bind(other.as_str())
        .execute(&mut tx)
        .await?;
    tx.rollback().await?;
    let mut tx = engine.begin().await?;
    query("SELECT pg_notify($1, 'committed')")
        .bind(other.as_str())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    let n = next(&mut listener).await?;
    assert_eq!((n.channel(), n.payload()), (other.as_str(), "committed"));

    // Unlisten: nothing more on that channel; the other goes on.
    listener.unlisten(&other).await?;
    engine.notify(&other, "unheard").await?;
    engine.notify(&channel, "heard").await?;
    let n = next(&mut listener).await?;
    assert_eq!((n.channel(), n.payload()), (channel.as_str(), "heard"));
    listener.unlisten_all().await?;
    assert!(listener.channels().is_empty());
    engine.notify(&channel, "unheard").await?;
    listener.listen(&other).await?;
    engine.notify(&other, "last").await?;
    let n = next(&mut listener).await?;
    assert_eq!((n.channel(), n.payload()), (other.as_str(), "last"));

    // Bad names are refused before anything is sent.
    let e = listener.listen("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Parameter);
    Ok(())
}

/// The server process of the listener's session, found by its last statement.
async fn listener_pid(admin: &Engine, schema: &str) -> Result<i32, Error> {
    for _ in 0..100 {
        let pid: Option<i32> = query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
             AND query LIKE '%LISTEN %' ORDER BY backend_start DESC LIMIT 1",
        )
        .bind(schema)
        .fetch_optional(admin)
        .await?;
        if let Some(pid) = pid {
            return Ok(pid);
        }
        anysql_conformance::sleep(Duration::from_millis(20)).await;
    }
    panic!("the listener's session is not in pg_stat_activity");
}

async fn a_terminated_listener_comes_back_and_hears_later_notifications(
    db: TestDb,
) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    if pgbouncer() {
        refused_behind_pgbouncer(engine.listener().await);
        return Ok(());
    }
    let admin = anysql::builder(&anysql_conformance::pg_url())
        .max_size(1)
        .build()?;
    let schema = db.schema.clone().expect("a PostgreSQL test schema");
    let first = anysql_conformance::unique_name("first");
    let second = anysql_conformance::unique_name("second");
    let mut listener = engine.listener().await?;
    listener.listen(&first).await?;
    listener.listen(&second).await?;
    engine.notify(&first, "before").await?;
    assert_eq!(next(&mut listener).await?.payload(), "before");

    for round in 0..2 {
        let pid = listener_pid(&admin, &schema).await?;
        let killed: bool = query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&admin)
            .await?;
        assert!(killed);
        // The stream says that notifications may have been missed, and goes on.
        let e = next(&mut listener).await.unwrap_err();
        assert!(e.is_notifications_missed(), "{e:?}");
        // Back on both channels: keep sending until one arrives (those sent before the
        // reconnect are lost, as the stream said).
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let engine = engine.clone();
            let second = second.clone();
            let stop = Arc::clone(&stop);
            spawn(async move {
                for i in 0..400 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    engine.notify(&second, &format!("after {i}")).await?;
                    anysql_conformance::sleep(Duration::from_millis(25)).await;
                }
                Ok::<_, Error>(())
            })
        };
        let n = loop {
            match next(&mut listener).await {
                Ok(n) => break n,
                // A reconnect attempt that failed: the stream goes on.
                Err(e) => assert!(e.is_connection(), "round {round}: {e:?}"),
            }
        };
        assert_eq!(n.channel(), second);
        assert!(n.payload().starts_with("after "), "{}", n.payload());
        stop.store(true, Ordering::SeqCst);
        sender.await?;
        // Still listening on the first channel as well, and in order.
        let marker = format!("marker {round}");
        engine.notify(&first, &marker).await?;
        loop {
            let n = next(&mut listener).await?;
            if n.channel() == first {
                assert_eq!(n.payload(), marker);
                break;
            }
        }
        assert_ne!(listener_pid(&admin, &schema).await?, pid);
    }
    Ok(())
}

async fn a_slow_listener_is_told_what_it_missed(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    if pgbouncer() {
        refused_behind_pgbouncer(engine.listener().await);
        return Ok(());
    }
    let channel = anysql_conformance::unique_name("slow");
    let mut listener = engine.listener_with_capacity(10).await?;
    listener.listen(&channel).await?;
    // 25 notifications in one transaction arrive together, while nobody reads.
    let mut tx = engine.begin().await?;
    for i in 0..25 {
        query("SELECT pg_notify($1, $2)")
            .bind(channel.as_str())
            .bind(i.to_string())
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;
    // Let the listener's connection read them all.
    anysql_conformance::sleep(Duration::from_millis(500)).await;
    for i in 0..10 {
        assert_eq!(next(&mut listener).await?.payload(), i.to_string());
    }
    let e = next(&mut listener).await.unwrap_err();
    assert!(e.is_notifications_missed(), "{e:?}");
    assert!(e.message().starts_with("15 notifications"), "{e}");
    engine.notify(&channel, "after").await?;
    assert_eq!(next(&mut listener).await?.payload(), "after");
    assert!(engine.listener_with_capacity(0).await.is_err());
    Ok(())
}

/// The text-format COPY data of the test rows: every kind of value, escapes and NULLs included.
fn text_rows() -> String {
    let mut data = String::new();
    for id in 0..ROWS {
        let name = match id % 5 {
            0 => format!("name {id}"),
            1 => format!("tab\\there {id}"),
            2 => format!("line\\nbreak \\\\ {id}"),
            3 => "\\N".to_owned(),
            _ => format!("ünï \"{id}\""),
        };
        let score = if id % 7 == 0 {
            "\\N".to_owned()
        } else {
            format!("{}", id as f64 / 4.0)
        };
        let flag = if id % 2 == 0 { "t" } else { "f" };
        writeln!(data, "{id}\t{name}\t{score}\t{flag}").expect("a String");
    }
    data
}

/// The rows of [`text_rows`] as values.
fn typed_row(id: i64) -> (i64, Option<String>, Option<f64>, bool) {
    let name = match id % 5 {
        0 => Some(format!("name {id}")),
        1 => Some(format!("tab\there {id}")),
        2 => Some(format!("line\nbreak \\ {id}")),
        3 => None,
        _ => Some(format!("ünï \"{id}\"")),
    };
    let score = (id % 7 != 0).then(|| id as f64 / 4.0);
    (id, name, score, id % 2 == 0)
}

/// The whole table as COPY text, through `copy_out`, in id order.
async fn copy_out_text(conn: &mut Connection, table: &str) -> Result<Vec<u8>, Error> {
    let mut out = conn
        .copy_out(&format!(
            "COPY (SELECT id, name, score, flag FROM {table} ORDER BY id) TO STDOUT"
        ))
        .await?;
    let mut data = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = out.next().await {
        data.extend_from_slice(&chunk?);
        chunks += 1;
    }
    assert!(chunks > 1, "the data came in one chunk");
    Ok(data)
}

async fn copy_round_trips_100k_rows_in_text_and_binary(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    for table in ["text_rows", "binary_rows"] {
        query(format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, \
             flag BOOLEAN NOT NULL)"
        ))
        .execute(&engine)
        .await?;
    }
    let data = text_rows();
    let mut conn = engine.acquire().await?;

    // Text, in chunks that cut rows (and characters) anywhere.
    copying!(conn, |c| {
        let mut copy = c
            .copy_in("COPY text_rows (id, name, score, flag) FROM STDIN")
            .await?;
        let bytes = data.as_bytes();
        let mut at = 0;
        let mut step = 1;
        while at < bytes.len() {
            let end = (at + step).min(bytes.len());
            copy.send(&bytes[at..end]).await?;
            at = end;
            step = step * 7 % 65_521 + 1;
        }
        assert_eq!(copy.finish().await?, ROWS as u64);
    });
    let out = copying!(conn, |c| copy_out_text(c, "text_rows").await?);
    assert!(out == data.as_bytes(), "text COPY did not round-trip");

    // Binary, typed, inside a transaction.
    let mut tx = conn.begin().await?;
    let mut rows = tx
        .copy_in_rows("binary_rows", &["id", "name", "score", "flag"])
        .await?;
    for id in 0..ROWS {
        rows.write(&typed_row(id)).await?;
    }
    assert_eq!(rows.finish().await?, ROWS as u64);
    tx.commit().await?;
    let out = copying!(conn, |c| copy_out_text(c, "binary_rows").await?);
    assert!(out == data.as_bytes(), "binary COPY did not round-trip");

    // And back through a query, value for value.
    let back: Vec<(i64, Option<String>, Option<f64>, bool)> =
        query_as("SELECT id, name, score, flag FROM binary_rows ORDER BY id")
            .fetch_all(&mut conn)
            .await?;
    assert_eq!(back.len(), ROWS as usize);
    for (id, row) in back.into_iter().enumerate() {
        assert_eq!(row, typed_row(id as i64));
    }
    // CSV too.
    let csv = copying!(conn, |c| {
        let mut out = c
            .copy_out("COPY (SELECT id, name FROM binary_rows WHERE id < 3 ORDER BY id) TO STDOUT (FORMAT csv)")
            .await?;
        let mut csv = Vec::new();
        while let Some(chunk) = out.next().await {
            csv.extend_from_slice(&chunk?);
        }
        csv
    });
    assert_eq!(csv, b"0,name 0\n1,tab\there 1\n2,\"line\nbreak \\ 2\"\n");
    Ok(())
}

async fn a_dropped_copy_leaves_no_rows_and_a_working_connection(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=2");
    query("CREATE TABLE d (id BIGINT, name TEXT)")
        .execute(&engine)
        .await?;
    let rows = |n: i64| -> String { (0..n).map(|i| format!("{i}\tx{i}\n")).collect() };
    let count = async |engine: &Engine| -> Result<i64, Error> {
        query_scalar("SELECT count(*) FROM d")
            .fetch_one(engine)
            .await
    };
    for round in 0..12_u32 {
        let mut conn = engine.acquire().await?;
        match round % 4 {
            // Text COPY dropped after some data, outside a transaction.
            0 if pgbouncer() => {
                // Refused outside a transaction; inside one, which the drop then aborts.
                refused_behind_pgbouncer(conn.copy_in("COPY d FROM STDIN").await);
                let mut tx = conn.begin().await?;
                let mut copy = tx.copy_in("COPY d FROM STDIN").await?;
                copy.send(rows(1000)).await?;
                drop(copy);
                let e = tx.commit().await.unwrap_err();
                assert_eq!(e.code(), Some("25P02"), "{e:?}");
            }
            0 => {
                let mut copy = conn.copy_in("COPY d FROM STDIN").await?;
                copy.send(rows(1000)).await?;
                drop(copy);
            }
            // Binary COPY dropped inside a transaction, which then cannot commit.
            1 => {
                let mut tx = conn.begin().await?;
                query("INSERT INTO d VALUES (-1, 'before')")
                    .execute(&mut tx)
                    .await?;
                let mut copy = tx.copy_in_rows("d", &["id", "name"]).await?;
                for i in 0..5000_i64 {
                    copy.write((i, "y")).await?;
                }
                drop(copy);
                let e = tx.commit().await.unwrap_err();
                assert_eq!(e.code(), Some("25P02"), "{e:?}");
            }
            // A send cut short by a timeout.
            2 => {
                let mut tx = conn.begin().await?;
                let mut copy = tx.copy_in("COPY d FROM STDIN").await?;
                let big = rows(200_000);
                let _ = with_timeout(Duration::from_micros(300), copy.send(&big)).await;
                drop(copy);
                drop(tx);
            }
            // A COPY OUT dropped after its first chunk.
            _ => {
                conn.execute(
                    "INSERT INTO d SELECT g, 'z' FROM generate_series(1, 20000) g",
                    (),
                )
                .await?;
                copying!(conn, |c| {
                    let mut out = c.copy_out("COPY d TO STDOUT").await?;
                    assert!(out.next().await.is_some());
                    drop(out);
                });
                conn.execute("DELETE FROM d", ()).await?;
            }
        }
        // The same connection goes on, outside any transaction.
        let one: i64 = query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        assert_eq!(one, 1, "round {round}");
        assert!(!conn.in_transaction());
        drop(conn);
        assert_eq!(
            count(&engine).await?,
            0,
            "round {round}: rows of an aborted COPY"
        );
    }
    anysql_conformance::assert_pool_settles(&engine).await;
    assert_eq!(db.idle_in_transaction().await?, 0);
    Ok(())
}

async fn copy_errors_are_clear_and_the_connection_goes_on(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    query("CREATE TABLE e (id BIGINT PRIMARY KEY, n INT4)")
        .execute(&engine)
        .await?;
    let mut conn = engine.acquire().await?;
    // Bad data: the server's error, at finish (or at a later send), and no row.
    {
        let mut tx = None;
        let c: &mut Connection = if pgbouncer() {
            refused_behind_pgbouncer(conn.copy_in("COPY e FROM STDIN").await);
            &mut *tx.insert(conn.begin().await?)
        } else {
            &mut conn
        };
        let mut copy = c.copy_in("COPY e FROM STDIN").await?;
        copy.send("1\t1\nnot a number\t2\n").await?;
        let e = copy.finish().await.unwrap_err();
        assert_eq!(e.code(), Some("22P02"), "{e:?}");
        drop(tx);
    }
    // A duplicate key inside a transaction fails the transaction.
    let mut tx = conn.begin().await?;
    let mut rows = tx.copy_in_rows("e", &["id", "n"]).await?;
    rows.write((1_i64, 1)).await?;
    rows.write((1_i64, 2)).await?;
    let e = rows.finish().await.unwrap_err();
    assert_eq!(e.code(), Some("23505"), "{e:?}");
    let e = tx.commit().await.unwrap_err();
    assert_eq!(e.code(), Some("25P02"), "{e:?}");
    // Rows of the wrong shape or type.
    {
        let mut tx = None;
        let c: &mut Connection = if pgbouncer() {
            refused_behind_pgbouncer(conn.copy_in_rows("e", &["id", "n"]).await);
            &mut *tx.insert(conn.begin().await?)
        } else {
            &mut conn
        };
        let mut rows = c.copy_in_rows("e", &["id", "n"]).await?;
        let e = rows.write((1_i64,)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Parameter, "{e}");
        rows.write((2_i64, 2)).await?;
        let e = rows.write((3_i64, 70_000_i64 * 70_000)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Parameter, "{e}");
        let e = rows.write((4_i64, 4)).await.unwrap_err();
        assert!(e.to_string().contains("already failed"), "{e}");
        drop(rows);
        drop(tx);
    }
    // The same inside a transaction: the aborted COPY aborts it, and its commit says so.
    let mut tx = conn.begin().await?;
    query("INSERT INTO e VALUES (10, 10)")
        .execute(&mut tx)
        .await?;
    let mut rows = tx.copy_in_rows("e", &["id", "n"]).await?;
    rows.write((11_i64, 11)).await?;
    let e = rows.write((12_i64, "twelve")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Parameter, "{e}");
    drop(rows);
    let e = tx.commit().await.unwrap_err();
    assert_eq!(e.code(), Some("25P02"), "{e:?}");
    // Wrong statements and names are refused before anything is sent.
    for sql in [
        "COPY e TO STDOUT",
        "SELECT 1",
        "COPY e FROM STDIN; SELECT 1",
    ] {
        let e = conn.copy_in(sql).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidStatement, "{sql}: {e}");
    }
    let e = conn.copy_out("COPY e FROM STDIN").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidStatement, "{e}");
    let e = conn.copy_in_rows("e", &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Parameter, "{e}");
    for (table, column, code) in [("no_such_table", "id", "42P01"), ("e", "nope", "42703")] {
        let e = if pgbouncer() {
            refused_behind_pgbouncer(conn.copy_in_rows(table, &[column]).await);
            let mut tx = conn.begin().await?;
            let e = tx.copy_in_rows(table, &[column]).await.err();
            drop(tx);
            e
        } else {
            conn.copy_in_rows(table, &[column]).await.err()
        };
        let e = e.expect("an error");
        assert_eq!(e.code(), Some(code), "{e:?}");
    }
    // Nothing was kept, and the connection works.
    let n: i64 = query_scalar("SELECT count(*) FROM e")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(n, 0);
    Ok(())
}

/// The notice records the test logger caught: level and text.
fn caught() -> &'static Mutex<Vec<(log::Level, String)>> {
    static CAUGHT: OnceLock<Mutex<Vec<(log::Level, String)>>> = OnceLock::new();
    CAUGHT.get_or_init(Mutex::default)
}

struct NoticeLogger;

impl log::Log for NoticeLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == anysql::postgres::NOTICE_TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            caught()
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

async fn notices_become_log_records_with_their_sqlstate(db: TestDb) -> Result<(), Error> {
    static LOGGER: NoticeLogger = NoticeLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    let engine = db.engine_with("max_size=1");
    let tag = anysql_conformance::unique_name("notice");
    let body = format!(
        "DO $$ BEGIN RAISE NOTICE 'hello {tag}'; \
         RAISE WARNING 'careful {tag}' USING ERRCODE = '01007', HINT = 'look'; END $$"
    );
    // Through a pooled connection, and through the engine's shared one.
    let mut conn = engine.acquire().await?;
    conn.execute(&body, ()).await?;
    drop(conn);
    engine.execute(&body, ()).await?;
    let mut found = Vec::new();
    for _ in 0..100 {
        found = caught()
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.contains(&tag))
            .cloned()
            .collect();
        if found.len() >= 4 {
            break;
        }
        anysql_conformance::sleep(Duration::from_millis(20)).await;
    }
    let expected = [
        (log::Level::Info, format!("NOTICE 00000: hello {tag}")),
        (
            log::Level::Warn,
            format!("WARNING 01007: careful {tag}; hint: look"),
        ),
    ];
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(found[..2], expected);
    assert_eq!(found[2..], expected);
    Ok(())
}
