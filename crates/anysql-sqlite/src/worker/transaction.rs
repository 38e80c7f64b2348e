//! Transaction control on the worker: the statements that begin and end a transaction, which the
//! core (and any application) runs through `execute`, and what the worker does around them.
//!
//! - `BEGIN IMMEDIATE` and `BEGIN EXCLUSIVE` wait for the connection's turn to write (the writer
//!   gate) before they run, so that they find the database's write lock free.
//! - A `COMMIT` that fails rolls back, ending the transaction as on other databases (and releasing
//!   the writer gate now rather than at the next command).
//! - `ROLLBACK` outside a transaction does nothing: the core may roll back after a transaction
//!   that SQLite already ended.
//! - When SQLite ends a transaction by itself (an interrupt, a full disk, a panic, …), the worker
//!   remembers it ([`Txn::Aborted`]): statements fail until the caller rolls back, so that nothing
//!   runs in autocommit mode by mistake.

use super::*;

/// How many consecutive times a housekeeping statement is retried after a stray interrupt.
const INTERRUPT_RETRIES: usize = 2;

/// The worker's view of the transaction that a `BEGIN` opened.
pub(super) enum Txn {
    None,
    Open,
    /// SQLite rolled the transaction back by itself (after an interrupt, a full disk, a panic, …)
    /// while the caller still thinks it is open; statements fail until the caller rolls back, so
    /// that nothing runs in autocommit mode by mistake.
    Aborted(String),
}

/// A transaction-control statement, as [`Worker::transaction`] runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnControl {
    /// `BEGIN [DEFERRED | IMMEDIATE | EXCLUSIVE] [TRANSACTION]`; `writes` for the last two, which
    /// take the write lock at once.
    Begin { writes: bool },
    /// `COMMIT` or `END`, with an optional `TRANSACTION`.
    Commit,
    /// `ROLLBACK [TRANSACTION]`, not `ROLLBACK TO` a savepoint.
    Rollback,
}

impl TxnControl {
    /// What `sql` is, if it is one transaction-control statement and nothing else. Cheap: it
    /// runs for every `execute` without parameters.
    pub(super) fn of(sql: &str) -> Option<TxnControl> {
        let mut words = sql
            .trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace())
            .split_ascii_whitespace();
        let first = words.next()?;
        let is = |word: &str, keyword: &str| word.eq_ignore_ascii_case(keyword);
        let mut next = words.next();
        let control = if is(first, "BEGIN") {
            let writes = match next {
                Some(w) if is(w, "IMMEDIATE") || is(w, "EXCLUSIVE") => true,
                Some(w) if is(w, "DEFERRED") => false,
                _ => {
                    return Self::end(next, words, TxnControl::Begin { writes: false });
                }
            };
            next = words.next();
            TxnControl::Begin { writes }
        } else if is(first, "COMMIT") || is(first, "END") {
            TxnControl::Commit
        } else if is(first, "ROLLBACK") {
            TxnControl::Rollback
        } else {
            return None;
        };
        Self::end(next, words, control)
    }

    /// `control` if what follows its keywords is at most `TRANSACTION`.
    fn end<'a>(
        next: Option<&'a str>,
        mut rest: impl Iterator<Item = &'a str>,
        control: TxnControl,
    ) -> Option<TxnControl> {
        match next {
            None => Some(control),
            Some(w) if w.eq_ignore_ascii_case("TRANSACTION") && rest.next().is_none() => {
                Some(control)
            }
            _ => None,
        }
    }
}

impl Worker {
    /// Runs the transaction-control statement `sql`, which is `op`, as an `execute`; `inline`
    /// when it runs on the caller's thread ([`Worker::run_inline`]). Whether it was quick is the
    /// time of the statement itself, without the wait for the writer gate.
    pub(super) fn transaction(
        &mut self,
        seq: u64,
        op: TxnControl,
        sql: &str,
        inline: bool,
    ) -> Result<Response, Error> {
        let result = match op {
            // A `BEGIN` is a statement its caller may give up on like any other: skipped if it
            // did before the statement started, and its wait for the writer gate ends if it does
            // meanwhile (its future dropped, or its cancel handle used). `statement` settles.
            TxnControl::Begin { .. } => {
                self.statement(seq, |w| w.control_statement(seq, op, sql, inline))
            }
            TxnControl::Commit | TxnControl::Rollback => {
                let result = self.catch(|w| w.control_statement(seq, op, sql, inline));
                self.settle();
                result
            }
        };
        result.map(|started| Response::Executed {
            rows: 0,
            quick: started.is_some_and(|t| self.quick_since(t)),
        })
    }

    /// Whether `op` may run inline now (in WAL mode, where it needs no lock it could wait for):
    /// a `BEGIN` outside a transaction, `BEGIN IMMEDIATE` only once it has taken the writer gate
    /// without waiting, and a `COMMIT` or `ROLLBACK` of an open transaction. Anything else goes
    /// to the thread, which also reports the errors.
    pub(super) fn may_control_inline(&mut self, op: TxnControl) -> bool {
        if !self.wal {
            return false;
        }
        match op {
            TxnControl::Begin { writes } => {
                self.outside_transaction() && (!writes || self.writes.try_take())
            }
            TxnControl::Commit | TxnControl::Rollback => matches!(self.txn, Txn::Open),
        }
    }

    /// Whether the connection is in autocommit mode with no transaction of the caller's open
    /// (nor one SQLite aborted that the caller has yet to roll back).
    pub(super) fn outside_transaction(&self) -> bool {
        matches!(self.txn, Txn::None) && self.conn.is_autocommit()
    }

    /// Runs `op`, command `seq`; returns when its statement started, after any wait for the
    /// writer gate, which ends with a cancellation error if the caller gives up on `seq`.
    fn control_statement(
        &mut self,
        seq: u64,
        op: TxnControl,
        sql: &str,
        inline: bool,
    ) -> Result<Option<Instant>, Error> {
        match op {
            TxnControl::Begin { writes } => {
                if let Txn::Aborted(reason) = &self.txn {
                    return Err(aborted(reason));
                }
                if writes {
                    let shared = &self.shared;
                    // The caller is about to write: wait for its turn first, so that BEGIN
                    // IMMEDIATE finds the database's write lock free. (Inline, the gate is taken
                    // already.)
                    self.writes.take(|| shared.is_cancelled(seq))?;
                }
                let started = self.timer();
                self.simple(sql)?;
                self.txn = Txn::Open;
                Ok(started)
            }
            TxnControl::Commit => {
                if let Txn::Aborted(reason) = std::mem::replace(&mut self.txn, Txn::None) {
                    return Err(aborted(&reason));
                }
                let started = self.timer();
                let result = self.simple(sql);
                if result.is_err() && !self.conn.is_autocommit() {
                    if inline && result.as_ref().is_err_and(Error::is_retryable) {
                        // Given up to the thread, which commits again, waiting as configured:
                        // the transaction stays open.
                        self.txn = Txn::Open;
                        return result.map(|()| None);
                    }
                    // A failed commit ends the transaction, as on other databases.
                    let _ = self.simple("ROLLBACK");
                }
                result.map(|()| started)
            }
            TxnControl::Rollback => {
                let started = self.timer();
                self.roll_back().map(|()| started)
            }
        }
    }

    /// Rolls back any open transaction and forgets the caller's (`ROLLBACK`, and resets).
    pub(super) fn roll_back(&mut self) -> Result<(), Error> {
        self.txn = Txn::None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.simple("ROLLBACK")
    }

    pub(super) fn control(&mut self, op: Control) -> Result<(), Error> {
        match op {
            Control::Reset => self.roll_back(),
            Control::Ping => Ok(()),
        }
    }

    /// After a panic, the connection may be half-way through anything: roll back.
    pub(super) fn recover(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.simple("ROLLBACK");
        }
        if matches!(self.txn, Txn::Open) {
            self.txn =
                Txn::Aborted("code on the connection panicked, so it was rolled back".to_owned());
        }
    }

    /// Marks the caller's transaction aborted if SQLite ended it on its own.
    pub(super) fn check_transaction(&mut self, error: Option<&Error>) {
        if matches!(self.txn, Txn::Open) && self.conn.is_autocommit() {
            let reason = match error {
                Some(e) => format!("sqlite rolled it back after the error: {e}"),
                None => "a statement ended it".to_owned(),
            };
            self.txn = Txn::Aborted(reason);
        }
    }

    /// Runs a statement that takes no parameters and returns no rows, retrying after a stray
    /// interrupt.
    pub(super) fn simple(&self, sql: &str) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            let result = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.raw_execute());
            match result {
                Err(e) if is_interrupt(&e) && attempt < INTERRUPT_RETRIES => attempt += 1,
                other => return other.map(drop).map_err(from_rusqlite),
            }
        }
    }
}

fn is_interrupt(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
}

pub(super) fn aborted(reason: &str) -> Error {
    let mut details = DatabaseError::new(
        format!(
            "the transaction is no longer open in sqlite ({reason}); roll it back (or drop it) and run it again"
        ),
        Some(error::code_name(ffi::SQLITE_ABORT_ROLLBACK)),
    );
    details.retryable = true;
    Error::database(details)
}

#[cfg(test)]
mod tests {
    use super::TxnControl::{self, *};

    #[test]
    fn transaction_control_is_recognised_alone_and_nothing_else() {
        for (sql, control) in [
            ("BEGIN", Some(Begin { writes: false })),
            ("begin deferred transaction;", Some(Begin { writes: false })),
            ("BEGIN IMMEDIATE", Some(Begin { writes: true })),
            (
                "  Begin Exclusive Transaction ; ",
                Some(Begin { writes: true }),
            ),
            ("COMMIT", Some(Commit)),
            ("end transaction", Some(Commit)),
            ("ROLLBACK", Some(Rollback)),
            ("rollback transaction", Some(Rollback)),
            ("ROLLBACK TO SAVEPOINT s", None),
            ("ROLLBACK TRANSACTION TO s", None),
            ("BEGIN; INSERT INTO t VALUES (1)", None),
            ("BEGIN IMMEDIATE TRANSACTION x", None),
            ("SAVEPOINT s", None),
            ("RELEASE SAVEPOINT s", None),
            ("COMMITTED", None),
            ("-- BEGIN", None),
            ("", None),
        ] {
            assert_eq!(TxnControl::of(sql), control, "{sql:?}");
        }
    }
}
