//! tokio-rusqlite 0.7 (rusqlite 0.37) on tokio (multi-thread, 2 workers): one background thread per
//! connection, each operation a closure sent to it with `Connection::call`.

use std::future::Future;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::params;
use tokio::runtime::Handle;
use tokio_rusqlite::Connection;

use crate::common::{Bench, Db, Figure, M1Args, RepResult, Sizes, Stopwatch, Workload};
use crate::raw_sqlite::{CHECKPOINT, CLEAR, INSERT, INSERT_AUTO, SELECT_ALL, SELECT_ONE};

type Tuple = (i64, String, f64);
type Error = tokio_rusqlite::Error<rusqlite::Error>;

fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tuple> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

async fn open(path: PathBuf) -> Result<Connection, Error> {
    let conn = Connection::open(path)
        .await
        .map_err(tokio_rusqlite::Error::Error)?;
    conn.call(|c| {
        c.busy_timeout(Duration::from_secs(5))?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")
    })
    .await?;
    Ok(conn)
}

/// tokio-rusqlite.
#[derive(Debug)]
pub struct TokioRusqliteBench {
    handle: Handle,
    /// The connection for the sequential workloads, then the S5 connections.
    conns: Arc<Vec<Connection>>,
    rows: Arc<Vec<Tuple>>,
}

impl TokioRusqliteBench {
    /// Opens five connections to `path` (S5 uses them all, the rest only the first).
    pub fn new(handle: &Handle, path: &Path, sizes: &Sizes) -> Result<TokioRusqliteBench, Error> {
        let path = path.to_owned();
        let conns = handle.block_on(async move {
            let mut conns = Vec::new();
            for _ in 0..5 {
                conns.push(open(path.clone()).await?);
            }
            Ok::<_, Error>(conns)
        })?;
        Ok(TokioRusqliteBench {
            handle: handle.clone(),
            conns: Arc::new(conns),
            rows: Arc::new(crate::common::rows(sizes.s_rows)),
        })
    }

    fn run<F>(&self, fut: F) -> RepResult
    where
        F: Future<Output = Result<Vec<Figure>, Error>> + Send + 'static,
    {
        match self.handle.block_on(self.handle.spawn(fut)) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the task failed: {e}")),
        }
    }
}

impl Bench for TokioRusqliteBench {
    fn name(&self) -> &'static str {
        "tokio-rusqlite"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        let conns = Arc::clone(&self.conns);
        let rows = Arc::clone(&self.rows);
        Some(match workload {
            Workload::S1 => self.run(s1(conns, rows.len())),
            Workload::S2 => self.run(s2(conns, rows)),
            Workload::S3 => self.run(s3(conns, rows)),
            Workload::S4 => self.run(s4(conns, sizes.s4_passes)),
            Workload::S5 => self.run(s5(conns, rows.len(), sizes.s5)),
            _ => return None,
        })
    }

    fn note(&self, workload: Workload) -> String {
        match workload {
            Workload::S2 => "BEGIN, one call per row (prepare_cached + execute), COMMIT".to_owned(),
            Workload::S3 => {
                "one call running a prepared statement per row in a transaction".to_owned()
            }
            Workload::S4 => "one call per pass, rows decoded on the worker".to_owned(),
            Workload::S5 => "5 tasks, one connection (thread) each".to_owned(),
            _ => "one call per query, prepare_cached".to_owned(),
        }
    }
}

async fn s1(conns: Arc<Vec<Connection>>, n: usize) -> Result<Vec<Figure>, Error> {
    let conn = &conns[0];
    let started = Stopwatch::start();
    for i in 0..n {
        let id = i as i64 + 1;
        let row = conn
            .call(move |c| c.prepare_cached(SELECT_ONE)?.query_row([id], decode))
            .await?;
        black_box(row);
    }
    Ok(vec![started.per("S1", n)])
}

async fn s2(conns: Arc<Vec<Connection>>, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let conn = &conns[0];
    conn.call(|c| {
        c.execute(CLEAR, [])?;
        c.query_row(CHECKPOINT, [], |_| Ok(()))
    })
    .await?;
    let started = Stopwatch::start();
    conn.call(|c| c.execute_batch("BEGIN")).await?;
    for (id, name, v) in rows.iter() {
        let (id, name, v) = (*id, name.clone(), *v);
        conn.call(move |c| c.prepare_cached(INSERT)?.execute(params![id, name, v]))
            .await?;
    }
    conn.call(|c| c.execute_batch("COMMIT")).await?;
    Ok(vec![started.per("S2", rows.len())])
}

async fn s3(conns: Arc<Vec<Connection>>, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let conn = &conns[0];
    conn.call(|c| {
        c.execute(CLEAR, [])?;
        c.query_row(CHECKPOINT, [], |_| Ok(()))
    })
    .await?;
    let n = rows.len();
    let started = Stopwatch::start();
    conn.call(move |c| {
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare(INSERT)?;
            for (id, name, v) in rows.iter() {
                stmt.execute(params![id, name, v])?;
            }
        }
        tx.commit()
    })
    .await?;
    Ok(vec![started.per("S3", n)])
}

async fn s4(conns: Arc<Vec<Connection>>, passes: usize) -> Result<Vec<Figure>, Error> {
    let conn = &conns[0];
    let started = Stopwatch::start();
    let mut total = 0;
    for _ in 0..passes {
        let all: Vec<Tuple> = conn
            .call(|c| {
                c.prepare_cached(SELECT_ALL)?
                    .query_map([], decode)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        total += all.len();
        black_box(all);
    }
    Ok(vec![started.per("S4", total)])
}

async fn s5(
    conns: Arc<Vec<Connection>>,
    n: usize,
    duration: Duration,
) -> Result<Vec<Figure>, Error> {
    let started = Stopwatch::start();
    let deadline = started.started_at() + duration;
    let mut readers = Vec::new();
    for k in 0..4 {
        let conns = Arc::clone(&conns);
        readers.push(tokio::spawn(async move {
            let conn = &conns[k];
            let mut rng = fastrand::Rng::with_seed(k as u64);
            let mut count = 0u64;
            while Instant::now() < deadline {
                let id = rng.i64(1..=n as i64);
                let row = conn
                    .call(move |c| c.prepare_cached(SELECT_ONE)?.query_row([id], decode))
                    .await?;
                black_box(row);
                count += 1;
            }
            Ok::<u64, Error>(count)
        }));
    }
    let write = tokio::spawn(async move {
        let conn = &conns[4];
        let mut count = 0u64;
        while Instant::now() < deadline {
            conn.call(|c| c.prepare_cached(INSERT_AUTO)?.execute(params!["w", 1.5]))
                .await?;
            count += 1;
        }
        Ok::<u64, Error>(count)
    });
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("S5 reader panicked")?;
    }
    let writes = write.await.expect("S5 writer panicked")?;
    Ok(started.rates(&[("S5r", reads), ("S5w", writes)]))
}

/// M1 with tokio-rusqlite: it has no row stream, so one call iterates the rows on its thread.
pub fn m1(args: &M1Args) -> Result<(), String> {
    assert_eq!(args.db, Db::Sqlite);
    let base = crate::common::rss_mb("VmRSS");
    let runtime = crate::tokio_runtime();
    let sql = args.db.m1_sql(args.rows);
    let started = Stopwatch::start();
    let count = runtime
        .block_on(runtime.spawn(async move {
            let conn = Connection::open_in_memory()
                .await
                .map_err(tokio_rusqlite::Error::Error)?;
            conn.call(move |c| {
                let mut stmt = c.prepare(&sql)?;
                let mut rows = stmt.query([])?;
                let mut count = 0;
                while let Some(row) = rows.next()? {
                    black_box(decode(row)?);
                    count += 1;
                }
                Ok::<usize, rusqlite::Error>(count)
            })
            .await
        }))
        .map_err(|e| e.to_string())?
        .map_err(|e: Error| e.to_string())?;
    crate::common::m1_print(count, base, started.elapsed());
    Ok(())
}
