//! The PostgreSQL physical limit: tokio-postgres on a tokio multi-thread runtime (2 workers), with its
//! `Connection` spawned as its README shows. P2 shares one client between all tasks, which pipelines.
//! Also creates (and drops) the PostgreSQL tables every implementation of this process reads.
//!
//! Shared with the peers binary (through `#[path]`).

use std::hint::black_box;
use std::sync::Arc;

use futures_lite::StreamExt;
use tokio::runtime::Handle;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};

use crate::common::{Bench, Db, Figure, M1Args, RepResult, Sizes, Stopwatch, Workload};

/// This run's tables: `<prefix>_t` (the data) and `<prefix>_ins` (the insert target).
#[derive(Clone, Debug)]
pub struct PgTables {
    /// The table every query reads.
    pub t: String,
    /// The table P4 and P5 insert into.
    pub ins: String,
    /// P6's accounts ([`ACCT_ROWS`](crate::common::ACCT_ROWS) rows).
    pub acct: String,
    /// P6's history, one row per transaction.
    pub hist: String,
}

impl PgTables {
    /// Tables named after `prefix`.
    pub fn new(prefix: &str) -> PgTables {
        PgTables {
            t: format!("{prefix}_t"),
            ins: format!("{prefix}_ins"),
            acct: format!("{prefix}_acct"),
            hist: format!("{prefix}_hist"),
        }
    }

    /// P6: the account's balance, its row locked until the transaction ends.
    pub fn p6_select(&self) -> String {
        format!("SELECT balance FROM {} WHERE id = $1 FOR UPDATE", self.acct)
    }

    /// P6: the account's update.
    pub fn p6_update(&self) -> String {
        format!(
            "UPDATE {} SET balance = balance + $2 WHERE id = $1",
            self.acct
        )
    }

    /// P6: the history row.
    pub fn p6_insert(&self) -> String {
        format!("INSERT INTO {} (acct, delta) VALUES ($1, $2)", self.hist)
    }

    /// Empties the history table before each P6 repetition (not timed).
    pub fn p6_clear(&self) -> String {
        format!("TRUNCATE {}", self.hist)
    }

    /// Every table of this run, for `DROP TABLE`.
    pub fn all(&self) -> String {
        format!("{}, {}, {}, {}", self.t, self.ins, self.acct, self.hist)
    }

    /// One point select by primary key.
    pub fn select_one(&self) -> String {
        format!("SELECT id, name, v FROM {} WHERE id = $1", self.t)
    }

    /// The whole table.
    pub fn select_all(&self) -> String {
        format!("SELECT id, name, v FROM {}", self.t)
    }

    /// One row into the insert table.
    pub fn insert(&self) -> String {
        format!("INSERT INTO {} (id, name, v) VALUES ($1, $2, $3)", self.ins)
    }

    /// The binary COPY into the insert table (P5).
    pub fn copy_binary(&self) -> String {
        format!("COPY {} (id, name, v) FROM STDIN (FORMAT binary)", self.ins)
    }

    /// Empties the insert table (not timed).
    pub fn clear(&self) -> String {
        format!("TRUNCATE {}", self.ins)
    }
}

/// Connects the README way: `tokio_postgres::connect`, then `tokio::spawn(connection)`.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// tokio-postgres.
#[derive(Debug)]
pub struct RawPg {
    handle: Handle,
    client: Arc<Client>,
    tables: PgTables,
    rows: Arc<Vec<(i64, String, f64)>>,
    select_one: Statement,
    select_all: Statement,
    insert: Statement,
    dropped: bool,
}

impl RawPg {
    /// Connects, creates this run's tables with `n` rows in `t`, and prepares the statements.
    pub fn setup(handle: &Handle, url: &str, tables: PgTables, n: usize) -> Result<RawPg, String> {
        let url = url.to_owned();
        RawPg::setup_with(handle, async move { connect(&url).await }, tables, n)
    }

    /// [`setup`](Self::setup) with the client that `connect` gives (over TLS, say).
    pub fn setup_with<C>(
        handle: &Handle,
        connect: C,
        tables: PgTables,
        n: usize,
    ) -> Result<RawPg, String>
    where
        C: std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static,
    {
        let t = tables.clone();
        let (client, select_one, select_all, insert) = handle
            .block_on(handle.spawn(async move {
                let client = connect.await?;
                client
                    .batch_execute(&format!(
                        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT, v DOUBLE PRECISION);
                         CREATE TABLE {ins} (id BIGINT PRIMARY KEY, name TEXT, v DOUBLE PRECISION);
                         INSERT INTO {t} SELECT g, 'name-' || g, g * 0.25 FROM generate_series(1, {n}) AS g;
                         CREATE TABLE {acct} (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
                         CREATE TABLE {hist} (acct BIGINT NOT NULL, delta BIGINT NOT NULL);
                         INSERT INTO {acct} SELECT g, 0 FROM generate_series(1, {acct_rows}) AS g;
                         ANALYZE {t};
                         ANALYZE {acct};",
                        t = t.t,
                        ins = t.ins,
                        acct = t.acct,
                        hist = t.hist,
                        acct_rows = crate::common::ACCT_ROWS,
                    ))
                    .await?;
                let select_one = client.prepare(&t.select_one()).await?;
                let select_all = client.prepare(&t.select_all()).await?;
                let insert = client.prepare(&t.insert()).await?;
                Ok::<_, tokio_postgres::Error>((client, select_one, select_all, insert))
            }))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(RawPg {
            handle: handle.clone(),
            client: Arc::new(client),
            tables,
            rows: Arc::new(crate::common::rows(n)),
            select_one,
            select_all,
            insert,
            dropped: false,
        })
    }

    /// Drops this run's tables (also done on drop, errors ignored, if not done before).
    pub fn drop_tables(&mut self) -> Result<(), String> {
        self.dropped = true;
        let client = Arc::clone(&self.client);
        let sql = format!("DROP TABLE IF EXISTS {}", self.tables.all());
        self.handle
            .block_on(async move { client.batch_execute(&sql).await })
            .map_err(|e| e.to_string())
    }

    fn run<F>(&self, fut: F) -> RepResult
    where
        F: std::future::Future<Output = Result<Vec<Figure>, tokio_postgres::Error>>
            + Send
            + 'static,
    {
        match self.handle.block_on(self.handle.spawn(fut)) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the task failed: {e}")),
        }
    }
}

impl Drop for RawPg {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = self.drop_tables();
        }
    }
}

fn decode(row: &tokio_postgres::Row) -> (i64, String, f64) {
    (row.get(0), row.get(1), row.get(2))
}

impl Bench for RawPg {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        let client = Arc::clone(&self.client);
        let n = self.rows.len();
        Some(match workload {
            Workload::P1 => {
                let stmt = self.select_one.clone();
                self.run(async move {
                    let started = Stopwatch::start();
                    for i in 0..n {
                        let id = i as i64 + 1;
                        black_box(decode(&client.query_one(&stmt, &[&id]).await?));
                    }
                    Ok(vec![started.per("P1", n)])
                })
            }
            Workload::P2 => {
                let stmt = self.select_one.clone();
                let (tasks, queries) = (sizes.p2_tasks, sizes.p2_queries);
                self.run(async move {
                    let started = Stopwatch::start();
                    let mut handles = Vec::with_capacity(tasks);
                    for k in 0..tasks {
                        let (client, stmt) = (Arc::clone(&client), stmt.clone());
                        handles.push(tokio::spawn(async move {
                            for j in 0..queries {
                                let id = ((k * queries + j) % n) as i64 + 1;
                                black_box(decode(&client.query_one(&stmt, &[&id]).await?));
                            }
                            Ok::<(), tokio_postgres::Error>(())
                        }));
                    }
                    for handle in handles {
                        handle.await.expect("P2 task panicked")?;
                    }
                    Ok(vec![started.per("P2", tasks * queries)])
                })
            }
            Workload::P3 => {
                let stmt = self.select_all.clone();
                let passes = sizes.p3_passes;
                self.run(async move {
                    let started = Stopwatch::start();
                    let mut total = 0;
                    for _ in 0..passes {
                        let rows: Vec<_> =
                            client.query(&stmt, &[]).await?.iter().map(decode).collect();
                        total += rows.len();
                        black_box(rows);
                    }
                    Ok(vec![started.per("P3", total)])
                })
            }
            Workload::P4 => {
                let stmt = self.insert.clone();
                let clear = self.tables.clear();
                let rows = Arc::clone(&self.rows);
                self.run(async move {
                    client.batch_execute(&clear).await?;
                    let started = Stopwatch::start();
                    client.batch_execute("BEGIN").await?;
                    for (id, name, v) in rows.iter() {
                        client.execute(&stmt, &[id, name, v]).await?;
                    }
                    client.batch_execute("COMMIT").await?;
                    Ok(vec![started.per("P4", rows.len())])
                })
            }
            Workload::P5 => {
                let clear = self.tables.clear();
                let copy = self.tables.copy_binary();
                let rows = crate::common::rows(sizes.p5_rows);
                self.run(async move {
                    client.batch_execute(&clear).await?;
                    let started = Stopwatch::start();
                    let sink = client.copy_in(&copy).await?;
                    let types = [Type::INT8, Type::TEXT, Type::FLOAT8];
                    let writer = BinaryCopyInWriter::new(sink, &types);
                    let mut writer = std::pin::pin!(writer);
                    for (id, name, v) in &rows {
                        writer.as_mut().write(&[id, name, v]).await?;
                    }
                    let copied = writer.finish().await?;
                    assert_eq!(copied as usize, rows.len());
                    Ok(vec![started.per("P5", rows.len())])
                })
            }
            _ => return None,
        })
    }

    fn note(&self, workload: Workload) -> String {
        match workload {
            Workload::P2 => "one shared client, pipelined".to_owned(),
            Workload::P5 => "copy_in + BinaryCopyInWriter, column types known".to_owned(),
            Workload::P4 => {
                "BEGIN, one prepared execute per row awaited in turn, COMMIT".to_owned()
            }
            _ => "prepared statement, connection spawned on tokio (2 workers)".to_owned(),
        }
    }
}

/// M1 with tokio-postgres: `query_raw`, consumed as a stream.
pub fn m1(args: &M1Args) -> Result<(), String> {
    assert_eq!(args.db, Db::Postgres);
    let base = crate::common::rss_mb("VmRSS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::common::EXECUTOR_THREADS)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let url = args.pg_url.clone();
    let sql = args.db.m1_sql(args.rows);
    let started = Stopwatch::start();
    let count = runtime
        .block_on(runtime.spawn(async move {
            let client = connect(&url).await?;
            let stream = client
                .query_raw(sql.as_str(), std::iter::empty::<i64>())
                .await?;
            let mut stream = std::pin::pin!(stream);
            let mut count = 0;
            while let Some(row) = stream.next().await {
                black_box(decode(&row?));
                count += 1;
            }
            Ok::<usize, tokio_postgres::Error>(count)
        }))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    crate::common::m1_print(count, base, started.elapsed());
    Ok(())
}
