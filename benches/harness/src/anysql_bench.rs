//! anysql on tokio (multi-thread, 2 workers), smol and async-std: the same workload code for every
//! runtime. Each repetition runs as a task spawned on the runtime, as application code would.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anysql::{query, query_as, Engine, Error, Pipeline, TransactionOptions};
use futures_lite::StreamExt;

use crate::common::{Bench, Db, Figure, M1Args, RepResult, Sizes, Stopwatch, Workload};
use crate::raw_pg::PgTables;
use crate::raw_sqlite;
use crate::report::{NOSPIN_PG_OPTIONS, NOSPIN_SQLITE_OPTIONS};

/// The pool size of the PostgreSQL engine (P2 runs 64 tasks on it). 8 is what sqlx gets, and 16
/// measured no better here (2 cores shared with the server).
pub const PG_MAX_SIZE: usize = 8;

type Tuple = (i64, String, f64);

// The SQLite statements in anysql's one placeholder style (`$n`, rewritten by the driver).
const SELECT_ONE: &str = "SELECT id, name, v FROM t WHERE id = $1";
const INSERT: &str = "INSERT INTO t_ins (id, name, v) VALUES ($1, $2, $3)";
const INSERT_AUTO: &str = "INSERT INTO t_ins (name, v) VALUES ($1, $2)";
const S6_SELECT: &str = "SELECT balance FROM t_acct WHERE id = $1";
const S6_UPDATE: &str = "UPDATE t_acct SET balance = balance + $2 WHERE id = $1";
const S6_INSERT: &str = "INSERT INTO t_hist (acct, delta) VALUES ($1, $2)";

/// An executor to run workload tasks on.
#[derive(Clone, Debug)]
pub enum Spawner {
    /// A tokio multi-thread runtime.
    Tokio(tokio::runtime::Handle),
    /// smol's global executor.
    Smol,
    /// async-std's global executor.
    AsyncStd,
}

/// A spawned task.
pub enum Task<T> {
    /// On tokio.
    Tokio(tokio::task::JoinHandle<T>),
    /// On smol.
    Smol(smol::Task<T>),
    /// On async-std.
    AsyncStd(async_std::task::JoinHandle<T>),
}

impl<T> Task<T> {
    /// Waits for the task's output.
    pub async fn join(self) -> T {
        match self {
            Task::Tokio(handle) => handle.await.expect("task panicked"),
            Task::Smol(task) => task.await,
            Task::AsyncStd(handle) => handle.await,
        }
    }
}

impl Spawner {
    /// The implementation name for this runtime.
    pub fn impl_name(&self) -> &'static str {
        match self {
            Spawner::Tokio(_) => "anysql-tokio",
            Spawner::Smol => "anysql-smol",
            Spawner::AsyncStd => "anysql-async-std",
        }
    }

    /// The implementation name of the no-spin configuration on this runtime.
    pub fn nospin_name(&self) -> &'static str {
        match self {
            Spawner::Tokio(_) => "anysql-tokio-nospin",
            Spawner::Smol => "anysql-smol-nospin",
            Spawner::AsyncStd => "anysql-async-std-nospin",
        }
    }

    /// Parses an implementation name; tokio gets a new 2-worker runtime, returned alongside.
    pub fn for_impl(name: &str) -> Option<(Spawner, Option<tokio::runtime::Runtime>)> {
        Some(match name {
            "anysql-tokio" => {
                let rt = tokio_runtime();
                (Spawner::Tokio(rt.handle().clone()), Some(rt))
            }
            "anysql-smol" => (Spawner::Smol, None),
            "anysql-async-std" => (Spawner::AsyncStd, None),
            _ => return None,
        })
    }

    /// Spawns `fut` on the executor.
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Spawner::Tokio(handle) => Task::Tokio(handle.spawn(fut)),
            Spawner::Smol => Task::Smol(smol::spawn(fut)),
            Spawner::AsyncStd => Task::AsyncStd(async_std::task::spawn(fut)),
        }
    }

    /// Spawns `fut` on the executor and blocks this thread until it is done.
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.spawn(fut);
        match self {
            Spawner::Tokio(handle) => handle.block_on(task.join()),
            Spawner::Smol => smol::block_on(task.join()),
            Spawner::AsyncStd => async_std::task::block_on(task.join()),
        }
    }

    /// An engine for `url` on this executor.
    pub fn engine(&self, url: &str, max_size: usize) -> Result<Engine, Error> {
        let builder = anysql::builder(url).max_size(max_size);
        let builder = match self {
            Spawner::Tokio(handle) => {
                builder.runtime(anysql::runtime::TokioRuntime::from_handle(handle.clone()))
            }
            Spawner::Smol => builder.runtime(anysql::runtime::SmolRuntime::new()),
            Spawner::AsyncStd => builder.runtime(anysql::runtime::AsyncStdRuntime::new()),
        };
        builder.build()
    }
}

/// A tokio multi-thread runtime with 2 workers.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::common::EXECUTOR_THREADS)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// anysql on one runtime.
#[derive(Debug)]
pub struct AnysqlBench {
    name: &'static str,
    spawner: Spawner,
    sqlite: Option<Engine>,
    pg: Option<(Engine, Arc<PgSql>)>,
    s_rows: Arc<Vec<Tuple>>,
    p_rows: Arc<Vec<Tuple>>,
}

/// The PostgreSQL statements, with this run's table names.
#[derive(Debug)]
struct PgSql {
    select_one: String,
    select_all: String,
    insert: String,
    clear: String,
    /// The insert table's name (P5).
    ins: String,
    p6_select: String,
    p6_update: String,
    p6_insert: String,
    p6_clear: String,
}

impl AnysqlBench {
    /// Engines for the SQLite file at `sqlite_path` and, if given, PostgreSQL at `pg`. A PostgreSQL
    /// engine that cannot be built is left out, and the reason returned beside the bench. With
    /// `nospin`, the engines get [`NOSPIN_SQLITE_OPTIONS`] and [`NOSPIN_PG_OPTIONS`] and the bench
    /// is named `anysql-<runtime>-nospin`.
    pub fn new(
        spawner: Spawner,
        sqlite_path: Option<&std::path::Path>,
        pg: Option<(&str, &PgTables)>,
        sizes: &Sizes,
        nospin: bool,
    ) -> Result<(AnysqlBench, Vec<String>), Error> {
        let name = if nospin {
            spawner.nospin_name()
        } else {
            spawner.impl_name()
        };
        let nospin_options = |url: String, options: &str| {
            if nospin {
                let joint = if url.contains('?') { '&' } else { '?' };
                format!("{url}{joint}{options}")
            } else {
                url
            }
        };
        // `ANYSQL_SQLITE_OPTIONS` and `ANYSQL_PG_OPTIONS` (such as `inline_limit=0` or
        // `busy_poll=0`) are appended to anysql's URLs only, to compare driver options in one run;
        // the raw drivers know none of them.
        let with_options = |url: String, var: &str| match std::env::var(var) {
            Ok(extra) if !extra.trim().is_empty() => {
                let joint = if url.contains('?') { '&' } else { '?' };
                format!("{url}{joint}{}", extra.trim())
            }
            _ => url,
        };
        let sqlite = match sqlite_path {
            // WAL and synchronous=NORMAL are the driver's defaults for a file database; spelled out
            // here so that the benchmark does not depend on them.
            Some(path) => Some(spawner.engine(
                &nospin_options(
                    with_options(
                        format!(
                            "sqlite://{}?journal_mode=wal&synchronous=normal",
                            path.display()
                        ),
                        "ANYSQL_SQLITE_OPTIONS",
                    ),
                    NOSPIN_SQLITE_OPTIONS,
                ),
                8,
            )?),
            None => None,
        };
        let mut problems = Vec::new();
        let pg = pg.map(|(url, tables)| {
            let url = nospin_options(
                with_options(url.to_owned(), "ANYSQL_PG_OPTIONS"),
                NOSPIN_PG_OPTIONS,
            );
            (spawner.engine(&url, PG_MAX_SIZE), tables)
        });
        let pg = match pg {
            Some((Ok(engine), tables)) => Some((
                engine,
                Arc::new(PgSql {
                    select_one: tables.select_one(),
                    select_all: tables.select_all(),
                    insert: tables.insert(),
                    clear: tables.clear(),
                    ins: tables.ins.clone(),
                    p6_select: tables.p6_select(),
                    p6_update: tables.p6_update(),
                    p6_insert: tables.p6_insert(),
                    p6_clear: tables.p6_clear(),
                }),
            )),
            Some((Err(e), _)) => {
                problems.push(format!("{name}: no PostgreSQL engine: {e}"));
                None
            }
            None => None,
        };
        let bench = AnysqlBench {
            name,
            spawner,
            sqlite,
            pg,
            s_rows: Arc::new(crate::common::rows(sizes.s_rows)),
            p_rows: Arc::new(crate::common::rows(sizes.p_rows)),
        };
        Ok((bench, problems))
    }

    fn run<F>(&self, fut: F) -> RepResult
    where
        F: Future<Output = Result<Vec<Figure>, Error>> + Send + 'static,
    {
        self.spawner.block_on(fut).map_err(|e| e.to_string())
    }

    /// Closes the engines.
    pub fn close(&self) {
        let engines: Vec<Engine> = self
            .sqlite
            .iter()
            .cloned()
            .chain(self.pg.iter().map(|(e, _)| e.clone()))
            .collect();
        self.spawner.block_on(async move {
            for engine in engines {
                engine.close().await;
            }
        });
    }
}

impl Bench for AnysqlBench {
    fn name(&self) -> &'static str {
        self.name
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        if workload.is_postgres() {
            let (engine, sql) = self.pg.clone()?;
            let rows = Arc::clone(&self.p_rows);
            return Some(match workload {
                Workload::P1 => self.run(p1(engine, sql, rows.len())),
                Workload::P2 => self.run(p2(
                    engine,
                    sql,
                    rows.len(),
                    sizes.p2_tasks,
                    sizes.p2_queries,
                    self.spawner.clone(),
                )),
                Workload::P3 => self.run(p3(engine, sql, sizes.p3_passes)),
                Workload::P4 => self.run(p4(engine, sql, rows)),
                Workload::P5 => {
                    let rows = Arc::new(crate::common::rows(sizes.p5_rows));
                    self.run(p5(engine, sql, rows))
                }
                Workload::P6 => self.run(p6(
                    engine,
                    sql,
                    sizes.p6_tasks,
                    sizes.p6_tx,
                    self.spawner.clone(),
                )),
                _ => unreachable!(),
            });
        }
        let engine = self.sqlite.clone()?;
        let rows = Arc::clone(&self.s_rows);
        Some(match workload {
            Workload::S1 => self.run(s1(engine, rows.len())),
            Workload::S2 => self.run(s2(engine, rows)),
            Workload::S3 => self.run(s3(engine, rows)),
            Workload::S4 => self.run(s4(engine, sizes.s4_passes)),
            Workload::S5 => self.run(s5(engine, rows.len(), sizes.s5, self.spawner.clone())),
            Workload::S6 => self.run(s6(
                engine,
                sizes.s6_tasks,
                sizes.s6_tx,
                self.spawner.clone(),
            )),
            _ => return None,
        })
    }

    fn note(&self, workload: Workload) -> String {
        match workload {
            Workload::S3 => "query(..).execute_many (one transaction of its own)".to_owned(),
            Workload::S5 => "5 tasks, one pooled connection each".to_owned(),
            Workload::S6 => {
                "8 tasks, engine.begin_with(TransactionOptions::new().immediate(true)) per transaction (pool max_size 8)".to_owned()
            }
            Workload::P6 => format!(
                "64 tasks, engine.begin() per transaction (pool max_size {PG_MAX_SIZE}); P6: the select awaited, then tx.commit_with(Pipeline of the update and the insert); P6s: each statement awaited, then tx.commit()"
            ),
            Workload::P2 => format!(
                "query_as(..).fetch_one(&engine) per query (on the engine's shared pipelined connection; pool max_size {PG_MAX_SIZE})"
            ),
            Workload::P5 => {
                "P5: conn.copy_in_rows(table, columns) + write(&row) per row + finish; P5m: query(..).execute_many(&mut conn, rows), same rows, same connection".to_owned()
            }
            _ => "one pooled connection, acquired before the clock starts".to_owned(),
        }
    }
}

async fn s1(engine: Engine, n: usize) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    let started = Stopwatch::start();
    for i in 0..n {
        let id = i as i64 + 1;
        let row: Tuple = query_as(SELECT_ONE).bind(id).fetch_one(&mut conn).await?;
        black_box(row);
    }
    Ok(vec![started.per("S1", n)])
}

async fn s2(engine: Engine, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    query(raw_sqlite::CLEAR).execute(&mut conn).await?;
    query(raw_sqlite::CHECKPOINT).fetch_all(&mut conn).await?;
    let started = Stopwatch::start();
    let mut tx = conn.begin().await?;
    for (id, name, v) in rows.iter() {
        query(INSERT)
            .bind(id)
            .bind(name.as_str())
            .bind(v)
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(vec![started.per("S2", rows.len())])
}

async fn s3(engine: Engine, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    query(raw_sqlite::CLEAR).execute(&mut conn).await?;
    query(raw_sqlite::CHECKPOINT).fetch_all(&mut conn).await?;
    let started = Stopwatch::start();
    // execute_many is atomic on its own: outside a transaction it runs in one (inside one it would
    // take a savepoint, whose statement journal costs extra page copies).
    query(INSERT)
        .execute_many(
            &mut conn,
            rows.iter().map(|(id, name, v)| (id, name.as_str(), v)),
        )
        .await?;
    Ok(vec![started.per("S3", rows.len())])
}

async fn s4(engine: Engine, passes: usize) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    let started = Stopwatch::start();
    let mut total = 0;
    for _ in 0..passes {
        let all: Vec<Tuple> = query_as(raw_sqlite::SELECT_ALL)
            .fetch_all(&mut conn)
            .await?;
        total += all.len();
        black_box(all);
    }
    Ok(vec![started.per("S4", total)])
}

async fn s5(
    engine: Engine,
    n: usize,
    duration: Duration,
    spawner: Spawner,
) -> Result<Vec<Figure>, Error> {
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(engine.acquire().await?);
    }
    let mut writer = conns.pop().expect("five connections");
    let started = Stopwatch::start();
    let deadline = started.started_at() + duration;
    let mut readers = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        readers.push(spawner.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(k as u64);
            let mut count = 0u64;
            while Instant::now() < deadline {
                let id = rng.i64(1..=n as i64);
                let row: Tuple = query_as(SELECT_ONE).bind(id).fetch_one(&mut conn).await?;
                black_box(row);
                count += 1;
            }
            Ok::<u64, Error>(count)
        }));
    }
    let write = spawner.spawn(async move {
        let mut count = 0u64;
        while Instant::now() < deadline {
            query(INSERT_AUTO)
                .bind("w")
                .bind(1.5)
                .execute(&mut writer)
                .await?;
            count += 1;
        }
        Ok::<u64, Error>(count)
    });
    let mut reads = 0;
    for reader in readers {
        reads += reader.join().await?;
    }
    let writes = write.join().await?;
    Ok(started.rates(&[("S5r", reads), ("S5w", writes)]))
}

async fn p1(engine: Engine, sql: Arc<PgSql>, n: usize) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    let started = Stopwatch::start();
    for i in 0..n {
        let id = i as i64 + 1;
        let row: Tuple = query_as(sql.select_one.as_str())
            .bind(id)
            .fetch_one(&mut conn)
            .await?;
        black_box(row);
    }
    Ok(vec![started.per("P1", n)])
}

async fn p2(
    engine: Engine,
    sql: Arc<PgSql>,
    n: usize,
    tasks: usize,
    queries: usize,
    spawner: Spawner,
) -> Result<Vec<Figure>, Error> {
    let started = Stopwatch::start();
    let mut handles = Vec::with_capacity(tasks);
    for k in 0..tasks {
        let (engine, sql) = (engine.clone(), Arc::clone(&sql));
        handles.push(spawner.spawn(async move {
            for j in 0..queries {
                let id = ((k * queries + j) % n) as i64 + 1;
                let row: Tuple = query_as(sql.select_one.as_str())
                    .bind(id)
                    .fetch_one(&engine)
                    .await?;
                black_box(row);
            }
            Ok::<(), Error>(())
        }));
    }
    for handle in handles {
        handle.join().await?;
    }
    Ok(vec![started.per("P2", tasks * queries)])
}

async fn p3(engine: Engine, sql: Arc<PgSql>, passes: usize) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    let started = Stopwatch::start();
    let mut total = 0;
    for _ in 0..passes {
        let all: Vec<Tuple> = query_as(sql.select_all.as_str())
            .fetch_all(&mut conn)
            .await?;
        total += all.len();
        black_box(all);
    }
    Ok(vec![started.per("P3", total)])
}

async fn p4(engine: Engine, sql: Arc<PgSql>, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    query(sql.clear.as_str()).execute(&mut conn).await?;
    let started = Stopwatch::start();
    let mut tx = conn.begin().await?;
    for (id, name, v) in rows.iter() {
        query(sql.insert.as_str())
            .bind(id)
            .bind(name.as_str())
            .bind(v)
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(vec![started.per("P4", rows.len())])
}

/// P5: the same rows loaded through the batch API (`P5m`), then through binary COPY (`P5`), on
/// one connection; the table is emptied before each, untimed.
async fn p5(engine: Engine, sql: Arc<PgSql>, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, Error> {
    let mut conn = engine.acquire().await?;
    query(sql.clear.as_str()).execute(&mut conn).await?;
    let started = Stopwatch::start();
    let inserted = query(sql.insert.as_str())
        .execute_many(
            &mut conn,
            rows.iter().map(|(id, name, v)| (*id, name.as_str(), *v)),
        )
        .await?;
    let batch = started.per("P5m", rows.len());
    assert_eq!(inserted as usize, rows.len());
    query(sql.clear.as_str()).execute(&mut conn).await?;
    let started = Stopwatch::start();
    let mut copy = conn.copy_in_rows(&sql.ins, &["id", "name", "v"]).await?;
    for (id, name, v) in rows.iter() {
        copy.write((*id, name.as_str(), *v)).await?;
    }
    let copied = copy.finish().await?;
    let copied_figure = started.per("P5", rows.len());
    assert_eq!(copied as usize, rows.len());
    Ok(vec![copied_figure, batch])
}

/// S6: `tasks` tasks, each running `per_task` write transactions (`BEGIN IMMEDIATE`, select,
/// update, insert, commit) on random accounts, each on a connection the engine lends it for the
/// transaction.
async fn s6(
    engine: Engine,
    tasks: usize,
    per_task: usize,
    spawner: Spawner,
) -> Result<Vec<Figure>, Error> {
    query(raw_sqlite::S6_CLEAR).execute(&engine).await?;
    let started = Stopwatch::start();
    let mut handles = Vec::with_capacity(tasks);
    for k in 0..tasks {
        let engine = engine.clone();
        handles.push(spawner.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(k as u64);
            for _ in 0..per_task {
                let (id, delta) = crate::common::pick_account(&mut rng, crate::common::ACCT_ROWS);
                let mut tx = engine
                    .begin_with(TransactionOptions::new().immediate(true))
                    .await?;
                let (balance,): (i64,) = query_as(S6_SELECT).bind(id).fetch_one(&mut tx).await?;
                black_box(balance);
                query(S6_UPDATE)
                    .bind(id)
                    .bind(delta)
                    .execute(&mut tx)
                    .await?;
                query(S6_INSERT)
                    .bind(id)
                    .bind(delta)
                    .execute(&mut tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for handle in handles {
        handle.join().await?;
    }
    Ok(started.rates(&[("S6", (tasks * per_task) as u64)]))
}

/// P6: `tasks` tasks on the engine's pool, each running `per_task` transactions (`BEGIN`,
/// `SELECT … FOR UPDATE`, update, insert, `COMMIT`) on random accounts: first with the writes
/// sent with the `COMMIT` (`tx.commit_with(pipeline)`, the P6 row), then with one await per
/// statement (`P6s`).
async fn p6(
    engine: Engine,
    sql: Arc<PgSql>,
    tasks: usize,
    per_task: usize,
    spawner: Spawner,
) -> Result<Vec<Figure>, Error> {
    let mut figures = Vec::with_capacity(2);
    for (key, pipelined) in [("P6", true), ("P6s", false)] {
        query(sql.p6_clear.as_str()).execute(&engine).await?;
        let started = Stopwatch::start();
        let mut handles = Vec::with_capacity(tasks);
        for k in 0..tasks {
            let (engine, sql) = (engine.clone(), Arc::clone(&sql));
            handles.push(spawner.spawn(async move {
                let mut rng = fastrand::Rng::with_seed(k as u64);
                for _ in 0..per_task {
                    let (id, delta) =
                        crate::common::pick_account(&mut rng, crate::common::ACCT_ROWS);
                    let mut tx = engine.begin().await?;
                    let (balance,): (i64,) = query_as(sql.p6_select.as_str())
                        .bind(id)
                        .fetch_one(&mut tx)
                        .await?;
                    black_box(balance);
                    let update = query(sql.p6_update.as_str()).bind(id).bind(delta);
                    let insert = query(sql.p6_insert.as_str()).bind(id).bind(delta);
                    if pipelined {
                        tx.commit_with(Pipeline::from_iter([update, insert]))
                            .await?;
                    } else {
                        update.execute(&mut tx).await?;
                        insert.execute(&mut tx).await?;
                        tx.commit().await?;
                    }
                }
                Ok::<(), Error>(())
            }));
        }
        for handle in handles {
            handle.join().await?;
        }
        figures.extend(started.rates(&[(key, (tasks * per_task) as u64)]));
    }
    Ok(figures)
}

/// M1 with anysql: `query(..).fetch(&mut conn)` consumed as a stream, on the runtime named by
/// `args.imp`.
pub fn m1(args: &M1Args) -> Result<(), String> {
    let base = crate::common::rss_mb("VmRSS");
    let (spawner, _runtime) = Spawner::for_impl(&args.imp)
        .ok_or_else(|| format!("unknown implementation `{}`", args.imp))?;
    let url = match args.db {
        Db::Sqlite => "sqlite::memory:".to_owned(),
        Db::Postgres => args.pg_url.clone(),
    };
    let engine = spawner.engine(&url, 1).map_err(|e| e.to_string())?;
    let sql = args.db.m1_sql(args.rows);
    let started = Stopwatch::start();
    let count = spawner
        .block_on(async move {
            let mut conn = engine.acquire().await?;
            let mut rows = query(sql.as_str()).fetch(&mut conn);
            let mut count = 0;
            while let Some(row) = rows.next().await {
                let row: Tuple = row?.decode()?;
                black_box(row);
                count += 1;
            }
            Ok::<usize, Error>(count)
        })
        .map_err(|e| e.to_string())?;
    crate::common::m1_print(count, base, started.elapsed());
    Ok(())
}
