//! Measures the P6 shape: 64 tasks on a pool of 8 connections, each looping `BEGIN; SELECT … FOR
//! UPDATE; UPDATE; INSERT; COMMIT` on random rows of a 10,000-row table, on tokio (multi-thread,
//! 2 workers). Three contenders, measured in turns within one run:
//!
//! - `anysql`: `Connection::begin`, whose `BEGIN` travels with the `SELECT` (4 round trips per
//!   transaction);
//! - `anysql, BEGIN alone`: the same statements with `BEGIN` and `COMMIT` run as SQL through
//!   `execute`, a round trip each (5 round trips, as `begin` cost before the `BEGIN` was deferred);
//! - `tokio-postgres`: raw tokio-postgres clients (connections spawned, statements prepared once)
//!   in a pool of 8 behind a semaphore, with `Client::transaction` (5 round trips).
//!
//! Then the same with one task on one connection, whose time per transaction is the round trips'.
//!
//! ```text
//! ANYSQL_PG_URL=postgres://root@127.0.0.1:5432/test cargo run --release -p anysql-postgres --example p6_transactions
//! ```
//!
//! `P6_SECONDS` sets the length of each turn (default 3), `P6_ROUNDS` the number of turns per
//! contender (default 3). `P6_SYNC_COMMIT=off` runs every session with `synchronous_commit=off`,
//! so that a `COMMIT` does not wait for the WAL flush and the round trips dominate. `P6_ONLY`
//! (`anysql`, `alone` or `raw`) runs one contender alone, and the one-task part only (for
//! counting the writes of each, under `strace -c -f -e trace=sendto,write,writev`): it prints how
//! many transactions ran in all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anysql_core::{Engine, EngineBuilder, Error, SharedRuntime};
use anysql_postgres::tokio_postgres;
use anysql_postgres::{PgConnectOptions, PgHost, PostgresDriver};
use anysql_tokio::TokioRuntime;

const ROWS: i64 = 10_000;
const SELECT: &str = "SELECT balance FROM p6_accounts WHERE id = $1 FOR UPDATE";
const UPDATE: &str = "UPDATE p6_accounts SET balance = balance + $2 WHERE id = $1";
const INSERT: &str = "INSERT INTO p6_history (account, delta) VALUES ($1, $2)";

fn url() -> String {
    let base = std::env::var("ANYSQL_PG_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    match sync_commit() {
        Some(value) => {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20synchronous_commit%3D{value}")
        }
        None => base,
    }
}

fn sync_commit() -> Option<String> {
    std::env::var("P6_SYNC_COMMIT").ok()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Deferred,
    BeginAlone,
    Raw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deferred => "anysql",
            Kind::BeginAlone => "anysql, BEGIN alone",
            Kind::Raw => "tokio-postgres",
        }
    }
}

/// A pool of raw tokio-postgres clients, each with its statements prepared.
struct RawPool {
    permits: tokio::sync::Semaphore,
    clients: Mutex<Vec<RawClient>>,
}

struct RawClient {
    client: tokio_postgres::Client,
    select: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

impl RawPool {
    async fn open(runtime: &SharedRuntime, size: usize) -> Arc<RawPool> {
        let options =
            PgConnectOptions::parse(&anysql_core::ConnectOptions::parse(&url()).unwrap()).unwrap();
        let PgHost::Tcp { host, port } = &options.hosts()[0] else {
            panic!("the raw contender needs a TCP host")
        };
        let mut clients = Vec::new();
        for _ in 0..size {
            let socket = runtime.connect_tcp(host, *port).await.unwrap();
            let mut config = tokio_postgres::Config::new();
            config
                .user(options.user().unwrap_or("root"))
                .dbname(options.dbname().unwrap_or("test"));
            if let Some(value) = sync_commit() {
                config.options(format!("-c synchronous_commit={value}"));
            }
            let (client, connection) = config
                .connect_raw(socket, tokio_postgres::NoTls)
                .await
                .unwrap();
            runtime.spawn(Box::pin(async move {
                let _ = connection.await;
            }));
            let select = client.prepare(SELECT).await.unwrap();
            let update = client.prepare(UPDATE).await.unwrap();
            let insert = client.prepare(INSERT).await.unwrap();
            clients.push(RawClient {
                client,
                select,
                update,
                insert,
            });
        }
        Arc::new(RawPool {
            permits: tokio::sync::Semaphore::new(size),
            clients: Mutex::new(clients),
        })
    }

    async fn transaction(&self, id: i64, delta: i64) -> Result<(), tokio_postgres::Error> {
        let _permit = self.permits.acquire().await.unwrap();
        let mut raw = self
            .clients
            .lock()
            .unwrap()
            .pop()
            .expect("a client per permit");
        let result = async {
            let tx = raw.client.transaction().await?;
            let row = tx.query_one(&raw.select, &[&id]).await?;
            let _balance: i64 = row.get(0);
            tx.execute(&raw.update, &[&id, &delta]).await?;
            tx.execute(&raw.insert, &[&id, &delta]).await?;
            tx.commit().await
        }
        .await;
        self.clients.lock().unwrap().push(raw);
        result
    }
}

async fn anysql_transaction(engine: &Engine, kind: Kind, id: i64, delta: i64) -> Result<(), Error> {
    let mut conn = engine.acquire().await?;
    match kind {
        Kind::Deferred => {
            let mut tx = conn.begin().await?;
            let _balance: i64 = tx.fetch_scalar(SELECT, (id,)).await?;
            tx.execute(UPDATE, (id, delta)).await?;
            tx.execute(INSERT, (id, delta)).await?;
            tx.commit().await
        }
        _ => {
            conn.execute("BEGIN", ()).await?;
            let _balance: i64 = conn.fetch_scalar(SELECT, (id,)).await?;
            conn.execute(UPDATE, (id, delta)).await?;
            conn.execute(INSERT, (id, delta)).await?;
            conn.execute("COMMIT", ()).await.map(drop)
        }
    }
}

/// Runs `tasks` tasks for `seconds`; returns transactions per second.
async fn turn(
    runtime: &tokio::runtime::Handle,
    kind: Kind,
    engine: &Engine,
    raw: &Arc<RawPool>,
    tasks: usize,
    seconds: f64,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let started = Instant::now();
    for _ in 0..tasks {
        let (stop, done, engine, raw) = (stop.clone(), done.clone(), engine.clone(), raw.clone());
        handles.push(runtime.spawn(async move {
            let mut rng = fastrand::Rng::new();
            while !stop.load(Ordering::Relaxed) {
                let id = rng.i64(1..=ROWS);
                let delta = rng.i64(-100..=100);
                match kind {
                    Kind::Raw => raw.transaction(id, delta).await.unwrap(),
                    _ => anysql_transaction(&engine, kind, id, delta).await.unwrap(),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let seconds = env_or("P6_SECONDS", 3) as f64;
    let rounds = env_or("P6_ROUNDS", 3) as usize;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = tokio.handle().clone();
    tokio.block_on(async move {
        let runtime: SharedRuntime = Arc::new(TokioRuntime::from_handle(handle.clone()));
        let engine_with = |size: usize| {
            EngineBuilder::new(&url())
                .driver(PostgresDriver)
                .shared_runtime(runtime.clone())
                .max_size(size)
                .min_idle(size)
                .build()
                .unwrap()
        };
        let engine = engine_with(8);
        engine
            .execute(
                "DROP TABLE IF EXISTS p6_history; DROP TABLE IF EXISTS p6_accounts; \
                 CREATE TABLE p6_accounts (id int8 PRIMARY KEY, balance int8 NOT NULL); \
                 CREATE TABLE p6_history (id bigserial PRIMARY KEY, account int8 NOT NULL, \
                 delta int8 NOT NULL)",
                (),
            )
            .await
            .unwrap();
        engine
            .execute(
                "INSERT INTO p6_accounts SELECT g, 0 FROM generate_series(1, $1::int8) g",
                (ROWS,),
            )
            .await
            .unwrap();
        let raw8 = RawPool::open(&runtime, 8).await;
        if let Ok(only) = std::env::var("P6_ONLY") {
            let kind = match only.as_str() {
                "anysql" => Kind::Deferred,
                "alone" => Kind::BeginAlone,
                _ => Kind::Raw,
            };
            let (engine, raw) = (engine_with(1), RawPool::open(&runtime, 1).await);
            let tps = turn(&handle, kind, &engine, &raw, 1, seconds).await;
            println!("{}: {:.0} transactions", kind.name(), tps * seconds);
            return;
        }
        let kinds = [Kind::Deferred, Kind::BeginAlone, Kind::Raw];
        for (label, tasks, engine, raw) in [
            ("64 tasks, pool of 8", 64, engine.clone(), raw8),
            (
                "1 task, pool of 1",
                1,
                engine_with(1),
                RawPool::open(&runtime, 1).await,
            ),
        ] {
            // Warm up every contender (statement caches, connections).
            for kind in kinds {
                turn(&handle, kind, &engine, &raw, tasks, 0.5).await;
            }
            let mut samples = vec![Vec::new(); kinds.len()];
            for _ in 0..rounds {
                for (i, kind) in kinds.iter().enumerate() {
                    samples[i].push(turn(&handle, *kind, &engine, &raw, tasks, seconds).await);
                }
            }
            let medians: Vec<f64> = samples.into_iter().map(median).collect();
            println!("P6, {label} ({rounds} turns of {seconds} s each, medians):");
            for (kind, tps) in kinds.iter().zip(&medians) {
                println!(
                    "  {:<22} {:>9.0} tx/s  {:>7.1} µs/tx  x{:.2} of tokio-postgres",
                    kind.name(),
                    tps,
                    1e6 / tps,
                    tps / medians[2],
                );
            }
        }
        engine
            .execute("DROP TABLE p6_history; DROP TABLE p6_accounts", ())
            .await
            .unwrap();
    });
}
