//! What the driver records of a session's transaction between statements ([`Session`]), and how
//! an operation's outcome updates it.

use anysql_core::{DatabaseError, Error};

use crate::error::{self, Fate};
use crate::sql::TxnEffect;
use crate::statements::{Failure, Statements};

/// What the driver knows about the session's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Txn {
    /// Autocommit: no transaction block is open.
    Idle,
    /// A transaction block is open.
    Active,
    /// The raw client was used directly; the state is unknown.
    Unknown,
}

/// Per-connection bookkeeping.
#[derive(Debug)]
pub(crate) struct Session {
    /// An operation started and has not finished (its future may have been dropped).
    pub(crate) in_flight: bool,
    pub(crate) txn: Txn,
    /// A statement failed inside the open transaction, so PostgreSQL will roll it back.
    pub(crate) txn_failed: bool,
    /// The connection is known to be unusable.
    pub(crate) broken: bool,
}

impl Session {
    pub(crate) fn start(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::connection(
                "the connection is broken; drop it and acquire another from the engine",
            ));
        }
        self.in_flight = true;
        Ok(())
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
        match result {
            Ok(value) => {
                let was_failed = self.txn_failed && self.txn == Txn::Active;
                let mut rolled_back = false;
                for effect in effects {
                    match effect {
                        TxnEffect::Begin => {
                            self.txn = Txn::Active;
                            self.txn_failed = false;
                        }
                        TxnEffect::Commit => {
                            rolled_back |= was_failed;
                            self.txn = Txn::Idle;
                            self.txn_failed = false;
                        }
                        TxnEffect::Rollback => {
                            self.txn = Txn::Idle;
                            self.txn_failed = false;
                        }
                        TxnEffect::Recover => self.txn_failed = false,
                    }
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
                match fate {
                    Fate::Broken => self.broken = true,
                    Fate::StatementFailed => {
                        if effects.len() > 1 {
                            // Several transaction-control statements in one string, one of which
                            // may not have run: the state is anyone's guess.
                            self.txn = Txn::Unknown;
                            self.txn_failed = true;
                        } else if effects
                            .iter()
                            .any(|e| matches!(e, TxnEffect::Commit | TxnEffect::Rollback))
                        {
                            self.txn = Txn::Idle;
                            self.txn_failed = false;
                        } else if self.txn != Txn::Idle {
                            self.txn_failed = true;
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
