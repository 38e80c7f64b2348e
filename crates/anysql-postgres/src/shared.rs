//! [`PgShared`]: the engine's shared, pipelined connection (see the crate docs, Shared
//! connection).

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anysql_core::{DriverConnection as _, Error, Row, SharedConnection, Value};
use async_trait::async_trait;
use futures_lite::StreamExt;
use postgres_types::Type;

use crate::connection::PgConnection;
use crate::error::{self, Fate};
use crate::request::{decode, execute_one};
use crate::session;
use crate::sql::{self, SqlInfo};
use crate::statements::{Failure, Prepared, Statements};
use crate::types::{self, unnamed_param_type};

/// One connection that every task of an engine uses at once for statements outside
/// transactions. Its tokio-postgres `Connection` runs as a task on the runtime (spawned mode), so
/// that replies are routed to their callers whoever is waiting, and requests from concurrent
/// callers are pipelined: written back to back, answered in order.
pub(crate) struct PgShared {
    /// The connection, in spawned mode; its own statement cache and session bookkeeping are
    /// unused (there is no session to track: transaction control is never accepted here).
    conn: PgConnection,
    /// The named statements of this connection. Locked only to look a statement up or to add
    /// one, never across an await, so that queries pipeline and a hit never waits on another task.
    statements: Mutex<Statements>,
    /// Held while a statement missing from the cache is prepared, so that concurrent first uses
    /// of a statement prepare it once.
    preparing: tokio::sync::Mutex<()>,
    /// The cache's capacity, for the scratch cache a miss prepares into.
    cache_capacity: usize,
    /// Unnamed statements only (`statement_cache_capacity=0`).
    unnamed: bool,
    unspecified: Type,
    /// An error showed that the session is unusable.
    broken: AtomicBool,
}

impl PgShared {
    pub(crate) fn new(conn: PgConnection, cache_capacity: usize, unnamed: bool) -> Self {
        PgShared {
            conn,
            statements: Mutex::new(Statements::new(cache_capacity, unnamed)),
            preparing: tokio::sync::Mutex::new(()),
            cache_capacity,
            unnamed,
            unspecified: types::unspecified_type(),
            broken: AtomicBool::new(false),
        }
    }

    async fn fetch_rows(
        &self,
        sql: &str,
        params: Vec<Value>,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, Error> {
        let client = self.conn.client();
        let result: Result<Vec<Row>, Failure> = async {
            let (stream, mut plan) = if self.unnamed {
                // Named statements count their parameters themselves, and are checked when they
                // are prepared; unnamed ones need the scan.
                let info = sql::scan(sql);
                info.check(params.len())?;
                if params.len() != info.max_param {
                    return Err(Error::parameter_count(info.max_param, params.len()).into());
                }
                let typed = types::params(&params)
                    .map(|p| (p, unnamed_param_type(p.value, &self.unspecified)));
                (client.query_typed_raw(sql, typed).await?, None)
            } else {
                sql::check_param_limit(params.len())?;
                let prepared = self.prepared(sql, &params).await?;
                let rows = client
                    .query_raw(&prepared.statement, types::params(&params))
                    .await?;
                (rows, Some(Arc::clone(&prepared.plan)))
            };
            let mut stream = pin!(stream);
            let mut rows = Vec::new();
            while let Some(row) = stream.next().await {
                rows.push(decode(&mut plan, &row?)?);
                if limit == Some(rows.len()) {
                    break;
                }
            }
            Ok(rows)
        }
        .await;
        self.settle(sql, result).await
    }

    fn statements(&self) -> MutexGuard<'_, Statements> {
        // Nothing panics while it is held; take the cache either way.
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The prepared statement for `sql` with these parameters: from the cache, or prepared now.
    async fn prepared(&self, sql: &str, params: &[Value]) -> Result<Arc<Prepared>, Failure> {
        if let Some(prepared) = self.statements().cached_for_params(sql, params) {
            return Ok(prepared);
        }
        // Boxed: the round trips of a miss would otherwise make every query's future as large as
        // theirs, and futures over a kilobyte take glibc's slow allocation path (with a
        // consolidation of its free lists) on every query.
        Box::pin(self.prepare_missing(sql, params)).await
    }

    /// [`prepared`](Self::prepared) on a cache miss.
    async fn prepare_missing(&self, sql: &str, params: &[Value]) -> Result<Arc<Prepared>, Failure> {
        let _preparing = self.preparing.lock().await;
        if let Some(prepared) = self.statements().cached_for_params(sql, params) {
            return Ok(prepared);
        }
        // Only what passes this check is ever cached, so a hit needs no scan.
        sql::scan(sql).check(params.len())?;
        // Prepared into a scratch cache, without holding the cache's lock across the round trip.
        let mut scratch = Statements::new(self.cache_capacity.max(2), false);
        let prepared = scratch.for_params(self.conn.client(), sql, params).await?;
        self.statements().absorb(scratch);
        Ok(prepared)
    }

    /// Maps an error, and drops cached statements the server no longer accepts.
    async fn settle<T>(&self, sql: &str, result: Result<T, Failure>) -> Result<T, Error> {
        let failure = match result {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let (error, fate) = match failure {
            Failure::Pg(e) => error::map(e),
            Failure::Any(e) => (e, Fate::Untouched),
        };
        let demoted = self.conn.discards_on_read_only() && session::is_read_only_refusal(&error);
        if fate == Fate::Broken || demoted {
            // Replaced before the next statement: the callers after this one must not fail.
            self.broken.store(true, Ordering::Release);
        }
        if fate == Fate::StatementFailed {
            match error.code() {
                // "cached plan must not change result type": the table changed.
                Some("0A000") => self.statements().forget(sql),
                // A prepared statement vanished (DISCARD ALL, DEALLOCATE ALL).
                Some("26000") => self.statements().clear(),
                _ => {}
            }
        }
        Err(error)
    }
}

#[async_trait]
impl SharedConnection for PgShared {
    /// Anything but transaction control (`BEGIN`, `COMMIT`, `SAVEPOINT`, …), which would change
    /// the session under the other callers' statements.
    fn accepts(&self, sql: &str) -> bool {
        !sql::scan(sql).transaction_control
    }

    async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let info: SqlInfo = sql::scan(sql);
        info.check(params.len())?;
        let client = self.conn.client();
        let result = if params.is_empty() || self.unnamed {
            // No statement cache involved: nothing to lock.
            let mut none = Statements::new(0, true);
            execute_one(client, &mut none, sql, &info, &params, &self.unspecified).await
        } else {
            let prepared = self.prepared(sql, &params).await;
            match prepared {
                Ok(prepared) => client
                    .execute_raw(&prepared.statement, types::params(&params))
                    .await
                    .map_err(Failure::from),
                Err(e) => Err(e),
            }
        };
        self.settle(sql, result).await
    }

    async fn fetch_all(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        self.fetch_rows(sql, params, None).await
    }

    async fn fetch_optional(&self, sql: &str, params: Vec<Value>) -> Result<Option<Row>, Error> {
        Ok(self
            .fetch_rows(sql, params, Some(1))
            .await?
            .into_iter()
            .next())
    }

    /// Also when the session is out of step (an error that broke it, a COPY left open) or, against
    /// every check, in a transaction: the server's ReadyForQuery status says so.
    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
            || self.conn.server_reported_transaction()
            || self.conn.is_broken()
    }
}

impl fmt::Debug for PgShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgShared")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}
