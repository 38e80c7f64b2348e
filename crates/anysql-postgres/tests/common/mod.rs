//! Test support: a minimal tokio [`Runtime`], connection helpers and unique names.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anysql_core::runtime::BoxFuture;
use anysql_core::{BoxSocket, ConnectOptions, Error, ErrorKind, Runtime, SharedRuntime};
use anysql_postgres::{PgConnectOptions, PgConnection};
use async_trait::async_trait;

/// A tokio runtime for the tests, standing in for `anysql-tokio`.
#[derive(Debug)]
pub struct TestTokio(tokio::runtime::Handle);

impl TestTokio {
    pub fn shared() -> SharedRuntime {
        Arc::new(TestTokio(tokio::runtime::Handle::current()))
    }
}

#[async_trait]
impl Runtime for TestTokio {
    fn name(&self) -> &'static str {
        "tokio-test"
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.0.spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let _guard = self.0.enter();
        Box::pin(tokio::time::sleep(duration))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<BoxSocket> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }

    async fn connect_unix(&self, path: &Path) -> io::Result<BoxSocket> {
        Ok(Box::new(tokio::net::UnixStream::connect(path).await?))
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

/// Both drive modes, as URL options.
pub const MODES: [&str; 2] = ["drive=inline", "drive=spawned"];
