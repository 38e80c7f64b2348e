//! The cancellation torture test: thousands of operations, each cut short by a timeout of seeded
//! random length, on every runtime × driver cell. Afterwards the pool must be whole, every
//! connection must answer correctly, no session may be left inside a transaction, no money may be
//! created or destroyed, and no write reported as done may be missing.
//!
//! `ANYSQL_TORTURE_OPS` (default 2000) and `ANYSQL_TORTURE_SEED` (default: random, printed) set the
//! size and the seed; `cargo xtask torture --ops 100000` runs a large one on every cell.
//!
//! The mix: point queries, streams dropped part-way, transfers with committed and with
//! rolled-back savepoints, acknowledged inserts, transfers through `engine.transaction`, savepoint
//! ends dropped right after their first poll, transactions opened with plain SQL and never ended,
//! acquires from an engine that health-checks every connection, and (PostgreSQL) COPY through
//! `execute`, and COPY through its own API: typed binary rows inside a transfer, text data in
//! chunks, a COPY OUT dropped part-way, and a COPY dropped on purpose inside a transaction. A
//! COPY's rows are all there or none are.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anysql::prelude::*;
use anysql_conformance::{spawn, with_timeout, TestDb};
use futures_lite::StreamExt;

const ACCOUNTS: i64 = 16;
const START_BALANCE: i64 = 1_000;
const WORKERS: u64 = 8;

#[derive(Debug, Default)]
struct Counts {
    operations: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    retryable_errors: AtomicU64,
}

#[test]
fn cancellation_torture() {
    anysql_conformance::run(torture);
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn torture(db: TestDb) -> Result<(), Error> {
    let ops = env_u64("ANYSQL_TORTURE_OPS").unwrap_or(2000);
    let seed = env_u64("ANYSQL_TORTURE_SEED").unwrap_or_else(|| fastrand::u64(..));
    let started = Instant::now();
    let engine = db.engine_with("max_size=4&acquire_timeout=30s");
    // A second engine that health-checks every connection it hands out, so that acquires are
    // dropped during health checks too.
    let checked = db.engine_with("max_size=2&acquire_timeout=30s&health_check_after=0s");
    query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)")
        .execute(&engine)
        .await?;
    query("CREATE TABLE journal (id BIGINT PRIMARY KEY, worker BIGINT NOT NULL)")
        .execute(&engine)
        .await?;
    query("CREATE TABLE copied (batch BIGINT NOT NULL, n INTEGER NOT NULL)")
        .execute(&engine)
        .await?;
    let mut conn = engine.acquire().await?;
    query("INSERT INTO accounts (id, balance) VALUES ($1, $2)")
        .execute_many(&mut conn, (0..ACCOUNTS).map(|id| (id, START_BALANCE)))
        .await?;
    drop(conn);

    let counts = Arc::new(Counts::default());
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let engine = engine.clone();
        let checked = checked.clone();
        let counts = Arc::clone(&counts);
        let acknowledged = Arc::clone(&acknowledged);
        let postgres = db.is_postgres();
        let share = ops / WORKERS + u64::from(worker < ops % WORKERS);
        workers.push(spawn(async move {
            let mut rng =
                fastrand::Rng::with_seed(seed ^ (worker.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            for i in 0..share {
                let op = rng.u8(..OPERATIONS);
                // A third of the operations get room to finish; the rest are cut at a random point.
                let budget = if rng.u8(..3) == 0 {
                    Duration::from_secs(30)
                } else {
                    Duration::from_micros(rng.u64(..3000))
                };
                let journal_id = (worker << 40) | i;
                let from = rng.i64(0..ACCOUNTS);
                let to = (from + rng.i64(1..ACCOUNTS)) % ACCOUNTS;
                let amount = rng.i64(1..50);
                let take = rng.usize(..40);
                let variant = rng.u8(..4);
                counts.operations.fetch_add(1, Ordering::Relaxed);
                let outcome = with_timeout(
                    budget,
                    operation(
                        &engine,
                        &checked,
                        op,
                        variant,
                        postgres,
                        journal_id,
                        worker,
                        from,
                        to,
                        amount,
                        take,
                        &acknowledged,
                    ),
                )
                .await;
                match outcome {
                    None => {
                        counts.cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(())) => {
                        counts.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) if e.is_retryable() => {
                        counts.retryable_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) => panic!("operation {op} failed: {e} ({e:?})"),
                }
            }
        }));
    }
    for worker in workers {
        worker.await;
    }

    // Afterwards: the pool is whole once background resets finish.
    let mut settled = false;
    for _ in 0..1000 {
        if engine.status().in_use == 0 {
            settled = true;
            break;
        }
        anysql_conformance::sleep(Duration::from_millis(10)).await;
    }
    let status = engine.status();
    assert!(settled, "connections leaked: {status:?}");
    for _ in 0..1000 {
        if checked.status().in_use == 0 {
            break;
        }
        anysql_conformance::sleep(Duration::from_millis(10)).await;
    }
    let checked_status = checked.status();
    assert_eq!(
        checked_status.in_use, 0,
        "connections leaked: {checked_status:?}"
    );
    assert_eq!(
        checked_status.size, checked_status.idle,
        "the pool's count drifted from its connections: {checked_status:?}"
    );
    assert!(checked_status.size <= 2, "{checked_status:?}");
    let mut conn = checked.acquire().await?;
    assert_eq!(
        query_scalar::<i64>("SELECT $1 * 3")
            .bind(5)
            .fetch_one(&mut conn)
            .await?,
        15
    );
    drop(conn);
    // Every connection the pool holds answers correctly and is outside any transaction.
    let mut held = Vec::new();
    for i in 0..4_i64 {
        let mut conn = engine.acquire().await?;
        assert_eq!(
            query_scalar::<i64>("SELECT $1 * 2")
                .bind(i)
                .fetch_one(&mut conn)
                .await?,
            i * 2
        );
        assert!(!conn.in_transaction());
        let tx = conn.begin().await?;
        tx.commit().await?;
        held.push(conn);
    }
    drop(held);
    let idle_in_transaction = db.idle_in_transaction().await?;
    let total: i64 = query_scalar("SELECT sum(balance) FROM accounts")
        .fetch_one(&engine)
        .await?;
    let stored: BTreeSet<i64> = query_as::<(i64,)>("SELECT id FROM journal")
        .fetch_all(&engine)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost = acknowledged.difference(&stored).count();
    // Every COPY is whole or absent.
    let partial: i64 = query_scalar(
        "SELECT count(*) FROM (SELECT batch FROM copied GROUP BY batch HAVING count(*) <> $1) AS p",
    )
    .bind(COPY_ROWS)
    .fetch_one(&engine)
    .await?;
    let copies: i64 = query_scalar("SELECT count(DISTINCT batch) FROM copied")
        .fetch_one(&engine)
        .await?;
    let leaked = engine.status().in_use;
    println!(
        "torture {}: seed={seed} operations={} completed={} cancelled={} retryable_errors={} \
         leaked_connections={leaked} idle_in_transaction={idle_in_transaction} lost_rows={lost} \
         copies={copies} partial_copies={partial} balance_total={total} seconds={:.1}",
        anysql_conformance::cell_name(),
        counts.operations.load(Ordering::Relaxed),
        counts.completed.load(Ordering::Relaxed),
        counts.cancelled.load(Ordering::Relaxed),
        counts.retryable_errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(leaked, 0);
    assert_eq!(idle_in_transaction, 0, "sessions left idle in transaction");
    assert_eq!(
        total,
        ACCOUNTS * START_BALANCE,
        "money was created or destroyed (seed {seed})"
    );
    assert_eq!(lost, 0, "writes acknowledged but missing (seed {seed})");
    assert_eq!(partial, 0, "COPYs left partly applied (seed {seed})");
    if db.is_postgres() && ops >= 1000 {
        assert!(copies > 0, "no COPY went through (seed {seed})");
    }
    assert!(
        counts.cancelled.load(Ordering::Relaxed) > 0,
        "the test cancelled nothing"
    );
    Ok(())
}

/// The number of kinds of operation in the mix.
const OPERATIONS: u8 = 11;

/// The rows of each COPY into `copied`.
const COPY_ROWS: i64 = 20;

#[allow(clippy::too_many_arguments)] // one flat list of the random choices keeps the caller readable
async fn operation(
    engine: &Engine,
    checked: &Engine,
    op: u8,
    variant: u8,
    postgres: bool,
    journal_id: u64,
    worker: u64,
    from: i64,
    to: i64,
    amount: i64,
    take: usize,
    acknowledged: &Mutex<BTreeSet<i64>>,
) -> Result<(), Error> {
    let journal_id = journal_id as i64;
    match op {
        // A point query.
        0 => {
            let balance: i64 = query_scalar("SELECT balance FROM accounts WHERE id = $1")
                .bind(from)
                .fetch_one(engine)
                .await?;
            assert!(balance > -1_000_000);
        }
        // A stream, dropped part-way or read to the end.
        1 => {
            let mut conn = engine.acquire().await?;
            let sql = if postgres {
                "SELECT g FROM generate_series(1, 200) AS g"
            } else {
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200) SELECT n FROM s"
            };
            let mut rows = query(sql).fetch(&mut conn);
            let mut seen = 0;
            while let Some(row) = rows.next().await {
                let n: i64 = row?.get(0)?;
                seen += 1;
                assert_eq!(n, seen);
                if seen as usize == take {
                    break;
                }
            }
        }
        // A transfer with a nested savepoint, committed.
        2 => {
            let mut tx = engine.begin().await?;
            query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                .bind(amount)
                .bind(from)
                .execute(&mut tx)
                .await?;
            let mut inner = tx.begin().await?;
            query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                .bind(amount)
                .bind(to)
                .execute(&mut inner)
                .await?;
            inner.commit().await?;
            tx.commit().await?;
        }
        // A transfer whose savepoint is rolled back, then the outer transaction rolled back too.
        3 => {
            let mut tx = engine.begin().await?;
            query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                .bind(amount)
                .bind(from)
                .execute(&mut tx)
                .await?;
            let mut inner = tx.begin().await?;
            query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                .bind(amount * 2)
                .bind(to)
                .execute(&mut inner)
                .await?;
            inner.rollback().await?;
            tx.rollback().await?;
        }
        // A write acknowledged to the caller: it must be there at the end.
        4 => {
            query("INSERT INTO journal (id, worker) VALUES ($1, $2)")
                .bind(journal_id)
                .bind(worker as i64)
                .execute(engine)
                .await?;
            acknowledged.lock().unwrap().insert(journal_id);
        }
        // A transfer whose savepoint's commit or rollback is dropped right after its first poll:
        // the transaction then goes on (the savepoint was rolled back) or refuses everything
        // (its state was lost, and all of it was rolled back), but never commits half.
        6 => {
            let mut tx = engine.begin().await?;
            query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                .bind(amount)
                .bind(from)
                .execute(&mut tx)
                .await?;
            let kept = {
                let mut inner = tx.begin().await?;
                query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                    .bind(amount)
                    .bind(to)
                    .execute(&mut inner)
                    .await?;
                if variant.is_multiple_of(2) {
                    matches!(
                        futures_lite::future::poll_once(inner.commit()).await,
                        Some(Ok(()))
                    )
                } else {
                    let _ = futures_lite::future::poll_once(inner.rollback()).await;
                    false
                }
            };
            if !kept {
                let credit = query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                    .bind(amount)
                    .bind(to)
                    .execute(&mut tx)
                    .await;
                match credit {
                    Ok(_) => {}
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(_) => {
                        let again = query("SELECT 1").execute(&mut tx).await.unwrap_err();
                        assert_eq!(again.kind(), ErrorKind::Closed, "{again}");
                        assert!(tx.commit().await.is_err(), "a lost transaction committed");
                        return Ok(());
                    }
                }
            }
            tx.commit().await?;
        }
        // Transaction control in plain SQL, never ended: the pool must roll it back before anyone
        // else gets the connection (the debit must never be committed).
        7 => {
            let mut conn = engine.acquire().await?;
            let begin = match (postgres, variant) {
                (_, 0) => "BEGIN",
                (true, _) => "START TRANSACTION",
                (false, 1) => "SAVEPOINT raw",
                (false, _) => "BEGIN IMMEDIATE",
            };
            query(begin).execute(&mut conn).await?;
            query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                .bind(amount)
                .bind(from)
                .execute(&mut conn)
                .await?;
        }
        // An acquire from an engine that health-checks every connection first.
        8 => {
            let mut conn = checked.acquire().await?;
            let n: i64 = query_scalar("SELECT $1 + 1")
                .bind(from)
                .fetch_one(&mut conn)
                .await?;
            assert_eq!(n, from + 1);
        }
        // COPY through `execute`, which PostgreSQL cannot run there: a clear error, and no other
        // operation may fail for it. (SQLite has no COPY: a point query instead.)
        9 => {
            if postgres {
                let sql = if variant.is_multiple_of(2) {
                    "COPY accounts FROM STDIN"
                } else {
                    "COPY accounts TO STDOUT"
                };
                let err = query(sql).execute(engine).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidStatement, "{err}");
            } else {
                let balance: i64 = query_scalar("SELECT balance FROM accounts WHERE id = $1")
                    .bind(to)
                    .fetch_one(checked)
                    .await?;
                assert!(balance > -1_000_000);
            }
        }
        // COPY through its own API (PostgreSQL; SQLite has none: a point query instead).
        10 if postgres => {
            copy_operation(
                engine,
                variant,
                journal_id,
                worker,
                from,
                to,
                amount,
                take,
                acknowledged,
            )
            .await?
        }
        10 => {
            let balance: i64 = query_scalar("SELECT balance FROM accounts WHERE id = $1")
                .bind(from)
                .fetch_one(engine)
                .await?;
            assert!(balance > -1_000_000);
        }
        // A transfer through the transaction closure, with its own journal entry.
        _ => {
            engine
                .transaction(async move |tx| {
                    query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                        .bind(amount)
                        .bind(from)
                        .execute(&mut *tx)
                        .await?;
                    query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                        .bind(amount)
                        .bind(to)
                        .execute(&mut *tx)
                        .await?;
                    query("INSERT INTO journal (id, worker) VALUES ($1, $2)")
                        .bind(journal_id)
                        .bind(worker as i64)
                        .execute(&mut *tx)
                        .await?;
                    Ok::<_, Error>(())
                })
                .await?;
            acknowledged.lock().unwrap().insert(journal_id);
        }
    }
    Ok(())
}

/// Operation 10 on PostgreSQL: a COPY, in one of four ways.
#[allow(clippy::too_many_arguments)] // the operation's share of the random choices
async fn copy_operation(
    engine: &Engine,
    variant: u8,
    journal_id: i64,
    worker: u64,
    from: i64,
    to: i64,
    amount: i64,
    take: usize,
    acknowledged: &Mutex<BTreeSet<i64>>,
) -> Result<(), Error> {
    let transfer = async |tx: &mut Connection, id: i64, delta: i64| {
        query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
            .bind(delta)
            .bind(id)
            .execute(tx)
            .await
    };
    match variant {
        // A transfer with typed binary COPYs inside: the journal entry and a batch of rows.
        0 => {
            let mut tx = engine.begin().await?;
            transfer(&mut tx, from, -amount).await?;
            let mut rows = tx.copy_in_rows("copied", &["batch", "n"]).await?;
            for n in 0..COPY_ROWS {
                rows.write(&(journal_id, n)).await?;
            }
            assert_eq!(rows.finish().await?, COPY_ROWS as u64);
            let mut entry = tx.copy_in_rows("journal", &["id", "worker"]).await?;
            entry.write((journal_id, worker as i64)).await?;
            entry.finish().await?;
            transfer(&mut tx, to, amount).await?;
            tx.commit().await?;
            acknowledged.lock().unwrap().insert(journal_id);
        }
        // Text data in chunks that cut rows, outside a transaction (behind PgBouncer, where a
        // COPY must run in one, inside one).
        1 => {
            let text_copy = async |c: &mut Connection| -> Result<(), Error> {
                let data: String = (0..COPY_ROWS)
                    .map(|n| format!("{journal_id}\t{n}\n"))
                    .collect();
                let mut copy = c.copy_in("COPY copied (batch, n) FROM STDIN").await?;
                let cut = take.min(data.len());
                copy.send(&data.as_bytes()[..cut]).await?;
                copy.send(&data.as_bytes()[cut..]).await?;
                assert_eq!(copy.finish().await?, COPY_ROWS as u64);
                Ok(())
            };
            if anysql_conformance::pgbouncer_mode() {
                let mut tx = engine.begin().await?;
                text_copy(&mut tx).await?;
                tx.commit().await?;
            } else {
                text_copy(&mut engine.acquire().await?).await?;
            }
        }
        // A COPY OUT read part-way.
        2 => {
            let read_part = async |c: &mut Connection| -> Result<(), Error> {
                let mut out = c.copy_out("COPY accounts TO STDOUT").await?;
                let mut chunks = 0;
                while let Some(chunk) = out.next().await {
                    assert!(!chunk?.is_empty());
                    chunks += 1;
                    if chunks == take {
                        break;
                    }
                }
                Ok(())
            };
            if anysql_conformance::pgbouncer_mode() {
                let mut tx = engine.begin().await?;
                read_part(&mut tx).await?;
                tx.commit().await?;
            } else {
                read_part(&mut engine.acquire().await?).await?;
            }
        }
        // A COPY dropped half-way inside a transfer: the transaction must not commit.
        _ => {
            let mut tx = engine.begin().await?;
            transfer(&mut tx, from, -amount).await?;
            let mut rows = tx.copy_in_rows("copied", &["batch", "n"]).await?;
            for n in 0..COPY_ROWS / 2 {
                rows.write((journal_id, n)).await?;
            }
            drop(rows);
            let credit = transfer(&mut tx, to, amount).await;
            assert!(credit.is_err(), "a statement ran after an aborted COPY");
            assert!(
                tx.commit().await.is_err(),
                "a transaction with an aborted COPY committed"
            );
        }
    }
    Ok(())
}
