//! This connection's turn to write ([`Writes`]), through the connector's writer gate (see
//! [`crate::gate`]).

use super::*;

/// This connection's turn to write, through the connector's writer gate.
pub(super) struct Writes {
    /// `None` with `writer_gate=false`.
    pub(super) gate: Option<Arc<WriterGate>>,
    /// Held from the first write (or `BEGIN IMMEDIATE`) until the connection is back in
    /// autocommit mode: see [`Worker::settle`].
    pub(super) held: Option<GateHeld>,
}

impl Writes {
    /// Waits for this connection's turn to write, unless it has it already (or there is no gate).
    /// Fails with a cancellation error if `gave_up` says so before the turn comes.
    pub(super) fn take(&mut self, gave_up: impl Fn() -> bool) -> Result<(), Error> {
        if self.held.is_some() {
            return Ok(());
        }
        let Some(gate) = &self.gate else {
            return Ok(());
        };
        self.held = Some(gate.enter(gave_up).ok_or_else(error::cancelled)?);
        Ok(())
    }

    /// Takes this connection's turn to write only if it can without waiting: whether it has it.
    pub(super) fn try_take(&mut self) -> bool {
        if self.held.is_some() {
            return true;
        }
        let Some(gate) = &self.gate else {
            return true;
        };
        self.held = gate.try_enter();
        self.held.is_some()
    }

    /// [`take`](Self::take) for a statement that writes; a read-only one never touches the gate.
    pub(super) fn take_for(
        &mut self,
        stmt: &rusqlite::Statement<'_>,
        shared: &Shared,
        seq: u64,
    ) -> Result<(), Error> {
        if stmt.readonly() {
            return Ok(());
        }
        self.take(|| shared.is_cancelled(seq))
    }
}

impl Worker {
    /// Whether an `execute` may run inline as far as writing goes: inside a transaction that holds
    /// the writer gate already, or in autocommit mode once the gate was taken without waiting (no
    /// other writer holds it or waits for it).
    pub(super) fn may_write_inline(&mut self) -> bool {
        if self.writes.held.is_some() {
            return true;
        }
        self.outside_transaction() && self.writes.try_take()
    }
}
