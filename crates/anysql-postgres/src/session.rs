//! What the driver records of a session between statements ([`Session`]), and how an
//! operation's outcome updates it.

use anysql_core::{DatabaseError, Error};

use crate::error::{self, Fate};
use crate::socket::{SocketHandle, TxnStatus};
use crate::sql::TxnEffect;
use crate::statements::{Failure, Statements};

/// Per-connection bookkeeping. The transaction state itself is the server's word, the status of
/// the last ReadyForQuery message read (see [`SocketHandle::txn_status`]); this only fills the gap
/// while that status may be stale.
#[derive(Debug)]
pub(crate) struct Session {
    server: SocketHandle,
    /// An operation started and has not finished (its future may have been dropped).
    pub(crate) in_flight: bool,
    /// A statement failed inside the open transaction, so PostgreSQL will roll it back. Taken
    /// from the server's status whenever that is current ([`sync`](Self::sync)); kept here for
    /// when the error came back before its ReadyForQuery was read.
    failed: bool,
    /// The operation ending now carried a transaction's deferred `BEGIN`, which succeeded: the
    /// transaction is open even if the last status read (from before it) says idle. Taken by
    /// [`settle`](Self::settle).
    pub(crate) opened: bool,
    /// The connection is known to be unusable.
    pub(crate) broken: bool,
    /// The engine wants a writable server (`target_session_attrs=read-write` or `primary`): a
    /// statement refused as read-only (`25006`) means the server was demoted, and the connection
    /// is broken for this engine.
    pub(crate) discard_on_read_only: bool,
}

impl Session {
    pub(crate) fn new(server: SocketHandle) -> Self {
        Session {
            server,
            in_flight: false,
            failed: false,
            opened: false,
            broken: false,
            discard_on_read_only: false,
        }
    }

    /// The session's transaction status as the server reported it, if that is current: no
    /// operation under way and every request answered. `None` while it may be stale.
    pub(crate) fn txn(&self) -> Option<TxnStatus> {
        (!self.in_flight && self.server.settled()).then(|| self.server.txn_status())
    }

    /// Takes the server's word on whether the transaction failed, if it is current.
    pub(crate) fn sync(&mut self) {
        if let Some(status) = self.txn() {
            self.failed = status == TxnStatus::Failed;
        }
    }

    /// Starts an operation, refusing if the connection is known to be gone.
    pub(crate) fn start(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::connection(
                "the connection is broken; drop it and acquire another from the engine",
            ));
        }
        self.sync();
        self.in_flight = true;
        Ok(())
    }

    /// Records that the open transaction failed (a COPY in it was aborted), before the server's
    /// word on it has been read.
    pub(crate) fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// [`settle`](Self::settle) for one step of an operation that goes on (a chunk of a COPY):
    /// an error is mapped and recorded, and either way the operation stays in flight, since the
    /// server's COPY is open until the writer ends it (a dropped writer aborts it). So the
    /// server's transaction status is not taken as current until then.
    pub(crate) fn settle_keep<T>(&mut self, result: Result<T, Failure>) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(failure) => {
                let error = self.settle(None, "", &[], Err(failure));
                self.in_flight = true;
                error
            }
        }
    }

    /// Back to idle after a successful reset.
    pub(crate) fn reset(&mut self) {
        self.in_flight = false;
        self.failed = false;
        self.opened = false;
        self.broken = false;
    }

    /// Ends an operation: maps its error, records what it did to the session, and invalidates
    /// statements the server no longer accepts.
    pub(crate) fn settle<T>(
        &mut self,
        statements: Option<&mut Statements>,
        sql: &str,
        effects: &[TxnEffect],
        result: Result<T, Failure>,
    ) -> Result<T, Error> {
        self.in_flight = false;
        let opened = std::mem::take(&mut self.opened);
        match result {
            Ok(value) => {
                // As the transaction stood when the statement started: PostgreSQL answers COMMIT
                // of a failed transaction with a silent ROLLBACK, reported here as an error.
                let was_failed = self.failed;
                let mut rolled_back = false;
                for effect in effects {
                    rolled_back |= was_failed && *effect == TxnEffect::Commit;
                    self.failed = false;
                }
                if rolled_back {
                    return Err(rolled_back_error());
                }
                Ok(value)
            }
            Err(failure) => {
                let (error, fate) = match failure {
                    Failure::Pg(e) => error::map(e),
                    Failure::Any(e) => (e, Fate::Untouched),
                };
                let fate = if self.discard_on_read_only && is_read_only_refusal(&error) {
                    Fate::Broken
                } else {
                    fate
                };
                match fate {
                    Fate::Broken => self.broken = true,
                    Fate::StatementFailed => {
                        if effects.len() > 1 {
                            // Several transaction-control statements in one string, one of which
                            // may not have run: assume the worst until the server says.
                            self.failed = true;
                        } else if effects
                            .iter()
                            .any(|e| matches!(e, TxnEffect::Commit | TxnEffect::Rollback))
                        {
                            self.failed = false;
                        } else if opened || self.server.txn_status() != TxnStatus::Idle {
                            // The last status read, from before this statement (or its own).
                            self.failed = true;
                        }
                        if let Some(statements) = statements {
                            match error.code() {
                                // "cached plan must not change result type": the table changed.
                                Some("0A000") => statements.forget(sql),
                                // A prepared statement vanished (DISCARD ALL, DEALLOCATE ALL).
                                Some("26000") => statements.clear(),
                                _ => {}
                            }
                        }
                    }
                    Fate::Untouched => {}
                }
                Err(error)
            }
        }
    }
}

/// Whether `error` is the server refusing a write because the session is read-only (`25006`
/// read_only_sql_transaction): what a demoted primary, now a standby, answers.
pub(crate) fn is_read_only_refusal(error: &Error) -> bool {
    error.code() == Some("25006")
}

pub(crate) fn is_query_canceled<T>(result: &Result<T, tokio_postgres::Error>) -> bool {
    result
        .as_ref()
        .err()
        .and_then(tokio_postgres::Error::code)
        .map(|c| c.code())
        == Some("57014")
}

pub(crate) fn rolled_back_error() -> Error {
    Error::database(DatabaseError::new(
        "the transaction was rolled back, not committed, because a statement in it failed; handle \
         that statement's error and retry the whole transaction",
        Some("25P02".to_owned()),
    ))
}
