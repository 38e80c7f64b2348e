//! The writer gate: a fair (first come, first served) lock that the connections of one connector
//! take before they write, so that concurrent writers wait in turn here instead of failing with
//! `SQLITE_BUSY` inside SQLite.
//!
//! Only connection threads wait on it (never an executor thread). It is a ticket lock: each writer
//! draws the next ticket and waits until that ticket is served. Each waiter sleeps on a condition
//! variable of its own, and the writer that leaves wakes only the next one. (With one shared by
//! all, every turn woke every waiting thread to find one of them served: in a profile of eight
//! connections taking turns at short transactions, 18 % of the samples were in the gate's wait.)

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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
    /// The writers waiting for their turn: each one's ticket and what it sleeps on.
    waiting: Vec<(u64, Arc<Condvar>)>,
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
            tickets.waiting.push((ticket, Arc::clone(&turn)));
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
            .find(|(ticket, _)| *ticket == serving)
            .map(|(_, turn)| Arc::clone(turn));
        drop(tickets);
        if let Some(turn) = next {
            turn.notify_one();
        }
    }

    /// How many writers hold the gate or wait for it.
    #[cfg(test)]
    pub(crate) fn writers(&self) -> u64 {
        let tickets = self.tickets();
        tickets.next - tickets.serving - tickets.abandoned.len() as u64
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
}
