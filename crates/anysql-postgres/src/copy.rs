//! `COPY … FROM STDIN` and `COPY … TO STDOUT` over tokio-postgres' COPY support: the writers of
//! [`Connection::copy_in`](anysql_core::Connection::copy_in) and
//! [`copy_in_rows`](anysql_core::Connection::copy_in_rows) (binary, through
//! `BinaryCopyInWriter`) and the stream of [`copy_out`](anysql_core::Connection::copy_out).
//!
//! A writer dropped before `finish` drops tokio-postgres' sink, which then sends `CopyFail` before
//! any later request: the server discards the COPY's rows (and, inside a transaction, aborts the
//! transaction, which the driver then reports as rolled back at `COMMIT`).

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll, Waker};

use anysql_core::{ByteStream, DriverCopyIn, DriverCopyRows, Error, ErrorKind, Value};
use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use postgres_types::Type;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::{CopyInSink, CopyOutStream};

use crate::connection::PgConnection;
use crate::listen::quote_ident;
use crate::socket::TxnStatus;
use crate::sql;
use crate::statements::Failure;
use crate::types;

/// Quotes a table name, `schema.table` or `table`, each part as an identifier.
fn quote_table(table: &str) -> Result<String, Error> {
    if table.is_empty() || table.split('.').any(str::is_empty) {
        return Err(Error::parameter(format!(
            "`{table}` is not a table name: give `table` or `schema.table`"
        )));
    }
    Ok(table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join("."))
}

/// Checks that `sql` is one COPY statement in the direction wanted.
fn check_copy(sql: &str, from_stdin: bool) -> Result<(), Error> {
    let info = sql::scan(sql);
    let (method, wanted) = if from_stdin {
        ("copy_in", "COPY … FROM STDIN")
    } else {
        ("copy_out", "COPY … TO STDOUT")
    };
    if info.multiple_statements || !info.copy_stdio || info.copy_from_stdin != from_stdin {
        return Err(Error::new(
            ErrorKind::InvalidStatement,
            format!("{method} takes one {wanted} statement; nothing was sent"),
        ));
    }
    Ok(())
}

/// The error of a COPY writer used after an earlier error ended its COPY.
fn failed_copy() -> Error {
    Error::new(
        ErrorKind::InvalidStatement,
        "this COPY already failed (see the earlier error) and was aborted; drop the writer",
    )
}

impl PgConnection {
    /// Refuses a COPY outside a transaction behind PgBouncer (`pgbouncer=true`), before anything
    /// is sent. tokio-postgres prepares a COPY's statement and closes it with requests of their
    /// own, pipelined; outside a transaction, PgBouncer's transaction pooling may end the link to
    /// the server after the first of them and lose the answers to the rest. Inside a
    /// transaction, the server connection stays the same until it ends.
    fn check_copy_behind_pgbouncer(&self, what: &str) -> Result<(), Error> {
        if self.behind_pgbouncer && !self.copy_in_transaction() {
            return Err(Error::unsupported(format!(
                "{what} through PgBouncer (pgbouncer=true) must run inside a transaction: \
                 `let mut tx = conn.begin().await?;` then `tx.{what}(..)` and `tx.commit()`; \
                 nothing was sent"
            )));
        }
        Ok(())
    }

    /// Whether the session is in a transaction, as far as is known now.
    fn copy_in_transaction(&self) -> bool {
        self.session
            .txn()
            .map_or(self.server.txn_status() != TxnStatus::Idle, |status| {
                status != TxnStatus::Idle
            })
    }

    /// Starts a COPY FROM STDIN through tokio-postgres.
    async fn start_copy_in(&mut self, sql: &str) -> Result<(CopyInSink<Bytes>, bool), Error> {
        self.start()?;
        let in_txn = self.copy_in_transaction();
        let Self { client, io, .. } = self;
        let result = io.drive(client.copy_in::<str, Bytes>(sql)).await;
        match result {
            Ok(sink) => {
                // tokio-postgres ends this COPY (CopyDone, or CopyFail when the sink drops).
                self.copy_owned = true;
                Ok((sink, in_txn))
            }
            Err(e) => self.session.settle(None, sql, &[], Err(Failure::Pg(e))),
        }
    }
}

/// Starts a `COPY … FROM STDIN` of text or CSV data.
pub(crate) async fn copy_in<'c>(
    conn: &'c mut PgConnection,
    sql: &str,
) -> Result<Box<dyn DriverCopyIn + 'c>, Error> {
    check_copy(sql, true)?;
    conn.check_copy_behind_pgbouncer("copy_in")?;
    let (sink, in_txn) = conn.start_copy_in(sql).await?;
    Ok(Box::new(PgCopyIn {
        conn,
        sink: Box::pin(sink),
        end: End::new(in_txn),
    }))
}

/// How far a writer got, and what a dropped one must record on its connection.
struct End {
    /// The COPY runs inside a transaction.
    in_txn: bool,
    /// An error ended the writer: nothing more can be sent (the COPY itself may still be open on
    /// the server, to be aborted when the writer drops).
    done: bool,
    /// `finish` ran: the server's answer to the whole COPY was read.
    finished: bool,
}

impl End {
    fn new(in_txn: bool) -> Self {
        End {
            in_txn,
            done: false,
            finished: false,
        }
    }

    fn on_drop(&self, conn: &mut PgConnection) {
        if !self.finished && self.in_txn {
            // The sink's CopyFail aborts the transaction: its COMMIT must report a rollback,
            // even before the server's word on it has been read.
            conn.session.mark_failed();
        }
    }
}

/// The writer of [`copy_in`].
struct PgCopyIn<'c> {
    conn: &'c mut PgConnection,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    end: End,
}

#[async_trait]
impl DriverCopyIn for PgCopyIn<'_> {
    async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.end.done {
            return Err(failed_copy());
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut item = Some(Bytes::copy_from_slice(data));
        let sink = &mut self.sink;
        let result = self
            .conn
            .io
            .drive(poll_fn(|cx| {
                ready!(sink.as_mut().poll_ready(cx))?;
                match item.take() {
                    Some(bytes) => Poll::Ready(sink.as_mut().start_send(bytes)),
                    None => Poll::Ready(Ok(())),
                }
            }))
            .await;
        if result.is_err() {
            self.end.done = true;
        }
        self.conn.session.settle_keep(result.map_err(Failure::Pg))
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, Error> {
        if self.end.done {
            return Err(failed_copy());
        }
        let Self { conn, sink, end } = &mut *self;
        let result = conn.io.drive(sink.as_mut().finish()).await;
        end.done = true;
        end.finished = true;
        conn.copy_owned = false;
        conn.session
            .settle(None, "", &[], result.map_err(Failure::Pg))
    }
}

impl Drop for PgCopyIn<'_> {
    fn drop(&mut self) {
        self.end.on_drop(self.conn);
    }
}

/// Starts a binary COPY of typed rows into `columns` of `table`.
pub(crate) async fn copy_in_rows<'c>(
    conn: &'c mut PgConnection,
    table: &str,
    columns: &[&str],
) -> Result<Box<dyn DriverCopyRows + 'c>, Error> {
    if columns.is_empty() {
        return Err(Error::parameter(
            "copy_in_rows needs at least one column name",
        ));
    }
    conn.check_copy_behind_pgbouncer("copy_in_rows")?;
    let table = quote_table(table)?;
    let columns_sql = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    // The column types, for the binary format: from a statement that reads those columns.
    conn.start()?;
    let probe = format!("SELECT {columns_sql} FROM {table}");
    let result = {
        let PgConnection { client, io, .. } = &mut *conn;
        io.drive(client.prepare(&probe)).await
    };
    let statement = conn
        .session
        .settle(None, &probe, &[], result.map_err(Failure::Pg))?;
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    drop(statement);
    let sql = format!("COPY {table} ({columns_sql}) FROM STDIN (FORMAT binary)");
    let (sink, in_txn) = conn.start_copy_in(&sql).await?;
    let columns = types.len();
    Ok(Box::new(PgCopyRows {
        conn,
        writer: Box::pin(BinaryCopyInWriter::new(sink, &types)),
        columns,
        end: End::new(in_txn),
    }))
}

/// Polls `future` once with a waker that does nothing.
fn poll_once_noop<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// The writer of [`copy_in_rows`].
struct PgCopyRows<'c> {
    conn: &'c mut PgConnection,
    writer: Pin<Box<BinaryCopyInWriter>>,
    columns: usize,
    end: End,
}

#[async_trait]
impl DriverCopyRows for PgCopyRows<'_> {
    async fn write(&mut self, row: Vec<Value>) -> Result<(), Error> {
        if self.end.done {
            return Err(failed_copy());
        }
        if row.len() != self.columns {
            // Checked before anything is written: the COPY goes on.
            return Err(Error::parameter(format!(
                "the COPY has {} column{} but the row has {} value{}",
                self.columns,
                if self.columns == 1 { "" } else { "s" },
                row.len(),
                if row.len() == 1 { "" } else { "s" },
            )));
        }
        let Self { conn, writer, .. } = self;
        let mut write = pin!(writer.as_mut().write_raw(types::params(&row)));
        // Most rows only go into the writer's buffer, and finish at the first poll: no need to
        // drive the connection for those (nor to register a waker). The rest, which hand a full
        // buffer to the connection, are driven as usual.
        let first = poll_once_noop(write.as_mut());
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => conn.io.drive(write).await,
        };
        if result.is_err() {
            // Half a row may be in the writer's buffer: nothing more can go after it.
            self.end.done = true;
        }
        self.conn.session.settle_keep(result.map_err(Failure::Pg))
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, Error> {
        if self.end.done {
            return Err(failed_copy());
        }
        let Self {
            conn, writer, end, ..
        } = &mut *self;
        let result = conn.io.drive(writer.as_mut().finish()).await;
        end.done = true;
        end.finished = true;
        conn.copy_owned = false;
        conn.session
            .settle(None, "", &[], result.map_err(Failure::Pg))
    }
}

impl Drop for PgCopyRows<'_> {
    fn drop(&mut self) {
        self.end.on_drop(self.conn);
    }
}

/// Starts a `COPY … TO STDOUT` and streams its data.
pub(crate) async fn copy_out<'c>(
    conn: &'c mut PgConnection,
    sql: &str,
) -> Result<ByteStream<'c>, Error> {
    check_copy(sql, false)?;
    conn.check_copy_behind_pgbouncer("copy_out")?;
    conn.start()?;
    let result = {
        let PgConnection { client, io, .. } = &mut *conn;
        io.drive(client.copy_out(sql)).await
    };
    let stream = conn
        .session
        .settle(None, sql, &[], result.map_err(Failure::Pg))?;
    // Still in flight until the stream ends.
    conn.session.in_flight = true;
    Ok(Box::pin(PgCopyOut {
        conn,
        stream: Box::pin(stream),
        done: false,
    }))
}

/// The stream of [`copy_out`].
struct PgCopyOut<'c> {
    conn: &'c mut PgConnection,
    stream: Pin<Box<CopyOutStream>>,
    done: bool,
}

impl Stream for PgCopyOut<'_> {
    type Item = Result<Vec<u8>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let stream = &mut this.stream;
        let item = ready!(this
            .conn
            .io
            .poll_with(cx, |cx| stream.as_mut().poll_next(cx)));
        match item {
            Some(Ok(chunk)) => Poll::Ready(Some(Ok(chunk.to_vec()))),
            Some(Err(e)) => {
                this.done = true;
                let result = this
                    .conn
                    .session
                    .settle(None, "", &[], Err::<(), _>(Failure::Pg(e)));
                Poll::Ready(result.err().map(Err))
            }
            None => {
                this.done = true;
                let result = this.conn.session.settle(None, "", &[], Ok(()));
                Poll::Ready(result.err().map(Err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_quoted_by_part() {
        assert_eq!(quote_table("t").unwrap(), "\"t\"");
        assert_eq!(quote_table("s.T").unwrap(), "\"s\".\"T\"");
        assert_eq!(quote_table("").unwrap_err().kind(), ErrorKind::Parameter);
        assert_eq!(quote_table("s.").unwrap_err().kind(), ErrorKind::Parameter);
    }

    #[test]
    fn copy_statements_are_checked_for_their_direction() {
        assert!(check_copy("COPY t FROM STDIN", true).is_ok());
        assert!(check_copy("COPY t TO STDOUT", false).is_ok());
        for (sql, from) in [
            ("COPY t TO STDOUT", true),
            ("COPY t FROM STDIN", false),
            ("SELECT 1", true),
            ("COPY t FROM STDIN; SELECT 1", true),
        ] {
            let e = check_copy(sql, from).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidStatement, "{sql}");
        }
    }
}
