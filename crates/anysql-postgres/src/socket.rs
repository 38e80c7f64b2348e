//! [`PgSocket`]: the runtime's socket as tokio-postgres reads it, with a read-ahead buffer that
//! busy-polling fills by reading the socket directly.
//!
//! While a caller waits for a reply, [`Io::poll_with`](crate::io::Io::poll_with) reads the socket
//! straight from the operating system ([`Socket::try_read_direct`]) into the read-ahead, instead
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

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use anysql_core::BoxSocket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
        }
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

impl AsyncRead for PgSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &*self.shared;
        let mut state = lock(shared);
        let before = buf.filled().len();
        let result = state.read(cx, buf);
        state.frames.observe(&buf.filled()[before..], shared);
        result
    }
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &*self.shared;
        let mut state = lock(shared);
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
        Pin::new(&mut lock(&self.shared).socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).socket).poll_shutdown(cx)
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
mod tests {
    use super::*;
    use anysql_core::runtime::DirectSocket;
    use std::io::Write;
    use std::os::fd::AsFd;
    use tokio::io::AsyncReadExt;

    /// A `PgSocket` over one end of a Unix socket pair, and the other end.
    fn pair() -> (PgSocket, SocketHandle, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let fd = ours.as_fd().try_clone_to_owned().unwrap();
        let _guard = RUNTIME.enter();
        let stream = tokio::net::UnixStream::from_std(ours).unwrap();
        let (socket, handle) = PgSocket::new(Box::new(DirectSocket::new(stream, Some(fd))));
        (socket, handle, theirs)
    }

    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    });

    /// One backend message: type, length, body.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
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
}
