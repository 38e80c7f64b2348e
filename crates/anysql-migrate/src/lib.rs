//! SQL migrations for anysql, on any runtime and on SQLite and PostgreSQL alike.
//!
//! A migration is a file named `<version>_<name>.sql`, with an integer version (the CLI's
//! `anysql migrate add NAME` uses the UTC time, `20260102030405`); migrations run in increasing
//! order of version. An optional `<version>_<name>.down.sql` reverts it. A [`Migrator`] holds them:
//! embedded in the binary at compile time by `anysql::migrate!("migrations")` (the path is
//! relative to the crate's `Cargo.toml`, and cargo rebuilds when a file changes), or read from a
//! directory at run time by [`Migrator::from_dir`].
//!
//! - **Transactions.** Each migration runs in a transaction of its own, with its bookkeeping row:
//!   when its SQL fails, nothing of it is left and its version is not recorded (DDL is
//!   transactional on both databases); one that fails with a retryable error (a busy database,
//!   a deadlock, a serialization failure) is tried again within the lock timeout. A file whose
//!   first line is `-- anysql:no-transaction` runs outside a transaction (for `VACUUM`, `CREATE
//!   INDEX CONCURRENTLY`, SQLite's `PRAGMA journal_mode`); it is recorded as started before it
//!   runs and as applied after, so one that fails part-way (or whose process dies) stops later
//!   runs with [`MigrateErrorKind::Dirty`] until someone repairs the database and deletes its row
//!   (on SQLite, a runner that finds one started first waits up to the lock timeout, since
//!   another process may be applying it outside the write lock). On PostgreSQL a file of several
//!   statements is sent as one simple query, which the server runs as one implicit transaction:
//!   a statement that refuses transaction blocks (`CREATE INDEX CONCURRENTLY`) must be alone in
//!   its file.
//! - **The lock.** Two processes never migrate one database at once. On PostgreSQL the run holds
//!   a session advisory lock, on one connection of the engine, from start to end (its key is
//!   derived from the database, the schema and the table name, so separate schemas migrate
//!   independently). A session lock cannot be held through PgBouncer's transaction pooling, so
//!   on an engine whose URL has `pgbouncer=true` a run is refused before anything runs
//!   ([`MigrateErrorKind::Unsupported`]): migrate with the server's own URL. On SQLite each migration runs inside the database's write lock (`BEGIN
//!   IMMEDIATE`), which the migrator re-checks the bookkeeping table under: a migration another
//!   process applied meanwhile is skipped, so each is applied exactly once. A runner waits up to
//!   [`Migrator::lock_timeout`] for the lock.
//! - **Checksums.** Each applied migration's SHA-256 is recorded; a later `run` or `revert` whose
//!   file differs stops before running anything, with [`MigrateErrorKind::ChecksumMismatch`]
//!   naming the migration. An applied version with no file is [`MigrateErrorKind::Missing`].
//! - **Bookkeeping.** The table `_anysql_migrations` (version, name, checksum, state,
//!   applied_at, duration_ms), created by the first run.
//!
//! A file may hold several statements: both drivers run an `execute` without parameters as a
//! script (SQLite statement by statement, PostgreSQL as one simple query), so the migrator needs
//! nothing beyond the engine's public API. Everything goes through it (one pooled connection,
//! the engine's runtime for waiting), so the migrator never names a runtime and runs on
//! whichever the engine uses.
//!
//! # Examples
//!
//! ```
//! # smol::block_on(async {
//! use anysql_migrate::{Migration, MigrationState, Migrator};
//!
//! let engine = anysql::create_async_engine("sqlite::memory:?max_size=1")?;
//! let migrator = Migrator::new(vec![
//!     Migration::new(1, "people", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)",
//!         Some("DROP TABLE people".into())),
//!     Migration::new(2, "ada", "INSERT INTO people (name) VALUES ('Ada')", Some(
//!         "DELETE FROM people".into())),
//! ])?;
//!
//! let applied = migrator.run(&engine).await?;
//! assert_eq!(applied.len(), 2);
//! assert!(migrator.run(&engine).await?.is_empty()); // nothing left to do
//!
//! let reverted = migrator.revert(&engine).await?;
//! assert_eq!(reverted.version, 2);
//! let info = migrator.info(&engine).await?;
//! assert_eq!(info[0].state, MigrationState::Applied);
//! assert_eq!(info[1].state, MigrationState::Pending);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Why not refinery-core's async traits
//!
//! refinery-core's `AsyncMigrate` drives a migration through its own `AsyncTransaction` and
//! `AsyncQuery` traits, which would fit an anysql connection. What does not fit is the rest:
//! it has no lock between processes, no down migrations and no per-file way out of the
//! transaction, its file names (`V1__name.sql`) and its table differ, and the crate needs
//! regex, time, url, walkdir, siphasher, thiserror and log besides. Wrapping it would still leave
//! the lock, `revert` and the opt-out to write here; the part it would save is a loop.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod run;
mod source;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

pub use error::{MigrateError, MigrateErrorKind};
pub use source::{parse_file_name, FileName, Migration, NO_TRANSACTION};

/// The bookkeeping table.
pub const TABLE: &str = "_anysql_migrations";

/// A sorted set of migrations and how to run them: [`run`](Self::run), [`info`](Self::info) and
/// [`revert`](Self::revert), on any [`Engine`](anysql_core::Engine).
#[derive(Debug, Clone)]
pub struct Migrator {
    migrations: Vec<Migration>,
    lock_timeout: Duration,
}

impl Migrator {
    /// A migrator for `migrations`, sorted by version; two with one version are an error.
    pub fn new(migrations: Vec<Migration>) -> Result<Migrator, MigrateError> {
        let mut migrations = migrations;
        migrations.sort_by_key(Migration::version);
        if let Some(pair) = migrations
            .windows(2)
            .find(|w| w[0].version() == w[1].version())
        {
            return Err(MigrateError::new(
                MigrateErrorKind::Source,
                format!(
                    "two migrations share the version {}: {:?} and {:?}",
                    pair[0].version(),
                    pair[0].name(),
                    pair[1].name()
                ),
            ));
        }
        Ok(Migrator {
            migrations,
            lock_timeout: Duration::from_secs(60),
        })
    }

    /// Reads the migrations of `dir` at run time: every `<version>_<name>.sql` and
    /// `<version>_<name>.down.sql` file in it (not in its subdirectories). Other files are
    /// ignored; a `.sql` file named otherwise is an error.
    ///
    /// ```no_run
    /// # async fn f(engine: anysql_core::Engine) -> Result<(), anysql_migrate::MigrateError> {
    /// let migrator = anysql_migrate::Migrator::from_dir("migrations")?;
    /// migrator.run(&engine).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Migrator, MigrateError> {
        Migrator::new(source::read_dir(dir.as_ref())?)
    }

    /// The migrator `anysql::migrate!` expands to: `(version, name, up, down)` for each file,
    /// checked and sorted at compile time.
    #[doc(hidden)]
    pub fn __embedded(
        files: &'static [(i64, &'static str, &'static str, Option<&'static str>)],
    ) -> Migrator {
        Migrator {
            migrations: files
                .iter()
                .map(|&(version, name, up, down)| {
                    Migration::new(version, name, up, down.map(Cow::Borrowed))
                })
                .collect(),
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// How long a run waits for the lock another process holds before it fails with
    /// [`MigrateErrorKind::LockTimeout`]; one minute by default.
    pub fn lock_timeout(mut self, timeout: Duration) -> Migrator {
        self.lock_timeout = timeout;
        self
    }

    /// The migrations, in order of version.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }
}

/// A migration that [`Migrator::run`] applied or [`Migrator::revert`] reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// How long its SQL took.
    pub duration: Duration,
}

/// Where a migration stands, in [`Migrator::info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MigrationState {
    /// Not applied yet.
    Pending,
    /// Applied, and its file is unchanged.
    Applied,
    /// Applied, but its file has changed since: `run` refuses to go on.
    Edited,
    /// Failed part-way outside a transaction: check the database by hand.
    Failed,
    /// Started outside a transaction and not finished: another process is applying it, or its
    /// run died.
    Started,
    /// Applied, but no file has its version any more.
    Missing,
}

impl MigrationState {
    /// A short lowercase word for the state, as `anysql migrate info` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Pending => "pending",
            MigrationState::Applied => "applied",
            MigrationState::Edited => "edited",
            MigrationState::Failed => "failed",
            MigrationState::Started => "started",
            MigrationState::Missing => "missing",
        }
    }
}

/// One line of [`Migrator::info`]: a known migration or one the database records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Where it stands.
    pub state: MigrationState,
    /// When it was applied (UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`), if it was.
    pub applied_at: Option<String>,
    /// How long it took, if it was applied.
    pub duration: Option<Duration>,
    /// Whether it has a `.down.sql` file.
    pub reversible: bool,
}
