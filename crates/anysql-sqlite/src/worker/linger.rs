//! Point reads that keep their read transaction open until the connection's next statement
//! ([`Worker::end_lingering`]), and what bounds them: the connection's thread ends one that has
//! been left alone for [`LINGER_LIMIT`] (each newer one starts the wait again), and the engine's
//! [`WalWatch`] stops them while the write-ahead log waits to be checkpointed. The watch sees the
//! commits of the engine's own connections only: another process's log can be held back by them
//! as by any reader that never stops.
//!
//! Why: in WAL mode a read transaction takes a shared lock on one of the log's read marks, and
//! SQLite's unix VFS takes and drops that lock with `fcntl` (under a mutex of the process) only
//! when no other connection of the process holds it. Readers that overlap share the lock and skip
//! both; readers that take turns (two executor threads running four connections' reads, say) pay
//! both every time, and contend on the mutex while the system call runs. A read that lingers until
//! the connection's next statement keeps the lock held between reads, so the connections reading
//! beside it find it held. See the crate docs, Inline statements.

use super::*;

/// The longest a point read keeps its read transaction open after its reply while its connection
/// runs nothing else: the connection's thread then ends it ([`Idle`]). A lingering read holds a
/// read mark of the write-ahead log, which a checkpoint cannot copy back past.
pub(crate) const LINGER_LIMIT: Duration = Duration::from_millis(1);

/// What the connections of one engine know about the database's write-ahead log.
#[derive(Debug, Default)]
pub(crate) struct WalWatch {
    /// Whether the log has reached [`CHECKPOINT_FRAMES`] and not yet started over: its
    /// checkpoint is due or under way.
    checkpoint_pending: AtomicBool,
}

impl WalWatch {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Notes the log's length after a commit (from the WAL hook of any of the engine's
    /// connections).
    pub(super) fn note_frames(&self, frames: i32) {
        let pending = frames >= CHECKPOINT_FRAMES;
        if self.checkpoint_pending.load(Ordering::Relaxed) != pending {
            self.checkpoint_pending.store(pending, Ordering::Relaxed);
        }
    }

    /// Whether a point read may keep its read transaction open. Not while the log waits for its
    /// checkpoint: the checkpoint can only copy back the frames that no reader's mark holds, and
    /// the log starts over (instead of growing) only once a checkpoint has copied all of them.
    pub(super) fn readers_may_linger(&self) -> bool {
        !self.checkpoint_pending.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// Whether a point read lingers while the connection's thread sleeps without a timeout: the
    /// caller then wakes it ([`Command::Wake`]), so that it ends the read in time.
    pub(crate) fn sleeps_through_lingering(&self) -> bool {
        self.lingering.load(Ordering::SeqCst) && self.asleep.load(Ordering::SeqCst)
    }

    /// Whether a point read lingers now, for tests.
    #[cfg(test)]
    pub(crate) fn is_lingering(&self) -> bool {
        self.lingering.load(Ordering::SeqCst)
    }
}

impl Worker {
    /// Ends the point read left lingering, if any, by resetting its statement: its read
    /// transaction ends, and the next statement sees the database as it is now. Runs before
    /// everything else the connection does.
    pub(crate) fn end_lingering(&mut self) {
        let Some(id) = self.lingering.take() else {
            return;
        };
        self.shared.lingering.store(false, Ordering::Relaxed);
        let reset = self
            .statements
            .resolve(Sql::Known(id))
            .ok()
            .and_then(|(_, text)| self.conn.prepare_cached(&text).ok())
            .map(|mut stmt| drop(stmt.raw_query()));
        if reset.is_none() {
            // Cannot happen (the statement is in both caches until the next statement runs), but
            // finalizing every cached statement ends the transaction just as well.
            self.conn.flush_prepared_statement_cache();
        }
    }

    /// Whether a point read running inline may keep its read transaction open after its row: in
    /// autocommit mode on a database in WAL mode (a transaction keeps its own read open anyway;
    /// in other journal modes, a lingering read would keep writers out), and the log does not
    /// wait for a checkpoint.
    pub(super) fn may_linger(&self) -> bool {
        self.wal && self.conn.is_autocommit() && self.wal_watch.readers_may_linger()
    }
}
