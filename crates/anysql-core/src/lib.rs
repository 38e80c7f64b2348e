//! The executor-agnostic and driver-agnostic core of anysql: traits, engine, pool, values and errors.
//!
//! This crate is for driver and runtime authors, and for libraries that want the smallest dependency.
//! Applications use the `anysql` facade crate, which re-exports everything here and adds the
//! compiled-in runtimes and drivers.
//!
//! It knows no executor and no database:
//! - a [`Runtime`] is a value carried by the [`Engine`] (spawn, sleep, sockets), implemented by
//!   `anysql-tokio`, `anysql-smol` and `anysql-async-std`;
//! - an [`AsyncDriver`] opens [`DriverConnection`]s, implemented by `anysql-sqlite` and
//!   `anysql-postgres`.
//!
//! Features only some databases have are optional capabilities of the driver traits, whose
//! default implementations return an [`ErrorKind::Unsupported`] error: COPY
//! ([`DriverConnection::copy_in`], `copy_out`, `copy_in_rows`, behind
//! [`Connection::copy_in`] and the [`copy`] types) and notifications
//! ([`Connector::connect_listener`], behind [`Engine::listener`] and [`Listener`]). So the user's
//! API names no driver, on every runtime, and a driver adds a capability by overriding a method.
//!
//! # Examples
//!
//! Values and rows need no database:
//!
//! ```
//! use anysql_core::{Columns, Row, Value};
//!
//! let row = Row::new(Columns::new(["n".to_string()]), vec![Value::Int(42)]);
//! let (n,): (u32,) = row.decode()?;
//! assert_eq!(n, 42);
//! # Ok::<(), anysql_core::Error>(())
//! ```

mod cancel;
mod connection;
pub mod copy;
pub mod driver;
mod engine;
mod error;
mod listener;
pub mod option_values;
mod options;
mod params;
mod pipeline;
mod pool;
mod query;
mod replicas;
mod retry;
mod row;
pub mod runtime;
mod shared;
pub mod spin;
pub mod sql;
pub mod statement_cache;
#[cfg(feature = "tracing")]
pub mod telemetry;
mod transaction;
mod transaction_options;
pub mod types;
mod value;

pub use cancel::CancelHandle;
pub use connection::{Connection, Rows};
pub use copy::{ByteStream, CopyIn, CopyInRows, CopyOut, DriverCopyIn, DriverCopyRows};
pub use driver::{
    execute_pipeline_one_by_one, pipeline_statement_failed, AsyncDriver, CancelQuery, Connector,
    DriverConnection, ParamSets, RowSink, RowStream, ServerInfo, SharedConnection,
};
pub use engine::{Engine, EngineBuilder};
pub use error::{ConstraintKind, DatabaseError, Error, ErrorKind, Result};
pub use listener::{DriverListener, Listener, Notification, DEFAULT_LISTENER_CAPACITY};
pub use options::{redact, ConnectOptions};
pub use params::Params;
pub use pipeline::Pipeline;
pub use pool::{AfterConnect, PoolMetrics, PoolOptions, PoolStatus};
pub use query::{
    query, query_as, query_scalar, Acquired, BoxStream, Decoding, Executor, FirstColumn, Query,
    QueryAs, QueryScalar, Typed, WholeRow,
};
pub use replicas::{Reader, Replica};
pub use retry::RetryPolicy;
pub use row::{Columns, FromRow, Row, RowIndex};
pub use runtime::{BoxSocket, Runtime, RuntimeExt, SharedRuntime, Socket};
pub use transaction::Transaction;
pub use transaction_options::{IsolationLevel, TransactionOptions};
pub use types::ArrayElement;
#[cfg(feature = "json")]
pub use types::Json;
pub use value::{FromValue, Timestamp, ToValue, Value};
