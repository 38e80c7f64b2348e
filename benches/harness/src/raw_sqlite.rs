//! The SQLite physical limit: rusqlite, called synchronously on the calling thread (S5: one OS thread
//! per reader and writer). Also creates the SQLite data every implementation reads.
//!
//! Shared with the peers binary (through `#[path]`), which links its own rusqlite and SQLite.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use crate::common::{rows, Bench, Db, Figure, M1Args, RepResult, Sizes, Stopwatch, Workload};

/// One point select by primary key.
pub const SELECT_ONE: &str = "SELECT id, name, v FROM t WHERE id = ?1";
/// The whole table.
pub const SELECT_ALL: &str = "SELECT id, name, v FROM t";
/// One row into the insert table (S2, S3).
pub const INSERT: &str = "INSERT INTO t_ins (id, name, v) VALUES (?1, ?2, ?3)";
/// One row into the insert table with a fresh id (the S5 writer).
pub const INSERT_AUTO: &str = "INSERT INTO t_ins (name, v) VALUES (?1, ?2)";
/// Empties the insert table before each S2/S3 repetition (not timed).
pub const CLEAR: &str = "DELETE FROM t_ins";
/// Then empties the WAL (not timed), so that no repetition pays for a checkpoint the previous
/// ones filled up: every S2/S3 repetition starts from the same state.
pub const CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// S6: the account's balance (its row lock is the transaction's write lock, `BEGIN IMMEDIATE`).
pub const S6_SELECT: &str = "SELECT balance FROM t_acct WHERE id = ?1";
/// S6: the account's update.
pub const S6_UPDATE: &str = "UPDATE t_acct SET balance = balance + ?2 WHERE id = ?1";
/// S6: the history row.
pub const S6_INSERT: &str = "INSERT INTO t_hist (acct, delta) VALUES (?1, ?2)";
/// Empties the history table before each S6 repetition (not timed).
pub const S6_CLEAR: &str = "DELETE FROM t_hist";

/// Creates `dir/bench.db` in WAL mode with `t` holding `n` rows, an empty `t_ins`, and S6's
/// `t_acct` ([`ACCT_ROWS`](crate::common::ACCT_ROWS) accounts) and empty `t_hist`.
pub fn create_database(dir: &Path, n: usize) -> rusqlite::Result<PathBuf> {
    let path = dir.join("bench.db");
    let mut conn = open(&path)?;
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL);
         CREATE TABLE t_ins (id INTEGER PRIMARY KEY, name TEXT, v REAL);
         CREATE TABLE t_acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE t_hist (acct INTEGER NOT NULL, delta INTEGER NOT NULL);",
    )?;
    conn.execute(
        "INSERT INTO t_acct (id, balance) \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
         SELECT x, 0 FROM c",
        [crate::common::ACCT_ROWS as i64],
    )?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO t (id, name, v) VALUES (?1, ?2, ?3)")?;
        for (id, name, v) in rows(n) {
            insert.execute(params![id, name, v])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    Ok(path)
}

/// Opens `path` the way every implementation is configured: WAL, `synchronous=NORMAL`, a busy
/// timeout.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, f64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

/// rusqlite, synchronously.
#[derive(Debug)]
pub struct RawSqlite {
    path: PathBuf,
    conn: Connection,
    rows: Vec<(i64, String, f64)>,
}

impl RawSqlite {
    /// Opens the database at `path`; `n` is the number of rows in `t`.
    pub fn new(path: &Path, n: usize) -> rusqlite::Result<RawSqlite> {
        Ok(RawSqlite {
            path: path.to_owned(),
            conn: open(path)?,
            rows: rows(n),
        })
    }

    fn s1(&mut self, n: usize) -> rusqlite::Result<Figure> {
        let started = Stopwatch::start();
        for i in 0..n {
            let id = (i % self.rows.len()) as i64 + 1;
            let row = self
                .conn
                .prepare_cached(SELECT_ONE)?
                .query_row([id], decode)?;
            black_box(row);
        }
        Ok(started.per("S1", n))
    }

    /// S2: one `execute` per row through the statement cache. S3: one statement prepared for the
    /// batch, executed per row. Both in one transaction.
    fn insert(&mut self, batch: bool) -> rusqlite::Result<Figure> {
        self.conn.execute(CLEAR, [])?;
        self.conn.query_row(CHECKPOINT, [], |_| Ok(()))?;
        let started = Stopwatch::start();
        let tx = self.conn.transaction()?;
        if batch {
            let mut stmt = tx.prepare(INSERT)?;
            for (id, name, v) in &self.rows {
                stmt.execute(params![id, name, v])?;
            }
        } else {
            for (id, name, v) in &self.rows {
                tx.prepare_cached(INSERT)?.execute(params![id, name, v])?;
            }
        }
        tx.commit()?;
        Ok(started.per(if batch { "S3" } else { "S2" }, self.rows.len()))
    }

    fn s4(&mut self, passes: usize) -> rusqlite::Result<Figure> {
        let started = Stopwatch::start();
        let mut total = 0;
        for _ in 0..passes {
            let mut stmt = self.conn.prepare_cached(SELECT_ALL)?;
            let all = stmt
                .query_map([], decode)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            total += all.len();
            black_box(all);
        }
        Ok(started.per("S4", total))
    }

    /// Four reader threads and one writer thread, each with its own connection, for `duration`.
    fn s5(&mut self, duration: Duration) -> RepResult {
        let n = self.rows.len() as i64;
        let mut conns = Vec::new();
        for _ in 0..5 {
            conns.push(open(&self.path).map_err(|e| e.to_string())?);
        }
        let writer = conns.pop().expect("five connections");
        let reads = AtomicU64::new(0);
        let writes = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let start = Barrier::new(6);
        let elapsed = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (k, conn) in conns.into_iter().enumerate() {
                let (reads, stop, start) = (&reads, &stop, &start);
                handles.push(scope.spawn(move || -> rusqlite::Result<()> {
                    let mut rng = fastrand::Rng::with_seed(k as u64);
                    start.wait();
                    let mut count = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = rng.i64(1..=n);
                        black_box(conn.prepare_cached(SELECT_ONE)?.query_row([id], decode)?);
                        count += 1;
                    }
                    reads.fetch_add(count, Ordering::Relaxed);
                    Ok(())
                }));
            }
            let (writes, stop, start) = (&writes, &stop, &start);
            handles.push(scope.spawn(move || -> rusqlite::Result<()> {
                start.wait();
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    writer
                        .prepare_cached(INSERT_AUTO)?
                        .execute(params!["w", 1.5])?;
                    count += 1;
                }
                writes.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }));
            start.wait();
            let started = Stopwatch::start();
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
            for handle in handles {
                handle.join().expect("S5 thread panicked")?;
            }
            Ok::<_, rusqlite::Error>(started)
        })
        .map_err(|e| e.to_string())?;
        Ok(elapsed.rates(&[("S5r", reads.into_inner()), ("S5w", writes.into_inner())]))
    }

    /// S6: `tasks` OS threads, each with its own connection, each running `per_task` transactions
    /// of `BEGIN IMMEDIATE`, select, update, insert, `COMMIT` on random accounts.
    fn s6(&mut self, tasks: usize, per_task: usize) -> RepResult {
        self.conn.execute(S6_CLEAR, []).map_err(|e| e.to_string())?;
        let mut conns = Vec::new();
        for _ in 0..tasks {
            conns.push(open(&self.path).map_err(|e| e.to_string())?);
        }
        let start = Barrier::new(tasks + 1);
        let started = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (k, mut conn) in conns.into_iter().enumerate() {
                let start = &start;
                handles.push(scope.spawn(move || -> rusqlite::Result<()> {
                    let mut rng = fastrand::Rng::with_seed(k as u64);
                    start.wait();
                    for _ in 0..per_task {
                        let (id, delta) =
                            crate::common::pick_account(&mut rng, crate::common::ACCT_ROWS);
                        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let balance: i64 = tx
                            .prepare_cached(S6_SELECT)?
                            .query_row([id], |r| r.get(0))?;
                        black_box(balance);
                        tx.prepare_cached(S6_UPDATE)?.execute(params![id, delta])?;
                        tx.prepare_cached(S6_INSERT)?.execute(params![id, delta])?;
                        tx.commit()?;
                    }
                    Ok(())
                }));
            }
            start.wait();
            let started = Stopwatch::start();
            for handle in handles {
                handle.join().expect("S6 thread panicked")?;
            }
            Ok::<_, rusqlite::Error>(started)
        })
        .map_err(|e| e.to_string())?;
        Ok(started.rates(&[("S6", (tasks * per_task) as u64)]))
    }
}

impl Bench for RawSqlite {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        let one = |r: rusqlite::Result<Figure>| r.map(|f| vec![f]).map_err(|e| e.to_string());
        Some(match workload {
            Workload::S1 => one(self.s1(sizes.s_rows)),
            Workload::S2 => one(self.insert(false)),
            Workload::S3 => one(self.insert(true)),
            Workload::S4 => one(self.s4(sizes.s4_passes)),
            Workload::S5 => self.s5(sizes.s5),
            Workload::S6 => self.s6(sizes.s6_tasks, sizes.s6_tx),
            _ => return None,
        })
    }

    fn note(&self, workload: Workload) -> String {
        match workload {
            Workload::S1 | Workload::S2 => "rusqlite prepare_cached per call".to_owned(),
            Workload::S3 => {
                "rusqlite: one prepared statement executed per row, in a transaction".to_owned()
            }
            Workload::S5 => "5 OS threads, one connection each".to_owned(),
            Workload::S6 => {
                "8 OS threads, one connection each; transaction_with_behavior(Immediate), prepare_cached".to_owned()
            }
            _ => String::new(),
        }
    }
}

/// M1 with rusqlite: iterate the rows of the recursive CTE on an in-memory database.
pub fn m1(args: &M1Args) -> Result<(), String> {
    assert_eq!(args.db, Db::Sqlite);
    let base = crate::common::rss_mb("VmRSS");
    let started = Stopwatch::start();
    let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare(&args.db.m1_sql(args.rows))
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        black_box(decode(row).map_err(|e| e.to_string())?);
        count += 1;
    }
    crate::common::m1_print(count, base, started.elapsed());
    Ok(())
}
