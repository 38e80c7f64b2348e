//! Statement ids and result columns, kept on both sides of the thread hop.
//!
//! The text of a statement crosses to the worker once; later commands name it by a number, so a
//! query in a loop sends no string at all. The worker sends the names of a statement's result
//! columns once (and again only after a schema change), and the caller's side builds the [`Row`]s
//! with its own `Arc<Columns>`. Both save cache-line transfers between cores, which cost hundreds of
//! nanoseconds each on a virtual machine: the difference matters for point queries.
//!
//! The worker also notes, with the names, which columns are declared decimal ([`Decimals`]), to read
//! their numbers as exact decimal text; that stays on its side.
//!
//! The two sides stay in step because the worker handles every command it receives in order, and
//! each command that could be answered with "the columns you know" carries the version the caller
//! actually has, so a reply lost to a dropped future cannot desynchronise them.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::Arc;

use anysql_core::sql::rewrite_dollar_placeholders;
use anysql_core::statement_cache::StatementCache;
use anysql_core::{Columns, Error, Row, RowSink, Value};
use rusqlite::{Statement, StatementStatus};

use crate::batch::{is_decimal_type, Decimals, OneRow, RowBatch};
use crate::error::from_rusqlite;

/// The most statements each side remembers.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(256).unwrap();

/// The most [`Entry::quick`] counts up to.
const QUICK_MAX: u8 = 3;

/// The SQL of a command.
#[derive(Debug)]
pub(crate) enum Sql {
    /// A statement the worker knows by this id.
    Known(u64),
    /// A new statement: forget `evict`, then register `text` (placeholders already rewritten) as
    /// `id`.
    New {
        id: u64,
        text: String,
        evict: Option<u64>,
    },
}

impl Sql {
    /// The statement's id.
    pub(crate) fn id(&self) -> u64 {
        match self {
            Sql::Known(id) | Sql::New { id, .. } => *id,
        }
    }
}

/// A statement's result columns under their version, as the worker sends them to the caller.
pub(crate) type VersionedColumns = (u64, Arc<Columns>);

/// Rows fetched by the worker, without their columns unless the caller lacks them.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The columns, with their version, when the caller does not have that version.
    pub(crate) columns: Option<VersionedColumns>,
    pub(crate) rows: FetchedRows,
    /// The statement ran read-only, without pipelining, within the URL's `inline_limit`: its next
    /// run may be inline (see [`Worker::run_inline`](crate::worker::Worker::run_inline)).
    pub(crate) quick: bool,
}

/// The values of fetched rows.
///
/// A single row (a point query) travels inline, in the reply itself: this saves a dependent cache
/// miss across cores on the way back, and nothing is allocated on the worker for the caller to
/// free. More rows travel as one [`RowBatch`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Inline on purpose: see above.
pub(crate) enum FetchedRows {
    Empty,
    One(OneRow),
    Many(RowBatch),
}

impl FetchedRows {
    /// The current row of a query, `width` cells wide, with its `decimals` columns declared
    /// decimal, as the only row wanted.
    pub(crate) fn one(
        row: &rusqlite::Row<'_>,
        width: usize,
        decimals: &Decimals,
    ) -> Result<FetchedRows, Error> {
        if let Some(one) = OneRow::read(row, width, decimals)? {
            return Ok(FetchedRows::One(one));
        }
        let mut batch = RowBatch::new(width);
        batch.push(row, decimals)?;
        Ok(FetchedRows::Many(batch))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            FetchedRows::Empty => 0,
            FetchedRows::One(..) => 1,
            FetchedRows::Many(batch) => batch.len(),
        }
    }
}

/// The caller's side: statement texts it has sent, and the columns it has been told.
#[derive(Debug)]
pub(crate) struct Statements {
    map: StatementCache<Entry>,
    next_id: u64,
}

impl Default for Statements {
    fn default() -> Self {
        Statements {
            map: StatementCache::new(CAPACITY),
            next_id: 0,
        }
    }
}

#[derive(Debug)]
struct Entry {
    id: u64,
    columns: Option<(u64, Arc<Columns>)>,
    /// How far its recent runs were quick ([`Fetched::quick`]): up one for each quick one (to
    /// [`QUICK_MAX`]), down two for each other one. It may run inline while this is above zero: a
    /// statement turns quick after one quick run, and, once it has been quick a few times, slow
    /// after two slow ones in a row, so that one run that took long because the thread was
    /// preempted does not send the next run to a connection thread that has gone to sleep, which
    /// costs more than it saves.
    quick: u8,
}

impl Statements {
    /// How to name `sql` in the next command, and the version of its columns this side has (0 for
    /// none).
    pub(crate) fn lookup(&mut self, sql: &str) -> (Sql, u64) {
        let (sql, known_columns, _) = self.lookup_quick(sql);
        (sql, known_columns)
    }

    /// [`lookup`](Self::lookup), and whether the statement's runs have been quick lately
    /// ([`Fetched::quick`], [`Response::Executed`](crate::worker::Response::Executed)).
    pub(crate) fn lookup_quick(&mut self, sql: &str) -> (Sql, u64, bool) {
        if let Some(entry) = self.map.get(sql) {
            return (
                Sql::Known(entry.id),
                entry.columns.as_ref().map_or(0, |c| c.0),
                entry.quick > 0,
            );
        }
        self.next_id += 1;
        let id = self.next_id;
        let entry = Entry {
            id,
            columns: None,
            quick: 0,
        };
        // The worker forgets what this side evicts.
        let evict = self.map.insert(sql, entry).map(|(_, evicted)| evicted.id);
        let text = rewrite_dollar_placeholders(sql, '?').into_owned();
        (Sql::New { id, text, evict }, 0, false)
    }

    /// Records whether a run of `sql` that was not a fetch was quick.
    pub(crate) fn record_quick(&mut self, sql: &str, quick: bool) {
        if let Some(entry) = self.map.peek(sql) {
            entry.record_quick(quick);
        }
    }

    /// Passes each row of a reply to `sql` to `sink`, through one reused [`Row`], learning the
    /// statement's columns if the reply brings them; stops where `sink` says so.
    pub(crate) fn each(
        &mut self,
        sql: &str,
        mut fetched: Fetched,
        sink: &mut RowSink<'_>,
    ) -> Result<ControlFlow<()>, Error> {
        let Some(columns) = self.columns(sql, &mut fetched)? else {
            return Ok(ControlFlow::Continue(()));
        };
        match fetched.rows {
            FetchedRows::Empty => Ok(ControlFlow::Continue(())),
            FetchedRows::One(one) => {
                let values = one.values(&columns)?;
                sink(&mut Row::new(columns, values))
            }
            FetchedRows::Many(batch) => {
                let mut row = Row::new(Arc::clone(&columns), vec![Value::Null; columns.len()]);
                for index in 0..batch.len() {
                    batch.fill(index, &columns, row.refill())?;
                    if sink(&mut row)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            }
        }
    }

    /// Builds the first row of a reply to `sql`, learning its columns if the reply brings them.
    pub(crate) fn first_row(
        &mut self,
        sql: &str,
        mut fetched: Fetched,
    ) -> Result<Option<Row>, Error> {
        let Some(columns) = self.columns(sql, &mut fetched)? else {
            return Ok(None);
        };
        Ok(match fetched.rows {
            FetchedRows::Empty => None,
            FetchedRows::One(one) => {
                let values = one.values(&columns)?;
                Some(Row::new(columns, values))
            }
            FetchedRows::Many(batch) if batch.len() > 0 => {
                let values = batch.values(0, &columns)?;
                Some(Row::new(columns, values))
            }
            FetchedRows::Many(_) => None,
        })
    }

    /// The columns of a reply to `sql`: the ones it brings (remembered) or the known ones. `None`
    /// if there are no rows to give columns to. Also remembers whether the fetch was quick.
    fn columns(&mut self, sql: &str, fetched: &mut Fetched) -> Result<Option<Arc<Columns>>, Error> {
        let (new, rows) = (fetched.columns.take(), fetched.rows.len());
        let mut entry = self.map.peek(sql);
        if let Some(entry) = entry.as_deref_mut() {
            entry.record_quick(fetched.quick);
        }
        Ok(Some(match (new, entry) {
            (Some(new), Some(entry)) => Arc::clone(&entry.columns.insert(new).1),
            (Some((_, columns)), None) => columns,
            (None, Some(Entry { columns: Some((_, columns)), .. })) => Arc::clone(columns),
            (None, _) if rows == 0 => return Ok(None),
            (None, _) => {
                return Err(Error::connection(
                    "the sqlite connection lost track of a statement's columns (a bug in anysql-sqlite); \
                     drop this connection",
                ))
            }
        }))
    }
}

impl Entry {
    fn record_quick(&mut self, quick: bool) {
        self.quick = if quick {
            (self.quick + 1).min(QUICK_MAX)
        } else {
            self.quick.saturating_sub(2)
        };
    }
}

/// The worker's side: statement texts by id, and the columns last told to the caller.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: HashMap<u64, Registered>,
    next_version: u64,
    /// Bumped whenever rusqlite has prepared a new statement object (see
    /// [`note_if_fresh`](Self::note_if_fresh)): no column check recorded before
    /// counts until it is made again.
    epoch: u64,
}

#[derive(Debug)]
struct Registered {
    text: Arc<str>,
    /// The columns, as last seen. The worker's own copy: sharing an `Arc<Columns>` with the
    /// caller would bounce its reference count between cores.
    columns: Option<Seen>,
}

/// A statement's result columns as the worker last saw them.
#[derive(Debug)]
struct Seen {
    version: u64,
    names: Vec<String>,
    /// Which of them are declared decimal.
    decimals: Decimals,
    /// The statement's re-prepare count when they were checked, and the registry's epoch then.
    checked: (i32, u64),
}

impl Seen {
    fn new(version: u64, stmt: &Statement<'_>, checked: (i32, u64)) -> Result<Seen, Error> {
        Ok(Seen {
            version,
            names: column_names(stmt)?,
            decimals: Decimals::of(stmt),
            checked,
        })
    }

    /// Whether `stmt` has these columns still: the same names, declared decimal or not alike (a
    /// schema change may change a column's declared type and keep its name).
    fn matches(&self, stmt: &Statement<'_>) -> bool {
        self.names.len() == stmt.column_count()
            && stmt
                .columns()
                .zip(&self.names)
                .enumerate()
                .all(|(i, (column, name))| {
                    column.name() == name
                        && is_decimal_type(column.decl_type()) == self.decimals.is(i)
                })
    }
}

impl Registry {
    /// The id and text of a command's statement, registering it if new.
    pub(crate) fn resolve(&mut self, sql: Sql) -> Result<(u64, Arc<str>), Error> {
        match sql {
            Sql::Known(id) => self.map.get(&id).map(|r| (id, Arc::clone(&r.text))).ok_or_else(|| {
                Error::connection(
                    "the sqlite connection lost track of a statement (a bug in anysql-sqlite); drop this connection",
                )
            }),
            Sql::New { id, text, evict } => {
                if let Some(evict) = evict {
                    self.map.remove(&evict);
                }
                let text: Arc<str> = text.into();
                self.map.insert(id, Registered { text: Arc::clone(&text), columns: None });
                Ok((id, text))
            }
        }
    }

    /// The columns of statement `id` as `stmt` has them now, recording new ones (the first time,
    /// or after a schema change) under a new version.
    ///
    /// A statement's columns change only when SQLite prepares it again, for a schema change
    /// (counted by `SQLITE_STMTSTATUS_REPREPARE`), or when rusqlite prepares a new statement
    /// object for the text, whose count starts at 0 again (which bumps the epoch: see
    /// [`note_if_fresh`](Self::note_if_fresh)). Otherwise the names and declared
    /// types are not read again: that would cost every fetch a few FFI calls and string
    /// comparisons per column.
    fn current(&mut self, id: u64, stmt: &Statement<'_>) -> Result<&Seen, Error> {
        let checked = (stmt.get_status(StatementStatus::RePrepare), self.epoch);
        // Every statement is resolved before it runs, so the entry exists; an empty one is still
        // correct.
        let registered = self.map.entry(id).or_insert_with(|| Registered {
            text: Arc::from(""),
            columns: None,
        });
        let unchanged = match &mut registered.columns {
            Some(seen) if seen.checked == checked => true,
            Some(seen) if seen.matches(stmt) => {
                seen.checked = checked;
                true
            }
            _ => false,
        };
        if !unchanged {
            self.next_version += 1;
            registered.columns = Some(Seen::new(self.next_version, stmt, checked)?);
        }
        registered.columns.as_ref().ok_or_else(|| {
            Error::connection("the sqlite connection lost track of a statement's columns")
        })
    }

    /// Called with every statement from rusqlite's cache before it runs: when it is a new object
    /// (it has never run: `SQLITE_STMTSTATUS_RUN` is 0), every statement's columns are checked
    /// again at its next fetch. A cache miss is rare; the check is one FFI call.
    pub(crate) fn note_if_fresh(&mut self, stmt: &Statement<'_>) {
        if stmt.get_status(StatementStatus::Run) == 0 {
            self.forget_column_checks();
        }
    }

    /// Makes every statement's columns be checked again at its next fetch.
    pub(crate) fn forget_column_checks(&mut self) {
        self.epoch += 1;
    }

    /// The columns to send with a fetch reply (`None` if the caller has version `known` already),
    /// and which of them are declared decimal.
    pub(crate) fn columns_for_caller(
        &mut self,
        id: u64,
        stmt: &Statement<'_>,
        known: u64,
    ) -> Result<(Option<VersionedColumns>, Decimals), Error> {
        let seen = self.current(id, stmt)?;
        let columns = (seen.version != known)
            .then(|| (seen.version, Columns::new(seen.names.iter().cloned())));
        Ok((columns, seen.decimals.clone()))
    }

    /// The columns of statement `id`, for rows the worker builds itself (streams), and which of
    /// them are declared decimal.
    pub(crate) fn columns(
        &mut self,
        id: u64,
        stmt: &Statement<'_>,
    ) -> Result<(Arc<Columns>, Decimals), Error> {
        let seen = self.current(id, stmt)?;
        Ok((
            Columns::new(seen.names.iter().cloned()),
            seen.decimals.clone(),
        ))
    }
}

fn column_names(stmt: &Statement<'_>) -> Result<Vec<String>, Error> {
    (0..stmt.column_count())
        .map(|i| {
            stmt.column_name(i)
                .map(str::to_owned)
                .map_err(from_rusqlite)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_cross_once_and_the_oldest_is_evicted() {
        let mut statements = Statements::default();
        let (first, known) = statements.lookup("SELECT $1");
        assert!(matches!(&first, Sql::New { id: 1, text, evict: None } if text == "SELECT ?1"));
        assert_eq!(known, 0);
        assert!(matches!(statements.lookup("SELECT $1").0, Sql::Known(1)));
        for i in 0..CAPACITY.get() - 1 {
            statements.lookup(&format!("SELECT {i}"));
        }
        // Full: "SELECT $1" was the least recently used.
        assert!(matches!(
            statements.lookup("SELECT 'new'").0,
            Sql::New { evict: Some(1), .. }
        ));
        assert!(matches!(
            statements.lookup("SELECT $1").0,
            Sql::New { evict: Some(2), .. }
        ));
        let mut registry = Registry::default();
        let (id, text) = registry.resolve(first).unwrap();
        assert_eq!((id, &*text), (1, "SELECT ?1"));
        assert!(registry.resolve(Sql::Known(1)).is_ok());
        assert!(registry.resolve(Sql::Known(99)).is_err());
    }
}
