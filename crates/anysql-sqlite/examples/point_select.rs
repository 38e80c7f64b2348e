//! A quick micro benchmark of the SQLite driver against raw, synchronous rusqlite, in one run.
//!
//! ```text
//! cargo run --release -p anysql-sqlite --example point_select [queries per round] [rounds]
//! ```
//!
//! Workloads (those of `docs/benchmarks.md`, on a WAL file database with synchronous=NORMAL):
//! - S1: point select by primary key, sequential, cached statement, row decoded into a tuple;
//! - S2: insert rows in one transaction, one call per row;
//! - S3: the same inserts through `execute_many`;
//! - S4: fetch all 20,000 rows;
//! - M1: stream a million rows and report the peak RSS.
//!
//! The variants run interleaved, round after round, so that a burst of load from other processes
//! hits them alike; the table shows the best and the median round. Shared machines are noisy: the
//! ratio to raw rusqlite is what matters. Not a test: nothing here asserts a timing.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anysql_core::runtime::BoxFuture;
use anysql_core::{
    AsyncDriver, BoxSocket, ConnectOptions, DriverConnection, Runtime, SharedRuntime, Value,
};
use anysql_sqlite::SqliteDriver;
use async_trait::async_trait;
use futures_lite::StreamExt;

/// Just enough of a runtime to open connections: the SQLite driver needs no executor.
#[derive(Debug)]
struct ThreadRuntime;

#[async_trait]
impl Runtime for ThreadRuntime {
    fn name(&self) -> &'static str {
        "threads"
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        std::thread::spawn(move || futures_lite::future::block_on(task));
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let (tx, rx) = async_channel::bounded::<()>(1);
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            let _ = tx.send_blocking(());
        });
        Box::pin(async move {
            let _ = rx.recv().await;
        })
    }
    async fn connect_tcp(&self, _: &str, _: u16) -> io::Result<BoxSocket> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no sockets here",
        ))
    }
}

type Conn = Box<dyn DriverConnection>;

fn connect(url: &str) -> Conn {
    let options = ConnectOptions::parse(url).expect("url");
    let connector = SqliteDriver::new().connector(&options).expect("connector");
    let runtime: SharedRuntime = Arc::new(ThreadRuntime);
    futures_lite::future::block_on(connector.connect(&runtime)).expect("connect")
}

const POINT: &str = "SELECT id, name, v FROM t WHERE id = $1";
const INSERT: &str = "INSERT INTO t2 (id, name, v) VALUES ($1, $2, $3)";

/// S1 through the driver: `n` sequential point selects, each decoded.
async fn s1(conn: &mut Conn, n: i64) {
    for i in 0..n {
        let params = vec![Value::Int(i % 20_000 + 1)];
        let row = conn
            .fetch_optional(POINT, params)
            .await
            .expect("select")
            .expect("row");
        let (id, name, v): (i64, String, f64) = row.decode().expect("decode");
        std::hint::black_box((id, name, v));
    }
}

/// How an S1 variant is driven.
#[derive(Clone, Copy)]
enum Driver {
    BlockOn,
    TokioCurrentThread,
    TokioMultiThread,
    Smol,
}

/// Timings of one variant, µs per operation, one per round.
struct Series {
    name: String,
    samples: Vec<f64>,
}

impl Series {
    fn new(name: impl Into<String>) -> Self {
        Series {
            name: name.into(),
            samples: Vec::new(),
        }
    }

    fn time<T>(&mut self, ops: usize, run: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = run();
        self.samples
            .push(started.elapsed().as_secs_f64() * 1e6 / ops as f64);
        result
    }

    fn best_and_median(&self) -> (f64, f64) {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        (sorted[0], sorted[sorted.len() / 2])
    }

    fn print(&self, raw: Option<&Series>) {
        let (best, median) = self.best_and_median();
        match raw.map(Series::best_and_median) {
            Some((raw_best, raw_median)) => println!(
                "  {:<46} {best:8.3} {median:8.3}   {:5.2}x {:5.2}x",
                self.name,
                best / raw_best,
                median / raw_median
            ),
            None => println!("  {:<46} {best:8.3} {median:8.3}", self.name),
        }
    }
}

fn header(title: &str) {
    println!("\n{title}");
    println!(
        "  {:<46} {:>8} {:>8}   {:>6} {:>6}",
        "", "best", "median", "best", "median"
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let queries: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let ops = usize::try_from(queries).expect("queries");

    let dir = std::env::temp_dir().join(format!("anysql-sqlite-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bench.db");
    let url = format!("sqlite://{}", path.display());

    let raw = rusqlite::Connection::open(&path).expect("open");
    raw.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
         CREATE TABLE t2(id INTEGER PRIMARY KEY, name TEXT, v REAL);",
    )
    .expect("schema");
    {
        let tx = raw.unchecked_transaction().expect("tx");
        let mut insert = tx
            .prepare("INSERT INTO t VALUES (?1, ?2, ?3)")
            .expect("prepare");
        for i in 1..=20_000_i64 {
            insert
                .execute(rusqlite::params![i, format!("name {i}"), i as f64 * 0.5])
                .expect("insert");
        }
        drop(insert);
        tx.commit().expect("commit");
    }
    println!(
        "anysql-sqlite micro benchmark: {queries} operations per round, {rounds} rounds, {} cpus; µs per operation",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // ---- S1
    let tokio_current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let tokio_multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let mut raw_s1 = Series::new("raw rusqlite (sync)");
    let mut variants: Vec<(Series, Driver, Option<Conn>)> = Vec::new();
    for (suffix, query) in [("", ""), (", busy_poll=0", "?busy_poll=0")] {
        for (name, driver) in [
            ("futures-lite block_on", Driver::BlockOn),
            ("tokio current-thread", Driver::TokioCurrentThread),
            ("tokio multi-thread, 2 workers", Driver::TokioMultiThread),
            ("smol block_on", Driver::Smol),
        ] {
            let conn = connect(&format!("{url}{query}"));
            variants.push((
                Series::new(format!("anysql, {name}{suffix}")),
                driver,
                Some(conn),
            ));
        }
    }
    for _ in 0..rounds {
        raw_s1.time(ops, || {
            let mut stmt = raw
                .prepare_cached("SELECT id, name, v FROM t WHERE id = ?1")
                .expect("prepare");
            for i in 0..queries {
                let row: (i64, String, f64) = stmt
                    .query_row([i % 20_000 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .expect("row");
                std::hint::black_box(row);
            }
        });
        for (series, driver, slot) in &mut variants {
            let mut conn = slot.take().expect("conn");
            let conn = series.time(ops, || match driver {
                Driver::BlockOn => {
                    futures_lite::future::block_on(s1(&mut conn, queries));
                    conn
                }
                Driver::TokioCurrentThread => {
                    tokio_current.block_on(s1(&mut conn, queries));
                    conn
                }
                // On a worker thread, not on the thread calling block_on.
                Driver::TokioMultiThread => tokio_multi.block_on(async move {
                    tokio::spawn(async move {
                        s1(&mut conn, queries).await;
                        conn
                    })
                    .await
                    .expect("task")
                }),
                Driver::Smol => {
                    smol::block_on(s1(&mut conn, queries));
                    conn
                }
            });
            *slot = Some(conn);
        }
    }
    header("S1 point select by primary key");
    raw_s1.print(None);
    for (series, _, _) in &variants {
        series.print(Some(&raw_s1));
    }
    for (_, _, conn) in variants {
        if let Some(conn) = conn {
            futures_lite::future::block_on(conn.close()).expect("close");
        }
    }

    // ---- S2, S3, S4
    let mut conn = connect(&url);
    let sets: Vec<Vec<Value>> = (1..=queries)
        .map(|i| {
            vec![
                Value::Int(i),
                Value::Text(format!("name {i}")),
                Value::Float(i as f64 * 0.5),
            ]
        })
        .collect();
    let (mut raw_s2, mut s2, mut s3) = (
        Series::new("raw rusqlite (sync)"),
        Series::new("anysql, block_on"),
        Series::new("anysql execute_many, block_on"),
    );
    let (mut raw_s4, mut s4) = (
        Series::new("raw rusqlite (sync)"),
        Series::new("anysql, block_on"),
    );
    for _ in 0..rounds {
        raw.execute("DELETE FROM t2", []).expect("delete");
        raw_s2.time(ops, || {
            let tx = raw.unchecked_transaction().expect("tx");
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO t2 (id, name, v) VALUES (?1, ?2, ?3)")
                    .expect("prepare");
                for i in 1..=queries {
                    insert
                        .execute(rusqlite::params![i, format!("name {i}"), i as f64 * 0.5])
                        .expect("insert");
                }
            }
            tx.commit().expect("commit");
        });
        futures_lite::future::block_on(async {
            conn.execute("DELETE FROM t2", vec![])
                .await
                .expect("delete");
            s2.time(ops, || {
                futures_lite::future::block_on(async {
                    conn.execute("BEGIN", vec![]).await.expect("begin");
                    for i in 1..=queries {
                        let params = vec![
                            Value::Int(i),
                            Value::Text(format!("name {i}")),
                            Value::Float(i as f64 * 0.5),
                        ];
                        conn.execute(INSERT, params).await.expect("insert");
                    }
                    conn.execute("COMMIT", vec![]).await.expect("commit");
                })
            });
            conn.execute("DELETE FROM t2", vec![])
                .await
                .expect("delete");
            let batch = sets.clone();
            s3.time(ops, || {
                futures_lite::future::block_on(
                    conn.execute_many(INSERT, Box::new(batch.into_iter())),
                )
                .expect("execute_many");
            });
        });
        raw_s4.time(20_000, || {
            let mut stmt = raw
                .prepare_cached("SELECT id, name, v FROM t")
                .expect("prepare");
            let rows: Vec<(i64, String, f64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            std::hint::black_box(rows);
        });
        s4.time(20_000, || {
            let rows =
                futures_lite::future::block_on(conn.fetch_all("SELECT id, name, v FROM t", vec![]))
                    .expect("rows");
            let rows: Vec<(i64, String, f64)> = rows
                .into_iter()
                .map(|r| r.decode().expect("decode"))
                .collect();
            std::hint::black_box(rows);
        });
    }
    header("S2 insert in one transaction, one call per row");
    raw_s2.print(None);
    s2.print(Some(&raw_s2));
    header("S3 the same rows through the batch API (ratio to raw S2)");
    s3.print(Some(&raw_s2));
    header("S4 fetch all 20,000 rows (per row)");
    raw_s4.print(None);
    s4.print(Some(&raw_s4));

    // ---- S5
    let (mut raw_reads, mut raw_writes) = (Vec::new(), Vec::new());
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for round in 0..rounds.min(3) {
        let (r, w) = s5_raw(&path, round as u64);
        raw_reads.push(r);
        raw_writes.push(w);
        let (r, w) = tokio_multi.block_on(s5_anysql(&url, round as u64));
        reads.push(r);
        writes.push(w);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!("\nS5 4 readers and 1 writer for 1 s (best round; tokio multi-thread, 2 workers)");
    println!(
        "  {:<46} {:>9.0} reads/s {:>7.0} writes/s",
        "raw rusqlite, 5 OS threads",
        best(&raw_reads),
        best(&raw_writes)
    );
    println!(
        "  {:<46} {:>9.0} reads/s {:>7.0} writes/s",
        "anysql, 5 tasks",
        best(&reads),
        best(&writes)
    );

    // ---- M1
    let started = Instant::now();
    let streamed = futures_lite::future::block_on(async {
        let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                   SELECT i, 'a row of some length, number ' || i, i * 0.5 FROM n";
        let mut rows = conn.fetch(sql, vec![Value::Int(1_000_000)]);
        let mut count = 0_u64;
        while let Some(row) = rows.next().await {
            std::hint::black_box(row.expect("row"));
            count += 1;
        }
        count
    });
    println!(
        "\nM1 streamed {streamed} rows in {:.2?}; peak RSS of the whole process: {}",
        started.elapsed(),
        peak_rss()
    );

    futures_lite::future::block_on(conn.close()).expect("close");
    drop(raw);
    let _ = std::fs::remove_dir_all(&dir);
}

const S5_INSERT: &str = "INSERT INTO t2 (name, v) VALUES ('w', 1.5)";

/// S5 on raw rusqlite: 4 reader threads and 1 writer thread, one connection each.
fn s5_raw(path: &std::path::Path, seed: u64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let started = Instant::now();
    let threads: Vec<_> = (0..5)
        .map(|k| {
            let path = path.to_owned();
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).expect("open");
                conn.busy_timeout(Duration::from_secs(5)).expect("busy");
                let mut count = 0_u64;
                let mut x = seed * 7 + k;
                while Instant::now() < deadline {
                    if k == 4 {
                        conn.execute(S5_INSERT, []).expect("insert");
                    } else {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let id = ((x >> 33) % 20_000 + 1) as i64;
                        let mut stmt = conn
                            .prepare_cached("SELECT id, name, v FROM t WHERE id = ?1")
                            .expect("prepare");
                        let row: (i64, String, f64) = stmt
                            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                            .expect("row");
                        std::hint::black_box(row);
                    }
                    count += 1;
                }
                count
            })
        })
        .collect();
    let counts: Vec<u64> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    (
        counts[..4].iter().sum::<u64>() as f64 / secs,
        counts[4] as f64 / secs,
    )
}

/// S5 through the driver: 4 reader tasks and 1 writer task on the current tokio runtime.
async fn s5_anysql(url: &str, seed: u64) -> (f64, f64) {
    let conns: Vec<Conn> = (0..5).map(|_| connect(url)).collect();
    let deadline = Instant::now() + Duration::from_secs(1);
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(k, mut conn)| {
            tokio::spawn(async move {
                let mut count = 0_u64;
                let mut x = seed * 7 + k as u64;
                while Instant::now() < deadline {
                    if k == 4 {
                        conn.execute(S5_INSERT, vec![]).await.expect("insert");
                    } else {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let id = ((x >> 33) % 20_000 + 1) as i64;
                        let row = conn
                            .fetch_optional(POINT, vec![Value::Int(id)])
                            .await
                            .expect("select")
                            .expect("row");
                        let row: (i64, String, f64) = row.decode().expect("decode");
                        std::hint::black_box(row);
                    }
                    count += 1;
                }
                conn.close().await.expect("close");
                count
            })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    (
        counts[..4].iter().sum::<u64>() as f64 / secs,
        counts[4] as f64 / secs,
    )
}

/// The process's peak resident set size, from /proc on Linux.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
