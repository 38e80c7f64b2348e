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
#[derive(Debug)]
pub(super) struct Idle {
    policy: SpinPolicy,
    /// When the last reply went out, and whether the wait since then may spin.
    replied: Option<(Instant, Duration)>,
}

impl Idle {
    pub(super) fn new(limit: Duration) -> Self {
        Idle {
            policy: SpinPolicy::new(limit),
            replied: None,
        }
    }

    pub(super) fn next(
        &mut self,
        commands: &crossbeam_channel::Receiver<Command>,
    ) -> Option<Command> {
        let command = match commands.try_recv() {
            Ok(command) => Some(command),
            Err(crossbeam_channel::TryRecvError::Disconnected) => None,
            Err(crossbeam_channel::TryRecvError::Empty) => self.wait(commands),
        };
        if let Some((replied_at, _)) = self.replied.take() {
            self.policy.record(replied_at.elapsed());
        }
        command
    }

    fn wait(&self, commands: &crossbeam_channel::Receiver<Command>) -> Option<Command> {
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
                return received;
            }
        }
        commands.recv().ok()
    }

    /// Notes that a reply just went out.
    pub(super) fn replied(&mut self) {
        let budget = self.policy.next();
        self.replied = Some((Instant::now(), budget));
    }
}
