//! Driving tokio-postgres' `Connection` future: inline, from the task that awaits an operation, or
//! spawned on the runtime.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use anysql_core::{BoxSocket, SharedRuntime};
use tokio_postgres::tls::NoTlsStream;

use crate::options::DriveMode;

/// tokio-postgres' connection half over a runtime's socket, without TLS.
pub(crate) type RawConnection = tokio_postgres::Connection<BoxSocket, NoTlsStream>;

/// Who polls the connection future.
pub(crate) enum Io {
    /// This value owns the future and every operation polls it, beside the operation's own
    /// future, from the awaiting task.
    Inline(Inline),
    /// The future runs as a task on the runtime; the flag is set when it ends.
    Spawned { finished: Arc<AtomicBool> },
}

/// The inline connection future and its bookkeeping.
pub(crate) struct Inline {
    /// Behind a mutex only so that [`Io::probe`] can poll it through `&self`; the operations, which
    /// have `&mut self`, reach it with `get_mut` and never lock.
    state: Mutex<InlineState>,
    waker: InlineWaker,
    last_driven: Instant,
}

struct InlineState {
    /// `None` once the connection has ended.
    conn: Option<Pin<Box<RawConnection>>>,
    ended: Option<String>,
}

impl InlineState {
    /// Polls the connection once: writes queued requests, reads what the socket has and routes it
    /// to the waiting requests (or discards it, for requests nobody waits for any more).
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                self.ended = Some(match result {
                    Ok(()) => "the connection was closed".to_owned(),
                    Err(e) => e.to_string(),
                });
                // Dropping the connection drops the senders of pending requests, which then fail
                // with "connection closed" instead of waiting forever.
                self.conn = None;
            }
        }
    }
}

/// How long an inline connection must have gone unpolled before [`Io::probe`] polls it.
const PROBE_AFTER: Duration = Duration::from_millis(10);

impl Io {
    pub(crate) fn start(conn: RawConnection, mode: DriveMode, runtime: &SharedRuntime) -> Io {
        match mode {
            DriveMode::Inline => Io::Inline(Inline {
                state: Mutex::new(InlineState {
                    conn: Some(Box::pin(conn)),
                    ended: None,
                }),
                waker: InlineWaker::new(),
                last_driven: Instant::now(),
            }),
            DriveMode::Spawned => {
                let finished = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&finished);
                runtime.spawn(Box::pin(async move {
                    let _ = conn.await;
                    flag.store(true, Ordering::Release);
                }));
                Io::Spawned { finished }
            }
        }
    }

    pub(crate) fn mode(&self) -> DriveMode {
        match self {
            Io::Inline(_) => DriveMode::Inline,
            Io::Spawned { .. } => DriveMode::Spawned,
        }
    }

    /// Whether the connection future has ended (the socket is closed or failed).
    pub(crate) fn has_ended(&mut self) -> bool {
        match self {
            Io::Inline(inline) => lock(inline.state.get_mut()).conn.is_none(),
            Io::Spawned { finished } => finished.load(Ordering::Acquire),
        }
    }

    /// Like [`has_ended`](Self::has_ended) through `&self`; an inline connection that nobody has
    /// polled for a while is polled once, without blocking, so that a socket the server closed
    /// while the connection sat idle in the pool is noticed before the connection is handed out.
    pub(crate) fn probe(&self) -> bool {
        match self {
            Io::Inline(inline) => {
                let Ok(mut state) = inline.state.try_lock() else {
                    return false;
                };
                if state.conn.is_some() && inline.last_driven.elapsed() >= PROBE_AFTER {
                    state.poll(&mut Context::from_waker(Waker::noop()));
                }
                state.conn.is_none()
            }
            Io::Spawned { finished } => finished.load(Ordering::Acquire),
        }
    }

    /// Why the inline connection ended, if it did and said why.
    pub(crate) fn end_reason(&mut self) -> Option<String> {
        match self {
            Io::Inline(inline) => lock(inline.state.get_mut()).ended.clone(),
            Io::Spawned { .. } => None,
        }
    }

    /// Polls `poll` (an operation) and, in inline mode, the connection beside it.
    ///
    /// Both are polled with a waker that notices wake-ups they cause each other while being polled
    /// (the operation queueing a request wakes the connection; the connection delivering a reply
    /// wakes the operation): those are served by polling again at once, not by a trip through the
    /// executor. Wake-ups from outside (the reactor, other threads) reach the task as usual.
    pub(crate) fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let Io::Inline(inline) = self else {
            return poll(cx);
        };
        let state = lock(inline.state.get_mut());
        if state.conn.is_none() {
            return poll(cx);
        }
        inline.last_driven = Instant::now();
        let waker = &inline.waker;
        waker.arm(cx.waker());
        let mut inner_cx = Context::from_waker(&waker.waker);
        for _ in 0..MAX_INLINE_ROUNDS {
            if let Poll::Ready(out) = poll(&mut inner_cx) {
                waker.disarm();
                return Poll::Ready(out);
            }
            state.poll(&mut inner_cx);
            if let Poll::Ready(out) = poll(&mut inner_cx) {
                waker.disarm();
                return Poll::Ready(out);
            }
            if !waker.woken_while_polling() {
                return Poll::Pending;
            }
        }
        // Something keeps waking us without progress (such as a cooperative budget asking to
        // yield): let the executor schedule the task again.
        waker.disarm();
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Runs `future` to completion, driving the connection alongside it in inline mode.
    pub(crate) async fn drive<F: Future>(&mut self, future: F) -> F::Output {
        let mut future = pin!(future);
        poll_fn(|cx| self.poll_with(cx, |cx| future.as_mut().poll(cx))).await
    }

    /// Takes the inline connection future out, to finish it elsewhere.
    pub(crate) fn take_inline(&mut self) -> Option<Pin<Box<RawConnection>>> {
        match self {
            Io::Inline(inline) => lock(inline.state.get_mut()).conn.take(),
            Io::Spawned { .. } => None,
        }
    }
}

/// The state behind a mutex, even if a panic poisoned it (the state stays consistent: the
/// connection future is either there or not).
fn lock<T>(result: Result<T, PoisonError<T>>) -> T {
    result.unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Io {
    fn drop(&mut self) {
        // The client was dropped first (see the field order of `PgConnection`), so one poll lets an
        // idle connection send `Terminate` and shut the socket down: the server logs a clean
        // disconnection instead of an unexpected EOF. All of it is non-blocking.
        if let Some(mut conn) = self.take_inline() {
            let _ = conn.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }
    }
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// How many times [`Io::poll_with`] re-polls in one go when the polled futures wake each other.
const MAX_INLINE_ROUNDS: usize = 8;

const POLLING: u8 = 1;
const WOKEN: u8 = 2;

/// The waker the inline connection and the operation are polled with: it forwards wake-ups to the
/// task's waker, except those that happen while the task itself is polling them, which it only
/// records.
#[derive(Clone)]
pub(crate) struct InlineWaker {
    shared: Arc<WakerState>,
    waker: Waker,
}

struct WakerState {
    state: AtomicU8,
    task: Mutex<Option<Waker>>,
}

impl InlineWaker {
    fn new() -> Self {
        let shared = Arc::new(WakerState {
            state: AtomicU8::new(0),
            task: Mutex::new(None),
        });
        let waker = Waker::from(Arc::clone(&shared));
        InlineWaker { shared, waker }
    }

    /// Records the task's waker and starts a polling round.
    fn arm(&self, task: &Waker) {
        let mut slot = self.shared.task.lock().unwrap_or_else(|e| e.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(task)) {
            *slot = Some(task.clone());
        }
        drop(slot);
        self.shared.state.store(POLLING, Ordering::Release);
    }

    fn disarm(&self) {
        self.shared.state.store(0, Ordering::Release);
    }

    /// Ends a polling round: whether a wake-up came in during it (then poll again); if not, from
    /// now on wake-ups go to the task.
    fn woken_while_polling(&self) -> bool {
        let previous = self.shared.state.swap(0, Ordering::AcqRel);
        if previous & WOKEN != 0 {
            self.shared.state.store(POLLING, Ordering::Release);
            true
        } else {
            false
        }
    }
}

impl Wake for WakerState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let previous = self.state.fetch_or(WOKEN, Ordering::AcqRel);
        if previous & POLLING == 0 {
            if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                task.wake_by_ref();
            }
        }
    }
}
