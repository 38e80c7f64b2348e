//! [`Pipeline`]: statements that run in order in one transaction, sent together where the
//! database allows.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use crate::error::Error;
use crate::query::{Executor, Query};
use crate::value::Value;

/// Statements that run one after another in one transaction, sent together where the database
/// allows: on PostgreSQL they go out in one write and their replies are read together, one round
/// trip for all of them instead of one each; on SQLite, where a statement costs no round trip,
/// they run one by one.
///
/// A pipeline suits statements whose parameters do not depend on each other's results: the
/// writes at the end of a transaction, after the reads that decided them. Run it with
/// [`Transaction::commit_with`](crate::Transaction::commit_with), which sends the `COMMIT` with
/// it, or with [`execute`](Self::execute) on any [`Executor`].
///
/// What the caller sees is what awaiting each statement with `?` gives: the rows each statement
/// changed, in order, or the error of the first statement that failed (its message says which),
/// with nothing of the pipeline kept. The statements after a failed one do not take effect.
///
/// ```
/// # smol::block_on(async {
/// # let engine: anysql_core::Engine = anysql_core::EngineBuilder::new("sqlite::memory:")
/// #     .driver(anysql_sqlite::SqliteDriver::new())
/// #     .runtime(anysql_smol::SmolRuntime::new())
/// #     .build()?;
/// use anysql_core::{query, query_scalar, ErrorKind, Pipeline};
///
/// let mut conn = engine.acquire().await?;
/// query("CREATE TABLE stock (shelf INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0))")
///     .execute(&mut conn)
///     .await?;
///
/// let mut pipeline = Pipeline::new();
/// pipeline.push(query("INSERT INTO stock VALUES ($1, $2)").bind(1).bind(5));
/// pipeline.push(query("INSERT INTO stock VALUES ($1, $2)").bind(2).bind(0));
/// assert_eq!(pipeline.execute(&mut conn).await?, [1, 1]);
///
/// // The second statement breaks the CHECK: neither is kept.
/// let moved = Pipeline::from_iter([
///     query("UPDATE stock SET n = n + 1 WHERE shelf = $1").bind(1),
///     query("UPDATE stock SET n = n - 1 WHERE shelf = $1").bind(2),
/// ]);
/// let error = moved.execute(&mut conn).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Database);
/// assert!(error.to_string().contains("statement 2 of 2"), "{error}");
///
/// let n: i64 = query_scalar("SELECT n FROM stock WHERE shelf = 1").fetch_one(&mut conn).await?;
/// assert_eq!(n, 5);
/// # Ok::<(), anysql_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
#[must_use = "a pipeline does nothing until it is executed or committed with"]
pub struct Pipeline<'q> {
    statements: Vec<Query<'q>>,
}

impl<'q> Pipeline<'q> {
    /// An empty pipeline.
    pub fn new() -> Self {
        Pipeline {
            statements: Vec::new(),
        }
    }

    /// Adds a statement at the end.
    pub fn push(&mut self, statement: Query<'q>) -> &mut Self {
        self.statements.push(statement);
        self
    }

    /// How many statements it holds.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it holds no statement.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs the statements in order and returns the rows each changed, in a transaction of their
    /// own: on the engine and on a connection, a transaction; inside a transaction, a nested one
    /// (a savepoint). So they apply all together or not at all, and a failure leaves an outer
    /// transaction as it was before the pipeline. An empty pipeline runs nothing.
    pub fn execute<'c, E: Executor<'c> + 'c>(
        self,
        executor: E,
    ) -> impl Future<Output = Result<Vec<u64>, Error>> + Send + 'c
    where
        'q: 'c,
    {
        async move {
            if self.is_empty() {
                return Ok(Vec::new());
            }
            executor.begin().await?.commit_with(self).await
        }
    }

    /// The statements' SQL and their parameters, in order.
    pub(crate) fn into_parts(self) -> (Vec<Cow<'q, str>>, Vec<Vec<Value>>) {
        self.statements.into_iter().map(Query::into_parts).unzip()
    }
}

impl<'q> FromIterator<Query<'q>> for Pipeline<'q> {
    fn from_iter<I: IntoIterator<Item = Query<'q>>>(statements: I) -> Self {
        Pipeline {
            statements: statements.into_iter().collect(),
        }
    }
}

impl<'q> Extend<Query<'q>> for Pipeline<'q> {
    fn extend<I: IntoIterator<Item = Query<'q>>>(&mut self, statements: I) {
        self.statements.extend(statements);
    }
}

impl fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.statements).finish()
    }
}
