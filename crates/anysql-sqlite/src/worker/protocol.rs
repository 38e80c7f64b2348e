//! What the caller's side sends the worker ([`Command`]) and what comes back ([`Response`]).

use super::*;

/// A reply carrying a result.
pub(crate) type Reply<T> = reply::Sender<Result<T, Error>>;

/// A chunk of a streamed result, or the error that ends it.
pub(crate) type Chunk = Result<StreamChunk, Error>;

/// Rows of a streamed result; the first chunk also brings the result's columns.
#[derive(Debug)]
pub(crate) struct StreamChunk {
    pub(crate) columns: Option<Arc<Columns>>,
    pub(crate) rows: RowBatch,
}

/// Rows of a streamed result, a chunk at a time.
pub(crate) type ChunkSender = async_channel::Sender<Chunk>;

/// What the worker answers to a command, posted in the connection's [`Mailbox`] under the
/// command's sequence number.
#[allow(clippy::large_enum_variant)] // A single fetched row travels inline: see `FetchedRows`.
pub(crate) enum Response {
    /// Rows changed, by an `execute_many`.
    Count(u64),
    /// Rows changed by an `execute`, and whether it was quick enough for the statement's next
    /// `execute` to run inline (see [`Worker::run_inline`]).
    Executed { rows: u64, quick: bool },
    /// Rows fetched: the last (or only) reply to a fetch.
    Fetched(Fetched),
    /// Some rows of a large fetch, with more replies to come.
    Partial(Fetched),
    /// Done, nothing to say.
    Done,
    /// What a `run_sync` closure returned.
    Any(Box<dyn Any + Send>),
}

/// User code for `run_sync`, returning its result boxed.
pub(crate) type Job = Box<dyn FnOnce(&mut rusqlite::Connection) -> Box<dyn Any + Send> + Send>;

/// Work for the worker thread. Every command but `Stream` and `Close` is answered in the mailbox
/// under its `seq`.
pub(crate) enum Command {
    /// Runs a statement (or, without parameters, a script) and counts the rows it changed.
    Execute {
        seq: u64,
        sql: Sql,
        params: CommandParams,
    },
    /// Runs a statement once per parameter set, atomically: one part of an `execute_many`, whose
    /// sets come in several commands under one `seq` so that the worker runs the first while the
    /// caller prepares the next. Only the last part is answered.
    ExecuteMany {
        seq: u64,
        sql: Sql,
        sets: FlatParams,
        part: BatchPart,
    },
    /// Runs a query and collects up to `limit` rows. `known_columns` is the version of the
    /// statement's columns the caller has (0 for none). With `pipelined`, rows go back in
    /// [`Response::Partial`] batches as they are read, before the final [`Response::Fetched`].
    Fetch {
        seq: u64,
        sql: Sql,
        known_columns: u64,
        params: CommandParams,
        limit: usize,
        pipelined: bool,
    },
    /// Runs a query and sends its rows in chunks of `chunk` rows until done or until the receiver
    /// is gone.
    Stream {
        seq: u64,
        sql: Sql,
        params: CommandParams,
        chunk: usize,
        rows: ChunkSender,
    },
    /// Housekeeping.
    Control { seq: u64, op: Control },
    /// Runs user code on the connection.
    Run { seq: u64, job: Job },
    /// Closes the connection and ends the thread.
    Close { reply: Reply<()> },
    /// Wakes the thread, asleep without a timeout, to end a point read left lingering in time
    /// (see [`Shared::sleeps_through_lingering`]). Handles nothing else.
    Wake,
}

impl Command {
    /// The sequence number that handling this command completes: every command's own, except
    /// that only the last part of an `execute_many` completes it.
    pub(super) fn completes(&self) -> Option<u64> {
        match self {
            Command::Execute { seq, .. }
            | Command::Fetch { seq, .. }
            | Command::Stream { seq, .. }
            | Command::Control { seq, .. }
            | Command::Run { seq, .. } => Some(*seq),
            Command::ExecuteMany { seq, part, .. } => part.last.then_some(*seq),
            Command::Close { .. } | Command::Wake => None,
        }
    }
}

/// The most parameters a command carries inline.
const INLINE_PARAMS: usize = 4;

/// A command's parameters, up to [`INLINE_PARAMS`] of them inline: a typical statement's
/// parameters then cross to the worker with no heap block for the worker to free (memory freed on
/// another thread than the one that allocated it takes the allocator's slow paths on both).
pub(crate) enum CommandParams {
    Inline {
        len: usize,
        values: [Value; INLINE_PARAMS],
    },
    Heap(Vec<Value>),
}

impl From<Vec<Value>> for CommandParams {
    fn from(mut params: Vec<Value>) -> Self {
        if params.len() > INLINE_PARAMS {
            return CommandParams::Heap(params);
        }
        let len = params.len();
        let mut values: [Value; INLINE_PARAMS] = std::array::from_fn(|_| Value::Null);
        for (slot, value) in values.iter_mut().zip(params.drain(..)) {
            *slot = value;
        }
        // The emptied vector is freed here, on the caller's thread.
        CommandParams::Inline { len, values }
    }
}

impl std::ops::Deref for CommandParams {
    type Target = [Value];

    fn deref(&self) -> &[Value] {
        match self {
            CommandParams::Inline { len, values } => &values[..*len],
            CommandParams::Heap(values) => values,
        }
    }
}

/// Where a command of an `execute_many` stands in the whole batch.
#[derive(Debug)]
pub(crate) struct BatchPart {
    /// The batch index of the part's first set (for error messages).
    pub(crate) offset: usize,
    pub(crate) last: bool,
    /// The caller could not prepare the rest of the batch: undo it and answer with this error.
    pub(crate) failed: Option<Error>,
}

/// A housekeeping operation. (Transaction control comes as statements: see
/// [`TxnControl`].)
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// Rolls back any open transaction.
    Reset,
    Ping,
}
