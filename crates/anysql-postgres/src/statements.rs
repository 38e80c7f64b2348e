//! The bounded cache of prepared statements of one connection ([`Statements`]), and the error
//! type of the operations that use it ([`Failure`]).

use std::num::NonZeroUsize;
use std::sync::Arc;

use anysql_core::statement_cache::StatementCache;
use anysql_core::{Error, Value};
use postgres_types::Type;
use tokio_postgres::{Client, Statement};

use crate::types::{self, check_params, RowPlan};

/// An error before it is mapped: from tokio-postgres, or already an anysql error.
#[derive(Debug)]
pub(crate) enum Failure {
    Pg(tokio_postgres::Error),
    Any(Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Any(e)
    }
}

/// A prepared statement and how to decode its rows.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) statement: Statement,
    pub(crate) plan: Arc<RowPlan>,
}

/// The bounded LRU of named prepared statements, keyed by SQL text; `None` in unnamed mode.
/// An evicted [`Statement`] is dropped, and tokio-postgres then closes it on the server.
pub(crate) struct Statements {
    cache: Option<StatementCache<Arc<Prepared>>>,
}

impl Statements {
    pub(crate) fn new(capacity: usize, unnamed: bool) -> Self {
        let cache = if unnamed {
            None
        } else {
            NonZeroUsize::new(capacity).map(StatementCache::new)
        };
        Statements { cache }
    }

    pub(crate) fn unnamed(&self) -> bool {
        self.cache.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, StatementCache::len)
    }

    /// Drops the statements prepared for `sql`, with any parameter types.
    pub(crate) fn forget(&mut self, sql: &str) {
        if let Some(cache) = &mut self.cache {
            cache.retain(|key, _| {
                key.strip_prefix(sql)
                    .is_none_or(|rest| !(rest.is_empty() || rest.starts_with('\0')))
            });
        }
    }

    pub(crate) fn clear(&mut self) {
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
    }

    /// What [`for_params`](Self::for_params) returns, if the cache has it: no I/O, no await.
    pub(crate) fn cached_for_params(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Option<Arc<Prepared>> {
        let cache = self.cache.as_mut()?;
        let prepared = Arc::clone(cache.get(sql)?);
        if check_params(params, prepared.statement.params()).is_ok() {
            return Some(prepared);
        }
        let (signature, _) = types::retype(params, prepared.statement.params())?;
        let retyped = Arc::clone(cache.get(&format!("{sql}\0{signature}"))?);
        check_params(params, retyped.statement.params())
            .is_ok()
            .then_some(retyped)
    }

    /// Adds the statements `other` has cached.
    pub(crate) fn absorb(&mut self, other: Statements) {
        if let (Some(cache), Some(other)) = (&mut self.cache, other.cache) {
            for (key, prepared) in other {
                cache.insert(key, prepared);
            }
        }
    }

    /// The cached statement under `key`, preparing `sql` with parameter `types` (empty: all
    /// inferred by the server) on a miss.
    async fn prepare(
        &mut self,
        client: &Client,
        key: &str,
        sql: &str,
        types: &[Type],
    ) -> Result<Arc<Prepared>, Failure> {
        let cache = self
            .cache
            .as_mut()
            .expect("named statements need the cache");
        if let Some(prepared) = cache.get(key) {
            return Ok(Arc::clone(prepared));
        }
        let statement = if types.is_empty() {
            client.prepare(sql).await?
        } else {
            client.prepare_typed(sql, types).await?
        };
        let prepared = Arc::new(Prepared {
            plan: Arc::new(RowPlan::new(statement.columns())),
            statement,
        });
        cache.insert(key, Arc::clone(&prepared));
        Ok(prepared)
    }

    /// The statement for `sql` with these parameters, checked against them.
    ///
    /// PostgreSQL types a placeholder that nothing in the statement constrains (`SELECT $1`) as
    /// `text`; if such a placeholder gets a value of another type (an integer, float, bool,
    /// bytes, date, time, timestamp, UUID, JSON, address or array), the statement is prepared
    /// again (and cached separately) with that placeholder declared as the value's own type
    /// (`int8`, `float8`, `bool`, `bytea`, `date`, …), so that `SELECT $1` returns what was
    /// bound, as on SQLite.
    pub(crate) async fn for_params(
        &mut self,
        client: &Client,
        sql: &str,
        params: &[Value],
    ) -> Result<Arc<Prepared>, Failure> {
        let prepared = self.prepare(client, sql, sql, &[]).await?;
        let Err(mismatch) = check_params(params, prepared.statement.params()) else {
            return Ok(prepared);
        };
        let Some((signature, declared)) = types::retype(params, prepared.statement.params()) else {
            return Err(mismatch.into());
        };
        let key = format!("{sql}\0{signature}");
        // If the server refuses the declared types (`WHERE name = $1` with an integer: no operator
        // `text = bigint`), that is the error to report: it also aborted any open transaction.
        let retyped = self.prepare(client, &key, sql, &declared).await?;
        check_params(params, retyped.statement.params())?;
        Ok(retyped)
    }
}
