//! The competing load of `cargo xtask bench --loaded`: a child process that keeps every core busy
//! while the benchmarks run, and stops when they end.
//!
//! The load runs in a process of its own so that its CPU time never enters the measured processes'
//! accounting (`CLOCK_PROCESS_CPUTIME_ID` is per process). It is bounded three ways: [`Load`] kills
//! it by PID when dropped (at the end of the run, and on an error or a panic that unwinds); the
//! child exits when its stdin, a pipe from this process, closes (so also when this process is
//! killed); and it exits on its own after a time limit.

use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};

/// A running load process, killed when dropped.
#[derive(Debug)]
pub struct Load {
    child: Child,
    /// Held open: the child exits when it reads end-of-file here.
    stdin: Option<ChildStdin>,
}

impl Load {
    /// Starts `command` with a pipe as its stdin, its stdout and stderr inherited.
    pub fn start(mut command: Command) -> Result<Load> {
        let display = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start the load `{display}`"))?;
        let stdin = child.stdin.take();
        Ok(Load { child, stdin })
    }

    /// The load process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the load process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the load: kills the process by its PID and reaps it.
    pub fn stop(&mut self) -> Result<()> {
        drop(self.stdin.take());
        if self.running() {
            // An error here means it exited meanwhile; `wait` below tells.
            let _ = self.child.kill();
        }
        self.child
            .wait()
            .with_context(|| format!("failed to reap the load process {}", self.pid()))?;
        Ok(())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("warning: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// A command that would run for a minute unless stopped.
    fn long_command() -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 60"]);
        command
    }

    fn alive(pid: u32) -> bool {
        // A reaped process has no /proc entry.
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn dropping_the_load_kills_it_by_pid() {
        let mut load = Load::start(long_command()).unwrap();
        let pid = load.pid();
        assert!(load.running());
        assert!(alive(pid));
        let started = Instant::now();
        drop(load);
        assert!(!alive(pid), "the load process {pid} survived its guard");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_panic_stops_the_load_too() {
        let mut pid = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let load = Load::start(long_command()).unwrap();
            pid = load.pid();
            panic!("a failing benchmark");
        }));
        assert!(result.is_err());
        assert!(
            pid != 0 && !alive(pid),
            "the load process {pid} survived a panic"
        );
    }

    #[test]
    fn the_child_sees_its_stdin_close() {
        // `cat` exits at end-of-file: stopping closes the pipe before it kills.
        let mut command = Command::new("cat");
        command.stdout(Stdio::null());
        let mut load = Load::start(command).unwrap();
        assert!(load.running());
        load.stop().unwrap();
        assert!(!load.running());
        // A second stop (the drop) is harmless.
        load.stop().unwrap();
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let error = Load::start(Command::new("/nonexistent/anysql-load")).unwrap_err();
        assert!(format!("{error:#}").contains("failed to start the load"));
    }
}
