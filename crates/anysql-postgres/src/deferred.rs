//! A transaction's deferred `BEGIN` ([`Deferred`]): [`begin`](anysql_core::DriverConnection::begin)
//! sends nothing, and the transaction's first statement carries the `BEGIN`, in the same write
//! and the same implicit block of the extended protocol (see [`crate::socket`]), so that it costs
//! one round trip instead of two.

use anysql_core::{DatabaseError, Error};

use crate::session::Session;
use crate::socket::{BeginOutcome, BeginProgress, SocketHandle};
use crate::sql::{self, SqlInfo, TxnEffect};

/// Where a transaction's `BEGIN` stands.
#[derive(Debug, Default)]
pub(crate) enum Deferred {
    /// Sent and answered, or no transaction of ours is starting.
    #[default]
    None,
    /// Not sent yet: the next statement carries it.
    Pending(String),
    /// On its way, armed in the socket with a statement. Seen at the start of an operation, the
    /// future of the operation that carried it was dropped, and what became of it is learnt
    /// first.
    Carried(String),
    /// On its way alone (or as `BEGIN …; COMMIT`); seen at the start of an operation, as
    /// [`Carried`](Self::Carried).
    Sending(String),
    /// It failed, and the statement that carried it reported its error: the transaction never
    /// started. Statements fail until the transaction ends.
    Failed,
}

/// How a statement meets a pending `BEGIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meet {
    /// Carry it: one extended-protocol statement, not transaction control.
    Carry,
    /// `COMMIT` (or `END`) exactly, without parameters: sent as `BEGIN …; COMMIT`, so that an
    /// error of the `BEGIN` is still reported.
    Commit,
    /// `ROLLBACK` (or `ABORT`) exactly: nothing was sent, nothing to undo.
    Rollback,
    /// Anything else: the `BEGIN` goes first, alone, and the statement after its reply.
    Flush,
}

/// How the statement `sql` (scanned as `info`) meets a pending `BEGIN`; `extended`: whether it
/// goes by the extended protocol (the query paths always; `execute` with parameters).
pub(crate) fn meet(sql: &str, info: &SqlInfo, extended: bool) -> Meet {
    if info.multiple_statements {
        return Meet::Flush;
    }
    match info.effects.as_slice() {
        [TxnEffect::Commit] if !extended && sql::is_plain_commit(sql) => Meet::Commit,
        [TxnEffect::Rollback] if sql::words_are(sql, &["ROLLBACK", "ABORT"]) => Meet::Rollback,
        [] if extended && !info.transaction_control && !info.copy_stdio => Meet::Carry,
        _ => Meet::Flush,
    }
}

/// After an operation that may have carried the `BEGIN` (before its outcome is settled): takes
/// the socket's word on it.
pub(crate) fn after_carry(deferred: &mut Deferred, server: &SocketHandle, session: &mut Session) {
    let Deferred::Carried(sql) = deferred else {
        return;
    };
    *deferred = match server.take_begin() {
        // Nothing was written (the statement failed on the client first): still to be sent.
        BeginProgress::NotWritten => Deferred::Pending(std::mem::take(sql)),
        BeginProgress::Done(BeginOutcome::Succeeded) => {
            session.opened = true;
            Deferred::None
        }
        // The operation reported the error; the statement did not run.
        BeginProgress::Done(BeginOutcome::Failed) => Deferred::Failed,
        // The replies of the statement came before the `BEGIN`'s: cannot happen. Learn it again
        // before the next statement.
        BeginProgress::Awaiting => return,
        BeginProgress::Done(BeginOutcome::Confused) | BeginProgress::Idle => {
            session.broken = true;
            Deferred::None
        }
    };
}

/// The error of a statement in a transaction whose deferred `BEGIN` failed.
pub(crate) fn not_started() -> Error {
    Error::database(DatabaseError::new(
        "the transaction did not start: its BEGIN, sent with the transaction's first statement, \
         failed (that statement reported why); roll the transaction back and start another",
        Some("25P02".to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::scan;

    fn of(sql: &str, extended: bool) -> Meet {
        meet(sql, &scan(sql), extended)
    }

    #[test]
    fn only_plain_statements_with_parameters_carry_the_begin() {
        assert_eq!(
            of("SELECT v FROM t WHERE id = $1 FOR UPDATE", true),
            Meet::Carry
        );
        assert_eq!(of("UPDATE t SET v = $1", true), Meet::Carry);
        // The simple protocol cannot share an implicit block with the BEGIN.
        assert_eq!(of("SELECT 1", false), Meet::Flush);
        assert_eq!(of("SAVEPOINT s", false), Meet::Flush);
        assert_eq!(of("COPY t FROM STDIN", false), Meet::Flush);
        assert_eq!(of("commit", false), Meet::Commit);
        assert_eq!(of(" END; ", false), Meet::Commit);
        assert_eq!(of("COMMIT AND CHAIN", false), Meet::Flush);
        assert_eq!(of("ROLLBACK", false), Meet::Rollback);
        assert_eq!(of("abort", false), Meet::Rollback);
        assert_eq!(of("ROLLBACK TO SAVEPOINT s", false), Meet::Flush);
        assert_eq!(of("COMMIT; SELECT 1", false), Meet::Flush);
    }
}
