//! Driving tokio-postgres' `Connection` future: inline, from the task that awaits an operation, or
//! spawned on the runtime.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use anysql_core::spin::{self, Pause, SpinPolicy, Waiters};
use anysql_core::SharedRuntime;
use tokio_postgres::tls::NoTlsStream;

use crate::notice::{poll_connection, Route};
use crate::options::DriveMode;
use crate::socket::{PgSocket, Probe, SocketHandle};

/// tokio-postgres' connection half over a runtime's socket, without TLS.
pub(crate) type RawConnection = tokio_postgres::Connection<PgSocket, NoTlsStream>;

/// Who polls the connection future.
pub(crate) enum Io {
    /// This value owns the future and every operation polls it, beside the operation's own
    /// future, from the awaiting task.
    Inline(Inline),
    /// The future runs as a task on the runtime; the flag is set when it ends.
    Spawned {
        finished: Arc<AtomicBool>,
        route: Arc<Route>,
    },
}

/// The inline connection future and its bookkeeping.
pub(crate) struct Inline {
    /// Behind a mutex only so that [`Io::probe`] can poll it through `&self`; the operations, which
    /// have `&mut self`, reach it with `get_mut` and never lock.
    state: Mutex<InlineState>,
    waker: InlineWaker,
    last_driven: Instant,
    socket: SocketHandle,
    /// Whether to busy-poll while waiting, and for how long.
    spin: WaitPolicy,
    /// When the current wait for the server began, and whether it busy-polled, if one is going
    /// on.
    waiting_since: Option<(Instant, bool)>,
    /// The engine's waiting callers: this connection busy-polls only while it is the only one.
    waiters: Arc<Waiters>,
    /// Whether this connection's operation is counted in `waiters` (from its first poll until
    /// it is done, or, if its future was dropped, until the next operation is).
    counted: bool,
}

struct InlineState {
    /// `None` once the connection has ended.
    conn: Option<Pin<Box<RawConnection>>>,
    ended: Option<Box<Ended>>,
    /// Where notices and notifications go.
    route: Arc<Route>,
}

/// Why an inline connection ended: the message, and what the server said if it said why (a
/// terminated session's `57P01`).
#[derive(Clone)]
pub(crate) struct Ended {
    pub(crate) reason: String,
    pub(crate) database: Option<anysql_core::DatabaseError>,
}

impl InlineState {
    /// Polls the connection once: writes queued requests, reads what the socket has and routes it
    /// to the waiting requests (or discards it, for requests nobody waits for any more).
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            if let Poll::Ready(result) =
                poll_connection(Pin::get_mut(conn.as_mut()), cx, &self.route)
            {
                self.ended = Some(Box::new(match result {
                    Ok(()) => Ended {
                        reason: "the connection was closed".to_owned(),
                        database: None,
                    },
                    Err(e) => Ended {
                        reason: e.to_string(),
                        database: e.as_db_error().map(crate::error::database_error),
                    },
                }));
                // Dropping the connection drops the senders of pending requests, which then fail
                // with "connection closed" instead of waiting forever.
                self.conn = None;
                self.route.ended();
            }
        }
    }
}

/// How long an inline connection must have gone unpolled before [`Io::probe`] polls it.
const PROBE_AFTER: Duration = Duration::from_millis(10);

impl Io {
    /// Starts driving `conn`, whose socket is `socket`; inline connections busy-poll for up to
    /// `busy_poll` per wait (zero: never), while no other of the engine's `waiters` waits.
    pub(crate) fn start(
        conn: RawConnection,
        socket: SocketHandle,
        mode: DriveMode,
        busy_poll: Duration,
        waiters: Arc<Waiters>,
        runtime: &SharedRuntime,
    ) -> Io {
        let route = Arc::new(Route::default());
        match mode {
            DriveMode::Inline => Io::Inline(Inline {
                state: Mutex::new(InlineState {
                    conn: Some(Box::pin(conn)),
                    ended: None,
                    route,
                }),
                waker: InlineWaker::new(),
                last_driven: Instant::now(),
                socket,
                spin: WaitPolicy::new(busy_poll),
                waiting_since: None,
                waiters,
                counted: false,
            }),
            DriveMode::Spawned => {
                let finished = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&finished);
                let task_route = Arc::clone(&route);
                let mut conn = conn;
                runtime.spawn(Box::pin(async move {
                    let _ = poll_fn(|cx| poll_connection(&mut conn, cx, &task_route)).await;
                    flag.store(true, Ordering::Release);
                    task_route.ended();
                }));
                Io::Spawned { finished, route }
            }
        }
    }

    pub(crate) fn mode(&self) -> DriveMode {
        match self {
            Io::Inline(_) => DriveMode::Inline,
            Io::Spawned { .. } => DriveMode::Spawned,
        }
    }

    /// Where this connection's notices and notifications go.
    pub(crate) fn route(&mut self) -> Arc<Route> {
        match self {
            Io::Inline(inline) => Arc::clone(&lock(inline.state.get_mut()).route),
            Io::Spawned { route, .. } => Arc::clone(route),
        }
    }

    /// Whether this value polls the connection future itself, so that nothing is written
    /// except while one of its operations runs.
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self, Io::Inline(_))
    }

    /// Whether the connection future has ended (the socket is closed or failed).
    pub(crate) fn has_ended(&mut self) -> bool {
        match self {
            Io::Inline(inline) => lock(inline.state.get_mut()).conn.is_none(),
            Io::Spawned { finished, .. } => finished.load(Ordering::Acquire),
        }
    }

    /// Like [`has_ended`](Self::has_ended) through `&self`; an inline connection that nobody has
    /// polled for a while is polled once, reading its socket directly and without blocking, so
    /// that a socket the server closed while the connection sat idle in the pool is noticed before
    /// the connection is handed out.
    pub(crate) fn probe(&self) -> bool {
        match self {
            Io::Inline(inline) => {
                let Ok(mut state) = inline.state.try_lock() else {
                    return false;
                };
                if state.conn.is_some() && inline.last_driven.elapsed() >= PROBE_AFTER {
                    // In direct mode: the socket is read, not only asked about. Whether the
                    // reactor has reported it readable since it was last asked is no sign that
                    // nothing came: async-io counts a report from the wait during which it was
                    // asked as older than the question, until the task asks again.
                    let _direct = DirectMode::new(&inline.socket, true);
                    state.poll(&mut Context::from_waker(Waker::noop()));
                }
                state.conn.is_none()
            }
            Io::Spawned { finished, .. } => finished.load(Ordering::Acquire),
        }
    }

    /// Why the inline connection ended, if it did and said why.
    pub(crate) fn end_reason(&self) -> Option<Ended> {
        match self {
            Io::Inline(inline) => inline.state.try_lock().ok()?.ended.as_deref().cloned(),
            Io::Spawned { .. } => None,
        }
    }

    /// Polls `poll` (an operation) and, in inline mode, the connection beside it.
    ///
    /// Both are polled with a waker that notices wake-ups they cause each other while being polled
    /// (the operation queueing a request wakes the connection; the connection delivering a reply
    /// wakes the operation): those are served by polling again at once, not by a trip through the
    /// executor. Wake-ups from outside (the reactor, other threads) reach the task as usual.
    ///
    /// When both are waiting for the server, this busy-polls the socket for up to the
    /// [`SpinPolicy`]'s budget before it lets the task sleep (see the crate docs, Performance):
    /// it reads whatever the operating system has for the socket directly into the read-ahead of
    /// [`PgSocket`], and polls again as soon as bytes arrive (or something wakes the task). The
    /// socket is in direct mode meanwhile, so that an empty read registers nothing with the
    /// reactor; the last round before sleeping is polled in normal mode and registers the waker,
    /// so no reply can be missed.
    pub(crate) fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let Io::Inline(inline) = self else {
            return poll(cx);
        };
        let Inline {
            state,
            waker,
            last_driven,
            socket,
            spin,
            waiting_since,
            waiters,
            counted,
        } = inline;
        let state = lock(state.get_mut());
        if state.conn.is_none() {
            return poll(cx);
        }
        if !*counted {
            waiters.arrive();
            *counted = true;
        }
        let done = Done { waiters, counted };
        *last_driven = Instant::now();
        waker.arm(cx.waker());
        let mut inner_cx = Context::from_waker(&waker.waker);
        let budget = spin.limit();
        // Whether this wait busy-polls: decided once per wait, when it starts.
        let mut spinning: Option<(Instant, Instant)> = None;
        // Direct mode for as long as we may spin; the guard turns it off on every way out,
        // unwinding included. A wait already going on (the task was woken, but not by its
        // reply) goes on sleeping.
        // Spinning inside `poll` holds the executor thread: only a caller waiting alone among the
        // engine's callers does it, so that tasks sharing a thread still send their requests
        // side by side.
        let may_spin = !budget.is_zero()
            && waiting_since.is_none()
            && done.waiters.at_most_one()
            && socket.supports_direct();
        let mut direct = DirectMode::new(socket, may_spin);
        let mut idle_rounds = 0;
        loop {
            if let Poll::Ready(out) = poll(&mut inner_cx) {
                waker.disarm();
                spin.finish(waiting_since);
                done.finish();
                return Poll::Ready(out);
            }
            state.poll(&mut inner_cx);
            if let Poll::Ready(out) = poll(&mut inner_cx) {
                waker.disarm();
                spin.finish(waiting_since);
                done.finish();
                return Poll::Ready(out);
            }
            if direct.on() {
                if waker.take_wake() {
                    // Woken by the futures themselves or from outside: poll again (counted
                    // below).
                } else {
                    let (started, deadline) = match spinning {
                        Some(spinning) => spinning,
                        None if spin.spin_this_wait() => {
                            let now = Instant::now();
                            *spinning.insert((now, now + spin.budget(budget)))
                        }
                        None => {
                            // This wait sleeps: one more round in normal mode registers the
                            // waker with the reactor before the task sleeps.
                            direct.off();
                            continue;
                        }
                    };
                    match spin_until(socket, waker, deadline) {
                        Spun::Data => {
                            *waiting_since = Some((started, true));
                            spin.finish(waiting_since);
                            spinning = None;
                            continue;
                        }
                        Spun::Out => {
                            // Out of budget (or unsupported): the task sleeps, after one more
                            // round in normal mode, and the wait counts as a busy-polled one.
                            *waiting_since = Some((started, true));
                            direct.off();
                            continue;
                        }
                        Spun::Woken => {}
                    }
                }
            } else if !waker.woken_while_polling() {
                if waiting_since.is_none() {
                    *waiting_since = Some((Instant::now(), false));
                }
                return Poll::Pending;
            }
            idle_rounds += 1;
            if idle_rounds >= MAX_INLINE_ROUNDS {
                // Something keeps waking us without progress (such as a cooperative budget asking
                // to yield): let the executor schedule the task again.
                waker.disarm();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
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

/// Takes an operation out of the engine's waiting callers once it is done.
struct Done<'a> {
    waiters: &'a Waiters,
    counted: &'a mut bool,
}

impl Done<'_> {
    fn finish(self) {
        if std::mem::take(self.counted) {
            self.waiters.leave();
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Io::Inline(inline) = self {
            if std::mem::take(&mut inline.counted) {
                inline.waiters.leave();
            }
        }
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

/// Whether a wait for the server busy-polls, from how long recent waits took each way.
///
/// Busy-polling pays when waking a sleeping thread is what makes the reply late: on a virtual
/// machine whose idle vCPUs halt, or on executors that wake a task through a reactor thread
/// (async-std). It does not when the machine is busy anyway: the server runs on the same cores
/// here, and a spinning client takes one of them from it. So the policy keeps a moving average of
/// the waits that busy-polled and of those that slept, busy-polls while that is the faster way,
/// and tries the other way on one wait in [`EXPLORE_EVERY`] to notice when that changes. On top,
/// [`SpinPolicy`] stops busy-polling while the waits that did are long (slow queries, a crowded
/// machine), so such waits cost no CPU.
#[derive(Debug)]
struct WaitPolicy {
    guard: SpinPolicy,
    limit: Duration,
    spun_ns: u64,
    slept_ns: u64,
    waits: u32,
}

/// How often [`WaitPolicy`] tries the way it currently thinks is slower.
const EXPLORE_EVERY: u32 = 16;

impl WaitPolicy {
    fn new(limit: Duration) -> Self {
        WaitPolicy {
            guard: SpinPolicy::new(limit),
            limit,
            spun_ns: 0,
            slept_ns: 0,
            waits: 0,
        }
    }

    /// How long a wait may busy-poll, if it does: zero while the guard says no.
    fn limit(&self) -> Duration {
        self.guard.next()
    }

    /// Whether the wait that starts now busy-polls.
    fn spin_this_wait(&mut self) -> bool {
        self.waits = self.waits.wrapping_add(1);
        let spin = self.spun_ns <= self.slept_ns;
        spin != self.waits.is_multiple_of(EXPLORE_EVERY)
    }

    /// How long this wait may busy-poll: the limit, or less when sleeping has recently taken
    /// less (busy-polling longer than a sleeping wait takes cannot win, and an exploring wait
    /// should cost little).
    fn budget(&self, limit: Duration) -> Duration {
        if self.slept_ns == 0 {
            limit
        } else {
            limit.min(Duration::from_nanos(self.slept_ns))
        }
    }

    /// Records how long a wait took, from its start until the operation made progress.
    fn record(&mut self, spun: bool, took: Duration) {
        // The guard sees every wait, so that it turns spinning back on when replies get fast
        // again even while none busy-polls.
        self.guard.record(took);
        // Capped as in the guard, so that one wait preempted for milliseconds does not decide
        // for long.
        let cap = u64::try_from(self.guard_limit().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_mul(4);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).min(cap);
        let average = if spun {
            &mut self.spun_ns
        } else {
            &mut self.slept_ns
        };
        // Over about the last eight waits; a first sample counts whole.
        *average = if *average == 0 {
            ns
        } else {
            *average - *average / 8 + ns / 8
        };
    }

    /// Ends the wait going on, if any: how long it took counts.
    fn finish(&mut self, waiting_since: &mut Option<(Instant, bool)>) {
        if let Some((since, spun)) = waiting_since.take() {
            self.record(spun, since.elapsed());
        }
    }

    fn guard_limit(&self) -> Duration {
        self.limit
    }
}

/// The socket's direct mode while [`Io::poll_with`] may spin; off again when dropped.
struct DirectMode<'s> {
    socket: &'s SocketHandle,
    on: bool,
}

impl<'s> DirectMode<'s> {
    fn new(socket: &'s SocketHandle, on: bool) -> Self {
        if on {
            socket.set_direct(true);
        }
        DirectMode { socket, on }
    }

    fn on(&self) -> bool {
        self.on
    }

    fn off(&mut self) {
        if self.on {
            self.socket.set_direct(false);
            self.on = false;
        }
    }
}

impl Drop for DirectMode<'_> {
    fn drop(&mut self) {
        self.off();
    }
}

/// How a spell of busy-polling ended.
enum Spun {
    /// Bytes are in the read-ahead (or the socket ended or failed).
    Data,
    /// Something woke the task.
    Woken,
    /// The deadline passed, or the socket cannot be read directly.
    Out,
}

/// Reads the socket directly until bytes come, the task is woken or `deadline` passes, giving
/// the CPU away between reads if anything else wants it: on a machine where the server shares the
/// cores, that is often the server process that is about to answer.
fn spin_until(socket: &SocketHandle, waker: &InlineWaker, deadline: Instant) -> Spun {
    spin::spin_until(deadline, Pause::YieldThread, || match socket.probe() {
        Probe::Ready => Some(Spun::Data),
        Probe::Unsupported => Some(Spun::Out),
        Probe::Empty => waker.take_wake().then_some(Spun::Woken),
    })
    .unwrap_or(Spun::Out)
}

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

    /// Whether a wake-up came in since the last check, staying in the polling state (wake-ups are
    /// still only recorded).
    fn take_wake(&self) -> bool {
        self.shared.state.swap(POLLING, Ordering::AcqRel) & WOKEN != 0
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::socket::tests::message;
    use anysql_core::runtime::AsyncIoSocket;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// An inline connection over one end of a Unix socket pair on async-io's reactor, past its
    /// startup (the other end, playing the server, has already answered it), its client (the
    /// connection ends when that is dropped), and that other end.
    fn idle_inline_connection() -> (Io, tokio_postgres::Client, UnixStream) {
        let (ours, mut server) = UnixStream::pair().unwrap();
        let mut hello = message(b'R', &0_i32.to_be_bytes()); // AuthenticationOk
        hello.extend(message(b'Z', b"I"));
        server.write_all(&hello).unwrap();
        let socket = AsyncIoSocket::unix(smol::Async::new(ours).unwrap());
        let (socket, handle) = PgSocket::new(Box::new(socket));
        let (client, conn) = smol::block_on(
            tokio_postgres::Config::new()
                .user("test")
                .connect_raw(socket, tokio_postgres::NoTls),
        )
        .unwrap();
        let runtime: SharedRuntime = Arc::new(anysql_smol::SmolRuntime::new());
        let io = Io::start(
            conn,
            handle,
            DriveMode::Inline,
            Duration::ZERO,
            Arc::new(Waiters::default()),
            &runtime,
        );
        (io, client, server)
    }

    #[test]
    fn the_probe_notices_an_end_that_the_reactor_reported_in_the_cycle_it_was_asked_in() {
        let goodbye = message(b'E', b"SFATAL\0C57P01\0Mterminating connection\0\0");
        // With the server's goodbye, and without (the socket just closes).
        for last_words in [goodbye, Vec::new()] {
            let (io, _client, mut server) = idle_inline_connection();
            // Another thread holds async-io's reactor in one long wait for events...
            let reactor = thread::spawn(|| {
                smol::block_on(smol::Timer::after(Duration::from_millis(400)));
            });
            thread::sleep(Duration::from_millis(100));
            // ...during which the pool's check finds the connection open (and asks the reactor
            // to report the socket readable)...
            assert!(!io.probe(), "the connection is open");
            // ...and the server ends the session: the reactor reports it in that same wait,
            // which async-io counts as a report from before the socket was asked about.
            server.write_all(&last_words).unwrap();
            drop(server);
            thread::sleep(Duration::from_millis(100));
            assert!(
                io.probe(),
                "a connection whose server closed the socket is not handed out ({} bytes of \
                 goodbye)",
                last_words.len()
            );
            assert!(io.end_reason().is_some());
            reactor.join().unwrap();
        }
    }
}
