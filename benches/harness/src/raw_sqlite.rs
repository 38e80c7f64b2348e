//! The SQLite physical limit: rusqlite, called synchronously on the calling thread (S5: one OS thread
//! per reader and writer). Also creates the SQLite data every implementation reads.
//!
//! Shared with the peers binary (through `#[path]`), which links its own rusqlite and SQLite.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};

use crate::common::{rows, us_per, Bench, Db, M1Args, RepResult, Sizes, Workload};

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

/// Creates `dir/bench.db` in WAL mode with `t` holding `n` rows and an empty `t_ins`.
pub fn create_database(dir: &Path, n: usize) -> rusqlite::Result<PathBuf> {
    let path = dir.join("bench.db");
    let mut conn = open(&path)?;
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL);
         CREATE TABLE t_ins (id INTEGER PRIMARY KEY, name TEXT, v REAL);",
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

    fn s1(&mut self, n: usize) -> rusqlite::Result<f64> {
        let started = Instant::now();
        for i in 0..n {
            let id = (i % self.rows.len()) as i64 + 1;
            let row = self
                .conn
                .prepare_cached(SELECT_ONE)?
                .query_row([id], decode)?;
            black_box(row);
        }
        Ok(us_per(started.elapsed(), n))
    }

    /// S2: one `execute` per row through the statement cache. S3: one statement prepared for the
    /// batch, executed per row. Both in one transaction.
    fn insert(&mut self, batch: bool) -> rusqlite::Result<f64> {
        self.conn.execute(CLEAR, [])?;
        self.conn.query_row(CHECKPOINT, [], |_| Ok(()))?;
        let started = Instant::now();
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
        Ok(us_per(started.elapsed(), self.rows.len()))
    }

    fn s4(&mut self, passes: usize) -> rusqlite::Result<f64> {
        let started = Instant::now();
        let mut total = 0;
        for _ in 0..passes {
            let mut stmt = self.conn.prepare_cached(SELECT_ALL)?;
            let all = stmt
                .query_map([], decode)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            total += all.len();
            black_box(all);
        }
        Ok(us_per(started.elapsed(), total))
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
            let started = Instant::now();
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
            for handle in handles {
                handle.join().expect("S5 thread panicked")?;
            }
            Ok::<_, rusqlite::Error>(started.elapsed())
        })
        .map_err(|e| e.to_string())?;
        let secs = elapsed.as_secs_f64();
        Ok(vec![
            ("S5r", reads.into_inner() as f64 / secs),
            ("S5w", writes.into_inner() as f64 / secs),
        ])
    }
}

impl Bench for RawSqlite {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        let one = |r: rusqlite::Result<f64>, key: &'static str| {
            r.map(|v| vec![(key, v)]).map_err(|e| e.to_string())
        };
        Some(match workload {
            Workload::S1 => one(self.s1(sizes.s_rows), "S1"),
            Workload::S2 => one(self.insert(false), "S2"),
            Workload::S3 => one(self.insert(true), "S3"),
            Workload::S4 => one(self.s4(sizes.s4_passes), "S4"),
            Workload::S5 => self.s5(sizes.s5),
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
            _ => String::new(),
        }
    }
}

/// M1 with rusqlite: iterate the rows of the recursive CTE on an in-memory database.
pub fn m1(args: &M1Args) -> Result<(), String> {
    assert_eq!(args.db, Db::Sqlite);
    let base = crate::common::rss_mb("VmRSS");
    let started = Instant::now();
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
