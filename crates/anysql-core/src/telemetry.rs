//! The `tracing` feature: one span per statement, named and shaped after OpenTelemetry's
//! database client conventions, pool events, and the slow-statement warning.
//!
//! The engine wraps its driver's [`Connector`] in a tracing one when it is built, so every
//! connection it opens (pooled or shared) reports each statement in a span. Without the feature
//! none of this is compiled, and the engine talks to the driver's connections directly.
//!
//! # The span
//!
//! Each statement gets one span at level `INFO` with target `anysql::statement`, entered while the
//! statement runs (a row stream's span stays open until the stream ends or is dropped; a COPY's
//! from its start until it finishes, with the rows it copied, or is dropped). Its fields
//! use the stable OpenTelemetry attribute names:
//!
//! | field | value |
//! |---|---|
//! | `otel.name` | `{db.operation.name} {target}` (`SELECT users`) where both can be read off the SQL, `{db.operation.name}` where only the operation can, else `db.system.name` |
//! | `otel.kind` | `client` |
//! | `db.system.name` | `postgresql` or `sqlite` |
//! | `db.namespace` | the database name (PostgreSQL) or file (SQLite) |
//! | `db.operation.name` | the statement's first keyword, upper case: `SELECT`, `INSERT`, `BEGIN`, … |
//! | `db.collection.name` | the table the statement names first after `FROM`, `INTO`, `UPDATE` or `TABLE`, where there is one |
//! | `db.query.text` | the SQL as written; parameter values are never recorded |
//! | `server.address`, `server.port` | the server's host and port (PostgreSQL over TCP; a Unix socket's directory as the address) |
//! | `db.operation.batch.size` | the number of parameter sets of `execute_many`; of statements of a [`Pipeline`](crate::Pipeline), with the `COMMIT` sent with it (the pipeline's statements share one span, its `db.query.text` their SQL joined by `; `) |
//! | `db.response.returned_rows` | the rows a query returned |
//! | `db.response.affected_rows` | the rows a statement changed (not yet in the stable conventions; named after `returned_rows`) |
//! | `db.response.status_code` | on failure, the SQLSTATE (PostgreSQL) or result code (SQLite), when the database gave one |
//! | `error.type` | on failure, that code, or else the [`ErrorKind`] in snake case (`connection`, `timeout`, …) |
//! | `otel.status_code` | `ERROR` on failure |
//!
//! `otel.name`, `otel.kind` and `otel.status_code` are the fields by which `tracing-opentelemetry`
//! sets an exported span's name, kind and status, since a `tracing` span's own name is fixed
//! (`anysql.statement`).
//!
//! # Events
//!
//! - target `anysql::pool`, level `DEBUG`: a connection acquired (with the wait), opened,
//!   reset after an interrupted operation, or discarded (and why);
//! - target `anysql::slow_statement`, level `WARN`: a statement that took at least the
//!   engine's `slow_statement` threshold (off by default; `?slow_statement=500ms` in the URL or
//!   [`EngineBuilder::slow_statement`](crate::EngineBuilder::slow_statement)), with its SQL and
//!   duration, never its parameters.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_core::Stream;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use crate::copy::{ByteStream, DriverCopyIn, DriverCopyRows};
use crate::driver::{
    Connector, DriverConnection, ParamSets, RowSink, RowStream, ServerInfo, SharedConnection,
};
use crate::error::{Error, ErrorKind};
use crate::listener::DriverListener;
use crate::row::Row;
use crate::runtime::SharedRuntime;
use crate::transaction_options::TransactionOptions;
use crate::value::Value;

/// What every span of one engine shares: the server it talks to and the slow-statement
/// threshold.
#[derive(Debug)]
struct Telemetry {
    server: ServerInfo,
    slow_statement: Option<Duration>,
}

/// How many rows a statement produced, for the span.
#[derive(Clone, Copy)]
enum RowCount {
    Returned(u64),
    Affected(u64),
}

impl Telemetry {
    /// Opens the span of one statement (disabled, and nearly free, when no subscriber wants it).
    fn span(&self, sql: &str, batch: Option<usize>) -> Span {
        let span = tracing::info_span!(
            target: "anysql::statement",
            "anysql.statement",
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = self.server.system,
            db.namespace = self.server.namespace.as_deref(),
            db.operation.name = Empty,
            db.collection.name = Empty,
            db.query.text = sql,
            server.address = self.server.address.as_deref(),
            server.port = self.server.port,
            db.operation.batch.size = batch,
            db.response.returned_rows = Empty,
            db.response.affected_rows = Empty,
            db.response.status_code = Empty,
            error.type = Empty,
        );
        if !span.is_disabled() {
            let summary = summarize(sql);
            if let Some(operation) = &summary.operation {
                span.record("db.operation.name", operation.as_str());
            }
            if let Some(collection) = summary.collection {
                span.record("db.collection.name", collection);
            }
            span.record("otel.name", summary.span_name(self.server.system).as_str());
        }
        span
    }

    /// Records how a statement ended on its span, and warns if it was slow.
    fn finish<T>(
        &self,
        span: &Span,
        sql: &str,
        started: Instant,
        result: &Result<T, Error>,
        rows: impl FnOnce(&T) -> RowCount,
    ) {
        match result {
            Ok(value) => {
                match rows(value) {
                    RowCount::Returned(n) => span.record("db.response.returned_rows", n),
                    RowCount::Affected(n) => span.record("db.response.affected_rows", n),
                };
            }
            Err(error) => record_error(span, error),
        }
        self.warn_if_slow(span, sql, started);
    }

    /// Records on its span a statement that failed before it returned anything.
    fn failed(&self, span: &Span, sql: &str, started: Instant, error: &Error) {
        record_error(span, error);
        self.warn_if_slow(span, sql, started);
    }

    fn warn_if_slow(&self, span: &Span, sql: &str, started: Instant) {
        if let Some(threshold) = self.slow_statement {
            let elapsed = started.elapsed();
            if elapsed >= threshold {
                tracing::warn!(
                    target: "anysql::slow_statement",
                    parent: span,
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    threshold_ms = threshold.as_secs_f64() * 1e3,
                    db.query.text = sql,
                    "slow statement: {elapsed:?} (threshold {threshold:?})"
                );
            }
        }
    }

    /// Runs one statement inside its span.
    async fn run<T>(
        &self,
        sql: &str,
        batch: Option<usize>,
        rows: impl FnOnce(&T) -> RowCount,
        statement: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let span = self.span(sql, batch);
        let started = Instant::now();
        let result = statement.instrument(span.clone()).await;
        self.finish(&span, sql, started, &result, rows);
        result
    }
}

fn record_error(span: &Span, error: &Error) {
    span.record("otel.status_code", "ERROR");
    match error.code() {
        Some(code) => {
            span.record("db.response.status_code", code);
            span.record("error.type", code);
        }
        None => {
            span.record("error.type", kind_name(error.kind()));
        }
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Configuration => "configuration",
        ErrorKind::NoRuntime => "no_runtime",
        ErrorKind::Connection => "connection",
        ErrorKind::PoolTimeout => "pool_timeout",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Closed => "closed",
        ErrorKind::Database => "database",
        ErrorKind::Parameter => "parameter",
        ErrorKind::InvalidStatement => "invalid_statement",
        ErrorKind::Decode => "decode",
        ErrorKind::RowNotFound => "row_not_found",
        ErrorKind::Panic => "panic",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::NotificationsMissed => "notifications_missed",
    }
}

/// What a span's name is made of, read off the SQL's first words.
#[derive(Debug, PartialEq, Eq)]
struct Summary<'a> {
    operation: Option<String>,
    collection: Option<&'a str>,
}

impl Summary<'_> {
    fn span_name(&self, system: &str) -> String {
        match (&self.operation, self.collection) {
            (Some(operation), Some(collection)) => format!("{operation} {collection}"),
            (Some(operation), None) => operation.clone(),
            (None, _) => system.to_owned(),
        }
    }
}

/// Reads the operation (the first keyword) and the first table a statement names. A heuristic for
/// span names, never used to decide anything: it skips comments and string literals, and it gives
/// up (no collection) on anything it does not recognise.
fn summarize(sql: &str) -> Summary<'_> {
    let mut words = Words { rest: sql };
    let Some(first) = words.next().filter(|w| is_keyword(w)) else {
        return Summary {
            operation: None,
            collection: None,
        };
    };
    let operation = first.to_ascii_uppercase();
    // The keyword after which the statement names its table.
    let before_table: &[&str] = match operation.as_str() {
        "SELECT" | "DELETE" => &["FROM"],
        "INSERT" | "REPLACE" | "MERGE" => &["INTO"],
        "UPDATE" => &["UPDATE"],
        "COPY" | "TRUNCATE" | "LOCK" => &["COPY", "TRUNCATE", "LOCK", "TABLE"],
        _ => &[],
    };
    let mut collection = None;
    if !before_table.is_empty() {
        let mut previous = first;
        let mut depth = 0usize;
        for word in &mut words {
            match word {
                "(" => depth += 1,
                ")" => depth = depth.saturating_sub(1),
                _ => {}
            }
            let after_keyword = depth == 0
                && before_table
                    .iter()
                    .any(|k| previous.eq_ignore_ascii_case(k));
            if after_keyword && is_clause_keyword(word) {
                // `FROM ONLY t`, `TABLE IF EXISTS t`: the table is still to come.
                continue;
            }
            if after_keyword && is_name(word) {
                collection = Some(word);
                break;
            }
            previous = word;
        }
    }
    Summary {
        operation: Some(operation),
        collection,
    }
}

fn is_keyword(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A table name: an identifier, maybe quoted, maybe qualified (`public.users`, `"My Table"`).
fn is_name(word: &str) -> bool {
    let Some(&first) = word.as_bytes().first() else {
        return false;
    };
    first == b'"'
        || (!first.is_ascii_digit()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$')))
}

/// Words that follow `FROM`/`TABLE`/… without being the table (`DELETE FROM ONLY t`, `LOCK TABLE t`).
fn is_clause_keyword(word: &str) -> bool {
    ["ONLY", "TABLE", "IF", "EXISTS", "LATERAL"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// The words of a statement: identifiers (quoted ones whole), and punctuation one character at a
/// time; comments and string literals are skipped.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let rest = self.rest.trim_start();
            let bytes = rest.as_bytes();
            match bytes {
                [] => return None,
                [b'-', b'-', ..] => {
                    self.rest = rest.find('\n').map_or("", |end| &rest[end..]);
                }
                [b'/', b'*', ..] => {
                    self.rest = rest[2..].find("*/").map_or("", |end| &rest[2 + end + 2..]);
                }
                [b'\'', ..] => {
                    // A string literal; '' inside it is a quote.
                    let mut end = 1;
                    loop {
                        match rest[end..].find('\'') {
                            Some(i) if rest[end + i + 1..].starts_with('\'') => end += i + 2,
                            Some(i) => {
                                end += i + 1;
                                break;
                            }
                            None => {
                                end = rest.len();
                                break;
                            }
                        }
                    }
                    self.rest = &rest[end..];
                }
                [first, ..] if first.is_ascii_alphanumeric() || matches!(first, b'_' | b'"') => {
                    let mut end = 0;
                    let mut quoted = false;
                    for (i, b) in rest.bytes().enumerate() {
                        match b {
                            b'"' => quoted = !quoted,
                            _ if quoted => {}
                            b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$') => {}
                            _ if b >= 0x80 => {}
                            _ => break,
                        }
                        end = i + 1;
                    }
                    let (word, rest) = rest.split_at(end);
                    self.rest = rest;
                    return Some(word);
                }
                _ => {
                    let width = rest.chars().next().map_or(1, char::len_utf8);
                    let (word, rest) = rest.split_at(width);
                    self.rest = rest;
                    return Some(word);
                }
            }
        }
    }
}

/// The connector an engine uses when the `tracing` feature is on: the driver's own, with every
/// connection it opens reporting its statements.
#[derive(Debug)]
pub(crate) struct TracedConnector {
    inner: Arc<dyn Connector>,
    telemetry: Arc<Telemetry>,
}

impl TracedConnector {
    pub(crate) fn wrap(
        inner: Arc<dyn Connector>,
        slow_statement: Option<Duration>,
    ) -> Arc<dyn Connector> {
        let telemetry = Arc::new(Telemetry {
            server: inner.server_info(),
            slow_statement,
        });
        Arc::new(TracedConnector { inner, telemetry })
    }
}

#[async_trait]
impl Connector for TracedConnector {
    async fn connect(&self, runtime: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        let inner = self.inner.connect(runtime).await?;
        Ok(Box::new(TracedConnection {
            inner,
            telemetry: self.telemetry.clone(),
        }))
    }

    fn max_pool_size(&self) -> Option<usize> {
        self.inner.max_pool_size()
    }

    fn server_info(&self) -> ServerInfo {
        self.telemetry.server.clone()
    }

    fn replicas(&self) -> Vec<(String, Arc<dyn Connector>)> {
        self.inner
            .replicas()
            .into_iter()
            .map(|(description, replica)| {
                let traced = TracedConnector::wrap(replica, self.telemetry.slow_statement);
                (description, traced)
            })
            .collect()
    }

    async fn connect_listener(
        &self,
        runtime: &SharedRuntime,
        capacity: usize,
    ) -> Result<Box<dyn DriverListener>, Error> {
        self.inner.connect_listener(runtime, capacity).await
    }

    fn notify_statement(&self) -> Option<&'static str> {
        self.inner.notify_statement()
    }

    async fn connect_shared(
        &self,
        runtime: &SharedRuntime,
    ) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        let inner = self.inner.connect_shared(runtime).await?;
        Ok(inner.map(|inner| {
            Arc::new(TracedShared {
                inner,
                telemetry: self.telemetry.clone(),
            }) as Arc<dyn SharedConnection>
        }))
    }
}

// Passed where an `FnOnce(&Vec<Row>)` is expected, so it cannot take a slice.
#[allow(clippy::ptr_arg)]
fn returned(rows: &Vec<Row>) -> RowCount {
    RowCount::Returned(rows.len() as u64)
}

fn returned_optional(row: &Option<Row>) -> RowCount {
    RowCount::Returned(u64::from(row.is_some()))
}

fn affected(rows: &u64) -> RowCount {
    RowCount::Affected(*rows)
}

/// A pooled connection whose statements each run in a span.
struct TracedConnection {
    inner: Box<dyn DriverConnection>,
    telemetry: Arc<Telemetry>,
}

impl fmt::Debug for TracedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl DriverConnection for TracedConnection {
    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let telemetry = self.telemetry.clone();
        telemetry
            .run(sql, None, affected, self.inner.execute(sql, params))
            .await
    }

    async fn execute_many(&mut self, sql: &str, param_sets: ParamSets<'_>) -> Result<u64, Error> {
        let telemetry = self.telemetry.clone();
        let batch = param_sets.size_hint();
        let batch = (Some(batch.0) == batch.1).then_some(batch.0);
        telemetry
            .run(
                sql,
                batch,
                affected,
                self.inner.execute_many(sql, param_sets),
            )
            .await
    }

    /// One span for the whole pipeline: its statements, with the `COMMIT` that ends it, go to the
    /// server together.
    async fn execute_pipeline(
        &mut self,
        statements: Vec<(&str, Vec<Value>)>,
        end: &str,
    ) -> Result<Vec<u64>, Error> {
        let telemetry = self.telemetry.clone();
        let text: Vec<&str> = statements
            .iter()
            .map(|(sql, _)| *sql)
            .chain([end])
            .collect();
        let text = text.join("; ");
        telemetry
            .run(
                &text,
                Some(statements.len() + 1),
                |changed: &Vec<u64>| RowCount::Affected(changed.iter().sum()),
                self.inner.execute_pipeline(statements, end),
            )
            .await
    }

    async fn fetch_each(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        let telemetry = self.telemetry.clone();
        let mut count = 0u64;
        let mut counting = |row: &mut Row| {
            count += 1;
            sink(row)
        };
        let span = telemetry.span(sql, None);
        let started = Instant::now();
        let result = self
            .inner
            .fetch_each(sql, params, &mut counting)
            .instrument(span.clone())
            .await;
        telemetry.finish(&span, sql, started, &result, |_| RowCount::Returned(count));
        result
    }

    fn fetch<'a>(&'a mut self, sql: &'a str, params: Vec<Value>) -> RowStream<'a> {
        let span = self.telemetry.span(sql, None);
        let inner = span.in_scope(|| self.inner.fetch(sql, params));
        Box::pin(TracedStream {
            inner,
            span,
            sql,
            started: Instant::now(),
            rows: 0,
            telemetry: self.telemetry.clone(),
            finished: false,
        })
    }

    async fn fetch_all(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        let telemetry = self.telemetry.clone();
        telemetry
            .run(sql, None, returned, self.inner.fetch_all(sql, params))
            .await
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Option<Row>, Error> {
        let telemetry = self.telemetry.clone();
        telemetry
            .run(
                sql,
                None,
                returned_optional,
                self.inner.fetch_optional(sql, params),
            )
            .await
    }

    fn begin_statement(&self, options: &TransactionOptions) -> Result<Cow<'static, str>, Error> {
        self.inner.begin_statement(options)
    }

    async fn begin(&mut self, options: &TransactionOptions) -> Result<(), Error> {
        let sql = self.inner.begin_statement(options)?;
        let telemetry = self.telemetry.clone();
        telemetry
            .run(
                &sql,
                None,
                |_| RowCount::Affected(0),
                self.inner.begin(options),
            )
            .await
    }

    async fn ping(&mut self) -> Result<(), Error> {
        self.inner.ping().await
    }

    async fn reset(&mut self) -> Result<(), Error> {
        self.inner.reset().await
    }

    fn is_broken(&self) -> bool {
        self.inner.is_broken()
    }

    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }

    fn broken_error(&self) -> Option<Error> {
        self.inner.broken_error()
    }

    async fn close(self: Box<Self>) -> Result<(), Error> {
        self.inner.close().await
    }

    fn cancel_handle(&self) -> Option<crate::CancelHandle> {
        self.inner.cancel_handle()
    }

    async fn copy_in(&mut self, sql: &str) -> Result<Box<dyn DriverCopyIn + '_>, Error> {
        let telemetry = self.telemetry.clone();
        let span = telemetry.span(sql, None);
        let started = Instant::now();
        match self.inner.copy_in(sql).instrument(span.clone()).await {
            Ok(inner) => Ok(Box::new(TracedCopy {
                inner,
                span,
                sql: sql.to_owned(),
                started,
                telemetry,
            })),
            Err(error) => {
                telemetry.failed(&span, sql, started, &error);
                Err(error)
            }
        }
    }

    async fn copy_out(&mut self, sql: &str) -> Result<ByteStream<'_>, Error> {
        let telemetry = self.telemetry.clone();
        let span = telemetry.span(sql, None);
        let started = Instant::now();
        match self.inner.copy_out(sql).instrument(span.clone()).await {
            Ok(inner) => Ok(Box::pin(TracedCopyOut {
                inner,
                span,
                sql: sql.to_owned(),
                started,
                telemetry,
                finished: false,
            })),
            Err(error) => {
                telemetry.failed(&span, sql, started, &error);
                Err(error)
            }
        }
    }

    async fn copy_in_rows(
        &mut self,
        table: &str,
        columns: &[&str],
    ) -> Result<Box<dyn DriverCopyRows + '_>, Error> {
        let telemetry = self.telemetry.clone();
        // The statement the driver runs, as the span's text (no values in it).
        let sql = format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            columns.join(", ")
        );
        let span = telemetry.span(&sql, None);
        let started = Instant::now();
        match self
            .inner
            .copy_in_rows(table, columns)
            .instrument(span.clone())
            .await
        {
            Ok(inner) => Ok(Box::new(TracedCopy {
                inner,
                span,
                sql,
                started,
                telemetry,
            })),
            Err(error) => {
                telemetry.failed(&span, &sql, started, &error);
                Err(error)
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.inner.as_any_mut()
    }
}

/// A `COPY … FROM STDIN` (text or binary rows) inside its statement's span, which ends when the
/// COPY finishes or is dropped; the span records the rows copied.
struct TracedCopy<C: ?Sized> {
    inner: Box<C>,
    span: Span,
    sql: String,
    started: Instant,
    telemetry: Arc<Telemetry>,
}

impl<C: ?Sized> TracedCopy<C> {
    /// Ends the COPY with `finish` (the driver's) in its span and records how it ended.
    async fn end<F>(self, finish: impl FnOnce(Box<C>) -> F) -> Result<u64, Error>
    where
        F: Future<Output = Result<u64, Error>>,
    {
        let TracedCopy {
            inner,
            span,
            sql,
            started,
            telemetry,
        } = self;
        let result = finish(inner).instrument(span.clone()).await;
        telemetry.finish(&span, &sql, started, &result, affected);
        result
    }
}

/// Runs one step of a COPY (a send or a write) in its span, recording a failure there.
async fn copy_step(span: Span, step: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    let result = step.instrument(span.clone()).await;
    if let Err(error) = &result {
        record_error(&span, error);
    }
    result
}

#[async_trait]
impl<'c> DriverCopyIn for TracedCopy<dyn DriverCopyIn + 'c> {
    async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        copy_step(self.span.clone(), self.inner.send(data)).await
    }

    async fn finish(self: Box<Self>) -> Result<u64, Error> {
        (*self).end(|inner| inner.finish()).await
    }
}

#[async_trait]
impl<'c> DriverCopyRows for TracedCopy<dyn DriverCopyRows + 'c> {
    async fn write(&mut self, row: Vec<Value>) -> Result<(), Error> {
        copy_step(self.span.clone(), self.inner.write(row)).await
    }

    async fn finish(self: Box<Self>) -> Result<u64, Error> {
        (*self).end(|inner| inner.finish()).await
    }
}

/// The data of a `COPY … TO STDOUT` inside its statement's span, which ends with the stream.
struct TracedCopyOut<'a> {
    inner: ByteStream<'a>,
    span: Span,
    sql: String,
    started: Instant,
    telemetry: Arc<Telemetry>,
    finished: bool,
}

impl Stream for TracedCopyOut<'_> {
    type Item = Result<Vec<u8>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let item = this.span.in_scope(|| this.inner.as_mut().poll_next(cx));
        if let Poll::Ready(end) = &item {
            if let Some(Err(error)) = end {
                record_error(&this.span, error);
            }
            if !matches!(end, Some(Ok(_))) {
                this.finished = true;
                this.telemetry
                    .warn_if_slow(&this.span, &this.sql, this.started);
            }
        }
        item
    }
}

/// A row stream inside its statement's span, which ends with the stream.
struct TracedStream<'a> {
    inner: RowStream<'a>,
    span: Span,
    sql: &'a str,
    started: Instant,
    rows: u64,
    telemetry: Arc<Telemetry>,
    finished: bool,
}

impl Stream for TracedStream<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let item = this.span.in_scope(|| this.inner.as_mut().poll_next(cx));
        match &item {
            Poll::Ready(Some(Ok(_))) => this.rows += 1,
            Poll::Ready(Some(Err(error))) => {
                record_error(&this.span, error);
                this.finished = true;
                this.telemetry
                    .warn_if_slow(&this.span, this.sql, this.started);
            }
            Poll::Ready(None) => {
                this.span.record("db.response.returned_rows", this.rows);
                this.finished = true;
                this.telemetry
                    .warn_if_slow(&this.span, this.sql, this.started);
            }
            Poll::Pending => {}
        }
        item
    }
}

/// The shared connection, its statements each in a span.
#[derive(Debug)]
struct TracedShared {
    inner: Arc<dyn SharedConnection>,
    telemetry: Arc<Telemetry>,
}

#[async_trait]
impl SharedConnection for TracedShared {
    fn accepts(&self, sql: &str) -> bool {
        self.inner.accepts(sql)
    }

    async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        self.telemetry
            .run(sql, None, affected, self.inner.execute(sql, params))
            .await
    }

    async fn fetch_all(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        self.telemetry
            .run(sql, None, returned, self.inner.fetch_all(sql, params))
            .await
    }

    async fn fetch_optional(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, Error> {
        self.telemetry
            .run(
                sql,
                None,
                returned_optional,
                self.inner.fetch_optional(sql, params),
            )
            .await
    }

    fn is_broken(&self) -> bool {
        self.inner.is_broken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sql: &str) -> (Option<String>, Option<&str>) {
        let s = summarize(sql);
        (s.operation, s.collection)
    }

    #[test]
    fn span_names_come_from_the_first_words() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "SELECT id FROM users WHERE id = $1",
                Some("SELECT"),
                Some("users"),
            ),
            (
                "  select * from public.orders o",
                Some("SELECT"),
                Some("public.orders"),
            ),
            (
                "INSERT INTO notes (body) VALUES (?)",
                Some("INSERT"),
                Some("notes"),
            ),
            (
                "update \"My Table\" set x = 1",
                Some("UPDATE"),
                Some("\"My Table\""),
            ),
            ("DELETE FROM ONLY t WHERE a", Some("DELETE"), Some("t")),
            (
                "-- why\n/* how */ SELECT 'FROM x' FROM y",
                Some("SELECT"),
                Some("y"),
            ),
            (
                "SELECT (SELECT 1 FROM inner_t) FROM outer_t",
                Some("SELECT"),
                Some("outer_t"),
            ),
            ("SELECT 1", Some("SELECT"), None),
            ("BEGIN", Some("BEGIN"), None),
            ("TRUNCATE TABLE t", Some("TRUNCATE"), Some("t")),
            ("COPY t (a) FROM STDIN", Some("COPY"), Some("t")),
            ("WITH x AS (SELECT 1) SELECT * FROM x", Some("WITH"), None),
            ("", None, None),
            ("(SELECT 1)", None, None),
            ("SELECT 'unterminated", Some("SELECT"), None),
            ("SELECT é FROM ü", Some("SELECT"), None),
        ];
        for (sql, operation, collection) in cases {
            assert_eq!(
                parts(sql),
                (operation.map(str::to_owned), *collection),
                "{sql:?}"
            );
        }
    }

    #[test]
    fn span_names_fall_back_to_the_system() {
        let name = |sql| summarize(sql).span_name("sqlite");
        assert_eq!(name("SELECT * FROM t"), "SELECT t");
        assert_eq!(name("VACUUM"), "VACUUM");
        assert_eq!(name("(SELECT 1)"), "sqlite");
    }
}
