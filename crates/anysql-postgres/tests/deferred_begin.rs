//! The deferred `BEGIN`: a transaction's `BEGIN` travels with its first statement. What the caller
//! sees must not change: the statement runs inside the transaction, a failing first statement
//! aborts it, options apply, dropped futures leave no unknown state. And the other end: a
//! pipeline's statements travel with the `COMMIT` (`Transaction::commit_with`). Through the engine, on tokio
//! (multi-thread), smol and async-std, in every drive mode and with unnamed statements, against a
//! live PostgreSQL (`ANYSQL_PG_URL`, or `postgres://root@127.0.0.1:5432/test`). Skipped when no
//! server answers, unless `CI=true`.

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anysql_core::{
    query, ConnectOptions, Connection, Engine, EngineBuilder, IsolationLevel, Pipeline,
    SharedRuntime, TransactionOptions, Value,
};
use anysql_postgres::{PgConnection, PostgresDriver};
use common::{on_every_runtime, unique, url_with};

/// Pools of one connection, so that every transaction meets the connection the last one left.
const SETUPS: [&str; 4] = [
    "max_size=1&shared=false",
    "max_size=1&shared=false&drive=spawned",
    "max_size=1&shared=false&busy_poll=0",
    "max_size=1&shared=false&pgbouncer=true",
];

fn engine(options: &str, runtime: &SharedRuntime) -> Engine {
    engine_at(&url_with(options), runtime)
}

fn engine_at(url: &str, runtime: &SharedRuntime) -> Engine {
    EngineBuilder::new(url)
        .driver(PostgresDriver)
        .shared_runtime(Arc::clone(runtime))
        .build()
        .unwrap()
}

async fn table(observer: &Engine, prefix: &str) -> String {
    let table = unique(prefix);
    observer
        .execute(
            &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, v int8 NOT NULL DEFAULT 0)"),
            (),
        )
        .await
        .unwrap();
    table
}

async fn count(observer: &Engine, table: &str) -> i64 {
    observer
        .fetch_scalar(&format!("SELECT count(*)::int8 FROM {table}"), ())
        .await
        .unwrap()
}

/// Whether the session is outside any transaction block, by the server's word: in autocommit
/// mode two statements get two transactions; and by the driver's.
async fn outside_transaction(conn: &mut Connection) -> bool {
    let xact = "SELECT pg_current_xact_id()::text";
    let first: String = conn.fetch_scalar(xact, ()).await.unwrap();
    let second: String = conn.fetch_scalar(xact, ()).await.unwrap();
    let pg = conn
        .ready_driver_connection::<PgConnection>()
        .await
        .unwrap()
        .unwrap();
    first != second && !anysql_core::DriverConnection::in_transaction(pg)
}

#[test]
fn the_first_statement_runs_inside_the_transaction() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_inside").await;
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();

            // Carried by an execute with parameters, then rolled back: nothing of it stays.
            let mut tx = conn.begin().await.unwrap();
            let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
            assert_eq!(tx.execute(&insert, (1,)).await.unwrap(), 1);
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 0, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");

            // Carried by a query: the second statement is in the same transaction.
            let mut tx = conn.begin().await.unwrap();
            let xact = "SELECT pg_current_xact_id()::text || $1::text";
            let first: String = tx.fetch_scalar(xact, ("",)).await.unwrap();
            tx.execute(&insert, (2,)).await.unwrap();
            let second: String = tx.fetch_scalar(xact, ("",)).await.unwrap();
            assert_eq!(first, second, "{setup}");
            assert_eq!(
                count(&observer, &table).await,
                0,
                "{setup}: not committed yet"
            );
            tx.commit().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // Carried by a streamed query.
            let mut tx = conn.begin().await.unwrap();
            {
                use futures_lite::StreamExt;
                let select = format!("SELECT id FROM {table} WHERE id > $1");
                let mut rows = tx.fetch(&select, (0,));
                let mut seen = 0;
                while let Some(row) = rows.next().await {
                    row.unwrap();
                    seen += 1;
                }
                assert_eq!(seen, 1);
            }
            tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), (2,))
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // A first statement without parameters (the simple protocol) gets the BEGIN first.
            let mut tx = conn.begin().await.unwrap();
            tx.execute(&format!("DELETE FROM {table}"), ())
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");

            // A savepoint as the first statement.
            let mut tx = conn.begin().await.unwrap();
            let mut savepoint = tx.begin().await.unwrap();
            savepoint.execute(&insert, (3,)).await.unwrap();
            savepoint.commit().await.unwrap();
            tx.execute(&insert, (4,)).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(count(&observer, &table).await, 3, "{setup}");

            // A batch as the first statement.
            let mut tx = conn.begin().await.unwrap();
            tx.execute_many(&insert, [(5,), (6,)]).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 3, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
            observer
                .execute(&format!("DELETE FROM {table}"), ())
                .await
                .unwrap();
        }
    });
}

#[test]
fn begin_then_commit_or_rollback_with_no_statement() {
    on_every_runtime(|rt| async move {
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for commit in [true, false, true] {
                let tx = conn.begin().await.unwrap();
                if commit {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
            // Dropped unused: nothing to roll back, and nothing left open.
            drop(conn.begin().await.unwrap());
            assert!(outside_transaction(&mut conn).await, "{setup}");
            drop(conn);
            let tx = engine.begin().await.unwrap();
            tx.commit().await.unwrap();
            drop(engine.begin().await.unwrap());
            let mut conn = engine.acquire().await.unwrap();
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

#[test]
fn a_failing_first_statement_leaves_the_transaction_aborted() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_aborted").await;
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        observer.execute(&insert, (1,)).await.unwrap();
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for commit in [false, true] {
                let mut tx = conn.begin().await.unwrap();
                // A duplicate key: the statement ran in the transaction, and failed.
                let error = tx.execute(&insert, (1,)).await.unwrap_err();
                assert_eq!(error.code(), Some("23505"), "{setup}: {error}");
                let error = tx.execute(&insert, (2,)).await.unwrap_err();
                assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                let error = tx
                    .fetch_scalar::<i64>("SELECT $1::int8", (1,))
                    .await
                    .unwrap_err();
                assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                if commit {
                    let error = tx.commit().await.unwrap_err();
                    assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
                } else {
                    tx.rollback().await.unwrap();
                }
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
            // A query failing as the first statement.
            let mut tx = conn.begin().await.unwrap();
            let error = tx
                .fetch_scalar::<i64>("SELECT 1 / $1::int8", (0,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("22012"), "{setup}: {error}");
            let error = tx.execute(&insert, (3,)).await.unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            tx.rollback().await.unwrap();
            // A first statement refused before anything is sent (a wrong parameter count) leaves
            // the transaction as it was: still to begin, and usable.
            let mut tx = conn.begin().await.unwrap();
            assert!(tx.execute(&insert, (3, 4)).await.is_err());
            tx.execute(&insert, (3,)).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 1, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

#[test]
fn transaction_options_still_apply() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_options").await;
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            let cases = [
                (TransactionOptions::new(), "read committed", "off", "off"),
                (
                    TransactionOptions::new().isolation(IsolationLevel::RepeatableRead),
                    "repeatable read",
                    "off",
                    "off",
                ),
                (
                    TransactionOptions::new()
                        .isolation(IsolationLevel::Serializable)
                        .read_only(true)
                        .deferrable(true),
                    "serializable",
                    "on",
                    "on",
                ),
            ];
            for (options, isolation, read_only, deferrable) in cases {
                // The first statement carries the BEGIN (a query with a parameter)...
                let mut tx = conn.begin_with(options).await.unwrap();
                let row = tx
                    .fetch_one(
                        "SELECT current_setting('transaction_isolation'), \
                         current_setting('transaction_read_only'), \
                         current_setting('transaction_deferrable'), $1::int8",
                        (1,),
                    )
                    .await
                    .unwrap();
                let got: (String, String, String) = (
                    row.get(0).unwrap(),
                    row.get(1).unwrap(),
                    row.get(2).unwrap(),
                );
                assert_eq!(
                    got,
                    (isolation.into(), read_only.into(), deferrable.into()),
                    "{setup}"
                );
                tx.commit().await.unwrap();
                // ... or comes first (SHOW, without parameters).
                let mut tx = conn.begin_with(options).await.unwrap();
                let shown: String = tx
                    .fetch_scalar("SHOW transaction_isolation", ())
                    .await
                    .unwrap();
                assert_eq!(shown, isolation, "{setup}");
                tx.rollback().await.unwrap();
            }
            // Read only: a write as the first statement is refused, and aborts the transaction.
            let mut tx = conn
                .begin_with(TransactionOptions::new().read_only(true))
                .await
                .unwrap();
            let error = tx
                .execute(&format!("INSERT INTO {table} (id) VALUES ($1)"), (1,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("25006"), "{setup}: {error}");
            let error = tx
                .fetch_scalar::<i64>("SELECT $1::int8", (1,))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            tx.rollback().await.unwrap();
            assert_eq!(count(&observer, &table).await, 0, "{setup}");
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

/// Polls `future` `polls` times (yielding in between), then drops it unfinished; `true` if it
/// finished first.
async fn poll_then_drop<F: Future>(future: F, polls: usize) -> bool {
    let mut future = pin!(future);
    for _ in 0..polls {
        if futures_lite::future::poll_once(future.as_mut())
            .await
            .is_some()
        {
            return true;
        }
        futures_lite::future::yield_now().await;
    }
    false
}

#[test]
fn a_dropped_first_statement_leaves_no_unknown_state() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "deferred_dropped").await;
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        let slow = format!("INSERT INTO {table} (id) SELECT $1 FROM pg_sleep(0.2)");
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for polls in [0, 1, 2, 3, 5, 8, 1000] {
                for sql in [&insert, &slow] {
                    // Dropped first statement, then the transaction is rolled back: whether the
                    // statement ran or not, it ran inside the transaction, so nothing stays.
                    let mut tx = conn.begin().await.unwrap();
                    poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    tx.execute(&insert, (2,)).await.unwrap();
                    tx.rollback().await.unwrap();
                    assert_eq!(count(&observer, &table).await, 0, "{setup}, {polls} polls");
                    assert!(outside_transaction(&mut conn).await, "{setup}");

                    // Dropped first statement, then the transaction handle too.
                    let mut tx = conn.begin().await.unwrap();
                    poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    drop(tx);
                    assert!(outside_transaction(&mut conn).await, "{setup}");
                    assert_eq!(count(&observer, &table).await, 0, "{setup}, {polls} polls");

                    // Dropped first statement, then a commit: the statement ran once or not
                    // at all, inside the transaction; the next statement is in it too.
                    let mut tx = conn.begin().await.unwrap();
                    let finished = poll_then_drop(tx.execute(sql, (1,)), polls).await;
                    tx.execute(&insert, (2,)).await.unwrap();
                    tx.commit().await.unwrap();
                    let n = count(&observer, &table).await;
                    assert!(n == 2 || (n == 1 && !finished), "{setup}: {n} rows");
                    observer
                        .execute(&format!("DELETE FROM {table}"), ())
                        .await
                        .unwrap();
                }
            }
            drop(conn);
            for polls in [0, 1, 2, 3, 5, 8, 1000] {
                // Dropped query with its connection: reset, not in a transaction.
                let mut tx = engine.begin().await.unwrap();
                poll_then_drop(tx.fetch_all("SELECT pg_sleep($1)", (0.2,)), polls).await;
                drop(tx);
                let mut conn = engine.acquire().await.unwrap();
                assert!(outside_transaction(&mut conn).await, "{setup}");
            }
        }
    });
}

#[test]
fn an_error_of_begin_itself_is_reported_by_begin_when_it_runs_at_once() {
    on_every_runtime(|rt| async move {
        for setup in SETUPS {
            let engine = engine(setup, &rt);
            let mut conn = engine.acquire().await.unwrap();
            // A transaction block opened and failed with SQL: the server refuses any BEGIN, and
            // the driver, which defers BEGIN only in an idle session, runs it at once.
            let _ = conn.execute("BEGIN; SELECT 1/0", ()).await.unwrap_err();
            let error = conn.begin().await.unwrap_err();
            assert_eq!(error.code(), Some("25P02"), "{setup}: {error}");
            conn.execute("ROLLBACK", ()).await.unwrap();
            let tx = conn.begin().await.unwrap();
            tx.commit().await.unwrap();
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
    });
}

/// A TCP relay in front of the server under test, on threads of its own: it forwards both ways
/// and counts the reads that bring the client's bytes. A request the client writes after the
/// reply to the one before is a read of its own, so `n` statements awaited one by one are at
/// least `n` reads; statements written together are one (they are small, and sent in one write).
struct Relay {
    url: String,
    client_reads: Arc<AtomicUsize>,
    syncs: Arc<AtomicUsize>,
}

impl Relay {
    /// A relay for `base_url()`, with `options` added to its URL, without TLS, so that it can
    /// read the client's messages.
    fn start(options: &str) -> Relay {
        let base = ConnectOptions::parse(&url_with(&format!("{options}&sslmode=disable"))).unwrap();
        let mut url = base.url().expect("a postgres:// URL").clone();
        let server = format!(
            "{}:{}",
            url.host_str().expect("a TCP host"),
            url.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let client_reads = Arc::new(AtomicUsize::new(0));
        let syncs = Arc::new(AtomicUsize::new(0));
        let counters = (Arc::clone(&client_reads), Arc::clone(&syncs));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&server) else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (client_in, upstream_out) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let counted = Counted {
                    reads: Arc::clone(&counters.0),
                    requests: ClientMessages::new(Arc::clone(&counters.1)),
                };
                std::thread::spawn(move || relay(client_in, upstream_out, Some(counted)));
                std::thread::spawn(move || relay(upstream, client, None));
            }
        });
        Relay {
            url: url.to_string(),
            client_reads,
            syncs,
        }
    }

    fn client_reads(&self) -> usize {
        self.client_reads.load(Ordering::SeqCst)
    }

    /// How many messages the client sent that the server answers with a ReadyForQuery (Sync,
    /// Query): the end of an implicit block each.
    fn syncs(&self) -> usize {
        self.syncs.load(Ordering::SeqCst)
    }
}

/// What the relay counts in the client's stream.
struct Counted {
    reads: Arc<AtomicUsize>,
    requests: ClientMessages,
}

/// Follows the client's messages: the untyped ones first (SSLRequest, GSSENCRequest, then the
/// StartupMessage: a length, then a code), then typed ones, counting Sync and Query.
struct ClientMessages {
    started: bool,
    header: Vec<u8>,
    body: usize,
    syncs: Arc<AtomicUsize>,
}

impl ClientMessages {
    fn new(syncs: Arc<AtomicUsize>) -> Self {
        ClientMessages {
            started: false,
            header: Vec::new(),
            body: 0,
            syncs,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body > 0 {
                let n = self.body.min(bytes.len());
                self.body -= n;
                bytes = &bytes[n..];
                continue;
            }
            let size = if self.started { 5 } else { 8 };
            let n = (size - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < size {
                break;
            }
            let header = std::mem::take(&mut self.header);
            if self.started {
                if matches!(header[0], b'S' | b'Q') {
                    self.syncs.fetch_add(1, Ordering::SeqCst);
                }
                let length = u32::from_be_bytes(header[1..5].try_into().unwrap());
                self.body = (length as usize).saturating_sub(4);
            } else {
                let length = u32::from_be_bytes(header[..4].try_into().unwrap());
                let code = u32::from_be_bytes(header[4..8].try_into().unwrap());
                // Protocol 3.0: the StartupMessage; the typed messages follow it.
                self.started = code == 196_608;
                self.body = (length as usize).saturating_sub(8);
            }
        }
    }
}

/// Copies `from` to `to` until either ends, counting what `counted` counts.
fn relay(mut from: TcpStream, mut to: TcpStream, mut counted: Option<Counted>) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if let Some(counted) = &mut counted {
            counted.reads.fetch_add(1, Ordering::SeqCst);
            counted.requests.feed(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A statement whose values cannot be encoded fails before it is sent, which leaves the
/// transaction healthy on the server: the pipeline's `COMMIT` (and a batch's) must then not be
/// sent, or the statements before it would be committed. Unnamed statements (PgBouncer mode),
/// where nothing checks the values before they are encoded: an array of mixed elements.
#[test]
fn a_statement_that_cannot_be_encoded_commits_nothing() {
    on_every_runtime(|rt| async move {
        let engine = engine("max_size=1&shared=false&pgbouncer=true", &rt);
        let table = unique("unencodable");
        engine
            .execute(
                &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, tags int8[])"),
                (),
            )
            .await
            .unwrap();
        let insert = format!("INSERT INTO {table} (id, tags) VALUES ($1, $2)");
        let mixed = || Value::Array(vec![Value::Int(1), Value::Text("x".into())]);
        let mut conn = engine.acquire().await.unwrap();
        let tx = conn.begin().await.unwrap();
        let error = tx
            .commit_with(Pipeline::from_iter([
                query(insert.as_str()).bind(1_i64).bind(vec![1_i64, 2]),
                query(insert.as_str()).bind(2_i64).bind(mixed()),
                query(insert.as_str()).bind(3_i64).bind(vec![3_i64]),
            ]))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("statement 2 of 3"), "{error}");
        assert!(outside_transaction(&mut conn).await);
        let error = query(insert.as_str())
            .execute_many(
                &mut conn,
                vec![
                    (Value::Int(4), Value::Array(vec![Value::Int(4)])),
                    (Value::Int(5), mixed()),
                    (Value::Int(6), Value::Array(vec![Value::Int(6)])),
                ],
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("element"), "{error}");
        assert!(outside_transaction(&mut conn).await);
        drop(conn);
        assert_eq!(count(&engine, &table).await, 0);
        engine
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
    });
}

/// A pipeline statement that fails in a block joined with the `COMMIT` (which the server then
/// skips) ends the transaction at once, as the `COMMIT` would have: its row locks are released
/// before the connection is used again, and only the failed statement's error is reported.
#[test]
fn a_failed_joined_pipeline_rolls_back_at_once() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "pipeline_fails").await;
        observer
            .execute(&format!("INSERT INTO {table} (id) VALUES (1), (2)"), ())
            .await
            .unwrap();
        let lock = format!("SELECT v FROM {table} WHERE id = $1 FOR UPDATE");
        let update = format!("UPDATE {table} SET v = v + 1 WHERE id = $1");
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        let other = engine("max_size=1&shared=false", &rt);
        for (k, setup) in SETUPS.into_iter().enumerate() {
            let relay = Relay::start(setup);
            let engine = engine_at(&relay.url, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for round in 0..3 {
                let mut tx = conn.begin().await.unwrap();
                let _: (i64,) = tx.fetch_one_as(&lock, (1_i64,)).await.unwrap();
                let syncs_before = relay.syncs();
                // Round 0 prepares and succeeds; then the insert meets a duplicate key.
                let id = if round == 0 { 10 + k as i64 } else { 2 };
                let result = tx
                    .commit_with(Pipeline::from_iter([
                        query(update.as_str()).bind(1_i64),
                        query(insert.as_str()).bind(id),
                        query(update.as_str()).bind(2_i64),
                    ]))
                    .await;
                if round == 0 {
                    assert_eq!(result.unwrap(), [1, 1, 1]);
                    continue;
                }
                let error = result.unwrap_err();
                assert!(error.is_unique_violation(), "{setup}: {error:?}");
                assert!(error.to_string().contains("statement 2 of 3"), "{error}");
                if !setup.contains("drive=spawned") {
                    // The block, then the ROLLBACK.
                    assert_eq!(relay.syncs() - syncs_before, 2, "{setup}");
                }
                // The row locked in the transaction is free, with `conn` still unused.
                let free: Result<(i64,), _> = other
                    .fetch_one_as(&format!("{lock} NOWAIT"), (1_i64,))
                    .await;
                assert!(free.is_ok(), "{setup}, round {round}: {free:?}");
            }
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
        // Only the round-0 pipelines took effect: per setup, 1 added to each row.
        let total: i64 = observer
            .fetch_scalar(&format!("SELECT sum(v)::int8 FROM {table}"), ())
            .await
            .unwrap();
        assert_eq!(total, 2 * SETUPS.len() as i64);
        observer
            .execute(&format!("DROP TABLE {table}"), ())
            .await
            .unwrap();
    });
}

#[test]
fn a_pipeline_travels_with_its_commit_in_one_write() {
    on_every_runtime(|rt| async move {
        let observer = engine("max_size=1&shared=false", &rt);
        let table = table(&observer, "pipeline_writes").await;
        let update = format!("UPDATE {table} SET v = v + $2 WHERE id = $1");
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        let select = format!("SELECT v FROM {table} WHERE id = $1");
        for (k, setup) in SETUPS.into_iter().enumerate() {
            let relay = Relay::start(setup);
            let engine = engine_at(&relay.url, &rt);
            let mut conn = engine.acquire().await.unwrap();
            for round in 0..3_i64 {
                let id = (k as i64) * 100 + round;
                let mut tx = conn.begin().await.unwrap();
                // The read that decides the writes carries the BEGIN.
                let _: Option<i64> = tx
                    .fetch_optional_as(&select, (id - 1,))
                    .await
                    .unwrap()
                    .map(|(v,)| v);
                let (before, syncs_before) = (relay.client_reads(), relay.syncs());
                let changed = tx
                    .commit_with(Pipeline::from_iter([
                        query(update.as_str()).bind(id - 1).bind(1),
                        query(insert.as_str()).bind(id),
                        query(update.as_str()).bind(id).bind(2),
                    ]))
                    .await
                    .unwrap();
                let reads = relay.client_reads() - before;
                let syncs = relay.syncs() - syncs_before;
                assert_eq!(changed, [u64::from(round > 0), 1, 1], "{setup}");
                // The first round prepares the statements, one at a time; then they are sent
                // with the COMMIT, where one by one they would take four writes, and in one
                // implicit block, with one Sync, which the server answers with one write, where
                // each with its own Sync would take four. (A connection driven by a task of its
                // own, on another thread, may write each request as it comes: there only the
                // outcome is checked.)
                if round > 0 && !setup.contains("drive=spawned") {
                    assert_eq!(reads, 1, "{setup}, round {round}");
                    assert_eq!(syncs, 1, "{setup}, round {round}");
                }
            }
            assert!(outside_transaction(&mut conn).await, "{setup}");
        }
        let total: i64 = observer
            .fetch_scalar(&format!("SELECT sum(v)::int8 FROM {table}"), ())
            .await
            .unwrap();
        // Per setup: round 0 adds 2; rounds 1 and 2 each add 1 to the row before and 2 to their own.
        assert_eq!(total, SETUPS.len() as i64 * (2 + 3 + 3));
        assert_eq!(count(&observer, &table).await, SETUPS.len() as i64 * 3);
    });
}
