//! [`SpinPolicy`]: when a driver should busy-poll for something that usually comes within
//! microseconds, and when it should let its thread sleep; [`Waiters`]: whether a caller waits alone,
//! so that busy-polling inside `poll` keeps no other caller's task from running; [`spin_until`]:
//! the busy-poll loop itself; [`CacheLine`]: a value alone on its cache lines, for what one side
//! polls and the other writes.
//!
//! For driver authors. Both built-in drivers use it: the SQLite driver while a caller waits for its
//! connection thread's reply (and the thread for the caller's next command), the PostgreSQL driver
//! while a caller waits for the server's reply on the socket.
//!
//! # Examples
//!
//! ```
//! use anysql_core::spin::SpinPolicy;
//! use std::time::Duration;
//!
//! let mut policy = SpinPolicy::new(Duration::from_micros(50));
//! assert_eq!(policy.next(), Duration::from_micros(50));
//! // Slow replies turn spinning off...
//! for _ in 0..20 {
//!     policy.record(Duration::from_millis(2));
//! }
//! assert_eq!(policy.next(), Duration::ZERO);
//! // ...and fast ones bring it back.
//! for _ in 0..20 {
//!     policy.record(Duration::from_micros(10));
//! }
//! assert_eq!(policy.next(), Duration::from_micros(50));
//! ```

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether the next wait busy-polls, from how long recent waits took.
///
/// Busy-polling pays when the thing waited for comes within microseconds: the reply to a point
/// query, the next command of a caller running queries back to back. On the virtual machines this
/// was built on, letting a thread sleep and waking it again costs tens of microseconds, more than
/// the query. It cannot help with a slow query, and only burns CPU. So each side keeps a moving
/// average of its recent waits and spins, for at most `limit`, only while that average is within
/// twice the limit. (Samples are capped at four times the limit, so one wait preempted for
/// milliseconds cannot turn spinning off for long.)
///
/// Why this rule and not a cleverer one: see the repository's `docs/benchmarks.md` ("Spinning: the
/// alternatives that were dropped").
#[derive(Debug, Clone)]
pub struct SpinPolicy {
    limit_ns: u64,
    average_ns: u64,
}

impl SpinPolicy {
    /// A policy spinning for at most `limit`; a zero limit never spins.
    pub fn new(limit: Duration) -> Self {
        let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        SpinPolicy {
            limit_ns,
            average_ns: 0,
        }
    }

    /// The most the next wait may spin: the limit, or zero to sleep at once.
    pub fn next(&self) -> Duration {
        if self.limit_ns == 0 {
            return Duration::ZERO;
        }
        if self.average_ns <= self.limit_ns.saturating_mul(2) {
            Duration::from_nanos(self.limit_ns)
        } else {
            Duration::ZERO
        }
    }

    /// Records how long a wait took.
    pub fn record(&mut self, took: Duration) {
        let cap = self.limit_ns.saturating_mul(4);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).min(cap);
        // An average over about the last eight waits.
        self.average_ns = self.average_ns - self.average_ns / 8 + ns / 8;
    }
}

/// How many callers of one engine wait for replies right now.
///
/// A wait that busy-polls inside `poll` keeps its executor thread from every other task. That is
/// what a lone caller wants, since nothing else is waiting to run; but tasks sharing an executor
/// thread, each waiting on its own connection, must instead let each other run, so that all their
/// requests go out and are served side by side. A driver cannot see the executor's other tasks,
/// only the callers of its own engine, which it counts here.
#[derive(Debug, Default)]
pub struct Waiters {
    // Alone on its cache lines: every connection of the engine writes it.
    count: CacheLine<AtomicUsize>,
}

/// A value alone on its cache line(s): 128 bytes, since Intel fetches lines in pairs.
///
/// For what one thread busy-polls and another writes: sharing a line with data the writer also
/// touches makes every poll steal that line, which costs hundreds of nanoseconds per transfer
/// between cores.
#[repr(align(128))]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheLine<T>(pub T);

impl<T> Deref for CacheLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for CacheLine<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// What [`spin_until`] does between two checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// A CPU spin-loop hint, and the clock read only every 16 checks: reading it costs more than
    /// a cheap check, and every nanosecond between two checks delays noticing what was awaited.
    /// For waits on another thread of this process that is running now.
    Spin,
    /// `std::thread::yield_now`, and the clock read after every check: gives the CPU away if
    /// anything else wants it, which on a machine where the awaited process (a database server)
    /// shares the cores is often that process.
    YieldThread,
}

/// How many checks [`Pause::Spin`] makes between two readings of the clock.
const SPINS_PER_CLOCK_READ: u32 = 16;

/// Calls `check` in a busy loop, pausing as `pause` says between calls, until it returns
/// something or `deadline` passes (then `None`). `check` runs at least once.
///
/// ```
/// use anysql_core::spin::{spin_until, Pause};
/// use std::time::{Duration, Instant};
///
/// let mut n = 0;
/// let found = spin_until(Instant::now() + Duration::from_secs(1), Pause::Spin, || {
///     n += 1;
///     (n == 3).then_some(n)
/// });
/// assert_eq!(found, Some(3));
/// assert_eq!(spin_until(Instant::now(), Pause::YieldThread, || None::<()>), None);
/// ```
pub fn spin_until<T>(
    deadline: Instant,
    pause: Pause,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let checks_per_clock_read = match pause {
        Pause::Spin => SPINS_PER_CLOCK_READ,
        Pause::YieldThread => 1,
    };
    loop {
        for _ in 0..checks_per_clock_read {
            if let Some(found) = check() {
                return Some(found);
            }
            match pause {
                Pause::Spin => std::hint::spin_loop(),
                Pause::YieldThread => std::thread::yield_now(),
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

impl Waiters {
    /// Counts a caller as waiting until the guard drops; also says whether no other caller was
    /// waiting when it arrived.
    pub fn enter(&self) -> (Waiting<'_>, bool) {
        let before = self.arrive();
        (Waiting(self), before == 0)
    }

    /// Counts one more waiting caller, returning how many were waiting before. Pair it with
    /// [`leave`](Self::leave); [`enter`](Self::enter) does both.
    pub fn arrive(&self) -> usize {
        self.count.0.fetch_add(1, Ordering::AcqRel)
    }

    /// Counts one waiting caller less.
    pub fn leave(&self) {
        self.count.0.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether no caller is waiting.
    pub fn is_empty(&self) -> bool {
        self.count.0.load(Ordering::Acquire) == 0
    }

    /// Whether at most one caller (the one asking, if it counted itself) is waiting.
    pub fn at_most_one(&self) -> bool {
        self.count.0.load(Ordering::Acquire) <= 1
    }
}

/// A caller counted in [`Waiters`] until dropped.
#[derive(Debug)]
pub struct Waiting<'a>(&'a Waiters);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_waiter_is_alone() {
        let waiters = Waiters::default();
        assert!(waiters.is_empty());
        let (first, alone) = waiters.enter();
        assert!(alone && waiters.at_most_one() && !waiters.is_empty());
        let (second, alone) = waiters.enter();
        assert!(!alone && !waiters.at_most_one());
        drop(first);
        assert!(waiters.at_most_one());
        drop(second);
        assert!(waiters.is_empty());
        assert!(waiters.enter().1);
    }

    #[test]
    fn one_preempted_wait_does_not_turn_spinning_off() {
        let limit = Duration::from_micros(50);
        let mut policy = SpinPolicy::new(limit);
        policy.record(Duration::from_millis(30));
        assert_eq!(policy.next(), limit);
        assert_eq!(SpinPolicy::new(Duration::ZERO).next(), Duration::ZERO);
    }
}
