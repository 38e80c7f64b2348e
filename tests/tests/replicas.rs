//! Multi-host URLs, read replicas and failover, against a throwaway primary and a streaming
//! standby that each test starts (and stops) itself through xtask's cluster code.
//!
//! `cargo xtask test-matrix` runs these in the replica cells (`… × postgres (replicas)`) and skips
//! them in the others. Without the server binaries they fail under `CI=true`, and are skipped
//! elsewhere.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anysql::prelude::*;
use anysql_conformance::{sleep, unique_name, TestDb};
use xtask::pg::cluster::ServerBinaries;
use xtask::pg::replica::ReplicaPair;

anysql_conformance::cell_tests!(
    replica_only,
    Some(anysql_conformance::DriverKind::Postgres),
    target_session_attrs_pick_the_primary_or_the_standby,
    reads_go_to_a_replica_and_fall_back_to_the_primary,
    a_read_only_refusal_discards_the_connection_of_a_read_write_engine,
    failover_to_the_promoted_standby_without_rebuilding_the_engine,
    a_failing_deferred_begin_is_reported_by_the_first_statement,
);

mod every_cell {
    #[test]
    fn a_reader_takes_replicas_in_turn_and_falls_back_to_the_primary() {
        anysql_conformance::run(
            super::a_reader_takes_replicas_in_turn_and_falls_back_to_the_primary,
        );
    }
}

/// The reader's routing on any database: the test's own database serves as its own replica.
async fn a_reader_takes_replicas_in_turn_and_falls_back_to_the_primary(
    db: TestDb,
) -> Result<(), Error> {
    let unreachable = if db.is_postgres() {
        format!(
            "postgres://postgres@127.0.0.1:{}/test?connect_timeout=2",
            closed_port()
        )
    } else {
        "sqlite:///nonexistent-anysql-dir/replica.db?mode=ro".to_owned()
    };
    let engine = db
        .builder()
        .replica(&db.url)
        .replica(&unreachable)
        .replica(&db.url)
        .max_size(2)
        .build()?;
    query("CREATE TABLE seen (n INTEGER)")
        .execute(&engine)
        .await?;
    query("INSERT INTO seen (n) VALUES (7)")
        .execute(&engine)
        .await?;
    let reader = engine.reader();
    for _ in 0..6 {
        let n: i64 = query_scalar("SELECT n FROM seen")
            .fetch_one(&reader)
            .await?;
        assert_eq!(n, 7);
    }
    let replicas = engine.replicas();
    assert_eq!(replicas.len(), 3);
    // Round robin over the two that work; the unreachable one is skipped, and says so.
    assert!(!replicas[1].is_available(), "{:?}", replicas[1]);
    assert_eq!(replicas[1].metrics().connections_created, 0);
    assert!(
        replicas[0].metrics().acquires >= 2,
        "{:?}",
        replicas[0].metrics()
    );
    assert!(
        replicas[2].metrics().acquires >= 2,
        "{:?}",
        replicas[2].metrics()
    );
    let primary_acquires = engine.metrics().acquires;
    // Streams and transactions through the reader also run on a replica.
    let mut rows = reader.fetch("SELECT n FROM seen", ());
    assert!(futures_lite::StreamExt::next(&mut rows)
        .await
        .transpose()?
        .is_some());
    drop(rows);
    let mut tx = reader.begin().await?;
    let n: i64 = query_scalar("SELECT n FROM seen")
        .fetch_one(&mut tx)
        .await?;
    assert_eq!(n, 7);
    tx.commit().await?;
    assert_eq!(
        engine.metrics().acquires,
        primary_acquires,
        "the primary served a read"
    );
    engine.close().await;
    assert!(replicas_closed(&engine));

    // With every replica unreachable, reads run on the primary.
    let engine = db.builder().replica(&unreachable).build()?;
    let n: i64 = engine
        .reader()
        .fetch_scalar("SELECT n FROM seen", ())
        .await?;
    assert_eq!(n, 7);
    assert!(engine.metrics().acquires >= 1);
    engine.close().await;
    Ok(())
}

fn replicas_closed(engine: &Engine) -> bool {
    engine.replicas().iter().all(|r| r.engine().is_closed())
}

/// Runs `work` on a thread of its own: the cluster commands block.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send_blocking(work());
    });
    rx.recv().await.expect("the blocking work panicked")
}

/// A primary and a standby of its own for one test, under `target/<name>`; `None` (the test is
/// skipped) without server binaries, which fails the test under CI.
async fn start_pair(name: &str) -> Result<Option<ReplicaPair>, Error> {
    let Some(binaries) = ServerBinaries::find() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)"
        );
        eprintln!("SKIPPED: no initdb/pg_ctl to start a primary and a standby");
        return Ok(None);
    };
    // A directory per test and runtime, so that parallel tests never wait on each other's lock.
    let runtime = std::env::var("ANYSQL_TEST_RUNTIME").unwrap_or_else(|_| "tokio".into());
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("anysql-pg-{name}-{runtime}"));
    let pair = blocking(move || ReplicaPair::start(binaries, &dir).map_err(|e| format!("{e:#}")))
        .await
        .map_err(|e| Error::connection(format!("the primary and standby did not start: {e}")))?;
    Ok(Some(pair))
}

/// Waits until `check` holds, for up to 30 seconds.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => last = "not yet".to_owned(),
            Err(e) => last = e.to_string(),
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s; last: {last}");
}

/// Waits until the standby has replayed a table the primary just created.
async fn wait_for_replication(standby_url: String, table: &str) -> Result<(), Error> {
    let standby = anysql::builder(&standby_url).max_size(1).build()?;
    let sql = format!("SELECT count(*) FROM pg_class WHERE relname = '{table}'");
    eventually("replication to the standby", || {
        let (standby, sql) = (&standby, &sql);
        async move { Ok(query_scalar::<i64>(sql).fetch_one(standby).await? == 1) }
    })
    .await?;
    standby.close().await;
    Ok(())
}

async fn in_recovery(engine: &Engine) -> Result<bool, Error> {
    engine.fetch_scalar("SELECT pg_is_in_recovery()", ()).await
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn target_session_attrs_pick_the_primary_or_the_standby(_db: TestDb) -> Result<(), Error> {
    let Some(pair) = start_pair("routing").await? else {
        return Ok(());
    };
    let (p, s) = (pair.primary.port(), pair.standby.port());
    // Each option and host order, and whether the server reached is the standby.
    let cases = [
        (
            pair.standby_first_url("target_session_attrs=read-write"),
            false,
        ),
        (
            pair.standby_first_url("target_session_attrs=primary"),
            false,
        ),
        (pair.standby_first_url("target_session_attrs=any"), true),
        (pair.hosts_url("target_session_attrs=any"), false),
        (pair.hosts_url("target_session_attrs=read-only"), true),
        (pair.hosts_url("target_session_attrs=standby"), true),
        (pair.hosts_url("target_session_attrs=prefer-standby"), true),
        // No standby among the hosts: prefer-standby takes the primary on its second pass.
        (
            format!("postgres://postgres@127.0.0.1:{p}/test?target_session_attrs=prefer-standby"),
            false,
        ),
        // libpq's key=value form.
        (
            format!(
                "host=127.0.0.1,127.0.0.1 port={s},{p} user=postgres dbname=test \
                 target_session_attrs=read-write"
            ),
            false,
        ),
    ];
    for (url, standby) in &cases {
        let engine = anysql::builder(url).max_size(1).build()?;
        assert_eq!(in_recovery(&engine).await?, *standby, "{url}");
        // Outside the shared connection too.
        let mut conn = engine.acquire().await?;
        let recovering: bool = query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await?;
        assert_eq!(recovering, *standby, "{url} (pooled connection)");
        drop(conn);
        engine.close().await;
    }

    // No host of the wanted kind: the error names every host tried and why each was refused.
    let dead = closed_port();
    let url = format!(
        "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{s}/test?target_session_attrs=read-write&connect_timeout=5"
    );
    let engine = anysql::builder(&url).max_size(1).build()?;
    let err = in_recovery(&engine).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{dead}"))
            && message.contains(&format!("127.0.0.1:{s}"))
            && message.contains("read-only"),
        "{message}"
    );
    engine.close().await;
    let url = format!("postgres://postgres@127.0.0.1:{p}/test?target_session_attrs=standby");
    let engine = anysql::builder(&url).max_size(1).build()?;
    let err = in_recovery(&engine).await.unwrap_err();
    assert!(err.to_string().contains("not a standby"), "{err}");
    engine.close().await;

    // load_balance_hosts=random spreads new connections over both hosts.
    let url = pair.hosts_url("load_balance_hosts=random");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let engine = anysql::builder(&url).max_size(1).build()?;
        let port: i32 = engine.fetch_scalar("SELECT inet_server_port()", ()).await?;
        seen.insert(port);
        engine.close().await;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen,
        [i32::from(p), i32::from(s)].into_iter().collect(),
        "40 connections with load_balance_hosts=random all went to one host"
    );
    Ok(())
}

async fn reads_go_to_a_replica_and_fall_back_to_the_primary(_db: TestDb) -> Result<(), Error> {
    let Some(pair) = start_pair("reader").await? else {
        return Ok(());
    };
    let table = unique_name("replicated");
    let engine = anysql::builder(&pair.primary.url())
        .replica(&pair.standby.url())
        .max_size(2)
        .build()?;
    query(format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
        .execute(&engine)
        .await?;
    query(format!("INSERT INTO {table} VALUES (1), (2)"))
        .execute(&engine)
        .await?;
    wait_for_replication(pair.standby.url(), &table).await?;

    // Reads through the reader run on the standby; the engine's own run on the primary.
    let reader = engine.reader();
    assert!(
        reader
            .fetch_scalar::<bool>("SELECT pg_is_in_recovery()", ())
            .await?
    );
    assert!(!in_recovery(&engine).await?);
    let on_replica: bool = query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&reader)
        .await?;
    assert!(on_replica);
    let count = format!("SELECT count(*) FROM {table}");
    eventually("the rows to reach the standby", || {
        let (reader, count) = (&reader, &count);
        async move { Ok(reader.fetch_scalar::<i64>(count, ()).await? == 2) }
    })
    .await?;
    // A write through the reader is the replica's to refuse; through the engine it works.
    let err = reader
        .execute(&format!("INSERT INTO {table} VALUES (3)"), ())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("25006"), "{err}");
    engine
        .execute(&format!("INSERT INTO {table} VALUES (3)"), ())
        .await?;
    // A transaction begun through the reader runs on the replica; the engine's on the primary.
    let mut tx = reader.begin().await?;
    let recovering: bool = query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut tx)
        .await?;
    assert!(recovering);
    tx.commit().await?;
    let mut tx = engine.begin().await?;
    let recovering: bool = query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut tx)
        .await?;
    assert!(!recovering);
    tx.rollback().await?;
    // Each replica's pool reports itself.
    let replicas = engine.replicas();
    assert_eq!(replicas.len(), 1);
    assert!(replicas[0].is_available());
    assert!(replicas[0].metrics().connections_created >= 1);
    assert!(replicas[0].metrics().acquires >= 4);
    assert!(replicas[0].url().contains(&pair.standby.port().to_string()));
    assert_eq!(replicas[0].status().in_use, 0);
    engine.close().await;

    // A replica that is down is skipped; the one that is up serves the reads.
    let dead = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    let engine = anysql::builder(&pair.primary.url())
        .replica(&dead)
        .replica(&pair.standby.url())
        .build()?;
    let reader = engine.reader();
    for _ in 0..4 {
        assert!(
            reader
                .fetch_scalar::<bool>("SELECT pg_is_in_recovery()", ())
                .await?
        );
    }
    assert!(!engine.replicas()[0].is_available());
    assert!(engine.replicas()[1].is_available());
    engine.close().await;

    // With no replica left, reads fall back to the primary.
    let engine = anysql::builder(&pair.primary.url())
        .replica(&dead)
        .build()?;
    assert!(
        !engine
            .reader()
            .fetch_scalar::<bool>("SELECT pg_is_in_recovery()", ())
            .await?
    );
    engine.close().await;

    // The URL form: replica_hosts names the replicas, which share the URL's other settings.
    let url = format!(
        "{}?replica_hosts=127.0.0.1:{}&max_size=3",
        pair.primary.url(),
        pair.standby.port()
    );
    let engine = anysql::builder(&url).build()?;
    assert_eq!(engine.replicas().len(), 1);
    assert_eq!(engine.replicas()[0].status().max_size, 3);
    assert!(
        engine
            .reader()
            .fetch_scalar::<bool>("SELECT pg_is_in_recovery()", ())
            .await?
    );
    assert!(!in_recovery(&engine).await?);
    engine.close().await;
    Ok(())
}

async fn a_read_only_refusal_discards_the_connection_of_a_read_write_engine(
    _db: TestDb,
) -> Result<(), Error> {
    let Some(pair) = start_pair("demoted").await? else {
        return Ok(());
    };
    let table = unique_name("demoted");
    let setup = anysql::builder(&pair.primary.url()).max_size(1).build()?;
    query(format!("CREATE TABLE {table} (id BIGINT)"))
        .execute(&setup)
        .await?;
    setup.close().await;
    for (attrs, discarded) in [("read-write", true), ("primary", true), ("any", false)] {
        let url = format!("{}?target_session_attrs={attrs}", pair.primary.url());
        let engine = anysql::builder(&url).max_size(1).build()?;
        let mut conn = engine.acquire().await?;
        // What a server demoted under an open connection answers: the session is read-only.
        query("SET default_transaction_read_only = on")
            .execute(&mut conn)
            .await?;
        let err = query(format!("INSERT INTO {table} VALUES (1)"))
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("25006"), "{err}");
        drop(conn);
        anysql_conformance::assert_pool_settles(&engine).await;
        assert_eq!(
            engine.metrics().connections_closed_broken,
            u64::from(discarded),
            "target_session_attrs={attrs}"
        );
        // A read-write engine's next connection is a fresh session, which can write.
        let mut conn = engine.acquire().await?;
        let result = query(format!("INSERT INTO {table} VALUES (1)"))
            .execute(&mut conn)
            .await;
        assert_eq!(
            result.is_ok(),
            discarded,
            "target_session_attrs={attrs}: {result:?}"
        );
        drop(conn);
        engine.close().await;
    }
    Ok(())
}

async fn failover_to_the_promoted_standby_without_rebuilding_the_engine(
    _db: TestDb,
) -> Result<(), Error> {
    let Some(pair) = start_pair("failover").await? else {
        return Ok(());
    };
    let (p, s) = (
        i32::from(pair.primary.port()),
        i32::from(pair.standby.port()),
    );
    let engine =
        anysql::builder(&pair.hosts_url("target_session_attrs=read-write&connect_timeout=5"))
            .max_size(3)
            .acquire_timeout(Duration::from_secs(10))
            .build()?;
    query("CREATE TABLE ledger (id BIGINT PRIMARY KEY)")
        .execute(&engine)
        .await?;
    engine.execute("INSERT INTO ledger VALUES (1)", ()).await?;
    // Pooled connections too, not only the shared one.
    let mut conn = engine.acquire().await?;
    query("INSERT INTO ledger VALUES (2)")
        .execute(&mut conn)
        .await?;
    drop(conn);
    let port: i32 = engine.fetch_scalar("SELECT inet_server_port()", ()).await?;
    assert_eq!(port, p, "a read-write engine first reaches the primary");
    wait_for_replication(pair.standby.url(), "ledger").await?;
    let standby = anysql::builder(&pair.standby.url()).max_size(1).build()?;
    eventually("both rows on the standby", || {
        let standby = &standby;
        async move {
            Ok(standby
                .fetch_scalar::<i64>("SELECT count(*) FROM ledger", ())
                .await?
                == 2)
        }
    })
    .await?;
    standby.close().await;

    // The primary goes away.
    let ReplicaPair {
        mut primary,
        mut standby,
    } = pair;
    blocking(move || primary.stop().map_err(|e| format!("{e:#}")))
        .await
        .map_err(|e| Error::connection(format!("stopping the primary failed: {e}")))?;
    // Until a standby is promoted, no host can take writes, and the error says why for each.
    let mut refused = None;
    for _ in 0..20 {
        match engine.execute("INSERT INTO ledger VALUES (3)", ()).await {
            Ok(_) => panic!("a write succeeded with no primary"),
            Err(e) if e.to_string().contains("read-only") => {
                refused = Some(e);
                break;
            }
            // The connections to the stopped primary fail once each.
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::Connection | ErrorKind::Closed),
                "{e:?}"
            ),
        }
    }
    let refused = refused.expect("the connect error names the read-only standby");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{p}")) && message.contains(&format!("127.0.0.1:{s}")),
        "{message}"
    );

    // The standby is promoted: the same engine finds it and writes again.
    let standby = blocking(move || {
        standby
            .promote()
            .map(|()| standby)
            .map_err(|e| format!("{e:#}"))
    })
    .await
    .map_err(|e| Error::connection(format!("promoting the standby failed: {e}")))?;
    let mut written = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if engine
            .execute("INSERT INTO ledger VALUES (3)", ())
            .await
            .is_ok()
        {
            written = true;
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(written, "no write succeeded within 30 s of the promotion");
    let port: i32 = engine.fetch_scalar("SELECT inet_server_port()", ()).await?;
    assert_eq!(port, s, "the writes now go to the promoted standby");
    let mut conn = engine.acquire().await?;
    query("INSERT INTO ledger VALUES (4)")
        .execute(&mut conn)
        .await?;
    let rows: i64 = query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(rows, 4, "the rows written before the failover survived it");
    drop(conn);
    engine.close().await;
    drop(standby);
    Ok(())
}

/// PostgreSQL sends a transaction's `BEGIN` with its first statement. On a standby,
/// `BEGIN ISOLATION LEVEL SERIALIZABLE` fails ("cannot use serializable mode in a hot standby"):
/// the first statement reports that error, and did not run (outside the transaction); the
/// transaction's later statements fail, its rollback succeeds, a commit reports the failure.
async fn a_failing_deferred_begin_is_reported_by_the_first_statement(
    _db: TestDb,
) -> Result<(), Error> {
    use anysql::{IsolationLevel, TransactionOptions};
    let Some(pair) = start_pair("deferred_begin").await? else {
        return Ok(());
    };
    let standby_url = format!(
        "postgres://postgres@127.0.0.1:{}/test?shared=false",
        pair.standby.port()
    );
    let serializable = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    let refused = |e: &Error| {
        e.to_string()
            .contains("cannot use serializable mode in a hot standby")
    };
    for options in ["", "&drive=spawned", "&pgbouncer=true"] {
        let url = format!("{standby_url}{options}");
        let engine = anysql::builder(&url).max_size(1).build()?;
        let observer = anysql::builder(&url).max_size(1).build()?;
        let mut conn = engine.acquire().await?;
        for first in ["query", "execute", "simple", "commit"] {
            let mut tx = conn.begin_with(serializable).await?;
            // A session-level advisory lock, which a standby grants: held afterwards only if the
            // statement ran.
            let error = match first {
                "query" => tx
                    .fetch_scalar::<String>("SELECT pg_advisory_lock($1)::text", (6001_i64,))
                    .await
                    .map(drop)
                    .unwrap_err(),
                "execute" => tx
                    .execute("SELECT pg_advisory_lock($1)", (6001_i64,))
                    .await
                    .map(drop)
                    .unwrap_err(),
                "simple" => tx
                    .execute("SELECT pg_advisory_lock(6001)", ())
                    .await
                    .map(drop)
                    .unwrap_err(),
                _ => {
                    let error = tx.commit().await.unwrap_err();
                    assert!(refused(&error), "{url}, {first}: {error}");
                    continue;
                }
            };
            assert!(refused(&error), "{url}, {first}: {error}");
            assert_eq!(error.code(), Some("0A000"), "{url}, {first}: {error}");
            let free: bool = observer
                .fetch_scalar("SELECT pg_try_advisory_lock($1)", (6001_i64,))
                .await?;
            assert!(free, "{url}, {first}: the first statement ran");
            observer
                .execute("SELECT pg_advisory_unlock_all()", ())
                .await?;
            // The transaction never started: its statements fail until it ends.
            let later = tx
                .fetch_scalar::<i64>("SELECT $1::int8", (1_i64,))
                .await
                .unwrap_err();
            assert_eq!(later.code(), Some("25P02"), "{url}, {first}: {later}");
            if first == "execute" {
                let error = tx.commit().await.unwrap_err();
                assert_eq!(error.code(), Some("25P02"), "{url}, {first}: {error}");
            } else {
                tx.rollback().await?;
            }
            // The connection goes on, outside any transaction.
            let one: i64 = conn.fetch_scalar("SELECT $1::int8", (1_i64,)).await?;
            assert_eq!(one, 1);
            assert!(!conn.in_transaction());
        }
        // Other levels work on a standby, and apply.
        let mut tx = conn
            .begin_with(TransactionOptions::new().isolation(IsolationLevel::RepeatableRead))
            .await?;
        let level: String = tx
            .fetch_scalar(
                "SELECT current_setting('transaction_isolation') || $1::text",
                ("",),
            )
            .await?;
        assert_eq!(level, "repeatable read");
        tx.commit().await?;
        drop(conn);
        engine.close().await;
        observer.close().await;
    }
    Ok(())
}
