//! The reply path from a connection's worker thread to the task awaiting it: a oneshot channel and
//! [`Wait`], the future that busy-polls it for a short, adaptive while before it lets the executor
//! sleep.
//!
//! Why busy-poll: a point select takes the worker about 3 µs. If the awaiting task returns
//! `Pending` and parks, the executor thread goes to sleep and must be woken through the OS when the
//! reply lands, which costs 8–10 µs more than the query itself. Instead, [`Wait`] wakes its own task
//! and returns `Pending` (a yield: other tasks run, then the executor polls it again) until the
//! reply is there or the spin budget is spent, and only then registers its waker and sleeps.
//! [`SpinPolicy`](anysql_core::spin::SpinPolicy) turns the budget off while replies have recently been slow, so a connection running long
//! queries does not burn CPU.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anysql_core::spin::{spin_until, CacheLine, Pause};

const EMPTY: u8 = 0;
const SENT: u8 = 1;
const CLOSED: u8 = 2;

struct Inner<T> {
    /// `EMPTY` until the sender sends (`SENT`) or drops without sending (`CLOSED`); read without the
    /// lock on the busy-poll path. On a cache line of its own, so that the busy-polling reader does
    /// not steal the line the worker locks and writes, which costs hundreds of nanoseconds per
    /// transfer between cores.
    state: CacheLine<AtomicU8>,
    slot: CacheLine<Mutex<Slot<T>>>,
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // Nothing panics while the lock is held; take the data either way.
        self.slot.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, value: Option<T>) {
        let waker = {
            let mut slot = self.lock();
            let sent = value.is_some();
            slot.value = value;
            // Under the lock, so that a reader registering its waker sees either the value or the
            // empty state, never a lost wake-up; the only write to the line the reader polls.
            self.state
                .0
                .store(if sent { SENT } else { CLOSED }, Ordering::Release);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The worker's end of a reply channel.
pub(crate) struct Sender<T> {
    inner: Option<Arc<Inner<T>>>,
}

/// The awaiting task's end of a reply channel.
pub(crate) struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// A one-shot reply channel.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: CacheLine(AtomicU8::new(EMPTY)),
        slot: CacheLine(Mutex::new(Slot {
            value: None,
            waker: None,
        })),
    });
    (
        Sender {
            inner: Some(Arc::clone(&inner)),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    /// Sends the reply, waking the receiver if it sleeps. A receiver that is gone is not an error.
    pub(crate) fn send(mut self, value: T) {
        if let Some(inner) = self.inner.take() {
            inner.finish(Some(value));
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.finish(None);
        }
    }
}

/// The sender went away without replying: the worker thread is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T> Receiver<T> {
    /// The reply, if it is there, without taking the lock when it is not.
    fn try_take(&self) -> Option<Result<T, Closed>> {
        if self.inner.state.0.load(Ordering::Acquire) == EMPTY {
            return None;
        }
        Some(self.inner.lock().value.take().ok_or(Closed))
    }

    /// The reply, or registers `waker` to be woken when it comes.
    fn take_or_register(&self, waker: &Waker) -> Option<Result<T, Closed>> {
        let mut slot = self.inner.lock();
        match self.inner.state.0.load(Ordering::Acquire) {
            EMPTY => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                None
            }
            _ => Some(slot.value.take().ok_or(Closed)),
        }
    }
}

/// The default and the most the awaiting side busy-polls for a reply.
pub(crate) const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);

/// Something a [`Wait`] can poll: a one-shot [`Receiver`] or a [`Ticket`] for a [`Mailbox`].
pub(crate) trait Source {
    type Output;
    /// The reply if it is there, cheaply (no lock) when it is not.
    fn try_take(&self) -> Option<Self::Output>;
    /// The reply, or registers `waker` to be woken when it comes.
    fn take_or_register(&self, waker: &Waker) -> Option<Self::Output>;
}

impl<T> Source for Receiver<T> {
    type Output = Result<T, Closed>;

    fn try_take(&self) -> Option<Self::Output> {
        Receiver::try_take(self)
    }

    fn take_or_register(&self, waker: &Waker) -> Option<Self::Output> {
        Receiver::take_or_register(self, waker)
    }
}

/// A connection's reply queue, used for every command: the worker posts each reply under its
/// command's sequence number, and the caller waiting for that number takes it. Most commands get
/// one reply; a large fetch gets its rows in several, so that the caller decodes one batch while
/// the worker reads the next. Reusing one queue saves an allocation per query, and replies to a
/// command whose caller gave up are dropped by the next caller that looks.
pub(crate) struct Mailbox<T> {
    /// How many replies are queued, with [`GONE`] set once the worker has ended: read without the
    /// lock on the busy-poll path. On a cache line of its own: see [`Inner::state`].
    signal: CacheLine<AtomicU64>,
    slot: CacheLine<Mutex<MailSlot<T>>>,
}

struct MailSlot<T> {
    replies: VecDeque<(u64, T)>,
    waker: Option<Waker>,
    gone: bool,
}

impl<T> MailSlot<T> {
    fn signal(&self) -> u64 {
        self.replies.len() as u64 | if self.gone { GONE } else { 0 }
    }
}

/// The bit of [`Mailbox::signal`] that says the worker has ended.
const GONE: u64 = 1 << 63;

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox {
            signal: CacheLine(AtomicU64::new(0)),
            slot: CacheLine(Mutex::new(MailSlot {
                replies: VecDeque::new(),
                waker: None,
                gone: false,
            })),
        }
    }
}

impl<T> Mailbox<T> {
    fn lock(&self) -> MutexGuard<'_, MailSlot<T>> {
        // Nothing panics while the lock is held; take the data either way.
        self.slot.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts a reply to command `seq`, waking its caller if it sleeps.
    pub(crate) fn post(&self, seq: u64, reply: T) {
        let waker = {
            let mut slot = self.lock();
            slot.replies.push_back((seq, reply));
            self.signal.0.store(slot.signal(), Ordering::Release);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The worker has ended: waiting callers get [`Closed`] once they have taken what was posted.
    pub(crate) fn close(&self) {
        let waker = {
            let mut slot = self.lock();
            slot.gone = true;
            self.signal.0.store(slot.signal(), Ordering::Release);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// What a caller waits on for the next reply to command `seq`.
    pub(crate) fn ticket(&self, seq: u64) -> Ticket<'_, T> {
        Ticket { mailbox: self, seq }
    }
}

/// Waits in a [`Mailbox`] for the next reply to one command.
pub(crate) struct Ticket<'a, T> {
    mailbox: &'a Mailbox<T>,
    seq: u64,
}

impl<T> Ticket<'_, T> {
    fn take(&self, slot: &mut MailSlot<T>) -> Option<Result<T, Closed>> {
        // Commands are answered in order, so replies before ours are to commands whose callers
        // gave up.
        while slot.replies.front().is_some_and(|(seq, _)| *seq < self.seq) {
            slot.replies.pop_front();
        }
        let reply = match slot.replies.front() {
            Some((seq, _)) if *seq == self.seq => slot.replies.pop_front().map(|(_, r)| Ok(r)),
            _ => slot.gone.then_some(Err(Closed)),
        };
        self.mailbox
            .signal
            .0
            .store(slot.signal(), Ordering::Release);
        reply
    }
}

impl<T> Source for Ticket<'_, T> {
    type Output = Result<T, Closed>;

    fn try_take(&self) -> Option<Self::Output> {
        if self.mailbox.signal.0.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.take(&mut self.mailbox.lock())
    }

    fn take_or_register(&self, waker: &Waker) -> Option<Self::Output> {
        let mut slot = self.mailbox.lock();
        if let Some(reply) = self.take(&mut slot) {
            return Some(reply);
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        None
    }
}

/// The longest [`Wait`] spins inside one `poll`, keeping its executor thread from other tasks.
const INLINE_SPIN: Duration = Duration::from_micros(25);
/// Waits for a reply, busy-polling for up to `budget` after it was requested, then sleeping.
///
/// Resolves to the reply and how long it took since `sent_at`.
pub(crate) struct Wait<S> {
    source: S,
    sent_at: Instant,
    deadline: Option<Instant>,
    inline: bool,
}

impl<S: Source> Wait<S> {
    pub(crate) fn new(source: S, sent_at: Instant, budget: Duration) -> Self {
        Wait {
            source,
            sent_at,
            deadline: sent_at.checked_add(budget).filter(|_| !budget.is_zero()),
            inline: false,
        }
    }

    /// Lets the wait spin inside `poll` for up to [`INLINE_SPIN`] before it yields: for a caller
    /// that no other caller of the same engine waits beside (see
    /// [`Waiters`](anysql_core::spin::Waiters)).
    pub(crate) fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }
}

impl<S> Unpin for Wait<S> {}

impl<S: Source> Future for Wait<S> {
    type Output = (S::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(reply) = self.source.try_take() {
            return Poll::Ready((reply, self.sent_at.elapsed()));
        }
        if let Some(deadline) = self.deadline.filter(|_| self.inline) {
            // A lone caller first spins right here, for a few microseconds: a point query's reply
            // comes within them. Returning `Pending` instead, even with the task woken at once,
            // hands the task back to the executor, and tokio's multi-thread scheduler then wakes
            // its idle second worker to steal it: the task bounces between threads, and every
            // bounce wakes a sleeping CPU.
            let inline_until = deadline.min(Instant::now() + INLINE_SPIN);
            if let Some(reply) = spin_until(inline_until, Pause::Spin, || self.source.try_take()) {
                return Poll::Ready((reply, self.sent_at.elapsed()));
            }
        }
        if let Some(deadline) = self.deadline {
            if Instant::now() < deadline {
                // Then yield: the executor runs whatever else is ready and polls this task again
                // soon, without going to sleep.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.deadline = None;
        }
        match self.source.take_or_register(cx.waker()) {
            Some(reply) => Poll::Ready((reply, self.sent_at.elapsed())),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn replies_arrive_spinning_or_sleeping() {
        for budget in [
            Duration::ZERO,
            Duration::from_micros(50),
            Duration::from_secs(5),
        ] {
            for inline in [false, true] {
                let (tx, rx) = channel();
                // The clock starts before the worker does: the worker's sleep then lies wholly
                // inside the measured span, however the two threads are scheduled.
                let sent_at = Instant::now();
                let worker = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    tx.send(7);
                });
                let (value, took) = block_on(Wait::new(rx, sent_at, budget).inline(inline));
                assert_eq!(value.unwrap(), 7);
                assert!(took >= Duration::from_millis(5));
                worker.join().unwrap();
            }
        }
    }

    #[test]
    fn replies_to_abandoned_commands_are_skipped() {
        let mailbox = Mailbox::default();
        mailbox.post(1, "stale");
        mailbox.post(2, "partial");
        mailbox.post(2, "last");
        let ticket = mailbox.ticket(2);
        assert_eq!(ticket.try_take().unwrap().unwrap(), "partial");
        assert_eq!(ticket.try_take().unwrap().unwrap(), "last");
        assert!(ticket.try_take().is_none());
        mailbox.close();
        assert!(mailbox.ticket(3).try_take().unwrap().is_err());
    }

    #[test]
    fn a_dropped_sender_closes() {
        let (tx, rx) = channel::<u8>();
        let worker = std::thread::spawn(move || drop(tx));
        assert!(block_on(Wait::new(rx, Instant::now(), Duration::ZERO))
            .0
            .is_err());
        worker.join().unwrap();
    }
}
