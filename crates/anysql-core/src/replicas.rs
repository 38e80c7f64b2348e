//! Read replicas: [`Replica`] pools beside an engine's primary one, and the [`Reader`] that sends
//! the reads a caller marks as such to them.

// As in the query module: the executor's futures name their `Send` bound in the signature.
#![allow(clippy::manual_async_fn)]

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::{first_column, row_not_found, Connection};
use crate::driver::ParamSets;
use crate::engine::Engine;
use crate::error::Error;
use crate::params::Params;
use crate::pool::{PoolMetrics, PoolStatus};
use crate::query::{forward, generate, sealed, BoxStream, Executor};
use crate::row::{FromRow, Row};
use crate::runtime::BoxFuture;
use crate::transaction::Transaction;
use crate::transaction_options::TransactionOptions;
use crate::value::{FromValue, Value};

/// How long a replica that could not be connected to is skipped before it is tried again.
pub(crate) const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(2);

/// One read replica of an [`Engine`]: a pool of its own, with its status and metrics.
///
/// From [`Engine::replicas`]. Replicas come from the builder
/// ([`EngineBuilder::replica`](crate::EngineBuilder::replica)) or from the URL (PostgreSQL's
/// `replica_hosts` option).
pub struct Replica {
    engine: Engine,
    /// Until when the replica is skipped, after a failed connect.
    down_until: Mutex<Option<Instant>>,
}

impl Replica {
    pub(crate) fn new(engine: Engine) -> Self {
        Replica {
            engine,
            down_until: Mutex::new(None),
        }
    }

    /// The replica's own engine (its pool), for statements that must run on this replica.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The replica's URL, with its password replaced by `***`.
    pub fn url(&self) -> &str {
        self.engine.url()
    }

    /// A snapshot of the replica's pool.
    pub fn status(&self) -> PoolStatus {
        self.engine.status()
    }

    /// The replica pool's counters since the engine was built.
    pub fn metrics(&self) -> PoolMetrics {
        self.engine.metrics()
    }

    /// Whether reads go to this replica now: `false` for a while after connecting to it failed
    /// (then it is skipped, and tried again a little later).
    pub fn is_available(&self) -> bool {
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.is_none_or(|until| Instant::now() >= until)
    }

    fn mark_down(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REPLICA_RETRY_AFTER);
    }

    fn mark_up(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("url", &self.url())
            .field("available", &self.is_available())
            .field("status", &self.status())
            .finish()
    }
}

/// An engine's replicas, and whose turn it is.
#[derive(Default)]
pub(crate) struct ReplicaSet {
    pub(crate) replicas: Vec<Replica>,
    next: AtomicUsize,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: Vec<Replica>) -> Self {
        ReplicaSet {
            replicas,
            next: AtomicUsize::new(0),
        }
    }
}

/// Runs the reads a caller marks as such on a read replica: from [`Engine::reader`].
///
/// Each operation takes a connection from the next available replica, round robin. A replica
/// that cannot be connected to is skipped (and left out for two seconds); when none is left, or
/// the engine has none, the operation runs on the primary. Statements through a reader run on the
/// replica as they are: a write there fails as the database refuses it (PostgreSQL: `25006`,
/// read-only transaction). Writes, and [`Engine::begin`] and [`Engine::transaction`], go through
/// the engine, to the primary.
///
/// `&Reader` is an [`Executor`], so the query builders take it:
///
/// ```
/// # use anysql_core::{query_scalar, Engine, Error};
/// async fn count_orders(engine: &Engine) -> Result<i64, Error> {
///     let reader = engine.reader();
///     query_scalar("SELECT count(*) FROM orders").fetch_one(&reader).await
/// }
/// ```
///
/// A transaction begun through it ([`Executor::begin`]) runs on the replica: a consistent
/// snapshot for several reads.
///
/// A replica that does not answer at all (a host that drops packets) holds each read for as
/// long as connecting to it may take: give replica URLs a short `connect_timeout` (PostgreSQL),
/// or the builder a short [`acquire_timeout`](crate::EngineBuilder::acquire_timeout).
#[derive(Clone)]
pub struct Reader {
    engine: Engine,
}

impl Reader {
    pub(crate) fn new(engine: Engine) -> Self {
        Reader { engine }
    }

    /// Takes a connection from a replica (or from the primary, when no replica is available).
    pub async fn acquire(&self) -> Result<Connection, Error> {
        let set = &self.engine.replicas;
        let count = set.replicas.len();
        if count > 0 && !self.engine.is_closed() {
            let start = set.next.fetch_add(1, Ordering::Relaxed);
            for offset in 0..count {
                let replica = &set.replicas[(start + offset) % count];
                if !replica.is_available() {
                    continue;
                }
                match replica.engine.acquire().await {
                    Ok(conn) => {
                        replica.mark_up();
                        return Ok(conn);
                    }
                    // Down, refusing logins, or its pool exhausted: the next one, or the primary.
                    Err(_) => replica.mark_down(),
                }
            }
        }
        self.engine.acquire().await
    }

    /// Runs a statement on a replica and returns the number of rows it changed (for statements
    /// that read, such as a `SELECT` of a function, or session settings).
    pub fn execute<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire().await?.execute(sql, params).await }
    }

    /// Runs a query on a replica and collects its rows.
    pub fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire().await?.fetch_all(sql, params).await }
    }

    /// Runs a query on a replica and decodes every row into `T`.
    pub fn fetch_all_as<'a, T: FromRow + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire().await?.fetch_all_as(sql, params).await }
    }

    /// Runs a query on a replica and returns its first row, if any.
    pub fn fetch_optional<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move { self.acquire().await?.fetch_optional(sql, params).await }
    }

    /// Runs a query on a replica and returns its first row, or a
    /// [`RowNotFound`](crate::ErrorKind::RowNotFound) error.
    pub fn fetch_one<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        let optional = self.fetch_optional(sql, params);
        async move { optional.await?.ok_or_else(row_not_found) }
    }

    /// Runs a query on a replica and decodes the first column of its first row.
    pub fn fetch_scalar<'a, T: FromValue + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a {
        let one = self.fetch_one(sql, params);
        async move { first_column(one.await?) }
    }

    /// Runs a query on a replica and streams its rows; the stream holds the replica's connection
    /// until it ends.
    pub fn fetch<'a>(&'a self, sql: &'a str, params: impl Params) -> BoxStream<'a, Row> {
        crate::query::query(sql).bind_all(params).fetch(self)
    }

    /// The engine whose replicas this reader uses.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("primary", &self.engine.url())
            .field("replicas", &self.engine.replicas())
            .finish()
    }
}

impl sealed::Sealed for &Reader {}

/// A reader runs each query on a connection of a replica (see [`Reader`]).
impl<'c> Executor<'c> for &'c Reader {
    fn run_execute(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        async move { self.acquire().await?.execute(&sql, params).await }
    }

    fn run_execute_many(
        self,
        sql: Cow<'c, str>,
        sets: ParamSets<'c>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        async move { self.acquire().await?.execute_many_sets(&sql, sets).await }
    }

    fn run_fetch_all<T: FromRow + Send + 'c>(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c {
        async move { self.acquire().await?.fetch_all_as(&sql, params).await }
    }

    fn run_fetch_optional(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c {
        async move { self.acquire().await?.fetch_optional(&sql, params).await }
    }

    fn run_fetch(self, sql: Cow<'c, str>, params: Vec<Value>) -> BoxStream<'c, Row> {
        generate(move |out| async move {
            let mut conn = match self.acquire().await {
                Ok(conn) => conn,
                Err(e) => return out.last(Err(e)),
            };
            forward(conn.fetch(&sql, params), out).await;
        })
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c>, Error>> {
        Box::pin(async move {
            let mut conn = self.acquire().await?;
            conn.begin_level(TransactionOptions::default()).await?;
            let level = conn.state.depth;
            Ok(Transaction::owned(conn, level))
        })
    }

    fn acquire(self) -> BoxFuture<'c, Result<crate::query::Acquired<'c>, Error>> {
        Box::pin(async move {
            Reader::acquire(self)
                .await
                .map(crate::query::Acquired::Pooled)
        })
    }
}
