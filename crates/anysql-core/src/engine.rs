//! [`Engine`] and [`EngineBuilder`]: a pool of connections to one database, on one runtime.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::connection::{first_column, row_not_found};
use crate::driver::AsyncDriver;
use crate::error::{Error, ErrorKind};
use crate::listener::Listener;
use crate::options::ConnectOptions;
use crate::params::Params;
use crate::pool::{AfterConnect, PoolMetrics, PoolOptions, PoolShared, PoolStatus};
use crate::query::BoxStream;
use crate::replicas::{Reader, Replica, ReplicaSet};
use crate::retry::RetryPolicy;
use crate::row::{FromRow, Row};
use crate::runtime::{BoxFuture, Runtime, SharedRuntime};
use crate::shared::SharedSlot;
use crate::transaction::Transaction;
use crate::transaction_options::TransactionOptions;
use crate::value::FromValue;

/// A pool of connections to one database, doing its I/O on one runtime. Cheap to clone: clones share
/// the pool.
///
/// Most applications build it with `anysql::create_async_engine(url)` or `anysql::builder(url)`,
/// which know the compiled-in drivers and runtimes; an [`EngineBuilder`] made with
/// [`EngineBuilder::new`] knows only the drivers and runtime it is given.
#[derive(Clone)]
pub struct Engine {
    pool: Arc<PoolShared>,
    shared: Arc<SharedSlot>,
    pub(crate) replicas: Arc<ReplicaSet>,
}

impl Engine {
    /// Takes a connection from the pool, opening one if none is idle.
    ///
    /// Fails with the connect error itself when connecting fails, and with
    /// [`ErrorKind::PoolTimeout`] when no connection frees up within the acquire timeout.
    pub async fn acquire(&self) -> Result<Connection, Error> {
        let (driver, lease) = self.pool.acquire().await?;
        Ok(Connection::new(driver, lease))
    }

    /// Takes a connection and starts a transaction on it; the connection goes back to the pool when
    /// the transaction ends.
    pub async fn begin(&self) -> Result<Transaction<'static>, Error> {
        self.begin_with(TransactionOptions::default()).await
    }

    /// Like [`begin`](Self::begin), with options.
    pub async fn begin_with(
        &self,
        options: TransactionOptions,
    ) -> Result<Transaction<'static>, Error> {
        let mut conn = self.acquire().await?;
        conn.begin_level(options).await?;
        let level = conn.state.depth;
        Ok(Transaction::owned(conn, level))
    }

    /// Runs `work` in a transaction: commits when it returns `Ok`, rolls back when it returns `Err`
    /// (or panics, or the future is dropped).
    ///
    /// `work` is an async closure, so it may borrow the caller's locals:
    ///
    /// ```
    /// # use anysql_core::{query, Engine, Error};
    /// async fn transfer(engine: &Engine, from: i64, to: i64, amount: i64) -> Result<u64, Error> {
    ///     let mut statements = 0; // a local the transaction's work updates
    ///     engine
    ///         .transaction(async |tx| {
    ///             query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
    ///                 .bind(amount)
    ///                 .bind(from)
    ///                 .execute(&mut *tx)
    ///                 .await?;
    ///             statements += 1;
    ///             query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
    ///                 .bind(amount)
    ///                 .bind(to)
    ///                 .execute(&mut *tx)
    ///                 .await?;
    ///             statements += 1;
    ///             Ok::<_, Error>(())
    ///         })
    ///         .await?;
    ///     Ok(statements)
    /// }
    /// ```
    ///
    /// Where the caller's future must be `Send` (a spawned task, a web handler), today's compiler
    /// cannot always prove it is when the closure holds a borrow of a local across an `.await`
    /// (it reports "implementation of `Send` is not general enough"; rust-lang/rust#110338). Move
    /// owned values into the closure there (`async move |tx| ..`), or use [`begin`](Self::begin)
    /// and [`Transaction::commit`] directly:
    ///
    /// ```
    /// # use std::future::Future;
    /// # use anysql_core::{query, Engine, Error};
    /// fn add_note(engine: Engine, body: String) -> impl Future<Output = Result<u64, Error>> + Send {
    ///     async move {
    ///         engine
    ///             .transaction(async move |tx| {
    ///                 query("INSERT INTO notes (body) VALUES ($1)").bind(body).execute(&mut *tx).await
    ///             })
    ///             .await
    ///     }
    /// }
    /// ```
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&mut Transaction<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.begin().await?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The work's error is what the caller needs; a failed rollback discards the
                // connection anyway.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Runs `work` in a transaction with `options`, and runs it again from the start when it fails
    /// with a retryable error ([`Error::is_retryable`]: a serialization failure or deadlock on
    /// PostgreSQL, a busy database on SQLite), as `retry` allows.
    ///
    /// `work` may run several times, so it must not have effects outside the transaction that
    /// cannot be repeated. Like [`transaction`](Self::transaction)'s, it is an async closure and may
    /// borrow the caller's locals.
    ///
    /// ```
    /// # use anysql_core::{query_scalar, Engine, Error, IsolationLevel, RetryPolicy, TransactionOptions};
    /// async fn next_invoice(engine: &Engine, customer: &str) -> Result<i64, Error> {
    ///     let serializable = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    ///     engine
    ///         .transaction_with(serializable, RetryPolicy::new(), async |tx| {
    ///             query_scalar("INSERT INTO invoices (customer) VALUES ($1) RETURNING id")
    ///                 .bind(customer)
    ///                 .fetch_one(&mut *tx)
    ///                 .await
    ///         })
    ///         .await
    /// }
    /// ```
    pub async fn transaction_with<T, F>(
        &self,
        options: TransactionOptions,
        retry: RetryPolicy,
        mut work: F,
    ) -> Result<T, Error>
    where
        F: AsyncFnMut(&mut Transaction<'_>) -> Result<T, Error>,
    {
        let mut attempt = 1;
        loop {
            let result = async {
                let mut tx = self.begin_with(options).await?;
                match work(&mut tx).await {
                    Ok(value) => tx.commit().await.map(|()| value),
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < retry.max_attempts_inner() => {
                    self.runtime().sleep(retry.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs a statement and returns the number of rows it changed.
    ///
    /// This and the other `fetch_*` methods of the engine run outside any transaction: on the
    /// driver's shared connection where it has one (PostgreSQL pipelines the statements of
    /// concurrent callers on one connection; see [`Connector::connect_shared`]), else on a pooled
    /// connection.
    ///
    /// [`Connector::connect_shared`]: crate::Connector::connect_shared
    pub fn execute<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        let params = params.into_values();
        async move {
            if let Some(shared) = self.shared.get(&self.pool, sql).await? {
                return shared.execute(sql, params).await;
            }
            self.acquire().await?.execute(sql, params).await
        }
    }

    /// Runs a query and collects its rows (see [`execute`](Self::execute) for where).
    pub fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move {
            if let Some(shared) = self.shared.get(&self.pool, sql).await? {
                return shared.fetch_all(sql, params).await;
            }
            self.acquire().await?.fetch_all(sql, params).await
        }
    }

    /// Runs a query and decodes every row into `T` (see [`execute`](Self::execute) for where).
    pub fn fetch_all_as<'a, T: FromRow + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Vec<T>, Error>> + Send + 'a {
        let params = params.into_values();
        async move {
            if let Some(shared) = self.shared.get(&self.pool, sql).await? {
                let rows = shared.fetch_all(sql, params).await?;
                return rows.into_iter().map(T::from_row).collect();
            }
            self.acquire().await?.fetch_all_as(sql, params).await
        }
    }

    /// Runs a query and returns its first row, if any (see [`execute`](Self::execute) for where).
    pub fn fetch_optional<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a {
        let params = params.into_values();
        async move {
            if let Some(shared) = self.shared.get(&self.pool, sql).await? {
                return shared.fetch_optional(sql, params).await;
            }
            self.acquire().await?.fetch_optional(sql, params).await
        }
    }

    /// Runs a query and returns its first row, or a [`ErrorKind::RowNotFound`] error (see
    /// [`execute`](Self::execute) for where).
    pub fn fetch_one<'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        let optional = self.fetch_optional(sql, params);
        async move { optional.await?.ok_or_else(row_not_found) }
    }

    /// Runs a query and decodes the first column of its first row (see
    /// [`execute`](Self::execute) for where).
    pub fn fetch_scalar<'a, T: FromValue + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a {
        let one = self.fetch_one(sql, params);
        async move { first_column(one.await?) }
    }

    /// Runs a query and decodes its first row into `T`, or fails with [`ErrorKind::RowNotFound`]
    /// (see [`execute`](Self::execute) for where). The same as
    /// `query_as::<T>(sql).bind_all(params).fetch_one(engine)`.
    pub fn fetch_one_as<'a, T: FromRow + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a {
        crate::query::query_as::<T>(sql)
            .bind_all(params)
            .fetch_one(self)
    }

    /// Runs a query and decodes its first row into `T`, if there is one (see
    /// [`execute`](Self::execute) for where).
    pub fn fetch_optional_as<'a, T: FromRow + Send + 'a>(
        &'a self,
        sql: &'a str,
        params: impl Params,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'a {
        crate::query::query_as::<T>(sql)
            .bind_all(params)
            .fetch_optional(self)
    }

    /// Runs a query and streams its rows, holding a bounded number in memory. The stream holds a
    /// pooled connection until it ends; dropping it early returns the connection clean. The same
    /// as `query(sql).bind_all(params).fetch(engine)`.
    pub fn fetch<'a>(&'a self, sql: &'a str, params: impl Params) -> BoxStream<'a, Row> {
        crate::query::query(sql).bind_all(params).fetch(self)
    }

    /// Runs one statement once for each parameter set on a pooled connection, preparing it once
    /// (see [`Connection::execute_many`]). Returns the total of rows changed.
    pub fn execute_many<'a, P: Params + 'a>(
        &'a self,
        sql: &'a str,
        param_sets: impl IntoIterator<Item = P, IntoIter: Send + 'a>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
        crate::query::query(sql).execute_many(self, param_sets)
    }

    /// A snapshot of the pool: open, idle, in use and waiting.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// Counters since the engine was built.
    pub fn metrics(&self) -> PoolMetrics {
        self.pool.metrics()
    }

    /// Runs the reads given to it on a read replica, if the engine has any (see [`Reader`]):
    /// `engine.reader().fetch_all(..)`, or `query(..).fetch_all(&engine.reader())`.
    pub fn reader(&self) -> Reader {
        Reader::new(self.clone())
    }

    /// The engine's read replicas, each a pool of its own (empty when it has none).
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas.replicas
    }

    /// Opens a [`Listener`] for notifications (PostgreSQL's `LISTEN`/`NOTIFY`) on a connection
    /// of its own, outside the pool's count, buffering up to
    /// [`DEFAULT_LISTENER_CAPACITY`](crate::DEFAULT_LISTENER_CAPACITY) notifications.
    ///
    /// The connection is opened with the engine's URL and options; the pool's
    /// [`after_connect`](EngineBuilder::after_connect) hook does not run on it. Drivers without
    /// notifications (SQLite) return an [`ErrorKind::Unsupported`] error.
    pub async fn listener(&self) -> Result<Listener, Error> {
        self.listener_with_capacity(crate::DEFAULT_LISTENER_CAPACITY)
            .await
    }

    /// Like [`listener`](Self::listener), buffering up to `capacity` notifications (at least 1)
    /// for a consumer that falls behind (see [`Listener`], Slow consumers).
    pub async fn listener_with_capacity(&self, capacity: usize) -> Result<Listener, Error> {
        if self.is_closed() {
            return Err(Error::closed("the engine was closed"));
        }
        Listener::open(
            Arc::clone(&self.pool.connector),
            Arc::clone(&self.pool.runtime),
            capacity,
        )
        .await
    }

    /// Sends a notification with `payload` on `channel` (PostgreSQL's `pg_notify`), outside any
    /// transaction; inside one, run `SELECT pg_notify($1, $2)` on it, which is delivered at
    /// commit.
    ///
    /// Drivers without notifications (SQLite) return an [`ErrorKind::Unsupported`] error.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), Error> {
        let sql = self
            .pool
            .connector
            .notify_statement()
            .ok_or_else(crate::listener::unsupported)?;
        self.execute(sql, (channel, payload)).await.map(drop)
    }

    /// The runtime this engine does its I/O on.
    pub fn runtime(&self) -> &SharedRuntime {
        &self.pool.runtime
    }

    /// The database URL, with its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.pool.description
    }

    /// Closes the engine: acquires fail from now on with [`ErrorKind::Closed`], idle connections
    /// close now and connections in use close when they come back.
    pub async fn close(&self) {
        self.shared.clear();
        self.pool.close().await;
        for replica in self.replicas() {
            Box::pin(replica.engine().close()).await;
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

impl Engine {
    fn from_pool(pool: Arc<PoolShared>, replicas: Vec<Replica>) -> Engine {
        Engine {
            pool,
            shared: Arc::default(),
            replicas: Arc::new(ReplicaSet::new(replicas)),
        }
    }
}

impl AsRef<Engine> for Engine {
    fn as_ref(&self) -> &Engine {
        self
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.pool.description)
            .field("runtime", &self.pool.runtime.name())
            .field("status", &self.status())
            .finish()
    }
}

/// A pool setting of the builder's; applied to the primary's pool and to each replica's.
type PoolSetting = Box<dyn Fn(&mut PoolOptions) + Send + Sync>;

/// Builds an [`Engine`] from a URL, drivers, a runtime and pool settings.
///
/// Pool settings come from the URL's query string first (`?max_size=4`), then from the builder's
/// methods, which win.
///
/// `anysql::builder(url)` makes one with the compiled-in drivers registered and the running
/// runtime found; [`EngineBuilder::new`] makes an empty one, for code that names its driver and
/// runtime itself.
#[must_use = "a builder does nothing until build() is called"]
pub struct EngineBuilder {
    url: String,
    drivers: Vec<Arc<dyn AsyncDriver>>,
    /// Schemes whose driver exists but is not compiled in, with what to do about it.
    missing: Vec<(&'static [&'static str], &'static str)>,
    runtime: Option<SharedRuntime>,
    default_runtime: Option<fn() -> Result<SharedRuntime, Error>>,
    settings: Vec<PoolSetting>,
    after_connect: Option<AfterConnect>,
    replicas: Vec<String>,
}

impl EngineBuilder {
    /// A builder for `url`, with no driver and no runtime yet.
    pub fn new(url: &str) -> Self {
        EngineBuilder {
            url: url.to_owned(),
            drivers: Vec::new(),
            missing: Vec::new(),
            runtime: None,
            default_runtime: None,
            settings: Vec::new(),
            after_connect: None,
            replicas: Vec::new(),
        }
    }

    /// Registers a driver; the one serving the URL's scheme is used.
    pub fn driver(mut self, driver: impl AsyncDriver) -> Self {
        self.drivers.push(Arc::new(driver));
        self
    }

    /// Names a driver that exists but is not compiled in, so that a URL with one of its `schemes`
    /// fails with `hint` (what to enable) rather than as an unknown scheme. The `anysql` facade
    /// registers one for each of its driver features that is off.
    pub fn missing_driver(mut self, schemes: &'static [&'static str], hint: &'static str) -> Self {
        self.missing.push((schemes, hint));
        self
    }

    /// Sets the runtime, overriding any default.
    pub fn runtime(mut self, runtime: impl Runtime) -> Self {
        self.runtime = Some(Arc::new(runtime));
        self
    }

    /// Sets the runtime from a shared handle, overriding any default.
    pub fn shared_runtime(mut self, runtime: SharedRuntime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// How to find a runtime when none is set with [`runtime`](Self::runtime): for example, the
    /// runtime the caller is running on.
    pub fn default_runtime(mut self, find: fn() -> Result<SharedRuntime, Error>) -> Self {
        self.default_runtime = Some(find);
        self
    }

    fn setting(mut self, apply: impl Fn(&mut PoolOptions) + Send + Sync + 'static) -> Self {
        self.settings.push(Box::new(apply));
        self
    }

    /// The most connections the pool opens (default 10): from 1 to [`PoolOptions::MAX_SIZE`]
    /// (10 000); [`build`](Self::build) fails for any other value.
    pub fn max_size(self, max_size: usize) -> Self {
        self.setting(move |o| o.max_size = max_size)
    }

    /// How many idle connections the pool tries to keep open (default 0): at most `max_size`.
    pub fn min_idle(self, min_idle: usize) -> Self {
        self.setting(move |o| o.min_idle = min_idle)
    }

    /// How long [`Engine::acquire`] waits for a connection before failing (default 30 s): at most
    /// [`PoolOptions::MAX_ACQUIRE_TIMEOUT`] (1 day).
    pub fn acquire_timeout(self, timeout: Duration) -> Self {
        self.setting(move |o| o.acquire_timeout = timeout)
    }

    /// How long a connection may sit idle before it is closed (default 10 min; `None` keeps it): at
    /// most [`PoolOptions::MAX_LIFETIME`] (365 days).
    pub fn idle_timeout(self, timeout: Option<Duration>) -> Self {
        self.setting(move |o| o.idle_timeout = timeout)
    }

    /// How long a connection may live before it is closed (default 30 min; `None` keeps it): at most
    /// [`PoolOptions::MAX_LIFETIME`] (365 days).
    pub fn max_lifetime(self, lifetime: Option<Duration>) -> Self {
        self.setting(move |o| o.max_lifetime = lifetime)
    }

    /// Logs every statement that takes at least `threshold` as a warning (target
    /// `anysql::slow_statement`, with its SQL and duration, never its parameters); `None`, the
    /// default, turns it off. The URL form is `?slow_statement=500ms`. See the
    /// [`telemetry`](crate::telemetry) module.
    #[cfg(feature = "tracing")]
    pub fn slow_statement(self, threshold: Option<Duration>) -> Self {
        self.setting(move |pool| pool.slow_statement = threshold)
    }

    /// Whether a connection idle for a while is pinged before it is handed out (default on).
    pub fn health_check(self, enabled: bool) -> Self {
        self.setting(move |o| o.health_check = enabled)
    }

    /// How long a connection must have been idle before it is pinged on its way out of the pool
    /// (default 1 s; `0s` pings every time). URL form: `health_check_after=250ms`.
    pub fn health_check_after(self, idle: Duration) -> Self {
        self.setting(move |o| o.health_check_after = idle)
    }

    /// Runs `hook` on every new connection before it is first handed out: `SET search_path`,
    /// `PRAGMA`s and the like. A failing hook fails the acquire with its error.
    ///
    /// ```
    /// # use anysql_core::EngineBuilder;
    /// let builder = EngineBuilder::new("sqlite::memory:").after_connect(|conn| {
    ///     Box::pin(async move { conn.execute("PRAGMA cache_size = -16000", ()).await.map(drop) })
    /// });
    /// ```
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(&'c mut Connection) -> BoxFuture<'c, Result<(), Error>>
            + Send
            + Sync
            + 'static,
    {
        self.after_connect = Some(Arc::new(hook));
        self
    }

    /// Adds a read replica: a database URL served by the same drivers, whose pool takes the reads
    /// of [`Engine::reader`]. Call it once per replica.
    ///
    /// Each replica gets a pool of its own, with this builder's pool settings and
    /// [`after_connect`](Self::after_connect) hook; pool parameters in the replica's URL
    /// (`?max_size=4`) win over them for that replica. Its URL is checked when the engine is
    /// built, like the primary's. (PostgreSQL URLs can also name replicas themselves, with the
    /// `replica_hosts` option.)
    ///
    /// ```
    /// # use anysql_core::EngineBuilder;
    /// let builder = EngineBuilder::new("postgres://app@primary.internal/app")
    ///     .replica("postgres://app@replica1.internal/app")
    ///     .replica("postgres://app@replica2.internal/app?max_size=20");
    /// ```
    pub fn replica(mut self, url: &str) -> Self {
        self.replicas.push(url.to_owned());
        self
    }

    /// Builds the engine. No connection is opened yet.
    ///
    /// Fails with [`ErrorKind::Configuration`] for a malformed URL, an unknown scheme, a driver not
    /// compiled in or an invalid option (one out of its range too, from the URL or from this
    /// builder's methods; see [`PoolOptions`] for the limits), and with [`ErrorKind::NoRuntime`] when no runtime is set
    /// and none can be found.
    pub fn build(self) -> Result<Engine, Error> {
        let options = ConnectOptions::parse(&self.url)?;
        let driver = self.find_driver(&options)?;
        let runtime = match self.runtime.clone() {
            Some(runtime) => runtime,
            None => match self.default_runtime {
                Some(find) => find()?,
                None => return Err(Error::new(
                    ErrorKind::NoRuntime,
                    "no async runtime: pass one with the builder's runtime(..), or enable one of \
                         the anysql features runtime-tokio, runtime-smol or runtime-async-std",
                )),
            },
        };
        let mut pool = PoolOptions::default();
        for (i, (key, value)) in options.pool_params().iter().enumerate() {
            pool.apply_url_param(key, value, options.is_secret_pool_param(i))?;
        }
        for apply in &self.settings {
            apply(&mut pool);
        }
        pool.validate()?;
        let connector = driver.connector(&options)?;
        let mut replicas = Vec::new();
        // The replicas the primary's own options name (PostgreSQL's `replica_hosts`) share its
        // pool settings.
        for (description, replica) in connector.replicas() {
            let shared = PoolShared::new(
                traced(replica, pool.slow_statement),
                Arc::clone(&runtime),
                pool.clone(),
                description,
                self.after_connect.clone(),
            );
            replicas.push(Replica::new(Engine::from_pool(shared, Vec::new())));
        }
        for url in &self.replicas {
            let options = ConnectOptions::parse(url)?;
            let driver = self.find_driver(&options)?;
            let mut replica_pool = PoolOptions::default();
            for apply in &self.settings {
                apply(&mut replica_pool);
            }
            for (i, (key, value)) in options.pool_params().iter().enumerate() {
                replica_pool.apply_url_param(key, value, options.is_secret_pool_param(i))?;
            }
            replica_pool.validate()?;
            let shared = PoolShared::new(
                traced(driver.connector(&options)?, replica_pool.slow_statement),
                Arc::clone(&runtime),
                replica_pool,
                options.redacted(),
                self.after_connect.clone(),
            );
            replicas.push(Replica::new(Engine::from_pool(shared, Vec::new())));
        }
        let connector = traced(connector, pool.slow_statement);
        let shared = PoolShared::new(
            connector,
            runtime,
            pool,
            options.redacted(),
            self.after_connect,
        );
        Ok(Engine::from_pool(shared, replicas))
    }

    fn find_driver(&self, options: &ConnectOptions) -> Result<Arc<dyn AsyncDriver>, Error> {
        if options.is_key_value() {
            if let Some(driver) = self.drivers.iter().find(|d| d.accepts_key_value()) {
                return Ok(Arc::clone(driver));
            }
            let mut message = String::from(
                "a `key=value` connection string needs a driver that accepts them, and none of the \
                 registered drivers does",
            );
            for (schemes, hint) in &self.missing {
                message.push_str(&format!("; for `{}` databases, {hint}", schemes[0]));
            }
            return Err(Error::configuration(message));
        }
        let scheme = options.scheme();
        if let Some(driver) = self.drivers.iter().find(|d| d.schemes().contains(&scheme)) {
            return Ok(Arc::clone(driver));
        }
        if let Some((_, hint)) = self.missing.iter().find(|(s, _)| s.contains(&scheme)) {
            return Err(Error::configuration(format!(
                "the driver for `{scheme}` urls is not compiled in: {hint}"
            )));
        }
        let known: Vec<&str> = self
            .drivers
            .iter()
            .flat_map(|d| d.schemes().iter().copied())
            .chain(self.missing.iter().flat_map(|(s, _)| s.iter().copied()))
            .collect();
        if known.is_empty() {
            return Err(Error::configuration(format!(
                "unknown database url scheme `{scheme}`: no driver is registered; register one with \
                 EngineBuilder::driver, or build the engine with the anysql crate, which registers \
                 those its features compile in"
            )));
        }
        Err(Error::configuration(format!(
            "unknown database url scheme `{scheme}`; supported schemes are: {}",
            known.join(", ")
        )))
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("url", &crate::options::redact(&self.url))
            .field("drivers", &self.drivers)
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// The connector an engine's pool uses: with the `tracing` feature, `connector` wrapped so that
/// every statement runs in a span (see [`telemetry`](crate::telemetry)); else `connector` itself.
fn traced(
    connector: Arc<dyn crate::Connector>,
    slow_statement: Option<std::time::Duration>,
) -> Arc<dyn crate::Connector> {
    #[cfg(feature = "tracing")]
    let connector = crate::telemetry::TracedConnector::wrap(connector, slow_statement);
    #[cfg(not(feature = "tracing"))]
    let _ = slow_statement;
    connector
}
