//! One async SQL API for every executor: tokio, smol and async-std, over SQLite and PostgreSQL.
//!
//! The same code runs on every executor and every database: moving between executors is a feature
//! flag, and moving between databases is a URL.
//!
//! | feature | what it adds |
//! |---|---|
//! | `runtime-tokio` (default) | [`runtime::TokioRuntime`] |
//! | `runtime-smol` | [`runtime::SmolRuntime`] |
//! | `runtime-async-std` | [`runtime::AsyncStdRuntime`] |
//! | `sqlite` (default) | `sqlite:` URLs, over rusqlite with a bundled SQLite ([`sqlite`]) |
//! | `postgres` | `postgres://` URLs, over tokio-postgres ([`postgres`]), with `tls` |
//! | `tls` | TLS for PostgreSQL, with rustls: `sslmode`, `sslrootcert`, `sslcert`, `sslkey` (see [PostgreSQL over TLS](#postgresql-over-tls)); part of `postgres` |
//! | `postgres-plaintext` | PostgreSQL without `tls`: no rustls in the tree; plaintext TCP and Unix sockets only |
//! | `macros` (default) | `#[derive(FromRow)]` ([`FromRow`](derive@FromRow)) and `#[derive(Type)]` ([`Type`]) for enums and newtypes |
//! | `migrate` | migrations: [`migrate::Migrator`], and with `macros` the [`migrate!`] macro that embeds them |
//! | `testing` | [`testing::fresh_database`] and, with `macros`, [`#[anysql::test]`](macro@test): a database of its own for each test, dropped afterwards |
//! | `chrono` | chrono's `NaiveDate`, `NaiveTime`, `NaiveDateTime`, `DateTime<Utc>`, `DateTime<FixedOffset>`, `DateTime<Local>` |
//! | `time` | the time crate's `Date`, `Time`, `PrimitiveDateTime`, `OffsetDateTime` |
//! | `uuid` | `uuid::Uuid` |
//! | `json` | `serde_json::Value` and [`Json<T>`](Json) for any serde type |
//! | `decimal` | `rust_decimal::Decimal`, exact, up to 28 significant digits |
//! | `bigdecimal` | `bigdecimal::BigDecimal`, exact, any number of digits |
//! | `tracing` | one span per statement with OpenTelemetry's attribute names, pool events, and the `slow_statement` warning ([`telemetry`]) |
//!
//! Whatever the features, `i8` to `i64`, `u8` to `u64` (range-checked), `f32`, `f64`, `bool`,
//! `String`, `&str`, bytes, `std::net::IpAddr`, arrays (`Vec<T>` and `&[T]`: PostgreSQL arrays;
//! JSON text on SQLite, read back with the `json` feature) and `Option<T>` for NULL bind and
//! decode, and a decimal column reads exactly into `String`. The [`types`] module says how the
//! values travel, and the [`sqlite`] module how SQLite stores what it has no type for.
//!
//! Two decimal features, because neither type does both jobs: `Decimal` is a fixed 128-bit value,
//! fast and allocation-free, but holds at most 28 significant digits, so a wider value (a
//! `numeric(40,10)` such as `12345678901234567890.0123456789`) fails to decode into it, with an
//! error, rather than being rounded; `BigDecimal` allocates, and is slower to compute with, but
//! holds every digit of any `numeric`. Both bind and decode through the same exact decimal text,
//! on both databases, also as `Option<_>` and as PostgreSQL arrays (`Vec<_>`).
//!
//! PostgreSQL columns of the common types anysql has no Rust type for (`interval`, `timetz`,
//! ranges and multiranges, composites and records, bit strings, MAC addresses, networks, the
//! geometric types) read into `String` without a cast: the driver writes the text the server's
//! `::text` gives (see the [`postgres`] module, "Types read as text", for the list and the forms).
//! Other types, `money` among them, are a decode error that names the type and the cast.
//!
//! SQL runs through the query builders — [`query`], [`query_as`] (rows into a tuple or a
//! `#[derive(FromRow)]` struct) and [`query_scalar`] — whose finishers (`execute`, `execute_many`,
//! `fetch_all`, `fetch_one`, `fetch_optional`, `fetch`) run on any [`Executor`]: `&engine`,
//! `&mut conn` or `&mut tx`. The engine's and the connection's own methods (`engine.fetch_all(sql,
//! params)` and the like) are shorthands for the same path. Statements whose parameters do not
//! depend on each other's results can go together in a [`Pipeline`]: run by
//! [`Transaction::commit_with`], they travel with the `COMMIT`, in one round trip on PostgreSQL.
//!
//! A library should depend on `anysql` with `default-features = false` and take an [`Engine`] or
//! an `impl Executor<'_>`: it then never picks an executor or a database, and its users do.
//!
//! # Examples
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "runtime-tokio"))]
//! # fn main() -> Result<(), anysql::Error> {
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use anysql::{query, query_as, query_scalar, Executor};
//!
//! // One function for an engine, a connection or a transaction.
//! async fn add_person(db: impl Executor<'_>, name: &str) -> Result<u64, anysql::Error> {
//!     query("INSERT INTO people (name) VALUES ($1)").bind(name).execute(db).await
//! }
//!
//! let engine = anysql::create_async_engine("sqlite::memory:")?;
//! query("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
//!     .execute(&engine)
//!     .await?;
//!
//! let mut tx = engine.begin().await?;
//! add_person(&mut tx, "Ada").await?;
//! add_person(&mut tx, "Grace").await?;
//! tx.commit().await?; // dropped without commit = rolled back
//!
//! let people: Vec<(i64, String)> = query_as("SELECT id, name FROM people ORDER BY id")
//!     .fetch_all(&engine)
//!     .await?;
//! assert_eq!(people, [(1, "Ada".to_string()), (2, "Grace".to_string())]);
//! let n: i64 = query_scalar("SELECT count(*) FROM people").fetch_one(&engine).await?;
//! assert_eq!(n, 2);
//! # Ok(())
//! # })
//! # }
//! # #[cfg(not(all(feature = "sqlite", feature = "runtime-tokio")))]
//! # fn main() {}
//! ```
//!
//! # Decoding rows into structs
//!
//! `#[derive(FromRow)]` (the `macros` feature) decodes each row into a struct, by column name; see
//! [the derive's documentation](derive@FromRow) for its attributes.
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "runtime-tokio", feature = "macros"))]
//! # fn main() -> Result<(), anysql::Error> {
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use anysql::FromRow;
//!
//! #[derive(FromRow, Debug, PartialEq)]
//! struct Person {
//!     id: i64,
//!     #[anysql(rename = "full_name")]
//!     name: String,
//!     nickname: Option<String>,
//! }
//!
//! let engine = anysql::create_async_engine("sqlite::memory:")?;
//! let mut conn = engine.acquire().await?;
//! conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT, nickname TEXT)", ())
//!     .await?;
//! conn.execute("INSERT INTO people (full_name) VALUES ($1)", ("Ada",)).await?;
//!
//! let people: Vec<Person> = conn.fetch_all_as("SELECT * FROM people", ()).await?;
//! assert_eq!(people, [Person { id: 1, name: "Ada".into(), nickname: None }]);
//! # Ok(())
//! # })
//! # }
//! # #[cfg(not(all(feature = "sqlite", feature = "runtime-tokio", feature = "macros")))]
//! # fn main() {}
//! ```
//!
//! # PostgreSQL over TLS
//!
//! The TLS options are libpq's, in the URL's query or in the `key=value` form, with libpq's
//! meaning (the [`postgres`] module has the details):
//!
//! | URL | what it does |
//! |---|---|
//! | `postgres://app@db/app` | `sslmode=prefer`, libpq's default: TLS when the server offers it, the certificate not checked |
//! | `?sslmode=disable` | plaintext |
//! | `?sslmode=require` | TLS or no connection; the certificate is not checked |
//! | `?sslmode=verify-ca&sslrootcert=/etc/app/ca.pem` | TLS, the certificate must chain to that CA |
//! | `?sslmode=verify-full&sslrootcert=/etc/app/ca.pem` | also the host name (or IP address) must be in the certificate: what to use in production |
//! | `?sslrootcert=system` | the platform's trusted roots (a managed service with a public CA); implies `verify-full` |
//! | `?sslcert=/etc/app/client.pem&sslkey=/etc/app/client.key` | a client certificate, for `cert` authentication |
//! | `host=db sslmode=verify-full sslrootcert=/etc/app/ca.pem` | the same in the `key=value` form |
//!
//! The `postgres` feature includes `tls`, whatever the other features, so that no build silently
//! falls back to plaintext under `sslmode=prefer`. `postgres-plaintext` leaves rustls out: then
//! `prefer` and `allow` connect in plaintext, and `require`, `verify-ca` and `verify-full` are
//! configuration errors when the engine is built.
//!
//! # Tracing
//!
//! With the `tracing` feature every statement runs in a span (target `anysql::statement`) whose
//! fields carry OpenTelemetry's stable database attribute names (`db.system.name`,
//! `db.query.text`, `db.operation.name`, `server.address`, `db.response.status_code`, …), and
//! `otel.name` holds the span name the conventions ask for (`SELECT users`). The SQL is recorded
//! as written; parameter values never are. The pool reports acquires (with the wait), connects,
//! resets and discards as `DEBUG` events with target `anysql::pool`, and `?slow_statement=500ms`
//! (or [`EngineBuilder::slow_statement`]) logs slower statements as warnings. The [`telemetry`]
//! module lists every field. Without the feature none of it is compiled; with it and no
//! subscriber interested, a statement costs the same within the noise, and a subscriber costs
//! what it does with each span (`cargo xtask bench --tracing`, docs/benchmarks.md in the
//! repository: about 4 µs per statement for a `fmt` layer that formats each one).
//!
//! tokio-postgres logs each statement's parameter values through the `log` crate at `DEBUG`
//! (`executing statement s7 with parameters: [...]`). They reach your output only if a `log`
//! logger is installed (`env_logger`, or `tracing-subscriber`'s `tracing-log` bridge, which
//! `tracing_subscriber::fmt().init()` installs by default): filter the `tokio_postgres` target to
//! `info` there (`RUST_LOG=debug,tokio_postgres=info`, or an `EnvFilter` directive
//! `tokio_postgres=info`), or leave the bridge out.
//!
//! # Choosing the runtime
//!
//! [`create_async_engine`] uses the runtime the caller is running on: tokio when called inside a
//! tokio runtime, async-std inside an async-std task, else smol. [`builder`] lets you pass
//! one explicitly, which always wins. With no runtime feature, building an engine fails with
//! [`ErrorKind::NoRuntime`] unless you pass a runtime.

#[cfg(feature = "tracing")]
pub use anysql_core::telemetry;
#[cfg(feature = "json")]
pub use anysql_core::Json;
pub use anysql_core::{
    query, query_as, query_scalar, types, Acquired, ArrayElement, BoxStream, CancelHandle, Columns,
    Connection, ConstraintKind, CopyIn, CopyInRows, CopyOut, DatabaseError, Engine, EngineBuilder,
    Error, ErrorKind, Executor, FromRow, FromValue, IsolationLevel, Listener, Notification, Params,
    Pipeline, PoolMetrics, PoolOptions, PoolStatus, Query, QueryAs, QueryScalar, Reader, Replica,
    Result, Row, RowIndex, Rows, Timestamp, ToValue, Transaction, TransactionOptions, Typed, Value,
    DEFAULT_LISTENER_CAPACITY,
};

/// The traits and types a runtime or driver author needs.
pub use anysql_core as core;

/// Derives [`FromRow`](trait@FromRow) for a struct (the `macros` feature). The derive and the trait
/// share the name, so `use anysql::FromRow;` imports both.
#[cfg(feature = "macros")]
pub use anysql_macros::FromRow;

/// Derives [`ToValue`], [`FromValue`] and `ArrayElement` for an enum stored as text (or as a
/// PostgreSQL enum type) or a `#[anysql(transparent)]` newtype (the `macros` feature).
#[cfg(feature = "macros")]
pub use anysql_macros::Type;

/// SQL migrations (the `migrate` feature): files named `<version>_<name>.sql`, with an optional
/// `<version>_<name>.down.sql`, applied in order of version by a [`Migrator`](migrate::Migrator),
/// each in its own transaction, under a lock that keeps two processes from migrating at once.
///
/// ```
/// # #[cfg(all(feature = "sqlite", feature = "runtime-smol", feature = "macros"))]
/// # smol::block_on(async {
/// // Embedded at compile time; `Migrator::from_dir("tests/migrations")` reads them at run time.
/// let migrator = anysql::migrate!("tests/migrations");
/// let engine = anysql::create_async_engine("sqlite::memory:")?;
/// migrator.run(&engine).await?;
/// let n: i64 = anysql::query_scalar("SELECT count(*) FROM people").fetch_one(&engine).await?;
/// assert_eq!(n, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// See the [`anysql_migrate`] crate's documentation for transactions, the no-transaction opt-out
/// (`-- anysql:no-transaction` on the first line), the lock and the checksums.
#[cfg(feature = "migrate")]
pub mod migrate {
    pub use anysql_migrate::*;
}

/// Embeds a directory of migrations at compile time and evaluates to a
/// [`Migrator`](migrate::Migrator) (the `migrate` and `macros` features); see
/// [`migrate`](mod@migrate).
#[cfg(all(feature = "migrate", feature = "macros"))]
pub use anysql_macros::migrate;

#[cfg(feature = "testing")]
pub mod testing;

/// Makes an `async fn name(engine: Engine)` a `#[test]` with a fresh database of its own (the
/// `testing` and `macros` features): `#[anysql::test]` on tokio, `#[anysql::test(runtime =
/// "smol")]` or `(runtime = "async-std")` on the others. See [`testing`].
#[cfg(all(feature = "testing", feature = "macros"))]
pub use anysql_macros::test;

/// Executors: the [`Runtime`](runtime::Runtime) trait and the compiled-in implementations.
pub mod runtime {
    pub use anysql_core::runtime::*;

    #[cfg(feature = "runtime-async-std")]
    pub use anysql_async_std::AsyncStdRuntime;
    #[cfg(feature = "runtime-smol")]
    pub use anysql_smol::SmolRuntime;
    #[cfg(feature = "runtime-tokio")]
    pub use anysql_tokio::TokioRuntime;

    use anysql_core::Error;

    /// Finds the runtime the caller is running on, among those compiled in: tokio inside a tokio
    /// runtime, async-std inside an async-std task, else smol (whose reactor runs on its own
    /// thread, so it serves any caller).
    pub fn detect() -> Result<SharedRuntime, Error> {
        #[cfg(feature = "runtime-tokio")]
        if tokio::runtime::Handle::try_current().is_ok() {
            return Ok(std::sync::Arc::new(TokioRuntime::current()?));
        }
        #[cfg(feature = "runtime-async-std")]
        if AsyncStdRuntime::is_current() {
            return Ok(std::sync::Arc::new(AsyncStdRuntime::new()));
        }
        #[cfg(feature = "runtime-smol")]
        return Ok(std::sync::Arc::new(SmolRuntime::new()));
        #[cfg(all(not(feature = "runtime-smol"), feature = "runtime-async-std"))]
        return Ok(std::sync::Arc::new(AsyncStdRuntime::new()));
        #[cfg(all(not(feature = "runtime-smol"), not(feature = "runtime-async-std")))]
        Err(no_runtime())
    }

    #[cfg(all(not(feature = "runtime-smol"), not(feature = "runtime-async-std")))]
    fn no_runtime() -> Error {
        use anysql_core::ErrorKind;
        if cfg!(feature = "runtime-tokio") {
            Error::new(
                ErrorKind::NoRuntime,
                "no tokio runtime is running: create the engine from inside a tokio runtime, or pass \
                 one with anysql::builder(url).runtime(..)",
            )
        } else {
            Error::new(
                ErrorKind::NoRuntime,
                "no async runtime is compiled in: enable one of the anysql features runtime-tokio, \
                 runtime-smol or runtime-async-std, or pass one with anysql::builder(url).runtime(..)",
            )
        }
    }
}

/// The SQLite driver (`sqlite:` URLs) and its `run_sync` escape hatch.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use anysql_sqlite::*;
}

/// The PostgreSQL driver (`postgres://` URLs).
#[cfg(feature = "postgres-plaintext")]
pub mod postgres {
    pub use anysql_postgres::*;
}

/// A builder for an [`Engine`] on `url` that knows the compiled-in drivers and finds the running
/// runtime: set pool options, a runtime or an `after_connect` hook, then
/// [`build`](EngineBuilder::build) it.
///
/// ```
/// # #[cfg(all(feature = "sqlite", feature = "runtime-smol"))]
/// # smol::block_on(async {
/// use std::time::Duration;
///
/// let engine = anysql::builder("sqlite::memory:")
///     .runtime(anysql::runtime::SmolRuntime::new())
///     .max_size(4)
///     .acquire_timeout(Duration::from_secs(5))
///     .build()?;
/// let n: i64 = anysql::query_scalar("SELECT $1 + 1").bind(41).fetch_one(&engine).await?;
/// assert_eq!(n, 42);
/// # Ok::<(), anysql::Error>(())
/// # }).unwrap();
/// ```
pub fn builder(url: &str) -> EngineBuilder {
    let builder = EngineBuilder::new(url).default_runtime(runtime::detect);
    #[cfg(feature = "sqlite")]
    let builder = builder.driver(anysql_sqlite::SqliteDriver::new());
    #[cfg(feature = "postgres-plaintext")]
    let builder = builder.driver(anysql_postgres::PostgresDriver);
    #[cfg(not(feature = "sqlite"))]
    let builder = builder.missing_driver(
        &["sqlite"],
        "enable the `sqlite` feature of the anysql crate",
    );
    #[cfg(not(feature = "postgres-plaintext"))]
    let builder = builder.missing_driver(
        &["postgres", "postgresql"],
        "enable the `postgres` feature of the anysql crate",
    );
    builder
}

/// Builds an [`Engine`] for `url` on the runtime the caller is running on.
///
/// No connection is opened until the first query. URLs: `sqlite:data.db`, `sqlite://data.db`,
/// `sqlite:///absolute/path.db`, `sqlite::memory:`, `postgres://user:password@host:5432/db`; pool
/// options go in the query string (`?max_size=4`).
///
/// Fails with [`ErrorKind::Configuration`] for a malformed URL, an unknown scheme or a driver that is
/// not compiled in, and with [`ErrorKind::NoRuntime`] when no runtime can be found.
pub fn create_async_engine(url: &str) -> Result<Engine> {
    builder(url).build()
}

/// The common imports: `use anysql::prelude::*;` (with the `macros` feature, `FromRow` is both the
/// trait and its derive, and the `Type` derive is there too).
pub mod prelude {
    #[cfg(feature = "macros")]
    pub use crate::Type;
    pub use crate::{
        create_async_engine, query, query_as, query_scalar, Connection, Engine, Error, ErrorKind,
        Executor, FromRow, FromValue, Row, ToValue, Transaction, Value,
    };
    #[cfg(feature = "sqlite")]
    pub use anysql_sqlite::SqliteConnectionExt as _;
}

#[cfg(test)]
mod tests {
    /// What a library built on `anysql` with no runtime feature sees: a clear error, no panic.
    #[cfg(not(any(
        feature = "runtime-tokio",
        feature = "runtime-smol",
        feature = "runtime-async-std"
    )))]
    #[test]
    fn without_a_runtime_feature_building_an_engine_is_a_clear_error() {
        let err = crate::builder("postgres://localhost/db")
            .driver(NoDriver)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NoRuntime);
        assert!(err.to_string().contains("runtime-tokio"), "{err}");
    }

    /// And with no driver feature, the URL's driver is named with the feature to enable.
    #[cfg(not(feature = "sqlite"))]
    #[test]
    fn without_the_sqlite_feature_a_sqlite_url_names_the_feature() {
        let err = crate::create_async_engine("sqlite::memory:").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Configuration);
        assert!(
            err.to_string().contains("enable the `sqlite` feature"),
            "{err}"
        );
    }

    /// A `key=value` string goes to the driver that accepts them (PostgreSQL's): without it, the
    /// error says which feature to enable.
    #[cfg(not(feature = "postgres-plaintext"))]
    #[test]
    fn without_the_postgres_feature_a_key_value_string_names_the_feature() {
        let err = crate::create_async_engine("host=localhost dbname=test").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Configuration);
        assert!(
            err.to_string().contains("enable the `postgres` feature"),
            "{err}"
        );
    }

    /// A driver for the `postgres` scheme that is never asked to connect: it lets the runtime check
    /// run with no real driver compiled in.
    #[cfg(not(any(
        feature = "runtime-tokio",
        feature = "runtime-smol",
        feature = "runtime-async-std"
    )))]
    #[derive(Debug)]
    struct NoDriver;

    #[cfg(not(any(
        feature = "runtime-tokio",
        feature = "runtime-smol",
        feature = "runtime-async-std"
    )))]
    impl anysql_core::AsyncDriver for NoDriver {
        fn name(&self) -> &'static str {
            "none"
        }
        fn schemes(&self) -> &'static [&'static str] {
            &["postgres"]
        }
        fn connector(
            &self,
            _: &anysql_core::ConnectOptions,
        ) -> crate::Result<std::sync::Arc<dyn anysql_core::Connector>> {
            Err(crate::Error::configuration("never used"))
        }
    }
}
