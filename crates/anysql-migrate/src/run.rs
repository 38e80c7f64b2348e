//! Running, reverting and listing migrations on an engine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anysql_core::{Connection, Engine, Error, SharedRuntime, TransactionOptions};
use sha2::{Digest, Sha256};

use crate::error::{MigrateError, MigrateErrorKind};
use crate::source::{in_transaction, Migration};
use crate::{Applied, MigrationInfo, MigrationState, Migrator, TABLE};

/// How often a waiting runner looks at the lock again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn of(engine: &Engine) -> Result<Dialect, MigrateError> {
        let url = engine.url();
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Dialect::Sqlite),
            Some("postgres" | "postgresql") => Ok(Dialect::Postgres),
            // libpq's `key=value` strings have no scheme.
            _ if !url.contains("://") && url.contains('=') => Ok(Dialect::Postgres),
            _ => Err(MigrateError::new(
                MigrateErrorKind::Unsupported,
                format!("migrations run on SQLite and PostgreSQL, not on {url}"),
            )),
        }
    }

    fn create_table(self) -> String {
        match self {
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (\
                 version BIGINT PRIMARY KEY, \
                 name TEXT NOT NULL, \
                 checksum TEXT NOT NULL, \
                 state TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
                 duration_ms BIGINT NOT NULL DEFAULT 0)"
            ),
            Dialect::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (\
                 version INTEGER PRIMARY KEY, \
                 name TEXT NOT NULL, \
                 checksum TEXT NOT NULL, \
                 state TEXT NOT NULL, \
                 applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
                 duration_ms INTEGER NOT NULL DEFAULT 0)"
            ),
        }
    }

    fn select(self) -> String {
        let applied_at = match self {
            Dialect::Postgres => {
                "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            }
            Dialect::Sqlite => "applied_at",
        };
        format!(
            "SELECT version, name, checksum, state, {applied_at}, duration_ms FROM {TABLE} \
             ORDER BY version"
        )
    }

    fn table_exists(self) -> String {
        match self {
            Dialect::Postgres => format!("SELECT to_regclass('{TABLE}') IS NOT NULL"),
            Dialect::Sqlite => format!(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '{TABLE}'"
            ),
        }
    }
}

/// A migration that finished.
const APPLIED: &str = "applied";
/// A migration outside a transaction that started: it is running, or its run died.
const STARTED: &str = "started";
/// A migration outside a transaction that failed part-way.
const FAILED: &str = "failed";

/// One row of the bookkeeping table.
#[derive(Debug, Clone)]
struct Row {
    version: i64,
    name: String,
    checksum: String,
    /// [`APPLIED`], [`STARTED`] or [`FAILED`].
    state: String,
    applied_at: String,
    duration_ms: i64,
}

async fn read_rows(conn: &mut Connection, dialect: Dialect) -> Result<Vec<Row>, Error> {
    let rows: Vec<(i64, String, String, String, String, i64)> =
        conn.fetch_all_as(&dialect.select(), ()).await?;
    Ok(rows
        .into_iter()
        .map(
            |(version, name, checksum, state, applied_at, duration_ms)| Row {
                version,
                name,
                checksum,
                state,
                applied_at,
                duration_ms,
            },
        )
        .collect())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The connection a run or revert works on, and the PostgreSQL advisory lock it may hold. If the
/// run's future is dropped while the lock is held, the lock is released on a task of the engine's
/// runtime before the connection goes back to the pool.
struct Session {
    conn: Option<Connection>,
    dialect: Dialect,
    runtime: SharedRuntime,
    timeout: Duration,
    /// The advisory lock key, set before the lock is asked for.
    lock: Option<i64>,
}

/// Whether a PostgreSQL URL (or `key=value` string) says `pgbouncer=true`.
fn through_pgbouncer(url: &str) -> bool {
    url.split(['?', '&', ' '])
        .filter_map(|pair| pair.split_once('='))
        .any(|(key, value)| {
            key.trim().eq_ignore_ascii_case("pgbouncer")
                && anysql_core::option_values::parse_bool(value) == Some(true)
        })
}

impl Session {
    async fn open(engine: &Engine, migrator: &Migrator) -> Result<Session, MigrateError> {
        let dialect = Dialect::of(engine)?;
        if dialect == Dialect::Postgres && through_pgbouncer(engine.url()) {
            return Err(MigrateError::new(
                MigrateErrorKind::Unsupported,
                "migrations take a session advisory lock, which PgBouncer's transaction pooling \
                 (pgbouncer=true) cannot hold for them: run them with a URL that points at the \
                 server itself; nothing was run",
            ));
        }
        let conn = engine.acquire().await?;
        let mut session = Session {
            conn: Some(conn),
            dialect,
            runtime: engine.runtime().clone(),
            timeout: migrator.lock_timeout,
            lock: None,
        };
        if dialect == Dialect::Postgres {
            session.lock_postgres().await?;
            let sql = dialect.create_table();
            session.conn().execute(&sql, ()).await?;
        }
        Ok(session)
    }

    fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("the session's connection")
    }

    async fn lock_postgres(&mut self) -> Result<(), MigrateError> {
        let (database, schema): (String, String) = self
            .conn()
            .fetch_one_as(
                "SELECT current_database()::text, coalesce(current_schema()::text, '')",
                (),
            )
            .await?;
        let digest = Sha256::digest(format!("anysql-migrate\0{database}\0{schema}\0{TABLE}"));
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        let key = i64::from_be_bytes(key);
        self.lock = Some(key);
        let start = Instant::now();
        loop {
            let got: bool = self
                .conn()
                .fetch_scalar("SELECT pg_try_advisory_lock($1)", (key,))
                .await?;
            if got {
                return Ok(());
            }
            if start.elapsed() >= self.timeout {
                self.lock = None;
                return Err(lock_timeout(self.timeout));
            }
            self.runtime.sleep(POLL).await;
        }
    }

    /// Releases the lock and gives the connection back.
    async fn finish(mut self) -> Result<(), MigrateError> {
        if let Some(key) = self.lock {
            let mut conn = self.conn.take().expect("the session's connection");
            self.lock = None;
            let released: Result<bool, Error> = conn
                .fetch_scalar("SELECT pg_advisory_unlock($1)", (key,))
                .await;
            if let Err(e) = released {
                // Closing the session releases the lock all the same.
                let _ = conn.close().await;
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Waits before another try at SQLite's write lock; fails once `timeout` has passed since
/// `start`.
async fn wait(
    runtime: &SharedRuntime,
    timeout: Duration,
    start: Instant,
    error: Option<Error>,
) -> Result<(), MigrateError> {
    if start.elapsed() >= timeout {
        let err = lock_timeout(timeout);
        return Err(match error {
            Some(e) => err.with_source(e),
            None => err,
        });
    }
    runtime.sleep(POLL).await;
    Ok(())
}

impl Drop for Session {
    fn drop(&mut self) {
        if let (Some(key), Some(mut conn)) = (self.lock, self.conn.take()) {
            self.runtime.spawn(Box::pin(async move {
                if conn
                    .fetch_scalar::<bool>("SELECT pg_advisory_unlock($1)", (key,))
                    .await
                    .is_err()
                {
                    let _ = conn.close().await;
                }
            }));
        }
    }
}

fn lock_timeout(timeout: Duration) -> MigrateError {
    MigrateError::new(
        MigrateErrorKind::LockTimeout,
        format!(
            "another process held the migration lock for more than {timeout:?}; try again when it \
             has finished, or raise Migrator::lock_timeout"
        ),
    )
}

/// Starts the transaction one step runs in: on SQLite an immediate one, which holds the write
/// lock, retried while another process holds it.
macro_rules! begin_step {
    ($session:expr) => {{
        let start = Instant::now();
        let dialect = $session.dialect;
        loop {
            let options = TransactionOptions::new().immediate(dialect == Dialect::Sqlite);
            let conn = $session.conn.as_mut().expect("the session's connection");
            let busy = match conn.begin_with(options).await {
                Ok(tx) => break tx,
                Err(e) if dialect == Dialect::Sqlite && e.is_retryable() => e,
                Err(e) => return Err(e.into()),
            };
            wait(&$session.runtime, $session.timeout, start, Some(busy)).await?;
        }
    }};
}

impl Migrator {
    fn find(&self, version: i64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, Migration::version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// Refuses applied migrations whose file changed or is gone.
    fn verify(&self, rows: &[Row]) -> Result<(), MigrateError> {
        for row in rows {
            match self.find(row.version) {
                None => {
                    return Err(MigrateError::new(
                        MigrateErrorKind::Missing,
                        format!(
                            "migration {} ({}) is applied in the database, but no migration file \
                             has that version; restore its file (nothing was run)",
                            row.version, row.name
                        ),
                    ))
                }
                Some(m) if m.checksum() != row.checksum => {
                    return Err(MigrateError::new(
                        MigrateErrorKind::ChecksumMismatch,
                        format!(
                            "migration {} ({}) was edited after it was applied: its checksum was \
                             {} and is now {}; undo the edit and put the change in a new \
                             migration (nothing was run)",
                            row.version,
                            m.name(),
                            row.checksum,
                            m.checksum()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Applies every pending migration, in order of version, and returns those it applied (none
    /// when the database is up to date).
    ///
    /// Stops at the first that fails, with [`MigrateErrorKind::Failed`]; the ones before it stay
    /// applied. Before anything runs, an applied migration whose file was edited stops it with
    /// [`MigrateErrorKind::ChecksumMismatch`].
    pub async fn run(&self, engine: &Engine) -> Result<Vec<Applied>, MigrateError> {
        let mut session = Session::open(engine, self).await?;
        let result = self.run_in(&mut session).await;
        let finished = session.finish().await;
        let applied = result?;
        finished?;
        Ok(applied)
    }

    async fn run_in(&self, session: &mut Session) -> Result<Vec<Applied>, MigrateError> {
        let dialect = session.dialect;
        let mut applied = Vec::new();
        let mut dirty_since: Option<Instant> = None;
        let mut busy_since: Option<Instant> = None;
        loop {
            let mut tx = begin_step!(session);
            if dialect == Dialect::Sqlite {
                tx.execute(&dialect.create_table(), ()).await?;
            }
            let rows = read_rows(&mut tx, dialect).await?;
            self.verify(&rows)?;
            if let Some(row) = rows.iter().find(|r| r.state != APPLIED) {
                // Let go of the write lock while waiting: the runner applying it needs it too.
                tx.rollback().await?;
                // On SQLite another runner may be applying a started one right now, outside the
                // write lock; on PostgreSQL the advisory lock rules that out.
                if dialect == Dialect::Sqlite && row.state == STARTED {
                    let since = *dirty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < session.timeout {
                        session.runtime.sleep(POLL).await;
                        continue;
                    }
                }
                return Err(dirty(row));
            }
            dirty_since = None;
            let done: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.version).collect();
            let Some(m) = self
                .migrations
                .iter()
                .find(|m| !done.contains(&m.version()))
            else {
                tx.commit().await?;
                return Ok(applied);
            };
            let insert = format!(
                "INSERT INTO {TABLE} (version, name, checksum, state, duration_ms) \
                 VALUES ($1, $2, $3, $4, $5)"
            );
            let start = Instant::now();
            if m.in_transaction() {
                if let Err(e) = tx.execute(m.up(), ()).await {
                    let _ = tx.rollback().await;
                    // Rolled back whole, so a busy database or a deadlock with other traffic
                    // can be tried again, within the lock timeout.
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if e.is_retryable() && since.elapsed() < session.timeout {
                        session.runtime.sleep(POLL).await;
                        continue;
                    }
                    return Err(failed(m, "applying", true, e));
                }
                busy_since = None;
                let duration = start.elapsed();
                tx.execute(
                    &insert,
                    (
                        m.version(),
                        m.name(),
                        m.checksum(),
                        APPLIED,
                        millis(duration),
                    ),
                )
                .await?;
                // A commit can fail too (a deferred constraint, a serialization failure).
                if let Err(e) = tx.commit().await {
                    return Err(failed(m, "applying", true, e));
                }
                applied.push(done_step(m, duration));
            } else {
                tx.execute(
                    &insert,
                    (m.version(), m.name(), m.checksum(), STARTED, 0_i64),
                )
                .await?;
                tx.commit().await?;
                let start = Instant::now();
                if let Err(e) = session.conn().execute(m.up(), ()).await {
                    mark_failed(session.conn(), m).await;
                    return Err(failed(m, "applying", false, e));
                }
                let duration = start.elapsed();
                session
                    .conn()
                    .execute(
                        &format!(
                            "UPDATE {TABLE} SET state = $2, duration_ms = $3 WHERE version = $1"
                        ),
                        (m.version(), APPLIED, millis(duration)),
                    )
                    .await?;
                applied.push(done_step(m, duration));
            }
        }
    }

    /// Reverts the last applied migration with its `.down.sql` file and returns it.
    ///
    /// Fails with [`MigrateErrorKind::NoRevert`] when nothing is applied or the last migration
    /// has no down file, and like [`run`](Self::run) when an applied file was edited.
    pub async fn revert(&self, engine: &Engine) -> Result<Applied, MigrateError> {
        let mut session = Session::open(engine, self).await?;
        let result = self.revert_in(&mut session).await;
        let finished = session.finish().await;
        let reverted = result?;
        finished?;
        Ok(reverted)
    }

    async fn revert_in(&self, session: &mut Session) -> Result<Applied, MigrateError> {
        let dialect = session.dialect;
        let mut tx = begin_step!(session);
        if dialect == Dialect::Sqlite {
            tx.execute(&dialect.create_table(), ()).await?;
        }
        let rows = read_rows(&mut tx, dialect).await?;
        self.verify(&rows)?;
        if let Some(row) = rows.iter().find(|r| r.state != APPLIED) {
            return Err(dirty(row));
        }
        let Some(last) = rows.last() else {
            return Err(MigrateError::new(
                MigrateErrorKind::NoRevert,
                "no migration is applied, so there is nothing to revert",
            ));
        };
        let m = self.find(last.version).expect("verified above");
        let Some(down) = m.down() else {
            return Err(MigrateError::new(
                MigrateErrorKind::NoRevert,
                format!(
                    "migration {v} ({name}) cannot be reverted: it has no {v}_{name}.down.sql file",
                    v = m.version(),
                    name = m.name()
                ),
            ));
        };
        let delete = format!("DELETE FROM {TABLE} WHERE version = $1");
        let start = Instant::now();
        if in_transaction(down) {
            if let Err(e) = tx.execute(down, ()).await {
                let _ = tx.rollback().await;
                return Err(failed(m, "reverting", true, e));
            }
            tx.execute(&delete, (m.version(),)).await?;
            if let Err(e) = tx.commit().await {
                return Err(failed(m, "reverting", true, e));
            }
            Ok(done_step(m, start.elapsed()))
        } else {
            tx.execute(
                &format!("UPDATE {TABLE} SET state = $2 WHERE version = $1"),
                (m.version(), STARTED),
            )
            .await?;
            tx.commit().await?;
            if let Err(e) = session.conn().execute(down, ()).await {
                mark_failed(session.conn(), m).await;
                return Err(failed(m, "reverting", false, e));
            }
            let duration = start.elapsed();
            session.conn().execute(&delete, (m.version(),)).await?;
            Ok(done_step(m, duration))
        }
    }

    /// Lists every migration, known or recorded, in order of version, with where it stands.
    /// Reads only: it takes no lock and creates nothing.
    pub async fn info(&self, engine: &Engine) -> Result<Vec<MigrationInfo>, MigrateError> {
        let dialect = Dialect::of(engine)?;
        let mut conn = engine.acquire().await?;
        let exists: bool = conn.fetch_scalar(&dialect.table_exists(), ()).await?;
        let rows = if exists {
            read_rows(&mut conn, dialect).await?
        } else {
            Vec::new()
        };
        let mut lines: BTreeMap<i64, MigrationInfo> = self
            .migrations
            .iter()
            .map(|m| {
                let info = MigrationInfo {
                    version: m.version(),
                    name: m.name().to_owned(),
                    state: MigrationState::Pending,
                    applied_at: None,
                    duration: None,
                    reversible: m.down().is_some(),
                };
                (m.version(), info)
            })
            .collect();
        for row in rows {
            let state = match self.find(row.version) {
                None => MigrationState::Missing,
                Some(_) if row.state == STARTED => MigrationState::Started,
                Some(_) if row.state != APPLIED => MigrationState::Failed,
                Some(m) if m.checksum() != row.checksum => MigrationState::Edited,
                Some(_) => MigrationState::Applied,
            };
            let line = lines.entry(row.version).or_insert_with(|| MigrationInfo {
                version: row.version,
                name: row.name.clone(),
                state,
                applied_at: None,
                duration: None,
                reversible: false,
            });
            line.state = state;
            line.applied_at = Some(row.applied_at);
            line.duration = Some(Duration::from_millis(
                u64::try_from(row.duration_ms).unwrap_or(0),
            ));
        }
        Ok(lines.into_values().collect())
    }
}

fn done_step(m: &Migration, duration: Duration) -> Applied {
    Applied {
        version: m.version(),
        name: m.name().to_owned(),
        duration,
    }
}

fn failed(m: &Migration, doing: &str, in_transaction: bool, e: Error) -> MigrateError {
    let outcome = if in_transaction {
        "its transaction was rolled back, so nothing of it was kept and it is not recorded"
    } else {
        "it ran outside a transaction and may be partly done, so it is recorded as failed: repair \
         the database by hand, then delete its row from _anysql_migrations"
    };
    MigrateError::new(
        MigrateErrorKind::Failed,
        format!(
            "{doing} migration {} ({}) failed; {outcome}",
            m.version(),
            m.name()
        ),
    )
    .with_source(e)
}

/// Records that a migration outside a transaction failed, so that later runs stop at once
/// rather than wait for it. Best effort: if this fails too, the row stays `started`, which later
/// runs report all the same (on SQLite after the lock timeout).
async fn mark_failed(conn: &mut Connection, m: &Migration) {
    let _ = conn
        .execute(
            &format!("UPDATE {TABLE} SET state = $2 WHERE version = $1"),
            (m.version(), FAILED),
        )
        .await;
}

fn dirty(row: &Row) -> MigrateError {
    let what = if row.state == STARTED {
        "started outside a transaction and did not finish (its process died, or another process \
         is still applying it)"
    } else {
        "failed part-way outside a transaction"
    };
    MigrateError::new(
        MigrateErrorKind::Dirty,
        format!(
            "migration {} ({}) {what}; check what of it the database holds, repair it by hand, \
             then delete its row from {TABLE} and run again",
            row.version, row.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::through_pgbouncer;

    #[test]
    fn pgbouncer_is_read_from_both_url_forms() {
        assert!(through_pgbouncer("postgres://u@h:6432/db?pgbouncer=true"));
        assert!(through_pgbouncer(
            "postgres://u@h/db?sslmode=disable&pgbouncer=1"
        ));
        assert!(through_pgbouncer("host=h port=6432 pgbouncer=on"));
        assert!(!through_pgbouncer("postgres://u@h/db?pgbouncer=false"));
        assert!(!through_pgbouncer(
            "postgres://u@h/db?application_name=pgbouncer"
        ));
        assert!(!through_pgbouncer("postgres://u@h/db"));
    }
}
