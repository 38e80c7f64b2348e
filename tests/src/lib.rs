//! The anysql conformance suite's harness: one test body, run on the runtime and database of the
//! current cell.
//!
//! The suite is compiled once with every feature; the cell is chosen at run time:
//!
//! | variable | values | default |
//! |---|---|---|
//! | `ANYSQL_TEST_RUNTIME` | `tokio`, `smol`, `async-std` | `tokio` |
//! | `ANYSQL_TEST_DRIVER` | `sqlite`, `postgres` | `sqlite` |
//! | `ANYSQL_PG_URL` | a PostgreSQL URL | `postgres://root@127.0.0.1:5432/test` |
//! | `ANYSQL_PG_PGBOUNCER` | `1` runs PostgreSQL in PgBouncer-safe mode (unnamed statements) | unset |
//! | `ANYSQL_PG_PGBOUNCER_URL` | with `ANYSQL_PG_PGBOUNCER=1`, a real PgBouncer in transaction-pooling mode in front of `ANYSQL_PG_URL`'s server (`postgres://127.0.0.1:6432/test`, no user): the tests connect through it | unset: the plain server |
//! | `ANYSQL_PG_TLS_URL`, `ANYSQL_PG_TLS_DIR` | the TLS cluster and its certificates, for `tests/tls.rs` (the TLS cells) | unset: the TLS tests do not run, and fail under `CI=true` |
//!
//! `cargo xtask test-matrix` runs every cell. Each test gets its own SQLite file or its own
//! PostgreSQL schema, so tests and cells may run in parallel and never see each other's tables.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anysql::{query, query_scalar, Engine, EngineBuilder, Error};
use futures_lite::FutureExt;

/// The executor of the current cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// tokio, multi-thread with 2 workers.
    Tokio,
    /// smol.
    Smol,
    /// async-std.
    AsyncStd,
}

/// The database of the current cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// SQLite, a file in a temporary directory.
    Sqlite,
    /// PostgreSQL, a schema of its own.
    Postgres,
}

/// The runtime of the current cell, from `ANYSQL_TEST_RUNTIME`.
pub fn runtime_kind() -> RuntimeKind {
    match std::env::var("ANYSQL_TEST_RUNTIME").as_deref() {
        Ok("smol") => RuntimeKind::Smol,
        Ok("async-std") => RuntimeKind::AsyncStd,
        Ok("tokio") | Err(_) => RuntimeKind::Tokio,
        Ok(other) => panic!("ANYSQL_TEST_RUNTIME={other}: expected tokio, smol or async-std"),
    }
}

/// The driver of the current cell, from `ANYSQL_TEST_DRIVER`.
pub fn driver_kind() -> DriverKind {
    match std::env::var("ANYSQL_TEST_DRIVER").as_deref() {
        Ok("postgres") => DriverKind::Postgres,
        Ok("sqlite") | Err(_) => DriverKind::Sqlite,
        Ok(other) => panic!("ANYSQL_TEST_DRIVER={other}: expected sqlite or postgres"),
    }
}

/// The PostgreSQL server the suite uses.
pub fn pg_url() -> String {
    std::env::var("ANYSQL_PG_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// Whether PostgreSQL runs in PgBouncer-safe mode.
pub fn pgbouncer_mode() -> bool {
    std::env::var("ANYSQL_PG_PGBOUNCER").is_ok_and(|v| v == "1" || v == "true")
}

/// In PgBouncer-safe mode, the real PgBouncer the tests connect through, if `cargo xtask` started
/// one (`ANYSQL_PG_PGBOUNCER_URL`). Under `CI=true` the mode without it is a failure: the cell
/// would not test PgBouncer at all.
pub fn pgbouncer_url() -> Option<String> {
    if !pgbouncer_mode() {
        return None;
    }
    match std::env::var("ANYSQL_PG_PGBOUNCER_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI runs the (pgbouncer) cells through a real PgBouncer: ANYSQL_PG_PGBOUNCER_URL is not set"
            );
            None
        }
    }
}

/// Whether the tests connect through a real PgBouncer ([`pgbouncer_url`]): then a client
/// connection is not one server session, and tests about server sessions (their count, their
/// process id) do not apply.
pub fn through_pgbouncer() -> bool {
    pgbouncer_url().is_some()
}

/// The current cell's name, such as `tokio × sqlite`.
pub fn cell_name() -> String {
    let runtime = match runtime_kind() {
        RuntimeKind::Tokio => "tokio",
        RuntimeKind::Smol => "smol",
        RuntimeKind::AsyncStd => "async-std",
    };
    let driver = match driver_kind() {
        DriverKind::Sqlite => "sqlite",
        DriverKind::Postgres if pgbouncer_url().is_some() => "postgres (pgbouncer)",
        DriverKind::Postgres if pgbouncer_mode() => "postgres (pgbouncer mode)",
        DriverKind::Postgres => "postgres",
    };
    format!("{runtime} × {driver}")
}

/// A name no other test, cell or run uses: `prefix_<pid>_<counter>_<random>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// A tokio runtime for one test: two workers, I/O and timers.
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `future` to completion on the current cell's runtime.
pub fn block_on<F: Future + Send + 'static>(future: F) -> F::Output
where
    F::Output: Send + 'static,
{
    match runtime_kind() {
        RuntimeKind::Tokio => tokio_runtime()
            // Spawned so the body runs on a worker, as in a real service.
            .block_on(async {
                tokio::spawn(future)
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            }),
        RuntimeKind::Smol => smol::block_on(future),
        RuntimeKind::AsyncStd => async_std::task::block_on(future),
    }
}

/// The database a test runs against: a fresh SQLite file or a fresh PostgreSQL schema, removed
/// afterwards.
#[derive(Debug)]
pub struct TestDb {
    /// The driver of this cell.
    pub driver: DriverKind,
    /// The URL of the test's own database (SQLite file, or PostgreSQL with its own schema as
    /// `search_path` and as `application_name`).
    pub url: String,
    /// The PostgreSQL schema, which is also the `application_name` of every connection.
    pub schema: Option<String>,
    sqlite_dir: Option<PathBuf>,
}

impl TestDb {
    async fn create() -> Result<TestDb, Error> {
        match driver_kind() {
            DriverKind::Sqlite => {
                let dir = std::env::temp_dir().join(unique_name("anysql_test"));
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::configuration("cannot create the test directory").with_source(e)
                })?;
                // `inline_limit=1ms`, the most allowed, so that statements run inline as they do in
                // release builds (unoptimised SQLite rarely runs one within the default 100 µs), and
                // the suite, the cancellation torture test above all, covers that path too.
                let url = format!(
                    "sqlite://{}?inline_limit=1ms",
                    dir.join("test.db").display()
                );
                Ok(TestDb {
                    driver: DriverKind::Sqlite,
                    url,
                    schema: None,
                    sqlite_dir: Some(dir),
                })
            }
            DriverKind::Postgres => {
                let schema = unique_name("anysql_t");
                let admin = anysql::builder(&pg_url()).max_size(1).build()?;
                query(format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await?;
                if let Some(bouncer) = pgbouncer_url() {
                    // PgBouncer refuses the `options` startup parameter, and a `SET` would not
                    // outlive a transaction: the test gets a role of its own, whose default
                    // search_path is its schema (a superuser, as the server's own user is).
                    query(format!("CREATE ROLE {schema} LOGIN SUPERUSER"))
                        .execute(&admin)
                        .await?;
                    query(format!("ALTER ROLE {schema} SET search_path = {schema}"))
                        .execute(&admin)
                        .await?;
                    admin.close().await;
                    let rest = bouncer
                        .strip_prefix("postgres://")
                        .expect("ANYSQL_PG_PGBOUNCER_URL starts with postgres://");
                    let sep = if rest.contains('?') { '&' } else { '?' };
                    return Ok(TestDb {
                        driver: DriverKind::Postgres,
                        url: format!(
                            "postgres://{schema}@{rest}{sep}application_name={schema}&pgbouncer=true"
                        ),
                        schema: Some(schema),
                        sqlite_dir: None,
                    });
                }
                admin.close().await;
                let base = pg_url();
                let sep = if base.contains('?') { '&' } else { '?' };
                let mut url = format!(
                    "{base}{sep}application_name={schema}&options=-c%20search_path%3D{schema}"
                );
                if pgbouncer_mode() {
                    url.push_str("&pgbouncer=true");
                }
                Ok(TestDb {
                    driver: DriverKind::Postgres,
                    url,
                    schema: Some(schema),
                    sqlite_dir: None,
                })
            }
        }
    }

    /// A builder for this test's database, on the cell's runtime (found by detection, as an
    /// application would).
    pub fn builder(&self) -> EngineBuilder {
        anysql::builder(&self.url)
    }

    /// An engine for this test's database with default settings.
    pub fn engine(&self) -> Engine {
        self.builder()
            .build()
            .expect("engine for the test database")
    }

    /// An engine whose URL gets `extra` query parameters (`"max_size=4"`).
    pub fn engine_with(&self, extra: &str) -> Engine {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        anysql::builder(&format!("{}{sep}{extra}", self.url))
            .build()
            .expect("engine for the test database")
    }

    /// An engine for this test's database that connects to the server itself, as the test's
    /// role, even when the cell runs through PgBouncer: for what needs a session of its own
    /// (migrations' advisory lock). Elsewhere the same as [`engine_with`](Self::engine_with).
    pub fn direct_engine_with(&self, extra: &str) -> Engine {
        let Some(schema) = self.schema.as_deref().filter(|_| through_pgbouncer()) else {
            return if extra.is_empty() {
                self.engine()
            } else {
                self.engine_with(extra)
            };
        };
        let base = pg_url();
        let rest = base
            .strip_prefix("postgres://")
            .expect("ANYSQL_PG_URL starts with postgres://");
        let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
        let sep = if rest.contains('?') { '&' } else { '?' };
        anysql::builder(&format!(
            "postgres://{schema}@{rest}{sep}application_name={schema}{}{extra}",
            if extra.is_empty() { "" } else { "&" }
        ))
        .build()
        .expect("engine for the test database")
    }

    /// The `pg_stat_activity` condition, on `$1` (the schema), that picks this test's server
    /// sessions: its `application_name`, or through a real PgBouncer its own role (PgBouncer
    /// sets the application name of the server sessions it lends, its own among them).
    pub fn sessions_predicate(&self) -> &'static str {
        if through_pgbouncer() {
            "usename = $1"
        } else {
            "application_name = $1"
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.driver == DriverKind::Postgres
    }

    /// The SQL type for binary data on this database.
    pub fn blob_type(&self) -> &'static str {
        match self.driver {
            DriverKind::Sqlite => "BLOB",
            DriverKind::Postgres => "BYTEA",
        }
    }

    /// The SQL type for a double-precision float on this database.
    pub fn double_type(&self) -> &'static str {
        match self.driver {
            DriverKind::Sqlite => "REAL",
            DriverKind::Postgres => "DOUBLE PRECISION",
        }
    }

    /// How many server sessions of this test are idle inside a transaction (PostgreSQL; 0 on
    /// SQLite, where a fresh connection checks that no write lock is held instead).
    pub async fn idle_in_transaction(&self) -> Result<i64, Error> {
        match &self.schema {
            None => Ok(0),
            Some(schema) => {
                let admin = anysql::builder(&pg_url()).max_size(1).build()?;
                let n = query_scalar(format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE {} \
                     AND state LIKE 'idle in transaction%'",
                    self.sessions_predicate()
                ))
                .bind(schema.as_str())
                .fetch_one(&admin)
                .await;
                admin.close().await;
                n
            }
        }
    }

    async fn drop_database(&self) {
        if let Some(schema) = &self.schema {
            if let Ok(admin) = anysql::builder(&pg_url()).max_size(1).build() {
                // Sessions of this test still open would hold locks on the schema's tables.
                let _ = query(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {}",
                    self.sessions_predicate()
                ))
                .bind(schema.as_str())
                .execute(&admin)
                .await;
                let _ = query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&admin)
                    .await;
                // The role of a test run through PgBouncer, if there is one.
                let _ = query(format!("DROP ROLE IF EXISTS {schema}"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        }
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs one conformance test on the current cell: creates its database, runs `test`, removes the
/// database (also when the test panics), and fails the test on a panic or an error.
///
/// The test's future must be `Send`, as a service's are: on tokio it runs on a worker thread.
pub fn run<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    block_on(with_database(test));
}

/// Like [`run`], for a test whose future is not `Send`: on tokio it runs on the thread that
/// blocks on it (the runtime's workers still do the I/O).
pub fn run_local<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let body = with_database(test);
    match runtime_kind() {
        RuntimeKind::Tokio => tokio_runtime().block_on(body),
        RuntimeKind::Smol => smol::block_on(body),
        RuntimeKind::AsyncStd => async_std::task::block_on(body),
    }
}

async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let db = TestDb::create().await.expect("creating the test database");
    let cleanup = TestDb {
        driver: db.driver,
        url: db.url.clone(),
        schema: db.schema.clone(),
        sqlite_dir: db.sqlite_dir.clone(),
    };
    let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;
    cleanup.drop_database().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("test failed with an error: {e} ({e:?})"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Waits until background resets of released connections finish, then checks that no connection
/// is left in use. (The engine's own statements may run on a shared connection and so need not
/// wait for the pool, which makes "nothing in use" right after them a race.)
pub async fn assert_pool_settles(engine: &anysql::Engine) {
    for _ in 0..500 {
        if engine.status().in_use == 0 {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "connections still in use after every task let go of them: {:?}",
        engine.status()
    );
}

/// Sleeps on the current cell's runtime.
pub async fn sleep(duration: Duration) {
    match runtime_kind() {
        RuntimeKind::Tokio => tokio::time::sleep(duration).await,
        RuntimeKind::Smol => {
            smol::Timer::after(duration).await;
        }
        RuntimeKind::AsyncStd => async_std::task::sleep(duration).await,
    }
}

/// Spawns a task on the current cell's runtime and returns its output when awaited.
pub fn spawn<F>(future: F) -> impl Future<Output = F::Output> + Send
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = async_channel::bounded(1);
    let task = async move {
        let _ = tx.send(future.await).await;
    };
    match runtime_kind() {
        RuntimeKind::Tokio => drop(tokio::spawn(task)),
        RuntimeKind::Smol => smol::spawn(task).detach(),
        RuntimeKind::AsyncStd => drop(async_std::task::spawn(task)),
    }
    async move { rx.recv().await.expect("the spawned task panicked") }
}

/// Races `future` against a timer of `duration`, dropping it when the timer wins: the tool of the
/// cancellation tests.
pub async fn with_timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    async { Some(future.await) }
        .or(async {
            sleep(duration).await;
            None
        })
        .await
}

/// Declares a module of `#[test]` functions, each running the async test body of the same name
/// (in the calling file) on the current cell with [`run`]. With a driver (`Some(DriverKind::..)`)
/// the tests return at once on the other database, and `cargo xtask test-matrix` skips them there
/// by the module's name (`pg_only`, `sqlite_only`); with `None` they run on every cell.
#[macro_export]
macro_rules! cell_tests {
    ($module:ident, $driver:expr, $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    let only: Option<$crate::DriverKind> = $driver;
                    if let Some(driver) = only {
                        if $crate::driver_kind() != driver {
                            eprintln!("{} runs on {:?} only", stringify!($name), driver);
                            return;
                        }
                    }
                    $crate::run(super::$name);
                }
            )*
        }
    };
}
