//! Bulk data transfer with PostgreSQL's `COPY`: [`CopyIn`] (text or CSV data into a table),
//! [`CopyOut`] (a query's data out, as a stream of byte chunks) and [`CopyInRows`] (typed rows,
//! over binary COPY), on [`Connection`](crate::Connection) and
//! [`Transaction`](crate::Transaction).
//!
//! These are optional capabilities of a driver (see [`DriverConnection::copy_in`](crate::DriverConnection::copy_in)): a driver
//! without COPY (SQLite) answers with an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
//! error and runs nothing.
//!
//! # Cancellation
//!
//! Dropping a [`CopyIn`] or a [`CopyInRows`] before [`finish`](CopyIn::finish) aborts the COPY:
//! the driver sends `CopyFail`, and the server discards every row of it. Outside a transaction the
//! COPY is one statement, so none of its rows is kept; inside one, the transaction is aborted and
//! its `COMMIT` fails (the rows are never committed). Dropping a [`CopyOut`] early discards the
//! rest of the data. Either way the connection is made ready again before its next use (or
//! discarded, if that fails), like after any dropped operation.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_core::Stream;

use crate::connection::ConnectionState;
use crate::error::Error;
use crate::params::Params;
use crate::value::Value;

/// A stream of byte chunks borrowed from a connection: the data of a `COPY … TO STDOUT`.
pub type ByteStream<'a> = Pin<Box<dyn Stream<Item = Result<Vec<u8>, Error>> + Send + 'a>>;

/// The driver's side of [`CopyIn`]: a `COPY … FROM STDIN` in progress. Dropping it without
/// [`finish`](Self::finish) must abort the COPY.
#[async_trait]
pub trait DriverCopyIn: Send {
    /// Sends a chunk of data in the COPY's format (text or CSV); chunks need not end at a row.
    async fn send(&mut self, data: &[u8]) -> Result<(), Error>;

    /// Ends the COPY and returns the number of rows copied.
    async fn finish(self: Box<Self>) -> Result<u64, Error>;
}

/// The driver's side of [`CopyInRows`]: a binary `COPY … FROM STDIN` of typed rows. Dropping it
/// without [`finish`](Self::finish) must abort the COPY.
#[async_trait]
pub trait DriverCopyRows: Send {
    /// Adds one row, its values in the order of the columns. A driver may buffer rows and send
    /// them in batches, so an error may surface on a later call.
    async fn write(&mut self, row: Vec<Value>) -> Result<(), Error>;

    /// Sends what is buffered, ends the COPY and returns the number of rows copied.
    async fn finish(self: Box<Self>) -> Result<u64, Error>;
}

/// The error of a COPY method on a driver without COPY.
pub(crate) fn unsupported(what: &str) -> Error {
    Error::unsupported(format!(
        "{what} is not supported by this database driver (PostgreSQL's COPY only); nothing was run"
    ))
}

/// A `COPY … FROM STDIN` in progress: send it text or CSV data, then [`finish`](Self::finish).
///
/// From [`Connection::copy_in`](crate::Connection::copy_in). Dropping it before `finish` aborts
/// the COPY: no row of it is kept (see the [module docs](crate::copy)).
///
/// ```no_run
/// # async fn demo(engine: anysql_core::Engine) -> Result<(), anysql_core::Error> {
/// let mut conn = engine.acquire().await?;
/// conn.execute("CREATE TEMP TABLE people (id int, name text)", ()).await?;
/// let mut copy = conn.copy_in("COPY people (id, name) FROM STDIN (FORMAT csv)").await?;
/// copy.send(b"1,ada\n2,grace\n").await?;
/// copy.send("3,edsger\n").await?;
/// assert_eq!(copy.finish().await?, 3);
/// # Ok(())
/// # }
/// ```
pub struct CopyIn<'c> {
    inner: Box<dyn DriverCopyIn + 'c>,
    state: &'c mut ConnectionState,
}

impl<'c> CopyIn<'c> {
    pub(crate) fn new(inner: Box<dyn DriverCopyIn + 'c>, state: &'c mut ConnectionState) -> Self {
        CopyIn { inner, state }
    }

    /// Sends a chunk of data (`&[u8]`, `&str`, `Vec<u8>`, …) in the COPY's format. Chunks need not
    /// end at row boundaries.
    pub async fn send(&mut self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        self.inner.send(data.as_ref()).await
    }

    /// Ends the COPY and returns the number of rows copied. On an error (bad data, a constraint)
    /// no row of the COPY is kept.
    pub async fn finish(self) -> Result<u64, Error> {
        let CopyIn { inner, state } = self;
        let result = inner.finish().await;
        // Finished either way (the driver saw the server's answer): nothing is left in flight.
        state.interrupted = false;
        result
    }
}

impl fmt::Debug for CopyIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyIn").finish_non_exhaustive()
    }
}

/// A typed bulk insert over binary `COPY … FROM STDIN`: [`write`](Self::write) rows, then
/// [`finish`](Self::finish).
///
/// From [`Connection::copy_in_rows`](crate::Connection::copy_in_rows). Each row is a tuple,
/// array or `Vec` of values (see [`Params`]), one per column, converted to the column's type as a
/// statement parameter would be. Rows may be buffered and sent in batches, so a value the column
/// cannot take may be reported by a later `write` or by `finish`. Dropping it before `finish`
/// aborts the COPY: no row of it is kept.
///
/// ```no_run
/// # async fn demo(engine: anysql_core::Engine) -> Result<(), anysql_core::Error> {
/// let mut conn = engine.acquire().await?;
/// conn.execute("CREATE TEMP TABLE t (id bigint, name text)", ()).await?;
/// let mut rows = conn.copy_in_rows("t", &["id", "name"]).await?;
/// rows.write(&(1, "a")).await?;
/// rows.write((2, "b")).await?;
/// assert_eq!(rows.finish().await?, 2);
/// # Ok(())
/// # }
/// ```
pub struct CopyInRows<'c> {
    inner: Box<dyn DriverCopyRows + 'c>,
    state: &'c mut ConnectionState,
}

impl<'c> CopyInRows<'c> {
    pub(crate) fn new(inner: Box<dyn DriverCopyRows + 'c>, state: &'c mut ConnectionState) -> Self {
        CopyInRows { inner, state }
    }

    /// Adds one row: its values in the order of the columns given to `copy_in_rows`.
    pub async fn write(&mut self, row: impl Params) -> Result<(), Error> {
        self.inner.write(row.into_values()).await
    }

    /// Sends the rows still buffered, ends the COPY and returns the number of rows copied.
    pub async fn finish(self) -> Result<u64, Error> {
        let CopyInRows { inner, state } = self;
        let result = inner.finish().await;
        state.interrupted = false;
        result
    }
}

impl fmt::Debug for CopyInRows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyInRows").finish_non_exhaustive()
    }
}

/// The data of a `COPY … TO STDOUT`, as a stream of byte chunks (for text and CSV, one row per
/// chunk), holding a bounded amount in memory.
///
/// From [`Connection::copy_out`](crate::Connection::copy_out). Dropping it early discards the
/// rest of the data before the connection is used again.
///
/// ```no_run
/// # async fn demo(engine: anysql_core::Engine) -> Result<(), anysql_core::Error> {
/// use futures_lite::StreamExt;
///
/// let mut conn = engine.acquire().await?;
/// let mut out = conn.copy_out("COPY (SELECT 1, 'a') TO STDOUT (FORMAT csv)").await?;
/// let mut data = Vec::new();
/// while let Some(chunk) = out.next().await {
///     data.extend_from_slice(&chunk?);
/// }
/// assert_eq!(data, b"1,a\n");
/// # Ok(())
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct CopyOut<'c> {
    phase: OutPhase<'c>,
}

enum OutPhase<'c> {
    Streaming(ByteStream<'c>, &'c mut ConnectionState),
    Done,
}

impl<'c> CopyOut<'c> {
    pub(crate) fn new(stream: ByteStream<'c>, state: &'c mut ConnectionState) -> Self {
        CopyOut {
            phase: OutPhase::Streaming(stream, state),
        }
    }
}

impl Stream for CopyOut<'_> {
    type Item = Result<Vec<u8>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.phase {
            OutPhase::Streaming(stream, state) => {
                let item = std::task::ready!(stream.as_mut().poll_next(cx));
                match item {
                    Some(Ok(chunk)) => Poll::Ready(Some(Ok(chunk))),
                    end => {
                        // The driver has finished the COPY either way.
                        state.interrupted = false;
                        self.phase = OutPhase::Done;
                        Poll::Ready(end)
                    }
                }
            }
            OutPhase::Done => Poll::Ready(None),
        }
    }
}

impl fmt::Debug for CopyOut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyOut").finish_non_exhaustive()
    }
}
