//! `execute_many` on the worker: a batch arrives in parts, runs as one transaction (or one
//! savepoint inside the caller's), and is undone entirely if any part fails.

use super::*;

impl Worker {
    /// Runs one part of an `execute_many`. The first part opens a transaction (a savepoint inside
    /// the caller's transaction), so that the batch applies entirely or not at all; errors are kept
    /// in the batch, for [`finish_batch`](Self::finish_batch) to report after the last part.
    pub(super) fn execute_many(
        &mut self,
        seq: u64,
        sql: &str,
        sets: &FlatParams,
        part: BatchPart,
    ) -> Result<(), Error> {
        if part.offset == 0 {
            if let Some(stale) = self.batch.take() {
                // A batch whose last part never came (cannot happen: the caller sends every part
                // at once): undo it before starting another.
                self.undo_execute_many(stale.outer);
            }
            let outer = self.conn.is_autocommit();
            let shared = &self.shared;
            self.writes.take(|| shared.is_cancelled(seq))?;
            self.simple(if outer {
                "BEGIN IMMEDIATE"
            } else {
                "SAVEPOINT anysql_execute_many"
            })?;
            self.batch = Some(Batch {
                seq,
                outer,
                total: 0,
                failed: None,
            });
        }
        if let Some(e) = part.failed {
            return Err(e);
        }
        match &self.batch {
            Some(batch) if batch.seq == seq && batch.failed.is_none() => {}
            // The batch failed already: skip the rest of it.
            Some(batch) if batch.seq == seq => return Ok(()),
            _ => return Err(lost_batch()),
        }
        let changed = self.execute_sets(seq, sql, sets, part.offset)?;
        if let Some(batch) = &mut self.batch {
            batch.total += changed;
        }
        Ok(())
    }

    /// Records that batch `seq` failed, undoing what it did.
    pub(super) fn fail_batch(&mut self, seq: u64, error: Error) {
        match &mut self.batch {
            Some(batch) if batch.seq == seq => {
                if batch.failed.is_none() {
                    let outer = batch.outer;
                    batch.failed = Some(error);
                    self.undo_execute_many(outer);
                }
            }
            // It failed before it started (its transaction could not be opened).
            _ => {
                self.batch = Some(Batch {
                    seq,
                    outer: true,
                    total: 0,
                    failed: Some(error),
                })
            }
        }
    }

    /// Ends batch `seq` after its last part: commits it, or reports why it failed. The caller
    /// settles the writer gate afterwards.
    pub(super) fn finish_batch(&mut self, seq: u64) -> Result<u64, Error> {
        let batch = match self.batch.take() {
            Some(batch) if batch.seq == seq => batch,
            _ => return Err(lost_batch()),
        };
        if let Some(e) = batch.failed {
            return Err(e);
        }
        let result = self.simple(if batch.outer {
            "COMMIT"
        } else {
            "RELEASE anysql_execute_many"
        });
        match result {
            Ok(()) => Ok(batch.total),
            Err(e) => {
                self.undo_execute_many(batch.outer);
                Err(e)
            }
        }
    }

    fn execute_sets(
        &mut self,
        seq: u64,
        sql: &str,
        sets: &FlatParams,
        offset: usize,
    ) -> Result<u64, Error> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(from_rusqlite)?;
        self.statements.note_if_fresh(&stmt);
        let mut total = 0;
        for i in 0..sets.len() {
            if self.shared.is_cancelled(seq) {
                return Err(error::cancelled());
            }
            let context = |e: Error| e.context(format_args!("parameter set {}", offset + i));
            sets.bind(i, &mut stmt).map_err(context)?;
            total += step_to_end(&self.conn, &self.shared, seq, &mut stmt).map_err(context)?;
        }
        Ok(total)
    }

    pub(super) fn undo_execute_many(&mut self, outer: bool) {
        if self.conn.is_autocommit() {
            // SQLite already rolled everything back (or the commit went through and failed after).
            return;
        }
        if outer {
            let _ = self.simple("ROLLBACK");
        } else if self.simple("ROLLBACK TO anysql_execute_many").is_ok() {
            let _ = self.simple("RELEASE anysql_execute_many");
        }
    }
}

fn lost_batch() -> Error {
    Error::connection(
        "the sqlite connection lost track of an execute_many batch (a bug in anysql-sqlite); \
         drop this connection",
    )
}
