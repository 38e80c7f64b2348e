//! Test support: a minimal tokio [`Runtime`], connection helpers and unique names.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anysql_core::{ConnectOptions, DriverConnection, Error, ErrorKind, SharedRuntime};
use anysql_postgres::{PgConnectOptions, PgConnection};

/// The tokio runtime of the current test.
pub struct TestTokio;

impl TestTokio {
    pub fn shared() -> SharedRuntime {
        Arc::new(anysql_tokio::TokioRuntime::current().expect("inside a tokio test"))
    }
}

/// The server under test.
pub fn base_url() -> String {
    std::env::var("ANYSQL_PG_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// `base_url()` with extra query options.
pub fn url_with(extra: &str) -> String {
    let base = base_url();
    if extra.is_empty() {
        base
    } else if base.contains('?') {
        format!("{base}&{extra}")
    } else {
        format!("{base}?{extra}")
    }
}

pub fn options(url: &str) -> PgConnectOptions {
    PgConnectOptions::parse(&ConnectOptions::parse(url).expect("url")).expect("options")
}

/// Connects, or returns `None` (test skipped) when no server answers, unless `CI=true`.
pub async fn try_connect(url: &str) -> Option<PgConnection> {
    match PgConnection::connect(&options(url), &TestTokio::shared()).await {
        Ok(conn) => Some(conn),
        Err(e)
            if e.kind() == ErrorKind::Connection
                && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("SKIPPED: no PostgreSQL server at {url}: {e}");
            None
        }
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

pub async fn connect(url: &str) -> Result<PgConnection, Error> {
    PgConnection::connect(&options(url), &TestTokio::shared()).await
}

/// A name no parallel test run uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Both drive modes, as URL options; inline with busy-polling off, by default (200 µs) and at its
/// longest (so that nearly every reply is read while spinning).
pub const MODES: [&str; 4] = [
    "drive=inline",
    "drive=inline&busy_poll=0",
    "drive=inline&busy_poll=10ms",
    "drive=spawned",
];

/// The end of transaction control on a driver connection, as the core runs it: SQL through
/// `execute`. (It starts transactions with `DriverConnection::begin`, which the PostgreSQL driver
/// defers to the first statement.)
pub trait Transactions {
    async fn commit(&mut self) -> Result<(), Error>;
    async fn rollback(&mut self) -> Result<(), Error>;
}

impl<T: DriverConnection> Transactions for T {
    async fn commit(&mut self) -> Result<(), Error> {
        self.execute("COMMIT", vec![]).await.map(drop)
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        self.execute("ROLLBACK", vec![]).await.map(drop)
    }
}

/// Runs `test` once on each runtime, or not at all when no server answers (unless `CI=true`).
pub fn on_every_runtime<F, Fut>(test: F)
where
    F: Fn(SharedRuntime) -> Fut,
    Fut: Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle: SharedRuntime = Arc::new(anysql_tokio::TokioRuntime::from_handle(
        tokio.handle().clone(),
    ));
    let up = tokio.block_on({
        let handle = Arc::clone(&handle);
        async move {
            let url = url_with("");
            match PgConnection::connect(&options(&url), &handle).await {
                Ok(_) => true,
                Err(e)
                    if e.kind() == ErrorKind::Connection
                        && std::env::var("CI").as_deref() != Ok("true") =>
                {
                    eprintln!("SKIPPED: no PostgreSQL server at {url}: {e}");
                    false
                }
                Err(e) => panic!("connecting to {url}: {e}"),
            }
        }
    });
    if !up {
        return;
    }
    tokio.block_on(test(handle));
    smol::block_on(test(Arc::new(anysql_smol::SmolRuntime::new())));
    async_std::task::block_on(test(Arc::new(anysql_async_std::AsyncStdRuntime::new())));
}
