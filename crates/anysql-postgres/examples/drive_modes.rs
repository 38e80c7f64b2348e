//! Measures P1 (sequential point selects from one task) for both drive modes (inline with and
//! without busy-polling; `P1_BUSY_POLL=100us` sets its limit) on tokio
//! (multi-thread with 2 workers, and current-thread), smol and async-std, beside raw tokio-postgres
//! with its connection spawned (the README pattern) on the same runtime's socket.
//!
//! ```text
//! ANYSQL_PG_URL=postgres://root@127.0.0.1:5432/test cargo run --release -p anysql-postgres --example drive_modes
//! ```
//!
//! The runtimes are minimal stand-ins for `anysql-tokio`, `anysql-smol` and `anysql-async-std`.

use std::sync::Arc;
use std::time::Instant;

use anysql_async_std::AsyncStdRuntime;
use anysql_core::{ConnectOptions, DriverConnection, SharedRuntime, Value};
use anysql_postgres::tokio_postgres;
use anysql_postgres::{PgConnectOptions, PgConnection, PgHost};
use anysql_smol::SmolRuntime;
use anysql_tokio::TokioRuntime;

const QUERIES: usize = 2000;
const ROUNDS: usize = 9;
const ROWS: i64 = 1000;
const SELECT: &str = "SELECT id, name, v FROM {t} WHERE id = $1";

fn url() -> String {
    std::env::var("ANYSQL_PG_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

fn options(extra: &str) -> PgConnectOptions {
    let base = url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}{extra}");
    PgConnectOptions::parse(&ConnectOptions::parse(&url).unwrap()).unwrap()
}

/// The options of the spinning contender: `busy_poll` from `P1_BUSY_POLL`, else the default.
fn spin_option() -> String {
    match std::env::var("P1_BUSY_POLL") {
        Ok(limit) => format!("drive=inline&busy_poll={limit}"),
        Err(_) => "drive=inline".to_owned(),
    }
}

/// The best and the median of the per-round figures.
fn summarize(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[0], samples[samples.len() / 2])
}

/// One of the contenders.
enum Contender {
    /// Raw tokio-postgres, its connection spawned on the runtime as its README shows.
    Raw(tokio_postgres::Client, tokio_postgres::Statement),
    /// anysql-postgres.
    Anysql(Box<PgConnection>),
}

impl Contender {
    async fn raw(runtime: &SharedRuntime, sql: &str) -> Self {
        let opts = options("");
        let PgHost::Tcp { host, port } = &opts.hosts()[0] else {
            panic!("raw needs a TCP host")
        };
        let socket = runtime.connect_tcp(host, *port).await.unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .user(opts.user().unwrap_or("root"))
            .dbname(opts.dbname().unwrap_or("test"));
        let (client, connection) = config
            .connect_raw(socket, tokio_postgres::NoTls)
            .await
            .unwrap();
        runtime.spawn(Box::pin(async move {
            let _ = connection.await;
        }));
        let statement = client.prepare(sql).await.unwrap();
        Contender::Raw(client, statement)
    }

    /// anysql with these URL options.
    async fn anysql(runtime: &SharedRuntime, extra: &str) -> Self {
        Contender::Anysql(Box::new(
            PgConnection::connect(&options(extra), runtime)
                .await
                .unwrap(),
        ))
    }

    /// µs per query over `QUERIES` point selects.
    async fn round(&mut self, sql: &str) -> f64 {
        let started = Instant::now();
        for i in 0..QUERIES {
            let id = (i as i64 * 7919) % ROWS;
            match self {
                Contender::Raw(client, statement) => {
                    let row = client
                        .query_opt(&*statement, &[&id])
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(row.get::<_, i64>(0), id);
                }
                Contender::Anysql(conn) => {
                    let row = conn
                        .fetch_optional(sql, vec![Value::Int(id)])
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(row.values()[0], Value::Int(id));
                }
            }
        }
        started.elapsed().as_secs_f64() * 1e6 / QUERIES as f64
    }
}

/// Raw, inline and spawned in alternating rounds, so that the machine's noise hits them alike.
async fn p1(runtime: SharedRuntime, table: String) -> Vec<(&'static str, Vec<f64>)> {
    let sql = SELECT.replace("{t}", &table);
    let mut contenders = vec![
        ("raw tokio-postgres", Contender::raw(&runtime, &sql).await),
        (
            "inline, no spin",
            Contender::anysql(&runtime, "drive=inline&busy_poll=0").await,
        ),
        (
            "inline, spin",
            Contender::anysql(&runtime, &spin_option()).await,
        ),
        (
            "spawned",
            Contender::anysql(&runtime, "drive=spawned").await,
        ),
    ];
    for (_, contender) in &mut contenders {
        contender.round(&sql).await;
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _ in 0..ROUNDS {
        for (i, (_, contender)) in contenders.iter_mut().enumerate() {
            samples[i].push(contender.round(&sql).await);
        }
    }
    contenders
        .into_iter()
        .map(|(name, _)| name)
        .zip(samples)
        .collect()
}

async fn setup(runtime: SharedRuntime) -> String {
    let table = format!("anysql_p1_{}", std::process::id());
    let mut conn = PgConnection::connect(&options(""), &runtime).await.unwrap();
    conn.execute(&format!("DROP TABLE IF EXISTS {table}"), vec![])
        .await
        .unwrap();
    conn.execute(
        &format!("CREATE TABLE {table} (id int8 PRIMARY KEY, name text, v float8)"),
        vec![],
    )
    .await
    .unwrap();
    let sets = (0..ROWS).map(|i| {
        vec![
            Value::Int(i),
            Value::Text(format!("name {i}")),
            Value::Float(i as f64 / 3.0),
        ]
    });
    conn.execute_many(
        &format!("INSERT INTO {table} VALUES ($1, $2, $3)"),
        Box::new(sets),
    )
    .await
    .unwrap();
    conn.execute(&format!("ANALYZE {table}"), vec![])
        .await
        .unwrap();
    table
}

async fn teardown(runtime: SharedRuntime, table: String) {
    let mut conn = PgConnection::connect(&options(""), &runtime).await.unwrap();
    conn.execute(&format!("DROP TABLE {table}"), vec![])
        .await
        .unwrap();
}

fn report(runtime: &str, results: Vec<(&'static str, Vec<f64>)>) {
    let raw = summarize(results[0].1.clone()).1;
    for (what, samples) in results {
        let (best, median) = summarize(samples);
        println!(
            "| {runtime:<24} | {what:<18} | {best:>6.1} | {median:>6.1} | {:>5.2} |",
            median / raw
        );
    }
}

fn main() {
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mt_rt: SharedRuntime = Arc::new(TokioRuntime::from_handle(mt.handle().clone()));
    let ct_rt: SharedRuntime = Arc::new(TokioRuntime::from_handle(ct.handle().clone()));
    let table = mt.block_on(setup(mt_rt.clone()));
    if let Ok(only) = std::env::var("P1_PROFILE") {
        // One contender on tokio current-thread, for profiling: P1_PROFILE=raw|inline|spawned.
        let sql = SELECT.replace("{t}", &table);
        let rounds = ct.block_on(async {
            let mut contender = match only.as_str() {
                "raw" => Contender::raw(&ct_rt, &sql).await,
                drive => Contender::anysql(&ct_rt, &format!("drive={drive}")).await,
            };
            let mut samples = Vec::new();
            for _ in 0..ROUNDS * 3 {
                samples.push(contender.round(&sql).await);
            }
            samples
        });
        println!("{only}: best and median {:?}", summarize(rounds));
        mt.block_on(teardown(mt_rt, table));
        return;
    }

    println!(
        "P1: sequential point selects from one task, µs per query over {QUERIES} queries: best and median of \
         {ROUNDS} rounds, contenders alternating; ratio = median / raw median"
    );
    println!("| runtime                  | contender          |   best | median | ratio |");
    println!("|--------------------------|--------------------|--------|--------|-------|");
    // On the multi-thread runtime the benchmark runs as a task on a worker, as in an application.
    report(
        "tokio multi-thread (2)",
        mt.block_on(mt.spawn(p1(mt_rt.clone(), table.clone())))
            .unwrap(),
    );
    report(
        "tokio current-thread",
        ct.block_on(p1(ct_rt, table.clone())),
    );
    report(
        "smol (block_on)",
        smol::block_on(p1(Arc::new(SmolRuntime::new()), table.clone())),
    );
    let task = async_std::task::spawn(p1(Arc::new(AsyncStdRuntime::new()), table.clone()));
    report("async-std (task)", async_std::task::block_on(task));
    mt.block_on(teardown(mt_rt, table));
}
