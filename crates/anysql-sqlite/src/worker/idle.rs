//! How the worker thread waits for its next command ([`Idle`]).

use super::*;

/// How the worker waits for its next command: busy for a little while, or asleep.
///
/// A caller running queries back to back sends the next command a microsecond or two after the
/// reply. If the worker is asleep by then, waking it costs a system call and, on a virtual machine,
/// an inter-processor interrupt: several microseconds, more than a point query. So the worker may
/// poll the channel for up to `busy_poll` (the URL option, 50 µs by default) before it blocks, while [`SpinPolicy`] finds commands
/// coming back to back (an idle pooled connection, whose commands come seconds apart, sleeps at
/// once).
///
/// While a point read lingers ([`Worker::end_lingering`]), the worker sleeps at most
/// [`LINGER_LIMIT`](super::linger::LINGER_LIMIT) at a time, and ends the read once it has
/// lingered that long with no newer one.
#[derive(Debug)]
pub(super) struct Idle {
    policy: SpinPolicy,
    /// When the last reply went out, and whether the wait since then may spin.
    replied: Option<(Instant, Duration)>,
}

/// What the worker is to do next.
// A command passes through by value, as it comes off the channel: boxing it would cost a heap
// block per command.
#[allow(clippy::large_enum_variant)]
pub(super) enum Next {
    Command(Command),
    /// End the point read left lingering: it has lingered for
    /// [`LINGER_LIMIT`](super::linger::LINGER_LIMIT) with nothing else to do.
    LingeredLong,
}

impl Idle {
    pub(super) fn new(limit: Duration) -> Self {
        Idle {
            policy: SpinPolicy::new(limit),
            replied: None,
        }
    }

    /// The next thing to do; `None` once the connection's handle is gone.
    pub(super) fn next(
        &mut self,
        commands: &crossbeam_channel::Receiver<Command>,
        shared: &Shared,
    ) -> Option<Next> {
        let next = loop {
            let next = match commands.try_recv() {
                Ok(command) => Some(Next::Command(command)),
                Err(crossbeam_channel::TryRecvError::Disconnected) => None,
                Err(crossbeam_channel::TryRecvError::Empty) => self.wait(commands, shared),
            };
            // Woken to keep an eye on a lingering read: wait again, now with a timeout.
            if !matches!(next, Some(Next::Command(Command::Wake))) {
                break next;
            }
        };
        if matches!(next, Some(Next::Command(_))) {
            if let Some((replied_at, _)) = self.replied.take() {
                self.policy.record(replied_at.elapsed());
            }
        }
        next
    }

    fn wait(
        &self,
        commands: &crossbeam_channel::Receiver<Command>,
        shared: &Shared,
    ) -> Option<Next> {
        if let Some((replied_at, budget)) = self.replied {
            // Pure spinning, no `yield_now`: on a crowded machine a yield can hand the CPU away for
            // a whole time slice, and S5 (four readers and a writer on two cores) ran at half the
            // speed with it.
            let received = spin_until(replied_at + budget, Pause::Spin, || {
                match commands.try_recv() {
                    Ok(command) => Some(Some(command)),
                    Err(crossbeam_channel::TryRecvError::Disconnected) => Some(None),
                    Err(crossbeam_channel::TryRecvError::Empty) => None,
                }
            });
            if let Some(received) = received {
                return received.map(Next::Command);
            }
        }
        loop {
            if shared.lingering.load(Ordering::SeqCst) {
                let timed = shared.lingered.load(Ordering::Relaxed);
                match commands.recv_timeout(super::linger::LINGER_LIMIT) {
                    Ok(command) => return Some(Next::Command(command)),
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
                    // The connection goes on reading: time its latest read.
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                        if shared.lingered.load(Ordering::Relaxed) != timed =>
                    {
                        continue
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        return Some(Next::LingeredLong)
                    }
                }
            }
            // A read that starts lingering from now on sees `asleep` and wakes this thread; one
            // that started before, this thread sees here.
            shared.asleep.store(true, Ordering::SeqCst);
            if shared.lingering.load(Ordering::SeqCst) {
                shared.asleep.store(false, Ordering::SeqCst);
                continue;
            }
            let received = commands.recv().ok().map(Next::Command);
            shared.asleep.store(false, Ordering::SeqCst);
            return received;
        }
    }

    /// Notes that a reply just went out.
    pub(super) fn replied(&mut self) {
        let budget = self.policy.next();
        self.replied = Some((Instant::now(), budget));
    }
}
