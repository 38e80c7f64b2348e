//! sqlx 0.9 on tokio (multi-thread, 2 workers), pools with sqlx's defaults (a ping before each
//! acquire included). Each repetition runs as a task spawned on the runtime.

use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, SqlSafeStr, SqlStr};
use tokio::runtime::Handle;

use crate::common::{pick_account, ACCT_ROWS};
use crate::common::{Bench, Db, Figure, M1Args, RepResult, Sizes, Stopwatch, Workload};
use crate::raw_pg::PgTables;
use crate::raw_sqlite::{
    CHECKPOINT, CLEAR, INSERT, INSERT_AUTO, S6_CLEAR, S6_INSERT, S6_SELECT, S6_UPDATE, SELECT_ALL,
    SELECT_ONE,
};

/// The PostgreSQL pool size (the reference setup: a pool of 8).
pub const PG_MAX_CONNECTIONS: u32 = 8;
/// S3: rows per multi-row `INSERT … VALUES (…), (…)` built with `QueryBuilder::push_values`.
pub const S3_CHUNK: usize = 1000;

type Tuple = (i64, String, f64);

/// The PostgreSQL statements, with this run's table names.
#[derive(Debug)]
struct PgSql {
    select_one: SqlStr,
    select_all: SqlStr,
    insert: SqlStr,
    clear: SqlStr,
    p6_select: SqlStr,
    p6_update: SqlStr,
    p6_insert: SqlStr,
    p6_clear: SqlStr,
}

/// sqlx.
#[derive(Debug)]
pub struct SqlxBench {
    handle: Handle,
    sqlite: Option<SqlitePool>,
    pg: Option<(PgPool, Arc<PgSql>)>,
    s_rows: Arc<Vec<Tuple>>,
    p_rows: Arc<Vec<Tuple>>,
}

fn sqlite_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
}

impl SqlxBench {
    /// Pools for the SQLite file at `sqlite_path` and, if given, PostgreSQL at `pg`.
    pub fn new(
        handle: &Handle,
        sqlite_path: Option<&Path>,
        pg: Option<(&str, &PgTables)>,
        sizes: &Sizes,
    ) -> Result<SqlxBench, sqlx::Error> {
        let sqlite = match sqlite_path {
            Some(path) => {
                let options = sqlite_options(path);
                // Eight: S6 runs 8 tasks (S5 holds 5: one per reader and one for the writer).
                Some(
                    handle.block_on(
                        SqlitePoolOptions::new()
                            .max_connections(8)
                            .connect_with(options),
                    )?,
                )
            }
            None => None,
        };
        let pg = match pg {
            Some((url, tables)) => {
                let pool = handle.block_on(
                    PgPoolOptions::new()
                        .max_connections(PG_MAX_CONNECTIONS)
                        .connect(url),
                )?;
                let sql = |s: String| AssertSqlSafe(s).into_sql_str();
                Some((
                    pool,
                    Arc::new(PgSql {
                        select_one: sql(tables.select_one()),
                        select_all: sql(tables.select_all()),
                        insert: sql(tables.insert()),
                        clear: sql(tables.clear()),
                        p6_select: sql(tables.p6_select()),
                        p6_update: sql(tables.p6_update()),
                        p6_insert: sql(tables.p6_insert()),
                        p6_clear: sql(tables.p6_clear()),
                    }),
                ))
            }
            None => None,
        };
        Ok(SqlxBench {
            handle: handle.clone(),
            sqlite,
            pg,
            s_rows: Arc::new(crate::common::rows(sizes.s_rows)),
            p_rows: Arc::new(crate::common::rows(sizes.p_rows)),
        })
    }

    fn run<F>(&self, fut: F) -> RepResult
    where
        F: Future<Output = Result<Vec<Figure>, sqlx::Error>> + Send + 'static,
    {
        match self.handle.block_on(self.handle.spawn(fut)) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the task failed: {e}")),
        }
    }

    /// Closes the pools.
    pub fn close(&self) {
        let sqlite = self.sqlite.clone();
        let pg = self.pg.as_ref().map(|(pool, _)| pool.clone());
        self.handle.block_on(async move {
            if let Some(pool) = sqlite {
                pool.close().await;
            }
            if let Some(pool) = pg {
                pool.close().await;
            }
        });
    }
}

impl Bench for SqlxBench {
    fn name(&self) -> &'static str {
        "sqlx"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        if workload.is_postgres() {
            let (pool, sql) = self.pg.clone()?;
            let rows = Arc::clone(&self.p_rows);
            return Some(match workload {
                Workload::P1 => self.run(p1(pool, sql, rows.len())),
                Workload::P2 => {
                    self.run(p2(pool, sql, rows.len(), sizes.p2_tasks, sizes.p2_queries))
                }
                Workload::P3 => self.run(p3(pool, sql, sizes.p3_passes)),
                Workload::P4 => self.run(p4(pool, sql, rows)),
                Workload::P6 => self.run(p6(pool, sql, sizes.p6_tasks, sizes.p6_tx)),
                // P5 (COPY) is anysql against raw tokio-postgres only.
                _ => return None,
            });
        }
        let pool = self.sqlite.clone()?;
        let rows = Arc::clone(&self.s_rows);
        Some(match workload {
            Workload::S1 => self.run(s1(pool, rows.len())),
            Workload::S2 => self.run(s2(pool, rows)),
            Workload::S3 => self.run(s3(pool, rows)),
            Workload::S4 => self.run(s4(pool, sizes.s4_passes)),
            Workload::S5 => self.run(s5(pool, rows.len(), sizes.s5)),
            Workload::S6 => self.run(s6(pool, sizes.s6_tasks, sizes.s6_tx)),
            _ => return None,
        })
    }

    fn note(&self, workload: Workload) -> String {
        match workload {
            Workload::S3 => format!(
                "no execute-many in sqlx: QueryBuilder::push_values, multi-row INSERTs of {S3_CHUNK} rows, in a transaction"
            ),
            Workload::S5 => "5 tasks, one pooled connection each".to_owned(),
            Workload::S6 => {
                "8 tasks, pool.begin_with(\"BEGIN IMMEDIATE\") per transaction, pool of 8".to_owned()
            }
            Workload::P6 => format!("64 tasks, pool.begin() per transaction, pool of {PG_MAX_CONNECTIONS}"),
            Workload::P2 => format!("query.fetch_one(&pool) per query, pool of {PG_MAX_CONNECTIONS}"),
            _ => "one pooled connection, acquired before the clock starts".to_owned(),
        }
    }
}

async fn s1(pool: SqlitePool, n: usize) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let started = Stopwatch::start();
    for i in 0..n {
        let id = i as i64 + 1;
        let row: Tuple = sqlx::query_as(SELECT_ONE)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        black_box(row);
    }
    Ok(vec![started.per("S1", n)])
}

async fn s2(pool: SqlitePool, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(CLEAR).execute(&mut *conn).await?;
    sqlx::query(CHECKPOINT).fetch_all(&mut *conn).await?;
    let started = Stopwatch::start();
    let mut tx = conn.begin().await?;
    for (id, name, v) in rows.iter() {
        sqlx::query(INSERT)
            .bind(id)
            .bind(name.as_str())
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(vec![started.per("S2", rows.len())])
}

async fn s3(pool: SqlitePool, rows: Arc<Vec<Tuple>>) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(CLEAR).execute(&mut *conn).await?;
    sqlx::query(CHECKPOINT).fetch_all(&mut *conn).await?;
    let started = Stopwatch::start();
    let mut tx = conn.begin().await?;
    for chunk in rows.chunks(S3_CHUNK) {
        let mut builder = QueryBuilder::<Sqlite>::new("INSERT INTO t_ins (id, name, v) ");
        builder.push_values(chunk, |mut b, (id, name, v)| {
            b.push_bind(*id).push_bind(name.clone()).push_bind(*v);
        });
        builder.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(vec![started.per("S3", rows.len())])
}

async fn s4(pool: SqlitePool, passes: usize) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let started = Stopwatch::start();
    let mut total = 0;
    for _ in 0..passes {
        let all: Vec<Tuple> = sqlx::query_as(SELECT_ALL).fetch_all(&mut *conn).await?;
        total += all.len();
        black_box(all);
    }
    Ok(vec![started.per("S4", total)])
}

async fn s5(pool: SqlitePool, n: usize, duration: Duration) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(pool.acquire().await?);
    }
    let mut writer = conns.pop().expect("five connections");
    let started = Stopwatch::start();
    let deadline = started.started_at() + duration;
    let mut readers = Vec::new();
    for (k, mut conn) in conns.into_iter().enumerate() {
        readers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(k as u64);
            let mut count = 0u64;
            while Instant::now() < deadline {
                let id = rng.i64(1..=n as i64);
                let row: Tuple = sqlx::query_as(SELECT_ONE)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                black_box(row);
                count += 1;
            }
            Ok::<u64, sqlx::Error>(count)
        }));
    }
    let write = tokio::spawn(async move {
        let mut count = 0u64;
        while Instant::now() < deadline {
            sqlx::query(INSERT_AUTO)
                .bind("w")
                .bind(1.5)
                .execute(&mut *writer)
                .await?;
            count += 1;
        }
        Ok::<u64, sqlx::Error>(count)
    });
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("S5 reader panicked")?;
    }
    let writes = write.await.expect("S5 writer panicked")?;
    Ok(started.rates(&[("S5r", reads), ("S5w", writes)]))
}

async fn p1(pool: PgPool, sql: Arc<PgSql>, n: usize) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let started = Stopwatch::start();
    for i in 0..n {
        let id = i as i64 + 1;
        let row: Tuple = sqlx::query_as(sql.select_one.clone())
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        black_box(row);
    }
    Ok(vec![started.per("P1", n)])
}

async fn p2(
    pool: PgPool,
    sql: Arc<PgSql>,
    n: usize,
    tasks: usize,
    queries: usize,
) -> Result<Vec<Figure>, sqlx::Error> {
    let started = Stopwatch::start();
    let mut handles = Vec::with_capacity(tasks);
    for k in 0..tasks {
        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
        handles.push(tokio::spawn(async move {
            for j in 0..queries {
                let id = ((k * queries + j) % n) as i64 + 1;
                let row: Tuple = sqlx::query_as(sql.select_one.clone())
                    .bind(id)
                    .fetch_one(&pool)
                    .await?;
                black_box(row);
            }
            Ok::<(), sqlx::Error>(())
        }));
    }
    for handle in handles {
        handle.await.expect("P2 task panicked")?;
    }
    Ok(vec![started.per("P2", tasks * queries)])
}

async fn p3(pool: PgPool, sql: Arc<PgSql>, passes: usize) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let started = Stopwatch::start();
    let mut total = 0;
    for _ in 0..passes {
        let all: Vec<Tuple> = sqlx::query_as(sql.select_all.clone())
            .fetch_all(&mut *conn)
            .await?;
        total += all.len();
        black_box(all);
    }
    Ok(vec![started.per("P3", total)])
}

async fn p4(
    pool: PgPool,
    sql: Arc<PgSql>,
    rows: Arc<Vec<Tuple>>,
) -> Result<Vec<Figure>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query::<Postgres>(sql.clear.clone())
        .execute(&mut *conn)
        .await?;
    let started = Stopwatch::start();
    let mut tx = conn.begin().await?;
    for (id, name, v) in rows.iter() {
        sqlx::query(sql.insert.clone())
            .bind(id)
            .bind(name.as_str())
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(vec![started.per("P4", rows.len())])
}

/// S6: `tasks` tasks, each running `per_task` write transactions on random accounts.
async fn s6(pool: SqlitePool, tasks: usize, per_task: usize) -> Result<Vec<Figure>, sqlx::Error> {
    sqlx::query(S6_CLEAR).execute(&pool).await?;
    let started = Stopwatch::start();
    let mut handles = Vec::with_capacity(tasks);
    for k in 0..tasks {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(k as u64);
            for _ in 0..per_task {
                let (id, delta) = pick_account(&mut rng, ACCT_ROWS);
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let (balance,): (i64,) = sqlx::query_as(S6_SELECT)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                black_box(balance);
                sqlx::query(S6_UPDATE)
                    .bind(id)
                    .bind(delta)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(S6_INSERT)
                    .bind(id)
                    .bind(delta)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<(), sqlx::Error>(())
        }));
    }
    for handle in handles {
        handle.await.expect("S6 task panicked")?;
    }
    Ok(started.rates(&[("S6", (tasks * per_task) as u64)]))
}

/// P6: `tasks` tasks on the pool, each running `per_task` transactions on random accounts.
async fn p6(
    pool: PgPool,
    sql: Arc<PgSql>,
    tasks: usize,
    per_task: usize,
) -> Result<Vec<Figure>, sqlx::Error> {
    sqlx::query::<Postgres>(sql.p6_clear.clone())
        .execute(&pool)
        .await?;
    let started = Stopwatch::start();
    let mut handles = Vec::with_capacity(tasks);
    for k in 0..tasks {
        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(k as u64);
            for _ in 0..per_task {
                let (id, delta) = pick_account(&mut rng, ACCT_ROWS);
                let mut tx = pool.begin().await?;
                let (balance,): (i64,) = sqlx::query_as(sql.p6_select.clone())
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                black_box(balance);
                sqlx::query(sql.p6_update.clone())
                    .bind(id)
                    .bind(delta)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql.p6_insert.clone())
                    .bind(id)
                    .bind(delta)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<(), sqlx::Error>(())
        }));
    }
    for handle in handles {
        handle.await.expect("P6 task panicked")?;
    }
    Ok(started.rates(&[("P6", (tasks * per_task) as u64)]))
}

/// M1 with sqlx: `query_as(..).fetch(&mut conn)`, consumed as a stream.
pub fn m1(args: &M1Args) -> Result<(), String> {
    let base = crate::common::rss_mb("VmRSS");
    let runtime = crate::tokio_runtime();
    let sql = AssertSqlSafe(args.db.m1_sql(args.rows)).into_sql_str();
    let (db, url) = (args.db, args.pg_url.clone());
    let started = Stopwatch::start();
    let count = runtime
        .block_on(runtime.spawn(async move {
            let mut count = 0;
            match db {
                Db::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
                    let mut rows = sqlx::query_as::<_, Tuple>(sql).fetch(&mut conn);
                    while let Some(row) = rows.next().await {
                        black_box(row?);
                        count += 1;
                    }
                }
                Db::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    let mut rows = sqlx::query_as::<_, Tuple>(sql).fetch(&mut conn);
                    while let Some(row) = rows.next().await {
                        black_box(row?);
                        count += 1;
                    }
                }
            }
            Ok::<usize, sqlx::Error>(count)
        }))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    crate::common::m1_print(count, base, started.elapsed());
    Ok(())
}
