//! The query builders — [`query`], [`query_as`] and [`query_scalar`] — and the [`Executor`] trait
//! they run on: the one way to run SQL.
//!
//! A builder holds the SQL and its parameters; a *finisher* (`execute`, `fetch_all`, `fetch_one`,
//! `fetch_optional`, `fetch`, `execute_many`) runs it on an [`Executor`]: `&Engine`,
//! `&mut Connection` or `&mut Transaction`. A function that takes `impl Executor<'_>` serves all
//! three.
//!
//! ```
//! # use anysql_core::{query, query_as, query_scalar, Error, Executor};
//! async fn add_user(db: impl Executor<'_>, name: &str) -> Result<u64, Error> {
//!     query("INSERT INTO users (name) VALUES ($1)").bind(name).execute(db).await
//! }
//!
//! async fn demo(engine: &anysql_core::Engine) -> Result<(), Error> {
//!     add_user(engine, "ada").await?;
//!     let mut tx = engine.begin().await?;
//!     add_user(&mut tx, "grace").await?;
//!     let n: i64 = query_scalar("SELECT count(*) FROM users").fetch_one(&mut tx).await?;
//!     tx.commit().await?;
//!     let users: Vec<(i64, String)> = query_as("SELECT id, name FROM users ORDER BY id")
//!         .fetch_all(engine)
//!         .await?;
//!     assert_eq!(users.len() as i64, n);
//!     Ok(())
//! }
//! ```

// The executors' futures are written out as `impl Future + Send` rather than `async fn`, so that
// their `Send` bound is part of every signature (callers spawn them on multi-threaded executors).
#![allow(clippy::manual_async_fn)]

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_lite::StreamExt;

use crate::connection::{first_column, row_not_found, Connection};
use crate::driver::ParamSets;
use crate::engine::Engine;
use crate::error::Error;
use crate::params::Params;
use crate::row::{FromRow, Row};
use crate::runtime::BoxFuture;
use crate::transaction::Transaction;
use crate::value::{FromValue, ToValue, Value};

/// A stream of query results, holding a bounded number of rows in memory; from the `fetch`
/// finishers.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = Result<T, Error>> + Send + 'a>>;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Where a query runs: `&Engine` (a pooled or the engine's shared connection, outside any
/// transaction), `&mut Connection`, or `&mut Transaction`.
///
/// Write functions against it to let the caller choose:
///
/// ```
/// # use anysql_core::{query_scalar, Error, Executor};
/// async fn count_users(db: impl Executor<'_>) -> Result<i64, Error> {
///     query_scalar("SELECT count(*) FROM users").fetch_one(db).await
/// }
/// ```
///
/// The trait is sealed: its methods are the builders' plumbing, and new executors come with
/// anysql itself.
pub trait Executor<'c>: sealed::Sealed + Send + Sized {
    #[doc(hidden)]
    fn run_execute(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c;

    #[doc(hidden)]
    fn run_execute_many(
        self,
        sql: Cow<'c, str>,
        sets: ParamSets<'c>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c;

    #[doc(hidden)]
    fn run_fetch_all<T: FromRow + Send + 'c>(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c;

    #[doc(hidden)]
    fn run_fetch_optional(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c;

    #[doc(hidden)]
    fn run_fetch(self, sql: Cow<'c, str>, params: Vec<Value>) -> BoxStream<'c, Row>;

    /// Starts a transaction here: on the engine, on a pooled connection it takes (and returns when
    /// the transaction ends); on a connection, on it; inside a transaction, a nested one (a
    /// savepoint). A function given any executor can so make its work atomic:
    ///
    /// ```
    /// # use anysql_core::{query, Error, Executor};
    /// async fn move_stock(db: impl Executor<'_>, from: i64, to: i64) -> Result<(), Error> {
    ///     let mut tx = db.begin().await?;
    ///     query("UPDATE stock SET n = n - 1 WHERE shelf = $1").bind(from).execute(&mut tx).await?;
    ///     query("UPDATE stock SET n = n + 1 WHERE shelf = $1").bind(to).execute(&mut tx).await?;
    ///     tx.commit().await
    /// }
    /// ```
    //
    // `begin` and `acquire` return boxed futures: a caller holds what they return across awaits,
    // and with an `impl Future` there today's compiler cannot prove that caller's future `Send`
    // ("implementation of `Executor` is not general enough"). One allocation per transaction or
    // acquire is small next to its round trip.
    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c>, Error>>;

    /// A connection to run several statements on, whatever the executor: the engine lends a
    /// pooled connection (returned to the pool when the [`Acquired`] is dropped); a connection
    /// lends itself; a transaction lends its connection, so the statements stay inside it.
    ///
    /// ```
    /// # use anysql_core::{query, query_scalar, Error, Executor};
    /// async fn scratch_count(db: impl Executor<'_>) -> Result<i64, Error> {
    ///     let mut conn = db.acquire().await?;
    ///     // A temporary table lives in one session: both statements need the same connection.
    ///     query("CREATE TEMP TABLE IF NOT EXISTS scratch (id INTEGER)").execute(&mut *conn).await?;
    ///     query_scalar("SELECT count(*) FROM scratch").fetch_one(&mut *conn).await
    /// }
    /// ```
    fn acquire(self) -> BoxFuture<'c, Result<Acquired<'c>, Error>>;
}

/// A connection from [`Executor::acquire`]: pooled (returned to the pool when dropped) or lent by
/// the connection or transaction it came from. It derefs to [`Connection`]; `&mut *acquired` is
/// an [`Executor`].
#[derive(Debug)]
pub enum Acquired<'c> {
    /// A connection taken from the engine's pool.
    Pooled(Connection),
    /// The connection of the executor it came from.
    Lent(&'c mut Connection),
}

impl std::ops::Deref for Acquired<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Acquired::Pooled(conn) => conn,
            Acquired::Lent(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Acquired<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Acquired::Pooled(conn) => conn,
            Acquired::Lent(conn) => conn,
        }
    }
}

impl<E: AsRef<Engine> + Sync + ?Sized> sealed::Sealed for &E {}

/// The engine, and anything that refers to one (an `Arc<Engine>`).
impl<'c, E: AsRef<Engine> + Sync + ?Sized> Executor<'c> for &'c E {
    fn run_execute(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        let engine = self.as_ref();
        async move { engine.execute(&sql, params).await }
    }

    fn run_execute_many(
        self,
        sql: Cow<'c, str>,
        sets: ParamSets<'c>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        let engine = self.as_ref();
        async move { engine.acquire().await?.execute_many_sets(&sql, sets).await }
    }

    fn run_fetch_all<T: FromRow + Send + 'c>(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c {
        let engine = self.as_ref();
        async move { engine.fetch_all_as(&sql, params).await }
    }

    fn run_fetch_optional(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c {
        let engine = self.as_ref();
        async move { engine.fetch_optional(&sql, params).await }
    }

    fn run_fetch(self, sql: Cow<'c, str>, params: Vec<Value>) -> BoxStream<'c, Row> {
        let engine = self.as_ref();
        generate(move |out| async move {
            let mut conn = match engine.acquire().await {
                Ok(conn) => conn,
                Err(e) => return out.last(Err(e)),
            };
            forward(conn.fetch(&sql, params), out).await;
        })
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c>, Error>> {
        let engine = self.as_ref();
        Box::pin(async move { engine.begin().await })
    }

    fn acquire(self) -> BoxFuture<'c, Result<Acquired<'c>, Error>> {
        let engine = self.as_ref();
        Box::pin(async move { engine.acquire().await.map(Acquired::Pooled) })
    }
}

impl sealed::Sealed for &mut Connection {}

impl<'c> Executor<'c> for &'c mut Connection {
    fn run_execute(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        async move { self.execute(&sql, params).await }
    }

    fn run_execute_many(
        self,
        sql: Cow<'c, str>,
        sets: ParamSets<'c>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        async move { self.execute_many_sets(&sql, sets).await }
    }

    fn run_fetch_all<T: FromRow + Send + 'c>(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c {
        async move { self.fetch_all_as(&sql, params).await }
    }

    fn run_fetch_optional(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c {
        async move { self.fetch_optional(&sql, params).await }
    }

    fn run_fetch(self, sql: Cow<'c, str>, params: Vec<Value>) -> BoxStream<'c, Row> {
        match sql {
            // Borrowed SQL outlives the stream: no generator needed.
            Cow::Borrowed(sql) => Box::pin(self.fetch(sql, params)),
            Cow::Owned(sql) => generate(move |out| async move {
                forward(self.fetch(&sql, params), out).await;
            }),
        }
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c>, Error>> {
        Box::pin(Connection::begin(self))
    }

    fn acquire(self) -> BoxFuture<'c, Result<Acquired<'c>, Error>> {
        Box::pin(std::future::ready(Ok(Acquired::Lent(self))))
    }
}

impl sealed::Sealed for &mut Transaction<'_> {}

/// A transaction runs its queries on its connection.
impl<'c> Executor<'c> for &'c mut Transaction<'_> {
    fn run_execute(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        <&mut Connection>::run_execute(self, sql, params)
    }

    fn run_execute_many(
        self,
        sql: Cow<'c, str>,
        sets: ParamSets<'c>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c {
        <&mut Connection>::run_execute_many(self, sql, sets)
    }

    fn run_fetch_all<T: FromRow + Send + 'c>(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c {
        <&mut Connection>::run_fetch_all(self, sql, params)
    }

    fn run_fetch_optional(
        self,
        sql: Cow<'c, str>,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c {
        <&mut Connection>::run_fetch_optional(self, sql, params)
    }

    fn run_fetch(self, sql: Cow<'c, str>, params: Vec<Value>) -> BoxStream<'c, Row> {
        <&mut Connection>::run_fetch(self, sql, params)
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c>, Error>> {
        <&mut Connection>::begin(self)
    }

    fn acquire(self) -> BoxFuture<'c, Result<Acquired<'c>, Error>> {
        <&mut Connection>::acquire(self)
    }
}

/// A query whose rows are [`Row`]s: from [`query`].
#[must_use = "a query does nothing until a finisher such as execute or fetch_all runs it"]
pub struct Query<'q> {
    sql: Cow<'q, str>,
    params: Vec<Value>,
}

/// Starts a query: SQL with `$1, $2, …` placeholders, as a `&'static str`, a borrowed `&str` or
/// an owned `String`. Bind the parameters in order with [`bind`](Query::bind), then run it with a
/// finisher.
///
/// ```
/// # use anysql_core::{query, Engine, Error};
/// # async fn demo(engine: &Engine) -> Result<(), Error> {
/// let changed = query("UPDATE users SET name = $1 WHERE id = $2")
///     .bind("ada")
///     .bind(7)
///     .execute(engine)
///     .await?;
/// # Ok(()) }
/// ```
pub fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q> {
    Query {
        sql: sql.into(),
        params: Vec::new(),
    }
}

/// Starts a query whose rows decode into `T`: a tuple, or a type that implements [`FromRow`]
/// (`#[derive(FromRow)]`).
pub fn query_as<'q, T: FromRow + Send>(sql: impl Into<Cow<'q, str>>) -> QueryAs<'q, T> {
    Typed::new(query(sql))
}

/// Starts a query whose first column decodes into `T`: `count(*)`, a single value.
pub fn query_scalar<'q, T: FromValue + Send>(sql: impl Into<Cow<'q, str>>) -> QueryScalar<'q, T> {
    Typed::new(query(sql))
}

impl<'q> Query<'q> {
    /// Binds the next parameter (`$1` first).
    pub fn bind(mut self, value: impl ToValue) -> Self {
        self.params.push(value.to_value());
        self
    }

    /// Binds several parameters at once, after those bound so far: a tuple, an array, a slice of
    /// [`ToValue`]s or a `Vec<Value>` (see [`Params`]).
    pub fn bind_all(mut self, params: impl Params) -> Self {
        let values = params.into_values();
        if self.params.is_empty() {
            self.params = values;
        } else {
            self.params.extend(values);
        }
        self
    }

    /// The SQL and the parameters, taken apart.
    pub(crate) fn into_parts(self) -> (Cow<'q, str>, Vec<Value>) {
        (self.sql, self.params)
    }

    /// The SQL as given.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters bound so far.
    pub fn params(&self) -> &[Value] {
        &self.params
    }

    /// Runs the statement and returns the number of rows it changed.
    pub fn execute<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c
    where
        'q: 'c,
    {
        executor.run_execute(self.sql, self.params)
    }

    /// Runs the statement once for each parameter set, preparing it once, and returns the total of
    /// rows changed. Parameters bound with [`bind`](Self::bind) are ignored. On SQLite and
    /// PostgreSQL the batch applies entirely or not at all.
    pub fn execute_many<'c, E, P, I>(
        self,
        executor: E,
        sets: I,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'c
    where
        'q: 'c,
        E: Executor<'c>,
        P: Params + 'c,
        I: IntoIterator<Item = P>,
        I::IntoIter: Send + 'c,
    {
        let sets: ParamSets<'c> = Box::new(sets.into_iter().map(Params::into_values));
        executor.run_execute_many(self.sql, sets)
    }

    /// Runs the query and collects its rows.
    pub fn fetch_all<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'c
    where
        'q: 'c,
    {
        executor.run_fetch_all(self.sql, self.params)
    }

    /// Runs the query and returns its first row, or an
    /// [`ErrorKind::RowNotFound`](crate::ErrorKind::RowNotFound) error.
    pub fn fetch_one<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'c
    where
        'q: 'c,
    {
        let optional = self.fetch_optional(executor);
        async move { optional.await?.ok_or_else(row_not_found) }
    }

    /// Runs the query and returns its first row, if any.
    pub fn fetch_optional<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'c
    where
        'q: 'c,
    {
        executor.run_fetch_optional(self.sql, self.params)
    }

    /// Runs the query and streams its rows, holding a bounded number in memory. On an engine the
    /// stream holds a pooled connection until it ends; dropping it early is fine, and the
    /// connection goes back to the pool clean.
    pub fn fetch<'c, E: Executor<'c>>(self, executor: E) -> BoxStream<'c, Row>
    where
        'q: 'c,
    {
        executor.run_fetch(self.sql, self.params)
    }
}

impl fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parameter values may be secrets: only their number shows.
        f.debug_struct("Query")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .finish()
    }
}

/// A query whose rows decode into `T`: from [`query_as`].
pub type QueryAs<'q, T> = Typed<'q, T, WholeRow>;

/// A query whose first column decodes into `T`: from [`query_scalar`].
pub type QueryScalar<'q, T> = Typed<'q, T, FirstColumn>;

/// How a [`Typed`] query turns a row into its `T`: [`WholeRow`] or [`FirstColumn`].
pub trait Decoding<T>: sealed::Sealed {
    #[doc(hidden)]
    type Decoded: FromRow + Send;
    #[doc(hidden)]
    fn unwrap(decoded: Self::Decoded) -> T;
}

/// Decodes the whole row, with `T`'s [`FromRow`]: [`QueryAs`].
#[derive(Debug)]
pub enum WholeRow {}

/// Decodes the first column, with `T`'s [`FromValue`]: [`QueryScalar`].
#[derive(Debug)]
pub enum FirstColumn {}

impl sealed::Sealed for WholeRow {}
impl sealed::Sealed for FirstColumn {}

impl<T: FromRow + Send> Decoding<T> for WholeRow {
    type Decoded = T;
    fn unwrap(decoded: T) -> T {
        decoded
    }
}

impl<T: FromValue + Send> Decoding<T> for FirstColumn {
    type Decoded = Scalar<T>;
    fn unwrap(Scalar(value): Scalar<T>) -> T {
        value
    }
}

/// A query whose rows decode into `T`, the whole row or its first column as `D` says: what
/// [`query_as`] and [`query_scalar`] start ([`QueryAs`], [`QueryScalar`]).
#[must_use = "a query does nothing until a finisher such as fetch_all runs it"]
pub struct Typed<'q, T, D> {
    query: Query<'q>,
    _decoding: PhantomData<fn() -> (T, D)>,
}

impl<'q, T: Send, D: Decoding<T>> Typed<'q, T, D> {
    fn new(query: Query<'q>) -> Self {
        Typed {
            query,
            _decoding: PhantomData,
        }
    }

    /// Binds the next parameter (`$1` first).
    pub fn bind(mut self, value: impl ToValue) -> Self {
        self.query = self.query.bind(value);
        self
    }

    /// Binds several parameters at once (see [`Query::bind_all`]).
    pub fn bind_all(mut self, params: impl Params) -> Self {
        self.query = self.query.bind_all(params);
        self
    }

    /// Runs the query and decodes every row; a row that cannot be decoded fails the call.
    pub fn fetch_all<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'c
    where
        'q: 'c,
        D::Decoded: 'c,
    {
        let Query { sql, params } = self.query;
        let rows = executor.run_fetch_all::<D::Decoded>(sql, params);
        async move { Ok(rows.await?.into_iter().map(D::unwrap).collect()) }
    }

    /// Runs the query and decodes its first row, or fails with
    /// [`ErrorKind::RowNotFound`](crate::ErrorKind::RowNotFound).
    pub fn fetch_one<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'c
    where
        'q: 'c,
    {
        let one = self.query.fetch_one(executor);
        async move { decode::<T, D>(one.await?) }
    }

    /// Runs the query and decodes its first row, if any.
    pub fn fetch_optional<'c, E: Executor<'c>>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'c
    where
        'q: 'c,
    {
        let optional = self.query.fetch_optional(executor);
        async move { optional.await?.map(decode::<T, D>).transpose() }
    }

    /// Runs the query and streams its rows decoded, holding a bounded number in memory (see
    /// [`Query::fetch`]).
    pub fn fetch<'c, E: Executor<'c>>(self, executor: E) -> BoxStream<'c, T>
    where
        'q: 'c,
        T: 'c,
    {
        Box::pin(
            self.query
                .fetch(executor)
                .map(|row| row.and_then(decode::<T, D>)),
        )
    }
}

fn decode<T, D: Decoding<T>>(row: Row) -> Result<T, Error> {
    D::Decoded::from_row(row).map(D::unwrap)
}

impl<T, D> fmt::Debug for Typed<'_, T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Typed").field(&self.query).finish()
    }
}

/// The first column of a row, as a [`FromRow`] type, for [`QueryScalar`].
#[doc(hidden)]
#[derive(Debug)]
pub struct Scalar<T>(T);

impl<T: FromValue> FromRow for Scalar<T> {
    fn from_row(row: Row) -> Result<Self, Error> {
        first_column(row).map(Scalar)
    }

    fn from_row_mut(row: &mut Row) -> Result<Self, Error> {
        if row.is_empty() {
            return Err(Error::decode("the query returned rows with no columns"));
        }
        row.take(0).map(Scalar)
    }
}

/// Hands the items of a stream to a [`generate`]d stream, one at a time.
pub(crate) async fn forward(
    mut rows: impl Stream<Item = Result<Row, Error>> + Unpin,
    out: Output<Row>,
) {
    while let Some(item) = rows.next().await {
        let failed = item.is_err();
        out.put(item).await;
        if failed {
            return;
        }
    }
}

/// The producing side of a [`generate`]d stream.
pub(crate) struct Output<T> {
    slot: Arc<Mutex<Option<Result<T, Error>>>>,
}

impl<T> Output<T> {
    /// Hands `item` to the stream's consumer and waits until it has taken it.
    async fn put(&self, item: Result<T, Error>) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
        YieldOnce(false).await;
    }

    /// Hands over a last item; the producer ends after it.
    pub(crate) fn last(self, item: Result<T, Error>) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
    }
}

/// Pending once, then ready: how a producer lets its consumer return the item it just put. It
/// needs no waker, because the consumer returns that item at once and polls the producer again on
/// its next `poll_next`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// A stream whose items a future produces: the future may own what the items borrow from (a
/// pooled connection, the SQL), which a stream type could not hold beside them. It runs inside
/// the stream's own polls, on the caller's task: no task is spawned.
pub(crate) fn generate<'a, T: Send + 'a, F, Fut>(producer: F) -> BoxStream<'a, T>
where
    F: FnOnce(Output<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'a,
{
    let slot = Arc::new(Mutex::new(None));
    let output = Output {
        slot: Arc::clone(&slot),
    };
    Box::pin(Generated {
        producer: Some(Box::pin(producer(output))),
        slot,
    })
}

struct Generated<'a, T> {
    producer: Option<BoxFuture<'a, ()>>,
    slot: Arc<Mutex<Option<Result<T, Error>>>>,
}

impl<T> Stream for Generated<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let finished = match self.producer.as_mut() {
            Some(producer) => producer.as_mut().poll(cx).is_ready(),
            None => true,
        };
        if finished {
            // Dropping the producer now returns its connection at once.
            self.producer = None;
        }
        let item = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match item {
            Some(item) => Poll::Ready(Some(item)),
            None if finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}
