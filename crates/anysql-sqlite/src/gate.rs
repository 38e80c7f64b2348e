//! The writer gate: a fair (first come, first served) lock that the connections of one connector
//! take before they write, so that concurrent writers wait in turn here instead of failing with
//! `SQLITE_BUSY` inside SQLite.
//!
//! No executor thread ever blocks on it: connection threads wait for their turn blocking
//! ([`WriterGate::enter`]), tasks asynchronously ([`WriterGate::turn`]). It is a ticket lock: each
//! writer draws the next ticket and waits until that ticket is served. Each waiter sleeps on a condition
//! variable of its own, and the writer that leaves wakes only the next one: with one shared to
//! wake them all, every turn woke every waiting thread (eight connections taking turns at short
//! transactions spent a sixth of their time being woken for nothing).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How often a waiting writer checks whether its caller gave up.
const GAVE_UP_POLL: Duration = Duration::from_millis(10);

/// The gate shared by all the connections of one connector.
#[derive(Default)]
pub(crate) struct WriterGate {
    tickets: Mutex<Tickets>,
}

#[derive(Default)]
struct Tickets {
    /// The ticket the next writer draws.
    next: u64,
    /// The ticket whose holder may write; `serving == next` when the gate is free.
    serving: u64,
    /// Tickets whose writers stopped waiting before their turn: skipped when reached.
    abandoned: Vec<u64>,
    /// The writers waiting for their turn: each one's ticket and how to wake it.
    waiting: Vec<(u64, Sleeper)>,
}

/// How a waiting writer is woken.
enum Sleeper {
    /// A connection's thread, asleep on a condition variable of its own.
    Thread(Arc<Condvar>),
    /// A task.
    Task(Waker),
}

impl Sleeper {
    fn wake(self) {
        match self {
            Sleeper::Thread(turn) => turn.notify_one(),
            Sleeper::Task(waker) => waker.wake(),
        }
    }
}

/// The right to write, held until dropped.
pub(crate) struct GateHeld(Arc<WriterGate>);

impl WriterGate {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(WriterGate::default())
    }

    fn tickets(&self) -> MutexGuard<'_, Tickets> {
        // Nothing under this lock can panic; take the data either way.
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this writer's turn, blocking the calling thread. `None` if `gave_up` said so
    /// before the turn came (it is asked every few milliseconds while waiting).
    pub(crate) fn enter(self: &Arc<Self>, gave_up: impl Fn() -> bool) -> Option<GateHeld> {
        let mut tickets = self.tickets();
        let ticket = tickets.next;
        tickets.next += 1;
        if tickets.serving != ticket {
            let turn = Arc::new(Condvar::new());
            tickets
                .waiting
                .push((ticket, Sleeper::Thread(Arc::clone(&turn))));
            while tickets.serving != ticket {
                tickets = turn
                    .wait_timeout(tickets, GAVE_UP_POLL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if tickets.serving != ticket && gave_up() {
                    tickets.abandoned.push(ticket);
                    break;
                }
            }
            tickets.waiting.retain(|(t, _)| *t != ticket);
            if tickets.serving != ticket {
                return None;
            }
        }
        Some(GateHeld(Arc::clone(self)))
    }

    /// Waits for this writer's turn without blocking: the ticket is drawn at the first poll, and
    /// dropping the future before the turn comes leaves the queue (or, if the turn just came,
    /// passes it on).
    pub(crate) fn turn(self: &Arc<Self>) -> Turn {
        Turn {
            gate: Arc::clone(self),
            ticket: None,
        }
    }

    /// Takes the gate if no writer holds it or waits for it, without waiting; else `None`.
    pub(crate) fn try_enter(self: &Arc<Self>) -> Option<GateHeld> {
        let mut tickets = self.tickets();
        if tickets.serving != tickets.next {
            return None;
        }
        tickets.next += 1;
        Some(GateHeld(Arc::clone(self)))
    }

    fn leave(&self) {
        let mut tickets = self.tickets();
        tickets.serving += 1;
        while let Some(i) = tickets.abandoned.iter().position(|&t| t == tickets.serving) {
            tickets.abandoned.swap_remove(i);
            tickets.serving += 1;
        }
        let serving = tickets.serving;
        let next = tickets
            .waiting
            .iter()
            .position(|(ticket, _)| *ticket == serving)
            .map(|i| tickets.waiting.swap_remove(i).1);
        drop(tickets);
        if let Some(next) = next {
            next.wake();
        }
    }

    /// How many writers hold the gate or wait for it.
    #[cfg(test)]
    pub(crate) fn writers(&self) -> u64 {
        let tickets = self.tickets();
        tickets.next - tickets.serving - tickets.abandoned.len() as u64
    }
}

/// A task's wait for its turn at the gate ([`WriterGate::turn`]).
pub(crate) struct Turn {
    gate: Arc<WriterGate>,
    /// The ticket drawn, until the turn is taken.
    ticket: Option<u64>,
}

impl Future for Turn {
    type Output = GateHeld;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GateHeld> {
        let this = &mut *self;
        let mut tickets = this.gate.tickets();
        let ticket = *this.ticket.get_or_insert_with(|| {
            tickets.next += 1;
            tickets.next - 1
        });
        if tickets.serving == ticket {
            tickets.waiting.retain(|(t, _)| *t != ticket);
            drop(tickets);
            this.ticket = None;
            return Poll::Ready(GateHeld(Arc::clone(&this.gate)));
        }
        let waker = Sleeper::Task(cx.waker().clone());
        match tickets.waiting.iter_mut().find(|(t, _)| *t == ticket) {
            Some((_, sleeper)) => *sleeper = waker,
            None => tickets.waiting.push((ticket, waker)),
        }
        Poll::Pending
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let mut tickets = self.gate.tickets();
        tickets.waiting.retain(|(t, _)| *t != ticket);
        if tickets.serving == ticket {
            // The turn came, and nobody will take it: pass it on.
            drop(tickets);
            drop(GateHeld(Arc::clone(&self.gate)));
        } else {
            tickets.abandoned.push(ticket);
        }
    }
}

impl Drop for GateHeld {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl fmt::Debug for WriterGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterGate").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn tickets_are_served_in_order_and_abandoned_ones_skipped() {
        let gate = WriterGate::new();
        let first = gate.enter(|| false).unwrap();
        assert_eq!(gate.writers(), 1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let give_up = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..4 {
            let (g, order, give_up) = (gate.clone(), order.clone(), give_up.clone());
            threads.push(std::thread::spawn(move || {
                // Writer 1 gives up; the others get their turn in the order they came.
                match g.enter(|| i == 1 && give_up.load(Ordering::Relaxed)) {
                    Some(_held) => order.lock().unwrap().push(i),
                    None => order.lock().unwrap().push(100 + i),
                }
            }));
            while gate.writers() < i + 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        give_up.store(true, Ordering::Relaxed);
        while order.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [101, 0, 2, 3]);
        assert_eq!(gate.writers(), 0);
        drop(gate.enter(|| true).unwrap());
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn woken(count: &Arc<Count>) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// Polls `turn` once with `count`'s waker.
    fn poll(turn: &mut Turn, count: &Arc<Count>) -> Option<GateHeld> {
        let waker = Waker::from(Arc::clone(count));
        match Pin::new(turn).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(held) => Some(held),
            Poll::Pending => None,
        }
    }

    #[test]
    fn tasks_and_threads_wait_in_one_line_and_only_the_next_is_woken() {
        let gate = WriterGate::new();
        let first = gate.enter(|| false).unwrap();
        let (a, c) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let mut turn_a = gate.turn();
        assert!(poll(&mut turn_a, &a).is_none());
        let (g, order) = (gate.clone(), Arc::new(Mutex::new(Vec::new())));
        let thread = {
            let order = Arc::clone(&order);
            std::thread::spawn(move || {
                let _held = g.enter(|| false).unwrap();
                order.lock().unwrap().push("thread");
            })
        };
        while gate.writers() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut turn_c = gate.turn();
        assert!(poll(&mut turn_c, &c).is_none());
        assert_eq!(gate.writers(), 4);

        drop(first);
        assert_eq!(woken(&a), 1, "the next in line is woken");
        assert_eq!(woken(&c), 0, "the others are not");
        let held_a = poll(&mut turn_a, &a).expect("its turn");
        assert!(poll(&mut turn_c, &c).is_none(), "the thread came before c");
        drop(held_a);
        thread.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["thread"]);
        assert_eq!(woken(&c), 1);
        let held_c = poll(&mut turn_c, &c).expect("its turn");
        assert_eq!(gate.writers(), 1);
        drop(held_c);
        assert_eq!(gate.writers(), 0);
    }

    #[test]
    fn a_task_that_stops_waiting_leaves_the_line_or_passes_its_turn_on() {
        let gate = WriterGate::new();
        let first = gate.try_enter().unwrap();
        let (a, b, c) = (
            Arc::new(Count::default()),
            Arc::new(Count::default()),
            Arc::new(Count::default()),
        );
        let (mut turn_a, mut turn_b, mut turn_c) = (gate.turn(), gate.turn(), gate.turn());
        assert!(poll(&mut turn_a, &a).is_none());
        assert!(poll(&mut turn_b, &b).is_none());
        assert!(poll(&mut turn_c, &c).is_none());
        assert_eq!(gate.writers(), 4);
        // b stops waiting before its turn: it leaves the line. A turn never polled drew no ticket.
        drop(turn_b);
        drop(gate.turn());
        assert_eq!(gate.writers(), 3);
        drop(first);
        assert_eq!((woken(&a), woken(&c)), (1, 0));
        drop(poll(&mut turn_a, &a).expect("a's turn"));
        assert_eq!((woken(&b), woken(&c)), (0, 1), "b was skipped");
        drop(poll(&mut turn_c, &c).expect("c's turn"));
        assert_eq!(gate.writers(), 0);

        // One whose turn came, but which is dropped before it takes it, passes it on.
        let first = gate.try_enter().unwrap();
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (mut turn_a, mut turn_b) = (gate.turn(), gate.turn());
        assert!(poll(&mut turn_a, &a).is_none());
        assert!(poll(&mut turn_b, &b).is_none());
        drop(first);
        assert_eq!((woken(&a), woken(&b)), (1, 0));
        drop(turn_a);
        assert_eq!(woken(&b), 1);
        assert!(poll(&mut turn_b, &b).is_some());
        assert_eq!(gate.writers(), 0);
    }
}
