//! [`PgSocket`]: the runtime's socket as tokio-postgres reads it, with a read-ahead buffer that
//! busy-polling fills by reading the socket directly.
//!
//! While a caller waits for a reply, [`Io::poll_with`](crate::io::Io::poll_with) reads the socket
//! straight from the operating system ([`Socket::try_read_direct`](anysql_core::Socket::try_read_direct)) into the read-ahead, instead
//! of letting its thread sleep until the runtime's reactor reports the socket readable. The
//! connection then reads the read-ahead first, so the bytes reach tokio-postgres in the order the
//! server sent them, whichever way they were read.
//!
//! In *direct mode*, which only `poll_with` turns on and only while it busy-polls, a read that
//! finds the socket empty returns `Pending` without registering with the reactor: nobody sleeps
//! on it, and on async-io no reactor thread is woken for a reply that the spinning thread reads
//! itself. Before `poll_with` lets its task sleep, it turns direct mode off and polls the
//! connection once more, which registers the waker as usual.
//!
//! Every byte handed to tokio-postgres also passes [`Frames`], which follows the backend's message
//! framing (a type byte, then a 4-byte big-endian length that counts itself) and remembers what
//! tokio-postgres does not expose: the transaction status of the last ReadyForQuery (`Z`) message,
//! and whether the server waits for COPY data. Every byte tokio-postgres writes passes another
//! [`Frames`], which counts the requests that the server answers with a ReadyForQuery (`Query`,
//! `Sync`), so that the status is known to be current only when every one was answered. Both look
//! at the 5 header bytes of each message and skip its body in one step, so their cost is per
//! message, not per byte.
//!
//! A transaction's deferred `BEGIN` travels here ([`SocketHandle::arm_begin`]): written as Parse,
//! Bind and Execute of the unnamed statement, with no Sync, right before the next Parse or Bind
//! message tokio-postgres writes (the first statement of the transaction), so that both reach the
//! server in one write and one implicit block: if `BEGIN` fails, the server skips the statement up
//! to its Sync and the statement's request receives `BEGIN`'s error. Its three replies
//! (ParseComplete, BindComplete, CommandComplete) are taken out of the stream before
//! tokio-postgres reads it, which therefore sees exactly the replies of its own requests; what
//! became of the `BEGIN` is kept for [`SocketHandle::take_begin`].
//!
//! Requests can be joined into one implicit block here too ([`SocketHandle::join_next`], the
//! pipeline of [`Transaction::commit_with`](anysql_core::Transaction::commit_with)): the Syncs of
//! all but the last are taken out of the write, so that the server answers the block with one
//! write at its end, and [`Join`] puts into the read stream the ReadyForQuery messages (and, after
//! a failure, the errors of the requests the server skipped) that tokio-postgres waits for.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use anysql_core::BoxSocket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod join;
use join::Join;

/// How many bytes one direct read takes at most: a point query's reply is about 100 bytes; a
/// larger reply is read on by the connection itself once it has started.
const READ_AHEAD: usize = 8 * 1024;

/// The socket handed to tokio-postgres.
pub(crate) struct PgSocket {
    shared: Arc<Shared>,
}

/// The side of [`PgSocket`] that [`Io`](crate::io::Io) keeps.
#[derive(Clone)]
pub(crate) struct SocketHandle {
    shared: Arc<Shared>,
}

struct Shared {
    /// Only ever locked by the task polling the connection (and by `Drop`/`probe`, which never
    /// run beside it), so the lock is never contended.
    state: Mutex<State>,
    /// The transaction status byte of the last ReadyForQuery message read: `I` idle, `T` in a
    /// transaction block, `E` in a failed one. `I` until the first one arrives.
    status: AtomicU8,
    /// Whether the server is in COPY FROM STDIN mode, waiting for data: from its CopyInResponse
    /// (or CopyBothResponse) until the client writes CopyDone or CopyFail. tokio-postgres' own
    /// COPY API always ends it; a COPY started through a query method never does.
    copy_in: AtomicBool,
    /// How many ReadyForQuery messages the requests written so far will bring (the startup's one
    /// included), and how many were read.
    readies_owed: AtomicU64,
    readies_read: AtomicU64,
}

/// The transaction status the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnStatus {
    /// No transaction block is open (`I`).
    Idle,
    /// A transaction block is open (`T`).
    InTransaction,
    /// A transaction block is open and a statement in it failed (`E`).
    Failed,
}

/// Follows the message framing of one direction of the stream, in whatever pieces it comes.
#[derive(Debug)]
struct Frames {
    /// Which direction: what the server sends, or what the client writes.
    backend: bool,
    /// The header of the current message: type byte and length. The client's first message
    /// (the startup message) has no type byte: its header is stored from `header[1]`.
    header: [u8; 5],
    /// How many header bytes have been read (`0..5`); only while `body` is 0.
    have: usize,
    /// How many bytes of the current message's body are still to come.
    body: usize,
    /// The next body byte is the status byte of a ReadyForQuery message.
    status_next: bool,
    /// The type of the previous message.
    previous: u8,
    /// The current message is a deferred `BEGIN`'s reply, taken out of the stream.
    dropping: bool,
}

impl Frames {
    /// The server's messages.
    fn backend() -> Self {
        Frames {
            backend: true,
            header: [0; 5],
            have: 0,
            body: 0,
            status_next: false,
            previous: 0,
            dropping: false,
        }
    }

    /// The client's messages, from the untyped startup message on.
    fn frontend() -> Self {
        Frames {
            backend: false,
            header: [0; 5],
            have: 1,
            body: 0,
            status_next: false,
            previous: 0,
            dropping: false,
        }
    }

    /// Where in `bytes`, the next bytes of the client's stream, the first message whose type
    /// byte `wanted` accepts starts, if one does. Nothing is recorded.
    fn find(&self, bytes: &[u8], wanted: impl Fn(u8) -> bool) -> Option<usize> {
        let mut found = None;
        self.visit(bytes, |at, kind| {
            if wanted(kind) {
                found = Some(at);
            }
            found.is_none()
        });
        found
    }

    /// Calls `each` with the offset and type of every message that starts in `bytes`, the next
    /// bytes of the stream (without following them), while it returns `true`.
    fn visit(&self, bytes: &[u8], mut each: impl FnMut(usize, u8) -> bool) {
        let (mut header, mut have, mut body) = (self.header, self.have, self.body);
        let mut i = 0;
        while i < bytes.len() {
            if body > 0 {
                let n = body.min(bytes.len() - i);
                body -= n;
                i += n;
                continue;
            }
            if have == 0 && !each(i, bytes[i]) {
                return;
            }
            let n = (5 - have).min(bytes.len() - i);
            header[have..have + n].copy_from_slice(&bytes[i..i + n]);
            have += n;
            i += n;
            if have < 5 {
                break;
            }
            have = 0;
            let [_, a, b, c, d] = header;
            body = (u32::from_be_bytes([a, b, c, d]) as usize).saturating_sub(4);
        }
    }

    /// [`observe`](Self::observe) for the server's messages, taking the replies of a deferred
    /// `BEGIN` (see [`BeginSlot`]) out of `bytes`: the bytes kept move to the front, and their
    /// length is returned.
    ///
    /// While requests joined into one block are answered (see [`Join`]), it also writes into
    /// `due` the replies the server does not send; `Some(i)` then says that they go before
    /// `bytes[i..]`, which was not looked at and is handed on after them.
    fn observe_replies(
        &mut self,
        bytes: &mut [u8],
        shared: &Shared,
        begin: &mut BeginSlot,
        join: &mut Join,
        due: &mut Vec<u8>,
    ) -> (usize, Option<usize>) {
        if !matches!(begin, BeginSlot::Sent { .. })
            && !matches!(join, Join::Open { .. })
            && due.is_empty()
            && !self.dropping
        {
            self.observe(bytes, shared);
            return (bytes.len(), None);
        }
        let mut kept = 0;
        let mut i = 0;
        while i < bytes.len() {
            let at_start = self.body == 0 && self.have == 0;
            if at_start {
                if !due.is_empty() {
                    return (kept, Some(i));
                }
                join.answer(bytes[i], shared, due);
                self.dropping = false;
                if let BeginSlot::Sent { after, seen } = begin {
                    if shared.readies_read.load(Ordering::Acquire) >= *after {
                        match bytes[i] {
                            kind if kind == BEGIN_REPLIES[*seen] => {
                                self.dropping = true;
                                *seen += 1;
                                if *seen == BEGIN_REPLIES.len() {
                                    *begin = BeginSlot::Done(BeginOutcome::Succeeded);
                                }
                            }
                            b'E' => *begin = BeginSlot::Done(BeginOutcome::Failed),
                            // NoticeResponse, NotificationResponse, ParameterStatus: anytime.
                            b'N' | b'A' | b'S' => {}
                            _ => *begin = BeginSlot::Done(BeginOutcome::Confused),
                        }
                    }
                }
            }
            // One step: the rest of the header, or of the body, at most.
            let step = if self.body > 0 {
                self.body.min(bytes.len() - i)
            } else {
                (5 - self.have).min(bytes.len() - i)
            };
            self.observe(&bytes[i..i + step], shared);
            if !self.dropping {
                bytes.copy_within(i..i + step, kept);
                kept += step;
            }
            i += step;
        }
        if self.body == 0 && self.have == 0 {
            self.dropping = false;
            if !due.is_empty() {
                return (kept, Some(bytes.len()));
            }
        }
        (kept, None)
    }

    /// Follows `bytes`, the next bytes of the stream, publishing what it learns into `shared`.
    fn observe(&mut self, mut bytes: &[u8], shared: &Shared) {
        while !bytes.is_empty() {
            if self.body > 0 {
                if self.status_next {
                    self.status_next = false;
                    shared.status.store(bytes[0], Ordering::Release);
                    shared.readies_read.fetch_add(1, Ordering::AcqRel);
                }
                let n = self.body.min(bytes.len());
                self.body -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 5 {
                break;
            }
            self.have = 0;
            let [kind, a, b, c, d] = self.header;
            let length = u32::from_be_bytes([a, b, c, d]) as usize;
            self.body = length.saturating_sub(4);
            let previous = std::mem::replace(&mut self.previous, kind);
            match (self.backend, kind) {
                (true, b'Z') => self.status_next = self.body > 0,
                // CopyInResponse, CopyBothResponse.
                (true, b'G' | b'W') => {
                    shared.copy_in.store(true, Ordering::Release);
                    if previous == b'2' {
                        // After a BindComplete: a COPY of the extended protocol, whose Execute
                        // was followed by a Sync, which the server ignores in COPY IN mode. Its
                        // ReadyForQuery comes after the Sync that follows CopyDone or CopyFail.
                        shared.readies_owed.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                // CopyDone, CopyFail.
                (false, b'c' | b'f') => shared.copy_in.store(false, Ordering::Release),
                // Query, Sync and FunctionCall end with a ReadyForQuery, except a Sync in COPY IN
                // mode.
                (false, b'S') if shared.copy_in.load(Ordering::Acquire) => {}
                (false, b'Q' | b'S' | b'F') => {
                    shared.readies_owed.fetch_add(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
    }
}

struct State {
    socket: BoxSocket,
    /// Bytes read directly and not yet handed to the connection: `ahead[start..end]`.
    ahead: Box<[u8]>,
    start: usize,
    end: usize,
    /// Direct mode: see the module docs.
    direct: bool,
    /// Whether this socket can read directly at all (learnt on the first try).
    supported: bool,
    /// The server's messages, as read.
    frames: Frames,
    /// The client's messages, as written.
    requests: Frames,
    /// A deferred `BEGIN` and its progress.
    begin: BeginSlot,
    /// Requests joined into one implicit block, and their progress.
    join: Join,
    /// Replies that [`Join`] stands in for the server, to hand on at the next message boundary.
    due: Vec<u8>,
    /// Bytes the connection handed over that the socket has not taken yet (the rest of a joined
    /// write): written before anything else.
    unwritten: Vec<u8>,
}

/// The progress of a deferred `BEGIN` (see the module docs).
#[derive(Debug)]
enum BeginSlot {
    /// None.
    Empty,
    /// To be written before the next Parse or Bind message; `written` bytes of it already are.
    Armed { message: Vec<u8>, written: usize },
    /// Written; its replies come after the `after`-th ReadyForQuery, and `seen` of its three
    /// have been taken out of the stream.
    Sent { after: u64, seen: usize },
    /// Answered.
    Done(BeginOutcome),
}

/// What a deferred `BEGIN` has come to, as [`SocketHandle::take_begin`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BeginProgress {
    /// Nothing was armed.
    Idle,
    /// Armed, and not a byte of it written: no statement has been written since.
    NotWritten,
    /// Written (or being written), not answered yet.
    Awaiting,
    /// Answered.
    Done(BeginOutcome),
}

/// How the server answered a deferred `BEGIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BeginOutcome {
    /// The transaction is open.
    Succeeded,
    /// An ErrorResponse came instead: the transaction did not start and the statement sent with
    /// it did not run (the error went to that statement's request).
    Failed,
    /// A reply that cannot be `BEGIN`'s: the session is out of step.
    Confused,
}

/// The replies of a deferred `BEGIN`, in order: ParseComplete, BindComplete, CommandComplete.
const BEGIN_REPLIES: [u8; 3] = [b'1', b'2', b'C'];

/// The Parse, Bind and Execute messages (unnamed statement and portal, no Sync) of `sql`.
fn begin_messages(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 40);
    let mut message = |kind: u8, body: &[u8]| {
        out.push(kind);
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
    };
    // Parse: statement name "", the query, no parameter types.
    let mut parse = Vec::with_capacity(sql.len() + 4);
    parse.push(0);
    parse.extend_from_slice(sql.as_bytes());
    parse.push(0);
    parse.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &parse);
    // Bind: portal "", statement "", no parameter formats, no parameters, no result formats.
    message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    // Execute: portal "", no row limit.
    message(b'E', &[0, 0, 0, 0, 0]);
    out
}

/// What one direct read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Bytes (or the end of the stream, or an error) are there for the connection to read.
    Ready,
    /// Nothing yet.
    Empty,
    /// The socket cannot be read directly.
    Unsupported,
}

impl PgSocket {
    /// Wraps `socket`, returning the wrapper for tokio-postgres and the handle for busy-polling.
    pub(crate) fn new(socket: BoxSocket) -> (PgSocket, SocketHandle) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                socket,
                ahead: Box::default(),
                start: 0,
                end: 0,
                direct: false,
                supported: true,
                frames: Frames::backend(),
                requests: Frames::frontend(),
                begin: BeginSlot::Empty,
                join: Join::None,
                due: Vec::new(),
                unwritten: Vec::new(),
            }),
            status: AtomicU8::new(b'I'),
            copy_in: AtomicBool::new(false),
            // The startup message is answered with one, without a Sync.
            readies_owed: AtomicU64::new(1),
            readies_read: AtomicU64::new(0),
        });
        (
            PgSocket {
                shared: Arc::clone(&shared),
            },
            SocketHandle { shared },
        )
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state inconsistent: every field is updated
    // in one step.
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SocketHandle {
    /// Turns direct mode on or off.
    pub(crate) fn set_direct(&self, on: bool) {
        lock(&self.shared).direct = on;
    }

    /// Reads what the operating system has into the read-ahead, without waiting.
    pub(crate) fn probe(&self) -> Probe {
        let mut state = lock(&self.shared);
        if !state.supported {
            return Probe::Unsupported;
        }
        if state.start < state.end {
            return Probe::Ready;
        }
        if state.ahead.is_empty() {
            state.ahead = vec![0; READ_AHEAD].into_boxed_slice();
        }
        let State { socket, ahead, .. } = &mut *state;
        match socket.try_read_direct(ahead) {
            None => {
                state.supported = false;
                Probe::Unsupported
            }
            Some(Ok(0)) => Probe::Ready, // the end of the stream: the connection reads it itself
            Some(Ok(n)) => {
                state.start = 0;
                state.end = n;
                Probe::Ready
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Probe::Empty,
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Probe::Empty,
            // An error: the connection reads it itself.
            Some(Err(_)) => Probe::Ready,
        }
    }

    /// Whether this socket can be read directly (as far as is known yet).
    pub(crate) fn supports_direct(&self) -> bool {
        lock(&self.shared).supported
    }

    /// The transaction status of the last ReadyForQuery message read from the server (idle until
    /// the first one). It is the server's own word: whatever SQL ran, `Idle` means autocommit.
    pub(crate) fn txn_status(&self) -> TxnStatus {
        match self.shared.status.load(Ordering::Acquire) {
            b'I' => TxnStatus::Idle,
            b'E' => TxnStatus::Failed,
            // `T`, and anything unknown: assume the worst, a transaction to roll back.
            _ => TxnStatus::InTransaction,
        }
    }

    /// Whether every request written so far has been answered with its ReadyForQuery, so that
    /// [`txn_status`](Self::txn_status) describes the session as it is now.
    pub(crate) fn settled(&self) -> bool {
        // Read before the requests owed: a request written in between only makes this `false`.
        let read = self.shared.readies_read.load(Ordering::Acquire);
        read >= self.shared.readies_owed.load(Ordering::Acquire)
    }

    /// Has `sql` (a `BEGIN`) written before the next Parse or Bind message, in the same implicit
    /// block (see the module docs). Call it only with every request answered and none queued,
    /// right before queueing the statement that carries it.
    pub(crate) fn arm_begin(&self, sql: &str) {
        lock(&self.shared).begin = BeginSlot::Armed {
            message: begin_messages(sql),
            written: 0,
        };
    }

    /// What became of the armed `BEGIN`. An answer, or an armed `BEGIN` not written at all, is
    /// taken (the slot is emptied); one in flight stays.
    pub(crate) fn take_begin(&self) -> BeginProgress {
        let mut state = lock(&self.shared);
        let progress = match &state.begin {
            BeginSlot::Empty => BeginProgress::Idle,
            BeginSlot::Armed { written: 0, .. } => BeginProgress::NotWritten,
            BeginSlot::Armed { .. } | BeginSlot::Sent { .. } => return BeginProgress::Awaiting,
            BeginSlot::Done(outcome) => BeginProgress::Done(*outcome),
        };
        state.begin = BeginSlot::Empty;
        progress
    }

    /// Has the next `requests` requests the connection writes joined into one implicit block
    /// (see [`Join`]), if they all go out in one write and none is answered before. Call it
    /// only inside a transaction, with every request written answered, right after queueing
    /// those requests and before the connection is polled again; each must be one statement of
    /// the extended protocol.
    pub(crate) fn join_next(&self, requests: usize) {
        if requests > 1 {
            lock(&self.shared).join = Join::Armed { requests };
        }
    }

    /// Forgets a join that was armed and not written.
    pub(crate) fn clear_join(&self) {
        let mut state = lock(&self.shared);
        if matches!(state.join, Join::Armed { .. }) {
            state.join = Join::None;
        }
    }

    /// Forgets any deferred `BEGIN`, once every request written has been answered.
    pub(crate) fn clear_begin(&self) {
        lock(&self.shared).begin = BeginSlot::Empty;
    }

    /// Whether the server waits for COPY data that nobody sends: a COPY FROM STDIN that the server
    /// started but the client never ended (tokio-postgres' query paths refuse the CopyInResponse
    /// and move on). The next request would be taken as COPY data, so the session is out of step
    /// and must be discarded.
    pub(crate) fn copy_in_open(&self) -> bool {
        self.shared.copy_in.load(Ordering::Acquire)
    }
}

impl State {
    /// One read for the connection: the read-ahead first, then the socket.
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let state = self;
        if state.start < state.end {
            let n = buf.remaining().min(state.end - state.start);
            let start = state.start;
            buf.put_slice(&state.ahead[start..start + n]);
            state.start += n;
            if state.start == state.end {
                state.start = 0;
                state.end = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if state.direct && state.supported {
            match state.socket.try_read_direct(buf.initialize_unfilled()) {
                Some(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Nothing there: `Io::poll_with` is spinning and polls again, and registers with
                // the reactor (direct mode off) before its task sleeps.
                Some(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Poll::Pending;
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => state.supported = false,
            }
        }
        Pin::new(&mut state.socket).poll_read(cx, buf)
    }
}

impl State {
    /// Puts the due replies, then `rest` (bytes read and not handed on yet), in front of the
    /// read-ahead, so that the connection reads them next: in the read-ahead's buffer where they
    /// fit before what it holds, else in a new one.
    fn hand_on_first(&mut self, rest: &[u8]) {
        let front = self.due.len() + rest.len();
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if front <= self.start || (self.start == 0 && self.end == 0 && front <= self.ahead.len()) {
            let at = self.start.saturating_sub(front);
            let due = self.due.len();
            self.ahead[at..at + due].copy_from_slice(&self.due);
            self.ahead[at + due..at + front].copy_from_slice(rest);
            self.end = if self.end == 0 { front } else { self.end };
            self.start = at;
        } else {
            let mut all = Vec::with_capacity((front + self.end - self.start).max(READ_AHEAD));
            all.extend_from_slice(&self.due);
            all.extend_from_slice(rest);
            all.extend_from_slice(&self.ahead[self.start..self.end]);
            let len = all.len();
            all.resize(len.max(READ_AHEAD), 0);
            self.ahead = all.into_boxed_slice();
            self.start = 0;
            self.end = len;
        }
        self.due.clear();
    }
}

impl AsyncRead for PgSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &*self.shared;
        let mut state = lock(shared);
        loop {
            let before = buf.filled().len();
            let result = state.read(cx, buf);
            let got = buf.filled().len() - before;
            let State {
                frames,
                begin,
                join,
                due,
                ..
            } = &mut *state;
            let (kept, rest) =
                frames.observe_replies(&mut buf.filled_mut()[before..], shared, begin, join, due);
            if let Some(at) = rest {
                state.hand_on_first(&buf.filled()[before + at..]);
            }
            buf.set_filled(before + kept);
            // Bytes that were all a `BEGIN`'s replies are not the end of the stream: read on.
            if got > 0 && kept == 0 && matches!(result, Poll::Ready(Ok(()))) {
                continue;
            }
            return result;
        }
    }
}

/// How much of the client's stream is copied behind an armed `BEGIN` so that both go out in one
/// write; a longer buffer follows in a write of its own.
const BEGIN_WITH_AT_MOST: usize = 16 * 1024;

impl State {
    /// Before a write of `buf`: writes the armed `BEGIN` if `buf` starts with the message it
    /// goes before, in the same write as (the start of) `buf` where it can.
    /// `Ready(Ok(Write::Only(k)))`: write `buf[..k]` now (the message starts at `k`);
    /// `Ready(Ok(Write::Done(n)))`: `n > 0` bytes of `buf` went out with the `BEGIN`.
    fn write_begin(
        &mut self,
        cx: &mut Context<'_>,
        shared: &Shared,
        buf: &[u8],
    ) -> Poll<io::Result<Write>> {
        let BeginSlot::Armed { message, written } = &mut self.begin else {
            return Poll::Ready(Ok(Write::Only(buf.len())));
        };
        let mut along = 0;
        if *written == 0 {
            match self.requests.find(buf, |kind| matches!(kind, b'P' | b'B')) {
                None => return Poll::Ready(Ok(Write::Only(buf.len()))),
                Some(0) => {}
                Some(k) => return Poll::Ready(Ok(Write::Only(k))),
            }
            if buf.len() <= BEGIN_WITH_AT_MOST {
                // One write for both: the server gets the statement with its BEGIN.
                let mut both = Vec::with_capacity(message.len() + buf.len());
                both.extend_from_slice(message);
                both.extend_from_slice(buf);
                match Pin::new(&mut self.socket).poll_write(cx, &both) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => {
                        *written = n.min(message.len());
                        along = n - *written;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        while *written < message.len() {
            match Pin::new(&mut self.socket).poll_write(cx, &message[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Its replies follow those of every request written before it.
        self.begin = BeginSlot::Sent {
            after: shared.readies_owed.load(Ordering::Acquire),
            seen: 0,
        };
        if along > 0 {
            self.requests.observe(&buf[..along], shared);
            return Poll::Ready(Ok(Write::Done(along)));
        }
        Poll::Ready(Ok(Write::Only(buf.len())))
    }
}

/// What [`State::write_begin`] leaves to do.
enum Write {
    /// Write this much of the buffer (all of it, or up to the message the `BEGIN` goes before).
    Only(usize),
    /// This much of the buffer went out with the `BEGIN`: report it written.
    Done(usize),
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &*self.shared;
        let mut state = lock(shared);
        std::task::ready!(state.write_unwritten(cx))?;
        if let Join::Armed { requests } = state.join {
            state.join = Join::None;
            if let Some(joined) = state.requests.joined(buf, requests) {
                return state.write_joined(cx, shared, buf, &joined, requests);
            }
        }
        let buf = match std::task::ready!(state.write_begin(cx, shared, buf)) {
            Ok(Write::Only(k)) => &buf[..k],
            Ok(Write::Done(n)) => return Poll::Ready(Ok(n)),
            Err(e) => return Poll::Ready(Err(e)),
        };
        let result = Pin::new(&mut state.socket).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            state.requests.observe(&buf[..n], shared);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let alone = {
            let state = lock(&self.shared);
            matches!(state.begin, BeginSlot::Armed { .. })
                || matches!(state.join, Join::Armed { .. })
                || !state.unwritten.is_empty()
        };
        if alone {
            // The first slice alone (a vectored write may write less than it is given), so that
            // the `BEGIN` goes in at a message boundary, the requests to join are seen whole,
            // and the rest of a joined write goes first.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let shared = &*self.shared;
        let mut state = lock(shared);
        let result = Pin::new(&mut state.socket).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = result {
            for buf in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(buf.len());
                state.requests.observe(&buf[..take], shared);
                n -= take;
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.shared).socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared);
        std::task::ready!(state.write_unwritten(cx))?;
        Pin::new(&mut state.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared);
        std::task::ready!(state.write_unwritten(cx))?;
        Pin::new(&mut state.socket).poll_shutdown(cx)
    }
}

impl fmt::Debug for PgSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("PgSocket")
            .field("socket", &state.socket)
            .field("read_ahead", &(state.end - state.start))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketHandle").finish_non_exhaustive()
    }
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use anysql_core::runtime::DirectSocket;
    use std::io::Write;
    use std::os::fd::AsFd;
    use tokio::io::AsyncReadExt;

    /// A `PgSocket` over one end of a Unix socket pair, and the other end.
    pub(super) fn pair() -> (PgSocket, SocketHandle, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let fd = ours.as_fd().try_clone_to_owned().unwrap();
        let _guard = RUNTIME.enter();
        let stream = tokio::net::UnixStream::from_std(ours).unwrap();
        let (socket, handle) = PgSocket::new(Box::new(DirectSocket::new(stream, Some(fd))));
        (socket, handle, theirs)
    }

    pub(super) static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
        std::sync::LazyLock::new(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap()
        });

    /// One backend message: type, length, body.
    pub(crate) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn frames_follow_ready_for_query_in_any_pieces() {
        let (_socket, handle, _peer) = pair();
        let mut stream = Vec::new();
        stream.extend(message(b'C', b"BEGIN\0"));
        stream.extend(message(b'Z', b"T"));
        stream.extend(message(b'D', &[0; 300]));
        // A data row whose bytes look like a ReadyForQuery must not fool it.
        stream.extend(message(b'D', &message(b'Z', b"I")));
        stream.extend(message(b'Z', b"E"));
        let expect = [TxnStatus::InTransaction, TxnStatus::Failed];
        for piece in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut frames = Frames::backend();
            handle.shared.status.store(b'I', Ordering::Release);
            let mut seen = Vec::new();
            for chunk in stream.chunks(piece) {
                let before = handle.txn_status();
                frames.observe(chunk, &handle.shared);
                if handle.txn_status() != before {
                    seen.push(handle.txn_status());
                }
            }
            // Status changes only ever at a `Z`; a chunk may hold several.
            assert_eq!(handle.txn_status(), TxnStatus::Failed, "pieces of {piece}");
            assert!(seen.iter().all(|s| expect.contains(s)), "pieces of {piece}");
            frames.observe(&message(b'Z', b"I"), &handle.shared);
            assert_eq!(handle.txn_status(), TxnStatus::Idle);
        }
        assert!(!handle.copy_in_open());
        Frames::backend().observe(&message(b'G', &[0, 0, 0]), &handle.shared);
        assert!(handle.copy_in_open());
        let mut requests = Frames::frontend();
        // The startup message (untyped: length, then body), then CopyData, then CopyDone.
        requests.observe(&[0, 0, 0, 8, 0, 3, 0, 0], &handle.shared);
        requests.observe(&message(b'd', b"1\n"), &handle.shared);
        assert!(handle.copy_in_open());
        requests.observe(&message(b'c', b""), &handle.shared);
        assert!(!handle.copy_in_open());
        // A CopyOutResponse ends by itself.
        Frames::backend().observe(&message(b'H', &[0, 0, 0]), &handle.shared);
        assert!(!handle.copy_in_open());
    }

    #[test]
    fn the_connection_reads_through_the_frames() {
        let (mut socket, handle, mut peer) = pair();
        peer.write_all(&message(b'Z', b"T")).unwrap();
        // Half through the read-ahead, half read by the connection itself.
        assert_eq!(handle.probe(), Probe::Ready);
        peer.write_all(&message(b'Z', b"I")[..3]).unwrap();
        let mut six = [0; 6];
        RUNTIME.block_on(socket.read_exact(&mut six)).unwrap();
        assert_eq!(handle.txn_status(), TxnStatus::InTransaction);
        peer.write_all(&message(b'Z', b"I")[3..]).unwrap();
        RUNTIME.block_on(socket.read_exact(&mut six)).unwrap();
        assert_eq!(handle.txn_status(), TxnStatus::Idle);
    }

    #[test]
    fn read_ahead_bytes_come_first_and_in_order() {
        let (mut socket, handle, mut peer) = pair();
        assert_eq!(handle.probe(), Probe::Empty);
        peer.write_all(b"first ").unwrap();
        assert_eq!(handle.probe(), Probe::Ready);
        // Still Ready, and nothing read over the bytes already held.
        peer.write_all(b"second ").unwrap();
        assert_eq!(handle.probe(), Probe::Ready);
        peer.write_all(b"third").unwrap();
        drop(peer);
        let mut all = Vec::new();
        RUNTIME.block_on(socket.read_to_end(&mut all)).unwrap();
        assert_eq!(all, b"first second third");
    }

    #[test]
    fn a_small_read_takes_the_read_ahead_in_pieces() {
        let (mut socket, handle, mut peer) = pair();
        peer.write_all(b"abcdef").unwrap();
        assert_eq!(handle.probe(), Probe::Ready);
        let mut two = [0; 2];
        RUNTIME.block_on(async {
            for expected in [b"ab", b"cd", b"ef"] {
                socket.read_exact(&mut two).await.unwrap();
                assert_eq!(&two, expected);
            }
        });
    }

    #[test]
    fn direct_mode_reads_without_the_reactor_and_pends_when_empty() {
        let (mut socket, handle, mut peer) = pair();
        handle.set_direct(true);
        let mut buf = [0; 16];
        let mut read = ReadBuf::new(&mut buf);
        let noop = &mut Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut socket)
            .poll_read(noop, &mut read)
            .is_pending());
        peer.write_all(b"hello").unwrap();
        let ready = Pin::new(&mut socket).poll_read(noop, &mut read);
        assert!(matches!(ready, Poll::Ready(Ok(()))));
        assert_eq!(read.filled(), b"hello");
        // Back in normal mode the reactor serves reads (and the end of the stream).
        handle.set_direct(false);
        drop(peer);
        let mut rest = Vec::new();
        RUNTIME.block_on(socket.read_to_end(&mut rest)).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn sockets_without_direct_reads_fall_back() {
        let (stream, mut peer) = tokio::io::duplex(64);
        let (mut socket, handle) = PgSocket::new(Box::new(DirectSocket::plain(stream)));
        assert_eq!(handle.probe(), Probe::Unsupported);
        assert!(!handle.supports_direct());
        RUNTIME.block_on(async {
            tokio::io::AsyncWriteExt::write_all(&mut peer, b"ok")
                .await
                .unwrap();
            let mut two = [0; 2];
            socket.read_exact(&mut two).await.unwrap();
            assert_eq!(&two, b"ok");
        });
    }

    /// The client's side after startup: the untyped startup message written, its
    /// ReadyForQuery read.
    pub(super) fn started(socket: &mut PgSocket, peer: &mut std::os::unix::net::UnixStream) {
        use std::io::Read;
        RUNTIME
            .block_on(tokio::io::AsyncWriteExt::write_all(
                socket,
                &[0, 0, 0, 8, 0, 3, 0, 0],
            ))
            .unwrap();
        let mut startup = [0; 8];
        peer.read_exact(&mut startup).unwrap();
        peer.write_all(&message(b'Z', b"I")).unwrap();
        let mut six = [0; 6];
        RUNTIME.block_on(socket.read_exact(&mut six)).unwrap();
    }

    #[test]
    fn an_armed_begin_goes_before_the_next_parse_or_bind_and_nothing_else() {
        use std::io::Read;
        let (mut socket, handle, mut peer) = pair();
        started(&mut socket, &mut peer);
        handle.arm_begin("BEGIN READ ONLY");
        // A Close and its Sync queued before the statement go out first, untouched; the BEGIN
        // goes in right before the Bind.
        let mut close = message(b'C', b"Ss1\0");
        close.extend(message(b'S', b""));
        let mut statement = message(b'B', b"\0s2\0\0\0\0\0\0\0");
        statement.extend(message(b'E', b"\0\0\0\0\0"));
        statement.extend(message(b'S', b""));
        let mut written = close.clone();
        written.extend(&statement);
        RUNTIME
            .block_on(tokio::io::AsyncWriteExt::write_all(&mut socket, &written))
            .unwrap();
        let mut expect = close;
        expect.extend(begin_messages("BEGIN READ ONLY"));
        expect.extend(&statement);
        let mut got = vec![0; expect.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, expect);
        assert_eq!(handle.take_begin(), BeginProgress::Awaiting);
        // Nothing more was written.
        peer.set_nonblocking(true).unwrap();
        assert!(peer.read(&mut [0; 1]).is_err());
        peer.set_nonblocking(false).unwrap();

        // The replies: the Close's, then the BEGIN's (taken out), then the statement's.
        let mut replies = message(b'3', b"");
        replies.extend(message(b'Z', b"I"));
        let mut begin = message(b'1', b"");
        begin.extend(message(b'2', b""));
        begin.extend(message(b'C', b"BEGIN\0"));
        let mut theirs = message(b'2', b"");
        theirs.extend(message(b'C', b"UPDATE 1\0"));
        theirs.extend(message(b'Z', b"T"));
        let mut sent = replies.clone();
        sent.extend(&begin);
        sent.extend(&theirs);
        peer.write_all(&sent).unwrap();
        let mut seen = vec![0; replies.len() + theirs.len()];
        RUNTIME.block_on(socket.read_exact(&mut seen)).unwrap();
        replies.extend(&theirs);
        assert_eq!(seen, replies);
        assert_eq!(
            handle.take_begin(),
            BeginProgress::Done(BeginOutcome::Succeeded)
        );
        assert_eq!(handle.take_begin(), BeginProgress::Idle);
        assert_eq!(handle.txn_status(), TxnStatus::InTransaction);
        assert!(handle.settled());
    }

    #[test]
    fn an_armed_begin_waits_for_a_parse_or_bind_and_can_be_taken_back() {
        let (mut socket, handle, mut peer) = pair();
        started(&mut socket, &mut peer);
        handle.arm_begin("BEGIN");
        let mut query = message(b'Q', b"ROLLBACK\0");
        query.extend(message(b'S', b""));
        RUNTIME
            .block_on(tokio::io::AsyncWriteExt::write_all(&mut socket, &query))
            .unwrap();
        let mut got = vec![0; query.len()];
        std::io::Read::read_exact(&mut peer, &mut got).unwrap();
        assert_eq!(got, query);
        assert_eq!(handle.take_begin(), BeginProgress::NotWritten);
        assert_eq!(handle.take_begin(), BeginProgress::Idle);
    }

    /// The backend stream of a deferred BEGIN, fed in pieces of every size: what the connection
    /// sees, and the outcome.
    fn strip_in_pieces(stream: &[u8], piece: usize) -> (Vec<u8>, BeginSlot) {
        let (_socket, handle, _peer) = pair();
        let shared = &*handle.shared;
        // Startup answered; the BEGIN was written after one more request.
        shared.readies_read.store(1, Ordering::Release);
        shared.readies_owed.store(2, Ordering::Release);
        let mut frames = Frames::backend();
        let mut begin = BeginSlot::Sent { after: 2, seen: 0 };
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            let mut chunk = chunk.to_vec();
            let (kept, rest) = frames.observe_replies(
                &mut chunk,
                shared,
                &mut begin,
                &mut Join::None,
                &mut Vec::new(),
            );
            assert_eq!(rest, None);
            out.extend_from_slice(&chunk[..kept]);
        }
        (out, begin)
    }

    #[test]
    fn the_replies_of_a_begin_are_taken_out_in_any_pieces() {
        let before = [message(b'3', b""), message(b'Z', b"I")].concat();
        let notice = message(b'N', b"SWARNING\0\0");
        let begin = [
            message(b'1', b""),
            message(b'2', b""),
            message(b'C', b"BEGIN\0"),
        ];
        let theirs = [
            message(b'2', b""),
            message(b'D', &[7; 40]),
            message(b'C', b"SELECT 1\0"),
            message(b'Z', b"T"),
        ]
        .concat();
        let stream = [
            before.clone(),
            begin[0].clone(),
            notice.clone(),
            begin[1].clone(),
            begin[2].clone(),
            theirs.clone(),
        ]
        .concat();
        let expect = [before.clone(), notice, theirs].concat();
        for piece in [1, 2, 3, 4, 5, 6, 7, 11, 64, stream.len()] {
            let (out, begin) = strip_in_pieces(&stream, piece);
            assert_eq!(out, expect, "pieces of {piece}");
            assert!(matches!(begin, BeginSlot::Done(BeginOutcome::Succeeded)));
        }

        // BEGIN fails: its error goes to the statement's request, as do the ReadyForQuery.
        let failed = [
            before.clone(),
            message(b'E', b"SERROR\0C0A000\0\0"),
            message(b'Z', b"I"),
        ]
        .concat();
        for piece in [1, 3, 5, failed.len()] {
            let (out, begin) = strip_in_pieces(&failed, piece);
            assert_eq!(out, failed);
            assert!(matches!(begin, BeginSlot::Done(BeginOutcome::Failed)));
        }
        // Parse went through, then the error.
        let late = [
            before.clone(),
            message(b'1', b""),
            message(b'E', b"SERROR\0\0"),
            message(b'Z', b"I"),
        ]
        .concat();
        let (out, begin) = strip_in_pieces(&late, 2);
        assert_eq!(
            out,
            [
                before.clone(),
                message(b'E', b"SERROR\0\0"),
                message(b'Z', b"I")
            ]
            .concat()
        );
        assert!(matches!(begin, BeginSlot::Done(BeginOutcome::Failed)));
        // Anything else: out of step.
        let odd = [before, message(b'T', b"\0\0")].concat();
        let (_, begin) = strip_in_pieces(&odd, 4);
        assert!(matches!(begin, BeginSlot::Done(BeginOutcome::Confused)));
    }
}
